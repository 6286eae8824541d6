"""Simulated Asterisk channels, bridges and a tiny dialplan kept as data.

A :class:`Channel` is what Asterisk calls a channel: ``PJSIP/1001-00000005`` with a state,
caller ID, variables and a place in the dialplan. It knows how to describe itself the way
AMI does (:meth:`Channel.snapshot`, the 14 headers every channel event carries, in
Asterisk's order) and emits its own ``Newstate``/``VarSet`` events through the sink it was
given. Applications wait on it for digits, hang-ups and redirects (:meth:`Channel.listen`,
:meth:`Channel.wait_interrupt`).

The dialplan is plain data: contexts of extensions, each a list of :class:`DialplanApp`::

    DemoDialplan({"800": [Answer(), AGI("agi://127.0.0.1:4573/inbound"), Hangup()]})
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, Literal

import structlog

from callcenter.demopbx.recording import Recording
from callcenter.errors import IllegalTransition

log = structlog.get_logger(__name__)

#: ``emit(event_name, privilege_class, headers)``: how channels publish AMI events.
EventSink = Callable[[str, str, list[tuple[str, str]]], None]

#: Digits pressed while no application listens are kept this long for the next listener
#: (Asterisk drops them; the grace covers the gap between two AGI commands in tests).
DIGIT_GRACE_SECONDS = 0.05

DTMF_DIGITS = "0123456789*#ABCD"


class ChannelState(enum.IntEnum):
    """Asterisk's ``ast_channel_state`` values (``ChannelState`` header, CHANNEL STATUS)."""

    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7

    @property
    def desc(self) -> str:
        """The ``ChannelStateDesc`` text Asterisk prints for this state."""
        return _STATE_DESC[self]


_STATE_DESC = {
    ChannelState.DOWN: "Down",
    ChannelState.RESERVED: "Rsrvd",
    ChannelState.OFFHOOK: "OffHook",
    ChannelState.DIALING: "Dialing",
    ChannelState.RING: "Ring",
    ChannelState.RINGING: "Ringing",
    ChannelState.UP: "Up",
    ChannelState.BUSY: "Busy",
}

#: The one transition table of a simulated channel (hang-up is not a state in Asterisk).
_TRANSITIONS: dict[ChannelState, frozenset[ChannelState]] = {
    ChannelState.DOWN: frozenset({ChannelState.RINGING, ChannelState.UP, ChannelState.BUSY}),
    ChannelState.RING: frozenset({ChannelState.UP}),
    ChannelState.RINGING: frozenset({ChannelState.UP, ChannelState.BUSY}),
    ChannelState.UP: frozenset(),
    ChannelState.BUSY: frozenset(),
    ChannelState.RESERVED: frozenset(),
    ChannelState.OFFHOOK: frozenset(),
    ChannelState.DIALING: frozenset(),
}

#: Asterisk's ``Cause-txt`` for the Q.850 causes the demo produces.
CAUSE_TEXT: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    26: "Answered elsewhere",
    27: "Destination out of order",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    127: "Interworking, unspecified",
}


class Wake(enum.Enum):
    """Non-digit items a media listener can receive."""

    #: Hang-up or redirect requested: look at the channel.
    INTERRUPT = "interrupt"
    #: The AGI transport wants the running command stopped (FastAGI command/close).
    ABORT = "abort"


def device_of(channel_name: str) -> str:
    """The device (``PJSIP/1001``) of a channel name (``PJSIP/1001-0000000a``; a Local
    channel's half: ``Local/room@context-00000001;2``)."""
    if channel_name.endswith((";1", ";2")):
        channel_name = channel_name[:-2]
    head, dash, tail = channel_name.rpartition("-")
    return (
        head
        if dash and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail)
        else channel_name
    )


def cid_value(value: str) -> str:
    """A caller-ID field as AMI snapshots print it: empty becomes ``<unknown>``."""
    return value or "<unknown>"


class Channel:
    """One simulated channel; create it through :class:`~callcenter.demopbx.DemoAsterisk`.

    Attributes other modules read: ``name``, ``uniqueid``, ``linkedid``, ``device``,
    ``state``, ``variables``, ``heard`` (prompts started, in order), ``bridge_history``
    (devices it was bridged to), ``moh_starts``, ``applications`` (run, in order),
    ``hangup_cause``, ``ended``.
    """

    def __init__(
        self,
        *,
        name: str,
        uniqueid: str,
        linkedid: str,
        caller_num: str,
        caller_name: str,
        context: str,
        exten: str,
        state: ChannelState,
        emit: EventSink,
        global_vars: Mapping[str, str],
        priority: int = 1,
        language: str = "en",
        on_timeout: Callable[[Channel], None] | None = None,
    ) -> None:
        self.name = name
        self.device = device_of(name)
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.caller_num = caller_num
        self.caller_name = caller_name
        self.connected_num = ""
        self.connected_name = ""
        self.language = language
        self.accountcode = ""
        self.context = context
        self.exten = exten
        self.priority = priority
        self.dnid = exten
        self.state = state
        self.variables: dict[str, str] = {}
        self.hangup_cause = 0
        self.application = ""
        self.application_data = ""
        self.created = time.monotonic()
        self.bridge: Bridge | None = None
        self.heard: list[str] = []
        #: (language, prompt) of every prompt started, in order (``heard`` with languages).
        self.heard_in: list[tuple[str, str]] = []
        #: Loop time until which the caller speaks (silence detection of RECORD FILE).
        self.talking_until = 0.0
        self.bridge_history: list[str] = []
        self.moh_class: str | None = None
        self.moh_starts = 0
        #: How many of those the channel's own application started (StartMusicOnHold,
        #: MusicOnHold, AGI SET MUSIC ON), not a dial's or a conference's music.
        self.music_plays = 0
        #: How many times RECORD FILE began recording the caller (a voicemail message).
        self.messages_recorded = 0
        #: Every application run on the channel (dialplan or AGI ``EXEC``), in order.
        self.applications: list[str] = []
        #: SIP headers added for its INVITE (``PJSIP_HEADER(add,<name>)``), in order.
        self.sip_headers: list[tuple[str, str]] = []
        #: While ChanSpy runs on this channel: its mode (listen, whisper, barge) and target.
        self.spy_mode: str | None = None
        self.spy_target = ""
        #: Every mode ChanSpy ran in on this channel, in order.
        self.spy_modes: list[str] = []
        #: AMI ``MuteAudio`` state: "" (not muted), ``in``, ``out`` or ``all``.
        self.muted = ""
        #: The other half of a Local channel (``;1`` <-> ``;2``): hanging up one ends both.
        self.local_peer: Channel | None = None
        #: The MixMonitor recording this channel, while one runs.
        self.mixmonitor: Recording | None = None
        self.hangup_requested = False
        #: The hang-up came from a soft hangup (AMI/AGI/dialplan), not from the phone.
        self.soft_hangup = False
        self.ended = False
        #: Set while an AsyncAGI session runs: where the ``AGI`` action queues commands.
        self.async_agi_queue: asyncio.Queue[tuple[str, str | None]] | None = None
        self._goto: tuple[str, str, int] | None = None
        self._emit = emit
        self._globals = global_vars
        self._interrupt = asyncio.Event()
        self._sink: asyncio.Queue[str | Wake] | None = None
        self._recent_digits: deque[tuple[float, str]] = deque(maxlen=32)
        self._changed = asyncio.Event()
        self._on_timeout = on_timeout
        self._absolute_timeout: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (
            f"<Channel {self.name} {self.state.desc} {self.context},{self.exten},{self.priority}>"
        )

    # ----------------------------------------------------------------- AMI description

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        """The channel headers of every AMI channel event, in Asterisk's order.

        ``prefix="Dest"`` gives the ``DestChannel``... block of Dial events.
        """
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(int(self.state))),
            (f"{prefix}ChannelStateDesc", self.state.desc),
            (f"{prefix}CallerIDNum", cid_value(self.caller_num)),
            (f"{prefix}CallerIDName", cid_value(self.caller_name)),
            (f"{prefix}ConnectedLineNum", cid_value(self.connected_num)),
            (f"{prefix}ConnectedLineName", cid_value(self.connected_name)),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", self.accountcode),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def emit(self, event: str, privilege: str, extra: Sequence[tuple[str, str]] = ()) -> None:
        """Publish ``event`` with this channel's snapshot followed by ``extra`` headers."""
        self._emit(event, privilege, [*self.snapshot(), *extra])

    # ----------------------------------------------------------------- state & variables

    def set_state(self, new: ChannelState) -> bool:
        """Move to ``new`` and emit ``Newstate``; False (no event) if already there.

        Raises :class:`~callcenter.errors.IllegalTransition` for a move the table forbids.
        """
        if new == self.state:
            return False
        if new not in _TRANSITIONS[self.state]:
            raise IllegalTransition(f"channel {self.name}: {self.state.name} -> {new.name}")
        self.state = new
        self.emit("Newstate", "call")
        self.notify()
        return True

    def set_var(self, name: str, value: str) -> None:
        """Set a channel variable and emit ``VarSet``; ``CHANNEL(language)`` sets the language,
        ``TIMEOUT(absolute)`` the absolute timeout (seconds; 0 clears it),
        ``CALLERID(name)`` / ``CALLERID(num)`` the caller ID (``NewCallerid``) and
        ``PJSIP_HEADER(add,<name>)`` a header of its INVITE (:attr:`sip_headers`)."""
        upper = name.upper()
        if upper == "CHANNEL(LANGUAGE)":
            self.language = value
            return
        if upper.startswith("PJSIP_HEADER(ADD,") and upper.endswith(")"):
            # res_pjsip_header_funcs: kept for the INVITE of an outgoing channel.
            self.sip_headers.append((name[len("PJSIP_HEADER(add,") : -1], value))
            return
        if upper in ("CALLERID(NAME)", "CALLERID(NUM)"):
            if upper == "CALLERID(NAME)":
                self.caller_name = value
            else:
                self.caller_num = value
            self.emit(
                "NewCallerid",
                "call",
                [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")],
            )
            return
        if upper == "TIMEOUT(ABSOLUTE)":
            self._set_absolute_timeout(value)
            return
        self.variables[name] = value
        self.emit("VarSet", "dialplan", [("Variable", name), ("Value", value)])

    @property
    def asks_auto_answer(self) -> bool:
        """Its INVITE asks the phone to answer by itself (``Call-Info: ...;answer-after=``)."""
        return any(
            name.lower() == "call-info" and "answer-after=" in value.lower()
            for name, value in self.sip_headers
        )

    def _set_absolute_timeout(self, value: str) -> None:
        # func_timeout.c: a new value replaces the old deadline; 0 (or less) removes it.
        try:
            seconds = float(value)
        except ValueError:
            log.warning("demopbx_bad_timeout", channel=self.name, value=value)
            return
        self.cancel_absolute_timeout()
        if seconds > 0 and self._on_timeout is not None:
            self._absolute_timeout = asyncio.get_running_loop().call_later(
                seconds, self._absolute_timeout_reached
            )

    def cancel_absolute_timeout(self) -> None:
        """Drop the absolute timeout, if one is set."""
        if self._absolute_timeout is not None:
            self._absolute_timeout.cancel()
            self._absolute_timeout = None

    def _absolute_timeout_reached(self) -> None:
        self._absolute_timeout = None
        if not self.ended and not self.hangup_requested and self._on_timeout is not None:
            self._on_timeout(self)

    def set_connected(self, num: str, name: str) -> None:
        """Update the connected line and emit ``NewConnectedLine``."""
        self.connected_num, self.connected_name = num, name
        self.emit("NewConnectedLine", "call")

    def get_var(self, name: str) -> str | None:
        """A variable or dialplan function value as ``GET VARIABLE`` sees it (None: unset);
        ``NAME:offset[:length]`` is a part of it, as in ``${EXTEN:3}``."""
        part = _SUBSTRING.fullmatch(name)
        if part is not None:
            whole = self.get_var(part.group(1))
            if whole is None:
                return None
            start = int(part.group(2))
            length = part.group(3)
            end = (
                None
                if length is None
                else (start + int(length) if int(length) >= 0 else int(length))
            )
            return whole[start:end]
        if name in self.variables:
            return self.variables[name]
        upper = name.upper()
        builtin = self._builtin(upper)
        if builtin is not None:
            return builtin
        return self._globals.get(name)

    def _builtin(self, upper: str) -> str | None:
        values = {
            "CALLERID(NUM)": self.caller_num,
            "CALLERID(NAME)": self.caller_name,
            "CALLERID(DNID)": self.dnid,
            "CONNECTEDLINE(NUM)": self.connected_num,
            "CONNECTEDLINE(NAME)": self.connected_name,
            "CHANNEL": self.name,
            "CHANNEL(NAME)": self.name,
            "CHANNEL(STATE)": self.state.desc,
            "CHANNEL(LANGUAGE)": self.language,
            "CHANNEL(LINKEDID)": self.linkedid,
            "CHANNEL(UNIQUEID)": self.uniqueid,
            "UNIQUEID": self.uniqueid,
            "EXTEN": self.exten,
            "CONTEXT": self.context,
            "PRIORITY": str(self.priority),
            "HANGUPCAUSE": str(self.hangup_cause),
            "LANGUAGE()": self.language,
        }
        if upper == "CALLERID(ALL)":
            num = self.caller_num or ""
            return f'"{self.caller_name}" <{num}>' if self.caller_name else f"<{num}>"
        if upper in values:
            value = values[upper]
            # Unset caller-ID parts read as empty, like Asterisk (the variable "exists").
            return value
        return None

    def substitute(self, text: str) -> str:
        """Expand ``${VAR}`` / ``${FUNC(arg)}`` references (inner ones first), then
        ``$[a = b]`` / ``$[a != b]`` comparisons (1 or 0; quotes around a side are kept
        out of it, as Asterisk's expression parser compares quoted strings)."""
        for _ in range(16):
            new = _VAR_REF.sub(lambda m: self.get_var(m.group(1)) or "", text)
            if new == text:
                break
            text = new
        if "$[" in text:
            text = _EXPRESSION.sub(_compare, text)
        return text

    # ----------------------------------------------------------------- hang-up / redirect

    def check_hangup(self) -> bool:
        """True once a hang-up or a redirect interrupts what the channel is doing."""
        return self.hangup_requested or self._goto is not None

    def request_hangup(
        self,
        cause: int | None,
        *,
        event: Literal["HangupRequest", "SoftHangupRequest"] = "HangupRequest",
        event_cause: int | None = None,
    ) -> bool:
        """Ask the channel to hang up (emits ``event``); False if it was already asked."""
        if self.hangup_requested or self.ended:
            return False
        if cause is not None:
            self.hangup_cause = cause
        extra = [("Cause", str(event_cause))] if event_cause is not None else []
        self.emit(event, "call", extra)
        self.hangup_requested = True
        self.soft_hangup = event == "SoftHangupRequest"
        self._interrupt_now()
        return True

    def request_goto(self, context: str, exten: str, priority: int) -> None:
        """An async goto (AMI ``Redirect``): whatever runs ends, the dialplan jumps there.

        The new location shows at once in the snapshots (trace 06: the AGI end events already
        carry it), while the running application winds down.
        """
        self.context, self.exten, self.priority = context, exten, priority
        self._goto = (context, exten, priority)
        self._interrupt_now()

    def take_goto(self) -> tuple[str, str, int] | None:
        """The pending redirect target, cleared; the interrupt is cleared too unless hung up."""
        target, self._goto = self._goto, None
        if target is not None and not self.hangup_requested:
            self._interrupt.clear()
        return target

    @property
    def goto_pending(self) -> bool:
        """True while a redirect waits to be applied."""
        return self._goto is not None

    def _interrupt_now(self) -> None:
        self._interrupt.set()
        if self._sink is not None:
            self._sink.put_nowait(Wake.INTERRUPT)
        self.notify()

    async def wait_interrupt(self) -> None:
        """Return once a hang-up or redirect is requested."""
        await self._interrupt.wait()

    # ----------------------------------------------------------------- media: digits

    @contextmanager
    def listen(self) -> Iterator[asyncio.Queue[str | Wake]]:
        """Receive digits (and :class:`Wake` items) while the ``with`` block runs.

        Digits pressed up to :data:`DIGIT_GRACE_SECONDS` before the block started are
        delivered first; older ones are dropped, as Asterisk drops digits nobody reads.
        """
        queue: asyncio.Queue[str | Wake] = asyncio.Queue()
        now = time.monotonic()
        while self._recent_digits:
            pressed, digit = self._recent_digits.popleft()
            if now - pressed <= DIGIT_GRACE_SECONDS:
                queue.put_nowait(digit)
        if self.check_hangup():
            queue.put_nowait(Wake.INTERRUPT)
        previous, self._sink = self._sink, queue
        try:
            yield queue
        finally:
            self._sink = previous
            # Digits queued but not read stay for the next reader (like frames still in the
            # channel's read queue).
            now = time.monotonic()
            while not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, str):
                    if previous is not None:
                        previous.put_nowait(item)
                    else:
                        self._recent_digits.append((now, item))

    def deliver_digit(self, digit: str) -> None:
        """A DTMF digit arrived from the phone."""
        if self._sink is not None:
            self._sink.put_nowait(digit)
        else:
            self._recent_digits.append((time.monotonic(), digit))

    def wake(self) -> None:
        """Stop the running media operation (FastAGI sent a command or closed)."""
        if self._sink is not None:
            self._sink.put_nowait(Wake.ABORT)

    # ----------------------------------------------------------------- watchers

    def notify(self) -> None:
        """Wake everything waiting in :meth:`wait_until`."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], limit: float) -> None:
        """Return once ``predicate()`` holds; raise ``TimeoutError`` after ``limit`` s."""
        async with asyncio.timeout(limit):
            while not predicate():
                await self._changed.wait()


_VAR_REF = re.compile(r"\$\{([^${}]*)\}")
_EXPRESSION = re.compile(r"\$\[\s*(\"[^\"]*\"|[^\s!=\]]*)\s*(!=|=)\s*(\"[^\"]*\"|[^\s\]]*)\s*\]")


def _compare(match: re.Match[str]) -> str:
    left, operator, right = (part.strip('"') for part in match.groups())
    return "1" if (left == right) == (operator == "=") else "0"


_SUBSTRING = re.compile(r"([^:]+):(-?[0-9]+)(?::(-?[0-9]+))?")


@dataclass(eq=False)
class Bridge:
    """A basic two-party bridge (``BridgeUniqueid`` is a UUID like Asterisk's)."""

    uniqueid: str
    channels: list[Channel] = field(default_factory=list)
    technology: str = "simple_bridge"

    def headers(self) -> list[tuple[str, str]]:
        """The ``Bridge*`` headers of bridge events, in Asterisk's order."""
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(len(self.channels))),
            ("BridgeVideoSourceMode", "none"),
        ]


# --------------------------------------------------------------------------- dialplan


@dataclass(frozen=True, slots=True)
class DialplanApp:
    """One dialplan priority: an application and its data (``Dial``, ``PJSIP/1001,20``)."""

    app: str
    data: str = ""


def AGI(url: str, *args: str) -> DialplanApp:
    """``AGI(url,arg1,...)``: ``agi://host:port/script`` (FastAGI) or ``agi:async``."""
    return DialplanApp("AGI", ",".join((url, *args)))


def Answer() -> DialplanApp:
    """``Answer()``."""
    return DialplanApp("Answer")


def AMD() -> DialplanApp:
    """``AMD()``: answering machine detection (sets AMDSTATUS, AMDCAUSE)."""
    return DialplanApp("AMD")


def Hangup(cause: int | None = None) -> DialplanApp:
    """``Hangup([cause])``."""
    return DialplanApp("Hangup", "" if cause is None else str(cause))


def Dial(target: str, timeout: int | None = None, options: str = "") -> DialplanApp:
    """``Dial(PJSIP/1001[&PJSIP/1002],timeout,options)``; ``${EXTEN}`` etc. expand."""
    parts = [target, "" if timeout is None else str(timeout), options]
    while parts and not parts[-1]:
        parts.pop()
    return DialplanApp("Dial", ",".join(parts))


def Playback(*prompts: str) -> DialplanApp:
    """``Playback(prompt1&prompt2)``."""
    return DialplanApp("Playback", "&".join(prompts))


def Wait(seconds: float) -> DialplanApp:
    """``Wait(seconds)``."""
    return DialplanApp("Wait", f"{seconds:g}")


def NoOp(text: str = "") -> DialplanApp:
    """``NoOp(text)``."""
    return DialplanApp("NoOp", text)


def MusicOnHold(moh_class: str = "default", duration: float | None = None) -> DialplanApp:
    """``MusicOnHold(class[,duration])``: until hang-up when no duration."""
    return DialplanApp(
        "MusicOnHold", moh_class if duration is None else f"{moh_class},{duration:g}"
    )


def ConfBridge(room: str) -> DialplanApp:
    """``ConfBridge(room)``."""
    return DialplanApp("ConfBridge", room)


def Set(name: str, value: str) -> DialplanApp:
    """``Set(name=value)``."""
    return DialplanApp("Set", f"{name}={value}")


Route = DialplanApp | Sequence[DialplanApp]

#: The context calls from :meth:`DemoAsterisk.call` start in (as in the real traces).
CALLERS_CONTEXT = "from-callers"
#: The context dialled agent legs show (``from-agents`` in the traces).
AGENTS_CONTEXT = "from-agents"
#: Supervisors' feature codes: the code, then the agent's number (``*811001``) -> the AGI
#: script (the agent goes as ``?agent=``).
LINE_CODE: Final = "*70"
"""``*70`` + agent: that agent opens a line at the calling phone (``agent-line?agent=``)."""
HOT_DESK_CODE: Final = "*71"
"""``*71`` + agent: that agent logs in at the calling phone (``agent-login?agent=``)."""
SWITCH_CODE: Final = "*28"
"""``*28`` + code: a supervisor flips a switch (``switch-toggle?code=``)."""
SWITCH_SCRIPT: Final = "switch-toggle"
DISPOSITION_CODE: Final = "*76"
"""``*76`` + digits (and ``*`` + minutes): the agent's disposition (``agent-disposition?code=``)."""
DISPOSITION_SCRIPT: Final = "agent-disposition"
QUEUE_STATUS_CODE: Final = "*85"
"""``*85`` + digits: a supervisor hears how a queue stands (``queue-status?code=``)."""
QUEUE_STATUS_SCRIPT: Final = "queue-status"
DESK_CODE: Final = "*86"
"""``*86`` + supervisor: that supervisor works at the calling phone from now on, or at their
own again when it is theirs (``supervisor-desk?supervisor=``)."""
DESK_SCRIPT: Final = "supervisor-desk"
DIAL_CODE: Final = "*77"
"""``*77`` + a number: the agent dials it through the centre (``agent-dial?number=``)."""
DIAL_SCRIPT: Final = "agent-dial"
QUEUE_CODE: Final = "*45"
"""``*45`` + digits: the agent joins or leaves a queue (``agent-queue?code=``)."""
QUEUE_SCRIPT: Final = "agent-queue"
SUPERVISOR_CODES: dict[str, str] = {
    "*81": "supervisor-listen",
    "*82": "supervisor-whisper",
    "*83": "supervisor-barge",
}
#: Default routes: extension -> AGI script name on the daemon.
DEFAULT_ROUTES: dict[str, str] = {
    "800": "inbound",
    "*70": "agent-line",
    "*71": "agent-login",
    "*72": "agent-logout",
    "*73": "agent-pause",
    "*74": "agent-unpause",
    "*75": "agent-ready",
    "*77": "agent-dial",
}


#: Seconds the AsyncAGI routes give a daemon to take a call (``TIMEOUT(absolute)``, as
#: dialplans/asterisk/extensions.conf sets it) before the ``T`` extension sends the caller
#: to the failover.
ASYNC_FAILOVER_AFTER = 20.0
#: What the failover does in the shipped dialplan (the place for a fallback).
FAILOVER_PROMPT = "ss-noservice"


def _normalise(route: Route) -> tuple[DialplanApp, ...]:
    return (route,) if isinstance(route, DialplanApp) else tuple(route)


class DemoDialplan:
    """Contexts of extensions, each a list of priorities.

    ``routes`` go into ``default_context`` (``from-callers``); ``contexts`` adds or
    replaces whole contexts. Extensions may be Asterisk patterns (``_X.``, ``_NXX``,
    ``_[1-5]XX``, ``!``); an exact extension wins over a pattern, then the longest pattern.
    ``fallback`` runs for an extension no context defines (for instance a ``Redirect`` to
    ``transfer,2000,1``); without it such a channel hangs up, as on a real Asterisk.
    """

    def __init__(
        self,
        routes: Mapping[str, Route] | None = None,
        *,
        contexts: Mapping[str, Mapping[str, Route]] | None = None,
        default_context: str = CALLERS_CONTEXT,
        fallback: Route | None = None,
    ) -> None:
        self.default_context = default_context
        self._contexts: dict[str, dict[str, tuple[DialplanApp, ...]]] = {}
        if routes:
            self._contexts[default_context] = {k: _normalise(v) for k, v in routes.items()}
        for name, exts in (contexts or {}).items():
            self._contexts.setdefault(name, {}).update({k: _normalise(v) for k, v in exts.items()})
        self.fallback = _normalise(fallback) if fallback is not None else None

    def without(self, *contexts: str) -> DemoDialplan:
        """This dialplan with ``contexts`` left out: a PBX admin who did not paste them."""
        kept = {k: v for k, v in self._contexts.items() if k not in contexts}
        return DemoDialplan(
            contexts=kept, default_context=self.default_context, fallback=self.fallback
        )

    @classmethod
    def default(
        cls,
        agi_url: str,
        *,
        agi_mode: str = "fastagi",
        failover_after: float | None = ASYNC_FAILOVER_AFTER,
    ) -> DemoDialplan:
        """The demo's dialplan: 800 and the agent feature codes end in the daemon.

        FastAGI: ``AGI(<agi_url>/<script>)``. AsyncAGI: ``AGI(agi:async,<script>)`` (the
        script name arrives as ``agi_arg_1``). Each route answers first and hangs up when
        the AGI returns. ``transfer,<ext>`` dials ``PJSIP/<ext>`` for 30 s, and so does any
        unknown destination of a ``Redirect``. ``callcenter-callback,s`` hands an answered
        queue callback (an Originate carrying ``CALLCENTER_CALLBACK``) back to the daemon as
        ``inbound?callback=<token>``; ``callcenter-campaign-amd,s`` runs ``AMD()`` first and
        adds ``&amd=${AMDSTATUS}``.

        With AsyncAGI the caller routes (800 and the callback) are guarded as the shipped
        dialplan guards them: ``Set(TIMEOUT(absolute)=<failover_after>)`` before
        ``AGI(agi:async,inbound?guard=<failover_after>)``, and a ``T`` extension playing
        ``ss-noservice``: a caller no daemon takes in time hears that instead of silence
        (``failover_after=None``: no guard).
        """
        base = agi_url.rstrip("/")
        guarded = agi_mode != "fastagi" and failover_after is not None

        def agi(script: str) -> DialplanApp:
            return AGI("agi:async", script) if agi_mode != "fastagi" else AGI(f"{base}/{script}")

        def route(script: str) -> list[DialplanApp]:
            if not guarded or not script.startswith("inbound"):
                return [Answer(), agi(script), Hangup()]
            after = f"{failover_after:g}"
            joiner = "&" if "?" in script else "?"
            guard = Set("TIMEOUT(absolute)", after)
            return [Answer(), guard, agi(f"{script}{joiner}guard={after}"), Hangup()]

        failover = [Playback(FAILOVER_PROMPT), Hangup()]
        routes: dict[str, Route] = {
            exten: route(script) for exten, script in DEFAULT_ROUTES.items()
        }
        for code, script in SUPERVISOR_CODES.items():
            routes[f"_{code}X."] = route(f"{script}?agent=${{EXTEN:{len(code)}}}")
        routes[f"_{HOT_DESK_CODE}X."] = route(
            f"{DEFAULT_ROUTES[HOT_DESK_CODE]}?agent=${{EXTEN:{len(HOT_DESK_CODE)}}}"
        )
        routes[f"_{LINE_CODE}X."] = route(
            f"{DEFAULT_ROUTES[LINE_CODE]}?agent=${{EXTEN:{len(LINE_CODE)}}}"
        )
        # "." (one or more): a switch code may be a single digit.
        routes[f"_{SWITCH_CODE}."] = route(f"{SWITCH_SCRIPT}?code=${{EXTEN:{len(SWITCH_CODE)}}}")
        routes[f"_{DISPOSITION_CODE}."] = route(
            f"{DISPOSITION_SCRIPT}?code=${{EXTEN:{len(DISPOSITION_CODE)}}}"
        )
        routes[f"_{QUEUE_CODE}."] = route(f"{QUEUE_SCRIPT}?code=${{EXTEN:{len(QUEUE_CODE)}}}")
        routes[f"_{DIAL_CODE}X."] = route(f"{DIAL_SCRIPT}?number=${{EXTEN:{len(DIAL_CODE)}}}")
        routes[f"_{QUEUE_STATUS_CODE}."] = route(
            f"{QUEUE_STATUS_SCRIPT}?code=${{EXTEN:{len(QUEUE_STATUS_CODE)}}}"
        )
        routes[f"_{DESK_CODE}X."] = route(f"{DESK_SCRIPT}?supervisor=${{EXTEN:{len(DESK_CODE)}}}")
        routes["h"] = NoOp("caller hangup handler")
        callback: dict[str, Route] = {"s": route("inbound?callback=${CALLCENTER_CALLBACK}")}
        detected = route("inbound?callback=${CALLCENTER_CALLBACK}&amd=${AMDSTATUS}")
        amd: dict[str, Route] = {"s": [detected[0], AMD(), *detected[1:]]}
        if guarded:
            routes["T"] = failover
            callback["T"] = failover
            amd["T"] = failover
        # Where the daemon redirects a supervisor's ChanSpy leg to end it (trace 11).
        hangup_context = {"hangup": (Hangup(),), "s": (NoOp("hangup handler"),)}
        dial_exten = [Dial("PJSIP/${EXTEN}", 30), Hangup()]
        return cls(
            routes,
            contexts={
                "callcenter-hangup": hangup_context,
                # Where the daemon moves an agent leg into a conference (Call.conference).
                "callcenter-conference": {"_[0-9a-zA-Z].": [ConfBridge("${EXTEN}"), Hangup()]},
                # What an answering agent hears of the caller's wait (Dial's U option).
                "callcenter-agent-hear": {
                    "s": [
                        Playback("${ARG1}"),
                        DialplanApp("SayNumber", "${ARG2}"),
                        Playback("${ARG3}"),
                        DialplanApp("Return", ""),
                    ]
                },
                # The same after a pause, with the announcement (Dial's U option, for
                # queues.<q>.member_delay).
                # Agents' phones that answer by themselves (Dial's b option, before the
                # phone rings).
                "callcenter-auto-answer": {
                    "s": [
                        DialplanApp(
                            "Set", "PJSIP_HEADER(add,Call-Info)=<sip:callcenter>;answer-after=0"
                        ),
                        DialplanApp("Return", ""),
                    ]
                },
                "callcenter-agent-wait": {
                    "s": [
                        DialplanApp("Wait", "${ARG1}"),
                        DialplanApp("ExecIf", '$["${ARG2}" != ""]?Playback(${ARG2})'),
                        DialplanApp("ExecIf", '$["${ARG3}" != ""]?SayNumber(${ARG3})'),
                        DialplanApp("ExecIf", '$["${ARG4}" != ""]?Playback(${ARG4})'),
                        DialplanApp("Return", ""),
                    ]
                },
                "transfer": {"_X.": dial_exten, "inbound": [agi("inbound"), Hangup()]},
                "callcenter": {"inbound": [Answer(), agi("inbound"), Hangup()]},
                # An answered queue callback (Originate with CALLCENTER_CALLBACK set).
                "callcenter-callback": callback,
                # A campaign's answered dial, through answering machine detection first.
                "callcenter-campaign-amd": amd,
            },
            fallback=dial_exten,
        )

    @property
    def contexts(self) -> Mapping[str, Mapping[str, tuple[DialplanApp, ...]]]:
        """Every context: extension (or pattern) -> priorities."""
        return self._contexts

    def steps(self, context: str, exten: str) -> tuple[DialplanApp, ...] | None:
        """The priorities of ``exten`` in ``context`` (fallback applied), or None."""
        exts = self._contexts.get(context, {})
        if exten in exts:
            return exts[exten]
        best: tuple[int, tuple[DialplanApp, ...]] | None = None
        for pattern, steps in exts.items():
            if pattern.startswith("_") and _matches(pattern[1:], exten):
                score = len(pattern)
                if best is None or score > best[0]:
                    best = (score, steps)
        if best is not None:
            return best[1]
        return self.fallback if exten != "h" else None

    def lookup(self, context: str, exten: str, priority: int) -> DialplanApp | None:
        """The application at ``context,exten,priority`` or None past the last priority."""
        steps = self.steps(context, exten)
        if steps is None or not 1 <= priority <= len(steps):
            return None
        return steps[priority - 1]


def _matches(pattern: str, exten: str) -> bool:
    regex = []
    i = 0
    while i < len(pattern):
        c = pattern[i].upper()
        if c == "X":
            regex.append("[0-9]")
        elif c == "Z":
            regex.append("[1-9]")
        elif c == "N":
            regex.append("[2-9]")
        elif c == ".":
            regex.append(".+")
        elif c == "!":
            regex.append(".*")
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                return False
            regex.append("[" + re.escape(pattern[i + 1 : end]).replace("\\-", "-") + "]")
            i = end
        else:
            regex.append(re.escape(pattern[i]))
        i += 1
    return re.fullmatch("".join(regex), exten) is not None
