"""Agents' phones that answer by themselves (``auto_answer``: headset agents): the calls the
daemon rings them with ask the phone to answer (Asterisk: Call-Info answer-after=0 through
the dialplan's ``callcenter-auto-answer``; FreeSWITCH: ``sip_auto_answer``), on all four
transports against the demo PBXs, whose phones honour it as a phone set to allow intercom
calls does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callcenter.acd.rules import answers_by_itself
from callcenter.config import load_config_text
from callcenter.pbx.checkup import needed_asterisk_modules, needed_contexts
from callcenter.testing import TRANSPORTS, running_center, until

#: Alice (1001) takes sales on a headset; Bob (1002) takes support and picks up himself.
HEADSET: dict[str, Any] = {
    "acd": {"dial_out": "PJSIP/${number}", "dial_out_allow": ["_555XXXX"]},
    "agents": {"1001": {"auto_answer": True}},
    "queues": {"sales": {"agents": ["1001"], "wrapup": 0}, "support": {"wrapup": 0}},
}


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_alices_headset_takes_the_queue_call_and_her_own_dial_without_a_key(
    tmp_path: Path, agi: str
) -> None:
    """Alice's phone would never pick up by itself: asked to, it answers the sales caller
    at once, and the first leg of her click-to-dial too. Bob's phone could answer by
    itself but he has no auto_answer: it rings until he picks up."""
    async with running_center(tmp_path, agi=agi, config=HEADSET) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=None, auto_answer=True)
        bob = center.add_phone("PJSIP/1002", answer_after=0.2, auto_answer=True)
        customer = center.add_phone("PJSIP/5550401", answer_after=0.1, hangup_after=0.3)
        router = center.daemon.router
        caller = await center.caller_presses("5550001", "1")
        await caller.wait_bridged(timeout=5)
        await caller.hangup()
        await until(lambda: router.agents["1001"].state == "available")
        other = await center.caller_presses("5550002", "2")
        await other.wait_bridged(timeout=5)
        await other.hangup()
        await until(lambda: router.agents["1002"].state == "available")
        status, _ = await center.api("POST", "/agents/1001/dial", {"number": "5550401"})
        await customer.wait_answered(timeout=5)
        await until(lambda: "1001" not in center.daemon.switchboard.dials, timeout=10)
        await center.idle()
    assert status == 200
    assert (alice.rings, alice.answered, alice.auto_answered) == (2, 2, 2)
    assert (bob.rings, bob.answered, bob.auto_answered) == (1, 1, 0), "he picked up himself"


def test_an_agent_says_otherwise_than_the_centre_and_check_pbx_asks_for_the_context() -> None:
    config = load_config_text(
        "\n".join(
            [
                "pbx: {ami: {username: cc}}",
                "acd: {auto_answer: true}",
                "agents:",
                '  "1001": {name: Alice, device: PJSIP/1001}',
                '  "1002": {name: Bob, device: PJSIP/1002, auto_answer: false}',
            ]
        ),
        environ={"CALLCENTER_AMI_SECRET": "x"},
    )
    assert answers_by_itself(config, "1001") and not answers_by_itself(config, "1002")
    assert answers_by_itself(config, "1999"), "an agent the config lacks: the centre's"
    assert needed_contexts(config)["callcenter-auto-answer"] == "auto_answer of agents 1001"
    assert "res_pjsip_header_funcs" in needed_asterisk_modules(config)
    plain = load_config_text("pbx: {ami: {username: cc}}\n", environ={"CALLCENTER_AMI_SECRET": "x"})
    assert "callcenter-auto-answer" not in needed_contexts(plain)
