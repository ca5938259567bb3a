"""The two tasks and their metrics, defined once.

Every layer that names a metric (the config's gate settings, the gate, the report's tables and
slices, the release's model card, drift's labelled checks) reads it here: its task, its
display name and whether lower is better. Standard library only, so the config check and the
report import it without loading scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

TASKS = ("classification", "regression")
Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Metric:
    name: str  # the key in reports/metrics.json
    label: str  # what a reader sees
    task: Task
    scorer: str  # the same metric as scikit-learn's scorer name (neg_*: it maximises)
    lower_is_better: bool = False


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "accuracy", "classification", "accuracy"),
        Metric("balanced_accuracy", "balanced accuracy", "classification", "balanced_accuracy"),
        Metric("f1_macro", "macro F1", "classification", "f1_macro"),
        Metric("log_loss", "log loss", "classification", "neg_log_loss", lower_is_better=True),
        Metric("roc_auc_ovr", "ROC AUC", "classification", "roc_auc_ovr"),
        Metric("rmse", "RMSE", "regression", "neg_root_mean_squared_error", lower_is_better=True),
        Metric("mae", "MAE", "regression", "neg_mean_absolute_error", lower_is_better=True),
        Metric("r2", "R²", "regression", "r2"),
    )
}

# The scalar quality metrics the evaluate stage writes per task: what the gate can name.
GATE_METRICS: dict[str, tuple[str, ...]] = {
    t: tuple(name for name, m in METRICS.items() if m.task == t) for t in TASKS
}
LOWER_IS_BETTER = frozenset(name for name, m in METRICS.items() if m.lower_is_better)
# For pydantic: the same names as a Literal type.
MetricName = Literal[tuple(METRICS)]  # type: ignore[valid-type]

# The metric each task's importance, labelled-drift checks and headline use first.
PRIMARY: dict[str, str] = {"classification": "f1_macro", "regression": "r2"}
# Per slice: the metric ranked (and a second one shown beside it, if any).
SLICE_METRIC: dict[str, tuple[str, str | None]] = {
    "classification": ("f1_macro", None),
    "regression": ("rmse", "mae"),
}
# What the report shows of the baseline model, per task.
BASELINE_SHOWN: dict[str, tuple[str, ...]] = {
    "classification": ("f1_macro", "log_loss"),
    "regression": GATE_METRICS["regression"],
}


def label(metric: str) -> str:
    return METRICS[metric].label if metric in METRICS else metric


def task_of(thing: Any) -> Task | None:
    """The task of a metrics file (its ``task`` key, or for files written before it had one,
    the metrics it holds), a model_meta.json (its ``task`` key) or a fitted model (a
    classifier has ``classes_``). None when it cannot tell."""
    if isinstance(thing, dict):
        if thing.get("task") in TASKS:
            return thing["task"]
        model = thing.get("model")
        if not isinstance(model, dict):
            return None
        if "per_class" in model or any(
            METRICS[m].task == "classification" for m in model if m in METRICS
        ):
            return "classification"
        if any(METRICS[m].task == "regression" for m in model if m in METRICS):
            return "regression"
        return None
    if not hasattr(thing, "predict"):  # neither a metrics file nor a model
        return None
    return "classification" if hasattr(thing, "classes_") else "regression"
