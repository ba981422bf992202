// @aws-sdk/client-sqs v3 against the endpoint: queues, send (single and batch), receive with the
// SDK's own MD5OfMessageBody checks on, change visibility, delete, errors. Prints one JSON object.
//   node sqs.mjs ENDPOINT QUEUE_NAME
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import {
  ChangeMessageVisibilityCommand, CreateQueueCommand, DeleteMessageBatchCommand, DeleteMessageCommand,
  GetQueueAttributesCommand, GetQueueUrlCommand, QueueDoesNotExist, ReceiveMessageCommand,
  SendMessageBatchCommand, SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { client, fail, report } from "./common.mjs";

const [endpoint, name] = process.argv.slice(2);
const sqs = client(endpoint);
const md5 = (text) => createHash("md5").update(text, "utf8").digest("hex");
const out = { md5Checks: sqs.config.md5 !== false };

async function receiveAll(QueueUrl, count) {
  const messages = [];
  const deadline = Date.now() + 10_000;
  while (messages.length < count && Date.now() < deadline) {
    const got = await sqs.send(new ReceiveMessageCommand({
      QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30,
      MessageAttributeNames: ["All"], MessageSystemAttributeNames: ["All"],
    }));
    messages.push(...(got.Messages ?? []));
  }
  return messages;
}

async function main() {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
  out.queueUrl = QueueUrl;
  out.getQueueUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;

  const body = "from node \u{1F680} zażółć";
  const sent = await sqs.send(new SendMessageCommand({
    QueueUrl, MessageBody: body,
    MessageAttributes: {
      n: { DataType: "Number", StringValue: "3" },
      s: { DataType: "String", StringValue: "node" },
      b: { DataType: "Binary", BinaryValue: Uint8Array.from([1, 2, 255]) },
    },
  }));
  out.send = { md5Ok: sent.MD5OfMessageBody === md5(body), md5OfAttributes: sent.MD5OfMessageAttributes };
  const batch = await sqs.send(new SendMessageBatchCommand({
    QueueUrl,
    Entries: [0, 1, 2].map((i) => ({ Id: `m${i}`, MessageBody: `batch ${i}` })),
  }));
  out.batchOk = batch.Successful.map((e) => e.Id).sort();

  const messages = await receiveAll(QueueUrl, 4);
  out.bodies = messages.map((m) => m.Body).sort();
  const single = messages.find((m) => m.Body === body);
  out.single = {
    md5Ok: single.MD5OfBody === md5(body),
    attributes: Object.fromEntries(Object.entries(single.MessageAttributes ?? {}).map(([k, v]) => [
      k, v.BinaryValue ? { DataType: v.DataType, BinaryValue: Buffer.from(v.BinaryValue).toString("hex") }
        : { DataType: v.DataType, StringValue: v.StringValue },
    ])),
    md5OfAttributes: single.MD5OfMessageAttributes,
    receiveCount: single.Attributes?.ApproximateReceiveCount,
  };

  await sqs.send(new ChangeMessageVisibilityCommand({
    QueueUrl, ReceiptHandle: single.ReceiptHandle, VisibilityTimeout: 0,
  }));
  const again = await receiveAll(QueueUrl, 1);
  out.redelivered = again.map((m) => [m.Body, m.Attributes?.ApproximateReceiveCount]);

  await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: again[0].ReceiptHandle }));
  const rest = messages.filter((m) => m !== single);
  const deleted = await sqs.send(new DeleteMessageBatchCommand({
    QueueUrl, Entries: rest.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })),
  }));
  out.deleted = (deleted.Successful ?? []).length;
  const counts = await sqs.send(new GetQueueAttributesCommand({
    QueueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
  }));
  out.counts = counts.Attributes;

  try {
    await sqs.send(new GetQueueUrlCommand({ QueueName: `${name}-missing` }));
    out.missing = null;
  } catch (error) {
    out.missing = { name: error.name, isQueueDoesNotExist: error instanceof QueueDoesNotExist,
                    status: error.$metadata?.httpStatusCode };
  }
  out.badDigestRefused = await badDigestIsRefused();
  report(out);
}

// The SDK's MD5OfMessageBody check is live: a server that lies about the digest is refused.
async function badDigestIsRefused() {
  const server = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      response.writeHead(200, { "Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "fake" });
      response.end(JSON.stringify({ Messages: [{
        MessageId: "1", ReceiptHandle: "r", Body: "hello", MD5OfBody: "00000000000000000000000000000000",
      }] }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  try {
    await client(url).send(new ReceiveMessageCommand({ QueueUrl: `${url}/000000000000/fake` }));
    return false;
  } catch (error) {
    return /MD5/.test(error.message);
  } finally {
    server.close();
  }
}

main().catch(fail);
