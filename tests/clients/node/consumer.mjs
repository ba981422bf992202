// sqs-consumer v14: send COUNT messages, then consume them with a Consumer that fails the first
// delivery of one message (and, with terminateVisibilityTimeout, makes it visible again at once),
// stop once every message was handled, and check the queue is empty. Prints one JSON object.
//   node consumer.mjs ENDPOINT QUEUE_NAME COUNT
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { Consumer } from "sqs-consumer";
import { client, fail, report } from "./common.mjs";

const [endpoint, name, countArg] = process.argv.slice(2);
const count = Number(countArg);
const sqs = client(endpoint);

async function main() {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
  for (let start = 0; start < count; start += 10) {
    const ids = [...Array(Math.min(10, count - start)).keys()].map((i) => start + i);
    await sqs.send(new SendMessageBatchCommand({
      QueueUrl, Entries: ids.map((i) => ({ Id: `m${i}`, MessageBody: `job ${i}` })),
    }));
  }

  const handled = new Set();
  const deliveries = {};
  let failedOnce = false;
  const errors = [];
  let stopped;
  const done = new Promise((resolve) => { stopped = resolve; });
  const consumer = Consumer.create({
    queueUrl: QueueUrl, sqs, batchSize: 10, waitTimeSeconds: 1, visibilityTimeout: 30,
    terminateVisibilityTimeout: true, pollingWaitTimeMs: 0,
    handleMessage: async (message) => {
      deliveries[message.Body] = (deliveries[message.Body] ?? 0) + 1;
      if (message.Body === "job 0" && !failedOnce) {
        failedOnce = true;
        throw new Error("the first delivery of job 0 fails");
      }
      return message;
    },
  });
  consumer.on("message_processed", (message) => {
    handled.add(message.Body);
    if (handled.size === count) consumer.stop();
  });
  consumer.on("error", (error) => errors.push(`error: ${error.message}`));
  consumer.on("processing_error", (error) => errors.push(`processing_error: ${error.message}`));
  consumer.on("stopped", () => stopped());
  const timer = setTimeout(() => { errors.push("timed out"); consumer.stop(); }, 30_000);
  consumer.start();
  await done;
  clearTimeout(timer);

  // The consumer deletes each handled message; the last deletes may still be on their way.
  let counts;
  for (let i = 0; i < 20; i++) {
    counts = (await sqs.send(new GetQueueAttributesCommand({
      QueueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }))).Attributes;
    if (counts.ApproximateNumberOfMessages === "0" && counts.ApproximateNumberOfMessagesNotVisible === "0") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  report({ handled: handled.size, retried: deliveries["job 0"], errors, counts });
}

main().catch(fail);
