"""``mlci adopt``: one command from a new table (CSV or Parquet) to a working project.

Infers the data contract (``mlci.adopt.infer``), renders the adopter's package
(``mlci.adopt.render``), copies the table into ``data/``, resets the dataset-specific parts of
``params.yaml`` (keeping its comments) and the task's plots in ``dvc.yaml``
(``mlci.adopt.configure``), and removes the bundled example's results. Every check runs before the
first write, and the rendered contract must validate the very table it came from: a refusal
leaves the repository as it was. It refuses to replace uncommitted work, or a contract it
generated before, unless ``--force``.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pandera.pandas as pa
import yaml

from mlci import files, paths, tables
from mlci import params_file as params_file_check
from mlci.adopt.configure import edit_params, render_dvc_yaml
from mlci.adopt.infer import Plan, infer
from mlci.adopt.render import MARKER, notes, render_cleaning, render_schema, ruff_format
from mlci.config import parse_params
from mlci.errors import UserError

SCHEMA = Path("src/project/schema.py")
CLEANING = Path("src/project/cleaning.py")
DVC_YAML = Path("dvc.yaml")
DVC_LOCK = Path("dvc.lock")
RAW_DIR = Path("data/raw")
SAMPLE = Path("data/sample/penguins-raw.csv")  # the bundled example and its licence note
SAMPLE_NOTE = Path("data/sample/README.md")
# The example's results: a new table makes every one of them wrong.
RESULTS = (
    Path("models/model.skops"),
    Path("models/baseline.skops"),
    Path("models/model_meta.json"),
)
RESULT_DIRS = (Path("data/interim"), Path("data/processed"), Path("reports/plots"))
LARGE = 50 * 2**20  # bigger files belong in DVC, not git (GitHub refuses files over 100 MB)


@dataclass
class Outcome:
    plan: Plan
    source: str  # data.source, relative to the repository
    copied: bool
    written: list[tuple[str, str]] = field(default_factory=list)  # (path, what it is)
    removed: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)


def adopt(
    data: Path,
    target: str,
    id_column: str | None = None,
    task: str | None = None,
    force: bool = False,
    root: Path = Path(),
    params_file: Path = Path("params.yaml"),
) -> Outcome:
    root = root.resolve()
    params_path = params_file if params_file.is_absolute() else root / params_file
    for need in (params_path, root / DVC_YAML, root / SCHEMA.parent):
        if not need.exists():
            raise UserError(f"{need}: not found; run mlci adopt from the repository's root")
    data = data.expanduser().resolve()
    # Checked first (no anchors/aliases, sane size): an alias bomb never reaches a YAML loader.
    params_text = params_file_check.read_checked(params_path)
    try:
        split = (yaml.safe_load(params_text) or {}).get("split") or {}
    except (yaml.YAMLError, AttributeError) as err:
        raise UserError(f"{params_file}: not a valid params file: {err}") from None
    test_size = float(split.get("test_size", 0.25))

    _refuse_to_destroy(root, force, params_path)
    plan = infer(data, target, id_column, task, test_size)
    plan.notes += notes(plan)
    source, copy = _destination(root, data)
    schema_src = ruff_format(render_schema(plan, source), root, str(SCHEMA))
    cleaning_src = ruff_format(render_cleaning(plan, source), root, str(CLEANING))
    self_check(plan, schema_src, cleaning_src)
    settings: list[str] = []
    new_params = edit_params(params_text, plan, source, settings)
    try:
        params_file_check.check_text(new_params, params_path)
        parse_params(yaml.safe_load(new_params), params_path)
    except UserError as err:
        raise UserError(f"mlci adopt would write an invalid params.yaml (a bug): {err}") from None
    dvc_text = render_dvc_yaml((root / DVC_YAML).read_text(encoding="utf-8"), plan.task)

    # Nothing was written up to here.
    out = Outcome(plan, source, copied=copy)
    if copy:
        dest = root / source
        files.atomic_write(dest, lambda tmp: shutil.copyfile(data, tmp))
        out.written.append((source, f"a copy of {data}"))
    files.write_text(root / SCHEMA, schema_src)
    files.write_text(root / CLEANING, cleaning_src)
    files.write_text(params_path, new_params)
    files.write_text(root / DVC_YAML, dvc_text)
    cleans = "drops rows without a target" if plan.target_missing else "passes the table through"
    out.written += [
        (str(SCHEMA), f"the data contract: {_describe(plan)}"),
        (str(CLEANING), f"clean_raw {cleans}"),
        (str(params_file), "the dataset's settings:"),
        (str(DVC_YAML), f"the plots of a {plan.task} model"),
    ]
    out.removed = _remove_results(root, source)
    out.settings = settings
    return out


def _describe(plan: Plan) -> str:
    numeric = sum(c.observed is not None for c in plan.features)
    closed = sum(c.categories is not None for c in plan.features)
    open_ = len(plan.features) - numeric - closed
    text = f"{numeric} numeric, {closed} categorical" + (f", {open_} open-set" * bool(open_))
    text += f" feature(s), target {plan.target!r}"
    return text + (f", ID {plan.id_column!r}" if plan.id_column else "")


def _refuse_to_destroy(root: Path, force: bool, params_path: Path) -> None:
    schema = root / SCHEMA
    if not force and schema.is_file() and MARKER in schema.read_text(encoding="utf-8"):
        raise UserError(
            f"{SCHEMA} was already {MARKER}: adopting again replaces it and any review edits "
            "in it. Commit your work first, then run again with --force (FORCE=1 for make)"
        )
    if force:
        return
    paths = [SCHEMA, CLEANING, params_path, DVC_YAML, DVC_LOCK, Path("reports"), SAMPLE.parent]
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *map(str, paths)],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError as err:  # no git on PATH
        done = subprocess.CompletedProcess([], 1, "", str(err))
    if done.returncode != 0:
        raise UserError(
            f"{root}: not a git repository (or git failed: {done.stderr.strip()}), so mlci "
            "adopt cannot check for uncommitted work it would overwrite. Commit first, or pass "
            "--force"
        )
    changed = [line[3:] for line in done.stdout.splitlines() if line.strip()]
    if changed:
        raise UserError(
            f"uncommitted changes to files mlci adopt overwrites or removes: {changed}. "
            "Commit or stash them first, or pass --force to replace them"
        )


def _destination(root: Path, data: Path) -> tuple[str, bool]:
    """(data.source relative to the repository, whether to copy the table there)."""
    try:
        rel = data.relative_to(root)
    except ValueError:
        rel = None
    removed = (*RESULT_DIRS, Path("reports"), Path("models"))
    if rel is not None and not any(rel.is_relative_to(d) for d in removed):
        return rel.as_posix(), False
    dest = RAW_DIR / data.name
    target = root / dest
    if target.exists():
        if target.is_file() and files.sha256_file(target) == files.sha256_file(data):
            return dest.as_posix(), False  # the same table, already copied
        raise UserError(
            f"{dest} already exists and differs from {data}: mlci adopt never overwrites data. "
            "Rename your file, or move that one away, and run again"
        )
    return dest.as_posix(), True


@contextmanager
def _rendered_package(schema_src: str, cleaning_src: str) -> Iterator[tuple[ModuleType, ...]]:
    """Import the rendered files as the ``project`` package, then restore the real one."""
    with tempfile.TemporaryDirectory(prefix="mlci-adopt-") as tmp:
        package = Path(tmp, "project")
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "schema.py").write_text(schema_src, encoding="utf-8")
        (package / "cleaning.py").write_text(cleaning_src, encoding="utf-8")
        saved = {k: v for k, v in sys.modules.items() if k == "project" or k.startswith("project.")}
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, tmp)
        importlib.invalidate_caches()
        try:
            try:
                schema = importlib.import_module("project.schema")
                cleaning = importlib.import_module("project.cleaning")
            except Exception as err:  # a bug in the renderer, but still no traceback
                raise UserError(
                    f"mlci adopt rendered a contract that does not import ({err!r}); nothing "
                    "was written. Please report this with the table's column names and types"
                ) from None
            yield schema, cleaning
        finally:
            sys.path.remove(tmp)
            for name in [k for k in sys.modules if k == "project" or k.startswith("project.")]:
                del sys.modules[name]
            sys.modules.update(saved)


def self_check(plan: Plan, schema_src: str, cleaning_src: str) -> None:
    """The rendered contract, after the rendered cleaning, validates the table it came from."""
    with _rendered_package(schema_src, cleaning_src) as (schema, cleaning):
        cleaned, _ = cleaning.clean_raw(plan.table.copy())
        cleaned, _ = tables.drop_unlabelled(cleaned, plan.target)  # as the ingest stage does
        try:
            schema.Contract.to_schema().validate(cleaned, lazy=True)
        except pa.errors.SchemaErrors as err:
            cases = err.failure_cases.head(5)
            shown = "; ".join(
                f"column {r['column']!r} {r['check']}: {r['failure_case']!r}"
                for _, r in cases.iterrows()
            )
            raise UserError(
                f"the contract inferred from {plan.source} does not validate that table itself "
                f"({len(err.failure_cases)} failure(s), e.g. {shown}); nothing was written. "
                "Please report this with the table's column types"
            ) from None


def _remove_results(root: Path, source: str) -> list[str]:
    removed = []
    for rel in (*RESULTS, DVC_LOCK):
        if (root / rel).is_file():
            (root / rel).unlink()
            removed.append(str(rel))
    reports = root / "reports"
    for path in sorted([*reports.glob("*.json"), *reports.glob("*.md")]):
        path.unlink()
        removed.append(str(path.relative_to(root)))
    for folder in RESULT_DIRS:
        # DVC's own .gitignore files stay: the stages still write these folders.
        for path in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            if path.name == ".gitignore":
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(str(path.relative_to(root)))
    if source != SAMPLE.as_posix():
        for rel in (SAMPLE, SAMPLE_NOTE):
            if (root / rel).is_file():
                (root / rel).unlink()
                removed.append(str(rel))
        if (root / SAMPLE.parent).is_dir() and not any((root / SAMPLE.parent).iterdir()):
            (root / SAMPLE.parent).rmdir()
    return removed


def summary(out: Outcome) -> list[str]:
    """What was written, what to review, what to commit: the command's output."""
    plan = out.plan
    lines = [
        f"adopted {plan.source} ({plan.rows} rows): {plan.task} of {plan.target!r}",
        f"  task: {plan.task_reason}",
        "written:",
    ]
    width = max(len(path) for path, _ in out.written)
    for path, what in out.written:
        lines.append(f"  {path:<{width}}  {what}")
        if what == "the dataset's settings:":
            lines += [f"  {'':<{width}}    {s}" for s in out.settings]
    if out.removed:
        groups: dict[str, int] = {}
        for path in out.removed:  # reports/plots/roc/a.csv -> reports/plots/
            parts = Path(path).parts
            key = path if len(parts) == 1 else "/".join(parts[: min(2, len(parts) - 1)]) + "/"
            groups[key] = groups.get(key, 0) + 1
        shown = ", ".join(
            k if n == 1 and not k.endswith("/") else f"{k} ({n})" for k, n in groups.items()
        )
        lines.append(f"removed the example's results: {shown}")
    if plan.notes:
        lines += ["notes:", *(f"  - {n}" for n in plan.notes)]
    big = plan.source.stat().st_size > LARGE
    data = f".venv/bin/dvc add {out.source}  (large: DVC tracks it, git gets the .dvc file)"
    lines += [
        "next:",
        f"  1. review {SCHEMA}: bounds, categories, nullable (its docstring says what to check)",
        "     and params.yaml (gate, slices); edit cleaning.py if the source has known problems",
        "  2. make run      (the whole pipeline on your data: validate, train, evaluate)",
        *([f"  3. {data}"] if big else []),
        f"  {4 if big else 3}. commit every file the project commits (models/model_meta.json too):",
        f"     {paths.commit_command('Adopt mlci for my data')}",
        "  The first pull request is gated on beating the baseline; later ones on no regression",
        "  against the base branch (gate.max_regression). Add floors in gate.minimum/maximum.",
    ]
    return lines
