"""The operations artefacts in deploy/, checked offline with the tools that own their formats:
Prometheus' promtool (rules, their unit tests, the scrape config), the Kubernetes API schemas
(kubernetes-validate, strict) and docker-compose. Each check is shown to reject a broken copy,
so a pass means something. The dashboard's queries run against a real Prometheus in
tests/integration/test_observability.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agents.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
#: The Kubernetes release the manifests are validated against.
KUBERNETES_VERSION = "1.31.0"
PROMTOOL = shutil.which("promtool")
DOCKER_COMPOSE = shutil.which("docker-compose")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed "
                                    "(apt-get install prometheus; .ci/run installs it)")


def _run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


# -- Prometheus ----------------------------------------------------------------------------------
@needs_promtool
def test_alert_rules_pass_promtool_and_their_unit_tests(tmp_path: Path) -> None:
    rules = DEPLOY / "prometheus" / "alerts.yml"
    checked = _run(str(PROMTOOL), "check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run(str(PROMTOOL), "test", "rules", "alerts.test.yml", "alerts-baseline.test.yml",
                  cwd=rules.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    broken = tmp_path / "alerts.yml"
    broken.write_text(rules.read_text().replace("riskstream_ready == 0", "riskstream_ready =="))
    assert _run(str(PROMTOOL), "check", "rules", str(broken)).returncode != 0


@needs_promtool
def test_prometheus_configuration_passes_promtool() -> None:
    checked = _run(str(PROMTOOL), "check", "config", "--syntax-only",
                   str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_says_what_happened_and_how_bad_it_is() -> None:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"]]
    names = {rule["alert"] for rule in alerts}
    assert {"RiskstreamConsumerLagGrowing", "RiskstreamNoInput", "RiskstreamDeadLetterSpike",
            "RiskstreamAlertRateOffBaseline", "RiskstreamWorkerNotReady"} <= names
    operations = (ROOT / "docs" / "operations.md").read_text()
    for rule in alerts:
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["alert"] in operations, f"docs/operations.md does not explain {rule['alert']}"


def test_the_dashboard_is_provisioned_and_only_queries_metrics_the_worker_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "riskstream.json").read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    exported = (ROOT / "agents" / "observability" / "metrics.py").read_text()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in set(_metric_names(target["expr"])):
                assert name.removesuffix("_total").removesuffix("_bucket") in exported \
                    or name.startswith("process_"), f"{panel['title']}: unknown metric {name}"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "riskstream.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["uid"] == panels[0]["datasource"]["uid"]


def _metric_names(expr: str) -> list[str]:
    import re

    return re.findall(r"\b(riskstream_\w+|process_\w+)", expr)


# -- Kubernetes ----------------------------------------------------------------------------------
def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, document) for path in sorted(K8S.glob("*.yaml"))
            for document in yaml.safe_load_all(path.read_text())
            if document and document.get("kind") != "Kustomization"]


def test_kubernetes_manifests_validate_strictly_against_the_api_schemas() -> None:
    manifests = _manifests()
    kinds = {document["kind"] for _, document in manifests}
    assert {"StatefulSet", "ConfigMap", "Secret", "Service", "PodDisruptionBudget",
            "Job"} <= kinds
    for path, document in manifests:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{path.name}: {error.message}") from error
    # A misspelt field is caught.
    _, statefulset = next(item for item in manifests if item[1]["kind"] == "StatefulSet")
    broken = json.loads(json.dumps(statefulset))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def test_the_worker_manifest_wires_probes_metrics_and_settings_to_what_the_worker_serves() -> None:
    documents = {document["kind"]: document for _, document in _manifests()}
    pod = documents["StatefulSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    config = documents["ConfigMap"]["data"]
    port = int(config["RISKSTREAM_HTTP_PORT"])
    assert container["ports"][0]["containerPort"] == port
    assert config["RISKSTREAM_HTTP_HOST"] == "0.0.0.0"
    annotations = documents["StatefulSet"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert container["resources"]["requests"]["memory"]
    # Every variable the manifests set is a setting the worker reads, with a valid value.
    fields = {f"RISKSTREAM_{name.upper()}" for name in Settings.model_fields}
    secret = documents["Secret"]["stringData"]
    assert set(config) <= fields
    assert {key for key in secret if key.startswith("RISKSTREAM_")} <= fields
    Settings(**{key.removeprefix("RISKSTREAM_").lower(): value
                for key, value in config.items() if "SSL_" not in key})
    assert documents["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics"]
    assert documents["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


# -- docker-compose ------------------------------------------------------------------------------
@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed "
                    "(apt-get install docker-compose; .ci/run installs it)")
def test_the_compose_file_passes_docker_compose_config(tmp_path: Path) -> None:
    checked = _run(str(DOCKER_COMPOSE), "-f", "docker-compose.yml", "config", "--quiet")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace(
        "stop_grace_period: 30s", "stop_grace_period: 30s\n    restart_policy: sometimes"))
    assert _run(str(DOCKER_COMPOSE), "-f", str(broken), "config", "--quiet",
                cwd=tmp_path).returncode != 0


def test_compose_runs_prometheus_and_grafana_with_the_projects_rules_and_dashboard() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert any(volume.startswith("./deploy/grafana/provisioning:") for volume in grafana["volumes"])
    assert any(volume.startswith("./deploy/grafana/dashboards:") for volume in grafana["volumes"])
    for service in (prometheus, grafana, services["worker"]):
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    target = scrape["scrape_configs"][0]["static_configs"][0]["targets"][0]
    assert target == f"worker:{services['worker']['environment']['RISKSTREAM_HTTP_PORT']}"
