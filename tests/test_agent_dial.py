"""Agents' own outbound calls: ``*77`` + a number from their phone, ``agent dial`` and
``POST /agents/<id>/dial`` (click-to-dial). The agent is on the line first, the number is
dialled, and the person who answers is put through as a queue's caller."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.events import (
    AgentDialAnswered,
    AgentDialFailed,
    AgentDialing,
    AgentPaused,
    AgentUnpaused,
    EngineEvent,
    QueueJoined,
)
from callcenter.testing import (
    BASE_CONFIG,
    TRANSPORTS,
    Center,
    merge,
    running_center,
    scrape_metrics,
    until,
)

#: Alice (1001) alone takes sales; agents dial 555XXXX numbers, the demo PBX's phones.
DIALS: dict[str, Any] = {
    "acd": {"dial_out": "PJSIP/${number}", "dial_out_allow": ["_555XXXX"]},
    "queues": {"sales": {"agents": ["1001"], "wrapup": 0}},
}


def _events(center: Center) -> list[EngineEvent]:
    seen: list[EngineEvent] = []
    center.daemon.switchboard.bus.subscribe(
        seen.append, (AgentDialing, AgentDialAnswered, AgentDialFailed)
    )
    return seen


def _answered(seen: list[EngineEvent]) -> AgentDialAnswered | None:
    return next((e for e in seen if isinstance(e, AgentDialAnswered)), None)


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_alice_clicks_to_dial_her_phone_rings_first_then_the_customer_talks_to_her(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        alice_phone = center.add_phone("PJSIP/1001", answer_after=0.05)
        customer = center.add_phone("PJSIP/5550401", answer_after=0.2, hangup_after=0.6)
        seen = _events(center)
        alice = center.daemon.router.agents["1001"]
        status, said = await center.api(
            "POST", "/agents/1001/dial", {"number": "5550401", "data": {"ticket": "T-42"}}
        )
        await until(lambda: alice.state == "on_call")
        _, shown = await center.api("GET", "/status")
        await until(
            lambda: alice.state == "available" and "1001" not in center.daemon.switchboard.dials
        )
        answered = _answered(seen)
        assert answered is not None
        await center.idle()
        cdr = await center.cdr(answered.call_id)
        rows = [e for _, e in await asyncio.to_thread(center.daemon.store.fetch_queue_log)]
        metrics = await asyncio.to_thread(scrape_metrics, center.daemon.api.port)
        await until(lambda: len(center.daemon.store.fetch_cdrs()) == 2)
        (leg,) = [r for r in center.daemon.store.fetch_cdrs() if r["uniqueid"] != cdr["uniqueid"]]
    assert status == 200, said
    assert leg["disposition"] == "ANSWERED", "Alice picked her phone up for the call"
    assert (said["agent"], said["number"], said["queue"]) == ("1001", "5550401", "sales")
    assert (alice_phone.rings, customer.rings) == (1, 1)
    assert [d["state"] for d in shown["dialling"]] == ["talking"]
    assert "talking to 5550401 (own call, through sales)" in format_status(shown)
    assert (cdr["agent"], cdr["dst"], cdr["queue"]) == ("1001", "5550401", "sales")
    assert cdr["hung_up_by"] == "caller"
    assert json.loads(cdr["ivr_variables"]) == {"ticket": "T-42", "dialled_by": "1001"}
    assert [c["variables"] for c in shown["calls"] if c["agent"] == "1001"] == [
        {"ticket": "T-42", "dialled_by": "1001"}
    ], "the agent's screen shows what the CRM sent"
    enter = [r for r in rows if r.callid == answered.call_id and r.event == "ENTERQUEUE"]
    assert [r.data[0] for r in enter] == ["agent:1001"]
    assert [type(e).__name__ for e in seen] == ["AgentDialing", "AgentDialAnswered"]
    assert 'callcenter_agent_dials_total{agent="1001",outcome="answered"} 1' in metrics
    assert 'callcenter_queue_joined_total{queue="sales"}' not in metrics, "not inbound"
    assert isinstance(seen[0], AgentDialing) and seen[0].via == "api"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_alice_dials_star_77_and_a_number_and_hanging_up_ends_the_call(
    tmp_path: Path, agi: str
) -> None:
    config = merge(DIALS, {"queues": {"sales": {"caller_id": "0800123456"}}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        customer = center.add_phone("PJSIP/5550402", answer_after=0.1)
        seen = _events(center)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550402", caller_num="1001")
        await until(lambda: alice.state == "on_call")
        await asyncio.sleep(0.2)
        await leg.hangup()
        await until(lambda: alice.state == "available")
        answered = _answered(seen)
        assert answered is not None
        await center.idle()
        cdr = await center.cdr(answered.call_id)
    assert customer.rings == 1
    assert (cdr["agent"], cdr["dst"], cdr["hung_up_by"]) == ("1001", "5550402", "agent")
    assert cdr["src"] == "0800123456", "the person called sees the sales line"
    assert isinstance(seen[0], AgentDialing) and seen[0].via == "phone"
    assert "1001" not in center.daemon.switchboard.dials


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_alice_hears_the_number_ring_until_the_customer_answers(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        # The customer stays two seconds: the test looks at Alice mid-call, which a loaded
        # machine may reach only after a short call has already ended.
        customer = center.add_phone("PJSIP/5550409", answer_after=0.6, hangup_after=2.0)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550409", caller_num="1001")
        await until(lambda: "ringback" in leg.heard)
        ringing_before_answer = customer.answered == 0
        await until(lambda: alice.state == "on_call")
        await asyncio.sleep(0.1)
        rooms = getattr(center.pbx, "conferences", {})
        still_playing = [r.playing for r in rooms.values() if getattr(r, "playing", None)]
        moh = [getattr(c, "moh_class", None) for c in center.pbx.channels.values()]
        heard = list(leg.heard)
        await until(lambda: alice.state == "available")
    assert ringing_before_answer, "the ring came while the number rang"
    assert heard.count("ringback") == 1, "once, until the customer came in"
    assert still_playing == [] and "callcenter-ringback" not in moh, "no ring in the talk"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_a_caller_cut_off_is_called_back_by_star_77_alone(tmp_path: Path, agi: str) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        back = center.add_phone("PJSIP/5550412", answer_after=0.1, hangup_after=0.3)
        seen = _events(center)
        alice = center.daemon.router.agents["1001"]
        caller = await center.caller_presses("5550412", "1")
        await caller.wait_bridged(timeout=5)
        await caller.hangup()  # cut off
        await until(lambda: alice.state == "available")
        leg = await center.pbx.call("*77", caller_num="1001")
        await until(lambda: _answered(seen) is not None)
        await leg.wait_ended(timeout=5)
        answered = _answered(seen)
        assert answered is not None
        await center.idle()
        cdr = await center.cdr(answered.call_id)
    assert back.rings == 1, "the caller's own number was dialled"
    assert (cdr["agent"], cdr["dst"], cdr["queue"]) == ("1001", "5550412", "sales")


async def test_calling_back_the_last_caller_needs_a_last_call(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=DIALS) as center:
        status, said = await center.api("POST", "/agents/1001/dial", {"number": "last"})
    assert status == 409
    assert "agent 1001 has had no call to call back" in said["error"]


async def test_alice_s_own_direct_line_is_what_the_people_she_dials_see(tmp_path: Path) -> None:
    config = merge(
        DIALS,
        {
            "agents": {"1001": {"caller_id": "0301234567"}},
            "queues": {"sales": {"caller_id": "0800123456"}},
        },
    )
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/5550421", answer_after=0.1, hangup_after=0.2)
        seen = _events(center)
        leg = await center.pbx.call("*775550421", caller_num="1001")
        await leg.wait_ended(timeout=5)
        await center.idle()
        answered = _answered(seen)
        assert answered is not None
        cdr = await center.cdr(answered.call_id)
    assert cdr["src"] == "0301234567", "her direct line, before the queue's"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_a_busy_number_tells_alice_and_hangs_her_phone_up(tmp_path: Path, agi: str) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/5550403", reject=True)
        seen = _events(center)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550403", caller_num="1001")
        await leg.wait_for_prompt("beeperr", timeout=5)
        await leg.wait_ended(timeout=5)
        await until(lambda: "1001" not in center.daemon.switchboard.dials)
        state = alice.state
    failed = [e for e in seen if isinstance(e, AgentDialFailed)]
    assert [f.reason for f in failed] in (["busy"], ["rejected"])
    assert state == "available", "free for the next caller"


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_carol_on_her_open_line_dials_from_the_cli_and_nothing_rings_on_her_side(
    tmp_path: Path, agi: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = merge(DIALS, {"queues": {"sales": {"agents": ["1003"]}}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        phone = center.add_phone("PJSIP/1003", answer_after=0.05)
        customer = center.add_phone("PJSIP/5550405", answer_after=0.1, hangup_after=0.4)
        seen = _events(center)
        line = await center.open_line("1003")
        carol = center.daemon.router.agents["1003"]
        await until(lambda: "1003" in center.daemon.switchboard.lines)
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        argv = ["agent", "dial", "1003", "--to", "5550405", "--api", api]
        code = await asyncio.to_thread(cli_main, argv)
        printed = capsys.readouterr().out
        await until(lambda: carol.state == "on_call")
        await until(
            lambda: carol.state == "available" and "1003" not in center.daemon.switchboard.dials
        )
        still_on_line = "1003" in center.daemon.switchboard.lines
        answered = _answered(seen)
        assert answered is not None
        await line.hangup()
        await until(lambda: carol.state == "logged_out")
        await center.idle()
        cdr = await center.cdr(answered.call_id)
    assert code == 0
    assert "agent 1003 dials 5550405 through queue sales" in printed
    assert (phone.rings, customer.rings) == (0, 1), "her line was used, her phone not rung"
    assert still_on_line, "the line stays open for the next call"
    assert (cdr["agent"], cdr["dst"], cdr["hung_up_by"]) == ("1003", "5550405", "caller")


@pytest.mark.parametrize("agi", ["fastagi", "esl-outbound"])
async def test_carol_with_no_screen_dials_from_her_line_with_star_77_a_number_and_hash(
    tmp_path: Path, agi: str
) -> None:
    config = merge(DIALS, {"queues": {"sales": {"agents": ["1003"]}}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        customer = center.add_phone("PJSIP/5550416", answer_after=0.1, hangup_after=0.4)
        seen = _events(center)
        line = await center.open_line("1003")
        board = center.daemon.switchboard
        carol = center.daemon.router.agents["1003"]
        await until(lambda: "1003" in board.lines and "line-1003" in center.pbx.conferences)
        await line.press("*775550416#")
        await until(lambda: carol.state == "on_call")
        await until(lambda: carol.state == "available" and "1003" not in board.dials)
        still = "1003" in board.lines
        await line.hangup()
        await center.idle()
    assert customer.rings == 1
    assert [(type(e).__name__, getattr(e, "via", "")) for e in seen][:2] == [
        ("AgentDialing", "line"),
        ("AgentDialAnswered", ""),
    ]
    assert still, "back on her line for the next call"


@pytest.mark.parametrize("agi", ["asyncagi", "esl-outbound"])
async def test_carol_on_her_line_hears_that_the_number_is_busy_and_stays_on_the_line(
    tmp_path: Path, agi: str
) -> None:
    config = merge(DIALS, {"queues": {"sales": {"agents": ["1003"]}}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/5550413", reject=True)
        seen = _events(center)
        line = await center.open_line("1003")
        board = center.daemon.switchboard
        await until(lambda: "1003" in board.lines)
        status, _ = await center.api("POST", "/agents/1003/dial", {"number": "5550413"})
        await line.wait_for_prompt("beeperr", timeout=5)
        await until(lambda: center.daemon.router.agents["1003"].state == "available")
        await until(lambda: "line-1003" in center.pbx.conferences)
        still = "1003" in board.lines
        await line.hangup()
        await center.idle()
    assert status == 200
    assert [type(e).__name__ for e in seen] == ["AgentDialing", "AgentDialFailed"]
    assert still, "her line stays open for the next call"


@pytest.mark.parametrize("agi", ["fastagi", "esl-outbound"])
async def test_alice_not_answering_her_phone_fails_the_dial_and_nobody_is_called(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=None)
        customer = center.add_phone("PJSIP/5550406", answer_after=0.1)
        seen = _events(center)
        alice = center.daemon.router.agents["1001"]
        status, _ = await center.api("POST", "/agents/1001/dial", {"number": "5550406"})
        reserved = alice.state
        await until(lambda: any(isinstance(e, AgentDialFailed) for e in seen), timeout=10)
        await until(lambda: alice.state == "available")
    failed = [e for e in seen if isinstance(e, AgentDialFailed)]
    assert status == 200
    assert reserved == "ringing", "no queue caller is offered to her meanwhile"
    assert [f.reason for f in failed] == ["agent-no-answer"]
    assert customer.rings == 0


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_alice_hanging_up_while_the_number_rings_calls_it_off(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        customer = center.add_phone("PJSIP/5550407", answer_after=1.0)
        seen = _events(center)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550407", caller_num="1001")
        await until(lambda: customer.rings == 1)
        await leg.hangup()
        await until(lambda: any(isinstance(e, AgentDialFailed) for e in seen))
        await until(lambda: alice.state == "available")
        await asyncio.sleep(1.5)  # the number answers late: nobody waits for it
        waiting = center.daemon.router.waiting("sales")
        await center.idle()
        state = alice.state
    failed = [e for e in seen if isinstance(e, AgentDialFailed)]
    assert [f.reason for f in failed] == ["agent-left"]
    assert _answered(seen) is None
    assert (waiting, state) == (0, "available"), "the late answer was not queued for anyone"


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_alice_transfers_the_person_she_called_and_her_phone_is_free_again(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/5550408", answer_after=0.1, hangup_after=1.5)
        sam = center.add_phone("PJSIP/2000", answer_after=0.1)
        seen = _events(center)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550408", caller_num="1001")
        await until(lambda: alice.state == "on_call")
        status, said = await center.api("POST", "/agents/1001/transfer", {"to": "2000"})
        await leg.wait_ended(timeout=5)
        await until(lambda: alice.state == "available")
        await until(lambda: sam.answered == 1)
        answered = _answered(seen)
        assert answered is not None
        call = center.daemon.switchboard.active.get(answered.call_id)
        await center.idle()
        cdr = await center.cdr(answered.call_id)
    assert (status, said["transferred_to"]) == (200, "2000"), said
    assert call is not None, "the person called was still on, with Sam"
    assert cdr["transfer_path"] == "1001>2000"


@pytest.mark.parametrize("agi", ["asyncagi", "esl-outbound"])
async def test_alice_on_a_break_dials_and_is_back_on_her_break_after_the_call(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/5550410", answer_after=0.1, hangup_after=0.5)
        moves: list[EngineEvent] = []
        center.daemon.switchboard.bus.subscribe(moves.append, (AgentPaused, AgentUnpaused))
        router = center.daemon.router
        alice = router.agents["1001"]
        router.pause("1001", "lunch")
        caller = await center.caller_presses("5550411", "1")  # a sales caller waits meanwhile
        leg = await center.pbx.call("*775550410", caller_num="1001")
        await until(lambda: alice.state == "on_call")
        waited = router.waiting("sales")
        await leg.wait_ended(timeout=5)
        await until(lambda: alice.state == "paused")
        reason = alice.pause_reason
        await caller.hangup()
        await center.idle()
    assert waited == 1, "the caller waiting in sales did not get her"
    assert reason == "lunch", "back on the break she was on"
    assert [(type(m).__name__, m.via) for m in moves] == [  # type: ignore[attr-defined]
        ("AgentPaused", "cli"),
        ("AgentUnpaused", "dial"),
        ("AgentPaused", "dial"),
    ]


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_a_daemon_stopping_while_the_number_rings_tells_alice_and_hangs_up(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        customer = center.add_phone("PJSIP/5550409", answer_after=None)
        leg = await center.pbx.call("*775550409", caller_num="1001")
        await until(lambda: customer.rings == 1)
        await center.restart()
        await leg.wait_ended(timeout=10)
        await center.idle()
    assert leg.heard[-1:] == ["beeperr"], "she heard that the dial was off"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_alice_talking_on_her_own_call_when_the_link_goes_down_talks_on_and_is_hung_up_after(
    tmp_path: Path, agi: str
) -> None:
    """Her leg's room (and, on AsyncAGI, the command that keeps her in it) runs on at the
    PBX while the link is down; the daemon still has the call once the link is back, and
    hangs her phone up after the person called hangs up."""
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        customer = center.add_phone("PJSIP/5550417", answer_after=0.1)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550417", caller_num="1001")
        await until(lambda: alice.state == "on_call")
        await center.pbx_outage(limit=10)
        await asyncio.sleep(0.5)
        still = (leg.state, customer.current_channel is not None, alice.state)
        await customer.hangup()
        await leg.wait_ended(timeout=10)
        await until(lambda: alice.state == "available", timeout=10)
        await center.idle(timeout=10)
        row = await center.cdr(leg.uniqueid)
    assert still[0] != "ended" and still[1], "the talk went on"
    assert still[2] == "on_call", "she is still seen talking"
    assert row["hung_up_by"] != "link_lost", "one record, the call's whole"
    assert center.daemon.left_rooms.hung_up == 0, "the daemon kept the call: nothing was left"


async def _they_talk_and_the_customer_hangs_up(center: Center, customer: Any, leg: Any) -> int:
    """Alice (1001) is on the call she dialled; the customer hangs up, her leg ends and she
    is free again. How many times the customer answered."""
    alice = center.daemon.router.agents["1001"]
    await until(lambda: alice.state == "on_call", timeout=10)
    talked = int(customer.answered)
    await customer.hangup()
    await leg.wait_ended(timeout=10)
    await until(lambda: alice.state == "available", timeout=10)
    await center.idle(timeout=10)
    return talked


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_the_number_alice_dials_answers_after_a_link_outage_and_they_talk(
    tmp_path: Path, agi: str
) -> None:
    """Her leg waits in its room across the outage (FastAGI and FreeSWITCH's socket
    applications keep running, as does AsyncAGI's ConfBridge at Asterisk): the person
    called answers once the link is back."""
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        customer = center.add_phone("PJSIP/5550416", answer_after=1.5)
        leg = await center.pbx.call("*775550416", caller_num="1001")
        await until(lambda: customer.rings == 1)
        await center.pbx_outage(limit=10)
        talked = await _they_talk_and_the_customer_hangs_up(center, customer, leg)
    assert talked == 1


@pytest.mark.parametrize("runs", [True, False], ids=["conference-ran", "conference-lost"])
async def test_alice_s_call_goes_on_when_the_link_drops_as_her_leg_is_sent_to_its_room(
    tmp_path: Path, runs: bool
) -> None:
    """FreeSWITCH park: the link drops as the daemon sends Alice's leg into its room, before
    FreeSWITCH's reply, with the room application taken or lost with the link. Her dial
    goes on: once the link is back the leg is (still, or again) in its room, the number
    she dialled answers and they talk (the send used to fail her call: the dial given up as
    if she had left, her leg taken again as a new call that dialled the number twice)."""
    async with running_center(tmp_path, agi="esl-inbound", config=DIALS) as center:
        customer = center.add_phone("PJSIP/5550419", answer_after=1.5)
        center.pbx.cut_at_application("conference", runs=runs)
        leg = await center.pbx.call("*775550419", caller_num="1001")
        await until(lambda: center.pbx.cut_at is None)
        talked = await _they_talk_and_the_customer_hangs_up(center, customer, leg)
        row = await center.cdr(leg.uniqueid)
    assert (talked, customer.rings) == (1, 1)
    assert row["hung_up_by"] != "link_lost"
    assert center.daemon.left_rooms.hung_up == 0


@pytest.mark.parametrize("agi", ["fastagi", "asyncagi", "esl-outbound"])
async def test_alice_s_phone_hangs_up_after_her_call_even_when_the_link_was_down_then(
    tmp_path: Path, agi: str
) -> None:
    """The kick out of the room goes over the PBX link: once it is back."""
    async with running_center(tmp_path, agi=agi, config=DIALS) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/5550415", answer_after=0.1, hangup_after=0.8)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550415", caller_num="1001")
        await until(lambda: alice.state == "on_call")
        await center.drop_pbx_connections()
        await leg.wait_ended(timeout=15)
        await until(lambda: alice.state == "available", timeout=10)
        await center.idle(timeout=10)


async def test_a_dial_in_progress_is_no_caller_waiting_nor_ahead_of_one(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=DIALS) as center:
        customer = center.add_phone("PJSIP/5550417", answer_after=None)
        joined: list[EngineEvent] = []
        center.daemon.switchboard.bus.subscribe(joined.append, (QueueJoined,))
        leg = await center.pbx.call("*775550417", caller_num="1001")
        await until(lambda: customer.rings == 1)
        caller = await center.caller_presses("5550418", "1")
        await caller.wait_moh(timeout=5)
        _, status = await center.api("GET", "/status")
        sales = next(q for q in status["queues"] if q["name"] == "sales")
        first = [e.position for e in joined if e.call_id == caller.uniqueid]  # type: ignore[attr-defined]
        await leg.hangup()
        await caller.hangup()
        await center.idle()
    assert (sales["waiting"], sales["agent_dials"]) == (1, 1)
    assert first == [1], "the caller is first in line: the dial is the agent's already"


async def test_the_person_alice_called_who_calls_back_gets_alice_with_last_agent(
    tmp_path: Path,
) -> None:
    sticky = {"sales": {"agents": ["1002", "1001"], "strategy": "linear", "last_agent": 3600}}
    config = merge(DIALS, {"queues": sticky})
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/5550420", answer_after=0.1, hangup_after=0.3)
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        alice = center.daemon.router.agents["1001"]
        leg = await center.pbx.call("*775550420", caller_num="1001")
        await leg.wait_ended(timeout=5)
        await until(lambda: alice.state == "available")
        await center.idle()
        await center.restart()  # the next daemon finds it in the CDRs
        back = await center.caller_presses("5550420", "1")
        bridged = await back.wait_bridged(timeout=5)
        await back.hangup()
        await center.idle()
    assert bridged.endswith("1001"), "the customer calling back reaches the agent who called"


async def test_ops_dial_for_alice_from_the_terminal_and_wait_for_the_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=DIALS) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/5550423", answer_after=0.1, hangup_after=0.3)
        center.add_phone("PJSIP/5550424", reject=True)
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        alice = center.daemon.router.agents["1001"]
        answered = await asyncio.to_thread(
            cli_main, ["agent", "dial", "1001", "--to", "5550423", "--wait", "--api", api]
        )
        first = capsys.readouterr().out
        await until(
            lambda: alice.state == "available" and "1001" not in center.daemon.switchboard.dials
        )
        busy = await asyncio.to_thread(
            cli_main, ["agent", "dial", "1001", "--to", "5550424", "--wait", "--api", api]
        )
        second = capsys.readouterr().out
        await until(lambda: "1001" not in center.daemon.switchboard.dials)
        await center.idle()
    assert answered == 0 and "answered: call " in first
    assert busy == 1
    assert "nobody put through: busy" in second or "nobody put through: rejected" in second


async def test_dials_that_cannot_be_made_are_refused_with_what_to_do(tmp_path: Path) -> None:
    config = merge(DIALS, {"acd": {"dial_out_block": ["do_not_call"]}})
    config["ivr"] = {"number_lists": {"do_not_call": ["5550499"]}}
    async with running_center(tmp_path, config=config) as center:
        refused = {
            "not allowed": await center.api("POST", "/agents/1001/dial", {"number": "0612345678"}),
            "blocked": await center.api("POST", "/agents/1001/dial", {"number": "5550499"}),
            "no number": await center.api("POST", "/agents/1001/dial", {}),
            "bad data": await center.api(
                "POST", "/agents/1001/dial", {"number": "5550401", "data": {"a b": "x"}}
            ),
            "unknown agent": await center.api("POST", "/agents/9999/dial", {"number": "5550401"}),
            "not a member": await center.api(
                "POST", "/agents/1002/dial", {"number": "5550401", "queue": "sales"}
            ),
        }
        refused["logged out"] = await center.api(
            "POST", "/agents/1003/dial", {"number": "5550401", "queue": "sales"}
        )
        left = center.daemon.router.waiting("sales")
        center.daemon.switchboard.begin_drain()
        refused["draining"] = await center.api("POST", "/agents/1001/dial", {"number": "5550401"})
    assert {k: v[0] for k, v in refused.items()} == {
        "not allowed": 409,
        "blocked": 409,
        "no number": 400,
        "bad data": 400,
        "unknown agent": 404,
        "not a member": 409,
        "logged out": 409,
        "draining": 409,
    }
    assert "acd.dial_out_allow" in refused["not allowed"][1]["error"]
    assert "do_not_call" in refused["blocked"][1]["error"]
    assert "agent 1003 is not logged in" in refused["logged out"][1]["error"]
    assert "draining" in refused["draining"][1]["error"]
    assert "not a member of queue sales" in refused["not a member"][1]["error"]
    assert left == 0, "a refused dial leaves nobody waiting in the queue"


async def test_without_dial_out_agents_dial_nothing(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        status, said = await center.api("POST", "/agents/1001/dial", {"number": "5550401"})
    assert status == 409
    assert "acd.dial_out is not set" in said["error"]


@pytest.mark.parametrize(
    ("acd", "ivr", "expected"),
    [
        ({"dial_out_allow": ["_0X."]}, None, "dial_out (how to dial them"),
        ({"dial_out": "PJSIP/${number}@trunk"}, None, "dial_out_allow lists no number"),
        (
            {
                "dial_out": "PJSIP/${number}@trunk",
                "dial_out_allow": ["_0X."],
                "dial_out_block": ["dnc"],
            },
            {"number_lists": {"do_not_call": ["0612345678"]}},
            'acd.dial_out_block[0]: no number list named "dnc"',
        ),
    ],
)
def test_a_dial_out_config_that_cannot_work_is_an_error(
    acd: dict[str, Any], ivr: dict[str, Any] | None, expected: str
) -> None:
    config = merge(BASE_CONFIG, {"acd": acd})
    if ivr is not None:
        config["ivr"] = ivr
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(config))
    assert expected in str(caught.value)
