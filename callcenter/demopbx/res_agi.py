"""The demo PBX's AGI: command semantics shared by FastAGI and AsyncAGI (like res_agi.c).

:class:`AGISession` runs one command line and returns the bytes Asterisk would answer,
emitting ``AGIExecStart``/``AGIExecEnd`` on AMI. Two transports drive it:

* :func:`run_fastagi` - the PBX connects to the daemon's FastAGI server, writes the
  environment block and then answers one command line at a time. ``HANGUP`` notices follow
  the rules of ``shared/traces/asterisk/fastagi/README.md`` (items 4-6): after the running
  command's result when the channel hangs up, unsolicited while idle, and once more when the
  server closes; after a hang-up the session stays open with 511 for media commands.
  A command line arriving while STREAM FILE/GET DATA/SAY/GET OPTION plays aborts it without
  a result line (WAIT FOR DIGIT answers a spurious ``200 result=1``), as in trace f11.
* :func:`run_async_agi` - AsyncAGI: ``AsyncAGIStart`` with the URL-encoded environment,
  commands from the AMI ``AGI`` action, ``AsyncAGIExec`` with the URL-encoded result and the
  client's ``CommandId``, ``AsyncAGIEnd`` when the channel hangs up or is redirected (queued
  commands are then dropped silently). Commands start at once (a real Asterisk polls its queue
  every ~100 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from callcenter.demopbx.apps import (
    MediaEnd,
    MediaResult,
    datetime_prompts,
    number_prompts,
    play,
    read_digits,
    record,
    wait_digit,
)
from callcenter.demopbx.channels import DTMF_DIGITS, Channel
from callcenter.errors import AGIProtocolError
from callcenter.protocols.agi import (
    HANGUP_NOTICE,
    AGICommandParser,
    AGIEnvironment,
    encode_result,
    encode_usage_error,
    split_command,
)
from callcenter.protocols.ami import encode_agi_field
from callcenter.tasks import cancel_and_wait

if TYPE_CHECKING:
    from callcenter.demopbx.asterisk import DemoAsterisk

log = structlog.get_logger(__name__)

#: Asterisk's version as AGI reports it (``agi_version``).
ASTERISK_VERSION = "22.10.1"
#: Default FastAGI port when the URL has none.
FASTAGI_PORT = 4573
#: How long Asterisk tries to connect to a FastAGI server (MAX_AGI_CONNECT).
CONNECT_TIMEOUT = 2.0

# Handler return codes (res_agi.c): anything else is an application's own result (EXEC).
RESULT_SUCCESS = 0
RESULT_SHOWUSAGE = 1
RESULT_FAILURE = 2


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: the bytes to send (None: no result line) and its return code."""

    text: bytes | None
    code: int = RESULT_SUCCESS


Handler = Callable[["AGISession", list[str]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class _Command:
    words: tuple[str, ...]
    handler: Handler
    dead_ok: bool
    usage: str


def _ok(result: int | str, *, value: str | None = None, **data: str) -> bytes:
    return encode_result(200, str(result), value=value, data=data or None)


_USAGE = Reply(None, RESULT_SHOWUSAGE)


def _ms(text: str) -> float | None:
    """Milliseconds as seconds; negative means forever (None)."""
    value = int(text)
    return None if value < 0 else value / 1000


class AGISession:
    """One ``AGI()`` execution on ``channel``: runs command lines like res_agi.c does."""

    def __init__(self, pbx: DemoAsterisk, channel: Channel, *, fast: bool) -> None:
        self.pbx = pbx
        self.channel = channel
        self.fast = fast
        #: The session noticed the hang-up: only commands allowed on dead channels run.
        self.dead = False
        #: A command failed while the channel was up: AGISTATUS=FAILURE at the end.
        self.failed = False
        #: ``ASYNCAGI BREAK`` asked to leave AsyncAGI.
        self.break_requested = False
        self._aborted = False

    @property
    def status(self) -> str:
        """AGISTATUS for the end of the session."""
        if self.channel.hangup_requested:
            return "HANGUP"
        return "FAILURE" if self.failed else "SUCCESS"

    def abort(self) -> None:
        """Stop the running media command (the FastAGI client sent more or closed)."""
        self._aborted = True
        self.channel.wake()

    def _exec_event(
        self, event: str, command_id: int, line: str, extra: list[tuple[str, str]]
    ) -> None:
        # A trailing CR is part of the command for Asterisk; AMI headers cannot carry it.
        command = line.replace("\r", "").replace("\n", "")
        self.channel.emit(
            event, "agi", [("CommandId", str(command_id)), ("Command", command), *extra]
        )

    async def execute(self, line: str) -> bytes | None:
        """Run one command line; the bytes to answer (None when aborted without a result)."""
        words = split_command(line)
        command = _find_command(words)
        command_id = random.randint(1, 2**31 - 1)
        if command is None:
            self._exec_event(
                "AGIExecEnd",
                command_id,
                line,
                [("ResultCode", "510"), ("Result", "Invalid or unknown command")],
            )
            return encode_result(510)
        self._exec_event("AGIExecStart", command_id, line, [])
        if self.dead and not command.dead_ok:
            end = [
                ("ResultCode", "511"),
                ("Result", "Command Not Permitted on a dead channel or intercept routine"),
            ]
            self._exec_event("AGIExecEnd", command_id, line, end)
            return encode_result(511)
        self._aborted = False
        try:
            reply = await command.handler(self, words)
        except ValueError:
            reply = _USAGE
        data: bytes | None = reply.text
        if reply.code == RESULT_SHOWUSAGE:
            code, text, data = 520, "Usage", encode_usage_error(command.usage)
        elif reply.code == RESULT_FAILURE:
            code, text = -1, "Failure"
            if self.dead or not self.channel.check_hangup():
                self.failed = True
        elif reply.code == RESULT_SUCCESS:
            code, text = 200, "Success"
        else:
            code, text = 200, "Unknown Result"
        self._exec_event(
            "AGIExecEnd", command_id, line, [("ResultCode", str(code)), ("Result", text)]
        )
        return data

    # ------------------------------------------------------------------ media helpers

    async def _play(self, prompt: str, escape: str, offset: int = 0) -> MediaResult:
        if self._aborted:
            return MediaResult(MediaEnd.ABORT, endpos=offset)
        return await play(self.pbx, self.channel, prompt, escape, offset=offset)

    async def _digit(self, limit: float | None) -> MediaResult:
        if self._aborted:
            return MediaResult(MediaEnd.ABORT)
        return await wait_digit(self.channel, limit)

    async def _say(self, prompts: list[str], escape: str) -> Reply:
        for prompt in prompts:
            result = await self._play(prompt, escape)
            if result.end is MediaEnd.ABORT:
                return Reply(None)
            if result.end is MediaEnd.HANGUP:
                return Reply(_ok(-1), RESULT_FAILURE)
            if result.end is MediaEnd.DIGIT and result.digit is not None:
                return Reply(_ok(ord(result.digit)))
        return Reply(_ok(0))

    # ------------------------------------------------------------------ commands

    async def cmd_answer(self, args: list[str]) -> Reply:
        self.pbx.answer(self.channel)
        return Reply(_ok(0))

    async def cmd_asyncagi_break(self, args: list[str]) -> Reply:
        if not self.fast:
            self.break_requested = True
        return Reply(_ok(0))

    async def cmd_channel_status(self, args: list[str]) -> Reply:
        if len(args) > 3:
            return _USAGE
        target = self.pbx.find_channel(args[2]) if len(args) == 3 else self.channel
        return Reply(_ok(-1 if target is None else int(target.state)))

    async def cmd_database(self, args: list[str]) -> Reply:
        verb = args[1].upper()
        db = self.pbx.astdb
        if verb == "GET" and len(args) == 4:
            value = db.get((args[2], args[3]))
            return Reply(_ok(0) if value is None else _ok(1, value=value))
        if verb == "PUT" and len(args) == 5:
            db[(args[2], args[3])] = args[4]
            return Reply(_ok(1))
        if verb == "DEL" and len(args) == 4:
            return Reply(_ok(1 if db.pop((args[2], args[3]), None) is not None else 0))
        if verb == "DELTREE" and len(args) in (3, 4):
            keys = [
                k for k in db if k[0] == args[2] and (len(args) == 3 or k[1].startswith(args[3]))
            ]
            for key in keys:
                del db[key]
            return Reply(_ok(1 if keys else 0))
        return _USAGE

    async def cmd_exec(self, args: list[str]) -> Reply:
        if len(args) < 2:
            return _USAGE
        app = self.pbx.find_application(args[1])
        if app is None:
            log.warning("demopbx_agi_unknown_application", channel=self.channel.name, app=args[1])
            return Reply(_ok(-2), -2)
        data = self.channel.substitute(args[2]) if len(args) > 2 else ""
        chan = self.channel
        saved = chan.application, chan.application_data
        chan.application, chan.application_data = args[1], data
        chan.applications.append(args[1])
        try:
            result = await app(self.pbx, chan, data)
        finally:
            chan.application, chan.application_data = saved
        return Reply(_ok(result), result)

    async def cmd_get_data(self, args: list[str]) -> Reply:
        if not 3 <= len(args) <= 5:
            return _USAGE
        timeout_ms = int(args[3]) if len(args) > 3 else 0
        max_digits = int(args[4]) if len(args) > 4 else 1024
        first: float | None
        following: float | None
        if timeout_ms > 0:
            first = following = timeout_ms / 1000
        elif timeout_ms < 0:
            first = following = None
        else:
            first, following = 6.0, 2.0
        digits = ""
        result = await self._play(args[2], DTMF_DIGITS)
        if result.end is MediaEnd.ABORT:
            return Reply(None)
        if result.end is MediaEnd.HANGUP:
            return Reply(_ok(-1))
        if result.end is MediaEnd.DIGIT and result.digit is not None:
            if result.digit == "#":
                return Reply(_ok("#"))
            digits = result.digit
        if len(digits) < max_digits:
            digits, end = await read_digits(
                self.channel,
                first_timeout=first,
                next_timeout=following,
                max_digits=max_digits,
                collected=digits,
            )
            if end is MediaEnd.ABORT:
                return Reply(None)
            if end is MediaEnd.HANGUP:
                return Reply(_ok(-1))
            if end is MediaEnd.DONE:
                return Reply(_ok(digits, value="timeout"))
        return Reply(_ok(digits))

    async def cmd_get_full_variable(self, args: list[str]) -> Reply:
        if not 4 <= len(args) <= 5:
            return _USAGE
        target = self.pbx.find_channel(args[4]) if len(args) == 5 else self.channel
        if target is None:
            return Reply(_ok(0))
        return Reply(_ok(1, value=target.substitute(args[3])))

    async def cmd_get_option(self, args: list[str]) -> Reply:
        if not 4 <= len(args) <= 5:
            return _USAGE
        timeout = _ms(args[4]) if len(args) == 5 else 5.0
        result = await self._play(args[2], args[3])
        if result.end is MediaEnd.ABORT:
            return Reply(None)
        if result.end is MediaEnd.MISSING:
            return Reply(_ok(-1, endpos="0"), RESULT_FAILURE)
        if result.end is MediaEnd.HANGUP:
            return Reply(_ok(-1, endpos=str(result.endpos)), RESULT_FAILURE)
        digit = result.digit
        if digit is None:
            waited = await self._digit(timeout)
            if waited.end is MediaEnd.ABORT:
                return Reply(None)
            if waited.end is MediaEnd.HANGUP:
                return Reply(_ok(-1, endpos=str(result.endpos)), RESULT_FAILURE)
            if waited.digit is not None and waited.digit in args[3]:
                digit = waited.digit
        return Reply(_ok(0 if digit is None else ord(digit), endpos=str(result.endpos)))

    async def cmd_get_variable(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return _USAGE
        value = self.channel.get_var(args[2])
        return Reply(_ok(0) if value is None else _ok(1, value=value))

    async def cmd_hangup(self, args: list[str]) -> Reply:
        if len(args) > 2:
            return _USAGE
        target = self.pbx.find_channel(args[1]) if len(args) == 2 else self.channel
        if target is None:
            return Reply(_ok(-1))
        target.request_hangup(None, event="SoftHangupRequest", event_cause=32)
        return Reply(_ok(1))

    async def cmd_noop(self, args: list[str]) -> Reply:
        return Reply(_ok(0))

    async def cmd_say_digits(self, args: list[str]) -> Reply:
        if len(args) != 4:
            return _USAGE
        names = {"*": "star", "#": "pound"}
        prompts = [f"digits/{names.get(c, c)}" for c in args[2] if c.isalnum() or c in names]
        return await self._say(prompts, args[3])

    async def cmd_say_alpha(self, args: list[str]) -> Reply:
        if len(args) != 4:
            return _USAGE
        prompts = [
            f"digits/{c}" if c.isdigit() else f"letters/{c.lower()}" for c in args[2] if c.isalnum()
        ]
        return await self._say(prompts, args[3])

    async def cmd_say_number(self, args: list[str]) -> Reply:
        if not 4 <= len(args) <= 5:
            return _USAGE
        return await self._say(number_prompts(int(args[2])), args[3])

    async def cmd_say_datetime(self, args: list[str]) -> Reply:
        if not 4 <= len(args) <= 6:
            return _USAGE
        fmt = args[4] if len(args) > 4 and args[4] else "ABdY 'digits/at' IMp"
        zone = args[5] if len(args) > 5 else "UTC"
        return await self._say(datetime_prompts(int(args[2]), fmt, zone), args[3])

    async def cmd_record_file(self, args: list[str]) -> Reply:
        # RECORD FILE <file> <format> <escape> <timeout ms> [offset] [BEEP] [s=<silence>]
        if len(args) < 6:
            return _USAGE
        limit = _ms(args[5])
        extra = args[6:9]
        silence: float | None = None
        for word in extra:
            if word.startswith("s="):
                silence = float(int(word[2:])) if word[2:].isdigit() and int(word[2:]) else None
        beep = (len(extra) > 0 and not extra[0].lstrip("-").isdigit() and "=" not in extra[0]) or (
            len(extra) > 1 and "=" not in extra[1]
        )
        if beep:
            result = await self._play("beep", args[4])
            if result.end is MediaEnd.ABORT:
                return Reply(None)
            if result.end in (MediaEnd.HANGUP, MediaEnd.DIGIT):
                code = -1 if result.digit is None else ord(result.digit)
                return Reply(_ok(code, value="randomerror", endpos="0"))
        target = Path(f"{args[2]}.{args[3]}")
        if not target.parent.is_dir():
            return Reply(_ok(-1, value="writefile"), RESULT_FAILURE)
        if self._aborted:
            return Reply(None)
        recording = await record(self.channel, target, escape=args[4], limit=limit, silence=silence)
        endpos = str(recording.endpos)
        if recording.end is MediaEnd.ABORT:
            return Reply(None)
        if recording.end is MediaEnd.HANGUP:
            return Reply(_ok(-1, value="hangup", endpos=endpos), RESULT_FAILURE)
        if recording.end is MediaEnd.DIGIT and recording.digit is not None:
            return Reply(_ok(ord(recording.digit), value="dtmf", endpos=endpos))
        return Reply(_ok(0, value="timeout", endpos=endpos))

    async def cmd_set_callerid(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return _USAGE
        text = args[2]
        name, lt, rest = text.partition("<")
        if lt:
            self.channel.caller_name = name.strip().strip('"')
            self.channel.caller_num = rest.partition(">")[0]
        else:
            self.channel.caller_num = text
        self.channel.emit(
            "NewCallerid", "call", [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]
        )
        return Reply(_ok(1))

    async def cmd_set_context(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return _USAGE
        self.channel.context = args[2]
        return Reply(_ok(0))

    async def cmd_set_extension(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return _USAGE
        self.channel.exten = args[2]
        return Reply(_ok(0))

    async def cmd_set_priority(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return _USAGE
        self.channel.priority = int(args[2])
        return Reply(_ok(0))

    async def cmd_set_music(self, args: list[str]) -> Reply:
        if len(args) < 3:
            return _USAGE
        if args[2].lower() == "on":
            music = args[3] if len(args) > 3 else "default"
            self.pbx.start_moh(self.channel, music, by_application=True)
        else:
            self.pbx.stop_moh(self.channel)
        return Reply(_ok(0))

    async def cmd_set_variable(self, args: list[str]) -> Reply:
        if len(args) != 4:
            return _USAGE
        self.channel.set_var(args[2], args[3])
        return Reply(_ok(1))

    async def cmd_stream_file(self, args: list[str]) -> Reply:
        if not 4 <= len(args) <= 5:
            return _USAGE
        offset = int(args[4]) if len(args) == 5 else 0
        result = await self._play(args[2], args[3], offset)
        if result.end is MediaEnd.ABORT:
            return Reply(None)
        if result.end is MediaEnd.MISSING:
            return Reply(_ok(-1, endpos=str(offset)), RESULT_FAILURE)
        if result.end is MediaEnd.HANGUP:
            return Reply(_ok(-1, endpos=str(result.endpos)), RESULT_FAILURE)
        code = ord(result.digit) if result.digit is not None else 0
        self.channel.set_var("PLAYBACKSTATUS", "FAILED" if code else "SUCCESS")
        return Reply(_ok(code, endpos=str(result.endpos)))

    async def cmd_verbose(self, args: list[str]) -> Reply:
        if len(args) < 2:
            return _USAGE
        log.debug("demopbx_agi_verbose", channel=self.channel.name, message=args[1])
        return Reply(_ok(1))

    async def cmd_wait_for_digit(self, args: list[str]) -> Reply:
        if len(args) != 4:
            return _USAGE
        result = await self._digit(_ms(args[3]))
        if result.end is MediaEnd.ABORT:
            # Asterisk's ast_waitfordigit_full reports the readable control socket as 1.
            return Reply(_ok(1))
        if result.end is MediaEnd.HANGUP:
            return Reply(_ok(-1), RESULT_FAILURE)
        return Reply(_ok(ord(result.digit) if result.digit is not None else 0))


_COMMANDS: tuple[_Command, ...] = (
    _Command(
        ("ANSWER",), AGISession.cmd_answer, False, "Answers channel if not already in answer state."
    ),
    _Command(
        ("ASYNCAGI", "BREAK"),
        AGISession.cmd_asyncagi_break,
        True,
        "Interrupts expected flow of Async AGI commands.",
    ),
    _Command(
        ("CHANNEL", "STATUS"),
        AGISession.cmd_channel_status,
        False,
        "Returns status of the connected channel.",
    ),
    _Command(("DATABASE", "DEL"), AGISession.cmd_database, True, "Removes database key/value."),
    _Command(
        ("DATABASE", "DELTREE"), AGISession.cmd_database, True, "Removes database keytree/value."
    ),
    _Command(("DATABASE", "GET"), AGISession.cmd_database, True, "Gets database value."),
    _Command(("DATABASE", "PUT"), AGISession.cmd_database, True, "Adds/updates database value."),
    _Command(("EXEC",), AGISession.cmd_exec, True, "Executes a given Application."),
    _Command(("GET", "DATA"), AGISession.cmd_get_data, False, "Prompts for DTMF on a channel."),
    _Command(
        ("GET", "FULL", "VARIABLE"),
        AGISession.cmd_get_full_variable,
        True,
        "Evaluates a channel expression.",
    ),
    _Command(
        ("GET", "OPTION"),
        AGISession.cmd_get_option,
        False,
        "Stream file, prompt for DTMF, with timeout.",
    ),
    _Command(("GET", "VARIABLE"), AGISession.cmd_get_variable, True, "Gets a channel variable."),
    _Command(("HANGUP",), AGISession.cmd_hangup, True, "Hangup a channel."),
    _Command(("NOOP",), AGISession.cmd_noop, True, "Does nothing."),
    _Command(("SAY", "ALPHA"), AGISession.cmd_say_alpha, False, "Says a given character string."),
    _Command(("SAY", "DIGITS"), AGISession.cmd_say_digits, False, "Says a given digit string."),
    _Command(("SAY", "NUMBER"), AGISession.cmd_say_number, False, "Says a given number."),
    _Command(
        ("SAY", "DATETIME"),
        AGISession.cmd_say_datetime,
        False,
        "Says a given time as specified by the format given.",
    ),
    _Command(("RECORD", "FILE"), AGISession.cmd_record_file, False, "Records to a given file."),
    _Command(
        ("SET", "CALLERID"),
        AGISession.cmd_set_callerid,
        False,
        "Sets callerid for the current channel.",
    ),
    _Command(("SET", "CONTEXT"), AGISession.cmd_set_context, False, "Sets channel context."),
    _Command(
        ("SET", "EXTENSION"), AGISession.cmd_set_extension, False, "Changes channel extension."
    ),
    _Command(
        ("SET", "MUSIC"), AGISession.cmd_set_music, False, "Enable/Disable Music on hold generator"
    ),
    _Command(
        ("SET", "PRIORITY"), AGISession.cmd_set_priority, False, "Set channel dialplan priority."
    ),
    _Command(
        ("SET", "VARIABLE"),
        AGISession.cmd_set_variable,
        True,
        "Sets a variable to the current channel.",
    ),
    _Command(("STREAM", "FILE"), AGISession.cmd_stream_file, False, "Sends audio file on channel."),
    _Command(
        ("VERBOSE",), AGISession.cmd_verbose, True, "Logs a message to the asterisk verbose log."
    ),
    _Command(
        ("WAIT", "FOR", "DIGIT"),
        AGISession.cmd_wait_for_digit,
        False,
        "Waits for a digit to be pressed.",
    ),
)


def _find_command(words: list[str]) -> _Command | None:
    upper = [w.upper() for w in words]
    best: _Command | None = None
    for command in _COMMANDS:
        n = len(command.words)
        if tuple(upper[:n]) == command.words and (best is None or n > len(best.words)):
            best = command
    return best


# ---------------------------------------------------------------------------- environment


def agi_environment(
    channel: Channel, *, request: str, script: str | None, fast: bool, thread_id: int
) -> dict[str, str]:
    """The ``agi_*`` variables Asterisk sends, in its order (without ``agi_arg_N``)."""
    env: dict[str, str] = {}
    if fast:
        env["agi_network"] = "yes"
        if script:
            env["agi_network_script"] = script
    env.update(
        {
            "agi_request": request,
            "agi_channel": channel.name,
            "agi_language": channel.language,
            "agi_type": channel.name.partition("/")[0],
            "agi_uniqueid": channel.uniqueid,
            "agi_version": ASTERISK_VERSION,
            "agi_callerid": channel.caller_num or "unknown",
            "agi_calleridname": channel.caller_name or "unknown",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": channel.dnid or "unknown",
            "agi_rdnis": "unknown",
            "agi_context": channel.context,
            "agi_extension": channel.exten,
            "agi_priority": str(channel.priority),
            "agi_enhanced": "0.0",
            "agi_accountcode": channel.accountcode,
            "agi_threadid": str(thread_id),
        }
    )
    return env


def parse_agi_url(url: str) -> tuple[str, int, str | None]:
    """``agi://host[:port][/script?query]`` -> host, port (4573 default), script or None."""
    parts = urlsplit(url)
    if parts.scheme != "agi" or not parts.hostname:
        raise ValueError(f"not a FastAGI URL: {url!r}")
    rest = url.split("://", 1)[1]
    _, slash, script = rest.partition("/")
    return parts.hostname, parts.port or FASTAGI_PORT, script if slash and script else None


# ---------------------------------------------------------------------------- FastAGI


class _FastAGIConnection:
    """One FastAGI TCP connection from the PBX to the daemon."""

    def __init__(
        self,
        session: AGISession,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.session = session
        self.channel = session.channel
        self.reader = reader
        self.writer = writer
        self._lines: deque[str | None] = deque()
        self._arrived = asyncio.Event()
        #: Reads so far (EOF counts): a running command is aborted only by later input.
        self._reads = 0

    def _send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self) -> None:
        parser = AGICommandParser()
        try:
            while data := await self.reader.read(65536):
                self._reads += 1
                self._lines.extend(parser.feed(data))
                self._arrived.set()
        except (ConnectionError, AGIProtocolError) as exc:
            log.info("demopbx_fastagi_read_error", channel=self.channel.name, error=str(exc))
        self._reads += 1
        self._lines.append(None)
        self._arrived.set()

    def _notice_hangup(self) -> None:
        if not self.session.dead and self.channel.check_hangup():
            self.session.dead = True
            self._send(HANGUP_NOTICE)

    async def _wait_input(self) -> None:
        """Wait for a command line, EOF, or (still alive) a hang-up."""
        self._arrived.clear()
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._arrived.wait())}
        if not self.session.dead:
            waiters.add(asyncio.ensure_future(self.channel.wait_interrupt()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def run(self, env: bytes) -> None:
        self._send(env)
        reader_task = asyncio.create_task(self._read(), name=f"fastagi-read-{self.channel.name}")
        try:
            while True:
                self._notice_hangup()
                if not self._lines:
                    await self._wait_input()
                    continue
                line = self._lines.popleft()
                if line is None:
                    break
                reply = await self._run_command(line)
                if reply is not None:
                    self._send(reply)
                    with contextlib.suppress(ConnectionError):
                        await self.writer.drain()
        finally:
            await cancel_and_wait(reader_task)
        # The server closed: Asterisk says HANGUP once more and closes its side.
        self._send(HANGUP_NOTICE)

    async def _run_command(self, line: str) -> bytes | None:
        command = asyncio.ensure_future(self.session.execute(line))
        reads_before = self._reads
        aborted = False
        try:
            while not command.done():
                self._arrived.clear()
                arrived = asyncio.ensure_future(self._arrived.wait())
                try:
                    await asyncio.wait({command, arrived}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    arrived.cancel()
                    await asyncio.gather(arrived, return_exceptions=True)
                if self._reads != reads_before and not aborted:
                    aborted = True
                    self.session.abort()
        except asyncio.CancelledError:
            command.cancel()
            await asyncio.gather(command, return_exceptions=True)
            raise
        return command.result()


async def run_fastagi(pbx: DemoAsterisk, channel: Channel, url: str, args: list[str]) -> str:
    """Run ``AGI(agi://...)``: returns AGISTATUS (``FAILURE`` when the connect fails)."""
    try:
        host, port, script = parse_agi_url(url)
    except ValueError:
        log.warning("demopbx_fastagi_bad_url", channel=channel.name, url=url)
        return "FAILURE"
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        log.warning("demopbx_fastagi_connect_failed", channel=channel.name, url=url, error=str(exc))
        return "FAILURE"
    session = AGISession(pbx, channel, fast=True)
    env = AGIEnvironment(
        agi_environment(
            channel, request=url, script=script, fast=True, thread_id=pbx.thread_id(channel)
        ),
        tuple(args),
    ).encode()
    log.info("demopbx_fastagi_connected", channel=channel.name, url=url)
    try:
        await _FastAGIConnection(session, reader, writer).run(env)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    log.info("demopbx_fastagi_closed", channel=channel.name, agistatus=session.status)
    return session.status


# ---------------------------------------------------------------------------- AsyncAGI


async def run_async_agi(pbx: DemoAsterisk, channel: Channel, args: list[str]) -> str:
    """Run ``AGI(agi:async)`` until hang-up, redirect or ``ASYNCAGI BREAK``; AGISTATUS."""
    session = AGISession(pbx, channel, fast=False)
    env = AGIEnvironment(
        agi_environment(
            channel, request="async", script=None, fast=False, thread_id=pbx.thread_id(channel)
        ),
        tuple(args),
    ).to_text()
    queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
    channel.async_agi_queue = queue
    channel.emit("AsyncAGIStart", "agi", [("Env", encode_agi_field(env))])
    try:
        while not channel.check_hangup() and not session.break_requested:
            getter = asyncio.ensure_future(queue.get())
            interrupted = asyncio.ensure_future(channel.wait_interrupt())
            try:
                await asyncio.wait({getter, interrupted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                interrupted.cancel()
                getter.cancel()
                await asyncio.gather(interrupted, getter, return_exceptions=True)
            if channel.check_hangup() or not getter.done() or getter.cancelled():
                break
            line, command_id = getter.result()
            reply = await session.execute(line)
            extra = [("CommandId", command_id)] if command_id else []
            result = encode_agi_field(reply.decode("utf-8")) if reply is not None else ""
            channel.emit("AsyncAGIExec", "agi", [("Result", result), *extra])
    finally:
        channel.async_agi_queue = None
    channel.emit("AsyncAGIEnd", "agi")
    return session.status


async def app_agi(pbx: DemoAsterisk, channel: Channel, data: str) -> int:
    """``AGI(url[,args...])``: FastAGI or AsyncAGI; sets AGISTATUS; -1 if hung up."""
    url, *args = [part.strip() for part in data.split(",")]
    if url == "agi:async":
        status = await run_async_agi(pbx, channel, args)
    elif url.startswith("agi://"):
        status = await run_fastagi(pbx, channel, url, args)
    else:
        log.warning("demopbx_agi_unsupported", channel=channel.name, url=url)
        status = "NOTFOUND"
    channel.set_var("AGISTATUS", status)
    return -1 if status == "HANGUP" else 0
