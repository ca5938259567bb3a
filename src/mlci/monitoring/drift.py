"""Monitoring: is a batch of current data still distributed like the data the model learned from?

``mlci drift --current PATH`` compares a batch with the training data (the reference, by default
``data/processed/train.parquet``) column by column, as the data contract defines the features:

* numeric feature: two-sample Kolmogorov-Smirnov test on the values present, and PSI over the
  reference's quantile bins plus a "missing" bin;
* categorical feature: chi-square test of the category counts (a missing value is a category
  of its own; a Monte Carlo p-value where an expected count is below 5), and PSI; an open
  categorical (no ``isin``) over the reference's frequent values plus an "other" bucket;
* the prediction (prediction logs only), against the production model's predictions on the
  reference: the predicted class as a categorical, a regression's predicted value as a numeric.

All tests of one run form one family: their p-values are corrected together (Holm by default),
so ``monitor.alpha`` bounds the chance that a run on undrifted data reports any drift at all.
A column drifts when its corrected p-value is at most ``alpha`` and its PSI is at least
``monitor.min_psi`` (a large batch makes tiny, harmless shifts significant).

The batch also goes through the data contract (everything but the dataset-size and class-balance
rules), and when it carries the true target the model is scored on it against
``reports/metrics.json`` (:mod:`mlci.monitoring.quality`).

The current batch is either a data file (CSV, Parquet or JSON lines of rows, in the contract's
columns or the source's raw form, possibly with the target column; read with the contract's
types and cleaned as training data is) or the service's prediction log: JSON lines (a file, or a
directory of ``*.jsonl`` files) written by :mod:`mlci.serving.prediction_log`. A malformed line
is counted and skipped, never fatal. Exit codes: 0 no drift, 1 drift (or contract violations,
or a metric drop), 2 user error, 3 not enough data for a verdict.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np

from mlci import contract, files, paths
from mlci.config import Params
from mlci.errors import UserError
from mlci.monitoring.batches import Batch, load_current, load_reference
from mlci.monitoring.checks import contract_check
from mlci.monitoring.drift_report import _fmt_p, markdown, summary_text
from mlci.monitoring.quality import model_input, performance, predictions
from mlci.monitoring.statistics import compare

__all__ = ["analyse", "contract_check", "markdown", "performance", "run", "summary_text", "write"]

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_NOT_ENOUGH_DATA = 3


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
        ref_pred = predictions(model, ref)
        report["prediction_reference"] = "production model's predictions on the reference"
    report["columns"] = compare(ref, batch, cfg, reference_predictions=ref_pred, seed=params.seed)
    has_proba = model is not None and hasattr(model, "predict_proba")
    if batch.probabilities is not None and has_proba and len(batch.probabilities):
        report["confidence"] = {
            "mean_top_probability_current": float(batch.probabilities.max(axis=1).mean()),
            "mean_top_probability_reference": float(
                model.predict_proba(model_input(ref)).max(axis=1).mean()
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
        j = perf["judged"]
        fell = (
            f"{j['metric']} {perf['metrics'][j['metric']]:.3f}, test set "
            f"{perf['reference_metrics'][j['metric']]:.3f} (batch's {j['level']:.0%} upper "
            f"bound {j['upper_bound']:.3f})"
        )
        reasons.append(
            "model quality dropped by more than monitor.max_metric_drop="
            f"{cfg.max_metric_drop} on the labelled rows: {fell}"
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
    if "mean_shift_sd" in c:  # numeric features and a predicted value
        extra = f", mean moved {c['mean_shift_sd']:+.2f} SD"
    elif c.get("new_categories"):
        new = c["new_categories"]
        more = f" (+{len(new) - 10} more)" if len(new) > 10 else ""
        extra = f", new categories {new[:10]}{more}"
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
    if batch.cleaning is not None:
        out["cleaning"] = batch.cleaning
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
