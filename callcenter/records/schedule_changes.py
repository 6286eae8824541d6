"""Days of agents' schedules changed while the centre runs, as records: the
``schedule_changes`` table.

:class:`ScheduleChangeRecorder` listens to AgentScheduleChanged: a day changed (``agent
schedule``, ``POST /agents/<id>/schedule``) is stored with its hours, one row per agent and
day, replaced when it changes again; a day back to the schedule's hours deletes its row. A
restarted daemon reads the rows back (:meth:`~callcenter.daemon.Daemon.start`), and
``report --adherence`` lays them over the config's schedules, as the daemon did.

It also keeps the agents' requests for such a day (ScheduleRequested) and the supervisors'
word on them (ScheduleRequestDecided) in ``schedule_requests``, one row per request: a
restarted daemon offers the open ones to the supervisors again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from callcenter.events import (
    AgentScheduleChanged,
    EngineEvent,
    ScheduleRequestDecided,
    ScheduleRequested,
)
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """Agent ``agent`` works ``hours`` (JSON list of ranges; ``[]``: a day off) on ``day``
    (ISO date, the schedule's time zone), since ``changed`` (UTC), changed ``via``."""

    agent: str
    day: str
    hours: str
    changed: datetime
    via: str = ""

    @classmethod
    def of(
        cls, agent: str, day: str, hours: Sequence[str], changed: datetime, via: str
    ) -> ScheduleChange:
        return cls(agent, day, json.dumps(list(hours)), changed, via)

    def ranges(self) -> tuple[str, ...]:
        """The day's hours as ranges (``10:00-18:00``); none: a day off."""
        loaded = json.loads(self.hours)
        return tuple(str(r) for r in loaded) if isinstance(loaded, list) else ()

    def date(self) -> date:
        return date.fromisoformat(self.day)


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    """Agent ``agent`` asked at ``asked`` (UTC) for ``day`` to be ``hours`` (JSON list;
    ``[]``: a day off), saying ``note``; ``status`` ``asked``, ``approved``,
    ``declined`` (``decided`` when, ``decided_by`` whom) or ``withdrawn`` (by the agent)."""

    id: str
    agent: str
    day: str
    hours: str
    note: str
    asked: datetime
    status: str = "asked"
    decided: datetime | None = None
    decided_by: str = ""

    def ranges(self) -> tuple[str, ...]:
        """The hours asked for (``10:00-18:00``); none: a day off."""
        loaded = json.loads(self.hours)
        return tuple(str(r) for r in loaded) if isinstance(loaded, list) else ()

    def date(self) -> date:
        return date.fromisoformat(self.day)


class ScheduleChangeStore(Protocol):
    def write_schedule_change(self, change: ScheduleChange) -> bool: ...

    def clear_schedule_change(self, agent: str, day: str) -> bool: ...

    def write_schedule_request(self, request: ScheduleRequest) -> bool: ...


class ScheduleChangeRecorder:
    """Event-bus listener writing each changed day through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (AgentScheduleChanged, ScheduleRequested, ScheduleRequestDecided)

    def __init__(self, store: ScheduleChangeStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer
        self._asked: dict[str, ScheduleRequest] = {}
        """Requests asked while this daemon ran, until decided (their row is rewritten)."""

    def remember(self, request: ScheduleRequest) -> None:
        """A request a previous daemon kept open (its row is rewritten when decided)."""
        self._asked[request.id] = request

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ScheduleRequested):
            request = ScheduleRequest(
                event.request, event.agent, event.day, json.dumps(event.hours), event.note, event.at
            )
            self._asked[event.request] = request
            self._write_request(request)
            return
        if isinstance(event, ScheduleRequestDecided):
            asked = self._asked.pop(event.request, None)
            if asked is not None:
                status = (
                    "withdrawn" if event.withdrawn else "approved" if event.approved else "declined"
                )
                self._write_request(
                    dataclasses.replace(asked, status=status, decided=event.at, decided_by=event.by)
                )
            return
        if not isinstance(event, AgentScheduleChanged):
            return
        key = f"schedule:{event.agent}:{event.day}"
        if event.hours is None:
            clear = functools.partial(self.store.clear_schedule_change, event.agent, event.day)
            self.writer.submit(key, clear)
            return
        change = ScheduleChange.of(event.agent, event.day, event.hours, event.at, event.via)
        self.writer.submit(key, functools.partial(self.store.write_schedule_change, change))

    def _write_request(self, request: ScheduleRequest) -> None:
        write = functools.partial(self.store.write_schedule_request, request)
        self.writer.submit(f"schedule-request:{request.id}", write)
