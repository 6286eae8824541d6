"""An agent's own outbound calls (manual dial, click-to-dial): ``*77`` + the number from
their phone, ``callcenter agent dial 1001 --to 0612345678``, or ``POST /agents/1001/dial``
from a CRM's click.

``*77`` alone (``--to last``, ``{"number": "last"}``) calls back the number of the
agent's last call (a caller cut off), through that call's queue.

The agent is on the line before the number rings, as agents expect (they hear it answer;
the person called hears them at once, not a silence while an agent is found):

* from their phone (``*77``), their own call is that line; from the CLI or the API the
  daemon rings their phone first (its display shows the number to be called) and takes
  the answered call; an agent on an open line (``*70``) is on the line already.
* Their call waits in a conference room of its own (``dial-<agent>``, as an open line's
  does), hearing a ring tone while alone there (Asterisk: the ``callcenter-ringback``
  music class of dialplans/asterisk/musiconhold.conf), the number is dialled through
  ``acd.dial_out`` into the callback context, and when it answers it is put through to
  that room as a queue's caller is put through to an agent: the call goes through the
  agent's queue (``--queue``, else the first they are a member of), which gives it its
  recording, wrap-up, dispositions, survey and supervisors; agent keys, hold,
  consultations and transfers work as on any call.
* The agent is reserved for the call from the start (no queue caller is offered to them
  meanwhile). An agent on a break may dial: the pause ends for the call and begins again
  (same reason) once it is over; one in after-call work ends it by dialling, unless the
  last call still waits for its disposition.
* Nobody answers (busy, no answer, a number the PBX cannot reach): the agent hears
  ``acd.dial_out_failed_prompt`` and their phone hangs up (an open line hears it and
  stays open). The talk over (either side hung
  up, or the agent transferred the call), the agent's phone hangs up and their after-call
  work starts as for any call. Hanging up their phone first ends the call with the person
  called (counted as the agent hanging up) or, while it still rings, the dial.

Only numbers on ``acd.dial_out_allow`` are dialled, never one on the number lists of
``acd.dial_out_block`` (the centre's do-not-call list, kept at runtime by ``callcenter
numbers add``). The records: the call's CDR has ``dst`` the number and ``dialled_by`` the
agent among its variables; the queue_log's ``ENTERQUEUE`` has url ``agent:<id>``, so the
queue's inbound figures leave it out (``report --queues`` counts it apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import structlog

from callcenter.acd.agent import AgentState
from callcenter.acd.rules import answers_by_itself
from callcenter.errors import (
    CallHungUp,
    CommandResultLost,
    EngineError,
    PBXConnectionError,
    PBXError,
    UnknownAgent,
)
from callcenter.events import (
    AgentDialFailed,
    AgentDialing,
    AgentStateChanged,
    CallAnswered,
    EngineEvent,
)
from callcenter.ivr.values import matches_any

if TYPE_CHECKING:
    from callcenter.acd.queue import QueueEntry
    from callcenter.config.models import CallCenterConfig
    from callcenter.pbx.interface import Call
    from callcenter.switchboard import Switchboard

log = structlog.get_logger(__name__)

DIAL_ROUTE: Final = "agent-dial"
"""The hook of ``*77`` + a number (``AGI(agi://.../agent-dial?number=${EXTEN:3})``)."""
ROOM_PREFIX: Final = "dial-"
"""The room an agent's own leg waits in is this and the agent's id (``.`` made ``_``)."""
DIAL_PREFIX: Final = "dial:"
"""A dial's id (and the place its number takes in the queue) begins with this."""
LEG_PREFIX: Final = "dialleg:"
"""The origin of the call that rings the agent's phone (click-to-dial)."""
DIAL_PRIORITY: Final = -1001
"""The place a dial takes in its queue ranks behind every caller (config priorities stop at
-1000): it is the agent's from the start and must not push callers' positions back."""
KICK_AGAIN = 0.5
"""Seconds the end of a dial waits for the agent's leg to leave its room before kicking it
again (a leg between rooms, or not in yet, is not kicked out by the first)."""
KICKS = 20
"""Kicks at most before the leg is hung up instead."""
CLOSE_SETTLE = 3.0
"""Seconds a stopping daemon waits for the agents whose dial it called off to hear it."""
LINK_WAIT = 60.0
"""Seconds the end of a dial waits for a PBX link that is down, to take the agent's leg
out of its room."""
ANSWER_MARGIN = 5.0
"""Seconds beyond the ring timeout the agent's answered phone has to reach the daemon."""

_DIALABLE: Final = re.compile(r"\+?[0-9]{3,20}")
LAST: Final = "last"
"""The number that means "the number of the agent's last call" (``*77`` alone, ``agent
dial --to last``): a caller cut off is called back at once."""


def room_of(agent_id: str) -> str:
    """The conference room ``agent_id``'s own leg waits in while they dial."""
    return ROOM_PREFIX + agent_id.replace(".", "_")


@dataclass(eq=False, slots=True)
class Dial:
    """One outbound call an agent asked for, from the ask to the end of their talk."""

    id: str
    agent: str
    number: str
    queue: str
    via: str
    entry: QueueEntry
    leg: asyncio.Future[Call]
    """The agent's own call, once it is ours (never set for an agent on an open line)."""
    over: asyncio.Event = field(default_factory=asyncio.Event)
    """The agent is done with the dial (it failed, their talk ended): their leg leaves."""
    out: asyncio.Event = field(default_factory=asyncio.Event)
    """Their leg is out of its room for good."""
    forgotten: asyncio.Event = field(default_factory=asyncio.Event)
    """The dial is over for good (no longer among the agents' dials)."""
    reason: str = ""
    """Why nobody was put through ("" while it may still happen, or once it did)."""
    talking: bool = False
    """The agent took the call (ON_CALL once)."""
    left: bool = False
    """The agent hung up their own leg."""
    number_task: asyncio.Task[None] | None = None
    data: tuple[tuple[str, str], ...] = ()
    """Variables the answered call gets (what a CRM's click sent: a ticket, a contact)."""


class ManualDials:
    """Every dial agents have in progress, by agent id (see the module docstring)."""

    def __init__(self, board: Switchboard) -> None:
        self._board = board
        self._dials: dict[str, Dial] = {}
        self._legs: dict[str, Dial] = {}
        """Callback token -> the dial whose agent's phone it rings."""
        board.bus.subscribe(self._on_agent, (AgentStateChanged,))

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._dials

    def owns(self, token: str) -> bool:
        """Is ``token`` (an answered call's ``callback``) the ring of an agent's phone?"""
        return token in self._legs

    def dialling(self) -> list[dict[str, Any]]:
        """The dials in progress (``/status``)."""
        return [
            {
                "agent": d.agent,
                "dial_id": d.id,
                "number": d.number,
                "queue": d.queue,
                "state": "talking" if d.talking else "dialling",
            }
            for d in self._dials.values()
        ]

    # ------------------------------------------------------------------ asking

    async def start(
        self,
        agent_id: str,
        number: str,
        queue: str | None = None,
        *,
        via: str = "cli",
        data: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Dial ``number`` for ``agent_id`` (CLI, API): their phone rings first, or their
        open line is used; ``data`` becomes variables of the answered call (the agent's
        screen, the CDR). Returns once the dial is under way, with its id. Raises
        UnknownAgent, or EngineError (with what to do) when it cannot be made."""
        board = self._board
        dial = self._prepare(agent_id, number, queue, via, board.config)
        dial.data = tuple((data or {}).items())
        if agent_id in board.lines:
            dial.number_task = board.in_background(self._dial_number(dial), f"dial-{dial.id}")
        else:
            board.in_background(self._ring_agent(dial), f"dial-agent-{dial.id}")
        return {"dial_id": dial.id, "agent": agent_id, "number": dial.number, "queue": dial.queue}

    async def run(self, call: Call, config: CallCenterConfig) -> str:
        """The ``*77`` call: the agent of the calling phone (PIN if they have one) dials
        the number after the code (none: their last call's); ``beeperr`` when it cannot be
        dialled. Returns who ended
        the call (the handler's ``hung_up_by``)."""
        board = self._board
        info = call.info
        number = info.params.get("number") or (info.args[0] if info.args else "")
        agent_id = board.agent_for_channel(info.channel, config) or ""
        pins = {aid: a.pin for aid, a in config.agents.items()}
        if not await board.dialled_by(call, "agent", agent_id, pins, action="dial"):
            return "system"
        try:
            dial = self._prepare(agent_id, number, None, "phone", config)
        except (EngineError, UnknownAgent) as exc:
            log.info("agent_dial_refused", agent=agent_id, number=number, error=str(exc))
            await call.play(["beeperr"])
            return "system"
        dial.leg.set_result(call)
        return await self._talk(dial, call)

    async def leg_answered(self, call: Call, token: str) -> str:
        """The agent's phone, rung for a dial (:meth:`start`), answered and its call
        reached us: it waits for the number. Returns who ended it."""
        dial = self._legs.get(token)
        if dial is None or dial.leg.done() or dial.over.is_set():
            log.info("agent_dial_leg_late", call_id=call.info.call_id)
            return "system"
        await call.answer()
        # The agent picked up: their leg's record says ANSWERED, as a *77 call's does.
        self._board.bus.publish(CallAnswered(call_id=call.info.call_id))
        dial.leg.set_result(call)
        return await self._talk(dial, call)

    def _prepare(
        self,
        agent_id: str,
        number: str,
        queue: str | None,
        via: str,
        config: CallCenterConfig,
    ) -> Dial:
        """Check the dial and reserve the agent for it."""
        board = self._board
        acd = config.acd
        router = board.router
        if agent_id not in router.agents:
            raise UnknownAgent(f"unknown agent {agent_id}")
        if acd.dial_out is None:
            raise EngineError("agents dial no calls through the centre (acd.dial_out is not set)")
        if board.pbx is None or not board.pbx_up:
            raise EngineError("the PBX is not connected")
        if board.draining:
            raise EngineError("the centre is draining (about to stop): it places no new call")
        if agent_id in self._dials:
            raise EngineError(f"agent {agent_id} is dialling already")
        number = number.strip()
        if number in ("", LAST):
            last = board.dispositions.last_call_of(agent_id)
            if last is None:
                raise EngineError(f"agent {agent_id} has had no call to call back")
            number, queue = last[0], queue or last[1]
            if queue not in router.agent_view(agent_id)["queues"]:
                queue = None  # no longer theirs: through their first queue
        if not _DIALABLE.fullmatch(number) or not matches_any(acd.dial_out_allow, number):
            raise EngineError(f"{number!r} is not a number agents may dial (acd.dial_out_allow)")
        lists = board.lists.merged(config)
        for name in acd.dial_out_block:
            if matches_any(lists.get(name, ()), number):
                raise EngineError(f"{number} is on number list {name} (acd.dial_out_block)")
        member_of: list[str] = router.agent_view(agent_id)["queues"]
        if queue is None:
            if not member_of:
                raise EngineError(f"agent {agent_id} is a member of no queue to dial through")
            queue = member_of[0]
        elif queue not in config.queues:
            raise EngineError(f"unknown queue {queue}")
        dial_id = f"{DIAL_PREFIX}{agent_id}:{secrets.token_hex(4)}"
        entry = router.enqueue(queue, dial_id, priority=DIAL_PRIORITY)
        entry.dialled_by = agent_id
        try:
            router.claim(entry, agent_id)
        except Exception:
            router.leave(entry)
            raise
        dial = Dial(
            dial_id, agent_id, number, queue, via, entry, asyncio.get_running_loop().create_future()
        )
        self._dials[agent_id] = dial
        board.bus.publish(
            AgentDialing(agent=agent_id, dial_id=dial_id, number=number, queue=queue, via=via)
        )
        log.info("agent_dialing", agent=agent_id, dial_id=dial_id, queue=queue, via=via)
        return dial

    # ------------------------------------------------------------------ the agent's phone

    async def _ring_agent(self, dial: Dial) -> None:
        """Ring the agent's phone for ``dial``; once it answered, its call does the rest
        (:meth:`leg_answered`); otherwise the dial fails (``agent-no-answer``)."""
        board = self._board
        assert board.pbx is not None
        config = board.config
        from callcenter.callback import CALLBACK_VARIABLE, callback_token

        ring = config.queues[dial.queue].ring_timeout
        device = board.router.agents[dial.agent].device
        token = callback_token(LEG_PREFIX + dial.id)
        self._legs[token] = dial
        reason = "agent-no-answer"
        try:
            outcome = await board.pbx.originate(
                device,
                context=config.acd.callback_context,
                exten=config.acd.callback_exten,
                caller_id=dial.number,
                timeout=ring,
                variables={CALLBACK_VARIABLE: token},
                auto_answer=answers_by_itself(config, dial.agent),
            )
            async with asyncio.timeout(ring + ANSWER_MARGIN):
                await asyncio.wait((dial.leg, outcome), return_when=asyncio.FIRST_COMPLETED)
                if not dial.leg.done() and not outcome.cancelled() and outcome.result():
                    log.info("agent_dial_phone_failed", agent=dial.agent, why=outcome.result())
                    return
                await asyncio.shield(dial.leg)
            reason = ""
        except TimeoutError:
            pass
        except PBXError as exc:
            log.warning("agent_dial_phone_failed", agent=dial.agent, error=str(exc))
        finally:
            self._legs.pop(token, None)
            if reason:
                self._failed(dial, reason)
                board.router.leave(dial.entry)
                self._forget(dial)

    async def _talk(self, dial: Dial, leg: Call) -> str:
        """The agent's leg waits in its room while the number is dialled and, once it
        answered, while they talk; then it hears why nobody came (if so) and hangs up."""
        board = self._board
        assert board.pbx is not None
        room = room_of(dial.agent)
        dial.entry.device = board.pbx.room_device(room)
        dial.number_task = board.in_background(self._dial_number(dial), f"dial-{dial.id}")
        try:
            try:
                while not dial.over.is_set():
                    # A ring while the number rings, as on any phone; not once they talk.
                    await leg.wait_in_room(
                        room,
                        on_digit=functools.partial(board.agent_key, dial.agent),
                        ringing=not dial.talking,
                    )
            finally:
                dial.out.set()
        except (CallHungUp, PBXError) as exc:
            dial.left = True
            dial.over.set()
            await self._agent_left(dial)
            self._forget(dial)
            if isinstance(exc, PBXConnectionError) and not isinstance(exc, CommandResultLost):
                # Its room command may have reached the PBX: it may sit in the room.
                board.leave_after_link_loss(leg, room)
            raise
        prompt = board.config.acd.dial_out_failed_prompt
        try:
            if dial.reason and prompt:
                await leg.play([prompt])
            await leg.hangup()
        except CallHungUp:
            return "caller"
        finally:
            self._forget(dial)
        return "system"

    async def _agent_left(self, dial: Dial) -> None:
        """The agent hung up their leg: a call they talk on ends as if they hung up, a
        number still ringing stops being waited for."""
        board = self._board
        if dial.talking:
            if board.agent_call(dial.agent) is not None:
                with contextlib.suppress(EngineError, PBXError):
                    await board.leave_call(dial.agent)
            return
        task = dial.number_task
        if task is not None and not task.done():
            dial.reason = "agent-left"
            task.cancel()

    # ------------------------------------------------------------------ the number

    async def _dial_number(self, dial: Dial) -> None:
        """Dial the number; when it answers, its call is put through to the agent (the
        switchboard's work); otherwise the dial fails."""
        board = self._board
        acd = board.config.acd
        assert acd.dial_out is not None
        reason = "agent-left"
        try:
            reason = await board.dial_for_agent(
                dial.entry,
                dial.number,
                dial_id=dial.id,
                device=acd.dial_out.replace("${number}", dial.number),
                caller_id=self._caller_id(dial),
                ring_timeout=acd.dial_out_timeout,
                data=dial.data,
            )
        finally:
            if reason:
                self._failed(dial, reason)
                await self._end(dial)

    def _caller_id(self, dial: Dial) -> str:
        """What the person called sees: the agent's own caller_id, else the queue's, else
        the centre's."""
        config = self._board.config
        agent = config.agents.get(dial.agent)
        queue = config.queues.get(dial.queue)
        return (
            (agent.caller_id if agent is not None else None)
            or (queue.caller_id if queue is not None else None)
            or config.acd.dial_out_caller_id
            or config.acd.callback_caller_id
        )

    def _failed(self, dial: Dial, reason: str) -> None:
        dial.reason = dial.reason or reason
        self._board.bus.publish(
            AgentDialFailed(
                agent=dial.agent,
                dial_id=dial.id,
                number=dial.number,
                queue=dial.queue,
                reason=dial.reason,
            )
        )
        log.info("agent_dial_failed", agent=dial.agent, dial_id=dial.id, reason=dial.reason)

    async def _end(self, dial: Dial) -> None:
        """The agent is done with ``dial``: their leg (if any) leaves its room."""
        dial.over.set()
        if not dial.leg.done():
            # An open line's: no leg of its own to see out; the line hears why, if need be.
            self._forget(dial)
            prompt = self._board.config.acd.dial_out_failed_prompt
            if dial.reason and prompt and dial.reason != "stopped":
                await self._board.lines.tell(dial.agent, prompt)
            return
        leg = dial.leg.result()
        for _ in range(KICKS):
            if dial.out.is_set() or leg.hung_up:
                return
            try:
                await leg.leave_room()
            except PBXConnectionError as exc:
                # The kick goes over the link that is down (FastAGI's own session is busy
                # in the room): once it is back.
                log.info("agent_dial_leg_kick_waits_for_the_link", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LINK_WAIT):
                        await self._board.wait_pbx_up()
                continue
            except PBXError as exc:
                log.info("agent_dial_leg_not_left", agent=dial.agent, error=str(exc))
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KICK_AGAIN):
                    await dial.out.wait()
        if not dial.out.is_set():
            log.warning("agent_dial_leg_stuck_in_room", agent=dial.agent)
            with contextlib.suppress(PBXError):
                await leg.hangup()

    def _forget(self, dial: Dial) -> None:
        if self._dials.get(dial.agent) is dial:
            del self._dials[dial.agent]
        dial.forgotten.set()

    async def close(self) -> None:
        """The daemon stops: dials not answered yet are called off (the agent hears
        ``acd.dial_out_failed_prompt`` and their phone hangs up; reason ``stopped``).
        A talk in progress is left to the PBX, as every call is: it goes on, and the
        agent hangs up at its end."""
        waiting = [d for d in self._dials.values() if not d.talking]
        for dial in waiting:
            dial.reason = dial.reason or "stopped"
            task = dial.number_task
            if task is not None and not task.done():
                task.cancel()
            await self._end(dial)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SETTLE):
                await asyncio.gather(*(d.forgotten.wait() for d in waiting))

    # ------------------------------------------------------------------ the agent's state

    def _on_agent(self, event: EngineEvent) -> None:
        assert isinstance(event, AgentStateChanged)
        dial = self._dials.get(event.agent)
        if dial is None:
            return
        if event.new == AgentState.ON_CALL:
            dial.talking = True
            if dial.left:
                # Put through after they hung up: end it as their hang-up would have.
                self._board.in_background(self._agent_left(dial), f"dial-left-{dial.id}")
            return
        task = dial.number_task
        put_through = task is not None and task.done() and not dial.reason
        if (
            event.old == AgentState.ON_CALL
            or event.new == AgentState.LOGGED_OUT
            or (event.old == AgentState.RINGING and put_through and not dial.talking)
        ):
            if (
                event.new == AgentState.LOGGED_OUT
                and not dial.talking
                and task is not None
                and not task.done()
            ):
                dial.reason = "agent-left"
                task.cancel()
            self._board.in_background(self._close(dial), f"dial-over-{dial.id}")

    async def _close(self, dial: Dial) -> None:
        await self._end(dial)
