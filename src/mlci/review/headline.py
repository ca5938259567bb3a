"""The comment's first screen: the largest changes in one line, and the metrics with their noise.

Split from :mod:`mlci.review.markdown` (which assembles the document). The largest changes are
ranked across per-class metrics, slices and confusion-matrix cells (regression: slices and the
size of the errors) on one scale (a share: a metric's change, a cell's change as a share of
that class's rows, or a regression error's relative change), so "Chinstrap recall 1.00 → 0.53"
and "8 Chinstrap rows now predicted Adelie" can stand side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlci.review import gate, residuals
from mlci.review.mermaid import cell
from mlci.review.sections import delta, num, slice_metric
from mlci.tasks import GATE_METRICS, LOWER_IS_BETTER

if TYPE_CHECKING:
    from mlci.review.compare import Comparison

TOP = 3
SMALLEST = 0.005  # changes below this share are not worth the first screen
NOT_COMPARED = "not compared"
# How each check kind is named in the gate column.
KIND_WORDS = {
    "minimum": "floor",
    "maximum": "ceiling",
    "regression": "vs base",
    "baseline": "vs baseline",
}


def _per_class(c: Comparison, base: dict) -> list[tuple[float, str]]:
    cur = (c.current.metrics or {}).get("model", {}).get("per_class", {})
    old = base.get("per_class", {})
    found = []
    for cls, m in cur.items():
        for name in ("recall", "precision"):
            a, b = m.get(name), old.get(cls, {}).get(name)
            if isinstance(a, int | float) and isinstance(b, int | float):
                found.append((abs(a - b), f"{cell(cls)} {name} {b:.2f} → {a:.2f}"))
    return found


def _slices(c: Comparison) -> list[tuple[float, str]]:
    if c.base.task != c.task:
        return []
    key, name, _lower, _ = slice_metric(c.task)
    found = []
    for col, values in (c.current.slices or {}).items():
        for val, m in values.items():
            a, b = m.get(key), (c.base.slices or {}).get(col, {}).get(val, {}).get(key)
            if not (isinstance(a, int | float) and isinstance(b, int | float)):
                continue
            size = abs(a - b) / (abs(b) if c.task == "regression" and b else 1.0)
            text = f"{cell(col)} = {cell(val)} {name} {b:.2f} → {a:.2f}"
            found.append((size, text))
    return found


def _confusion(c: Comparison) -> list[tuple[float, str]]:
    if c.current.confusion is None or c.base.confusion is None:
        return []
    now, before = counts(c.current.confusion), counts(c.base.confusion)
    labels = sorted(set(now.index) | set(before.index))
    now = now.reindex(index=labels, columns=labels, fill_value=0)
    before = before.reindex(index=labels, columns=labels, fill_value=0)
    found = []
    for actual in labels:
        rows = max(int(now.loc[actual].sum()), 1)
        for predicted in labels:
            moved = int(now.loc[actual, predicted] - before.loc[actual, predicted])
            if actual == predicted or moved <= 0:
                continue
            found.append(
                (
                    moved / rows,
                    f"{moved} {cell(actual)} row{'s' if moved > 1 else ''} now predicted "
                    f"{cell(predicted)}",
                )
            )
    return found


def _residuals(c: Comparison) -> list[tuple[float, str]]:
    """Regression: how the typical and the large errors moved, as a share of the base's."""
    if c.task != "regression":
        return []
    now, before = residuals.values(c.current.residuals), residuals.values(c.base.residuals)
    if now is None or before is None:
        return []
    found = []
    for name, q in (("median absolute residual", 0.5), ("90th percentile absolute residual", 0.9)):
        a, b = float(np.quantile(np.abs(now), q)), float(np.quantile(np.abs(before), q))
        if b > 0:
            found.append((abs(a - b) / b, f"{name} {b:.4g} → {a:.4g} ({(a - b) / b:+.1%})"))
    return found


def counts(df: pd.DataFrame) -> pd.DataFrame:
    """Confusion counts (actual × predicted) from the per-row confusion data."""
    return pd.crosstab(df["actual"].astype(str), df["predicted"].astype(str))


def largest_changes(c: Comparison, base: dict) -> list[str]:
    """The first-screen line: the largest per-class, slice and confusion changes, ranked."""
    if not base:
        return []
    found = _per_class(c, base) + _slices(c) + _confusion(c) + _residuals(c)
    found.sort(key=lambda t: -t[0])
    shown = [text for size, text in found if size >= SMALLEST][:TOP]
    if not shown:
        what = "class, slice or confusion cell" if c.task == "classification" else "slice or error"
        return ["", f"**Largest changes:** none: no {what} moved by 0.5% or more."]
    return ["", "**Largest changes:** " + " · ".join(shown) + "."]


def _gate_cell(checks: list[gate.Check]) -> str:
    if not checks:
        return "not gated"
    failed = [KIND_WORDS.get(x.kind, x.kind) for x in checks if not x.passed]
    return "✅" if not failed else "❌ " + ", ".join(failed)


def metrics_table(c: Comparison, base: dict, compared: bool) -> list[str]:
    """Per metric: base, this branch, the change with its 95% interval, whether it is beyond
    noise, and the gate's checks on it; then the flipped rows and what the marks mean."""
    cur = (c.current.metrics or {}).get("model", {})
    checks: dict[str, list[gate.Check]] = {}
    for chk in c.verdict.checks:
        if chk.metric:
            checks.setdefault(chk.metric, []).append(chk)
    rows = (c.current.metrics or {}).get("test_rows")
    counted = f", {rows:,} rows" if isinstance(rows, int) else ""
    out = [
        "",
        f"### Metrics (test set{counted})",
        "",
        "| metric | base | this branch | change [95% interval] | beyond noise? | gate |",
        "|---|---:|---:|---:|:---:|:---:|",
    ]
    for m in GATE_METRICS[c.task]:
        noise = c.intervals.get(m)
        if not compared and base.get(m) is not None:
            change, word = NOT_COMPARED, "—"
        elif noise is not None and noise.verdict == "unchanged":
            change, word = "0", "unchanged"
        elif noise is not None:
            change = f"{noise.change:+.4f} [{noise.low:+.3f}, {noise.high:+.3f}]"
            word = noise.verdict
            if word in ("better", "worse"):
                word = f"**{word}**"
        else:
            change, word = delta(cur.get(m), base.get(m), m in LOWER_IS_BETTER), "—"
            change = change.split(" (")[0]
        out.append(
            f"| {m} | {num(base.get(m))} | {num(cur.get(m))} | {change} | {word} | "
            f"{_gate_cell(checks.get(m, []))} |"
        )
    out += ["", *_flips_line(c)]
    return out


def _flips_line(c: Comparison) -> list[str]:
    f = c.flips
    lines = []
    if f is not None and c.task == "classification" and not f.worse + f.better:
        lines.append("No test row changed answer.")
    elif f is not None and c.task == "classification":
        p = "" if f.p_value is None else f" (exact McNemar p = {f.p_value:.2g})"
        lines.append(
            f"Rows that changed answer: {f.worse} correct → wrong, {f.better} wrong → correct{p}."
        )
    elif f is not None:
        lines.append(
            f"Absolute error grew on {f.worse / f.rows:.0%} of the {f.rows:,} rows and shrank "
            f"on {f.better / f.rows:.0%}."
        )
    if c.intervals:
        samples = c.gate_config.bootstrap_samples
        lines.append(
            f"Intervals: paired bootstrap over the test rows ({samples:,} resamples, "
            f"{c.noise_note}); within noise: the interval includes 0."
        )
    elif c.noise_note:
        lines.append(f"No intervals ({c.noise_note}).")
    lines.append(
        "Gate: the metric's checks (floor or ceiling, vs base by "
        f"`gate.rule: {c.gate_config.rule}`, vs baseline); ❌ names those that failed."
    )
    return [" ".join(lines)]
