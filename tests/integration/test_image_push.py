"""`mlci push-image` against a real registry (Debian's `docker-registry`, started here on a
free loopback port) and a real Docker engine, with tiny images (`docker import` of one file):
a version tag is pushed once; pushing it again is a no-op that prints the same digest; an image
rebuilt from the same commit keeps the one already there; another image is refused.

Skipped when no Docker engine answers or `docker-registry` is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlci.serving.docker import engine_answers
from tests.helpers import REPO, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers (`docker info`)"),
    pytest.mark.skipif(not shutil.which("docker-registry"), reason="docker-registry not installed"),
]
REVISION = "org.opencontainers.image.revision"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator:
    """tiny(ref, content, revision): a one-file image with that revision label."""
    made: list[str] = []

    def build(ref: str, content: str, revision: str) -> str:
        root = tmp_path / uuid.uuid4().hex
        root.mkdir()
        (root / "content").write_text(content)
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
        subprocess.run(
            ["docker", "import", "--change", f"LABEL {REVISION}={revision}", "-", ref],
            input=tar.stdout,
            capture_output=True,
            check=True,
        )
        made.append(ref)
        return ref

    yield build
    for ref in made:
        subprocess.run(["docker", "rmi", "--force", ref], capture_output=True)


def push(image: str, version: str, output: Path | None = None):
    extra = {"GITHUB_OUTPUT": str(output)} if output else {}
    return run(
        ["mlci", "push-image", "--image", image, "--version", version], REPO, check=False, **extra
    )


def registry_digest(registry: str, name: str, tag: str) -> str:
    req = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers["Docker-Content-Digest"]


def test_a_version_tag_is_pushed_once_and_never_moved(registry, tiny, tmp_path: Path) -> None:
    image = f"{registry}/mlci"
    output = tmp_path / "github_output"
    tiny(f"{image}:1.0.0", "model one", "a" * 40)
    first = push(image, "1.0.0", output)
    assert first.returncode == 0, first.stderr
    digest = registry_digest(registry, "mlci", "1.0.0")
    assert f"pushed {image}:1.0.0" in first.stdout
    assert f"digest={digest}" in first.stdout.splitlines()
    assert output.read_text().splitlines() == [f"digest={digest}"]

    # The same image again (`make push-image` run twice): nothing to push, the same digest.
    again = push(image, "1.0.0")
    assert again.returncode == 0, again.stderr
    assert "is already this image: nothing pushed" in again.stdout
    assert f"digest={digest}" in again.stdout.splitlines()

    # A re-run of the release job rebuilds from the same commit: not byte-identical, kept out.
    tiny(f"{image}:1.0.0", "model one, rebuilt", "a" * 40)
    rerun = push(image, "1.0.0")
    assert rerun.returncode == 0, rerun.stderr
    assert "was already released from commit aaaaaaaaaaaa: kept it, pushed nothing" in rerun.stdout
    assert f"digest={digest}" in rerun.stdout.splitlines()
    assert registry_digest(registry, "mlci", "1.0.0") == digest

    # Another image under the released version: refused, and the tag still names the first.
    tiny(f"{image}:1.0.0", "model two", "b" * 40)
    refused = push(image, "1.0.0")
    assert refused.returncode == 2
    assert f"{image}:1.0.0 already exists with digest {digest}" in refused.stderr
    assert "built from commit aaaaaaaaaaaa" in refused.stderr
    assert "(commit bbbbbbbbbbbb) differs" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert registry_digest(registry, "mlci", "1.0.0") == digest

    # A new version is a new tag: pushed.
    tiny(f"{image}:1.0.1", "model two", "b" * 40)
    second = push(image, "1.0.1")
    assert second.returncode == 0, second.stderr
    assert registry_digest(registry, "mlci", "1.0.1") != digest


def test_an_unreachable_registry_is_an_error_not_an_absent_tag(tiny) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    tiny(f"{closed}/mlci:1.0.0", "x", "c" * 40)
    result = push(f"{closed}/mlci", "1.0.0")
    assert result.returncode == 2
    assert f"cannot read {closed}/mlci:1.0.0 from its registry" in result.stderr
    assert "connection refused" in result.stderr


def test_a_missing_local_image_is_named() -> None:
    result = push("127.0.0.1:1/nothing-here", "9.9.9")
    assert result.returncode == 2
    assert "no local image 127.0.0.1:1/nothing-here:9.9.9" in result.stderr
