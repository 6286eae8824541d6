"""Agent state machine: the transition table and the agent's day (login, pause, logout)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from callcenter.acd.agent import TRANSITIONS, Agent, AgentState
from callcenter.acd.router import Router
from callcenter.errors import IllegalTransition, UnknownAgent
from callcenter.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentStateChanged,
    AgentUnpaused,
    EngineEvent,
    EventBus,
)

S = AgentState


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_router(
    *ids: str, wrapup: float = 0.0, clock: FakeClock | None = None
) -> tuple[Router, list[EngineEvent], FakeClock]:
    clock = clock or FakeClock()
    bus = EventBus()
    events: list[EngineEvent] = []
    bus.subscribe(events.append)
    agents = [Agent(id=i, name=f"Agent {i}", device=f"PJSIP/{i}") for i in ids]
    router = Router(agents, {"sales": list(ids)}, wrapup={"sales": wrapup}, bus=bus, clock=clock)
    return router, events, clock


def state_changes(events: list[EngineEvent], agent: str) -> list[tuple[str, str]]:
    return [(e.old, e.new) for e in events if isinstance(e, AgentStateChanged) and e.agent == agent]


# ---------------------------------------------------------------------- the table


@pytest.mark.parametrize(("old", "new"), list(itertools.product(S, S)))
def test_every_move_outside_the_table_is_refused_and_changes_nothing(
    old: AgentState, new: AgentState
) -> None:
    agent = Agent(id="1001", state=old, state_since=5.0)
    if new in TRANSITIONS[old]:
        assert agent.move(new, now=9.0) is old
        assert agent.state is new
        assert agent.state_since == 9.0
    else:
        with pytest.raises(IllegalTransition, match="1001"):
            agent.move(new, now=9.0)
        assert agent.state is old
        assert agent.state_since == 5.0


def test_table_covers_every_state_and_every_state_can_reach_logged_out() -> None:
    assert set(TRANSITIONS) == set(S)
    for state in S:
        assert state not in TRANSITIONS[state], f"{state} must not loop onto itself"
        if state is not S.LOGGED_OUT:
            assert S.LOGGED_OUT in TRANSITIONS[state], f"no logout from {state}"


def test_only_an_available_agent_can_be_rung() -> None:
    assert [s for s in S if S.RINGING in TRANSITIONS[s]] == [S.AVAILABLE]


def test_time_in_state_counts_from_the_last_move() -> None:
    agent = Agent(id="1001", state_since=10.0)
    agent.move(S.AVAILABLE, now=12.0)
    assert agent.time_in_state(now=19.5) == 7.5


# ---------------------------------------------------------------------- login, pause, logout


def test_login_makes_the_agent_available_and_is_published() -> None:
    router, events, clock = make_router("1001")
    router.login("1001", via="feature-code")
    agent = router.agents["1001"]
    assert agent.state is S.AVAILABLE
    assert agent.logged_in_at == clock.now
    assert agent.idle_since == clock.now
    logged_in = [e for e in events if isinstance(e, AgentLoggedIn)]
    assert [(e.agent, e.device, e.via) for e in logged_in] == [
        ("1001", "PJSIP/1001", "feature-code")
    ]
    assert state_changes(events, "1001") == [("logged_out", "available")]


def test_login_twice_is_refused() -> None:
    router, _, _ = make_router("1001")
    router.login("1001")
    with pytest.raises(IllegalTransition, match="already logged in"):
        router.login("1001")


def test_unknown_agent_is_refused_by_every_command() -> None:
    router, _, _ = make_router("1001")
    for command in (router.login, router.logout, router.unpause, router.end_wrapup):
        with pytest.raises(UnknownAgent):
            command("9999")
    with pytest.raises(UnknownAgent):
        router.pause("9999", "lunch")


def test_pause_and_unpause_with_reason() -> None:
    router, events, clock = make_router("1001")
    router.login("1001")
    clock.advance(30)
    router.pause("1001", "lunch", via="api")
    agent = router.agents["1001"]
    assert agent.state is S.PAUSED
    assert agent.pause_reason == "lunch"
    assert router.available_agents("sales") == []
    router.pause("1001", "training", via="api")  # a new reason while paused
    assert agent.pause_reason == "training"
    clock.advance(600)
    router.unpause("1001", via="api")
    assert agent.state is S.AVAILABLE
    assert agent.pause_reason is None
    assert agent.idle_since == clock.now, "back from a pause counts as idle from now"
    assert router.available_agents("sales") == ["1001"]
    paused = [(e.reason, e.via) for e in events if isinstance(e, AgentPaused)]
    assert paused == [("lunch", "api"), ("training", "api")]
    assert [e.via for e in events if isinstance(e, AgentUnpaused)] == ["api"]


def test_nonsense_commands_are_refused() -> None:
    router, _, _ = make_router("1001")
    with pytest.raises(IllegalTransition, match="logged out"):
        router.pause("1001", "lunch")
    with pytest.raises(IllegalTransition, match="not logged in"):
        router.logout("1001")
    router.login("1001")
    with pytest.raises(IllegalTransition, match="not paused"):
        router.unpause("1001")
    with pytest.raises(IllegalTransition, match="not in wrap-up"):
        router.end_wrapup("1001")


def test_logout_reports_the_shift_length() -> None:
    router, events, clock = make_router("1001")
    router.login("1001")
    clock.advance(8 * 3600)
    router.logout("1001", via="api")
    assert router.agents["1001"].state is S.LOGGED_OUT
    assert router.agents["1001"].logged_in_at is None
    out = [e for e in events if isinstance(e, AgentLoggedOut)]
    assert [(e.shift_seconds, e.via) for e in out] == [(8 * 3600, "api")]


def test_logout_while_paused_clears_the_pause() -> None:
    router, _, _ = make_router("1001")
    router.login("1001")
    router.pause("1001", "lunch")
    router.logout("1001")
    agent = router.agents["1001"]
    assert agent.state is S.LOGGED_OUT
    assert agent.pause_reason is None
    router.login("1001")
    assert agent.state is S.AVAILABLE


async def test_logout_while_ringing_revokes_the_offer_and_the_caller_gets_the_next_agent() -> None:
    router, _, _ = make_router("1001", "1002")
    router.login("1001")
    router.login("1002")
    revoked: list[tuple[object, Agent]] = []
    router.on_offer_revoked = lambda entry, agent: revoked.append((entry, agent))
    entry = router.enqueue("sales", "call-1")
    first = await asyncio.wait_for(router.next_agent(entry), 1)
    assert first.id == "1001"
    router.logout("1001")
    assert router.agents["1001"].state is S.LOGGED_OUT
    assert revoked == [(entry, first)]
    assert entry.revoked
    router.ring_failed(entry, first)  # the engine aborts the dial: nothing left to undo
    assert first.missed_offers == 0
    second = await asyncio.wait_for(router.next_agent(entry), 1)
    assert second.id == "1002"
    assert not entry.revoked
    assert router.waiting("sales") == 1


async def test_logout_while_ringing_before_the_engine_saw_the_offer_rehunts_silently() -> None:
    router, _, _ = make_router("1001", "1002")
    revoked: list[object] = []
    router.on_offer_revoked = lambda entry, agent: revoked.append(entry)
    entry = router.enqueue("sales", "call-1")
    task = asyncio.ensure_future(router.next_agent(entry))
    await asyncio.sleep(0)
    router.login("1001")  # reserved for the caller at once...
    assert router.agents["1001"].state is S.RINGING
    router.logout("1001")  # ...and gone before the caller's task could resume
    router.login("1002")
    agent = await asyncio.wait_for(task, 1)
    assert agent.id == "1002"
    assert revoked == [], "the engine never held that offer"
    assert router.agents["1001"].state is S.LOGGED_OUT


async def test_logout_while_on_call_waits_for_the_call_to_end() -> None:
    router, events, clock = make_router("1001", wrapup=30.0)
    router.login("1001")
    entry = router.enqueue("sales", "call-1")
    agent = await asyncio.wait_for(router.next_agent(entry), 1)
    router.connected(entry, agent)
    router.logout("1001", via="feature-code")
    assert agent.state is S.ON_CALL
    assert agent.logout_pending
    clock.advance(60)
    router.call_finished("1001", "sales")
    assert agent.state is S.LOGGED_OUT, "no wrap-up for an agent who logged out"
    assert not agent.logout_pending
    out = [e for e in events if isinstance(e, AgentLoggedOut)]
    assert [(e.via, e.shift_seconds) for e in out] == [("feature-code", 60)]


async def test_logout_during_wrap_up_cancels_the_wrap_up_timer() -> None:
    router, _, _ = make_router("1001", wrapup=0.02)
    router.login("1001")
    entry = router.enqueue("sales", "call-1")
    agent = await asyncio.wait_for(router.next_agent(entry), 1)
    router.connected(entry, agent)
    router.call_finished("1001", "sales")
    assert agent.state is S.WRAP_UP
    router.logout("1001")
    await asyncio.sleep(0.05)
    assert agent.state is S.LOGGED_OUT, "the wrap-up timer must not bring it back"


async def test_pause_asked_while_on_call_applies_when_the_call_ends() -> None:
    router, events, _ = make_router("1001", wrapup=30.0)
    router.login("1001")
    entry = router.enqueue("sales", "call-1")
    agent = await asyncio.wait_for(router.next_agent(entry), 1)
    router.pause("1001", "break")  # still ringing
    assert agent.state is S.RINGING
    router.connected(entry, agent)
    assert agent.pending_pause == "break"
    router.call_finished("1001", "sales")
    assert agent.state is S.PAUSED
    assert agent.pause_reason == "break"
    assert [e.reason for e in events if isinstance(e, AgentPaused)] == ["break"]


async def test_pause_asked_while_ringing_applies_when_the_ring_fails() -> None:
    router, _, _ = make_router("1001")
    router.login("1001")
    entry = router.enqueue("sales", "call-1")
    agent = await asyncio.wait_for(router.next_agent(entry), 1)
    router.pause("1001", "break")
    router.ring_failed(entry, agent)
    assert agent.state is S.PAUSED
    assert router.available_agents("sales") == []


async def test_unpause_cancels_a_pending_pause() -> None:
    router, _, _ = make_router("1001")
    router.login("1001")
    entry = router.enqueue("sales", "call-1")
    agent = await asyncio.wait_for(router.next_agent(entry), 1)
    router.pause("1001", "break")
    router.unpause("1001")
    router.ring_failed(entry, agent)
    assert agent.state is S.AVAILABLE


async def test_pause_during_wrap_up_is_immediate_and_the_timer_does_not_undo_it() -> None:
    router, _, _ = make_router("1001", wrapup=0.02)
    router.login("1001")
    agent = router.agents["1001"]
    entry = router.enqueue("sales", "call-1")
    await asyncio.wait_for(router.next_agent(entry), 1)
    router.connected(entry, agent)
    router.call_finished("1001", "sales")
    assert agent.state is S.WRAP_UP
    router.pause("1001", "lunch")
    assert agent.state is S.PAUSED
    await asyncio.sleep(0.05)
    assert agent.state is S.PAUSED


def test_call_finished_for_an_agent_not_on_a_call_changes_nothing() -> None:
    router, events, _ = make_router("1001")
    router.login("1001")
    before = len(events)
    router.call_finished("1001", "sales")
    assert router.agents["1001"].state is S.AVAILABLE
    assert len(events) == before
