"""skops model files: byte-reproducible, loadable only with the trust list, same predictions."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlci import artifacts, estimators
from tests.helpers import REPO


def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=240),
            "b": rng.normal(size=240),
            "c": rng.choice(["x", "y", "z"], size=240),
        }
    )
    X.loc[::11, "a"] = np.nan
    y = np.where(X["a"].fillna(0) + X["b"] > 0.3, "p", np.where(X["b"] < -0.5, "q", "r"))
    return X, y


def fitted(estimator) -> Pipeline:
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["a", "b"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                ["c"],
            ),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", pre), ("model", estimator)]).fit(*data())


ESTIMATORS = {
    "logistic_regression": lambda: LogisticRegression(max_iter=1000, random_state=1),
    "random_forest": lambda: RandomForestClassifier(n_estimators=10, random_state=1),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=1),
    "dummy": lambda: DummyClassifier(strategy="prior", random_state=1),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_saved_model_is_byte_reproducible_and_loads_the_same(name: str, tmp_path: Path) -> None:
    model = fitted(ESTIMATORS[name]())
    raw = [sio.dumps(model), sio.dumps(model)]
    assert raw[0] != raw[1]  # what skops writes differs between dumps (ids, times)

    first, second = tmp_path / "1.skops", tmp_path / "2.skops"
    artifacts.save_model(model, first)
    artifacts.save_model(model, second)
    assert first.read_bytes() == second.read_bytes()

    X, _ = data()
    loaded = artifacts.load_model(first)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert list(loaded.classes_) == list(model.classes_)
    with pytest.raises(Exception, match=r"[Uu]ntrusted"):
        sio.load(first)  # the default (empty) trust list still refuses the file


def test_archive_has_fixed_times_and_sequential_names(tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    artifacts.save_model(fitted(ESTIMATORS["logistic_regression"]()), path)
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        schema = json.loads(z.read("schema.json"))
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert [i.filename for i in infos][-1] == "schema.json"
    arrays = [i.filename for i in infos[:-1]]
    assert arrays == [f"{n}.npy" for n in range(len(arrays))]

    ids: list[int] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "__id__" in node:
                ids.append(node["__id__"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert set(ids) == set(range(1, max(ids) + 1))  # renumbered 1, 2, ...: no memory addresses


def test_shared_objects_stay_shared() -> None:
    shared = np.arange(5.0)
    obj = {"first": shared, "second": shared, "other": np.arange(5.0)}
    loaded = sio.loads(artifacts.canonical_bytes(sio.dumps(obj)), trusted=artifacts.TRUSTED)
    assert loaded["first"] is loaded["second"]
    assert loaded["other"] is not loaded["first"]
    assert np.array_equal(loaded["other"], obj["other"])


def test_same_bytes_from_separate_processes(tmp_path: Path) -> None:
    """Object ids and string hashing differ per process: the file must not."""
    script = (
        "import sys; from pathlib import Path; "
        "from tests.unit.test_artifacts import ESTIMATORS, fitted; from mlci import artifacts; "
        "artifacts.save_model(fitted(ESTIMATORS['random_forest']()), Path(sys.argv[1]))"
    )
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"{seed}.skops"
        subprocess.run(
            [sys.executable, "-c", script, str(out)],
            cwd=REPO,
            env={"PYTHONHASHSEED": seed, "PATH": str(Path(sys.executable).parent)},
            check=True,
            timeout=300,
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_unknown_members_are_kept() -> None:
    buf = io.BytesIO(sio.dumps({"a": np.arange(3)}))
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr("extra.bin", b"kept")
    with zipfile.ZipFile(io.BytesIO(artifacts.canonical_bytes(buf.getvalue()))) as z:
        assert z.read("unreferenced/extra.bin") == b"kept"


def registry_models():
    """Every estimator and baseline of the registry, for both tasks, in the training pipeline's
    shape (imputers, scaler, one-hot encoder in a column transformer)."""
    X, y = data()
    targets = {"classification": y, "regression": X["b"].to_numpy() * 2 + 1}
    for task, names in estimators.ESTIMATORS.items():
        built = [estimators.build_estimator(n, task, {}, 1) for n in names]
        built += [estimators.build_baseline(s, task, 1) for s in estimators.BASELINES[task]]
        for estimator in built:
            pre = fitted(DummyClassifier()).named_steps["preprocess"]
            yield Pipeline([("preprocess", pre), ("model", estimator)]).fit(X, targets[task])


def test_the_trust_list_is_exactly_what_the_registry_needs(tmp_path: Path) -> None:
    """Each registry model saves and loads with ``TRUSTED`` alone, and ``TRUSTED`` holds no type
    none of them contains (nothing else of scikit-learn is trusted: skops's default of every
    public estimator is off, however skops was imported)."""
    needed: set[str] = set()
    for i, model in enumerate(registry_models()):
        path = tmp_path / f"{i}.skops"
        artifacts.save_model(model, path)
        needed |= set(artifacts.sio.get_untrusted_types(file=path))
        X, _ = data()
        assert np.array_equal(artifacts.load_model(path).predict(X), model.predict(X))
    assert needed == set(artifacts.TRUSTED)

    from sklearn.cluster import KMeans  # a public estimator the template does not use

    with pytest.raises(RuntimeError, match=r"sklearn\.cluster\._kmeans\.KMeans"):
        artifacts.save_model(KMeans(n_clusters=2, n_init=1).fit(data()[0][["b"]]), tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_loading_a_model_imports_no_test_tooling(tmp_path: Path) -> None:
    """skops's import-time walk of every scikit-learn module (which imports pytest and
    dask.array) is skipped: a stage that loads a model imports neither."""
    path = tmp_path / "m.skops"
    artifacts.save_model(fitted(ESTIMATORS["logistic_regression"]()), path)
    script = (
        "import sys; from mlci import artifacts; artifacts.load_model(sys.argv[1]); "
        "print(sorted({'pytest', 'dask.array'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
