"""The whole platform as processes (gunicorn APIs and workers) on the real broker and PostgreSQL; the
advocate's page as `make run` seeds it, and the browser that walks it."""

from __future__ import annotations

import os

import pytest

from support.advocate_page import CHROMIUM
from support.stack import platform_stack


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("the browser test needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def running_platform(broker_url, pg_admin_url, dev_keys, make_token, tmp_path_factory):
    with platform_stack(broker_url, pg_admin_url, dev_keys, make_token, tmp_path_factory.mktemp("platform")) as stack:
        yield stack
