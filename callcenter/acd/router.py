"""The router: matches waiting callers with idle agents, longest-idle agent first.

It is plain data plus one asyncio hook (:meth:`Router.next_agent`, a future per hunting
caller) and one timer per agent in wrap-up. Matching runs only when something changes, and
only where it changed:

* a caller starts hunting (``next_agent``): its queue is served;
* an agent becomes AVAILABLE (login, unpause, wrap-up over, failed ring, released offer):
  the queues it serves are served, the one whose head-of-line caller is best
  ``(priority, joined)`` first.

Serving a queue gives its head-of-line hunting caller the longest-idle AVAILABLE member the
caller has not tried yet; a caller that has tried every idle member starts a new round (its
``tried`` set is cleared). After every public call the router keeps this invariant: no queue
has both a hunting caller and an idle member.

A reserved agent is RINGING and out of every idle heap; the engine dials it and reports back
with :meth:`Router.connected` or :meth:`Router.ring_failed`, or the caller goes with
:meth:`Router.leave`. Agent events (AgentLoggedIn/Out, AgentPaused/Unpaused and an
AgentStateChanged for every move) go to the bus; call events are the engine's to publish.

Not thread-safe: use it from the event loop's thread. Wrap-up timers need a running loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import structlog

from callcenter.acd.agent import Agent, AgentState
from callcenter.acd.queue import CallQueue, EntryStatus, QueueEntry
from callcenter.errors import EngineError, IllegalTransition, UnknownAgent, UnknownQueue
from callcenter.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentStateChanged,
    AgentUnpaused,
    EngineEvent,
    EventBus,
)

log = structlog.get_logger(__name__)

OfferRevoked = Callable[[QueueEntry | None, Agent], None]
"""``(entry, agent)``: the agent being rung for ``entry`` (None: a direct reservation) logged
out; the engine should stop ringing it."""

_S = AgentState


class Router:
    """Agents, queues and who gets which caller.

    ``queues`` maps a queue name to its member agent ids; ``wrapup`` maps a queue name to the
    seconds of after-call work its agents get (missing: none). ``clock`` is the monotonic
    clock used for every timestamp (inject a fake one in tests).
    """

    def __init__(
        self,
        agents: Iterable[Agent],
        queues: Mapping[str, list[str]],
        *,
        wrapup: Mapping[str, float] | None = None,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._agents: dict[str, Agent] = {}
        for agent in agents:
            if agent.id in self._agents:
                raise EngineError(f"agent {agent.id} is configured twice")
            self._agents[agent.id] = agent
        self.agents: Mapping[str, Agent] = MappingProxyType(self._agents)
        self._queues: dict[str, CallQueue] = {}
        member_of: dict[str, list[CallQueue]] = {agent_id: [] for agent_id in self._agents}
        for name, members in queues.items():
            for member in members:
                if member not in self._agents:
                    raise UnknownAgent(f"queue {name}: member {member} is not a configured agent")
            queue = CallQueue(name, members)
            self._queues[name] = queue
            for member in queue.members:
                member_of[member].append(queue)
        self.queues: Mapping[str, CallQueue] = MappingProxyType(self._queues)
        self._member_of: dict[str, tuple[CallQueue, ...]] = {
            agent_id: tuple(qs) for agent_id, qs in member_of.items()
        }
        self._wrapup = dict(wrapup or {})
        self._bus = bus
        self._clock = clock
        self._seq = itertools.count()
        self._offers: dict[str, QueueEntry] = {}  # agent id -> caller it is ringing for
        self._direct: set[str] = set()  # agents reserved for a dial outside queues
        self._wrapup_timers: dict[str, asyncio.TimerHandle] = {}
        self._logout_via: dict[str, str] = {}
        self._pause_via: dict[str, str] = {}
        self.on_offer_revoked: OfferRevoked | None = None
        """Called when a RINGING agent logs out after the engine received the offer."""
        for agent in self._agents.values():
            if agent.state is _S.AVAILABLE:
                for queue in self._member_of[agent.id]:
                    queue.push_idle(agent)

    # ------------------------------------------------------------------ lookups

    def _agent(self, agent_id: str) -> Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgent(f"no agent {agent_id!r} is configured") from None

    def _queue(self, name: str) -> CallQueue:
        try:
            return self._queues[name]
        except KeyError:
            raise UnknownQueue(f"no queue {name!r} is configured") from None

    def position(self, entry: QueueEntry) -> int:
        """1-based place of the caller in its queue (0 once it connected or left)."""
        return self._queue(entry.queue).position(entry.call_id)

    def waiting(self, queue: str) -> int:
        """Callers in ``queue`` not yet connected or gone (those being rung included)."""
        return len(self._queue(queue))

    def available_agents(self, queue: str) -> list[str]:
        """Idle members of ``queue``, longest idle first."""
        return self._queue(queue).idle_members()

    # ------------------------------------------------------------------ agent sessions

    def login(self, agent_id: str, *, via: str = "cli") -> None:
        """Start the agent's shift: AVAILABLE, idle from now."""
        agent = self._agent(agent_id)
        if agent.state is not _S.LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is already logged in ({agent.state})")
        now = self._clock()
        agent.logged_in_at = now
        self._publish(AgentLoggedIn(agent=agent_id, device=agent.device, via=via, mono=now))
        log.info("agent_logged_in", agent=agent_id, via=via)
        self._make_available(agent, now, idle_since=now)

    def logout(self, agent_id: str, *, via: str = "cli") -> None:
        """End the agent's shift.

        ON_CALL: ``logout_pending`` is set and the logout happens when the call ends.
        RINGING: the offer is revoked (the caller goes back to waiting, ``entry.revoked`` is
        set and :attr:`on_offer_revoked` is called) and the agent logs out now.
        """
        agent = self._agent(agent_id)
        if agent.state is _S.LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is not logged in")
        if agent.state is _S.ON_CALL:
            agent.logout_pending = True
            self._logout_via[agent_id] = via
            log.info("agent_logout_pending", agent=agent_id, via=via)
            return
        now = self._clock()
        revoked: tuple[QueueEntry | None, bool] = (None, False)
        if agent.state is _S.RINGING:
            revoked = self._revoke(agent)
        self._apply_logout(agent, via, now)
        entry, notify = revoked
        if notify and self.on_offer_revoked is not None:
            try:
                self.on_offer_revoked(entry, agent)
            except Exception:
                log.exception("offer_revoked_callback_failed", agent=agent_id)

    def pause(self, agent_id: str, reason: str, *, via: str = "cli") -> None:
        """Stop offering calls to the agent.

        RINGING or ON_CALL: the pause is kept in ``pending_pause`` and applied when the ring
        fails or the call ends. Already paused: the reason is updated.
        """
        agent = self._agent(agent_id)
        state = agent.state
        if state is _S.LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is logged out and cannot pause")
        if state is _S.PAUSED:
            if agent.pause_reason != reason:
                agent.pause_reason = reason
                self._publish(
                    AgentPaused(agent=agent_id, reason=reason, via=via, mono=self._clock())
                )
            return
        if state in (_S.RINGING, _S.ON_CALL):
            agent.pending_pause = reason
            self._pause_via[agent_id] = via
            log.info("agent_pause_pending", agent=agent_id, reason=reason, via=via)
            return
        self._apply_pause(agent, reason, via, self._clock())

    def unpause(self, agent_id: str, *, via: str = "cli") -> None:
        """Make a paused agent AVAILABLE (idle from now), or drop a pending pause."""
        agent = self._agent(agent_id)
        if agent.state is _S.PAUSED:
            now = self._clock()
            agent.pause_reason = None
            self._publish(AgentUnpaused(agent=agent_id, via=via, mono=now))
            log.info("agent_unpaused", agent=agent_id, via=via)
            self._make_available(agent, now, idle_since=now)
            return
        if agent.pending_pause is not None:
            agent.pending_pause = None
            self._pause_via.pop(agent_id, None)
            return
        raise IllegalTransition(f"agent {agent_id} is not paused ({agent.state})")

    def end_wrapup(self, agent_id: str) -> None:
        """The agent is done with after-call work before the timer: AVAILABLE now."""
        agent = self._agent(agent_id)
        if agent.state is not _S.WRAP_UP:
            raise IllegalTransition(f"agent {agent_id} is not in wrap-up ({agent.state})")
        self._make_available(agent, self._clock())

    # ------------------------------------------------------------------ callers

    def enqueue(self, queue: str, call_id: str, *, priority: int = 0) -> QueueEntry:
        """Put a caller in ``queue``; it is offered agents once ``next_agent`` is awaited."""
        q = self._queue(queue)
        entry = QueueEntry(
            call_id=call_id,
            queue=queue,
            priority=priority,
            joined=self._clock(),
            seq=next(self._seq),
        )
        q.add(entry)
        return entry

    async def next_agent(self, entry: QueueEntry) -> Agent:
        """Wait until an agent is reserved (RINGING) for this caller and return it.

        Cancelling the waiting task leaves no reservation behind: an agent reserved in the
        meantime goes back to AVAILABLE. Raises EngineError if the caller left the queue
        (``leave``) while waiting.
        """
        queue = self._queue(entry.queue)
        while True:
            if entry.status in (EntryStatus.CONNECTED, EntryStatus.LEFT):
                raise EngineError(f"call {entry.call_id} is no longer waiting in {entry.queue}")
            if entry.status is EntryStatus.OFFERED and entry.agent is not None:
                return entry.agent
            if entry.offer is not None:
                raise EngineError(f"call {entry.call_id} is already waiting for an agent")
            future: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
            entry.offer = future
            entry.revoked = False
            entry.move(EntryStatus.HUNTING)
            queue.push_hunting(entry)
            self._serve(queue)
            try:
                agent = await future
            except asyncio.CancelledError:
                self._stop_hunting(entry)
                raise
            finally:
                entry.offer = None
            if entry.status is EntryStatus.OFFERED and entry.agent is agent:
                return agent
            # The reservation was undone before this task resumed (the agent logged out):
            # hunt again.

    def ring_failed(self, entry: QueueEntry, agent: Agent) -> None:
        """The reserved agent did not answer: it goes back to AVAILABLE (still the longest
        idle), the caller will not be offered it again this round. A no-op when the offer
        was already undone (caller left, agent logged out)."""
        if self._offers.get(agent.id) is not entry or entry.agent is not agent:
            log.debug("ring_failed_after_offer_ended", call_id=entry.call_id, agent=agent.id)
            return
        now = self._clock()
        entry.tried.add(agent.id)
        agent.missed_offers += 1
        entry.agent = None
        entry.move(EntryStatus.WAITING)
        self._release(agent, now)

    def connected(self, entry: QueueEntry, agent: Agent) -> None:
        """The agent answered: ON_CALL, and the caller leaves the queue."""
        queue = self._queue(entry.queue)
        if self._offers.get(agent.id) is entry and agent.state is _S.RINGING:
            del self._offers[agent.id]
            entry.move(EntryStatus.CONNECTED)
            queue.remove(entry)
            self._set_state(agent, _S.ON_CALL, self._clock())
            agent.calls_taken += 1
            agent.call_id = entry.call_id
            return
        # The offer was revoked (the agent logged out while ringing) and it answered anyway:
        # the caller really is talking, so it leaves the queue; the agent stays logged out.
        other = entry.agent if entry.status is EntryStatus.OFFERED else None
        entry.move(EntryStatus.CONNECTED)
        entry.agent = agent
        queue.remove(entry)
        if other is not None and other is not agent and self._offers.get(other.id) is entry:
            self._release(other, self._clock())
        log.warning("agent_answered_revoked_offer", call_id=entry.call_id, agent=agent.id)

    def call_finished(self, agent_id: str, queue: str | None = None) -> None:
        """The agent's call ended: pending logout or pause applies, else WRAP_UP for the
        queue's wrap-up seconds (a timer makes it AVAILABLE), else AVAILABLE now.

        Idle from now. A no-op (logged) for an agent that is not ON_CALL.
        """
        agent = self._agent(agent_id)
        if agent.state is not _S.ON_CALL:
            log.info("call_finished_ignored", agent=agent_id, state=str(agent.state))
            return
        now = self._clock()
        agent.call_id = None
        agent.idle_since = now
        if agent.logout_pending:
            self._apply_logout(agent, self._logout_via.pop(agent_id, "cli"), now)
            return
        if agent.pending_pause is not None:
            self._apply_pause(agent, agent.pending_pause, self._pause_via.pop(agent_id, "cli"), now)
            return
        seconds = self._wrapup.get(queue, 0.0) if queue else 0.0
        if seconds > 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                log.warning("wrapup_skipped_no_event_loop", agent=agent_id)
            else:
                self._set_state(agent, _S.WRAP_UP, now)
                self._wrapup_timers[agent_id] = loop.call_later(
                    seconds, self._wrapup_over, agent_id
                )
                return
        self._make_available(agent, now)

    def leave(self, entry: QueueEntry) -> None:
        """The caller is gone (hung up, timed out): out of the queue, its reserved agent (if
        any) released. Idempotent; a no-op after ``connected``."""
        if entry.status in (EntryStatus.CONNECTED, EntryStatus.LEFT):
            return
        queue = self._queue(entry.queue)
        agent = entry.agent if entry.status is EntryStatus.OFFERED else None
        entry.agent = None
        entry.move(EntryStatus.LEFT)
        queue.remove(entry)
        if entry.offer is not None and not entry.offer.done():
            entry.offer.set_exception(EngineError(f"call {entry.call_id} left queue {entry.queue}"))
        if agent is not None and self._offers.get(agent.id) is entry:
            self._release(agent, self._clock())

    # ------------------------------------------------------------------ direct dials

    def reserve(self, agent_id: str, *, call_id: str | None = None) -> Agent:
        """Reserve an AVAILABLE agent for a dial outside queues (e.g. a transfer to a
        supervisor): RINGING. Raises IllegalTransition when it is not AVAILABLE."""
        agent = self._agent(agent_id)
        if agent.state is not _S.AVAILABLE:
            raise IllegalTransition(f"agent {agent_id} is {agent.state}, not available")
        self._set_state(agent, _S.RINGING, self._clock())
        self._direct.add(agent_id)
        agent.call_id = call_id
        return agent

    def connect_direct(self, agent_id: str) -> None:
        """A directly reserved agent answered: ON_CALL (end it with ``call_finished``)."""
        agent = self._agent(agent_id)
        if agent_id not in self._direct or agent.state is not _S.RINGING:
            raise IllegalTransition(f"agent {agent_id} has no direct reservation")
        self._direct.discard(agent_id)
        self._set_state(agent, _S.ON_CALL, self._clock())
        agent.calls_taken += 1

    def release(self, agent_id: str) -> None:
        """A direct reservation ended unanswered: back to AVAILABLE (idle time unchanged)."""
        agent = self._agent(agent_id)
        if agent_id not in self._direct or agent.state is not _S.RINGING:
            raise IllegalTransition(f"agent {agent_id} has no direct reservation to release")
        self._release(agent, self._clock())

    # ------------------------------------------------------------------ status

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for the API and CLI."""
        now = self._clock()
        agents = [
            {
                "id": a.id,
                "name": a.name,
                "device": a.device,
                "state": a.state.value,
                "time_in_state": round(a.time_in_state(now), 1),
                "pause_reason": a.pause_reason,
                "pending_pause": a.pending_pause,
                "logout_pending": a.logout_pending,
                "call_id": a.call_id,
                "calls_taken": a.calls_taken,
                "missed_offers": a.missed_offers,
                "queues": [q.name for q in self._member_of[a.id]],
            }
            for a in self._agents.values()
        ]
        queues = []
        for q in self._queues.values():
            oldest = q.oldest_joined()
            queues.append(
                {
                    "name": q.name,
                    "strategy": q.strategy,
                    "members": list(q.members),
                    "waiting": len(q),
                    "available": len(q.idle_members()),
                    "longest_wait": round(now - oldest, 1) if oldest is not None else 0.0,
                }
            )
        return {"agents": agents, "queues": queues}

    # ------------------------------------------------------------------ internals

    def _publish(self, event: EngineEvent) -> None:
        if self._bus is not None:
            self._bus.publish(event)

    def _set_state(self, agent: Agent, new: AgentState, now: float) -> AgentState:
        old = agent.move(new, now=now)
        if _S.AVAILABLE in (old, new):
            agent.idle_token += 1
        if old is _S.WRAP_UP:
            handle = self._wrapup_timers.pop(agent.id, None)
            if handle is not None:
                handle.cancel()
        self._publish(AgentStateChanged(agent=agent.id, old=old.value, new=new.value, mono=now))
        return old

    def _make_available(self, agent: Agent, now: float, *, idle_since: float | None = None) -> None:
        if idle_since is not None:
            agent.idle_since = idle_since
        self._set_state(agent, _S.AVAILABLE, now)
        queues = self._member_of[agent.id]
        for queue in queues:
            queue.push_idle(agent)
        # The agent is the only new idle member; give it to the best head-of-line caller
        # among its queues first.
        heads = []
        for order, queue in enumerate(queues):
            head = queue.head()
            if head is not None:
                heads.append((head.key, order, queue))
        heads.sort(key=lambda h: (h[0], h[1]))
        for _key, _order, queue in heads:
            self._serve(queue)

    def _serve(self, queue: CallQueue) -> None:
        while (entry := queue.head()) is not None:
            agent = queue.take_idle_for(entry)
            if agent is None:
                return
            self._reserve_for(entry, agent)

    def _reserve_for(self, entry: QueueEntry, agent: Agent) -> None:
        self._set_state(agent, _S.RINGING, self._clock())
        agent.call_id = entry.call_id
        self._offers[agent.id] = entry
        entry.move(EntryStatus.OFFERED)
        entry.agent = agent
        if entry.offer is not None and not entry.offer.done():
            entry.offer.set_result(agent)
        log.debug("agent_reserved", call_id=entry.call_id, queue=entry.queue, agent=agent.id)

    def _stop_hunting(self, entry: QueueEntry) -> None:
        """``next_agent`` was cancelled: undo any reservation it got."""
        if entry.status is EntryStatus.HUNTING:
            entry.move(EntryStatus.WAITING)
        elif entry.status is EntryStatus.OFFERED and entry.agent is not None:
            agent = entry.agent
            entry.agent = None
            entry.move(EntryStatus.WAITING)
            if self._offers.get(agent.id) is entry:
                self._release(agent, self._clock())

    def _release(self, agent: Agent, now: float) -> None:
        """An offer ended without a conversation: back to AVAILABLE, idle time unchanged."""
        self._offers.pop(agent.id, None)
        self._direct.discard(agent.id)
        agent.call_id = None
        if agent.pending_pause is not None:
            self._apply_pause(agent, agent.pending_pause, self._pause_via.pop(agent.id, "cli"), now)
        else:
            self._make_available(agent, now)

    def _revoke(self, agent: Agent) -> tuple[QueueEntry | None, bool]:
        """Undo a RINGING agent's reservation; returns the caller and whether the engine
        already holds the offer (and so must be told)."""
        entry = self._offers.pop(agent.id, None)
        direct = agent.id in self._direct
        self._direct.discard(agent.id)
        agent.call_id = None
        if entry is None:
            return None, direct
        entry.agent = None
        entry.revoked = True
        entry.move(EntryStatus.WAITING)
        log.info("offer_revoked", call_id=entry.call_id, agent=agent.id)
        return entry, entry.offer is None

    def _apply_pause(self, agent: Agent, reason: str, via: str, now: float) -> None:
        agent.pending_pause = None
        agent.pause_reason = reason
        self._publish(AgentPaused(agent=agent.id, reason=reason, via=via, mono=now))
        log.info("agent_paused", agent=agent.id, reason=reason, via=via)
        self._set_state(agent, _S.PAUSED, now)

    def _apply_logout(self, agent: Agent, via: str, now: float) -> None:
        shift = now - agent.logged_in_at if agent.logged_in_at is not None else 0.0
        agent.logout_pending = False
        agent.pending_pause = None
        agent.pause_reason = None
        agent.logged_in_at = None
        self._logout_via.pop(agent.id, None)
        self._pause_via.pop(agent.id, None)
        self._publish(AgentLoggedOut(agent=agent.id, shift_seconds=shift, via=via, mono=now))
        log.info("agent_logged_out", agent=agent.id, via=via, shift_seconds=round(shift, 1))
        self._set_state(agent, _S.LOGGED_OUT, now)

    def _wrapup_over(self, agent_id: str) -> None:
        self._wrapup_timers.pop(agent_id, None)
        agent = self._agents[agent_id]
        if agent.state is _S.WRAP_UP:
            self._make_available(agent, self._clock())
