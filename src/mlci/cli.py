"""The one command-line entry point. ``dvc.yaml``, the Makefile and the workflows all call it.

    mlci ingest | validate | split | train | evaluate     pipeline stages (dvc.yaml)
    mlci check-params                                      validate params.yaml and stop

A user mistake (bad params, data that breaks the contract, a missing file) prints a message and
exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlci.errors import UserError

EXIT_USER_ERROR = 2


def _stage(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        from mlci.config import load_params

        params = load_params(args.params)
        result = importlib.import_module(f"mlci.{module}").run(params)
        _print_brief(args.command, result)
        return 0

    return run


def _ingest(args: argparse.Namespace) -> int:
    from mlci import data
    from mlci.config import load_params

    _print_brief("ingest", data.ingest(load_params(args.params)))
    return 0


def _split(args: argparse.Namespace) -> int:
    from mlci import data
    from mlci.config import load_params

    _print_brief("split", data.split(load_params(args.params)))
    return 0


def _check_params(args: argparse.Namespace) -> int:
    from mlci.config import load_params

    load_params(args.params)
    print(f"{args.params or 'params.yaml'}: ok")
    return 0


def _print_brief(command: str, result: Any) -> None:
    if command == "validate":
        from mlci.validate import summary_text

        print(summary_text(result))
    elif command == "evaluate":
        print(json.dumps(result["metrics"]["model"], indent=None)[:400])
    elif isinstance(result, dict):
        brief = {k: v for k, v in result.items() if not isinstance(v, dict | list)}
        print(f"{command}: {json.dumps(brief)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlci", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--params", type=Path, default=None, help="params file (default: params.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "ingest": ("read the data source and fix its known problems", _ingest),
        "validate": ("check the ingested data against the data contract", _stage("validate")),
        "split": ("split validated data into train and test sets", _split),
        "train": ("fit the model and the baseline", _stage("train")),
        "evaluate": ("score model and baseline on the test set", _stage("evaluate")),
        "check-params": ("validate params.yaml and exit", _check_params),
    }
    for name, (help_text, func) in commands.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "1")
    sys.exit(main())
