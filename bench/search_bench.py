"""Search and batch-scoring benchmark (issue 19). Run from the repository root:

    uv run --frozen --no-sync python bench/search_bench.py [--batch-rows 1000000 10000000]

1. search overhead: the tune stage's search (scikit-learn's GridSearchCV through joblib, CV
   table built) against the same fits and scores in a plain loop over the same folds, on the
   example's table resampled to ``--search-rows`` rows. Goal: overhead ≤ 10% per candidate.
2. batch scoring: ``mlci predict`` (a separate process: read, contract check, predictor, write)
   on a generated Parquet file of each ``--batch-rows`` size: rows/s and peak RSS, against the
   in-process compiled predictor alone (records already built). Goals: ≥ 50%, ≤ 1 GiB. (Also
   timed: the columnar entry ``mlci predict`` uses, in process, on the checked rows.)
3. the example's full ``dvc repro`` from a clean state with ``search:`` empty and with the
   commented-out example search switched on. Goal: on ≤ 2× off.

Writes bench/results/search.json and prints it. Uses the repository's own project (the
example, unless adopted), in temporary copies for section 3.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pipeline_util import BIN, REPO, copy_repo, machine_facts, run_measured, tool_env, workspace
from pipeline_bench import make_clean, pipeline_stages, stage_spans
from pipeline_synth import generate

SEARCH = {
    "method": "grid",
    "folds": 5,
    "estimators": {
        "logistic_regression": {"max_iter": 1000, "C": [0.01, 0.1, 1.0, 10.0]},
        "random_forest": {"n_estimators": [50], "max_depth": [5, 10]},
    },
}


def sample() -> pd.DataFrame:
    from mlci import contract, tables
    from mlci.config import load_params

    params = load_params(REPO / "params.yaml")
    raw = tables.read_table(REPO / params.data.source, "bench")
    df, _ = tables.clean(raw, "bench")
    return df[
        [
            c
            for c in df.columns
            if c
            in [*contract.spec().feature_names, contract.spec().target, contract.spec().id_column]
        ]
    ]


def bench_search(rows: int, repeats: int = 3) -> dict[str, Any]:
    from sklearn.base import clone
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import ParameterGrid

    from mlci import contract
    from mlci.config import parse_params
    from mlci.pipeline import tune

    raw = __import__("yaml").safe_load((REPO / "params.yaml").read_text())
    raw["search"] = SEARCH
    params = parse_params(raw)
    X, y = contract.features_and_target(generate(sample(), rows, seed=1))
    searcher = tune._searcher(
        params.search,
        params,
        tune.metric_of(params),
        tune._param_spaces(params.search, params)[0],
        y,
    )
    scorer = get_scorer(searcher.scoring)

    def by_hand() -> int:
        """The same fits by hand: same folds, pipelines and scorer, no search machinery."""
        n = 0
        for grid in ParameterGrid(searcher.param_grid):
            for train, test in searcher.cv.split(X, y):
                model = clone(searcher.estimator).set_params(**grid)
                model.fit(X.iloc[train], y.iloc[train])
                scorer(model, X.iloc[test], y.iloc[test])
            n += 1
        return n

    # Interleaved repeats, medians: the machine is shared, so one run of each is noise.
    walls, insides, alones = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        choice, _, inside = tune.search(params, X, y)
        walls.append(time.perf_counter() - start)
        insides.append(inside)
        start = time.perf_counter()
        n = by_hand()
        alones.append(time.perf_counter() - start)
    searched, inside, alone = (statistics.median(v) for v in (walls, insides, alones))
    return {
        "rows": rows,
        "candidates": n,
        "folds": SEARCH["folds"],
        "search_s": round(searched, 3),
        "fits_alone_s": round(alone, 3),
        "fits_inside_search_s": round(inside, 3),
        "repeats": repeats,
        "search_runs_s": [round(v, 3) for v in walls],
        "by_hand_runs_s": [round(v, 3) for v in alones],
        # wall time outside the fits and scores scikit-learn timed (cv_results_): the search's
        # own cost, measured within one run (robust to load from other processes)
        "overhead_per_candidate_s": round((searched - inside) / n, 4),
        "overhead_share_of_fits": round((searched - inside) / inside, 4),
        # against the hand-written loop (separate runs: includes the machine's noise)
        "vs_by_hand_share": round((searched - alone) / alone, 4),
        "chosen": choice["estimator"],
    }


def bench_batch(root: Path, rows: int) -> dict[str, Any]:
    from mlci import contract
    from mlci.serving import batch

    spec = contract.spec()
    path = root / f"batch_{rows}.parquet"
    base = generate(sample(), min(rows, 1_000_000), seed=2).drop(columns=[spec.target])
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(base, preserve_index=False)
    with pq.ParquetWriter(path, table.schema) as w:  # repeat the block: any size, flat memory
        left = rows
        while left > 0:
            w.write_table(table.slice(0, min(left, len(base))))
            left -= min(left, len(base))
    out = root / f"scored_{rows}.parquet"
    m = run_measured(
        [str(BIN / "mlci"), "predict", "--input", str(path), "--output", str(out)],
        cwd=REPO,
        env=tool_env(),
        label=f"mlci predict {rows}",
    )
    # The in-process compiled predictor alone, on records built beforehand.
    predictor = batch.load_approved()
    probe = base.head(200_000)[spec.feature_names].astype(object)
    records = probe.where(probe.notna(), None).to_dict("records")
    rates, cpu_rates = [], []
    for _ in range(5):  # the median of five passes: one pass is a fraction of a second
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(records), batch.CHUNK_ROWS):
            predictor.score(records[i : i + batch.CHUNK_ROWS])
        rates.append(len(records) / (time.perf_counter() - start))
        cpu_rates.append(len(records) / (time.process_time() - cpu))
    inproc = statistics.median(rates)
    # The columnar entry batch scoring now uses, in process, on the same rows (checked frame).
    checked, _ = batch.check_frame(base.head(200_000), spec, 0)
    features = checked[spec.feature_names]
    col_rates = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(0, len(features), batch.CHUNK_ROWS):
            predictor.score_columns(features.iloc[i : i + batch.CHUNK_ROWS])
        col_rates.append(len(features) / (time.perf_counter() - start))
    scored = pq.ParquetFile(out).metadata.num_rows
    # The fixed cost of a run (imports, model load, contract): the same command on one row.
    pq.write_table(table.slice(0, 1), root / "one.parquet")
    one = run_measured(
        [
            str(BIN / "mlci"),
            "predict",
            "--input",
            str(root / "one.parquet"),
            "--output",
            str(root / "one_out.parquet"),
        ],
        cwd=REPO,
        env=tool_env(),
        label="mlci predict 1 row",
    )
    steady = rows / max(1e-9, m.wall_s - one.wall_s)
    # CPU seconds (user + sys) are what other jobs on a shared machine disturb least: the
    # command's, less the one-row run's, per row, against the in-process predictor's.
    cpu_steady = rows / max(1e-9, (m.user_s + m.sys_s) - (one.user_s + one.sys_s))
    return {
        "rows": rows,
        "input_bytes": path.stat().st_size,
        "scored_rows": scored,
        "wall_s": round(m.wall_s, 2),
        "rows_per_s": round(rows / m.wall_s),
        "peak_rss_mib": round(m.peak_rss_mib, 1),
        "predictor_mode": predictor.mode,
        "in_process_predictor_rows_per_s": round(inproc),
        "in_process_columnar_rows_per_s": round(statistics.median(col_rates)),
        "share_of_in_process": round(rows / m.wall_s / inproc, 3),
        "startup_s": round(one.wall_s, 2),
        "rows_per_s_after_startup": round(steady),
        "share_of_in_process_after_startup": round(steady / inproc, 3),
        "rows_per_cpu_s_after_startup": round(cpu_steady),
        "in_process_predictor_rows_per_cpu_s": round(statistics.median(cpu_rates)),
        "share_of_in_process_cpu": round(cpu_steady / statistics.median(cpu_rates), 3),
    }


def bench_make_run(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in ("off", "on"):
        repo = copy_repo(root / f"run_{label}" / "repo")
        if label == "on":  # the example's commented-out search, switched on as a user would
            params = repo / "params.yaml"
            text = params.read_text()
            text = re.sub(r"(?m)^#(  +\S)", r"\1", text)
            params.write_text(text)
        make_clean(repo)
        m = run_measured(
            [str(BIN / "dvc"), "repro"], cwd=repo, env=tool_env(src=repo / "src"), label=label
        )
        out[f"search_{label}_s"] = round(m.wall_s, 2)
        out[f"search_{label}_stages_s"] = stage_spans(m, pipeline_stages(repo))[0]
        out[f"search_{label}_tuned"] = json.loads((repo / "models/tuned.json").read_text())
    out["ratio"] = round(out["search_on_s"] / out["search_off_s"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--search-rows", type=int, default=20_000)
    parser.add_argument("--batch-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--skip", nargs="*", default=[], choices=["search", "batch", "run"])
    args = parser.parse_args(argv)
    out = REPO / "bench" / "results" / "search.json"
    # Sections not run this time keep their last results.
    res: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    res["machine"] = machine_facts(None)
    with workspace() as root:
        if "search" not in args.skip:
            res["search"] = bench_search(args.search_rows)
            print(json.dumps(res["search"]), flush=True)
        if "batch" not in args.skip:
            res["batch"] = []
            for rows in args.batch_rows:
                res["batch"].append(bench_batch(root, rows))
                print(json.dumps(res["batch"][-1]), flush=True)
        if "run" not in args.skip:
            res["make_run"] = bench_make_run(root)
            print(
                json.dumps({k: v for k, v in res["make_run"].items() if "tuned" not in k}),
                flush=True,
            )
    out.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
