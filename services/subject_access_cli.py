"""`referrals-sar <referral_id> [--out DIR]`: one subject access copy (UK GDPR Art. 15) of a referral, from every
service that holds part of it, as one JSON file and one readable HTML file.

It asks intake's `GET /v1/subject-access/{referral_id}` first; intake's answer names every charity that was sent
something (its offers, the provider holding the case, its record of recipients), and a charity's own answer
names any charity it handed the case to. It then asks each of those charities' advocacy instance and
notifications. Configuration (environment):

- `SAR_TOKEN`: a platform DPO's token (`org_kind` `ops`, scope `referrals:erase`), e.g. from
  `referrals-token --org platform-dpo --kind ops --scope referrals:erase`;
- `SAR_INTAKE_URL` (http://localhost:8001), `SAR_NOTIFICATIONS_URL` (http://localhost:8003);
- `SAR_PROVIDER_URLS`: each charity's advocacy URL, `provider-id=https://...,other-id=https://...`.

The files hold the person's data: they are written with mode 0600, and nothing of them is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from jinja2 import Environment

PROG = "referrals-sar"
PROVIDER, NOTIFICATIONS = "provider", "notifications"  # recipient kinds in intake's disclosures
TIMEOUT = 30


class Unreachable(Exception):
    """A service could not answer: the message is one line with the fix."""


@dataclass(frozen=True)
class Config:
    token: str
    intake_url: str = "http://localhost:8001"
    notifications_url: str = "http://localhost:8003"
    provider_urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        token = env.get("SAR_TOKEN", "").strip()
        if not token:
            raise Unreachable(
                "SAR_TOKEN is not set. Fix: export SAR_TOKEN=$(referrals-token --org platform-dpo --kind ops "
                '--scope "referrals:erase")'
            )
        return cls(
            token=token,
            intake_url=env.get("SAR_INTAKE_URL", cls.intake_url).rstrip("/"),
            notifications_url=env.get("SAR_NOTIFICATIONS_URL", cls.notifications_url).rstrip("/"),
            provider_urls=parse_provider_urls(env.get("SAR_PROVIDER_URLS", "")),
        )


def parse_provider_urls(text: str) -> dict[str, str]:
    urls = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        provider_id, sep, url = item.partition("=")
        if not sep or not provider_id.strip() or not url.strip():
            raise Unreachable(
                f"SAR_PROVIDER_URLS has {item!r}. Fix: list provider-id=URL pairs separated by commas, "
                "e.g. north-charity=http://localhost:8012"
            )
        urls[provider_id.strip()] = url.strip().rstrip("/")
    return urls


Get = Callable[..., Any]  # requests.get's shape: get(url, headers=..., timeout=...) -> a response


def collect(
    referral_id: str, config: Config, *, get: Get = requests.get, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Every service's part: intake's, then each charity's it names (and those they name), then notifications'."""
    parts: list[dict[str, Any]] = []
    intake = _ask("intake", config.intake_url, referral_id, config, get, progress)
    parts.append(intake)
    asked: set[str] = set()
    pending = charities_in(intake["answer"])
    while pending:
        provider_id = pending.pop(0)
        if provider_id in asked:
            continue
        asked.add(provider_id)
        url = config.provider_urls.get(provider_id)
        if url is None:
            raise Unreachable(
                f"charity {provider_id} holds part of this referral but has no URL. Fix: add "
                f"{provider_id}=<its advocacy URL> to SAR_PROVIDER_URLS"
            )
        part = _ask(f"advocacy {provider_id}", url, referral_id, config, get, progress)
        parts.append(part)
        pending += [p for p in charities_in(part["answer"]) if p not in asked]
    parts.append(_ask("notifications", config.notifications_url, referral_id, config, get, progress))
    return {
        "referral_id": referral_id,
        "collected_at": datetime.now(UTC).isoformat(),
        "other_recipients": other_recipients(intake["answer"], asked),
        "parts": parts,
    }


def charities_in(answer: Mapping[str, Any]) -> list[str]:
    """The charities an answer names: intake's record of recipients (its `disclosures` to a provider), then any
    `*provider_id` of its rows (offers, the holder) or of a charity's (its handovers and transitions name the
    charity on the other side). In order, once each."""
    sections = answer.get("sections", {})
    found = [r["recipient_org"] for r in sections.get("disclosures", []) if r.get("recipient_kind") == PROVIDER]
    own = answer.get("provider_id")
    for rows in sections.values():
        for row in rows:
            for key, value in row.items():
                if key.endswith("provider_id") and isinstance(value, str) and value and value != own:
                    found.append(value)
    return list(dict.fromkeys(found))


def other_recipients(intake_answer: Mapping[str, Any], charities: Iterable[str]) -> list[str]:
    """Organisations in intake's record of recipients that are neither a charity asked here nor notifications
    (an organisation the person agreed to share with): they have no such endpoint, and are asked directly."""
    asked = set(charities) | {NOTIFICATIONS}
    rows = intake_answer.get("sections", {}).get("disclosures", [])
    others = {r["recipient_org"] for r in rows if r.get("recipient_kind") not in (PROVIDER, NOTIFICATIONS)}
    return sorted(others - asked)


def _ask(name: str, base_url: str, referral_id: str, config: Config, get: Get, progress) -> dict[str, Any]:
    url = f"{base_url}/v1/subject-access/{referral_id}"
    progress(f"asking {name} ({base_url})")
    try:
        response = get(url, headers={"Authorization": f"Bearer {config.token}"}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise Unreachable(
            f"{name} at {base_url} cannot be reached ({exc.__class__.__name__}). Fix: start it, or correct its URL"
        ) from None
    status = response.status_code
    if status == 404 and name == "intake":
        raise Unreachable(f"intake holds no referral {referral_id}. Fix: check the referral id")
    if status in (401, 403):
        raise Unreachable(
            f"{name} refused the token ({status}). Fix: SAR_TOKEN must be a platform DPO's (org_kind ops, "
            "scope referrals:erase) and not expired"
        )
    if status != 200:
        raise Unreachable(f"{name} at {base_url} answered {status}. Fix: see that service's log and try again")
    try:
        answer = response.json()
    except ValueError:
        raise Unreachable(f"{name} at {base_url} did not answer JSON. Fix: check that the URL is the API's") from None
    return {"service": name, "url": base_url, "answer": answer}


TEMPLATE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Subject access copy: referral {{ copy.referral_id }}</title>
<style>body{font-family:sans-serif;margin:2rem}table{border-collapse:collapse;margin-bottom:1rem}
td,th{border:1px solid #999;padding:.25rem .5rem;text-align:left;vertical-align:top}
pre{margin:0;white-space:pre-wrap}</style></head>
<body>
<h1>Subject access copy: referral {{ copy.referral_id }}</h1>
<p>Collected at {{ copy.collected_at }} from {{ copy.parts | length }} services.</p>
{% if copy.other_recipients %}<p>Also disclosed to (no subject access endpoint, ask them directly):
{{ copy.other_recipients | join(", ") }}</p>{% endif %}
{% for part in copy.parts %}
<h2>{{ part.service }}</h2>
<p>{{ part.url }}, answered at {{ part.answer.generated_at }}</p>
{% for name, rows in part.answer.sections | dictsort %}
<h3>{{ name }}</h3>
{% if rows %}
{% set columns = columns_of(rows) %}
<table><thead><tr>{% for column in columns %}<th scope="col">{{ column }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}<tr>{% for column in columns %}<td>{{ show(row.get(column)) }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% else %}
<p>Nothing held.</p>
{% endif %}
{% endfor %}
{% endfor %}
</body>
</html>
"""


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=1)
    return str(value)


def _columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(column for row in rows for column in row))


def render_html(copy: Mapping[str, Any]) -> str:
    """The copy as a readable page: a heading per service and per section, a table of its rows (autoescaped)."""
    environment = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(TEMPLATE).render(copy=copy, show=_show, columns_of=_columns_of)


def write(copy: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"sar-{copy['referral_id']}"
    files = stem.with_suffix(".json"), stem.with_suffix(".html")
    texts = json.dumps(copy, ensure_ascii=False, indent=2), render_html(copy)
    for path, text in zip(files, texts, strict=True):
        path.touch(mode=0o600)
        path.write_text(text, encoding="utf-8")
    return files


def main(argv: list[str] | None = None, *, get: Get = requests.get, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Collect a referral's subject access copy.")
    parser.add_argument("referral_id")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory for the two files (default: here)")
    args = parser.parse_args(argv)  # a missing argument: usage, exit 2
    try:
        copy = collect(args.referral_id, Config.from_env(env), get=get)
        json_file, html_file = write(copy, args.out)
    except Unreachable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: cannot write to {args.out} ({exc.strerror}). Fix: choose a writable --out", file=sys.stderr)
        return 1
    print(f"wrote {json_file} and {html_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
