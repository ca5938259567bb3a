"""Charts as text: Mermaid ``xychart-beta`` blocks, each with a table of the same numbers.

The pull-request comment has no image host, so every chart must be readable in the comment
itself. GitHub renders ```` ```mermaid ```` blocks in comments; ``xychart-beta`` needs Mermaid
10.5 or newer (github.com is newer; an older GitHub Enterprise Server or another viewer shows the
block as source). So every chart comes with a markdown table of its numbers, and the charts use
only the plainest syntax: no title (written in markdown instead), quoted axis labels, numbers
without exponents, colours set with the long-standing ``%%{init}%%`` directive. ``xychart`` has
no legend, so the caption says which colour is which side.

Functions here take plain data (pandas frames of curve points, importance tables) and return
markdown lines; they know nothing about git or the report.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

BASE_COLOUR = "#9e9e9e"  # grey
HEAD_COLOUR = "#1f77b4"  # blue
GRID_POINTS = 21  # curves are sampled every 0.05 of their x axis
MAX_CLASSES = 6  # curve charts per curve kind; the rest only get their area in the table
MAX_FEATURES = 15
MAX_LABEL = 40
# What permutation importance measures the drop of, by the metrics file's "primary" metric.
PRIMARY_NAMES = {"f1_macro": "macro F1", "r2": "R²"}

# kind: (x column, y column, heading, x axis label, y axis label, summary name)
KINDS = {
    "roc": ("fpr", "tpr", "ROC curves", "false positive rate", "true positive rate", "area"),
    "precision_recall": (
        "recall",
        "precision",
        "Precision-recall curves",
        "recall",
        "precision",
        "average precision",
    ),
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_CELL_SPECIAL = re.compile(r"([\\|\[\]*_`!~])")


def label(value: object) -> str:
    """A Mermaid string literal: the xychart lexer ends a string at ``"`` and has no escapes,
    treats ``%%`` as a comment and a leading `` ` `` as markdown, so those are replaced."""
    text = _CONTROL.sub(" ", str(value)).replace('"', "'").replace("`", "'")
    # No "](" or "![": a link scanner (the comment poster's) must not see a file reference here.
    text = text.replace("%", "pct").replace("](", "] (").replace("![", "! [").strip() or "?"
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return f'"{text}"'


def cell(value: object) -> str:
    """Text safe in a markdown table cell: no column break, link, image, HTML or emphasis."""
    text = _CELL_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(value)))
    return text.replace("\\](", "\\]\\(").replace("<", "&lt;")  # no "](" for link scanners


def number(value: float, digits: int = 3) -> str:
    """Fixed-point, never an exponent (Mermaid's lexer reads no ``1e-05``), no ``-0.000``."""
    if value is None or not math.isfinite(value):
        return "0"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def signed(value: float, digits: int = 4) -> str:
    """A change: ``+0.0123``, ``-0.0040`` or ``0``."""
    text = number(value, digits)
    if float(text) == 0:
        return "0"
    return text if text.startswith("-") else f"+{text}"


def grid(points: int = GRID_POINTS) -> np.ndarray:
    return np.linspace(0.0, 1.0, points)


def _points(frame: pd.DataFrame | None, x: str, y: str) -> np.ndarray | None:
    if frame is None or frame.empty or x not in frame or y not in frame:
        return None
    pts = frame[[x, y]].apply(pd.to_numeric, errors="coerce").dropna().to_numpy(float)
    return pts if len(pts) else None


def sample_roc(frame: pd.DataFrame | None, at: np.ndarray | None = None) -> list[float] | None:
    """True positive rate at each grid false positive rate, on the straight segments between
    the stored points (at a vertical step, the top of the step)."""
    pts = _points(frame, "fpr", "tpr")
    if pts is None:
        return None
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    xs, ys = pts[:, 0], pts[:, 1]
    out = []
    for g in grid() if at is None else at:
        i = int(np.searchsorted(xs, g, side="right")) - 1
        if i < 0:
            out.append(float(ys[0]))
        elif i == len(xs) - 1 or xs[i] == g:
            out.append(float(ys[i]))
        else:
            frac = (g - xs[i]) / (xs[i + 1] - xs[i])
            out.append(float(ys[i] + frac * (ys[i + 1] - ys[i])))
    return out


def sample_pr(frame: pd.DataFrame | None, at: np.ndarray | None = None) -> list[float] | None:
    """Interpolated precision at each grid recall: the best precision at that recall or more."""
    pts = _points(frame, "recall", "precision")
    if pts is None:
        return None
    out = []
    for g in grid() if at is None else at:
        reach = pts[pts[:, 0] >= g - 1e-12, 1]
        out.append(float(reach.max()) if len(reach) else 0.0)
    return out


SAMPLERS = {"roc": sample_roc, "precision_recall": sample_pr}


def curve_area(kind: str, frame: pd.DataFrame | None) -> float | None:
    """ROC: trapezoidal area under the stored points. PR: average precision (step sum)."""
    if kind == "roc":
        pts = _points(frame, "fpr", "tpr")
        if pts is None:
            return None
        pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
        return float(np.sum(np.diff(pts[:, 0]) * (pts[1:, 1] + pts[:-1, 1]) / 2))
    pts = _points(frame, "recall", "precision")
    if pts is None:
        return None
    pts = pts[np.argsort(-pts[:, 0], kind="stable")]
    return float(np.sum((pts[:-1, 0] - pts[1:, 0]) * pts[:-1, 1]))


def xychart(
    plots: Sequence[tuple[str, Sequence[float]]],
    colours: Sequence[str],
    x_axis: str,
    y_axis: str,
    y_range: tuple[float, float],
    x_range: tuple[float, float] | None = None,
    x_bands: Sequence[object] | None = None,
    horizontal: bool = False,
    size: tuple[int, int] = (520, 300),
) -> list[str]:
    """One ```` ```mermaid ```` block. ``plots``: ("line" | "bar", values) in drawing order."""
    init = {
        "xyChart": {"width": size[0], "height": size[1]},
        "themeVariables": {"xyChart": {"plotColorPalette": ", ".join(colours)}},
    }
    if x_bands is not None:
        x = f"x-axis {label(x_axis)} [{', '.join(label(b) for b in x_bands)}]"
    else:
        lo, hi = x_range or (0.0, 1.0)
        x = f"x-axis {label(x_axis)} {number(lo, 2)} --> {number(hi, 2)}"
    lines = [
        "```mermaid",
        f"%%{{init: {json.dumps(init)}}}%%",
        "xychart-beta horizontal" if horizontal else "xychart-beta",
        f"    {x}",
        f"    y-axis {label(y_axis)} {number(y_range[0], 2)} --> {number(y_range[1], 2)}",
    ]
    for kind, values in plots:
        lines.append(f"    {kind} [{', '.join(number(v) for v in values)}]")
    return [*lines, "```"]


def named(side: str, commit: str) -> str:
    """A side's name in a caption, with its commit when known."""
    return f"{side} {commit}" if commit else side


def _pick_classes(kind: str, base: dict, current: dict) -> tuple[list[str], list[str]]:
    """(classes to chart, classes left out); the most changed ones first when too many."""
    classes = sorted(set(current) | set(base), key=str)
    if len(classes) <= MAX_CLASSES:
        return classes, []

    def change(cls: str) -> float:
        a, b = SAMPLERS[kind](current.get(cls)), SAMPLERS[kind](base.get(cls))
        return 0.0 if a is None or b is None else max(abs(p - q) for p, q in zip(a, b, strict=True))

    ranked = sorted(classes, key=lambda c: (-change(c), str(c)))
    keep = set(ranked[:MAX_CLASSES])
    return [c for c in classes if c in keep], [c for c in classes if c not in keep]


def curve_section(
    kind: str,
    base: dict[str, pd.DataFrame],
    current: dict[str, pd.DataFrame],
    base_name: str = "",
    head_name: str = "",
) -> list[str]:
    """Per class: a chart of base (grey) and this branch (blue), then one table of all points."""
    _, _, heading, x_axis, y_axis, summary = KINDS[kind]
    base, current = base or {}, current or {}
    classes = sorted(set(current) | set(base), key=str)
    if not classes:
        return []
    out = ["", f"### {heading} (one-vs-rest, test set)", ""]
    out += [f"| class | base {summary} | this branch {summary} | change |", "|---|---:|---:|---:|"]
    for cls in classes:
        a, b = curve_area(kind, current.get(cls)), curve_area(kind, base.get(cls))
        change = "—" if a is None or b is None else signed(a - b)
        out.append(
            f"| {cell(cls)} | {'—' if b is None else number(b, 4)} | "
            f"{'—' if a is None else number(a, 4)} | {change} |"
        )
    shown, left_out = _pick_classes(kind, base, current)
    sampler = SAMPLERS[kind]
    columns: list[tuple[str, list[float]]] = []
    for cls in shown:
        b, a = sampler(base.get(cls)), sampler(current.get(cls))
        plots = [("line", v) for v in (b, a) if v is not None]
        colours = [c for c, v in ((BASE_COLOUR, b), (HEAD_COLOUR, a)) if v is not None]
        out += ["", f"**{cell(cls)}**", ""]
        out += xychart(plots, colours, x_axis, y_axis, (0.0, 1.0))
        columns += [(f"{cell(cls)} base", b), (f"{cell(cls)} this branch", a)]
    out += [
        "",
        f"Grey line: {named('base', base_name)}; "
        f"blue line: {named('this branch', head_name)}. "
        f"Sampled every {1 / (GRID_POINTS - 1):.2f} of the {x_axis}"
        + (" (precision: the best at that recall or more)." if kind == "precision_recall" else "."),
    ]
    if left_out:
        out.append(
            f"{len(left_out)} more class(es) not charted (their {summary} is in the table above): "
            + ", ".join(cell(c) for c in left_out)
            + "."
        )
    out += ["", f"<details><summary>{heading}: the charted points</summary>", ""]
    out.append(f"| {x_axis} | " + " | ".join(name for name, _ in columns) + " |")
    out.append("|---:|" + "---:|" * len(columns))
    for i, g in enumerate(grid()):
        values = [("—" if v is None else number(v[i])) for _, v in columns]
        out.append(f"| {number(g, 2)} | " + " | ".join(values) + " |")
    return [*out, "", "</details>"]


def _importance(frame: pd.DataFrame | None) -> pd.Series | None:
    if frame is None or frame.empty or not {"feature", "importance"} <= set(frame.columns):
        return None
    values = pd.to_numeric(frame["importance"], errors="coerce")
    return pd.Series(values.to_numpy(), index=frame["feature"].astype(str)).dropna()


def primary_name(metrics: dict | None) -> str:
    """The metric whose drop permutation importance measured ("macro F1", "R²")."""
    primary = (metrics or {}).get("primary")
    if primary is None and (metrics or {}).get("task") == "regression":
        primary = "r2"
    return PRIMARY_NAMES.get(str(primary or "f1_macro"), str(primary))


def importance_section(
    base: pd.DataFrame | None,
    current: pd.DataFrame | None,
    base_name: str = "",
    head_name: str = "",
    metric: str = "macro F1",
) -> list[str]:
    """Permutation importance: bars for this branch (blue), a line for base (grey), and a table.
    ``metric``: what a shuffled feature makes drop (the task's primary metric)."""
    cur, old = _importance(current), _importance(base)
    if cur is None or cur.empty:
        return []
    ranked = list(cur.sort_values(ascending=False, kind="stable").index)
    shown = ranked[:MAX_FEATURES]
    bars = [max(float(cur[f]), 0.0) for f in shown]
    line = [max(float(old[f]), 0.0) for f in shown] if old is not None else None
    if line is not None and any(f not in old.index for f in shown):
        line = None  # a feature the base did not have: no line rather than a false zero
    top = max([*bars, *(line or []), 0.01]) * 1.1
    plots: list[tuple[str, Sequence[float]]] = [("bar", bars)]
    colours = [HEAD_COLOUR]
    if line is not None:
        plots.append(("line", line))
        colours.append(BASE_COLOUR)
    out = ["", f"### Permutation importance (drop in {metric} when a feature is shuffled)", ""]
    out += xychart(
        plots,
        colours,
        "feature",
        f"drop in {metric}",
        (0.0, top),
        x_bands=shown,
        horizontal=True,
        size=(560, 60 + 32 * len(shown)),
    )
    caption = f"Blue bars: {named('this branch', head_name)}"
    caption += f"; grey line: {named('base', base_name)}." if line is not None else "."
    if any(float(cur[f]) < 0 for f in shown) or (line and any(float(old[f]) < 0 for f in shown)):
        caption += " Negative importances (noise) are drawn as 0; the table has the values."
    out += ["", caption]
    if len(ranked) > len(shown):
        out.append(f"{len(ranked) - len(shown)} less important feature(s) not shown.")
    out += ["", "<details><summary>Permutation importance: the numbers</summary>", ""]
    out += ["| feature | base | this branch | change |", "|---|---:|---:|---:|"]
    for f in shown:
        b = None if old is None or f not in old.index else float(old[f])
        a = float(cur[f])
        change = "—" if b is None else signed(a - b)
        out.append(
            f"| {cell(f)} | {'—' if b is None else number(b, 4)} | {number(a, 4)} | {change} |"
        )
    return [*out, "", "</details>"]
