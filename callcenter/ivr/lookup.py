"""The ``lookup`` node's HTTP data dip: a small HTTP/1.1 client and JSON field extraction.

:func:`fetch_json` sends one GET or POST (JSON body) over ``asyncio.open_connection`` (TLS for
``https://``), reads the whole answer (``Content-Length``, chunked, or until close, at most
:data:`MAX_BODY` bytes) within one deadline, and returns the decoded JSON. Anything else - a
timeout, a refused connection, a non-2xx status, a body that is not JSON - raises
:class:`LookupFailed`, which sends the call down the node's ``fallback`` branch. No new
dependency: a CRM dip is one short request per call.

:func:`extract` reads a dotted path (``customer.name``, ``tickets.0.id``) out of the answer
and turns it into the text a call variable holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog

log = structlog.get_logger(__name__)

MAX_BODY = 1 << 20
"""Largest answer read (1 MiB); a CRM answer for one caller is far smaller."""
_MAX_HEADER_LINES = 100


class LookupFailed(Exception):
    """The data dip gave no usable answer; ``reason`` says why (for logs and simulate)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """One request of a lookup node, variables already filled in."""

    method: str
    url: str
    timeout: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, str] | None = None


Fetcher = Callable[[LookupRequest], Awaitable[Any]]
"""Runs a :class:`LookupRequest` and returns the decoded JSON answer (raises LookupFailed)."""


async def fetch_json(request: LookupRequest) -> Any:
    """The decoded JSON answer to ``request``; :class:`LookupFailed` for anything else."""
    try:
        async with asyncio.timeout(request.timeout):
            status, body = await _exchange(request)
    except TimeoutError:
        raise LookupFailed(f"no answer within {request.timeout:g}s") from None
    except (OSError, ssl.SSLError) as exc:
        raise LookupFailed(f"cannot connect: {exc.strerror or exc}") from None
    except (asyncio.IncompleteReadError, ValueError) as exc:
        raise LookupFailed(f"bad HTTP answer: {exc}") from None
    if not 200 <= status < 300:
        raise LookupFailed(f"HTTP status {status}")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LookupFailed("the answer is not JSON") from None


async def _exchange(request: LookupRequest) -> tuple[int, bytes]:
    parts = urlsplit(request.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported URL {request.url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    payload = b""
    headers = {
        "Host": parts.netloc,
        "User-Agent": "callcenter-ivr",
        "Accept": "application/json",
        "Connection": "close",
    }
    if request.body is not None:
        payload = json.dumps(dict(request.body)).encode()
        headers["Content-Type"] = "application/json"
    if request.method == "POST":
        headers["Content-Length"] = str(len(payload))
    headers.update(request.headers)
    head = f"{request.method} {target} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if "\n" not in f"{k}{v}")
    reader, writer = await asyncio.open_connection(
        parts.hostname, port, ssl=ssl.create_default_context() if tls else None
    )
    try:
        writer.write(head.encode("latin-1", "replace") + b"\r\n" + payload)
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = (await reader.readline()).decode("latin-1")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP status line: {status_line.strip()!r}")
    status = int(rest[:3])
    length: int | None = None
    chunked = False
    for _ in range(_MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        key = name.strip().lower()
        if key == "content-length":
            length = int(value.strip())
        elif key == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    else:
        raise ValueError("too many header lines")
    if chunked:
        return status, await _read_chunked(reader)
    if length is not None:
        if length > MAX_BODY:
            raise ValueError(f"answer of {length} bytes is too large")
        return status, await reader.readexactly(length)
    body = await reader.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ValueError("answer is too large")
    return status, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readline()).decode("latin-1").split(";", 1)[0].strip()
        size = int(size_line, 16)
        if size == 0:
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise ValueError("answer is too large")
        body += await reader.readexactly(size)
        await reader.readline()


def extract(answer: Any, path: str) -> str:
    """The value at dotted ``path`` in ``answer`` as call-variable text (``""`` if absent).

    Strings stay as they are, ``true``/``false`` become ``"1"``/``"0"`` (handy for
    ``equals: "1"``), numbers their JSON text, lists and objects compact JSON.
    """
    current = answer
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return ""
    if current is None:
        return ""
    if isinstance(current, bool):
        return "1" if current else "0"
    if isinstance(current, str):
        return current
    return json.dumps(current, separators=(",", ":"), ensure_ascii=False)
