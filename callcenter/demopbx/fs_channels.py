"""Simulated FreeSWITCH channels and the events they fire, for the demo FreeSWITCH.

An :class:`FSChannel` is what FreeSWITCH calls a session: a ``Unique-ID`` (a UUID), a name like
``sofia/lab/5551234@127.0.0.1``, a caller profile, channel variables, a running state
(``CS_EXECUTE`` ...), a call state (``RINGING``, ``ACTIVE`` ...) and an answer state. It builds
its events the way ``switch_channel_event_set_data`` does, header for header in the order of
the real FreeSWITCH 1.10 traces (``shared/traces/freeswitch``)::

    Event-Name ... Event-Sequence            (EventHub: the common block)
    <pre>                                    (Bridge-A-Unique-ID, Original-Channel-Call-State ...)
    Channel-State ... Answer-State [Hangup-Cause] [codecs] Caller-* [Other-Type Other-Leg-*]
    variable_*                               (events that carry them)
    <post>                                   (Application*, Playback-*, DTMF-* ...)

Applications wait on the channel for digits, hang-ups, breaks and redirects
(:meth:`FSChannel.listening`, :func:`wait_change`). The running state is a state machine:
:class:`ChannelState` plus one transition table; an illegal move raises
:class:`~callcenter.errors.IllegalTransition`.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Literal

import structlog

from callcenter.demopbx.recording import Recording
from callcenter.errors import IllegalTransition

log = structlog.get_logger(__name__)

Header = tuple[str, str]

#: Digits pressed while no application reads them are kept this long for the next reader
#: (FreeSWITCH's park loop eats them; the grace covers the gap between two ESL commands).
DIGIT_GRACE_SECONDS = 0.05

DTMF_DIGITS = "0123456789*#ABCD"

FREESWITCH_VERSION = "1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit"
FREESWITCH_VERSION_LINE = (
    f"FreeSWITCH Version {FREESWITCH_VERSION} (git a88d069 2024-08-02 21:02:27Z 64bit)"
)

#: FreeSWITCH's hangup cause names and numbers (``switch_call_cause_t``).
HANGUP_CAUSES: dict[str, int] = {
    "UNSPECIFIED": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6,
    "CALL_AWARDED_DELIVERED": 7,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "REDIRECTION_TO_NEW_DESTINATION": 23,
    "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "INCOMPATIBLE_DESTINATION": 88,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "INTERWORKING": 127,
    "ORIGINATOR_CANCEL": 487,
    "LOSE_RACE": 502,
    "MANAGER_REQUEST": 503,
    "BLIND_TRANSFER": 600,
    "ATTENDED_TRANSFER": 601,
    "ALLOTTED_TIMEOUT": 602,
    "USER_CHALLENGE": 603,
    "MEDIA_TIMEOUT": 604,
    "PICKED_OFF": 605,
    "USER_NOT_REGISTERED": 606,
    "PROGRESS_TIMEOUT": 607,
}


def cause_name(text: str) -> str | None:
    """A hangup cause as FreeSWITCH accepts it (name or number) -> its name; None if unknown."""
    text = text.strip().upper()
    if text in HANGUP_CAUSES:
        return text
    if text.isdigit():
        number = int(text)
        return next((name for name, code in HANGUP_CAUSES.items() if code == number), None)
    return None


def q850(cause: str) -> int:
    """``hangup_cause_q850`` of a cause: FreeSWITCH's own causes (>127) map to 16."""
    code = HANGUP_CAUSES.get(cause, 0)
    return code if code <= 127 else 16


class ChannelState(enum.IntEnum):
    """FreeSWITCH's running states (``Channel-State`` / ``Channel-State-Number``)."""

    CS_NEW = 0
    CS_INIT = 1
    CS_ROUTING = 2
    CS_SOFT_EXECUTE = 3
    CS_EXECUTE = 4
    CS_EXCHANGE_MEDIA = 5
    CS_PARK = 6
    CS_CONSUME_MEDIA = 7
    CS_HIBERNATE = 8
    CS_RESET = 9
    CS_HANGUP = 10
    CS_REPORTING = 11
    CS_DESTROY = 12
    CS_NONE = 13


_S = ChannelState
#: The one transition table of a simulated channel's running state.
_TRANSITIONS: dict[ChannelState, frozenset[ChannelState]] = {
    _S.CS_NONE: frozenset({_S.CS_INIT, _S.CS_HANGUP}),
    _S.CS_NEW: frozenset({_S.CS_INIT, _S.CS_HANGUP}),
    _S.CS_INIT: frozenset({_S.CS_ROUTING, _S.CS_HANGUP}),
    _S.CS_ROUTING: frozenset({_S.CS_EXECUTE, _S.CS_CONSUME_MEDIA, _S.CS_HANGUP}),
    _S.CS_CONSUME_MEDIA: frozenset(
        {_S.CS_EXECUTE, _S.CS_EXCHANGE_MEDIA, _S.CS_SOFT_EXECUTE, _S.CS_ROUTING, _S.CS_HANGUP}
    ),
    _S.CS_EXECUTE: frozenset(
        {_S.CS_ROUTING, _S.CS_SOFT_EXECUTE, _S.CS_EXCHANGE_MEDIA, _S.CS_HANGUP}
    ),
    _S.CS_SOFT_EXECUTE: frozenset({_S.CS_EXECUTE, _S.CS_ROUTING, _S.CS_HANGUP}),
    _S.CS_EXCHANGE_MEDIA: frozenset(
        {_S.CS_EXECUTE, _S.CS_SOFT_EXECUTE, _S.CS_ROUTING, _S.CS_HANGUP}
    ),
    _S.CS_HANGUP: frozenset({_S.CS_REPORTING}),
    _S.CS_REPORTING: frozenset({_S.CS_DESTROY}),
    _S.CS_DESTROY: frozenset(),
    _S.CS_PARK: frozenset(),
    _S.CS_HIBERNATE: frozenset(),
    _S.CS_RESET: frozenset(),
}


class CallState(enum.IntEnum):
    """``Channel-Call-State`` values (``switch_channel_callstate_t``)."""

    DOWN = 0
    DIALING = 1
    RINGING = 2
    EARLY = 3
    ACTIVE = 4
    HELD = 5
    RING_WAIT = 6
    HANGUP = 7
    UNHELD = 8


AnswerState = Literal["ringing", "early", "answered", "hangup"]

#: Where FreeSWITCH 1.10.12 fires each event (Event-Calling-File/-Function/-Line-Number).
_CALLING_SITE: dict[str, tuple[str, str, str]] = {
    "API": ("switch_loadable_module.c", "switch_api_execute", "2954"),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", "1572"),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3846"),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1689"),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "301"),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "626"),
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", "2021"),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1584"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2944"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "2967"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3445"),
    "CHANNEL_HANGUP_COMPLETE": (
        "switch_core_state_machine.c",
        "switch_core_session_reporting_state",
        "943",
    ),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", "632"),
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", "768"),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", "1002"),
    "CHANNEL_PROGRESS": (
        "switch_channel.c",
        "switch_channel_perform_mark_ring_ready_value",
        "3505",
    ),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", "2408"),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1879"),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", "1213"),
    "CUSTOM": ("mod_event_socket.c", "parse_command", "2275"),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", "677"),
    "HEARTBEAT": ("switch_core.c", "send_heartbeat", "95"),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", "1646"),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", "2020"),
    # No trace has these two: file and function are FreeSWITCH's, the line numbers approximate.
    "RECORD_START": ("switch_ivr_play_say.c", "switch_ivr_record_file", "869"),
    "RECORD_STOP": ("switch_ivr_play_say.c", "switch_ivr_record_file", "1082"),
    "RE_SCHEDULE": ("switch_scheduler.c", "switch_scheduler_execute", "73"),
}

#: Channel events that do not carry the ``variable_*`` headers (as in the traces).
_NO_VARIABLES = frozenset({"CHANNEL_STATE", "CHANNEL_CALLSTATE", "CHANNEL_OUTGOING", "DTMF"})


def now_us() -> int:
    """Wall-clock microseconds since the epoch (FreeSWITCH's ``*-Time`` and timestamps)."""
    return time.time_ns() // 1000


def local_stamp(us: int) -> str:
    """``2026-11-22 08:58:58`` (local time) of a microsecond timestamp; ``""`` for 0."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us / 1e6)) if us else ""


@dataclass(eq=False, slots=True)
class FSEvent:
    """One event as the demo FreeSWITCH fired it: headers in wire order, optional body.

    ``wire`` caches the encoded message per format (``plain``/``json``/``xml``).
    """

    name: str
    headers: list[Header]
    body: str | None = None
    wire: dict[str, bytes] = field(default_factory=dict, repr=False)

    def get(self, name: str) -> str | None:
        """The first header called ``name``."""
        return next((value for key, value in self.headers if key == name), None)

    @property
    def unique_id(self) -> str | None:
        """``Unique-ID``: the channel the event is about (None for non-channel events)."""
        return self.get("Unique-ID")


class EventHub:
    """Builds the common header block and numbers events; ``publish`` delivers them.

    One per demo FreeSWITCH: the ``Core-UUID``, host names and ``Event-Sequence`` live here.
    """

    def __init__(self, publish: Callable[[FSEvent], None], *, hostname: str = "demo") -> None:
        self.core_uuid = str(uuidlib.uuid4())
        self.hostname = hostname
        self.ipv4 = "127.0.0.1"
        self.ipv6 = "::1"
        self._sequence = 0
        self._publish = publish

    def common(
        self, name: str, site: tuple[str, str, str] | None = None, at_us: int | None = None
    ) -> list[Header]:
        """The headers every event starts with, ``Event-Name`` to ``Event-Sequence``."""
        stamp = at_us if at_us is not None else now_us()
        self._sequence += 1
        file, func, line = site or _CALLING_SITE.get(name, ("switch_event.c", "event", "1"))
        return [
            ("Event-Name", name),
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", self.ipv4),
            ("FreeSWITCH-IPv6", self.ipv6),
            ("Event-Date-Local", local_stamp(stamp)),
            ("Event-Date-GMT", formatdate(stamp / 1e6, usegmt=True)),
            ("Event-Date-Timestamp", str(stamp)),
            ("Event-Calling-File", file),
            ("Event-Calling-Function", func),
            ("Event-Calling-Line-Number", line),
            ("Event-Sequence", str(self._sequence)),
        ]

    def fire(
        self,
        name: str,
        specific: Sequence[Header] = (),
        body: str | None = None,
        *,
        leading: Sequence[Header] = (),
        site: tuple[str, str, str] | None = None,
    ) -> FSEvent:
        """Build and publish a non-channel event: ``leading`` headers (sendevent puts the
        client's before ``Event-Name``), the common block, then ``specific``."""
        event = FSEvent(name, [*leading, *self.common(name, site), *specific], body)
        self._publish(event)
        return event

    def publish(self, event: FSEvent) -> None:
        """Deliver an event built elsewhere (channel events)."""
        self._publish(event)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class QueuedApp:
    """An application sent with ``sendmsg`` (call-command: execute), waiting to run."""

    app: str
    arg: str
    event_uuid: str | None = None
    loops: int = 1


@dataclass(frozen=True, slots=True)
class Transfer:
    """``uuid_transfer`` / ``transfer``: leave what runs, route ``destination`` again."""

    destination: str
    dialplan: str = "XML"
    context: str = "default"


@dataclass(frozen=True, slots=True)
class BridgeTo:
    """``uuid_bridge``: leave what runs and stay bridged to ``other`` (in ``bridge``)."""

    other: FSChannel
    bridge: FSBridge


Redirect = Transfer | BridgeTo


@dataclass(eq=False)
class FSBridge:
    """Two channels exchanging media; ``a`` fires CHANNEL_BRIDGE/UNBRIDGE for both."""

    a: FSChannel
    b: FSChannel
    kind: Literal["bridge", "uuid_bridge"]
    ended: bool = False
    #: Legs of a ``uuid_bridge`` that left what they ran (it starts when both have).
    arrived: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- channel


_VAR_REF = re.compile(r"\$\{([^${}]+)\}")


class FSChannel:
    """One simulated FreeSWITCH session; create it through the demo FreeSWITCH.

    Attributes other modules read: ``uuid``, ``name``, ``device`` (the registered phone's
    device for agent legs, ``sofia/lab/<number>`` for callers), ``call_uuid``, ``state``,
    ``call_state``, ``answer_state``, ``variables``, ``hangup_cause``, ``other`` (the
    Other-Leg), ``bridge``, ``heard``, ``heard_in``, ``bridge_history``, ``moh_starts``,
    ``applications`` (run, in order), ``talking_until``, ``destroyed``.
    """

    def __init__(
        self,
        hub: EventHub,
        *,
        uuid: str,
        name: str,
        device: str,
        direction: Literal["inbound", "outbound"],
        caller_num: str,
        caller_name: str,
        destination: str,
        call_uuid: str | None = None,
        context: str = "default",
        username: str = "",
        callee_num: str = "",
        callee_name: str = "",
        state: ChannelState = ChannelState.CS_NEW,
    ) -> None:
        self.hub = hub
        self.uuid = uuid
        self.name = name
        self.device = device
        self.direction = direction
        self.call_uuid = call_uuid or uuid
        self.hit_dialplan = direction == "inbound"
        self.state = state
        self.call_state = CallState.DOWN
        self.answer_state: AnswerState = "ringing"
        self.has_media = direction == "inbound"
        # Caller profile (Caller-*).
        self.username = username
        self.dialplan = "XML"
        self.cid_num = caller_num
        self.cid_name = caller_name
        self.orig_cid_num = caller_num
        self.orig_cid_name = caller_name
        self.callee_num = callee_num
        self.callee_name = callee_name
        self.ani = caller_num
        self.destination = destination
        self.source = "mod_sofia"
        self.transfer_source = ""
        self.context = context
        self.profile_index = 1
        created = now_us()
        self.t_profile = created
        self.t_created = created
        self.t_answered = 0
        self.t_progress = 0
        self.t_hangup = 0
        self.t_transfer = 0
        self.t_bridged = 0
        self.variables: dict[str, str] = {}
        self.hangup_cause: str | None = None
        self.other: FSChannel | None = None
        #: The other leg of a loopback (``-a`` <-> ``-b``): hanging up one ends both.
        self.loop_peer: FSChannel | None = None
        self.other_type = ""
        self.bridge: FSBridge | None = None
        self.redirect: Redirect | None = None
        self.break_count = 0
        self.inbox: deque[QueuedApp] = deque()
        self.heard: list[str] = []
        self.heard_files: list[str] = []
        #: (language, prompt) of every prompt started, in order (``heard`` with languages).
        self.heard_in: list[tuple[str, str]] = []
        #: Loop time until which the caller speaks (silence detection of ``record``).
        self.talking_until = 0.0
        self.bridge_history: list[str] = []
        self.moh_starts = 0
        #: How many times an application started a ``local_stream://`` (music on hold) on
        #: it (a bridge's ringback is not one), and True while one plays.
        self.music_plays = 0
        self.music_playing = False
        #: How many times ``record`` began recording the caller (a voicemail message).
        self.messages_recorded = 0
        #: Every application run on the channel (dialplan or ``sendmsg``), in order.
        self.applications: list[str] = []
        #: While ``eavesdrop`` runs on this channel: its mode (``listen``, ``whisper`` = the
        #: spied-on leg hears us, ``barge`` = both legs do, ``whisper_other`` = only the
        #: spied-on leg's partner does) and the spied-on uuid; ``spy_modes`` is the history.
        self.spy_mode: str | None = None
        self.spy_target = ""
        self.spy_modes: list[str] = []
        #: True while ``uuid_hold`` holds this channel; its partner then hears
        #: ``hold_music`` (``hearing_hold_music`` on the partner).
        self.held = False
        self.hearing_hold_music = False
        #: ``uuid_record`` sessions running on this channel, by path.
        self.recordings: dict[str, Recording] = {}
        self.parked = False
        #: What an answered ``originate`` leg runs next (``&park()``, an extension ...).
        self.pending_program: Callable[[], Awaitable[None]] | None = None
        #: True right after a bridge ended (for ``park_after_bridge``).
        self.after_bridge = False
        self.destroyed = False
        self._digits: deque[tuple[float, str, bool]] = deque(maxlen=64)
        self._readers = 0
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<FSChannel {self.name} {self.uuid} {self.state.name} {self.answer_state}>"

    # ----------------------------------------------------------------- simple facts

    @property
    def hungup(self) -> bool:
        """True once a hang-up was requested (CHANNEL_HANGUP fired)."""
        return self.hangup_cause is not None

    @property
    def answered(self) -> bool:
        """True once CHANNEL_ANSWER fired."""
        return self.t_answered != 0

    @property
    def stopped(self) -> bool:
        """True when what the channel runs must end: hang-up or redirect."""
        return self.hangup_cause is not None or self.redirect is not None

    @property
    def language(self) -> str:
        """The language prompts play in: ``default_language`` (what ``set_language`` sets),
        ``en`` when unset."""
        return self.variables.get("default_language") or "en"

    def var(self, name: str, default: str = "") -> str:
        """A channel variable (``default`` when unset)."""
        return self.variables.get(name, default)

    def var_true(self, name: str) -> bool:
        """A variable read as FreeSWITCH's ``switch_true``."""
        return self.variables.get(name, "").strip().lower() in ("true", "yes", "on", "1", "t")

    def set_var(self, name: str, value: str | None) -> None:
        """Set (or, with None/empty, unset) a channel variable."""
        if value is None or value == "":
            self.variables.pop(name, None)
        else:
            self.variables[name] = value

    def expand(self, text: str) -> str:
        """Expand ``${var}`` references (unset variables expand to nothing)."""
        if "${" not in text:
            return text
        for _ in range(8):
            new = _VAR_REF.sub(lambda m: self._lookup(m.group(1)), text)
            if new == text:
                break
            text = new
        return text

    def _lookup(self, name: str) -> str:
        builtins = {
            "uuid": self.uuid,
            "destination_number": self.destination,
            "caller_id_number": self.cid_num,
            "caller_id_name": self.cid_name,
            "channel_name": self.name,
            "context": self.context,
        }
        return self.variables.get(name, builtins.get(name, ""))

    # ----------------------------------------------------------------- headers

    def profile_headers(self, prefix: str, *, as_other: bool = False) -> list[Header]:
        """The caller profile block (``Caller-*``, ``Other-Leg-*`` or ``Channel-*``).

        Empty fields are left out, as ``switch_caller_profile_event_set_data`` does.
        """
        p = prefix
        items: list[Header] = [
            (f"{p}Direction", self.direction),
            (f"{p}Logical-Direction", self.direction),
            (f"{p}Username", self.username),
            (f"{p}Dialplan", self.dialplan),
            (f"{p}Caller-ID-Name", self.cid_name),
            (f"{p}Caller-ID-Number", self.cid_num),
            (f"{p}Orig-Caller-ID-Name", self.orig_cid_name),
            (f"{p}Orig-Caller-ID-Number", self.orig_cid_num),
            (f"{p}Callee-ID-Name", self.callee_name),
            (f"{p}Callee-ID-Number", self.callee_num),
            (f"{p}Network-Addr", "127.0.0.1"),
            (f"{p}ANI", self.ani),
            (f"{p}Destination-Number", self.destination),
            (f"{p}Unique-ID", self.uuid),
            (f"{p}Source", self.source),
            (f"{p}Transfer-Source", self.transfer_source),
            (f"{p}Context", self.context),
            (f"{p}Channel-Name", self.name),
        ]
        if not as_other:
            items.append((f"{p}Profile-Index", str(self.profile_index)))
        items += [
            (f"{p}Profile-Created-Time", str(self.t_profile)),
            (f"{p}Channel-Created-Time", str(self.t_created)),
            (f"{p}Channel-Answered-Time", str(self.t_answered)),
            (f"{p}Channel-Progress-Time", str(self.t_progress)),
            (f"{p}Channel-Progress-Media-Time", "0"),
            (f"{p}Channel-Hangup-Time", str(self.t_hangup)),
            (f"{p}Channel-Transfer-Time", str(self.t_transfer)),
            (f"{p}Channel-Resurrect-Time", "0"),
            (f"{p}Channel-Bridged-Time", str(self.t_bridged)),
            (f"{p}Channel-Last-Hold", "0"),
            (f"{p}Channel-Hold-Accum", "0"),
            (f"{p}Screen-Bit", "true"),
            (f"{p}Privacy-Hide-Name", "false"),
            (f"{p}Privacy-Hide-Number", "false"),
        ]
        return [(key, value) for key, value in items if value != ""]

    def channel_headers(self, *, minimal: bool = False) -> list[Header]:
        """``Channel-State`` ... ``Answer-State``, the hang-up cause, codecs, the caller
        profile and the other leg: what ``switch_channel_event_set_data`` adds."""
        items: list[Header] = [
            ("Channel-State", self.state.name),
            ("Channel-Call-State", self.call_state.name),
            ("Channel-State-Number", str(int(self.state))),
            ("Channel-Name", self.name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", self.direction),
            ("Presence-Call-Direction", self.direction),
            ("Channel-HIT-Dialplan", "true" if self.hit_dialplan else "false"),
            ("Channel-Call-UUID", self.call_uuid),
            ("Answer-State", self.answer_state),
        ]
        if minimal:
            return items
        if self.hangup_cause is not None:
            items.append(("Hangup-Cause", self.hangup_cause))
        if self.has_media:
            items += [
                ("Channel-Read-Codec-Name", "PCMU"),
                ("Channel-Read-Codec-Rate", "8000"),
                ("Channel-Read-Codec-Bit-Rate", "64000"),
                ("Channel-Write-Codec-Name", "PCMU"),
                ("Channel-Write-Codec-Rate", "8000"),
                ("Channel-Write-Codec-Bit-Rate", "64000"),
            ]
        items += self.profile_headers("Caller-")
        if self.other is not None:
            items.append(("Other-Type", self.other_type))
            items += self.other.profile_headers("Other-Leg-", as_other=True)
        return items

    def variable_headers(self) -> list[Header]:
        """The ``variable_*`` headers, in the order the variables were first set."""
        return [(f"variable_{name}", value) for name, value in self.variables.items()]

    def build(
        self,
        name: str,
        *,
        pre: Sequence[Header] = (),
        post: Sequence[Header] = (),
        site: tuple[str, str, str] | None = None,
        minimal: bool = False,
    ) -> FSEvent:
        """An event about this channel, built as FreeSWITCH builds it (see module doc)."""
        headers = [*self.hub.common(name, site), *pre, *self.channel_headers(minimal=minimal)]
        if name not in _NO_VARIABLES and not minimal:
            headers += self.variable_headers()
        headers += post
        return FSEvent(name, headers)

    def fire(
        self,
        name: str,
        *,
        pre: Sequence[Header] = (),
        post: Sequence[Header] = (),
        site: tuple[str, str, str] | None = None,
        minimal: bool = False,
    ) -> FSEvent:
        """Build and publish an event about this channel."""
        event = self.build(name, pre=pre, post=post, site=site, minimal=minimal)
        self.hub.publish(event)
        return event

    # ----------------------------------------------------------------- state changes

    def set_state(self, new: ChannelState, *, fire: bool = True) -> None:
        """Move the running state to ``new`` and fire CHANNEL_STATE.

        Raises :class:`~callcenter.errors.IllegalTransition` for a move the table forbids.
        """
        if new == self.state:
            return
        if new not in _TRANSITIONS[self.state]:
            raise IllegalTransition(f"channel {self.name}: {self.state.name} -> {new.name}")
        self.state = new
        if fire:
            self.fire("CHANNEL_STATE")
        self.notify()

    def set_call_state(self, new: CallState) -> None:
        """Change ``Channel-Call-State`` and fire CHANNEL_CALLSTATE."""
        if new == self.call_state:
            return
        old, self.call_state = self.call_state, new
        self.fire(
            "CHANNEL_CALLSTATE",
            pre=[
                ("Original-Channel-Call-State", old.name),
                ("Channel-Call-State-Number", str(int(new))),
            ],
        )

    def mark_ring_ready(self) -> None:
        """The far end rings (SIP 180): CHANNEL_PROGRESS, call state RINGING."""
        if self.t_progress:
            return
        self.t_progress = now_us()
        self.set_var("progress_uepoch", str(self.t_progress))
        self.fire("CHANNEL_PROGRESS")
        self.set_call_state(CallState.RINGING)

    def mark_answered(self) -> bool:
        """Answer: CHANNEL_ANSWER then call state ACTIVE; False if already answered/gone."""
        if self.answered or self.hungup:
            return False
        self.t_answered = now_us()
        self.answer_state = "answered"
        self.has_media = True
        self.set_var("endpoint_disposition", "ANSWER")
        self.fire("CHANNEL_ANSWER")
        self.set_call_state(CallState.ACTIVE)
        self.notify()
        return True

    def hangup(self, cause: str = "NORMAL_CLEARING") -> bool:
        """Hang up: CHANNEL_HANGUP now; what runs winds down and the channel's task tears
        it down. False if it was already hung up."""
        if self.hangup_cause is not None:
            return False
        self.hangup_cause = cause if cause in HANGUP_CAUSES else "NORMAL_CLEARING"
        self.answer_state = "hangup"
        self.t_hangup = now_us()
        self.fire("CHANNEL_HANGUP")
        log.info("demofs_hangup", channel=self.name, uuid=self.uuid, cause=self.hangup_cause)
        self.notify()
        if self.loop_peer is not None:
            self.loop_peer.hangup(self.hangup_cause)
        return True

    def set_transfer(self, destination: str, context: str) -> None:
        """A transfer gives the channel a new caller profile for ``destination``."""
        stamp = now_us()
        self.transfer_source = f"{stamp // 1_000_000}:{self.uuid}:bl_xfer:{destination}/{context}"
        self.set_var("transfer_source", self.transfer_source)
        self.set_var("transfer_history", self.transfer_source)
        self.set_var("original_destination_number", self.destination)
        self.destination = destination
        self.context = context
        self.profile_index += 1
        self.t_profile = stamp
        self.t_transfer = stamp

    def final_variables(self) -> None:
        """The variables FreeSWITCH adds when the channel reports (CDR fields)."""
        end = self.t_hangup or now_us()
        cause = self.hangup_cause or "NORMAL_CLEARING"
        self.set_var("hangup_cause", cause)
        self.set_var("hangup_cause_q850", str(q850(cause)))
        self.set_var("start_stamp", local_stamp(self.t_created))
        if self.t_answered:
            self.set_var("answer_stamp", local_stamp(self.t_answered))
        if self.t_bridged:
            self.set_var("bridge_stamp", local_stamp(self.t_bridged))
        self.set_var("end_stamp", local_stamp(end))
        self.set_var("start_epoch", str(self.t_created // 1_000_000))
        self.set_var("start_uepoch", str(self.t_created))
        self.set_var("answer_epoch", str(self.t_answered // 1_000_000))
        self.set_var("answer_uepoch", str(self.t_answered))
        self.set_var("bridge_epoch", str(self.t_bridged // 1_000_000))
        self.set_var("bridge_uepoch", str(self.t_bridged))
        self.set_var("end_epoch", str(end // 1_000_000))
        self.set_var("end_uepoch", str(end))
        if "current_application" in self.variables:
            self.set_var("last_app", self.variables["current_application"])
            self.set_var("last_arg", self.variables.get("current_application_data"))
        name = f'"{self.cid_name}" ' if self.cid_name else ""
        self.set_var("caller_id", f"{name}<{self.cid_num}>")
        duration_us = max(end - self.t_created, 0)
        bill_us = max(end - self.t_answered, 0) if self.t_answered else 0
        self.set_var("duration", str(duration_us // 1_000_000))
        self.set_var("billsec", str(bill_us // 1_000_000))
        self.set_var("mduration", str(duration_us // 1000))
        self.set_var("billmsec", str(bill_us // 1000))
        self.set_var("uduration", str(duration_us))
        self.set_var("billusec", str(bill_us))

    # ----------------------------------------------------------------- interrupts

    def request_redirect(self, redirect: Redirect) -> None:
        """Make whatever runs end (``uuid_transfer``, ``uuid_bridge``, ``transfer``)."""
        self.redirect = redirect
        self.notify()

    def take_redirect(self) -> Redirect | None:
        """The pending redirect, cleared."""
        redirect, self.redirect = self.redirect, None
        return redirect

    def request_break(self, *, flush: bool = False) -> None:
        """``uuid_break``: stop the media operation that runs; ``flush`` drops queued apps."""
        self.break_count += 1
        if flush:
            self.inbox.clear()
        self.notify()

    def queue_app(self, item: QueuedApp) -> None:
        """Queue an application sent with ``sendmsg``."""
        self.inbox.append(item)
        self.notify()

    # ----------------------------------------------------------------- digits

    def deliver_digit(self, digit: str, *, duration: int = 2000, source: str = "RTP") -> None:
        """A DTMF digit arrives from the phone: DTMF event, then queued for the reader."""
        self.fire(
            "DTMF",
            post=[("DTMF-Digit", digit), ("DTMF-Duration", str(duration)), ("DTMF-Source", source)],
        )
        self._digits.append((time.monotonic(), digit, self._readers > 0))
        self.notify()

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Keep digits for the reader while the block runs.

        Digits that arrived while nobody read are delivered only if they are at most
        :data:`DIGIT_GRACE_SECONDS` old (the park loop would have eaten older ones).
        """
        now = time.monotonic()
        kept = [item for item in self._digits if item[2] or now - item[0] <= DIGIT_GRACE_SECONDS]
        self._digits.clear()
        self._digits.extend(kept)
        self._readers += 1
        try:
            yield
        finally:
            self._readers -= 1
            left = [(time.monotonic(), digit, False) for _, digit, _ in self._digits]
            self._digits.clear()
            self._digits.extend(left)

    @property
    def has_digit(self) -> bool:
        """True when a digit waits to be read."""
        return bool(self._digits)

    def take_digit(self) -> str | None:
        """The oldest digit waiting, or None."""
        return self._digits.popleft()[1] if self._digits else None

    # ----------------------------------------------------------------- watchers

    @property
    def changed(self) -> asyncio.Event:
        """Set (and replaced) on every change; capture it before checking conditions."""
        return self._changed

    def notify(self) -> None:
        """Wake everything waiting on this channel."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], limit: float | None) -> bool:
        """Wait until ``predicate()`` holds (True) or ``limit`` seconds pass (False)."""
        return await wait_change([self], predicate, limit)


async def wait_events(events: Sequence[asyncio.Event], limit: float | None) -> None:
    """Return when any of ``events`` is set or ``limit`` seconds passed."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def wait_change(
    channels: Sequence[FSChannel], predicate: Callable[[], bool], limit: float | None
) -> bool:
    """Wait until ``predicate()`` holds (True) or ``limit`` seconds pass (False), waking
    whenever one of ``channels`` changes."""
    loop = asyncio.get_running_loop()
    deadline = None if limit is None else loop.time() + limit
    while True:
        events = [channel.changed for channel in channels]
        if predicate():
            return True
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return False
        await wait_events(events, remaining)


def uptime_words(seconds: float) -> str:
    """``0 years, 0 days, 0 hours, 0 minutes, 7 seconds, 585 milliseconds, 355 microseconds``."""
    total_us = int(seconds * 1_000_000)
    secs, us = divmod(total_us, 1_000_000)
    minutes, secs = divmod(secs, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    years, days = divmod(days, 365)
    return (
        f"{years} years, {days} days, {hours} hours, {minutes} minutes, {secs} seconds, "
        f"{us // 1000} milliseconds, {us % 1000} microseconds"
    )


def prompt_name(path: str) -> str:
    """The prompt a file plays: ``/snd/en/welcome-menu.wav`` -> ``welcome-menu``."""
    base = path.rstrip("/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return stem if dot and stem and ext.isalnum() and len(ext) <= 4 else base


def channel_row(chan: FSChannel, hostname: str) -> dict[str, str]:
    """One row of ``show channels`` (the CSV columns and JSON keys FreeSWITCH prints)."""
    return {
        "uuid": chan.uuid,
        "direction": chan.direction,
        "created": local_stamp(chan.t_created),
        "created_epoch": str(chan.t_created // 1_000_000),
        "name": chan.name,
        "state": chan.state.name,
        "cid_name": chan.cid_name,
        "cid_num": chan.cid_num,
        "ip_addr": "127.0.0.1" if chan.direction == "inbound" else "",
        "dest": chan.destination,
        "application": chan.var("current_application"),
        "application_data": chan.var("current_application_data"),
        "dialplan": chan.dialplan if chan.hit_dialplan else "",
        "context": chan.context,
        "read_codec": "PCMU" if chan.has_media else "",
        "read_rate": "8000" if chan.has_media else "",
        "read_bit_rate": "64000" if chan.has_media else "",
        "write_codec": "PCMU" if chan.has_media else "",
        "write_rate": "8000" if chan.has_media else "",
        "write_bit_rate": "64000" if chan.has_media else "",
        "secure": "",
        "hostname": hostname,
        "presence_id": "",
        "presence_data": "",
        "accountcode": chan.var("accountcode"),
        "callstate": chan.call_state.name,
        "callee_name": chan.callee_name,
        "callee_num": chan.callee_num,
        "callee_direction": "",
        "call_uuid": chan.call_uuid if chan.direction == "outbound" else "",
        "sent_callee_name": "",
        "sent_callee_num": "",
        "initial_cid_name": chan.orig_cid_name,
        "initial_cid_num": chan.orig_cid_num,
        "initial_ip_addr": "127.0.0.1" if chan.direction == "inbound" else "",
        "initial_dest": chan.destination,
        "initial_dialplan": chan.dialplan if chan.hit_dialplan else "",
        "initial_context": chan.context,
    }
