"""Agent shifts, pauses and after-call work as records: one row per login..logout, one
per pause, one per wrap-up.

:class:`ShiftRecorder` listens to AgentLoggedIn/AgentLoggedOut/AgentPaused/AgentUnpaused and
writes :class:`AgentSession` and :class:`AgentPause` rows through the same
:class:`~callcenter.records.writer.RecordWriter` as the CDRs. A pause still open at logout
ends at the logout; a new AgentPaused while paused (a reason change) ends the previous pause.
A wrap-up (after-call work) runs from the agent's AgentStateChanged into ``wrap_up`` to the
one out of it, and names the call it followed (the agent's last TalkEnded). Durations come
from the events' monotonic clock.

It also keeps one :class:`AgentPresence` row per agent logged in now (``agent_presence``):
login time, pause and how each was done, and the call that still waits for the agent's
disposition (DispositionOwed until CallDisposed), deleted at logout. A restarted daemon reads
them and resumes those shifts (:meth:`~callcenter.acd.router.Router.resume`), owed codes
included, instead of starting with every agent logged out and their open shifts lost.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

import structlog

from callcenter.events import (
    AgentEvent,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentStateChanged,
    AgentUnpaused,
    BreakLinedUp,
    BreakLineLeft,
    CallDisposed,
    DispositionOwed,
    EngineEvent,
    TalkEnded,
)
from callcenter.records.writer import RecordWriter

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AgentSession:
    """One shift. Datetimes are UTC."""

    agent: str
    login: datetime
    logout: datetime
    duration_seconds: float
    via_login: str
    via_logout: str


@dataclass(frozen=True, slots=True)
class AgentPause:
    """One pause (break, lunch...). Datetimes are UTC."""

    agent: str
    reason: str
    start: datetime
    end: datetime
    duration_seconds: float
    via_pause: str
    via_unpause: str


@dataclass(frozen=True, slots=True)
class AgentWrapup:
    """One stretch of after-call work (wrap-up), after ``call_id``. Datetimes are UTC."""

    agent: str
    start: datetime
    end: datetime
    duration_seconds: float
    call_id: str = ""


WRAP_UP: Final = "wrap_up"
"""The agent state of after-call work (``AgentState.WRAP_UP``'s value)."""


@dataclass(frozen=True, slots=True)
class OwedCode:
    """The call an agent still owes its disposition, with what the code needs of it."""

    call_id: str
    number: str = ""
    queue: str = ""
    campaign: str = ""
    lead: str = ""

    @classmethod
    def of(cls, event: DispositionOwed) -> OwedCode:
        return cls(event.call_id, event.number, event.queue, event.campaign, event.lead)

    def owed_by(self, agent: str) -> DispositionOwed:
        """The event saying ``agent`` owes this code (a restarted daemon publishes it)."""
        return DispositionOwed(
            agent=agent,
            call_id=self.call_id,
            number=self.number,
            queue=self.queue,
            campaign=self.campaign,
            lead=self.lead,
        )


@dataclass(frozen=True, slots=True)
class AgentPresence:
    """An agent logged in now: since when and how, and the pause they are on, if any
    (datetimes UTC). What a restarted daemon takes back (:meth:`Router.resume`)."""

    agent: str
    logged_in: datetime
    via_login: str
    pause_reason: str | None = None
    paused_at: datetime | None = None
    via_pause: str = ""
    owed: OwedCode | None = None
    """The call whose disposition the agent still owes."""
    device: str = ""
    """The phone the agent logged in at (another than their own when hot-desking)."""
    line: BreakLine | None = None
    """The team's line for a break the agent waits in (``break_line``), and where."""


@dataclass(frozen=True, slots=True)
class BreakLine:
    """An agent's place in their team's line for a break, as a restart takes it back."""

    team: str
    reason: str
    via: str
    place: int
    since: datetime
    """When they first lined up (the order of two with the same place, oldest first)."""


class ShiftStore(Protocol):
    """Where shift rows go (blocking calls, run in the writer's thread)."""

    def write_agent_session(self, session: AgentSession) -> bool: ...

    def write_agent_pause(self, pause: AgentPause) -> bool: ...

    def write_agent_wrapup(self, wrapup: AgentWrapup) -> bool: ...

    def write_agent_presence(self, presence: AgentPresence) -> bool: ...

    def clear_agent_presence(self, agent: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Opened:
    at: datetime
    mono: float
    via: str
    reason: str = ""
    call: str = ""


class ShiftRecorder:
    """Event-bus listener writing agent sessions and pauses.

    ``writer`` is usually the CDR recorder's (``ShiftRecorder(store, recorder.writer)``);
    starting and closing it is its owner's job.
    """

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (TalkEnded, CallDisposed, AgentEvent)

    def __init__(self, store: ShiftStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer
        self._sessions: dict[str, _Opened] = {}
        self._pauses: dict[str, _Opened] = {}
        self._owed: dict[str, OwedCode] = {}
        self._devices: dict[str, str] = {}
        self._wrapups: dict[str, _Opened] = {}
        self._last_call: dict[str, str] = {}
        self._lines: dict[str, list[str]] = {}
        """Team -> the agents in its line for a break, first first (a fold of the events)."""
        self._lined: dict[str, BreakLine] = {}
        """Agent -> their line's team, the reason and via they asked with, since when."""

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, TalkEnded):
            self._last_call[event.agent] = event.call_id
            return
        if isinstance(event, AgentStateChanged):
            self._wrapup_moved(event)
            return
        if isinstance(event, CallDisposed):
            owed = self._owed.get(event.agent)
            if owed is not None and owed.call_id == event.call_id:
                del self._owed[event.agent]
                self._present(event.agent)
            return
        if not isinstance(event, AgentEvent):
            return
        if isinstance(event, DispositionOwed):
            self._owed[event.agent] = OwedCode.of(event)
            self._present(event.agent)
            return
        if isinstance(event, BreakLinedUp):
            self._lined_up(event)
            return
        if isinstance(event, BreakLineLeft):
            self._out_of_line(event.agent)
            self._present(event.agent)
            return
        if isinstance(event, AgentPaused | AgentLoggedOut):
            self._out_of_line(event.agent)
        if isinstance(event, AgentLoggedIn):
            self._end_pause(event, via=event.via)
            self._sessions[event.agent] = _Opened(event.at, event.mono, event.via)
            self._devices[event.agent] = event.device
            self._present(event.agent)
        elif isinstance(event, AgentLoggedOut):
            self._end_pause(event, via=event.via)
            self._end_session(event)
            self._owed.pop(event.agent, None)
            self._devices.pop(event.agent, None)
            write = functools.partial(self.store.clear_agent_presence, event.agent)
            self.writer.submit(f"presence:{event.agent}", write)
        elif isinstance(event, AgentPaused):
            self._end_pause(event, via=event.via)
            self._pauses[event.agent] = _Opened(event.at, event.mono, event.via, event.reason)
            self._present(event.agent)
        elif isinstance(event, AgentUnpaused):
            self._end_pause(event, via=event.via)
            self._present(event.agent)

    def _wrapup_moved(self, event: AgentStateChanged) -> None:
        if event.new == WRAP_UP and event.old != WRAP_UP:
            call = self._last_call.get(event.agent, "")
            self._wrapups[event.agent] = _Opened(event.at, event.mono, "", call=call)
            return
        opened = self._wrapups.pop(event.agent, None) if event.old == WRAP_UP else None
        if opened is None:
            return
        wrapup = AgentWrapup(
            agent=event.agent,
            start=opened.at,
            end=event.at,
            duration_seconds=round(max(0.0, event.mono - opened.mono), 3),
            call_id=opened.call,
        )
        write = functools.partial(self.store.write_agent_wrapup, wrapup)
        self.writer.submit(f"wrapup:{event.agent}:{opened.at.isoformat()}", write)

    def _lined_up(self, event: BreakLinedUp) -> None:
        """``event.agent`` is at ``event.place`` of their team's line: every place of that
        line is written again (those behind moved)."""
        kept = self._lined.get(event.agent)
        self._out_of_line(event.agent, write=False)
        line = self._lines.setdefault(event.team, [])
        line.insert(min(max(1, event.place), len(line) + 1) - 1, event.agent)
        since = kept.since if kept is not None and kept.team == event.team else event.at
        self._lined[event.agent] = BreakLine(event.team, event.reason, event.via, 0, since)
        for waiting in line:
            self._present(waiting)

    def _out_of_line(self, agent: str, *, write: bool = True) -> None:
        """``agent`` left their team's line (for their break, or not): the places of those
        behind them are written again."""
        lined = self._lined.pop(agent, None)
        if lined is None:
            return
        line = self._lines.get(lined.team, [])
        if agent in line:
            at = line.index(agent)
            line.remove(agent)
            if write:
                for waiting in line[at:]:
                    self._present(waiting)

    def _line_of(self, agent: str) -> BreakLine | None:
        lined = self._lined.get(agent)
        if lined is None:
            return None
        line = self._lines.get(lined.team, [])
        place = line.index(agent) + 1 if agent in line else 0
        return BreakLine(lined.team, lined.reason, lined.via, place, lined.since)

    def _present(self, agent: str) -> None:
        """Write who is logged in now, as the open session, pause and line say."""
        session = self._sessions.get(agent)
        if session is None:
            return  # logged in before this process and not resumed: nothing to say
        pause = self._pauses.get(agent)
        presence = AgentPresence(
            agent=agent,
            logged_in=session.at,
            via_login=session.via,
            pause_reason=pause.reason if pause is not None else None,
            paused_at=pause.at if pause is not None else None,
            via_pause=pause.via if pause is not None else "",
            owed=self._owed.get(agent),
            device=self._devices.get(agent, ""),
            line=self._line_of(agent),
        )
        write = functools.partial(self.store.write_agent_presence, presence)
        self.writer.submit(f"presence:{agent}", write)

    def _end_session(self, event: AgentLoggedOut) -> None:
        opened = self._sessions.pop(event.agent, None)
        if opened is not None:
            login, duration, via_login = opened.at, event.mono - opened.mono, opened.via
        else:
            # Logged in before this process started: trust the router's shift length.
            duration = event.shift_seconds
            login, via_login = event.at - timedelta(seconds=duration), ""
        session = AgentSession(
            agent=event.agent,
            login=login,
            logout=event.at,
            duration_seconds=round(max(0.0, duration), 3),
            via_login=via_login,
            via_logout=event.via,
        )
        key = f"session:{event.agent}:{login.isoformat()}"
        self.writer.submit(key, functools.partial(self.store.write_agent_session, session))
        log.debug("agent_session_recorded", agent=event.agent, seconds=session.duration_seconds)

    def _end_pause(self, event: AgentEvent, *, via: str) -> None:
        opened = self._pauses.pop(event.agent, None)
        if opened is None:
            return
        pause = AgentPause(
            agent=event.agent,
            reason=opened.reason,
            start=opened.at,
            end=event.at,
            duration_seconds=round(max(0.0, event.mono - opened.mono), 3),
            via_pause=opened.via,
            via_unpause=via,
        )
        key = f"pause:{event.agent}:{opened.at.isoformat()}"
        self.writer.submit(key, functools.partial(self.store.write_agent_pause, pause))
