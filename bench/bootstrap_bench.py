"""Benchmark of the noise estimate in the pull-request report: the paired bootstrap over test rows
(:mod:`mlci.review.noise`) at the example's size and at 100,000 rows.

Goals (issue 16): at most 1 s extra for the bundled example (86 test rows, 3 classes, every
metric including log loss and ROC AUC), at most 10 s at 100,000 test rows. Synthetic answers of
the right shape (class codes and probabilities; regression predictions): the bootstrap's cost
depends only on the rows, the classes and the resamples, not on the model. Scoring the two
models (loading them with skops and predicting) is measured on the example by
``bench/render_comment/scenarios.py`` runs, not here.

    .venv/bin/python bench/bootstrap_bench.py [--samples 1000]

Writes ``bench/results/bootstrap.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from mlci.review.noise import RowScores, compare, flips

OUT = Path(__file__).parent / "results" / "bootstrap.json"


def classifier_pair(n: int, k: int, seed: int) -> tuple[RowScores, RowScores]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    classes = tuple(f"c{i}" for i in range(k))

    def answers(strength: float) -> RowScores:
        logits = rng.normal(size=(n, k)) + strength * np.eye(k)[truth]
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return RowScores(truth, proba.argmax(axis=1), proba, classes)

    return answers(2.0), answers(1.8)


def regression_pair(n: int, seed: int) -> tuple[RowScores, RowScores]:
    rng = np.random.default_rng(seed)
    y = rng.normal(150, 50, n)
    return RowScores(y, y + rng.normal(0, 30, n)), RowScores(y, y + rng.normal(0, 31, n))


def timed(base: RowScores, head: RowScores, samples: int, repeats: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run): on a shared machine the CPU time is what
    an idle one would take (the bootstrap is single-threaded numpy, bar BLAS)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        compare(base, head, seed=42, samples=samples)
        flips(base, head)
        best = min(best, (time.perf_counter() - start, time.process_time() - cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    cases = [
        ("example: 86 rows, 3 classes", classifier_pair(86, 3, 0), 5, 1.0),
        ("10,000 rows, 3 classes", classifier_pair(10_000, 3, 1), 2, None),
        ("100,000 rows, 3 classes", classifier_pair(100_000, 3, 2), 1, 10.0),
        ("100,000 rows, 10 classes", classifier_pair(100_000, 10, 3), 1, None),
        ("100,000 rows, regression", regression_pair(100_000, 4), 1, 10.0),
    ]
    rows = []
    print(f"| case ({args.samples:,} resamples) | wall s | CPU s | goal |")
    print("|---|---:|---:|---:|")
    for name, (base, head), repeats, goal in cases:
        wall, cpu = timed(base, head, args.samples, repeats)
        ok = goal is None or cpu <= goal
        shown = f"≤ {goal:g} s" if goal else "—"
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {shown} {'' if ok else '(missed)'} |")
        rows.append(
            {
                "case": name,
                "wall_seconds": round(wall, 4),
                "cpu_seconds": round(cpu, 4),
                "goal_seconds": goal,
                "met": ok,
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "samples": args.samples,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}",
        "cases": rows,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
