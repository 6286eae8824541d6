"""The daemon's own share of every AGI / ESL exchange, measured from outside the code under test.

:meth:`AGIProbe.install` wraps, in this process only and without editing the driver:

* FastAGI: ``_FastAGIProtocol.data_received`` (when bytes come off the socket) and each
  session's transport ``write`` (when the next command goes out);
* AsyncAGI: the AMI link's ``data_received`` (when the bytes of a chunk arrived) and its
  ``write`` (when an ``Action: AGI`` goes out), plus
  ``AsyncAGIRouter._on_start``/``_on_exec`` (which channel the chunk's event was for).

For every AGI command written it records ``gap`` = write time - arrival time of the bytes
that made the daemon send it (the previous command's result, the environment block or
``AsyncAGIStart``), labelled ``after <previous command>``; and for every result the round
trip (command written -> result arrived: the PBX's turnaround plus two loopback hops).
Everything in between - the event loop waking up, parsing, the driver, the engine, the
command encoding - is the daemon's share. The wrappers cost about a microsecond per call.

:class:`ESLProbe` does the same for FreeSWITCH: :meth:`ESLProbe.install` wraps the ESL
link class (``callcenter.pbx.freeswitch.connection._Link``: every inbound and outbound-socket
connection) so that chunk arrivals are stamped in its ``data_received`` and every message
dispatched (a reply, an event) marks its channel as "having news" at the arrival time of the
chunk it came in. A command written for a channel (``sendmsg <uuid>``, ``api uuid_* <uuid>``;
on an outbound socket, anything on that socket) records ``gap`` = write time - arrival of the
latest news for that channel, labelled with that news (``reply to sendmsg playback``,
``CHANNEL_EXECUTE_COMPLETE bridge`` ...). Replies are matched to commands in order, as the
connection does, which also gives the round trip (command written -> its reply arrived).
Commands with no news pending for their channel (started by a timer or another call's event)
are not sampled.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callcenter.pbx.asterisk import agi as agi_module
from callcenter.pbx.asterisk import ami as ami_module
from callcenter.pbx.asterisk.agi import AsyncAGIRouter
from callcenter.pbx.asterisk.ami import AMIConnection
from callcenter.pbx.freeswitch import connection as esl_module
from callcenter.protocols.esl import ESLMessage

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

        def data_received(link: Any, data: bytes) -> None:
            probe._current = perf()
            received_original(link, data)

        open_original = self._patch(AMIConnection, "_open_and_login", open_and_login)
        received_original = self._patch(ami_module._Link, "data_received", data_received)
        start_original = self._patch(AsyncAGIRouter, "_on_start", on_start)
        exec_original = self._patch(AsyncAGIRouter, "_on_exec", on_exec)

    def _wrap_link(self, link: Any) -> None:
        """The driver's AMI link is a protocol: its writes are stamped here, its callbacks
        by the class patch of ``_install_asyncagi`` (uvloop binds them at connection time)."""
        write = link.write
        probe = self

        def timed_write(data: bytes) -> None:
            probe.ami_written(data)
            write(data)

        link.write = timed_write

    def ami_written(self, data: bytes) -> None:
        """An AMI write: an ``Action: AGI`` closes the gap of its channel."""
        if data.startswith(b"Action: AGI\r\n"):
            now = perf()
            channel = header(data, b"Channel")
            arrived = self._pending.pop(channel, None)
            if arrived is not None:
                label = self._last.get(channel, "?")
                self.gaps.append(Sample(now, f"after {label}", now - arrived))
            self._last[channel] = verb(header(data, b"Command"))
            self._sent[channel] = now

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
            probe.ami_written(data)
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


def esl_command(data: bytes) -> tuple[str, str | None]:
    """(label, channel uuid or None) of an encoded ESL command: ``("sendmsg playback", uuid)``,
    ``("api uuid_break", uuid)``, ``("bgapi originate", None)``."""
    line = data[: data.find(b"\n")].decode("utf-8", "replace")
    words = line.split(" ", 3)
    verb = words[0]
    if verb == "sendmsg":
        start = data.find(b"\nexecute-app-name: ")
        app = ""
        if start >= 0:
            start += len(b"\nexecute-app-name: ")
            app = data[start : data.find(b"\n", start)].decode("utf-8", "replace")
        return f"sendmsg {app}".rstrip(), words[1] if len(words) > 1 else None
    if verb in ("api", "bgapi") and len(words) > 1:
        label = f"{verb} {words[1]}"
        if words[1].startswith("uuid_") and len(words) > 2:
            return label, words[2]
        return label, None
    return verb, None


class _LinkStamps:
    """Per ESL link: arrival stamps and the commands awaiting replies, in wire order."""

    __slots__ = ("arrival", "current", "fifo", "key")

    def __init__(self, key: str | None) -> None:
        self.key = key
        """None on the inbound socket (channels by uuid); the link's own key on an outbound
        socket (one channel per socket)."""
        self.arrival = 0.0
        self.current = 0.0
        self.fifo: collections.deque[tuple[str | None, str, float]] = collections.deque()


@dataclass
class ESLProbe:
    gaps: list[Sample] = field(default_factory=list)
    roundtrips: list[Sample] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    """Events dispatched, by name (``CHANNEL_EXECUTE_COMPLETE set`` ...)."""
    bytes_read: int = 0
    commands: int = 0
    _news: dict[str, tuple[float, str]] = field(default_factory=dict)
    _links: int = 0
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def clear(self) -> None:
        self.gaps.clear()
        self.roundtrips.clear()
        self._news.clear()
        self.events.clear()
        self.bytes_read = 0
        self.commands = 0

    def install(self) -> None:
        """Wrap the ESL link class of this process (see the module doc)."""
        link_class = esl_module._Link
        probe = self
        news = self._news
        gaps = self.gaps
        init_original = link_class.__init__
        dispatch_original = link_class._dispatch
        received_original = link_class.data_received
        write_original = link_class.write

        def init(link: Any, **kwargs: Any) -> None:
            init_original(link, **kwargs)
            owner = getattr(kwargs.get("on_event"), "__self__", None)
            probe._links += 1
            outbound = isinstance(owner, esl_module.ESLOutboundSession)
            link._probe_stamps = _LinkStamps(f"link-{probe._links}" if outbound else None)

        def data_received(link: Any, data: bytes) -> None:
            stamps = getattr(link, "_probe_stamps", None)
            if stamps is not None:
                stamps.current = perf()
                probe.bytes_read += len(data)
            received_original(link, data)

        def write(link: Any, data: bytes) -> None:
            stamps = getattr(link, "_probe_stamps", None)
            if stamps is not None:
                now = perf()
                label, uid = esl_command(data)
                key = stamps.key or uid
                if key is not None:
                    pending = news.pop(key, None)
                    if pending is not None:
                        gaps.append(Sample(now, f"after {pending[1]}", now - pending[0]))
                stamps.fifo.append((key, label, now))
                probe.commands += 1
            write_original(link, data)

        def dispatch(link: Any, msg: ESLMessage) -> None:
            stamps = getattr(link, "_probe_stamps", None)
            if stamps is not None:
                probe._dispatched(stamps, msg)
            dispatch_original(link, msg)

        # _Link has no __slots__: the stamps ride on the instance. Class-level patches,
        # installed before any connection: uvloop binds data_received at connection time.
        for name, wrapper, original in (
            ("__init__", init, init_original),
            ("data_received", data_received, received_original),
            ("write", write, write_original),
            ("_dispatch", dispatch, dispatch_original),
        ):
            setattr(link_class, name, wrapper)
            self._undo.append(lambda n=name, o=original: setattr(link_class, n, o))

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _dispatched(self, stamps: _LinkStamps, msg: ESLMessage) -> None:
        at = stamps.current
        content_type = msg.content_type
        if content_type in ("command/reply", "api/response"):
            if not stamps.fifo:
                return
            key, label, sent = stamps.fifo.popleft()
            self.roundtrips.append(Sample(at, label, at - sent))
            if key is not None:
                self._news[key] = (at, f"reply to {label}")
        elif msg.is_event:
            try:
                event = msg.event
            except Exception:
                return
            if event is None:
                return
            key = stamps.key or event.unique_id
            if key is None:
                self.events[event.name] += 1
                return
            name = event.name
            if name == "CHANNEL_EXECUTE_COMPLETE":
                name += " " + (event.headers.get("Application") or "?")
            self.events[name] += 1
            if name == "CHANNEL_HANGUP_COMPLETE":
                self._news.pop(key, None)  # nothing more to answer for this channel
                return
            self._news[key] = (at, name)
