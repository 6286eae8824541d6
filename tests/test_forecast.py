"""``callcenter forecast``: next week's callers, interval by interval, from the same weekdays
of the weeks before, and the agents they need beside those scheduled: what a planner
staffs by."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter import staffing
from callcenter.cli import main as cli_main
from callcenter.records.forecast import (
    forecast,
    history_days,
    next_monday,
    trend_said,
    trends,
    week_from,
)
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.schedule_changes import ScheduleChange
from callcenter.records.store import SqliteCdrStore
from callcenter.records.summary import Periods, queue_summary
from callcenter.testing import DesktopBrowser, running_center

BERLIN = ZoneInfo("Europe/Berlin")
_keys = itertools.count()


def callers(
    day: date, hour: int, count: int, *, talk: int = 120, queue: str = "support"
) -> list[QueueLogEntry]:
    """``count`` callers of ``queue`` in that hour of ``day`` (Berlin), each answered after
    10 s and talked to for ``talk`` s, as the daemon writes their queue_log lines."""
    lines = []
    for i in range(count):
        start = datetime(day.year, day.month, day.day, hour, i, tzinfo=BERLIN).astimezone(UTC)
        call = f"{day}-{hour}-{i}-{queue}"

        def entry(
            at: datetime, event: str, *data: str, agent: str = "NONE", call: str = call
        ) -> QueueLogEntry:
            return QueueLogEntry(f"k{next(_keys)}", at, call, queue, agent, event, data)

        lines += [
            entry(start, "ENTERQUEUE", "", "5550100", "1"),
            entry(start + timedelta(seconds=10), "CONNECT", "10", "", "1", agent="Agent/1001"),
            entry(
                start + timedelta(seconds=10 + talk),
                "COMPLETECALLER",
                "10",
                str(talk),
                "1",
                agent="Agent/1001",
            ),
        ]
    return lines


# Four Tuesdays before Tuesday 2025-12-16 (a past week: the forecast reads the weeks
# before it whatever the day the tests run): 4, 6, closed (a holiday), 8 callers at 09:00;
# 2 at 10:00 on the first only. Mondays: 3 callers at 14:00 each week.
TUESDAYS = [date(2025, 11, 18), date(2025, 11, 25), date(2025, 12, 2), date(2025, 12, 9)]
HISTORY = [
    *callers(TUESDAYS[0], 9, 4),
    *callers(TUESDAYS[0], 10, 2, talk=60),
    *callers(TUESDAYS[1], 9, 6),
    *callers(TUESDAYS[3], 9, 8),
    *(line for w in range(4) for line in callers(date(2025, 11, 17) + timedelta(weeks=w), 14, 3)),
]  # fmt: skip


def figures(lines: list[QueueLogEntry], by: str = "hour") -> list:  # type: ignore[type-arg]
    start = datetime(2025, 11, 17, tzinfo=BERLIN)
    periods = Periods(start, start + timedelta(weeks=4), by, BERLIN)  # type: ignore[arg-type]
    return queue_summary(lines, periods, {"support": 30.0})


def test_a_tuesday_hour_expects_the_mean_of_the_open_tuesdays_before_it() -> None:
    rows, nothing = forecast(
        figures(HISTORY),
        [date(2025, 12, 16), date(2025, 12, 17)],
        interval_minutes=60,
        target=0.8,
        wrapups={"support": 30.0},
        patience={"support": None},
    )
    nine, ten = rows
    assert (nine.period, nine.calls, nine.days_seen) == ("2025-12-16 09:00", 6.0, 3), (
        "(4 + 6 + 8) / 3: the holiday is left out, not counted as a quiet day"
    )
    assert nine.aht_seconds == 120 + 30, "that hour's talk plus the queue's wrap-up"
    assert nine.agents_needed == staffing.agents_needed(6.0, 150.0, 30.0, 0.8).agents
    assert (ten.period, round(ten.calls, 2), ten.aht_seconds) == ("2025-12-16 10:00", 0.67, 90)
    assert nothing == [("support", date(2025, 12, 17))], "no Wednesday in the history"


def test_an_hour_without_an_answered_call_takes_the_queue_s_handle_time() -> None:
    gave_up = [
        QueueLogEntry("g1", datetime(2025, 11, 18, 7, 0, tzinfo=UTC), "g1", "support", "NONE",
                      "ENTERQUEUE", ("", "5550199", "1")),
        QueueLogEntry("g2", datetime(2025, 11, 18, 7, 1, tzinfo=UTC), "g1", "support", "NONE",
                      "ABANDON", ("1", "1", "60")),
    ]  # fmt: skip
    rows, _ = forecast(
        figures([*HISTORY, *gave_up]),
        [date(2025, 12, 16)],
        interval_minutes=60,
        target=0.8,
        wrapups={},
        patience={"support": 60.0},
    )
    eight = next(r for r in rows if r.period.endswith("08:00"))
    talked = 120 * 18 + 60 * 2 + 120 * 12
    assert eight.aht_seconds == pytest.approx(talked / 32), "every call of the history"
    assert (
        eight.agents_needed
        == staffing.agents_needed(1 / 3, talked / 32, 30.0, 0.8, patience=60.0).agents
    )


@settings(max_examples=40, deadline=None)
@given(
    week=st.dictionaries(
        st.tuples(st.integers(0, 6), st.integers(0, 23)), st.integers(1, 4), min_size=1
    ),
    weeks=st.integers(1, 4),
)
def test_weeks_alike_forecast_the_same_week_again(
    week: dict[tuple[int, int], int], weeks: int
) -> None:
    monday = date(2025, 11, 17)
    lines = [
        line
        for w in range(weeks)
        for (weekday, hour), count in week.items()
        for line in callers(monday + timedelta(weeks=w, days=weekday), hour, count)
    ]
    rows, nothing = forecast(
        figures(lines),
        week_from(date(2025, 12, 15)),
        interval_minutes=60,
        target=0.8,
        wrapups={},
        patience={},
    )
    got = {(date.fromisoformat(r.period[:10]).weekday(), int(r.period[11:13])): r.calls
           for r in rows}  # fmt: skip
    assert got == {k: float(v) for k, v in week.items()}
    assert {r.days_seen for r in rows} == {weeks}
    assert {d.weekday() for _, d in nothing} == set(range(7)) - {k[0] for k in week}


def test_half_hours_forecast_each_half_hour_apart() -> None:
    lines = [*callers(TUESDAYS[0], 9, 3)]
    lines += [
        QueueLogEntry(f"h{i}", e.time + timedelta(minutes=30), f"half-{e.callid}", e.queuename,
                      e.agent, e.event, e.data)
        for i, e in enumerate(callers(TUESDAYS[0], 9, 1))
    ]  # fmt: skip
    rows, _ = forecast(
        figures(lines, "30min"),
        [date(2025, 12, 16)],
        interval_minutes=30,
        target=0.8,
        wrapups={},
        patience={},
    )
    assert [(r.period[11:], r.calls) for r in rows] == [("09:00", 3.0), ("09:30", 1.0)]


def test_the_history_is_the_weeks_before_the_week_or_before_today() -> None:
    assert history_days(date(2026, 12, 14), date(2026, 12, 9), 4) == (
        date(2026, 11, 11),
        date(2026, 12, 9),
    ), "days not lived yet have no figures"
    assert history_days(date(2026, 11, 30), date(2026, 12, 9), 2) == (
        date(2026, 11, 16),
        date(2026, 11, 30),
    ), "a past week: the weeks before it (how good was the forecast?)"
    assert next_monday(date(2026, 12, 9)) == date(2026, 12, 14)
    assert next_monday(date(2026, 12, 14)) == date(2026, 12, 21)
    assert week_from(date(2026, 12, 17))[0] == date(2026, 12, 14)


def _config(tmp_path: Path, agents: str = "", extra: str = "") -> Path:
    config = tmp_path / "callcenter.yaml"
    config.write_text(
        "pbx: {type: asterisk, ami: {secret: x}}\n"
        "records: {cdr_path: var/cdr.sqlite3, queue_log: true}\n"
        "ivr: {timezone: Europe/Berlin}\n"
        "agents:\n"
        f"  '1001': {{name: Alice, device: PJSIP/1001{agents}}}\n"
        "  '1002': {name: Bob, device: PJSIP/1002}\n"
        "queues:\n"
        "  support: {agents: ['1001', '1002'], service_level: 30, wrapup: 30}\n"
        "  sales: {agents: ['1002']}\n" + extra
    )
    (tmp_path / "var").mkdir(exist_ok=True)
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        store.write_queue_log(tuple(HISTORY))
    finally:
        store.close()
    return config


def test_forecast_prints_next_week_s_hours_with_agents_needed_and_scheduled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice works Tuesdays 09:00-10:30: one agent at 09:00 where 6 callers of 2:30 need
    more; half of her at 10:00 for two-thirds of a caller. With 25 % shrinkage the agents
    to schedule grow, and the gap says how many are missing."""
    config = _config(tmp_path, ", schedule: {hours: {tue: ['09:00-10:30']}}")
    capsys.readouterr()
    argv = ["forecast", str(config), "--week-of", "2025-12-16", "--queue", "support"]
    assert cli_main([*argv, "--json", "--shrinkage", "25"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    needed = staffing.agents_needed(6.0, 150.0, 30.0, 0.8).agents
    tuesday = [r for r in rows if r["weekday"] == "Tue"]
    assert [(r["period"], r["calls"], r["agents_needed"]) for r in tuesday] == [
        ("2025-12-16 09:00", 6.0, needed),
        ("2025-12-16 10:00", 0.7, 1),
    ]
    nine = tuesday[0]
    assert nine["agents_to_schedule"] == staffing.scheduled(needed, 0.25)
    assert (nine["agents_scheduled"], nine["gap"]) == (1.0, 1.0 - nine["agents_to_schedule"])
    assert tuesday[1]["agents_scheduled"] == 0.5
    monday = [r for r in rows if r["weekday"] == "Mon"]
    assert [(r["period"], r["calls"], r["days_seen"]) for r in monday] == [
        ("2025-12-15 14:00", 3.0, 4)
    ]
    assert cli_main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("forecast for 2025-12-15 - 2025-12-21 (Europe/Berlin) from ")
    assert table[1].split() == [
        "day", "start", "queue", "calls", "aht", "days", "agents", "to", "sched", "sched", "gap",
        "came",
    ]  # fmt: skip
    assert table[4].split()[:7] == ["Tue", "2025-12-16", "09:00", "support", "6.0", "2:30", "3"]
    assert (
        "support: nothing to go on for Wed, Thu, Fri, Sat, Sun (no caller on those weekdays "
        "in the 4 week(s) of history: closed?)" in table
    ), "no Wednesday in the history: said, not guessed"
    assert table[-1] == "agents: Erlang C for support (nobody hung up while waiting)"


def test_a_day_changed_while_the_centre_runs_counts_in_the_agents_scheduled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice swapped next Tuesday for 10:00-11:00 (``agent schedule``): the 09:00 hour has
    nobody scheduled, 10:00 has her whole."""
    config = _config(tmp_path, ", schedule: {hours: {tue: ['09:00-10:30']}}")
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        swapped = ScheduleChange.of("1001", "2025-12-16", ["10:00-11:00"], datetime.now(UTC), "t")
        store.write_schedule_change(swapped)
    finally:
        store.close()
    capsys.readouterr()
    argv = ["forecast", str(config), "--week-of", "2025-12-16", "--queue", "support", "--json"]
    assert cli_main(argv) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["period"][11:], r["agents_scheduled"]) for r in rows if r["weekday"] == "Tue"] == [
        ("09:00", 0.0),
        ("10:00", 1.0),
    ]


def test_a_week_already_lived_sets_the_callers_who_came_beside_the_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The week of Monday 2025-12-08, forecast from the three weeks before it: Tuesday 09:00
    expected (4 + 6) / 2 = 5 callers (the closed Tuesday left out) and got 8, 10:00
    expected 1 and got none, Monday 14:00 expected 3 and got 3: 4 callers missed of 11,
    36.4 % off interval by interval."""
    config = _config(tmp_path)
    capsys.readouterr()
    argv = ["forecast", str(config), "--week-of", "2025-12-08", "--queue", "support"]
    assert cli_main([*argv, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["period"], r["calls"], r["actual_calls"]) for r in rows] == [
        ("2025-12-08 14:00", 3.0, 3),
        ("2025-12-09 09:00", 5.0, 8),
        ("2025-12-09 10:00", 1.0, 0),
    ]
    assert cli_main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[-1] == "came"
    assert table[4].split()[-1] == "8"
    assert (
        "support: 9 callers forecast over the 7 day(s) lived, 11 came; interval by interval "
        "off by 36.4 % (WAPE)" in table
    )


def test_forecast_as_csv_for_a_spreadsheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    capsys.readouterr()
    assert cli_main(["forecast", str(config), "--week-of", "2025-12-16", "--csv"]) == 0
    head, *rows = capsys.readouterr().out.splitlines()
    assert head.split(",") == [
        "period", "weekday", "queue", "calls", "aht_seconds", "days_seen",
        "service_level_seconds", "agents_needed", "agents_to_schedule", "actual_calls",
    ]  # fmt: skip
    assert len(rows) == 1 + 2, "Monday 14:00, Tuesday 09:00 and 10:00; sales had nobody"


def test_forecast_refuses_what_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    capsys.readouterr()
    assert cli_main(["forecast", str(config), "--queue", "suport"]) == 1
    assert "no queue 'suport' (queues: sales, support)" in capsys.readouterr().err
    assert cli_main(["forecast", str(config), "--week-of", "next tuesday"]) == 1
    assert "--week-of: 'next tuesday' is not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["forecast", str(config), "--weeks", "0"])
    assert "--weeks" in capsys.readouterr().err
    config.write_text(config.read_text().replace("queue_log: true", "queue_log: false"))
    assert cli_main(["forecast", str(config)]) == 1
    assert "forecast reads the queue_log" in capsys.readouterr().err


def test_a_week_far_ahead_reads_the_weeks_up_to_today(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The history is the four weeks before today (the tests run after 2025: none of
    HISTORY's calls), not the weeks before 2030, which have not been lived."""
    config = _config(tmp_path)
    capsys.readouterr()
    assert cli_main(["forecast", str(config), "--week-of", "2030-01-08", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert cli_main(["forecast", str(config), "--week-of", "2030-01-08"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        "no caller in the 4 week(s) of history for sales, support",
        "no callers in the history: nothing to forecast",
    ]


async def test_a_planning_tool_reads_the_forecast_through_the_api(tmp_path: Path) -> None:
    """``GET /figures/forecast``: the same week as ``callcenter forecast --json``, with the
    schedules of the running centre (Alice's Tuesday morning), and a clear 400 for what
    it cannot read."""
    config = {
        "records": {"queue_log": True},
        "queues": {"support": {"service_level": 30, "wrapup": 30}},
        "agents": {"1001": {"schedule": {"hours": {"tue": ["09:00-10:30"]}}}},
        "ivr": {"timezone": "Europe/Berlin"},
    }
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        await daemon.recorder.writer.run(lambda: daemon.store.write_queue_log(tuple(HISTORY)))
        status, body = await center.api(
            "GET", "/figures/forecast?week_of=2025-12-16&queue=support&shrinkage=25"
        )
        wrong = [
            await center.api("GET", f"/figures/forecast?{query}")
            for query in ("by=day", "weeks=0", "target=100", "week_of=soon", "queue=nope")
        ]
    assert status == 200, body
    assert (body["week"], body["history"]) == (
        ["2025-12-15", "2025-12-21"],
        ["2025-11-17", "2025-12-14"],
    )
    nine = next(r for r in body["rows"] if r["period"] == "2025-12-16 09:00")
    needed = staffing.agents_needed(6.0, 150.0, 30.0, 0.8).agents
    assert (nine["calls"], nine["agents_needed"], nine["agents_scheduled"]) == (6.0, needed, 1.0)
    assert nine["agents_to_schedule"] == staffing.scheduled(needed, 0.25)
    assert body["nothing_for"] == {"support": ["Wed", "Thu", "Fri", "Sat", "Sun"]}
    assert body["patience_seconds"] == {"support": None}
    assert body["accuracy"] == {
        "support": {"days": 7, "forecast": 9.7, "actual": 0, "wape_percent": None}
    }, "a week lived (2025) with nobody in the records: the forecast missed them all"
    assert [code for code, _ in wrong] == [400] * 5
    assert [answer["error"].split(":")[0] for _, answer in wrong] == [
        "by", "weeks", "target", "week_of", "no queue 'nope' (queues"
    ]  # fmt: skip


async def test_sam_reads_the_forecast_of_his_queues_on_his_desktop(tmp_path: Path) -> None:
    """Sam leads the day team (Alice: support and sales): his page shows support's week,
    short of agents at Tuesday 09:00 (in red), says sales has no history, and leaves out
    billing, which only Bob (night) works."""
    config = {
        "records": {"queue_log": True},
        "ivr": {"timezone": "Europe/Berlin"},
        "queues": {
            "support": {"service_level": 30, "wrapup": 30},
            "billing": {"agents": ["1002"]},
        },
        "agents": {
            "1001": {"team": "day", "schedule": {"hours": {"tue": ["09:00-10:30"]}}},
            "1002": {"team": "night"},
        },
        "supervisors": {"2000": {"pin": "2468", "teams": ["day"]}},
    }
    billing = callers(TUESDAYS[0], 9, 5, queue="billing")
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        lines = (*HISTORY, *billing)
        await daemon.recorder.writer.run(lambda: daemon.store.write_queue_log(lines))
        browser = DesktopBrowser(daemon.api.port)
        home = await browser.sign_in("2000", "2468", role="supervisor")
        page = await browser.get("/desktop/forecast?week_of=2025-12-17")
        wrong = await browser.get("/desktop/forecast?week_of=someday")
    assert 'href="/desktop/forecast"' in home.body
    assert page.status == 200
    assert "forecast for the week of Mon 15 Dec 2025" in page.body
    head, *rows = page.table_rows
    assert head == [
        "day", "start", "queue", "callers", "handle", "agents", "to schedule", "scheduled",
        "gap", "came",
    ]  # fmt: skip
    needed = staffing.agents_needed(6.0, 150.0, 30.0, 0.8).agents
    assert ["Tue 12-16", "09:00", "support", "6.0", "2:30", str(needed), str(needed)] == rows[1][:7]
    assert rows[1][7:] == ["1.0", f"{1.0 - needed:+.1f}", "0"]
    assert '<td class="short">' in page.body
    assert {r[2] for r in rows} == {"support"}, "billing is not his agents' queue"
    assert "No caller in the history for sales." in page.body
    assert 'href="/desktop/forecast?week_of=2025-12-22"' in page.body
    assert wrong.status == 400


async def test_sam_asks_his_forecast_page_for_the_trend_and_the_shifts(tmp_path: Path) -> None:
    """The page's form: along the trend, with 8-hour and 4-hour shifts; the weeks before
    and after keep what he asked; shifts that are no lengths say why."""
    config = {
        "records": {"queue_log": True},
        "ivr": {"timezone": "Europe/Berlin"},
        "queues": {"support": {"service_level": 30, "wrapup": 30}},
        "agents": {"1001": {"team": "day"}},
        "supervisors": {"2000": {"pin": "2468", "teams": ["day"]}},
    }
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        await daemon.recorder.writer.run(lambda: daemon.store.write_queue_log(tuple(HISTORY)))
        browser = DesktopBrowser(daemon.api.port)
        await browser.sign_in("2000", "2468", role="supervisor")
        plain = await browser.get("/desktop/forecast?week_of=2025-12-17")
        asked = await browser.get("/desktop/forecast?week_of=2025-12-15&trend=true&shifts=8h,4h")
        wrong = await browser.get("/desktop/forecast?week_of=2025-12-15&shifts=8x")
    form = plain.form("Show")
    assert (form.method, form.action) == ("get", "/desktop/forecast")
    assert form.fields["week_of"] == "2025-12-15" and "shifts" in form.fields
    assert "Shifts (" not in plain.body
    assert "support: +3.4 % callers a week, forecast x1.09." in asked.body
    assert "Shifts (8h, 4h)" in asked.body
    shifts = asked.table_rows[asked.table_rows.index(["day", "queue", "shift", "agents"]) :]
    assert shifts[2][:3] == ["Tue 12-16", "support", "09:00-11:00"]
    assert 'href="/desktop/forecast?week_of=2025-12-22&amp;trend=true&amp;shifts=8h%2C4h"' in (
        asked.body
    )
    assert wrong.status == 200 and "'8x' is not a shift length" in wrong.texts["error"]


async def test_the_weeks_of_history_are_read_once_for_a_page_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Days gone by do not change: asking for the same week again (a supervisor's page
    reloaded, a planning tool polling) reads the schedules afresh but not the weeks of
    queue_log; another week, or a reload of the config, reads them."""
    from callcenter.records.forecast import read_history

    reads: list[object] = []
    config = {"records": {"queue_log": True}, "ivr": {"timezone": "Europe/Berlin"}}
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        real = daemon.reports.read

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            if fn is read_history:
                reads.append(args[1])
            return await real(fn, *args, **kwargs)

        monkeypatch.setattr(daemon.reports, "read", counted)
        await daemon.recorder.writer.run(lambda: daemon.store.write_queue_log(tuple(HISTORY)))
        first = await center.api("GET", "/figures/forecast?week_of=2025-12-16")
        again = await center.api("GET", "/figures/forecast?week_of=2025-12-16&shrinkage=30")
        once = len(reads)
        await center.api("GET", "/figures/forecast?week_of=2025-12-23")
        await daemon.reload()
        await center.api("GET", "/figures/forecast?week_of=2025-12-16")
    assert first[1]["rows"] and again[1]["rows"]
    assert [r["calls"] for r in first[1]["rows"]] == [r["calls"] for r in again[1]["rows"]]
    assert once == 1, "the second ask of the same week read no history"
    assert len(reads) == 3, "another week and a reloaded config read it again"


def test_a_day_running_hot_shows_by_mid_morning(tmp_path: Path) -> None:
    """Tuesday 2025-12-16 at 10:20: the 09:00 hour was forecast 6 callers and got 9, and one
    came at 08:00 where none was expected: 10 against 6 so far, 167 % of the forecast; the
    10:00 hour is not over, so it has no callers yet."""
    from callcenter.config import load_config
    from callcenter.records.forecast import ForecastAsked, pace_said, read_forecast

    path = _config(tmp_path)
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        today = date(2025, 12, 16)
        store.write_queue_log(tuple([*callers(today, 9, 9), *callers(today, 8, 1)]))
        config = load_config(str(path), environ={"CALLCENTER_AMI_SECRET": "x"})
        asked = ForecastAsked(
            tz=BERLIN,
            today=today,
            first=today,
            queue="support",
            now=datetime(2025, 12, 16, 10, 20, tzinfo=BERLIN),
        )
        week = read_forecast(store, config, asked)
    finally:
        store.close()
    by_period = {r["period"]: r["actual_calls"] for r in week.rows}
    assert (by_period["2025-12-16 09:00"], by_period["2025-12-16 10:00"]) == (9, None)
    assert week.today == {
        "support": {"until": "10:00", "forecast": 6.0, "actual": 10, "pace_percent": 167}
    }
    assert pace_said("support", week.today["support"]) == (
        "support today until 10:00: 6 callers forecast, 10 came (167 % of the forecast)"
    )
    assert by_period["2025-12-15 14:00"] == 0, "Monday is lived: nobody came at 14:00"


def test_a_day_the_queue_is_closed_next_week_is_forecast_closed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Support closes on Tuesday 2025-12-16 (a special day without hours) and opens 09:30
    on Monday the 15th: the Tuesdays before said 6 callers at 09:00, Monday's 14:00 stays;
    the table says the day is closed rather than asking for agents nobody needs."""
    opening = (
        "queues:\n  support: {agents: ['1001', '1002'], service_level: 30, wrapup: 30,\n"
        "    opening: {hours: {mon-fri: ['09:30-18:00']}, special: {'2025-12-16': []}}}\n"
    )
    config = _config(tmp_path)
    text = config.read_text().replace(
        "queues:\n  support: {agents: ['1001', '1002'], service_level: 30, wrapup: 30}\n",
        opening,
    )
    config.write_text(text)
    capsys.readouterr()
    argv = ["forecast", str(config), "--week-of", "2025-12-16", "--queue", "support"]
    assert cli_main([*argv, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["period"] for r in rows] == ["2025-12-15 14:00"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert "support: closed Tue 2025-12-16: a special day, closed (its opening hours)" in out


def test_the_hour_the_clocks_go_back_counts_its_callers_once_for_the_hour() -> None:
    """Sunday 2025-10-26 in Berlin has 02:00-03:00 twice (summer time, then winter time):
    a caller in each is two callers of the 02:00 hour for the next Sunday."""
    lines = []
    for n, at in enumerate(
        (datetime(2025, 10, 26, 0, 30, tzinfo=UTC), datetime(2025, 10, 26, 1, 30, tzinfo=UTC))
    ):
        call = f"fold-{n}"
        lines += [
            QueueLogEntry(f"f{n}a", at, call, "support", "NONE", "ENTERQUEUE",
                          ("", "5550100", "1")),
            QueueLogEntry(f"f{n}b", at + timedelta(seconds=5), call, "support", "Agent/1001",
                          "CONNECT", ("5", "", "1")),
            QueueLogEntry(f"f{n}c", at + timedelta(seconds=65), call, "support", "Agent/1001",
                          "COMPLETECALLER", ("5", "60", "1")),
        ]  # fmt: skip
    start = datetime(2025, 10, 26, tzinfo=BERLIN)
    periods = Periods(start, start + timedelta(days=1), "hour", BERLIN)
    history = queue_summary(lines, periods, {"support": 30.0})
    assert [f.period for f in history] == ["2025-10-26 02:00", "2025-10-26 02:00 +0100"], (
        "the report names the two hours apart"
    )
    rows, _ = forecast(
        history,
        [date(2025, 11, 2)],
        interval_minutes=60,
        target=0.8,
        wrapups={},
        patience={},
    )
    assert [(r.period, r.calls, r.aht_seconds) for r in rows] == [("2025-11-02 02:00", 2.0, 60.0)]


def _tuesdays_at_nine(counts: list[int]) -> list[QueueLogEntry]:
    """``counts[k]`` callers at 09:00 on the Tuesday ``len(counts) - k`` weeks before
    2025-12-16."""
    first = date(2025, 12, 16) - timedelta(weeks=len(counts))
    return [
        line
        for k, count in enumerate(counts)
        for line in callers(first + timedelta(weeks=k), 9, count)
    ]


def _tuesday_nine(lines: list[QueueLogEntry], **kwargs: object) -> float:
    rows, _ = forecast(
        figures(lines),
        [date(2025, 12, 16)],
        interval_minutes=60,
        target=0.8,
        wrapups={"support": 30.0},
        patience={"support": None},
        **kwargs,  # type: ignore[arg-type]
    )
    return rows[0].calls


def test_a_growing_queue_is_forecast_along_its_trend_when_asked() -> None:
    """4, 5, 6, 7 callers on the Tuesdays before: the plain mean says 5.5, the trend 8."""
    lines = _tuesdays_at_nine([4, 5, 6, 7])
    assert _tuesday_nine(lines) == 5.5
    carried = trends(figures(lines), date(2025, 12, 15))
    assert carried["support"].as_dict() == {
        "weeks": 4,
        "weekly_change_percent": round(100 / 5.5, 1),
        "factor": round(8 / 5.5, 3),
    }
    factors = {q: t.factor for q, t in carried.items()}
    assert round(_tuesday_nine(lines, factors=factors), 6) == 8.0


def test_a_flat_queue_has_no_trend_and_one_week_none_to_follow() -> None:
    flat = trends(figures(_tuesdays_at_nine([5, 5, 5, 5])), date(2025, 12, 15))
    assert (flat["support"].weekly, flat["support"].factor) == (0.0, 1.0)
    alone = trends(figures(_tuesdays_at_nine([6])), date(2025, 12, 15))["support"]
    assert (alone.weeks, alone.factor) == (1, 1.0)
    assert trend_said("support", alone) == "support: no trend to follow (1 week(s) with callers)"


def test_a_collapsing_queue_is_held_to_half_its_mean() -> None:
    """8, 4, 2, 1: the line would cross zero by next week; the forecast keeps half."""
    carried = trends(figures(_tuesdays_at_nine([8, 4, 2, 1])), date(2025, 12, 15))["support"]
    assert carried.factor == 0.5
    assert trend_said("support", carried).endswith("forecast x0.50 (held to its limit)")


def test_forecast_follows_the_trend_on_the_command_line_and_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The history's weeks: 4.5, 4.5, 3 (a holiday) and 5.5 callers a day: +3.4 % a week."""
    config = _config(tmp_path)
    capsys.readouterr()
    argv = ["forecast", str(config), "--week-of", "2025-12-16", "--queue", "support"]
    assert cli_main([*argv, "--trend"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "support: +3.4 % callers a week over the 4 weeks read: forecast x1.09" in out
    assert cli_main([*argv, "--trend", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    nine = next(r for r in rows if r["period"] == "2025-12-16 09:00")
    assert nine["calls"] == round(6.0 * 4.75 / 4.375, 1)


async def test_a_planning_tool_asks_for_the_trend_through_the_api(tmp_path: Path) -> None:
    config = {"records": {"queue_log": True}, "ivr": {"timezone": "Europe/Berlin"}}
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        await daemon.recorder.writer.run(lambda: daemon.store.write_queue_log(tuple(HISTORY)))
        status, body = await center.api(
            "GET", "/figures/forecast?week_of=2025-12-16&queue=support&trend=true"
        )
        plain = await center.api("GET", "/figures/forecast?week_of=2025-12-16&queue=support")
        wrong = await center.api("GET", "/figures/forecast?trend=maybe")
    assert status == 200, body
    assert body["trend"]["support"]["factor"] == round(4.75 / 4.375, 3)
    assert plain[1]["trend"] == {}
    assert wrong == (400, {"error": "trend: true or false, not 'maybe'"})
