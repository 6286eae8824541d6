"""FreeSWITCH Event Socket (ESL) codec, sans-I/O: bytes in, messages out.

Both directions of the wire are covered, so the same module serves the ESL client in
``callcenter.pbx.freeswitch`` and the demo FreeSWITCH in ``callcenter.demopbx``:

* :class:`ESLParser` frames what FreeSWITCH sends (``auth/request``, ``command/reply``,
  ``api/response``, ``text/event-plain|json|xml``, ``log/data``, ``text/disconnect-notice``,
  and the URL-encoded reply to ``connect`` in outbound-socket mode) into :class:`ESLMessage`.
  The event inside an event message is decoded only when asked for (:attr:`ESLMessage.event`),
  into an :class:`ESLEvent`; a plain event's header values are URL-decoded only when read.
* :class:`ESLCommandParser` frames what a client sends (``auth``, ``api``, ``bgapi``,
  ``sendmsg`` ...) into :class:`ESLCommand`, the way mod_event_socket reads it.
* ``encode_*`` functions build both sides' messages byte for byte as FreeSWITCH 1.10 does.

Wire facts this module relies on (see ``shared/traces/freeswitch/README.md``): a header block
ends at the first ``\\n\\n``; a ``Content-Length: N`` header in it means the next N *bytes* are
the body. Plain events are framed twice: the outer body is ``Key: url-encoded value`` lines, a
blank line, and an optional inner body announced by a last ``Content-Length`` line.

Errors: anything that cannot be framed or decoded raises
:class:`~callcenter.errors.ESLProtocolError` and nothing else; encoders raise it too when asked
to put something on the wire that would break the framing (CR/LF in a command line, NUL ...).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sequence,
    ValuesView,
)
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Final, TypeVar, cast, overload
from urllib.parse import unquote

from callcenter.errors import ESLProtocolError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "DISCONNECT_GOODBYE",
    "EVENT_CONTENT_TYPES",
    "MYEVENTS",
    "ESLCommand",
    "ESLCommandParser",
    "ESLEvent",
    "ESLMessage",
    "ESLParser",
    "HeaderPairs",
    "HeadersLike",
    "decode_event",
    "encode_api_response",
    "encode_auth_request",
    "encode_command",
    "encode_connect_reply",
    "encode_disconnect_notice",
    "encode_event_json",
    "encode_event_plain",
    "encode_reply",
    "encode_sendevent",
    "encode_sendmsg",
    "fs_url_decode",
    "fs_url_encode",
]

HeaderPairs = tuple[tuple[str, str], ...]
"""Headers in wire order; a name may repeat."""

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]
"""What encoders accept as headers: a mapping, or ``(name, value)`` pairs in wire order."""

DEFAULT_MAX_HEADER_BYTES: Final = 1 << 20
"""Largest header block accepted (the outbound ``connect`` reply carries every channel
variable in its header block: ~6 KB in the traces)."""

DEFAULT_MAX_BODY_BYTES: Final = 64 << 20
"""Largest body accepted (``api show channels`` on a busy switch runs to megabytes)."""

DISCONNECT_GOODBYE: Final = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
"""The body FreeSWITCH 1.10 puts in ``text/disconnect-notice``."""

# FreeSWITCH serialises an empty header value as this marker (switch_event_serialize).
_UNDEF: Final = "_undef_"
# A literal "_undef_" value is sent with its first character escaped so it stays distinct
# from the empty-value marker; FreeSWITCH itself never has to (and cannot) make that choice.
_UNDEF_ESCAPED: Final = "%5Fundef_"
# FreeSWITCH's in-memory form of a multi-valued header, also what plain events carry.
_ARRAY_PREFIX: Final = "ARRAY::"
_ARRAY_SEP: Final = "|:"

MYEVENTS: Final = frozenset(
    {
        "CHANNEL_ANSWER",
        "CHANNEL_APPLICATION",
        "CHANNEL_BRIDGE",
        "CHANNEL_CREATE",
        "CHANNEL_DATA",
        "CHANNEL_DESTROY",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_ORIGINATE",
        "CHANNEL_UUID",
        "CHANNEL_OUTGOING",
        "CHANNEL_PARK",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_STATE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_UNPARK",
        "DETECTED_SPEECH",
        "DTMF",
        "NOTALK",
        "TALK",
    }
)
"""The events ``myevents`` subscribes a socket to, for its one channel (mod_event_socket)."""

EVENT_CONTENT_TYPES: Final = frozenset({"text/event-plain", "text/event-json", "text/event-xml"})
"""The Content-Types of messages that carry an event (:attr:`ESLMessage.is_event`)."""
_EVENT_TYPES: Final = EVENT_CONTENT_TYPES
# Deleting every other byte leaves a line's colons: a line without one shows as an empty line.
_NOT_COLON_OR_NEWLINE: Final = bytes(b for b in range(256) if b not in b":\n")

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------
# URL encoding as FreeSWITCH does it
# --------------------------------------------------------------------------------------

# SWITCH_URL_UNSAFE from switch_utils.h, plus every byte below 0x20 or above 0x7E
# (switch_url_encode tests ``*p < ' ' || *p > '~'`` on a signed char).
_URL_UNSAFE: Final = b'\r\n #%&+:;<=>?@[\\]^`{|}"'
_URL_ENCODE_TABLE: Final = tuple(
    f"%{b:02X}" if (b < 0x20 or b > 0x7E or b in _URL_UNSAFE) else chr(b) for b in range(256)
)
_URL_SAFE_RUN: Final = re.compile(
    "[" + re.escape("".join(c for b, c in enumerate(_URL_ENCODE_TABLE[:128]) if c == chr(b))) + "]*"
)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ESLProtocolError(f"text is not encodable as UTF-8: {exc}") from None


def fs_url_encode(value: str) -> str:
    """Percent-encode ``value`` exactly as FreeSWITCH encodes plain-event header values.

    Escaped: ``\\r\\n #%&+:;<=>?@[\\]^`{|}"``, control characters, DEL and every non-ASCII
    byte (as ``%XX`` of its UTF-8). ``%`` is always escaped (FreeSWITCH's encoder can leave an
    existing ``%XX`` alone), so :func:`fs_url_decode` gives ``value`` back. For every value in
    the captured traces the result is byte-identical to what FreeSWITCH sent.
    """
    if _URL_SAFE_RUN.fullmatch(value):
        return value
    table = _URL_ENCODE_TABLE
    return "".join([table[b] for b in _utf8(value)])


def fs_url_decode(value: str) -> str:
    """Decode a percent-encoded header value; invalid UTF-8 becomes U+FFFD."""
    return unquote(value) if "%" in value else value


def _encode_plain_value(value: str) -> str:
    if not value:
        return _UNDEF
    if value == _UNDEF:
        return _UNDEF_ESCAPED
    return fs_url_encode(value)


# --------------------------------------------------------------------------------------
# Messages from FreeSWITCH
# --------------------------------------------------------------------------------------


def _lookup(pairs: HeaderPairs, name: str) -> str | None:
    for key, value in pairs:
        if key == name:
            return value
    folded = name.lower()
    for key, value in pairs:
        if key.lower() == folded:
            return value
    return None


@dataclass(frozen=True, slots=True)
class ESLMessage:
    """One framed message from FreeSWITCH.

    ``headers`` is the outer header block in wire order, values as sent (only the outbound
    ``connect`` reply URL-encodes them; :attr:`reply_text` and :attr:`event` decode it).
    ``body`` is exactly ``Content-Length`` bytes; ``raw`` is the message as it came off the
    wire, which :meth:`encode` returns.
    """

    headers: HeaderPairs
    body: bytes
    raw: bytes = field(repr=False, compare=False)
    _event: ESLEvent | None = field(default=None, init=False, repr=False, compare=False)
    _content_type: str | None = field(default=None, init=False, repr=False, compare=False)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first outer header called ``name`` (exact case first, then any case)."""
        value = _lookup(self.headers, name)
        return default if value is None else value

    @property
    def content_type(self) -> str:
        """``auth/request``, ``command/reply``, ``api/response``, ``text/event-plain`` ...;
        ``""`` when the message has no Content-Type."""
        # Asked for several times per message (dispatch, is_event, event): kept.
        cached = self._content_type
        if cached is None:
            cached = _lookup(self.headers, "Content-Type") or ""
            object.__setattr__(self, "_content_type", cached)
        return cached

    @property
    def reply_text(self) -> str | None:
        """The ``Reply-Text`` of a ``command/reply`` (``+OK accepted``, ``-ERR invalid`` ...).

        The ``connect`` reply URL-encodes it as ``%2BOK%0A``; it is returned decoded and
        without the trailing newline, i.e. ``+OK``.
        """
        value = self.get("Reply-Text")
        if value is not None and self.is_connect_reply:
            value = fs_url_decode(value).rstrip("\n")
        return value

    @property
    def body_text(self) -> str:
        """The body as text (UTF-8; invalid bytes become U+FFFD)."""
        return self.body.decode("utf-8", "replace")

    @property
    def is_event(self) -> bool:
        """True for ``text/event-plain``, ``text/event-json`` and ``text/event-xml``."""
        return self.content_type in _EVENT_TYPES

    @property
    def is_connect_reply(self) -> bool:
        """True for the reply to ``connect`` (outbound socket): a ``command/reply`` whose header
        block is the URL-encoded CHANNEL_DATA event."""
        return _lookup(self.headers, "Event-Name") is not None and (
            self.content_type == "command/reply"
        )

    @property
    def event(self) -> ESLEvent | None:
        """The decoded event (decoded on first access, then kept), or None when the message
        carries none. The ``connect`` reply yields its CHANNEL_DATA event, whose headers end
        with ``Content-Type``, ``Reply-Text``, ``Socket-Mode`` and ``Control``.

        Raises ESLProtocolError when the event inside the message is garbled.
        """
        cached = self._event
        if cached is not None:
            return cached
        decoded = _decode_event(self, self.content_type)
        if decoded is not None:
            object.__setattr__(self, "_event", decoded)
        return decoded

    def encode(self) -> bytes:
        """The exact bytes this message was framed from."""
        return self.raw


_set = object.__setattr__


class ESLEvent:
    """A FreeSWITCH event: its headers (decoded) and optional body.

    ``pairs`` keeps every header in wire order, duplicates included; ``headers`` maps each name
    to its first value, as FreeSWITCH's own ``switch_event_get_header`` does. Values are
    URL-decoded (plain/XML) or JSON-decoded; FreeSWITCH's ``_undef_`` marker for an empty value
    decodes to ``""``; a multi-valued header is ``"ARRAY::a|:b"`` in every format
    (:meth:`get_array` splits it). ``body`` is the event's own body (a BACKGROUND_JOB result,
    a CUSTOM event's payload) without the inner ``Content-Length`` header that framed it.

    Events are immutable. A plain event (and the ``connect`` reply) keeps its header lines as
    received and decodes a value when it is first asked for: a consumer reads a handful of the
    130-200 headers FreeSWITCH sends, and decoding them all cost more than everything else the
    daemon does with an event. ``pairs``, iterating ``headers`` and comparing events decode
    them all (once).
    """

    __slots__ = ("_folded", "_found", "_headers", "_lower", "_pairs", "_text", "body")

    body: str | None
    # Header lines of a lazily decoded event ("Name: url-encoded value", ASCII, validated), or
    # None for an event built from decoded pairs.
    _text: str | None
    # Exact-name lookups: every header of an eager event; those looked up so far otherwise.
    _found: dict[str, str | None]
    _pairs: HeaderPairs | None
    _headers: Mapping[str, str] | None
    _folded: dict[str, str] | None
    _lower: str | None

    def __init__(
        self,
        pairs: Iterable[tuple[str, str]],
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
    ) -> None:
        items = tuple(pairs)
        found: dict[str, str | None]
        if headers is None:
            found = dict(items)
            if len(found) != len(items):
                # A repeated name: keep the first value, like switch_event_get_header.
                found = {}
                for key, value in items:
                    found.setdefault(key, value)
            headers = cast(dict[str, str], found)
        else:
            found = dict(headers)
        _set(self, "body", body)
        _set(self, "_text", None)
        _set(self, "_found", found)
        _set(self, "_pairs", items)
        _set(self, "_headers", headers)
        _set(self, "_folded", None)
        _set(self, "_lower", None)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], body: str | None = None) -> ESLEvent:
        """Build an event from ``(name, value)`` pairs in wire order."""
        return cls(pairs, None, body)

    @classmethod
    def _from_lines(cls, text: str, body: str | None) -> ESLEvent:
        """An event over plain-event header lines (ASCII, every line with a ``:``), decoded
        on demand."""
        event = cls.__new__(cls)
        _set(event, "body", body)
        _set(event, "_text", text)
        _set(event, "_found", {})
        _set(event, "_pairs", None)
        _set(event, "_headers", None)
        _set(event, "_folded", None)
        _set(event, "_lower", None)
        return event

    # -- the whole event ------------------------------------------------------------------

    @property
    def pairs(self) -> HeaderPairs:
        """Every header in wire order, duplicates included."""
        pairs = self._pairs
        if pairs is None:
            text = self._text
            pairs = tuple(_decode_plain_lines(text)) if text else ()
            _set(self, "_pairs", pairs)
        return pairs

    @property
    def headers(self) -> Mapping[str, str]:
        """Each header name to its first value (exact case)."""
        if self._text is None:
            headers = self._headers
            assert headers is not None
            return headers
        return _EventHeaders(self)

    def _all_headers(self) -> Mapping[str, str]:
        headers = self._headers
        if headers is None:
            pairs = self.pairs
            first = dict(pairs)
            if len(first) != len(pairs):
                first = {}
                for key, value in pairs:
                    first.setdefault(key, value)
            headers = first
            _set(self, "_headers", headers)
        return headers

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ESLEvent)
        return (self.pairs, self.body) == (other.pairs, other.body)

    def __hash__(self) -> int:
        return hash((self.pairs, self.body))

    def __repr__(self) -> str:
        return f"ESLEvent(pairs={self.pairs!r}, body={self.body!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Callable[..., ESLEvent], tuple[HeaderPairs, str | None]]:
        return ESLEvent.from_pairs, (self.pairs, self.body)

    # -- lookups --------------------------------------------------------------------------

    def _first(self, name: str) -> str | None:
        """The first value of header ``name``, exact case."""
        found = self._found
        value = found.get(name)
        if value is not None or name in found:
            return value
        headers = self._headers
        if headers is not None:
            # Built from pairs, or lazily decoded in full already.
            return headers.get(name)
        text = self._text
        assert text is not None
        if ":" in name or "\n" in name:
            # Never the name of a line as FreeSWITCH writes them: let the full decoding judge.
            value = self._all_headers().get(name)
        else:
            span = _line_value(text, name)
            value = None if span is None else _plain_value(text[span[0] : span[1]])
        found[name] = value
        return value

    def _any_case(self, name: str) -> str | None:
        """The first value of a header called ``name`` in any case."""
        folded_name = name.lower()
        text = self._text
        if text is not None and ":" not in folded_name and "\n" not in folded_name:
            lower = self._lower
            if lower is None:
                # ASCII only, so positions in the lower-cased copy are positions in the text.
                lower = text.lower()
                _set(self, "_lower", lower)
            span = _line_value(lower, folded_name)
            return None if span is None else _plain_value(text[span[0] : span[1]])
        folded = self._folded
        if folded is None:
            folded = {}
            for key, item in self.pairs:
                folded.setdefault(key.lower(), item)
            _set(self, "_folded", folded)
        return folded.get(folded_name)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (exact case first, then any case)."""
        value = self._first(name)
        if value is None:
            value = self._any_case(name)
        return default if value is None else value

    def get_array(self, name: str) -> list[str]:
        """All values of a header: ``[]`` when absent, the items of an ``ARRAY::`` value,
        else the single value in a list."""
        value = self.get(name)
        if value is None:
            return []
        if value.startswith(_ARRAY_PREFIX):
            return value[len(_ARRAY_PREFIX) :].split(_ARRAY_SEP)
        return [value]

    @overload
    def variable(self, name: str) -> str | None: ...
    @overload
    def variable(self, name: str, default: str) -> str: ...
    def variable(self, name: str, default: str | None = None) -> str | None:
        """A channel variable carried by the event (header ``variable_<name>``)."""
        value = self.get("variable_" + name)
        return default if value is None else value

    @property
    def name(self) -> str:
        """``Event-Name`` (``CHANNEL_ANSWER``, ``CUSTOM``, ...), ``""`` if absent."""
        # Exact-case lookups: FreeSWITCH spells these names one way, and a miss must stay cheap.
        return self._first("Event-Name") or ""

    @property
    def subclass(self) -> str | None:
        """``Event-Subclass`` of a CUSTOM event (``callcenter::info``)."""
        return self._first("Event-Subclass")

    @property
    def unique_id(self) -> str | None:
        """``Unique-ID``: the channel the event is about."""
        return self._first("Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        """``Job-UUID`` of a BACKGROUND_JOB event."""
        return self._first("Job-UUID")


class _EventHeaders(Mapping[str, str]):
    """``ESLEvent.headers`` of a lazily decoded event: a lookup decodes one value, iterating
    decodes them all."""

    __slots__ = ("_event",)

    def __init__(self, event: ESLEvent) -> None:
        self._event = event

    def __getitem__(self, name: str) -> str:
        value = self._event._first(name)
        if value is None:
            raise KeyError(name)
        return value

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...
    def get(self, name: str, /, default: str | _T | None = None) -> str | _T | None:
        value = self._event._first(name)
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._event._first(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._event._all_headers())

    def keys(self) -> KeysView[str]:
        return self._event._all_headers().keys()

    def items(self) -> ItemsView[str, str]:
        return self._event._all_headers().items()

    def values(self) -> ValuesView[str]:
        return self._event._all_headers().values()

    def __len__(self) -> int:
        return len(self._event._all_headers())

    def __repr__(self) -> str:
        return repr(self._event._all_headers())


def _line_value(text: str, name: str) -> tuple[int, int] | None:
    """Where the value of the first plain-event line called ``name`` (no ``:`` or newline in
    it) sits in ``text``, or None.

    The line is named as :func:`_split_plain_line` names it: up to the first ``": "``, or up
    to the first ``:`` in a line without ``": "``.
    """
    prefix = name + ":"
    size = len(prefix)
    if text.startswith(prefix):
        start = 0
    else:
        start = text.find("\n" + prefix) + 1
        if not start:
            return None
    while True:
        at = start + size
        end = text.find("\n", at)
        if end < 0:
            end = len(text)
        if text.startswith(" ", at):
            return at + 1, end
        if text.find(": ", at, end) < 0:
            return at, end
        # "name:x: y" is a line called "name:x".
        start = text.find("\n" + prefix, end) + 1
        if not start:
            return None


def _plain_value(raw: str) -> str:
    if raw == _UNDEF:
        return ""
    return unquote(raw) if "%" in raw else raw


def _content_length(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ESLProtocolError(f"garbled Content-Length {value[:40]!r}")
    return int(value)


def _split_plain_line(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(": ")
    if not sep:
        name, sep, value = line.partition(":")
        if not sep:
            raise ESLProtocolError(f"event header line without ':' {line[:60]!r}")
    return name, value


def _url_decode_values(raw_values: Sequence[str]) -> list[str]:
    """URL-decode many values at once (the hot path of plain-event decoding).

    Joining the values with NUL (which FreeSWITCH can never send inside a value: they are C
    strings) and turning every ``%`` into ``\\x`` lets one C-level ``unicode_escape`` decode
    do what would otherwise be one ``unquote`` call per value: ~3x faster on real events.
    Anything unusual (a backslash, ``%00``, a bad escape, non-ASCII) takes the plain path.
    """
    joined = "\x00".join(raw_values)
    if "%" not in joined:
        return list(raw_values)
    # Raw non-ASCII would be taken for latin-1 bytes below (FreeSWITCH never sends any).
    if "\\" not in joined and "%00" not in joined and joined.isascii():
        try:
            text = joined.replace("%", "\\x").encode("latin-1").decode("unicode_escape")
            values = text.encode("latin-1").decode("utf-8", "replace").split("\x00")
        except UnicodeError:
            pass
        else:
            if len(values) == len(raw_values):
                return values
    return [fs_url_decode(value) for value in raw_values]


def _decode_plain_lines(text: str) -> list[tuple[str, str]]:
    names: Sequence[str]
    raw_values: Sequence[str]
    names, seps, raw_values = zip(*[line.partition(": ") for line in text.split("\n")], strict=True)
    if "" in seps:
        names, raw_values = zip(
            *[_split_plain_line(line) for line in text.split("\n")], strict=True
        )
    values = _url_decode_values(raw_values)
    if _UNDEF in raw_values:
        values = [
            "" if raw == _UNDEF else value for raw, value in zip(raw_values, values, strict=True)
        ]
    return list(zip(names, values, strict=True))


def _split_plain(data: bytes) -> tuple[bytes, bytes]:
    split = data.find(b"\n\n")
    if split < 0:
        return data.rstrip(b"\n"), b""
    return data[:split], data[split + 2 :]


def _decode_plain(data: bytes) -> ESLEvent:
    # An event without a body ends at its first blank line, which is its last two bytes once
    # the check below has found no empty line before them; that spares a search of it all.
    head, rest = (data[:-2], b"") if data.endswith(b"\n\n") else _split_plain(data)
    colons = head.translate(None, _NOT_COLON_OR_NEWLINE)
    if (
        not colons
        or colons[:1] == b"\n"
        or colons[-1:] == b"\n"
        or b"\n\n" in colons
        # FreeSWITCH percent-encodes every non-ASCII byte: not worth a fast path.
        or not head.isascii()
    ):
        return _decode_plain_eagerly(*_split_plain(data))
    text = head.decode("ascii")
    body: str | None = None
    if rest:
        cut = text.rfind("\n")
        last_name, last_value = _split_plain_line(text[cut + 1 :])
        if last_name != "Content-Length" or _content_length(_plain_value(last_value)) != len(rest):
            raise ESLProtocolError(
                f"plain event body of {len(rest)} bytes without a matching inner Content-Length"
            )
        text = text[:cut] if cut >= 0 else ""
        body = rest.decode("utf-8", "replace")
    return ESLEvent._from_lines(text, body)


def _decode_plain_eagerly(head: bytes, rest: bytes) -> ESLEvent:
    if not head:
        raise ESLProtocolError("empty plain event")
    pairs = _decode_plain_lines(head.decode("utf-8", "replace"))
    body: str | None = None
    if rest:
        last_name, last_value = pairs[-1]
        if last_name != "Content-Length" or _content_length(last_value) != len(rest):
            raise ESLProtocolError(
                f"plain event body of {len(rest)} bytes without a matching inner Content-Length"
            )
        pairs.pop()
        body = rest.decode("utf-8", "replace")
    return ESLEvent.from_pairs(pairs, body)


def _json_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return _ARRAY_PREFIX + _ARRAY_SEP.join(value)
    return json.dumps(value, ensure_ascii=False)


def _decode_json(data: bytes) -> ESLEvent:
    try:
        # Objects become tuples of pairs so that repeated names survive (FreeSWITCH repeats
        # some, e.g. Hangup-Cause in CHANNEL_HANGUP_COMPLETE); arrays stay lists.
        parsed = json.loads(data.decode("utf-8", "replace"), object_pairs_hook=tuple)
    except (ValueError, RecursionError) as exc:
        raise ESLProtocolError(f"garbled JSON event: {exc}") from None
    if not isinstance(parsed, tuple):
        raise ESLProtocolError("JSON event is not an object")
    pairs = [(key, _json_value(value)) for key, value in parsed]
    body: str | None = None
    body_at = next((i for i, (key, _) in enumerate(pairs) if key.lower() == "_body"), None)
    if body_at is not None:
        body = pairs.pop(body_at)[1]
        # switch_event_serialize_json adds "Content-Length" right before "_body".
        if body_at > 0 and pairs[body_at - 1][0] == "Content-Length":
            pairs.pop(body_at - 1)
    return ESLEvent.from_pairs(pairs, body)


def _decode_xml(data: bytes) -> ESLEvent:
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, ValueError, LookupError, RecursionError) as exc:
        raise ESLProtocolError(f"garbled XML event: {exc}") from None
    headers = root.find("headers")
    if root.tag != "event" or headers is None:
        raise ESLProtocolError("XML event without <event><headers>")
    pairs = []
    for child in headers:
        raw = child.text or ""
        pairs.append((child.tag, "" if raw == _UNDEF else fs_url_decode(raw)))
    body: str | None = None
    body_node = root.find("body")
    if body_node is not None:
        text = body_node.text or ""
        length = root.findtext("Content-Length")
        if length is not None:
            # switch_xml_toxml indents the closing tag into the text; the length is exact.
            encoded = _utf8(text)
            text = encoded[: _content_length(length.strip())].decode("utf-8", "replace")
        body = text
    return ESLEvent.from_pairs(pairs, body)


def _decode_connect_reply(pairs: HeaderPairs) -> ESLEvent:
    # The outer header parser names a line up to its first ":", so "name: value" lines name
    # the same headers again, and the reply decodes as lazily as a plain event.
    text = "\n".join([f"{name}: {value}" for name, value in pairs])
    if text.isascii():
        return ESLEvent._from_lines(text, None)
    return ESLEvent.from_pairs(
        (name, "" if value == _UNDEF else fs_url_decode(value)) for name, value in pairs
    )


def decode_event(message: ESLMessage) -> ESLEvent | None:
    """Decode the event a message carries; None for messages that carry none.

    Prefer :attr:`ESLMessage.event`, which caches the result.
    Raises ESLProtocolError when the event is garbled.
    """
    return _decode_event(message, message.content_type)


def _decode_event(message: ESLMessage, content_type: str) -> ESLEvent | None:
    if content_type == "text/event-plain":
        return _decode_plain(message.body)
    if content_type == "text/event-json":
        return _decode_json(message.body)
    if content_type == "text/event-xml":
        return _decode_xml(message.body)
    if message.is_connect_reply:
        return _decode_connect_reply(message.headers)
    return None


def _parse_header_block(block: bytes) -> tuple[HeaderPairs, int | None]:
    pairs = []
    length: int | None = None
    for line in block.decode("utf-8", "replace").split("\n"):
        name, sep, value = line.partition(":")
        if not sep or not name:
            raise ESLProtocolError(f"garbled header line {line[:60]!r}")
        if value[:1] == " ":
            value = value[1:]
        pairs.append((name, value))
        # The length test spares a lower() per line of the connect reply's ~200 (no name of
        # another length lower-cases to this one).
        if length is None and len(name) == 14 and name.lower() == "content-length":
            length = _content_length(value)
    return tuple(pairs), length


class ESLParser:
    """Frames the byte stream FreeSWITCH sends into :class:`ESLMessage` objects.

    Feed it whatever each read returned; a message split anywhere (even inside a UTF-8
    character) comes out whole once its last byte has arrived. Stray newlines between messages
    are skipped. Garbled input raises ESLProtocolError; after that the parser keeps raising,
    and the connection should be closed.
    """

    __slots__ = ("_buf", "_error", "_max_body", "_max_header", "_pending", "_scan")

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._buf = bytearray()
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        # (headers, body offset, body length) of a message whose body is still arriving;
        # the message starts at offset 0 of the buffer.
        self._pending: tuple[HeaderPairs, int, int] | None = None
        # Where to resume looking for the end of a header block that has not arrived yet.
        self._scan = 0
        self._error: ESLProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[ESLMessage]:
        """Add received bytes; return the messages they complete, in wire order."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except ESLProtocolError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _feed(self, data: bytes) -> list[ESLMessage]:
        buf = self._buf
        buf += data
        # Slices of a view are copied once into bytes (a bytearray slice would be copied twice).
        with memoryview(buf) as view:
            out, pos = self._frame(buf, view)
        if pos:
            del buf[:pos]
        return out

    def _frame(self, buf: bytearray, view: memoryview) -> tuple[list[ESLMessage], int]:
        size = len(buf)
        out: list[ESLMessage] = []
        pos = 0
        pending = self._pending
        if pending is not None:
            pending_headers, pending_body_at, pending_length = pending
            end = pending_body_at + pending_length
            if end > size:
                return out, 0
            out.append(
                ESLMessage(pending_headers, bytes(view[pending_body_at:end]), bytes(view[:end]))
            )
            pos = end
            self._pending = None
        scan = self._scan
        self._scan = 0
        max_header = self._max_header
        while True:
            while pos < size and buf[pos] == 0x0A:
                pos += 1
            if pos >= size:
                break
            block_end = buf.find(b"\n\n", scan if scan > pos else pos)
            if block_end < 0:
                if size - pos > max_header:
                    raise ESLProtocolError(
                        f"header block longer than {max_header} bytes without a blank line"
                    )
                # Resume one byte back: the terminator may straddle this read and the next.
                self._scan = size - 1 - pos
                break
            if block_end - pos > max_header:
                raise ESLProtocolError(f"header block longer than {max_header} bytes")
            headers, length = _parse_header_block(bytes(view[pos:block_end]))
            body_at = block_end + 2
            if not length:
                out.append(ESLMessage(headers, b"", bytes(view[pos:body_at])))
                pos = body_at
                continue
            if length > self._max_body:
                raise ESLProtocolError(f"body of {length} bytes exceeds {self._max_body}")
            end = body_at + length
            if end > size:
                self._pending = (headers, body_at - pos, length)
                break
            out.append(ESLMessage(headers, bytes(view[body_at:end]), bytes(view[pos:end])))
            pos = end
        return out, pos


# --------------------------------------------------------------------------------------
# Commands from the client (what mod_event_socket reads)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ESLCommand:
    """One command a client sent: ``line`` (``api status``, ``sendmsg <uuid>`` ...), the
    headers after it in wire order, and the body announced by a ``content-length`` header."""

    line: str
    headers: HeaderPairs
    body: bytes
    raw: bytes = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        """The command word, lower-cased: ``auth``, ``api``, ``bgapi``, ``sendmsg`` ..."""
        return self.line.partition(" ")[0].lower()

    @property
    def args(self) -> str:
        """Everything after the command word (``status`` for ``api status``)."""
        return self.line.partition(" ")[2]

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name``, any case (mod_event_socket ignores case)."""
        value = _lookup(self.headers, name)
        return default if value is None else value

    @property
    def body_text(self) -> str:
        """The body as text (UTF-8; invalid bytes become U+FFFD)."""
        return self.body.decode("utf-8", "replace")

    def encode(self) -> bytes:
        """The exact bytes this command was framed from."""
        return self.raw


# mod_event_socket counts "\n" and ignores "\r", so "\n\r\n" also ends a command.
_COMMAND_END = re.compile(rb"\n\r*\n")
_LEADING_BLANK = re.compile(rb"[\r\n]*")


class ESLCommandParser:
    """Frames the byte stream a client sends into :class:`ESLCommand` objects, the way
    FreeSWITCH's mod_event_socket does: leading CR/LF skipped, CRLF tolerated, header values
    after the first ``:`` with leading spaces dropped, lines without ``:`` ignored, a
    ``content-length`` header (any case) announcing a body. Garbled input raises
    ESLProtocolError; after that the parser keeps raising.
    """

    __slots__ = ("_buf", "_error", "_max_body", "_max_header", "_pending", "_scan")

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._buf = bytearray()
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        # (line, headers, body offset, body length) of a command whose body is still arriving;
        # the command starts at offset 0 of the buffer.
        self._pending: tuple[str, HeaderPairs, int, int] | None = None
        # Where to resume looking for the end of a command that has not arrived yet.
        self._scan = 0
        self._error: ESLProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete command."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[ESLCommand]:
        """Add received bytes; return the commands they complete, in order."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except ESLProtocolError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _feed(self, data: bytes) -> list[ESLCommand]:
        buf = self._buf
        buf += data
        size = len(buf)
        out: list[ESLCommand] = []
        pos = 0
        scan = self._scan
        self._scan = 0
        while True:
            pending = self._pending
            if pending is not None:
                line, headers, body_at, length = pending
                end = body_at + length
                if end > size:
                    break
                out.append(ESLCommand(line, headers, bytes(buf[body_at:end]), bytes(buf[:end])))
                self._pending = None
                pos = end
                continue
            blank = _LEADING_BLANK.match(buf, pos)
            pos = blank.end() if blank else pos
            if pos >= size:
                break
            found = _COMMAND_END.search(buf, scan if scan > pos else pos)
            if found is None:
                if size - pos > self._max_header:
                    raise ESLProtocolError(
                        f"command longer than {self._max_header} bytes without a blank line"
                    )
                # An unfinished terminator ("\n\r*") starts at the last "\n" received.
                last_newline = buf.rfind(b"\n", pos)
                self._scan = (last_newline if last_newline >= 0 else size) - pos
                break
            block_end, body_at = found.span()
            if block_end - pos > self._max_header:
                raise ESLProtocolError(f"command longer than {self._max_header} bytes")
            line, headers, length = self._parse_block(bytes(buf[pos:block_end]))
            if length:
                if length > self._max_body:
                    raise ESLProtocolError(f"body of {length} bytes exceeds {self._max_body}")
                # Keep the command at offset 0 so the raw bytes can be sliced in one piece.
                del buf[:pos]
                size -= pos
                self._pending = (line, headers, body_at - pos, length)
                pos = 0
                continue
            out.append(ESLCommand(line, headers, b"", bytes(buf[pos:body_at])))
            pos = body_at
        if pos:
            del buf[:pos]
        return out

    @staticmethod
    def _parse_block(block: bytes) -> tuple[str, HeaderPairs, int]:
        lines = block.decode("utf-8", "replace").split("\n")
        line = lines[0].rstrip("\r")
        pairs = []
        length = 0
        seen_length = False
        for text in lines[1:]:
            name, sep, value = text.strip("\r").partition(":")
            if not sep or not name:
                continue
            value = value.lstrip(" ")
            pairs.append((name, value))
            if not seen_length and name.lower() == "content-length":
                seen_length = True
                length = _content_length(value)
        return line, tuple(pairs), length


# --------------------------------------------------------------------------------------
# Encoders: client side
# --------------------------------------------------------------------------------------


def _check_single_line(what: str, text: str) -> None:
    if "\n" in text or "\r" in text or "\x00" in text:
        raise ESLProtocolError(f"{what} must be one line without NUL: {text[:60]!r}")


def _header_items(headers: HeadersLike) -> list[tuple[str, str]]:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for name, value in items:
        if not name or ":" in name or name.strip() != name:
            raise ESLProtocolError(f"invalid header name {name!r}")
        _check_single_line(f"header {name!r}", name)
        _check_single_line(f"header {name!r}", value)
    return items


def _header_lines(items: Iterable[tuple[str, str]]) -> str:
    return "".join([f"{name}: {value}\n" for name, value in items])


def encode_command(line: str, headers: HeadersLike = ()) -> bytes:
    """Encode a client command: ``auth <pw>``, ``event plain CHANNEL_ANSWER ...``,
    ``api show channels as json``, ``bgapi originate ...``, ``filter Unique-ID <uuid>``,
    ``myevents``, ``linger 5``, ``nixevent ...``, ``noevents``, ``exit``, ``connect`` ...

    ``headers`` follow the command line: ``encode_command("bgapi status", {"Job-UUID": u})``
    makes FreeSWITCH use our ``u`` as the job's id (it does, see trace a). Header values are
    sent verbatim (mod_event_socket does not URL-decode them), so they must be one line.
    Raises ESLProtocolError for an empty line or CR/LF/NUL anywhere (command injection).
    """
    _check_single_line("command", line)
    if not line.strip():
        # FreeSWITCH skips blank lines before a command: it would never answer.
        raise ESLProtocolError("empty command")
    items = _header_items(headers)
    if any(name.lower() == "content-length" for name, _ in items):
        # FreeSWITCH would wait for a body that never comes.
        raise ESLProtocolError("a command with a body is sendmsg or sendevent")
    return _utf8(f"{line}\n{_header_lines(items)}\n")


def _with_body(head: str, items: list[tuple[str, str]], body: str | bytes | None) -> bytes:
    if body is None:
        return _utf8(f"{head}\n{_header_lines(items)}\n")
    if any(name.lower() == "content-length" for name, _ in items):
        raise ESLProtocolError("content-length is computed from the body; do not pass it")
    data = _utf8(body) if isinstance(body, str) else body
    items = [*items, ("content-length", str(len(data)))]
    return _utf8(f"{head}\n{_header_lines(items)}\n") + data


def encode_sendmsg(
    uuid: str | None, headers: HeadersLike, body: str | bytes | None = None
) -> bytes:
    """Encode ``sendmsg [<uuid>]`` (no uuid: the socket's own channel in outbound mode).

    ``headers`` e.g. ``{"call-command": "execute", "execute-app-name": "playback",
    "execute-app-arg": "/path.wav", "event-lock": "true", "Event-UUID": ours}``; FreeSWITCH
    copies ``Event-UUID`` into ``Application-UUID`` of the CHANNEL_EXECUTE[_COMPLETE] events.
    With ``body`` a ``content-length`` header is added (put ``content-type: text/plain`` in
    ``headers`` to make the body the app argument, as in trace b).
    """
    head = "sendmsg"
    if uuid is not None:
        _check_single_line("uuid", uuid)
        if not uuid or " " in uuid:
            raise ESLProtocolError(f"invalid uuid {uuid!r}")
        head = f"sendmsg {uuid}"
    return _with_body(head, _header_items(headers), body)


def encode_sendevent(
    event_name: str, headers: HeadersLike = (), body: str | bytes | None = None
) -> bytes:
    """Encode ``sendevent <EVENT_NAME>`` with the event's headers and optional body, e.g.
    ``encode_sendevent("CUSTOM", {"Event-Subclass": "callcenter::x"}, "payload")``."""
    _check_single_line("event name", event_name)
    if not event_name or " " in event_name:
        raise ESLProtocolError(f"invalid event name {event_name!r}")
    return _with_body(f"sendevent {event_name}", _header_items(headers), body)


# --------------------------------------------------------------------------------------
# Encoders: server side (the demo FreeSWITCH)
# --------------------------------------------------------------------------------------


def encode_auth_request() -> bytes:
    """What FreeSWITCH sends first on an inbound connection."""
    return b"Content-Type: auth/request\n\n"


def encode_reply(reply_text: str, extra_headers: HeadersLike = ()) -> bytes:
    """A ``command/reply``: ``encode_reply("+OK accepted")``, or for bgapi
    ``encode_reply(f"+OK Job-UUID: {u}", {"Job-UUID": u})``."""
    _check_single_line("reply text", reply_text)
    items = _header_items(extra_headers)
    lines = _header_lines([("Content-Type", "command/reply"), ("Reply-Text", reply_text), *items])
    return _utf8(f"{lines}\n")


def encode_api_response(body: str | bytes) -> bytes:
    """An ``api/response`` carrying ``body`` (FreeSWITCH puts Content-Type first here)."""
    data = _utf8(body) if isinstance(body, str) else body
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data


def encode_disconnect_notice(
    text: str = DISCONNECT_GOODBYE, extra_headers: HeadersLike = ()
) -> bytes:
    """A ``text/disconnect-notice``. FreeSWITCH sends the default goodbye after ``exit`` or a
    bad password; in outbound mode with linger it first sends ``text=""`` with
    ``Controlled-Session-UUID``, ``Content-Disposition: linger``, ``Channel-Name`` and
    ``Linger-Time`` headers, then ``Content-Disposition: disconnect`` with the goodbye."""
    data = _utf8(text)
    items = _header_items(extra_headers)
    lines = _header_lines(
        [("Content-Type", "text/disconnect-notice"), *items, ("Content-Length", str(len(data)))]
    )
    return _utf8(f"{lines}\n") + data


def _event_items(headers: HeadersLike) -> list[tuple[str, str]]:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for name, value in items:
        if not name or ":" in name or "\n" in name or "\r" in name or "\x00" in name:
            raise ESLProtocolError(f"invalid event header name {name!r}")
        if "\x00" in value:
            raise ESLProtocolError(f"NUL in event header {name!r}")
    return items


def _serialize_plain(items: list[tuple[str, str]], body: str | None) -> bytes:
    # switch_event_serialize: "Name: urlencoded\n" per header; a non-empty body adds
    # "Content-Length: N\n\n<body>", otherwise the block just ends with "\n".
    text = "".join([f"{name}: {_encode_plain_value(value)}\n" for name, value in items])
    if body:
        data = _utf8(body)
        return _utf8(f"{text}Content-Length: {len(data)}\n\n") + data
    return _utf8(f"{text}\n")


def encode_event_plain(headers: HeadersLike, body: str | None = None) -> bytes:
    """A ``text/event-plain`` message as FreeSWITCH frames it: the event's headers URL-encoded
    (:func:`fs_url_encode`), the inner Content-Length and body, and the outer framing.

    Decoding the result gives ``headers`` and ``body`` back (an empty body decodes to None,
    since FreeSWITCH does not send one). Header values must not contain NUL.
    """
    inner = _serialize_plain(_event_items(headers), body)
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def encode_event_json(headers: HeadersLike, body: str | None = None) -> bytes:
    """A ``text/event-json`` message as FreeSWITCH (cJSON, unformatted) frames it.

    Repeated names stay repeated; an ``ARRAY::a|:b`` value becomes a JSON array; a body adds
    ``"Content-Length"`` and ``"_body"`` at the end.
    """
    members = []
    for name, value in _event_items(headers):
        if name.lower() == "_body":
            # switch_event_create_json reads that member as the body, whatever its case.
            raise ESLProtocolError("'_body' is the JSON event body, not a header name")
        if value.startswith(_ARRAY_PREFIX):
            items = value[len(_ARRAY_PREFIX) :].split(_ARRAY_SEP)
            encoded = "[" + ",".join(_json_string(item) for item in items) + "]"
        else:
            encoded = _json_string(value)
        members.append(f"{_json_string(name)}:{encoded}")
    if body is not None:
        members.append(f'"Content-Length":"{len(_utf8(body))}"')
        members.append(f'"_body":{_json_string(body)}')
    inner = _utf8("{" + ",".join(members) + "}")
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(inner) + inner


def encode_connect_reply(
    channel_data: HeadersLike, *, socket_mode: str = "async", control: str = "full"
) -> bytes:
    """The reply to ``connect`` in outbound-socket mode: the CHANNEL_DATA event's headers,
    URL-encoded as in a plain event, then ``Content-Type: command/reply``,
    ``Reply-Text: %2BOK%0A``, ``Socket-Mode`` and ``Control``, all in one header block."""
    items = _event_items(channel_data)
    items += [
        ("Content-Type", "command/reply"),
        ("Reply-Text", "+OK\n"),
        ("Socket-Mode", socket_mode),
        ("Control", control),
    ]
    return _serialize_plain(items, None)
