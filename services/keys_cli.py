"""`referrals-keys rotate <service>`: re-wrap every data key of the service's database under the current KEK.

The KEK in DATA_KEK_FILE is the new one; the old ones stay readable through DATA_KEK_PREVIOUS_FILES until this
has run. No personal field is re-encrypted: only each referral's data key is unwrapped and wrapped again, in
one transaction. Afterwards the old KEK files can be retired. `referrals-keys ensure [PATH]` creates a KEK file
(dev's by default; a new one to rotate to, e.g. `referrals-keys ensure /run/secrets/kek-2026.b64`).
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from sqlalchemy.exc import SQLAlchemyError

from services.migrate import settings_of
from shared import crypto
from shared.config import ConfigError, Settings
from shared.db import make_engine, make_session_factory
from shared.sealed import rotate

SEALED_SERVICES = ("intake", "advocacy")


def rotate_service(service: str, settings: Settings) -> int:
    production = bool(settings.auth_token_url and not settings.auth_private_key_file)
    keks = crypto.keks_from_env(settings.env, production=production)
    model = import_module(f"services.{service}.models").DataKey
    engine = make_engine(settings.database_url, instrument=False)
    try:
        return rotate(make_session_factory(engine), model, keks)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="referrals-keys", description="Manage the KEKs wrapping data keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate_parser = commands.add_parser("rotate", help="re-wrap every data key under DATA_KEK_FILE's KEK")
    rotate_parser.add_argument("service", choices=SEALED_SERVICES)
    ensure_parser = commands.add_parser("ensure", help=f"create a KEK file if absent (default {crypto.DEV_KEK_FILE})")
    ensure_parser.add_argument("path", nargs="?", default=crypto.DEV_KEK_FILE)
    args = parser.parse_args(argv)
    if args.command == "ensure":
        try:
            created = crypto.ensure_kek_file(args.path)
        except OSError as exc:
            reason = f"cannot create {args.path} ({exc.strerror}); choose a writable path"
            print(f"referrals-keys: {reason}", file=sys.stderr)
            return 2
        print(f"{'created' if created else 'kept'} {args.path}")
        return 0
    try:
        count = rotate_service(args.service, settings_of(args.service))
    except (ConfigError, crypto.Unreadable) as exc:
        print(f"referrals-keys: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"referrals-keys: {args.service}'s database: {exc.__class__.__name__}", file=sys.stderr)
        return 1
    print(f"{args.service}: re-wrapped {count} data keys under the current KEK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
