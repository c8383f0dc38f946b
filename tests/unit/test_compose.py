"""docker-compose.yml is safe by default: what `docker compose up` would do, read from the file itself.

No Docker engine is needed: the file is loaded with PyYAML (anchors and merge keys resolved as compose resolves
them) and its `${...}` interpolated by `interpolate`, which follows compose's rules for the forms the file uses
(`${X}`, `${X:-default}`, `${X-default}`, `${X:?error}`, `${X?error}`, `$$`) and refuses any other, so a form
this test cannot read fails here rather than passing unread.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DEV_ENV = ROOT / "deploy" / "compose" / "dev.env"
PRODUCTION_ENV = ROOT / "deploy" / "compose" / "production.env.example"
SERVICES = ("intake", "advocacy", "notifications")
# What a deployment must give: without any one of them `docker compose up` stops before starting anything.
SECRETS = (
    "REFERRALS_KEYS",
    "RABBITMQ_PASSWORD",
    "AUTH_ISSUER",
    "AUTH_JWKS_URL",
    "AUTH_TOKEN_URL",
    "DTN_HMAC_KEY",
    "PROVIDER_ID",
    "SEARCH_INDEX_KEY",
    "ADVOCACY_SESSION_SECRET",
    "POSTGRES_PASSWORD",
    "INTAKE_DB_PASSWORD",
    "ADVOCACY_DB_PASSWORD",
    "NOTIFICATIONS_DB_PASSWORD",
)

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\})"
)


class Missing(Exception):
    """A required variable (`${X:?...}` or `${X?...}`) is not given: compose stops with this message."""


def read_env(path: Path) -> dict[str, str]:
    """An env file as compose reads the simple ones here: KEY=VALUE lines, # comments."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _substitute(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise Missing(f"required variable {name} is missing a value: {arg}")
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return value or ""

    result = _REFERENCE.sub(one, text)
    leftover = _REFERENCE.sub("", text).replace("$$", "")
    assert "$" not in leftover, f"a compose interpolation this test cannot read: {text!r}"
    return result


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _substitute(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose(*env_files: Path, **extra: str) -> dict[str, Any]:
    """The file as compose sees it with .env and these env files, later ones winning (--env-file, in order)."""
    env: dict[str, str] = {}
    for path in (ROOT / ".env", *env_files):
        env.update(read_env(path))
    env.update(extra)
    return interpolate(raw(), env)


def production_env() -> dict[str, str]:
    """production.env.example with every blank filled, as an operator would."""
    return {key: value or f"{key.lower()}-" + "x" * 40 for key, value in read_env(PRODUCTION_ENV).items()}


def dev() -> dict[str, Any]:
    return compose(DEV_ENV)


def production() -> dict[str, Any]:
    return compose(**production_env())


def default_services(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a plain `docker compose up` starts: the services in no profile."""
    return {name: svc for name, svc in config["services"].items() if not svc.get("profiles")}


def sources(service: Mapping[str, Any]) -> list[str]:
    return [volume.split(":", 1)[0] for volume in service.get("volumes", [])]


def one_shot(service: Mapping[str, Any]) -> bool:
    return service.get("restart") == "no"


def depends(service: Mapping[str, Any], on: str) -> str | None:
    return (service.get("depends_on") or {}).get(on, {}).get("condition")


# --- refusing to start without real keys ---------------------------------------------------------------------


def test_a_plain_up_refuses_and_says_how_to_run_the_dev_stack():
    with pytest.raises(Missing, match="make compose-dev"):
        compose()


@pytest.mark.parametrize("name", SECRETS)
def test_each_secret_a_deployment_must_give_stops_the_stack_when_missing(name):
    settings = production_env()
    del settings[name]
    with pytest.raises(Missing, match=rf"\b{name}\b"):
        compose(**settings)


@pytest.mark.parametrize("name", ["DTN_HMAC_KEY", "RABBITMQ_PASSWORD", "POSTGRES_PASSWORD", "REFERRALS_KEYS"])
def test_an_empty_secret_counts_as_missing(name):
    with pytest.raises(Missing, match=rf"\b{name}\b"):
        compose(**{**production_env(), name: ""})


def test_the_dev_env_file_and_the_production_example_give_every_setting():
    assert dev()["services"]
    assert production()["services"]
    assert set(SECRETS) <= set(read_env(PRODUCTION_ENV)) & set(read_env(DEV_ENV))


# --- dev keys only in the dev profile ----------------------------------------------------------------------------


def test_only_the_dev_profile_makes_keys():
    config = raw()
    assert config["services"]["keys"]["profiles"] == ["dev"]
    makers = [name for name, svc in config["services"].items() if "--ensure-keys" in str(svc.get("command"))]
    assert makers == ["keys"]


def test_no_container_outside_the_dev_profile_mounts_the_dev_keys_or_names_a_private_key():
    for name, svc in default_services(raw()).items():
        assert "dev-keys" not in sources(svc), name
        assert "private.pem" not in str(svc), name
        assert svc.get("environment", {}).get("AUTH_PRIVATE_KEY_FILE", "${AUTH_PRIVATE_KEY_FILE:-}") == (
            "${AUTH_PRIVATE_KEY_FILE:-}"
        ), name
    for name, svc in default_services(production()).items():
        assert "dev-keys" not in sources(svc), name
        assert not svc.get("environment", {}).get("AUTH_PRIVATE_KEY_FILE"), name


def test_a_deployment_mounts_its_own_key_directory_read_only_and_nothing_private():
    services = default_services(production())
    keys_dir = production_env()["REFERRALS_KEYS"]
    for name, svc in services.items():
        mounts = [v for v in svc.get("volumes", []) if v.endswith(":/app/var/keys:ro")]
        if svc.get("image", "").startswith("referrals-platform"):
            assert mounts == [f"{keys_dir}:/app/var/keys:ro"], name
        for value in (svc.get("environment") or {}).values():
            assert "dev-private" not in str(value) and "dev-public" not in str(value), name


def test_the_dev_stack_mounts_its_keys_and_advocacy_signs_with_the_dev_key():
    services = dev()["services"]
    assert "dev-keys:/app/var/keys" in services["keys"]["volumes"]
    assert "dev-keys:/app/var/keys:ro" in services["advocacy-api"]["volumes"]
    assert services["advocacy-api"]["environment"]["AUTH_PRIVATE_KEY_FILE"] == "/app/var/keys/dev-private.pem"
    for name, svc in services.items():
        if svc.get("image", "").startswith("referrals-platform") and name != "keys":
            # Directly, or through the migration it waits for.
            waits = [svc, *(services[t] for t in svc["depends_on"] if t.endswith("-migrate"))]
            assert any(depends(s, "keys") == "service_completed_successfully" for s in waits), name


# --- demo data ---------------------------------------------------------------------------------------------------


def seeding(config: Mapping[str, Any]) -> dict[str, Any]:
    return {name: svc for name, svc in config["services"].items() if "seed_demo" in str(svc)}


def run_demo_command(service: Mapping[str, Any], tmp_path: Path) -> tuple[int, list[str]]:
    """Run a demo one-shot's shell command with a fake `python` that records what it was asked to run."""
    record = tmp_path / "ran"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {record}\n')
    fake.chmod(0o755)
    argv = service["command"]
    assert argv[:2] == ["sh", "-c"]
    env = {k: str(v) for k, v in service["environment"].items()} | {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    done = subprocess.run(["/bin/sh", "-c", argv[2]], env=env, capture_output=True, text=True, check=False)
    return done.returncode, record.read_text().splitlines() if record.exists() else []


def test_no_api_or_worker_seeds_and_only_demo_one_shots_do():
    assert set(seeding(raw())) == {"intake-demo-data", "advocacy-demo-data"}
    for name, svc in seeding(raw()).items():
        assert one_shot(svc), name


@pytest.mark.parametrize("demo", [None, "false", ""])
def test_without_demo_true_nothing_is_seeded(tmp_path, demo):
    extra = {} if demo is None else {"DEMO": demo}
    for name, svc in seeding(compose(DEV_ENV, **extra)).items():
        code, ran = run_demo_command(svc, tmp_path)
        assert (code, ran) == (0, []), name


def test_demo_true_seeds_the_demo_charity_and_its_advocates(tmp_path):
    services = seeding(compose(DEV_ENV, DEMO="true"))
    ran = [run_demo_command(svc, tmp_path)[1][-1] for svc in services.values()]
    assert sorted(ran) == ["-m services.advocacy.seed_demo", "-m services.intake.seed_demo"]


def test_a_demo_value_other_than_true_or_false_is_refused(tmp_path):
    svc = seeding(compose(DEV_ENV, DEMO="yes"))["intake-demo-data"]
    assert run_demo_command(svc, tmp_path) == (2, [])


# --- migrations ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_are_a_one_shot_that_the_api_and_worker_wait_for(service):
    services = raw()["services"]
    migrate = services[f"{service}-migrate"]
    assert migrate["command"] == ["referrals-migrate", service]
    assert one_shot(migrate)
    for process in ("api", "worker"):
        svc = services[f"{service}-{process}"]
        assert depends(svc, f"{service}-migrate") == "service_completed_successfully"
        assert "referrals-migrate" not in str(svc["command"])


# --- health ------------------------------------------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck():
    for name, svc in raw()["services"].items():
        if not one_shot(svc):
            assert svc.get("healthcheck", {}).get("test"), name


@pytest.mark.parametrize("service", SERVICES)
def test_workers_serve_health_and_metrics_on_every_address_and_are_checked_there(service):
    worker = raw()["services"][f"{service}-worker"]
    assert worker["environment"]["WORKER_PORT"].isdigit()
    assert worker["environment"]["WORKER_HOST"] == "0.0.0.0"  # noqa: S104 (a container's every address)
    assert "os.environ['WORKER_PORT']" in " ".join(worker["healthcheck"]["test"])
    assert "/readyz" in " ".join(worker["healthcheck"]["test"])


def test_the_collector_and_jaeger_are_checked_and_waited_for():
    services = raw()["services"]
    assert "13133" in " ".join(services["otel-collector"]["healthcheck"]["test"])
    assert "14269" in " ".join(services["jaeger"]["healthcheck"]["test"])
    assert depends(services["otel-collector"], "jaeger") == "service_healthy"
    assert depends(services["intake-api"], "otel-collector") == "service_healthy"


def test_every_dependency_exists_and_one_in_a_profile_is_optional_elsewhere():
    services = raw()["services"]
    for name, svc in services.items():
        for target, rule in (svc.get("depends_on") or {}).items():
            assert target in services, (name, target)
            theirs, mine = set(services[target].get("profiles", [])), set(svc.get("profiles", []))
            if theirs and not theirs & mine:
                assert rule.get("required") is False, (name, target)


# --- images --------------------------------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_version_and_matches_env():
    pins = read_env(ROOT / ".env")
    for name, svc in raw()["services"].items():
        match = re.fullmatch(r"\$\{(\w+):-([^}]+)\}", svc["image"])
        assert match, f"{name}: image {svc['image']!r} is not ${{NAME:-default}} with its pin in .env"
        variable, default = match.groups()
        assert pins[variable] == default, f"{name}: .env pins {variable}={pins[variable]}, the file {default}"
        repository, _, tag = default.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {default} has no version tag"
        if svc.get("build") is None:
            assert re.search(r"\d", tag), f"{name}: {default} is pulled, so its tag must be a version"


def test_build_arguments_and_dockerfile_defaults_match_env():
    pins = read_env(ROOT / ".env")
    dockerfiles = {
        "otel-collector": ROOT / "deploy" / "compose" / "otel-collector.Dockerfile",
        "x-app": ROOT / "Dockerfile",
    }
    config = raw()
    for name, dockerfile in dockerfiles.items():
        build = config[name]["build"] if name.startswith("x-") else config["services"][name]["build"]
        for arg, value in build["args"].items():
            assert value == f"${{{arg}:-{pins[arg]}}}", (name, arg)
            assert f"ARG {arg}={pins[arg]}\n" in dockerfile.read_text(), (dockerfile, arg)


def test_the_app_image_runs_as_a_numeric_non_root_user():
    users = re.findall(r"^USER (\S+)$", (ROOT / "Dockerfile").read_text(), flags=re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1] != "0"


# --- the broker --------------------------------------------------------------------------------------------------


def test_rabbitmq_enables_the_plugins_the_platform_needs_and_exposes_its_metrics():
    rabbitmq = raw()["services"]["rabbitmq"]
    [plugins] = [v for v in rabbitmq["volumes"] if v.endswith(":/etc/rabbitmq/enabled_plugins:ro")]
    text = (ROOT / plugins.split(":")[0]).read_text().strip()
    assert text.startswith("[") and text.endswith("].")
    assert {p.strip() for p in text[1:-2].split(",")} >= {
        "rabbitmq_management",
        "rabbitmq_prometheus",
        "rabbitmq_consistent_hash_exchange",
    }
    assert "127.0.0.1:15692:15692" in rabbitmq["ports"]


def test_a_plain_up_publishes_on_loopback_only_and_charity_link_publishes_the_broker():
    config = production()
    for name, svc in default_services(config).items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    link = config["services"]["charity-link"]
    assert link["profiles"] == ["charity-link"]
    assert {p.rsplit(":", 1)[1] for p in link["ports"]} == {"5672", "5671"}
    assert "TCP:rabbitmq:5672" in link["command"][0] and "TCP:rabbitmq:5671" in link["command"][0]


def test_the_tls_lines_name_the_mounted_certificates():
    lines = (ROOT / "deploy" / "rabbitmq" / "tls.conf").read_text()
    assert "listeners.ssl.default = 5671" in lines
    for key in ("cacertfile", "certfile", "keyfile"):
        assert re.search(rf"^ssl_options\.{key} = /etc/rabbitmq/tls/\S+$", lines, flags=re.M), key


# --- monitoring ----------------------------------------------------------------------------------------------


def test_the_monitoring_profile_runs_prometheus_with_the_platforms_configuration():
    prometheus = raw()["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_prometheus_scrapes_every_api_and_worker_where_compose_serves_them():
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    services = raw()["services"]
    for service in SERVICES:
        api, worker = services[f"{service}-api"], services[f"{service}-worker"]
        assert f"{service}-api:{api['environment']['PORT']}" in targets
        assert f"{service}-worker:{worker['environment']['WORKER_PORT']}" in targets
    assert "rabbitmq:15692" in targets
