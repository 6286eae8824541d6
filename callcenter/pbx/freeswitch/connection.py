"""FreeSWITCH Event Socket connections around the sans-I/O codec (:mod:`callcenter.protocols.esl`).

Two ways in, one set of commands:

* :class:`ESLConnection` (inbound mode): we connect to FreeSWITCH's ``mod_event_socket``
  (port 8021), wait for ``auth/request``, send ``auth <password>`` and subscribe to a narrow
  list of plain events (:data:`DEFAULT_EVENTS`). A refused password raises
  :class:`~callcenter.errors.AuthenticationError` (naming the host, never the password); an
  unreachable switch raises :class:`~callcenter.errors.PBXConnectionError`. After that a
  background task keeps the link up: if nothing at all arrives for ``heartbeat_timeout``
  seconds (FreeSWITCH sends HEARTBEAT every 20 s by default) it asks ``api status``, and a
  missing answer drops the link. A lost link is re-opened with exponential backoff plus
  jitter, authenticated and subscribed again; ``on_connected`` callbacks run after every
  (re)connection (the driver resynchronises there), ``on_disconnected`` ones when it drops.
* :class:`ESLOutboundServer` (outbound mode): FreeSWITCH connects to us from the dialplan
  (``<action application="socket" data="127.0.0.1:8084 async full"/>``). Each connection
  becomes an :class:`ESLOutboundSession`: we send ``connect`` (the reply is the channel's
  data), ``myevents`` and ``linger``, then hand the session to the handler, which controls
  the channel on that socket.

Both are :class:`ESLClient` objects: :meth:`~ESLClient.api` (``api/response`` body),
:meth:`~ESLClient.bgapi` (our own ``Job-UUID``; the result comes in the BACKGROUND_JOB event
with that id), :meth:`~ESLClient.sendmsg` (``call-command: execute`` with our ``Event-UUID``,
which FreeSWITCH copies into ``Application-UUID`` of the CHANNEL_EXECUTE_COMPLETE event).
FreeSWITCH answers the commands of one socket strictly in order, so replies are matched to a
FIFO of waiting commands. Nothing is ever sent twice: a command pending when the link drops
fails with ``PBXConnectionError`` (an ``originate`` must never ring a phone twice).

Events are delivered to listeners synchronously as the bytes arrive (protocol callbacks);
listeners must not block.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

import structlog

from callcenter.errors import (
    ActionFailed,
    AuthenticationError,
    CallHungUp,
    CommandFailed,
    ESLProtocolError,
    ListenError,
    PBXConnectionError,
    PBXTimeoutError,
    ReplyLost,
)
from callcenter.pbx.link import ProtocolLink, reply_within
from callcenter.pbx.reconnect import backoff
from callcenter.protocols.esl import (
    EVENT_CONTENT_TYPES,
    ESLEvent,
    ESLMessage,
    ESLParser,
    HeadersLike,
    encode_command,
    encode_sendmsg,
)
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

__all__ = [
    "DEFAULT_EVENTS",
    "ESLClient",
    "ESLConnection",
    "ESLOutboundServer",
    "ESLOutboundSession",
    "EventListener",
]

EventListener = Callable[[ESLEvent], None]
ConnectedCallback = Callable[[], Awaitable[None]]
DisconnectedCallback = Callable[[str], None]
OutboundHandler = Callable[["ESLOutboundSession"], Awaitable[None]]

DEFAULT_EVENTS: Final = (
    "CHANNEL_CREATE",
    "CHANNEL_PARK",
    "CHANNEL_ANSWER",
    "CHANNEL_ORIGINATE",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
    "PLAYBACK_STOP",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    "MESSAGE_QUERY",
    # Last: every word after CUSTOM names a subclass (mod_conference's membership events;
    # mod_sofia's registrations, which say whether an agent's phone can be called).
    "CUSTOM conference::maintenance sofia::register sofia::unregister sofia::expire",
)
"""What the driver subscribes to: the events it acts on and nothing else (CHANNEL_CREATE and
CHANNEL_HANGUP_COMPLETE tell which SIP users' devices are in use; MESSAGE_QUERY, a phone
asking for its message lamp, is answered for the queues' lamps). CHANNEL_STATE,
CALLSTATE, CODEC and CALL_UPDATE, about half of FreeSWITCH's event volume under load (trace i:
55 events per bridged call with ``ALL``), are left out."""

#: Events kept for an outbound session before the handler attaches its listener.
_MAX_BUFFERED_EVENTS: Final = 10_000


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved (nobody else may look at it)."""
    if not future.cancelled():
        future.exception()


class _Link(ProtocolLink):
    """One TCP connection speaking ESL, a FIFO of commands awaiting replies.

    Read from protocol callbacks: bytes go from ``data_received`` through the codec to the
    dispatch at once, no reader task woken per chunk (an ESL event is a few KB, several per
    command). ``done`` resolves when the socket has closed.
    """

    def __init__(
        self,
        *,
        where: str,
        on_event: Callable[[ESLEvent], None],
        on_notice: Callable[[ESLMessage], None],
        on_made: Callable[[_Link], None] | None = None,
    ) -> None:
        super().__init__()
        self.where = where
        self._on_event = on_event
        self._on_notice = on_notice
        self._on_made = on_made
        self._parser = ESLParser()
        self._fifo: collections.deque[asyncio.Future[ESLMessage]] = collections.deque()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.auth_request: asyncio.Future[None] = loop.create_future()
        self.lost = asyncio.Event()
        self.reason = ""
        self.last_rx = loop.time()
        self.done: asyncio.Future[None] = loop.create_future()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2 and self._on_made is not None:
            self.where = f"{peer[0]}:{peer[1]}"
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        self.last_rx = self._loop.time()
        try:
            for msg in self._parser.feed(data):
                self._dispatch(msg)
        except ESLProtocolError as exc:
            self.drop(_reason(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.drop(_reason(exc) if exc is not None else "connection closed by FreeSWITCH")
        self.wake_writer()
        if not self.done.done():
            self.done.set_result(None)

    # -- commands ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def request(self, data: bytes, what: str, limit: float) -> ESLMessage:
        """Send one command; return its ``command/reply`` or ``api/response``."""
        if self.lost.is_set():
            raise PBXConnectionError(f"ESL link to {self.where} is down ({what} not sent)")
        future: asyncio.Future[ESLMessage] = self._loop.create_future()
        # Appending and writing with no await in between keeps the FIFO in wire order. A
        # command that times out stays queued: its late reply must still be consumed.
        self._fifo.append(future)
        self.write(data)
        try:
            if self.writing_paused:
                # The PBX stopped reading: the limit covers the wait for room too.
                deadline = self._loop.time() + limit
                async with asyncio.timeout_at(deadline):
                    await self.drain()
                return await reply_within(future, max(0.0, deadline - self._loop.time()))
            return await reply_within(future, limit)
        except TimeoutError:
            raise PBXTimeoutError(
                f"FreeSWITCH at {self.where} did not answer {what!r} within {limit:.1f}s"
            ) from None

    def send(self, data: bytes) -> asyncio.Future[ESLMessage]:
        """Send one command without waiting; the future gets its reply (no deadline: it
        fails with ``PBXConnectionError`` if the link drops first)."""
        future: asyncio.Future[ESLMessage] = self._loop.create_future()
        self._fifo.append(future)
        self.write(data)
        return future

    async def request_all(
        self, requests: Sequence[tuple[bytes, str]], limit: float
    ) -> list[ESLMessage]:
        """Send several commands in one write; return their replies, in order.

        FreeSWITCH answers a socket's commands one after the other, so pipelining them
        costs one round trip instead of one each. ``limit`` covers them all.
        """
        if self.lost.is_set():
            raise PBXConnectionError(
                f"ESL link to {self.where} is down ({requests[0][1]} not sent)"
            )
        futures: list[asyncio.Future[ESLMessage]] = []
        for _ in requests:
            future: asyncio.Future[ESLMessage] = self._loop.create_future()
            futures.append(future)
            self._fifo.append(future)
        self.write(b"".join(data for data, _ in requests))
        deadline = self._loop.time() + limit
        replies: list[ESLMessage] = []
        try:
            if self.writing_paused:
                async with asyncio.timeout_at(deadline):
                    await self.drain()
            for future in futures:
                left = max(0.0, deadline - self._loop.time())
                replies.append(await reply_within(future, left))
        except TimeoutError:
            what = requests[min(len(replies), len(requests) - 1)][1]
            raise PBXTimeoutError(
                f"FreeSWITCH at {self.where} did not answer {what!r} within {limit:.1f}s"
            ) from None
        return replies

    def drop(self, reason: str) -> None:
        """Close the socket (once) and fail every command waiting for a reply."""
        if self.lost.is_set():
            return
        self.reason = reason
        self.lost.set()
        if self.transport is not None:
            self.transport.close()
        elif not self.done.done():
            self.done.set_result(None)
        error = ReplyLost(f"ESL link to {self.where} lost: {reason}")
        while self._fifo:
            future = self._fifo.popleft()
            if not future.done():
                future.set_exception(error)
                future.add_done_callback(_consume)
        if not self.auth_request.done():
            self.auth_request.set_exception(error)
            self.auth_request.add_done_callback(_consume)

    async def close(self) -> None:
        self.drop("closed by us")
        with contextlib.suppress(Exception):
            await asyncio.shield(self.done)

    def _dispatch(self, msg: ESLMessage) -> None:
        content_type = msg.content_type
        if content_type in ("command/reply", "api/response"):
            if not self._fifo:
                log.warning("esl_unexpected_reply", where=self.where, reply=msg.reply_text)
                return
            future = self._fifo.popleft()
            # A command that timed out still owns its (late) reply.
            if not future.done():
                future.set_result(msg)
        elif content_type in EVENT_CONTENT_TYPES:
            try:
                event = msg.event
            except ESLProtocolError as exc:
                log.warning("esl_bad_event", where=self.where, error=str(exc))
                return
            if event is not None:
                self._on_event(event)
        elif content_type == "auth/request":
            if not self.auth_request.done():
                self.auth_request.set_result(None)
        elif content_type == "text/disconnect-notice":
            self._on_notice(msg)
        elif content_type != "log/data":
            log.debug("esl_ignored_message", where=self.where, content_type=content_type)


class ESLClient:
    """Commands over one ESL socket (the base of :class:`ESLConnection` and
    :class:`ESLOutboundSession`). ``timeout=None`` means ``command_timeout``."""

    def __init__(self, where: str, command_timeout: float) -> None:
        self.where = where
        self.command_timeout = command_timeout
        self._link: _Link | None = None
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._listeners: list[EventListener] = []

    @property
    def connected(self) -> bool:
        """True while the socket is up (and, inbound, authenticated)."""
        link = self._link
        return link is not None and not link.lost.is_set()

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event received (as it arrives)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        self._listeners.remove(listener)

    # -- commands -------------------------------------------------------------------------

    def _usable_link(self, what: str) -> _Link:
        link = self._link
        if link is None or link.lost.is_set():
            raise PBXConnectionError(f"ESL link to {self.where} is down ({what} not sent)")
        return link

    async def _request(self, data: bytes, what: str, timeout: float | None) -> ESLMessage:
        link = self._usable_link(what)
        return await link.request(data, what, self.command_timeout if timeout is None else timeout)

    async def command(
        self, line: str, headers: HeadersLike = (), *, timeout: float | None = None
    ) -> str:
        """Send a plain command (``event ...``, ``filter ...``, ``linger``) and return its
        ``Reply-Text`` (``+OK ...`` or ``-ERR ...``, not checked)."""
        msg = await self._request(encode_command(line, headers), line.partition(" ")[0], timeout)
        return msg.reply_text or ""

    async def commands(self, lines: Sequence[str], *, timeout: float | None = None) -> list[str]:
        """Send plain commands in one write (one round trip for all); return each one's
        ``Reply-Text``, in order. ``timeout`` covers them all."""
        if not lines:
            return []
        link = self._usable_link(lines[0].partition(" ")[0])
        replies = await link.request_all(
            [(encode_command(line), line.partition(" ")[0]) for line in lines],
            self.command_timeout if timeout is None else timeout,
        )
        return [msg.reply_text or "" for msg in replies]

    async def api(self, cmd: str, *, timeout: float | None = None, check: bool = True) -> str:
        """``api <cmd>``: the ``api/response`` body (trailing newline kept as sent).

        ``check`` turns a ``-ERR ...`` answer into ``ActionFailed`` (the text is on
        ``.response``). Raises ``PBXTimeoutError``/``PBXConnectionError``.
        """
        what = "api " + cmd.partition(" ")[0]
        msg = await self._request(encode_command(f"api {cmd}"), what, timeout)
        text = msg.body_text if msg.content_type == "api/response" else (msg.reply_text or "")
        if check and text.startswith("-"):
            raise ActionFailed(f"FreeSWITCH {what} failed: {text.strip()}", text)
        return text

    def api_nowait(self, cmd: str) -> asyncio.Future[ESLMessage]:
        """Send ``api <cmd>`` and return at once: the future gets the ``api/response`` (no
        deadline; ``PBXConnectionError`` if the link drops first), for a command whose
        answer nothing waits on. Raises ``PBXConnectionError`` when the link is down."""
        link = self._usable_link("api " + cmd.partition(" ")[0])
        return link.send(encode_command(f"api {cmd}"))

    async def start_bgapi(self, cmd: str, *, timeout: float | None = None) -> asyncio.Future[str]:
        """``bgapi <cmd>`` with our own Job-UUID; returns once FreeSWITCH accepted the job.

        The returned future gets the job's result (the BACKGROUND_JOB body; ``-ERR ...`` is
        returned, not raised) or ``PBXConnectionError`` if the link drops first.
        """
        job = str(uuid.uuid4())
        what = "bgapi " + cmd.partition(" ")[0]
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        self._jobs[job] = future
        try:
            msg = await self._request(
                encode_command(f"bgapi {cmd}", {"Job-UUID": job}), what, timeout
            )
        except BaseException:
            self._jobs.pop(job, None)
            future.cancel()
            raise
        reply = msg.reply_text or ""
        if not reply.startswith("+OK"):
            self._jobs.pop(job, None)
            future.cancel()
            raise ActionFailed(f"FreeSWITCH refused {what}: {reply}", reply)
        given = msg.get("Job-UUID")
        if given and given != job:
            # Older switches ignore a client Job-UUID: follow theirs.
            self._jobs[given] = self._jobs.pop(job)
        return future

    async def bgapi(self, cmd: str, *, timeout: float | None = None, check: bool = True) -> str:
        """``bgapi <cmd>`` and wait for its result (``timeout`` covers both steps).

        ``check`` turns a ``-ERR ...`` result into ``ActionFailed``.
        """
        limit = self.command_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        future = await self.start_bgapi(cmd, timeout=limit)
        try:
            async with asyncio.timeout_at(deadline):
                text = await asyncio.shield(future)
        except TimeoutError:
            raise PBXTimeoutError(
                f"FreeSWITCH at {self.where} gave no result for bgapi "
                f"{cmd.partition(' ')[0]!r} within {limit:.1f}s"
            ) from None
        if check and text.startswith("-"):
            raise ActionFailed(f"FreeSWITCH bgapi {cmd.partition(' ')[0]} failed: {text}", text)
        return text

    async def send_message(
        self,
        target: str | None,
        headers: HeadersLike,
        body: str | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """``sendmsg [<uuid>]`` with raw headers (and body); returns the Reply-Text.

        ``-ERR invalid session id`` raises ``CallHungUp``; any other ``-ERR`` raises
        ``CommandFailed``.
        """
        msg = await self._request(encode_sendmsg(target, headers, body), "sendmsg", timeout)
        reply = msg.reply_text or ""
        if reply.startswith("-ERR"):
            if "invalid session id" in reply:
                raise CallHungUp(f"channel {target or '(socket)'} is gone: {reply}")
            raise CommandFailed(f"FreeSWITCH refused sendmsg: {reply}")
        return reply

    async def sendmsg(
        self,
        target: str | None,
        app: str,
        arg: str = "",
        *,
        event_uuid: str | None = None,
        event_lock: bool = True,
        timeout: float | None = None,
    ) -> str:
        """Run dialplan application ``app`` on channel ``target`` (None: the outbound
        socket's own channel). ``event_uuid`` comes back as ``Application-UUID`` on the
        CHANNEL_EXECUTE_COMPLETE event. Returns once queued (``+OK``)."""
        headers: list[tuple[str, str]] = [
            ("call-command", "execute"),
            ("execute-app-name", app),
        ]
        if event_lock:
            headers.append(("event-lock", "true"))
        if event_uuid:
            headers.append(("Event-UUID", event_uuid))
        body: str | None = None
        if arg:
            if len(arg) > 1024:
                # Long arguments (big dial strings) travel as a body, as trace b's playback.
                headers.append(("content-type", "text/plain"))
                body = arg
            else:
                headers.append(("execute-app-arg", arg))
        return await self.send_message(target, headers, body, timeout=timeout)

    # -- events ---------------------------------------------------------------------------

    def _handle_event(self, event: ESLEvent) -> None:
        if event.name == "BACKGROUND_JOB":
            job = event.job_uuid
            future = self._jobs.pop(job, None) if job else None
            if future is not None and not future.done():
                future.set_result(event.body or "")
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("esl_listener_failed", where=self.where, esl_event=event.name)

    def _fail_jobs(self, reason: str) -> None:
        error = PBXConnectionError(f"ESL link to {self.where} lost before the job result: {reason}")
        for future in self._jobs.values():
            if not future.done():
                future.set_exception(error)
        self._jobs.clear()


class ESLConnection(ESLClient):
    """A self-healing inbound event-socket connection (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        events: Iterable[str] = DEFAULT_EVENTS,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        heartbeat_timeout: float = 45.0,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
    ) -> None:
        super().__init__(f"{host}:{port}", command_timeout)
        self.host = host
        self.port = port
        self._password = password
        self.events = tuple(events)
        self.connect_timeout = connect_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self._on_connected: list[ConnectedCallback] = []
        self._on_disconnected: list[DisconnectedCallback] = []
        self._ready = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        #: How many times a link was lost and opened again (for tests and metrics).
        self.reconnects = 0
        self._log = log.bind(esl=self.where)

    def __repr__(self) -> str:
        # Never the password.
        return f"<ESLConnection {self.where} connected={self.connected}>"

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and super().connected

    def on_connected(self, callback: ConnectedCallback) -> None:
        """Run ``await callback()`` after every successful login (the first one included)."""
        self._on_connected.append(callback)

    def on_disconnected(self, callback: DisconnectedCallback) -> None:
        """Call ``callback(reason)`` whenever an authenticated link is lost."""
        self._on_disconnected.append(callback)

    async def connect(self) -> None:
        """Open the first connection, authenticate, subscribe, start the keep-alive task.

        Raises ``AuthenticationError`` for a refused password, ``PBXConnectionError`` when
        FreeSWITCH cannot be reached or does not speak ESL, ``ActionFailed`` when it refuses
        the event subscription.
        """
        if self._supervisor is not None:
            return
        self._closing = False
        link = await self._open()
        self._supervisor = asyncio.create_task(self._supervise(link), name="esl-supervisor")

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until an authenticated link is up; ``PBXTimeoutError`` after ``within`` s."""
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError:
            raise PBXTimeoutError(f"ESL at {self.where} not connected within {within}s") from None

    async def close(self) -> None:
        """Say ``exit`` (best effort), close the link and stop reconnecting."""
        self._closing = True
        link = self._link
        if link is not None and self.connected:
            with contextlib.suppress(Exception):
                await link.request(encode_command("exit"), "exit", min(self.command_timeout, 1.0))
        if self._supervisor is not None:
            await cancel_and_wait(self._supervisor)
            self._supervisor = None
        if link is not None:
            await link.close()
        await cancel_and_wait(*list(self._side_tasks))
        self._ready.clear()
        self._fail_jobs("connection closed")

    def drop(self, reason: str = "dropped by us") -> None:
        """Drop the current link as if it had failed (it reconnects unless closing)."""
        if self._link is not None:
            self._link.drop(reason)

    # -- connection lifecycle --------------------------------------------------------------

    async def _open(self) -> _Link:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, link = await loop.create_connection(
                    lambda: _Link(
                        where=self.where,
                        on_event=self._handle_event,
                        on_notice=self._handle_notice,
                    ),
                    self.host,
                    self.port,
                )
        except (OSError, TimeoutError) as exc:
            self._log.warning("esl_connect_failed", reason=_reason(exc))
            raise PBXConnectionError(
                f"cannot reach FreeSWITCH event socket at {self.where}: {_reason(exc)}"
            ) from None
        try:
            await self._login(link)
        except BaseException:
            await link.close()
            raise
        self._link = link
        self._ready.set()
        self._log.info("esl_connected", events=len(self.events))
        return link

    async def _login(self, link: _Link) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                await link.auth_request
        except TimeoutError:
            raise PBXConnectionError(
                f"{self.where} sent no auth/request: not a FreeSWITCH inbound event socket"
            ) from None
        limit = self.command_timeout
        try:
            reply = await link.request(encode_command(f"auth {self._password}"), "auth", limit)
        except PBXTimeoutError:
            raise PBXConnectionError(f"FreeSWITCH at {self.where} did not answer auth") from None
        text = reply.reply_text or ""
        if not text.startswith("+OK"):
            self._log.error("esl_auth_refused", reply=text)
            raise AuthenticationError(
                f"FreeSWITCH event socket at {self.where} refused the password "
                f"({text or 'no reply'})"
            )
        subscribe = "event plain " + " ".join(self.events)
        reply = await link.request(encode_command(subscribe), "event", limit)
        text = reply.reply_text or ""
        if not text.startswith("+OK"):
            raise ActionFailed(f"FreeSWITCH at {self.where} refused {subscribe!r}: {text}", text)

    def _handle_notice(self, msg: ESLMessage) -> None:
        self._log.info("esl_disconnect_notice", disposition=msg.get("Content-Disposition", ""))

    async def _watchdog(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        while not link.lost.is_set():
            wait = link.last_rx + self.heartbeat_timeout - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await link.lost.wait()
                continue
            self._log.info("esl_idle_probe", idle=round(loop.time() - link.last_rx, 3))
            try:
                await link.request(encode_command("api status"), "api status", self.command_timeout)
            except PBXTimeoutError:
                self._log.warning("esl_heartbeat_lost", timeout=self.command_timeout)
                link.drop(
                    f"nothing received for {self.heartbeat_timeout}s and no answer to api status"
                )
                return
            except PBXConnectionError:
                return

    async def _supervise(self, link: _Link) -> None:
        while not self._closing:
            self._spawn(self._run_connected_callbacks())
            watchdog = asyncio.create_task(self._watchdog(link), name="esl-watchdog")
            try:
                await link.lost.wait()
            finally:
                await cancel_and_wait(watchdog)
            self._ready.clear()
            self._fail_jobs(link.reason)
            if self._closing:
                return
            self._log.warning("esl_connection_lost", reason=link.reason)
            for callback in list(self._on_disconnected):
                try:
                    callback(link.reason)
                except Exception:
                    self._log.exception("esl_disconnected_callback_failed")
            delays = backoff(self.reconnect_min, self.reconnect_max)
            for attempt, delay in enumerate(delays, 1):
                if self._closing:
                    break
                self._log.info("esl_reconnecting", delay=round(delay, 3), attempt=attempt)
                await asyncio.sleep(delay)
                try:
                    link = await self._open()
                except (PBXConnectionError, AuthenticationError, ActionFailed) as exc:
                    self._log.warning("esl_reconnect_failed", reason=str(exc))
                    continue
                self.reconnects += 1
                break

    async def _run_connected_callbacks(self) -> None:
        for callback in list(self._on_connected):
            try:
                await callback()
            except Exception:
                self._log.exception("esl_connected_callback_failed")

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


class ESLOutboundSession(ESLClient):
    """One channel FreeSWITCH handed us over an outbound socket (``socket ... async full``).

    :attr:`channel_data` is the CHANNEL_DATA event from the ``connect`` reply (Unique-ID,
    Channel-Name, Caller-*, every ``variable_*``). Events for the channel (``myevents``) go to
    the listener set with :meth:`set_listener`; those that arrive before it are buffered.
    """

    def __init__(
        self, command_timeout: float, on_made: Callable[[ESLOutboundSession], None]
    ) -> None:
        """A session for a connection not yet made: :attr:`link` is the protocol to give
        the server; ``on_made(session)`` runs once the connection is up."""
        super().__init__("peer", command_timeout)

        def made(link: _Link) -> None:
            self.where = link.where
            self._log = log.bind(esl_outbound=link.where)
            on_made(self)

        self.link = _Link(
            where="peer",
            on_event=self._session_event,
            on_notice=self._handle_notice,
            on_made=made,
        )
        self._link = self.link
        self.channel_data = ESLEvent.from_pairs(())
        #: The replies to the handshake's ``then`` commands, in order.
        self.setup_replies: list[str] = []
        self._buffer: list[ESLEvent] | None = []
        self._closed_callbacks: list[Callable[[str], None]] = []
        #: The Content-Disposition of the last disconnect notice (``linger``, ``disconnect``).
        self.notice = ""
        self._noticed = asyncio.Event()
        self._log = log.bind(esl_outbound="peer")
        self.link.done.add_done_callback(self._on_link_done)

    @property
    def uuid(self) -> str:
        """The controlled channel's Unique-ID."""
        return self.channel_data.unique_id or ""

    @property
    def ended(self) -> bool:
        """True once the socket has closed."""
        return self._link is None or self._link.lost.is_set()

    def set_listener(self, listener: EventListener) -> None:
        """Deliver this session's events to ``listener``, the buffered ones first."""
        buffered, self._buffer = self._buffer or [], None
        self._listeners.append(listener)
        for event in buffered:
            self._handle_event(event)

    def on_closed(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when the socket closes (at once if it already has)."""
        link = self._link
        if link is None or (link.lost.is_set() and link.done.done()):
            callback(link.reason if link is not None else "closed")
        else:
            self._closed_callbacks.append(callback)

    async def wait_disconnect_notice(self) -> None:
        """Return once FreeSWITCH said the channel is done (a ``linger`` or ``disconnect``
        notice, sent after the hangup events) or the socket closed."""
        link = self._link
        if link is None:
            return
        waiters = [
            asyncio.ensure_future(self._noticed.wait()),
            asyncio.ensure_future(link.lost.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def handshake(
        self, *, linger: int | None, timeout: float, then: Sequence[str] = ()
    ) -> None:
        """``connect`` (read the channel data), then ``myevents``, ``linger [N]`` and the
        commands ``then`` in one write; ``then``'s replies land in :attr:`setup_replies`."""
        msg = await self._request(encode_command("connect"), "connect", timeout)
        event = msg.event if msg.is_connect_reply else None
        if event is None or not event.unique_id:
            raise PBXConnectionError(f"{self.where} did not answer connect with channel data")
        self.channel_data = event
        # Linger keeps the socket open after hangup so the hangup events still reach us.
        lingering = [] if linger is None else [f"linger {linger}" if linger else "linger"]
        replies = await self.commands(["myevents", *lingering, *then], timeout=timeout)
        if not replies[0].startswith("+OK"):
            raise PBXConnectionError(f"{self.where} refused myevents: {replies[0]}")
        if lingering and not replies[1].startswith("+OK"):
            self._log.warning("esl_linger_refused", reply=replies[1])
        self.setup_replies = replies[1 + len(lingering) :]

    async def close(self) -> None:
        """Say ``exit`` if the channel is still up (the dialplan continues after ``socket``),
        then close the socket."""
        link = self._link
        if link is None:
            return
        try:
            if not link.lost.is_set() and self.notice == "":
                with contextlib.suppress(Exception):
                    await link.request(
                        encode_command("exit"), "exit", min(self.command_timeout, 1.0)
                    )
        finally:
            await link.close()
            self._fail_jobs("session closed")

    def _session_event(self, event: ESLEvent) -> None:
        buffer = self._buffer
        if buffer is not None:
            if event.name == "BACKGROUND_JOB":
                self._handle_event(event)
            elif len(buffer) < _MAX_BUFFERED_EVENTS:
                buffer.append(event)
            return
        self._handle_event(event)

    def _handle_notice(self, msg: ESLMessage) -> None:
        self.notice = msg.get("Content-Disposition", "disconnect")
        self._noticed.set()
        self._log.debug("esl_outbound_notice", disposition=self.notice)

    def _on_link_done(self, _done: asyncio.Future[None]) -> None:
        link = self._link
        reason = link.reason if link is not None else "closed"
        self._fail_jobs(reason)
        for callback in self._closed_callbacks:
            try:
                callback(reason)
            except Exception:
                self._log.exception("esl_outbound_closed_callback_failed")
        self._closed_callbacks.clear()


class ESLOutboundServer:
    """Listens for FreeSWITCH's outbound sockets; runs ``handler(session)`` per connection.

    When the handler returns, the session is closed (``exit``): a channel that is still up
    continues its dialplan after the ``socket`` application.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: OutboundHandler,
        *,
        command_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        linger: int | None = 10,
        setup: Sequence[str] = (),
    ) -> None:
        """``setup``: commands every session sends with its ``myevents`` (subscriptions,
        ``nixevent``...); their replies are the session's ``setup_replies``."""
        self.host = host
        self._port = port
        self._handler = handler
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.linger = linger
        self.setup = tuple(setup)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (the configured one until started)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        """Bind and listen; raises ``ListenError`` if the address is unusable."""
        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(self._new_session, self.host, self._port)
        except OSError as exc:
            raise ListenError(
                f"cannot listen for FreeSWITCH outbound sockets on {self.host}:{self._port}: "
                f"{_reason(exc)}"
            ) from None
        log.info("esl_outbound_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening and close every session (each call's hand-back says how its
        channel goes on: ``FreeSwitchCall.hand_back``)."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        await cancel_and_wait(*list(self._tasks))

    def _new_session(self) -> _Link:
        return ESLOutboundSession(self.command_timeout, self._start_session).link

    def _start_session(self, session: ESLOutboundSession) -> None:
        # The session runs in its own task so that stop() can cancel it.
        task = asyncio.create_task(self._run_session(session), name="esl-outbound")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_session(self, session: ESLOutboundSession) -> None:
        try:
            try:
                await session.handshake(
                    linger=self.linger, timeout=self.connect_timeout, then=self.setup
                )
            except (PBXConnectionError, PBXTimeoutError) as exc:
                log.warning("esl_outbound_handshake_failed", peer=session.where, reason=str(exc))
                return
            try:
                await self._handler(session)
            except Exception:
                log.exception("esl_outbound_handler_failed", uuid=session.uuid)
        finally:
            await session.close()
