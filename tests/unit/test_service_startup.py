"""Start-up: the serving manifest written when the model is registered
(``mlci.serving.manifest``) and how a serving worker uses it.

A worker must start without scikit-learn, skops, pandas or pandera when the model is fully
compiled, and still never use a compiled path that does not give the pipeline's answers: not one
that failed the check at registration, not one whose recorded arrays no longer match, not one
recorded for another model file, contract or scikit-learn.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlci import artifacts, contract
from mlci.serving import manifest, model_store
from mlci.serving.compiled import NotCompilableError
from tests.helpers import run, tool_env

# They use ``trained_repo``: a real ``dvc repro`` (once per session).
pytestmark = pytest.mark.slow

MODEL_FILE = model_store.MODEL_FILE


def test_the_manifests_contract_facts_are_the_contracts() -> None:
    spec = contract.spec()
    assert type(spec) is manifest.Spec  # one definition (mlci.spec), no pandera in it
    copy = manifest.spec_from_json(json.loads(json.dumps(manifest.spec_to_json(spec))))
    assert dataclasses.asdict(copy) == dataclasses.asdict(spec)
    for prop in ("task", "numeric", "categorical", "feature_names"):
        assert getattr(copy, prop) == getattr(spec, prop), prop


@pytest.fixture(scope="module")
def model_dir(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like the store's: the trained model and the manifest this process writes."""
    folder = tmp_path_factory.mktemp("stored")
    shutil.copy2(trained_repo / "models" / "model.skops", folder / MODEL_FILE)
    manifest.write(folder, MODEL_FILE)
    return folder


@pytest.fixture
def own_dir(model_dir: Path, tmp_path: Path) -> Path:
    """A copy of ``model_dir`` to change."""
    return Path(shutil.copytree(model_dir, tmp_path / "stored"))


def records_of(repo: Path) -> list[dict[str, Any]]:
    frame = pd.read_parquet(repo / "data/processed/test.parquet")[contract.spec().feature_names]
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]


def test_registration_records_the_checked_fast_path(model_dir: Path) -> None:
    doc, why = manifest.read(model_dir, MODEL_FILE)
    assert doc is not None, why
    fast = doc["fast_path"]
    assert fast["mode"] == "compiled" and fast["reason"] is None
    probe = fast["probe"]
    assert probe["max_gap"] <= probe["tolerance"]
    assert len(probe["records"]) == len(probe["expected"]) > len(contract.spec().features)
    assert doc["classes"] == sorted(doc["classes"]) and doc["classes"]
    assert doc["model_md5"] == manifest.md5_file(model_dir / MODEL_FILE)


def test_the_recorded_path_equals_the_pipeline_on_the_test_set(
    model_dir: Path, trained_repo: Path
) -> None:
    doc, _ = manifest.read(model_dir, MODEL_FILE)
    predictor = manifest.recorded_predictor(doc, model_dir / MODEL_FILE, "v")
    assert predictor.mode == "compiled" and predictor._pipeline is None  # not loaded
    records = records_of(trained_repo)
    fast = predictor.predict_proba(records)
    ref = predictor.reference_proba(records)  # loads the pipeline now
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)
    assert predictor.labels(fast) == predictor.labels(ref)


def test_a_compiled_path_that_fails_the_check_at_registration_is_not_recorded(
    own_dir: Path, monkeypatch
) -> None:
    """A compiler that misreads the model (a coefficient off by 1e-6): the manifest records the
    pipeline as the way to answer, with the reason, and no compiled arrays a worker could use."""
    from mlci.serving import predictor as predictor_module
    from mlci.serving.compiled import compile_estimator

    def misread(estimator: Any) -> Any:
        compiled = compile_estimator(estimator)
        compiled.coef_t[0, 0] += 1e-6
        return compiled

    monkeypatch.setattr(predictor_module, "compile_estimator", misread)
    doc = manifest.write(own_dir, MODEL_FILE)
    assert doc["fast_path"]["mode"] == "sklearn"
    assert "differs from the pipeline" in doc["fast_path"]["reason"]
    assert set(doc["fast_path"]) == {"mode", "reason"}


@pytest.mark.parametrize("what", ["arrays", "answers"])
def test_recorded_arrays_that_do_not_give_the_recorded_answers_are_refused(
    own_dir: Path, what: str
) -> None:
    path = own_dir / manifest.FILE
    doc = json.loads(path.read_text())
    if what == "arrays":
        doc["fast_path"]["estimator"]["coef_t"][0][0] += 1e-6
    else:
        doc["fast_path"]["probe"]["expected"][-1][0] += 1e-6
    path.write_text(json.dumps(doc))
    found, why = manifest.read(own_dir, MODEL_FILE)
    assert found is not None, why
    with pytest.raises(NotCompilableError, match="differs from the pipeline"):
        manifest.recorded_predictor(found, own_dir / MODEL_FILE, "v")


def test_a_manifest_is_only_used_for_what_it_was_written_for(own_dir: Path, monkeypatch) -> None:
    assert manifest.read(own_dir, MODEL_FILE)[0] is not None
    monkeypatch.setattr(manifest, "contract_digest", lambda: "another contract")
    assert "the data contract's source" in manifest.read(own_dir, MODEL_FILE)[1]
    monkeypatch.undo()
    monkeypatch.setattr(manifest, "fingerprint", lambda: {**_fingerprint(), "scikit-learn": "0"})
    assert "scikit-learn" in manifest.read(own_dir, MODEL_FILE)[1]
    monkeypatch.undo()
    with (own_dir / MODEL_FILE).open("ab") as f:
        f.write(b"\0")
    assert "not the file" in manifest.read(own_dir, MODEL_FILE)[1]
    (own_dir / manifest.FILE).write_text("{")
    assert "unreadable" in manifest.read(own_dir, MODEL_FILE)[1]
    (own_dir / manifest.FILE).unlink()
    assert "no serving.json" in manifest.read(own_dir, MODEL_FILE)[1]


_fingerprint = manifest.fingerprint


# ------------------------------------------------------------------- through the BentoML store


@pytest.fixture(scope="module")
def store(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A BentoML store (this process's, temporary) holding the trained model, registered with
    ``mlci register-model`` as a user would."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    home = tmp_path_factory.mktemp("startup") / "bentoml-home"
    run(["mlci", "register-model"], trained_repo, BENTOML_HOME=str(home))
    before = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(home)
    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.model_store.set(ModelStore(str(home / "models")))
    yield home
    for provider in ("bentoml_home", "model_store"):
        getattr(BentoMLContainer, provider).reset()
    if before is None:
        os.environ.pop("BENTOML_HOME", None)
    else:
        os.environ["BENTOML_HOME"] = before


def stored_dir(home: Path) -> Path:
    (info,) = (home / "models" / "mlci-classifier").glob("*/model.yaml")
    return info.parent


def test_a_worker_starts_without_scikit_learn_pandas_or_pandera(
    store: Path, trained_repo: Path
) -> None:
    """Import the service and build its predictor as a ``bentoml serve`` worker does, in a fresh
    process: none of the heavy libraries is imported, and the answers are the pipeline's."""
    code = """
import json, sys
from mlci.serving import service, stored_model
predictor = stored_model.load_predictor(service.MODEL)
heavy = sorted(m for m in ("sklearn", "skops", "pandas", "pandera", "scipy") if m in sys.modules)
records = json.loads(sys.stdin.read())
fast = predictor.predict_proba(records).tolist()
print(json.dumps({"heavy": heavy, "mode": predictor.mode, "fast": fast,
                  "ref": predictor.reference_proba(records).tolist()}))
"""
    env = tool_env(BENTOML_HOME=str(store), PYTHONPATH=str(trained_repo / "src"))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=trained_repo,
        env=env,
        input=json.dumps(records_of(trained_repo)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["heavy"] == [] and out["mode"] == "compiled"
    np.testing.assert_allclose(out["fast"], out["ref"], rtol=0, atol=1e-12)


def _fresh_ref(tag: str) -> Any:
    from mlci.serving import stored_model

    return stored_model.StoreModel(tag)


def test_the_worker_falls_back_to_the_pipeline_when_the_recorded_path_does_not_match(
    store: Path, trained_repo: Path, tmp_path: Path, caplog
) -> None:
    """The recorded arrays are altered after registration: the worker does not use them; it
    loads the pipeline, compiles and proves it again, and says why once."""
    from mlci.serving import stored_model

    folder = stored_dir(store)
    backup = tmp_path / manifest.FILE
    shutil.copy2(folder / manifest.FILE, backup)
    try:
        doc = json.loads(backup.read_text())
        doc["fast_path"]["estimator"]["coef_t"][0][0] += 1e-6
        (folder / manifest.FILE).write_text(json.dumps(doc))
        tag = f"mlci-classifier:{folder.name}"
        with caplog.at_level(logging.WARNING, logger="mlci.serving.service"):
            predictor = stored_model.load_predictor(_fresh_ref(tag))
        assert "differs from the pipeline" in caplog.text and "loading the pipeline" in caplog.text
        assert predictor.mode == "compiled"  # compiled again from the pipeline, and proven
        altered = doc["fast_path"]["estimator"]["coef_t"][0][0]
        assert predictor.estimator.coef_t[0, 0] != altered
        records = records_of(trained_repo)
        np.testing.assert_allclose(
            predictor.predict_proba(records), predictor.reference_proba(records), atol=1e-12
        )
    finally:
        shutil.copy2(backup, folder / manifest.FILE)


def test_without_a_manifest_the_model_is_loaded_at_start_and_registering_writes_one(
    store: Path, trained_repo: Path, tmp_path: Path, caplog
) -> None:
    from mlci.serving import stored_model

    home = Path(shutil.copytree(store, tmp_path / "home"))
    folder = stored_dir(home)
    (folder / manifest.FILE).unlink()
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    BentoMLContainer.model_store.set(ModelStore(str(home / "models")))
    try:
        ref = _fresh_ref(f"mlci-classifier:{folder.name}")
        with caplog.at_level(logging.WARNING, logger="mlci.serving.service"):
            predictor = stored_model.load_predictor(ref)
        assert "serving manifest not used (no serving.json" in caplog.text
        assert predictor.mode == "compiled" and predictor.pipeline is not None
    finally:
        BentoMLContainer.model_store.set(ModelStore(str(store / "models")))
    again = run(["mlci", "register-model"], trained_repo, BENTOML_HOME=str(home))
    assert '"created": false' in again.stdout
    assert manifest.read(folder, MODEL_FILE)[0] is not None


def test_switching_the_fast_path_off_loads_the_pipeline(store: Path, monkeypatch) -> None:
    from mlci.serving import stored_model

    monkeypatch.setenv("MLCI_SERVING_FAST_PATH", "0")
    predictor = stored_model.load_predictor(_fresh_ref(f"mlci-classifier:{stored_dir(store).name}"))
    assert predictor.mode == "sklearn"
    assert "MLCI_SERVING_FAST_PATH=0" in (predictor.fallback_reason or "")


def test_a_model_that_does_not_fit_the_contract_is_not_registered(
    own_dir: Path, monkeypatch
) -> None:
    from mlci.errors import UserError

    pipeline = artifacts.load_model(own_dir / MODEL_FILE)
    pipeline.steps[0][1].feature_names_in_ = np.array(
        [*contract.spec().feature_names[:-1], "wing_span_cm"], dtype=object
    )
    with pytest.raises(UserError, match="wing_span_cm"):
        manifest.build(pipeline, "md5")
