"""A team's break limit (``teams.<t>.max_paused``): no more of its agents on a break at
once than the floor can spare. One more asking, from the desktop, the API or ``*73``, is
told how many are away; their supervisor may still pause them, and the limit frees as soon
as one is back. On both PBXs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from callcenter.cli import format_status
from callcenter.events import AgentPaused, BreakLinedUp, BreakLineLeft
from callcenter.live.api import scope_of
from callcenter.testing import DesktopBrowser, run_cli, running_center, until

NIGHT: dict[str, Any] = {
    "teams": {"night": {"max_paused": 1}},
    "agents": {
        "1002": {"team": "night", "pin": "2222"},
        "1003": {"team": "night", "pin": "4321", "logged_in": True},
    },
    "supervisors": {"2000": {"pin": "2468", "teams": ["night"]}},
}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_carol_waits_for_bobs_break_to_end_before_she_takes_hers(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=NIGHT) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1003", answer_after=0.05)
        router = center.daemon.router
        bob = await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
        carol_api = await center.api("POST", "/agents/1003/pause", {"reason": "break"})
        carol = DesktopBrowser(center.daemon.api.port)
        await carol.sign_in("1003", "4321")
        carol_page = await carol.press("Pause: break")
        keyed = await center.pbx.call("*73", caller_num="1003")
        await keyed.wait_for_prompt("agent-pass", timeout=5)
        await keyed.press("4321")
        await keyed.wait_ended(timeout=5)
        keyed_state = router.agents["1003"].state
        alice_free = router.agents["1001"].state
        sam = DesktopBrowser(center.daemon.api.port)
        sams = await sam.sign_in("2000", "2468", role="supervisor")
        await sam.get("/desktop/agent?id=1003")
        by_sam = await sam.press("Pause: meeting")
        sam_paused = router.agents["1003"].state
        await center.api("POST", "/agents/1003/unpause", {})
        await center.api("POST", "/agents/1002/unpause", {})
        await until(lambda: router.agents["1002"].state == "available")
        carol_again = await center.api("POST", "/agents/1003/pause", {"reason": "break"})
    assert bob[0] == 200
    assert sams.texts["breaks"] == "On a break: team night: 1 of 1 at most", "Sam sees it"
    assert carol_api[0] == 409
    assert carol_api[1]["error"] == (
        "1 of team night are on a break (at most 1 at once): ask again when one is back"
    )
    assert carol_page.texts["error"].startswith("1 of team night are on a break")
    assert carol_page.texts["team-breaks"] == "Your team on a break: 1 of 1 at most"
    assert keyed_state == "available", "*73 was refused too"
    assert alice_free == "available", "Alice is of no team: no limit"
    assert by_sam.texts.get("error", "") == ""
    assert sam_paused == "paused", "her supervisor may pause her all the same"
    assert carol_again[0] == 200, "Bob is back: her turn"


LINED: dict[str, Any] = {
    **NIGHT,
    "teams": {"night": {"max_paused": 1, "break_line": True}},
}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_carol_waits_in_line_and_her_break_starts_when_bob_is_back(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=LINED) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1003", answer_after=0.05)
        router = center.daemon.router
        lined_up: list[BreakLinedUp] = []
        paused: list[AgentPaused] = []
        center.daemon.bus.subscribe(lined_up.append, kinds=(BreakLinedUp,))
        center.daemon.bus.subscribe(paused.append, kinds=(AgentPaused,))
        await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
        carol = DesktopBrowser(center.daemon.api.port)
        await carol.sign_in("1003", "4321")
        asked = await carol.press("Pause: break")
        waiting = await carol.get("/desktop")
        waiting_state = router.agents["1003"].state
        sam = DesktopBrowser(center.daemon.api.port)
        sams = await sam.sign_in("2000", "2468", role="supervisor")
        await center.api("POST", "/agents/1002/unpause", {})
        await until(lambda: router.agents["1003"].state == "paused")
        on_break = await carol.get("/desktop")
    assert asked.texts["said"] == (
        "Your team is at its break limit: you are 1st in line, your break (break) starts "
        "when one is back"
    )
    assert waiting_state == "available", "she takes calls while she waits"
    assert sams.texts["break-lines"] == "Waiting for a break: team night: Carol"
    assert waiting.texts["break-line"] == (
        "In line for a break: 1st. It starts when one of your team is back."
    )
    assert "Leave the break line" in waiting.buttons and "Pause: break" not in waiting.buttons
    assert [(e.agent, e.team, e.reason, e.place) for e in lined_up] == [
        ("1003", "night", "break", 1)
    ]
    assert [(e.agent, e.reason, e.via) for e in paused] == [
        ("1002", "lunch", "api"),
        ("1003", "break", "break-line"),
    ]
    assert on_break.texts["state"] == "paused: break"
    assert "break-line" not in on_break.texts


async def test_carol_on_a_call_when_bob_is_back_goes_on_her_break_once_it_is_over(
    tmp_path: Path,
) -> None:
    config = {**LINED, "queues": {"sales": {"agents": ["1003"]}}}
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1003", answer_after=0.05, hangup_after=0.8)
        router = center.daemon.router
        carol = router.agents["1003"]
        await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
        status, said = await center.api("POST", "/agents/1003/pause", {"reason": "break"})
        caller = await center.caller_presses("5550101", "1")
        await caller.wait_bridged(timeout=5)
        await center.api("POST", "/agents/1002/unpause", {})
        await until(lambda: carol.pending_pause is not None)
        state_in_call = carol.state
        await until(lambda: carol.state == "paused")
    assert (status, said["state"], said["break_line"]) == (200, "available", 1)
    assert state_in_call == "on_call", "the call goes on"
    assert (carol.pause_reason, carol.pause_via) == ("break", "break-line")


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_carol_leaves_the_line_and_a_key_on_her_phone_lines_her_up_again(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=LINED) as center:  # type: ignore[arg-type]
        router = center.daemon.router
        await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
        await center.api("POST", "/agents/1003/pause", {"reason": "break"})
        carol = DesktopBrowser(center.daemon.api.port)
        await carol.sign_in("1003", "4321")
        left = await carol.press("Leave the break line")
        place_after_leaving = center.daemon.switchboard.breaks.place("1003")
        keyed = await center.pbx.call("*73", caller_num="1003")
        await keyed.wait_for_prompt("agent-pass", timeout=5)
        await keyed.press("4321")
        await keyed.wait_ended(timeout=5)
        place_after_key = center.daemon.switchboard.breaks.place("1003")
        again = await center.api("POST", "/agents/1003/pause", {"reason": "lunch"})
        _, status = await center.api("GET", "/status")
        logged_out = await center.api("POST", "/agents/1003/logout", {})
        await center.api("POST", "/agents/1002/unpause", {})
        await asyncio.sleep(0.1)
        lines = center.daemon.switchboard.breaks.lines()
    assert left.texts["said"] == "Out of the break line"
    assert place_after_leaving is None
    assert place_after_key == 1, "*73 over the limit lines her up"
    assert "queue-youarenext" in keyed.heard, "and her phone says she is next"
    assert again[1]["break_line"] == 1, "asking again keeps her place"
    assert status["breaks"] == [{"team": "night", "away": 1, "max_paused": 1, "line": ["1003"]}]
    assert "Breaks team night: 1 of 1 at most, waiting: 1003" in format_status(status)
    assert logged_out[0] == 200 and lines == {}, "a logout leaves the line"
    assert router.agents["1003"].state == "logged_out"


async def test_a_limit_raised_by_a_reload_lets_carol_go_on_her_break(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=LINED) as center:
        router = center.daemon.router
        await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
        await center.api("POST", "/agents/1003/pause", {"reason": "break"})
        lined = router.agents["1003"].state
        text = center.config_path.read_text()
        assert text.count("max_paused: 1") == 1
        center.config_path.write_text(text.replace("max_paused: 1", "max_paused: 2"))
        await center.daemon.reload()
        await until(lambda: router.agents["1003"].state == "paused")
    assert lined == "available"
    assert (router.agents["1003"].pause_reason, router.agents["1003"].pause_via) == (
        "break",
        "break-line",
    )


async def test_a_reload_that_takes_the_line_away_tells_carol_she_is_out_of_it(
    tmp_path: Path,
) -> None:
    """Ops turn break_line off while Carol waits in it: she is out of the line (her desktop,
    MQTT and the supervisors hear BreakLineLeft ``line-dropped``) and stays at work; she
    asks again if she still wants her break."""
    async with running_center(tmp_path, config=LINED) as center:
        router = center.daemon.router
        left: list[BreakLineLeft] = []
        center.daemon.bus.subscribe(left.append, kinds=(BreakLineLeft,))
        await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
        await center.api("POST", "/agents/1003/pause", {"reason": "break"})
        lined = center.daemon.switchboard.breaks.place("1003")
        text = center.config_path.read_text()
        assert text.count("break_line: true") == 1
        center.config_path.write_text(text.replace("break_line: true", "break_line: false"))
        await center.daemon.reload()
        await until(lambda: bool(left))
        after = center.daemon.switchboard.breaks.place("1003")
        state = router.agents["1003"].state
    assert lined == 1
    assert [(e.agent, e.team, e.why) for e in left] == [("1003", "night", "line-dropped")]
    assert (after, state) == (None, "available")


THREE_IN_LINE: dict[str, Any] = {
    "teams": {"night": {"max_paused": 1, "break_line": True}},
    "agents": {
        "1001": {"team": "night", "logged_in": True},
        "1002": {"team": "night", "pin": "2222", "logged_in": True},
        "1003": {"team": "night", "pin": "4321", "logged_in": True, "name": "Carol"},
    },
    "supervisors": {"2000": {"pin": "2468", "teams": ["night"]}},
}


async def test_sam_puts_carol_before_bob_in_the_break_line_and_her_break_comes_first(
    tmp_path: Path,
) -> None:
    """Alice is on a break; Bob then Carol wait for one. Carol has a meeting at the top of
    the hour: Sam puts her first (a button beside the line on his desktop), both are told
    their new place, and when Alice is back Carol goes, not Bob."""
    async with running_center(tmp_path, config=THREE_IN_LINE) as center:
        router = center.daemon.router
        lined_up: list[BreakLinedUp] = []
        center.daemon.bus.subscribe(lined_up.append, kinds=(BreakLinedUp,))
        await center.api("POST", "/agents/1001/pause", {"reason": "break"})
        await center.api("POST", "/agents/1002/pause", {"reason": "break"})
        await center.api("POST", "/agents/1003/pause", {"reason": "lunch"})
        sam = DesktopBrowser(center.daemon.api.port)
        desk = await sam.sign_in("2000", "2468", role="supervisor")
        lined_before = list(lined_up)
        moved = await sam.press("Carol first")
        line_after = center.daemon.switchboard.breaks.lines()
        bob_place = center.daemon.switchboard.breaks.place("1002")
        await center.api("POST", "/agents/1001/unpause", {})
        await until(lambda: router.agents["1003"].state == "paused")
        bob_state = router.agents["1002"].state
    assert desk.texts["break-lines"] == "Waiting for a break: team night: Bob, Carol"
    assert "Carol first" in desk.buttons and "Bob first" not in desk.buttons
    assert moved.texts["said"] == "Agent 1003 is next in line for a break"
    assert line_after == {"night": ["1003", "1002"]}
    assert [(e.agent, e.place, e.via) for e in lined_up[len(lined_before) :]] == [
        ("1003", 1, "supervisor:2000"),
        ("1002", 2, "api"),
    ], "each moved is told their new place; Bob's break is still the one he asked"
    assert bob_place == 2
    assert (router.agents["1003"].pause_reason, bob_state) == ("lunch", "available")


async def test_the_break_line_is_the_supervisors_to_reorder_and_says_what_will_not_do(
    tmp_path: Path,
) -> None:
    """Moved past the end: last. An agent in no line, or a place that is none: said. A
    token for agents' desktops may not reorder the line (scope supervise)."""
    async with running_center(tmp_path, config=THREE_IN_LINE) as center:
        await center.api("POST", "/agents/1001/pause", {"reason": "break"})
        await center.api("POST", "/agents/1002/pause", {"reason": "break"})
        await center.api("POST", "/agents/1003/pause", {"reason": "break"})
        last = await center.api("POST", "/agents/1002/break-place", {"place": 9})
        code, out, _ = await run_cli(center, "agent", "break-place", "1002")
        by_cli = center.daemon.switchboard.breaks.lines()
        await center.api("POST", "/agents/1002/break-place", {"place": 2})
        not_waiting = await center.api("POST", "/agents/1001/break-place", {"place": 1})
        nonsense = [
            await center.api("POST", "/agents/1003/break-place", body)
            for body in ({}, {"place": 0}, {"place": "1"}, {"place": True})
        ]
    assert last == (200, {"agent": "1002", "break_line": 2, "lines": {"night": ["1003", "1002"]}})
    assert code == 0, out
    assert by_cli == {"night": ["1002", "1003"]}, "agent break-place: first by default"
    assert not_waiting == (409, {"error": "agent 1001 is not waiting for a break"})
    assert [code for code, _ in nonsense] == [400] * 4
    assert scope_of("POST", "/agents/1003/break-place") == "supervise"
    assert scope_of("POST", "/agents/1003/pause") != "supervise"


async def test_the_break_line_is_taken_back_after_a_restart_in_its_order(tmp_path: Path) -> None:
    """Alice is on a break; Bob then Carol wait, and Sam puts Carol first. The daemon
    restarts: Alice is still on her break, Carol and Bob still wait, Carol first, each with
    the reason they asked with; when Alice is back Carol goes."""
    async with running_center(tmp_path, config=THREE_IN_LINE) as center:
        await center.api("POST", "/agents/1001/pause", {"reason": "break"})
        await center.api("POST", "/agents/1002/pause", {"reason": "break"})
        await center.api("POST", "/agents/1003/pause", {"reason": "lunch"})
        await center.api("POST", "/agents/1003/break-place", {"place": 1})
        await center.restart()
        breaks = center.daemon.switchboard.breaks
        router = center.daemon.router
        after = breaks.lines()
        alice = router.agents["1001"].state
        carol = DesktopBrowser(center.daemon.api.port)
        await carol.sign_in("1003", "4321")
        page = await carol.get("/desktop")
        await center.api("POST", "/agents/1001/unpause", {})
        await until(lambda: router.agents["1003"].state == "paused")
        went = router.agents["1003"].pause_reason
        await center.restart()
        still = center.daemon.switchboard.breaks.lines()
    assert after == {"night": ["1003", "1002"]}
    assert alice == "paused"
    assert page.texts["break-line"].startswith("In line for a break: 1st")
    assert went == "lunch", "the reason she asked with before the restart"
    assert still == {"night": ["1002"]}, "Carol went on her break: Bob waits alone"


def test_a_place_in_a_break_line_is_kept_with_the_agent_s_presence(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from callcenter.records.shifts import AgentPresence, BreakLine
    from callcenter.records.store import SqliteCdrStore

    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    since = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    lined = AgentPresence(
        agent="1003",
        logged_in=datetime(2026, 12, 7, 8, 0, tzinfo=UTC),
        via_login="desktop",
        line=BreakLine("night", "lunch", "desktop", 2, since),
    )
    try:
        store.write_agent_presence(lined)
        store.write_agent_presence(AgentPresence(agent="1002", logged_in=since, via_login="api"))
        read = {p.agent: p for p in store.fetch_agent_presence()}
    finally:
        store.close()
    assert read["1003"].line == BreakLine("night", "lunch", "desktop", 2, since)
    assert read["1002"].line is None
