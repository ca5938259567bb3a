"""The prediction log's file: append-only, follows log rotation, caps its own size.

* **Appends** with one ``write`` per batch to a file opened with ``O_APPEND``: several worker
  processes share one file without interleaving lines.
* **Follows rotation.** Before each batch it compares the open file with the file at the path
  (device and inode): when the path's file was moved or removed (logrotate, a person), it opens
  the path again, creating it. The old file keeps what was written before the move.
* **Caps its size** (``max_bytes``; 0 turns this off): a batch that would take the file over the
  cap first renames ``predictions.jsonl`` to ``predictions.1.jsonl``, ``.1`` to ``.2`` and so on,
  keeping ``backups`` files; the oldest is deleted. Rotated names still end in ``.jsonl``, so
  drift monitoring reads a folder of them. Disk use stays under about
  ``max_bytes * (backups + 1)``: a file exceeds the cap only by a batch written to an empty file.
  Workers rotate under an exclusive ``flock`` on the folder, and only the file still at the path,
  so two workers never rotate the same file twice.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; workers then rotate without the lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("mlci.serving.prediction_log")

# After a failed rotation (permissions, say), writing goes on in the full file: rotation is tried
# (and the failure reported) again only after this long, not before every batch.
_RETRY_ROTATION_SECONDS = 60.0


def backup_path(path: Path, index: int) -> Path:
    """``logs/predictions.jsonl`` → ``logs/predictions.<index>.jsonl`` (the suffix stays last)."""
    return path.with_name(f"{path.stem}.{index}{path.suffix}")


class AppendFile:
    """An append-only file at ``path``; one thread writes to it (the log's writer thread)."""

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 1) -> None:
        if max_bytes < 0 or (max_bytes and backups < 1):
            raise ValueError(f"need max_bytes >= 0 and backups >= 1, not {max_bytes}, {backups}")
        self.path = Path(path)
        self.max_bytes, self.backups = max_bytes, backups
        self.reopened = self.rotations = 0
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._rotation_failed_at: float | None = None

    def write(self, data: bytes) -> None:
        """Append ``data`` with one ``write``; OSError when the file cannot be written."""
        if self._fd is not None and self._moved():
            log.info("prediction log: %s was moved or removed; appending to a new file", self.path)
            self.reopened += 1
            self.close()
        if self._fd is None:
            self._open()
        if self.max_bytes and self._needs_rotation(len(data)):
            self._rotate(len(data))
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self.close()  # reopen next time: the file may have been moved or the disk freed
            raise

    def close(self) -> None:
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self._identity = None

    # -- internals ------------------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        st = os.fstat(self._fd)
        self._identity = (st.st_dev, st.st_ino)

    def _moved(self) -> bool:
        """True when the path no longer names the open file (one ``stat`` per batch)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def _needs_rotation(self, incoming: int) -> bool:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size  # other workers append too: ask the file, not a tally
        if size == 0 or size + incoming <= self.max_bytes:
            return False
        failed = self._rotation_failed_at
        return failed is None or time.monotonic() - failed >= _RETRY_ROTATION_SECONDS

    def _rotate(self, incoming: int) -> None:
        """Shift the backups and move the full file aside, then open a new one at the path.

        A failure is reported and writing goes on in the full file: a prediction is never lost
        to keep the cap."""
        try:
            lock = os.open(self.path.parent, os.O_RDONLY)
        except OSError as err:
            return self._rotation_failed(err)
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            # Another worker may have rotated while this one waited: rotate only the file this
            # one still writes to, if it is still too full.
            try:
                st = self.path.stat()
            except FileNotFoundError:  # moved away meanwhile: a new file is all it takes
                st = None
            if (
                st is not None
                and (st.st_dev, st.st_ino) == self._identity
                and st.st_size + incoming > self.max_bytes
            ):
                for i in range(self.backups - 1, 0, -1):
                    older = backup_path(self.path, i)
                    if older.exists():
                        older.replace(backup_path(self.path, i + 1))
                self.path.replace(backup_path(self.path, 1))
                self.rotations += 1
                log.info(
                    "prediction log: %s reached %d bytes; moved it to %s (keeping %d)",
                    self.path,
                    st.st_size,
                    backup_path(self.path, 1).name,
                    self.backups,
                )
        except OSError as err:
            return self._rotation_failed(err)
        finally:
            os.close(lock)  # releases the flock
        self._rotation_failed_at = None
        self.close()
        self._open()

    def _rotation_failed(self, err: OSError) -> None:
        self._rotation_failed_at = time.monotonic()
        log.error(
            "prediction log: cannot rotate %s (%s: %s); appending to it beyond "
            "MLCI_PREDICTION_LOG_MAX_BYTES, trying again in %d s",
            self.path,
            type(err).__name__,
            err,
            _RETRY_ROTATION_SECONDS,
        )
