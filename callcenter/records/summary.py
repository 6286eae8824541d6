"""Queue and agent figures over a stretch of time, from the records: what a manager reads
the morning after (``callcenter report --queues`` / ``--agents``).

Both summaries are pure functions of rows read from the records database, cut into periods
of the report's time zone (:class:`Periods`: by hour, by day, or one total):

* :func:`queue_summary` folds the queue_log, one visit of a caller to a queue at a time
  (a caller sent from queue to queue counts in each), as queue reporting tools read it.
  A visit belongs to the period its ``ENTERQUEUE`` falls in, so its outcome counts there
  even when it came later (the caller joined at 13:59 and was answered at 14:01: the 13:00
  hour). Outcomes: answered (``CONNECT``), abandoned (``ABANDON``), exited (a queue rule
  took the caller out: timeout, exit key, empty queue; callback requests count here); a
  visit with none of them was cut by a restart of the daemon. ``FULL`` and ``JOINEMPTY``
  callers never joined: *turned away*, not offered.
  Service level = visits answered within the queue's ``service_level`` seconds / visits
  offered (abandoned callers count against it, as in app_queue's "service level
  performance (all calls)"), short abandons left out of both (an ``ABANDON`` within the
  queue's ``short_abandon`` seconds: a wrong number, not a caller the centre failed); the
  abandon rate is over the same callers; ASA = mean wait of the answered; AHT = mean talk
  (transfer legs excluded: the talk of the queue's agent); FCR (first-call resolution) =
  answered callers whose number did not join a queue again on another call within
  ``fcr_days`` / answered callers whose number is known. A campaign's lead put through the
  queue (``ENTERQUEUE`` url ``campaign:<id>``) is no inbound caller: it counts as a
  campaign call, not as offered, and none of its outcomes count (``report --campaign`` has
  the campaign's own figures); the agents' figures count its talk as any other. A person
  an agent dialled out to (``ENTERQUEUE`` url ``agent:<id>``) counts the same way, as an
  agent call.
* :func:`agent_summary` counts each agent's ``CONNECT`` (calls; ``dialled``: those of
  them the agent dialled out, ``ENTERQUEUE`` url ``agent:<id>``), ``RINGNOANSWER`` (offers
  missed), talk (``COMPLETECALLER`` / ``COMPLETEAGENT`` / ``BLINDTRANSFER`` /
  ``ATTENDEDTRANSFER``) in the period
  the line falls in, and their logged-in, paused and after-call work (wrap-up) time from
  the shift records cut at the periods' edges (an agent logged in now counts up to now),
  the dispositions they gave by code, and the voicemail messages they dealt with (called
  back or done, in the period they settled them). Handle time = talk + after-call work
  (ACW), per talk; occupancy = (talk + ACW) / (logged in - paused).
* Both count the post-call surveys (``queues.<q>.survey``) that ended in the period, by
  the queue and by the agent the caller rated: surveys taken, surveys scored, the mean
  score, and CSAT % (scored surveys at or over the survey's ``satisfied_from``, of those
  scored where it is set; each survey says so when it ends).

:func:`read_queue_figures` / :func:`read_agent_figures` read what they need from a store
(blocking): the CLI calls them on its own connection, the daemon's API on the writer's
thread.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final, Literal, Protocol

from callcenter import staffing
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.queue_log import AGENT_URL, CAMPAIGN_URL, RESUMED_URL, QueueLogEntry
from callcenter.records.surveys import SurveyRecord
from callcenter.records.voicemails import VoicemailMessage

Grouping = Literal["15min", "30min", "hour", "day", "week", "month", "total"]

GROUPINGS: Final[tuple[Grouping, ...]] = ("15min", "30min", "hour", "day", "week", "month", "total")
"""Periods a report is cut into: quarter and half hours (the intervals workforce planning
reads), hours, days, ISO weeks (from Monday), calendar months, or one total."""
_MINUTES: Final[dict[str, int]] = {"15min": 15, "30min": 30, "hour": 60}

OUTCOME_GRACE: Final = timedelta(days=1)
"""How long after the end of the report the outcome of a visit that started inside it is
looked for (a caller waiting through midnight is answered in the next day's lines)."""

_EXITS: Final = frozenset({"EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY", "WITHDRAW"})
_TURNED_AWAY: Final = frozenset({"FULL", "JOINEMPTY"})
_TALK_ENDS: Final = {
    "COMPLETECALLER": 1,
    "COMPLETEAGENT": 1,
    "BLINDTRANSFER": 3,
    "ATTENDEDTRANSFER": 3,
}
"""queue_log verb -> index of its calltime among the data fields."""
AGENT_PREFIX: Final = "Agent/"


@dataclass(frozen=True, slots=True)
class Periods:
    """The report's stretch of time, ``since`` (included) to ``until`` (excluded), cut
    into quarter hours, half hours, hours, days, weeks or months of ``tz`` (or left whole:
    ``total``). Kept in UTC: Python compares and subtracts two times of one zone on the wall
    clock, which is wrong on the days the clocks change."""

    since: datetime
    until: datetime
    by: Grouping
    tz: tzinfo

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("report bounds need a time zone")
        object.__setattr__(self, "since", self.since.astimezone(UTC))
        object.__setattr__(self, "until", self.until.astimezone(UTC))
        if self.until <= self.since:
            raise ValueError("the report ends before it starts")

    def covers(self, at: datetime) -> bool:
        return self.since <= at < self.until

    def _first_day(self, at: datetime) -> date:
        """The first day of the day, week or month of ``tz`` that ``at`` falls in."""
        day = at.astimezone(self.tz).date()
        if self.by == "week":
            return day - timedelta(days=day.weekday())
        if self.by == "month":
            return day.replace(day=1)
        return day

    def _floor(self, at: datetime) -> datetime:
        """The start of the period of ``tz`` that ``at`` falls in, in UTC."""
        minutes = _MINUTES.get(self.by)
        if minutes is None:
            return datetime.combine(self._first_day(at), time(), tzinfo=self.tz).astimezone(UTC)
        local = at.astimezone(self.tz)
        floor = local.minute - local.minute % minutes
        return local.replace(minute=floor, second=0, microsecond=0).astimezone(UTC)

    def _next(self, at: datetime) -> datetime:
        """The start of the period after the one ``at`` falls in (not clipped)."""
        if self.by == "total":
            return self.until
        minutes = _MINUTES.get(self.by)
        if minutes is not None:
            # A quarter hour is one in UTC, also across a change of the clocks.
            return self._floor(at) + timedelta(minutes=minutes)
        first = self._first_day(at)
        if self.by == "month":
            after = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            after = first + timedelta(days=7 if self.by == "week" else 1)
        return datetime.combine(after, time(), tzinfo=self.tz).astimezone(UTC)

    def label(self, at: datetime) -> str:
        """How the period ``at`` falls in is named in the report."""
        if self.by == "total":
            return f"{_local(self.since, self.tz)} - {_local(self.until, self.tz)}"
        local = self._floor(at).astimezone(self.tz)
        if self.by == "day":
            return local.date().isoformat()
        if self.by == "week":
            year, week, _ = local.date().isocalendar()
            return f"{year}-W{week:02d}"
        if self.by == "month":
            return local.strftime("%Y-%m")
        text = local.strftime("%Y-%m-%d %H:%M")
        # The hour the clocks go back comes twice: the second one says its offset.
        return f"{text} {local.strftime('%z')}" if local.fold else text

    def spans(self, start: datetime, end: datetime) -> Iterator[tuple[str, float]]:
        """(period label, seconds) of the part of ``start``..``end`` inside the report,
        cut at the periods' edges."""
        at = max(start.astimezone(UTC), self.since)
        stop = min(end.astimezone(UTC), self.until)
        while at < stop:
            edge = min(self._next(at), stop)
            yield self.label(at), (edge - at).total_seconds()
            at = edge


def _local(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


@dataclass(slots=True)
class SurveyFigures:
    """Post-call surveys in one period, of a queue or about an agent."""

    surveys: int = 0
    """Surveys callers were taken through."""
    scored: int = 0
    """... in which they gave a score."""
    score_total: int = 0
    rated: int = 0
    """Scored surveys of a survey with ``satisfied_from`` ..."""
    satisfied: int = 0
    """... whose score reached it."""

    @property
    def score_mean(self) -> float | None:
        """The mean score."""
        return _mean(self.score_total, self.scored)

    @property
    def csat_percent(self) -> float | None:
        """Satisfied callers (score at or over ``satisfied_from``) of those rated."""
        return _percent(self.satisfied, self.rated)

    def count(self, score: int | None, satisfied: bool | None) -> None:
        """One more survey, with its score and whether it reached ``satisfied_from``."""
        self.surveys += 1
        if score is not None:
            self.scored += 1
            self.score_total += score
        if satisfied is not None:
            self.rated += 1
            self.satisfied += satisfied

    def as_dict(self) -> dict[str, Any]:
        return {
            "surveys": self.surveys,
            "surveys_scored": self.scored,
            "survey_score_mean": _hundredths(self.score_mean),
            "csat_percent": _rounded(self.csat_percent),
        }


@dataclass(slots=True)
class QueueFigures:
    """One queue's figures in one period (seconds as floats)."""

    period: str
    queue: str
    service_level_seconds: float
    offered: int = 0
    answered: int = 0
    answered_in_time: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    """Hung up within the queue's ``short_abandon`` seconds: offered, but neither
    abandoned nor among the callers the service level and abandon rate are of."""
    exited: int = 0
    turned_away: int = 0
    wait_answered: float = 0.0
    wait_abandoned: float = 0.0
    max_wait: float = 0.0
    talk: float = 0.0
    talks: int = 0
    answered_known: int = 0
    """Answered callers whose number is known (first-call resolution counts those)."""
    called_again: int = 0
    """... of whom called again within the FCR window."""
    campaign_calls: int = 0
    """Campaign leads put through the queue (not offered: outbound, not inbound)."""
    agent_calls: int = 0
    """People agents dialled out to through the queue (``*77``: not offered either)."""
    resumed: int = 0
    """Offered callers who took back the place they had abandoned (``resume_abandoned``)."""
    survey: SurveyFigures = field(default_factory=SurveyFigures)
    """Post-call surveys of callers of the queue."""

    @property
    def fcr_percent(self) -> float | None:
        """First-call resolution: answered callers who did not call again."""
        known = self.answered_known
        return _percent(known - self.called_again, known)

    @property
    def counted(self) -> int:
        """The callers offered that the service level and abandon rate are of."""
        return self.offered - self.short_abandoned

    @property
    def service_level_percent(self) -> float | None:
        return _percent(self.answered_in_time, self.counted)

    @property
    def abandon_percent(self) -> float | None:
        return _percent(self.abandoned, self.counted)

    @property
    def asa_seconds(self) -> float | None:
        """Average speed of answer: the mean wait of the callers answered."""
        return _mean(self.wait_answered, self.answered)

    @property
    def aht_seconds(self) -> float | None:
        """Average handling (talk) time."""
        return _mean(self.talk, self.talks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "queue": self.queue,
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "exited": self.exited,
            "turned_away": self.turned_away,
            "answered_in_service_level": self.answered_in_time,
            "service_level_seconds": self.service_level_seconds,
            "service_level_percent": _rounded(self.service_level_percent),
            "abandon_percent": _rounded(self.abandon_percent),
            "asa_seconds": _rounded(self.asa_seconds),
            "max_wait_seconds": round(self.max_wait, 1),
            "mean_abandon_wait_seconds": _rounded(_mean(self.wait_abandoned, self.abandoned)),
            "aht_seconds": _rounded(self.aht_seconds),
            "talk_seconds": round(self.talk, 1),
            "called_again": self.called_again,
            "fcr_percent": _rounded(self.fcr_percent),
            "campaign_calls": self.campaign_calls,
            "agent_calls": self.agent_calls,
            "resumed": self.resumed,
            **self.survey.as_dict(),
            # Last: CSV readers of the columns before it keep their places.
            "short_abandoned": self.short_abandoned,
        }


@dataclass(slots=True)
class AgentFigures:
    """One agent's figures in one period (seconds as floats)."""

    period: str
    agent: str
    name: str = ""
    calls: int = 0
    dialled: int = 0
    """Of ``calls``, those the agent dialled out themselves (``*77``, ``agent dial``)."""
    missed: int = 0
    talk: float = 0.0
    talks: int = 0
    logged_in: float = 0.0
    paused: float = 0.0
    wrapup: float = 0.0
    """After-call work (wrap-up) seconds."""
    pauses: dict[str, float] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    """Dispositions given, by code."""
    survey: SurveyFigures = field(default_factory=SurveyFigures)
    """Post-call surveys about this agent."""
    messages: int = 0
    """Voicemail messages they dealt with (called back or done: ``queues.<q>.mailbox``)."""

    @property
    def occupancy_percent(self) -> float | None:
        """Talk and after-call work over the time the agent was logged in and not paused."""
        available = self.logged_in - self.paused
        return _percent(self.talk + self.wrapup, available) if available > 0 else None

    @property
    def aht_seconds(self) -> float | None:
        return _mean(self.talk, self.talks)

    @property
    def handle_seconds(self) -> float | None:
        """Mean handle time: talk and after-call work per talk."""
        return _mean(self.talk + self.wrapup, self.talks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "agent": self.agent,
            "name": self.name,
            "calls": self.calls,
            "dialled": self.dialled,
            "missed": self.missed,
            "talk_seconds": round(self.talk, 1),
            "aht_seconds": _rounded(self.aht_seconds),
            "logged_in_seconds": round(self.logged_in, 1),
            "paused_seconds": round(self.paused, 1),
            "acw_seconds": round(self.wrapup, 1),
            "handle_seconds": _rounded(self.handle_seconds),
            "pauses": {reason: round(s, 1) for reason, s in sorted(self.pauses.items())},
            "occupancy_percent": _rounded(self.occupancy_percent),
            "dispositions": dict(sorted(self.codes.items())),
            "voicemails": self.messages,
            **self.survey.as_dict(),
        }


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


def _percent(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _hundredths(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True, slots=True)
class SurveyTaken:
    """One post-call survey as the figures count it."""

    queue: str
    agent: str
    score: int | None
    at: datetime
    satisfied: bool | None = None


def _number(data: tuple[str, ...], index: int) -> float:
    """A numeric data field of a queue_log line; 0 when missing or garbled (the lines may
    come from an older version or a hand-edited file)."""
    try:
        return max(0.0, float(data[index]))
    except (IndexError, ValueError):
        return 0.0


@dataclass(slots=True)
class _Visit:
    """A caller's visit to a queue, from its ENTERQUEUE to its outcome."""

    figures: QueueFigures
    number: str = ""
    answered: bool = False


FCR_DAYS: Final = 7
"""Days within which a caller answered and calling again counts as not resolved at the
first call (first-call resolution)."""
_ANONYMOUS: Final = frozenset({"", "anonymous", "unknown", "restricted", "private", "none"})


def _resolved(
    answered: list[tuple[_Visit, datetime, str]],
    calls: Mapping[str, list[tuple[datetime, str]]],
    window: timedelta,
) -> None:
    """First-call resolution of the answered visits: a caller whose number joins a queue
    again on another call within ``window`` of the answer was not helped the first time."""
    for visit, at, callid in answered:
        later = calls.get(visit.number, ())
        limit = at + window
        # Walk from the answer on and stop at the first other call or the window's end:
        # a number that calls all day (a switchboard, a test line) costs no more per visit.
        i = bisect.bisect_right(later, (at, "\uffff"))
        again = False
        while i < len(later) and later[i][0] <= limit:
            if later[i][1] != callid:
                again = True
                break
            i += 1
        visit.figures.answered_known += 1
        if again:
            visit.figures.called_again += 1


def queue_summary(
    entries: Iterable[QueueLogEntry],
    periods: Periods,
    service_levels: Mapping[str, float],
    *,
    default_service_level: float = 20.0,
    fcr_days: int = FCR_DAYS,
    surveys: Iterable[SurveyTaken] = (),
    short_abandons: Mapping[str, float] | None = None,
) -> list[QueueFigures]:
    """Each queue's figures in each period, by period then queue (periods without a line
    are left out). ``entries`` in the order they were written; lines before
    ``periods.since`` are ignored, and lines after ``periods.until`` only give the
    outcome of visits that started inside and, up to ``fcr_days`` later, whether their
    callers called again. ``surveys`` count in the period they ended in.
    ``short_abandons``: per queue, the seconds within which a hang-up is a short abandon."""
    figures: dict[tuple[str, str], QueueFigures] = {}
    visits: dict[tuple[str, str], _Visit] = {}
    answered: list[tuple[_Visit, datetime, str]] = []
    calls: dict[str, list[tuple[datetime, str]]] = {}

    def row(label: str, queue: str) -> QueueFigures:
        found = figures.get((label, queue))
        if found is None:
            sl = service_levels.get(queue, default_service_level)
            found = figures[(label, queue)] = QueueFigures(label, queue, sl)
        return found

    for entry in entries:
        verb = entry.event
        queue = entry.queuename
        key = (entry.callid, queue)
        if verb == "ENTERQUEUE":
            if entry.data and entry.data[0].startswith(CAMPAIGN_URL):
                visits.pop(key, None)
                if periods.covers(entry.time):
                    row(periods.label(entry.time), queue).campaign_calls += 1
                continue
            if entry.data and entry.data[0].startswith(AGENT_URL):
                visits.pop(key, None)
                if periods.covers(entry.time):
                    row(periods.label(entry.time), queue).agent_calls += 1
                continue
            number = entry.data[1].strip().lower() if len(entry.data) > 1 else ""
            if number not in _ANONYMOUS and entry.time >= periods.since:
                calls.setdefault(number, []).append((entry.time, entry.callid))
            if periods.covers(entry.time):
                counted = row(periods.label(entry.time), queue)
                counted.offered += 1
                if entry.data and entry.data[0] == RESUMED_URL:
                    counted.resumed += 1
                visits[key] = _Visit(counted, "" if number in _ANONYMOUS else number)
            else:
                visits.pop(key, None)
            continue
        if verb in _TURNED_AWAY:
            if periods.covers(entry.time):
                row(periods.label(entry.time), queue).turned_away += 1
            continue
        visit = visits.get(key)
        if visit is None:
            continue
        counted, data = visit.figures, entry.data
        # One outcome per visit, whatever the lines say (a hand-edited or merged file).
        if verb == "CONNECT" and not visit.answered:
            visit.answered = True
            if visit.number:
                answered.append((visit, entry.time, entry.callid))
            wait = _number(data, 0)
            counted.answered += 1
            counted.wait_answered += wait
            counted.max_wait = max(counted.max_wait, wait)
            if wait <= counted.service_level_seconds:
                counted.answered_in_time += 1
        elif verb == "ABANDON" and not visit.answered:
            wait = _number(data, 2)
            short = (short_abandons or {}).get(queue, 0.0)
            if short > 0 and wait <= short:
                counted.short_abandoned += 1
                del visits[key]
                continue
            counted.abandoned += 1
            counted.wait_abandoned += wait
            counted.max_wait = max(counted.max_wait, wait)
            del visits[key]
        elif verb in _EXITS and not visit.answered:
            counted.exited += 1
            counted.max_wait = max(
                counted.max_wait, _number(data, 3 if verb == "EXITWITHKEY" else 2)
            )
            del visits[key]
        elif verb in _TALK_ENDS and visit.answered:
            counted.talk += _number(data, _TALK_ENDS[verb])
            counted.talks += 1
            del visits[key]
    for later in calls.values():
        later.sort()
    _resolved(answered, calls, timedelta(days=fcr_days))
    for survey in surveys:
        if periods.covers(survey.at):
            row(periods.label(survey.at), survey.queue).survey.count(survey.score, survey.satisfied)
    return sorted(figures.values(), key=lambda f: (f.period, f.queue))


def agent_id(queue_log_agent: str) -> str | None:
    """The agent id of a queue_log agent field (``Agent/1001``); None for ``NONE``."""
    if queue_log_agent.startswith(AGENT_PREFIX):
        return queue_log_agent[len(AGENT_PREFIX) :]
    return None


@dataclass(frozen=True, slots=True)
class Stretch:
    """An agent's logged-in or paused stretch of time (``end`` None: still going)."""

    agent: str
    start: datetime
    end: datetime | None
    reason: str = ""


def agent_summary(
    entries: Iterable[QueueLogEntry],
    sessions: Iterable[Stretch],
    pauses: Iterable[Stretch],
    periods: Periods,
    *,
    names: Mapping[str, str] | None = None,
    now: datetime | None = None,
    codes: Iterable[tuple[str, str, datetime]] = (),
    wrapups: Iterable[Stretch] = (),
    surveys: Iterable[SurveyTaken] = (),
    messages: Iterable[tuple[str, datetime]] = (),
) -> list[AgentFigures]:
    """Each agent's figures in each period, by period then agent (an agent with nothing in
    a period is left out). A stretch still going (``end`` None) counts up to ``now``.
    ``codes``: (agent, disposition code, when) of the dispositions they gave; ``wrapups``:
    their stretches of after-call work; ``surveys``: the post-call surveys about them;
    ``messages``: (agent, when) of the voicemail messages they dealt with."""
    names = names or {}
    now = now or datetime.now(UTC)
    figures: dict[tuple[str, str], AgentFigures] = {}

    def row(label: str, agent: str) -> AgentFigures:
        found = figures.get((label, agent))
        if found is None:
            found = figures[(label, agent)] = AgentFigures(label, agent, names.get(agent, ""))
        return found

    dialled: set[str] = set()
    for entry in entries:
        verb = entry.event
        if verb == "ENTERQUEUE" and entry.data and entry.data[0].startswith(AGENT_URL):
            dialled.add(entry.callid)
        if not periods.covers(entry.time):
            continue
        agent = agent_id(entry.agent)
        if agent is None:
            continue
        if verb == "CONNECT":
            counted = row(periods.label(entry.time), agent)
            counted.calls += 1
            if entry.callid in dialled:
                counted.dialled += 1
        elif verb == "RINGNOANSWER":
            row(periods.label(entry.time), agent).missed += 1
        elif verb in _TALK_ENDS:
            figures_row = row(periods.label(entry.time), agent)
            figures_row.talk += _number(entry.data, _TALK_ENDS[verb])
            figures_row.talks += 1
    for session in sessions:
        for label, seconds in periods.spans(session.start, session.end or now):
            row(label, session.agent).logged_in += seconds
    for pause in pauses:
        for label, seconds in periods.spans(pause.start, pause.end or now):
            figures_row = row(label, pause.agent)
            figures_row.paused += seconds
            figures_row.pauses[pause.reason] = figures_row.pauses.get(pause.reason, 0.0) + seconds
    for wrapup in wrapups:
        for label, seconds in periods.spans(wrapup.start, wrapup.end or now):
            row(label, wrapup.agent).wrapup += seconds
    for agent, when in messages:
        if periods.covers(when):
            row(periods.label(when), agent).messages += 1
    for agent, code, when in codes:
        if periods.covers(when):
            figures_row = row(periods.label(when), agent)
            figures_row.codes[code] = figures_row.codes.get(code, 0) + 1
    for survey in surveys:
        if periods.covers(survey.at):
            row(periods.label(survey.at), survey.agent).survey.count(survey.score, survey.satisfied)
    return sorted(figures.values(), key=lambda f: (f.period, f.agent))


class FiguresStore(Protocol):
    """What the figures read from a records database (see :mod:`callcenter.records.store`)."""

    def fetch_queue_log_between(self, since: datetime, until: datetime) -> list[QueueLogEntry]: ...

    def fetch_dispositions_between(
        self, since: datetime, until: datetime
    ) -> list[DispositionRecord]: ...

    def fetch_shifts_between(
        self, since: datetime, until: datetime
    ) -> tuple[list[Stretch], list[Stretch]]: ...

    def fetch_wrapups_between(self, since: datetime, until: datetime) -> list[Stretch]: ...

    def fetch_surveys_between(self, since: datetime, until: datetime) -> list[SurveyRecord]: ...

    def fetch_voicemails(self) -> list[VoicemailMessage]: ...


def read_queue_figures(
    store: FiguresStore,
    periods: Periods,
    service_levels: Mapping[str, float],
    *,
    fcr_days: int = FCR_DAYS,
    short_abandons: Mapping[str, float] | None = None,
) -> list[QueueFigures]:
    """:func:`queue_summary` of what ``store`` holds (blocking: a thread's job)."""
    later = max(OUTCOME_GRACE, timedelta(days=fcr_days))
    entries = store.fetch_queue_log_between(periods.since, periods.until + later)
    surveys = _surveys(store, periods)
    return queue_summary(
        entries,
        periods,
        service_levels,
        fcr_days=fcr_days,
        surveys=surveys,
        short_abandons=short_abandons,
    )


def _surveys(store: FiguresStore, periods: Periods) -> list[SurveyTaken]:
    return [
        SurveyTaken(r.queue, r.agent, r.score, r.at, r.satisfied)
        for r in store.fetch_surveys_between(periods.since, periods.until)
    ]


def read_agent_figures(
    store: FiguresStore, periods: Periods, names: Mapping[str, str]
) -> list[AgentFigures]:
    """:func:`agent_summary` of what ``store`` holds (blocking: a thread's job)."""
    entries = store.fetch_queue_log_between(periods.since, periods.until)
    sessions, pauses = store.fetch_shifts_between(periods.since, periods.until)
    given = store.fetch_dispositions_between(periods.since, periods.until)
    codes = [(d.agent, d.code, d.at) for d in given]
    wrapups = store.fetch_wrapups_between(periods.since, periods.until)
    return agent_summary(
        entries,
        sessions,
        pauses,
        periods,
        names=names,
        codes=codes,
        wrapups=wrapups,
        surveys=_surveys(store, periods),
        messages=[
            (m.agent, m.updated)
            for m in store.fetch_voicemails()
            if m.status == "done" and m.updated is not None and m.agent
        ],
    )


def day_start(day: date, tz: tzinfo) -> datetime:
    """Midnight starting ``day`` in ``tz``."""
    return datetime.combine(day, time(), tzinfo=tz)


def parse_when(text: str, tz: tzinfo, *, now: datetime | None = None) -> datetime:
    """A report bound as people type it: ``today``, ``yesterday``, ``2026-12-01`` (its
    midnight), ``2026-12-01 08:00`` / ``2026-12-01T08:00:00`` (in ``tz`` unless it names
    its own offset). ValueError with what was expected otherwise."""
    now = now or datetime.now(UTC)
    word = text.strip().lower()
    today = now.astimezone(tz).date()
    if word == "today":
        return day_start(today, tz)
    if word == "yesterday":
        return day_start(today - timedelta(days=1), tz)
    if word == "now":
        return now
    try:
        if len(word) == 10:
            return day_start(date.fromisoformat(word), tz)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use today, yesterday, now, 2026-12-01 or 2026-12-01 08:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _clock(seconds: float | None) -> str:
    """``h:mm:ss`` (``m:ss`` under an hour); empty for no value."""
    if seconds is None:
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _table(head: list[tuple[str, int]], rows: list[list[str]]) -> str:
    def line(cells: Iterable[str]) -> str:
        out = []
        for (name, width), cell in zip(head, cells, strict=True):
            out.append(cell[:width].ljust(width) if name in _LEFT else cell[:width].rjust(width))
        return " ".join(out).rstrip()

    title = line(name for name, _ in head)
    return "\n".join([title, "-" * len(title), *(line(r) for r in rows)])


_LEFT: Final = frozenset({"period", "queue", "agent", "name", "codes"})


def agents_needed(
    f: QueueFigures, target: float, wrapup: float = 0.0, patience: float | None = None
) -> int | None:
    """Erlang C (:mod:`callcenter.staffing`; with ``patience``, the callers' mean seconds
    before hanging up, Erlang A): the agents an hour's callers of ``f`` needed for
    ``target`` (a share) of them to be answered within the queue's service level, their
    mean talk plus ``wrapup`` (the queue's after-call seconds) as the handle time. None
    when no call was answered to measure the handle time by (0 when none was offered).
    Short abandons are no load: they are left out."""
    if f.counted == 0:
        return 0
    talk = f.aht_seconds
    if talk is None:
        return None
    handle = max(1.0, talk + wrapup)
    try:
        needed = staffing.agents_needed(
            f.counted, handle, f.service_level_seconds, target, patience=patience
        )
    except ValueError:
        return None  # callers so patient beside so few agents: no figure to give
    return needed.agents


def patience_by_queue(figures: Sequence[QueueFigures]) -> dict[str, float | None]:
    """Each queue's callers' mean patience in seconds over all of ``figures``
    (:func:`callcenter.staffing.patience_estimate`: abandons over every second callers
    waited, answered or not; callers taken out by a timeout or an exit key are left out);
    None for a queue where nobody hung up."""
    abandoned: dict[str, int] = {}
    waited: dict[str, float] = {}
    for f in figures:
        abandoned[f.queue] = abandoned.get(f.queue, 0) + f.abandoned
        waited[f.queue] = waited.get(f.queue, 0.0) + f.wait_answered + f.wait_abandoned
    return {
        queue: staffing.patience_estimate(abandoned[queue], waited[queue]) for queue in abandoned
    }


def format_queue_table(
    figures: list[QueueFigures],
    by: Grouping,
    needed: Sequence[int | None] | None = None,
    scheduled: Sequence[float] | None = None,
) -> str:
    """The queue summary as a terminal table (``needed``: an "agents" column, one per
    figure, from :func:`agents_needed`; ``scheduled``: a "sched" column beside it, the
    agents scheduled then)."""
    width = 33 if by == "total" else (16 if by in _MINUTES else 10)
    head = [
        ("period", width),
        ("queue", 12),
        ("offered", 7),
        ("answered", 8),
        ("abandoned", 9),
        ("exited", 6),
        ("SL %", 6),
        ("SL s", 4),
        ("aband %", 7),
        ("ASA", 7),
        ("max wait", 8),
        ("AHT", 7),
        ("FCR %", 6),
        ("surveys", 7),
        ("score", 5),
        ("CSAT %", 6),
    ]
    if needed is not None:
        head.append(("agents", 6))
    if scheduled is not None:
        head.append(("sched", 5))
    rows = [
        [
            f.period,
            f.queue,
            str(f.offered),
            str(f.answered),
            str(f.abandoned),
            str(f.exited),
            _pct(f.service_level_percent),
            f"{f.service_level_seconds:g}",
            _pct(f.abandon_percent),
            _clock(f.asa_seconds),
            _clock(f.max_wait),
            _clock(f.aht_seconds),
            _pct(f.fcr_percent),
            str(f.survey.surveys),
            _score(f.survey.score_mean),
            _pct(f.survey.csat_percent),
        ]
        for f in figures
    ]
    if needed is not None:
        for row, agents in zip(rows, needed, strict=True):
            row.append("-" if agents is None else str(agents))
    if scheduled is not None:
        for row, planned in zip(rows, scheduled, strict=True):
            row.append(f"{planned:.1f}")
    text = _table(head, rows)
    turned = sum(f.turned_away for f in figures)
    if turned:
        text += f"\n{turned} caller(s) turned away on arrival (queue full or no agents)"
    short = sum(f.short_abandoned for f in figures)
    if short:
        text += (
            f"\n{short} short abandon(s): hung up within the queue's short_abandon seconds, "
            "not counted as abandoned nor in SL % and aband %"
        )
    resumed = sum(f.resumed for f in figures)
    if resumed:
        text += f"\n{resumed} caller(s) took back the place they had abandoned (resume_abandoned)"
    leads = sum(f.campaign_calls for f in figures)
    if leads:
        text += (
            f"\n{leads} campaign lead(s) put through these queues, not counted above "
            "(report --campaign ID)"
        )
    dialled = sum(f.agent_calls for f in figures)
    if dialled:
        text += (
            f"\n{dialled} call(s) agents dialled out through these queues (*77), not counted "
            "above (report --agents counts their talk)"
        )
    return text


def format_agent_table(figures: list[AgentFigures], by: Grouping) -> str:
    """The agent summary as a terminal table."""
    width = 33 if by == "total" else (16 if by in _MINUTES else 10)
    head = [
        ("period", width),
        ("agent", 8),
        ("name", 16),
        ("calls", 5),
        ("dialled", 7),
        ("missed", 6),
        ("talk", 8),
        ("AHT", 7),
        ("ACW", 8),
        ("handle", 7),
        ("logged in", 9),
        ("paused", 8),
        ("occ %", 5),
        ("surveys", 7),
        ("score", 5),
        ("CSAT %", 6),
        ("msgs", 4),
        ("codes", 30),
    ]
    rows = [
        [
            f.period,
            f.agent,
            f.name,
            str(f.calls),
            str(f.dialled),
            str(f.missed),
            _clock(f.talk),
            _clock(f.aht_seconds),
            _clock(f.wrapup),
            _clock(f.handle_seconds),
            _clock(f.logged_in),
            _clock(f.paused),
            _pct(f.occupancy_percent),
            str(f.survey.surveys),
            _score(f.survey.score_mean),
            _pct(f.survey.csat_percent),
            str(f.messages),
            " ".join(f"{code}={n}" for code, n in sorted(f.codes.items())),
        ]
        for f in figures
    ]
    return _table(head, rows)
