"""The consultation state machine, with hypothesis: whatever the agent asks for and whatever
the phones do, in any order, a consultation ends once, frees or keeps the colleague right,
hands the caller over only when it says so, never leaves the caller in a room alone, and
ends every hold of the caller once.

The switchboard, router and event bus are the real ones; the call and its conference room
are in-memory stand-ins that apply each move at once and report it, as the drivers'
membership events do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter import consult as consult_module
from callcenter.acd.agent import Agent
from callcenter.acd.router import Router
from callcenter.config.loader import load_config_text
from callcenter.consult import TRANSITIONS, Consultation, ConsultState
from callcenter.errors import CommandFailed, EngineError, IllegalTransition
from callcenter.events import (
    CallHeld,
    CallTransferred,
    CallUnheld,
    ConsultAnswered,
    ConsultEnded,
    ConsultStarted,
    EngineEvent,
    EventBus,
)
from callcenter.pbx.interface import CallInfo
from callcenter.switchboard import ActiveCall, Switchboard
from callcenter.testing import BASE_CONFIG

CALLER = "PJSIP/caller-1"
ALICE = "PJSIP/1001-1"
CALL_ID = "call-1"


@dataclass
class Room:
    """The call's room and side room, applying moves at once (see module docstring)."""

    members: list[str] = field(default_factory=lambda: [CALLER, ALICE])
    aside: list[str] = field(default_factory=list)
    ringing: list[str] = field(default_factory=list)
    ended: bool = False
    listener: Any = None
    legs_made: int = 0

    @property
    def room(self) -> str:
        return "cc-call-1"

    def on_change(self, callback: Any) -> None:
        self.listener = callback

    def changed(self) -> None:
        if self.listener is not None:
            self.listener()

    async def wait_ended(self) -> None:
        while not self.ended:
            await asyncio.sleep(0)

    async def invite(
        self, device: str, *, caller_id: str = "", timeout: float = 30.0, aside: bool = False
    ) -> None:
        self.ringing.append(device)

    def answer(self) -> None:
        """The rung phone answers: its leg joins the side room."""
        device = self.ringing.pop(0)
        self.legs_made += 1
        self.aside.append(f"{device}-{self.legs_made}")
        self.changed()

    def hang_up(self, leg: str) -> None:
        for where in (self.members, self.aside):
            if leg in where:
                where.remove(leg)
        self.changed()

    async def step_aside(self, channel: str) -> None:
        if channel not in self.members or channel == CALLER:
            raise CommandFailed(f"{channel} is not a member")
        self.members.remove(channel)
        self.changed()
        self.aside.append(channel)
        self.changed()

    async def bring_back(self, channel: str) -> None:
        if channel not in self.aside:
            raise CommandFailed(f"{channel} is not aside")
        self.aside.remove(channel)
        self.changed()
        self.members.append(channel)
        self.changed()

    async def kick(self, channel: str) -> None:
        if channel not in (*self.members, *self.aside):
            raise CommandFailed(f"{channel} is not here")
        self.hang_up(channel)

    async def end(self) -> None:
        self.members.clear()
        self.aside.clear()
        self.ended = True
        self.changed()


@dataclass
class RoomCall:
    """The caller's call: its conference is the :class:`Room`."""

    room: Room
    hung_up: bool = False

    @property
    def info(self) -> CallInfo:
        return CallInfo(
            call_id=CALL_ID,
            channel=CALLER,
            caller_num="5550101",
            caller_name="",
            dialed="800",
            context="callcenter",
            route="inbound",
            transport="fastagi",
        )

    async def conference(self, room: str, *, invite: Sequence[str] = ()) -> Room:
        return self.room

    async def play(self, prompts: Sequence[str], *, interrupt_digits: str = "") -> str:
        return ""


def make_board() -> tuple[Switchboard, list[EngineEvent]]:
    config = load_config_text(
        yaml.safe_dump(BASE_CONFIG), environ={"CALLCENTER_AMI_SECRET": "not-used-here"}
    )
    bus = EventBus()
    seen: list[EngineEvent] = []
    bus.subscribe(seen.append)
    agents = [Agent(id=i, name=a.name, device=a.device) for i, a in config.agents.items()]
    router = Router(agents, {n: list(q.agents) for n, q in config.queues.items()}, bus=bus)
    for agent in ("1001", "1002"):
        router.login(agent, via="test")
    return Switchboard(config, router, bus), seen


ACTIONS = st.sampled_from(
    [
        "answer",
        "colleague_hangs_up",
        "agent_hangs_up",
        "complete",
        "cancel",
        "join",
        "ring_timeout",
        "hold",
        "unhold",
        "settle",
    ]
)


async def play(target: str, actions: list[str]) -> None:
    board, seen = make_board()
    router = board.router
    router.reserve("1001", call_id=CALL_ID)
    router.connect_direct("1001")
    room = Room()
    call = RoomCall(room)
    active = ActiveCall(call=call, started=time.monotonic(), queue="support")  # type: ignore[arg-type]
    board.active[CALL_ID] = active
    board.now_talking(CALL_ID, active, "1001", ALICE)
    assert await board.consult("1001", target) == target
    consult = active.consult
    assert consult is not None
    if target in router.agents:
        assert router.agents[target].state == "ringing"

    for action in actions:
        try:
            if action == "answer" and room.ringing:
                room.answer()
            elif action == "colleague_hangs_up" and consult.target_channel:
                room.hang_up(consult.target_channel)
            elif action == "agent_hangs_up":
                room.hang_up(ALICE)
            elif action == "complete":
                await board.consult_complete("1001")
            elif action == "cancel":
                await board.consult_cancel("1001")
            elif action == "join":
                await board.consult_join("1001")
            elif action == "ring_timeout":
                await board.consults._ring_timer(CALL_ID, active, consult, 0.0)
            elif action == "hold":
                await board.hold("1001")
            elif action == "unhold":
                await board.unhold("1001")
        except (EngineError, CommandFailed):
            pass  # refused in this state: that is the point of the table
        await asyncio.sleep(0)
        check(board, seen, room, consult, target)
    for task in list(board._background):
        if task.get_name().startswith("consult-ring-"):
            task.cancel()  # "ring_timeout" plays the timer's part, at once
    await asyncio.gather(*board._background, return_exceptions=True)
    check(board, seen, room, consult, target)


def check(
    board: Switchboard, seen: list[EngineEvent], room: Room, consult: Consultation, target: str
) -> None:
    ended = [e for e in seen if isinstance(e, ConsultEnded)]
    transferred = [e for e in seen if isinstance(e, CallTransferred)]
    assert len([e for e in seen if isinstance(e, ConsultStarted)]) == 1
    assert len([e for e in seen if isinstance(e, ConsultAnswered)]) <= 1
    assert len(ended) == (0 if consult.active else 1), "a consultation ends once"
    assert len(transferred) <= 1
    held = len([e for e in seen if isinstance(e, CallHeld)])
    unheld = len([e for e in seen if isinstance(e, CallUnheld)])
    on_hold = board.active[CALL_ID].held_since is not None
    assert held - unheld == (1 if on_hold else 0), "every hold ends once"
    if on_hold:
        assert not consult.active, "no hold during a consultation"
    if transferred:
        assert ended and ended[0].outcome == "completed"
        assert (transferred[0].by, transferred[0].to, transferred[0].kind) == (
            "1001",
            target,
            "attended",
        )
    if ended and ended[0].outcome == "completed":
        assert transferred, "a completed consultation is a transfer"
        assert board.active[CALL_ID].agent == target
    router = board.router
    if not consult.active and target in router.agents:
        state = router.agents[target].state
        if ended[0].outcome != "completed":
            assert state != "ringing", "the colleague is never left reserved"
    if consult.state is ConsultState.RINGING:
        assert consult.answered_at is None
    others = [m for m in (*room.members, *room.aside) if m != CALLER]
    if not room.ended and not others and not consult.active and not room.ringing:
        legs = board.active[CALL_ID].room
        assert legs is None or legs.emptied or legs.moving, "the caller is never left alone"


@settings(max_examples=150, deadline=None)
@given(target=st.sampled_from(["1002", "2000"]), actions=st.lists(ACTIONS, max_size=8))
def test_any_order_of_answers_hang_ups_and_requests_keeps_the_records_straight(
    target: str, actions: list[str]
) -> None:
    # The stand-in room moves legs at once; a leg that never arrives (it hung up on the
    # way) is given up after MOVE_SETTLE, which need not be the PBX's 5 s here.
    with mock.patch.object(consult_module, "MOVE_SETTLE", 0.02):
        asyncio.run(play(target, actions))


@given(
    moves=st.lists(st.sampled_from(list(ConsultState)), max_size=6),
)
def test_a_consultation_moves_only_as_its_table_says(moves: list[ConsultState]) -> None:
    consult = Consultation("1001", ALICE, "2000", "PJSIP/2000")
    for new in moves:
        before = consult.state
        if new in TRANSITIONS[before]:
            consult.move(new)
            assert consult.state is new
        else:
            with pytest.raises(IllegalTransition):
                consult.move(new)
            assert consult.state is before
    assert not TRANSITIONS[ConsultState.ENDED], "an ended consultation stays ended"
