"""CDRs: what the record says for calls a supervisor recognises, and that it reaches disk."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.acd.agent import Agent
from callcenter.acd.router import Router
from callcenter.errors import RecordError
from callcenter.events import (
    LEFT_TO_PBX,
    AgentConnected,
    AgentRingFailed,
    AgentRinging,
    CallAnswered,
    CallEnded,
    CallEvent,
    CallMonitored,
    CallStarted,
    CallTransferred,
    EventBus,
    IvrStep,
    QueueAbandoned,
    QueueExited,
    QueueJoined,
    TalkEnded,
)
from callcenter.records.cdr import CDR_FIELDS, CdrRecord, CdrRecorder, finish, fold
from callcenter.records.shifts import ShiftRecorder
from callcenter.records.store import CDR_COLUMNS, SqliteCdrStore
from callcenter.records.writer import RecordWriter

T0 = datetime(2024, 5, 6, 9, 0, 0, tzinfo=UTC)
MONO0 = 5000.0


def at(t: float) -> dict[str, Any]:
    """Event times ``t`` seconds into the call (wall clock and monotonic agree)."""
    return {"at": T0 + timedelta(seconds=t), "mono": MONO0 + t}


def started(t: float = 0.0, call_id: str = "1715000000.42") -> CallStarted:
    return CallStarted(
        call_id=call_id,
        channel="PJSIP/sipp-00000001",
        caller_num="0612345678",
        caller_name="Alice Martin",
        dialed="800",
        context="from-external",
        linked_id="1715000000.40",
        accountcode="acme",
        **at(t),
    )


def ended(
    t: float, by: str = "caller", cause: int = 16, call_id: str = "1715000000.42"
) -> CallEnded:
    names = {16: "NORMAL_CLEARING", 17: "USER_BUSY", 34: "NORMAL_CIRCUIT_CONGESTION"}
    return CallEnded(
        call_id=call_id, hung_up_by=by, cause=cause, cause_name=names.get(cause, "?"), **at(t)
    )


CID = "1715000000.42"


def run(events: list[CallEvent]) -> CdrRecord:
    draft = None
    for event in events:
        draft = fold(draft, event)
    assert draft is not None
    return finish(draft)


def answered_by_agent_events() -> list[CallEvent]:
    return [
        started(0.0),
        CallAnswered(call_id=CID, **at(0.2)),
        IvrStep(call_id=CID, flow="main", node="welcome", **at(0.3)),
        IvrStep(call_id=CID, flow="main", node="support_q", digits="2", **at(5.0)),
        QueueJoined(call_id=CID, queue="support", position=1, **at(5.1)),
        AgentRinging(call_id=CID, queue="support", agent="1002", device="PJSIP/1002", **at(6.0)),
        AgentRingFailed(
            call_id=CID, queue="support", agent="1002", status="NOANSWER", ring_seconds=8, **at(14)
        ),
        AgentRinging(call_id=CID, queue="support", agent="1001", device="PJSIP/1001", **at(14.5)),
        AgentConnected(
            call_id=CID,
            queue="support",
            agent="1001",
            peer_channel="PJSIP/1001-00000003",
            wait_seconds=15.0,
            ring_seconds=5.6,
            **at(20.1),
        ),
        TalkEnded(call_id=CID, agent="1001", talk_seconds=60.0, hung_up_by="agent", **at(80.1)),
        ended(80.6, by="agent"),
    ]


# ---------------------------------------------------------------------- folds


def test_call_answered_by_an_agent() -> None:
    cdr = run(answered_by_agent_events())
    assert cdr.uniqueid == CID
    assert cdr.linkedid == "1715000000.40"
    assert cdr.accountcode == "acme"
    assert cdr.src == "0612345678"
    assert cdr.clid == '"Alice Martin" <0612345678>'
    assert (cdr.dst, cdr.dcontext) == ("800", "from-external")
    assert cdr.channel == "PJSIP/sipp-00000001"
    assert cdr.dstchannel == "PJSIP/1001-00000003"
    assert cdr.lastapp == "Dial"
    assert cdr.start == T0
    assert cdr.answer == T0 + timedelta(seconds=0.2)
    assert cdr.end == T0 + timedelta(seconds=80.6)
    assert cdr.duration == 81, "80.6 s rounds half up, as Asterisk does"
    assert cdr.billsec == 80, "from the IVR's answer: 80.4 s"
    assert cdr.disposition == "ANSWERED"
    assert cdr.ivr_path == "main:welcome>2>main:support_q"
    assert cdr.queue == "support"
    assert cdr.wait_seconds == 15.0
    assert cdr.agent == "1001"
    assert cdr.talk_seconds == 60.0
    assert (cdr.transfers, cdr.transfer_path) == (0, "")
    assert not cdr.abandoned
    assert (cdr.hung_up_by, cdr.hangup_cause, cdr.hangup_cause_name) == (
        "agent",
        16,
        "NORMAL_CLEARING",
    )


def test_caller_abandons_in_queue() -> None:
    cdr = run(
        [
            started(0.0),
            CallAnswered(call_id=CID, **at(0.1)),
            QueueJoined(call_id=CID, queue="sales", position=3, **at(1.0)),
            AgentRinging(call_id=CID, queue="sales", agent="1001", device="PJSIP/1001", **at(2)),
            AgentRingFailed(
                call_id=CID, queue="sales", agent="1001", status="CANCEL", ring_seconds=1, **at(3)
            ),
            QueueAbandoned(call_id=CID, queue="sales", position=2, wait_seconds=12.5, **at(13.5)),
            ended(13.5),
        ]
    )
    assert cdr.abandoned
    assert cdr.queue == "sales"
    assert cdr.wait_seconds == 12.5
    assert cdr.agent == ""
    assert cdr.talk_seconds == 0.0
    assert cdr.disposition == "ANSWERED", "the IVR answered, so Asterisk says ANSWERED"
    assert cdr.billsec == 13
    assert cdr.hung_up_by == "caller"
    assert cdr.dstchannel == ""


def test_queue_timeout_is_not_an_abandon() -> None:
    cdr = run(
        [
            started(0.0),
            CallAnswered(call_id=CID, **at(0.1)),
            QueueJoined(call_id=CID, queue="sales", position=1, **at(1.0)),
            QueueExited(call_id=CID, queue="sales", reason="timeout", wait_seconds=300, **at(301)),
            ended(305, by="system"),
        ]
    )
    assert not cdr.abandoned
    assert cdr.wait_seconds == 300.0
    assert cdr.hung_up_by == "system"


def test_call_transferred_to_a_supervisor() -> None:
    cdr = run(
        [
            started(0.0),
            CallAnswered(call_id=CID, **at(0.0)),
            QueueJoined(call_id=CID, queue="support", position=1, **at(1.0)),
            AgentConnected(
                call_id=CID,
                queue="support",
                agent="1002",
                peer_channel="PJSIP/1002-00000004",
                wait_seconds=4,
                ring_seconds=2,
                **at(5.0),
            ),
            CallTransferred(call_id=CID, by="1002", to="2000", **at(35.0)),
            TalkEnded(call_id=CID, agent="1002", talk_seconds=30.0, hung_up_by="system", **at(35)),
            TalkEnded(call_id=CID, agent="2000", talk_seconds=45.0, hung_up_by="caller", **at(85)),
            ended(85.0),
        ]
    )
    assert cdr.transfers == 1
    assert cdr.transfer_path == "1002>2000"
    assert cdr.agent == "1002", "agent is the first agent who answered"
    assert cdr.talk_seconds == 75.0
    assert cdr.wait_seconds == 4.0
    assert cdr.duration == cdr.billsec == 85


def test_second_transfer_extends_the_path() -> None:
    cdr = run(
        [
            started(0.0),
            CallTransferred(call_id=CID, by="1002", to="2000", **at(10)),
            CallTransferred(call_id=CID, by="2000", to="3000", kind="attended", **at(20)),
            ended(30.0),
        ]
    )
    assert (cdr.transfers, cdr.transfer_path) == (2, "1002>2000>3000")


def test_supervisors_who_monitored_are_named_once_each_and_a_barge_is_kept() -> None:
    events = answered_by_agent_events()
    monitored = [
        CallMonitored(call_id=CID, supervisor="2000", agent="1001", mode="listen", **at(30)),
        CallMonitored(call_id=CID, supervisor="2001", agent="1001", mode="whisper", **at(35)),
        CallMonitored(call_id=CID, supervisor="2000", agent="1001", mode="barge", **at(40)),
        CallMonitored(call_id=CID, supervisor="2000", agent="1001", mode="listen", **at(50)),
    ]
    cdr = run([*events[:-2], *monitored, *events[-2:]])
    assert (cdr.monitored_by, cdr.barged) == ("2000,2001", True)
    quiet = run([*events[:-2], *monitored[:2], *events[-2:]])
    assert (quiet.monitored_by, quiet.barged) == ("2000,2001", False), (
        "whisper: caller heard no one"
    )
    alone = run(events)
    assert (alone.monitored_by, alone.barged) == ("", False)


def test_caller_hangs_up_in_the_ivr() -> None:
    cdr = run(
        [
            started(0.0),
            CallAnswered(call_id=CID, **at(0.5)),
            IvrStep(call_id=CID, flow="main", node="welcome", **at(0.6)),
            ended(7.4),
        ]
    )
    assert cdr.ivr_path == "main:welcome"
    assert cdr.queue == ""
    assert cdr.wait_seconds == 0.0
    assert cdr.lastapp == "BackGround"
    assert (cdr.duration, cdr.billsec) == (7, 7)
    assert cdr.hung_up_by == "caller"


@pytest.mark.parametrize(
    ("cause", "disposition"), [(16, "NO ANSWER"), (17, "BUSY"), (34, "FAILED")]
)
def test_unanswered_call_disposition_follows_the_hangup_cause(cause: int, disposition: str) -> None:
    cdr = run([started(0.0), ended(3.0, cause=cause)])
    assert cdr.disposition == disposition
    assert cdr.answer is None
    assert cdr.billsec == 0
    assert cdr.duration == 3


def test_clid_without_a_name_is_just_the_number() -> None:
    event = dataclasses.replace(started(0.0), caller_name="")
    assert run([event, ended(1.0)]).clid == "0612345678"


def test_fold_is_pure_and_starts_from_any_event() -> None:
    first = fold(None, QueueJoined(call_id="x", queue="sales", position=1, **at(2.0)))
    assert first.start == T0 + timedelta(seconds=2)
    second = fold(first, CallAnswered(call_id="x", **at(3.0)))
    assert first.answer is None, "earlier drafts never change"
    assert second.answer is not None
    cdr = finish(second)  # no CallEnded: the call ends at its last event
    assert cdr.end == T0 + timedelta(seconds=3)
    assert cdr.duration == 1


def test_record_row_uses_iso_8601_utc() -> None:
    row = run(answered_by_agent_events()).to_row()
    assert row["start"] == "2024-05-06T09:00:00.000+00:00"
    assert row["answer"] == "2024-05-06T09:00:00.200+00:00"
    assert set(row) == set(CDR_FIELDS)


MIDDLE_EVENTS: list[CallEvent] = [
    *answered_by_agent_events()[1:-1],
    QueueAbandoned(call_id=CID, queue="support", position=1, wait_seconds=3, **at(9)),
    QueueExited(call_id=CID, queue="support", reason="timeout", wait_seconds=3, **at(9.5)),
    CallTransferred(call_id=CID, by="1001", to="2000", **at(40)),
    TalkEnded(call_id=CID, agent="2000", talk_seconds=5.0, hung_up_by="caller", **at(45)),
    CallAnswered(call_id=CID, **at(0.1)),
]


@settings(max_examples=300, deadline=None)
@given(
    middle=st.lists(st.sampled_from(MIDDLE_EVENTS), max_size=14).flatmap(st.permutations),
    end_at=st.floats(0, 200),
)
def test_any_event_order_between_start_and_end_gives_a_sane_record(
    middle: list[CallEvent], end_at: float
) -> None:
    cdr = run([started(0.0), *middle, ended(end_at)])
    assert cdr.uniqueid == CID
    assert cdr.duration >= 0
    assert 0 <= cdr.billsec <= cdr.duration
    assert cdr.disposition in {"ANSWERED", "NO ANSWER", "BUSY", "FAILED"}
    assert (cdr.answer is not None) == (cdr.disposition == "ANSWERED")
    assert cdr.wait_seconds >= 0
    assert cdr.talk_seconds >= 0
    assert cdr.transfers == sum(isinstance(e, CallTransferred) for e in middle)
    assert cdr.end == T0 + timedelta(seconds=end_at)


# ---------------------------------------------------------------------- the SQLite store


def test_cdr_table_has_a_column_for_every_record_field() -> None:
    assert tuple(name for name, _ in CDR_COLUMNS) == CDR_FIELDS


async def test_store_file_is_created_on_first_run_under_a_new_folder(tmp_path: Path) -> None:
    db = tmp_path / "var" / "lib" / "callcenter" / "cdr.sqlite3"
    recorder = CdrRecorder(SqliteCdrStore(db))
    await asyncio.wait_for(recorder.start(), 5)
    try:
        assert db.exists()
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"cdr", "agent_sessions", "agent_pauses"} <= tables
    finally:
        await asyncio.wait_for(recorder.close(), 5)


def write_all(tmp_path: Path, *records: CdrRecord) -> tuple[list[bool], list[dict[str, Any]]]:
    """What ``write_cdr`` said for each record, in turn, and the rows stored in the end."""
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    try:
        return [store.write_cdr(r) for r in records], store.fetch_cdrs()
    finally:
        store.close()


def test_writing_the_same_call_twice_keeps_one_row(tmp_path: Path) -> None:
    record = run(answered_by_agent_events())
    written, rows = write_all(tmp_path, record, dataclasses.replace(record, agent="9999"))
    assert written == [True, False]
    assert len(rows) == 1
    assert rows[0]["agent"] == "1001", "the first write wins"
    assert rows[0]["abandoned"] is False
    assert rows[0]["end"] == "2024-05-06T09:01:20.600+00:00"
    assert rows[0]["billsec"] == 80


def test_a_database_from_before_monitoring_and_recording_gets_the_new_columns_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cdr.sqlite3"
    new = ("monitored_by", "barged", "recordingfile", "recording_muted_seconds")
    old_columns = [(n, t) for n, t in CDR_COLUMNS if n not in new]
    old_record = run(answered_by_agent_events())
    with sqlite3.connect(db) as conn:
        columns = ", ".join(f'"{n}" {t}' for n, t in old_columns)
        conn.execute(f"CREATE TABLE cdr ({columns})")
        row = {n: v for n, v in old_record.to_row().items() if n in dict(old_columns)}
        names = ", ".join(f'"{n}"' for n in row)
        marks = ", ".join("?" for _ in row)
        values = [int(v) if isinstance(v, bool) else v for v in row.values()]
        conn.execute(f"INSERT INTO cdr ({names}) VALUES ({marks})", values)
    new_record = dataclasses.replace(
        old_record,
        uniqueid="1715000099.1",
        monitored_by="2000",
        barged=True,
        recordingfile="/var/spool/asterisk/monitor/support/x.wav",
    )
    written, rows = write_all(tmp_path, new_record)
    assert written == [True]
    by_id = {r["uniqueid"]: r for r in rows}
    assert (by_id[CID]["monitored_by"], by_id[CID]["barged"], by_id[CID]["recordingfile"]) == (
        "",
        False,
        "",
    )
    assert by_id["1715000099.1"]["recordingfile"].endswith("/support/x.wav")
    assert (by_id["1715000099.1"]["monitored_by"], by_id["1715000099.1"]["barged"]) == (
        "2000",
        True,
    )


@pytest.mark.parametrize("left", LEFT_TO_PBX)
def test_a_call_left_to_the_pbx_is_superseded_by_its_record_once_taken_back(
    tmp_path: Path, left: str
) -> None:
    """A parked FreeSWITCH caller outlives a daemon restart, an AsyncAGI caller an AMI
    outage: the row written when they were left is provisional, and the record written once
    they were taken back replaces it, from the first start."""
    at_shutdown = run([started(0.0), CallAnswered(call_id=CID, **at(0.2)), ended(30.0, left)])
    after_restart = dataclasses.replace(
        run(answered_by_agent_events()), start=T0 + timedelta(seconds=45), duration=36
    )
    again = dataclasses.replace(after_restart, agent="9999")
    written, rows = write_all(tmp_path, at_shutdown, after_restart, again)
    assert written == [True, True, False], "a real outcome is written once, like any record"
    assert len(rows) == 1
    row = rows[0]
    assert (row["agent"], row["hung_up_by"], row["queue"]) == ("1001", "agent", "support")
    assert row["start"] == "2024-05-06T09:00:00.000+00:00", "the first start stays"
    assert row["duration"] == 81, "from the first start to the end after the restart"
    assert row["billsec"] == after_restart.billsec


def test_unusable_path_is_a_clear_record_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = SqliteCdrStore(blocker / "cdr.sqlite3")
    with pytest.raises(RecordError, match="cannot open record database"):
        store.open()


# ---------------------------------------------------------------------- the recorder


def publish(bus: EventBus, events: list[CallEvent]) -> None:
    for event in events:
        bus.publish(event)


async def test_recorder_writes_the_call_when_it_ends(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    recorder = CdrRecorder(store)
    bus = EventBus()
    bus.subscribe(recorder.on_event)
    await asyncio.wait_for(recorder.start(), 5)
    try:
        events = answered_by_agent_events()
        publish(bus, events[:-1])
        assert recorder.calls_in_progress == 1
        with pytest.raises(RecordError, match="not written within"):
            await recorder.wait_written(CID, timeout=0.05)
        publish(bus, events[-1:])
        await recorder.wait_written(CID, timeout=5)
        assert recorder.calls_in_progress == 0
        rows = await asyncio.wait_for(asyncio.to_thread(store.fetch_cdrs), 5)
        assert [(r["uniqueid"], r["agent"], r["disposition"]) for r in rows] == [
            (CID, "1001", "ANSWERED")
        ]
    finally:
        await asyncio.wait_for(recorder.close(), 5)


async def test_writes_run_off_the_event_loop_thread(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    threads: list[int] = []
    real_execute = store._execute

    def spy(sql: str, params: Any) -> int:
        threads.append(threading.get_ident())
        return real_execute(sql, params)

    store._execute = spy  # type: ignore[method-assign]
    recorder = CdrRecorder(store)
    await asyncio.wait_for(recorder.start(), 5)
    try:
        recorder.on_event(started(0.0))
        recorder.on_event(ended(1.0))
        await recorder.wait_written(CID, timeout=5)
    finally:
        await asyncio.wait_for(recorder.close(), 5)
    assert threads and threading.get_ident() not in threads


async def test_disk_full_once_is_retried_and_the_record_survives(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    real_execute = store._execute
    failures = [sqlite3.OperationalError("database or disk is full")]

    def flaky(sql: str, params: Any) -> int:
        if failures:
            raise failures.pop()
        return real_execute(sql, params)

    store._execute = flaky  # type: ignore[method-assign]
    recorder = CdrRecorder(store)
    recorder.writer._retry_initial = 0.01
    await asyncio.wait_for(recorder.start(), 5)
    try:
        recorder.on_event(started(0.0))
        recorder.on_event(ended(2.0))
        await recorder.wait_written(CID, timeout=5)
        assert failures == []
        assert [r["uniqueid"] for r in store.fetch_cdrs()] == [CID]
    finally:
        await asyncio.wait_for(recorder.close(), 5)


async def test_close_flushes_pending_records(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    recorder = CdrRecorder(store)
    await asyncio.wait_for(recorder.start(), 5)
    for n in range(20):
        recorder.on_event(started(0.0, call_id=f"call-{n}"))
        recorder.on_event(ended(1.0, call_id=f"call-{n}"))
    await asyncio.wait_for(recorder.close(), 5)
    assert len(SqliteCdrStore(tmp_path / "cdr.sqlite3").fetch_cdrs()) == 20


async def test_close_names_the_records_a_broken_disk_kept_unwritten(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")

    def broken(sql: str, params: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    recorder = CdrRecorder(store)
    recorder.writer._retry_initial = 0.01
    await asyncio.wait_for(recorder.start(), 5)
    store._execute = broken  # type: ignore[method-assign]
    recorder.on_event(started(0.0))
    recorder.on_event(ended(1.0))
    with pytest.raises(RecordError, match="disk I/O error"):
        await recorder.wait_written(CID, timeout=0.1)
    assert recorder.writer.pending == [f"cdr:{CID}"], "kept in memory for retry"
    with pytest.raises(RecordError, match=rf"1 record\(s\) could not be written \(cdr:{CID}\)"):
        await asyncio.wait_for(recorder.close(flush_timeout=0.1), 5)


async def test_wait_written_finds_a_call_stored_before_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "cdr.sqlite3"
    first = SqliteCdrStore(db)
    first.write_cdr(run([started(0.0), ended(1.0)]))
    first.close()
    recorder = CdrRecorder(SqliteCdrStore(db))
    await asyncio.wait_for(recorder.start(), 5)
    try:
        await recorder.wait_written(CID, timeout=1)
    finally:
        await asyncio.wait_for(recorder.close(), 5)


# ---------------------------------------------------------------------- agent shifts


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_shifts_and_pauses_are_recorded(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    recorder = CdrRecorder(store)
    shifts = ShiftRecorder(store, recorder.writer)
    bus = EventBus()
    bus.subscribe(recorder.on_event)
    bus.subscribe(shifts.on_event)
    clock = Clock()
    router = Router(
        [Agent(id="1001", device="PJSIP/1001")], {"sales": ["1001"]}, bus=bus, clock=clock
    )
    await asyncio.wait_for(recorder.start(), 5)
    try:
        router.login("1001", via="feature-code")
        clock.now += 3600
        router.pause("1001", "lunch", via="api")
        clock.now += 1800
        router.unpause("1001", via="api")
        clock.now += 60
        router.pause("1001", "break", via="api")
        clock.now += 600
        router.logout("1001", via="api")  # ends the break too
    finally:
        await asyncio.wait_for(recorder.close(), 5)
    (session,) = store.fetch_agent_sessions()
    assert session["agent"] == "1001"
    assert session["duration_seconds"] == 3600 + 1800 + 60 + 600
    assert (session["via_login"], session["via_logout"]) == ("feature-code", "api")
    pauses = store.fetch_agent_pauses()
    assert [(p["reason"], p["duration_seconds"]) for p in pauses] == [
        ("lunch", 1800),
        ("break", 600),
    ]


async def test_records_ending_together_share_one_transaction(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    batches: list[int] = []
    real_batch = store.batch

    def counting_batch(writes: Any) -> Any:
        before = len(store.fetch_cdrs())
        result = real_batch(writes)
        batches.append(len(store.fetch_cdrs()) - before)
        return result

    store.batch = counting_batch  # type: ignore[method-assign]
    recorder = CdrRecorder(store)
    await asyncio.wait_for(recorder.start(), 5)
    try:
        for n in range(50):  # 50 calls end in the same loop turn
            recorder.on_event(started(0.0, call_id=f"call-{n}"))
            recorder.on_event(ended(1.0, call_id=f"call-{n}"))
        await recorder.wait_written("call-49", timeout=5)
    finally:
        await asyncio.wait_for(recorder.close(), 5)
    assert sum(batches) == 50 and len(SqliteCdrStore(tmp_path / "cdr.sqlite3").fetch_cdrs()) == 50
    assert len(batches) <= 2, f"50 CDRs in {len(batches)} transactions"


async def test_one_bad_record_in_a_batch_does_not_lose_the_others(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    real_execute = store._execute
    failures = [sqlite3.OperationalError("database or disk is full")]

    def fails_once_on_call_3(sql: str, params: Any) -> int:
        if "call-3" in params and failures:
            raise failures.pop()
        return real_execute(sql, params)

    store._execute = fails_once_on_call_3  # type: ignore[method-assign]
    recorder = CdrRecorder(store)
    recorder.writer._retry_initial = 0.01
    await asyncio.wait_for(recorder.start(), 5)
    try:
        for n in range(6):
            recorder.on_event(started(0.0, call_id=f"call-{n}"))
            recorder.on_event(ended(1.0, call_id=f"call-{n}"))
        for n in range(6):
            await recorder.wait_written(f"call-{n}", timeout=5)
    finally:
        await asyncio.wait_for(recorder.close(), 5)
    assert failures == [], "the failing write was tried"
    rows = SqliteCdrStore(tmp_path / "cdr.sqlite3").fetch_cdrs()
    assert sorted(r["uniqueid"] for r in rows) == [f"call-{n}" for n in range(6)]


async def test_under_load_calls_ending_apart_still_share_one_sync(tmp_path: Path) -> None:
    """With a commit interval, records that end one after another (not in the same loop turn)
    wait for the interval after the previous commit and go to disk together; the first
    record after a quiet spell is written at once."""
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    batches: list[int] = []
    written: dict[str, float] = {}
    real_batch, real_write = store.batch, store.write_cdr

    def counting_batch(writes: Any) -> Any:
        before = len(written)
        result = real_batch(writes)
        batches.append(len(written) - before)
        return result

    def timed_write(record: CdrRecord) -> bool:
        written[record.uniqueid] = time.monotonic()
        return real_write(record)

    store.batch = counting_batch  # type: ignore[method-assign]
    store.write_cdr = timed_write  # type: ignore[method-assign]
    recorder = CdrRecorder(store, writer=RecordWriter(store, commit_interval=1.0))
    await asyncio.wait_for(recorder.start(), 5)
    try:
        quiet_ended = time.monotonic()
        recorder.on_event(started(0.0, call_id="quiet"))
        recorder.on_event(ended(1.0, call_id="quiet"))
        await recorder.wait_written("quiet", timeout=5)
        assert written["quiet"] - quiet_ended < 0.5, "the first record waited for nothing"
        for n in range(5):  # five calls end 20 ms apart, right after that commit
            recorder.on_event(started(0.0, call_id=f"busy-{n}"))
            recorder.on_event(ended(1.0, call_id=f"busy-{n}"))
            await asyncio.sleep(0.02)
        await recorder.wait_written("busy-4", timeout=5)
    finally:
        await asyncio.wait_for(recorder.close(), 5)
    assert batches == [5], "the five busy records went to disk in one transaction"
    assert min(written[f"busy-{n}"] for n in range(5)) - written["quiet"] >= 0.99
    assert len(SqliteCdrStore(tmp_path / "cdr.sqlite3").fetch_cdrs()) == 6


def test_the_event_bus_gives_each_listener_the_kinds_it_asked_for_and_survives_a_failure() -> None:
    from callcenter.events import AgentEvent, AgentPaused, CallEnded, EventBus, TalkEnded

    bus = EventBus()
    everything: list[object] = []
    agents: list[object] = []
    talks: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("a broken report")

    bus.subscribe(broken)
    bus.subscribe(everything.append)
    bus.subscribe(agents.append, kinds=(AgentEvent,))
    bus.subscribe(talks.append, kinds=[TalkEnded])
    paused = AgentPaused(agent="1001", reason="lunch")
    talk = TalkEnded(call_id="c1", agent="1001", talk_seconds=3.0, hung_up_by="caller")
    ended = CallEnded(call_id="c1", cause=16, cause_name="NORMAL_CLEARING", hung_up_by="caller")
    for event in (paused, talk, ended, paused):
        bus.publish(event)
    bus.unsubscribe(agents.append)
    bus.publish(paused)
    assert everything == [paused, talk, ended, paused, paused]
    assert agents == [paused, paused], "subclasses of a kind, and nothing once unsubscribed"
    assert talks == [talk]
    with pytest.raises(ValueError, match="not subscribed"):
        bus.unsubscribe(agents.append)


def test_every_event_name_a_config_may_give_is_the_class_events_are_made_of() -> None:
    from callcenter import events

    for name, kind in events.event_types().items():
        assert kind is getattr(events, name), name
