"""Dialplan applications of the demo FreeSWITCH, and ringing/bridging of agent phones.

Each application is ``async def app(pbx, channel, arg) -> None`` and reports its result the
way FreeSWITCH does: in the ``current_application_response`` variable, which becomes the
``Application-Response`` of CHANNEL_EXECUTE_COMPLETE (``_none_`` when unset).
:func:`execute` wraps one run in CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE; :func:`park_loop`
is ``park`` (and the ``socket`` application's wait): it runs the applications queued with
``sendmsg`` until the channel hangs up or is redirected.

Behaviour copied from FreeSWITCH 1.10 (see ``shared/traces/freeswitch``):

* ``playback`` stops early on a digit in ``playback_terminators`` (default ``*``; other digits
  are eaten), answers ``FILE PLAYED``; when the caller hangs up mid-file PLAYBACK_STOP still
  says ``Playback-Status: done`` and the response is ``PLAYBACK ERROR`` (trace h).
* ``play_and_get_digits`` / ``read`` set the variable, ``read_result`` and
  ``read_terminator_used``; their response is ``_none_`` (trace b).
* ``say`` (mod_say) plays one prompt per word said, named as the demo Asterisk's SAY names
  them (``digits/5``), each like ``playback``; a terminator digit stops the rest (``_none_``).
* ``record`` writes a WAV file until the time limit, silence (see ``Caller.speak``), a
  terminator digit, ``uuid_break`` or a hang-up; ``record_ms`` / ``record_seconds`` tell the
  length (``_none_``). An unwritable file hangs up with ``DESTINATION_OUT_OF_ORDER``.
* ``bridge`` rings the dial string's phones (``call_timeout``, default 60 s). If ringing fails
  the caller is hung up with the failure cause (``NO_ANSWER``, ``USER_BUSY`` ...) unless
  ``continue_on_fail`` is true or lists that cause; ``originate_disposition``, ``DIALSTATUS``
  and ``originate_failed_cause`` tell what happened. After the bridge the caller carries on
  (next application / park loop) unless ``hangup_after_bridge`` is true.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid as uuidlib
import wave
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog

from callcenter.demopbx.fs_channels import (
    ChannelState,
    FSBridge,
    FSChannel,
    Transfer,
    cause_name,
    now_us,
    prompt_name,
    wait_change,
    wait_events,
)
from callcenter.demopbx.fs_say import parse_say, say_prompts
from callcenter.demopbx.recording import Recording

if TYPE_CHECKING:
    from callcenter.demopbx.freeswitch import DemoFreeSwitch
    from callcenter.demopbx.fs_phones import AgentPhone

log = structlog.get_logger(__name__)

Application = Callable[["DemoFreeSwitch", FSChannel, str], Awaitable[None]]

#: DIALSTATUS FreeSWITCH sets for a failed originate, by cause.
_DIALSTATUS = {
    "SUCCESS": "SUCCESS",
    "USER_BUSY": "BUSY",
    "CALL_REJECTED": "BUSY",
    "NO_ANSWER": "NOANSWER",
    "NO_USER_RESPONSE": "NOANSWER",
    "ORIGINATOR_CANCEL": "CANCEL",
    "NORMAL_CIRCUIT_CONGESTION": "CONGESTION",
    "SWITCH_CONGESTION": "CONGESTION",
}

MEDIA_SCHEMES = ("local_stream://", "silence_stream://", "tone_stream://")

#: The channel's own sample rate (PCMU): ``record_ms`` / ``record_samples`` count in it.
_NATIVE_RATE = 8000
#: Rates ``record_rate`` / ``record_sample_rate`` may pick (``switch_is_valid_rate``).
_RECORD_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
#: Seconds of silence that end a recording given a threshold but no count (FreeSWITCH's 3).
_DEFAULT_SILENCE_SECONDS = 3
#: How often a recording with silence detection looks at the caller's speech again.
_RECORD_POLL = 0.05


# --------------------------------------------------------------------------- running apps


async def execute(
    pbx: DemoFreeSwitch,
    chan: FSChannel,
    app: str,
    arg: str,
    *,
    app_uuid: str | None = None,
    loops: int = 1,
) -> None:
    """Run ``app`` on ``chan`` between CHANNEL_EXECUTE and CHANNEL_EXECUTE_COMPLETE
    (``Application-UUID`` = ``app_uuid``, the sendmsg ``Event-UUID``, or a new one).

    An unknown application hangs the channel up with ``DESTINATION_OUT_OF_ORDER`` and fires
    nothing, as FreeSWITCH does ("Invalid Application").
    """
    func = APPLICATIONS.get(app.lower())
    if func is None:
        log.warning("demofs_invalid_application", channel=chan.name, app=app)
        chan.hangup("DESTINATION_OUT_OF_ORDER")
        return
    app_uuid = app_uuid or str(uuidlib.uuid4())
    for _ in range(max(loops, 1)):
        if chan.hungup:
            return
        data = chan.expand(arg)
        chan.applications.append(app)
        chan.set_var("current_application", app)
        chan.set_var("current_application_data", data)
        chan.set_var("current_application_response", None)
        described = [("Application", app), *([("Application-Data", data)] if data else [])]
        chan.fire("CHANNEL_EXECUTE", post=[*described, ("Application-UUID", app_uuid)])
        await func(pbx, chan, data)
        response = chan.var("current_application_response") or "_none_"
        chan.fire(
            "CHANNEL_EXECUTE_COMPLETE",
            post=[*described, ("Application-Response", response), ("Application-UUID", app_uuid)],
        )


async def run_queued(pbx: DemoFreeSwitch, chan: FSChannel) -> None:
    """Run the applications queued with ``sendmsg`` until none is left or the channel stops."""
    while chan.inbox and not chan.stopped:
        item = chan.inbox.popleft()
        await execute(pbx, chan, item.app, item.arg, app_uuid=item.event_uuid, loops=item.loops)


async def park_loop(
    pbx: DemoFreeSwitch, chan: FSChannel, *, stop: Callable[[], bool] | None = None
) -> None:
    """``park``: CHANNEL_PARK, then run queued applications until the channel hangs up, is
    redirected or ``stop()`` holds; CHANNEL_UNPARK at the end."""
    if chan.parked:
        return
    chan.parked = True
    chan.fire("CHANNEL_PARK")

    def wake() -> bool:
        return chan.stopped or bool(chan.inbox) or (stop is not None and stop())

    try:
        while True:
            await chan.wait_until(wake, None)
            if chan.stopped or (stop is not None and stop()):
                break
            await run_queued(pbx, chan)
    finally:
        chan.parked = False
    chan.fire("CHANNEL_UNPARK")


# --------------------------------------------------------------------------- media


@dataclass(frozen=True, slots=True)
class PlayOutcome:
    """How a playback ended: ``done`` (played out), ``break`` (digit, uuid_break, redirect),
    ``hangup`` (the caller hung up mid-file) or ``missing`` (no such file)."""

    status: Literal["done", "break", "hangup", "missing"]
    terminator: str = ""


def _files(target: str) -> list[str]:
    if target.startswith("file_string://"):
        return [part for part in target[len("file_string://") :].split("!") if part]
    return [target]


async def play(
    pbx: DemoFreeSwitch,
    chan: FSChannel,
    target: str,
    *,
    terminators: str = "",
    any_digit_breaks: bool = False,
    reads_keys: bool = True,
    label: str | None = None,
    language: str | None = None,
) -> PlayOutcome:
    """Play ``target`` (a file, ``file_string://a!b``, ``silence_stream://ms``,
    ``tone_stream://...`` or ``local_stream://moh``, which plays until interrupted) with
    PLAYBACK_START / PLAYBACK_STOP around it.

    A digit in ``terminators`` stops it (and is eaten); with ``any_digit_breaks`` any digit
    stops it and stays queued for the reader; other digits are eaten, as ``playback`` does.
    Without ``reads_keys`` (``endless_playback``, which plays with no input arguments) the
    digits stay queued, unread, for the application after it.
    The caller hears each file as its prompt name, or as ``label`` (``say``'s
    ``digits/5``), in ``language`` (default: the channel's); a ``tone_stream://`` is heard
    as ``beep``, the name the demo Asterisk gives RECORD FILE's beep.
    """
    files = _files(target)
    if not files or any(pbx.prompt_duration(f) is None for f in files):
        log.info("demofs_file_not_found", channel=chan.name, file=target)
        return PlayOutcome("missing")
    scheme = target.split("://", 1)[0] if "://" in target else ""
    kind = [("Playback-File-Type", scheme)] if scheme else []
    chan.fire("PLAYBACK_START", post=[*kind, ("Playback-File-Path", target)])
    loop = asyncio.get_running_loop()
    started = loop.time()
    start_break = chan.break_count
    status: Literal["done", "break", "hangup"] = "done"
    terminator = ""
    with chan.listening():
        for file in files:
            music = file.startswith("local_stream://")
            if music:
                chan.moh_starts += 1
                chan.music_plays += 1
                chan.music_playing = True
                chan.notify()
            elif file.startswith("tone_stream://"):
                ringing = "440,480" in file  # the ring tone the driver plays as ringback
                _heard(chan, "ringback" if ringing else "beep", file, language)
            elif not file.startswith(MEDIA_SCHEMES):
                _heard(chan, label or prompt_name(file), file, language)
            duration = pbx.prompt_duration(file)
            deadline = (
                None if duration is None or duration == float("inf") else (loop.time() + duration)
            )
            while True:

                def wake() -> bool:
                    return (
                        chan.stopped
                        or chan.break_count != start_break
                        or (reads_keys and chan.has_digit)
                    )

                remaining = None if deadline is None else deadline - loop.time()
                woke = await chan.wait_until(wake, remaining)
                if chan.hungup:
                    status = "hangup"
                    break
                if chan.redirect is not None or chan.break_count != start_break:
                    status = "break"
                    break
                if reads_keys and chan.has_digit:
                    if any_digit_breaks:
                        status = "break"
                        break
                    digit = chan.take_digit() or ""
                    if digit and digit in terminators:
                        status, terminator = "break", digit
                        break
                    continue
                if not woke:
                    break  # this file played out
            if status != "done":
                break
    chan.music_playing = False
    elapsed = loop.time() - started
    chan.set_var("playback_last_offset_pos", str(int(elapsed * 8000)))
    chan.set_var("playback_seconds", str(int(elapsed)))
    chan.set_var("playback_ms", str(int(elapsed * 1000)))
    chan.set_var("playback_samples", str(int(elapsed * 8000)))
    if terminator:
        chan.set_var("playback_terminator_used", terminator)
    # FreeSWITCH says "done" even when the caller hung up mid-file (trace h).
    stop_status = "break" if status == "break" else "done"
    chan.fire(
        "PLAYBACK_STOP",
        post=[*kind, ("Playback-File-Path", target), ("Playback-Status", stop_status)],
    )
    return PlayOutcome(status, terminator)


def _heard(chan: FSChannel, prompt: str, file: str, language: str | None) -> None:
    chan.heard.append(prompt)
    chan.heard_in.append((language or chan.language, prompt))
    chan.heard_files.append(file)
    chan.notify()


def _playback_response(outcome: PlayOutcome) -> str:
    if outcome.status == "missing":
        return "FILE NOT FOUND"
    return "PLAYBACK ERROR" if outcome.status == "hangup" else "FILE PLAYED"


def _terminators(chan: FSChannel) -> str:
    value = chan.var("playback_terminators", "*")
    return "" if value.lower() == "none" else value


async def collect_digits(
    chan: FSChannel, max_digits: int, terminators: str, first_timeout: float, next_timeout: float
) -> tuple[str, str]:
    """Read up to ``max_digits`` digits (call inside ``chan.listening()``): stops at a
    terminator (returned second, not part of the digits) or when a timeout passes."""
    digits = ""
    limit = first_timeout
    while len(digits) < max_digits:
        got = await chan.wait_until(lambda: chan.stopped or chan.has_digit, max(limit, 0.0))
        if chan.stopped or not got:
            break
        digit = chan.take_digit() or ""
        if digit and digit in terminators:
            return digits, digit
        digits += digit
        limit = next_timeout
    return digits, ""


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _valid(digits: str, regexp: str) -> bool:
    if not regexp:
        return True
    try:
        return re.search(regexp, digits) is not None
    except re.error:
        return False


# --------------------------------------------------------------------------- applications


async def app_answer(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``answer``: CHANNEL_ANSWER (no-op once answered)."""
    chan.mark_answered()


async def app_ring_ready(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``ring_ready``: tell the caller it rings (CHANNEL_PROGRESS)."""
    chan.mark_ring_ready()


AMD_SECONDS = 0.05
"""How long the demo's ``amd`` listens before it decides (mod_amd's: up to 5 s)."""


async def app_amd(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``amd`` (mod_amd, not in FreeSWITCH's own tree): the called phone says what it is.
    ``amd_result`` ``MACHINE`` (``amd_cause`` ``LONGGREETING``) for a phone made with
    ``machine=True``, else ``HUMAN``."""
    phone = pbx.phone_of(chan)
    await chan.wait_until(lambda: chan.hungup, AMD_SECONDS)
    if chan.hungup:
        return
    machine = phone is not None and getattr(phone, "machine", False)
    chan.set_var("amd_result", "MACHINE" if machine else "HUMAN")
    chan.set_var("amd_cause", "LONGGREETING" if machine else "HUMAN")


async def app_hangup(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``hangup [cause]``."""
    chan.hangup(cause_name(arg) or "NORMAL_CLEARING")


async def app_set(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``set name=value`` (an empty value unsets)."""
    name, _, value = arg.partition("=")
    if name.strip():
        chan.set_var(name.strip(), value)


async def app_multiset(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``multiset [^^<delim>]name=value name2=value2``: several ``set`` in one application
    (space-separated unless the argument starts with ``^^`` and a delimiter of its own)."""
    delim = " "
    if arg.startswith("^^") and len(arg) > 2:
        delim, arg = arg[2], arg[3:]
    for item in arg.split(delim):
        if item:
            await app_set(pbx, chan, item)


async def app_export(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``export [nolocal:]name=value``: also given to legs bridged later."""
    name, _, value = arg.partition("=")
    name = name.strip()
    nolocal = name.startswith("nolocal:")
    name = name.removeprefix("nolocal:")
    if not name:
        return
    if not nolocal:
        chan.set_var(name, value)
    exported = [v for v in chan.var("export_vars").split(",") if v]
    if name not in exported:
        exported.append(name)
    chan.set_var("export_vars", ",".join(exported))
    if nolocal:
        chan.set_var(f"nolocal:{name}", value)


async def app_unset(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``unset name``."""
    chan.set_var(arg.strip(), None)


async def app_log(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``log [LEVEL] text``."""
    level, _, text = arg.partition(" ")
    log.info("demofs_dialplan_log", channel=chan.name, level=level, text=text)


async def app_sleep(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``sleep <ms>``: wait (a hang-up, redirect or uuid_break ends it early)."""
    start_break = chan.break_count
    await chan.wait_until(
        lambda: chan.stopped or chan.break_count != start_break, _int(arg, 0) / 1000
    )


async def app_park(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``park``: wait for ESL to tell the channel what to do (CHANNEL_PARK)."""
    await park_loop(pbx, chan)


async def app_transfer(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``transfer <destination> [dialplan] [context]``."""
    parts = arg.split()
    if not parts:
        return
    dialplan = parts[1] if len(parts) > 1 else "XML"
    context = parts[2] if len(parts) > 2 else chan.context
    chan.request_redirect(Transfer(parts[0], dialplan, context))


async def app_sched_transfer(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``sched_transfer [+]<time> <destination> [dialplan] [context]``: transfer the channel
    at that Unix time (``+N``: in N seconds) unless ``sched_del`` drops the task first; the
    task's id goes to ``last_sched_id``. Its group is the channel's UUID: it is dropped when
    the channel goes."""
    parts = arg.split()
    if len(parts) < 2:
        log.warning("demofs_sched_transfer_invalid_args", channel=chan.name, arg=arg)
        return
    when, destination = parts[0], parts[1]
    try:
        delay = float(when[1:]) if when.startswith("+") else float(when) - time.time()
    except ValueError:
        delay = -time.time()  # FreeSWITCH's atol("abc") is 0: the epoch, long past
    dialplan = parts[2] if len(parts) > 2 else "XML"
    context = parts[3] if len(parts) > 3 else chan.context

    def transfer() -> None:
        if not chan.hungup:
            chan.request_redirect(Transfer(destination, dialplan, context))

    task_id = pbx.scheduler.add(delay, chan.uuid, transfer)
    chan.set_var("last_sched_id", str(task_id))


async def app_playback(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``playback <file>``: FILE PLAYED / PLAYBACK ERROR / FILE NOT FOUND."""
    outcome = await play(pbx, chan, arg.strip(), terminators=_terminators(chan))
    chan.set_var("current_application_response", _playback_response(outcome))


async def app_endless_playback(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``endless_playback <file>``: play it again and again until interrupted. It reads
    no keys (FreeSWITCH runs it without input arguments): they wait for the next reader."""
    while not chan.stopped:
        outcome = await play(pbx, chan, arg.strip(), reads_keys=False)
        if outcome.status != "done":
            chan.set_var("current_application_response", _playback_response(outcome))
            return
    chan.set_var("current_application_response", "FILE PLAYED")


async def app_say(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``say <module>[:<lang>] <type> <method> [<gender>] <text>`` (mod_say; what is said:
    :mod:`callcenter.demopbx.fs_say`). Each prompt plays like ``playback`` (``sound_prefix``
    before ``digits/5.wav``); a ``playback_terminators`` digit stops the rest. A bad usage or
    an unknown type says nothing; the response is ``_none_`` either way."""
    request = parse_say(arg)
    if request is None:
        log.warning("demofs_say_usage", channel=chan.name, arg=arg)
        return
    chan.set_var("playback_terminator_used", None)
    prompts = say_prompts(request, chan.var("timezone") or "UTC")
    if prompts is None:
        log.warning("demofs_say_unsupported", channel=chan.name, arg=arg)
        return
    language = _say_language(chan, request.language)
    prefix = chan.var("sound_prefix").rstrip("/")
    terminators = _terminators(chan)
    for prompt in prompts:
        file = f"{prefix}/{prompt}.wav" if prefix else f"{prompt}.wav"
        outcome = await play(
            pbx, chan, file, terminators=terminators, label=prompt, language=language
        )
        if outcome.status != "done":
            # mod_say stops at the first file that did not play out (digit, hang-up, missing).
            break


def _say_language(chan: FSChannel, language: str) -> str:
    """The language ``say`` speaks: the channel's own (``en_GB``) when the module's language
    is its first part (``en``), else the module's."""
    current = chan.language
    if re.split("[_-]", current)[0].lower() == language.lower():
        return current
    return language


async def app_record(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``record <path> [<time limit s>] [<silence threshold> [<silence s>]]``: record the
    caller into ``path`` (folders are created; a relative path is under ``sound_prefix``).

    It ends at the time limit (0: none), after the silence seconds (3 when only a threshold
    is given) without :meth:`~callcenter.demopbx.fs_phones.Caller.speak`, on a
    ``playback_terminators`` digit (``playback_terminator_used``), on ``uuid_break``, a
    redirect or a hang-up; the file is kept in every case. The file is 16-bit mono WAV
    silence of the recorded length at ``record_rate``/``record_sample_rate`` (default 8000).
    Sets ``record_seconds``, ``record_ms``, ``record_samples`` and ``silence_hits_exhausted``;
    fires RECORD_START / RECORD_STOP (``Record-File-Path``). A file that cannot be written
    hangs the caller up with ``DESTINATION_OUT_OF_ORDER``, as FreeSWITCH does.
    """
    parts = arg.split()
    if not parts:
        log.warning("demofs_record_usage", channel=chan.name)
        return
    path = _record_path(chan, parts[0])
    limit = max(_int(parts[1].removeprefix("+"), 0), 0) if len(parts) > 1 else 0
    threshold = max(_int(parts[2], 0), 0) if len(parts) > 2 else 0
    hits = max(_int(parts[3], 0), 0) if len(parts) > 3 else 0
    silence = float(hits or _DEFAULT_SILENCE_SECONDS) if threshold else None
    rate = _record_rate(chan)
    chan.set_var("playback_terminator_used", None)
    try:
        await asyncio.to_thread(_write_wav, path, rate, 0)
    except OSError as exc:
        log.warning("demofs_record_open_failed", channel=chan.name, path=str(path), error=str(exc))
        chan.hangup("DESTINATION_OUT_OF_ORDER")
        return
    chan.set_var("silence_hits_exhausted", "false")
    chan.fire("RECORD_START", post=[("Record-File-Path", str(path))])
    elapsed = await _capture(chan, _terminators(chan), float(limit), silence)
    samples = int(elapsed * _NATIVE_RATE)
    try:
        await asyncio.to_thread(_write_wav, path, rate, int(elapsed * rate))
    except OSError as exc:
        log.warning("demofs_record_write_failed", channel=chan.name, error=str(exc))
    chan.set_var("record_seconds", str(samples // _NATIVE_RATE))
    chan.set_var("record_ms", str(samples * 1000 // _NATIVE_RATE))
    chan.set_var("record_samples", str(samples))
    chan.fire("RECORD_STOP", post=[("Record-File-Path", str(path))])
    log.info("demofs_recorded", channel=chan.name, path=str(path), seconds=round(elapsed, 3))


async def _capture(chan: FSChannel, terminators: str, limit: float, silence: float | None) -> float:
    """Wait while the caller is recorded (see :func:`app_record`); the seconds recorded."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    start_break = chan.break_count

    def wake() -> bool:
        return chan.stopped or chan.break_count != start_break or chan.has_digit

    with chan.listening():
        chan.messages_recorded += 1
        chan.notify()
        while True:
            now = loop.time()
            if chan.stopped or chan.break_count != start_break:
                break
            if limit and now >= start + limit:
                break
            quiet_since = max(start, chan.talking_until)
            if silence is not None and now >= quiet_since + silence:
                chan.set_var("silence_hits_exhausted", "true")
                break
            if chan.has_digit:
                digit = chan.take_digit() or ""
                if digit and digit in terminators:
                    chan.set_var("playback_terminator_used", digit)
                    break
                continue  # other digits are eaten
            due = [start + limit] if limit else []
            if silence is not None:
                due.append(quiet_since + silence)
            step = min(due) - now if due else None
            if silence is not None:
                # Caller.speak can move the silence deadline at any time: look again soon.
                step = min(step if step is not None else _RECORD_POLL, _RECORD_POLL)
            await chan.wait_until(wake, None if step is None else max(step, 0.0))
    return loop.time() - start


def _record_path(chan: FSChannel, target: str) -> Path:
    path = Path(target)
    prefix = chan.var("sound_prefix")
    return path if path.is_absolute() or not prefix else Path(prefix) / path


def _record_rate(chan: FSChannel) -> int:
    for name in ("record_sample_rate", "record_rate"):
        rate = _int(chan.var(name), 0)
        if rate in _RECORD_RATES:
            return rate
    return _NATIVE_RATE


_RECORD_SITE = ("switch_ivr_async.c", "record_callback", "1297")


def start_session_recording(chan: FSChannel, target: str) -> None:
    """``uuid_record <uuid> start <path>`` / ``record_session``: RECORD_START; the file is
    written when :func:`stop_session_recording` runs (stop or hang-up)."""
    chan.recordings[target] = Recording(target, asyncio.get_running_loop().time())
    chan.fire("RECORD_START", post=[("Record-File-Path", target)], site=_RECORD_SITE)
    chan.notify()


def mask_session_recording(chan: FSChannel, target: str, on: bool) -> bool:
    """``uuid_record <uuid> mask|unmask <path>``: silence (``on``) or record again what
    the recording ``target`` writes; False when no such recording runs."""
    recording = chan.recordings.get(target)
    if recording is None:
        return False
    recording.mute(asyncio.get_running_loop().time(), on)
    chan.notify()
    return True


def stop_session_recording(chan: FSChannel, target: str | None = None) -> bool:
    """Stop one recording (``target``) or all: write the file(s), RECORD_STOP. False if
    no such recording ran."""
    paths = list(chan.recordings) if target is None else [target]
    stopped = False
    now = asyncio.get_running_loop().time()
    for path in paths:
        recording = chan.recordings.pop(path, None)
        if recording is None:
            continue
        recording.write(_record_path(chan, path), now, _record_rate(chan))
        chan.fire("RECORD_STOP", post=[("Record-File-Path", path)], site=_RECORD_SITE)
        stopped = True
    if stopped:
        chan.notify()
    return stopped


def _write_wav(path: Path, rate: int, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * frames)


async def app_play_and_get_digits(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``play_and_get_digits <min> <max> <tries> <timeout ms> <terminators> <file>
    <invalid file> [<var> [<regexp> [<digit timeout ms> [<transfer on failure>]]]]``."""
    parts = arg.split()
    if len(parts) < 7:
        log.warning("demofs_pagd_usage", channel=chan.name, arg=arg)
        return
    min_digits, max_digits = _int(parts[0], 1), _int(parts[1], 1)
    tries, timeout_ms = max(_int(parts[2], 1), 1), _int(parts[3], 5000)
    terminators = "" if parts[4].lower() == "none" else parts[4]
    file, invalid = parts[5], parts[6]
    var = parts[7] if len(parts) > 7 else ""
    regexp = parts[8] if len(parts) > 8 else ""
    digit_timeout_ms = _int(parts[9], timeout_ms) if len(parts) > 9 else timeout_ms
    on_failure = parts[10:] if len(parts) > 10 else []
    digits = ""
    for attempt in range(tries):
        with chan.listening():
            await play(pbx, chan, file, any_digit_breaks=True)
            if chan.stopped:
                return
            digits, terminator = await collect_digits(
                chan, max_digits, terminators, timeout_ms / 1000, digit_timeout_ms / 1000
            )
        if chan.stopped:
            return
        if terminator:
            chan.set_var("read_terminator_used", terminator)
        if len(digits) >= min_digits and _valid(digits, regexp):
            chan.set_var("read_result", "success")
            if var:
                chan.set_var(var, digits)
            return
        if attempt + 1 < tries and invalid and not invalid.startswith("silence_stream://"):
            await play(pbx, chan, invalid, any_digit_breaks=True)
    chan.set_var("read_result", "failure" if digits else "timeout")
    if var:
        chan.set_var(var, None)
    if on_failure:
        target = on_failure[0]
        dialplan = on_failure[1] if len(on_failure) > 1 else "XML"
        context = on_failure[2] if len(on_failure) > 2 else chan.context
        chan.request_redirect(Transfer(target, dialplan, context))


async def app_read(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``read <min> <max> <file> <var> <timeout ms> <terminators>``."""
    parts = arg.split()
    if len(parts) < 4:
        log.warning("demofs_read_usage", channel=chan.name, arg=arg)
        return
    min_digits, max_digits = _int(parts[0], 0), _int(parts[1], 1)
    file, var = parts[2], parts[3]
    timeout_ms = _int(parts[4], 5000) if len(parts) > 4 else 5000
    terminators = parts[5] if len(parts) > 5 else "#"
    with chan.listening():
        await play(pbx, chan, file, any_digit_breaks=True)
        if chan.stopped:
            return
        digits, terminator = await collect_digits(
            chan, max_digits, terminators, timeout_ms / 1000, timeout_ms / 1000
        )
    if chan.stopped:
        return
    if terminator:
        chan.set_var("read_terminator_used", terminator)
    chan.set_var(var, digits)
    if len(digits) >= min_digits:
        chan.set_var("read_result", "success")
    else:
        chan.set_var("read_result", "timeout" if not digits else "failure")


async def app_bridge(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``bridge <dial string>``: ring, bridge, wait for the bridge to end (module doc)."""
    timeout = float(_int(chan.var("call_timeout", "60"), 60))
    leg, cause = await originate_legs(pbx, chan, arg, timeout=timeout)
    if leg is None:
        chan.set_var("originate_disposition", cause)
        chan.set_var("originate_failed_cause", cause)
        chan.set_var("DIALSTATUS", _DIALSTATUS.get(cause, "CHANUNAVAIL"))
        log.info("demofs_bridge_failed", channel=chan.name, cause=cause)
        if not chan.stopped and not _continue_on_fail(chan, cause):
            chan.hangup(cause)
        return
    chan.set_var("originate_disposition", "SUCCESS")
    chan.set_var("DIALSTATUS", "SUCCESS")
    chan.mark_answered()
    bridge = link(chan, leg, "bridge")
    leg.set_state(ChannelState.CS_EXCHANGE_MEDIA)
    activate(bridge)
    await wait_change(
        [chan, leg],
        lambda: chan.stopped or leg.stopped or bridge.ended,
        None,
    )
    if chan.stopped and not leg.hungup and leg.redirect is None:
        # The caller left (hang-up or transfer): the agent leg has nothing else to do.
        leg.hangup("NORMAL_CLEARING")
    unlink(bridge)
    peer_cause = leg.hangup_cause or "NORMAL_CLEARING"
    chan.set_var("bridge_hangup_cause", peer_cause)
    chan.set_var("last_bridge_hangup_cause", peer_cause)
    if not chan.stopped and chan.var_true("hangup_after_bridge"):
        chan.hangup("NORMAL_CLEARING")


def _continue_on_fail(chan: FSChannel, cause: str) -> bool:
    value = chan.var("continue_on_fail").strip()
    if not value:
        return False
    if chan.var_true("continue_on_fail"):
        return True
    wanted = {cause_name(item) for item in value.split(",")}
    return cause in wanted


#: eavesdrop's DTMF keys with ``eavesdrop_enable_dtmf`` -> (mux into what the spied-on
#: leg reads (its partner hears), mux into what it is sent (it hears)).
_EAVESDROP_KEYS = {"0": (False, False), "1": (True, False), "2": (False, True), "3": (True, True)}


def _spy_mode(read: bool, write: bool) -> str:
    if read and write:
        return "barge"
    if write:
        return "whisper"
    return "whisper_other" if read else "listen"


async def app_eavesdrop(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``eavesdrop <uuid>``: hear the spied-on leg and its partner until either side goes.

    ``eavesdrop_whisper_aleg`` / ``eavesdrop_whisper_bleg`` start with ED_MUX_READ /
    ED_MUX_WRITE set; with ``eavesdrop_enable_dtmf`` the keys 0-3 change them (trace e).
    """
    target = pbx.channels.get(arg.strip())
    if target is None or target.hungup or target is chan:
        chan.set_var("current_application_response", "-ERR no such uuid")
        return
    read = chan.var_true("eavesdrop_whisper_aleg")
    write = chan.var_true("eavesdrop_whisper_bleg")
    dtmf = chan.var_true("eavesdrop_enable_dtmf")
    chan.spy_target = target.uuid
    chan.spy_mode = _spy_mode(read, write)
    chan.spy_modes.append(chan.spy_mode)
    chan.notify()
    try:
        with chan.listening():
            while True:
                await wait_change(
                    [chan, target], lambda: chan.stopped or target.hungup or chan.has_digit, None
                )
                if chan.stopped or target.hungup:
                    break
                digit = chan.take_digit()
                flags = _EAVESDROP_KEYS.get(digit or "") if dtmf else None
                if flags is not None:
                    mode = _spy_mode(*flags)
                    if mode != chan.spy_mode:
                        chan.spy_mode = mode
                        chan.spy_modes.append(mode)
                        chan.notify()
    finally:
        chan.spy_mode = None
        chan.notify()


@dataclass(eq=False)
class FSConfRoom:
    """A mod_conference room: members in join order, their member ids, who was kicked."""

    name: str
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    members: list[FSChannel] = field(default_factory=list)
    member_ids: dict[str, int] = field(default_factory=dict)
    """Channel Unique-ID -> Member-ID (counted from 1 per room, as mod_conference does)."""
    kicked: set[str] = field(default_factory=set)
    no_music: set[str] = field(default_factory=set)
    """Unique-IDs of members that joined with ``+flags{nomoh}``."""
    playing: dict[str, str] = field(default_factory=dict)
    """Unique-ID -> what ``conference <room> play ... <member>`` plays to that member now."""
    next_id: int = 1


_CONF_SITE = ("mod_conference.c", "conference_member_add", "1017")


def _conf_event(room: FSConfRoom, chan: FSChannel, action: str) -> None:
    """A CUSTOM conference::maintenance event about ``chan`` in ``room``."""
    chan.fire(
        "CUSTOM",
        pre=[
            ("Event-Subclass", "conference::maintenance"),
            ("Conference-Name", room.name),
            ("Conference-Domain", "default"),
            ("Conference-Size", str(len(room.members))),
            ("Conference-Profile-Name", "default"),
            ("Conference-Unique-ID", room.uuid),
        ],
        post=[
            ("Member-ID", str(room.member_ids.get(chan.uuid, 0))),
            ("Member-Type", "member"),
            ("Action", action),
        ],
        site=_CONF_SITE,
        minimal=True,
    )


def _music_when_alone(room: FSConfRoom) -> None:
    """A member left alone hears the profile's ``moh-sound`` (the stock default profile
    has one), unless it joined with the ``nomoh`` flag: counted as a music start, like
    ``local_stream://`` playback."""
    if len(room.members) == 1:
        alone = room.members[0]
        if alone.uuid in room.no_music:
            return
        alone.moh_starts += 1
        alone.notify()


def _member_flags(arg: str) -> set[str]:
    """The ``+flags{a|b}`` of ``conference <room>@<profile>+flags{a|b}``."""
    _, found, rest = arg.partition("+flags{")
    return set(rest.partition("}")[0].split("|")) - {""} if found else set()


async def app_conference(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``conference <room>[@profile][+flags{...}]``: join the room (created on first join) until the
    channel hangs up, is transferred, or ``conference <room> kick`` takes it out.

    CUSTOM ``conference::maintenance`` events as mod_conference's: ``conference-create``,
    ``add-member``, ``del-member``, ``conference-destroy`` (``Action`` header)."""
    name = (arg.split() or [""])[0].partition("@")[0]
    if not name or chan.stopped:
        chan.set_var("current_application_response", "-ERR no conference name")
        return
    chan.mark_answered()
    room = pbx.conferences.get(name)
    if room is None:
        room = FSConfRoom(name)
        pbx.conferences[name] = room
        _conf_event(room, chan, "conference-create")
    room.members.append(chan)
    if "nomoh" in _member_flags(arg):
        room.no_music.add(chan.uuid)
    room.member_ids[chan.uuid] = room.next_id
    # mod_conference keeps both on the member's channel (and does not clear them after).
    chan.set_var("conference_name", name)
    chan.set_var("conference_member_id", str(room.next_id))
    room.next_id += 1
    chan.notify()
    _conf_event(room, chan, "add-member")
    _music_when_alone(room)
    try:
        await wait_change([chan], lambda: chan.stopped or chan.uuid in room.kicked, None)
    finally:
        room.members.remove(chan)
        _conf_event(room, chan, "del-member")
        _music_when_alone(room)
        room.member_ids.pop(chan.uuid, None)
        room.no_music.discard(chan.uuid)
        if not room.members:
            del pbx.conferences[name]
            _conf_event(room, chan, "conference-destroy")
        chan.notify()
    if chan.uuid in room.kicked:
        room.kicked.discard(chan.uuid)
        chan.set_var("current_application_response", "kicked")


async def app_socket(pbx: DemoFreeSwitch, chan: FSChannel, arg: str) -> None:
    """``socket <host:port> [async] [full]``: hand the call to an outbound-socket server
    and wait (parked) while it controls the call. If the connection fails the dialplan
    goes on; when the server closes the socket the call hangs up unless it sent ``resume``."""
    parts = arg.split()
    address = parts[0] if parts else ""
    session = await pbx.open_outbound_socket(chan, address, " ".join(parts[1:]))
    if session is None:
        return
    await park_loop(pbx, chan, stop=lambda: session.closed)
    if session.closed and not chan.stopped and not session.resume:
        chan.hangup("NORMAL_CLEARING")


APPLICATIONS: dict[str, Application] = {
    "amd": app_amd,
    "answer": app_answer,
    "bridge": app_bridge,
    "conference": app_conference,
    "endless_playback": app_endless_playback,
    "eavesdrop": app_eavesdrop,
    "export": app_export,
    "hangup": app_hangup,
    "log": app_log,
    "multiset": app_multiset,
    "park": app_park,
    "play_and_get_digits": app_play_and_get_digits,
    "playback": app_playback,
    "read": app_read,
    "record": app_record,
    "ring_ready": app_ring_ready,
    "say": app_say,
    "sched_transfer": app_sched_transfer,
    "set": app_set,
    "sleep": app_sleep,
    "socket": app_socket,
    "transfer": app_transfer,
    "unset": app_unset,
}


# --------------------------------------------------------------------------- dial strings


@dataclass(frozen=True, slots=True)
class DialTarget:
    """One endpoint of a dial string with its ``[per-leg]`` variables."""

    endpoint: str
    variables: Mapping[str, str] = field(default_factory=dict)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside ``{}``/``[]``/``()``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char in "{[(":
            depth += 1
        elif char in "}])":
            depth = max(depth - 1, 0)
        if char == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_vars(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _split_top(body, ","):
        name, eq, value = item.partition("=")
        if eq and name.strip():
            out[name.strip()] = value.strip().strip("'")
    return out


def _take_block(text: str, opener: str, closer: str) -> tuple[str, str] | None:
    if not text.startswith(opener):
        return None
    end = text.find(closer)
    if end < 0:
        return None
    return text[1:end], text[end + 1 :]


def parse_dialstring(text: str) -> tuple[dict[str, str], list[list[DialTarget]]]:
    """``{a=1}user/1001,[b=2]user/1002|user/1003`` -> global variables and groups:
    ``,`` rings a group's endpoints at once, ``|`` tries the next group if one fails."""
    text = text.strip()
    globals_: dict[str, str] = {}
    block = _take_block(text, "{", "}")
    if block is not None:
        globals_ = _parse_vars(block[0])
        text = block[1]
    groups: list[list[DialTarget]] = []
    for group_text in _split_top(text, "|"):
        group: list[DialTarget] = []
        for raw in _split_top(group_text, ","):
            endpoint = raw.strip()
            leg_vars: dict[str, str] = {}
            while True:
                found = _take_block(endpoint, "[", "]") or _take_block(endpoint, "{", "}")
                if found is None:
                    break
                leg_vars.update(_parse_vars(found[0]))
                endpoint = found[1].strip()
            if endpoint:
                group.append(DialTarget(endpoint, leg_vars))
        if group:
            groups.append(group)
    return globals_, groups


# --------------------------------------------------------------------------- ringing


@dataclass(eq=False)
class _Ringing:
    leg: FSChannel
    phone: AgentPhone | None
    """None for a loopback leg."""
    answer_at: float | None
    deadline: float


def _leg_timeout(variables: Mapping[str, str], default: float) -> float:
    for name in ("leg_timeout", "originate_timeout", "call_timeout"):
        value = variables.get(name)
        if value:
            try:
                return float(value)
            except ValueError:
                continue
    return default


async def originate_legs(
    pbx: DemoFreeSwitch,
    a_leg: FSChannel | None,
    dialstring: str,
    *,
    timeout: float,
    caller_id: tuple[str, str] | None = None,
) -> tuple[FSChannel | None, str]:
    """Ring the dial string's phones for ``a_leg`` (None: an ``originate``).

    Returns ``(answered leg, "SUCCESS")`` or ``(None, cause)``. Legs that lost are hung up
    (``LOSE_RACE``; ``ORIGINATOR_CANCEL`` when the caller left; ``NO_ANSWER`` at timeout;
    a rejecting phone gives ``USER_BUSY``). The answered leg is answered, not bridged.
    """
    global_vars, groups = parse_dialstring(dialstring)
    if not groups:
        return None, "DESTINATION_OUT_OF_ORDER"
    cause = "NO_ROUTE_DESTINATION"
    for group in groups:
        if a_leg is not None and a_leg.stopped:
            return None, "ORIGINATOR_CANCEL"
        leg, cause = await _ring_group(
            pbx, a_leg, group, global_vars=global_vars, timeout=timeout, caller_id=caller_id
        )
        if leg is not None:
            return leg, "SUCCESS"
    return None, cause


async def _ring_group(
    pbx: DemoFreeSwitch,
    a_leg: FSChannel | None,
    group: Sequence[DialTarget],
    *,
    global_vars: Mapping[str, str],
    timeout: float,
    caller_id: tuple[str, str] | None,
) -> tuple[FSChannel | None, str]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    causes: list[str] = []
    ringing: list[_Ringing] = []
    for target in group:
        variables = {**global_vars, **target.variables}
        if target.endpoint.lower().startswith("loopback/"):
            looped = pbx.loopback_leg(target.endpoint, a_leg, variables)
            if looped is None:
                causes.append("NO_ROUTE_DESTINATION")
                continue
            # Answered as soon as its -b leg runs the application (at once, here).
            deadline = started + _leg_timeout(variables, timeout)
            ringing.append(_Ringing(looped, None, started, deadline))
            continue
        found = pbx.find_phone(target.endpoint)
        if found is None:
            causes.append(pbx.unreachable(target.endpoint, a_leg, variables))
            continue
        device, phone = found
        leg = pbx.new_outbound_leg(
            device, phone, a_leg=a_leg, variables=variables, caller_id=caller_id
        )
        decision = phone.ring(leg)
        if decision.reject:
            leg.hangup("USER_BUSY")
            causes.append("USER_BUSY")
            continue
        leg.mark_ring_ready()
        answer_at = None if decision.answer_after is None else started + decision.answer_after
        deadline = started + _leg_timeout(variables, timeout)
        ringing.append(_Ringing(leg, phone, answer_at, deadline))
    if not ringing:
        return None, causes[-1] if causes else "NO_ROUTE_DESTINATION"
    if a_leg is not None and a_leg.answered:
        ringback = a_leg.var("transfer_ringback") or a_leg.var("ringback")
        if ringback.startswith("local_stream://"):
            a_leg.moh_starts += 1
            a_leg.notify()
    answered: _Ringing | None = None
    cancelled = False
    while ringing:
        watched = [r.leg for r in ringing] + ([a_leg] if a_leg is not None else [])
        events = [c.changed for c in watched]
        now = loop.time()
        if a_leg is not None and a_leg.stopped:
            cancelled = True
            break
        for ring in [r for r in ringing if r.leg.hungup]:
            # The phone declined while ringing.
            ringing.remove(ring)
            causes.append(ring.leg.hangup_cause or "USER_BUSY")
        ready = [r for r in ringing if r.answer_at is not None and r.answer_at <= now]
        if ready:
            answered = ready[0]
            ringing.remove(answered)
            break
        for ring in [r for r in ringing if r.deadline <= now]:
            ringing.remove(ring)
            ring.leg.hangup("NO_ANSWER")
            causes.append("NO_ANSWER")
        if not ringing:
            break
        due = [r.deadline for r in ringing] + [r.answer_at for r in ringing if r.answer_at]
        await wait_events(events, max(min(due) - now, 0.0))
    for ring in ringing:
        ring.leg.hangup("LOSE_RACE" if answered is not None else "ORIGINATOR_CANCEL")
    if answered is not None:
        leg = answered.leg
        leg.mark_answered()
        if answered.phone is not None:
            answered.phone.answered_call(leg)
        else:
            pbx.start_loopback(leg)
        if leg.var("group_confirm_key") == "exec" and leg.var("group_confirm_file"):
            # Answer confirmation by an application (an announcement to the answering
            # phone): the leg wins once it is done, unless it hung up meanwhile.
            app, _, data = leg.var("group_confirm_file").partition(" ")
            await execute(pbx, leg, app, data)
            if leg.stopped:
                return None, leg.hangup_cause or "NORMAL_CLEARING"
        return leg, "SUCCESS"
    if cancelled:
        return None, "ORIGINATOR_CANCEL"
    return None, causes[-1] if causes else "NO_ANSWER"


# --------------------------------------------------------------------------- bridges


def link(a: FSChannel, b: FSChannel, kind: Literal["bridge", "uuid_bridge"]) -> FSBridge:
    """Make ``a`` and ``b`` each other's Other-Leg (their events carry ``Other-Leg-*`` from
    now on); :func:`activate` then bridges them."""
    a.other, b.other = b, a
    a.other_type, b.other_type = "originatee", "originator"
    a.set_var("signal_bond", b.uuid)
    b.set_var("signal_bond", a.uuid)
    return FSBridge(a, b, kind)


def activate(bridge: FSBridge) -> None:
    """Media flows: CHANNEL_BRIDGE (fired by the a-leg, once per bridge)."""
    a, b = bridge.a, bridge.b
    stamp = now_us()
    for me, peer in ((a, b), (b, a)):
        me.bridge = bridge
        me.t_bridged = stamp
        me.set_var("bridge_channel", peer.name)
        me.set_var("bridge_uuid", peer.uuid)
        me.set_var("last_bridge_to", peer.uuid)
        me.bridge_history.append(peer.device)
    a.fire("CHANNEL_BRIDGE", pre=[("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
    a.notify()
    b.notify()


def unlink(bridge: FSBridge) -> None:
    """The bridge ends: CHANNEL_UNBRIDGE (fired by the a-leg); idempotent."""
    if bridge.ended:
        return
    bridge.ended = True
    a, b = bridge.a, bridge.b
    was_active = a.bridge is bridge
    for chan in (a, b):
        if chan.bridge is bridge:
            chan.bridge = None
    if was_active:
        a.fire(
            "CHANNEL_UNBRIDGE", pre=[("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)]
        )
    a.notify()
    b.notify()
