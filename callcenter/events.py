"""Engine events: what happened to calls and agents, in the engine's words.

The engine publishes these on an :class:`EventBus`; records (CDR, queue_log) are pure folds
over them and live outputs (metrics, MQTT) subscribe to them. Every event carries a wall-clock
UTC timestamp ``at`` (for records) and a monotonic ``mono`` (for durations).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineEvent:
    at: datetime = field(default_factory=utcnow)
    mono: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent(EngineEvent):
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(CallEvent):
    """The PBX handed us a call."""

    channel: str
    caller_num: str
    caller_name: str
    dialed: str
    context: str
    linked_id: str = ""
    accountcode: str = ""
    transport: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(CallEvent):
    """We answered the caller's channel."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrStep(CallEvent):
    """The caller reached an IVR node; ``digits`` is what they pressed to leave the previous."""

    flow: str
    node: str
    digits: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueJoined(CallEvent):
    queue: str
    position: int
    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRinging(CallEvent):
    queue: str
    agent: str
    device: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRingFailed(CallEvent):
    """An offered agent did not take the call (``status`` is the DialStatus value)."""

    queue: str
    agent: str
    status: str
    ring_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConnected(CallEvent):
    """The agent answered; the caller left the queue."""

    queue: str
    agent: str
    peer_channel: str
    wait_seconds: float
    ring_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAbandoned(CallEvent):
    """The caller hung up while waiting in the queue."""

    queue: str
    position: int
    wait_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueExited(CallEvent):
    """The caller left the queue unanswered for a reason other than hanging up."""

    queue: str
    reason: str
    wait_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(CallEvent):
    """The call was transferred (``kind`` is ``blind`` or ``attended``)."""

    by: str
    """Agent id who transferred, or ``system``."""
    to: str
    """Destination: an agent/supervisor id or an extension."""
    kind: str = "blind"


@dataclass(frozen=True, slots=True, kw_only=True)
class TalkEnded(CallEvent):
    """A bridge with an agent (or supervisor) ended."""

    agent: str
    talk_seconds: float
    hung_up_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEvent):
    """The call is over: the last event of every call, exactly once."""

    hung_up_by: str
    """``caller``, ``agent`` or ``system``."""
    cause: int
    cause_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent(EngineEvent):
    agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedIn(AgentEvent):
    device: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedOut(AgentEvent):
    shift_seconds: float
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPaused(AgentEvent):
    reason: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUnpaused(AgentEvent):
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(AgentEvent):
    old: str
    new: str


Listener = Callable[[EngineEvent], None]


class EventBus:
    """Synchronous fan-out of engine events. A failing listener is logged, never propagated:
    a broken report must not break a call."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def publish(self, event: EngineEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event_listener_failed", event_type=type(event).__name__)
