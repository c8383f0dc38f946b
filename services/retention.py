"""`referrals-retention [--dry-run] [--service S] [--now ISO]`: what the retention table (contracts/retention.csv)
says is due in each service's database, per record kind, with the rule's version and period; without
--dry-run it does it, with the same code as the workers' retention loop, and prints what it did.

Each service's database comes from its own settings (`<SERVICE>_DATABASE_URL`, and advocacy's PROVIDER_ID),
as `referrals-migrate` reads them. Safe beside running workers: every row is claimed once (shared.retention).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from services.migrate import SERVICES, settings_of
from shared.clock import utcnow
from shared.config import ConfigError
from shared.db import is_unavailable
from shared.retention import Retention, RetentionError


def retention_of(service: str) -> Retention:
    """The service's retention step over its own database (no I/O until it runs)."""
    settings = settings_of(service)
    if service == "intake":
        from services.intake import retention as intake  # noqa: PLC0415 - only the service asked for
        from services.intake.bootstrap import bootstrap as intake_bootstrap  # noqa: PLC0415

        return intake.retention(intake_bootstrap(settings, instrument=False).sessions)
    if service == "advocacy":
        from services.advocacy import retention as advocacy  # noqa: PLC0415
        from services.advocacy.bootstrap import bootstrap as advocacy_bootstrap  # noqa: PLC0415

        built = advocacy_bootstrap(settings, instrument=False)
        return advocacy.retention(built.unit_of_work, built.provider_id)
    from services.notifications import retention as notifications  # noqa: PLC0415
    from services.notifications.bootstrap import bootstrap as notifications_bootstrap  # noqa: PLC0415

    return notifications.retention(notifications_bootstrap(settings, instrument=False).units)


def parse_now(raw: str | None) -> datetime:
    if raw is None:
        return utcnow()
    try:
        found = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"--now {raw!r} is not an ISO date or time: use e.g. 2031-06-01T00:00:00Z") from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="referrals-retention", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what is due, change nothing")
    parser.add_argument("--service", help=f"one of {', '.join(SERVICES)} (default: all three)")
    parser.add_argument("--now", help="the time to apply the table at, ISO 8601 (default: now)")
    args = parser.parse_args(argv)
    if args.service is not None and args.service not in SERVICES:
        print(
            f"referrals-retention: unknown service {args.service!r}: choose one of {', '.join(SERVICES)}",
            file=sys.stderr,
        )
        return 2
    try:
        now = parse_now(args.now)
    except ConfigError as exc:
        print(f"referrals-retention: {exc}", file=sys.stderr)
        return 2
    print(f"retention at {now.isoformat()} ({'dry run: nothing changed' if args.dry_run else 'applied'})")
    failed = 0
    for service in [args.service] if args.service else SERVICES:
        try:
            step = retention_of(service)
            outcomes = step.due(now) if args.dry_run else step.run(now)
        except (ConfigError, RetentionError) as exc:
            print(f"referrals-retention: {service}: {exc}", file=sys.stderr)
            failed = 1
            continue
        except SQLAlchemyError as exc:  # a one-line reason and the fix, not a traceback (nor the statement's values)
            var = f"{service.upper()}_DATABASE_URL"
            if is_unavailable(exc):
                fix = f"database unreachable ({exc.__class__.__name__}): check that {var} is up and reachable"
            else:
                fix = f"database error ({exc.__class__.__name__}): check {var} and run `referrals-migrate {service}`"
            print(f"referrals-retention: {service}: {fix}", file=sys.stderr)
            failed = 1
            continue
        for outcome in outcomes:
            print(outcome.line(done=not args.dry_run))
    return failed


if __name__ == "__main__":
    sys.exit(main())
