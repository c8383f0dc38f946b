"""The whole platform as processes (gunicorn APIs and workers) on the real broker and PostgreSQL."""

from __future__ import annotations

import pytest

from support.stack import platform_stack


@pytest.fixture(scope="module")
def running_platform(broker_url, pg_admin_url, dev_keys, make_token, tmp_path_factory):
    with platform_stack(broker_url, pg_admin_url, dev_keys, make_token, tmp_path_factory.mktemp("platform")) as stack:
        yield stack
