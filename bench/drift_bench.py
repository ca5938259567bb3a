"""Drift benchmark: how often ``mlci drift`` finds a known shift, and how often it cries wolf.

Run with ``make bench-drift`` (or ``uv run --frozen --no-sync python bench/drift_bench.py``).
Needs the training data (``make run``). Writes ``bench/results/drift.json`` and prints a table.

Each trial draws a current batch of ``--batch`` rows (default 200), injects a known shift (or
none) and runs the detector of ``mlci.monitoring.drift`` with the thresholds in ``params.yaml``
(``monitor:``): the same tests, PSI, multiple-testing correction and decision rule as the CLI.
The contract check is left out (resampled training rows cannot break it; a shifted value stays
inside the contract's bounds, which the benchmark asserts).

Which sample is the reference matters, so there are two set-ups:

``independent`` (the honest one, used for pass/fail)
    The 256 training rows stand for the population. Every trial draws a reference of 256 rows
    and a current batch, each with replacement and independently: two samples of the same
    population, as a real training set and a real production batch are. Drawing with
    replacement is what makes them i.i.d. draws from that population; taking the current batch
    without replacement from the very rows of the reference would make it three quarters
    identical to it and hide both false alarms and drift.
``training_set``
    The reference is the full training set, as ``mlci drift`` uses by default, and the current
    batch is drawn from it. The reference then has no sampling error of its own, which real
    production never grants: the false-alarm rate here is optimistic (reported, not judged).

Shifts (each in its own scenario):

* ``mean +0.5 SD``: one numeric feature's present values plus half its training SD;
* ``share ±15 pp``: one category's share moved by 15 percentage points, by drawing whole rows
  from the shifted mixture (the batch's count of that category is binomial, not fixed; other
  columns keep their values, so a correlated column moves too, as in reality);
* ``share ±15 pp, this column only``: the same move made by relabelling values of that column
  alone, so only its own test can find it (a diagnostic: the hardest case);
* no shift, for data files (six tests) and for prediction logs (seven: plus the predicted class).
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
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mlci import artifacts, contract, paths  # noqa: E402
from mlci.config import MonitorConfig, load_params  # noqa: E402
from mlci.monitoring import batches, statistics  # noqa: E402

RESULTS = REPO / "bench" / "results" / "drift.json"
TARGET_DETECTION = 0.95
TARGET_FALSE_ALARM = 0.05
SHIFT_SD = 0.5
SHIFT_PP = 0.15

# Per worker process: loaded once by _init.
_W: dict[str, Any] = {}


def scenarios(train: pd.DataFrame) -> list[dict[str, Any]]:
    spec = contract.spec()
    out: list[dict[str, Any]] = [
        {"name": "no shift (data file)", "kind": "none"},
        {"name": "no shift (prediction log)", "kind": "none", "predictions": True},
    ]
    for col in spec.numeric:
        out.append({"name": f"{col} mean +0.5 SD", "kind": "mean", "column": col})
    for col in spec.categorical:
        values = train[col].astype(object).where(train[col].notna(), statistics.MISSING)
        for cat in sorted(v for v in values.unique() if v != statistics.MISSING):
            share = float((values == cat).mean())
            for sign in (+1, -1):
                if 0 <= share + sign * SHIFT_PP <= 1:
                    label = f"{col}={cat} share {sign * 15:+d} pp"
                    base = {"column": col, "category": cat, "delta": sign * SHIFT_PP}
                    out.append({"name": label, "kind": "share", **base})
                    out.append({"name": f"{label}, this column only", "kind": "relabel", **base})
    return out


def _init(train: pd.DataFrame, cfg: MonitorConfig, with_model: bool) -> None:
    spec = contract.spec()
    _W["train"] = train.reset_index(drop=True)
    _W["X"] = _W["train"][spec.feature_names]
    _W["cfg"] = cfg
    _W["sd"] = {c: float(train[c].std(ddof=1)) for c in spec.numeric}
    if with_model:
        model = artifacts.load_model(REPO / paths.MODEL)
        _W["model"] = model
        _W["pred"] = pd.Series(model.predict(_W["X"]), dtype=object)


def _draw_current(rng: np.random.Generator, sc: dict[str, Any], n: int) -> pd.DataFrame:
    X: pd.DataFrame = _W["X"]
    if sc["kind"] != "share":
        cur = X.iloc[rng.integers(0, len(X), n)].reset_index(drop=True)
    else:
        col, cat = sc["column"], sc["category"]
        values = X[col].astype(object).where(X[col].notna(), statistics.MISSING)
        inside = np.flatnonzero((values == cat).to_numpy())
        outside = np.flatnonzero((values != cat).to_numpy())
        p = len(inside) / len(X) + sc["delta"]
        k = int(rng.binomial(n, p))
        rows = np.concatenate([rng.choice(inside, k), rng.choice(outside, n - k)])
        cur = X.iloc[rng.permutation(rows)].reset_index(drop=True)
    if sc["kind"] == "mean":
        col = sc["column"]
        cur[col] = cur[col] + SHIFT_SD * _W["sd"][col]
    elif sc["kind"] == "relabel":
        cur = _relabel(rng, cur, sc["column"], sc["category"], sc["delta"])
    return cur


def _relabel(
    rng: np.random.Generator, cur: pd.DataFrame, col: str, cat: str, delta: float
) -> pd.DataFrame:
    """Move ``cat``'s share in ``col`` by ``delta`` on average, touching no other column."""
    feature = next(f for f in contract.spec().features if f.name == col)
    others = [c for c in feature.categories if c != cat]
    values = cur[col].astype(object).to_numpy().copy()
    is_cat = values == cat
    p = float(is_cat.mean())
    if delta > 0:  # each other row becomes `cat` with the probability that adds delta
        flip = ~is_cat & (rng.random(len(values)) < delta / (1 - p))
        values[flip] = cat
    else:
        flip = is_cat & (rng.random(len(values)) < -delta / p)
        values[flip] = rng.choice(others, int(flip.sum()))
    cur[col] = values
    return cur


def _one(args: tuple[dict[str, Any], str, int, int, int, int | None]) -> bool:
    sc, mode, n, seed, trial, n_ref = args
    rng = np.random.default_rng([seed, trial, zlib.crc32(sc["name"].encode())])
    X: pd.DataFrame = _W["X"]
    if mode == "independent":
        ref_rows = rng.integers(0, len(X), n_ref or len(X))
    else:
        ref_rows = np.arange(len(X))
    ref = X.iloc[ref_rows].reset_index(drop=True)
    cur = _draw_current(rng, sc, n)
    batch = batches.data_batch(cur)
    ref_pred = None
    if sc.get("predictions"):
        ref_pred = _W["pred"].iloc[ref_rows].reset_index(drop=True)
        batch.predictions = pd.Series(_W["model"].predict(cur), dtype=object)
    results = statistics.compare(ref, batch, _W["cfg"], reference_predictions=ref_pred, seed=trial)
    return any(r["drifted"] for r in results)


def rate(
    pool: ProcessPoolExecutor,
    sc: dict,
    mode: str,
    n: int,
    trials: int,
    seed: int,
    n_ref: int | None = None,
) -> float:
    jobs = [(sc, mode, n, seed, t, n_ref) for t in range(trials)]
    hits = list(pool.map(_one, jobs, chunksize=25))
    return sum(hits) / trials


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a rate measured as k of n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def oracle_power(share: float, delta: float, n_ref: int | None, n_cur: int, alpha: float) -> float:
    """Power of the best possible test for this one shift: a one-sided two-proportion z-test
    that knows the column, the category and the direction, uncorrected. No detector that
    looks at every column can beat it; where it is below 95%, 95% is out of reach."""
    var = share * (1 - share) * (1 / n_cur + (1 / n_ref if n_ref else 0.0))
    z = abs(delta) / math.sqrt(var)
    return float(stats.norm.sf(stats.norm.isf(alpha) - z))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=[200, 400, 800],
        help="batch sizes to try on the hardest shift (none: skip the sweep)",
    )
    ap.add_argument(
        "--sweep-reference",
        type=int,
        nargs="*",
        default=[256, 2560],
        help="reference sizes to try on the hardest shift (drawn with replacement)",
    )
    ap.add_argument("--only", default="", help="run only scenarios whose name contains this")
    args = ap.parse_args(argv)

    os.chdir(REPO)
    train_path = REPO / paths.TRAIN
    if not train_path.is_file():
        print(f"{paths.TRAIN} not found: run `make run` first", file=sys.stderr)
        return 2
    train = pd.read_parquet(train_path).reset_index(drop=True)
    cfg = load_params().monitor
    spec = contract.spec()
    for f in spec.features:  # shifted values must stay inside the contract's bounds
        if f.kind == "numeric":
            top = train[f.name].max() + SHIFT_SD * train[f.name].std(ddof=1)
            assert f.maximum is None or top <= f.maximum, f"{f.name}: shift leaves the contract"

    all_sc = [s for s in scenarios(train) if args.only in s["name"]]
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(train, cfg, True)) as pool:
        for sc in all_sc:
            row: dict[str, Any] = {
                "scenario": sc["name"],
                "kind": sc["kind"],
                "shifted": sc["kind"] != "none",
            }
            for mode in ("independent", "training_set"):
                r = rate(pool, sc, mode, args.batch, args.trials, args.seed)
                row[mode] = round(r, 4)
                row[f"{mode}_ci95"] = wilson(round(r * args.trials), args.trials)
            if sc["kind"] in ("share", "relabel"):
                share = float((train[sc["column"]] == sc["category"]).mean())
                m = len(spec.features)
                row["oracle_power_independent"] = round(
                    oracle_power(share, sc["delta"], len(train), args.batch, cfg.alpha / m), 4
                )
            rows.append(row)
            print(
                f"  {sc['name']}: {row['independent']:.3f} / {row['training_set']:.3f}",
                file=sys.stderr,
            )

        # How much data does the hardest shift need? Both samples drawn independently, with
        # replacement, so a reference larger than the training set stands for a larger
        # training set from the same population.
        hardest = min(
            (r for r in rows if r["kind"] == "share"), key=lambda r: r["independent"], default=None
        )
        null = next((s for s in all_sc if s["kind"] == "none"), None)
        sweep = []
        if hardest is not None and null is not None:
            sc = next(s for s in all_sc if s["name"] == hardest["scenario"])
            share = float((train[sc["column"]] == sc["category"]).mean())
            for n_ref in args.sweep_reference:
                for n in args.sweep:
                    det = rate(pool, sc, "independent", n, args.trials, args.seed + 1, n_ref)
                    fa = rate(pool, null, "independent", n, args.trials, args.seed + 2, n_ref)
                    bound = oracle_power(
                        share, sc["delta"], n_ref, n, cfg.alpha / len(spec.features)
                    )
                    sweep.append(
                        {
                            "reference_rows": n_ref,
                            "batch_rows": n,
                            "detection": round(det, 4),
                            "false_alarm": round(fa, 4),
                            "best_possible": round(bound, 4),
                        }
                    )
                    print(f"  sweep {n_ref} x {n}: {det:.3f} / {fa:.3f}", file=sys.stderr)
    seconds = time.perf_counter() - start

    def verdict(r: dict[str, Any]) -> bool:
        if r["shifted"]:
            return r["independent"] >= TARGET_DETECTION
        return r["independent"] <= TARGET_FALSE_ALARM

    for r in rows:
        if r["kind"] != "relabel":
            r["meets_target"] = verdict(r)
    headline = _headline(rows)
    result = {
        "benchmark": "drift detection and false-alarm rates of mlci drift",
        "trials_per_scenario": args.trials,
        "batch_rows": args.batch,
        "reference_rows": len(train),
        "seed": args.seed,
        "settings": cfg.model_dump(),
        "targets": {
            "detection_at_least": TARGET_DETECTION,
            "false_alarm_at_most": TARGET_FALSE_ALARM,
        },
        "headline": headline,
        "scenarios": rows,
        "batch_size_sweep": {"scenario": hardest["scenario"] if hardest else None, "rows": sweep},
        "seconds": round(seconds, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(
        f"written: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}",
        file=sys.stderr,
    )
    return 0


def _headline(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The three shifts of the brief, each as its worst case over columns and categories."""
    groups = {
        "no shift: false-alarm rate (worst of data file / prediction log)": [
            r for r in rows if r["kind"] == "none"
        ],
        "numeric mean +0.5 SD: detection (worst feature)": [r for r in rows if r["kind"] == "mean"],
        "category share ±15 pp: detection (worst category)": [
            r for r in rows if r["kind"] == "share"
        ],
    }
    out = []
    for label, members in groups.items():
        if not members:
            continue
        shifted = members[0]["shifted"]
        pick = max if not shifted else min
        worst = pick(members, key=lambda r: r["independent"])
        out.append(
            {
                "measure": label,
                "independent": worst["independent"],
                "training_set": pick(members, key=lambda r: r["training_set"])["training_set"],
                "worst_scenario": worst["scenario"],
                "meets_target": worst["meets_target"],
            }
        )
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Drift benchmark: {result['trials_per_scenario']} trials per scenario, "
        f"{result['batch_rows']}-row batches, {result['reference_rows']}-row reference, "
        f"{result['settings']['correction']} at alpha {result['settings']['alpha']}.",
        "",
        "| measure | independent reference | reference = training set | target met |",
        "|---|---:|---:|---|",
    ]
    for h in result["headline"]:
        lines.append(
            f"| {h['measure']} | {h['independent']:.1%} | {h['training_set']:.1%} | "
            f"{'yes' if h['meets_target'] else 'NO'} ({h['worst_scenario']}) |"
        )
    lines += [
        "",
        "| scenario | independent reference (95% CI) | reference = training set | best possible* |",
        "|---|---:|---:|---:|",
    ]
    for r in result["scenarios"]:
        lo, hi = r["independent_ci95"]
        oracle = r.get("oracle_power_independent")
        lines.append(
            f"| {r['scenario']} | {r['independent']:.1%} ({lo:.0%}–{hi:.0%}) | "
            f"{r['training_set']:.1%} | {'' if oracle is None else f'{oracle:.1%}'} |"
        )
    sweep = result["batch_size_sweep"]
    if sweep["rows"]:
        lines += [
            "",
            f"Data needed for the hardest shift ({sweep['scenario']}), independent samples:",
            "",
            "| reference rows | batch rows | detection | false alarm | best possible* |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {s['reference_rows']} | {s['batch_rows']} | {s['detection']:.1%} | "
            f"{s['false_alarm']:.1%} | {s['best_possible']:.1%} |"
            for s in sweep["rows"]
        ]
    lines += [
        "",
        "\\* power of a one-sided two-proportion z-test that is told the column, the category "
        "and the direction, at alpha / number of features (the per-column level a 5% "
        "family-wise rate leaves): about the most any column-by-column detector can find when "
        "only that column moves. Whole-row shifts can do a little better: correlated columns "
        "move too.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
