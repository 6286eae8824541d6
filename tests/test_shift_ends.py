"""Forgotten logouts (``acd.logout_after_shift``): an agent still logged in that long after
their scheduled stretch ended is logged out, so no caller rings an empty desk; one on a
call at that moment once it ends; one who logged in after the shift (overtime), and one
without a schedule, are left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml

from callcenter.acd.agent import Agent
from callcenter.acd.router import Router
from callcenter.config import load_config_text
from callcenter.events import AgentLoggedOut, EngineEvent, EventBus
from callcenter.live.alerts import ShiftEnds, shift_ended
from callcenter.testing import BASE_CONFIG, merge

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday


def _config(grace: float | None) -> object:
    settings = merge(
        BASE_CONFIG,
        {
            "ivr": {"timezone": "UTC"},
            "acd": {"logout_after_shift": grace},
            "agents": {
                "1001": {"schedule": {"hours": {"mon-fri": ["08:00-12:00", "13:00-17:00"]}}},
                "1002": {"schedule": {"hours": {"mon-fri": ["08:00-17:00"]}}},
            },
        },
    )
    return load_config_text(yaml.safe_dump(settings), environ={"CALLCENTER_AMI_SECRET": "x"})


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def __call__(self) -> float:
        return self.mono


def _router(config: object, clock: Clock, bus: EventBus) -> Router:
    agents = [Agent(id=a, device=f"PJSIP/{a}") for a in ("1001", "1002", "1003")]
    return Router(agents, {"sales": ["1001", "1002", "1003"]}, bus=bus, clock=clock)


def test_the_agents_who_forgot_to_log_out_are_logged_out_a_quarter_past_their_shift() -> None:
    config = _config(900)
    clock = Clock()
    bus = EventBus()
    seen: list[EngineEvent] = []
    bus.subscribe(seen.append, (AgentLoggedOut,))
    router = _router(config, clock, bus)
    for agent in ("1001", "1002", "1003"):
        router.login(agent, via="test")
    watch = ShiftEnds(router, bus, lambda: config)  # type: ignore[arg-type]
    wall = [MONDAY.replace(hour=12, minute=20)]
    watch.clock = lambda: wall[0]
    watch.look()  # Alice's lunch: her morning ended 20 min ago, but a stretch follows
    lunch = [e.agent for e in seen]
    wall[0] = MONDAY.replace(hour=17, minute=10)
    clock.mono += 5 * 3600
    watch.look()  # 10 minutes past: not yet
    early = [e.agent for e in seen]
    router.reserve("1002", call_id="c1")
    router.connect_direct("1002")
    wall[0] = MONDAY.replace(hour=17, minute=16)
    clock.mono += 360
    watch.look()
    after = [e.agent for e in seen]
    pending = router.agents["1002"].logout_pending
    assert lunch == [], "a stretch after lunch: still at work"
    assert early == []
    assert after == ["1001"], (
        "Bob is on a call: his logout waits for its end; Carol has no schedule"
    )
    assert pending and [e.via for e in seen] == ["schedule"]


def test_overtime_taken_after_the_shift_is_left_alone() -> None:
    config = _config(900)
    clock = Clock()
    bus = EventBus()
    router = _router(config, clock, bus)
    watch = ShiftEnds(router, bus, lambda: config)  # type: ignore[arg-type]
    wall = [MONDAY.replace(hour=18)]
    watch.clock = lambda: wall[0]
    router.login("1001", via="test")  # at 18:00, an hour after her shift
    clock.mono += 1800
    wall[0] = MONDAY.replace(hour=18, minute=30)
    watch.look()
    assert str(router.agents["1001"].state) != "logged_out"


def test_the_shift_that_ended_last_is_read_from_the_schedule() -> None:
    config = _config(None)
    at = MONDAY.replace(hour=12, minute=30)
    assert shift_ended(config, "1001", at) == MONDAY.replace(hour=12)  # type: ignore[arg-type]
    assert shift_ended(config, "1001", MONDAY.replace(hour=9)) is None, "at work"  # type: ignore[arg-type]
    saturday = MONDAY + timedelta(days=5, hours=10)
    friday_end = MONDAY + timedelta(days=4, hours=17)
    assert shift_ended(config, "1001", saturday) == friday_end  # type: ignore[arg-type]
    sunday = MONDAY + timedelta(days=6, hours=20)
    assert shift_ended(config, "1001", sunday) is None, "over a day back: not looked at"  # type: ignore[arg-type]
    assert shift_ended(config, "1003", at) is None, "no schedule"  # type: ignore[arg-type]
