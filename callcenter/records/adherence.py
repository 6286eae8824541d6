"""Schedule adherence (``report --adherence``): the agents' schedules
(``agents.<id>.schedule``) against when they were logged in and paused.

A pure fold of the agents' stretches (the ``agent_sessions`` and ``agent_pauses`` tables,
and who is logged in or paused now) over their scheduled stretches
(:mod:`callcenter.acd.schedule`), per agent and day (the schedule's own time zone):

* ``scheduled``: the seconds the schedule has that day (within the report's period);
* ``logged_in``: of those, the seconds the agent was logged in; ``paused``: of those, the
  seconds they were paused (a break, lunch, training: whatever the reason);
* ``adherence``: ready (logged in and not paused) as a percent of ``scheduled``;
* ``outside``: the seconds logged in that day outside the schedule (early, late, a day
  off);
* ``late``: from the day's first scheduled start to the first scheduled moment they were
  logged in (0: on time; None: not logged in during it at all).

Days with neither a schedule nor a login are left out; agents without a schedule too.
:func:`scheduled_per_period` counts the agents scheduled per queue and hour, for staffing
(:func:`scheduled_agents` with the queues' members as the records keep them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Protocol

from callcenter.acd.schedule import Schedule, schedule_of, stretches_between
from callcenter.config.models import CallCenterConfig
from callcenter.records.members import MemberState
from callcenter.records.summary import Periods, Stretch

Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class AdherenceDay:
    """One agent's day against their schedule (see the module doc; seconds)."""

    agent: str
    name: str
    day: date
    scheduled: float
    logged_in: float
    paused: float
    outside: float
    late: float | None

    @property
    def adherence(self) -> float | None:
        """Ready (logged in, not paused) as a percent of the scheduled time; None when
        nothing was scheduled."""
        if self.scheduled <= 0:
            return None
        return round(100.0 * (self.logged_in - self.paused) / self.scheduled, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "name": self.name,
            "day": self.day.isoformat(),
            "scheduled_seconds": round(self.scheduled),
            "logged_in_seconds": round(self.logged_in),
            "paused_seconds": round(self.paused),
            "adherence_percent": self.adherence,
            "outside_seconds": round(self.outside),
            "late_seconds": None if self.late is None else round(self.late),
        }


def adherence_days(
    schedules: Mapping[str, Schedule],
    sessions: Iterable[Stretch],
    pauses: Iterable[Stretch],
    since: datetime,
    until: datetime,
    *,
    names: Mapping[str, str] | None = None,
) -> list[AdherenceDay]:
    """The days of every agent of ``schedules`` from ``since`` to ``until``, by agent and
    day; a stretch still going (``end`` None) counts up to ``until``."""
    logged: dict[str, list[Span]] = {}
    for stretch in sessions:
        logged.setdefault(stretch.agent, []).append((stretch.start, stretch.end or until))
    resting: dict[str, list[Span]] = {}
    for stretch in pauses:
        resting.setdefault(stretch.agent, []).append((stretch.start, stretch.end or until))
    days: list[AdherenceDay] = []
    for agent in sorted(schedules):
        schedule = schedules[agent]
        day = since.astimezone(schedule.zone).date()
        last = until.astimezone(schedule.zone).date()
        while day <= last:
            opens = datetime.combine(day, time(), tzinfo=schedule.zone)
            closes = datetime.combine(day + timedelta(days=1), time(), tzinfo=schedule.zone)
            # In UTC: a day the clocks change has 23 or 25 hours.
            window = (max(opens, since).astimezone(UTC), min(closes, until).astimezone(UTC))
            if window[0] < window[1]:
                planned = list(stretches_between(schedule, *window))
                found = _day(planned, window, logged.get(agent, []), resting.get(agent, []))
                if found is not None:
                    days.append(AdherenceDay(agent, (names or {}).get(agent, ""), day, *found))
            day += timedelta(days=1)
    return days


def _day(
    planned: Sequence[Span], window: Span, sessions: Sequence[Span], pauses: Sequence[Span]
) -> tuple[float, float, float, float, float | None] | None:
    """(scheduled, logged in, paused, outside, late) of one day's ``window``; None when
    nothing was scheduled nor worked."""
    worked = _clip(sessions, window)
    if not planned and not worked:
        return None
    scheduled = _length(planned)
    logged_in = _overlap(worked, planned)
    paused = _overlap(_clip(pauses, window), planned)
    outside = _length(worked) - logged_in
    first_in = [
        max(start, plan_start)
        for start, end in worked
        for plan_start, plan_end in planned
        if start < plan_end and plan_start < end
    ]
    late = (min(first_in) - planned[0][0]).total_seconds() if first_in and planned else None
    return scheduled, logged_in, min(paused, logged_in), outside, late


def _clip(spans: Iterable[Span], window: Span) -> list[Span]:
    clipped = ((max(start, window[0]), min(end, window[1])) for start, end in spans)
    return sorted((start, end) for start, end in clipped if start < end)


def _length(spans: Iterable[Span]) -> float:
    return sum((end - start).total_seconds() for start, end in spans)


def _overlap(first: Iterable[Span], second: Sequence[Span]) -> float:
    """Seconds in both (each side's spans do not overlap one another)."""
    total = 0.0
    for start, end in first:
        for other_start, other_end in second:
            low, high = max(start, other_start), min(end, other_end)
            if low < high:
                total += (high - low).total_seconds()
    return total


def scheduled_per_period(
    schedules: Mapping[str, Schedule], members: Mapping[str, Collection[str]], periods: Periods
) -> dict[tuple[str, str], float]:
    """(period label, queue) -> the agents of ``members[queue]`` scheduled in that period,
    on average over it (their scheduled seconds in it over its length within the report):
    what ``report --queues --by hour --staffing`` sets beside the agents needed. An agent
    in two queues counts in each."""
    lengths: dict[str, float] = {}
    for label, seconds in periods.spans(periods.since, periods.until):
        lengths[label] = lengths.get(label, 0.0) + seconds
    per_agent: dict[str, dict[str, float]] = {}
    for agent, schedule in schedules.items():
        seen = per_agent.setdefault(agent, {})
        for start, end in stretches_between(schedule, periods.since, periods.until):
            for label, seconds in periods.spans(start, end):
                seen[label] = seen.get(label, 0.0) + seconds
    out: dict[tuple[str, str], float] = {}
    for queue, agents in members.items():
        for agent in agents:
            for label, seconds in per_agent.get(agent, {}).items():
                key = (label, queue)
                out[key] = out.get(key, 0.0) + seconds / lengths[label]
    return out


class MembersStore(Protocol):
    def fetch_member_changes(self) -> list[MemberState]: ...


class PeriodRow(Protocol):
    @property
    def period(self) -> str: ...

    @property
    def queue(self) -> str: ...


def scheduled_agents(
    config: CallCenterConfig, store: MembersStore, periods: Periods, rows: Sequence[PeriodRow]
) -> list[float] | None:
    """The agents scheduled (``agents.<id>.schedule``, the days changed while the centre
    runs as ``config`` has them) in each row's period among its queue's members (the
    config's, with the joins and leaves kept in the records): :func:`scheduled_per_period`
    for each of ``rows``. None when no agent has a schedule. Blocking (reads the store)."""
    schedules = {
        agent_id: schedule
        for agent_id in config.agents
        if (schedule := schedule_of(config, agent_id)) is not None
    }
    if not schedules:
        return None
    members = {name: set(q.agents) for name, q in config.queues.items()}
    for change in store.fetch_member_changes():
        if change.queue in members:
            if change.member and change.paused is None:
                members[change.queue].add(change.agent)
            else:
                members[change.queue].discard(change.agent)
    planned = scheduled_per_period(schedules, members, periods)
    return [planned.get((row.period, row.queue), 0.0) for row in rows]


LATE_AFTER: Final = 60.0
"""Seconds after the schedule's start a first login counts as late in the summary."""


def agent_totals(days: Sequence[AdherenceDay]) -> list[dict[str, Any]]:
    """Per agent (in order of first appearance) over ``days``: days scheduled, adherence
    over all of them (ready seconds over scheduled seconds), days late (the first login
    more than :data:`LATE_AFTER` seconds after the start) and days absent (scheduled,
    never logged in during it)."""
    seen: dict[str, list[AdherenceDay]] = {}
    for day in days:
        seen.setdefault(day.agent, []).append(day)
    out = []
    for agent, rows in seen.items():
        planned = [d for d in rows if d.scheduled > 0]
        scheduled = sum(d.scheduled for d in planned)
        ready = sum(d.logged_in - d.paused for d in planned)
        out.append(
            {
                "agent": agent,
                "name": rows[0].name,
                "days_scheduled": len(planned),
                "adherence_percent": round(100.0 * ready / scheduled, 1) if scheduled else None,
                "days_late": sum(1 for d in planned if d.late is not None and d.late > LATE_AFTER),
                "days_absent": sum(1 for d in planned if d.late is None),
            }
        )
    return out
