"""Queue callbacks as records: a caller's kept place outlives the daemon.

A caller who asks to be called back hangs up and keeps their place in the queue; until their
turn comes the request exists only in the engine. :class:`QueueCallbackRecorder` writes it to
the ``queue_callbacks`` table as soon as it is made and follows it to its end, so that a
daemon that restarts (or crashed) takes the waiting requests back
(:meth:`~callcenter.callback.Callbacks.restore`) instead of forgetting callers
who were promised a call.

One row per request, keyed by the call that made it::

    QueueCallbackRequested   -> status "waiting", attempts 0
    QueueCallbackAttempt     -> attempts = that attempt
    QueueCallbackAnswered    -> status "answered" (the caller is on a call again)
    QueueCallbackFailed      -> when final: status "failed", "expired" (reason "expired") or
                                "cancelled" (reason "cancelled": withdrawn through the API)

A request still ``waiting`` when the daemon starts is restored with its queue, number,
priority, skills, the attempts already made and its request time (its place in the queue).
A callback asked for at a later time is written with that time as its request time: one
still in the future when the daemon starts is scheduled again for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

import structlog

from callcenter.events import (
    EngineEvent,
    QueueCallbackAnswered,
    QueueCallbackAttempt,
    QueueCallbackFailed,
    QueueCallbackRequested,
)
from callcenter.records.writer import RecordWriter

log = structlog.get_logger(__name__)

CallbackStatus = Literal["waiting", "answered", "failed", "expired", "cancelled"]
#: ``QueueCallbackFailed.reason`` of a request given up because it waited too long.
EXPIRED: Final = "expired"
#: ``QueueCallbackFailed.reason`` of a request withdrawn (``POST /callbacks/<id>/cancel``).
CANCELLED: Final = "cancelled"
#: ``QueueCallbackFailed.reason`` of the call back of an abandoned caller who called again
#: before it was due (status ``cancelled`` too).
CALLED_AGAIN: Final = "called-again"


@dataclass(frozen=True, slots=True)
class QueueCallback:
    """A caller's callback request (``requested`` and ``updated`` in UTC)."""

    call_id: str
    """The call that asked for it (the caller's place in the queue)."""
    queue: str
    number: str
    requested: datetime
    priority: int = 0
    skills: tuple[str, ...] = ()
    status: CallbackStatus = "waiting"
    attempts: int = 0
    updated: datetime | None = None
    data: tuple[tuple[str, str], ...] = ()
    """Variables the callback call gets (see ``QueueCallbackRequested.data``)."""


class QueueCallbackStore(Protocol):
    """Where queue callback rows go (blocking calls, run in the writer's thread)."""

    def write_queue_callback(self, request: QueueCallback) -> bool: ...

    def update_queue_callback(
        self, call_id: str, *, updated: datetime, status: str | None, attempts: int | None
    ) -> bool: ...


class QueueCallbackRecorder:
    """Event-bus listener keeping the ``queue_callbacks`` rows up to date.

    ``writer`` is usually the CDR recorder's; starting and closing it is its owner's job.
    """

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return tuple(_HANDLERS)

    def __init__(self, store: QueueCallbackStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _requested(self, event: EngineEvent) -> None:
        assert isinstance(event, QueueCallbackRequested)
        request = QueueCallback(
            call_id=event.call_id,
            queue=event.queue,
            number=event.number,
            requested=event.due or event.at,
            priority=event.priority,
            skills=event.skills,
            updated=event.at,
            data=tuple(event.data.items()),
        )
        self._submit(event.call_id, functools.partial(self.store.write_queue_callback, request))

    def _attempt(self, event: EngineEvent) -> None:
        assert isinstance(event, QueueCallbackAttempt)
        self._update(event.origin_call_id, event.at, attempts=event.attempt)

    def _answered(self, event: EngineEvent) -> None:
        assert isinstance(event, QueueCallbackAnswered)
        self._update(event.original_call_id, event.at, status="answered")

    def _failed(self, event: EngineEvent) -> None:
        assert isinstance(event, QueueCallbackFailed)
        if event.final:
            if event.reason in (CANCELLED, CALLED_AGAIN):
                status = CANCELLED
            else:
                status = EXPIRED if event.reason == EXPIRED else "failed"
            self._update(event.origin_call_id, event.at, status=status, attempts=event.attempt)

    def _update(
        self, call_id: str, at: datetime, *, status: str | None = None, attempts: int | None = None
    ) -> None:
        write = functools.partial(
            self.store.update_queue_callback, call_id, updated=at, status=status, attempts=attempts
        )
        self._submit(call_id, write)

    def _submit(self, call_id: str, write: functools.partial[bool]) -> None:
        # One key per request: the writer keeps a key's writes in order.
        self.writer.submit(f"queue-callback:{call_id}", write)


_HANDLERS = {
    QueueCallbackRequested: QueueCallbackRecorder._requested,
    QueueCallbackAttempt: QueueCallbackRecorder._attempt,
    QueueCallbackAnswered: QueueCallbackRecorder._answered,
    QueueCallbackFailed: QueueCallbackRecorder._failed,
}

__all__ = [
    "CALLED_AGAIN",
    "CANCELLED",
    "EXPIRED",
    "CallbackStatus",
    "QueueCallback",
    "QueueCallbackRecorder",
    "QueueCallbackStore",
]
