"""Every kind of broken source data stops the pipeline with a clear message, before training,
leaving the previous model, metrics and validated data untouched."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlci.cli import main
from tests.conftest import run

RAW = Path(__file__).resolve().parents[2] / "data/sample/penguins-raw.csv"
KEPT = [
    "models/model.skops",
    "models/baseline.skops",
    "reports/metrics.json",
    "data/interim/validated.parquet",
    "data/processed/train.parquet",
]


@pytest.fixture
def workspace(trained_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(trained_repo, ws, symlinks=True)
    monkeypatch.chdir(ws)
    return ws


def point_source_at(ws: Path, source: Path) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["data"]["source"] = str(source)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def raw() -> pd.DataFrame:
    return pd.read_csv(RAW)


def missing_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["Body Mass (g)"])


def wrong_type(df: pd.DataFrame) -> pd.DataFrame:
    df["Body Mass (g)"] = df["Body Mass (g)"].astype(object)
    df.loc[5, "Body Mass (g)"] = "heavy"
    return df


def out_of_range(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[10, "Flipper Length (mm)"] = 999
    return df


def unknown_category(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[30, "Island"] = "Atlantis"
    return df


def duplicate_ids(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[20]]], ignore_index=True)


def all_missing(df: pd.DataFrame) -> pd.DataFrame:
    df["Sex"] = None
    return df


def extra_column(df: pd.DataFrame) -> pd.DataFrame:
    df["Favourite Food"] = "krill"
    return df


def header_only(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[:0]


CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "missing column": (missing_column, ["required column 'body_mass_g' is missing"]),
    "wrong type": (wrong_type, ["'body_mass_g'", "not of type float64", "row 5: 'heavy'"]),
    "out of range": (
        out_of_range,
        ["'flipper_length_mm'", "less_than_or_equal_to(250.0)", "in 1 row(s)", "row 10: 999.0"],
    ),
    "unknown category": (unknown_category, ["'island'", "isin", "row 30: 'Atlantis'"]),
    "duplicate ids": (duplicate_ids, ["'sample_id' has duplicate values", "PAL0708-Adelie-21"]),
    "all-missing column": (all_missing, ["column 'sex' is 100% missing", "missing_share_at_most"]),
    "extra column": (extra_column, ["unexpected column 'Favourite Food'"]),
    "header only": (header_only, ["the table has 0 rows", "row_count_between(100, 50000000)"]),
}


def snapshot(ws: Path) -> dict[str, bytes]:
    return {rel: (ws / rel).read_bytes() for rel in KEPT}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_data_is_rejected_and_outputs_kept(
    case: str, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker, expected = CASES[case]
    source = workspace / "broken.csv"
    breaker(raw()).to_csv(source, index=False)
    point_source_at(workspace, source)
    before = snapshot(workspace)

    assert main(["ingest"]) == 0
    capsys.readouterr()
    assert main(["validate"]) == 2
    err = capsys.readouterr().err

    assert err.startswith("error: data contract: FAILED")
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert "Traceback" not in err
    assert snapshot(workspace) == before
    report = yaml.safe_load((workspace / "reports/validation.json").read_text())
    assert report["valid"] is False and report["failures"]
    assert "FAILED" in (workspace / "reports/validation.md").read_text()


def test_empty_file_is_named(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = workspace / "empty.csv"
    source.write_text("")
    point_source_at(workspace, source)
    before = snapshot(workspace)
    assert main(["ingest"]) == 2
    err = capsys.readouterr().err
    assert "empty.csv" in err and "the file is empty" in err
    assert snapshot(workspace) == before


def test_missing_source_file_is_named(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    point_source_at(workspace, workspace / "nowhere.csv")
    assert main(["ingest"]) == 2
    assert "nowhere.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_dvc_repro_stops_before_training(workspace: Path) -> None:
    """The real pipeline: validation fails, DVC stops, the model DVC tracks is unchanged."""
    source = workspace / "broken.csv"
    out_of_range(raw()).to_csv(source, index=False)
    point_source_at(workspace, source)
    before = snapshot(workspace)

    result = run(["dvc", "repro"], workspace, check=False)

    assert result.returncode != 0
    assert "flipper_length_mm" in result.stderr + result.stdout
    assert "Running stage 'train'" not in result.stdout
    assert snapshot(workspace) == before
