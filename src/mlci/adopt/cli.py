"""Command-line glue for ``mlci adopt`` (``make adopt``). Free of heavy imports, so building the
CLI's parser stays fast for every other command."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlci import startup


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="your table: a CSV or Parquet file")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("--id", dest="id_column", default=None, help="the column naming each row")
    p.add_argument("--task", choices=("classification", "regression"), default=None)
    p.add_argument("--force", action="store_true", help="replace uncommitted or adopted work")


def adopt(args: argparse.Namespace) -> int:
    from mlci.adopt import run

    startup.loaded()
    outcome = run.adopt(
        args.data,
        args.target,
        args.id_column,
        args.task,
        args.force,
        params_file=args.params or Path("params.yaml"),
    )
    print("\n".join(run.summary(outcome)))
    return 0
