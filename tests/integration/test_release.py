"""Release logic that runs here: tag verification on real git repositories, the model card.
(The image build, push and signature need Docker and GitHub: checked statically.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mlci.tasks import GATE_METRICS
from tests.conftest import git, run

pytestmark = pytest.mark.slow
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def repo(trained_repo: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(trained_repo, repo, symlinks=True)
    git(repo, "add", "-A")
    git(repo, "commit", "--allow-empty", "-qm", "trained")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    return repo


def verify(repo: Path, tag: str, output: Path | None = None):
    git(repo, "tag", "-f", tag)
    extra = {"GITHUB_REPOSITORY": "Some-Owner/My-Repo"}
    if output:
        extra["GITHUB_OUTPUT"] = str(output)
    return run(["mlci", "verify-release", "--tag", tag], repo, check=False, **extra)


def test_tag_on_main_with_a_passing_model_may_ship(repo: Path, tmp_path: Path) -> None:
    output = tmp_path / "github_output"
    result = verify(repo, "v1.2.3", output)
    assert result.returncode == 0, result.stderr
    lines = output.read_text().splitlines()
    assert "version=1.2.3" in lines
    assert "image=ghcr.io/some-owner/my-repo" in lines


def test_malformed_tag_is_refused(repo: Path) -> None:
    result = verify(repo, "release-1")
    assert result.returncode == 2 and "not of the form vX.Y.Z" in result.stderr


def test_tag_off_the_default_branch_is_refused(repo: Path) -> None:
    git(repo, "checkout", "-qb", "side")
    (repo / "README.md").write_text("side branch\n")
    git(repo, "commit", "-qam", "side")
    result = verify(repo, "v1.2.4")
    assert result.returncode == 2 and "not on origin/main" in result.stderr


def test_stale_lock_is_refused(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["seed"] = params["seed"] + 1  # any change that retrains
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(repo, "commit", "-qam", "params without re-run")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    result = verify(repo, "v1.2.5")
    assert result.returncode == 2 and "stale" in result.stderr and "train" in result.stderr


def test_model_failing_the_gate_is_refused(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # A ceiling no model reaches, on the task's lower-is-better metric.
    metric = "log_loss" if params.get("task", "classification") == "classification" else "rmse"
    params["gate"].setdefault("maximum", {})[metric] = 0.0
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(repo, "commit", "-qam", "stricter gate")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    result = verify(repo, "v1.2.6")
    assert result.returncode == 2
    assert "does not pass the gate" in result.stderr and metric in result.stderr


def test_model_card(repo: Path) -> None:
    result = run(
        [
            "mlci",
            "model-card",
            "--version",
            "1.2.3",
            "--image",
            "ghcr.io/o/r",
            "--digest",
            DIGEST,
            "--repository",
            "o/r",
        ],
        repo,
    )
    card = (repo / "reports/release/model_card.md").read_text()
    assert card == result.stdout.rstrip("\n") + "\n" or card in result.stdout
    assert f"cosign verify ghcr.io/o/r@{DIGEST}" in card
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in card
    assert f"gh attestation verify oci://ghcr.io/o/r@{DIGEST} --repo o/r" in card
    # Rollback by digest, as deploy/k8s/kustomization.yaml pins it; never by a movable tag.
    assert (
        f"(cd deploy/k8s && kustomize edit set image ghcr.io/OWNER/REPO=ghcr.io/o/r@{DIGEST})"
        in (card)
    )
    assert ":<previous-version>" not in card
    kustomization = (repo / "deploy/k8s/kustomization.yaml").read_text()
    assert "kustomize edit set image ghcr.io/OWNER/REPO=ghcr.io/<owner>/<repo>@sha256:" in (
        kustomization
    )
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    first = next(iter(GATE_METRICS[metrics["task"]]))
    assert f"| {first} | {metrics['model'][first]} |" in card
    slices = json.loads((repo / "reports/slices.json").read_text())
    for column, per_value in slices.items():
        value, numbers = next(iter(per_value.items()))
        assert f"| {column} = {value} | {numbers['n']} |" in card
    # The digest the model records: the training split's, not the raw source file's.
    meta = json.loads((repo / "models/model_meta.json").read_text())
    assert (
        f"Training data sha256: `{meta['train_data_sha256']}` ({meta['train_rows']} rows, "
        "`data/processed/train.parquet`)" in card
    )
    ingest = json.loads((repo / "reports/ingest.json").read_text())
    assert f"Source: `{ingest['source']}` sha256 `{ingest['source_sha256']}`" in card
    assert ingest["source_sha256"] != meta["train_data_sha256"]
    # The Params block is YAML that loads back to params.yaml's values.
    block = card.split("## Params\n\n```yaml\n", 1)[1].split("```", 1)[0]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    wanted = ("seed", "task", "split", "train")
    assert yaml.safe_load(block) == {k: params[k] for k in wanted if k in params}
    assert not block.lstrip().startswith("{")


def test_model_card_rejects_a_bad_digest(repo: Path) -> None:
    result = run(
        ["mlci", "model-card", "--version", "1", "--image", "i", "--digest", "latest"],
        repo,
        check=False,
    )
    assert result.returncode == 2 and "not sha256:" in result.stderr
