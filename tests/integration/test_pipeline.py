"""The real pipeline: a full `dvc repro` in a repository copy, its outputs, and determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlci import artifacts, contract
from mlci.cli import main
from mlci.tasks import GATE_METRICS
from tests.conftest import git, run

pytestmark = pytest.mark.slow


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_repro_leaves_everything_up_to_date(trained_repo: Path) -> None:
    status = run(["dvc", "status"], trained_repo)
    assert "Data and pipelines are up to date" in status.stdout
    noop = run(["dvc", "repro"], trained_repo)
    assert "Running stage" not in noop.stdout


def test_every_declared_output_exists(trained_repo: Path) -> None:
    dvc = yaml.safe_load((trained_repo / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        for section in ("outs", "metrics"):
            for out in stage.get(section, []):
                path = next(iter(out)) if isinstance(out, dict) else out
                assert (trained_repo / path).exists(), f"stage {name}: {path} missing"


def test_metrics_have_the_promised_content(trained_repo: Path) -> None:
    metrics = read(trained_repo / "reports/metrics.json")
    spec = contract.spec()
    params = yaml.safe_load((trained_repo / "params.yaml").read_text())
    assert metrics["task"] == spec.task == params.get("task", "classification")
    for who in ("model", "baseline"):
        m = metrics[who]
        for key in GATE_METRICS[spec.task]:
            assert isinstance(m[key], float), (who, key)
        if spec.task == "classification":
            assert set(m["per_class"]) == set(spec.classes)
    # The real model beats the do-nothing baseline on the task's primary metric.
    primary = metrics["primary"]
    assert metrics["model"][primary] > metrics["baseline"][primary]

    slices = read(trained_repo / "reports/slices.json")
    assert list(slices) == params["evaluate"]["slices"]
    for column, per_value in slices.items():
        feature = next(f for f in spec.features if f.name == column)
        if feature.categories:
            assert set(per_value) - {"(missing)"} <= set(feature.categories)
        assert sum(v["n"] for v in per_value.values()) == metrics["test_rows"]

    # Only deterministic numbers in a DVC metric: timings go to the git-ignored timings.json.
    cost = read(trained_repo / "reports/cost.json")
    assert cost == {"model_size_bytes": (trained_repo / "models/model.skops").stat().st_size}
    timings = read(trained_repo / "reports/timings.json")
    assert 0 < timings["predict_1_row_ms"] < 1000
    assert timings["rows_per_second_1000"] > 0
    assert timings["fit_seconds"] > 0 and timings["trained_at"] and timings["evaluated_at"]
    assert len(timings["git_commit"]) == 40


def test_plots_and_metadata(trained_repo: Path) -> None:
    spec = contract.spec()
    plots = trained_repo / "reports/plots"
    test_rows = read(trained_repo / "reports/metrics.json")["test_rows"]
    if spec.task == "classification":
        confusion = pd.read_csv(plots / "confusion.csv")
        assert list(confusion.columns) == ["actual", "predicted"]
        assert len(confusion) == test_rows
        for folder in ("roc", "precision_recall"):
            names = {p.stem for p in (plots / folder).glob("*.csv")}
            assert names == set(spec.classes)
        assert not (plots / "residuals.csv").exists()
    else:
        residuals = pd.read_csv(plots / "residuals.csv")
        assert list(residuals.columns) == ["actual", "predicted", "residual"]
        assert len(residuals) == min(test_rows, 1000)
        assert not (plots / "confusion.csv").exists() and not (plots / "roc").exists()
    importance = pd.read_csv(trained_repo / "reports/plots/importance.csv")
    assert set(importance["feature"]) == set(spec.feature_names)

    meta = read(trained_repo / "models/model_meta.json")
    assert meta["features"] == spec.feature_names
    # Nothing about when, where or from which commit: the same inputs give the same file.
    assert not {"trained_at", "fit_seconds", "git"} & set(meta)
    assert meta["python"].count(".") == 1
    assert meta["libraries"]["scikit-learn"].startswith("1.")
    assert (
        meta["params"]["seed"] == yaml.safe_load((trained_repo / "params.yaml").read_text())["seed"]
    )
    shown = run(["dvc", "metrics", "show", "--json"], trained_repo)
    assert "reports/metrics.json" in shown.stdout


def test_same_inputs_give_identical_predictions_and_metrics(
    trained_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(trained_repo, ws, symlinks=True)
    monkeypatch.chdir(ws)
    test = pd.read_parquet("data/processed/test.parquet")[contract.spec().feature_names]

    def predictions() -> np.ndarray:
        model = artifacts.load_model(Path("models/model.skops"))
        return model.predict_proba(test) if hasattr(model, "classes_") else model.predict(test)

    reference = predictions()
    for _ in range(2):
        assert main(["train"]) == 0
        assert main(["evaluate"]) == 0
        assert np.array_equal(predictions(), reference)
        for name in ("metrics.json", "slices.json"):
            assert (ws / "reports" / name).read_text() == (
                trained_repo / "reports" / name
            ).read_text()
    plots = sorted(p.relative_to(trained_repo) for p in (trained_repo / "reports/plots").rglob("*"))
    assert plots and sorted(p.relative_to(ws) for p in (ws / "reports/plots").rglob("*")) == plots
    for rel in plots:
        if (trained_repo / rel).is_file():
            assert (ws / rel).read_bytes() == (trained_repo / rel).read_bytes(), rel


def test_model_loads_only_with_its_trust_list(trained_repo: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "model.skops"
    corrupt.write_bytes((trained_repo / "models/model.skops").read_bytes()[:200])
    with pytest.raises(Exception, match="cannot be loaded"):
        artifacts.load_model(corrupt)


def test_a_fresh_clone_reproduces_every_tracked_file(trained_repo: Path, tmp_path: Path) -> None:
    """What a new user does: clone, ``dvc repro``, ``git status``: nothing changed.

    The clone has no DVC cache, so every stage really runs again, in another folder, in a new
    process with another hash seed: the model files must come out byte-identical, or dvc.lock
    records new hashes. Machine-dependent numbers live in the git-ignored reports/timings.json.
    """
    origin = tmp_path / "origin"
    shutil.copytree(trained_repo, origin, symlinks=True)
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "pipeline results", "--allow-empty")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert not (clone / "models/model.skops").exists()

    run(["dvc", "repro"], clone, PYTHONHASHSEED="12345")

    assert run(["git", "status", "--porcelain"], clone).stdout == ""
    for rel in ("models/model.skops", "models/baseline.skops", "models/model_meta.json"):
        assert (clone / rel).read_bytes() == (trained_repo / rel).read_bytes(), rel
    assert "up to date" in run(["dvc", "status"], clone).stdout
    ignored = run(["git", "check-ignore", "reports/timings.json"], clone, check=False)
    assert ignored.returncode == 0, "reports/timings.json must be git-ignored"

    # No trained_at in the metadata: the model's age is the commit that recorded it.
    age = run(["mlci", "staleness", "--json"], clone, check=False)
    assert age.returncode in (0, 1), age.stderr
    source = json.loads(age.stdout)["source"]
    assert source.startswith("git: commit "), source
    history = run(["git", "rev-list", "HEAD"], clone).stdout.split()
    assert any(sha.startswith(source.split()[2]) for sha in history), source
