"""Model quality: the numbers the gate compares (classification from predicted probabilities,
regression from predicted values).

Shared by the evaluate stage (test set), the review (re-scoring the base branch's model on a
changed test set) and drift monitoring (labelled served rows), so the three agree exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
)

from mlci.tasks import task_of


def label_codes(values: Any, labels: list[str]) -> np.ndarray:
    """Each value's position in ``labels`` (-1 if absent), as integers.

    Metrics are computed on these codes, not on the label strings: scikit-learn sorts and
    compares string labels in Python, which costs seconds per metric on 100,000s of rows, while
    every metric here depends only on which rows share a label, not on the label's spelling.
    """
    return np.asarray(pd.Categorical(values, categories=labels).codes, dtype=np.intp)


def known_labels(y: Any, classes: list[str]) -> list[str]:
    """The model's classes in order, then any other label ``y`` has (so codes stay one-to-one)."""
    unseen = {v for v in pd.unique(np.asarray(y, dtype=object)) if not pd.isna(v)} - set(classes)
    return [*classes, *sorted(unseen, key=str)]


def quality(y: pd.Series, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    # Class j is code j, the column of ``proba`` that scores it.
    truth = label_codes(y, known_labels(y, classes))
    pred = proba.argmax(axis=1)
    codes = list(range(len(classes)))
    precision, recall, _, support = precision_recall_fscore_support(
        truth, pred, labels=codes, zero_division=0
    )
    return {
        "accuracy": round(float(accuracy_score(truth, pred)), 6),
        "balanced_accuracy": round(float(balanced_accuracy_score(truth, pred)), 6),
        "f1_macro": round(float(f1_score(truth, pred, average="macro", zero_division=0)), 6),
        "log_loss": round(float(log_loss(truth, proba, labels=codes)), 6),
        "roc_auc_ovr": round(float(_roc_auc(truth, proba, codes)), 6),
        "per_class": {
            c: {
                "precision": round(float(p), 6),
                "recall": round(float(r), 6),
                "support": int(s),
            }
            for c, p, r, s in zip(classes, precision, recall, support, strict=True)
        },
    }


def _roc_auc(truth: np.ndarray, proba: np.ndarray, codes: list[int]) -> float:
    if len(np.unique(truth)) < 2:
        return float("nan")
    if len(codes) == 2:
        return roc_auc_score(truth == codes[1], proba[:, 1])
    return roc_auc_score(truth, proba, multi_class="ovr", labels=codes)


def regression_quality(y: Any, pred: np.ndarray) -> dict[str, Any]:
    truth = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    return {
        "rmse": round(rmse(truth, pred), 6),
        "mae": round(float(mean_absolute_error(truth, pred)), 6),
        # R² is undefined for a constant truth (one row, or a one-valued slice).
        "r2": round(float(r2_score(truth, pred)), 6) if np.ptp(truth) > 0 else float("nan"),
    }


def rmse(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(truth) - np.asarray(pred)) ** 2)))


def model_quality(model: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, Any]:
    """Quality of a fitted model (a pipeline or a baseline) on ``X``, ``y``, by its task."""
    if task_of(model) == "classification":
        return quality(y, model.predict_proba(X), [str(c) for c in model.classes_])
    return regression_quality(y, model.predict(X))
