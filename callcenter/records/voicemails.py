"""Voicemail messages as work: a message left in a queue's box waits for one of its agents.

A queue with ``mailbox: <box>`` owns the messages callers leave in that box (an IVR
voicemail node, a queue exit to voicemail). :class:`VoicemailRecorder` writes each one to
the ``voicemails`` table as it is left (:class:`~callcenter.events.VoicemailLeft` with a
queue); from then on the table is the inbox, so a restart loses no message::

    waiting  --take-->  taken (agent)  --called-back / done-->  done
                          |   ^
                          |   +--call back, nobody answers (tries + 1)
                          +--release-->  waiting

An agent *takes* a message (their desktop's Messages, ``POST /voicemails/<id>/take``): no
other agent is offered it while they listen and call back. Calling the caller back from
the message (``POST /voicemails/<id>/call-back``) dials them from the agent's phone; once
they answer, the message is settled ``called-back``. Nobody answers (busy, no answer): the
message stays the agent's, with its ``tries`` counted and the last one's reason and time,
to try again later, say ``done``, or put back. An agent who dealt with it otherwise says
``done``; one who cannot *releases* it for another. Those steps are conditional updates of
one row, so two agents taking the same message at once cannot both have it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Collection, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, Protocol, TypeVar

import structlog

from callcenter.errors import CallCenterError, EngineError, UnknownVoicemail
from callcenter.events import (
    AgentDialAnswered,
    AgentDialFailed,
    AgentDialing,
    EngineEvent,
    EventBus,
    VoicemailDone,
    VoicemailLeft,
    VoicemailNotReached,
    VoicemailTaken,
)
from callcenter.records.writer import RecordWriter

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

VoicemailStatus = Literal["waiting", "taken", "done"]
OUTCOMES: Final = ("called-back", "done")
"""How a taken message is settled (``VoicemailDone.outcome``; ``released`` puts it back)."""
NOT_REACHED: Final = frozenset(
    ("busy", "no-answer", "rejected", "unavailable", "congestion", "failed")
)
"""Why a call back got nobody, of the reasons of ``AgentDialFailed``: the caller's line
(a try counted). The others (the agent's phone not answered, the agent hanging up first,
the daemon stopping) are no try of the caller's number."""


@dataclass(frozen=True, slots=True)
class VoicemailMessage:
    """One message, as the ``voicemails`` table keeps it (times in UTC)."""

    call_id: str
    """The call that left it (the message's id)."""
    queue: str
    box: str
    number: str
    name: str
    path: str
    """The file the PBX wrote, with its extension."""
    seconds: float
    left_at: datetime
    status: VoicemailStatus = "waiting"
    agent: str = ""
    """Who took it (or settled it)."""
    outcome: str = ""
    updated: datetime | None = None
    tries: int = 0
    """Calls back that got nobody."""
    last_try: str = ""
    """Why the last of them got nobody (``no-answer``, ``busy`` ...)."""
    tried_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.call_id,
            "queue": self.queue,
            "box": self.box,
            "number": self.number,
            "name": self.name,
            "seconds": round(self.seconds, 1),
            "left_at": self.left_at.isoformat(),
            "status": self.status,
            "agent": self.agent,
            "outcome": self.outcome,
            "tries": self.tries,
            "last_try": self.last_try,
            "tried_at": self.tried_at.isoformat() if self.tried_at is not None else None,
        }


class VoicemailStore(Protocol):
    """Where the messages go (blocking calls, run in the writer's thread)."""

    def write_voicemail(self, message: VoicemailMessage) -> bool: ...


class VoicemailRecorder:
    """Event-bus listener writing a ``voicemails`` row per message left in a queue's box
    (the writer is the CDR recorder's; starting and closing it is its owner's job)."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (VoicemailLeft,)

    def __init__(self, store: VoicemailStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if type(event) is VoicemailLeft and event.queue:
            message = VoicemailMessage(
                call_id=event.call_id,
                queue=event.queue,
                box=event.box,
                number=event.number,
                name=event.name,
                path=event.path,
                seconds=round(event.seconds, 3),
                left_at=event.at,
                updated=event.at,
            )
            key = f"voicemail:{event.call_id}"
            self.writer.submit(key, functools.partial(self.store.write_voicemail, message))


class VoicemailInboxStore(VoicemailStore, Protocol):
    def fetch_open_voicemails(self) -> list[VoicemailMessage]: ...

    def fetch_voicemail(self, call_id: str) -> VoicemailMessage | None: ...

    def take_voicemail(self, call_id: str, agent: str, at: datetime) -> bool: ...

    def settle_voicemail(self, call_id: str, agent: str, outcome: str, at: datetime) -> bool: ...

    def release_voicemail(self, call_id: str, at: datetime) -> bool: ...

    def note_voicemail_try(self, call_id: str, agent: str, reason: str, at: datetime) -> bool: ...


class VoicemailInbox:
    """The messages waiting for agents, read and changed in the record store (on the
    writer's thread), each change published as an event. Raises
    :class:`~callcenter.errors.UnknownVoicemail` for a message that is not there and
    :class:`~callcenter.errors.EngineError` for a step its state does not allow;
    :class:`~callcenter.errors.RecordError` when the store fails."""

    def __init__(self, store: VoicemailInboxStore, writer: RecordWriter, bus: EventBus) -> None:
        self.store = store
        self.writer = writer
        self.bus = bus
        self._left_at: dict[str, dict[str, datetime]] = {}
        """Queue -> its messages still to deal with (waiting or taken) -> when left, kept
        from the events after :meth:`load`: what the wallboard and ``/metrics`` show
        without a read."""
        self._taken: set[str] = set()
        """The open messages an agent has taken."""
        self.changes = 0
        """Counts the messages' changes (left, taken, tried, settled): a page that read
        them when it was lower reads them again."""
        self._calling: dict[str, _CallingBack] = {}
        """Agent -> the message they are calling back (an agent dials one call at a time)."""
        self._steps: set[asyncio.Task[None]] = set()

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        return (
            VoicemailLeft,
            VoicemailTaken,
            VoicemailNotReached,
            VoicemailDone,
            AgentDialing,
            AgentDialAnswered,
            AgentDialFailed,
        )

    async def load(self) -> None:
        """Count the messages still open in the store (at the start)."""
        left_at: dict[str, dict[str, datetime]] = {}
        taken: set[str] = set()
        for message in await self.writer.run(self.store.fetch_open_voicemails):
            left_at.setdefault(message.queue, {})[message.call_id] = message.left_at
            if message.status == "taken":
                taken.add(message.call_id)
        self._left_at, self._taken = left_at, taken
        self.changes += 1

    @property
    def open(self) -> dict[str, int]:
        """Queue -> its messages still to deal with (waiting or taken)."""
        return {queue: len(messages) for queue, messages in self._left_at.items()}

    def counts(self, queue: str) -> tuple[int, int]:
        """``queue``'s messages still to deal with: (waiting for an agent, taken)."""
        messages = self._left_at.get(queue, {})
        taken = sum(1 for call_id in messages if call_id in self._taken)
        return len(messages) - taken, taken

    def oldest(self, queue: str, now: datetime | None = None) -> float:
        """Seconds since the oldest message of ``queue`` still to deal with was left
        (0 when none)."""
        messages = self._left_at.get(queue)
        if not messages:
            return 0.0
        now = now or datetime.now(UTC)
        return max(0.0, (now - min(messages.values())).total_seconds())

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, VoicemailLeft | VoicemailTaken | VoicemailNotReached | VoicemailDone):
            self.changes += 1
        if isinstance(event, VoicemailLeft) and event.queue:
            self._left_at.setdefault(event.queue, {})[event.call_id] = event.at
        elif isinstance(event, VoicemailTaken):
            self._taken.add(event.call_id)
        elif isinstance(event, VoicemailDone):
            self._taken.discard(event.call_id)
            if event.outcome != "released":
                messages = self._left_at.get(event.queue, {})
                messages.pop(event.call_id, None)
                if not messages:
                    self._left_at.pop(event.queue, None)
        elif isinstance(event, AgentDialing):
            calling = self._calling.get(event.agent)
            if calling is not None and not calling.dial_id:
                calling.dial_id = event.dial_id
        elif isinstance(event, AgentDialAnswered | AgentDialFailed):
            calling = self._calling.get(event.agent)
            if calling is None or calling.dial_id != event.dial_id:
                return
            del self._calling[event.agent]
            if isinstance(event, AgentDialAnswered):
                self._later(self._answered(calling, event.agent))
            elif event.reason in NOT_REACHED:
                self._later(self._not_reached(calling, event.agent, event.reason))

    def calling_back(self, call_id: str, agent: str) -> None:
        """``agent`` is about to dial the caller of their message ``call_id``: their next
        dial's outcome settles it (answered: ``called-back``) or counts a try."""
        self._calling[agent] = _CallingBack(call_id)

    def not_calling_back(self, agent: str) -> None:
        """The dial :meth:`calling_back` announced could not start."""
        self._calling.pop(agent, None)

    def _later(self, step: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(step)
        self._steps.add(task)
        task.add_done_callback(self._steps.discard)

    async def _answered(self, calling: _CallingBack, agent: str) -> None:
        # Settled as the caller's: still theirs (not put back and taken by another meanwhile).
        await self._quietly(self.settle(calling.call_id, agent, "called-back"))

    async def _not_reached(self, calling: _CallingBack, agent: str, reason: str) -> None:
        message = await self._quietly(self.get(calling.call_id))
        if message is None or message.status != "taken" or message.agent != agent:
            return
        noted = functools.partial(
            self.store.note_voicemail_try, calling.call_id, agent, reason, datetime.now(UTC)
        )
        if not await self._quietly(self.writer.run(noted)):
            return
        self.bus.publish(
            VoicemailNotReached(
                call_id=calling.call_id,
                queue=message.queue,
                agent=message.agent,
                reason=reason,
                tries=message.tries + 1,
            )
        )

    @staticmethod
    async def _quietly(step: Awaitable[_T]) -> _T | None:
        """A step no one waits for: what stops it (the message dealt with meanwhile, the
        store failing) is logged, not raised."""
        try:
            return await step
        except CallCenterError as exc:
            log.info("voicemail_call_back_not_noted", error=str(exc))
            return None

    async def waiting(self, queues: Collection[str] | None = None) -> list[VoicemailMessage]:
        """The messages still to deal with, oldest first (of ``queues`` when given)."""
        messages = await self.writer.run(self.store.fetch_open_voicemails)
        return [m for m in messages if queues is None or m.queue in queues]

    async def get(self, call_id: str) -> VoicemailMessage:
        message = await self.writer.run(functools.partial(self.store.fetch_voicemail, call_id))
        if message is None:
            raise UnknownVoicemail(f"no voicemail message {call_id}")
        return message

    async def take(self, call_id: str, agent: str) -> VoicemailMessage:
        """Give the message to ``agent`` (theirs already: unchanged)."""
        message = await self.get(call_id)
        took = functools.partial(self.store.take_voicemail, call_id, agent, datetime.now(UTC))
        if not await self.writer.run(took):
            raise EngineError(_why_not(message, agent))
        if message.status == "waiting":
            self.bus.publish(VoicemailTaken(call_id=call_id, queue=message.queue, agent=agent))
        return await self.get(call_id)

    async def settle(self, call_id: str, agent: str, outcome: str) -> VoicemailMessage:
        """``agent`` dealt with their message: ``outcome`` one of :data:`OUTCOMES`."""
        if outcome not in OUTCOMES:
            raise ValueError(f"a message is settled {' or '.join(OUTCOMES)}, not {outcome!r}")
        message = await self.get(call_id)
        at = datetime.now(UTC)
        settled = functools.partial(self.store.settle_voicemail, call_id, agent, outcome, at)
        if not await self.writer.run(settled):
            raise EngineError(_why_not(message, agent, taking=False))
        self.bus.publish(
            VoicemailDone(call_id=call_id, queue=message.queue, agent=agent, outcome=outcome)
        )
        return await self.get(call_id)

    async def release(self, call_id: str, agent: str | None = None) -> VoicemailMessage:
        """Put a taken message back for any agent (``agent``: only if it is theirs)."""
        message = await self.get(call_id)
        if message.status != "taken" or (agent is not None and message.agent != agent):
            raise EngineError(_why_not(message, agent or "", taking=False))
        released = functools.partial(self.store.release_voicemail, call_id, datetime.now(UTC))
        if not await self.writer.run(released):
            raise EngineError(_why_not(await self.get(call_id), agent or "", taking=False))
        self.bus.publish(
            VoicemailDone(
                call_id=call_id, queue=message.queue, agent=message.agent, outcome="released"
            )
        )
        return await self.get(call_id)


@dataclass(slots=True)
class _CallingBack:
    call_id: str
    dial_id: str = ""
    """The agent's dial for it, once under way."""


def _why_not(message: VoicemailMessage, agent: str, *, taking: bool = True) -> str:
    if message.status == "done":
        return f"the message of {message.number or 'an unknown number'} is dealt with already"
    if message.status == "taken" and message.agent != agent:
        return f"agent {message.agent} has taken that message"
    if not taking and message.status == "waiting":
        return "that message is not taken: take it first"
    return f"that message cannot change now ({message.status})"


__all__ = [
    "NOT_REACHED",
    "OUTCOMES",
    "VoicemailInbox",
    "VoicemailMessage",
    "VoicemailRecorder",
    "VoicemailStatus",
    "VoicemailStore",
]
