"""What each side's model was trained on (task, target, features, classes), and what changed.

A comparison with the base branch is only meaningful when both models answer the same question
from the same columns: the base model cannot even be re-scored on a test set that lacks one of
its features. The facts come from the best source each side has:

1. ``models/model_meta.json``, which the train stage writes with exactly these facts. It is
   committed (``cache: false`` in ``dvc.yaml``), so ``git show`` has the base's; a project
   that caches it instead is read from the local DVC cache through the base's ``dvc.lock``;
2. otherwise the committed reports: ``reports/metrics.json`` (task; classes, from the per-class
   metrics) and ``reports/plots/importance.csv`` (one row per feature the model used).

A fact neither source has stays unknown and is not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlci.tasks import TASKS, task_of


@dataclass(frozen=True)
class ContractFacts:
    task: str | None = None
    target: str | None = None
    features: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None  # classification only
    source: str = "nothing"  # where the facts came from, for the report

    @property
    def known(self) -> bool:
        return any(v is not None for v in (self.task, self.target, self.features, self.classes))


def _names(values: Any) -> tuple[str, ...] | None:
    if not isinstance(values, list | tuple) or not values:
        return None
    return tuple(str(v) for v in values)


def from_meta(meta: dict[str, Any], source: str) -> ContractFacts:
    task = meta.get("task") if meta.get("task") in TASKS else None
    classes = _names(meta.get("classes")) if task != "regression" else None
    target = meta.get("target") if isinstance(meta.get("target"), str) else None
    return ContractFacts(task, target, _names(meta.get("features")), classes, source)


def from_reports(metrics: dict[str, Any] | None, importance: pd.DataFrame | None) -> ContractFacts:
    task = task_of(metrics)
    classes = None
    if task == "classification":
        per_class = ((metrics or {}).get("model") or {}).get("per_class")
        classes = _names(list(per_class)) if isinstance(per_class, dict) else None
    features = None
    if importance is not None and "feature" in importance.columns:
        features = _names(sorted(importance["feature"].astype(str)))
    source = "committed reports" if task or features else "nothing"
    return ContractFacts(task, None, features, classes, source)


def facts(
    meta: dict[str, Any] | None,
    meta_source: str,
    metrics: dict[str, Any] | None,
    importance: pd.DataFrame | None,
) -> ContractFacts:
    if isinstance(meta, dict):
        found = from_meta(meta, meta_source)
        if found.known:
            return found
    return from_reports(metrics, importance)


def code(name: str) -> str:
    """A name as a markdown code span (no backtick or line break can end it early)."""
    text = " ".join(str(name).replace("`", "'").split())
    return f"`{text}`"


def _listed(names: list[str]) -> str:
    return ", ".join(code(n) for n in names)


def changes(base: ContractFacts, current: ContractFacts) -> list[str]:
    """What differs between the two sides' contracts, one reviewer-readable line each."""
    out: list[str] = []
    if base.task and current.task and base.task != current.task:
        out.append(f"task: {base.task} → {current.task}")
    if base.target and current.target and base.target != current.target:
        out.append(f"target: {code(base.target)} → {code(current.target)}")
    out += _set_changes("feature(s)", base.features, current.features)
    if base.task == current.task == "classification":
        out += _set_changes("class(es)", base.classes, current.classes)
    return out


def _set_changes(what: str, base: Any, current: Any) -> list[str]:
    """``what`` added and removed between two known collections (nothing if one is unknown)."""
    if base is None or current is None:
        return []
    added, removed = sorted(set(current) - set(base)), sorted(set(base) - set(current))
    return [
        f"{what} {verb}: {_listed(names)}"
        for verb, names in (("added", added), ("removed", removed))
        if names
    ]
