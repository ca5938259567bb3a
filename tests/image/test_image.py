"""The released image itself, built by `make test-image` (which names it in MLCI_TEST_IMAGE and
has already run it as deploy/k8s runs it): what it contains, and how `make smoke-image` fails on
a broken one. Skipped unless MLCI_TEST_IMAGE is set and a Docker engine answers; `make test`
does not build images."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from mlci.serving.docker import docker, engine_answers, is_standin
from tests.helpers import REPO, run

IMAGE = os.environ.get("MLCI_TEST_IMAGE", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not IMAGE, reason="run by `make test-image` (MLCI_TEST_IMAGE names the image)"
    ),
    pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers (`docker info`)"),
]


def sh(image: str, script: str) -> str:
    return docker("run", "--rm", "--entrypoint", "sh", image, "-c", script).stdout


def test_the_image_ships_only_what_serving_needs() -> None:
    out = sh(IMAGE, "command -v gcc cc make git uv || true; ls /usr/bin | grep -c '^gcc' || true")
    assert out.split() == ["0"], f"a compiler, git or uv in the image: {out}"
    freeze = sh(
        IMAGE, "/app/.venv/bin/python -m pip list 2>/dev/null || ls /app/.venv/lib/*/site-packages"
    )
    for absent in ("dvc", "matplotlib", "ruamel", "pyarrow", "pytest"):
        assert absent not in freeze.lower(), f"{absent} is in the serving image"
    assert "bentoml" in freeze.lower() and "scikit_learn" in freeze.lower().replace("-", "_")


def test_no_usage_analytics_and_the_folders_a_read_only_root_needs() -> None:
    env = docker("image", "inspect", "--format", "{{json .Config.Env}}", IMAGE).stdout
    assert '"BENTOML_DO_NOT_TRACK=True"' in env
    owners = sh(IMAGE, "stat -c '%n %u' /home/bentoml/logs /home/bentoml/bentos "
                "/home/bentoml/models /home/bentoml/envs /home/bentoml/tmp")  # fmt: skip
    assert [line.split()[1] for line in owners.splitlines()] == ["1034"] * 5, owners


@pytest.fixture
def broken() -> Iterator[str]:
    """The image with its model file cut in half, as a bad copy or disk would leave it."""
    ref = f"mlci-broken-{uuid.uuid4().hex[:8]}:test"
    dockerfile = (
        f"FROM {IMAGE}\nUSER root\n"
        "RUN f=$(find /home/bentoml/bento/models -name '*.skops' | head -1) && test -n \"$f\" "
        '&& truncate -s 1000 "$f"\nUSER bentoml\n'
    )
    built = subprocess.run(
        ["docker", "build", "-q", "-t", ref, "-"], input=dockerfile, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    yield ref
    subprocess.run(["docker", "rmi", "--force", ref], capture_output=True)


def test_smoke_image_of_a_broken_image_fails_in_seconds_with_its_own_error(broken: str) -> None:
    name, version = broken.split(":")
    before = set(docker("ps", "-aq").stdout.split())
    start = time.monotonic()
    result = run(["mlci", "smoke-image", "--image", name, "--version", version], REPO, check=False)
    took = time.monotonic() - start
    assert result.returncode == 2, result.stdout
    assert took < 60, f"took {took:.0f} s: the recipe waited for a container that had exited"
    assert "exited (code" in result.stderr and "before /readyz answered" in result.stderr
    assert "raised ---" in result.stderr and "log ---" in result.stderr, result.stderr
    assert "ModelUnavailable: model mlci-classifier" in result.stderr
    assert "cannot be loaded" in result.stderr
    assert set(docker("ps", "-aq").stdout.split()) <= before, "the container was left behind"


def test_a_release_is_never_built_on_the_stand_in_base() -> None:
    if not is_standin("python:3.11-slim"):
        pytest.skip("the engine's python:3.11-slim is the official image")
    result = run(
        ["mlci", "containerize", "--image", "never", "--version", "1.0.0"], REPO, check=False
    )
    assert result.returncode == 2
    assert "python:3.11-slim in this engine is the Debian stand-in" in result.stderr
    assert docker("image", "inspect", "never:1.0.0", check=False).returncode != 0
