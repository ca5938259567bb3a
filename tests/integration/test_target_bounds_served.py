"""A regression model never answers outside its target's contract bounds where its answers
leave the project: a price table (target ``ge=0``) whose linear model extrapolates below zero
for small items. Real ``dvc repro`` (evaluate counts the clipped test predictions in
metrics.json) and a real ``bentoml serve`` (the answer sits at the bound; /metrics counts it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import git, project_env, run
from tests.integration.test_server import http, running
from tests.projects import make_project

pytestmark = pytest.mark.slow

SCHEMA = '''"""Prices: never below zero."""

import pandera.pandas as pa
from pandera.typing import Series

TARGET = "price"
ID_COLUMN = None


class Contract(pa.DataFrameModel):
    size: Series[float] = pa.Field(ge=0.0, le=10.0, nullable=False)
    price: Series[float] = pa.Field(ge=0.0, nullable=False)

    class Config:
        strict = True
        coerce = True
'''


@pytest.fixture(scope="module")
def prices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("prices") / "repo", "regression").root
    size = np.random.default_rng(0).uniform(0, 10, 600)
    pd.DataFrame({"size": size, "price": size**2}).to_csv(root / "data/fixture.csv", index=False)
    (root / "src/project/schema.py").write_text(SCHEMA)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["evaluate"]["slices"] = []
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "prices")
    repro = run(["dvc", "repro"], root)
    assert "fell outside the target's contract bounds" in repro.stdout + repro.stderr
    return root


def test_evaluate_scores_and_counts_clipped_predictions(prices: Path) -> None:
    metrics = json.loads((prices / "reports/metrics.json").read_text())
    test_rows = metrics["test_rows"]
    assert 0 < metrics["clipped_predictions"] < test_rows
    residuals = pd.read_csv(prices / "reports/plots/residuals.csv")
    assert residuals["predicted"].min() == 0.0  # scored as served: never below the bound


def test_the_service_answers_at_the_bound_and_counts_it(prices: Path, tmp_path: Path) -> None:
    env = {**project_env(prices), "BENTOML_HOME": str(tmp_path / "bentoml")}
    run(["mlci", "register-model"], prices, **env)
    with running("mlci.serving.service:Classifier", prices, tmp_path / "serve.log", **env) as url:
        status, body = http("POST", f"{url}/predict", {"records": [{"size": 0.1}, {"size": 5}]})
        assert status == 200, body
        answer = json.loads(body)
        values = [p["prediction"] for p in answer["predictions"]]
        assert values[0] == 0.0 and values[1] > 0, body
        metrics = http("GET", f"{url}/metrics")[1]
    counted = re.findall(r"^mlci_predictions_clipped_total\{[^}]*\} (\S+)$", metrics, re.M)
    assert [float(c) for c in counted] == [1.0], metrics[-2000:]
