"""Routing strategies, skills, tiers and multi-queue agents at the router: who is offered
which caller, in exactly which order."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Mapping, Sequence

import pytest

from callcenter.acd.agent import Agent, AgentState
from callcenter.acd.queue import EntryStatus, QueueEntry
from callcenter.acd.router import RingOutcome, Router
from callcenter.acd.rules import AgentRules, QueueRules, Stage, remote_device
from callcenter.acd.strategies import ALIASES, Fenwick, Strategy, parse_strategy
from callcenter.errors import EngineError
from callcenter.events import AgentPaused, EngineEvent, EventBus, QueueEscalated

S = AgentState


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_router(
    rules: Mapping[str, QueueRules],
    *,
    skills: Mapping[str, Mapping[str, int]] | None = None,
    clock: FakeClock | None = None,
    bus: EventBus | None = None,
    seed: int = 7,
    longest_waiting_first: bool = False,
) -> tuple[Router, FakeClock]:
    clock = clock or FakeClock()
    ids = sorted({a for r in rules.values() for a in r.members})
    agents = [Agent(id=i, device=f"PJSIP/{i}", skills=dict((skills or {}).get(i, {}))) for i in ids]
    router = Router(
        agents,
        {name: list(r.members) for name, r in rules.items()},
        rules=rules,
        clock=clock,
        bus=bus,
        rng=random.Random(seed),
        longest_waiting_first=longest_waiting_first,
    )
    return router, clock


def login_all(router: Router, clock: FakeClock, order: Sequence[str]) -> None:
    for agent_id in order:
        router.login(agent_id)
        clock.advance(1)


async def offer(router: Router, entry: QueueEntry) -> list[Agent]:
    return await asyncio.wait_for(router.next_agents(entry), 1)


async def answered_call(
    router: Router, clock: FakeClock, queue: str, call_id: str, *, talk: float = 10.0
) -> str:
    """A caller arrives, the first agent offered answers, talks ``talk`` s, hangs up."""
    entry = router.enqueue(queue, call_id)
    (agent, *_others) = await offer(router, entry)
    router.connected(entry, agent)
    clock.advance(talk)
    router.call_finished(agent.id, queue, talk_seconds=talk)
    clock.advance(1)
    return agent.id


async def run_calls(router: Router, clock: FakeClock, queue: str, count: int) -> list[str]:
    return [await answered_call(router, clock, queue, f"call-{n}") for n in range(count)]


# ---------------------------------------------------------------------- each strategy's order


async def test_longest_idle_agent_follows_login_then_hang_up_order() -> None:
    router, clock = make_router({"q": QueueRules(members=("a", "b", "c"))})
    login_all(router, clock, ["c", "a", "b"])
    assert await run_calls(router, clock, "q", 4) == ["c", "a", "b", "c"]


async def test_leastrecent_ignores_login_time_and_counts_this_queues_calls_only() -> None:
    rules = {
        "q": QueueRules(members=("a", "b", "c"), strategy=Strategy.LEAST_RECENT),
        "other": QueueRules(members=("a", "b", "c")),
    }
    router, clock = make_router(rules)
    login_all(router, clock, ["c", "b", "a"])
    assert await run_calls(router, clock, "q", 3) == ["a", "b", "c"]
    # a call of another queue does not make "a" recent for q
    assert await answered_call(router, clock, "other", "x") == "a"
    assert await run_calls(router, clock, "q", 2) == ["a", "b"]


@pytest.mark.parametrize("name", ["rrmemory", "rrordered", "round-robin"])
async def test_round_robin_resumes_after_the_last_agent_offered(name: str) -> None:
    router, clock = make_router(
        {"q": QueueRules(members=("a", "b", "c"), strategy=parse_strategy(name))}
    )
    login_all(router, clock, ["c", "b", "a"])
    assert await run_calls(router, clock, "q", 5) == ["a", "b", "c", "a", "b"]


async def test_round_robin_sends_an_agent_who_let_it_ring_to_the_back() -> None:
    router, clock = make_router(
        {"q": QueueRules(members=("a", "b", "c"), strategy=Strategy.RR_MEMORY)}
    )
    login_all(router, clock, ["a", "b", "c"])
    entry = router.enqueue("q", "call-1")
    (a,) = await offer(router, entry)
    router.ring_failed(entry, a)
    (b,) = await offer(router, entry)
    assert (a.id, b.id) == ("a", "b")
    router.connected(entry, b)
    router.call_finished("b", "q")
    assert await run_calls(router, clock, "q", 3) == ["c", "a", "b"]


@pytest.mark.parametrize("name", ["linear", "top-down"])
async def test_linear_always_starts_from_the_top(name: str) -> None:
    router, clock = make_router(
        {"q": QueueRules(members=("b", "a", "c"), strategy=parse_strategy(name))}
    )
    login_all(router, clock, ["c", "a", "b"])
    assert await run_calls(router, clock, "q", 3) == ["b", "b", "b"]
    entry = router.enqueue("q", "busy-top")
    (first,) = await offer(router, entry)
    router.ring_failed(entry, first, RingOutcome.BUSY)
    (second,) = await offer(router, entry)
    assert (first.id, second.id) == ("b", "a")


async def test_fewest_calls_counts_answered_calls_of_the_queue() -> None:
    router, clock = make_router(
        {"q": QueueRules(members=("a", "b", "c"), strategy=Strategy.FEWEST_CALLS)}
    )
    login_all(router, clock, ["a"])
    assert await run_calls(router, clock, "q", 2) == ["a", "a"]
    login_all(router, clock, ["c", "b"])
    assert await run_calls(router, clock, "q", 5) == ["b", "c", "b", "c", "a"]


async def test_least_talk_time_prefers_the_agent_who_talked_least() -> None:
    router, clock = make_router(
        {"q": QueueRules(members=("a", "b", "c"), strategy=Strategy.LEAST_TALK_TIME)}
    )
    login_all(router, clock, ["a", "b", "c"])
    talks = {"a": 30.0, "b": 5.0, "c": 12.0}
    order = []
    for n in range(5):
        entry = router.enqueue("q", f"call-{n}")
        (agent,) = await offer(router, entry)
        router.connected(entry, agent)
        router.call_finished(agent.id, "q", talk_seconds=talks[agent.id])
        order.append(agent.id)
    # 0/0/0 -> a; then b (0) ... b has 5, c 0 -> c; b 5 < c 12 -> b; b 10 < c 12 -> b
    assert order == ["a", "b", "c", "b", "b"]
    assert router.agents["b"].talk_seconds == 15.0


async def test_ringall_reserves_every_idle_agent_and_the_first_answer_releases_the_rest() -> None:
    router, clock = make_router(
        {"q": QueueRules(members=("a", "b", "c"), strategy=Strategy.RINGALL)}
    )
    login_all(router, clock, ["c", "a", "b"])
    entry = router.enqueue("q", "call-1")
    agents = await offer(router, entry)
    assert [a.id for a in agents] == ["a", "b", "c"]
    assert all(a.state is S.RINGING for a in agents)
    second = router.enqueue("q", "call-2")
    task = asyncio.ensure_future(router.next_agents(second))
    await asyncio.sleep(0)
    assert not task.done(), "every agent rings for the first caller"
    router.connected(entry, router.agents["b"])
    got = await asyncio.wait_for(task, 1)
    # a and c are released one after the other: a, freed first, goes to the next caller
    assert [a.id for a in got] == ["a"]
    assert router.agents["c"].state is S.AVAILABLE
    assert router.agents["b"].state is S.ON_CALL
    assert router.agents["a"].missed_offers == 0, "losing a ringall race is not a miss"


async def test_ringall_rings_only_the_lowest_penalty_that_is_free() -> None:
    rules = QueueRules(members=("a", "b", "c"), strategy=Strategy.RINGALL, penalties={"c": 1})
    router, clock = make_router({"q": rules})
    login_all(router, clock, ["a", "b", "c"])
    entry = router.enqueue("q", "call-1")
    assert [a.id for a in await offer(router, entry)] == ["a", "b"]
    for agent in list(entry.agents):
        router.ring_failed(entry, agent)
    assert [a.id for a in await offer(router, entry)] == ["c"], "a and b were tried"


async def test_ring_progressively_adds_one_agent_at_a_time_top_down() -> None:
    rules = QueueRules(members=("a", "b", "c"), strategy=Strategy.RING_PROGRESSIVELY)
    router, clock = make_router({"q": rules})
    login_all(router, clock, ["c", "b", "a"])
    entry = router.enqueue("q", "call-1")
    assert [a.id for a in await offer(router, entry)] == ["a"]
    more = router.offer_more(entry)
    assert more is not None and more.id == "b"
    assert [a.id for a in entry.agents] == ["a", "b"]
    router.connected(entry, router.agents["b"])
    assert router.agents["a"].state is S.AVAILABLE
    assert router.offer_more(entry) is None


async def test_random_draws_every_idle_agent_about_equally_and_never_a_busy_one() -> None:
    router, clock = make_router(
        {"q": QueueRules(members=tuple("abcd"), strategy=Strategy.RANDOM)}, seed=1
    )
    login_all(router, clock, "abcd")
    router.pause("d", "lunch")
    counts: collections.Counter[str] = collections.Counter()
    for n in range(3000):
        entry = router.enqueue("q", f"call-{n}")
        (agent,) = router.hunt_nowait(entry)
        counts[agent.id] += 1
        router.leave(entry)
    assert set(counts) == {"a", "b", "c"}
    assert all(850 <= counts[x] <= 1150 for x in "abc"), counts


async def test_weighted_random_follows_member_weights_and_skips_tried_agents() -> None:
    rules = QueueRules(
        members=("a", "b", "c"),
        strategy=Strategy.WEIGHTED_RANDOM,
        weights={"a": 1.0, "b": 3.0, "c": 6.0},
    )
    router, clock = make_router({"q": rules}, seed=3)
    login_all(router, clock, "abc")
    counts: collections.Counter[str] = collections.Counter()
    for n in range(5000):
        entry = router.enqueue("q", f"call-{n}")
        (agent,) = router.hunt_nowait(entry)
        counts[agent.id] += 1
        router.leave(entry)
    assert 350 <= counts["a"] <= 650 and 1300 <= counts["b"] <= 1700, counts
    assert 2700 <= counts["c"] <= 3300, counts
    entry = router.enqueue("q", "tries")
    seen = []
    for _ in range(3):
        (agent,) = await offer(router, entry)
        seen.append(agent.id)
        router.ring_failed(entry, agent, RingOutcome.REJECTED)
    assert sorted(seen) == ["a", "b", "c"], "one round offers each agent once"


def test_strategy_names_and_aliases() -> None:
    assert {s.value for s in Strategy} >= {"ringall", "leastrecent", "rrmemory", "linear"}
    assert parse_strategy("fewestcalls") is Strategy.FEWEST_CALLS
    assert parse_strategy("agent-with-least-talk-time") is Strategy.LEAST_TALK_TIME
    assert all(isinstance(v, Strategy) for v in ALIASES.values())
    with pytest.raises(ValueError):
        parse_strategy("loudest-agent")


def test_fenwick_tree_sums_and_finds() -> None:
    tree = Fenwick.from_values([3, 0, 2, 5])
    assert (tree.total, tree.prefix(0), tree.prefix(2), tree.prefix(3)) == (10, 3, 5, 10)
    assert [tree.find(r) for r in (0, 2, 3, 4, 5, 9)] == [0, 0, 2, 2, 3, 3]
    tree.set(1, 4)
    assert tree.find(3) == 1 and tree.total == 14


# ---------------------------------------------------------------------- tiers, skills, stages


async def test_lower_penalty_first_whatever_the_strategy_says() -> None:
    rules = QueueRules(members=("a", "b"), penalties={"a": 2})
    router, clock = make_router({"q": rules})
    login_all(router, clock, ["a", "b"])  # a idle longer, but penalty 2
    assert await run_calls(router, clock, "q", 2) == ["b", "b"]


async def test_skills_escalation_widens_the_pool_as_the_wait_grows() -> None:
    bus = EventBus()
    events: list[EngineEvent] = []
    bus.subscribe(events.append)
    rules = QueueRules(
        members=("junior", "senior", "other"),
        penalties={"other": 1},
        stages=(
            Stage(after=0, max_penalty=0, min_level=7),
            Stage(after=30, max_penalty=0, min_level=1),
            Stage(after=90, max_penalty=None, min_level=1),
        ),
    )
    skills = {"junior": {"fr": 3}, "senior": {"fr": 9, "billing": 2}, "other": {"fr": 5}}
    router, clock = make_router({"q": rules}, skills=skills, bus=bus)
    login_all(router, clock, ["junior", "other"])
    entry = router.enqueue("q", "call-1", skills=["fr"])
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0)
    assert not task.done(), "stage 0: only level 7+ in fr, nobody free"
    assert router.escalate(entry)
    assert [a.id for a in await asyncio.wait_for(task, 1)] == ["junior"]
    assert any(isinstance(e, QueueEscalated) and e.stage == 1 for e in events)
    router.ring_failed(entry, router.agents["junior"])
    router.pause("junior", "break")
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0)
    assert not task.done(), "penalty-1 agents join only at stage 2"
    router.escalate(entry)
    assert [a.id for a in await asyncio.wait_for(task, 1)] == ["other"]
    assert not router.escalate(entry), "no stage after the last"


async def test_an_escalation_timer_moves_the_caller_on_its_own() -> None:
    rules = QueueRules(
        members=("a",),
        stages=(Stage(after=0, max_penalty=0, min_level=5), Stage(after=0.05, min_level=1)),
    )
    router = Router(
        [Agent(id="a", device="PJSIP/a", skills={"de": 2})], {"q": ["a"]}, rules={"q": rules}
    )
    router.login("a")
    entry = router.enqueue("q", "call-1", skills={"de"})
    (agent,) = await asyncio.wait_for(router.next_agents(entry), 1)
    assert agent.id == "a" and entry.stage == 1


async def test_a_step_nobody_staffs_is_skipped_at_once_with_escalate_unstaffed() -> None:
    """mod_callcenter's tier-rule-no-agent-no-wait: the penalty-0 tier is logged out, so
    the caller goes to Bob (penalty 1) now, not after 60 s; and when the only penalty-0
    agent still there pauses, the caller waiting for her moves on too."""
    stages = (Stage(after=0, max_penalty=0), Stage(after=60, max_penalty=1), Stage(after=120))
    rules = QueueRules(
        members=("alice", "bob", "carol"),
        penalties={"bob": 1, "carol": 2},
        stages=stages,
        escalate_unstaffed=True,
    )
    router, clock = make_router({"q": rules})
    login_all(router, clock, ["bob", "carol"])
    first = router.enqueue("q", "call-1")
    (agent,) = await offer(router, first)
    assert (agent.id, first.stage) == ("bob", 1), "stage 1 is staffed: no further"
    router.connected(first, agent)
    router.login("alice")
    third = router.enqueue("q", "call-3")
    (agent,) = await offer(router, third)
    assert (agent.id, third.stage) == ("alice", 0)
    router.connected(third, agent)
    router.pause("carol", "lunch")
    second = router.enqueue("q", "call-2")
    task = asyncio.ensure_future(router.next_agents(second))
    await asyncio.sleep(0.01)
    assert not task.done() and second.stage == 0, "Alice talks: stage 0 is staffed"
    router.pause("alice", "break")
    router.call_finished("alice", "q")  # her pause begins: nobody left at stage 0
    await asyncio.sleep(0.01)
    assert not task.done() and second.stage == 1, "Bob talks: stage 1 is staffed"
    router.call_finished("bob", "q")
    assert [a.id for a in await asyncio.wait_for(task, 1)] == ["bob"]


async def test_without_escalate_unstaffed_a_step_nobody_staffs_is_waited_out() -> None:
    rules = QueueRules(
        members=("alice", "bob"),
        penalties={"bob": 1},
        stages=(Stage(after=0, max_penalty=0), Stage(after=60)),
    )
    router, clock = make_router({"q": rules})
    login_all(router, clock, ["bob"])
    entry = router.enqueue("q", "call-1")
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0.01)
    assert not task.done() and entry.stage == 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_queue_skills_are_added_to_the_callers_and_an_unskilled_agent_waits() -> None:
    rules = QueueRules(members=("a", "b"), skills=frozenset({"billing"}))
    router, clock = make_router({"q": rules}, skills={"b": {"billing": 4}})
    login_all(router, clock, ["a", "b"])
    entry = router.enqueue("q", "call-1")
    assert entry.skills == {"billing"}
    assert [a.id for a in await offer(router, entry)] == ["b"]
    assert router.has_agents_for("q", ["billing"])
    assert not router.has_agents_for("q", ["klingon"])


def test_a_predictive_campaign_counts_as_free_only_the_agents_with_the_queues_skills() -> None:
    rules = QueueRules(members=("a", "b", "c"), skills=frozenset({"billing"}))
    router, clock = make_router({"q": rules}, skills={"b": {"billing": 4}, "c": {"billing": 2}})
    login_all(router, clock, ["a", "b", "c"])
    assert router.free_agents("q") == 2, "a can never take the queue's callers (nor its leads)"
    router.enqueue("q", "call-1")
    assert router.free_agents("q") == 1


async def test_an_agent_takes_a_caller_it_has_the_skills_for_not_just_the_head() -> None:
    router, clock = make_router(
        {"q": QueueRules(members=("fr", "de"))}, skills={"fr": {"fr": 5}, "de": {"de": 5}}
    )
    french = router.enqueue("q", "french", skills={"fr"})
    clock.advance(1)
    german = router.enqueue("q", "german", skills={"de"})
    tasks = [asyncio.ensure_future(router.next_agents(e)) for e in (french, german)]
    await asyncio.sleep(0)
    router.login("de")
    await asyncio.sleep(0)
    assert [t.done() for t in tasks] == [False, True]
    assert german.agent is router.agents["de"]
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_config_rules_resolve_remote_devices() -> None:
    assert remote_device("external/+4930123", "PJSIP/${number}@trunk") == "PJSIP/+4930123@trunk"
    assert remote_device("PJSIP/1001", "PJSIP/${number}@trunk") == "PJSIP/1001"


# ---------------------------------------------------------------------- several queues


async def test_an_agent_in_two_queues_serves_the_heavier_queue_first() -> None:
    rules = {
        "low": QueueRules(members=("a",), weight=0),
        "high": QueueRules(members=("a",), weight=10),
    }
    router, clock = make_router(rules)
    early = router.enqueue("low", "early")
    clock.advance(30)
    late = router.enqueue("high", "late")
    tasks = {e.call_id: asyncio.ensure_future(router.next_agents(e)) for e in (early, late)}
    await asyncio.sleep(0)
    router.login("a")
    await asyncio.sleep(0)
    assert tasks["late"].done() and not tasks["early"].done()
    router.connected(late, router.agents["a"])
    router.call_finished("a", "high")
    await asyncio.sleep(0)
    assert tasks["early"].done()


async def test_longest_waiting_caller_across_queues_first_when_asked() -> None:
    rules = {
        "low": QueueRules(members=("a",), weight=0),
        "high": QueueRules(members=("a",), weight=10),
    }
    router, clock = make_router(rules, longest_waiting_first=True)
    early = router.enqueue("low", "early")
    clock.advance(30)
    late = router.enqueue("high", "late", priority=5)
    tasks = [asyncio.ensure_future(router.next_agents(e)) for e in (early, late)]
    await asyncio.sleep(0)
    router.login("a")
    await asyncio.sleep(0)
    assert [t.done() for t in tasks] == [True, False]
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------- agents


async def test_autopause_after_n_offers_in_a_row_rang_out() -> None:
    bus = EventBus()
    events: list[EngineEvent] = []
    bus.subscribe(events.append)
    router, clock = make_router(
        {"q": QueueRules(members=("a", "b"), strategy=Strategy.LINEAR, autopause=2)}, bus=bus
    )
    login_all(router, clock, ["a", "b"])
    entry = router.enqueue("q", "call-1")
    for expected in ("a", "b", "a"):
        (agent,) = await offer(router, entry)
        assert agent.id == expected
        router.ring_failed(
            entry, agent, RingOutcome.NO_ANSWER if expected == "a" else RingOutcome.BUSY
        )
    a = router.agents["a"]
    assert a.state is S.PAUSED and a.pause_reason == "no-answer"
    assert any(isinstance(e, AgentPaused) and e.via == "auto" for e in events)
    (agent,) = await offer(router, entry)
    assert agent.id == "b"
    router.connected(entry, agent)
    assert router.agents["b"].no_answer_streak == 0


async def test_busy_phones_pause_the_agent_when_the_queue_counts_them() -> None:
    """app_queue's autopausebusy: counted outcomes share one streak, the reason is the one
    that tipped it; an outcome the queue does not count leaves the streak as it was."""
    bus = EventBus()
    events: list[EngineEvent] = []
    bus.subscribe(events.append)
    rules = QueueRules(members=("a",), autopause=2, autopause_on=frozenset({"no-answer", "busy"}))
    router, clock = make_router({"q": rules}, bus=bus)
    login_all(router, clock, ["a"])
    entry = router.enqueue("q", "call-1")
    streaks = []
    for outcome in (RingOutcome.NO_ANSWER, RingOutcome.REJECTED, RingOutcome.BUSY):
        entry.tried.clear()
        (agent,) = await offer(router, entry)
        router.ring_failed(entry, agent, outcome)
        streaks.append(agent.no_answer_streak)
        clock.advance(10)
    a = router.agents["a"]
    assert streaks == [1, 1, 0], "reset by the pause"
    assert (a.state, a.pause_reason, a.pause_via) == (S.PAUSED, "busy", "auto")
    assert router.agent_view("a")["pause_via"] == "auto"
    (paused,) = [e for e in events if isinstance(e, AgentPaused)]
    assert (paused.reason, paused.via) == ("busy", "auto")
    router.unpause("a")
    assert (a.pause_reason, a.pause_via) == (None, None)


async def test_an_answer_resets_the_no_answer_streak() -> None:
    router, clock = make_router({"q": QueueRules(members=("a",), autopause=2)})
    login_all(router, clock, ["a"])
    for n in range(3):
        entry = router.enqueue("q", f"call-{n}")
        (agent,) = await offer(router, entry)
        router.ring_failed(entry, agent)
        (agent,) = await offer(router, entry)
        router.connected(entry, agent)
        router.call_finished("a", "q")
    assert router.agents["a"].state is S.AVAILABLE
    assert router.agents["a"].missed_offers == 3


async def test_no_answer_delay_keeps_the_agent_available_but_not_offered() -> None:
    router, clock = make_router({"q": QueueRules(members=("a",), no_answer_delay=0.1)})
    login_all(router, clock, ["a"])
    entry = router.enqueue("q", "call-1")
    (agent,) = await offer(router, entry)
    router.ring_failed(entry, agent)
    assert agent.state is S.AVAILABLE and agent.delayed
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0.03)
    assert not task.done()
    assert router.snapshot()["agents"][0]["ready"] is False
    assert [a.id for a in await asyncio.wait_for(task, 1)] == ["a"]


async def test_per_agent_wrapup_overrides_the_queue() -> None:
    router, clock = make_router({"q": QueueRules(members=("a", "b"), wrapup=300)})
    router.configure({}, {"a": AgentRules(wrapup=0.0)})
    login_all(router, clock, ["a", "b"])
    for agent_id in ("a", "b"):
        entry = router.enqueue("q", f"call-{agent_id}")
        (agent,) = await offer(router, entry)
        router.connected(entry, agent)
        router.call_finished(agent.id, "q")
    assert router.agents["a"].state is S.AVAILABLE
    assert router.agents["b"].state is S.WRAP_UP


async def test_an_agent_whose_device_is_in_use_is_skipped_unless_the_queue_rings_in_use() -> None:
    rules = {
        "strict": QueueRules(members=("a", "b")),
        "relaxed": QueueRules(members=("a",), ring_in_use=True),
    }
    router, clock = make_router(rules)
    login_all(router, clock, ["a", "b"])
    router.device_state("PJSIP/a", in_use=True)
    entry = router.enqueue("strict", "call-1")
    assert [a.id for a in await offer(router, entry)] == ["b"]
    relaxed = router.enqueue("relaxed", "call-2")
    assert [a.id for a in await offer(router, relaxed)] == ["a"]
    router.ring_failed(relaxed, router.agents["a"], RingOutcome.CANCELLED)
    router.leave(relaxed)
    third = router.enqueue("strict", "call-3")
    task = asyncio.ensure_future(router.next_agents(third))
    await asyncio.sleep(0)
    assert not task.done()
    router.device_state("PJSIP/a", in_use=False)
    assert [a.id for a in await asyncio.wait_for(task, 1)] == ["a"]


async def test_an_agent_whose_phone_is_unreachable_is_never_offered_until_it_is_back() -> None:
    """Even by queues that ring agents in use; the delay its failed rings earned ends when
    the phone registers again."""
    rules = {"relaxed": QueueRules(members=("a", "b"), ring_in_use=True, busy_delay=60.0)}
    router, clock = make_router(rules)
    login_all(router, clock, ["a", "b"])
    router.device_state("PJSIP/a", in_use=False, reachable=False)
    (agent,) = [x for x in router.snapshot()["agents"] if x["id"] == "a"]
    assert (agent["state"], agent["ready"], agent["device_reachable"]) == (
        "available",
        False,
        False,
    )
    first = router.enqueue("relaxed", "call-1")
    assert [a.id for a in await offer(router, first)] == ["b"]
    router.ring_failed(first, router.agents["b"], RingOutcome.BUSY)
    task = asyncio.ensure_future(router.next_agents(first))
    await asyncio.sleep(0)
    assert not task.done(), "b sits out its busy delay, a is not there"
    router.device_state("PJSIP/b", in_use=False, reachable=False)
    router.device_state("PJSIP/b", in_use=False, reachable=True)
    assert [a.id for a in await asyncio.wait_for(task, 1)] == ["b"], "back: its delay is over"
    router.ring_failed(first, router.agents["b"], RingOutcome.CANCELLED)
    router.device_state("PJSIP/a", in_use=False, reachable=True)
    assert [a.id for a in await asyncio.wait_for(router.next_agents(first), 1)] == ["a"]


async def test_an_agent_given_a_new_phone_by_a_reload_is_offered_calls_again() -> None:
    """What the PBX said of the old phone (not registered) says nothing of the new one,
    which may be idle and never change state."""
    router, clock = make_router({"q": QueueRules(members=("a",))})
    login_all(router, clock, ["a"])
    router.device_state("PJSIP/a", in_use=False, reachable=False)
    entry = router.enqueue("q", "call-1")
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0)
    assert not task.done()
    router.configure({"q": QueueRules(members=("a",))}, {"a": AgentRules(device="PJSIP/a-desk")})
    assert [a.id for a in await asyncio.wait_for(task, 1)] == ["a"]
    router.device_state("PJSIP/a", in_use=True, reachable=False)
    assert not router.agents["a"].device_unreachable, "the old phone is not hers any more"


# ---------------------------------------------------------------------- callers


async def test_leave_when_empty_wakes_waiting_callers_with_no_agent() -> None:
    router, clock = make_router({"q": QueueRules(members=("a",), leave_when_empty=True)})
    login_all(router, clock, ["a"])
    busy = router.enqueue("q", "busy")
    (agent,) = await offer(router, busy)
    router.connected(busy, agent)
    entry = router.enqueue("q", "waiting")
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0)
    router.logout("a")  # pending: a is on a call, the queue is not empty yet
    await asyncio.sleep(0)
    assert not task.done()
    router.call_finished("a", "q")
    assert await asyncio.wait_for(task, 1) == []
    assert entry.status is EntryStatus.WAITING
    assert router.is_empty_for(entry)
    assert await router.next_agents(entry) == []
    with pytest.raises(EngineError, match="no agent"):
        await router.next_agent(entry)


async def test_a_queue_whose_only_agent_lost_their_phone_lets_its_callers_go_and_counts_empty() -> (
    None
):
    """app_queue's leavewhenempty/joinempty "unavailable": an agent logged in on a phone
    that is not registered cannot take anyone; callers would wait as if she were busy."""
    router, clock = make_router({"q": QueueRules(members=("a",), leave_when_empty=True)})
    login_all(router, clock, ["a"])
    entry = router.enqueue("q", "waiting")
    router.device_state("PJSIP/a", in_use=True)
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0)
    assert not task.done() and router.has_agents_for("q"), "in use: she will be back"
    router.device_state("PJSIP/a", in_use=False, reachable=False)
    assert await asyncio.wait_for(task, 1) == []
    assert router.is_empty_for(entry) and not router.has_agents_for("q")
    router.pause("a", "break")
    router.device_state("PJSIP/a", in_use=False, reachable=True)
    assert not router.has_agents_for("q"), "paused"
    router.unpause("a")
    assert router.has_agents_for("q")
    assert [a.id for a in await asyncio.wait_for(router.next_agents(entry), 1)] == ["a"]


async def test_positions_come_from_priority_then_arrival_and_survive_many_callers() -> None:
    router, clock = make_router({"q": QueueRules(members=("a",))})
    entries = []
    for n in range(6000):
        entries.append(router.enqueue("q", f"call-{n}", priority=n % 3))
        clock.advance(0.01)
    for entry in entries[:5000]:
        router.leave(entry)
    rest = entries[5000:]
    expected = sorted(rest, key=lambda e: e.key)
    assert [router.position(e) for e in expected[:5]] == [1, 2, 3, 4, 5]
    assert all(router.position(e) == i for i, e in enumerate(expected, start=1))
    assert router.position(entries[0]) == 0


async def test_estimated_wait_is_a_handle_time_shared_by_the_staff_past_the_free_agents() -> None:
    router, clock = make_router({"q": QueueRules(members=("a", "b"), wrapup=0)})
    login_all(router, clock, ["a", "b"])
    first = router.enqueue("q", "first")
    assert router.estimated_wait(first) is None, "no handled call yet"
    router.leave(first)
    for n, talk in enumerate((60.0, 120.0)):
        entry = router.enqueue("q", f"call-{n}")
        (agent,) = await offer(router, entry)
        router.connected(entry, agent)
        router.call_finished(agent.id, "q", talk_seconds=talk)
    router.pause("a", "lunch")
    router.pause("b", "lunch")
    waiting = [router.enqueue("q", f"w{n}") for n in range(3)]
    assert router.estimated_wait(waiting[2]) is None, "nobody staffed"
    router.unpause("a")
    router.unpause("b")
    assert router.staffed("q") == 2
    # Two free agents take the first two; the third waits for one of two calls of a mean
    # handle time of (60 + 120) / 2 = 90 s to end: 90 / 2.
    assert [router.estimated_wait(w) for w in waiting] == [0.0, 0.0, 45.0]
    for entry in waiting[:2]:
        (agent,) = await offer(router, entry)
        router.connected(entry, agent)
    waiting += [router.enqueue("q", f"w{n}") for n in (3, 4)]
    assert [router.position(w) for w in waiting[2:]] == [1, 2, 3]
    assert [router.estimated_wait(w) for w in waiting[2:]] == [45.0, 90.0, 135.0]
    assert router.expected_wait("q") == 180.0, "a fourth in line"


async def test_rebind_keeps_the_place_under_a_new_call_id() -> None:
    router, clock = make_router({"q": QueueRules(members=("a",))})
    first = router.enqueue("q", "first")
    clock.advance(1)
    router.enqueue("q", "second")
    router.rebind(first, "callback-leg")
    assert first.call_id == "callback-leg"
    assert router.position(first) == 1
    router.login("a")
    (agent,) = await offer(router, first)
    assert agent.call_id == "callback-leg"


async def test_configure_applies_new_rules_to_waiting_callers() -> None:
    router, clock = make_router({"q": QueueRules(members=("a", "b"))})
    login_all(router, clock, ["b", "a"])
    router.configure({"q": QueueRules(members=("a", "b"), strategy=Strategy.LINEAR)})
    assert router.available_agents("q") == ["a", "b"]
    entry = router.enqueue("q", "call-1")
    assert [a.id for a in await offer(router, entry)] == ["a"]
    router.configure(
        {"q": QueueRules(members=("a", "b", "c"))}, {"c": AgentRules(device="PJSIP/c")}
    )
    assert router.agents["c"].state is S.LOGGED_OUT
    assert router.snapshot()["queues"][0]["members"] == ["a", "b", "c"]
