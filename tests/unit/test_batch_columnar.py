"""Batch scoring's columnar entry (``Predictor.score_columns``) gives exactly the record path's
answers (``Predictor.score``, what the service runs) on every kind of generated project:
numeric binary/multiclass, regression with bounds that clip, categorical, digit codes with an
open category, missing values; on the compiled paths and on the whole-pipeline fallback. The
chunks are the ones ``mlci predict`` scores: read from CSV and Parquet by ``batch.chunks`` and
checked by ``batch.check_frame``.

Each kind runs in a subprocess whose ``project`` package is the fixture's (as in
tests/unit/test_fast_path_contracts.py, whose fixtures and pipelines it reuses).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.projects import KINDS, table
from tests.unit.test_fast_path_contracts import pipelines, run_in_project


def batch_input(kind: str, target: str) -> Any:
    """Fresh rows of the fixture's population with missing values in every column (kept where
    the contract allows them, bad rows elsewhere) and never-seen codes."""
    import numpy as np

    df = table(kind, 300, seed=5)[0].drop(columns=[target]).astype(object)
    rng = np.random.default_rng(1)
    for name in df.columns:
        df.loc[rng.choice(len(df), size=15, replace=False), name] = None
    if kind == "mixed_codes":  # an open category: a code the model never saw is scored
        df.loc[rng.choice(len(df), size=10, replace=False), "postcode"] = "99999"
    return df


def as_records(frame: Any) -> list[dict[str, Any]]:
    """Rows as the service's records (missing: None)."""
    return [
        {k: (None if v is None or v != v else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


def check(kind: str, tmp: str) -> dict[str, Any]:
    """In the fixture's process: for every predictor, every chunk, columns == records."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from mlci import contract
    from mlci.serving import batch
    from mlci.serving.predictor import Predictor

    spec = contract.spec()
    data = contract.as_contract_types(table(kind)[0])
    trainset, _ = train_test_split(data, test_size=0.25, random_state=0)
    X, y = contract.features_and_target(trainset)
    raw = batch_input(kind, spec.target)
    csv, parquet = Path(tmp) / "in.csv", Path(tmp) / "in.parquet"
    raw.to_csv(csv, index=False)
    raw.astype({c: "string" for c in raw.columns if c in spec.categorical}).to_parquet(parquet)
    chunks = []
    for source in (csv, parquet):
        offset = 0
        for chunk in batch.chunks(str(source), 128):
            chunks.append((chunk, offset))
            offset += len(chunk)
    modes, clipped, scored = [], 0, 0
    for name, pipeline in pipelines(spec.task, X, y):
        if isinstance(pipeline, str):
            continue
        for fast in (True, False):
            own = spec
            if spec.task == "regression":  # bounds inside the answers: some are clipped
                values = pipeline.predict(X)
                lo, hi = np.quantile(values, [0.1, 0.9])
                own = replace(spec, target_minimum=float(lo), target_maximum=float(hi))
            predictor = Predictor(pipeline, "v", fast=fast, spec=own)
            modes.append(predictor.mode)
            counts: list[int] = []
            predictor.on_clipped = counts.append
            for chunk, offset in chunks:
                checked, bad = batch.check_frame(chunk, own, offset)
                good = checked.loc[~checked["row"].isin(bad["row"].to_numpy())]
                features = good[spec.feature_names]
                before = len(counts)
                by_column, proba_c = predictor.score_columns(features)
                middle = len(counts)
                by_record, proba_r = predictor.score(as_records(features))
                assert counts[middle:] == counts[before:middle], (name, "clip counts differ")
                assert by_column.tolist() == by_record, (name, fast)
                if spec.task == "classification":
                    np.testing.assert_array_equal(proba_c, proba_r, err_msg=name)
                else:
                    assert proba_c is None and proba_r is None
                    assert all(lo <= v <= hi for v in by_record)
                # and what `mlci predict` writes for the chunk
                out, _ = batch.score_frame(chunk, predictor, offset)
                assert out["prediction"].tolist() == by_record, name
                scored += len(good)
            clipped += sum(counts)
    return {"modes": sorted(set(modes)), "clipped": clipped, "scored": scored}


@pytest.mark.parametrize("kind", KINDS)
def test_columns_score_as_records_do(kind: str, tmp_path: Path) -> None:
    module = "tests.unit.test_batch_columnar"
    found = run_in_project(module, "check", kind, tmp_path, str(tmp_path))
    assert found["modes"] == ["compiled", "compiled-preprocess", "sklearn"]
    assert found["scored"] > 0
    if table(kind)[3] == "regression":
        assert found["clipped"] > 0
