"""The production files in deploy/: they parse, they name only metrics and settings that exist, the alert rules
pass promtool's check and unit tests, and the Kubernetes manifests render and validate against the API schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from prometheus_client import generate_latest

from router.metrics import Metrics
from router.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S_VERSION = "1.32.0"
PROMTOOL = shutil.which("promtool")


def _exposed_names() -> set[str]:
    """Every sample name editgate's /metrics can carry (counters end in _total, histograms in _bucket/...)."""
    text = generate_latest(Metrics(tenant_labels=True).registry).decode()
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if kind == "counter":
            base = name.removesuffix("_total")
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
        else:
            names.add(name)
    return names


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\beditgate_[a-z_]+", expr))


def _settings_env_names() -> set[str]:
    names = {f"EDITGATE_{name.upper()}" for name in Settings.model_fields}
    aliases = {f.validation_alias for f in Settings.model_fields.values() if isinstance(f.validation_alias, str)}
    return names | aliases | {"EDITGATE_WORKERS"}  # --workers is the serve command's (envvar EDITGATE_WORKERS)


def test_the_dashboard_parses_and_draws_only_metrics_editgate_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/editgate.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for needed in ("Edits/s", "Error rate", "p50", "p95", "p99", "Cost per hour by provider", "tenant", "Fallbacks",
                   "Breaker", "In flight and queued", "Event-loop lag"):  # fmt: skip
        assert needed in titles, needed
    unknown = set().union(*map(_metric_names, exprs)) - _exposed_names()
    assert not unknown, f"dashboard queries metrics editgate does not export: {unknown}"


def test_the_alert_rules_name_only_metrics_editgate_exports() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert not set().union(*map(_metric_names, exprs)) - _exposed_names()


def test_promtool_checks_the_rules_and_config_and_runs_the_rule_unit_tests() -> None:
    assert PROMTOOL, "promtool is missing: `apt-get install prometheus` (.ci/run installs it)"
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"],
                 ["check", "config", "prometheus.yml"]):  # fmt: skip
        done = subprocess.run([PROMTOOL, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_stack_has_two_replicas_on_shared_services_and_real_settings() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"editgate", "migrate", "postgres", "redis", "minio", "minio-bucket", "prometheus", "grafana"} <= set(
        services
    )
    assert services["editgate"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["editgate", "migrate"]
    env = services["editgate"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and env["EDITGATE_BLOB_URL"].startswith("s3://")
    assert env["REDIS_URL"].startswith("redis://")
    unknown = {k for k in env if k.startswith("EDITGATE_")} - _settings_env_names()
    assert not unknown, f"compose sets settings editgate does not have: {unknown}"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"compose mounts a missing file: {source}"


def _rendered_manifests() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl:
        done = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    kustomization = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())  # no kubectl: the bare files
    return [doc for f in kustomization["resources"] for doc in yaml.safe_load_all((DEPLOY / "k8s" / f).read_text())]


def test_the_kubernetes_manifests_render_and_validate_against_the_api_schema() -> None:
    docs = _rendered_manifests()
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    by_kind = {doc["kind"]: doc for doc in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job", "ConfigMap"} <= set(
        by_kind
    )
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    hpa_metrics = [m["pods"]["metric"]["name"] for m in by_kind["HorizontalPodAutoscaler"]["spec"]["metrics"]
                   if m["type"] == "Pods"]  # fmt: skip
    assert hpa_metrics == ["editgate_in_flight_edits"] and hpa_metrics[0] in _exposed_names()
    job = by_kind["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["editgate", "migrate"]
    unknown = {k for k in by_kind["ConfigMap"]["data"] if k.startswith("EDITGATE_")} - _settings_env_names()
    assert not unknown, f"the ConfigMap sets settings editgate does not have: {unknown}"
    secret_keys = {line.split("=", 1)[0] for line in (DEPLOY / "k8s/secret.example.env").read_text().splitlines()
                   if line and not line.startswith("#")}  # fmt: skip
    assert {"DATABASE_URL", "REDIS_URL", "EDITGATE_LINK_KEYS", "AWS_ACCESS_KEY_ID"} <= secret_keys
