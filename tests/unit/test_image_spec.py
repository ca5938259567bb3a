"""The release image's recipe, checked without Docker: the `docker run` options `make test-image`
derives from deploy/k8s/deployment.yaml, the serving-only requirements, bentofile.yaml's image
settings. (The image itself: tests/image, run by `make test-image`.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlci.errors import UserError
from mlci.serving import docker, image_run, packaging
from tests.helpers import EXAMPLE, REPO

BENTOFILE = yaml.safe_load((REPO / "bentofile.yaml").read_text())


def options(spec: image_run.RunSpec) -> list[tuple[str, str]]:
    opts = spec.options
    return [(opts[i], opts[i + 1]) for i in range(len(opts) - 1) if opts[i].startswith("--")]


def test_run_spec_is_the_manifest_security_context_and_mounts() -> None:
    spec = image_run.run_spec(REPO / image_run.DEPLOYMENT, volume="logs-vol", pod_name="pod-7")
    pairs = options(spec)
    assert "--read-only" in spec.options
    assert ("--user", "1034:1034") in pairs and ("--group-add", "1034") in pairs
    assert ("--cap-drop", "ALL") in pairs
    assert ("--security-opt", "no-new-privileges") in pairs
    assert ("--memory", "1g") in pairs and ("--cpus", "1.0") in pairs
    tmpfs = {value.split(":")[0] for flag, value in pairs if flag == "--tmpfs"}
    assert tmpfs == {"/tmp", "/home/bentoml/prometheus_multiproc_dir"}
    assert spec.log_path == "/home/bentoml/logs/predictions-pod-7.jsonl"
    assert ("--mount", "type=volume,source=logs-vol,target=/home/bentoml/logs") in pairs
    assert ("--env", "MLCI_PREDICTION_LOG=/home/bentoml/logs/predictions-pod-7.jsonl") in pairs


def test_the_log_claim_is_mounted_on_the_image_s_own_log_folder() -> None:
    """One log folder everywhere: the image makes it (owned by its user), bentofile.yaml logs
    there, and the manifest mounts its volume there."""
    env = {e["name"]: e["value"] for e in BENTOFILE["envs"]}
    folder = str(Path(env["MLCI_PREDICTION_LOG"]).parent)
    spec = image_run.run_spec(REPO / image_run.DEPLOYMENT, volume="v")
    assert spec.log_mount == folder == "/home/bentoml/logs"
    template = (REPO / BENTOFILE["docker"]["dockerfile_template"]).read_text()
    assert "chown bentoml:bentoml" in template and folder in template


def test_bentofile_builds_on_the_slim_base_without_analytics() -> None:
    docker_options = BENTOFILE["docker"]
    # distro: debian would install build-essential and git (650 MB) on top of the base.
    assert docker_options["base_image"] == "python:3.11-slim"
    assert "distro" not in docker_options and "system_packages" not in docker_options
    env = {e["name"]: e["value"] for e in BENTOFILE["envs"]}
    assert env["BENTOML_DO_NOT_TRACK"] == "True"


def test_an_unknown_manifest_volume_kind_is_named(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / image_run.DEPLOYMENT).read_text())
    pod = doc["spec"]["template"]["spec"]
    pod["volumes"][0] = {"name": pod["volumes"][0]["name"], "hostPath": {"path": "/x"}}
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match="no Docker stand-in for it"):
        image_run.run_spec(path, volume="v")


def test_base_image_and_its_stand_in(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("# comment\nFROM python:3.11-slim as base-container\nRUN true\n")
    assert docker.base_image_of(dockerfile) == "python:3.11-slim"
    assert docker._python_version("python:3.11-slim") == "3.11"
    with pytest.raises(UserError, match="has no Debian stand-in"):
        docker._python_version("nvidia/cuda:12.2.0-runtime-ubuntu22.04")


def _uv() -> str:
    uv = shutil.which("uv") or str(REPO / ".tools/bin/uv")
    if not Path(uv).is_file():
        pytest.skip("no uv on PATH and none in .tools/ (run `make setup` once)")
    return uv


def _names(requirements: Path) -> set[str]:
    lines = requirements.read_text().splitlines()
    return {x.split("==")[0].strip().lower().replace("_", "-") for x in lines if "==" in x}


def test_serving_requirements_hold_what_the_service_imports_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV", _uv())
    monkeypatch.chdir(REPO)
    names = _names(packaging.export_requirements(tmp_path / "requirements.txt"))
    for absent in ("dvc", "matplotlib", "ruamel-yaml", "pyarrow", "pytest", "zizmor"):
        assert absent not in names, f"{absent} would be installed in the serving image"
    # Every distribution a worker imports: the service, and the model with scikit-learn.
    script = (
        "import sys, importlib.metadata as m\n"
        "import mlci.serving.service, skops.io, sklearn.pipeline, sklearn.compose\n"
        "found = m.packages_distributions()\n"
        "tops = {k.split('.')[0] for k in list(sys.modules)}\n"
        "print('\\n'.join(sorted({d for t in tops for d in found.get(t, [])})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE / "src"), "MLCI_PREDICTION_LOG": ""}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    ).stdout
    imported = {d.lower().replace("_", "-") for d in out.split()} - {"mlci", "setuptools"}
    # Imported only because this environment has them (optional imports of pandas, pandera and
    # friends); the image runs without them (`make test-image`).
    optional = {"pyarrow", "pytest", "pluggy", "iniconfig", "charset-normalizer"}
    # scikit-learn's array-API shim imports Dask when it is installed (the dev environment has the
    # `dask` extra for the search and batch scoring); without it, the shim skips Dask.
    optional |= {"dask", "distributed", "toolz", "lazy-importer", "zipp", "importlib-metadata"}
    optional |= {"tblib", "cloudpickle", "partd", "locket", "fsspec"}
    missing = imported - names - optional
    assert missing == set(), "the service imports what the image would not install"
