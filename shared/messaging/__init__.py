"""RabbitMQ messaging: at-least-once delivery, nothing lost, no effect twice.

- `envelope`: the CloudEvents 1.0 structured-JSON envelope.
- `topology`: the `referrals` topic exchange and each consumer's quorum queue, retry and parking lot.
- `connection`: one pika connection per thread, reconnect with backoff, topology on every connect.
- `relay`: the transactional outbox's relay (publisher confirms + mandatory).
- `consumer`: the consume loop (ack after commit, delayed retry, park after the last attempt).
"""

EXCHANGE = "referrals"
# Where a consumer's rejected message waits (Q.retry), how it returns to Q, and where it is parked. Topic
# exchanges, though each routing key is just a queue name: RabbitMQ's topic permissions then limit each
# charity's broker user to its own queues' keys (deploy/rabbitmq/add-provider.sh).
RETRY_EXCHANGE = "referrals.dlx"
REQUEUE_EXCHANGE = "referrals.requeue"
PARKING_EXCHANGE = "referrals.parked"
EXCHANGES = ((EXCHANGE, "topic"), (RETRY_EXCHANGE, "topic"), (REQUEUE_EXCHANGE, "topic"), (PARKING_EXCHANGE, "topic"))
CONTENT_TYPE = "application/cloudevents+json"
