"""Each queue's and each agent's figures since midnight (in ``ivr.timezone``), counted from
the engine's events as they happen: what a wallboard shows under "today" (MQTT's retained
figures, ``GET /wallboard``). Reports over any stretch of time read the records instead
(:mod:`callcenter.records.summary`); these are the live counters, gone at a restart.

A queue counts its inbound callers only: a campaign's lead or a person an agent dialled
is no caller of the queue (the agents' own figures count their talk all the same).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from callcenter.events import (
    AgentConnected,
    AgentDialAnswered,
    AgentRingFailed,
    AgentStateChanged,
    CallEnded,
    CampaignAnswered,
    CampaignLeadWaiting,
    EngineEvent,
    EventBus,
    QueueAbandoned,
    QueueExited,
    QueueJoined,
    SurveyEnded,
    TalkEnded,
)


@dataclass(slots=True)
class QueueDay:
    """One queue's counts since midnight."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    """Hung up within the queue's ``short_abandon`` seconds: not counted in ``abandoned``."""
    exited: int = 0
    in_service_level: int = 0
    wait_total: float = 0.0
    surveys: int = 0
    scored: int = 0
    score_total: int = 0

    @property
    def service_level_percent(self) -> float | None:
        """Answered within the queue's service level, of those answered (None: none yet)."""
        return round(100.0 * self.in_service_level / self.answered, 1) if self.answered else None

    @property
    def service_level_offered_percent(self) -> float | None:
        """Answered within the queue's service level, of the callers whose wait is over
        (answered, abandoned or taken out by a queue rule), as ``report --queues`` counts
        it: those who gave up count against it, short abandons do not (None: none yet)."""
        over = self.answered + self.abandoned + self.exited
        return round(100.0 * self.in_service_level / over, 1) if over else None

    def as_dict(self, day: date) -> dict[str, Any]:
        return {
            "date": day.isoformat(),
            "surveys": self.surveys,
            "survey_score": _mean_score(self.score_total, self.scored),
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "exited": self.exited,
            "answered_in_service_level": self.in_service_level,
            "service_level_percent": self.service_level_percent,
            "service_level_offered_percent": self.service_level_offered_percent,
            "average_wait": round(self.wait_total / self.answered, 1) if self.answered else None,
        }


@dataclass(slots=True)
class AgentDay:
    """One agent's figures since midnight."""

    calls: int = 0
    missed: int = 0
    talk_seconds: float = 0.0
    paused_seconds: float = 0.0
    wrapup_seconds: float = 0.0
    surveys: int = 0
    scored: int = 0
    score_total: int = 0

    def as_dict(self, day: date) -> dict[str, Any]:
        return {
            "date": day.isoformat(),
            "surveys": self.surveys,
            "survey_score": _mean_score(self.score_total, self.scored),
            "calls": self.calls,
            "missed": self.missed,
            "talk_seconds": round(self.talk_seconds),
            "paused_seconds": round(self.paused_seconds),
            "wrapup_seconds": round(self.wrapup_seconds),
        }


def is_short_abandon(short_abandon: Callable[[str], float] | None, e: QueueAbandoned) -> bool:
    """Did the caller of ``e`` hang up within their queue's ``short_abandon`` seconds?"""
    if short_abandon is None:
        return False
    limit = short_abandon(e.queue)
    return limit > 0 and e.wait_seconds <= limit


def _mean_score(total: int, scored: int) -> float | None:
    return round(total / scored, 2) if scored else None


class Today:
    """The day's counters; subscribe :meth:`on_event` to the bus (with :meth:`kinds`)."""

    def __init__(
        self,
        service_level: Callable[[str], float],
        timezone: str = "UTC",
        short_abandon: Callable[[str], float] | None = None,
    ) -> None:
        self._service_level = service_level
        self._short_abandon = short_abandon
        """A queue's ``short_abandon`` seconds (None: no queue has any)."""
        self._zone = ZoneInfo(timezone)
        self.day = self._date()
        """The day the counters are of."""
        self._queues: dict[str, QueueDay] = {}
        self._agents: dict[str, AgentDay] = {}
        self._leads: set[str] = set()
        """Calls of campaign leads and agents' own dials: not the queues' callers."""
        self._paused_at: dict[str, float] = {}
        self._wrapup_at: dict[str, float] = {}

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events the counters read (``EventBus.subscribe``'s ``kinds``)."""
        return tuple(_HANDLERS)

    def subscribe(self, bus: EventBus) -> None:
        """Have ``bus`` call each event's handler straight away: one call per event on the
        calls' path, not a dispatch through :meth:`on_event` as well."""
        for kind, handler in _HANDLERS.items():
            bus.subscribe(types.MethodType(handler, self), kinds=(kind,))

    def on_event(self, event: EngineEvent) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def roll(self) -> date:
        """Start afresh when midnight has passed since the counters' day; that day."""
        today = self._date()
        if today != self.day:
            self.day = today
            self._queues.clear()
            self._agents.clear()
        return self.day

    def queue(self, name: str) -> QueueDay:
        """A queue's counts today (zeros for a queue without a call yet)."""
        return self._queues.get(name) or QueueDay()

    def agent(self, agent_id: str) -> AgentDay:
        """An agent's figures today."""
        return self._agents.get(agent_id) or AgentDay()

    def _date(self) -> date:
        return datetime.now(self._zone).date()

    def _count(self, queue: str) -> QueueDay:
        day = self._queues.get(queue)
        if day is None:
            day = self._queues[queue] = QueueDay()
        return day

    def _agent(self, agent: str) -> AgentDay:
        day = self._agents.get(agent)
        if day is None:
            day = self._agents[agent] = AgentDay()
        return day

    def _on_state(self, e: AgentStateChanged) -> None:
        if e.new == "paused":
            self._paused_at[e.agent] = e.mono
        elif e.old == "paused" and e.agent in self._paused_at:
            self._agent(e.agent).paused_seconds += e.mono - self._paused_at.pop(e.agent)
        if e.new == "wrap_up":
            self._wrapup_at[e.agent] = e.mono
        elif e.old == "wrap_up" and e.agent in self._wrapup_at:
            self._agent(e.agent).wrapup_seconds += e.mono - self._wrapup_at.pop(e.agent)

    def _on_ring_failed(self, e: AgentRingFailed) -> None:
        self._agent(e.agent).missed += 1

    def _on_talk_ended(self, e: TalkEnded) -> None:
        self._agent(e.agent).talk_seconds += e.talk_seconds

    def _on_lead(self, e: CampaignAnswered | CampaignLeadWaiting | AgentDialAnswered) -> None:
        self._leads.add(e.call_id)

    def _on_call_ended(self, e: CallEnded) -> None:
        self._leads.discard(e.call_id)

    def _on_joined(self, e: QueueJoined) -> None:
        if e.call_id not in self._leads:
            self._count(e.queue).offered += 1

    def _on_connected(self, e: AgentConnected) -> None:
        if e.call_id not in self._leads:
            day = self._count(e.queue)
            day.answered += 1
            day.wait_total += e.wait_seconds
            if e.wait_seconds <= self._service_level(e.queue):
                day.in_service_level += 1
        self._agent(e.agent).calls += 1

    def _on_abandoned(self, e: QueueAbandoned) -> None:
        if e.call_id not in self._leads:
            if is_short_abandon(self._short_abandon, e):
                self._count(e.queue).short_abandoned += 1
            else:
                self._count(e.queue).abandoned += 1

    def _on_exited(self, e: QueueExited) -> None:
        if e.call_id not in self._leads:
            self._count(e.queue).exited += 1

    def _on_survey(self, e: SurveyEnded) -> None:
        for day in (self._count(e.queue), self._agent(e.agent)):
            day.surveys += 1
            if e.score is not None:
                day.scored += 1
                day.score_total += e.score


_HANDLERS: Final[dict[type[EngineEvent], Callable[[Today, Any], None]]] = {
    AgentStateChanged: Today._on_state,
    AgentRingFailed: Today._on_ring_failed,
    TalkEnded: Today._on_talk_ended,
    CampaignAnswered: Today._on_lead,
    CampaignLeadWaiting: Today._on_lead,
    AgentDialAnswered: Today._on_lead,
    CallEnded: Today._on_call_ended,
    QueueJoined: Today._on_joined,
    AgentConnected: Today._on_connected,
    QueueAbandoned: Today._on_abandoned,
    QueueExited: Today._on_exited,
    SurveyEnded: Today._on_survey,
}
"""What each engine event changes in the day's counters; the others change none."""
