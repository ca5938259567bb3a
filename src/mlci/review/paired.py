"""Both models' answers on the same test rows: the input of the noise estimate (mlci.review.noise).

Best: load both models (this branch's from ``models/``, the base's from the DVC cache) and score
this branch's test set, which gives labels and probabilities, so every metric gets an interval.
Else, when both sides committed per-row results for the same test rows (the confusion data of a
classifier, the residuals of a regressor), those give labels or predictions without loading a
model; metrics that need probabilities then get no interval. Else: no noise estimate, and the
report says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlci import history, paths
from mlci.metrics import known_labels, label_codes
from mlci.review.noise import RowScores
from mlci.review.sides import Side


@dataclass(frozen=True)
class Paired:
    base: RowScores
    head: RowScores
    source: str  # how the rows were scored, said in the report


def scores(model: Any, X: pd.DataFrame, y: pd.Series, classes: list[str] | None) -> RowScores:
    """One model's answers; ``classes``: the shared class order (this branch's model's)."""
    if classes is None:
        return RowScores(np.asarray(y, float), np.asarray(model.predict(X), float))
    labels = known_labels(y, classes)
    own = [str(c) for c in model.classes_]
    raw = model.predict_proba(X)
    proba = np.zeros((len(X), len(labels)))
    for j, c in enumerate(own):  # the base may order (or lack) classes differently
        if c in labels:
            proba[:, labels.index(c)] = raw[:, j]
    pred = label_codes([own[i] for i in raw.argmax(axis=1)], labels)
    return RowScores(label_codes(y, labels), pred, proba, tuple(labels))


def from_models(base: Side) -> Paired | str:
    """Score this branch's test set with both models, or say why not."""
    from mlci import artifacts
    from mlci.contract import features_and_target

    md5 = history.lock_outs(base.lock).get(paths.MODEL.as_posix())
    cached = history.cached(md5) if md5 else None
    if cached is None:
        return "the base model is not in the local DVC cache"
    if not paths.TEST.is_file() or not paths.MODEL.is_file():
        return "this branch's test set or model is missing"
    try:
        X, y = features_and_target(pd.read_parquet(paths.TEST))
        head_model = artifacts.load_model(paths.MODEL)
        base_model = artifacts.load_model(cached)
        classes = [str(c) for c in head_model.classes_] if hasattr(head_model, "classes_") else None
        head = scores(head_model, X, y, classes)
        return Paired(scores(base_model, X, y, classes), head, "both models re-scored")
    except Exception as err:  # a report must not die on a nicety: say why and go on
        return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def from_committed(base: Side, current: Side) -> Paired | None:
    """Per-row results both sides committed for the same rows: labels or predictions only."""
    if current.task == "classification":
        b, h = base.confusion, current.confusion
        if b is None or h is None or len(b) != len(h) or not len(h):
            return None
        if not (b["actual"].astype(str).to_numpy() == h["actual"].astype(str).to_numpy()).all():
            return None
        labels = sorted(
            {*h["actual"].astype(str), *h["predicted"].astype(str), *b["predicted"].astype(str)}
        )
        truth = label_codes(h["actual"].astype(str), labels)

        def side(frame: pd.DataFrame) -> RowScores:
            return RowScores(
                truth, label_codes(frame["predicted"].astype(str), labels), None, tuple(labels)
            )

        return Paired(side(b), side(h), "committed per-row predictions (labels only)")
    b, h = base.residuals, current.residuals
    if b is None or h is None or len(b) != len(h) or not len(h):
        return None
    if not np.allclose(b["actual"].to_numpy(float), h["actual"].to_numpy(float)):
        return None
    truth = h["actual"].to_numpy(float)
    return Paired(
        RowScores(truth, b["predicted"].to_numpy(float)),
        RowScores(truth, h["predicted"].to_numpy(float)),
        f"committed per-row predictions ({len(h)} rows)",
    )


def paired(base: Side, current: Side) -> Paired | str:
    """Both sides' answers on the same rows, or the reason there are none."""
    found = from_models(base)
    if isinstance(found, Paired):
        return found
    return from_committed(base, current) or found
