"""Regression residuals as text: a Mermaid histogram with its numbers as tables.

The regression counterpart of the confusion matrix. ``xychart-beta`` draws bars and lines over
named bands, not scatter plots, so the chart is a histogram of residuals (actual - predicted):
this branch as blue bars, base as a grey line over the same bins, both as shares of their rows
(the two test sets need not be the same size). A summary table gives the bias and the spread;
a foldout table holds the charted numbers. The actual-vs-predicted scatter is a PNG
(``mlci.review.charts``).

Functions here take plain data (``reports/plots/residuals.csv`` frames) and return markdown
lines; they know nothing about git or the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

from mlci.review.mermaid import (
    BASE_COLOUR,
    HEAD_COLOUR,
    colour_key,
    indistinct,
    number,
    series,
    xychart,
)

BINS = 12


def values(frame: pd.DataFrame | None) -> np.ndarray | None:
    """The residuals of a residuals.csv frame (recomputed from actual and predicted when the
    residual column is missing), or None."""
    if frame is None or frame.empty:
        return None
    if "residual" in frame:
        r = pd.to_numeric(frame["residual"], errors="coerce")
    elif {"actual", "predicted"} <= set(frame.columns):
        r = pd.to_numeric(frame["actual"], errors="coerce") - pd.to_numeric(
            frame["predicted"], errors="coerce"
        )
    else:
        return None
    out = r.to_numpy(float)
    out = out[np.isfinite(out)]
    return out if len(out) else None


def edges(*sides: np.ndarray | None, bins: int = BINS) -> np.ndarray:
    """Equal-width bins over both sides' residuals, so the two histograms share their bands."""
    both = np.concatenate([s for s in sides if s is not None])
    lo, hi = float(both.min()), float(both.max())
    if hi - lo < 1e-12:  # one value: one narrow bin around it
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def digits(width: float) -> int:
    """Decimals that tell neighbouring bins apart: 0 for wide bins, up to 4 for narrow ones."""
    if width <= 0 or not math.isfinite(width):
        return 2
    return int(min(4, max(0, math.ceil(-math.log10(width)) + 1)))


def _shares(r: np.ndarray, bin_edges: np.ndarray) -> tuple[list[float], list[int]]:
    counts, _ = np.histogram(r, bins=bin_edges)
    return [float(c) / len(r) for c in counts], [int(c) for c in counts]


def shares(r: np.ndarray | None, bin_edges: np.ndarray) -> tuple[list[float], list[int]] | None:
    """(share of rows, rows) per bin; None without residuals."""
    return None if r is None else _shares(r, bin_edges)


def _summary_rows(r: np.ndarray | None) -> dict[str, str]:
    if r is None:
        return {}
    a = np.abs(r)
    return {
        "rows": str(len(r)),
        "mean residual (bias; 0 is unbiased)": number(float(r.mean()), 4),
        "median absolute residual": number(float(np.median(a)), 4),
        "90th percentile absolute residual": number(float(np.quantile(a, 0.9)), 4),
        "largest absolute residual": number(float(a.max()), 4),
    }


def section(
    base: pd.DataFrame | None,
    current: pd.DataFrame | None,
    base_name: str = "",
    head_name: str = "",
    test_rows: int | None = None,
) -> list[str]:
    """The residuals section: summary table, histogram chart, foldout table of its numbers."""
    cur, old = values(current), values(base)
    if cur is None:
        return []
    out = ["", "<details><summary>Residuals (actual − predicted, test set)</summary>", ""]
    if test_rows and test_rows > len(cur):
        out += [f"A fixed random sample of {len(cur)} of the {test_rows} test rows.", ""]
    cur_rows, old_rows = _summary_rows(cur), _summary_rows(old)
    out += ["| | base | this branch |", "|---|---:|---:|"]
    for name, value in cur_rows.items():
        out.append(f"| {name} | {old_rows.get(name, '—')} | {value} |")

    bin_edges = edges(cur, old)
    d = digits(float(bin_edges[1] - bin_edges[0]))
    centres = [number((a + b) / 2, d) for a, b in pairwise(bin_edges)]
    now, before = _shares(cur, bin_edges), shares(old, bin_edges)
    # Both sides as lines (a bar series would hide behind the other): one colour each, as in
    # every chart, base first.
    plots: list[tuple[str, str, Sequence[float]]] = []
    colours = []
    if before is not None:
        plots.append(("line", series("base", base_name), before[0]))
        colours.append(BASE_COLOUR)
    plots.append(("line", series("this branch", head_name), now[0]))
    colours.append(HEAD_COLOUR)
    top = max([*now[0], *(before[0] if before else []), 0.01]) * 1.1
    if before is not None and indistinct([v / top for v in now[0]], [v / top for v in before[0]]):
        return [
            *out,
            "",
            "Histogram not charted: the two sides differ by less than a pixel.",
            "",
            "</details>",
        ]
    out += [""]
    out += xychart(
        plots,
        colours,
        "residual (bin centre)",
        "share of rows",
        (0.0, top),
        x_bands=centres,
        size=(760, 300),  # 12 bin labels need the room: at 520 px they run together
    )
    key = colour_key(base_name, head_name) if before is not None else ""
    out += ["", f"{key} A positive residual: the model predicted too low.".strip()]
    out += ["", "**Residuals: the charted numbers**", ""]
    out += [
        "| residual from | to | base share | this branch share | base rows | this branch rows |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(len(centres)):
        lo, hi = number(float(bin_edges[i]), d), number(float(bin_edges[i + 1]), d)
        b_share = "—" if before is None else number(before[0][i])
        b_rows = "—" if before is None else str(before[1][i])
        out.append(f"| {lo} | {hi} | {b_share} | {number(now[0][i])} | {b_rows} | {now[1][i]} |")
    return [*out, "", "</details>"]
