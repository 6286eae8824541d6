"""Reading long reports in a process of their own, so that calls never wait for them.

A month's figures or a forecast's weeks of history take seconds of Python to fold. Run in a
thread of the daemon, that work holds the interpreter lock in 5 ms slices: every call's next
command and every record written meanwhile waits for one (measured: the event loop's lag
went from 0.09 ms to 5 ms at the median and 10 ms at p99 while a forecast was read;
``benchmarks/forecast.py``). :class:`ReportReader` runs such reads in one worker process
(started with ``spawn`` at the first report: a fork of a threaded asyncio process is not
safe), with a reading store of its own that the worker keeps open between reports.

A read is a module-level function ``fn(store, *args, **kwargs)``: it, its arguments and its
result cross the process boundary by pickle. A worker that dies (killed, out of memory)
fails the reads it had with :class:`~callcenter.errors.RecordError` and the next read starts
a new one. Where the database cannot be opened twice (SQLite in memory) the reads run on the
record writer's thread instead, as before. :meth:`ReportReader.health` says where reports
are read, how many are being read, and the last failure (``/status``, ``callcenter
status``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import structlog

from callcenter.errors import RecordError

if TYPE_CHECKING:
    from callcenter.records.store import RecordStore
    from callcenter.records.writer import RecordWriter

log = structlog.get_logger(__name__)

__all__ = ["ReportReader"]

P = ParamSpec("P")
T = TypeVar("T")

_kept: dict[tuple[type, str], RecordStore] = {}
"""In the worker: the reading store of each database, kept open between reports."""


def _worker_started(level: str) -> None:
    """The worker's first step: its log lines as the daemon's, and Ctrl-C left to the
    daemon (which stops the worker itself)."""
    from callcenter.log import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(level=level)


def _read(
    store: RecordStore,
    fn: Callable[Concatenate[RecordStore, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """In the worker: ``fn`` on the kept store of ``store``'s database."""
    key = (type(store), store.where)
    kept = _kept.setdefault(key, store)
    return fn(kept, *args, **kwargs)


class ReportReader:
    """Runs long reads of the records in a worker process (see the module doc)."""

    def __init__(
        self, reader: RecordStore | None, writer: RecordWriter, *, log_level: str = "warning"
    ) -> None:
        self.reader = reader
        """The reading store the worker opens (``store.reader()``); None: reads run on the
        writer's thread, on its store."""
        self._writer = writer
        self._log_level = log_level
        self._pool: ProcessPoolExecutor | None = None
        self._reading = 0
        self._done = 0
        self._failed = 0
        self._last_failure: tuple[datetime, str] | None = None

    @property
    def worker(self) -> int | None:
        """The worker's process id, while one runs."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return next(iter(processes), None)

    async def read(
        self,
        fn: Callable[Concatenate[RecordStore, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``fn(store, *args, **kwargs)`` in the worker; its result. ``fn`` is a
        module-level function; it, the arguments and the result must pickle. RecordError
        when the read fails or the worker died under it."""
        self._reading += 1
        try:
            result = await self._read_once(fn, *args, **kwargs)
        except Exception as exc:
            self._failed += 1
            self._last_failure = (datetime.now(UTC), str(exc) or type(exc).__name__)
            raise
        finally:
            self._reading -= 1
        self._done += 1
        return result

    def health(self) -> dict[str, Any]:
        """Where reports are read (``process``, with its ``worker`` pid while it runs, or
        ``writer thread``), how many are being read now, read and failed since the start,
        and the last failure (when and why)."""
        state: dict[str, Any] = {
            "where": "process" if self.reader is not None else "writer thread",
            "worker": self.worker,
            "reading": self._reading,
            "read": self._done,
            "failed": self._failed,
        }
        if self._last_failure is not None:
            when, error = self._last_failure
            state["last_failure"] = when.isoformat(timespec="seconds")
            state["error"] = error
        return state

    async def _read_once(
        self,
        fn: Callable[Concatenate[RecordStore, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if self.reader is None:
            store = self._writer.store
            return await self._writer.run(lambda: fn(store, *args, **kwargs))  # type: ignore[arg-type]
        pool = self._started()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                pool,
                _Call(self.reader, fn, args, kwargs),  # type: ignore[arg-type]
            )
        except BrokenProcessPool as exc:
            if self._pool is not pool:
                raise RecordError("the daemon stopped while the report was read") from None
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            log.error("report_reader_died", error=str(exc), hint="the next report starts anew")
            raise RecordError(f"the process reading the report stopped: {exc}") from None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
                initargs=(self._log_level,),
            )
            log.debug("report_reader_started", database=repr(self.reader))
        return self._pool

    def close(self) -> None:
        """Stop the worker, a report it is reading too (its asker gets RecordError).
        Idempotent."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # A month's report still being read would hold the daemon's stop for seconds:
        # the worker only reads, so ending it loses nothing.
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)


class _Call:
    """A read as the worker runs it (a class, not a closure: it must pickle)."""

    def __init__(
        self,
        store: RecordStore,
        fn: Callable[..., object],
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> None:
        self.store = store
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __call__(self) -> object:
        return _read(self.store, self.fn, *self.args, **self.kwargs)
