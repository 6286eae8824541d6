"""Scripted phones: the callers and agents of the demo PBX.

* :class:`AgentPhone` - a registered device (``PJSIP/1001``) that rings when dialled or
  originated and answers after ``answer_after`` seconds, never (``None``), or rejects
  (SIP 486: DIALSTATUS ``BUSY``). One line: while it has a call, new calls get ``BUSY``.
* :class:`Caller` - the handle :meth:`DemoAsterisk.call` returns: it hears prompts, presses
  digits, gets bridged to agents, hears music on hold and hangs up, like a SIPp caller.

Every ``wait_*`` takes a timeout and raises ``TimeoutError`` when it passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import structlog

from callcenter.demopbx.channels import DTMF_DIGITS, Channel, ChannelState
from callcenter.errors import CallHungUp

if TYPE_CHECKING:
    from callcenter.demopbx.asterisk import DemoAsterisk
    from callcenter.demopbx.manager import DemoEvent

log = structlog.get_logger(__name__)

CallerState = Literal["ringing", "up", "bridged", "ended"]


@dataclass(frozen=True, slots=True)
class RingDecision:
    """What a phone does with an incoming call."""

    reject: bool
    answer_after: float | None


class AgentPhone:
    """A scripted agent (or supervisor) phone.

    ``answer_after``: seconds of ringing before it answers (None: never answers).
    ``reject``: answer every call with busy (SIP 486).
    ``hangup_after``: after answering, hang up after this many seconds of talk (None: wait
    for the other side). ``number``/``name`` are the phone's caller ID (default: the
    endpoint name, no name). ``machine``: an answering machine answers it (what the
    dialplan's answering machine detection finds). ``auto_answer``: it answers at once a
    call whose INVITE asks it to (``Call-Info: ...;answer-after=0``), as a phone set to
    allow intercom calls does.
    """

    def __init__(
        self,
        answer_after: float | None = 0.1,
        reject: bool = False,
        hangup_after: float | None = None,
        *,
        number: str | None = None,
        name: str | None = None,
        machine: bool = False,
        auto_answer: bool = False,
    ) -> None:
        self.answer_after = answer_after
        self.auto_answer = auto_answer
        #: Calls it answered by itself, as their INVITE asked.
        self.auto_answered = 0
        self.machine = machine
        self.reject = reject
        self.hangup_after = hangup_after
        self._number = number
        self.name = name
        self.device = ""
        #: Times the phone rang (busy rejections of a second call do not count).
        self.rings = 0
        #: Calls answered.
        self.answered = 0
        #: Name of the channel of the call it is ringing with or talking on.
        self.current_channel: str | None = None
        #: Prompts played on its ended calls, in order (what a called lead heard).
        self.heard: list[str] = []
        #: The caller's name its display showed, one per ring (the connected line's).
        self.shown: list[str] = []
        self._pbx: DemoAsterisk | None = None
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<AgentPhone {self.device} rings={self.rings} answered={self.answered}>"

    @property
    def number(self) -> str:
        """The phone's caller-ID number (the endpoint name unless given)."""
        return self._number if self._number is not None else self.device.partition("/")[2]

    def attach(self, pbx: DemoAsterisk, device: str) -> None:
        """Called by :meth:`DemoAsterisk.add_phone`."""
        self._pbx = pbx
        self.device = device

    # ------------------------------------------------------------------ PBX side

    def ring(self, pbx: DemoAsterisk, channel: Channel) -> RingDecision:
        """A call arrives on ``channel``; decide how the phone reacts."""
        if self.reject or self.current_channel is not None:
            log.info("demopbx_phone_busy", device=self.device, channel=channel.name)
            return RingDecision(reject=True, answer_after=None)
        self.rings += 1
        self.shown.append(channel.connected_name)
        self.current_channel = channel.name
        self._notify()
        log.info("demopbx_phone_ringing", device=self.device, channel=channel.name)
        if self.auto_answer and channel.asks_auto_answer:
            self.auto_answered += 1
            return RingDecision(reject=False, answer_after=0.0)
        return RingDecision(reject=False, answer_after=self.answer_after)

    def answered_call(self, pbx: DemoAsterisk, channel: Channel) -> None:
        """The phone picked up ``channel``."""
        self.answered += 1
        self.current_channel = channel.name
        self._notify()
        log.info("demopbx_phone_answered", device=self.device, channel=channel.name)
        if self.hangup_after is not None:
            pbx.spawn(
                self._hangup_later(channel, self.hangup_after), f"hangup-after-{channel.name}"
            )

    def channel_gone(self, channel: Channel) -> None:
        """``channel`` no longer exists."""
        if self.current_channel == channel.name:
            self.current_channel = None
            self.heard.extend(channel.heard)
            self._notify()

    async def _hangup_later(self, channel: Channel, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.current_channel == channel.name and not channel.ended:
            _phone_hangup(channel)

    # ------------------------------------------------------------------ test side

    async def hangup(self) -> None:
        """The agent hangs up the current call now (no-op without one)."""
        if self._pbx is None or self.current_channel is None:
            return
        channel = self._pbx.find_channel(self.current_channel)
        if channel is not None:
            _phone_hangup(channel)
        await asyncio.sleep(0)

    async def press(self, digits: str) -> None:
        """The agent presses keys during the current call (DTMFBegin/DTMFEnd on AMI for
        their leg); raises CallHungUp when the phone has no call."""
        channel = None
        if self._pbx is not None and self.current_channel is not None:
            channel = self._pbx.find_channel(self.current_channel)
        if channel is None:
            raise CallHungUp(f"{self.device} has no call")
        await _press_on(channel, digits)

    async def wait_rings(self, count: int = 1, timeout: float = 5.0) -> None:
        """Return once the phone has rung ``count`` times in total."""
        await self._wait(lambda: self.rings >= count, timeout)

    async def wait_answered(self, count: int = 1, timeout: float = 5.0) -> None:
        """Return once the phone has answered ``count`` calls in total."""
        await self._wait(lambda: self.answered >= count, timeout)

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Return once the phone has no call."""
        await self._wait(lambda: self.current_channel is None, timeout)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, predicate: Callable[[], bool], limit: float) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                await self._changed.wait()


def _phone_hangup(channel: Channel) -> None:
    """The phone sends BYE: HangupRequest with cause 16 (Normal Clearing)."""
    channel.request_hangup(16, event="HangupRequest", event_cause=16)


class Caller:
    """A scripted caller on one channel (see :meth:`DemoAsterisk.call`)."""

    def __init__(self, pbx: DemoAsterisk, channel: Channel) -> None:
        self._pbx = pbx
        self._chan = channel
        #: Every event about this call (its linkedid: the caller's and its agents' legs).
        self.events: list[DemoEvent] = []

    def __repr__(self) -> str:
        return f"<Caller {self.channel} {self.state}>"

    @property
    def channel(self) -> str:
        """The channel name (``PJSIP/5551234-00000001``)."""
        return self._chan.name

    @property
    def uniqueid(self) -> str:
        """The channel's Uniqueid (``1795337924.1``)."""
        return self._chan.uniqueid

    @property
    def heard(self) -> list[str]:
        """Prompts that started playing to the caller, in order."""
        return self._chan.heard

    @property
    def applications(self) -> list[str]:
        """Applications run on the caller's channel (dialplan or AGI ``EXEC``), in order."""
        return self._chan.applications

    @property
    def heard_in(self) -> list[tuple[str, str]]:
        """(language, prompt) of every prompt started, in order."""
        return self._chan.heard_in

    @property
    def language(self) -> str:
        """The channel's language (``CHANNEL(language)``)."""
        return self._chan.language

    def speak(self, seconds: float) -> None:
        """The caller talks for ``seconds`` from now (a recording does not stop for silence)."""
        loop_time = asyncio.get_running_loop().time()
        self._chan.talking_until = max(self._chan.talking_until, loop_time + seconds)

    @property
    def variables(self) -> dict[str, str]:
        """The channel variables (AGISTATUS, DIALSTATUS ...)."""
        return self._chan.variables

    @property
    def state(self) -> CallerState:
        """``ringing``, ``up``, ``bridged`` or ``ended``."""
        chan = self._chan
        if chan.ended:
            return "ended"
        if chan.bridge is not None:
            return "bridged"
        return "up" if chan.state == ChannelState.UP else "ringing"

    @property
    def hangup_cause(self) -> int | None:
        """The Hangup event's cause once the channel is gone (16, 0 ...), else None."""
        return self._chan.hangup_cause if self._chan.ended else None

    async def wait_for_prompt(self, prompt: str, timeout: float = 5.0) -> None:
        """Return when ``prompt`` has started playing (at any time during the call)."""
        await self._chan.wait_until(lambda: prompt in self._chan.heard, timeout)

    async def press(self, digits: str) -> None:
        """Press DTMF digits (DTMFBegin/DTMFEnd on AMI, delivered to what is listening).

        Digits pressed while nothing listens are kept 50 ms for the next listener, then
        dropped, like Asterisk drops them. Raises CallHungUp once the caller hung up.
        """
        await _press_on(self._chan, digits)

    async def wait_bridged(self, timeout: float = 5.0, device: str | None = None) -> str:
        """Wait until the caller has been bridged (to ``device`` if given); the device."""
        history = self._chan.bridge_history

        def bridged() -> bool:
            return bool(history) if device is None else device in history

        await self._chan.wait_until(bridged, timeout)
        return device if device is not None else history[-1]

    @property
    def moh_starts(self) -> int:
        """How many times music on hold started for the caller so far."""
        return self._chan.moh_starts

    @property
    def music_plays(self) -> int:
        """How many times the caller's own application (StartMusicOnHold, MusicOnHold,
        AGI SET MUSIC ON) started music on hold; a dial's music is not counted."""
        return self._chan.music_plays

    @property
    def hearing_music(self) -> bool:
        """True while music on hold plays to the caller."""
        return self._chan.moh_class is not None

    async def wait_recording(self, timeout: float = 5.0) -> None:
        """Return once the PBX records what the caller says (a voicemail message): from
        then on a key pressed ends the message rather than being lost before it."""
        await self._chan.wait_until(lambda: self._chan.messages_recorded > 0, timeout)

    async def wait_moh(self, timeout: float = 5.0) -> None:
        """Return once music on hold has started for the caller."""
        await self._chan.wait_until(lambda: self._chan.moh_starts > 0, timeout)

    async def hangup(self) -> None:
        """The caller hangs up (BYE). The channel ends once the dialplan/AGI lets it go."""
        chan = self._chan
        if chan.ended or chan.hangup_requested:
            return
        cause = 16 if chan.bridge is not None else None
        chan.request_hangup(cause, event="HangupRequest", event_cause=cause)
        await asyncio.sleep(0)

    async def wait_ended(self, timeout: float = 5.0) -> None:
        """Return once the channel is gone (its FastAGI connection closed too)."""
        await self._chan.wait_until(lambda: self._chan.ended, timeout)


async def _press_on(chan: Channel, digits: str) -> None:
    """Keys pressed on ``chan``'s phone: DTMFBegin/DTMFEnd, then delivered to its reader."""
    for digit in digits:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if chan.ended or chan.hangup_requested:
            raise CallHungUp(f"{chan.name} has hung up")
        chan.emit("DTMFBegin", "dtmf", [("Digit", digit), ("Direction", "Received")])
        chan.emit(
            "DTMFEnd",
            "dtmf",
            [("Digit", digit), ("DurationMs", "100"), ("Direction", "Received")],
        )
        chan.deliver_digit(digit)
        await asyncio.sleep(0)
