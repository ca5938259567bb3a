"""The four pull requests of issue 16's done-when, in real git repositories with real `dvc repro`,
each report posted through the stand-in GitHub API (tests/fake_github.py); the posted bodies are
written to OUT/<name>.md for render.mjs.

    .venv/bin/python -m bench.render_comment.scenarios OUT [name ...]

Names: example-c001 (the example with C: 0.01), one-row (a change that flips one test row),
unchanged (a docs-only change), diabetes-alpha (the diabetes regression example, alpha 1 → 0.1).
Not part of `make test`: it takes minutes and its output is for looking at.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.fake_github import capture_post
from tests.helpers import copy_example, git, run
from tests.integration.test_pr_report import set_param

WORK = Path("/tmp/mlci-render-scenarios")
# A pull request that changes the prediction of exactly one test row: C 0.06 → 0.05 (found by a
# scan of C over the example's split; the report's "Rows that changed answer" line shows it).
ONE_ROW_C = (0.06, 0.05)


def make_run(repo: Path) -> None:
    """What `make run` runs (check-params, then dvc repro), with this checkout's environment:
    `make` itself would build a fresh .venv in every clone."""
    run(["mlci", "check-params"], repo)
    run(["dvc", "repro"], repo)


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def example_base(c: float | None = None) -> Path:
    base = WORK / ("example-base" if c is None else f"example-base-c{c}")
    if not (base / "reports/metrics.json").is_file():
        shutil.rmtree(base, ignore_errors=True)
        copy_example(base)
        if c is not None:
            set_param(base, "train.estimator.params.C", c)
        make_run(base)
        commit(base, "example: results")
    return base


def diabetes_base() -> Path:
    from sklearn.datasets import load_diabetes

    base = WORK / "diabetes-base"
    if not (base / "reports/metrics.json").is_file():
        shutil.rmtree(base, ignore_errors=True)
        copy_example(base)
        source = WORK / "diabetes.csv"
        load_diabetes(as_frame=True, scaled=False).frame.to_csv(source, index=False)
        run(["mlci", "adopt", "--data", str(source), "--target", "target"], base)
        commit(base, "adopt the diabetes table")
        make_run(base)
        commit(base, "first results")
    return base


def branch(base: Path, name: str) -> Path:
    repo = WORK / name
    shutil.rmtree(repo, ignore_errors=True)
    git(WORK, "clone", "-q", str(base), str(repo))
    # The clone shares the base's DVC cache, as a CI runner's restored cache would.
    shutil.copytree(base / ".dvc" / "cache", repo / ".dvc" / "cache", dirs_exist_ok=True)
    make_run(repo)
    git(repo, "checkout", "-qb", name)
    return repo


def scenario(name: str) -> Path:
    if name == "diabetes-alpha":
        repo = branch(diabetes_base(), name)
        set_param(repo, "train.estimator.params.alpha", 0.1)
    elif name == "one-row":
        repo = branch(example_base(ONE_ROW_C[0]), name)
        set_param(repo, "train.estimator.params.C", ONE_ROW_C[1])
    else:
        repo = branch(example_base(), name)
        if name == "example-c001":
            set_param(repo, "train.estimator.params.C", 0.01)
        elif name == "unchanged":
            (repo / "docs-note.md").write_text("A change that does not touch the model.\n")
        else:
            raise SystemExit(f"unknown scenario {name!r}")
    make_run(repo)
    commit(repo, name)
    run(["mlci", "report", "--base", "origin/main"], repo, check=False)
    return repo


def main(argv: list[str]) -> int:
    out = Path(argv[0]).resolve()
    names = argv[1:] or ["example-c001", "one-row", "unchanged", "diabetes-alpha"]
    out.mkdir(parents=True, exist_ok=True)
    # Fresh bases every time: each copy carries this checkout's code as it is now.
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    for name in names:
        repo = scenario(name)
        # What `make report-link` records after upload-artifact on GitHub (run 4242 is the
        # stand-in's run): the comment then links the artifact itself.
        link = "https://github.com/octo/penguins/actions/runs/4242/artifacts/1234567\n"
        (repo / "reports/pr/artifact-url.txt").write_text(link)
        body = capture_post(repo / "reports/pr", repo="octo/penguins")
        (out / f"{name}.md").write_text(body)
        print(f"{name}: {len(body)} characters -> {out / (name + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
