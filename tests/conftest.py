"""Shared fixtures. The expensive one, ``trained_repo``, is a real copy of this repository (a real
git repository with one commit) on which a real ``dvc repro`` has run once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO, copy_repo, git, run, tool_env

__all__ = ["REPO", "copy_repo", "git", "run", "tool_env"]


@pytest.fixture(scope="session")
def trained_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy after a real, full ``dvc repro`` (shared: do not modify it)."""
    dest = copy_repo(tmp_path_factory.mktemp("trained") / "repo")
    run(["dvc", "repro", "--force"], dest)
    return dest


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh repository copy of your own to change (no pipeline run yet)."""
    return copy_repo(tmp_path / "repo")
