"""dvc.yaml, paths.py and the contract agree with each other."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

from mlci import contract, paths
from tests.helpers import REPO


def declared() -> set[str]:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    found = set()
    for stage in dvc["stages"].values():
        for section in ("outs", "metrics", "deps"):
            for item in stage.get(section, []):
                found.add(next(iter(item)) if isinstance(item, dict) else item)
    return found


def test_every_stage_path_is_declared_in_dvc_yaml() -> None:
    # TIMINGS is machine-dependent on purpose: git-ignored and declared by no stage.
    # Plot data lives in the one declared folder reports/plots (its files depend on the task).
    names = [n for n in dir(paths) if n.isupper() and n not in ("REPORTS", "PLOTS", "TIMINGS")]
    found = declared()
    assert str(paths.PLOTS) in found
    missing = {
        str(p)
        for p in (getattr(paths, n) for n in names)
        if paths.PLOTS not in p.parents and str(p) not in found
    }
    assert not missing, f"paths.py names files dvc.yaml does not declare: {sorted(missing)}"


def test_every_stage_calls_the_cli() -> None:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert list(dvc["stages"]) == ["ingest", "validate", "split", "tune", "train", "evaluate"]
    for name, stage in dvc["stages"].items():
        assert stage["cmd"] == f"mlci {name}"


def test_contract_spec_reads_the_schema() -> None:
    """The spec is the adopter's schema.py, read generically (any contract, any task)."""
    from project import schema

    spec = contract.spec()
    columns = schema.Contract.to_schema().columns
    assert spec.target == schema.TARGET and spec.id_column == (schema.ID_COLUMN or None)
    assert spec.feature_names == [c for c in columns if c not in (spec.target, spec.id_column)]
    for feature in spec.features:
        col = columns[feature.name]
        assert feature.nullable == bool(col.nullable)
        numeric = str(col.dtype).startswith(("float", "int"))
        assert feature.kind == ("numeric" if numeric and not feature.categories else "categorical")
    if spec.task == "classification":
        assert len(spec.classes) >= 2
    else:
        assert str(columns[spec.target].dtype).startswith(("float", "int"))


# ---- the package layout: layers, no circles, small files --------------------------------------

SRC = REPO / "src"
PHASES = ("adopt", "pipeline", "review", "serving", "monitoring")
# Above the phases: they orchestrate them (the command line, and what a release tag must pass).
TOP = ("mlci.cli", "mlci.__main__", "mlci.release")
# A retraining pull request carries the same review report as any other pull request.
CROSS_PHASE_ALLOWED = {("mlci.monitoring.retrain", "mlci.review.report")}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every first-party module ``name`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "project":
        return "project"
    if module in TOP:
        return "top"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in PHASES) else "core"


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, f"import circles: {circles}"


def test_layers_import_only_downwards() -> None:
    wrong = []
    for name, deps in _graph().items():
        mine = _layer(name)
        for dep in deps:
            theirs = _layer(dep)
            if mine == "project" and theirs != "project":
                wrong.append(f"{name} -> {dep}: the adopter's package imports no machinery")
            elif mine == "core" and theirs not in ("core", "project"):
                wrong.append(f"{name} -> {dep}: the core imports no phase (move the need down)")
            elif mine in PHASES and theirs in PHASES and theirs != mine:
                if (name, dep) not in CROSS_PHASE_ALLOWED:
                    wrong.append(f"{name} -> {dep}: a phase imports no other phase")
            elif theirs == "top" and mine != "top":
                wrong.append(f"{name} -> {dep}: nothing imports the command line or release")
    assert not wrong, "\n".join(sorted(wrong))


def test_comment_poster_needs_only_the_standard_library() -> None:
    """The job holding the write token runs it without installing anything: every first-party
    module that ``mlci.review.comment`` imports, transitively (with the packages above each),
    imports only the standard library and such modules."""
    known = _modules()
    todo, seen, wrong = ["mlci.review.comment"], set(), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages run first
        path = known[name]
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                anchor = package[: len(package) - node.level + 1] if node.level else []
                base = ".".join([*anchor, *filter(None, [node.module])])
                subs = [f"{base}.{a.name}" for a in node.names]  # "from package import module"
                mods = [sub if sub in known else base for sub in subs]
            else:
                continue
            for mod in mods:
                if mod in known:
                    todo.append(mod)
                elif mod.split(".")[0] not in sys.stdlib_module_names:
                    wrong.append(f"{name} imports {mod}")
    assert {"mlci", "mlci.review", "mlci.review.comment"} < seen
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_source_file_is_long() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by responsibility (over {MAX_LINES} lines): {long}"


def test_the_adopters_package_stands_apart() -> None:
    adopter = {p.name for p in (SRC / "project").glob("*.py")}
    assert {"schema.py", "cleaning.py"} <= adopter
    assert not (SRC / "mlci" / "schema.py").exists()


def test_every_cli_stage_module_exists() -> None:
    """`_stage("pipeline.train")` imports its module only when the command runs: check now."""
    import importlib
    import re

    names = re.findall(r'_stage\("([\w.]+)"\)', (SRC / "mlci" / "cli.py").read_text())
    assert len(names) >= 5
    for name in names:
        assert callable(importlib.import_module(f"mlci.{name}").run), name
