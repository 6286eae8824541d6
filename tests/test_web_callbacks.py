"""Callbacks asked for from outside a call (a web page, an app): ``callcenter callback``
and ``POST /callbacks``. The whole path, from the request to the agent, runs on every PBX
in ``test_acd_scenarios``; here the command line and what a draining centre says."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from callcenter.cli import main as cli_main
from callcenter.events import EngineEvent, QueueCallbackRequested
from callcenter.testing import running_center

CALLBACKS = {"acd": {"callback_dial": "PJSIP/${number}", "callback_allow": ["_555XXXX"]}}


async def test_the_command_line_asks_for_a_callback_and_a_draining_centre_takes_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=CALLBACKS) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        center.daemon.router.logout("1001", via="test")
        center.daemon.router.logout("1002", via="test")
        url = f"http://127.0.0.1:{center.daemon.api.port}"
        argv = ["callback", "5551234", "--queue", "support", "--priority", "3", "--api", url]
        code = await asyncio.to_thread(cli_main, argv)
        # The daemon runs in this process and logs to the same stdout: the answer is the
        # indented JSON object the command printed.
        printed = capsys.readouterr().out
        shown = json.loads(printed[printed.index("{\n") :])
        board = center.daemon.switchboard
        board.begin_drain()
        draining = await center.api("POST", "/callbacks", {"number": "5559876", "queue": "sales"})
        board.end_drain()
        waiting = await center.api("POST", "/callbacks", {"number": "5551234", "queue": "support"})
        bad = await center.api("POST", "/callbacks", {"number": "5551234"})
        wrong_method = await center.api("GET", "/callbacks")
    assert code == 0 and (shown["queue"], shown["new"]) == ("support", True)
    (requested,) = [e for e in events if isinstance(e, QueueCallbackRequested)]
    assert (requested.call_id, requested.priority) == (shown["call_id"], 3)
    assert draining[0] == 409 and "draining" in draining[1]["error"]
    assert waiting[1]["call_id"] == shown["call_id"], "still the same request"
    assert bad[0] == 400 and "queue" in bad[1]["error"]
    assert wrong_method[0] == 405
