"""Numbers ops put on the IVR's number lists while the centre runs (a nuisance caller on
``blocked``): the flows' ``caller_list`` cases see them from the next call, on both PBXs;
the API and ``callcenter numbers`` add and remove them, a restart keeps them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from callcenter.cli import format_number_lists
from callcenter.cli import main as cli_main
from callcenter.events import EngineEvent, NumberListChanged
from callcenter.testing import TRANSPORTS, Center, Transport, running_center

BLOCKING: dict[str, Any] = {
    "ivr": {"number_lists": {"blocked": ["_0900X."], "vip": ["+4930123456"]}},
    "flows": {
        "main": {
            "start": "screen",
            "nodes": {
                "screen": {
                    "kind": "branch",
                    "cases": [{"caller_list": "blocked", "goto": "blocked"}],
                    "default": "welcome",
                },
                "blocked": {"kind": "hangup", "prompt": "number-blocked"},
            },
        }
    },
}


async def first_prompt(center: Center, number: str) -> str:
    caller = await center.pbx.call("800", caller_num=number)
    async with asyncio.timeout(5):
        while not caller.heard:
            await asyncio.sleep(0.01)
    await caller.hangup()
    await center.idle()
    return str(caller.heard[0])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_nuisance_caller_blocked_at_noon_is_turned_away_until_unblocked(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport, config=BLOCKING) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        before = await first_prompt(center, "5550666")
        added = await center.api("POST", "/numbers/blocked/add", {"number": "5550666"})
        blocked = await first_prompt(center, "5550666")
        others = await first_prompt(center, "5550777")
        daemon = await center.restart()
        after_restart = await first_prompt(center, "5550666")
        _, shown = await center.api("GET", "/numbers")
        removed = await center.api("POST", "/numbers/blocked/remove", {"number": "5550666"})
        unblocked = await first_prompt(center, "5550666")
        await center.idle()
        daemon = await center.restart()
        kept = daemon.switchboard.lists.additions
    assert before == "welcome-menu"
    assert added == (200, {"list": "blocked", "number": "5550666", "on_list": True,
                           "changed": True})  # fmt: skip
    assert (blocked, others) == ("number-blocked", "welcome-menu")
    assert after_restart == "number-blocked", "a restart keeps the number on the list"
    (listed,) = [found for found in shown["lists"] if found["name"] == "blocked"]
    assert listed["config"] == ["_0900X."]
    assert [(e["number"], e["via"]) for e in listed["added"]] == [("5550666", "api")]
    assert removed[1]["changed"] is True and unblocked == "welcome-menu"
    assert kept == {}, "removed: nothing left for the next daemon"
    changes = [
        (e.number_list, e.number, e.added) for e in events if isinstance(e, NumberListChanged)
    ]
    assert changes == [("blocked", "5550666", True)]


async def test_what_makes_no_sense_is_refused_clearly(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=BLOCKING) as center:
        unknown = await center.api("POST", "/numbers/spam/add", {"number": "5550666"})
        not_a_number = await center.api("POST", "/numbers/blocked/add", {"number": "call me"})
        missing = await center.api("POST", "/numbers/blocked/add", {})
        in_config = await center.api("POST", "/numbers/blocked/remove", {"number": "_0900X."})
        again = await center.api("POST", "/numbers/blocked/add", {"number": "_0900X."})
        not_on = await center.api("POST", "/numbers/vip/remove", {"number": "5550666"})
        wrong = await center.api("GET", "/numbers/blocked/add")
    assert unknown[0] == 404 and "lists: blocked, vip" in unknown[1]["error"]
    assert not_a_number[0] == 400 and "Asterisk pattern" in not_a_number[1]["error"]
    assert missing[0] == 400
    assert in_config[0] == 409 and "in the config file" in in_config[1]["error"]
    assert again[1]["changed"] is False, "on the list already (the config's)"
    assert not_on == (200, {"list": "vip", "number": "5550666", "on_list": False,
                            "changed": False})  # fmt: skip
    assert wrong[0] == 405


async def test_the_command_line_adds_lists_and_removes_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=BLOCKING) as center:
        url = f"http://127.0.0.1:{center.daemon.api.port}"

        def cli(*argv: str) -> int:
            return cli_main(["numbers", *argv, "--api", url])

        added = await asyncio.to_thread(cli, "add", "vip", "+4930999999")
        capsys.readouterr()
        listed = await asyncio.to_thread(cli, "list")
        shown = capsys.readouterr().out
        removed = await asyncio.to_thread(cli, "remove", "vip", "+4930999999")
    assert (added, listed, removed) == (0, 0, 0)
    assert "vip: 1 in the config" in shown and "+4930999999  added" in shown
    with pytest.raises(SystemExit):
        cli_main(["numbers", "add", "vip"])
    assert "needs the list and the number" in capsys.readouterr().err
    assert format_number_lists([]) == "no number lists (ivr.number_lists)"
