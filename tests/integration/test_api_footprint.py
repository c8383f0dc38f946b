"""An API process loads only what it uses: it never talks to the broker, so pika stays out of its memory
(each of the three APIs' gunicorn workers would carry it, ~4 MiB apiece)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.processes import ROOT


@pytest.mark.parametrize("service", ["intake", "advocacy", "notifications"])
def test_an_api_process_does_not_load_pika(service, fresh_database, dev_keys):
    from services.migrate import migrate

    url = fresh_database(service)
    migrate(service, url)
    code = (
        f"import sys; from services.{service}.app import create_app; create_app(); "
        "print(sorted(m for m in sys.modules if m == 'pika' or m.startswith('pika.')))"
    )
    env = {
        f"{service.upper()}_DATABASE_URL": url,
        "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # tracing set up as deployed; nothing is sent
        "PROVIDER_ID": "demo-charity",  # advocacy only
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"  # after any log lines
