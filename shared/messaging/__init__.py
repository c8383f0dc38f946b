"""RabbitMQ messaging: at-least-once delivery, nothing lost, no effect twice.

- `envelope`: the CloudEvents 1.0 structured-JSON envelope.
- `topology`: the `referrals` topic exchange and each consumer's quorum queue, retry and parking lot.
- `connection`: one pika connection per thread, reconnect with backoff, topology on every connect.
- `relay`: the transactional outbox's relay (publisher confirms + mandatory).
- `consumer`: the consume loop (ack after commit, delayed retry, park after the last attempt).
"""

EXCHANGE = "referrals"
RETRY_EXCHANGE = "referrals.retry"
PARKING_EXCHANGE = "referrals.parking"
CONTENT_TYPE = "application/cloudevents+json"
