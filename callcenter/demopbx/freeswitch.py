"""DemoFreeSwitch: a simulated FreeSWITCH 1.10 speaking real ESL over TCP.

The FreeSWITCH counterpart of :class:`~callcenter.demopbx.DemoAsterisk`: the PBX of
``callcenter demo`` and of the test suite when the daemon drives FreeSWITCH. The daemon's
FreeSWITCH driver talks to it exactly as to a real FreeSWITCH, for what callcenter uses:

* **inbound ESL** on 127.0.0.1 (:attr:`DemoFreeSwitch.esl_port`): ``auth``, ``event``,
  ``filter``, ``myevents``, ``api``/``bgapi``, ``sendmsg``, ``sendevent``, ``exit``;
* **outbound socket**: with ``mode="outbound"`` the dialplan's ``socket`` application connects
  to :meth:`DemoFreeSwitch.set_socket_address` and the daemon drives the call over that
  connection (``connect``, ``myevents``, ``linger``, ``sendmsg``).

Every message copies the shapes, header names and order of the real FreeSWITCH 1.10.12 traces
in ``shared/traces/freeswitch`` (``Unique-ID`` UUIDs, ``sofia/lab/5551234@127.0.0.1`` channel
names, ``Caller-*`` profiles, ``variable_*`` headers, Q.850 cause names). Scripted phones drive
calls::

    async with DemoFreeSwitch() as pbx:
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.1))
        caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
        # the daemon (connected to pbx.esl_port) sees CHANNEL_PARK, answers, plays, bridges
        await caller.wait_bridged()
        await caller.hangup()

The dialplan maps destination numbers to what happens: ``"park"`` (set
``callcenter_route=<route>``, schedule the failover as ``callcenter.xml`` does, then ``park``:
CHANNEL_PARK for inbound-ESL clients; a caller still parked ``failover_after`` seconds later
goes to ``callcenter_failover``: a message, then hang-up), ``"socket"`` (set the route, then
``socket <socket_address> async full``, then ``callcenter_failover`` if it could not
connect) or a list of ``(application, argument)`` steps. The default sends 800 (route
``inbound``) and the feature codes ``*71``..``*75`` (``agent-login``, ``agent-logout``,
``agent-pause``, ``agent-unpause``, ``agent-ready``; ``*81``..``*83`` + agent for
supervisors) to ``park`` in inbound mode and to ``socket`` in outbound mode. Any other
destination (a ``uuid_transfer <uuid> 2100 XML <context>``, say, in whatever context)
bridges to ``user/<destination>`` for 30 s, as the demo Asterisk dials ``PJSIP/<exten>``; an
empty or undialable one hangs up with ``NO_ROUTE_DESTINATION``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Literal

import structlog

from callcenter.demopbx.channels import (
    DEFAULT_ROUTES,
    DESK_CODE,
    DESK_SCRIPT,
    DIAL_CODE,
    DIAL_SCRIPT,
    DISPOSITION_CODE,
    DISPOSITION_SCRIPT,
    HOT_DESK_CODE,
    LINE_CODE,
    QUEUE_CODE,
    QUEUE_SCRIPT,
    QUEUE_STATUS_CODE,
    QUEUE_STATUS_SCRIPT,
    SUPERVISOR_CODES,
    SWITCH_CODE,
    SWITCH_SCRIPT,
)
from callcenter.demopbx.fs_api import run_api
from callcenter.demopbx.fs_apps import (
    FSConfRoom,
    activate,
    execute,
    park_loop,
    run_queued,
    stop_session_recording,
    unlink,
)
from callcenter.demopbx.fs_channels import (
    FREESWITCH_VERSION,
    BridgeTo,
    CallState,
    ChannelState,
    EventHub,
    FSChannel,
    FSEvent,
    Transfer,
    cause_name,
    prompt_name,
    uptime_words,
    wait_change,
)
from callcenter.demopbx.fs_esl import ESLSession
from callcenter.demopbx.fs_phones import AgentPhone, Caller
from callcenter.demopbx.fs_scheduler import Scheduler

log = structlog.get_logger(__name__)

DialplanStep = tuple[str, str]
"""One dialplan action: ``("playback", "/sounds/welcome.wav")``."""

Route = Literal["park", "socket"] | Sequence[DialplanStep]
"""What a destination does: ``"park"``, ``"socket"`` or explicit steps."""

Program = Callable[[], Awaitable[None]]

#: The context answered queue callbacks are originated into (``acd.callback_context``).
CALLBACK_CONTEXT = "callcenter-callback"
#: The context that runs answering machine detection before the hand-over (a campaign's
#: ``context:``).
AMD_CONTEXT = "callcenter-campaign-amd"
#: Seconds a fallback transfer to a phone's number rings it.
TRANSFER_RING_SECONDS = 30
#: As dialplans/freeswitch/callcenter.xml: a parked caller no daemon has taken after this
#: many seconds is transferred to :data:`FAILOVER_EXTENSION` (``sched_transfer``), unless the
#: daemon dropped that task (``sched_del``, the id kept in :data:`FAILOVER_TASK_VARIABLE`).
FAILOVER_AFTER = 20.0
FAILOVER_EXTENSION = "callcenter_failover"
FAILOVER_TASK_VARIABLE = "callcenter_failover_task"
#: What the failover extension does in the shipped dialplan (the place for a fallback).
FAILOVER_PROMPT = "ivr/ivr-call_cannot_be_completed_as_dialed.wav"
FAILOVER_STEPS: tuple[DialplanStep, ...] = (
    ("answer", ""),
    ("playback", FAILOVER_PROMPT),
    ("hangup", ""),
)
#: Destinations the fallback rings as ``user/<destination>``.
_DIALABLE = re.compile(r"[0-9A-Za-z+*#._-]+")
#: What follows ``*76`` in callcenter.xml's ``^\*76([0-9*]+)$`` (a disposition's digits).
_KEYED = re.compile(r"[0-9*]+")


SOFIA_PROFILE = "internal"
SOFIA_DOMAIN = "127.0.0.1"


def _phone_port(device: str) -> int:
    """A stable made-up SIP port for a phone's contact."""
    return 5060 + sum(device.encode()) % 1000


LOADED_MODULES: frozenset[str] = frozenset(
    {
        "mod_commands",
        "mod_dptools",
        "mod_sofia",
        "mod_conference",
        "mod_sndfile",
        "mod_local_stream",
        "mod_event_socket",
        "mod_tone_stream",
        "mod_say_en",
    }
)
"""What the demo FreeSWITCH says is loaded (``module_exists``): a stock 1.10 build."""


class DemoFreeSwitch:
    """A simulated FreeSWITCH. Start it (``await pbx.start()`` or ``async with``), register
    phones with :meth:`add_phone`, place calls with :meth:`call`.

    ``password``: the ESL password. ``prompt_seconds``: how long every file plays unless
    ``prompt_durations`` (by prompt name or path) says otherwise; files in
    ``missing_prompts`` do not exist (``FILE NOT FOUND``). ``dialplan``: destination ->
    :data:`Route` (see the module doc). ``mode``: which default dialplan (``inbound`` parks,
    ``outbound`` uses the socket application). ``socket_address``: ``host:port`` of the
    daemon's outbound-socket server (also :meth:`set_socket_address`).
    ``heartbeat_interval``: seconds between HEARTBEAT events. ``failover_after``: seconds
    before a caller parked by a ``"park"`` route and not taken is sent to the failover
    extension (None: no failover, the caller waits parked).
    """

    def __init__(
        self,
        *,
        password: str = "ClueCon-demo",
        prompt_seconds: float = 0.05,
        dialplan: Mapping[str, Route] | None = None,
        mode: Literal["inbound", "outbound"] = "inbound",
        socket_address: str | None = None,
        heartbeat_interval: float = 20.0,
        failover_after: float | None = FAILOVER_AFTER,
        prompt_durations: Mapping[str, float] | None = None,
        missing_prompts: Collection[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "demo",
        modules: Collection[str] = LOADED_MODULES,
    ) -> None:
        if mode not in ("inbound", "outbound"):
            raise ValueError(f"mode must be 'inbound' or 'outbound', not {mode!r}")
        self.password = password
        self.prompt_seconds = prompt_seconds
        self.mode = mode
        self.socket_address = socket_address
        self.heartbeat_interval = heartbeat_interval
        self.prompt_durations = dict(prompt_durations or {})
        self.missing_prompts = frozenset(missing_prompts)
        #: The modules loaded (``module_exists``).
        self.modules = frozenset(modules)
        default_route: Route = "park" if mode == "inbound" else "socket"
        routes: Mapping[str, Route] = (
            dialplan if dialplan is not None else dict.fromkeys(DEFAULT_ROUTES, default_route)
        )
        #: How the supervisors' codes (``*81`` + agent) reach the daemon: as the feature
        #: codes do, unless a dialplan of the test's own replaces the default one.
        self._supervisor_route: Route | None = default_route if dialplan is None else None
        self._failover_after = failover_after
        self.dialplan: dict[str, list[DialplanStep]] = {
            dest: _expand_route(dest, route, failover_after) for dest, route in routes.items()
        }
        self.dialplan.setdefault(FAILOVER_EXTENSION, list(FAILOVER_STEPS))
        #: Extensions of named contexts, looked up before :attr:`dialplan`. An answered queue
        #: callback (``originate {CALLCENTER_CALLBACK=<token>}... s XML callcenter-callback``)
        #: comes back to the daemon as ``inbound?callback=<token>``, as in
        #: ``dialplans/freeswitch/callcenter.xml``; a campaign's answered dial to
        #: ``callcenter-campaign-amd`` goes through mod_amd's ``amd`` first and adds
        #: ``&amd=${amd_result}``.
        hand_over: DialplanStep = ("park" if mode == "inbound" else "socket", "")
        self.contexts: dict[str, dict[str, list[DialplanStep]]] = {
            CALLBACK_CONTEXT: {
                "s": [
                    ("set", "callcenter_route=inbound?callback=${CALLCENTER_CALLBACK}"),
                    hand_over,
                ]
            },
            AMD_CONTEXT: {
                "s": [
                    ("amd", ""),
                    (
                        "set",
                        "callcenter_route=inbound?callback=${CALLCENTER_CALLBACK}"
                        "&amd=${amd_result}",
                    ),
                    hand_over,
                ]
            },
        }
        self.hub = EventHub(self._publish, hostname=hostname)
        #: Registered phones by device (``PJSIP/1001``).
        self.phones: dict[str, AgentPhone] = {}
        #: Account (user@domain) -> (new, old) messages, as the last MESSAGE_WAITING sent
        #: for it said (the lamps of the phones subscribed to it).
        self.message_lamps: dict[str, tuple[int, int]] = {}
        #: Presence id (user@domain) -> the dialog state the last PRESENCE_IN sent for it
        #: gave (``early``, ``confirmed``, ``terminated``): what BLF keys watching it show.
        self.presence: dict[str, str] = {}
        #: Global variables (``global_setvar``).
        self.global_vars: dict[str, str] = {}
        #: Timed tasks (``sched_transfer``, ``sched_del``).
        self.scheduler = Scheduler()
        #: Running mod_conference rooms by name.
        self.conferences: dict[str, FSConfRoom] = {}
        #: The most recent events fired (newest last).
        self.event_log: deque[FSEvent] = deque(maxlen=20_000)
        self.sessions_since_startup = 0
        self.peak_sessions = 0
        self._host = host
        self._port = port
        self._started = time.monotonic()
        self._channels: dict[str, FSChannel] = {}
        self._leg_phones: dict[str, AgentPhone] = {}
        self._listeners: dict[str, list[FSEvent]] = {}
        self._sessions: dict[ESLSession, asyncio.Task[None]] = {}
        #: (application, whether it runs): the next ``sendmsg`` executing it on an inbound
        #: socket drops that connection before the reply (:meth:`cut_at_application`).
        self.cut_at: tuple[str, bool] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._stopping = False
        self._session_ids = itertools.count(1)
        self._log = log.bind(pbx="demo-freeswitch")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the ESL listener and start the heartbeat."""
        if self._server is not None:
            return
        self._stopping = False
        self._started = time.monotonic()
        self._server = await asyncio.start_server(self._on_esl_client, self._host, self._port)
        self.spawn(self._heartbeat(), "heartbeat")
        self._log.info("demofs_started", esl_port=self.esl_port, mode=self.mode)

    async def stop(self) -> None:
        """Close every connection and stop every call (no events are sent)."""
        if self._server is None:
            return
        self._stopping = True
        server, self._server = self._server, None
        server.close()
        for session in list(self._sessions):
            session.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        self.scheduler.close()
        self._channels.clear()
        self._log.info("demofs_stopped")

    async def __aenter__(self) -> DemoFreeSwitch:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def esl_port(self) -> int:
        """The TCP port the inbound ESL server listens on (127.0.0.1)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("DemoFreeSwitch is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def set_socket_address(self, host: str, port: int) -> None:
        """Where the ``socket`` application connects (the daemon's outbound-socket server,
        often known only after the PBX started)."""
        self.socket_address = f"{host}:{port}"
        self._log.info("demofs_socket_address", socket_address=self.socket_address)

    @property
    def uptime(self) -> float:
        """Seconds since :meth:`start`."""
        return time.monotonic() - self._started

    @property
    def channels(self) -> Mapping[str, FSChannel]:
        """Live channels by Unique-ID (read-only view)."""
        return MappingProxyType(self._channels)

    def find_channel(self, key: str) -> FSChannel | None:
        """The live channel with this Unique-ID or channel name, or None."""
        chan = self._channels.get(key)
        if chan is None:
            chan = next((c for c in self._channels.values() if c.name == key), None)
        return chan

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the PBX owns (cancelled by :meth:`stop`)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("demofs_task_failed", task=task.get_name(), exc_info=task.exception())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            uptime = self.uptime
            self.hub.fire(
                "HEARTBEAT",
                [
                    ("Event-Info", "System Ready"),
                    ("Up-Time", uptime_words(uptime)),
                    ("FreeSWITCH-Version", FREESWITCH_VERSION),
                    ("Uptime-msec", str(int(uptime * 1000))),
                    ("Session-Count", str(len(self._channels))),
                    ("Max-Sessions", "1000"),
                    ("Session-Per-Sec", "200"),
                    ("Session-Per-Sec-Last", "0"),
                    ("Session-Per-Sec-Max", "0"),
                    ("Session-Per-Sec-FiveMin", "0"),
                    ("Session-Since-Startup", str(self.sessions_since_startup)),
                    ("Session-Peak-Max", str(self.peak_sessions)),
                    ("Session-Peak-FiveMin", str(self.peak_sessions)),
                    ("Idle-CPU", "98.000000"),
                ],
            )
            self.hub.fire(
                "RE_SCHEDULE",
                [
                    ("Task-ID", "1"),
                    ("Task-Desc", "heartbeat"),
                    ("Task-Group", "core"),
                    ("Task-Runtime", str(int(time.time() + self.heartbeat_interval))),
                ],
            )

    # ------------------------------------------------------------------ ESL

    def _on_esl_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.close()
            return
        session = ESLSession(self, reader, writer)
        self._sessions[session] = self.spawn(session.run(), "esl-inbound")

    def session_closed(self, session: ESLSession) -> None:
        """Called by a session when its connection closed."""
        self._sessions.pop(session, None)

    def cut_at_application(self, app: str, *, runs: bool) -> None:
        """The next ``sendmsg`` that executes ``app`` on an inbound socket gets no reply:
        the connection drops as it arrives (a cut between a command and its reply), the
        application queued on the channel (``runs``) or lost with the link."""
        self.cut_at = (app, runs)

    async def drop_esl_connections(self) -> None:
        """Abruptly close every inbound ESL connection (for reconnect tests); calls go on."""
        sessions = {s: t for s, t in self._sessions.items() if not s.outbound}
        for session in sessions:
            session.abort()
        await asyncio.gather(*sessions.values(), return_exceptions=True)
        self._log.info("demofs_esl_dropped", connections=len(sessions))

    async def open_outbound_socket(
        self, chan: FSChannel, address: str, options: str = ""
    ) -> ESLSession | None:
        """The ``socket`` application: connect to ``address`` (default: the configured
        socket address) for ``chan``; None when the connection fails."""
        address = address or self.socket_address or ""
        host, _, port_text = address.rpartition(":")
        try:
            port = int(port_text)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host or "127.0.0.1", port), 5.0
            )
        except (OSError, ValueError, TimeoutError) as exc:
            self._log.warning(
                "demofs_socket_failed", channel=chan.name, address=address, error=str(exc)
            )
            return None
        chan.set_var("socket_host", host or "127.0.0.1")
        session = ESLSession(self, reader, writer, channel=chan)
        self._sessions[session] = self.spawn(session.run(), "esl-outbound")
        self._log.info(
            "demofs_socket_connected", channel=chan.name, address=address, options=options
        )
        return session

    async def api(self, command: str, args: str) -> str:
        """Run an ``api`` command; the api/response body."""
        return await run_api(self, command, args)

    async def background_job(self, job_uuid: str, command: str, args: str) -> None:
        """Run a ``bgapi`` command; fire BACKGROUND_JOB with the result as its body."""
        result = await run_api(self, command, args)
        specific = [("Job-UUID", job_uuid), ("Job-Command", command)]
        if args:
            specific.append(("Job-Command-Arg", args))
        self.hub.fire("BACKGROUND_JOB", specific, result)

    def _publish(self, event: FSEvent) -> None:
        self.event_log.append(event)
        for session in list(self._sessions):
            session.deliver(event)
        call_uuid = event.get("Channel-Call-UUID")
        if call_uuid is not None:
            listener = self._listeners.get(call_uuid)
            if listener is not None:
                listener.append(event)

    # ------------------------------------------------------------------ phones & calls

    def add_phone(self, device: str, phone: AgentPhone) -> AgentPhone:
        """Register ``phone`` as ``device`` (``PJSIP/1001``); returns it. Dial strings
        ``user/1001``, ``PJSIP/1001`` and ``sofia/<profile>/1001@host`` all reach it."""
        if "/" not in device:
            raise ValueError(f"device must look like PJSIP/1001, not {device!r}")
        phone.attach(self, device)
        self.phones[device] = phone
        self._registration(device, "sofia::register")
        return phone

    def remove_phone(self, device: str) -> None:
        """The phone registered as ``device`` unregisters (its softphone quits): calls to
        it fail with USER_NOT_REGISTERED from now on."""
        if self.phones.pop(device, None) is not None:
            self._registration(device, "sofia::unregister")

    def subscribe_message_lamp(self, account: str) -> None:
        """A phone subscribes to the message lamp of ``account`` (user@domain): mod_sofia
        asks whoever keeps its messages with a ``MESSAGE_QUERY`` event."""
        self.hub.fire("MESSAGE_QUERY", [("Message-Account", f"sip:{account}")])

    def message_waiting(self, headers: Mapping[str, str]) -> None:
        """A ``MESSAGE_WAITING`` event was sent (``sendevent``): mod_sofia would notify the
        phones subscribed to its account; the demo keeps the counts."""
        account = (headers.get("MWI-Message-Account") or "").removeprefix("sip:")
        counts = (headers.get("MWI-Voice-Message") or "0/0").partition(" ")[0]
        new, _, old = counts.partition("/")
        if account and new.isdigit() and old.isdigit():
            self.message_lamps[account] = (int(new), int(old))

    def registered_contact(self, user: str) -> str | None:
        """The contact of the phone registered as SIP user ``user`` (None: not registered)."""
        found = self.find_phone(f"user/{user}")
        if found is None:
            return None
        return f"sofia/{SOFIA_PROFILE}/sip:{user}@127.0.0.1:{_phone_port(found[0])}"

    def _registration(self, device: str, subclass: str) -> None:
        """mod_sofia's CUSTOM event for a phone that (un)registers (sofia_reg.c's headers)."""
        user = device.partition("/")[2]
        specific = [
            ("Event-Subclass", subclass),
            ("profile-name", SOFIA_PROFILE),
            ("from-user", user),
            ("from-host", SOFIA_DOMAIN),
            ("contact", f'"{user}" <sip:{user}@127.0.0.1:{_phone_port(device)}>'),
            ("call-id", f"reg-{user}-{_phone_port(device)}"),
            ("rpid", "unknown"),
        ]
        if subclass == "sofia::register":
            specific += [("status", "Registered(UDP)"), ("expires", "300")]
        self.hub.fire("CUSTOM", specific)

    def find_phone(self, endpoint: str) -> tuple[str, AgentPhone] | None:
        """The registered phone a dial-string endpoint reaches: ``(device, phone)``."""
        if endpoint in self.phones:
            return endpoint, self.phones[endpoint]
        tech, _, rest = endpoint.partition("/")
        tech = tech.lower()
        if tech == "sofia":
            rest = rest.partition("/")[2]
        elif tech not in ("user", "pjsip", "sip"):
            return None
        resource = rest.partition("@")[0]
        if not resource:
            return None
        for device, phone in self.phones.items():
            user = device.partition("/")[2].partition("@")[0]  # PJSIP/5550108@trunk
            if resource in (user, phone.number):
                return device, phone
        return None

    async def call(
        self,
        destination: str,
        caller_num: str = "5550100",
        caller_name: str = "",
        *,
        context: str = "default",
    ) -> Caller:
        """A caller dials ``destination``: a new ``sofia/lab/<caller_num>@127.0.0.1``
        channel runs the dialplan (usually parking, or the socket application).
        Returns the caller's handle."""
        if self._server is None:
            raise RuntimeError("DemoFreeSwitch is not started")
        chan_uuid = str(uuidlib.uuid4())
        user = caller_num or "anonymous"
        name = f"sofia/lab/{user}@127.0.0.1"
        chan = FSChannel(
            self.hub,
            uuid=chan_uuid,
            name=name,
            device=f"sofia/lab/{user}",
            direction="inbound",
            caller_num=caller_num,
            caller_name=caller_name,
            destination=destination,
            context=context,
            username=caller_num,
        )
        self._base_variables(chan)
        chan.set_var("sip_from_user", caller_num)
        chan.set_var("sip_from_uri", f"{user}@127.0.0.1")
        chan.set_var("sip_from_host", "127.0.0.1")
        chan.set_var("sip_from_display", caller_name)
        chan.set_var("sip_call_id", f"{chan_uuid[:8]}@127.0.0.1")
        chan.set_var("sip_network_ip", "127.0.0.1")
        chan.set_var("sip_req_user", destination)
        chan.set_var("sip_to_user", destination)
        chan.set_var("sofia_profile_name", "lab")
        for codec_var, value in (
            ("read_codec", "PCMU"),
            ("read_rate", "8000"),
            ("write_codec", "PCMU"),
            ("write_rate", "8000"),
            ("dtmf_type", "rfc2833"),
            ("endpoint_disposition", "RECEIVED"),
        ):
            chan.set_var(codec_var, value)
        self._register(chan)
        caller = Caller(self, chan)
        self._listeners[chan.call_uuid] = caller.events
        self._log.info("demofs_call", channel=name, uuid=chan_uuid, destination=destination)
        chan.fire("CHANNEL_STATE", minimal=True)
        self.spawn(self._run_channel(chan, lambda: self._inbound_start(chan)), f"chan-{chan_uuid}")
        await asyncio.sleep(0)
        return caller

    def _base_variables(self, chan: FSChannel) -> None:
        chan.set_var("direction", chan.direction)
        if chan.direction == "outbound":
            chan.set_var("is_outbound", "true")
        chan.set_var("uuid", chan.uuid)
        chan.set_var("call_uuid", chan.call_uuid)
        chan.set_var("session_id", str(next(self._session_ids)))
        chan.set_var("channel_name", chan.name)

    def _register(self, chan: FSChannel) -> None:
        self._channels[chan.uuid] = chan
        self.sessions_since_startup += 1
        self.peak_sessions = max(self.peak_sessions, len(self._channels))

    def new_outbound_leg(
        self,
        device: str,
        phone: AgentPhone | None,
        *,
        a_leg: FSChannel | None,
        variables: Mapping[str, str],
        caller_id: tuple[str, str] | None = None,
        channel_name: str | None = None,
    ) -> FSChannel:
        """Create the channel that rings ``device`` (CHANNEL_OUTGOING ... CS_CONSUME_MEDIA)
        for ``a_leg`` (None: an ``originate``), with the dial string's variables; called
        ``channel_name`` (by default ``sofia/lab/<user>@127.0.0.1``)."""
        resource = device.partition("/")[2] if phone is not None else device.rsplit("/", 1)[-1]
        resource = resource.partition("@")[0]
        leg_uuid = variables.get("origination_uuid") or str(uuidlib.uuid4())
        if leg_uuid in self._channels:
            leg_uuid = str(uuidlib.uuid4())
        if a_leg is not None:
            num, name = a_leg.cid_num, a_leg.cid_name
        else:
            num, name = caller_id or ("0000000000", "FreeSWITCH")
        num = variables.get("origination_caller_id_number", num)
        name = variables.get("origination_caller_id_name", name)
        leg = FSChannel(
            self.hub,
            uuid=leg_uuid,
            name=channel_name or f"sofia/lab/{resource}@127.0.0.1",
            device=device,
            direction="outbound",
            caller_num=num,
            caller_name=name,
            destination=resource,
            call_uuid=a_leg.call_uuid if a_leg is not None else leg_uuid,
            username=a_leg.username if a_leg is not None else "",
            callee_num=resource,
            callee_name="Outbound Call",
            state=ChannelState.CS_NONE,
        )
        if a_leg is not None:
            leg.orig_cid_num, leg.orig_cid_name = a_leg.cid_num, a_leg.cid_name
            leg.ani = a_leg.cid_num
            leg.other, leg.other_type = a_leg, "originator"
        self._base_variables(leg)
        if a_leg is not None:
            leg.set_var("originator", a_leg.uuid)
            leg.set_var("originating_leg_uuid", a_leg.uuid)
            leg.set_var("signal_bond", a_leg.uuid)
            for exported in filter(None, a_leg.var("export_vars").split(",")):
                value = a_leg.variables.get(exported) or a_leg.variables.get(f"nolocal:{exported}")
                leg.set_var(exported, value)
        for var_name, value in variables.items():
            leg.set_var(var_name, value)
        leg.set_var("originate_endpoint", device.partition("/")[0].lower())
        self._register(leg)
        if phone is not None:
            self._leg_phones[leg_uuid] = phone
        leg.fire("CHANNEL_OUTGOING")
        leg.set_state(ChannelState.CS_INIT)
        leg.fire("CHANNEL_CREATE")
        leg.fire("CHANNEL_ORIGINATE")
        leg.set_state(ChannelState.CS_ROUTING)
        leg.set_state(ChannelState.CS_CONSUME_MEDIA)
        self.spawn(self._run_channel(leg, lambda: self._leg_program(leg)), f"chan-{leg_uuid}")
        return leg

    def loopback_leg(
        self, endpoint: str, a_leg: FSChannel | None, variables: Mapping[str, str]
    ) -> FSChannel | None:
        """``loopback/app=<application>[:<argument>]`` (mod_loopback): the ``-a`` leg is
        the dialled one, the ``-b`` leg runs the application once ``-a`` is answered
        (:meth:`start_loopback`); either hanging up hangs up the other. Variables named in
        ``loopback_export`` go to the ``-b`` leg. None for any other loopback form (the
        demo has no dialplan behind it)."""
        destination = endpoint.partition("/")[2]
        if not destination.startswith("app="):
            return None
        leg = self.new_outbound_leg(
            endpoint,
            None,
            a_leg=a_leg,
            variables=variables,
            channel_name=f"loopback/{destination}-a",
        )
        b_uuid = str(uuidlib.uuid4())
        other = FSChannel(
            self.hub,
            uuid=b_uuid,
            name=f"loopback/{destination}-b",
            device=endpoint,
            direction="inbound",
            caller_num=leg.cid_num,
            caller_name=leg.cid_name,
            destination=destination,
            context="default",
            call_uuid=b_uuid,
        )
        self._base_variables(other)
        for exported in filter(None, variables.get("loopback_export", "").split(",")):
            other.set_var(exported, variables.get(exported, ""))
        other.set_var("loopback_leg", "B")
        leg.set_var("loopback_leg", "A")
        leg.loop_peer, other.loop_peer = other, leg
        self._register(other)
        return leg

    def start_loopback(self, leg: FSChannel) -> None:
        """The ``-a`` leg of a loopback was answered: its ``-b`` leg runs its application."""
        other = leg.loop_peer
        if other is None or other.hungup:
            return
        app, _, arg = other.destination.removeprefix("app=").partition(":")

        async def run() -> None:
            other.set_state(ChannelState.CS_INIT)
            other.fire("CHANNEL_CREATE")
            other.set_state(ChannelState.CS_ROUTING)
            other.set_state(ChannelState.CS_EXECUTE)
            await execute(self, other, app, arg)

        self.spawn(self._run_channel(other, run), f"chan-{other.uuid}")

    def unreachable(
        self, endpoint: str, a_leg: FSChannel | None, variables: Mapping[str, str]
    ) -> str:
        """The cause for a dial-string endpoint no phone answers to. A ``sofia/`` endpoint
        gets a channel that fails at once (``NORMAL_TEMPORARY_FAILURE``, trace g)."""
        tech, _, rest = endpoint.partition("/")
        tech = tech.lower()
        if tech == "sofia":
            leg = self.new_outbound_leg(endpoint, None, a_leg=a_leg, variables=variables)
            leg.hangup("NORMAL_TEMPORARY_FAILURE")
            return "NORMAL_TEMPORARY_FAILURE"
        if tech == "error":
            return cause_name(rest) or "NORMAL_CLEARING"
        if tech in ("user", "pjsip", "sip"):
            return "USER_NOT_REGISTERED"
        return "CHAN_NOT_IMPLEMENTED"

    def prompt_duration(self, path: str) -> float | None:
        """How long ``path`` plays (seconds; ``inf`` for ``local_stream://`` and a tone
        looped for ever); None if the file does not exist."""
        if path.startswith("local_stream://") or (
            path.startswith("tone_stream://") and "loops=-1" in path
        ):
            return float("inf")
        if path.startswith("silence_stream://"):
            ms = path[len("silence_stream://") :].split(",", maxsplit=1)[0]
            return int(ms) / 1000 if ms.isdigit() else self.prompt_seconds
        name = prompt_name(path)
        if name in self.missing_prompts or path in self.missing_prompts:
            return None
        return self.prompt_durations.get(path, self.prompt_durations.get(name, self.prompt_seconds))

    # ------------------------------------------------------------------ dialplan

    def lookup(self, destination: str, context: str) -> list[DialplanStep] | None:
        """The steps for ``destination``, or None: the extension of ``context`` in
        :attr:`contexts` if there is one, else of :attr:`dialplan` (whatever the context).
        Like the demo Asterisk's ``transfer`` context and fallback, any other dialable
        destination rings ``user/<destination>`` for 30 s (a phone not registered fails the
        bridge)."""
        steps = self.contexts.get(context, {}).get(destination)
        if steps is not None:
            return steps
        steps = self.dialplan.get(destination)
        if steps is not None:
            return steps
        code, digits = destination[:3], destination[3:]
        coded = {
            **{c: f"{script}?agent=" for c, script in SUPERVISOR_CODES.items()},
            HOT_DESK_CODE: f"{DEFAULT_ROUTES[HOT_DESK_CODE]}?agent=",
            LINE_CODE: f"{DEFAULT_ROUTES[LINE_CODE]}?agent=",
            SWITCH_CODE: f"{SWITCH_SCRIPT}?code=",
            DISPOSITION_CODE: f"{DISPOSITION_SCRIPT}?code=",
            QUEUE_CODE: f"{QUEUE_SCRIPT}?code=",
            DIAL_CODE: f"{DIAL_SCRIPT}?number=",
            QUEUE_STATUS_CODE: f"{QUEUE_STATUS_SCRIPT}?code=",
            DESK_CODE: f"{DESK_SCRIPT}?supervisor=",
        }
        keyed = digits.isdigit() or (code == DISPOSITION_CODE and _KEYED.fullmatch(digits))
        if code in coded and keyed and self._supervisor_route is not None:
            # callcenter.xml's ^\*81(\d+)$ with callcenter_route=supervisor-listen?agent=$1
            # (and ^\*71(\d+)$, agent-login?agent=$1: hot desking; ^\*28(\d+)$,
            # switch-toggle?code=$1)
            name = f"{coded[code]}{digits}"
            return _expand_route(destination, self._supervisor_route, self._failover_after, name)
        if _DIALABLE.fullmatch(destination):
            return [
                ("set", "hangup_after_bridge=true"),
                ("set", f"call_timeout={TRANSFER_RING_SECONDS}"),
                ("bridge", f"user/{destination}"),
            ]
        return None

    def add_route(self, destination: str, route: str) -> None:
        """Destination ``destination`` hands its calls to the daemon with
        ``callcenter_route=<route>`` (``inbound?queue=sales&var_ticket=T-42``: a PBX
        admin's own hook), parked or through the socket as the others."""
        how: Route = "park" if self.mode == "inbound" else "socket"
        self.dialplan[destination] = _expand_route(destination, how, self._failover_after, route)

    def phone_of(self, chan: FSChannel) -> AgentPhone | None:
        """The scripted phone an originated leg rings, if any."""
        return self._leg_phones.get(chan.uuid)

    async def route(self, chan: FSChannel, destination: str, context: str) -> None:
        """Route ``chan`` to ``destination`` and run its steps (CS_ROUTING, CS_EXECUTE);
        ``NO_ROUTE_DESTINATION`` when nothing matches."""
        chan.set_state(ChannelState.CS_ROUTING)
        steps = self.lookup(destination, context)
        if steps is None:
            self._log.info("demofs_no_route", channel=chan.name, destination=destination)
            chan.hangup("NO_ROUTE_DESTINATION")
            return
        chan.set_state(ChannelState.CS_EXECUTE)
        for app, step_arg in steps:
            await run_queued(self, chan)
            if chan.stopped:
                return
            arg = step_arg
            if app == "socket" and not arg.strip():
                arg = f"{self.socket_address} async full" if self.socket_address else ""
            await execute(self, chan, app, arg)
            if chan.stopped:
                return
        await run_queued(self, chan)

    async def _inbound_start(self, chan: FSChannel) -> None:
        chan.set_state(ChannelState.CS_INIT)
        chan.fire("CHANNEL_CREATE")
        chan.set_state(ChannelState.CS_ROUTING, fire=False)
        chan.set_call_state(CallState.RINGING)
        chan.fire("CHANNEL_STATE")
        await self.route(chan, chan.destination, chan.context)

    async def _leg_program(self, leg: FSChannel) -> None:
        """What an outbound leg does: wait to be bridged, or run what ``originate`` said."""

        def assigned() -> bool:
            return leg.stopped or leg.pending_program is not None or leg.bridge is not None

        await leg.wait_until(assigned, None)
        if leg.stopped:
            return
        program = leg.pending_program
        if program is not None:
            leg.pending_program = None
            await program()
            return
        bridge = leg.bridge
        if bridge is not None:
            await leg.wait_until(lambda: leg.stopped or bridge.ended, None)
            unlink(bridge)
            leg.after_bridge = True

    async def _uuid_bridged(self, chan: FSChannel, request: BridgeTo) -> None:
        """``uuid_bridge``: CHANNEL_EXECUTE uuid_bridge, CHANNEL_BRIDGE once both legs are
        here, then stay until one leg goes or is redirected."""
        bridge, other = request.bridge, request.other
        chan.after_bridge = True
        if bridge.ended or other.hungup:
            return
        chan.set_state(ChannelState.CS_SOFT_EXECUTE)
        chan.fire(
            "CHANNEL_EXECUTE",
            post=[("Application", "uuid_bridge"), ("Application-Data", other.uuid)],
            site=("switch_ivr_bridge.c", "uuid_bridge_on_soft_execute", "1236"),
        )
        bridge.arrived.add(chan.uuid)
        if len(bridge.arrived) == 2:
            activate(bridge)

        def over() -> bool:
            other_left = other.uuid in bridge.arrived and other.redirect is not None
            return chan.stopped or other.hungup or bridge.ended or other_left

        await wait_change([chan, other], over, None)
        unlink(bridge)
        if not chan.hungup:
            chan.set_state(ChannelState.CS_EXECUTE)

    def _next_program(self, chan: FSChannel) -> Program | None:
        """What a channel does after its program ended without a hang-up."""
        redirect = chan.take_redirect()
        if isinstance(redirect, Transfer):
            transfer = redirect
            chan.after_bridge = False

            async def transferred() -> None:
                chan.set_transfer(transfer.destination, transfer.context)
                if transfer.dialplan == "inline":
                    await self._run_inline(chan, transfer.destination)
                else:
                    await self.route(chan, transfer.destination, transfer.context)

            return transferred
        if isinstance(redirect, BridgeTo):
            request = redirect

            async def bridged() -> None:
                await self._uuid_bridged(chan, request)

            return bridged
        if chan.after_bridge and chan.var_true("park_after_bridge"):
            chan.after_bridge = False

            async def parked() -> None:
                await park_loop(self, chan)

            return parked
        return None

    async def _run_inline(self, chan: FSChannel, destination: str) -> None:
        """The ``inline`` dialplan: ``app:arg,app:arg`` run in order (then the channel
        hangs up, as nothing is left to run)."""
        chan.set_state(ChannelState.CS_EXECUTE)
        for step in destination.split(","):
            app, _, arg = step.partition(":")
            await execute(self, chan, app.strip(), arg)
            if chan.stopped:
                return

    async def _run_channel(self, chan: FSChannel, first: Program) -> None:
        program: Program | None = first
        try:
            while program is not None and not chan.hungup:
                await program()
                program = self._next_program(chan)
            # Nothing left to do: FreeSWITCH hangs the channel up.
            chan.hangup("NORMAL_CLEARING")
        except Exception:
            self._log.exception("demofs_channel_failed", channel=chan.name)
            chan.hangup("NORMAL_TEMPORARY_FAILURE")
        finally:
            if not self._stopping:
                self._teardown(chan)

    def _teardown(self, chan: FSChannel) -> None:
        """CS_HANGUP ... CHANNEL_HANGUP_COMPLETE, CHANNEL_DESTROY: the channel is gone."""
        if chan.destroyed:
            return
        if chan.bridge is not None:
            unlink(chan.bridge)
        stop_session_recording(chan)
        chan.set_state(ChannelState.CS_HANGUP)
        chan.set_call_state(CallState.HANGUP)
        chan.set_state(ChannelState.CS_REPORTING)
        chan.final_variables()
        chan.fire("CHANNEL_HANGUP_COMPLETE", pre=[("Hangup-Cause", chan.hangup_cause or "")])
        chan.fire("CHANNEL_DESTROY")
        chan.set_state(ChannelState.CS_DESTROY)
        chan.destroyed = True
        self.scheduler.delete(chan.uuid)
        self._channels.pop(chan.uuid, None)
        phone = self._leg_phones.pop(chan.uuid, None)
        if phone is not None:
            phone.channel_gone(chan)
        if not any(c.call_uuid == chan.call_uuid for c in self._channels.values()):
            self._listeners.pop(chan.call_uuid, None)
        chan.notify()


def _expand_route(
    destination: str, route: Route, failover_after: float | None, name: str | None = None
) -> list[DialplanStep]:
    if isinstance(route, str):
        if route not in ("park", "socket"):
            raise ValueError(f"route for {destination!r} must be 'park', 'socket' or steps")
        name = name or DEFAULT_ROUTES.get(destination, destination)
        steps: list[DialplanStep] = [("set", f"callcenter_route={name}")]
        if failover_after is None:
            return [*steps, (route, "")]
        if route == "socket":
            # Reached when the socket cannot connect: the daemon is down.
            return [*steps, (route, ""), ("transfer", f"{FAILOVER_EXTENSION} XML ${{context}}")]
        return [
            *steps,
            ("sched_transfer", f"+{failover_after:g} {FAILOVER_EXTENSION} XML ${{context}}"),
            ("set", f"{FAILOVER_TASK_VARIABLE}=${{last_sched_id}}"),
            (route, ""),
        ]
    return [(app, arg) for app, arg in route]


__all__ = ["DemoFreeSwitch", "DialplanStep", "Route"]
