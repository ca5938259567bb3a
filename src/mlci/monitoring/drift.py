"""Monitoring: is a batch of current data still distributed like the data the model learned from?

``mlci drift --current PATH`` compares a batch with the training data (the reference, by default
``data/processed/train.parquet``) column by column, as the data contract defines the features:

* numeric feature: two-sample Kolmogorov-Smirnov test on the values present, and PSI over the
  reference's quantile bins plus a "missing" bin;
* categorical feature: chi-square test of the category counts (a missing value is a category
  of its own; a Monte Carlo p-value where an expected count is below 5), and PSI;
* predicted class (prediction logs only): chi-square test and PSI of the logged predictions
  against the production model's predictions on the reference.

All tests of one run form one family: their p-values are corrected together (Holm by default),
so ``monitor.alpha`` bounds the chance that a run on undrifted data reports any drift at all.
A column drifts when its corrected p-value is at most ``alpha`` and its PSI is at least
``monitor.min_psi`` (a large batch makes tiny, harmless shifts significant).

The batch also goes through the data contract (everything but the dataset-size and class-balance
rules), and when it carries true labels the model is scored on it against ``reports/metrics.json``.

The current batch is either a data file (CSV or Parquet in the contract's columns, possibly with
the label column) or the service's prediction log: JSON lines (a file, or a directory of
``*.jsonl`` files) written by :mod:`mlci.serving.prediction_log`. A malformed line is counted
and skipped, never fatal. Exit codes: 0 no drift, 1 drift (or contract violations, or a metric
drop), 2 user error, 3 not enough data for a verdict.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pandera.pandas as pa

from mlci import contract, files, findings, paths
from mlci.config import MonitorConfig, Params
from mlci.errors import UserError
from mlci.monitoring.batches import Batch, _is_number, load_current, load_reference
from mlci.monitoring.drift_report import _fmt_p, markdown, summary_text
from mlci.monitoring.statistics import _numeric, compare

__all__ = ["analyse", "markdown", "run", "summary_text", "write"]

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_NOT_ENOUGH_DATA = 3
HIGHER_IS_BETTER = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr")


# --------------------------------------------------------------------------- contract, metrics


def contract_check(batch: Batch, params: Params) -> dict[str, Any]:
    """The contract's column rules on the batch; no dataset-size or class-balance rule."""
    spec = contract.spec()
    full = contract.validation_schema(
        min_rows=0,
        max_rows=2**62,
        min_class_share=0.0,
        max_missing_share=params.validate_.max_missing_share,
    )
    failures: list[dict[str, Any]] = []
    frame = batch.frame
    if batch.kind == "data":
        for name in spec.feature_names:
            if name not in frame.columns:
                failures.append(
                    {
                        "column": name,
                        "check": "column_in_dataframe",
                        "failing_rows": None,
                        "examples": [],
                        "message": f"required column {name!r} is missing",
                    }
                )
        present = [c for c in full.columns if c in frame.columns]
        groups = [(present, np.ones(len(frame), dtype=bool), True)]
    else:
        # A log carries features only; a feature may be logged on some lines and not others.
        unknown = [c for c in frame.columns if c not in spec.feature_names]
        for name in unknown:
            failures.append(
                {
                    "column": name,
                    "check": "column_in_schema",
                    "failing_rows": int(batch.available[name].sum()),
                    "examples": [],
                    "message": f"unexpected feature {name!r} (not in the contract)",
                }
            )
        known = [c for c in frame.columns if c in spec.feature_names]
        everywhere = [c for c in known if batch.available[c].all()]
        groups = [(everywhere, np.ones(len(frame), dtype=bool), False)]
        groups += [([c], batch.available[c], False) for c in known if c not in everywhere]
    for columns, rows, strict in groups:
        if not columns or not rows.any():
            continue
        schema = pa.DataFrameSchema(
            columns={c: full.columns[c] for c in columns},
            checks=[],
            strict=strict,
            coerce=True,
        )
        sub = frame.loc[rows, [c for c in frame.columns if strict or c in columns]]
        try:
            schema.validate(sub, lazy=True)
        except pa_errors.SchemaErrors as err:
            failures.extend(findings.describe(err.failure_cases, sub))
    if batch.origins is not None:
        for f in failures:
            for e in f["examples"]:
                if e.get("row") is not None and e["row"] < len(batch.origins):
                    e["where"] = batch.origins[e["row"]]
    return {"valid": not failures, "failures": failures}


def performance(batch: Batch, model: Any, cfg: MonitorConfig, metrics_path: Path) -> dict[str, Any]:
    """The model's quality on the labelled rows of the batch, against the test-set metrics."""
    from mlci.metrics import quality

    spec = contract.spec()
    labels = batch.frame[spec.target].astype(object)
    valid = labels.isin(spec.classes).to_numpy()
    out: dict[str, Any] = {"labelled_rows": int(valid.sum())}
    if valid.sum() < cfg.min_batch_size:
        return {**out, "status": "not_enough_data"}
    X = batch.frame.loc[valid, spec.feature_names].copy()
    for f in spec.features:
        X[f.name] = _numeric(X[f.name]) if f.kind == "numeric" else X[f.name].astype(object)
    y = labels[valid].astype(str)
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(X)
    try:
        metrics = quality(y, proba, classes)
    except ValueError:  # e.g. ROC AUC with a class absent from the batch
        pred = np.asarray(classes)[proba.argmax(axis=1)]
        from sklearn.metrics import accuracy_score, f1_score

        metrics = {
            "accuracy": round(float(accuracy_score(y, pred)), 6),
            "f1_macro": round(float(f1_score(y, pred, average="macro", zero_division=0)), 6),
        }
    metrics.pop("per_class", None)
    out["metrics"] = metrics
    if not metrics_path.is_file():
        return {**out, "status": "no_reference_metrics", "degraded": False}
    ref = files.read_json(metrics_path).get("model", {})
    deltas, degraded = {}, []
    for name, value in metrics.items():
        base = ref.get(name)
        if not _is_number(base) or not _is_number(value) or math.isnan(value):
            continue
        deltas[name] = round(value - base, 6)
        if name in HIGHER_IS_BETTER and base - value > cfg.max_metric_drop:
            degraded.append(name)
    return {
        **out,
        "status": "compared",
        "reference_metrics": {k: ref[k] for k in deltas},
        "delta": deltas,
        "degraded_metrics": degraded,
        "degraded": bool(degraded),
    }


# --------------------------------------------------------------------------- the run


def analyse(
    current: Path,
    reference: Path,
    params: Params,
    *,
    model_path: Path = paths.MODEL,
    metrics_path: Path = paths.METRICS,
    meta_path: Path = paths.MODEL_META,
) -> dict[str, Any]:
    from mlci.monitoring import model_age

    cfg = params.monitor
    spec = contract.spec()
    ref = load_reference(reference)
    batch = load_current(current)
    report: dict[str, Any] = {
        "status": None,
        "exit_code": None,
        "reasons": [],
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": cfg.model_dump(),
        "reference": {"path": str(reference), "rows": len(ref)},
        "current": _batch_summary(batch),
    }
    report["reference"].update(_reference_provenance(Path(reference), meta_path))
    # The model is needed only for logged predictions and for labels (loading it costs seconds).
    model = None
    if batch.predictions is not None or spec.target in batch.frame.columns:
        from mlci import artifacts

        model = artifacts.load_model(model_path) if Path(model_path).is_file() else None
        report["model"] = {"path": str(model_path), "found": model is not None}
    try:
        report["staleness"] = model_age.staleness(cfg, meta_path)
    except UserError as err:
        report["staleness"] = {"status": "unknown", "note": str(err)}

    report["contract"] = contract_check(batch, params)
    usable = batch.rows
    if usable < cfg.min_batch_size:
        report["columns"] = []
        return _finish(
            report,
            "not_enough_data",
            [
                f"the batch has {usable} usable row(s); at least monitor.min_batch_size="
                f"{cfg.min_batch_size} are needed for a verdict"
                + (f" ({batch.malformed} malformed line(s) skipped)" if batch.malformed else "")
            ],
        )

    ref_pred = None
    if batch.predictions is not None and model is not None:
        ref_pred = pd.Series(model.predict(ref[spec.feature_names]), dtype=object)
        report["prediction_reference"] = "production model's predictions on the reference"
    report["columns"] = compare(ref, batch, cfg, reference_predictions=ref_pred, seed=params.seed)
    if batch.probabilities is not None and model is not None and len(batch.probabilities):
        report["confidence"] = {
            "mean_top_probability_current": float(batch.probabilities.max(axis=1).mean()),
            "mean_top_probability_reference": float(
                model.predict_proba(ref[spec.feature_names]).max(axis=1).mean()
            ),
        }
    if spec.target in batch.frame.columns:
        if model is None:
            report["performance"] = {"status": "no_model"}
        else:
            report["performance"] = performance(batch, model, cfg, metrics_path)

    tested = [c for c in report["columns"] if c["status"] == "tested"]
    reasons = [_reason(c) for c in report["columns"] if c["drifted"]]
    if not report["contract"]["valid"]:
        reasons.append(
            f"{len(report['contract']['failures'])} data-contract violation(s) in the batch"
        )
    perf = report.get("performance") or {}
    if perf.get("degraded"):
        reasons.append(
            "model quality dropped by more than monitor.max_metric_drop="
            f"{cfg.max_metric_drop} on the labelled rows: {', '.join(perf['degraded_metrics'])}"
        )
    if reasons:
        return _finish(report, "drift", reasons)
    if not tested:
        return _finish(
            report,
            "not_enough_data",
            [
                "no column could be tested: each needs at least monitor.min_batch_size="
                f"{cfg.min_batch_size} values"
            ],
        )
    return _finish(report, "no_drift", [])


def _reason(c: dict[str, Any]) -> str:
    extra = ""
    if c["kind"] == "numeric":
        extra = f", mean moved {c['mean_shift_sd']:+.2f} SD"
    elif c.get("new_categories"):
        extra = f", new categories {c['new_categories']}"
    return (
        f"{c['column']}: {c['test']} p={_fmt_p(c['p_value'])} "
        f"(corrected {_fmt_p(c['p_adjusted'])}), PSI {c['psi']:.3f} ({c['psi_level']}){extra}"
    )


def _finish(report: dict[str, Any], status: str, reasons: list[str]) -> dict[str, Any]:
    codes = {
        "no_drift": EXIT_NO_DRIFT,
        "drift": EXIT_DRIFT,
        "not_enough_data": EXIT_NOT_ENOUGH_DATA,
    }
    report["status"] = status
    report["exit_code"] = codes[status]
    report["reasons"] = reasons
    return _clean(report)


def _batch_summary(batch: Batch) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": batch.kind,
        "sources": batch.sources,
        "rows": batch.rows,
        "columns": [str(c) for c in batch.frame.columns],
        "labelled": contract.spec().target in batch.frame.columns,
    }
    if batch.kind == "prediction_log":
        out.update(
            {
                "lines_read": batch.lines_read,
                "malformed_lines": batch.malformed,
                "malformed_reasons": dict(batch.malformed_reasons.most_common()),
                "malformed_examples": batch.malformed_examples,
                "with_prediction": 0 if batch.predictions is None else len(batch.predictions),
                "model_versions": dict(batch.model_versions.most_common()),
                "time_range": batch.time_range,
            }
        )
    return out


def _reference_provenance(reference: Path, meta_path: Path) -> dict[str, Any]:
    """Whether the reference is the data the current model was trained on."""
    if not Path(meta_path).is_file() or not reference.is_file():
        return {"is_model_training_data": None}
    meta = files.read_json(meta_path)
    digest = files.sha256_file(reference)
    same = digest == meta.get("train_data_sha256")
    return {"sha256": digest, "is_model_training_data": same}


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------- the report


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "drift.json", out_dir / "drift.md"
    try:
        files.write_json(json_path, report)
        files.write_text(md_path, markdown(report))
    except OSError as err:
        raise UserError(f"--out-dir {out_dir}: cannot write the report there: {err}") from None
    return json_path, md_path


def run(params: Params, current: Path, reference: Path, out_dir: Path) -> dict[str, Any]:
    report = analyse(Path(current), Path(reference), params)
    json_path, md_path = write(report, out_dir)
    report["written"] = [str(json_path), str(md_path)]
    return report
