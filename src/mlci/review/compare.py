"""Compare this branch's results with a base ref's and decide the gate: no rendering here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlci import history, paths
from mlci.config import GateConfig, load_params, parse_params
from mlci.errors import UserError
from mlci.review import gate
from mlci.review.revisions import Revisions, revisions
from mlci.review.sides import Side, base_side, current_side


@dataclass
class Comparison:
    base: Side
    current: Side
    base_metrics: dict | None  # base metrics on the same test set as this branch, if possible
    gate_config: GateConfig
    verdict: gate.Verdict
    notes: list[str]
    revisions: Revisions | None = None  # how to label the two commits

    @property
    def labels(self) -> Revisions:
        if self.revisions is None:
            self.revisions = revisions(self.base.label, self.base.sha, self.current.sha)
        return self.revisions


def compare(ref: str, stale: dict[str, list[str]] | None = None) -> Comparison:
    base, current = base_side(ref), current_side()
    notes: list[str] = []
    base_metrics, note = comparable_base_metrics(base, current)
    if note:
        notes.append(note)
    cfg, cfg_note = gate_config(base)
    if cfg_note:
        notes.append(cfg_note)
    if stale is None:
        stale = history.stale_stages()
    verdict = gate.decide(cfg, current.metrics, base_metrics, current.validation, stale, notes)
    labels = revisions(ref, base.sha, current.sha)
    return Comparison(base, current, base_metrics, cfg, verdict, verdict.notes, labels)


def comparable_base_metrics(base: Side, current: Side) -> tuple[dict | None, str | None]:
    """Base metrics measured on this branch's test set, as far as that can be had."""
    if not base.metrics:
        return None, None
    test = paths.TEST.as_posix()
    base_test = history.lock_outs(base.lock).get(test)
    current_test = history.lock_outs(current.lock).get(test)
    if base_test and base_test == current_test:
        return base.metrics, None
    model_md5 = history.lock_outs(base.lock).get(paths.MODEL.as_posix())
    cached = history.cached(model_md5) if model_md5 else None
    if cached and paths.TEST.is_file():
        from mlci import artifacts
        from mlci.contract import features_and_target
        from mlci.metrics import quality

        X, y = features_and_target(pd.read_parquet(paths.TEST))
        model = artifacts.load_model(cached)
        classes = [str(c) for c in model.classes_]
        rescored = {"model": quality(y, model.predict_proba(X), classes)}
        return rescored, (
            "the test set changed, so the base model was re-scored on this branch's test set "
            "(from the DVC cache)"
        )
    return base.metrics, (
        "⚠️ the test set changed and the base model is not in the DVC cache: the base metrics "
        "shown were measured on the base branch's own test set"
    )


def gate_config(base: Side) -> tuple[GateConfig, str | None]:
    """The gate thresholds come from the base branch, so a pull request cannot loosen them."""
    if base.params and "gate" in base.params:
        try:
            return parse_params(base.params, Path(f"{base.label}:params.yaml")).gate, None
        except UserError:
            pass
    current = load_params().gate
    return current, "the base branch has no usable gate settings: used this branch's `gate:`"
