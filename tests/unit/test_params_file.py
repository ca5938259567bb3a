"""params.yaml is checked before anything expands it, and hyperparameters are checked by
scikit-learn's own rules: each refusal is one line naming the file, the line or the key path."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlci import params_file
from mlci.config import EstimatorConfig, check_hyperparameters, load_params
from mlci.errors import UserError
from mlci.estimators import ESTIMATORS, estimator_class
from tests.helpers import EXAMPLE_PARAMS, REPO, tool_env

PARAMS = EXAMPLE_PARAMS.read_text()  # the example project's (tests/helpers.py)
LAUGHS = "lol"


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level lists the previous one `width` times (9**9 values)."""
    lines = [f"l0: &l0 [{', '.join([repr(LAUGHS)] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def refusal(text: str, tmp_path: Path) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        params_file.read_checked(path)
    message = str(err.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: "), message
    return message


def test_the_repository_params_pass() -> None:
    assert params_file.read_checked(EXAMPLE_PARAMS) == PARAMS
    assert params_file.read_checked(REPO / "params.yaml")  # this project's own


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    start = time.perf_counter()
    message = refusal(PARAMS + alias_bomb(), tmp_path)
    assert time.perf_counter() - start < 1.0
    assert "l0: YAML anchor &l0 is not allowed" in message
    assert f"line {PARAMS.count(chr(10)) + 1}:" in message


def test_an_alias_is_named_by_key_path(tmp_path: Path) -> None:
    # An alias with no anchor is a YAML error of its own; either way, no expansion.
    message = refusal(PARAMS.replace("slices: [island, sex]", "slices: [island, *sex]"), tmp_path)
    assert "evaluate.slices[1]: YAML alias *sex is not allowed" in message


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    padding = "# pasted data\n" * (params_file.MAX_BYTES // 14 + 1)
    start = time.perf_counter()
    message = refusal(PARAMS + padding, tmp_path)
    assert time.perf_counter() - start < 1.0
    assert "over the 1,000,000-byte limit" in message


def test_too_many_values_are_refused(tmp_path: Path) -> None:
    values = ", ".join(["0"] * params_file.MAX_NODES)
    message = refusal(PARAMS + f"junk: [{values}]\n", tmp_path)
    assert ": junk[" in message and f"more than {params_file.MAX_NODES} values" in message


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    message = refusal("a: " + "[" * 100 + "]" * 100 + "\n", tmp_path)
    assert f"nested deeper than {params_file.MAX_DEPTH} levels" in message


def test_duplicate_key_is_named(tmp_path: Path) -> None:
    text = PARAMS.replace("      C: 1.0\n", "      C: 1.0\n      C: 5.0\n")
    assert text != PARAMS
    message = refusal(text, tmp_path)
    assert "train.estimator.params: key 'C' appears twice" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ("a: [1, 2\nb: 3\n", "not valid YAML: line 2"),
        ("? [a, b]\n: 1\n", "a key must be a plain name"),
    ],
)
def test_other_shapes_are_refused(text: str, expected: str, tmp_path: Path) -> None:
    assert expected in refusal(text, tmp_path)


def test_not_utf8_and_directory_are_named(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"seed: \xff\n")
    with pytest.raises(UserError, match="not UTF-8"):
        params_file.read_checked(path)
    with pytest.raises(UserError, match="is a directory"):
        params_file.read_checked(tmp_path)


def test_load_params_uses_the_check(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS + alias_bomb())
    with pytest.raises(UserError, match="anchor &l0"):
        load_params(path)


# ---- hyperparameters, by scikit-learn's own validation -----------------------------------


def estimator(params: dict, name: str = "logistic_regression") -> EstimatorConfig:
    return EstimatorConfig(name=name, params=params)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"C": -1},
            "params.yaml: train.estimator.params.C: must be a float in the range (0.0, inf]; "
            "got -1",
        ),
        (
            {"max_iter": 10.5},
            "params.yaml: train.estimator.params.max_iter: must be an int in the range [0, inf);"
            " got 10.5",
        ),
        (
            {"penalty": "l3"},
            "params.yaml: train.estimator.params.penalty: must be a str among",
        ),
        (
            {"max_iterr": 5},
            "params.yaml: train.estimator.params.max_iterr: not a hyperparameter of "
            "logistic_regression (LogisticRegression) (did you mean 'max_iter'?); known: C,",
        ),
    ],
)
def test_bad_hyperparameter_is_named(params: dict, expected: str) -> None:
    with pytest.raises(UserError) as err:
        check_hyperparameters(estimator(params), Path("params.yaml"))
    assert str(err.value).startswith(expected), str(err.value)


def test_good_hyperparameters_pass() -> None:
    check_hyperparameters(estimator({"C": 0.5, "class_weight": "balanced", "max_iter": 200}))
    check_hyperparameters(estimator({"n_estimators": 50, "max_depth": None}, "random_forest"))


@pytest.mark.parametrize("task", list(ESTIMATORS))
def test_every_estimator_has_scikit_learns_validation(task: str) -> None:
    """The check relies on ``_validate_params`` (scikit-learn 1.2+, private): an upgrade that
    drops it fails here, not silently in users' pipelines."""
    for name in ESTIMATORS[task]:
        cls = estimator_class(name, task)
        assert callable(getattr(cls(), "_validate_params", None)), name
        check_hyperparameters(estimator({}, name), task=task)


def test_check_params_command_refuses_a_bomb_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS + alias_bomb())
    cmd = [sys.executable, "-m", "mlci.cli", "--params", str(path), "check-params"]
    result = subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "YAML anchor &l0" in result.stderr
