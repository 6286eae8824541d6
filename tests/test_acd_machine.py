"""Random call-centre days against the full router: strategies (ringall and random ones
included), skills with levels, penalties and escalation stages, two queues with weights,
delays-free ring failures of every kind, auto-pause, devices in use, leave-when-empty,
callbacks re-keying a caller, rule reloads, logins, pauses and logouts.

Invariants checked after every step: no agent ever holds two calls; nobody paused, logged
out, delayed, on a busy device or lacking the skills is offered a caller; no hunting caller
is left with an idle agent it could be offered; every caller ends in exactly one outcome.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from callcenter.acd.agent import Agent, AgentState
from callcenter.acd.queue import EntryStatus, QueueEntry
from callcenter.acd.router import RingOutcome, Router
from callcenter.acd.rules import QueueRules, Stage
from callcenter.acd.strategies import Strategy
from callcenter.errors import EngineError, IllegalTransition
from callcenter.events import AgentStateChanged, EngineEvent, EventBus

S = AgentState

SKILLS: dict[str, dict[str, int]] = {
    "a0": {"fr": 5},
    "a1": {"fr": 2, "de": 8},
    "a2": {"de": 3},
    "a3": {},
    "a4": {"fr": 9, "de": 9},
}
AGENT_IDS = tuple(SKILLS)
STAGES = (Stage(after=0, max_penalty=0, min_level=5), Stage(after=30, min_level=1))


def q1_rules(strategy: Strategy, leave_when_empty: bool, until_ready: bool = False) -> QueueRules:
    return QueueRules(
        members=("a0", "a1", "a2", "a4"),
        strategy=strategy,
        penalties={"a4": 1},
        stages=STAGES,
        autopause=2,
        leave_when_empty=leave_when_empty,
        weights={"a0": 2.0, "a4": 0.5},
        disposition_required=True,
        wrapup_until_ready=until_ready,
    )


def q2_rules(strategy: Strategy) -> QueueRules:
    return QueueRules(members=("a1", "a2", "a3"), strategy=strategy, weight=5, wrapup=1000.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(eq=False)
class Caller:
    entry: QueueEntry
    origin: str
    task: asyncio.Task[list[Agent]] | None = None
    ringing: list[Agent] = field(default_factory=list)
    talking: Agent | None = None


class AcdMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.bus = EventBus()
        self.bus.subscribe(self._on_event)
        self.bad: list[str] = []
        self.last_state: dict[str, str] = {}
        self.callers: dict[str, Caller] = {}
        self.outcomes: dict[str, list[str]] = {}
        self.revoked: list[QueueEntry | None] = []
        self.preferred: dict[str, str] = {}
        """Call id -> the agent ``Router.prefer`` offered it (stages do not bind them)."""
        self.count = 0
        self.router: Router

    @initialize(
        s1=st.sampled_from(list(Strategy)),
        s2=st.sampled_from(list(Strategy)),
        leave_when_empty=st.booleans(),
        longest_waiting_first=st.booleans(),
        seed=st.integers(0, 1000),
    )
    def build(
        self,
        s1: Strategy,
        s2: Strategy,
        leave_when_empty: bool,
        longest_waiting_first: bool,
        seed: int,
    ) -> None:
        agents = [Agent(id=i, device=f"PJSIP/{i}", skills=dict(SKILLS[i])) for i in AGENT_IDS]
        rules = {"q1": q1_rules(s1, leave_when_empty), "q2": q2_rules(s2)}
        self.router = Router(
            agents,
            {name: list(r.members) for name, r in rules.items()},
            rules=rules,
            bus=self.bus,
            clock=self.clock,
            rng=random.Random(seed),
            longest_waiting_first=longest_waiting_first,
        )
        self.router.on_offer_revoked = lambda entry, agent: self.revoked.append(entry)

    # --------------------------------------------------------------- plumbing

    def _on_event(self, event: EngineEvent) -> None:
        if not isinstance(event, AgentStateChanged):
            return
        self.last_state[event.agent] = event.new
        if event.new != "ringing":
            return
        agent = self.router.agents[event.agent]
        if event.old != "available":
            self.bad.append(f"{event.agent}: {event.old} -> ringing")
        if agent.delayed or agent.device_busy or agent.device_unreachable:
            self.bad.append(f"{event.agent} offered while delayed or on a busy or lost device")

    def _in_loop(self, action: object) -> None:
        async def run() -> None:
            assert callable(action)
            action()
            for _ in range(3):
                await asyncio.sleep(0)

        self.loop.run_until_complete(run())
        self._harvest()

    def _harvest(self) -> None:
        for call_id, caller in list(self.callers.items()):
            task = caller.task
            if task is None or not task.done():
                continue
            caller.task = None
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                assert isinstance(exc, EngineError)
                continue
            agents = task.result()
            if not agents:  # leave-when-empty: the engine sends the caller on
                self.loop.run_until_complete(self._async(lambda c=call_id: self._end(c, "empty")))
                continue
            caller.ringing = list(agents)

    @staticmethod
    async def _async(action: object) -> None:
        assert callable(action)
        action()

    def _hunt(self, caller: Caller) -> None:
        caller.task = self.loop.create_task(self.router.next_agents(caller.entry))

    def _ringing(self) -> list[str]:
        return sorted(cid for cid, c in self.callers.items() if c.ringing)

    def _talking(self) -> list[str]:
        return sorted(cid for cid, c in self.callers.items() if c.talking is not None)

    def _end(self, call_id: str, why: str) -> None:
        caller = self.callers.pop(call_id)
        if caller.talking is not None:
            self.router.call_finished(caller.talking.id, caller.entry.queue, talk_seconds=3)
            return
        if caller.task is not None:
            caller.task.cancel()
        self.router.leave(caller.entry)
        self.outcomes[caller.origin].append(why)

    # --------------------------------------------------------------- callers

    @rule(
        queue=st.sampled_from(["q1", "q2"]),
        priority=st.integers(0, 2),
        skills=st.sampled_from([(), ("fr",), ("de",), ("fr", "de")]),
    )
    def caller_arrives(self, queue: str, priority: int, skills: tuple[str, ...]) -> None:
        self.count += 1
        call_id = f"call-{self.count}"

        def arrive() -> None:
            entry = self.router.enqueue(
                queue, call_id, priority=priority, skills=skills if queue == "q1" else ()
            )
            caller = Caller(entry, origin=call_id)
            self.callers[call_id] = caller
            self.outcomes[call_id] = []
            self._hunt(caller)

        self._in_loop(arrive)

    @rule(
        queue=st.sampled_from(["q1", "q2"]),
        priority=st.integers(0, 2),
        earlier=st.floats(0.5, 60),
        last_agent=st.sampled_from([None, *AGENT_IDS]),
    )
    def caller_comes_back_to_an_earlier_place_or_their_last_agent(
        self, queue: str, priority: int, earlier: float, last_agent: str | None
    ) -> None:
        """A caller who hung up a moment ago takes back their place (resume_abandoned), or
        one who calls again is offered the agent they talked to (last_agent)."""
        self.count += 1
        call_id = f"call-{self.count}"

        def arrive() -> None:
            entry = self.router.enqueue(
                queue, call_id, priority=priority, joined=self.clock.now - earlier
            )
            caller = Caller(entry, origin=call_id)
            self.callers[call_id] = caller
            self.outcomes[call_id] = []
            if last_agent is not None and self.router.prefer(entry, last_agent):
                self.preferred[call_id] = last_agent
            self._hunt(caller)

        self._in_loop(arrive)

    @precondition(lambda self: bool(self._ringing()))
    @rule(data=st.data())
    def an_agent_answers(self, data: st.DataObject) -> None:
        caller = self.callers[data.draw(st.sampled_from(self._ringing()))]
        agent = data.draw(st.sampled_from(caller.ringing))

        def answer() -> None:
            self.router.connected(caller.entry, agent)
            caller.ringing = []
            caller.talking = agent
            self.outcomes[caller.origin].append("answered")

        self._in_loop(answer)

    @precondition(lambda self: bool(self._ringing()))
    @rule(data=st.data(), outcome=st.sampled_from(list(RingOutcome)))
    def nobody_answers(self, data: st.DataObject, outcome: RingOutcome) -> None:
        caller = self.callers[data.draw(st.sampled_from(self._ringing()))]

        def fail() -> None:
            for agent in caller.ringing:
                self.router.ring_failed(caller.entry, agent, outcome)
            caller.ringing = []
            self._hunt(caller)

        self._in_loop(fail)

    @precondition(lambda self: bool(self._ringing()))
    @rule(data=st.data())
    def one_more_agent_rings(self, data: st.DataObject) -> None:
        caller = self.callers[data.draw(st.sampled_from(self._ringing()))]

        def more() -> None:
            agent = self.router.offer_more(caller.entry)
            if agent is not None:
                caller.ringing.append(agent)

        self._in_loop(more)

    @precondition(lambda self: bool(self.callers))
    @rule(data=st.data(), why=st.sampled_from(["abandoned", "timeout", "exit-key"]))
    def caller_leaves(self, data: st.DataObject, why: str) -> None:
        call_id = data.draw(st.sampled_from(sorted(self.callers)))
        self._in_loop(lambda: self._end(call_id, why))

    @precondition(lambda self: bool(self._talking()))
    @rule(data=st.data())
    def call_ends(self, data: st.DataObject) -> None:
        call_id = data.draw(st.sampled_from(self._talking()))
        self._in_loop(lambda: self._end(call_id, "done"))

    @precondition(lambda self: any(c.task is not None for c in self.callers.values()))
    @rule(data=st.data())
    def engine_stops_waiting_then_asks_again(self, data: st.DataObject) -> None:
        hunting = sorted(cid for cid, c in self.callers.items() if c.task is not None)
        caller = self.callers[data.draw(st.sampled_from(hunting))]

        def stop() -> None:
            assert caller.task is not None
            caller.task.cancel()

        self._in_loop(stop)
        if caller.entry.status is EntryStatus.WAITING:
            self._in_loop(lambda: self._hunt(caller))

    @precondition(lambda self: bool(self.callers))
    @rule(data=st.data())
    def time_passes_and_a_caller_escalates(self, data: st.DataObject) -> None:
        caller = self.callers[data.draw(st.sampled_from(sorted(self.callers)))]
        self.clock.now += 30
        self._in_loop(lambda: self.router.escalate(caller.entry))

    @precondition(lambda self: any(not c.ringing and not c.talking for c in self.callers.values()))
    @rule(data=st.data())
    def caller_is_called_back_on_a_new_call(self, data: st.DataObject) -> None:
        waiting = sorted(
            cid for cid, c in self.callers.items() if not c.ringing and c.talking is None
        )
        old = data.draw(st.sampled_from(waiting))

        def rekey() -> None:
            caller = self.callers.pop(old)
            new = f"{old}-cb"
            self.router.rebind(caller.entry, new)
            self.callers[new] = caller

        self._in_loop(rekey)

    # --------------------------------------------------------------- agents

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def login(self, agent_id: str) -> None:
        def go() -> None:
            if self.router.agents[agent_id].state is S.LOGGED_OUT:
                self.router.login(agent_id)

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def logout(self, agent_id: str) -> None:
        def go() -> None:
            agent = self.router.agents[agent_id]
            if agent.state is S.LOGGED_OUT:
                with pytest.raises(IllegalTransition):
                    self.router.logout(agent_id)
                return
            self.router.logout(agent_id)
            for caller in self.callers.values():
                if agent in caller.ringing:
                    caller.ringing.remove(agent)
            for entry in self.revoked:
                assert entry is not None
                caller = next(c for c in self.callers.values() if c.entry is entry)
                assert not caller.ringing
                self._hunt(caller)
            self.revoked.clear()

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS), reason=st.sampled_from(["lunch", "break"]))
    def pause(self, agent_id: str, reason: str) -> None:
        def go() -> None:
            if self.router.agents[agent_id].state is not S.LOGGED_OUT:
                self.router.pause(agent_id, reason)

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def unpause(self, agent_id: str) -> None:
        def go() -> None:
            agent = self.router.agents[agent_id]
            if agent.state is S.PAUSED or agent.pending_pause is not None:
                self.router.unpause(agent_id)

        self._in_loop(go)

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def wrap_up_ends(self, agent_id: str) -> None:
        agent = self.router.agents[agent_id]
        if agent.state is S.WRAP_UP and not agent.owes_disposition:
            self._in_loop(lambda: self.router.end_wrapup(agent_id))

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def agent_gives_the_last_call_a_code(self, agent_id: str) -> None:
        self._in_loop(lambda: self.router.disposed(agent_id))

    @rule(agent_id=st.sampled_from(AGENT_IDS), in_use=st.booleans(), reachable=st.booleans())
    def device_state_changes(self, agent_id: str, in_use: bool, reachable: bool) -> None:
        self._in_loop(
            lambda: self.router.device_state(
                f"PJSIP/{agent_id}", in_use=in_use, reachable=reachable
            )
        )

    @rule(
        s1=st.sampled_from(list(Strategy)),
        leave_when_empty=st.booleans(),
        until_ready=st.booleans(),
    )
    def rules_reloaded(self, s1: Strategy, leave_when_empty: bool, until_ready: bool) -> None:
        self._in_loop(
            lambda: self.router.configure({"q1": q1_rules(s1, leave_when_empty, until_ready)})
        )

    # --------------------------------------------------------------- invariants

    @invariant()
    def no_agent_holds_two_calls(self) -> None:
        holders: dict[str, str] = {}
        for call_id, caller in self.callers.items():
            held = list(caller.entry.agents) if caller.entry.status is EntryStatus.OFFERED else []
            held += [caller.talking] if caller.talking is not None else []
            for agent in held:
                assert agent.id not in holders, f"{agent.id} holds {holders[agent.id]}, {call_id}"
                holders[agent.id] = call_id
        for agent_id, agent in self.router.agents.items():
            if agent.state in (S.RINGING, S.ON_CALL):
                assert agent_id in holders, f"{agent_id} is {agent.state} for nobody"
                assert agent.call_id == holders[agent_id]
            else:
                assert agent_id not in holders, f"{agent_id} holds a call while {agent.state}"

    @invariant()
    def an_agent_who_owes_a_code_takes_no_call(self) -> None:
        for agent_id, agent in self.router.agents.items():
            if agent.owes_disposition:
                assert agent.state in (S.WRAP_UP, S.PAUSED), f"{agent_id} is {agent.state}"

    @invariant()
    def offers_go_only_to_ready_agents_with_the_skills(self) -> None:
        assert self.bad == []
        for caller in self.callers.values():
            entry = caller.entry
            if entry.status is not EntryStatus.OFFERED:
                continue
            rules = self.router.rules(entry.queue)
            stage = rules.stages[min(entry.stage, len(rules.stages) - 1)]
            for agent in entry.agents:
                assert agent.state is S.RINGING
                if self.preferred.get(entry.call_id) == agent.id:
                    # Their last agent: any penalty, the skills of the last stage.
                    final = rules.stages[-1]
                    assert all(agent.skills.get(s, 0) >= final.min_level for s in entry.skills)
                    continue
                penalty = rules.penalties.get(agent.id, 0)
                assert stage.max_penalty is None or penalty <= stage.max_penalty
                assert all(agent.skills.get(s, 0) >= stage.min_level for s in entry.skills)

    @invariant()
    def no_hunting_caller_is_left_with_an_idle_agent_it_could_take(self) -> None:
        for caller in self.callers.values():
            entry = caller.entry
            if entry.status is not EntryStatus.HUNTING:
                continue
            rules = self.router.rules(entry.queue)
            stage = rules.stages[min(entry.stage, len(rules.stages) - 1)]
            if rules.leave_when_empty:
                assert not self.router.is_empty_for(entry), "an empty queue keeps a hunter"
            for agent_id in rules.members:
                agent = self.router.agents[agent_id]
                ready = (
                    agent.state is S.AVAILABLE
                    and not agent.delayed
                    and not agent.device_unreachable
                    and (rules.ring_in_use or not agent.device_busy)
                )
                fits = (
                    stage.max_penalty is None
                    or rules.penalties.get(agent_id, 0) <= stage.max_penalty
                ) and all(agent.skills.get(s, 0) >= stage.min_level for s in entry.skills)
                assert not (ready and fits), f"{entry.call_id} hunts while {agent_id} is idle"

    @invariant()
    def a_queue_is_staffed_exactly_while_someone_logged_in_and_reachable_could_serve_it(
        self,
    ) -> None:
        for name in ("q1", "q2"):
            rules = self.router.rules(name)
            final = rules.stages[-1]
            agents = [self.router.agents[m] for m in rules.members]
            expected = any(
                agent.state not in (S.LOGGED_OUT, S.PAUSED)
                and not agent.device_unreachable
                and (
                    final.max_penalty is None
                    or rules.penalties.get(agent.id, 0) <= final.max_penalty
                )
                and all(agent.skills.get(s, 0) >= final.min_level for s in rules.skills)
                for agent in agents
            )
            assert self.router.has_agents_for(name) == expected, name

    @invariant()
    def each_caller_has_at_most_one_outcome_and_counts_match(self) -> None:
        for outcomes in self.outcomes.values():
            assert len(outcomes) <= 1, outcomes
        for queue in ("q1", "q2"):
            expected = sum(
                1 for c in self.callers.values() if c.entry.queue == queue and c.talking is None
            )
            assert self.router.waiting(queue) == expected

    @invariant()
    def positions_count_the_callers_ahead_in_queue_order(self) -> None:
        for queue in ("q1", "q2"):
            waiting = sorted(
                (
                    c.entry
                    for c in self.callers.values()
                    if c.entry.queue == queue and c.talking is None
                ),
                key=lambda e: e.key,
            )
            positions = [self.router.position(e) for e in waiting]
            assert positions == list(range(1, len(waiting) + 1)), (queue, positions)

    @invariant()
    def published_states_match_the_agents(self) -> None:
        for agent_id, agent in self.router.agents.items():
            assert self.last_state.get(agent_id, "logged_out") == agent.state.value

    def teardown(self) -> None:
        try:
            while self.callers:
                call_id = min(self.callers)
                self._in_loop(lambda call_id=call_id: self._end(call_id, "abandoned"))
            for agent_id, agent in self.router.agents.items():
                if agent.state is S.WRAP_UP:
                    self._in_loop(lambda agent_id=agent_id: self.router.disposed(agent_id))
                if agent.state is S.WRAP_UP:
                    self._in_loop(lambda agent_id=agent_id: self.router.end_wrapup(agent_id))
                assert agent.state in (S.LOGGED_OUT, S.AVAILABLE, S.PAUSED), (
                    f"{agent_id} stuck in {agent.state}"
                )
                assert agent.call_id is None
            for call_id, outcomes in self.outcomes.items():
                assert len(outcomes) == 1, f"{call_id}: {outcomes}"
            assert self.router.waiting("q1") == self.router.waiting("q2") == 0
        finally:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()


AcdMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=45,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRandomDaysWithSkillsAndStrategies = AcdMachine.TestCase
