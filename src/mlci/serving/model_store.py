"""``mlci register-model``: put the DVC-tracked model into the BentoML model store.

The tag is derived from ``dvc.lock``, so registering is idempotent: the same ``dvc.lock`` gives
the same tag, and registering again changes nothing. The model registered is the one
``dvc.lock`` records (its md5 is checked), labelled with where it came from: git commit, the
training data digest, the ``dvc.lock`` digest and the key test-set metrics.

The service finds its model the same way (:func:`resolve_tag`), so ``bentoml serve`` in the
repository serves exactly the model ``dvc.lock`` describes, and a built bento serves the tag it
was built with (passed as the bento argument ``model_tag``).

Registering also writes the serving manifest (``serving.json``, :mod:`mlci.serving.manifest`):
the model is loaded, checked against the contract (a model that does not fit it is refused
here, before it reaches the store) and its compiled fast path proven against the pipeline, so
a serving worker starts without scikit-learn. Registering a model that is already stored
rewrites a manifest that is missing or out of date (another contract, scikit-learn or format).

This module is imported by the service at start: nothing heavy at the top (no pandas).

``BENTOML_HOME`` chooses the store (default ``~/bentoml``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mlci import paths
from mlci.errors import UserError
from mlci.serving import manifest

MODEL_NAME = "mlci-classifier"
MODEL_FILE = "model.skops"
DVC_LOCK = Path("dvc.lock")
_VERSION_CHARS = 16


def lock_sha256(lock: Path = DVC_LOCK) -> str:
    if not lock.is_file():
        raise UserError(f"{lock} not found: run `make run` (dvc repro) first")
    h = hashlib.sha256()
    h.update(lock.read_bytes())
    return h.hexdigest()


def default_tag(lock: Path = DVC_LOCK) -> str:
    """``mlci-classifier:<first 16 hex digits of sha256(dvc.lock)>``."""
    return f"{MODEL_NAME}:{lock_sha256(lock)[:_VERSION_CHARS]}"


def resolve_tag() -> str:
    """The model tag the service serves, first match wins.

    1. the bento argument ``model_tag`` (``bentoml build/serve --arg model_tag=...``; a built
       bento carries the one ``mlci package`` gave it);
    2. the environment variable ``MLCI_MODEL_TAG``;
    3. the tag of ``dvc.lock`` in the working directory (serving from the repository);
    4. ``mlci-classifier:latest``.
    """
    try:
        import bentoml

        arg = getattr(bentoml.use_arguments(), "model_tag", None)
    except Exception:  # no bento arguments in this process
        arg = None
    if arg:
        return str(arg)
    if env := os.environ.get("MLCI_MODEL_TAG", "").strip():
        return env
    if DVC_LOCK.is_file():
        return default_tag()
    return f"{MODEL_NAME}:latest"


def tracked_md5(path: Path = paths.MODEL, lock: Path = DVC_LOCK) -> str:
    """The md5 ``dvc.lock`` records for ``path`` (an output of some stage)."""
    import yaml

    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path.as_posix() and out.get("md5"):
                return str(out["md5"])
    raise UserError(f"{lock} does not record {path}: run `make run` (dvc repro) first")


md5_file = manifest.md5_file


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def check_tracked(path: Path = paths.MODEL, lock: Path = DVC_LOCK) -> str:
    """Refuse a model file that is not the one ``dvc.lock`` records; return its md5."""
    if not path.is_file():
        raise UserError(f"{path} not found: run `make run` (or `dvc pull`) first")
    expected = tracked_md5(path, lock)
    actual = md5_file(path)
    if actual != expected:
        raise UserError(
            f"{path} (md5 {actual}) is not the model {lock} records (md5 {expected}): run "
            f"`dvc repro` to update dvc.lock, or `dvc checkout {path}` to restore the file"
        )
    return actual


def git_commit() -> tuple[str, bool | None]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], capture_output=True, text=True, check=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit or "unknown", (bool(status) if status is not None else None)


def key_metrics(metrics_path: Path = paths.METRICS) -> dict[str, float]:
    """The scalar test-set metrics of the model (``reports/metrics.json`` → ``model``)."""
    if not metrics_path.is_file():
        return {}
    model = (_read_json(metrics_path) or {}).get("model") or {}
    return {
        k: float(v)
        for k, v in model.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def labels_and_metadata(model_md5: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Provenance labels and metadata of the stored model (and of the bento).

    ``task`` says what the model answers: ``classification`` (its ``classes`` are in the
    metadata) or ``regression`` (the ``target`` is a number; no classes). Metrics are the test
    set's, whatever the task reports (accuracy, f1_macro... or rmse, mae, r2).
    """
    meta = _read_json(paths.MODEL_META) if paths.MODEL_META.is_file() else {}
    commit, dirty = git_commit()
    metrics = key_metrics()
    task = str(meta.get("task") or ("classification" if meta.get("classes") else "unknown"))
    labels = {
        "task": task,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "data_sha256": str(meta.get("train_data_sha256", "unknown")),
        "dvc_lock_sha256": lock_sha256(),
        "model_md5": model_md5,
        "estimator": str(meta.get("estimator", "unknown")),
        **{f"metric_{k}": f"{v:.6g}" for k, v in metrics.items()},
    }
    metadata = {
        "task": task,
        "target": meta.get("target"),
        "classes": meta.get("classes", []) if task == "classification" else None,
        "features": meta.get("features", []),
        "train_rows": meta.get("train_rows"),
        "metrics": metrics,
    }
    return labels, {k: v for k, v in metadata.items() if v is not None}


def register(tag: str | None = None) -> dict[str, Any]:
    """Register ``models/model.skops`` under ``tag`` (default: :func:`default_tag`), with its
    serving manifest."""
    import bentoml
    from bentoml.exceptions import NotFound

    model_md5 = check_tracked()
    tag = tag or default_tag()
    try:
        existing = bentoml.models.get(tag)
    except NotFound:
        existing = None
    if existing is not None:
        stored = Path(existing.path) / MODEL_FILE
        if not stored.is_file() or md5_file(stored) != model_md5:
            raise UserError(
                f"model {tag} is already in the BentoML store ({existing.path}) but holds a "
                f"different file than {paths.MODEL}; remove it with `bentoml models delete "
                f"{tag}` and run this again"
            )
        found, _ = manifest.read(Path(existing.path), MODEL_FILE)
        if found is None:  # registered by an older version, or for another contract/sklearn
            manifest.write(Path(existing.path), MODEL_FILE)
        return {"tag": str(existing.tag), "created": False, "path": existing.path}

    labels, metadata = labels_and_metadata(model_md5)
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as ref:
        shutil.copy2(paths.MODEL, Path(ref.path) / MODEL_FILE)
        # Loads and checks the model: one that does not fit the contract never enters the store.
        manifest.write(Path(ref.path), MODEL_FILE)
        for extra in (paths.MODEL_META, paths.METRICS):
            if extra.is_file():
                shutil.copy2(extra, Path(ref.path) / extra.name)
    stored = bentoml.models.get(ref.tag)  # ``ref.path`` was the temporary build folder
    return {"tag": str(stored.tag), "created": True, "path": stored.path, **labels}


def run(params: Any = None) -> dict[str, Any]:
    """CLI entry point (``mlci register-model``)."""
    return register()
