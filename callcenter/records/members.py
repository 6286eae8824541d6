"""Changes to queues' members as records: the ``queue_members`` table.

:class:`MemberRecorder` listens to QueueMemberChanged: a change kept on top of the config
(``agent join`` / ``agent leave``) is stored, one row per queue and agent, replaced at each
change; a change that brings the config's own membership back deletes the row. A
restarted daemon reads the rows back (:meth:`~callcenter.daemon.Daemon.start`): an agent
moved into the support queue for the afternoon stays there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.acd.rules import MemberChange
from callcenter.events import EngineEvent, QueueMemberChanged
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class MemberState:
    """A kept change to ``queue``'s members: ``agent`` in it (``member``) or out, at
    ``penalty`` (None: the config's), paused in it (``paused``: why; None: not), since
    ``changed`` (UTC), made ``via``."""

    queue: str
    agent: str
    member: bool
    penalty: int | None
    changed: datetime
    via: str = ""
    paused: str | None = None

    def change(self) -> MemberChange:
        return MemberChange(self.queue, self.agent, self.member, self.penalty, self.paused)


class MemberStore(Protocol):
    def write_member_change(self, state: MemberState) -> bool: ...

    def clear_member_change(self, queue: str, agent: str) -> bool: ...


class MemberRecorder:
    """Event-bus listener writing each change through ``writer``."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (QueueMemberChanged,)

    def __init__(self, store: MemberStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        if not isinstance(event, QueueMemberChanged):
            return
        key = f"member:{event.queue}:{event.agent}"
        if event.kept:
            state = MemberState(
                event.queue,
                event.agent,
                event.member,
                event.penalty,
                event.at,
                event.via,
                event.paused,
            )
            self.writer.submit(key, functools.partial(self.store.write_member_change, state))
        else:
            self.writer.submit(
                key, functools.partial(self.store.clear_member_change, event.queue, event.agent)
            )
