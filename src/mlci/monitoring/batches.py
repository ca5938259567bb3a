"""Reading the batch to check for drift: a data file, or the service's prediction logs.

A data file (CSV, Parquet, or JSON lines of table rows) is read as training data is: the
contract's text columns as strings, then the project's cleaning (``clean_raw``, a no-op on a
table already in the contract's form), so a sample of the raw source is checked as the rows the
model learned from, and the fixes are counted in the report (:mod:`mlci.tables`).

A prediction log is JSON lines (a file, or a directory of ``*.jsonl`` files, gzip-rotated ones
too) written by :mod:`mlci.serving.prediction_log`: ``prediction`` is a class of the contract
(with ``probabilities``) for classification, a number for regression. A malformed line is
counted and skipped, never fatal; the reference is the training table.
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

from mlci import contract, tables
from mlci.errors import UserError

LOG_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")  # rotated logs: gzip
LOG_KEYS = ("request_id", "timestamp", "model_version", "features", "prediction", "probabilities")
MALFORMED_EXAMPLES = 10


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
    # Data files: rows read, rows kept and the count per fix of the project's cleaning.
    cleaning: dict[str, Any] | None = None
    model_versions: Counter = field(default_factory=Counter)
    time_range: tuple[str, str] | None = None

    @property
    def rows(self) -> int:
        return len(self.frame)

    def values(self, column: str) -> pd.Series:
        """The column's values on the rows that carry it (missing values included)."""
        rows = self.available[column]
        return self.frame[column] if rows.all() else self.frame.loc[rows, column]


def load_current(path: Path) -> Batch:
    path = Path(path)
    if path.is_dir():
        logs = sorted(p for p in path.iterdir() if p.name.lower().endswith(LOG_SUFFIXES))
        if not logs:
            raise UserError(f"current batch {path}: a directory, but it has no *.jsonl files")
        return read_prediction_logs(logs)
    if not path.exists():
        raise UserError(f"current batch {path}: no such file or directory")
    is_log = path.name.lower().endswith(LOG_SUFFIXES)
    if is_log and not (tables.table_format(path) == "jsonl" and tables.is_json_table(path)):
        return read_prediction_logs([path])
    frame, cleaning = read_data_file(path, "current batch")
    return data_batch(frame, str(path), cleaning)


def read_data_file(path: Path, what: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A data file read and cleaned as training data is, and what the cleaning did."""
    raw = tables.read_table(path, what)
    cleaned, fixes = tables.clean(raw, f"{what} {path}")
    return cleaned, {"rows_read": len(raw), "rows_kept": len(cleaned), "fixes": fixes}


def data_batch(
    df: pd.DataFrame, source: str = "(in memory)", cleaning: dict[str, Any] | None = None
) -> Batch:
    """A batch from a table in the contract's columns (every row carries every column).

    The index is kept (a data file's row numbers, so findings name the file's rows)."""
    spec = contract.spec()
    if not df.index.is_unique:
        df = df.reset_index(drop=True)
    present = [c for c in [*spec.feature_names, spec.target] if c in df.columns]
    available = {c: np.ones(len(df), dtype=bool) for c in present}
    return Batch("data", [source], df, available, cleaning=cleaning)


class _MalformedLineError(ValueError):
    pass


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_log_line(raw: bytes, classes: tuple[str, ...]) -> dict[str, Any]:
    """One prediction-log line as a dict, or :class:`_MalformedLineError` with the reason.

    ``classes``: the contract's classes; empty for regression, where ``prediction`` is a number."""
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
    text_keys = ["request_id", "model_version", "timestamp", *(["prediction"] if classes else [])]
    for key in text_keys:
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
    if "prediction" in record:
        prediction = record["prediction"]
        if classes and prediction not in classes:
            raise _MalformedLineError("'prediction' is not a class of the contract")
        # json.loads accepts NaN and Infinity: no predicted value either.
        if not classes and not (_is_number(prediction) and math.isfinite(prediction)):
            raise _MalformedLineError("'prediction' is not a finite number (a regression log)")
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
    frame = contract.as_contract_types(frame)  # a code logged as a number reads as its text
    available = {
        n: np.array([n in r.get("features", {}) for r in records], dtype=bool) for n in names
    }
    has_pred = np.array(["prediction" in r for r in records], dtype=bool)
    predictions = None
    if has_pred.any():
        # Classes as labels; regression: predicted values, as floats.
        dtype = object if spec.task == "classification" else float
        predictions = pd.Series([r.get("prediction") for r in records], dtype=dtype)[has_pred]
    probabilities = None  # classification only: a regression model has none
    if spec.task == "classification" and any("probabilities" in r for r in records):
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
            f"reference {path}: is a directory; pass a CSV, Parquet or JSON-lines file"
            if path.is_dir()
            else f"reference {path}: file not found (run `make run`, or `dvc pull`, or pass "
            "--reference)"
        )
    # Read and cleaned as training data is (a raw-format reference works too).
    df, _ = read_data_file(path, "reference")
    missing = [c for c in contract.spec().feature_names if c not in df.columns]
    if missing:
        raise UserError(f"reference {path}: lacks the contract feature(s) {missing}")
    return df


# --------------------------------------------------------------------------- statistics
