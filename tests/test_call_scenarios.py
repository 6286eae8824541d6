"""Whole calls through the demo PBX over real TCP: what a caller, an agent and a supervisor
would see, and the CDR a manager reads afterwards. Every scenario runs on both Asterisk AGI
transports (FastAGI, the default, and AsyncAGI over AMI)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
import uvloop

from callcenter import switchboard as switchboard_module
from callcenter.config import load_config
from callcenter.daemon import Daemon, loop_factory
from callcenter.demopbx.channels import FAILOVER_PROMPT as ASTERISK_FAILOVER
from callcenter.demopbx.freeswitch import FAILOVER_PROMPT
from callcenter.demopbx.fs_channels import prompt_name
from callcenter.pbx.asterisk.driver import AsteriskCall
from callcenter.pbx.freeswitch.driver import FreeSwitchCall
from callcenter.switchboard import EXIT_KEY_POLL
from callcenter.testing import (
    CALLBACKS_ON,
    TRANSPORTS,
    Center,
    merge,
    running_center,
    scrape_metrics,
    until,
)

FAILOVER = prompt_name(FAILOVER_PROMPT)


@pytest.fixture(params=TRANSPORTS)
def agi(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _presses_2_first_agent_silent_second_answers(tmp_path: Path, agi: str) -> None:
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=None)
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5551234", caller_name="Jane Doe")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("2")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1002"
        await asyncio.sleep(0.3)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert alice.rings == 1 and alice.answered == 0
    assert bob.answered == 1
    assert row["queue"] == "support"
    assert row["agent"] == "1002"
    assert row["src"] == "5551234"
    assert row["dst"] == "800"
    assert row["disposition"] == "ANSWERED"
    assert row["hung_up_by"] == "caller"
    assert row["hangup_cause"] == 16 and row["hangup_cause_name"] == "NORMAL_CLEARING"
    assert row["abandoned"] in (0, False)
    assert 1.0 <= row["wait_seconds"] < 3.0, "waited for alice's 1 s ring timeout, then bob"
    assert 0.2 <= row["talk_seconds"] < 2.0
    assert row["billsec"] >= 0 and row["duration"] >= row["billsec"]
    assert "main:welcome" in row["ivr_path"] and "main:support" in row["ivr_path"]
    assert row["channel"] == caller.channel
    assert "1002" in row["dstchannel"], "the agent leg (PJSIP/1002-... or sofia/.../1002@...)"


async def test_caller_presses_2_first_agent_silent_second_answers_cdr_has_queue_agent_wait(
    tmp_path: Path, agi: str
) -> None:
    await _presses_2_first_agent_silent_second_answers(tmp_path, agi)


def test_the_same_call_goes_through_on_uvloop_the_loop_callcenter_run_picks(
    tmp_path: Path, agi: str
) -> None:
    example = Path(__file__).resolve().parents[1] / "config" / "callcenter.yaml"
    config = load_config(example, environ={"CALLCENTER_AMI_SECRET": "unused"})
    factory = loop_factory(config)
    assert factory is uvloop.new_event_loop, "runtime.event_loop: auto picks uvloop"
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_presses_2_first_agent_silent_second_answers(tmp_path, agi))


async def test_caller_hangs_up_while_waiting_gives_an_abandoned_record(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=None)
        center.add_phone("PJSIP/1002", answer_after=None)
        caller = await center.pbx.call("800", caller_num="5550001")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        await caller.wait_moh(timeout=5)
        await asyncio.sleep(0.3)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        agents = center.daemon.router.agents
        assert agents["1001"].state == "available", "the ringing agent is released"

    assert row["queue"] == "sales"
    assert row["abandoned"] in (1, True)
    assert row["agent"] in (None, "")
    assert row["hung_up_by"] == "caller"
    assert row["wait_seconds"] >= 0.2


async def test_a_caller_who_hangs_up_is_let_go_at_once_even_while_the_record_is_slow(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Asterisk keeps a hung-up channel in AGI() until the script lets go: waiting there for
    # a slow disk would pile channels up in the PBX.
    async with running_center(tmp_path, agi=agi, prompt_seconds=2.0) as center:  # type: ignore[arg-type]
        recorder = center.daemon.recorder
        durable = recorder.wait_written
        waited: list[str] = []

        async def slow_disk(call_id: str, timeout: float = 5.0) -> None:
            waited.append(call_id)
            await asyncio.sleep(1.5)
            await durable(call_id, timeout)

        monkeypatch.setattr(recorder, "wait_written", slow_disk)
        caller = await center.pbx.call("800", caller_num="5550002")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.hangup()
        await caller.wait_ended(timeout=0.75)  # the record takes 1.5 s to be durable
        await center.idle(timeout=3)
        row = await center.cdr(caller.uniqueid)
    assert waited == [caller.uniqueid]
    assert row["hung_up_by"] == "caller"


async def test_a_record_slower_to_reach_the_disk_than_the_call_is_logged_slow_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that takes longer than the daemon waits for a call's record: a warning
    saying so (the record is queued), no error, and the record is there afterwards."""
    monkeypatch.setattr("callcenter.daemon.DURABLE_WAIT", 0.2)
    async with running_center(tmp_path) as center:
        store = center.daemon.store
        fast = store._execute

        def slow_disk(sql: str, params: Any) -> int:
            time.sleep(0.6)  # the writer's own thread
            return fast(sql, params)

        with structlog.testing.capture_logs() as logs:
            monkeypatch.setattr(store, "_execute", slow_disk)
            caller = await center.pbx.call("800", caller_num="5550012")
            await caller.wait_for_prompt("welcome-menu", timeout=5)
            await caller.hangup()
            await center.idle(timeout=5)
            row = await center.cdr(caller.uniqueid, timeout=10)
    slow = [e for e in logs if e["event"] == "cdr_write_slow"]
    assert [e["call_id"] for e in slow] == [caller.uniqueid]
    assert slow[0]["log_level"] == "warning" and slow[0]["records_waiting"] >= 1
    assert not [e for e in logs if e["log_level"] == "error"]
    assert row["hung_up_by"] == "caller"


async def test_records_a_full_disk_refused_until_the_stop_are_written_by_the_next_start(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up during a call and stays full until the daemon stops: the call's
    CDR and the shift of an agent who logged out meanwhile are kept beside the database,
    and the next daemon writes them before it takes calls (so the agent is not resumed)."""
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        daemon = center.daemon
        daemon.router.login("1003", via="api")
        await daemon.recorder.writer.wait_written("presence:1003")

        def disk_full(sql: str, params: Any) -> int:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(daemon.store, "_execute", disk_full)
        caller = await center.pbx.call("800", caller_num="5550007")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("2")
        await caller.wait_bridged(timeout=5)
        await caller.hangup()
        await center.idle()
        daemon.router.logout("1003", via="api")
        rescue = Path(f"{daemon.store.path}.unwritten.jsonl")
        assert not await asyncio.to_thread(rescue.exists), "kept in memory, retried meanwhile"

        await daemon.stop(flush_timeout=0.3)
        kept = (await asyncio.to_thread(rescue.read_text)).splitlines()
        monkeypatch.undo()  # space was freed
        daemon = await center.restart()
        assert not await asyncio.to_thread(rescue.exists)
        row = await center.cdr(caller.uniqueid, timeout=0.5)
        shifts = await asyncio.to_thread(daemon.store.fetch_agent_sessions)
        queue_log = [e for _, e in await asyncio.to_thread(daemon.store.fetch_queue_log)]
        states = {a["id"]: a["state"] for a in daemon.router.snapshot()["agents"]}
    all_keys = [json.loads(line)["key"] for line in kept]
    assert any(k.startswith("queue_log:") for k in all_keys), "its queue_log lines were kept too"
    keys = [k for k in all_keys if not k.startswith("queue_log:")]
    assert [key.split(":")[0] for key in keys] == ["cdr", "session", "presence"]
    assert keys[0] == f"cdr:{caller.uniqueid}" and keys[2] == "presence:1003"
    assert [e.event for e in queue_log if e.callid == caller.uniqueid][-1] == "COMPLETECALLER"
    assert row["src"] == "5550007" and row["queue"] == "support" and row["hung_up_by"] == "caller"
    assert [(s["agent"], s["via_login"], s["via_logout"]) for s in shifts] == [
        ("1003", "api", "api")
    ]
    assert states["1003"] == "logged_out", "her logout was in the kept records"


async def test_caller_hangs_up_mid_prompt_leaves_no_stuck_call_and_logs_no_error(
    tmp_path: Path, agi: str, caplog: pytest.LogCaptureFixture
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with running_center(tmp_path, agi=agi, prompt_seconds=2.0) as center:  # type: ignore[arg-type]
            caller = await center.pbx.call("800", caller_num="5550002")
            await caller.wait_for_prompt("welcome-menu", timeout=5)
            await caller.hangup()
            row = await center.cdr(caller.uniqueid)
            await center.idle(timeout=3)
            await caller.wait_ended(timeout=3)
            tasks = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
            assert not [t for t in tasks if "handle_call" in repr(t.get_coro())]

    daemon_logs = [e for e in logs if not str(e.get("event", "")).startswith("demopbx")]
    assert not [e for e in daemon_logs if e["log_level"] in ("error", "critical")]
    assert not [e for e in daemon_logs if e.get("exc_info")]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(e["event"] == "call_ended" and e["hung_up_by"] == "caller" for e in logs)

    assert row["hung_up_by"] == "caller"
    assert row["queue"] in (None, "")
    assert row["ivr_path"] == "main:welcome"


async def test_agent_transfers_caller_to_supervisor_and_cdr_shows_the_transfer(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        sam = center.add_phone("PJSIP/2000", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5550003")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("2")
        first = await caller.wait_bridged(timeout=5)
        agent_id = first.removeprefix("PJSIP/")
        await asyncio.sleep(0.1)
        target = await center.daemon.switchboard.transfer(agent_id, "supervisor")
        assert target == "2000"
        assert await caller.wait_bridged(timeout=5, device="PJSIP/2000") == "PJSIP/2000"
        await asyncio.sleep(0.2)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        assert center.daemon.router.agents[agent_id].state == "available"

    assert sam.answered == 1
    assert row["transfers"] == 1
    assert row["transfer_path"].endswith("2000")
    assert row["agent"] == agent_id
    assert row["hung_up_by"] == "caller"


async def test_a_blind_transfer_nobody_answers_brings_the_caller_back_to_the_agent(
    tmp_path: Path, agi: str
) -> None:
    """Alice sends her sales caller to Bob, whose phone rings out: the caller is told the
    transfer failed and goes back into sales ahead of a caller who came after them, and
    Alice takes them again once her wrap-up is over (a transfer recall), rather than the
    caller being hung up on."""
    sales = {"wrapup": 2, "ring_timeout": 1, "announce": "sales-greeting"}
    async with running_center(tmp_path, agi=agi, config={"queues": {"sales": sales}}) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=None)
        caller = await center.caller_presses("5550031", "1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        await until(lambda: center.daemon.switchboard.agent_call("1001"))
        later = await center.caller_presses("5550032", "1")
        await later.wait_moh(timeout=5)
        status, answer = await center.api("POST", "/agents/1001/transfer", {"to": "1002"})
        assert (status, answer.get("transferred_to")) == (200, "1002"), answer
        await bob.wait_rings(timeout=5)
        await caller.wait_for_prompt("transfer-failed", timeout=5)
        await alice.wait_answered(2, timeout=5)
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        assert later.state != "bridged", "the later caller still waits"
        await asyncio.sleep(0.1)
        await caller.hangup()
        await later.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        metrics = await asyncio.to_thread(scrape_metrics, center.daemon.api.port)

    assert (row["agent"], row["queue"], row["hung_up_by"]) == ("1001", "sales", "caller")
    assert (row["transfer_path"], row["transfers"]) == ("1001>1002>sales>1001", 1)
    assert "callcenter_transfers_failed_total 1" in metrics
    assert caller.heard.count("sales-greeting") == 1, "not greeted again once back"


async def test_with_transfer_unanswered_hangup_a_blind_transfer_nobody_answers_ends_the_call(
    tmp_path: Path, agi: str
) -> None:
    config = {
        "queues": {"sales": {"wrapup": 0, "ring_timeout": 1}},
        "acd": {"transfer_unanswered": "hangup"},
    }
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=None)
        caller = await center.caller_presses("5550033", "1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        board = center.daemon.switchboard
        await until(lambda: board.agent_call("1001"))
        await board.transfer("1001", "1002")
        await bob.wait_rings(timeout=5)
        await caller.wait_for_prompt("transfer-failed", timeout=5)
        await caller.wait_ended(timeout=5)
        row = await center.cdr(caller.uniqueid)

    assert row["hung_up_by"] == "system"
    assert (row["transfer_path"], row["transfers"]) == ("1001>1002", 1)


async def test_agent_sends_the_caller_into_another_queue_where_the_next_agent_takes_them(
    tmp_path: Path, agi: str
) -> None:
    # Alice is in support too: her wrap-up after the sales call keeps her from taking the
    # caller back there (without it she may, if the caller gets there before Bob is back).
    config = {"queues": {"sales": {"wrapup": 30}}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        center.daemon.router.pause("1002", "lunch", via="test")
        caller = await center.pbx.call("800", caller_num="5550013")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        await asyncio.sleep(0.1)
        status, answer = await center.api("POST", "/agents/1001/transfer", {"queue": "support"})
        assert (status, answer["transferred_to_queue"]) == (200, "support"), answer
        await caller.wait_moh(timeout=5)
        assert bob.rings == 0, "Bob is on lunch: the caller waits in support"
        center.daemon.router.unpause("1002", via="test")
        assert await caller.wait_bridged(timeout=5, device="PJSIP/1002") == "PJSIP/1002"
        await asyncio.sleep(0.2)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        async with asyncio.timeout(5):  # queue_log lines gather for 50 ms before a write
            while True:
                lines = [e for _, e in await asyncio.to_thread(center.daemon.store.fetch_queue_log)]
                if any(e.event == "COMPLETECALLER" for e in lines):
                    break
                await asyncio.sleep(0.02)

    assert (row["agent"], row["queue"], row["transfers"]) == ("1001", "support", 1)
    assert row["transfer_path"] == "1001>support>1002"
    assert row["hung_up_by"] == "caller"
    call = [(e.queuename, e.agent, e.event) for e in lines if e.callid == caller.uniqueid]
    assert call == [
        ("sales", "NONE", "ENTERQUEUE"),
        ("sales", "Agent/1001", "CONNECT"),
        ("sales", "Agent/1001", "BLINDTRANSFER"),
        ("support", "NONE", "ENTERQUEUE"),
        ("support", "Agent/1002", "CONNECT"),
        ("support", "Agent/1002", "COMPLETECALLER"),
    ]


async def test_a_caller_alice_sends_into_support_goes_to_bob_not_back_to_her(
    tmp_path: Path, agi: str
) -> None:
    """Support hunts top-down with Alice first, and she is free again at once (no wrap-up):
    the caller she sent there still goes to Bob, who is free too. Alone, she would get
    them back (nobody else could take them)."""
    config = {"queues": {"sales": {"wrapup": 0}, "support": {"strategy": "linear"}}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_presses("5550014", "1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        board = center.daemon.switchboard
        await until(lambda: board.agent_call("1001"))
        assert await board.transfer("1001", queue="support") == "support"
        assert await caller.wait_bridged(timeout=5, device="PJSIP/1002") == "PJSIP/1002"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)

    assert (alice.rings, bob.rings) == (1, 1)
    assert row["transfer_path"] == "1001>support>1002"


async def test_transfers_into_a_queue_that_cannot_be_made_say_why(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.caller_presses("5550014", "1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        cases = [
            ({"queue": "nosuch"}, 404, "unknown queue 'nosuch'"),
            ({"queue": "support", "to": "2000"}, 400, "not both"),
            ({"queue": ""}, 400, "say which queue"),
            ({"queue": "support", "priority": "high"}, 400, "whole number"),
        ]
        for body, code, text in cases:
            status, answer = await center.api("POST", "/agents/1001/transfer", body)
            assert (status, text in answer["error"]) == (code, True), (body, answer)
        status, answer = await center.api("POST", "/agents/1002/transfer", {"queue": "support"})
        assert status == 409 and "not on a call" in answer["error"]
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001", "the call goes on"
        await caller.hangup()


async def test_pbx_connection_cut_daemon_reconnects_and_handles_next_call(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        await center.drop_pbx_connections()
        await asyncio.sleep(0.3)
        caller = await center.pbx.call("800", caller_num="5550004")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)

    assert row["agent"] == "1001"


async def test_a_caller_talking_to_an_agent_when_the_pbx_link_drops_talks_on_in_one_record(
    tmp_path: Path, agi: str
) -> None:
    """The talk runs at the PBX (on AsyncAGI, the caller's Dial runs on through the outage
    and its result comes once the link is back): the agent stays on the call, nobody is
    offered to them meanwhile, and the record is the whole call's, not a ``link_lost`` one
    written at the cut."""
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        board = center.daemon.switchboard
        agent = center.daemon.router.agents["1001"]
        caller = await center.pbx.call("800", caller_num="5550005")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        await until(lambda: agent.state == "on_call")
        await center.pbx_outage(limit=10)
        await asyncio.sleep(1.0)
        during = (caller.state, agent.state, caller.uniqueid in board.active)
        await alice.hangup()
        row = await center.cdr(caller.uniqueid)
        await caller.wait_ended(timeout=5)
        await center.idle()

    assert during == ("bridged", "on_call", True)
    assert (row["agent"], row["hung_up_by"], row["disposition"]) == ("1001", "agent", "ANSWERED")
    assert row["billsec"] >= 1


async def test_a_caller_waiting_in_the_queue_keeps_their_place_across_a_pbx_link_outage(
    tmp_path: Path, agi: str
) -> None:
    """The queue's music plays on at the PBX while its link is down. What the queue would
    send meanwhile (here a periodic announcement) waits for the link instead of failing
    the call (on AsyncAGI and FreeSWITCH park it cannot be sent): the caller is not taken
    from the top of the menu again, and reaches Alice once she is back from her pause."""
    slow = {"reconnect_min": 2.0, "reconnect_max": 2.0}
    queue = {"periodic_announce": ["promo-a"], "periodic_announce_frequency": 0.5}
    config = {"pbx": {"ami": slow, "esl": slow}, "queues": {"sales": queue}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        status, _ = await center.api("POST", "/agents/1001/pause", {"reason": "break"})
        assert status == 200
        caller = await center.pbx.call("800", caller_num="5550006")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        await until(lambda: caller.heard.count("promo-a") >= 1, timeout=5)
        await asyncio.sleep(0.2)  # the music is back on: the next announcement is due later
        with structlog.testing.capture_logs() as logs:
            await center.pbx_outage()
        row = await _alice_back_takes(center, caller)

    assert caller.heard.count("welcome-menu") == 1, "not taken from the top again"
    assert (row["agent"], row["queue"], row["hung_up_by"]) == ("1001", "sales", "caller")
    failed = [e for e in logs if e["event"] == "call_failed"]
    assert failed == [], failed
    if agi in ("asyncagi", "esl-inbound"):
        assert "call_outlasts_outage" in [e["event"] for e in logs], "it waited"


async def test_a_caller_the_daemon_sent_nothing_during_a_link_outage_reaches_the_next_agent(
    tmp_path: Path, agi: str
) -> None:
    """The caller waits in the queue's music; the link drops and comes back with nothing to
    send meanwhile. When Alice is back from her pause she is rung and talks to the caller
    (on FreeSWITCH park the music still plays after the outage, and is stopped before the
    ring: one queued behind endless music never rings)."""
    slow = {"reconnect_min": 1.0, "reconnect_max": 1.0}
    config = {"pbx": {"ami": slow, "esl": slow}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await _waiting_for_alice(center, "5550028")
        await center.pbx_outage()
        row = await _alice_back_takes(center, caller)
    assert (row["agent"], row["queue"], row["hung_up_by"]) == ("1001", "sales", "caller")


async def test_a_ring_that_runs_out_while_the_pbx_link_is_down_is_followed_by_the_next(
    tmp_path: Path, agi: str
) -> None:
    """Alice's phone rings for the caller as the link drops, and stops ringing unanswered
    during the outage: the events that say so are lost. Once the link is back the daemon
    finds the ring over (AsyncAGI: the Dial ended unseen, its variables tell; FreeSWITCH
    park: none of the ring's legs is left, though the channel still names `bridge`), and
    rings again, instead of leaving the caller in silence."""
    slow = {"reconnect_min": 2.0, "reconnect_max": 2.0}
    config = {"pbx": {"ami": slow, "esl": slow}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=None)
        caller = await center.pbx.call("800", caller_num="5550007")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        await until(lambda: alice.rings >= 1, timeout=5)
        await center.pbx_outage()
        alice.answer_after = 0.05
        assert await caller.wait_bridged(timeout=8) == "PJSIP/1001"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert caller.heard.count("welcome-menu") == 1, "not taken from the top again"
    assert (row["agent"], row["queue"], row["hung_up_by"]) == ("1001", "sales", "caller")


async def test_stopping_the_daemon_leaves_every_caller_to_the_pbx(tmp_path: Path, agi: str) -> None:
    """SIGTERM with calls in progress: a caller talking to an agent keeps talking, and
    callers in the menu or the queue are not hung up by the daemon. Asterisk and FreeSWITCH's
    socket take them back into the dialplan (its failover), and parked callers are parked
    afresh for the next daemon. Stopping waits for none of them, and the talking
    caller's line drops when the agent hangs up."""
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        center.with_asterisk_failover()
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=None)
        talking = await center.pbx.call("800", caller_num="5550011")
        await talking.wait_for_prompt("welcome-menu", timeout=5)
        await talking.press("1")
        assert await talking.wait_bridged(timeout=5) == "PJSIP/1001"
        waiting = await center.pbx.call("800", caller_num="5550012")
        await waiting.wait_for_prompt("welcome-menu", timeout=5)
        await waiting.press("2")
        menu = await center.pbx.call("800", caller_num="5550013")
        await menu.wait_for_prompt("welcome-menu", timeout=5)
        await asyncio.sleep(0.3)
        assert len(center.daemon.switchboard.active) == 3

        async with asyncio.timeout(5):
            await center.daemon.stop()
        rows = {r["src"]: r for r in await asyncio.to_thread(center.daemon.store.fetch_cdrs)}
        assert {rows[n]["hung_up_by"] for n in ("5550011", "5550012", "5550013")} == {"shutdown"}
        assert rows["5550011"]["agent"] == "1001"
        assert rows["5550012"]["queue"] == "support"

        await asyncio.sleep(0.3)
        assert talking.state == "bridged", "the PBX owns a bridged call"
        if agi in ("fastagi", "asyncagi"):
            for caller in (waiting, menu):
                await caller.wait_for_prompt("ss-noservice", timeout=5)
                assert caller.variables["AGISTATUS"] == "SUCCESS"
        elif agi == "esl-outbound":
            for caller in (waiting, menu):
                # ``resume``: the dialplan goes on after ``socket``, to the failover.
                await caller.wait_for_prompt(FAILOVER, timeout=5)
        else:
            await _the_next_daemon_takes_the_parked_callers(center, rows, waiting, menu)
        await alice.hangup()
        await talking.wait_ended(timeout=5)


async def test_a_call_whose_hang_up_the_stop_cuts_short_still_has_its_record(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in a soak (AsyncAGI, restarts): the daemon was hanging a call up (its flow
    over) when the stop cancelled the call's task; the record was never made (the call's
    end is published after the hang-up), and the stop waited 5 s for it in vain."""
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        caller = await center.pbx.call("800", caller_num="5550015")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        board = center.daemon.switchboard
        [active] = board.active.values()
        hanging_up = asyncio.Event()

        async def hangup(*args: Any, **kwargs: Any) -> None:
            hanging_up.set()
            await asyncio.Event().wait()  # a PBX slow to answer the hang-up

        monkeypatch.setattr(active.call, "hangup", hangup)
        await caller.press("9")  # goodbye: the flow hangs up
        await asyncio.wait_for(hanging_up.wait(), 5)
        with structlog.testing.capture_logs() as logs:
            async with asyncio.timeout(5):
                await center.daemon.stop()
        rows = await asyncio.to_thread(center.daemon.store.fetch_cdrs)
    [row] = [r for r in rows if r["src"] == "5550015"]
    assert row["hung_up_by"] == "shutdown" and row["ivr_path"].startswith("main:welcome>9")
    assert "cdr_not_durable" not in [e["event"] for e in logs]


async def _the_next_daemon_takes_the_parked_callers(
    center: Center, rows: dict[str, Any], waiting: Any, menu: Any
) -> None:
    """FreeSWITCH park: the stopped daemon parked its callers afresh; the next one adopts
    them, and their records replace the rows the shutdown wrote."""
    await asyncio.sleep(0.3)
    assert (waiting.state, menu.state) == ("up", "up"), "parked, waiting for a daemon"
    heard_before = menu.heard.count("welcome-menu")
    environ = center.daemon.environ
    daemon = Daemon(
        load_config(center.config_path, environ=environ),
        config_path=center.config_path,
        environ=environ,
    )
    await daemon.start()
    try:
        async with asyncio.timeout(5):
            while menu.heard.count("welcome-menu") == heard_before:
                await asyncio.sleep(0.02)
        await menu.press("9")
        await menu.wait_ended(timeout=5)
        await waiting.hangup()
        await waiting.wait_ended(timeout=5)
        async with asyncio.timeout(5):
            await daemon.switchboard.wait_idle()
        for caller in (menu, waiting):
            await daemon.recorder.wait_written(caller.uniqueid)
        after = {r["src"]: r for r in await asyncio.to_thread(daemon.store.fetch_cdrs)}
    finally:
        await daemon.stop()
    assert len(after) == 3, "one row per call, across the restart"
    assert after["5550013"]["ivr_path"].endswith("main:goodbye")
    assert after["5550013"]["hung_up_by"] == "system"
    assert after["5550012"]["hung_up_by"] == "caller"
    assert after["5550013"]["start"] == rows["5550013"]["start"], "the first start stays"


async def test_freeswitch_park_callers_go_to_the_failover_once_no_daemon_is_left(
    tmp_path: Path,
) -> None:
    """FreeSWITCH cannot tell whether anyone will take a parked call. The dialplan schedules
    a transfer to the failover before ``park`` and the daemon cancels it when it takes the
    call: a caller kept waiting in the queue longer than that is not disturbed. Once the
    daemon has stopped for good, the callers it parked afresh and the callers arriving
    afterwards hear the failover instead of silence."""
    async with running_center(tmp_path, transport="esl-inbound", failover_after=0.5) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        center.add_phone("PJSIP/1002", answer_after=None)
        waiting = await center.pbx.call("800", caller_num="5550031")
        await waiting.wait_for_prompt("welcome-menu", timeout=5)
        await waiting.press("2")
        await waiting.wait_moh(timeout=5)
        menu = await center.pbx.call("800", caller_num="5550032")
        await menu.wait_for_prompt("welcome-menu", timeout=5)
        await asyncio.sleep(1.0)
        assert FAILOVER not in waiting.heard + menu.heard, "ours: the failover was cancelled"
        assert waiting.state == "up" and len(center.daemon.switchboard.active) == 2

        await center.daemon.stop()
        late = await center.pbx.call("800", caller_num="5550033")
        for caller in (waiting, menu, late):
            await caller.wait_for_prompt(FAILOVER, timeout=5)
            await caller.wait_ended(timeout=5)
        assert late.heard == [FAILOVER]


async def test_an_asyncagi_caller_no_daemon_takes_in_time_hears_the_failover_not_silence(
    tmp_path: Path,
) -> None:
    """A daemon that died or lost its link a moment ago leaves a fresh heartbeat behind, so
    the dialplan hands callers over to nobody: its ``TIMEOUT(absolute)`` guard sends them to
    the failover. A caller the daemon took keeps waiting in the queue past the guard (the
    daemon cleared it), and keeps their place there once the link is back (agents rung
    meanwhile and not answering do not cost it)."""
    slow = {"pbx": {"ami": {"reconnect_min": 2.0, "reconnect_max": 2.0}}}
    async with running_center(tmp_path, agi="asyncagi", config=slow, failover_after=0.5) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        waiting = await center.pbx.call("800", caller_num="5550041")
        await waiting.wait_for_prompt("welcome-menu", timeout=5)
        await waiting.press("2")
        await waiting.wait_moh(timeout=5)
        await asyncio.sleep(1.0)
        assert ASTERISK_FAILOVER not in waiting.heard and waiting.state == "up"

        await center.drop_pbx_connections()
        late = await center.pbx.call("800", caller_num="5550042")
        await late.wait_for_prompt(ASTERISK_FAILOVER, timeout=5)
        await late.wait_ended(timeout=5)
        assert late.heard == [ASTERISK_FAILOVER]

        board = center.daemon.switchboard
        await until(lambda: not board.pbx_up, timeout=5)
        await until(lambda: board.pbx_up, timeout=8)
        await asyncio.sleep(1.5)
        assert ASTERISK_FAILOVER not in waiting.heard and waiting.state == "up"
        assert waiting.heard.count("welcome-menu") == 1, "not taken from the top again"
        assert waiting.uniqueid in board.active
        await waiting.hangup()
        row = await center.cdr(waiting.uniqueid)
    assert row["hung_up_by"] == "caller" and row["queue"], "one record, the wait's whole"


async def test_an_asyncagi_call_that_arrives_while_ami_is_down_is_answered_once_it_is_back(
    tmp_path: Path,
) -> None:
    """Its AsyncAGIStart went nowhere and Asterisk waits for commands in silence: the resync
    after the reconnect finds the channel in AGI(agi:async) and takes it."""
    slow = {"pbx": {"ami": {"reconnect_min": 1.0, "reconnect_max": 1.0}}}
    async with running_center(tmp_path, agi="asyncagi", config=slow) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        await center.drop_pbx_connections()
        caller = await center.pbx.call("800", caller_num="5550021", caller_name="Late Larry")
        await asyncio.sleep(0.3)
        assert caller.heard == [] and not center.daemon.switchboard.active
        await caller.wait_for_prompt("welcome-menu", timeout=8)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    assert (row["src"], row["dst"], row["agent"]) == ("5550021", "800", "1001")
    assert row["clid"] == '"Late Larry" <5550021>'
    assert row["ivr_path"] == "main:welcome>1>main:sales"


async def test_a_caller_in_the_menu_when_the_pbx_link_drops_still_reaches_an_agent(
    tmp_path: Path, agi: str
) -> None:
    """FastAGI and FreeSWITCH's socket carry the call on its own connection: it goes on.
    On AsyncAGI and FreeSWITCH park the menu's command runs on at the PBX, and the daemon
    takes up where it was once the link is back: one record, the call's whole."""
    slow = {"reconnect_min": 0.5, "reconnect_max": 0.5}
    shared_link = agi in ("asyncagi", "esl-inbound")
    config = {"pbx": {"ami": slow, "esl": slow}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5550022")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await asyncio.sleep(0.1)
        link = center.daemon.link
        since = link.since
        with structlog.testing.capture_logs() as logs:
            await center.drop_pbx_connections()
            await until(lambda: link.connected and link.since != since, timeout=8)
            if shared_link:
                # A key reaches the PBX's menu only while it reads one: the menu's wait
                # went on through the outage and ran out; it asks again.
                async with asyncio.timeout(8):
                    while caller.heard.count("welcome-menu") < 2:
                        await asyncio.sleep(0.02)
        # One warning for the link, not one or more per caller in the IVR (a busy IVR has
        # hundreds): their calls say it at info.
        warned = [e["event"] for e in logs if e["log_level"] in ("warning", "error")]
        assert warned in (["ami_connection_lost"], ["esl_connection_lost"]), warned
        await caller.press("1")
        assert await caller.wait_bridged(timeout=8) == "PJSIP/1001"
        await caller.hangup()
        await center.idle()
        await center.daemon.recorder.wait_written(caller.uniqueid)
        rows = await asyncio.to_thread(center.daemon.store.fetch_cdrs)
    [row] = rows
    assert (row["hung_up_by"], row["agent"], row["queue"]) == ("caller", "1001", "sales")
    assert "call_failed" not in [e["event"] for e in logs]


@pytest.mark.parametrize(
    ("agi", "settled"),
    [
        ("asyncagi", "asyncagi_commands_ended_unseen"),
        ("esl-inbound", "application_completed_unseen"),
    ],
)
async def test_a_menu_whose_wait_ended_during_a_link_outage_asks_again_in_the_same_call(
    tmp_path: Path, agi: str, settled: str
) -> None:
    """The menu's wait for a key ran out at the PBX while the link that drives it was down
    (AsyncAGI's AMI, FreeSWITCH park's event socket): its result never came. The caller is
    alive, so the daemon takes it as a wait that ended with no key (one pressed meanwhile
    is lost with the link): the menu asks again, and the caller goes on in the same call
    and the same record."""
    # The reconnection waits 2-4 s (jittered): longer than the wait for a key (1 s), which
    # otherwise may end just after the link is back, seen as usual.
    slow = {"reconnect_min": 4.0, "reconnect_max": 4.0}
    config = {"pbx": {"ami": slow, "esl": slow}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5550023")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        with structlog.testing.capture_logs() as logs:
            await center.pbx_outage()
            async with asyncio.timeout(8):
                while caller.heard.count("welcome-menu") < 2:
                    await asyncio.sleep(0.02)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=8) == "PJSIP/1001"
        await caller.hangup()
        await center.idle()
        await center.daemon.recorder.wait_written(caller.uniqueid)
        rows = await asyncio.to_thread(center.daemon.store.fetch_cdrs)
    events = [e["event"] for e in logs]
    # The menu's key read ended unseen, or (the prompt ended just before the cut) could not
    # be sent and waited for the link.
    assert settled in events or "call_outlasts_outage" in events
    assert "asyncagi_channel_adopted" not in events and "call_failed" not in events
    [row] = rows
    assert (row["hung_up_by"], row["agent"], row["queue"]) == ("caller", "1001", "sales")


def _cut_before(center: Center, monkeypatch: pytest.MonkeyPatch, prompt: str) -> None:
    """The first time the daemon's one call is to play ``prompt``, the PBX link is cut
    first and the daemon knows it: the command meets a link that is down (what a cut in
    the moment between two commands does)."""
    board = center.daemon.switchboard
    [active] = board.active.values()
    play = active.call.play
    cuts = [prompt]

    async def play_after_the_cut(prompts: list[str], *args: Any, **kwargs: Any) -> Any:
        if cuts and prompt in prompts:
            cuts.clear()
            await center.drop_pbx_connections()
            await until(lambda: not board.pbx_up, timeout=5)
        return await play(prompts, *args, **kwargs)

    monkeypatch.setattr(active.call, "play", play_after_the_cut)


@pytest.mark.parametrize("agi", ["asyncagi", "esl-inbound"])
async def test_a_call_answered_while_the_link_is_down_is_answered_once_it_is_back(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon takes a call just as the link that drives it drops (a call adopted at a
    reconnection cut again at once, in a soak): its answer waits for the link, and the
    caller hears the menu, instead of a failed call taken again later."""
    kind = AsteriskCall if agi == "asyncagi" else FreeSwitchCall
    answer = kind.answer
    cuts: list[Center] = []

    async def answer_after_a_cut(call: Any) -> None:
        if cuts:
            center = cuts.pop()
            await center.drop_pbx_connections()
            await until(lambda: not center.daemon.switchboard.pbx_up, timeout=5)
        await answer(call)

    monkeypatch.setattr(kind, "answer", answer_after_a_cut)
    fast = {"reconnect_min": 0.5}
    config = {"pbx": {"ami": fast, "esl": fast}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        cuts.append(center)
        with structlog.testing.capture_logs() as logs:
            caller = await center.pbx.call("800", caller_num="5550029")
            await caller.wait_for_prompt("welcome-menu", timeout=8)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    waited = [e["where"] for e in logs if e["event"] == "call_outlasts_outage"]
    assert waited == ["answer"] and "call_failed" not in [e["event"] for e in logs]
    assert row["hung_up_by"] == "caller"


@pytest.mark.parametrize("agi", ["asyncagi", "esl-inbound"])
async def test_a_queue_greeting_due_while_the_link_is_down_is_skipped_and_the_caller_waits_on(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller chose sales; its greeting is due while the link that drives the call is
    down (AsyncAGI's AMI, FreeSWITCH park's event socket). The caller has their place: they
    wait until the link is back, hear the queue's music (the greeting is not played late)
    and reach Alice in the same call, not taken from the top of the menu again."""
    config = {
        "pbx": {"ami": {"reconnect_min": 0.5}, "esl": {"reconnect_min": 0.5}},
        "queues": {"sales": {"announce": "sales-greeting"}},
    }
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5550024")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        _cut_before(center, monkeypatch, "sales-greeting")
        with structlog.testing.capture_logs() as logs:
            await caller.press("1")
            assert await caller.wait_bridged(timeout=8) == "PJSIP/1001"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    waited = [e for e in logs if e["event"] == "call_outlasts_outage"]
    assert [e["where"] for e in waited] == ["queue"]
    assert "call_failed" not in [e["event"] for e in logs]
    assert caller.heard.count("welcome-menu") == 1 and "sales-greeting" not in caller.heard
    assert (row["agent"], row["queue"], row["hung_up_by"]) == ("1001", "sales", "caller")


@pytest.mark.parametrize("agi", ["asyncagi", "esl-inbound"])
async def test_a_blind_transfer_due_while_the_link_is_down_rings_bob_once_it_is_back(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice sends her caller to Bob just as the link that drives the call drops: the ring
    could not be sent. Bob stays kept for the caller, and is rung once the link is back;
    the caller is not taken from the top of the menu."""
    config = {"pbx": {"ami": {"reconnect_min": 0.5}, "esl": {"reconnect_min": 0.5}}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_presses("5550034", "1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        board = center.daemon.switchboard
        await until(lambda: board.agent_call("1001"))
        [active] = board.active.values()
        dial = active.call.dial
        cuts = ["PJSIP/1002"]

        async def dial_after_the_cut(device: str, *args: Any, **kwargs: Any) -> Any:
            if device in cuts:
                cuts.clear()
                await center.drop_pbx_connections()
                await until(lambda: not board.pbx_up)
            return await dial(device, *args, **kwargs)

        monkeypatch.setattr(active.call, "dial", dial_after_the_cut)
        with structlog.testing.capture_logs() as logs:
            await board.transfer("1001", "1002")
            assert await caller.wait_bridged(timeout=8, device="PJSIP/1002") == "PJSIP/1002"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    waited = [e["where"] for e in logs if e["event"] == "call_outlasts_outage"]
    assert waited == ["transfer"] and "call_failed" not in [e["event"] for e in logs]
    assert bob.answered == 1 and caller.heard.count("welcome-menu") == 1
    assert (row["transfer_path"], row["hung_up_by"]) == ("1001>1002", "caller")


async def _alice_back_takes(center: Center, caller: Any) -> dict[str, Any]:
    """Alice comes back from her break and takes the caller, who hangs up; their record."""
    status, _ = await center.api("POST", "/agents/1001/unpause", {})
    assert status == 200
    assert await caller.wait_bridged(timeout=8) == "PJSIP/1001"
    await caller.hangup()
    row = await center.cdr(caller.uniqueid)
    await center.idle()
    return row


CALLBACK_KEY = merge(
    CALLBACKS_ON,
    {
        "pbx": {"ami": {"reconnect_min": 0.5}, "esl": {"reconnect_min": 0.5}},
        "queues": {"sales": {"exit_keys": {"2": "callback"}}},
    },
)
"""Callers in sales may press 2 for a callback; the link comes back half a second or so
after a cut."""


async def _waiting_for_alice(center: Center, number: str) -> Any:
    """Alice (sales) is on a break; a caller from ``number`` chooses sales and waits in
    its music."""
    status, _ = await center.api("POST", "/agents/1001/pause", {"reason": "break"})
    assert status == 200
    caller = await center.pbx.call("800", caller_num=number)
    await caller.wait_for_prompt("welcome-menu", timeout=5)
    await caller.press("1")
    await caller.wait_moh(timeout=5)
    return caller


async def test_a_caller_who_may_press_a_key_hears_the_queue_music_all_the_while(
    tmp_path: Path, agi: str
) -> None:
    """Sales has a callback key: while the caller waits, the daemon watches for it (a key
    read a second at a time) and the caller hears the queue's music all along, started
    once, not silence between reads. Their key then keeps their place."""
    async with running_center(tmp_path, agi=agi, config=CALLBACK_KEY) as center:  # type: ignore[arg-type]
        caller = await _waiting_for_alice(center, "5550026")
        await asyncio.sleep(EXIT_KEY_POLL * 1.5)
        heard_music, plays = caller.hearing_music, caller.music_plays
        await caller.press("2")
        await caller.wait_ended(timeout=5)
        kept = list(center.daemon.switchboard.callbacks.kept.values())
        await center.idle()
    assert (heard_music, plays) == (True, 1)
    assert caller.heard[-1] == "queue-callback-confirmed" and len(kept) == 1


@pytest.mark.parametrize("agi", ["fastagi"])
async def test_a_caller_s_key_counts_while_ami_is_down_on_fastagi(tmp_path: Path, agi: str) -> None:
    """FastAGI calls go on without AMI, whose DTMFEnd events carry the keys pressed over
    the queue's music: while AMI is down the daemon watches for the callback key with
    WAIT FOR DIGIT again, and the caller's key keeps their place."""
    async with running_center(tmp_path, agi=agi, config=CALLBACK_KEY) as center:  # type: ignore[arg-type]
        board = center.daemon.switchboard
        caller = await _waiting_for_alice(center, "5550030")
        await center.drop_pbx_connections()
        await until(lambda: not board.pbx_up, timeout=5)
        await caller.press("2")
        await caller.wait_ended(timeout=5)
        kept = list(board.callbacks.kept.values())
        await center.idle()
    assert caller.heard[-1] == "queue-callback-confirmed" and len(kept) == 1


async def test_a_key_pressed_as_the_queue_music_starts_counts(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller presses the callback key the moment the queue's music starts, before
    the daemon (busy for a moment) looks for keys: the key came as an event while the music
    played, and the daemon takes it from there when it looks."""
    async with running_center(tmp_path, agi=agi, config=CALLBACK_KEY) as center:  # type: ignore[arg-type]
        status, _ = await center.api("POST", "/agents/1001/pause", {"reason": "break"})
        assert status == 200
        caller = await center.pbx.call("800", caller_num="5550027")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await until(lambda: len(center.daemon.switchboard.active) == 1, timeout=5)
        [active] = center.daemon.switchboard.active.values()
        read_digits = active.call.read_digits
        pressed = asyncio.Event()

        async def read_after_the_key(*args: Any, **kwargs: Any) -> str:
            await pressed.wait()
            return await read_digits(*args, **kwargs)

        monkeypatch.setattr(active.call, "read_digits", read_after_the_key)
        await caller.press("1")
        await caller.wait_moh(timeout=5)
        await caller.press("2")
        pressed.set()
        await caller.wait_ended(timeout=5)
        kept = list(center.daemon.switchboard.callbacks.kept.values())
        await center.idle()
    assert caller.heard[-1] == "queue-callback-confirmed" and len(kept) == 1


async def test_an_agent_back_is_rung_at_once_for_a_caller_who_may_press_a_key(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys pressed over the queue's music come as events (AMI DTMFEnd, FreeSWITCH
    DTMF): the daemon's watch for the callback key is no PBX command to sit out, so Alice,
    back from her break, is rung at once (a key read polled with WAIT FOR DIGIT would run
    out first: here its poll is made far longer than the test waits)."""
    monkeypatch.setattr(switchboard_module, "EXIT_KEY_POLL", 60.0)
    async with running_center(tmp_path, agi=agi, config=CALLBACK_KEY) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await _waiting_for_alice(center, "5550028")
        await asyncio.sleep(0.3)
        row = await _alice_back_takes(center, caller)
    assert row["agent"] == "1001" and caller.music_plays == 1


@pytest.mark.parametrize("runs", [True, False], ids=["bridge-ran", "bridge-lost"])
async def test_a_ring_sent_as_the_link_drops_ends_with_alice_talking_to_the_caller(
    tmp_path: Path, runs: bool
) -> None:
    """FreeSWITCH park: the link drops as the daemon sends the caller's ring to Alice,
    before FreeSWITCH's reply, with the ring taken (it goes on at FreeSWITCH) or lost with
    the link. Either way Alice is rung once and talks to the caller, and the record says
    so (the ring taken used to count as failed: she answered a call the daemon had given
    up, and the record had no agent)."""
    async with running_center(tmp_path, agi="esl-inbound") as center:
        alice = center.add_phone("PJSIP/1001", answer_after=0.8)
        caller = await center.pbx.call("800", caller_num="5550029")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        center.pbx.cut_at_application("bridge", runs=runs)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=8) == "PJSIP/1001"
        await until(lambda: center.daemon.router.agents["1001"].state == "on_call", timeout=5)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    assert center.pbx.cut_at is None
    assert (alice.rings, alice.answered) == (1, 1)
    assert (row["agent"], row["hung_up_by"]) == ("1001", "caller")


@pytest.mark.parametrize("agi", ["asyncagi", "esl-inbound"])
async def test_a_callback_confirmation_due_while_the_link_is_down_is_told_once_it_is_back(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller pressed the queue's callback key and their place is kept; the
    confirmation is due while the link is down. It is told once the link is back and the
    call ends as a kept callback, instead of a failed call whose caller the daemon would
    take back from the top of the menu (to ask for a callback they have)."""
    async with running_center(tmp_path, agi=agi, config=CALLBACK_KEY) as center:  # type: ignore[arg-type]
        caller = await _waiting_for_alice(center, "5550025")
        _cut_before(center, monkeypatch, "queue-callback-confirmed")
        with structlog.testing.capture_logs() as logs:
            await caller.press("2")
            await caller.wait_ended(timeout=8)
        row = await center.cdr(caller.uniqueid)
        kept = list(center.daemon.switchboard.callbacks.kept.values())
        await center.idle()
    waited = [e for e in logs if e["event"] == "call_outlasts_outage"]
    assert [e["where"] for e in waited] == ["callback"]
    assert "call_failed" not in [e["event"] for e in logs]
    assert caller.heard.count("welcome-menu") == 1
    assert caller.heard[-1] == "queue-callback-confirmed"
    assert row["hung_up_by"] == "system" and len(kept) == 1


@pytest.mark.parametrize("agi", ["asyncagi", "esl-inbound"])
async def test_a_refused_callback_said_while_the_link_is_down_leaves_the_caller_in_the_queue(
    tmp_path: Path, agi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller whose number may not be called back pressed the callback key: the "no
    callback" prompt is due while the link is down. They keep waiting in the queue, hear
    its music again once the link is back, and reach Alice when she is back."""
    async with running_center(tmp_path, agi=agi, config=CALLBACK_KEY) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await _waiting_for_alice(center, "0900123456")
        _cut_before(center, monkeypatch, "queue-callback-unavailable")
        with structlog.testing.capture_logs() as logs:
            await caller.press("2")
            await until(lambda: any(e["event"] == "call_outlasts_outage" for e in logs))
            await until(lambda: center.daemon.switchboard.pbx_up, timeout=5)
        row = await _alice_back_takes(center, caller)
    waited = [e for e in logs if e["event"] == "call_outlasts_outage"]
    assert [e["where"] for e in waited] == ["queue"]
    assert "call_failed" not in [e["event"] for e in logs]
    assert (row["agent"], row["queue"], row["hung_up_by"]) == ("1001", "sales", "caller")


@pytest.mark.parametrize(
    ("agi", "settled"),
    [
        ("asyncagi", "asyncagi_recording_ended_unseen"),
        ("esl-inbound", "application_completed_unseen"),
    ],
)
async def test_a_message_whose_recording_ended_during_a_link_outage_is_kept(
    tmp_path: Path, agi: str, settled: str
) -> None:
    """The caller leaves a message; the link that drives the call drops while it records,
    and the recording ends at the PBX (their silence) before the link is back: its end
    is never seen. The message is kept (in the box and the record, the caller thanked),
    not lost with the link and the caller taken from the top to leave it again."""
    slow = {"reconnect_min": 4.0, "reconnect_max": 4.0}
    flow = {
        "start": "vm",
        "nodes": {
            "vm": {
                "kind": "voicemail",
                "box": "sales",
                "prompt": "leave-a-message",
                "max_seconds": 30,
                "silence_seconds": 1,
                "next": "thanks",
            },
            "thanks": {"kind": "hangup", "prompt": "thanks"},
        },
    }
    config = {
        "pbx": {"ami": slow, "esl": slow},
        "ivr": {"voicemail_folder": "vm"},
        "routes": {"800": {"flow": "message"}},
        "flows": {"message": flow},
    }
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        caller = await center.pbx.call("800", caller_num="5550026")
        await caller.wait_recording(timeout=5)
        caller.speak(0.3)
        with structlog.testing.capture_logs() as logs:
            await center.pbx_outage()
            await caller.wait_ended(timeout=8)
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    events = [e["event"] for e in logs]
    assert settled in events and "call_failed" not in events
    assert caller.heard == ["leave-a-message", "beep", "thanks"], "once, and thanked"
    assert row["voicemail"].endswith(f"-{caller.uniqueid}.wav")
    assert (row["ivr_path"], row["hung_up_by"]) == ("message:vm>message:thanks", "system")


@pytest.mark.parametrize("agi", ["asyncagi", "esl-inbound"])
@pytest.mark.parametrize(
    ("on_timeout", "told"),
    [
        (None, ["queue-timeout"]),
        ({"to": "voicemail", "box": "sales", "prompt": "leave-a-message"}, ["leave-a-message"]),
    ],
)
async def test_a_queue_wait_that_runs_out_during_a_link_outage_ends_as_the_queue_says(
    tmp_path: Path, agi: str, on_timeout: dict[str, str] | None, told: list[str]
) -> None:
    """Nobody takes the caller, and their longest wait (max_wait) runs out while the link
    that drives the call is down: once it is back they hear what the queue's timeout says
    (its prompt, or its voicemail), as they would have without the outage, instead of a
    failed call taken back to the top of the menu."""
    slow = {"reconnect_min": 4.0, "reconnect_max": 4.0}
    config = {
        "pbx": {"ami": slow, "esl": slow},
        "ivr": {"voicemail_folder": "vm"},
        "queues": {"sales": {"max_wait": 1.0, "on_timeout": on_timeout}},
    }
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        caller = await _waiting_for_alice(center, "5550027")
        with structlog.testing.capture_logs() as logs:
            await center.pbx_outage()
            await caller.wait_for_prompt(told[-1], timeout=8)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    events = [e["event"] for e in logs]
    assert "call_outlasts_outage" in events and "call_failed" not in events
    assert caller.heard.count("welcome-menu") == 1, "not taken from the top again"
    assert (row["queue"], row["agent"]) == ("sales", "")
    assert row["hung_up_by"] in ("caller", "system")


async def test_menu_timeouts_run_out_and_the_default_route_queues_the_caller(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5550005")
        assert await caller.wait_bridged(timeout=8) == "PJSIP/1001"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)

    assert "please-try-again" in caller.heard
    assert row["queue"] == "support"


async def test_frozen_ami_is_noticed_by_keepalive_and_the_daemon_reconnects(
    tmp_path: Path,
) -> None:
    config = {"pbx": {"ami": {"keepalive_interval": 0.2, "action_timeout": 0.3}}}
    async with running_center(tmp_path, config=config) as center:
        lost: list[object] = []
        center.daemon.pbx.subscribe(lost.append)
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.pbx.freeze_ami(True)
        async with asyncio.timeout(5):
            while not any(type(e).__name__ == "PBXDisconnected" for e in lost):
                await asyncio.sleep(0.05)
        center.pbx.freeze_ami(False)
        async with asyncio.timeout(5):
            while not any(type(e).__name__ == "PBXConnected" for e in lost):
                await asyncio.sleep(0.05)
        caller = await center.pbx.call("800", caller_num="5550006")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        await caller.hangup()
        assert (await center.cdr(caller.uniqueid))["agent"] == "1001"


async def test_an_agent_free_at_once_is_rung_straight_away_with_music_while_it_rings(
    tmp_path: Path, agi: str
) -> None:
    """No hold music is started before the dial when an agent is already free: the caller
    hears the queue's music from the dial while the agent rings (a PBX command or four
    less per call). A caller who has to wait gets the music at once."""
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.3)
        center.add_phone("PJSIP/1002", answer_after=None)
        first = await center.pbx.call("800", caller_num="5550101")
        await first.wait_for_prompt("welcome-menu", timeout=5)
        await first.press("1")  # sales: 1001 is free
        await first.wait_moh(timeout=5)
        assert await first.wait_bridged(timeout=5) == "PJSIP/1001"
        second = await center.pbx.call("800", caller_num="5550102")
        await second.wait_for_prompt("welcome-menu", timeout=5)
        await second.press("1")  # sales: 1001 is talking to the first caller
        await second.wait_moh(timeout=5)
        await second.hangup()
        await first.hangup()
        await center.cdr(first.uniqueid)
        await center.cdr(second.uniqueid)
        await center.idle()
    assert first.music_plays == 0, first.applications
    assert second.music_plays >= 1, second.applications
