"""Agent alerts (real-time adherence): an ``AgentAlert`` while an agent has stayed paused,
in wrap-up or on one call longer than ``acd.agent_alerts`` allows, cleared when they leave
that state; supervisors see it on their screens."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import format_status
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.events import AgentAlert, EngineEvent, EventBus
from callcenter.live.alerts import AgentAlerts
from callcenter.testing import (
    BASE_CONFIG,
    DesktopBrowser,
    merge,
    running_center,
    scrape_metrics,
    until,
)

WATCHED: dict[str, Any] = {
    "acd": {"agent_alerts": {"paused": 60, "pause_reasons": {"break": 0.5}}},
    "supervisors": {"2000": {"pin": "2468"}},
    "agents": {"1002": {"pin": "2222"}},
}


def _alerts(seen: list[EngineEvent]) -> list[tuple[str, str, str, bool]]:
    return [(e.agent, e.figure, e.reason, e.raised) for e in seen if isinstance(e, AgentAlert)]


async def test_a_break_that_runs_over_is_flagged_to_supervisors_until_the_agent_is_back(
    tmp_path: Path,
) -> None:
    """Bob's break may last half a second here, Alice's lunch a minute: only Bob is
    flagged, on the status, /metrics, the wallboard and Sam's desktop; back at work, the
    alert clears."""
    async with running_center(tmp_path, config=WATCHED) as center:
        seen: list[EngineEvent] = []
        center.daemon.switchboard.bus.subscribe(seen.append, (AgentAlert,))
        router = center.daemon.router
        router.pause("1002", "break", via="test")
        router.pause("1001", "lunch", via="test")
        await until(lambda: len(_alerts(seen)) == 1, timeout=5)
        _, status = await center.api("GET", "/status")
        port = center.daemon.api.port
        raised = await asyncio.to_thread(scrape_metrics, port)
        board = await asyncio.to_thread(_get, port, "/wallboard")
        sam = DesktopBrowser(port)
        desk = await sam.sign_in("2000", "2468", role="supervisor")
        bobs = await DesktopBrowser(port).sign_in("1002", "2222")
        router.unpause("1002", via="test")
        await until(lambda: len(_alerts(seen)) == 2, timeout=5)
        cleared = await asyncio.to_thread(scrape_metrics, port)
    assert _alerts(seen) == [("1002", "paused", "break", True), ("1002", "paused", "break", False)]
    first = next(e for e in seen if isinstance(e, AgentAlert))
    assert first.threshold == 0.5 and first.value >= 0.5
    assert "ALERT agent 1002: paused (break) for 0.5 s or more" in format_status(status)
    assert status["agent_alerts"] == [
        {"agent": "1002", "figure": "paused", "threshold": 0.5, "reason": "break"}
    ]
    assert re.search(r'^callcenter_agent_alert\{agent="1002",figure="paused"\} 1$', raised, re.M)
    assert "callcenter_agent_alert{" not in cleared
    assert '<tr class="alert"><td>Bob</td>' in board
    assert '<tr class="alert"><td>Alice</td>' not in board, "lunch may last longer"
    bob = next(r for r in desk.table_rows if r and r[0] == "Bob 1002")
    assert bob[2].endswith("⚠")
    assert desk.title == "⚠ 1 · Call centre", "Sam's tab shows an alert stands"
    assert bobs.texts["over"] == "Over the 0:00 allowed: your supervisors see it."


def _get(port: int, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as answer:
        return str(answer.read().decode())


class _Router:
    """What the agent alerts read of the router: one agent whose state a test sets."""

    def __init__(self) -> None:
        self.view: dict[str, Any] = {"state": "available", "time_in_state": 0.0}

    def agent_ids(self) -> list[str]:
        return ["1001"]

    def agent_view(self, agent: str) -> dict[str, Any]:
        return {"id": agent, **self.view}


def _config(settings: dict[str, Any]) -> Any:
    return load_config_text(
        yaml.safe_dump(merge(BASE_CONFIG, settings)), environ={"CALLCENTER_AMI_SECRET": "x"}
    )


def test_each_stretch_is_flagged_once_and_a_new_state_or_reason_starts_afresh() -> None:
    config = _config({"acd": {"agent_alerts": {"wrap_up": 60, "on_call": 600, "paused": 300,
                                                "pause_reasons": {"lunch": 3600}}}})  # fmt: skip
    bus = EventBus()
    seen: list[EngineEvent] = []
    bus.subscribe(seen.append)
    router = _Router()
    current = [config]
    alerts = AgentAlerts(router, bus, lambda: current[0])  # type: ignore[arg-type]
    for state, seconds, reason in (
        ("available", 9999.0, None),  # never watched
        ("wrap_up", 59.0, None),
        ("wrap_up", 61.0, None),
        ("wrap_up", 120.0, None),  # standing: not raised twice
        ("on_call", 1.0, None),  # left wrap-up: cleared
        ("paused", 400.0, "break"),  # any reason: 300 s
        ("paused", 400.0, "lunch"),  # another reason: a new stretch, 3600 s
        ("paused", 3600.0, "lunch"),
    ):
        router.view = {"state": state, "time_in_state": seconds, "pause_reason": reason}
        alerts.look()
    standing = alerts.standing()
    current[0] = _config({})
    alerts.look()
    assert _alerts(seen) == [
        ("1001", "wrap_up", "", True),
        ("1001", "wrap_up", "", False),
        ("1001", "paused", "break", True),
        ("1001", "paused", "break", False),
        ("1001", "paused", "lunch", True),
        ("1001", "paused", "lunch", False),
    ]
    assert standing == {"1001": "paused"}
    assert alerts.raised() == [], "watching switched off by a reload clears what stood"


def test_a_pause_reason_the_centre_does_not_have_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        _config({"acd": {"agent_alerts": {"pause_reasons": {"lnuch": 3600}}}})
    (issue,) = caught.value.issues
    assert issue.field == "acd.agent_alerts.pause_reasons.lnuch"
    assert 'no pause reason named "lnuch"' in issue.message and "lunch" in issue.message
