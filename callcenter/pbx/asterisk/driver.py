"""The Asterisk driver: :class:`AsteriskDriver` implements :class:`callcenter.pbx.interface.PBX`.

* AMI (:class:`~callcenter.pbx.asterisk.ami.AMIConnection`) carries PBX-wide actions
  (Hangup, Originate, Redirect, CoreShowChannels) and the events the driver tracks channels
  with (Newchannel, Newstate, Hangup, DialBegin/DialEnd, BridgeEnter/BridgeLeave,
  DeviceStateChange). After every (re)login the channel table is rebuilt from
  ``CoreShowChannels``: a call whose channel vanished while the link was down is marked hung
  up, and with AsyncAGI a channel waiting in ``AGI(agi:async)`` that no session knows (its
  ``AsyncAGIStart`` came while the link was down) is adopted.
* Calls arrive over AGI: FastAGI (``AGI(agi://host:4573/inbound?queue=sales)``, the default)
  or AsyncAGI (``AGI(agi:async,inbound?queue=sales)``; there the first AGI argument names the
  route). Each call runs ``handler(call)`` in its own task; when the handler returns, the
  AGI session is closed and the dialplan continues at the next priority.
* :class:`AsteriskCall` implements :class:`~callcenter.pbx.interface.Call` with AGI
  commands; once the caller hung up every command raises ``CallHungUp`` (except
  :meth:`~AsteriskCall.hangup` and :meth:`~AsteriskCall.get_variable`). While hold music
  plays (``StartMusicOnHold``, a generator: no AGI command runs) the AGI's own loop reads
  the channel, so each key pressed comes as an AMI ``DTMFEnd``: ``read_digits`` without a
  prompt takes those (no command sent, the music playing on) while AMI is up, and sends
  ``WAIT FOR DIGIT`` when it is not.
* Beside a running AGI (even inside ``EXEC Dial``) the driver uses AMI: ``MixMonitor`` /
  ``StopMixMonitor`` record the caller's channel; hold is ``MuteAudio`` of the agent leg
  (no music: see :meth:`AsteriskCall.hold`); :meth:`AsteriskDriver.spy` originates the
  supervisor into ``ChanSpy`` and :class:`AsteriskSpySession` switches modes with
  ``PlayDTMF`` and ends the spy with ``Redirect`` (an AMI ``Hangup`` does not, trace 09).
* A heartbeat for the dialplan: every ``heartbeat_interval`` seconds the driver sets the
  global variable ``CALLCENTER_HEARTBEAT`` to the Unix time (AMI ``Setvar``, write=call),
  and to 0 when it stops. Asterisk cannot tell whether anyone reads AsyncAGI, so the
  AsyncAGI context checks it before ``AGI(agi:async)``: with no daemon a caller would wait
  there in silence.
* A guard for callers no daemon takes: the AsyncAGI contexts also set
  ``TIMEOUT(absolute)=20`` right before ``AGI(agi:async,inbound?guard=20)`` and send the
  ``T`` extension to the failover, so a caller who arrives while the daemon is dead but its
  heartbeat still fresh (a crash, a hung process systemd has not restarted yet, a link down
  for good) hears the failover after 20 s instead of silence. When the driver takes a call
  whose AGI arguments carry ``guard`` it clears that timeout (AMI ``Setvar
  TIMEOUT(absolute)=0``) before the call's first command; a call without ``guard`` keeps
  whatever absolute timeout the admin gave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final, Literal
from urllib.parse import parse_qsl

import structlog

from callcenter.errors import (
    ActionFailed,
    CallError,
    CallHungUp,
    CommandFailed,
    PBXConnectionError,
    PBXError,
)
from callcenter.pbx.asterisk.agi import (
    RECORD_SAMPLE_RATE,
    AGISession,
    AsyncAGIRouter,
    AsyncAGISession,
    FastAGIServer,
    FastAGISession,
)
from callcenter.pbx.asterisk.ami import AMIConnection
from callcenter.pbx.claim import PBXClaim, ReadGlobal, WriteGlobal
from callcenter.pbx.interface import (
    ANNOUNCE_FILE,
    CALLER_NAME,
    MAX_DELAY,
    REPORT_HOLD_PROMPT,
    RINGBACK,
    RINGBACK_CLASS,
    CallHandler,
    CallInfo,
    ChannelHungUp,
    ChannelSnapshot,
    DeviceStateChanged,
    DialResult,
    DialStatus,
    DigitPressed,
    HangupCause,
    HungUpBy,
    LampState,
    PBXClaimLost,
    PBXConnected,
    PBXDisconnected,
    PBXEvent,
    PBXListener,
    RecordResult,
    SayKind,
    SpyMode,
    Transport,
    reported_wait,
)
from callcenter.pbx.music_keys import MusicKeys
from callcenter.pbx.room import RoomLife
from callcenter.pbx.spy import SpyLife
from callcenter.protocols.agi import AGIResult, format_command
from callcenter.protocols.ami import AMIMessage
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

AGITransport = Literal["fastagi", "asyncagi"]

#: Extra seconds on top of the expected duration of a long command before it times out.
LONG_COMMAND_MARGIN = 5.0
#: Seconds to wait for the channel's Hangup event when an AsyncAGI session ended mid-dial.
HANGUP_SETTLE = 0.5
#: Dial devices: technology/resource, ``&`` for several; nothing that could add Dial
#: arguments or options (``,``, ``|``, ``(``, quotes, spaces).
_ONE_DEVICE = r"[A-Za-z][A-Za-z0-9_-]*/[A-Za-z0-9_.@:+#*=/-]+"
_DEVICE = re.compile(rf"{_ONE_DEVICE}(?:&{_ONE_DEVICE})*")
#: A channel name such as ``PJSIP/1001-0000000a`` or ``Local/2002@transfer-00000001;1``.
ORIGINATE_EARLY_KEPT = 256
"""OriginateResponses kept for an Originate whose response is still being read."""
_ORIGINATE_REASONS: Final = {
    "0": "unavailable",
    "1": "rejected",
    "3": "no-answer",
    "5": "busy",
    "8": "congestion",
}
"""OriginateResponse ``Reason`` (the last control frame Asterisk saw) -> ORIGINATE_FAILURES:
0 no channel, 1 hung up (declined), 3 rang out, 5 busy, 8 congestion (4 is answered)."""


def originate_outcome(msg: AMIMessage) -> str:
    """An ``OriginateResponse`` as :meth:`PBX.originate`'s outcome: ``""`` (answered) or
    one of ORIGINATE_FAILURES."""
    if (msg.get("Response") or "").lower() == "success":
        return ""
    return _ORIGINATE_REASONS.get((msg.get("Reason") or "").strip(), "failed")


_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]*/[A-Za-z0-9_.@:+#*=/;-]+")
#: Caller ID for Dial's ``o(...)`` option: ``Name <number>`` without quotes or parentheses.
_CALLER_ID = re.compile(r"[A-Za-z0-9+*#. _<>@-]{1,80}")
_MOH_CLASS = re.compile(r"[A-Za-z0-9_-]{1,80}")
BRIDGE_SETTLE = 0.3
"""Seconds a dial with an announcement waits, after Dial returned answered, for the AMI
BridgeEnter that says the caller was put through (the AGI result can come first)."""
_DIGITS = "0123456789*#"
_SAY_DIGITS = re.compile(r"[0-9*#]{1,64}")
_SAY_NUMBER = re.compile(r"-?[0-9]{1,15}")
_RECORD_FORMAT = re.compile(r"[a-z0-9]{2,8}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})?")
#: Where :meth:`AsteriskSpySession.stop` redirects the supervisor's leg: an AMI ``Hangup``
#: of a ChanSpy channel is acknowledged but leaves the spy running (traces 09/10); a
#: ``Redirect`` ends it at once (trace 11). dialplans/asterisk/extensions.conf has it.
SPY_STOP_LOCATION = ("callcenter-hangup", "hangup", 1)
#: The dialplan context whose ``_[0-9a-zA-Z].`` extension runs ``ConfBridge(${EXTEN})``:
#: where :meth:`AsteriskCall.conference` redirects the agent leg.
CONFERENCE_CONTEXT = "callcenter-conference"
#: The dialplan subroutine Dial's ``U()`` runs on an answering agent's channel to tell
#: them the caller's wait (``Call.dial``'s ``report_wait``): ``Playback(${ARG1})``,
#: ``SayNumber(${ARG2})``, ``Playback(${ARG3})``, ``Return()``.
AGENT_HEAR_CONTEXT: Final = "callcenter-agent-hear"
#: The dialplan subroutine Dial's ``U()`` runs on an answering agent's channel for a
#: ``Call.dial`` with a ``delay`` (app_queue's memberdelay): ``Wait(${ARG1})``, then, each
#: only when given, ``Playback(${ARG2})`` (the announcement and "hold time", joined by
#: ``&``), ``SayNumber(${ARG3})``, ``Playback(${ARG4})``, ``Return()``. A() would play the
#: announcement before the pause, while the agent's audio may not be up yet.
AGENT_WAIT_CONTEXT: Final = "callcenter-agent-wait"
#: The dialplan subroutine Dial's ``b()`` runs on each rung agent channel before it rings
#: when its phone is to answer by itself (agents' ``auto_answer``): it adds the header.
AUTO_ANSWER_CONTEXT: Final = "callcenter-auto-answer"
#: What an originated leg gets for the same (no pre-dial subroutine with Originate): the
#: header most phones honour (RFC 5373's predecessor, read by Yealink, Snom, Grandstream,
#: Polycom with its setting), through res_pjsip_header_funcs.
AUTO_ANSWER_VARIABLE: Final = ("PJSIP_HEADER(add,Call-Info)", "<sip:callcenter>;answer-after=0")
_ROOM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,63}")
#: The ConfBridge user-profile setting that plays music on hold to a member left alone.
MOH_WHEN_ALONE: Final = "CONFBRIDGE(user,music_on_hold_when_empty)"
#: The ConfBridge user-profile setting naming that music's class.
MOH_CLASS_ALONE: Final = "CONFBRIDGE(user,music_on_hold_class)"
#: The ConfBridge user-profile setting that keeps a member from hearing the join prompts.
QUIET_MEMBER: Final = "CONFBRIDGE(user,quiet)"
#: ChanSpy options: ``q`` no beep/announcement, ``E`` end when the spied-on channel
#: hangs up, ``d`` DTMF mode switching (4 listen, 5 whisper, 6 barge).
_SPY_OPTIONS: dict[SpyMode, str] = {"listen": "qEd", "whisper": "qEdw", "barge": "qEdB"}
_SPY_DTMF: dict[SpyMode, str] = {"listen": "4", "whisper": "5", "barge": "6"}
_SPY_KEYS: dict[str, SpyMode] = {digit: mode for mode, digit in _SPY_DTMF.items()}
#: Seconds a supervisor's own call may spy (:meth:`AsteriskCall.spy`): the AGI command
#: lasts as long as the spy, so its usual time limit cannot apply.
SPY_LIMIT = 12 * 3600.0
_RECORD_PATH = re.compile(r"[A-Za-z0-9_./-]{1,255}\.[a-z0-9]{2,8}")
#: Everything a finished ``Dial`` left on the caller's channel, read in one AGI command.
_DIAL_OUTCOME: Final = "${DIALSTATUS}|${ANSWEREDTIME}|${DIALEDPEERNAME}|${HANGUPCAUSE}"

#: Seconds a resync waits before adopting a channel it found in AsyncAGI with no session:
#: time enough for the ``AsyncAGIStart`` of a call that was just arriving.
ASYNCAGI_ADOPT_GRACE = 1.0
#: The global dialplan variable the heartbeat sets (see the module docstring).
HEARTBEAT_VARIABLE: Final = "CALLCENTER_HEARTBEAT"
#: The global dialplan variable holding the claim of the daemon that drives this Asterisk.
OWNER_VARIABLE: Final = "CALLCENTER_OWNER"
#: The AGI argument (``inbound?guard=20``) saying the dialplan set ``TIMEOUT(absolute)`` as
#: a guard for the hand-over, which the driver clears when it takes the call.
GUARD_PARAM: Final = "guard"
#: The dialplan function the guard is set with.
ABSOLUTE_TIMEOUT: Final = "TIMEOUT(absolute)"
#: Seconds the driver waits for Asterisk to confirm the guard is cleared before the call's
#: first command goes out anyway.
GUARD_CLEAR_TIMEOUT = 2.0
#: Seconds the driver waits for a lost AMI link to clear a guard it could not send (the
#: shipped guard's length: the failover has taken the call by then).
GUARD_RETRY_WITHIN = 20.0


@dataclass(frozen=True, slots=True)
class AsteriskSettings:
    """Everything the Asterisk driver needs; the daemon builds it from the config file."""

    name: str = "asterisk"
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "callcenter"
    ami_secret: str = field(default="", repr=False)
    ami_events: str = "call,agi,dtmf"
    """Event classes asked for at login. ``call`` and ``agi`` are needed; ``dialplan``
    (Newexten) helps notice an AsyncAGI channel leaving AGI but costs many VarSet events."""
    ami_use_md5: bool = False
    ami_filter_events: bool = True
    """After each login ask Asterisk (AMI ``Filter``) for only the events the driver handles."""
    connect_timeout: float = 5.0
    action_timeout: float = 5.0
    keepalive_interval: float = 10.0
    heartbeat_interval: float = 5.0
    """Seconds between two ``CALLCENTER_HEARTBEAT`` updates; 0: none are sent."""
    claim_refresh: float = 5.0
    """Seconds between two writes of this daemon's ``CALLCENTER_OWNER`` mark (see
    :mod:`callcenter.pbx.claim`); 0: no claim is made or checked."""
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    agi_transport: AGITransport = "fastagi"
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    """FastAGI listen port (0 picks a free one; see :attr:`AsteriskDriver.agi_port`)."""
    command_timeout: float = 10.0
    """Deadline of quick AGI commands (answer, variables, hangup)."""
    prompt_timeout: float = 600.0
    """Longest a single prompt may play before the command counts as stuck."""
    max_bridge_seconds: float = 4 * 3600.0
    """Longest an answered dial may stay bridged before the command counts as stuck."""


@dataclass(slots=True)
class _Channel:
    """One live channel as AMI events describe it."""

    name: str
    uniqueid: str
    linkedid: str = ""
    state: str = ""
    caller_num: str = ""
    context: str = ""
    exten: str = ""
    application: str = ""
    bridge: str = ""


_SNAPSHOT_FIELDS = (
    ("linkedid", "Linkedid"),
    ("state", "ChannelStateDesc"),
    ("caller_num", "CallerIDNum"),
    ("context", "Context"),
    ("exten", "Exten"),
)
"""What a channel event tells about a channel first seen in it."""
_STATE_FIELDS = (("state", "ChannelStateDesc"), ("caller_num", "CallerIDNum"))
_EXTEN_FIELDS = (("context", "Context"), ("exten", "Exten"), ("application", "Application"))


@dataclass(slots=True)
class _Dial:
    """What we learn about one ``Call.dial`` while it runs."""

    on_answer: Callable[[str], None] | None
    peer: str | None = None
    answered_at: float | None = None
    answered_notified: bool = False
    ami_status: str = ""
    peer_cause: HangupCause | None = None
    unbridged: bool = False
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the device answered (for hold, which needs the bridged leg)."""
    conference: AsteriskConference | None = None
    """Set by :meth:`AsteriskCall.conference`: once Dial ends the caller joins this room."""
    wait_bridge: bool = False
    """The device hears an announcement first: it counts as answered once the caller is
    bridged to it (``on_answer`` then), not when it picks up."""
    bridged: bool = False
    bridged_event: asyncio.Event = field(default_factory=asyncio.Event)


def probe_connection(settings: AsteriskSettings, action_id_prefix: str) -> AMIConnection:
    """A second, short-lived AMI login as the daemon's user, reading no events (the PBX
    claim's, ``callcenter check --pbx``'s): connect it, use it, close it."""
    return AMIConnection(
        settings.ami_host,
        settings.ami_port,
        settings.ami_username,
        settings.ami_secret,
        events="",
        connect_timeout=settings.connect_timeout,
        action_timeout=settings.action_timeout,
        use_md5=settings.ami_use_md5,
        action_id_prefix=action_id_prefix,
    )


class AsteriskDriver:
    """One Asterisk PBX (implements :class:`callcenter.pbx.interface.PBX`)."""

    def __init__(self, settings: AsteriskSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.ami = AMIConnection(
            settings.ami_host,
            settings.ami_port,
            settings.ami_username,
            settings.ami_secret,
            events=settings.ami_events,
            connect_timeout=settings.connect_timeout,
            action_timeout=settings.action_timeout,
            keepalive_interval=settings.keepalive_interval,
            reconnect_min=settings.reconnect_min,
            reconnect_max=settings.reconnect_max,
            use_md5=settings.ami_use_md5,
            filter_events=settings.ami_filter_events,
        )
        self._handler: CallHandler | None = None
        self._listeners: list[PBXListener] = []
        self._channels: dict[str, _Channel] = {}
        self._by_uniqueid: dict[str, _Channel] = {}
        # Uniqueids that AMI events told about while a resync's snapshot was on its way: the
        # events are newer than the snapshot, which must not undo them.
        self._heard_during_resync: list[set[str]] = []
        # Devices whose state changed while a DeviceStateList was in flight.
        self._device_changes_during_list: list[set[str]] = []
        self._bridges: dict[str, set[str]] = {}
        self._calls: dict[str, AsteriskCall] = {}
        #: Peer channel name -> the call whose dial rang it (so a Hangup finds it in O(1)).
        self._dial_peers: dict[str, AsteriskCall] = {}
        #: Channel name -> where its keys go, for calls waiting in a room (wait_in_room).
        self._room_lines: dict[str, Callable[[str], None]] = {}
        #: Channel name -> the call hearing its hold music (its keys are read from DTMFEnd).
        self._music_lines: dict[str, AsteriskCall] = {}
        #: The AMI event mask has DTMF (:meth:`want_keys`): kept by every login after.
        self._keys_wanted = False
        #: Uniqueid of a supervisor's leg -> its spy session.
        self._spies: dict[str, AsteriskSpySession] = {}
        self._originating: dict[str, asyncio.Future[str]] = {}
        """ActionID -> the outcome of an Originate waiting for its OriginateResponse."""
        self._originate_early: dict[str, str] = {}
        """Outcomes of OriginateResponses nobody waited for yet (see :meth:`originate`)."""
        self._guards: set[asyncio.Task[None]] = set()
        """Setvars clearing AsyncAGI guards, on their way (see :meth:`_clear_guard`)."""
        #: Conference name -> the conference one of our calls runs in it.
        self._conferences: dict[str, AsteriskConference] = {}
        self._fastagi: FastAGIServer | None = None
        self._router: AsyncAGIRouter | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.claim_keeper = PBXClaim(settings.claim_refresh) if settings.claim_refresh > 0 else None
        self._claim_task: asyncio.Task[None] | None = None
        self._claimed = False
        self._adopting: asyncio.Task[None] | None = None
        self._heartbeat_refused = False
        self._started = False
        self._log = log.bind(pbx=self.name)
        for event, method in (
            ("Newchannel", self._ev_newchannel),
            ("Newstate", self._ev_newstate),
            ("Newexten", self._ev_newexten),
            ("Rename", self._ev_rename),
            ("Hangup", self._ev_hangup),
            ("DialBegin", self._ev_dial_begin),
            ("DialEnd", self._ev_dial_end),
            ("BridgeEnter", self._ev_bridge_enter),
            ("BridgeLeave", self._ev_bridge_leave),
            ("DeviceStateChange", self._ev_device_state),
            ("ChanSpyStart", self._ev_chanspy_start),
            ("DTMFEnd", self._ev_dtmf_end),
            ("ConfbridgeJoin", self._ev_confbridge),
            ("ConfbridgeLeave", self._ev_confbridge),
            ("ConfbridgeEnd", self._ev_confbridge),
            ("OriginateResponse", self._ev_originate_response),
        ):
            self.ami.add_event_handler(event, method)
        self.ami.on_connected(self._resync)
        self.ami.on_connected(self._claim_after_reconnect)
        self.ami.on_disconnected(self._on_ami_lost)

    # -- PBX ------------------------------------------------------------------------------

    @property
    def agi_port(self) -> int:
        """The bound FastAGI port (the configured one until started)."""
        return self._fastagi.port if self._fastagi is not None else self.settings.agi_port

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    async def claim(self) -> None:
        """Mark this Asterisk as ours (``CALLCENTER_OWNER``) over a short AMI session that
        asks for no events; ``PBXClaimed`` when another daemon's mark is fresh. An AMI user
        that may not read or write globals (``write=call``) is logged and let through: the
        check is a safety net, not a reason to refuse calls."""
        keeper = self.claim_keeper
        if keeper is None:
            return
        settings = self.settings
        probe = probe_connection(settings, "ccclaim")
        await probe.connect()
        try:
            await keeper.acquire(*self._owner_variable(probe))
            self._claimed = True
        except ActionFailed as exc:
            self._log.warning(
                "pbx_claim_unchecked", error=str(exc), hint="grant the AMI user write=call"
            )
        finally:
            await probe.close()

    def _owner_variable(self, ami: AMIConnection) -> tuple[ReadGlobal, WriteGlobal]:
        async def read() -> str:
            reply = await ami.send_action("Getvar", [("Variable", OWNER_VARIABLE)])
            return reply.get("Value") or ""

        async def write(value: str) -> None:
            await ami.send_action(
                "Setvar",
                [("Variable", OWNER_VARIABLE), ("Value", value)],
                retry_on_reconnect=False,
            )

        return read, write

    async def _release_claim(self) -> None:
        """Clear our mark (a stop, or a start that failed after the claim), if we made one
        and can still reach the PBX: a standby need not wait for it to go stale."""
        keeper = self.claim_keeper
        if keeper is not None and self._claimed:
            keeper.let_go()
            if self.ami.connected:
                with contextlib.suppress(PBXError):
                    await keeper.release(*self._owner_variable(self.ami))
        self._claimed = False

    def _claim_lost(self, other: str) -> None:
        self._publish(PBXClaimLost(self.name, other))

    async def _claim_after_reconnect(self) -> None:
        # Right away, not at the next refresh: a restarted PBX forgot its globals, and a
        # standby probing meanwhile would find it free.
        if self._claim_task is not None and self.claim_keeper is not None:
            read, write = self._owner_variable(self.ami)
            await self.claim_keeper.refresh_or_report(read, write, self._claim_lost)

    async def start(self, handler: CallHandler) -> None:
        """Log in to AMI (``AuthenticationError``/``PBXConnectionError`` propagate) and start
        taking calls over the configured AGI transport."""
        if self._started:
            raise PBXConnectionError(f"driver {self.name} already started")
        self._handler = handler
        if self.settings.agi_transport == "asyncagi":
            self._router = AsyncAGIRouter(self.ami, self._serve_async)
            self._router.attach()
        await self.ami.connect()
        self._started = True
        if self.settings.agi_transport == "fastagi":
            self._fastagi = FastAGIServer(
                self.settings.agi_host, self.settings.agi_port, self._serve_fast
            )
            try:
                await self._fastagi.start()
            except BaseException:
                await self._release_claim()
                await self.ami.close()
                self._started = False
                raise
        if self.settings.heartbeat_interval > 0:
            self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="ami-heartbeat")
        if self.claim_keeper is not None and self._claimed:
            keeping = self.claim_keeper.keep(
                *self._owner_variable(self.ami),
                connected=lambda: self.ami.connected,
                on_lost=self._claim_lost,
            )
            self._claim_task = asyncio.create_task(keeping, name="ami-claim")
        self._log.info("pbx_started", transport=self.settings.agi_transport, agi_port=self.agi_port)

    async def stop(self) -> None:
        """Stop taking calls and close the connections (calls are not hung up: their AGI
        sessions end and the dialplan continues)."""
        if self._fastagi is not None:
            await self._fastagi.stop()
        if self._adopting is not None:
            await cancel_and_wait(self._adopting)
            self._adopting = None
        if self._router is not None:
            await self._router.stop()
        if self._heartbeat_task is not None:
            await cancel_and_wait(self._heartbeat_task)
            self._heartbeat_task = None
            # The dialplan fails over at once instead of after the heartbeat goes stale;
            # unless another daemon took the PBX over: the heartbeat is its own now.
            if self.claim_keeper is None or self.claim_keeper.taken_by is None:
                await self._beat("0", timeout=1.0)
        if self._claim_task is not None:
            await cancel_and_wait(self._claim_task)
            self._claim_task = None
        await self._release_claim()
        await self.ami.close()
        self._started = False
        self._log.info("pbx_stopped")

    async def _heartbeat(self) -> None:
        while True:
            if self.ami.connected:
                await self._beat(str(int(time.time())))
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def _beat(self, value: str, timeout: float | None = None) -> None:
        """One ``Setvar`` of the heartbeat; a refusal is logged once, a lost link ignored
        (the next beat after the reconnect makes up for it)."""
        try:
            await self.ami.send_action(
                "Setvar",
                [("Variable", HEARTBEAT_VARIABLE), ("Value", value)],
                timeout=timeout,
                retry_on_reconnect=False,
            )
            self._heartbeat_refused = False
        except ActionFailed as exc:
            if not self._heartbeat_refused:
                self._heartbeat_refused = True
                self._log.warning(
                    "heartbeat_refused",
                    error=str(exc),
                    hint="grant the AMI user write=call: AsyncAGI callers fail over without it",
                )
        except PBXError as exc:
            self._log.debug("heartbeat_not_sent", error=str(exc))

    def subscribe(self, listener: PBXListener) -> None:
        self._listeners.append(listener)

    async def hangup_channel(
        self, channel: str, cause: HangupCause = HangupCause.NORMAL_CLEARING
    ) -> None:
        """AMI ``Hangup``; a channel that is already gone counts as done. A Uniqueid is
        looked up in ``CoreShowChannels`` first (``Hangup`` takes names)."""
        if _UNIQUEID.fullmatch(channel):
            named = next((s.channel for s in await self.channels() if s.call_id == channel), None)
            if named is None:
                self._log.debug("hangup_channel_already_gone", channel=channel)
                return
            channel = named
        try:
            await self.ami.send_action(
                "Hangup",
                [("Channel", channel), ("Cause", str(int(cause)))],
                retry_on_reconnect=False,
            )
        except ActionFailed as exc:
            if not _no_such_channel(exc):
                raise
            self._log.debug("hangup_channel_already_gone", channel=channel)

    async def originate(
        self,
        device: str,
        *,
        context: str,
        exten: str,
        caller_id: str = "",
        timeout: float = 30.0,
        variables: Mapping[str, str] | None = None,
        auto_answer: bool = False,
    ) -> asyncio.Future[str]:
        """AMI ``Originate`` with ``Async: true``: returns once queued (never resent), with
        the outcome its ``OriginateResponse`` (matched by ActionID) gives."""
        _check_device(device)
        fields: list[tuple[str, str]] = [
            ("Channel", device),
            ("Context", context),
            ("Exten", exten),
            ("Priority", "1"),
            ("Timeout", str(max(1, int(timeout * 1000)))),
            ("Async", "true"),
        ]
        if caller_id:
            fields.append(("CallerID", caller_id))
        for key, value in (variables or {}).items():
            fields.append(("Variable", f"{key}={value}"))
        if auto_answer:
            fields.append(("Variable", "=".join(AUTO_ANSWER_VARIABLE)))
        response = await self.ami.send_action("Originate", fields, retry_on_reconnect=False)
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        action_id = response.action_id
        if action_id is None:
            outcome.cancel()
            return outcome
        # The OriginateResponse of an instant failure can come in the response's own read,
        # before this coroutine resumes: the handler keeps it for us.
        early = self._originate_early.pop(action_id, None)
        if early is not None:
            outcome.set_result(early)
        else:
            self._originating[action_id] = outcome
        return outcome

    async def set_lamp(self, name: str, state: LampState) -> None:
        """``Setvar DEVICE_STATE(Custom:<name>)`` (func_devstate): Asterisk keeps the state
        (in its astdb, across restarts) and notifies the phones subscribed to a hint on it."""
        _check_lamp(name)
        await self.ami.send_action(
            "Setvar",
            [("Variable", f"DEVICE_STATE(Custom:{name})"), ("Value", _DEVICE_STATES[state])],
        )

    async def set_message_lamp(self, mailbox: str, new: int, old: int) -> None:
        """AMI ``MWIUpdate`` (res_mwi_external_ami): Asterisk keeps the counts and notifies
        the endpoints whose ``mailboxes`` name ``mailbox``."""
        await self.ami.send_action(
            "MWIUpdate",
            [("Mailbox", mailbox), ("OldMessages", str(old)), ("NewMessages", str(new))],
        )

    async def want_keys(self) -> None:
        """Have AMI send DTMFEnd events from now on (and after every login), if the
        configured event mask leaves them out: an open line's keys and those over a
        caller's hold music come that way. Once they come, it does nothing (it runs as
        every waiting caller's music starts)."""
        if self._keys_wanted:
            return
        ami = self.ami
        classes = {part.strip().lower() for part in ami.events.split(",") if part.strip()}
        if not classes & {"dtmf", "all", "on"}:
            ami.events = ",".join([*sorted(classes - {"off"}), "dtmf"])
            await ami.send_action("Events", [("EventMask", ami.events)], retry_on_reconnect=False)
            self._log.info("ami_events_widened", events=ami.events)
        self._keys_wanted = True

    def room_device(self, room: str) -> str:
        """``Local/<room>@callcenter-conference`` (:data:`CONFERENCE_CONTEXT`): the Local
        channel's second half runs ``ConfBridge(<room>)``, its first is the dialled leg."""
        if not _ROOM.fullmatch(room):
            raise CommandFailed(f"invalid conference room {room!r}")
        return f"Local/{room}@{CONFERENCE_CONTEXT}"

    async def channels(self) -> list[ChannelSnapshot]:
        """Every live channel, from ``CoreShowChannels``."""
        _, items = await self.ami.send_list_action("CoreShowChannels")
        return _snapshots(items)

    async def redirect_channel(self, channel: str, context: str, exten: str) -> None:
        """AMI ``Redirect`` to ``context,exten,1`` (a Uniqueid is looked up in
        ``CoreShowChannels`` first). A channel in ``AGI()`` whose script is gone (a
        stopped daemon's FastAGI connection) leaves the application it runs and goes
        there: the async goto outlives the AGI's end."""
        for what, token in (("context", context), ("extension", exten)):
            if not _DIALPLAN_NAME.fullmatch(token):
                raise CommandFailed(f"invalid {what} {token!r}")
        if _UNIQUEID.fullmatch(channel):
            named = next((s.channel for s in await self.channels() if s.call_id == channel), None)
            if named is None:
                raise ActionFailed(f"no channel {channel}")
            channel = named
        await self.ami.send_action(
            "Redirect",
            [("Channel", channel), ("Context", context), ("Exten", exten), ("Priority", "1")],
            retry_on_reconnect=False,
        )
        self._log.info("channel_redirected", channel=channel, context=context, exten=exten)

    async def _adopt_later(self, items: list[AMIMessage]) -> None:
        """Adopt the channels a resync found waiting in AsyncAGI with no session, once their
        ``AsyncAGIStart`` has had time to arrive: a call that entered ``AGI(agi:async)``
        just as the snapshot was taken is announced by it a moment later."""
        await asyncio.sleep(ASYNCAGI_ADOPT_GRACE)
        router = self._router
        if router is None:
            return
        adopted = 0
        for item in items:
            if (item.get("Uniqueid") or "") in self._by_uniqueid and router.adopt(item):
                adopted += 1
        if adopted:
            self._log.info("asyncagi_channels_adopted", adopted=adopted)

    async def spy(
        self,
        supervisor_device: str,
        target_channel: str,
        mode: SpyMode,
        *,
        caller_id: str = "",
        timeout: float = 30.0,
        auto_answer: bool = False,
    ) -> AsteriskSpySession:
        """AMI ``Originate`` of ``supervisor_device`` into ``ChanSpy(<target>,qEd[w|B])``
        with our own ``ChannelId``, so the supervisor's leg is known before it rings."""
        _check_device(supervisor_device)
        if not _CHANNEL.fullmatch(target_channel):
            raise CommandFailed(f"refusing to spy on {target_channel!r}")
        if mode not in _SPY_OPTIONS:
            raise CommandFailed(f"unknown spy mode {mode!r}")
        channel_id = uuid.uuid4().hex
        session = AsteriskSpySession(self, channel_id, target_channel, mode)
        self._spies[channel_id] = session
        fields: list[tuple[str, str]] = [
            ("Channel", supervisor_device),
            ("Application", "ChanSpy"),
            ("Data", f"{target_channel},{_SPY_OPTIONS[mode]}"),
            ("Timeout", str(max(1, int(timeout * 1000)))),
            ("ChannelId", channel_id),
            ("Async", "true"),
        ]
        if caller_id:
            if not _CALLER_ID.fullmatch(caller_id):
                raise CommandFailed(f"invalid caller id {caller_id!r}")
            fields.append(("CallerID", caller_id))
        if auto_answer:
            fields.append(("Variable", "=".join(AUTO_ANSWER_VARIABLE)))
        try:
            await self.ami.send_action("Originate", fields, retry_on_reconnect=False)
        except BaseException:
            self._spies.pop(channel_id, None)
            raise
        self._log.info(
            "spy_requested", supervisor=supervisor_device, target=target_channel, mode=mode
        )
        return session

    # -- calls ------------------------------------------------------------------------------

    async def _serve_fast(self, session: FastAGISession) -> None:
        await self._serve(session, "fastagi", "")

    async def _serve_async(self, session: AsyncAGISession) -> None:
        await self._serve(session, "asyncagi", session.linkedid)

    async def _serve(self, session: AGISession, transport: Transport, linkedid: str) -> None:
        info = self._call_info(session, transport, linkedid)
        call = AsteriskCall(self, session, info)
        previous = self._calls.get(info.call_id)
        if previous is not None:
            previous._release("a new AGI session took the channel")
        self._calls[info.call_id] = call
        bound = self._log.bind(call_id=info.call_id, channel=info.channel, route=info.route)
        bound.info("call_arrived", caller=info.caller_num, dialed=info.dialed)
        handler = self._handler
        try:
            if transport == "asyncagi" and GUARD_PARAM in info.params:
                self._clear_guard(info)
                # One loop turn: the Setvar is written before any command of the handler.
                await asyncio.sleep(0)
            if handler is not None:
                await handler(call)
        except CallHungUp:
            bound.info("call_handler_ended_by_hangup")
        except Exception:
            bound.exception("call_handler_failed")
        finally:
            if self._calls.get(info.call_id) is call:
                del self._calls[info.call_id]
            if self._music_lines.get(info.channel) is call:
                del self._music_lines[info.channel]
            bound.info("call_released", hung_up=call.hung_up)

    def _clear_guard(self, info: CallInfo) -> None:
        """Clear the absolute timeout the AsyncAGI context set as a guard (see the module
        docstring): the call is ours now. Sent, not awaited: Asterisk runs the actions of
        one manager session in turn, so the Setvar is done before any ``Action: AGI`` sent
        after it on the same link (an ``EXEC Dial`` above all) reaches the channel, and the
        call's first command need not wait for a round trip to the PBX. The caller must let
        the loop turn once before its first command (the write happens then)."""

        async def setvar() -> None:
            await self.ami.send_action(
                "Setvar",
                [("Channel", info.channel), ("Variable", ABSOLUTE_TIMEOUT), ("Value", "0")],
                timeout=GUARD_CLEAR_TIMEOUT,
                retry_on_reconnect=False,
            )

        async def clear() -> None:
            try:
                try:
                    await setvar()
                except PBXConnectionError:
                    # Taken as the AMI link dropped (adopted at a reconnection cut again):
                    # once more when it is back, while the call is still ours.
                    await self.ami.wait_connected(within=GUARD_RETRY_WITHIN)
                    if info.call_id not in self._calls:
                        return
                    await setvar()
            except PBXError as exc:
                # The caller goes to the failover when the timeout runs out: not silence, and
                # the call is served meanwhile.
                self._log.warning(
                    "failover_guard_not_cleared",
                    call_id=info.call_id,
                    channel=info.channel,
                    error=str(exc),
                )

        task = asyncio.get_running_loop().create_task(clear())
        self._guards.add(task)
        task.add_done_callback(self._guards.discard)

    def _call_info(self, session: AGISession, transport: Transport, linkedid: str) -> CallInfo:
        env = session.env
        route, params, args = env.script_path, dict(env.script_params), env.args
        if not env.network_script and args:
            # AGI(agi:async,inbound?queue=sales,...): the first argument names the hook.
            route, _, query = args[0].partition("?")
            params = dict(parse_qsl(query, keep_blank_values=True))
            args = args[1:]
        dnid = env.dnid
        dialed = env.extension if dnid in ("", "unknown") else dnid
        tracked = self._by_uniqueid.get(env.uniqueid)
        if not linkedid:
            linkedid = tracked.linkedid if tracked is not None and tracked.linkedid else ""
        return CallInfo(
            call_id=env.uniqueid,
            channel=env.channel,
            caller_num=env.callerid,
            caller_name=env.calleridname,
            dialed=dialed,
            context=env.context,
            route=route,
            transport=transport,
            linked_id=linkedid or env.uniqueid,
            accountcode=env.accountcode,
            language=env.language or "en",
            args=tuple(args),
            params=params,
            device=channel_device(env.channel),
        )

    # -- AMI events ---------------------------------------------------------------------------

    def _publish(self, event: PBXEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                self._log.exception("pbx_listener_failed", event_type=type(event).__name__)

    def _track(self, msg: AMIMessage, fields: tuple[tuple[str, str], ...] = ()) -> _Channel | None:
        """The channel ``msg`` is about, added on first sight (every field read) and otherwise
        refreshed from ``fields``: the (attribute, header) pairs this kind of event changes.
        Every channel event repeats the whole snapshot; reading only what can have changed
        keeps the lookups per event down."""
        name = msg.get("Channel") or ""
        uniqueid = msg.get("Uniqueid") or ""
        if not name or not uniqueid:
            return None
        for heard in self._heard_during_resync:
            heard.add(uniqueid)
        channel = self._by_uniqueid.get(uniqueid)
        if channel is None:
            channel = _Channel(name=name, uniqueid=uniqueid)
            self._channels[name] = channel
            self._by_uniqueid[uniqueid] = channel
            if fields is not _SNAPSHOT_FIELDS:
                fields = _SNAPSHOT_FIELDS + fields
        for attribute, header in fields:
            value = msg.get(header)
            if value:
                setattr(channel, attribute, value)
        return channel

    def _ev_newchannel(self, msg: AMIMessage) -> None:
        self._track(msg, _SNAPSHOT_FIELDS)

    def _ev_newstate(self, msg: AMIMessage) -> None:
        self._track(msg, _STATE_FIELDS)

    def _ev_newexten(self, msg: AMIMessage) -> None:
        self._track(msg, _EXTEN_FIELDS)

    def _ev_rename(self, msg: AMIMessage) -> None:
        old, new = msg.get("Channel") or "", msg.get("Newname") or ""
        channel = self._channels.pop(old, None)
        if channel is not None and new:
            channel.name = new
            self._channels[new] = channel

    def _forget_channel(self, name: str, uniqueid: str) -> None:
        for heard in self._heard_during_resync:
            heard.add(uniqueid)
        channel = self._by_uniqueid.pop(uniqueid, None)
        if channel is not None and self._channels.get(channel.name) is channel:
            del self._channels[channel.name]
        elif self._channels.get(name) is not None and self._channels[name].uniqueid == uniqueid:
            del self._channels[name]
        if channel is not None and channel.bridge:
            self._leave_bridge(channel.bridge, channel.name)

    def _ev_hangup(self, msg: AMIMessage) -> None:
        name = msg.get("Channel") or ""
        uniqueid = msg.get("Uniqueid") or ""
        cause = HangupCause.from_code(msg.get("Cause"))
        self._forget_channel(name, uniqueid)
        call = self._calls.get(uniqueid)
        if call is not None:
            call._on_hangup(cause)
        dialing = self._dial_peers.pop(name, None)
        if dialing is not None:
            dialing._on_channel_gone(name, cause)
        spy = self._spies.pop(uniqueid, None)
        if spy is not None:
            spy._on_ended("hung up")
        self._publish(ChannelHungUp(channel=name, call_id=uniqueid, cause=cause))

    def _ev_dial_begin(self, msg: AMIMessage) -> None:
        call = self._calls.get(msg.get("Uniqueid") or "")
        if call is not None:
            call._on_dial_begin(msg.get("DestChannel") or "")

    def _ev_dial_end(self, msg: AMIMessage) -> None:
        call = self._calls.get(msg.get("Uniqueid") or "")
        if call is not None:
            call._on_dial_end(msg.get("DestChannel") or "", msg.get("DialStatus") or "")

    def _ev_bridge_enter(self, msg: AMIMessage) -> None:
        channel = self._track(msg)
        bridge = msg.get("BridgeUniqueid") or ""
        if channel is None or not bridge:
            return
        channel.bridge = bridge
        members = self._bridges.setdefault(bridge, set())
        members.add(channel.name)
        for member in members:
            tracked = self._channels.get(member)
            call = self._calls.get(tracked.uniqueid) if tracked is not None else None
            if call is not None:
                others = [m for m in members if m != member]
                if others:
                    call._on_bridged(others[0])

    def _ev_bridge_leave(self, msg: AMIMessage) -> None:
        channel = self._track(msg)
        bridge = msg.get("BridgeUniqueid") or ""
        if channel is not None and bridge:
            channel.bridge = ""
            self._leave_bridge(bridge, channel.name)

    def _leave_bridge(self, bridge: str, name: str) -> None:
        members = self._bridges.get(bridge)
        if members is not None:
            members.discard(name)
            if not members:
                del self._bridges[bridge]

    def _ev_device_state(self, msg: AMIMessage) -> None:
        device = msg.get("Device") or ""
        if device:
            for changed in self._device_changes_during_list:
                changed.add(device)
            self._publish(DeviceStateChanged(device=device, state=msg.get("State") or ""))

    async def _device_states(self) -> None:
        """Ask for every device's state (DeviceStateList): after a (re)start the engine
        must know which agents' phones are in use already (an agent still talking on a call
        left to the PBX), not only those that change from now on."""
        changed: set[str] = set()
        self._device_changes_during_list.append(changed)
        try:
            _, items = await self.ami.send_list_action("DeviceStateList")
        except Exception as exc:
            self._log.info("device_states_unknown", error=str(exc))
            return
        finally:
            self._device_changes_during_list.remove(changed)
        for item in items:
            device = item.get("Device") or ""
            # The list is handed over whole at its end: a change Asterisk announced while
            # it came is newer than the list's line (every change is announced).
            if device and device not in changed:
                self._publish(DeviceStateChanged(device=device, state=item.get("State") or ""))

    def _ev_dtmf_end(self, msg: AMIMessage) -> None:

        # Every key of every caller in the IVR comes here: most need no more reading.
        spy = self._spies.get(msg.get("Uniqueid") or "") if self._spies else None
        if spy is None and not self._dial_peers and not self._room_lines and not self._music_lines:
            return
        if (msg.get("Direction") or "Received") != "Received":
            return
        digit = msg.get("Digit") or ""
        if spy is not None:
            mode = _SPY_KEYS.get(digit)
            if mode is not None:
                spy._keyed(mode)
            return
        channel = msg.get("Channel") or ""
        if digit and channel in self._dial_peers:
            self._publish(DigitPressed(channel=channel, digit=digit))
        elif digit and (on_digit := self._room_lines.get(channel)) is not None:
            try:
                on_digit(digit)
            except Exception:
                self._log.exception("room_digit_listener_failed", channel=channel)
        elif digit and (listener := self._music_lines.get(channel)) is not None:
            listener._music_key_pressed(digit)

    def _ev_chanspy_start(self, msg: AMIMessage) -> None:
        spy = self._spies.get(msg.get("SpyerUniqueid") or "")
        if spy is not None:
            spy._mark_started(msg.get("SpyerChannel") or "")

    def _ev_confbridge(self, msg: AMIMessage) -> None:
        conference = self._conferences.get(msg.get("Conference") or "")
        if conference is not None:
            conference._on_event(msg)

    def _ev_originate_response(self, msg: AMIMessage) -> None:
        action_id = msg.action_id
        if action_id is not None:
            outcome = originate_outcome(msg)
            waiting = self._originating.pop(action_id, None)
            if waiting is not None:
                if not waiting.done():
                    waiting.set_result(outcome)
            else:
                self._originate_early[action_id] = outcome
                while len(self._originate_early) > ORIGINATE_EARLY_KEPT:
                    del self._originate_early[next(iter(self._originate_early))]
        # A failed Originate of a spy (no such device, no answer) may never create the
        # channel, so no Hangup event would end the session.
        if (msg.get("Response") or "").lower() != "failure":
            return
        spy = self._spies.pop(msg.get("Uniqueid") or "", None)
        if spy is not None:
            spy._on_ended(f"originate failed (reason {msg.get('Reason') or '?'})")

    def _on_ami_lost(self, reason: str) -> None:
        # Their OriginateResponse went with the link: nobody can tell how they end.
        for waiting in self._originating.values():
            waiting.cancel()
        self._originating.clear()
        for call in self._music_lines.values():
            if call._music_keys is not None:
                call._music_keys.wake()  # its keys went with the link: back to WAIT FOR DIGIT
        self._publish(PBXDisconnected(pbx=self.name, reason=reason))

    async def _resync(self) -> None:
        """After every login: rebuild the channel table from the PBX's own state."""
        self._publish(PBXConnected(pbx=self.name))
        known = dict(self._by_uniqueid)
        calls = dict(self._calls)
        heard: set[str] = set()
        self._heard_during_resync.append(heard)
        try:
            _, items = await self.ami.send_list_action("CoreShowChannels")
        except Exception as exc:
            self._log.warning("resync_failed", error=str(exc))
            return
        finally:
            self._heard_during_resync.remove(heard)
        snapshots = _snapshots(items)
        alive = {snap.call_id for snap in snapshots}
        for uniqueid in [u for u in self._spies if u in known and u not in alive]:
            self._spies.pop(uniqueid)._on_ended("vanished while disconnected")
        for snap in snapshots:
            if snap.call_id in heard:
                # Events that came in while the answer was on its way are newer than it: a
                # channel they hung up stays gone, a state they changed stays changed.
                continue
            channel = self._by_uniqueid.get(snap.call_id)
            if channel is None:
                channel = _Channel(name=snap.channel, uniqueid=snap.call_id)
                self._by_uniqueid[snap.call_id] = channel
                self._channels[snap.channel] = channel
            channel.linkedid = snap.linked_id
            channel.state = snap.state
            channel.caller_num = snap.caller_num
            channel.context = snap.context
            channel.exten = snap.exten
            channel.application = snap.application
        # Only what we knew before asking can have vanished: anything newer may simply have
        # been created after the PBX built its answer.
        for uniqueid, channel in known.items():
            if uniqueid in alive or self._by_uniqueid.get(uniqueid) is not channel:
                continue
            self._forget_channel(channel.name, uniqueid)
            self._publish(
                ChannelHungUp(channel=channel.name, call_id=uniqueid, cause=HangupCause.UNSPECIFIED)
            )
        for uniqueid, call in calls.items():
            if uniqueid not in alive and not call.hung_up:
                self._log.info("call_vanished_while_disconnected", call_id=uniqueid)
                call._on_hangup(HangupCause.UNSPECIFIED)
                if uniqueid not in known:
                    self._publish(
                        ChannelHungUp(
                            channel=call.info.channel,
                            call_id=uniqueid,
                            cause=HangupCause.UNSPECIFIED,
                        )
                    )
        for conference in {id(c): c for c in self._conferences.values()}.values():
            conference._resync(snapshots)
        self._log.info("resynced", channels=len(snapshots), calls=len(self._calls))
        router = self._router
        if router is not None:
            router.resume(items)
        await self._device_states()
        waiting = [item for item in items if router is not None and router.waiting_unseen(item)]
        if waiting:
            if self._adopting is not None:
                # A newer snapshot: it lists whatever the older one did that is still waiting.
                self._adopting.cancel()
            self._adopting = asyncio.create_task(self._adopt_later(waiting), name="asyncagi-adopt")


class AsteriskCall:
    """One caller under AGI control (implements :class:`callcenter.pbx.interface.Call`)."""

    def __init__(self, driver: AsteriskDriver, session: AGISession, info: CallInfo) -> None:
        self._driver = driver
        self._session = session
        self._info = info
        self._settings = driver.settings
        self._ami_hangup = asyncio.Event()
        # Set whenever ``hung_up`` turns true (cleared when a release makes the session's own
        # hangup no longer count): what wait_hangup waits on, without a task per source.
        self._gone = asyncio.Event()
        self._cause = HangupCause.UNSPECIFIED
        self._local_hangup = False
        self._released = ""
        self._dial: _Dial | None = None
        self._shown_name = ""
        """The CALLERID(name) a dial last set (``dial``'s ``caller_name``)."""
        self._tones = False
        """The hold "music" started last is the ring tone (Playtones), not music."""
        self._moh = False
        #: Keys pressed over the hold music, from AMI DTMFEnd (None: no music plays).
        self._music_keys: MusicKeys | None = None
        self._on_hold = False
        self._recording: str | None = None
        self._spy_task: asyncio.Task[None] | None = None
        self._room: str | None = None
        self._ringing_alone = False
        self._log = log.bind(call_id=info.call_id, channel=info.channel)
        session.on_hangup(self._session_hung_up)

    # -- facts ------------------------------------------------------------------------------

    @property
    def info(self) -> CallInfo:
        return self._info

    @property
    def session(self) -> AGISession:
        """The AGI session behind this call."""
        return self._session

    @property
    def keys_without_command(self) -> bool:
        # While the music plays (a generator: no AGI command runs), the AGI's own loop
        # reads the channel, so each key comes as an AMI DTMFEnd. Without AMI: WAIT FOR
        # DIGIT, an AGI command, which cannot be taken back.
        return self._music_keys is not None and self._driver.ami.connected

    @property
    def hung_up(self) -> bool:
        if self._ami_hangup.is_set() or self._local_hangup:
            return True
        return self._session.hung_up and not self._released

    @property
    def hangup_cause(self) -> HangupCause:
        return self._cause

    @property
    def linked_id(self) -> str:
        """The Linkedid of the caller's channel as AMI reports it (else the call id)."""
        tracked = self._driver._by_uniqueid.get(self._info.call_id)
        return (
            tracked.linkedid if tracked is not None and tracked.linkedid else (self._info.linked_id)
        )

    @property
    def state(self) -> str:
        """The caller channel's state from AMI (``Up``, ``Ring``...; ``""`` if unknown)."""
        tracked = self._driver._by_uniqueid.get(self._info.call_id)
        return tracked.state if tracked is not None else ""

    async def wait_hangup(self) -> None:
        while not self.hung_up:
            await self._gone.wait()
            if not self.hung_up:
                self._gone.clear()  # a hangup that stopped counting (released meanwhile)

    def _hung_up_here(self) -> None:
        self._local_hangup = True
        self._gone.set()

    def _session_hung_up(self) -> None:
        if not self._released:
            self._gone.set()

    # -- commands ---------------------------------------------------------------------------

    async def _command(
        self, verb: str, *args: str, limit: float | None = None, allow_dead: bool = False
    ) -> AGIResult:
        if self._released:
            raise CallHungUp(f"{self._info.channel} left our control ({self._released})")
        if self.hung_up and not allow_dead:
            raise CallHungUp(f"{self._info.channel} has hung up")
        line = format_command(verb, *args)
        result = await self._session.command(
            line, timeout=self._settings.command_timeout if limit is None else limit
        )
        if not result.ok:
            raise CommandFailed(f"AGI {line[:80]!r} failed: {result.message}", result.code)
        return result

    def _caller_gone(self, why: str) -> CallHungUp:
        self._hung_up_here()
        return CallHungUp(f"{self._info.channel}: {why}")

    async def answer(self) -> None:
        result = await self._command("ANSWER")
        if result.int_result == -1:
            if self.hung_up:
                raise CallHungUp(f"{self._info.channel} hung up before the answer")
            raise CommandFailed("ANSWER failed", result.code)

    async def play(self, prompts: Sequence[str], *, interrupt_digits: str = "") -> str:
        for prompt in prompts:
            self._music_off()
            result = await self._command(
                "STREAM FILE", prompt, interrupt_digits, limit=self._long(0.0)
            )
            code = result.int_result
            if code is None or code == 0:
                continue
            if code > 0:
                return chr(code)
            if result.data.get("endpos") == "0" and not self.hung_up:
                # result=-1 endpos=0 is a missing sound file: a config problem, not a
                # reason to drop the caller.
                self._log.warning("prompt_missing", prompt=prompt)
                continue
            raise self._caller_gone(f"hung up during {prompt}")
        return ""

    async def read_digits(
        self,
        prompt: str | None,
        *,
        max_digits: int,
        timeout: float,
        terminator: str = "#",
    ) -> str:
        if max_digits <= 0:
            return ""
        wait_ms = str(max(1, int(timeout * 1000)))
        if prompt is not None and terminator == "#":
            # GET DATA always stops at '#', so it only serves that terminator.
            self._music_off()
            result = await self._command(
                "GET DATA",
                prompt,
                wait_ms,
                str(max_digits),
                limit=self._long(timeout * (max_digits + 1)),
            )
            if result.result == "-1":
                raise self._caller_gone("hung up while entering digits")
            return result.result
        music = self._music_keys
        if prompt is None and music is not None and self._driver.ami.connected:
            return await music.read(
                max_digits, timeout, terminator, check=self._check_ours, gone=self.wait_hangup
            )
        digits = ""
        if prompt is not None:
            first = await self.play([prompt], interrupt_digits=_DIGITS)
            if first == terminator:
                return ""
            digits = first
        while len(digits) < max_digits:
            result = await self._command(
                "WAIT FOR DIGIT", wait_ms, limit=timeout + LONG_COMMAND_MARGIN
            )
            if music is not None:
                music.clear()  # read here: not again from AMI (the link may be back)
            code = result.int_result
            if code is None or code == 0:
                break
            if code < 0:
                raise self._caller_gone("hung up while entering digits")
            digit = chr(code)
            if digit == terminator:
                break
            digits += digit
        return digits

    async def say(self, kind: SayKind, value: str, *, interrupt_digits: str = "") -> str:
        if value == "":
            return ""
        if kind == "digits":
            if not _SAY_DIGITS.fullmatch(value):
                raise CommandFailed(f"cannot say {value!r} as digits")
            verb, args = "SAY DIGITS", [value, interrupt_digits]
        elif kind == "number":
            if not _SAY_NUMBER.fullmatch(value):
                raise CommandFailed(f"cannot say {value!r} as a number")
            verb, args = "SAY NUMBER", [value, interrupt_digits]
        else:
            epoch, fmt = _say_datetime(kind, value)
            verb, args = "SAY DATETIME", [str(epoch), interrupt_digits, fmt, "UTC"]
        self._music_off()
        result = await self._command(verb, *args, limit=self._long(0.0))
        code = result.int_result
        if code is None or code == 0:
            return ""
        if code > 0:
            return chr(code)
        raise self._caller_gone(f"hung up during {verb}")

    async def record(
        self,
        path: str,
        *,
        max_seconds: float,
        beep: bool = True,
        silence_seconds: float = 5.0,
        end_digits: str = "#",
        file_format: str = "wav",
    ) -> RecordResult:
        if not _RECORD_FORMAT.fullmatch(file_format) or not path or any(c.isspace() for c in path):
            raise CommandFailed(f"cannot record into {path!r} as {file_format!r}")
        # RECORD FILE <file> <format> <escape digits> <timeout ms> [BEEP] [s=<silence s>]
        args = [path, file_format, end_digits, str(max(1, int(max_seconds * 1000)))]
        if beep:
            args.append("BEEP")
        if silence_seconds > 0:
            args.append(f"s={max(1, math.ceil(silence_seconds))}")
        self._music_off()
        result = await self._command("RECORD FILE", *args, limit=self._long(max_seconds))
        reason = (result.value or "").lower()
        endpos = result.data.get("endpos", "0")
        seconds = int(endpos) / RECORD_SAMPLE_RATE if endpos.isdigit() else 0.0
        full = f"{path}.{file_format}"
        code = result.int_result
        if reason == "dtmf" and code is not None and code > 0:
            return RecordResult(full, seconds, "dtmf", chr(code))
        if reason == "hangup" or (code == -1 and self.hung_up):
            self._hung_up_here()
            return RecordResult(full, seconds, "hangup")
        if reason == "timeout":
            return RecordResult(full, seconds, "timeout")
        if reason == "randomerror" and code is not None and code > 0:
            # An end key pressed while the beep played: RECORD FILE stops before recording
            # anything (res_agi answers the beep's interruption this way).
            self._log.info("record_ended_in_beep", path=full, digit=chr(code))
            return RecordResult(full, 0.0, "dtmf", chr(code))
        self._log.warning("record_failed", path=full, reason=reason, result=result.result)
        return RecordResult(full, 0.0, "error")

    async def set_language(self, language: str) -> None:
        if not _LANGUAGE.fullmatch(language):
            raise CommandFailed(f"invalid language {language!r}")
        await self._command("SET VARIABLE", "CHANNEL(language)", language)

    async def start_hold_music(self, music_class: str = "default") -> None:
        if not _MOH_CLASS.fullmatch(music_class):
            raise CommandFailed(f"invalid music class {music_class!r}")
        with contextlib.suppress(PBXError):
            # Without AMI now, its keys are read with WAIT FOR DIGIT (keys_without_command).
            await self._driver.want_keys()
        # Listening before the command: a key may come as the music starts.
        self._music_off()
        self._music_keys = MusicKeys()
        self._driver._music_lines[self._info.channel] = self
        try:
            if music_class == RINGBACK:
                # indications.conf's ring tone, as a generator (like the music) until stopped.
                await self._exec("Playtones", "ring")
                self._tones = True
            else:
                await self._exec("StartMusicOnHold", music_class)
                self._tones = False
        except BaseException:
            self._music_off()
            raise
        self._moh = True

    async def stop_hold_music(self) -> None:
        if self._tones:
            await self._exec("StopPlaytones", "")
            self._tones = False
        else:
            await self._exec("StopMusicOnHold", "")
        self._music_off()

    def _music_off(self) -> None:
        """The hold music stops (or a command that stops it is sent): its keys are no
        longer read from AMI, and a read of them ends."""
        self._moh = False
        keys, self._music_keys = self._music_keys, None
        if keys is not None:
            if self._driver._music_lines.get(self._info.channel) is self:
                del self._driver._music_lines[self._info.channel]
            keys.wake()

    def _music_key_pressed(self, digit: str) -> None:
        if self._music_keys is not None:
            self._music_keys.press(digit)

    def _check_ours(self) -> None:
        """Raise when the caller hung up or left our control (after a wait for keys)."""
        if self.hung_up:
            raise self._caller_gone("hung up while entering digits")
        if self._released:
            raise CallHungUp(f"{self._info.channel} left our control ({self._released})")

    async def _exec(self, app: str, data: str, *, limit: float | None = None) -> AGIResult:
        result = await self._command("EXEC", app, data, limit=limit)
        if result.int_result == -2:
            raise CommandFailed(f"Asterisk has no application {app}", result.code)
        return result

    async def dial(
        self,
        device: str,
        *,
        timeout: float,
        hold_music: bool | str = True,
        caller_id: str | None = None,
        on_answer: Callable[[str], None] | None = None,
        announce: str | None = None,
        caller_name: str | None = None,
        report_wait: float | None = None,
        delay: float = 0.0,
        auto_answer: bool = False,
    ) -> DialResult:
        _check_device(device)
        if caller_name and caller_name != self._shown_name:
            if not CALLER_NAME.fullmatch(caller_name):
                raise CommandFailed(f"invalid caller name {caller_name!r}")
            # app_dial hands the caller's CallerID to the rung phone as its connected line.
            await self._command("SET VARIABLE", "CALLERID(name)", caller_name)
            self._shown_name = caller_name
        options = ""
        if announce and not ANNOUNCE_FILE.fullmatch(announce):
            raise CommandFailed(f"invalid announcement {announce!r}")
        if not 0 <= delay <= MAX_DELAY:
            raise CommandFailed(f"invalid delay {delay!r}")
        if delay:
            files = [announce] if announce else []
            number, unit = "", ""
            if report_wait is not None:
                told, unit = reported_wait(report_wait)
                files.append(REPORT_HOLD_PROMPT)
                number = str(told)
            args = [f"{delay:g}", "&".join(files), number, unit]
            options = f"U({AGENT_WAIT_CONTEXT}^{'^'.join(args)})"
        else:
            if announce:
                # Played to the answering device before the bridge (app_dial's A option).
                options = f"A({announce})"
            if report_wait is not None:
                # A() plays one file; the number needs SayNumber in the agent's language.
                number_told, unit = reported_wait(report_wait)
                options += f"U({AGENT_HEAR_CONTEXT}^{REPORT_HOLD_PROMPT}^{number_told}^{unit})"
        # RINGBACK: no m at all, Dial indicates ringing to the caller.
        if isinstance(hold_music, str) and hold_music not in ("", "default", RINGBACK):
            if not _MOH_CLASS.fullmatch(hold_music):
                raise CommandFailed(f"invalid music class {hold_music!r}")
            options += f"m({hold_music})"
        elif hold_music and hold_music != RINGBACK:
            options += "m"
        if caller_id:
            if not _CALLER_ID.fullmatch(caller_id):
                raise CommandFailed(f"invalid caller id {caller_id!r}")
            options += f"o({caller_id})"
        if auto_answer:
            options += f"b({AUTO_ANSWER_CONTEXT}^s^1)"
        ring = max(1, math.ceil(timeout))
        data = f"{device},{ring}" + (f",{options}" if options else "")
        waits = bool(announce) or report_wait is not None or bool(delay)
        state = _Dial(on_answer, wait_bridge=waits)
        self._dial = state
        self._music_off()
        try:
            result = await self._dial_and_wait(device, data, ring, state)
            if state.conference is not None and result.status is DialStatus.ANSWER:
                result = await self._in_conference(state, state.conference, result)
            return result
        finally:
            if state.conference is not None:
                state.conference._on_caller_left("dial over")
            self._dial = None
            peers = self._driver._dial_peers
            if state.peer is not None and peers.get(state.peer) is self:
                del peers[state.peer]

    async def _dial_and_wait(self, device: str, data: str, ring: int, state: _Dial) -> DialResult:
        exec_error: CallHungUp | None = None
        try:
            await self._exec(
                "Dial", data, limit=self._long(ring + self._settings.max_bridge_seconds)
            )
        except CallHungUp as exc:
            exec_error = exc
        ended = time.monotonic()
        # Dial returns -1 after a normal answered call too: the variables tell what happened.
        # One command reads all four ('|' cannot be in a status, a time or a cause; a peer
        # name containing one is kept whole by the outer splits).
        outcome = await self._dead_ok_variable(_DIAL_OUTCOME, full=True) or "|||"
        status_text, answered_time, rest = [*outcome.split("|", 2), "", ""][:3]
        peer_name, _, cause_text = rest.rpartition("|")
        if self._session.ended and not self.hung_up:
            # AsyncAGI: AsyncAGIEnd can come a moment before the channel's Hangup event.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANGUP_SETTLE):
                    await self.wait_hangup()
            if not self.hung_up:
                self._release("the AGI session ended during the dial")
        try:
            status = DialStatus((status_text or state.ami_status).upper())
        except ValueError:
            status = DialStatus.ANSWER if state.answered_at is not None else DialStatus.CANCEL
        peer = state.peer or peer_name or None
        if status == DialStatus.ANSWER and state.wait_bridge and not state.bridged:
            if state.ami_status.upper() == "ANSWER" and not self.hung_up:
                # The answer came over AMI, so would the bridge: give it a moment.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BRIDGE_SETTLE):
                        await state.bridged_event.wait()
            if not state.bridged and state.ami_status:
                # Picked up, then left during the announcement: nobody was put through.
                if self.hung_up or exec_error is not None:
                    raise exec_error or self._caller_gone(f"hung up while {device} answered")
                self._log.info("dial_left_before_bridge", device=device, peer=peer)
                return DialResult(DialStatus.NOANSWER, peer_channel=peer)
        if status != DialStatus.ANSWER:
            if status == DialStatus.CANCEL or self.hung_up or exec_error is not None:
                raise exec_error or self._caller_gone(f"hung up while {device} rang")
            self._log.info("dial_failed", device=device, status=status.value)
            return DialResult(status, peer_channel=peer, cause=HangupCause.from_code(cause_text))
        self._notify_answer(state, peer or device)
        talk = 0.0
        if state.answered_at is not None:
            talk = max(0.0, ended - state.answered_at)
        elif answered_time and answered_time.isdigit():
            talk = float(answered_time)  # no AMI events: Asterisk's whole seconds
        if state.unbridged:
            by: HungUpBy = "system"
        elif self.hung_up:
            by = "caller"
        else:
            by = "peer"
        cause = state.peer_cause or HangupCause.from_code(cause_text)
        self._log.info("dial_ended", device=device, peer=peer, talk=round(talk, 3), by=by)
        return DialResult(
            DialStatus.ANSWER, peer_channel=peer, talk_seconds=talk, hung_up_by=by, cause=cause
        )

    async def _in_conference(
        self, state: _Dial, conference: AsteriskConference, result: DialResult
    ) -> DialResult:
        """The agent leg was moved into the room, which ended the Dial: the caller runs
        ``ConfBridge`` on its own AGI (so it stays ours) until it leaves the room."""
        if not self.hung_up and result.hung_up_by != "caller":
            with contextlib.suppress(CallHungUp):
                # Alone in the room (its other members aside) the caller hears music.
                await self._command("SET VARIABLE", MOH_WHEN_ALONE, "yes")
                await self._exec(
                    "ConfBridge",
                    conference.room,
                    limit=self._long(self._settings.max_bridge_seconds),
                )
        conference._on_caller_left("left the room")
        talk = result.talk_seconds
        if state.answered_at is not None:
            talk = max(0.0, time.monotonic() - state.answered_at)
        by: HungUpBy = "caller" if self.hung_up else "system"
        self._log.info("conference_left", room=conference.room, talk=round(talk, 3), by=by)
        return DialResult(
            DialStatus.ANSWER,
            peer_channel=result.peer_channel,
            talk_seconds=talk,
            hung_up_by=by,
            cause=result.cause,
        )

    async def _dead_ok_variable(self, name: str, *, full: bool = False) -> str | None:
        verb = "GET FULL VARIABLE" if full else "GET VARIABLE"
        try:
            result = await self._command(verb, name, allow_dead=True)
        except CallHungUp:
            return None
        return result.value if result.result == "1" else None

    def _notify_answer(self, state: _Dial, peer: str) -> None:
        if state.answered_notified:
            return
        state.answered_notified = True
        state.answered.set()
        if state.on_answer is not None:
            try:
                state.on_answer(peer)
            except Exception:
                self._log.exception("on_answer_failed", peer=peer)

    async def unbridge(self) -> None:
        state = self._dial
        if state is None or state.peer is None:
            self._log.info("unbridge_without_peer")
            return
        state.unbridged = True
        await self._driver.hangup_channel(state.peer)

    async def hold(self) -> None:
        """AMI ``MuteAudio`` (both directions) of the agent leg.

        Asterisk has no AMI action that starts music on hold on a channel, and the caller's
        AGI is busy running ``Dial`` (FastAGI blocks, AsyncAGI queues behind it), so
        ``StartMusicOnHold`` cannot run; a ``Redirect`` would end the Dial and take the
        caller out of our control. Muting the agent leg keeps both legs in the bridge and
        stops caller and agent hearing each other; the caller hears silence.
        """
        await self._mute_peer(True)

    async def unhold(self) -> None:
        await self._mute_peer(False)

    async def _mute_peer(self, on: bool) -> None:
        if self.hung_up:
            raise CallHungUp(f"{self._info.channel} has hung up")
        state = self._dial
        if state is not None and on and not state.answered.is_set():
            # The answer may be a few AMI events behind the PBX's bridge.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.action_timeout):
                    await state.answered.wait()
        if state is None or state.peer is None or not state.answered.is_set():
            if not on:
                return
            raise CommandFailed(f"{self._info.channel} is not bridged: nothing to hold")
        await self._driver.ami.send_action(
            "MuteAudio",
            [("Channel", state.peer), ("Direction", "all"), ("State", "on" if on else "off")],
            retry_on_reconnect=False,
        )
        self._on_hold = on
        self._log.info("hold" if on else "unhold", peer=state.peer)

    async def start_recording(self, path: str) -> None:
        """AMI ``MixMonitor`` on the caller's channel (runs beside AGI and Dial)."""
        if not _RECORD_PATH.fullmatch(path) or ".." in path:
            raise CommandFailed(f"cannot record into {path!r}")
        await self._ami_on_caller("MixMonitor", [("File", path)])
        self._recording = path
        self._log.info("recording_started", path=path)

    async def stop_recording(self) -> None:
        """AMI ``StopMixMonitor``."""
        if self._recording is None:
            return
        path, self._recording = self._recording, None
        if self.hung_up:
            return
        await self._ami_on_caller("StopMixMonitor", [])
        self._log.info("recording_stopped", path=path)

    async def mute_recording(self, muted: bool) -> None:
        """AMI ``MixMonitorMute`` on the caller's channel, both directions."""
        if self._recording is None:
            raise CommandFailed(f"{self._info.channel} is not being recorded")
        state = "1" if muted else "0"
        await self._ami_on_caller("MixMonitorMute", [("Direction", "both"), ("State", state)])
        self._log.info("recording_muted" if muted else "recording_unmuted", path=self._recording)

    async def wait_in_room(
        self, room: str, *, on_digit: Callable[[str], None], ringing: bool = False
    ) -> None:
        """``ConfBridge(<room>)`` on this call's own AGI (quiet: no "you are the only
        person" prompt) until ``ConfbridgeKick`` (:meth:`leave_room`) or the hang-up; keys
        come from AMI ``DTMFEnd`` of the channel. ``ringing``: the user profile plays the
        music class :data:`RINGBACK_CLASS` while the member is alone."""
        if not _ROOM.fullmatch(room):
            raise CommandFailed(f"invalid conference room {room!r}")
        channel = self._info.channel
        await self._driver.want_keys()
        await self._command("SET VARIABLE", QUIET_MEMBER, "yes")
        if ringing != self._ringing_alone:
            # The profile's settings stay on the channel: set back for its next room.
            await self._command("SET VARIABLE", MOH_WHEN_ALONE, "yes" if ringing else "no")
            if ringing:
                await self._command("SET VARIABLE", MOH_CLASS_ALONE, RINGBACK_CLASS)
            self._ringing_alone = ringing
        self._room = room
        self._driver._room_lines[channel] = on_digit
        try:
            result = await self._exec(
                "ConfBridge", room, limit=self._long(self._settings.max_bridge_seconds)
            )
        finally:
            self._room = None
            if self._driver._room_lines.get(channel) is on_digit:
                del self._driver._room_lines[channel]
        # 0: kicked (CONFBRIDGE_RESULT=KICKED); -1: the channel hung up.
        if result.int_result == -1 or self.hung_up:
            raise self._caller_gone(f"hung up in room {room}")

    async def leave_room(self) -> None:
        """AMI ``ConfbridgeKick`` of this channel from its room."""
        room = self._room
        if room is None or self.hung_up:
            return
        try:
            await self._driver.ami.send_action(
                "ConfbridgeKick",
                [("Conference", room), ("Channel", self._info.channel)],
                retry_on_reconnect=False,
            )
        except ActionFailed as exc:
            # Gone from the room already (hung up, or kicked a moment ago).
            self._log.info("room_leave_refused", room=room, error=str(exc))

    async def conference(self, room: str, *, invite: Sequence[str] = ()) -> AsteriskConference:
        """AMI ``Redirect`` of the agent leg to ``callcenter-conference,<room>,1`` (see
        :data:`CONFERENCE_CONTEXT`): the Dial ends with the agent alive in the room, then
        the caller's own AGI runs ``ConfBridge(<room>)`` (inside the running :meth:`dial`),
        and the invited devices are originated into ``ConfBridge(<room>)``."""
        if not _ROOM.fullmatch(room):
            raise CommandFailed(f"invalid conference room {room!r}")
        for device in invite:
            _check_device(device)
        if self.hung_up:
            raise CallHungUp(f"{self._info.channel} has hung up")
        state = self._dial
        if state is not None and not state.answered.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.action_timeout):
                    await state.answered.wait()
        if state is None or state.peer is None or not state.answered.is_set():
            raise CommandFailed(f"{self._info.channel} is not bridged: no conference")
        if state.conference is not None:
            raise CommandFailed(f"{self._info.channel} is already in a conference")
        conference = AsteriskConference(self._driver, room, self._info.channel)
        if room in self._driver._conferences or conference.side_room in self._driver._conferences:
            raise CommandFailed(f"conference room {room!r} is in use")
        state.conference = conference
        self._driver._conferences[room] = conference
        self._driver._conferences[conference.side_room] = conference
        try:
            await self._driver.ami.send_action(
                "Redirect",
                [
                    ("Channel", state.peer),
                    ("Context", CONFERENCE_CONTEXT),
                    ("Exten", room),
                    ("Priority", "1"),
                ],
                retry_on_reconnect=False,
            )
        except BaseException:
            state.conference = None
            conference._on_caller_left("redirect failed")
            raise
        self._log.info("conference_started", room=room, agent=state.peer)
        await conference._wait_caller_joined(self._long(0.0))
        for device in invite:
            await conference.invite(device)
        return conference

    async def _ami_on_caller(self, action: str, fields: list[tuple[str, str]]) -> None:
        if self.hung_up:
            raise CallHungUp(f"{self._info.channel} has hung up")
        try:
            await self._driver.ami.send_action(
                action, [("Channel", self._info.channel), *fields], retry_on_reconnect=False
            )
        except ActionFailed as exc:
            if _no_such_channel(exc):
                raise self._caller_gone(f"gone before {action}") from None
            raise

    async def redirect(self, context: str, exten: str, priority: int = 1) -> None:
        if self.hung_up:
            raise CallHungUp(f"{self._info.channel} has hung up")
        try:
            await self._driver.ami.send_action(
                "Redirect",
                [
                    ("Channel", self._info.channel),
                    ("Context", context),
                    ("Exten", exten),
                    ("Priority", str(priority)),
                ],
                retry_on_reconnect=False,
            )
        except ActionFailed as exc:
            if _no_such_channel(exc):
                raise self._caller_gone("gone before the redirect") from None
            raise
        self._release(f"redirected to {context},{exten},{priority}")
        if isinstance(self._session, FastAGISession):
            # Asterisk holds the channel in AGI() until the script closes its connection:
            # only then does it go where it was sent.
            await self._session.close()

    async def get_variable(self, name: str) -> str | None:
        try:
            result = await self._command("GET VARIABLE", name, allow_dead=True)
        except CallHungUp:
            return None
        return result.value if result.result == "1" else None

    async def set_variable(self, name: str, value: str) -> None:
        await self._command("SET VARIABLE", name, value)

    async def spy(self, target_channel: str, mode: SpyMode) -> AsteriskSpySession:
        """``EXEC ChanSpy(<target>,qEd[w|B])`` on this call, run by a task of its own (it
        lasts as long as the spy); the session is known by the call's Uniqueid, which
        ChanSpyStart names as the spyer."""
        if not _CHANNEL.fullmatch(target_channel):
            raise CommandFailed(f"refusing to spy on {target_channel!r}")
        if mode not in _SPY_OPTIONS:
            raise CommandFailed(f"unknown spy mode {mode!r}")
        if self.hung_up or self._released:
            raise CallHungUp(f"{self._info.channel} has hung up")
        uniqueid = self._info.call_id
        session = AsteriskSpySession(self._driver, uniqueid, target_channel, mode)
        self._driver._spies[uniqueid] = session

        async def run() -> None:
            why = "spy returned"
            try:
                await self._exec(
                    "ChanSpy", f"{target_channel},{_SPY_OPTIONS[mode]}", limit=SPY_LIMIT
                )
            except PBXError as exc:
                why = str(exc)
            finally:
                if self._driver._spies.get(uniqueid) is session:
                    del self._driver._spies[uniqueid]
                session._on_ended(why)

        self._spy_task = asyncio.create_task(run(), name=f"chanspy-{uniqueid}")
        self._log.info("spy_requested", target=target_channel, mode=mode)
        return session

    async def hand_back(self) -> None:
        # FastAGI: closing the connection ends AGI(); AsyncAGI: ASYNCAGI BREAK.
        try:
            await self._session.close()
        except Exception:
            self._log.exception("agi_close_failed")

    async def fail_over(self) -> None:
        # AGI() returns with DIALSTATUS unset: the shipped dialplan goes on to "failover".
        self._log.info("call_sent_to_failover")
        await self.hand_back()

    async def hangup(self, cause: HangupCause = HangupCause.NORMAL_CLEARING) -> None:
        if self.hung_up or self._released or self._session.ended:
            return
        try:
            if self._session.busy:
                # A command runs (a room, a dial): an AGI HANGUP would wait for its end,
                # which may never come. The AMI hangs the channel up at once.
                await self._driver.hangup_channel(self._info.channel, cause)
            elif cause == HangupCause.NORMAL_CLEARING:
                await self._command("HANGUP")
            else:
                await self._command("EXEC", "Hangup", str(int(cause)))
        except CallError as exc:
            self._log.debug("hangup_ignored_error", error=str(exc))
        self._hung_up_here()
        if self._cause == HangupCause.UNSPECIFIED:
            self._cause = cause

    # -- driver callbacks -------------------------------------------------------------------

    def _long(self, expected: float) -> float:
        return self._settings.prompt_timeout + expected + LONG_COMMAND_MARGIN

    def _release(self, why: str) -> None:
        self._released = why
        if not (self._ami_hangup.is_set() or self._local_hangup):
            # Redirected away: the channel's hangup now reaches us only through AMI.
            self._gone.clear()
        self._log.info("call_left_control", why=why)

    def _on_hangup(self, cause: HangupCause) -> None:
        if cause != HangupCause.UNSPECIFIED or self._cause == HangupCause.UNSPECIFIED:
            self._cause = cause
        self._ami_hangup.set()
        self._gone.set()
        session = self._session
        if isinstance(session, AsyncAGISession):
            session.end("channel hung up", hung_up=True)

    def _set_peer(self, state: _Dial, peer: str) -> None:
        peers = self._driver._dial_peers
        if state.peer is not None and peers.get(state.peer) is self:
            del peers[state.peer]
        state.peer = peer
        peers[peer] = self

    def _on_channel_gone(self, name: str, cause: HangupCause) -> None:
        state = self._dial
        if state is not None and state.peer == name:
            state.peer_cause = cause

    def _on_dial_begin(self, dest: str) -> None:
        state = self._dial
        if state is not None and dest and state.peer is None:
            self._set_peer(state, dest)

    def _on_dial_end(self, dest: str, status: str) -> None:
        state = self._dial
        if state is None:
            return
        state.ami_status = status
        if status.upper() == "ANSWER" and dest:
            self._set_peer(state, dest)
            if state.wait_bridge:
                return  # answered when bridged (after the announcement)
            if state.answered_at is None:
                state.answered_at = time.monotonic()
            self._notify_answer(state, dest)

    def _on_bridged(self, peer: str) -> None:
        state = self._dial
        if state is None or not peer:
            return
        state.bridged = True
        state.bridged_event.set()
        if state.peer is None:
            self._set_peer(state, peer)
        if state.answered_at is None:
            state.answered_at = time.monotonic()
        self._notify_answer(state, state.peer or peer)


class AsteriskSpySession(SpyLife):
    """A supervisor's ChanSpy leg (implements :class:`callcenter.pbx.interface.SpySession`).

    Modes switch with ChanSpy's ``d`` option: AMI ``PlayDTMF`` with ``Receive: true`` of 4
    (listen), 5 (whisper) or 6 (barge) on the supervisor's leg. :meth:`stop` uses ``Redirect`` (see
    :data:`SPY_STOP_LOCATION`) once the spy runs, AMI ``Hangup`` while it still rings.
    """

    def __init__(self, driver: AsteriskDriver, channel_id: str, target: str, mode: SpyMode) -> None:
        super().__init__(target, mode, log.bind(spy=channel_id, target=target))
        self._driver = driver
        self.channel_id = channel_id
        """The Uniqueid we gave the supervisor's leg (Originate ``ChannelId``)."""

    @property
    def channel(self) -> str:
        tracked = self._driver._by_uniqueid.get(self.channel_id)
        return tracked.name if tracked is not None else self._name or self.channel_id

    async def set_mode(self, mode: SpyMode) -> None:
        if mode not in _SPY_DTMF:
            raise CommandFailed(f"unknown spy mode {mode!r}")
        if self.ended or not self.started:
            raise CommandFailed(f"spy on {self.target} is not running")
        try:
            await self._driver.ami.send_action(
                "PlayDTMF",
                [
                    ("Channel", self.channel),
                    ("Digit", _SPY_DTMF[mode]),
                    ("Duration", "100"),
                    # As if the supervisor's phone sent it: ChanSpy reads it (Asterisk 16+).
                    ("Receive", "true"),
                ],
                retry_on_reconnect=False,
            )
        except ActionFailed as exc:
            if _no_such_channel(exc):
                self._on_ended("gone")
                raise CommandFailed(f"spy on {self.target} has ended") from None
            raise
        self._mode = mode
        self._log.info("spy_mode_changed", mode=mode)

    async def stop(self) -> None:
        if self.ended:
            return
        ami = self._driver.ami
        try:
            if self.started:
                context, exten, priority = SPY_STOP_LOCATION
                await ami.send_action(
                    "Redirect",
                    [
                        ("Channel", self.channel),
                        ("Context", context),
                        ("Exten", exten),
                        ("Priority", str(priority)),
                    ],
                    retry_on_reconnect=False,
                )
            else:
                await self._driver.hangup_channel(self.channel)
        except ActionFailed as exc:
            if not _no_such_channel(exc):
                raise
            self._on_ended("gone")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._driver.settings.action_timeout):
                await self._ended.wait()
        self._log.info("spy_stopped", ended=self.ended)


class AsteriskConference(RoomLife):
    """A ConfBridge room our caller sits in (implements
    :class:`callcenter.pbx.interface.Conference`); members from ConfbridgeJoin/Leave. Its
    side room is the ConfBridge ``<room>-aside``; legs move between the two by a Redirect
    to :data:`CONFERENCE_CONTEXT`."""

    def __init__(self, driver: AsteriskDriver, room: str, caller: str) -> None:
        super().__init__(room, driver._conferences, log.bind(room=room, caller=caller))
        self._driver = driver
        self._caller = caller
        self._members: list[str] = []
        self._aside: list[str] = []

    @property
    def members(self) -> Sequence[str]:
        return tuple(self._members)

    @property
    def aside(self) -> Sequence[str]:
        return tuple(self._aside)

    async def invite(
        self, device: str, *, caller_id: str = "", timeout: float = 30.0, aside: bool = False
    ) -> None:
        """AMI ``Originate`` of ``device`` into ``ConfBridge(<room>)`` (or the side room)."""
        _check_device(device)
        if self.ended:
            raise CommandFailed(f"conference {self._room} has ended")
        fields: list[tuple[str, str]] = [
            ("Channel", device),
            ("Application", "ConfBridge"),
            ("Data", self._side if aside else self._room),
            ("Timeout", str(max(1, int(timeout * 1000)))),
            ("Async", "true"),
        ]
        if caller_id:
            if not _CALLER_ID.fullmatch(caller_id):
                raise CommandFailed(f"invalid caller id {caller_id!r}")
            fields.append(("CallerID", caller_id))
        await self._driver.ami.send_action("Originate", fields, retry_on_reconnect=False)
        self._log.info("conference_invited", device=device, aside=aside)

    async def step_aside(self, channel: str) -> None:
        """AMI ``Redirect`` of the member to ``CONFERENCE_CONTEXT,<room>-aside,1``."""
        if channel not in self._members or channel == self._caller:
            raise CommandFailed(f"{channel!r} is not a member of conference {self._room}")
        await self._move(channel, self._side)

    async def bring_back(self, channel: str) -> None:
        """AMI ``Redirect`` of the side room's member to ``CONFERENCE_CONTEXT,<room>,1``."""
        if channel not in self._aside:
            raise CommandFailed(f"{channel!r} is not aside in conference {self._room}")
        await self._move(channel, self._room)

    async def _move(self, channel: str, room: str) -> None:
        if self.ended:
            raise CommandFailed(f"conference {self._room} has ended")
        try:
            await self._driver.ami.send_action(
                "Redirect",
                [
                    ("Channel", channel),
                    ("Context", CONFERENCE_CONTEXT),
                    ("Exten", room),
                    ("Priority", "1"),
                ],
                retry_on_reconnect=False,
            )
        except ActionFailed as exc:
            raise CommandFailed(f"cannot move {channel!r} to {room}: {exc}") from None
        self._log.info("conference_moved", channel=channel, to=room)

    async def kick(self, channel: str) -> None:
        """AMI ``ConfbridgeKick`` of one member (of the room or the side room)."""
        if channel in self._members:
            await self._kick(self._room, channel)
        elif channel in self._aside:
            await self._kick(self._side, channel)
        else:
            raise CommandFailed(f"{channel!r} is not in conference {self._room}")

    async def end(self) -> None:
        """AMI ``ConfbridgeKick`` of ``all`` in both rooms; returns once the caller left."""
        if self.ended:
            return
        if self._aside:
            await self._kick(self._side, "all")
        await self._kick(self._room, "all")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._driver.settings.action_timeout):
                await self._ended.wait()
        self._log.info("conference_ended", ended=self.ended)

    async def _kick(self, room: str, channel: str) -> None:
        try:
            await self._driver.ami.send_action(
                "ConfbridgeKick",
                [("Conference", room), ("Channel", channel)],
                retry_on_reconnect=False,
            )
        except ActionFailed as exc:
            self._log.info("conference_kick_refused", channel=channel, error=str(exc))
            if channel != "all":
                raise CommandFailed(f"cannot kick {channel!r}: {exc}") from None
        self._log.info("conference_kick", channel=channel, room=room)

    def _on_event(self, msg: AMIMessage) -> None:
        name = msg.get("Channel") or ""
        event = msg.name
        members = self._aside if msg.get("Conference") == self._side else self._members
        if event == "ConfbridgeJoin" and name and name not in members:
            members.append(name)
            if name == self._caller:
                self._caller_in.set()
        elif event == "ConfbridgeLeave" and name in members:
            members.remove(name)
        elif event == "ConfbridgeEnd":
            members.clear()
        else:
            return
        self._changed()

    def _resync(self, snapshots: Sequence[ChannelSnapshot]) -> None:
        """After a reconnection: the rooms' members as ``CoreShowChannels`` lists them (the
        ConfbridgeJoin/Leave events of the outage are lost). The caller stays as it was: its
        ConfBridge runs inside AGI and is the call's own business."""
        found: dict[str, list[str]] = {self._room: [], self._side: []}
        for snap in snapshots:
            if snap.room in found and snap.channel != self._caller:
                found[snap.room].append(snap.channel)
        changed = False
        for members, now in ((self._members, found[self._room]), (self._aside, found[self._side])):
            keep = [m for m in members if m in now or m == self._caller]
            keep += [m for m in now if m not in keep]
            if keep != members:
                members[:] = keep
                changed = True
        if changed:
            self._log.info("conference_resynced", members=self._members, aside=self._aside)
            self._changed()


_LAMP = re.compile(r"[A-Za-z0-9_.+@-]{1,80}")
_DEVICE_STATES: Final = {
    LampState.OFF: "NOT_INUSE",
    LampState.FLASHING: "RINGING",
    LampState.ON: "INUSE",
    LampState.HOLD: "ONHOLD",
    LampState.UNAVAILABLE: "UNAVAILABLE",
}
"""The custom device state that shows each lamp state (func_devstate's values)."""


def _check_lamp(name: str) -> None:
    if not _LAMP.fullmatch(name):
        raise CommandFailed(f"invalid lamp name {name!r}: letters, digits and _.+@- only")


def _check_device(device: str) -> None:
    if not _DEVICE.fullmatch(device):
        raise CommandFailed(f"refusing to dial {device!r}: not a TECH/resource device string")


def _no_such_channel(exc: ActionFailed) -> bool:
    message = str(exc).lower()
    return "no such channel" in message or "does not exist" in message


def _say_datetime(kind: SayKind, value: str) -> tuple[int, str]:
    """(seconds since the epoch, SAY DATETIME format) for a ``date`` or ``time`` value.

    The moment is built in UTC and said with the UTC zone, so the wall-clock value the
    caller hears is exactly ``value``.
    """
    try:
        if kind == "date":
            day = date.fromisoformat(value.strip())
            moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            return int(moment.timestamp()), "ABdY"
        hours, _, minutes = value.strip().partition(":")
        clock = datetime(1970, 1, 2, int(hours), int(minutes or 0), tzinfo=UTC)
    except ValueError:
        raise CommandFailed(f"cannot say {value!r} as a {kind}") from None
    return int(clock.timestamp()), "IMp"


def _snapshots(items: Sequence[AMIMessage]) -> list[ChannelSnapshot]:
    """``CoreShowChannel`` items as snapshots; channels in one bridge name each other."""
    members: dict[str, list[str]] = {}
    for item in items:
        bridge = item.get("BridgeId") or ""
        if bridge:
            members.setdefault(bridge, []).append(item.get("Channel") or "")
    snapshots = []
    for item in items:
        name = item.get("Channel") or ""
        bridge = item.get("BridgeId") or ""
        others = [c for c in members.get(bridge, ()) if c != name] if bridge else []
        snapshots.append(
            ChannelSnapshot(
                channel=name,
                call_id=item.get("Uniqueid") or "",
                linked_id=item.get("Linkedid") or "",
                state=item.get("ChannelStateDesc") or "",
                caller_num=item.get("CallerIDNum") or "",
                context=item.get("Context") or "",
                exten=item.get("Exten") or "",
                application=item.get("Application") or "",
                bridged_to=others[0] if others else None,
                application_data=item.get("ApplicationData") or "",
                room=(
                    (item.get("ApplicationData") or "").partition(",")[0]
                    if (item.get("Application") or "").lower() == "confbridge"
                    else ""
                ),
                room_leg=(leg.group("room") if (leg := _ROOM_LEG.fullmatch(name)) else ""),
            )
        )
    return snapshots


_UNIQUEID: Final = re.compile(r"[0-9]+\.[0-9]+")
_DIALPLAN_NAME: Final = re.compile(r"[A-Za-z0-9+*#][A-Za-z0-9_+*#.@-]{0,79}")
"""A context or an extension :meth:`AsteriskDriver.redirect_channel` sends a channel to
(not a pattern, which begins with ``_``: a channel goes to one extension)."""
"""An Asterisk channel's Uniqueid (``1796647009.3``); no channel name looks like one."""

_ROOM_LEG: Final = re.compile(
    rf"Local/(?P<room>[A-Za-z0-9][A-Za-z0-9_-]{{1,63}})@{CONFERENCE_CONTEXT}-[0-9a-f]+;[12]"
)
"""Either half of a room device's Local channel (``Local/<room>@callcenter-conference-
0000001a;1``)."""


_CHANNEL_SUFFIX: Final = re.compile(r"(?P<device>[A-Za-z][A-Za-z0-9_]*/[^/]+?)-[0-9a-f]{8}")


def channel_device(channel: str) -> str:
    """The device of an Asterisk channel name: ``PJSIP/1010-0000000a`` -> ``PJSIP/1010``;
    empty for a name without that unique suffix (``Local/...;1`` ends in ``;1``: no phone)."""
    match = _CHANNEL_SUFFIX.fullmatch(channel)
    return match["device"] if match is not None else ""
