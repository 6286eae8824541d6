"""Days of agents' schedules changed while the centre runs, as records: the
``schedule_changes`` table.

:class:`ScheduleChangeRecorder` listens to AgentScheduleChanged: a day changed (``agent
schedule``, ``POST /agents/<id>/schedule``) is stored with its hours, one row per agent and
day, replaced when it changes again; a day back to the schedule's hours deletes its row. A
restarted daemon reads the rows back (:meth:`~callcenter.daemon.Daemon.start`), and
``report --adherence`` lays them over the config's schedules, as the daemon did.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from callcenter.events import AgentScheduleChanged, EngineEvent
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


class ScheduleChangeStore(Protocol):
    def write_schedule_change(self, change: ScheduleChange) -> bool: ...

    def clear_schedule_change(self, agent: str, day: str) -> bool: ...


class ScheduleChangeRecorder:
    """Event-bus listener writing each changed day through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (AgentScheduleChanged,)

    def __init__(self, store: ScheduleChangeStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if not isinstance(event, AgentScheduleChanged):
            return
        key = f"schedule:{event.agent}:{event.day}"
        if event.hours is None:
            clear = functools.partial(self.store.clear_schedule_change, event.agent, event.day)
            self.writer.submit(key, clear)
            return
        change = ScheduleChange.of(event.agent, event.day, event.hours, event.at, event.via)
        self.writer.submit(key, functools.partial(self.store.write_schedule_change, change))
