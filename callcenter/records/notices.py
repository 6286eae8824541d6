"""Notices and messages supervisors post for agents, as records: the ``notices`` table, one
row per notice standing.

:class:`NoticeRecorder` listens to NoticePosted (a row written), NoticeRead (a message's
agent saw it: when, kept in the row) and NoticeTakenDown (the row deleted: taken down,
expired or replaced). A restarted daemon puts the notices still
standing back on the board (:meth:`~callcenter.live.notices.NoticeBoard.restore`): "the
billing system is down" outlives an upgrade. Retention (``records.keep_days``) deletes
the rows of notices long expired that no daemon took down (it was stopped meanwhile).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.events import EngineEvent, NoticePosted, NoticeRead, NoticeTakenDown
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice on the board (:mod:`callcenter.live.notices`)."""

    id: str
    text: str
    by: str
    """Who posted it: ``supervisor:2000``, ``api``, ``cli``."""
    teams: tuple[str, ...]
    """The teams it is for; empty: every agent."""
    posted: datetime
    until: datetime
    agents: tuple[str, ...] = ()
    """The agents it is for alone (a message to them): its ``teams`` are then empty."""
    read_by: tuple[tuple[str, datetime], ...] = ()
    """A message: those of its ``agents`` whose desktop showed it, and when first."""

    def for_team(self, team: str | None) -> bool:
        """Is it shown to an agent of ``team`` (None: an agent in no team)? A message to
        some agents is shown to no team."""
        return not self.agents and (not self.teams or team in self.teams)

    def for_agent(self, agent_id: str, team: str | None) -> bool:
        """Is it shown to agent ``agent_id`` of ``team``?"""
        return agent_id in self.agents if self.agents else self.for_team(team)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "text": self.text,
            "by": self.by,
            "teams": list(self.teams),
            "agents": list(self.agents),
            "posted": self.posted.isoformat(timespec="seconds"),
            "until": self.until.isoformat(timespec="seconds"),
            "read_by": {a: at.isoformat(timespec="seconds") for a, at in self.read_by},
        }


class NoticeStore(Protocol):
    def write_notice(self, notice: Notice) -> bool: ...

    def clear_notice(self, notice_id: str) -> bool: ...

    def mark_notice_read(self, notice_id: str, agent: str, at: datetime) -> bool: ...


class NoticeRecorder:
    """Event-bus listener writing each notice posted and deleting each taken down."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (NoticePosted, NoticeRead, NoticeTakenDown)

    def __init__(self, store: NoticeStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, NoticePosted):
            if event.until is None:
                return
            notice = Notice(
                event.notice_id,
                event.text,
                event.by,
                event.teams,
                event.at,
                event.until,
                event.agents,
            )
            write = functools.partial(self.store.write_notice, notice)
            self.writer.submit(f"notice:{event.notice_id}", write)
        elif isinstance(event, NoticeRead):
            read = functools.partial(
                self.store.mark_notice_read, event.notice_id, event.agent, event.at
            )
            self.writer.submit(f"notice:{event.notice_id}", read)
        elif isinstance(event, NoticeTakenDown):
            clear = functools.partial(self.store.clear_notice, event.notice_id)
            self.writer.submit(f"notice:{event.notice_id}", clear)


__all__ = ["Notice", "NoticeRecorder", "NoticeStore"]
