"""Getting records onto disk without ever blocking a call.

A :class:`RecordWriter` owns one dedicated thread and runs a store's blocking writes there,
in submission order. Listeners on the event bus only ``submit`` (a dict insert and a queue
put); the event loop never waits for the disk. Writes that queued up while the previous ones
ran go to the store together, as one transaction (:meth:`OpenableStore.batch`): one sync to
disk and one thread hand-over for the lot, so the cost per record falls as load rises.
With a ``commit_interval``, a busy writer also waits until that long after its previous
commit before the next one, so that more records share it (a sync costs about 0.25 ms of CPU
on its own; benchmarks/README.md).

A write that fails with :class:`~callcenter.errors.RecordError` (disk full, database
locked, I/O error) is kept in memory and retried with exponential backoff until it
succeeds or :meth:`RecordWriter.close` gives up; later records wait behind it so order is
kept. Stores must therefore make writes idempotent (the SQLite store keys CDRs by uniqueid).
What is still unwritten when :meth:`RecordWriter.close` gives up goes to the writer's
rescue (:mod:`callcenter.records.rescue`): a file the next start writes to the database.

Reads that take long (a month's figures, a forecast's weeks of history, a desktop's day)
go to a second thread with a reading store of their own (:meth:`RecordWriter.read`), so
that records keep reaching the disk while a supervisor's report is being read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog

from callcenter.errors import RecordError
from callcenter.tasks import cancel_and_wait

if TYPE_CHECKING:
    from callcenter.records.rescue import Replayed

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Rescue(Protocol):
    """Where writes go that the store would not take by the time the writer closes."""

    paths: tuple[Path, ...]

    def keep(self, jobs: Sequence[tuple[str, Callable[[], object]]]) -> Path: ...

    def waiting(self) -> list[Path]: ...

    def line(self, key: str, write: Callable[[], object]) -> str: ...

    def replay(self) -> Replayed: ...


class OpenableStore(Protocol):
    """What the writer needs of a store: open (create if needed), close, and run several
    writes as one all-or-nothing transaction; all blocking."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def batch(self, writes: Callable[[], T]) -> T: ...

    def out_of_space(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Job:
    seq: int
    key: str
    write: Callable[[], object]


class RecordWriter:
    """Runs blocking store writes on one thread, in order, retrying failed ones.

    ``key`` names a record (``cdr:<uniqueid>``); :meth:`wait_written` waits for it.
    """

    def __init__(
        self,
        store: OpenableStore,
        *,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        remember: int = 65536,
        batch_max: int = 256,
        commit_interval: float = 0.0,
        rescue: Rescue | None = None,
        reader: OpenableStore | None = None,
    ) -> None:
        self.store = store
        self.rescue = rescue
        self.reader = reader
        """The store :meth:`read`'s functions read (``store.reader()``), or None: they run
        in the writer's thread then."""
        self._read_executor: ThreadPoolExecutor | None = None
        self._batch_max = max(1, batch_max)
        self._commit_interval = max(0.0, commit_interval)
        self._last_commit = float("-inf")
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._remember = remember
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, int] = {}  # key -> jobs submitted, not yet durable
        self._unwritten: dict[int, _Job] = {}  # seq -> job, in submission order
        self._seq = 0
        self._written: OrderedDict[str, None] = OrderedDict()  # recently durable keys
        self._failed: dict[str, str] = {}  # key -> why it was given up
        self._last_error: dict[str, str] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._failing_since: datetime | None = None
        self._failure = ""
        self._replay_pending = False
        #: Called on the event loop with each key once its records are durable.
        self.on_written: Callable[[str], None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def pending(self) -> list[str]:
        """Keys submitted but not yet durable."""
        return list(self._pending)

    def is_pending(self, key: str) -> bool:
        """Is record ``key`` submitted and not yet durable (nor given up)?"""
        return key in self._pending

    @property
    def waiting(self) -> int:
        """How many records are submitted and not yet durable."""
        return len(self._pending)

    async def start(self) -> None:
        """Open the store (in the writer thread) and start writing. Idempotent.

        Raises RecordError when the store cannot be opened (bad path, permissions), unless
        the store is out of space: calls must go on, so the writer starts anyway, keeps
        records in memory and retries (see :meth:`health`). Records a previous writer on
        the same store had to rescue are written first; when the store still refuses them
        they stay in their file and are tried again after each record written.
        """
        if self._task is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")
        try:
            await self.run(self.store.open)
        except RecordError as exc:
            if not await self.run(self.store.out_of_space):
                raise
            self._failing(str(exc))
            log.error(
                "records_waiting_for_space",
                store=repr(self.store),
                error=str(exc),
                hint="calls go on; records are kept in memory until the disk has room",
            )
            self._replay_pending = self.rescue is not None
        else:
            if self.rescue is not None:
                self._replay_pending = not await self._replay(self.rescue)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")

    def health(self) -> dict[str, Any]:
        """Whether records reach the store: ``{"ok": true, "unwritten": 0}``, and while
        writes fail, since when and the last error (for ``/health`` and ``/status``)."""
        state: dict[str, Any] = {
            "ok": self._failing_since is None,
            "unwritten": len(self._unwritten),
        }
        if self._failing_since is not None:
            state["failing_since"] = self._failing_since.isoformat(timespec="milliseconds")
            state["error"] = self._failure
        if self._replay_pending and self.rescue is not None:
            waiting = [str(path) for path in self.rescue.waiting()]
            if waiting:
                state["rescued_files"] = waiting
        return state

    def _failing(self, error: str) -> None:
        if self._failing_since is None:
            self._failing_since = datetime.now(UTC)
        self._failure = error

    def submit(self, key: str, write: Callable[[], object]) -> None:
        """Queue ``write`` (blocking, idempotent) to run in the writer thread."""
        self._pending[key] = self._pending.get(key, 0) + 1
        self._failed.pop(key, None)
        self._seq += 1
        job = _Job(self._seq, key, write)
        self._unwritten[job.seq] = job
        self._queue.put_nowait(job)

    def knows(self, key: str) -> bool:
        """True when ``key`` is pending, recently written or given up."""
        return key in self._pending or key in self._written or key in self._failed

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a blocking store call (a read, say) in the writer thread."""
        if self._executor is None:
            raise RecordError("the record writer is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a blocking read (of :attr:`reader` when there is one, else of the store) in
        the reading thread: it sees what was committed before it began, and neither waits
        for the writes queued meanwhile nor holds them up. Without a reader it runs in
        the writer's thread, as :meth:`run`."""
        if self.reader is None:
            return await self.run(fn)
        if self._executor is None:
            raise RecordError("the record writer is not started")
        if self._read_executor is None:
            self._read_executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="records-read"
            )
        return await asyncio.get_running_loop().run_in_executor(self._read_executor, fn)

    async def wait_written(self, key: str, timeout: float = 5.0) -> None:
        """Return once the record ``key`` is durable; RecordError on timeout or give-up."""
        if key in self._written and key not in self._pending:
            return
        if key in self._failed:
            raise RecordError(f"record {key} was not written: {self._failed[key]}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(key, [])
        waiters.append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            why = self._last_error.get(key)
            detail = f" (last error: {why})" if why else ""
            raise RecordError(f"record {key} not written within {timeout}s{detail}") from None
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters and self._waiters.get(key) is waiters:
                del self._waiters[key]

    async def close(self, flush_timeout: float = 10.0) -> None:
        """Write everything queued, then close the store and the thread. Idempotent.

        What is still unwritten after ``flush_timeout`` seconds goes to the rescue file, for
        the next start to write (a warning names it). Raises RecordError naming the records
        when there is no rescue or it failed too; each is then logged in full
        (``record_unwritten``), the last place left for it.
        """
        if self._task is None and self._pending and self._executor is None:
            await self.start()
        unwritten: list[_Job] = []
        if self._task is not None:
            try:
                async with asyncio.timeout(flush_timeout):
                    await self._queue.join()
            except TimeoutError:
                unwritten = list(self._unwritten.values())
            await cancel_and_wait(self._task)
            self._task = None
        kept: str | None = None
        if unwritten and self._executor is not None and self.rescue is not None:
            kept = await self._keep(self.rescue, unwritten)
        if self._read_executor is not None and self.reader is not None:
            await asyncio.get_running_loop().run_in_executor(self._read_executor, self.reader.close)
            self._read_executor.shutdown(wait=False)
            self._read_executor = None
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
            self._executor.shutdown(wait=False)
            self._executor = None
        if not unwritten:
            return
        keys = list(dict.fromkeys(job.key for job in unwritten))
        errors = "; ".join(sorted({self._last_error.get(k, "") for k in keys} - {""})) or "?"
        if kept is not None:
            # In the rescue's care now: closing again must not start writing them anew.
            self._pending.clear()
            self._unwritten.clear()
            self._queue = asyncio.Queue()
            log.warning(
                "records_kept_for_next_start",
                count=len(unwritten),
                file=kept,
                error=errors,
                hint="the next start on this database writes them",
            )
            return
        for job in unwritten:
            line = ""
            if self.rescue is not None:
                with contextlib.suppress(TypeError):
                    line = self.rescue.line(job.key, job.write)
            log.error("record_unwritten", key=job.key, line=line)
        log.error("records_not_written", count=len(keys), keys=keys[:20])
        raise RecordError(
            f"{len(keys)} record(s) could not be written ({', '.join(keys[:5])}"
            f"{', ...' if len(keys) > 5 else ''}): {errors}"
        )

    async def _keep(self, rescue: Rescue, jobs: list[_Job]) -> str | None:
        """Hand ``jobs`` to ``rescue``; the file's path, or None when that failed too."""
        pairs = [(job.key, job.write) for job in jobs]
        try:
            kept = await self.run(functools.partial(rescue.keep, pairs))
        except (OSError, TypeError) as exc:
            log.error("records_not_kept", files=[str(p) for p in rescue.paths], error=str(exc))
            return None
        return str(kept)

    async def _replay(self, rescue: Rescue, *, quiet: bool = False) -> bool:
        """Write what ``rescue`` holds; False (logged unless ``quiet``) when the store
        still refuses it."""
        try:
            replayed = await self.run(rescue.replay)
        except RecordError as exc:
            if not quiet:
                log.error(
                    "rescued_records_not_written",
                    files=[str(path) for path in rescue.waiting()],
                    error=str(exc),
                    hint="they stay in the file, tried again once records are written",
                )
            return False
        if replayed.written or replayed.rejected:
            log.warning(
                "rescued_records_written",
                count=replayed.written,
                files=[str(path) for path in replayed.files],
                unreadable_lines=list(replayed.rejected),
                moved_to=[str(path) for path in replayed.moved_to],
            )
        return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            # Under load, commit at most once per interval: what arrives meanwhile shares the
            # transaction and its sync. An idle writer commits at once.
            wait = self._last_commit + self._commit_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            while len(jobs) < self._batch_max and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            try:
                if len(jobs) == 1 or not await self._write_batch(jobs):
                    for job in jobs:
                        await self._write(job)
                if self._replay_pending and self._failing_since is None and self.rescue:
                    # The store takes records again: what an earlier stop rescued goes too.
                    self._replay_pending = not await self._replay(self.rescue, quiet=True)
            finally:
                self._last_commit = loop.time()
                for _ in jobs:
                    self._queue.task_done()

    async def _write_batch(self, jobs: list[_Job]) -> bool:
        """Write ``jobs`` in one transaction; False when it failed (nothing of it was kept:
        the caller writes them one by one, with the retries and the give-ups)."""

        def write_all() -> None:
            for job in jobs:
                job.write()

        try:
            await self.run(functools.partial(self.store.batch, write_all))
        except Exception as exc:
            log.debug("record_batch_failed", records=len(jobs), error=str(exc))
            return False
        for job in jobs:
            self._done(job)
        return True

    async def _write(self, job: _Job) -> None:
        delay = self._retry_initial
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.run(job.write)
            except RecordError as exc:
                self._last_error[job.key] = str(exc)
                self._failing(str(exc))
                log.warning(
                    "record_write_failed",
                    key=job.key,
                    attempt=attempt,
                    retry_in=round(delay, 3),
                    error=str(exc),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            except Exception as exc:
                # A bug, not the disk: retrying would loop forever on the same record.
                log.exception("record_write_crashed", key=job.key)
                self._done(job, failure=f"{type(exc).__name__}: {exc}")
                return
            if attempt > 1:
                log.info("record_write_recovered", key=job.key, attempts=attempt)
            self._done(job)
            return

    def _done(self, job: _Job, failure: str | None = None) -> None:
        key = job.key
        self._unwritten.pop(job.seq, None)
        left = self._pending.get(key, 1) - 1
        if left > 0:
            self._pending[key] = left
        else:
            self._pending.pop(key, None)
        self._last_error.pop(key, None)
        if failure is not None:
            self._failed[key] = failure
        else:
            self._failing_since = None
            self._written[key] = None
            self._written.move_to_end(key)
            while len(self._written) > self._remember:
                self._written.popitem(last=False)
        if key in self._pending:
            return
        if failure is None and self.on_written is not None:
            self.on_written(key)
        for future in self._waiters.pop(key, []):
            if future.done():
                continue
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(RecordError(f"record {key} was not written: {failure}"))
