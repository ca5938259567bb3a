"""`mlci adopt` on generated tables: the contract it infers, the files it renders, and every
refusal (a user mistake, or work it would destroy) before anything is written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlci.adopt import run as adopt
from mlci.adopt.configure import edit_params, render_dvc_yaml
from mlci.adopt.infer import Plan, infer, widen
from mlci.adopt.render import (
    MARKER,
    attribute_names,
    notes,
    render_cleaning,
    render_schema,
    ruff_format,
)
from mlci.config import parse_params
from mlci.errors import UserError
from tests.helpers import REPO, git

N = 240


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def tables(rng: np.random.Generator) -> dict[str, tuple[pd.DataFrame, str, str | None]]:
    x1, x2, x3 = rng.normal(size=(3, N))
    binary = pd.DataFrame({"radius": 10 + 2 * x1, "texture": 20 + 4 * x2, "smooth": 0.1 * x3})
    binary["malignant"] = (x1 + 0.5 * x2 > 0).astype(int)  # 0/1: numeric, few values
    three = pd.DataFrame({"alcohol": 13 + x1, "hue": 1 + 0.2 * x2, "count": rng.integers(0, 40, N)})
    three["cultivar"] = np.select([x1 < -0.5, x1 < 0.5], [1, 2], 3)
    regression = pd.DataFrame({"age": 40 + 10 * x1, "bmi": 25 + 4 * x2})
    regression["progression"] = 150 + 30 * x1 + 20 * x2 + rng.normal(size=N)
    mixed = pd.DataFrame(
        {
            "order_id": [f"0{i:06d}" for i in range(N)],
            "store": rng.choice(["001", "002", "010"], size=N),
            "postcode": [f"{v:05d}" for v in rng.integers(0, 400, size=N)],
            "channel": rng.choice(["web", "shop"], size=N),
            "Basket Value (EUR)": np.round(30 + 10 * x1, 2),
            "class": rng.choice(["a", "b"], size=N),
        }
    )
    mixed.loc[rng.choice(N, size=12, replace=False), "channel"] = None
    mixed.loc[rng.choice(N, size=12, replace=False), "Basket Value (EUR)"] = np.nan
    mixed["returned"] = np.where(x1 > 0.5, "yes", "no")
    return {
        "binary": (binary, "malignant", None),
        "three": (three, "cultivar", None),
        "regression": (regression, "progression", None),
        "mixed": (mixed, "returned", "order_id"),
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str, str | None]]:
    folder = tmp_path_factory.mktemp("tables")
    out = {}
    for name, (df, target, id_column) in tables(np.random.default_rng(7)).items():
        out[name] = (_write(df, folder / f"{name}.csv"), target, id_column)
    df, target, id_column = tables(np.random.default_rng(7))["mixed"]
    out["mixed_parquet"] = (_write(df, folder / "mixed.parquet"), target, id_column)
    return out


def rendered(plan: Plan) -> tuple[str, str]:
    schema = ruff_format(render_schema(plan, "data/raw/t.csv"), REPO, "src/project/schema.py")
    cleaning = ruff_format(render_cleaning(plan, "data/raw/t.csv"), REPO, "src/project/cleaning.py")
    return schema, cleaning


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("binary", "classification"),
        ("three", "classification"),
        ("regression", "regression"),
        ("mixed", "classification"),
        ("mixed_parquet", "classification"),
    ],
)
def test_rendered_contract_validates_its_own_table(generated: dict, name: str, task: str) -> None:
    path, target, id_column = generated[name]
    plan = infer(path, target, id_column)
    assert plan.task == task
    schema, cleaning = rendered(plan)
    adopt.self_check(plan, schema, cleaning)  # raises if the table fails its own contract
    assert MARKER in schema and "strict = True" in schema and "coerce = True" in schema
    compile(schema, "schema.py", "exec")
    df = pd.read_csv(path, dtype=str) if path.suffix == ".csv" else pd.read_parquet(path)
    for col in plan.columns:
        if col.bounds is not None:  # bounds contain every observed value
            values = pd.to_numeric(df[col.name]).dropna()
            assert col.bounds[0] <= values.min() and values.max() <= col.bounds[1], col.name
            assert col.dtype in ("int", "float")
        assert col.nullable == (col.role == "feature" and bool(df[col.name].isna().any()))


def test_classification_targets_list_their_classes(generated: dict) -> None:
    binary = infer(*generated["binary"])
    assert binary.column("malignant").categories == ["0", "1"]
    assert "whole-number" in binary.task_reason
    three = infer(*generated["three"])
    assert three.column("cultivar").categories == ["1", "2", "3"]
    assert three.column("count").dtype == "int"  # a whole-number feature stays numeric
    regression = infer(*generated["regression"])
    assert regression.column("progression").categories is None
    assert regression.column("progression").dtype == "float"


@pytest.mark.parametrize("name", ["mixed", "mixed_parquet"])
def test_digit_codes_are_text_and_isin_only_for_low_cardinality(generated: dict, name: str) -> None:
    plan = infer(*generated[name])
    store, postcode, channel = (plan.column(c) for c in ("store", "postcode", "channel"))
    assert (store.dtype, store.categories) == ("str", ["001", "002", "010"])
    assert store.digit_coded and not channel.digit_coded
    assert postcode.dtype == "str" and postcode.categories is None  # ~200 values: open set
    assert channel.categories == ["shop", "web"] and channel.nullable
    assert plan.column("order_id").role == "id"
    schema, _ = rendered(plan)
    assert 'STORE_VALUES = ["001", "002", "010"]' in schema
    assert "unique=True" in schema
    assert "postcode: Series[str] = pa.Field(nullable=False)" in schema


def test_column_names_that_are_not_python_names_get_an_alias(generated: dict) -> None:
    names = ["Basket Value (EUR)", "class", "sepalLength", "2nd", "validate", "ok_name", "a b"]
    attrs = attribute_names(names)
    assert attrs == {
        "Basket Value (EUR)": "basket_value_eur",
        "class": "class_",
        "sepalLength": "sepal_length",
        "2nd": "col_2nd",
        "validate": "validate_",
        "ok_name": "ok_name",
        "a b": "a_b",
    }
    schema, _ = rendered(infer(*generated["mixed"]))
    assert "basket_value_eur: Series[float]" in schema and 'alias="Basket Value (EUR)"' in schema
    assert 'class_: Series[str] = pa.Field(alias="class", isin=CLASS_VALUES' in schema


@pytest.mark.skipif(not (Path(sys.executable).parent / "ruff").exists(), reason="needs ruff")
def test_rendered_files_pass_the_projects_lint(generated: dict) -> None:
    ruff = str(Path(sys.executable).parent / "ruff")
    for name in ("mixed", "regression"):
        plan = infer(*generated[name])
        for text, filename in zip(rendered(plan), ("schema.py", "cleaning.py"), strict=True):
            stdin = f"src/project/{filename}"
            for cmd in (["check", "--stdin-filename", stdin, "-"], ["format", "--check", "-"]):
                done = subprocess.run(
                    [ruff, *cmd], input=text, cwd=REPO, capture_output=True, text=True
                )
                assert done.returncode == 0, f"{name} {filename}: {done.stdout}{done.stderr}"


def test_missing_targets_are_left_to_ingest_not_to_the_rendered_cleaning(tmp_path: Path) -> None:
    """Drift batches go through clean_raw too: a batch with late labels keeps its rows."""
    df, target, _ = tables(np.random.default_rng(1))["regression"]
    df.loc[[3, 9], target] = np.nan
    df["empty"] = np.nan
    plan = infer(_write(df, tmp_path / "t.csv"), target)
    assert plan.target_missing == 2 and plan.rows == N - 2 and plan.empty == ["empty"]
    schema, cleaning = rendered(plan)
    assert "rows_without_target_dropped" not in cleaning and '"empty",' in cleaning
    adopt.self_check(plan, schema, cleaning)  # as ingest does: the unlabelled rows dropped
    assert any("the ingest stage drops them" in n for n in notes(plan))


def test_dates_constants_and_gappy_columns_are_pointed_out(tmp_path: Path) -> None:
    df, target, _ = tables(np.random.default_rng(4))["regression"]
    df["visit"] = pd.date_range("2024-01-01", periods=N, freq="D").strftime("%Y-%m-%d")
    df["site"] = "A"
    df["remark"] = np.where(np.arange(N) % 3 == 0, "late", None)  # missing in 2 of 3 rows
    plan = infer(_write(df, tmp_path / "t.csv"), target)
    assert plan.column("visit").dates and plan.column("visit").categories is None
    assert plan.column("site").categories == ["A"]
    found = "\n".join(notes(plan))
    assert "'visit': dates" in found and "'site': the same value in every row" in found
    settings: list[str] = []
    params = yaml.safe_load(edit_params((REPO / "params.yaml").read_text(), plan, "t", settings))
    assert params["validate"]["max_missing_share"] == 0.72  # 'remark': 67% missing, + 0.05
    assert any("'remark' 67%" in line for line in settings)
    # The noise-aware gate: a drop within the test set's sampling noise does not fail a PR,
    # even when the template's own params.yaml said otherwise.
    assert params["gate"]["rule"] == "interval"
    text = (REPO / "params.yaml").read_text().replace("rule: interval", "rule: point")
    assert yaml.safe_load(edit_params(text, plan, "t", []))["gate"]["rule"] == "interval"
    adopt.self_check(plan, *rendered(plan))


def test_widen_keeps_nonnegative_data_nonnegative() -> None:
    # Half the span on each side, rounded outwards; never negative data: floor at 0.
    assert widen(13.1, 17.9, whole=False) == (10.0, 21.0)
    assert widen(3.1, 7.9, whole=False) == (0.0, 11.0)
    assert widen(0.5, 40.0, whole=False)[0] == 0.0
    assert widen(-5.0, 5.0, whole=True) == (-10.0, 10.0)
    assert widen(7.0, 7.0, whole=True) == (3.0, 11.0)  # a constant column still gets a range


# ---- user mistakes: a clear message, nothing written ------------------------------------------


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        (None, {"target": "price"}, "--target 'price': no such column"),
        (None, {"target": "returned", "id_column": "orderid"}, "did you mean 'order_id'"),
        (None, {"target": "store", "task": "regression"}, "is not numeric"),
        (None, {"target": "returned", "id_column": "store"}, "occur more than once"),
        (lambda d: d.assign(returned="yes"), {"target": "returned"}, "one class only"),
        (lambda d: d.assign(returned=["a", *["b"] * (N - 1)]), {"target": "returned"}, "'a' (1"),
        (lambda d: d.head(10), {"target": "returned"}, "needs at least 20"),
    ],
)
def test_user_mistakes_are_named(tmp_path: Path, change, args: dict, message: str) -> None:
    df, _, _ = tables(np.random.default_rng(2))["mixed"]
    path = _write(change(df) if change else df, tmp_path / "t.csv")
    with pytest.raises(UserError, match=re.escape(message)):
        infer(path, **args)


def test_a_missing_file_or_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        infer(tmp_path / "nope.csv", "y")
    with pytest.raises(UserError, match="not a file"):
        infer(tmp_path, "y")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="empty"):
        infer(tmp_path / "empty.csv", "y")


# ---- params.yaml and dvc.yaml ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["regression", "mixed"])
def test_params_keep_their_comments_and_parse(generated: dict, name: str) -> None:
    plan = infer(*generated[name])
    text = (REPO / "params.yaml").read_text()
    settings: list[str] = []
    out = edit_params(text, plan, "data/raw/t.csv", settings)
    params = parse_params(yaml.safe_load(out))
    assert params.task == plan.task and params.data.source == "data/raw/t.csv"
    assert params.gate.minimum == {} and params.gate.maximum == {}
    assert params.train.baseline == ("mean" if plan.task == "regression" else "prior")
    assert params.validate_.min_rows <= plan.rows
    for comment in ("# The one knob file.", "# Drift monitoring", "max_model_age_days: 90"):
        assert comment in out  # every other setting and comment stays
    # The comments beside the estimator and the baseline name this task's choices.
    line = {
        k: next(x for x in out.splitlines() if x.strip().startswith(f"{k}:"))
        for k in ("name", "baseline", "params")
    }
    # The search is on: the estimator's own params say they are not what train fits.
    assert params.search is not None and "only when `search:` is empty" in line["params"]
    if plan.task == "regression":
        assert "ridge | random_forest" in line["name"] and "logistic" not in line["name"]
        assert "DummyRegressor" in line["baseline"] and "mean | median" in line["baseline"]
    else:
        assert "logistic_regression |" in line["name"] and "ridge" not in line["name"]
        assert "DummyClassifier" in line["baseline"] and "prior |" in line["baseline"]
    if plan.task == "regression":
        assert params.gate.max_regression == {"r2": 0.01}
        assert params.train.estimator.name == "ridge"
    else:
        assert params.evaluate.slices == ["store", "channel"]
        assert 0 < params.validate_.min_class_share <= 0.1


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_dvc_yaml_gets_the_tasks_plots_and_nothing_else(task: str) -> None:
    text = (REPO / "dvc.yaml").read_text()
    out = render_dvc_yaml(text, task)
    before, after = yaml.safe_load(text), yaml.safe_load(out)
    assert after["stages"] == before["stages"]
    plotted = str(after["plots"])
    assert ("residuals.csv" in plotted) == (task == "regression")
    assert ("confusion.csv" in plotted) == (task == "classification")
    assert task in after["artifacts"]["classifier"]["labels"]
    assert out.split("plots:")[0] == text.split("plots:")[0]  # comments before it intact
    assert render_dvc_yaml(render_dvc_yaml(out, "regression"), task) == out


# ---- the whole command on a small repository: what it writes, what it refuses -----------------


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src/project").mkdir(parents=True)
    for rel in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / rel, root / rel)
    # A hand-written contract (this repository's own may already be an adopted one).
    (root / "src/project/schema.py").write_text('TARGET = "species"\n')
    (root / "src/project/cleaning.py").write_text("")
    for rel in ("reports/metrics.json", "models/model.skops", "data/interim/ingested.parquet"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}")
    (root / "data/interim/.gitignore").write_text("/ingested.parquet\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def test_adopt_writes_the_project_and_removes_old_results(small_repo: Path, generated) -> None:
    path, target, _ = generated["regression"]
    out = adopt.adopt(path, target, root=small_repo)
    assert out.source == "data/raw/regression.csv" and out.plan.task == "regression"
    assert (small_repo / out.source).read_bytes() == path.read_bytes()
    assert MARKER in (small_repo / "src/project/schema.py").read_text()
    assert "def clean_raw" in (small_repo / "src/project/cleaning.py").read_text()
    assert "residuals.csv" in (small_repo / "dvc.yaml").read_text()
    for gone in ("reports/metrics.json", "models/model.skops", "data/interim/ingested.parquet"):
        assert not (small_repo / gone).exists(), gone
    assert (small_repo / "data/interim/.gitignore").exists()
    text = "\n".join(adopt.summary(out))
    assert "review src/project/schema.py" in text and "make run" in text and "git add" in text


def test_adopt_refuses_to_destroy_work(small_repo: Path, generated) -> None:
    path, target, _ = generated["regression"]
    params = small_repo / "params.yaml"
    params.write_text(params.read_text() + "\n# my edit\n")
    with pytest.raises(UserError, match="uncommitted changes"):
        adopt.adopt(path, target, root=small_repo)
    git(small_repo, "commit", "-qam", "edit")

    adopt.adopt(path, target, root=small_repo)
    git(small_repo, "add", "-A")
    git(small_repo, "commit", "-qm", "adopted")
    schema = (small_repo / "src/project/schema.py").read_text()
    with pytest.raises(UserError, match="already generated by `mlci adopt`"):
        adopt.adopt(path, target, root=small_repo)
    assert (small_repo / "src/project/schema.py").read_text() == schema

    other = path.parent / "other" / path.name  # same name, other content: data is never replaced
    other.parent.mkdir(exist_ok=True)
    other.write_text(path.read_text().replace("age", "years"))
    with pytest.raises(UserError, match="never overwrites data"):
        adopt.adopt(other, target, root=small_repo, force=True)
    assert (small_repo / "data/raw/regression.csv").read_bytes() == path.read_bytes()
    adopt.adopt(path, target, root=small_repo, force=True)  # --force: adopt again


def test_a_table_inside_the_repository_is_used_in_place(small_repo: Path) -> None:
    df, target, id_column = tables(np.random.default_rng(3))["mixed"]
    (small_repo / "data").mkdir(exist_ok=True)
    path = _write(df, small_repo / "data" / "orders.csv")
    out = adopt.adopt(path, target, id_column, root=small_repo)
    assert out.source == "data/orders.csv" and not out.copied
    assert not (small_repo / "data/raw").exists()
