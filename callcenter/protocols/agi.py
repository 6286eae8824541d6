"""Sans-I/O codec for the Asterisk Gateway Interface (FastAGI and AsyncAGI payloads).

Bytes in, messages out; no sockets, no asyncio. Two sides use it:

* the FastAGI server in the daemon (Asterisk connects to us) feeds what Asterisk sends into
  :class:`FastAGIParser`: first one :class:`AGIEnvironment`, then one :class:`AGIResult` per
  command and :class:`AGIHangup` notices; it writes commands built with :func:`encode_command`;
* the demo PBX, which plays Asterisk, feeds what the daemon sends into
  :class:`AGICommandParser`, splits each line with :func:`split_command` exactly as Asterisk
  does, and answers with :func:`encode_result` / :func:`encode_usage_error` /
  :data:`HANGUP_NOTICE`.

AsyncAGI carries the same environment and result text URL-encoded inside AMI events; decode
those fields with :func:`callcenter.protocols.ami.decode_agi_field`, then use
:meth:`AGIEnvironment.parse` and :func:`parse_result`.

Wire facts (``shared/traces/asterisk/fastagi``): LF line endings; the environment block is
``agi_key: value`` lines up to an empty line, written one line per ``write()``; every result is
one line except the ``520-`` usage block, which runs to the line starting ``520 ``; ``HANGUP``
is a notice that can arrive at any time (zero, one or two per connection); bytes are UTF-8 and
passed through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl

import structlog

from callcenter.errors import AGIProtocolError

log = structlog.get_logger(__name__)

#: Asterisk reads a command with ``fgets`` into ``char buf[AGI_BUF_LEN]`` (8192): at most 8190
#: bytes plus the ``\n`` fit. A longer line is cut and its tail read as the *next* command, so
#: longer commands are refused (they could smuggle a second command).
MAX_COMMAND_BYTES = 8190
#: Asterisk splits a command into at most ``MAX_ARGS - 1`` (127) words and drops the rest.
MAX_ARGS = 128
#: Longest line accepted from Asterisk (results, environment lines). GET FULL VARIABLE values
#: are at most 4 KB in Asterisk; this only stops a peer that never sends a newline.
MAX_LINE_BYTES = 1 << 16
#: Largest environment block or multi-line (520) response accepted.
MAX_BLOCK_BYTES = 1 << 20

#: Response texts exactly as Asterisk writes them (res_agi.c).
TEXT_510 = "Invalid or unknown command"
TEXT_511 = "Command Not Permitted on a dead channel or intercept routine"
TEXT_520 = "Invalid command syntax.  Proper usage not available."
TEXT_520_FOLLOWS = "Invalid command syntax.  Proper usage follows:"
TEXT_520_END = "End of proper usage."
DEFAULT_TEXTS: Mapping[int, str] = MappingProxyType({510: TEXT_510, 511: TEXT_511, 520: TEXT_520})
#: The notice Asterisk writes when the channel hangs up or the AGI session ends.
HANGUP_NOTICE = b"HANGUP\n"

_VARIABLE_COMMANDS = frozenset({("GET", "VARIABLE"), ("GET", "FULL")})
# key=value pairs after the result (endpos=3404, text0="a b" ...), quote-aware.
# Atomic group + possessive repeat: no backtracking, so hostile values cannot make it slow.
_KV_TAIL = re.compile(r'(?:\s+[A-Za-z_][\w-]*=(?>"[^"]*"|\S*))*+\s*')
_KV_PAIR = re.compile(r'([A-Za-z_][\w-]*)=("[^"]*"|\S*)')
_NEEDS_QUOTES = re.compile(r'[ \t"\\]')
_VERB = re.compile(r'[^\s"\\\0]+(?: [^\s"\\\0]+)*')
_ARG_KEY = re.compile(r"agi_arg_(\d+)")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AGIProtocolError(f"text is not encodable as UTF-8: {exc.reason}") from exc


def _decode_line(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        log.warning("agi_invalid_utf8", what=what, position=exc.start, size=len(data))
        return data.decode("utf-8", "replace")


def _check_line(text: str, what: str) -> None:
    if "\n" in text or "\r" in text or "\0" in text:
        raise AGIProtocolError(f"CR/LF/NUL inside AGI {what}: {text!r}")


# --------------------------------------------------------------------------------------------
# Environment


def _args_of(variables: Mapping[str, str]) -> tuple[str, ...]:
    args: list[str] = []
    while (value := variables.get(f"agi_arg_{len(args) + 1}")) is not None:
        args.append(value)
    return tuple(args)


@dataclass(frozen=True, slots=True)
class AGIEnvironment:
    """The ``agi_*`` variables Asterisk sends when an AGI session starts.

    ``variables`` holds every line in wire order with its full key (``agi_channel``,
    ``agi_arg_1`` ...); ``args`` holds the values of ``agi_arg_1..n`` (the ``AGI()``
    arguments after the URL). When building one, give the arguments either as ``agi_arg_N``
    entries of ``variables`` or as ``args`` (they are then appended as ``agi_arg_N``).
    There is no channel-state field: send ``CHANNEL STATUS`` to learn whether it is answered.
    """

    variables: Mapping[str, str]
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        variables = dict(self.variables)
        found = _args_of(variables)
        args = tuple(self.args)
        if args and not found:
            for number, value in enumerate(args, 1):
                variables[f"agi_arg_{number}"] = value
        elif not args:
            args = found
        elif args != found:
            raise AGIProtocolError(f"args {args!r} disagree with the agi_arg_N variables")
        # frozen dataclass: normalise once at construction
        object.__setattr__(self, "variables", MappingProxyType(variables))
        object.__setattr__(self, "args", args)

    @classmethod
    def parse(cls, text: str) -> AGIEnvironment:
        """Parse an environment block (``agi_key: value`` lines; the closing empty line is
        optional). Raises :class:`AGIProtocolError` for a line that is not ``agi_...: ...``,
        a repeated key, or text after the empty line."""
        lines = text.split("\n")
        if "" in lines:
            end = lines.index("")
            if any(lines[end + 1 :]):
                raise AGIProtocolError("text after the end of the AGI environment block")
            lines = lines[:end]
        return cls._from_lines(lines)

    @classmethod
    def _from_lines(cls, lines: list[str]) -> AGIEnvironment:
        variables: dict[str, str] = {}
        for raw in lines:
            line = raw[:-1] if raw.endswith("\r") else raw
            key, sep, value = line.partition(": ")
            if not sep and line.endswith(":"):
                key = line[:-1]
            elif not sep:
                raise AGIProtocolError(f"not an AGI environment line: {line[:80]!r}")
            if not key.startswith("agi_"):
                raise AGIProtocolError(f"not an AGI environment line: {line[:80]!r}")
            if key in variables:
                raise AGIProtocolError(f"AGI environment repeats {key!r}")
            variables[key] = value
        return cls(variables)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A variable by its full key (``"agi_dnid"``)."""
        return self.variables.get(key, default)

    def _var(self, name: str) -> str:
        return self.variables.get(name, "")

    @property
    def channel(self) -> str:
        """``agi_channel`` (``PJSIP/sipp-00000000``)."""
        return self._var("agi_channel")

    @property
    def uniqueid(self) -> str:
        """``agi_uniqueid``: the channel's Uniqueid, as in AMI events."""
        return self._var("agi_uniqueid")

    @property
    def callerid(self) -> str:
        """``agi_callerid``: the caller's number."""
        return self._var("agi_callerid")

    @property
    def calleridname(self) -> str:
        """``agi_calleridname``: the caller's name (raw UTF-8 text)."""
        return self._var("agi_calleridname")

    @property
    def dnid(self) -> str:
        """``agi_dnid``: the dialled number."""
        return self._var("agi_dnid")

    @property
    def rdnis(self) -> str:
        """``agi_rdnis`` (``unknown`` when not redirected)."""
        return self._var("agi_rdnis")

    @property
    def extension(self) -> str:
        """``agi_extension``."""
        return self._var("agi_extension")

    @property
    def context(self) -> str:
        """``agi_context``."""
        return self._var("agi_context")

    @property
    def priority(self) -> str:
        """``agi_priority``."""
        return self._var("agi_priority")

    @property
    def language(self) -> str:
        """``agi_language``."""
        return self._var("agi_language")

    @property
    def accountcode(self) -> str:
        """``agi_accountcode`` (usually empty)."""
        return self._var("agi_accountcode")

    @property
    def channel_type(self) -> str:
        """``agi_type`` (``PJSIP``)."""
        return self._var("agi_type")

    @property
    def request(self) -> str:
        """``agi_request``: the full URL given to ``AGI()``, or ``async`` for AsyncAGI."""
        return self._var("agi_request")

    @property
    def is_async(self) -> bool:
        """True for an AsyncAGI session (``agi_request: async``)."""
        return self.request == "async"

    @property
    def network_script(self) -> str:
        """``agi_network_script``: the URL path without the leading ``/``, query included;
        ``""`` when the URL had no path (or for AsyncAGI)."""
        return self._var("agi_network_script")

    @property
    def script_path(self) -> str:
        """The script name: ``network_script`` before the ``?`` (``inbound``)."""
        return self.network_script.partition("?")[0]

    @property
    def script_params(self) -> dict[str, str]:
        """The query string of the script URL, URL-decoded (last value wins)."""
        query = self.network_script.partition("?")[2]
        return dict(parse_qsl(query, keep_blank_values=True))

    def to_text(self) -> str:
        """The environment block as text: ``key: value\\n`` lines and a final empty line."""
        lines = []
        for key, value in self.variables.items():
            if not key or ": " in key:
                raise AGIProtocolError(f"invalid AGI environment key {key!r}")
            _check_line(key, "environment key")
            _check_line(value, "environment value")
            lines.append(f"{key}: {value}\n")
        lines.append("\n")
        return "".join(lines)

    def encode(self) -> bytes:
        """The block as Asterisk writes it (byte-exact for an environment Asterisk sent)."""
        return _utf8(self.to_text())


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class AGIHangup:
    """The ``HANGUP`` notice: the channel hung up, or the AGI session is ending.

    Not a response to a command: skip it while waiting for a result.
    """

    def encode(self) -> bytes:
        """``b"HANGUP\\n"``."""
        return HANGUP_NOTICE


@dataclass(frozen=True, slots=True)
class AGIResult:
    """One response to an AGI command.

    ``code``: 200 (ran), 510 (unknown command), 511 (not allowed on a dead channel), 520
    (usage). ``result``: the text after ``result=`` up to the first space (may be ``""``, as
    in ``200 result= (timeout)``). ``value``: the text in parentheses (the variable's value
    for GET [FULL] VARIABLE, else a reason such as ``timeout``), None when absent. ``data``:
    ``key=value`` pairs such as ``endpos``. ``text``: the whole response as received, line
    endings included (all lines of a 520 block). ``result=-1`` does not mean the session is
    over (EXEC Dial returns it after a normal call).
    """

    code: int
    result: str = ""
    value: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def ok(self) -> bool:
        """True when the command ran (code 200); check :attr:`result` for its outcome."""
        return self.code == 200

    @property
    def int_result(self) -> int | None:
        """``result`` as an int (``-1``, ``0``, ``52`` ...), None when empty or not a number."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def message(self) -> str:
        """For a non-200 response, the text after the code on its first line."""
        if self.code == 200:
            return ""
        return self.text.split("\n", 1)[0].rstrip("\r")[4:]

    @property
    def usage(self) -> str:
        """For a multi-line 520 response, the usage lines between the first and last line."""
        lines = self.text.rstrip("\n").split("\n")
        return "\n".join(lines[1:-1]) if len(lines) > 2 else ""

    def for_command(self, command: str) -> AGIResult:
        """This response re-parsed knowing the command that produced it, which settles where
        a GET VARIABLE value ends even when it contains ``) key=value``."""
        return parse_result(self.text, command=command)

    def encode(self) -> bytes:
        """The response as received (the exact bytes for one the parser produced)."""
        return _utf8(self.text)


def _is_variable_command(command: str) -> bool:
    words = command.upper().split()
    return len(words) >= 2 and (words[0], words[1]) in _VARIABLE_COMMANDS


def _parse_data(tail: str) -> dict[str, str]:
    data: dict[str, str] = {}
    for key, value in _KV_PAIR.findall(tail):
        quoted = len(value) >= 2 and value[0] == value[-1] == '"'
        data[key] = value[1:-1] if quoted else value
    return data


def parse_result(text: str, *, command: str | None = None) -> AGIResult:
    """Parse one AGI response (a single line, or a whole ``520-`` ... ``520 `` block).

    Without ``command`` the value in parentheses ends at the first ``)`` when only
    ``key=value`` pairs follow it, else at the last ``)`` (so GET VARIABLE values with spaces
    and parentheses come out whole). With ``command`` (e.g. ``"GET VARIABLE X"``) the rule is
    exact: last ``)`` for GET [FULL] VARIABLE, first ``)`` otherwise.
    Raises :class:`AGIProtocolError` when the text is not an AGI response.
    """
    first = text.split("\n", 1)[0]
    if first.endswith("\r"):
        first = first[:-1]
    if len(first) < 3 or not first[:3].isdigit() or not first[:3].isascii():
        raise AGIProtocolError(f"not an AGI response: {first[:80]!r}")
    if len(first) > 3 and first[3] not in " -":
        raise AGIProtocolError(f"not an AGI response: {first[:80]!r}")
    code = int(first[:3])
    if code != 200 or first[3:4] == "-":
        return AGIResult(code, text=text)
    rest = first[4:]
    if not rest.startswith("result="):
        raise AGIProtocolError(f"AGI 200 response without result=: {first[:80]!r}")
    result, _, tail = rest[7:].partition(" ")
    tail = tail.lstrip(" ")
    value: str | None = None
    if tail.startswith("("):
        if command is not None:
            close = tail.rfind(")") if _is_variable_command(command) else tail.find(")")
        else:
            close = tail.find(")")
            if close >= 0 and not _KV_TAIL.fullmatch(tail, close + 1):
                close = tail.rfind(")")
        if close < 0:
            # unterminated "(": keep what is there rather than fail
            value, tail = tail[1:], ""
        else:
            value, tail = tail[1:close], tail[close + 1 :]
    data = _parse_data(tail) if "=" in tail else {}
    return AGIResult(200, result, value, data, text)


def encode_result(
    code: int,
    result: str = "",
    *,
    value: str | None = None,
    data: Mapping[str, str] | None = None,
    message: str | None = None,
) -> bytes:
    """One response line as Asterisk writes it.

    ``encode_result(200, "1", value="sipp")`` -> ``b"200 result=1 (sipp)\\n"``;
    ``encode_result(200, "0", data={"endpos": "3404"})`` -> ``b"200 result=0 endpos=3404\\n"``;
    ``encode_result(510)`` -> ``b"510 Invalid or unknown command\\n"`` (511 and single-line
    520 likewise; ``message`` overrides the text). For the multi-line usage response use
    :func:`encode_usage_error`. CR/LF anywhere raises :class:`AGIProtocolError`.
    """
    if code == 200:
        parts = [f"200 result={result}"]
        if value is not None:
            parts.append(f"({value})")
        if data:
            parts.extend(f"{key}={val}" for key, val in data.items())
        line = " ".join(parts)
    else:
        if result or value is not None or data:
            raise AGIProtocolError("only 200 responses carry result=, a value or data")
        if not 100 <= code <= 999:
            raise AGIProtocolError(f"AGI response code must have 3 digits, not {code}")
        text = message if message is not None else DEFAULT_TEXTS.get(code)
        if text is None:
            raise AGIProtocolError(f"no standard text for AGI code {code}; pass message=")
        line = f"{code} {text}"
    _check_line(line, "response")
    return _utf8(line + "\n")


def encode_usage_error(usage: str) -> bytes:
    """The multi-line 520 response Asterisk sends for a command with bad syntax."""
    lines = usage.rstrip("\n").split("\n") if usage else []
    for line in lines:
        if "\r" in line or "\0" in line or line.startswith("520 "):
            raise AGIProtocolError(f"usage line would break the 520 block: {line!r}")
    body = "".join(f"{line}\n" for line in lines)
    return _utf8(f"520-{TEXT_520_FOLLOWS}\n{body}520 {TEXT_520_END}\n")


# --------------------------------------------------------------------------------------------
# Commands


def format_command(verb: str, *args: str) -> str:
    """One command line (no newline): ``verb`` as given, then each argument, quoted when empty
    or containing space, tab, ``"`` or ``\\`` (with ``\\"`` and ``\\\\`` escapes), so that
    Asterisk's parser gives back exactly ``verb.split() + args``.

    ``format_command("STREAM FILE", "beep", "")`` -> ``STREAM FILE beep ""``.
    Raises :class:`AGIProtocolError` for CR, LF or NUL anywhere (a second command could be
    smuggled in), a malformed verb, more words than Asterisk reads (127), or a line longer
    than :data:`MAX_COMMAND_BYTES`.
    """
    if not _VERB.fullmatch(verb):
        raise AGIProtocolError(f"invalid AGI command verb {verb!r}")
    parts = [verb]
    for arg in args:
        if "\n" in arg or "\r" in arg or "\0" in arg:
            raise AGIProtocolError(f"CR/LF/NUL inside AGI argument {arg!r}")
        if not arg or _NEEDS_QUOTES.search(arg):
            parts.append('"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            parts.append(arg)
    if verb.count(" ") + 1 + len(args) > MAX_ARGS - 1:
        raise AGIProtocolError(f"AGI command has more than {MAX_ARGS - 1} words")
    line = " ".join(parts)
    # UTF-8 needs at most 4 bytes per character: only long lines need encoding to check.
    if len(line) * 4 > MAX_COMMAND_BYTES and len(_utf8(line)) > MAX_COMMAND_BYTES:
        raise AGIProtocolError(
            f"AGI command longer than {MAX_COMMAND_BYTES} bytes (Asterisk would cut it)"
        )
    return line


def encode_command(verb: str, *args: str) -> bytes:
    """:func:`format_command` plus ``\\n``, as UTF-8 bytes ready to write."""
    return _utf8(format_command(verb, *args) + "\n")


def split_command(line: str) -> list[str]:
    """Split a command line into words exactly as Asterisk's ``parse_args`` does.

    Words are separated by spaces/tabs; ``"..."`` groups (also inside a word: ``a"b c"`` is
    ``ab c``); a backslash makes the next character literal; ``""`` is an empty word; a
    trailing ``\\r`` stays part of the last word; a NUL ends the line; words after the 127th
    are dropped. The inverse of :func:`format_command`.
    """
    if "\0" in line:
        line = line.split("\0", 1)[0]
    if '"' not in line and "\\" not in line:
        # Nothing to unquote: plain whitespace splitting gives the same words, faster.
        words = [w for w in line.replace("\t", " ").split(" ") if w]
        return words[: MAX_ARGS - 1]
    return _parse_args(line)


def _parse_args(line: str) -> list[str]:
    """A transcription of res_agi.c ``parse_args`` (character by character)."""
    chunks: list[list[str]] = []
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                chunks.append([])
                whitespace = False
        elif ch in " \t" and not quoted and not escaped:
            whitespace = True
        elif ch == "\\" and not escaped:
            escaped = True
        else:
            if whitespace:
                chunks.append([])
                whitespace = False
            chunks[-1].append(ch)
            escaped = False
    return ["".join(chunk) for chunk in chunks[: MAX_ARGS - 1]]


# --------------------------------------------------------------------------------------------
# Stream parsers


def _index(lines: list[bytes], line: bytes) -> int:
    try:
        return lines.index(line)
    except ValueError:
        return -1


class _LineBuffer:
    """Splits a byte stream into LF-terminated lines without per-byte Python loops."""

    __slots__ = ("_buf", "_max_line", "_scan_from")

    def __init__(self, max_line: int) -> None:
        self._buf = bytearray()
        self._scan_from = 0
        self._max_line = max_line

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines (without their ``\\n``) that ``data`` finishes."""
        if self._buf:
            self._buf += data
            if self._buf.find(b"\n", self._scan_from) < 0:
                self._scan_from = len(self._buf)
                self._check(len(self._buf))
                return []
            buf = bytes(self._buf)
        else:
            buf = data
        last = buf.rfind(b"\n")
        if last < 0:
            lines: list[bytes] = []
        else:
            lines = buf[:last].split(b"\n")
        rest = buf[last + 1 :]
        limit = self._max_line
        if len(rest) > limit or (len(buf) - len(rest) > limit and max(map(len, lines)) > limit):
            raise AGIProtocolError(f"AGI line longer than {limit} bytes")
        self._buf = bytearray(rest)
        self._scan_from = len(rest)
        return lines

    def _check(self, size: int) -> None:
        if size > self._max_line:
            raise AGIProtocolError(f"AGI line longer than {self._max_line} bytes")

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf = bytearray()
        self._scan_from = 0
        return rest


class FastAGIParser:
    """Incremental decoder of what Asterisk sends on a FastAGI connection.

    ``feed(bytes)`` returns, in order: one :class:`AGIEnvironment` (once its closing empty line
    arrives; the block comes one line per write), then an :class:`AGIResult` per response line
    or per whole ``520-`` block, and :class:`AGIHangup` for each ``HANGUP`` notice.
    Lines are framed on bytes and decoded whole as UTF-8 (invalid bytes become U+FFFD and are
    logged). A line longer than ``max_line``, a block larger than ``max_block`` or a line that
    is no AGI response raises :class:`AGIProtocolError`; the parser then refuses more input
    (close the connection).
    """

    def __init__(self, *, max_line: int = MAX_LINE_BYTES, max_block: int = MAX_BLOCK_BYTES) -> None:
        self._lines = _LineBuffer(max_line)
        self._max_block = max_block
        self._env: list[str] | None = []
        self._env_size = 0
        self._block: list[str] = []
        self._block_end = ""
        self._block_size = 0
        self._failed: str | None = None

    @property
    def environment_done(self) -> bool:
        """True once the environment block has been returned."""
        return self._env is None

    def feed(self, data: bytes) -> list[AGIEnvironment | AGIResult | AGIHangup]:
        """Add received bytes; return every item they complete, in order."""
        if self._failed is not None:
            raise AGIProtocolError(f"AGI stream unusable after an earlier error: {self._failed}")
        out: list[AGIEnvironment | AGIResult | AGIHangup] = []
        if not data:
            return out
        try:
            lines = self._lines.feed(data)
            first = self._environment(lines, out) if self._env is not None and lines else 0
            for raw in lines[first:] if first else lines:
                item = self._line(_decode_line(raw, "agi_line"))
                if item is not None:
                    out.append(item)
        except AGIProtocolError as exc:
            self._failed = str(exc)
            raise
        return out

    def eof(self) -> bytes:
        """Call when Asterisk closed: returns unconsumed bytes (an unfinished line, block or
        environment), ``b""`` when the stream ended cleanly."""
        pending = self._lines.take_rest()
        if self._block:
            pending = _utf8("".join(f"{line}\n" for line in self._block)) + pending
            self._block = []
        elif self._env:
            pending = _utf8("".join(f"{line}\n" for line in self._env)) + pending
            self._env = []
        if pending:
            log.warning("agi_partial_data_at_eof", size=len(pending))
        return pending

    def _environment(
        self, lines: list[bytes], out: list[AGIEnvironment | AGIResult | AGIHangup]
    ) -> int:
        """Take the environment block's lines from ``lines`` (a whole block usually comes in
        one read: decoded at once, not line by line); return how many lines it used."""
        env = self._env
        assert env is not None
        ends = [at for at in (_index(lines, b""), _index(lines, b"\r")) if at >= 0]
        end = min(ends) if ends else len(lines)
        if end:
            block = lines[:end]
            self._env_size += sum(map(len, block)) + end
            if self._env_size > self._max_block:
                raise AGIProtocolError(f"AGI environment larger than {self._max_block} bytes")
            env.extend(_decode_line(b"\n".join(block), "agi_environment").split("\n"))
        if not ends:
            return end
        self._env = None
        out.append(AGIEnvironment._from_lines(env))
        return end + 1

    def _line(self, line: str) -> AGIResult | AGIHangup | None:
        if self._block:
            self._block.append(line)
            self._block_size += len(line) + 1
            if line.startswith(self._block_end):
                text = "".join(f"{ln}\n" for ln in self._block)
                self._block = []
                return parse_result(text)
            if self._block_size > self._max_block:
                raise AGIProtocolError(f"AGI response larger than {self._max_block} bytes")
            return None
        if line in ("HANGUP", "HANGUP\r"):
            return AGIHangup()
        if len(line) > 3 and line[3] == "-" and line[:3].isdigit() and line[:3].isascii():
            self._block = [line]
            self._block_end = line[:3] + " "
            self._block_size = len(line) + 1
            return None
        return parse_result(line + "\n")


class AGICommandParser:
    """Incremental decoder of what an AGI script sends to Asterisk (the demo PBX's side).

    ``feed(bytes)`` returns the complete command lines, without their ``\\n`` but with a
    trailing ``\\r`` kept (Asterisk makes it part of the last word); an empty line is returned
    as ``""`` (Asterisk answers it with 510). Split a line with :func:`split_command`. A line
    longer than ``max_line`` (default: what Asterisk reads whole) raises
    :class:`AGIProtocolError`, and the parser then refuses more input.
    """

    def __init__(self, *, max_line: int = MAX_COMMAND_BYTES) -> None:
        self._lines = _LineBuffer(max_line)
        self._failed: str | None = None

    def feed(self, data: bytes) -> list[str]:
        """Add received bytes; return the command lines they complete."""
        if self._failed is not None:
            raise AGIProtocolError(f"AGI stream unusable after an earlier error: {self._failed}")
        if not data:
            return []
        try:
            raw_lines = self._lines.feed(data)
        except AGIProtocolError as exc:
            self._failed = str(exc)
            raise
        return [_decode_line(raw, "agi_command") for raw in raw_lines]

    def eof(self) -> bytes:
        """Call when the script closed: returns an unfinished last line (``b""`` if none)."""
        return self._lines.take_rest()
