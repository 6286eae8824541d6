"""Lamps on the phones: message lamps for the queues' voicemail, busy lamps (BLF keys) for
agents and queues.

Message lamps: the phones of a queue's agents light up while its voicemail messages wait.

``queues.<q>.message_lamp`` names a mailbox as the PBX knows it (Asterisk ``box@context``,
FreeSWITCH ``user@domain``); the agents' phones subscribe to it (a PBX admin's setting: a
PJSIP endpoint's ``mailboxes=``, a FreeSWITCH user's ``MWI-Account``). :class:`MessageLamps`
keeps the PBX told each lamp's counts (:meth:`PBX.set_message_lamp
<callcenter.pbx.interface.PBX.set_message_lamp>`): *new* the messages waiting for an agent
(the lamp is lit while there is one), *old* those an agent has taken and not dealt with yet;
queues sharing a lamp add up. It tells the PBX after every change of the inbox, after every
(re)connection of the PBX link (the PBX may have restarted, or the counts changed while the
link was down) and after a reload (a lamp no longer in the config is put out once). A PBX
that refuses (Asterisk without res_mwi_external_ami) is logged with what to load, and asked
again at the next change.

Busy lamps (``acd.blf``): a supervisor's phone, or a colleague's sidecar, shows each agent's
state on a BLF key (:class:`~callcenter.pbx.interface.LampState`: off ready, flashing
ringing, on busy, hold on a break, unavailable logged out) and each queue's (off nobody
waits, on callers wait, flashing one waits beyond the service level). :class:`BusyLamps`
tells the PBX every change (:meth:`PBX.set_lamp <callcenter.pbx.interface.PBX.set_lamp>`),
looks every :data:`LOOK_EVERY` seconds (a wait crosses the service level with no event),
tells everything again after a reconnection, and after a reload sets the lamps no longer
named to unavailable once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Generic, TypeVar

import structlog

from callcenter.acd.agent import AgentState
from callcenter.errors import ActionFailed, PBXConnectionError, PBXError
from callcenter.events import (
    AgentStateChanged,
    ConfigReloaded,
    EngineEvent,
    EventBus,
    QueueAbandoned,
    QueueExited,
    QueueJoined,
    VoicemailDone,
    VoicemailLeft,
    VoicemailTaken,
)
from callcenter.pbx.interface import PBX, LampState

if TYPE_CHECKING:
    from callcenter.acd.agent import Agent
    from callcenter.acd.router import Router
    from callcenter.config.models import CallCenterConfig
    from callcenter.records.voicemails import VoicemailInbox

log = structlog.get_logger(__name__)

OUT: Final = (0, 0)
LOOK_EVERY: Final = 1.0
"""Seconds between two looks at the busy lamps when nothing woke them."""
_AGENT_LAMPS: Final = {
    AgentState.AVAILABLE: LampState.OFF,
    AgentState.RINGING: LampState.FLASHING,
    AgentState.ON_CALL: LampState.ON,
    AgentState.WRAP_UP: LampState.ON,
    AgentState.PAUSED: LampState.HOLD,
    AgentState.LOGGED_OUT: LampState.UNAVAILABLE,
}


_V = TypeVar("_V")


class _Lamps(abc.ABC, Generic[_V]):
    """What both kinds of lamps share: the values the PBX shows, a wake-up on changes, and
    the telling (see the module docstring)."""

    _gone: _V
    """What a lamp no longer in the config is told once."""
    _failed = "lamps_failed"

    def __init__(self) -> None:
        self._told: dict[str, _V] = {}
        """Lamp -> the value the PBX shows."""
        self._wake = asyncio.Event()
        self._wake.set()  # the first look: whatever stands at the start

    @abc.abstractmethod
    def lamps(self) -> dict[str, _V]:
        """Lamp -> the value it should show, for every lamp of the config."""

    @abc.abstractmethod
    async def _send(self, name: str, value: _V) -> None:
        """Tell the PBX one lamp's value."""

    def _look_every(self) -> float | None:
        """Seconds between looks with no change told (None: only on changes)."""
        return None

    def _refused(self, name: str, exc: ActionFailed) -> None:
        log.warning("lamp_refused", lamp=name, error=str(exc))

    def reconnected(self) -> None:
        """The PBX link is up again: whatever the PBX had may be gone, tell it all again."""
        self._told.clear()
        self._wake.set()

    async def run(self) -> None:
        """Tell the PBX each change until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._look_every()):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.tell()
            except Exception:
                log.exception(self._failed)

    async def tell(self) -> None:
        """Give the PBX every lamp whose value it does not show yet."""
        wanted = self.lamps()
        gone = self._told.keys() - wanted.keys()
        for name in gone:
            wanted[name] = self._gone
        for name, value in wanted.items():
            if self._told.get(name) == value:
                continue
            try:
                await self._send(name, value)
            except PBXConnectionError:
                return  # told again once the link is back (reconnected)
            except ActionFailed as exc:
                self._refused(name, exc)
                continue
            except PBXError as exc:
                log.warning("lamp_not_told", lamp=name, error=str(exc))
                continue
            if name in gone:
                self._told.pop(name, None)
            else:
                self._told[name] = value


class MessageLamps(_Lamps[tuple[int, int]]):
    """The message lamps of the config's queues, kept in step with the inbox (see the
    module docstring)."""

    _gone = OUT
    _failed = "message_lamps_failed"

    def __init__(
        self, pbx: PBX, inbox: VoicemailInbox, config: Callable[[], CallCenterConfig]
    ) -> None:
        super().__init__()
        self._pbx = pbx
        self._inbox = inbox
        self._config = config

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The engine events that change a lamp (a reload: lamps added, moved, removed)."""
        return (VoicemailLeft, VoicemailTaken, VoicemailDone, ConfigReloaded)

    def on_event(self, event: EngineEvent) -> None:
        self._wake.set()

    def lamps(self) -> dict[str, tuple[int, int]]:
        """Mailbox -> (new, old) of every lamp of the config."""
        wanted: dict[str, tuple[int, int]] = {}
        for name, queue in self._config().queues.items():
            if queue.message_lamp:
                new, old = self._inbox.counts(name)
                was_new, was_old = wanted.get(queue.message_lamp, OUT)
                wanted[queue.message_lamp] = (was_new + new, was_old + old)
        return wanted

    async def _send(self, name: str, value: tuple[int, int]) -> None:
        await self._pbx.set_message_lamp(name, *value)
        log.info("message_lamp", mailbox=name, new=value[0], old=value[1])

    def _refused(self, name: str, exc: ActionFailed) -> None:
        log.error(
            "message_lamp_refused",
            mailbox=name,
            error=str(exc),
            hint="Asterisk: load res_mwi_external_ami (and res_mwi_external), which cannot "
            "run beside app_voicemail",
        )


class BusyLamps(_Lamps[LampState]):
    """The BLF lamps of ``acd.blf``, kept in step with the router (see the module doc)."""

    #: The engine events that change a lamp (followed only while lamps are configured:
    #: without, the engine's events cost nothing here).
    KINDS: Final = (AgentStateChanged, QueueJoined, QueueExited, QueueAbandoned)
    _gone = LampState.UNAVAILABLE
    _failed = "busy_lamps_failed"

    def __init__(
        self, pbx: PBX, router: Router, bus: EventBus, config: Callable[[], CallCenterConfig]
    ) -> None:
        super().__init__()
        self._pbx = pbx
        self._router = router
        self._bus = bus
        self._config = config
        self._on = False
        bus.subscribe(self._reloaded, (ConfigReloaded,))
        self._reloaded()

    def _reloaded(self, event: EngineEvent | None = None) -> None:
        on = self._config().acd.blf is not None
        if on and not self._on:
            self._bus.subscribe(self._changed, self.KINDS)
        elif self._on and not on:
            self._bus.unsubscribe(self._changed)
        self._on = on
        self._wake.set()  # lamps no longer named go out

    def _changed(self, event: EngineEvent) -> None:
        self._wake.set()

    def _look_every(self) -> float | None:
        return LOOK_EVERY if self._on else None

    def lamps(self) -> dict[str, LampState]:
        """Lamp name -> the state it should show, for every lamp of ``acd.blf``."""
        config = self._config()
        blf = config.acd.blf
        if blf is None:
            return {}
        router = self._router
        wanted: dict[str, LampState] = {}
        if blf.agent is not None:
            for agent_id, agent in router.agents.items():
                wanted[blf.agent.replace("${agent}", agent_id)] = _agent_lamp(agent)
        if blf.queue is not None:
            for name in router.queue_names():
                settings = config.queues.get(name)
                if settings is None:
                    continue
                view = router.queue_view(name)
                if not view["waiting"]:
                    state = LampState.OFF
                elif float(view["longest_wait"]) > settings.service_level:
                    state = LampState.FLASHING
                else:
                    state = LampState.ON
                wanted[blf.queue.replace("${queue}", name)] = state
        return wanted

    async def _send(self, name: str, value: LampState) -> None:
        await self._pbx.set_lamp(name, value)


def _agent_lamp(agent: Agent) -> LampState:
    state = _AGENT_LAMPS[agent.state]
    if state is LampState.OFF and agent.device_busy:
        return LampState.ON  # ready, but on a call of their own (a personal call)
    return state


__all__ = ["BusyLamps", "MessageLamps"]
