"""Asterisk's queue_log, as a queue reporting tool (QueueMetrics, Asternic) reads it: the
fold gives app_queue's lines for each call and agent event, the records database keeps them
once each and in order, ``callcenter report --queue-log`` prints them in the file's format
(and follows new ones), and a real call through either demo PBX leaves the lines app_queue
would have written."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.cli import main as cli_main
from callcenter.config import load_config
from callcenter.errors import ConfigError
from callcenter.events import (
    AgentConnected,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentRingFailed,
    AgentRinging,
    AgentUnpaused,
    CallAnswered,
    CallEnded,
    CallEvent,
    CallStarted,
    CallTransferred,
    CampaignAnswered,
    EngineEvent,
    QueueAbandoned,
    QueueExited,
    QueueJoined,
    TalkEnded,
)
from callcenter.records.queue_log import QueueLogEntry, QueueLogRecorder, agent_entries, fold
from callcenter.records.rescue import decode_write, encode_write
from callcenter.records.store import SqliteCdrStore
from callcenter.records.writer import RecordWriter
from callcenter.testing import BASE_CONFIG, TRANSPORTS, merge, running_center

T0 = datetime(2024, 5, 6, 9, 0, 0, tzinfo=UTC)
EPOCH = int(T0.timestamp())
CID = "1715000000.42"


def at(t: float) -> dict[str, Any]:
    return {"at": T0 + timedelta(seconds=t), "mono": 5000.0 + t}


def started() -> CallStarted:
    return CallStarted(
        call_id=CID,
        channel="PJSIP/sipp-00000001",
        caller_num="0612345678",
        caller_name="Alice Martin",
        dialed="800",
        context="from-external",
        **at(0),
    )


def joined(t: float = 5.0, position: int = 2) -> QueueJoined:
    return QueueJoined(call_id=CID, queue="support", position=position, **at(t))


def connected(t: float = 20.0, agent: str = "1002") -> AgentConnected:
    return AgentConnected(
        call_id=CID,
        queue="support",
        agent=agent,
        peer_channel=f"PJSIP/{agent}-00000003",
        wait_seconds=t - 5.0,
        ring_seconds=2.4,
        **at(t),
    )


def ended(t: float, by: str = "caller") -> CallEnded:
    return CallEnded(call_id=CID, hung_up_by=by, cause=16, cause_name="NORMAL_CLEARING", **at(t))


def lines(events: list[CallEvent]) -> list[str]:
    """The queue_log lines of one call's events, without the time column."""
    state = None
    out: list[str] = []
    for event in events:
        state, entries = fold(state, event)
        out += [entry.line().split("|", 1)[1] for entry in entries]
    return out


def test_a_call_answered_by_the_second_agent_rung_gives_app_queue_s_lines() -> None:
    events = [
        started(),
        CallAnswered(call_id=CID, **at(0.5)),
        joined(),
        AgentRinging(call_id=CID, queue="support", agent="1001", device="PJSIP/1001", **at(6)),
        AgentRingFailed(
            call_id=CID, queue="support", agent="1001", status="NOANSWER", ring_seconds=15, **at(21)
        ),
        connected(t=25.0),
        TalkEnded(call_id=CID, agent="1002", talk_seconds=60.4, hung_up_by="caller", **at(85)),
        ended(85.2),
    ]
    assert lines(events) == [
        f"{CID}|support|NONE|ENTERQUEUE||0612345678|2",
        f"{CID}|support|Agent/1001|RINGNOANSWER|15000",
        f"{CID}|support|Agent/1002|CONNECT|20||2",
        f"{CID}|support|Agent/1002|COMPLETECALLER|20|60|2",
    ]
    state = None
    for event in events[:3]:
        state, entries = fold(state, event)
    assert [e.line().split("|")[0] for e in entries] == [str(EPOCH + 5)], "UNIX seconds"


def test_a_campaign_lead_joins_the_queue_with_the_campaign_in_the_url_field() -> None:
    answered = CampaignAnswered(
        call_id=CID, campaign="spring", lead="ada", number="5551001", queue="support",
        attempt=1, **at(1),
    )  # fmt: skip
    assert lines([started(), answered, joined()])[0] == (
        f"{CID}|support|NONE|ENTERQUEUE|campaign:spring|0612345678|2"
    )


def test_the_agent_hanging_up_is_completeagent() -> None:
    talk = TalkEnded(call_id=CID, agent="1002", talk_seconds=30, hung_up_by="agent", **at(50))
    assert lines([started(), joined(), connected(), talk, ended(50, "agent")])[-1] == (
        f"{CID}|support|Agent/1002|COMPLETEAGENT|15|30|2"
    )


def test_a_transfer_is_blindtransfer_and_the_talk_after_it_leaves_no_line() -> None:
    events = [
        started(),
        joined(),
        connected(),
        TalkEnded(call_id=CID, agent="1002", talk_seconds=40, hung_up_by="system", **at(60)),
        CallTransferred(call_id=CID, by="1002", to="2000", **at(60)),
        TalkEnded(call_id=CID, agent="2000", talk_seconds=90, hung_up_by="caller", **at(150)),
        ended(150),
    ]
    assert lines(events)[2:] == [f"{CID}|support|Agent/1002|BLINDTRANSFER|2000||15|40|2"]


def test_a_caller_who_gives_up_waiting_is_abandon_with_positions_and_wait() -> None:
    gave_up = QueueAbandoned(call_id=CID, queue="support", position=1, wait_seconds=99, **at(47))
    ringing_stopped = AgentRingFailed(
        call_id=CID, queue="support", agent="1001", status="CANCEL", ring_seconds=1.5, **at(47)
    )
    assert lines([started(), joined(position=3), ringing_stopped, gave_up, ended(47)])[1:] == [
        f"{CID}|support|Agent/1001|RINGCANCELED|1500",
        f"{CID}|support|NONE|ABANDON|1|3|42",
    ]


@pytest.mark.parametrize(
    ("reason", "key", "line"),
    [
        ("timeout", "", "EXITWITHTIMEOUT|1|2|300"),
        ("leaveempty", "", "EXITEMPTY|1|2|300"),
        ("exitkey", "9", "EXITWITHKEY|9|1|2|300"),
        ("callback", "5", "EXITWITHKEY|5|1|2|300"),
        ("callback", "", "EXITWITHTIMEOUT|1|2|300"),
        ("full", "", "FULL|"),
        ("joinempty", "", "JOINEMPTY|"),
        ("withdrawn", "", "WITHDRAW|1|2|300"),
    ],
)
def test_a_queue_rule_taking_the_caller_out_is_its_exit_line(
    reason: str, key: str, line: str
) -> None:
    out = QueueExited(
        call_id=CID,
        queue="support",
        reason=reason,
        wait_seconds=300,
        position=1,
        key=key,
        **at(305),
    )
    assert lines([started(), joined(), out])[-1] == f"{CID}|support|NONE|{line}"


def test_agent_shift_and_pauses_are_agentlogin_pauseall_unpauseall_agentlogoff() -> None:
    events: list[Any] = [
        AgentLoggedIn(agent="1001", device="PJSIP/1001", **at(0)),
        AgentPaused(agent="1001", reason="lunch", **at(10)),
        AgentUnpaused(agent="1001", **at(20)),
        AgentLoggedOut(agent="1001", shift_seconds=3600.4, **at(3600)),
    ]
    got = [entry.line() for e in events for entry in agent_entries(e, "PJSIP/1001")]
    assert got == [
        f"{EPOCH}|NONE|NONE|Agent/1001|AGENTLOGIN|PJSIP/1001",
        f"{EPOCH + 10}|NONE|NONE|Agent/1001|PAUSEALL|lunch",
        f"{EPOCH + 20}|NONE|NONE|Agent/1001|UNPAUSEALL|",
        f"{EPOCH + 3600}|NONE|NONE|Agent/1001|AGENTLOGOFF|PJSIP/1001|3600",
    ]


def test_fold_is_pure() -> None:
    state, _ = fold(None, started())
    before = state
    fold(state, joined())
    assert state == before


CALL_EVENTS = [
    started(),
    joined(),
    AgentRingFailed(
        call_id=CID, queue="support", agent="1001", status="BUSY", ring_seconds=0.2, **at(6)
    ),
    connected(),
    TalkEnded(call_id=CID, agent="1002", talk_seconds=40, hung_up_by="system", **at(60)),
    CallTransferred(call_id=CID, by="1002", to="2000", **at(60)),
    QueueAbandoned(call_id=CID, queue="support", position=1, wait_seconds=3, **at(8)),
    QueueExited(call_id=CID, queue="support", reason="timeout", wait_seconds=3, **at(8)),
    TalkEnded(call_id=CID, agent="1002", talk_seconds=40, hung_up_by="caller", **at(60)),
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(CALL_EVENTS), max_size=12))
def test_any_event_order_gives_lines_with_distinct_keys_and_never_raises(
    events: list[CallEvent],
) -> None:
    state = None
    keys: list[str] = []
    for event in events:
        state, entries = fold(state, event)
        keys += [e.key for e in entries]
        assert all(len(e.data) <= 5 for e in entries), "the table has data1..data5"
    assert len(keys) == len(set(keys))


def entry(n: int, event: str = "ENTERQUEUE", *data: str) -> QueueLogEntry:
    return QueueLogEntry(
        f"{CID}:{n}", T0 + timedelta(seconds=n), CID, "support", "NONE", event, data
    )


def test_the_table_keeps_each_entry_once_in_order_and_follows_from_an_id(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    try:
        first = (entry(0, "ENTERQUEUE", "", "0612345678", "1"), entry(1, "ABANDON", "1", "1", "4"))
        assert store.write_queue_log(first) is True
        assert store.write_queue_log(first) is False, "a retried write adds nothing"
        assert store.write_queue_log((entry(2, "CONFIGRELOAD"),)) is True
        rows = store.fetch_queue_log()
        assert [e for _, e in rows] == [*first, entry(2, "CONFIGRELOAD")]
        ids = [row_id for row_id, _ in rows]
        assert ids == sorted(ids)
        assert [e.key for _, e in store.fetch_queue_log(after=ids[0])] == [f"{CID}:1", f"{CID}:2"]
        assert [e.key for _, e in store.fetch_queue_log(last=1)] == [f"{CID}:2"]
    finally:
        store.close()


def test_a_queue_log_write_left_unwritten_at_a_stop_can_be_kept_and_read_back() -> None:
    store = SqliteCdrStore(Path("/nonexistent/cdr.sqlite3"))
    entries = (entry(0, "ENTERQUEUE", "", "0612345678", "1"),)
    line = encode_write("queue_log:x", functools.partial(store.write_queue_log, entries))
    key, op, args, _kwargs = decode_write(line)
    assert (key, op, args) == ("queue_log:x", "write_queue_log", [entries])


async def test_recorder_writes_each_event_s_lines_through_the_record_writer(
    tmp_path: Path,
) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    writer = RecordWriter(store)
    await writer.start()
    recorder = QueueLogRecorder(store, writer)
    events: list[EngineEvent] = [
        AgentLoggedIn(agent="1002", device="PJSIP/1002", **at(0)),
        started(),
        joined(),
        connected(),
        TalkEnded(call_id=CID, agent="1002", talk_seconds=5, hung_up_by="caller", **at(25)),
        ended(25),
        AgentLoggedOut(agent="1002", shift_seconds=30, **at(30)),
    ]
    for event in events:
        recorder.on_event(event)
    assert recorder.calls_in_progress == 0, "an ended call's state goes"
    assert writer.pending == [], "entries gather before they go to the writer"
    await asyncio.sleep(recorder.gather * 3)
    assert len(store.fetch_queue_log()) == 5, "after the gathering window, one job wrote all"
    recorder.on_event(AgentLoggedIn(agent="1001", device="PJSIP/1001", **at(40)))
    recorder.flush()
    await writer.close()
    got = [e.event for _, e in store.fetch_queue_log()]
    store.close()
    assert got == [
        "AGENTLOGIN",
        "ENTERQUEUE",
        "CONNECT",
        "COMPLETECALLER",
        "AGENTLOGOFF",
        "AGENTLOGIN",
    ], "flush() hands over what gathered, before the writer closes"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_real_call_leaves_the_lines_app_queue_would_have_written(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=None)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        center.daemon.router.pause("1002", "lunch", via="test")
        center.daemon.router.unpause("1002", via="test")
        caller = await center.pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("2")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1002"
        await asyncio.sleep(0.3)
        await caller.hangup()
        store = center.daemon.store
        async with asyncio.timeout(5):
            while True:
                rows = [e for _, e in await asyncio.to_thread(store.fetch_queue_log)]
                if any(e.event == "COMPLETECALLER" for e in rows):
                    break
                await asyncio.sleep(0.02)
    call = [(e.queuename, e.agent, e.event, e.data) for e in rows if e.callid == caller.uniqueid]
    assert [c[:3] for c in call] == [
        ("support", "NONE", "ENTERQUEUE"),
        ("support", "Agent/1001", "RINGNOANSWER"),
        ("support", "Agent/1002", "CONNECT"),
        ("support", "Agent/1002", "COMPLETECALLER"),
    ]
    assert call[0][3] == ("", "5551234", "1")
    assert 900 <= int(call[1][3][0]) < 3000, "1001 rang for its 1 s ring timeout (ms)"
    hold, talk, position = call[3][3]
    assert int(hold) <= 3 and int(talk) <= 2 and position == "1"
    agents = [(e.agent, e.event, e.data) for e in rows if e.callid == "NONE"]
    assert ("Agent/1002", "PAUSEALL", ("lunch",)) in agents
    assert ("Agent/1002", "UNPAUSEALL", ()) in agents


def test_queue_log_can_be_switched_off(tmp_path: Path) -> None:
    async def run() -> list[Any]:
        config = {"records": {"queue_log": False}}
        async with running_center(tmp_path, config=config) as center:
            assert center.daemon.queue_log is None
            center.add_phone("PJSIP/1001", answer_after=0.05)
            caller = await center.caller_talks_to_an_agent("5551234", key="1")
            await center.cdr(caller.uniqueid)
            return await asyncio.to_thread(center.daemon.store.fetch_queue_log)

    assert asyncio.run(run()) == []


def _database_with_lines(tmp_path: Path, count: int) -> Path:
    config = tmp_path / "callcenter.yaml"
    config.write_text(
        "pbx: {type: asterisk, ami: {secret: x}}\nrecords: {cdr_path: var/cdr.sqlite3}\n"
    )
    (tmp_path / "var").mkdir()
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        store.write_queue_log(tuple(entry(n) for n in range(count)))
    finally:
        store.close()
    return config


def test_report_queue_log_prints_the_newest_lines_in_the_file_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _database_with_lines(tmp_path, 5)
    capsys.readouterr()
    assert cli_main(["report", str(config), "--queue-log", "--last", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{EPOCH + 3}|{CID}|support|NONE|ENTERQUEUE|",
        f"{EPOCH + 4}|{CID}|support|NONE|ENTERQUEUE|",
    ]


@pytest.mark.parametrize(
    "argv", [["--follow"], ["--queue-log", "--json"]], ids=["follow alone", "queue-log json"]
)
def test_report_queue_log_options_that_do_not_go_together_are_named(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["report", str(tmp_path / "callcenter.yaml"), *argv])
    assert exited.value.code == 2
    assert "--" in capsys.readouterr().err


def test_report_queue_log_follow_prints_lines_as_they_are_written(tmp_path: Path) -> None:
    config = _database_with_lines(tmp_path, 1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    follower = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "report", str(config), "--queue-log", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().rstrip("\n").endswith("|ENTERQUEUE|")
        store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
        try:
            store.write_queue_log((entry(7, "ABANDON", "1", "1", "7"),))
        finally:
            store.close()
        started_at = time.monotonic()
        assert (
            follower.stdout.readline().rstrip("\n")
            == f"{EPOCH + 7}|{CID}|support|NONE|ABANDON|1|1|7"
        )
        assert time.monotonic() - started_at < 10
    finally:
        follower.terminate()
        follower.wait(timeout=10)


async def test_a_daemon_start_is_queuestart_before_its_agents_and_a_reload_configreload(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        daemon = center.daemon
        await daemon.reload()
        assert daemon.queue_log is not None
        daemon.queue_log.flush()
        store = daemon.store
        async with asyncio.timeout(5):
            while not any(e.event == "CONFIGRELOAD" for _, e in store.fetch_queue_log()):
                await asyncio.sleep(0.02)
        lines = [e.line().split("|", 1)[1] for _, e in store.fetch_queue_log()]
    assert lines[0] == "NONE|NONE|NONE|QUEUESTART|"
    assert lines[1:3] == [
        "NONE|NONE|Agent/1001|AGENTLOGIN|PJSIP/1001",
        "NONE|NONE|Agent/1002|AGENTLOGIN|PJSIP/1002",
    ], "the agents the config logs in, after the start"
    assert lines[-1] == "NONE|NONE|NONE|CONFIGRELOAD|"


async def test_a_queue_log_file_gets_every_line_once_across_a_restart(tmp_path: Path) -> None:
    """What a reporting tool tailing /var/log/asterisk/queue_log reads: the table's lines, in
    order, each once, a restart and its QUEUESTART included."""
    config = {"records": {"queue_log_file": "log/queue_log"}}
    path = tmp_path / "log" / "queue_log"

    async def lines_for(center: Any, number: str) -> None:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_talks_to_an_agent(number)
        await center.cdr(caller.uniqueid)
        await center.idle()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            fields = [
                line.split("|") for line in (path.read_text() if path.exists() else "").splitlines()
            ]
            if any(f[1] == caller.uniqueid and f[4].startswith("COMPLETE") for f in fields):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"no COMPLETE line for {caller.uniqueid} in {path}")

    async with running_center(tmp_path, config=config) as center:
        await lines_for(center, "5551234")
        await center.restart()
        await lines_for(center, "5551235")
        rows = center.daemon.store.fetch_queue_log()
        table = [e.line() for _, e in rows]
    written = path.read_text().splitlines()
    assert written == table, "the file is the table, line for line"
    assert [line.split("|")[4] for line in written].count("QUEUESTART") == 2
    assert sum("|COMPLETE" in line for line in written) == 2
    assert int((tmp_path / "log" / "queue_log.pos").read_text()) == rows[-1][0]


def test_a_queue_log_file_without_the_queue_log_is_a_config_error(tmp_path: Path) -> None:
    settings = merge(BASE_CONFIG, {"records": {"queue_log": False, "queue_log_file": "ql"}})
    path = tmp_path / "cc.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    assert "records: queue_log_file needs queue_log: true" in str(caught.value)
