"""Long reports (a month's figures, a forecast's weeks) are read in a process of their own:
calls and the records being written never wait for them, a worker that dies costs the
report it was reading and nothing else, and a stop does not wait for a report."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from test_record_rescue import T0, cdr

from callcenter.cli import format_status
from callcenter.errors import RecordError
from callcenter.records import summary
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.reports import ReportReader
from callcenter.records.store import RecordStore, SqliteCdrStore
from callcenter.records.writer import RecordWriter


def reading_process(store: RecordStore) -> tuple[int, int]:
    """Who reads, and which store object (the worker keeps its store open)."""
    return os.getpid(), id(store)


def a_slow_report(store: RecordStore, seconds: float) -> str:
    time.sleep(seconds)
    return "read"


def a_broken_report(store: RecordStore) -> None:
    raise RecordError("cannot read records in the test: no such table")


@pytest.fixture
async def reports(tmp_path: Path) -> AsyncIterator[ReportReader]:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    reader = store.reader()
    writer = RecordWriter(store, reader=reader)
    await writer.start()
    reports = ReportReader(reader, writer)
    try:
        yield reports
    finally:
        reports.close()
        await writer.close()


async def test_a_report_is_read_in_a_process_of_its_own_that_keeps_its_database_open(
    reports: ReportReader,
) -> None:
    first = await reports.read(reading_process)
    again = await reports.read(reading_process)
    assert first[0] != os.getpid()
    assert again == first, "the same worker, with the same open store"
    assert reports.worker == first[0]


async def test_the_figures_read_in_the_worker_match_those_read_at_home(
    reports: ReportReader, tmp_path: Path
) -> None:
    store = reports._writer.store
    assert isinstance(store, SqliteCdrStore)
    call = "1796444790.1"
    lines = [
        ("ENTERQUEUE", ("", "0612345678", "1")),
        ("CONNECT", ("3", "1796444790.2", "1")),
        ("COMPLETECALLER", ("3", "95", "1")),
    ]
    entries = tuple(
        QueueLogEntry(f"{call}:{n}", T0 + timedelta(seconds=n), call, "support", "Agent/1002", e, d)
        for n, (e, d) in enumerate(lines)
    )
    reports._writer.submit("ql:1", lambda: store.write_queue_log(entries))
    await reports._writer.wait_written("ql:1")
    periods = summary.Periods(T0 - timedelta(days=1), T0 + timedelta(days=1), "day", UTC)
    there = await reports.read(summary.read_agent_figures, periods, {"1002": "Bob"})
    here = summary.read_agent_figures(store, periods, {"1002": "Bob"})
    assert there and [f.as_dict() for f in there] == [f.as_dict() for f in here]
    assert "Bob" in str(there[0].as_dict())


async def test_a_report_that_fails_says_why_and_the_next_one_is_read(
    reports: ReportReader,
) -> None:
    with pytest.raises(RecordError, match="no such table"):
        await reports.read(a_broken_report)
    assert await reports.read(a_slow_report, 0) == "read"


async def test_status_says_where_reports_are_read_how_many_and_the_last_failure(
    reports: ReportReader,
) -> None:
    before = reports.health()
    reading = asyncio.create_task(reports.read(a_slow_report, 1.0))
    await asyncio.sleep(0.3)
    while_reading = reports.health()
    await reading
    with pytest.raises(RecordError):
        await reports.read(a_broken_report)
    after = reports.health()
    said = format_status({"records": {"ok": True, "unwritten": 0, "reports": after}})
    assert before == {
        "where": "process",
        "worker": None,
        "reading": 0,
        "read": 0,
        "failed": 0,
    }
    assert while_reading["reading"] == 1
    assert (after["reading"], after["read"], after["failed"]) == (0, 1, 1)
    assert after["worker"] == reports.worker and after["worker"] is not None
    assert "no such table" in after["error"] and after["last_failure"]
    assert f"Reports: read in process {after['worker']}, 1 read, 1 failed (last at " in said
    assert "no such table" in said


async def test_a_worker_killed_under_a_report_fails_that_report_and_the_next_one_starts_anew(
    reports: ReportReader,
) -> None:
    first, _ = await reports.read(reading_process)
    reading = asyncio.create_task(reports.read(a_slow_report, 30))
    await asyncio.sleep(0.2)
    os.kill(first, signal.SIGKILL)
    with pytest.raises(RecordError, match="the process reading the report stopped"):
        await asyncio.wait_for(reading, 20)
    second, _ = await reports.read(reading_process)
    assert second not in (first, os.getpid())


async def test_a_stop_does_not_wait_for_a_report_being_read(reports: ReportReader) -> None:
    await reports.read(reading_process)
    reading = asyncio.create_task(reports.read(a_slow_report, 30))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    reports.close()
    with pytest.raises(RecordError, match="stopped while the report was read"):
        await asyncio.wait_for(reading, 20)
    assert time.monotonic() - started < 15, "the 30 s report was cut short"


async def test_an_in_memory_database_reads_its_reports_on_the_writers_thread() -> None:
    store = SqliteCdrStore(":memory:")
    writer = RecordWriter(store)
    await writer.start()
    reports = ReportReader(store.reader(), writer)
    try:
        pid, kept = await reports.read(reading_process)
        assert (pid, kept) == (os.getpid(), id(store))
        assert reports.worker is None
    finally:
        reports.close()
        await writer.close()


def test_a_record_store_crosses_to_the_worker_without_its_connection(tmp_path: Path) -> None:
    import pickle

    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    store.write_cdr(cdr())
    copy = pickle.loads(pickle.dumps(store.reader()))
    try:
        assert copy.reading and copy.path == store.path
        assert copy.has_cdr(cdr().uniqueid)
        with pytest.raises(RecordError):
            copy.write_cdr(cdr(uniqueid="2.2"))
    finally:
        copy.close()
        store.close()
