"""The conference primitive of the PBX interface, driven through the daemon's own driver
against the demo PBXs over real TCP, on all four transports: a caller bridged to an agent
by the engine is turned into a three-party room with a supervisor, members come and go,
and the caller stays under our control until the conference ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from callcenter.errors import CommandFailed
from callcenter.pbx.interface import Call
from callcenter.testing import TRANSPORTS, Center, running_center

STEP = 5.0


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def bridged_call(tmp_path: Path, transport: str) -> AsyncIterator[tuple[Center, Any, Call]]:
    """A caller bridged to agent 1001 through the engine; yields (center, caller, engine call)."""
    async with running_center(tmp_path, transport=transport) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("welcome-menu", timeout=STEP)
        await caller.press("2")
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001"
        yield center, caller, center.daemon.switchboard.active[caller.uniqueid].call
        await caller.hangup()
        await center.idle()


async def until(predicate: Callable[[], bool], what: str, limit: float = STEP) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.01)
    assert predicate(), what


def room_size(center: Center, room: str) -> int:
    """How many channels the demo PBX has in ``room``."""
    demo_room = center.pbx.conferences.get(room)
    return len(demo_room.members) if demo_room is not None else 0


async def test_supervisor_joins_caller_and_agent_in_one_room_then_it_ends(
    tmp_path: Path, transport: str
) -> None:
    async with bridged_call(tmp_path, transport) as (center, caller, call):
        supervisor = center.add_phone("PJSIP/2000", answer_after=0.05)
        conference = await asyncio.wait_for(call.conference("room1", invite=["PJSIP/2000"]), STEP)
        assert conference.room == "room1"
        await supervisor.wait_answered(timeout=STEP)
        await until(lambda: room_size(center, "room1") == 3, "caller, agent, supervisor")
        await until(lambda: len(conference.members) == 3, "the driver sees three members")
        assert not conference.ended and not call.hung_up

        agent = next(m for m in conference.members if "1001" in m)
        await asyncio.wait_for(conference.kick(agent), STEP)
        await until(lambda: room_size(center, "room1") == 2, "the agent left the room")
        await until(lambda: agent not in conference.members, "the driver saw the agent leave")
        with pytest.raises(CommandFailed):
            await asyncio.wait_for(conference.kick(agent), STEP)
        assert not call.hung_up, "kicking the agent leaves the caller in the room"

        await asyncio.wait_for(conference.end(), STEP)
        assert conference.ended
        await until(lambda: room_size(center, "room1") == 0, "nobody is left in the room")
        await asyncio.wait_for(conference.end(), STEP)  # idempotent
        await asyncio.wait_for(conference.wait_ended(), STEP)
        await center.idle()
        row = await center.cdr(caller.uniqueid)
        assert row["hung_up_by"] == "system", "the engine, not the PBX, ended the call"
        assert row["agent"] == "1001"
        assert row["queue"]


async def test_caller_is_still_ours_after_the_conference_and_is_transferred_on(
    tmp_path: Path, transport: str
) -> None:
    """A transfer asked for during the conference takes the agent out of the room; once
    the conference ends the engine, still holding the caller, rings the target."""
    async with bridged_call(tmp_path, transport) as (center, caller, call):
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        supervisor = center.add_phone("PJSIP/2000", answer_after=0.05)
        conference = await asyncio.wait_for(call.conference("room4", invite=["PJSIP/2000"]), STEP)
        await supervisor.wait_answered(timeout=STEP)
        await until(lambda: room_size(center, "room4") == 3, "caller, agent, supervisor")
        assert await asyncio.wait_for(center.daemon.switchboard.transfer("1001", "1002"), STEP)
        await until(lambda: room_size(center, "room4") == 2, "the agent left the room")
        assert not conference.ended and not call.hung_up
        await asyncio.wait_for(conference.end(), STEP)
        await bob.wait_answered(timeout=STEP)
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1002"
        assert not call.hung_up
        await caller.hangup()
        await center.idle()
        row = await center.cdr(caller.uniqueid)
        assert row["hung_up_by"] == "caller"
        assert "1002" in str(row["transfer_path"])


async def test_caller_hanging_up_in_the_room_ends_the_conference(
    tmp_path: Path, transport: str
) -> None:
    async with bridged_call(tmp_path, transport) as (center, caller, call):
        conference = await asyncio.wait_for(call.conference("room2"), STEP)
        await until(lambda: room_size(center, "room2") == 2, "caller and agent in the room")
        await caller.hangup()
        await asyncio.wait_for(conference.wait_ended(), STEP)
        await center.idle()
        row = await center.cdr(caller.uniqueid)
        assert row["hung_up_by"] == "caller"


async def test_conference_needs_a_bridged_call_and_a_valid_room(
    tmp_path: Path, transport: str
) -> None:
    async with bridged_call(tmp_path, transport) as (_center, _caller, call):
        for room in ("x", "../etc", "room 1"):
            with pytest.raises(CommandFailed):
                await asyncio.wait_for(call.conference(room), STEP)
        with pytest.raises(CommandFailed):
            await asyncio.wait_for(call.conference("room3", invite=["not a device"]), STEP)
        assert not call.hung_up


async def test_agent_steps_aside_with_an_invited_party_while_the_caller_hears_music(
    tmp_path: Path, transport: str
) -> None:
    """The side room: the agent talks there with a supervisor the caller cannot hear; the
    caller, alone in the room, hears music; legs come back into the room one by one."""
    async with bridged_call(tmp_path, transport) as (center, caller, call):
        supervisor = center.add_phone("PJSIP/2000", answer_after=0.05)
        conference = await asyncio.wait_for(call.conference("room5"), STEP)
        changes: list[tuple[int, int]] = []
        conference.on_change(
            lambda: changes.append((len(conference.members), len(conference.aside)))
        )
        await until(lambda: len(conference.members) == 2, "caller and agent in the room")
        agent = next(m for m in conference.members if "1001" in m)
        caller_leg = next(m for m in conference.members if m != agent)
        music = caller.moh_starts

        await asyncio.wait_for(conference.step_aside(agent), STEP)
        await until(lambda: list(conference.aside) == [agent], "the agent is aside")
        assert list(conference.members) == [caller_leg]
        assert room_size(center, "room5") == 1 and room_size(center, "room5-aside") == 1
        await until(lambda: caller.moh_starts > music, "the caller, alone, hears music")

        await asyncio.wait_for(conference.invite("PJSIP/2000", aside=True), STEP)
        await supervisor.wait_answered(timeout=STEP)
        await until(lambda: len(conference.aside) == 2, "agent and supervisor aside")
        assert room_size(center, "room5") == 1, "the caller does not hear them"
        sup_leg = next(m for m in conference.aside if "2000" in m)

        with pytest.raises(CommandFailed):
            await asyncio.wait_for(conference.step_aside(caller_leg), STEP)
        with pytest.raises(CommandFailed):
            await asyncio.wait_for(conference.bring_back(caller_leg), STEP)

        await asyncio.wait_for(conference.bring_back(sup_leg), STEP)
        await until(lambda: sup_leg in conference.members, "the supervisor is with the caller")
        assert list(conference.aside) == [agent]
        await asyncio.wait_for(conference.kick(agent), STEP)
        await until(lambda: not conference.aside, "the agent left the side room")
        assert room_size(center, "room5-aside") == 0
        assert not call.hung_up
        assert (1, 1) in changes and (2, 0) in changes, changes

        await asyncio.wait_for(conference.end(), STEP)
        assert conference.ended
        await until(lambda: room_size(center, "room5") == 0, "nobody is left in the room")
