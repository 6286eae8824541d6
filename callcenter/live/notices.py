"""Notices: a line a supervisor posts for their agents ("Team meeting at 15:00", "The
billing system is down: take messages"), shown at the top of the agents' desktops and on
the wallboard until it expires or is taken down.

A notice is for teams (``agents.<id>.team``) or, with none named, for every agent; or a
message to some agents only (``agents``: a supervisor's word to one agent, shown on their
desktop alone, never on the wallboard). A supervisor with ``teams`` posts for those; one
without, for everyone. The API
(``POST /notices``) and the CLI (``callcenter notice post``) may name any teams.
:class:`NoticeBoard` keeps them, at most :data:`MAX_NOTICES` at once (the oldest go first),
and publishes :class:`~callcenter.events.NoticePosted` and
:class:`~callcenter.events.NoticeTakenDown` for webhooks, MQTT and browsers, and for the
records (:mod:`callcenter.records.notices`), from which a restarted daemon puts those still
standing back (:meth:`NoticeBoard.restore`).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from callcenter.errors import UnknownNotice
from callcenter.events import EventBus, NoticePosted, NoticeRead, NoticeTakenDown
from callcenter.records.notices import Notice

MAX_NOTICES: Final = 20
MAX_TEXT: Final = 280
"""Characters of one notice: a line, not a letter."""
MAX_MINUTES: Final = 24 * 60


class NoticeBoard:
    """The notices standing now (see the module docstring)."""

    def __init__(
        self, bus: EventBus, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._notices: dict[str, Notice] = {}

    def post(
        self,
        text: str,
        *,
        by: str,
        teams: Collection[str] = (),
        minutes: float = 60,
        agents: Collection[str] = (),
    ) -> Notice:
        """Put up ``text`` for ``teams`` (none: everyone), or for ``agents`` alone, for
        ``minutes``. ValueError says what is wrong with the text, the time or the
        audience."""
        if teams and agents:
            raise ValueError("a notice is for teams or for agents, not both")
        text = " ".join(text.split())
        if not text:
            raise ValueError("a notice needs some text")
        if len(text) > MAX_TEXT:
            raise ValueError(f"a notice is one line of at most {MAX_TEXT} characters")
        if not 1 <= minutes <= MAX_MINUTES:
            raise ValueError(f"a notice stands 1 to {MAX_MINUTES} minutes, not {minutes:g}")
        self._expire()
        while len(self._notices) >= MAX_NOTICES:
            self._drop(next(iter(self._notices)), by="board", why="replaced")  # the oldest
        now = self._clock()
        notice = Notice(
            id=secrets.token_hex(4),
            text=text,
            by=by,
            teams=tuple(sorted(set(teams))),
            posted=now,
            until=now + timedelta(minutes=minutes),
            agents=tuple(sorted(set(agents))),
        )
        self._notices[notice.id] = notice
        self._bus.publish(
            NoticePosted(
                notice_id=notice.id,
                text=notice.text,
                by=by,
                teams=notice.teams,
                until=notice.until,
                agents=notice.agents,
            )
        )
        return notice

    def restore(self, notices: Collection[Notice]) -> int:
        """Put back the notices a previous daemon had standing (the records'), without
        saying them again; those whose time is up are taken down (the records told).
        How many stand again."""
        now = self._clock()
        back = 0
        for notice in sorted(notices, key=lambda n: n.posted):
            if notice.until <= now:
                self._bus.publish(NoticeTakenDown(notice_id=notice.id, by="board", why="expired"))
                continue
            self._notices[notice.id] = notice
            back += 1
        while len(self._notices) > MAX_NOTICES:
            self._drop(next(iter(self._notices)), by="board", why="replaced")
        return back

    def read(self, notice_id: str, agent: str) -> bool:
        """``agent``'s desktop shows them message ``notice_id``: the first time, it is read
        (NoticeRead; True). Team notices are not followed (False)."""
        notice = self._notices.get(notice_id)
        if notice is None or agent not in notice.agents:
            return False
        if any(who == agent for who, _at in notice.read_by):
            return False
        now = self._clock()
        self._notices[notice_id] = dataclasses.replace(
            notice, read_by=(*notice.read_by, (agent, now))
        )
        self._bus.publish(NoticeRead(notice_id=notice_id, agent=agent, at=now))
        return True

    def forget_numbers(self, pattern: re.Pattern[str], tokens: Mapping[str, str]) -> None:
        """An erasure took these numbers out of the records: the notices standing say the
        tokens instead (the records' copies were changed with the rest)."""
        for notice_id, notice in list(self._notices.items()):
            text = pattern.sub(lambda found: tokens[found.group(0)], notice.text)
            if text != notice.text:
                self._notices[notice_id] = dataclasses.replace(notice, text=text)

    def take_down(self, notice_id: str, *, by: str) -> Notice:
        """Take notice ``notice_id`` down before its time; UnknownNotice when none stands."""
        self._expire()
        if notice_id not in self._notices:
            raise UnknownNotice(f"no notice {notice_id} stands (taken down, or its time is up)")
        return self._drop(notice_id, by=by, why="taken-down")

    def get(self, notice_id: str) -> Notice:
        self._expire()
        if notice_id not in self._notices:
            raise UnknownNotice(f"no notice {notice_id} stands (taken down, or its time is up)")
        return self._notices[notice_id]

    def standing(
        self, team: str | None = None, *, agent: str | None = None, everyone: bool = False
    ) -> list[Notice]:
        """The notices standing, newest first: those an agent of ``team`` sees (``agent``:
        that agent, messages to them included), or every one with ``everyone``."""
        self._expire()
        shown = [
            n
            for n in self._notices.values()
            if everyone or (n.for_agent(agent, team) if agent is not None else n.for_team(team))
        ]
        return shown[::-1]  # posted in turn: the newest last

    def _expire(self) -> None:
        now = self._clock()
        for notice in [n for n in self._notices.values() if n.until <= now]:
            self._drop(notice.id, by="board", why="expired")

    def _drop(self, notice_id: str, *, by: str, why: str) -> Notice:
        notice = self._notices.pop(notice_id)
        self._bus.publish(NoticeTakenDown(notice_id=notice_id, by=by, why=why))
        return notice


__all__ = ["MAX_MINUTES", "MAX_NOTICES", "MAX_TEXT", "Notice", "NoticeBoard"]
