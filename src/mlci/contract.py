"""Reads the pandera contract in ``schema.py`` into plain facts every layer shares.

Nothing here knows about penguins: the validate stage, the model's feature lists, the service's
request model and drift monitoring all read the column names, kinds, ranges and categories
from :func:`spec`, so changing the contract changes them all.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Literal

import pandas as pd
import pandera.pandas as pa

from mlci.errors import UserError
from mlci.spec import Feature, Spec
from project import schema


def _bounds(column: pa.Column) -> tuple[float | None, float | None, tuple[str, ...]]:
    lo = hi = None
    cats: tuple[str, ...] = ()
    for check in column.checks:
        stats = check.statistics or {}
        if check.name in ("greater_than_or_equal_to", "greater_than"):
            lo = float(stats["min_value"])
        elif check.name in ("less_than_or_equal_to", "less_than"):
            hi = float(stats["max_value"])
        elif check.name == "in_range":
            lo, hi = float(stats["min_value"]), float(stats["max_value"])
        elif check.name == "isin":
            cats = tuple(str(v) for v in stats["allowed_values"])
    return lo, hi, cats


def _is_numeric(column: pa.Column) -> bool:
    return str(column.dtype).lower().startswith(("float", "int", "uint"))


def _id_column() -> str | None:
    return getattr(schema, "ID_COLUMN", None) or None


@cache
def spec() -> Spec:
    """The contract's facts; a contract the machinery cannot use is a UserError naming why."""
    columns = schema.Contract.to_schema().columns
    id_column = _id_column()
    named = {"TARGET": schema.TARGET, **({"ID_COLUMN": id_column} if id_column else {})}
    missing = {k: v for k, v in named.items() if v not in columns}
    if missing:
        raise UserError(f"src/project/schema.py: {missing} not a column of the Contract")
    target = columns[schema.TARGET]
    t_lo, t_hi, classes = _bounds(target)
    if not classes and not _is_numeric(target):
        raise UserError(
            f"src/project/schema.py: the target {schema.TARGET!r} is neither a classification "
            "target (an `isin` check listing the classes) nor a regression target (a numeric "
            "column)"
        )
    features = []
    for name, col in columns.items():
        if name in (schema.TARGET, id_column):
            continue
        lo, hi, cats = _bounds(col)
        kind: Literal["numeric", "categorical"] = (
            "numeric" if _is_numeric(col) and not cats else "categorical"
        )
        features.append(Feature(name, kind, bool(col.nullable), lo, hi, cats))
    if not features:
        raise UserError("src/project/schema.py: the Contract has no feature column")
    return Spec(schema.TARGET, id_column, classes, tuple(features), t_lo, t_hi)


def string_columns() -> list[str]:
    """Contract columns read as text: categorical features, the ID and a class target.

    Reading them with an inferred type would turn digit codes ('02139', '007') into numbers.
    """
    s = spec()
    names = [*s.categorical, *([s.id_column] if s.id_column else [])]
    return names + ([s.target] if s.task == "classification" else [])


def as_contract_types(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the contract's text columns as strings (missing stays missing), so a
    Parquet or JSON column of digit codes stored as numbers reads the same as the CSV."""
    text = [c for c in string_columns() if c in df.columns]
    if not text:
        return df
    out = df.copy()
    for col in text:
        if not pd.api.types.is_string_dtype(out[col]) or out[col].dtype == object:
            out[col] = _as_text(out[col])
    return out


def _as_text(values: pd.Series) -> pd.Series:
    # 3.0 read as a float column is the code "3", not "3.0".
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if len(whole) and bool((whole == whole.round()).all()):
            values = values.astype("Int64")
    return values.astype("string")


def validation_schema(
    min_rows: int, max_rows: int, min_class_share: float, max_missing_share: float
) -> pa.DataFrameSchema:
    """The contract plus the dataset-level checks whose thresholds live in params.yaml."""
    s = spec()
    base = schema.Contract.to_schema()
    checks = [
        *base.checks,
        pa.Check(
            lambda df: min_rows <= len(df) <= max_rows,
            name=f"row_count_between({min_rows}, {max_rows})",
        ),
    ]
    columns = dict(base.columns)
    if s.task == "classification":
        # Class balance: every class of the target appears with at least this share.
        target_col = copy.deepcopy(columns[s.target])
        target_col.checks = [
            *target_col.checks,
            pa.Check(
                lambda y: _min_share(y, s.classes) >= min_class_share,
                name=f"every_class_share_at_least({min_class_share})",
                ignore_na=False,
            ),
        ]
        columns[s.target] = target_col
    # A nullable column may have gaps, but not so many that imputation invents the column.
    for feature in s.features:
        if feature.nullable:
            col = copy.deepcopy(columns[feature.name])
            col.checks = [
                *col.checks,
                pa.Check(
                    lambda v: float(v.isna().mean()) <= max_missing_share if len(v) else True,
                    name=f"missing_share_at_most({max_missing_share})",
                    ignore_na=False,
                ),
            ]
            columns[feature.name] = col
    return pa.DataFrameSchema(
        columns=columns,
        checks=checks,
        strict=base.strict,
        coerce=base.coerce,
        name=base.name,
    )


def _min_share(y: pd.Series, classes: tuple[str, ...]) -> float:
    if len(y) == 0:
        return 0.0
    shares = y.value_counts(normalize=True)
    return float(min(shares.get(c, 0.0) for c in classes))


def features_and_target(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The contract's feature columns, and the target: strings (the model's class labels) for
    classification, floats for regression."""
    s = spec()
    y = df[s.target]
    return df[s.feature_names], y.astype(str) if s.task == "classification" else y.astype(float)
