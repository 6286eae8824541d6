"""Queues through the demo PBX over real TCP: the exact order phones ring for every strategy,
skills escalation, wrap-up, auto-pause, overflow and exit paths, exit keys, callbacks that
keep the caller's place, agents in two queues, and agents logging out while their phone
rings. Every scenario runs on both PBXs: Asterisk (FastAGI, AsyncAGI) and FreeSWITCH (ESL
inbound, ESL outbound socket)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_metrics import samples

from callcenter import switchboard
from callcenter.acd.agent import AgentState
from callcenter.cli import format_status
from callcenter.config import load_config_text
from callcenter.demo import LiveView
from callcenter.errors import ConfigError
from callcenter.events import (
    AgentConnected,
    AgentPaused,
    AgentPhoneReachable,
    AgentRingFailed,
    AgentRinging,
    DrainEnded,
    EngineEvent,
    QueueAbandoned,
    QueueAnnounced,
    QueueCallbackAnswered,
    QueueCallbackAttempt,
    QueueCallbackFailed,
    QueueCallbackRequested,
    QueueEscalated,
    QueueExited,
    QueueJoined,
    QueuePriorityChanged,
    VoicemailLeft,
)
from callcenter.testing import (
    BASE_CONFIG,
    CALLBACKS_ON,
    TRANSPORTS,
    Center,
    Transport,
    merge,
    running_center,
    until,
)

S = AgentState
AGENTS = ("1001", "1002", "1003")

_transport: list[Transport] = ["fastagi"]


@pytest.fixture(autouse=True, params=TRANSPORTS)
def on_every_transport(request: pytest.FixtureRequest) -> None:
    """Every scenario here runs on both PBXs: Asterisk (FastAGI, AsyncAGI), FreeSWITCH."""
    _transport[0] = request.param


def device_of(channel: str) -> str:
    """The number a channel reaches, PBX-neutrally: ``PJSIP/1003-0000002a`` (Asterisk) and
    ``sofia/lab/1003@127.0.0.1`` (FreeSWITCH) are both ``1003``."""
    return channel.rsplit("/", 1)[-1].partition("@")[0].partition("-")[0]


def setup(
    queue: Mapping[str, Any],
    *,
    node: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Config: 800 goes straight into queue ``acd`` (agents 1001-1003, logged out)."""
    agents = {
        agent_id: {"name": f"Agent {agent_id}", "device": f"PJSIP/{agent_id}", "logged_in": False}
        for agent_id in AGENTS
    }
    config: dict[str, Any] = {
        "routes": {"800": {"flow": "direct"}},
        "flows": {
            "direct": {
                "start": "route",
                "nodes": {
                    # Agent 1001 calling in is a personal call that keeps their phone busy.
                    "route": {
                        "kind": "branch",
                        "cases": [{"caller": ["1001"], "goto": "personal"}],
                        "default": "q",
                    },
                    "personal": {
                        "kind": "menu",
                        "prompt": "hold-on",
                        "choices": {"1": "done"},
                        "timeout": 10,
                        "retries": 1,
                        "default": "done",
                    },
                    "done": {"kind": "hangup"},
                    "q": {"kind": "queue", "queue": "acd", **(node or {})},
                },
            },
            "bye": {"start": "bye", "nodes": {"bye": {"kind": "hangup", "prompt": "goodbye"}}},
        },
        "queues": {"acd": {"agents": list(AGENTS), "ring_timeout": 1, "max_wait": 20, **queue}},
        "agents": agents,
    }
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(config.get(key), Mapping):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class Scene:
    """A running centre plus the engine events and phones of one scenario."""

    def __init__(self, center: Center) -> None:
        self.center = center
        self.events: list[EngineEvent] = []
        center.daemon.bus.subscribe(self.events.append)
        self.router = center.daemon.router
        self.phones: dict[str, Any] = {}

    def phone(self, agent_id: str, **kwargs: Any) -> Any:
        self.phones[agent_id] = self.center.add_phone(f"PJSIP/{agent_id}", **kwargs)
        return self.phones[agent_id]

    def login(self, *agent_ids: str) -> None:
        for agent_id in agent_ids:
            self.router.login(agent_id, via="test")

    def rang(self, call_id: str | None = None) -> list[str]:
        return [
            e.agent
            for e in self.events
            if isinstance(e, AgentRinging) and (call_id is None or e.call_id == call_id)
        ]

    def answered(self) -> list[str]:
        return [e.agent for e in self.events if isinstance(e, AgentConnected)]

    def of(self, kind: type[EngineEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def call(self, number: str = "5550100") -> Any:
        return await self.center.pbx.call("800", caller_num=number)

    async def waiting(self, number: str = "5550100") -> Any:
        """A caller who dialled in and waits in the queue (hears its music)."""
        caller = await self.call(number)
        await caller.wait_moh(timeout=5)
        return caller

    async def settle(self) -> None:
        """Wait until no call runs (its record folded), phones are idle and the daemon saw
        their devices free."""
        await self.center.idle(timeout=10)
        for phone in self.phones.values():
            await phone.wait_idle(timeout=5)
        recorder = self.center.daemon.recorder
        async with asyncio.timeout(5):
            while recorder.calls_in_progress or any(
                a.device_busy for a in self.router.agents.values()
            ):
                await asyncio.sleep(0.01)

    async def call_put_through(self, agent: Any) -> tuple[Any, float]:
        """A caller whom ``agent`` answers: the caller, and the seconds from the agent
        picking up to the caller being put through (what the agent heard first)."""
        caller = await self.call()
        await agent.wait_answered(timeout=5)
        answered = time.monotonic()
        await caller.wait_bridged(timeout=5)
        return caller, time.monotonic() - answered

    async def answered_call(self, number: str = "5550100") -> Any:
        """A caller who is answered; the agent hangs up (``hangup_after``)."""
        caller = await self.call(number)
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await self.settle()
        return caller

    async def keep_place_for_a_callback(self, number: str) -> Any:
        """A caller waits, presses the queue's callback key (2) and hangs up on the
        confirmation, keeping their place."""
        caller = await self.call(number)
        await caller.wait_moh(timeout=5)
        await asyncio.sleep(0.1)
        await caller.press("2")
        await caller.wait_for_prompt("queue-callback-confirmed", timeout=5)
        await caller.wait_ended(timeout=5)
        return caller

    async def phone_reachable(self, agent_id: str, reachable: bool = True) -> None:
        """Wait until the daemon knows whether the agent's phone can be called."""
        async with asyncio.timeout(5):
            while self.router.agents[agent_id].device_unreachable == reachable:
                await asyncio.sleep(0.01)

    async def wait_for(self, kind: type[EngineEvent], count: int = 1, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:
                await asyncio.sleep(0.01)


@asynccontextmanager
async def scene(tmp_path: Path, config: Mapping[str, Any]) -> AsyncIterator[Scene]:
    async with running_center(tmp_path, transport=_transport[0], config=config) as center:
        yield Scene(center)


def talkers(**phones: Any) -> dict[str, dict[str, Any]]:
    return phones


# ---------------------------------------------------------------------- every strategy


QUICK = {"answer_after": 0.05, "hangup_after": 0.05}


@pytest.mark.parametrize(
    ("strategy", "login_order", "expected"),
    [
        ("longest-idle-agent", ["1003", "1002", "1001"], ["1003", "1002", "1001", "1003"]),
        ("leastrecent", ["1003", "1002", "1001"], ["1001", "1002", "1003", "1001"]),
        ("rrmemory", ["1003", "1002", "1001"], ["1001", "1002", "1003", "1001"]),
        ("rrordered", ["1002", "1001", "1003"], ["1001", "1002", "1003", "1001"]),
        ("linear", ["1003", "1002", "1001"], ["1001", "1001", "1001", "1001"]),
        ("top-down", ["1003", "1002", "1001"], ["1001", "1001", "1001", "1001"]),
    ],
)
async def test_each_strategy_rings_agents_in_its_exact_order(
    tmp_path: Path, strategy: str, login_order: list[str], expected: list[str]
) -> None:
    async with scene(tmp_path, setup({"strategy": strategy})) as s:
        for agent_id in AGENTS:
            s.phone(agent_id, **QUICK)
        s.login(*login_order)
        for n in range(len(expected)):
            await s.answered_call(f"555010{n}")
    assert s.rang() == expected
    assert s.answered() == expected


async def test_fewest_calls_sends_calls_to_the_agents_who_took_fewest(tmp_path: Path) -> None:
    async with scene(tmp_path, setup({"strategy": "fewestcalls"})) as s:
        for agent_id in AGENTS:
            s.phone(agent_id, **QUICK)
        s.login("1001")
        await s.answered_call()
        await s.answered_call()
        s.login("1003", "1002")
        for _ in range(4):
            await s.answered_call()
    assert s.answered() == ["1001", "1001", "1002", "1003", "1002", "1003"]


async def test_least_talk_time_sends_calls_to_who_talked_least(tmp_path: Path) -> None:
    # Talks far apart (0.05 / 0.8 / 1.2 s): a busy machine stretches each by a few tenths.
    async with scene(tmp_path, setup({"strategy": "least-talk-time"})) as s:
        s.phone("1001", answer_after=0.05, hangup_after=1.2)
        s.phone("1002", answer_after=0.05, hangup_after=0.05)
        s.phone("1003", answer_after=0.05, hangup_after=0.8)
        s.login(*AGENTS)
        for _ in range(4):
            await s.answered_call()
    assert s.answered() == ["1001", "1002", "1003", "1002"]


async def test_ringall_rings_everyone_at_once_and_the_first_to_answer_wins(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, setup({"strategy": "ringall", "ring_timeout": 5})) as s:
        s.phone("1001", answer_after=None)
        s.phone("1002", answer_after=0.4)
        s.phone("1003", answer_after=0.1, hangup_after=0.1)
        s.login(*AGENTS)
        caller = await s.call()
        assert device_of(await caller.wait_bridged(timeout=5)) == "1003"
        await caller.wait_ended(timeout=5)
        await s.settle()
        row = await s.center.cdr(caller.uniqueid)
        states = {a: s.router.agents[a].state for a in AGENTS}
        missed = [s.router.agents[a].missed_offers for a in AGENTS]
    assert sorted(s.rang()) == ["1001", "1002", "1003"]
    assert [s.phones[a].rings for a in AGENTS] == [1, 1, 1]
    assert row["agent"] == "1003"
    assert states == dict.fromkeys(AGENTS, S.AVAILABLE)
    assert missed == [0, 0, 0], "losing the race is not a missed call"


async def test_ring_progressively_keeps_the_first_ringing_and_adds_the_next(
    tmp_path: Path,
) -> None:
    queue = {"strategy": "ring-progressively", "progressive_interval": 1, "ring_timeout": 4}
    async with scene(tmp_path, setup(queue)) as s:
        s.phone("1001", answer_after=None)
        s.phone("1002", answer_after=0.2, hangup_after=0.1)
        s.phone("1003", answer_after=None)
        s.login(*AGENTS)
        caller = await s.call()
        assert device_of(await caller.wait_bridged(timeout=6)) == "1002"
        await caller.wait_ended(timeout=5)
        await s.settle()
    assert s.rang() == ["1001", "1002"]
    assert (s.phones["1001"].rings, s.phones["1002"].rings, s.phones["1003"].rings) == (2, 1, 0)


async def test_linear_moves_on_at_once_when_the_top_agent_rejects(tmp_path: Path) -> None:
    rules = {"strategy": "linear", "reject_delay": 0, "busy_delay": 0}
    async with scene(tmp_path, setup(rules)) as s:
        s.phone("1001", reject=True)
        s.phone("1002", **QUICK)
        s.phone("1003", **QUICK)
        s.login(*AGENTS)
        first = await s.answered_call()
        second = await s.answered_call()
    assert s.rang(first.uniqueid) == ["1001", "1002"]
    assert s.rang(second.uniqueid) == ["1001", "1002"]


@pytest.mark.parametrize("phone", ["not registered", "declines every call"])
async def test_a_phone_that_fails_every_call_at_once_is_not_rung_in_a_loop(
    tmp_path: Path, phone: str
) -> None:
    """The only agent's softphone is not running (or is on do not disturb): each ring fails
    at once. The agent is left alone for busy_delay / reject_delay (5 s by default) instead
    of being rung again at once, which used to be about 900 rings a second at the PBX."""
    async with scene(tmp_path, setup({})) as s:
        if phone == "declines every call":
            s.phone("1001", reject=True)
        s.login("1001")
        caller = await s.waiting()
        await asyncio.sleep(1.5)
        rings = len(s.rang(caller.uniqueid))
        await caller.hangup()
        await s.settle()
    assert rings == 1


async def test_an_agent_whose_phone_answers_busy_to_every_offer_is_paused_when_counted(
    tmp_path: Path,
) -> None:
    """app_queue's autopausebusy: Alice's phone is on do not disturb and answers every offer
    with 486 Busy Here; with ``autopause_on`` counting busy she is paused after two offers
    (and told why), instead of showing as available all shift while every offer fails."""
    config = setup({"autopause": 2, "autopause_on": ["no-answer", "busy"], "busy_delay": 0.1})
    async with scene(tmp_path, config) as s:
        s.phone("1001", reject=True)
        s.login("1001")
        caller = await s.call()
        await s.wait_for(AgentPaused, timeout=6)
        rings = len(s.rang(caller.uniqueid))
        await caller.hangup()
        await s.settle()
        a = s.router.agents["1001"]
        state, why, via = a.state, a.pause_reason, a.pause_via
    assert rings == 2
    assert (state, why, via) == (S.PAUSED, "busy", "auto")


async def test_an_agent_whose_softphone_unregisters_is_not_rung_until_it_registers_again(
    tmp_path: Path,
) -> None:
    """As app_queue skips "Unavailable" members: Alice's softphone quits mid-shift; she stays
    logged in (shown so, not ready), callers go to Bob, and she is rung again once her
    phone is back."""
    async with scene(tmp_path, setup({"strategy": "linear"})) as s:
        s.phone("1001", **QUICK)
        s.phone("1002", **QUICK)
        s.login("1001", "1002")
        first = await s.answered_call("5550001")
        s.center.remove_phone("PJSIP/1001")
        await s.phone_reachable("1001", False)
        (alice,) = [a for a in s.router.snapshot()["agents"] if a["id"] == "1001"]
        second = await s.answered_call("5550002")
        third = await s.answered_call("5550003")
        s.phone("1001", **QUICK)
        await s.phone_reachable("1001")
        fourth = await s.answered_call("5550004")
    assert s.rang(first.uniqueid) == ["1001"]
    assert s.rang(second.uniqueid) == ["1002"], "not a ring to a phone that is not there"
    assert s.rang(third.uniqueid) == ["1002"]
    assert s.rang(fourth.uniqueid) == ["1001"]
    assert (alice["state"], alice["ready"], alice["device_reachable"]) == (
        "available",
        False,
        False,
    )
    changes = [(e.agent, e.reachable) for e in s.of(AgentPhoneReachable)]
    assert changes == [("1001", False), ("1001", True)], "one event each way, on the bus"
    gone = LiveView.describe(s.of(AgentPhoneReachable)[0])
    assert gone == "agent 1001: phone PJSIP/1001 not registered, not offered calls"


async def test_a_phone_found_unregistered_by_a_ring_is_left_alone_until_it_registers(
    tmp_path: Path,
) -> None:
    """The daemon started after the softphone quit (no unregistration seen): the first
    ring fails, and from then on the agent is not rung until the phone registers."""
    async with scene(tmp_path, setup({"strategy": "linear"})) as s:
        s.phone("1002", **QUICK)
        s.login("1001", "1002")
        first = await s.answered_call("5550001")
        second = await s.answered_call("5550002")
        s.phone("1001", **QUICK)
        await s.phone_reachable("1001")
        third = await s.answered_call("5550003")
    assert s.rang(first.uniqueid) == ["1001", "1002"]
    assert s.rang(second.uniqueid) == ["1002"]
    assert s.rang(third.uniqueid) == ["1001"]


async def test_random_rings_each_agent_once_per_round(tmp_path: Path) -> None:
    async with scene(tmp_path, setup({"strategy": "random"})) as s:
        s.phone("1001", reject=True)
        s.phone("1002", reject=True)
        s.phone("1003", **QUICK)
        s.login(*AGENTS)
        caller = await s.answered_call()
    rang = s.rang(caller.uniqueid)
    assert rang[-1] == "1003" and len(rang) == len(set(rang)) <= 3


async def test_weighted_random_follows_the_member_weights(tmp_path: Path) -> None:
    queue = {
        "strategy": "weighted-random",
        "member_weights": {"1001": 0.001, "1002": 1000, "1003": 0.001},
    }
    async with scene(tmp_path, setup(queue)) as s:
        for agent_id in AGENTS:
            s.phone(agent_id, **QUICK)
        s.login(*AGENTS)
        for _ in range(3):
            await s.answered_call()
    assert s.answered() == ["1002", "1002", "1002"]


# ---------------------------------------------------------------------- skills, tiers


async def test_skills_escalation_brings_in_weaker_agents_as_the_wait_grows(
    tmp_path: Path,
) -> None:
    queue = {
        "strategy": "linear",
        "penalties": {"1003": 1},
        "escalation": [
            {"after": 0, "max_penalty": 0, "min_level": 7},
            {"after": 0.6, "max_penalty": 0, "min_level": 1},
        ],
    }
    config = setup(queue, node={"skills": ["fr"]})
    config["agents"]["1001"]["skills"] = {"de": 9}
    config["agents"]["1002"]["skills"] = {"fr": 3}
    config["agents"]["1003"]["skills"] = {"fr": 9}
    async with scene(tmp_path, config) as s:
        for agent_id in AGENTS:
            s.phone(agent_id, **QUICK)
        s.login(*AGENTS)
        started = time.monotonic()
        caller = await s.call()
        await caller.wait_bridged(timeout=5)
        waited = time.monotonic() - started
        await caller.wait_ended(timeout=5)
        await s.settle()
        escalations = [e.stage for e in s.of(QueueEscalated)]
    assert s.rang() == ["1002"], "the level-9 agent has penalty 1, the de agent lacks fr"
    assert waited >= 0.6
    assert escalations == [1]


async def test_a_caller_skips_a_tier_nobody_staffs_instead_of_waiting_it_out(
    tmp_path: Path,
) -> None:
    """mod_callcenter's tier-rule-no-agent-no-wait: the first-line agents have all gone
    home; the caller reaches the second line at once, not after the first tier's minute."""
    queue = {
        "penalties": {"1003": 1},
        "escalation": [{"after": 0, "max_penalty": 0}, {"after": 60}],
        "escalate_unstaffed": True,
    }
    async with scene(tmp_path, setup(queue)) as s:
        s.phone("1003", **QUICK)
        s.login("1003")
        started = time.monotonic()
        caller = await s.call()
        await caller.wait_bridged(timeout=5)
        waited = time.monotonic() - started
        await caller.wait_ended(timeout=5)
        await s.settle()
        escalations = [e.stage for e in s.of(QueueEscalated)]
    assert s.rang() == ["1003"]
    assert waited < 5
    assert escalations == [1]


# ---------------------------------------------------------------------- agents


async def test_an_agent_who_hangs_up_during_the_announcement_leaves_the_caller_waiting(
    tmp_path: Path,
) -> None:
    config = setup({"strategy": "linear", "agent_announce": "queue-sales", "ring_timeout": 5})
    async with scene(tmp_path, config) as s:
        s.center.pbx.prompt_durations["queue-sales"] = 1.0
        s.phone("1001", answer_after=0.05, hangup_after=0.2)
        s.phone("1002", answer_after=0.05, hangup_after=1.5)
        s.login("1001", "1002")
        caller = await s.call()
        assert device_of(await caller.wait_bridged(timeout=8)) == "1002"
        await caller.wait_ended(timeout=8)
        await s.settle()
        row = await s.center.cdr(caller.uniqueid)
    assert s.rang() == ["1001", "1002"]
    assert s.answered() == ["1002"], "1001 picked up and left before the caller was put through"
    assert [e.agent for e in s.of(AgentRingFailed)] == ["1001"]
    assert (row["agent"], row["disposition"]) == ("1002", "ANSWERED")


async def test_a_caller_who_calls_again_gets_the_agent_they_talked_to_if_free(
    tmp_path: Path,
) -> None:
    config = setup({"strategy": "linear", "last_agent": 3600})
    async with scene(tmp_path, config) as s:
        for agent_id in AGENTS:
            s.phone(agent_id, **QUICK)
        s.login("1002")
        await s.answered_call("5550111")
        s.login("1001")
        await s.answered_call("5550111")  # linear would take 1001: 1002 talked to them
        await s.answered_call("5550122")  # a new caller: linear, 1001
        s.router.pause("1002", "break", via="test")
        await s.answered_call("5550111")  # 1002 is not free: the strategy decides
        s.router.unpause("1002", via="test")
        s.router.pause("1001", "break", via="test")
        await s.answered_call("5550144")
        s.router.unpause("1001", via="test")
        await s.center.restart()
        caller = await s.call("5550144")
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await s.center.idle(timeout=10)
        after_restart = device_of((await s.center.cdr(caller.uniqueid))["dstchannel"])
    assert s.answered() == ["1002", "1002", "1001", "1001", "1002"]
    assert after_restart == "1002", "after a restart the records say who"


async def test_the_agent_hears_which_queue_calls_before_the_caller_is_put_through(
    tmp_path: Path,
) -> None:
    config = setup({"agent_announce": "queue-sales", "ring_timeout": 5})
    async with scene(tmp_path, config) as s:
        s.center.pbx.prompt_durations["queue-sales"] = 0.5
        agent = s.phone("1001", answer_after=0.05, hangup_after=1.0)
        s.login("1001")
        caller, put_through = await s.call_put_through(agent)
        await s.wait_for(AgentConnected)
        await caller.wait_ended(timeout=5)
        await s.settle()
        row = await s.center.cdr(caller.uniqueid)
    assert agent.heard == ["queue-sales"], "the agent heard the queue's announcement"
    assert "queue-sales" not in caller.heard, "the caller did not"
    assert put_through >= 0.4, "the caller was put through once the announcement played"
    (connected,) = s.of(AgentConnected)
    assert connected.ring_seconds >= 0.4, "the agent counts as answered once put through"
    assert row["agent"] == "1001"
    assert row["disposition"] == "ANSWERED"


async def test_the_agent_hears_how_long_the_caller_waited_after_the_queues_announcement(
    tmp_path: Path,
) -> None:
    config = setup({"agent_announce": "queue-sales", "report_holdtime": 1, "ring_timeout": 5})
    async with scene(tmp_path, config) as s:
        agent = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        caller = await s.call()
        await s.wait_for(QueueJoined)
        await asyncio.sleep(1.3)
        s.login("1001")
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await s.settle()
        # The demo FreeSWITCH names a file it plays by its base name (digits/1.wav: "1").
        told = [prompt.rsplit("/", 1)[-1] for prompt in agent.heard]
        await s.answered_call()  # answered at once: under report_holdtime, nothing said
        row = await s.center.cdr(caller.uniqueid)
    assert told[:2] == ["queue-sales", "queue-reporthold"], told
    assert told[2:] in (["1", "queue-seconds"], ["2", "queue-seconds"]), told
    assert agent.heard[len(told) :] == ["queue-sales"], "the next caller had no wait to tell"
    assert "queue-reporthold" not in caller.heard, "the caller does not hear it"
    assert (row["agent"], row["disposition"]) == ("1001", "ANSWERED")


async def test_the_agent_has_a_moment_of_silence_before_the_announcement_and_the_caller(
    tmp_path: Path,
) -> None:
    queue = {"member_delay": 0.6, "agent_announce": "queue-sales", "report_holdtime": 0}
    config = setup({**queue, "ring_timeout": 5})
    async with scene(tmp_path, config) as s:
        agent = s.phone("1001", answer_after=0.05, hangup_after=1.5)
        s.login("1001")
        caller, put_through = await s.call_put_through(agent)
        await caller.wait_ended(timeout=5)
        await s.settle()
        row = await s.center.cdr(caller.uniqueid)
    told = [prompt.rsplit("/", 1)[-1] for prompt in agent.heard]
    assert told[:2] == ["queue-sales", "queue-reporthold"], "the pause, then as without it"
    assert told[3:] == ["queue-seconds"], told
    assert put_through >= 0.6, "the caller was put through after the pause and the prompts"
    assert "queue-sales" not in caller.heard
    (connected,) = s.of(AgentConnected)
    assert connected.ring_seconds >= 0.6, "the agent counts as answered once put through"
    assert (row["agent"], row["disposition"]) == ("1001", "ANSWERED")


async def test_an_agent_who_hangs_up_during_the_pause_is_a_ring_not_taken_on_freeswitch(
    tmp_path: Path,
) -> None:
    config = setup({"member_delay": 1.0, "ring_timeout": 3})
    async with scene(tmp_path, config) as s:
        quitter = s.phone("1001", answer_after=0.05, hangup_after=0.2)
        s.login("1001")
        caller = await s.call()
        await quitter.wait_answered(timeout=5)
        if _transport[0].startswith("esl"):
            await s.wait_for(AgentRingFailed)
            await caller.hangup()
        await caller.wait_ended(timeout=10)
        await s.settle()
        row = await s.center.cdr(caller.uniqueid)
    if _transport[0].startswith("esl"):
        assert not row["agent"], "FreeSWITCH puts nobody through"
        assert not s.of(AgentConnected)
    else:
        # app_dial bridges after U() whatever happened in it, as app_queue does.
        assert (row["agent"], row["billsec"]) == ("1001", 0), "a talk the agent ended at once"


async def test_the_agent_hears_a_vip_is_calling_from_the_callers_own_variables(
    tmp_path: Path,
) -> None:
    config = setup({"agent_announce": "tier-${tier}", "ring_timeout": 5})
    nodes = config["flows"]["direct"]["nodes"]
    nodes["route"]["cases"].append({"caller": ["5550111"], "goto": "gold"})
    nodes["gold"] = {"kind": "set", "variables": {"tier": "gold"}, "next": "q"}
    async with scene(tmp_path, config) as s:
        agent = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        s.login("1001")
        await s.answered_call("5550111")
        vip_heard = list(agent.heard)
        await s.answered_call("5550122")
    assert vip_heard == ["tier-gold"], "the VIP's tier, from the IVR"
    assert agent.heard == ["tier-gold"], "no tier set: no announcement"


@pytest.mark.parametrize(
    ("now", "closed"),
    [
        (datetime(2026, 12, 8, 10, 0, tzinfo=UTC), False),  # a Tuesday morning
        (datetime(2026, 12, 8, 20, 0, tzinfo=UTC), True),  # that evening
        (datetime(2026, 12, 24, 10, 0, tzinfo=UTC), True),  # a closed day listed
        (datetime(2026, 12, 26, 10, 0, tzinfo=UTC), False),  # a Saturday opened (special)
        (datetime(2026, 12, 9, 10, 0, tzinfo=UTC), True),  # a Wednesday closed (special)
    ],
)
async def test_a_queue_closed_for_the_night_sends_callers_to_its_on_closed(
    tmp_path: Path, now: datetime, closed: bool
) -> None:
    opening = {
        "hours": {"mon-fri": ["08:00-18:00"]},
        "holidays": {"dates": ["12-24"]},
        "special": {"2026-12-26": ["09:00-12:00"], "2026-12-09": []},
    }
    config = setup({"opening": opening, "on_closed": {"to": "hangup", "prompt": "closed-now"}})
    async with scene(tmp_path, config) as s:
        s.center.daemon.switchboard.clock = lambda: now
        s.phone("1001", **QUICK)
        s.login("1001")
        caller = await s.call()
        await caller.wait_ended(timeout=5)
        await s.settle()
        row = await s.center.cdr(caller.uniqueid)
    assert ("closed-now" in caller.heard) is closed
    assert [e.reason for e in s.of(QueueExited)] == (["closed"] if closed else [])
    assert (row["agent"] == "1001") is not closed


async def test_a_caller_of_a_closed_queue_who_asks_for_a_callback_gets_it_at_the_opening(
    tmp_path: Path,
) -> None:
    opening = {"hours": {"mon-fri": ["08:00-18:00"]}}
    queue = {"opening": opening, "on_closed": {"to": "callback", "prompt": "we-call-you"}}
    config = setup(queue, extra=CALLBACKS)
    nodes = config["flows"]["direct"]["nodes"]
    nodes["route"]["default"] = "account"
    nodes["account"] = {"kind": "set", "variables": {"account": "4711"}, "next": "q"}
    async with scene(tmp_path, config) as s:
        board = s.center.daemon.switchboard
        board.clock = lambda: datetime(2026, 12, 8, 20, 0, tzinfo=UTC)  # Tuesday evening
        caller = await s.call("5551234")
        await caller.wait_for_prompt("we-call-you", timeout=5)
        await caller.wait_ended(timeout=5)
        await s.settle()
        (waiting,) = board.callbacks.waiting()
    assert (waiting["number"], waiting["queue"]) == ("5551234", "acd")
    assert waiting["due"] == "2026-12-09T08:00:00+00:00", "Wednesday's opening"
    assert waiting["data"] == {"account": "4711"}


async def test_wrap_up_holds_the_next_call_and_an_agent_can_have_their_own(
    tmp_path: Path,
) -> None:
    config = setup({"strategy": "linear", "wrapup": 0.8})
    config["agents"]["1002"]["wrapup"] = 0
    async with scene(tmp_path, config) as s:
        s.phone("1001", **QUICK)
        s.phone("1002", **QUICK)
        s.login("1001", "1002")
        await s.answered_call()
        assert s.router.agents["1001"].state is S.WRAP_UP
        await s.answered_call()  # 1001 is wrapping up: 1002, who has no wrap-up
        assert s.router.agents["1002"].state is S.AVAILABLE
        await asyncio.sleep(0.9)
        await s.answered_call()
    assert s.answered() == ["1001", "1002", "1001"]


async def test_an_agent_in_manual_wrap_up_gets_the_next_call_only_after_star_75(
    tmp_path: Path,
) -> None:
    config = setup({"wrapup_until_ready": True, "wrapup": 0.2})
    async with scene(tmp_path, config) as s:
        s.phone("1002", **QUICK)
        s.login("1002")
        await s.answered_call("5550301")
        waiting = await s.waiting("5550302")
        await asyncio.sleep(0.5)
        still = s.router.agents["1002"].state
        _, shown = await s.center.api("GET", "/status")
        ready = await s.center.pbx.call("*75", caller_num="1002")
        await ready.wait_ended(timeout=5)
        await waiting.wait_bridged(timeout=5)
        await waiting.wait_ended(timeout=5)
        await s.settle()
    assert still is S.WRAP_UP, "no timer ends it"
    assert "in wrap-up until ready" in format_status(shown)
    assert s.answered() == ["1002", "1002"]


async def test_an_agent_is_paused_after_n_offers_ring_out(tmp_path: Path) -> None:
    async with scene(tmp_path, setup({"strategy": "linear", "autopause": 2})) as s:
        s.phone("1001", answer_after=None)
        s.phone("1002", reject=True)
        s.login("1001", "1002")
        caller = await s.call()
        await s.wait_for(AgentPaused, timeout=6)
        rang = s.rang(caller.uniqueid)
        await caller.hangup()
        await s.settle()
        a = s.router.agents["1001"]
        state, reason = a.state, a.pause_reason
    assert rang[:3] == ["1001", "1002", "1001"]
    assert state is S.PAUSED and reason == "no-answer"
    (paused,) = s.of(AgentPaused)
    assert (paused.agent, paused.via) == ("1001", "auto")


async def test_agent_on_a_personal_call_is_not_rung(tmp_path: Path) -> None:
    async with scene(tmp_path, setup({"strategy": "linear"})) as s:
        s.phone("1001", **QUICK)
        s.phone("1002", **QUICK)
        s.login("1001", "1002")
        personal = await s.call("1001")  # Alice's own call: her phone is in use
        async with asyncio.timeout(5):
            while not s.router.agents["1001"].device_busy:
                await asyncio.sleep(0.01)
        caller = await s.call()
        await caller.wait_bridged(timeout=5)
        await personal.hangup()
        await caller.wait_ended(timeout=5)
        await s.settle()
    assert s.rang(caller.uniqueid) == ["1002"]


async def test_logout_while_ringing_stops_the_phone_and_the_next_agent_rings(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, setup({"strategy": "linear", "ring_timeout": 10})) as s:
        alice = s.phone("1001", answer_after=None)
        s.phone("1002", **QUICK)
        s.login("1001", "1002")
        caller = await s.call()
        await alice.wait_rings(1, timeout=5)
        started = time.monotonic()
        s.router.logout("1001", via="test")
        assert device_of(await caller.wait_bridged(timeout=5)) == "1002"
        took = time.monotonic() - started
        await caller.wait_ended(timeout=5)
        await s.settle()
        state = s.router.agents["1001"].state
    assert took < 2, "the ring was cut, not left to time out"
    assert state is S.LOGGED_OUT
    assert s.rang() == ["1001", "1002"]


async def test_agent_in_two_queues_takes_the_heavier_queues_caller_first(
    tmp_path: Path,
) -> None:
    config = setup(
        {"weight": 0},
        extra={"queues": {"vip": {"agents": ["1001"], "weight": 10, "ring_timeout": 1}}},
    )
    config["flows"]["direct"]["nodes"]["route"]["cases"].append(
        {"caller": ["5550002"], "goto": "vip"}
    )
    config["flows"]["direct"]["nodes"]["vip"] = {"kind": "queue", "queue": "vip"}
    async with scene(tmp_path, config) as s:
        s.phone("1001", answer_after=0.05, hangup_after=0.2)
        early = await s.waiting("5550001")
        late = await s.waiting("5550002")
        s.login("1001")
        await late.wait_bridged(timeout=5)
        await early.wait_bridged(timeout=5)
        await early.wait_ended(timeout=5)
        await s.settle()
    assert [e.call_id for e in s.of(AgentConnected)] == [late.uniqueid, early.uniqueid]


# ---------------------------------------------------------------------- callers leaving


async def test_max_wait_overflows_to_another_queue(tmp_path: Path) -> None:
    config = setup(
        {"max_wait": 0.5, "on_timeout": {"to": "queue", "queue": "overflow"}},
        extra={"queues": {"overflow": {"agents": ["1003"], "ring_timeout": 1}}},
    )
    async with scene(tmp_path, config) as s:
        s.phone("1003", **QUICK)
        s.login("1003")
        s.router.pause("1003", "break")
        caller = await s.waiting()
        await s.wait_for(QueueExited, timeout=5)
        s.router.unpause("1003")
        assert device_of(await caller.wait_bridged(timeout=5)) == "1003"
        row = await s.center.cdr(caller.uniqueid)
    (exited,) = s.of(QueueExited)
    assert (exited.queue, exited.reason) == ("acd", "timeout")
    assert row["queue"] == "overflow" and row["agent"] == "1003"


@pytest.mark.parametrize(("seniority", "served_first"), [("call", "X"), ("queue", "Y")])
async def test_a_caller_overflowing_keeps_the_seniority_of_their_whole_wait_when_asked(
    tmp_path: Path, seniority: str, served_first: str
) -> None:
    """X calls first and waits in acd, then overflows into the second queue, where Y (who
    called after X, straight to it) waits already. With ``seniority: call`` X's whole wait
    counts and the agent takes X first; by default (``queue``) X starts at the back."""
    config = setup(
        {"max_wait": 0.6, "on_timeout": {"to": "queue", "queue": "overflow"}},
        extra={
            "queues": {"overflow": {"agents": ["1003"], "ring_timeout": 1, "seniority": seniority}}
        },
    )
    nodes = config["flows"]["direct"]["nodes"]
    nodes["route"]["cases"].append({"caller": ["5550002"], "goto": "over"})
    nodes["over"] = {"kind": "queue", "queue": "overflow"}
    async with scene(tmp_path, config) as s:
        s.phone("1003", **QUICK)
        s.login("1003")
        s.router.pause("1003", "break")
        x = await s.waiting("5550001")
        y = await s.waiting("5550002")
        await s.wait_for(QueueExited, timeout=5)
        async with asyncio.timeout(5):
            while s.router.waiting("overflow") < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # X's hunt starts in the loop turn after it joined
        s.router.unpause("1003")
        await s.wait_for(AgentConnected, timeout=5)
        (connected,) = s.of(AgentConnected)
    first = {x.uniqueid: "X", y.uniqueid: "Y"}[connected.call_id]
    assert first == served_first
    joined = [(e.queue, e.position, e.resumed) for e in s.of(QueueJoined) if e.queue == "overflow"]
    assert joined == [("overflow", 1, False), ("overflow", 1 if seniority == "call" else 2, False)]


async def test_a_full_queue_sends_callers_to_voicemail(tmp_path: Path) -> None:
    config = setup(
        {"max_length": 1, "on_full": {"to": "voicemail", "box": "acd", "prompt": "queue-full"}},
        extra={"ivr": {"voicemail_folder": str(tmp_path / "vm")}},
    )
    async with scene(tmp_path, config) as s:
        first = await s.waiting("5550001")
        second = await s.call("5550002")
        await second.wait_for_prompt("queue-full", timeout=5)
        await second.wait_for_prompt("beep", timeout=5)
        await second.wait_recording(timeout=5)
        second.speak(0.8)
        await asyncio.sleep(0.8)
        await second.press("#")
        row = await s.center.cdr(second.uniqueid)
        await first.hangup()
    (exited,) = s.of(QueueExited)
    assert exited.reason == "full" and exited.call_id == second.uniqueid
    (left,) = s.of(VoicemailLeft)
    assert Path(left.path).parent == tmp_path / "vm" / "acd"
    assert row["voicemail"] == left.path


async def test_join_empty_refused_goes_to_a_flow(tmp_path: Path) -> None:
    config = setup({"join_empty": False, "on_empty": {"to": "flow", "flow": "bye"}})
    async with scene(tmp_path, config) as s:
        caller = await s.call()
        await caller.wait_for_prompt("goodbye", timeout=5)
        await caller.wait_ended(timeout=5)
        row = await s.center.cdr(caller.uniqueid)
    assert [e.reason for e in s.of(QueueExited)] == ["joinempty"]
    assert "bye:bye" in row["ivr_path"]


async def waiting_while_1001_wraps_up(s: Scene) -> Any:
    """Agent 1001, the queue's only one, has just taken a call and is in wrap-up; a second
    caller waits with music. Returns that caller."""
    s.phone("1001", **QUICK)
    s.login("1001")
    await s.answered_call("5550001")
    assert s.router.agents["1001"].state is S.WRAP_UP
    caller = await s.waiting("5550002")
    return caller


async def test_leave_when_empty_sends_waiting_callers_on_when_the_last_agent_pauses(
    tmp_path: Path,
) -> None:
    config = setup({"leave_when_empty": True, "wrapup": 30, "strategy": "linear"})
    async with scene(tmp_path, config) as s:
        caller = await waiting_while_1001_wraps_up(s)
        s.router.pause("1001", "lunch")
        await caller.wait_for_prompt("queue-unavailable", timeout=5)
        await caller.wait_ended(timeout=5)
        await s.settle()
    assert [e.reason for e in s.of(QueueExited)] == ["leaveempty"]


async def test_callers_leave_a_queue_whose_last_agent_lost_their_phone_and_new_ones_do_not_join(
    tmp_path: Path,
) -> None:
    """app_queue's leavewhenempty/joinempty "unavailable": an agent logged in on a phone
    that is not registered cannot take anyone, so with nobody else the queue is empty."""
    config = setup(
        {"leave_when_empty": True, "join_empty": False, "wrapup": 30, "strategy": "linear"}
    )
    async with scene(tmp_path, config) as s:
        waiting = await waiting_while_1001_wraps_up(s)
        s.center.remove_phone("PJSIP/1001")
        await waiting.wait_for_prompt("queue-unavailable", timeout=5)
        await waiting.wait_ended(timeout=5)
        refused = await s.call("5550003")
        await refused.wait_for_prompt("queue-unavailable", timeout=5)
        await refused.wait_ended(timeout=5)
        s.phone("1001", **QUICK)
        await s.phone_reachable("1001")
        joined = await s.waiting("5550004")
        await joined.hangup()
        await s.settle()
    assert [(e.call_id, e.reason) for e in s.of(QueueExited)] == [
        (waiting.uniqueid, "leaveempty"),
        (refused.uniqueid, "joinempty"),
    ], "the last caller joined and waited: the phone was back"


async def test_a_phone_registering_again_within_the_grace_keeps_the_callers_waiting(
    tmp_path: Path,
) -> None:
    """The only agent's phone unregisters for a moment (a softphone restarting): with
    ``empty_grace`` the waiting caller stays, and is put through once the agent is free."""
    config = setup({"leave_when_empty": True, "empty_grace": 3, "wrapup": 30, "strategy": "linear"})
    async with scene(tmp_path, config) as s:
        waiting = await waiting_while_1001_wraps_up(s)
        s.center.remove_phone("PJSIP/1001")
        await s.phone_reachable("1001", reachable=False)
        await asyncio.sleep(0.5)
        s.phone("1001", **QUICK)
        await s.phone_reachable("1001")
        s.router.end_wrapup("1001")
        await waiting.wait_bridged(timeout=5)
        await waiting.hangup()
        await s.settle()
    assert s.of(QueueExited) == []
    assert s.answered() == ["1001", "1001"]


async def test_callers_leave_an_empty_queue_once_its_grace_is_over(tmp_path: Path) -> None:
    config = setup(
        {"leave_when_empty": True, "empty_grace": 1.2, "wrapup": 30, "strategy": "linear"}
    )
    async with scene(tmp_path, config) as s:
        waiting = await waiting_while_1001_wraps_up(s)
        s.router.pause("1001", "lunch")
        paused = time.monotonic()
        await waiting.wait_for_prompt("queue-unavailable", timeout=5)
        left_after = time.monotonic() - paused
        await waiting.wait_ended(timeout=5)
        await s.settle()
    assert [e.reason for e in s.of(QueueExited)] == ["leaveempty"]
    assert 1.2 <= left_after < 5, "after the grace, not at once"


async def test_exit_key_takes_the_caller_to_voicemail(tmp_path: Path) -> None:
    config = setup(
        {"exit_keys": {"5": {"to": "voicemail", "box": "sales", "prompt": "leave-a-message"}}},
        extra={"ivr": {"voicemail_folder": str(tmp_path / "vm")}},
    )
    async with scene(tmp_path, config) as s:
        caller = await s.waiting()
        await asyncio.sleep(0.2)
        await caller.press("5")
        await caller.wait_for_prompt("leave-a-message", timeout=5)
        await caller.wait_for_prompt("beep", timeout=5)
        await caller.wait_recording(timeout=5)
        caller.speak(0.8)
        await asyncio.sleep(0.8)
        await caller.press("#")
        await caller.wait_ended(timeout=5)
        await s.settle()
    assert [e.reason for e in s.of(QueueExited)] == ["exitkey"]
    assert len(s.of(VoicemailLeft)) == 1


async def test_position_is_announced_at_join_and_again_only_when_it_improves(
    tmp_path: Path,
) -> None:
    queue = {"announce_position": True, "announce_frequency": 0.3}
    async with scene(tmp_path, setup(queue)) as s:
        first = await s.waiting("5550001")
        second = await s.call("5550002")
        await second.wait_for_prompt("queue-callswaiting", timeout=5)
        await asyncio.sleep(0.5)
        announced = len(s.of(QueueAnnounced))
        await first.hangup()
        await second.wait_for_prompt("queue-youarenext", timeout=5)
        await s.wait_for(QueueAnnounced, 3)
        await second.hangup()
        await s.settle()
    assert announced == 2, "no repeat while the position stays the same"
    assert "digits/2" in second.heard
    assert [e.position for e in s.of(QueueAnnounced) if e.call_id == second.uniqueid] == [2, 1]


async def test_a_caller_who_hangs_up_and_calls_straight_back_takes_back_their_place(
    tmp_path: Path,
) -> None:
    queue = {
        "resume_abandoned": 10,
        "announce": "queue-hello",
        "resumed_prompt": "welcome-back",
        # Alice takes no one after the caller who came back until the others have hung up
        # (she was rung for the next one at once: answered twice, a flake under load).
        "wrapup": 5,
    }
    async with scene(tmp_path, setup(queue)) as s:
        s.phone("1001", answer_after=0.05, hangup_after=0.1)
        first = await s.waiting("5550001")
        second = await s.waiting("5550002")
        withheld = await s.waiting("anonymous")
        await first.hangup()
        await withheld.hangup()
        third = await s.waiting("5550003")
        again = await s.waiting("5550001")
        withheld_again = await s.waiting("anonymous")
        s.login("1001")
        await again.wait_ended(timeout=5)
        for caller in (second, third, withheld_again):
            await caller.hangup()
        await s.settle()
        async with asyncio.timeout(5):  # the queue_log lines gather before a write
            while True:
                _, figures = await s.center.api("GET", "/figures/queues?by=total")
                (acd,) = [r for r in figures["rows"] if r["queue"] == "acd"]
                if acd["offered"] == 6:
                    break
                await asyncio.sleep(0.05)
        metrics = samples(s.center.daemon.api.render_metrics())
    assert acd["resumed"] == 1, "report --queues counts the caller who came back"
    assert metrics["callcenter_queue_resumed_total", (("queue", "acd"),)] == 1
    joins = {e.call_id: e for e in s.of(QueueJoined)}
    assert joins[again.uniqueid].resumed and joins[again.uniqueid].position == 1
    assert "welcome-back" in again.heard and "queue-hello" not in again.heard
    assert not joins[withheld_again.uniqueid].resumed, "a withheld number cannot be known"
    assert joins[withheld_again.uniqueid].position == 4
    assert s.answered() == ["1001"]
    assert s.of(AgentConnected)[0].call_id == again.uniqueid, "served before the later callers"
    abandoned = {e.call_id for e in s.of(QueueAbandoned)}
    assert first.uniqueid in abandoned, "the first hang-up still counts as an abandon"


async def test_a_caller_who_calls_back_too_late_starts_at_the_back(tmp_path: Path) -> None:
    async with scene(tmp_path, setup({"resume_abandoned": 0.5})) as s:
        first = await s.waiting("5550001")
        second = await s.waiting("5550002")
        await first.hangup()
        await asyncio.sleep(0.7)
        again = await s.waiting("5550001")
        for caller in (second, again):
            await caller.hangup()
        await s.settle()
    joins = {e.call_id: e for e in s.of(QueueJoined)}
    assert not joins[again.uniqueid].resumed
    assert joins[again.uniqueid].position == 2


async def test_a_caller_who_hung_up_before_a_restart_takes_back_their_place_after_it(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, setup({"resume_abandoned": 60})) as s:
        s.phone("1001", answer_after=0.05, hangup_after=0.1)
        first = await s.waiting("5550001")
        await first.hangup()
        await s.settle()
        daemon = await s.center.restart()
        daemon.bus.subscribe(s.events.append)
        s.router = daemon.router
        later = await s.waiting("5550002")
        again = await s.waiting("5550001")
        s.login("1001")
        await again.wait_ended(timeout=5)
        await later.hangup()
        await s.settle()
    joins = {e.call_id: e for e in s.of(QueueJoined)}
    assert joins[again.uniqueid].resumed, "the records kept the place across the restart"
    assert joins[again.uniqueid].position == 1 and joins[later.uniqueid].position == 1
    assert s.of(AgentConnected)[0].call_id == again.uniqueid, "served before the later caller"


# ---------------------------------------------------------------------- callbacks


CALLBACKS = CALLBACKS_ON


async def test_callback_keeps_the_callers_place_and_connects_them_to_the_agent(
    tmp_path: Path,
) -> None:
    config = setup({"exit_keys": {"2": "callback"}, "strategy": "linear"}, extra=CALLBACKS)
    nodes = config["flows"]["direct"]["nodes"]
    nodes["route"]["default"] = "account"
    nodes["account"] = {"kind": "set", "variables": {"account": "4711"}, "next": "q"}
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=0.05)
        alice = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        s.login("1001")
        s.router.pause("1001", "break")
        caller = await s.keep_place_for_a_callback("5551234")
        later = await s.call("5550002")  # joins after: must not take the kept place
        await later.wait_moh(timeout=5)
        s.router.unpause("1001")
        await home.wait_answered(timeout=5)
        await alice.wait_answered(timeout=5)
        await s.wait_for(QueueCallbackAnswered)
        await alice.wait_idle(timeout=5)
        await later.wait_bridged(timeout=5)
        (answered,) = s.of(QueueCallbackAnswered)
        row = await s.center.cdr(answered.call_id)
        await later.hangup()
    (requested,) = s.of(QueueCallbackRequested)
    assert (requested.number, requested.position) == ("5551234", 1)
    assert answered.original_call_id == caller.uniqueid
    assert s.answered()[0] == "1001"
    assert s.of(AgentConnected)[0].call_id == answered.call_id
    assert row["queue"] == "acd" and row["agent"] == "1001"
    assert device_of(row["channel"]) == "5551234"
    assert requested.data == {"account": "4711"}
    assert json.loads(row["ivr_variables"]) == {
        "account": "4711",
        "callback_of": caller.uniqueid,
    }, "what the caller keyed, and the call that asked"
    assert row["dst"] == "5551234", "the number called back"


async def test_a_callback_asked_for_on_the_web_waits_its_turn_and_is_put_through(
    tmp_path: Path,
) -> None:
    config = setup({"strategy": "linear", "caller_id": "0800123456"}, extra=CALLBACKS)
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=0.05)
        alice = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        s.login("1001")
        s.router.pause("1001", "break")
        earlier = await s.waiting("5550002")
        web = {"number": "5551234", "queue": "acd", "data": {"topic": "invoice 1234"}}
        status, asked = await s.center.api("POST", "/callbacks", web)
        again = await s.center.api("POST", "/callbacks", web)
        refused = await s.center.api("POST", "/callbacks", {**web, "number": "08001234"})
        unknown = await s.center.api("POST", "/callbacks", {**web, "queue": "nope"})
        s.router.unpause("1001")
        await earlier.wait_bridged(timeout=5)
        await earlier.wait_ended(timeout=5)
        await home.wait_answered(timeout=5)
        await s.wait_for(QueueCallbackAnswered)
        await alice.wait_idle(timeout=5)
        (answered,) = s.of(QueueCallbackAnswered)
        row = await s.center.cdr(answered.call_id)
    assert status == 200 and asked["call_id"].startswith("web-")
    assert (asked["position"], asked["new"]) == (2, True), "behind the caller waiting already"
    assert again == (200, {**asked, "new": False}), "a second click: the same request"
    assert refused[0] == 403 and "acd.callback_allow" in refused[1]["error"]
    assert unknown[0] == 404
    assert answered.original_call_id == asked["call_id"]
    assert s.answered() == ["1001", "1001"], "the caller first, then the callback"
    assert row["src"] == "0800123456", "called from the queue's own line (caller_id)"
    assert (row["queue"], row["agent"]) == ("acd", "1001")
    assert device_of(row["channel"]) == "5551234"
    assert json.loads(row["ivr_variables"]) == {
        "topic": "invoice 1234",
        "callback_of": asked["call_id"],
    }


async def test_a_callback_to_a_caller_goes_to_the_agent_they_talked_to_last(
    tmp_path: Path,
) -> None:
    config = setup({"strategy": "linear", "last_agent": 3600}, extra=CALLBACKS)
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=0.05, hangup_after=0.3)
        for agent_id in ("1001", "1002"):
            s.phone(agent_id, **QUICK)
        s.login("1002")
        await s.answered_call("5551234")  # Bob, the only one there
        s.login("1001")
        status, _ = await s.center.api("POST", "/callbacks", {"number": "5551234", "queue": "acd"})
        await home.wait_answered(timeout=5)
        await s.wait_for(QueueCallbackAnswered)
        await s.settle()
    assert status == 200
    assert s.answered() == ["1002", "1002"], "linear would give Alice the callback"


async def test_a_caller_who_hung_up_waiting_is_called_back_unless_they_call_again(
    tmp_path: Path,
) -> None:
    queue = {"abandoned_callback": {"after": 0.6, "min_wait": 0.3}}
    async with scene(tmp_path, setup(queue, extra=CALLBACKS)) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=0.05)
        other = s.center.add_phone("PJSIP/5555678", answer_after=0.05)
        s.phone("1001", answer_after=0.05, hangup_after=0.3)
        gave_up = await s.waiting("5551234")
        await asyncio.sleep(0.4)
        await gave_up.hangup()
        quick = await s.call("5550002")  # hangs up at once: a wrong number
        await quick.wait_moh(timeout=5)
        await quick.hangup()
        changed_mind = await s.waiting("5555678")
        await asyncio.sleep(0.4)
        await changed_mind.hangup()
        again = await s.call("5555678")  # calls again before the call back is due
        await again.wait_moh(timeout=5)
        s.login("1001")
        await again.wait_bridged(timeout=5)
        await home.wait_answered(timeout=5)
        await s.wait_for(QueueCallbackAnswered)
        await s.settle()
    (answered,) = s.of(QueueCallbackAnswered)
    assert answered.original_call_id == f"{gave_up.uniqueid}+abandoned"
    assert other.rings == 0, "5555678 called again: not called back"
    asked = [(e.number, e.due is not None) for e in s.of(QueueCallbackRequested)]
    # 5551234's callback may come due before or after 5555678 hangs up on a loaded machine.
    assert asked[0] == ("5551234", True), "asked for later at the first hang-up"
    assert sorted(asked) == [("5551234", False), ("5551234", True), ("5555678", True)], (
        "asked for later at the hang-ups, in the queue when due; none for the wrong number"
    )
    (off,) = s.of(QueueCallbackFailed)
    assert (off.number, off.reason) == ("5555678", "called-again")


async def test_a_drain_puts_the_waiting_caller_through_and_leaves_the_callback_to_the_next(
    tmp_path: Path,
) -> None:
    config = setup({"exit_keys": {"2": "callback"}, "strategy": "linear"}, extra=CALLBACKS)
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=0.05)
        alice = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        s.login("1001")
        s.router.pause("1001", "break")
        await s.keep_place_for_a_callback("5551234")
        later = await s.waiting("5550002")
        s.center.daemon.drain.start(30)
        s.router.unpause("1001")
        assert await later.wait_bridged(timeout=5) == "PJSIP/1001", "the caller in progress"
        await later.wait_ended(timeout=5)
        await s.wait_for(DrainEnded)
        assert s.center.daemon.stop_requested, "drained: the daemon stops"
        assert home.rings == 0, "no callback dialled while draining"
        (requested,) = s.of(QueueCallbackRequested)
        (drained,) = s.of(DrainEnded)
        daemon = await s.center.restart()
        s.events.clear()
        daemon.bus.subscribe(s.events.append)
        await home.wait_answered(timeout=5)
        await s.wait_for(QueueCallbackAnswered)
        await alice.wait_idle(timeout=5)
        await s.settle()
    assert (drained.outcome, drained.refused) == ("done", 0)
    (answered,) = s.of(QueueCallbackAnswered)
    assert answered.original_call_id == requested.call_id, "the next daemon called them back"


async def test_a_callback_promised_before_a_restart_is_made_by_the_next_daemon(
    tmp_path: Path,
) -> None:
    """The caller hung up keeping their place; the daemon restarts before their turn. The
    next daemon takes the request back from the record database, keeps the caller ahead of
    someone who called after the restart, and calls them back when an agent logs in."""
    config = setup({"exit_keys": {"2": "callback"}, "strategy": "linear"}, extra=CALLBACKS)
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=0.05)
        alice = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        caller = await s.keep_place_for_a_callback("5551234")
        await s.wait_for(QueueCallbackRequested)

        daemon = await s.center.restart()
        s.events.clear()
        daemon.bus.subscribe(s.events.append)
        s.router = daemon.router
        later = await s.waiting("5550002")
        (acd,) = [q for q in s.router.snapshot()["queues"] if q["name"] == "acd"]
        assert (acd["waiting"], acd["callbacks"]) == (2, 1), "callcenter status shows it"
        s.login("1001")
        await home.wait_answered(timeout=5)
        await s.wait_for(QueueCallbackAnswered)
        await alice.wait_idle(timeout=5)
        await later.wait_bridged(timeout=5)
        await later.hangup()
        await s.settle()
        (answered,) = s.of(QueueCallbackAnswered)
        row = await s.center.cdr(answered.call_id)
        (request,) = await asyncio.to_thread(daemon.store.fetch_queue_callbacks)
    assert answered.original_call_id == caller.uniqueid
    assert s.answered()[0] == "1001" and s.of(AgentConnected)[0].call_id == answered.call_id
    assert row["queue"] == "acd" and row["agent"] == "1001"
    assert device_of(row["channel"]) == "5551234"
    assert (request.call_id, request.number, request.queue) == (caller.uniqueid, "5551234", "acd")
    assert (request.status, request.attempts) == ("answered", 1)


async def test_a_callback_picked_up_after_a_restart_is_put_through_not_hung_up(
    tmp_path: Path,
) -> None:
    """The daemon restarts while the customer's phone rings with their callback. The next
    daemon did not place that call, but when the customer picks up they get their place
    (and the next free agent), not a hang-up; their phone is not rung again."""
    config = setup({"exit_keys": {"2": "callback"}, "strategy": "linear"}, extra=CALLBACKS)
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=1.0)
        alice = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        caller = await s.keep_place_for_a_callback("5551234")
        s.login("1001")
        await home.wait_rings(1, timeout=5)
        s.router.logout("1001", via="test")  # the next daemon has nobody to call them with

        daemon = await s.center.restart()
        s.events.clear()
        daemon.bus.subscribe(s.events.append)
        s.router = daemon.router
        await home.wait_answered(timeout=5)
        await s.wait_for(QueueCallbackAnswered)
        s.login("1001")
        await alice.wait_idle(timeout=5)
        await s.settle()
        (answered,) = s.of(QueueCallbackAnswered)
        row = await s.center.cdr(answered.call_id)
        (request,) = await asyncio.to_thread(daemon.store.fetch_queue_callbacks)
    assert home.rings == 1 and home.answered == 1
    assert answered.original_call_id == caller.uniqueid
    assert s.answered() == ["1001"]
    assert (row["queue"], row["agent"]) == ("acd", "1001")
    assert device_of(row["channel"]) == "5551234"
    assert request.status == "answered"


async def test_a_pbx_outage_does_not_use_up_the_attempts_promised_to_a_callback_caller(
    tmp_path: Path,
) -> None:
    """One attempt promised; the PBX link is down when an agent frees up. The callback
    waits for the link and is then placed (before, the attempt was spent and given up)."""
    queue = {
        "exit_keys": {"2": "callback"},
        "strategy": "linear",
        "callback_attempts": 1,
        "callback_retry_delay": 0.1,
    }
    slow = {"reconnect_min": 1.0, "reconnect_max": 1.0}
    config = setup(queue, extra={**CALLBACKS, "pbx": {"ami": slow, "esl": slow}})
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=0.05)
        alice = s.phone("1001", answer_after=0.05, hangup_after=0.3)
        await s.keep_place_for_a_callback("5551234")
        await s.center.drop_pbx_connections()
        s.login("1001")
        await s.wait_for(QueueCallbackAnswered, timeout=10)
        await alice.wait_idle(timeout=5)
        await s.settle()
    attempts = s.of(QueueCallbackAttempt)
    assert len(attempts) == 2 and {a.attempt for a in attempts} == {1}, "the same attempt"
    assert s.of(QueueCallbackFailed) == []
    assert home.answered == 1 and s.answered() == ["1001"]


async def test_an_unanswered_callback_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(switchboard, "CALLBACK_ANSWER_MARGIN", 0.2)
    queue = {
        "exit_keys": {"2": "callback"},
        "callback_ring_timeout": 1,
        "callback_retry_delay": 0.1,
        "callback_attempts": 2,
    }
    async with scene(tmp_path, setup(queue, extra=CALLBACKS)) as s:
        home = s.center.add_phone("PJSIP/5551234", answer_after=None)
        s.phone("1001", answer_after=0.05, hangup_after=0.1)
        caller = await s.waiting("5551234")
        await asyncio.sleep(0.1)
        await caller.press("2")
        await caller.wait_ended(timeout=5)
        s.login("1001")
        await home.wait_rings(1, timeout=5)
        home.answer_after = 0.05
        await s.wait_for(QueueCallbackAnswered, timeout=6)
        await s.settle()
        state = s.router.agents["1001"].state
    (failed,) = s.of(QueueCallbackFailed)
    assert (failed.attempt, failed.reason, failed.final) == (1, "no-answer", False)
    assert home.rings == 2 and home.answered == 1
    assert s.answered() == ["1001"]
    assert state is S.AVAILABLE


async def test_callback_refused_for_a_number_not_allowed(tmp_path: Path) -> None:
    config = setup({"exit_keys": {"2": "callback"}}, extra=CALLBACKS)
    async with scene(tmp_path, config) as s:
        caller = await s.waiting("0900123456")
        await asyncio.sleep(0.1)
        await caller.press("2")
        await caller.wait_for_prompt("queue-callback-unavailable", timeout=5)
        await asyncio.sleep(0.2)
        assert caller.state != "ended", "the caller keeps waiting"
        await caller.hangup()
        await s.settle()
    assert s.of(QueueCallbackRequested) == []


async def test_periodic_announcements_take_turns_while_the_caller_waits(tmp_path: Path) -> None:
    queue = {"periodic_announce": ["promo-a", "promo-b"], "periodic_announce_frequency": 0.3}
    async with scene(tmp_path, setup(queue)) as s:
        caller = await s.call()
        await caller.wait_for_prompt("promo-b", timeout=5)
        await caller.hangup()
        await s.settle()
    heard = [p for p in caller.heard if p.startswith("promo-")]
    assert heard[:2] == ["promo-a", "promo-b"]


async def test_estimated_wait_is_announced_from_recent_handle_times(tmp_path: Path) -> None:
    queue = {"announce_holdtime": True, "wrapup": 30, "strategy": "linear"}
    async with scene(tmp_path, setup(queue)) as s:
        s.phone("1001", **QUICK)
        s.login("1001")
        await s.answered_call("5550001")  # handle time: ~0.05 s talk + 30 s wrap-up
        caller = await s.call("5550002")
        await caller.wait_for_prompt("queue-minute", timeout=5)
        await s.wait_for(QueueAnnounced)
        await caller.hangup()
        await s.settle()
    (told,) = s.of(QueueAnnounced)
    assert told.position is None and told.wait_seconds is not None
    assert 30 <= told.wait_seconds < 31  # ceil(1 caller / 1 agent) x (talk + wrap-up)
    assert caller.heard[-4:-1] == ["queue-holdtime", "queue-less-than", "digits/1"]


async def test_a_remote_agent_on_an_allowed_outside_number_is_rung(tmp_path: Path) -> None:
    config = setup(
        {"strategy": "linear"},
        extra={"acd": {"remote_dial": "PJSIP/${number}", "remote_allow": ["_555XXXX"]}},
    )
    config["agents"]["1001"]["device"] = "external/5559001"
    async with scene(tmp_path, config) as s:
        home = s.center.add_phone("PJSIP/5559001", **QUICK)
        s.login("1001")
        caller = await s.answered_call()
        row = await s.center.cdr(caller.uniqueid)
    assert home.answered == 1
    assert row["agent"] == "1001" and device_of(row["dstchannel"]) == "5559001"


async def _bob_took_their_last_call_and_is_busy(s: Scene) -> tuple[Any, Any, Any]:
    """5550901 talked to Bob; Bob talks to 5550902 now; Alice just logged in, free."""
    alice = s.phone("1001", answer_after=0.05)
    bob = s.phone("1002", answer_after=0.05)
    s.login("1002")
    first = await s.call("5550901")
    await first.wait_bridged(timeout=5)
    await first.hangup()
    await bob.wait_idle(timeout=5)
    busy = await s.call("5550902")
    await busy.wait_bridged(timeout=5)
    s.login("1001")
    return alice, bob, busy


async def test_a_caller_waits_a_little_for_the_busy_agent_they_talked_to_last(
    tmp_path: Path,
) -> None:
    """With last_agent_wait the caller waits for Bob, their last agent, though Alice is
    free, and gets him the moment his call ends."""
    config = setup({"strategy": "linear", "last_agent": 3600, "last_agent_wait": 10.0})
    async with scene(tmp_path, config) as s:
        alice, _bob, busy = await _bob_took_their_last_call_and_is_busy(s)
        again = await s.waiting("5550901")
        await asyncio.sleep(0.5)
        rang_alice = alice.rings
        await busy.hangup()
        through = await again.wait_bridged(timeout=5)
        await again.hangup()
    assert rang_alice == 0, "Alice was free, but the caller waited for Bob"
    assert device_of(through) == "1002"


async def test_a_caller_whose_last_agent_stays_busy_gets_another_after_the_wait(
    tmp_path: Path,
) -> None:
    config = setup({"strategy": "linear", "last_agent": 3600, "last_agent_wait": 0.5})
    async with scene(tmp_path, config) as s:
        await _bob_took_their_last_call_and_is_busy(s)
        again = await s.call("5550901")
        through = await again.wait_bridged(timeout=5)
        await until(lambda: len(s.of(AgentConnected)) == 3)
        waited = s.of(AgentConnected)[-1].wait_seconds
        await again.hangup()
    assert device_of(through) == "1001", "Alice, once Bob was waited for long enough"
    assert waited >= 0.5


def test_waiting_for_the_last_agent_needs_last_agent() -> None:
    config = merge(BASE_CONFIG, {"queues": {"sales": {"last_agent_wait": 30}}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(config))
    assert "queues.sales: last_agent_wait waits for the caller's last agent" in str(caught.value)


# ---------------------------------------------------------------------- supervisors and callers


async def test_a_supervisor_sends_a_caller_waiting_in_sales_to_the_overflow_queue(
    tmp_path: Path,
) -> None:
    """app_queue's QueueWithdrawCaller: nobody staffs the queue; the supervisor sees the
    caller in ``GET /queues/acd/callers`` and sends them to the overflow queue, where Carol
    answers."""
    config = setup(
        {"agents": ["1001"]},
        extra={"queues": {"overflow": {"agents": ["1003"], "ring_timeout": 1}}},
    )
    async with scene(tmp_path, config) as s:
        s.phone("1003", **QUICK)
        s.login("1003")
        caller = await s.waiting("5550123")
        _, shown = await s.center.api("GET", "/queues/acd/callers")
        status, moved = await s.center.api(
            "POST", f"/calls/{caller.uniqueid}/withdraw", {"to": "queue", "queue": "overflow"}
        )
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await s.settle()
        _, after = await s.center.api("GET", "/queues/acd/callers")
    (waiting,) = shown["callers"]
    assert (waiting["call_id"], waiting["number"], waiting["kind"]) == (
        caller.uniqueid,
        "5550123",
        "caller",
    )
    assert (waiting["position"], waiting["state"], waiting["withdrawable"]) == (1, "waiting", True)
    assert status == 200
    assert moved == {"call_id": caller.uniqueid, "queue": "acd", "to": "queue", "where": "overflow"}
    (exited,) = s.of(QueueExited)
    assert (exited.queue, exited.reason) == ("acd", "withdrawn")
    assert [e.queue for e in s.of(QueueJoined)] == ["acd", "overflow"]
    assert s.answered() == ["1003"]
    assert after["callers"] == []


async def test_a_supervisor_gives_a_waiting_caller_to_the_agent_of_their_choice(
    tmp_path: Path,
) -> None:
    """Bob is second line (penalty 1, after a minute): the supervisor puts this caller
    through to him at once; the queue's order and stages do not stand in the way."""
    queue = {
        "agents": ["1001", "1002"],
        "penalties": {"1002": 1},
        "escalation": [{"after": 0, "max_penalty": 0}, {"after": 60}],
    }
    async with scene(tmp_path, setup(queue)) as s:
        s.phone("1002", **QUICK)
        s.login("1002")
        caller = await s.waiting()
        busy = await s.center.api("POST", f"/calls/{caller.uniqueid}/give", {"agent": "1001"})
        given = await s.center.api("POST", f"/calls/{caller.uniqueid}/give", {"agent": "1002"})
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await s.settle()
    assert busy == (409, {"error": "agent 1001 is not free (logged_out)"})
    assert given == (200, {"call_id": caller.uniqueid, "queue": "acd", "agent": "1002"})
    assert s.rang() == ["1002"] and s.answered() == ["1002"]


async def test_a_caller_given_a_higher_priority_gets_the_next_free_agent(
    tmp_path: Path,
) -> None:
    """app_queue's QueueChangePriorityCaller: the third caller is a VIP; once raised, they
    are first in line and the agent who logs in takes them before the two ahead."""
    async with scene(tmp_path, setup({"agents": ["1001"]})) as s:
        s.phone("1001", answer_after=0.05, hangup_after=0.1)
        callers = []
        for number in ("5550001", "5550002", "5550003"):
            callers.append(await s.call(number))
            await callers[-1].wait_moh(timeout=5)
        vip = callers[-1]
        status, changed = await s.center.api(
            "POST", f"/calls/{vip.uniqueid}/priority", {"priority": 5}
        )
        _, shown = await s.center.api("GET", "/queues/acd/callers")
        s.login("1001")
        await vip.wait_bridged(timeout=5)
        await vip.wait_ended(timeout=5)
        for caller in callers[:2]:
            await caller.hangup()
        await s.settle()
    assert status == 200
    assert (changed["priority"], changed["old_priority"], changed["position"]) == (5, 0, 1)
    assert [c["number"] for c in shown["callers"]] == ["5550003", "5550001", "5550002"]
    assert s.of(AgentConnected)[0].call_id == vip.uniqueid
    (raised,) = s.of(QueuePriorityChanged)
    assert (raised.call_id, raised.priority, raised.old, raised.via) == (vip.uniqueid, 5, 0, "api")


async def test_what_a_supervisor_asks_of_a_caller_that_cannot_be_done_is_refused_clearly(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, setup({"agents": ["1001"], "ring_timeout": 10})) as s:
        alice = s.phone("1001", answer_after=None)
        caller = await s.waiting()
        cid = caller.uniqueid
        api = s.center.api
        answers = {
            "unknown call": await api("POST", "/calls/nope/priority", {"priority": 1}),
            "no priority": await api("POST", f"/calls/{cid}/priority", {"priority": "high"}),
            "same queue": await api(
                "POST", f"/calls/{cid}/withdraw", {"to": "queue", "queue": "acd"}
            ),
            "no such queue": await api(
                "POST", f"/calls/{cid}/withdraw", {"to": "queue", "queue": "x"}
            ),
            "nowhere": await api("POST", f"/calls/{cid}/withdraw", {"to": "moon"}),
            "unknown agent": await api("POST", f"/calls/{cid}/give", {"agent": "9999"}),
            "not a member": await api("POST", f"/calls/{cid}/give", {"agent": "1002"}),
            "unknown queue": await api("GET", "/queues/nope/callers"),
        }
        s.login("1001")
        await alice.wait_rings(1, timeout=5)
        answers["ringing"] = await api("POST", f"/calls/{cid}/withdraw", {"to": "hangup"})
        await caller.hangup()
        await s.settle()
    codes = {what: status for what, (status, _) in answers.items()}
    assert codes == {
        "unknown call": 404, "no priority": 400, "same queue": 409, "no such queue": 404,
        "nowhere": 400, "unknown agent": 404, "not a member": 409, "unknown queue": 404,
        "ringing": 409,
    }  # fmt: skip
    assert answers["unknown call"][1]["error"] == "no caller 'nope' waits in a queue"
    assert answers["ringing"][1]["error"].startswith("an agent is being rung for call")
    assert "to:" in answers["nowhere"][1]["error"]


async def test_a_supervisor_sends_a_waiting_caller_to_voicemail_and_they_leave_a_message(
    tmp_path: Path,
) -> None:
    config = setup({"agents": ["1001"]}, extra={"ivr": {"voicemail_folder": str(tmp_path / "vm")}})
    async with scene(tmp_path, config) as s:
        caller = await s.waiting()
        status, _ = await s.center.api(
            "POST",
            f"/calls/{caller.uniqueid}/withdraw",
            {"to": "voicemail", "box": "acd", "prompt": "queue-full"},
        )
        await caller.wait_for_prompt("queue-full", timeout=5)
        await caller.wait_for_prompt("beep", timeout=5)
        await caller.wait_recording(timeout=5)
        caller.speak(0.8)
        await asyncio.sleep(0.8)
        await caller.press("#")
        row = await s.center.cdr(caller.uniqueid)
    assert status == 200
    (exited,) = s.of(QueueExited)
    assert exited.reason == "withdrawn"
    (left,) = s.of(VoicemailLeft)
    assert Path(left.path).parent == tmp_path / "vm" / "acd"
    assert row["voicemail"] == left.path


async def test_a_caller_who_hangs_up_at_once_is_a_short_abandon_in_every_figure(
    tmp_path: Path,
) -> None:
    """``short_abandon``: the first caller hangs up as the music starts (a wrong number),
    the second after a second of waiting. The day's figures, Prometheus and the report
    from the records all count one abandon and one short abandon."""
    async with scene(tmp_path, setup({"agents": ["1001"], "short_abandon": 0.6})) as s:
        wrong = await s.waiting("5550001")
        await wrong.hangup()
        tired = await s.waiting("5550002")
        await asyncio.sleep(1.0)
        await tired.hangup()
        await s.settle()
        _, status = await s.center.api("GET", "/status")
        async with asyncio.timeout(5):  # the queue_log lines gather before a write
            while True:
                _, figures = await s.center.api("GET", "/figures/queues?by=total")
                rows = [r for r in figures["rows"] if r["queue"] == "acd"]
                if rows and rows[0]["abandoned"] + rows[0]["short_abandoned"] == 2:
                    break
                await asyncio.sleep(0.05)
        metrics = samples(s.center.daemon.api.render_metrics())
    (acd,) = [q for q in status["queues"] if q["name"] == "acd"]
    assert (acd["today"]["abandoned"], acd["today"]["short_abandoned"]) == (1, 1)
    assert (rows[0]["abandoned"], rows[0]["short_abandoned"]) == (1, 1)
    q = (("queue", "acd"),)
    assert metrics["callcenter_queue_short_abandoned_total", q] == 1
    assert metrics["callcenter_queue_abandoned_total", q] == 1


@pytest.mark.parametrize(
    ("template", "shown"),
    [(None, "Ann"), ("${queue}: ${caller_name} (${tier})", "acd Ann gold"), ("${nothing}", "Ann")],
)
async def test_the_agents_phone_shows_which_queue_the_caller_waited_in(
    tmp_path: Path, template: str | None, shown: str
) -> None:
    """mod_callcenter's cc_outbound_cid_name_prefix: ``agent_caller_name`` is what Alice's
    display shows while it rings (what a phone cannot show becomes a space; an empty result
    leaves the caller's own name)."""
    config = setup({"agents": ["1001"], "agent_caller_name": template})
    nodes = config["flows"]["direct"]["nodes"]
    nodes["tag"] = {"kind": "set", "variables": {"tier": "gold"}, "next": "q"}
    nodes["route"]["default"] = "tag"
    async with scene(tmp_path, config) as s:
        alice = s.phone("1001", **QUICK)
        s.login("1001")
        caller = await s.center.pbx.call("800", caller_num="5550123", caller_name="Ann")
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await s.settle()
    assert alice.shown == [shown]


async def test_a_caller_is_put_through_to_their_account_manager_first(tmp_path: Path) -> None:
    """The IVR found the caller's account manager (``owner``: Carol, last in line) and the
    queue node's ``agent_from`` offers her first; the next caller, whose manager Carol is
    busy with the first, waits ``agent_wait`` for her instead of going to Alice."""
    config = setup({"strategy": "linear"}, node={"agent_from": "owner", "agent_wait": 5})
    nodes = config["flows"]["direct"]["nodes"]
    nodes["tag"] = {"kind": "set", "variables": {"owner": "1003"}, "next": "q"}
    nodes["route"]["default"] = "tag"
    async with scene(tmp_path, config) as s:
        s.phone("1001", **QUICK)
        s.phone("1003", answer_after=0.05, hangup_after=0.4)
        s.login("1001", "1003")
        first = await s.call("5550001")
        await first.wait_bridged(timeout=5)
        second = await s.call("5550002")
        await second.wait_bridged(timeout=5)
        await second.wait_ended(timeout=5)
        await s.settle()
    assert s.rang(first.uniqueid) == ["1003"]
    assert s.rang(second.uniqueid) == ["1003"], "waited for Carol, not offered to Alice"


async def test_the_crm_names_the_queue_a_caller_waits_in_else_the_nodes_own(
    tmp_path: Path,
) -> None:
    """A lookup (here a set node by caller) answered ``team_queue``; the queue node's
    ``queue_from`` puts the caller there; a name that is no queue, or none, leaves them in
    the node's queue."""
    config = setup({}, node={"queue_from": "team_queue"})
    config["queues"]["vip"] = {"agents": ["1002"], "ring_timeout": 1, "max_wait": 20}
    nodes = config["flows"]["direct"]["nodes"]
    nodes["route"]["cases"] += [
        {"caller": ["5550001"], "goto": "vip"},
        {"caller": ["5550002"], "goto": "nonsense"},
    ]
    nodes["vip"] = {"kind": "set", "variables": {"team_queue": "vip"}, "next": "q"}
    nodes["nonsense"] = {"kind": "set", "variables": {"team_queue": "gold"}, "next": "q"}
    async with scene(tmp_path, config) as s:
        for agent in ("1001", "1002"):
            s.phone(agent, **QUICK)
        s.login("1001", "1002")
        callers = [await s.answered_call(n) for n in ("5550001", "5550002", "5550003")]
        rows = [await s.center.cdr(c.uniqueid) for c in callers]
    assert [(row["src"], row["queue"]) for row in rows] == [
        ("5550001", "vip"),
        ("5550002", "acd"),
        ("5550003", "acd"),
    ]


async def test_random_periodic_announcements_never_repeat_one_twice_in_a_row(
    tmp_path: Path,
) -> None:
    queue = {
        "periodic_announce": ["promo-a", "promo-b", "promo-c"],
        "periodic_announce_frequency": 0.1,
        "periodic_announce_order": "random",
    }
    async with scene(tmp_path, setup(queue)) as s:
        caller = await s.call()
        async with asyncio.timeout(10):
            while sum(p.startswith("promo-") for p in caller.heard) < 8:
                await asyncio.sleep(0.05)
        await caller.hangup()
        await s.settle()
    heard = [p for p in caller.heard if p.startswith("promo-")]
    assert all(a != b for a, b in itertools.pairwise(heard)), heard


async def test_a_vip_with_a_head_start_is_served_before_callers_who_joined_shortly_before(
    tmp_path: Path,
) -> None:
    """The queue node reads the head start from a variable (600 s for a VIP): the VIP who
    joins after Ann gets Alice first; Ann is next."""
    config = setup({"agents": ["1001"]}, node={"head_start_from": "lead"})
    nodes = config["flows"]["direct"]["nodes"]
    nodes["route"]["cases"].append({"caller": ["5550002"], "goto": "vip"})
    nodes["vip"] = {"kind": "set", "variables": {"lead": "600"}, "next": "q"}
    async with scene(tmp_path, config) as s:
        s.phone("1001", answer_after=0.05, hangup_after=0.1)
        ann = await s.waiting("5550001")
        vip = await s.waiting("5550002")
        s.login("1001")
        await vip.wait_ended(timeout=5)
        await ann.wait_ended(timeout=5)
        await s.settle()
    assert [e.call_id for e in s.of(AgentConnected)] == [vip.uniqueid, ann.uniqueid]


async def test_callers_of_a_ringback_queue_hear_ringing_not_music(tmp_path: Path) -> None:
    """app_queue's ``r`` option: ``hold_music: ringback`` rings in the caller's ear while
    they wait, and while Alice's phone rings."""
    async with scene(tmp_path, setup({"agents": ["1001"], "hold_music": "ringback"})) as s:
        s.phone("1001", answer_after=0.3, hangup_after=0.1)
        caller = await s.call()
        await caller.wait_for_prompt("ringback", timeout=5)
        s.login("1001")
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await s.settle()
        moh = caller.moh_starts
    assert moh == 0, "no music at any time"
    assert "ringback" in caller.heard
