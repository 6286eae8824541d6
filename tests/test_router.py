"""Routing: who gets which caller, in which order, and that nothing is ever lost or stuck."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from callcenter.acd.agent import Agent, AgentState
from callcenter.acd.queue import EntryStatus, QueueEntry
from callcenter.acd.router import Router
from callcenter.acd.rules import QueueRules
from callcenter.errors import EngineError, IllegalTransition, UnknownAgent, UnknownQueue
from callcenter.events import AgentStateChanged, EngineEvent, EventBus

S = AgentState


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_router(
    queues: dict[str, list[str]],
    *,
    wrapup: dict[str, float] | None = None,
    clock: FakeClock | None = None,
) -> tuple[Router, FakeClock]:
    clock = clock or FakeClock()
    ids = sorted({a for members in queues.values() for a in members})
    agents = [Agent(id=i, device=f"PJSIP/{i}") for i in ids]
    return Router(agents, queues, wrapup=wrapup, clock=clock), clock


async def offer(router: Router, entry: QueueEntry) -> Agent:
    return await asyncio.wait_for(router.next_agent(entry), 1)


async def take_call(router: Router, queue: str, call_id: str) -> Agent:
    """A caller arrives, is offered an agent and the agent answers."""
    entry = router.enqueue(queue, call_id)
    agent = await offer(router, entry)
    router.connected(entry, agent)
    return agent


# ---------------------------------------------------------------------- order


async def test_callers_get_agents_in_exact_longest_idle_order() -> None:
    router, clock = make_router({"sales": ["a", "b", "c"]})
    for agent_id in ("b", "c", "a"):  # idle since 1000, 1001, 1002
        router.login(agent_id)
        clock.advance(1)
    assert router.available_agents("sales") == ["b", "c", "a"]
    got = [(await take_call(router, "sales", f"call-{n}")).id for n in range(3)]
    assert got == ["b", "c", "a"]
    # They finish in the order a, b, c: that is the next idle order.
    for agent_id in ("a", "b", "c"):
        clock.advance(5)
        router.call_finished(agent_id, "sales")
    assert router.available_agents("sales") == ["a", "b", "c"]
    got = [(await take_call(router, "sales", f"call-{n}")).id for n in range(3, 6)]
    assert got == ["a", "b", "c"]
    assert [router.agents[i].calls_taken for i in "abc"] == [2, 2, 2]


async def test_higher_priority_caller_is_served_first_then_arrival_order() -> None:
    router, clock = make_router({"sales": ["a"]})
    entries = []
    for call_id, priority in (("early", 0), ("vip", 5), ("late", 0)):
        entries.append(router.enqueue("sales", call_id, priority=priority))
        clock.advance(1)
    assert [router.position(e) for e in entries] == [2, 1, 3]
    tasks = {asyncio.ensure_future(router.next_agent(e)): e for e in entries}
    await asyncio.sleep(0)
    router.login("a")
    order = []
    while tasks:
        done, _ = await asyncio.wait(tasks, timeout=1, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1, "one agent, one caller at a time"
        entry = tasks.pop(done.pop())
        order.append(entry.call_id)
        router.connected(entry, router.agents["a"])
        router.call_finished("a", "sales")
    assert order == ["vip", "early", "late"]


async def test_a_hunting_caller_beside_a_free_agent_the_router_missed_is_shown_stalled() -> None:
    """What the soak looks for: the router serves at every change, so a caller hunting
    while a member is ready means a change it never heard of (here: an agent made free
    behind its back)."""
    router, _ = make_router({"sales": ["a", "b"]})
    router.login("a")
    entry = router.enqueue("sales", "call-1")
    assert (await offer(router, entry)).id == "a"
    router.connected(entry, router.agents["a"])
    waiting = router.enqueue("sales", "call-2")
    hunting = asyncio.ensure_future(router.next_agent(waiting))
    await asyncio.sleep(0)
    assert router.stalled() == [], "nobody free: nothing stalled"
    router.agents["a"].state = AgentState.AVAILABLE
    assert router.stalled() == [("call-2", "a")]
    hunting.cancel()


async def test_a_caller_sent_by_an_agent_goes_to_another_unless_nobody_else_may_take_them() -> None:
    router, clock = make_router({"support": ["a", "b"]})
    router.login("a")
    clock.advance(1)
    router.login("b")
    first = router.enqueue("support", "call-1", others_first="a")
    assert (await offer(router, first)).id == "b", "a, longest idle, sent them: b takes them"
    router.connected(first, router.agents["b"])
    second = router.enqueue("support", "call-2", others_first="a")
    assert (await offer(router, second)).id == "a", "nobody else free: back to a"


async def test_a_freed_agent_takes_the_best_caller_across_its_queues() -> None:
    router, clock = make_router({"sales": ["a"], "support": ["a"]})
    sales = router.enqueue("sales", "sales-call")
    clock.advance(1)
    support = router.enqueue("support", "support-call")
    clock.advance(1)
    vip = router.enqueue("support", "support-vip", priority=1)
    tasks = {e.call_id: asyncio.ensure_future(router.next_agent(e)) for e in (sales, support, vip)}
    await asyncio.sleep(0)
    router.login("a")
    await asyncio.sleep(0)
    assert [cid for cid, t in tasks.items() if t.done()] == ["support-vip"]
    router.connected(vip, router.agents["a"])
    router.call_finished("a", "support")
    await asyncio.sleep(0)
    assert tasks["sales-call"].done(), "sales-call joined before support-call"
    assert not tasks["support-call"].done()
    tasks["support-call"].cancel()
    await asyncio.gather(tasks["support-call"], return_exceptions=True)


async def test_an_agent_in_two_queues_is_offered_once() -> None:
    router, _ = make_router({"sales": ["a"], "support": ["a"]})
    router.login("a")
    first = router.enqueue("sales", "call-1")
    second = router.enqueue("support", "call-2")
    assert (await offer(router, first)).id == "a"
    task = asyncio.ensure_future(router.next_agent(second))
    await asyncio.sleep(0.01)
    assert not task.done()
    assert router.available_agents("support") == []
    router.ring_failed(first, router.agents["a"])
    assert (await asyncio.wait_for(task, 1)).id == "a"


# ---------------------------------------------------------------------- no answer


async def test_no_answer_moves_on_to_the_next_agent_and_retries_later() -> None:
    router, clock = make_router({"sales": ["a", "b"]})
    router.login("a")
    clock.advance(1)
    router.login("b")
    entry = router.enqueue("sales", "call-1")
    a = await offer(router, entry)
    assert a.id == "a"
    router.ring_failed(entry, a)
    assert a.state is S.AVAILABLE
    assert a.missed_offers == 1
    assert router.available_agents("sales") == ["a", "b"], "a is still the longest idle"
    b = await offer(router, entry)
    assert b.id == "b", "a caller is not offered the agent who just missed it"
    router.ring_failed(entry, b)
    again = await offer(router, entry)
    assert again.id == "a", "after trying everyone, a new round starts with the longest idle"
    assert entry.tried == set()


async def test_a_missed_call_goes_to_the_next_waiting_caller_at_once() -> None:
    router, _ = make_router({"sales": ["a"]})
    router.login("a")
    first = router.enqueue("sales", "call-1")
    second = router.enqueue("sales", "call-2")
    agent = await offer(router, first)
    task = asyncio.ensure_future(router.next_agent(second))
    await asyncio.sleep(0)
    assert not task.done()
    router.ring_failed(first, agent)
    assert (await asyncio.wait_for(task, 1)) is agent
    assert second.status is EntryStatus.OFFERED
    assert first.status is EntryStatus.WAITING


# ---------------------------------------------------------------------- wrap-up


async def test_wrap_up_delays_the_next_offer() -> None:
    router, _ = make_router({"sales": ["a"]}, wrapup={"sales": 0.1})
    router.login("a")
    agent = await take_call(router, "sales", "call-1")
    router.call_finished("a", "sales")
    assert agent.state is S.WRAP_UP
    entry = router.enqueue("sales", "call-2")
    task = asyncio.ensure_future(router.next_agent(entry))
    await asyncio.sleep(0.03)
    assert not task.done(), "no call during wrap-up"
    assert (await asyncio.wait_for(task, 1)) is agent
    assert agent.state is S.RINGING


async def test_agent_can_end_wrap_up_early() -> None:
    router, _ = make_router({"sales": ["a"]}, wrapup={"sales": 300})
    router.login("a")
    await take_call(router, "sales", "call-1")
    router.call_finished("a", "sales")
    entry = router.enqueue("sales", "call-2")
    task = asyncio.ensure_future(router.next_agent(entry))
    await asyncio.sleep(0)
    router.end_wrapup("a")
    assert (await asyncio.wait_for(task, 1)).id == "a"


async def test_a_queue_requiring_dispositions_holds_the_wrap_up_until_the_code() -> None:
    rules = {"sales": QueueRules(members=("a",), wrapup=0.05, disposition_required=True)}
    router = Router([Agent(id="a", device="PJSIP/a")], {"sales": ["a"]}, rules=rules)
    agent = router.agents["a"]
    router.login("a")
    await take_call(router, "sales", "call-1")
    router.call_finished("a", "sales")
    await asyncio.sleep(0.1)
    assert agent.state is S.WRAP_UP and agent.owes_disposition, "the time is up, not the code"
    with pytest.raises(EngineError, match="disposition first"):
        router.end_wrapup("a")
    router.disposed("a")
    assert agent.state is S.AVAILABLE and not agent.owes_disposition

    await take_call(router, "sales", "call-2")
    router.call_finished("a", "sales")
    router.disposed("a")
    assert agent.state is S.WRAP_UP, "a code given early: the wrap-up time still runs"
    await asyncio.sleep(0.1)
    assert agent.state is S.AVAILABLE

    await take_call(router, "sales", "call-3")
    router.call_finished("a", "sales")
    router.pause("a", "lunch")
    router.unpause("a")
    assert agent.state is S.WRAP_UP, "a pause does not wipe out what is owed"
    router.logout("a")
    assert not agent.owes_disposition, "a logout clears what was owed"


async def test_a_wrap_up_until_ready_lasts_until_the_agent_says_so_even_after_the_code() -> None:
    rules = {
        "sales": QueueRules(
            members=("a",), wrapup=0.05, wrapup_until_ready=True, disposition_required=True
        )
    }
    router = Router([Agent(id="a", device="PJSIP/a")], {"sales": ["a"]}, rules=rules)
    agent = router.agents["a"]
    router.login("a")
    await take_call(router, "sales", "call-1")
    router.call_finished("a", "sales")
    await asyncio.sleep(0.1)
    router.disposed("a")
    assert agent.state is S.WRAP_UP, "no timer and no code ends it"
    assert router.agent_view("a")["until_ready"] is True
    waiting = router.enqueue("sales", "call-2")
    hunt = asyncio.ensure_future(router.next_agent(waiting))
    await asyncio.sleep(0)
    assert not hunt.done(), "no call while in wrap-up"
    router.end_wrapup("a")
    assert (await hunt).id == "a"
    assert router.agent_view("a")["until_ready"] is False
    router.connected(waiting, agent)
    router.call_finished("a", "sales")
    router.pause("a", "lunch")
    router.disposed("a")
    router.unpause("a")
    assert agent.state is S.AVAILABLE, "a pause ended the wrap-up, its code given meanwhile"


async def test_no_wrap_up_for_a_queue_without_it() -> None:
    router, _ = make_router({"sales": ["a"], "support": ["a"]}, wrapup={"sales": 300})
    router.login("a")
    await take_call(router, "support", "call-1")
    router.call_finished("a", "support")
    assert router.agents["a"].state is S.AVAILABLE


# ---------------------------------------------------------------------- callers leaving


async def test_cancelled_wait_leaves_no_reservation_behind() -> None:
    router, _ = make_router({"sales": ["a"]})
    entry = router.enqueue("sales", "call-1")
    task = asyncio.ensure_future(router.next_agent(entry))
    await asyncio.sleep(0)
    router.login("a")  # reserved for the caller: the future is resolved...
    assert router.agents["a"].state is S.RINGING
    task.cancel()  # ...but the caller hangs up before its task resumes
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router.agents["a"].state is S.AVAILABLE
    assert entry.status is EntryStatus.WAITING
    assert router.position(entry) == 1
    router.leave(entry)
    assert router.waiting("sales") == 0
    assert router.available_agents("sales") == ["a"]


async def test_cancelled_wait_without_agent_stops_hunting() -> None:
    router, _ = make_router({"sales": ["a"]})
    entry = router.enqueue("sales", "call-1")
    task = asyncio.ensure_future(router.next_agent(entry))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    router.login("a")
    assert router.agents["a"].state is S.AVAILABLE, "nobody is hunting: the agent stays idle"
    assert router.queues["sales"].head() is None


async def test_caller_leaving_while_ringing_frees_the_agent_for_the_next_caller() -> None:
    router, _ = make_router({"sales": ["a"]})
    router.login("a")
    first = router.enqueue("sales", "call-1")
    second = router.enqueue("sales", "call-2")
    agent = await offer(router, first)
    task = asyncio.ensure_future(router.next_agent(second))
    await asyncio.sleep(0)
    router.leave(first)
    assert (await asyncio.wait_for(task, 1)) is agent
    router.ring_failed(first, agent)  # the dial's late failure changes nothing
    assert agent.state is S.RINGING
    assert second.agent is agent
    assert agent.missed_offers == 0


async def test_leave_wakes_a_waiting_next_agent_with_an_error() -> None:
    router, _ = make_router({"sales": ["a"]})
    entry = router.enqueue("sales", "call-1")
    task = asyncio.ensure_future(router.next_agent(entry))
    await asyncio.sleep(0)
    router.leave(entry)
    with pytest.raises(EngineError, match="left queue sales"):
        await asyncio.wait_for(task, 1)
    router.leave(entry)  # idempotent
    assert router.waiting("sales") == 0


async def test_agent_answering_a_revoked_offer_still_takes_the_caller_out_of_the_queue() -> None:
    router, _ = make_router({"sales": ["a"]})
    router.login("a")
    entry = router.enqueue("sales", "call-1")
    agent = await offer(router, entry)
    router.logout("a")
    router.connected(entry, agent)  # the answer raced the logout
    assert entry.status is EntryStatus.CONNECTED
    assert router.waiting("sales") == 0
    assert agent.state is S.LOGGED_OUT


async def test_positions_follow_priority_then_arrival() -> None:
    router, clock = make_router({"sales": ["a"]})
    a = router.enqueue("sales", "a")
    clock.advance(1)
    b = router.enqueue("sales", "b", priority=2)
    clock.advance(1)
    c = router.enqueue("sales", "c")
    assert [router.position(e) for e in (a, b, c)] == [2, 1, 3]
    router.leave(b)
    assert [router.position(e) for e in (a, b, c)] == [1, 0, 2]
    assert router.waiting("sales") == 2


async def test_a_caller_keeping_an_earlier_place_is_counted_at_it_and_served_first() -> None:
    router, clock = make_router({"sales": ["a"]})
    first = router.enqueue("sales", "first")
    clock.advance(10)
    later = [router.enqueue("sales", f"later-{n}") for n in range(3)]
    back = router.enqueue("sales", "back", joined=clock.now - 5)
    assert [router.position(e) for e in (first, back, *later)] == [1, 2, 3, 4, 5]
    router.leave(first)
    assert router.position(back) == 1
    newest = router.enqueue("sales", "newest")
    assert router.position(newest) == 5
    hunts = {e.call_id: asyncio.ensure_future(router.next_agent(e)) for e in (*later, back)}
    await asyncio.sleep(0)
    router.login("a")
    await asyncio.sleep(0)
    assert [call for call, hunt in hunts.items() if hunt.done()] == ["back"]
    for hunt in hunts.values():
        hunt.cancel()


async def test_a_caller_is_offered_their_last_agent_first_only_if_that_agent_could_take_them() -> (
    None
):
    rules = {
        "sales": QueueRules(
            members=("a", "b", "c"),
            skills=frozenset({"fr"}),
            penalties=MappingProxyType({"b": 5}),
        )
    }
    agents = [
        Agent(id="a", device="PJSIP/a", skills={"fr": 5}),
        Agent(id="b", device="PJSIP/b", skills={"fr": 5}),
        Agent(id="c", device="PJSIP/c"),
    ]
    router = Router(agents, {}, clock=FakeClock())
    router.configure(rules)
    for agent_id in ("a", "b", "c"):
        router.login(agent_id)
    lacks_skill = router.enqueue("sales", "call-1")
    assert not router.prefer(lacks_skill, "c"), "c has no French"
    assert not router.prefer(lacks_skill, "nobody")
    assert router.prefer(lacks_skill, "b"), "a penalty does not keep a caller from their agent"
    assert (await offer(router, lacks_skill)).id == "b"
    assert router.agents["b"].state is S.RINGING
    second = router.enqueue("sales", "call-2")
    assert not router.prefer(second, "b"), "b is ringing for someone else"
    hunting = asyncio.ensure_future(router.next_agent(second))
    await asyncio.sleep(0)
    assert not router.prefer(second, "a"), "only a caller not yet hunting"
    assert (await hunting).id == "a"


# ---------------------------------------------------------------------- direct dials, errors


def test_direct_reservation_for_a_supervisor() -> None:
    router, _ = make_router({"sales": ["a"], "escalation": ["sup"]})
    router.login("sup")
    sup = router.reserve("sup", call_id="call-9")
    assert sup.state is S.RINGING
    assert router.available_agents("escalation") == []
    with pytest.raises(IllegalTransition, match="not available"):
        router.reserve("sup")
    router.release("sup")
    assert sup.state is S.AVAILABLE
    router.reserve("sup")
    router.connect_direct("sup")
    assert sup.state is S.ON_CALL
    assert sup.calls_taken == 1
    router.call_finished("sup")
    assert sup.state is S.AVAILABLE
    with pytest.raises(IllegalTransition):
        router.release("sup")


def test_unknown_names_are_refused() -> None:
    router, _ = make_router({"sales": ["a"]})
    with pytest.raises(UnknownQueue):
        router.enqueue("nope", "call-1")
    with pytest.raises(UnknownQueue):
        router.waiting("nope")
    with pytest.raises(UnknownAgent):
        Router([Agent(id="a")], {"sales": ["a", "ghost"]})
    router.enqueue("sales", "call-1")
    with pytest.raises(EngineError, match="already waiting"):
        router.enqueue("sales", "call-1")


async def test_snapshot_is_json_and_shows_states_and_waiting_counts() -> None:
    router, clock = make_router({"sales": ["a", "b"]})
    router.login("a")
    router.login("b")
    router.pause("b", "lunch")
    entry = router.enqueue("sales", "call-1")
    await offer(router, entry)
    router.enqueue("sales", "call-2")
    clock.advance(12)
    snap = json.loads(json.dumps(router.snapshot()))
    agents = {a["id"]: a for a in snap["agents"]}
    assert agents["a"]["state"] == "ringing"
    assert agents["a"]["call_id"] == "call-1"
    assert agents["b"]["state"] == "paused"
    assert agents["b"]["pause_reason"] == "lunch"
    assert agents["b"]["time_in_state"] == 12.0
    (sales,) = snap["queues"]
    assert sales["waiting"] == 2
    assert sales["available"] == 0
    assert sales["longest_wait"] == 12.0


async def test_many_callers_and_agents_are_all_served_once() -> None:
    agents = [f"a{i}" for i in range(300)]
    router, clock = make_router({"sales": agents[:200], "support": agents[100:]})
    for agent_id in agents:
        router.login(agent_id)
        clock.advance(0.01)
    entries = [
        router.enqueue("sales" if n % 2 else "support", f"call-{n}", priority=n % 3)
        for n in range(1000)
    ]
    tasks = [asyncio.ensure_future(router.next_agent(e)) for e in entries]
    served: list[str] = []
    while len(served) < len(entries):
        await asyncio.sleep(0)
        done = [t for t in tasks if t.done()]
        assert done, "some caller must have an agent"
        for task in done:
            tasks.remove(task)
            agent = task.result()
            entry = next(e for e in entries if e.agent is agent and e.status is EntryStatus.OFFERED)
            router.connected(entry, agent)
            served.append(entry.call_id)
            router.call_finished(agent.id, entry.queue)
    assert sorted(served) == sorted(e.call_id for e in entries)
    assert router.waiting("sales") == router.waiting("support") == 0
    assert all(router.agents[a].state is S.AVAILABLE for a in agents)


# ---------------------------------------------------------------------- random days


@dataclass(eq=False)
class Caller:
    entry: QueueEntry
    task: asyncio.Task[Agent] | None = None
    ringing: Agent | None = None  # the agent the "engine" is dialing
    talking: Agent | None = None
    held: asyncio.Future[bool] | None = None  # waiting for a kept agent (hold_for)
    held_for: str = ""


@dataclass
class Model:
    outcomes: dict[str, list[str]] = field(default_factory=dict)


AGENT_IDS = ("a0", "a1", "a2", "a3")
DESKS = ("PJSIP/spare1", "PJSIP/spare2", "PJSIP/a0", "PJSIP/a1")
QUEUES = {"q1": ["a0", "a1", "a2"], "q2": ["a1", "a2", "a3"]}


class RouterMachine(RuleBasedStateMachine):
    """Random arrivals, offers, answers, no-answers, hang-ups, logins, logouts and pauses,
    driven the way the engine drives the router."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.bus = EventBus()
        self.last_state: dict[str, str] = {}
        self.bad_moves: list[str] = []
        self.bus.subscribe(self._on_event)
        agents = [Agent(id=i, device=f"PJSIP/{i}") for i in AGENT_IDS]
        self.router = Router(agents, QUEUES, wrapup={"q2": 1000.0}, bus=self.bus, clock=self.clock)
        self.revoked: list[QueueEntry | None] = []
        self.router.on_offer_revoked = lambda entry, agent: self.revoked.append(entry)
        self.callers: dict[str, Caller] = {}
        self.outcomes: dict[str, list[str]] = {}
        self.count = 0

    # --------------------------------------------------------------- plumbing

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, AgentStateChanged):
            if event.new == "ringing" and event.old != "available":
                self.bad_moves.append(f"{event.agent}: {event.old} -> ringing")
            self.last_state[event.agent] = event.new

    def _in_loop(self, action: object) -> None:
        async def run() -> None:
            assert callable(action)
            action()
            for _ in range(3):
                await asyncio.sleep(0)

        self.loop.run_until_complete(run())
        self._harvest()

    def _kept(self) -> list[Caller]:
        """Callers whose wait for a kept agent is over: ringing them now (the engine dials
        at once), or back to hunting (returned: the engine asks for anyone)."""
        again = []
        for caller in self.callers.values():
            if caller.held is not None and caller.held.done():
                kept = caller.held.result()
                caller.held = None
                if kept:
                    assert caller.entry.status is EntryStatus.OFFERED
                    caller.ringing = caller.entry.agents[0]
                    assert caller.ringing.id == caller.held_for
                else:
                    again.append(caller)
        return again

    def _harvest(self) -> None:
        for caller in self._kept():
            self._in_loop(lambda caller=caller: self._hunt(caller))
        for caller in self.callers.values():
            task = caller.task
            if task is not None and task.done():
                caller.task = None
                if task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None:
                    assert isinstance(exc, EngineError)
                    continue
                caller.ringing = task.result()

    def _hunt(self, caller: Caller) -> None:
        caller.task = self.loop.create_task(self.router.next_agent(caller.entry))

    def _outcome(self, caller: Caller, what: str) -> None:
        self.outcomes[caller.entry.call_id].append(what)

    def _ringing(self) -> list[str]:
        return sorted(cid for cid, c in self.callers.items() if c.ringing is not None)

    def _talking(self) -> list[str]:
        return sorted(cid for cid, c in self.callers.items() if c.talking is not None)

    # --------------------------------------------------------------- callers

    @rule(queue=st.sampled_from(sorted(QUEUES)), priority=st.integers(0, 2))
    def caller_arrives(self, queue: str, priority: int) -> None:
        self.count += 1
        call_id = f"call-{self.count}"

        def arrive() -> None:
            entry = self.router.enqueue(queue, call_id, priority=priority)
            caller = Caller(entry)
            self.callers[call_id] = caller
            self.outcomes[call_id] = []
            self._hunt(caller)

        self._in_loop(arrive)

    @precondition(lambda self: bool(self._ringing()))
    @rule(data=st.data())
    def agent_answers(self, data: st.DataObject) -> None:
        caller = self.callers[data.draw(st.sampled_from(self._ringing()))]
        agent = caller.ringing
        assert agent is not None

        def answer() -> None:
            self.router.connected(caller.entry, agent)
            caller.ringing = None
            caller.talking = agent
            self._outcome(caller, "answered")

        self._in_loop(answer)

    @precondition(lambda self: bool(self._ringing()))
    @rule(data=st.data())
    def agent_does_not_answer(self, data: st.DataObject) -> None:
        caller = self.callers[data.draw(st.sampled_from(self._ringing()))]
        agent = caller.ringing
        assert agent is not None

        def no_answer() -> None:
            self.router.ring_failed(caller.entry, agent)
            caller.ringing = None
            self._hunt(caller)

        self._in_loop(no_answer)

    @precondition(lambda self: bool(self.callers))
    @rule(data=st.data(), why=st.sampled_from(["abandoned", "timeout"]))
    def caller_hangs_up_or_times_out(self, data: st.DataObject, why: str) -> None:
        call_id = data.draw(st.sampled_from(sorted(self.callers)))
        self._in_loop(lambda: self._end(call_id, why))

    @precondition(lambda self: bool(self._talking()))
    @rule(data=st.data())
    def agent_hangs_up(self, data: st.DataObject) -> None:
        call_id = data.draw(st.sampled_from(self._talking()))
        self._in_loop(lambda: self._end(call_id, "abandoned"))

    @precondition(lambda self: any(c.task is not None for c in self.callers.values()))
    @rule(data=st.data(), agent_id=st.sampled_from(AGENT_IDS))
    def engine_stops_waiting_then_asks_again(self, data: st.DataObject, agent_id: str) -> None:
        hunting = sorted(cid for cid, c in self.callers.items() if c.task is not None)
        caller = self.callers[data.draw(st.sampled_from(hunting))]

        def stop() -> None:
            # An agent may be reserved for the caller just before the cancel lands.
            if self.router.agents[agent_id].state is S.LOGGED_OUT:
                self.router.login(agent_id)
            assert caller.task is not None
            caller.task.cancel()

        self._in_loop(stop)
        assert caller.task is None and caller.ringing is None
        assert caller.entry.status is EntryStatus.WAITING
        self._in_loop(lambda: self._hunt(caller))

    @rule(agent_id=st.sampled_from(AGENT_IDS), queue=st.sampled_from(sorted(QUEUES)))
    def sticky_caller_arrives(self, agent_id: str, queue: str) -> None:
        self.count += 1
        call_id = f"sticky-{self.count}"

        def arrive() -> None:
            entry = self.router.enqueue(queue, call_id)
            caller = Caller(entry)
            self.callers[call_id] = caller
            self.outcomes[call_id] = []
            held = self.router.hold_for(entry, agent_id)
            if held is None:
                self._hunt(caller)
            else:
                caller.held, caller.held_for = held, agent_id

        self._in_loop(arrive)

    @precondition(lambda self: any(c.held is not None for c in self.callers.values()))
    @rule(data=st.data())
    def the_wait_for_a_kept_agent_runs_out(self, data: st.DataObject) -> None:
        held = sorted(cid for cid, c in self.callers.items() if c.held is not None)
        caller = self.callers[data.draw(st.sampled_from(held))]

        def run_out() -> None:
            self.router.release_hold(caller.entry)
            if caller.held is not None and caller.held.done() and not caller.held.result():
                caller.held = None
                self._hunt(caller)

        self._in_loop(run_out)

    @rule(agent_id=st.sampled_from(AGENT_IDS), queue=st.sampled_from(sorted(QUEUES)))
    def agent_dials_out(self, agent_id: str, queue: str) -> None:
        self.count += 1
        call_id = f"dial:{agent_id}:{self.count}"

        def dial() -> None:
            entry = self.router.enqueue(queue, call_id)
            try:
                agent = self.router.claim(entry, agent_id)
            except EngineError:
                self.router.leave(entry)
                return
            assert entry.status is EntryStatus.OFFERED and entry.agents == [agent]
            self.callers[call_id] = Caller(entry, ringing=agent)
            self.outcomes[call_id] = []

        self._in_loop(dial)

    def _end(self, call_id: str, why: str) -> None:
        caller = self.callers.pop(call_id)
        if caller.held is not None:
            self.router.release_hold(caller.entry)
        if caller.talking is not None:
            self.router.call_finished(caller.talking.id, caller.entry.queue)
            return
        # As the engine does: cancel the wait, then leave before the task has run.
        if caller.task is not None:
            caller.task.cancel()
        position = self.router.position(caller.entry)
        assert position >= 1
        self.router.leave(caller.entry)
        self._outcome(caller, why)

    # --------------------------------------------------------------- agents

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def login(self, agent_id: str) -> None:
        def go() -> None:
            if self.router.agents[agent_id].state is S.LOGGED_OUT:
                self.router.login(agent_id, via="test")
            else:
                with pytest.raises(IllegalTransition):
                    self.router.login(agent_id)

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS), desk=st.sampled_from(DESKS))
    def login_at_a_desk(self, agent_id: str, desk: str) -> None:
        """Hot desking: at a spare phone, at another agent's own, or at their own."""

        def go() -> None:
            agent = self.router.agents[agent_id]
            taken = any(
                other.device == desk and other.state is not S.LOGGED_OUT
                for other in self.router.agents.values()
                if other is not agent
            )
            if agent.state is not S.LOGGED_OUT:
                with pytest.raises(IllegalTransition):
                    self.router.login(agent_id, device=desk)
            elif taken and desk != agent.home_device:
                with pytest.raises(EngineError, match="works at"):
                    self.router.login(agent_id, device=desk)
                assert agent.state is S.LOGGED_OUT and agent.desk is None, "nothing changed"
            else:
                self.router.login(agent_id, via="test", device=desk)
                assert agent.device == desk

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def logout(self, agent_id: str) -> None:
        self._in_loop(lambda: self._logout(agent_id))

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def login_then_logout_at_once(self, agent_id: str) -> None:
        def go() -> None:
            if self.router.agents[agent_id].state is S.LOGGED_OUT:
                self.router.login(agent_id)
            self._logout(agent_id)

        self._in_loop(go)

    def _logout(self, agent_id: str) -> None:
        agent = self.router.agents[agent_id]
        if agent.state is S.LOGGED_OUT:
            with pytest.raises(IllegalTransition):
                self.router.logout(agent_id)
            return
        self.router.logout(agent_id)
        again = self._kept()  # a kept agent reserved within this very action
        # The engine aborts the dials of revoked offers and asks for another agent.
        for entry in self.revoked:
            assert entry is not None
            caller = self.callers[entry.call_id]
            assert caller.ringing is agent
            self.router.ring_failed(entry, agent)
            caller.ringing = None
            self._hunt(caller)
        self.revoked.clear()
        for caller in again:
            self._hunt(caller)

    @rule(agent_id=st.sampled_from(AGENT_IDS), reason=st.sampled_from(["lunch", "break"]))
    def pause(self, agent_id: str, reason: str) -> None:
        def go() -> None:
            if self.router.agents[agent_id].state is S.LOGGED_OUT:
                with pytest.raises(IllegalTransition):
                    self.router.pause(agent_id, reason)
            else:
                self.router.pause(agent_id, reason)

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def unpause(self, agent_id: str) -> None:
        agent = self.router.agents[agent_id]

        def go() -> None:
            if agent.state is S.PAUSED or agent.pending_pause is not None:
                self.router.unpause(agent_id)
            else:
                with pytest.raises(IllegalTransition):
                    self.router.unpause(agent_id)

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def wrap_up_ends(self, agent_id: str) -> None:
        if self.router.agents[agent_id].state is S.WRAP_UP:
            self._in_loop(lambda: self.router.end_wrapup(agent_id))

    @rule(seconds=st.floats(0, 30))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # --------------------------------------------------------------- invariants

    @invariant()
    def nobody_holds_two_calls_and_states_match_the_calls(self) -> None:
        ringing: dict[str, str] = {}
        talking: dict[str, str] = {}
        for call_id, caller in self.callers.items():
            entry = caller.entry
            if entry.status is EntryStatus.OFFERED:
                assert entry.agent is not None
                assert entry.agent.id not in ringing, "agent offered two callers"
                ringing[entry.agent.id] = call_id
            if caller.talking is not None:
                assert caller.talking.id not in talking, "agent talking to two callers"
                talking[caller.talking.id] = call_id
        for agent_id, agent in self.router.agents.items():
            assert not (agent_id in ringing and agent_id in talking)
            if agent.state is S.RINGING:
                assert agent_id in ringing, f"{agent_id} rings for nobody"
                assert agent.call_id == ringing[agent_id]
            else:
                assert agent_id not in ringing, f"{agent_id} offered while {agent.state}"
            if agent.state is S.ON_CALL:
                assert agent_id in talking, f"{agent_id} on a call with nobody"
            else:
                assert agent_id not in talking

    @invariant()
    def a_kept_agent_is_never_idle_while_their_caller_waits(self) -> None:
        for caller in self.callers.values():
            if caller.held is not None and not caller.held.done():
                agent = self.router.agents[caller.held_for]
                assert caller.entry.status is EntryStatus.WAITING
                assert not (agent.state is S.AVAILABLE and not agent.delayed), (
                    f"{agent.id} idle while kept for {caller.entry.call_id}"
                )

    @invariant()
    def nobody_paused_or_logged_out_is_offered_a_call(self) -> None:
        assert self.bad_moves == []
        for caller in self.callers.values():
            if caller.ringing is not None:
                assert caller.ringing.state is S.RINGING
                assert caller.entry.agent is caller.ringing

    @invariant()
    def waiting_counts_callers_not_yet_connected_or_gone(self) -> None:
        for queue in QUEUES:
            expected = sum(
                1 for c in self.callers.values() if c.entry.queue == queue and c.talking is None
            )
            assert self.router.waiting(queue) == expected

    @invariant()
    def no_queue_has_both_a_hunting_caller_and_an_idle_member(self) -> None:
        for queue in self.router.queues.values():
            assert queue.head() is None or not queue.has_idle()
        assert self.router.stalled() == []

    @invariant()
    def each_agent_is_found_by_the_phone_it_works_at_and_only_there(self) -> None:
        index = self.router._by_device
        for agent in self.router.agents.values():
            assert [d for d, held in index.items() if agent in held] == [agent.device]
            assert agent.device == (agent.desk or agent.home_device)
            if agent.state is S.LOGGED_OUT:
                assert agent.desk is None, "back at their own phone at logout"

    @invariant()
    def published_states_match_the_agents(self) -> None:
        for agent_id, agent in self.router.agents.items():
            assert self.last_state.get(agent_id, "logged_out") == agent.state.value
            assert (agent.logged_in_at is None) == (agent.state is S.LOGGED_OUT)

    def teardown(self) -> None:
        try:
            for call_id in list(self.callers):
                self._in_loop(lambda call_id=call_id: self._end(call_id, "abandoned"))
            for agent_id, agent in self.router.agents.items():
                if agent.state is S.WRAP_UP:
                    self._in_loop(lambda agent_id=agent_id: self.router.end_wrapup(agent_id))
                assert agent.state in (S.LOGGED_OUT, S.AVAILABLE, S.PAUSED), (
                    f"{agent_id} stuck in {agent.state}"
                )
                assert agent.call_id is None
            for call_id, outcomes in self.outcomes.items():
                assert len(outcomes) == 1, f"{call_id}: {outcomes}"
            for queue in QUEUES:
                assert self.router.waiting(queue) == 0
        finally:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()


RouterMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRandomCallCentreDays = RouterMachine.TestCase


async def test_free_agents_counts_the_idle_ones_less_the_callers_not_yet_offered_one() -> None:
    """What a predictive campaign dials for: agents who could take a call now, less the
    callers already waiting for one; its listener hears of each agent freed for nobody."""
    router, _ = make_router({"sales": ["a", "b", "c"]})
    freed: list[str] = []
    router.idle_listeners.append(freed.append)
    for agent in "abc":
        router.login(agent)
    assert router.free_agents("sales") == 3 and freed == ["a", "b", "c"]
    await take_call(router, "sales", "call-1")
    router.enqueue("sales", "call-2")
    assert router.free_agents("sales") == 1, "one on a call, one for the caller waiting"
    router.device_state("PJSIP/c", in_use=True)
    assert router.free_agents("sales") == 0, "c's phone is busy"
    freed.clear()
    router.device_state("PJSIP/c", in_use=False)
    assert freed == ["c"]
    router.pause("b", "lunch")
    router.enqueue("sales", "call-3")
    assert router.free_agents("sales") == 0, "never below nought"


async def test_an_agent_claimed_for_their_own_call_goes_before_every_waiting_caller() -> None:
    router, _ = make_router({"q": ["a1"]}, wrapup={"q": 30.0})
    router.login("a1")
    router.pause("a1", "lunch")
    waiting = router.enqueue("q", "caller")
    hunting = asyncio.ensure_future(router.next_agents(waiting))
    await asyncio.sleep(0)
    own = router.enqueue("q", "dial:a1:1")
    agent = router.claim(own, "a1")
    assert (agent.state, own.status, await router.next_agents(own)) == (
        S.RINGING,
        EntryStatus.OFFERED,
        [agent],
    )
    with pytest.raises(EngineError, match="a1 is being offered a call"):
        router.claim(router.enqueue("q", "dial:a1:2"), "a1")
    router.connected(own, agent)
    router.call_finished("a1", "q", talk_seconds=60)
    assert not hunting.done(), "the waiting caller did not get her"
    assert (agent.state, agent.pause_reason) == (S.PAUSED, "lunch"), "back on her break"
    hunting.cancel()


async def test_claiming_an_agent_in_after_call_work_ends_it_unless_a_code_is_owed() -> None:
    router, _ = make_router({"q": ["a1"]}, wrapup={"q": 30.0})
    router.login("a1")
    await take_call(router, "q", "c1")
    router.call_finished("a1", "q", talk_seconds=10)
    agent = router.agents["a1"]
    agent.owes_disposition = True
    with pytest.raises(EngineError, match="disposition first"):
        router.claim(router.enqueue("q", "dial:a1:1"), "a1")
    agent.owes_disposition = False
    assert agent.state is S.WRAP_UP
    assert router.claim(router.enqueue("q", "dial:a1:2"), "a1").state is S.RINGING


async def test_a_busy_agent_kept_for_a_caller_takes_them_first_once_free() -> None:
    router, _ = make_router({"q": ["a1", "a2"]})
    router.login("a1")
    router.login("a2")
    busy = await take_call(router, "q", "first")  # a1 or a2 talks
    free = next(a for a in router.agents.values() if a is not busy)
    router.pause(free.id, "lunch")
    kept = router.enqueue("q", "sticky")
    held = router.hold_for(kept, busy.id)
    other = router.enqueue("q", "other")
    hunting = asyncio.ensure_future(router.next_agents(other))
    await asyncio.sleep(0)
    assert held is not None and not held.done()
    router.call_finished(busy.id, "q")
    assert held.done() and held.result() is True
    assert await router.next_agents(kept) == [busy], "kept for the sticky caller"
    assert not hunting.done(), "the other caller, hunting earlier, did not get them"
    assert router.hold_for(router.enqueue("q", "third"), free.id) is None, "paused: not kept"
    hunting.cancel()


async def test_a_kept_agent_who_goes_on_a_break_lets_the_caller_go_to_anyone() -> None:
    router, _ = make_router({"q": ["a1"]})
    router.login("a1")
    busy = await take_call(router, "q", "first")
    kept = router.enqueue("q", "sticky")
    held = router.hold_for(kept, busy.id)
    assert held is not None
    router.pause(busy.id, "lunch")  # pending while on the call
    router.call_finished(busy.id, "q")
    assert held.done() and held.result() is False
    assert kept.status is EntryStatus.WAITING


async def test_a_queue_removed_with_nobody_in_it_is_forgotten_and_its_agent_serves_the_other() -> (
    None
):
    router, _ = make_router({"sales": ["a"], "vip": ["a"]})
    router.login("a")
    waiting = router.enqueue("vip", "vip-call")
    with pytest.raises(EngineError, match="callers wait in it"):
        router.remove_queue("vip")
    router.leave(waiting)
    router.remove_queue("vip")
    assert router.queue_names() == ["sales"]
    with pytest.raises(UnknownQueue):
        router.remove_queue("vip")
    assert (await take_call(router, "sales", "s-1")).id == "a"


def test_an_agent_removed_logged_out_and_in_no_queue_is_forgotten() -> None:
    router, _ = make_router({"sales": ["a", "b"]})
    router.login("b")
    with pytest.raises(EngineError, match="is logged in"):
        router.remove_agent("b")
    with pytest.raises(EngineError, match="member of sales"):
        router.remove_agent("a")
    router.configure({"sales": QueueRules(members=("b",))})
    router.remove_agent("a")
    assert router.agent_ids() == ["b"]
    with pytest.raises(UnknownAgent):
        router.remove_agent("a")
