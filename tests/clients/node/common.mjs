// What the scripts share: an SQS client for the endpoint on the command line, with dummy
// credentials (the server accepts any signature), and a way to print one JSON result.
import { SQSClient } from "@aws-sdk/client-sqs";

export function client(endpoint, options = {}) {
  return new SQSClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "wonderq", secretAccessKey: "wonderq" },
    maxAttempts: 1,
    ...options,
  });
}

export function report(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}

export function fail(error) {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
}
