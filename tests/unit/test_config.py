"""params.yaml is validated before any stage runs: unknown keys, wrong types, bad ranges."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlci import contract
from mlci.cli import main
from mlci.config import load_params, parse_params
from mlci.errors import UserError
from tests.helpers import EXAMPLE_PARAMS

REPO = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load(EXAMPLE_PARAMS.read_text())  # the example project's (tests/helpers.py)


def with_change(path: str, value: object) -> dict:
    raw = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def test_repository_params_load() -> None:
    params = load_params(EXAMPLE_PARAMS)
    assert params.seed == BASE["seed"]
    assert params.train.estimator.name == BASE["train"]["estimator"]["name"]
    assert params.validate_.min_rows == BASE["validate"]["min_rows"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("split.test_size", 1.5, "split.test_size"),
        ("split.test_size", "0.2", "split.test_size"),
        ("seed", -1, "seed"),
        ("seed", True, "seed"),
        ("validate.min_class_share", 2, "validate.min_class_share"),
        ("train.estimator.name", "xgboost", "train.estimator.name"),
        ("data.format", "excel", "data.format"),
        ("evaluate.permutation_repeats", 0, "evaluate.permutation_repeats"),
        ("gate.rule", "bootstrap", "gate.rule"),
        ("gate.bootstrap_samples", 10, "gate.bootstrap_samples"),
    ],
)
def test_wrong_type_or_range_is_named(path: str, value: object, expected: str) -> None:
    with pytest.raises(UserError) as err:
        parse_params(with_change(path, value))
    assert expected in str(err.value)
    assert repr(value) in str(err.value)


def test_the_example_judges_regressions_on_the_interval() -> None:
    assert parse_params(BASE).gate.rule == "interval"
    raw = with_change("gate.rule", "point")
    assert parse_params(raw).gate.rule == "point"
    del raw["gate"]["rule"]
    assert parse_params(raw).gate.rule == "point"  # without the key: today's rule


def test_unknown_key_is_rejected() -> None:
    raw = with_change("split.tset_size", 0.3)
    with pytest.raises(UserError, match=r"split\.tset_size: unknown key"):
        parse_params(raw)


def test_missing_key_is_rejected() -> None:
    raw = copy.deepcopy(BASE)
    del raw["split"]
    with pytest.raises(UserError, match=r"split: required key is missing"):
        parse_params(raw)


def test_unknown_hyperparameter_names_the_estimator(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    raw = with_change("train.estimator.params", {"max_iterations": 5})
    path.write_text(yaml.safe_dump(raw))
    name = BASE["train"]["estimator"]["name"]
    with pytest.raises(UserError, match=rf"max_iterations.*{name}"):
        load_params(path, estimator=True)
    assert main(["--params", str(path), "check-params"]) == 2


def test_loading_params_does_not_import_scikit_learn() -> None:
    """Stages that never train must not pay scikit-learn's import time."""
    code = (
        "import sys; from mlci.config import load_params; load_params(); "
        "sys.exit(1 if {'sklearn', 'skops'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_random_state_must_come_from_seed() -> None:
    raw = with_change("train.estimator.params", {"random_state": 1})
    with pytest.raises(UserError, match="seed"):
        parse_params(raw)


def test_min_rows_above_max_rows() -> None:
    raw = with_change("validate.min_rows", 10**9)
    with pytest.raises(UserError, match="min_rows"):
        parse_params(raw)


def test_slice_must_be_a_categorical_feature(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    not_categorical = next(iter(contract.spec().numeric), contract.spec().target)
    path.write_text(yaml.safe_dump(with_change("evaluate.slices", [not_categorical])))
    with pytest.raises(UserError, match=rf"evaluate\.slices: '{not_categorical}'"):
        load_params(path)


def test_cli_reports_bad_params_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_change("split.test_size", 0)))
    assert main(["--params", str(path), "check-params"]) == 2
    err = capsys.readouterr().err
    assert "split.test_size" in err
    assert "Traceback" not in err


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [1\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(UserError, match="not found"):
        load_params(tmp_path / "absent.yaml")


# ---- the task: classification or regression ---------------------------------------------------

REGRESSION = {
    **copy.deepcopy(BASE),
    "task": "regression",
    "train": {"estimator": {"name": "ridge", "params": {"alpha": 1.0}}, "baseline": "median"},
    "gate": {"maximum": {"rmse": 10.0}, "max_regression": {"r2": 0.01}},
}


def test_regression_params_parse() -> None:
    params = parse_params(REGRESSION)
    assert params.task == "regression" and params.train.baseline_for("regression") == "median"
    assert (
        parse_params({**REGRESSION, "train": {"estimator": {"name": "ridge"}}}).train.baseline_for(
            "regression"
        )
        == "mean"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"train": {"estimator": {"name": "logistic_regression"}}}, "not a regression estimator"),
        (
            {"train": {"estimator": {"name": "ridge"}, "baseline": "prior"}},
            "not a regression baseline",
        ),
        ({"gate": {"minimum": {"accuracy": 0.9}}}, "['accuracy'] are not regression metrics"),
        ({"gate": {"minimum": {"rmse": 1.0}}}, "lower is better"),
        ({"task": "ranking"}, "task"),
    ],
)
def test_settings_must_fit_the_task(change: dict, expected: str) -> None:
    with pytest.raises(UserError) as err:
        parse_params({**REGRESSION, **change})
    assert expected in str(err.value)


def test_task_must_match_the_contract(tmp_path: Path) -> None:
    other = "regression" if contract.spec().task == "classification" else "classification"
    raw = REGRESSION if other == "regression" else {**copy.deepcopy(BASE), "task": other}
    if other == "classification":
        raw["train"] = {"estimator": {"name": "logistic_regression"}}
        raw["gate"] = {}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**raw, "evaluate": {"slices": []}}))
    with pytest.raises(UserError, match=rf"task: '{other}', but the data contract"):
        load_params(path)
