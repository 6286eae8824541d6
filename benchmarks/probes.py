"""The daemon's own share of every AGI exchange, measured from outside the code under test.

:meth:`AGIProbe.install` wraps, in this process only and without editing the driver:

* FastAGI: ``_FastAGIProtocol.data_received`` (when bytes come off the socket) and each
  session's transport ``write`` (when the next command goes out);
* AsyncAGI: the AMI link's ``StreamReader.feed_data``/``read`` (when the bytes of a chunk
  arrived) and ``StreamWriter.write`` (when an ``Action: AGI`` goes out), plus
  ``AsyncAGIRouter._on_start``/``_on_exec`` (which channel the chunk's event was for).

For every AGI command written it records ``gap`` = write time - arrival time of the bytes
that made the daemon send it (the previous command's result, the environment block or
``AsyncAGIStart``), labelled ``after <previous command>``; and for every result the round
trip (command written -> result arrived: the PBX's turnaround plus two loopback hops).
Everything in between - the event loop waking up, parsing, the driver, the engine, the
command encoding - is the daemon's share. The wrappers cost about a microsecond per call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callcenter.pbx.asterisk import agi as agi_module
from callcenter.pbx.asterisk.agi import AsyncAGIRouter
from callcenter.pbx.asterisk.ami import AMIConnection

perf = time.perf_counter


def verb(command: bytes | str) -> str:
    """The first two words of a command line (``GET VARIABLE``, ``EXEC Dial``)."""
    text = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
    return " ".join(text.strip().split(" ", 2)[:2])


def header(message: bytes, name: bytes) -> bytes:
    """The value of header ``name`` in an encoded AMI message (exact case)."""
    start = message.find(b"\r\n" + name + b": ")
    if start < 0:
        return b""
    start += len(name) + 4
    return message[start : message.find(b"\r\n", start)]


@dataclass(slots=True)
class Sample:
    at: float
    """perf_counter() when the command was written."""
    label: str
    seconds: float


@dataclass
class AGIProbe:
    gaps: list[Sample] = field(default_factory=list)
    roundtrips: list[Sample] = field(default_factory=list)
    _pending: dict[bytes, float] = field(default_factory=dict)
    _sent: dict[bytes, float] = field(default_factory=dict)
    _last: dict[bytes, str] = field(default_factory=dict)
    _arrival: float = 0.0
    _current: float = 0.0
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def clear(self) -> None:
        self.gaps.clear()
        self.roundtrips.clear()

    def gap_values(self, start: float = 0.0, end: float = float("inf")) -> list[float]:
        return [s.seconds for s in self.gaps if start <= s.at < end]

    # -- installation ---------------------------------------------------------------------

    def install(self) -> None:
        """Wrap the FastAGI and AsyncAGI code paths of this process (see the module doc)."""
        self._install_fastagi()
        self._install_asyncagi()

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _patch(self, owner: Any, name: str, replacement: Any) -> Any:
        original = getattr(owner, name)
        setattr(owner, name, replacement)
        self._undo.append(lambda: setattr(owner, name, original))
        return original

    def _install_fastagi(self) -> None:
        protocol = agi_module._FastAGIProtocol
        probe = self

        def connection_made(proto: Any, transport: asyncio.BaseTransport) -> None:
            made(proto, transport)
            session = proto._session
            if session is not None:
                session._transport = TimedTransport(session._transport, probe)

        def data_received(proto: Any, data: bytes) -> None:
            session = proto._session
            if session is not None and isinstance(session._transport, TimedTransport):
                session._transport.arrived(perf())
            received(proto, data)

        made = self._patch(protocol, "connection_made", connection_made)
        received = self._patch(protocol, "data_received", data_received)

    def _install_asyncagi(self) -> None:
        probe = self

        async def open_and_login(conn: Any) -> Any:
            link = await open_original(conn)
            probe._wrap_link(link)
            return link

        def on_start(router: Any, msg: Any) -> None:
            probe.asyncagi_event((msg.get("Channel") or "").encode(), start=True)
            start_original(router, msg)

        def on_exec(router: Any, msg: Any) -> None:
            probe.asyncagi_event((msg.get("Channel") or "").encode(), start=False)
            exec_original(router, msg)

        open_original = self._patch(AMIConnection, "_open_and_login", open_and_login)
        start_original = self._patch(AsyncAGIRouter, "_on_start", on_start)
        exec_original = self._patch(AsyncAGIRouter, "_on_exec", on_exec)

    def _wrap_link(self, link: Any) -> None:
        self.wrap_ami_streams(link.reader, link.writer)

    def asyncagi_event(self, channel: bytes, *, start: bool) -> None:
        """``AsyncAGIStart`` (``start``) or ``AsyncAGIExec`` for ``channel`` is being handled:
        the next ``Action: AGI`` for it is measured from the arrival of this event's chunk."""
        if start:
            self._last[channel] = "AsyncAGIStart"
        else:
            sent = self._sent.pop(channel, None)
            if sent is not None:
                label = self._last.get(channel, "?")
                self.roundtrips.append(Sample(self._current, label, self._current - sent))
        self._pending[channel] = self._current

    def wrap_ami_streams(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Stamp chunk arrivals on ``reader`` (read with ``read()``) and ``Action: AGI`` writes
        on ``writer`` (one AMI connection at a time)."""
        feed, read, write = reader.feed_data, reader.read, writer.write
        probe = self

        def feed_data(data: bytes) -> None:
            if not reader._buffer:  # type: ignore[attr-defined]
                probe._arrival = perf()
            feed(data)

        async def timed_read(n: int = -1) -> bytes:
            data = await read(n)
            probe._current = probe._arrival
            return data

        def timed_write(data: bytes) -> None:
            if data.startswith(b"Action: AGI\r\n"):
                now = perf()
                channel = header(data, b"Channel")
                arrived = probe._pending.pop(channel, None)
                if arrived is not None:
                    label = probe._last.get(channel, "?")
                    probe.gaps.append(Sample(now, f"after {label}", now - arrived))
                probe._last[channel] = verb(header(data, b"Command"))
                probe._sent[channel] = now
            write(data)

        reader.feed_data = feed_data  # type: ignore[method-assign]
        reader.read = timed_read  # type: ignore[method-assign]
        writer.write = timed_write  # type: ignore[method-assign]


class TimedTransport:
    """A transport that stamps writes against the first arrival since the last write."""

    def __init__(self, inner: Any, probe: AGIProbe) -> None:
        self._inner = inner
        self._probe = probe
        self._read_at: float | None = None
        self._written_at: float | None = None
        self._last = "environment"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def arrived(self, now: float) -> None:
        if self._read_at is None:
            self._read_at = now
            if self._written_at is not None:
                self._probe.roundtrips.append(Sample(now, self._last, now - self._written_at))
                self._written_at = None

    def write(self, data: bytes) -> None:
        now = perf()
        if self._read_at is not None:
            self._probe.gaps.append(Sample(now, f"after {self._last}", now - self._read_at))
        self._read_at = None
        self._written_at = now
        self._last = verb(data)
        self._inner.write(data)
