"""Classification quality of predicted probabilities: the numbers the gate compares.

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
    precision_recall_fscore_support,
    roc_auc_score,
)


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
