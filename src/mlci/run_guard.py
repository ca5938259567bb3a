"""Stopping the pipeline stops its stages.

DVC runs each stage as a child process (``$SHELL -c 'mlci train'``). Killed, ``dvc`` dies
alone: its stage would run on as an orphan and later write a model that ``dvc.lock`` does not
record. So every ``mlci`` command that DVC starts (DVC sets ``DVC_STAGE`` for it) calls
:func:`tie_to_pipeline` first:

* on Linux the kernel sends it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
* a watcher thread also polls the pipeline process, which covers a shell between the two
  (``/bin/sh`` is dash on Debian, which does not ``exec`` the command) and other systems;
* SIGTERM raises ``KeyboardInterrupt`` in the stage, so the atomic writes (``mlci.files``)
  delete their temp files and the previous outputs stay as they were;
* the watcher thread enforces the grace period itself: a SIGTERM reaches it at once through
  the signal wake-up pipe, even while the main thread sits in one long compiled call (a
  ``saga`` fit) where Python's handler cannot run; :data:`GRACE_SECONDS` later it deletes the
  atomic writers' temp files and exits hard. A file is only ever renamed into place whole, so
  the previous outputs survive either way. ``MLCI_STOP_GRACE_SECONDS`` shortens or lengthens
  it (the tests shorten it: the mechanism is the same, the wait is not the point).

:func:`run_tied` is the same tie for a ``dvc repro`` that ``mlci`` itself starts (pr-check).
"""

from __future__ import annotations

import ctypes
import functools
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci import files
from mlci.errors import UserError

SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "busybox"})
POLL_SECONDS = 0.25
GRACE_SECONDS = 10.0
GRACE_ENV = "MLCI_STOP_GRACE_SECONDS"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_stopping = threading.Event()
# ``held()`` blocks in progress, and whether a stop arrived during one.
_holding = 0
_held_stop = False
HOLD_LIMIT_SECONDS = 60.0  # a held block (three small writes) never needs longer than this


@dataclass(frozen=True)
class _Process:
    pid: int
    started: str | None  # /proc start time, so that a reused pid is not taken for it


def _stat(pid: int) -> tuple[str, str, int, str] | None:
    """(name, state, parent pid, start time) from /proc, or None (gone, or no /proc)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name is in parentheses and may itself hold spaces or parentheses.
    name = data[data.index("(") + 1 : data.rindex(")")]
    rest = data[data.rindex(")") + 2 :].split()
    return name, rest[0], int(rest[1]), rest[19]


def _pipeline_process() -> _Process:
    """The process that runs the pipeline: the parent, or above it past any shell."""
    pid = os.getppid()
    while True:  # dvc -> [shell -> [shell ->]] mlci
        stat = _stat(pid)
        if stat is None:
            return _Process(pid, None)
        name, _state, parent, started = stat
        if name not in SHELLS or parent <= 1:
            return _Process(pid, started)
        pid = parent


def _alive(proc: _Process) -> bool:
    if proc.started is None:  # no /proc: only the parent can be watched
        return os.getppid() == proc.pid
    stat = _stat(proc.pid)
    # A killed parent is a zombie ("Z") until reaped: already gone for our purpose.
    return stat is not None and stat[1] not in ("Z", "X") and stat[3] == proc.started


def _set_parent_death_signal(sig: int) -> bool:
    """Linux: the kernel sends ``sig`` when the parent exits (even by SIGKILL).

    DVC waits for the stage in the thread that started it, so that thread (which is what the
    kernel watches) outlives the stage."""
    libc = _libc()
    return libc is not None and libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "prctl") else None
    except OSError:
        return None


def _on_sigterm(signum: int, frame: Any) -> None:
    global _held_stop
    if _stopping.is_set() and not _holding:
        return  # stopping already: let the cleanup finish
    _stopping.set()
    if _holding:  # writing files that belong together: stop right after them
        _held_stop = True
        return
    # os.write, not print: a signal handler may interrupt a print in progress.
    os.write(2, b"mlci: stopped (the pipeline was stopped); previous outputs left in place\n")
    raise KeyboardInterrupt


@contextmanager
def held() -> Iterator[None]:
    """Run the block to its end even if the pipeline is stopped meanwhile (files that belong
    together, such as a model and its metadata, are all written or none is); the stop takes
    effect right after it. Unlike blocking the signals in the main thread, this also holds when
    the signal is delivered to another thread (the watcher, an OpenMP or BLAS thread), and the
    watcher's hard exit waits for the block too (up to :data:`HOLD_LIMIT_SECONDS`)."""
    global _holding, _held_stop
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
    if not _holding and _held_stop:
        _held_stop = False
        os.write(2, b"mlci: stopped (the pipeline was stopped) after writing its outputs\n")
        raise KeyboardInterrupt


def _hard_exit() -> None:
    """The grace period is over: wait for a held block to finish, remove the atomic writers'
    temp files, exit at once."""
    deadline = time.monotonic() + HOLD_LIMIT_SECONDS
    while _holding and time.monotonic() < deadline:
        time.sleep(0.05)
    files.discard_pending()
    os._exit(128 + signal.SIGTERM)


def grace_seconds() -> float:
    """The grace period: ``MLCI_STOP_GRACE_SECONDS`` when set, else :data:`GRACE_SECONDS`."""
    raw = os.environ.get(GRACE_ENV, "").strip()
    if not raw:
        return GRACE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 3600:  # also refuses nan
        raise UserError(f"{GRACE_ENV}={raw!r}: must be a number of seconds in (0, 3600]")
    return seconds


def _watch(proc: _Process, wakeup: int | None, grace: float) -> None:
    """Runs in its own thread, so it acts even while the main thread is inside one long
    compiled call (a ``saga`` fit), where Python's signal handler cannot run: a SIGTERM (seen
    through the signal wake-up pipe, which C-level signal delivery writes to at once) or the
    pipeline's death starts the grace period here, and this thread ends the process after it."""
    while not _stopping.is_set() and _alive(proc):
        if wakeup is not None and _signalled(wakeup, POLL_SECONDS):
            break
        if wakeup is None:
            time.sleep(POLL_SECONDS)
    if not _stopping.is_set():
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread cleans up if it gets the chance
    time.sleep(grace)  # the main thread's cleanup ends the process first, if it can run
    _hard_exit()


def _signalled(fd: int, timeout: float) -> bool:
    """True once a SIGTERM or SIGINT has been delivered (its number written to ``fd``)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return False
    try:
        got = os.read(fd, 64)
    except BlockingIOError:
        return False
    return any(n in (signal.SIGTERM, signal.SIGINT) for n in got)


def _wakeup_pipe() -> int | None:
    """A pipe that CPython's C-level signal handler writes each signal's number to, at once."""
    try:
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except (OSError, ValueError):  # not the main thread, or no pipes
        return None
    return read


def tie_to_pipeline() -> None:
    """Make this process stop when the pipeline process that started it is gone."""
    grace = grace_seconds()  # a bad setting is refused before anything is tied
    signal.signal(signal.SIGTERM, _on_sigterm)
    wakeup = _wakeup_pipe()
    proc = _pipeline_process()
    if proc.pid == os.getppid():
        _set_parent_death_signal(signal.SIGTERM)
    if not _alive(proc):  # gone before the tie was made
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(
        target=_watch, args=(proc, wakeup, grace), daemon=True, name="mlci-run-guard"
    ).start()


def run_tied(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd)``, with the child stopped (SIGTERM) when this process dies."""
    parent = os.getpid()
    _libc()  # loaded here, not in the forked child

    def tie() -> None:  # in the child, between fork and exec
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    # preexec_fn: mlci pr-check starts no threads before this, so it is safe here.
    return subprocess.run(cmd, preexec_fn=tie, **kwargs)
