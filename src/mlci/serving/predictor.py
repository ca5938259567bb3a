"""What the service predicts with, without any web framework: a predictor that is fast on one
row and gives exactly the scikit-learn pipeline's probabilities. (The request model it is fed
from is derived from the data contract in :mod:`mlci.serving.api_models`.)

Why a compiled path: a scikit-learn ``Pipeline`` with a ``ColumnTransformer`` spends milliseconds
per call on DataFrame handling and input checks, whether it predicts one row or a thousand. The
fitted steps, though, are a handful of arrays (imputation values, scaler mean and scale, one-hot
categories, linear coefficients). :func:`compile_preprocess` and :func:`compile_estimator` read
them out of the fitted pipeline and apply the same arithmetic in the same order with NumPy, so
the probabilities equal the pipeline's (a test checks the whole test set). Nothing unrecognised
is guessed at: preprocessing it cannot read falls back to the whole pipeline, and an estimator
other than a logistic regression gets the compiled preprocessing's matrix and predicts with its
own code.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlci import artifacts, contract
from mlci.errors import UserError

log = logging.getLogger("mlci.serving")

Record = Mapping[str, Any]


# --------------------------------------------------------------------------------------------
# The compiled fast path.
# --------------------------------------------------------------------------------------------


class NotCompilableError(Exception):
    """The pipeline has a step (or a setting) the compiler does not reproduce exactly."""


@dataclass(frozen=True)
class _Categorical:
    name: str
    fill: Any  # imputer fill value, or None without an imputer
    index: dict[Any, int]  # category -> column offset inside this feature's one-hot block
    offset: int  # first output column of the block


@dataclass(frozen=True)
class CompiledPreprocess:
    """``ColumnTransformer`` output as a dense matrix, computed with NumPy."""

    numeric: tuple[str, ...]
    fill: np.ndarray  # imputation value per numeric column (NaN where there is no imputer)
    mean: np.ndarray
    scale: np.ndarray
    num_offset: int
    categorical: tuple[_Categorical, ...]
    n_out: int

    def transform(self, records: Sequence[Record]) -> np.ndarray:
        n = len(records)
        out = np.zeros((n, self.n_out), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            # None -> NaN under dtype=float64, exactly what the pipeline's imputer replaces.
            # Column by column: three times faster than one nested list on 1,000 records.
            col = np.array([r.get(name) for r in records], dtype=np.float64)
            missing = np.isnan(col)
            if missing.any():
                col[missing] = self.fill[j]
            col -= self.mean[j]
            col /= self.scale[j]
            out[:, self.num_offset + j] = col
        for cat in self.categorical:
            index, fill, name = cat.index, cat.fill, cat.name
            if n == 1:
                value = records[0].get(name)
                k = index.get(fill if value is None else value)
                if k is not None:  # unknown (or unfilled missing) value: all zeros ("ignore")
                    out[0, cat.offset + k] = 1.0
                continue
            get = index.get
            cols = np.array(
                [get(fill if (v := r.get(name)) is None else v, -1) for r in records],
                dtype=np.intp,
            )
            hit = cols >= 0
            if hit.all():
                out[np.arange(n), cat.offset + cols] = 1.0
            else:
                out[np.flatnonzero(hit), cat.offset + cols[hit]] = 1.0
        return out


@dataclass(frozen=True)
class CompiledLinear:
    """``LogisticRegression.predict_proba``: the same dot product, softmax or sigmoid."""

    coef_t: np.ndarray
    intercept: np.ndarray
    binary: bool

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = x @ self.coef_t + self.intercept
        if self.binary:
            p = 1.0 / (1.0 + np.exp(-scores.ravel()))
            return np.stack([1 - p, p], axis=1)
        scores -= scores.max(axis=1).reshape((-1, 1))
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape((-1, 1))
        return scores


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _steps(transformer: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(transformer, Pipeline):
        return [step for _, step in transformer.steps if step not in (None, "passthrough")]
    return [transformer]


def _imputer_fill(imputer: Any, n: int) -> np.ndarray | list[Any]:
    if imputer.add_indicator or not _is_nan(imputer.missing_values):
        raise NotCompilableError("SimpleImputer with add_indicator or non-NaN missing_values")
    stats = list(imputer.statistics_)
    if len(stats) != n or any(_is_nan(s) for s in stats):
        raise NotCompilableError("SimpleImputer dropped or kept an all-missing column")
    return stats


def compile_preprocess(pre: Any) -> CompiledPreprocess:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if type(pre) is not ColumnTransformer:
        raise NotCompilableError(f"preprocessing is {type(pre).__name__}, not a ColumnTransformer")
    if getattr(pre, "sparse_output_", False):
        raise NotCompilableError("ColumnTransformer output is sparse")
    numeric: list[str] = []
    fill: list[float] = []
    mean: list[float] = []
    scale: list[float] = []
    num_offset = -1
    cats: list[_Categorical] = []
    col = 0
    for name, trans, columns in pre.transformers_:
        if trans == "drop" or (name == "remainder" and len(columns) == 0):
            continue
        if isinstance(trans, str) or isinstance(columns, slice):
            raise NotCompilableError(f"transformer {name!r} ({trans!r}) is not supported")
        columns = [str(c) for c in columns]
        steps = _steps(trans)
        kinds = [type(s) for s in steps]
        if kinds and kinds[-1] is OneHotEncoder:
            enc = steps[-1]
            if kinds[:-1] not in ([], [SimpleImputer]):
                raise NotCompilableError(f"transformer {name!r}: {kinds} before OneHotEncoder")
            if enc.drop_idx_ is not None or getattr(enc, "_infrequent_enabled", False):
                raise NotCompilableError("OneHotEncoder with drop or infrequent categories")
            if enc.handle_unknown not in ("ignore", "infrequent_if_exist", "warn"):
                raise NotCompilableError("OneHotEncoder raises on unknown categories")
            fills = (
                _imputer_fill(steps[0], len(columns)) if len(steps) == 2 else [None] * len(columns)
            )
            for c, f, categories in zip(columns, fills, enc.categories_, strict=True):
                index = {v: k for k, v in enumerate(categories.tolist()) if not _is_nan(v)}
                cats.append(_Categorical(c, f, index, col))
                col += len(categories)
        elif set(kinds) <= {SimpleImputer, StandardScaler} and (
            kinds in ([SimpleImputer, StandardScaler], [SimpleImputer], [StandardScaler])
        ):
            if num_offset not in (-1, col - len(numeric)):
                raise NotCompilableError("numeric columns are not one contiguous block")
            if num_offset == -1:
                num_offset = col
            n = len(columns)
            f = [math.nan] * n
            m, s = [0.0] * n, [1.0] * n
            for step in steps:
                if isinstance(step, SimpleImputer):
                    f = [float(v) for v in _imputer_fill(step, n)]
                else:
                    if step.with_mean:
                        m = [float(v) for v in step.mean_]
                    if step.with_std:
                        s = [float(v) for v in step.scale_]
            numeric += columns
            fill += f
            mean += m
            scale += s
            col += n
        else:
            names = [k.__name__ for k in kinds]
            raise NotCompilableError(f"transformer {name!r} has steps {names}")
    return CompiledPreprocess(
        numeric=tuple(numeric),
        fill=np.array(fill, dtype=np.float64),
        mean=np.array(mean, dtype=np.float64),
        scale=np.array(scale, dtype=np.float64),
        num_offset=max(num_offset, 0),
        categorical=tuple(cats),
        n_out=col,
    )


def compile_estimator(estimator: Any) -> CompiledLinear | None:
    from sklearn.linear_model import LogisticRegression

    if type(estimator) is not LogisticRegression:
        return None
    binary = len(estimator.classes_) <= 2
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    return CompiledLinear(
        coef_t=np.ascontiguousarray(coef.T),
        intercept=np.asarray(estimator.intercept_, dtype=np.float64),
        binary=binary,
    )


# --------------------------------------------------------------------------------------------
# The predictor the service uses.
# --------------------------------------------------------------------------------------------


class Predictor:
    """A fitted pipeline plus, when possible, its compiled equivalent.

    ``predict_proba(records)`` takes mappings of feature name to value (``None`` for missing) and
    returns probabilities in the order of ``classes``. ``reference_proba`` always runs the
    scikit-learn pipeline on a DataFrame: it is what the compiled path is proven against.
    """

    def __init__(self, pipeline: Any, version: str, *, fast: bool = True) -> None:
        self.pipeline = pipeline
        self.version = version
        self.classes: tuple[str, ...] = tuple(str(c) for c in pipeline.classes_)
        self.features = contract.spec().feature_names
        self.numeric = set(contract.spec().numeric)
        self._check_matches_contract()
        self.preprocess: CompiledPreprocess | None = None
        self.estimator: CompiledLinear | None = None
        self.mode = "sklearn"
        if fast:
            try:
                pre, est = self._split()
                self.preprocess = compile_preprocess(pre)
                self.estimator = compile_estimator(est)
                self._estimator_obj = est
                self.mode = "compiled" if self.estimator else "compiled-preprocess"
            except NotCompilableError as why:
                log.warning("model served with the scikit-learn pipeline (not compiled): %s", why)

    def _split(self) -> tuple[Any, Any]:
        from sklearn.pipeline import Pipeline

        p = self.pipeline
        if not isinstance(p, Pipeline) or len(p.steps) != 2:
            raise NotCompilableError("model is not a two-step Pipeline (preprocess, estimator)")
        return p.steps[0][1], p.steps[1][1]

    def _check_matches_contract(self) -> None:
        spec = contract.spec()
        trained = getattr(self.pipeline, "feature_names_in_", None)
        if trained is not None and set(map(str, trained)) != set(spec.feature_names):
            raise UserError(
                f"the model was trained on features {sorted(map(str, trained))} but the data "
                f"contract defines {sorted(spec.feature_names)}: retrain it (`make run`)"
            )
        if not set(self.classes) <= set(spec.classes):
            raise UserError(
                f"the model predicts classes {list(self.classes)} but the contract allows "
                f"{list(spec.classes)}: retrain it (`make run`)"
            )

    @classmethod
    def load(cls, path: Path, version: str, *, fast: bool | None = None) -> Predictor:
        """Load with skops and the trust list (never pickle)."""
        if fast is None:
            fast = os.environ.get("MLCI_SERVING_FAST_PATH", "1") not in ("0", "false", "no")
        return cls(artifacts.load_model(path), version, fast=fast)

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        if self.preprocess is None:
            return self.reference_proba(records)
        x = self.preprocess.transform(records)
        if self.estimator is not None:
            return self.estimator.predict_proba(x)
        return np.asarray(self._estimator_obj.predict_proba(x), dtype=np.float64)

    def reference_proba(self, records: Sequence[Record]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(self.frame(records)), dtype=np.float64)

    def frame(self, records: Sequence[Record]) -> Any:
        """Records as the DataFrame the pipeline was trained on (float64 and str columns)."""
        import pandas as pd

        data = {}
        for name in self.features:
            values = [r.get(name) for r in records]
            if name in self.numeric:
                data[name] = np.array(values, dtype=np.float64)
            else:
                data[name] = pd.array(values, dtype="str")
        return pd.DataFrame(data, columns=self.features)

    def labels(self, proba: np.ndarray) -> list[str]:
        classes = self.classes
        return [classes[i] for i in proba.argmax(axis=1).tolist()]


def limit_threads(n: int | None = None) -> None:
    """Cap BLAS/OpenMP threads (threadpoolctl) for the serving process.

    One row is tiny work: thread pools cost more to wake than they save (DESIGN.md measured
    several times slower single-row HistGradientBoosting with default threads). Set
    ``MLCI_SERVING_THREADS`` to raise it for large batches on a many-core machine.
    """
    from threadpoolctl import threadpool_limits

    if n is None:
        raw = os.environ.get("MLCI_SERVING_THREADS", "1")
        try:
            n = max(1, int(raw))
        except ValueError:
            log.warning("MLCI_SERVING_THREADS=%r is not a number; using 1 thread", raw)
            n = 1
    threadpool_limits(limits=n)
