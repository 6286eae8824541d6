"""Break limits: at most ``teams.<t>.max_paused`` of a team on a break at once, and the line
of those waiting for one (``teams.<t>.break_line``).

An agent asking for a break (desktop, API, CLI, ``*73``, an open line's key) over their
team's limit is refused, told how many are away; with the team's ``break_line`` on they are
put in line instead, and the first in line goes on their break (with the reason they asked
with) as soon as a teammate is back: unpaused, logged out, or the limit raised by a reload.
Asking again, or asking to be ready, takes them out of the line; so does a pause someone else
puts them on, a logout, and a reload that takes the team's line (or limit) away. A pause a
supervisor or ``autopause`` puts an agent on is never refused and never waits (it counts as
away for the others). A supervisor may move an agent up or down the line (:meth:`Breaks.move`:
one whose break cannot wait, a lunch before a meeting). The lines are kept with the agents'
presence in the records: a restarted daemon takes them back (:meth:`Breaks.restore`).

The switchboard owns one :class:`Breaks` (``Switchboard.breaks``), subscribed to the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Final

import structlog

from callcenter.acd.agent import AgentState
from callcenter.acd.router import Router
from callcenter.config.models import CallCenterConfig
from callcenter.errors import EngineError
from callcenter.events import (
    AgentLoggedOut,
    AgentPaused,
    AgentStateChanged,
    AgentUnpaused,
    BreakLinedUp,
    BreakLineLeft,
    EngineEvent,
    EventBus,
)

log = structlog.get_logger(__name__)

LINE_VIA: Final = "break-line"
"""``via`` of the pause the line starts: the agent asked for it earlier."""
LINE_DROPPED: Final = "line-dropped"
"""``why`` of BreakLineLeft for those in a line a reload took away (no ``break_line``, no
limit, no team any more): they ask again, and go at once if the team is under its limit."""


class Breaks:
    """Who of each team with a break limit is away, and who waits for a break."""

    def __init__(
        self, config: Callable[[], CallCenterConfig], router: Router, bus: EventBus
    ) -> None:
        self._config = config
        self._router = router
        self._bus = bus
        self._lines: dict[str, list[tuple[str, str, str]]] = {}
        """Team -> (agent, reason, via) in the order they asked."""
        bus.subscribe(
            self.on_event, kinds=(AgentUnpaused, AgentLoggedOut, AgentPaused, AgentStateChanged)
        )

    # ------------------------------------------------------------------ figures

    def taken(self, teams: Collection[str] | None = None) -> dict[str, tuple[int, int]]:
        """Team -> (its agents paused or with a pause pending, its ``max_paused``), for the
        teams with a break limit (of ``teams`` only when given). O(agents)."""
        config = self._config()
        out: dict[str, tuple[int, int]] = {}
        for team, rules in config.teams.items():
            if rules.max_paused is None or (teams is not None and team not in teams):
                continue
            away = 0
            for agent_id, agent in self._router.agents.items():
                mate = config.agents.get(agent_id)
                if mate is None or mate.team != team:
                    continue
                if agent.state is AgentState.PAUSED or agent.pending_pause is not None:
                    away += 1
            out[team] = (away, rules.max_paused)
        return out

    def refused(self, agent_id: str) -> str | None:
        """Why ``agent_id`` may not go on a break now (their team's ``max_paused`` agents
        are paused, or will be once their call ends), or None when they may."""
        team = self._team_of(agent_id)
        if team is None:
            return None
        limit = self._config().teams[team].max_paused
        assert limit is not None  # _team_of keeps only limited teams
        me = self._router.agents.get(agent_id)
        mine = me is not None and (me.state is AgentState.PAUSED or me.pending_pause is not None)
        away = self.taken([team])[team][0] - int(mine)
        if away < limit:
            return None
        return f"{away} of team {team} are on a break (at most {limit} at once): " + (
            "you are in line for one"
            if self._config().teams[team].break_line
            else "ask again when one is back"
        )

    def place(self, agent_id: str) -> int | None:
        """``agent_id``'s place in their team's line for a break (1: next), None when not
        in one."""
        team = self._team_of(agent_id)
        line = self._lines.get(team, []) if team is not None else []
        for n, (waiting, _reason, _via) in enumerate(line, start=1):
            if waiting == agent_id:
                return n
        return None

    def lines(self) -> dict[str, list[str]]:
        """Team -> the agents waiting for a break, first first (teams with someone in line)."""
        return {team: [a for a, _r, _v in line] for team, line in self._lines.items() if line}

    # ------------------------------------------------------------------ asking

    def pause(self, agent_id: str, reason: str, *, via: str) -> int | None:
        """The agent asks for a break: paused now (or once their call is over) and None,
        or put in their team's line and their place returned (``break_line``). Raises
        EngineError with :meth:`refused`'s reason when the limit holds and the team keeps no
        line; a pause that is no break (their supervisor's, ``autopause``) goes through
        ``Router.pause`` directly."""
        refused = self.refused(agent_id)
        if refused is None:
            self.leave(agent_id, why="paused")
            self._router.pause(agent_id, reason, via=via)
            return None
        team = self._team_of(agent_id)
        assert team is not None  # refused only in a limited team
        if not self._config().teams[team].break_line:
            raise EngineError(refused)
        agent = self._router.agents[agent_id]
        if agent.state is AgentState.LOGGED_OUT:
            raise EngineError(f"agent {agent_id} is logged out and cannot pause")
        line = self._lines.setdefault(team, [])
        place = self.place(agent_id)
        if place is None:
            line.append((agent_id, reason, via))
            place = len(line)
        else:
            # Asking again keeps the place; the break starts with the reason asked last.
            line[place - 1] = (agent_id, reason, via)
        self._lined_up(agent_id, team, reason, place, via)
        log.info("break_lined_up", agent=agent_id, team=team, reason=reason, place=place, via=via)
        return place

    def move(self, agent_id: str, place: int, *, via: str) -> int:
        """Move ``agent_id`` to ``place`` in their team's line (1: next; past the end: last);
        their place now. The agents between move one place down (or up); each moved is
        told their new place (``BreakLinedUp``). EngineError when they wait in no line."""
        team = self._team_of(agent_id)
        now = self.place(agent_id)
        if team is None or now is None:
            raise EngineError(f"agent {agent_id} is not waiting for a break")
        line = self._lines[team]
        before = [entry[0] for entry in line]
        entry = line.pop(now - 1)
        line.insert(min(max(1, place), len(line) + 1) - 1, entry)
        log.info(
            "break_line_reordered", agent=agent_id, team=team, place=self.place(agent_id), via=via
        )
        for n, (waiting, reason, asked) in enumerate(line, start=1):
            if before[n - 1] != waiting:
                self._lined_up(waiting, team, reason, n, via if waiting == agent_id else asked)
        return self.place(agent_id) or 0

    def restore(self, agent_id: str, team: str, reason: str, via: str) -> bool:
        """A restarted daemon puts ``agent_id`` back at the end of ``team``'s line (call it
        in the order of the line), as they asked before the restart; False when that line
        is no more (the team, its limit or its ``break_line`` gone, or the agent moved to
        another team) or the agent is not logged in. The caller lets the line move after
        (:meth:`let_next`)."""
        if self._team_of(agent_id) != team or not self._config().teams[team].break_line:
            log.info("break_line_not_resumed", agent=agent_id, team=team)
            return False
        agent = self._router.agents.get(agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OUT or self.place(agent_id):
            return False
        line = self._lines.setdefault(team, [])
        line.append((agent_id, reason, via))
        self._lined_up(agent_id, team, reason, len(line), via)
        return True

    def unpause(self, agent_id: str, *, via: str) -> bool:
        """The agent is ready: out of the line (True) when they waited in one, else
        ``Router.unpause`` (a pending pause dropped lets the next in line go)."""
        if self.leave(agent_id, why=f"ready:{via}"):
            return True
        self._router.unpause(agent_id, via=via)
        self.let_next()
        return False

    def leave(self, agent_id: str, *, why: str) -> bool:
        """Take ``agent_id`` out of any line (``why``: ``ready:<via>``, ``paused``,
        ``logged-out``); True when they were in one."""
        for team, line in self._lines.items():
            for n, entry in enumerate(line):
                if entry[0] == agent_id:
                    del line[n]
                    log.info("break_line_left", agent=agent_id, team=team, why=why)
                    self._bus.publish(
                        BreakLineLeft(agent=agent_id, team=team, why=why, mono=self._router.now())
                    )
                    return True
        return False

    # ------------------------------------------------------------------ the line moves

    def on_event(self, event: EngineEvent) -> None:
        """Bus listener: a teammate back lets the next in line go; a lined agent paused by
        someone else or logged out leaves the line."""
        if not any(self._lines.values()):
            return
        if isinstance(event, AgentLoggedOut):
            self.leave(event.agent, why="logged-out")
        elif isinstance(event, AgentPaused) and event.via != LINE_VIA:
            self.leave(event.agent, why="paused")
        if isinstance(event, AgentUnpaused | AgentLoggedOut | AgentStateChanged):
            self._soon(self.let_next)

    def let_next(self) -> None:
        """Put the first in each line on their break while their team is under its limit
        (also after a reload that raised a limit or dropped a line)."""
        config = self._config()
        for team in list(self._lines):
            rules = config.teams.get(team)
            line = self._lines[team]
            if rules is None or rules.max_paused is None or not rules.break_line:
                if line:
                    log.info("break_line_dropped", team=team, agents=[a for a, _r, _v in line])
                del self._lines[team]
                for agent_id, _reason, _via in line:
                    self._bus.publish(
                        BreakLineLeft(
                            agent=agent_id, team=team, why=LINE_DROPPED, mono=self._router.now()
                        )
                    )
                continue
            while line and self.taken([team])[team][0] < rules.max_paused:
                agent_id, reason, via = line.pop(0)
                agent = self._router.agents.get(agent_id)
                if agent is None or agent.state is AgentState.LOGGED_OUT:
                    continue
                log.info("break_line_moved", agent=agent_id, team=team, reason=reason, asked=via)
                self._router.pause(agent_id, reason, via=LINE_VIA)

    # ------------------------------------------------------------------ inside

    def _lined_up(self, agent_id: str, team: str, reason: str, place: int, via: str) -> None:
        """Say where ``agent_id`` waits now (BreakLinedUp: their desktop, the records)."""
        self._bus.publish(
            BreakLinedUp(
                agent=agent_id,
                team=team,
                reason=reason,
                place=place,
                via=via,
                mono=self._router.now(),
            )
        )

    def _team_of(self, agent_id: str) -> str | None:
        """The agent's team when it has a break limit."""
        config = self._config()
        settings = config.agents.get(agent_id)
        team = settings.team if settings is not None else None
        rules = config.teams.get(team) if team is not None else None
        if rules is None or rules.max_paused is None:
            return None
        return team

    @staticmethod
    def _soon(work: Callable[[], None]) -> None:
        # After the event that freed a place has reached every listener: a pause published
        # from inside the bus would reach the later listeners before the unpause.
        try:
            asyncio.get_running_loop().call_soon(work)
        except RuntimeError:
            work()
