"""Compare this branch's results with a base ref's and decide the gate: no rendering here.

A comparison needs both sides to answer the same question from the same columns. When the base
has no results (the first pull request of an adopted template) or its contract differs (task,
target, features or classes changed), the report says so and the gate judges this branch on
its absolute limits and the baseline only: a verdict against numbers that mean something else
would be noise, and re-scoring the base model on columns it never saw cannot work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlci import history, paths
from mlci.config import GateConfig, load_params, parse_params
from mlci.errors import UserError
from mlci.review import contracts, gate, noise
from mlci.review.paired import paired
from mlci.review.revisions import Revisions, revisions
from mlci.review.sides import Side, base_side, current_side


@dataclass
class Comparison:
    base: Side
    current: Side
    base_metrics: dict | None  # base metrics comparable with this branch's, if any
    gate_config: GateConfig
    verdict: gate.Verdict
    notes: list[str]
    revisions: Revisions | None = None  # how to label the two commits
    contract_changes: list[str] = field(default_factory=list)  # base → this branch
    # Each metric's change with its 95% paired-bootstrap interval; the rows that flipped.
    intervals: dict[str, noise.Change] = field(default_factory=dict)
    flips: noise.Flips | None = None
    noise_note: str = ""  # how the rows were scored, or why there is no noise estimate

    @property
    def labels(self) -> Revisions:
        if self.revisions is None:
            self.revisions = revisions(self.base.label, self.base.sha, self.current.sha)
        return self.revisions

    @property
    def task(self) -> str:
        return self.current.task or self.base.task or "classification"


def compare(ref: str, stale: dict[str, list[str]] | None = None) -> Comparison:
    base, current = base_side(ref), current_side()
    notes: list[str] = []
    changes = contracts.changes(base.contract, current.contract)
    base_metrics, absolute = None, None
    if not base.metrics or "model" not in base.metrics:
        absolute = gate.FIRST_PR
    elif changes:
        absolute = gate.contract_changed(changes)
    else:
        base_metrics, note = comparable_base_metrics(base, current)
        if note:
            notes.append(note)
    cfg, cfg_note = gate_config(base, current)
    if cfg_note:
        notes.append(cfg_note)
    if stale is None:
        stale = history.stale_stages()
    changes_, flipped, how = with_noise(base, current, cfg) if base_metrics else ({}, None, "")
    verdict = gate.decide(
        cfg, current.metrics, base_metrics, current.validation, stale, notes, absolute, changes_
    )
    labels = revisions(ref, base.sha, current.sha)
    return Comparison(
        base,
        current,
        base_metrics,
        cfg,
        verdict,
        verdict.notes,
        labels,
        changes,
        changes_,
        flipped,
        how,
    )


def with_noise(
    base: Side, current: Side, cfg: GateConfig
) -> tuple[dict[str, noise.Change], noise.Flips | None, str]:
    """The paired bootstrap of every metric and the flipped rows, or why there are none."""
    found = paired(base, current)
    if isinstance(found, str):
        return {}, None, f"no noise estimate: {found}"
    seed = (current.params or {}).get("seed", 0)
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0
    changes = noise.compare(found.base, found.head, seed, cfg.bootstrap_samples)
    return changes, noise.flips(found.base, found.head), found.source


def comparable_base_metrics(base: Side, current: Side) -> tuple[dict | None, str | None]:
    """Base metrics measured on this branch's test set, as far as that can be had (the two
    sides' contracts are the same: :func:`compare` checked)."""
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
        try:
            rescored = {"model": _rescore(cached)}
        except Exception as err:  # a report must not die on a nicety: say why and go on
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            return base.metrics, (
                f"⚠️ the test set changed and the base model could not be re-scored on it "
                f"({reason}): the base metrics shown were measured on the base branch's own "
                "test set"
            )
        return rescored, (
            "the test set changed, so the base model was re-scored on this branch's test set "
            "(from the DVC cache)"
        )
    return base.metrics, (
        "⚠️ the test set changed and the base model is not in the DVC cache: the base metrics "
        "shown were measured on the base branch's own test set"
    )


def _rescore(model_path: Path) -> dict:
    from mlci import artifacts
    from mlci.contract import features_and_target
    from mlci.metrics import model_quality

    X, y = features_and_target(pd.read_parquet(paths.TEST))
    return model_quality(artifacts.load_model(model_path), X, y)


def gate_config(base: Side, current: Side | None = None) -> tuple[GateConfig, str | None]:
    """The gate thresholds come from the base branch, so a pull request cannot loosen them;
    unless the base's settings cannot judge this branch (none, unparseable, another task)."""
    task = current.task if current is not None else None
    if base.params and "gate" in base.params:
        try:
            parsed = parse_params(base.params, Path(f"{base.label}:params.yaml"))
        except UserError as err:
            why = f"its params.yaml does not parse with this branch's schema ({_first(err)})"
        else:
            if task is None or parsed.task == task:
                return parsed.gate, None
            why = f"its `gate:` is for {parsed.task} and this branch is {task}"
    else:
        why = "its params.yaml has no `gate:`"
    return load_params().gate, (
        f"⚠️ the base branch's gate settings cannot judge this branch ({why}): the gate used "
        "this branch's `gate:`, which this pull request sets: review its thresholds"
    )


def _first(err: Exception) -> str:
    lines = [line.strip(" -") for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines[1:3] or lines[:1])[:200]
