"""What a handler raises to say how a message failed. Here, not in the consumer, so that code the APIs share
with the handlers can raise it without loading pika into an API process."""


class PermanentError(Exception):
    """This message can never succeed (forged, contradicts the record): park it, do not retry."""


class DependencyUnavailable(Exception):
    """Something the handler needs is briefly unavailable (another service's API unreachable or answering 5xx;
    the service's own database is recognised by shared.db.is_unavailable): retry the message in place, in
    order, without spending its poison budget. `dependency` names it for /readyz ("intake", "database")."""

    def __init__(self, dependency: str, reason: str):
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason


# What a handler returns when the inbox had its event already (nothing done): the consumer counts it as a
# duplicate (referrals_messages_consumed_total). Here for the same reason: shared.inbox, which the APIs load,
# must not import the consumer, which loads pika.
DUPLICATE = "duplicate"
