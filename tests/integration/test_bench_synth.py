"""The benchmark's synthetic data generator works on any project: it resamples the project's own
source, and what it writes passes the project's contract (ingest + validate, real CLI)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import copy_example, run
from tests.projects import make_project

pytestmark = pytest.mark.slow
OUT = "data/synthetic/synthetic.parquet"


def generate_and_validate(repo: Path, rows: int = 3000) -> pd.DataFrame:
    run(["python", "bench/pipeline_synth.py", "--rows", str(rows), "--out", OUT], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["source"] = OUT
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["mlci", "ingest"], repo)
    assert "passed" in run(["mlci", "validate"], repo).stdout
    return pd.read_parquet(repo / OUT)


def test_synthetic_example_data_passes_the_contract(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    df = generate_and_validate(repo)
    assert len(df) == 3000 and df["sample_id"].is_unique


@pytest.mark.parametrize("kind", ["regression", "mixed_codes"])
def test_synthetic_data_of_any_table_passes_its_contract(kind: str, tmp_path: Path) -> None:
    project = make_project(tmp_path / "repo", kind)
    df = generate_and_validate(project.root)
    assert list(df.columns) == list(project.data.columns)
    if kind == "mixed_codes":  # digit codes stay codes
        assert set(df["store"].dropna()) <= {"001", "002", "010"}
