"""What the service predicts with, without any web framework: a predictor that is fast on one
row and gives exactly the scikit-learn pipeline's answers, for classification (class
probabilities and a label) and regression (a value). (The request model it is fed from is
derived from the data contract in :mod:`mlci.serving.api_models`.)

The fast path is compiled from the fitted pipeline (:mod:`mlci.serving.compiled`). Before it is
used, it is checked against the pipeline itself on probe records built from the contract and the
fitted encoders (every known category, an unseen value, missing values, the bounds of every
number). Whatever cannot be compiled, or does not match, falls back to the whole pipeline
(correct, slower), and the predictor says why (``fallback_reason``; the service logs it once
and exports ``mlci_fast_path_enabled``).

That check normally runs when the model is registered (:mod:`mlci.serving.manifest` records the
compiled arrays, the probe records and the pipeline's answers to them); a serving worker then
builds the predictor from that record with :meth:`Predictor.from_compiled` and only repeats the
comparison against the recorded answers: no scikit-learn, skops, pandas or pandera at start-up.
The pipeline itself is loaded on first use (``pipeline``), never on the fast path.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlci.errors import UserError
from mlci.serving.compiled import (
    UNSEEN,
    CompiledLinear,
    CompiledPreprocess,
    NotCompilableError,
    compile_estimator,
    compile_preprocess,
)

log = logging.getLogger("mlci.serving")

Record = Mapping[str, Any]
# How far the compiled path may be from the pipeline on the start-up probe: rounding only
# (a dense and a sparse dot product may differ in the last bits), never a different answer.
PROBE_TOLERANCE = 1e-9


class Predictor:
    """A fitted pipeline plus, when possible, its compiled equivalent.

    ``score(records)`` takes mappings of feature name to value (``None`` or absent for missing)
    and returns the predictions (class labels, or floats for regression) and, for
    classification, the probabilities in the order of ``classes``. ``reference_*`` always run
    the scikit-learn pipeline on a DataFrame: what the compiled path is proven against.

    ``mode``: ``compiled`` (preprocessing and model), ``compiled-preprocess`` (compiled matrix,
    the estimator's own predict) or ``sklearn`` (the whole pipeline; ``fallback_reason`` says
    why).
    """

    def __init__(self, pipeline: Any, version: str, *, fast: bool = True, spec: Any = None) -> None:
        self._setup(spec if spec is not None else _contract_spec(), version)
        self._pipeline = pipeline
        self.classes = (
            tuple(str(c) for c in getattr(pipeline, "classes_", ()))
            if self.task == "classification"
            else ()
        )
        self._check_matches_contract()
        if not fast:
            self._fall_back("switched off (MLCI_SERVING_FAST_PATH=0)")
            return
        try:
            self._compile()
            self._check_against_pipeline()
        except NotCompilableError as why:
            self._fall_back(str(why))
        except Exception as err:  # a model the compiler misreads must still be served
            self._fall_back(f"the compiler failed ({type(err).__name__}: {err})")

    def _setup(self, spec: Any, version: str) -> None:
        # ``spec``: the contract's facts (``mlci.spec.Spec``), read from the contract or rebuilt
        # from a serving manifest without importing pandera.
        self.spec = spec
        self.version = version
        self.task = spec.task
        self.features = spec.feature_names
        self.numeric = set(spec.numeric)
        self.classes: tuple[str, ...] = ()
        self.preprocess: CompiledPreprocess | None = None
        self.estimator: CompiledLinear | None = None
        self._estimator_obj: Any = None
        self._pipeline: Any = None
        self._load_pipeline: Callable[[], Any] | None = None
        self.mode = "sklearn"
        self.fallback_reason: str | None = None
        self.probe_gap: float | None = None  # the start-up proof's largest difference
        # Told how many regression answers of one ``score`` call were clipped to the target's
        # bounds (the service counts them on /metrics).
        self.on_clipped: Callable[[int], None] | None = None

    @classmethod
    def from_compiled(
        cls,
        spec: Any,
        version: str,
        classes: Sequence[str],
        preprocess: CompiledPreprocess,
        estimator: CompiledLinear,
        load_pipeline: Callable[[], Any],
    ) -> Predictor:
        """A fully compiled predictor whose check against the pipeline was recorded when the model
        was registered (:mod:`mlci.serving.manifest`); call :meth:`check_recorded` before use.
        The pipeline is loaded by ``load_pipeline`` on first use only."""
        self = cls.__new__(cls)
        self._setup(spec, version)
        self.classes = tuple(classes)
        self.preprocess, self.estimator = preprocess, estimator
        self._load_pipeline = load_pipeline
        self.mode = "compiled"
        return self

    @property
    def pipeline(self) -> Any:
        """The fitted scikit-learn pipeline (loaded on first use for a predictor built from a
        manifest: the fast path never needs it)."""
        if self._pipeline is None and self._load_pipeline is not None:
            self._pipeline = self._load_pipeline()
        return self._pipeline

    @property
    def fast_path(self) -> bool:
        return self.mode != "sklearn"

    def _fall_back(self, why: str) -> None:
        # Not logged here: ``bentoml serve`` loads the model in its supervisor too (to refuse a
        # bad one early), and the line belongs to the process that serves (the service logs it).
        self.preprocess, self.estimator, self._estimator_obj = None, None, None
        self.mode, self.fallback_reason = "sklearn", why

    def _compile(self) -> None:
        from sklearn.pipeline import Pipeline

        p = self.pipeline
        if not isinstance(p, Pipeline) or len(p.steps) != 2:
            raise NotCompilableError("model is not a two-step Pipeline (preprocess, estimator)")
        pre, est = p.steps[0][1], p.steps[1][1]
        self.preprocess = compile_preprocess(pre)
        self.estimator = compile_estimator(est)
        self._estimator_obj = est
        self.mode = "compiled" if self.estimator else "compiled-preprocess"

    def _check_matches_contract(self) -> None:
        from sklearn.base import is_classifier

        spec = self.spec
        trained = getattr(self.pipeline, "feature_names_in_", None)
        if trained is not None and set(map(str, trained)) != set(spec.feature_names):
            raise UserError(
                f"the model was trained on features {sorted(map(str, trained))} but the data "
                f"contract defines {sorted(spec.feature_names)}: retrain it (`make run`)"
            )
        model_task = "classification" if is_classifier(self.pipeline) else "regression"
        if model_task != self.task:
            raise UserError(
                f"the model is a {model_task} model but the data contract's target "
                f"{spec.target!r} is a {self.task} target: retrain it (`make run`)"
            )
        if not set(self.classes) <= set(spec.classes):
            raise UserError(
                f"the model predicts classes {list(self.classes)} but the contract allows "
                f"{list(spec.classes)}: retrain it (`make run`)"
            )

    # -- the start-up proof ----------------------------------------------------------------

    def probe_records(self) -> list[dict[str, Any]]:
        """Records that exercise every compiled lookup: each known category, an unseen value
        and a missing value of every categorical feature; the bounds of every number."""
        spec = self.spec
        known = {c.name: list(c.index) for c in (self.preprocess or ()).categorical}  # type: ignore[union-attr]
        base: dict[str, Any] = {}
        for f in spec.features:
            if f.kind == "categorical":
                base[f.name] = next(iter(known.get(f.name) or f.categories or [UNSEEN]))
            elif f.minimum is not None and f.maximum is not None:
                base[f.name] = (f.minimum + f.maximum) / 2
            else:
                base[f.name] = f.minimum if f.minimum is not None else (f.maximum or 0.0)
        records = [base]
        for f in spec.features:
            if f.kind == "categorical":
                seen = dict.fromkeys([*known.get(f.name, []), *f.categories])
                values: list[Any] = [*seen, UNSEEN]
            else:
                values = [v for v in (f.minimum, f.maximum) if v is not None]
            values += [None] if f.nullable else []
            records += [{**base, f.name: v} for v in values]
        records.append({**base, **{f.name: None for f in spec.features if f.nullable}})
        return records

    def _check_against_pipeline(self) -> None:
        records = self.probe_records()
        self.check_recorded(records, self.reference_answers(records))

    def reference_answers(self, records: Sequence[Record]) -> np.ndarray:
        """The pipeline's answers: probabilities (classification) or values (regression)."""
        if self.task == "classification":
            return self.reference_proba(records)
        return self.reference_values(records)

    def check_recorded(self, records: Sequence[Record], expected: Any) -> None:
        """Raise :class:`NotCompilableError` unless the compiled path gives the pipeline's
        answers ``expected`` on ``records`` (computed now, or recorded at registration)."""
        ref = np.asarray(expected, dtype=np.float64)
        if self.task == "classification":
            fast = self.predict_proba(records)
            gap = float(np.max(np.abs(fast - ref))) if fast.shape == ref.shape else math.inf
        else:
            fast = self.predict_values(records)
            scale = np.maximum(1.0, np.abs(ref))
            gap = float(np.max(np.abs(fast - ref) / scale)) if fast.shape == ref.shape else math.inf
        self.probe_gap = gap
        if not gap <= PROBE_TOLERANCE:  # also catches NaN
            raise NotCompilableError(
                f"the compiled path differs from the pipeline by {gap:.3g} on a probe record"
            )

    # -- predicting ------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: Path, version: str, *, fast: bool | None = None, spec: Any = None
    ) -> Predictor:
        """Load with skops and the trust list (never pickle)."""
        from mlci import artifacts  # skops and scikit-learn: seconds of imports

        if fast is None:
            fast = fast_path_wanted()
        return cls(artifacts.load_model(path), version, fast=fast, spec=spec)

    def score(self, records: Sequence[Record]) -> tuple[list[Any], np.ndarray | None]:
        """(predictions, probabilities): class labels and their probabilities, or for
        regression the predicted values (floats, inside the contract's bounds on the target:
        see ``Spec.clip_target``; ``on_clipped`` is told how many were moved) and None."""
        if self.task == "regression":
            values = self._clipped(self.predict_values(records))
            return values.tolist(), None
        proba = self.predict_proba(records)
        return self.labels(proba), proba

    def score_columns(self, frame: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``score`` on a DataFrame (a batch chunk): the feature columns in the contract's types,
        missing as NaN/NA, as :func:`mlci.serving.batch.check_frame` gives them. The same answers
        (clipping and ``on_clipped`` included), as arrays: labels (object) or float64 values.
        The compiled path reads the columns straight into its matrix; the pipeline gets the
        frame in the types it was trained on. No record per row is built."""
        if self.preprocess is None:
            data = self.columns_frame(frame)
            if self.task == "classification":
                raw = np.asarray(self.pipeline.predict_proba(data), dtype=np.float64)
            else:
                raw = np.asarray(self.pipeline.predict(data), dtype=np.float64).reshape(-1)
        else:
            raw = self._from_matrix(self.preprocess.transform_columns(frame))
        if self.task == "regression":
            return self._clipped(raw), None
        labels = np.asarray(self.classes, dtype=object)[raw.argmax(axis=1)]
        return labels, raw

    def _clipped(self, values: np.ndarray) -> np.ndarray:
        values, clipped = self.spec.clip_target(values)
        if clipped and self.on_clipped is not None:
            self.on_clipped(clipped)
        return values

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        if self.preprocess is None:
            return self.reference_proba(records)
        return self._from_matrix(self.preprocess.transform(records))

    def predict_values(self, records: Sequence[Record]) -> np.ndarray:
        """Regression: the model's value for each record, as it is (the start-up proof compares
        it with the pipeline); ``score`` clips it to the contract's bounds."""
        if self.preprocess is None:
            return self.reference_values(records)
        return self._from_matrix(self.preprocess.transform(records))

    def _from_matrix(self, x: np.ndarray) -> np.ndarray:
        """The compiled matrix's answers: probabilities (classification) or values."""
        est, pre = self.estimator, self.preprocess
        assert pre is not None  # only the compiled paths build a matrix
        if self.task == "classification":
            if est is not None:
                return est.predict_proba(x)
            proba = self._estimator_obj.predict_proba(pre.estimator_input(x))
            return np.asarray(proba, dtype=np.float64)
        if est is not None:
            return est.predict(x)
        values = self._estimator_obj.predict(pre.estimator_input(x))
        return np.asarray(values, dtype=np.float64).reshape(-1)

    def reference_proba(self, records: Sequence[Record]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(self.frame(records)), dtype=np.float64)

    def reference_values(self, records: Sequence[Record]) -> np.ndarray:
        values = self.pipeline.predict(self.frame(records))
        return np.asarray(values, dtype=np.float64).reshape(-1)

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

    def columns_frame(self, frame: Any) -> Any:
        """A DataFrame's feature columns in the types :meth:`frame` gives records (float64;
        ``str`` with NaN for missing): what the pipeline itself is fed."""
        import pandas as pd

        data = {}
        for name in self.features:
            col = frame[name]
            if name in self.numeric:
                data[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                data[name] = col.astype("str").array
        return pd.DataFrame(data, columns=self.features)

    def labels(self, proba: np.ndarray) -> list[str]:
        classes = self.classes
        return [classes[i] for i in proba.argmax(axis=1).tolist()]


def fast_path_wanted() -> bool:
    """False when ``MLCI_SERVING_FAST_PATH`` switches the compiled path off."""
    return os.environ.get("MLCI_SERVING_FAST_PATH", "1") not in ("0", "false", "no")


def _contract_spec() -> Any:
    from mlci import contract  # pandas and pandera: imported only when no manifest gives the spec

    return contract.spec()


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
