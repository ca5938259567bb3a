"""The Makefile's uv is on PATH for every recipe and every process a recipe starts.

`bentoml build` (make package) runs `uv` by name. On a machine without a global uv, the Makefile
installs its own copy under .tools/bin; if that folder is not on the recipes' PATH, packaging
fails there and nowhere else. These tests run make under a minimal PATH with a stand-in uv, so
they need no network and take milliseconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SYSTEM = ["/usr/bin", "/bin"]
UV_VERSION = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)[1]


def python_dir() -> str:
    """The folder of the real interpreter behind this test run (not a pyenv shim)."""
    return str(Path(os.path.realpath(sys.executable)).parent)


def minimal_path(*first: Path | str) -> str:
    return os.pathsep.join([*map(str, first), python_dir(), *SYSTEM])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("uv", path=minimal_path()):
        pytest.skip("a uv on the minimal PATH (python3's folder or /usr/bin): cannot test without")
    shutil.copy2(REPO / "Makefile", tmp_path / "Makefile")
    return tmp_path


def fake_uv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    uv = folder / "uv"
    uv.write_text("#!/bin/sh\necho fake uv\n")
    uv.chmod(0o755)
    return uv


def make(cwd: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(cwd), "PATH": path, "LANG": "C.UTF-8"}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def line(output: str, prefix: str) -> str:
    return next(x for x in output.splitlines() if x.startswith(prefix))[len(prefix) :].strip()


def test_private_uv_is_on_every_recipes_path(project: Path) -> None:
    private = fake_uv(project / ".tools/bin")
    (project / f".tools/uv-{UV_VERSION}.installed").touch()
    result = make(project, "tools", path=minimal_path())
    assert result.returncode == 0, result.stderr
    # `command -v uv` inside a recipe: what bentoml build, dvc stages and tests find.
    assert line(result.stdout, "uv:") == str(private)
    assert line(result.stdout, "make uses:") == str(private)
    # python3 is still the user's, not something from .tools/.
    assert line(result.stdout, "python3:") == str(Path(python_dir()) / "python3")


def test_global_uv_is_used_and_path_left_alone(project: Path) -> None:
    global_uv = fake_uv(project / "global-bin")
    fake_uv(project / ".tools/bin")  # a private copy too: the global one wins
    result = make(project, "tools", path=minimal_path(project / "global-bin"))
    assert result.returncode == 0, result.stderr
    assert line(result.stdout, "uv:") == str(global_uv)
    assert line(result.stdout, "make uses:") == str(global_uv)


def test_uv_chosen_on_the_command_line_is_the_one_recipes_find(project: Path) -> None:
    chosen = fake_uv(project / "elsewhere")
    result = make(project, "tools", f"UV={chosen}", path=minimal_path())
    assert result.returncode == 0, result.stderr
    assert line(result.stdout, "uv:") == str(chosen)


def test_private_uv_is_reinstalled_for_an_old_layout_or_a_new_version(project: Path) -> None:
    target = str(project / ".tools/bin/uv")
    fake_uv(project / ".tools/bin")
    (project / ".tools/pyvenv.cfg").touch()  # the earlier layout: a venv, python3 in bin/
    planned = make(project, "-n", target, path=minimal_path())
    assert "rm -rf .tools" in planned.stdout and f"uv=={UV_VERSION}" in planned.stdout
    # The recipe installs uv alone into .tools (pip --target): no python3 next to it on PATH.
    assert "--target .tools" in planned.stdout

    (project / f".tools/uv-{UV_VERSION}.installed").touch()
    assert "up to date" in make(project, target, path=minimal_path()).stdout
