"""Agents' skills changed while the centre runs, as records: the ``agent_skills`` table.

:class:`SkillsRecorder` listens to AgentSkillsChanged: skills kept on top of the config
(``agent skills``) are stored, one row per agent, replaced at each change; going back to
the config's own skills deletes the row. A restarted daemon reads the rows back
(:meth:`~callcenter.daemon.Daemon.start`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.events import AgentSkillsChanged, EngineEvent
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class SkillsState:
    """An agent's kept skills as (skill, level) pairs by name, since ``changed`` (UTC), set
    ``via``."""

    agent: str
    skills: tuple[tuple[str, int], ...]
    changed: datetime
    via: str = ""

    @classmethod
    def of(cls, agent: str, skills: dict[str, int], changed: datetime, via: str) -> SkillsState:
        return cls(agent, tuple(sorted(skills.items())), changed, via)


class SkillsStore(Protocol):
    def write_agent_skills(self, state: SkillsState) -> bool: ...

    def clear_agent_skills(self, agent: str) -> bool: ...


class SkillsRecorder:
    """Event-bus listener writing each change through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (AgentSkillsChanged,)

    def __init__(self, store: SkillsStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if not isinstance(event, AgentSkillsChanged):
            return
        key = f"skills:{event.agent}"
        if event.kept:
            state = SkillsState.of(event.agent, event.skills, event.at, event.via)
            self.writer.submit(key, functools.partial(self.store.write_agent_skills, state))
        else:
            self.writer.submit(key, functools.partial(self.store.clear_agent_skills, event.agent))
