"""A call queue as data: who waits (in order), which members are idle (in strategy order).

Both sides are indexed, so a queue with 10,000 callers and 5,000 members costs O(log n) per
arrival, offer or agent release, never a scan:

* callers hunting for an agent sit in one heap per *class*, a class being the skills they
  need and their escalation stage, keyed ``(-priority, joined - head_start, seq)``. An
  entry that stops hunting or moves to another class stays in its old heap and is skipped
  when it reaches the top (its ``status`` or heap version no longer match);
* idle members sit in one :class:`~callcenter.acd.strategies.IdleIndex` per class: the
  agents that class may be offered, ordered by penalty then the queue's strategy. Which
  members fit which class is worked out once, when the class first appears; an agent that
  becomes ready is pushed into the indexes of its classes (a handful per queue).
* positions (for announcements, events) come from one Fenwick tree of arrivals per
  priority level: O(log n + priority levels) instead of counting.

Heaps are rebuilt when stale items outnumber live ones, which keeps memory bounded.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import random
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from callcenter.acd.agent import Agent, AgentState
from callcenter.acd.rules import QueueRules
from callcenter.acd.strategies import (
    MULTI_RING,
    SAMPLED,
    Fenwick,
    IdleIndex,
    Member,
    RoundRobin,
    Strategy,
    parse_strategy,
    strategy_key,
)
from callcenter.errors import EngineError, IllegalTransition

HANDLE_TIME_SAMPLES = 20
"""Recent calls whose handle time (talk + wrap-up) feeds the estimated wait time."""


class EntryStatus(enum.StrEnum):
    """Where a caller stands in a queue."""

    WAITING = "waiting"
    """In the queue; nobody is currently asking the router for an agent for it."""
    HUNTING = "hunting"
    """``Router.next_agents`` is waiting for an agent for it."""
    OFFERED = "offered"
    """One or more agents are reserved (RINGING) for it."""
    CONNECTED = "connected"
    """An agent answered: the caller left the queue (terminal)."""
    LEFT = "left"
    """The caller hung up, timed out or went elsewhere (terminal)."""


_E = EntryStatus

ENTRY_TRANSITIONS: Mapping[EntryStatus, frozenset[EntryStatus]] = MappingProxyType(
    {
        _E.WAITING: frozenset({_E.HUNTING, _E.LEFT, _E.CONNECTED}),
        _E.HUNTING: frozenset({_E.WAITING, _E.OFFERED, _E.LEFT}),
        _E.OFFERED: frozenset({_E.WAITING, _E.CONNECTED, _E.LEFT}),
        _E.CONNECTED: frozenset(),
        _E.LEFT: frozenset(),
    }
)
"""Legal moves of a queue entry. WAITING -> CONNECTED exists for one race only: an agent
answers a ring whose offer was revoked (the agent logged out meanwhile)."""


@dataclass(eq=False)
class QueueEntry:
    """One caller waiting in one queue (identity-compared)."""

    call_id: str
    queue: str
    priority: int
    joined: float
    """Monotonic time the caller joined."""
    seq: int
    """Arrival order, the last tie-break."""
    skills: frozenset[str] = frozenset()
    """Skills an agent needs to take the caller (the queue's and the IVR's)."""
    stage: int = 0
    """Index of the escalation stage reached (see :class:`~callcenter.acd.rules.Stage`)."""
    tried: set[str] = field(default_factory=set)
    """Agents offered this call who did not take it in the current round."""
    offer: asyncio.Future[list[Agent]] | None = None
    """Set while ``Router.next_agents`` is waiting for an agent for this caller."""
    status: EntryStatus = EntryStatus.WAITING
    agents: list[Agent] = field(default_factory=list)
    """The agents reserved for (RINGING) this caller, or the one it is connected to."""
    revoked: bool = False
    """True when the reserved agent logged out while ringing: the engine should abort that
    dial and ask ``next_agents`` again (reset by the next ``next_agents``)."""
    callback: str | None = None
    """The number to call back: the caller hung up and keeps their place."""
    campaign: str | None = None
    """Set for a campaign's dial waiting for an agent (no caller is on the line yet)."""
    dialled_by: str = ""
    """The agent whose own outbound call this is (:mod:`callcenter.outbound.manual`): they
    are reserved for it from the start."""
    device: str = ""
    """What to dial for ``dialled_by`` instead of their device (the room their own leg
    waits in); "" for their device."""
    heap_version: int = field(default=0, repr=False)
    rank: int = field(default=-1, repr=False)
    klass: HuntClass | None = field(default=None, repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    head_start: float = 0.0
    """Seconds the caller is served as if they had waited longer (mod_callcenter's
    cc_base_score): their place among callers of the same priority, not their wait."""
    key: tuple[int, float, int] = field(init=False, repr=False)
    """Queue order: higher priority first, then earlier arrival."""

    def __post_init__(self) -> None:
        self.key = (-self.priority, self.joined - self.head_start, self.seq)

    @property
    def order(self) -> float:
        """Where the caller stands among those of its priority: its join time, less its
        head start."""
        return self.key[1]

    @property
    def agent(self) -> Agent | None:
        """The first reserved (or the connected) agent, or None."""
        return self.agents[0] if self.agents else None

    def move(self, new: EntryStatus) -> EntryStatus:
        """Go to ``new`` if ENTRY_TRANSITIONS allows it; returns the previous status."""
        old = self.status
        if new not in ENTRY_TRANSITIONS[old]:
            raise IllegalTransition(f"call {self.call_id} in {self.queue}: cannot go {old}->{new}")
        self.status = new
        return old


_HuntItem = tuple[int, float, int, int, QueueEntry]  # (-priority, order, seq, version, entry)


class HuntClass:
    """Callers of one queue who need the same skills and reached the same stage, and the
    idle agents they may be offered."""

    __slots__ = ("_heap", "final", "idle", "members", "present", "skills", "stage")

    def __init__(
        self, skills: frozenset[str], stage: int, members: list[Member], sampled: bool, size: int
    ) -> None:
        self.skills = skills
        self.stage = stage
        self.members = members
        """Members that may take these callers (penalty and levels allowed at this stage)."""
        self.present = 0
        """Of those, how many are logged in and not paused."""
        self.final: HuntClass = self
        """The class of the same skills at the last stage (who could ever take them)."""
        self.idle = IdleIndex(size, sampled)
        self.idle.eligible = len(members)
        self._heap: list[_HuntItem] = []

    def push(self, entry: QueueEntry) -> None:
        entry.heap_version += 1
        entry.klass = self
        heapq.heappush(
            self._heap, (-entry.priority, entry.order, entry.seq, entry.heap_version, entry)
        )

    def head(self) -> QueueEntry | None:
        heap = self._heap
        while heap:
            item = heap[0]
            entry = item[4]
            if (
                entry.status is EntryStatus.HUNTING
                and entry.heap_version == item[3]
                and entry.klass is self
            ):
                return entry
            heapq.heappop(heap)
        return None

    def hunting(self) -> list[QueueEntry]:
        """Every hunting entry of the class (O(n); leave-when-empty, rebuilds)."""
        return [item[4] for item in self._heap if self._live(item)]

    def compact(self, live_entries: int) -> None:
        if len(self._heap) > 2 * live_entries + 16:
            self._heap = [item for item in self._heap if self._live(item)]
            heapq.heapify(self._heap)

    def _live(self, item: _HuntItem) -> bool:
        entry = item[4]
        return (
            entry.status is EntryStatus.HUNTING
            and entry.heap_version == item[3]
            and entry.klass is self
        )


class _Ranks:
    """Positions of callers: by priority (higher first), then by arrival, in O(log n).

    Each priority level numbers its callers in arrival order and keeps a Fenwick tree of
    who is still there; a position is the callers of higher levels plus those of the same
    level who arrived before. Trees grow by appending (O(log n)) and are rebuilt, dropping
    the slots of callers gone, when those outnumber the living four to one. A caller who
    keeps an earlier place (taken back after hanging up, or after a restart) is numbered
    in by rebuilding their level (O(n log n), rare).
    """

    def __init__(self) -> None:
        self._levels: dict[int, Fenwick] = {}
        self._latest: dict[int, float] = {}

    def add(self, entry: QueueEntry, entries: Mapping[str, QueueEntry]) -> None:
        """Number ``entry`` (already in ``entries``) at its place by arrival."""
        tree = self._levels.get(entry.priority)
        if tree is None:
            tree = self._levels[entry.priority] = Fenwick(0)
        latest = self._latest.get(entry.priority)
        if latest is not None and entry.order < latest and tree.total:
            self._rebuild(entry.priority, entries)
            return
        self._latest[entry.priority] = entry.order
        entry.rank = tree.size
        tree.append(1)

    def remove(self, entry: QueueEntry, entries: Mapping[str, QueueEntry]) -> None:
        tree = self._levels.get(entry.priority)
        if tree is None or not 0 <= entry.rank < tree.size or not tree.value(entry.rank):
            return
        tree.set(entry.rank, 0)
        if tree.size > 4 * tree.total + 1024:
            self._rebuild(entry.priority, entries)

    def position(self, entry: QueueEntry) -> int:
        ahead = sum(tree.total for p, tree in self._levels.items() if p > entry.priority)
        return ahead + self._levels[entry.priority].prefix(entry.rank)

    def _rebuild(self, priority: int, entries: Mapping[str, QueueEntry]) -> None:
        """Renumber the callers still waiting at ``priority`` from 0 (O(n log n), rare)."""
        level = sorted(
            (e for e in entries.values() if e.priority == priority),
            key=lambda e: (e.order, e.seq),
        )
        tree = self._levels[priority] = Fenwick(0)
        for entry in level:
            entry.rank = tree.size
            tree.append(1)
        if level:
            self._latest[priority] = level[-1].order


class CallQueue:
    """Callers waiting in one queue and the idle members that could take them.

    Built empty (longest-idle-agent, every member penalty 0, no skills); the router calls
    :meth:`build` with the queue's :class:`~callcenter.acd.rules.QueueRules`.
    """

    def __init__(self, name: str, members: Sequence[str], strategy: str = "longest-idle") -> None:
        self.name = name
        self.members: tuple[str, ...] = tuple(dict.fromkeys(members))
        self.rules = QueueRules(members=self.members, strategy=parse_strategy(strategy))
        self.strategy: Strategy = self.rules.strategy
        self.rr = RoundRobin()
        self.present = 0
        """Members logged in and not paused."""
        self.handle_times: deque[float] = deque(maxlen=HANDLE_TIME_SAMPLES)
        """Handle times (talk + wrap-up) of the queue's most recent calls, in seconds."""
        self.by_agent: dict[str, Member] = {}
        self._classes: dict[tuple[frozenset[str], int], HuntClass] = {}
        self._agent_classes: dict[str, list[HuntClass]] = {}
        self._entries: dict[str, QueueEntry] = {}
        self._ranks = _Ranks()

    # ------------------------------------------------------------------ configuration

    def build(self, rules: QueueRules, agents: Mapping[str, Agent]) -> None:
        """(Re)build members and forget the classes; hunting callers must be pushed again by
        the caller (the router). Idle members are found again as classes are created."""
        old = self.by_agent
        self.rules = rules
        self.members = tuple(dict.fromkeys(rules.members))
        self.strategy = parse_strategy(str(rules.strategy))
        self.by_agent = {}
        for order, agent_id in enumerate(self.members):
            previous = old.get(agent_id)
            self.by_agent[agent_id] = Member(
                agent=agents[agent_id],
                order=order,
                penalty=rules.penalties.get(agent_id, 0),
                weight=max(1, round(rules.weights.get(agent_id, 1.0) * 1000)),
                calls=previous.calls if previous is not None else 0,
                last_call=previous.last_call if previous is not None else float("-inf"),
            )
        self._classes = {}
        self._agent_classes = {agent_id: [] for agent_id in self.members}
        self.present = sum(1 for m in self.by_agent.values() if _present(m.agent))

    def ready(self, agent: Agent) -> bool:
        """May ``agent`` be offered this queue's callers right now?"""
        return (
            agent.state is AgentState.AVAILABLE
            and not agent.delayed
            and not agent.device_unreachable
            and (self.rules.ring_in_use or not agent.device_busy)
        )

    def klass(self, skills: frozenset[str], stage: int) -> HuntClass:
        """The class of callers needing ``skills`` at ``stage`` (created on first use: O(n)
        over the members, once)."""
        stages = self.rules.stages
        stage = min(stage, len(stages) - 1)
        found = self._classes.get((skills, stage))
        if found is not None:
            return found
        step = stages[stage]
        members = [
            m
            for m in self.by_agent.values()
            if (step.max_penalty is None or m.penalty <= step.max_penalty)
            and all(m.agent.skills.get(skill, 0) >= step.min_level for skill in skills)
        ]
        created = HuntClass(skills, stage, members, self.strategy in SAMPLED, len(self.members))
        self._classes[(skills, stage)] = created
        for member in members:
            self._agent_classes[member.agent.id].append(created)
            if _present(member.agent):
                created.present += 1
            if self.ready(member.agent):
                created.idle.push(member, strategy_key(self.strategy, member, self.rr))
        if stage < len(stages) - 1:
            created.final = self.klass(skills, len(stages) - 1)
        return created

    def classes(self) -> list[HuntClass]:
        return list(self._classes.values())

    def presence(self, agent: Agent, step: int) -> list[HuntClass]:
        """``agent`` came (+1) or went (-1): logged in, unpaused and reachable or not.
        Returns the classes left with nobody present."""
        self.present += step
        emptied = []
        for klass in self._agent_classes.get(agent.id, ()):
            klass.present += step
            if not klass.present:
                emptied.append(klass)
        return emptied

    # ------------------------------------------------------------------ callers

    def __len__(self) -> int:
        """Callers in the queue: waiting, hunting or being offered an agent."""
        return len(self._entries)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._entries

    def entries(self) -> list[QueueEntry]:
        """Callers in queue order (O(n log n); for reports and tests)."""
        return sorted(self._entries.values(), key=lambda e: e.key)

    def entries_unordered(self) -> list[QueueEntry]:
        """Callers in no particular order (O(n))."""
        return list(self._entries.values())

    def add(self, entry: QueueEntry) -> None:
        if entry.call_id in self._entries:
            raise EngineError(f"call {entry.call_id} is already waiting in queue {self.name}")
        self._entries[entry.call_id] = entry
        self._ranks.add(entry, self._entries)

    def remove(self, entry: QueueEntry) -> None:
        """Forget a caller that connected or left (its heap item goes stale by status)."""
        if self._entries.get(entry.call_id) is entry:
            del self._entries[entry.call_id]
            self._ranks.remove(entry, self._entries)

    def find(self, call_id: str) -> QueueEntry | None:
        """The caller ``call_id`` if it waits in this queue."""
        return self._entries.get(call_id)

    def reprioritise(self, entry: QueueEntry, priority: int) -> None:
        """Give a caller in this queue another priority: its place among callers of its new
        level is by arrival, as if it had joined with that priority."""
        if self._entries.get(entry.call_id) is not entry:
            raise EngineError(f"call {entry.call_id} is not waiting in queue {self.name}")
        self._ranks.remove(entry, self._entries)
        entry.priority = priority
        entry.key = (-priority, entry.joined - entry.head_start, entry.seq)
        self._ranks.add(entry, self._entries)
        if entry.status is EntryStatus.HUNTING and entry.klass is not None:
            entry.klass.push(entry)  # the old heap item goes stale by its version

    def rekey(self, entry: QueueEntry, call_id: str) -> None:
        """The caller is now on another call (a callback): keep its place under a new id."""
        if self._entries.get(entry.call_id) is entry:
            del self._entries[entry.call_id]
        if call_id in self._entries:
            raise EngineError(f"call {call_id} is already waiting in queue {self.name}")
        entry.call_id = call_id
        self._entries[call_id] = entry

    def position(self, call_id: str) -> int:
        """1-based place of the caller in queue order; 0 when it is not in the queue."""
        entry = self._entries.get(call_id)
        if entry is None:
            return 0
        return self._ranks.position(entry)

    def oldest_joined(self) -> float | None:
        """When the longest-waiting caller joined (O(n); for status)."""
        return min((e.joined for e in self._entries.values()), default=None)

    def push_hunting(self, entry: QueueEntry) -> HuntClass:
        """Put a HUNTING entry in line for an idle member of its class."""
        klass = self.klass(entry.skills, entry.stage)
        klass.push(entry)
        klass.compact(len(self._entries))
        return klass

    def head(self) -> QueueEntry | None:
        """The hunting caller first in queue order, whatever its class, or None."""
        best: QueueEntry | None = None
        for klass in self._classes.values():
            head = klass.head()
            if head is not None and (best is None or head.key < best.key):
                best = head
        return best

    def head_for(self, member: Member) -> QueueEntry | None:
        """The best hunting caller ``member`` may take (O(its classes x log n))."""
        best: QueueEntry | None = None
        for klass in self._agent_classes.get(member.agent.id, ()):
            if not klass._heap:
                continue
            head = klass.head()
            if head is not None and (best is None or head.key < best.key):
                best = head
        return best

    # ------------------------------------------------------------------ idle members

    def push_idle(self, agent: Agent) -> None:
        """``agent`` (a member, ready) may be offered callers of its classes from now."""
        member = self.by_agent[agent.id]
        key = strategy_key(self.strategy, member, self.rr)
        for klass in self._agent_classes.get(agent.id, ()):
            klass.idle.push(member, key)

    def has_idle(self) -> bool:
        """Is any member ready (O(n); for tests and status)?"""
        return any(self.ready(m.agent) for m in self.by_agent.values())

    def pick(self, klass: HuntClass, tried: Collection[str], rng: random.Random) -> list[Agent]:
        """The agent(s) the strategy offers a caller of ``klass`` next, not in ``tried``
        (empty when none is idle). Nothing is reserved."""
        if self.strategy in MULTI_RING:
            return klass.idle.lowest(tried)
        best = klass.idle.best(tried, rng)
        return [best[1]] if best is not None else []

    def offered(self, agent: Agent) -> None:
        """``agent`` was reserved for a caller: round-robin memory moves past it."""
        if self.strategy in (Strategy.RR_MEMORY, Strategy.RR_ORDERED):
            member = self.by_agent.get(agent.id)
            if member is not None:
                self.rr.offered(self.rr.key(member.order))

    def idle_members(self) -> list[str]:
        """Ids of ready members in the order they would be offered (O(n log n); status)."""
        ready = [m for m in self.by_agent.values() if self.ready(m.agent)]
        ready.sort(key=lambda m: (m.penalty, strategy_key(self.strategy, m, self.rr)))
        return [m.agent.id for m in ready]

    def idle_count(self, klass: HuntClass) -> int:
        """Ready members of those who may take ``klass``'s callers: O(members)."""
        return sum(1 for m in klass.members if self.ready(m.agent))

    def has_agents_for(self, skills: frozenset[str]) -> bool:
        """Is a member who could ever take a caller needing ``skills`` logged in, not
        paused and on a reachable phone? O(1) once the class exists."""
        return self.klass(skills, len(self.rules.stages) - 1).present > 0

    def estimated_wait(self, call_id: str) -> float | None:
        """Seconds the caller may still wait: ``max(0, position - idle) * AHT / staffed``.

        AHT is the mean handle time (talk + wrap-up) of the queue's last
        ``HANDLE_TIME_SAMPLES`` calls; staffed is the members logged in and not paused;
        idle those of them ready for a call now. With every one busy, a call ends every
        ``AHT / staffed`` seconds on average (the memoryless handle times Erlang C assumes,
        as ``callcenter staffing`` does), so the first in line waits that long, not a whole
        handle time. None before the queue has handled a call (nothing to estimate from) or
        without staff.
        """
        position = self.position(call_id)
        return self.wait_at(position) if position else None

    def wait_at(self, position: int) -> float | None:
        """Seconds a caller at ``position`` may still wait (see :meth:`estimated_wait`):
        O(members)."""
        if not self.handle_times or not self.present:
            return None
        aht = sum(self.handle_times) / len(self.handle_times)
        idle = sum(1 for m in self.by_agent.values() if self.ready(m.agent))
        return max(0, position - idle) * aht / self.present


def _present(agent: Agent) -> bool:
    # An agent whose phone is not registered cannot take a call any more than one on a
    # pause: app_queue's joinempty/leavewhenempty "unavailable".
    return (
        agent.state not in (AgentState.LOGGED_OUT, AgentState.PAUSED)
        and not agent.device_unreachable
    )
