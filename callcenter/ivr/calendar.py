"""Business hours and holidays: weekday specs, time ranges, holiday calendars.

Pure functions over ``datetime`` values, shared by the config models (validation), the
``schedule`` and ``branch`` nodes, and ``callcenter simulate --at``.

* A **day spec** names weekdays: ``mon`` ... ``sun``, a range ``mon-fri`` (``fri-mon`` wraps
  over the weekend), a list ``sat,sun``, or ``daily``.
* A **time range** is ``"HH:MM-HH:MM"`` in local time, end after start; ``"24:00"`` is the
  end of the day. A range over midnight is two ranges on two days.
* A **holiday date** is ``"YYYY-MM-DD"`` (that day) or ``"MM-DD"`` (that day every year).
* Public holidays come from the ``holidays`` package, by ISO country code and optional
  subdivision (``DE`` / ``BE``, ``US`` / ``CA``).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

import holidays

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_RANGE = re.compile(r"((?:[01]?\d|2[0-3]):[0-5]\d)-((?:[01]?\d|2[0-3]):[0-5]\d|24:00)")
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEARLY_DATE = re.compile(r"\d{2}-\d{2}")


# --------------------------------------------------------------------------- weekdays


def parse_days(spec: str) -> frozenset[int] | None:
    """The weekdays (0 = Monday) a day spec names, or None when it is not one."""
    text = spec.strip().lower()
    if text in ("daily", "every day", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
            return None
        start = DAY_NAMES.index(first)
        end = DAY_NAMES.index(last) if dash else start
        day = start
        days.add(day)
        while day != end:
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def day_spec_problem(spec: str) -> str | None:
    """Why ``spec`` is not a day spec, or None."""
    if parse_days(spec) is None:
        return (
            "must name weekdays: mon, tue, wed, thu, fri, sat, sun, a range such as "
            "mon-fri, a list such as sat,sun, or daily"
        )
    return None


# --------------------------------------------------------------------------- times of day


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def parse_range(text: str) -> tuple[int, int] | None:
    """``"09:00-17:30"`` as minutes since midnight (540, 1050); None when malformed."""
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        return None
    start, end = _minutes(match.group(1)), _minutes(match.group(2))
    return (start, end) if end > start else None


def range_problem(text: str) -> str | None:
    """Why ``text`` is not a time range, or None."""
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        return 'must be a time range "HH:MM-HH:MM" such as "09:00-17:30"'
    if parse_range(text) is None:
        return (
            "must end after it starts (a range over midnight is two ranges: "
            '"22:00-24:00" on one day and "00:00-06:00" on the next)'
        )
    return None


def in_ranges(ranges: Iterable[str], moment: time) -> bool:
    """True when ``moment`` (local time of day) falls in one of ``ranges`` (end excluded)."""
    minute = moment.hour * 60 + moment.minute
    for text in ranges:
        parsed = parse_range(text)
        if parsed is not None and parsed[0] <= minute < parsed[1]:
            return True
    return False


def open_spec(hours: Mapping[str, Iterable[str]], moment: datetime) -> str | None:
    """The day spec of ``hours`` (day spec -> time ranges) that has ``moment`` (local wall
    time) within one of its ranges, or None when ``moment`` is outside them all."""
    for spec, ranges in hours.items():
        if moment.weekday() in (parse_days(spec) or ()) and in_ranges(ranges, moment.time()):
            return spec
    return None


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """When a place (a queue, an agent's schedule) is open: ``hours`` (day spec -> time
    ranges, local wall time), closed on the ``dates`` listed (``YYYY-MM-DD`` or yearly
    ``MM-DD``) and on the public holidays of ``country`` (and ``subdivision``); a day of
    ``special`` (date -> time ranges, none: closed) has its own hours instead of all that."""

    hours: Mapping[str, Sequence[str]]
    dates: Sequence[str] = ()
    country: str | None = None
    subdivision: str | None = None
    special: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def special_ranges(self, day: date) -> Sequence[str] | None:
        """The ranges of ``day`` when ``special`` lists it (the exact date before a yearly
        ``MM-DD``), else None."""
        full = day.isoformat()
        for key in (full, full[5:]):
            if key in self.special:
                return self.special[key]
        return None

    def day_ranges(self, day: date) -> list[str]:
        """The time ranges ``day`` is open (none on a closed day)."""
        special = self.special_ranges(day)
        if special is not None:
            return list(special)
        if self.closed_day(day) is not None:
            return []
        return [
            text
            for spec, ranges in self.hours.items()
            if day.weekday() in (parse_days(spec) or ())
            for text in ranges
        ]

    def closed_day(self, day: date) -> str | None:
        """Why the place is closed all ``day`` (a day listed, a public holiday, a special
        day without hours), or None."""
        special = self.special_ranges(day)
        if special is not None:
            return None if special else "a special day, closed"
        if date_listed(self.dates, day):
            return "a closed day listed in the config"
        if self.country is not None:
            holiday = public_holiday(self.country, self.subdivision, day)
            if holiday is not None:
                return f"a public holiday ({holiday})"
        return None

    def closed_because(self, moment: datetime) -> str | None:
        """Why the place is closed at ``moment`` (local wall time): a closed day listed, a
        public holiday, outside the hours; None when it is open."""
        closed = self.closed_day(moment.date())
        if closed is not None:
            return closed
        special = self.special_ranges(moment.date())
        if special is not None:
            return None if in_ranges(special, moment.time()) else "outside the day's hours"
        return None if open_spec(self.hours, moment) is not None else "outside the opening hours"

    def next_opening(self, moment: datetime, *, days: int = 14) -> datetime | None:
        """The first moment at or after ``moment`` (local wall time, its zone kept) when
        the place is open: ``moment`` itself when it is open; None when it opens on none of
        the next ``days`` days."""
        if self.closed_because(moment) is None:
            return moment
        for ahead in range(days + 1):
            day = (moment + timedelta(days=ahead)).date()
            if self.closed_day(day) is not None:
                continue
            starts = sorted(
                parsed[0]
                for text in self.day_ranges(day)
                if (parsed := parse_range(text)) is not None
            )
            for start in starts:
                opens = datetime.combine(day, time(start // 60, start % 60), tzinfo=moment.tzinfo)
                if opens > moment:
                    return opens
        return None


# --------------------------------------------------------------------------- dates


def normalise_date(value: object) -> str | None:
    """A holiday date as ``YYYY-MM-DD`` or ``MM-DD`` (YAML may give a ``date``); None if bad."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if _FULL_DATE.fullmatch(text):
            date.fromisoformat(text)
            return text
        if _YEARLY_DATE.fullmatch(text):
            date.fromisoformat(f"2000-{text}")  # a leap year: 02-29 is allowed
            return text
    except ValueError:
        return None
    return None


def date_listed(dates: Iterable[str], day: date) -> bool:
    """True when ``day`` is one of ``dates`` (``YYYY-MM-DD`` or yearly ``MM-DD``)."""
    full, yearly = day.isoformat(), day.isoformat()[5:]
    return any(d in (full, yearly) for d in dates)


# --------------------------------------------------------------------------- time zones


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or None."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return 'must be an IANA time zone such as "Europe/Berlin" or "America/New_York"'
    return None


def timezone_names() -> frozenset[str]:
    """Every IANA time zone name known here (for "did you mean" hints)."""
    return _zone_names()


def local_time(moment: datetime, zone: str) -> datetime:
    """``moment`` as wall-clock time in ``zone``.

    A naive ``moment`` (``callcenter simulate --at 2026-12-25T10:00``) is taken to be
    wall-clock time in ``zone`` already.
    """
    tz: tzinfo = zoneinfo.ZoneInfo(zone)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


# --------------------------------------------------------------------------- holidays


@functools.lru_cache(maxsize=1)
def supported_countries() -> dict[str, list[str]]:
    """ISO country code -> its subdivision codes, as the ``holidays`` package knows them."""
    return {code: list(subdivs) for code, subdivs in holidays.list_supported_countries().items()}


def country_problem(country: str, subdivision: str | None) -> str | None:
    """Why (``country``, ``subdivision``) is not a known holiday calendar, or None."""
    known = supported_countries()
    if country not in known:
        return f'"{country}" is not a country the holidays package knows (ISO code such as DE, US)'
    if subdivision is not None and subdivision not in known[country]:
        subs = ", ".join(known[country][:30]) or "none"
        return f'"{subdivision}" is not a subdivision of {country} (known: {subs})'
    return None


@functools.lru_cache(maxsize=256)
def _calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def public_holiday(country: str, subdivision: str | None, day: date) -> str | None:
    """The name of the public holiday on ``day`` (``"Christmas Day"``), or None."""
    name = _calendar(country, subdivision, day.year).get(day)
    return str(name) if name is not None else None
