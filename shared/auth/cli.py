"""`referrals-token`: print a dev token, or create the dev key pair and the dev data KEK.

referrals-token --org met-police --kind police --scope "referrals:write referrals:read"
referrals-token --ensure-keys
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared.auth import ORG_KINDS, SCOPES
from shared.auth.tokens import ensure_dev_keys, mint_token
from shared.config import VAR_DIR
from shared.crypto import DEV_KEK_FILE, ensure_kek_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="referrals-token", description="Print a dev JWT for the platform.")
    parser.add_argument("--ensure-keys", action="store_true", help="create the dev keys in var/keys if absent")
    parser.add_argument("--org", help="organisation id, e.g. met-police")
    parser.add_argument("--kind", choices=ORG_KINDS, help="org_kind claim")
    parser.add_argument("--scope", default="", help='space-separated scopes, e.g. "referrals:write referrals:read"')
    parser.add_argument("--sub", help="subject (default: <org>-<random>)")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    args = parser.parse_args(argv)

    keys_dir = VAR_DIR / "keys"
    if args.ensure_keys:
        private, public, created = ensure_dev_keys(keys_dir)
        print(f"{'created' if created else 'kept'} {private} and {public}")
        kek_created = ensure_kek_file(DEV_KEK_FILE)  # the dev key-encryption key (shared.crypto)
        print(f"{'created' if kek_created else 'kept'} {DEV_KEK_FILE}")
        return 0
    if not args.org or not args.kind:
        parser.error("--org and --kind are required (or --ensure-keys)")
    unknown = [s for s in args.scope.split() if s not in SCOPES]
    if unknown:
        parser.error(f"unknown scope {' '.join(unknown)}; choose from: {' '.join(SCOPES)}")
    private_path = Path(os.environ.get("AUTH_PRIVATE_KEY_FILE") or keys_dir / "dev-private.pem")
    if not private_path.is_file():
        print(f"referrals-token: no private key at {private_path}: run `make keys` first", file=sys.stderr)
        return 1
    print(
        mint_token(
            private_path.read_text(),
            org=args.org,
            org_kind=args.kind,
            scopes=args.scope.split(),
            issuer=os.environ.get("AUTH_ISSUER") or "referrals-dev",
            audience=os.environ.get("AUTH_AUDIENCE") or "referrals",
            sub=args.sub,
            ttl_seconds=args.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
