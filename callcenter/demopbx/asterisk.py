"""DemoAsterisk: a simulated Asterisk 22 that speaks real AMI and FastAGI/AsyncAGI over TCP.

It is both the ``callcenter demo`` PBX and the PBX of the test suite. The daemon's Asterisk
driver talks to it exactly as to a real Asterisk, for what callcenter uses: the AMI server
listens on 127.0.0.1 (``ami_port``), and calls hand themselves to the daemon through the
dialplan's ``AGI()``: as a FastAGI *client* connecting to ``agi_url`` (default) or as
AsyncAGI events over AMI (``agi_mode="async"``).

Messages copy the shapes, header names and order of the real Asterisk 22.10.1 traces in
``shared/traces/asterisk`` (channel snapshots, Dial/Bridge events, ``Uniqueid`` like
``1795337924.1``, channel names like ``PJSIP/1001-0000000a``). Scripted phones drive calls::

    async with DemoAsterisk(agi_url="agi://127.0.0.1:4573") as pbx:
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.1))
        caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
        await caller.wait_for_prompt("welcome-menu")
        await caller.press("2")
        await caller.wait_bridged()
        await caller.hangup()
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import time
import uuid
from collections import deque
from collections.abc import Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal

import structlog

from callcenter.demopbx.apps import (
    SAMPLE_RATE,
    Application,
    ConfRoom,
    find_application,
    ring_device,
)
from callcenter.demopbx.channels import (
    AGI,
    ASYNC_FAILOVER_AFTER,
    Answer,
    Bridge,
    Channel,
    ChannelState,
    DemoDialplan,
    DialplanApp,
    Hangup,
)
from callcenter.demopbx.manager import DemoEvent, ManagerSession, build_event, hangup_headers
from callcenter.demopbx.phones import AgentPhone, Caller
from callcenter.demopbx.recording import Recording
from callcenter.demopbx.res_agi import app_agi
from callcenter.pbx.interface import RINGBACK_CLASS

log = structlog.get_logger(__name__)

AGIMode = Literal["fastagi", "async", "asyncagi"]

#: OriginateResponse ``Reason`` for each DIALSTATUS (the last control frame seen).
_ORIGINATE_REASON = {"ANSWER": 4, "BUSY": 5, "NOANSWER": 3, "CHANUNAVAIL": 0, "CANCEL": 1}


def _split_callerid(text: str) -> tuple[str, str]:
    """``"Name" <num>`` / ``Name <num>`` / ``num`` -> (num, name)."""
    name, lt, rest = text.partition("<")
    if not lt:
        return text.strip(), ""
    return rest.partition(">")[0].strip(), name.strip().strip('"')


LOADED_MODULES: frozenset[str] = frozenset(
    {
        "res_agi",
        "app_dial",
        "app_confbridge",
        "res_musiconhold",
        "app_mixmonitor",
        "app_chanspy",
        "app_amd",
        "chan_pjsip",
        "res_pjsip",
        "res_mwi_external",
        "res_mwi_external_ami",
        "func_devstate",
        "app_playtones",
        "app_exec",
    }
)
"""What the demo Asterisk says is loaded: a stock Asterisk with what the daemon uses."""


class DemoAsterisk:
    """A simulated Asterisk. Start it (``await pbx.start()`` or ``async with``), then
    register phones with :meth:`add_phone` and place calls with :meth:`call`.

    ``agi_mode``: ``"fastagi"`` (the dialplan runs ``AGI(<agi_url>/<script>)`` and the PBX
    connects to the daemon) or ``"async"`` (``AGI(agi:async,<script>)``: AsyncAGI over AMI;
    ``"asyncagi"`` is accepted as a synonym). ``prompt_seconds`` is how long every prompt
    plays unless ``prompt_durations`` says otherwise; prompts in ``missing_prompts`` do not
    exist (STREAM FILE answers ``result=-1 endpos=0``). ``login_failure_delay`` is the
    pause before a wrong AMI secret is refused (Asterisk: about 1 s). ``ami_write`` is the AMI
    user's ``write=`` classes of manager.conf (the ``Filter`` action needs ``system``);
    ``modules`` the modules loaded (``ModuleCheck``).
    ``failover_after``: with AsyncAGI, seconds the default dialplan gives a daemon to take a
    caller (``TIMEOUT(absolute)``) before its ``T`` extension plays the failover, as the
    shipped dialplan does (None: no guard, the caller waits).
    """

    def __init__(
        self,
        *,
        agi_url: str = "agi://127.0.0.1:4573",
        agi_mode: AGIMode = "fastagi",
        ami_username: str = "callcenter",
        ami_secret: str = "demo-secret",
        ami_write: str = "system,call,agi,originate,reporting",
        modules: Collection[str] = LOADED_MODULES,
        prompt_seconds: float = 0.05,
        login_failure_delay: float = 1.0,
        dialplan: DemoDialplan | None = None,
        prompt_durations: Mapping[str, float] | None = None,
        missing_prompts: Collection[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        failover_after: float | None = ASYNC_FAILOVER_AFTER,
    ) -> None:
        if agi_mode not in ("fastagi", "async", "asyncagi"):
            raise ValueError(f"agi_mode must be 'fastagi' or 'async', not {agi_mode!r}")
        self.agi_url = agi_url
        self.agi_mode: Literal["fastagi", "async"] = "fastagi" if agi_mode == "fastagi" else "async"
        self.ami_username = ami_username
        self.ami_secret = ami_secret
        self.ami_write = frozenset(c.strip().lower() for c in ami_write.split(",") if c.strip())
        #: The modules loaded (AMI ``ModuleCheck``), by name without ``.so``.
        self.modules = frozenset(modules)
        #: Mailbox -> (new, old) messages, as ``MWIUpdate`` last set them (the lamps of the
        #: phones subscribed to it).
        self.message_lamps: dict[str, tuple[int, int]] = {}
        #: Custom device states (``DEVICE_STATE(Custom:<name>)``): what the phones' BLF
        #: keys watching a hint on them show.
        self.custom_states: dict[str, str] = {}
        #: (action, its Channel header) of every AMI action received, in the order the
        #: sessions read them (the newest 1,000).
        self.action_log: collections.deque[tuple[str, str]] = collections.deque(maxlen=1000)
        self.prompt_seconds = prompt_seconds
        self.login_failure_delay = login_failure_delay
        self.failover_after = failover_after
        self._default_dialplan = dialplan is None
        self.dialplan = dialplan or DemoDialplan.default(
            agi_url, agi_mode=self.agi_mode, failover_after=self.failover_after
        )
        self.prompt_durations = dict(prompt_durations or {})
        self.missing_prompts = frozenset(missing_prompts)
        self._host = host
        self._port = port
        #: Registered phones by device (``PJSIP/1001``).
        self.phones: dict[str, AgentPhone] = {}
        #: Global dialplan variables (``Setvar`` without a channel).
        self.global_vars: dict[str, str] = {}
        #: Running ConfBridge conferences by name.
        self.conferences: dict[str, ConfRoom] = {}
        #: The AstDB of ``DATABASE`` AGI commands: (family, key) -> value.
        self.astdb: dict[tuple[str, str], str] = {}
        #: The last device state published per device.
        self.device_states: dict[str, str] = {}
        #: The most recent events published on AMI (newest last).
        self.event_log: deque[DemoEvent] = deque(maxlen=20_000)
        self.processed_calls = 0
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self._channels: dict[str, Channel] = {}
        self._uniqueid_seq = itertools.count(1)
        self._name_seq = itertools.count(1)
        self._thread_ids: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sessions: dict[ManagerSession, asyncio.Task[None]] = {}
        self._listeners: dict[str, list[DemoEvent]] = {}
        self._server: asyncio.Server | None = None
        self._ami_unfrozen = asyncio.Event()
        self._ami_unfrozen.set()
        self._stopping = False
        self._log = log.bind(pbx="demo-asterisk")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the AMI listener."""
        if self._server is not None:
            return
        self._stopping = False
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self._server = await asyncio.start_server(self._on_ami_client, self._host, self._port)
        self._log.info(
            "demopbx_started", ami_port=self.ami_port, agi_mode=self.agi_mode, agi_url=self.agi_url
        )

    async def stop(self) -> None:
        """Close every connection and stop every call task (no events are sent)."""
        if self._server is None:
            return
        self._stopping = True
        server, self._server = self._server, None
        server.close()
        self._ami_unfrozen.set()
        for session in list(self._sessions):
            session.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        self._channels.clear()
        self._log.info("demopbx_stopped")

    async def __aenter__(self) -> DemoAsterisk:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def set_agi_url(self, agi_url: str) -> None:
        """Point ``AGI()`` at another FastAGI server (the daemon's port is often known only
        after the PBX started). Rebuilds the default dialplan; a custom one is kept."""
        self.agi_url = agi_url
        if self._default_dialplan:
            self.dialplan = DemoDialplan.default(
                agi_url, agi_mode=self.agi_mode, failover_after=self.failover_after
            )
        self._log.info("demopbx_agi_url", agi_url=agi_url)

    def add_route(self, exten: str, script: str) -> None:
        """Extension ``exten`` of the callers' context hands its calls to the daemon as
        ``script`` (``inbound?queue=sales&var_ticket=T-42``: a PBX admin's own hook)."""
        agi = (
            AGI(f"{self.agi_url.rstrip('/')}/{script}")
            if self.agi_mode == "fastagi"
            else AGI("agi:async", script)
        )
        contexts = {name: dict(exts) for name, exts in self.dialplan.contexts.items()}
        contexts[self.dialplan.default_context][exten] = (Answer(), agi, Hangup())
        self.dialplan = DemoDialplan(
            contexts=contexts,
            default_context=self.dialplan.default_context,
            fallback=self.dialplan.fallback,
        )

    @property
    def ami_port(self) -> int:
        """The TCP port the AMI server listens on (127.0.0.1)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("DemoAsterisk is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def channels(self) -> Mapping[str, Channel]:
        """Live channels by name (read-only view)."""
        return MappingProxyType(self._channels)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the PBX owns (cancelled by :meth:`stop`)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("demopbx_task_failed", task=task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------------ AMI

    def _on_ami_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.close()
            return
        session = ManagerSession(self, reader, writer)
        task = self.spawn(session.run(), "ami-session")
        self._sessions[session] = task
        task.add_done_callback(lambda _: self._sessions.pop(session, None))

    async def drop_ami_connections(self) -> None:
        """Abruptly close every AMI client socket (for reconnect tests)."""
        sessions = dict(self._sessions)
        for session in sessions:
            session.abort()
        await asyncio.gather(*sessions.values(), return_exceptions=True)
        self._log.info("demopbx_ami_dropped", connections=len(sessions))

    def freeze_ami(self, frozen: bool) -> None:
        """Freeze (True) or thaw the AMI: frozen, nothing is answered or sent (events are
        held back and delivered on thaw), like an Asterisk stuck on a lock."""
        if frozen:
            self._ami_unfrozen.clear()
        else:
            self._ami_unfrozen.set()
            for session in self._sessions:
                session.flush_backlog()
        self._log.info("demopbx_ami_frozen" if frozen else "demopbx_ami_thawed")

    @property
    def ami_frozen(self) -> bool:
        """True while :meth:`freeze_ami` holds the AMI."""
        return not self._ami_unfrozen.is_set()

    async def wait_ami_unfrozen(self) -> None:
        """Return once the AMI is not frozen."""
        await self._ami_unfrozen.wait()

    def emit(self, name: str, privilege: str, headers: list[tuple[str, str]]) -> None:
        """Publish an AMI event to every session that wants ``privilege`` events."""
        event = build_event(name, privilege, headers)
        self.event_log.append(event)
        for session in self._sessions:
            session.deliver(event)
        linkedid = event.get("Linkedid") or event.get("DestLinkedid")
        if linkedid is not None and linkedid in self._listeners:
            self._listeners[linkedid].append(event)

    # ------------------------------------------------------------------ phones & calls

    def add_phone(self, device: str, phone: AgentPhone) -> AgentPhone:
        """Register ``phone`` as ``device`` (``PJSIP/1001``); returns it."""
        if "/" not in device:
            raise ValueError(f"device must look like PJSIP/1001, not {device!r}")
        phone.attach(self, device)
        self.phones[device] = phone
        self.refresh_device_state(device)
        return phone

    def remove_phone(self, device: str) -> None:
        """The phone registered as ``device`` unregisters (its softphone quits): the device
        goes UNAVAILABLE, as a PJSIP endpoint without contacts does, and calls to it fail
        with CHANUNAVAIL."""
        if self.phones.pop(device, None) is not None:
            self.refresh_device_state(device)

    async def call(
        self,
        exten: str,
        caller_num: str = "5550100",
        caller_name: str = "",
        *,
        context: str | None = None,
    ) -> Caller:
        """A caller dials ``exten``: a new ``PJSIP/<caller_num>-0000000N`` channel runs the
        dialplan (usually into the daemon through AGI). Returns the caller's handle."""
        if self._server is None:
            raise RuntimeError("DemoAsterisk is not started")
        chan = self.new_channel(
            f"PJSIP/{caller_num}",
            caller_num=caller_num,
            caller_name=caller_name,
            context=context or self.dialplan.default_context,
            exten=exten,
            state=ChannelState.RING,
        )
        caller = Caller(self, chan)
        self._listeners[chan.linkedid] = caller.events
        self.processed_calls += 1
        self._log.info("demopbx_call", channel=chan.name, exten=exten, caller_num=caller_num)
        self.start_dialplan(chan)
        await asyncio.sleep(0)
        return caller

    def next_channel_number(self) -> int:
        """The next number of the ``-0000000N`` sequence of channel names."""
        return next(self._name_seq)

    def new_channel(
        self,
        device: str,
        *,
        caller_num: str,
        caller_name: str,
        context: str,
        exten: str,
        state: ChannelState,
        linkedid: str | None = None,
        uniqueid: str | None = None,
        name: str | None = None,
    ) -> Channel:
        """Create a channel on ``device`` (called ``name``, by default ``<device>-N``) and
        emit ``Newchannel``."""
        uniqueid = uniqueid or f"{int(time.time())}.{next(self._uniqueid_seq)}"
        chan = Channel(
            name=name or f"{device}-{next(self._name_seq):08x}",
            uniqueid=uniqueid,
            linkedid=linkedid or uniqueid,
            caller_num=caller_num,
            caller_name=caller_name,
            context=context,
            exten=exten,
            state=state,
            emit=self.emit,
            global_vars=self.global_vars,
            on_timeout=self._absolute_timeout,
        )
        self._channels[chan.name] = chan
        chan.emit("Newchannel", "call")
        return chan

    def _absolute_timeout(self, chan: Channel) -> None:
        """``TIMEOUT(absolute)`` ran out: whatever runs ends and the dialplan goes on at the
        context's ``T`` extension, or the channel hangs up without one (pbx.c)."""
        self._log.info("demopbx_absolute_timeout", channel=chan.name, context=chan.context)
        if "T" in self.dialplan.contexts.get(chan.context, {}):
            chan.request_goto(chan.context, "T", 1)
        else:
            chan.request_hangup(16 if chan.hangup_cause == 0 else None, event="SoftHangupRequest")

    def find_channel(self, name: str) -> Channel | None:
        """The live channel called ``name`` (case-insensitive), or None."""
        chan = self._channels.get(name)
        if chan is None:
            lower = name.lower()
            chan = next((c for c in self._channels.values() if c.name.lower() == lower), None)
        return chan

    def destroy_channel(self, chan: Channel) -> None:
        """The channel is gone: ``Hangup`` event, device state, phone freed."""
        if chan.ended:
            return
        if chan.bridge is not None:
            bridge = chan.bridge
            self.bridge_leave(bridge, chan)
            if not bridge.channels:
                self.destroy_bridge(bridge)
        self.stop_moh(chan)
        self.stop_mixmonitor(chan)
        chan.cancel_absolute_timeout()
        chan.hangup_requested = True
        chan.ended = True
        chan.emit("Hangup", "call", hangup_headers(chan.hangup_cause))
        self._channels.pop(chan.name, None)
        self.refresh_device_state(chan.device)
        phone = self.phones.get(chan.device)
        if phone is not None:
            phone.channel_gone(chan)
        other = chan.local_peer
        if other is not None and not other.ended and not other.hangup_requested:
            # A Local channel's halves live and die together.
            other.request_hangup(chan.hangup_cause or 16)
            if not other.applications:
                self.destroy_channel(other)  # never ran: no dialplan to end it
        if not any(c.linkedid == chan.linkedid for c in self._channels.values()):
            self._listeners.pop(chan.linkedid, None)
        chan.notify()
        self._log.info("demopbx_hangup", channel=chan.name, cause=chan.hangup_cause)

    def thread_id(self, chan: Channel) -> int:
        """A stable fake ``agi_threadid`` for the channel."""
        return self._thread_ids.setdefault(
            chan.uniqueid, random.randrange(140_000_000_000_000, 140_999_999_999_999)
        )

    def refresh_device_state(self, device: str) -> None:
        """Recompute ``device``'s state from its channels; emit DeviceStateChange on change."""
        states = {c.state for c in self._channels.values() if c.device == device and not c.ended}
        if ChannelState.UP in states:
            state = "INUSE"
        elif ChannelState.RINGING in states:
            state = "RINGING"
        elif states and device not in self.device_states:
            return  # an inbound call still ringing: no device state yet (as in the traces)
        else:
            # A Local device is as reachable as its dialplan: always, here.
            local = device.upper().startswith("LOCAL/")
            state = "NOT_INUSE" if device in self.phones or local else "UNAVAILABLE"
        if self.device_states.get(device) != state:
            self.device_states[device] = state
            self.emit("DeviceStateChange", "call", [("Device", device), ("State", state)])

    def answer(self, chan: Channel) -> None:
        """Answer ``chan`` (Newstate Up) unless it is up already."""
        if chan.state != ChannelState.UP:
            chan.set_state(ChannelState.UP)
            self.refresh_device_state(chan.device)

    def prompt_duration(self, prompt: str) -> float | None:
        """How long ``prompt`` plays (seconds); None if it does not exist."""
        if prompt in self.missing_prompts:
            return None
        return self.prompt_durations.get(prompt, self.prompt_seconds)

    # ------------------------------------------------------------------ music on hold & bridges

    def start_moh(
        self, chan: Channel, moh_class: str = "default", *, by_application: bool = False
    ) -> None:
        """Start music on hold (MusicOnHoldStart) unless it already plays;
        ``by_application``: the channel's own application (not a dial's or a room's) asked
        for it."""
        if chan.moh_class is not None or chan.ended:
            return
        chan.moh_class = moh_class
        chan.moh_starts += 1
        chan.music_plays += by_application
        if moh_class == RINGBACK_CLASS:
            # The class dialplans/asterisk/musiconhold.conf defines: a ring tone.
            chan.heard.append("ringback")
        chan.emit("MusicOnHoldStart", "call", [("Class", moh_class)])
        chan.notify()

    def start_mixmonitor(self, chan: Channel, path: str) -> None:
        """MixMonitor: record ``chan`` (both directions) into ``path`` until stopped or hung
        up; the file (silence of the recorded length) is written when it stops."""
        if chan.mixmonitor is not None:
            self.stop_mixmonitor(chan)
        chan.mixmonitor = Recording(path, time.monotonic())
        chan.emit("MixMonitorStart", "call")
        chan.notify()

    def mute_mixmonitor(self, chan: Channel, direction: str, on: bool) -> None:
        """MixMonitorMute: silence (``on``) or record again what the MixMonitor writes;
        ``MixMonitorMute`` event (Asterisk 16.17+)."""
        assert chan.mixmonitor is not None
        chan.mixmonitor.mute(time.monotonic(), on)
        chan.emit("MixMonitorMute", "call", [("Direction", direction), ("State", str(int(on)))])
        chan.notify()

    def stop_mixmonitor(self, chan: Channel) -> None:
        """StopMixMonitor (or the channel's hang-up): write the file, ``MixMonitorStop``."""
        if chan.mixmonitor is None:
            return
        recording, chan.mixmonitor = chan.mixmonitor, None
        recording.write(Path(recording.path), time.monotonic(), SAMPLE_RATE)
        chan.emit("MixMonitorStop", "call")
        chan.notify()

    def stop_moh(self, chan: Channel) -> None:
        """Stop music on hold (MusicOnHoldStop) if it plays."""
        if chan.moh_class is None:
            return
        chan.moh_class = None
        chan.emit("MusicOnHoldStop", "call")
        chan.notify()

    def create_bridge(self) -> Bridge:
        """A new basic bridge (BridgeCreate)."""
        bridge = Bridge(str(uuid.uuid4()))
        self.emit("BridgeCreate", "call", bridge.headers())
        return bridge

    def bridge_enter(self, bridge: Bridge, chan: Channel) -> None:
        """``chan`` joins ``bridge`` (BridgeEnter); music on hold stops."""
        self.stop_moh(chan)
        for other in bridge.channels:
            other.bridge_history.append(chan.device)
            chan.bridge_history.append(other.device)
            other.notify()
        bridge.channels.append(chan)
        chan.bridge = bridge
        self.emit("BridgeEnter", "call", [*bridge.headers(), *chan.snapshot()])
        chan.notify()

    def bridge_leave(self, bridge: Bridge, chan: Channel) -> None:
        """``chan`` leaves ``bridge`` (BridgeLeave)."""
        if chan not in bridge.channels:
            return
        bridge.channels.remove(chan)
        chan.bridge = None
        self.emit("BridgeLeave", "call", [*bridge.headers(), *chan.snapshot()])
        chan.notify()

    def destroy_bridge(self, bridge: Bridge) -> None:
        """The bridge is gone (BridgeDestroy)."""
        self.emit("BridgeDestroy", "call", bridge.headers())

    # ------------------------------------------------------------------ dialplan

    def find_application(self, name: str) -> Application | None:
        """A dialplan application by name (``AGI`` included), or None."""
        if name.lower() == "agi":
            return app_agi
        return find_application(name)

    def start_dialplan(
        self, chan: Channel, program: Sequence[DialplanApp] | None = None
    ) -> asyncio.Task[Any]:
        """Run ``chan`` through the dialplan from where it is (a PBX thread in Asterisk);
        with ``program``, run those applications instead. The channel is destroyed when
        the dialplan (and its ``h`` extension) ends."""
        return self.spawn(self._run_pbx(chan, program), f"pbx-{chan.name}")

    async def _run_pbx(self, chan: Channel, program: Sequence[DialplanApp] | None) -> None:
        try:
            await self._execute(chan, program)
            if not chan.hangup_requested:
                chan.request_hangup(
                    16 if chan.hangup_cause == 0 else None,
                    event="SoftHangupRequest",
                    event_cause=16,
                )
            await self._hangup_handler(chan)
        except Exception:
            self._log.exception("demopbx_dialplan_failed", channel=chan.name)
        finally:
            if not self._stopping:
                self.destroy_channel(chan)

    async def _execute(self, chan: Channel, program: Sequence[DialplanApp] | None) -> None:
        target = chan.take_goto()
        if target is not None:
            chan.context, chan.exten, chan.priority = target
            program = None
        while True:
            if program is not None:
                step = program[chan.priority - 1] if 1 <= chan.priority <= len(program) else None
            else:
                step = self.dialplan.lookup(chan.context, chan.exten, chan.priority)
            if step is None:
                if chan.priority == 1:
                    self._log.warning(
                        "demopbx_no_extension",
                        channel=chan.name,
                        context=chan.context,
                        exten=chan.exten,
                    )
                return
            result = await self.run_step(chan, step)
            # A redirect wins over whatever the application returned (as pbx.c does).
            target = chan.take_goto()
            if target is not None:
                chan.context, chan.exten, chan.priority = target
                program = None
                continue
            if chan.hangup_requested or result != 0:
                return
            chan.priority += 1

    async def run_step(self, chan: Channel, step: DialplanApp) -> int:
        """Run one dialplan application on ``chan`` (as ``Newexten`` announces it)."""
        data = chan.substitute(step.data)
        chan.application, chan.application_data = step.app, data
        chan.applications.append(step.app)
        chan.emit(
            "Newexten",
            "dialplan",
            [("Extension", chan.exten), ("Application", step.app), ("AppData", data)],
        )
        app = self.find_application(step.app)
        if app is None:
            self._log.warning("demopbx_no_application", channel=chan.name, app=step.app)
            return -1
        return await app(self, chan, data)

    async def _hangup_handler(self, chan: Channel) -> None:
        steps = self.dialplan.contexts.get(chan.context, {}).get("h")
        if not steps:
            return
        chan.exten, chan.priority = "h", 1
        for step in steps:
            await self.run_step(chan, step)
            chan.priority += 1

    # ------------------------------------------------------------------ AMI-driven actions

    def hangup_channel(self, chan: Channel, cause: int | None) -> None:
        """AMI ``Hangup``: SoftHangupRequest with the cause (or 32, the explicit flag)."""
        chan.request_hangup(
            cause if cause is not None else 16,
            event="SoftHangupRequest",
            event_cause=cause if cause is not None else 32,
        )

    def redirect(self, chan: Channel, context: str, exten: str, priority: int) -> None:
        """AMI ``Redirect``: whatever the channel runs ends; it continues at the target."""
        self._log.info(
            "demopbx_redirect", channel=chan.name, target=f"{context},{exten},{priority}"
        )
        chan.request_goto(context, exten, priority)

    def originate(
        self,
        target: str,
        *,
        action_id: str | None,
        timeout: float,
        callerid: str,
        application: str,
        data: str,
        context: str,
        exten: str,
        priority: int,
        variables: Sequence[tuple[str, str]],
        channel_id: str | None,
    ) -> None:
        """AMI ``Originate`` (always asynchronous): ring ``target``; on answer run the
        application or the dialplan at context/exten/priority; OriginateResponse either way."""
        self.spawn(
            self._originate(
                target,
                action_id=action_id,
                ring_for=timeout,
                callerid=callerid,
                application=application,
                data=data,
                context=context,
                exten=exten,
                priority=priority,
                variables=variables,
                channel_id=channel_id,
            ),
            f"originate-{target}",
        )

    async def _originate(
        self,
        target: str,
        *,
        action_id: str | None,
        ring_for: float,
        callerid: str,
        application: str,
        data: str,
        context: str,
        exten: str,
        priority: int,
        variables: Sequence[tuple[str, str]],
        channel_id: str | None,
    ) -> None:
        num, name = _split_callerid(callerid)
        status, answered = await ring_device(
            self,
            None,
            [target],
            ring_for if ring_for > 0 else None,
            callerid=(num, name),
            uniqueid=channel_id,
            variables=variables,
        )
        where = (
            [("Application", application), ("Data", data)]
            if application
            else [("Context", context), ("Exten", exten)]
        )
        idtext = [("ActionID", action_id)] if action_id is not None else []
        if answered is None:
            self.emit(
                "OriginateResponse",
                "call",
                [
                    *idtext,
                    ("Response", "Failure"),
                    ("Channel", target),
                    *where,
                    ("Reason", str(_ORIGINATE_REASON.get(status, 0))),
                    ("Uniqueid", channel_id or "<null>"),
                    ("CallerIDNum", num or "<unknown>"),
                    ("CallerIDName", name or "<unknown>"),
                ],
            )
            return
        chan = answered.channel
        self.emit(
            "OriginateResponse",
            "call",
            [
                *idtext,
                ("Response", "Success"),
                ("Channel", chan.name),
                *where,
                ("Reason", "4"),
                ("Uniqueid", chan.uniqueid),
                ("CallerIDNum", num or "<unknown>"),
                ("CallerIDName", name or "<unknown>"),
            ],
        )
        if application:
            chan.priority = 1
            self.start_dialplan(chan, [DialplanApp(application, data)])
        else:
            chan.context, chan.exten, chan.priority = context, exten, priority
            self.start_dialplan(chan)


__all__ = ["AGIMode", "DemoAsterisk"]
