"""`make pull` reads the remote from DVC's configuration, and passes "nothing pushed yet" only
for the template's own remote in a fresh clone. Real DVC remotes (folders), real `dvc push`,
the real Makefile, in copies of a generated fixture project that already ran once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run
from tests.integration.test_pipeline_faults import forget_outputs, make, use_remote, workspace

pytestmark = pytest.mark.slow
__all__ = ["workspace"]  # the fixture, shared with test_pipeline_faults


def test_a_long_remote_path_is_read_whole(workspace: Path, tmp_path: Path) -> None:
    """`dvc remote list` wraps a long location onto a second line when not on a terminal: the
    old parser read it as `?` and took a missing folder outside the repository for a new one."""
    long_path = tmp_path / ("a-long-folder-name-" * 4) / "gone" / "store"
    use_remote(workspace, str(long_path))
    listed = run(["dvc", "remote", "list"], workspace).stdout
    assert len(listed.splitlines()[0].split()) == 1, "dvc no longer wraps: the test proves nothing"
    forget_outputs(workspace)
    result = make(workspace, "pull")
    assert result.returncode != 0, result.stdout
    assert f"DVC remote 'local' ({long_path}) cannot be reached or listed" in result.stderr


def test_a_configured_remote_holding_nothing_fails(workspace: Path, tmp_path: Path) -> None:
    """A wrong bucket or prefix: the remote answers, has none of the outputs. CI must not
    recompute silently, not even with ALLOW_MISSING=1."""
    elsewhere = tmp_path / "right-store"
    use_remote(workspace, str(elsewhere))
    run(["dvc", "push"], workspace)
    wrong = tmp_path / "wrong-prefix"
    wrong.mkdir()
    use_remote(workspace, str(wrong))
    forget_outputs(workspace)
    for extra in ((), ("ALLOW_MISSING=1",)):
        result = make(workspace, "pull", *extra)
        assert result.returncode != 0, result.stdout
        assert f"DVC remote 'local' ({wrong}) holds none of the" in result.stderr
        assert "a wrong location (bucket, prefix, path)" in result.stderr
        assert "Traceback" not in result.stderr

    use_remote(workspace, str(elsewhere))  # the right one: everything comes back
    result = make(workspace, "pull")
    assert result.returncode == 0, result.stderr
    assert "DVC-tracked outputs are present" in result.stdout


def test_only_a_folder_in_the_repository_counts_as_not_pushed_yet(
    workspace: Path, tmp_path: Path
) -> None:
    """The template's default (.dvc/storage) passes in a fresh clone; the remote's url read from
    DVC's config is resolved against .dvc/, as DVC resolves it."""
    assert "url = storage" in (workspace / ".dvc/config").read_text()  # relative to .dvc/
    forget_outputs(workspace)
    result = make(workspace, "pull")
    assert result.returncode == 0, result.stderr
    assert "/.dvc/storage) is a folder in this repository that does not exist" in result.stdout
