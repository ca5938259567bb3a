"""The two sides of a pull-request comparison, read from disk (this branch) or from git (base).

Metrics, reports and plot data are committed (DVC ``cache: false``), so the base side is read
with ``git show``; this branch's side is read from the working tree after ``dvc repro``. The
model's metadata is a cached DVC output: the base's comes from the DVC cache when it is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pandas as pd
import yaml

from mlci import history, paths
from mlci.review.contracts import ContractFacts, facts, task_of

CURVES = {"roc": paths.ROC_DIR, "precision_recall": paths.PR_DIR}


@dataclass
class Side:
    """One side of the comparison: the base ref, or this branch's working tree."""

    label: str
    sha: str | None
    metrics: dict | None = None
    slices: dict | None = None
    cost: dict | None = None
    validation: dict | None = None
    ingest: dict | None = None
    params: dict | None = None
    lock: dict | None = None
    lock_text: str | None = None
    confusion: pd.DataFrame | None = None
    curves: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    importance: pd.DataFrame | None = None
    residuals: pd.DataFrame | None = None  # regression: actual, predicted, residual
    meta: dict | None = None  # models/model_meta.json, when available
    meta_source: str = ""

    @property
    def task(self) -> str | None:
        """classification | regression, from the metrics (or the model's metadata)."""
        return task_of(self.metrics) or (self.meta or {}).get("task")

    @property
    def contract(self) -> ContractFacts:
        return facts(self.meta, self.meta_source, self.metrics, self.importance)


def read_csv_text(text: str | None) -> pd.DataFrame | None:
    if not text:
        return None
    return pd.read_csv(StringIO(text))


def current_side() -> Side:
    sha = history.git("rev-parse", "HEAD")
    lock_text = Path("dvc.lock").read_text() if Path("dvc.lock").is_file() else None
    side = Side(
        label="this branch",
        sha=sha.strip() if sha else None,
        metrics=history.read_json(paths.METRICS),
        slices=history.read_json(paths.SLICES),
        # Timings are machine-dependent and never committed: this side has them when this
        # machine ran train/evaluate (the base side shows only the committed model size).
        cost={**(history.read_json(paths.COST) or {}), **(history.read_json(paths.TIMINGS) or {})},
        validation=history.read_json(paths.VALIDATION_JSON),
        ingest=history.read_json(paths.INGEST_REPORT),
        params=history.read_yaml("params.yaml"),
        lock=yaml.safe_load(lock_text) if lock_text else None,
        lock_text=lock_text,
    )
    side.confusion = pd.read_csv(paths.CONFUSION) if paths.CONFUSION.is_file() else None
    side.importance = pd.read_csv(paths.IMPORTANCE) if paths.IMPORTANCE.is_file() else None
    side.residuals = pd.read_csv(paths.RESIDUALS) if paths.RESIDUALS.is_file() else None
    side.meta, side.meta_source = history.read_json(paths.MODEL_META), "models/model_meta.json"
    for name, folder in CURVES.items():
        side.curves[name] = {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}
    return side


def base_side(ref: str) -> Side:
    sha = history.resolve(ref)
    lock_text = history.show(sha, "dvc.lock")
    side = Side(
        label=ref,
        sha=sha,
        metrics=history.show_json(sha, paths.METRICS),
        slices=history.show_json(sha, paths.SLICES),
        cost=history.show_json(sha, paths.COST),
        validation=history.show_json(sha, paths.VALIDATION_JSON),
        ingest=history.show_json(sha, paths.INGEST_REPORT),
        params=history.show_yaml(sha, "params.yaml"),
        lock=yaml.safe_load(lock_text) if lock_text else None,
        lock_text=lock_text,
    )
    side.confusion = read_csv_text(history.show(sha, paths.CONFUSION))
    side.importance = read_csv_text(history.show(sha, paths.IMPORTANCE))
    side.residuals = read_csv_text(history.show(sha, paths.RESIDUALS))
    side.meta, side.meta_source = base_meta(sha, side.lock)
    for name, folder in CURVES.items():
        listing = history.git("ls-tree", "-z", "--name-only", f"{sha}:{folder.as_posix()}") or ""
        curves = {
            Path(f).stem: read_csv_text(history.show(sha, folder / f))
            for f in listing.split("\0")  # -z: names with spaces or quotes stay whole
            if f.endswith(".csv")
        }
        side.curves[name] = {k: v for k, v in curves.items() if v is not None}
    return side


def base_meta(sha: str, lock: dict | None) -> tuple[dict | None, str]:
    """The base model's metadata: committed (if a project commits it), else the base
    ``dvc.lock``'s version of it from the local DVC cache, else None."""
    committed = history.show_json(sha, paths.MODEL_META)
    if isinstance(committed, dict):
        return committed, f"{paths.MODEL_META.as_posix()} (committed)"
    md5 = history.lock_outs(lock).get(paths.MODEL_META.as_posix())
    cached = history.cached(md5) if md5 else None
    if cached:
        meta = history.read_json(cached)
        if isinstance(meta, dict):
            return meta, f"{paths.MODEL_META.as_posix()} (DVC cache)"
    return None, ""
