"""Sans-I/O codec for the Asterisk Manager Interface (AMI).

Bytes in, messages out; no sockets, no asyncio. Both ends use it:

* the Asterisk driver (client side) feeds what Asterisk sends into ``AMIParser()`` and gets
  the banner line first, then one :class:`AMIMessage` per event/response;
* the demo PBX (server side) feeds what the client sends into ``AMIParser(expect_banner=False)``
  and gets one :class:`AMIMessage` per action.

Wire format (Asterisk 22, see ``shared/traces/asterisk``): the server first writes one banner
line (``Asterisk Call Manager/11.0.0\\r\\n``, no blank line after it). Every message is then a
block of ``Key: Value\\r\\n`` lines ended by an empty line. Keys repeat (``Variable``,
``Output``), their case is inconsistent (``CommandId`` vs ``CommandID``, ``Uniqueid`` vs
``UniqueID``), so lookups are case-insensitive and the original spelling and order are kept.
A message is an event, a response or an action depending on its **first** header:
``OriginateResponse`` is an event that also carries ``Response: Success``.

AsyncAGI rides on AMI: ``AsyncAGIStart``'s ``Env`` and ``AsyncAGIExec``'s ``Result`` are
URL-encoded; :func:`decode_agi_field` / :func:`encode_agi_field` convert them (then use
:mod:`callcenter.protocols.agi` to parse the decoded text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote

import structlog

from callcenter.errors import AMIProtocolError

log = structlog.get_logger(__name__)

MessageKind = Literal["event", "response", "action", "unknown"]

#: Largest message body accepted (bytes, terminator excluded). Asterisk's largest real
#: response in the traces is ListCommands at 8.2 KB; 1 MiB leaves room for huge
#: ``Command`` outputs while stopping a peer that never ends its message.
MAX_FRAME_BYTES = 1 << 20
#: Longest banner line accepted before the first newline.
MAX_BANNER_BYTES = 4096

_KINDS: dict[str, MessageKind] = {"event": "event", "response": "response", "action": "action"}

# Asterisk encodes AsyncAGI fields with ast_uri_encode(..., ast_uri_http): everything but
# ASCII letters, digits and the RFC 2396 "mark" characters -_.!~*'() becomes %XX (upper-case
# hex, one escape per UTF-8 byte). urllib.parse.quote always keeps letters, digits and _.-~.
_AGI_FIELD_SAFE = "!*'()"


@dataclass(frozen=True, slots=True)
class AMIBanner:
    """The one-line greeting the AMI server sends first (``Asterisk Call Manager/11.0.0``)."""

    text: str
    #: Exact bytes received (None for a banner built in code); not part of equality.
    raw: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def version(self) -> str | None:
        """The AMI protocol version after the last ``/`` (``"11.0.0"``), or None."""
        _, slash, version = self.text.rpartition("/")
        return version if slash else None

    def encode(self) -> bytes:
        """The banner line as sent on the wire (exact bytes for a decoded banner)."""
        if self.raw is not None:
            return self.raw
        if "\r" in self.text or "\n" in self.text:
            raise AMIProtocolError("AMI banner must be a single line")
        return _to_utf8(self.text + "\r\n")


class AMIMessage:
    """One AMI event, response or action.

    ``headers`` holds the ``(key, value)`` pairs in wire order, repeated keys kept, original
    case kept. Lookups (:meth:`get`, ``msg["ActionID"]``, ``"uniqueid" in msg``) ignore case
    and return the first occurrence. ``extra`` holds non-empty lines that had no colon (old
    ``Response: Follows`` command output, garbage): they are kept, never interpreted.
    ``raw`` is the exact bytes received, terminator included (None for a message built in
    code); it is not part of equality, so a decoded message equals the same message built in
    code. Messages are immutable. Build outgoing messages with :meth:`build` or
    :meth:`from_pairs`.

    A decoded message keeps its text and splits it into headers only when asked: the driver
    reads a handful of the twenty-odd headers of an event, and :meth:`get` finds those in the
    text itself (benchmarks/ami_ingest.py).
    """

    __slots__ = ("_extra", "_folded", "_headers", "_index", "_kind", "_name", "_raw", "_text")

    _headers: tuple[tuple[str, str], ...] | None
    _extra: tuple[str, ...] | None
    _raw: bytes | None
    _index: dict[str, str] | None
    #: The decoded body of a received message (None once split, or when built in code).
    _text: str | None
    #: ``"\n"`` + the text lower-cased, for :meth:`get` (ASCII texts only).
    _folded: str | None
    #: Kind and name, from the first header: asked of every message, so found once.
    _kind: MessageKind
    _name: str

    def __init__(
        self,
        headers: tuple[tuple[str, str], ...],
        extra: tuple[str, ...] = (),
        raw: bytes | None = None,
    ) -> None:
        self._headers = headers
        self._extra = extra
        self._raw = raw
        self._index = None
        self._text = None
        self._folded = None
        self._kind, self._name = _kind_and_name(headers[0] if headers else None)

    @classmethod
    def decoded(cls, text: str, raw: bytes | None = None) -> AMIMessage:
        """A message from its decoded body (the lines without the blank line that ends it),
        split lazily; ``raw`` as for the constructor."""
        msg = cls.__new__(cls)
        msg._headers = None
        msg._extra = None
        msg._raw = raw
        msg._index = None
        msg._text = text
        msg._folded = None
        end = text.find("\n")
        key, sep, value = (text if end < 0 else text[:end]).partition(": ")
        if sep:
            msg._kind = _KINDS.get(key.lower(), "unknown")
            msg._name = value[:-1] if value[-1:] == "\r" else value
        else:  # the first line is no "Key: Value": the first header is further down
            headers = msg.headers
            msg._kind, msg._name = _kind_and_name(headers[0] if headers else None)
        return msg

    @classmethod
    def build(cls, first: tuple[str, str], *rest: tuple[str, str]) -> AMIMessage:
        """A message from its headers: ``build(("Event", "Hangup"), ("Channel", "PJSIP/x"))``."""
        return cls((first, *rest))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> AMIMessage:
        """A message from ``(key, value)`` pairs or a mapping, in the given order."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return cls(tuple((str(k), str(v)) for k, v in items))

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """``(key, value)`` pairs in wire order."""
        headers = self._headers
        if headers is None:
            headers = self._split()[0]
        return headers

    @property
    def extra(self) -> tuple[str, ...]:
        """Non-empty lines without a colon, in wire order."""
        extra = self._extra
        if extra is None:
            extra = self._split()[1]
        return extra

    @property
    def raw(self) -> bytes | None:
        """The exact bytes received, terminator included; None for a message built in code."""
        return self._raw

    def _split(self) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
        headers, extra = _split_lines(self._text or "")
        self._headers, self._extra = headers, extra
        return headers, extra

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for key, value in self.headers:
                index.setdefault(key.lower(), value)
            self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first header called ``name`` (any case), else ``default``."""
        text = self._text
        if text is None:
            return self._lookup().get(name.lower(), default)
        folded = self._folded
        if folded is None:
            if not text.isascii():
                # Lower-casing may change a non-ASCII text's length or depend on context:
                # positions in the folded text would not be positions in the text.
                self._split()
                self._text = None
                return self._lookup().get(name.lower(), default)
            folded = self._folded = "\n" + text.lower()
        key = _FIND_KEYS.get(name)
        if key is None:
            if ":" in name or "\n" in name:
                # No header is found by such a name's position: "K:x:" is the header "K".
                return self._lookup().get(name.lower(), default)
            key = "\n" + name.lower() + ":"
            if len(_FIND_KEYS) < 1024:
                _FIND_KEYS[name] = key
        at = folded.find(key)
        while at >= 0:
            # The value starts right after the colon; in ``text`` (no leading "\n") that is
            # one character earlier than in ``folded``.
            start = at + len(key) - 1
            end = text.find("\n", start)
            value = text[start:] if end < 0 else text[start:end]
            if value[-1:] == "\r":
                value = value[:-1]
            if value[:1] == " ":
                return value[1:]
            if ": " not in value:
                return value.lstrip(" \t")  # "Key:value", as Asterisk reads it
            # "Key:x: y" is the header "Key:x": look further.
            at = folded.find(key, at + 1)
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of the headers called ``name`` (any case), in wire order."""
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @property
    def kind(self) -> MessageKind:
        """``event``/``response``/``action`` from the first header's name; else ``unknown``."""
        return self._kind

    @property
    def name(self) -> str:
        """The first header's value: the event name, ``Success``/``Error``, the action name."""
        return self._name

    @property
    def action_id(self) -> str | None:
        """The ``ActionID`` header (any case), or None."""
        return self.get("ActionID")

    def as_dict(self) -> dict[str, str]:
        """Lower-cased header names to their first value (a copy)."""
        return dict(self._lookup())

    def encode(self) -> bytes:
        """The message on the wire: the exact received bytes for a decoded message."""
        if self._raw is not None:
            return self._raw
        if self.extra:
            raise AMIProtocolError("cannot encode a message with non-header lines")
        return encode_message(self.headers)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not AMIMessage:
            return NotImplemented
        assert isinstance(other, AMIMessage)
        return self.headers == other.headers and self.extra == other.extra

    def __hash__(self) -> int:
        return hash((self.headers, self.extra))

    def __repr__(self) -> str:
        return f"AMIMessage(headers={self.headers!r}, extra={self.extra!r})"


_FIND_KEYS: dict[str, str] = {}


def _kind_and_name(first: tuple[str, str] | None) -> tuple[MessageKind, str]:
    if first is None:
        return "unknown", ""
    return _KINDS.get(first[0].lower(), "unknown"), first[1]


def _split_lines(text: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """A message body's ``(headers, extra)``: lines end in CRLF or a bare LF (Asterisk
    accepts both); ``Key: Value``, and ``Key:value`` as Asterisk reads it too."""
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    parts = [ln.partition(": ") for ln in lines]
    if all([p[1] for p in parts]):
        return tuple([(p[0], p[2]) for p in parts]), ()
    headers: list[tuple[str, str]] = []
    extra: list[str] = []
    for line, (key, sep, value) in zip(lines, parts, strict=True):
        if sep:
            headers.append((key, value))
        elif ":" in line:
            name, _, rest = line.partition(":")
            headers.append((name, rest.lstrip(" \t")))
        elif line:
            extra.append(line)
    if extra:
        log.debug("ami_lines_without_colon", count=len(extra), first=extra[0][:80])
    return tuple(headers), tuple(extra)


def _to_utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AMIProtocolError(f"text is not encodable as UTF-8: {exc.reason}") from exc


def encode_message(pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> bytes:
    """``Key: Value\\r\\n`` lines plus the empty line that ends an AMI message.

    Raises :class:`AMIProtocolError` when a key or value contains CR or LF (that would let a
    value inject headers or end the message early), or a key is empty or contains ``:``.
    """
    items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
    for key, _ in items:
        if not key or ":" in key:
            raise AMIProtocolError(f"invalid AMI header name {key!r}")
    text = "".join([f"{key}: {value}\r\n" for key, value in items])
    # One CR and one LF per line, nowhere else: cheaper than testing every value.
    if text.count("\n") != len(items) or text.count("\r") != len(items):
        bad = next((k, v) for k, v in items if "\r" in k or "\n" in k or "\r" in v or "\n" in v)
        raise AMIProtocolError(f"CR/LF inside AMI header {bad[0]!r}: {bad[1]!r}")
    return _to_utf8(text + "\r\n")


def encode_action(
    action: str,
    action_id: str | None = None,
    fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
) -> bytes:
    """An action: ``Action:`` first, then ``ActionID:`` (if given), then ``fields`` in order.

    Pass ``fields`` as pairs to repeat a key (``Variable`` of Originate).
    """
    pairs: list[tuple[str, str]] = [("Action", action)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs.extend(fields.items() if isinstance(fields, Mapping) else fields)
    return encode_message(pairs)


def is_list_start(msg: AMIMessage) -> bool:
    """True for the response that opens a list (``EventList: start``)."""
    value = msg.get("EventList")
    return value is not None and value.lower() == "start"


def is_list_complete(msg: AMIMessage) -> bool:
    """True for the event that closes a list (``EventList: Complete``)."""
    value = msg.get("EventList")
    return value is not None and value.lower() == "complete"


def decode_agi_field(value: str) -> str:
    """Decode an AsyncAGI ``Env``/``Result`` value (``200%20result%3D0%0A`` -> ``200 result=0\\n``).

    Percent escapes are UTF-8 bytes; invalid sequences become U+FFFD instead of failing.
    """
    return unquote(value, encoding="utf-8", errors="replace")


def encode_agi_field(text: str) -> str:
    """Encode text as Asterisk encodes AsyncAGI fields (inverse of :func:`decode_agi_field`)."""
    try:
        return quote(text, safe=_AGI_FIELD_SAFE, encoding="utf-8", errors="strict")
    except UnicodeEncodeError as exc:
        raise AMIProtocolError(f"text is not encodable as UTF-8: {exc.reason}") from exc


def _find_terminator(buf: bytes | bytearray, start: int) -> tuple[int, int]:
    """Position of the LF that ends a message's last line and the end of the blank line after
    it, or ``(-1, -1)``. Like Asterisk, accept CRLF or bare LF for each of the two lines."""
    crlf = buf.find(b"\n\r\n", start)
    # "\n\n" only needs looking for before the first "\n\r\n" (keeps each feed linear).
    lf = buf.find(b"\n\n", start) if crlf < 0 else buf.find(b"\n\n", start, crlf + 1)
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


class AMIParser:
    """Incremental AMI decoder: ``feed(bytes)`` returns the banner/messages completed so far.

    ``expect_banner=True`` (client side) reads one banner line before the first message;
    ``expect_banner=False`` (server side, parsing actions) starts with messages at once.
    Framing happens on bytes, so a UTF-8 character split across reads is kept; each whole
    message is then decoded as UTF-8 (undecodable bytes become U+FFFD and are logged, the
    exact bytes stay in ``AMIMessage.raw``). Blank lines between messages are skipped.

    A message body longer than ``max_frame`` bytes (or a banner longer than
    ``MAX_BANNER_BYTES``) raises :class:`AMIProtocolError`; after that the parser refuses more
    input, because the stream can no longer be trusted: close the connection.
    """

    def __init__(self, expect_banner: bool = True, *, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._want_banner = expect_banner
        self._max_frame = max_frame
        self._buf = bytearray()
        self._scan_from = 0
        self._failed: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[AMIBanner | AMIMessage]:
        """Add received bytes; return every banner/message they complete, in order."""
        if self._failed is not None:
            raise AMIProtocolError(f"AMI stream unusable after an earlier error: {self._failed}")
        if not data:
            return []
        if self._buf:
            self._buf += data
            if not self._has_complete(self._buf, self._scan_from):
                self._check_pending(self._buf)
                self._scan_from = max(0, len(self._buf) - 2)
                return []
            buf: bytes = bytes(self._buf)
            scan_from = self._scan_from
        else:
            buf = data
            scan_from = 0
        try:
            out, pos = self._parse(buf, scan_from)
            rest = buf[pos:]
            self._check_pending(rest)
        except AMIProtocolError as exc:
            self._failed = str(exc)
            self._buf = bytearray()
            raise
        self._buf = bytearray(rest)
        self._scan_from = max(0, len(rest) - 2)
        return out

    def eof(self) -> bytes:
        """Call when the peer closed: returns the bytes of an unfinished message (``b""`` if
        the stream ended cleanly) and resets the buffer."""
        rest = bytes(self._buf)
        self._buf = bytearray()
        self._scan_from = 0
        if rest.strip(b"\r\n"):
            log.warning("ami_partial_message_at_eof", size=len(rest))
        return rest

    def _has_complete(self, buf: bytearray, scan_from: int) -> bool:
        if self._want_banner:
            return buf.find(b"\n", scan_from) >= 0
        return _find_terminator(buf, scan_from)[0] >= 0

    def _check_pending(self, rest: bytes | bytearray) -> None:
        if self._want_banner:
            if len(rest) > MAX_BANNER_BYTES:
                raise AMIProtocolError(f"no AMI banner line within {MAX_BANNER_BYTES} bytes")
        # A terminator can still start in the last 2 bytes, so only they may be excluded.
        elif len(rest) - 2 > self._max_frame:
            raise AMIProtocolError(f"AMI message larger than {self._max_frame} bytes")

    def _parse(self, buf: bytes, scan_from: int) -> tuple[list[AMIBanner | AMIMessage], int]:
        out: list[AMIBanner | AMIMessage] = []
        pos = 0
        if self._want_banner:
            nl = buf.find(b"\n", scan_from)
            if nl < 0:
                return out, 0
            if nl > MAX_BANNER_BYTES:
                raise AMIProtocolError(f"AMI banner longer than {MAX_BANNER_BYTES} bytes")
            raw = buf[: nl + 1]
            line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            out.append(AMIBanner(self._decode(line, "banner"), raw))
            self._want_banner = False
            pos = scan_from = nl + 1
        max_frame = self._max_frame
        while True:
            lf, end = _find_terminator(buf, scan_from)
            if lf < 0:
                return out, pos
            if lf - pos > max_frame:
                raise AMIProtocolError(f"AMI message larger than {max_frame} bytes")
            body = buf[pos : lf - 1] if lf > pos and buf[lf - 1] == 0x0D else buf[pos:lf]
            if body.strip(b"\r\n"):
                out.append(self._message(body, buf[pos:end]))
            pos = scan_from = end

    def _decode(self, data: bytes, what: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            log.warning("ami_invalid_utf8", what=what, position=exc.start, size=len(data))
            return data.decode("utf-8", "replace")

    def _message(self, body: bytes, raw: bytes) -> AMIMessage:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = self._decode(body, "message")
        return AMIMessage.decoded(text, raw)
