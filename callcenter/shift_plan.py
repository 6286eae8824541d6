"""Shifts that cover a forecast: a planner's second step, after the agents each interval needs.

``callcenter forecast --shifts 8h,4h`` (and ``GET /figures/forecast?shifts=8h,4h``) turns
the agents to schedule per interval (:mod:`callcenter.records.forecast`) into shifts of the
lengths a centre works: for each queue and day, how many agents start when and for how
long, so that every interval has at least the agents it needs.

The cover is greedy, from the morning on: at the first interval short of agents, the
missing agents start a shift there of the length that wastes the least (the most of its
hours needed, per hour paid; the longer one on a tie: fewer hand-overs); a shift that would
run past the day's last open interval starts earlier instead, to end with it. That is the
classic greedy cover of a staffing curve, not an optimum: it never leaves an interval
short, and on a flat day it is exact. The planned hours beside the needed ones say how
much of the plan is slack (``used``). Breaks and lunches are not placed: they are in the
shrinkage the agents to schedule already count. An agent who is in several queues counts
in each, as the forecast counts them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

__all__ = ["ProposedShift", "ShiftPlan", "cover", "format_shifts", "parse_lengths", "plan"]

_LENGTH: Final = re.compile(r"^(?:(\d{1,2})h(?:(\d{2})(?:min)?)?|(\d{1,4})min)$")


def parse_lengths(text: str, interval_minutes: int) -> list[int]:
    """``"8h,4h30,90min"`` -> shift lengths in minutes, longest first. ValueError with a
    message a planner can act on: a length that is not one, or not a whole number of the
    forecast's intervals."""
    lengths: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        found = _LENGTH.match(part)
        if not found:
            raise ValueError(f"shifts: {part!r} is not a shift length such as 8h, 4h30 or 90min")
        hours, minutes, only = found.groups()
        length = int(only) if only is not None else int(hours) * 60 + int(minutes or 0)
        if not 0 < length <= 24 * 60:
            raise ValueError(f"shifts: {part!r} must be longer than nothing and at most 24h")
        if length % interval_minutes:
            raise ValueError(
                f"shifts: {part!r} is not a whole number of the forecast's "
                f"{interval_minutes}-minute intervals"
            )
        lengths.add(length)
    if not lengths:
        raise ValueError("shifts: name at least one shift length, such as 8h")
    return sorted(lengths, reverse=True)


def cover(needed: Sequence[int], lengths: Sequence[int]) -> list[tuple[int, int, int]]:
    """Shifts that give every interval ``i`` at least ``needed[i]`` agents: ``(first
    interval, intervals long, agents)`` in order of start. ``lengths`` in intervals; one
    longer than the day is cut to the day."""
    n = len(needed)
    if n == 0:
        return []
    spans = sorted({min(max(1, length), n) for length in lengths}, reverse=True)
    staffed = [0] * n
    shifts: list[tuple[int, int, int]] = []
    for i in range(n):
        short = needed[i] - staffed[i]
        if short <= 0:
            continue
        best: tuple[float, int, int] | None = None
        for span in spans:
            start = min(i, n - span)
            useful = sum(
                min(short, max(0, needed[j] - staffed[j])) for j in range(start, start + span)
            )
            score = useful / (short * span)
            # Spans are tried longest first: a tie keeps the longer shift.
            if best is None or score > best[0] + 1e-9:
                best = (score, start, span)
        assert best is not None
        _, start, span = best
        for j in range(start, start + span):
            staffed[j] += short
        shifts.append((start, span, short))
    shifts.sort()
    merged: list[tuple[int, int, int]] = []
    for start, span, agents in shifts:
        if merged and merged[-1][:2] == (start, span):
            merged[-1] = (start, span, merged[-1][2] + agents)
        else:
            merged.append((start, span, agents))
    return merged


@dataclass(frozen=True, slots=True)
class ProposedShift:
    """So many agents of a queue on a day, from ``start`` to ``end`` (local ``HH:MM``;
    ``end`` may be ``24:00``)."""

    queue: str
    day: date
    start: str
    end: str
    agents: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "day": self.day.isoformat(),
            "start": self.start,
            "end": self.end,
            "agents": self.agents,
        }


@dataclass(frozen=True, slots=True)
class ShiftPlan:
    """The shifts proposed, and per queue the agent hours they pay against those the
    forecast needs."""

    lengths: list[int]
    """The shift lengths worked with, in minutes, longest first."""
    shifts: list[ProposedShift]
    hours: dict[str, dict[str, float]]
    """Queue -> ``planned`` and ``needed`` agent hours over the week."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "lengths": [_length(m) for m in self.lengths],
            "shifts": [s.as_dict() for s in self.shifts],
            "hours": {
                queue: {**h, "used_percent": _used(h)} for queue, h in sorted(self.hours.items())
            },
        }


def plan(rows: Iterable[Mapping[str, Any]], lengths: Sequence[int], interval: int) -> ShiftPlan:
    """Shifts of ``lengths`` minutes covering the agents to schedule of a forecast's
    ``rows`` (:attr:`WeekForecast.rows <callcenter.records.forecast.WeekForecast.rows>`:
    ``queue``, ``period`` and ``agents_to_schedule``; ``interval`` minutes each), per
    queue and day, from the day's first row to its last (an interval without a row, or
    without agents to go on, needs none)."""
    days: dict[tuple[str, str], dict[int, int]] = {}
    for row in rows:
        hour, minute = row["period"][11:16].split(":")
        at = (int(hour) * 60 + int(minute)) // interval
        wanted = row.get("agents_to_schedule") or 0
        needs = days.setdefault((row["queue"], row["period"][:10]), {})
        # The hour the clocks go back is listed twice: the busier of the two counts.
        needs[at] = max(needs.get(at, 0), int(wanted))
    shifts: list[ProposedShift] = []
    hours: dict[str, dict[str, float]] = {}
    spans = [length // interval for length in lengths]
    for (queue, day), needs in sorted(days.items()):
        first, last = min(needs), max(needs)
        needed = [needs.get(i, 0) for i in range(first, last + 1)]
        tally = hours.setdefault(queue, {"planned": 0.0, "needed": 0.0})
        tally["needed"] += sum(needed) * interval / 60
        for start, span, agents in cover(needed, spans):
            tally["planned"] += agents * span * interval / 60
            shifts.append(
                ProposedShift(
                    queue,
                    date.fromisoformat(day),
                    _clock((first + start) * interval),
                    _clock((first + start + span) * interval),
                    agents,
                )
            )
    return ShiftPlan(list(lengths), shifts, hours)


def format_shifts(proposed: ShiftPlan) -> str:
    """``callcenter forecast --shifts``'s table: one line per queue, day and shift, then
    each queue's hours."""
    head = ["day", "queue", "shift", "agents"]
    lines = [
        [
            f"{s.day:%a} {s.day.isoformat()}",
            s.queue,
            f"{s.start}-{s.end}",
            str(s.agents),
        ]
        for s in proposed.shifts
    ]
    widths = [max([len(h), *(len(c[i]) for c in lines)]) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i == 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    title = line(head)
    out = [
        f"shifts proposed ({', '.join(_length(m) for m in proposed.lengths)}):",
        title,
        "-" * len(title),
        *(line(c) for c in lines),
    ]
    for queue, h in sorted(proposed.hours.items()):
        used = _used(h)
        out.append(
            f"{queue}: {h['planned']:g} agent hours planned for {h['needed']:g} needed"
            + ("" if used is None else f" ({used:g} % of them needed)")
        )
    return "\n".join(out)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _length(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}min"
    return f"{hours}h{rest:02d}" if rest else f"{hours}h"


def _used(hours: Mapping[str, float]) -> float | None:
    planned = hours["planned"]
    return round(100 * hours["needed"] / planned, 1) if planned else None
