"""Supervisors working at another phone (``callcenter supervisor desk``), as records: the
``supervisor_desks`` table, one row per supervisor away from their own phone.

:class:`DeskRecorder` listens to SupervisorSeated: a desk is stored (replacing the last),
going back to the own phone deletes the row. A restarted daemon reads them back
(:meth:`~callcenter.daemon.Daemon.start`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.events import EngineEvent, SupervisorSeated
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class SupervisorDesk:
    """``supervisor`` works at ``device`` since ``since`` (UTC), set ``via``."""

    supervisor: str
    device: str
    since: datetime
    via: str = ""


class DeskStore(Protocol):
    def write_supervisor_desk(self, desk: SupervisorDesk) -> bool: ...

    def clear_supervisor_desk(self, supervisor: str) -> bool: ...


class DeskRecorder:
    """Event-bus listener writing each change through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (SupervisorSeated,)

    def __init__(self, store: DeskStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if not isinstance(event, SupervisorSeated):
            return
        key = f"supervisor-desk:{event.supervisor}"
        if event.device:
            desk = SupervisorDesk(event.supervisor, event.device, event.at, event.via)
            self.writer.submit(key, functools.partial(self.store.write_supervisor_desk, desk))
        else:
            clear = functools.partial(self.store.clear_supervisor_desk, event.supervisor)
            self.writer.submit(key, clear)


__all__ = ["DeskRecorder", "DeskStore", "SupervisorDesk"]
