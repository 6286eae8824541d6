"""IVR branches on a queue's state before the caller joins it (``queue:`` with
``waiting_over`` / ``wait_over`` / ``agents_free`` in a branch case): a busy queue offers a
callback or a message instead; on both PBXs, in ``check`` and in ``simulate``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.testing import BASE_CONFIG, TRANSPORTS, Transport, merge, running_center

BUSY: dict[str, Any] = {
    "flows": {
        "main": {
            "start": "busy",
            "nodes": {
                "busy": {
                    "kind": "branch",
                    "cases": [{"queue": "support", "waiting_over": 0, "goto": "sorry"}],
                    "default": "welcome",
                },
                "sorry": {"kind": "hangup", "prompt": "all-lines-busy"},
            },
        }
    }
}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_caller_who_would_wait_behind_another_hears_the_busy_message_instead(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport, config=BUSY) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        center.add_phone("PJSIP/1002", answer_after=None)
        first = await center.caller_presses("5550001", "2")  # support
        await first.wait_moh(timeout=5)
        second = await center.pbx.call("800", caller_num="5550002")
        await second.wait_for_prompt("all-lines-busy", timeout=5)
        await second.wait_ended(timeout=5)
        await first.hangup()
        row = await center.cdr(second.uniqueid)
        await center.idle()
    assert "all-lines-busy" not in first.heard, "the first caller found nobody waiting"
    assert row["ivr_path"].endswith("main:sorry") and row["queue"] == ""


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"queue": "billing", "waiting_over": 3}, 'no queue named "billing"'),
        ({"queue": "support"}, "`queue:` needs a test"),
        ({"agents_free": False}, "need `queue:`"),
    ],
)
def test_branch_cases_on_a_queue_name_one_and_test_it(case: dict[str, Any], message: str) -> None:
    config = merge(BASE_CONFIG, BUSY)
    config["flows"]["main"]["nodes"]["busy"]["cases"] = [{**case, "goto": "sorry"}]
    config["pbx"]["ami"]["secret"] = "x"
    with pytest.raises(ConfigError) as refused:
        load_config_text(yaml.safe_dump(config, sort_keys=False))
    assert message in str(refused.value)
    assert "flows.main.nodes.busy.cases[0]" in str(refused.value)


def test_simulate_shows_what_a_caller_hears_when_the_queue_is_busy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "callcenter.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, BUSY), sort_keys=False))
    capsys.readouterr()
    busy = ["simulate", str(path), "--dialed", "800", "--queue-state", "support:waiting=4"]
    assert cli_main(busy) == 0
    busy_out = capsys.readouterr().out
    assert cli_main(["simulate", str(path), "--dialed", "800"]) == 0
    quiet_out = capsys.readouterr().out
    assert cli_main([*busy[:-1], "billing:waiting=4"]) == 1
    assert "no queue 'billing'" in capsys.readouterr().err
    assert cli_main([*busy[:-1], "support:queued=4"]) == 1
    assert "no 'queued'" in capsys.readouterr().err
    assert "all-lines-busy" in busy_out and "4 waiting" in busy_out
    assert "all-lines-busy" not in quiet_out and "welcome-menu" in quiet_out


async def test_the_queue_state_a_branch_sees_is_the_routers(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        board = center.daemon.switchboard
        center.add_phone("PJSIP/1002", answer_after=None)
        quiet = board.look_at_queue("support")
        caller = await center.caller_presses("5550001", "2")
        await caller.wait_moh(timeout=5)
        async with asyncio.timeout(5):
            while board.look_at_queue("support").waiting < 1:
                await asyncio.sleep(0.01)
        busy = board.look_at_queue("support")
        await caller.hangup()
        await center.idle()
    assert (quiet.waiting, quiet.staffed) == (0, 2) and quiet.free >= 1
    assert quiet.expected_wait is None, "no call handled yet: nothing to estimate from"
    assert quiet.closed is False, "no opening hours: always open"
    assert busy.waiting == 1
    assert board.look_at_queue("nope").waiting == 0


async def test_status_says_which_queue_is_closed_by_its_hours(tmp_path: Path) -> None:
    config = {"queues": {"support": {"opening": {"hours": {"mon-fri": ["08:00-18:00"]}}}}}
    async with running_center(tmp_path, config=config) as center:
        center.daemon.switchboard.clock = lambda: datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
        _, shown = await center.api("GET", "/status")
    closed = {q["name"]: q["closed"] for q in shown["queues"]}
    assert closed == {"sales": None, "support": "outside the opening hours"}
    assert "closed: outside the opening hours" in format_status(shown)
