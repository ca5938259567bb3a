"""PNG plots for the workflow artifact: base (dashed, orange) against this branch (solid, blue),
the same colours as the comment's Mermaid charts (``mermaid.BASE_COLOUR`` / ``HEAD_COLOUR``).

Classification: ROC and precision-recall curves; regression: actual against predicted; both:
permutation importance, labelled with the metric whose drop it measures.

The pull-request comment has no image host: it carries the same charts as Mermaid diagrams and
tables (``mlci.review.mermaid``) and only links these files, which the comment poster turns into
links to the run's artifact. DVC renders the same data as interactive plots (`dvc plots diff`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on CI runners
import matplotlib.pyplot as plt
import pandas as pd

from mlci.review.mermaid import BASE_COLOUR, HEAD_COLOUR, primary_name

if TYPE_CHECKING:
    from mlci.review.sides import Side

CURVE_AXES = {
    "roc": ("fpr", "tpr", "ROC (one-vs-rest)"),
    "precision_recall": (
        "recall",
        "precision",
        "Precision-recall (one-vs-rest)",
    ),
}


def _curves(base: Side, current: Side, name: str, path: Path) -> bool:
    x, y, title = CURVE_AXES[name]
    classes = sorted(set(current.curves.get(name, {})) | set(base.curves.get(name, {})))
    if not classes:
        return False
    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.6), squeeze=False)
    for ax, cls in zip(axes[0], classes, strict=True):
        drawn = False
        for side, style, colour in ((base, "--", BASE_COLOUR), (current, "-", HEAD_COLOUR)):
            frame = side.curves.get(name, {}).get(cls)
            if frame is not None and not frame.empty and {x, y} <= set(frame.columns):
                ax.plot(frame[x], frame[y], style, color=colour, label=side.label)
                drawn = True
        ax.set_title(str(cls))
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        if drawn:
            ax.legend(loc="lower right" if name == "roc" else "lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _importance(base: Side, current: Side, path: Path) -> bool:
    if current.importance is None or current.importance.empty:
        return False
    metric = primary_name(current.metrics)
    cur = current.importance.set_index("feature")["importance"]
    features = list(cur.sort_values().index)
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(features) + 1.2))
    positions = range(len(features))
    ax.barh(
        [p + 0.2 for p in positions],
        cur.reindex(features),
        height=0.4,
        color=HEAD_COLOUR,
        label=current.label,
    )
    # Another task's importance measured another metric's drop: not set beside this one.
    if base.importance is not None and primary_name(base.metrics) == metric:
        b = base.importance.set_index("feature")["importance"].reindex(features)
        ax.barh([p - 0.2 for p in positions], b, height=0.4, color=BASE_COLOUR, label=base.label)
    ax.set_yticks(list(positions), [str(f) for f in features])
    ax.set_xlabel(f"permutation importance (drop in {metric})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _numeric(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    if frame is None or not {"actual", "predicted"} <= set(frame.columns):
        return None
    pts = frame[["actual", "predicted"]].apply(pd.to_numeric, errors="coerce").dropna()
    return pts if len(pts) else None


def _actual_vs_predicted(base: Side, current: Side, path: Path) -> bool:
    """Regression: one point per test row (residuals.csv), on the diagonal when exact."""
    cur = _numeric(current.residuals)
    if cur is None:
        return False
    old = _numeric(base.residuals)
    fig, ax = plt.subplots(figsize=(5, 5))
    if old is not None:
        ax.scatter(
            old["actual"], old["predicted"], s=10, marker="x", c=BASE_COLOUR, label=base.label
        )
    ax.scatter(cur["actual"], cur["predicted"], s=10, c=HEAD_COLOUR, label=current.label)
    both = pd.concat([cur, *([] if old is None else [old])])
    lo, hi = float(both.min().min()), float(both.max().max())
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1, label="predicted = actual")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Actual vs predicted (test set)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def draw(base: Side, current: Side, out_dir: Path) -> dict[str, str]:
    """Draw what there is data for; return {title: file name relative to out_dir}.

    The names are those in ``report.CHART_FILES``, the only local files a report may link.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, str] = {}
    if _curves(base, current, "roc", out_dir / "roc.png"):
        drawn["ROC curves"] = "roc.png"
    if _curves(base, current, "precision_recall", out_dir / "precision_recall.png"):
        drawn["Precision-recall curves"] = "precision_recall.png"
    if _actual_vs_predicted(base, current, out_dir / "actual_vs_predicted.png"):
        drawn["Actual vs predicted"] = "actual_vs_predicted.png"
    if _importance(base, current, out_dir / "importance.png"):
        drawn["Feature importance"] = "importance.png"
    return drawn
