"""`referrals-parked list|show|replay|discard <queue> [<message_id>|--all]`: look at a consumer's parking lot
(`<queue>.parking`), put messages back, or drop them. Reads AMQP_URL (a charity runs it with its own user, on
its own queue).

- `list` prints each parked message's id, type, the ids it is about (its CloudEvent subject and the data's
  `*_id` fields), reason, attempts, parked time and age; never anything else of its body.
- `show <id>` prints its headers (x-death summed up per queue and reason) and its CloudEvent envelope with the
  `data` field names, values only for ids (`id`, `*_id`): an operator sees what it is about and why it was
  parked, and no personal data, even from a message parked for carrying some.
- `replay <id>|--all` republishes to the consumer's own queue through its requeue path (`referrals.requeue`,
  under the queue's name) with the original exchange, routing key and user_id in `x-original-*` headers and a
  fresh attempt budget (no x-death), then removes it from the parking lot. The consumer holds it to the
  publisher rule as its original publisher, and only because this command's user is one of the platform's
  (Catalogue.accept); its inbox makes a replay take effect once.
- `discard <id>|--all --reason "<why>"` removes it, and records who discarded what and why: one JSON line
  (`parked message discarded`, with the message id, type, queue, broker user and reason) on stderr, which the
  platform's log collection keeps where the command runs (a Kubernetes Job's or `kubectl exec`'s log). The
  reason is the operator's words about the message, never about the person.

Messages are read with basic.get and the ones not acted on are put back when the command ends.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker, NackError, UnroutableError

from shared.logs import json_formatter
from shared.messaging import REQUEUE_EXCHANGE
from shared.messaging.topology import ORIGINAL_ROUTING_KEY

COMMANDS = ("list", "show", "replay", "discard")
USAGE = 'usage: referrals-parked list|show|replay|discard <queue> [<message_id>|--all] [--reason "<why>"]'
MAX_REASON = 200
log = logging.getLogger("referrals.parked")
# Not carried into a replay: the broker's own record of the old attempts and this parking's notes.
_DROPPED = ("x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason")
_PARKING_NOTES = "x-parked-"
_TRANSIENT_NOTES = "x-transient-"


class Usage(Exception):
    """Bad input: the message says what is wrong and how to fix it."""


@dataclass
class Parked:
    tag: int
    properties: pika.BasicProperties
    body: bytes

    @property
    def headers(self) -> dict:
        return self.properties.headers or {}

    @property
    def message_id(self) -> str:
        return self.properties.message_id or "-"

    def line(self, now: datetime) -> str:
        h = self.headers
        parked_at = _text(h.get("x-parked-at", "-"))
        return "\t".join(
            str(v)
            for v in (
                self.message_id,
                self.properties.type or "-",
                ",".join(f"{k}={v}" for k, v in _ids(self.body)) or "-",
                _text(h.get("x-parked-reason", "-")),
                h.get("x-parked-attempts", "-"),
                parked_at,
                _age(parked_at, now),
            )
        )


LIST_HEADER = "message_id\ttype\tids\treason\tattempts\tparked_at\tage"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        args, reason = _reason(args)
        command, queue, target = _parse(args)
        if command == "discard" and reason is None:
            raise Usage(
                "discard needs a reason, recorded with it. Fix: referrals-parked discard <queue> <message_id> "
                '--reason "<why it can go>"'
            )
        if command != "discard" and reason is not None:
            raise Usage(f"--reason is for discard only. Fix: referrals-parked {command} without --reason")
        url = _amqp_url()
        return _run(url, command, queue, target, reason)
    except Usage as exc:
        print(f"referrals-parked: {exc}", file=sys.stderr)
        return 2


def _reason(args: list[str]) -> tuple[list[str], str | None]:
    """The arguments without `--reason <text>` (or `--reason=<text>`), and the text: one line, not blank."""
    for i, arg in enumerate(args):
        if arg == "--reason" or arg.startswith("--reason="):
            text = arg.partition("=")[2] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            rest = args[:i] + args[i + (1 if "=" in arg else 2) :]
            text = " ".join(text.split())
            if not text:
                raise Usage('--reason needs some words. Fix: --reason "<why it can go>"')
            if len(text) > MAX_REASON:
                raise Usage(f"--reason is longer than {MAX_REASON} characters. Fix: say why in fewer words")
            return rest, text
    return args, None


def _parse(args: list[str]) -> tuple[str, str, str | None]:
    if not args or args[0] in ("-h", "--help"):
        raise Usage(f"{USAGE}\nFix: name a command and the consumer's queue, e.g. referrals-parked list intake")
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        raise Usage(f"unknown command {command!r}. Fix: use one of {', '.join(COMMANDS)}")
    if not rest:
        raise Usage(f"{command} needs the consumer's queue. Fix: referrals-parked {command} <queue>, e.g. intake")
    queue = rest[0].removesuffix(".parking")
    target = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        raise Usage(f"too many arguments. {USAGE}")
    if command == "list" and target is not None:
        raise Usage("list takes only the queue. Fix: referrals-parked list <queue>")
    if command == "show" and (target is None or target == "--all"):
        raise Usage("show needs one message id. Fix: referrals-parked list <queue>, then show <queue> <message_id>")
    if command in ("replay", "discard") and target is None:
        raise Usage(f"{command} needs a message id or --all. Fix: referrals-parked {command} <queue> <message_id>")
    return command, queue, target


def _amqp_url() -> str:
    urls = [u.strip() for u in os.environ.get("AMQP_URL", "").split(",") if u.strip()]
    if not urls:
        raise Usage("AMQP_URL is not set. Fix: export AMQP_URL=amqp://<user>:<password>@<host>:5672/<vhost>")
    return urls[0]


def _run(url: str, command: str, queue: str, target: str | None, reason: str | None = None) -> int:
    parking = f"{queue}.parking"
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except AMQPConnectionError as exc:
        raise Usage(f"cannot reach the broker ({exc.__class__.__name__}). Fix: check AMQP_URL and the broker") from None
    try:
        channel = connection.channel()
        try:
            count = channel.queue_declare(parking, passive=True).method.message_count
        except ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                raise Usage(
                    f"no queue {parking}. Fix: name a consumer's queue (rabbitmqctl list_queues name)"
                ) from None
            raise Usage(f"the broker refused to open {parking}: {exc.reply_text}. Fix: use a user allowed it") from None
        channel.confirm_delivery()
        parked = _take(channel, parking, count)
        chosen = parked if target == "--all" or command == "list" else [p for p in parked if p.message_id == target]
        if command != "list" and not chosen:
            print(f"referrals-parked: no parked message {target} in {parking}", file=sys.stderr)
            return 1
        user = unquote(urlsplit(url).username or "guest")
        if command == "list":
            now = datetime.now(UTC)
            print(LIST_HEADER)
            for p in parked:
                print(p.line(now))
        elif command == "show":
            for p in chosen:
                print(_show(p))
        elif command == "replay":
            for p in chosen:
                _replay(channel, queue, p, user)
                print(f"replayed {p.message_id} to {queue}")
        else:
            for p in chosen:
                channel.basic_ack(p.tag)
                _record_discard(p, parking, user, reason or "")
                print(f"discarded {p.message_id} from {parking}: {reason}")
        # The rest go back to the parking lot when the channel closes.
        return 0
    finally:
        if connection.is_open:
            connection.close()


def _take(channel: BlockingChannel, parking: str, count: int) -> list[Parked]:
    taken: list[Parked] = []
    for _ in range(count):  # at most what was there: what we take stays unacked, so none comes twice
        method, properties, body = channel.basic_get(parking)
        if method is None:
            break
        taken.append(Parked(method.delivery_tag, properties, body))
    return taken


def _replay(channel: BlockingChannel, queue: str, parked: Parked, user: str) -> None:
    headers = {
        k: v
        for k, v in parked.headers.items()
        if k not in _DROPPED and not k.startswith(_PARKING_NOTES) and not k.startswith(_TRANSIENT_NOTES)
    }
    if ORIGINAL_ROUTING_KEY not in headers:
        raise Usage(
            f"{parked.message_id} was parked without its original route (by an older version). Fix: publish it "
            "again from its source, then referrals-parked discard it"
        )
    properties = pika.BasicProperties(
        message_id=parked.properties.message_id,
        type=parked.properties.type,
        content_type=parked.properties.content_type,
        delivery_mode=pika.DeliveryMode.Persistent,
        user_id=user,  # validated by the broker: the consumer believes x-original-* only from the platform's users
        headers=headers,
    )
    try:
        channel.basic_publish(REQUEUE_EXCHANGE, queue, parked.body, properties, mandatory=True)
    except (UnroutableError, NackError):
        raise Usage(
            f"the broker did not take the replay of {parked.message_id} to {queue}. Fix: start its worker"
        ) from None
    channel.basic_ack(parked.tag)


def _record_discard(parked: Parked, parking: str, user: str, reason: str) -> None:
    if not log.handlers:  # a command run from a shell: the record goes to stderr as one JSON line
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(json_formatter())
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    fields = {"message_id": parked.message_id, "type": parked.properties.type or "-", "queue": parking}
    log.info("parked message discarded", extra=fields | {"user": user, "reason": reason})


def _ids(body: bytes) -> list[tuple[str, str]]:
    """What a parked message is about: its CloudEvent subject and its data's `*_id` fields (ids only)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(doc, dict):
        return []
    found = [("subject", _text(doc["subject"]))] if isinstance(doc.get("subject"), str) else []
    data = doc.get("data")
    if isinstance(data, dict):
        found += [(k, _text(v)) for k, v in sorted(data.items()) if _is_id(k) and k != "id" and isinstance(v, str)]
    return found


def _age(parked_at: str, now: datetime) -> str:
    """How long ago, as `3d4h`, `2h15m`, `5m` or `40s`; `-` when the parked time is missing or unreadable."""
    try:
        seconds = int((now - datetime.fromisoformat(parked_at)).total_seconds())
    except (ValueError, TypeError):
        return "-"
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def _show(parked: Parked) -> str:
    lines = [f"message_id: {parked.message_id}", f"type: {parked.properties.type or '-'}", "headers:"]
    for key, value in sorted(parked.headers.items()):
        if key == "x-death":
            for death in value or []:
                lines.append(
                    f"  x-death: queue={_text(death.get('queue'))} reason={_text(death.get('reason'))} "
                    f"count={death.get('count')}"
                )
        elif key in ("traceparent", "tracestate") or key.startswith("x-"):
            lines.append(f"  {key}: {_text(value)}")
    lines.append("event:")
    lines.extend(f"  {line}" for line in _envelope(parked.body))
    return "\n".join(lines)


def _envelope(body: bytes) -> list[str]:
    """The CloudEvent's attributes and its data's field names, with values only for ids."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        return [f"(not a CloudEvent: {len(body)} bytes, not shown)"]
    lines = [f"{k}: {_text(doc.get(k))}" for k in ("id", "type", "source", "subject", "time") if k in doc]
    data = doc.get("data")
    if isinstance(data, dict):
        for key in sorted(data):
            value = data[key]
            shown = _text(value) if _is_id(key) and isinstance(value, str) else f"<{type(value).__name__}>"
            lines.append(f"data.{key}: {shown}")
    return lines


def _is_id(field: str) -> bool:
    return field == "id" or field.endswith("_id")


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return " ".join(str(value).split())[:200]


if __name__ == "__main__":
    sys.exit(main())
