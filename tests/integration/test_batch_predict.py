"""`mlci predict` on generated fixture projects after a real `dvc repro`: every row is either
scored (with its ID and the model version) or reported in the bad-rows file by row and column;
the predictions are the model's; the same run on a Dask LocalCluster gives the same files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run
from tests.projects import Project, table

pytestmark = pytest.mark.slow

# What the model itself says for the rows of a file (the project's own contract and model).
REFERENCE = """
import json, sys
import pandas as pd
from mlci import artifacts, contract, paths
spec = contract.spec()
df = pd.read_parquet(sys.argv[1])
model = artifacts.load_model(paths.MODEL)
X = contract.as_contract_types(df)[spec.feature_names]
print(json.dumps(model.predict(X).tolist()))
"""


def predict(project: Project, source: Path | str, out: Path, *extra: str, **env: str):
    result = run(
        ["mlci", "predict", "--input", str(source), "--output", str(out), *extra],
        project.root,
        check=False,
        **env,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result


def with_bad_rows(project: Project, n: int = 500) -> tuple[pd.DataFrame, dict[int, str]]:
    """Fresh rows of the project's population, a few broken on purpose: {row: column}."""
    df = table(project.kind, n, seed=3)[0].drop(columns=[project.target]).astype(object)
    numeric = [c for c in project.features if pd.api.types.is_numeric_dtype(project.data[c])]
    text = [c for c in project.features if c not in numeric]
    broken: dict[int, str] = {}
    if numeric:
        df.loc[7, numeric[0]] = "lots"
        broken[7] = numeric[0]
    if text and project.kind != "mixed_codes":
        df.loc[123, text[0]] = "never-seen-category"
        broken[123] = text[0]
    return df, broken


@pytest.mark.parametrize("kind", ["regression", "mixed_codes", "binary_numeric"])
def test_every_row_is_scored_or_reported(trained_fixture, kind: str, tmp_path: Path) -> None:
    project = trained_fixture(kind)
    df, broken = with_bad_rows(project)
    source = tmp_path / "batch.csv"
    df.to_csv(source, index=False)
    out = tmp_path / "scored.parquet"
    predict(project, source, out, "--chunk-rows", "64")  # 8 chunks: offsets must add up

    scored = pd.read_parquet(out)
    bad = pd.read_csv(tmp_path / "scored.bad_rows.csv")
    assert dict(zip(bad["row"], bad["column"], strict=True)) == broken
    assert len(scored) + len(broken) == len(df)
    assert sorted(scored["row"]) == sorted(set(range(len(df))) - set(broken))
    lock = run(
        ["python", "-c", "from mlci.serving.model_store import default_tag as t; print(t())"],
        project.root,
    )
    assert set(scored["model_version"]) == {lock.stdout.strip().split(":")[1]}
    if project.id_column:
        assert list(scored[project.id_column]) == list(df.loc[scored["row"], project.id_column])
    # the model's own answers for the scored rows
    good = df.loc[scored["row"].to_numpy()].reset_index(drop=True)
    for col in project.features:
        if pd.api.types.is_numeric_dtype(project.data[col]):
            good[col] = pd.to_numeric(good[col])
    good.to_parquet(tmp_path / "good.parquet")
    expected = json.loads(
        run(["python", "-c", REFERENCE, str(tmp_path / "good.parquet")], project.root).stdout
    )
    if project.task == "regression":
        assert np.allclose(scored["prediction"].to_numpy(), expected, rtol=1e-9)
    else:
        assert list(scored["prediction"]) == [str(e) for e in expected]


def test_parquet_input_and_a_missing_column_is_one_line(trained_fixture, tmp_path: Path) -> None:
    project = trained_fixture("regression")
    df = table("regression", 300, seed=4)[0]
    numeric = next(c for c in project.features if pd.api.types.is_numeric_dtype(df[c]))
    df.loc[0, numeric] = np.nan if df[numeric].isna().any() else -1e300
    df.to_parquet(tmp_path / "in.parquet")
    # one row per chunk: the first chunk holds only a bad row, and must not decide the types
    # an fsspec URL (file://: the same code path as s3:// or gs://)
    url = (tmp_path / "in.parquet").as_uri()
    predict(project, url, tmp_path / "out.parquet", "--chunk-rows", "1")
    out = pd.read_parquet(tmp_path / "out.parquet")
    bad = pd.read_csv(tmp_path / "out.bad_rows.csv")
    assert len(out) + len(set(bad["row"])) == 300 and list(out["row"]) == list(
        range(300 - len(out), 300)
    )
    assert out["prediction"].dtype == "float64"
    df.drop(columns=[project.features[0]]).to_parquet(tmp_path / "lacking.parquet")
    result = run(
        ["mlci", "predict", "--input", str(tmp_path / "lacking.parquet"), "--output", "x.pq"],
        project.root,
        check=False,
    )
    assert result.returncode == 2 and project.features[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_on_a_local_dask_cluster_the_files_are_the_same(trained_fixture, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    project = trained_fixture("mixed_codes")
    df, _ = with_bad_rows(project, 2000)
    df.to_csv(tmp_path / "batch.csv", index=False)
    predict(project, tmp_path / "batch.csv", tmp_path / "local.parquet", "--chunk-rows", "300")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as local:
        predict(
            project,
            tmp_path / "batch.csv",
            tmp_path / "dask.parquet",
            "--chunk-rows",
            "300",
            MLCI_DASK_SCHEDULER=local.scheduler_address,
        )
    here, there = (
        pd.read_parquet(tmp_path / "local.parquet"),
        pd.read_parquet(tmp_path / "dask.parquet"),
    )
    pd.testing.assert_frame_equal(
        here.sort_values("row").reset_index(drop=True),
        there.sort_values("row").reset_index(drop=True),
        check_dtype=False,
    )
    assert (tmp_path / "local.bad_rows.csv").read_text() == (
        tmp_path / "dask.bad_rows.csv"
    ).read_text()
