"""``report --waits``: how long callers waited, in bands, per queue: answered, abandoned
and exited callers by the band of their wait, and the share answered by each band's end
(a service-level profile), from the queue_log."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.cli import main as cli_main
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.waits import wait_bands
from callcenter.testing import running_center

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
_keys = itertools.count()


def line(at: float, call: str, event: str, *data: str, queue: str = "sales") -> QueueLogEntry:
    when = T0 + timedelta(seconds=at)
    return QueueLogEntry(str(next(_keys)), when, call, queue, "NONE", event, data)


def test_callers_fall_in_the_band_of_their_wait_and_the_share_answered_adds_up() -> None:
    entries = [
        line(0, "c1", "ENTERQUEUE", "", "0611"),
        line(5, "c1", "CONNECT", "5", "c1.1", "2"),
        line(1, "c2", "ENTERQUEUE", "", "0612"),
        line(26, "c2", "CONNECT", "25", "c2.1", "2"),
        line(2, "c3", "ENTERQUEUE", "", "0613"),
        line(47, "c3", "ABANDON", "1", "1", "45"),
        line(3, "c4", "ENTERQUEUE", "", "0614"),
        line(403, "c4", "EXITWITHTIMEOUT", "1", "1", "400"),
        line(4, "lead", "ENTERQUEUE", "campaign:spring", "0615"),
        line(6, "lead", "CONNECT", "2", "lead.1", "1"),
        line(-60, "before", "ENTERQUEUE", "", "0616"),
        line(5, "before", "CONNECT", "65", "b.1", "1"),
        line(7, "s1", "ENTERQUEUE", "", "0617", queue="support"),
        line(9, "s1", "CONNECT", "2", "s1.1", "1", queue="support"),
    ]
    found = wait_bands(entries, T0, T0 + timedelta(hours=1), bands=(10, 30, 60))
    sales, support = found
    assert [(r["wait"], r["answered"], r["abandoned"], r["exited"]) for r in sales.rows()] == [
        ("0-10 s", 1, 0, 0),
        ("10-30 s", 1, 0, 0),
        ("30-60 s", 0, 1, 0),
        ("> 60 s", 0, 0, 1),
    ], "the campaign's lead and the caller who joined before are no callers of the report"
    assert [r["answered_by_then_percent"] for r in sales.rows()] == [25.0, 50.0, 50.0, 50.0]
    assert [r["answered"] for r in support.rows()] == [1, 0, 0, 0]
    only = wait_bands(entries, T0, T0 + timedelta(hours=1), queues={"support"})
    assert [waits.queue for waits in only] == ["support"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["CONNECT", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", None]),
            st.integers(0, 1000),
        ),
        max_size=30,
    ),
    st.lists(st.integers(1, 600), min_size=1, max_size=6),
)
def test_every_caller_with_an_outcome_is_in_exactly_one_band(
    visits: list[tuple[str | None, int]], ends: list[int]
) -> None:
    entries = []
    for n, (outcome, wait) in enumerate(visits):
        entries.append(line(n, f"c{n}", "ENTERQUEUE", "", "0611"))
        if outcome == "CONNECT":
            entries.append(line(n + wait, f"c{n}", outcome, str(wait), "x", "1"))
        elif outcome == "EXITWITHKEY":
            entries.append(line(n + wait, f"c{n}", outcome, "1", "1", "1", str(wait)))
        elif outcome is not None:
            entries.append(line(n + wait, f"c{n}", outcome, "1", "1", str(wait)))
    found = wait_bands(entries, T0, T0 + timedelta(days=1), bands=ends)
    rows = [row for waits in found for row in waits.rows()]
    counted = sum(r["answered"] + r["abandoned"] + r["exited"] for r in rows)
    assert counted == sum(1 for outcome, _ in visits if outcome is not None)
    if not counted:
        return
    shares = [r["answered_by_then_percent"] for r in rows]
    assert all(a <= b for a, b in itertools.pairwise(shares))
    answered = [wait for outcome, wait in visits if outcome == "CONNECT"]
    assert shares[-1] == pytest.approx(round(100 * len(answered) / counted, 1))
    bounds = sorted(set(ends))
    expected = [0] * (len(bounds) + 1)
    for wait in answered:
        expected[next((i for i, end in enumerate(bounds) if wait <= end), len(bounds))] += 1
    assert [r["answered"] for r in rows] == expected


async def test_the_report_shows_a_caller_answered_at_once_and_one_who_gave_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05, hangup_after=0.1)
        center.daemon.router.logout("1002", via="test")
        answered = await center.caller_presses("5550101", "1")
        await answered.wait_ended(timeout=5)
        center.daemon.router.logout("1001", via="test")
        gave_up = await center.caller_presses("5550102", "1")
        await gave_up.wait_moh(timeout=5)
        await gave_up.hangup()
        await center.idle()
        path = center.config_path
    capsys.readouterr()
    argv = ["report", str(path), "--waits", "--queue", "sales", "--json", "--bands", "5,60"]
    code = await asyncio.to_thread(cli_main, argv)
    rows = [json.loads(row) for row in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [(r["queue"], r["wait"], r["answered"], r["abandoned"]) for r in rows] == [
        ("sales", "0-5 s", 1, 1),
        ("sales", "5-60 s", 0, 0),
        ("sales", "> 60 s", 0, 0),
    ]
    assert rows[0]["answered_by_then_percent"] == 50.0
