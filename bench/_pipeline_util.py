"""Helpers for the benchmarks: repository copies, measured subprocesses, machine facts.

Every measured command runs as a child process that this module reaps itself with
``os.wait4``, so its wall time, peak resident memory (``ru_maxrss``, which on Linux covers the
child and the descendants it waited for) and CPU time come from the kernel, not from polling.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The benchmarks copy the repository exactly as the tests do: one implementation, in tests/.
sys.path.insert(0, str(REPO))
from tests.helpers import copy_repo as copy_repo  # noqa: E402  (re-exported)

BIN = Path(sys.executable).parent
STDERR_TAIL = 4000
TMP: Path | None = None  # set by workspace(): TMPDIR of every measured command


class BenchError(RuntimeError):
    """A measured command failed; the message carries its command, exit status and stderr."""


@dataclass
class Measured:
    label: str
    cmd: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_bytes: int
    stdout_lines: list[tuple[float, str]] = field(repr=False)
    stderr: str = field(repr=False)

    @property
    def stdout(self) -> str:
        return "\n".join(line for _, line in self.stdout_lines)

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / 2**20

    def summary(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_user_s": round(self.user_s, 3),
            "cpu_sys_s": round(self.sys_s, 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
        }


def tool_env(src: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment for measured commands: the project's venv first on PATH, no telemetry.

    ``src`` puts a repository copy's ``src`` first on ``sys.path``, so a stage runs the copy's
    code (a snapshot) rather than the editable install's live working tree.
    """
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # As the Makefile runs things: ITERATIVE_DO_NOT_TRACK only. DVC_NO_ANALYTICS is not set
    # here (unless the caller's environment has it), so DVC behaves as it does for a user.
    env["ITERATIVE_DO_NOT_TRACK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"  # stage lines arrive when they happen: per-stage timing
    if TMP is not None:
        env["TMPDIR"] = str(TMP)  # temp files children leave behind go with the workspace
    env.pop("MLCI_PARAMS", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    else:
        env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run_measured(
    cmd: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    label: str | None = None,
    timeout: float = 1800.0,
    check: bool = True,
) -> Measured:
    """Run ``cmd`` to completion; time-stamp each stdout line (seconds from start)."""
    label = label or " ".join(cmd)
    out_lines: list[tuple[float, str]] = []
    err_chunks: list[bytes] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: a timeout ends the whole tree
    )
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr

    def pump_out() -> None:
        for raw in stdout:
            out_lines.append(
                (time.perf_counter() - start, raw.decode("utf-8", "replace").rstrip("\r\n"))
            )

    def pump_err() -> None:
        err_chunks.append(stderr.read())

    readers = [threading.Thread(target=pump_out), threading.Thread(target=pump_err)]
    for t in readers:
        t.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group of the child started above

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait
    for t in readers:
        t.join()
    stdout.close()
    stderr.close()
    result = Measured(
        label=label,
        cmd=list(cmd),
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # KiB on Linux
        stdout_lines=out_lines,
        stderr=b"".join(err_chunks).decode("utf-8", "replace"),
    )
    if timed_out.is_set():
        raise BenchError(_failure_text(result, f"timed out after {timeout:.0f} s", cwd))
    if check and result.returncode != 0:
        raise BenchError(_failure_text(result, f"exited {result.returncode}", cwd))
    return result


def _failure_text(m: Measured, what: str, cwd: Path) -> str:
    def tail(text: str) -> str:
        text = text.strip()
        return text if len(text) <= STDERR_TAIL else "[...]\n" + text[-STDERR_TAIL:]

    return (
        f"{m.label}: `{' '.join(m.cmd)}` {what} after {m.wall_s:.1f} s (cwd {cwd})\n"
        f"--- stderr ---\n{tail(m.stderr) or '(empty)'}\n"
        f"--- stdout ---\n{tail(m.stdout) or '(empty)'}"
    )


def _make_writable_and_retry(func: Any, path: str, _exc: Any) -> None:
    # Package caches and venvs may hold read-only files and folders.
    for p in (Path(path).parent, Path(path)):
        with suppress(OSError):
            p.chmod(p.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
    func(path)


def remove_tree(path: Path) -> None:
    if not path.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=_make_writable_and_retry)


@contextmanager
def workspace(keep: bool = False) -> Iterator[Path]:
    """A temporary folder for all benchmark copies; removed at the end unless ``keep``."""
    import tempfile

    global TMP
    root = Path(tempfile.mkdtemp(prefix="mlci-bench-"))
    TMP = root / "tmp"
    TMP.mkdir()
    try:
        yield root
    finally:
        TMP = None
        if keep:
            print(f"kept temporary files in {root}", file=sys.stderr)
        else:
            remove_tree(root)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else platform.machine()


def _mem_total_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(found.group(1)) / 2**20, 1) if found else None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def tool_version(cmd: Sequence[str]) -> str | None:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else None


def machine_facts(uv: str | None) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "ram_gib": _mem_total_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "uv": tool_version([uv, "--version"]) if uv else None,
        "libraries": {
            d: _version(d)
            for d in ("dvc", "pandas", "pandera", "scikit-learn", "numpy", "pyarrow", "skops")
        },
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def analytics_reports_left() -> int | None:
    """Usage reports DVC wrote to TMPDIR for its analytics process and left behind."""
    if TMP is None:
        return None
    found = 0
    for p in TMP.iterdir():
        with suppress(OSError, UnicodeDecodeError):
            if p.is_file() and p.stat().st_size < 4096 and '"cmd_class"' in p.read_text():
                found += 1
    return found


@dataclass(frozen=True)
class CpuSnapshot:
    at: float  # monotonic seconds
    busy_s: float  # CPU seconds the whole machine spent busy (all cores, /proc/stat)
    ours_s: float  # CPU seconds of this process and its reaped children


def cpu_snapshot() -> CpuSnapshot | None:
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    ticks = [int(x) for x in first[1:9]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    hz = os.sysconf("SC_CLK_TCK")
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return CpuSnapshot(time.monotonic(), busy / hz, ours)


def other_load(start: CpuSnapshot | None, end: CpuSnapshot | None) -> float | None:
    """Average number of cores that processes other than this benchmark kept busy."""
    if start is None or end is None or end.at <= start.at:
        return None
    others = (end.busy_s - start.busy_s) - (end.ours_s - start.ours_s)
    return round(max(others, 0.0) / (end.at - start.at), 2)


def wait_for_quiet(max_wait: float, threshold: float = 0.25, window: float = 3.0) -> dict:
    """Wait (up to ``max_wait`` seconds) until other processes use under ``threshold`` cores.

    Other work on the machine slows every measurement down; this waits for a quiet moment
    rather than recording a busy one. It never fails: after ``max_wait`` it goes on and the
    result records how busy the machine was."""
    start = time.monotonic()
    while True:
        a = cpu_snapshot()
        time.sleep(window)
        load = other_load(a, cpu_snapshot())
        waited = time.monotonic() - start
        if load is None or load < threshold or waited >= max_wait:
            return {"waited_s": round(waited, 1), "other_load_cores_before": load}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
