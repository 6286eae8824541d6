"""Engine events live over HTTP, as Server-Sent Events: ``GET /events`` on the control API,
for an agent's desktop (a screen pop as their phone rings), a wallboard in a browser, or a
script, with no MQTT broker and no endpoint of their own to receive webhooks.

Each event is one SSE message, its data the JSON the webhooks and MQTT's ``events`` topics
carry (:func:`~callcenter.live.mqtt.event_json`)::

    id: 3f9c2a71-42
    event: AgentConnected
    data: {"event":"AgentConnected","at":"2026-12-06T09:00:01.2+00:00","call_id":...}

Query parameters narrow the stream:

* ``events=AgentRinging,AgentConnected``: these kinds only (an unknown name is a 400);
* ``agent=1001``: events about that agent (their ``agent`` field), and every event of a call
  once it mentions them (ringing them, put through to them, their own outbound call) up
  to its ``CallEnded``: the call's variables (``IvrVariableSet``) for the screen pop come
  too;
* ``queue=sales``: the same for a queue (events of calls that joined it).

With ``api.token`` set the stream needs it as any route does; a browser's ``EventSource``
cannot send headers, so ``?token=`` is taken too (keep the API behind the web backend, as
for every route: a URL's token ends up in access logs).

A browser reconnects on its own, sending the last id it saw (``Last-Event-ID``, or
``?last_id=``): the events it missed are sent first, from the last :data:`BUFFER`
events kept. When they are gone (too long away, or another daemon now: ids begin with the
daemon's own prefix) a ``StreamGap`` message says so, and the client should read
``GET /status`` again. A client that does not keep up (:data:`CLIENT_BACKLOG` events
behind) is disconnected, and comes back the same way. A comment line every
:data:`KEEPALIVE` seconds keeps proxies from closing a quiet stream.

Events are kept only once a first client has connected: a centre that never streams pays
nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from callcenter.events import (
    AgentDialAnswered,
    AgentRinging,
    CallEnded,
    CallEvent,
    EngineEvent,
    EventBus,
    QueueJoined,
    event_types,
)
from callcenter.live.mqtt import event_json

log = structlog.get_logger(__name__)

BUFFER: Final = 2000
"""Events kept for clients that come back (``Last-Event-ID``)."""
CLIENT_BACKLOG: Final = 1000
"""Events a client may be behind before it is disconnected."""
KEEPALIVE: Final = 15.0
"""Seconds between comment lines on a quiet stream."""
RETRY_MS: Final = 2000
"""How long a browser waits before reconnecting (the stream's ``retry:``)."""
WRITE_TIMEOUT: Final = 10.0
"""Seconds a write may wait for a client reading nothing before it is disconnected."""

_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-store\r\n"
    b"X-Accel-Buffering: no\r\n"
    b"Connection: close\r\n\r\n"
)
_FOLLOWED: Final = (AgentRinging, AgentDialAnswered, QueueJoined)
"""Events that tie a call to an agent or a queue for the ``agent=`` / ``queue=`` filters
(besides any event with that ``agent``: AgentConnected names the call too)."""


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """What one client asked for (see the module docstring)."""

    kinds: frozenset[str] = frozenset()
    agent: str | None = None
    queue: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, Sequence[str]]) -> StreamFilter:
        """From a request's query; ValueError (with what to write instead) when it asks
        for an event that does not exist or gives a parameter twice."""
        for name, values in query.items():
            if len(values) > 1:
                raise ValueError(f"give {name}= once")
        wanted = [k for k in query.get("events", [""])[0].split(",") if k]
        known = event_types()
        unknown = [k for k in wanted if k not in known]
        if unknown:
            raise ValueError(f"no engine event {unknown[0]!r} (see callcenter/events.py)")
        agent = query.get("agent", [""])[0] or None
        queue = query.get("queue", [""])[0] or None
        return cls(frozenset(wanted), agent, queue)

    @property
    def follows(self) -> bool:
        """Does this filter follow calls (``agent=`` or ``queue=``)?"""
        return self.agent is not None or self.queue is not None


_Item = tuple[int, EngineEvent, bool]
"""An event to write: its number, itself, and whether it carries its id (the earlier
events of a call sent as it becomes followed carry none: a client coming back resumes
after the last id it saw, not before)."""


@dataclass(eq=False)
class _Client:
    """One connected stream: its filter, the events waiting to be written."""

    wanted: StreamFilter
    pending: deque[_Item] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    calls: set[str] = field(default_factory=set)
    """Calls followed (``agent=`` / ``queue=``) until their CallEnded."""
    overflowed: bool = False
    closing: bool = False

    def admit(
        self, seq: int, event: EngineEvent, recent: Sequence[tuple[int, EngineEvent]] = ()
    ) -> list[_Item]:
        """What this client gets of ``event``: nothing, the event, or (a call it starts
        following) the call's earlier events in ``recent`` first, then the event."""
        wanted = self.wanted
        kind_ok = not wanted.kinds or type(event).__name__ in wanted.kinds
        if not wanted.follows:
            return [(seq, event, True)] if kind_ok else []
        ours, first = self._follow(event)
        items: list[_Item] = []
        if first and recent and isinstance(event, CallEvent):
            call_id = event.call_id
            items = [
                (s, e, False)
                for s, e in recent
                if s < seq
                and isinstance(e, CallEvent)
                and e.call_id == call_id
                and (not wanted.kinds or type(e).__name__ in wanted.kinds)
            ]
        if ours and kind_ok:
            items.append((seq, event, True))
        return items

    def _follow(self, event: EngineEvent) -> tuple[bool, bool]:
        """(is ``event`` this client's, does it make a call followed from now)."""
        wanted = self.wanted
        agent = getattr(event, "agent", None)
        queue = getattr(event, "queue", None)
        ours = (wanted.agent is not None and agent == wanted.agent) or (
            wanted.queue is not None and queue == wanted.queue
        )
        if not isinstance(event, CallEvent):
            return ours, False
        call_id = event.call_id
        first = False
        if ours and call_id not in self.calls and (isinstance(event, _FOLLOWED) or agent):
            self.calls.add(call_id)
            first = True
        followed = call_id in self.calls
        if isinstance(event, CallEnded):
            self.calls.discard(call_id)
        return ours or followed, first


class EventStreams:
    """Every ``GET /events`` client of one daemon (see the module docstring)."""

    def __init__(self, bus: EventBus, *, buffer: int = BUFFER) -> None:
        self._bus = bus
        self._prefix = uuid.uuid4().hex[:8]
        self._seq = itertools.count(1)
        self._last = 0
        self._recent: deque[tuple[int, EngineEvent]] = deque(maxlen=buffer)
        self._clients: set[_Client] = set()
        self._none = asyncio.Event()
        self._none.set()
        self._listening = False
        self.served = 0
        """Streams opened since the start."""
        self.dropped = 0
        """Clients disconnected for falling behind."""

    @property
    def clients(self) -> int:
        """Streams open now."""
        return len(self._clients)

    def forget(self, pattern: re.Pattern[str]) -> int:
        """Drop the kept events (those a resuming client would get again) that ``pattern``
        finds in (an erasure's numbers); how many went. A client resuming from before them
        gets the others."""
        kept = [(seq, e) for seq, e in self._recent if not pattern.search(event_json(e).decode())]
        gone = len(self._recent) - len(kept)
        self._recent.clear()
        self._recent.extend(kept)
        return gone

    def health(self) -> dict[str, int]:
        """Streams open now, opened since the start, dropped for falling behind."""
        return {"clients": self.clients, "served": self.served, "dropped": self.dropped}

    def _on_event(self, event: EngineEvent) -> None:
        seq = self._last = next(self._seq)
        self._recent.append((seq, event))
        for client in self._clients:
            if client.overflowed:
                continue
            items = client.admit(seq, event, self._recent)
            if not items:
                continue
            if len(client.pending) + len(items) > CLIENT_BACKLOG:
                client.overflowed = True
                client.pending.clear()
            else:
                client.pending.extend(items)
            client.wake.set()

    def _id(self, seq: int) -> str:
        return f"{self._prefix}-{seq}"

    def _encode(self, items: Sequence[_Item]) -> bytes:
        return b"".join(
            _message(self._id(s) if with_id else "", type(e).__name__, event_json(e))
            for s, e, with_id in items
        )

    async def serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        wanted: StreamFilter,
        last_id: str,
        *,
        headers: bytes = b"",
        peer: str = "",
    ) -> None:
        """Stream events to one client until it goes, falls behind, or :meth:`close`;
        ``headers``: more response header lines (CORS); ``peer``: the client's address for
        the logs (default: the socket's peer)."""
        if not self._listening:
            self._bus.subscribe(self._on_event)
            self._listening = True
        client = _Client(wanted)
        # Registered before the replay is taken, with no await between: every event
        # published from now on is pending, every earlier one is in the replay.
        self._clients.add(client)
        self._none.clear()
        self.served += 1
        peer = peer or str(writer.get_extra_info("peername"))
        log.info("event_stream_opened", peer=peer, filter=_shown(wanted))
        why = "client gone"
        watcher = asyncio.ensure_future(reader.read(1))
        try:
            replay, gap = self._since(last_id)
            out = _HEAD.replace(b"\r\n\r\n", b"\r\n" + headers + b"\r\n", 1)
            out += f"retry: {RETRY_MS}\n\n".encode()
            if gap is not None:
                out += _message("", "StreamGap", json.dumps(gap).encode())
            backlog = [item for s, e in replay for item in client.admit(s, e)]
            why = await self._pump(client, writer, out + self._encode(backlog), watcher)
        except (ConnectionError, TimeoutError):
            why = "client gone"
        finally:
            watcher.cancel()
            self._clients.discard(client)
            if not self._clients:
                self._none.set()
            log.info("event_stream_closed", peer=peer, why=why)
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _pump(
        self,
        client: _Client,
        writer: asyncio.StreamWriter,
        out: bytes,
        watcher: asyncio.Future[bytes],
    ) -> str:
        """Write what is due until the stream ends; returns why it ended."""
        while True:
            if out:
                writer.write(out)
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await writer.drain()
            if client.closing:
                return "daemon stopping"
            if client.overflowed:
                self.dropped += 1
                log.warning("event_stream_too_slow", backlog=CLIENT_BACKLOG)
                writer.write(b": too far behind: reconnect with Last-Event-ID\n\n")
                return "too slow"
            waker = asyncio.ensure_future(client.wake.wait())
            done, _ = await asyncio.wait(
                (waker, watcher), timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED
            )
            waker.cancel()
            if watcher in done:
                return "client gone"  # EOF (or a byte it should not send)
            client.wake.clear()
            items = list(client.pending)
            client.pending.clear()
            out = self._encode(items) if items else b""
            if not done:
                out += b": keep-alive\n\n"

    def _since(self, last_id: str) -> tuple[list[tuple[int, EngineEvent]], dict[str, str] | None]:
        """The kept events after ``last_id`` and, when some were lost, what the
        ``StreamGap`` says; no id: nothing to replay."""
        if not last_id:
            return [], None
        prefix, _, number = last_id.strip().rpartition("-")
        if prefix != self._prefix or not number.isdigit():
            return [], {"last_id": last_id[:64], "why": "another daemon, or an unknown id"}
        last = int(number)
        replay = [item for item in self._recent if item[0] > last]
        oldest = self._recent[0][0] if self._recent else self._last + 1
        if last + 1 < oldest:
            return replay, {"last_id": last_id, "why": "events lost: too long away"}
        return replay, None

    async def close(self) -> None:
        """The daemon stops: every stream ends (the clients reconnect to the next one)."""
        for client in self._clients:
            client.closing = True
            client.wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._none.wait()


def _message(event_id: str, name: str, data: bytes) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {name}\n".encode() + b"data: " + data + b"\n\n"


def _shown(wanted: StreamFilter) -> str:
    parts = [f"events={','.join(sorted(wanted.kinds))}"] if wanted.kinds else []
    parts += [f"agent={wanted.agent}"] if wanted.agent else []
    parts += [f"queue={wanted.queue}"] if wanted.queue else []
    return "&".join(parts) or "all"
