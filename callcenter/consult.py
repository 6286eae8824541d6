"""Consultations: an agent talks to a colleague while the caller waits on hold, then hands
the caller over (an attended, or warm, transfer), brings everyone together (a three-way
call), or goes back to the caller.

The call runs in a conference room (:meth:`callcenter.pbx.interface.Call.conference`):
the agent's leg steps into the room's side room, the consulted party is rung into it,
and the caller, alone in the room, hears music. Moving legs between the two rooms is all
the engine does; the state of a consultation is one enum and one transition table::

    RINGING ──answered──> TALKING ──join──> THREEWAY
       │                     │                  │
       └──────────────> ENDED <─────────────────┘
          completed | cancelled | no_answer | hung_up | caller_gone

``completed``: the agent left (``complete``, or hung up) and the consulted party talks
with the caller; an agent who hangs up while the colleague still rings hands the caller
over when the colleague answers. ``cancelled``: the agent went back to the caller.
``no_answer``: nobody answered within the queue's ring timeout. ``hung_up``: the
consulted party left; the agent talks with the caller again.

An agent's hold (:meth:`Consultations.hold`) is the same move without a colleague: the
agent's leg steps aside alone until :meth:`Consultations.unhold`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import structlog

from callcenter.errors import (
    CommandFailed,
    EngineError,
    IllegalTransition,
    PBXConnectionError,
    PBXError,
)
from callcenter.events import (
    ATTENDED_TRANSFER,
    CallHeld,
    CallTransferred,
    CallUnheld,
    ConsultAnswered,
    ConsultEnded,
    ConsultJoined,
    ConsultStarted,
    TalkEnded,
)
from callcenter.pbx.interface import Conference

if TYPE_CHECKING:
    from callcenter.switchboard import ActiveCall, Switchboard

log = structlog.get_logger(__name__)


class ConsultState(enum.Enum):
    RINGING = "ringing"
    TALKING = "talking"
    THREEWAY = "threeway"
    ENDED = "ended"


class ConsultOutcome(enum.StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_ANSWER = "no_answer"
    HUNG_UP = "hung_up"
    CALLER_GONE = "caller_gone"


_S = ConsultState

TRANSITIONS: Final[Mapping[ConsultState, frozenset[ConsultState]]] = {
    _S.RINGING: frozenset({_S.TALKING, _S.ENDED}),
    _S.TALKING: frozenset({_S.THREEWAY, _S.ENDED}),
    _S.THREEWAY: frozenset({_S.ENDED}),
    _S.ENDED: frozenset(),
}
"""Where a consultation may go from each state; anything else raises IllegalTransition."""

MOVE_SETTLE: Final = 5.0
"""Seconds a leg we moved between rooms may be in neither before it counts as gone."""

RING_MARGIN: Final = 2.0
"""Seconds past the ring timeout before an unanswered consultation is given up (the PBX
ends the ringing itself at the ring timeout)."""
LINK_BACK_WAIT: Final = 600.0
"""Longest a room's clean-up (kick a leg, end the room) waits for a lost PBX link to come
back before it is tried again; past it the leg is left to the PBX."""

_ROOM_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(slots=True)
class Consultation:
    """One agent's consultation on one call (see the module docstring)."""

    agent: str
    agent_channel: str
    to: str
    device: str
    started: float = field(default_factory=time.monotonic)
    state: ConsultState = ConsultState.RINGING
    target_channel: str = ""
    """The consulted party's leg once it joined the side room."""
    answered_at: float | None = None
    hand_over: bool = False
    """Hand the caller over as soon as the consulted party answers (the agent left, or
    asked to complete, while it rang)."""
    agent_gone: bool = False
    outcome: ConsultOutcome | None = None
    hold_ended: float | None = None
    """When the caller stopped waiting on hold (someone came back into the room)."""

    def move(self, new: ConsultState) -> None:
        """Go to ``new``; raises IllegalTransition when the table forbids it."""
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"consultation: {self.state.value} -> {new.value}")
        self.state = new

    def end(self, outcome: ConsultOutcome) -> None:
        self.move(ConsultState.ENDED)
        self.outcome = outcome
        self.hold_over()

    def hold_over(self) -> None:
        if self.hold_ended is None:
            self.hold_ended = time.monotonic()

    @property
    def active(self) -> bool:
        return self.state is not ConsultState.ENDED

    @property
    def hold_seconds(self) -> float:
        end = self.hold_ended if self.hold_ended is not None else time.monotonic()
        return max(0.0, end - self.started)

    @property
    def talk_seconds(self) -> float:
        """How long the agent and the consulted party have talked (0 unanswered)."""
        if self.answered_at is None:
            return 0.0
        return max(0.0, time.monotonic() - self.answered_at)


@dataclass(slots=True)
class RoomLegs:
    """The engine's view of a call's conference: the legs it is moving between the rooms
    (a moved leg is in neither room for a moment, and must not count as gone then)."""

    moving: dict[str, tuple[float, bool]] = field(default_factory=dict)
    """Leg -> (the monotonic time after which it counts as gone if it has not arrived,
    whether it goes into the side room)."""
    handed_over_at: float | None = None
    """When the caller was last handed to a new party in the room (their talk starts)."""
    emptied: bool = False
    """The engine ended the conference because every other party had left."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and replaced) at each change of the conference."""
    recheck: asyncio.TimerHandle | None = None
    """A look at the room once the legs on their way should have arrived."""

    def pulse(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def moved(self, leg: str, *, aside: bool) -> None:
        """``leg`` is being moved into the side room (``aside``) or the caller's room."""
        self.moving[leg] = (time.monotonic() + MOVE_SETTLE, aside)

    def settle(self, members: Sequence[str], aside: Sequence[str]) -> None:
        """Forget the moves that arrived, and those that took too long."""
        now = time.monotonic()
        for leg, (deadline, to_aside) in list(self.moving.items()):
            if leg in (aside if to_aside else members) or now > deadline:
                del self.moving[leg]

    def present(self, leg: str, here: set[str]) -> bool:
        """Whether ``leg`` is in a room, or on its way between them."""
        return bool(leg) and (leg in here or leg in self.moving)


def consult_view(consult: Consultation | None) -> dict[str, Any] | None:
    """A consultation as ``/status`` and ``callcenter status`` show it (None: none runs)."""
    if consult is None or not consult.active:
        return None
    return {
        "agent": consult.agent,
        "to": consult.to,
        "state": consult.state.value,
        "hold_seconds": round(consult.hold_seconds, 1),
    }


def _legs_of(active: ActiveCall) -> RoomLegs:
    """The call's room legs; EngineError when its room is gone meanwhile (the call ended,
    or the PBX link dropped under it)."""
    legs = active.room
    if legs is None:
        raise EngineError(f"call {active.call.info.call_id}'s room is gone")
    return legs


def room_name(call_id: str) -> str:
    """The conference room of a call: its id in the characters room names allow."""
    return "cc-" + _ROOM_CHARS.sub("_", call_id)[:56]


class Consultations:
    """Agents' consultations on their calls (see the module docstring); the switchboard's
    ``consult*`` methods and its transfers go through here."""

    def __init__(self, switchboard: Switchboard) -> None:
        self._board = switchboard

    # ------------------------------------------------------------------ agent commands

    async def start(self, agent_id: str, to: str) -> str:
        """Put ``agent_id``'s caller on hold and ring ``to`` (``supervisor``: the queue's;
        a configured supervisor or agent id; an outside number ``acd.transfer_allow``
        lists) for the agent to talk to; returns the
        target id. Raises EngineError when the agent talks to nobody, already consults,
        or a transfer is under way; DestinationNotAllowed for a target the config does not
        name; IllegalTransition when the target agent is not available."""
        board = self._board
        call_id, active = self._talking(agent_id)
        current = active.consult
        if current is not None and current.active:
            raise EngineError(f"agent {agent_id} is already consulting {current.to}")
        if active.held_since is not None:
            raise EngineError(f"agent {agent_id}'s caller is on hold: take them back first")
        if active.pending_transfer is not None:
            raise EngineError(f"a transfer of call {call_id} is already under way")
        target = board.transfer_target(active, agent_id, to)
        device = board.transfer_device(target)
        is_agent = target in board.router.agents
        if is_agent:
            board.router.reserve(target, call_id=call_id)
        consult = Consultation(agent_id, active.agent_channel, target, device)
        ring = board.ring_timeout(active.queue or "")
        try:
            conference = await self._conference(call_id, active)
            legs = _legs_of(active)
            if not await self._arrived(active, consult.agent_channel, lambda: conference.members):
                raise EngineError(f"agent {agent_id}'s leg did not join the call's room")
            active.consult = consult
            legs.moved(consult.agent_channel, aside=True)
            await conference.step_aside(consult.agent_channel)
            await conference.invite(device, aside=True, timeout=ring)
        except BaseException:
            if is_agent:
                with contextlib.suppress(IllegalTransition):
                    board.router.release(target)
            if active.consult is consult:
                consult.end(ConsultOutcome.CANCELLED)
                active.consult = None
                board.in_background(self._return(active, consult), f"consult-undo-{call_id}")
            raise
        board.bus.publish(ConsultStarted(call_id=call_id, agent=agent_id, to=target, device=device))
        log.info("consult_started", call_id=call_id, agent=agent_id, to=target)
        board.in_background(
            self._ring_timer(call_id, active, consult, ring + RING_MARGIN),
            f"consult-ring-{call_id}",
        )
        return target

    async def complete(self, agent_id: str) -> str:
        """Hand the caller over to the consulted party and free the agent; returns the
        target id. While the party still rings, the hand-over happens when they answer."""
        call_id, active, consult = self._consulting(agent_id)
        if consult.state is ConsultState.RINGING:
            consult.hand_over = True
            log.info("consult_complete_on_answer", call_id=call_id, agent=agent_id)
            return consult.to
        self._linked("hand the caller over")
        await self._hand_over(call_id, active, consult)
        return consult.to

    async def cancel(self, agent_id: str) -> str:
        """End the consultation: the consulted party leaves (or stops ringing) and the
        agent talks with the caller again; returns the target id."""
        call_id, active, consult = self._consulting(agent_id)
        self._linked("go back to the caller")
        conference = active.conference
        state, target_leg = consult.state, consult.target_channel
        self._over(call_id, active, consult, ConsultOutcome.CANCELLED)
        if conference is not None and target_leg:
            with contextlib.suppress(PBXError):
                await conference.kick(target_leg)
        if state is not ConsultState.THREEWAY:
            await self._return(active, consult)
        return consult.to

    async def join(self, agent_id: str) -> str:
        """Bring the caller in: caller, agent and consulted party talk together (the
        consultation goes on: ``complete`` then leaves the two of them, ``cancel`` drops the
        consulted party). Raises EngineError while the party has not answered."""
        call_id, active, consult = self._consulting(agent_id)
        if consult.state is not ConsultState.TALKING:
            raise EngineError(f"{consult.to} has not answered agent {agent_id} yet")
        self._linked("bring the caller in")
        conference, legs = active.conference, _legs_of(active)
        if conference is None:
            raise EngineError(f"call {call_id}'s room is gone")
        consult.move(ConsultState.THREEWAY)
        consult.hold_over()
        for leg in (consult.target_channel, consult.agent_channel):
            legs.moved(leg, aside=False)
            await conference.bring_back(leg)
        board = self._board
        board.bus.publish(ConsultJoined(call_id=call_id, agent=agent_id, to=consult.to))
        log.info("consult_joined", call_id=call_id, agent=agent_id, to=consult.to)
        return consult.to

    async def hold(self, agent_id: str) -> str:
        """Put ``agent_id``'s caller on hold: the agent's leg steps into the side room
        alone, the caller hears music. Returns the call id; a second hold is a no-op."""
        call_id, active = self._talking(agent_id)
        if active.held_since is not None:
            return call_id
        consult = active.consult
        if consult is not None and consult.active:
            raise EngineError(f"agent {agent_id} is consulting {consult.to}: the caller holds")
        conference = await self._conference(call_id, active)
        legs = _legs_of(active)
        leg = active.agent_channel
        if not await self._arrived(active, leg, lambda: conference.members):
            raise EngineError(f"agent {agent_id}'s leg did not join the call's room")
        legs.moved(leg, aside=True)
        await conference.step_aside(leg)
        active.held_since = time.monotonic()
        self._board.bus.publish(CallHeld(call_id=call_id, agent=agent_id))
        log.info("call_held", call_id=call_id, agent=agent_id)
        return call_id

    async def unhold(self, agent_id: str) -> str:
        """Take ``agent_id``'s caller off hold: the agent is back in the room. Returns the
        call id. Raises EngineError when the caller is not on hold."""
        call_id, active = self._talking(agent_id)
        conference, legs = active.conference, active.room
        if active.held_since is None or conference is None or legs is None:
            raise EngineError(f"agent {agent_id}'s caller is not on hold")
        leg = active.agent_channel
        if not await self._arrived(active, leg, lambda: conference.aside):
            raise EngineError(f"agent {agent_id}'s leg is not on hold")
        legs.moved(leg, aside=False)
        await conference.bring_back(leg)
        self._unheld(call_id, active)
        return call_id

    def _unheld(self, call_id: str, active: ActiveCall) -> None:
        held, active.held_since = active.held_since, None
        if held is None:
            return
        seconds = max(0.0, time.monotonic() - held)
        self._board.bus.publish(
            CallUnheld(call_id=call_id, agent=active.agent or "", hold_seconds=seconds)
        )
        log.info("call_unheld", call_id=call_id, agent=active.agent, hold_seconds=round(seconds, 3))

    # ------------------------------------------------------------------ the switchboard's

    async def settle_for_stop(self) -> int:
        """The daemon stops and nobody will move legs between rooms any more: no caller may
        be left alone hearing music. A held caller gets their agent back, a consultation
        still ringing is cancelled (the agent is back with the caller), one under way
        becomes a three-way call. Returns how many calls it changed; a PBX error leaves
        that call as it is (logged)."""
        changed = 0
        for call_id, active in list(self._board.active.items()):
            conference, consult = active.conference, active.consult
            if conference is None or conference.ended:
                continue
            try:
                if consult is not None and consult.active:
                    if consult.state is ConsultState.RINGING:
                        await self.cancel(consult.agent)
                    elif consult.state is ConsultState.TALKING:
                        await self.join(consult.agent)
                    else:
                        continue
                elif active.held_since is not None and active.agent:
                    await self.unhold(active.agent)
                else:
                    continue
            except (EngineError, PBXError) as exc:
                log.warning("room_not_settled", call_id=call_id, error=str(exc))
                continue
            changed += 1
            log.info("room_settled_for_stop", call_id=call_id, agent=active.agent)
        return changed

    def target_left(self, to: str) -> int:
        """Agent ``to``, consulted on an open line, left it (hung up, logged out): the leg
        that reached them (dialled into the line's room) never hangs up by itself, so it
        is taken out of the caller's rooms (in the background: once the PBX link is back
        if it is down), which ends each consultation as a hang-up would (the consulting
        agent is back with the caller). Returns how many."""
        ended = 0
        board = self._board
        for call_id, active in list(board.active.items()):
            consult, conference = active.consult, active.conference
            if consult is None or not consult.active or consult.to != to:
                continue
            if conference is None or conference.ended:
                continue
            log.info("consult_target_left", call_id=call_id, agent=consult.agent, to=to)
            ended += 1
            if consult.state is ConsultState.RINGING:
                board.in_background(self._call_off(consult.agent), f"consult-off-{call_id}")
            else:
                leg = consult.target_channel
                board.in_background(self._kick(conference, leg), f"consult-kick-{call_id}")
        return ended

    async def _call_off(self, agent_id: str) -> None:
        with contextlib.suppress(EngineError, PBXError):
            await self.cancel(agent_id)

    async def drop_talker(self, active: ActiveCall) -> None:
        """Take whoever talks to the caller off the call (a transfer): out of the call's
        room when it runs in one, else by ending the bridge."""
        conference = active.conference
        if conference is not None and not conference.ended:
            if active.agent_channel in (*conference.members, *conference.aside):
                await conference.kick(active.agent_channel)
            return
        await active.call.unbridge()

    async def room_over(self, active: ActiveCall) -> tuple[float | None, bool]:
        """The call's room has ended (the caller's dial returned): forget it. Returns when
        the caller was last handed over in it (their new talk starts there, or None) and
        whether every other party had left (the engine ended it)."""
        legs, consult, conference = self._forget_room(active)
        if legs is None or conference is None:
            return None, False
        call_id = active.call.info.call_id
        caller = (active.call.info.channel, call_id)
        board = self._board
        moving = [leg for leg in legs.moving if leg not in caller]
        for leg in (*conference.members, *conference.aside):
            if leg not in caller and leg not in moving:
                # The caller left the room; nobody else stays in it.
                board.in_background(
                    self._kick(conference, leg, hang_up=True), f"room-kick-{call_id}"
                )
        for leg in moving:
            # On its way between the rooms (a transfer the caller hung up on as it
            # completed): a kick can be lost in the move, and the leg would land in a room
            # nobody ends.
            board.in_background(self._hang_up(conference, leg), f"room-leg-{call_id}")
        if (
            consult is not None
            and consult.outcome is ConsultOutcome.NO_ANSWER
            and consult.agent_gone
            and not active.call.hung_up
        ):
            with contextlib.suppress(PBXError):
                await active.call.play(["transfer-failed"])
        return legs.handed_over_at, legs.emptied

    def room_abandoned(self, active: ActiveCall) -> None:
        """The call's handler ended with its room still up (the PBX link went down under
        it): everyone is taken out of the room and its side room once the link is back,
        the caller too (their channel goes on in the dialplan, or is taken back by the
        driver), so that no agent is left in a silent room."""
        _legs, _consult, conference = self._forget_room(active)
        if conference is None:
            return
        call_id = active.call.info.call_id
        log.info("room_abandoned", call_id=call_id, room=conference.room)
        for leg in (*conference.members, *conference.aside):
            self._board.in_background(self._kick(conference, leg), f"room-kick-{call_id}")

    def _forget_room(
        self, active: ActiveCall
    ) -> tuple[RoomLegs | None, Consultation | None, Conference | None]:
        legs, consult, conference = active.room, active.consult, active.conference
        active.conference = None
        active.room = None
        if legs is not None and legs.recheck is not None:
            legs.recheck.cancel()
        call_id = active.call.info.call_id
        self._unheld(call_id, active)
        if consult is not None and consult.active:
            self._over(call_id, active, consult, ConsultOutcome.CALLER_GONE)
        return legs, consult, conference

    # ------------------------------------------------------------------ inside

    def _linked(self, what: str) -> None:
        """Refuse a step that moves legs between the rooms while the PBX link is down:
        its records would move on (a transfer made, a three-way call) while the legs
        stay where they are, the caller on hold with nobody coming back."""
        if not self._board.pbx_up:
            raise EngineError(f"the PBX link is down: {what} once it is back")

    def _talking(self, agent_id: str) -> tuple[str, ActiveCall]:
        found = self._board.agent_call(agent_id)
        if found is None or not found[1].agent_channel or found[1].agent != agent_id:
            raise EngineError(f"agent {agent_id} is not talking to a caller")
        return found

    def _consulting(self, agent_id: str) -> tuple[str, ActiveCall, Consultation]:
        found = self._board.agent_call(agent_id)
        consult = found[1].consult if found is not None else None
        if found is None or consult is None or not consult.active or consult.agent != agent_id:
            raise EngineError(f"agent {agent_id} is not consulting anyone")
        return found[0], found[1], consult

    async def _conference(self, call_id: str, active: ActiveCall) -> Conference:
        conference = active.conference
        if conference is not None and not conference.ended:
            return conference
        legs = RoomLegs()
        legs.moved(active.agent_channel, aside=False)
        active.room = legs
        try:
            conference = await active.call.conference(room_name(call_id))
        except BaseException:
            active.room = None  # no room came of it: the call stays a plain bridge
            raise
        if active.room is not legs or self._board.active.get(call_id) is not active:
            # The call ended (its room given up) while the PBX made the room: nobody will
            # follow this one, so whoever was moved into it is taken out again.
            caller = (active.call.info.channel, call_id)
            moved = {active.agent_channel, *conference.members, *conference.aside}
            for leg in moved.difference(caller, ("",)):
                self._board.in_background(self._kick(conference, leg), f"room-kick-{call_id}")
            raise EngineError(f"call {call_id} ended while its room was being made")
        active.conference = conference
        conference.on_change(lambda: self._changed(call_id, active, conference))
        self._changed(call_id, active, conference)
        return conference

    async def _arrived(
        self, active: ActiveCall, leg: str, room: Callable[[], Sequence[str]]
    ) -> bool:
        """Whether ``leg`` is in ``room()``, once a move of it the engine made is over; at
        once False for a leg that is neither there nor on its way (it hung up)."""
        legs = active.room
        if legs is None or (leg not in room() and leg not in legs.moving):
            return False
        return await self._wait(active, lambda: leg in room())

    async def _wait(self, active: ActiveCall, ready: Callable[[], bool]) -> bool:
        """Wait (up to :data:`MOVE_SETTLE`) until ``ready()`` after a room change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MOVE_SETTLE
        while not ready():
            legs = active.room
            remaining = deadline - loop.time()
            if legs is None or remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await legs.changed.wait()
        return True

    def _changed(self, call_id: str, active: ActiveCall, conference: Conference) -> None:
        """The conference changed: follow the consultation, and end the room once the
        caller is alone in it for good."""
        legs = active.room
        if legs is None or active.conference is not conference:
            return
        legs.pulse()
        if conference.ended:
            return
        board = self._board
        here = {*conference.members, *conference.aside}
        legs.settle(conference.members, conference.aside)
        if legs.moving and legs.recheck is None:
            # A leg moved and never arrived (it hung up on the way): look again then.
            delay = max(d for d, _ in legs.moving.values()) - time.monotonic() + 0.1
            legs.recheck = asyncio.get_running_loop().call_later(
                max(0.1, delay), self._recheck, call_id, active, conference
            )
        consult = active.consult
        if consult is not None and consult.active:
            if not consult.agent_gone and not legs.present(consult.agent_channel, here):
                consult.agent_gone = True
                consult.hand_over = True
                log.info("consult_agent_left", call_id=call_id, agent=consult.agent)
            if consult.state is ConsultState.RINGING:
                leg = next((m for m in conference.aside if m != consult.agent_channel), None)
                if leg is not None:
                    self._answered(call_id, active, consult, leg)
            elif not legs.present(consult.target_channel, here):
                self._over(call_id, active, consult, ConsultOutcome.HUNG_UP)
                if consult.state is not ConsultState.THREEWAY and not consult.agent_gone:
                    board.in_background(self._return(active, consult), f"consult-back-{call_id}")
            elif consult.agent_gone:
                board.in_background(self._hand_over(call_id, active, consult), f"xfer-{call_id}")
        else:
            for leg in conference.aside:
                if leg != active.agent_channel and leg not in legs.moving:
                    # Answered after its consultation ended: nobody waits for it.
                    board.in_background(self._kick(conference, leg), f"consult-kick-{call_id}")
        self._end_if_alone(call_id, active, conference, here)

    def _recheck(self, call_id: str, active: ActiveCall, conference: Conference) -> None:
        legs = active.room
        if legs is not None:
            legs.recheck = None
        self._changed(call_id, active, conference)

    def _answered(self, call_id: str, active: ActiveCall, consult: Consultation, leg: str) -> None:
        board = self._board
        consult.target_channel = leg
        consult.answered_at = time.monotonic()
        consult.move(ConsultState.TALKING)
        if consult.to in board.router.agents:
            with contextlib.suppress(IllegalTransition):
                board.router.connect_direct(consult.to)
        ring = consult.answered_at - consult.started
        board.bus.publish(
            ConsultAnswered(call_id=call_id, agent=consult.agent, to=consult.to, ring_seconds=ring)
        )
        log.info("consult_answered", call_id=call_id, agent=consult.agent, to=consult.to)
        if consult.hand_over:
            board.in_background(self._hand_over(call_id, active, consult), f"xfer-{call_id}")

    def _end_if_alone(
        self, call_id: str, active: ActiveCall, conference: Conference, here: set[str]
    ) -> None:
        legs = active.room
        assert legs is not None
        consult = active.consult
        if consult is not None and consult.state is ConsultState.RINGING:
            return
        caller = active.call.info.channel
        others = [leg for leg in here if leg not in (caller, active.call.info.call_id)]
        if others or legs.moving:
            return
        if legs.emptied:
            return
        legs.emptied = True
        log.info("room_emptied", call_id=call_id, room=conference.room)
        self._board.in_background(self._end(conference), f"room-end-{call_id}")

    async def _hand_over(self, call_id: str, active: ActiveCall, consult: Consultation) -> None:
        """The consulted party takes the caller: into the room (when aside), the agent out."""
        if not consult.active or consult.state is ConsultState.RINGING:
            return
        conference, legs = active.conference, active.room
        if conference is None or legs is None:
            return
        state = consult.state
        self._handed_over(call_id, active, consult)
        legs.handed_over_at = time.monotonic()
        try:
            if state is ConsultState.TALKING:
                legs.moved(consult.target_channel, aside=False)
                await conference.bring_back(consult.target_channel)
            if not consult.agent_gone:
                await conference.kick(consult.agent_channel)
        except PBXError as exc:
            log.info("hand_over_incomplete", call_id=call_id, error=str(exc))

    def _handed_over(self, call_id: str, active: ActiveCall, consult: Consultation) -> None:
        """The records of a completed consultation: the agent's talk ends (wrap-up), the
        call is transferred, the consulted party is who the caller talks to now."""
        board = self._board
        now = time.monotonic()
        talk = max(0.0, now - active.talk_since) if active.talk_since else 0.0
        consult.end(ConsultOutcome.COMPLETED)
        bus = board.bus
        bus.publish(
            TalkEnded(call_id=call_id, agent=consult.agent, talk_seconds=talk, hung_up_by="system")
        )
        if consult.agent in board.router.agents:
            board.router.call_finished(consult.agent, active.queue, talk_seconds=talk)
        board.forget_agent_call(consult.agent)
        bus.publish(self._ended_event(call_id, consult))
        bus.publish(
            CallTransferred(
                call_id=call_id, by=consult.agent, to=consult.to, kind=ATTENDED_TRANSFER
            )
        )
        log.info(
            "call_transferred", call_id=call_id, by=consult.agent, to=consult.to, kind="attended"
        )
        board.now_talking(call_id, active, consult.to, consult.target_channel)

    def _over(
        self, call_id: str, active: ActiveCall, consult: Consultation, outcome: ConsultOutcome
    ) -> None:
        """End a consultation that did not hand the caller over."""
        board = self._board
        talk = consult.talk_seconds
        answered = consult.answered_at is not None
        consult.end(outcome)
        if consult.to in board.router.agents:
            if answered:
                board.router.call_finished(consult.to, None, talk_seconds=talk)
            else:
                with contextlib.suppress(IllegalTransition):
                    board.router.release(consult.to)
        board.bus.publish(self._ended_event(call_id, consult))
        log.info("consult_ended", call_id=call_id, agent=consult.agent, outcome=outcome.value)

    @staticmethod
    def _ended_event(call_id: str, consult: Consultation) -> ConsultEnded:
        return ConsultEnded(
            call_id=call_id,
            agent=consult.agent,
            to=consult.to,
            outcome=(consult.outcome or ConsultOutcome.CANCELLED).value,
            hold_seconds=consult.hold_seconds,
        )

    async def _ring_timer(
        self, call_id: str, active: ActiveCall, consult: Consultation, limit: float
    ) -> None:
        await asyncio.sleep(limit)
        if consult.state is not ConsultState.RINGING:
            return
        self._over(call_id, active, consult, ConsultOutcome.NO_ANSWER)
        if not consult.agent_gone:
            await self._return(active, consult)
        conference = active.conference
        if conference is not None and not conference.ended:
            self._changed(call_id, active, conference)

    async def _return(self, active: ActiveCall, consult: Consultation) -> None:
        """Bring the agent back from the side room to the caller (once they are there)."""
        conference, legs = active.conference, active.room
        if conference is None or legs is None or consult.agent_gone:
            return
        leg = consult.agent_channel
        if not await self._arrived(active, leg, lambda: conference.aside) or conference.ended:
            log.info("consult_agent_not_aside", agent=consult.agent, leg=leg)
            return
        legs.moved(leg, aside=False)
        try:
            await conference.bring_back(leg)
        except PBXError as exc:
            log.info("consult_agent_not_back", agent=consult.agent, error=str(exc))

    async def _kick(self, conference: Conference, leg: str, *, hang_up: bool = False) -> None:
        """Take ``leg`` out of the call's rooms; ``hang_up``: a leg neither room holds (it
        was on its way, or the PBX had not told us it moved) is hung up instead, so that it
        does not land in a room nobody will end (never for the caller's own leg)."""

        async def kick() -> None:
            try:
                await conference.kick(leg)
            except CommandFailed:
                if not hang_up:
                    raise
                await self._hang_up(conference, leg)

        await self._once_linked(kick, room=conference.room, leg=leg)

    async def _hang_up(self, conference: Conference, leg: str) -> None:
        pbx = self._board.pbx
        if pbx is not None:
            log.info("room_leg_hung_up", room=conference.room, leg=leg)
            await self._once_linked(lambda: pbx.hangup_channel(leg), room=conference.room, leg=leg)

    async def _end(self, conference: Conference) -> None:
        await self._once_linked(conference.end, room=conference.room, leg="all")

    async def _once_linked(
        self, command: Callable[[], Awaitable[None]], *, room: str, leg: str
    ) -> None:
        """Run a room's clean-up; when the PBX link is down, again once it is back. Nobody
        else takes an agent out of a room our caller has left: without it the agent would
        sit in silence until they hang up."""
        while True:
            try:
                await command()
                return
            except PBXConnectionError as exc:
                log.info("room_cleanup_waits_for_pbx", room=room, leg=leg, error=str(exc))
                try:
                    async with asyncio.timeout(LINK_BACK_WAIT):
                        await self._board.wait_pbx_up()
                except TimeoutError:
                    log.warning("room_cleanup_given_up", room=room, leg=leg)
                    return
            except PBXError:
                return
