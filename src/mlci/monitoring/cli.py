"""Command-line glue for monitoring: ``mlci drift`` and ``mlci staleness``.

Kept free of heavy imports so that building the parser stays fast for every other command.

Exit codes of ``mlci drift``: 0 no drift, 1 drift found (or contract violations, or a metric
drop on a labelled batch), 2 user error, 3 not enough data for a verdict.
Exit codes of ``mlci staleness``: 0 fresh, 1 older than ``monitor.max_model_age_days``,
2 user error (no model metadata, or no way to tell the training time).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlci import startup

DEFAULT_OUT = Path("reports/drift")


def drift_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--current",
        type=Path,
        required=True,
        help="current batch: a data file (CSV, Parquet, or JSON lines of rows; contract columns "
        "or the source's raw form, cleaned as training data is), a .jsonl prediction log, or a "
        "folder of logs",
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference data (default: data/processed/train.parquet, the training set)",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT,
        help=f"where drift.json and drift.md go (default: {DEFAULT_OUT})",
    )


def staleness_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def drift(args: argparse.Namespace) -> int:
    from mlci import paths
    from mlci.config import load_params
    from mlci.monitoring import drift as drift_

    params = load_params(args.params)
    startup.loaded()
    report = drift_.run(params, args.current, args.reference or paths.TRAIN, args.out_dir)
    print(drift_.summary_text(report))
    print(f"written: {', '.join(report['written'])}", file=sys.stderr)
    return int(report["exit_code"])


def staleness(args: argparse.Namespace) -> int:
    from mlci.config import load_params
    from mlci.monitoring import model_age

    params = load_params(args.params)
    startup.loaded()
    result = model_age.staleness(params.monitor)
    print(json.dumps(result, indent=2) if args.json else model_age.summary_text(result))
    return 1 if result["stale"] else 0


def monitor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--current", required=True, help="batch: path, folder or fsspec URL")
    p.add_argument("--publish", action="store_true", help="open/update the GitHub issue")
    p.add_argument("--dispatch-retrain", action="store_true", help="start retrain on drift")


def retrain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="", help="new data.source (default: keep params.yaml's)")


def retrain_pr_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="main", help="branch the pull request targets")


def monitor(args: argparse.Namespace) -> int:
    from mlci.config import load_params
    from mlci.monitoring import monitor

    params = load_params(args.params)
    startup.loaded()
    result, actions = monitor.run(params, args.current, args.publish, args.dispatch_retrain)
    print(f"monitoring: {result['status']} {result['found'] or ''}".rstrip())
    for action in actions:
        print(f"  {action}")
    return monitor.EXIT.get(result["status"], 0)


def retrain_command(args: argparse.Namespace) -> int:
    from mlci.config import load_params
    from mlci.monitoring import retrain

    load_params(args.params, estimator=True)  # before DVC reads params.yaml or removes outputs
    startup.loaded()
    retrain.retrain(args.source or None)
    print("retrained: dvc.lock, reports/ and the model are updated")
    return 0


def retrain_pr(args: argparse.Namespace) -> int:
    from mlci.monitoring import retrain

    print(retrain.open_pull_request(args.base))
    return 0
