"""Routing strategies: in which order a queue offers a caller its idle agents.

Every strategy of Asterisk's app_queue and FreeSWITCH's mod_callcenter, by its name here
(aliases in :data:`ALIASES`):

==================== =====================================================================
ringall              every eligible idle agent rings at once; the first to answer wins
longest-idle-agent   the agent idle the longest (since login, unpause or their last call)
leastrecent          the agent whose last call *in this queue* ended the longest ago
                     (never had one: first), as app_queue's leastrecent
rrmemory, rrordered  round robin in member order, resuming after the last agent offered a
                     call; an agent who let it ring goes to the back of the round
fewest-calls         the agent who answered the fewest calls of this queue
least-talk-time      the agent with the least talk time since start-up
linear, top-down     always from the top of the member list
random               uniformly at random
weighted-random      at random, in proportion to each member's weight
ring-progressively   top-down, and every ``progressive_interval`` seconds one more agent
                     joins the agents already ringing
==================== =====================================================================

Ties are broken by member order (the order of the queue's ``agents`` list), so every order is
reproducible. rrmemory and rrordered are the same here: members are always kept in config
order (in app_queue they differ only for dynamic members, whose order Asterisk does not keep).

A lower penalty always wins; the strategy chooses inside the lowest penalty that has an
idle agent. Each class of callers (same skills needed, same escalation stage) keeps an
:class:`IdleIndex` of the idle agents it may be offered: a binary heap keyed by (penalty,
strategy key) with lazy deletion by ``idle_token``, or for the random strategies one Fenwick
tree of weights per penalty, sampled in O(log n) (stale slots are zeroed when drawn). A
choice costs O(log n) for n idle agents, never a scan.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import random
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from callcenter.acd.agent import Agent, AgentState


class Strategy(enum.StrEnum):
    """How a queue chooses among its idle agents (see the module docs)."""

    RINGALL = "ringall"
    LONGEST_IDLE = "longest-idle-agent"
    LEAST_RECENT = "leastrecent"
    RR_MEMORY = "rrmemory"
    RR_ORDERED = "rrordered"
    FEWEST_CALLS = "fewest-calls"
    LEAST_TALK_TIME = "least-talk-time"
    LINEAR = "linear"
    TOP_DOWN = "top-down"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted-random"
    RING_PROGRESSIVELY = "ring-progressively"


ALIASES: Mapping[str, Strategy] = MappingProxyType(
    {
        "ring-all": Strategy.RINGALL,
        "longest-idle": Strategy.LONGEST_IDLE,
        "round-robin": Strategy.RR_MEMORY,
        "fewestcalls": Strategy.FEWEST_CALLS,
        "agent-with-fewest-calls": Strategy.FEWEST_CALLS,
        "agent-with-least-talk-time": Strategy.LEAST_TALK_TIME,
        "wrandom": Strategy.WEIGHTED_RANDOM,
    }
)
"""Other names ops know (app_queue, mod_callcenter) for the same strategies."""

SAMPLED = frozenset({Strategy.RANDOM, Strategy.WEIGHTED_RANDOM})
"""Strategies that draw at random instead of keeping a heap."""

MULTI_RING = frozenset({Strategy.RINGALL})
"""Strategies that reserve every eligible idle agent of the best penalty at once."""


def parse_strategy(name: str) -> Strategy:
    """The strategy called ``name`` (an alias works too); ValueError for anything else."""
    alias = ALIASES.get(name)
    return alias if alias is not None else Strategy(name)


@dataclass(eq=False, slots=True)
class Member:
    """An agent as a member of one queue: its place, penalty and per-queue counters."""

    agent: Agent
    order: int
    """Place in the queue's member list (0 first): the tie-break of every strategy."""
    penalty: int = 0
    weight: int = 1000
    """Weight for weighted-random, in thousandths (1.0 -> 1000)."""
    calls: int = 0
    """Calls of this queue the agent answered (fewest-calls)."""
    last_call: float = float("-inf")
    """When the agent's last call of this queue ended (leastrecent)."""


class RoundRobin:
    """The memory of rrmemory: where the last offer of a queue left off.

    An agent's key is ``(cycle, order)``: members at or after the resume point belong to the
    current cycle, the others to the next one, so a heap gives "next after the last offered".
    """

    __slots__ = ("cycle", "next_order")

    def __init__(self) -> None:
        self.cycle = 0
        self.next_order = 0

    def key(self, order: int) -> tuple[int, int]:
        return (self.cycle, order) if order >= self.next_order else (self.cycle + 1, order)

    def offered(self, key: tuple[float, ...]) -> None:
        self.cycle, self.next_order = int(key[0]), int(key[1]) + 1


def strategy_key(strategy: Strategy, member: Member, rr: RoundRobin) -> tuple[float, ...]:
    """The key of an idle ``member`` within its penalty: lower is offered first."""
    agent = member.agent
    if strategy is Strategy.LONGEST_IDLE:
        return (agent.idle_since, member.order)
    if strategy is Strategy.LEAST_RECENT:
        return (member.last_call, member.order)
    if strategy is Strategy.FEWEST_CALLS:
        return (member.calls, member.order)
    if strategy is Strategy.LEAST_TALK_TIME:
        return (agent.talk_seconds, member.order)
    if strategy in (Strategy.RR_MEMORY, Strategy.RR_ORDERED):
        return rr.key(member.order)
    return (member.order,)


def live(agent: Agent, token: int) -> bool:
    """True while an idle entry pushed with ``token`` still stands for a ready agent."""
    return agent.idle_token == token and agent.state is AgentState.AVAILABLE


_HeapItem = tuple[int, tuple[float, ...], int, int, Agent]  # penalty, key, push no, token, agent


class IdleIndex:
    """The idle agents one class of callers may be offered, in offer order: lowest penalty
    first, then the strategy's key (a heap), or for the random strategies one Fenwick tree
    of weights per penalty (slots are member places). Entries are never removed eagerly:
    an agent that stops being ready bumps its ``idle_token``, which makes them stale.
    """

    def __init__(self, members: int, sampled: bool) -> None:
        self.eligible = 0
        """Members this class may be offered (bounds the heap before a rebuild)."""
        self._heap: list[_HeapItem] = []
        self._order = itertools.count()
        self._members = members
        self._sampled = sampled
        self._trees: dict[int, Fenwick] = {}
        self._slots: dict[int, tuple[Member, int]] = {}  # place -> (member, token)

    def push(self, member: Member, key: tuple[float, ...]) -> None:
        """``member`` is ready now (its agent's current ``idle_token`` marks the entry)."""
        agent = member.agent
        if self._sampled:
            tree = self._trees.get(member.penalty)
            if tree is None:
                tree = self._trees[member.penalty] = Fenwick(self._members)
            self._slots[member.order] = (member, agent.idle_token)
            tree.set(member.order, member.weight)
            return
        heapq.heappush(
            self._heap, (member.penalty, key, next(self._order), agent.idle_token, agent)
        )
        if len(self._heap) > 2 * self.eligible + 16:
            self._heap = [item for item in self._heap if live(item[4], item[3])]
            heapq.heapify(self._heap)

    def best(
        self, tried: Collection[str], rng: random.Random
    ) -> tuple[tuple[float, ...], Agent] | None:
        """The next agent to offer, not in ``tried``: ``((penalty, *key), agent)``.

        Heaps: O((k + 1) log n) for k tried agents met on the way; random pools: O(log n)
        per draw, stale and tried slots cleared (tried ones put back afterwards).
        """
        if self._sampled:
            return self._draw(tried, rng)
        heap = self._heap
        skipped: list[_HeapItem] = []
        found: tuple[tuple[float, ...], Agent] | None = None
        while heap:
            item = heap[0]
            if not live(item[4], item[3]):
                heapq.heappop(heap)
            elif item[4].id in tried:
                skipped.append(heapq.heappop(heap))
            else:
                found = ((item[0], *item[1]), item[4])
                break
        for item in skipped:
            heapq.heappush(heap, item)
        return found

    def lowest(self, tried: Collection[str]) -> list[Agent]:
        """Every idle agent not in ``tried`` of the lowest penalty that has one (ringall),
        in offer order. O(n)."""
        items = sorted(
            (key, agent.id, agent) for key, agent in self.idle() if agent.id not in tried
        )
        if not items:
            return []
        penalty = items[0][0][0]
        return [agent for key, _id, agent in items if key[0] == penalty]

    def idle(self) -> Iterator[tuple[tuple[float, ...], Agent]]:
        """Every idle agent with its ``(penalty, *key)`` (O(n): ringall, status)."""
        if self._sampled:
            for order, (member, token) in sorted(self._slots.items()):
                tree = self._trees[member.penalty]
                if tree.value(order) and live(member.agent, token):
                    yield ((member.penalty, order), member.agent)
            return
        seen: set[str] = set()
        for penalty, key, _order, token, agent in self._heap:
            if live(agent, token) and agent.id not in seen:
                seen.add(agent.id)
                yield ((penalty, *key), agent)

    def _draw(
        self, tried: Collection[str], rng: random.Random
    ) -> tuple[tuple[float, ...], Agent] | None:
        put_back: list[tuple[Fenwick, Member]] = []
        try:
            for penalty in sorted(self._trees):
                tree = self._trees[penalty]
                while tree.total > 0:
                    member, token = self._slots[tree.find(rng.randrange(tree.total))]
                    if not live(member.agent, token):
                        tree.set(member.order, 0)
                        continue
                    if member.agent.id in tried:
                        tree.set(member.order, 0)
                        put_back.append((tree, member))
                        continue
                    return ((penalty, member.order), member.agent)
            return None
        finally:
            for tree, member in put_back:
                tree.set(member.order, member.weight)


class Fenwick:
    """A binary indexed tree of integer weights: set, total and find in O(log n)."""

    __slots__ = ("_size", "_top", "_tree", "_values", "total")

    def __init__(self, size: int) -> None:
        self._size = size
        self._tree = [0] * (size + 1)
        self._values = [0] * size
        self._top = 1 << size.bit_length() if size else 0
        self.total = 0

    @classmethod
    def from_values(cls, values: list[int]) -> Fenwick:
        """A tree holding ``values`` (built in O(n))."""
        tree = cls(len(values))
        tree._values = list(values)
        tree.total = sum(values)
        inner = tree._tree
        for i, value in enumerate(values, start=1):
            inner[i] += value
            parent = i + (i & -i)
            if parent <= len(values):
                inner[parent] += inner[i]
        return tree

    @property
    def size(self) -> int:
        return self._size

    def append(self, weight: int) -> None:
        """Grow by one slot holding ``weight`` (O(log n): the new node sums its children)."""
        i = self._size + 1
        node = weight
        step = 1
        low = i & -i
        tree = self._tree
        while step < low:
            node += tree[i - step]
            step <<= 1
        tree.append(node)
        self._values.append(weight)
        self._size = i
        self.total += weight
        self._top = 1 << i.bit_length()

    def value(self, index: int) -> int:
        return self._values[index]

    def set(self, index: int, weight: int) -> None:
        delta = weight - self._values[index]
        if not delta:
            return
        self._values[index] = weight
        self.total += delta
        i = index + 1
        while i <= self._size:
            self._tree[i] += delta
            i += i & -i

    def prefix(self, index: int) -> int:
        """Sum of the weights at ``0..index`` (inclusive)."""
        total = 0
        i = min(index + 1, self._size)
        tree = self._tree
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total

    def find(self, r: int) -> int:
        """The index whose cumulative range holds ``r`` (0 <= r < total)."""
        pos = 0
        step = self._top
        tree = self._tree
        while step:
            nxt = pos + step
            if nxt <= self._size and tree[nxt] <= r:
                pos = nxt
                r -= tree[nxt]
            step >>= 1
        return pos
