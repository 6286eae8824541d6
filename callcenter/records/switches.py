"""Switches as records: the last state of each ``ivr.switches`` flip (``switches`` table).

:class:`SwitchRecorder` listens to SwitchFlipped and keeps one row per switch, replaced at
each flip, through the record writer. A restarted daemon reads them back
(:meth:`~callcenter.daemon.Daemon.start`): a centre closed for a storm stays closed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.events import EngineEvent, SwitchFlipped
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class SwitchState:
    """A switch's last flip: on or off, when (UTC) and how."""

    name: str
    on: bool
    changed: datetime
    via: str = ""


class SwitchStore(Protocol):
    def write_switch(self, state: SwitchState) -> bool: ...


class SwitchRecorder:
    """Event-bus listener writing each flip through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (SwitchFlipped,)

    def __init__(self, store: SwitchStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, SwitchFlipped):
            state = SwitchState(event.name, event.on, event.at, event.via)
            self.writer.submit(
                f"switch:{event.name}", functools.partial(self.store.write_switch, state)
            )
