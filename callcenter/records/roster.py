"""Agents and queues added while the centre runs, as records: the ``added_agents`` and
``added_queues`` tables.

:class:`RosterRecorder` listens to AgentAdded, AgentRemoved, QueueAdded and QueueRemoved:
an agent added (``agent add``, ``POST /roster``) or a queue (``queue add``, ``POST
/queues``) is stored with its settings, one row each, replaced when they change; removing
it deletes the row. A restarted daemon reads the rows back
(:meth:`~callcenter.daemon.Daemon.start`), agents then queues, before the queues' kept
members, so the agents it adds can be members again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from callcenter.events import AgentAdded, AgentRemoved, EngineEvent, QueueAdded, QueueRemoved
from callcenter.records.writer import RecordWriter


def _settings_json(settings: Mapping[str, Any]) -> str:
    return json.dumps(dict(settings), sort_keys=True)


def _settings_of(text: str) -> dict[str, Any]:
    loaded = json.loads(text)
    return dict(loaded) if isinstance(loaded, dict) else {}


@dataclass(frozen=True, slots=True)
class AddedAgent:
    """An agent added while the centre runs: its config fields (``settings``: JSON of what
    the config file's ``agents.<id>`` would give, keys sorted), since ``changed`` (UTC),
    added ``via``."""

    agent: str
    settings: str
    changed: datetime
    via: str = ""

    @classmethod
    def of(cls, agent: str, settings: Mapping[str, Any], changed: datetime, via: str) -> AddedAgent:
        return cls(agent, _settings_json(settings), changed, via)

    def values(self) -> dict[str, Any]:
        """The settings as a mapping (``name``, ``device`` ...)."""
        return _settings_of(self.settings)


@dataclass(frozen=True, slots=True)
class AddedQueue:
    """A queue added while the centre runs: its config fields (``settings``: JSON of what
    the config file's ``queues.<queue>`` would give, keys sorted), since ``changed`` (UTC),
    added ``via``."""

    queue: str
    settings: str
    changed: datetime
    via: str = ""

    @classmethod
    def of(cls, queue: str, settings: Mapping[str, Any], changed: datetime, via: str) -> AddedQueue:
        return cls(queue, _settings_json(settings), changed, via)

    def values(self) -> dict[str, Any]:
        """The settings as a mapping (``strategy``, ``agents`` ...)."""
        return _settings_of(self.settings)


class RosterStore(Protocol):
    def write_added_agent(self, added: AddedAgent) -> bool: ...

    def clear_added_agent(self, agent: str) -> bool: ...

    def write_added_queue(self, added: AddedQueue) -> bool: ...

    def clear_added_queue(self, queue: str) -> bool: ...


class RosterRecorder:
    """Event-bus listener writing each addition and removal through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (AgentAdded, AgentRemoved, QueueAdded, QueueRemoved)

    def __init__(self, store: RosterStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, AgentAdded):
            added = AddedAgent.of(event.agent, event.settings, event.at, event.via)
            write = functools.partial(self.store.write_added_agent, added)
            self.writer.submit(f"roster:{event.agent}", write)
        elif isinstance(event, AgentRemoved):
            clear = functools.partial(self.store.clear_added_agent, event.agent)
            self.writer.submit(f"roster:{event.agent}", clear)
        elif isinstance(event, QueueAdded):
            queue = AddedQueue.of(event.queue, event.settings, event.at, event.via)
            write = functools.partial(self.store.write_added_queue, queue)
            self.writer.submit(f"roster-queue:{event.queue}", write)
        elif isinstance(event, QueueRemoved):
            clear = functools.partial(self.store.clear_added_queue, event.queue)
            self.writer.submit(f"roster-queue:{event.queue}", clear)
