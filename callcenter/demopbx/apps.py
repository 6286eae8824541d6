"""Dialplan applications of the demo PBX and the media primitives they share with AGI.

Each application is ``async def app(pbx, channel, data) -> int`` with Asterisk's return
convention: ``0`` continue the dialplan, ``-1`` hang up (``Dial`` returns ``-1`` after an
answered call ends, ``0`` after NOANSWER/BUSY/CHANUNAVAIL). Inside AGI ``EXEC`` the return
value is the ``result=`` the AGI client sees (``-2`` for an unknown application).

Time is simulated only as far as it matters: a prompt "plays" for its configured duration
and can be cut short by an escape digit, a hang-up, a redirect or (FastAGI) the client.
"""

from __future__ import annotations

import asyncio
import enum
import time
import wave
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from callcenter.demopbx.channels import (
    AGENTS_CONTEXT,
    DTMF_DIGITS,
    Bridge,
    Channel,
    ChannelState,
    Wake,
)

if TYPE_CHECKING:
    from callcenter.demopbx.asterisk import DemoAsterisk
    from callcenter.demopbx.phones import AgentPhone

log = structlog.get_logger(__name__)

#: Samples per second of the ``endpos`` Asterisk reports (8 kHz).
SAMPLE_RATE = 8000

Application = Callable[["DemoAsterisk", Channel, str], Awaitable[int]]


class MediaEnd(enum.Enum):
    """Why a prompt or a digit wait ended."""

    DONE = "done"  # played to the end / timed out
    DIGIT = "digit"  # an accepted digit arrived
    HANGUP = "hangup"  # hang-up or redirect
    ABORT = "abort"  # the AGI client interrupted (FastAGI)
    MISSING = "missing"  # no such prompt


@dataclass(frozen=True, slots=True)
class MediaResult:
    """Outcome of :func:`play` / :func:`wait_digit`."""

    end: MediaEnd
    digit: str | None = None
    endpos: int = 0


async def _next_item(queue: asyncio.Queue[str | Wake], deadline: float | None) -> str | Wake | None:
    """The next digit/wake item, or None once ``deadline`` (loop time) passes."""
    if deadline is None:
        return await queue.get()
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0 and queue.empty():
        return None
    try:
        return await asyncio.wait_for(queue.get(), max(remaining, 0))
    except TimeoutError:
        return None


def _classify(item: str | Wake, channel: Channel) -> MediaEnd | None:
    if item is Wake.ABORT:
        return MediaEnd.ABORT
    if item is Wake.INTERRUPT:
        return MediaEnd.HANGUP if channel.check_hangup() else None
    return None


async def play(
    pbx: DemoAsterisk, channel: Channel, prompt: str, escape: str = "", *, offset: int = 0
) -> MediaResult:
    """Play ``prompt``; a digit in ``escape`` stops it (``MediaEnd.DIGIT``).

    ``endpos`` is the sample position reached, like Asterisk's STREAM FILE result.
    """
    duration = pbx.prompt_duration(prompt)
    if duration is None:
        log.warning("demopbx_prompt_missing", channel=channel.name, prompt=prompt)
        return MediaResult(MediaEnd.MISSING)
    if channel.check_hangup():
        return MediaResult(MediaEnd.HANGUP, endpos=offset)
    channel.heard.append(prompt)
    channel.heard_in.append((channel.language, prompt))
    channel.notify()
    log.debug("demopbx_prompt", channel=channel.name, prompt=prompt, seconds=duration)
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + duration

    def position() -> int:
        return offset + int(min(loop.time() - start, duration) * SAMPLE_RATE)

    with channel.listen() as queue:
        while True:
            item = await _next_item(queue, deadline)
            if item is None:
                return MediaResult(MediaEnd.DONE, endpos=offset + int(duration * SAMPLE_RATE))
            stop = _classify(item, channel)
            if stop is not None:
                return MediaResult(stop, endpos=position())
            if isinstance(item, str) and item in escape:
                return MediaResult(MediaEnd.DIGIT, digit=item, endpos=position())


async def wait_digit(
    channel: Channel, limit: float | None, accept: str = DTMF_DIGITS
) -> MediaResult:
    """Wait up to ``limit`` s (None: forever) for a digit in ``accept``."""
    if channel.check_hangup():
        return MediaResult(MediaEnd.HANGUP)
    loop = asyncio.get_running_loop()
    deadline = None if limit is None else loop.time() + limit
    with channel.listen() as queue:
        while True:
            item = await _next_item(queue, deadline)
            if item is None:
                return MediaResult(MediaEnd.DONE)
            stop = _classify(item, channel)
            if stop is not None:
                return MediaResult(stop)
            if isinstance(item, str) and item in accept:
                return MediaResult(MediaEnd.DIGIT, digit=item)


async def read_digits(
    channel: Channel,
    *,
    first_timeout: float | None,
    next_timeout: float | None,
    max_digits: int,
    collected: str = "",
    terminators: str = "#",
) -> tuple[str, MediaEnd]:
    """Collect digits like ``ast_readstring``: up to ``max_digits``, a terminator ends early.

    Returns the digits and ``DIGIT`` (complete: max reached or terminator), ``DONE``
    (timed out), ``HANGUP`` or ``ABORT``.
    """
    digits = collected
    while len(digits) < max_digits:
        timeout = first_timeout if not digits else next_timeout
        result = await wait_digit(channel, timeout)
        if result.end is not MediaEnd.DIGIT or result.digit is None:
            return digits, result.end
        if result.digit in terminators:
            return digits, MediaEnd.DIGIT
        digits += result.digit
    return digits, MediaEnd.DIGIT


async def wait_any_interrupt(channels: Sequence[Channel], limit: float | None) -> None:
    """Return when one of ``channels`` is hung up/redirected, or after ``limit`` s."""
    if any(c.check_hangup() for c in channels):
        return
    waiters = [asyncio.ensure_future(c.wait_interrupt()) for c in channels]
    try:
        await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def number_prompts(number: int) -> list[str]:
    """The ``digits/...`` prompts Asterisk's English SAY NUMBER plays for ``number``."""
    if number < 0:
        return ["digits/minus", *number_prompts(-number)]
    if number == 0:
        return ["digits/0"]
    prompts: list[str] = []
    for size, word in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if number >= size:
            prompts += [*number_prompts(number // size), f"digits/{word}"]
            number %= size
    if number >= 20:
        prompts.append(f"digits/{number - number % 10}")
        number %= 10
    if number:
        prompts.append(f"digits/{number}")
    return prompts


def datetime_prompts(epoch: int, fmt: str, zone: str = "UTC") -> list[str]:
    """The prompts Asterisk's English SAY DATETIME plays for ``epoch`` in ``fmt``.

    Handles the format letters callcenter uses: ``A``/``a`` weekday, ``B``/``b`` month,
    ``d``/``e`` day of month, ``Y`` year, ``H`` hour (24 h), ``I``/``l`` hour (12 h), ``M``
    minute, ``p`` AM/PM, and ``'sound'`` literals.
    """
    try:
        moment = datetime.fromtimestamp(epoch, zoneinfo.ZoneInfo(zone or "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OverflowError):
        moment = datetime.fromtimestamp(epoch, UTC)
    prompts: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "'":
            end = fmt.find("'", i + 1)
            end = len(fmt) if end < 0 else end
            prompts.append(fmt[i + 1 : end])
            i = end + 1
            continue
        if c in "Aa":
            prompts.append(f"digits/day-{moment.isoweekday() % 7}")
        elif c in "Bb":
            prompts.append(f"digits/mon-{moment.month - 1}")
        elif c in "de":
            prompts.append(f"digits/h-{moment.day}")
        elif c == "Y":
            prompts += number_prompts(moment.year)
        elif c == "H":
            prompts += number_prompts(moment.hour)
        elif c in "Il":
            prompts += number_prompts(moment.hour % 12 or 12)
        elif c == "M":
            if moment.minute:
                if moment.minute < 10:
                    prompts.append("digits/oh")
                prompts += number_prompts(moment.minute)
        elif c == "p":
            prompts.append("digits/p-m" if moment.hour >= 12 else "digits/a-m")
        i += 1
    return prompts


@dataclass(frozen=True, slots=True)
class Recording:
    """Outcome of :func:`record`: why it ended, the samples kept, the digit pressed."""

    end: MediaEnd
    reason: str  # RECORD FILE's word: timeout, dtmf, hangup
    endpos: int
    digit: str | None = None


async def record(
    channel: Channel,
    path: Path,
    *,
    escape: str,
    limit: float | None,
    silence: float | None,
) -> Recording:
    """Record ``channel`` into the WAV file ``path`` like RECORD FILE.

    The caller is silent unless :meth:`~callcenter.demopbx.phones.Caller.speak` says
    otherwise; ``silence`` seconds without speech end the recording (the silence is cut
    down to one second, as Asterisk does). The file holds silence of the recorded length.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()

    def ended(
        end: MediaEnd, reason: str, digit: str | None = None, *, trim: float = 0.0
    ) -> Recording:
        elapsed = max(0.0, loop.time() - start - trim)
        samples = int(elapsed * SAMPLE_RATE)
        write_silence(path, samples)
        return Recording(end, reason, samples, digit)

    if channel.check_hangup():
        return Recording(MediaEnd.HANGUP, "hangup", 0)
    with channel.listen() as queue:
        channel.messages_recorded += 1
        channel.notify()
        while True:
            now = loop.time()
            if limit is not None and now >= start + limit:
                return ended(MediaEnd.DONE, "timeout")
            quiet_since = max(start, channel.talking_until)
            if silence is not None and now >= quiet_since + silence:
                return ended(MediaEnd.DONE, "timeout", trim=max(0.0, silence - 1.0))
            due = [start + limit] if limit is not None else []
            if silence is not None:
                due.append(quiet_since + silence)
            # Poll: speech (Caller.speak) can move the silence deadline at any time.
            step = min([0.05, *(d - now for d in due)])
            item = await _next_item(queue, now + step)
            if item is None:
                continue
            stop = _classify(item, channel)
            if stop is MediaEnd.HANGUP:
                return ended(MediaEnd.HANGUP, "hangup")
            if stop is MediaEnd.ABORT:
                return Recording(MediaEnd.ABORT, "", 0)
            if isinstance(item, str) and item in escape:
                return ended(MediaEnd.DIGIT, "dtmf", item)


def write_silence(path: Path, samples: int) -> None:
    """Write ``samples`` of 8 kHz 16-bit mono silence into the WAV file ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(b"\x00\x00" * samples)


# --------------------------------------------------------------------------- simple apps


async def app_answer(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Answer()``: Newstate Up (no-op when already up)."""
    if channel.check_hangup():
        return -1
    pbx.answer(channel)
    return 0


async def app_hangup(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Hangup([cause])``."""
    cause = int(data) if data.strip().isdigit() else 16
    channel.request_hangup(cause, event="SoftHangupRequest", event_cause=cause)
    return -1


async def app_noop(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``NoOp(...)``, ``Verbose(...)``, ``Log(...)``: nothing."""
    return 0


async def app_set(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Set(name=value)``."""
    name, _, value = data.partition("=")
    if name:
        channel.set_var(name.strip(), value)
    return 0


async def app_wait(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Wait(seconds)``: -1 if the channel hangs up meanwhile."""
    try:
        seconds = float(data or 0)
    except ValueError:
        seconds = 0.0
    await wait_any_interrupt([channel], seconds)
    return -1 if channel.check_hangup() else 0


async def app_exec_if(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``ExecIf(condition?App(args)[:App(args)])`` (the condition already substituted to
    a number): the first application when it is not 0 or empty, else the second if any."""
    condition, _, apps = data.partition("?")
    depth, split = 0, len(apps)
    for index, char in enumerate(apps):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            split = index
            break
    chosen = apps[:split] if condition.strip() not in ("", "0") else apps[split + 1 :]
    name, _, args = chosen.partition("(")
    if not name:
        return 0
    app = find_application(name.strip())
    if app is None:
        log.warning("demopbx_no_application", channel=channel.name, app=name)
        return -1
    return await app(pbx, channel, args.removesuffix(")"))


async def app_playback(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Playback(p1&p2[,options])``; sets PLAYBACKSTATUS."""
    prompts = data.partition(",")[0]
    status = "SUCCESS"
    for prompt in filter(None, prompts.split("&")):
        result = await play(pbx, channel, prompt)
        if result.end is MediaEnd.HANGUP:
            return -1
        if result.end is MediaEnd.MISSING:
            status = "FAILED"
    channel.set_var("PLAYBACKSTATUS", status)
    return 0


async def app_say_number(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``SayNumber(number[,gender])``: the number as English SAY NUMBER says it."""
    text = data.partition(",")[0].strip()
    try:
        number = int(text)
    except ValueError:
        log.warning("demopbx_say_number_invalid", channel=channel.name, number=text)
        return 0
    for prompt in number_prompts(number):
        if (await play(pbx, channel, prompt)).end is MediaEnd.HANGUP:
            return -1
    return 0


async def app_start_moh(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``StartMusicOnHold([class])``: music until StopMusicOnHold or hang-up."""
    pbx.start_moh(channel, data.partition(",")[0] or "default", by_application=True)
    return 0


async def app_stop_moh(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``StopMusicOnHold()``."""
    pbx.stop_moh(channel)
    return 0


async def app_playtones(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Playtones(ring)``: indications.conf's tone until StopPlaytones (heard as
    ``ringback`` for ``ring``, else as the tone's name)."""
    tone = data.strip() or "ring"
    channel.heard.append("ringback" if tone == "ring" else tone)
    channel.heard_in.append((channel.language, channel.heard[-1]))
    channel.notify()
    return 0


async def app_stop_playtones(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``StopPlaytones()``."""
    return 0


async def app_moh(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``MusicOnHold([class[,duration]])``: blocks for ``duration`` s or until hang-up."""
    moh_class, _, duration = data.partition(",")
    pbx.start_moh(channel, moh_class or "default", by_application=True)
    try:
        seconds = float(duration) if duration.strip() else None
    except ValueError:
        seconds = None
    await wait_any_interrupt([channel], seconds)
    pbx.stop_moh(channel)
    return -1 if channel.check_hangup() else 0


async def app_echo(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Echo()``: holds the channel until it hangs up."""
    await wait_any_interrupt([channel], None)
    return -1


# --------------------------------------------------------------------------- Dial


@dataclass(eq=False)
class _Leg:
    device: str
    resource: str
    phone: AgentPhone | None
    """None for a Local channel (its second half runs the dialplan instead)."""
    channel: Channel
    answer_at: float | None


def _local_leg(
    pbx: DemoAsterisk, caller: Channel | None, resource: str, started: float
) -> _Leg | None:
    """``Local/<exten>@<context>``: the ``;1`` half is the dialled leg; the ``;2`` half
    runs the dialplan at ``context,exten,1`` once ``;1`` is answered, which the demo does at
    once (its Local targets are rooms: ``ConfBridge`` answers). None when the dialplan has
    no such extension (CHANUNAVAIL, as chan_local's "No such extension")."""
    exten, at, context = resource.partition("@")
    context = context if at else "default"
    if pbx.dialplan.lookup(context, exten, 1) is None:
        return None
    base = f"Local/{resource}-{pbx.next_channel_number():08x}"
    linkedid = caller.linkedid if caller is not None else None
    first = pbx.new_channel(
        f"Local/{resource}",
        caller_num=caller.caller_num if caller is not None else "",
        caller_name=caller.caller_name if caller is not None else "",
        context=context,
        exten=exten,
        state=ChannelState.DOWN,
        linkedid=linkedid,
        name=f"{base};1",
    )
    second = pbx.new_channel(
        f"Local/{resource}",
        caller_num=first.caller_num,
        caller_name=first.caller_name,
        context=context,
        exten=exten,
        state=ChannelState.RING,
        linkedid=linkedid,
        name=f"{base};2",
    )
    first.local_peer, second.local_peer = second, first
    first.application, first.application_data = "AppDial", "(Outgoing Line)"
    pbx.emit("DialBegin", "call", _dial_event(caller, first, [("DialString", resource)]))
    return _Leg(f"Local/{resource}", resource, None, first, started)


def _parse_dial(data: str) -> tuple[list[str], float | None, str]:
    parts = data.split(",")
    targets = [t.strip() for t in parts[0].split("&") if t.strip()]
    timeout: float | None = None
    if len(parts) > 1 and parts[1].strip():
        try:
            timeout = float(parts[1])
        except ValueError:
            timeout = None
    options = parts[2] if len(parts) > 2 else ""
    return targets, timeout, options


def _app_options(options: str) -> dict[str, str]:
    """Asterisk's application options: a letter, optionally with ``(argument)``;
    ``"tm(jazz)o(Ann)"`` -> ``{"t": "", "m": "jazz", "o": "Ann"}`` (letters inside an
    argument are not options)."""
    found: dict[str, str] = {}
    at = 0
    while at < len(options):
        letter = options[at]
        at += 1
        argument = ""
        if options.startswith("(", at):
            end = options.find(")", at)
            end = len(options) if end < 0 else end
            argument = options[at + 1 : end]
            at = end + 1
        found[letter] = argument
    return found


def _dial_event(
    caller: Channel | None, leg: Channel, extra: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Dial event headers: the caller's snapshot (none for Originate), the Dest* snapshot."""
    headers = caller.snapshot() if caller is not None else []
    return [*headers, *leg.snapshot("Dest"), *extra]


async def ring_device(
    pbx: DemoAsterisk,
    caller: Channel | None,
    targets: Sequence[str],
    ring_for: float | None,
    *,
    moh: str | None = None,
    callerid: tuple[str, str] | None = None,
    uniqueid: str | None = None,
    variables: Sequence[tuple[str, str]] = (),
    predial: str | None = None,
) -> tuple[str, _Leg | None]:
    """Ring ``targets`` for up to ``ring_for`` s on behalf of ``caller`` (None: Originate).
    ``predial``: Dial's ``b(context^exten^priority)``, run on each leg before it rings.

    Returns ``(DIALSTATUS, answered leg or None)``. Legs that did not
    answer are hung up and destroyed here; the answered leg is left UP for the caller.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    legs: list[_Leg] = []
    statuses: list[str] = []
    for target in targets:
        tech, _, resource = target.partition("/")
        device = f"{tech}/{resource}"
        if tech.upper() == "LOCAL":
            local = _local_leg(pbx, caller, resource, started)
            if local is None:
                log.info("demopbx_dial_no_extension", target=target)
                statuses.append("CHANUNAVAIL")
            else:
                legs.append(local)
            continue
        phone = pbx.phones.get(device) if tech.upper() == "PJSIP" else None
        if phone is None:
            log.info("demopbx_dial_unavailable", target=target)
            statuses.append("CHANUNAVAIL")
            if tech.upper() == "PJSIP":
                # An endpoint with no contact is UNAVAILABLE in a real Asterisk from its start;
                # the demo knows its endpoints only as they are dialled or register.
                pbx.refresh_device_state(device)
            continue
        num, name = callerid if callerid is not None else (phone.number, phone.name or "")
        leg_chan = pbx.new_channel(
            device,
            caller_num=num,
            caller_name=name,
            context=AGENTS_CONTEXT,
            exten="s",
            state=ChannelState.DOWN,
            linkedid=caller.linkedid if caller is not None else None,
            uniqueid=uniqueid,
        )
        uniqueid = None
        for var_name, var_value in variables:
            leg_chan.set_var(var_name, var_value)
        if predial:
            await predial_gosub(pbx, leg_chan, predial)
        leg_chan.application, leg_chan.application_data = "AppDial", "(Outgoing Line)"
        if caller is not None:
            leg_chan.exten = caller.exten
            leg_chan.emit(
                "Newexten",
                "dialplan",
                [
                    ("Extension", leg_chan.exten),
                    ("Application", "AppDial"),
                    ("AppData", "(Outgoing Line)"),
                ],
            )
            leg_chan.set_connected(caller.caller_num, caller.caller_name)
        else:
            leg_chan.set_connected(num, name)
        pbx.emit(
            "DialBegin",
            "call",
            _dial_event(caller, leg_chan, [("DialString", resource)]),
        )
        if caller is not None:
            caller.set_connected(phone.number, phone.name or "")
        decision = phone.ring(pbx, leg_chan)
        if decision.reject:
            leg_chan.set_state(ChannelState.BUSY)
            pbx.emit(
                "DialEnd",
                "call",
                _dial_event(caller, leg_chan, [("DialStatus", "BUSY")]),
            )
            leg_chan.request_hangup(17)
            pbx.destroy_channel(leg_chan)
            statuses.append("BUSY")
            continue
        leg_chan.set_state(ChannelState.RINGING)
        pbx.refresh_device_state(device)
        pbx.emit(
            "DialState",
            "call",
            _dial_event(caller, leg_chan, [("DialStatus", "RINGING")]),
        )
        answer_at = None if decision.answer_after is None else started + decision.answer_after
        legs.append(_Leg(device, resource, phone, leg_chan, answer_at))

    if not legs:
        status = "BUSY" if "BUSY" in statuses else "CHANUNAVAIL"
        return status, None

    if moh is not None and caller is not None:
        pbx.start_moh(caller, moh or "default")
    deadline = None if ring_for is None else started + ring_for
    answered: _Leg | None = None
    status = "NOANSWER"
    ringing = list(legs)
    while ringing:
        due = [leg.answer_at for leg in ringing if leg.answer_at is not None]
        if deadline is not None:
            due.append(deadline)
        until = min(due) if due else None
        watched = [c for c in (caller,) if c is not None] + [leg.channel for leg in ringing]
        await wait_any_interrupt(watched, None if until is None else max(until - loop.time(), 0))
        now = loop.time()
        if caller is not None and caller.check_hangup():
            status = "CANCEL"
            break
        for leg in [lg for lg in ringing if lg.channel.check_hangup()]:
            # The agent declined the ringing call.
            ringing.remove(leg)
            pbx.emit(
                "DialEnd",
                "call",
                _dial_event(caller, leg.channel, [("DialStatus", "BUSY")]),
            )
            pbx.destroy_channel(leg.channel)
            status = "BUSY"
        ready = [lg for lg in ringing if lg.answer_at is not None and lg.answer_at <= now]
        if ready:
            answered = ready[0]
            ringing.remove(answered)
            status = "ANSWER"
            break
        if deadline is not None and now >= deadline:
            status = "NOANSWER"
            break
    if moh and caller is not None:
        pbx.stop_moh(caller)
    # Everything still ringing stops ringing now.
    for leg in ringing:
        end_status = "CANCEL" if status in ("CANCEL", "ANSWER") else status
        pbx.emit(
            "DialEnd",
            "call",
            _dial_event(caller, leg.channel, [("DialStatus", end_status)]),
        )
        leg.channel.request_hangup(26 if status == "ANSWER" else 16)
        pbx.destroy_channel(leg.channel)
    if answered is not None:
        leg_chan = answered.channel
        leg_chan.set_state(ChannelState.UP)
        if answered.phone is not None:
            answered.phone.answered_call(pbx, leg_chan)
        elif leg_chan.local_peer is not None:
            pbx.start_dialplan(leg_chan.local_peer)
        pbx.refresh_device_state(answered.device)
        if caller is not None:
            leg_chan.exten = ""
        pbx.emit("DialEnd", "call", _dial_event(caller, leg_chan, [("DialStatus", "ANSWER")]))
    return status, answered


async def app_dial(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``Dial(PJSIP/1001[&PJSIP/1002],timeout,options)``.

    Options: ``m`` music on hold while ringing, ``g`` return 0 (not -1) after the
    answered call ends, ``A(file)`` play ``file`` to the answering phone before the bridge
    (the caller hears nothing meanwhile), ``U(context^arg1^...)`` then run that subroutine
    on it (:func:`callee_gosub`). Sets DIALSTATUS, DIALEDTIME, ANSWEREDTIME, DIALEDPEERNAME,
    DIALEDPEERNUMBER and (from the peer) HANGUPCAUSE.
    """
    targets, timeout, options = _parse_dial(data)
    if channel.check_hangup():
        return -1
    started = time.monotonic()
    if not targets:
        channel.set_var("DIALSTATUS", "CHANUNAVAIL")
        return 0
    flags = _app_options(options)
    status, answered = await ring_device(
        pbx, channel, targets, timeout, moh=flags.get("m"), predial=flags.get("b")
    )
    if answered is None:
        channel.set_var("DIALEDTIME", str(int(time.monotonic() - started)))
        channel.set_var("DIALSTATUS", status)
        return -1 if status == "CANCEL" and channel.hangup_requested else 0
    peer = answered.channel
    answered_at = time.monotonic()
    announcement = flags.get("A", "").partition(":")[0]
    if announcement:
        await play(pbx, peer, announcement)
    if flags.get("U") and not (peer.check_hangup() or channel.check_hangup()):
        await callee_gosub(pbx, peer, flags["U"])
        # app_dial bridges after U() whatever happened in it (unless GOSUB_RESULT says
        # otherwise, which the demo does not model): a peer gone meanwhile ends the bridge.
    elif announcement and (peer.check_hangup() or channel.check_hangup()):
        # Someone left during the announcement: nobody is put through (no bridge).
        if not peer.ended:
            peer.request_hangup(16)
            pbx.destroy_channel(peer)
        channel.set_var("DIALSTATUS", "ANSWER")
        channel.set_var("ANSWEREDTIME", "0")
        return -1 if channel.check_hangup() else 0
    result = await bridge_call(pbx, channel, peer, continue_after="g" in flags)
    ended = time.monotonic()
    channel.set_var("DIALEDPEERNAME", peer.name)
    channel.set_var("DIALEDPEERNUMBER", answered.resource)
    channel.set_var("ANSWEREDTIME", str(int(ended - answered_at)))
    channel.set_var("ANSWEREDTIME_MS", str(int((ended - answered_at) * 1000)))
    channel.set_var("DIALEDTIME", str(int(ended - started)))
    channel.set_var("DIALEDTIME_MS", str(int((ended - started) * 1000)))
    channel.set_var("DIALSTATUS", "ANSWER")
    return result


async def predial_gosub(pbx: DemoAsterisk, leg: Channel, spec: str) -> None:
    """Dial's ``b(context^exten^priority)``: that subroutine on a leg about to ring (its
    ``Set(PJSIP_HEADER(add,...))`` reaches the INVITE), up to its ``Return``."""
    context, exten, priority = [*spec.split("^"), "s", "1"][:3]
    steps = pbx.dialplan.contexts.get(context, {}).get(exten)
    if not steps:
        log.warning("demopbx_no_gosub", channel=leg.name, context=context)
        return
    place = (leg.context, leg.exten, leg.priority)
    leg.context, leg.exten = context, exten
    try:
        for number, step in enumerate(steps, 1):
            if number < int(priority or 1):
                continue
            if step.app.lower() == "return":
                break
            leg.priority = number
            if await pbx.run_step(leg, step) != 0:
                break
    finally:
        leg.context, leg.exten, leg.priority = place


async def callee_gosub(pbx: DemoAsterisk, peer: Channel, spec: str) -> None:
    """Dial's ``U(context[^arg1[^arg2...]])``: the ``s`` extension of ``context`` on the
    answering channel, with ``ARG1``... set, up to its ``Return`` (or a failing step)."""
    context, *args = spec.split("^")
    steps = pbx.dialplan.contexts.get(context, {}).get("s")
    if not steps:
        # Asterisk logs the missing subroutine and bridges the call as if U() was not there.
        log.warning("demopbx_no_gosub", channel=peer.name, context=context)
        return
    place = (peer.context, peer.exten, peer.priority)
    for number, arg in enumerate(args, 1):
        peer.set_var(f"ARG{number}", arg)
    peer.context, peer.exten = context, "s"
    try:
        for priority, step in enumerate(steps, 1):
            if step.app.lower() == "return":
                break
            peer.priority = priority
            if await pbx.run_step(peer, step) != 0 or peer.check_hangup():
                break
    finally:
        peer.context, peer.exten, peer.priority = place


async def bridge_call(
    pbx: DemoAsterisk, caller: Channel, peer: Channel, *, continue_after: bool
) -> int:
    """Bridge ``caller`` with its answered ``peer`` until one side leaves; returns Dial's result.

    The peer is hung up and destroyed here unless it was redirected elsewhere.
    """
    bridge = pbx.create_bridge()
    peer.emit(
        "Newexten",
        "dialplan",
        [("Extension", peer.exten), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")],
    )
    pbx.bridge_enter(bridge, peer)
    pbx.bridge_enter(bridge, caller)
    await wait_any_interrupt([caller, peer], None)
    caller_left = caller.check_hangup()
    if caller_left:
        pbx.bridge_leave(bridge, caller)
        pbx.bridge_leave(bridge, peer)
    else:
        pbx.bridge_leave(bridge, peer)
        pbx.bridge_leave(bridge, caller)
    pbx.destroy_bridge(bridge)
    if peer.goto_pending and not peer.hangup_requested:
        # The agent leg was redirected: it leaves the call and runs the dialplan on its own.
        pbx.start_dialplan(peer)
    else:
        peer.request_hangup(16, event="SoftHangupRequest", event_cause=16)
        pbx.destroy_channel(peer)
    if caller_left:
        return -1 if caller.hangup_requested else 0
    caller.hangup_cause = 16
    return 0 if continue_after else -1


#: ChanSpy's ``d`` option: DTMF 4 spy (listen), 5 whisper, 6 barge.
_SPY_DTMF_MODES = {"4": "listen", "5": "whisper", "6": "barge"}


async def app_chanspy(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``ChanSpy(PJSIP/1001[,options])``: listen (``w`` whisper, ``B`` barge) to a channel.

    Like Asterisk 22 (traces 09-11): a ``Redirect`` of the spy ends it at once without
    ChanSpyStop; an AMI/AGI soft hangup of the spy is acknowledged but the spy stays until
    the spied call ends (then ChanSpyStop and Hangup); a BYE from the spy's phone ends it.
    With ``d``, digits received on the spy's channel switch the mode (4 listen, 5 whisper,
    6 barge); the mode shows in ``channel.spy_mode``.
    """
    prefix, _, options = data.partition(",")
    prefix = prefix.strip()
    spyee = next(
        (
            c
            for c in pbx.channels.values()
            if c is not channel and not c.ended and prefix in (c.name, c.device)
        ),
        None,
    )
    if spyee is None:
        log.info("demopbx_chanspy_no_target", channel=channel.name, target=prefix)
        await wait_any_interrupt([channel], None)
        return -1
    mode = "barge" if "B" in options else "whisper" if "w" in options else "listen"
    channel.spy_target = spyee.name
    channel.spy_mode = mode
    channel.spy_modes.append(mode)
    channel.notify()
    pbx.emit("ChanSpyStart", "call", [*channel.snapshot("Spyer"), *spyee.snapshot("Spyee")])
    spyee_gone = asyncio.ensure_future(spyee.wait_interrupt())
    try:
        with channel.listen() as queue:
            while not spyee.check_hangup():
                item_wait = asyncio.ensure_future(queue.get())
                await asyncio.wait([item_wait, spyee_gone], return_when=asyncio.FIRST_COMPLETED)
                if not item_wait.done():
                    item_wait.cancel()
                    continue
                item = item_wait.result()
                if isinstance(item, str):
                    new = _SPY_DTMF_MODES.get(item) if "d" in options else None
                    if new is not None and new != channel.spy_mode:
                        channel.spy_mode = new
                        channel.spy_modes.append(new)
                        channel.notify()
                    continue
                if channel.goto_pending:
                    return 0
                if channel.hangup_requested and not channel.soft_hangup:
                    break
    finally:
        spyee_gone.cancel()
        channel.spy_mode = None
        channel.notify()
    pbx.emit("ChanSpyStop", "call", [*channel.snapshot("Spyer"), *spyee.snapshot("Spyee")])
    return -1


@dataclass(eq=False)
class ConfRoom:
    """A ConfBridge conference: its members (in join order) and who was kicked."""

    name: str
    bridge: Bridge
    members: list[Channel] = field(default_factory=list)
    kicked: set[str] = field(default_factory=set)
    """Uniqueids of members ``ConfbridgeKick`` took out (their ConfBridge returns 0)."""


#: How long a member may stay in a demo conference (a day: "until it ends").
CONF_FOREVER = 86_400.0


def _conf_headers(room: ConfRoom) -> list[tuple[str, str]]:
    return [("Conference", room.name), *room.bridge.headers()]


#: The user-profile setting (``CONFBRIDGE(user,...)``) that plays music to a member alone.
MOH_WHEN_EMPTY = "CONFBRIDGE(user,music_on_hold_when_empty)"


def _music_when_alone(pbx: DemoAsterisk, room: ConfRoom) -> None:
    """A member alone in the room hears music if its user profile says so; not otherwise."""
    for member in room.members:
        alone = len(room.members) == 1
        if alone and (member.get_var(MOH_WHEN_EMPTY) or "").lower() in ("yes", "1", "true"):
            pbx.start_moh(
                member, member.get_var("CONFBRIDGE(user,music_on_hold_class)") or "default"
            )
        else:
            pbx.stop_moh(member)


async def app_confbridge(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``ConfBridge(room)``: join ``room`` (created on first join) until hung up,
    redirected or kicked (``ConfbridgeKick``: returns 0, ``CONFBRIDGE_RESULT=KICKED``).

    Events as Asterisk's app_confbridge: ConfbridgeStart (first member), ConfbridgeJoin,
    ConfbridgeLeave, ConfbridgeEnd (last member gone), with ``Conference`` and the softmix
    bridge's headers; members also enter and leave the bridge (BridgeEnter/BridgeLeave).
    """
    name = data.partition(",")[0].strip()
    if not name or channel.check_hangup():
        return -1
    if channel.state != ChannelState.UP:
        channel.set_state(ChannelState.UP)
    room = pbx.conferences.get(name)
    if room is None:
        bridge = pbx.create_bridge()
        bridge.technology = "softmix"
        room = ConfRoom(name, bridge)
        pbx.conferences[name] = room
        pbx.emit("ConfbridgeStart", "call", _conf_headers(room))
    room.members.append(channel)
    pbx.bridge_enter(room.bridge, channel)
    channel.emit("ConfbridgeJoin", "call", [*_conf_headers(room), ("Admin", "No"), ("Muted", "No")])
    _music_when_alone(pbx, room)
    try:
        await channel.wait_until(
            lambda: channel.check_hangup() or channel.uniqueid in room.kicked, CONF_FOREVER
        )
    finally:
        room.members.remove(channel)
        pbx.stop_moh(channel)
        pbx.bridge_leave(room.bridge, channel)
        channel.emit("ConfbridgeLeave", "call", [*_conf_headers(room), ("Admin", "No")])
        _music_when_alone(pbx, room)
        if not room.members:
            del pbx.conferences[name]
            pbx.destroy_bridge(room.bridge)
            pbx.emit("ConfbridgeEnd", "call", _conf_headers(room))
    if channel.uniqueid in room.kicked:
        room.kicked.discard(channel.uniqueid)
        channel.set_var("CONFBRIDGE_RESULT", "KICKED")
        return 0
    channel.set_var("CONFBRIDGE_RESULT", "HANGUP" if channel.hangup_requested else "LEFT")
    return -1 if channel.hangup_requested else 0


AMD_SECONDS = 0.05
"""How long the demo's ``AMD()`` listens before it decides (Asterisk's: up to 5 s)."""


async def app_amd(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``AMD()``: the called phone says what it is. AMDSTATUS ``MACHINE`` (AMDCAUSE
    ``LONGGREETING-...``) for a phone made with ``machine=True``, else ``HUMAN`` (AMDCAUSE
    ``HUMAN-...``), ``HANGUP`` when the channel went while it listened."""
    phone = pbx.phones.get(channel.device)
    await wait_any_interrupt([channel], AMD_SECONDS)
    if channel.check_hangup():
        status, cause = "HANGUP", ""
    elif phone is not None and getattr(phone, "machine", False):
        status, cause = "MACHINE", "LONGGREETING-1510-1500"
    else:
        status, cause = "HUMAN", "HUMAN-820-800"
    channel.set_var("AMDSTATUS", status)
    channel.set_var("AMDCAUSE", cause)
    return -1 if status == "HANGUP" else 0


APPLICATIONS: dict[str, Application] = {
    "amd": app_amd,
    "answer": app_answer,
    "hangup": app_hangup,
    "noop": app_noop,
    "execif": app_exec_if,
    "verbose": app_noop,
    "log": app_noop,
    "progress": app_noop,
    "ringing": app_noop,
    "set": app_set,
    "wait": app_wait,
    "playback": app_playback,
    "saynumber": app_say_number,
    "background": app_playback,
    "startmusiconhold": app_start_moh,
    "playtones": app_playtones,
    "stopplaytones": app_stop_playtones,
    "stopmusiconhold": app_stop_moh,
    "musiconhold": app_moh,
    "echo": app_echo,
    "dial": app_dial,
    "chanspy": app_chanspy,
    "confbridge": app_confbridge,
}


def find_application(name: str) -> Application | None:
    """The application called ``name`` (any case), or None."""
    return APPLICATIONS.get(name.lower())
