"""Shared fixtures. The expensive ones, ``trained_repo`` and ``trained_fixture``, are real copies
of this repository with a project (the penguins example in tests/fixtures/penguins, or a
generated table from tests/projects.py; real git repositories) on which a real ``dvc repro`` has
run: once per test run, however many pytest-xdist workers share it (tests.helpers.built_once),
each worker then working on its own copy.

The test process imports the example's ``project`` package, not the adopter's: the machinery is
tested on a project it knows, and an adopter's own project is tested through subprocesses in a
copy of the repository as it is (tests/integration/test_this_project.py)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests import adopted
from tests.helpers import (
    EXAMPLE,
    REPO,
    WORKER,
    built_once,
    copy_example,
    copy_repo,
    git,
    make_in,
    run,
    tool_env,
)
from tests.projects import Project, make_project, table

# prometheus_client picks in-memory or multiprocess storage once, when it is first imported, from
# PROMETHEUS_MULTIPROC_DIR; BentoML's /metrics reads the multiprocess files. Set it before any
# test imports prometheus_client (test_server parses /metrics with it), so the in-process service
# tests see their counters whatever order the tests run in. One folder per process: a
# pytest-xdist worker inherits the controller's variable, and two workers counting into one
# folder would see each other's counters. Subprocesses do not inherit it
# (tests.helpers.tool_env): `bentoml serve` makes its own.
if WORKER or "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _counters = tempfile.mkdtemp(prefix=f"mlci-prometheus-{WORKER or 'main'}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _counters
    atexit.register(shutil.rmtree, _counters, ignore_errors=True)

# Before any test module imports mlci.contract (which imports `project`).
sys.path.insert(0, str(EXAMPLE / "src"))
assert "project" not in sys.modules, "the adopter's project was imported before the example's"

__all__ = ["REPO", "copy_repo", "git", "run", "tool_env"]


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (``make test``): one worker more than the cores this process may use. A test
    often waits (a server starting, git, file copies) while its core could run another; with one
    BLAS thread per process (tests/__init__.py) the extra worker takes idle time, not CPU. On 2
    cores: 4 min 47 s against 5 min 8 s for two workers (docs/benchmarks.md).
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 1


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (it names them in nodeids)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``make test`` (pytest-xdist, ``--dist loadgroup``), a module with a test that uses a
    module-scoped fixture (a trained base repository, a running server) runs whole on one worker,
    in file order, so that fixture is built once; every other test goes to whichever worker is
    free. Those modules are queued first: long groups start early, and the many short tests fill
    the workers' gaps at the end. A run without workers keeps pytest's order."""
    if not WORKER:
        return
    shared = {item.path for item in items if _uses_a_shared_fixture(item)}
    for item in items:
        if item.path in shared:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=lambda item: item.path not in shared)  # stable: file order otherwise


def _uses_a_shared_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        fixturedef.scope in ("module", "class", "package")
        for fixturedefs in info.name2fixturedefs.values()
        for fixturedef in fixturedefs
    )


def _fixture_project(root: Path, kind: str) -> Project:
    """The ``Project`` that ``make_project(root, kind)`` returned (the table is generated again:
    the same kind, size and seed give the same table)."""
    df, target, id_column, task = table(kind)
    slices = yaml.safe_load((root / "params.yaml").read_text())["evaluate"]["slices"]
    return Project(root, kind, task, target, id_column, df, slices)


def _own_copy(built: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """Alone, the build itself; under pytest-xdist, this worker's copy of it (two processes
    running dvc or git in one repository would fight over its locks)."""
    if not WORKER:
        return built
    dest = tmp_path_factory.mktemp(name) / built.name
    shutil.copytree(built, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def trained_fixture(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Project]:
    """``trained_fixture(kind)``: a generated fixture project (tests/projects.py) after a real
    ``dvc repro``, its results committed; built once per test run and kind (do not modify it:
    copy it)."""
    projects: dict[str, Project] = {}

    def build(dest: Path, kind: str) -> None:
        make_project(dest, kind)
        run(["dvc", "repro"], dest)
        git(dest, "add", "-A")
        git(dest, "commit", "-qm", "results")

    def get(kind: str) -> Project:
        if kind not in projects:
            built = built_once(tmp_path_factory, f"{kind}/repo", lambda d: build(d, kind))
            projects[kind] = _fixture_project(_own_copy(built, tmp_path_factory, kind), kind)
        return projects[kind]

    return get


@pytest.fixture(scope="session")
def retrained_fixture(
    trained_fixture: Callable[[str], Project], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """``retrained_fixture(kind)``: a copy of ``trained_fixture(kind)`` after ``make retrain
    SOURCE=data/new.csv`` (the fixture's table without its last 30 rows): params, dvc.lock and
    results changed and not committed, as ``make retrain-pr`` finds them. Built once per test run
    and kind, for the two tests that open the retraining pull request (copy it)."""

    def build(dest: Path, kind: str) -> None:
        shutil.copytree(trained_fixture(kind).root, dest, symlinks=True)
        rows = pd.read_csv(dest / "data/fixture.csv", dtype=str)
        rows.iloc[:-30].to_csv(dest / "data/new.csv", index=False)
        retrained = make_in(dest, "retrain", "SOURCE=data/new.csv")
        assert retrained.returncode == 0, retrained.stdout + retrained.stderr

    def get(kind: str) -> Path:
        return built_once(tmp_path_factory, f"retrained-{kind}/repo", lambda d: build(d, kind))

    return get


@pytest.fixture(scope="session")
def adopted_project(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, Path], tuple[Path, str]]:
    """``adopted_project(kind, dest)``: a template copy after `make adopt` on the table ``kind``
    and `make run`, copied to ``dest`` for this test, and what `make adopt` printed. Built once
    per test run and kind (tests/adopted.py)."""

    def build(dest: Path, kind: str) -> None:
        (dest.parent / "adopt.txt").write_text(adopted.build(dest, kind))

    def get(kind: str, dest: Path) -> tuple[Path, str]:
        built = built_once(tmp_path_factory, f"adopted-{kind}/repo", lambda d: build(d, kind))
        shutil.copytree(built, dest, symlinks=True)
        return dest, (built.parent / "adopt.txt").read_text()

    return get


@pytest.fixture(scope="session")
def trained_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy after a real, full ``dvc repro`` (shared: do not modify it)."""

    def build(dest: Path) -> None:
        copy_example(dest)
        run(["dvc", "repro", "--force"], dest)

    return _own_copy(
        built_once(tmp_path_factory, "trained/repo", build), tmp_path_factory, "trained"
    )


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh copy of the example project of your own to change (no pipeline run yet)."""
    return copy_example(tmp_path / "repo")
