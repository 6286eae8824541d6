"""What a PBX admin's dialplan hands the daemon with a call: ``inbound?queue=sales
&priority=5&skills=fr&var_ticket=T-42`` (AGI's script path on Asterisk,
``callcenter_route`` on FreeSWITCH) sends the caller straight to a queue with the
dialplan's own data; ``flow=`` picks the IVR; a parameter the config cannot honour is
logged and left out, never losing the caller. On all four transports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from callcenter.config import load_config_text
from callcenter.hook import read_hook
from callcenter.testing import TRANSPORTS, running_center

DIRECT: dict[str, Any] = {
    "flows": {"direct": {"start": "in", "nodes": {"in": {"kind": "queue", "queue": "support"}}}},
}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_dialplan_sends_a_gold_caller_straight_to_sales_with_his_ticket(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=DIRECT) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        center.pbx.add_route("801", "inbound?queue=sales&priority=5&var_ticket=T-42&var_tier=gold")
        center.pbx.add_route("802", "inbound?flow=direct")
        center.pbx.add_route("803", "inbound?queue=saels&priority=high&var_1st=x&skills=fr")
        gold = await center.pbx.call("801", caller_num="5550801")
        await gold.wait_bridged(timeout=5)
        _, status = await center.api("GET", "/status")
        await gold.hangup()
        direct = await center.pbx.call("802", caller_num="5550802")
        await direct.wait_bridged(timeout=5)
        await direct.hangup()
        with capture_logs() as logs:
            odd = await center.pbx.call("803", caller_num="5550803")
            await odd.wait_for_prompt("welcome-menu", timeout=5)
            await odd.press("1")
            await odd.wait_bridged(timeout=5)
        await odd.hangup()
        rows = {}
        for caller in (gold, direct, odd):
            row = await center.cdr(caller.uniqueid)
            rows[row["src"]] = row
    shown = next(c for c in status["calls"] if c["agent"] == "1001")
    assert shown["variables"] == {"ticket": "T-42", "tier": "gold"}, "the agent's screen"
    gold_row = rows["5550801"]
    assert (gold_row["queue"], gold_row["agent"]) == ("sales", "1001")
    assert json.loads(gold_row["ivr_variables"]) == {"ticket": "T-42", "tier": "gold"}
    assert "main:" not in gold_row["ivr_path"], "no IVR on the way"
    assert (rows["5550802"]["queue"], rows["5550802"]["agent"]) == ("support", "1002")
    assert "direct:in" in rows["5550802"]["ivr_path"]
    assert (rows["5550803"]["queue"], rows["5550803"]["agent"]) == ("sales", "1001")
    ignored = [e["problem"] for e in logs if e["event"] == "dialplan_hook_ignored"]
    assert ignored == [
        "queue: no queue 'saels' in the config",
        "priority: 'high' is not a whole number",
        "priority and skills go with queue=",
        "var_1st: '1st' is no variable a call may be given",
    ]


def test_the_hooks_parameters_are_read_as_the_config_allows() -> None:
    config = load_config_text(
        "\n".join(
            [
                "pbx: {ami: {username: cc}}",
                "queues: {sales: {}}",
                "flows: {night: {start: bye, nodes: {bye: {kind: hangup}}}}",
            ]
        ),
        environ={"CALLCENTER_AMI_SECRET": "x"},
    )
    hook = read_hook(
        {
            "queue": "sales",
            "priority": "5000",
            "skills": "fr, billing,fr,bad skill",
            "var_ticket": "T" * 300,
            "var_caller_num": "spoofed",
            "flow": "night",
            "callback": "x",
        },
        config,
    )
    assert (hook.queue, hook.flow, hook.priority) == ("sales", "night", 1000)
    assert hook.skills == ("fr", "billing")
    assert hook.variables == (("ticket", "T" * 200),)
    assert hook.problems == (
        "skills: 'bad skill' is no skill name",
        "var_caller_num: 'caller_num' is no variable a call may be given",
    )
    assert read_hook({}, config) == read_hook({"callback": "abc"}, config)
