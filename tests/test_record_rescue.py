"""Records a full disk refused until the daemon stopped: kept beside the database, written by
the next start, and never silently dropped (callcenter.records.rescue)."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from callcenter.errors import RecordError
from callcenter.outbound.campaign import LeadRecord
from callcenter.records.audit import AuditEntry
from callcenter.records.callbacks import QueueCallback
from callcenter.records.campaigns import AddedLead
from callcenter.records.cdr import CallbackRecord, CdrRecord
from callcenter.records.desks import SupervisorDesk
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.members import MemberState
from callcenter.records.number_lists import NumberListEntry
from callcenter.records.rescue import (
    RecordRescue,
    decode_write,
    encode_write,
    rescue_path,
    spare_path,
)
from callcenter.records.roster import AddedAgent, AddedQueue
from callcenter.records.schedule_changes import ScheduleChange, ScheduleRequest
from callcenter.records.shifts import (
    AgentPause,
    AgentPresence,
    AgentSession,
    AgentWrapup,
    OwedCode,
)
from callcenter.records.skills import SkillsState
from callcenter.records.store import SqliteCdrStore
from callcenter.records.surveys import SurveyRecord
from callcenter.records.switches import SwitchState
from callcenter.records.voicemails import VoicemailMessage
from callcenter.records.writer import RecordWriter

T0 = datetime(2026, 12, 5, 9, 30, 0, 123456, tzinfo=UTC)


def cdr(uniqueid: str = "1796444790.1", **changes: Any) -> CdrRecord:
    fields: dict[str, Any] = {
        "accountcode": "acme",
        "src": "0612345678",
        "dst": "800",
        "dcontext": "from-external",
        "clid": '"Zoë Ångström" <0612345678>',
        "channel": "PJSIP/sipp-00000001",
        "dstchannel": "PJSIP/1002-00000002",
        "lastapp": "AGI",
        "start": T0,
        "answer": T0 + timedelta(seconds=1),
        "end": T0 + timedelta(seconds=61),
        "duration": 61,
        "billsec": 60,
        "disposition": "ANSWERED",
        "uniqueid": uniqueid,
        "linkedid": uniqueid,
        "ivr_path": "main:welcome>2>main:support",
        "queue": "support",
        "wait_seconds": 4.25,
        "agent": "1002",
        "talk_seconds": 55.5,
        "transfers": 0,
        "transfer_path": "",
        "abandoned": False,
        "hung_up_by": "caller",
        "hangup_cause": 16,
        "hangup_cause_name": "NORMAL_CLEARING",
    }
    fields.update(changes)
    return CdrRecord(**fields)


def broken(store: SqliteCdrStore, error: str = "database or disk is full") -> None:
    """Every write of ``store`` fails as SQLite does on a full disk."""

    def refuse(sql: str, params: Any) -> int:
        raise sqlite3.OperationalError(error)

    store._execute = refuse  # type: ignore[method-assign]


def writes_of_a_working_day(store: SqliteCdrStore) -> list[tuple[str, functools.partial[bool]]]:
    """One write of each kind the daemon makes, as its recorders submit them."""
    session = AgentSession("1003", T0, T0 + timedelta(hours=8), 28800.0, "phone", "api")
    pause = AgentPause("1003", "lunch", T0, T0 + timedelta(minutes=30), 1800.0, "api", "api")
    callback = QueueCallback(
        call_id="1796444790.5",
        queue="support",
        number="0612345678",
        requested=T0,
        priority=2,
        skills=("french", "billing"),
    )
    return [
        ("cdr:1796444790.1", functools.partial(store.write_cdr, cdr())),
        ("session:1003", functools.partial(store.write_agent_session, session)),
        ("pause:1003", functools.partial(store.write_agent_pause, pause)),
        (
            "switch:storm",
            functools.partial(store.write_switch, SwitchState("storm", True, T0, "api")),
        ),
        (
            "wrapup:1003",
            functools.partial(
                store.write_agent_wrapup,
                AgentWrapup("1003", T0, T0 + timedelta(seconds=20), 20.0, "1796444790.1"),
            ),
        ),
        (
            "presence:1001",
            functools.partial(
                store.write_agent_presence,
                AgentPresence("1001", T0, "config", owed=OwedCode("c-9", "0611", "sales")),
            ),
        ),
        ("presence:1003", functools.partial(store.clear_agent_presence, "1003")),
        (
            "callback:1796444790.4:0611",
            functools.partial(
                store.write_callback,
                CallbackRecord("1796444790.4", "0611", "sales", "0611", T0),
            ),
        ),
        (
            "queue-callback:1796444790.5",
            functools.partial(store.write_queue_callback, callback),
        ),
        (
            "queue-callback:1796444790.5",
            functools.partial(
                store.update_queue_callback,
                "1796444790.5",
                updated=T0 + timedelta(minutes=3),
                status=None,
                attempts=1,
            ),
        ),
        (
            "campaign-lead:spring:ada",
            functools.partial(
                store.write_campaign_lead,
                LeadRecord("spring", "ada", "5551001", "retry", 1, "busy", retry_at=T0, updated=T0),
            ),
        ),
        (
            "member:sales:1002",
            functools.partial(
                store.write_member_change, MemberState("sales", "1002", True, 2, T0, "api")
            ),
        ),
        (
            "member:support:1003",
            functools.partial(store.clear_member_change, "support", "1003"),
        ),
        (
            "skills:1001",
            functools.partial(
                store.write_agent_skills, SkillsState.of("1001", {"fr": 7, "de": 2}, T0, "api")
            ),
        ),
        ("skills:1003", functools.partial(store.clear_agent_skills, "1003")),
        (
            "roster:1010",
            functools.partial(
                store.write_added_agent,
                AddedAgent.of(
                    "1010", {"name": "Zoe", "device": "PJSIP/1010", "skills": {"fr": 7}}, T0, "api"
                ),
            ),
        ),
        ("roster:1011", functools.partial(store.clear_added_agent, "1011")),
        (
            "roster-queue:vip",
            functools.partial(
                store.write_added_queue,
                AddedQueue.of("vip", {"agents": ["1010"], "strategy": "ringall"}, T0, "api"),
            ),
        ),
        ("roster-queue:gold", functools.partial(store.clear_added_queue, "gold")),
        (
            "campaign-added:spring:c-4",
            functools.partial(
                store.write_added_lead,
                AddedLead("spring", "c-4", "5551004", "", '{"name": "Grace"}', T0, "api"),
            ),
        ),
        (
            "schedule:1002:2026-12-08",
            functools.partial(
                store.write_schedule_change,
                ScheduleChange.of("1002", "2026-12-08", ["10:00-18:00"], T0, "api"),
            ),
        ),
        (
            "schedule-request:ab12cd34",
            functools.partial(
                store.write_schedule_request,
                ScheduleRequest("ab12cd34", "1002", "2026-12-08", "[]", "dentist", T0),
            ),
        ),
        (
            "schedule:1002:2026-12-09",
            functools.partial(store.clear_schedule_change, "1002", "2026-12-09"),
        ),
        (
            "disposition:1796444790.1",
            functools.partial(
                store.write_disposition,
                DispositionRecord(
                    "1796444790.1",
                    "1001",
                    "callback",
                    "after 3",
                    "0611",
                    "sales",
                    "spring",
                    "ada",
                    T0 + timedelta(days=1),
                    False,
                    T0,
                ),
            ),
        ),
        (
            "supervisor-desk:2000",
            functools.partial(
                store.write_supervisor_desk, SupervisorDesk("2000", "PJSIP/2010", T0, "api")
            ),
        ),
        ("supervisor-desk:2001", functools.partial(store.clear_supervisor_desk, "2001")),
        (
            "number-list:blocked:5550666",
            functools.partial(
                store.write_number_list_entry, NumberListEntry("blocked", "5550666", T0, "api")
            ),
        ),
        (
            "number-list:vip:+4930123456",
            functools.partial(store.clear_number_list_entry, "vip", "+4930123456"),
        ),
        (
            "survey:1796444790.1",
            functools.partial(
                store.write_survey,
                SurveyRecord(
                    "1796444790.1",
                    "sales",
                    "1001",
                    "csat",
                    "0611",
                    5,
                    (("rating", "5"), ("comment", "très bien")),
                    True,
                    12.5,
                    T0,
                ),
            ),
        ),
        (
            "voicemail:1796444790.1",
            functools.partial(
                store.write_voicemail,
                VoicemailMessage(
                    "1796444790.1",
                    "sales",
                    "sales",
                    "0612345678",
                    "Zoë",
                    "/var/lib/callcenter/voicemail/sales/20261205-093000-1796444790.1.wav",
                    14.2,
                    T0,
                    "done",
                    "1001",
                    "called-back",
                    updated=T0,
                ),
            ),
        ),
        (
            "audit:20261205093000-ab12cd-1",
            functools.partial(
                store.write_audit,
                AuditEntry(
                    "20261205093000-ab12cd-1",
                    T0,
                    "crm",
                    "192.0.2.7",
                    "POST",
                    "/campaigns/spring/leads/0612345678/remove",
                    200,
                    '{"body": {"number": "***"}}',
                ),
            ),
        ),
    ]


def snapshot(store: SqliteCdrStore) -> dict[str, Any]:
    return {
        "cdrs": store.fetch_cdrs(),
        "sessions": store.fetch_agent_sessions(),
        "pauses": store.fetch_agent_pauses(),
        "wrapups": store.fetch_agent_wrapups(),
        "switches": store.fetch_switches(),
        "presence": store.fetch_agent_presence(),
        "callbacks": store.fetch_callbacks(),
        "queue_callbacks": store.fetch_queue_callbacks(),
        "campaign_leads": store.fetch_campaign_leads(),
        "dispositions": store.fetch_dispositions(),
        "surveys": store.fetch_surveys(),
        "number_lists": store.fetch_number_list_entries(),
        "supervisor_desks": store.fetch_supervisor_desks(),
        "queue_members": store.fetch_member_changes(),
        "agent_skills": store.fetch_agent_skills(),
        "voicemails": store.fetch_voicemails(),
        "audit": store.fetch_audit_between(T0 - timedelta(days=1), T0 + timedelta(days=1)),
    }


async def test_records_still_refused_at_close_are_written_by_the_next_writer_on_the_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cdr.sqlite3"
    store = SqliteCdrStore(db)
    writer = RecordWriter(store, retry_initial=0.01, rescue=RecordRescue(db, store))
    await writer.start()
    writer.submit(
        "presence:1003",
        functools.partial(store.write_agent_presence, AgentPresence("1003", T0, "phone")),
    )
    await writer.wait_written("presence:1003")
    broken(store)
    jobs = writes_of_a_working_day(store)
    for key, write in jobs:
        writer.submit(key, write)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(writer.close(flush_timeout=0.2), 5)
    (kept,) = [e for e in logs if e["event"] == "records_kept_for_next_start"]
    assert kept["count"] == len(jobs) and kept["file"] == str(rescue_path(db))
    assert "database or disk is full" in kept["error"]
    lines = rescue_path(db).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == [key for key, _ in jobs], "in order"
    await asyncio.wait_for(writer.close(), 5)  # a second stop starts nothing anew
    assert rescue_path(db).exists()

    # The same writes made on a healthy database give what the replay must give.
    expected_store = SqliteCdrStore(tmp_path / "expected.sqlite3")
    expected_store.write_agent_presence(AgentPresence("1003", T0, "phone"))
    for _key, write in writes_of_a_working_day(expected_store):
        write()

    fresh = SqliteCdrStore(db)
    next_writer = RecordWriter(fresh, rescue=RecordRescue(db, fresh))
    with structlog.testing.capture_logs() as logs:
        await next_writer.start()
    try:
        (written,) = [e for e in logs if e["event"] == "rescued_records_written"]
        assert written["count"] == len(jobs) and written["unreadable_lines"] == []
        assert not rescue_path(db).exists()
        assert snapshot(fresh) == snapshot(expected_store)
    finally:
        await next_writer.close()


def test_a_record_kept_twice_is_stored_once(tmp_path: Path) -> None:
    """The write that was running when the stop gave up may still have reached the disk."""
    db = tmp_path / "cdr.sqlite3"
    store = SqliteCdrStore(db)
    store.write_cdr(cdr())
    RecordRescue(db, store).keep(writes_of_a_working_day(store)[:1] * 2)
    replayed = RecordRescue(db, store).replay()
    assert replayed.written == 2
    assert [r["uniqueid"] for r in store.fetch_cdrs()] == ["1796444790.1"]


async def test_a_database_still_full_at_the_next_start_keeps_the_file_and_the_daemon_goes_on(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cdr.sqlite3"
    store = SqliteCdrStore(db)
    store.open()
    RecordRescue(db, store).keep(writes_of_a_working_day(store))
    before = rescue_path(db).read_bytes()
    broken(store)
    writer = RecordWriter(store, rescue=RecordRescue(db, store))
    with structlog.testing.capture_logs() as logs:
        await writer.start()
    try:
        assert writer.started, "records are no reason to refuse calls"
        (error,) = [e for e in logs if e["event"] == "rescued_records_not_written"]
        assert "database or disk is full" in error["error"]
        assert rescue_path(db).read_bytes() == before, "kept whole for the next start"
    finally:
        await writer.close()


async def test_a_line_cut_short_is_reported_and_the_file_moved_aside_not_lost(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cdr.sqlite3"
    store = SqliteCdrStore(db)
    RecordRescue(db, store).keep(writes_of_a_working_day(store)[:2])
    good = rescue_path(db).read_text(encoding="utf-8")
    cut = encode_write("cdr:1796444790.9", functools.partial(store.write_cdr, cdr("1796444790.9")))
    rescue_path(db).write_text(good + cut[:40], encoding="utf-8")
    with structlog.testing.capture_logs() as logs:
        replayed = RecordRescue(db, store).replay()
    assert replayed.written == 2 and replayed.rejected == (f"{rescue_path(db)}:3",)
    (unreadable,) = [e for e in logs if e["event"] == "rescued_record_unreadable"]
    assert unreadable["file"] == f"{rescue_path(db)}:3"
    assert not rescue_path(db).exists(), "not replayed again"
    (moved_to,) = replayed.moved_to
    assert moved_to.read_text() == good + cut[:40]
    assert [r["uniqueid"] for r in store.fetch_cdrs()] == ["1796444790.1"]


async def test_when_the_file_cannot_be_written_either_each_record_is_logged_whole(
    tmp_path: Path,
) -> None:
    """The last place left is the log: its lines, pasted into the file, are written at the
    next start like the others."""
    db = tmp_path / "cdr.sqlite3"
    store = SqliteCdrStore(db)
    rescue_path(db).mkdir(parents=True)  # the rescue file cannot be opened for writing
    writer = RecordWriter(store, retry_initial=0.01, rescue=RecordRescue(db, store))
    await writer.start()
    broken(store, "disk I/O error")
    jobs = writes_of_a_working_day(store)[:3]
    for key, write in jobs:
        writer.submit(key, write)
    refused = pytest.raises(RecordError, match=r"3 record\(s\) could not be written.*disk I/O")
    with structlog.testing.capture_logs() as logs, refused:
        await asyncio.wait_for(writer.close(flush_timeout=0.2), 5)
    (not_kept,) = [e for e in logs if e["event"] == "records_not_kept"]
    assert not_kept["files"] == [str(rescue_path(db))]
    lines = [e["line"] for e in logs if e["event"] == "record_unwritten"]
    assert [json.loads(line)["key"] for line in lines] == [key for key, _ in jobs]

    rescue_path(db).rmdir()
    rescue_path(db).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    fresh = SqliteCdrStore(db)
    assert RecordRescue(db, fresh).replay().written == 3
    assert [r["uniqueid"] for r in fresh.fetch_cdrs()] == ["1796444790.1"]
    assert [s["agent"] for s in fresh.fetch_agent_sessions()] == ["1003"]


def test_only_the_store_s_record_writes_can_be_kept_or_replayed(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    with pytest.raises(TypeError, match="not a store write"):
        encode_write("x", lambda: None)
    with pytest.raises(TypeError, match="not a replayable store write"):
        encode_write("x", functools.partial(store.fetch_cdrs, last=1))
    for line, why in [
        ("{", "not JSON"),
        ("[1]", "not an object"),
        ('{"key": "x", "op": "close"}', "op 'close' is not one of"),
        ('{"key": "x", "op": "write_cdr", "args": [{"$record": "Daemon"}]}', "unknown record"),
        ('{"key": "x", "op": "write_cdr", "args": [{"$record": "CdrRecord"}]}', "missing"),
        ('{"key": "x", "op": "write_cdr", "args": [{"$datetime": "9:00"}]}', "isoformat"),
    ]:
        with pytest.raises(ValueError, match=why):
            decode_write(line)


_text = st.text(max_size=20)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    # Offsets in whole minutes, as time zones have them (datetime.fromisoformat drops the
    # microseconds of an offset such as +00:00:00.000001).
    timezones=st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
_seconds = st.floats(min_value=0, max_value=1e7, allow_nan=False)
_records = st.one_of(
    st.builds(
        cdr,
        uniqueid=_text,
        clid=_text,
        start=_times,
        answer=st.none() | _times,
        end=_times,
        wait_seconds=_seconds,
        talk_seconds=_seconds,
        abandoned=st.booleans(),
        hangup_cause=st.integers(0, 127),
        ivr_variables=_text,
    ),
    st.builds(AgentSession, _text, _times, _times, _seconds, _text, _text),
    st.builds(AgentPresence, _text, _times, _text, st.none() | _text, st.none() | _times, _text),
    st.builds(
        QueueCallback,
        call_id=_text,
        queue=_text,
        number=_text,
        requested=_times,
        priority=st.integers(-(2**31), 2**31),
        skills=st.lists(_text, max_size=3).map(tuple),
        status=st.sampled_from(["waiting", "answered", "failed", "expired"]),
        attempts=st.integers(0, 99),
        updated=st.none() | _times,
    ),
)


@given(record=_records)
def test_any_record_comes_back_from_its_rescue_line_as_it_was(record: Any) -> None:
    store = SqliteCdrStore(":memory:")
    op = {
        CdrRecord: store.write_cdr,
        AgentSession: store.write_agent_session,
        AgentPresence: store.write_agent_presence,
        QueueCallback: store.write_queue_callback,
    }[type(record)]
    line = encode_write("k", functools.partial(op, record))
    assert "\n" not in line
    key, name, args, kwargs = decode_write(line)
    assert (key, name, args, kwargs) == ("k", op.__name__, [record], {})
    (decoded,) = args
    for field in ("start", "requested", "logged_in", "login"):
        if hasattr(record, field):
            assert getattr(decoded, field).utcoffset() == getattr(record, field).utcoffset()


async def test_records_go_to_the_spare_folder_when_the_database_s_disk_refuses_them(
    tmp_path: Path,
) -> None:
    """systemd's RuntimeDirectory (a tmpfs) when the records' own disk is the full one."""
    db = tmp_path / "var" / "cdr.sqlite3"
    spare = tmp_path / "run"
    spare.mkdir()
    store = SqliteCdrStore(db)
    rescue = RecordRescue(db, store, spare_folder=spare)
    rescue_path(db).mkdir(parents=True)  # the file beside the database cannot be written
    writer = RecordWriter(store, retry_initial=0.01, rescue=rescue)
    await writer.start()
    broken(store)
    jobs = writes_of_a_working_day(store)[:2]
    for key, write in jobs:
        writer.submit(key, write)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(writer.close(flush_timeout=0.2), 5)
    (kept,) = [e for e in logs if e["event"] == "records_kept_for_next_start"]
    (elsewhere,) = spare.iterdir()
    assert kept["file"] == str(elsewhere) == str(spare_path(db, spare))
    assert elsewhere.name.startswith("cdr.sqlite3-") and elsewhere.name.endswith(".jsonl")
    assert elsewhere.stat().st_mode & 0o777 == 0o600, "phone numbers: the daemon's eyes only"
    assert spare_path(tmp_path / "other" / "cdr.sqlite3", spare) != elsewhere

    rescue_path(db).rmdir()
    fresh = SqliteCdrStore(db)
    next_writer = RecordWriter(fresh, rescue=RecordRescue(db, fresh, spare_folder=spare))
    await next_writer.start()
    try:
        assert [r["uniqueid"] for r in fresh.fetch_cdrs()] == ["1796444790.1"]
        assert list(spare.iterdir()) == []
    finally:
        await next_writer.close()
