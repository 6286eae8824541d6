"""The router: matches waiting callers with idle agents, by each queue's strategy and rules.

It is plain data plus one asyncio hook (:meth:`Router.next_agents`, a future per hunting
caller) and timers (wrap-up, no-answer/busy/reject delays, escalation stages). Matching runs
only when something changes, and only where it changed:

* a caller starts hunting (``next_agents``) or reaches its next escalation stage: its class
  (queue, skills, stage) is served;
* an agent becomes ready (login, unpause, wrap-up or delay over, failed ring, released offer,
  device no longer in use): it takes the best hunting caller it may serve across its queues:
  the queue with the highest ``weight`` first, then priority and arrival (or, with
  ``longest_waiting_first``, simply the caller waiting longest).

Serving a class gives its head-of-line caller what the queue's strategy picks among the
eligible idle agents (lowest penalty first, see :mod:`callcenter.acd.strategies`), skipping
agents the caller already tried in this round; a caller that has tried every idle agent
starts a new round. After every public call the router keeps this invariant: no hunting
caller has an idle, ready agent it may be offered.

Reserved agents are RINGING and out of every idle index; the engine dials them and reports
back with :meth:`Router.connected` or :meth:`Router.ring_failed` (with a :class:`RingOutcome`:
delays and auto-pause follow from it), or the caller goes with :meth:`Router.leave`. Agent
events (AgentLoggedIn/Out, AgentPaused/Unpaused and an AgentStateChanged for every move) and
QueueEscalated go to the bus; other call events are the engine's to publish.

Not thread-safe: use it from the event loop's thread. Timers need a running loop (without
one, wrap-up and delays are skipped and stages only move with :meth:`Router.escalate`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import structlog

from callcenter.acd.agent import Agent, AgentState
from callcenter.acd.queue import CallQueue, EntryStatus, HuntClass, QueueEntry
from callcenter.acd.rules import AgentRules, QueueRules
from callcenter.acd.strategies import MULTI_RING
from callcenter.errors import EngineError, IllegalTransition, UnknownAgent, UnknownQueue
from callcenter.events import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentPhoneReachable,
    AgentSeated,
    AgentStateChanged,
    AgentUnpaused,
    EngineEvent,
    EventBus,
    QueueEscalated,
)

log = structlog.get_logger(__name__)

OfferRevoked = Callable[[QueueEntry | None, Agent], None]
"""``(entry, agent)``: the agent being rung for ``entry`` (None: a direct reservation) logged
out; the engine should stop ringing it."""

DIAL_VIA = "dial"
"""``via`` of the pause a paused agent's own outbound call ends, and begins again after."""
AUTOPAUSE_VIA = "auto"
"""``via`` of every automatic pause; its reason is the ``RingOutcome`` that made it."""

_S = AgentState
_ABSENT = frozenset({_S.LOGGED_OUT, _S.PAUSED})


class RingOutcome(enum.StrEnum):
    """How an offer to one agent ended without a conversation."""

    NO_ANSWER = "no-answer"
    """It rang out: counts as missed (auto-pause), then the queue's no_answer_delay."""
    BUSY = "busy"
    """The device was busy, unavailable or congested: the queue's busy_delay."""
    REJECTED = "rejected"
    """The agent declined the call: the queue's reject_delay."""
    CANCELLED = "cancelled"
    """Not the agent's doing (another agent answered, the callback failed): nothing."""


class Router:
    """Agents, queues and who gets which caller.

    ``queues`` maps a queue name to its member agent ids (config order); ``rules`` gives a
    queue's routing rules (members there are ignored in favour of ``queues``); ``wrapup``
    (seconds per queue) overrides the rules' wrap-up. ``clock`` is the monotonic clock of
    every timestamp (inject a fake one in tests); ``rng`` draws for the random strategies.
    """

    def __init__(
        self,
        agents: Iterable[Agent],
        queues: Mapping[str, Sequence[str]],
        *,
        wrapup: Mapping[str, float] | None = None,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
        rules: Mapping[str, QueueRules] | None = None,
        rng: random.Random | None = None,
        longest_waiting_first: bool = False,
    ) -> None:
        self._agents: dict[str, Agent] = {}
        for agent in agents:
            if agent.id in self._agents:
                raise EngineError(f"agent {agent.id} is configured twice")
            self._agents[agent.id] = agent
        self.agents: Mapping[str, Agent] = MappingProxyType(self._agents)
        self._bus = bus
        self._clock = clock
        self.rng = rng or random.Random()
        self.longest_waiting_first = longest_waiting_first
        self._seq = itertools.count()
        self._queues: dict[str, CallQueue] = {}
        self.queues: Mapping[str, CallQueue] = MappingProxyType(self._queues)
        self._member_of: dict[str, tuple[CallQueue, ...]] = {}
        self._by_device: dict[str, list[Agent]] = {}
        self._offers: dict[str, QueueEntry] = {}  # agent id -> caller it is ringing for
        self._direct: set[str] = set()  # agents reserved for a dial outside queues
        self._holds: dict[str, tuple[QueueEntry, asyncio.Future[bool]]] = {}
        """Agent id -> the waiting caller they are kept for (:meth:`hold_for`)."""
        self._wrapup_timers: dict[str, asyncio.TimerHandle] = {}
        self._until_ready: set[str] = set()
        """Agents in a wrap-up that lasts until they say they are ready."""
        self._logout_via: dict[str, str] = {}
        self._pause_via: dict[str, str] = {}
        self.on_offer_revoked: OfferRevoked | None = None
        """Called when a RINGING agent logs out after the engine received the offer."""
        self.idle_listeners: list[Callable[[str], None]] = []
        """Called with an agent's id when it became free with nobody waiting for it (the
        predictive campaigns dial for it)."""
        self.owed_listeners: list[Callable[[str, str], None]] = []
        """Called with (agent id, call id) when an agent's talk ended in a queue with
        ``disposition_required``: the agent owes that call its code."""
        given = dict(rules or {})
        merged: dict[str, QueueRules] = {}
        for name, members in queues.items():
            base = given.get(name, QueueRules())
            changes: dict[str, Any] = {"members": tuple(members)}
            if wrapup is not None and name in wrapup:
                changes["wrapup"] = float(wrapup[name])
            merged[name] = dataclasses.replace(base, **changes)
        self._rules: dict[str, QueueRules] = {}
        self._install(merged)

    # ------------------------------------------------------------------ configuration

    def configure(
        self,
        queues: Mapping[str, QueueRules],
        agents: Mapping[str, AgentRules] | None = None,
        *,
        longest_waiting_first: bool | None = None,
    ) -> None:
        """Apply new routing rules (start-up and config reload) without losing anyone.

        Agents new to the router are created logged out; queues missing from ``queues``
        keep their rules (a queue is never removed while the daemon runs). Waiting callers
        keep their places; idle agents and hunting callers are matched again at once.
        Raises UnknownAgent (changing nothing) when a queue lists an agent nobody defines.
        """
        profiles = dict(agents or {})
        for name, rules in queues.items():
            for member in rules.members:
                if member not in self._agents and member not in profiles:
                    raise UnknownAgent(f"queue {name}: member {member} is not a configured agent")
        for agent_id, profile in profiles.items():
            agent = self._agents.get(agent_id)
            if agent is None:
                agent = self._agents[agent_id] = Agent(id=agent_id, device=profile.device or "")
            if profile.device and profile.device != agent.home_device:
                agent.home_device = profile.device
                if agent.desk is None:
                    # What the PBX said of the old phone says nothing of the new one.
                    agent.device = profile.device
                    agent.device_busy = False
                    agent.device_unreachable = False
            if profile.name is not None:
                agent.name = profile.name
            agent.skills = dict(profile.skills)
            agent.wrapup = profile.wrapup
            agent.autopause = profile.autopause
        if longest_waiting_first is not None:
            self.longest_waiting_first = longest_waiting_first
        merged = dict(self._rules)
        merged.update(queues)
        self._install(merged)
        log.info("router_configured", queues=len(merged), agents=len(self._agents))

    def _install(self, rules: Mapping[str, QueueRules]) -> None:
        for name, queue_rules in rules.items():
            for member in queue_rules.members:
                if member not in self._agents:
                    raise UnknownAgent(f"queue {name}: member {member} is not a configured agent")
        self._rules = dict(rules)
        for name, queue_rules in rules.items():
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = CallQueue(name, queue_rules.members)
            queue.build(queue_rules, self._agents)
        member_of: dict[str, list[CallQueue]] = {agent_id: [] for agent_id in self._agents}
        for queue in self._queues.values():
            for member in queue.members:
                member_of[member].append(queue)
        self._member_of = {
            agent_id: tuple(sorted(qs, key=lambda q: -q.rules.weight))
            for agent_id, qs in member_of.items()
        }
        self._by_device = {}
        for agent in self._agents.values():
            self._by_device.setdefault(agent.device, []).append(agent)
        # Classes (and with them the idle indexes) are rebuilt as callers need them.
        for queue in self._queues.values():
            for entry in queue.entries():
                if entry.status is EntryStatus.HUNTING:
                    queue.push_hunting(entry)
        for queue in self._queues.values():
            for klass in queue.classes():
                self._serve_class(queue, klass)
            if queue.rules.leave_when_empty:
                self._wake_if_empty(queue)

    def remove_agent(self, agent_id: str) -> None:
        """Forget ``agent_id``, an agent added while the centre runs then removed: logged
        out and a member of no queue (EngineError otherwise; UnknownAgent when there is no
        such agent)."""
        agent = self._agent(agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            raise EngineError(f"agent {agent_id} is logged in")
        queues = [queue.name for queue in self._member_of.get(agent_id, ())]
        if queues:
            raise EngineError(f"agent {agent_id} is a member of {', '.join(queues)}")
        del self._agents[agent_id]
        for kept in (self._logout_via, self._pause_via):
            kept.pop(agent_id, None)
        self._install(self._rules)

    def remove_queue(self, name: str) -> None:
        """Forget ``name``, a queue nobody waits in (one added while the centre runs, then
        removed): its members serve their other queues. EngineError while anyone waits
        in it; UnknownQueue when there is no such queue."""
        queue = self._queue(name)
        if queue.entries():
            raise EngineError(f"queue {name}: callers wait in it")
        del self._queues[name]
        self._rules.pop(name, None)
        self._install(self._rules)

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

    def find(self, call_id: str) -> QueueEntry | None:
        """The queue entry of ``call_id`` (a caller, a callback request, a dial waiting for
        an agent), whichever queue it waits in; None when it waits in none. O(queues)."""
        for queue in self._queues.values():
            entry = queue.find(call_id)
            if entry is not None:
                return entry
        return None

    def callers(self, queue: str) -> list[QueueEntry]:
        """Everyone waiting in ``queue``, in queue order (O(n log n); for supervisors)."""
        return self._queue(queue).entries()

    def reprioritise(self, entry: QueueEntry, priority: int, *, via: str = "cli") -> int:
        """Change a waiting caller's priority (app_queue's QueueChangePriorityCaller):
        higher is served first; among callers of the same priority, by arrival. Returns the
        old priority. Raises EngineError once the caller left or connected."""
        if entry.status in (EntryStatus.CONNECTED, EntryStatus.LEFT):
            raise EngineError(f"call {entry.call_id} is no longer waiting in {entry.queue}")
        old = entry.priority
        if priority != old:
            self._queue(entry.queue).reprioritise(entry, priority)
            log.info(
                "caller_priority_changed",
                call_id=entry.call_id,
                queue=entry.queue,
                old=old,
                new=priority,
                via=via,
            )
        return old

    def hand_to(self, entry: QueueEntry, agent_id: str) -> Agent:
        """A supervisor gives the waiting caller to ``agent_id`` now, ahead of the queue's
        order, strategy, skills and escalation stages: the agent is reserved (RINGING) and
        :meth:`next_agents` returns them. Raises UnknownAgent, or EngineError when the
        caller is not waiting (an agent rings for it already, or it is gone), the agent is
        not a member of the queue (or is paused in it), or is not free (logged out, paused,
        ringing, talking, in after-call work, on a phone the PBX cannot reach)."""
        agent = self._agent(agent_id)
        queue = self._queue(entry.queue)
        if entry.status is EntryStatus.OFFERED:
            raise EngineError(f"an agent is being rung for call {entry.call_id}: try again after")
        if entry.status not in (EntryStatus.WAITING, EntryStatus.HUNTING):
            raise EngineError(f"call {entry.call_id} is no longer waiting in {entry.queue}")
        if agent_id not in queue.by_agent:
            raise EngineError(
                f"agent {agent_id} is not a member of queue {entry.queue} (or is paused in it)"
            )
        if agent.state is not _S.AVAILABLE or agent_id in self._offers:
            raise EngineError(f"agent {agent_id} is not free ({agent.state.value})")
        if agent.device_unreachable:
            raise EngineError(f"agent {agent_id}'s phone cannot be reached")
        # A caller waiting for their sticky agent stops: the one given rings at once.
        self.release_hold(entry)
        if entry.status is EntryStatus.WAITING:
            entry.move(EntryStatus.HUNTING)
        self._reserve_for(queue, entry, [agent])
        log.info("caller_handed_to_agent", call_id=entry.call_id, queue=entry.queue, agent=agent_id)
        return agent

    def waiting(self, queue: str) -> int:
        """Callers in ``queue`` not yet connected or gone (those being rung included; not
        the campaign dials waiting for an agent, nor agents' own dials). Counts them:
        O(callers)."""
        return sum(
            1 for e in self._queue(queue).entries() if e.campaign is None and not e.dialled_by
        )

    def available_agents(self, queue: str) -> list[str]:
        """Idle, ready members of ``queue`` in the order they would be offered."""
        return self._queue(queue).idle_members()

    def free_agents(self, queue: str) -> int:
        """Idle, ready members of ``queue`` who could take its callers now (the queue's
        own skills, its first stage's penalties and levels: a campaign's leads need no
        more), less its callers not yet offered one (campaign dials waiting for an agent
        count as callers here): how many more calls the queue could put through now.
        O(members + callers)."""
        q = self._queue(queue)
        unserved = sum(
            1 for e in q.entries() if e.status in (EntryStatus.WAITING, EntryStatus.HUNTING)
        )
        return max(0, q.idle_count(q.klass(q.rules.skills, 0)) - unserved)

    def stalled(self) -> list[tuple[str, str]]:
        """Hunting callers that a ready member could take now, as (call id, agent id): what
        the router's invariant rules out (it serves at every change), so any pair here is
        a caller left waiting beside a free agent. For checks (the soak) and tests:
        O(classes x members)."""
        found: list[tuple[str, str]] = []
        for queue in self._queues.values():
            for klass in queue.classes():
                entry = klass.head()
                if entry is None:
                    continue
                ready = next((m.agent.id for m in klass.members if queue.ready(m.agent)), None)
                if ready is not None:
                    found.append((entry.call_id, ready))
        return found

    def owing_dispositions(self) -> list[str]:
        """Agents whose last call waits for its disposition (``disposition_required``)."""
        return [a.id for a in self._agents.values() if a.owes_disposition]

    def staffed(self, queue: str) -> int:
        """Members of ``queue`` logged in and not paused."""
        return self._queue(queue).present

    def has_agents_for(self, queue: str, skills: Collection[str] = ()) -> bool:
        """Could anyone logged in, unpaused and on a reachable phone ever take a caller of
        ``queue`` needing ``skills`` (the queue's own skills are added)? O(1) once asked
        before."""
        q = self._queue(queue)
        return q.has_agents_for(frozenset(skills) | q.rules.skills)

    def is_empty_for(self, entry: QueueEntry) -> bool:
        """No member who could take this caller is logged in, unpaused and reachable."""
        return not self._queue(entry.queue).has_agents_for(entry.skills)

    def estimated_wait(self, entry: QueueEntry) -> float | None:
        """Estimated seconds until the caller is offered an agent (see
        :meth:`CallQueue.estimated_wait`), or None when there is nothing to go on."""
        return self._queue(entry.queue).estimated_wait(entry.call_id)

    def expected_wait(self, queue: str) -> float | None:
        """Estimated seconds a caller joining ``queue`` now would wait (the position after
        its callers, see :meth:`CallQueue.estimated_wait`); None with nothing to go on."""
        return self._queue(queue).wait_at(self.waiting(queue) + 1)

    def now(self) -> float:
        """The router's clock (monotonic seconds): what ``logged_in_at``, ``idle_since``
        and the other agent times count in."""
        return self._clock()

    def wait_for_new_caller(self, queue: str) -> float | None:
        """What a caller calling ``queue`` now would wait, as told to people (a web page,
        a wallboard): 0 while more agents are free than callers wait, else
        :meth:`expected_wait`."""
        if self.free_agents(queue) > self.waiting(queue):
            return 0.0
        return self.expected_wait(queue)

    def rules(self, queue: str) -> QueueRules:
        return self._queue(queue).rules

    # ------------------------------------------------------------------ agent sessions

    def login(
        self,
        agent_id: str,
        *,
        via: str = "cli",
        device: str | None = None,
        line: bool = False,
        paused: str | None = None,
    ) -> None:
        """Start the agent's shift: AVAILABLE, idle from now; at ``device`` for this shift
        when given (hot desking: see :meth:`_sit_at`; ``line``: the device reaches the
        agent's open line, :mod:`callcenter.line`). ``paused``: PAUSED for that reason
        instead (not ready yet): no caller is offered to them before they unpause."""
        agent = self._agent(agent_id)
        if agent.state is not _S.LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is already logged in ({agent.state})")
        self._sit_at(agent, device, line=line)
        now = self._clock()
        agent.logged_in_at = now
        agent.no_answer_streak = 0
        self._publish(AgentLoggedIn(agent=agent_id, device=agent.device, via=via, mono=now))
        log.info("agent_logged_in", agent=agent_id, via=via, paused=paused)
        if paused is None:
            self._make_available(agent, now, idle_since=now)
            return
        agent.idle_since = now
        agent.pending_pause = None
        agent.pause_reason, agent.pause_via = paused, via
        self._publish(AgentPaused(agent=agent_id, reason=paused, via=via, mono=now))
        self._set_state(agent, _S.PAUSED, now)

    def resume(
        self,
        agent_id: str,
        *,
        logged_in: datetime,
        paused: tuple[str, datetime] | None = None,
        via: str = "cli",
        via_pause: str = "cli",
        owes_disposition: bool = False,
        device: str | None = None,
    ) -> None:
        """Take back a shift the previous daemon left open: the agent is logged in since
        ``logged_in`` (UTC) and, with ``paused`` (reason, since), on that pause, as its
        records say. The AgentLoggedIn / AgentPaused events carry those times and how the
        agent did it (``via``, ``via_pause``), so the shift and pause records span the
        restart. An agent not paused is AVAILABLE, idle from now; with
        ``owes_disposition`` (their last call still waits for its code) in WRAP_UP until
        :meth:`disposed`, or back to it from the pause; ``device``: the phone of a
        hot-desking shift. IllegalTransition when the agent is already logged in."""
        agent = self._agent(agent_id)
        if agent.state is not _S.LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is already logged in ({agent.state})")
        self._sit_at(agent, device)
        now = self._clock()
        wall = datetime.now(UTC)

        def since(at: datetime) -> float:
            return now - max(0.0, (wall - at).total_seconds())

        agent.logged_in_at = since(logged_in)
        agent.no_answer_streak = 0
        self._publish(
            AgentLoggedIn(
                agent=agent_id, device=agent.device, via=via, at=logged_in, mono=agent.logged_in_at
            )
        )
        log.info(
            "agent_shift_resumed",
            agent=agent_id,
            via=via,
            paused=paused is not None,
            owes_disposition=owes_disposition,
        )
        agent.owes_disposition = owes_disposition
        if paused is None:
            if owes_disposition:
                self._set_state(agent, _S.WRAP_UP, now)
            else:
                self._make_available(agent, now, idle_since=now)
            return
        reason, paused_at = paused
        agent.pending_pause = None
        agent.pause_reason, agent.pause_via = reason, via_pause
        self._publish(
            AgentPaused(
                agent=agent_id, reason=reason, via=via_pause, at=paused_at, mono=since(paused_at)
            )
        )
        self._set_state(agent, _S.PAUSED, now)

    def logout(self, agent_id: str, *, via: str = "cli") -> None:
        """End the agent's shift.

        ON_CALL: ``logout_pending`` is set and the logout happens when the call ends.
        RINGING: the offer is revoked and the agent logs out now. When it was the caller's
        only reserved agent the caller goes back to waiting, ``entry.revoked`` is set and
        :attr:`on_offer_revoked` is called.
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
                agent.pause_reason, agent.pause_via = reason, via
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
            agent.pause_reason = agent.pause_via = None
            agent.no_answer_streak = 0
            self._publish(AgentUnpaused(agent=agent_id, via=via, mono=now))
            log.info("agent_unpaused", agent=agent_id, via=via)
            if agent.owes_disposition:
                # Paused in (or right after) a wrap-up that waits for a code: back to it.
                self._set_state(agent, _S.WRAP_UP, now)
                return
            self._make_available(agent, now, idle_since=now)
            return
        if agent.pending_pause is not None:
            agent.pending_pause = None
            self._pause_via.pop(agent_id, None)
            return
        raise IllegalTransition(f"agent {agent_id} is not paused ({agent.state})")

    def end_wrapup(self, agent_id: str) -> None:
        """The agent is done with after-call work before the timer: AVAILABLE now. Refused
        (EngineError) while the call still needs its disposition."""
        agent = self._agent(agent_id)
        if agent.state is not _S.WRAP_UP:
            raise IllegalTransition(f"agent {agent_id} is not in wrap-up ({agent.state})")
        if agent.owes_disposition:
            raise EngineError(f"agent {agent_id} has to give the last call a disposition first")
        self._make_available(agent, self._clock())

    def disposed(self, agent_id: str) -> None:
        """The agent gave their last call its disposition: a wrap-up that waited only for it
        is over (one whose time is still running ends with its timer)."""
        agent = self._agent(agent_id)
        if not agent.owes_disposition:
            return
        agent.owes_disposition = False
        if (
            agent.state is _S.WRAP_UP
            and agent_id not in self._wrapup_timers
            and agent_id not in self._until_ready
        ):
            self._make_available(agent, self._clock())

    def device_state(self, device: str, *, in_use: bool, reachable: bool = True) -> None:
        """The PBX says ``device`` is (not) in use, and whether it can be called at all.
        Agents on it are not offered calls of queues without ``ring_in_use`` while it is in
        use, and none while it is unreachable (a softphone that is not registered)."""
        for agent in self._by_device.get(device, ()):
            if agent.device_busy == in_use and agent.device_unreachable == (not reachable):
                continue
            changed = agent.device_unreachable == reachable
            back = agent.device_unreachable and reachable
            agent.device_busy = in_use
            agent.device_unreachable = not reachable
            if changed and agent.state not in _ABSENT:
                self._presence(agent, reachable)
            if changed:
                log.info(
                    "agent_device_reachable" if reachable else "agent_device_unreachable",
                    agent=agent.id,
                    device=device,
                )
                self._publish(
                    AgentPhoneReachable(
                        agent=agent.id, device=device, reachable=reachable, mono=self._clock()
                    )
                )
            if agent.state is not _S.AVAILABLE or (agent.delayed and not back):
                continue
            # A phone that registers again ends the delay its failed rings earned.
            agent.delayed = False
            agent.idle_token += 1
            if (in_use or not reachable) or not self._serve_agent(agent):
                self._index_idle(agent)

    # ------------------------------------------------------------------ callers

    def enqueue(
        self,
        queue: str,
        call_id: str,
        *,
        priority: int = 0,
        skills: Collection[str] = (),
        joined: float | None = None,
        head_start: float = 0.0,
        others_first: str = "",
    ) -> QueueEntry:
        """Put a caller in ``queue``; it is offered agents once ``next_agents`` is awaited.

        ``head_start``: seconds the caller is served as if they had joined earlier, among
        callers of the same priority (their wait, escalation and records keep ``joined``).
        ``others_first``: an agent offered the caller only when no other may take them
        (the agent who sent them here), as if already tried this round.

        ``skills``: what the IVR asked for (the queue's own skills are added). ``joined``:
        when the caller joined, on the router's clock (now by default; earlier for a caller
        taken back after a restart, who keeps their place ahead of later callers).
        """
        q = self._queue(queue)
        entry = QueueEntry(
            call_id=call_id,
            queue=queue,
            priority=priority,
            joined=self._clock() if joined is None else joined,
            seq=next(self._seq),
            skills=frozenset(skills) | q.rules.skills,
            head_start=max(0.0, head_start),
        )
        if others_first:
            entry.tried.add(others_first)
        q.add(entry)
        self._schedule_escalation(q, entry)
        return entry

    async def next_agents(self, entry: QueueEntry) -> list[Agent]:
        """Wait until agents are reserved (RINGING) for this caller and return them (one,
        or several for ringall); ``[]`` when the queue has ``leave_when_empty`` and nobody
        who could take the caller is logged in, unpaused and reachable any more.

        Cancelling the waiting task leaves no reservation behind: agents reserved in the
        meantime go back to AVAILABLE. Raises EngineError if the caller left the queue
        (``leave``) while waiting.
        """
        queue = self._queue(entry.queue)
        while True:
            if entry.status in (EntryStatus.CONNECTED, EntryStatus.LEFT):
                raise EngineError(f"call {entry.call_id} is no longer waiting in {entry.queue}")
            if entry.status is EntryStatus.OFFERED and entry.agents:
                return list(entry.agents)
            if entry.offer is not None:
                raise EngineError(f"call {entry.call_id} is already waiting for an agent")
            if queue.rules.leave_when_empty and not queue.has_agents_for(entry.skills):
                return []
            future: asyncio.Future[list[Agent]] = asyncio.get_running_loop().create_future()
            entry.offer = future
            entry.revoked = False
            entry.move(EntryStatus.HUNTING)
            self._serve_class(queue, queue.push_hunting(entry))
            try:
                agents = await future
            except asyncio.CancelledError:
                self._stop_hunting(entry)
                raise
            finally:
                entry.offer = None
            if not agents:
                return []
            if entry.status is EntryStatus.OFFERED and entry.agents:
                return list(entry.agents)
            # The reservation was undone before this task resumed (the agent logged out):
            # hunt again.

    def prefer(self, entry: QueueEntry, agent_id: str) -> bool:
        """Offer the waiting caller ``agent_id`` at once, before the queue's strategy has a
        say (the agent they talked to last: queues' ``last_agent``), if that agent is a
        member who is free right now and has the skills the caller needs (penalties and
        escalation stages do not count). :meth:`next_agents` then returns the agent. False,
        changing nothing, otherwise."""
        agent = self._agents.get(agent_id)
        queue = self._queue(entry.queue)
        if (
            agent is None
            or entry.status is not EntryStatus.WAITING
            or agent_id not in queue.by_agent
            or not queue.ready(agent)
        ):
            return False
        final = queue.klass(entry.skills, len(queue.rules.stages) - 1)
        if queue.by_agent[agent_id] not in final.members:
            return False
        entry.move(EntryStatus.HUNTING)
        self._reserve_for(queue, entry, [agent])
        return True

    def claim(self, entry: QueueEntry, agent_id: str) -> Agent:
        """Reserve ``agent_id`` for ``entry`` at once, ahead of the queue's order and
        whatever their phone's state: the agent asked for this call (one they dial out).
        :meth:`next_agents` then returns them. A paused agent's pause ends now and begins
        again when the call is over (they dial while on a break from queue callers); an
        agent in after-call work ends it. Raises UnknownAgent, or EngineError when they
        cannot take a call (logged out, ringing, talking, owing the last call its
        disposition) or are not a member of the queue (or are paused in it)."""
        agent = self._agent(agent_id)
        queue = self._queue(entry.queue)
        state = agent.state
        if state in (_S.LOGGED_OUT, _S.RINGING, _S.ON_CALL):
            doing = {
                _S.LOGGED_OUT: "is not logged in",
                _S.RINGING: "is being offered a call (or shown a lead)",
            }.get(state, "is on a call")
            raise EngineError(f"agent {agent_id} {doing}")
        if agent.owes_disposition:
            raise EngineError(f"agent {agent_id} has to give the last call a disposition first")
        if agent_id not in queue.by_agent:
            raise EngineError(
                f"agent {agent_id} is not a member of queue {entry.queue} (or is paused in it)"
            )
        if entry.status is not EntryStatus.WAITING:
            raise EngineError(f"call {entry.call_id} is not waiting in {entry.queue}")
        now = self._clock()
        if state is _S.PAUSED:
            reason = agent.pause_reason or "break"
            agent.pause_reason = agent.pause_via = None
            self._publish(AgentUnpaused(agent=agent_id, via=DIAL_VIA, mono=now))
            agent.pending_pause = reason
            self._pause_via[agent_id] = DIAL_VIA
        if state is not _S.AVAILABLE:
            # Not through _make_available: a waiting caller must not take them first.
            self._set_state(agent, _S.AVAILABLE, now)
        entry.move(EntryStatus.HUNTING)
        self._reserve_for(queue, entry, [agent])
        return agent

    def hold_for(self, entry: QueueEntry, agent_id: str) -> asyncio.Future[bool] | None:
        """Keep ``agent_id`` for the waiting caller ``entry`` (their sticky agent, busy
        now): the moment they are ready they are reserved for it, before any other caller,
        and :meth:`next_agents` returns them. The future is True then, False when the
        agent went (logged out, paused) or :meth:`release_hold` gave up. None, changing
        nothing, when they cannot be kept for it (not a member with the skills the caller
        needs, logged out, paused, kept for another caller) or the caller is not WAITING.
        The caller must not hunt meanwhile."""
        agent = self._agents.get(agent_id)
        queue = self._queue(entry.queue)
        if (
            agent is None
            or agent.state in _ABSENT
            or agent_id in self._holds
            or entry.status is not EntryStatus.WAITING
            or agent_id not in queue.by_agent
        ):
            return None
        final = queue.klass(entry.skills, len(queue.rules.stages) - 1)
        if queue.by_agent[agent_id] not in final.members:
            return None
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if queue.ready(agent):
            # Free already: theirs at once (as prefer() would have done).
            entry.move(EntryStatus.HUNTING)
            self._reserve_for(queue, entry, [agent])
            future.set_result(True)
            return future
        self._holds[agent_id] = (entry, future)
        return future

    def release_hold(self, entry: QueueEntry) -> None:
        """Stop keeping an agent for ``entry`` (the wait for them is over)."""
        for agent_id, (held, future) in list(self._holds.items()):
            if held is entry:
                del self._holds[agent_id]
                if not future.done():
                    future.set_result(False)

    def stop_hunting(self, entry: QueueEntry) -> None:
        """Undo what a hunt for ``entry`` got (agents reserved go back to AVAILABLE); the
        caller is WAITING again."""
        self._stop_hunting(entry)

    def _serve_hold(self, agent: Agent) -> bool:
        """``agent`` just became ready: reserve them for the caller they are kept for, if
        that caller still waits. False when there is none."""
        held = self._holds.pop(agent.id, None)
        if held is None:
            return False
        entry, future = held
        queue = self._queues.get(entry.queue)
        if (
            future.done()
            or entry.status is not EntryStatus.WAITING
            or queue is None
            or agent.id not in queue.by_agent
        ):
            if not future.done():
                future.set_result(False)
            return False
        if not queue.ready(agent):
            # Free, but their phone is still in use (its device state lags the hang-up):
            # kept until it is not.
            self._holds[agent.id] = held
            return False
        entry.move(EntryStatus.HUNTING)
        self._reserve_for(queue, entry, [agent])
        future.set_result(True)
        return True

    async def next_agent(self, entry: QueueEntry) -> Agent:
        """Like :meth:`next_agents`, for one agent (the first reserved). Raises
        EngineError when the queue emptied (leave-when-empty)."""
        agents = await self.next_agents(entry)
        if not agents:
            raise EngineError(f"queue {entry.queue} has no agent for call {entry.call_id}")
        return agents[0]

    def hunt_nowait(self, entry: QueueEntry) -> list[Agent]:
        """Start hunting without waiting: the agents reserved now, or ``[]`` (the caller
        then stays HUNTING; a later reservation shows in ``entry.status``/``agents``)."""
        if entry.status is EntryStatus.WAITING:
            queue = self._queue(entry.queue)
            entry.move(EntryStatus.HUNTING)
            self._serve_class(queue, queue.push_hunting(entry))
        return list(entry.agents) if entry.status is EntryStatus.OFFERED else []

    def offer_more(self, entry: QueueEntry) -> Agent | None:
        """Reserve one more idle agent for a caller already being offered some (for
        ring-progressively); None when nobody else is free."""
        if entry.status is not EntryStatus.OFFERED:
            return None
        queue = self._queue(entry.queue)
        klass = queue.klass(entry.skills, entry.stage)
        picked = queue.pick(klass, entry.tried, self.rng)
        if not picked:
            return None
        agent = picked[0]
        self._reserve_one(queue, entry, agent)
        return agent

    def ring_failed(
        self, entry: QueueEntry, agent: Agent, outcome: RingOutcome = RingOutcome.NO_ANSWER
    ) -> None:
        """The reserved agent did not take the call: back to AVAILABLE (after the queue's
        delay for ``outcome``), or paused (reason: ``outcome``'s value) once ``autopause``
        offers in a row failed in ways the queue's ``autopause_on`` counts. The caller is not
        offered it again this round. A no-op when the offer was already undone (caller
        left, agent logged out)."""
        if self._offers.get(agent.id) is not entry or agent not in entry.agents:
            log.debug("ring_failed_after_offer_ended", call_id=entry.call_id, agent=agent.id)
            return
        now = self._clock()
        queue = self._queue(entry.queue)
        rules = queue.rules
        entry.agents.remove(agent)
        if outcome is not RingOutcome.CANCELLED:
            entry.tried.add(agent.id)
        if not entry.agents:
            entry.move(EntryStatus.WAITING)
        delay = 0.0
        auto_pause: str | None = None
        if outcome is RingOutcome.NO_ANSWER:
            agent.missed_offers += 1
            delay = rules.no_answer_delay
        elif outcome is RingOutcome.BUSY:
            delay = rules.busy_delay
        elif outcome is RingOutcome.REJECTED:
            delay = rules.reject_delay
        if outcome in rules.autopause_on:
            agent.no_answer_streak += 1
            limit = agent.autopause if agent.autopause is not None else rules.autopause
            if limit and agent.no_answer_streak >= limit:
                auto_pause = outcome.value
        self._release(agent, now, delay=delay, auto_pause=auto_pause)

    def connected(self, entry: QueueEntry, agent: Agent) -> None:
        """The agent answered: ON_CALL, and the caller leaves the queue; any other agent
        ringing for it (ringall) is released."""
        queue = self._queue(entry.queue)
        now = self._clock()
        if self._offers.get(agent.id) is entry and agent.state is _S.RINGING:
            del self._offers[agent.id]
            others = [a for a in entry.agents if a is not agent]
            entry.agents = [agent]
            entry.move(EntryStatus.CONNECTED)
            self._forget(queue, entry)
            self._set_state(agent, _S.ON_CALL, now)
            agent.calls_taken += 1
            agent.no_answer_streak = 0
            agent.call_id = entry.call_id
            member = queue.by_agent.get(agent.id)
            if member is not None:
                member.calls += 1
            for other in others:
                if self._offers.get(other.id) is entry:
                    self._release(other, now)
            return
        # The offer was revoked (the agent logged out while ringing) and it answered anyway:
        # the caller really is talking, so it leaves the queue; the agent stays logged out.
        others = list(entry.agents) if entry.status is EntryStatus.OFFERED else []
        entry.move(EntryStatus.CONNECTED)
        entry.agents = [agent]
        self._forget(queue, entry)
        for other in others:
            if other is not agent and self._offers.get(other.id) is entry:
                self._release(other, now)
        log.warning("agent_answered_revoked_offer", call_id=entry.call_id, agent=agent.id)

    def call_finished(
        self, agent_id: str, queue: str | None = None, *, talk_seconds: float = 0.0
    ) -> None:
        """The agent's call ended: pending logout or pause applies, else WRAP_UP until the
        agent is ready (a queue with ``wrapup_until_ready``) or for the agent's (or else
        the queue's) wrap-up seconds (a timer makes it AVAILABLE), else AVAILABLE now.
        ``talk_seconds`` feeds least-talk-time and the queue's handle times.

        Idle from now. A no-op (logged) for an agent that is not ON_CALL.
        """
        agent = self._agent(agent_id)
        if agent.state is not _S.ON_CALL:
            log.info("call_finished_ignored", agent=agent_id, state=str(agent.state))
            return
        now = self._clock()
        call_id, agent.call_id = agent.call_id, None
        agent.idle_since = now
        agent.talk_seconds += max(0.0, talk_seconds)
        q = self._queues.get(queue) if queue else None
        seconds = (
            agent.wrapup if agent.wrapup is not None else (q.rules.wrapup if q is not None else 0.0)
        )
        if q is not None:
            member = q.by_agent.get(agent_id)
            if member is not None:
                member.last_call = now
            q.handle_times.append(max(0.0, talk_seconds) + seconds)
            agent.owes_disposition = q.rules.disposition_required
        if agent.logout_pending:
            self._apply_logout(agent, self._logout_via.pop(agent_id, "cli"), now)
            return
        if agent.owes_disposition and call_id is not None:
            for listener in self.owed_listeners:
                try:
                    listener(agent_id, call_id)
                except Exception:
                    log.exception("owed_listener_failed", agent=agent_id)
        if agent.pending_pause is not None:
            self._apply_pause(agent, agent.pending_pause, self._pause_via.pop(agent_id, "cli"), now)
            return
        if q is not None and q.rules.wrapup_until_ready:
            self._set_state(agent, _S.WRAP_UP, now)
            self._until_ready.add(agent_id)
            return
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
        if agent.owes_disposition:
            self._set_state(agent, _S.WRAP_UP, now)
            return
        self._make_available(agent, now)

    def leave(self, entry: QueueEntry) -> None:
        """The caller is gone (hung up, timed out, went elsewhere): out of the queue, its
        reserved agents (if any) released. Idempotent; a no-op after ``connected``."""
        if entry.status in (EntryStatus.CONNECTED, EntryStatus.LEFT):
            return
        queue = self._queue(entry.queue)
        agents = list(entry.agents) if entry.status is EntryStatus.OFFERED else []
        entry.agents = []
        entry.move(EntryStatus.LEFT)
        self._forget(queue, entry)
        if entry.offer is not None and not entry.offer.done():
            entry.offer.set_exception(EngineError(f"call {entry.call_id} left queue {entry.queue}"))
        now = self._clock()
        for agent in agents:
            if self._offers.get(agent.id) is entry:
                self._release(agent, now)

    def escalate(self, entry: QueueEntry) -> bool:
        """Move the caller to its queue's next escalation stage now (its timer does this
        when the stage's ``after`` seconds are reached). False when there is none."""
        if entry.status in (EntryStatus.CONNECTED, EntryStatus.LEFT):
            return False
        queue = self._queue(entry.queue)
        if entry.stage >= len(queue.rules.stages) - 1:
            return False
        entry.stage += 1
        self._publish(
            QueueEscalated(
                call_id=entry.call_id, queue=entry.queue, stage=entry.stage, mono=self._clock()
            )
        )
        log.info("caller_escalated", call_id=entry.call_id, queue=entry.queue, stage=entry.stage)
        if entry.status is EntryStatus.HUNTING:
            left = entry.klass
            self._serve_class(queue, queue.push_hunting(entry))
            if left is not None:
                left.head()  # drop stale tops now rather than in a later decision
        self._schedule_escalation(queue, entry)
        return True

    def rebind(self, entry: QueueEntry, call_id: str) -> None:
        """The caller is now on call ``call_id`` (answered callback): same place, new id."""
        self._queue(entry.queue).rekey(entry, call_id)
        for agent in entry.agents:
            agent.call_id = call_id

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
        return {
            "agents": [self.agent_view(a, now) for a in self._agents],
            "queues": [self.queue_view(q, now) for q in self._queues],
        }

    def agent_ids(self) -> list[str]:
        """Every configured agent's id, in config order."""
        return list(self._agents)

    def queue_names(self) -> list[str]:
        """Every configured queue's name, in config order."""
        return list(self._queues)

    def agent_view(self, agent_id: str, now: float | None = None) -> dict[str, Any]:
        """One agent of :meth:`snapshot` (raises UnknownAgent)."""
        a = self._agent(agent_id)
        now = self._clock() if now is None else now
        return {
            "id": a.id,
            "name": a.name,
            "device": a.device,
            "hot_desking": a.desk is not None and not a.on_line,
            "on_line": a.on_line,
            "state": a.state.value,
            "time_in_state": round(a.time_in_state(now), 1),
            "pause_reason": a.pause_reason,
            "pause_via": a.pause_via,
            "pending_pause": a.pending_pause,
            "logout_pending": a.logout_pending,
            "owes_disposition": a.owes_disposition,
            "call_id": a.call_id,
            "calls_taken": a.calls_taken,
            "missed_offers": a.missed_offers,
            "talk_seconds": round(a.talk_seconds, 1),
            "skills": dict(a.skills),
            "ready": a.state is _S.AVAILABLE
            and not a.delayed
            and not a.device_busy
            and not a.device_unreachable,
            "device_reachable": not a.device_unreachable,
            "until_ready": a.id in self._until_ready,
            "queues": [q.name for q in self._member_of.get(a.id, ())],
        }

    def queue_view(self, name: str, now: float | None = None) -> dict[str, Any]:
        """One queue of :meth:`snapshot` (raises UnknownQueue)."""
        q = self._queue(name)
        now = self._clock() if now is None else now
        oldest = q.oldest_joined()
        callbacks = dials = own = 0
        for e in q.entries():
            if e.callback is not None:
                callbacks += 1
            elif e.campaign is not None:
                dials += 1
            elif e.dialled_by:
                own += 1
        if dials or own:
            # Campaign dials wait behind callers, agents' own dials wait for nobody: the
            # longest wait is a caller's.
            oldest = min(
                (e.joined for e in q.entries() if e.campaign is None and not e.dialled_by),
                default=None,
            )
        return {
            "name": q.name,
            "strategy": str(q.strategy),
            "weight": q.rules.weight,
            "members": list(q.members),
            "waiting": len(q) - dials - own,
            "callbacks": callbacks,
            "campaign_dials": dials,
            "agent_dials": own,
            "available": len(q.idle_members()),
            "staffed": q.present,
            "longest_wait": round(now - oldest, 1) if oldest is not None else 0.0,
        }

    # ------------------------------------------------------------------ internals

    def _publish(self, event: EngineEvent) -> None:
        if self._bus is not None:
            self._bus.publish(event)

    @staticmethod
    def _ready_for(agent: Agent, queue: CallQueue) -> bool:
        return not agent.device_unreachable and (queue.rules.ring_in_use or not agent.device_busy)

    def _set_state(self, agent: Agent, new: AgentState, now: float) -> AgentState:
        old = agent.move(new, now=now)
        if _S.AVAILABLE in (old, new):
            agent.idle_token += 1
        if old is _S.AVAILABLE:
            agent.delayed = False
        if old is _S.WRAP_UP:
            handle = self._wrapup_timers.pop(agent.id, None)
            if handle is not None:
                handle.cancel()
            self._until_ready.discard(agent.id)
        if not agent.device_unreachable and (old in _ABSENT) != (new in _ABSENT):
            self._presence(agent, new not in _ABSENT)
        if new in _ABSENT and self._holds:
            held = self._holds.pop(agent.id, None)
            if held is not None and not held[1].done():
                held[1].set_result(False)  # gone: the caller is not kept waiting for them
        if self._bus is not None:
            self._bus.publish(
                AgentStateChanged(agent=agent.id, old=old.value, new=new.value, mono=now)
            )
        return old

    def _presence(self, agent: Agent, present: bool) -> None:
        """``agent`` became able (or unable) to take calls at all: logged in, unpaused and
        on a reachable phone. Queues with ``leave_when_empty`` let go of callers nobody is
        left to take."""
        emptied = []
        for queue in self._member_of.get(agent.id, ()):
            classes = queue.presence(agent, 1 if present else -1)
            if not classes:
                continue
            if queue.rules.leave_when_empty:
                emptied.append(queue)
            if queue.rules.escalate_unstaffed:
                self._escalate_unstaffed(queue, {(k.skills, k.stage) for k in classes})
        for queue in emptied:
            self._wake_if_empty(queue)

    def _escalate_unstaffed(
        self, queue: CallQueue, unstaffed: set[tuple[frozenset[str], int]]
    ) -> None:
        """The last agent of some stages left: their callers move on (O(callers))."""
        last = len(queue.rules.stages) - 1
        for entry in queue.entries_unordered():
            if entry.stage < last and (entry.skills, entry.stage) in unstaffed:
                if entry.status in (EntryStatus.CONNECTED, EntryStatus.LEFT):
                    continue
                self._schedule_escalation(queue, entry)

    def _make_available(
        self,
        agent: Agent,
        now: float,
        *,
        idle_since: float | None = None,
        delay: float = 0.0,
    ) -> None:
        if idle_since is not None:
            agent.idle_since = idle_since
        self._set_state(agent, _S.AVAILABLE, now)
        if delay > 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                log.warning("ring_delay_skipped_no_event_loop", agent=agent.id)
            else:
                agent.delayed = True
                loop.call_later(delay, self._delay_over, agent.id, agent.idle_token)
                return
        self._make_ready(agent)

    def _make_ready(self, agent: Agent) -> None:
        agent.delayed = False
        agent.idle_token += 1
        # A waiting caller takes the agent at once; only otherwise is it indexed as idle (in
        # a busy centre most agents never are, which keeps the idle indexes small).
        if not self._serve_agent(agent):
            self._index_idle(agent)

    def _index_idle(self, agent: Agent) -> None:
        indexed = False
        for queue in self._member_of[agent.id]:
            if self._ready_for(agent, queue):
                queue.push_idle(agent)
                indexed = True
        if indexed:
            for listener in self.idle_listeners:
                listener(agent.id)

    def _delay_over(self, agent_id: str, token: int) -> None:
        agent = self._agents[agent_id]
        if agent.state is _S.AVAILABLE and agent.delayed and agent.idle_token == token:
            self._make_ready(agent)

    def _serve_agent(self, agent: Agent) -> bool:
        """``agent`` just became ready: give it the caller it is kept for, else the best
        hunting caller it may take. False when nobody waits for it."""
        if self._holds and self._serve_hold(agent):
            return True
        best: tuple[tuple[float, ...], QueueEntry, CallQueue] | None = None
        for queue in self._member_of[agent.id]:
            if not self._ready_for(agent, queue):
                continue
            head = queue.head_for(queue.by_agent[agent.id])
            if head is None:
                continue
            if self.longest_waiting_first:
                rank: tuple[float, ...] = (head.joined, head.seq)
            else:
                rank = (-queue.rules.weight, *head.key)
            if best is None or rank < best[0]:
                best = (rank, head, queue)
        if best is None:
            return False
        _rank, entry, queue = best
        entry.tried.discard(agent.id)  # the only idle agent for it: a new round if tried
        self._reserve_for(queue, entry, [agent])
        return True

    def _serve_class(self, queue: CallQueue, klass: HuntClass) -> None:
        while (entry := klass.head()) is not None:
            agents = queue.pick(klass, entry.tried, self.rng)
            if not agents and entry.tried:
                agents = queue.pick(klass, (), self.rng)
                if agents:
                    entry.tried.clear()
            if not agents:
                return
            self._reserve_for(queue, entry, agents)

    def _reserve_for(self, queue: CallQueue, entry: QueueEntry, agents: list[Agent]) -> None:
        entry.move(EntryStatus.OFFERED)
        if queue.strategy not in MULTI_RING:
            agents = agents[:1]
        for agent in agents:
            self._reserve_one(queue, entry, agent)
        if entry.offer is not None and not entry.offer.done():
            entry.offer.set_result(list(entry.agents))

    def _reserve_one(self, queue: CallQueue, entry: QueueEntry, agent: Agent) -> None:
        queue.offered(agent)
        self._set_state(agent, _S.RINGING, self._clock())
        agent.call_id = entry.call_id
        self._offers[agent.id] = entry
        entry.agents.append(agent)

    def _stop_hunting(self, entry: QueueEntry) -> None:
        """``next_agents`` was cancelled: undo any reservation it got."""
        if entry.status is EntryStatus.HUNTING:
            entry.move(EntryStatus.WAITING)
        elif entry.status is EntryStatus.OFFERED and entry.agents:
            agents = list(entry.agents)
            entry.agents = []
            entry.move(EntryStatus.WAITING)
            now = self._clock()
            for agent in agents:
                if self._offers.get(agent.id) is entry:
                    self._release(agent, now)

    def _wake_if_empty(self, queue: CallQueue) -> None:
        """Hunting callers nobody present could take any more get ``[]`` (leave-when-empty)."""
        for klass in queue.classes():
            if klass.final.present:
                continue
            for entry in klass.hunting():
                entry.move(EntryStatus.WAITING)
                if entry.offer is not None and not entry.offer.done():
                    entry.offer.set_result([])

    def _forget(self, queue: CallQueue, entry: QueueEntry) -> None:
        queue.remove(entry)
        if entry.klass is not None:
            entry.klass.head()  # drop stale tops now rather than in a later decision
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

    def _schedule_escalation(self, queue: CallQueue, entry: QueueEntry) -> None:
        stages = queue.rules.stages
        nxt = entry.stage + 1
        if nxt >= len(stages):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if queue.rules.escalate_unstaffed and not queue.klass(entry.skills, entry.stage).present:
            # Soon rather than now: whoever enqueued the caller has not announced it yet.
            delay = 0.0
        else:
            delay = max(0.0, stages[nxt].after - (self._clock() - entry.joined))
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = loop.call_later(delay, self._escalation_due, entry, nxt)

    def _escalation_due(self, entry: QueueEntry, stage: int) -> None:
        entry.timer = None
        if entry.stage == stage - 1:
            self.escalate(entry)

    def _release(
        self, agent: Agent, now: float, *, delay: float = 0.0, auto_pause: str | None = None
    ) -> None:
        """An offer ended without a conversation: back to AVAILABLE, idle time unchanged
        (after ``delay``), or paused for the reason ``auto_pause``."""
        self._offers.pop(agent.id, None)
        self._direct.discard(agent.id)
        agent.call_id = None
        if agent.pending_pause is not None:
            self._apply_pause(agent, agent.pending_pause, self._pause_via.pop(agent.id, "cli"), now)
        elif auto_pause is not None:
            agent.no_answer_streak = 0
            log.info(
                "agent_auto_paused", agent=agent.id, reason=auto_pause, missed=agent.missed_offers
            )
            self._apply_pause(agent, auto_pause, AUTOPAUSE_VIA, now)
        else:
            self._make_available(agent, now, delay=delay)

    def _revoke(self, agent: Agent) -> tuple[QueueEntry | None, bool]:
        """Undo a RINGING agent's reservation; returns the caller and whether the engine
        must be told (it holds the offer and no other agent rings for the caller)."""
        entry = self._offers.pop(agent.id, None)
        direct = agent.id in self._direct
        self._direct.discard(agent.id)
        agent.call_id = None
        if entry is None:
            return None, direct
        if agent in entry.agents:
            entry.agents.remove(agent)
        log.info("offer_revoked", call_id=entry.call_id, agent=agent.id)
        if entry.agents:
            return entry, False
        entry.revoked = True
        entry.move(EntryStatus.WAITING)
        return entry, entry.offer is None

    def _apply_pause(self, agent: Agent, reason: str, via: str, now: float) -> None:
        agent.pending_pause = None
        agent.pause_reason, agent.pause_via = reason, via
        self._publish(AgentPaused(agent=agent.id, reason=reason, via=via, mono=now))
        log.info("agent_paused", agent=agent.id, reason=reason, via=via)
        self._set_state(agent, _S.PAUSED, now)

    def _apply_logout(self, agent: Agent, via: str, now: float) -> None:
        shift = now - agent.logged_in_at if agent.logged_in_at is not None else 0.0
        agent.logout_pending = False
        agent.owes_disposition = False
        agent.pending_pause = None
        agent.pause_reason = agent.pause_via = None
        agent.logged_in_at = None
        self._logout_via.pop(agent.id, None)
        self._pause_via.pop(agent.id, None)
        self._publish(AgentLoggedOut(agent=agent.id, shift_seconds=shift, via=via, mono=now))
        log.info("agent_logged_out", agent=agent.id, via=via, shift_seconds=round(shift, 1))
        self._set_state(agent, _S.LOGGED_OUT, now)
        self._sit_at(agent, None, check=False)

    def seat(
        self, agent_id: str, device: str | None, *, line: bool = False, via: str = "cli"
    ) -> None:
        """A logged-in agent works at ``device`` from now (None: their own device again;
        ``line``: their open line), between calls: EngineError while a call rings them or
        they talk (or when another agent works at that phone), IllegalTransition when
        logged out."""
        agent = self._agent(agent_id)
        if agent.state is _S.LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is not logged in")
        if agent.state in (_S.RINGING, _S.ON_CALL):
            raise EngineError(f"agent {agent_id} is on a call ({agent.state})")
        was_unreachable = agent.device_unreachable
        self._sit_at(agent, device, line=line)
        self._publish(AgentSeated(agent=agent_id, device=agent.device, line=line, via=via))
        if was_unreachable and agent.state not in _ABSENT:
            self._presence(agent, True)
        if agent.state is _S.AVAILABLE and not agent.delayed:
            self._make_ready(agent)

    def _sit_at(
        self, agent: Agent, device: str | None, *, check: bool = True, line: bool = False
    ) -> None:
        """The agent works at ``device`` from now (None or their own: back at their own
        device; ``line``: it is their open line). With ``check``, raises EngineError when
        that is another's phone and an agent logged in works there."""
        desk = None if device is None or device == agent.home_device else device
        agent.on_line = line and desk is not None
        wanted = desk if desk is not None else agent.home_device
        if check and desk is not None:
            for other in self._by_device.get(wanted, ()):
                if other is not agent and other.state is not _S.LOGGED_OUT:
                    raise EngineError(f"agent {other.id} works at {wanted}: log them out first")
        if desk == agent.desk:
            return
        holders = self._by_device.get(agent.device, [])
        if agent in holders:
            holders.remove(agent)
        agent.desk = desk
        agent.device = wanted
        # What the PBX said of the old phone says nothing of this one.
        agent.device_busy = False
        agent.device_unreachable = False
        self._by_device.setdefault(wanted, []).append(agent)
        if desk is not None:
            log.info("agent_hot_desking", agent=agent.id, device=desk, own=agent.home_device)

    def _wrapup_over(self, agent_id: str) -> None:
        self._wrapup_timers.pop(agent_id, None)
        agent = self._agents[agent_id]
        if agent.state is _S.WRAP_UP:
            if agent.owes_disposition:
                log.info("wrapup_waits_for_disposition", agent=agent_id)
                return
            self._make_available(agent, self._clock())
