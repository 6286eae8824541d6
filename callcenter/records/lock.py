"""One daemon per record database: an exclusive lock on a file beside it.

Two daemons on one PBX take the same calls twice: on AsyncAGI both read every AsyncAGIStart
and send commands to the same channel, on FreeSWITCH park both answer every CHANNEL_PARK. A
second ``callcenter run`` of the same config (a run left in a terminal beside the systemd
service, say) would do just that, and write the same records twice. So the daemon holds an
exclusive ``flock`` on ``<database>.lock`` while it runs, with its pid in the file; a second
one is refused naming the first (RecordError: ``callcenter run`` exits 4). The kernel drops
the lock with the process, so a crash leaves nothing stale behind. Readers
(``callcenter report``) take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import structlog

from callcenter.errors import RecordError

log = structlog.get_logger(__name__)

IN_MEMORY = ":memory:"


def lock_path(database: str | os.PathLike[str]) -> Path:
    """The lock file of a record database."""
    return Path(f"{os.fspath(database)}.lock")


class RecordLock:
    """The lock a running daemon holds on its record database (see the module doc)."""

    def __init__(self, database: str | os.PathLike[str]) -> None:
        self.database = Path(database)
        self.path = lock_path(database)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock; RecordError when another daemon holds it or the file cannot be
        made. Idempotent. An in-memory database needs none."""
        if self._fd is not None or str(self.database) == IN_MEMORY:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise RecordError(f"cannot open record database {self.database}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_pid(fd)
            os.close(fd)
            who = f" (pid {other})" if other else ""
            raise RecordError(
                f"record database {self.database} is in use by another callcenter daemon{who}:"
                " one daemon per record database (stop it, or give this one its own"
                " records.cdr_path)"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise RecordError(f"cannot lock record database {self.database}: {exc}") from exc
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        log.debug("record_lock_taken", path=str(self.path))

    def release(self) -> None:
        """Let the lock go (the file stays: removing it would race a daemon taking it)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def holder(database: str | os.PathLike[str]) -> int | None:
    """The pid of the daemon holding ``database``'s lock, 0 if held by a process that did not
    say, None when nobody holds it."""
    path = lock_path(database)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        except OSError:
            return None
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    return None


__all__ = ["RecordLock", "holder", "lock_path"]
