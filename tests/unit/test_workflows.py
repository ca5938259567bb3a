"""Static checks of .github/: what cannot run here must still be right.

Every workflow: zizmor (pedantic, offline) clean, valid against GitHub's workflow schema,
least privilege, actions pinned to commit SHAs, no untrusted expressions inside `run:`, and
every `make` target or `mlci` command it calls exists.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mlci.cli import build_parser
from tests.helpers import BIN, REPO

WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def test_there_are_workflows() -> None:
    names = {p.stem for p in WORKFLOWS}
    assert {"ci", "pr-pipeline", "pr-comment"} <= names


def test_zizmor_pedantic_reports_nothing() -> None:
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--persona", "pedantic", "--no-progress", *WORKFLOWS],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_schema_valid(path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_schema_valid() -> None:
    path = REPO / ".github/dependabot.yml"
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(path.read_text())["updates"]}
    assert {"github-actions", "uv"} <= ecosystems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_pinning(path: Path) -> None:
    wf = load(path)
    assert wf.get("permissions") == {}, "top-level permissions must be {}"
    for name, job in wf["jobs"].items():
        assert "permissions" in job, f"job {name} must declare its permissions"
        assert "write-all" not in str(job["permissions"])
    text = path.read_text()
    for job_name, step in steps(wf):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert PINNED.match(uses), f"{job_name}: {uses} is not pinned to a commit SHA"
            line = next(line for line in text.splitlines() if uses in line)
            assert re.search(r"#\s*v\d", line), f"{uses}: add the version as a comment"
        if uses and uses.startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, job_name
        run = step.get("run", "")
        assert "${{" not in run, f"{job_name}: pass expressions through env:, not into run:"


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, flags=re.M))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_called_command_exists(path: Path) -> None:
    targets = _make_targets()
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    for job_name, step in steps(load(path)):
        for line in step.get("run", "").splitlines():
            for target in re.findall(r"\bmake\s+([a-zA-Z][\w-]*)", line):
                assert target in targets, f"{path.name}/{job_name}: no make target {target!r}"
            for cmd in re.findall(r"\bmlci\s+([a-z][\w-]*)", line):
                assert cmd in commands, f"{path.name}/{job_name}: no mlci command {cmd!r}"


def test_workflows_hold_no_logic() -> None:
    """Each run: step is one make target (or mlci command): the logic lives in tested code."""
    for path in WORKFLOWS:
        for job_name, step in steps(load(path)):
            run = step.get("run")
            if run is None:
                continue
            lines = [line for line in run.strip().splitlines() if line.strip()]
            assert len(lines) == 1, f"{path.name}/{job_name}: {run!r}"
            assert re.match(r"^(make|mlci|uv run) ", lines[0]), f"{path.name}: {lines[0]!r}"


def test_comment_workflow_never_runs_pull_request_code() -> None:
    wf = load(REPO / ".github/workflows/pr-comment.yml")
    assert "workflow_run" in wf["on"]
    for _, step in steps(wf):
        with_ = step.get("with", {})
        assert "ref" not in with_, "the comment job must check out the default branch only"
        assert "setup" not in step.get("run", ""), "no environment from the pull request"
    job = wf["jobs"]["comment"]
    # contents: read for the checkout (private repositories), nothing else can write
    assert job["permissions"] == {
        "actions": "read",
        "contents": "read",
        "pull-requests": "write",
    }
    runs = [step["run"] for _, step in steps(wf) if "run" in step]
    assert runs == [
        'make comment REPORT_DIR="${RUNNER_TEMP}/model-report" HEAD_SHA="${HEAD_SHA}" '
        'RUN_ID="${RUN_ID}"'
    ], "one step posts the comment; nothing is installed (no CML, no Node.js)"


def test_pull_request_pipeline_has_no_secrets_and_read_only_token() -> None:
    path = REPO / ".github/workflows/pr-pipeline.yml"
    assert "secrets." not in path.read_text()
    wf = load(path)
    assert wf["jobs"]["gate"]["permissions"] == {"contents": "read"}
    assert set(wf["on"]) == {"pull_request"}
