"""Every kind of broken source data stops the pipeline with a clear message, before training,
leaving the previous model, metrics and validated data untouched.

Machinery tests: they run on a generated fixture project (tests/projects.py, the "mixed_codes"
table: digit-coded store codes, an open postcode, an ID, missing values), not on the bundled
example, so they hold for any adopted project. Commands run as subprocesses in the copy, so the
copy's own contract is the one checked.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import run
from tests.projects import Project

KIND = "mixed_codes"
KEPT = [
    "models/model.skops",
    "models/baseline.skops",
    "reports/metrics.json",
    "data/interim/validated.parquet",
    "data/processed/train.parquet",
]


@pytest.fixture
def workspace(trained_fixture: Callable[[str], Project], tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(trained_fixture(KIND).root, ws, symlinks=True)
    return ws


def point_source_at(ws: Path, source: Path) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["data"]["source"] = str(source)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def table(ws: Path) -> pd.DataFrame:
    # As text, as a user's file is: the codes keep their leading zeros.
    return pd.read_csv(ws / "data/fixture.csv", dtype=str)


def missing_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["basket"])


def wrong_type(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[5, "basket"] = "heavy"
    return df


def out_of_range(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[10, "basket"] = "99999"
    return df


def unknown_category(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[30, "store"] = "999"
    return df


def code_without_zeros(df: pd.DataFrame) -> pd.DataFrame:
    # "10" is not the store "010": a code read as a number upstream is caught, not matched.
    df.loc[31, "store"] = "10"
    return df


def duplicate_ids(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[20]]], ignore_index=True)


def all_missing(df: pd.DataFrame) -> pd.DataFrame:
    df["channel"] = None
    return df


def extra_column(df: pd.DataFrame) -> pd.DataFrame:
    df["Favourite Food"] = "krill"
    return df


def header_only(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[:0]


CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "missing column": (missing_column, ["required column 'basket' is missing"]),
    "wrong type": (wrong_type, ["'basket'", "not of type float64", "row 5: 'heavy'"]),
    "out of range": (
        out_of_range,
        ["'basket'", "less_than_or_equal_to(", "in 1 row(s)", "row 10: 99999.0"],
    ),
    "unknown category": (unknown_category, ["'store'", "isin", "row 30: '999'"]),
    "code without its zeros": (code_without_zeros, ["'store'", "isin", "row 31: '10'"]),
    "duplicate ids": (duplicate_ids, ["'order_id' has duplicate values", "0000020"]),
    "all-missing column": (
        all_missing,
        ["column 'channel' is 100% missing", "missing_share_at_most"],
    ),
    "extra column": (extra_column, ["unexpected column 'Favourite Food'"]),
    "header only": (header_only, ["the table has 0 rows", "row_count_between(50, 50000000)"]),
}


def snapshot(ws: Path) -> dict[str, bytes]:
    return {rel: (ws / rel).read_bytes() for rel in KEPT}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_data_is_rejected_and_outputs_kept(case: str, workspace: Path) -> None:
    breaker, expected = CASES[case]
    source = workspace / "broken.csv"
    breaker(table(workspace)).to_csv(source, index=False)
    point_source_at(workspace, source)
    before = snapshot(workspace)

    run(["mlci", "ingest"], workspace)
    result = run(["mlci", "validate"], workspace, check=False)
    err = result.stderr

    assert result.returncode == 2, err
    assert err.startswith("error: data contract: FAILED"), err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert "Traceback" not in err
    assert snapshot(workspace) == before
    report = yaml.safe_load((workspace / "reports/validation.json").read_text())
    assert report["valid"] is False and report["failures"]
    assert "FAILED" in (workspace / "reports/validation.md").read_text()


def test_digit_codes_keep_their_zeros(workspace: Path) -> None:
    """The fixture's own table passes its contract: '010' stays '010' through ingest."""
    run(["mlci", "ingest"], workspace)
    run(["mlci", "validate"], workspace)
    validated = pd.read_parquet(workspace / "data/interim/validated.parquet")
    assert set(validated["store"]) == {"001", "002", "010"}
    assert validated["order_id"].str.startswith("0").all()


def test_empty_file_is_named(workspace: Path) -> None:
    source = workspace / "empty.csv"
    source.write_text("")
    point_source_at(workspace, source)
    before = snapshot(workspace)
    result = run(["mlci", "ingest"], workspace, check=False)
    assert result.returncode == 2
    assert "empty.csv" in result.stderr and "the file is empty" in result.stderr
    assert snapshot(workspace) == before


def test_missing_source_file_is_named(workspace: Path) -> None:
    point_source_at(workspace, workspace / "nowhere.csv")
    result = run(["mlci", "ingest"], workspace, check=False)
    assert result.returncode == 2
    assert "nowhere.csv" in result.stderr


@pytest.mark.slow
def test_dvc_repro_stops_before_training(workspace: Path) -> None:
    """The real pipeline: validation fails, DVC stops, the model DVC tracks is unchanged."""
    source = workspace / "broken.csv"
    out_of_range(table(workspace)).to_csv(source, index=False)
    point_source_at(workspace, source)
    before = snapshot(workspace)

    result = run(["dvc", "repro"], workspace, check=False)

    assert result.returncode != 0
    assert "basket" in result.stderr + result.stdout
    assert "Running stage 'train'" not in result.stdout
    assert snapshot(workspace) == before
