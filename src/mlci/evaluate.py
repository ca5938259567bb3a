"""Lifecycle step 5: score the model and the baseline on the held-out test set.

Writes three metric files (quality, per-slice quality, cost) and the data behind the DVC plots.
Quality metrics are deterministic for the same inputs; cost (latency) is measured and varies, so
it lives in its own file that the gate does not compare exactly.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from mlci import artifacts, files, paths
from mlci.config import Params
from mlci.train import features_and_target

MISSING = "(missing)"


def quality(y: pd.Series, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    pred = np.asarray(classes)[proba.argmax(axis=1)]
    precision, recall, _, support = precision_recall_fscore_support(
        y, pred, labels=classes, zero_division=0
    )
    return {
        "accuracy": round(float(accuracy_score(y, pred)), 6),
        "balanced_accuracy": round(float(balanced_accuracy_score(y, pred)), 6),
        "f1_macro": round(float(f1_score(y, pred, average="macro", zero_division=0)), 6),
        "log_loss": round(float(log_loss(y, proba, labels=classes)), 6),
        "roc_auc_ovr": round(float(_roc_auc(y, proba, classes)), 6),
        "per_class": {
            c: {
                "precision": round(float(p), 6),
                "recall": round(float(r), 6),
                "support": int(s),
            }
            for c, p, r, s in zip(classes, precision, recall, support, strict=True)
        },
    }


def _roc_auc(y: pd.Series, proba: np.ndarray, classes: list[str]) -> float:
    present = set(y)
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return roc_auc_score(y == classes[1], proba[:, 1])
    return roc_auc_score(y, proba, multi_class="ovr", labels=classes)


def slice_metrics(
    X: pd.DataFrame, y: pd.Series, pred: np.ndarray, columns: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in columns:
        values = X[col].astype("object").where(X[col].notna(), MISSING)
        per_value = {}
        for value in sorted(values.unique(), key=str):
            mask = (values == value).to_numpy()
            per_value[str(value)] = {
                "n": int(mask.sum()),
                "accuracy": round(float(accuracy_score(y[mask], pred[mask])), 6),
                "f1_macro": round(
                    float(f1_score(y[mask], pred[mask], average="macro", zero_division=0)), 6
                ),
            }
        out[col] = per_value
    return out


def curves(y: pd.Series, proba: np.ndarray, classes: list[str]) -> dict[str, pd.DataFrame]:
    """One-vs-rest ROC and precision-recall points per class."""
    roc, pr = {}, {}
    for i, c in enumerate(classes):
        truth = (y == c).to_numpy()
        fpr, tpr, _ = roc_curve(truth, proba[:, i])
        precision, recall, _ = precision_recall_curve(truth, proba[:, i])
        roc[c] = pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)})
        pr[c] = pd.DataFrame({"recall": recall.round(6), "precision": precision.round(6)})
    return {"roc": roc, "pr": pr}


def importance(model: Any, X: pd.DataFrame, y: pd.Series, repeats: int, seed: int) -> pd.DataFrame:
    result = permutation_importance(
        model, X, y, scoring="f1_macro", n_repeats=repeats, random_state=seed, n_jobs=1
    )
    return (
        pd.DataFrame(
            {
                "feature": X.columns,
                "importance": result.importances_mean.round(6),
                "std": result.importances_std.round(6),
            }
        )
        .sort_values("importance", ascending=False)
        .reset_index(drop=True)
    )


def latency(model: Any, X: pd.DataFrame, repeats: int, seed: int) -> dict[str, float]:
    """In-process predict_proba time for one row and for 1,000 rows (median of repeats)."""
    rng = np.random.default_rng(seed)
    one = X.iloc[[int(rng.integers(len(X)))]]
    batch = X.iloc[rng.integers(0, len(X), size=1000)]
    model.predict_proba(one)  # warm-up

    def median_ms(frame: pd.DataFrame, n: int) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            model.predict_proba(frame)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1000)

    one_ms = median_ms(one, repeats)
    batch_ms = median_ms(batch, max(3, repeats // 5))
    return {
        "predict_1_row_ms": round(one_ms, 3),
        "predict_1000_rows_ms": round(batch_ms, 3),
        "rows_per_second_1000": round(1000 / (batch_ms / 1000), 1),
    }


def run(params: Params) -> dict[str, Any]:
    test = pd.read_parquet(paths.TEST)
    X, y = features_and_target(test)
    model = artifacts.load_model(paths.MODEL)
    baseline = artifacts.load_model(paths.BASELINE)
    classes = [str(c) for c in model.classes_]

    proba = model.predict_proba(X)
    pred = np.asarray(classes)[proba.argmax(axis=1)]
    metrics = {
        "model": quality(y, proba, classes),
        "baseline": quality(y, _aligned(baseline, X, classes), classes),
        "test_rows": len(test),
    }
    files.write_json(paths.METRICS, metrics)
    files.write_json(paths.SLICES, slice_metrics(X, y, pred, params.evaluate.slices))

    files.write_csv(paths.CONFUSION, pd.DataFrame({"actual": y.to_numpy(), "predicted": pred}))
    drawn = curves(y, proba, classes)
    for name, folder in (("roc", paths.ROC_DIR), ("pr", paths.PR_DIR)):
        shutil.rmtree(folder, ignore_errors=True)  # no curve left over from a removed class
        for cls, frame in drawn[name].items():
            files.write_csv(folder / f"{cls}.csv", frame)
    imp = importance(model, X, y, params.evaluate.permutation_repeats, params.seed)
    files.write_csv(paths.IMPORTANCE, imp)

    meta = files.read_json(paths.MODEL_META)
    cost = {
        "model_size_bytes": paths.MODEL.stat().st_size,
        "fit_seconds": meta.get("fit_seconds"),
        **latency(model, X, params.evaluate.latency_repeats, params.seed),
    }
    files.write_json(paths.COST, cost)
    return {"metrics": metrics, "cost": cost}


def _aligned(model: Any, X: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Baseline probabilities in the model's class order (a class it never saw gets 0)."""
    proba = model.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(model.classes_):
        if str(c) in classes:
            out[:, classes.index(str(c))] = proba[:, j]
    return out
