"""The coming week's load, interval by interval, from the weeks before it: a planner's
first step (``callcenter forecast``, ``GET /figures/forecast``, the supervisors' forecast
page).

Each queue's callers in an hour (or half or quarter hour) of a day to come are expected as
the mean of the callers offered in that hour of the same weekday over the ``weeks`` weeks
of history, leaving out the days the queue was offered no caller at all (closed: a holiday,
a special day), so that last Christmas does not halve next Tuesday. Their handle time is
the talk of that hour over those days pooled (the queue's over the whole history where the
hour had no answered call) plus the queue's wrap-up. The agents needed then follow as in
``report --queues --by hour --staffing``: Erlang A with the callers' patience measured over
the history, Erlang C for a queue where nobody hung up. No season beyond the weekday, and
by default no trend (a centre growing fast is under-forecast by its growth over the weeks
read); asked with ``trend``, each queue's callers follow the straight line through its
weeks (:func:`trends`).

:func:`forecast` is a pure function of the history's figures
(:func:`~callcenter.records.summary.read_queue_figures`, cut by the same grouping);
:func:`read_forecast` reads them (:func:`read_history`) and sets beside each interval the
agents to schedule, the agents scheduled, and for the days already lived the callers who
came: per queue, how far off the forecast was (WAPE) and how today is going so far.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Final, Protocol

from callcenter import staffing
from callcenter.acd.schedule import opening_hours
from callcenter.config.models import CallCenterConfig
from callcenter.ivr.calendar import OpeningHours, local_time
from callcenter.records.adherence import MembersStore, scheduled_agents
from callcenter.records.summary import (
    GROUPINGS,
    FiguresStore,
    Grouping,
    Periods,
    QueueFigures,
    day_start,
    patience_by_queue,
    read_queue_figures,
)

WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class SlotForecast:
    """What one queue may expect in one interval of a day to come."""

    queue: str
    period: str
    """``YYYY-MM-DD HH:MM``, local time, as the figures' reports name an interval."""
    calls: float
    """Callers expected (offered, short abandons left out)."""
    aht_seconds: float | None
    """Handle time expected: talk plus the queue's wrap-up; None with no call answered."""
    days_seen: int
    """Days of the same weekday in the history the queue was open on (the mean's days)."""
    service_level_seconds: float
    agents_needed: int | None
    """Agents on the phones for the target; None without a handle time to go on."""

    @property
    def day(self) -> date:
        return date.fromisoformat(self.period[:10])

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "weekday": WEEKDAYS[self.day.weekday()],
            "queue": self.queue,
            "calls": round(self.calls, 1),
            "aht_seconds": round(self.aht_seconds, 1) if self.aht_seconds is not None else None,
            "days_seen": self.days_seen,
            "service_level_seconds": self.service_level_seconds,
            "agents_needed": self.agents_needed,
        }


@dataclass(frozen=True, slots=True)
class _Slot:
    day: date
    start: str
    """``HH:MM``."""


def _slot(period: str) -> _Slot:
    # "2026-12-01 09:00" (the hour the clocks go back adds " +0100": the same hour here).
    return _Slot(date.fromisoformat(period[:10]), period[11:16])


def forecast(
    history: Sequence[QueueFigures],
    days: Sequence[date],
    *,
    interval_minutes: int,
    target: float,
    wrapups: Mapping[str, float],
    patience: Mapping[str, float | None],
    factors: Mapping[str, float] | None = None,
) -> tuple[list[SlotForecast], list[tuple[str, date]]]:
    """The forecast of each queue of ``history`` (its figures per interval of
    ``interval_minutes``) for each of ``days``: a row per interval expected to get callers,
    in day, queue and time order; and the (queue, day) pairs with no open day of that
    weekday in the history (nothing to go on: no rows). ``target``: the share to answer
    within each queue's service level (0..1, exclusive); ``wrapups``: each queue's
    after-call seconds; ``patience``: each queue's callers' mean patience (None: Erlang
    C); ``factors``: each queue's callers multiplied by so much (its :func:`trends`)."""
    offered: dict[tuple[str, date], int] = {}
    levels: dict[str, float] = {}
    by_slot: dict[tuple[str, date, str], QueueFigures] = {}
    talk: dict[str, tuple[float, int]] = {}
    for f in history:
        slot = _slot(f.period)
        key = (f.queue, slot.day)
        offered[key] = offered.get(key, 0) + f.offered
        levels[f.queue] = f.service_level_seconds
        seen = by_slot.get((f.queue, slot.day, slot.start))
        by_slot[(f.queue, slot.day, slot.start)] = f if seen is None else _merged(seen, f)
        total, count = talk.get(f.queue, (0.0, 0))
        talk[f.queue] = (total + f.talk, count + f.talks)
    open_days: dict[tuple[str, int], list[date]] = {}
    for (queue, day), count in sorted(offered.items()):
        if count > 0:
            open_days.setdefault((queue, day.weekday()), []).append(day)
    rows: list[SlotForecast] = []
    nothing: list[tuple[str, date]] = []
    starts = [
        f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(0, 1440, interval_minutes)
    ]
    for day in days:
        for queue in sorted(levels):
            seen_days = open_days.get((queue, day.weekday()), [])
            if not seen_days:
                nothing.append((queue, day))
                continue
            for start in starts:
                counted = 0
                slot_talk, slot_talks = 0.0, 0
                for past in seen_days:
                    figures = by_slot.get((queue, past, start))
                    if figures is not None:
                        counted += figures.counted
                        slot_talk += figures.talk
                        slot_talks += figures.talks
                if counted == 0:
                    continue
                calls = counted / len(seen_days) * (factors or {}).get(queue, 1.0)
                total, count = (slot_talk, slot_talks) if slot_talks else talk[queue]
                aht = total / count + wrapups.get(queue, 0.0) if count else None
                rows.append(
                    SlotForecast(
                        queue=queue,
                        period=f"{day.isoformat()} {start}",
                        calls=calls,
                        aht_seconds=aht,
                        days_seen=len(seen_days),
                        service_level_seconds=levels[queue],
                        agents_needed=_needed(
                            calls,
                            aht,
                            levels[queue],
                            target=target,
                            interval_minutes=interval_minutes,
                            patience=patience.get(queue),
                        ),
                    )
                )
    return rows, nothing


TREND_LIMITS: Final = (0.5, 2.0)
"""The least and most a trend may multiply a queue's callers by: beyond, a few odd weeks
(a campaign, an outage) say more than a trend does."""


@dataclass(frozen=True, slots=True)
class Trend:
    """A queue's callers week by week over the history, as a straight line: ``weekly``
    the change a week (a share of the history's mean level), ``factor`` what the
    forecast's callers are multiplied by to reach the line's level in the week forecast
    (1.0 where there is nothing to fit: fewer than two weeks with callers)."""

    weeks: int
    weekly: float
    factor: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "weeks": self.weeks,
            "weekly_change_percent": round(100 * self.weekly, 1),
            "factor": round(self.factor, 3),
        }


def trends(history: Sequence[QueueFigures], first: date) -> dict[str, Trend]:
    """Each queue's :class:`Trend`: the callers of each day it was open, weeks counted
    back from ``first`` (the week forecast), a least-squares line through the weeks' mean
    callers a day; the forecast (the mean of the weeks) is taken from the history's
    middle to the forecast week along that line, within :data:`TREND_LIMITS`."""
    daily: dict[tuple[str, date], int] = {}
    for f in history:
        key = (f.queue, _slot(f.period).day)
        daily[key] = daily.get(key, 0) + f.counted
    weeks: dict[str, dict[int, list[int]]] = {}
    for (queue, day), count in daily.items():
        if count > 0:
            back = (first - day).days // 7 + (1 if (first - day).days % 7 else 0)
            weeks.setdefault(queue, {}).setdefault(back, []).append(count)
    out: dict[str, Trend] = {}
    for queue, by_week in sorted(weeks.items()):
        points = [(-float(back), sum(c) / len(c)) for back, c in sorted(by_week.items())]
        if len(points) < 2:
            out[queue] = Trend(len(points), 0.0, 1.0)
            continue
        n = len(points)
        mean_x = sum(x for x, _ in points) / n
        mean_y = sum(y for _, y in points) / n
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
        # The line's level in the forecast week (x = 0) over its level where the
        # forecast's mean sits (the middle of the weeks read).
        projected = mean_y - slope * mean_x
        low, high = TREND_LIMITS
        factor = min(high, max(low, projected / mean_y)) if mean_y > 0 else 1.0
        out[queue] = Trend(n, slope / mean_y if mean_y > 0 else 0.0, factor)
    return out


@functools.lru_cache(maxsize=8192)
def _needed(
    calls: float,
    aht: float | None,
    threshold: float,
    *,
    target: float,
    interval_minutes: int,
    patience: float | None,
) -> int | None:
    if aht is None:
        return None
    try:
        return staffing.agents_needed(
            calls,
            max(1.0, aht),
            threshold,
            target,
            interval=interval_minutes * 60.0,
            patience=patience,
        ).agents
    except ValueError:
        return None  # callers so patient beside so few agents: no figure to give


def _merged(a: QueueFigures, b: QueueFigures) -> QueueFigures:
    """Two rows of one queue and local interval (the hour the clocks go back, twice)."""
    return QueueFigures(
        period=a.period,
        queue=a.queue,
        service_level_seconds=a.service_level_seconds,
        offered=a.offered + b.offered,
        short_abandoned=a.short_abandoned + b.short_abandoned,
        talk=a.talk + b.talk,
        talks=a.talks + b.talks,
    )


def history_days(first: date, today: date, weeks: int) -> tuple[date, date]:
    """The history a forecast from ``first`` on reads: the ``weeks`` whole weeks before
    ``first``, or before ``today`` when ``first`` is further ahead (days not lived yet
    have no figures); (first day, day after the last)."""
    end = min(first, today)
    return end - timedelta(weeks=weeks), end


def week_from(day: date) -> list[date]:
    """The Monday to Sunday of ``day``'s week."""
    monday = day - timedelta(days=day.weekday())
    return [monday + timedelta(days=i) for i in range(7)]


def next_monday(today: date) -> date:
    """The Monday after ``today`` (a week on, when ``today`` is a Monday)."""
    return today + timedelta(days=7 - today.weekday())


def format_table(rows: Sequence[Mapping[str, Any]], scheduled: bool) -> str:
    """``callcenter forecast``'s table: one line per row of :func:`forecast` (as dicts,
    with ``agents_to_schedule`` and, when ``scheduled``, ``agents_scheduled`` and
    ``gap``: scheduled minus to schedule, negative where agents are missing; "came": the
    callers who did, on the days already lived)."""
    head = ["day", "start", "queue", "calls", "aht", "days", "agents", "to sched"]
    if scheduled:
        head += ["sched", "gap"]
    lived = any(row.get("actual_calls") is not None for row in rows)
    if lived:
        head.append("came")
    lines = []
    for row in rows:
        aht = row["aht_seconds"]
        cells = [
            f"{row['weekday']} {row['period'][:10]}",
            row["period"][11:16],
            row["queue"],
            f"{row['calls']:.1f}",
            "" if aht is None else f"{int(aht) // 60}:{int(aht) % 60:02d}",
            str(row["days_seen"]),
            _count(row["agents_needed"]),
            _count(row["agents_to_schedule"]),
        ]
        if scheduled:
            gap = row["gap"]
            cells += [f"{row['agents_scheduled']:.1f}", "" if gap is None else f"{gap:+.1f}"]
        if lived:
            cells.append(_count(row.get("actual_calls")))
        lines.append(cells)
    widths = [max([len(h), *(len(c[i]) for c in lines)]) for i, h in enumerate(head)]
    left = {0, 1, 2}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    title = line(head)
    return "\n".join([title, "-" * len(title), *(line(c) for c in lines)])


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


INTERVALS: Final = {"15min": 15, "30min": 30, "hour": 60}
"""The groupings a forecast is cut by, and their minutes."""


class ForecastStore(FiguresStore, MembersStore, Protocol):
    """What :func:`read_forecast` reads: the queue_log and the queues' member changes."""


@dataclass(frozen=True, slots=True)
class ForecastAsked:
    """What a forecast is asked for: the week of ``first`` (None: next week, from
    ``today`` in ``tz``), from ``weeks`` weeks of history, cut ``by`` 15min, 30min or
    hour; ``target`` (a share) answered within each queue's service level; ``shrinkage``
    (a share) of paid time off the phones; one ``queue`` or all."""

    tz: tzinfo
    today: date
    first: date | None = None
    weeks: int = 4
    by: str = "hour"
    target: float = 0.8
    shrinkage: float = 0.0
    queue: str | None = None
    now: datetime | None = None
    """When given and the week holds ``today``: the intervals of today over by then get
    the callers who came (:attr:`WeekForecast.today`)."""
    trend: bool = False
    """Follow each queue's trend over the weeks read (:func:`trends`) rather than their
    plain mean."""


@dataclass(frozen=True, slots=True)
class WeekForecast:
    """A week's forecast: ``rows`` (dicts, :meth:`SlotForecast.as_dict` with
    ``agents_to_schedule``, and with ``scheduled`` ``agents_scheduled`` and ``gap``:
    scheduled minus to schedule), the weekdays each queue had no history for, the queues
    with none at all, each queue's measured patience (None: nobody hung up)."""

    days: list[date]
    since: date
    until: date
    """The history read: ``since`` to ``until`` (excluded)."""
    rows: list[dict[str, Any]]
    scheduled: bool
    missing: dict[str, list[str]] = field(default_factory=dict)
    quiet: list[str] = field(default_factory=list)
    patience: dict[str, float | None] = field(default_factory=dict)
    accuracy: dict[str, dict[str, Any]] = field(default_factory=dict)
    """For a week begun before today: per queue, over its days lived, the callers
    forecast and come and the interval by interval error (``wape_percent``); the rows of
    those days have ``actual_calls``."""
    closed: dict[str, list[str]] = field(default_factory=dict)
    """Per queue, the days of the week it is closed all day by its opening hours (a
    holiday, a special day): no rows then, whatever the weeks before said."""
    today: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Asked with ``now`` in this week: per queue, today's intervals over by then
    (``until``, ``HH:MM``), the callers forecast and come in them and the pace (come as a
    percent of forecast): a day running hot or cold, in time to call agents in or send
    them on training. Those rows have ``actual_calls``."""
    trend: dict[str, Trend] = field(default_factory=dict)
    """Asked with ``trend``: per queue, the trend the callers were carried along."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "week": [self.days[0].isoformat(), self.days[-1].isoformat()],
            "history": [self.since.isoformat(), (self.until - timedelta(days=1)).isoformat()],
            "rows": self.rows,
            "nothing_for": self.missing,
            "no_history": self.quiet,
            "patience_seconds": {
                q: round(p) if p is not None else None for q, p in self.patience.items()
            },
            "accuracy": self.accuracy,
            "today": self.today,
            "closed": self.closed,
            "trend": {queue: t.as_dict() for queue, t in self.trend.items()},
        }


def history_key(asked: ForecastAsked) -> tuple[object, ...]:
    """What the history :func:`read_history` reads for ``asked`` depends on: two asks
    with the same key read the same figures (a cache may keep them)."""
    days = week_from(asked.first or next_monday(asked.today))
    return (*history_days(days[0], asked.today, asked.weeks), asked.by, str(asked.tz))


def read_history(
    store: ForecastStore, config: CallCenterConfig, asked: ForecastAsked
) -> list[QueueFigures]:
    """The queue figures of the weeks of history a forecast of ``asked`` reads (every
    queue, cut by ``asked.by``). Blocking (a thread's job); RecordError."""
    tz = asked.tz
    days = week_from(asked.first or next_monday(asked.today))
    since, until = history_days(days[0], asked.today, asked.weeks)
    return read_queue_figures(
        store,
        Periods(day_start(since, tz), day_start(until, tz), _grouping(asked.by), tz),
        {name: q.service_level for name, q in config.queues.items()},
        fcr_days=1,
        short_abandons={name: q.short_abandon for name, q in config.queues.items()},
    )


def _grouping(by: str) -> Grouping:
    found = next((g for g in GROUPINGS if g == by and g in INTERVALS), None)
    if found is None:
        raise ValueError(f"by: one of {', '.join(INTERVALS)}, not {by!r}")
    return found


def read_forecast(
    store: ForecastStore,
    config: CallCenterConfig,
    asked: ForecastAsked,
    history: Sequence[QueueFigures] | None = None,
) -> WeekForecast:
    """The forecast ``asked`` for, from the records of ``store`` and ``config``'s queues
    and schedules (``history``: :func:`read_history`'s figures for it, read before and
    kept). ValueError for a queue ``config`` lacks, a grouping that is none or a config
    that keeps no queue_log; RecordError when the records cannot be read. Blocking (a
    thread's job)."""
    by = _grouping(asked.by)
    if asked.queue is not None and asked.queue not in config.queues:
        known = ", ".join(sorted(config.queues)) or "none"
        raise ValueError(f"no queue {asked.queue!r} (queues: {known})")
    if not config.records.queue_log:
        raise ValueError(
            "a forecast reads the queue_log: set records.queue_log: true (figures from then on)"
        )
    tz = asked.tz
    days = week_from(asked.first or next_monday(asked.today))
    since, until = history_days(days[0], asked.today, asked.weeks)
    levels = {name: q.service_level for name, q in config.queues.items()}
    short = {name: q.short_abandon for name, q in config.queues.items()}
    if history is None:
        history = read_history(store, config, asked)
    if asked.queue is not None:
        history = [f for f in history if f.queue == asked.queue]
    patience = patience_by_queue(history)
    carried = trends(history, days[0]) if asked.trend else {}
    slots, nothing = forecast(
        history,
        days,
        interval_minutes=INTERVALS[by],
        target=asked.target,
        wrapups={name: q.wrapup for name, q in config.queues.items()},
        patience=patience,
        factors={queue: t.factor for queue, t in carried.items()},
    )
    slots, closed = _open_only(slots, config, tz, INTERVALS[by])
    week = Periods(day_start(days[0], tz), day_start(days[-1] + timedelta(days=1), tz), by, tz)
    planned = scheduled_agents(config, store, week, slots)
    rows: list[dict[str, Any]] = []
    for i, slot in enumerate(slots):
        item = slot.as_dict()
        needed = slot.agents_needed
        to_schedule = (
            staffing.scheduled(needed, asked.shrinkage)
            if needed is not None and asked.shrinkage
            else needed
        )
        item["agents_to_schedule"] = to_schedule
        if planned is not None:
            item["agents_scheduled"] = round(planned[i], 1)
            gap = planned[i] - to_schedule if to_schedule is not None else None
            item["gap"] = round(gap, 1) if gap is not None else None
        item["actual_calls"] = None
        rows.append(item)
    missing: dict[str, list[str]] = {}
    for name, day in nothing:
        missing.setdefault(name, []).append(WEEKDAYS[day.weekday()])
    accuracy: dict[str, dict[str, Any]] = {}
    lived = [day for day in days if day < asked.today]
    if lived:
        came = read_queue_figures(
            store,
            Periods(day_start(lived[0], tz), day_start(lived[-1] + timedelta(days=1), tz), by, tz),
            levels,
            fcr_days=1,
            short_abandons=short,
        )
        accuracy = _compare(
            rows, [f for f in came if asked.queue is None or f.queue == asked.queue], lived
        )
    today: dict[str, dict[str, Any]] = {}
    if asked.now is not None and days[0] <= asked.today <= days[-1]:
        minutes = INTERVALS[by]
        local = asked.now.astimezone(tz)
        into = (local.hour * 60 + local.minute) // minutes * minutes
        cut = local.replace(hour=into // 60, minute=into % 60, second=0, microsecond=0)
        start = day_start(asked.today, tz)
        if cut > start:
            came = read_queue_figures(
                store, Periods(start, cut, by, tz), levels, fcr_days=1, short_abandons=short
            )
            today = _so_far(
                rows,
                [f for f in came if asked.queue is None or f.queue == asked.queue],
                asked.today,
                f"{into // 60:02d}:{into % 60:02d}",
            )
    asked_queues = [asked.queue] if asked.queue is not None else sorted(config.queues)
    return WeekForecast(
        days=days,
        since=since,
        until=until,
        rows=rows,
        scheduled=planned is not None,
        missing=missing,
        quiet=[name for name in asked_queues if name not in patience],
        patience=patience,
        accuracy=accuracy,
        today=today,
        closed=closed,
        trend=carried,
    )


def _open_only(
    slots: list[SlotForecast], config: CallCenterConfig, tz: tzinfo, minutes: int
) -> tuple[list[SlotForecast], dict[str, list[str]]]:
    """The intervals each queue takes callers in by its own ``opening`` hours (special
    days and public holidays too: an interval open at its middle counts), and, per queue,
    the days it is closed all day (``Thu 2026-12-24: <why>``): the weekdays before said
    callers, the days forecast are closed."""
    kept: list[SlotForecast] = []
    closed: dict[str, list[str]] = {}
    calendars: dict[str, tuple[OpeningHours, str] | None] = {}
    for slot in slots:
        if slot.queue not in calendars:
            qcfg = config.queues.get(slot.queue)
            hours = qcfg.opening if qcfg is not None else None
            calendars[slot.queue] = (
                (opening_hours(hours), hours.timezone or config.ivr.timezone)
                if hours is not None
                else None
            )
        calendar = calendars[slot.queue]
        if calendar is None:
            kept.append(slot)
            continue
        hours_of, zone = calendar
        start = datetime.fromisoformat(slot.period).replace(tzinfo=tz)
        middle = local_time(start + timedelta(minutes=minutes / 2), zone)
        why = hours_of.closed_day(middle.date())
        if why is not None:
            said = f"{WEEKDAYS[slot.day.weekday()]} {slot.day}: {why}"
            if said not in closed.setdefault(slot.queue, []):
                closed[slot.queue].append(said)
            continue
        if hours_of.closed_because(middle) is None:
            kept.append(slot)
    return kept, closed


def _so_far(
    rows: list[dict[str, Any]], came: Sequence[QueueFigures], day: date, until: str
) -> dict[str, dict[str, Any]]:
    """Sets today's rows before ``until`` (``HH:MM``) their ``actual_calls`` and returns,
    per queue, the callers forecast and come in those intervals and the pace."""
    actual: dict[tuple[str, str], int] = {}
    for f in came:
        key = (f.queue, f.period[:16])
        actual[key] = actual.get(key, 0) + f.counted
    prefix = day.isoformat()
    expected: dict[str, float] = {}
    for row in rows:
        period = row["period"]
        if period[:10] == prefix and period[11:16] < until:
            row["actual_calls"] = actual.get((row["queue"], period), 0)
            expected[row["queue"]] = expected.get(row["queue"], 0.0) + row["calls"]
    total: dict[str, int] = {}
    for (queue, _period), count in actual.items():
        total[queue] = total.get(queue, 0) + count
    out: dict[str, dict[str, Any]] = {}
    for queue in sorted(set(expected) | set(total)):
        forecast_calls = expected.get(queue, 0.0)
        come = total.get(queue, 0)
        out[queue] = {
            "until": until,
            "forecast": round(forecast_calls, 1),
            "actual": come,
            "pace_percent": round(100.0 * come / forecast_calls) if forecast_calls else None,
        }
    return out


def _compare(
    rows: list[dict[str, Any]], came: Sequence[QueueFigures], lived: Sequence[date]
) -> dict[str, dict[str, Any]]:
    """Sets each row of a day of ``lived`` its ``actual_calls`` (the callers who came then)
    and returns, per queue, the callers forecast and come over those days and how far off
    the forecast was interval by interval: the weighted absolute percentage error (the sum
    of each interval's miss over the callers who came; an interval that got callers the
    forecast expected none in misses them all)."""
    actual: dict[tuple[str, str], int] = {}
    for f in came:
        key = (f.queue, f.period[:16])
        actual[key] = actual.get(key, 0) + f.counted
    first, last = lived[0].isoformat(), lived[-1].isoformat()
    forecast_of: dict[tuple[str, str], float] = {}
    for row in rows:
        if first <= row["period"][:10] <= last:
            key = (row["queue"], row["period"])
            row["actual_calls"] = actual.get(key, 0)
            forecast_of[key] = row["calls"]
    out: dict[str, dict[str, Any]] = {}
    for queue in sorted({q for q, _ in actual} | {q for q, _ in forecast_of}):
        keys = {k for k in actual if k[0] == queue} | {k for k in forecast_of if k[0] == queue}
        expected = sum(forecast_of.get(k, 0.0) for k in keys)
        total = sum(actual.get(k, 0) for k in keys)
        missed = sum(abs(forecast_of.get(k, 0.0) - actual.get(k, 0)) for k in keys)
        out[queue] = {
            "days": len(lived),
            "forecast": round(expected, 1),
            "actual": total,
            "wape_percent": round(100.0 * missed / total, 1) if total else None,
        }
    return out


def trend_said(queue: str, trend: Trend) -> str:
    """A queue's trend as ``callcenter forecast --trend`` says it."""
    if trend.weeks < 2:
        return f"{queue}: no trend to follow ({trend.weeks} week(s) with callers)"
    low, high = TREND_LIMITS
    held = " (held to its limit)" if trend.factor in (low, high) else ""
    return (
        f"{queue}: {100 * trend.weekly:+.1f} % callers a week over the {trend.weeks} weeks "
        f"read: forecast x{trend.factor:.2f}{held}"
    )


def pace_said(queue: str, seen: Mapping[str, Any]) -> str:
    """One line of :attr:`WeekForecast.today` for people: ``support today until 11:00: 32
    callers forecast, 40 came (125 % of the forecast)``."""
    pace = seen["pace_percent"]
    return (
        f"{queue} today until {seen['until']}: {seen['forecast']:g} callers forecast, "
        f"{seen['actual']} came" + ("" if pace is None else f" ({pace} % of the forecast)")
    )
