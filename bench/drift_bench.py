"""Drift benchmark: the smallest shift ``mlci drift`` finds at each batch size, and how often it
raises a false alarm.

Run with ``make bench-drift`` (or ``uv run --frozen --no-sync python bench/drift_bench.py``).
Needs the training data and model (``make run``). Writes ``bench/results/drift.json`` and prints
markdown tables. Nothing here names a column: features, kinds and categories come from the data
contract (``contract.spec()``), thresholds from ``params.yaml`` (``monitor:``), so the benchmark
runs unchanged on an adopter's project, classification or regression.

The population. A real training set and a real production batch are two samples of one world;
a benchmark whose reference *is* its population hides the reference's own sampling noise. So
the training set, smoothed, stands for the world: a population row is a training row drawn at
random, each numeric value moved by Gaussian noise of ``NOISE_SD`` (0.1) of that column's SD
(ties broken, the spread widened by 0.5%). Every trial draws a reference of ``--reference-rows``
(default 2,000: a training set of that size) and a current batch, independently, from a pool of
``POOL_ROWS`` such rows. The detector is ``statistics.compare`` of :mod:`mlci.monitoring`: the
CLI's tests, PSI, multiple-testing correction and decision rule (the contract check is left out).

Shifts:

* numeric feature, mean + d SD: the batch's present values plus d training SDs;
* category share +/- d pp: whole rows drawn from the shifted mixture (the batch's count of the
  category is binomial, other columns keep their values, so correlated columns move too). The
  categories of a closed set, or the ``OPEN_TOP`` most frequent values of an open one.

Measures:

* false alarms (no shift) per batch size, for data files (all features) and, at the acceptance
  size, for prediction logs (plus the prediction): the share of trials with any drift at all.
  Holm's correction bounds it by ``alpha`` by construction, so the measured rate sits just under
  it; the target is judged on every no-shift run pooled (``--null-trials`` each);
* acceptance at ``--accept-batch`` rows (default 400): detection of +0.5 SD for every numeric
  feature and of +/- 15 pp for every category (where the share allows it);
* minimum detectable shift per batch size: per feature and category, the smallest shift on a
  grid found in at least 95% of trials (bisection; a grid point is settled early when its first
  50-200 trials leave no doubt either way); the table reports the worst.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mlci import artifacts, contract, paths  # noqa: E402
from mlci.config import MonitorConfig, load_params  # noqa: E402
from mlci.monitoring import batches, quality, statistics  # noqa: E402
from mlci.monitoring.batches import load_reference  # noqa: E402

RESULTS = REPO / "bench" / "results" / "drift.json"
TARGET_DETECTION = 0.95
TARGET_FALSE_ALARM = 0.05
ACCEPT_SD = 0.5
ACCEPT_PP = 0.15
NOISE_SD = 0.1
POOL_ROWS = 50_000
OPEN_TOP = 5
SD_GRID = [round(0.05 * i, 2) for i in range(1, 41)]  # 0.05 .. 2.0 SD
PP_GRID = [i / 100 for i in range(1, 51)]  # 1 .. 50 percentage points

# Per worker process: set once by _init.
_W: dict[str, Any] = {}


# --------------------------------------------------------------------------- population, shifts


def make_pool(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """The smoothed training set: resampled rows, numeric values jittered by NOISE_SD SDs."""
    spec = contract.spec()
    rng = np.random.default_rng([seed, 1])
    X = quality.model_input(train).reset_index(drop=True)
    pool = X.iloc[rng.integers(0, len(X), rows)].reset_index(drop=True)
    for name in spec.numeric:
        sd = float(X[name].std(ddof=1)) or 1.0
        pool[name] = pool[name] + rng.normal(0.0, NOISE_SD * sd, rows)  # NaN stays NaN
    return pool


def categories(pool: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(column, category, population share) for every category a shift is tried on."""
    out = []
    for f in contract.spec().features:
        if f.kind != "categorical":
            continue
        # Shares of all rows, missing ones included: the rows _draw mixes from.
        shares = pool[f.name].value_counts(normalize=True, dropna=False)
        present = [v for v in shares.index if pd.notna(v)]
        values = [c for c in f.categories if c in present] or present[:OPEN_TOP]
        out += [(f.name, str(v), float(shares[v])) for v in values]
    return out


def scenarios(pool: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in contract.spec().numeric:
        out.append({"name": f"{name} mean", "kind": "mean", "column": name, "sign": 1})
    for col, cat, share in categories(pool):
        for sign in (+1, -1):
            out.append(
                {
                    "name": f"{col}={cat} share {'+' if sign > 0 else '−'}",
                    "kind": "share",
                    "column": col,
                    "category": cat,
                    "share": share,
                    "sign": sign,
                }
            )
    return out


def feasible_max(sc: dict[str, Any], grid: list[float]) -> float:
    """The largest shift the scenario allows (a share stays within 0..1)."""
    if sc["kind"] == "mean":
        return grid[-1]
    room = 1 - sc["share"] if sc["sign"] > 0 else sc["share"]
    return min(grid[-1], room)


def _init(pool: pd.DataFrame, cfg: MonitorConfig, pred: pd.Series | None) -> None:
    _W.update(pool=pool, cfg=cfg, pred=pred)
    _W["sd"] = {c: float(pool[c].std(ddof=1)) for c in contract.spec().numeric}


def _draw(rng: np.random.Generator, sc: dict[str, Any] | None, d: float, n: int) -> np.ndarray:
    pool: pd.DataFrame = _W["pool"]
    if sc is None or sc["kind"] != "share":
        return rng.integers(0, len(pool), n)
    key = (sc["column"], sc["category"])
    if key not in _W:
        inside = (pool[sc["column"]] == sc["category"]).to_numpy(dtype=bool, na_value=False)
        _W[key] = (np.flatnonzero(inside), np.flatnonzero(~inside))
    inside, outside = _W[key]
    k = int(rng.binomial(n, min(1.0, max(0.0, sc["share"] + sc["sign"] * d))))
    return rng.permutation(np.concatenate([rng.choice(inside, k), rng.choice(outside, n - k)]))


def trial(sc: dict[str, Any] | None, d: float, n: int, n_ref: int, seed: int, log: bool) -> bool:
    """One run of the detector: True when it reports drift in any column."""
    name = "none" if sc is None else sc["name"]
    # The shift is not part of the seed: trial t draws the same rows at every shift (common
    # random numbers), so detection grows smoothly with the shift and bisection is stable.
    rng = np.random.default_rng([seed, n, n_ref, zlib.crc32(name.encode())])
    pool: pd.DataFrame = _W["pool"]
    ref_rows = rng.integers(0, len(pool), n_ref)
    cur_rows = _draw(rng, sc, d, n)
    ref = pool.iloc[ref_rows].reset_index(drop=True)
    cur = pool.iloc[cur_rows].reset_index(drop=True)
    if sc is not None and sc["kind"] == "mean":
        cur[sc["column"]] = cur[sc["column"]] + d * _W["sd"][sc["column"]]
    batch = batches.data_batch(cur)
    ref_pred = None
    if log:
        ref_pred = _W["pred"].iloc[ref_rows].reset_index(drop=True)
        batch.predictions = _W["pred"].iloc[cur_rows].reset_index(drop=True)
    results = statistics.compare(ref, batch, _W["cfg"], reference_predictions=ref_pred, seed=seed)
    return any(r["drifted"] for r in results)


def detection(
    sc: dict[str, Any] | None,
    d: float,
    n: int,
    n_ref: int,
    trials: int,
    seed: int,
    log: bool = False,
) -> float:
    hits = sum(trial(sc, d, n, n_ref, seed + t, log) for t in range(trials))
    return hits / trials


def detected(sc: dict[str, Any], d: float, n: int, n_ref: int, seed: int, max_trials: int) -> bool:
    """Whether ``sc`` at shift ``d`` is found in >= 95% of trials. Chunks of 50: stop early
    when the misses so far are far above 5% (clearly not), or none in 100 (clearly yes:
    0 of 100 happens 0.6% of the time at a true 95%)."""
    misses = done = 0
    while done < max_trials:
        for t in range(50):
            misses += not trial(sc, d, n, n_ref, seed + done + t, log=False)
        done += 50
        if misses > 0.05 * done + 3 * math.sqrt(0.05 * 0.95 * done):
            return False
        if misses == 0 and done >= 100:
            return True
    return misses / done <= 1 - TARGET_DETECTION


def min_detectable(args: tuple[dict[str, Any], list[int], int, int, int]) -> dict[str, Any]:
    """Per batch size (smallest first): the smallest grid shift detected >= 95% of the time,
    or None when even the largest feasible shift is not. A larger batch never needs a larger
    shift, so each size searches below the previous size's answer."""
    sc, sizes, n_ref, seed, max_trials = args
    grid = SD_GRID if sc["kind"] == "mean" else PP_GRID
    top = feasible_max(sc, grid)
    grid = [g for g in grid if g <= top + 1e-9]
    out: dict[str, Any] = {}
    hi, known = len(grid) - 1, False  # known: grid[hi] was found at a smaller batch already
    for n in sizes:
        if not grid or not (known or detected(sc, grid[hi], n, n_ref, seed, max_trials)):
            out[str(n)] = None
            continue
        known = True
        lo = 0
        while lo < hi:  # smallest index whose shift is detected
            mid = (lo + hi) // 2
            if detected(sc, grid[mid], n, n_ref, seed, max_trials):
                hi = mid
            else:
                lo = mid + 1
        out[str(n)] = grid[hi]
    return {"scenario": sc["name"], "kind": sc["kind"], "min_detectable": out}


def accept(args: tuple[dict[str, Any] | None, float, int, int, int, int, bool]) -> dict[str, Any]:
    sc, d, n, n_ref, trials, seed, log = args
    rate = detection(sc, d, n, n_ref, trials, seed, log)
    return {
        "scenario": "none" if sc is None else sc["name"],
        "kind": "none" if sc is None else sc["kind"],
        "shift": d,
        "rate": rate,
    }


# --------------------------------------------------------------------------- running it


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a rate measured as k of n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference-rows", type=int, default=2000)
    ap.add_argument("--batches", type=int, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--accept-batch", type=int, default=400)
    ap.add_argument("--trials", type=int, default=300, help="trials per detection measure")
    ap.add_argument("--null-trials", type=int, default=1000, help="trials per false-alarm rate")
    ap.add_argument("--search-trials", type=int, default=200, help="at most, per grid point")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    os.chdir(REPO)
    for needed in (paths.TRAIN, paths.MODEL):
        if not (REPO / needed).is_file():
            print(f"{needed} not found: run `make run` first", file=sys.stderr)
            return 2
    spec = contract.spec()
    train = load_reference(REPO / paths.TRAIN)  # read as `mlci drift` reads its reference
    cfg = load_params().monitor
    pool = make_pool(train, POOL_ROWS, args.seed)
    model = artifacts.load_model(REPO / paths.MODEL)
    pred = quality.predictions(model, pool)
    all_sc = scenarios(pool)
    sizes = sorted(set(args.batches))
    n_ref, n_acc = args.reference_rows, args.accept_batch

    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(pool, cfg, pred)) as ex:
        # Seeds a million apart: no two measures share a trial's draws.
        seeds = [args.seed + k * 1_000_000 for k in range(4)]
        nt = args.null_trials
        null_jobs = [(None, 0.0, n, n_ref, nt, seeds[0], False) for n in sizes]
        null_jobs.append((None, 0.0, n_acc, n_ref, nt, seeds[1], True))
        acc_jobs = [
            (
                sc,
                ACCEPT_SD if sc["kind"] == "mean" else ACCEPT_PP,
                n_acc,
                n_ref,
                args.trials,
                seeds[2],
                False,
            )
            for sc in all_sc
            if sc["kind"] == "mean" or feasible_max(sc, PP_GRID) >= ACCEPT_PP - 1e-9
        ]
        search_jobs = [(sc, sizes, n_ref, seeds[3], args.search_trials) for sc in all_sc]
        # The long searches first, so that the two workers finish together.
        searches = ex.map(min_detectable, search_jobs)
        nulls = list(ex.map(accept, null_jobs))
        accepted = list(ex.map(accept, acc_jobs))
        searched = list(searches)
    seconds = time.perf_counter() - start

    false_alarms = [
        {
            "batch_rows": job[2],
            "input": "prediction log" if job[6] else "data file",
            "rate": r["rate"],
            "trials": job[4],
            "ci95": wilson(round(r["rate"] * job[4]), job[4]),
        }
        for job, r in zip(null_jobs, nulls, strict=True)
    ]
    acceptance = [
        {**r, "ci95": wilson(round(r["rate"] * args.trials), args.trials)} for r in accepted
    ]
    table = []
    for n in sizes:
        row: dict[str, Any] = {"batch_rows": n}
        row["false_alarm"] = next(
            f["rate"] for f in false_alarms if f["batch_rows"] == n and f["input"] == "data file"
        )
        for kind in ("mean", "share"):
            found = [
                (s["min_detectable"][str(n)], s["scenario"]) for s in searched if s["kind"] == kind
            ]
            if found:
                # Worst case: the largest minimum; a shift never found counts as infinite.
                worst = max(found, key=lambda f: math.inf if f[0] is None else f[0])
                row[kind] = {"shift": worst[0], "worst_scenario": worst[1]}
        table.append(row)

    def met(r: dict[str, Any]) -> bool:
        return r["rate"] >= TARGET_DETECTION

    # Holm bounds the false-alarm rate by alpha by construction, so the measured rate sits just
    # under it; it is judged on all null runs pooled (thousands of trials, not a few hundred).
    alarms = sum(round(f["rate"] * f["trials"]) for f in false_alarms)
    null_runs = sum(f["trials"] for f in false_alarms)
    pooled = {
        "rate": round(alarms / null_runs, 4),
        "trials": null_runs,
        "ci95": wilson(alarms, null_runs),
    }
    verdict = {
        "false_alarms": pooled["rate"] <= TARGET_FALSE_ALARM,
        "numeric_mean_0.5_sd": all(met(r) for r in acceptance if r["kind"] == "mean"),
        "category_15_pp": all(met(r) for r in acceptance if r["kind"] == "share"),
    }
    result = {
        "benchmark": "mlci drift: minimum detectable shift per batch size, false-alarm rate",
        "task": spec.task,
        "population": {
            "training_rows": len(train),
            "pool_rows": POOL_ROWS,
            "numeric_noise_sd": NOISE_SD,
        },
        "reference_rows": n_ref,
        "batch_rows": sizes,
        "acceptance_batch_rows": n_acc,
        "trials": args.trials,
        "search_trials_max": args.search_trials,
        "seed": args.seed,
        "settings": cfg.model_dump(),
        "targets": {
            "detection_at_least": TARGET_DETECTION,
            "false_alarm_at_most": TARGET_FALSE_ALARM,
            "numeric_shift_sd": ACCEPT_SD,
            "category_shift_pp": ACCEPT_PP * 100,
        },
        "targets_met": verdict,
        "false_alarms": false_alarms,
        "false_alarms_pooled": pooled,
        "acceptance": acceptance,
        "min_detectable_shift": table,
        "per_scenario": searched,
        "seconds": round(seconds, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    shown = args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out
    print(f"written: {shown} ({seconds:.0f} s)", file=sys.stderr)
    return 0


def _pp(x: float | None) -> str:
    return "not found" if x is None else f"{x * 100:.0f} pp"


def _sd(x: float | None) -> str:
    return "not found" if x is None else f"{x:.2f} SD"


def _rate(r: dict[str, Any]) -> str:
    lo, hi = r["ci95"]
    return f"{r['rate']:.1%} ({lo:.1%}–{hi:.1%})"


def markdown(result: dict[str, Any]) -> str:
    n_acc, n_ref = result["acceptance_batch_rows"], result["reference_rows"]
    s, met = result["settings"], result["targets_met"]
    acc = result["acceptance"]
    fa = {(f["batch_rows"], f["input"]): f for f in result["false_alarms"]}
    pooled = result["false_alarms_pooled"]
    lines = [
        f"Reference {n_ref:,} rows; {s['correction']} at alpha {s['alpha']}, min PSI "
        f"{s['min_psi']}; 95% confidence intervals in brackets.",
        "",
        f"| measure, {n_acc}-row batches | measured | target | met |",
        "|---|---:|---|---|",
        f"| false alarms, every no-shift run pooled ({pooled['trials']:,} runs) | "
        f"{_rate(pooled)} | ≤ 5% | {'yes' if met['false_alarms'] else '**no**'} |",
    ]
    for key in ("data file", "prediction log"):
        if (n_acc, key) in fa:
            f = fa[(n_acc, key)]
            lines.append(f"| false alarms, {key} ({f['trials']:,} runs) | {_rate(f)} | | |")
    for label, kind, key in (
        (f"numeric mean +{ACCEPT_SD} SD", "mean", "numeric_mean_0.5_sd"),
        (f"category share ±{ACCEPT_PP * 100:.0f} pp", "share", "category_15_pp"),
    ):
        group = [r for r in acc if r["kind"] == kind]
        if group:
            worst = min(group, key=lambda r: r["rate"])
            lines.append(
                f"| {label}, worst ({worst['scenario']}) | {_rate(worst)} | ≥ 95% | "
                f"{'yes' if met[key] else '**no**'} |"
            )
    lines += [
        "",
        "| batch rows | false alarms | smallest mean shift found ≥ 95% (worst feature) "
        "| smallest share shift found ≥ 95% (worst category) |",
        "|---:|---:|---|---|",
    ]
    for row in result["min_detectable_shift"]:
        cells = []
        for kind, fmt in (("mean", _sd), ("share", _pp)):
            if kind in row:
                cells.append(f"{fmt(row[kind]['shift'])} ({row[kind]['worst_scenario']})")
            else:
                cells.append("-")
        f = fa[(row["batch_rows"], "data file")]
        lines.append(f"| {row['batch_rows']} | {_rate(f)} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
