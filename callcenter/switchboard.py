"""The switchboard: what happens to every call the PBX hands us, from arrival to hang-up.

One task per call runs :meth:`Switchboard.handle_call`. The hook the dialplan used decides
what the call is for (``CallInfo.route``):

* ``inbound``: answer, walk the IVR flow of the dialed number, wait in a queue with music on
  hold, ring agents (longest idle first; an agent who does not answer in ``ring_timeout`` is
  skipped), bridge, and follow transfers to the queue's supervisor.
* ``agent-login``, ``agent-logout``, ``agent-pause``, ``agent-unpause``: the feature codes an
  agent dials from their own phone (optionally protected by the agent's PIN).

Everything the switchboard decides is published as :mod:`callcenter.events`; records and live
figures are folds over those events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from callcenter.acd.agent import Agent
from callcenter.acd.queue import QueueEntry
from callcenter.acd.router import Router
from callcenter.config.models import CallCenterConfig, FlowConfig, QueueConfig
from callcenter.errors import (
    CallHungUp,
    DestinationNotAllowed,
    EngineError,
    PBXError,
    UnknownAgent,
)
from callcenter.events import (
    AgentConnected,
    AgentRingFailed,
    AgentRinging,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    EventBus,
    IvrStep,
    QueueAbandoned,
    QueueExited,
    QueueJoined,
    TalkEnded,
)
from callcenter.ivr.runner import Hangup, ToQueue, run_flow
from callcenter.pbx.interface import Call, DialResult, DialStatus, HangupCause

log = structlog.get_logger(__name__)

T = TypeVar("T")

FEATURE_PROMPTS = {
    "login": "agent-loginok",
    "logout": "agent-loggedoff",
    "pause": "agent-paused",
    "unpause": "agent-unpaused",
}


@dataclass(slots=True)
class ActiveCall:
    """A call the switchboard is handling, as the API and transfers see it."""

    call: Call
    started: float
    queue: str | None = None
    agent: str | None = None
    """Who the caller is talking to now (agent or supervisor id)."""
    pending_transfer: str | None = None
    transferred_by: str | None = None
    bridge_cause: HangupCause = HangupCause.UNSPECIFIED
    """How the last bridge ended (Asterisk reports 0 for channels that only ran AGI)."""
    path: list[str] = field(default_factory=list)


class CallerGone(Exception):
    """Internal: the caller hung up while we waited for something else."""


class Switchboard:
    """Runs every call; owns the router (agents and queues) and the active-call table."""

    def __init__(self, config: CallCenterConfig, router: Router, bus: EventBus) -> None:
        self.config = config
        self.router = router
        self.bus = bus
        self.active: dict[str, ActiveCall] = {}
        self._by_agent: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        router.on_offer_revoked = self._offer_revoked

    def apply_config(self, config: CallCenterConfig) -> None:
        """Use ``config`` for calls that arrive from now on; calls in progress keep theirs."""
        self.config = config

    # ------------------------------------------------------------------ entry point

    async def handle_call(self, call: Call) -> None:
        """Handle one call from arrival to hang-up; never raises for call-level failures."""
        info = call.info
        config = self.config
        started = time.monotonic()
        clog = log.bind(call_id=info.call_id, channel=info.channel, route=info.route)
        active = ActiveCall(call=call, started=started)
        self.active[info.call_id] = active
        self._idle.clear()
        self.bus.publish(
            CallStarted(
                call_id=info.call_id,
                channel=info.channel,
                caller_num=info.caller_num,
                caller_name=info.caller_name,
                dialed=info.dialed,
                context=info.context,
                linked_id=info.linked_id or info.call_id,
                accountcode=info.accountcode,
                transport=info.transport,
            )
        )
        clog.info("call_started", caller=info.caller_num, dialed=info.dialed)
        hung_up_by = "system"
        try:
            if info.route in ("agent-login", "agent-logout", "agent-pause", "agent-unpause"):
                await self._feature_code(call, info.route.removeprefix("agent-"), config)
            else:
                hung_up_by = await self._inbound(call, active, config)
        except CallHungUp:
            hung_up_by = "caller"
        except PBXError as exc:
            clog.warning("call_failed", error=str(exc), error_type=type(exc).__name__)
        except asyncio.CancelledError:
            clog.info("call_task_cancelled")
            raise
        finally:
            self.active.pop(info.call_id, None)
            if not self.active:
                self._idle.set()
            self._release_leftovers(active, info.call_id)
            if not call.hung_up:
                with contextlib.suppress(PBXError):
                    await call.hangup()
            cause = call.hangup_cause
            if cause is HangupCause.UNSPECIFIED:
                cause = active.bridge_cause
            if cause is HangupCause.UNSPECIFIED and hung_up_by != "caller":
                cause = HangupCause.NORMAL_CLEARING
            self.bus.publish(
                CallEnded(
                    call_id=info.call_id,
                    hung_up_by=hung_up_by,
                    cause=int(cause),
                    cause_name=cause.name,
                )
            )
            clog.info("call_ended", hung_up_by=hung_up_by, cause=cause.name)

    async def wait_idle(self) -> None:
        """Return once no call is being handled."""
        await self._idle.wait()

    def _release_leftovers(self, active: ActiveCall, call_id: str) -> None:
        """After a call ends however it ended, no agent stays reserved or on it."""
        if active.agent is not None and self._by_agent.get(active.agent) == call_id:
            del self._by_agent[active.agent]
        pending = active.pending_transfer
        if pending is not None and pending in self.router.agents:
            with contextlib.suppress(EngineError):
                self.router.release(pending)
        for agent in self.router.agents.values():
            if agent.call_id == call_id and str(agent.state) == "on_call":
                self.router.call_finished(agent.id, active.queue)

    # ------------------------------------------------------------------ inbound calls

    async def _inbound(self, call: Call, active: ActiveCall, config: CallCenterConfig) -> str:
        """The inbound path; returns who ended the call."""
        info = call.info
        route = config.routes.get(info.dialed) or config.routes.get("default")
        queue_param = info.params.get("queue")
        await call.answer()
        self.bus.publish(CallAnswered(call_id=info.call_id))
        if queue_param is not None and route is None:
            return await self._queue(call, active, config, queue_param, 0)
        if route is None:
            log.warning("no_route_for_dialed_number", dialed=info.dialed, call_id=info.call_id)
            await call.play(["ss-noservice"])
            return "system"
        flow: FlowConfig = config.flows[route.flow]

        def on_step(node: str, digits: str) -> None:
            active.path.append(f"{route.flow}:{node}")
            self.bus.publish(
                IvrStep(call_id=info.call_id, flow=route.flow, node=node, digits=digits)
            )

        outcome = await run_flow(call, flow, on_step=on_step)
        if isinstance(outcome, Hangup):
            return "system"
        assert isinstance(outcome, ToQueue)
        return await self._queue(call, active, config, outcome.queue, outcome.priority)

    async def _queue(
        self,
        call: Call,
        active: ActiveCall,
        config: CallCenterConfig,
        queue_name: str,
        priority: int,
    ) -> str:
        """Wait in ``queue_name`` until an agent answers; returns who ended the call."""
        info = call.info
        qcfg: QueueConfig = config.queues[queue_name]
        entry = self.router.enqueue(queue_name, info.call_id, priority=priority)
        active.queue = queue_name
        joined = time.monotonic()
        self.bus.publish(
            QueueJoined(
                call_id=info.call_id,
                queue=queue_name,
                position=self.router.position(entry),
                priority=priority,
            )
        )
        qlog = log.bind(call_id=info.call_id, queue=queue_name)
        qlog.info("queue_joined", position=self.router.position(entry))
        connected_to: Agent | None = None
        result: DialResult | None = None
        try:
            if qcfg.announce:
                await call.play([qcfg.announce])
            await call.start_hold_music(qcfg.hold_music)
            deadline = joined + qcfg.max_wait
            while connected_to is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                agent = await self._unless_hangup(call, self.router.next_agent(entry), remaining)
                result = await self._offer(
                    call, active, entry=entry, agent=agent, qcfg=qcfg, joined=joined
                )
                if result is None:
                    await call.start_hold_music(qcfg.hold_music)
                else:
                    connected_to = agent
        except TimeoutError:
            self.router.leave(entry)
            waited = time.monotonic() - joined
            self.bus.publish(
                QueueExited(
                    call_id=info.call_id, queue=queue_name, reason="timeout", wait_seconds=waited
                )
            )
            qlog.info("queue_timeout", waited=round(waited, 3))
            await call.stop_hold_music()
            await call.play([qcfg.timeout_prompt])
            return "system"
        except (CallHungUp, CallerGone):
            if connected_to is None:
                position = self.router.position(entry)
                self.router.leave(entry)
                waited = time.monotonic() - joined
                self.bus.publish(
                    QueueAbandoned(
                        call_id=info.call_id,
                        queue=queue_name,
                        position=position,
                        wait_seconds=waited,
                    )
                )
                qlog.info("queue_abandoned", waited=round(waited, 3))
            raise CallHungUp("caller hung up in queue") from None
        assert result is not None
        return await self._talk(call, active, queue_name, connected_to, result)

    async def _offer(
        self,
        call: Call,
        active: ActiveCall,
        *,
        entry: QueueEntry,
        agent: Agent,
        qcfg: QueueConfig,
        joined: float,
    ) -> DialResult | None:
        """Ring one reserved agent; returns how the bridge ended if they answered."""
        info = call.info
        queue_name = active.queue or ""
        ring_start = time.monotonic()
        self.bus.publish(
            AgentRinging(
                call_id=info.call_id, queue=queue_name, agent=agent.id, device=agent.device
            )
        )
        log.info("agent_ringing", call_id=info.call_id, agent=agent.id, device=agent.device)
        answered: list[str] = []

        def on_answer(peer_channel: str) -> None:
            if answered:
                return
            answered.append(peer_channel)
            now = time.monotonic()
            self.router.connected(entry, agent)
            active.agent = agent.id
            self._by_agent[agent.id] = info.call_id
            self.bus.publish(
                AgentConnected(
                    call_id=info.call_id,
                    queue=queue_name,
                    agent=agent.id,
                    peer_channel=peer_channel,
                    wait_seconds=now - joined,
                    ring_seconds=now - ring_start,
                )
            )
            log.info("agent_connected", call_id=info.call_id, agent=agent.id)

        try:
            result = await call.dial(
                agent.device, timeout=qcfg.ring_timeout, hold_music=True, on_answer=on_answer
            )
        except CallHungUp:
            if not answered:
                raise
            result = DialResult(status=DialStatus.ANSWER, hung_up_by="caller")
        if result.status is DialStatus.ANSWER or answered:
            on_answer(result.peer_channel or "")
            active.path.append(f"agent:{agent.id}")
            return result
        self.router.ring_failed(entry, agent)
        self.bus.publish(
            AgentRingFailed(
                call_id=info.call_id,
                queue=queue_name,
                agent=agent.id,
                status=str(result.status),
                ring_seconds=time.monotonic() - ring_start,
            )
        )
        log.info("agent_ring_failed", call_id=info.call_id, agent=agent.id, status=result.status)
        return None

    async def _talk(
        self, call: Call, active: ActiveCall, queue_name: str, agent: Agent, result: DialResult
    ) -> str:
        """The bridge with ``agent`` ended as ``result``; follow transfers until the call ends."""
        info = call.info
        talker = agent.id
        while True:
            hung_up_by = _who(result)
            if result.cause is not HangupCause.UNSPECIFIED:
                active.bridge_cause = result.cause
            self.bus.publish(
                TalkEnded(
                    call_id=info.call_id,
                    agent=talker,
                    talk_seconds=result.talk_seconds,
                    hung_up_by=hung_up_by,
                )
            )
            if talker in self.router.agents:
                self.router.call_finished(talker, queue_name)
            self._by_agent.pop(talker, None)
            target = active.pending_transfer
            if result.hung_up_by != "system" or target is None:
                return hung_up_by
            active.pending_transfer = None
            by = active.transferred_by or talker
            self.bus.publish(CallTransferred(call_id=info.call_id, by=by, to=target, kind="blind"))
            log.info("call_transferred", call_id=info.call_id, by=by, to=target)
            device = self._transfer_device(target)
            is_agent = target in self.router.agents
            active.agent = target
            self._by_agent[target] = info.call_id
            connected: list[str] = []

            def on_answer(peer: str, _c: list[str] = connected, _t: str = target) -> None:
                if not _c and _t in self.router.agents:
                    self.router.connect_direct(_t)
                _c.append(peer)

            try:
                result = await call.dial(
                    device,
                    timeout=self._ring_timeout(queue_name),
                    hold_music=True,
                    on_answer=on_answer,
                )
            except CallHungUp:
                if is_agent and not connected:
                    self.router.release(target)
                raise
            if result.status is DialStatus.ANSWER and not connected:
                on_answer(result.peer_channel or "")
            talker = target
            if not connected:
                self._by_agent.pop(target, None)
                if is_agent:
                    self.router.release(target)
                log.info("transfer_failed", call_id=info.call_id, to=target, status=result.status)
                await call.play(["transfer-failed"])
                return "system"

    def _offer_revoked(self, entry: QueueEntry | None, agent: Agent) -> None:
        """The agent being rung logged out: stop ringing their phone now."""
        call_id = entry.call_id if entry is not None else agent.call_id
        active = self.active.get(call_id or "")
        if active is None:
            return
        log.info("offer_revoked", call_id=call_id, agent=agent.id)
        task = asyncio.get_running_loop().create_task(self._quietly(active.call.unbridge()))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _quietly(aw: Awaitable[None]) -> None:
        try:
            await aw
        except PBXError as exc:
            log.info("background_command_failed", error=str(exc))

    # ------------------------------------------------------------------ transfers

    def _transfer_device(self, target: str) -> str:
        if target in self.config.supervisors:
            return self.config.supervisors[target].device
        if target in self.config.agents:
            return self.config.agents[target].device
        raise DestinationNotAllowed(f"transfer target {target!r} is not a configured agent")

    def _ring_timeout(self, queue_name: str) -> float:
        qcfg = self.config.queues.get(queue_name)
        return qcfg.ring_timeout if qcfg is not None else 20.0

    async def transfer(self, agent_id: str, to: str = "supervisor") -> str:
        """Blind-transfer the caller ``agent_id`` is talking to; returns the target id.

        ``to`` is ``supervisor`` (the queue's configured supervisor) or a configured
        supervisor or agent id. Anything else is refused: no caller ever reaches a number the
        config does not name.
        """
        call_id = self._by_agent.get(agent_id)
        if call_id is None or call_id not in self.active:
            raise EngineError(f"agent {agent_id} is not on a call")
        active = self.active[call_id]
        target = to
        if to == "supervisor":
            qcfg = self.config.queues.get(active.queue or "")
            if qcfg is None or qcfg.supervisor is None:
                raise DestinationNotAllowed(f"queue {active.queue!r} has no supervisor configured")
            target = qcfg.supervisor
        self._transfer_device(target)
        if target == agent_id:
            raise DestinationNotAllowed(f"agent {agent_id} cannot transfer a call to themself")
        if active.pending_transfer is not None:
            raise EngineError(f"a transfer of call {call_id} is already under way")
        if target in self.router.agents:
            # Reserve now, so no queue call takes the target between our check and the dial.
            self.router.reserve(target, call_id=call_id)
        active.pending_transfer = target
        active.transferred_by = agent_id
        try:
            await active.call.unbridge()
        except PBXError:
            active.pending_transfer = None
            if target in self.router.agents:
                self.router.release(target)
            raise
        return target

    # ------------------------------------------------------------------ feature codes

    async def _feature_code(self, call: Call, action: str, config: CallCenterConfig) -> None:
        info = call.info
        agent_id = info.params.get("agent") or (info.args[0] if info.args else "")
        if not agent_id:
            agent_id = self._agent_for_channel(info.channel, config) or ""
        await call.answer()
        self.bus.publish(CallAnswered(call_id=info.call_id))
        if agent_id not in config.agents:
            log.warning("feature_code_unknown_agent", channel=info.channel, action=action)
            await call.play(["invalid"])
            return
        agent_cfg = config.agents[agent_id]
        if agent_cfg.pin:
            pin = await call.read_digits(
                "agent-pass", max_digits=len(agent_cfg.pin), timeout=6.0, terminator="#"
            )
            if pin != agent_cfg.pin:
                log.warning("feature_code_wrong_pin", agent=agent_id, action=action)
                await call.play(["auth-incorrect"])
                return
        try:
            if action == "login":
                self.router.login(agent_id, via="feature-code")
            elif action == "logout":
                self.router.logout(agent_id, via="feature-code")
            elif action == "pause":
                reason = info.params.get("reason", "break")
                self.router.pause(agent_id, reason, via="feature-code")
            else:
                self.router.unpause(agent_id, via="feature-code")
        except (EngineError, UnknownAgent) as exc:
            log.info("feature_code_refused", agent=agent_id, action=action, error=str(exc))
            await call.play(["beeperr"])
            return
        await call.play([FEATURE_PROMPTS[action]])

    @staticmethod
    def _agent_for_channel(channel: str, config: CallCenterConfig) -> str | None:
        device = channel.rsplit("-", 1)[0] if "-" in channel else channel
        for agent_id, agent in config.agents.items():
            if agent.device == device:
                return agent_id
        return None

    # ------------------------------------------------------------------ helpers

    async def _unless_hangup(self, call: Call, aw: Awaitable[T], timeout: float) -> T:
        """Await ``aw`` unless the caller hangs up first (CallerGone) or time runs out."""
        task: asyncio.Future[T] = asyncio.ensure_future(aw)
        gone: asyncio.Future[None] = asyncio.ensure_future(call.wait_hangup())
        both: set[asyncio.Future[Any]] = {task, gone}
        try:
            done, _ = await asyncio.wait(both, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            if gone in done:
                raise CallerGone
            raise TimeoutError
        finally:
            for fut in both:
                if not fut.done():
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await fut


def _who(result: DialResult) -> str:
    if result.hung_up_by == "caller":
        return "caller"
    if result.hung_up_by == "system":
        return "system"
    return "agent"
