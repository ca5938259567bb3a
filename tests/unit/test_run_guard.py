"""The run guard's pieces in a real process of their own: a stop during a held block waits for
the block's end; a SIGTERM reaches the watcher thread while the main thread cannot run Python."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlci import run_guard
from mlci.errors import UserError
from tests.helpers import tool_env

HELD = """
import os, signal, sys
from mlci import run_guard
signal.signal(signal.SIGTERM, run_guard._on_sigterm)
steps = []
try:
    with run_guard.held():
        os.kill(os.getpid(), signal.SIGTERM)
        for i in range(3):
            steps.append(i)  # bytecodes run: the handler would have raised here
except KeyboardInterrupt:
    print("stopped after", steps)
    sys.exit(130)
print("not stopped")
"""

# The main thread sleeps inside one C call (no bytecode runs, so Python's handler cannot; the
# signal is blocked in it, as a computing C loop is not interrupted by one); the watcher must
# still end the process within the grace period and delete the temp file.
STUCK = """
import ctypes, os, signal, subprocess, sys
from pathlib import Path
from mlci import files, run_guard
run_guard.GRACE_SECONDS = 1.0
run_guard.tie_to_pipeline()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # the watcher thread gets it
def write(p):
    p.write_text("half")
    print(p, flush=True)
    subprocess.Popen(["sh", "-c", f"sleep 1; kill -TERM {os.getpid()}"])  # once inside the call
    ctypes.CDLL(None).sleep(30)  # one long native call
files.atomic_write(Path(sys.argv[1]) / "model.skops", write)
"""


def test_a_stop_during_a_held_block_takes_effect_after_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HELD], env=tool_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert "stopped after [0, 1, 2]" in done.stdout
    assert "after writing its outputs" in done.stderr


def test_the_watcher_ends_a_process_stuck_in_native_code(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", STUCK, str(tmp_path)],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert done.returncode == 143, done.stdout + done.stderr
    assert took < 10, f"took {took:.1f} s (the native call lasts 30 s)"
    temp = Path(done.stdout.strip())
    assert temp.parent == tmp_path and not temp.exists()  # the temp file was removed
    assert list(tmp_path.iterdir()) == []


def test_the_grace_period_setting_is_read_and_a_bad_value_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(run_guard.GRACE_ENV, raising=False)
    assert run_guard.grace_seconds() == run_guard.GRACE_SECONDS
    monkeypatch.setenv(run_guard.GRACE_ENV, " 2.5 ")
    assert run_guard.grace_seconds() == 2.5
    for bad in ("soon", "0", "-1", "nan", "7200"):
        monkeypatch.setenv(run_guard.GRACE_ENV, bad)
        with pytest.raises(UserError, match=rf"MLCI_STOP_GRACE_SECONDS='{bad}': must be"):
            run_guard.grace_seconds()
