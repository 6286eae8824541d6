"""``callcenter report --ivr``: where callers went in the IVR, node by node, the keys they
pressed and where they gave up, from the CDRs' ``ivr_path``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from callcenter.cli import main as cli_main
from callcenter.records.dialled import dialled_summary, format_dialled_table
from callcenter.records.ivr_paths import format_ivr_table, ivr_summary
from callcenter.testing import running_center


def test_each_node_counts_its_callers_their_keys_and_who_gave_up_there() -> None:
    rows = [
        {"ivr_path": "main:welcome>1>main:sales", "queue": "sales", "hung_up_by": "agent"},
        {"ivr_path": "main:welcome>2>main:support", "queue": "support", "hung_up_by": "caller"},
        {"ivr_path": "main:welcome>7>main:welcome>2>main:support", "queue": "support"},
        {"ivr_path": "main:welcome", "queue": "", "hung_up_by": "caller"},
        {"ivr_path": "main:welcome>9>main:bye", "queue": "", "hung_up_by": "system"},
        {"ivr_path": "main:welcome>8>main:box", "queue": "", "hung_up_by": "caller",
         "voicemail": "/vm/box/1.wav"},
        {"ivr_path": "", "queue": "sales"},
    ]  # fmt: skip
    calls, figures = ivr_summary(rows)
    by_node = {f.node: f.as_dict() for f in figures}
    assert calls == 6, "a call without an IVR path is not the IVR's"
    assert list(by_node) == ["main:welcome", "main:sales", "main:support", "main:bye", "main:box"]
    welcome = by_node["main:welcome"]
    assert welcome["callers"] == 6, "a menu heard twice counts once for the call"
    assert welcome["keys"] == {"2": 2, "1": 1, "7": 1, "9": 1, "8": 1}
    assert (welcome["hung_up"], welcome["ended"]) == (1, 0)
    assert (by_node["main:bye"]["hung_up"], by_node["main:bye"]["ended"]) == (0, 1)
    assert by_node["main:box"]["hung_up"] == 0, "a message left is no giving up"
    assert by_node["main:support"]["hung_up"] == 0, "they reached a queue"
    table = format_ivr_table(calls, figures)
    assert table.splitlines()[2].startswith("main:welcome")
    assert "2: 2, 1: 1" in table and table.endswith("6 call(s) went through the IVR")


def test_calls_are_counted_by_the_number_dialled_without_the_centres_own_dials() -> None:
    rows = [
        {"dst": "800", "agent": "1001", "wait_seconds": 10.0, "talk_seconds": 60.0},
        {"dst": "800", "agent": "1002", "wait_seconds": 30.0, "talk_seconds": 30.0},
        {"dst": "800", "agent": "", "abandoned": True},
        {"dst": "801", "agent": "", "voicemail": "/vm/x.wav"},
        {"dst": "801", "agent": ""},
        {"dst": "0612345678", "agent": "1001", "ivr_variables": '{"dialled_by": "1001"}'},
    ]
    figures = [f.as_dict() for f in dialled_summary(rows)]
    assert figures == [
        {"number": "800", "calls": 3, "answered": 2, "abandoned": 1, "voicemail": 0,
         "other": 0, "answered_percent": 66.7, "asa_seconds": 20.0, "talk_seconds": 90.0},
        {"number": "801", "calls": 2, "answered": 0, "abandoned": 0, "voicemail": 1,
         "other": 1, "answered_percent": 0.0, "asa_seconds": None, "talk_seconds": 0.0},
    ]  # fmt: skip
    table = format_dialled_table(dialled_summary(rows))
    assert table.splitlines()[2].split() == ["800", "3", "2", "67", "1", "0", "0", "20s"]


async def test_a_day_s_calls_by_ivr_node_and_by_number_dialled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One caller talks to support, one gives up at the welcome menu: ``report --ivr`` and
    ``report --dialled`` read them back from the records."""
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05, hangup_after=0.1)
        center.add_phone("PJSIP/1002", answer_after=0.05, hangup_after=0.1)
        served = await center.caller_presses("5550001", "2")
        await served.wait_ended(timeout=5)
        gave_up = await center.pbx.call("800", caller_num="5550002")
        await gave_up.wait_for_prompt("welcome-menu", timeout=5)
        await gave_up.hangup()
        for caller in (served, gave_up):
            await center.cdr(caller.uniqueid)
        await center.idle()
        config = str(center.config_path)
        ivr_code = await asyncio.to_thread(cli_main, ["report", config, "--ivr", "--json"])
        nodes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        dialled_code = await asyncio.to_thread(cli_main, ["report", config, "--dialled", "--csv"])
        lines = capsys.readouterr().out.splitlines()
    assert ivr_code == dialled_code == 0
    welcome = next(r for r in nodes if r["node"].endswith(":welcome"))
    assert (welcome["callers"], welcome["keys"], welcome["hung_up"]) == (2, {"2": 1}, 1)
    assert lines[0].startswith("number,calls,answered,abandoned")
    assert lines[1].startswith("800,2,1,0,0,1,50.0,")
