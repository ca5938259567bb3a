"""``mlci adopt``, part 1: read a new table and infer its data contract and task.

Starts from pandera's own schema inference (dtypes, nullability, observed ranges) and adds what
inference cannot know: digit codes that must stay text, which text columns are a closed set
(``isin``), bounds wider than the sample, the ID column and whether the target is a class or a
number. Every user mistake (a missing column, a target with one class, duplicate IDs) is a
:class:`~mlci.errors.UserError` naming the column and the counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlci.errors import UserError

MAX_CATEGORIES = 50  # more distinct values than this: an open set, no `isin`
MAX_DISTINCT_SHARE = 0.5  # ... and so is a column whose values are mostly distinct
MAX_NUMERIC_CLASSES = 20  # a whole-number target with at most this many values: classes
MAX_SLICE_CATEGORIES = 10  # a slice column is reported per value: keep the tables short
# Bounds: the observed range widened by this share of it on each side. Half the span: a sample
# of a few hundred rows misses most of a heavy tail (a held-out fifth of the breast-cancer
# table exceeded 10%-widened bounds in four columns), while a unit mistake (grams typed as
# kilograms, ×1000) is still far outside.
WIDEN = 0.50
MIN_ROWS = 20  # fewer rows cannot be split into a train and a test set worth reading

# '007', '02139', '-01': a leading zero means a code, whatever the digits say.
_LEADING_ZERO = re.compile(r"^\s*[+-]?0\d")
_WHOLE = re.compile(r"^\s*[+-]?\d+\s*$")

Task = Literal["classification", "regression"]


@dataclass
class Column:
    name: str
    dtype: Literal["int", "float", "str"]
    role: Literal["feature", "target", "id"] = "feature"
    nullable: bool = False
    missing: int = 0
    distinct: int = 0
    observed: tuple[float, float] | None = None  # numeric: min and max in the table
    bounds: tuple[float, float] | None = None  # numeric: what the contract allows
    categories: list[str] | None = None  # `isin` values; None: numeric or an open set
    digit_coded: bool = False
    dates: bool = False  # text that reads as ISO dates: an open set, not categories


@dataclass
class Plan:
    """Everything ``mlci adopt`` inferred from the table, before anything is written."""

    source: Path
    fmt: Literal["csv", "parquet"]
    table: pd.DataFrame  # as the ingest stage will read it (before cleaning)
    columns: list[Column]  # the contract's columns, in the table's order
    empty: list[str]  # columns without any value: left out of the contract
    target: str
    id_column: str | None
    task: Task
    task_reason: str
    target_missing: int  # rows without a target: cleaning.py drops them
    rows: int  # rows the contract describes (the table minus rows without a target)
    class_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def features(self) -> list[Column]:
        return [c for c in self.columns if c.role == "feature"]


def table_format(path: Path) -> Literal["csv", "parquet"]:
    if path.name.lower().endswith((".parquet", ".pq")):
        return "parquet"
    with path.open("rb") as f:  # a Parquet file starts with these bytes, whatever its name
        return "parquet" if f.read(4) == b"PAR1" else "csv"


def read_table(path: Path) -> tuple[pd.DataFrame, Literal["csv", "parquet"]]:
    """The table as stored: a CSV with every column as text (numbers are decided per column)."""
    if not path.exists():
        raise UserError(f"--data {path}: no such file")
    if not path.is_file():
        raise UserError(f"--data {path}: not a file (give one CSV or Parquet file)")
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            sep = "\t" if path.name.lower().endswith(".tsv") else ","
            df = pd.read_csv(path, sep=sep, dtype=str)
    except pd.errors.EmptyDataError:
        raise UserError(f"--data {path}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise UserError(f"--data {path}: cannot read it as {fmt}: {err}") from None
    if len(df.columns) == 0 or len(df) == 0:
        raise UserError(f"--data {path}: the table has no rows (only a header, or nothing)")
    if not all(isinstance(c, str) for c in df.columns):
        raise UserError(f"--data {path}: every column needs a text name; got {list(df.columns)}")
    return df, fmt


def _numeric_csv(raw: pd.Series) -> tuple[bool, bool, bool]:
    """(is numeric, is whole numbers, is digit-coded) for a CSV column read as text."""
    values = raw.dropna().astype(str)
    if values.str.match(_LEADING_ZERO).any():
        is_number = pd.to_numeric(values.str.strip(), errors="coerce").notna().all()
        return False, False, bool(is_number)
    nums = pd.to_numeric(values, errors="coerce")
    if nums.isna().any() or not np.isfinite(nums.to_numpy(dtype=float)).all():
        return False, False, False
    return True, bool(values.str.match(_WHOLE).all()), False


def _numeric_native(raw: pd.Series) -> tuple[bool, bool, bool]:
    """The same for a typed (Parquet) column: numbers are numbers, booleans are text."""
    if pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
        return False, False, _numeric_csv(raw.dropna().astype(str))[2]  # text: codes?
    values = raw.dropna().to_numpy(dtype=float)
    if not np.isfinite(values).all():
        return False, False, False
    return True, bool((values == np.round(values)).all()), False


def as_text(values: pd.Series) -> pd.Series:
    """Text as the ingest stage makes it: a float 3.0 in a code column is '3', not '3.0'."""
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        return values.astype("string")
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if len(whole) and bool((whole == whole.round()).all()):
            values = values.astype("Int64")
    return values.astype("string")


def _suggest(name: str, columns: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in columns[:30]) + (", ..." if len(columns) > 30 else "")
    return f"{hint} (its columns: {shown})"


def _decide_task(
    target: str, numeric: bool, whole: bool, distinct: int, requested: str | None
) -> tuple[Task, str]:
    if requested == "regression" and not numeric:
        raise UserError(
            f"--task regression: the target {target!r} is not numeric (text, or digit codes "
            "with leading zeros), so there is no number to predict. Use --task classification, "
            "or choose a numeric target"
        )
    if requested in ("classification", "regression"):
        return requested, "chosen with --task"  # type: ignore[return-value]
    if requested is not None:
        raise UserError(f"--task {requested!r}: choose classification or regression")
    if not numeric:
        return "classification", f"the target {target!r} is text ({distinct} distinct values)"
    if whole and distinct <= MAX_NUMERIC_CLASSES:
        return "classification", (
            f"the target {target!r} has {distinct} distinct whole-number values "
            f"(at most {MAX_NUMERIC_CLASSES}); pass --task regression to predict it as a number"
        )
    return "regression", (
        f"the target {target!r} is numeric with {distinct} distinct values; "
        "pass --task classification to treat its values as classes"
    )


def widen(lo: float, hi: float, whole: bool) -> tuple[float, float]:
    """The observed range widened by WIDEN of its span on each side and rounded outwards to a
    readable number; a column never below 0 keeps 0 as its floor (counts, prices, weights)."""
    span = hi - lo
    pad = WIDEN * span if span > 0 else max(abs(lo) * WIDEN, 1.0)
    new_lo, new_hi = lo - pad, hi + pad
    if lo >= 0:
        new_lo = max(new_lo, 0.0)
    exponent = math.floor(math.log10(pad))
    step = 10.0**exponent
    new_lo, new_hi = math.floor(new_lo / step) * step, math.ceil(new_hi / step) * step
    if whole:
        return float(math.floor(new_lo)), float(math.ceil(new_hi))
    digits = max(0, -exponent)
    return round(new_lo, digits), round(new_hi, digits)


def infer(
    path: Path,
    target: str,
    id_column: str | None = None,
    task: str | None = None,
    test_size: float = 0.25,
) -> Plan:
    """Read ``path`` and infer its contract; a table the pipeline cannot use is a UserError."""
    raw, fmt = read_table(path)
    columns = list(raw.columns)
    if target not in columns:
        raise UserError(f"--target {target!r}: no such column in {path}{_suggest(target, columns)}")
    if id_column is not None and id_column not in columns:
        raise UserError(
            f"--id {id_column!r}: no such column in {path}{_suggest(id_column, columns)}"
        )
    if id_column == target:
        raise UserError(f"--id and --target are both {target!r}: the ID cannot be the target")

    kinds = {
        name: (_numeric_native if fmt == "parquet" else _numeric_csv)(raw[name]) for name in columns
    }
    empty = [c for c in columns if raw[c].isna().all() and c not in (target, id_column)]
    if raw[target].isna().all():
        raise UserError(f"--target {target!r}: the column has no values at all")
    if id_column is not None and raw[id_column].isna().all():
        raise UserError(f"--id {id_column!r}: the column has no values at all")

    numeric, whole, _ = kinds[target]
    labelled = raw[target].notna()
    chosen, reason = _decide_task(
        target, numeric, whole, int(raw.loc[labelled, target].nunique()), task
    )

    # The table as the ingest stage reads it: contract text columns as text, numbers as numbers.
    table = pd.DataFrame(index=raw.index)
    for name in columns:
        text = (
            name == id_column
            or not kinds[name][0]
            or (name == target and chosen == "classification")
        )
        if name in empty:
            table[name] = raw[name]
        elif text:
            table[name] = as_text(raw[name]) if fmt == "parquet" else raw[name].astype("string")
        else:
            table[name] = pd.to_numeric(raw[name]) if fmt == "csv" else raw[name]
    kept = table.loc[labelled]
    if len(kept) < MIN_ROWS:
        raise UserError(
            f"--data {path}: {len(kept)} row(s) with a target value; mlci adopt needs at least "
            f"{MIN_ROWS} to train on one part and test on another"
        )

    plan = Plan(
        source=path,
        fmt=fmt,
        table=table,
        columns=[],
        empty=empty,
        target=target,
        id_column=id_column,
        task=chosen,
        task_reason=reason,
        target_missing=int((~labelled).sum()),
        rows=len(kept),
    )
    inferred = pa.infer_schema(kept.drop(columns=empty))  # pandera's starting point
    for name, col in inferred.columns.items():
        plan.columns.append(_column(plan, name, col, kept[name], kinds[name]))
    _check_id(plan, kept)
    if chosen == "classification":
        _check_classes(plan, kept[target], test_size)
    elif kept[target].nunique() < 2:
        raise UserError(f"--target {target!r}: every row has the same value: nothing to predict")
    return plan


def _column(
    plan: Plan, name: str, inferred: pa.Column, values: pd.Series, kind: tuple[bool, bool, bool]
) -> Column:
    role: Literal["feature", "target", "id"] = (
        "target" if name == plan.target else "id" if name == plan.id_column else "feature"
    )
    missing = int(values.isna().sum())
    col = Column(
        name,
        "str",
        role,
        nullable=bool(inferred.nullable) and role == "feature",
        missing=missing,
        distinct=int(values.nunique()),
        digit_coded=kind[2],
    )
    if role == "id":
        return col
    if role == "target" and plan.task == "classification":
        col.categories = _sorted_values(values)
        return col
    if str(inferred.dtype).lower().startswith(("int", "uint", "float")):
        stats = {c.name: c.statistics for c in inferred.checks}
        lo = float(stats["greater_than_or_equal_to"]["min_value"])
        hi = float(stats["less_than_or_equal_to"]["max_value"])
        whole = kind[1]
        # Whole numbers stay int unless missing values need a float column (or it is the target:
        # a regression model predicts floats).
        col.dtype = "int" if whole and not missing and role == "feature" else "float"
        col.observed = (lo, hi)
        col.bounds = widen(lo, hi, whole)
        return col
    present = values.dropna()
    # Dates are an open set: tomorrow's date is never among the sample's categories.
    parsed = pd.to_datetime(present, errors="coerce", format="ISO8601")
    col.dates = bool(len(present)) and bool(parsed.notna().all())
    closed = col.distinct <= MAX_CATEGORIES and col.distinct <= MAX_DISTINCT_SHARE * len(present)
    if closed and not col.dates:
        col.categories = _sorted_values(values)
    return col


def _sorted_values(values: pd.Series) -> list[str]:
    found = [str(v) for v in values.dropna().unique()]
    numbers = pd.to_numeric(pd.Series(found, dtype=object), errors="coerce")
    if len(found) and numbers.notna().all():  # '2' before '10'; '007' before '010'
        return [v for _, v in sorted(zip(numbers.tolist(), found, strict=True))]
    return sorted(found)


def _check_id(plan: Plan, kept: pd.DataFrame) -> None:
    if plan.id_column is None:
        return
    ids = kept[plan.id_column]
    if ids.isna().any():
        rows = ids.index[ids.isna()].tolist()
        raise UserError(
            f"--id {plan.id_column!r}: missing in {len(rows)} row(s) (e.g. data rows "
            f"{', '.join(map(str, rows[:5]))}, counting from 0); an ID must identify every row"
        )
    counts = ids.value_counts()
    dup = counts[counts > 1]
    if len(dup):
        shown = ", ".join(f"{v!r} ×{n}" for v, n in dup.head(5).items())
        raise UserError(
            f"--id {plan.id_column!r}: {len(dup)} value(s) occur more than once ({shown}); "
            "an ID must be unique. Choose another column, or leave --id out"
        )


def _check_classes(plan: Plan, y: pd.Series, test_size: float) -> None:
    counts = y.value_counts()
    plan.class_counts = {str(k): int(v) for k, v in counts.items()}
    if len(counts) < 2:
        raise UserError(
            f"--target {plan.target!r}: one class only ({counts.index[0]!r}, {counts.iloc[0]} "
            "rows): a classifier needs at least 2. Is this the right target column?"
        )
    rare = counts[counts < 2]
    if len(rare):
        shown = ", ".join(f"{k!r} ({v} row)" for k, v in rare.items())
        raise UserError(
            f"--target {plan.target!r}: {len(rare)} class(es) with fewer than 2 rows: {shown}. "
            "The stratified split needs 2 rows of every class (one to train on, one to test); "
            "merge or remove the rare classes in the table, or pass --task regression if the "
            "target is a quantity"
        )
    n_test = math.ceil(test_size * plan.rows)
    if n_test < len(counts) or plan.rows - n_test < len(counts):
        raise UserError(
            f"--target {plan.target!r}: {len(counts)} classes in {plan.rows} rows: the test "
            f"set ({n_test} rows at split.test_size {test_size}) cannot hold one row of each"
        )
