"""Logging in not ready yet: ``agent login 1003 --paused --reason training`` (``POST
/agents/<id>/login {"paused": "training"}``) starts the shift paused, so the caller who
waits is not offered to Carol before she says she is ready. On both PBXs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callcenter.events import AgentPaused, EngineEvent
from callcenter.testing import run_cli, running_center, until

SALES = {"queues": {"sales": {"agents": ["1003"]}}}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_carol_logs_in_paused_and_the_waiting_caller_waits_for_her_ready(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=SALES) as center:  # type: ignore[arg-type]
        seen: list[EngineEvent] = []
        center.daemon.bus.subscribe(seen.append, (AgentPaused,))
        carol = center.add_phone("PJSIP/1003", answer_after=0.05)
        router = center.daemon.router
        caller = await center.caller_presses("5550301", "1")
        await until(lambda: router.waiting("sales") == 1)
        logged = await run_cli(center, "agent", "login", "1003", "--paused", "--reason", "training")
        await asyncio.sleep(0.3)
        meanwhile = (router.agents["1003"].state, router.waiting("sales"), carol.rings)
        wrong = await center.api("POST", "/agents/1003/logout", {})
        again = await center.api("POST", "/agents/1003/login", {"paused": "nap"})
        await center.api("POST", "/agents/1003/login", {"paused": "training"})
        await center.api("POST", "/agents/1003/unpause", {})
        await caller.wait_bridged(timeout=5, device="PJSIP/1003")
        await caller.hangup()
        await center.idle()
    assert logged[0] == 0, logged
    assert meanwhile == ("paused", 1, 0), "no call offered while she is not ready"
    assert wrong[0] == 200
    assert again[0] == 400 and "unknown pause reason 'nap'" in again[1]["error"]
    assert [(e.reason, e.via) for e in seen if isinstance(e, AgentPaused)][:1] == [
        ("training", "api")
    ]
