"""The model's quality on the rows of a batch that carry the true target: concept drift, which
no feature test can see, judged against the test set's metrics in ``reports/metrics.json``.

The batch is scored with the task's metrics (:mod:`mlci.metrics`, as the evaluate stage scores
the test set) and every one is reported with its change. One is judged, the task's primary
metric (macro F1; R² for regression), on size *and* evidence, as the drift tests are: degraded
when it is more than ``monitor.max_metric_drop`` below the test set **and** the batch's one-sided
bootstrap upper bound (level 1 - ``monitor.alpha``) is below the test set's value too. A point
estimate alone misleads on small batches: on 88 unshifted rows of a regression whose test-set R²
is 0.46, R² came out at 0.33 by chance. RMSE and MAE are in the target's units, so a fixed
tolerance means nothing across projects: reported, never judged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlci import contract, files
from mlci.config import MonitorConfig
from mlci.monitoring.batches import Batch, _is_number
from mlci.monitoring.statistics import _numeric

BOOTSTRAP_RESAMPLES = 1000
CHUNK_CELLS = 4_000_000  # resampled rows drawn at once, at most (memory, not speed)


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract's feature columns as the model was trained on them: numbers (a value that
    is not one becomes missing; the contract check reports it) and text."""
    spec = contract.spec()
    X = frame[spec.feature_names].copy()
    for name in spec.numeric:
        X[name] = _numeric(X[name])
    for name in spec.categorical:
        # Missing as NaN, as the training table reads back from Parquet: scikit-learn's imputer
        # cannot compare pandas' NA ("boolean value of NA is ambiguous").
        values = X[name].astype(object)
        X[name] = values.where(values.notna(), np.nan)
    return X


def predictions(model: Any, frame: pd.DataFrame) -> pd.Series:
    """The model's predictions on ``frame``: class labels, or floats for regression."""
    pred = model.predict(model_input(frame))
    dtype = object if contract.spec().task == "classification" else float
    return pd.Series(pred, dtype=dtype)


def _labelled(batch: Batch) -> tuple[np.ndarray, pd.Series]:
    """Which rows carry a usable target, and the target (labels, or floats for regression)."""
    spec = contract.spec()
    target = batch.frame[spec.target]
    if spec.task == "classification":
        labels = target.astype(object)
        return labels.isin(spec.classes).to_numpy(), labels
    values = pd.Series(_numeric(target), index=target.index)
    return np.isfinite(values.to_numpy()), values


def _scores(model: Any, X: pd.DataFrame, y: pd.Series) -> tuple[dict[str, Any], np.ndarray]:
    """The task's metrics, and the primary metric of BOOTSTRAP_RESAMPLES resamples of the rows."""
    from mlci.metrics import known_labels, label_codes, quality, regression_quality

    seed = 0  # fixed: the same batch always gets the same verdict
    if contract.spec().task == "regression":
        truth, pred = y.to_numpy(dtype=float), np.asarray(model.predict(X), dtype=float)
        return regression_quality(truth, pred), _resampled(_r2, truth, pred, seed)
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(X)
    labels = y.astype(str)
    codes = label_codes(labels, known_labels(labels, classes))
    pred = proba.argmax(axis=1)
    k = int(max(codes.max(), pred.max())) + 1
    try:
        metrics = quality(labels, proba, classes)
    except ValueError:  # e.g. ROC AUC with a class absent from the batch
        from sklearn.metrics import accuracy_score, f1_score

        metrics = {
            "accuracy": round(float(accuracy_score(codes, pred)), 6),
            "f1_macro": round(float(f1_score(codes, pred, average="macro", zero_division=0)), 6),
        }
    metrics.pop("per_class", None)
    return metrics, _resampled(lambda t, p: _f1_macro(t, p, k), codes, pred, seed)


def _resampled(metric: Any, truth: np.ndarray, pred: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(truth)
    step = max(1, CHUNK_CELLS // n)
    out = []
    for start in range(0, BOOTSTRAP_RESAMPLES, step):
        rows = rng.integers(0, n, (min(step, BOOTSTRAP_RESAMPLES - start), n))
        out.append(metric(truth[rows], pred[rows]))
    return np.concatenate(out)


def _r2(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """R² of each row of resampled values (NaN where the target is constant)."""
    sse = ((y - p) ** 2).sum(axis=1)
    sst = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sst > 0, 1 - sse / sst, np.nan)


def _f1_macro(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Macro F1 of each row of resampled class codes, over the labels present in it (as
    scikit-learn averages), from per-resample confusion counts."""
    b = len(t)
    cells = (np.arange(b)[:, None] * k * k + t * k + p).ravel()
    cm = np.bincount(cells, minlength=b * k * k).reshape(b, k, k)  # [resample, truth, pred]
    tp = np.diagonal(cm, axis1=1, axis2=2)
    denom = cm.sum(axis=1) + cm.sum(axis=2)  # 2 tp + fp + fn
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1.sum(axis=1) / present.sum(axis=1)


def performance(batch: Batch, model: Any, cfg: MonitorConfig, metrics_path: Path) -> dict[str, Any]:
    """The model's quality on the labelled rows of the batch, against the test-set metrics."""
    from mlci.tasks import PRIMARY

    primary = PRIMARY[contract.spec().task]
    valid, y = _labelled(batch)
    out: dict[str, Any] = {"labelled_rows": int(valid.sum()), "primary": primary}
    if valid.sum() < cfg.min_batch_size:
        return {**out, "status": "not_enough_data"}
    metrics, resampled = _scores(model, model_input(batch.frame.loc[valid]), y[valid])
    out["metrics"] = metrics
    if not metrics_path.is_file():
        return {**out, "status": "no_reference_metrics", "degraded": False}
    ref = files.read_json(metrics_path).get("model", {})
    deltas = {}
    for name, value in metrics.items():
        base = ref.get(name)
        if _is_number(base) and _is_number(value) and not math.isnan(value):
            deltas[name] = round(value - base, 6)
    out.update(
        status="compared",
        reference_metrics={k: ref[k] for k in deltas},
        delta=deltas,
        degraded_metrics=[],
        degraded=False,
    )
    if primary not in deltas or np.isnan(resampled).all():
        return out
    drop = -deltas[primary]
    upper = float(np.nanquantile(resampled, 1 - cfg.alpha))
    judged = {
        "metric": primary,
        "drop": round(drop, 6),
        "beyond_tolerance": drop > cfg.max_metric_drop,
        "upper_bound": round(upper, 6),
        "level": 1 - cfg.alpha,
        "resamples": BOOTSTRAP_RESAMPLES,
        "beyond_noise": upper < ref[primary],
    }
    degraded = judged["beyond_tolerance"] and judged["beyond_noise"]
    degraded_metrics = [primary] if degraded else []
    return {**out, "judged": judged, "degraded_metrics": degraded_metrics, "degraded": degraded}
