"""A real Prometheus (Debian's, /usr/bin/prometheus) scrapes the running platform, every API's /metrics and every
worker's on its WORKER_PORT, labelled `service` and `process` as deploy/prometheus and the PodMonitors label
them, and sees the platform's series: each target up, the referral's POST timed, the messages it made handled by
intake's and notifications' consumers, every process ready; and no label holds an id or anything about the
person."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from support.canaries import CANARIES, canaries_in, canary_referral
from support.processes import free_port
from support.waiting import wait_until

PROMETHEUS = Path("/usr/bin/prometheus")
AGENCY = "met-police"
AGENCY_SCOPES = "referrals:write referrals:read subscriptions:write"


@pytest.fixture(scope="module")
def prometheus(running_platform, tmp_path_factory):
    """Prometheus scraping every process of the platform each second; stopped by its PID at the end."""
    if not PROMETHEUS.exists():
        pytest.fail("the scrape test needs Debian's Prometheus at /usr/bin/prometheus: apt-get install prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    targets = running_platform.platform.targets
    scrape = [
        {"targets": [address], "labels": {"service": service, "process": kind}}
        for service, kind, address in sorted(targets.values())
    ]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "referrals", "static_configs": scrape}],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    popen = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url, popen, workdir), timeout=60)
        yield Prometheus(url, len(targets))
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=5)
        log.close()
        shutil.rmtree(workdir / "data", ignore_errors=True)


class Prometheus:
    def __init__(self, url: str, targets: int):
        self.url, self.targets = url, targets

    def query(self, promql: str) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["data"]["result"]

    def series(self) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/series", params={"match[]": '{__name__=~".+"}'}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["data"]


def _ready(url: str, popen: subprocess.Popen, workdir: Path) -> bool:
    if popen.poll() is not None:
        raise AssertionError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def referral_id(running_platform):
    """A referral with a canary in every personal field, posted and followed to the agency's webhook."""
    agency = running_platform.headers(AGENCY, "police", AGENCY_SCOPES)
    running_platform.subscribe(AGENCY, AGENCY_SCOPES, "scrape", ["referral.allocated"])
    response = requests.post(f"{running_platform.url('intake')}/v1/referrals", json=canary_referral(),
                             headers=agency, timeout=10)  # fmt: skip
    assert response.status_code == 201, response.text
    found = response.json()["id"]

    def allocated(items):
        return [i for i in items if json.loads(i.body)["data"].get("referral_id") == found]

    running_platform.webhooks.wait_for(allocated, timeout=60)
    return found


def test_prometheus_sees_every_process_up_ready_and_the_referrals_way_through(prometheus, referral_id):
    def every_target(promql: str):
        found = prometheus.query(promql)
        return found if len(found) == prometheus.targets else None

    up = wait_until(lambda: every_target("up == 1"), timeout=60)
    assert {(r["metric"]["service"], r["metric"]["process"]) for r in up} >= {
        ("intake", "api"), ("intake", "worker"), ("notifications", "api"), ("notifications", "worker"),
        ("advocacy", "api"), ("advocacy", "worker"),
    }  # fmt: skip
    wait_until(lambda: every_target("referrals_ready == 1"), timeout=60)

    post = 'http_server_request_duration_seconds_count{service="intake",process="api",route="/v1/referrals",' \
           'method="POST",status="201"} >= 1'  # fmt: skip
    assert wait_until(lambda: prometheus.query(post), timeout=60)
    for queue in ("intake", "notifications"):
        handled = f'sum by (queue) (referrals_messages_consumed_total{{queue="{queue}",outcome="handled"}}) >= 1'
        assert wait_until(lambda: prometheus.query(handled), timeout=60), f"nothing handled on {queue}"  # noqa: B023
    parked = prometheus.query('referrals_messages_parked{process="worker"}')
    assert {r["metric"]["queue"] for r in parked} >= {"intake", "notifications"}
    assert all(float(r["value"][1]) == 0 for r in parked)


def test_no_series_carries_a_referral_id_or_anything_about_the_person_in_a_label(prometheus, referral_id):
    wait_until(lambda: prometheus.query('referrals_messages_consumed_total{queue="notifications"}'), timeout=60)
    labels = json.dumps(prometheus.series())
    assert referral_id not in labels
    assert canaries_in(labels) == set(), f"canaries in labels: {canaries_in(labels)} ({CANARIES.keys()})"
