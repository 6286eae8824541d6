"""A call queue as data: who waits (in order), which members are idle (longest idle first).

Both orders are binary heaps with lazy deletion, so a queue with 10,000 callers and 5,000
members costs O(log n) per arrival, offer or agent release, never a scan:

* callers hunting for an agent: keyed ``(-priority, joined, seq)``; an entry that stops
  hunting is left in the heap and skipped when it reaches the top (its ``status`` or heap
  version no longer match);
* idle members: keyed ``(idle_since, push order)``; an agent that stops being AVAILABLE bumps
  its ``idle_token``, which makes every heap item it left behind stale.

Heaps are rebuilt when stale items outnumber live ones, which keeps memory bounded.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from callcenter.acd.agent import Agent, AgentState
from callcenter.errors import EngineError, IllegalTransition


class EntryStatus(enum.StrEnum):
    """Where a caller stands in a queue."""

    WAITING = "waiting"
    """In the queue; nobody is currently asking the router for an agent for it."""
    HUNTING = "hunting"
    """``Router.next_agent`` is waiting for an agent for it."""
    OFFERED = "offered"
    """An agent is reserved (RINGING) for it."""
    CONNECTED = "connected"
    """An agent answered: the caller left the queue (terminal)."""
    LEFT = "left"
    """The caller hung up or timed out (terminal)."""


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
    tried: set[str] = field(default_factory=set)
    """Agents offered this call who did not take it in the current round."""
    offer: asyncio.Future[Agent] | None = None
    """Set while ``Router.next_agent`` is waiting for an agent for this caller."""
    status: EntryStatus = EntryStatus.WAITING
    agent: Agent | None = None
    """The agent reserved for (or connected to) this caller."""
    revoked: bool = False
    """True when the reserved agent logged out while ringing: the engine should abort that
    dial and ask ``next_agent`` again (reset by the next ``next_agent``)."""
    heap_version: int = field(default=0, repr=False)

    @property
    def key(self) -> tuple[int, float, int]:
        """Queue order: higher priority first, then earlier arrival."""
        return (-self.priority, self.joined, self.seq)

    def move(self, new: EntryStatus) -> EntryStatus:
        """Go to ``new`` if ENTRY_TRANSITIONS allows it; returns the previous status."""
        old = self.status
        if new not in ENTRY_TRANSITIONS[old]:
            raise IllegalTransition(f"call {self.call_id} in {self.queue}: cannot go {old}->{new}")
        self.status = new
        return old


_HuntItem = tuple[int, float, int, int, QueueEntry]  # (-priority, joined, seq, version, entry)
_IdleItem = tuple[float, int, int, Agent]  # (idle_since, push order, idle_token, agent)


class CallQueue:
    """Callers waiting in one queue and the idle members that could take them.

    ``strategy`` is recorded for reports; routing is longest-idle-agent.
    """

    def __init__(self, name: str, members: Sequence[str], strategy: str = "longest-idle") -> None:
        self.name = name
        self.members: tuple[str, ...] = tuple(dict.fromkeys(members))
        self.strategy = strategy
        self._entries: dict[str, QueueEntry] = {}
        self._hunting: list[_HuntItem] = []
        self._idle: list[_IdleItem] = []
        self._push_order = itertools.count()

    # ------------------------------------------------------------------ callers

    def __len__(self) -> int:
        """Callers in the queue: waiting, hunting or being offered an agent."""
        return len(self._entries)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._entries

    def entries(self) -> list[QueueEntry]:
        """Callers in queue order (O(n log n); for reports and tests)."""
        return sorted(self._entries.values(), key=lambda e: e.key)

    def add(self, entry: QueueEntry) -> None:
        if entry.call_id in self._entries:
            raise EngineError(f"call {entry.call_id} is already waiting in queue {self.name}")
        self._entries[entry.call_id] = entry

    def remove(self, entry: QueueEntry) -> None:
        """Forget a caller that connected or left (its heap item goes stale by status)."""
        if self._entries.get(entry.call_id) is entry:
            del self._entries[entry.call_id]

    def position(self, call_id: str) -> int:
        """1-based place of the caller in queue order; 0 when it is not in the queue.

        O(n): meant for announcements and status, not per-event routing.
        """
        entry = self._entries.get(call_id)
        if entry is None:
            return 0
        key = entry.key
        return 1 + sum(1 for other in self._entries.values() if other.key < key)

    def oldest_joined(self) -> float | None:
        """When the longest-waiting caller joined (O(n); for status)."""
        return min((e.joined for e in self._entries.values()), default=None)

    def push_hunting(self, entry: QueueEntry) -> None:
        """Put a HUNTING entry in line for the next idle member."""
        entry.heap_version += 1
        heapq.heappush(
            self._hunting, (-entry.priority, entry.joined, entry.seq, entry.heap_version, entry)
        )
        if len(self._hunting) > 2 * len(self._entries) + 16:
            self._hunting = [item for item in self._hunting if self._hunt_live(item)]
            heapq.heapify(self._hunting)

    def head(self) -> QueueEntry | None:
        """The hunting caller next in line for an agent, or None."""
        heap = self._hunting
        while heap and not self._hunt_live(heap[0]):
            heapq.heappop(heap)
        return heap[0][4] if heap else None

    @staticmethod
    def _hunt_live(item: _HuntItem) -> bool:
        entry = item[4]
        return entry.status is EntryStatus.HUNTING and entry.heap_version == item[3]

    # ------------------------------------------------------------------ idle members

    def push_idle(self, agent: Agent) -> None:
        """Record that ``agent`` (a member, now AVAILABLE) is idle since ``agent.idle_since``."""
        heapq.heappush(
            self._idle, (agent.idle_since, next(self._push_order), agent.idle_token, agent)
        )
        if len(self._idle) > 2 * len(self.members) + 16:
            self._idle = [item for item in self._idle if self._idle_live(item)]
            heapq.heapify(self._idle)

    @staticmethod
    def _idle_live(item: _IdleItem) -> bool:
        agent = item[3]
        return agent.state is AgentState.AVAILABLE and agent.idle_token == item[2]

    def has_idle(self) -> bool:
        heap = self._idle
        while heap and not self._idle_live(heap[0]):
            heapq.heappop(heap)
        return bool(heap)

    def take_idle_for(self, entry: QueueEntry) -> Agent | None:
        """Pop the longest-idle member ``entry`` has not tried yet.

        When the caller has tried every idle member, a new round starts: ``entry.tried`` is
        cleared and the longest-idle member is taken. Cost O((k + 1) log n) for k tried members.
        The caller must take the returned agent out of AVAILABLE.
        """
        heap = self._idle
        skipped: list[_IdleItem] = []
        chosen: Agent | None = None
        while heap:
            item = heapq.heappop(heap)
            if not self._idle_live(item):
                continue
            if item[3].id in entry.tried:
                skipped.append(item)
                continue
            chosen = item[3]
            break
        if chosen is None and skipped:
            entry.tried.clear()
            chosen = skipped.pop(0)[3]
        for item in skipped:
            heapq.heappush(heap, item)
        return chosen

    def idle_members(self) -> list[str]:
        """Ids of idle members, longest idle first (O(n log n); for status)."""
        live = sorted(
            (item for item in self._idle if self._idle_live(item)), key=lambda i: (i[0], i[1])
        )
        return [item[3].id for item in live]
