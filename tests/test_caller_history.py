"""A caller's history: the earlier calls of their number, with the code and note the agent
gave each, on the agent's desktop while they ring or talk, on ``GET /calls?number=`` for a
CRM, and in ``callcenter report --number``."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from test_postgres_records import both_stores
from test_record_rescue import T0, cdr

from callcenter.cli import main as cli_main
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.history import history
from callcenter.testing import DesktopBrowser, running_center

NUMBER = "0612345678"

DESK = {
    "agents": {"1001": {"pin": "1111"}},
    "queues": {"sales": {"agents": ["1001"], "wrapup": 0}},
    "dispositions": {"sale": "a sale"},
}


def test_a_numbers_calls_read_alike_in_postgresql_and_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    """Ann called and bought (code and note), called again and gave up, and was called
    back; another caller's call is not hers."""
    seen = []
    for store in both_stores(tmp_path, postgres_url):
        store.write_cdr(cdr("c1", src=NUMBER))
        store.write_cdr(
            cdr("c2", src=NUMBER, start=T0 + timedelta(hours=1), agent="", abandoned=True)
        )
        back = cdr(
            "c3",
            src="5550000",
            dst=NUMBER,
            start=T0 + timedelta(hours=2),
            ivr_variables='{"callback_of": "c2"}',
            agent="1001",
        )
        store.write_cdr(back)
        store.write_cdr(cdr("c4", src="0699999999", start=T0 + timedelta(hours=3)))
        store.write_disposition(
            DispositionRecord(
                "c1",
                "1002",
                "sale",
                "wants the brochure",
                NUMBER,
                "support",
                "",
                "",
                None,
                False,
                T0,
            )
        )
        rows = store.fetch_number_calls(NUMBER, 10)
        newest_two = store.fetch_number_calls(NUMBER, 2)
        later = store.fetch_number_calls(NUMBER, 10, since=T0 + timedelta(minutes=30))
        calls = history(rows)
        seen.append(calls)
        assert [r["uniqueid"] for r in rows] == ["c1", "c2", "c3"], "oldest first"
        assert [r["uniqueid"] for r in newest_two] == ["c2", "c3"]
        assert [r["uniqueid"] for r in later] == ["c2", "c3"]
        assert [(c["call_id"], c["direction"], c["outcome"]) for c in calls] == [
            ("c3", "out", "answered"),
            ("c2", "in", "abandoned"),
            ("c1", "in", "answered"),
        ]
        assert (calls[2]["code"], calls[2]["note"], calls[2]["agent"]) == (
            "sale",
            "wants the brochure",
            "1002",
        )
        assert calls[1]["code"] is None
    assert seen[0] == seen[1]


async def test_alice_sees_what_the_caller_bought_last_time_while_he_rings_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bob calls, Alice codes the call "sale" with a note; Bob calls again and her desktop
    shows that earlier call under his number, as do the API and the command line."""
    async with running_center(tmp_path, config=DESK) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        alice = DesktopBrowser(center.daemon.api.port)
        await alice.sign_in("1001", "1111")
        first = await center.caller_presses("5550077", "1", caller_name="Bob")
        await first.wait_bridged(timeout=5)
        await alice.get()
        await alice.press("Code with a note …")
        await alice.press("Give the code", code="sale", note="wants the brochure")
        await alice.press("Hang up")
        await first.wait_ended(timeout=5)
        await center.cdr(first.uniqueid)
        await center.idle()
        again = await center.caller_presses("5550077", "1", caller_name="Bob")
        await again.wait_bridged(timeout=5)
        page = await alice.get()
        status, api = await center.api("GET", "/calls?number=5550077")
        bad = await center.api("GET", "/calls")
        await again.hangup()
        await center.idle()
        code = await asyncio.to_thread(
            cli_main, ["report", str(center.config_path), "--number", "5550077", "--json"]
        )
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    earlier = [r for r in page.table_rows if len(r) == 5]
    assert len(earlier) == 1, "the call going on is not its own history"
    assert earlier[0][1:] == ["called us", "sales", earlier[0][3], "sale · wants the brochure"]
    assert earlier[0][3].startswith("1001, talked ")
    assert status == 200
    assert [(c["call_id"], c["code"]) for c in api["calls"]][-1] == (first.uniqueid, "sale")
    assert bad[0] == 400
    assert code == 0
    assert (printed[0]["uniqueid"], printed[0]["code"], printed[0]["note"]) == (
        first.uniqueid,
        "sale",
        "wants the brochure",
    )


def test_the_command_line_keeps_number_to_the_cdrs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli_main(["report", "--queues", "--number", NUMBER])
    assert stopped.value.code == 2
    assert "--number goes with the CDRs" in capsys.readouterr().err
