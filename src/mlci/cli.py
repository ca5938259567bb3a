"""The one command-line entry point. ``dvc.yaml``, the Makefile and the workflows all call it.

    mlci ingest | validate | split | tune | train | evaluate   pipeline stages (dvc.yaml)
    mlci check-params                                      validate params.yaml and stop
    mlci pull                                              dvc pull, exit 1 if it fails or lacks

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

from mlci import startup
from mlci.adopt import cli as adopt_cli
from mlci.errors import UserError
from mlci.monitoring import cli as monitor_cli
from mlci.serving import image_cli

EXIT_USER_ERROR = 2


def _stage(module: str) -> Callable[[argparse.Namespace], int]:
    """A command that loads params and calls ``run(params)`` of ``mlci.<module>``."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        from mlci.config import load_params

        params = load_params(args.params, estimator=module == "pipeline.train")
        if module == "pipeline.tune" and params.search is not None:
            # The search's hyperparameters, by scikit-learn's rules (seconds of imports: only
            # when there is a search; without one the stage just records train.estimator).
            load_params(args.params, estimator=True)
        stage = importlib.import_module(f"mlci.{module}")
        startup.loaded()
        result = stage.run(params)
        _print_brief(args.command, result)
        return 0

    return run


def _ingest(args: argparse.Namespace) -> int:
    from mlci.config import load_params
    from mlci.pipeline import ingest

    params = load_params(args.params)
    startup.loaded()
    _print_brief("ingest", ingest.ingest(params))
    return 0


def _split(args: argparse.Namespace) -> int:
    from mlci.config import load_params
    from mlci.pipeline import split

    params = load_params(args.params)
    startup.loaded()
    _print_brief("split", split.split(params))
    return 0


def _check_params(args: argparse.Namespace) -> int:
    from mlci.config import load_params

    load_params(args.params, estimator=True)
    print(f"{args.params or 'params.yaml'}: ok")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from mlci import pull

    outcome = pull.pull(args.allow_missing)
    if outcome.exit_code:
        print(f"error: {outcome.message}", file=sys.stderr)
    else:
        print(outcome.message)
    return outcome.exit_code


def _pull_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-missing", action="store_true", help="accept outputs the remote lacks")


def _base_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="git ref to compare with (e.g. origin/main)")


def _report_args(p: argparse.ArgumentParser) -> None:
    _base_arg(p)
    p.add_argument("--out-dir", type=Path, default=Path("reports/pr"))
    p.add_argument("--no-images", action="store_true", help="skip the PNG plots")


def _verify_rel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", required=True, help="the pushed tag, vX.Y.Z")
    p.add_argument("--default-branch", default="main")


def _smoke_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:3000")
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for /readyz")


def _model_card_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", required=True)
    p.add_argument("--image", required=True, help="ghcr.io/owner/repo")
    p.add_argument("--digest", required=True, help="sha256:...")
    p.add_argument("--repository", default=os.environ.get("GITHUB_REPOSITORY", "owner/repo"))


def _github_release_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", required=True, help="the pushed tag, vX.Y.Z")
    p.add_argument("--card", type=Path, default=Path("reports/release/model_card.md"))


def _github_release(args: argparse.Namespace) -> int:
    from mlci import release

    print(f"released {args.tag}: {release.github_release(args.tag, args.card)}")
    return 0


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="CSV or Parquet: a path or an fsspec URL")
    p.add_argument("--output", required=True, type=Path, help="Parquet file to write")
    p.add_argument("--bad-rows", type=Path, default=None, help="default: <output>.bad_rows.csv")
    p.add_argument("--chunk-rows", type=int, default=50_000, help="rows per chunk")


def _predict(args: argparse.Namespace) -> int:
    from mlci.config import load_params
    from mlci.serving import batch

    load_params(args.params)  # the contract and params agree before any row is read
    startup.loaded()
    if args.chunk_rows < 1:
        raise UserError(f"--chunk-rows: expected a positive number; got {args.chunk_rows}")
    done = batch.predict(args.input, args.output, args.bad_rows, args.chunk_rows)
    print(
        f"predict: {done.scored} of {done.rows} rows scored with model {done.model_version} "
        f"-> {done.output}; {done.bad_rows} bad rows ({done.problems} problems) -> "
        f"{done.bad_rows_file}"
    )
    return 0


# Extra arguments per subcommand: name -> function that adds them to its parser.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "report": _report_args,
    "gate": _base_arg,
    "pr-check": _report_args,
    "pull": _pull_args,
    "drift": monitor_cli.drift_arguments,
    "staleness": monitor_cli.staleness_arguments,
    "verify-release": _verify_rel_args,
    "smoke-test": _smoke_args,
    "model-card": _model_card_args,
    "github-release": _github_release_args,
    "monitor": monitor_cli.monitor_arguments,
    "retrain": monitor_cli.retrain_arguments,
    "retrain-pr": monitor_cli.retrain_pr_arguments,
    "adopt": adopt_cli.arguments,
    "predict": _predict_args,
}


def _verify_rel(args: argparse.Namespace) -> int:
    from mlci import release

    startup.loaded()
    out = release.verify(args.tag, args.default_branch)
    print(f"release {args.tag} may ship: {json.dumps(out)}")
    return 0


def _smoke(args: argparse.Namespace) -> int:
    from mlci import release

    startup.loaded()
    for line in release.smoke(args.url, args.wait):
        print(f"ok: {line}")
    return 0


def _model_card(args: argparse.Namespace) -> int:
    from mlci import release

    print(release.model_card(args.version, args.image, args.digest, args.repository))
    return 0


def _check_stale(args: argparse.Namespace) -> int:
    from mlci import history, paths

    stale = history.stale_stages()
    if not stale:
        print("dvc.lock is up to date with code, params and data")
        return 0
    for stage, reasons in stale.items():
        print(f"stale: {stage}: {'; '.join(reasons)}", file=sys.stderr)
    print(f"run `make run`, then commit: {paths.commit_command('Update results')}", file=sys.stderr)
    return 1


def _report(args: argparse.Namespace) -> int:
    from mlci.review import report

    startup.loaded()
    report.write(args.base, args.out_dir, images=not args.no_images)
    print((args.out_dir / "report.md").read_text())
    print(f"written: {args.out_dir / 'report.md'}", file=sys.stderr)
    return 0


def _gate(args: argparse.Namespace) -> int:
    from mlci.review import report

    startup.loaded()
    verdict = report.compare(args.base).verdict
    print(verdict.summary)
    for check in verdict.failures:
        print(f"  - {check.detail}")
    for note in verdict.notes:
        print(f"  note: {note}")
    return 0 if verdict.passed else 1


def _pr_check(args: argparse.Namespace) -> int:
    """What the pull-request workflow runs: never stops before the report is written, once
    params.yaml passes (a refused one stops here, before DVC reads it or removes outputs)."""
    from mlci import history, run_guard
    from mlci.config import load_params
    from mlci.review import report

    load_params(args.params, estimator=True)
    startup.loaded()
    stale = history.stale_stages()  # before repro: afterwards dvc.lock would look fresh
    repro = run_guard.run_tied(["dvc", "repro"], capture_output=True, text=True)
    sys.stdout.write(repro.stdout)
    sys.stderr.write(repro.stderr)
    c = report.write(
        args.base,
        args.out_dir,
        images=not args.no_images,
        stale=stale,
        extra={"repro_exit_code": repro.returncode},
    )
    report.write_pr_info(args.out_dir)
    print(c.verdict.summary)
    if repro.returncode != 0 and c.verdict.passed:
        print("dvc repro failed: see its output above", file=sys.stderr)
        return 1
    return 0 if c.verdict.passed else 1


def _print_brief(command: str, result: Any) -> None:
    if command == "validate":
        from mlci.findings import summary_text

        print(summary_text(result))
    elif command == "evaluate":
        print(json.dumps(result["metrics"]["model"], indent=None)[:400])
    elif isinstance(result, dict):
        brief = {k: v for k, v in result.items() if not isinstance(v, dict | list)}
        print(f"{command}: {json.dumps(brief)}")


def _with_release_checks(
    func: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """An image command, given the release smoke test and a valid record (serving, a phase,
    does not import the release layer)."""

    def run(args: argparse.Namespace) -> int:
        from mlci import release

        args.smoke = lambda url: release.smoke(url, wait_seconds=5)
        args.example_record = release.example_record
        return func(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlci", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--params", type=Path, default=None, help="params file (default: params.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "ingest": ("read the data source and fix its known problems", _ingest),
        "validate": (
            "check the ingested data against the data contract",
            _stage("pipeline.validate"),
        ),
        "split": ("split validated data into train and test sets", _split),
        "tune": (
            "choose estimator and hyperparameters (params.yaml search:)",
            _stage("pipeline.tune"),
        ),
        "train": ("fit the model and the baseline", _stage("pipeline.train")),
        "evaluate": ("score model and baseline on the test set", _stage("pipeline.evaluate")),
        "check-params": ("validate params.yaml and exit", _check_params),
        "predict": ("score a table (batch) with the approved model", _predict),
        "pull": ("dvc pull; exit 1 when the remote fails or lacks outputs", _pull),
        "check-stale": ("fail if dvc.lock is out of date with code, params or data", _check_stale),
        "report": ("write the pull-request report against a base git ref", _report),
        "gate": ("exit 1 when the model fails the merge gate against a base ref", _gate),
        "pr-check": ("CI: staleness, dvc repro, report and gate in one step", _pr_check),
        "drift": ("compare a batch of current data with the training data", monitor_cli.drift),
        "staleness": ("exit 1 when the production model is too old", monitor_cli.staleness),
        "verify-release": ("check a release tag may ship (on main, fresh, gate)", _verify_rel),
        "smoke-test": ("check a running service: readyz, a valid and an invalid request", _smoke),
        "model-card": ("write reports/release/model_card.md for a release", _model_card),
        "github-release": ("publish the GitHub Release of a tag: the model card", _github_release),
        "monitor": ("scheduled check: drift + staleness, one GitHub issue", monitor_cli.monitor),
        "retrain": (
            "re-run the pipeline, optionally on a new data source",
            monitor_cli.retrain_command,
        ),
        "retrain-pr": (
            "commit re-run results on a branch and open a pull request",
            monitor_cli.retrain_pr,
        ),
        "adopt": (
            "make this project yours: contract, params and plots from a new table",
            adopt_cli.adopt,
        ),
        "register-model": (
            "register the DVC-tracked model in the BentoML store",
            _stage("serving.model_store"),
        ),
        "package": (
            "register the model, build the bento (bentofile.yaml)",
            _stage("serving.packaging"),
        ),
    }
    for name, (help_text, func) in commands.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        ARGUMENTS.get(name, lambda _: None)(p)
    for name, (help_text, func, add_arguments) in image_cli.COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=_with_release_checks(func))
        add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if os.environ.get("DVC_STAGE"):  # a stage of `dvc repro`: stop when the pipeline stops
            from mlci import run_guard

            run_guard.tie_to_pipeline()  # inside the try: dvc already gone is a quiet exit 130
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The `mlci` console script: `main`, then exit without tearing the interpreter down.

    Every DVC stage is a fresh process with scikit-learn, pandas and pyarrow loaded; their
    orderly teardown costs 0.5-0.8 s per stage here and does nothing useful (all files are
    written and closed by then). Tests call `main` directly and are unaffected.

    The collector pauses while the command loads its libraries (mlci.startup).
    """
    startup.pause()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "1")
    sys.exit(main())
