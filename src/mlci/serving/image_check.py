"""``mlci containerize`` and ``mlci check-image``: build the release image from the packaged
Bento, and prove it works where it is deployed.

``containerize`` builds on the base the Bento's Dockerfile names: the official one for a
release; for tests (``make test-image``) the Debian stand-in of :mod:`mlci.serving.docker` where
it cannot be pulled. ``check_image`` runs the image as ``deploy/k8s/deployment.yaml`` does
(:func:`mlci.serving.image_run.run_spec`), sends the smoke test's requests and a batch of
records, stops it gracefully (as the kubelet does: SIGTERM, then the grace period), and checks
that every prediction reached the log volume. It reports the image's unpacked size and the
seconds from ``docker run`` to ``/readyz``, and writes them to ``bench/results/image.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlci.errors import UserError
from mlci.serving import docker as engine
from mlci.serving import image_run
from mlci.serving.registry import REVISION

RESULTS = Path("bench/results/image.json")
# BentoML 1.4.39 re-reads the Dockerfile template from its temporary build folder and refuses
# one outside the working directory (bentoml/BentoML#5566): build with TMPDIR inside it.
BUILD_TMP = Path("build/containerize-tmp")
BATCH = 20


def _bento_dockerfile(bento: str) -> Path:
    import bentoml

    return Path(bentoml.get(bento).path) / "env" / "docker" / "Dockerfile"


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def containerize(bento: str, ref: str, standin: bool = False) -> dict[str, str]:
    """Build ``ref`` from the packaged ``bento``. The base must be the official one unless
    ``standin`` (tests): a release is never built on the Debian stand-in."""
    base = engine.base_image_of(_bento_dockerfile(bento))
    how = engine.ensure_base(base, standin=True) if standin else _official_base(base)
    BUILD_TMP.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(BUILD_TMP.resolve()), "BENTOML_DO_NOT_TRACK": "True"}
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        env.setdefault("DOCKER_BUILDKIT", "0")  # no buildx plugin: Docker's classic builder
    cmd = [sys.executable, "-m", "bentoml", "containerize", bento, "--image-tag", ref]
    labels = {REVISION: _commit(), "org.opencontainers.image.version": ref.rsplit(":", 1)[-1]}
    for key, value in labels.items():
        cmd += ["--opt", f"label={key}={value}"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    shutil.rmtree(BUILD_TMP, ignore_errors=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-3000:]
        raise UserError(f"`bentoml containerize {bento}` failed:\n{tail}")
    return {"image": ref, "base": base, "base_source": how}


def _official_base(base: str) -> str:
    how = engine.ensure_base(base, standin=False)
    if engine.is_standin(base):
        raise UserError(
            f"{base} in this engine is the Debian stand-in (built for tests): a release image "
            f"is built on the official one. `docker rmi {base}` and build again"
        )
    return how


def check_image(
    ref: str,
    smoke: Callable[[str], list[str]],
    record: dict[str, Any],
    deployment: Path = image_run.DEPLOYMENT,
) -> dict[str, Any]:
    """Run ``ref`` as ``deployment`` runs it and check it; returns the report (also written to
    bench/results/image.json). ``smoke(url)``: the release smoke test; ``record``: a valid
    request record (both from :mod:`mlci.release`, passed in by the command line)."""
    volume = f"mlci-logs-{uuid.uuid4().hex[:10]}"
    engine.docker("volume", "create", volume)
    try:
        spec = image_run.run_spec(deployment, volume)
        with image_run.running(ref, spec.options) as c:
            checked = smoke(c.url)
            status, body = image_run.post(f"{c.url}/predict", {"records": [record] * BATCH})
            if status != 200:
                raise UserError(f"a batch of {BATCH} records: expected 200, got {status}: {body}")
            engine.docker("stop", "--time", "30", c.name)  # SIGTERM: the writer flushes
            logged = image_run.read_volume(ref, volume, spec.log_mount)
        lines = [json.loads(x) for x in logged.splitlines() if x.strip()]
        if len(lines) < BATCH + 1:
            raise UserError(
                f"{len(lines)} predictions in the log volume ({spec.log_mount}), expected at "
                f"least {BATCH + 1}: predictions are lost where the image is deployed"
            )
    finally:
        engine.docker("volume", "rm", "--force", volume, check=False)
    report = {
        "image": ref,
        "base_is_standin": engine.is_standin(ref),  # the base's label is inherited
        "size_mb": round(engine.size_bytes(ref) / 1e6),
        "seconds_to_ready": round(c.seconds_to_ready, 2),
        "predictions_logged": len(lines),
        "log_file": spec.log_path,
        "checked": checked,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return report
