"""Lifecycle step 4: choose the estimator and its hyperparameters by cross-validation on the
training split (never the test split: choosing by test metrics makes them dishonest).

Without a ``search:`` block the stage records ``train.estimator`` as the choice (no data read,
well under a second). With one, scikit-learn's own search (``GridSearchCV``,
``RandomizedSearchCV`` or ``HalvingRandomSearchCV``) tries the candidates on stratified (for
classification) seeded folds and the best mean score wins; train then fits it on the whole
training split. The fits go through joblib, so ``MLCI_DASK_SCHEDULER`` moves them to a Dask
cluster (:mod:`mlci.cluster`) with the same folds, seeds and therefore the same scores.

Outputs: ``models/tuned.json`` (the choice) and ``reports/search.json`` (mean and spread of
every candidate). Both are functions of the inputs only; how long it took goes to
``reports/timings.json``.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

from mlci import cluster, files, paths, search_space
from mlci.config import Params, SearchConfig
from mlci.errors import UserError
from mlci.estimators import build_estimator, name_of
from mlci.tasks import LOWER_IS_BETTER, METRICS, PRIMARY

if TYPE_CHECKING:
    import pandas as pd


def run(params: Params) -> dict[str, Any]:
    if params.search is None:
        est = params.train.estimator
        choice = {"searched": False, "estimator": est.name, "params": dict(est.params)}
        table: dict[str, Any] = {"searched": False, "candidates": []}
    else:
        import pandas as pd

        from mlci.contract import features_and_target
        from mlci.pipeline.train import record_run

        X, y = features_and_target(pd.read_parquet(paths.TRAIN))
        start = time.perf_counter()
        choice, table, fit_seconds = search(params, X, y)
        record_run(
            search_seconds=round(time.perf_counter() - start, 4),
            search_fit_seconds=round(fit_seconds, 4),
            search_scheduler=cluster.scheduler_address(),
        )
    files.write_json(paths.TUNED, choice)
    files.write_json(paths.SEARCH, table)
    return choice


def metric_of(params: Params) -> str:
    assert params.search is not None
    return params.search.metric or PRIMARY[params.task]


def search(params: Params, X: pd.DataFrame, y: pd.Series) -> tuple[dict, dict, float]:
    """(choice, CV table, seconds spent in fits and scoring): the search on ``X``, ``y``."""
    cfg: SearchConfig = params.search  # type: ignore[assignment]
    metric = metric_of(params)
    spaces, fixed = _param_spaces(cfg, params)
    searcher = _searcher(cfg, params, metric, spaces, y)
    with cluster.joblib_backend() as n_jobs, warnings.catch_warnings():
        # A random search over small lists warns that it sampled the whole grid: expected.
        warnings.filterwarnings("ignore", message="The total space of parameters")
        searcher.set_params(n_jobs=n_jobs)
        try:
            searcher.fit(X, y)
        except ValueError as err:
            raise UserError(f"tune: scikit-learn refused a search candidate: {err}") from None
    return _summarise(searcher, cfg, params, metric, fixed)


def _param_spaces(cfg: SearchConfig, params: Params) -> tuple[list[dict], dict[str, dict]]:
    spaces, fixed = [], {}
    for name, space in cfg.estimators.items():
        constant, searched = search_space.distributions(space)
        fixed[name] = constant
        model = build_estimator(name, params.task, constant, params.seed)
        spaces.append({"model": [model], **{f"model__{k}": v for k, v in searched.items()}})
    return spaces, fixed


def _searcher(cfg: SearchConfig, params: Params, metric: str, spaces: list[dict], y: pd.Series):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401 (registers it)
    from sklearn.model_selection import (
        GridSearchCV,
        HalvingRandomSearchCV,
        KFold,
        RandomizedSearchCV,
        StratifiedKFold,
    )

    classify = params.task == "classification"
    if classify and y.value_counts().min() < cfg.folds:
        raise UserError(
            f"search.folds: {cfg.folds} stratified folds need every class at least {cfg.folds} "
            f"times in the training split; the rarest has {int(y.value_counts().min())}"
        )
    folds = (StratifiedKFold if classify else KFold)(
        n_splits=cfg.folds, shuffle=True, random_state=params.seed
    )
    scoring = METRICS[metric].scorer
    if metric == "roc_auc_ovr" and y.nunique() == 2:
        scoring = "roc_auc"
    from mlci.pipeline.train import build_pipeline

    pipeline = build_pipeline(params.train, params.seed, params.task)
    common = {"scoring": scoring, "cv": folds, "refit": False, "error_score": "raise"}
    if cfg.method == "grid":
        return GridSearchCV(pipeline, spaces, **common)
    if cfg.method == "random":
        return RandomizedSearchCV(
            pipeline, spaces, n_iter=cfg.candidates, random_state=params.seed, **common
        )
    # "exhaust": the first round gets as many rows as lets the last round use them all, so
    # no round scores on a sliver of the data.
    return HalvingRandomSearchCV(
        pipeline,
        spaces,
        n_candidates=cfg.candidates,
        min_resources="exhaust",
        random_state=params.seed,
        **common,
    )


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so the JSON is plain and stable."""
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


def _summarise(
    searcher: Any, cfg: SearchConfig, params: Params, metric: str, fixed: dict[str, dict]
) -> tuple[dict, dict, float]:
    res = searcher.cv_results_
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    rows = range(len(res["params"]))
    if "iter" in res:  # halving: a candidate's last (largest) round is its score
        last: dict[str, int] = {}
        for i in rows:
            last[repr(sorted(res["params"][i].items(), key=str))] = i
        rows = sorted(last.values())
    candidates = []
    for i in rows:
        p = res["params"][i]
        name = name_of(p["model"], params.task)
        searched = {k.removeprefix("model__"): _plain(v) for k, v in p.items() if k != "model"}
        candidates.append(
            {
                "estimator": name,
                "params": {**fixed[name], **searched},
                "mean": float(sign * res["mean_test_score"][i]),
                "std": float(res["std_test_score"][i]),
                "index": i,
            }
        )
    best = searcher.best_index_
    # Best first; ties keep scikit-learn's order, so the chosen one is always first.
    candidates.sort(key=lambda c: (c["index"] != best, -sign * c["mean"], c["index"]))
    for rank, c in enumerate(candidates, 1):
        c["rank"] = rank
        del c["index"]
    top = candidates[0]
    n_folds = cfg.folds
    fit_seconds = float(
        sum(
            (res["mean_fit_time"][i] + res["mean_score_time"][i]) * n_folds
            for i in range(len(res["params"]))
        )
    )
    common = {"metric": metric, "method": cfg.method, "folds": n_folds}
    choice = {
        "searched": True,
        "estimator": top["estimator"],
        "params": top["params"],
        **common,
        "cv_mean": top["mean"],
        "cv_std": top["std"],
    }
    table = {
        "searched": True,
        **common,
        "rows": len(searcher.cv_results_["params"]),
        "candidates": candidates,
    }
    return choice, table, fit_seconds
