"""Post-call surveys as records: what each caller answered about the agent who served them.

:class:`SurveyRecorder` folds each :class:`~callcenter.events.SurveyEnded` into a
``surveys`` row (call id, queue, agent, the flow, the caller's number, the score, every
answer, whether the caller went through to the end, how long it took, when). One row per
call: a survey runs once a call. The reports read them back (:mod:`callcenter.records.summary`:
surveys and mean score per agent and per queue); ``callcenter surveys`` lists them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.events import EngineEvent, SurveyEnded
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class SurveyRecord:
    """One call's survey, as the ``surveys`` table keeps it."""

    call_id: str
    queue: str
    agent: str
    flow: str
    number: str
    score: int | None
    answers: tuple[tuple[str, str], ...]
    completed: bool
    seconds: float
    at: datetime
    satisfied: bool | None = None


class SurveyStore(Protocol):
    """Where survey rows go (blocking calls, run in the writer's thread)."""

    def write_survey(self, record: SurveyRecord) -> bool: ...


class SurveyRecorder:
    """Event-bus listener writing a ``surveys`` row per SurveyEnded (the writer is the CDR
    recorder's; starting and closing it is its owner's job)."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (SurveyEnded,)

    def __init__(self, store: SurveyStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if type(event) is SurveyEnded:
            record = SurveyRecord(
                call_id=event.call_id,
                queue=event.queue,
                agent=event.agent,
                flow=event.flow,
                number=event.number,
                score=event.score,
                answers=tuple(event.answers.items()),
                completed=event.completed,
                seconds=round(event.seconds, 3),
                at=event.at,
                satisfied=event.satisfied,
            )
            key = f"survey:{record.call_id}"
            self.writer.submit(key, functools.partial(self.store.write_survey, record))


__all__ = ["SurveyRecord", "SurveyRecorder", "SurveyStore"]
