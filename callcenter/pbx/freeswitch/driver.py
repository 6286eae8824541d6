"""The FreeSWITCH driver: :class:`FreeSwitchDriver` implements the PBX interface.

How calls reach us (two dialplan hooks, both may be used at once):

* **park** (transport ``esl-inbound``)::

      <action application="set" data="callcenter_route=inbound?queue=sales"/>
      <action application="park"/>

  The CHANNEL_PARK event on the inbound event socket hands the channel over, once.
  Commands run on it with ``sendmsg <uuid>``. When the engine's handler returns and the
  caller is still up and still ours, the driver hangs the caller up (a parked channel has no
  dialplan to go back to). The shipped dialplan schedules a failover before ``park``::

      <action application="sched_transfer" data="+20 callcenter_failover XML ${context}"/>
      <action application="set" data="callcenter_failover_task=${last_sched_id}"/>

  and the driver drops that task (``sched_del <id>``) when it takes the call: a caller no
  daemon takes (none runs, or the event socket is down) is not left in silent park. Not
  ``park_timeout``: it hangs the caller up at the deadline even while we drive the call.
  After a (re)connection, channels found sitting in ``park`` that nobody handles are
  adopted (``adopt_parked``): callers parked while the daemon was down are not forgotten,
  and neither are unbridged callers whose handler the lost link ended (they could not be
  hung up; they start the flow again).
* **socket** (transport ``esl-outbound``)::

      <action application="set" data="callcenter_route=inbound?queue=sales"/>
      <action application="socket" data="127.0.0.1:8084 async full"/>

  FreeSWITCH connects to :attr:`FreeSwitchDriver.outbound_port`; the channel is controlled
  on that socket. When the handler returns the socket is closed and the dialplan continues
  after ``socket``. (The socket application parks the channel: that CHANNEL_PARK, seen on
  the inbound socket, is not a second hand-over.)

The route variable (``callcenter_route`` by default) plays the part of the AGI script path:
``route?a=1&b=2`` gives ``CallInfo.route == "route"`` and ``CallInfo.params``.

How commands map (:class:`FreeSwitchCall`):

* answer / playback / play_and_get_digits / bridge run as ``sendmsg execute`` with our
  ``Event-UUID``; completion is the CHANNEL_EXECUTE_COMPLETE carrying it as
  ``Application-UUID``. PLAYBACK_STOP says ``done`` even when the caller hung up (trace h):
  only CHANNEL_HANGUP and ``Application-Response`` are trusted.
* ``play(interrupt_digits=...)`` sets ``playback_terminators`` first; the digit that broke the
  prompt comes from ``playback_terminator_used`` (or the DTMF events seen meanwhile).
* ``read_digits`` is ``play_and_get_digits 1 <max> 1 <ms> <term> <prompt> silence <var>
  [0-9*#]+ <ms>``; the digits are ``variable_<digits_variable>`` of its EXECUTE_COMPLETE.
* ``say`` is the ``say`` application (``say <lang> number pronounced 42``; digits
  ``number iterated``; dates and times ``current_date``/``current_time`` of a UTC epoch with
  ``timezone=UTC``); ``record`` is a beep (``playback``) then ``record <path>.<fmt> <max s>
  <threshold> <silence s>`` with ``playback_terminators`` as the end keys; ``set_language``
  sets ``default_language`` and the language ``say`` speaks.
* music on hold is ``playback local_stream://<class>`` (``default`` means
  ``settings.hold_music``; a stream never ends), stopped with ``uuid_break <uuid> all``.
  Not ``endless_playback``: it reads no keys, which wait unseen until the music stops;
  ``playback`` reads each (a DTMF event) and, with ``playback_terminators=none``, plays
  on. ``read_digits`` without a prompt while the music plays takes those keys: the caller
  hears the music all along and no command is sent.
* ``dial`` runs the ``bridge`` application on the caller after ``set hangup_after_bridge=false``
  and ``continue_on_fail=true`` (the caller stays parked and ours afterwards), ``ringback`` =
  the hold music (or a ring tone) and ``{originate_timeout=N,ignore_early_media=true}``.
  Each leg gets our own ``origination_uuid``, so the peer's events are recognised; its
  CHANNEL_ANSWER calls ``on_answer``, the bridge's EXECUTE_COMPLETE ends the dial.
  A failed dial's status comes from ``originate_disposition``: NO_ANSWER, ORIGINATOR_CANCEL
  (and other timeouts) give NOANSWER, USER_BUSY and CALL_REJECTED give BUSY, the congestion
  causes give CONGESTION, anything else CHANUNAVAIL.
* devices: FreeSWITCH dial strings (``user/1001``, ``sofia/internal/1001@host``,
  ``loopback/...``) are used as they are; Asterisk-style ``PJSIP/<x>`` and ``SIP/<x>`` become
  ``user/<x>`` (a directory user of the default domain), so one agent config serves both
  PBXs. ``&`` separates several devices, rung at once.
* unbridge = ``uuid_kill`` of the peer; redirect = ``uuid_transfer <uuid> <exten> XML
  <context>`` (FreeSWITCH has no priorities: ``priority`` is ignored); variables =
  ``uuid_getvar``/``uuid_setvar``; hangup = ``uuid_kill <uuid> <CAUSE_NAME>``.
* hold = ``uuid_hold <agent leg>`` (FreeSWITCH plays that leg's ``hold_music`` to its
  partner, the caller), ``uuid_hold off``; recording = ``uuid_record <uuid> start|stop
  <path>``; spy = ``bgapi originate {origination_uuid=..,eavesdrop_enable_dtmf=true,..}
  <supervisor> &eavesdrop(<agent uuid>)`` with eavesdrop's DTMF keys sent by
  ``uuid_recv_dtmf`` to switch modes (trace e), ended by ``uuid_kill``.

The caller's CHANNEL_HANGUP fails every pending command of the call at once with
``CallHungUp``. When the inbound link drops, pending commands of parked calls fail with
``PBXConnectionError`` (their completion events may be lost), except a running dial: after
the reconnection ``show channels`` tells whether its legs still exist.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import structlog

from callcenter.errors import (
    ActionFailed,
    CallHungUp,
    CommandFailed,
    ESLProtocolError,
    PBXConnectionError,
    PBXError,
    PBXTimeoutError,
    ReplyLost,
)
from callcenter.pbx.claim import PBXClaim, ReadGlobal, WriteGlobal
from callcenter.pbx.freeswitch.connection import (
    DEFAULT_EVENTS,
    ESLClient,
    ESLConnection,
    ESLOutboundServer,
    ESLOutboundSession,
)
from callcenter.pbx.interface import (
    ANNOUNCE_FILE,
    CALLER_NAME,
    MAX_DELAY,
    REPORT_HOLD_PROMPT,
    RINGBACK,
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
from callcenter.pbx.link import reply_within
from callcenter.pbx.music_keys import MusicKeys
from callcenter.pbx.room import RoomLife
from callcenter.pbx.spy import SpyLife
from callcenter.protocols.esl import MYEVENTS, ESLEvent, ESLMessage
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

#: Extra seconds on top of the expected duration of a long command before it times out.
LONG_COMMAND_MARGIN: Final = 5.0
#: One dial target: technology/resource; nothing that could add legs, variables or options.
_ONE_DEVICE = r"[A-Za-z][A-Za-z0-9_-]*/[A-Za-z0-9_.@:+#*=/-]+"
_DEVICE: Final = re.compile(rf"{_ONE_DEVICE}(?:&{_ONE_DEVICE})*")
_ASTERISK_TECH: Final = ("PJSIP/", "SIP/")
_CALLER_ID: Final = re.compile(r"[A-Za-z0-9+*#. _<>@-]{1,80}")
_NAME_AND_NUMBER: Final = re.compile(r"\s*(?P<name>[^<]*?)\s*<(?P<number>[^<>]*)>\s*")
_MOH_CLASS: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_/-]{0,79}")
_VAR_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_+*#.@-]{1,128}")

_ORIGINATE_CAUSES: Final = {
    "USER_BUSY": "busy",
    "NO_ANSWER": "no-answer",
    "NO_USER_RESPONSE": "no-answer",
    "ALLOTTED_TIMEOUT": "no-answer",
    "PROGRESS_TIMEOUT": "no-answer",
    "CALL_REJECTED": "rejected",
    "USER_NOT_REGISTERED": "unavailable",
    "SUBSCRIBER_ABSENT": "unavailable",
    "UNALLOCATED_NUMBER": "unavailable",
    "NO_ROUTE_DESTINATION": "unavailable",
    "DESTINATION_OUT_OF_ORDER": "unavailable",
    "NORMAL_CIRCUIT_CONGESTION": "congestion",
    "SWITCH_CONGESTION": "congestion",
    "NORMAL_TEMPORARY_FAILURE": "congestion",
}
"""Hangup causes of a failed ``originate`` (``-ERR USER_BUSY``) -> ORIGINATE_FAILURES."""


def originate_outcome(result: str) -> str:
    """A ``bgapi originate`` job's result as :meth:`PBX.originate`'s outcome: ``""`` for
    ``+OK <uuid>`` (answered), else one of ORIGINATE_FAILURES."""
    text = result.strip()
    if text.startswith("+OK"):
        return ""
    cause = text.removeprefix("-ERR").strip().split(" ", 1)[0].upper()
    return _ORIGINATE_CAUSES.get(cause, "failed")


_ROOM: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,63}")
#: Channel variable the shipped dialplan keeps the id of its scheduled failover in
#: (``sched_transfer`` sets ``last_sched_id``); the driver drops that task when it takes the call.
FAILOVER_TASK_VARIABLE: Final = "callcenter_failover_task"
#: The global variable holding the claim of the daemon that drives this FreeSWITCH.
OWNER_VARIABLE: Final = "callcenter_owner"
#: The Event-Subclass of mod_conference's membership events.
CONFERENCE_SUBCLASS: Final = "conference::maintenance"
NO_ROOM_KEYS: Final = "conference_controls=none"
"""Set on every leg of our rooms: mod_conference gives such a member no key bindings (the
stock ``default`` caller-controls hang a member up on ``#`` and mute on ``0``), so the
keys an agent presses in a consultation are the daemon's (``acd.agent_keys``)."""
ROOM_TECH: Final = "loopback/app=conference:"
"""What :meth:`FreeSwitchDriver.room_device` strings start with: mod_loopback's B leg runs
``conference <room>`` and its A leg is the dialled one."""
_ROOM_LEG_VARS: Final = ",conference_controls=none,loopback_export=conference_controls"
AUTO_ANSWER_VAR: Final = "sip_auto_answer=true"
"""mod_sofia adds ``Call-Info: <sip:...>;answer-after=0`` (and Polycom's Alert-Info) to
the INVITE: a phone that allows it answers by itself (agents' ``auto_answer``)."""
"""On a leg dialled into a room: the loopback's B leg (exported to it) gets no key bindings
either, so a caller's keys passed through the bridge cannot hang it up (``#``)."""
REGISTERED: Final = "sofia::register"
UNREGISTERED: Final = frozenset({"sofia::unregister", "sofia::expire"})
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_DIGITS: Final = "0123456789*#ABCD"
_SAY_DIGITS: Final = re.compile(r"[0-9*#]{1,64}")
_SAY_NUMBER: Final = re.compile(r"-?[0-9]{1,15}")
_RECORD_FORMAT: Final = re.compile(r"[a-z0-9]{2,8}")
_LANGUAGE: Final = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})?")
#: The beep before a recording (FreeSWITCH's own voicemail beep tone).
_BEEP: Final = "tone_stream://%(500,0,640)"
#: Energy under which a frame counts as silence for ``record`` (FreeSWITCH's usual 200).
_SILENCE_THRESHOLD: Final = 200
#: How long a recording's completion may lag the caller's hang-up (it carries the length).
_RECORD_SETTLE: Final = 2.0
_DIGITS_REGEX: Final = "[0-9*#]+"
#: What the caller hears while an agent rings when there is no hold music (US ring cadence).
_RING_TONE: Final = "%(2000,4000,440,480)"
_SILENCE: Final = "silence_stream://250"
_MAX_DTMF_KEPT: Final = 64
_MAX_HUNG_UP_REMEMBERED: Final = 4096
#: The user part of a SIP channel name: ``sofia/internal/1001@10.0.0.5`` -> ``1001``.
_SOFIA_USER: Final = re.compile(r"sofia/[^/]+/(?:sips?:)?([^@/]+)(?:@.*)?")
_USER_DEVICE: Final = re.compile(r"(?:user|pjsip|sip)/([^@/]+)(?:@.*)?", re.IGNORECASE)
_SIP_USER: Final = re.compile(r"[A-Za-z0-9_.+\-]+")
"""A SIP user or host as it may go into an api line (no spaces or separators)."""

#: The ``myevents`` (:data:`~callcenter.protocols.esl.MYEVENTS`) that
#: :meth:`FreeSwitchCall._on_event` reads on an outbound socket.
_CALL_READS: Final = frozenset(
    {
        "CHANNEL_ANSWER",
        "CHANNEL_BRIDGE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "DTMF",
    }
)
#: The rest, which the socket ``nixevent``s: CHANNEL_EXECUTE alone is one event per
#: application the call runs, each a few KB.
UNUSED_MYEVENTS: Final = tuple(sorted(MYEVENTS - _CALL_READS))
#: What an outbound socket session sends with its ``myevents``: drop the unread events, and
#: add PLAYBACK_STOP, which ``myevents`` leaves out and which tells a prompt broken by a key
#: from one that played out (the key itself may have been pressed before it started).
OUTBOUND_SETUP: Final = (
    "nixevent " + " ".join(UNUSED_MYEVENTS),
    "event plain PLAYBACK_STOP",
)


def _multiset_delimiter(items: Sequence[str]) -> str | None:
    """A ``multiset`` delimiter found in none of ``items`` (None: set them one by one)."""
    return next((d for d in "|~;!" if not any(d in item for item in items)), None)


_NOANSWER_CAUSES: Final = frozenset(
    {"NO_ANSWER", "ORIGINATOR_CANCEL", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT"}
)
_BUSY_CAUSES: Final = frozenset({"USER_BUSY", "CALL_REJECTED"})
_CONGESTION_CAUSES: Final = frozenset({"NORMAL_CIRCUIT_CONGESTION", "SWITCH_CONGESTION"})


def dial_status_for(cause: str) -> DialStatus:
    """The Asterisk-style dial status for a FreeSWITCH cause name (``originate_disposition``)."""
    name = cause.strip().upper()
    if name in ("SUCCESS", "ANSWER"):
        return DialStatus.ANSWER
    if name in _NOANSWER_CAUSES:
        return DialStatus.NOANSWER
    if name in _BUSY_CAUSES:
        return DialStatus.BUSY
    if name in _CONGESTION_CAUSES:
        return DialStatus.CONGESTION
    return DialStatus.CHANUNAVAIL


ANNOUNCE_LIMIT: Final = 60
"""Seconds an announcement to an answering agent may take (``Call.dial``'s ``announce``)."""


def fs_dial_targets(device: str) -> list[str]:
    """The FreeSWITCH dial strings for an engine device, one per ``&``-separated part.

    ``PJSIP/1001`` and ``SIP/1001`` become ``user/1001``; FreeSWITCH strings stay as they are.
    Raises ``CommandFailed`` for anything that is not ``tech/resource`` (no ``,``, ``|``,
    ``{``, ``[``, quotes or spaces that could smuggle in extra legs or variables).
    """
    if not _DEVICE.fullmatch(device):
        raise CommandFailed(f"refusing to dial {device!r}: not a tech/resource device string")
    targets = []
    for part in device.split("&"):
        tech = next((t for t in _ASTERISK_TECH if part.upper().startswith(t)), None)
        targets.append(part if tech is None else "user/" + part[len(tech) :])
    return targets


def _quote_var(value: str) -> str:
    return f"'{value}'" if " " in value else value


def _caller_id_vars(caller_id: str | None) -> list[str]:
    if not caller_id:
        return []
    if not _CALLER_ID.fullmatch(caller_id):
        raise CommandFailed(f"invalid caller id {caller_id!r}")
    match = _NAME_AND_NUMBER.fullmatch(caller_id)
    if match is None:
        return [f"origination_caller_id_number={caller_id.strip()}"]
    out = []
    if match["number"]:
        out.append(f"origination_caller_id_number={match['number'].strip()}")
    if match["name"]:
        out.append(f"origination_caller_id_name={_quote_var(match['name'])}")
    return out


def _check_digits(digits: str) -> None:
    if any(d not in _DIGITS for d in digits):
        raise CommandFailed(f"invalid DTMF digits {digits!r}")


def _say_datetime(kind: SayKind, value: str) -> tuple[int, str]:
    """(seconds since the epoch, say type) for a ``date`` (``YYYY-MM-DD``) or ``time``
    (``HH:MM``) value, built in UTC."""
    try:
        if kind == "date":
            day = date.fromisoformat(value.strip())
            moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            return int(moment.timestamp()), "current_date"
        hours, _, minutes = value.strip().partition(":")
        clock = datetime(1970, 1, 2, int(hours), int(minutes or 0), tzinfo=UTC)
    except ValueError:
        raise CommandFailed(f"cannot say {value!r} as a {kind}") from None
    return int(clock.timestamp()), "current_time"


#: Channel variables of the supervisor's leg per spy mode. ``eavesdrop_whisper_bleg`` sets
#: ED_MUX_WRITE (the spied-on leg, the agent, hears the supervisor), ``..._aleg``
#: ED_MUX_READ (the agent's partner, the caller, hears them); both: a three-way call.
_SPY_VARS: dict[SpyMode, tuple[str, ...]] = {
    "listen": (),
    "whisper": ("eavesdrop_whisper_bleg=true",),
    "barge": ("eavesdrop_whisper_aleg=true", "eavesdrop_whisper_bleg=true"),
}
#: eavesdrop's DTMF keys (``eavesdrop_enable_dtmf=true``, trace e): 0 back to listening,
#: 2 talk to the spied-on leg, 3 three-way (1 would talk to the other leg only).
_SPY_DTMF: dict[SpyMode, str] = {"listen": "0", "whisper": "2", "barge": "3"}
#: What a supervisor's keypad does (the same keys); 1 talks to the agent's partner only:
#: the caller hears the supervisor, which the records call barging.
_SPY_KEYS: dict[str, SpyMode] = {"0": "listen", "1": "barge", "2": "whisper", "3": "barge"}
#: Seconds a supervisor's own call may eavesdrop (:meth:`FreeSwitchCall.spy`).
SPY_LIMIT = 12 * 3600.0
_RECORD_PATH: Final = re.compile(r"[A-Za-z0-9_./-]{1,255}\.[a-z0-9]{2,8}")


_PRESENCE: Final = {
    LampState.OFF: ("terminated", "Available"),
    LampState.FLASHING: ("early", "Ringing"),
    LampState.ON: ("confirmed", "On the phone"),
    LampState.HOLD: ("confirmed", "On a break"),
    LampState.UNAVAILABLE: ("terminated", "Logged out"),
}
"""The dialog state (what the lamp shows) and the presence note of each lamp state."""


def _check_line(what: str, text: str) -> None:
    if not text or "\n" in text or "\r" in text or "\x00" in text:
        raise CommandFailed(f"invalid {what} {text!r}")


@dataclass(frozen=True, slots=True)
class FreeSwitchSettings:
    """Everything the FreeSWITCH driver needs; the daemon builds it from ``config.pbx.esl``."""

    name: str = "freeswitch"
    esl_host: str = "127.0.0.1"
    esl_port: int = 8021
    esl_password: str = field(default="", repr=False)
    events: tuple[str, ...] = DEFAULT_EVENTS
    """Plain events subscribed on the inbound socket (the driver needs all the defaults)."""
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    """Deadline of replies and of quick applications (answer, set, uuid_* api calls)."""
    heartbeat_timeout: float = 45.0
    """Silence on the inbound socket after which ``api status`` probes it (FreeSWITCH sends a
    HEARTBEAT every 20 s by default)."""
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    outbound_listen_host: str = "127.0.0.1"
    outbound_listen_port: int | None = 8084
    """Port for the ``socket`` application (0: any free port, see
    :attr:`FreeSwitchDriver.outbound_port`; None: no outbound-socket server)."""
    outbound_linger: int = 10
    """Seconds FreeSWITCH keeps an outbound socket open after hangup (so the hangup events
    still arrive)."""
    route_variable: str = "callcenter_route"
    default_route: str = "inbound"
    digits_variable: str = "callcenter_digits"
    """Channel variable ``play_and_get_digits`` stores the digits in."""
    hold_music: str = "local_stream://moh"
    """What music class ``default`` plays; other classes play ``local_stream://<class>``."""
    adopt_parked: bool = True
    failover_extension: str = "callcenter_failover"
    """Where :meth:`FreeSwitchCall.fail_over` sends a parked caller the daemon will not
    serve (``uuid_transfer <uuid> <extension> XML <the call's context>``): the shipped
    dialplan's failover."""
    claim_refresh: float = 5.0
    """Seconds between two writes of this daemon's ``callcenter_owner`` mark (see
    :mod:`callcenter.pbx.claim`); 0: no claim is made or checked."""
    prompt_timeout: float = 600.0
    """Longest a single prompt may play before the command counts as stuck."""
    max_bridge_seconds: float = 4 * 3600.0
    """Longest an answered dial may stay bridged before the command counts as stuck."""


def probe_connection(settings: FreeSwitchSettings) -> ESLConnection:
    """A second, short-lived event-socket login as the daemon does, subscribed to heartbeats
    only (the PBX claim's, ``callcenter check --pbx``'s): connect it, use it, close it."""
    return ESLConnection(
        settings.esl_host,
        settings.esl_port,
        settings.esl_password,
        events=("HEARTBEAT",),
        connect_timeout=settings.connect_timeout,
        command_timeout=settings.command_timeout,
    )


class FreeSwitchDriver:
    """One FreeSWITCH (implements :class:`callcenter.pbx.interface.PBX`)."""

    def __init__(self, settings: FreeSwitchSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.esl = ESLConnection(
            settings.esl_host,
            settings.esl_port,
            settings.esl_password,
            events=settings.events,
            connect_timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            heartbeat_timeout=settings.heartbeat_timeout,
            reconnect_min=settings.reconnect_min,
            reconnect_max=settings.reconnect_max,
        )
        self.esl.add_listener(self._on_inbound_event)
        self.esl.on_connected(self._resync)
        self.esl.on_connected(self._claim_after_reconnect)
        self.esl.on_disconnected(self._on_esl_lost)
        self._handler: CallHandler | None = None
        self._listeners: list[PBXListener] = []
        self._calls: dict[str, FreeSwitchCall] = {}
        #: Leg uuid of a dial -> the call whose dial rang it.
        self._peers: dict[str, FreeSwitchCall] = {}
        #: (say module, number) -> the files FreeSWITCH's say_string renders it as.
        self._said: dict[tuple[str, int], list[str]] = {}
        #: Unique-ID of a supervisor's leg -> its spy session.
        self._spies: dict[str, FreeSwitchSpySession] = {}
        #: Conference name -> the conference one of our calls runs in it.
        self._conferences: dict[str, FreeSwitchConference] = {}
        self._hung_up_seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        #: SIP user -> Unique-IDs of its live channels; Unique-ID -> user (device states).
        self._user_channels: dict[str, set[str]] = {}
        self._channel_user: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ringing_rooms: dict[str, FreeSwitchCall] = {}
        """Rooms a call waits alone in with a ring tone (``wait_in_room(ringing=True)``)."""
        #: Mailbox (user@domain) -> the (new, old) counts its lamp was last given, for the
        #: MESSAGE_QUERY a phone's registration raises.
        self._lamps: dict[str, tuple[int, int]] = {}
        self._outbound: ESLOutboundServer | None = None
        self._started = False
        self._stopping = False
        #: Parked callers whose handler ended because the ESL link went down under them,
        #: with no way to hang them up: the next resync takes them back.
        self._orphans: set[str] = set()
        #: Callers an earlier daemon left in a prompt or music are looked for once, at the
        #: first connection (see :meth:`_take_back`).
        self._looked_for_left = False
        self.claim_keeper = PBXClaim(settings.claim_refresh) if settings.claim_refresh > 0 else None
        self._claim_task: asyncio.Task[None] | None = None
        self._claimed = False
        self._log = log.bind(pbx=self.name)

    # -- PBX ------------------------------------------------------------------------------

    @property
    def outbound_port(self) -> int | None:
        """The bound outbound-socket port (the configured one until started)."""
        if self._outbound is not None:
            return self._outbound.port
        return self.settings.outbound_listen_port

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    async def claim(self) -> None:
        """Mark this FreeSWITCH as ours (``global_setvar callcenter_owner=...``) over a
        short event-socket session; ``PBXClaimed`` when another daemon's mark is fresh."""
        keeper = self.claim_keeper
        if keeper is None:
            return
        settings = self.settings
        probe = probe_connection(settings)
        await probe.connect()
        try:
            await keeper.acquire(*_owner_variable(probe))
            self._claimed = True
        except ActionFailed as exc:
            self._log.warning("pbx_claim_unchecked", error=str(exc))
        finally:
            await probe.close()

    async def _release_claim(self) -> None:
        """Clear our mark (a stop, or a start that failed after the claim), if we made one
        and can still reach the PBX: a standby need not wait for it to go stale."""
        keeper = self.claim_keeper
        if keeper is not None and self._claimed:
            keeper.let_go()
            if self.esl.connected:
                with contextlib.suppress(PBXError):
                    await keeper.release(*_owner_variable(self.esl))
        self._claimed = False

    def _claim_lost(self, other: str) -> None:
        self._publish(PBXClaimLost(self.name, other))

    async def _claim_after_reconnect(self) -> None:
        # Right away, not at the next refresh: a restarted PBX forgot its globals, and a
        # standby probing meanwhile would find it free.
        if self._claim_task is not None and self.claim_keeper is not None:
            await self.claim_keeper.refresh_or_report(*_owner_variable(self.esl), self._claim_lost)

    async def start(self, handler: CallHandler) -> None:
        """Connect and authenticate (``AuthenticationError``/``PBXConnectionError``
        propagate), then listen for outbound sockets if configured (``ListenError``)."""
        if self._started:
            raise PBXConnectionError(f"driver {self.name} already started")
        self._handler = handler
        self._stopping = False
        await self.esl.connect()
        self._started = True
        port = self.settings.outbound_listen_port
        if port is not None:
            self._outbound = ESLOutboundServer(
                self.settings.outbound_listen_host,
                port,
                self._serve_outbound,
                command_timeout=self.settings.command_timeout,
                connect_timeout=self.settings.connect_timeout,
                linger=self.settings.outbound_linger,
                setup=OUTBOUND_SETUP,
            )
            try:
                await self._outbound.start()
            except BaseException:
                self._outbound = None
                await self._release_claim()
                await self.esl.close()
                self._started = False
                raise
        if self.claim_keeper is not None and self._claimed:
            keeping = self.claim_keeper.keep(
                *_owner_variable(self.esl),
                connected=lambda: self.esl.connected,
                on_lost=self._claim_lost,
            )
            self._claim_task = asyncio.create_task(keeping, name="esl-claim")
        self._log.info("pbx_started", esl=self.esl.where, outbound_port=self.outbound_port)

    async def stop(self) -> None:
        """Stop taking calls and close the sockets. What happens to the calls in progress is
        :meth:`FreeSwitchCall.hand_back`'s: bridged callers keep talking, socket calls go on
        in the dialplan after ``socket`` (``resume``), parked callers in the IVR or a queue
        are parked afresh for the next daemon to adopt (as are callers parked while no
        daemon ran); the shipped dialplan sends them to its failover if no daemon takes them
        in time."""
        self._stopping = True
        if self._outbound is not None:
            await self._outbound.stop()
            self._outbound = None
        await cancel_and_wait(*list(self._tasks))
        if self._claim_task is not None:
            await cancel_and_wait(self._claim_task)
            self._claim_task = None
        await self._release_claim()
        await self.esl.close()
        self._started = False
        self._log.info("pbx_stopped")

    def subscribe(self, listener: PBXListener) -> None:
        self._listeners.append(listener)

    async def hangup_channel(
        self, channel: str, cause: HangupCause = HangupCause.NORMAL_CLEARING
    ) -> None:
        """``uuid_kill``; ``channel`` is a Unique-ID or a channel name. A channel that is
        already gone counts as done."""
        target: str | None = channel if _UUID.fullmatch(channel) else await self._uuid_of(channel)
        if target is None:
            self._log.debug("hangup_channel_already_gone", channel=channel)
            return
        text = await self.esl.api(f"uuid_kill {target} {cause.name}", check=False)
        if text.startswith("-ERR"):
            if "no such channel" in text.lower():
                self._log.debug("hangup_channel_already_gone", channel=channel)
                return
            raise ActionFailed(f"uuid_kill {channel} failed: {text.strip()}", text)

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
        """``bgapi originate {...}<device> <exten> XML <context>``: returns once FreeSWITCH
        accepted the job (never resent), with the outcome its BACKGROUND_JOB gives
        (``+OK <uuid>``, or ``-ERR <cause>``: see :func:`originate_outcome`)."""
        targets = fs_dial_targets(device)
        for what, token in (("context", context), ("extension", exten)):
            if not _TOKEN.fullmatch(token):
                raise CommandFailed(f"invalid {what} {token!r}")
        values = [f"originate_timeout={max(1, math.ceil(timeout))}", *_caller_id_vars(caller_id)]
        for key, value in (variables or {}).items():
            if not _VAR_NAME.fullmatch(key) or any(c in value for c in ",{}[]'\"\n\r\x00"):
                raise CommandFailed(f"invalid originate variable {key!r}={value!r}")
            values.append(f"{key}={_quote_var(value)}")
        if auto_answer:
            values.append(AUTO_ANSWER_VAR)
        dial_string = "{" + ",".join(values) + "}" + ",".join(targets)
        job = await self.esl.start_bgapi(f"originate {dial_string} {exten} XML {context}")
        bound = self._log.bind(device=device, context=context, exten=exten)
        bound.info("originate_queued")
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def report(future: asyncio.Future[str]) -> None:
            if outcome.done():
                return
            if future.cancelled():
                outcome.cancel()
                return
            error = future.exception()
            if error is not None:
                bound.warning("originate_result_lost", error=str(error))
                outcome.cancel()
                return
            result = future.result().strip()
            if result.startswith("+OK"):
                bound.info("originate_answered")
            else:
                bound.info("originate_failed", result=result)
            outcome.set_result(originate_outcome(result))

        job.add_done_callback(report)
        return outcome

    async def redirect_channel(self, channel: str, context: str, exten: str) -> None:
        """``uuid_break <uuid> all`` then ``uuid_transfer <uuid> <exten> XML <context>``
        (a channel name is looked up in ``show channels`` first): what it runs and what
        was queued for it end, and it goes through the extension."""
        for what, token in (("context", context), ("extension", exten)):
            if not _TOKEN.fullmatch(token):
                raise CommandFailed(f"invalid {what} {token!r}")
        target = channel if _UUID.fullmatch(channel) else await self._uuid_of(channel)
        if target is None:
            raise ActionFailed(f"no channel {channel}")
        text = await self._send_through_extension(target, exten, context)
        if text.startswith("-ERR"):
            raise ActionFailed(f"uuid_transfer {channel} failed: {text.strip()}", text)
        self._log.info("channel_redirected", call_id=target, context=context, exten=exten)

    def room_device(self, room: str) -> str:
        """``loopback/app=conference:<room>@default`` (:data:`ROOM_TECH`)."""
        if not _ROOM.fullmatch(room):
            raise CommandFailed(f"invalid conference room {room!r}")
        return f"{ROOM_TECH}{room}@default"

    async def channels(self) -> list[ChannelSnapshot]:
        """Every live channel, from ``show channels as json`` (bridges from ``show calls``)."""
        text = await self.esl.api("show channels as json")
        rows = _json_rows(text)
        bridged: dict[str, str] = {}
        with contextlib.suppress(PBXError, ESLProtocolError):
            for row in _json_rows(await self.esl.api("show calls as json")):
                a, b = row.get("uuid", ""), row.get("b_uuid", "")
                if a and b:
                    bridged[a] = row.get("b_name", "")
                    bridged[b] = row.get("name", "")
        return [
            ChannelSnapshot(
                channel=row.get("name", ""),
                call_id=row.get("uuid", ""),
                linked_id=row.get("call_uuid") or row.get("uuid", ""),
                state=row.get("callstate", ""),
                caller_num=row.get("cid_num", ""),
                context=row.get("context", ""),
                exten=row.get("dest", ""),
                application=row.get("application", ""),
                bridged_to=bridged.get(row.get("uuid", "")) or None,
                application_data=row.get("application_data", ""),
                room=_room_of(row),
                room_leg=(
                    leg.group("room") if (leg := _ROOM_LEG.fullmatch(row.get("name", ""))) else ""
                ),
            )
            for row in rows
        ]

    async def spy(
        self,
        supervisor_device: str,
        target_channel: str,
        mode: SpyMode,
        *,
        caller_id: str = "",
        timeout: float = 30.0,
        auto_answer: bool = False,
    ) -> FreeSwitchSpySession:
        """``bgapi originate {origination_uuid=..,eavesdrop_enable_dtmf=true,..}<device>
        &eavesdrop(<target uuid>)``; ``target_channel`` is a Unique-ID or a channel name."""
        targets = fs_dial_targets(supervisor_device)
        if mode not in _SPY_VARS:
            raise CommandFailed(f"unknown spy mode {mode!r}")
        target = target_channel if _UUID.fullmatch(target_channel) else None
        if target is None:
            _check_line("channel", target_channel)
            target = await self._uuid_of(target_channel)
        if target is None:
            raise CommandFailed(f"no live channel {target_channel!r} to spy on")
        leg = str(uuid.uuid4())
        values = [
            f"origination_uuid={leg}",
            f"originate_timeout={max(1, math.ceil(timeout))}",
            "eavesdrop_enable_dtmf=true",
            *_SPY_VARS[mode],
            *_caller_id_vars(caller_id or None),
            *([AUTO_ANSWER_VAR] if auto_answer else []),
        ]
        session = FreeSwitchSpySession(self, leg, target, mode)
        self._spies[leg] = session
        dial_string = "{" + ",".join(values) + "}" + targets[0]
        try:
            job = await self.esl.start_bgapi(
                f"originate {dial_string} &eavesdrop({target})",
                timeout=timeout + LONG_COMMAND_MARGIN,
            )
        except BaseException:
            self._spies.pop(leg, None)
            raise
        job.add_done_callback(session._on_job_done)
        self._log.info("spy_requested", supervisor=supervisor_device, target=target, mode=mode)
        return session

    # -- calls ------------------------------------------------------------------------------

    def _call_info(self, event: ESLEvent, transport: Transport) -> CallInfo:
        raw_route = event.variable(self.settings.route_variable) or self.settings.default_route
        route, _, query = raw_route.partition("?")
        uid = event.unique_id or ""
        return CallInfo(
            call_id=uid,
            channel=event.get("Channel-Name", ""),
            caller_num=event.get("Caller-Caller-ID-Number", ""),
            caller_name=event.get("Caller-Caller-ID-Name", ""),
            dialed=event.get("Caller-Destination-Number", ""),
            context=event.get("Caller-Context", ""),
            route=route or self.settings.default_route,
            transport=transport,
            linked_id=event.get("Channel-Call-UUID") or uid,
            accountcode=event.variable("accountcode", ""),
            language=event.variable("default_language") or event.variable("language") or "en",
            params=dict(parse_qsl(query, keep_blank_values=True)),
            device=sofia_device(event.get("Channel-Name", "")),
        )

    def _take_over(self, event: ESLEvent, transport: Transport, esl: ESLClient) -> FreeSwitchCall:
        info = self._call_info(event, transport)
        call = FreeSwitchCall(
            self,
            esl,
            info,
            target=info.call_id if transport == "esl-inbound" else None,
            answered=event.get("Answer-State") == "answered",
        )
        previous = self._calls.get(info.call_id)
        if previous is not None:
            previous._release("handed over again")
        self._calls[info.call_id] = call
        return call

    def _on_park(self, event: ESLEvent) -> None:
        uid = event.unique_id
        if not uid or uid in self._peers or self._stopping:
            # Stopping: callers reparked on the way out are the next daemon's.
            return
        if event.variable("current_application") == "socket":
            # The socket application parks the channel while an outbound socket controls
            # it: that call arrives (or arrived) over its own socket.
            return
        current = self._calls.get(uid)
        if current is not None and not current.released:
            # Parked again while still ours (e.g. after someone's uuid_bridge ended with
            # park_after_bridge): the running handler keeps it.
            return
        call = self._take_over(event, "esl-inbound", self.esl)
        failover = event.variable(FAILOVER_TASK_VARIABLE)
        if failover is not None:
            self._cancel_failover(failover, call.info)
        task = asyncio.create_task(self._serve(call), name=f"fs-call-{uid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_outbound(self, session: ESLOutboundSession) -> None:
        call = self._take_over(session.channel_data, "esl-outbound", session)
        session.set_listener(call._on_event)
        session.on_closed(call._on_socket_closed)
        # Sent with ``myevents`` in the handshake's one write (OUTBOUND_SETUP).
        for command, reply in zip(OUTBOUND_SETUP, session.setup_replies, strict=False):
            if reply.startswith("+OK"):
                continue
            if command.startswith("nixevent"):
                # Harmless: those events keep coming and the call ignores them.
                self._log.info("esl_outbound_nixevent_refused", reply=reply)
            else:
                self._log.warning("esl_outbound_events_refused", reply=reply)
        await self._serve(call)

    async def _serve(self, call: FreeSwitchCall) -> None:
        info = call.info
        bound = self._log.bind(call_id=info.call_id, channel=info.channel, route=info.route)
        bound.info("call_arrived", caller=info.caller_num, dialed=info.dialed, via=info.transport)
        handler = self._handler
        try:
            if handler is not None:
                await handler(call)
        except CallHungUp:
            bound.info("call_handler_ended_by_hangup")
        except Exception:
            bound.exception("call_handler_failed")
        finally:
            await call.hand_back()
            if self._calls.get(info.call_id) is call:
                del self._calls[info.call_id]
            call._forget()
            bound.info("call_released", hung_up=call.hung_up)

    def _cancel_failover(self, task_id: str, info: CallInfo) -> None:
        """Drop the dialplan's scheduled transfer to the failover (see the module doc): the
        call is ours now. Sent without waiting: the caller's first command need not wait for
        this reply. Only a task id is ever sent: ``sched_del <name>`` would drop every task
        of that group, a ``sched_hangup`` of the admin's among them."""
        if not task_id.isdigit():
            self._log.warning(
                "failover_task_not_an_id",
                call_id=info.call_id,
                variable=FAILOVER_TASK_VARIABLE,
                value=task_id,
            )
            return
        try:
            reply = self.esl.api_nowait(f"sched_del {task_id}")
        except PBXError as exc:
            # The caller goes to the failover when the task runs: better than silence.
            self._log.warning("failover_not_cancelled", call_id=info.call_id, error=str(exc))
            return

        def check(done: asyncio.Future[ESLMessage]) -> None:
            if done.cancelled():
                return
            error = done.exception()
            text = done.result().body_text.strip() if error is None else str(error)
            if text != "+OK Deleted: 1":
                # Already run (the caller waited parked past its delay), the link dropped,
                # or a FreeSWITCH without sched_del: the call is handled all the same.
                self._log.info("failover_not_cancelled", call_id=info.call_id, reply=text)

        reply.add_done_callback(check)

    # -- events -----------------------------------------------------------------------------

    def _publish(self, event: PBXEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                self._log.exception("pbx_listener_failed", event_type=type(event).__name__)

    def _channel_gone(self, uid: str, channel: str, cause: HangupCause) -> None:
        """Publish ChannelHungUp once per channel (socket and inbound may both report it)."""
        seen = self._hung_up_seen
        if not uid or uid in seen:
            return
        seen[uid] = None
        if len(seen) > _MAX_HUNG_UP_REMEMBERED:
            seen.popitem(last=False)
        self._publish(ChannelHungUp(channel=channel, call_id=uid, cause=cause))

    def _device_in_use(self, uid: str, channel: str, in_use: bool) -> None:
        """FreeSWITCH has no device states: a SIP user's device is in use while it has a
        channel (ringing or talking). Published for every name an agent's device may have
        in the config: ``user/1001`` and the Asterisk-style ``PJSIP/1001`` and ``SIP/1001``
        (which :func:`fs_dial_targets` dials as ``user/1001``)."""
        if in_use:
            match = _SOFIA_USER.fullmatch(channel)
            if match is None or uid in self._channel_user:
                return
            user = match[1]
            self._channel_user[uid] = user
            uids = self._user_channels.setdefault(user, set())
            uids.add(uid)
            if len(uids) > 1:
                return
        else:
            user = self._channel_user.pop(uid, "")
            uids = self._user_channels.get(user, set())
            uids.discard(uid)
            if not user or uids:
                return
            del self._user_channels[user]
        self._publish_user_state(user, "INUSE" if in_use else "NOT_INUSE")

    def _publish_user_state(self, user: str, state: str) -> None:
        for device in (f"user/{user}", f"PJSIP/{user}", f"SIP/{user}"):
            self._publish(DeviceStateChanged(device=device, state=state))

    def _on_registration(self, event: ESLEvent, *, registered: bool) -> None:
        """mod_sofia's registrations: a user who registers can be called again (in use or
        not, as their channels say); one whose registration goes (unregister, expiry) is
        unreachable once FreeSWITCH has no contact left for them (a phone may register
        from several places)."""
        user = event.get("from-user") or event.get("user") or ""
        if not user or not _SIP_USER.fullmatch(user):
            return
        if registered:
            self._publish_user_state(user, "INUSE" if user in self._user_channels else "NOT_INUSE")
            return
        host = event.get("from-host") or event.get("host") or ""
        task = asyncio.create_task(self._check_registered(user, host), name=f"fs-reg-{user}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` beside the event handling that asks for it (an API command whose
        answer nothing waits for), kept until done."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def set_lamp(self, name: str, state: LampState) -> None:
        """A ``PRESENCE_IN`` event (``sendevent``) for ``name`` (``user@domain``): mod_sofia
        notifies the phones whose BLF keys watch it (dialog state: ``early`` flashes,
        ``confirmed`` lights, ``terminated`` puts out)."""
        _check_line("lamp name", name)
        answer, status = _PRESENCE[state]
        headers = [
            ("proto", "sip"),
            ("from", name),
            ("login", name),
            ("status", status),
            ("rpid", "unknown"),
            ("event_type", "presence"),
            ("alt_event_type", "dialog"),
            ("Presence-Call-Direction", "outbound"),
            ("answer-state", answer),
        ]
        reply = await self.esl.command("sendevent PRESENCE_IN", headers)
        if not reply.startswith("+OK"):
            raise ActionFailed(f"FreeSWITCH refused sendevent PRESENCE_IN: {reply}", reply)

    async def set_message_lamp(self, mailbox: str, new: int, old: int) -> None:
        """A ``MESSAGE_WAITING`` event (``sendevent``): mod_sofia notifies the phones
        subscribed to ``sip:<mailbox>``. The counts are kept here to answer the
        ``MESSAGE_QUERY`` of a phone registering later (as mod_voicemail does for its
        boxes)."""
        _check_line("mailbox", mailbox)
        self._lamps[mailbox] = (new, old)
        await self._send_lamp(mailbox, new, old)

    async def _send_lamp(self, mailbox: str, new: int, old: int) -> None:
        headers = [
            ("MWI-Messages-Waiting", "yes" if new else "no"),
            ("MWI-Message-Account", f"sip:{mailbox}"),
            ("MWI-Voice-Message", f"{new}/{old} (0/0)"),
        ]
        reply = await self.esl.command("sendevent MESSAGE_WAITING", headers)
        if not reply.startswith("+OK"):
            raise ActionFailed(f"FreeSWITCH refused sendevent MESSAGE_WAITING: {reply}", reply)

    def _on_message_query(self, event: ESLEvent) -> None:
        account = event.get("Message-Account") or ""
        mailbox = account.removeprefix("sip:")
        counts = self._lamps.get(mailbox)
        if counts is None:
            return  # not one of ours (mod_voicemail's, say)

        async def answer() -> None:
            try:
                await self._send_lamp(mailbox, *counts)
            except PBXError as exc:
                self._log.warning("message_lamp_not_sent", mailbox=mailbox, error=str(exc))

        task = asyncio.create_task(answer(), name=f"fs-mwi-{mailbox}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check_registered(self, user: str, host: str) -> None:
        target = f"*/{user}@{host}" if host and _SIP_USER.fullmatch(host) else f"*/{user}"
        try:
            contact = await self.esl.api(f"sofia_contact {target}", check=False)
        except (PBXError, ESLProtocolError) as exc:
            self._log.warning("registration_check_failed", user=user, error=str(exc))
            return
        if contact.strip().startswith("error/user_not_registered"):
            self._publish_user_state(user, "UNAVAILABLE")

    def user_not_registered(self, device: str) -> None:
        """An originate to ``device`` failed with USER_NOT_REGISTERED: unreachable until
        mod_sofia says it registered (the driver may have started after it unregistered)."""
        match = _USER_DEVICE.fullmatch(device)
        if match is not None:
            self._publish_user_state(match[1], "UNAVAILABLE")

    def _on_inbound_event(self, event: ESLEvent) -> None:
        name = event.name
        if name in ("HEARTBEAT", "BACKGROUND_JOB"):
            return
        if name == "MESSAGE_QUERY":
            self._on_message_query(event)
            return
        if name == "CUSTOM":
            subclass = event.get("Event-Subclass")
            if subclass == CONFERENCE_SUBCLASS:
                name = event.get("Conference-Name", "")
                conference = self._conferences.get(name)
                ringing = self._ringing_rooms.get(name)
                if (
                    ringing is not None
                    and event.get("Action") == "add-member"
                    and event.unique_id != ringing.uuid
                ):
                    ringing._someone_joined(name)
                if conference is not None:
                    conference._on_event(event)
                elif (member := self._calls.get(event.unique_id or "")) is not None:
                    member._room_member(event)
            elif subclass == REGISTERED or subclass in UNREGISTERED:
                self._on_registration(event, registered=subclass == REGISTERED)
            return
        uid = event.unique_id or ""
        if name in ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"):
            self._device_in_use(uid, event.get("Channel-Name", ""), name == "CHANNEL_CREATE")
        if uid in self._spies:
            self._spies[uid]._on_event(event)
            if name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
                del self._spies[uid]
        if name == "CHANNEL_HANGUP_COMPLETE":
            self._channel_gone(
                uid,
                event.get("Channel-Name", ""),
                HangupCause.from_name(event.get("Hangup-Cause", "")),
            )
        call = self._calls.get(uid)
        if name == "CHANNEL_PARK" and (call is None or call.released):
            self._on_park(event)
            return
        if call is not None:
            if call.events_from_inbound:
                call._on_event(event)
            return
        peers = self._peers
        dialing = peers.get(uid)
        # Only a running dial adopts a leg, and a running dial's own legs are in ``peers``:
        # with none, an event about a stranger's channel needs no more reading.
        if dialing is None and peers:
            other = event.get("Other-Leg-Unique-ID")
            candidate = self._calls.get(other) if other else None
            if candidate is not None and candidate._adopt_peer(uid):
                dialing = candidate
                peers[uid] = candidate
        if dialing is not None:
            dialing._on_peer_event(event)

    def _on_esl_lost(self, reason: str) -> None:
        self._publish(PBXDisconnected(pbx=self.name, reason=reason))
        for call in list(self._calls.values()):
            if call.events_from_inbound:
                call._link_lost(reason)

    async def _resync(self) -> None:
        """After every (re)connection: check our calls against FreeSWITCH's own state."""
        self._publish(PBXConnected(pbx=self.name))
        known = [c for c in self._calls.values() if c.events_from_inbound]
        # Only channels seen before the snapshot was asked for: newer ones may be missing.
        using_devices = list(self._channel_user)
        try:
            snapshots = await self.channels()
        except (PBXError, ESLProtocolError) as exc:
            self._log.warning("resync_failed", error=str(exc))
            return
        alive = {snap.call_id: snap for snap in snapshots}
        for uid in [uid for uid in using_devices if uid not in alive]:
            # Hung up while we were disconnected: its device is free again.
            self._device_in_use(uid, "", False)
        for listed in snapshots:
            # Phones in use already (an agent still talking on a call left to FreeSWITCH by
            # the previous daemon), unless their hang-up came in while the answer was on its
            # way.
            if listed.call_id not in self._hung_up_seen:
                self._device_in_use(listed.call_id, listed.channel, True)
        for call in known:
            if call.hung_up or call.released:
                continue
            snap = alive.get(call.info.call_id)
            if snap is None:
                self._log.info("call_vanished_while_disconnected", call_id=call.info.call_id)
                call._on_hangup("")
                self._channel_gone(call.info.call_id, call.info.channel, HangupCause.UNSPECIFIED)
            else:
                await call._resync(snap, alive)
        for conference in {id(c): c for c in self._conferences.values()}.values():
            conference._resync(snapshots)
        adopted = 0
        orphans, self._orphans = self._orphans, set()
        if self.settings.adopt_parked and not self._stopping:
            for snap in snapshots:
                if snap.call_id in self._calls:
                    continue
                # Parked and untouched, or ours until the link went down under the call (its
                # last application's name stays in show channels, so it is not "park").
                orphan = snap.call_id in orphans and snap.bridged_to is None
                if snap.application == "park" or orphan:
                    adopted += await self._adopt(snap)
        if self.settings.adopt_parked and not self._stopping and not self._looked_for_left:
            self._looked_for_left = True
            for snap in snapshots:
                if (
                    snap.call_id not in self._calls
                    and snap.application in _LEFT_IN
                    and not (snap.bridged_to or snap.room or snap.room_leg)
                ):
                    adopted += await self._take_back(snap)
        self._log.info("resynced", channels=len(snapshots), calls=len(self._calls), adopted=adopted)

    async def _adopt(self, snap: ChannelSnapshot) -> int:
        uid = snap.call_id
        if uid in self._peers:
            return 0
        try:
            text = await self.esl.api(f"uuid_dump {uid} json")
            data = json.loads(text)
        except (PBXError, ValueError) as exc:
            self._log.info("adopt_skipped", call_id=uid, reason=str(exc))
            return 0
        if not isinstance(data, dict) or uid in self._calls:
            return 0
        event = ESLEvent.from_pairs((str(k), str(v)) for k, v in data.items())
        self._log.info("adopting_parked_channel", call_id=uid, channel=snap.channel)
        self._on_park(event)
        return 1

    async def _take_back(self, snap: ChannelSnapshot) -> int:
        """A caller an earlier daemon took from park and left in a prompt or a queue's
        music, alone (it stopped while the event socket was down, so it could not park
        them afresh; their failover was cancelled when it took them): sent through their
        extension again, as that daemon's stop would have, so that they park and are
        taken. Only channels that came through the park dialplan (the failover task
        variable and the route variable set) and are not at the failover already."""
        uid = snap.call_id
        try:
            data = json.loads(await self.esl.api(f"uuid_dump {uid} json"))
        except (PBXError, ValueError):
            return 0
        if not isinstance(data, dict):
            return 0
        event = ESLEvent.from_pairs((str(k), str(v)) for k, v in data.items())
        dialed = event.get("Caller-Destination-Number", "")
        context = event.get("Caller-Context", "")
        if (
            event.variable(FAILOVER_TASK_VARIABLE) is None
            or event.variable(self.settings.route_variable) is None
            or event.variable("current_application") == "socket"
            or dialed == self.settings.failover_extension
            or not (_TOKEN.fullmatch(dialed) and _TOKEN.fullmatch(context))
            # In a bridge: only a ring to an agent that never put them through (it rang
            # out with nobody left to take them on); a caller talking stays as they are.
            or (
                snap.application == "bridge"
                and event.get("Caller-Channel-Bridged-Time", "0") not in ("", "0")
            )
        ):
            return 0
        try:
            text = await self._send_through_extension(uid, dialed, context)
        except PBXError as exc:
            self._log.info("left_caller_not_taken_back", call_id=uid, error=str(exc))
            return 0
        if text.startswith("-ERR"):
            self._log.info("left_caller_not_taken_back", call_id=uid, reply=text.strip())
            return 0
        self._log.info("left_caller_taken_back", call_id=uid, channel=snap.channel)
        return 1

    async def _send_through_extension(self, uid: str, dialed: str, context: str) -> str:
        """``uuid_transfer`` a caller to ``dialed`` in ``context`` (the park dialplan parks
        them afresh), after ``uuid_break all``: applications queued for them would still
        run after the transfer, ahead of the extension. Returns the transfer's reply
        (``-ERR ...`` when refused)."""
        timeout = self.settings.command_timeout
        await self.esl.api(f"uuid_break {uid} all", timeout=timeout, check=False)
        return await self.esl.api(
            f"uuid_transfer {uid} {dialed} XML {context}", timeout=timeout, check=False
        )

    async def _uuid_of(self, channel: str) -> str | None:
        for call in self._calls.values():
            if call.info.channel == channel:
                return call.info.call_id
        for snap in await self.channels():
            if snap.channel == channel:
                return snap.call_id
        return None


_ROOM_LEG: Final = re.compile(
    re.escape(ROOM_TECH) + r"(?P<room>[A-Za-z0-9][A-Za-z0-9_-]{1,63})@default-[ab]"
)
"""Either half of a room device's loopback channel (``loopback/app=conference:<room>@default-a``
and ``-b``)."""


def _room_of(row: Mapping[str, str]) -> str:
    """The conference room a ``show channels`` row sits in ('' when none): the
    ``conference`` application's ``<room>@<profile>+flags{...}``."""
    data = row.get("application_data", "")
    if row.get("application") != "conference" or not data:
        return ""
    return data.split()[0].partition("@")[0]


_LEFT_IN: Final = frozenset(
    {"playback", "endless_playback", "play_and_get_digits", "sleep", "bridge"}
)
"""The applications a caller an earlier daemon left alone may be in: its prompts, a
queue's music, a ring to an agent (never a room, a recording...)."""


def _json_rows(text: str) -> list[dict[str, str]]:
    """The rows of a ``show ... as json`` answer (``{"row_count": 0}`` has none)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ESLProtocolError(f"garbled 'show ... as json' answer: {exc}") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return []
    return [
        {str(k): "" if v is None else str(v) for k, v in row.items()}
        for row in rows
        if isinstance(row, dict)
    ]


@dataclass(slots=True)
class _Dial:
    """What we learn about one ``Call.dial`` while it runs."""

    on_answer: Callable[[str], None] | None
    legs: set[str]
    app_uuid: str = ""
    peer_uuid: str | None = None
    answered_at: float | None = None
    notified: bool = False
    peer_cause: str = ""
    fail_cause: str = ""
    unbridged: bool = False
    names: dict[str, str] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the device answered (for hold, which needs the bridged leg)."""
    conference: FreeSwitchConference | None = None
    """Set by :meth:`FreeSwitchCall.conference`: once the bridge ends the caller joins it."""
    wait_bridge: bool = False
    """The device hears an announcement first: it counts as answered once the caller is
    bridged to it (CHANNEL_BRIDGE), not when it picks up (CHANNEL_ANSWER)."""
    picked_up: bool = False
    """With ``wait_bridge``: a leg picked up (the announcement plays to it)."""

    @property
    def peer_channel(self) -> str | None:
        if self.peer_uuid is None:
            return None
        return self.names.get(self.peer_uuid) or self.peer_uuid


class FreeSwitchCall:
    """One caller under our control (implements :class:`callcenter.pbx.interface.Call`)."""

    def __init__(
        self,
        driver: FreeSwitchDriver,
        esl: ESLClient,
        info: CallInfo,
        *,
        target: str | None,
        answered: bool,
    ) -> None:
        self._driver = driver
        self._settings = driver.settings
        self._esl = esl
        self._info = info
        self._uuid = info.call_id
        # sendmsg target: the uuid on the inbound socket, None on the call's own socket.
        self._target = target
        #: False while the call has its own outbound socket (which carries its events).
        self.events_from_inbound = target is not None
        self._answered = answered
        self._hangup = asyncio.Event()
        self._cause = HangupCause.UNSPECIFIED
        self._released = ""
        self._apps: dict[str, asyncio.Future[ESLEvent]] = {}
        self._dial: _Dial | None = None
        #: The handler was cancelled (the daemon stopping) while the caller talked to a
        #: bridged peer: hand_back leaves the bridge up.
        self._left_in_bridge = False
        #: The same with the call in a conference room (:meth:`wait_in_room`): hand_back
        #: leaves it there.
        self._left_in_room = False
        self._moh_app: str | None = None
        self._moh_class = "default"
        self._held: str | None = None
        self._recording: str | None = None
        self._playback_status = ""
        self._language = info.language or "en"
        self._dtmf: collections.deque[str] = collections.deque(maxlen=_MAX_DTMF_KEPT)
        #: Keys pressed over the hold music (None: no music plays).
        self._music_keys: MusicKeys | None = None
        #: Channel variables we set with ``set`` (so each is sent only when it changes).
        self._vars: dict[str, str] = {}
        #: Applications whose completion is still awaited after the caller hung up.
        self._outlive_hangup: set[str] = set()
        #: The Event-UUID of the ``conference`` application the caller runs now (a room
        #: of ours): it outlives a lost event socket, as a dial does.
        self._room_app = ""
        #: Applications (prompts, key reads) that ran when the event socket went down:
        #: their completion may have come while it was, and is settled after the resync.
        self._across: set[str] = set()
        self._settling: asyncio.Task[None] | None = None
        self._handed_back = False
        self._spy_task: asyncio.Task[None] | None = None
        self._spy: FreeSwitchSpySession | None = None
        #: The room :meth:`wait_in_room` keeps the call in, and its Member-ID once known.
        self._room: tuple[str, str] | None = None
        self._room_digits: Callable[[str], None] | None = None
        self._room_joined = asyncio.Event()
        self._log = log.bind(call_id=info.call_id, channel=info.channel)

    # -- facts ------------------------------------------------------------------------------

    @property
    def info(self) -> CallInfo:
        return self._info

    @property
    def uuid(self) -> str:
        """The caller channel's Unique-ID."""
        return self._uuid

    @property
    def hung_up(self) -> bool:
        return self._hangup.is_set()

    @property
    def keys_without_command(self) -> bool:
        return self._music_keys is not None

    @property
    def hangup_cause(self) -> HangupCause:
        return self._cause

    @property
    def answered(self) -> bool:
        return self._answered

    @property
    def released(self) -> bool:
        """True once the call left our control (redirected, transferred, socket closed)."""
        return bool(self._released)

    async def wait_hangup(self) -> None:
        await self._hangup.wait()

    # -- commands ---------------------------------------------------------------------------

    def _check(self) -> None:
        if self._released:
            raise CallHungUp(f"{self._info.channel} left our control ({self._released})")
        if self._hangup.is_set():
            raise CallHungUp(f"{self._info.channel} has hung up")

    def _long(self, expected: float) -> float:
        return self._settings.prompt_timeout + expected + LONG_COMMAND_MARGIN

    async def _send_app(
        self,
        app: str,
        arg: str = "",
        *,
        track: bool,
        outlive_hangup: bool = False,
        hold: bool = False,
    ) -> tuple[str, asyncio.Future[ESLEvent] | None]:
        """Queue ``app`` on the channel; with ``track`` its completion can be awaited.

        ``outlive_hangup``: the completion is still awaited for a while after a hang-up (it
        carries the result, e.g. a recording's length). Registered before the command goes
        out, since the hang-up may be read in the same packet as the command's reply.

        ``hold``: sent on the inbound socket and its reply gone with the link, it may run at
        FreeSWITCH, or not: it is held as one that ran when the link went instead of
        failing (``ReplyLost``). For what the resync can tell from the channel list (a room:
        the channel sits in it or not; a ring: its legs are up or not) and what precedes
        them; not for a prompt (taken as played, a caller would miss a menu never played)
        nor what must be known to have run (an answer, the music)."""
        self._check()
        event_uuid = str(uuid.uuid4())
        future: asyncio.Future[ESLEvent] | None = None
        if track:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)
            self._apps[event_uuid] = future
            if outlive_hangup:
                self._outlive_hangup.add(event_uuid)
        try:
            await self._esl.sendmsg(
                self._target,
                app,
                arg,
                event_uuid=event_uuid,
                timeout=self._settings.command_timeout,
            )
        except CallHungUp:
            self._apps.pop(event_uuid, None)
            self._outlive_hangup.discard(event_uuid)
            self._on_hangup("")
            raise
        except ReplyLost:
            if future is None or not hold or not self.events_from_inbound:
                self._apps.pop(event_uuid, None)
                self._outlive_hangup.discard(event_uuid)
                raise
            if not future.done():
                self._across.add(event_uuid)
                self._log.info("application_sent_as_the_link_went", app=app, uuid=event_uuid)
        except BaseException:
            self._apps.pop(event_uuid, None)
            self._outlive_hangup.discard(event_uuid)
            raise
        return event_uuid, future

    async def _await_app(
        self, event_uuid: str, future: asyncio.Future[ESLEvent], limit: float, app: str
    ) -> ESLEvent:
        try:
            return await reply_within(future, limit)
        except TimeoutError:
            raise PBXTimeoutError(
                f"{app} on {self._info.channel} did not complete within {limit:.1f}s"
            ) from None
        finally:
            self._apps.pop(event_uuid, None)

    async def _run_app(self, app: str, arg: str, limit: float, *, hold: bool = False) -> ESLEvent:
        event_uuid, future = await self._send_app(app, arg, track=True, hold=hold)
        assert future is not None
        return await self._await_app(event_uuid, future, limit, app)

    async def _run_room_app(self, arg: str, limit: float) -> ESLEvent:
        """``conference <arg>`` until the call leaves the room. A lost event socket does not
        end it: the caller stays in the room, and the resync after the reconnection ends it
        if they left meanwhile."""
        event_uuid, future = await self._send_app("conference", arg, track=True, hold=True)
        assert future is not None
        self._room_app = event_uuid
        # Sent as the link went: the resync settles it as a room (it shows in the channel
        # list while the caller is in it), not as a prompt.
        self._across.discard(event_uuid)
        try:
            return await self._await_app(event_uuid, future, limit, "conference")
        except asyncio.CancelledError:
            completed = future.done() and not future.cancelled()
            if not (completed or self.hung_up):
                # Cancelled with the call in its room (a daemon stopping under an agent's
                # own dial): at the stop it stays there, as a bridged caller does.
                self._left_in_room = True
            raise
        finally:
            if self._room_app == event_uuid:
                self._room_app = ""

    async def _api(self, cmd: str) -> str:
        return await self._esl.api(cmd, timeout=self._settings.command_timeout, check=False)

    async def _ensure_vars(self, values: Mapping[str, str]) -> None:
        """Set each value that differs from what we set last: one ``set``, or one
        ``multiset`` for several (each application costs a command, its reply and a ~5 KB
        CHANNEL_EXECUTE_COMPLETE). Queued behind nothing and ahead of the next application:
        no need to await completion."""
        changed = {n: v for n, v in values.items() if self._vars.get(n) != v}
        if not changed:
            return
        items = [f"{name}={value}" for name, value in changed.items()]
        delim = _multiset_delimiter(items) if len(items) > 1 else None
        if delim is None:
            for item in items:
                await self._send_app("set", item, track=False)
        else:
            await self._send_app("multiset", f"^^{delim}" + delim.join(items), track=False)
        self._vars.update(changed)

    async def answer(self) -> None:
        self._check()
        if self._answered:
            return
        await self._stop_moh()
        await self._run_app("answer", "", self._settings.command_timeout)
        self._answered = True

    async def play(self, prompts: Sequence[str], *, interrupt_digits: str = "") -> str:
        self._check()
        _check_digits(interrupt_digits)
        for prompt in prompts:
            _check_line("prompt", prompt)
        await self._stop_moh()
        if not prompts:
            return ""
        await self._ensure_vars({"playback_terminators": interrupt_digits or "none"})
        for prompt in prompts:
            digit = await self._interruptible("playback", prompt, interrupt_digits, prompt)
            if digit:
                return digit
        return ""

    async def _interruptible(self, app: str, arg: str, interrupt_digits: str, what: str) -> str:
        """Run a playing application; the digit that broke it (``""``: it played out)."""
        self._playback_status = ""
        self._dtmf.clear()
        done = await self._run_app(app, arg, self._long(0.0))
        response = done.get("Application-Response", "")
        if response == "FILE NOT FOUND":
            # A missing sound file is a config problem, not a reason to drop the caller.
            self._log.warning("prompt_missing", prompt=what)
            return ""
        if response not in ("FILE PLAYED", "", "_none_"):
            if self.hung_up or done.get("Answer-State") == "hangup":
                raise CallHungUp(f"{self._info.channel} hung up during {what}")
            self._log.warning("prompt_failed", prompt=what, response=response)
            return ""
        if not interrupt_digits or self._playback_status == "done":
            return ""
        # playback_terminator_used is never cleared by FreeSWITCH: it may be an older one.
        digit = done.variable("playback_terminator_used", "")
        pressed = [d for d in self._dtmf if d in interrupt_digits]
        if self._playback_status == "break":
            # A digit queued before the playback started breaks it at once, with no DTMF
            # event during it: trust the variable then.
            if digit and digit in interrupt_digits:
                return digit
            return pressed[0] if pressed else ""
        # No PLAYBACK_STOP came (an outbound socket that did not subscribe to it): a
        # terminator pressed while the application ran is the one that broke it.
        if digit and digit in pressed:
            return digit
        return pressed[0] if pressed else ""

    async def say(self, kind: SayKind, value: str, *, interrupt_digits: str = "") -> str:
        self._check()
        _check_digits(interrupt_digits)
        if value == "":
            return ""
        variables = {"playback_terminators": interrupt_digits or "none"}
        if kind == "digits":
            if not _SAY_DIGITS.fullmatch(value):
                raise CommandFailed(f"cannot say {value!r} as digits")
            what = f"number iterated {value}"
        elif kind == "number":
            if not _SAY_NUMBER.fullmatch(value):
                raise CommandFailed(f"cannot say {value!r} as a number")
            what = f"number pronounced {value}"
        else:
            epoch, say_type = _say_datetime(kind, value)
            what = f"{say_type} pronounced {epoch}"
            # The epoch is built in UTC: said in UTC the caller hears exactly ``value``.
            variables["timezone"] = "UTC"
        await self._stop_moh()
        await self._ensure_vars(variables)
        module = re.split("[_-]", self._language)[0].lower()
        return await self._interruptible("say", f"{module} {what}", interrupt_digits, what)

    async def _wait_told(self, seconds: float) -> list[str]:
        """The files that tell an agent the caller's wait (``dial``'s ``report_wait``): the
        number as ``say_string`` renders it in the call's language, between
        :data:`REPORT_HOLD_PROMPT` and the unit; none when FreeSWITCH cannot say it."""
        number, unit = reported_wait(seconds)
        module = re.split("[_-]", self._language)[0].lower()
        said = self._driver._said.get((module, number))
        if said is None:
            text = (
                await self._api(f"say_string {module}.wav {module} number pronounced ~{number}")
            ).strip()
            said = text.split("!") if text and not text.startswith("-") else []
            if not said or not all(ANNOUNCE_FILE.fullmatch(part) for part in said):
                self._log.warning("wait_not_said", number=number, language=module, reply=text[:80])
                return []
            self._driver._said[(module, number)] = said
        return [REPORT_HOLD_PROMPT, *said, unit]

    async def set_language(self, language: str) -> None:
        if not _LANGUAGE.fullmatch(language):
            raise CommandFailed(f"invalid language {language!r}")
        await self.set_variable("default_language", language)
        self._language = language

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
        _check_digits(end_digits)
        self._check()
        await self._stop_moh()
        full = f"{path}.{file_format}"
        if beep:
            await self._ensure_vars({"playback_terminators": "none"})
            await self._run_app("playback", _BEEP, self._long(0.0))
        await self._ensure_vars({"playback_terminators": end_digits or "none"})
        arg = f"{full} {max(1, math.ceil(max_seconds))}"
        if silence_seconds > 0:
            arg += f" {_SILENCE_THRESHOLD} {max(1, math.ceil(silence_seconds))}"
        self._dtmf.clear()
        started = time.monotonic()
        # The completion, which carries the recorded length, comes just after a hang-up.
        event_uuid, future = await self._send_app("record", arg, track=True, outlive_hangup=True)
        assert future is not None
        done: ESLEvent | None
        try:
            done = await self._await_app(event_uuid, future, self._long(max_seconds), "record")
        except CallHungUp:
            done = None
        finally:
            self._outlive_hangup.discard(event_uuid)
        return self._record_result(full, done, end_digits, time.monotonic() - started)

    def _record_result(
        self, full: str, done: ESLEvent | None, end_digits: str, elapsed: float
    ) -> RecordResult:
        # Without FreeSWITCH's record_ms (the completion got lost) the wall time has to do.
        seconds = elapsed
        if done is not None:
            millis = done.variable("record_ms", "")
            if millis.isdigit():
                seconds = int(millis) / 1000
            else:
                # Neither (a completion settled after an event-socket outage): the wall time.
                with contextlib.suppress(ValueError):
                    seconds = float(done.variable("record_seconds", "") or seconds)
        if self.hung_up:
            return RecordResult(full, seconds, "hangup")
        response = done.get("Application-Response", "") if done is not None else ""
        if done is None or any(w in response.lower() for w in ("fail", "error", "-err")):
            self._log.warning("record_failed", path=full, response=response)
            return RecordResult(full, 0.0, "error")
        digit = done.variable("playback_terminator_used", "")
        pressed = [d for d in self._dtmf if d in end_digits]
        if pressed:
            return RecordResult(full, seconds, "dtmf", digit if digit in pressed else pressed[0])
        return RecordResult(full, seconds, "timeout")

    async def read_digits(
        self,
        prompt: str | None,
        *,
        max_digits: int,
        timeout: float,
        terminator: str = "#",
    ) -> str:
        self._check()
        if max_digits <= 0:
            return ""
        if terminator and (len(terminator) != 1 or terminator not in _DIGITS):
            raise CommandFailed(f"invalid terminator {terminator!r}")
        if prompt is not None:
            _check_line("prompt", prompt)
            if " " in prompt:
                raise CommandFailed(
                    f"play_and_get_digits cannot take a prompt with spaces: {prompt!r}"
                )
        if prompt is None and self._music_keys is not None:
            # A link outage meanwhile does not end the read: FreeSWITCH plays the music on,
            # and keys come again once it is back.
            return await self._music_keys.read(max_digits, timeout, terminator, check=self._check)
        await self._stop_moh()
        wait_ms = max(1, int(timeout * 1000))
        var = self._settings.digits_variable
        arg = (
            f"1 {max_digits} 1 {wait_ms} {terminator or 'none'} {prompt or _SILENCE} {_SILENCE} "
            f"{var} {_DIGITS_REGEX} {wait_ms}"
        )
        done = await self._run_app(
            "play_and_get_digits", arg, self._long(timeout * (max_digits + 1))
        )
        if self.hung_up:
            raise CallHungUp(f"{self._info.channel} hung up while entering digits")
        return done.variable(var, "")

    def _moh_source(self, music_class: str) -> str:
        if music_class == "default":
            return self._settings.hold_music
        if music_class == RINGBACK:
            return f"tone_stream://{_RING_TONE};loops=-1"
        return f"local_stream://{music_class}"

    async def start_hold_music(self, music_class: str = "default") -> None:
        if not _MOH_CLASS.fullmatch(music_class):
            raise CommandFailed(f"invalid music class {music_class!r}")
        self._check()
        await self._stop_moh()
        # A terminator left by a prompt would let a key press stop the music.
        await self._ensure_vars({"playback_terminators": "none"})
        # Before the send: a key may come as the music starts, ahead of the reply.
        self._music_keys = MusicKeys()
        try:
            event_uuid, _ = await self._send_app(
                "playback", self._moh_source(music_class), track=True
            )
        except BaseException:
            self._music_keys = None
            raise
        self._moh_app = event_uuid
        self._moh_class = music_class

    async def stop_hold_music(self) -> None:
        self._check()
        await self._stop_moh()

    async def _stop_moh(self) -> None:
        event_uuid = self._moh_app
        if event_uuid is None:
            return
        keys, self._music_keys = self._music_keys, None
        self._moh_app = None
        if keys is not None:
            keys.wake()  # a read of keys over the music ends with it
        future = self._apps.get(event_uuid)
        try:
            text = await self._api(f"uuid_break {self._uuid} all")
        except PBXConnectionError:
            # Not sent (the link is down): the music plays on, for the next stop to break.
            self._moh_app, self._music_keys = event_uuid, keys
            raise
        if text.startswith("-ERR") and "no such channel" in text.lower():
            self._on_hangup("")
            raise CallHungUp(f"{self._info.channel} is gone")
        if future is not None and not future.done():
            # `uuid_break ... all` also flushes the music's playback FreeSWITCH had not started
            # yet, and a flushed application never completes. A no-op queued after the break
            # completes after the music did (if it ran): once it has, stop waiting.
            await self._run_app("set", "callcenter_moh=off", self._settings.command_timeout)
            if not future.done():
                self._log.debug("hold_music_flushed_before_it_started")
        self._apps.pop(event_uuid, None)

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
        targets = fs_dial_targets(device)
        leg_vars = _caller_id_vars(caller_id)
        if caller_name:
            if not CALLER_NAME.fullmatch(caller_name):
                raise CommandFailed(f"invalid caller name {caller_name!r}")
            leg_vars.append(f"origination_caller_id_name={_quote_var(caller_name)}")
        music = hold_music if isinstance(hold_music, str) and hold_music else None
        if music is not None and not _MOH_CLASS.fullmatch(music):
            raise CommandFailed(f"invalid music class {music!r}")
        if announce and not ANNOUNCE_FILE.fullmatch(announce):
            raise CommandFailed(f"invalid announcement {announce!r}")
        self._check()
        if not 0 <= delay <= MAX_DELAY:
            raise CommandFailed(f"invalid delay {delay!r}")
        confirm = [f"silence_stream://{round(delay * 1000)}"] if delay else []
        if announce:
            confirm.append(announce)
        if report_wait is not None:
            confirm += await self._wait_told(report_wait)
        await self._stop_moh()
        ring = max(1, math.ceil(timeout))
        legs = [str(uuid.uuid4()) for _ in targets]
        if confirm:
            played = confirm[0] if len(confirm) == 1 else "file_string://" + "!".join(confirm)
            # Answer confirmation running an application: the answering leg plays the file,
            # then is bridged. originate_timeout would still run during it, so each leg
            # rings for leg_timeout and group_confirm_cancel_timeout stops that at the
            # answer; originate_timeout is only the outer bound.
            values = [
                f"leg_timeout={ring}",
                f"originate_timeout={ring + ANNOUNCE_LIMIT + math.ceil(delay)}",
                "group_confirm_key=exec",
                f"group_confirm_file='playback {played}'",
                "group_confirm_cancel_timeout=true",
            ]
        else:
            values = [f"originate_timeout={ring}"]
        values += ["ignore_early_media=true", *leg_vars]
        if auto_answer:
            values.append(AUTO_ANSWER_VAR)
        dial_string = (
            "{"
            + ",".join(values)
            + "}"
            + ",".join(
                f"[origination_uuid={leg}{_ROOM_LEG_VARS if t.startswith(ROOM_TECH) else ''}]{t}"
                for leg, t in zip(legs, targets, strict=True)
            )
        )
        if music == RINGBACK:
            ringback = _RING_TONE
        elif music is not None:
            ringback = self._moh_source(music)
        else:
            ringback = self._moh_source(self._moh_class) if hold_music else _RING_TONE
        state = _Dial(on_answer, set(legs), wait_bridge=bool(confirm))
        peers = self._driver._peers
        self._dial = state
        for leg in legs:
            peers[leg] = self
        try:
            await self._ensure_vars(
                {
                    "hangup_after_bridge": "false",
                    "continue_on_fail": "true",
                    "instant_ringback": "true",
                    "ringback": ringback,
                }
            )
            event_uuid, future = await self._send_app("bridge", dial_string, track=True, hold=True)
            assert future is not None
            state.app_uuid = event_uuid
            self._across.discard(event_uuid)  # a dial's resync settles it (its legs tell)
            limit = ring + self._settings.max_bridge_seconds + LONG_COMMAND_MARGIN
            complete: ESLEvent | None
            try:
                complete = await self._await_app(event_uuid, future, limit, "bridge")
            except CallHungUp:
                if state.answered_at is None:
                    raise
                complete = None
            result = self._dial_result(device, state, complete)
            if state.conference is not None and result.status is DialStatus.ANSWER:
                result = await self._in_conference(state, state.conference, result)
            return result
        except asyncio.CancelledError:
            if state.answered_at is not None and not self.hung_up:
                self._left_in_bridge = True
            raise
        finally:
            if state.conference is not None:
                state.conference._on_caller_left("dial over")
            self._dial = None
            for leg in state.legs | ({state.peer_uuid} if state.peer_uuid else set()):
                if peers.get(leg) is self:
                    del peers[leg]

    async def _in_conference(
        self, state: _Dial, conference: FreeSwitchConference, result: DialResult
    ) -> DialResult:
        """The agent leg was transferred into the room, which ended the bridge: the caller
        runs ``conference`` through our own sendmsg (so it stays ours) until it leaves."""
        if not self.hung_up and not self._released and result.hung_up_by != "caller":
            limit = self._long(self._settings.max_bridge_seconds)
            with contextlib.suppress(CallHungUp):
                await self._run_app("set", NO_ROOM_KEYS, self._settings.command_timeout, hold=True)
                await self._run_room_app(conference.room, limit)
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

    async def wait_in_room(
        self, room: str, *, on_digit: Callable[[str], None], ringing: bool = False
    ) -> None:
        """``conference <room>@default+flags{nomoh}`` by sendmsg (no key bindings:
        ``conference_controls=none``; no music while alone) until kicked
        (:meth:`leave_room`) or the hang-up; keys from the channel's DTMF events.
        ``ringing``: once in, ``conference <room> play`` the ring tone to this member
        alone, stopped (``conference <room> stop all <member>``) as another joins."""
        if not _ROOM.fullmatch(room):
            raise CommandFailed(f"invalid conference room {room!r}")
        self._check()
        await self._stop_moh()
        self._room = (room, "")
        self._room_joined = asyncio.Event()
        self._room_digits = on_digit
        if ringing:
            self._driver._ringing_rooms[room] = self
        try:
            await self._run_app("set", NO_ROOM_KEYS, self._settings.command_timeout, hold=True)
            # nomoh: alone in the room (between callers) the agent hears silence, not the
            # profile's moh-sound, as on Asterisk.
            await self._run_room_app(
                f"{room}@default+flags{{nomoh}}", self._long(self._settings.max_bridge_seconds)
            )
        finally:
            self._room = None
            self._room_digits = None
            if self._driver._ringing_rooms.get(room) is self:
                del self._driver._ringing_rooms[room]
        if self.hung_up:
            raise CallHungUp(f"{self._info.channel} hung up in room {room}")

    async def leave_room(self) -> None:
        """``conference <room> kick <member id>`` (the id from its add-member event)."""
        if self._room is None or self.hung_up:
            return
        room, member = self._room
        if not member:
            # Not seen joining yet: its add-member event is a moment away.
            joined = self._room_joined
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.command_timeout):
                    await joined.wait()
            if self._room is None or not self._room[1]:
                self._log.info("room_leave_without_member", room=room)
                return
            member = self._room[1]
        text = await self._driver.esl.api(f"conference {room} kick {member}", check=False)
        if not text.startswith("+OK"):
            # Gone from the room already (hung up, or kicked a moment ago).
            self._log.info("room_leave_refused", room=room, reply=text.strip())

    def _room_member(self, event: ESLEvent) -> None:
        """A ``conference::maintenance`` event of this call's own channel."""
        if (
            self._room is not None
            and event.get("Action") == "add-member"
            and event.get("Conference-Name") == self._room[0]
        ):
            self._joined_room(event.get("Member-ID", ""))

    def _joined_room(self, member: str) -> None:
        """The call is in its room (:meth:`wait_in_room`) as ``member``: it may be kicked,
        and hears the ring tone if it rings there alone."""
        assert self._room is not None
        self._room = (self._room[0], member)
        self._room_joined.set()
        if self._driver._ringing_rooms.get(self._room[0]) is self:
            self._driver.in_background(self._ring(*self._room), f"fs-ring-{self._uuid}")

    def _someone_joined(self, room: str) -> None:
        """Another member came into the room this call rings alone in: the ring stops."""
        if self._driver._ringing_rooms.get(room) is self:
            del self._driver._ringing_rooms[room]
            if self._room is not None and self._room[1]:
                self._driver.in_background(
                    self._stop_ring(*self._room), f"fs-ring-stop-{self._uuid}"
                )

    async def _ring(self, room: str, member: str) -> None:
        command = f"conference {room} play tone_stream://{_RING_TONE};loops=-1 {member}"
        await self._room_command(command, "ringback_not_played")
        if self._driver._ringing_rooms.get(room) is not self:
            # Someone came in while the ring was being started.
            await self._stop_ring(room, member)

    async def _stop_ring(self, room: str, member: str) -> None:
        await self._room_command(f"conference {room} stop all {member}", "ringback_not_stopped")

    async def _room_command(self, command: str, failure: str) -> None:
        try:
            text = await self._driver.esl.api(command, check=False)
        except (PBXError, ESLProtocolError) as exc:
            self._log.info(failure, error=str(exc))
            return
        if text.startswith("-ERR"):
            self._log.info(failure, reply=text.strip()[:80])

    async def conference(self, room: str, *, invite: Sequence[str] = ()) -> FreeSwitchConference:
        """``uuid_transfer <agent leg> conference:<room> inline``: the bridge ends with the
        agent in the room, then the caller runs ``conference <room>`` by sendmsg (inside the
        running :meth:`dial`); invited devices are originated into ``&conference(<room>)``."""
        if not _ROOM.fullmatch(room):
            raise CommandFailed(f"invalid conference room {room!r}")
        for device in invite:
            fs_dial_targets(device)
        self._check()
        state = self._dial
        if state is not None and not state.answered.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.command_timeout):
                    await state.answered.wait()
        peer = self._bridged_peer()
        if state is None or peer is None:
            raise CommandFailed(f"{self._info.channel} is not bridged: no conference")
        if state.conference is not None:
            raise CommandFailed(f"{self._info.channel} is already in a conference")
        conference = FreeSwitchConference(self._driver, room, self._uuid)
        conferences = self._driver._conferences
        if room in conferences or conference.side_room in conferences:
            raise CommandFailed(f"conference room {room!r} is in use")
        state.conference = conference
        conferences[room] = conference
        conferences[conference.side_room] = conference
        try:
            await self._api_ok(f"uuid_setvar {peer} {NO_ROOM_KEYS.replace('=', ' ')}")
            await self._api_ok(f"uuid_transfer {peer} conference:{room} inline")
        except BaseException:
            state.conference = None
            conference._on_caller_left("transfer failed")
            raise
        self._log.info("conference_started", room=room, agent=peer)
        await conference._wait_caller_joined(self._long(0.0))
        for device in invite:
            await conference.invite(device)
        return conference

    def _dial_result(self, device: str, state: _Dial, complete: ESLEvent | None) -> DialResult:
        ended = time.monotonic()
        disposition = complete.variable("originate_disposition", "") if complete else ""
        if state.answered_at is None and dial_status_for(disposition) == DialStatus.ANSWER:
            # Answered while our events were lost (a reconnection): no talk time known.
            state.answered_at = ended
            state.peer_uuid = state.peer_uuid or (
                complete.variable("bridge_uuid") if complete else None
            )
        if state.answered_at is None:
            if self.hung_up:
                raise CallHungUp(f"{self._info.channel} hung up while {device} rang")
            cause = disposition or state.fail_cause
            status = dial_status_for(cause)
            if state.picked_up:
                # Picked up, then left during the announcement: as a ring nobody took.
                status = DialStatus.NOANSWER
            self._log.info("dial_failed", device=device, status=status.value, cause=cause)
            if cause == "USER_NOT_REGISTERED":
                self._driver.user_not_registered(device)
            return DialResult(
                status,
                peer_channel=state.peer_channel,
                cause=HangupCause.from_name(cause) if cause else HangupCause.UNSPECIFIED,
            )
        self._notify_answer(state)
        talk = max(0.0, ended - state.answered_at)
        by: HungUpBy
        if state.unbridged:
            by = "system"
        elif self.hung_up:
            by = "caller"
        else:
            by = "peer"
        cause = state.peer_cause
        if not cause and complete is not None:
            cause = complete.variable("bridge_hangup_cause") or complete.variable(
                "last_bridge_hangup_cause", ""
            )
        self._log.info(
            "dial_ended", device=device, peer=state.peer_channel, talk=round(talk, 3), by=by
        )
        return DialResult(
            DialStatus.ANSWER,
            peer_channel=state.peer_channel,
            talk_seconds=talk,
            hung_up_by=by,
            cause=HangupCause.from_name(cause) if cause else HangupCause.UNSPECIFIED,
        )

    def _notify_answer(self, state: _Dial) -> None:
        if state.notified:
            return
        state.notified = True
        state.answered.set()
        if state.on_answer is not None:
            peer = state.peer_channel or ""
            try:
                state.on_answer(peer)
            except Exception:
                self._log.exception("on_answer_failed", peer=peer)

    async def unbridge(self) -> None:
        state = self._dial
        if state is None:
            self._log.info("unbridge_without_peer")
            return
        if state.peer_uuid is None or state.answered_at is None:
            # Still ringing (an agent logged out): cancel the ringing legs, as Asterisk hangs
            # up the dialled channel; the bridge then fails and dial() returns.
            for leg in sorted(state.legs):
                await self._api(f"uuid_kill {leg} ORIGINATOR_CANCEL")
            self._log.info("ring_cancelled", legs=len(state.legs))
            return
        state.unbridged = True
        text = await self._api(f"uuid_kill {state.peer_uuid} NORMAL_CLEARING")
        if text.startswith("-ERR") and "no such channel" not in text.lower():
            raise CommandFailed(f"uuid_kill of the peer failed: {text.strip()}")

    async def hold(self) -> None:
        """``uuid_hold`` of the agent leg: FreeSWITCH plays the leg's ``hold_music`` (set to
        this call's music class first) to its partner, the caller."""
        state = self._dial
        if state is not None and not state.answered.is_set():
            # The answer may be a few events behind the PBX's bridge.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.command_timeout):
                    await state.answered.wait()
        peer = self._bridged_peer()
        if peer is None:
            raise CommandFailed(f"{self._info.channel} is not bridged: nothing to hold")
        await self._api_ok(f"uuid_setvar {peer} hold_music {self._moh_source(self._moh_class)}")
        await self._api_ok(f"uuid_hold {peer}")
        self._held = peer
        self._log.info("hold", peer=peer)

    async def unhold(self) -> None:
        """``uuid_hold off`` of the held agent leg."""
        peer, self._held = self._held, None
        if peer is None:
            return
        self._check()
        text = await self._api(f"uuid_hold off {peer}")
        if text.startswith("-ERR") and "no such channel" not in text.lower():
            raise CommandFailed(f"uuid_hold off failed: {text.strip()}")
        self._log.info("unhold", peer=peer)

    def _bridged_peer(self) -> str | None:
        self._check()
        state = self._dial
        if state is None or state.peer_uuid is None or state.answered_at is None:
            return None
        return state.peer_uuid

    async def _api_ok(self, cmd: str) -> str:
        text = await self._api(cmd)
        if text.startswith("-ERR") or text.startswith("-USAGE"):
            if "no such channel" in text.lower() and cmd.split()[1:2] == [self._uuid]:
                self._on_hangup("")
                raise CallHungUp(f"{self._info.channel} is gone")
            raise CommandFailed(f"{cmd.split(maxsplit=1)[0]} failed: {text.strip()}")
        return text

    async def start_recording(self, path: str) -> None:
        """``uuid_record <uuid> start <path>`` (both legs, beside whatever the call runs)."""
        if not _RECORD_PATH.fullmatch(path) or ".." in path:
            raise CommandFailed(f"cannot record into {path!r}")
        self._check()
        await self._api_ok(f"uuid_record {self._uuid} start {path}")
        self._recording = path
        self._log.info("recording_started", path=path)

    async def stop_recording(self) -> None:
        """``uuid_record <uuid> stop <path>``."""
        path, self._recording = self._recording, None
        if path is None or self.hung_up:
            return
        self._check()
        await self._api_ok(f"uuid_record {self._uuid} stop {path}")
        self._log.info("recording_stopped", path=path)

    async def mute_recording(self, muted: bool) -> None:
        """``uuid_record <uuid> mask|unmask <path>``."""
        path = self._recording
        if path is None:
            raise CommandFailed(f"{self._uuid} is not being recorded")
        self._check()
        await self._api_ok(f"uuid_record {self._uuid} {'mask' if muted else 'unmask'} {path}")
        self._log.info("recording_muted" if muted else "recording_unmuted", path=path)

    async def redirect(self, context: str, exten: str, priority: int = 1) -> None:
        """``uuid_transfer`` to ``exten`` in ``context`` (XML dialplan; ``priority`` has no
        FreeSWITCH meaning and is ignored)."""
        for what, token in (("context", context), ("extension", exten)):
            if not _TOKEN.fullmatch(token):
                raise CommandFailed(f"invalid {what} {token!r}")
        self._check()
        text = await self._api(f"uuid_transfer {self._uuid} {exten} XML {context}")
        if text.startswith("-ERR"):
            if "no such channel" in text.lower():
                self._on_hangup("")
                raise CallHungUp(f"{self._info.channel} was gone before the redirect")
            raise CommandFailed(f"uuid_transfer failed: {text.strip()}")
        self._moh_app = None
        self._release(f"redirected to {context},{exten}")

    async def get_variable(self, name: str) -> str | None:
        if not _VAR_NAME.fullmatch(name):
            raise CommandFailed(f"invalid variable name {name!r}")
        text = await self._api(f"uuid_getvar {self._uuid} {name}")
        if text == "_undef_" or text.startswith(("-ERR ", "-USAGE")):
            return None
        return text

    async def set_variable(self, name: str, value: str) -> None:
        if not _VAR_NAME.fullmatch(name):
            raise CommandFailed(f"invalid variable name {name!r}")
        if any(c in value for c in "\r\n\x00"):
            raise CommandFailed(f"variable {name} value must be one line")
        self._check()
        text = await self._api(f"uuid_setvar {self._uuid} {name} {value}")
        if text.startswith("-ERR"):
            if "no such channel" in text.lower():
                self._on_hangup("")
                raise CallHungUp(f"{self._info.channel} has hung up")
            raise CommandFailed(f"uuid_setvar {name} failed: {text.strip()}")

    async def spy(self, target_channel: str, mode: SpyMode) -> FreeSwitchSpySession:
        """``eavesdrop <target uuid>`` on this call (with ``eavesdrop_enable_dtmf`` and the
        mode's whisper variables set first), awaited by a task of its own: the session
        ends when eavesdrop completes or the caller hangs up. Its ``stop`` hangs the
        caller up (uuid_kill), as for a supervisor's originated leg."""
        if mode not in _SPY_VARS:
            raise CommandFailed(f"unknown spy mode {mode!r}")
        self._check()
        target = target_channel if _UUID.fullmatch(target_channel) else None
        if target is None:
            _check_line("channel", target_channel)
            target = await self._driver._uuid_of(target_channel)
        if target is None:
            raise CommandFailed(f"no live channel {target_channel!r} to spy on")
        session = FreeSwitchSpySession(self._driver, self._uuid, target, mode)
        session._name = self._info.channel
        self._spy = session
        whisper = dict(v.split("=", 1) for v in _SPY_VARS[mode])
        await self._ensure_vars(
            {
                "eavesdrop_enable_dtmf": "true",
                "eavesdrop_whisper_aleg": whisper.get("eavesdrop_whisper_aleg", "false"),
                "eavesdrop_whisper_bleg": whisper.get("eavesdrop_whisper_bleg", "false"),
            }
        )
        event_uuid, future = await self._send_app("eavesdrop", target, track=True)
        assert future is not None
        session._mark_started()

        async def run() -> None:
            why = "eavesdrop completed"
            try:
                await self._await_app(event_uuid, future, SPY_LIMIT, "eavesdrop")
            except PBXError as exc:
                why = str(exc)
            finally:
                session._on_ended(why)

        self._spy_task = asyncio.create_task(run(), name=f"eavesdrop-{self._uuid}")
        self._log.info("spy_requested", target=target, mode=mode)
        return session

    async def hand_back(self) -> None:
        if self._handed_back:
            return
        self._handed_back = True
        try:
            session = self._esl
            if isinstance(session, ESLOutboundSession):
                if self._left_in_bridge and not self.hung_up and not session.ended:
                    # The daemon is stopping and the caller keeps talking: when the bridge
                    # ends, hang up rather than go on to the failover after ``socket``.
                    self._log.info("call_left_talking_at_shutdown")
                    await self._api(f"uuid_setvar {self._uuid} hangup_after_bridge true")
                elif self._driver._stopping and not (
                    self.hung_up or self.released or session.ended
                ):
                    # The daemon is stopping with the caller in the IVR or a queue: on to
                    # the dialplan's failover, as Asterisk's callers go on after AGI().
                    self._log.info("call_sent_to_failover_at_shutdown")
                    await self._resume_dialplan(session)
                if self.hung_up and not session.ended:
                    # Saying exit now would cut off the hangup events (and the CDR facts in
                    # them); with linger, FreeSWITCH sends them and then a notice.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._settings.command_timeout):
                            await session.wait_disconnect_notice()
                await session.close()
            elif self.hung_up or self.released:
                pass
            elif not self._driver._stopping:
                # A parked channel has no dialplan to return to: never leave a caller in
                # silent park.
                self._log.info("call_hung_up_after_handler")
                await self.hangup()
                if not self.hung_up and not self._driver.esl.connected:
                    self._log.info("call_orphaned_by_link_loss")
                    self._driver._orphans.add(self._uuid)
            elif self._left_in_bridge:
                # The daemon is stopping: the caller keeps talking. When the bridge ends
                # there is nobody left to take the caller out of park, so FreeSWITCH hangs
                # up then (checked after the bridge, so setting it now is in time).
                self._log.info("call_left_talking_at_shutdown")
                await self._api(f"uuid_setvar {self._uuid} hangup_after_bridge true")
            elif self._left_in_room:
                # In a conference room with someone (an agent's own dial): a repark would
                # take them out of it mid-conversation. They hang up when it is over.
                self._log.info("call_left_in_room_at_shutdown")
            elif await self._repark():
                self._log.info("call_reparked_at_shutdown")
            else:
                self._log.info("call_hung_up_at_shutdown")
                await self.hangup()
        except PBXConnectionError as exc:
            # A stop while the event socket is down (logged once, as a warning): the caller
            # stays where FreeSWITCH has them (parked, or in a prompt or music, which the
            # next daemon sends through their extension again: _take_back).
            self._log.info("call_left_as_is_link_down", error=str(exc))
        except Exception:
            self._log.exception("hand_back_failed")

    async def fail_over(self) -> None:
        if self._handed_back:
            return
        info = self._info
        extension = self._driver.settings.failover_extension
        session = self._esl
        if isinstance(session, ESLOutboundSession):
            if not (self.hung_up or session.ended):
                await self._resume_dialplan(session)
        elif not (self.hung_up or self.released):
            if _TOKEN.fullmatch(info.context) and _TOKEN.fullmatch(extension):
                try:
                    text = await self._api(
                        f"uuid_transfer {self._uuid} {extension} XML {info.context}"
                    )
                except PBXError as exc:
                    text = f"-ERR {exc}"
                if text.startswith(("-ERR", "-USAGE")):
                    # hand_back hangs the caller up rather than leave them in silent park.
                    self._log.warning("failover_transfer_refused", reply=text.strip())
                else:
                    self._release("sent to the failover")
            else:
                self._log.warning("failover_transfer_impossible", context=info.context)
        self._log.info("call_sent_to_failover")
        await self.hand_back()

    async def _resume_dialplan(self, session: ESLOutboundSession) -> None:
        """Without ``resume`` FreeSWITCH hangs the caller up when the socket closes; with
        it, the dialplan goes on after ``socket`` (the shipped one: to the failover)."""
        try:
            reply = await session.command("resume")
        except PBXError as exc:
            reply = f"-ERR {exc}"
        if not reply.startswith("+OK"):
            self._log.warning("socket_resume_refused", reply=reply.strip())

    async def _repark(self) -> bool:
        """The daemon is stopping with the caller in the IVR or a queue: send the caller
        through their extension again (``uuid_transfer`` to the number they dialled), so
        that it parks them afresh and the next daemon adopts them. Left as they are, they
        would not be: ``show channels`` keeps the name of the last application run
        (``playback``...), and only channels in ``park`` are adopted. False when that
        cannot be done (the caller is then hung up rather than left in silence)."""
        info = self._info
        if not (_TOKEN.fullmatch(info.dialed) and _TOKEN.fullmatch(info.context)):
            return False
        text = await self._driver._send_through_extension(self._uuid, info.dialed, info.context)
        if text.startswith("-ERR"):
            self._log.info("repark_refused", reply=text.strip())
            return False
        self._release("reparked at shutdown")
        return True

    async def hangup(self, cause: HangupCause = HangupCause.NORMAL_CLEARING) -> None:
        if self._hangup.is_set() or self._released:
            return
        try:
            text = await self._api(f"uuid_kill {self._uuid} {cause.name}")
        except PBXConnectionError as exc:
            # The link is down (logged once, as a warning): the channel is looked at again
            # when it is back (an orphan hung up then, a parked caller taken again).
            self._log.info("hangup_not_sent", error=str(exc))
            return
        except PBXError as exc:
            self._log.warning("hangup_failed", error=str(exc))
            return
        if text.startswith("-ERR") and "no such channel" not in text.lower():
            self._log.warning("hangup_refused", reply=text.strip())
            return
        self._on_hangup(cause.name)

    # -- events -----------------------------------------------------------------------------

    def _on_event(self, event: ESLEvent) -> None:
        """An event about the caller's own channel."""
        name = event.name
        if name == "CHANNEL_EXECUTE_COMPLETE":
            future = self._apps.pop(event.get("Application-UUID", ""), None)
            if future is not None:
                if not future.done():
                    future.set_result(event)
            elif (
                event.get("Application") == "park"
                and self.events_from_inbound
                and not self._hangup.is_set()
                and event.get("Answer-State") != "hangup"
            ):
                # The park that held the caller ended while the caller is up: something
                # outside (uuid_transfer, uuid_bridge) took the channel.
                self._release("park ended")
        elif name == "DTMF":
            digit = event.get("DTMF-Digit", "")
            if self._room_digits is not None:
                try:
                    self._room_digits(digit)
                except Exception:
                    self._log.exception("room_digit_listener_failed")
                return
            self._dtmf.append(digit)
            if self._music_keys is not None:
                self._music_keys.press(digit)
            if self._spy is not None:
                self._spy._on_event(event)
        elif name == "PLAYBACK_STOP":
            self._playback_status = event.get("Playback-Status", "")
        elif name == "CHANNEL_ANSWER":
            self._answered = True
        elif name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            self._on_hangup(event.get("Hangup-Cause", ""))
            if name == "CHANNEL_HANGUP_COMPLETE":
                self._driver._channel_gone(self._uuid, self._info.channel, self._cause)
        elif name == "CHANNEL_BRIDGE":
            other = event.get("Other-Leg-Unique-ID")
            state = self._dial
            if state is not None and other:
                state.names.setdefault(other, event.get("Other-Leg-Channel-Name", ""))
                self._driver._peers.setdefault(other, self)
                self._peer_answered(state, other)

    def _adopt_peer(self, uid: str) -> bool:
        """A channel names us as its other leg: take it as a leg of the running dial."""
        state = self._dial
        if state is None or uid == self._uuid:
            return False
        state.legs.add(uid)
        return True

    def _on_peer_event(self, event: ESLEvent) -> None:
        """An event about a leg our dial created."""
        state = self._dial
        uid = event.unique_id
        if state is None or not uid:
            return
        channel = event.get("Channel-Name")
        if channel:
            state.names[uid] = channel
        name = event.name
        if name == "DTMF":
            digit = event.get("DTMF-Digit", "")
            name_of_leg = state.names.get(uid, "")
            if digit and name_of_leg:
                self._driver._publish(DigitPressed(channel=name_of_leg, digit=digit))
        elif name == "CHANNEL_ANSWER":
            if state.wait_bridge:
                state.picked_up = True
            else:
                self._peer_answered(state, uid)
        elif name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            cause = event.get("Hangup-Cause", "")
            if uid == state.peer_uuid and state.answered_at is not None:
                state.peer_cause = state.peer_cause or cause
            elif state.answered_at is None and cause:
                state.fail_cause = cause

    def _peer_answered(self, state: _Dial, uid: str) -> None:
        if state.answered_at is not None:
            return
        state.peer_uuid = uid
        state.answered_at = time.monotonic()
        self._notify_answer(state)

    def _fail_apps(self, error: Exception, *, keep: Collection[str] = ()) -> None:
        for event_uuid, future in list(self._apps.items()):
            if event_uuid in keep:
                continue
            self._apps.pop(event_uuid, None)
            if not future.done():
                future.set_exception(error)

    def _on_hangup(self, cause: str) -> None:
        if not self._hangup.is_set():
            if cause:
                self._cause = HangupCause.from_name(cause)
            self._hangup.set()
            self._end_music_keys()
            self._log.info("caller_hung_up", cause=cause or "unknown")
        elif cause and self._cause == HangupCause.UNSPECIFIED:
            self._cause = HangupCause.from_name(cause)
        if self._apps:
            error = CallHungUp(f"{self._info.channel} hung up ({cause or 'unknown'})")
            self._fail_apps(error, keep=self._outlive_hangup)
            loop = asyncio.get_running_loop()
            for event_uuid in self._outlive_hangup:
                future = self._apps.get(event_uuid)
                if future is not None:
                    loop.call_later(_RECORD_SETTLE, _fail_if_pending, future, error)

    def _end_music_keys(self) -> None:
        """The call is gone or out of our control: its music is no longer ours to stop,
        and a read of its keys ends."""
        keys, self._music_keys, self._moh_app = self._music_keys, None, None
        if keys is not None:
            keys.wake()

    def _release(self, why: str) -> None:
        if self._released:
            return
        self._released = why
        self._end_music_keys()
        self._log.info("call_left_control", why=why)
        self._fail_apps(CallHungUp(f"{self._info.channel} left our control ({why})"))

    def _on_socket_closed(self, reason: str) -> None:
        # Without its socket the call is out of reach; the inbound socket still tells us
        # when it hangs up.
        self.events_from_inbound = True
        if not self._hangup.is_set():
            self._release(f"outbound socket closed: {reason}")

    def _link_lost(self, reason: str) -> None:
        state = self._dial
        keep = {state.app_uuid} if state is not None else set()
        if self._room_app:
            keep.add(self._room_app)
        # A prompt or a key read runs on at FreeSWITCH too: held until the resync settles
        # it (_settle_across). So does the music: its future goes but its uuid stays, for
        # the next stop to break it (what is sent after endless music never plays).
        self._across |= {uid for uid in self._apps if uid not in keep and uid != self._moh_app}
        self._fail_apps(
            PBXConnectionError(f"event socket lost while {self._info.channel} ran: {reason}"),
            keep=keep | self._across,
        )

    async def _resync(self, snap: ChannelSnapshot, alive: Mapping[str, ChannelSnapshot]) -> None:
        """The caller survived a reconnection: settle a dial, a room or a prompt whose events
        may be lost."""
        across = {uid for uid in self._across if uid in self._apps}
        self._across.clear()
        if across:
            if self._settling is not None:
                # A second outage cut the last settling short: this one takes all of them
                # (the link's loss held whatever still waited, its no-op too).
                self._settling.cancel()
            self._settling = asyncio.create_task(
                self._settle_across(across), name=f"settle-{self._uuid}"
            )
        room = self._apps.get(self._room_app) if self._room_app else None
        if room is not None and not room.done() and snap.application != "conference":
            # Out of the room while the socket was down (kicked, or moved on by hand).
            room.set_result(_synthetic_complete())
        elif self._room is not None and not self._room[1] and snap.room == self._room[0]:
            # Into the room while the socket was down: its add-member event went with it.
            # mod_conference keeps the Member-ID on the channel too (the kick needs it).
            try:
                member = await self.get_variable("conference_member_id")
            except PBXError as exc:
                self._log.info("room_member_unknown", room=snap.room, error=str(exc))
            else:
                if member and self._room is not None and not self._room[1]:
                    room_name = self._room[0]
                    if self._driver._ringing_rooms.get(room_name) is self and any(
                        other.room == room_name and uid != self._uuid
                        for uid, other in alive.items()
                    ):
                        del self._driver._ringing_rooms[room_name]  # someone came: no ring
                    self._joined_room(member)
        state = self._dial
        if state is None or not state.app_uuid:
            return
        future = self._apps.get(state.app_uuid)
        if future is None or future.done():
            return
        if state.answered_at is None:
            for leg in state.legs:
                leg_snap = alive.get(leg)
                if leg_snap is not None and leg_snap.state == "ACTIVE":
                    state.names.setdefault(leg, leg_snap.channel)
                    self._peer_answered(state, leg)
                    break
        if state.answered_at is not None:
            if state.peer_uuid not in alive:
                future.set_result(_synthetic_complete())
        elif snap.application != "bridge" or not state.legs & alive.keys():
            # FreeSWITCH names the last application, so a failed ring still shows `bridge`:
            # none of its legs left says it is over.
            disposition = await self.get_variable("originate_disposition") or ""
            if not future.done():
                future.set_result(_synthetic_complete(originate_disposition=disposition))

    async def _settle_across(self, across: set[str]) -> None:
        """``across`` ran when the event socket went down. One still running completes as
        usual; a no-op queued behind them completes after they all did, so one still
        waiting then completed unseen: it gets a completion with nothing in it (a prompt
        played out, no key pressed: one pressed meanwhile is lost with the link)."""
        try:
            await self._run_app("set", "callcenter_resynced=true", self._long(0.0))
        except PBXError as exc:
            self._log.info("settle_after_outage_failed", error=str(exc))
            return
        finally:
            if self._settling is asyncio.current_task():
                self._settling = None
        for uid in across:
            future = self._apps.get(uid)
            if future is not None and not future.done():
                self._log.info("application_completed_unseen", event_uuid=uid)
                future.set_result(_synthetic_complete())

    def _forget(self) -> None:
        """The handler is done: drop what still waits."""
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        if self._apps:
            self._fail_apps(CallHungUp(f"{self._info.channel}: the call's handler ended"))


def _synthetic_complete(**variables: str) -> ESLEvent:
    pairs = [("Event-Name", "CHANNEL_EXECUTE_COMPLETE")]
    pairs += [(f"variable_{k}", v) for k, v in variables.items()]
    return ESLEvent.from_pairs(pairs)


def _retrieved(future: asyncio.Future[Any]) -> None:
    # Futures of applications nobody awaits any more (hold music, failed by a hangup).
    if not future.cancelled():
        future.exception()


def _fail_if_pending(future: asyncio.Future[ESLEvent], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class FreeSwitchConference(RoomLife):
    """A mod_conference room our caller sits in (implements
    :class:`callcenter.pbx.interface.Conference`); members from ``conference::maintenance``
    events (``add-member`` / ``del-member``). Its side room is the conference
    ``<room>-aside``; legs move between the two by ``uuid_transfer <leg>
    conference:<room> inline``."""

    def __init__(self, driver: FreeSwitchDriver, room: str, caller_uuid: str) -> None:
        super().__init__(room, driver._conferences, log.bind(room=room, caller=caller_uuid))
        self._driver = driver
        self._caller = caller_uuid
        #: Unique-ID -> (channel name, Member-ID), in join order, per room.
        self._members: dict[str, tuple[str, str]] = {}
        self._aside: dict[str, tuple[str, str]] = {}

    @property
    def members(self) -> Sequence[str]:
        return tuple(name or uid for uid, (name, _) in self._members.items())

    @property
    def aside(self) -> Sequence[str]:
        return tuple(name or uid for uid, (name, _) in self._aside.items())

    async def invite(
        self, device: str, *, caller_id: str = "", timeout: float = 30.0, aside: bool = False
    ) -> None:
        """``bgapi originate {..}<device> &conference(<room>)`` (or the side room)."""
        targets = fs_dial_targets(device)
        if self.ended:
            raise CommandFailed(f"conference {self._room} has ended")
        values = [
            f"origination_uuid={uuid.uuid4()}",
            f"originate_timeout={max(1, math.ceil(timeout))}",
            NO_ROOM_KEYS,
            *_caller_id_vars(caller_id or None),
        ]
        if targets[0].startswith(ROOM_TECH):
            values.append("loopback_export=conference_controls")  # see _ROOM_LEG_VARS
        dial_string = "{" + ",".join(values) + "}" + targets[0]
        room = self._side if aside else self._room
        job = await self._driver.esl.start_bgapi(
            f"originate {dial_string} &conference({room})",
            timeout=timeout + LONG_COMMAND_MARGIN,
        )
        job.add_done_callback(_retrieved)
        self._log.info("conference_invited", device=device, aside=aside)

    async def step_aside(self, channel: str) -> None:
        """``uuid_transfer <leg> conference:<room>-aside inline``."""
        uid = _member_uuid(self._members, channel)
        if uid is None or uid == self._caller:
            raise CommandFailed(f"{channel!r} is not a member of conference {self._room}")
        await self._move(uid, self._side)

    async def bring_back(self, channel: str) -> None:
        """``uuid_transfer <leg> conference:<room> inline``."""
        uid = _member_uuid(self._aside, channel)
        if uid is None:
            raise CommandFailed(f"{channel!r} is not aside in conference {self._room}")
        await self._move(uid, self._room)

    async def _move(self, uid: str, room: str) -> None:
        if self.ended:
            raise CommandFailed(f"conference {self._room} has ended")
        text = await self._driver.esl.api(
            f"uuid_transfer {uid} conference:{room} inline", check=False
        )
        if not text.startswith("+OK"):
            raise CommandFailed(f"cannot move {uid} to {room}: {text.strip()}")
        self._log.info("conference_moved", channel=uid, to=room)

    async def kick(self, channel: str) -> None:
        """``conference <room> kick <member id>`` of a member (channel name or Unique-ID)
        of the room or the side room."""
        for room, members in ((self._room, self._members), (self._side, self._aside)):
            uid = _member_uuid(members, channel)
            if uid is not None:
                member_id = members[uid][1]
                if member_id:
                    await self._kick(room, member_id)
                else:
                    # Found by a resync: no Member-ID to kick by; the leg is hung up instead.
                    await self._driver.esl.api(f"uuid_kill {uid}", check=False)
                return
        raise CommandFailed(f"{channel!r} is not in conference {self._room}")

    async def end(self) -> None:
        """``conference <room> kick all`` in both rooms; returns once the caller left."""
        if self.ended:
            return
        if self._aside:
            await self._kick(self._side, "all")
        await self._kick(self._room, "all")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._driver.settings.command_timeout):
                await self._ended.wait()
        self._log.info("conference_ended", ended=self.ended)

    async def _kick(self, room: str, member: str) -> None:
        if not member:
            raise CommandFailed(f"no member id known in conference {room}")
        text = await self._driver.esl.api(f"conference {room} kick {member}", check=False)
        if not text.startswith("+OK"):
            self._log.info("conference_kick_refused", member=member, reply=text.strip())
            if member != "all":
                raise CommandFailed(f"cannot kick member {member}: {text.strip()}")
        self._log.info("conference_kick", member=member, room=room)

    def _on_event(self, event: ESLEvent) -> None:
        uid = event.unique_id or ""
        action = event.get("Action", "")
        members = self._aside if event.get("Conference-Name") == self._side else self._members
        if action == "add-member" and uid:
            members[uid] = (event.get("Channel-Name", ""), event.get("Member-ID", ""))
            if uid == self._caller:
                self._caller_in.set()
        elif action == "del-member":
            members.pop(uid, None)
        elif action == "conference-destroy":
            members.clear()
        else:
            return
        self._changed()

    def _resync(self, snapshots: Sequence[ChannelSnapshot]) -> None:
        """After a reconnection: the rooms' members as ``show channels`` lists them (the
        ``conference::maintenance`` events of the outage are lost). A member found this
        way has no Member-ID yet: kicking it hangs its leg up."""
        found: dict[str, dict[str, str]] = {self._room: {}, self._side: {}}
        for snap in snapshots:
            if snap.room in found and snap.call_id != self._caller:
                found[snap.room][snap.call_id] = snap.channel
        changed = False
        for members, now in ((self._members, found[self._room]), (self._aside, found[self._side])):
            for uid in [u for u in members if u not in now and u != self._caller]:
                del members[uid]
                changed = True
            for uid, name in now.items():
                if uid not in members:
                    members[uid] = (name, "")
                    changed = True
        if changed:
            self._log.info("conference_resynced", members=self.members, aside=self.aside)
            self._changed()


def _member_uuid(members: Mapping[str, tuple[str, str]], channel: str) -> str | None:
    """The Unique-ID of ``channel`` (a channel name or a Unique-ID) among ``members``."""
    return next((uid for uid, (name, _) in members.items() if channel in (uid, name)), None)


class FreeSwitchSpySession(SpyLife):
    """A supervisor's ``eavesdrop`` leg (implements
    :class:`callcenter.pbx.interface.SpySession`).

    Modes switch with eavesdrop's DTMF keys (``uuid_recv_dtmf`` on the supervisor's leg);
    :meth:`stop` is ``uuid_kill`` of that leg.
    """

    def __init__(self, driver: FreeSwitchDriver, leg: str, target: str, mode: SpyMode) -> None:
        super().__init__(target, mode, log.bind(spy=leg, target=target))
        self._driver = driver
        self.uuid = leg
        """The supervisor leg's Unique-ID (our ``origination_uuid``)."""

    @property
    def channel(self) -> str:
        return self._name or self.uuid

    async def set_mode(self, mode: SpyMode) -> None:
        if mode not in _SPY_DTMF:
            raise CommandFailed(f"unknown spy mode {mode!r}")
        if self.ended or not self.started:
            raise CommandFailed(f"spy on {self.target} is not running")
        text = await self._driver.esl.api(
            f"uuid_recv_dtmf {self.uuid} {_SPY_DTMF[mode]}", check=False
        )
        if text.startswith("-ERR"):
            self._on_ended("gone")
            raise CommandFailed(f"spy on {self.target} has ended: {text.strip()}")
        self._mode = mode
        self._log.info("spy_mode_changed", mode=mode)

    async def stop(self) -> None:
        if self.ended:
            return
        await self._driver.hangup_channel(self.uuid)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._driver.settings.command_timeout):
                await self._ended.wait()
        self._log.info("spy_stopped", ended=self.ended)

    def _on_event(self, event: ESLEvent) -> None:
        name = event.name
        self._name = event.get("Channel-Name", "") or self._name
        if name == "DTMF":
            mode = _SPY_KEYS.get(event.get("DTMF-Digit", ""))
            if mode is not None and self.started:
                self._keyed(mode)
        elif name == "CHANNEL_ANSWER":
            # originate runs &eavesdrop right after the answer (CHANNEL_EXECUTE is not
            # among the events the driver subscribes to).
            self._mark_started()
        elif name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            self._on_ended(event.get("Hangup-Cause", "hung up"))

    def _on_job_done(self, job: asyncio.Future[str]) -> None:
        if job.cancelled() or job.exception() is not None:
            return
        if job.result().startswith("+OK"):
            self._mark_started()
        else:
            self._driver._spies.pop(self.uuid, None)
            self._on_ended(f"originate failed: {job.result().strip()}")


def _owner_variable(esl: ESLClient) -> tuple[ReadGlobal, WriteGlobal]:
    """Read and write the ``callcenter_owner`` global over ``esl``."""

    async def read() -> str:
        return (await esl.api(f"global_getvar {OWNER_VARIABLE}")).strip()

    async def write(value: str) -> None:
        await esl.api(f"global_setvar {OWNER_VARIABLE}={value}")

    return read, write


def sofia_device(channel: str) -> str:
    """The device of a FreeSWITCH SIP channel: ``sofia/internal/1010@host`` -> ``user/1010``
    (a directory user, as agents' devices are dialled); empty for other channels."""
    match = _SOFIA_USER.fullmatch(channel)
    return f"user/{match[1]}" if match is not None else ""
