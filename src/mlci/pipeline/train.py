"""Lifecycle step 5: fit the model pipeline and a baseline, save both with skops.

Everything this stage declares as output is a function of its inputs: the same data, params and
locked libraries give byte-identical model files and metadata, so ``dvc.lock`` does not change
when the pipeline reruns. When and where it ran (time, fit seconds, commit, Python patch
release) goes to the git-ignored ``reports/timings.json`` instead.
"""

from __future__ import annotations

import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlci import artifacts, contract, files, paths, run_guard
from mlci.config import Params, TrainConfig
from mlci.contract import features_and_target
from mlci.errors import UserError
from mlci.estimators import build_baseline as _baseline
from mlci.estimators import build_estimator

# An open categorical feature (no `isin` in the contract: a postcode, a product code) keeps at
# most this many one-hot columns; rarer and unseen values share one "infrequent" column, so a
# high-cardinality code cannot blow up the model. Closed sets are encoded one column per value.
MAX_CATEGORIES = 50


def build_pipeline(
    cfg: TrainConfig,
    seed: int,
    task: str = "classification",
    choice: tuple[str, dict[str, Any]] | None = None,
) -> Pipeline:
    """Preprocessing plus the estimator: ``choice`` (name, hyperparameters: the tune stage's)
    or else ``cfg.estimator``."""
    spec = contract.spec()
    closed = [f.name for f in spec.features if f.kind == "categorical" and f.categories]
    open_ = [f.name for f in spec.features if f.kind == "categorical" and not f.categories]

    def categorical(**encoder: Any) -> Pipeline:
        return make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(**encoder)
        )

    groups = [
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), spec.numeric),
        ("cat", categorical(handle_unknown="ignore"), closed),
        (
            "open",
            categorical(handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES),
            open_,
        ),
    ]
    # A group without columns is left out: the model then has no unfitted transformer in it.
    # Always dense (sparse_threshold=0): with many one-hot columns the output would turn sparse,
    # which HistGradientBoosting refuses; the columns are capped, so dense stays small.
    pre = ColumnTransformer(
        [g for g in groups if g[2]], sparse_threshold=0.0, verbose_feature_names_out=False
    )
    name, hyper = choice or (cfg.estimator.name, cfg.estimator.params)
    estimator = build_estimator(name, task, hyper, seed)
    return Pipeline([("preprocess", pre), ("model", estimator)])


def build_baseline(cfg: TrainConfig, seed: int, task: str = "classification") -> BaseEstimator:
    return _baseline(cfg.baseline_for(task), task, seed)


def run(params: Params) -> dict[str, Any]:
    train = pd.read_parquet(paths.TRAIN)
    X, y = features_and_target(train)

    choice, source = _tuned()
    start = time.perf_counter()
    model = fit(build_pipeline(params.train, params.seed, params.task, choice), X, y, source)
    fit_seconds = time.perf_counter() - start
    baseline = build_baseline(params.train, params.seed, params.task).fit(X, y)
    meta = {
        "task": params.task,
        "estimator": choice[0],
        "estimator_params": choice[1],
        "classes": [str(c) for c in getattr(model, "classes_", [])],
        "features": contract.spec().feature_names,
        "target": contract.spec().target,
        "train_rows": len(train),
        "train_data_sha256": files.sha256_file(paths.TRAIN),
        "params": params.model_dump(mode="json", by_alias=True),
        # The feature release, not the patch: a patch release does not change the model.
        "python": ".".join(platform.python_version_tuple()[:2]),
        "libraries": {
            lib: version(lib) for lib in ("scikit-learn", "pandas", "numpy", "skops", "pandera")
        },
        "skops_trusted": artifacts.TRUSTED,
    }
    # The three files are one model: a stop signal waits until all three are replaced, so an
    # interrupted run never leaves a new model next to the old metadata.
    with run_guard.held():
        artifacts.save_model(model, paths.MODEL)
        artifacts.save_model(baseline, paths.BASELINE)
        files.write_json(paths.MODEL_META, meta)
    git_state = _git_state()
    record_run(
        fit_seconds=round(fit_seconds, 4),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        git_commit=git_state["commit"],
        git_dirty=git_state["dirty"],
        python=platform.python_version(),
    )
    return meta


def _tuned() -> tuple[tuple[str, dict[str, Any]], str]:
    """The tune stage's choice (models/tuned.json): what to fit, and where it came from."""
    try:
        tuned = files.read_json(paths.TUNED)
        source = f"the search's choice ({paths.TUNED})" if tuned.get("searched") else ""
        return (str(tuned["estimator"]), dict(tuned["params"])), source or "train.estimator.params"
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"train: {paths.TUNED} is missing or unreadable: run the tune stage first "
            "(`make run` or `mlci tune`)"
        ) from None


def fit(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, source: str = "train.estimator.params"
) -> Pipeline:
    """Fit; scikit-learn's refusal is a user error, not a traceback. Each hyperparameter alone
    passed its check before the pipeline ran, so this is a combination (a penalty its solver
    lacks) or what the estimator makes of this data."""
    try:
        return model.fit(X, y)
    except ValueError as err:
        raise UserError(
            f"train: scikit-learn refused to fit {type(model[-1]).__name__} with "
            f"{source}: {err} (the previous model was kept)"
        ) from None


def record_run(**facts: Any) -> None:
    """Merge ``facts`` into ``reports/timings.json`` (see ``paths.TIMINGS``)."""
    try:
        current = files.read_json(paths.TIMINGS) if paths.TIMINGS.is_file() else {}
    except ValueError:
        current = {}
    files.write_json(paths.TIMINGS, {**(current if isinstance(current, dict) else {}), **facts})


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
