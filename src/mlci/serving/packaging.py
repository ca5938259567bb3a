"""``mlci package`` (``make package``): register the model, then build the bento.

1. Registers the DVC-tracked model in the BentoML store (idempotent, see
   :mod:`mlci.serving.model_store`).
2. Writes ``build/bento/requirements.txt`` from ``uv.lock`` (``uv export`` of the ``serve``
   dependency group alone: the exact versions CI tested, only what the service imports), which
   ``bentofile.yaml`` installs into the image.
3. Runs ``bentoml build`` with ``bentofile.yaml``, passing the model tag as the bento argument
   ``model_tag`` (the service serves exactly that model) and the provenance as bento labels.

``bentoml build`` needs no Docker. The bento folder references the model but does not contain
it; ``bentoml containerize`` (Docker) adds it to the image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlci.errors import UserError
from mlci.serving import model_store

BENTOFILE = Path("bentofile.yaml")
REQUIREMENTS = Path("build/bento/requirements.txt")
SERVE_GROUP = "serve"  # pyproject.toml [dependency-groups]


def export_requirements(out: Path = REQUIREMENTS) -> Path:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        raise UserError(
            "uv not found: `mlci package` writes the image's requirements from uv.lock with "
            "`uv export`; install uv (`make setup` does) or put it on PATH"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        uv,
        "export",
        "--frozen",
        # The service's dependencies only: no DVC, plotting or adoption libraries in the image.
        "--only-group",
        SERVE_GROUP,
        "--no-hashes",
        "--no-emit-project",
        "--no-annotate",
    ]
    result = subprocess.run(
        [*cmd, "--no-header", "--output-file", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UserError(f"`uv export` failed:\n{result.stderr.strip()}")
    return out


def bento_labels(model_tag: str) -> dict[str, str]:
    labels, _ = model_store.labels_and_metadata(model_store.check_tracked())
    return {"model_tag": model_tag, **labels}


def build(model_tag: str, bentofile: Path = BENTOFILE) -> dict[str, Any]:
    if not bentofile.is_file():
        raise UserError(f"{bentofile} not found: run `mlci package` at the repository root")
    export_requirements()
    cmd = [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile), "--output", "tag"]
    cmd += ["--arg", f"model_tag={model_tag}"]
    for key, value in bento_labels(model_tag).items():
        cmd += ["--label", f"{key}={value}"]
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True"}
    result = subprocess.run([*cmd, "."], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise UserError(
            f"`bentoml build` failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr).strip()[-4000:]}"
        )
    tag = next(
        (
            line.split("__tag__:", 1)[1].strip()
            for line in result.stdout.splitlines()
            if "__tag__:" in line
        ),
        None,
    )
    if tag is None:
        raise UserError(f"`bentoml build` printed no bento tag:\n{result.stdout[-2000:]}")
    import bentoml

    bento = bentoml.get(tag)
    path = Path(bento.path)
    return {
        "bento_tag": str(bento.tag),
        "bento_path": str(path),
        "dockerfile": str(path / "env" / "docker" / "Dockerfile"),
    }


def run(params: Any = None) -> dict[str, Any]:
    """CLI entry point (``mlci package``)."""
    registered = model_store.register()
    built = build(registered["tag"])
    return {
        "model_tag": registered["tag"],
        "model_created": registered["created"],
        **built,
        "next": f"bentoml containerize {built['bento_tag']} (needs Docker)",
    }
