"""``report --pauses``: how long each agent was on a break, at lunch, in a meeting within a
period, per reason, from the records (the pauses going on now included, up to now)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.cli import main as cli_main
from callcenter.records.pauses import agent_pause_totals, pause_totals
from callcenter.records.summary import Stretch
from callcenter.testing import Center, DesktopBrowser, running_center

NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 7, hour, minute, tzinfo=UTC)


def test_a_lunch_begun_before_the_report_counts_from_its_start_and_a_break_going_on_to_now() -> (
    None
):
    pauses = [
        Stretch("1001", at(11, 45), at(12, 30), "lunch"),
        Stretch("1001", at(14, 0), at(14, 10), "break"),
        Stretch("1001", at(15, 0), at(15, 5), "break"),
        Stretch("1001", at(16, 50), None, "break"),
        Stretch("1002", at(9, 0), at(9, 15), "break"),  # before the report
        Stretch("1003", at(13, 0), at(13, 30), "meeting"),
    ]
    totals = pause_totals(pauses, NOON, at(17), names={"1001": "Alice"}, agents={"1001", "1002"})
    rows = [t.as_dict() for t in totals]
    assert rows == [
        {"agent": "1001", "name": "Alice", "reason": "break", "pauses": 3,
         "paused_seconds": 1500, "longest_seconds": 600, "mean_seconds": 500, "going_on": True},
        {"agent": "1001", "name": "Alice", "reason": "lunch", "pauses": 1,
         "paused_seconds": 1800, "longest_seconds": 1800, "mean_seconds": 1800,
         "going_on": False},
    ]  # fmt: skip
    (alice,) = agent_pause_totals(totals)
    assert (alice["pauses"], alice["seconds"]) == (4, 3300)
    assert alice["by"] == {"break": 1500, "lunch": 1800}


@given(
    st.lists(
        st.tuples(
            st.integers(0, 24 * 60),
            st.one_of(st.none(), st.integers(0, 12 * 60)),
            st.sampled_from(["break", "lunch", ""]),
        ),
        max_size=12,
    ),
    st.integers(0, 12 * 60),
    st.integers(1, 12 * 60),
)
def test_pause_time_is_never_more_than_the_report_lasts_per_pause_nor_counted_twice(
    spans: list[tuple[int, int | None, str]], offset: int, length: int
) -> None:
    day = datetime(2026, 12, 7, tzinfo=UTC)
    pauses = [
        Stretch(
            "1001",
            day + timedelta(minutes=start),
            None if span is None else day + timedelta(minutes=start + span),
            reason,
        )
        for start, span, reason in spans
    ]
    since = day + timedelta(minutes=offset)
    until = since + timedelta(minutes=length)
    totals = pause_totals(pauses, since, until)
    overlapping = [p for p in pauses if p.start < until and (p.end is None or p.end > since)]
    assert sum(t.pauses for t in totals) == len(overlapping)
    for total in totals:
        assert 0 <= total.longest <= (until - since).total_seconds()
        assert total.longest <= total.seconds + 1e-6
        assert total.seconds <= total.pauses * (until - since).total_seconds() + 1e-6
    assert sum(t.seconds for t in totals) == pytest.approx(
        sum(
            max(0.0, (min(p.end or until, until) - max(p.start, since)).total_seconds())
            for p in overlapping
        )
    )


async def alice_breaks_then_goes_to_lunch(center: Center) -> None:
    """Alice takes a break of a second, is ready, and goes to lunch (still on it)."""
    router = center.daemon.router
    router.pause("1001", "break", via="test")
    await asyncio.sleep(1.1)
    router.unpause("1001", via="test")
    router.pause("1001", "lunch", via="test")
    await center.idle()


async def test_the_report_lists_alices_breaks_and_the_lunch_she_is_on_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        await alice_breaks_then_goes_to_lunch(center)
        path = center.config_path
        capsys.readouterr()
        argv = ["report", str(path), "--pauses", "--json", "--tz", "UTC"]
        code = await asyncio.to_thread(cli_main, argv)
        out, totals = capsys.readouterr()
        only_bob = await asyncio.to_thread(cli_main, [*argv, "--agent", "1002"])
        said = capsys.readouterr().err
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and only_bob == 0
    assert [(r["agent"], r["reason"], r["pauses"], r["going_on"]) for r in rows] == [
        ("1001", "break", 1, False),
        ("1001", "lunch", 1, True),
    ]
    assert 1 <= rows[0]["paused_seconds"] <= 3
    assert totals.startswith("agent 1001 (Alice): 2 pause(s), ")
    assert ": break 1s, lunch 0s" in totals or ": break 2s, lunch 0s" in totals, totals
    assert "no agent paused then" in said


def test_pauses_go_with_agent_and_team_and_one_report_at_a_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli_main(["report", "--pauses", "--adherence"])
    assert "one report at a time" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["report", "--queues", "--agent", "1001"])
    assert "--pauses" in capsys.readouterr().err


async def test_alice_and_her_supervisor_read_her_pauses_of_the_day_on_their_pages(
    tmp_path: Path,
) -> None:
    config = {
        "agents": {"1001": {"pin": "1111", "team": "day"}},
        "supervisors": {"2000": {"pin": "2468", "teams": ["day"]}},
    }
    async with running_center(tmp_path, config=config) as center:
        await alice_breaks_then_goes_to_lunch(center)
        alice = await DesktopBrowser(center.daemon.api.port).sign_in("1001", "1111")
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        her_page = await sam.press("Pause, queues …", picking={"id": "1001"})
    said = alice.texts["pauses"]
    assert said.startswith("Pauses today: break 1 (0:01"), said
    assert said.endswith("lunch 1 (0:00, one now)"), said
    assert her_page.texts["pauses"] == said, "her supervisor reads the same"
