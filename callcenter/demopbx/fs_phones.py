"""Scripted phones of the demo FreeSWITCH: the same API as the demo Asterisk's phones.

* :class:`AgentPhone` - a registered device (``PJSIP/1001``; dial strings ``user/1001``,
  ``PJSIP/1001`` and ``sofia/<profile>/1001@host`` all reach it) that rings when bridged to or
  originated and answers after ``answer_after`` seconds, never (``None``), or rejects (SIP 486:
  hangup cause ``USER_BUSY``). One line: while it has a call, new calls get ``USER_BUSY``.
* :class:`Caller` - the handle :meth:`DemoFreeSwitch.call` returns: it hears prompts, presses
  digits (RFC 2833: DTMF events), speaks (for ``record``), gets bridged to agents, hears music
  on hold and hangs up.

The classes mirror :mod:`callcenter.demopbx.phones` method for method, so a scenario reads the
same on both PBXs. Differences: :attr:`Caller.hangup_cause` is the Q.850 number FreeSWITCH
reports in ``variable_hangup_cause_q850`` (its own causes above 127, ``ORIGINATOR_CANCEL``
for one, map to 16); :attr:`Caller.hangup_cause_name` has the FreeSWITCH name.

Every ``wait_*`` takes a timeout and raises ``TimeoutError`` when it passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from callcenter.demopbx.fs_channels import DTMF_DIGITS, FSChannel, FSEvent, q850
from callcenter.demopbx.phones import CallerState, RingDecision
from callcenter.errors import CallHungUp

if TYPE_CHECKING:
    from callcenter.demopbx.freeswitch import DemoFreeSwitch

log = structlog.get_logger(__name__)

__all__ = ["AgentPhone", "Caller", "CallerState", "RingDecision"]


class AgentPhone:
    """A scripted agent (or supervisor) phone on the demo FreeSWITCH.

    ``answer_after``: seconds of ringing before it answers (None: never answers).
    ``reject``: answer every call with busy (SIP 486, ``USER_BUSY``).
    ``hangup_after``: after answering, hang up after this many seconds of talk (None: wait
    for the other side). ``number``/``name`` are the phone's caller ID (default: the
    endpoint name, no name). ``machine``: an answering machine answers it (what the
    dialplan's answering machine detection finds). ``auto_answer``: it answers at once a
    call whose leg has ``sip_auto_answer=true`` (mod_sofia's Call-Info answer-after=0), as
    a phone set to allow intercom calls does.
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
        #: The caller's name its display showed, one per ring (the leg's caller ID name).
        self.shown: list[str] = []
        self._current: FSChannel | None = None
        self._pbx: DemoFreeSwitch | None = None
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<AgentPhone {self.device} rings={self.rings} answered={self.answered}>"

    @property
    def number(self) -> str:
        """The phone's caller-ID number (the endpoint name unless given)."""
        return self._number if self._number is not None else self.device.partition("/")[2]

    def attach(self, pbx: DemoFreeSwitch, device: str) -> None:
        """Called by :meth:`DemoFreeSwitch.add_phone`."""
        self._pbx = pbx
        self.device = device

    # ------------------------------------------------------------------ PBX side

    def ring(self, channel: FSChannel) -> RingDecision:
        """A call arrives on ``channel``; decide how the phone reacts."""
        if self.reject or self._current is not None:
            log.info("demofs_phone_busy", device=self.device, channel=channel.name)
            return RingDecision(reject=True, answer_after=None)
        self.rings += 1
        self.shown.append(channel.cid_name)
        self._current = channel
        self.current_channel = channel.name
        self._notify()
        log.info("demofs_phone_ringing", device=self.device, channel=channel.name)
        if self.auto_answer and channel.var("sip_auto_answer").lower() == "true":
            self.auto_answered += 1
            return RingDecision(reject=False, answer_after=0.0)
        return RingDecision(reject=False, answer_after=self.answer_after)

    def answered_call(self, channel: FSChannel) -> None:
        """The phone picked up ``channel``."""
        self.answered += 1
        self._current = channel
        self.current_channel = channel.name
        self._notify()
        log.info("demofs_phone_answered", device=self.device, channel=channel.name)
        if self.hangup_after is not None and self._pbx is not None:
            self._pbx.spawn(
                self._hangup_later(channel, self.hangup_after), f"hangup-after-{channel.uuid}"
            )

    def channel_gone(self, channel: FSChannel) -> None:
        """``channel`` no longer exists."""
        if self._current is channel:
            self._current = None
            self.current_channel = None
            self.heard.extend(channel.heard)
            self._notify()

    async def _hangup_later(self, channel: FSChannel, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._current is channel and not channel.hungup:
            channel.hangup("NORMAL_CLEARING")

    # ------------------------------------------------------------------ test side

    async def hangup(self) -> None:
        """The agent hangs up the current call now (no-op without one). While it rings,
        that declines the call (``USER_BUSY``, as a 486 would)."""
        channel = self._current
        if channel is None or channel.hungup:
            return
        channel.hangup("NORMAL_CLEARING" if channel.answered else "USER_BUSY")
        await asyncio.sleep(0)

    async def press(self, digits: str) -> None:
        """The agent presses keys during the current call (a DTMF event each on their
        leg); raises CallHungUp when the phone has no call."""
        channel = self._current
        if channel is None or channel.hungup:
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
        await self._wait(lambda: self._current is None, timeout)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, predicate: Callable[[], bool], limit: float) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                await self._changed.wait()


class Caller:
    """A scripted caller on one channel (see :meth:`DemoFreeSwitch.call`)."""

    def __init__(self, pbx: DemoFreeSwitch, channel: FSChannel) -> None:
        self._pbx = pbx
        self._chan = channel
        #: Every event about this call (its Channel-Call-UUID: the caller's and its agents'
        #: legs), in order.
        self.events: list[FSEvent] = []

    def __repr__(self) -> str:
        return f"<Caller {self.channel} {self.state}>"

    @property
    def channel(self) -> str:
        """The channel name (``sofia/lab/5551234@127.0.0.1``)."""
        return self._chan.name

    @property
    def uniqueid(self) -> str:
        """The channel's Unique-ID (a UUID)."""
        return self._chan.uuid

    @property
    def heard(self) -> list[str]:
        """Prompts that started playing to the caller, in order, as prompt names
        (``/sounds/welcome-menu.wav`` -> ``welcome-menu``; ``say`` gives ``digits/5`` ...
        as the demo Asterisk's SAY does; a ``tone_stream://`` is ``beep``)."""
        return self._chan.heard

    @property
    def applications(self) -> list[str]:
        """Applications run on the caller's channel (dialplan or ``sendmsg``), in order."""
        return self._chan.applications

    @property
    def heard_files(self) -> list[str]:
        """The files (paths as the application got them) that started playing, in order."""
        return self._chan.heard_files

    @property
    def heard_in(self) -> list[tuple[str, str]]:
        """(language, prompt) of every prompt started, in order; the language is the
        channel's ``default_language`` (``en`` when unset), or what ``say`` spoke."""
        return self._chan.heard_in

    @property
    def language(self) -> str:
        """The channel's language (``default_language``; ``en`` when unset)."""
        return self._chan.language

    def speak(self, seconds: float) -> None:
        """The caller talks for ``seconds`` from now (a recording does not stop for silence)."""
        loop_time = asyncio.get_running_loop().time()
        self._chan.talking_until = max(self._chan.talking_until, loop_time + seconds)

    @property
    def variables(self) -> dict[str, str]:
        """The channel variables."""
        return self._chan.variables

    @property
    def state(self) -> CallerState:
        """``ringing``, ``up``, ``bridged`` or ``ended``."""
        chan = self._chan
        if chan.destroyed:
            return "ended"
        if chan.bridge is not None:
            return "bridged"
        return "up" if chan.answered else "ringing"

    @property
    def hangup_cause(self) -> int | None:
        """The Q.850 code of the hang-up (16, 17, 19 ...) once hung up, else None."""
        cause = self._chan.hangup_cause
        return q850(cause) if cause is not None else None

    @property
    def hangup_cause_name(self) -> str | None:
        """The FreeSWITCH cause name (``NORMAL_CLEARING``, ``ORIGINATOR_CANCEL`` ...)."""
        return self._chan.hangup_cause

    async def wait_for_prompt(self, prompt: str, timeout: float = 5.0) -> None:
        """Return when ``prompt`` (a prompt name or the file as played) has started playing
        (at any time during the call)."""
        chan = self._chan
        await _wait_or_timeout(
            chan, lambda: prompt in chan.heard or prompt in chan.heard_files, timeout
        )

    async def press(self, digits: str) -> None:
        """Press DTMF digits (one DTMF event each, delivered to what is reading).

        Digits pressed while nothing reads are kept 50 ms for the next reader, then dropped,
        as the park loop drops them. Raises CallHungUp once the caller hung up.
        """
        await _press_on(self._chan, digits)

    async def wait_bridged(self, timeout: float = 5.0, device: str | None = None) -> str:
        """Wait until the caller has been bridged (to ``device`` if given); the device."""
        history = self._chan.bridge_history

        def bridged() -> bool:
            return bool(history) if device is None else device in history

        await _wait_or_timeout(self._chan, bridged, timeout)
        return device if device is not None else history[-1]

    @property
    def moh_starts(self) -> int:
        """How many times music on hold started for the caller so far."""
        return self._chan.moh_starts

    @property
    def music_plays(self) -> int:
        """How many times an application (``playback``, ``endless_playback``) started
        music on hold for the caller; a bridge's ringback is not counted."""
        return self._chan.music_plays

    @property
    def hearing_music(self) -> bool:
        """True while an application plays the caller music on hold (``local_stream://``)."""
        return self._chan.music_playing

    async def wait_recording(self, timeout: float = 5.0) -> None:
        """Return once the PBX records what the caller says (a voicemail message): from
        then on a key pressed ends the message rather than being lost before it."""
        await _wait_or_timeout(self._chan, lambda: self._chan.messages_recorded > 0, timeout)

    async def wait_moh(self, timeout: float = 5.0) -> None:
        """Return once music on hold (``local_stream://``) has started for the caller."""
        await _wait_or_timeout(self._chan, lambda: self._chan.moh_starts > 0, timeout)

    async def hangup(self) -> None:
        """The caller hangs up: BYE (``NORMAL_CLEARING``) once answered, CANCEL
        (``ORIGINATOR_CANCEL``) before."""
        chan = self._chan
        if chan.hungup:
            return
        chan.hangup("NORMAL_CLEARING" if chan.answered else "ORIGINATOR_CANCEL")
        await asyncio.sleep(0)

    async def wait_ended(self, timeout: float = 5.0) -> None:
        """Return once the channel is gone (CHANNEL_DESTROY fired)."""
        await _wait_or_timeout(self._chan, lambda: self._chan.destroyed, timeout)


async def _wait_or_timeout(chan: FSChannel, predicate: Callable[[], bool], limit: float) -> None:
    if not await chan.wait_until(predicate, limit):
        raise TimeoutError(f"{chan.name}: condition not met within {limit} s")


async def _press_on(chan: FSChannel, digits: str) -> None:
    """Keys pressed on ``chan``'s phone: a DTMF event each, then delivered to its reader."""
    for digit in digits:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if chan.hungup:
            raise CallHungUp(f"{chan.name} has hung up")
        chan.deliver_digit(digit)
        await asyncio.sleep(0)
