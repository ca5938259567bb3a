"""Reads the pandera contract in ``schema.py`` into plain facts every layer shares.

Nothing here knows about penguins: the validate stage, the model's feature lists, the service's
request model and drift monitoring all read the column names, kinds, ranges and categories
from :func:`spec`, so changing the contract changes them all.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Literal

import pandas as pd
import pandera.pandas as pa

from project import schema


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Literal["numeric", "categorical"]
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    target: str
    id_column: str
    classes: tuple[str, ...]
    features: tuple[Feature, ...]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


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


@cache
def spec() -> Spec:
    columns = schema.Contract.to_schema().columns
    missing = {schema.TARGET, schema.ID_COLUMN} - set(columns)
    if missing:
        raise RuntimeError(f"schema.py: TARGET/ID_COLUMN {sorted(missing)} not in the Contract")
    _, _, classes = _bounds(columns[schema.TARGET])
    if not classes:
        raise RuntimeError(f"schema.py: the target {schema.TARGET!r} needs an `isin` check")
    features = []
    for name, col in columns.items():
        if name in (schema.TARGET, schema.ID_COLUMN):
            continue
        lo, hi, cats = _bounds(col)
        dtype = str(col.dtype)
        if cats:
            kind: Literal["numeric", "categorical"] = "categorical"
        elif dtype.startswith(("float", "int")):
            kind = "numeric"
        else:
            raise RuntimeError(
                f"schema.py: feature {name!r} must be numeric or have an `isin` check"
            )
        features.append(Feature(name, kind, bool(col.nullable), lo, hi, cats))
    return Spec(schema.TARGET, schema.ID_COLUMN, classes, tuple(features))


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
    """The contract's feature columns, and the target as strings (the model's class labels)."""
    s = spec()
    return df[s.feature_names], df[s.target].astype(str)
