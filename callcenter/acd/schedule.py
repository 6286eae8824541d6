"""Agents' schedules (``agents.<id>.schedule``, else ``teams.<team>.schedule``): when each
agent is meant to work.

A schedule is written as a queue's opening hours are (day specs to time ranges, days off
as holidays, a time zone). Here it becomes stretches of wall-clock time: the live
``absent`` alert asks :func:`stretch_at` whether an agent should be working now, and
``report --adherence`` (:mod:`callcenter.records.adherence`) lays the agents' logged-in
time over :func:`stretches_between`. Ranges of one day that touch or overlap are one
stretch (``09:00-12:00`` and ``12:00-13:00`` are a morning); a night shift is two ranges
(``22:00-24:00`` and the next day's ``00:00-06:00``), joined when they meet at midnight.
:func:`stretches_between` gives them in UTC: lengths come out right on the days the
clocks change (two times of one zone subtract on the wall clock).

A day of an agent's schedule can be changed while the centre runs (a shift swapped, an
extra day, a day off: ``agent schedule``): :func:`with_day_changes` lays those days over
the config's schedules as ``special`` days, so that everything reading
:func:`schedule_of` sees them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from callcenter.config.models import CallCenterConfig, QueueHours, TimeRange
from callcenter.errors import InvalidAgent
from callcenter.ivr.calendar import OpeningHours, parse_range

_DAY_HOURS: Final[TypeAdapter[list[str]]] = TypeAdapter(list[TimeRange])


@dataclass(frozen=True, slots=True)
class Schedule:
    """One agent's schedule: its hours and the time zone they are in."""

    hours: OpeningHours
    zone: tzinfo

    @classmethod
    def of(cls, hours: QueueHours, default_zone: str) -> Schedule:
        return cls(opening_hours(hours), ZoneInfo(hours.timezone or default_zone))

    def day_stretches(self, day: date) -> list[tuple[datetime, datetime]]:
        """The stretches scheduled on ``day`` (local), merged, as aware datetimes; none on
        a day off."""
        minutes = sorted(
            parsed
            for text in self.hours.day_ranges(day)
            if (parsed := parse_range(text)) is not None
        )
        merged: list[list[int]] = []
        for start, end in minutes:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(self._at(day, start), self._at(day, end)) for start, end in merged]

    def _at(self, day: date, minute: int) -> datetime:
        if minute >= 24 * 60:
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone)
        return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)


def opening_hours(hours: QueueHours) -> OpeningHours:
    """A queue's ``opening`` or an agent's ``schedule`` as :class:`OpeningHours`."""
    holidays = hours.holidays
    special = {day: tuple(ranges) for day, ranges in hours.special.items()}
    if holidays is None:
        return OpeningHours(hours.hours, special=special)
    return OpeningHours(
        hours.hours, holidays.dates, holidays.country, holidays.subdivision, special=special
    )


def schedule_of(config: CallCenterConfig, agent_id: str) -> Schedule | None:
    """The schedule of ``agent_id`` in ``config``: their own, else their team's
    (``teams.<team>.schedule``); None when they have none."""
    agent = config.agents.get(agent_id)
    if agent is None:
        return None
    hours = agent.schedule
    if hours is None and agent.team is not None:
        team = config.teams.get(agent.team)
        hours = team.schedule if team is not None else None
    return Schedule.of(hours, config.ivr.timezone) if hours is not None else None


def stretches_between(
    schedule: Schedule, since: datetime, until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The stretches scheduled from ``since`` to ``until``, clipped to them, in order, in
    UTC; a stretch ending at midnight and one starting then are one."""
    first = since.astimezone(schedule.zone).date() - timedelta(days=1)
    last = until.astimezone(schedule.zone).date()
    pending: tuple[datetime, datetime] | None = None
    day = first
    while day <= last:
        for local_start, local_end in schedule.day_stretches(day):
            start, end = local_start.astimezone(UTC), local_end.astimezone(UTC)
            if pending is not None and start <= pending[1]:
                pending = (pending[0], max(pending[1], end))
                continue
            if pending is not None:
                yield from _clipped(pending, since, until)
            pending = (start, end)
        day += timedelta(days=1)
    if pending is not None:
        yield from _clipped(pending, since, until)


def _clipped(
    stretch: tuple[datetime, datetime], since: datetime, until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    start, end = max(stretch[0], since), min(stretch[1], until)
    if start < end:
        yield start, end


def stretch_at(schedule: Schedule, moment: datetime) -> tuple[datetime, datetime] | None:
    """The scheduled stretch ``moment`` falls in (in UTC, clipped to a day either side of
    ``moment``), or None."""
    day_before = moment - timedelta(days=1)
    for start, end in stretches_between(schedule, day_before, moment + timedelta(days=1)):
        if start <= moment < end:
            return start, end
    return None


def scheduled_now(config: CallCenterConfig, now: datetime) -> set[str] | None:
    """The agents whose schedule has them working at ``now``; None when no agent has a
    schedule (nothing to say, rather than "nobody")."""
    found: set[str] | None = None
    for agent_id in config.agents:
        schedule = schedule_of(config, agent_id)
        if schedule is None:
            continue
        found = found if found is not None else set()
        if stretch_at(schedule, now) is not None:
            found.add(agent_id)
    return found


def day_hours(hours: Any) -> tuple[str, ...]:
    """``hours`` (``["10:00-18:00", "19:00-21:00"]``; empty: a day off) checked as a
    schedule's day takes them; InvalidAgent names each bad one."""
    if not isinstance(hours, Sequence) or isinstance(hours, str):
        raise InvalidAgent('hours: a list of ranges, such as ["10:00-18:00"] ([]: a day off)')
    try:
        return tuple(_DAY_HOURS.validate_python(list(hours)))
    except ValidationError as exc:
        raise InvalidAgent(
            "; ".join(
                f"hours.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
        ) from None


def with_day_changes(
    config: CallCenterConfig, changes: Mapping[str, Mapping[date, Sequence[str]]]
) -> CallCenterConfig:
    """``config`` with days of agents' schedules changed while the centre runs (agent ->
    day -> its hours; empty: a day off): they win over the schedule's own hours, holidays
    and special days, as ``special`` days do. An agent on a team schedule gets their own
    (the team's, with those days); one without any, a schedule of those days only (in
    ``ivr.timezone``). Agents the config does not have are left out."""
    agents = dict(config.agents)
    changed = False
    for agent_id, days in changes.items():
        agent = agents.get(agent_id)
        if agent is None or not days:
            continue
        hours = agent.schedule
        if hours is None and agent.team is not None:
            team = config.teams.get(agent.team)
            hours = team.schedule if team is not None else None
        special = {**(hours.special if hours is not None else {})}
        special.update({day.isoformat(): list(ranges) for day, ranges in days.items()})
        if hours is not None:
            merged = hours.model_copy(update={"special": special})
        else:
            # No weekly hours at all: QueueHours asks for some, a schedule need not.
            merged = QueueHours.model_construct(
                timezone=None, hours={}, holidays=None, special=special
            )
        agents[agent_id] = agent.model_copy(update={"schedule": merged})
        changed = True
    return config.model_copy(update={"agents": agents}) if changed else config
