"""deploy/k8s: every manifest is a valid Kubernetes object (offline JSON schemas from the
``kubernetes-validate`` package, strict: an unknown or misspelt field fails), and the pieces fit
together: probes, ports, labels, the prediction-log volume, the autoscaler's target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
# The oldest Kubernetes minor still commonly run, and the newest the package knows.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def resources() -> dict[str, dict[str, Any]]:
    out = {}
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            out[doc["kind"]] = doc
    return out


@pytest.fixture(scope="module")
def objs() -> dict[str, dict[str, Any]]:
    return resources()


def container(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = objs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    objs = resources()
    assert set(objs) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    }
    for obj in objs.values():
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_catches_a_misspelt_field(objs: dict[str, dict[str, Any]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(objs["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_probes_point_at_livez_and_readyz_on_port_3000(objs: dict[str, dict[str, Any]]) -> None:
    c = container(objs)
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 3000}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 3000}
    assert c["startupProbe"]["httpGet"]["path"] == "/livez"
    assert {"name": "http", "containerPort": 3000, "protocol": "TCP"} in c["ports"]


def test_runs_as_non_root_with_a_read_only_root(objs: dict[str, dict[str, Any]]) -> None:
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    c = container(objs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs somewhere writable for temporary files.
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}


def test_resources_and_prometheus_annotations(objs: dict[str, dict[str, Any]]) -> None:
    c = container(objs)
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    notes = objs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == "3000"
    assert notes["prometheus.io/path"] == "/metrics"


def test_prediction_log_goes_to_the_persistent_volume(objs: dict[str, dict[str, Any]]) -> None:
    c = container(objs)
    env = {e["name"]: e for e in c["env"]}
    log_path = env["MLCI_PREDICTION_LOG"]["value"]
    assert log_path.endswith(".jsonl")  # `mlci drift --current <folder>` reads *.jsonl
    # One file per pod: $(POD_NAME) must be defined before it is used.
    assert "$(POD_NAME)" in log_path
    names = [e["name"] for e in c["env"]]
    assert names.index("POD_NAME") < names.index("MLCI_PREDICTION_LOG")
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    volumes = {v["name"]: v for v in objs["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes)
    (mount,) = [p for p in mounts if log_path.startswith(p.rstrip("/") + "/")]
    claim = volumes[mounts[mount]]["persistentVolumeClaim"]["claimName"]
    assert claim == objs["PersistentVolumeClaim"]["metadata"]["name"]
    assert objs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_service_hpa_and_pdb_select_the_deployment(objs: dict[str, dict[str, Any]]) -> None:
    deployment = objs["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert objs["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels.items()
    )
    (port,) = objs["Service"]["spec"]["ports"]
    assert port["targetPort"] in ("http", 3000)
    target = objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    hpa = objs["HorizontalPodAutoscaler"]["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count


def test_image_is_the_released_one_and_set_in_one_place(objs: dict[str, dict[str, Any]]) -> None:
    image = container(objs)["image"]
    repo, tag = image.rsplit(":", 1)
    assert repo == "ghcr.io/OWNER/REPO" and tag == "X.Y.Z"
    (entry,) = kustomization()["images"]
    assert entry["name"] == repo
    assert "newTag" in entry or "digest" in entry


def test_names_match_the_documented_rollback_command(objs: dict[str, dict[str, Any]]) -> None:
    """docs/release.md: `kubectl set image deployment/mlci mlci=...` and `kubectl rollout undo`."""
    assert objs["Deployment"]["metadata"]["name"] == "mlci"
    assert container(objs)["name"] == "mlci"
    assert objs["Deployment"]["spec"]["revisionHistoryLimit"] >= 2  # something to undo to
