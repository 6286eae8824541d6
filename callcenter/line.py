"""Agents on an open line: logged in by ``*70``, they stay on that call and callers come
through without ringing (app_agent_pool's ``AgentLogin``, mod_callcenter's
``uuid-standby``): for agents on phones that take one call at a time, on long shifts, or
behind links where every ring costs seconds.

The agent's own call (the ``agent-line`` hook) stays with the daemon, waiting in a
conference room of its own (:meth:`Call.wait_in_room
<callcenter.pbx.interface.Call.wait_in_room>`, room ``line-<agent>``). For this shift the
router knows the agent at a device that dials into that room (:meth:`PBX.room_device
<callcenter.pbx.interface.PBX.room_device>`: a Local channel on Asterisk, a loopback leg
on FreeSWITCH), so a caller offered to them is dialled as to any phone: the leg answers
at once and the agent hears the caller as it joins. Everything that works on a bridged
call (hold, consultations, transfers, recording, supervisors, surveys) works the same,
on both PBXs.

On the line:

* ``acd.line_hangup_key`` (``*9``) ends the call with the caller, as hanging up would on
  a ringing phone (the caller goes on to the queue's survey if it has one); the agent
  stays on the line for the next caller.
* ``acd.line_ready_key`` (``*6``) ends the after-call work or the pause (the line's
  ``*75`` / ``*74``: the phone is busy with the line), ``acd.line_pause_key`` (``*8``)
  pauses with the first of ``pause_reasons``.
* Between calls, ``acd.line_disposition_key`` (``*76``) + a disposition's digits + ``#``
  gives the last call its code, and ``acd.line_queue_key`` (``*45``) + a queue's digits +
  ``#`` joins or leaves that queue, as the phone's feature codes do: an agent on a line
  with no screen gets out of a ``disposition_required`` wrap-up. They hear
  ``auth-thankyou`` / ``agent-loginok`` / ``agent-loggedoff``, or ``beeperr``.
  ``acd.line_dial_key`` (``*77``) + a number + ``#`` calls it down the line (``*77#``: the
  last call's number), see :mod:`callcenter.outbound.manual`.
* ``acd.agent_keys`` work as from any agent's leg (transfers, consultations, hold ...).
* With ``acd.line_accept_key`` (app_agent_pool's ``ackcall``) an offer first takes the
  agent out of the room (:meth:`AgentLines.ask`): they hear the beep and press the key
  within the ring timeout, or the offer counts as a ring not answered.
* Hanging up the phone ends the line: a call in progress ends as if the agent had hung
  up, and the agent logs out.
* A PBX link outage ends lines controlled over that link (AsyncAGI; FastAGI and
  FreeSWITCH keep theirs): the agent logs out and, once the link is back and nobody but
  them is in the room, the line is sent through ``*70`` again
  (:meth:`Switchboard.leave_after_link_loss
  <callcenter.switchboard.Switchboard.leave_after_link_loss>`): they give their PIN and
  are back on a line.
* A logout from elsewhere (``agent logout``, the API, ``*72`` from another phone) takes
  the agent out of the room once the call they are on is over: they hear
  ``agent-loggedoff`` and the line hangs up. So does the daemon stopping, but for a line
  whose agent talks to a caller then: that call is left to the PBX as any call in progress
  (the agent stays in the room with the caller).

An agent logged in already (at their phone, by ``*71`` or the CLI) who dials ``*70``
moves onto the line between calls. A line does not outlive its daemon: a restarted
daemon logs out the agents whose shift began on a line (the line was the old daemon's
call). A line the old daemon left in its room (its agent was talking, or it crashed) is
taken back once the agent is alone there (:class:`~callcenter.pbx.stranded.LeftRooms`):
sent through ``*70`` again, they are asked their PIN and are on a line of the new
daemon; one it hung up at its stop is dialled again by the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import structlog

from callcenter.acd.agent import AgentState
from callcenter.errors import (
    CallHungUp,
    CommandResultLost,
    EngineError,
    IllegalTransition,
    PBXConnectionError,
    PBXError,
    UnknownAgent,
)
from callcenter.events import AgentLoggedOut, EngineEvent

if TYPE_CHECKING:
    from callcenter.config.models import CallCenterConfig
    from callcenter.pbx.interface import Call
    from callcenter.switchboard import Switchboard

log = structlog.get_logger(__name__)

LINE_ROUTE: Final = "agent-line"
"""The hook of ``*70`` (``AGI(agi://.../agent-line)``, ``callcenter_route=agent-line``)."""
LINE_VIA: Final = "line"
"""How a shift that began on a line was logged in (``via`` of its records)."""
ROOM_PREFIX: Final = "line-"
"""A line's conference room is this and the agent's id (``.`` made ``_``)."""
CLOSE_SETTLE = 3.0
"""Seconds the daemon's stop waits for its lines to hear ``agent-loggedoff``."""
_CODED: Final = ("disposition", "queue", "dial")
"""The line's keys that take digits and ``#`` after them."""
ASK_KICK_AGAIN = 0.5
"""Seconds an accept waits for the line to leave its room before kicking it again."""
ASK_MARGIN = 3.0
"""Seconds beyond the ring timeout an accept waits for the line (leaving the room, the
beep)."""


@dataclass(eq=False, slots=True)
class Line:
    """One agent's open line: their own call, in their room."""

    agent: str
    call: Call
    room: str
    device: str
    """What the router dials to reach them (into ``room``)."""
    keys: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=16))
    """The latest keys pressed on the line, with when (monotonic)."""
    closing: bool = False
    """The line is being ended (a logout, the daemon stopping): it leaves its room."""
    asking: tuple[asyncio.Future[bool], float] | None = None
    """A caller waits for the agent to accept (acd.line_accept_key): the answer, and
    seconds to wait for the key."""
    heard_ask: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the line, out of its room, puts the question to the agent."""
    coding: tuple[str, str, float] | None = None
    """A coded key is being typed (``*76`` ... ``#``): its action, the digits so far, when
    the last came (monotonic)."""
    telling: list[str] = field(default_factory=list)
    """Prompts the agent is to hear out of the room (:meth:`AgentLines.tell`)."""
    told: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the line, out of its room, plays what it was told to."""
    left_talking: bool = False
    """The daemon stopped while the agent talked to a caller on the line: the call is left
    to the PBX as it is (the agent stays in the room with the caller)."""


def _asked(line: Line) -> bool:
    """Is a question to the agent waiting for the line (asked, not answered yet)?"""
    return line.asking is not None and not line.asking[0].done()


def room_of(agent_id: str) -> str:
    """The conference room of ``agent_id``'s line."""
    return ROOM_PREFIX + agent_id.replace(".", "_")


class AgentLines:
    """Every open line, by agent id (see the module docstring)."""

    def __init__(self, board: Switchboard) -> None:
        self._board = board
        self._lines: dict[str, Line] = {}
        self._devices: set[str] = set()
        self._running: set[Line] = set()
        """Lines whose call is still ours (until the agent has been told and hung up)."""
        self._none = asyncio.Event()
        self._none.set()
        board.bus.subscribe(self._on_logout, (AgentLoggedOut,))

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._lines

    def on_line(self, call_id: str) -> bool:
        """Is ``call_id`` an agent's line (not a caller's call)?"""
        return any(line.call.info.call_id == call_id for line in self._lines.values())

    def is_line_device(self, device: str) -> bool:
        """Does ``device`` dial into a line's room (the PBX's device states of it say
        nothing of the agent)?"""
        return device in self._devices

    # ------------------------------------------------------------------ the line's call

    async def run(self, call: Call, config: CallCenterConfig) -> None:
        """The ``*70`` call: who dials is the agent of the calling phone (their own, or
        the one they hot-desk at), with their PIN if they have one; ``*70`` + an id
        (``agent-line?agent=1003``) names the agent, who must have ``hot_desk`` unless it
        is their own phone. They hear ``agent-loginok`` and stay on the line until they
        hang up or are logged out (``agent-loggedoff``); ``beeperr`` when refused (on a
        line already, on a call, at a phone not theirs without ``hot_desk``)."""
        board = self._board
        info = call.info
        named = info.params.get("agent") or (info.args[0] if info.args else "")
        agent_id = named or board.agent_for_channel(info.channel, config) or ""
        pins = {aid: a.pin for aid, a in config.agents.items()}
        if not await board.dialled_by(call, "agent", agent_id, pins, action="line"):
            return
        if named and not board.may_sit_at(info, agent_id, config):
            log.info("agent_line_refused", agent=agent_id, error="not their phone, no hot_desk")
            await call.play(["beeperr"])
            return
        line = self._line_for(call, agent_id)
        if line is None:
            await call.play(["beeperr"])
            return
        await call.play(["agent-loginok"])
        if not self._open(line):
            await call.play(["beeperr"])
            return
        hung_up = False
        lost: PBXConnectionError | None = None
        try:
            try:
                while not line.closing:
                    if _asked(line):
                        await self._acknowledge(line)
                        continue
                    if line.telling:
                        prompts, line.telling = line.telling, []
                        line.told.set()
                        await call.play(prompts)
                        continue
                    await call.wait_in_room(line.room, on_digit=functools.partial(self._key, line))
                    if not _asked(line) and not line.closing:
                        # Taken out by someone else (an admin's kick): back in.
                        log.info("agent_line_back_in_room", agent=agent_id, room=line.room)
            except CallHungUp:
                hung_up = True
            except PBXConnectionError as exc:
                lost = exc
            finally:
                why = "hung up" if hung_up else "link lost" if lost else "logged out"
                if not line.left_talking:
                    await self._close(line, why)
            if hung_up:
                raise CallHungUp(f"{call.info.channel}: the agent hung up the line")
            if lost is not None:
                if not isinstance(lost, CommandResultLost):
                    # Its room command may have reached the PBX: it may sit in the room.
                    board.leave_after_link_loss(call, line.room)
                raise lost
            with contextlib.suppress(PBXError):
                await call.play(["agent-loggedoff"])
                # Here, not when the handler returns: a stopping daemon waits for it.
                await call.hangup()
        finally:
            self._running.discard(line)
            if not self._running:
                self._none.set()

    async def ask(self, agent_id: str, timeout: float) -> bool:
        """Ask the agent on a line to accept a caller (acd.line_accept_key): out of their
        room, they hear the beep and have ``timeout`` seconds to press the key. True when
        they did (they are back in the room, for the caller to be dialled in); False when
        not, or when they are on no line."""
        line = self._lines.get(agent_id)
        if line is None or line.closing or line.asking is not None:
            return False
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        line.asking = (answer, timeout)
        line.heard_ask.clear()
        try:
            async with asyncio.timeout(timeout + ASK_MARGIN):
                # A line between rooms (back from the last question) is not in one to be
                # taken out of: it sees the question before it goes in, or the next kick
                # reaches it.
                while not line.heard_ask.is_set():
                    await line.call.leave_room()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(ASK_KICK_AGAIN):
                            await line.heard_ask.wait()
                return await asyncio.shield(answer)
        except (TimeoutError, PBXError):
            return False
        finally:
            if line.asking is not None and line.asking[0] is answer:
                line.asking = None

    async def tell(self, agent_id: str, prompt: str) -> bool:
        """Have the agent on a line hear ``prompt``: out of their room for it, back in
        after (their own outbound call got nobody, say). False when they are on no line
        or it could not be done in time."""
        line = self._lines.get(agent_id)
        if line is None or line.closing:
            return False
        line.told.clear()
        line.telling.append(prompt)
        try:
            async with asyncio.timeout(ASK_MARGIN):
                # As for ask(): a line between rooms sees it before it goes back in.
                while not line.told.is_set():
                    await line.call.leave_room()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(ASK_KICK_AGAIN):
                            await line.told.wait()
        except (TimeoutError, PBXError) as exc:
            log.info("agent_line_not_told", agent=agent_id, prompt=prompt, error=str(exc))
            return False
        return True

    async def _acknowledge(self, line: Line) -> None:
        """Out of the room for :meth:`ask`: the beep, the key or not; back in after."""
        asking = line.asking
        if asking is None or asking[0].done():
            return
        answer, timeout = asking
        line.heard_ask.set()
        board = self._board
        wanted = board.config.acd.line_accept_key
        pressed = ""
        try:
            pressed = await line.call.read_digits(
                board.config.acd.line_beep, max_digits=1, timeout=timeout, terminator=""
            )
        finally:
            accepted = bool(wanted) and pressed == wanted
            if not answer.done():
                answer.set_result(accepted)
            log.info("agent_line_asked", agent=line.agent, accepted=accepted, pressed=pressed)

    def _line_for(self, call: Call, agent_id: str) -> Line | None:
        """The line ``agent_id`` would open at ``call``; None when they may not (logged)."""
        board = self._board
        room = room_of(agent_id)
        try:
            if board.pbx is None:
                raise EngineError("no PBX to dial the line with")
            if agent_id not in board.router.agents:
                raise UnknownAgent(f"unknown agent {agent_id}")
            if agent_id in self._lines:
                raise EngineError(f"agent {agent_id} is on a line already")
            if any(line.room == room for line in self._lines.values()):
                raise EngineError(f"room {room} is another agent's line")
            return Line(agent_id, call, room, board.pbx.room_device(room))
        except (EngineError, PBXError) as exc:
            log.info("agent_line_refused", agent=agent_id, error=str(exc))
            return None

    def _open(self, line: Line) -> bool:
        """Log the agent in on ``line`` (or move them onto it): False when refused
        (logged: on a call, another line opened meanwhile)."""
        router = self._board.router
        agent_id = line.agent
        if agent_id in self._lines:
            log.info("agent_line_refused", agent=agent_id, error="on a line already")
            return False
        # Known before the login: the router may offer a waiting caller at once.
        self._lines[agent_id] = line
        self._devices.add(line.device)
        try:
            if router.agents[agent_id].state is AgentState.LOGGED_OUT:
                router.login(agent_id, via=LINE_VIA, device=line.device, line=True)
            else:
                router.seat(agent_id, line.device, line=True, via=LINE_VIA)
        except EngineError as exc:
            self._forget(line)
            log.info("agent_line_refused", agent=agent_id, error=str(exc))
            return False
        self._running.add(line)
        self._none.clear()
        log.info("agent_line_open", agent=agent_id, room=line.room, channel=line.call.info.channel)
        return True

    async def _close(self, line: Line, why: str) -> None:
        """The line's call is over (hung up) or leaves the room for good (logged out):
        the caller the agent talks to is let go, the agent logs out. Never raises."""
        line.closing = True
        agent_id = line.agent
        self._forget(line)
        board = self._board
        router = board.router
        agent = router.agents.get(agent_id)
        if agent is not None and agent.state is not AgentState.LOGGED_OUT:
            with contextlib.suppress(IllegalTransition, EngineError):
                router.logout(agent_id, via=LINE_VIA)
        if board.agent_call(agent_id) is not None:
            try:
                await board.leave_call(agent_id)
            except (EngineError, PBXError) as exc:
                log.info("agent_line_call_not_left", agent=agent_id, error=str(exc))
        board.consults.target_left(agent_id)
        log.info("agent_line_closed", agent=agent_id, why=why)

    def _forget(self, line: Line) -> None:
        if self._lines.get(line.agent) is line:
            del self._lines[line.agent]
        self._devices.discard(line.device)

    # ------------------------------------------------------------------ keys

    def _key(self, line: Line, digit: str) -> None:
        """A key pressed on the line: the line's keys (hang up, ready, pause) act once
        whole, its coded keys (disposition, queue) once their digits end with ``#``;
        every key also goes to the agent's acd.agent_keys."""
        board = self._board
        acd = board.config.acd
        board.agent_key(line.agent, digit)
        now = time.monotonic()
        timeout = acd.agent_keys.timeout if acd.agent_keys else 4.0
        if line.coding is not None:
            action, typed, last = line.coding
            if now - last <= timeout:
                if digit == "#":
                    line.coding = None
                    self._coded(line, action, typed)
                else:
                    line.coding = (action, typed + digit, now)
                return
            line.coding = None  # given up on: this key starts afresh
        line.keys.append((now, digit))
        between_calls = board.agent_call(line.agent) is None
        for action, wanted in (
            ("hangup", acd.line_hangup_key),
            ("ready", acd.line_ready_key),
            ("pause", acd.line_pause_key),
            ("disposition", acd.line_disposition_key if between_calls else None),
            ("queue", acd.line_queue_key if between_calls else None),
            ("dial", acd.line_dial_key if between_calls else None),
        ):
            if wanted is None:
                continue
            recent = list(line.keys)[-len(wanted) :]
            if "".join(d for _, d in recent) == wanted and now - recent[0][0] <= timeout:
                line.keys.clear()
                if action in _CODED:
                    line.coding = (action, "", now)
                else:
                    self._keyed(line, action)
                return

    def _coded(self, line: Line, action: str, typed: str) -> None:
        """A coded key typed in full (``*76`` 1 ``#``): the disposition or the queue, as
        the phone's feature code does; the agent hears how it went out of their room."""
        board = self._board
        agent_id = line.agent
        if action == "dial":
            board.in_background(self._dial(agent_id, typed), f"line-dial-{agent_id}")
            return
        try:
            if action == "disposition":
                board.phone_disposition(agent_id, typed, board.config)
                prompt = "auth-thankyou"
            else:
                joined = board.phone_queue(agent_id, typed, board.config)
                prompt = "agent-loginok" if joined else "agent-loggedoff"
        except (EngineError, UnknownAgent) as exc:
            log.info("agent_line_code_refused", agent=agent_id, action=action, error=str(exc))
            prompt = "beeperr"
        else:
            log.info("agent_line_code", agent=agent_id, action=action, digits=typed)
        board.in_background(self._tell(agent_id, prompt), f"line-tell-{agent_id}")

    async def _tell(self, agent_id: str, prompt: str) -> None:
        await self.tell(agent_id, prompt)

    async def _dial(self, agent_id: str, number: str) -> None:
        """``*77`` + a number + ``#`` on the line: the agent's own call down the line (a
        refusal heard as ``beeperr``; a dial that gets nobody tells them itself)."""
        try:
            await self._board.dials.start(agent_id, number or "last", via=LINE_VIA)
        except (EngineError, UnknownAgent) as exc:
            log.info("agent_line_dial_refused", agent=agent_id, error=str(exc))
            await self.tell(agent_id, "beeperr")

    def _keyed(self, line: Line, action: str) -> None:
        """One of the line's own keys was pressed in full."""
        board = self._board
        agent_id = line.agent
        if action == "hangup":
            if board.agent_call(agent_id) is None:
                log.info("agent_line_hangup_key_without_call", agent=agent_id)
                return
            board.in_background(self._hang_up(agent_id), f"line-hangup-{agent_id}")
            return
        router = board.router
        try:
            if action == "pause":
                reasons = board.config.pause_reasons
                board.breaks.pause(agent_id, reasons[0] if reasons else "break", via=LINE_VIA)
            elif (
                router.agents[agent_id].state is AgentState.PAUSED
                or board.breaks.place(agent_id) is not None
            ):
                board.breaks.unpause(agent_id, via=LINE_VIA)
            else:
                router.end_wrapup(agent_id)
        except (EngineError, IllegalTransition) as exc:
            log.info("agent_line_key_refused", agent=agent_id, action=action, error=str(exc))
            return
        log.info("agent_line_key", agent=agent_id, action=action)

    async def _hang_up(self, agent_id: str) -> None:
        try:
            call_id = await self._board.leave_call(agent_id)
        except (EngineError, PBXError) as exc:
            log.info("agent_line_hangup_refused", agent=agent_id, error=str(exc))
            return
        log.info("agent_line_hangup", agent=agent_id, call_id=call_id)

    # ------------------------------------------------------------------ logouts, stop

    def _on_logout(self, event: EngineEvent) -> None:
        assert isinstance(event, AgentLoggedOut)
        line = self._lines.get(event.agent)
        if line is None or line.closing:
            return
        line.closing = True
        self._board.in_background(self._leave_room(line), f"line-logout-{line.agent}")

    @staticmethod
    async def _leave_room(line: Line) -> None:
        try:
            await line.call.leave_room()
        except PBXError as exc:
            log.info("agent_line_not_left", agent=line.agent, error=str(exc))

    async def close(self) -> None:
        """The daemon stops: every line's agent logs out and hears it (for a moment); a
        line still busy then (asking its agent to accept a caller) is hung up, not left to
        the PBX (a parked FreeSWITCH line would be taken as a new ``*70`` by the next
        daemon). A line whose agent talks to a caller is left as it is, with the caller."""
        lines = list(self._lines.values())
        if not lines:
            return
        for line in lines:
            if line.closing:
                continue
            if self._board.agent_call(line.agent) is not None:
                # Talking to a caller: left to the PBX as any call in progress (taking
                # the agent out of the room would cut the caller off). The next daemon
                # logs the agent out (a shift begun on a line); they hang up after the call.
                line.left_talking = True
                self._running.discard(line)
                log.info("agent_line_left_talking_at_stop", agent=line.agent)
                continue
            line.closing = True
            await self._leave_room(line)
        if not self._running:
            self._none.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SETTLE):
                await self._none.wait()
        for line in list(self._running):
            log.info("agent_line_hung_up_at_stop", agent=line.agent)
            with contextlib.suppress(PBXError):
                await line.call.hangup()
