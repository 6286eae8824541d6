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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import structlog

from callcenter.errors import RecordError
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

T = TypeVar("T")


class OpenableStore(Protocol):
    """What the writer needs of a store: open (create if needed), close, and run several
    writes as one all-or-nothing transaction; all blocking."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def batch(self, writes: Callable[[], T]) -> T: ...


@dataclass(frozen=True, slots=True)
class _Job:
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
    ) -> None:
        self.store = store
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
        self._written: OrderedDict[str, None] = OrderedDict()  # recently durable keys
        self._failed: dict[str, str] = {}  # key -> why it was given up
        self._last_error: dict[str, str] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def pending(self) -> list[str]:
        """Keys submitted but not yet durable."""
        return list(self._pending)

    async def start(self) -> None:
        """Open the store (in the writer thread) and start writing. Idempotent.

        Raises RecordError when the store cannot be opened (bad path, permissions).
        """
        if self._task is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")
        await self.run(self.store.open)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")

    def submit(self, key: str, write: Callable[[], object]) -> None:
        """Queue ``write`` (blocking, idempotent) to run in the writer thread."""
        self._pending[key] = self._pending.get(key, 0) + 1
        self._failed.pop(key, None)
        self._queue.put_nowait(_Job(key, write))

    def knows(self, key: str) -> bool:
        """True when ``key`` is pending, recently written or given up."""
        return key in self._pending or key in self._written or key in self._failed

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a blocking store call (a read, say) in the writer thread."""
        if self._executor is None:
            raise RecordError("the record writer is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

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

        Raises RecordError naming the records still unwritten after ``flush_timeout`` seconds.
        """
        if self._task is None and self._pending and self._executor is None:
            await self.start()
        unwritten: list[str] = []
        if self._task is not None:
            try:
                async with asyncio.timeout(flush_timeout):
                    await self._queue.join()
            except TimeoutError:
                unwritten = list(self._pending)
            await cancel_and_wait(self._task)
            self._task = None
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
            self._executor.shutdown(wait=False)
            self._executor = None
        if unwritten:
            errors = {self._last_error.get(k, "") for k in unwritten} - {""}
            log.error("records_not_written", count=len(unwritten), keys=unwritten[:20])
            raise RecordError(
                f"{len(unwritten)} record(s) could not be written ({', '.join(unwritten[:5])}"
                f"{', ...' if len(unwritten) > 5 else ''}): {'; '.join(sorted(errors)) or '?'}"
            )

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
            self._done(job.key)
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
                self._done(job.key, failure=f"{type(exc).__name__}: {exc}")
                return
            if attempt > 1:
                log.info("record_write_recovered", key=job.key, attempts=attempt)
            self._done(job.key)
            return

    def _done(self, key: str, failure: str | None = None) -> None:
        left = self._pending.get(key, 1) - 1
        if left > 0:
            self._pending[key] = left
        else:
            self._pending.pop(key, None)
        self._last_error.pop(key, None)
        if failure is not None:
            self._failed[key] = failure
        else:
            self._written[key] = None
            self._written.move_to_end(key)
            while len(self._written) > self._remember:
                self._written.popitem(last=False)
        if key in self._pending:
            return
        for future in self._waiters.pop(key, []):
            if future.done():
                continue
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(RecordError(f"record {key} was not written: {failure}"))
