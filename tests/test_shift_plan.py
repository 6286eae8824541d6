"""Shifts proposed from a forecast (``callcenter forecast --shifts 8h,4h``,
``GET /figures/forecast?shifts=``): every interval gets the agents it needs, a flat day
exactly, a lunchtime peak with short shifts rather than long idle ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_forecast import HISTORY, _config

from callcenter import staffing
from callcenter.cli import main as cli_main
from callcenter.shift_plan import cover, format_shifts, parse_lengths, plan
from callcenter.testing import running_center


def rows(day: str, needs: dict[int, int], queue: str = "support") -> list[dict[str, object]]:
    """Forecast rows of ``day`` by hour: hour -> agents to schedule."""
    return [
        {"queue": queue, "period": f"{day} {hour:02d}:00", "agents_to_schedule": n}
        for hour, n in sorted(needs.items())
    ]


def test_a_flat_day_from_eight_to_midnight_is_two_eight_hour_shifts_of_three() -> None:
    proposed = plan(rows("2026-12-14", {h: 3 for h in range(8, 24)}), [480], 60)
    assert [(s.start, s.end, s.agents) for s in proposed.shifts] == [
        ("08:00", "16:00", 3),
        ("16:00", "24:00", 3),
    ]
    assert proposed.hours == {"support": {"planned": 48.0, "needed": 48.0}}
    assert proposed.as_dict()["hours"]["support"]["used_percent"] == 100.0


def test_a_lunchtime_peak_gets_four_hour_shifts_rather_than_idle_eight_hour_ones() -> None:
    """Two agents all day (08:00-16:00), five over lunch (12:00-14:00): the three more come
    for four hours, not eight."""
    needs = {h: 2 for h in range(8, 16)} | {12: 5, 13: 5}
    proposed = plan(rows("2026-12-14", needs), [480, 240], 60)
    assert [(s.start, s.end, s.agents) for s in proposed.shifts] == [
        ("08:00", "16:00", 2),
        ("12:00", "16:00", 3),
    ]
    hours = proposed.hours["support"]
    assert (hours["planned"], hours["needed"]) == (28.0, 22.0)


def test_a_shift_that_would_run_past_closing_starts_earlier_to_end_with_the_day() -> None:
    """An evening peak at 18:00-20:00 of a queue open until 20:00, with 4-hour shifts:
    the extra agent works 16:00-20:00, not 18:00-22:00 when nobody calls."""
    needs = {h: 1 for h in range(8, 20)} | {18: 2, 19: 2}
    proposed = plan(rows("2026-12-14", needs), [240], 60)
    assert [(s.start, s.end, s.agents) for s in proposed.shifts] == [
        ("08:00", "12:00", 1),
        ("12:00", "16:00", 1),
        ("16:00", "20:00", 2),
    ]


def test_a_shift_longer_than_the_open_day_is_the_open_day() -> None:
    """Open 10:00-13:00 with 8-hour shifts: the two agents 11:00 needs work the three
    hours the queue is open."""
    proposed = plan(rows("2026-12-14", {10: 1, 11: 2, 12: 1}), [480], 60)
    assert [(s.start, s.end, s.agents) for s in proposed.shifts] == [("10:00", "13:00", 2)]


@settings(max_examples=300, deadline=None)
@given(
    needed=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=96),
    lengths=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4),
)
def test_every_interval_gets_at_least_the_agents_it_needs_within_the_day(
    needed: list[int], lengths: list[int]
) -> None:
    shifts = cover(needed, lengths)
    staffed = [0] * len(needed)
    for start, span, agents in shifts:
        assert start >= 0 and start + span <= len(needed), "within the open day"
        assert agents > 0
        assert span in {min(length, len(needed)) for length in lengths}
        for i in range(start, start + span):
            staffed[i] += agents
    assert all(s >= n for s, n in zip(staffed, needed, strict=True))
    # Nobody starts where nobody was missing: each start is a shortfall's own interval,
    # or an earlier one for a shift that ends with the day.
    assert sum(a for _, _, a in shifts) <= sum(needed)


def test_shift_lengths_are_read_as_a_planner_writes_them() -> None:
    assert parse_lengths("4h, 8h,4h30", 30) == [480, 270, 240]
    assert parse_lengths("90min", 15) == [90]
    for text, said in (
        ("8x", "'8x' is not a shift length"),
        ("0h", "longer than nothing"),
        ("25h", "at most 24h"),
        ("4h30", "not a whole number of the forecast's 60-minute intervals"),
        ("", "'' is not a shift length"),
    ):
        with pytest.raises(ValueError, match=said):
            parse_lengths(text, 60)


def test_forecast_proposes_shifts_beside_the_hours_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tuesday 2025-12-16 needs agents at 09:00 and 10:00 only: with 8-hour shifts the
    shift runs 09:00-11:00 (the open day's rows); the JSON lists the shifts."""
    config = _config(tmp_path)
    capsys.readouterr()
    argv = ["forecast", str(config), "--week-of", "2025-12-16", "--queue", "support"]
    assert cli_main([*argv, "--shifts", "8h,4h"]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("shifts proposed (8h, 4h):")
    needed = staffing.agents_needed(6.0, 150.0, 30.0, 0.8).agents
    assert out[at + 1].split() == ["day", "queue", "shift", "agents"]
    assert out[at + 3].split() == ["Mon", "2025-12-15", "support", "14:00-15:00", "1"]
    assert out[at + 4].split() == ["Tue", "2025-12-16", "support", "09:00-11:00", str(needed)]
    assert out[-1].startswith("support: ")
    assert cli_main([*argv, "--shifts", "8h", "--json"]) == 0
    shifts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"queue": "support", "day": "2025-12-16", "start": "09:00", "end": "11:00",
            "agents": needed} in shifts  # fmt: skip
    assert cli_main([*argv, "--shifts", "4h30"]) == 1
    assert "not a whole number of the forecast's 60-minute intervals" in capsys.readouterr().err


async def test_a_planning_tool_reads_the_shifts_through_the_api(tmp_path: Path) -> None:
    config = {
        "records": {"queue_log": True},
        "queues": {"support": {"service_level": 30, "wrapup": 30}},
        "ivr": {"timezone": "Europe/Berlin"},
    }
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        await daemon.recorder.writer.run(lambda: daemon.store.write_queue_log(tuple(HISTORY)))
        status, body = await center.api(
            "GET", "/figures/forecast?week_of=2025-12-16&queue=support&shifts=8h,4h"
        )
        wrong, said = await center.api("GET", "/figures/forecast?shifts=banana")
        plain, without = await center.api("GET", "/figures/forecast?week_of=2025-12-16")
    assert status == 200, body
    planned = body["shift_plan"]
    assert planned["lengths"] == ["8h", "4h"]
    tuesday = [s for s in planned["shifts"] if s["day"] == "2025-12-16"]
    assert [(s["start"], s["end"]) for s in tuesday] == [("09:00", "11:00")]
    assert planned["hours"]["support"]["needed"] <= planned["hours"]["support"]["planned"]
    assert (wrong, said["error"]) == (
        400,
        "shifts: 'banana' is not a shift length such as 8h, 4h30 or 90min",
    )
    assert plain == 200 and "shift_plan" not in without


def test_the_table_says_the_hours_planned_and_needed() -> None:
    proposed = plan(
        rows("2026-12-14", {h: 2 for h in range(8, 16)} | {12: 5, 13: 5}), [480, 240], 60
    )
    assert format_shifts(proposed).splitlines() == [
        "shifts proposed (8h, 4h):",
        "day             queue    shift        agents",
        "--------------------------------------------",
        "Mon 2026-12-14  support  08:00-16:00       2",
        "Mon 2026-12-14  support  12:00-16:00       3",
        "support: 28 agent hours planned for 22 needed (78.6 % of them needed)",
    ]
