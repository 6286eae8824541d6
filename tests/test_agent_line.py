"""Agents on an open line (``*70``): they stay on the call, callers come through without
ringing their phone, ``*9`` ends a call with a caller, hanging up ends the line."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_drain import _with_api_port

from callcenter.cli import format_status
from callcenter.config import load_config_text
from callcenter.config.models import AcdConfig
from callcenter.errors import ConfigError
from callcenter.events import AgentSeated, ConsultAnswered, ConsultEnded, EngineEvent
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import (
    BASE_CONFIG,
    TRANSPORTS,
    Center,
    merge,
    running_center,
    scrape_metrics,
    until,
)

#: Carol (PIN 4321) takes the sales calls; Alice is in no queue of these tests' callers.
CAROL_SELLS = {"queues": {"sales": {"agents": ["1003"], "wrapup": 0}}}


async def _open_line(center: Center, number: str = "1003", pin: str = "4321") -> Any:
    """``number``'s phone dials ``*70`` and gives the PIN; returns the line (its call)."""
    return await center.open_line(number, pin)


def _present(tmp_path: Path) -> set[str]:
    """The agents whose shift the records of ``running_center(tmp_path)`` keep."""
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        return {presence.agent for presence in store.fetch_agent_presence()}
    finally:
        store.close()


def _in_room(center: Center, line: Any, room: str = "line-1003") -> bool:
    """Is the line's call in its room (both demo PBXs keep their rooms by name)?"""
    found = center.pbx.conferences.get(room)
    return found is not None and any(m.name == line.channel for m in found.members)


async def _put_through(center: Center, number: str, agent: str = "1003") -> Any:
    """A sales caller from ``number``, put through to ``agent`` (on the call now)."""
    caller = await center.caller_presses(number, "1")
    await caller.wait_bridged(timeout=5)
    taker = center.daemon.router.agents[agent]
    await until(lambda: taker.state == "on_call")
    return caller


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_carol_on_her_open_line_takes_callers_without_her_phone_ringing(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        phone = center.add_phone("PJSIP/1003", answer_after=0.05)
        line = await _open_line(center)
        carol = center.daemon.router.agents["1003"]
        on_line = (carol.state, carol.device)
        await asyncio.sleep(0.2)
        music_alone = line.moh_starts
        _, status = await center.api("GET", "/status")
        shown = next(a for a in status["agents"] if a["id"] == "1003")
        metrics = await asyncio.to_thread(scrape_metrics, center.daemon.api.port)
        first = await center.caller_presses("5550301", "1")
        through = await first.wait_bridged(timeout=5)
        leg = next(c for c in center.pbx.channels.values() if c.name.startswith(through))
        await until(lambda: carol.state == "on_call")
        await line.press("*9")
        await first.wait_ended(timeout=5)
        await until(lambda: carol.state == "available")
        second = await _put_through(center, "5550302")
        await second.hangup()
        await until(lambda: carol.state == "available")
        still = "1003" in center.daemon.switchboard.lines
        await line.hangup()
        await until(lambda: carol.state == "logged_out")
        await center.idle()
        first_cdr = await center.cdr(first.uniqueid)
        second_cdr = await center.cdr(second.uniqueid)
        store = center.daemon.store
        await until(lambda: any(s["agent"] == "1003" for s in store.fetch_agent_sessions()))
        shifts = store.fetch_agent_sessions()
    assert on_line[0] == "available"
    assert on_line[1].startswith(("Local/line-1003@", "loopback/app=conference:line-1003@"))
    assert through.startswith(("Local/line-1003@", "loopback/app=conference:line-1003@"))
    assert phone.rings == 0, "the agent's phone never rang: the callers came down the line"
    assert leg.heard == ["beep"], "the leg down the line beeped: Carol's cue"
    assert (shown["on_line"], shown["hot_desking"]) == (True, False)
    assert re.search(r"^callcenter_agents_on_line 1(\.0)?$", metrics, re.M), metrics[-400:]
    assert music_alone == 0, "alone on her line between callers she hears silence"
    assert "on an open line (*70)" in format_status(status)
    assert (first_cdr["agent"], first_cdr["hung_up_by"]) == ("1003", "agent")
    assert (second_cdr["agent"], second_cdr["hung_up_by"]) == ("1003", "caller")
    assert still, "the line stayed open between the callers"
    assert carol.device == "PJSIP/1003", "back at her own phone once logged out"
    assert [(s["agent"], s["via_login"], s["via_logout"]) for s in shifts] == [
        ("1003", "line", "line")
    ]
    assert "agent-loggedoff" not in line.heard, "she hung up: nobody to tell"


def test_the_line_hangup_key_may_not_clash_with_the_agent_keys() -> None:
    config = merge(BASE_CONFIG, {"acd": {"agent_keys": {}, "line_hangup_key": "*0"}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(config))
    assert "line_hangup_key ('*0') and agent_keys.help ('*0') must differ" in str(caught.value)


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_carol_hanging_up_her_line_mid_call_ends_the_call_and_logs_her_out(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        carol = center.daemon.router.agents["1003"]
        caller = await _put_through(center, "5550303")
        await line.hangup()
        await caller.wait_ended(timeout=5)
        await until(lambda: carol.state == "logged_out")
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert (cdr["agent"], cdr["hung_up_by"]) == ("1003", "agent")
    assert "1003" not in center.daemon.switchboard.lines


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_a_logout_from_the_api_tells_carol_on_her_line_and_hangs_it_up(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        status, _ = await center.api("POST", "/agents/1003/logout")
        await line.wait_ended(timeout=5)
        carol = center.daemon.router.agents["1003"]
        await center.idle()
    assert status == 200
    assert carol.state == "logged_out" and carol.device == "PJSIP/1003"
    assert line.heard[-1] == "agent-loggedoff"


@pytest.mark.parametrize("agi", ["fastagi", "esl-outbound"])
async def test_alice_logged_in_at_her_desk_moves_onto_a_line_and_keys_a_transfer_from_it(
    tmp_path: Path, agi: str
) -> None:
    config = merge(
        CAROL_SELLS, {"acd": {"agent_keys": {}}, "queues": {"sales": {"agents": ["1001"]}}}
    )
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        seen: list[Any] = []
        center.daemon.bus.subscribe(seen.append)
        alice_phone = center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        line = await center.pbx.call("*70", caller_num="1001")
        await line.wait_for_prompt("agent-loginok", timeout=5)
        await until(lambda: "line-1001" in center.pbx.conferences)
        alice = center.daemon.router.agents["1001"]
        moved = (alice.state, alice.device.startswith(("Local/", "loopback/")))
        caller = await _put_through(center, "5550304", "1001")
        await line.press("*11002#")
        bob = await caller.wait_bridged(timeout=5, device=center_device(center, "1002"))
        await caller.hangup()
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert moved == ("available", True), "logged in already: she moved onto the line"
    seated = [e for e in seen if isinstance(e, AgentSeated)]
    assert [(e.agent, e.line, e.via) for e in seated] == [("1001", True, "line")]
    assert alice_phone.rings == 0
    assert bob
    assert (cdr["agent"], cdr["transfers"]) == ("1001", 1), (
        "the agent who took it, and one transfer"
    )


def center_device(center: Center, extension: str) -> str:
    """The device a demo bridges to for an agent's phone (``PJSIP/1002``; FreeSWITCH's
    legs show the same registered device)."""
    return f"PJSIP/{extension}"


@pytest.mark.parametrize("agi", ["asyncagi", "esl-inbound"])
async def test_an_end_call_button_takes_the_agent_off_the_call_as_hanging_up_would(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        carol = center.daemon.router.agents["1003"]
        idle_status, idle = await center.api("POST", "/agents/1003/hangup")
        caller = await _put_through(center, "5550305")
        status, answer = await center.api("POST", "/agents/1003/hangup")
        await caller.wait_ended(timeout=5)
        await until(lambda: carol.state == "available")
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert idle_status == 409 and "not on a call" in idle["error"]
    assert status == 200 and answer["left"] is True
    assert (cdr["agent"], cdr["hung_up_by"]) == ("1003", "agent")


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_sam_listens_to_carol_on_her_line_then_barges_and_the_cdr_says_so(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        sam = center.add_phone("PJSIP/2000", answer_after=0.05)
        line = await _open_line(center)
        caller = await center.caller_presses("5550306", "1")
        through = await caller.wait_bridged(timeout=5)
        status, answer = await center.api("POST", "/supervisors/2000/listen", {"agent": "1003"})
        await sam.wait_answered(timeout=5)
        monitors = center.daemon.switchboard.monitoring

        def spied() -> Any:
            found = monitors.current("2000")
            channel = found.session.channel if found is not None else ""
            return center.pbx.find_channel(channel) if channel else None

        await until(lambda: spied() is not None and spied().spy_mode == "listen")
        target = center.pbx.find_channel(spied().spy_target).name
        await center.api("POST", "/supervisors/2000/barge", {"agent": "1003"})
        await until(lambda: spied() is not None and spied().spy_mode == "barge")
        await caller.hangup()
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert status == 200, answer
    assert target.startswith(through), "the supervisor spies on the leg down Carol's line"
    assert (cdr["agent"], cdr["monitored_by"], cdr["barged"]) == ("1003", "2000", True)


@pytest.mark.parametrize("agi", ["asyncagi", "esl-outbound"])
async def test_carol_on_her_line_consults_bob_and_hands_him_the_caller_with_star_9(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        bob_phone = center.add_phone("PJSIP/1002", answer_after=0.05)
        line = await _open_line(center)
        router = center.daemon.router
        board = center.daemon.switchboard
        caller = await _put_through(center, "5550307")
        status, _ = await center.api("POST", "/agents/1003/hold")
        held = await center.api("GET", "/status")
        await center.api("POST", "/agents/1003/unhold")
        status_consult, answer = await center.api("POST", "/agents/1003/consult", {"to": "1002"})
        await bob_phone.wait_answered(timeout=5)
        await until(lambda: router.agents["1002"].state == "on_call")
        await line.press("*9")
        await until(lambda: board.agent_call("1003") is None)
        bob_has_it = board.agent_call("1002") is not None
        await until(lambda: router.agents["1003"].state == "available")
        still_on_line = "1003" in board.lines
        await asyncio.sleep(0.2)
        await bob_phone.hangup()
        await caller.wait_ended(timeout=5)
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert status == 200
    call = next(c for c in held[1]["calls"] if c["agent"] == "1003")
    assert call["on_hold"] is True
    assert status_consult == 200, answer
    assert bob_has_it, "leaving the consultation hands the caller over, as hanging up does"
    assert still_on_line
    assert (cdr["transfer_path"], cdr["transfers"]) == ("1003>1002", 1)


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_a_daemon_restart_logs_carol_off_her_line_and_she_dials_star_70_again(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        daemon = await center.restart()
        await line.wait_ended(timeout=5)
        after_restart = daemon.router.agents["1003"].state
        again = await _open_line(center)
        back = daemon.router.agents["1003"].state
        await again.hangup()
        await center.idle()
    assert line.heard[-1] == "agent-loggedoff", "told, not cut off"
    assert after_restart == "logged_out", "the line was the old daemon's call"
    assert back == "available"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_carol_left_talking_on_her_line_by_a_restart_is_put_back_on_a_line_after_the_call(
    tmp_path: Path, agi: str
) -> None:
    """A call in progress is left to the PBX at a stop, a line's too: Carol keeps talking
    (she is logged out: the line was the old daemon's call). Once the caller hangs up, the
    new daemon sends her channel through *70 again: she is asked her PIN, is on a line of
    its own and takes the next caller."""
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        caller = await _put_through(center, "5550310")
        daemon = await center.restart()
        await asyncio.sleep(0.3)
        after_restart = (line.state, caller.state, _in_room(center, line))
        carol = daemon.router.agents["1003"].state
        looking = daemon.left_rooms.watched
        _, watching = await center.api("GET", "/status")
        await caller.hangup()
        await caller.wait_ended(timeout=5)
        await until(lambda: line.heard.count("agent-pass") == 2, timeout=10)
        await line.press("4321")
        await until(lambda: "1003" in daemon.switchboard.lines, timeout=5)
        back = daemon.router.agents["1003"].state
        _, done = await center.api("GET", "/status")
        metrics = await asyncio.to_thread(scrape_metrics, daemon.api.port)
        following = await _put_through(center, "5550311")
        await following.hangup()
        await line.hangup()
        await until(lambda: not center.pbx.channels, timeout=5)
        await center.idle()
    assert after_restart[1:] == ("bridged", True), after_restart
    assert "agent-loggedoff" not in line.heard, "not cut off, nor told off"
    assert (carol, looking) == ("logged_out", ["line-1003"])
    assert back == "available" and line.heard.count("agent-loginok") == 2
    assert daemon.left_rooms.taken_back == 1 and not daemon.left_rooms.watched
    assert watching["left_behind"]["rooms_watched"] == ["line-1003"]
    assert "Left by an earlier daemon: watching line-1003" in format_status(watching)
    assert (done["left_behind"]["rooms_watched"], done["left_behind"]["lines_taken_back"]) == (
        [],
        1,
    )
    assert "nobody left in a room; 1 line(s) sent through *70 again" in format_status(done)
    assert "callcenter_left_lines_taken_back_total 1" in metrics
    assert "callcenter_left_rooms_watched 0" in metrics


def test_status_says_nothing_of_what_an_earlier_daemon_left_when_it_left_nothing() -> None:
    nothing = {"rooms_watched": [], "lines_taken_back": 0, "dials_hung_up": 0}
    assert "Left by" not in format_status({"left_behind": {**nothing, "room_legs_hung_up": 0}})
    shown = format_status({"left_behind": {**nothing, "room_legs_hung_up": 2}})
    assert "Left by an earlier daemon: nobody left in a room; 2 stranded room leg(s)" in shown


@pytest.mark.parametrize("agi", ["fastagi", "asyncagi"])
async def test_a_stop_as_the_ami_link_drops_hangs_up_a_line_without_waiting_for_it(
    tmp_path: Path, agi: str
) -> None:
    """The daemon stops just as its AMI link drops: Carol's line (in her room) cannot be
    taken out of the room. Once the link is back the stop hangs it up through the AMI at
    once: an AGI HANGUP would wait behind the room command (it held a soak's restart for
    the whole command timeout on AsyncAGI)."""
    settings = {
        "pbx": {
            "ami": {"reconnect_min": 0.2, "reconnect_max": 0.2},
            "agi": {"command_timeout": 60},
        }
    }
    config = merge(CAROL_SELLS, settings)
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        await center.drop_pbx_connections()
        async with asyncio.timeout(10):
            await center.daemon.stop()
        await line.wait_ended(timeout=5)
    assert "agent-loggedoff" not in line.heard, "hung up, not told: the room could not be left"


async def test_carol_waiting_on_her_line_when_the_daemon_is_killed_is_put_back_on_a_line(
    tmp_path: Path,
) -> None:
    """``kill -9``: nobody logged Carol out nor hung her line up, she sits in her room in
    silence. The next daemon logs her out and sends her through *70 again at once."""
    async with running_center(tmp_path, agi="esl-inbound", config=CAROL_SELLS) as center:
        _with_api_port(center.config_path)
        async with center.run_apart(stderr=asyncio.subprocess.DEVNULL) as proc:
            line = await center.pbx.call("*70", caller_num="1003")
            await line.wait_for_prompt("agent-pass", timeout=5)
            await line.press("4321")
            await line.wait_for_prompt("agent-loginok", timeout=5)
            await until(lambda: _in_room(center, line), timeout=5)
            async with asyncio.timeout(5):
                while "1003" not in await asyncio.to_thread(_present, tmp_path):
                    await asyncio.sleep(0.05)
            proc.kill()
            await proc.wait()
        daemon = await center.start_again()
        await until(lambda: line.heard.count("agent-pass") == 2, timeout=10)
        await line.press("4321")
        await until(lambda: "1003" in daemon.switchboard.lines, timeout=5)
        caller = await _put_through(center, "5550312")
        await caller.hangup()
        await line.hangup()
        await center.idle()
    assert line.heard.count("agent-loginok") == 2 and "agent-loggedoff" not in line.heard


@pytest.mark.parametrize("agi", ["fastagi", "esl-outbound"])
async def test_carol_stays_on_her_line_through_a_pbx_link_outage(tmp_path: Path, agi: str) -> None:
    """FastAGI and FreeSWITCH's outbound socket keep the line's call on a link of its own."""
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        carol = center.daemon.router.agents["1003"]
        await center.drop_pbx_connections()
        await asyncio.sleep(0.5)
        caller = await _put_through(center, "5550308")
        await line.press("*9")
        await caller.wait_ended(timeout=5)
        await until(lambda: carol.state == "available")
        await line.hangup()
        await center.idle()
    assert line.heard.count("agent-pass") == 1, "asked for her PIN once"


async def test_a_line_kicked_from_its_room_while_the_link_was_down_is_back_in_it_after(
    tmp_path: Path,
) -> None:
    """AsyncAGI: the PBX admin kicks Carol's line out of its room while the AMI link is
    down, so its ConfBridge ends unseen. Once the link is back the daemon finds the
    channel alive at the AGI prompt: the room command ran to its end, as after any kick,
    and the line goes back into its room. Carol stays logged in and takes the next
    caller."""
    slow = {"pbx": {"ami": {"reconnect_min": 1.0, "reconnect_max": 1.0}}}
    async with running_center(tmp_path, agi="asyncagi", config=merge(CAROL_SELLS, slow)) as center:
        line = await _open_line(center)
        board = center.daemon.switchboard
        carol = center.daemon.router.agents["1003"]
        await center.drop_pbx_connections()
        await until(lambda: not board.pbx_up)
        _admin_kicks(center, "line-1003", line.channel)
        await until(lambda: board.pbx_up, timeout=10)
        await until(lambda: _in_room(center, line), timeout=5)
        caller = await _put_through(center, "5550309")
        await caller.hangup()
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert cdr["agent"] == "1003"
    assert carol.state != "on_call"
    assert line.heard.count("agent-pass") == 1, "never asked for her PIN again"


def _admin_kicks(center: Center, room: str, channel: str) -> None:
    """The PBX admin's ``confbridge kick <room> <channel>`` at the Asterisk console."""
    found = center.pbx.conferences[room]
    member = next(m for m in found.members if m.name == channel)
    found.kicked.add(member.uniqueid)
    member.notify()


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_carols_line_stays_open_across_a_lost_pbx_link_and_the_next_caller_reaches_her(
    tmp_path: Path, agi: str
) -> None:
    """FastAGI and FreeSWITCH's socket applications keep running while the AMI/ESL link is
    down, as does AsyncAGI's ConfBridge at Asterisk: the line waits in its room, and the
    daemon takes up where it was once the link is back."""
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        await center.pbx_outage(limit=10)
        caller = await _put_through(center, "5550311")
        await caller.hangup()
        await until(lambda: center.daemon.router.agents["1003"].state != "on_call")
        assert line.state != "ended" and _in_room(center, line), "Carol is still on her line"
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert cdr["agent"] == "1003"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_with_an_accept_key_carol_takes_a_caller_by_pressing_it_and_one_she_lets_go_waits(
    tmp_path: Path, agi: str
) -> None:
    config = merge(CAROL_SELLS, {"acd": {"line_accept_key": "1"}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        seen: list[Any] = []
        center.daemon.bus.subscribe(seen.append)
        line = await _open_line(center)
        carol = center.daemon.router.agents["1003"]
        caller = await center.caller_presses("5550310", "1")
        await until(lambda: line.heard[-1:] == ["beep"])
        await asyncio.sleep(1.5)  # the ring timeout (1 s) passes: a ring not answered
        missed = carol.missed_offers
        beeps = line.heard.count("beep")
        await until(lambda: line.heard.count("beep") > beeps, timeout=10)
        await line.press("1")
        await caller.wait_bridged(timeout=5)
        await until(lambda: carol.state == "on_call")
        await line.press("*9")
        await caller.wait_ended(timeout=5)
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    failed = [e for e in seen if type(e).__name__ == "AgentRingFailed"]
    assert missed >= 1 and failed and failed[0].status == "NOANSWER"
    assert (cdr["agent"], cdr["hung_up_by"]) == ("1003", "agent")
    assert cdr["wait_seconds"] >= 1.0, "the caller waited on through the offer she let go"


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_a_caller_hanging_up_while_carol_is_asked_leaves_her_on_her_line(
    tmp_path: Path, agi: str
) -> None:
    config = merge(CAROL_SELLS, {"acd": {"line_accept_key": "1"}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        carol = center.daemon.router.agents["1003"]
        caller = await center.caller_presses("5550311", "1")
        await until(lambda: line.heard[-1:] == ["beep"])
        await caller.hangup()
        await caller.wait_ended(timeout=5)
        await line.press("1")  # too late: nobody waits any more
        await until(lambda: "line-1003" in center.pbx.conferences and carol.state == "available")
        second = await center.caller_presses("5550312", "1")
        await until(lambda: line.heard.count("beep") == 2)
        await line.press("1")
        await second.wait_bridged(timeout=5)
        await second.hangup()
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert cdr["hung_up_by"] == "caller" and not cdr["agent"]


@pytest.mark.parametrize("agi", ["fastagi", "asyncagi"])
async def test_with_no_supervisor_the_first_line_asks_asterisk_for_the_keys(
    tmp_path: Path, agi: str
) -> None:
    base = {k: v for k, v in BASE_CONFIG.items() if k != "supervisors"}
    base["queues"] = {
        name: {k: v for k, v in queue.items() if k != "supervisor"}
        for name, queue in BASE_CONFIG["queues"].items()
    }
    async with running_center(tmp_path, agi=agi, config=CAROL_SELLS, base=base) as center:  # type: ignore[arg-type]
        before = center.daemon.pbx.ami.events
        line = await _open_line(center)
        after = center.daemon.pbx.ami.events
        caller = await center.caller_presses("5550313", "1")
        await caller.wait_bridged(timeout=5)
        await line.press("*9")
        await caller.wait_ended(timeout=5)
        await line.hangup()
        await center.idle()
    assert "dtmf" not in before and "dtmf" in after


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_carol_opens_her_line_at_another_desk_with_star_70_and_her_id(
    tmp_path: Path, agi: str
) -> None:
    config = merge(CAROL_SELLS, {"agents": {"1003": {"hot_desk": True}}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        refused = await center.pbx.call("*701001", caller_num="1010")  # Alice: no hot_desk
        await refused.wait_ended(timeout=5)
        line = await center.pbx.call("*701003", caller_num="1010")
        await line.wait_for_prompt("agent-pass", timeout=5)
        await line.press("4321")
        await until(lambda: "line-1003" in center.pbx.conferences)
        carol = center.daemon.router.agents["1003"]
        caller = await _put_through(center, "5550314")
        await caller.hangup()
        await line.hangup()
        await until(lambda: carol.state == "logged_out")
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert refused.heard[-1] == "beeperr"
    assert cdr["agent"] == "1003"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_alice_consults_carol_on_her_line_and_hands_her_the_caller(
    tmp_path: Path, agi: str
) -> None:
    """A colleague on a line is consulted, and handed callers, down her line."""
    config = {"queues": {"sales": {"agents": ["1001"]}}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        carol_phone = center.add_phone("PJSIP/1003", answer_after=0.05)
        line = await _open_line(center)
        board = center.daemon.switchboard
        caller = await center.caller_presses("5550315", "1")
        await caller.wait_bridged(timeout=5)
        await until(lambda: board.agent_call("1001") is not None)
        status, answer = await center.api("POST", "/agents/1001/consult", {"to": "1003"})
        await until(lambda: center.daemon.router.agents["1003"].state == "on_call")
        await alice.hangup()
        await until(
            lambda: board.agent_call("1003") is not None and board.agent_call("1001") is None
        )
        await line.press("*9")
        await caller.wait_ended(timeout=5)
        still = "1003" in board.lines
        await line.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert status == 200, answer
    assert carol_phone.rings == 0, "the consultation came down her line"
    assert still
    assert (cdr["transfer_path"], cdr["hung_up_by"]) == ("1001>1003", "agent")


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_carol_hanging_up_her_line_while_alice_consults_her_brings_alice_back_to_the_caller(
    tmp_path: Path, agi: str
) -> None:
    """Found by ``callcenter soak``: the leg that reached Carol down her line stayed in the
    caller's side room when she hung up, so Alice consulted silence (and after a restart
    that leg was left on the PBX for good)."""
    config = {"queues": {"sales": {"agents": ["1001"]}}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1003", answer_after=0.05)
        line = await _open_line(center)
        board = center.daemon.switchboard
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        caller = await center.caller_presses("5550316", "1")
        await caller.wait_bridged(timeout=5)
        await until(lambda: board.agent_call("1001") is not None)
        status, answer = await center.api("POST", "/agents/1001/consult", {"to": "1003"})
        await until(lambda: any(isinstance(e, ConsultAnswered) for e in events))
        await line.hangup()
        await until(lambda: any(isinstance(e, ConsultEnded) for e in events))
        found = board.agent_call("1001")
        active = found[1] if found is not None else None
        await until(lambda: active is not None and active.held_since is None)
        held = caller.state
        await caller.hangup()
        await center.idle()
        with contextlib.suppress(TimeoutError):
            await until(lambda: not center.pbx.channels, timeout=10)
        left = [channel.name for channel in center.pbx.channels.values()]
    assert status == 200, answer
    assert left == [], "nothing is left on the PBX"
    (ended,) = [e for e in events if isinstance(e, ConsultEnded)]
    assert (ended.to, ended.outcome) == ("1003", "hung_up")
    assert held != "ended", "Alice talks with the caller again"


@pytest.mark.parametrize("agi", ["fastagi", "esl-outbound"])
async def test_carol_on_her_line_keys_ready_after_a_call_and_a_break_and_back(
    tmp_path: Path, agi: str
) -> None:
    """Her phone is busy with the line, so *75 and *73 have keys on it: *6 and *8."""
    config = merge(CAROL_SELLS, {"queues": {"sales": {"wrapup_until_ready": True}}})
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        carol = center.daemon.router.agents["1003"]
        caller = await _put_through(center, "5550316")
        await line.press("*9")
        await caller.wait_ended(timeout=5)
        await asyncio.sleep(0.3)
        after_call = carol.state
        await line.press("*6")
        await until(lambda: carol.state == "available")
        await line.press("*8")
        await until(lambda: carol.state == "paused")
        reason = carol.pause_reason
        await line.press("*6")
        await until(lambda: carol.state == "available")
        await line.hangup()
        await center.idle()
    assert after_call == "wrap_up", "manual-in: the wrap-up waits for her"
    assert reason == "break"


def test_the_line_keys_may_not_clash_with_each_other() -> None:
    config = merge(BASE_CONFIG, {"acd": {"line_pause_key": "*9"}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(config))
    assert "line_hangup_key ('*9') and line_pause_key ('*9') must differ" in str(caught.value)


def test_the_line_settings_by_default_are_ones_a_config_file_may_give() -> None:
    """Defaults are not validated by pydantic: a default key the config would refuse
    (``**`` once) could not be written back into a file."""
    defaults = AcdConfig().model_dump(exclude_none=True)
    assert AcdConfig.model_validate(defaults).model_dump(exclude_none=True) == defaults


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_a_daemon_stopping_while_carol_is_asked_to_accept_hangs_her_line_up(
    tmp_path: Path, agi: str
) -> None:
    config = merge(
        CAROL_SELLS, {"acd": {"line_accept_key": "1"}, "queues": {"sales": {"ring_timeout": 20}}}
    )
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        caller = await center.caller_presses("5550317", "1")
        await until(lambda: line.heard[-1:] == ["beep"])
        daemon = await center.restart()
        await line.wait_ended(timeout=10)
        await asyncio.sleep(0.3)
        carol = daemon.router.agents["1003"].state
        await caller.hangup()
        await center.idle()
    assert line.heard.count("agent-pass") == 1, "not taken by the next daemon as a new *70"
    assert carol == "logged_out"


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_carol_with_no_screen_gives_her_call_its_code_and_joins_a_queue_from_her_line(
    tmp_path: Path, agi: str
) -> None:
    config = merge(
        CAROL_SELLS,
        {
            "queues": {"sales": {"disposition_required": True}, "support": {"digits": "22"}},
            "dispositions": {
                "sale": {"digits": "1"},
                "callback": {"digits": "9", "callback": True},
            },
        },
    )
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        line = await _open_line(center)
        router = center.daemon.router
        carol = router.agents["1003"]
        caller = await _put_through(center, "5550331")
        await caller.hangup()
        await until(lambda: carol.state == "wrap_up")
        await line.press("*761#")
        await line.wait_for_prompt("auth-thankyou", timeout=5)
        await until(lambda: carol.state == "available")
        await until(lambda: _in_room(center, line))  # back from hearing it
        await line.press("*4522#")
        await until(lambda: line.heard.count("agent-loginok") == 2)  # once at its *70
        joined = router.agent_view("1003")["queues"]
        await until(lambda: _in_room(center, line))
        await line.press("*45999#")
        await line.wait_for_prompt("beeperr", timeout=5)
        still = "1003" in center.daemon.switchboard.lines
        await line.hangup()
        await center.idle()
        await center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        rows = await asyncio.to_thread(center.daemon.store.fetch_dispositions)
    assert [(r.agent, r.code) for r in rows] == [("1003", "sale")]
    assert "support" in joined, "*45 + the queue's digits + #: a member now"
    assert still, "the codes leave her on the line"


def test_the_line_s_coded_keys_may_not_clash_with_its_other_keys() -> None:
    config = merge(BASE_CONFIG, {"acd": {"line_queue_key": "*9"}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(config))
    assert "line_queue_key ('*9') and line_hangup_key ('*9') must differ" in str(caught.value)
