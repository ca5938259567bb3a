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
import gzip
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pandera.pandas as pa
from scipy import stats

from mlci import contract, files, paths
from mlci.config import MonitorConfig, Params
from mlci.errors import UserError

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_NOT_ENOUGH_DATA = 3

MISSING = "(missing)"
PREDICTION = "(predicted class)"
LOG_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")  # rotated logs: gzip
DATA_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
LOG_KEYS = ("request_id", "timestamp", "model_version", "features", "prediction", "probabilities")
MALFORMED_EXAMPLES = 10
# Added to every bin count before PSI (Jeffreys smoothing): an empty bin gets a small share
# that shrinks with the sample size, so PSI stays finite and a few rows do not blow it up.
PSI_PSEUDOCOUNT = 0.5
MC_RESAMPLES = 4999  # Monte Carlo chi-square where an expected count is below 5
MC_MIN_EXPECTED = 5.0
HIGHER_IS_BETTER = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr")


# --------------------------------------------------------------------------- the current batch


@dataclass
class Batch:
    """A batch of current data, whatever file it came from.

    ``frame`` holds the contract columns found (features, and the label when present);
    ``available`` says per column which rows carry it (a prediction log may leave a feature out
    for privacy: that is "not logged", not "missing").
    """

    kind: str  # "data" or "prediction_log"
    sources: list[str]
    frame: pd.DataFrame
    available: dict[str, np.ndarray]
    predictions: pd.Series | None = None
    probabilities: pd.DataFrame | None = None
    lines_read: int = 0
    malformed: int = 0
    malformed_reasons: Counter = field(default_factory=Counter)
    malformed_examples: list[dict[str, Any]] = field(default_factory=list)
    origins: list[str] | None = None  # "file:line" per row of a prediction log
    model_versions: Counter = field(default_factory=Counter)
    time_range: tuple[str, str] | None = None

    @property
    def rows(self) -> int:
        return len(self.frame)

    def values(self, column: str) -> pd.Series:
        """The column's values on the rows that carry it (missing values included)."""
        rows = self.available[column]
        return self.frame[column] if rows.all() else self.frame.loc[rows, column]


def read_table(path: Path, what: str) -> pd.DataFrame:
    fmt = DATA_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{what} {path}: unknown format; use .csv, .parquet, or .jsonl prediction logs"
        )
    if not path.is_file():
        raise UserError(f"{what} {path}: file not found")
    try:
        df = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise UserError(f"{what} {path}: cannot read it as {fmt}: {err}") from None
    return df.reset_index(drop=True)


def load_current(path: Path) -> Batch:
    path = Path(path)
    if path.is_dir():
        logs = sorted(p for p in path.iterdir() if p.name.lower().endswith(LOG_SUFFIXES))
        if not logs:
            raise UserError(f"current batch {path}: a directory, but it has no *.jsonl files")
        return read_prediction_logs(logs)
    if not path.exists():
        raise UserError(f"current batch {path}: no such file or directory")
    if path.name.lower().endswith(LOG_SUFFIXES):
        return read_prediction_logs([path])
    return data_batch(read_table(path, "current batch"), str(path))


def data_batch(df: pd.DataFrame, source: str = "(in memory)") -> Batch:
    """A batch from a table in the contract's columns (every row carries every column)."""
    spec = contract.spec()
    df = df.reset_index(drop=True)
    present = [c for c in [*spec.feature_names, spec.target] if c in df.columns]
    available = {c: np.ones(len(df), dtype=bool) for c in present}
    return Batch("data", [source], df, available)


class _MalformedLineError(ValueError):
    pass


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_log_line(raw: bytes, classes: tuple[str, ...]) -> dict[str, Any]:
    """One prediction-log line as a dict, or :class:`_MalformedLineError` with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _MalformedLineError("not UTF-8 text") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise _MalformedLineError("not valid JSON (truncated or corrupted line)") from None
    if not isinstance(record, dict):
        raise _MalformedLineError("not a JSON object")
    if not set(record) & set(LOG_KEYS):
        raise _MalformedLineError(f"none of the expected keys {list(LOG_KEYS)}")
    for key in ("request_id", "model_version", "timestamp", "prediction"):
        if key in record and not isinstance(record[key], str):
            raise _MalformedLineError(f"{key!r} is not a string")
    if "timestamp" in record:
        try:
            ts = dt.datetime.fromisoformat(record["timestamp"])
        except ValueError:
            raise _MalformedLineError("'timestamp' is not an ISO-8601 time") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)
        record["timestamp"] = ts.astimezone(dt.UTC)
    if "prediction" in record and record["prediction"] not in classes:
        raise _MalformedLineError("'prediction' is not a class of the contract")
    features = record.get("features", {})
    if not isinstance(features, dict):
        raise _MalformedLineError("'features' is not an object")
    for name, value in features.items():
        if value is not None and not isinstance(value, str) and not _is_number(value):
            raise _MalformedLineError(f"feature {name!r} is not a string, number or null")
    proba = record.get("probabilities", {})
    if not isinstance(proba, dict) or not all(_is_number(v) for v in proba.values()):
        raise _MalformedLineError("'probabilities' is not an object of numbers")
    return record


def read_prediction_logs(log_files: list[Path]) -> Batch:
    spec = contract.spec()
    classes = spec.classes
    records: list[dict[str, Any]] = []
    origins: list[str] = []
    reasons: Counter = Counter()
    examples: list[dict[str, Any]] = []
    lines_read = 0

    def malformed(log_file: Path, number: int, reason: str) -> None:
        reasons[reason] += 1
        if len(examples) < MALFORMED_EXAMPLES:
            examples.append({"file": str(log_file), "line": number, "reason": reason})

    for log_file in log_files:
        try:
            opener = gzip.open if log_file.suffix == ".gz" else Path.open
            handle = opener(log_file, "rb")
        except OSError as err:
            raise UserError(f"prediction log {log_file}: cannot open it: {err}") from None
        number = 0
        with handle:
            try:
                for number, raw in enumerate(handle, start=1):
                    if not raw.strip():
                        continue
                    lines_read += 1
                    try:
                        records.append(parse_log_line(raw.strip(), classes))
                    except _MalformedLineError as err:
                        malformed(log_file, number, str(err))
                        continue
                    origins.append(f"{log_file}:{number}")
            except (OSError, EOFError):  # a damaged or cut-off .gz: keep what was read
                lines_read += 1
                malformed(log_file, number + 1, "unreadable from here on (damaged compressed file)")

    names: list[str] = []
    for r in records:
        for name in r.get("features", {}):
            if name not in names:
                names.append(name)
    frame = pd.DataFrame(
        {n: [r.get("features", {}).get(n) for r in records] for n in names},
        index=pd.RangeIndex(len(records)),
        dtype=object,
    )
    available = {
        n: np.array([n in r.get("features", {}) for r in records], dtype=bool) for n in names
    }
    has_pred = np.array(["prediction" in r for r in records], dtype=bool)
    predictions = None
    if has_pred.any():
        predictions = pd.Series([r.get("prediction") for r in records], dtype=object)[has_pred]
    probabilities = None
    if any("probabilities" in r for r in records):
        probabilities = pd.DataFrame(
            [r["probabilities"] for r in records if "probabilities" in r], dtype=float
        )
    stamps = [r["timestamp"] for r in records if "timestamp" in r]
    return Batch(
        kind="prediction_log",
        sources=[str(p) for p in log_files],
        frame=frame,
        available=available,
        predictions=predictions,
        probabilities=probabilities,
        lines_read=lines_read,
        malformed=sum(reasons.values()),
        malformed_reasons=reasons,
        malformed_examples=examples,
        origins=origins,
        model_versions=Counter(r["model_version"] for r in records if "model_version" in r),
        time_range=(min(stamps).isoformat(), max(stamps).isoformat()) if stamps else None,
    )


def load_reference(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"reference {path}: file not found (run `make run`, or `dvc pull`, or pass --reference)"
        )
    df = read_table(path, "reference")
    missing = [c for c in contract.spec().feature_names if c not in df.columns]
    if missing:
        raise UserError(f"reference {path}: lacks the contract feature(s) {missing}")
    return df


# --------------------------------------------------------------------------- statistics


def _numeric(values: pd.Series) -> np.ndarray:
    """Float values (anything that is not a number becomes NaN, i.e. missing)."""
    if pd.api.types.is_float_dtype(values.dtype):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _categorical(values: pd.Series) -> np.ndarray:
    """Category labels as strings, with ``MISSING`` for a missing value."""
    arr = values.to_numpy(dtype=object, na_value=None)
    missing = pd.isna(arr)
    out = np.empty(len(arr), dtype=object)
    out[missing] = MISSING
    out[~missing] = [v if isinstance(v, str) else str(v) for v in arr[~missing]]
    return out


def _shares(counts: np.ndarray) -> np.ndarray:
    smoothed = counts + PSI_PSEUDOCOUNT
    return smoothed / smoothed.sum()


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index, sum over bins of (cur - ref) * ln(cur / ref)."""
    r, c = _shares(np.asarray(reference, float)), _shares(np.asarray(current, float))
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_bins(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of the reference's quantile bins (ties merge bins)."""
    qs = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def numeric_psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    """PSI over the reference's quantile bins, plus one bin for missing values (a jump in
    gaps is a shift too)."""
    r_missing, c_missing = np.isnan(ref), np.isnan(cur)
    r, c = ref[~r_missing], cur[~c_missing]
    edges = numeric_bins(r, bins)
    n = len(edges) + 1
    rc = np.bincount(np.searchsorted(edges, r, side="right"), minlength=n)
    cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=n)
    return psi_from_counts(np.append(rc, r_missing.sum()), np.append(cc, c_missing.sum()))


def category_counts(
    ref: np.ndarray, cur: np.ndarray, known: tuple[str, ...]
) -> tuple[list[str], np.ndarray]:
    """Categories seen (contract categories first, then any others, then missing) and a
    2 x k table of counts: reference, current."""
    rk, rn = np.unique(ref, return_counts=True)
    ck, cn = np.unique(cur, return_counts=True)
    rc, cc = (
        dict(zip(rk.tolist(), rn.tolist(), strict=True)),
        dict(zip(ck.tolist(), cn.tolist(), strict=True)),
    )
    others = sorted((set(rc) | set(cc)) - set(known) - {MISSING})
    order = [k for k in [*known, *others, MISSING] if rc.get(k, 0) + cc.get(k, 0) > 0]
    table = np.array([[rc.get(k, 0) for k in order], [cc.get(k, 0) for k in order]])
    return order, table


def chi_square(observed: np.ndarray, seed: int) -> tuple[float, float, str]:
    """Chi-square test of a 2 x k table of counts (reference row, current row)."""
    if observed.shape[1] < 2:
        return 0.0, 1.0, "chi-square"
    expected = stats.contingency.expected_freq(observed)
    if expected.min() >= MC_MIN_EXPECTED:
        res = stats.chi2_contingency(observed, correction=False)
        return float(res.statistic), float(res.pvalue), "chi-square"
    # Sparse categories: the chi-square distribution is a poor approximation there (and errs
    # towards false alarms), so the p-value comes from random tables with the same margins.
    method = stats.MonteCarloMethod(n_resamples=MC_RESAMPLES, rng=np.random.default_rng(seed))
    res = stats.chi2_contingency(observed, correction=False, method=method)
    return float(res.statistic), float(res.pvalue), "chi-square (Monte Carlo)"


def adjust(pvalues: list[float], method: str) -> list[float]:
    """Multiple-testing adjusted p-values (Holm step-down, Bonferroni, or none)."""
    m = len(pvalues)
    if method == "none" or m == 0:
        return list(pvalues)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in pvalues]
    order = np.argsort(pvalues, kind="stable")
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def psi_level(psi: float, cfg: MonitorConfig) -> str:
    if psi >= cfg.psi_major:
        return "major"
    if psi >= cfg.psi_moderate:
        return "moderate"
    return "small"


def numeric_drift(
    name: str, ref_values: pd.Series, cur_values: pd.Series, cfg: MonitorConfig
) -> dict[str, Any]:
    """Kolmogorov-Smirnov test on the present values, PSI, and the mean's move in SDs."""
    ref, cur = _numeric(ref_values), _numeric(cur_values)
    r, c = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    out: dict[str, Any] = {
        "column": name,
        "kind": "numeric",
        "test": "kolmogorov-smirnov",
        "n_reference": len(r),
        "n_current": len(c),
        "missing_share_reference": _share(len(ref) - len(r), len(ref)),
        "missing_share_current": _share(len(cur) - len(c), len(cur)),
    }
    if min(len(r), len(c)) < cfg.min_batch_size:
        return {**out, "status": "not_enough_data"}
    res = stats.ks_2samp(r, c)
    sd = float(r.std(ddof=1)) or 1.0
    return {
        **out,
        "status": "tested",
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "psi": numeric_psi(ref, cur, cfg.psi_bins),
        "mean_reference": float(r.mean()),
        "mean_current": float(c.mean()),
        "mean_shift_sd": float((c.mean() - r.mean()) / sd),
    }


def categorical_drift(
    name: str,
    ref_values: pd.Series,
    cur_values: pd.Series,
    cfg: MonitorConfig,
    known: tuple[str, ...],
    seed: int,
) -> dict[str, Any]:
    """Chi-square test of the category counts (missing is a category), PSI, shares."""
    r, c = _categorical(ref_values), _categorical(cur_values)
    out: dict[str, Any] = {
        "column": name,
        "kind": "categorical",
        "test": "chi-square",
        "n_reference": len(r),
        "n_current": len(c),
        "missing_share_reference": _share((r == MISSING).sum(), len(r)),
        "missing_share_current": _share((c == MISSING).sum(), len(c)),
    }
    if min(len(r), len(c)) < cfg.min_batch_size:
        return {**out, "status": "not_enough_data"}
    order, table = category_counts(r, c, known)
    statistic, p, test = chi_square(table, seed)
    return {
        **out,
        "status": "tested",
        "test": test,
        "statistic": statistic,
        "p_value": p,
        "psi": psi_from_counts(table[0], table[1]),
        "shares": {
            k: {"reference": _share(table[0, i], len(r)), "current": _share(table[1, i], len(c))}
            for i, k in enumerate(order)
        },
        "new_categories": [k for k in order if k not in known and k != MISSING],
    }


def _share(part: float, whole: int) -> float | None:
    return float(part) / whole if whole else None


def compare(
    reference: pd.DataFrame,
    batch: Batch,
    cfg: MonitorConfig,
    *,
    reference_predictions: pd.Series | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Test every contract feature (and the predicted class) and decide, as one family."""
    spec = contract.spec()
    results: list[dict[str, Any]] = []
    for i, feature in enumerate(spec.features):
        name = feature.name
        if name not in batch.available or not batch.available[name].any():
            results.append(
                {
                    "column": name,
                    "kind": feature.kind,
                    "status": "not_available",
                    "note": "not in the batch"
                    + (
                        " (left out of the prediction log)"
                        if batch.kind == "prediction_log"
                        else ""
                    ),
                }
            )
            continue
        ref, cur = reference[name], batch.values(name)
        if feature.kind == "numeric":
            results.append(numeric_drift(name, ref, cur, cfg))
        else:
            results.append(categorical_drift(name, ref, cur, cfg, feature.categories, seed + i))
    if batch.predictions is not None:
        if reference_predictions is None:
            results.append(
                {
                    "column": PREDICTION,
                    "kind": "prediction",
                    "status": "not_available",
                    "note": "no model to predict the reference with",
                }
            )
        else:
            res = categorical_drift(
                PREDICTION, reference_predictions, batch.predictions, cfg, spec.classes, seed + 99
            )
            results.append({**res, "kind": "prediction"})
    decide(results, cfg)
    return results


def decide(results: list[dict[str, Any]], cfg: MonitorConfig) -> None:
    tested = [r for r in results if r["status"] == "tested"]
    adjusted = adjust([r["p_value"] for r in tested], cfg.correction)
    for r, p_adj in zip(tested, adjusted, strict=True):
        r["p_adjusted"] = p_adj
        r["psi_level"] = psi_level(r["psi"], cfg)
        significant = p_adj <= cfg.alpha
        r["significant"] = significant
        r["drifted"] = bool(significant and r["psi"] >= cfg.min_psi)
    for r in results:
        r.setdefault("drifted", False)


# --------------------------------------------------------------------------- contract, metrics


def contract_check(batch: Batch, params: Params) -> dict[str, Any]:
    """The contract's column rules on the batch; no dataset-size or class-balance rule."""
    from mlci.pipeline import validate

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
            failures.extend(validate._failures(err.failure_cases, sub))
    if batch.origins is not None:
        for f in failures:
            for e in f["examples"]:
                if e.get("row") is not None and e["row"] < len(batch.origins):
                    e["where"] = batch.origins[e["row"]]
    return {"valid": not failures, "failures": failures}


def performance(batch: Batch, model: Any, cfg: MonitorConfig, metrics_path: Path) -> dict[str, Any]:
    """The model's quality on the labelled rows of the batch, against the test-set metrics."""
    from mlci.pipeline import evaluate

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
        metrics = evaluate.quality(y, proba, classes)
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


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2e}" if p < 0.001 else f"{p:.3f}"


def markdown(report: dict[str, Any]) -> str:
    status = report["status"]
    head = {
        "no_drift": "**Drift: none found**",
        "drift": "**Drift: FOUND**",
        "not_enough_data": "**Drift: not enough data for a verdict**",
    }[status]
    cur, ref, s = report["current"], report["reference"], report["settings"]
    lines = [
        "# Drift report",
        "",
        f"{head} (exit code {report['exit_code']})",
    ]
    if report["reasons"]:
        lines += ["", *(f"- {r}" for r in report["reasons"])]
    lines += [
        "",
        f"Current batch: {cur['rows']} row(s) from {cur['kind'].replace('_', ' ')} "
        f"{', '.join(f'`{p}`' for p in cur['sources'][:5])}"
        + (f" (+{len(cur['sources']) - 5} more)" if len(cur["sources"]) > 5 else "")
        + ".",
        f"Reference: `{ref['path']}` ({ref['rows']} rows"
        + (
            "; the production model's training data)"
            if ref.get("is_model_training_data")
            else (
                "; NOT the data the production model was trained on)"
                if ref.get("is_model_training_data") is False
                else ")"
            )
        )
        + ".",
    ]
    if cur["kind"] == "prediction_log":
        lines.append(
            f"Log lines read: {cur['lines_read']}; malformed and skipped: {cur['malformed_lines']}"
            + (
                " (" + "; ".join(f"{n}× {r}" for r, n in cur["malformed_reasons"].items()) + ")"
                if cur["malformed_lines"]
                else ""
            )
            + "."
        )
        if cur.get("model_versions"):
            versions = ", ".join(f"`{v}` ({n})" for v, n in cur["model_versions"].items())
            lines.append(f"Model versions in the log: {versions}.")
        if cur.get("time_range"):
            lines.append(f"Time range: {cur['time_range'][0]} to {cur['time_range'][1]}.")
    columns = report.get("columns") or []
    if columns:
        lines += [
            "",
            "| column | test | n (ref / cur) | statistic | p | corrected p | PSI | drift |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for c in columns:
            if c["status"] != "tested":
                note = c.get("note") or "fewer values than monitor.min_batch_size"
                lines.append(f"| {c['column']} | - | - | - | - | - | - | not tested: {note} |")
                continue
            verdict = "**yes**" if c["drifted"] else "no"
            if c.get("significant") and not c["drifted"]:
                verdict = "no (significant, PSI below monitor.min_psi)"
            lines.append(
                f"| {c['column']} | {c['test']} | {c['n_reference']} / {c['n_current']} | "
                f"{c['statistic']:.3f} | {_fmt_p(c['p_value'])} | {_fmt_p(c['p_adjusted'])} | "
                f"{c['psi']:.3f} ({c['psi_level']}) | {verdict} |"
            )
        lines += [
            "",
            f"All tests of this run are one family: p-values corrected with {s['correction']}, "
            f"drift where the corrected p ≤ {s['alpha']} and PSI ≥ {s['min_psi']}. PSI levels: "
            f"moderate ≥ {s['psi_moderate']}, major ≥ {s['psi_major']}.",
        ]
    if report.get("confidence"):
        conf = report["confidence"]
        lines += [
            "",
            f"Mean top-class probability: {conf['mean_top_probability_current']:.3f} in the "
            f"batch, {conf['mean_top_probability_reference']:.3f} on the reference.",
        ]
    contract_ = report["contract"]
    lines.append("")
    if contract_["valid"]:
        lines.append("**Data contract: passed** on the batch.")
    else:
        lines += [
            f"**Data contract: {len(contract_['failures'])} violation(s)**",
            "",
            "| column | check | failing rows | examples |",
            "|---|---|---:|---|",
        ]
        for f in contract_["failures"]:
            ex = ", ".join(
                f"{e.get('where', e.get('row'))}: {e['value']!r}" for e in f["examples"][:3]
            )
            rows = "" if f["failing_rows"] is None else str(f["failing_rows"])
            lines.append(f"| {f['column'] or '(table)'} | `{f['check']}` | {rows} | {ex} |")
    perf = report.get("performance")
    if perf:
        lines += ["", "## Model quality on the labelled rows", ""]
        if perf.get("status") == "compared":
            lines += ["| metric | batch | test set | change |", "|---|---:|---:|---:|"]
            for name, delta in perf["delta"].items():
                flag = " ⚠" if name in perf["degraded_metrics"] else ""
                lines.append(
                    f"| {name} | {perf['metrics'][name]:.4f} | "
                    f"{perf['reference_metrics'][name]:.4f} | {delta:+.4f}{flag} |"
                )
            lines.append(f"\n{perf['labelled_rows']} labelled row(s).")
        else:
            lines.append(
                f"Not compared: {perf.get('status')} ({perf.get('labelled_rows', 0)} rows)."
            )
    st = report.get("staleness") or {}
    lines += ["", "## Model age", ""]
    if st.get("status") in ("fresh", "stale"):
        lines.append(
            f"Trained {st['trained_at']} ({st['age_days']:.1f} days ago, from {st['source']}); "
            f"limit {st['max_model_age_days']} days: **{st['status']}**."
        )
    else:
        lines.append(f"Unknown: {st.get('note', 'no model metadata')}.")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "drift.json", out_dir / "drift.md"
    try:
        files.write_json(json_path, report)
        files.write_text(md_path, markdown(report))
    except OSError as err:
        raise UserError(f"--out-dir {out_dir}: cannot write the report there: {err}") from None
    return json_path, md_path


def summary_text(report: dict[str, Any]) -> str:
    lines = [f"drift: {report['status']} (exit {report['exit_code']})"]
    lines += [f"  - {r}" for r in report["reasons"]]
    cur = report["current"]
    if cur.get("malformed_lines"):
        lines.append(f"  note: {cur['malformed_lines']} malformed log line(s) skipped")
    return "\n".join(lines)


def run(params: Params, current: Path, reference: Path, out_dir: Path) -> dict[str, Any]:
    report = analyse(Path(current), Path(reference), params)
    json_path, md_path = write(report, out_dir)
    report["written"] = [str(json_path), str(md_path)]
    return report
