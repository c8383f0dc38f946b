"""deploy/k8s/ renders, says what the platform needs, and passes the scanners (issue 16, Kubernetes).

Every overlay is rendered with `kubectl kustomize` (kubectl's built-in kustomize); the production render must hold
the operators' resources and the platform's own. The core kinds are validated against Kubernetes' schemas with
`kubernetes-validate` and every render is scanned with checkov: both from a venv of their own (their pins cannot
share the project's), made on first use from deploy/k8s/requirements-tools.txt under ~/.cache/referrals/ (about
30 s), keyed by that file's hash and this Python, behind a lock so parallel runs make it once.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
TOOLS = K8S / "requirements-tools.txt"
KUBERNETES_VERSION = "1.32.0"  # kubectl's on these machines: the oldest cluster the manifests are meant for
# The API groups whose schemas kubernetes-validate holds; the operators' kinds are checked by the assertions below.
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
# The only checkov policies skipped, each with its reason in deploy/k8s/.checkov.yaml.
SKIPPED_POLICIES = {"CKV_K8S_35", "CKV_K8S_43"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_manifests", ROOT / "scripts" / "k8s_manifests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl not found: install kubectl v1.32 or later (its built-in kustomize renders deploy/k8s)")
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"kubectl kustomize overlays/{overlay}: {result.stderr.strip()}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def _of(docs: list[dict[str, Any]], kind: str, group: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (group is None or d["apiVersion"].startswith(group + "/"))]


def _named(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _of(docs, kind)}


# --- generated from the platform's sources -------------------------------------------------------------------------


def test_generated_manifests_equal_what_the_generator_writes():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "k8s_manifests.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_a_charity_gets_the_broker_permissions_add_provider_sh_sets(tmp_path):
    """The Topology Operator's resources give a charity exactly what deploy/rabbitmq/add-provider.sh gives it."""
    calls = tmp_path / "calls"
    fake = tmp_path / "rabbitmqctl"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\037" "$@" >> {calls}\nprintf "\\n" >> {calls}\n')
    fake.chmod(0o755)
    env = os.environ | {
        "RABBITMQCTL": str(fake),
        "PROVIDER_AMQP_PASSWORD": "not-used",
        "CATALOGUE_PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "rabbitmq" / "add-provider.sh"), "north-west-charity"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    set_by_script = [line.split("\x1f")[:-1] for line in calls.read_text().splitlines()]
    permissions = next(c for c in set_by_script if c[1] == "set_permissions")
    topics = {c[5]: (c[6], c[7]) for c in set_by_script if c[1] == "set_topic_permissions"}

    generated = _generator().charity_permissions("north-west-charity")
    assert permissions[5:] == [generated["configure"], generated["write"], generated["read"]]
    assert topics == generated["topics"]


def test_a_charity_added_by_its_id_renders_its_instance_user_and_database(tmp_path):
    """What `k8s_manifests.py charity <id>` writes, listed in an overlay, is that charity's whole instance."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    for path, text in _generator().charity_files("east-charity").items():
        (tree / path.relative_to(K8S)).parent.mkdir(parents=True, exist_ok=True)
        (tree / path.relative_to(K8S)).write_text(text)
    overlay = tree / "overlays" / "try"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../../base]\ncomponents: [../../charities/east-charity]\nnamespace: try\n"
    )
    kubectl = shutil.which("kubectl") or pytest.fail("kubectl not found: install kubectl v1.32 or later")
    result = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]

    assert {"advocacy-east-charity-api", "advocacy-east-charity-worker"} <= set(_named(docs, "Deployment"))
    assert "advocacy-east-charity-db" in _named(docs, "Cluster")
    username = _named(docs, "Secret")["advocacy-east-charity-username"]["data"]
    assert {k: base64.b64decode(v) for k, v in username.items()} == {"username": b"advocacy-east-charity"}
    env = _env(_container(_named(docs, "Deployment")["advocacy-east-charity-worker"]))
    assert env["PROVIDER_ID"]["value"] == "east-charity"
    assert env["AMQP_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "advocacy-east-charity-user-credentials"
    read = _named(docs, "TopicPermission")["advocacy-east-charity-referrals"]["spec"]["permissions"]["read"]
    assert r"referral\.offered\.east-charity" in read and "north-west-charity" not in read


def test_the_generator_refuses_a_charity_id_kubernetes_cannot_name():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "k8s_manifests.py"), "charity", "Not_An-Id"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "lower-case letters, digits and hyphens" in result.stderr


# --- what the production render holds ------------------------------------------------------------------------------


def test_production_renders_the_operators_resources_and_the_platform(rendered):
    docs = rendered["production"]
    for kind, group in [
        ("RabbitmqCluster", "rabbitmq.com"),
        ("Vhost", "rabbitmq.com"),
        ("Exchange", "rabbitmq.com"),
        ("User", "rabbitmq.com"),
        ("Permission", "rabbitmq.com"),
        ("TopicPermission", "rabbitmq.com"),
        ("Cluster", "postgresql.cnpg.io"),
        ("ScheduledBackup", "postgresql.cnpg.io"),
        ("ObjectStore", "barmancloud.cnpg.io"),
        ("PodMonitor", "monitoring.coreos.com"),
        ("ServiceMonitor", "monitoring.coreos.com"),
        ("PrometheusRule", "monitoring.coreos.com"),
        ("Deployment", "apps"),
        ("Job", "batch"),
        ("NetworkPolicy", "networking.k8s.io"),
        ("PodDisruptionBudget", "policy"),
        ("HorizontalPodAutoscaler", "autoscaling"),
    ]:
        assert _of(docs, kind, group), f"no {kind} ({group}) in the production render"

    rabbit = _of(docs, "RabbitmqCluster")[0]["spec"]
    assert rabbit["replicas"] == 3
    assert {"rabbitmq_prometheus", "rabbitmq_consistent_hash_exchange"} <= set(rabbit["rabbitmq"]["additionalPlugins"])
    assert _of(docs, "Vhost")[0]["spec"]["defaultQueueType"] == "quorum"
    assert {e["spec"]["name"] for e in _of(docs, "Exchange")} == {
        "referrals",
        "referrals.dlx",
        "referrals.requeue",
        "referrals.parked",
    }
    assert {d["metadata"]["namespace"] for d in docs} == {"referrals"}


def test_each_instance_has_an_api_a_worker_a_migration_and_a_backed_up_database(rendered):
    docs = rendered["production"]
    deployments, jobs = _named(docs, "Deployment"), _named(docs, "Job")
    clusters, backups = _named(docs, "Cluster"), _of(docs, "ScheduledBackup")
    for name, service in [
        ("intake", "intake"),
        ("notifications", "notifications"),
        ("advocacy-north-west-charity", "advocacy"),
    ]:
        api, worker = deployments[f"{name}-api"], deployments[f"{name}-worker"]
        assert _container(api)["command"][-1] == f"services.{service}.app:create_app()"
        assert _container(worker)["command"] == ["python", "-m", f"services.{service}.worker"]
        assert _container(jobs[f"{name}-migrate"])["command"] == ["referrals-migrate", service]
        assert clusters[f"{name}-db"]["spec"]["instances"] == 3
        assert clusters[f"{name}-db"]["spec"]["plugins"][0]["isWALArchiver"] is True
        assert f"{name}-db" in {b["spec"]["cluster"]["name"] for b in backups}
        assert worker["spec"]["strategy"]["type"] == "Recreate"  # never two consumers of its queue at once
    assert _named(docs, "HorizontalPodAutoscaler")["intake-api"]["spec"]["scaleTargetRef"]["name"] == "intake-api"


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_are_probed_on_their_worker_port_on_the_pod_address(rendered, overlay):
    workers = [d for d in _of(rendered[overlay], "Deployment") if d["metadata"]["name"].endswith("-worker")]
    assert workers
    for worker in workers:
        container, env = _container(worker), _env(_container(worker))
        assert env["WORKER_HOST"]["value"] == "0.0.0.0"  # noqa: S104 - what the pod is told, not a bind here
        assert container["ports"] == [
            {"name": "metrics", "containerPort": int(env["WORKER_PORT"]["value"]), "protocol": "TCP"}
        ]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_unprivileged_on_a_read_only_root(rendered, overlay):
    for workload in _of(rendered[overlay], "Deployment") + _of(rendered[overlay], "Job"):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert {"requests", "limits"} <= container["resources"].keys(), name
            assert ":" in container["image"] or "@" in container["image"], f"{name}: image not pinned"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_only_referenced(rendered, overlay):
    """The operators make the credentials; the only Secrets rendered hold a broker user's name (public: the
    catalogue names it) for the Topology Operator to create that user with a password it generates."""
    docs = rendered[overlay]
    for secret in _of(docs, "Secret"):
        assert set(secret.get("data", {})) == {"username"}, secret["metadata"]["name"]
    for workload in _of(docs, "Deployment") + _of(docs, "Job"):
        for name, entry in _env(_container(workload)).items():
            if any(word in name for word in ("PASSWORD", "SECRET", "KEY")) and not name.endswith("_FILE"):
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{workload['metadata']['name']}: {name}"


def test_network_policies_deny_by_default_and_only_notifications_worker_reaches_the_internet(rendered):
    """Beside the notifications worker's webhooks, only the broker's and the databases' pods reach addresses
    outside the cluster (the Kubernetes API, the object store); no API or other worker does."""
    policies = _named(rendered["production"], "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    by_address = {
        name
        for name, policy in policies.items()
        for rule in policy["spec"].get("egress", [])
        if any("ipBlock" in peer for peer in rule.get("to", []))
    }
    assert by_address == {"notifications-worker-webhooks", "rabbitmq", "databases"}
    assert policies["notifications-worker-webhooks"]["spec"]["podSelector"]["matchLabels"] == {
        "referrals.io/instance": "notifications",
        "referrals.io/process": "worker",
    }
    assert policies["rabbitmq"]["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "referrals-rabbitmq"}
    }
    assert policies["databases"]["spec"]["podSelector"]["matchExpressions"][0]["key"] == "cnpg.io/cluster"


def test_every_platform_target_is_labelled_with_its_service_and_process(rendered):
    monitors = _named(rendered["production"], "PodMonitor")
    for name in ("referrals-apis", "referrals-workers"):
        endpoint = monitors[name]["spec"]["podMetricsEndpoints"][0]
        targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
        assert targets["service"] == ["__meta_kubernetes_pod_label_referrals_io_service"]
        assert targets["process"] == ["__meta_kubernetes_pod_label_referrals_io_process"]
    # The alerts read rabbitmq_queue_messages_ready by queue: the per-object endpoint only (/metrics sums them).
    rabbit = _named(rendered["production"], "ServiceMonitor")["referrals-rabbitmq"]["spec"]["endpoints"]
    assert [e["path"] for e in rabbit] == ["/metrics/per-object"]
    for deployment in _of(rendered["production"], "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if "referrals.io/process" in labels:
            assert labels["referrals.io/service"] in {"intake", "advocacy", "notifications"}
            assert labels["referrals.io/process"] in {"api", "worker"}


def test_dev_has_one_of_everything_demo_data_and_no_backups(rendered):
    docs = rendered["dev"]
    assert not _of(docs, "ScheduledBackup") and not _of(docs, "ObjectStore")
    assert all("plugins" not in c["spec"] for c in _of(docs, "Cluster", "postgresql.cnpg.io"))
    assert _of(docs, "RabbitmqCluster")[0]["spec"]["replicas"] == 1
    demo = _env(_container(_named(docs, "Deployment")["advocacy-demo-charity-worker"]))
    assert demo["AUTO_ACCEPT"]["value"] == "true"
    seeds = {name: _container(j)["command"] for name, j in _named(docs, "Job").items() if name.endswith("-seed-demo")}
    assert seeds == {
        "intake-seed-demo": ["python", "-m", "services.intake.seed_demo"],
        "advocacy-demo-charity-seed-demo": ["python", "-m", "services.advocacy.seed_demo"],
    }
    assert not [j for j in _of(rendered["production"], "Job") if j["metadata"]["name"].endswith("-seed-demo")]


# --- validated and scanned --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools() -> Path:
    """The venv's bin/ with kubernetes-validate and checkov, made once per requirements file and Python."""
    key = hashlib.sha256(TOOLS.read_bytes() + sys.version.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "referrals"
    cache.mkdir(parents=True, exist_ok=True)
    home = cache / f"k8s-tools-{key}"
    with open(cache / f"k8s-tools-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run waits here, then finds the venv made
        if not (home / "complete").exists():
            shutil.rmtree(home, ignore_errors=True)
            venv.create(home, with_pip=True)
            result = subprocess.run(
                [str(home / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(TOOLS)],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.fail(
                    f"cannot install {TOOLS.relative_to(ROOT)} into {home}: {last} (fix: reach the package index)"
                )
            (home / "complete").write_text("")
    return home / "bin"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_kinds_are_valid_kubernetes(rendered, tools, tmp_path, overlay):
    core = [d for d in rendered[overlay] if d["apiVersion"] in CORE_GROUPS]
    (tmp_path / "core.yaml").write_text(yaml.safe_dump_all(core))
    result = subprocess.run(
        [
            str(tools / "kubernetes-validate"),
            "--strict",
            "--quiet",
            "-k",
            KUBERNETES_VERSION,
            str(tmp_path / "core.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_nothing(rendered, tools, tmp_path, overlay):
    config = yaml.safe_load((K8S / ".checkov.yaml").read_text())
    assert set(config["skip-check"]) == SKIPPED_POLICIES, "a skipped checkov policy needs its reason in .checkov.yaml"
    (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(rendered[overlay]))
    result = subprocess.run(
        [str(tools / "checkov"), "--config-file", str(K8S / ".checkov.yaml"), "-f", f"{overlay}.yaml", "-o", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
        env=os.environ | {"BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 0 and failed == []
