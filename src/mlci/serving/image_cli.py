"""Command-line glue for the release image: ``mlci containerize``, ``smoke-image``,
``push-image`` and ``check-image`` (the Makefile's targets of the same names). Free of heavy
imports, so building the CLI's parser stays fast. The release smoke test and a valid request
record come in on ``args.smoke`` and ``args.example_record`` (:mod:`mlci.cli` sets them from
:mod:`mlci.release`, the layer above the phases)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

Command = tuple[str, Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]]


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, help="repository, e.g. ghcr.io/owner/repo")
    p.add_argument("--version", required=True, help="the release version, X.Y.Z")


def _containerize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bento", default="mlci_classifier:latest")
    _image_args(p)
    p.add_argument(
        "--standin-base",
        action="store_true",
        help="build on the Debian stand-in of the base image when it cannot be pulled (tests)",
    )


def _smoke_args(p: argparse.ArgumentParser) -> None:
    _image_args(p)
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for /readyz")


def _containerize(args: argparse.Namespace) -> int:
    from mlci.serving import image_check

    ref = f"{args.image}:{args.version}"
    built = image_check.containerize(args.bento, ref, standin=args.standin_base)
    print(f"built {built['image']} on {built['base']} ({built['base_source']})")
    return 0


def _smoke(args: argparse.Namespace) -> int:
    from mlci.serving import image_run

    for line in image_run.smoke_image(f"{args.image}:{args.version}", args.smoke, args.wait):
        print(f"ok: {line}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from mlci.serving import registry

    digest, outcome = registry.push(args.image, args.version)
    print(outcome)
    print(f"digest={digest}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from mlci.serving import image_check

    ref = f"{args.image}:{args.version}"
    report = image_check.check_image(ref, args.smoke, args.example_record())
    for line in report.pop("checked"):
        print(f"ok: {line}")
    print(f"ok: {report['predictions_logged']} predictions reached the log volume")
    print(
        f"image {report['image']}: {report['size_mb']} MB unpacked, /readyz after "
        f"{report['seconds_to_ready']} s "
        f"({'on the Debian stand-in base' if report['base_is_standin'] else 'official base'})"
    )
    print(json.dumps(report))
    return 0


COMMANDS: dict[str, Command] = {
    "containerize": (
        "build IMAGE:VERSION from the packaged Bento",
        _containerize,
        _containerize_args,
    ),
    "smoke-image": ("run IMAGE:VERSION on a free port and smoke-test it", _smoke, _smoke_args),
    "push-image": ("push IMAGE:VERSION; never over a different image", _push, _image_args),
    "check-image": ("run IMAGE:VERSION as deploy/k8s runs it; size, start", _check, _image_args),
}
