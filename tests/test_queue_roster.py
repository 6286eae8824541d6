"""Queues added while the centre runs (app_queue's realtime queues, mod_callcenter's
``callcenter_config queue load``): `callcenter queue add vip --like sales --agents 1002`,
``POST /queues``. A CRM names the queue (a queue node's ``queue_from``) and callers wait
there like in the file's queues; the queue stays across reloads and restarts, is changed
and removed the same way, and settings the config could not hold are refused with the
field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from callcenter.cli import format_status
from callcenter.events import EngineEvent, QueueAdded, QueueRemoved
from callcenter.live.api import scope_of
from callcenter.testing import Transport, run_cli, running_center

STEP = 5.0
CRM = {
    "routes": {"800": {"flow": "crm"}},
    "flows": {
        "crm": {
            "start": "tag",
            "nodes": {
                # What a CRM lookup would answer: the caller's team queue.
                "tag": {"kind": "set", "variables": {"team_queue": "vip"}, "next": "q"},
                "q": {"kind": "queue", "queue": "sales", "queue_from": "team_queue"},
            },
        }
    },
}
VIP = {"queue": "vip", "like": "sales", "agents": ["1002"], "strategy": "ringall"}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_vip_queue_added_while_running_takes_the_crms_callers_and_outlives_a_restart(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport, config=CRM) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        for phone in ("PJSIP/1001", "PJSIP/1002"):
            center.add_phone(phone, answer_after=0.05)
        before = await center.pbx.call("800", caller_num="5553001")
        await before.wait_bridged(timeout=STEP)
        await before.hangup()
        await center.idle()
        added = await center.api("POST", "/queues", VIP)
        caller = await center.pbx.call("800", caller_num="5553002")
        bridged = await caller.wait_bridged(timeout=STEP)
        await caller.hangup()
        await center.idle()
        first = await center.cdr(before.uniqueid)
        row = await center.cdr(caller.uniqueid)
        _, shown = await center.api("GET", "/status")
        changed = await center.api("POST", "/queues/vip", {"ring_timeout": 5, "max_wait": None})
        await center.daemon.reload()
        daemon = await center.restart()
        after_restart = daemon.config.queues["vip"]
        _, listed = await center.api("GET", "/queues/added")
        center.daemon.router.logout("1002", via="test")
        waiting = await center.pbx.call("800", caller_num="5553003")
        await waiting.wait_moh(timeout=STEP)
        while_waiting = await center.api("POST", "/queues/vip/remove", {})
        await waiting.hangup()
        await center.idle()
        removed = await center.api("POST", "/queues/vip/remove", {})
        _, status_after = await center.api("GET", "/status")
        daemon = await center.restart()
        _, listed_after = await center.api("GET", "/queues/added")
        gone = daemon.config.queues.get("vip")
    assert first["queue"] == "sales", "no such queue yet: the node's own"
    assert added[0] == 200, added
    view = added[1]
    assert (view["queue"], view["agents"], view["strategy"], view["via"]) == (
        "vip", ["1002"], "ringall", "api"
    )  # fmt: skip
    assert view["max_wait"] == 30, "the rest as sales has it"
    assert bridged == "PJSIP/1002" and row["queue"] == "vip"
    assert "Queues added while running: vip" in format_status(shown)
    assert changed[0] == 200 and changed[1]["ring_timeout"] == 5 and "max_wait" not in changed[1]
    assert after_restart.ring_timeout == 5 and after_restart.agents == ["1002"]
    assert [view["queue"] for view in listed["queues"]] == ["vip"]
    assert while_waiting[0] == 409 and "1 waiting" in while_waiting[1]["error"]
    assert removed == (200, {"queue": "vip", "removed": True})
    assert "vip" not in [q["name"] for q in status_after["queues"]], "gone before a restart"
    assert listed_after == {"queues": []} and gone is None
    kinds = [type(e).__name__ for e in events if isinstance(e, QueueAdded | QueueRemoved)]
    assert kinds == ["QueueAdded", "QueueAdded"], "added, then changed (before the restart)"


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ({"queue": "vip", "agents": ["1009"]}, 400, "agents"),
        ({"queue": "vip", "strategy": "sometimes"}, 400, "strategy"),
        ({"queue": "vip", "ring_timeout": -1}, 400, "ring_timeout"),
        ({"queue": "vip", "colour": "red"}, 400, "colour"),
        ({"queue": "v i p"}, 400, "name"),
        ({"queue": "vip", "like": "gold"}, 400, "like: no queue 'gold'"),
        ({"queue": "sales"}, 409, "is in the config file"),
        ({"agents": ["1001"]}, 400, "say which"),
    ],
)
async def test_settings_a_queue_cannot_have_are_refused_with_the_field_named(
    tmp_path: Path, body: dict[str, Any], status: int, said: str
) -> None:
    async with running_center(tmp_path) as center:
        answer = await center.api("POST", "/queues", body)
        queues = set(center.daemon.config.queues)
    assert answer[0] == status and said in answer[1]["error"], answer
    assert queues == {"sales", "support"}, "nothing added"


async def test_an_agent_added_and_named_by_an_added_queue_is_removed_after_the_queue(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        await center.api(
            "POST", "/roster", {"agent": "1010", "name": "Zoe", "device": "PJSIP/1010"}
        )
        await center.api("POST", "/queues", {"queue": "seasonal", "agents": ["1010"]})
        refused = await center.api("POST", "/roster/1010/remove", {})
        queue_gone = await center.api("POST", "/queues/seasonal/remove", {})
        agent_gone = await center.api("POST", "/roster/1010/remove", {})
    assert refused[0] == 409 and "queue(s) seasonal" in refused[1]["error"]
    assert queue_gone[0] == 200 and agent_gone[0] == 200


def test_adding_queues_is_the_admins_scope_reading_them_anyones() -> None:
    assert scope_of("POST", "/queues") == "admin"
    assert scope_of("POST", "/queues/vip/remove") == "admin"
    assert scope_of("GET", "/queues/added") == "read"


async def test_the_cli_adds_changes_lists_and_removes_a_queue(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        added = await run_cli(
            center, "queue", "add", "vip", "--like", "support", "--agents", "1002",
            "--strategy", "ringall",
        )  # fmt: skip
        changed = await run_cli(center, "queue", "change", "vip", "--settings", '{"weight": 5}')
        listed = await run_cli(center, "queue", "added")
        as_json = await run_cli(center, "queue", "added", "--json")
        bad_json = await run_cli(center, "queue", "change", "vip", "--settings", "{weight: 5}")
        nothing = await run_cli(center, "queue", "change", "vip")
        removed = await run_cli(center, "queue", "remove", "vip")
        unknown = await run_cli(center, "queue", "remove", "vip")
        emptied = await run_cli(center, "queue", "added")
    assert added[0] == 0, added
    assert added[1].startswith("vip: ringall, agents 1002, supervisor 2000, added ")
    assert added[1].rstrip().endswith("(api)")
    assert changed[0] == 0 and changed[1].startswith("vip: ringall, agents 1002")
    assert listed[1].startswith("vip: ringall, agents 1002")
    assert as_json[0] == 0 and json.loads(as_json[1])["queues"][0]["weight"] == 5
    assert bad_json[0] == 2 and "--settings: not JSON" in bad_json[2]
    assert nothing[0] == 2 and "needs what to change" in nothing[2]
    assert removed == (0, "queue vip removed\n", "")
    assert unknown[0] != 0 and "no queue 'vip' was added" in unknown[2]
    assert emptied[1] == "no queue added while the centre runs\n"
