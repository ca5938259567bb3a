"""`mlci report` / `mlci gate` / `mlci pr-check` in real git repositories with real commits.

One base commit (a deliberately middling model, C=0.05) and one branch per scenario: better,
worse beyond tolerance, equal, data breaking the contract, changed data, a param added, stale
results, a base with no metrics yet, a dropped feature, and a pull-request run on GitHub's
merge commit. (tests/integration/test_pr_report_tasks.py: the same for a regression project.)
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlci.review import mermaid
from tests.conftest import git, run
from tests.unit.test_report_charts import mermaid_blocks, parse_xychart, table_rows

# Every link or image target that is not a URL or an in-page anchor: the report's local files,
# found independently of the code that declares them.
_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+[^)]*)?\)")
_HTML_REF = re.compile(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def local_links(markdown: str) -> list[str]:
    targets = _LINK.findall(markdown) + _HTML_REF.findall(markdown)
    return sorted({t for t in targets if not _SCHEME.match(t) and not t.startswith("#")})


pytestmark = pytest.mark.slow
# Outside GitHub Actions unless a test says otherwise (these tests may run inside a workflow).
NOT_ACTIONS = {"GITHUB_EVENT_PATH": "", "GITHUB_SERVER_URL": "", "GITHUB_REPOSITORY": ""}


def set_param(repo: Path, dotted: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *parents, last = dotted.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


@pytest.fixture(scope="module")
def base_repo(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The shared trained example (its results not committed yet): only train and evaluate run.
    repo = tmp_path_factory.mktemp("base") / "repo"
    shutil.copytree(trained_repo, repo, symlinks=True)
    set_param(repo, "train.estimator.params.C", 0.05)
    run(["dvc", "repro"], repo)
    commit_all(repo, "base: C=0.05")
    return repo


@pytest.fixture
def branch(base_repo: Path, tmp_path: Path):
    """Make a branch in a private copy of the base repository."""

    def make(name: str) -> Path:
        repo = tmp_path / name
        shutil.copytree(base_repo, repo, symlinks=True)
        git(repo, "checkout", "-qb", name)
        return repo

    return make


@pytest.fixture(scope="module")
def better_repo(
    base_repo: Path, trained_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Branch ``better``: C back at 1.0, committed (two tests start from it: copy). Its results
    are the shared trained example's, which ran on exactly these inputs (the pipeline is
    deterministic, test_pipeline.py), copied rather than trained again; DVC confirms they are
    the results of these inputs."""
    repo = tmp_path_factory.mktemp("better") / "repo"
    shutil.copytree(base_repo, repo, symlinks=True)
    git(repo, "checkout", "-qb", "better")
    set_param(repo, "train.estimator.params.C", 1.0)
    shutil.rmtree(repo / "reports")
    shutil.copytree(trained_repo / "reports", repo / "reports")
    for rel in ("dvc.lock", *(f"models/{m.name}" for m in (trained_repo / "models").glob("*.*"))):
        shutil.copy2(trained_repo / rel, repo / rel)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo).stdout
    commit_all(repo, "stronger regularisation off")
    return repo


@pytest.fixture
def better(better_repo: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "better"
    shutil.copytree(better_repo, repo, symlinks=True)
    return repo


def report(repo: Path, *extra: str) -> tuple[str, dict]:
    run(["mlci", "report", "--base", "main", *extra], repo, **NOT_ACTIONS)
    text = (repo / "reports/pr/report.md").read_text()
    return text, json.loads((repo / "reports/pr/verdict.json").read_text())


def gate(repo: Path) -> tuple[int, str]:
    result = run(["mlci", "gate", "--base", "main"], repo, check=False, **NOT_ACTIONS)
    return result.returncode, result.stdout + result.stderr


def metric_row(text: str, metric: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {metric} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_better_model_passes(better: Path) -> None:
    repo = better
    text, verdict = report(repo)
    assert verdict["passed"] is True
    assert text.startswith("## ✅ Model gate passed")
    _, base, mine, change, noise, mark = metric_row(text, "accuracy")
    # A 95% interval beside the change, whether it is beyond noise, and the gate's mark.
    assert float(mine) > float(base) and re.fullmatch(
        r"\+0\.\d{4} \[[-+]0\.\d{3}, \+0\.\d{3}\]", change
    )
    assert noise in ("**better**", "within noise") and mark == "✅"
    assert "| `train.estimator.params.C` | `0.05` | `1.0` |" in text
    assert "Data unchanged against base." in text
    assert "| Adelie |" in text  # confusion matrix as a table
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    base = git(repo, "rev-parse", "main").stdout.strip()
    # Outside Actions: the local HEAD and the base ref, short shas, no links.
    assert f"This branch at `{head[:7]}` against `main` at `{base[:7]}`." in text
    # PNGs are linked, never embedded, and are the only local files the report names.
    assert "![" not in text
    assert local_links(text) == sorted(["roc.png", "precision_recall.png", "importance.png"])
    for image in local_links(text):
        assert (repo / "reports/pr" / image).stat().st_size > 1000
        assert f"]({image})" in text
    assert_charts_readable(text, classes=["Adelie", "Chinstrap", "Gentoo"])
    assert len(text) < 30_000
    assert gate(repo)[0] == 0


def assert_charts_readable(text: str, classes: list[str]) -> None:
    """Each chart is a well-formed Mermaid block with a legend (both sides named) in the two
    sides' colours, and a table holds the same numbers; importance is a table sorted by this
    branch's importance."""
    lines = text.splitlines()
    blocks = [parse_xychart(b) for b in mermaid_blocks(text)]
    assert len(blocks) <= 2 * len(classes)  # flat curves are one line of text, not a chart
    for chart in blocks:
        assert [n.split()[0] for n in chart["names"]] == ["base", "this"]
        assert chart["colours"] == [mermaid.BASE_COLOUR, mermaid.HEAD_COLOUR]
    rows = table_rows(lines, "| feature |")
    mine = [float(r[2]) for r in rows]
    assert mine == sorted(mine, reverse=True) and len(rows) >= 3
    for r in rows:
        assert float(r[3]) == pytest.approx(float(r[2]) - float(r[1]), abs=0.0011)


def test_regression_beyond_tolerance_fails(branch) -> None:
    repo = branch("worse")
    set_param(repo, "train.estimator.params.C", 0.02)
    run(["dvc", "repro"], repo)
    commit_all(repo, "more regularisation")

    text, verdict = report(repo, "--no-images")
    assert verdict["passed"] is False
    failed = {(c["kind"], c["metric"]) for c in verdict["checks"] if not c["passed"]}
    # The example judges regressions on the 95% interval (gate.rule: interval): on 86 test
    # rows the accuracy and F1 drops are within noise, the log-loss rise is not.
    assert failed == {("regression", "log_loss")}
    # The absolute floors still hold: it is the regression that fails it.
    assert verdict["summary"].startswith("FAILED: log_loss rose ")
    assert "rule: interval" in verdict["summary"]
    _, base, mine, _, noise, mark = metric_row(text, "log_loss")
    assert float(mine) > float(base) and noise == "**worse**" and mark == "❌ vs base"
    _, base, mine, _, noise, mark = metric_row(text, "f1_macro")
    assert float(mine) < float(base) and noise == "within noise" and mark == "✅"
    code, out = gate(repo)
    assert code == 1 and "FAILED" in out and "allowed worsening 0.05" in out


def test_unchanged_model_passes_with_no_param_changes(branch) -> None:
    repo = branch("docs")
    (repo / "README.md").write_text("docs only\n")
    commit_all(repo, "docs")

    text, verdict = report(repo, "--no-images")
    assert verdict["passed"] is True
    assert "No parameter changed." in text
    assert metric_row(text, "accuracy")[3] == "0"
    assert "unchanged at" in json.dumps(verdict["checks"])


def test_added_param_is_listed(branch) -> None:
    repo = branch("tol")
    set_param(repo, "train.estimator.params.tol", 0.0001)
    run(["dvc", "repro"], repo)
    commit_all(repo, "add tol")
    text, _ = report(repo, "--no-images")
    assert "| `train.estimator.params.tol` | *(absent)* | `0.0001` |" in text


def test_stale_results_fail_with_the_command_to_run(branch) -> None:
    repo = branch("stale")
    set_param(repo, "train.estimator.params.C", 1.0)
    commit_all(repo, "changed params, forgot to re-run")

    code, out = gate(repo)
    assert code == 1
    assert "stale" in out and "param train" in out and "make run" in out
    stale = run(["mlci", "check-stale"], repo, check=False)
    assert stale.returncode == 1 and "train" in stale.stderr


def test_data_breaking_the_contract_fails_with_a_table(branch) -> None:
    repo = branch("bad-data")
    source = repo / "data/sample/penguins-raw.csv"
    df = pd.read_csv(source)
    df.loc[10, "Flipper Length (mm)"] = 999
    df.loc[11, "Island"] = "Atlantis"
    df.to_csv(source, index=False)
    commit_all(repo, "new data")
    model_before = (repo / "models/model.skops").read_bytes()

    result = run(["mlci", "pr-check", "--base", "main", "--no-images"], repo, check=False)

    assert result.returncode == 1
    text = (repo / "reports/pr/report.md").read_text()
    verdict = json.loads((repo / "reports/pr/verdict.json").read_text())
    assert verdict["passed"] is False and verdict["repro_exit_code"] != 0
    assert any(c["kind"] == "contract" for c in verdict["checks"] if not c["passed"])
    assert "Data **changed** against base." in text
    assert "| flipper_length_mm | `less_than_or_equal_to(250.0)` | 1 | 10: 999.0 |" in text
    assert "| island | `isin(['Biscoe', 'Dream', 'Torgersen'])` | 1 | 11: 'Atlantis' |" in text
    assert (repo / "models/model.skops").read_bytes() == model_before


def test_changed_data_rescores_the_base_model_on_the_new_test_set(branch) -> None:
    repo = branch("more-data")
    source = repo / "data/sample/penguins-raw.csv"
    pd.read_csv(source).iloc[:-20].to_csv(source, index=False)
    run(["dvc", "repro"], repo)
    commit_all(repo, "fewer rows")

    text, verdict = report(repo, "--no-images")
    assert "re-scored on this branch's test set" in text
    # The same model on 20 fewer rows: no regression beyond tolerance, so it passes.
    assert verdict["passed"] is True, verdict["summary"]
    assert "Data **changed** against base." in text
    assert "344 → 342" in text and "324 → 322" in text


def test_base_without_metrics_uses_floors_only(branch) -> None:
    repo = branch("first")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-qb", "empty-base")
    git(repo, "rm", "-q", "reports/metrics.json")
    commit_all(repo, "a base with no metrics yet")
    git(repo, "checkout", "-q", "first")

    result = run(["mlci", "gate", "--base", "empty-base"], repo)
    assert result.stdout.startswith("PASSED: ")
    assert "(absolute limits and baseline only)" in result.stdout.splitlines()[0]
    assert (
        "note: first pull request: no base results, the gate used absolute limits and the baseline"
    ) in result.stdout
    run(["mlci", "report", "--base", "empty-base", "--no-images"], repo)
    verdict = json.loads((repo / "reports/pr/verdict.json").read_text())
    assert verdict["basis"] == "absolute"
    assert not any(c["kind"] == "regression" for c in verdict["checks"])
    assert any(c["kind"] == "minimum" for c in verdict["checks"])
    assert any(c["kind"] == "baseline" for c in verdict["checks"])


def test_dropped_feature_is_reported_not_a_crash(branch) -> None:
    """The bundled example without body mass: the base model cannot be re-scored on the new
    test set (it needs the column), so the report says the contract changed and the gate
    judges on absolute limits and the baseline."""
    repo = branch("no-mass")
    schema = repo / "src/project/schema.py"
    kept = [line for line in schema.read_text().splitlines() if "body_mass_g:" not in line]
    schema.write_text("\n".join(kept) + "\n")
    cleaning = repo / "src/project/cleaning.py"
    text = cleaning.read_text().replace('    "Body Mass (g)": "body_mass_g",\n', "")
    cleaning.write_text(
        text.replace('    "Comments",\n]', '    "Comments",\n    "Body Mass (g)",\n]')
    )
    run(["dvc", "repro"], repo)
    commit_all(repo, "no body mass")
    assert (
        "body_mass_g" not in json.loads((repo / "reports/validation.json").read_text())["columns"]
    )

    text, verdict = report(repo, "--no-images")
    assert "### Data contract changed against base\n\n- feature(s) removed: `body_mass_g`\n" in text
    assert verdict["basis"] == "absolute"
    assert verdict["summary"].endswith("(absolute limits and baseline only)")
    assert not any(c["kind"] == "regression" for c in verdict["checks"])
    assert {c["kind"] for c in verdict["checks"]} == {"minimum", "maximum", "baseline"}
    assert metric_row(text, "f1_macro")[3] == "not compared"
    code, out = gate(repo)
    assert code == (0 if verdict["passed"] else 1), out
    assert "Traceback" not in out and "feature(s) removed: `body_mass_g`" in out


def test_unknown_base_ref_is_a_clear_error(base_repo: Path) -> None:
    result = run(["mlci", "gate", "--base", "origin/nope"], base_repo, check=False)
    assert result.returncode == 2
    assert "unknown git ref 'origin/nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_pull_request_run_names_the_head_commit_and_declares_its_attachments(
    better: Path, tmp_path: Path
) -> None:
    repo = better  # the pull request's change: C back at 1.0, rerun, committed
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    base = git(repo, "rev-parse", "main").stdout.strip()
    # What actions/checkout gives a pull_request run: a merge commit of the head into the base.
    git(repo, "checkout", "-q", "--detach", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge better into main", "better")
    merge = git(repo, "rev-parse", "HEAD").stdout.strip()
    assert merge not in (head, base)
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "pull_request": {
                    "number": 42,
                    "head": {"sha": head, "ref": "better"},
                    "base": {"sha": base, "ref": "main"},
                },
            }
        )
    )
    env = {
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "octo/penguins",
        "GITHUB_RUN_ID": "7",
    }
    run(["mlci", "pr-check", "--base", "main"], repo, **env)

    out = repo / "reports/pr"
    text = (out / "report.md").read_text()
    commit = "https://github.example/octo/penguins/commit"
    assert (
        f"Pull request #42 at [`{head[:7]}`]({commit}/{head}) "
        f"against `main` at [`{base[:7]}`]({commit}/{base})."
    ) in text
    assert f"- commit: `{head}` (head of pull request #42)" in text
    assert f"- measured on: `{merge}`" in text  # said once, in provenance: never as the head
    assert merge[:7] not in text.replace(f"`{merge}`", "")
    assert "- workflow run: https://github.example/octo/penguins/actions/runs/7" in text
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["head_sha"] == head and verdict["base_sha"] == base

    pr = json.loads((out / "pr.json").read_text())
    attachments = ["importance.png", "precision_recall.png", "roc.png"]
    assert pr == {"pr_number": 42, "head_sha": head, "base_sha": base, "attachments": attachments}
    assert "![" not in text
    links = [t for t in local_links(text) if not t.startswith("https://github.example/")]
    assert links == attachments
    assert all((out / name).is_file() for name in attachments)
    assert_charts_readable(text, classes=["Adelie", "Chinstrap", "Gentoo"])

    with_images = text
    # Without images, nothing is linked and nothing is declared (and no stale PNG is left).
    run(["mlci", "pr-check", "--base", "main", "--no-images"], repo, **env)
    text = (out / "report.md").read_text()
    assert json.loads((out / "pr.json").read_text())["attachments"] == []
    assert [t for t in local_links(text) if not t.startswith("https://")] == []
    assert not any((out / name).exists() for name in attachments)
    # The charts do not depend on the PNGs.
    assert len(mermaid_blocks(text)) == len(mermaid_blocks(with_images))
