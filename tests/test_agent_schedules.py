"""Agents' schedules (``agents.<id>.schedule``) and adherence: when each agent is meant to
work, an alert while one is scheduled and logged out (``acd.agent_alerts.absent``), and
``report --adherence``: scheduled time against logged-in and paused time, per day."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_wallboard import read

from callcenter.acd.schedule import Schedule, schedule_of, stretch_at, stretches_between
from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.config.models import QueueHours
from callcenter.errors import ConfigError
from callcenter.events import AgentAlert, EngineEvent
from callcenter.ivr.calendar import parse_range
from callcenter.records.adherence import adherence_days, agent_totals
from callcenter.records.summary import Stretch
from callcenter.testing import DesktopBrowser, running_center, until

PARIS = ZoneInfo("Europe/Paris")
SPLIT_DAY = {"hours": {"mon-fri": ["09:00-13:00", "14:00-18:00"]}}


def schedule(spec: dict[str, object], zone: str = "Europe/Paris") -> Schedule:
    return Schedule.of(QueueHours.model_validate(spec), zone)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """December 2026 in Paris: the 7th is a Monday."""
    return datetime(2026, 12, day, hour, minute, tzinfo=PARIS)


def test_touching_ranges_are_one_stretch_and_a_day_off_has_none() -> None:
    week = schedule(
        {
            "hours": {"mon-fri": ["09:00-12:00", "12:00-13:00", "14:00-18:00"]},
            "holidays": {"dates": ["2026-12-08"]},
        }
    )
    assert week.day_stretches(date(2026, 12, 7)) == [(at(7, 9), at(7, 13)), (at(7, 14), at(7, 18))]
    assert week.day_stretches(date(2026, 12, 8)) == [], "a day off"
    assert week.day_stretches(date(2026, 12, 12)) == [], "Saturday is not scheduled"


def test_a_special_day_of_a_schedule_replaces_the_week_and_the_days_off() -> None:
    week = schedule(
        {
            **SPLIT_DAY,
            "holidays": {"dates": ["12-24"]},
            "special": {"12-24": ["09:00-12:00"], "2026-12-08": []},
        }
    )
    assert week.day_stretches(date(2026, 12, 24)) == [(at(24, 9), at(24, 12))]
    assert week.day_stretches(date(2026, 12, 8)) == [], "a Tuesday off for once"
    assert week.day_stretches(date(2026, 12, 9)) == [(at(9, 9), at(9, 13)), (at(9, 14), at(9, 18))]


def test_a_night_shift_is_one_stretch_over_midnight() -> None:
    nights = schedule({"hours": {"mon": ["22:00-24:00"], "tue": ["00:00-06:00"]}})
    assert list(stretches_between(nights, at(7, 0), at(9, 0))) == [(at(7, 22), at(8, 6))]
    assert stretch_at(nights, at(8, 3)) == (at(7, 22), at(8, 6))
    assert stretch_at(nights, at(8, 7)) is None


def test_a_split_day_with_a_late_start_a_break_and_overtime_reads_as_the_manager_counts() -> None:
    sessions = [
        Stretch("1001", at(7, 9, 10), at(7, 12)),
        Stretch("1001", at(7, 13, 30), at(7, 18, 30)),
        Stretch("1001", at(12, 10), at(12, 11)),  # a Saturday: not scheduled
    ]
    pauses = [Stretch("1001", at(7, 10), at(7, 10, 15), "break")]
    days = adherence_days(
        {"1001": schedule(SPLIT_DAY)},
        sessions,
        pauses,
        at(7, 0),
        at(14, 0),
        names={"1001": "Alice"},
    )
    by_day = {d.day.isoformat(): d for d in days}
    monday = by_day["2026-12-07"]
    assert (monday.scheduled, monday.logged_in, monday.paused) == (8 * 3600, 24600, 900)
    assert monday.outside == 3600, "13:30-14:00 and 18:00-18:30"
    assert monday.late == 600, "ten minutes late"
    assert monday.adherence == 82.3
    assert monday.as_dict()["name"] == "Alice"
    tuesday = by_day["2026-12-08"]
    assert (tuesday.logged_in, tuesday.late, tuesday.adherence) == (0, None, 0.0)
    saturday = by_day["2026-12-12"]
    assert (saturday.scheduled, saturday.outside, saturday.adherence) == (0, 3600, None)
    assert "2026-12-13" not in by_day, "a Sunday with nothing scheduled nor worked"
    assert len(days) == 6
    (total,) = agent_totals(days)
    assert total == {
        "agent": "1001",
        "name": "Alice",
        "days_scheduled": 5,
        "adherence_percent": 16.5,  # 23,700 s ready of 5 x 28,800 scheduled
        "days_late": 1,
        "days_absent": 4,
    }


def test_a_login_still_going_counts_up_to_the_end_of_the_report() -> None:
    (day,) = adherence_days(
        {"1001": schedule(SPLIT_DAY)},
        [Stretch("1001", at(7, 9), None)],
        [Stretch("1001", at(7, 11), None, "lunch")],
        at(7, 0),
        at(7, 12),
    )
    assert (day.scheduled, day.logged_in, day.paused, day.late) == (3 * 3600, 3 * 3600, 3600, 0)


starts_and_lengths = st.lists(
    st.tuples(st.integers(0, 48 * 60 - 1), st.integers(1, 12 * 60), st.booleans()), max_size=6
)


@given(starts_and_lengths)
def test_adherence_never_counts_more_than_was_scheduled_or_worked(
    items: list[tuple[int, int, bool]],
) -> None:
    """Logins that do not overlap (minutes from Monday 00:00), each paused for its first
    half or not: every day adds up."""
    sessions: list[Stretch] = []
    pauses: list[Stretch] = []
    last = 0
    for offset, length, paused in sorted(items):
        begin = at(7, 0) + timedelta(minutes=max(offset, last))
        finish = begin + timedelta(minutes=length)
        last = max(offset, last) + length
        sessions.append(Stretch("1001", begin, finish))
        if paused:
            pauses.append(Stretch("1001", begin, begin + (finish - begin) / 2, "break"))
    until_ = at(9, 0)
    days = adherence_days({"1001": schedule(SPLIT_DAY)}, sessions, pauses, at(7, 0), until_)
    worked = sum(
        (min(s.end or until_, until_) - s.start).total_seconds()
        for s in sessions
        if s.start < until_
    )
    for day in days:
        assert 0 <= day.paused <= day.logged_in <= day.scheduled
        assert day.adherence is None or 0 <= day.adherence <= 100
        assert day.late is None or day.late >= 0
    assert abs(sum(d.logged_in + d.outside for d in days) - worked) < 1e-6


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return str(answer.read().decode())


def _always() -> dict[str, object]:
    return {"hours": {"daily": ["00:00-24:00"]}, "timezone": "UTC"}


async def test_an_agent_scheduled_now_and_logged_out_raises_an_alert_until_they_log_in(
    tmp_path: Path,
) -> None:
    config = {
        "agents": {"1002": {"schedule": _always()}},
        "acd": {"agent_alerts": {"absent": 0.5}},
    }
    async with running_center(tmp_path, config=config) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        board = center.daemon.switchboard
        center.daemon.router.logout("1002", via="test")
        center.daemon.router.logout("1001", via="test")
        await until(lambda: board.agent_alerts.standing().get("1002") == "absent", timeout=5)
        _, page = await center.api("GET", "/status")
        _, _, wallboard = await asyncio.to_thread(read, center.daemon.api.port)
        floor = await asyncio.to_thread(fetch, center.daemon.api.port, "/wallboard")
        metrics = await asyncio.to_thread(fetch, center.daemon.api.port, "/metrics")
        center.daemon.router.login("1002", via="test")
        await until(lambda: "1002" not in board.agent_alerts.standing(), timeout=5)
        standing = board.agent_alerts.standing()
    alerts = [(e.agent, e.figure, e.raised) for e in events if isinstance(e, AgentAlert)]
    assert alerts == [("1002", "absent", True), ("1002", "absent", False)]
    assert "1001" not in standing, "no schedule: never absent"
    assert {"agent": "1002", "figure": "absent"}.items() <= page["agent_alerts"][0].items()
    assert page["scheduled"] == {"now": 1, "logged_in": 0}
    assert "Scheduled now: 1, logged in 0, absent 1" in format_status(page).splitlines()
    assert wallboard.row("Bob")[1] == "absent (scheduled)", "the floor sees who is missing"
    assert '<p id="scheduled">Scheduled now: 1, logged in 0, absent 1</p>' in floor
    assert "callcenter_agents_scheduled 1" in metrics.splitlines()
    assert "callcenter_agents_scheduled_logged_in 0" in metrics.splitlines()
    assert not [r for r in wallboard.rows if r and r[0].startswith("Alice")], "no schedule"


async def test_the_report_lists_each_scheduled_agents_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"agents": {"1002": {"schedule": _always()}}}
    async with running_center(tmp_path, config=config) as center:
        router = center.daemon.router
        router.logout("1002", via="test")  # logged in by the config at the start
        router.login("1002", via="test")
        await asyncio.sleep(1.2)
        router.pause("1002", "break", via="test")
        await asyncio.sleep(0.3)
        router.logout("1002", via="test")
        await center.idle()
        path = center.config_path
    capsys.readouterr()
    argv = ["report", str(path), "--adherence", "--json", "--tz", "UTC"]
    code = await asyncio.to_thread(cli_main, argv)
    out, totals = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    only = await asyncio.to_thread(
        cli_main, ["report", str(path), "--adherence", "--agent", "1001"]
    )
    said = capsys.readouterr().err
    assert code == 0
    assert [row["agent"] for row in rows] == ["1002"], "only the agents with a schedule"
    (row,) = rows
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    assert abs(row["scheduled_seconds"] - (now - midnight).total_seconds()) < 30
    assert 1 <= row["logged_in_seconds"] <= 3 and row["paused_seconds"] <= 1
    assert row["outside_seconds"] == 0 and row["late_seconds"] > 0
    assert only == 1 and "no agent has a schedule" in said
    assert totals.startswith("agent 1002 (Bob): 1 day(s) scheduled, adherence ")
    assert totals.rstrip().endswith(", absent on 0"), "logged in during the schedule"


@pytest.mark.parametrize("day_off", [False, True])
async def test_the_agent_reads_todays_schedule_on_their_desktop(
    tmp_path: Path, day_off: bool
) -> None:
    today = datetime.now(UTC).date().isoformat()
    planned: dict[str, object] = {
        "hours": {"daily": ["08:00-12:00", "13:00-17:00", "17:00-24:00"]},
        "timezone": "UTC",
    }
    if day_off:
        planned["holidays"] = {"dates": [today]}
    config = {"agents": {"1002": {"pin": "2222", "schedule": planned}, "1001": {"pin": "1111"}}}
    async with running_center(tmp_path, config=config) as center:
        browser = DesktopBrowser(center.daemon.api.port)
        bob = await browser.sign_in("1002", "2222")
        week = await browser.press("My schedule …")
        alice = await DesktopBrowser(center.daemon.api.port).sign_in("1001", "1111")
    expected = "a day off" if day_off else "08:00-12:00, 13:00-24:00"
    said = bob.texts["schedule"]
    assert said.startswith(f"Your schedule today: {expected}")
    begun = not day_off and datetime.now(UTC).hour >= 8
    assert ("(adherence so far: " in said) == begun, "once something was scheduled today"
    days = [row for row in week.table_rows if row[0] != "day"]
    assert len(days) == 14 and days[0][1] == expected
    assert days[1][1] == "08:00-12:00, 13:00-24:00", "the day off was today only"
    assert "schedule" not in alice.texts and "My schedule …" not in alice.buttons


async def test_a_supervisor_sees_how_many_of_their_agents_the_schedule_wants_now(
    tmp_path: Path,
) -> None:
    config = {
        "agents": {"1002": {"schedule": _always()}},
        "supervisors": {"2000": {"pin": "2468"}},
    }
    async with running_center(tmp_path, config=config) as center:
        sam = DesktopBrowser(center.daemon.api.port)
        present = await sam.sign_in("2000", "2468", role="supervisor")
        center.daemon.router.logout("1002", via="test")
        gone = await sam.get("/desktop")
    assert present.texts["scheduled"] == "Scheduled now: 1, logged in 1"
    assert gone.texts["scheduled"] == "Scheduled now: 1, logged in 0, absent 1"
    head = next(row for row in present.table_rows if row[:2] == ["agent", "state"])
    column = head.index("adherence")
    (bob,) = [row for row in present.table_rows if row[0].startswith("Bob")]
    (alice,) = [row for row in present.table_rows if row[0].startswith("Alice")]
    assert bob[column].endswith(" %"), "logged in for a sliver of today's schedule"
    assert alice[column] == "-", "no schedule"


ranges = st.lists(
    st.tuples(st.integers(0, 47), st.integers(1, 16)).map(
        lambda r: (
            f"{r[0] // 2:02d}:{30 * (r[0] % 2):02d}-"
            f"{min(24 * 60, r[0] * 30 + r[1] * 30) // 60:02d}:"
            f"{min(24 * 60, r[0] * 30 + r[1] * 30) % 60:02d}"
        )
    ),
    min_size=1,
    max_size=3,
)


@given(
    week=st.dictionaries(st.sampled_from(["mon", "tue", "sat", "daily"]), ranges, min_size=1),
    special=st.dictionaries(
        st.sampled_from(["2026-12-08", "2026-12-09", "12-10"]),
        st.one_of(st.just([]), ranges),
        max_size=2,
    ),
    probes=st.lists(st.integers(0, 4 * 24 * 60 - 1), max_size=20),
)
def test_scheduled_stretches_are_ordered_apart_and_hold_exactly_the_moments_scheduled(
    week: dict[str, list[str]], special: dict[str, list[str]], probes: list[int]
) -> None:
    plan = schedule({"hours": week, "special": special}, zone="UTC")
    start = datetime(2026, 12, 7, tzinfo=UTC)
    end = start + timedelta(days=4)
    found = list(stretches_between(plan, start, end))
    for (a_start, a_end), (b_start, _b_end) in itertools.pairwise(found):
        assert a_start < a_end < b_start, "in order, apart (touching ones are one)"
    assert all(start <= a and b <= end for a, b in found)
    for minute in probes:
        moment = start + timedelta(minutes=minute)
        inside = any(a <= moment < b for a, b in found)
        local = moment.time()
        expected = any(
            (r := parse_range(text)) is not None and r[0] <= local.hour * 60 + local.minute < r[1]
            for text in plan.hours.day_ranges(moment.date())
        )
        assert inside == expected, (moment, found)
        assert (stretch_at(plan, moment) is not None) == expected


def test_an_agent_without_a_schedule_of_their_own_has_their_teams() -> None:
    text = """\
pbx: {ami: {secret: x}}
ivr: {timezone: UTC}
teams:
  early: {schedule: {hours: {mon-fri: ["06:00-14:00"]}}}
  late: {}
agents:
  "1001": {name: Alice, device: PJSIP/1001, team: early}
  "1002": {name: Bob, device: PJSIP/1002, team: early, schedule: {hours: {sat: ["10:00-12:00"]}}}
  "1003": {name: Carol, device: PJSIP/1003, team: late}
supervisors:
  "2000": {name: Sam, device: PJSIP/2000, teams: [early, night]}
"""
    with pytest.raises(ConfigError) as refused:
        load_config_text(text)
    (issue,) = refused.value.issues
    assert issue.field == "supervisors.2000.teams[1]" and "night" in issue.message
    config = load_config_text(text.replace("[early, night]", "[early, late]"))
    alice, bob, carol = (schedule_of(config, a) for a in ("1001", "1002", "1003"))
    assert alice is not None and alice.day_stretches(date(2026, 12, 7)) == [
        (datetime(2026, 12, 7, 6, tzinfo=UTC), datetime(2026, 12, 7, 14, tzinfo=UTC))
    ], "the team's shift"
    assert bob is not None and bob.day_stretches(date(2026, 12, 7)) == [], "his own wins"
    assert carol is None, "a team listed without a schedule"


@pytest.mark.parametrize(("day", "hours"), [(29, 23), (30, 24)])
def test_a_day_the_clocks_change_is_scheduled_for_the_hours_it_has(day: int, hours: int) -> None:
    """Paris, March 2026: the clocks go forward on the 29th (a day of 23 hours)."""
    always = schedule({"hours": {"daily": ["00:00-24:00"]}})
    start = datetime(2026, 3, day, tzinfo=PARIS)
    end = datetime(2026, 3, day + 1, tzinfo=PARIS)
    (only,) = adherence_days(
        {"1001": always}, [Stretch("1001", start - timedelta(hours=2), None)], [], start, end
    )
    assert only.scheduled == only.logged_in == hours * 3600
    assert only.adherence == 100.0 and only.late == 0
