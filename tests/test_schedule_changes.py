"""Days of agents' schedules changed while the centre runs: a swapped shift, an extra day,
a day off (`callcenter agent schedule 1002 --day D --hours 10:00-18:00`, ``POST
/agents/<id>/schedule``). The absent alert, the desktops, the status and ``report
--adherence`` follow the changed day; it is kept across reloads and restarts, and hours a
schedule cannot have are refused with the field named."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.acd.schedule import schedule_of, stretch_at, with_day_changes
from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.events import AgentAlert, AgentScheduleChanged, EngineEvent
from callcenter.live.api import scope_of
from callcenter.testing import DesktopBrowser, run_cli, running_center, until

DAY_LABEL = re.compile(r"[A-Z][a-z]{2} \d\d [A-Z][a-z]{2}")  # Tue 08 Dec
ALWAYS = {"hours": {"daily": ["00:00-24:00"]}, "timezone": "UTC"}


def today() -> date:
    return datetime.now(UTC).date()


async def test_a_day_off_given_today_stops_the_absent_alert_and_the_report_counts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "agents": {"1002": {"schedule": ALWAYS, "pin": "2222"}},
        "acd": {"agent_alerts": {"absent": 0.3}},
    }
    day = today().isoformat()
    async with running_center(tmp_path, config=config) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        board = center.daemon.switchboard
        center.daemon.router.logout("1002", via="test")
        await until(lambda: board.agent_alerts.standing().get("1002") == "absent", timeout=5)
        off = await center.api("POST", "/agents/1002/schedule", {"day": day, "hours": []})
        await until(lambda: "1002" not in board.agent_alerts.standing(), timeout=5)
        _, shown = await center.api("GET", "/status")
        _, days = await center.api("GET", "/agents/1002/schedule?days=2")
        browser = DesktopBrowser(center.daemon.api.port)
        bob = await browser.sign_in("1002", "2222")
        week = await browser.press("My schedule …")
        await center.idle()
        path = center.config_path
    assert off[0] == 200, off
    assert off[1] == {**off[1], "agent": "1002", "day": day, "hours": [], "changed": True}
    assert off[1]["via"] == "api"
    raised = [(e.figure, e.raised) for e in events if isinstance(e, AgentAlert)]
    assert raised == [("absent", True), ("absent", False)], "a day off: nobody is missing"
    assert [e.hours for e in events if isinstance(e, AgentScheduleChanged)] == [[]]
    assert f"on {day} off since " in format_status(shown)
    assert [(d["day"], d["hours"], d["changed"]) for d in days["days"]] == [
        (day, [], True),
        ((today() + timedelta(days=1)).isoformat(), ["00:00-24:00"], False),
    ]
    assert bob.texts["schedule"].startswith("Your schedule today: a day off")
    shown = [row for row in week.table_rows if row[0] != "day"]
    assert shown[0][1:] == ["a day off", "changed"] and shown[1][1:] == ["00:00-24:00", ""]
    capsys.readouterr()
    argv = ["report", str(path), "--adherence", "--json", "--tz", "UTC"]
    code = await asyncio.to_thread(cli_main, argv)
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["agent"], r["scheduled_seconds"]) for r in rows] == [("1002", 0)], (
        "the report lays the changed day over the schedule, as the daemon did"
    )


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_swapped_shift_is_kept_across_a_reload_and_a_restart_and_taken_back(
    tmp_path: Path, transport: Any
) -> None:
    tomorrow = (today() + timedelta(days=1)).isoformat()
    config = {"agents": {"1002": {"schedule": ALWAYS}}}
    body = {"day": tomorrow, "hours": ["10:00-14:00", "15:00-19:00"]}
    async with running_center(tmp_path, transport=transport, config=config) as center:
        swapped = await center.api("POST", "/agents/1002/schedule", body)
        await center.daemon.reload()
        after_reload = center.daemon.switchboard.roster.schedule_day(
            "1002", date.fromisoformat(tomorrow)
        )
        await center.restart()
        await center.idle()
        _, after_restart = await center.api("GET", f"/agents/1002/schedule?since={tomorrow}&days=1")
        back = await center.api("POST", "/agents/1002/schedule", {"day": tomorrow, "hours": None})
        await center.idle()
        await center.restart()
        _, in_the_end = await center.api("GET", f"/agents/1002/schedule?since={tomorrow}&days=1")
    assert swapped[0] == 200 and swapped[1]["hours"] == ["10:00-14:00", "15:00-19:00"]
    assert after_reload["hours"] == ["10:00-14:00", "15:00-19:00"] and after_reload["changed"]
    (day,) = after_restart["days"]
    assert (day["hours"], day["changed"], day["via"]) == (body["hours"], True, "api")
    assert back[0] == 200 and back[1]["hours"] == ["00:00-24:00"] and not back[1]["changed"]
    assert in_the_end["days"][0]["hours"] == ["00:00-24:00"], "as the schedule says again"


async def test_an_extra_day_for_an_agent_without_a_schedule_makes_them_scheduled_then(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        day = today().isoformat()
        extra = await center.api(
            "POST", "/agents/1001/schedule", {"day": day, "hours": ["00:00-24:00"]}
        )
        _, shown = await center.api("GET", "/status")
    assert extra[0] == 200 and extra[1]["hours"] == ["00:00-24:00"]
    assert shown["scheduled"]["now"] == 1, "scheduled today only"


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ({"day": "2026-12-08", "hours": ["18:00-10:00"]}, 400, "hours.0"),
        ({"day": "2026-12-08", "hours": ["9h-17h"]}, 400, "hours.0"),
        ({"day": "2026-12-08", "hours": "10:00-18:00"}, 400, "a list of ranges"),
        ({"day": "08/12/2026", "hours": []}, 400, "is not a day"),
        ({"day": "2026-12-08"}, 400, "say which day and its hours"),
        ({"hours": []}, 400, "say which day and its hours"),
    ],
)
async def test_hours_a_schedule_cannot_have_are_refused_with_the_field_named(
    tmp_path: Path, body: dict[str, Any], status: int, said: str
) -> None:
    async with running_center(tmp_path) as center:
        answer = await center.api("POST", "/agents/1002/schedule", body)
        nobody = await center.api("POST", "/agents/9999/schedule", {"day": "2026-12-08"})
        changes = center.daemon.switchboard.roster.schedule_changes
    assert answer[0] == status and said in answer[1]["error"], answer
    assert nobody[0] == 404
    assert changes == {}, "nothing kept"


def test_changing_who_works_when_is_the_supervisors_scope_reading_it_anyones() -> None:
    assert scope_of("POST", "/agents/1002/schedule") == "supervise"
    assert scope_of("GET", "/agents/1002/schedule") == "read"
    assert scope_of("POST", "/agents/1002/pause") == "agents"


async def test_the_cli_changes_a_day_and_shows_the_days(tmp_path: Path) -> None:
    config = {"agents": {"1002": {"schedule": ALWAYS}}}
    day = (today() + timedelta(days=1)).isoformat()
    async with running_center(tmp_path, config=config) as center:

        async def run(*argv: str) -> tuple[int, str, str]:
            return await run_cli(center, "agent", "schedule", "1002", *argv)

        changed = await run("--day", day, "--hours", "08:00-12:00,13:00-16:00")
        shown = await run("--days", "3")
        off = await run("--day", day, "--off")
        both = await run("--day", day, "--off", "--as-planned")
        no_day = await run("--off")
    assert changed[0] == 0, changed
    assert f"{day}  08:00-12:00, 13:00-16:00  (changed " in changed[1]
    lines = shown[1].splitlines()
    assert lines[0] == "agent 1002:" and len(lines) == 4
    assert "00:00-24:00" in lines[1] and "(changed" not in lines[1]
    assert "08:00-12:00, 13:00-16:00  (changed" in lines[2] and "via api" in lines[2]
    assert off[0] == 0 and f"{day}  off  (changed" in off[1]
    assert both[0] == 2 and "one of --off, --as-planned" in both[2]
    assert no_day[0] == 2 and "needs --day" in no_day[2]


@given(
    st.lists(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=5, unique=True),
    st.lists(st.sampled_from(["08:00-12:00", "13:00-17:00", "22:00-24:00", "00:00-06:00"]),
             max_size=3, unique=True),
)  # fmt: skip
def test_a_changed_day_has_exactly_its_hours_and_every_other_day_keeps_the_schedules(
    days: list[date], hours: list[str]
) -> None:
    config = load_config_text(
        "pbx: {ami: {secret: s}}\n"
        "agents:\n"
        '  "1002": {name: Bob, device: PJSIP/1002, team: day}\n'
        "teams:\n"
        '  day: {schedule: {hours: {mon-fri: ["09:00-17:00"]}, timezone: UTC}}\n'
    )
    changed = with_day_changes(config, {"1002": dict.fromkeys(days, tuple(hours))})
    before, after = schedule_of(config, "1002"), schedule_of(changed, "1002")
    assert before is not None and after is not None
    for day in days:
        assert list(after.hours.day_ranges(day)) == hours
    for offset in range(-3, 4):
        other = (days[0] if days else date(2026, 12, 7)) + timedelta(days=offset)
        if other not in days:
            assert after.hours.day_ranges(other) == before.hours.day_ranges(other)
    if not days:
        assert changed is config
    noon = datetime(2026, 12, 7, 12, tzinfo=UTC)  # a Monday
    if date(2026, 12, 7) not in days:
        assert stretch_at(after, noon) is not None


async def test_sam_swaps_bobs_shift_from_his_page_and_gives_him_a_day_off(
    tmp_path: Path,
) -> None:
    config = {
        "supervisors": {"2000": {"pin": "2468", "teams": ["night"]}},
        "teams": {"night": {}},
        "agents": {"1002": {"team": "night", "schedule": ALWAYS}, "1001": {}},
    }
    first = today()
    second = (first + timedelta(days=1)).isoformat()
    async with running_center(tmp_path, config=config) as center:
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        page = await sam.press("Pause, queues …", picking={"id": "1002"})
        swapped = await sam.press("Set these hours", day=second, hours="10:00-14:00, 15:00-19:00")
        empty = await sam.press("Set these hours", day=second, hours="")
        wrong = await sam.press("Set these hours", day=second, hours="19:00-15:00")
        off = await sam.press("Day off", day=first.isoformat())
        again = await sam.press("As planned", day=first.isoformat())
        kept = center.daemon.switchboard.roster.schedule_change_views()
        home = await sam.get("/desktop")
    days = [row for row in page.table_rows if DAY_LABEL.fullmatch(row[0])]
    assert len(days) == 7 and days[0][1] == "00:00-24:00" and days[0][2] == ""
    assert page.form("Day off").fields["day"] == first.isoformat()
    assert swapped.texts["said"] == f"Agent 1002 on {second}: 10:00-14:00, 15:00-19:00"
    shown = [row for row in swapped.table_rows if len(row) == 3]
    assert ["10:00-14:00, 15:00-19:00", "changed by supervisor:2000"] in [r[1:] for r in shown]
    assert empty.texts["error"] == "Type the hours, such as 10:00-18:00 (or: Day off)"
    assert wrong.texts["error"].startswith("hours.0: ")
    assert off.texts["said"] == f"Agent 1002 on {first.isoformat()}: a day off"
    assert again.texts["said"] == (
        f"Agent 1002 on {first.isoformat()}: 00:00-24:00 (as the schedule says)"
    )
    assert [(k["day"], k["via"]) for k in kept] == [(second, "supervisor:2000")]
    label = date.fromisoformat(second).strftime("%a %d %b")
    ahead = [r for r in home.table_rows if r[:2] == [label, "1002"]]
    assert ahead == [[label, "1002", "10:00-14:00, 15:00-19:00", "supervisor:2000"]], (
        "Sam's desktop lists the days changed ahead"
    )


async def test_the_report_lists_the_days_changed_for_the_period_and_who_changed_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tomorrow = today() + timedelta(days=1)
    config = {"agents": {"1002": {"schedule": ALWAYS}}}
    async with running_center(tmp_path, config=config) as center:
        body = {"day": tomorrow.isoformat(), "hours": ["10:00-14:00"]}
        await center.api("POST", "/agents/1002/schedule", body)
        far = {"day": (today() + timedelta(days=9)).isoformat(), "hours": []}
        await center.api("POST", "/agents/1002/schedule", far)
        await center.idle()
        path = center.config_path
    until = (today() + timedelta(days=3)).isoformat()
    argv = ["report", str(path), "--schedule-changes", "--json", "--tz", "UTC", "--until", until]
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main, argv)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    alice = await asyncio.to_thread(cli_main, [*argv, "--agent", "1001"])
    said = capsys.readouterr()
    assert code == 0 and alice == 0
    assert [(r["day"], r["agent"], r["name"], r["hours"], r["via"]) for r in rows] == [
        (tomorrow.isoformat(), "1002", "Bob", "10:00-14:00", "api")
    ], "the day off in nine days is after the report"
    assert said.out == "", "no row for Alice"
    assert "no schedule day was changed for then" in said.err


#: Bob (1002, PIN 2222) of the night team, on a schedule; Sam (2000, PIN 2468) their
#: supervisor; Alice (1001) of no team.
NIGHT_DESKS: dict[str, Any] = {
    "supervisors": {"2000": {"pin": "2468", "teams": ["night"]}},
    "teams": {"night": {}},
    "agents": {"1002": {"team": "night", "schedule": ALWAYS, "pin": "2222"}, "1001": {}},
}


async def test_bob_asks_for_a_day_off_and_sam_approves_it_then_declines_his_next_ask(
    tmp_path: Path,
) -> None:
    tomorrow = (today() + timedelta(days=1)).isoformat()
    later = (today() + timedelta(days=2)).isoformat()
    async with running_center(tmp_path, config=NIGHT_DESKS) as center:
        bob = DesktopBrowser(center.daemon.api.port)
        await bob.sign_in("1002", "2222")
        await bob.press("Ask for another day …")
        asked = await bob.press("Ask for a day off", day=tomorrow, note="dentist")
        await bob.press("Ask for another day …")
        empty = await bob.press("Ask for these hours", day=later, hours="")
        await bob.press("Ask for another day …")
        second = await bob.press("Ask for these hours", day=later, hours="10:00-14:00")
        sam = DesktopBrowser(center.daemon.api.port)
        home = await sam.sign_in("2000", "2468", role="supervisor")
        approved = await sam.press("Approve", picking={"request": _request_of(home, tomorrow)})
        off = center.daemon.switchboard.roster.schedule_day("1002", date.fromisoformat(tomorrow))
        await center.idle()
        await center.restart()
        _, waiting = await center.api("GET", "/schedule-requests")
        _, status = await center.api("GET", "/status")
        sam = DesktopBrowser(center.daemon.api.port)
        home = await sam.sign_in("2000", "2468", role="supervisor")
        second_id = _request_of(home, later)
        declined = await sam.press("Decline", picking={"request": second_id})
        kept = center.daemon.switchboard.roster.schedule_day("1002", date.fromisoformat(later))
        told = await DesktopBrowser(center.daemon.api.port).sign_in("1002", "2222")
        await center.daemon.recorder.writer.wait_written(f"schedule-request:{second_id}")
        rows = center.daemon.store.fetch_schedule_requests()
    assert asked.texts["said"].endswith("a day off; your supervisors answer")
    assert asked.texts["requests"].startswith("Waiting for an answer:")
    assert empty.texts["error"] == "Type the hours, such as 10:00-18:00 (or: a day off)"
    assert "10:00-14:00" in second.texts["requests"]
    assert approved.texts["said"].startswith("Approved: agent 1002 on ")
    assert (off["hours"], off["changed"], off["via"]) == ([], True, "supervisor:2000")
    assert [r["day"] for r in waiting["requests"]] == [later], "kept across a restart"
    assert f"Schedule requests waiting: 1 (1002 on {later})" in format_status(status)
    assert declined.texts["said"].startswith("Declined: agent 1002 on ")
    assert kept["hours"] == ["00:00-24:00"] and not kept["changed"]
    day, other = (date.fromisoformat(d).strftime("%a %d %b") for d in (tomorrow, later))
    assert told.texts["answers"] == (
        f"Answered: {other}, 10:00-14:00: declined; {day}, a day off: approved"
    ), "Bob reads his answers, the one before the restart too"
    assert [(r.day, r.status, r.decided_by, r.note) for r in rows] == [
        (tomorrow, "approved", "supervisor:2000", "dentist"),
        (later, "declined", "supervisor:2000", ""),
    ]


async def test_bob_takes_back_a_request_his_plans_no_longer_need(tmp_path: Path) -> None:
    tomorrow = (today() + timedelta(days=1)).isoformat()
    later = (today() + timedelta(days=2)).isoformat()
    async with running_center(tmp_path, config=NIGHT_DESKS) as center:
        bob = DesktopBrowser(center.daemon.api.port)
        await bob.sign_in("1002", "2222")
        await bob.press("Ask for another day …")
        await bob.press("Ask for a day off", day=tomorrow, note="dentist")
        await bob.press("Ask for another day …")
        two = await bob.press("Ask for these hours", day=later, hours="10:00-14:00")
        (first, _) = [f.fields["request"] for f in two.forms if f.label == "Withdraw"]
        taken = await bob.press("Withdraw", picking={"request": first})
        again = await bob.post("/desktop/act", {"action": "withdraw-request", "request": first})
        _, waiting = await center.api("GET", "/schedule-requests")
        (other,) = [r["id"] for r in waiting["requests"]]
        alice = await center.api("POST", f"/schedule-requests/{other}/withdraw", {"agent": "1001"})
        nobody = await center.api("POST", f"/schedule-requests/{other}/withdraw", {})
        sam = await DesktopBrowser(center.daemon.api.port).sign_in(
            "2000", "2468", role="supervisor"
        )
        by_api = await center.api("POST", f"/schedule-requests/{other}/withdraw", {"agent": "1002"})
        await center.daemon.recorder.writer.wait_written(f"schedule-request:{other}")
        await center.restart()
        _, after = await center.api("GET", "/schedule-requests")
        told = await DesktopBrowser(center.daemon.api.port).sign_in("1002", "2222")
        rows = center.daemon.store.fetch_schedule_requests()
        plan = center.daemon.switchboard.roster.schedule_day("1002", date.fromisoformat(tomorrow))
    label = date.fromisoformat(tomorrow).strftime("%a %d %b")
    assert taken.texts["said"] == f"You took back your request for {label}: a day off"
    assert "a day off" not in taken.texts["requests"] and "10:00-14:00" in taken.texts["requests"]
    assert again.texts["error"] == f"no request {first!r} waits"
    assert alice[0] == 403 and "agent 1002's" in alice[1]["error"], "only Bob takes his back"
    assert nobody[0] == 400
    assert [r[1] for r in sam.table_rows if len(r) == 5 and r[0] == "1002"] == [
        date.fromisoformat(later).strftime("%a %d %b")
    ], "Sam sees only the request still asked"
    assert by_api[0] == 200 and by_api[1]["status"] == "withdrawn"
    assert after["requests"] == [], "nothing waits after the restart"
    assert "answers" not in told.texts, "a request taken back is no answer to read"
    assert "requests" not in told.texts
    assert sorted((r.day, r.status, r.decided_by) for r in rows) == [
        (tomorrow, "withdrawn", "1002"),
        (later, "withdrawn", "1002"),
    ]
    assert not plan["changed"], "the day stays as planned"
    assert scope_of("POST", "/schedule-requests/ab12/withdraw") == "agents"


def _request_of(page: Any, day: str) -> str:
    """The id of the waiting request for ``day`` on a supervisor's page."""
    label = date.fromisoformat(day).strftime("%a %d %b")
    (row,) = [r for r in page.table_rows if len(r) == 5 and r[1] == label]
    forms = [f for f in page.forms if f.label == "Approve"]
    index = [r for r in page.table_rows if len(r) == 5 and r[0] != "agent"].index(row)
    return forms[index].fields["request"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"agent": "1002", "day": "2026-12-08"}, "say who asks for which day"),
        ({"agent": "1002", "day": "2020-01-01", "hours": []}, "is gone by"),
        ({"agent": "1002", "day": "2026-12-08", "hours": ["9-5"]}, "hours.0"),
        ({"agent": "1002", "day": "2026-12-08", "hours": [], "note": "x" * 201}, "note: 200"),
    ],
)
async def test_requests_an_agent_cannot_make_are_refused(
    tmp_path: Path, body: dict[str, Any], said: str
) -> None:
    async with running_center(tmp_path) as center:
        answer = await center.api("POST", "/schedule-requests", body)
        nobody = await center.api("POST", "/schedule-requests/abc/approve", {"by": "2000"})
    assert answer[0] == 400 and said in answer[1]["error"], answer
    assert nobody[0] == 404


def test_agents_ask_and_supervisors_answer() -> None:
    assert scope_of("POST", "/schedule-requests") == "agents"
    assert scope_of("POST", "/schedule-requests/ab12/approve") == "supervise"
    assert scope_of("POST", "/schedule-requests/ab12/decline") == "supervise"


async def test_the_night_team_has_a_training_morning_and_a_day_off_in_one_go(
    tmp_path: Path,
) -> None:
    config = {
        "teams": {"night": {"schedule": ALWAYS}},
        "agents": {"1001": {"team": "night"}, "1002": {"team": "night"}, "1003": {}},
    }
    tomorrow = (today() + timedelta(days=1)).isoformat()
    async with running_center(tmp_path, config=config) as center:
        training = await run_cli(
            center, "agent", "schedule", "--team", "night", "--day", tomorrow,
            "--hours", "09:00-12:00",
        )  # fmt: skip
        board = center.daemon.switchboard
        days = {a: board.roster.schedule_day(a, date.fromisoformat(tomorrow)) for a in AGENTS}
        bad = await center.api("POST", "/teams/night/schedule", {"day": tomorrow, "hours": ["x"]})
        nobody = await center.api("POST", "/teams/day/schedule", {"day": tomorrow, "hours": []})
        both = await run_cli(center, "agent", "schedule", "1001", "--team", "night")
    assert training[0] == 0, training
    assert training[1] == f"team night on {tomorrow}: 09:00-12:00 (1001, 1002)\n"
    assert days["1001"]["hours"] == days["1002"]["hours"] == ["09:00-12:00"]
    assert days["1001"]["via"] == "api:team night"
    assert not days["1003"]["changed"], "not of the team"
    assert bad[0] == 400 and "hours.0" in bad[1]["error"]
    assert nobody[0] == 404 and "no team 'day'" in nobody[1]["error"]
    assert both[0] == 2 and "an agent's id or --team, not both" in both[2]
    assert scope_of("POST", "/teams/night/schedule") == "supervise"


AGENTS = ("1001", "1002", "1003")
