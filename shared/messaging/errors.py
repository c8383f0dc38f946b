"""What a handler raises to say a message can never succeed. Here, not in the consumer, so that code the
APIs share with the handlers can raise it without loading pika into an API process."""


class PermanentError(Exception):
    """This message can never succeed (forged, contradicts the record): park it, do not retry."""
