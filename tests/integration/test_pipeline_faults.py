"""The pipeline never loses its last good model, and refuses what it cannot run, quickly.

Real processes throughout: the real Makefile, a real ``dvc repro`` (killed by its PID in one
test), real ``dvc push``/``pull`` against a real remote, in copies of a generated fixture
project (tests/projects.py) that already ran once: ``models/`` holds a good model to lose.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, project_env, run, tool_env
from tests.projects import Project

pytestmark = pytest.mark.slow

KIND = "mixed_codes"  # a classification fixture (logistic_regression, C: 1.0)
ALIAS_BOMB = "".join(
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)]
)


@pytest.fixture
def workspace(trained_fixture: Callable[[str], Project], tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(trained_fixture(KIND).root, ws, symlinks=True)
    return ws.resolve()


def models(ws: Path) -> dict[str, bytes]:
    """Every file in models/, by name: a stray temp file or a missing model both show. Not the
    tune stage's choice (tuned.json): the tune stage runs, and succeeds, before train fails."""
    return {
        p.name: p.read_bytes() for p in sorted((ws / "models").iterdir()) if p.name != "tuned.json"
    }


def locked(ws: Path) -> dict:
    """dvc.lock without the tune stage's entry (recorded when tune succeeded before train)."""
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    lock["stages"].pop("tune", None)
    return lock


def edit_params(ws: Path, change: Callable[[dict], None]) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    change(params)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def set_estimator(ws: Path, name: str, **hyper: object) -> None:
    def change(p: dict) -> None:
        p["train"]["estimator"] = {"name": name, "params": hyper}

    edit_params(ws, change)


def make(ws: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real Makefile in ``ws``, on this checkout's environment: ``.venv`` is linked, and
    ``-o .venv/.synced`` keeps make from ever syncing (writing to) that shared environment."""
    uv = shutil.which("uv") or str(REPO / ".tools/bin/uv")
    if not Path(uv).is_file():
        pytest.skip("no uv on PATH and none in .tools/ (run `make setup` once)")
    if not (ws / ".venv").exists():
        (ws / ".venv").symlink_to(REPO / ".venv")
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.synced", *args, f"UV={uv}"],
        cwd=ws,
        env=tool_env(**project_env(ws)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lock_md5(ws: Path, path: str) -> str:
    for stage in yaml.safe_load((ws / "dvc.lock").read_text())["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise AssertionError(f"dvc.lock records no {path}")


def assert_recorded_and_restorable(ws: Path) -> None:
    """dvc.lock records the model now in models/, and the DVC cache can restore it."""
    import hashlib

    model = ws / "models/model.skops"
    data = model.read_bytes()
    assert hashlib.md5(data).hexdigest() == lock_md5(ws, "models/model.skops")
    assert "up to date" in run(["dvc", "status"], ws).stdout
    model.unlink()
    run(["dvc", "checkout", "models/model.skops"], ws)
    assert model.read_bytes() == data


# ---- 1, 3, 7: a broken params.yaml fails `make run` fast, before DVC reads it ---------------


def bad_name(ws: Path) -> None:
    set_estimator(ws, "logistic_regression", C=1.0, max_iterations=100)


def bad_value(ws: Path) -> None:
    set_estimator(ws, "logistic_regression", C=-1)


def alias_bomb(ws: Path) -> None:
    with (ws / "params.yaml").open("a") as f:
        f.write(ALIAS_BOMB)


def oversized(ws: Path) -> None:
    with (ws / "params.yaml").open("a") as f:
        f.write("# pasted by mistake\n" * 60_000)  # 1.2 MB


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "bad hyperparameter name": (
        bad_name,
        "params.yaml: train.estimator.params.max_iterations: not a hyperparameter of "
        "logistic_regression (LogisticRegression) (did you mean 'max_iter'?)",
    ),
    "bad hyperparameter value": (
        bad_value,
        "params.yaml: train.estimator.params.C: must be a float in the range (0.0, inf]; got -1",
    ),
    "alias bomb": (alias_bomb, "l0: YAML anchor &l0 is not allowed in a params file"),
    "oversized": (oversized, "over the 1,000,000-byte limit for a params file"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_params_stop_make_run_fast_and_keep_the_model(case: str, workspace: Path) -> None:
    breaker, expected = BROKEN[case]
    breaker(workspace)
    before, lock = models(workspace), locked(workspace)

    start = time.perf_counter()
    result = make(workspace, "run", timeout=60)
    seconds = time.perf_counter() - start

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert expected in output, output
    assert "Traceback" not in output
    assert "dvc repro" not in result.stdout, "dvc started"  # make echoes each command it runs
    assert seconds < 30, f"{case}: make run took {seconds:.1f} s"
    assert models(workspace) == before
    assert locked(workspace) == lock


def test_make_run_with_good_params_checks_then_runs(workspace: Path) -> None:
    result = make(workspace, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "params.yaml: ok" in result.stdout
    assert "dvc repro" in result.stdout


def test_pr_check_refuses_bad_params_before_dvc(workspace: Path) -> None:
    bad_value(workspace)
    before = models(workspace)
    result = run(["mlci", "pr-check", "--base", "HEAD", "--no-images"], workspace, check=False)
    assert result.returncode == 2
    assert "train.estimator.params.C: must be a float" in result.stderr
    assert "Running stage" not in result.stdout + result.stderr
    assert not (workspace / "reports/pr/report.md").exists()
    assert models(workspace) == before


# ---- 2: a train stage that fails leaves the last good model ---------------------------------


def test_failing_train_stage_keeps_the_last_model(workspace: Path) -> None:
    """A combination only ``fit`` refuses (each value is valid on its own): DVC runs train,
    train fails, and the model files are still the last good ones (``persist: true``)."""
    set_estimator(workspace, "logistic_regression", solver="lbfgs", l1_ratio=1.0)
    before, lock = models(workspace), locked(workspace)

    failed = run(["dvc", "repro"], workspace, check=False)

    assert failed.returncode != 0
    assert "Running stage 'train'" in failed.stdout
    assert "supports only 'l2' or None penalties" in failed.stderr
    # One line naming the setting, not a traceback.
    assert "error: train: scikit-learn refused to fit LogisticRegression" in failed.stderr
    assert "train.estimator.params" in failed.stderr and "Traceback" not in failed.stderr
    assert models(workspace) == before
    assert locked(workspace) == lock

    set_estimator(workspace, "logistic_regression", C=0.5, max_iter=1000)  # the fix
    run(["dvc", "repro"], workspace)
    assert models(workspace)["model.skops"] != before["model.skops"]
    assert_recorded_and_restorable(workspace)


# ---- 4: stopping the pipeline stops its stages ----------------------------------------------


def processes_in(folder: Path) -> list[str]:
    """Live processes whose working directory is ``folder``: the pipeline's, and nobody
    else's (other test sessions on the machine run their own ``mlci train``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "cwd").readlink() != folder:
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or a zombie
            continue
        if cmd.strip():
            found.append(f"{proc.name}: {cmd.strip()}")
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def kill_repro_in_training(
    ws: Path, shell: str, sig: signal.Signals, after: float, limit: float, **env: str
) -> tuple[str, float]:
    """Start ``dvc repro`` in ``ws`` (``env`` added to its environment), send ``sig`` to it
    ``after`` seconds into ``mlci train``, and wait up to ``limit`` seconds for every process
    working in ``ws`` to be gone (any left is killed, and fails the test). Returns (the
    pipeline's output, seconds from the signal until every process was gone)."""
    env = tool_env(**project_env(ws), SHELL=shell, **env)
    log = ws.parent / "repro.log"  # a file, not a pipe: an orphan would hold a pipe open
    with log.open("w") as out:
        dvc = subprocess.Popen(["dvc", "repro"], cwd=ws, env=env, stdout=out, stderr=out)
    try:
        wait_for(lambda: any("mlci train" in p for p in processes_in(ws)), 120, "mlci train")
        time.sleep(after)
        assert dvc.poll() is None, "the pipeline ended before it could be stopped"
        os.kill(dvc.pid, sig)
        killed = time.monotonic()
        dvc.wait(timeout=30)
    finally:
        if dvc.poll() is None:
            dvc.kill()
            dvc.wait()
    while processes_in(ws) and time.monotonic() < killed + limit:
        time.sleep(0.2)
    stopped_after = time.monotonic() - killed
    survivors = processes_in(ws)
    for line in survivors:  # this test's own processes: do not leave them running
        os.kill(int(line.split(":")[0]), signal.SIGKILL)
    assert survivors == [], "a stage outlived the pipeline"
    output = log.read_text()
    assert "Running stage 'train'" in output and "Running stage 'evaluate'" not in output
    return output, stopped_after


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("shell", "sig"),
    [("/bin/bash", signal.SIGTERM), ("/bin/sh", signal.SIGKILL)],
    ids=["bash-SIGTERM", "sh-SIGKILL"],
)
def test_killed_pipeline_stops_its_stages_and_keeps_the_model(
    shell: str, sig: signal.Signals, workspace: Path
) -> None:
    """``dvc repro`` killed 3 s into training. DVC runs a stage as ``$SHELL -c 'mlci train'``:
    bash execs it (the stage's parent is dvc), dash (Debian's /bin/sh) stays in between."""
    # About 12 s of fitting, so the stop lands inside the fit on any machine (5,000 trees fit
    # in 3 s here: the stop then fell into saving them, which finishes before it stops).
    set_estimator(workspace, "random_forest", n_estimators=20000)
    before, lock = models(workspace), locked(workspace)
    # The stage goes too, cleanly: well before the guard's hard exit (GRACE_SECONDS, 10 s).
    _, stopped_after = kill_repro_in_training(workspace, shell, sig, after=3, limit=15)
    assert stopped_after < 8, f"the stage took {stopped_after:.1f} s to stop"
    assert models(workspace) == before
    assert locked(workspace) == lock

    set_estimator(workspace, "random_forest", n_estimators=10)
    rerun = run(["dvc", "repro"], workspace)
    assert "Running stage 'train'" in rerun.stdout
    assert_recorded_and_restorable(workspace)


# ---- 5: `make pull` exits non-zero when it must ---------------------------------------------


def forget_outputs(ws: Path) -> None:
    """A fresh clone: no DVC cache, no pipeline outputs (git-tracked files stay)."""
    shutil.rmtree(ws / ".dvc/cache", ignore_errors=True)
    tracked = set(run(["git", "ls-files"], ws).stdout.split())
    for folder in ("models", "data/interim", "data/processed"):
        for path in (ws / folder).glob("*"):
            if path.relative_to(ws).as_posix() not in tracked:  # .gitignore, model_meta.json
                path.unlink()


def use_remote(ws: Path, url: str) -> None:
    run(["dvc", "remote", "add", "--default", "--force", "local", url], ws)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pull_on_a_new_project_is_not_an_error(workspace: Path) -> None:
    """The template's default remote (.dvc/storage, git-ignored) does not exist in a clone."""
    assert not (workspace / ".dvc/storage").exists()
    forget_outputs(workspace)
    result = make(workspace, "pull")
    assert result.returncode == 0, result.stderr
    assert "nothing to pull yet" in result.stdout and "`make run` builds" in result.stdout

    run(["dvc", "remote", "remove", "local"], workspace)
    result = make(workspace, "pull")
    assert result.returncode == 0, result.stderr
    assert "no default DVC remote is configured" in result.stdout


def test_pull_from_an_unreachable_remote_fails(workspace: Path, tmp_path: Path) -> None:
    forget_outputs(workspace)
    url = f"http://127.0.0.1:{closed_port()}/store"
    use_remote(workspace, url)
    # What `dvc pull --allow-missing` alone says here (the old `make pull`): all is well.
    assert "Everything is up to date." in run(["dvc", "pull", "--allow-missing"], workspace).stdout
    for extra in ((), ("ALLOW_MISSING=1",)):
        result = make(workspace, "pull", *extra)
        assert result.returncode != 0
        assert f"error: DVC remote 'local' ({url}) cannot be reached" in result.stderr
        assert "Traceback" not in result.stderr

    use_remote(workspace, str(tmp_path / "unmounted" / "store"))  # outside the repository
    result = make(workspace, "pull")
    assert result.returncode != 0 and "cannot be reached or listed" in result.stderr


def test_pull_restores_the_model_or_names_what_is_missing(workspace: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    use_remote(workspace, str(store))
    run(["dvc", "push"], workspace)
    before = models(workspace)
    forget_outputs(workspace)

    result = make(workspace, "pull")
    assert result.returncode == 0, result.stderr
    assert "DVC-tracked outputs are present" in result.stdout
    assert models(workspace) == before

    # The remote lost the model (pushed from elsewhere without it, or pruned).
    md5 = lock_md5(workspace, "models/model.skops")
    (store / "files/md5" / md5[:2] / md5[2:]).unlink()
    forget_outputs(workspace)
    result = make(workspace, "pull")
    assert result.returncode != 0
    assert "lacks 1 of the" in result.stderr and "models/model.skops" in result.stderr
    result = make(workspace, "pull", "ALLOW_MISSING=1")
    assert result.returncode == 0, result.stderr
    assert "models/model.skops; `make run` rebuilds them" in result.stdout


# ---- 6: a directory given as a data file is called one -------------------------------------


def test_directory_as_data_source_or_reference_is_named(workspace: Path) -> None:
    def source_is_a_folder(p: dict) -> None:
        p["data"]["source"] = "data"

    edit_params(workspace, source_is_a_folder)
    result = run(["mlci", "ingest"], workspace, check=False)
    assert result.returncode == 2
    assert "data.source 'data': is a directory" in result.stderr, result.stderr

    result = run(
        ["mlci", "drift", "--current", "data/processed/test.parquet", "--reference", "data"],
        workspace,
        check=False,
    )
    assert result.returncode == 2
    assert "reference data: is a directory" in result.stderr, result.stderr


# A short grace period for the test: the guard's thread still has to end the stage (Python's
# handler cannot run inside the fit), the wait is only shorter than the product's 10 s.
GRACE = 4.0


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc")
def test_a_stage_inside_one_long_compiled_fit_stops_within_the_grace_period(
    workspace: Path,
) -> None:
    """``dvc repro`` killed during ONE long compiled call (a ``saga`` fit that never converges,
    tol 0: on this fixture 200,000 epochs take about 20 s, so 10,000,000 are far longer than the
    test): Python's SIGTERM handler cannot run until the call returns, so the run guard's own
    thread must end the stage, within its grace period, leaving the previous model as it was."""
    before, lock = models(workspace), locked(workspace)
    set_estimator(workspace, "logistic_regression", solver="saga", max_iter=10_000_000, tol=0.0)
    # 3.5 s in: well past the stage's imports (about 1 s), inside the one fit.
    _, stopped_after = kill_repro_in_training(
        workspace, "/bin/bash", signal.SIGTERM, 3.5, GRACE + 10, MLCI_STOP_GRACE_SECONDS=str(GRACE)
    )
    assert stopped_after < GRACE + 2, f"stopped after {stopped_after:.1f} s"
    assert stopped_after > GRACE - 2, f"stopped after {stopped_after:.1f} s: by the handler"
    assert models(workspace) == before  # no temp file left, the model untouched
    assert locked(workspace) == lock
