"""The one config object: ``params.yaml`` loaded, typed and validated before any work starts.

An unknown key, a wrong type or an out-of-range value is a :class:`~mlci.errors.UserError` that
names the key path, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlci import params_file
from mlci.errors import UserError
from mlci.estimators import ALL_NAMES, BASELINES, ESTIMATORS
from mlci.tasks import GATE_METRICS, LOWER_IS_BETTER, MetricName, Task

PARAMS_FILE = Path(os.environ.get("MLCI_PARAMS", "params.yaml"))

Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    # extra="forbid": a misspelt key is an error, not an ignored setting.
    # strict=True: "0.2" (a string) is not a float and `true` is not an int.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataConfig(_Strict):
    source: str = Field(min_length=1, description="Local path, DVC-tracked path or fsspec URL.")
    format: Literal["auto", "csv", "parquet"] = "auto"


class ValidateConfig(_Strict):
    min_rows: Annotated[int, Field(ge=1)]
    max_rows: Annotated[int, Field(ge=1)]
    min_class_share: Share = 0.0  # classification only
    max_missing_share: Share

    @model_validator(mode="after")
    def _rows_ordered(self) -> ValidateConfig:
        if self.min_rows > self.max_rows:
            raise ValueError(
                f"min_rows ({self.min_rows}) is larger than max_rows ({self.max_rows})"
            )
        return self


class SplitConfig(_Strict):
    test_size: Annotated[float, Field(gt=0.0, lt=1.0)]


# Which `train.estimator.name` and `train.baseline` each task accepts: mlci.estimators, the one
# registry (which also builds them).


class EstimatorConfig(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in ALL_NAMES:
            raise ValueError(f"unknown estimator; choose from {list(ALL_NAMES)}")
        return name

    @model_validator(mode="after")
    def _seed_from_top_level(self) -> EstimatorConfig:
        if "random_state" in self.params:
            raise ValueError("set the top-level `seed` instead of params.random_state")
        return self


class TrainConfig(_Strict):
    estimator: EstimatorConfig
    # The Dummy{Classifier,Regressor} strategy the model must beat; None: prior / mean.
    baseline: str | None = None

    def baseline_for(self, task: str) -> str:
        return self.baseline or BASELINES[task][0]


class EvaluateConfig(_Strict):
    slices: list[str] = Field(default_factory=list)
    permutation_repeats: Annotated[int, Field(ge=1, le=100)] = 10
    # Permutation importance on at most this many test rows (a seeded sample per repeat): its
    # cost grows with rows x features x repeats, while its noise barely shrinks past this.
    importance_max_rows: Annotated[int, Field(ge=100)] = 50_000
    latency_repeats: Annotated[int, Field(ge=1, le=1000)] = 50


# The metric names, their tasks and directions live in mlci.tasks (one definition for the gate,
# the report, slices, the search and the model card); re-exported here for the settings' types.
GateMetric = MetricName


class GateConfig(_Strict):
    """Thresholds for the merge gate (``mlci.review.gate``), on the model's test-set metrics."""

    minimum: dict[GateMetric, float] = Field(default_factory=dict)
    maximum: dict[GateMetric, float] = Field(default_factory=dict)
    max_regression: dict[GateMetric, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    must_beat_baseline: list[GateMetric] = Field(default_factory=list)
    # How much better than the baseline, per metric of must_beat_baseline (default 0: better).
    baseline_margin: dict[GateMetric, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    # How `max_regression` is judged: "point" compares the two test-set numbers; "interval"
    # fails only when the worsening exceeds the allowed amount with 95% confidence (a paired
    # bootstrap over the test rows, seeded by `seed`), so one flipped row on a small test set
    # does not fail a pull request.
    rule: Literal["point", "interval"] = "point"
    bootstrap_samples: Annotated[int, Field(ge=200, le=100_000)] = 1000

    @model_validator(mode="after")
    def _directions(self) -> GateConfig:
        wrong_min = sorted(set(self.minimum) & LOWER_IS_BETTER)
        wrong_max = sorted(set(self.maximum) - LOWER_IS_BETTER)
        if wrong_min:
            raise ValueError(f"{wrong_min}: lower is better, so set a `maximum`, not a `minimum`")
        if wrong_max:
            raise ValueError(f"{wrong_max}: higher is better, so set a `minimum`, not a `maximum`")
        unused = sorted(set(self.baseline_margin) - set(self.must_beat_baseline))
        if unused:
            raise ValueError(f"baseline_margin: {unused} not in must_beat_baseline")
        return self

    def metrics(self) -> set[str]:
        return {
            *self.minimum,
            *self.maximum,
            *self.max_regression,
            *self.must_beat_baseline,
            *self.baseline_margin,
        }


class SearchConfig(_Strict):
    """The tune stage's hyperparameter search (absent or empty: train fits train.estimator).

    ``estimators``: candidate name -> hyperparameter -> a value (fixed), a list (choices) or a
    one-key mapping ``{uniform | log_uniform | int_uniform: [low, high]}`` (random and halving
    only). Names and values are checked by mlci.search_space with scikit-learn's own rules."""

    method: Literal["grid", "random", "halving"] = "random"
    candidates: Annotated[int, Field(ge=1, le=10000)] = 20  # random, halving: how many sampled
    folds: Annotated[int, Field(ge=2, le=50)] = 5
    metric: GateMetric | None = None  # default: the task's primary metric (mlci.metrics)
    estimators: dict[str, dict[str, Any]] = Field(min_length=1)


class MonitorConfig(_Strict):
    """Thresholds for drift monitoring and model staleness (see ``mlci.monitoring.drift``)."""

    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    psi_bins: Annotated[int, Field(ge=2, le=100)] = 10
    psi_moderate: Annotated[float, Field(gt=0.0)] = 0.1
    psi_major: Annotated[float, Field(gt=0.0)] = 0.25
    min_psi: Annotated[float, Field(ge=0.0)] = 0.02
    min_batch_size: Annotated[int, Field(ge=2)] = 50
    max_model_age_days: Annotated[int, Field(ge=1)] = 90
    max_metric_drop: Share = 0.1

    @model_validator(mode="after")
    def _psi_ordered(self) -> MonitorConfig:
        if self.psi_moderate > self.psi_major:
            raise ValueError(
                f"psi_moderate ({self.psi_moderate}) is larger than psi_major ({self.psi_major})"
            )
        return self


class Params(_Strict):
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)]
    task: Task = "classification"
    data: DataConfig
    validate_: ValidateConfig = Field(alias="validate")
    split: SplitConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    gate: GateConfig = Field(default_factory=GateConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    search: SearchConfig | None = None

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _fits_task(self) -> Params:
        """Estimators, baseline and metrics must be ones the task has."""
        task, train, search = self.task, self.train, self.search
        _one_of(task, "train.estimator.name", train.estimator.name, ESTIMATORS[task], "estimator")
        if train.baseline is not None:
            _one_of(task, "train.baseline", train.baseline, BASELINES[task], "baseline")
        other = sorted(self.gate.metrics() - set(GATE_METRICS[task]))
        if other:
            raise ValueError(
                f"gate: {other} are not {task} metrics; choose from {list(GATE_METRICS[task])}"
            )
        if search is not None:
            for name in search.estimators:
                _one_of(task, f"search.estimators.{name}", name, ESTIMATORS[task], "estimator")
            if search.metric is not None:
                _one_of(task, "search.metric", search.metric, GATE_METRICS[task], "metric")
        return self


def _one_of(task: str, where: str, value: str, allowed: Any, kind: str) -> None:
    if value not in allowed:
        raise ValueError(f"{where} {value!r} is not a {task} {kind}; choose from {list(allowed)}")


def _format_errors(err: ValidationError, path: Path) -> str:
    lines = [f"{path}: {err.error_count()} invalid setting(s):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (misspelt, or not a setting of this template)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "value_error":  # our own checks: the message names field and value
            msg = msg.removeprefix("Value error, ")
        got = e.get("input")
        # A whole section (what a cross-field check receives) is no help to echo back.
        quiet = e["type"] in ("missing", "extra_forbidden") or isinstance(got, dict | list)
        shown = "" if quiet else f" (got {got!r})"
        lines.append(f"  - {where}: {msg}{shown}")
    return "\n".join(lines)


def parse_params(raw: Any, path: Path = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise UserError(_format_errors(err, path)) from None


def load_params(path: Path | None = None, estimator: bool = False) -> Params:
    """Load and validate params.yaml.

    Every load also checks the settings that name contract columns (the task, the slices)
    against the data contract, which imports pandas and pandera (under a second).
    ``estimator=True`` also checks the estimator's hyperparameters with scikit-learn's own
    validation. That import costs seconds, so only the commands that use the estimator (train,
    check-params) pay it; the other stages never read those settings.
    """
    path = Path(path or PARAMS_FILE)
    # Refuses anchors/aliases (an alias bomb), oversized files and duplicate keys first: those
    # must never reach a YAML loader, ours or DVC's.
    text = params_file.read_checked(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:  # e.g. a tag such as !!python/object
        raise UserError(f"{path}: not valid YAML: {params_file.yaml_error_text(err)}") from None
    params = parse_params(raw, path)
    _check_against_contract(params, path)
    if estimator:
        check_hyperparameters(params.train.estimator, path, params.task)
        if "search" not in raw:  # dvc.yaml's tune stage declares it: DVC fails without it
            raise UserError(
                f"{path}: search: required key is missing (the tune stage reads it); write "
                "`search:` with nothing after it to fit train.estimator as it is"
            )
        if params.search is not None:
            from mlci import search_space

            search_space.check(params.search, params.task, path)
    return params


def check_hyperparameters(
    cfg: EstimatorConfig, path: Path = PARAMS_FILE, task: str = "classification"
) -> None:
    """Every hyperparameter name and value, by scikit-learn's own rules, before any stage runs:
    a value scikit-learn refuses would otherwise fail the train stage after DVC removed its
    outputs. (Rules between parameters, e.g. a penalty the solver lacks, are only checked by
    ``fit``; dvc.yaml's ``persist: true`` keeps the last good model then.)"""
    from mlci.estimators import estimator_class

    where = "train.estimator.params"
    cls = estimator_class(cfg.name, task)
    known = sorted(set(cls().get_params()) - {"random_state"})  # random_state: the seed
    unknown = [name for name in cfg.params if name not in known]
    if unknown:
        raise UserError(
            f"{path}: "
            + "; ".join(
                f"{where}.{name}: not a hyperparameter of {cfg.name} ({cls.__name__})"
                + "".join(f" (did you mean {m!r}?)" for m in get_close_matches(name, known, 1))
                for name in unknown
            )
            + f"; known: {', '.join(known)}"
        )
    validate = getattr(cls(**cfg.params), "_validate_params", None)
    if validate is None:  # scikit-learn moved it: fail loudly rather than check nothing
        raise RuntimeError(f"{cls.__name__} has no _validate_params: update check_hyperparameters")
    try:
        validate()
    except (ValueError, TypeError) as err:  # sklearn's InvalidParameterError is both
        raise UserError(f"{path}: {_hyperparameter_error(str(err), where)}") from None


_SKLEARN_PARAM_ERROR = re.compile(
    r"The '(\w+)' parameter of \w+ (must be .*)\. Got (.*) instead\.$", re.S
)


def _hyperparameter_error(message: str, where: str) -> str:
    """scikit-learn's "The 'C' parameter of LogisticRegression must be ... Got -1 instead." as
    "<where>.C: must be ...; got -1"."""
    found = _SKLEARN_PARAM_ERROR.match(message)
    if not found:
        return f"{where}: {message}"
    name, rule, got = found.groups()
    return f"{where}.{name}: {' '.join(rule.split())}; got {got}"


def _check_against_contract(params: Params, path: Path) -> None:
    """Settings that name columns must name columns the data contract has."""
    from mlci import contract

    spec = contract.spec()
    if params.task != spec.task:
        why = (
            f"its target {spec.target!r} has an `isin` check (the classes)"
            if spec.task == "classification"
            else f"its target {spec.target!r} is numeric without an `isin` check"
        )
        raise UserError(
            f"{path}: task: {params.task!r}, but the data contract (src/project/schema.py) is "
            f"a {spec.task} contract: {why}. Set `task: {spec.task}` or change the contract"
        )
    categorical = {f.name for f in spec.features if f.kind == "categorical"}
    for col in params.evaluate.slices:
        if col not in categorical:
            raise UserError(
                f"{path}: evaluate.slices: {col!r} is not a categorical feature of the data "
                f"contract; choose from {sorted(categorical)}"
            )
