"""Records in a real PostgreSQL server (``records.postgres``): the same rows as SQLite, written
once, kept through a server restart, one daemon per database, calls on both PBXs recorded,
and ``callcenter report`` reading them back."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from postgres_server import PASSWORD, PostgresServer
from test_record_rescue import T0, cdr, snapshot, writes_of_a_working_day

from callcenter.config import load_config, load_config_text
from callcenter.daemon import Daemon
from callcenter.errors import ConfigError, RecordError
from callcenter.outbound.campaign import LeadRecord
from callcenter.records.callbacks import QueueCallback
from callcenter.records.campaigns import AddedLead
from callcenter.records.desks import SupervisorDesk
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.members import MemberState
from callcenter.records.number_lists import NumberListEntry
from callcenter.records.postgres import PostgresRecordStore
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.roster import AddedAgent, AddedQueue
from callcenter.records.schedule_changes import ScheduleChange, ScheduleRequest
from callcenter.records.shifts import AgentPresence, OwedCode
from callcenter.records.skills import SkillsState
from callcenter.records.store import CDR_COLUMNS, RecordStore, SqliteCdrStore
from callcenter.records.surveys import SurveyRecord
from callcenter.records.switches import SwitchState
from callcenter.records.writer import RecordWriter
from callcenter.testing import BASE_CONFIG, merge, running_center

REPO = Path(__file__).resolve().parents[1]


def both_stores(tmp_path: Path, postgres_url: str) -> Iterator[RecordStore]:
    """A SQLite store (``tmp_path/cdr.sqlite3``), then a PostgreSQL one, each closed once
    its turn is over (or the test failed in it)."""
    for opened in (
        lambda: SqliteCdrStore(tmp_path / "cdr.sqlite3"),
        lambda: PostgresRecordStore(postgres_url, password=PASSWORD),
    ):
        store: RecordStore = opened()
        try:
            yield store
        finally:
            store.close()


def queue_log_of_one_call() -> list[QueueLogEntry]:
    cid = "1796444790.1"
    lines = [
        ("ENTERQUEUE", ("", "0612345678", "1")),
        ("CONNECT", ("3", "1796444790.2", "1")),
        ("COMPLETECALLER", ("3", "95", "1")),
    ]
    return [
        QueueLogEntry(f"{cid}:{n}", T0 + timedelta(seconds=n), cid, "support", "Agent/1002", e, d)
        for n, (e, d) in enumerate(lines)
    ]


def a_day_in(store: RecordStore) -> dict[str, Any]:
    for _, write in writes_of_a_working_day(store):  # type: ignore[arg-type]
        write()
    store.write_queue_log(queue_log_of_one_call())
    return {
        **snapshot(store),  # type: ignore[arg-type]
        "queue_log": store.fetch_queue_log(),
        "last_cdr": store.fetch_cdrs(last=1),
        "queue_log_after_1": store.fetch_queue_log(after=1),
    }


def test_a_working_day_reads_back_from_postgresql_exactly_as_from_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    postgres = PostgresRecordStore(postgres_url, password=PASSWORD)
    try:
        assert a_day_in(postgres) == a_day_in(sqlite)
        again = [write() for _, write in writes_of_a_working_day(postgres)]  # type: ignore[arg-type]
        assert again[:3] == [False, False, False], "a record is written once"
        assert postgres.write_queue_log(queue_log_of_one_call()) is False
        assert len(postgres.fetch_queue_log()) == 3
        assert postgres.has_cdr("1796444790.1") and not postgres.has_cdr("nope")
    finally:
        sqlite.close()
        postgres.close()


def test_a_call_left_at_a_shutdown_is_superseded_as_in_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    left = cdr(hung_up_by="shutdown")
    # Taken back by the next daemon: its record starts anew, 75 s after the first ended.
    later = dataclasses.replace(
        left,
        start=left.end + timedelta(seconds=5),
        end=left.end + timedelta(seconds=75),
        duration=70,
        hung_up_by="caller",
    )
    rows = []
    for store in both_stores(tmp_path, postgres_url):
        assert store.write_cdr(left) is True
        assert store.write_cdr(later) is True, "the record of the call taken back wins"
        assert store.write_cdr(later) is False
        rows.append(store.fetch_cdrs())
    assert rows[0] == rows[1]
    (row,) = rows[1]
    assert row["hung_up_by"] == "caller"
    assert row["duration"] == 61 + 75, "from the first start to the new end"


def test_a_checkpoint_is_marked_lost_then_superseded_as_in_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    going = cdr(hung_up_by="in_progress")
    ended = dataclasses.replace(going, end=going.end + timedelta(seconds=30), hung_up_by="agent")
    seen = []
    for store in both_stores(tmp_path, postgres_url):
        assert store.write_cdr(going) is True
        marked = store.mark_lost(), store.mark_lost()
        lost = store.fetch_cdrs()[0]["hung_up_by"]
        assert store.write_cdr(ended) is True, "the call taken back: its own record wins"
        seen.append((marked, lost, store.fetch_cdrs()))
    assert seen[0] == seen[1]
    assert seen[1][:2] == ((1, 0), "lost")
    assert seen[1][2][0]["hung_up_by"] == "agent"


def test_an_agents_calls_of_the_day_read_alike_from_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    """What the agent's desktop lists: their calls since a time, newest first, the number
    of the person they talked to (dialled ones too), the code they gave, and the calls
    handed over to them or by them."""
    theirs = [
        cdr("c1", agent="1002", start=T0 + timedelta(minutes=1)),
        cdr("c2", agent="1002", start=T0 + timedelta(minutes=5), src="0800123456",
            dst="0611111111", ivr_variables=json.dumps({"dialled_by": "1002"})),
        cdr("c3", agent="1002", start=T0 - timedelta(days=1)),
        cdr("c4", agent="1001", start=T0 + timedelta(minutes=2)),
        cdr("c5", agent="1001", start=T0 + timedelta(minutes=6), transfer_path="1001>1002"),
        cdr("c6", agent="1002", start=T0 + timedelta(minutes=7), transfer_path="1002>2000"),
        cdr("c7", agent="1001", start=T0 + timedelta(minutes=8), queue="support",
            transfer_path="1001>support>1002"),
        cdr("c8", agent="1001", start=T0 + timedelta(minutes=9), transfer_path="1001>10021"),
        cdr("c9", agent="1001", start=T0 + timedelta(minutes=9), transfer_path="1001>1x02"),
    ]  # fmt: skip
    code = DispositionRecord(
        "c1", "1002", "sale", "", "0612345678", "support", "", "", None, False, T0
    )
    seen = []
    for store in both_stores(tmp_path, postgres_url):
        for record in theirs:
            store.write_cdr(record)
        store.write_disposition(code)
        seen.append(store.fetch_agent_calls("1002", T0, 10))
        assert store.fetch_agent_calls("1_02", T0, 10) == [], "no LIKE wildcard"
    assert seen[0] == seen[1]
    assert [(c["call_id"], c["number"], c["code"], c["transfer"]) for c in seen[1]] == [
        ("c7", "0612345678", None, "from 1001 via support"),
        ("c6", "0612345678", None, "to 2000"),
        ("c5", "0612345678", None, "from 1001"),
        ("c2", "0611111111", None, ""),
        ("c1", "0612345678", "sale", ""),
    ]
    assert abs(seen[1][3]["start"] - (T0 + timedelta(minutes=5))) < timedelta(milliseconds=1)


def test_a_database_of_an_older_version_gets_the_new_columns(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, password=PASSWORD, autocommit=True) as conn:
        conn.execute('CREATE TABLE cdr ("uniqueid" TEXT PRIMARY KEY, "start" TEXT NOT NULL,'
                     ' "end" TEXT NOT NULL, "duration" INTEGER NOT NULL,'
                     ' "billsec" INTEGER NOT NULL, "disposition" TEXT NOT NULL)')  # fmt: skip
    store = PostgresRecordStore(postgres_url, password=PASSWORD)
    try:
        assert store.write_cdr(cdr()) is True
        (row,) = store.fetch_cdrs()
    finally:
        store.close()
    assert set(row) == {name for name, _ in CDR_COLUMNS}
    assert row["recording_muted_seconds"] == 0.0


async def test_records_wait_in_memory_while_the_server_restarts_and_are_written_after(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PostgresRecordStore(postgres_url, password=PASSWORD)
    writer = RecordWriter(store, retry_initial=0.05)
    await writer.start()
    try:
        writer.submit("cdr:1", functools.partial(store.write_cdr, cdr(uniqueid="1")))
        await writer.wait_written("cdr:1")
        await asyncio.to_thread(postgres_server.stop)
        try:
            writer.submit("cdr:2", functools.partial(store.write_cdr, cdr(uniqueid="2")))
            for _ in range(200):
                if not writer.health()["ok"]:
                    break
                await asyncio.sleep(0.02)
            health = writer.health()
        finally:
            await asyncio.to_thread(postgres_server.start)
        await writer.wait_written("cdr:2", timeout=15)
    finally:
        await writer.close()
    assert health["ok"] is False and health["unwritten"] == 1
    assert health["error"], "it says why"
    assert [
        r["uniqueid"] for r in PostgresRecordStore(postgres_url, password=PASSWORD).fetch_cdrs()
    ] == ["1", "2"]


def postgres_config(url: str) -> dict[str, Any]:
    return {"records": {"postgres": url}}


ENV = {"CALLCENTER_POSTGRES_PASSWORD": PASSWORD}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_calls_agents_and_the_queue_log_are_recorded_in_postgresql(
    tmp_path: Path, postgres_url: str, transport: str
) -> None:
    config = postgres_config(postgres_url)
    async with running_center(tmp_path, transport=transport, config=config, environ=ENV) as center:  # type: ignore[arg-type]
        assert isinstance(center.daemon.store, PostgresRecordStore)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_talks_to_an_agent("5551234")
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        center.daemon.router.pause("1002", "lunch")
        daemon = await center.restart()
        agent = daemon.router.agents["1002"]
        assert (agent.state.value, agent.pause_reason) == ("paused", "lunch"), (
            "the shift and the pause were taken back from PostgreSQL"
        )
        queue_log = [e.event for _, e in daemon.store.fetch_queue_log()]
    assert row["agent"] == "1002" and row["queue"] == "support"
    assert row["disposition"] == "ANSWERED" and row["src"] == "5551234"
    assert not (tmp_path / "var" / "cdr.sqlite3").exists(), "nothing went to SQLite"
    assert "CONNECT" in queue_log
    assert {"COMPLETECALLER", "COMPLETEAGENT"} & set(queue_log)


async def test_a_second_daemon_on_the_same_postgresql_database_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    async with running_center(
        tmp_path, config=postgres_config(postgres_url), environ=ENV
    ) as center:
        second = Daemon(
            load_config(center.config_path, environ=center.daemon.environ),
            config_path=center.config_path,
            environ=center.daemon.environ,
        )
        with pytest.raises(RecordError) as refused:
            await second.start()
    message = str(refused.value)
    assert "is in use by another callcenter daemon" in message
    assert f"pid {os.getpid()}" in message, "it names the daemon that holds it"
    assert PASSWORD not in message


async def test_report_reads_the_calls_back_from_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    async with running_center(
        tmp_path, config=postgres_config(postgres_url), environ=ENV
    ) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_talks_to_an_agent("5551234")
        await center.cdr(caller.uniqueid)
        path = center.config_path

    async def report(password: str, *args: str) -> tuple[int, str, str]:
        env = {**os.environ, "CALLCENTER_POSTGRES_PASSWORD": password}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter.cli", "report", str(path), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO,
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await report(PASSWORD)
    assert code == 0, err
    assert "5551234" in out and "ANSWERED" in out
    code, out, err = await report(PASSWORD, "--json")
    assert code == 0, err
    assert [json.loads(line)["uniqueid"] for line in out.splitlines()] == [caller.uniqueid]
    code, out, err = await report(PASSWORD, "--queue-log")
    assert code == 0 and "|ENTERQUEUE|" in out, err
    code, out, err = await report(PASSWORD, "--since", "yesterday", "--csv")
    assert code == 0, err
    assert out.startswith("accountcode,src,dst") and caller.uniqueid in out
    code, out, err = await report(PASSWORD, "--queues", "--json")
    assert code == 0, err
    [queue] = [json.loads(line) for line in out.splitlines()]
    assert (queue["queue"], queue["offered"], queue["answered"]) == ("support", 1, 1)
    code, out, err = await report(PASSWORD, "--agents", "--json")
    assert code == 0, err
    agents = {row["agent"]: row for row in map(json.loads, out.splitlines())}
    assert agents["1002"]["calls"] == 1 and agents["1002"]["logged_in_seconds"] > 0
    code, out, err = await report("wrong")
    assert code == 1
    assert "password authentication failed" in err and "wrong" not in err


def test_the_postgresql_password_comes_from_the_environment_and_bad_urls_are_refused() -> None:
    settings = merge(BASE_CONFIG, {"records": {"postgres": "postgresql://cc@db:5432/cc"}})
    text = yaml.safe_dump(settings, sort_keys=False)
    env = {"CALLCENTER_AMI_SECRET": "x", "CALLCENTER_POSTGRES_PASSWORD": "pw"}
    config = load_config_text(text, environ=env)
    assert config.records.postgres_password is not None
    assert config.records.postgres_password.get_secret_value() == "pw"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text.replace("postgresql://cc@db:5432/cc", "db.example"), environ=env)
    assert "records.postgres: must be a PostgreSQL connection string" in str(caught.value)


async def test_records_the_server_never_took_are_kept_at_a_stop_and_written_at_the_next_start(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    async with running_center(
        tmp_path, config=postgres_config(postgres_url), environ=ENV
    ) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        await asyncio.to_thread(postgres_server.stop)
        try:
            caller = await center.caller_talks_to_an_agent("5551234")
            await center.idle()
            await center.daemon.stop(flush_timeout=0.5)
            kept = tmp_path / "var" / "postgres.unwritten.jsonl"
            assert kept.exists(), "the CDR waits beside the config for the next start"
            assert caller.uniqueid in kept.read_text()
        finally:
            await asyncio.to_thread(postgres_server.start)
        daemon = await center.start_again()
        row = await center.cdr(caller.uniqueid)
        assert not kept.exists(), "written, then the file is gone"
        assert isinstance(daemon.store, PostgresRecordStore)
    assert row["agent"] == "1002" and row["disposition"] == "ANSWERED"


def test_without_the_driver_installed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import callcenter.records.postgres as module

    monkeypatch.setattr(module, "psycopg", None)
    with pytest.raises(RecordError, match=r"pip install 'callcenter\[postgresql\]'"):
        PostgresRecordStore("postgresql://cc@127.0.0.1/cc")


async def test_the_daemon_takes_its_lock_back_after_a_server_restart(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import callcenter.records.postgres as module

    monkeypatch.setattr(module, "LOCK_CHECK", 0.05)

    def another_daemon_may_start() -> bool:
        try:
            module.PostgresLock(postgres_url, password=PASSWORD).acquire()
        except RecordError:
            return False
        return True  # its connection closes at once: the lock is free again

    async with running_center(tmp_path, config=postgres_config(postgres_url), environ=ENV):
        assert not await asyncio.to_thread(another_daemon_may_start)
        await asyncio.to_thread(postgres_server.restart)
        for _ in range(200):
            if not await asyncio.to_thread(another_daemon_may_start):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the daemon never took its lock back")


def test_campaign_leads_move_on_until_final_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    """A lead's row follows its tries; answered, failed and skipped rows stay as they are,
    and the tries only grow (a late answer to a dial from before a restart says 0)."""
    retry_at = T0 + timedelta(hours=1)
    moves = [
        LeadRecord("spring", "ada", "5551001", "dialing", 1, updated=T0),
        LeadRecord(
            "spring", "ada", "5551001", "retry", 1, "no-answer", retry_at=retry_at, updated=T0
        ),
        LeadRecord("spring", "ada", "5551001", "dialing", 2, updated=T0),
        LeadRecord("spring", "ada", "5551001", "answered", 0, "answered", "c-7", updated=T0),
        LeadRecord("spring", "ada", "5551001", "retry", 3, "no-answer", updated=T0),
        LeadRecord("spring", "grace", "5551003", "skipped", 0, "do-not-call", updated=T0),
        LeadRecord("autumn", "ada", "5551001", "failed", 3, "no-answer", updated=T0),
        LeadRecord("spring", "bob", "5551004", "dialing", 1, updated=T0),
        LeadRecord(
            "spring",
            "bob",
            "5551004",
            "retry",
            1,
            "abandoned",
            retry_at=retry_at,
            updated=T0,
            dropped_at=T0,
        ),
        LeadRecord("spring", "bob", "5551004", "dialing", 2, updated=retry_at),
        LeadRecord("spring", "bob", "5551004", "answered", 2, "answered", "c-9", updated=retry_at),
    ]
    seen = []
    for store in both_stores(tmp_path, postgres_url):
        written = [store.write_campaign_lead(move) for move in moves]
        seen.append(store.fetch_campaign_leads())
        assert written == [True, True, True, True, False, True, True, True, True, True, True]
    assert seen[0] == seen[1]
    bob = next(r for r in seen[1] if r.lead == "bob")
    assert (bob.status, bob.dropped_at, bob.updated) == ("answered", T0, retry_at), (
        "when they were dropped stays (a restarted predictive campaign counts it)"
    )
    rows = {(r.campaign, r.lead): r for r in seen[1]}
    ada = rows["spring", "ada"]
    assert (ada.status, ada.attempts, ada.result, ada.call_id) == ("answered", 2, "answered", "c-7")
    assert rows["spring", "grace"].result == "do-not-call"
    assert rows["autumn", "ada"].status == "failed"


def test_leads_added_to_a_campaign_are_kept_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    grace = AddedLead("spring", "c-4", "5551004", "America/New_York", '{"name": "Grace"}', T0)
    for store in both_stores(tmp_path, postgres_url):
        store.write_added_lead(grace)
        store.write_added_lead(AddedLead("autumn", "c-1", "5551001", "", "{}", T0, "cli"))
        (autumn, spring) = store.fetch_added_leads()
        assert spring == grace and autumn.via == "cli", type(store).__name__
        lead = spring.as_lead()
        assert (lead.id, lead.number, lead.timezone, lead.data) == (
            "c-4", "5551004", "America/New_York", (("name", "Grace"),)
        )  # fmt: skip


def test_a_failed_lead_opens_again_only_when_recycled_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(days=1)
    moves = [
        LeadRecord("spring", "ada", "5551001", "failed", 3, "busy", updated=T0),
        LeadRecord("spring", "ada", "5551001", "retry", 3, "no-answer", updated=T0),
        LeadRecord(
            "spring", "ada", "5551001", "retry", 0, "recycled", retry_at=later, updated=later
        ),
        LeadRecord("spring", "ada", "5551001", "dialing", 1, updated=later),
    ]
    for store in both_stores(tmp_path, postgres_url):
        written = [store.write_campaign_lead(move) for move in moves]
        (ada,) = store.fetch_campaign_leads()
        assert written == [True, False, True, True], type(store).__name__
        assert (ada.status, ada.attempts, ada.updated) == ("dialing", 1, later), "tries afresh"


THIRTEENTH_CAMPAIGN_LEADS = (
    'CREATE TABLE campaign_leads ("campaign" TEXT NOT NULL, "lead" TEXT NOT NULL,'
    ' "number" TEXT NOT NULL, "status" TEXT NOT NULL, "attempts" INTEGER NOT NULL DEFAULT 0,'
    """ "result" TEXT NOT NULL DEFAULT '', "call_id" TEXT NOT NULL DEFAULT '',"""
    ' "retry_at" TEXT, "updated" TEXT NOT NULL, PRIMARY KEY ("campaign", "lead"))'
)


def test_a_campaign_lead_table_from_before_predictive_dialling_gets_dropped_at(
    tmp_path: Path, postgres_url: str
) -> None:
    """A database whose campaign_leads table was made before predictive campaigns (no
    ``dropped_at``) keeps its rows and takes the new column, in both databases."""
    old = LeadRecord("spring", "ada", "5551001", "retry", 1, "no-answer", updated=T0)
    dropped = LeadRecord(
        "spring", "bob", "5551004", "retry", 1, "abandoned", updated=T0, dropped_at=T0
    )
    db = tmp_path / "cdr.sqlite3"
    with sqlite3.connect(db) as lite:
        lite.execute(THIRTEENTH_CAMPAIGN_LEADS)
        lite.execute(
            "INSERT INTO campaign_leads VALUES ('spring', 'ada', '5551001', 'retry', 1,"
            f" 'no-answer', '', NULL, '{T0.isoformat()}')"
        )
    with psycopg.connect(postgres_url, password=PASSWORD, autocommit=True) as conn:
        conn.execute(THIRTEENTH_CAMPAIGN_LEADS)
        conn.execute(
            "INSERT INTO campaign_leads VALUES ('spring', 'ada', '5551001', 'retry', 1,"
            f" 'no-answer', '', NULL, '{T0.isoformat()}')"
        )
    for store in both_stores(tmp_path, postgres_url):
        assert store.write_campaign_lead(dropped) is True
        rows = {r.lead: r for r in store.fetch_campaign_leads()}
        assert rows == {"ada": old, "bob": dropped}, type(store).__name__


SIXTEENTH_AGENT_PRESENCE = (
    'CREATE TABLE agent_presence ("agent" TEXT PRIMARY KEY, "logged_in" TEXT NOT NULL,'
    """ "via_login" TEXT NOT NULL DEFAULT '', "pause_reason" TEXT, "paused_at" TEXT,"""
    """ "via_pause" TEXT NOT NULL DEFAULT '')"""
)


def test_an_agent_presence_table_from_before_owed_codes_keeps_its_rows_and_takes_them(
    tmp_path: Path, postgres_url: str
) -> None:
    """A database whose agent_presence was made before owed dispositions were kept: the
    agents logged in stay, and a code owed can be written, in both databases."""
    owing = AgentPresence("1002", T0, "phone", owed=OwedCode("c-7", "5550100", "support"))
    db = tmp_path / "cdr.sqlite3"
    insert = (
        f"INSERT INTO agent_presence VALUES ('1001', '{T0.isoformat()}', 'cli', NULL, NULL, '')"
    )
    with sqlite3.connect(db) as lite:
        lite.execute(SIXTEENTH_AGENT_PRESENCE)
        lite.execute(insert)
    with psycopg.connect(postgres_url, password=PASSWORD, autocommit=True) as conn:
        conn.execute(SIXTEENTH_AGENT_PRESENCE)
        conn.execute(insert)
    for store in both_stores(tmp_path, postgres_url):
        assert store.write_agent_presence(owing) is True
        rows = store.fetch_agent_presence()
        assert rows == [AgentPresence("1001", T0, "cli"), owing], type(store).__name__


def test_a_switch_keeps_its_last_flip_in_both_databases(tmp_path: Path, postgres_url: str) -> None:
    later = T0 + timedelta(minutes=5)
    for store in both_stores(tmp_path, postgres_url):
        store.write_switch(SwitchState("storm", True, T0, "api"))
        store.write_switch(SwitchState("storm", False, later, "cli"))
        store.write_switch(SwitchState("outage", True, T0, "api"))
        rows = store.fetch_switches()
        assert rows == [
            SwitchState("outage", True, T0, "api"),
            SwitchState("storm", False, later, "cli"),
        ], type(store).__name__


def test_a_callers_last_agent_is_read_from_the_cdrs_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    calls = [
        cdr("1.1", start=T0, agent="1002"),
        cdr("1.2", start=T0 + timedelta(hours=1), agent="1003"),
        cdr("1.3", start=T0 + timedelta(hours=2), agent=""),
        cdr("1.4", start=T0 + timedelta(hours=3), agent="1001", queue="sales"),
        cdr("1.5", start=T0 + timedelta(hours=4), agent="1001", src="0699999999"),
        # 1004 dialled 0611111111 (dst) from the queue's line (src), then 0622222222 called
        # 800 with no agent dialling: only the first is theirs; 1006 called 0633333333 back.
        cdr(
            "1.6",
            start=T0 + timedelta(hours=5),
            agent="1004",
            src="0800123456",
            dst="0611111111",
            ivr_variables='{"dialled_by": "1004"}',
        ),
        cdr("1.7", start=T0 + timedelta(hours=6), agent="1005", src="0699", dst="0622222222"),
        cdr(
            "1.8",
            start=T0 + timedelta(hours=7),
            agent="1006",
            src="0800123456",
            dst="0633333333",
            ivr_variables='{"callback_of": "1.0"}',
        ),
    ]
    for store in both_stores(tmp_path, postgres_url):
        for record in calls:
            store.write_cdr(record)
        found = [
            store.fetch_last_agent("0612345678", "support", T0),
            store.fetch_last_agent("0612345678", "support", T0 + timedelta(hours=1.5)),
            store.fetch_last_agent("0612345678", "sales", T0),
            store.fetch_last_agent("0600000000", "support", T0),
            store.fetch_last_agent("0611111111", "support", T0),
            store.fetch_last_agent("0622222222", "support", T0),
            store.fetch_last_agent("0633333333", "support", T0),
        ]
        assert found == ["1003", None, "1001", None, "1004", None, "1006"], type(store).__name__


def test_the_calls_that_left_a_queue_lately_are_read_from_the_cdrs_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    minute = timedelta(minutes=1)
    calls = [
        cdr("2.1", start=T0, end=T0 + minute, abandoned=True, wait_seconds=50.0),
        cdr("2.2", start=T0 + minute, end=T0 + 3 * minute, src="0611", ivr_variables='{"a": "1"}'),
        cdr("2.3", start=T0 - 9 * minute, end=T0 + minute, queue=""),
        cdr("2.4", start=T0 - minute, end=T0, ivr_variables='{"campaign": "spring"}'),
    ]
    for store in both_stores(tmp_path, postgres_url):
        for record in calls:
            store.write_cdr(record)
        visits = store.fetch_queue_visits(ended=T0 + minute, started=T0 - 5 * minute)
        late = store.fetch_queue_visits(ended=T0 + 2 * minute, started=T0 - 5 * minute)
        name = type(store).__name__
        assert [(v.number, v.abandoned, v.wait_seconds) for v in visits] == [
            ("0612345678", True, 50.0),
            ("0611", False, 4.25),
        ], name
        ms = timedelta(milliseconds=1)
        assert abs(visits[0].end - (T0 + minute)) < ms, "the CDR keeps milliseconds"
        assert [v.number for v in late] == ["0611"], name
        assert not any(v.campaign for v in visits), name


def test_queue_member_changes_are_kept_and_cleared_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(minutes=5)
    for store in both_stores(tmp_path, postgres_url):
        store.write_member_change(MemberState("sales", "1002", True, None, T0, "api"))
        store.write_member_change(MemberState("sales", "1002", True, 2, later, "cli"))
        store.write_member_change(MemberState("support", "1001", False, None, T0, "api"))
        store.write_member_change(MemberState("support", "1003", True, 1, T0, "api"))
        store.clear_member_change("support", "1003")
        store.write_member_change(MemberState("support", "1002", True, 1, T0, "api", "lunch"))
        rows = store.fetch_member_changes()
        assert rows == [
            MemberState("sales", "1002", True, 2, later, "cli"),
            MemberState("support", "1001", False, None, T0, "api"),
            MemberState("support", "1002", True, 1, T0, "api", "lunch"),
        ], type(store).__name__


def test_numbers_added_to_number_lists_are_kept_and_cleared_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(minutes=5)
    for store in both_stores(tmp_path, postgres_url):
        store.write_number_list_entry(NumberListEntry("blocked", "5550666", T0, "api"))
        store.write_number_list_entry(NumberListEntry("blocked", "_0900X.", later, "cli"))
        store.write_number_list_entry(NumberListEntry("vip", "+4930123456", T0, "api"))
        store.clear_number_list_entry("vip", "+4930123456")
        store.write_number_list_entry(NumberListEntry("blocked", "5550666", later, "cli"))
        rows = store.fetch_number_list_entries()
        assert rows == [
            NumberListEntry("blocked", "5550666", later, "cli"),
            NumberListEntry("blocked", "_0900X.", later, "cli"),
        ], type(store).__name__


def test_supervisor_desks_are_kept_and_cleared_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(minutes=5)
    for store in both_stores(tmp_path, postgres_url):
        store.write_supervisor_desk(SupervisorDesk("2000", "PJSIP/2010", T0, "api"))
        store.write_supervisor_desk(SupervisorDesk("2000", "PJSIP/2011", later, "cli"))
        store.write_supervisor_desk(SupervisorDesk("2001", "PJSIP/2012", T0, "api"))
        store.clear_supervisor_desk("2001")
        rows = store.fetch_supervisor_desks()
        assert rows == [SupervisorDesk("2000", "PJSIP/2011", later, "cli")], type(store).__name__


def test_agents_skills_are_kept_and_cleared_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(minutes=5)
    for store in both_stores(tmp_path, postgres_url):
        store.write_agent_skills(SkillsState.of("1001", {"fr": 5}, T0, "api"))
        store.write_agent_skills(SkillsState.of("1001", {"fr": 7, "de": 2}, later, "cli"))
        store.write_agent_skills(SkillsState.of("1002", {"billing": 3}, T0, "api"))
        store.clear_agent_skills("1002")
        rows = store.fetch_agent_skills()
        expected = SkillsState("1001", (("de", 2), ("fr", 7)), later, "cli")
        assert rows == [expected], type(store).__name__


def test_agents_added_while_the_centre_runs_are_kept_and_removed_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(minutes=5)
    zoe = {"name": "Zoe", "device": "PJSIP/1010", "skills": {"fr": 7}}
    for store in both_stores(tmp_path, postgres_url):
        store.write_added_agent(AddedAgent.of("1010", zoe, T0, "api"))
        store.write_added_agent(AddedAgent.of("1010", {**zoe, "team": "a"}, later, "cli"))
        store.write_added_agent(AddedAgent.of("1011", {"name": "Yann", "device": "x/1"}, T0, "api"))
        store.clear_added_agent("1011")
        rows = store.fetch_added_agents()
        assert rows == [AddedAgent.of("1010", {**zoe, "team": "a"}, later, "cli")], type(
            store
        ).__name__


def test_schedule_requests_are_kept_and_answered_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    asked = ScheduleRequest("ab12", "1002", "2026-12-08", "[]", "dentist", T0)
    later = T0 + timedelta(hours=2)
    for store in both_stores(tmp_path, postgres_url):
        store.write_schedule_request(asked)
        store.write_schedule_request(ScheduleRequest("cd34", "1001", "2026-12-09", "[]", "", T0))
        store.write_schedule_request(
            ScheduleRequest("cd34", "1001", "2026-12-09", "[]", "", T0, "declined", later, "2000")
        )
        assert store.fetch_schedule_requests("asked") == [asked], type(store).__name__
        (_, declined) = store.fetch_schedule_requests()
        assert (declined.status, declined.decided, declined.decided_by) == (
            "declined", later, "2000"
        )  # fmt: skip
        assert asked.ranges() == () and asked.date().isoformat() == "2026-12-08"


def test_queues_added_while_the_centre_runs_are_kept_and_removed_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(minutes=5)
    vip = {"agents": ["1001"], "strategy": "ringall"}
    for store in both_stores(tmp_path, postgres_url):
        store.write_added_queue(AddedQueue.of("vip", vip, T0, "api"))
        store.write_added_queue(AddedQueue.of("vip", {**vip, "weight": 5}, later, "cli"))
        store.write_added_queue(AddedQueue.of("gold", {"agents": []}, T0, "api"))
        store.clear_added_queue("gold")
        rows = store.fetch_added_queues()
        assert rows == [AddedQueue.of("vip", {**vip, "weight": 5}, later, "cli")], type(
            store
        ).__name__
        assert rows[0].values()["weight"] == 5


def test_changed_schedule_days_are_kept_replaced_and_purged_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    later = T0 + timedelta(minutes=5)
    for store in both_stores(tmp_path, postgres_url):
        store.write_schedule_change(ScheduleChange.of("1002", "2026-12-08", [], T0, "api"))
        swap = ScheduleChange.of("1002", "2026-12-08", ["10:00-18:00"], later, "cli")
        store.write_schedule_change(swap)
        early = ScheduleChange.of("1001", "2026-11-02", ["08:00-12:00"], T0, "api")
        store.write_schedule_change(early)
        store.write_schedule_change(ScheduleChange.of("1002", "2026-12-09", [], T0, "api"))
        store.clear_schedule_change("1002", "2026-12-09")
        name = type(store).__name__
        assert store.fetch_schedule_changes() == [early, swap], name
        assert store.fetch_schedule_changes(date(2026, 12, 1)) == [swap], name
        assert swap.ranges() == ("10:00-18:00",) and swap.date() == date(2026, 12, 8)
        counts = store.purge(datetime(2026, 12, 1, tzinfo=UTC))
        assert counts["schedule_changes"] == 1, name
        assert store.fetch_schedule_changes() == [swap], name


def test_dispositions_keep_the_last_word_per_call_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    """An agent's correction replaces the call's row; the numbers of people who asked
    never to be called again come back for the campaigns."""
    first = DispositionRecord(
        "c-1", "1001", "no-interest", "", "5551001", "sales", "", "", None, False, T0
    )
    corrected = dataclasses.replace(first, code="do-not-call", note="asked", do_not_call=True)
    callback = DispositionRecord(
        "c-2", "1002", "callback", "", "5551002", "sales", "spring", "alan",
        T0 + timedelta(days=1), False, T0,
    )  # fmt: skip
    timed = DispositionRecord(
        "c-3", "1001", "callback", "", "5550199", "support", "", "",
        T0 + timedelta(hours=2), False, T0,
    )  # fmt: skip
    handed_over = QueueCallback("c-3+callback", "support", "5550199", T0 + timedelta(hours=2))
    seen = []
    for store in both_stores(tmp_path, postgres_url):
        moves = (first, corrected, callback, timed)
        written = [store.write_disposition(r) for r in moves]
        before = store.fetch_timed_callbacks()
        store.write_queue_callback(handed_over)
        after = store.fetch_timed_callbacks()
        seen.append((store.fetch_dispositions(), store.fetch_asked_not(), before, after))
        assert written == [True, True, True, True]
    assert seen[0] == seen[1]
    assert seen[0] == ([corrected, callback, timed], {"5551001"}, [timed], []), (
        "an inbound callback set for a time waits until its request is written"
    )


def test_surveys_are_read_for_some_agents_and_a_queue_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    def survey(call_id: str, agent: str, queue: str, minutes: int) -> SurveyRecord:
        at = T0 + timedelta(minutes=minutes)
        return SurveyRecord(call_id, queue, agent, "csat", "5550100", 5, (), True, 9.0, at)

    written = [
        survey("s1", "1001", "support", 1),
        survey("s2", "1002", "support", 2),
        survey("s3", "1002", "sales", 3),
        survey("s4", "1003", "support", 4),
    ]
    hour = (T0, T0 + timedelta(hours=1))
    for store in both_stores(tmp_path, postgres_url):
        for record in written:
            store.write_survey(record)
        found = [
            [r.call_id for r in store.fetch_surveys(agents={"1002", "1003"})],
            [r.call_id for r in store.fetch_surveys(last=1, agents={"1002"})],
            [r.call_id for r in store.fetch_surveys(queue="support", agents={"1002"})],
            [r.call_id for r in store.fetch_surveys(agents=set())],
            [r.call_id for r in store.fetch_surveys_between(*hour, queue="sales")],
        ]
        assert found == [["s2", "s3", "s4"], ["s3"], ["s2"], [], ["s3"]], type(store).__name__


async def test_a_long_report_read_does_not_hold_up_the_records_being_written_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    """A month's figures read for seconds: the calls that end meanwhile are on disk at once
    (the read has a connection and a thread of its own), and the read sees what was
    committed before it asked again."""
    for store in both_stores(tmp_path, postgres_url):
        reader = store.reader()
        assert reader is not None
        writer = RecordWriter(store, reader=reader)
        await writer.start()
        release = threading.Event()
        first = cdr(uniqueid="1796444790.1")

        def a_long_report(
            release: threading.Event, reader: RecordStore, call_id: str
        ) -> dict[str, Any] | None:
            release.wait(10)
            return reader.fetch_cdr(call_id)

        try:
            report = functools.partial(a_long_report, release, reader, first.uniqueid)
            reading = asyncio.create_task(writer.read(report))
            await asyncio.sleep(0)
            writer.submit(f"cdr:{first.uniqueid}", functools.partial(store.write_cdr, first))
            await writer.wait_written(f"cdr:{first.uniqueid}", timeout=5)
            assert not reading.done(), "the report is still being read"
            release.set()
            row = await reading
            assert row is not None and row["uniqueid"] == first.uniqueid
            with pytest.raises(RecordError, match="cannot store CDR"):
                await writer.read(functools.partial(reader.write_cdr, cdr(uniqueid="x.2")))
            assert await writer.read(functools.partial(reader.has_cdr, "x.2")) is False
        finally:
            release.set()
            await writer.close()


async def test_an_in_memory_database_reads_on_the_writers_thread() -> None:
    """SQLite in memory cannot be opened twice: reads see the one connection's rows."""
    store = SqliteCdrStore(":memory:")
    assert store.reader() is None
    writer = RecordWriter(store, reader=store.reader())
    await writer.start()
    try:
        writer.submit("cdr:1796444790.1", functools.partial(store.write_cdr, cdr()))
        await writer.wait_written("cdr:1796444790.1")
        assert await writer.read(functools.partial(store.has_cdr, "1796444790.1")) is True
    finally:
        await writer.close()


async def test_a_months_figures_are_read_in_the_reports_process_from_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    """The reports' worker opens its own read-only session on PostgreSQL as on SQLite and
    reads the same figures as the daemon's own connection would."""
    from callcenter.records import summary
    from callcenter.records.reports import ReportReader

    periods = summary.Periods(T0 - timedelta(days=1), T0 + timedelta(days=1), "day", UTC)
    read = []
    for store in both_stores(tmp_path, postgres_url):
        store.write_queue_log(queue_log_of_one_call())
        writer = RecordWriter(store, reader=store.reader())
        await writer.start()
        reports = ReportReader(writer.reader, writer)  # type: ignore[arg-type]
        try:
            there = await reports.read(summary.read_agent_figures, periods, {"1002": "Bob"})
            here = summary.read_agent_figures(store, periods, {"1002": "Bob"})
            assert reports.worker not in (None, os.getpid())
        finally:
            reports.close()
            await writer.close()
        assert there and [f.as_dict() for f in there] == [f.as_dict() for f in here]
        read.append([f.as_dict() for f in there])
    assert read[0] == read[1]


def test_a_place_in_a_break_line_is_kept_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    from callcenter.records.shifts import BreakLine

    since = T0 + timedelta(minutes=5)
    lined = AgentPresence(
        agent="1003",
        logged_in=T0,
        via_login="desktop",
        line=BreakLine("night", "lunch", "desktop", 2, since),
    )
    read = []
    for store in both_stores(tmp_path, postgres_url):
        store.write_agent_presence(lined)
        read.append(store.fetch_agent_presence())
    assert read[0] == read[1] == [lined]


def test_notices_standing_are_kept_and_cleared_in_both_databases(
    tmp_path: Path, postgres_url: str
) -> None:
    from callcenter.records.notices import Notice

    meeting = Notice("a1", "Team meeting at 15:00", "supervisor:2000", ("night",), T0,
                     T0 + timedelta(hours=1))  # fmt: skip
    message = Notice("b2", "Call IT back", "api", (), T0 + timedelta(minutes=1),
                     T0 + timedelta(minutes=31), ("1002",))  # fmt: skip
    read = []
    for store in both_stores(tmp_path, postgres_url):
        assert store.write_notice(meeting) and store.write_notice(message)
        assert store.clear_notice("a1") is True
        assert store.write_notice(meeting)
        read.append(store.fetch_notices())
        purged = store.purge(T0 + timedelta(days=1))
        assert purged.get("notices") == 2, purged
        assert store.fetch_notices() == []
    assert read[0] == read[1] == [meeting, message]
