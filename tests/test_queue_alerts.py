"""Queue alerts: ``QueueAlert`` events (and a gauge) while a queue's waiting callers or
longest wait stand at or over the thresholds of ``queues.<q>.alerts``."""

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
from callcenter.events import EngineEvent, EventBus, QueueAlert
from callcenter.live.alerts import QueueAlerts
from callcenter.testing import BASE_CONFIG, merge, running_center, scrape_metrics, until

WATCHED = {"queues": {"sales": {"alerts": {"waiting": 1, "longest_wait": 1}}}}


def _alerts(seen: list[EngineEvent]) -> list[tuple[str, bool]]:
    return [(e.figure, e.raised) for e in seen if isinstance(e, QueueAlert)]


@pytest.mark.parametrize("agi", ["fastagi", "esl-inbound"])
async def test_a_caller_left_waiting_raises_the_alerts_and_an_answer_clears_them(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=WATCHED) as center:  # type: ignore[arg-type]
        seen: list[EngineEvent] = []
        center.daemon.switchboard.bus.subscribe(seen.append, (QueueAlert,))
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.daemon.router.pause("1001", "lunch")  # sales has nobody free
        caller = await center.caller_presses("5550701", "1")
        await until(lambda: len(_alerts(seen)) == 2, timeout=5)
        _, status = await center.api("GET", "/status")
        raised = await asyncio.to_thread(scrape_metrics, center.daemon.api.port)
        center.daemon.router.unpause("1001")
        await caller.wait_bridged(timeout=5)
        await until(lambda: len(_alerts(seen)) == 4, timeout=5)
        cleared = await asyncio.to_thread(scrape_metrics, center.daemon.api.port)
        await caller.hangup()
        await center.idle()
    assert _alerts(seen) == [
        ("waiting", True),
        ("longest_wait", True),
        ("waiting", False),
        ("longest_wait", False),
    ]
    assert "ALERT queue sales: 1 callers waiting or more" in format_status(status)
    assert [(a["queue"], a["figure"]) for a in status["alerts"]] == [
        ("sales", "longest_wait"),
        ("sales", "waiting"),
    ]
    gauge = r'^callcenter_queue_alert\{figure="waiting",queue="sales"\} '
    assert re.search(gauge + "1", raised, re.M), raised[-600:]
    assert re.search(gauge + "0", cleared, re.M)


def _config(settings: dict[str, Any]) -> Any:
    return load_config_text(yaml.safe_dump(settings), environ={"CALLCENTER_AMI_SECRET": "x"})


class _Router:
    """The two things the alerts read of the router."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting

    def queue_names(self) -> list[str]:
        return ["sales", "support"]

    def queue_view(self, name: str) -> dict[str, Any]:
        return {"waiting": self.waiting, "longest_wait": 0.0}


def test_an_alert_taken_out_of_the_config_by_a_reload_is_cleared() -> None:
    config = load_config_text(
        yaml.safe_dump(merge(BASE_CONFIG, WATCHED)), environ={"CALLCENTER_AMI_SECRET": "x"}
    )
    bus = EventBus()
    seen: list[EngineEvent] = []
    bus.subscribe(seen.append)
    router = _Router(waiting=3)
    current = [config]
    alerts = QueueAlerts(router, bus, lambda: current[0])  # type: ignore[arg-type]
    alerts.look()
    alerts.look()  # standing: not raised twice
    current[0] = load_config_text(
        yaml.safe_dump(BASE_CONFIG), environ={"CALLCENTER_AMI_SECRET": "x"}
    )
    alerts.look()
    assert _alerts(seen) == [("waiting", True), ("waiting", False)]
    assert alerts.raised() == [] and alerts.states() == {}


class _Busy(_Router):
    """A queue where a caller calling now would wait ``wait`` seconds (None: unknown)."""

    def __init__(self, wait: float | None) -> None:
        super().__init__(waiting=0)
        self.wait = wait

    def wait_for_new_caller(self, name: str) -> float | None:
        return self.wait if name == "sales" else None


def test_the_wait_for_a_caller_calling_now_raises_its_alert_and_clears_it() -> None:
    config = load_config_text(
        yaml.safe_dump(
            merge(BASE_CONFIG, {"queues": {"sales": {"alerts": {"expected_wait": 180}}}})
        ),
        environ={"CALLCENTER_AMI_SECRET": "x"},
    )
    bus = EventBus()
    seen: list[EngineEvent] = []
    bus.subscribe(seen.append)
    router = _Busy(wait=None)
    alerts = QueueAlerts(router, bus, lambda: config)  # type: ignore[arg-type]
    alerts.look()  # nothing to go on: no alert
    router.wait = 240.0
    alerts.look()
    raised = alerts.raised()
    status = format_status({"alerts": raised})
    router.wait = 60.0
    alerts.look()
    assert _alerts(seen) == [("expected_wait", True), ("expected_wait", False)]
    assert raised == [{"queue": "sales", "figure": "expected_wait", "threshold": 180.0}]
    assert "ALERT queue sales: 180s of wait for a caller calling now or more" in status


def test_a_threshold_of_no_caller_is_refused() -> None:
    config = merge(BASE_CONFIG, {"queues": {"sales": {"alerts": {"waiting": 0}}}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(config))
    assert "queues.sales.alerts.waiting" in str(caught.value)
