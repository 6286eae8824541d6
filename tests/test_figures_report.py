"""``callcenter report --queues`` / ``--agents``: a manager's figures over a day, an hour or
a stretch of days, folded from the queue_log lines and the agents' shift records."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics import samples
from test_record_rescue import cdr

from callcenter import staffing
from callcenter.cli import main as cli_main
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.shifts import AgentPause, AgentPresence, AgentSession
from callcenter.records.store import CDR_COLUMNS, SqliteCdrStore
from callcenter.records.summary import (
    GROUPINGS,
    Periods,
    Stretch,
    SurveyTaken,
    agent_summary,
    agents_needed,
    format_agent_table,
    format_queue_table,
    parse_when,
    queue_summary,
)
from callcenter.records.surveys import SurveyRecord
from callcenter.testing import running_center

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 12, 1, tzinfo=BERLIN)
_keys = itertools.count()


def at(hh_mm_ss: str, day: datetime = DAY) -> datetime:
    h, m, s = (int(x) for x in hh_mm_ss.split(":"))
    return day.replace(hour=h, minute=m, second=s).astimezone(UTC)


def line(
    when: str,
    callid: str,
    event: str,
    *data: str,
    queue: str = "support",
    agent: str = "NONE",
    day: datetime = DAY,
) -> QueueLogEntry:
    return QueueLogEntry(f"k{next(_keys)}", at(when, day), callid, queue, agent, event, data)


def whole_day(by: str = "total") -> Periods:
    return Periods(DAY, DAY + timedelta(days=1), by, BERLIN)  # type: ignore[arg-type]


# A morning in the support queue, as the daemon writes it (data fields as app_queue's).
MORNING = [
    # answered after 8 s by 1002 (1001 rang out first), talked 120 s
    line("09:00:00", "c1", "ENTERQUEUE", "", "5550001", "1"),
    line("09:00:05", "c1", "RINGNOANSWER", "5000", agent="Agent/1001"),
    line("09:00:08", "c1", "CONNECT", "8", "", "2", agent="Agent/1002"),
    line("09:02:08", "c1", "COMPLETECALLER", "8", "120", "1", agent="Agent/1002"),
    # answered after 40 s (outside the 20 s service level), agent hung up after 60 s
    line("09:10:00", "c2", "ENTERQUEUE", "", "5550002", "1"),
    line("09:10:40", "c2", "CONNECT", "40", "", "3", agent="Agent/1001"),
    line("09:11:40", "c2", "COMPLETEAGENT", "40", "60", "1", agent="Agent/1001"),
    # gave up after 30 s
    line("09:20:00", "c3", "ENTERQUEUE", "", "5550003", "1"),
    line("09:20:30", "c3", "ABANDON", "1", "1", "30"),
    # pressed 1 for a callback after 15 s
    line("09:30:00", "c4", "ENTERQUEUE", "", "5550004", "1"),
    line("09:30:15", "c4", "EXITWITHKEY", "1", "1", "1", "15"),
    # the queue was full
    line("09:40:00", "c5", "FULL"),
    # answered after 4 s, transferred after 30 s of talk
    line("10:00:00", "c6", "ENTERQUEUE", "", "5550006", "1"),
    line("10:00:04", "c6", "CONNECT", "4", "", "1", agent="Agent/1002"),
    line("10:00:34", "c6", "BLINDTRANSFER", "2000", "", "4", "30", "1", agent="Agent/1002"),
]


def test_a_morning_in_one_queue_gives_offered_answered_abandoned_and_service_level() -> None:
    [support] = queue_summary(MORNING, whole_day(), {"support": 20.0})
    figures = support.as_dict()
    assert figures["period"] == "2026-12-01 00:00 - 2026-12-02 00:00"
    assert (support.offered, support.answered, support.abandoned, support.exited) == (5, 3, 1, 1)
    assert support.turned_away == 1, "a caller turned away never joined: not offered"
    assert figures["answered_in_service_level"] == 2
    assert figures["service_level_percent"] == 40.0, "2 of 5 offered within 20 s"
    assert figures["abandon_percent"] == 20.0
    assert figures["asa_seconds"] == round((8 + 40 + 4) / 3, 1)
    assert figures["max_wait_seconds"] == 40
    assert figures["mean_abandon_wait_seconds"] == 30
    assert figures["aht_seconds"] == round((120 + 60 + 30) / 3, 1)


def test_an_attended_transfer_ends_the_agent_s_talk_as_a_blind_one_does() -> None:
    handed_over = [
        line("10:10:00", "c7", "ENTERQUEUE", "", "5550007", "1"),
        line("10:10:06", "c7", "CONNECT", "6", "", "1", agent="Agent/1001"),
        line(
            "10:11:36",
            "c7",
            "ATTENDEDTRANSFER",
            "BRIDGE",
            "2000",
            "6",
            "90",
            "1",
            agent="Agent/1001",
        ),
    ]
    [support] = queue_summary(handed_over, whole_day(), {"support": 20.0})
    assert (support.answered, support.as_dict()["aht_seconds"]) == (1, 90)
    [alice] = agent_summary(handed_over, [], [], whole_day(), now=DAY + timedelta(days=1))
    assert (alice.agent, alice.calls, alice.talk) == ("1001", 1, 90)


def test_campaign_leads_put_through_a_queue_are_not_its_inbound_callers() -> None:
    leads = [
        line("11:00:00", "l1", "ENTERQUEUE", "campaign:spring", "5551001", "1"),
        line("11:00:01", "l1", "CONNECT", "1", "", "1", agent="Agent/1001"),
        line("11:01:01", "l1", "COMPLETECALLER", "1", "60", "1", agent="Agent/1001"),
        line("11:05:00", "l2", "ENTERQUEUE", "campaign:spring", "5551002", "1"),
        line("11:05:02", "l2", "EXITWITHTIMEOUT", "1", "1", "2"),
    ]
    [support] = queue_summary([*MORNING, *leads], whole_day(), {"support": 20.0})
    [alone] = queue_summary(MORNING, whole_day(), {"support": 20.0})
    assert support.campaign_calls == 2 and alone.campaign_calls == 0
    figures = support.as_dict()
    assert {**figures, "campaign_calls": 0} == alone.as_dict(), "the inbound figures unchanged"
    [alice] = [a for a in agent_summary(leads, [], [], whole_day(), now=DAY + timedelta(days=1))]
    assert (alice.calls, alice.talk) == (1, 60), "the agent's work counts"
    assert "2 campaign lead(s) put through these queues" in format_queue_table([support], "total")


def test_a_caller_who_hangs_up_within_short_abandon_is_neither_abandoned_nor_counted() -> None:
    """A wrong number hangs up after 3 s: with ``short_abandon: 5`` the morning's service
    level and abandon rate are of the 5 callers who meant to call, as before it."""
    wrong = [
        line("10:30:00", "c8", "ENTERQUEUE", "", "5550008", "1"),
        line("10:30:03", "c8", "ABANDON", "1", "1", "3"),
    ]
    [counted] = queue_summary([*MORNING, *wrong], whole_day(), {"support": 20.0})
    [short] = queue_summary(
        [*MORNING, *wrong], whole_day(), {"support": 20.0}, short_abandons={"support": 5.0}
    )
    [alone] = queue_summary(MORNING, whole_day(), {"support": 20.0})
    assert (counted.offered, counted.abandoned, counted.short_abandoned) == (6, 2, 0)
    assert (short.offered, short.abandoned, short.short_abandoned) == (6, 1, 1)
    figures = short.as_dict()
    assert figures["short_abandoned"] == 1
    for key in ("service_level_percent", "abandon_percent", "mean_abandon_wait_seconds"):
        assert figures[key] == alone.as_dict()[key], key
    assert counted.as_dict()["service_level_percent"] == round(100 * 2 / 6, 1)
    assert "1 short abandon(s)" in format_queue_table([short], "total")
    assert agents_needed(short, 0.8) == agents_needed(alone, 0.8), "no load"


def test_a_caller_a_supervisor_sent_elsewhere_counts_as_exited() -> None:
    withdrawn = [
        line("11:00:00", "c9", "ENTERQUEUE", "", "5550009", "1"),
        line("11:00:40", "c9", "WITHDRAW", "1", "1", "40"),
    ]
    [support] = queue_summary([*MORNING, *withdrawn], whole_day(), {"support": 20.0})
    assert (support.offered, support.exited, support.max_wait) == (6, 2, 40)


def test_the_service_level_is_each_queue_s_own() -> None:
    [support] = queue_summary(MORNING, whole_day(), {"support": 45.0})
    assert support.answered_in_time == 3


def test_by_hour_a_call_counts_in_the_hour_it_joined_even_when_answered_in_the_next() -> None:
    lines = [
        line("13:59:50", "c1", "ENTERQUEUE", "", "5550001", "1"),
        line("14:00:20", "c1", "CONNECT", "30", "", "1", agent="Agent/1001"),
        line("14:05:00", "c2", "ENTERQUEUE", "", "5550002", "1"),
        line("14:05:03", "c2", "ABANDON", "1", "1", "3"),
    ]
    rows = [f.as_dict() for f in queue_summary(lines, whole_day("hour"), {})]
    assert [(r["period"], r["offered"], r["answered"], r["abandoned"]) for r in rows] == [
        ("2026-12-01 13:00", 1, 1, 0),
        ("2026-12-01 14:00", 1, 0, 1),
    ]


def test_a_visit_that_began_before_the_report_is_left_out_and_one_answered_after_it_counts() -> (
    None
):
    lines = [
        line("23:59:50", "early", "ENTERQUEUE", "", "1", "1", day=DAY - timedelta(days=1)),
        line("00:00:10", "early", "CONNECT", "20", "", "1", agent="Agent/1001"),
        line("23:59:55", "late", "ENTERQUEUE", "", "2", "1"),
        line(
            "00:00:30",
            "late",
            "CONNECT",
            "35",
            "",
            "1",
            agent="Agent/1001",
            day=DAY + timedelta(days=1),
        ),
    ]
    [row] = queue_summary(lines, whole_day("day"), {})
    assert (row.period, row.offered, row.answered, row.max_wait) == ("2026-12-01", 1, 1, 35)


def test_a_caller_sent_from_queue_to_queue_counts_in_each() -> None:
    lines = [
        line("09:00:00", "c1", "ENTERQUEUE", "", "5550001", "1"),
        line("09:01:00", "c1", "EXITWITHTIMEOUT", "1", "1", "60"),
        line("09:01:00", "c1", "ENTERQUEUE", "", "5550001", "1", queue="overflow"),
        line("09:01:05", "c1", "CONNECT", "5", "", "1", queue="overflow", agent="Agent/1003"),
    ]
    rows = {f.queue: f for f in queue_summary(lines, whole_day(), {})}
    assert (rows["support"].offered, rows["support"].exited, rows["support"].answered) == (1, 1, 0)
    assert (rows["overflow"].offered, rows["overflow"].answered) == (1, 1)


def test_a_caller_answered_who_calls_again_within_the_days_was_not_helped_the_first_time() -> None:
    day2, day9 = DAY + timedelta(days=1), DAY + timedelta(days=8)
    lines = [
        *MORNING,
        # 5550001 (c1, answered) calls again the next day: not resolved at the first call
        line("10:00:00", "c7", "ENTERQUEUE", "", "5550001", "1", day=day2),
        # 5550002 (c2) is transferred on to another queue: the same call, not a new one
        line("09:12:00", "c2", "ENTERQUEUE", "", "5550002", "1", queue="billing"),
        # 5550006 (c6) calls again, but eight days later: outside the 7 days
        line("10:00:00", "c8", "ENTERQUEUE", "", "5550006", "1", day=day9),
        # an anonymous caller answered twice is not counted at all
        line("11:00:00", "a1", "ENTERQUEUE", "", "anonymous", "1"),
        line("11:00:05", "a1", "CONNECT", "5", "", "1", agent="Agent/1001"),
        line("11:30:00", "a2", "ENTERQUEUE", "", "anonymous", "1"),
    ]
    support = next(f for f in queue_summary(lines, whole_day(), {}) if f.queue == "support")
    assert (support.answered, support.answered_known, support.called_again) == (4, 3, 1)
    assert support.as_dict()["fcr_percent"] == round(100 * 2 / 3, 1)
    [strict] = [
        f for f in queue_summary(lines, whole_day(), {}, fcr_days=30) if f.queue == "support"
    ]
    assert strict.called_again == 2, "within 30 days 5550006's second call counts too"


def test_garbled_numbers_in_a_line_count_as_zero_rather_than_stop_the_report() -> None:
    lines = [
        line("09:00:00", "c1", "ENTERQUEUE", "", "5550001", "1"),
        line("09:00:08", "c1", "CONNECT", "eight", agent="Agent/1002"),
    ]
    [row] = queue_summary(lines, whole_day(), {})
    assert (row.answered, row.answered_in_time, row.asa_seconds) == (1, 1, 0.0)


def test_an_agent_s_day_gives_calls_missed_talk_logged_in_paused_and_occupancy() -> None:
    sessions = [Stretch("1002", at("08:00:00"), at("12:00:00"))]
    pauses = [
        Stretch("1002", at("10:30:00"), at("11:00:00"), "lunch"),
        Stretch("1002", at("11:30:00"), at("11:45:00"), "break"),
    ]
    messages = [
        ("1002", at("11:10:00")),
        ("1002", at("11:50:00")),
        ("1002", at("23:59:00", DAY - timedelta(days=1))),
    ]
    figures = agent_summary(
        MORNING, sessions, pauses, whole_day(), names={"1002": "Bob"}, messages=messages
    )
    by_agent = {f.agent: f.as_dict() for f in figures}
    bob = by_agent["1002"]
    assert bob["voicemails"] == 2, "the messages he dealt with that day, not the day before"
    assert "msgs" in format_agent_table(figures, "day").splitlines()[0]
    assert (bob["name"], bob["calls"], bob["missed"], bob["talk_seconds"]) == ("Bob", 2, 0, 150)
    assert bob["logged_in_seconds"] == 4 * 3600
    assert bob["paused_seconds"] == 45 * 60
    assert bob["pauses"] == {"break": 900.0, "lunch": 1800.0}
    assert bob["occupancy_percent"] == round(100 * 150 / (4 * 3600 - 45 * 60), 1)
    alice = by_agent["1001"]
    assert (alice["calls"], alice["missed"], alice["talk_seconds"]) == (1, 1, 60)
    assert alice["logged_in_seconds"] == 0 and alice["occupancy_percent"] is None


def test_after_call_work_counts_in_handle_time_and_occupancy_not_in_talk() -> None:
    sessions = [Stretch("1002", at("08:00:00"), at("12:00:00"))]
    wrapups = [
        Stretch("1002", at("09:02:08"), at("09:02:38")),
        Stretch("1002", at("10:00:34"), at("10:01:04")),
    ]
    figures = agent_summary(MORNING, sessions, [], whole_day(), wrapups=wrapups)
    [bob] = [f.as_dict() for f in figures if f.agent == "1002"]
    assert (bob["talk_seconds"], bob["aht_seconds"], bob["acw_seconds"]) == (150, 75, 60)
    assert bob["handle_seconds"] == (150 + 60) / 2
    assert bob["occupancy_percent"] == round(100 * (150 + 60) / (4 * 3600), 1)
    table = format_agent_table(
        agent_summary(MORNING, sessions, [], whole_day(), wrapups=wrapups), "total"
    )
    assert "ACW" in table.splitlines()[0] and "handle" in table.splitlines()[0]


def test_a_shift_across_midnight_is_cut_at_midnight_and_one_still_going_counts_to_now() -> None:
    night = Stretch("1001", at("22:00:00"), at("02:00:00", DAY + timedelta(days=1)))
    still = Stretch("1002", at("23:00:00", DAY + timedelta(days=1)), None)
    periods = Periods(DAY, DAY + timedelta(days=3), "day", BERLIN)
    now = at("23:30:00", DAY + timedelta(days=1))
    rows = [
        (f.period, f.agent, f.logged_in)
        for f in agent_summary([], [night, still], [], periods, now=now)
    ]
    assert rows == [
        ("2026-12-01", "1001", 2 * 3600),
        ("2026-12-02", "1001", 2 * 3600),
        ("2026-12-02", "1002", 30 * 60),
    ]


def test_the_day_the_clocks_go_back_has_25_hours() -> None:
    day = datetime(2026, 10, 25, tzinfo=BERLIN)
    periods = Periods(day, day + timedelta(days=1), "hour", BERLIN)
    spans = list(periods.spans(periods.since, periods.until))
    assert len(spans) == 25 and all(seconds == 3600 for _, seconds in spans)
    labels = [label for label, _ in spans]
    assert len(set(labels)) == 25 and labels == sorted(labels)
    assert labels[2:4] == ["2026-10-25 02:00", "2026-10-25 02:00 +0100"], "the hour twice"
    day_periods = Periods(day, day + timedelta(days=1), "day", BERLIN)
    assert list(day_periods.spans(day, day + timedelta(days=1))) == [("2026-10-25", 25 * 3600)]


def test_quarter_hours_weeks_and_months_are_named_and_cut_in_the_centres_time() -> None:
    """The intervals workforce planning reads: a morning's calls by quarter hour, and the
    same calls in their ISO week and month; the night the clocks go back has 100 quarters."""
    quarters = {f.period: f.offered for f in queue_summary(MORNING, whole_day("15min"), {})}
    halves = {f.period: f.offered for f in queue_summary(MORNING, whole_day("30min"), {})}
    [week] = queue_summary(MORNING, whole_day("week"), {})
    [month] = queue_summary(MORNING, whole_day("month"), {})
    assert quarters == {
        "2026-12-01 09:00": 2, "2026-12-01 09:15": 1, "2026-12-01 09:30": 1,
        "2026-12-01 10:00": 1,
    }  # fmt: skip
    assert halves == {"2026-12-01 09:00": 3, "2026-12-01 09:30": 1, "2026-12-01 10:00": 1}
    assert (week.period, week.offered) == ("2026-W49", 5)
    assert (month.period, month.offered) == ("2026-12", 5)
    night = datetime(2026, 10, 25, tzinfo=BERLIN)
    periods = Periods(night, night + timedelta(days=1), "15min", BERLIN)
    spans = list(periods.spans(periods.since, periods.until))
    assert len(spans) == 100 and len({label for label, _ in spans}) == 100
    assert all(seconds == 900 for _, seconds in spans)
    later = night + timedelta(days=40)
    months = Periods(night, later, "month", BERLIN).spans(night, later)
    assert [(label, round(s / 86400, 2)) for label, s in months] == [
        ("2026-10", 7.04), ("2026-11", 30.0), ("2026-12", 3.0),
    ], "October's last week has the hour the clocks go back"  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 5 * 86400),
    length=st.integers(0, 3 * 86400),
    by=st.sampled_from(GROUPINGS),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
)
def test_any_stretch_is_cut_into_pieces_that_add_up_to_its_part_inside_the_report(
    start: int, length: int, by: str, zone: str
) -> None:
    tz = ZoneInfo(zone)
    since = datetime(2026, 3, 27, 5, 17, tzinfo=tz)
    periods = Periods(since, since + timedelta(days=4), by, tz)  # type: ignore[arg-type]
    begin = since - timedelta(days=1) + timedelta(seconds=start)
    end = begin.astimezone(UTC) + timedelta(seconds=length)
    pieces = list(periods.spans(begin, end))
    inside = (min(end, periods.until) - max(begin.astimezone(UTC), periods.since)).total_seconds()
    assert sum(s for _, s in pieces) == pytest.approx(max(0.0, inside))
    labels = [label for label, _ in pieces]
    assert labels == sorted(labels) and len(set(labels)) == len(labels)
    assert all(s > 0 for _, s in pieces)


_VERBS = st.sampled_from(
    ["ENTERQUEUE", "CONNECT", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", "COMPLETECALLER", "FULL"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 36 * 3600),
            st.sampled_from(["c1", "c2", "c3"]),
            st.sampled_from(["support", "sales"]),
            _VERBS,
            st.lists(st.sampled_from(["0", "5", "30", "x", ""]), max_size=5),
        ),
        max_size=40,
    )
)
def test_any_lines_give_no_more_outcomes_than_visits_offered(
    raw: list[tuple[int, str, str, str, list[str]]],
) -> None:
    lines = [
        QueueLogEntry(
            f"k{n}",
            (DAY + timedelta(seconds=offset)).astimezone(UTC),
            callid,
            queue,
            "Agent/1001",
            verb,
            tuple(data),
        )
        for n, (offset, callid, queue, verb, data) in enumerate(sorted(raw, key=lambda r: r[0]))
    ]
    rows = queue_summary(lines, whole_day("hour"), {})
    for row in rows:
        assert row.answered + row.abandoned + row.exited <= row.offered
        assert row.answered_in_time <= row.answered
        assert row.called_again <= row.answered_known <= row.answered
        assert 0 <= (row.service_level_percent or 0) <= 100
    enters = sum(1 for e in lines if e.event == "ENTERQUEUE" and whole_day().covers(e.time))
    assert sum(r.offered for r in rows) == enters


def test_report_bounds_read_as_people_type_them() -> None:
    now = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
    assert parse_when("today", BERLIN, now=now) == datetime(2026, 12, 5, tzinfo=BERLIN)
    assert parse_when("yesterday", BERLIN, now=now) == datetime(2026, 12, 4, tzinfo=BERLIN)
    assert parse_when("2026-12-01", BERLIN) == datetime(2026, 12, 1, tzinfo=BERLIN)
    assert parse_when("2026-12-01 08:00", BERLIN) == datetime(2026, 12, 1, 8, tzinfo=BERLIN)
    assert parse_when("2026-12-01T08:00+00:00", BERLIN) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="use today, yesterday"):
        parse_when("last tuesday", BERLIN)


# ------------------------------------------------------------------ the command


def survey(call_id: str, agent: str, score: int | None, when: str) -> SurveyRecord:
    """A survey of the support queue, whose ``satisfied_from`` is 4."""
    answers = () if score is None else (("rating", str(score)),)
    satisfied = None if score is None else score >= 4
    return SurveyRecord(
        call_id, "support", agent, "csat", "5550001", score, answers, score is not None, 9.5,
        at(when), satisfied,
    )  # fmt: skip


# c1 and c6 rated Bob 5 and hung up before giving c6's score; c2 rated Alice 2.
SURVEYS = [
    survey("c1", "1002", 5, "09:02:20"),
    survey("c2", "1001", 2, "09:11:50"),
    survey("c6", "1002", None, "10:00:50"),
]


def test_surveys_give_each_agent_and_queue_their_count_and_mean_score() -> None:
    taken = [SurveyTaken(r.queue, r.agent, r.score, r.at, r.satisfied) for r in SURVEYS]
    [support] = queue_summary(MORNING, whole_day(), {"support": 20.0}, surveys=taken)
    surveyed = support.survey
    assert (surveyed.surveys, surveyed.scored, surveyed.score_mean) == (3, 2, 3.5)
    assert surveyed.csat_percent == 50.0, "one of the two scores reached 4"
    agents = {f.agent: f.as_dict() for f in agent_summary(MORNING, [], [], whole_day(),
                                                           surveys=taken)}  # fmt: skip
    assert (agents["1002"]["surveys"], agents["1002"]["surveys_scored"]) == (2, 1)
    assert agents["1002"]["survey_score_mean"] == 5.0
    assert agents["1001"]["survey_score_mean"] == 2.0
    assert (agents["1002"]["csat_percent"], agents["1001"]["csat_percent"]) == (100.0, 0.0)
    hourly = queue_summary(MORNING, whole_day("hour"), {"support": 20.0}, surveys=taken)
    assert [(f.period[-5:], f.survey.surveys, f.survey.score_mean) for f in hourly] == [
        ("09:00", 2, 3.5),
        ("10:00", 1, None),
    ], "a survey counts in the hour it ended in"


def _records(tmp_path: Path, extra: str = "") -> Path:
    """A config (two agents, Berlin time) and a database holding MORNING and Bob's shift."""
    config = tmp_path / "callcenter.yaml"
    config.write_text(
        "pbx: {type: asterisk, ami: {secret: x}}\n"
        "records: {cdr_path: var/cdr.sqlite3}\n"
        "ivr: {timezone: Europe/Berlin}\n"
        "agents:\n"
        "  '1001': {name: Alice, device: PJSIP/1001}\n"
        "  '1002': {name: Bob, device: PJSIP/1002}\n"
        "queues:\n"
        "  support: {agents: ['1001', '1002'], service_level: 30}\n" + extra
    )
    (tmp_path / "var").mkdir()
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        store.write_queue_log(tuple(MORNING))
        store.write_agent_session(
            AgentSession("1002", at("08:00:00"), at("12:00:00"), 4 * 3600.0, "cli", "cli")
        )
        store.write_agent_pause(
            AgentPause("1002", "lunch", at("10:30:00"), at("11:00:00"), 1800.0, "cli", "cli")
        )
        store.write_agent_presence(
            AgentPresence("1001", at("08:30:00"), "feature-code", "break", at("09:50:00"), "")
        )
        for call_id, code, when in (("c1", "sale", "09:02:30"), ("c6", "sale", "10:01:00")):
            store.write_disposition(
                DispositionRecord(
                    call_id, "1002", code, "", "555", "support", "", "", None, False, at(when)
                )
            )
        store.write_disposition(
            DispositionRecord("c2", "1001", "no-interest", "", "555", "support", "", "", None,
                              False, at("09:12:00"))
        )  # fmt: skip
        for survey in SURVEYS:
            store.write_survey(survey)
    finally:
        store.close()
    return config


@pytest.fixture
def records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    config = _records(tmp_path)
    capsys.readouterr()  # the store's own log lines
    return config


def test_report_queues_prints_a_table_of_the_day(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = records
    argv = ["report", str(config), "--queues", "--since", "2026-12-01", "--until", "2026-12-02"]
    code = cli_main(argv)
    out = capsys.readouterr().out
    assert code == 0
    head, _, row, turned = out.splitlines()
    assert head.split()[:5] == ["period", "queue", "offered", "answered", "abandoned"]
    assert row.split() == [
        "2026-12-01", "support", "5", "3", "1", "1", "40.0", "30", "20.0", "0:17", "0:40", "1:10",
        "100.0", "3", "3.50", "50.0",
    ]  # fmt: skip
    assert turned == "1 caller(s) turned away on arrival (queue full or no agents)"


def test_report_queues_by_hour_as_json_and_csv(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = records
    args = ["report", str(config), "--queues", "--since", "2026-12-01", "--by", "hour"]
    assert cli_main([*args, "--until", "2026-12-02", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["period"], r["offered"], r["answered"]) for r in rows] == [
        ("2026-12-01 09:00", 4, 2),
        ("2026-12-01 10:00", 1, 1),
    ]
    assert cli_main([*args, "--until", "2026-12-02", "--csv"]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0].startswith("period,queue,offered,answered,abandoned,exited")
    assert csv_lines[1].startswith("2026-12-01 09:00,support,4,2,1,1")


def test_report_agents_counts_an_agent_logged_in_now_up_to_now(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = records
    argv = ["report", str(config), "--agents", "--since", "2026-12-01"]
    argv += ["--until", "2026-12-01 12:00", "--json"]
    assert cli_main(argv) == 0
    rows = {r["agent"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["1002"]["calls"] == 2 and rows["1002"]["name"] == "Bob"
    assert rows["1002"]["logged_in_seconds"] == 4 * 3600
    assert rows["1002"]["pauses"] == {"lunch": 1800.0}
    assert rows["1001"]["logged_in_seconds"] == 3.5 * 3600, "logged in since 08:30, to 12:00"
    assert rows["1001"]["pauses"] == {"break": 130 * 60}, "paused since 09:50"
    assert rows["1001"]["missed"] == 1
    assert rows["1002"]["dispositions"] == {"sale": 2}
    assert rows["1001"]["dispositions"] == {"no-interest": 1}
    assert (rows["1002"]["surveys"], rows["1002"]["survey_score_mean"]) == (2, 5.0)
    assert (rows["1001"]["surveys"], rows["1001"]["survey_score_mean"]) == (1, 2.0)


def test_report_agents_of_one_team_for_its_leader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _records(tmp_path)
    config.write_text(config.read_text().replace("PJSIP/1002}", "PJSIP/1002, team: blue}"))
    capsys.readouterr()
    argv = ["report", str(config), "--agents", "--since", "2026-12-01", "--until", "2026-12-02"]
    assert cli_main([*argv, "--team", "blue", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["agent"] for r in rows} == {"1002"}
    assert cli_main([*argv, "--team", "red"]) == 1
    assert "no agent is in team 'red' (teams: blue)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["report", str(config), "--queues", "--team", "blue"])
    assert "--team goes with --agents" in capsys.readouterr().err


def test_report_surveys_lists_what_each_caller_answered(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = records
    assert cli_main(["report", str(config), "--surveys", "--last", "2"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header == (
        "at,call_id,queue,agent,number,flow,score,completed,seconds,satisfied,answers"
    )
    assert [line.split(",")[1:8] for line in lines] == [
        ["c2", "support", "1001", "5550001", "csat", "2", "True"],
        ["c6", "support", "1002", "5550001", "csat", "", "False"],
    ]
    assert lines[0].endswith(',9.5,False,"{""rating"": ""2""}"')
    assert cli_main(["report", str(config), "--surveys", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["call_id"], r["score"], r["answers"]) for r in rows] == [
        ("c1", 5, {"rating": "5"}),
        ("c2", 2, {"rating": "2"}),
        ("c6", None, {}),
    ]
    stretch = ["--since", "2026-12-01 09:05", "--until", "2026-12-01 10:00"]
    assert cli_main(["report", str(config), "--surveys", *stretch, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["call_id"] for r in rows] == ["c2"], "those that ended in the stretch (Berlin)"


def test_report_surveys_of_one_agent_one_team_or_one_queue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _records(tmp_path)
    config.write_text(config.read_text().replace("PJSIP/1002}", "PJSIP/1002, team: blue}"))
    capsys.readouterr()

    def surveys(*argv: str) -> list[str]:
        assert cli_main(["report", str(config), "--surveys", "--json", *argv]) == 0
        return [json.loads(x)["call_id"] for x in capsys.readouterr().out.splitlines()]

    assert surveys("--agent", "1002") == ["c1", "c6"]
    assert surveys("--agent", "1002", "--last", "1") == ["c6"], "the newest of hers"
    assert surveys("--team", "blue") == ["c1", "c6"]
    assert surveys("--team", "blue", "--agent", "1001") == [], "1001 is not in blue"
    assert surveys("--queue", "support", "--agent", "1001") == ["c2"]
    assert surveys("--queue", "sales") == []
    stretch = ["--since", "2026-12-01 09:05", "--until", "2026-12-01 10:00"]
    assert surveys(*stretch, "--agent", "1001") == ["c2"]
    assert surveys(*stretch, "--agent", "1002") == []
    assert cli_main(["report", str(config), "--surveys", "--team", "red"]) == 1
    assert "no agent is in team 'red' (teams: blue)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["report", str(config), "--agent", "1001"])
    assert "--agent goes with --surveys" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--by", "hour"], "--by go(es) with --queues or --agents"),
        (["--queue-log", "--since", "today"], "--since go(es) with --queues or --agents or the"),
        (["--queues", "--agents"], "one report at a time"),
        (["--queues", "--csv", "--json"], "--csv or --json, not both"),
    ],
)
def test_report_figure_options_that_do_not_go_together_are_named(
    records: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    config = records
    with pytest.raises(SystemExit) as stopped:
        cli_main(["report", str(config), *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "last tuesday"], "'last tuesday' is not a time"),
        (["--since", "2026-12-02", "--until", "2026-12-01"], "ends before it starts"),
        (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_report_figures_with_bad_bounds_say_what_is_wrong(
    records: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    config = records
    assert cli_main(["report", str(config), "--queues", *argv]) == 1
    assert message in capsys.readouterr().err


def test_report_queues_without_the_queue_log_says_so(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = records
    config.write_text(config.read_text().replace("records: {", "records: {queue_log: false, "))
    assert cli_main(["report", str(config), "--queues"]) == 1
    assert "set records.queue_log: true" in capsys.readouterr().err


async def test_figures_of_real_calls_through_the_demo_pbx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        answered = await center.caller_talks_to_an_agent("5551234")
        await asyncio.sleep(0.2)
        await answered.hangup()
        await center.cdr(answered.uniqueid)
        gone = await center.pbx.call("800", caller_num="5550002")
        await gone.wait_for_prompt("welcome-menu", timeout=5)
        await gone.press("2")
        await asyncio.sleep(0.3)
        await gone.hangup()
        await center.cdr(gone.uniqueid)
        await center.idle()
        path = center.config_path
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["report", str(path), "--queues", "--json"]) == 0
    [queue] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (queue["queue"], queue["offered"], queue["answered"]) == ("support", 2, 1)
    assert queue["abandoned"] + queue["exited"] == 1
    assert await asyncio.to_thread(cli_main, ["report", str(path), "--agents", "--json"]) == 0
    agents = {r["agent"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert agents["1002"]["calls"] == 1
    assert agents["1001"]["missed"] >= 1, "1001 never picks up: every offer rang out"
    assert agents["1002"]["logged_in_seconds"] > 0


async def test_an_agents_wrap_up_after_a_real_call_is_recorded_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"queues": {"support": {"wrapup": 0.4}}}
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_talks_to_an_agent("5551234")
        await center.idle()
        store = center.daemon.store
        async with asyncio.timeout(5):
            while not await asyncio.to_thread(store.fetch_agent_wrapups):
                await asyncio.sleep(0.05)
        [wrapup] = await asyncio.to_thread(store.fetch_agent_wrapups)
        figures = samples(center.daemon.api.render_metrics())
        path = center.config_path
    assert (wrapup["agent"], wrapup["call_id"]) == ("1002", caller.uniqueid)
    assert 0.3 <= wrapup["duration_seconds"] < 1.5
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["report", str(path), "--agents", "--json"]) == 0
    agents = {r["agent"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert agents["1002"]["acw_seconds"] == round(wrapup["duration_seconds"], 1)
    spent = figures["callcenter_agent_wrapup_seconds_total", (("agent", "1002"),)]
    assert abs(spent - wrapup["duration_seconds"]) < 0.05, "Prometheus counts it too"


async def test_the_control_api_serves_the_same_figures_for_dashboards(tmp_path: Path) -> None:
    teams = {"agents": {"1001": {"team": "red"}, "1002": {"team": "blue"}}}
    async with running_center(tmp_path, config=teams) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_talks_to_an_agent("5551234")
        await center.cdr(caller.uniqueid)
        await center.idle()
        async with asyncio.timeout(5):
            while True:
                status, answer = await center.api("GET", "/figures/queues?by=total")
                assert status == 200, answer
                if answer["rows"] and answer["rows"][0]["answered"]:
                    break
                await asyncio.sleep(0.05)
        assert (answer["figures"], answer["by"], answer["tz"]) == ("queues", "total", "UTC")
        [row] = answer["rows"]
        assert (row["queue"], row["offered"], row["answered"]) == ("support", 1, 1)
        status, agents = await center.api("GET", "/figures/agents?since=yesterday&by=hour")
        assert status == 200 and any(r["agent"] == "1002" and r["calls"] for r in agents["rows"])
        status, red = await center.api("GET", "/figures/agents?since=yesterday&team=red")
        assert status == 200 and {r["agent"] for r in red["rows"]} <= {"1001"}
        cases = [
            ("/figures/agents?team=green", 400, "no agent is in team 'green'"),
            ("/figures/queues?team=red", 400, "team: goes with /figures/agents"),
            ("/figures/queues?by=fortnight", 400, "by: one of 15min, 30min, hour, day, week"),
            ("/figures/queues?tz=Mars/Olympus", 400, "unknown time zone"),
            ("/figures/queues?since=soon", 400, "'soon' is not a time"),
            ("/figures/queues?fcr_days=0", 400, "fcr_days"),
            ("/figures/calls", 404, "GET /figures/queues"),
        ]
        for path, code, text in cases:
            status, answer = await center.api("GET", path)
            assert (status, text in answer["error"]) == (code, True), (path, answer)


def test_report_exports_the_cdrs_of_a_stretch_of_days_with_every_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _records(tmp_path)
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        for n, day in enumerate((DAY - timedelta(days=1), DAY, DAY, DAY + timedelta(days=1))):
            start = at("10:00:00", day) + timedelta(minutes=n)
            store.write_cdr(cdr(f"c{n}", start=start, answer=start, end=start))
    finally:
        store.close()
    capsys.readouterr()
    argv = ["report", str(config), "--since", "2026-12-01", "--until", "2026-12-02"]
    assert cli_main([*argv, "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",") == [name for name, _ in CDR_COLUMNS]
    assert [line.split(",")[CDR_NAMES.index("uniqueid")] for line in lines[1:]] == ["c1", "c2"]
    assert cli_main([*argv, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["uniqueid"] for r in rows] == ["c1", "c2"]
    assert cli_main(["report", str(config), "--csv", "--last", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2, "the newest one, as CSV"
    assert cli_main(["report", str(config), "--since", "2026-11-30"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + 4, "every CDR from then, not the 20 newest: header, rule, 4"


CDR_NAMES = [name for name, _ in CDR_COLUMNS]


def test_calls_agents_dialled_out_are_not_the_queue_s_inbound_callers() -> None:
    dialled = [
        line("11:10:00", "d1", "ENTERQUEUE", "agent:1001", "5551003", "1"),
        line("11:10:00", "d1", "CONNECT", "0", "", "0", agent="Agent/1001"),
        line("11:12:00", "d1", "COMPLETEAGENT", "0", "120", "1", agent="Agent/1001"),
    ]
    [support] = queue_summary([*MORNING, *dialled], whole_day(), {"support": 20.0})
    [alone] = queue_summary(MORNING, whole_day(), {"support": 20.0})
    assert (support.agent_calls, support.campaign_calls) == (1, 0)
    assert {**support.as_dict(), "agent_calls": 0} == alone.as_dict(), "inbound unchanged"
    assert "1 call(s) agents dialled out" in format_queue_table([support], "total")
    everyone = agent_summary([*dialled, *MORNING], [], [], whole_day(), now=DAY + timedelta(1))
    [alice] = [a for a in everyone if a.agent == "1001"]
    assert (alice.calls - alice.dialled, alice.dialled) == (
        sum(1 for e in MORNING if e.event == "CONNECT" and e.agent == "Agent/1001"),
        1,
    ), "her own call counts among her calls, and apart"
    assert "dialled" in format_agent_table([alice], "total")


def test_report_queues_by_hour_says_how_many_agents_each_hour_needed(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Erlang A on each hour's offered callers and mean talk, for 80 % answered within the
    queue's 30 s, with the patience the day's callers showed (82 s: 24 s x 2 + 4 s + 30 s
    waited, one hung up): what a planner staffs the same hour next week by."""
    args = ["report", str(records), "--queues", "--since", "2026-12-01", "--until", "2026-12-02"]
    hourly = [*args, "--by", "hour", "--staffing", "80"]
    assert cli_main([*hourly, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert cli_main(hourly) == 0
    table = capsys.readouterr().out.splitlines()
    with pytest.raises(SystemExit):
        cli_main([*args, "--staffing", "80"])
    refused = capsys.readouterr().err
    expected = [
        staffing.agents_needed(r["offered"], r["aht_seconds"], 30.0, 0.8, patience=82).agents
        for r in rows
    ]
    assert [r["patience_seconds"] for r in rows] == [82, 82]
    assert table[-1] == (
        "agents: Erlang A, with the callers' patience measured over the period (support 82 s)"
    )
    assert [(r["period"][-5:], r["agents_needed"]) for r in rows] == [
        ("09:00", expected[0]),
        ("10:00", expected[1]),
    ]
    assert expected == [1, 1], "one agent answers a handful of short calls an hour in time"
    assert table[0].split()[-1] == "agents"
    assert [line.split()[-1] for line in table[2:4]] == ["1", "1"]
    assert "--staffing goes with --queues --by hour" in refused


def test_staffing_sets_the_agents_scheduled_each_hour_beside_those_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice is scheduled 09:00-10:30, Bob 09:30-12:00: 1.5 agents in each of the two hours,
    set beside the agents Erlang says they needed."""
    config = _records(tmp_path)
    text = config.read_text()
    text = text.replace(
        "{name: Alice, device: PJSIP/1001}",
        "{name: Alice, device: PJSIP/1001, schedule: {hours: {daily: ['09:00-10:30']}}}",
    ).replace(
        "{name: Bob, device: PJSIP/1002}",
        "{name: Bob, device: PJSIP/1002, schedule: {hours: {daily: ['09:30-12:00']}}}",
    )
    config.write_text(text)
    capsys.readouterr()
    args = ["report", str(config), "--queues", "--since", "2026-12-01", "--until", "2026-12-02"]
    hourly = [*args, "--by", "hour", "--staffing", "80"]
    assert cli_main([*hourly, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert cli_main(hourly) == 0
    table = capsys.readouterr().out.splitlines()
    assert [(r["period"][-5:], r["agents_needed"], r["agents_scheduled"]) for r in rows] == [
        ("09:00", 1, 1.5),
        ("10:00", 1, 1.5),
    ]
    assert table[0].split()[-2:] == ["agents", "sched"]
    assert [line.split()[-2:] for line in table[2:4]] == [["1", "1.5"], ["1", "1.5"]]


def test_agents_scheduled_are_counted_per_queue_and_hour() -> None:
    from callcenter.acd.schedule import Schedule
    from callcenter.config.models import QueueHours
    from callcenter.records.adherence import scheduled_per_period

    def schedule(ranges: list[str]) -> Schedule:
        return Schedule.of(QueueHours.model_validate({"hours": {"daily": ranges}}), "UTC")

    periods = Periods(
        datetime(2026, 12, 7, 9, tzinfo=UTC), datetime(2026, 12, 7, 12, tzinfo=UTC), "hour", UTC
    )
    planned = scheduled_per_period(
        {"1001": schedule(["09:00-10:30"]), "1002": schedule(["09:30-12:00"])},
        {"sales": {"1001", "1002"}, "support": {"1001"}, "empty": set()},
        periods,
    )
    assert {k: round(v, 2) for k, v in planned.items()} == {
        ("2026-12-07 09:00", "sales"): 1.5,
        ("2026-12-07 10:00", "sales"): 1.5,
        ("2026-12-07 11:00", "sales"): 1.0,
        ("2026-12-07 09:00", "support"): 1.0,
        ("2026-12-07 10:00", "support"): 0.5,
    }
