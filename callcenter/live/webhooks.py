"""Webhooks: engine events POSTed to HTTP endpoints as they happen (``webhooks:``).

A CRM opens the customer's record when ``AgentConnected`` names the agent and the caller's
number; a ticketing tool files ``CallDisposed``. Each configured endpoint is one
:class:`Webhook`: its :meth:`~Webhook.on_event` (an event-bus listener) encodes the events it
wants once, as the JSON object MQTT's ``events`` topics carry, and puts them in a bounded
queue; one task POSTs them in order, one HTTP/1.1 request per event, on one kept-alive
connection (opened again when the endpoint closes it, or answers with ``Connection:
close``, or a body whose end only its close tells)::

    POST /callcenter/events HTTP/1.1
    Content-Type: application/json
    X-Callcenter-Event: AgentConnected
    X-Callcenter-Delivery: 3f2a...-17          (the same on every try of one event)
    X-Callcenter-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>

    {"event": "AgentConnected", "at": "2026-12-05T18:00:01.123+00:00", "call_id": ...}

With ``batch`` above 1, the events waiting go together, up to that many, as one JSON array
in order (``X-Callcenter-Event: batch``, ``X-Callcenter-Delivery: <first event's>+<how
many follow>``), and are tried, delivered or dropped together.

A 2xx answer delivers it; a 5xx, 408, 429, a refused connection or no answer within
``timeout`` is tried again (1 s, then doubling up to 30 s, ``max_tries`` in all) while the
events behind it wait (a kept connection the endpoint had closed meanwhile is no try: the
event goes again at once on a new one); any other status drops it at once (the endpoint
said no). Best effort, as every live output: the engine never waits for an endpoint, a full
queue drops what does not fit, and both are counted (:meth:`Webhook.health`, ``/status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import ssl
import time
import uuid
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import structlog

from callcenter.config.models import WebhookConfig
from callcenter.events import EngineEvent, event_types
from callcenter.live.mqtt import event_json

log = structlog.get_logger(__name__)

RETRY_FIRST: Final = 1.0
RETRY_MAX: Final = 30.0
"""Seconds between two tries of one event: RETRY_FIRST, doubling up to RETRY_MAX."""
DRAIN_AT_STOP: Final = 2.0
"""Seconds a stopping daemon gives the endpoints to take what is still queued."""
BATCH: Final = "batch"
"""``X-Callcenter-Event`` of a POST whose body is an array of events (``batch`` > 1)."""
_RETRIED: Final = frozenset({408, 429})
_MAX_STATUS_LINE: Final = 8192
_MAX_HEAD: Final = 64 * 1024
"""Bytes of an answer's status line and headers read at most."""
_MAX_BODY: Final = 1024 * 1024
"""Bytes of an answer's body read (and dropped) to keep its connection; beyond: closed."""


class _Stale(Exception):
    """A kept connection was closed by the endpoint before this request was answered."""


class WebhookError(Exception):
    """One POST failed; ``final`` when trying again cannot help."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class Webhook:
    """Delivers the engine events one endpoint wants (see the module doc)."""

    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        *,
        ca_file: Path | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._url = urlsplit(config.url)
        self._wanted = frozenset(config.events)
        self._secret = config.secret.get_secret_value().encode() if config.secret else None
        self._ca_file = ca_file
        self._queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue(config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:12]
        self._tls: ssl.SSLContext | None = None
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.connections = 0
        """Connections opened to the endpoint so far."""
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.last_delivered: float | None = None
        self._log = log.bind(webhook=name)

    def kinds(self) -> tuple[type[EngineEvent], ...] | None:
        """The events this endpoint wants (None: all)."""
        if not self._wanted:
            return None
        types = event_types()
        return tuple(types[name] for name in sorted(self._wanted) if name in types)

    def on_event(self, event: EngineEvent) -> None:
        """Queue ``event`` if this endpoint wants it; never raises, never waits."""
        kind = type(event).__name__
        if self._wanted and kind not in self._wanted:
            return
        try:
            self._queue.put_nowait((kind, f"{self._prefix}-{next(self._ids)}", event_json(event)))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                self._log.warning("webhook_queue_full", dropped=self.dropped)

    async def start(self) -> None:
        """Start delivering (an https endpoint's certificate authority is read here)."""
        if self._url.scheme == "https":
            cafile = str(self._ca_file) if self._ca_file is not None else None
            try:
                self._tls = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                # Told in /status and the log; the engine runs on without this endpoint.
                self.last_error = f"webhooks.{self.name}.ca_file {cafile}: {exc}"
                self._log.error("webhook_not_started", error=self.last_error)
                return
        self._task = asyncio.create_task(self._deliver(), name=f"webhook-{self.name}")

    async def close(self, drain: float = DRAIN_AT_STOP) -> None:
        """Give the endpoint up to ``drain`` seconds to take what is queued, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain):
                await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._hang_up()
        left = self._queue.qsize()
        if left:
            self.dropped += left
            self._log.warning("webhook_events_left_at_stop", dropped=left)

    def health(self) -> dict[str, Any]:
        """What ``/status`` shows: the endpoint's site (not its path or query: many
        webhook URLs carry their key there), and how delivery goes."""
        url = self._url
        return {
            "name": self.name,
            "url": f"{url.scheme}://{url.netloc.rpartition('@')[2]}",
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "waiting": self._queue.qsize(),
            "connections": self.connections,
            "last_error": self.last_error,
            "last_delivered_seconds_ago": (
                round(time.monotonic() - self.last_delivered, 1)
                if self.last_delivered is not None
                else None
            ),
        }

    async def _deliver(self) -> None:
        batch = self.config.batch
        while True:
            taken = [await self._queue.get()]
            while batch > 1 and len(taken) < batch and not self._queue.empty():
                taken.append(self._queue.get_nowait())
            try:
                if batch == 1:
                    await self._send(*taken[0])
                else:
                    # One id for the whole array: its first event's, and how many follow.
                    delivery = f"{taken[0][1]}+{len(taken) - 1}"
                    body = b"[" + b",".join(item[2] for item in taken) + b"]"
                    await self._send(BATCH, delivery, body, count=len(taken))
            finally:
                for _ in taken:
                    self._queue.task_done()

    async def _send(self, kind: str, delivery: str, body: bytes, *, count: int = 1) -> None:
        pause = RETRY_FIRST
        for attempt in range(1, self.config.max_tries + 1):
            try:
                await self._post(kind, delivery, body)
            except WebhookError as exc:
                self.last_error = str(exc)
                if exc.final or attempt == self.config.max_tries:
                    self.failed += count
                    self._log.warning(
                        "webhook_event_dropped",
                        event_type=kind,
                        events=count,
                        tries=attempt,
                        error=str(exc),
                    )
                    return
                self._log.info("webhook_retry", event_type=kind, attempt=attempt, error=str(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
            else:
                self.delivered += count
                self.last_delivered = time.monotonic()
                return

    async def _post(self, kind: str, delivery: str, body: bytes) -> None:
        url = self._url
        port = url.port or (443 if url.scheme == "https" else 80)
        host = url.hostname or ""
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = [
            ("Host", url.netloc.rpartition("@")[2]),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("User-Agent", "callcenter"),
            ("X-Callcenter-Event", kind),
            ("X-Callcenter-Delivery", delivery),
        ]
        if self._secret is not None:
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers.append(("X-Callcenter-Signature", f"sha256={digest}"))
        head = f"POST {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        request = head.encode() + b"\r\n" + body
        while True:
            reused = self._conn is not None
            try:
                async with asyncio.timeout(self.config.timeout):
                    if self._conn is None:
                        self._conn = await asyncio.open_connection(
                            host, port, ssl=self._tls, server_hostname=host if self._tls else None
                        )
                        self.connections += 1
                    reader, writer = self._conn
                    writer.write(request)
                    await writer.drain()
                    status, keep = await _read_answer(reader)
            except _Stale:
                self._hang_up()
                if reused:
                    continue
                raise WebhookError(f"{host}:{port} closed the connection unanswered") from None
            except TimeoutError:
                self._hang_up()
                raise WebhookError(f"no answer within {self.config.timeout:g} s") from None
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
                self._hang_up()
                if reused and isinstance(exc, ConnectionError):
                    continue  # the endpoint reset a connection it had let go idle
                raise WebhookError(f"cannot reach {host}:{port}: {exc}") from None
            break
        if not keep:
            self._hang_up()
        if 200 <= status < 300:
            return
        final = status not in _RETRIED and not 500 <= status < 600
        raise WebhookError(f"HTTP {status} from {host}:{port}", final=final)

    def _hang_up(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.x answer to its end: its status, and whether the connection may
    carry the next request (HTTP/1.1 without ``Connection: close``, a body whose end is
    known and not too long). Raises ``_Stale`` when the connection ends before a byte of
    it: the endpoint had closed it."""
    while True:
        first = await reader.readline()
        if not first:
            raise _Stale
        status = _status(first)
        headers: dict[str, str] = {}
        size = len(first)
        while True:
            line = await reader.readline()
            size += len(line)
            if size > _MAX_HEAD or not line:
                return status, False
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue): the real one follows
        connection = headers.get("connection", "")
        if first.startswith(b"HTTP/1.1"):
            keep = "close" not in connection
        else:
            keep = "keep-alive" in connection
        if status in (204, 304):
            return status, keep
        if "chunked" in headers.get("transfer-encoding", ""):
            return status, keep and await _skip_chunks(reader)
        length = headers.get("content-length", "")
        if not length.isdigit() or int(length) > _MAX_BODY:
            return status, False  # the body runs to the close (or is not worth reading)
        await reader.readexactly(int(length))
        return status, keep


async def _skip_chunks(reader: asyncio.StreamReader) -> bool:
    """Read a chunked body and its trailers; False when it was cut or too long."""
    total = 0
    while True:
        line = await reader.readline()
        size = line.split(b";", 1)[0].strip()
        try:
            chunk = int(size, 16)
        except ValueError:
            return False
        if chunk == 0:
            while (trailer := await reader.readline()) not in (b"\r\n", b"\n"):
                if not trailer:
                    return False
            return True
        total += chunk
        if total > _MAX_BODY:
            return False
        await reader.readexactly(chunk + 2)


def _status(line: bytes) -> int:
    """The status code of an HTTP/1.x status line; a garbled one counts as a 502."""
    parts = line[:_MAX_STATUS_LINE].split(None, 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit():
        return int(parts[1])
    return 502
