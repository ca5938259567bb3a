"""The merge gate: does this branch's model deserve to replace the base branch's?

Fails when the results are stale, the data broke the contract, a metric is below its floor (or
above its ceiling), a metric regressed against the base branch by more than allowed, or the
model does not beat the baseline. Thresholds come from ``params.yaml`` ``gate:``; a metric's
direction (higher or lower is better) from ``mlci.tasks.LOWER_IS_BETTER``, so the same checks
serve classification (accuracy, log loss, ...) and regression (rmse, mae, r2).

Without a base to compare with (no base results yet, or a base whose contract differs), the
verdict rests on the absolute limits and the baseline only, and says so in its summary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlci import paths
from mlci.config import GateConfig
from mlci.review.noise import Change
from mlci.tasks import LOWER_IS_BETTER

EPS = 1e-9
FIRST_PR = "first pull request: no base results, the gate used absolute limits and the baseline"
ABSOLUTE = "absolute limits and baseline only"


def contract_changed(changes: list[str]) -> str:
    """The note for a base whose data contract differs from this branch's."""
    return (
        f"the data contract changed against base ({'; '.join(changes)}): the two models are "
        "not comparable, so the gate used absolute limits and the baseline, no comparison "
        "with base"
    )


@dataclass
class Check:
    kind: str  # stale | contract | metrics | minimum | maximum | regression | baseline
    metric: str | None
    passed: bool
    detail: str
    value: float | None = None
    threshold: float | None = None
    base: float | None = None


@dataclass
class Verdict:
    passed: bool
    summary: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # "base": compared with the base branch; "absolute": absolute limits and baseline only
    basis: str = "base"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def decide(
    cfg: GateConfig,
    current: dict[str, Any] | None,
    base: dict[str, Any] | None,
    validation: dict[str, Any] | None = None,
    stale: dict[str, list[str]] | None = None,
    notes: list[str] | None = None,
    absolute: str | None = None,
    noise: dict[str, Change] | None = None,
) -> Verdict:
    """``current``/``base`` are parsed ``reports/metrics.json`` files; ``base`` None: nothing
    to compare with, for the reason ``absolute`` (default: the base has no results yet).
    ``noise``: each metric's change with its interval (:mod:`mlci.review.noise`), which
    ``cfg.rule == "interval"`` judges ``max_regression`` on."""
    checks: list[Check] = []
    notes = list(notes or [])
    if not base or "model" not in base:
        notes.insert(0, absolute or FIRST_PR)
    if stale:
        stages = ", ".join(f"{s} ({'; '.join(r)})" for s, r in stale.items())
        checks.append(
            Check(
                "stale",
                None,
                False,
                f"committed results are stale: {stages}. Run `make run`, then "
                f"`{paths.commit_command('Update results')}` (and `dvc push` if you use a "
                "remote)",
            )
        )
    if validation is not None and not validation.get("valid", False):
        n = len(validation.get("failures", []))
        checks.append(
            Check("contract", None, False, f"the data breaks the data contract ({n} problem(s))")
        )
    if not current or "model" not in current:
        checks.append(Check("metrics", None, False, "no metrics for this branch: run `make run`"))
        return _verdict(checks, notes, base)

    model = current["model"]
    for metric, floor in cfg.minimum.items():
        value = model.get(metric)
        ok = value is not None and value >= floor - EPS
        checks.append(
            Check("minimum", metric, ok, f"{metric} {_f(value)} (minimum {floor:g})", value, floor)
        )
    for metric, ceiling in cfg.maximum.items():
        value = model.get(metric)
        ok = value is not None and value <= ceiling + EPS
        checks.append(
            Check(
                "maximum", metric, ok, f"{metric} {_f(value)} (maximum {ceiling:g})", value, ceiling
            )
        )
    if base and "model" in base:
        for metric, allowed in cfg.max_regression.items():
            change = (noise or {}).get(metric) if cfg.rule == "interval" else None
            checks.append(
                _regression(metric, model.get(metric), base["model"].get(metric), allowed, change)
            )
    baseline = current.get("baseline", {})
    for metric in cfg.must_beat_baseline:
        value, ref = model.get(metric), baseline.get(metric)
        # A model that learned nothing (shuffled labels) still edges past the baseline by
        # chance: `baseline_margin` is how much better it must be.
        margin = cfg.baseline_margin.get(metric, 0.0)
        better = (
            value is not None
            and ref is not None
            and (
                value < ref - margin - EPS
                if metric in LOWER_IS_BETTER
                else value > ref + margin + EPS
            )
        )
        by = f", by more than {margin:g}" if margin else ""
        checks.append(
            Check(
                "baseline",
                metric,
                better,
                f"{metric} {_f(value)} vs baseline {_f(ref)}{by}",
                value,
                ref,
            )
        )
    return _verdict(checks, notes, base, _rule_words(cfg, base, noise))


def _rule_words(cfg: GateConfig, base: dict[str, Any] | None, noise: dict | None) -> str | None:
    """Which rule judged max_regression, for the verdict line (None: no such check ran)."""
    if not cfg.max_regression or not base or "model" not in base:
        return None
    if cfg.rule == "point":
        return "regressions judged by gate.rule: point, on the test-set numbers"
    if not noise:
        return (
            "regressions judged by gate.rule: interval, but with no paired scores: on the "
            "test-set numbers"
        )
    return "regressions judged by gate.rule: interval, only beyond noise (95% interval)"


def _regression(
    metric: str,
    value: float | None,
    base: float | None,
    allowed: float,
    noise: Change | None = None,
) -> Check:
    if value is None or base is None:
        return Check("regression", metric, False, f"{metric} missing on one side", value, allowed)
    lower = metric in LOWER_IS_BETTER
    worse_by = value - base if lower else base - value
    change = value - base
    word = "rose" if change > 0 else "fell"
    detail = (
        f"{metric} {word} {abs(change):.4f} against base ({_f(base)} → {_f(value)}; "
        f"allowed worsening {allowed:g})"
        if abs(change) > EPS
        else f"{metric} unchanged at {_f(value)}"
    )
    if noise is not None:
        # The least worsening the 95% interval allows: fail only when even that is too much.
        worse_by = noise.low if lower else -noise.high
        detail += f"; 95% interval of the change [{noise.low:+.4f}, {noise.high:+.4f}]: " + (
            "worse beyond the allowance"
            if worse_by > allowed + EPS
            else "within the allowance or noise"
        )
    ok = worse_by <= allowed + EPS
    return Check("regression", metric, ok, detail, value, allowed, base)


def _verdict(
    checks: list[Check],
    notes: list[str],
    base: dict[str, Any] | None,
    rule: str | None = None,
) -> Verdict:
    compared = bool(base and "model" in base)
    failed = [c for c in checks if not c.passed]
    if failed:
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        summary = f"FAILED: {failed[0].detail}{more}"
    else:
        summary = f"PASSED: all {len(checks)} checks"
    if not compared:  # the headline itself says the verdict did not compare with base
        summary += f" ({ABSOLUTE})"
    elif rule:  # the headline names the rule that judged the regressions
        summary += f"; {rule}"
    return Verdict(not failed, summary, checks, notes, "base" if compared else "absolute")


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
