"""Charts as text: Mermaid ``xychart-beta`` blocks, each with a table of the same numbers.

The pull-request comment has no image host, so every chart must be readable in the comment
itself. GitHub renders ```` ```mermaid ```` blocks in comments; ``xychart-beta`` needs Mermaid
10.5 or newer (github.com is newer; an older GitHub Enterprise Server or another viewer shows the
block as source). So every chart comes with a markdown table of its numbers, and the charts use
only the plainest syntax: no title (written in markdown instead), quoted axis labels, numbers
without exponents, colours set with the long-standing ``%%{init}%%`` directive. Every series is
named (``line "base abc1234" [...]``), which Mermaid 11.17+ draws as a legend (10.9+ parse it).
Base and this branch keep one colour each in every chart, both at least 3:1 against GitHub's
light page and Mermaid's dark panel. A chart whose two series cannot be told apart (saturated
curves, or curves within a pixel) is not drawn: one line of text says so.

Functions here take plain data (pandas frames of curve points, importance tables) and return
markdown lines; they know nothing about git or the report.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlci import tasks

# Contrast (WCAG) against white / #0d1117 / Mermaid's dark panel #333: base 3.5 / 5.4 / 3.6,
# this branch 3.8 / 5.1 / 3.4; orange and blue stay apart for red-green colour blindness.
BASE_COLOUR = "#e36209"  # orange
HEAD_COLOUR = "#2f81f7"  # blue
PLOT_PIXELS = 224  # the plot area's height in a 300 px chart: the smallest visible difference
SATURATED = 0.999  # both areas at least this: the curves hug the corner, nothing to see
GRID_POINTS = 21  # curves are sampled every 0.05 of their x axis
MAX_CLASSES = 6  # curve charts per curve kind; the rest only get their area in the table
MAX_FEATURES = 15
MAX_LABEL = 40
# What permutation importance measures the drop of, by the metrics file's "primary" metric.

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
    plots: Sequence[tuple[str, str, Sequence[float]]],
    colours: Sequence[str],
    x_axis: str,
    y_axis: str,
    y_range: tuple[float, float],
    x_range: tuple[float, float] | None = None,
    x_bands: Sequence[object] | None = None,
    horizontal: bool = False,
    size: tuple[int, int] = (520, 300),
) -> list[str]:
    """One ```` ```mermaid ```` block. ``plots``: ("line" | "bar", series name, values) in
    drawing order; the names make the legend."""
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
    for kind, name, values in plots:
        lines.append(f"    {kind} {label(name)} [{', '.join(number(v) for v in values)}]")
    return [*lines, "```"]


def named(side: str, commit: str) -> str:
    """A side's name in a caption, with its commit when known."""
    return f"{side} {commit}" if commit else side


def series(side: str, commit: str) -> str:
    """A side's name in a legend: plain text (the legend renders no markdown)."""
    return named(side, commit.replace("`", "").split("](")[0].strip("["))


def colour_key(base_name: str, head_name: str) -> str:
    """The legend in words, under a chart: Mermaid before 11.17 parses series names but draws
    no legend (GitHub Enterprise Server, other viewers)."""
    return f"Orange: {named('base', base_name)}; blue: {named('this branch', head_name)}."


def indistinct(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    """Two sampled curves (0-1 axis) less than a pixel of the plot apart on average: the area
    between them is under one pixel's height (a lone spike at one grid point is not a change
    a reader can see, and says nothing the area table does not)."""
    if a is None or b is None:
        return False
    gaps = [abs(p - q) for p, q in zip(a, b, strict=True)]
    return sum(gaps) / max(len(gaps), 1) < 1 / PLOT_PIXELS


def html_text(value: object) -> str:
    """Text for a <details> summary: HTML, where markdown escapes would show as backslashes."""
    return html.escape(_CONTROL.sub(" ", str(value))).replace("](", "] (")


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
    flat: list[str] = []
    moved: list[tuple[float, str]] = []  # the flat classes' area changes, for the one line
    charts: list[str] = []
    columns: list[tuple[str, list[float]]] = []
    for cls in shown:
        b, a = sampler(base.get(cls)), sampler(current.get(cls))
        area_b, area_a = curve_area(kind, base.get(cls)), curve_area(kind, current.get(cls))
        saturated = min(area_a or 0, area_b or 0) >= SATURATED
        if saturated or indistinct(a, b):
            flat.append(cell(cls))
            if area_a is not None and area_b is not None:
                text = f"{cell(cls)} {number(area_b, 4)} → {number(area_a, 4)}"
                moved.append((abs(area_a - area_b), text))
            continue
        plots = [
            ("line", series(n, c), v)
            for n, c, v in (("base", base_name, b), ("this branch", head_name, a))
            if v is not None
        ]
        colours = [c for c, v in ((BASE_COLOUR, b), (HEAD_COLOUR, a)) if v is not None]
        charts += ["", f"**{cell(cls)}**", ""]
        charts += xychart(plots, colours, x_axis, y_axis, (0.0, 1.0))
        columns += [(f"{cell(cls)} base", b), (f"{cell(cls)} this branch", a)]
    which = "every class" if len(flat) == len(shown) else ", ".join(flat)
    why = (
        f"not charted for {which}: both sides' {summary} is ≥ {SATURATED}, or the two curves "
        "are within a pixel"
    )
    if not charts:
        largest = max(moved, default=(0.0, ""))
        most = f" (largest change of {summary}: {largest[1]})" if largest[0] > 0 else ""
        return ["", f"**{heading}**: {why}{most}."]
    out[0:3] = ["", f"<details><summary>{heading} (one-vs-rest, test set)</summary>", ""]
    out += charts
    out += [
        "",
        colour_key(base_name, head_name) + " "
        f"Sampled every {1 / (GRID_POINTS - 1):.2f} of the {x_axis}"
        + (" (precision: the best at that recall or more)." if kind == "precision_recall" else ".")
        + (f" {why[0].upper()}{why[1:]}." if flat else ""),
    ]
    if left_out:
        out.append(
            f"{len(left_out)} more class(es) not charted (their {summary} is in the table above): "
            + ", ".join(cell(c) for c in left_out)
            + "."
        )
    out += ["", f"**{heading}: the charted points**", ""]
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
    if primary is None:
        primary = tasks.PRIMARY[tasks.task_of(metrics) or "classification"]
    return tasks.label(str(primary))


def importance_section(
    base: pd.DataFrame | None,
    current: pd.DataFrame | None,
    base_name: str = "",
    head_name: str = "",
    metric: str = "macro F1",
) -> list[str]:
    """Permutation importance as a table sorted by this branch's importance, with base and the
    change beside it (a line of base values across unordered features zig-zags and hides the
    change); the summary names the largest change. ``metric``: what a shuffled feature makes
    drop (the task's primary metric)."""
    cur, old = _importance(current), _importance(base)
    if cur is None or cur.empty:
        return []
    ranked = list(cur.sort_values(ascending=False, kind="stable").index)
    shown = ranked[:MAX_FEATURES]

    def before(f: str) -> float | None:
        return None if old is None or f not in old.index else float(old[f])

    moved = [(abs(float(cur[f]) - b), f) for f in shown if (b := before(f)) is not None]
    biggest = max(moved, default=None)
    title = f"Permutation importance (drop in {metric} when a feature is shuffled)"
    if biggest and biggest[0] >= 0.0005:
        f = biggest[1]
        title += f": largest change {html_text(f)} {number(before(f), 3)} → {number(cur[f], 3)}"
    top = max([abs(float(cur[f])) for f in shown] + [1e-12])
    out = ["", f"<details><summary>{title}</summary>", ""]
    out += [
        f"| feature | {named('base', base_name)} | {named('this branch', head_name)} | change "
        "| this branch |",
        "|---|---:|---:|---:|---|",
    ]
    for f in shown:
        b, a = before(f), float(cur[f])
        change = "—" if b is None else signed(a - b, 3)
        bar = "█" * round(10 * max(a, 0.0) / top)
        out.append(
            f"| {cell(f)} | {'—' if b is None else number(b, 3)} | {number(a, 3)} | {change} "
            f"| {bar} |"
        )
    if len(ranked) > len(shown):
        out += ["", f"{len(ranked) - len(shown)} less important feature(s) not shown."]
    return [*out, "", "</details>"]
