"""Numbers ops add to the IVR's number lists while the centre runs, as records: the
``number_list_entries`` table.

:class:`NumberListRecorder` listens to NumberListChanged: a number added to a list
(``callcenter numbers add blocked 0612345678``) is stored, one row per list and number, and
removing it deletes the row. A restarted daemon reads the rows back
(:meth:`~callcenter.daemon.Daemon.start`): a nuisance caller blocked at noon stays blocked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.events import EngineEvent, NumberListChanged
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class NumberListEntry:
    """``number`` (an exact number or an Asterisk pattern) on ``number_list`` since
    ``added`` (UTC), put there ``via``."""

    number_list: str
    number: str
    added: datetime
    via: str = ""


class NumberListStore(Protocol):
    def write_number_list_entry(self, entry: NumberListEntry) -> bool: ...

    def clear_number_list_entry(self, number_list: str, number: str) -> bool: ...


class NumberListRecorder:
    """Event-bus listener writing each change through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (NumberListChanged,)

    def __init__(self, store: NumberListStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if not isinstance(event, NumberListChanged):
            return
        key = f"number-list:{event.number_list}:{event.number}"
        if event.added:
            entry = NumberListEntry(event.number_list, event.number, event.at, event.via)
            self.writer.submit(key, functools.partial(self.store.write_number_list_entry, entry))
        else:
            clear = functools.partial(
                self.store.clear_number_list_entry, event.number_list, event.number
            )
            self.writer.submit(key, clear)


__all__ = ["NumberListEntry", "NumberListRecorder", "NumberListStore"]
