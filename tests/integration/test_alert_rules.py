"""The alert rules, their tests, the runbook, the scrape configuration and the dashboard agree with each other and
with the metrics the platform exports (deploy/prometheus/, deploy/RUNBOOK.md, deploy/grafana/, shared.metrics).

promtool (Debian's `prometheus` package, which .ci/run installs) checks the rules and the configuration and runs
alerts.test.yml; the rest is read here: every alert has a test that fires it and one that does not, a runbook
section at its `runbook_url`, a reason in a comment, and only bounded labels in its annotations; every metric a
rule or a panel uses is one shared.metrics defines, or one of the few built-ins named below."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
SCRAPE_CONFIG = PROMETHEUS / "prometheus.yml"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "referrals-dashboard.json"

# Not the platform's: Prometheus' own `up`, and what RabbitMQ's rabbitmq_prometheus plugin serves per queue.
BUILT_INS = frozenset({"up", "rabbitmq_queue_messages_ready", "rabbitmq_queue_consumers"})
# The figures issue 16 names: each has a panel.
ISSUE_METRICS = (
    "http_server_request_duration_seconds_count",
    "referrals_messages_consumed_total",
    "referrals_messages_parked",
    "referrals_outbox_pending",
    "referrals_outbox_oldest_pending_seconds",
    "referrals_webhook_deliveries_total",
    "referrals_webhook_oldest_pending_seconds",
    "referrals_offers_overdue",
    "referrals_escalations_open",
    "referrals_clocks_breached_total",
    "referrals_transitions_missed_total",
    "referrals_erasures_overdue",
    "referrals_ready",
    "referrals_dependency_up",
)
# Labels an annotation may show: bounded sets, never an id or anything about a person.
BOUNDED_LABELS = frozenset(
    {"service", "process", "instance", "job", "queue", "vhost", "clock", "transition", "route", "method"}
)
SEVERITIES = frozenset({"critical", "warning"})
TEAMS = frozenset({"platform", "coordinators", "advocacy", "data-protection"})
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
_PROMQL_WORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan"})


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail(
            "promtool not found. Fix: apt-get install prometheus (Debian's package has promtool; .ci/run installs it)",
            pytrace=False,
        )
    return found


def run(promtool: str, *args: str) -> None:
    done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}{done.stderr}"


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL (or Grafana) expression selects: not its functions, keywords, label names,
    label values, durations or numbers."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    found = re.findall(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
    return {name for name in found if name.lower() not in _PROMQL_WORDS}


def defined_metrics() -> set[str]:
    """Every series name shared.metrics exports: its counters, histograms and gauges with the suffixes the text
    format gives them, and the figures' names."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
        elif isinstance(value, str) and re.fullmatch(r"referrals_[a-z_]+", value):
            names.add(value)
    return names


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    targets = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    # A variable's label_values(<selector>, <label name>): the selector is PromQL, the label name is not a metric.
    variables = [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return targets + [re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", query) for query in variables]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_name_reader_finds_metrics_not_functions_labels_or_durations():
    expr = (
        'sum by (service, le) (rate(a_total{outcome="failed", queue!~`x\\.y`}[$__rate_interval])) > 4 * 3600 '
        "or (b unless b offset 1h) and on (job) (up offset 1h) or histogram_quantile(0.95, c_bucket) > bool 0"
    )
    assert metric_names(expr) == {"a_total", "b", "up", "c_bucket"}


def test_promtool_accepts_the_rules(promtool):
    run(promtool, "check", "rules", str(ALERTS))


def test_every_alert_passes_its_unit_tests(promtool):
    run(promtool, "test", "rules", str(ALERT_TESTS))


def test_promtool_accepts_the_scrape_configuration_and_its_rule_file(promtool):
    run(promtool, "check", "config", str(SCRAPE_CONFIG))
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    labelled = {
        (static["labels"]["service"], static["labels"]["process"])
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        if "labels" in static
    }
    assert labelled == {(s, p) for s in ("intake", "advocacy", "notifications") for p in ("api", "worker")}
    rabbitmq = [job for job in config["scrape_configs"] if job["job_name"] == "rabbitmq"]
    assert rabbitmq and rabbitmq[0]["static_configs"][0]["targets"] == ["rabbitmq:15692"]


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    # promtool parses a rule's expression: each panel's query, its Grafana variables filled in, as a recording rule.
    filled = [e.replace("$service", ".*").replace("$__rate_interval", "1m") for e in dashboard_expressions()]
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(filled)]
    queries = tmp_path / "dashboard-queries.yml"
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run(promtool, "check", "rules", str(queries))


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not():
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    held = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts no test fires"
    assert names - held == set(), "alerts no test holds back (below threshold, before for:)"
    assert (fired | held) - names == set(), "tests of alerts that do not exist"


def test_every_alert_is_labelled_annotated_and_points_at_its_runbook_section():
    anchors = {github_anchor(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    for rule in alert_rules():
        name, labels, notes = rule["alert"], rule["labels"], rule["annotations"]
        assert labels["severity"] in SEVERITIES, name
        assert labels["team"] in TEAMS, name
        assert notes["summary"] and notes["description"], name
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path == "deploy/RUNBOOK.md", name
        assert anchor in anchors, f"{name}: no section #{anchor} in deploy/RUNBOOK.md"
        shown = set(re.findall(r"\$labels\.(\w+)", notes["summary"] + notes["description"]))
        assert shown <= BOUNDED_LABELS, f"{name} shows labels that are not bounded sets: {shown - BOUNDED_LABELS}"


def test_every_alert_says_why_in_a_comment_above_it():
    lines = ALERTS.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("- alert:"):
            assert lines[number - 1].strip().startswith("#"), f"no reason given above {line.strip()}"


def test_rules_and_dashboard_use_only_metrics_the_platform_defines():
    known = defined_metrics() | BUILT_INS
    for rule in alert_rules():
        assert metric_names(rule["expr"]) - known == set(), rule["alert"]
    for expr in dashboard_expressions():
        assert metric_names(expr) - known == set(), expr


def test_the_dashboard_shows_every_figure_on_the_datasource_chosen():
    board = json.loads(DASHBOARD.read_text())
    assert 36 <= board["schemaVersion"] <= 41
    assert [v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    used = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    assert set(ISSUE_METRICS) - used == set(), "figures with no panel"
