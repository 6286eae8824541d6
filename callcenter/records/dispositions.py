"""Dispositions as records: the code an agent gave each call, one row per call.

:class:`DispositionRecorder` folds each :class:`~callcenter.events.CallDisposed` into a
``dispositions`` row (call id, agent, code, note, the number, the queue, the campaign and
lead of a campaign's call, when the person asked to be called again, whether they asked
never to be called again, when). An agent who corrects the code replaces the row. A
starting daemon reads back the numbers of ``do_not_call`` rows (no campaign calls them) and
the callbacks set for a time on inbound calls that had not fallen due
(:meth:`~callcenter.callback.Callbacks.promise`). :func:`outcome_rows`
counts the codes per agent, queue or campaign for ``report --outcomes``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from callcenter.events import CallDisposed, EngineEvent
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class DispositionRecord:
    """One call's disposition, as the ``dispositions`` table keeps it."""

    call_id: str
    agent: str
    code: str
    note: str
    number: str
    queue: str
    campaign: str
    lead: str
    callback_at: datetime | None
    do_not_call: bool
    at: datetime


OUTCOME_KEYS: Final = ("agent", "queue", "campaign")
"""What ``report --outcomes`` groups the codes by (``--per``)."""


def outcome_rows(records: Iterable[DispositionRecord], per: str = "agent") -> list[dict[str, Any]]:
    """The codes given, counted per ``per`` (agent, queue or campaign) and code: ``calls``
    and their ``percent`` of that agent's (queue's, campaign's) coded calls, a row per
    pair, busiest code first within each: a sales team's conversion, a queue's reasons
    for calling. Calls without a campaign are left out with ``per="campaign"``."""
    if per not in OUTCOME_KEYS:
        raise ValueError(f"per: one of {', '.join(OUTCOME_KEYS)}, not {per!r}")
    counts: dict[str, Counter[str]] = {}
    for record in records:
        key = str(getattr(record, per))
        if per == "campaign" and not key:
            continue
        counts.setdefault(key, Counter())[record.code] += 1
    rows: list[dict[str, Any]] = []
    for key in sorted(counts):
        coded = sum(counts[key].values())
        for code, calls in sorted(counts[key].items(), key=lambda item: (-item[1], item[0])):
            rows.append(
                {per: key, "code": code, "calls": calls, "percent": round(100 * calls / coded, 1)}
            )
    return rows


class DispositionStore(Protocol):
    """Where disposition rows go (blocking calls, run in the writer's thread)."""

    def write_disposition(self, record: DispositionRecord) -> bool: ...


class DispositionRecorder:
    """Event-bus listener writing a ``dispositions`` row per CallDisposed (the writer is
    the CDR recorder's; starting and closing it is its owner's job)."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (CallDisposed,)

    def __init__(self, store: DispositionStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if type(event) is CallDisposed:
            record = DispositionRecord(
                call_id=event.call_id,
                agent=event.agent,
                code=event.code,
                note=event.note,
                number=event.number,
                queue=event.queue,
                campaign=event.campaign,
                lead=event.lead,
                callback_at=event.callback_at,
                do_not_call=event.do_not_call,
                at=event.at,
            )
            key = f"disposition:{record.call_id}"
            self.writer.submit(key, functools.partial(self.store.write_disposition, record))


__all__ = ["DispositionRecord", "DispositionRecorder", "DispositionStore"]
