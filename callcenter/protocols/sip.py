"""SIP messages (RFC 3261) as the demo PBX's phone side needs them: bytes in, messages out.

A datagram holds one message: a start line (``INVITE sip:800@127.0.0.1 SIP/2.0`` or
``SIP/2.0 200 OK``), header lines, an empty line and a body of ``Content-Length`` bytes.
:func:`parse` reads one (header names in their compact forms too: ``i`` Call-ID, ``f``
From, ``t`` To, ``v`` Via, ``m`` Contact, ``l`` Content-Length, ``c`` Content-Type),
:meth:`SIPMessage.encode` writes one, :func:`response` answers a request as a UAS does
(its Via, From, Call-ID and CSeq copied, a tag put on To). No sockets here: the demo PBX's
:mod:`callcenter.demopbx.sip` does the UDP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from callcenter.errors import SIPProtocolError

VERSION: Final = "SIP/2.0"
MAX_MESSAGE: Final = 65_535
"""The largest message read (a UDP datagram's payload)."""

_COMPACT: Final = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "v": "Via",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
}
_CANONICAL: Final = {
    name.lower(): name
    for name in (
        "Call-ID",
        "CSeq",
        "From",
        "To",
        "Via",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "User-Agent",
        "Allow",
        "Supported",
        "Subject",
    )
}
_METHOD: Final = re.compile(r"[A-Z]+")
_URI_USER: Final = re.compile(r"<?(?:sips?|tel):([^@;>]*)")
_TAG: Final = re.compile(r";\s*tag=([^;>\s]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SIPMessage:
    """One request (``method``, ``uri``) or response (``status``, ``reason``)."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    """(name, value) in order, names canonical (``Call-ID``, not ``i``)."""
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (any case, compact forms too)."""
        wanted = _canonical(name).lower()
        return next((v for n, v in self.headers if n.lower() == wanted), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        wanted = _canonical(name).lower()
        return [v for n, v in self.headers if n.lower() == wanted]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header; SIPProtocolError when it is not one."""
        number, _, method = self.get("CSeq").strip().partition(" ")
        if not number.isdigit() or not _METHOD.fullmatch(method.strip()):
            raise SIPProtocolError(f"bad CSeq {self.get('CSeq')!r}")
        return int(number), method.strip()

    def encode(self) -> bytes:
        """The message as sent (Content-Length set to the body's)."""
        start = (
            f"{self.method} {self.uri} {VERSION}"
            if self.is_request
            else f"{VERSION} {self.status} {self.reason}"
        )
        lines = [start]
        lines += [f"{n}: {v}" for n, v in self.headers if n.lower() != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _canonical(name: str) -> str:
    name = name.strip()
    expanded = _COMPACT.get(name.lower(), name) if len(name) == 1 else name
    return _CANONICAL.get(expanded.lower(), expanded)


def parse(data: bytes) -> SIPMessage:
    """The message in one datagram; SIPProtocolError when it is not a SIP message (a
    bad start line, a header line without a colon, a body shorter than Content-Length)."""
    if len(data) > MAX_MESSAGE:
        raise SIPProtocolError(f"message of {len(data)} bytes is too long")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SIPProtocolError("no empty line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SIPProtocolError("headers are not UTF-8") from None
    start, *lines = text.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and headers:
            # A folded line goes on the header before it.
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SIPProtocolError(f"bad header line {line!r}")
        headers.append((_canonical(name), value.strip()))
    length_text = next((v for n, v in headers if n == "Content-Length"), None)
    if length_text is not None:
        if not length_text.isdigit():
            raise SIPProtocolError(f"bad Content-Length {length_text!r}")
        length = int(length_text)
        if len(body) < length:
            raise SIPProtocolError(f"body of {len(body)} bytes, Content-Length {length}")
        body = body[:length]
    parts = start.split(" ", 2)
    if len(parts) == 3 and parts[0] == VERSION:
        if not (parts[1].isdigit() and len(parts[1]) == 3):
            raise SIPProtocolError(f"bad status line {start!r}")
        return SIPMessage(status=int(parts[1]), reason=parts[2], headers=tuple(headers), body=body)
    if len(parts) == 3 and parts[2] == VERSION and _METHOD.fullmatch(parts[0]) and parts[1]:
        return SIPMessage(method=parts[0], uri=parts[1], headers=tuple(headers), body=body)
    raise SIPProtocolError(f"bad start line {start!r}")


def uri_user(value: str) -> str:
    """The user part of the first SIP URI in ``value`` (``"Ann" <sip:5551234@host>`` ->
    ``5551234``); "" when there is none."""
    found = _URI_USER.search(value)
    return found.group(1) if found is not None else ""


def display_name(value: str) -> str:
    """The display name of a From/To value (``"Ann Lee" <sip:...>`` -> ``Ann Lee``)."""
    name = value.partition("<")[0].strip() if "<" in value else ""
    return name.strip('"').strip()


def tag_of(value: str) -> str:
    """The ``tag`` parameter of a From/To value; "" when it has none."""
    found = _TAG.search(value)
    return found.group(1) if found is not None else ""


def contact_uri(value: str) -> str:
    """The URI of a Contact value (``<sip:sipp@127.0.0.1:5061>`` -> ``sip:sipp@...``)."""
    inner = value.partition("<")[2].partition(">")[0] if "<" in value else value
    return inner.split(";", 1)[0].strip()


@dataclass(slots=True)
class Dialog:
    """The UAS side of one call: what requests we send within it need (RFC 3261 12.1.1)."""

    call_id: str
    local: str
    """Our From when we send (the request's To with our tag)."""
    remote: str
    """Their From (with their tag): our To."""
    remote_target: str
    """Where our requests go: their Contact."""
    cseq: int = 0
    route: Sequence[str] = field(default_factory=tuple)


def response(
    request: SIPMessage,
    status: int,
    reason: str,
    *,
    to_tag: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> SIPMessage:
    """The response to ``request`` (RFC 3261 8.2.6.2): its Via lines, From, Call-ID and
    CSeq copied, To with ``to_tag`` added when it has none, then ``headers``."""
    copied: list[tuple[str, str]] = [("Via", v) for v in request.get_all("Via")]
    to = request.get("To")
    if to_tag and not tag_of(to):
        to = f"{to};tag={to_tag}"
    copied += [
        ("From", request.get("From")),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.get("CSeq")),
        *headers,
    ]
    return SIPMessage(status=status, reason=reason, headers=tuple(copied), body=body)


def request(
    method: str, dialog: Dialog, *, via: str, headers: Sequence[tuple[str, str]] = ()
) -> SIPMessage:
    """A request within ``dialog`` (a BYE): its CSeq taken as the next of ours."""
    dialog.cseq += 1
    return SIPMessage(
        method=method,
        uri=dialog.remote_target,
        headers=(
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", dialog.local),
            ("To", dialog.remote),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{dialog.cseq} {method}"),
            *headers,
        ),
    )


def dtmf_of(message: SIPMessage) -> str:
    """The key of an INFO carrying ``application/dtmf-relay`` (``Signal=5``) or
    ``application/dtmf`` (``5``); "" when it carries none."""
    kind = message.get("Content-Type").split(";", 1)[0].strip().lower()
    text = message.body.decode("utf-8", "replace")
    if kind == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                return _key(value.strip())
        return ""
    if kind == "application/dtmf":
        return _key(text.strip())
    return ""


def _key(value: str) -> str:
    if value in ("10", "11"):
        return "*" if value == "10" else "#"
    return value if len(value) == 1 and value in "0123456789*#ABCD" else ""
