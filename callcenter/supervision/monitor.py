"""Supervisors on agents' calls: listen, whisper, barge.

A supervisor (``supervisors`` in the config) asks, through the control API or
``callcenter supervisor``, to monitor an agent. The daemon rings the supervisor's phone
(``ring_timeout``) and, once answered, joins it to the agent's leg of the call the agent is
on (:meth:`PBX.spy`):

* ``listen``: the supervisor hears both sides; nobody hears the supervisor;
* ``whisper``: the agent hears the supervisor, the caller does not (coaching);
* ``barge``: everybody hears everybody.

A supervisor who dials ``*81`` / ``*82`` / ``*83`` + agent from their phone is monitoring
already: :meth:`Monitoring.monitor_from` spies from that call (:meth:`Call.spy`), nothing
rings. Either way the supervisor's keypad may switch the mode (ChanSpy's 4/5/6, eavesdrop's
0-3): the session tells (:meth:`SpySession.on_mode_changed`) and the monitoring follows.

A supervisor monitors one call at a time. Asking again for the same agent's call in
another mode switches the mode on the same leg, without ringing again (a mode asked for
while the phone still rings is the one it starts in). Asking for another agent ends the
first monitoring (``replaced``) and rings for the second. Monitoring ends when it is
stopped, when the supervisor hangs up, and when the agent's part of the call is over (the
caller or the agent hung up, or the agent transferred the caller): the supervisor's leg is
then hung up too, so that a supervisor never sits in silence on a call that is gone.

An agent can ask for help (:meth:`Monitoring.ask_for_help`): the supervisor of the queue is
rung to whisper on the agent's call, unless already on another one. A supervisor on a call
can take it over (:meth:`Monitoring.take_over`): the caller is put through to them and the
agent is free.

Published: :class:`~callcenter.events.CallMonitored` when the supervisor answers and at each
change of mode (the CDR's ``monitored_by`` and ``barged``), and
:class:`~callcenter.events.MonitorEnded` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog

from callcenter.errors import (
    CommandFailed,
    EngineError,
    NotPermitted,
    PBXConnectionError,
    PBXError,
    PBXTimeoutError,
    UnknownAgent,
    UnknownSupervisor,
)
from callcenter.events import CallMonitored, MonitorEnded
from callcenter.pbx.interface import Call, SpyMode, SpySession
from callcenter.tasks import cancel_and_wait

if TYPE_CHECKING:
    from callcenter.switchboard import Switchboard

log = structlog.get_logger(__name__)

MONITOR_MODES: Final[tuple[SpyMode, ...]] = ("listen", "whisper", "barge")

STOPPED: Final = "stopped"
REPLACED: Final = "replaced"
NOT_ANSWERED: Final = "not_answered"
ENDED: Final = "ended"
SHUTDOWN: Final = "shutdown"
TAKEN_OVER: Final = "taken_over"
"""``MonitorEnded.why``: asked to stop; moved to another call; the supervisor's phone did not
answer; the supervisor hung up or the agent's part of the call is over; the daemon stopped
(the supervisor's leg is left to the PBX, as the call is); the supervisor took the call
over."""

_CALLER_ID_UNSAFE = re.compile(r"[^A-Za-z0-9+*#. _@-]")


@dataclass(slots=True)
class Monitor:
    """One supervisor on one agent's call."""

    supervisor: str
    agent: str
    call_id: str
    target: str
    """The agent's leg the supervisor's leg is joined to."""
    mode: SpyMode
    """The mode asked for last (the leg takes it once answered)."""
    session: SpySession
    requested: float
    answered: float | None = None
    why: str | None = None
    """Set when the daemon itself ends the monitoring (see :data:`STOPPED`...)."""
    task: asyncio.Task[None] | None = None

    async def watched(self) -> None:
        """Return once the watcher of this monitoring has finished, however it ended."""
        if self.task is None:
            return
        # Waited for, not awaited: the watcher may have been cancelled under us (the daemon
        # stopping during a take-over), which is no reason to cancel the task waiting.
        await asyncio.wait([self.task])
        if not self.task.cancelled():
            self.task.exception()  # retrieved: the watcher logs its own trouble

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        return {
            "agent": self.agent,
            "call_id": self.call_id,
            "mode": self.mode,
            "state": "ringing" if self.answered is None else "monitoring",
            "seconds": round(now - (self.answered or self.requested), 1),
        }


class Monitoring:
    """Every supervisor's monitoring of agents' calls, on the switchboard's PBX."""

    def __init__(self, switchboard: Switchboard) -> None:
        self._board = switchboard
        self._monitors: dict[str, Monitor] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def snapshot(self) -> list[dict[str, Any]]:
        """Every configured supervisor, with what they monitor now (``monitoring`` None:
        nothing)."""
        now = time.monotonic()
        result = []
        for sid, cfg in self._board.config.supervisors.items():
            current = self._monitors.get(sid)
            result.append(
                {
                    "id": sid,
                    "name": cfg.name,
                    "device": self._board.supervisor_device(sid),
                    "monitoring": current.as_dict(now) if current is not None else None,
                }
            )
        return result

    def current(self, supervisor_id: str) -> Monitor | None:
        """What ``supervisor_id`` monitors now."""
        return self._monitors.get(supervisor_id)

    async def monitor(self, supervisor_id: str, agent_id: str, mode: str) -> dict[str, Any]:
        """Put ``supervisor_id`` on ``agent_id``'s call in ``mode``; returns the monitoring
        as :meth:`snapshot` shows it (``state`` ``ringing`` until the supervisor answers).

        Raises UnknownSupervisor, UnknownAgent, NotPermitted (an agent outside the
        supervisor's ``teams``), EngineError (a mode that does not exist, an agent not
        talking to anyone, a supervisor monitoring themself) or PBXError (the PBX refused to
        ring the supervisor).
        """
        return (await self._start(supervisor_id, agent_id, mode, None)).as_dict()

    async def monitor_from(
        self, leg: Call, supervisor_id: str, agent_id: str, mode: str
    ) -> Monitor:
        """As :meth:`monitor`, on ``leg``: a call the supervisor made (a feature code), so
        nothing rings. What they monitored before ends (``replaced``), even the same call:
        the new leg takes over. Returns the monitoring; it ends with ``leg``."""
        return await self._start(supervisor_id, agent_id, mode, leg)

    async def _start(
        self, supervisor_id: str, agent_id: str, mode: str, leg: Call | None
    ) -> Monitor:
        config = self._board.config
        supervisor = config.supervisors.get(supervisor_id)
        if supervisor is None:
            raise UnknownSupervisor(f"unknown supervisor {supervisor_id}")
        spy_mode = _mode(mode)
        if agent_id not in config.agents and agent_id not in self._board.router.agents:
            raise UnknownAgent(f"unknown agent {agent_id}")
        if config.agents.get(agent_id) is not None and (
            config.agents[agent_id].device == self._board.supervisor_device(supervisor_id)
        ):
            raise EngineError(f"supervisor {supervisor_id} cannot monitor their own phone")
        agent = config.agents.get(agent_id)
        team = agent.team if agent is not None else None
        if supervisor.teams and team not in supervisor.teams:
            raise NotPermitted(
                f"supervisor {supervisor_id} monitors team(s) {', '.join(supervisor.teams)}"
                f" only; agent {agent_id} is in {f'team {team}' if team else 'no team'}"
            )
        lock = self._locks.setdefault(supervisor_id, asyncio.Lock())
        async with lock:
            found = self._board.agent_call(agent_id)
            if found is None:
                raise EngineError(f"agent {agent_id} is not on a call")
            call_id, active = found
            if not active.agent_channel:
                raise EngineError(f"agent {agent_id} is not talking yet")
            current = self._monitors.get(supervisor_id)
            if (
                leg is None
                and current is not None
                and current.call_id == call_id
                and current.target == active.agent_channel
                and not current.session.ended
            ):
                await self._switch(current, spy_mode)
                return current
            if current is not None:
                await self._end(current, REPLACED)
            pbx = self._board.pbx
            if leg is not None:
                session = await leg.spy(active.agent_channel, spy_mode)
            elif pbx is None:
                raise EngineError("no PBX to ring the supervisor on")
            else:
                session = await pbx.spy(
                    self._board.supervisor_device(supervisor_id),
                    active.agent_channel,
                    spy_mode,
                    caller_id=_caller_id(agent_id, active.call.info.caller_num),
                    timeout=supervisor.ring_timeout,
                    auto_answer=supervisor.auto_answer,
                )
            monitor = Monitor(
                supervisor=supervisor_id,
                agent=agent_id,
                call_id=call_id,
                target=active.agent_channel,
                mode=spy_mode,
                session=session,
                requested=time.monotonic(),
            )
            self._monitors[supervisor_id] = monitor
            monitor.task = asyncio.create_task(
                self._watch(monitor, active.call), name=f"monitor-{supervisor_id}"
            )
            log.info(
                "monitor_requested",
                supervisor=supervisor_id,
                agent=agent_id,
                call_id=call_id,
                mode=spy_mode,
                via="phone" if leg is not None else "api",
            )
            return monitor

    async def ask_for_help(self, agent_id: str) -> tuple[str, dict[str, Any]]:
        """An agent asks for help: the supervisor of the queue their call came from is rung
        to whisper on it (the agent hears them, the caller does not); when that supervisor
        is on another call, the first other supervisor free who may monitor the agent (their
        ``teams``) comes instead. Returns (supervisor id, the monitoring). A supervisor
        already on another call is not taken off it: EngineError when nobody is free, as for
        a queue without a supervisor or an agent not on a call."""
        found = self._board.agent_call(agent_id)
        if found is None:
            if agent_id not in self._board.router.agents:
                raise UnknownAgent(f"unknown agent {agent_id}")
            raise EngineError(f"agent {agent_id} is not on a call")
        _, active = found
        qcfg = self._board.config.queues.get(active.queue or "")
        if qcfg is None or qcfg.supervisor is None:
            raise EngineError(f"queue {active.queue!r} has no supervisor configured")
        supervisor = qcfg.supervisor
        busy = self._monitors.get(supervisor)
        if busy is not None and busy.agent != agent_id:
            stand_in = self._free_supervisor_for(agent_id, but=supervisor)
            if stand_in is None:
                raise EngineError(
                    f"supervisor {supervisor} is on agent {busy.agent}'s call and no other "
                    "supervisor is free; ask again later"
                )
            log.info("help_from_another_supervisor", agent=agent_id, busy=supervisor)
            supervisor = stand_in
        log.info("help_requested", agent=agent_id, supervisor=supervisor)
        return supervisor, await self.monitor(supervisor, agent_id, "whisper")

    def _free_supervisor_for(self, agent_id: str, *, but: str) -> str | None:
        """The first supervisor (config order) other than ``but`` who monitors nothing now
        and may monitor ``agent_id`` (their ``teams`` hold the agent's team, or are empty)."""
        config = self._board.config
        agent = config.agents.get(agent_id)
        team = agent.team if agent is not None else None
        for supervisor_id, supervisor in config.supervisors.items():
            if supervisor_id == but or supervisor_id in self._monitors:
                continue
            if not supervisor.teams or team in supervisor.teams:
                return supervisor_id
        return None

    async def take_over(self, supervisor_id: str) -> dict[str, Any]:
        """The supervisor takes over the call they are on: their listening leg is hung up,
        the agent's leg too, and the caller is put through to the supervisor's phone (it
        rings again), as a transfer from the agent (``CallTransferred`` kind ``takeover``).
        Returns the monitoring that ended. EngineError when they are on no call yet."""
        if supervisor_id not in self._board.config.supervisors:
            raise UnknownSupervisor(f"unknown supervisor {supervisor_id}")
        async with self._locks.setdefault(supervisor_id, asyncio.Lock()):
            current = self._monitors.get(supervisor_id)
            if current is None or current.answered is None:
                raise EngineError(f"supervisor {supervisor_id} is not on an agent's call")
            shown = current.as_dict()
            await self._end(current, TAKEN_OVER)
            await self._board.transfer(current.agent, supervisor_id, kind="takeover")
            log.info("call_taken_over", supervisor=supervisor_id, agent=current.agent)
            return shown

    async def stop(self, supervisor_id: str) -> dict[str, Any] | None:
        """End what ``supervisor_id`` monitors (their leg is hung up); returns what it was,
        or None when they monitored nothing. Raises UnknownSupervisor."""
        if supervisor_id not in self._board.config.supervisors:
            raise UnknownSupervisor(f"unknown supervisor {supervisor_id}")
        async with self._locks.setdefault(supervisor_id, asyncio.Lock()):
            current = self._monitors.get(supervisor_id)
            if current is None:
                return None
            shown = current.as_dict()
            await self._end(current, STOPPED)
            return shown

    async def close(self) -> None:
        """Stop following the supervisors' legs (the daemon is stopping). The legs are left
        to the PBX, as the calls are: a supervisor listening keeps listening."""
        tasks = [m.task for m in self._monitors.values() if m.task is not None]
        for task in tasks:
            await cancel_and_wait(task)
        self._monitors.clear()

    async def _switch(self, monitor: Monitor, mode: SpyMode) -> None:
        if mode == monitor.mode:
            return
        monitor.mode = mode
        if monitor.answered is None:
            return  # still ringing: the watcher starts the leg in the mode asked for last
        await monitor.session.set_mode(mode)
        log.info("monitor_mode_changed", supervisor=monitor.supervisor, mode=mode)
        self._announce(monitor)

    async def _end(self, monitor: Monitor, why: str) -> None:
        """Hang up the supervisor's leg and wait for the watcher to finish. Raises
        PBXConnectionError or PBXTimeoutError when the hang-up could not be sent or got no
        answer (the PBX link is down): the monitoring goes on, and its watcher is not
        waited for (it waits for the leg's end, which may not come for the whole call)."""
        before = monitor.why
        monitor.why = monitor.why or why
        try:
            await monitor.session.stop()
        except (PBXConnectionError, PBXTimeoutError):
            monitor.why = before
            raise
        except PBXError as exc:
            # The leg is gone already: the watcher sees it end.
            log.debug("monitor_leg_already_gone", supervisor=monitor.supervisor, error=str(exc))
        await monitor.watched()

    def _keyed(self, monitor: Monitor, mode: SpyMode) -> None:
        """The supervisor switched the mode from their keypad."""
        if mode == monitor.mode or monitor.why is not None:
            return
        monitor.mode = mode
        log.info("monitor_mode_changed", supervisor=monitor.supervisor, mode=mode, via="keypad")
        self._announce(monitor)

    def _announce(self, monitor: Monitor) -> None:
        # Once CallEnded is out the call's records are written: nothing may follow it.
        if monitor.call_id in self._board.active:
            self._board.bus.publish(
                CallMonitored(
                    call_id=monitor.call_id,
                    supervisor=monitor.supervisor,
                    agent=monitor.agent,
                    mode=monitor.mode,
                )
            )

    def _agent_still_there(self, monitor: Monitor) -> bool:
        found = self._board.agent_call(monitor.agent)
        return (
            found is not None
            and found[0] == monitor.call_id
            and found[1].agent_channel == monitor.target
        )

    async def _watch(self, monitor: Monitor, call: Call) -> None:
        """Follow one monitoring from the ring to its end."""
        session = monitor.session
        gone = asyncio.ensure_future(call.wait_hangup())
        started = asyncio.ensure_future(session.wait_started())
        ended: asyncio.Future[None] | None = None
        try:
            await asyncio.wait({started, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not started.done():
                await cancel_and_wait(started)
            elif started.exception() is None and self._agent_still_there(monitor):
                monitor.answered = time.monotonic()
                if session.mode != monitor.mode:
                    with contextlib.suppress(CommandFailed):
                        await session.set_mode(monitor.mode)
                session.on_mode_changed(lambda mode: self._keyed(monitor, mode))
                log.info(
                    "monitor_started",
                    supervisor=monitor.supervisor,
                    agent=monitor.agent,
                    call_id=monitor.call_id,
                    mode=monitor.mode,
                )
                self._announce(monitor)
                ended = asyncio.ensure_future(session.wait_ended())
                await asyncio.wait({ended, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not ended.done():
                    await cancel_and_wait(ended)
            elif started.exception() is not None:
                monitor.why = monitor.why or NOT_ANSWERED
        except asyncio.CancelledError:
            monitor.why = monitor.why or SHUTDOWN
            raise
        finally:
            # Cancelled in a wait (the daemon stopping): its helpers go too, else they are
            # destroyed pending once the session is.
            await cancel_and_wait(gone, started, *([ended] if ended is not None else []))
            if not session.ended and monitor.why != SHUTDOWN:
                with contextlib.suppress(PBXError):
                    await session.stop()
            self._finish(monitor)

    def _finish(self, monitor: Monitor) -> None:
        if self._monitors.get(monitor.supervisor) is monitor:
            del self._monitors[monitor.supervisor]
        why = monitor.why or ENDED
        seconds = time.monotonic() - monitor.answered if monitor.answered is not None else 0.0
        self._board.bus.publish(
            MonitorEnded(
                supervisor=monitor.supervisor,
                agent=monitor.agent,
                call_id=monitor.call_id,
                seconds=seconds,
                why=why,
            )
        )
        log.info(
            "monitor_ended",
            supervisor=monitor.supervisor,
            agent=monitor.agent,
            call_id=monitor.call_id,
            why=why,
            seconds=round(seconds, 1),
        )


def _mode(mode: str) -> SpyMode:
    for known in MONITOR_MODES:
        if mode == known:
            return known
    raise EngineError(f"unknown monitoring mode {mode!r}; use one of {', '.join(MONITOR_MODES)}")


def _caller_id(agent_id: str, caller_num: str) -> str:
    """What the supervisor's phone shows: which agent, and the caller's number."""
    number = _CALLER_ID_UNSAFE.sub("", caller_num)[:40]
    return f"Agent {agent_id} <{number}>" if number else f"Agent {agent_id}"
