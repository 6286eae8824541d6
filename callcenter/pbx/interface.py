"""The PBX interface: the only thing the engine knows about a PBX.

Drivers (``callcenter.pbx.asterisk``, ``callcenter.pbx.freeswitch``) turn their wire protocols
into this surface. Two objects matter:

* :class:`PBX` - one connection to one PBX: starts and stops, hands every call the dialplan
  gives us to a :data:`CallHandler`, and runs PBX-wide commands (hang up any channel,
  originate, list channels). It publishes normalized :data:`PBXEvent` values to listeners.
* :class:`Call` - one caller's channel under our control (an AGI session on Asterisk, a parked
  or socket-controlled channel on FreeSWITCH). Every command is awaitable, has a timeout, and
  raises :class:`~callcenter.errors.CallHungUp` once the caller has hung up: a hang-up fails
  every pending command of the call at once.

Nothing here mentions AMI, AGI or ESL.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, runtime_checkable


class HangupCause(enum.IntEnum):
    """Q.850 cause codes, named as Asterisk and FreeSWITCH name them."""

    UNSPECIFIED = 0
    UNALLOCATED_NUMBER = 1
    NO_ROUTE_DESTINATION = 3
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONSE = 18
    NO_ANSWER = 19
    SUBSCRIBER_ABSENT = 20
    CALL_REJECTED = 21
    NUMBER_CHANGED = 22
    DESTINATION_OUT_OF_ORDER = 27
    INVALID_NUMBER_FORMAT = 28
    NORMAL_UNSPECIFIED = 31
    NORMAL_CIRCUIT_CONGESTION = 34
    NETWORK_OUT_OF_ORDER = 38
    NORMAL_TEMPORARY_FAILURE = 41
    SWITCH_CONGESTION = 42
    REQUESTED_CHAN_UNAVAIL = 44
    BEARERCAPABILITY_NOTAVAIL = 58
    INCOMPATIBLE_DESTINATION = 88
    RECOVERY_ON_TIMER_EXPIRE = 102
    INTERWORKING = 127
    ORIGINATOR_CANCEL = 487
    LOSE_RACE = 502
    MANAGER_REQUEST = 503

    @classmethod
    def from_code(cls, code: int | str | None) -> HangupCause:
        """The cause for a numeric code (str or int); unknown codes give ``UNSPECIFIED``."""
        try:
            return cls(int(code)) if code not in (None, "") else cls.UNSPECIFIED
        except ValueError:
            return cls.UNSPECIFIED

    @classmethod
    def from_name(cls, name: str) -> HangupCause:
        """The cause for a Q.850 name such as ``NORMAL_CLEARING``; unknown: ``UNSPECIFIED``."""
        return cls.__members__.get(name.strip().upper(), cls.UNSPECIFIED)


class DialStatus(enum.StrEnum):
    """How ringing a device ended (the values of Asterisk's ``DIALSTATUS``)."""

    ANSWER = "ANSWER"
    NOANSWER = "NOANSWER"
    BUSY = "BUSY"
    CHANUNAVAIL = "CHANUNAVAIL"
    CONGESTION = "CONGESTION"
    CANCEL = "CANCEL"


Transport = Literal["fastagi", "asyncagi", "esl-inbound", "esl-outbound", "demo"]

ANNOUNCE_FILE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
"""What :meth:`Call.dial` accepts as ``announce``: it lands inside Asterisk's ``Dial``
option ``A()`` and a FreeSWITCH dial string, where ``,``, ``)``, ``:`` or a quote would
end it early."""
RINGBACK: Final = "ringback"
"""The hold music "class" that is a ring tone, not music (``queues.<q>.hold_music``)."""
CALLER_NAME: Final = re.compile(r"[A-Za-z0-9.@+*#_-][A-Za-z0-9 .@+*#_-]{0,39}")
"""A caller name a dial may show on the rung phones (:meth:`Call.dial`'s ``caller_name``)."""
MAX_DELAY: Final = 60.0
"""The longest pause :meth:`Call.dial`'s ``delay`` gives an answering device, in seconds."""
RINGBACK_CLASS: Final = "callcenter-ringback"
"""The Asterisk music-on-hold class whose sound is a ring tone (``musiconhold.conf``, as
dialplans/asterisk/musiconhold.conf defines it): what a member alone in a room hears
while an agent's own dial rings (:meth:`Call.wait_in_room`'s ``ringing``)."""
REPORT_HOLD_PROMPT: Final = "queue-reporthold"
"""What an agent hears before the caller's wait (:meth:`Call.dial`'s ``report_wait``):
Asterisk's "Hold time"."""


def reported_wait(seconds: float) -> tuple[int, str]:
    """How a wait is told to the agent who takes the caller (app_queue's reportholdtime):
    whole minutes and ``queue-minutes`` from a minute on, else whole seconds and
    ``queue-seconds``."""
    whole = max(0, int(seconds))
    if whole >= 60:
        return whole // 60, "queue-minutes"
    return whole, "queue-seconds"


HungUpBy = Literal["caller", "peer", "system"]


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the PBX told us about a call when it handed it over."""

    call_id: str
    """The PBX's unique id of the caller's channel (Asterisk Uniqueid, FreeSWITCH Unique-ID)."""
    channel: str
    """The channel name, e.g. ``PJSIP/sipp-00000001`` or ``sofia/lab/1000@127.0.0.1``."""
    caller_num: str
    caller_name: str
    dialed: str
    """The number the caller dialed (DNID / destination number)."""
    context: str
    route: str
    """Which hook handed the call over: ``inbound``, ``agent-login``... (the AGI script path)."""
    transport: Transport
    linked_id: str = ""
    accountcode: str = ""
    language: str = "en"
    args: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    """Query parameters of the hook, e.g. ``inbound?queue=sales`` gives ``{"queue": "sales"}``."""
    device: str = ""
    """The phone that placed the call as a device the PBX rings: ``PJSIP/1010`` (Asterisk,
    the channel without its suffix), ``user/1010`` (a FreeSWITCH SIP user); empty when the
    channel names none (a trunk user, a local channel): an agent hot-desking there."""


@dataclass(frozen=True, slots=True)
class DialResult:
    """The outcome of :meth:`Call.dial`, returned when ringing failed or the bridge ended."""

    status: DialStatus
    peer_channel: str | None = None
    talk_seconds: float = 0.0
    hung_up_by: HungUpBy | None = None
    """Who ended an answered bridge: the caller, the peer, or us (``system``, see unbridge)."""
    cause: HangupCause = HangupCause.UNSPECIFIED


SayKind = Literal["digits", "number", "date", "time"]
"""What :meth:`Call.say` says: ``"1234"`` digit by digit, a number, a date
(``YYYY-MM-DD``) or a time of day (``HH:MM``)."""


SHORTEST_MESSAGE = 0.1
"""Seconds under which a recording is no message (see :attr:`RecordResult.empty`): the
time of the key that ended it, not of anything said."""


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of :meth:`Call.record`.

    ``ended``: ``dtmf`` (the caller pressed an end key: ``digit``), ``timeout`` (the maximum
    length or the silence limit was reached), ``hangup`` (the caller hung up: the message is
    kept, the call is over) or ``error`` (the PBX could not write the file: nothing kept).
    ``seconds`` is the recorded length; ``path`` the file written, with its extension.
    """

    path: str
    seconds: float
    ended: Literal["dtmf", "timeout", "hangup", "error"]
    digit: str = ""

    @property
    def empty(self) -> bool:
        """Nothing worth keeping was recorded: the caller ended it (a key during the beep,
        a hang-up at the tone) within :data:`SHORTEST_MESSAGE` seconds."""
        return self.ended != "error" and self.seconds < SHORTEST_MESSAGE


class Call(Protocol):
    """One caller's channel under our control. All commands raise ``CallHungUp`` after hangup."""

    @property
    def info(self) -> CallInfo: ...

    @property
    def hung_up(self) -> bool:
        """True once the caller's channel has hung up."""
        ...

    @property
    def hangup_cause(self) -> HangupCause:
        """The caller channel's hangup cause once known (``UNSPECIFIED`` before)."""
        ...

    async def wait_hangup(self) -> None:
        """Return when the caller hangs up (immediately if already hung up)."""
        ...

    @property
    def keys_without_command(self) -> bool:
        """True when :meth:`read_digits` without a prompt sends nothing to the PBX now: the
        keys come as events (while hold music plays: FreeSWITCH's DTMF events, Asterisk's
        AMI DTMFEnd with AMI up), so it may be cancelled at once. False: it is a PBX
        command, which runs to its timeout once sent."""
        ...

    async def answer(self) -> None:
        """Answer the channel (a no-op when already answered)."""
        ...

    async def play(self, prompts: Sequence[str], *, interrupt_digits: str = "") -> str:
        """Play prompts in order; a digit in ``interrupt_digits`` stops playback (barge-in).

        Returns the digit that interrupted, or ``""`` when every prompt played out.
        """
        ...

    async def read_digits(
        self,
        prompt: str | None,
        *,
        max_digits: int,
        timeout: float,
        terminator: str = "#",
    ) -> str:
        """Play ``prompt`` (interruptible by any digit) and collect up to ``max_digits`` digits.

        Stops at ``max_digits``, at ``terminator`` (not included), or when ``timeout`` seconds
        pass without a digit. Returns the digits (``""`` on timeout with none).
        """
        ...

    async def say(self, kind: SayKind, value: str, *, interrupt_digits: str = "") -> str:
        """Say ``value`` in the caller's language (see :data:`SayKind`).

        Returns the digit in ``interrupt_digits`` that stopped it, or ``""``. Raises
        ``CommandFailed`` for a value that is not of its kind (``"12a"`` as a number).
        """
        ...

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
        """Record the caller into ``path`` (no extension; the PBX adds ``file_format``).

        Ends at ``max_seconds``, after ``silence_seconds`` of silence (0: never), or on a key
        in ``end_digits``. A caller hanging up ends the recording without raising: the result
        says ``ended="hangup"`` and the call counts as hung up. The PBX writes the file, so
        ``path`` is a path on the PBX machine.
        """
        ...

    async def set_language(self, language: str) -> None:
        """Play prompts and say things in ``language`` (``"fr"``) from now on."""
        ...

    async def start_hold_music(self, music_class: str = "default") -> None:
        """Start music on hold; it plays until stopped or until the next dial/play.
        ``RINGBACK`` plays a ring tone instead (app_queue's ``r`` option), and a dial
        with ``hold_music=RINGBACK`` lets the caller hear ringing too."""
        ...

    async def stop_hold_music(self) -> None: ...

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
        """Ring ``device`` (``PJSIP/1001``) for ``timeout`` s and bridge the caller to it.

        ``caller_name``: the name the rung phones show for the caller (their number stays
        the caller's), such as ``sales Ann``: letters, digits, spaces and ``.-_@+*#`` only
        (``CommandFailed`` otherwise). On Asterisk it becomes the caller channel's
        ``CALLERID(name)`` from then on, as app_queue setups prefix it.

        The caller hears music on hold meanwhile (``hold_music``: True, or the name of a
        music class) or ringing (False). ``on_answer`` is
        called with the peer channel as soon as the device answers. ``announce``: a sound
        file played to the device once it answered, before the bridge (letters, digits and
        ``_./-`` only; ``CommandFailed`` otherwise); the device then counts as answered
        (``on_answer``, the talk time) once bridged, and one that hangs up before gives
        ``NOANSWER``. ``report_wait``: seconds the caller waited, told to the device the
        same way after ``announce`` (:data:`REPORT_HOLD_PROMPT`, then
        :func:`reported_wait`'s number and unit; Asterisk runs the shipped dialplan's
        ``callcenter-agent-hear`` through Dial's ``U()`` for it). ``delay``: seconds of
        silence the device hears once it answered, before ``announce`` and the wait
        (app_queue's memberdelay; Asterisk runs the shipped ``callcenter-agent-wait``
        through ``U()`` then, with the announcement and the wait); the device counts as
        answered once bridged, as with ``announce``. Returns when ringing failed
        or, after an answer, when the bridge ended; the caller stays under our control if the
        peer hung up or :meth:`unbridge` was used. Raises ``CallHungUp`` only if the caller hung
        up before the device answered; a caller hanging up mid-bridge returns a result with
        ``hung_up_by="caller"``. ``auto_answer``: ask the rung phones to answer by
        themselves (Asterisk: Dial's ``b()`` runs the shipped ``callcenter-auto-answer`` on
        each, which adds the header; FreeSWITCH: ``sip_auto_answer=true``).
        """
        ...

    async def unbridge(self) -> None:
        """Hang up the bridged peer leg; :meth:`dial` then returns ``hung_up_by="system"``."""
        ...

    async def redirect(self, context: str, exten: str, priority: int = 1) -> None:
        """Send the caller to a dialplan location; the call leaves our control."""
        ...

    async def get_variable(self, name: str) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def hangup(self, cause: HangupCause = HangupCause.NORMAL_CLEARING) -> None:
        """Hang up the caller; idempotent and never raises ``CallHungUp``."""
        ...

    async def spy(self, target_channel: str, mode: SpyMode) -> SpySession:
        """Let this caller (a supervisor who dialled a feature code) spy on
        ``target_channel`` (an agent leg, as :attr:`DialResult.peer_channel` names it) in
        ``mode``: ChanSpy / eavesdrop on the caller's own channel. Returns once the PBX took
        the command; the session starts when the spy runs and ends when the spied-on leg
        goes, when the caller hangs up, or at :meth:`SpySession.stop` (the caller is then
        hung up). Raises ``CallHungUp`` or ``CommandFailed`` (no such leg, bad mode)."""
        ...

    async def hand_back(self) -> None:
        """The engine is done with the call: give the channel back to the PBX now, not when
        the handler returns. A caller still up goes on in the dialplan (Asterisk, FreeSWITCH's
        socket) or is hung up where there is none to go on in (a parked FreeSWITCH call); a
        hung-up channel is let go, so the PBX can tear it down. When the handler was
        cancelled by the daemon stopping, a caller bridged to a peer keeps talking.
        Idempotent, never raises; commands afterwards raise ``CallHungUp``. The handler's
        return does it too."""
        ...

    async def fail_over(self) -> None:
        """The engine will not serve this caller (the daemon is draining): send them to the
        PBX's failover now, as if no daemon had taken the call. Asterisk: ``AGI()`` ends and
        the shipped dialplan goes on to its ``failover`` label; FreeSWITCH's socket: ``resume``,
        then the socket closes and the dialplan's next action (the transfer to the failover)
        runs;
        a parked FreeSWITCH call is transferred to the failover extension in its context
        (hung up when that is refused, never left in silent park). Then as
        :meth:`hand_back`: idempotent, never raises."""
        ...

    async def hold(self) -> None:
        """Put the bridged call on hold: caller and agent stop hearing each other.

        FreeSWITCH: the caller hears music on hold meanwhile. Asterisk: the caller hears
        silence (there is no AMI way to start music on a channel that sits in an AGI
        ``Dial``; see the driver). The agent leg stays up. Raises ``CommandFailed`` when the
        call is not bridged.
        """
        ...

    async def unhold(self) -> None:
        """Take the call off hold (a no-op when it is not on hold)."""
        ...

    async def start_recording(self, path: str) -> None:
        """Record both sides of the call into ``path`` (a path on the PBX machine, with its
        extension, e.g. ``/var/spool/rec/123.wav``) until :meth:`stop_recording` or hang-up.

        Works before, during and after a bridge; does not block the call.
        """
        ...

    async def stop_recording(self) -> None:
        """Stop the recording started by :meth:`start_recording` (no-op when none runs)."""
        ...

    async def mute_recording(self, muted: bool) -> None:
        """Record silence from now on (``muted``), or the call again: while a caller gives
        card details, say. The file keeps its length and its time line. Raises
        ``CommandFailed`` when no recording runs."""
        ...

    async def conference(self, room: str, *, invite: Sequence[str] = ()) -> Conference:
        """Turn the bridged call into a conference room ``room`` (letters, digits, ``_``
        and ``-``, 2 to 64 characters): the agent leg is moved into the room, the caller
        joins it, then each device in ``invite`` (``PJSIP/2000``) is rung into it.

        The caller's channel stays under our control: the running :meth:`dial` goes on
        while the caller is in the room and returns when the caller leaves it (see
        :meth:`Conference.end`) with ``hung_up_by="system"``, or ``"caller"`` if the caller
        hung up. Returns once the caller is in the room. Raises ``CommandFailed`` when the
        call is not bridged or a conference already runs.
        """
        ...

    async def wait_in_room(
        self, room: str, *, on_digit: Callable[[str], None], ringing: bool = False
    ) -> None:
        """Sit in conference room ``room`` (letters, digits, ``_`` and ``-``, 2 to 64
        characters) on this call's own channel until :meth:`leave_room` takes it out (the
        call goes on under our control) or the caller hangs up (``CallHungUp``). Keys
        pressed meanwhile go to ``on_digit``, one at a time. An agent on an open line waits
        for callers this way: each caller is dialled into the room
        (:meth:`PBX.room_device`). ``ringing``: the call hears a ring tone while it is
        alone in the room (an agent's own dial while the number rings), silence otherwise;
        it stops as the first other member joins (Asterisk: the music class
        :data:`RINGBACK_CLASS` played to a member alone; FreeSWITCH: the ring
        ``tone_stream`` played to the member). Raises ``CommandFailed`` for a bad room name."""
        ...

    async def leave_room(self) -> None:
        """Take this call out of the room :meth:`wait_in_room` keeps it in (that returns).
        Does nothing when it is in none."""
        ...


CallHandler = Callable[[Call], Awaitable[None]]
"""The engine's entry point: called once per call, in its own task, for the call's lifetime."""


@dataclass(frozen=True, slots=True)
class PBXConnected:
    pbx: str


@dataclass(frozen=True, slots=True)
class PBXDisconnected:
    pbx: str
    reason: str


@dataclass(frozen=True, slots=True)
class PBXClaimLost:
    """Another daemon's fresh mark replaced this daemon's claim on the PBX
    (:mod:`callcenter.pbx.claim`): two daemons drive it, and this one, which lost, stops.
    ``other`` names the winner (pid, host, age of its mark)."""

    pbx: str
    other: str


@dataclass(frozen=True, slots=True)
class ChannelHungUp:
    channel: str
    call_id: str
    cause: HangupCause


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    device: str
    state: str
    """``NOT_INUSE``, ``INUSE``, ``RINGING``, ``UNAVAILABLE``... (Asterisk device states)."""


@dataclass(frozen=True, slots=True)
class DigitPressed:
    """A key pressed on the far leg of a running :meth:`Call.dial`: the phone the caller is
    bridged to (an agent's), whose keys the daemon does not read otherwise."""

    channel: str
    digit: str


SpyMode = Literal["listen", "whisper", "barge"]


class LampState(enum.StrEnum):
    """What a phone's busy lamp (a BLF key) shows for an agent or a queue."""

    OFF = "off"
    """Free: an agent ready for a call; a queue nobody waits in."""
    FLASHING = "flashing"
    """Ringing: an agent's phone rings for a caller; a queue's caller waits too long."""
    ON = "on"
    """Busy: an agent on a call or in after-call work; callers wait in a queue."""
    HOLD = "hold"
    """An agent on a break (phones show it as a call on hold)."""
    UNAVAILABLE = "unavailable"
    """An agent logged out."""


"""How a supervisor takes part in an agent's call: ``listen`` (hears both sides, nobody
hears them), ``whisper`` (the agent hears the supervisor, the caller does not), ``barge``
(everybody hears everybody)."""


class SpySession(Protocol):
    """A supervisor's leg spying on an agent's leg (see :meth:`PBX.spy`)."""

    @property
    def channel(self) -> str:
        """The supervisor's leg (channel name once the PBX reported it, else its id)."""
        ...

    @property
    def mode(self) -> SpyMode: ...

    @property
    def started(self) -> bool:
        """True once the supervisor answered and the spy runs."""
        ...

    @property
    def ended(self) -> bool:
        """True once the supervisor's leg is gone (stopped, hung up, or never answered)."""
        ...

    async def wait_started(self) -> None:
        """Return once the spy runs; raises ``CommandFailed`` if the session ended first
        (the supervisor did not answer, or the leg failed)."""
        ...

    async def wait_ended(self) -> None:
        """Return when the supervisor's leg is gone."""
        ...

    def on_mode_changed(self, callback: Callable[[SpyMode], None]) -> None:
        """Have ``callback`` called with the new mode when the supervisor switches it from
        their phone's keypad (ChanSpy's 4/5/6, eavesdrop's 0/2/3): the PBX does that by
        itself, and the records must still say what the caller heard."""
        ...

    async def set_mode(self, mode: SpyMode) -> None:
        """Switch between listen, whisper and barge without ringing the supervisor again.

        Raises ``CommandFailed`` when the session has ended.
        """
        ...

    async def stop(self) -> None:
        """End the spy and the supervisor's leg; the agent's call goes on. Idempotent."""
        ...


class Conference(Protocol):
    """A conference room holding a caller under our control (see :meth:`Call.conference`)."""

    @property
    def room(self) -> str: ...

    @property
    def members(self) -> Sequence[str]:
        """The channels in the room now, in the order they joined."""
        ...

    @property
    def ended(self) -> bool:
        """True once the caller left the room (ended, kicked, or hung up)."""
        ...

    async def wait_ended(self) -> None:
        """Return when the caller has left the room."""
        ...

    @property
    def aside(self) -> Sequence[str]:
        """The channels in the room's side room now, in the order they joined (see
        :meth:`step_aside`)."""
        ...

    async def invite(
        self, device: str, *, caller_id: str = "", timeout: float = 30.0, aside: bool = False
    ) -> None:
        """Ring ``device`` and put it into the room once answered (``aside``: into the side
        room). Returns when the PBX accepted the request; a device that does not answer
        simply never joins."""
        ...

    async def step_aside(self, channel: str) -> None:
        """Move ``channel`` (one of :attr:`members`, not the caller) into the side room:
        it talks there with whoever else is there, and the caller does not hear it (the
        caller, alone in the room, hears music on hold). Returns when the PBX took the
        command; :attr:`aside` shows the move a moment later. Raises ``CommandFailed``
        when ``channel`` is not a member."""
        ...

    async def bring_back(self, channel: str) -> None:
        """Move ``channel`` (one of :attr:`aside`) back into the caller's room. Raises
        ``CommandFailed`` when it is not in the side room."""
        ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each change of :attr:`members`, :attr:`aside` or
        :attr:`ended` (one callback; a second call replaces it)."""
        ...

    async def kick(self, channel: str) -> None:
        """Take ``channel`` (one of :attr:`members` or :attr:`aside`) out of its room; a
        kicked agent or invited leg hangs up, a kicked caller ends the conference for us."""
        ...

    async def end(self) -> None:
        """Take everybody out of both rooms (the other legs hang up) and return once the
        caller is back under our control (the :meth:`Call.dial` it ran in returns).
        Idempotent."""
        ...


PBXEvent = (
    PBXConnected
    | PBXDisconnected
    | PBXClaimLost
    | ChannelHungUp
    | DeviceStateChanged
    | DigitPressed
)
PBXListener = Callable[[PBXEvent], None]


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """One live channel as the PBX reports it (for resynchronisation)."""

    channel: str
    call_id: str
    linked_id: str
    state: str
    caller_num: str
    context: str
    exten: str
    application: str
    bridged_to: str | None = None
    application_data: str = ""
    """The running application's arguments (a conference's room name, say)."""
    room: str = ""
    """The conference room the channel sits in ('' when in none)."""
    room_leg: str = ""
    """For either half of a room device (:meth:`PBX.room_device`): the room it was dialled
    into ('' for any other channel)."""


ORIGINATE_FAILURES: Final = ("busy", "no-answer", "rejected", "unavailable", "congestion", "failed")
"""How an originated call can fail: the device was busy, rang out, declined the call, is not
there (unregistered, no route), the network was congested, or anything else."""


@runtime_checkable
class PBX(Protocol):
    """One PBX the daemon serves."""

    name: str

    async def claim(self) -> None:
        """Before :meth:`start`: mark the PBX as this daemon's (:mod:`callcenter.pbx.claim`),
        over a short link of its own. Raises ``PBXClaimed`` naming another daemon whose mark
        is fresh, and what :meth:`start` raises when the PBX cannot be reached. Once started
        the driver keeps the mark fresh; :meth:`stop` clears it."""
        ...

    async def start(self, handler: CallHandler) -> None:
        """Connect (and listen for AGI/socket hooks); raises ``AuthenticationError`` on a bad
        secret and ``PBXConnectionError`` if the first connection fails."""
        ...

    async def stop(self) -> None:
        """Stop accepting calls, close connections; calls in progress are not hung up."""
        ...

    def subscribe(self, listener: PBXListener) -> None:
        """Register a listener for normalized PBX events (called from the event loop)."""
        ...

    async def hangup_channel(
        self, channel: str, cause: HangupCause = HangupCause.NORMAL_CLEARING
    ) -> None:
        """Hang up any channel by name, or by its :attr:`ChannelSnapshot.call_id` (where
        names are not unique: two FreeSWITCH loopback pairs into one room); one already
        gone counts as done."""
        ...

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
        """Ring ``device`` and, when it answers, send it to ``context,exten,1``; returns
        once the PBX took the request, with a future of how it ended: ``""`` when the
        device answered, else one of ORIGINATE_FAILURES (``busy`` as soon as the PBX
        knows). The future is cancelled when the PBX cannot say any more (its link was
        lost); callers keep a timeout of their own.
        ``auto_answer``: ask the phone to answer by itself (Asterisk: a ``Call-Info:
        ...;answer-after=0`` header through ``PJSIP_HEADER``; FreeSWITCH:
        ``sip_auto_answer=true``).

        Never resent after a reconnect (not idempotent).
        """
        ...

    async def channels(self) -> list[ChannelSnapshot]:
        """Every live channel, from the PBX's own state."""
        ...

    async def redirect_channel(self, channel: str, context: str, exten: str) -> None:
        """Take any channel (by name or :attr:`ChannelSnapshot.call_id`, as
        :meth:`hangup_channel`) out of what it runs and send it to ``context,exten,1`` of
        the PBX's dialplan (Asterisk: AMI ``Redirect``; FreeSWITCH: ``uuid_break`` and
        ``uuid_transfer``): a channel no daemon controls any more goes through an extension
        again, as if it had just dialled it. Raises ``ActionFailed`` when the PBX refuses
        (the channel is gone, say), ``CommandFailed`` for a context or extension the
        dialplan cannot name."""
        ...

    async def set_lamp(self, name: str, state: LampState) -> None:
        """Show ``state`` on the busy lamps (BLF keys) of the phones watching ``name``
        (Asterisk: the custom device state ``Custom:<name>``, which a hint maps to an
        extension; FreeSWITCH: the presence of ``name``, a ``user@domain``). Raises
        ``ActionFailed`` when the PBX refuses it, ``PBXConnectionError`` while the link is
        down."""
        ...

    async def set_message_lamp(self, mailbox: str, new: int, old: int) -> None:
        """Tell the phones subscribed to ``mailbox`` (Asterisk: ``box@context``, FreeSWITCH:
        ``user@domain``) how many voicemail messages wait there: ``new`` ones (their
        message lamp is lit while there is one) and ``old`` ones. The PBX keeps the counts
        for phones that subscribe later. Raises ``ActionFailed`` when the PBX refuses it
        (Asterisk without res_mwi_external_ami), ``PBXConnectionError`` while the link is
        down."""
        ...

    def room_device(self, room: str) -> str:
        """The device string that puts a dialled leg into conference room ``room``
        (Asterisk: ``Local/<room>@callcenter-conference``, FreeSWITCH:
        ``loopback/app=conference:<room>@default``): :meth:`Call.dial` it to connect a
        caller to whoever waits in the room (:meth:`Call.wait_in_room`). The leg it dials
        answers at once and is the caller's peer like any other."""
        ...

    async def spy(
        self,
        supervisor_device: str,
        target_channel: str,
        mode: SpyMode,
        *,
        caller_id: str = "",
        timeout: float = 30.0,
        auto_answer: bool = False,
    ) -> SpySession:
        """Ring ``supervisor_device`` (``PJSIP/2000``) and, once answered, let it spy on
        ``target_channel`` (an agent leg, as :attr:`DialResult.peer_channel` names it) in
        ``mode``. Returns as soon as the PBX accepted the request: the session ends (see
        :attr:`SpySession.ended`) if the supervisor does not answer within ``timeout`` s.
        ``auto_answer``: ask the phone to answer by itself (as :meth:`originate`).
        """
        ...
