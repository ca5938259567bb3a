"""The compiled fast path on every kind of contract an adopter brings (tests/projects.py):
numeric-only (binary and multiclass), regression, digit codes with a high-cardinality open
category and missing values, categorical-only. For every estimator the template offers, the
service's predictor must equal the fitted pipeline on the fixture's whole test set (one call and
one row at a time), plus missing values and values the model never saw.

Each fixture has its own data contract, and ``mlci.contract.spec()`` reads the ``project``
package once per process: each kind is checked in a subprocess whose ``project`` package is the
fixture's (``PYTHONPATH``), as a project adopted with ``make adopt`` would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, tool_env
from tests.projects import CLEANING, contract_source, table

ESTIMATORS = {
    "classification": {
        "logistic_regression": {"max_iter": 1000},
        "random_forest": {"n_estimators": 20},
        "hist_gradient_boosting": {"max_iter": 20},
    },
    "regression": {
        "ridge": {"alpha": 1.0},
        "random_forest": {"n_estimators": 20},
        "hist_gradient_boosting": {"max_iter": 20},
    },
}
# The linear models are compiled whole; the trees predict with their own code on the compiled
# matrix.
EXPECTED_MODE = {
    "logistic_regression": "compiled",
    "ridge": "compiled",
    "random_forest": "compiled-preprocess",
    "hist_gradient_boosting": "compiled-preprocess",
}
ATOL = 1e-12  # probabilities
RTOL = 1e-12  # regression values (a dense and a sparse dot product may differ in the last bits)


def write_project_package(root: Path, kind: str) -> Path:
    """``root/src/project``: the fixture's contract; returns ``root/src`` for PYTHONPATH."""
    df, target, id_column, task = table(kind)
    pkg = root / "src" / "project"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Generated fixture package."""\n')
    (pkg / "schema.py").write_text(contract_source(df, target, id_column, task))
    (pkg / "cleaning.py").write_text(CLEANING)
    return root / "src"


def check(kind: str) -> dict[str, Any]:
    """Run in the fixture's process: fit every estimator, compare predictor and pipeline.

    Returns {estimator: {"mode", "reason"}} or raises AssertionError."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from mlci import contract
    from mlci.serving.compiled import UNSEEN
    from mlci.serving.predictor import Predictor

    spec = contract.spec()
    df = contract.as_contract_types(table(kind)[0])
    trainset, test = train_test_split(df, test_size=0.25, random_state=0)
    X, y = contract.features_and_target(trainset)
    frame = test[spec.feature_names]
    records = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]
    # Missing values (every nullable feature, sent as null and left out) and values the model
    # never saw (an open category's unseen code).
    extra: list[dict[str, Any]] = []
    for f in spec.features:
        if f.nullable:
            extra += [{**r, f.name: None} for r in records[:5]]
            extra += [{k: v for k, v in r.items() if k != f.name} for r in records[:5]]
        if f.kind == "categorical" and not f.categories:
            extra += [{**r, f.name: code} for r in records[:5] for code in ("99999", UNSEEN)]
    check_request_model([{**r, **ids} for r, ids in zip(records, id_values(test), strict=True)])
    results: dict[str, Any] = {}
    for name, pipeline in pipelines(spec.task, X, y):
        if isinstance(pipeline, str):  # a model the template cannot train
            results[name] = {"mode": None, "reason": pipeline}
            continue
        predictor = Predictor(pipeline, "v")
        everything = records + extra
        if spec.task == "classification":
            fast = predictor.predict_proba(everything)
            ref = pipeline.predict_proba(predictor.frame(everything))
            np.testing.assert_allclose(fast, ref, rtol=0, atol=ATOL, err_msg=name)
            offline = pipeline.predict_proba(frame)  # as the evaluate stage scores the test set
            np.testing.assert_allclose(fast[: len(records)], offline, rtol=0, atol=ATOL)
            labels, _ = predictor.score(records)
            assert labels == [str(x) for x in pipeline.predict(frame)], name
            one = np.vstack([predictor.predict_proba([r]) for r in everything])
            np.testing.assert_allclose(one, ref, rtol=0, atol=ATOL, err_msg=name)
        else:
            fast = predictor.predict_values(everything)
            ref = pipeline.predict(predictor.frame(everything))
            np.testing.assert_allclose(fast, ref, rtol=RTOL, atol=0, err_msg=name)
            offline = pipeline.predict(frame)
            np.testing.assert_allclose(fast[: len(records)], offline, rtol=RTOL, atol=0)
            values, proba = predictor.score(records)
            assert proba is None and all(isinstance(v, float) for v in values)
            one = np.concatenate([predictor.predict_values([r]) for r in everything])
            np.testing.assert_allclose(one, ref, rtol=RTOL, atol=0, err_msg=name)
        results[name] = {"mode": predictor.mode, "reason": predictor.fallback_reason}
    return results


def id_values(test: Any) -> list[dict[str, Any]]:
    from mlci import contract

    key = contract.spec().id_column
    return [{key: v} if key else {} for v in (test[key] if key else [None] * len(test))]


def check_request_model(rows: list[dict[str, Any]]) -> None:
    """The request model of this contract: the dataset's own rows (key included) pass; each
    kind of invalid value is refused naming its field."""
    from pydantic import ValidationError

    from mlci import contract
    from mlci.serving.api_models import MAX_TEXT, example_record, request_model

    spec = contract.spec()
    model = request_model()
    model.model_validate_json(json.dumps({"records": rows}))
    good = example_record()
    model.model_validate_json(json.dumps({"records": [good]}))

    def refused(field: str, value: Any, *, drop: bool = False) -> None:
        record = {k: v for k, v in good.items() if k != field} if drop else {**good, field: value}
        try:
            model.model_validate_json(json.dumps({"records": [good, record]}))
        except ValidationError as err:
            locs = [e["loc"] for e in err.errors()]
            assert locs and all(loc == ("records", 1, field) for loc in locs), locs
        else:
            raise AssertionError(f"{field}={value!r} was accepted")

    for f in spec.features:
        if f.kind == "numeric":
            refused(f.name, "3")
            refused(f.name, False)
        elif f.categories:
            refused(f.name, "not-a-category")
            refused(f.name, 3)
        else:  # an open set: any text, within bounds
            model.model_validate_json(json.dumps({"records": [{**good, f.name: "x" * MAX_TEXT}]}))
            refused(f.name, "x" * (MAX_TEXT + 1))
            refused(f.name, "")
            refused(f.name, 12345)
        if not f.nullable:
            refused(f.name, None)
            refused(f.name, None, drop=True)
    if spec.id_column:
        model.model_validate_json(json.dumps({"records": [{**good, spec.id_column: "k"}]}))
        refused(spec.id_column, 7)  # text, as the pipeline reads the key
        refused(spec.id_column, "k" * (MAX_TEXT + 1))
    check_smoke_test(refused)


def check_smoke_test(refused: Callable[..., None]) -> None:
    """``mlci smoke-test`` for this contract: its valid record is the example, its invalid one
    is refused naming the field, and it reads an answer of this task (and only one)."""
    from mlci import contract, release
    from mlci.errors import UserError
    from mlci.serving.api_models import example_record

    assert release.example_record() == example_record()
    refused(*release.invalid_field())
    classes = contract.spec().classes
    if classes:
        proba = {c: 1 / len(classes) for c in classes}
        good = {"label": classes[0], "probabilities": proba, "model_version": "v"}
        bad = {"prediction": 1.5, "model_version": "v"}
    else:
        good = {"prediction": 1.5, "model_version": "v"}
        bad = {"label": "x", "probabilities": {"x": 1.0}, "model_version": "v"}
    assert release.check_answer(json.dumps({"predictions": [good]}))
    for wrong in ({"predictions": [bad]}, {"predictions": []}, {"predictions": [good, good]}):
        try:
            release.check_answer(json.dumps(wrong))
        except UserError:
            continue
        raise AssertionError(f"smoke test accepted {wrong}")


def pipelines(task: str, X: Any, y: Any) -> Iterator[tuple[str, Any]]:
    """Fitted pipelines: every template estimator, then models the compiler does not know."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    from mlci.config import TrainConfig
    from mlci.pipeline import train

    def build(name: str, params: dict[str, Any]) -> Any:
        cfg = TrainConfig.model_validate({"estimator": {"name": name, "params": params}})
        return train.build_pipeline(cfg, 0, task)

    def fit(pipeline: Any) -> Any:
        try:
            return pipeline.fit(X, y)
        except (TypeError, ValueError) as err:
            return f"fit failed: {err}"

    first, params = next(iter(ESTIMATORS[task].items()))
    for name, params in ESTIMATORS[task].items():
        yield name, fit(build(name, params))
    # An estimator the compiler does not know: compiled preprocessing, its own predict.
    knn = build(first, params)
    neighbours = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
    knn.steps[-1] = ("model", neighbours())
    yield "unknown_estimator", fit(knn)
    # A preprocessing step it does not know: the whole pipeline predicts.
    odd = build(first, params)
    group, trans, columns = odd.steps[0][1].transformers[0]
    odd.steps[0][1].transformers[0] = (group, make_pipeline(trans, FunctionTransformer()), columns)
    yield "unknown_preprocessing", fit(odd)
    # A model trained before empty groups were left out: an unfitted encoder for no columns
    # (it stopped the service once: "OneHotEncoder has no attribute drop_idx_").
    old = build(first, params)
    pre = old.steps[0][1]
    present = {g for g, _, _ in pre.transformers}
    unfitted = {
        "num": make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
        "cat": make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OneHotEncoder(handle_unknown="ignore"),
        ),
    }
    empty = [(g, t, []) for g, t in unfitted.items() if g not in present]
    old.steps[0] = (
        "preprocess",
        ColumnTransformer([*pre.transformers, *empty], verbose_feature_names_out=False),
    )
    yield "with_empty_groups", fit(old)


def run_check(kind: str, tmp_path: Path) -> dict[str, Any]:
    return run_in_project("tests.unit.test_fast_path_contracts", "check", kind, tmp_path)


def run_in_project(module: str, function: str, kind: str, tmp_path: Path, *args: str) -> Any:
    """``module.function(kind, *args)`` in a process whose ``project`` package is the fixture's;
    its JSON answer."""
    src = write_project_package(tmp_path, kind)
    code = f"import json, sys; from {module} import {function}; "
    code += f"print(json.dumps({function}(*sys.argv[1:])))"
    result = subprocess.run(
        [sys.executable, "-c", code, kind, *args],
        cwd=REPO,
        env=tool_env(PYTHONPATH=f"{src}:{REPO}"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# A model the template cannot train today: the open category's one-hot columns make the
# ColumnTransformer's output sparse, which HistGradientBoosting refuses (mlci.pipeline.train).
TRAIN_FAILS: set[tuple[str, str]] = set()  # every estimator trains on every fixture


@pytest.mark.parametrize(
    "kind",
    ["binary_numeric", "multiclass_numeric", "regression", "mixed_codes", "categorical_only"],
)
def test_fast_path_equals_the_pipeline_for_every_contract_kind(kind: str, tmp_path: Path) -> None:
    results = run_check(kind, tmp_path)  # the equality itself is asserted in the subprocess
    task = table(kind)[3]
    expected = {
        **{name: EXPECTED_MODE[name] for name in ESTIMATORS[task]},
        "unknown_estimator": "compiled-preprocess",
        "unknown_preprocessing": "sklearn",
        "with_empty_groups": "compiled",
    }
    failed = {name: r["reason"] for name, r in results.items() if r["mode"] is None}
    assert {name: r["mode"] for name, r in results.items()} == {
        name: None if name in failed else mode for name, mode in expected.items()
    }
    assert "FunctionTransformer" in results["unknown_preprocessing"]["reason"]
    assert all(
        r["reason"] is None for r in results.values() if r["mode"] != "sklearn" and r["mode"]
    )
    assert {(kind, name) for name in failed} <= TRAIN_FAILS, failed
