"""AGI sessions: one caller channel under our control, over FastAGI or AsyncAGI.

Both transports give the same small surface, :class:`AGISession`: the channel's environment,
``await command(line, timeout=...)`` returning an :class:`~callcenter.protocols.agi.AGIResult`,
and hang-up tracking. The codec (:mod:`callcenter.protocols.agi`) does the parsing.

* :class:`FastAGIServer` listens for ``AGI(agi://host:port/script?...)`` connections. Each
  connection is a :class:`FastAGISession`: it sends one command at a time and waits for its
  result (a second command would abort the running one on Asterisk's side), skips ``HANGUP``
  notices while waiting but records them, and treats ``511`` as a dead channel. The channel
  is only torn down when we close the socket, so the server closes it as soon as the
  session's task ends; the dialplan then continues at the next priority.
* :class:`AsyncAGIRouter` turns ``AsyncAGIStart`` events of an AMI connection into
  :class:`AsyncAGISession` objects (``AGI(agi:async)`` in the dialplan). Commands go out as
  ``Action: AGI`` with our ``CommandID``; the result comes back in the ``AsyncAGIExec`` event
  (header spelled ``CommandId``). ``AsyncAGIEnd``, the channel's ``Hangup``, a ``BridgeEnter``
  at another dialplan position (the ``Bridge`` action sends no AsyncAGIEnd) or a ``Newexten``
  end the session, and every pending command fails at once with ``CallHungUp`` (Asterisk
  silently drops queued commands). A lost AMI link fails nothing by itself: a command
  running at the PBX (a ``Dial``, a ``ConfBridge``, music) runs on, and its
  ``AsyncAGIExec`` comes once the link is back. The resync after the reconnect tells
  (:meth:`AsyncAGIRouter.resume`): a channel gone has hung up (``CallHungUp``); one still
  in the command's application goes on waiting; one back in ``AGI`` may have finished its
  command meanwhile, or still run it (a prompt, a wait for keys and a recording run inside
  AGI): a ``NOOP`` queued behind it tells (its answer comes after the command's own, when
  that was still running). One that ended unseen, an application, a prompt or a wait for
  keys, gets the answer of one that ran
  to its end with no key pressed (:data:`ENDED_UNSEEN`), a read is sent again
  (:data:`SEND_AGAIN`), and the call goes on (a recording is kept as one that ran to its
  limit, as long as the link was down at most); a command whose answer matters
  and cannot be asked again (a hang-up that did not happen) is lost
  (``CommandResultLost``: the session is forgotten, for the driver to adopt the channel
  anew).

Command timeouts raise ``PBXTimeoutError``; a command on a closed or ended session raises
``CallHungUp``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, cast

import structlog

from callcenter.errors import (
    AGIProtocolError,
    CallHungUp,
    CommandFailed,
    CommandResultLost,
    ListenError,
    PBXConnectionError,
    PBXError,
    PBXTimeoutError,
)
from callcenter.pbx.asterisk.ami import AMIConnection
from callcenter.pbx.link import reply_within, set_nodelay
from callcenter.protocols.agi import (
    MAX_COMMAND_BYTES,
    AGIEnvironment,
    AGIHangup,
    AGIResult,
    FastAGIParser,
    format_command,
    parse_result,
)
from callcenter.protocols.ami import AMIMessage, decode_agi_field
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

#: Seconds a new FastAGI connection may take to send its environment block (Asterisk sends
#: it within ~1 ms of connecting).
ENV_TIMEOUT = 5.0
#: AGI responses for a dead channel.
DEAD_CHANNEL = 511

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class AGISession(Protocol):
    """One AGI session: a caller channel that accepts AGI commands."""

    @property
    def env(self) -> AGIEnvironment:
        """The ``agi_*`` environment Asterisk sent when the session started."""
        ...

    @property
    def hung_up(self) -> bool:
        """True once the channel hung up (a ``HANGUP`` notice, ``511``, a Hangup event)."""
        ...

    @property
    def ended(self) -> bool:
        """True once no more commands can be sent (closed, hung up on AsyncAGI, left AGI)."""
        ...

    @property
    def busy(self) -> bool:
        """True while a command runs: the next one waits for its end (a room, a dial)."""
        ...

    @property
    def hangup_event(self) -> asyncio.Event:
        """Set when the channel hangs up."""
        ...

    async def wait_hangup(self) -> None:
        """Return once the channel has hung up."""
        ...

    def on_hangup(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the channel hangs up (at once if it has already)."""
        ...

    async def command(self, line: str, *, timeout: float | None) -> AGIResult:
        """Run one command line (no newline) and return its result.

        Raises ``CallHungUp`` on a dead channel (``511``) or an ended session, and
        ``PBXTimeoutError`` when no result comes within ``timeout`` seconds.
        """
        ...

    async def close(self) -> None:
        """End the session; Asterisk's dialplan continues (FastAGI: at the next priority)."""
        ...


SessionHandler = Callable[["FastAGISession"], Awaitable[None]]
AsyncSessionHandler = Callable[["AsyncAGISession"], Awaitable[None]]


def _check_line(line: str) -> bytes:
    if "\n" in line or "\r" in line or "\0" in line:
        raise CommandFailed(f"AGI command contains CR/LF/NUL: {line[:80]!r}")
    data = (line + "\n").encode("utf-8")
    if len(data) > MAX_COMMAND_BYTES + 1:
        raise CommandFailed(f"AGI command longer than {MAX_COMMAND_BYTES} bytes")
    return data


def _reparse(result: AGIResult, line: str) -> AGIResult:
    # The parser cannot know which command a line answers; GET VARIABLE values may contain
    # ") key=value", which only the command settles.
    return result.for_command(line) if result.value is not None else result


# --------------------------------------------------------------------------------------------
# FastAGI


class FastAGISession:
    """One FastAGI connection from Asterisk (see the module docstring)."""

    def __init__(self, server: FastAGIServer, transport: asyncio.Transport) -> None:
        self._server = server
        self._transport = transport
        self._parser = FastAGIParser()
        self._env: AGIEnvironment | None = None
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[AGIResult] | None = None
        self._hangup = asyncio.Event()
        self._hangup_callbacks: list[Callable[[], None]] = []
        self._closed = False
        self._closed_by_peer = False
        self._hangup_notices = 0
        # A command whose caller was cancelled may still answer (or, aborted by our next
        # command, never answer): the next command first re-synchronises with an echo.
        self._desynced = False
        self._sync_ids = itertools.count(1)
        self._stale: collections.deque[AGIResult] = collections.deque(maxlen=64)
        self._log = log.bind(peer=_peer(transport))
        self._sock = _tuned_socket(transport)

    # -- AGISession -----------------------------------------------------------------------

    @property
    def env(self) -> AGIEnvironment:
        if self._env is None:
            raise AGIProtocolError("the AGI environment has not arrived yet")
        return self._env

    @property
    def hung_up(self) -> bool:
        return self._hangup.is_set()

    @property
    def ended(self) -> bool:
        return self._closed

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def hangup_event(self) -> asyncio.Event:
        return self._hangup

    @property
    def hangup_notices(self) -> int:
        """How many ``HANGUP`` notices Asterisk sent on this connection."""
        return self._hangup_notices

    async def wait_hangup(self) -> None:
        await self._hangup.wait()

    def on_hangup(self, callback: Callable[[], None]) -> None:
        if self._hangup.is_set():
            callback()
        else:
            self._hangup_callbacks.append(callback)

    async def command(self, line: str, *, timeout: float | None) -> AGIResult:
        data = _check_line(line)
        if self._closed:
            raise CallHungUp(f"AGI session of {self._channel()} is closed ({line})")
        async with self._lock:
            if self._desynced:
                await self._resync(timeout)
            result = await self._roundtrip(data, line, timeout)
        if result.code == DEAD_CHANNEL:
            self._mark_hung_up("511")
            raise CallHungUp(f"{self._channel()} is dead ({line})")
        return _reparse(result, line)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()
        self._drop_socket()
        self._fail_pending(CallHungUp(f"AGI session of {self._channel()} closed"))

    # -- internals --------------------------------------------------------------------------

    def _channel(self) -> str:
        return self._env.channel if self._env is not None else "(unknown channel)"

    async def _roundtrip(self, data: bytes, line: str, limit: float | None) -> AGIResult:
        if self._closed:
            raise CallHungUp(f"AGI session of {self._channel()} is closed ({line})")
        future: asyncio.Future[AGIResult] = asyncio.get_running_loop().create_future()
        self._pending = future
        self._transport.write(data)
        try:
            return await reply_within(future, limit)
        except TimeoutError:
            self._desynced = True
            self._log.warning("agi_command_timeout", command=line[:80], timeout=limit)
            raise PBXTimeoutError(
                f"AGI command {line[:80]!r} on {self._channel()} got no result in {limit}s"
            ) from None
        except asyncio.CancelledError:
            self._desynced = True
            raise
        finally:
            if self._pending is future:
                self._pending = None

    async def _resync(self, limit: float | None) -> None:
        """Discard results until an echo of a unique token comes back.

        Any command sent while another runs aborts it (STREAM FILE/GET DATA then send no
        result, WAIT FOR DIGIT a spurious one), so after a cancelled or timed-out command
        the next result line cannot be trusted. ``GET FULL VARIABLE "<token>"`` answers
        ``200 result=1 (<token>)``, which marks where our stream is in step again.
        """
        token = f"ccsync{next(self._sync_ids)}"
        line = format_command("GET FULL VARIABLE", token)
        self._log.debug("agi_resync", token=token)
        if self._closed:
            raise CallHungUp(f"AGI session of {self._channel()} is closed ({line})")
        self._transport.write(_check_line(line))
        try:
            async with asyncio.timeout(limit):
                while True:
                    result = await self._next_result()
                    if result.code == DEAD_CHANNEL or result.value == token:
                        self._desynced = False
                        return
                    self._log.debug("agi_stale_result_dropped", text=result.text[:80])
        except TimeoutError:
            raise PBXTimeoutError(
                f"AGI session of {self._channel()} did not resynchronise in {limit}s"
            ) from None

    async def _next_result(self) -> AGIResult:
        if self._stale:
            return self._stale.popleft()
        if self._closed:
            raise CallHungUp(f"AGI session of {self._channel()} is closed")
        future: asyncio.Future[AGIResult] = asyncio.get_running_loop().create_future()
        self._pending = future
        try:
            return await future
        finally:
            if self._pending is future:
                self._pending = None

    def _mark_hung_up(self, why: str) -> None:
        if not self._hangup.is_set():
            self._log.info("agi_channel_hung_up", channel=self._channel(), why=why)
            self._hangup.set()
            _run_callbacks(self._hangup_callbacks)

    def _fail_pending(self, exc: BaseException) -> None:
        future = self._pending
        if future is not None and not future.done():
            future.set_exception(exc)

    def _quickack(self) -> None:
        # Asterisk writes every line with its own write() and no TCP_NODELAY: re-arming
        # QUICKACK after each read stops the ~40 ms Nagle/delayed-ACK stall between a result
        # and a HANGUP notice or inside 520 blocks.
        sock = self._sock
        if sock is not None and _TCP_QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # called by _FastAGIProtocol
    def _data_received(self, data: bytes) -> None:
        self._quickack()
        try:
            items = self._parser.feed(data)
        except AGIProtocolError as exc:
            self._log.warning("agi_protocol_error", error=str(exc))
            self._closed = True
            self._transport.abort()
            return
        for item in items:
            if isinstance(item, AGIResult):
                future = self._pending
                if future is not None and not future.done():
                    future.set_result(item)
                elif self._desynced:
                    self._stale.append(item)  # a late answer: the resync discards it
                else:
                    self._log.debug("agi_unsolicited_result", text=item.text[:80])
            elif isinstance(item, AGIHangup):
                self._hangup_notices += 1
                self._mark_hung_up("HANGUP notice")
            elif self._env is None:
                self._env = item
                self._log = self._log.bind(channel=item.channel, uniqueid=item.uniqueid)
                self._server._session_ready(self)
            else:
                self._log.warning("agi_second_environment_ignored")

    def _connection_lost(self) -> None:
        was_closed = self._closed
        self._closed = True
        self._drop_socket()
        if not was_closed:
            self._closed_by_peer = True
            if self._env is not None:
                self._mark_hung_up("connection closed by Asterisk")
        self._fail_pending(CallHungUp(f"AGI connection of {self._channel()} closed"))


class _FastAGIProtocol(asyncio.Protocol):
    def __init__(self, server: FastAGIServer) -> None:
        self._server = server
        self._session: FastAGISession | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport subclass (uvloop's).
        transport = cast(asyncio.Transport, transport)
        self._session = FastAGISession(self._server, transport)
        self._server._connection_made(self._session)

    def data_received(self, data: bytes) -> None:
        if self._session is not None:
            self._session._data_received(data)

    def eof_received(self) -> bool | None:
        return False  # close our side too: Asterisk only sends FIN when the AGI is over

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session is not None:
            self._session._connection_lost()
            self._server._connection_lost(self._session)


class FastAGIServer:
    """A FastAGI listener; ``on_session(session)`` runs in its own task per connection.

    The session is closed as soon as ``on_session`` returns (or fails), which ends ``AGI()``
    on Asterisk's side. A connection that sends no environment block within
    ``env_timeout`` seconds is dropped.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4573,
        on_session: SessionHandler | None = None,
        *,
        env_timeout: float = ENV_TIMEOUT,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._on_session = on_session
        self._env_timeout = env_timeout
        self._server: asyncio.Server | None = None
        self._sessions: set[FastAGISession] = set()
        self._tasks: dict[FastAGISession, asyncio.Task[None]] = {}
        self._env_timers: dict[FastAGISession, asyncio.TimerHandle] = {}

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def sessions(self) -> int:
        """Open connections."""
        return len(self._sessions)

    async def start(self) -> None:
        """Start listening; raises ``PBXConnectionError`` when the address cannot be bound."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _FastAGIProtocol(self), self.host, self._requested_port, reuse_address=True
            )
        except OSError as exc:
            raise ListenError(
                f"cannot listen for FastAGI on {self.host}:{self._requested_port}: {exc}"
            ) from None
        log.info("fastagi_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening, end running sessions' tasks and close their connections."""
        if self._server is not None:
            self._server.close()
        for timer in self._env_timers.values():
            timer.cancel()
        self._env_timers.clear()
        tasks = list(self._tasks.values())
        await cancel_and_wait(*tasks)
        for session in list(self._sessions):
            await session.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            self._server = None

    # -- called by sessions -----------------------------------------------------------------

    def _connection_made(self, session: FastAGISession) -> None:
        self._sessions.add(session)
        loop = asyncio.get_running_loop()
        self._env_timers[session] = loop.call_later(self._env_timeout, self._env_timed_out, session)

    def _env_timed_out(self, session: FastAGISession) -> None:
        self._env_timers.pop(session, None)
        log.warning("fastagi_no_environment", timeout=self._env_timeout)
        session._transport.abort()

    def _session_ready(self, session: FastAGISession) -> None:
        timer = self._env_timers.pop(session, None)
        if timer is not None:
            timer.cancel()
        if self._on_session is None:
            log.warning("fastagi_no_handler", channel=session.env.channel)
            asyncio.get_running_loop().create_task(session.close())
            return
        self._tasks[session] = asyncio.create_task(
            self._run(session, self._on_session), name=f"fastagi-{session.env.uniqueid}"
        )

    def _connection_lost(self, session: FastAGISession) -> None:
        self._sessions.discard(session)
        timer = self._env_timers.pop(session, None)
        if timer is not None:
            timer.cancel()

    async def _run(self, session: FastAGISession, handler: SessionHandler) -> None:
        try:
            await handler(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fastagi_session_failed", channel=session.env.channel)
        finally:
            self._tasks.pop(session, None)
            await session.close()


def _tuned_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """Turn Nagle off on the connection; return a socket of our own (a dup of its descriptor)
    to re-arm TCP_QUICKACK on after every read, or None where there is no QUICKACK.

    uvloop's transport hands out a PseudoSocket whose every setsockopt builds a socket object
    and asks the kernel for its address first: three times the cost of a setsockopt on a
    descriptor we keep, and a FastAGI call re-arms QUICKACK on every read."""
    sock = transport.get_extra_info("socket") if _TCP_QUICKACK is not None else None
    own: socket.socket | None = None
    if sock is not None:
        with contextlib.suppress(OSError):
            fd = os.dup(sock.fileno())
            try:
                own = socket.socket(sock.family, sock.type, sock.proto, fileno=fd)
            except OSError:
                os.close(fd)
                raise
    if own is None:
        set_nodelay(transport)
        return None
    with contextlib.suppress(OSError):
        own.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return own


def _run_callbacks(callbacks: list[Callable[[], None]]) -> None:
    pending = list(callbacks)
    callbacks.clear()
    for callback in pending:
        try:
            callback()
        except Exception:
            log.exception("agi_hangup_callback_failed")


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


# --------------------------------------------------------------------------------------------
# AsyncAGI


class AsyncAGISession:
    """An ``AGI(agi:async)`` session driven through AMI (see the module docstring)."""

    def __init__(
        self,
        router: AsyncAGIRouter,
        env: AGIEnvironment,
        channel: str,
        *,
        uniqueid: str,
        linkedid: str = "",
        position: tuple[str, str, str] = ("", "", ""),
    ) -> None:
        self._router = router
        self._env = env
        self.channel = channel
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        #: (Context, Exten, Priority) of the AGI() call: the channel left AGI when an event
        #: shows it elsewhere.
        self.position = position
        self._pending: dict[str, asyncio.Future[AGIResult]] = {}
        self._lines: dict[str, str] = {}
        """Each pending command's line, by command id."""
        self._sent: dict[str, float] = {}
        """When each pending command was sent (the loop's clock), by command id."""
        self._probe: asyncio.Future[None] | None = None
        """The NOOP sent after a resync to tell a command still running from one ended."""
        self._unseen: collections.OrderedDict[str, str] = collections.OrderedDict()
        """Lines of the latest commands the resync took for ended (:data:`ENDED_UNSEEN`),
        by command id: a result that comes for one after all says the guess was early."""
        self._hangup = asyncio.Event()
        self._hangup_callbacks: list[Callable[[], None]] = []
        self._ended = False
        self._end_reason = ""
        self._held = ""
        """Why the AMI link dropped under pending commands, until the resync tells their
        fate (empty: nothing held)."""
        self._log = log.bind(channel=channel, uniqueid=uniqueid)

    @property
    def env(self) -> AGIEnvironment:
        return self._env

    @property
    def hung_up(self) -> bool:
        return self._hangup.is_set()

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    @property
    def end_reason(self) -> str:
        return self._end_reason

    @property
    def hangup_event(self) -> asyncio.Event:
        return self._hangup

    async def wait_hangup(self) -> None:
        await self._hangup.wait()

    def on_hangup(self, callback: Callable[[], None]) -> None:
        if self._hangup.is_set():
            callback()
        else:
            self._hangup_callbacks.append(callback)

    async def command(self, line: str, *, timeout: float | None) -> AGIResult:
        _check_line(line)
        while True:
            try:
                return await self._command_once(line, timeout)
            except _SendAgain:
                # A read whose answer went with the AMI link: asking again is harmless.
                self._log.info("asyncagi_command_sent_again", command=line[:80])

    async def _command_once(self, line: str, timeout: float | None) -> AGIResult:
        if self._ended:
            raise CallHungUp(f"AGI session of {self.channel} ended ({self._end_reason})")
        command_id = self._router._next_command_id()
        future: asyncio.Future[AGIResult] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        self._lines[command_id] = line
        self._sent[command_id] = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(timeout):
                response = await self._router.ami.send_action(
                    "AGI",
                    [("Channel", self.channel), ("Command", line), ("CommandID", command_id)],
                    check=False,
                    retry_on_reconnect=False,
                )
                if (response.name or "").lower() == "error":
                    message = response.get("Message", "") or ""
                    if "does not exist" in message.lower():
                        self.end("channel does not exist", hung_up=True)
                        raise CallHungUp(f"{self.channel} does not exist ({line})")
                    raise CommandFailed(f"AGI {line[:80]!r} refused: {message}")
                result = await future
        except TimeoutError:
            self._log.warning("agi_command_timeout", command=line[:80], timeout=timeout)
            raise PBXTimeoutError(
                f"AGI command {line[:80]!r} on {self.channel} got no result in {timeout}s"
            ) from None
        finally:
            self._pending.pop(command_id, None)
            self._lines.pop(command_id, None)
            self._sent.pop(command_id, None)
            if future.done() and not future.cancelled():
                # Failed by end() or resume() while the action was still being sent,
                # which raised first: retrieved, or asyncio logs it as never retrieved.
                future.exception()
        if result.code == DEAD_CHANNEL:
            self._mark_hung_up("511")
            raise CallHungUp(f"{self.channel} is dead ({line})")
        return _reparse(result, line)

    async def close(self) -> None:
        """Send ``ASYNCAGI BREAK`` if the session is still alive, then forget the session."""
        if not self._ended:
            self.end("closed by us", hung_up=False)
            with contextlib.suppress(PBXError):
                await self._router.ami.send_action(
                    "AGI",
                    [
                        ("Channel", self.channel),
                        ("Command", "ASYNCAGI BREAK"),
                        ("CommandID", self._router._next_command_id()),
                    ],
                    check=False,
                    retry_on_reconnect=False,
                )
        self._router._forget(self)

    def end(self, reason: str, *, hung_up: bool) -> None:
        """The session is over: fail every pending command with ``CallHungUp``."""
        if hung_up:
            self._mark_hung_up(reason)
        if self._ended:
            return
        self._ended = True
        self._end_reason = reason
        self._log.info("asyncagi_session_ended", reason=reason)
        error = CallHungUp(f"AGI session of {self.channel} ended ({reason})")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    def link_lost(self, reason: str) -> None:
        """The AMI link dropped. The commands pending wait for :meth:`resume`: they may still
        run at the PBX, whose result comes once the link is back."""
        if self._pending and not self._ended:
            self._held = reason

    @property
    def held(self) -> bool:
        """Were commands pending when the link dropped, their fate not known yet?"""
        return bool(self._held)

    def resume(self, application: str | None) -> None:
        """The link is back and the PBX says what the channel runs now (``application`` of
        its ``CoreShowChannel``; None: the channel is gone). Settles the held commands that
        ended unseen (see the module docstring); the others go on waiting for their
        ``AsyncAGIExec``."""
        reason, self._held = self._held, ""
        if not reason or self._ended or not self._pending:
            return
        if application is None:
            self.end("gone while the AMI link was down", hung_up=True)
        elif application.upper() == "AGI" and all(
            _ended_unseen(line) or line.upper().startswith(SEND_AGAIN)
            for line in self._lines.values()
        ):
            held = list(self._pending)
            if any(self._lines[c].upper().startswith(RUN_INSIDE_AGI) for c in held):
                # A prompt, a wait for keys or a recording runs inside AGI: still running,
                # or ended during the outage? A NOOP queued behind it answers once it has
                # ended, after its own result if it was still running.
                self._probe = asyncio.ensure_future(self._settle_after_probe(held, reason))
            else:
                self._settle_unseen(held, reason)
        elif application.upper() == "AGI":
            # One whose answer matters and cannot be asked again (a hang-up asked that did
            # not happen): lost.
            self._log.info("asyncagi_result_lost", reason=reason)
            self._ended = True
            self._end_reason = "result lost with the AMI link"
            error = CommandResultLost(
                f"AMI link lost while an AGI command ran on {self.channel}; it ended meanwhile"
                f" and its result is lost ({reason})"
            )
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            # Forgotten now, not when the call's task ends: the resync that called us adopts
            # the channel (it waits in AGI for anyone's commands) once it has no session.
            self._router._forget(self)
        else:
            self._log.info("asyncagi_command_kept_across_link_loss", application=application)

    async def _settle_after_probe(self, held: list[str], reason: str) -> None:
        try:
            await self.command("NOOP", timeout=PROBE_WAIT)
        except CallHungUp:
            return
        except PBXError as exc:
            if self._held:
                return  # the link dropped again: the next resync settles them
            self._log.info("asyncagi_probe_failed", error=str(exc))
        self._settle_unseen(held, reason)

    def _settle_unseen(self, held: list[str], reason: str) -> None:
        """Settle the commands ``held`` still pending as ended during the outage (see
        :data:`ENDED_UNSEEN`); reads are sent again."""
        now = asyncio.get_running_loop().time()
        settled = False
        for command_id in held:
            future = self._pending.get(command_id)
            if future is None or future.done():
                continue
            if not settled:
                settled = True
                self._log.info("asyncagi_commands_ended_unseen", reason=reason)
            line = self._lines[command_id]
            answer = _ended_unseen(line)
            if "{endpos}" in answer:
                ran = _recorded_at_most(line, now - self._sent[command_id])
                answer = answer.format(endpos=int(ran * RECORD_SAMPLE_RATE))
                self._log.info("asyncagi_recording_ended_unseen", seconds=round(ran, 3))
            if answer:
                self._unseen[command_id] = line
                while len(self._unseen) > UNSEEN_KEPT:
                    self._unseen.popitem(last=False)
                future.set_result(parse_result(answer))
            else:
                future.set_exception(_SendAgain(reason))

    def _mark_hung_up(self, why: str) -> None:
        if not self._hangup.is_set():
            self._log.info("agi_channel_hung_up", why=why)
            self._hangup.set()
            _run_callbacks(self._hangup_callbacks)

    def _result(self, command_id: str, text: str) -> None:
        future = self._pending.get(command_id)
        if future is None or future.done():
            line = self._unseen.pop(command_id, None)
            if line is not None:
                # Still running inside AGI at the resync (a prompt, a wait for keys, a
                # recording: Asterisk shows them all as the AGI application): its real
                # answer, a key pressed in it, came after the call went on without it.
                self._log.info(
                    "asyncagi_result_after_resync",
                    command=" ".join(line.split()[:2]),
                    result=text.strip(),
                )
                return
            self._log.debug("asyncagi_unmatched_result", command_id=command_id)
            return
        try:
            future.set_result(parse_result(text))
        except AGIProtocolError as exc:
            future.set_exception(exc)


class AsyncAGIRouter:
    """Routes AMI events to AsyncAGI sessions and starts ``on_session`` for each new one.

    ``on_session(session)`` runs in its own task; the session is closed (``ASYNCAGI BREAK``
    if still alive) when it returns. Register with :meth:`attach` before connecting.
    """

    def __init__(
        self,
        ami: AMIConnection,
        on_session: AsyncSessionHandler | None = None,
        *,
        command_id_prefix: str = "ccagi",
    ) -> None:
        self.ami = ami
        self._on_session = on_session
        self._prefix = command_id_prefix
        self._ids = itertools.count(1)
        self._by_channel: dict[str, AsyncAGISession] = {}
        self._tasks: dict[AsyncAGISession, asyncio.Task[None]] = {}
        self._stopping = False
        self._attached = False

    @property
    def sessions(self) -> dict[str, AsyncAGISession]:
        """Live sessions by channel name (a copy)."""
        return dict(self._by_channel)

    def attach(self) -> None:
        """Subscribe to the AMI events that drive AsyncAGI sessions."""
        if self._attached:
            return
        self._attached = True
        for name, handler in (
            ("AsyncAGIStart", self._on_start),
            ("AsyncAGIExec", self._on_exec),
            ("AsyncAGIEnd", self._on_end),
            ("Hangup", self._on_hangup),
            ("BridgeEnter", self._on_bridge_enter),
            ("Newexten", self._on_newexten),
        ):
            self.ami.add_event_handler(name, handler)
        self.ami.on_disconnected(self._on_link_lost)

    async def stop(self) -> None:
        """Cancel the sessions' tasks (their sessions get closed); sessions that start from
        now on are closed at once (the dialplan goes on after ``AGI()``)."""
        self._stopping = True
        await cancel_and_wait(*self._tasks.values())
        # A task cancelled before it ran never reached the finally that forgets it.
        self._tasks.clear()

    def session_for(self, channel: str) -> AsyncAGISession | None:
        return self._by_channel.get(channel)

    def _next_command_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def _forget(self, session: AsyncAGISession) -> None:
        if self._by_channel.get(session.channel) is session:
            del self._by_channel[session.channel]

    # -- AMI event handlers ------------------------------------------------------------------

    def _on_start(self, msg: AMIMessage) -> None:
        channel = msg.get("Channel") or ""
        try:
            env = AGIEnvironment.parse(decode_agi_field(msg.get("Env") or ""))
        except AGIProtocolError as exc:
            log.warning("asyncagi_bad_environment", channel=channel, error=str(exc))
            return
        channel = channel or env.channel
        old = self._by_channel.get(channel)
        if old is not None:
            old.end("a new AsyncAGI session started", hung_up=False)
        self._start(msg, env, channel)

    def waiting_unseen(self, item: AMIMessage) -> bool:
        """True when ``item`` (a ``CoreShowChannel`` event) is a channel waiting in
        ``AGI(agi:async...)`` that has no session here."""
        data = item.get("ApplicationData") or ""
        return (
            (item.get("Application") or "").upper() == "AGI"
            and data.split(",", 1)[0].strip().lower() == "agi:async"
            and bool(item.get("Channel"))
            and (item.get("Channel") or "") not in self._by_channel
        )

    def adopt(self, item: AMIMessage) -> bool:
        """Start a session for a channel found waiting in ``AGI(agi:async...)`` whose
        ``AsyncAGIStart`` never reached us (it came while the AMI link was down, or to a
        daemon process that is gone). Asterisk waits for commands from anyone, in silence:
        without this the caller would wait until they hang up. The environment is rebuilt
        from the ``CoreShowChannel`` item. False when it is not such a channel."""
        if not self.waiting_unseen(item):
            return False
        channel = item.get("Channel") or ""
        args = tuple((item.get("ApplicationData") or "").split(",")[1:])
        env = AGIEnvironment(
            {
                "agi_request": "async",
                "agi_channel": channel,
                "agi_language": item.get("Language") or "en",
                "agi_type": channel.partition("/")[0],
                "agi_uniqueid": item.get("Uniqueid") or "",
                "agi_callerid": _or_unknown(item.get("CallerIDNum")),
                "agi_calleridname": _or_unknown(item.get("CallerIDName")),
                "agi_dnid": "unknown",
                "agi_context": item.get("Context") or "",
                "agi_extension": item.get("Exten") or "",
                "agi_priority": item.get("Priority") or "",
                "agi_accountcode": item.get("AccountCode") or "",
            },
            args=args,
        )
        log.info("asyncagi_channel_adopted", channel=channel, uniqueid=env.uniqueid)
        self._start(item, env, channel)
        return True

    def _start(self, msg: AMIMessage, env: AGIEnvironment, channel: str) -> None:
        session = AsyncAGISession(
            self,
            env,
            channel,
            uniqueid=msg.get("Uniqueid") or env.uniqueid,
            linkedid=msg.get("Linkedid") or "",
            position=_position(msg),
        )
        self._by_channel[channel] = session
        log.info("asyncagi_session_started", channel=channel, uniqueid=session.uniqueid)
        if self._on_session is None or self._stopping:
            asyncio.get_running_loop().create_task(session.close())
            return
        self._tasks[session] = asyncio.create_task(
            self._run(session, self._on_session), name=f"asyncagi-{session.uniqueid}"
        )

    async def _run(self, session: AsyncAGISession, handler: AsyncSessionHandler) -> None:
        try:
            await handler(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("asyncagi_session_failed", channel=session.channel)
        finally:
            self._tasks.pop(session, None)
            await session.close()

    def _on_exec(self, msg: AMIMessage) -> None:
        session = self._by_channel.get(msg.get("Channel") or "")
        command_id = msg.get("CommandId")  # "CommandId" here, "CommandID" in the action
        if session is None or command_id is None:
            return
        session._result(command_id, decode_agi_field(msg.get("Result") or ""))

    def _on_end(self, msg: AMIMessage) -> None:
        session = self._by_channel.get(msg.get("Channel") or "")
        if session is not None:
            session.end("AsyncAGIEnd", hung_up=False)

    def _on_hangup(self, msg: AMIMessage) -> None:
        session = self._by_channel.get(msg.get("Channel") or "")
        if session is not None:
            session.end("channel hung up", hung_up=True)

    def _on_bridge_enter(self, msg: AMIMessage) -> None:
        session = self._by_channel.get(msg.get("Channel") or "")
        # A Dial run by EXEC bridges the channel at the AGI's own position; the Bridge action
        # pulls it out of AGI to the next priority and sends no AsyncAGIEnd.
        if session is not None and not session.ended and _position(msg) != session.position:
            session.end("bridged outside AGI", hung_up=False)

    def _on_newexten(self, msg: AMIMessage) -> None:
        session = self._by_channel.get(msg.get("Channel") or "")
        if session is not None and not session.ended:
            session.end("dialplan moved on", hung_up=False)

    def _on_link_lost(self, reason: str) -> None:
        for session in self._by_channel.values():
            session.link_lost(reason)

    def resume(self, items: list[AMIMessage]) -> None:
        """After a reconnect, with the PBX's ``CoreShowChannel`` items: settle the commands
        each session had pending when the link dropped (see :meth:`AsyncAGISession.resume`).
        Call before looking for channels to :meth:`adopt`."""
        running = {item.get("Channel") or "": item.get("Application") or "" for item in items}
        for channel, session in list(self._by_channel.items()):
            if session.held:
                session.resume(running.get(channel))


ENDED_UNSEEN: Final = (
    ("NOOP", "200 result=0"),
    ("EXEC ", "200 result=0"),
    ("STREAM FILE ", "200 result=0 endpos=0"),
    ("CONTROL STREAM FILE ", "200 result=0 endpos=0"),
    ("GET DATA ", "200 result= (timeout)"),
    ("WAIT FOR DIGIT ", "200 result=0"),
    ("SAY ", "200 result=0"),
    ("ANSWER", "200 result=0"),
    ("SET VARIABLE ", "200 result=1"),
    ("RECORD FILE ", "200 result=0 (timeout) endpos={endpos}"),
)
"""What a command that ended during an AMI outage is taken to have answered, when its
channel is back at the AGI prompt alive: it ran to its end and no key was pressed (keys
pressed meanwhile are lost: the caller hears a menu's "no input" and is asked again). An
application's return says nothing more of a live channel (Dial returns -1 after an
answered call too: the driver reads the dial's variables). A recording ran to its time
or silence limit, and is taken to have recorded until the link was back (within its
limit; ``endpos`` in samples of :data:`RECORD_SAMPLE_RATE`): the message is kept, its
length maybe overstated, rather than a message taken for empty and lost. Reads are asked
again (:data:`SEND_AGAIN`)."""

PROBE_WAIT: Final = 150.0
"""Seconds the NOOP sent after a resync may take: queued behind a command still running
(a wait for keys, a recording of up to two minutes) it answers when that one ends (at
once when it ended during the outage); past this the commands are taken for ended
anyway."""

UNSEEN_KEPT: Final = 8
"""Commands taken for ended at a resync remembered per session, for their late results."""

RECORD_SAMPLE_RATE: Final = 8000
"""Samples a second in the ``endpos`` of STREAM FILE and RECORD FILE (8 kHz formats)."""


RUN_INSIDE_AGI: Final = (
    "STREAM FILE ",
    "CONTROL STREAM FILE ",
    "GET DATA ",
    "WAIT FOR DIGIT ",
    "SAY ",
    "RECORD FILE ",
)
"""Commands that run inside the AGI application (the channel's list shows ``AGI`` while
they run, as once they have ended): a resync cannot tell them finished without asking
(an application run by ``EXEC`` shows as itself)."""

SEND_AGAIN: Final = ("GET VARIABLE ", "GET FULL VARIABLE ", "CHANNEL STATUS")
"""Commands that only read, sent again when they ended during an AMI outage (their answer
is lost, asking again is harmless)."""


class _SendAgain(PBXConnectionError):
    """A held read's answer went with the AMI link: :meth:`AsyncAGISession.command` sends it
    again (never raised to its callers)."""


def _recorded_at_most(line: str, elapsed: float) -> float:
    """The longest RECORD FILE ``line`` can have recorded in ``elapsed`` seconds: its
    timeout (ms, its fourth argument) caps it."""
    words = line.split()
    limit = int(words[5]) / 1000 if len(words) > 5 and words[5].isdigit() else elapsed
    return max(0.0, min(elapsed, limit))


def _ended_unseen(line: str) -> str:
    """The answer :data:`ENDED_UNSEEN` gives command ``line`` ("" for none)."""
    upper = line.upper()
    return next((answer for verb, answer in ENDED_UNSEEN if upper.startswith(verb)), "")


def _or_unknown(value: str | None) -> str:
    """AMI says ``<unknown>`` where the AGI environment says ``unknown``."""
    return value if value and value != "<unknown>" else "unknown"


def _position(msg: AMIMessage) -> tuple[str, str, str]:
    return (msg.get("Context") or "", msg.get("Exten") or "", msg.get("Priority") or "")
