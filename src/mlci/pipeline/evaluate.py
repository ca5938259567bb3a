"""Lifecycle step 6: score the model and the baseline on the held-out test set.

Writes three metric files (quality, per-slice quality, cost: the model's size) and the data
behind the DVC plots (classification: confusion, ROC and precision-recall curves; regression:
residuals; both: permutation importance), all deterministic for the same inputs. A regression
model is scored on its answers as served, clipped to the contract's bounds on the target;
``metrics.json`` says how many test predictions needed it (``clipped_predictions``). Predict
latency is measured and varies from run to run and machine to machine, so it goes to the
git-ignored ``reports/timings.json`` (with the training stage's fit time), which no DVC stage
declares.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_curve,
    roc_curve,
)

from mlci import artifacts, contract, files, paths
from mlci.config import Params
from mlci.contract import features_and_target
from mlci.metrics import known_labels, label_codes, quality, regression_quality, rmse
from mlci.pipeline.train import record_run
from mlci.tasks import PRIMARY, task_of

MISSING = "(missing)"
# Curves are plot data: past this many points a curve is thinned (evenly, keeping both ends),
# so a large test set does not write (and plot) one point per row.
MAX_CURVE_POINTS = 1000


def slice_metrics(
    X: pd.DataFrame, y: pd.Series, pred: np.ndarray, columns: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    present = {*pd.unique(np.asarray(y, dtype=object)), *pd.unique(np.asarray(pred, dtype=object))}
    labels = sorted((v for v in present if not pd.isna(v)), key=str)
    truth, predicted = label_codes(y, labels), label_codes(pred, labels)
    for col in columns:
        values = X[col].astype("object").where(X[col].notna(), MISSING)
        per_value = {}
        for value in sorted(values.unique(), key=str):
            mask = (values == value).to_numpy()
            t, p = truth[mask], predicted[mask]
            per_value[str(value)] = {
                "n": int(mask.sum()),
                "accuracy": round(float(accuracy_score(t, p)), 6),
                "f1_macro": round(float(f1_score(t, p, average="macro", zero_division=0)), 6),
            }
        out[col] = per_value
    return out


def regression_slices(X: pd.DataFrame, y: pd.Series, pred: np.ndarray, columns: list[str]) -> dict:
    out: dict[str, Any] = {}
    truth, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    for col in columns:
        values = X[col].astype("object").where(X[col].notna(), MISSING)
        per_value = {}
        for value in sorted(values.unique(), key=str):
            mask = (values == value).to_numpy()
            t, p = truth[mask], pred[mask]
            per_value[str(value)] = {
                "n": int(mask.sum()),
                "rmse": round(rmse(t, p), 6),
                "mae": round(float(np.mean(np.abs(t - p))), 6),
            }
        out[col] = per_value
    return out


def residuals(y: pd.Series, pred: np.ndarray, seed: int) -> pd.DataFrame:
    """Actual against predicted per test row (a fixed random sample past MAX_CURVE_POINTS)."""
    frame = pd.DataFrame(
        {
            "actual": np.asarray(y, dtype=float).round(6),
            "predicted": np.asarray(pred, dtype=float).round(6),
        }
    )
    frame["residual"] = (frame["actual"] - frame["predicted"]).round(6)
    if len(frame) > MAX_CURVE_POINTS:
        keep = np.random.default_rng(seed).choice(len(frame), MAX_CURVE_POINTS, replace=False)
        frame = frame.iloc[np.sort(keep)]
    return frame.reset_index(drop=True)


def curves(y: pd.Series, proba: np.ndarray, classes: list[str]) -> dict[str, pd.DataFrame]:
    """One-vs-rest ROC and precision-recall points per class."""
    roc, pr = {}, {}
    for i, c in enumerate(classes):
        truth = (y == c).to_numpy()
        fpr, tpr, _ = roc_curve(truth, proba[:, i])
        precision, recall, _ = precision_recall_curve(truth, proba[:, i])
        roc[c] = _thin(pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)}))
        pr[c] = _thin(pd.DataFrame({"recall": recall.round(6), "precision": precision.round(6)}))
    return {"roc": roc, "pr": pr}


def _thin(curve: pd.DataFrame, limit: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    if len(curve) <= limit:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, limit).round().astype(int))
    return curve.iloc[keep].reset_index(drop=True)


def importance(
    model: Any, X: pd.DataFrame, y: pd.Series, repeats: int, seed: int, max_rows: int = 50_000
) -> pd.DataFrame:
    """Drop in the task's primary metric (macro F1, or R²) when one feature is shuffled, on
    at most ``max_rows`` test rows (scikit-learn's ``max_samples``: a seeded sample per
    repeat; the ``std`` column shows the spread over repeats)."""
    if task_of(model) == "classification":
        # Macro F1 of model.predict (what scoring="f1_macro" computes), on integer label codes.
        labels = known_labels(y, [str(c) for c in model.classes_])

        def f1_macro(estimator: Any, X_: pd.DataFrame, y_codes: np.ndarray) -> float:
            return f1_score(y_codes, label_codes(estimator.predict(X_), labels), average="macro")

        target, scoring = label_codes(y, labels), f1_macro
    else:
        target, scoring = np.asarray(y, dtype=float), "r2"
    result = permutation_importance(
        model,
        X,
        target,
        scoring=scoring,
        n_repeats=repeats,
        random_state=seed,
        n_jobs=1,
        max_samples=min(len(X), max_rows),
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
    """In-process prediction time for one row and for 1,000 rows (median of repeats):
    ``predict_proba`` for a classifier (what the service calls), ``predict`` for a regressor."""
    rng = np.random.default_rng(seed)
    one = X.iloc[[int(rng.integers(len(X)))]]
    batch = X.iloc[rng.integers(0, len(X), size=1000)]
    predict = model.predict_proba if task_of(model) == "classification" else model.predict
    predict(one)  # warm-up

    def median_ms(frame: pd.DataFrame, n: int) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            predict(frame)
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
    _clear_plots()
    if params.task == "classification":
        metrics = _classification(model, baseline, X, y, params)
    else:
        metrics = _regression(model, baseline, X, y, params)
    imp = importance(
        model,
        X,
        y,
        params.evaluate.permutation_repeats,
        params.seed,
        params.evaluate.importance_max_rows,
    )
    files.write_csv(paths.IMPORTANCE, imp)

    cost = {"model_size_bytes": paths.MODEL.stat().st_size}
    files.write_json(paths.COST, cost)
    timings = latency(model, X, params.evaluate.latency_repeats, params.seed)
    record_run(**timings, evaluated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    return {"metrics": metrics, "cost": cost, "timings": timings}


def _clear_plots() -> None:
    """No plot data left over from a removed class or from the other task."""
    for folder in (paths.ROC_DIR, paths.PR_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    for path in (paths.CONFUSION, paths.RESIDUALS):
        path.unlink(missing_ok=True)


def _classification(
    model: Any, baseline: Any, X: pd.DataFrame, y: pd.Series, params: Params
) -> dict[str, Any]:
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(X)
    pred = np.asarray(classes)[proba.argmax(axis=1)]
    metrics = {
        "task": "classification",
        "primary": PRIMARY["classification"],
        "model": quality(y, proba, classes),
        "baseline": quality(y, _aligned(baseline, X, classes), classes),
        "test_rows": len(X),
    }
    files.write_json(paths.METRICS, metrics)
    files.write_json(paths.SLICES, slice_metrics(X, y, pred, params.evaluate.slices))
    files.write_csv(paths.CONFUSION, pd.DataFrame({"actual": y.to_numpy(), "predicted": pred}))
    drawn = curves(y, proba, classes)
    for name, folder in (("roc", paths.ROC_DIR), ("pr", paths.PR_DIR)):
        for cls, frame in drawn[name].items():
            files.write_csv(folder / f"{cls}.csv", frame)
    return metrics


def _regression(
    model: Any, baseline: Any, X: pd.DataFrame, y: pd.Series, params: Params
) -> dict[str, Any]:
    # Scored as served: inside the contract's bounds on the target (mlci.spec.clip_target).
    pred, clipped = contract.spec().clip_target(model.predict(X))
    metrics = {
        "task": "regression",
        "primary": PRIMARY["regression"],
        "model": regression_quality(y, pred),
        "baseline": regression_quality(y, baseline.predict(X)),
        "test_rows": len(X),
        "clipped_predictions": clipped,
    }
    if clipped:
        bounds = f"[{contract.spec().target_minimum}, {contract.spec().target_maximum}]"
        print(
            f"evaluate: {clipped} of {len(X)} test prediction(s) fell outside the target's "
            f"contract bounds {bounds} and were clipped to them (as the service does)",
            file=sys.stderr,
        )
    files.write_json(paths.METRICS, metrics)
    files.write_json(paths.SLICES, regression_slices(X, y, pred, params.evaluate.slices))
    files.write_csv(paths.RESIDUALS, residuals(y, pred, params.seed))
    return metrics


def _aligned(model: Any, X: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Baseline probabilities in the model's class order (a class it never saw gets 0)."""
    proba = model.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(model.classes_):
        if str(c) in classes:
            out[:, classes.index(str(c))] = proba[:, j]
    return out
