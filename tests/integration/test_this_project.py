"""This repository's own project, whatever it is: the bundled penguins example, or the table a
team adopted with `make adopt`. Generic on purpose: every expectation is read from the project's
contract and params, never written here.

The rest of the suite tests the machinery on fixture projects it builds itself (the penguins
example in tests/fixtures/, generated tables in tests/projects.py). These tests run the
repository as it is, through subprocesses in a copy, so its own `src/project/` is the one used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, copy_repo, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository as it is (committed and uncommitted files), pipeline run."""
    repo = copy_repo(tmp_path_factory.mktemp("this") / "repo")
    run(["dvc", "repro"], repo)
    return repo


@pytest.fixture(scope="module")
def facts(project: Path) -> dict:
    """The project's contract, as its own code reads it (one subprocess for the module)."""
    code = (
        "import json; from mlci import contract; s = contract.spec(); print(json.dumps("
        "{'task': s.task, 'target': s.target, 'features': s.feature_names, "
        "'categorical': s.categorical, 'classes': list(s.classes)}))"
    )
    return json.loads(run(["python", "-c", code], project).stdout)


def test_params_and_contract_agree(project: Path, facts: dict) -> None:
    assert "ok" in run(["mlci", "check-params"], project).stdout
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params.get("task", "classification") == facts["task"]
    assert set(params["evaluate"]["slices"]) <= set(facts["categorical"])


def test_the_pipeline_runs_and_the_model_beats_its_baseline(project: Path, facts: dict) -> None:
    assert "Data and pipelines are up to date" in run(["dvc", "status"], project).stdout
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["task"] == facts["task"]
    primary = metrics["primary"]
    assert metrics["model"][primary] > metrics["baseline"][primary], metrics
    meta = json.loads((project / "models/model_meta.json").read_text())
    assert meta["features"] == facts["features"] and meta["target"] == facts["target"]
    assert set(meta["classes"]) <= set(facts["classes"])  # empty for regression


def test_committed_results_are_reproduced_byte_for_byte(project: Path) -> None:
    """Once results are committed (after the first `make run`), running the pipeline again on
    another machine changes no tracked file: the same inputs give the same data, metrics,
    plots and model facts, byte for byte.

    One allowance: the model files' own hashes in dvc.lock. A fitted model's last bits follow
    the machine's BLAS kernel (a laptop and a CI runner differ), while every result computed
    from it, to the precision recorded, must not. On one machine the model bytes are identical
    too (test_pipeline.py's fresh clone, test_artifacts.py)."""
    if not (REPO / "dvc.lock").is_file():
        pytest.skip("no results committed yet: `make run`, then commit as `make check-stale` says")
    status = run(["git", "status", "--porcelain", "--untracked-files=no"], project).stdout
    changed = [line[3:] for line in status.splitlines()]
    assert changed in ([], ["dvc.lock"]), f"the pipeline changed committed files:\n{status}"
    committed = yaml.safe_load(run(["git", "show", "HEAD:dvc.lock"], project).stdout)
    rerun = yaml.safe_load((project / "dvc.lock").read_text())
    assert without_model_hashes(rerun) == without_model_hashes(committed), (
        "dvc.lock changed beyond the model files' hashes:\n"
        + run(["git", "diff", "dvc.lock"], project).stdout
    )


def without_model_hashes(lock: dict) -> dict:
    """dvc.lock with the md5 of every models/*.skops entry (an out or a dep) blanked."""
    for stage in lock.get("stages", {}).values():
        for entry in stage.get("deps", []) + stage.get("outs", []):
            if entry["path"].startswith("models/") and entry["path"].endswith(".skops"):
                entry["md5"] = "(the machine's rounding)"
    return lock
