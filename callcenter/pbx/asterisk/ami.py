"""The AMI connection: one logged-in TCP link to Asterisk's manager interface, kept alive.

:class:`AMIConnection` wraps the sans-I/O codec (:mod:`callcenter.protocols.ami`) in asyncio:

* :meth:`AMIConnection.connect` opens the first connection and logs in. A wrong secret raises
  :class:`~callcenter.errors.AuthenticationError` (naming the user and host, never the
  secret); an unreachable PBX raises :class:`~callcenter.errors.PBXConnectionError`.
* After that a background task keeps the link up: a ``Ping`` every ``keepalive_interval``
  seconds, and a missing ``Pong`` within ``action_timeout`` counts as a dead peer. A lost
  link is re-opened with exponential backoff plus jitter and logged in again; the
  ``on_connected`` callbacks run after every login (the driver resynchronises there) and the
  ``on_disconnected`` callbacks run when the link is lost.
* :meth:`AMIConnection.send_action` correlates responses by our own ``ActionID``. Only
  idempotent reads (Ping, Status, CoreShowChannels...) are resent after a reconnect; an
  action such as ``Originate``, ``Redirect``, ``Hangup`` or ``AGI`` that was pending when the
  link dropped fails with ``PBXConnectionError`` and is never sent twice.
* Events go to listeners (:meth:`add_listener`) and to per-event-name handlers
  (:meth:`add_event_handler`), called synchronously as the bytes arrive (protocol callbacks).
* With ``filter_events=True`` and no catch-all listener, every login is followed by one
  ``Filter`` action (the legacy regex form, Asterisk >= 10) asking Asterisk to send only the
  events that have a handler: half of a call's ``call``-class events (CEL, NewConnectedLine,
  BridgeCreate, DialState, MusicOnHold...) are never written, read or parsed. Asterisk refuses
  it without the ``system`` write class: the refusal is logged once per login and every event
  still arrives, so filtering saves work and never loses events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import structlog

from callcenter.errors import (
    ActionFailed,
    AMIProtocolError,
    AuthenticationError,
    PBXConnectionError,
    PBXTimeoutError,
)
from callcenter.pbx.link import ProtocolLink
from callcenter.pbx.reconnect import backoff
from callcenter.protocols.ami import (
    AMIBanner,
    AMIMessage,
    AMIParser,
    encode_action,
    is_list_complete,
    is_list_start,
)
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

EventListener = Callable[[AMIMessage], None]
ConnectedCallback = Callable[[], Awaitable[None]]
DisconnectedCallback = Callable[[str], None]
Fields = Mapping[str, str] | Iterable[tuple[str, str]]

#: Actions that only read state: resending them after a reconnect is harmless.
IDEMPOTENT_ACTIONS: Final = frozenset(
    name.lower()
    for name in (
        "Ping",
        "Status",
        "CoreShowChannels",
        "CoreStatus",
        "CoreSettings",
        "Getvar",
        "QueueStatus",
        "QueueSummary",
        "ListCommands",
        "DeviceStateList",
        "ExtensionState",
        "ExtensionStateList",
        "BridgeList",
        "BridgeInfo",
        "PJSIPShowEndpoints",
        "PJSIPShowEndpoint",
        "PJSIPShowContacts",
        "Agents",
        "MailboxCount",
        "MailboxStatus",
        "ShowDialPlan",
    )
)
#: Actions that change something: never resent, even when the caller asks for it.
NON_IDEMPOTENT_ACTIONS: Final = frozenset(
    name.lower()
    for name in (
        "Originate",
        "Redirect",
        "Hangup",
        "AGI",
        "BlindTransfer",
        "Atxfer",
        "Bridge",
        "Setvar",
        "PlayDTMF",
        "SendText",
        "QueueAdd",
        "QueueRemove",
        "QueuePause",
        "QueueLog",
        "UserEvent",
        "MuteAudio",
        "MixMonitor",
        "StopMixMonitor",
        "Command",
        "Login",
        "Logoff",
    )
)

_LIST_ITEMS_CAP: Final = 1_000_000


class _LinkLost(Exception):
    """Internal: the link carrying a pending action went down (maybe retried)."""


@dataclass(slots=True, eq=False)
class _Pending:
    """One action waiting for its response (and, for a list action, its events)."""

    future: asyncio.Future[tuple[AMIMessage, list[AMIMessage]]]
    is_list: bool
    response: AMIMessage | None = None
    items: list[AMIMessage] = field(default_factory=list)


class _Link(ProtocolLink):
    """One TCP connection (a new one after every reconnect), read from protocol callbacks.

    Bytes go straight from ``data_received`` through the codec to the connection's dispatch:
    no reader task to wake per chunk (Asterisk writes every event on its own).
    """

    def __init__(self, conn: AMIConnection, serial: int) -> None:
        super().__init__()
        self.conn = conn
        self.serial = serial
        self.parser = AMIParser(expect_banner=True)
        self.lost = asyncio.Event()
        self.reason = ""
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[AMIBanner] = loop.create_future()
        # Lost before anyone awaited the banner: nothing to report, nothing to warn about.
        self.banner.add_done_callback(lambda f: f.cancelled() or f.exception())

    def data_received(self, data: bytes) -> None:
        try:
            items = self.parser.feed(data)
        except AMIProtocolError as exc:
            self.conn._drop(self, _reason(exc))
            return
        for item in items:
            if isinstance(item, AMIMessage):
                self.conn._dispatch(item)
            elif not self.banner.done():
                self.banner.set_result(item)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._drop(self, _reason(exc) if exc is not None else "connection closed by the PBX")
        self.wake_writer()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.lost.is_set():
            raise _LinkLost(self.reason or "not connected")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AMIConnection:
    """A self-healing AMI client connection (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        events: str = "call,agi,dtmf",
        connect_timeout: float = 5.0,
        action_timeout: float = 5.0,
        keepalive_interval: float = 10.0,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        use_md5: bool = False,
        action_id_prefix: str = "cc",
        filter_events: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.events = events
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self.keepalive_interval = keepalive_interval
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self.use_md5 = use_md5
        self.filter_events = filter_events
        self._prefix = action_id_prefix
        self._ids = itertools.count(1)
        self._link: _Link | None = None
        self._link_serial = 0
        self._pending: dict[str, _Pending] = {}
        #: List actions waiting for their events: only then can an event carry our ActionID.
        self._open_lists = 0
        self._listeners: list[EventListener] = []
        self._handlers: dict[str, list[EventListener]] = {}
        #: Handled event names as given (Asterisk's filter regex is case-sensitive).
        self._handled_names: dict[str, str] = {}
        self._on_connected: list[ConnectedCallback] = []
        self._on_disconnected: list[DisconnectedCallback] = []
        self._connected = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._log = log.bind(host=host, port=port, user=username)

    # -- public API ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a logged-in link is up."""
        return self._connected.is_set()

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event (as it arrives; must not block)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        self._listeners.remove(listener)

    def add_event_handler(self, event: str, handler: EventListener) -> None:
        """Call ``handler(event)`` only for events named ``event`` (any case)."""
        self._handlers.setdefault(event.lower(), []).append(handler)
        self._handled_names.setdefault(event.lower(), event)

    def remove_event_handler(self, event: str, handler: EventListener) -> None:
        self._handlers.get(event.lower(), []).remove(handler)

    def on_connected(self, callback: ConnectedCallback) -> None:
        """Run ``await callback()`` after every successful login (the first one included)."""
        self._on_connected.append(callback)

    def on_disconnected(self, callback: DisconnectedCallback) -> None:
        """Call ``callback(reason)`` whenever a logged-in link is lost."""
        self._on_disconnected.append(callback)

    async def connect(self) -> None:
        """Open the first connection, log in and start the keep-alive/reconnect task.

        Raises ``AuthenticationError`` for refused credentials and ``PBXConnectionError`` when
        the PBX cannot be reached (or answers with something that is not AMI).
        """
        if self._supervisor is not None:
            return
        self._closing = False
        link = await self._open_and_login()
        self._supervisor = asyncio.create_task(self._supervise(link), name="ami-supervisor")

    async def run_forever(self) -> None:
        """Connect if needed, then return only when :meth:`close` is called."""
        await self.connect()
        if self._supervisor is not None:
            current = asyncio.current_task()
            before = current.cancelling() if current is not None else 0
            try:
                await asyncio.shield(self._supervisor)
            except asyncio.CancelledError:
                # close() cancelled the supervisor: return. Our own caller cancelled us:
                # go on cancelling.
                if current is not None and current.cancelling() > before:
                    raise

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until a logged-in link is up; ``PBXTimeoutError`` after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            raise PBXTimeoutError(f"AMI at {self.where} not connected within {within}s") from None

    async def close(self) -> None:
        """Log off (best effort), close the link and stop reconnecting."""
        self._closing = True
        link = self._link
        if link is not None and self.connected:
            with contextlib.suppress(Exception):
                await self._request(
                    link, "Logoff", (), limit=min(self.action_timeout, 1.0), is_list=False
                )
        if link is not None:
            self._drop(link, "closed by us")
        if self._supervisor is not None:
            await cancel_and_wait(self._supervisor)
            self._supervisor = None
        await cancel_and_wait(*list(self._side_tasks))
        self._fail_pending(PBXConnectionError(f"AMI connection to {self.where} closed"))

    async def send_action(
        self,
        action: str,
        fields: Fields = (),
        *,
        timeout: float | None = None,
        check: bool = True,
        retry_on_reconnect: bool | None = None,
    ) -> AMIMessage:
        """Send ``action`` and return its response.

        ``check=True`` turns ``Response: Error`` into ``ActionFailed`` (the response is on
        ``.response``). ``timeout`` (default ``action_timeout``) -> ``PBXTimeoutError``.
        A lost link -> ``PBXConnectionError``, except for idempotent reads, which wait for the
        reconnect and are sent again. ``retry_on_reconnect=None`` decides from the action's
        name; ``True`` allows a resend for an unlisted action, but actions that change
        something (``Originate``, ``Hangup``, ``AGI``...) are never resent.
        """
        response, _ = await self._call(action, fields, timeout, retry_on_reconnect, False)
        if check and (response.name or "").lower() == "error":
            raise ActionFailed(
                f"AMI {action} failed: {response.get('Message', '(no message)')}", response
            )
        return response

    async def send_list_action(
        self,
        action: str,
        fields: Fields = (),
        *,
        timeout: float | None = None,
        retry_on_reconnect: bool | None = None,
    ) -> tuple[AMIMessage, list[AMIMessage]]:
        """Send a list action (``CoreShowChannels``, ``QueueStatus``...) and collect its events.

        Returns the response and the events carrying our ActionID up to (not including) the
        one with ``EventList: Complete``. ``Response: Error`` raises ``ActionFailed``.
        """
        response, items = await self._call(action, fields, timeout, retry_on_reconnect, True)
        if (response.name or "").lower() == "error":
            raise ActionFailed(
                f"AMI {action} failed: {response.get('Message', '(no message)')}", response
            )
        return response, items

    # -- requests -------------------------------------------------------------------------

    def _may_retry(self, action: str, retry_on_reconnect: bool | None) -> bool:
        name = action.lower()
        if retry_on_reconnect is False or name in NON_IDEMPOTENT_ACTIONS:
            return False
        return retry_on_reconnect is True or name in IDEMPOTENT_ACTIONS

    async def _call(
        self,
        action: str,
        fields: Fields,
        limit: float | None,
        retry_on_reconnect: bool | None,
        is_list: bool,
    ) -> tuple[AMIMessage, list[AMIMessage]]:
        budget = self.action_timeout if limit is None else limit
        retry = self._may_retry(action, retry_on_reconnect)
        fields = list(fields.items() if isinstance(fields, Mapping) else fields)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while True:
            link = self._link if self.connected else None
            if link is None:
                if not retry or self._closing:
                    raise PBXConnectionError(
                        f"AMI link to {self.where} is down ({action} not sent)"
                    )
                await self.wait_connected(max(0.0, deadline - loop.time()))
                continue
            try:
                return await self._request(
                    link, action, fields, limit=max(0.0, deadline - loop.time()), is_list=is_list
                )
            except _LinkLost as exc:
                if not retry or self._closing:
                    raise PBXConnectionError(
                        f"AMI link to {self.where} lost while {action} was pending: {exc}"
                    ) from None
                self._log.info("ami_action_retry_after_reconnect", action=action)

    async def _request(
        self,
        link: _Link,
        action: str,
        fields: Iterable[tuple[str, str]],
        *,
        limit: float,
        is_list: bool,
    ) -> tuple[AMIMessage, list[AMIMessage]]:
        action_id = f"{self._prefix}-{next(self._ids)}"
        data = encode_action(action, action_id, fields)
        future: asyncio.Future[tuple[AMIMessage, list[AMIMessage]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[action_id] = _Pending(future, is_list)
        if is_list:
            self._open_lists += 1
        try:
            link.write(data)
            async with asyncio.timeout(limit):
                await link.drain()
                return await future
        except TimeoutError:
            raise PBXTimeoutError(
                f"AMI {action} got no response from {self.where} within {limit:.1f}s"
            ) from None
        finally:
            self._pending.pop(action_id, None)
            if is_list:
                self._open_lists -= 1

    def _fail_pending(self, exc: BaseException) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()

    # -- connection lifecycle --------------------------------------------------------------

    async def _open_and_login(self) -> _Link:
        self._link_serial += 1
        serial = self._link_serial
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, link = await loop.create_connection(
                    lambda: _Link(self, serial), self.host, self.port
                )
        except (OSError, TimeoutError) as exc:
            self._log.warning("ami_connect_failed", reason=_reason(exc))
            raise PBXConnectionError(f"cannot reach AMI at {self.where}: {_reason(exc)}") from None
        self._log.info("ami_connected")
        try:
            await self._login(link)
        except BaseException:
            self._drop(link, "login did not complete")
            raise
        if not link.lost.is_set():
            self._connected.set()
            # After the link counts as up: events already flowing may need actions at once.
            pattern = self.event_filter()
            if pattern is not None:
                await self._send_filter(link, pattern)
        return link

    async def _login(self, link: _Link) -> None:
        banner = await self._read_banner(link)
        self._link = link
        fields: list[tuple[str, str]] = [("Username", self.username)]
        try:
            if self.use_md5:
                challenge, _ = await self._request(
                    link,
                    "Challenge",
                    [("AuthType", "MD5")],
                    limit=self.action_timeout,
                    is_list=False,
                )
                nonce = challenge.get("Challenge", "") or ""
                key = hashlib.md5((nonce + self._secret).encode("utf-8")).hexdigest()
                fields += [("AuthType", "MD5"), ("Key", key)]
            else:
                fields.append(("Secret", self._secret))
            fields.append(("Events", self.events or "off"))
            response, _ = await self._request(
                link, "Login", fields, limit=self.action_timeout, is_list=False
            )
        except _LinkLost as exc:
            raise PBXConnectionError(
                f"AMI at {self.where} closed the connection during login: {exc}"
            ) from None
        except PBXTimeoutError:
            raise PBXConnectionError(f"AMI at {self.where} did not answer the login") from None
        if (response.name or "").lower() != "success":
            message = response.get("Message", "") or "refused"
            self._log.error("ami_login_failed", message=message)
            raise AuthenticationError(
                f"AMI login as {self.username!r} at {self.where} refused: {message}"
            )
        self._log.info("ami_login_ok", banner=banner.text)

    def event_filter(self) -> str | None:
        """The ``Filter`` regex sent after login, or None when every event is wanted.

        It matches the ``Event:`` line of the handled events (``UserEvent:`` lines excluded,
        a longer name such as ``HangupRequest`` for ``Hangup`` excluded), in POSIX extended
        syntax that Python's ``re`` reads the same way.
        """
        if not self.filter_events or self._listeners or not self._handled_names:
            return None
        names = "|".join(sorted(re.escape(name) for name in self._handled_names.values()))
        return f"(^|[^A-Za-z])Event: ({names})([^A-Za-z]|$)"

    async def _send_filter(self, link: _Link, pattern: str) -> None:
        try:
            response, _ = await self._request(
                link,
                "Filter",
                [("Operation", "Add"), ("Filter", pattern)],
                limit=self.action_timeout,
                is_list=False,
            )
        except (_LinkLost, PBXTimeoutError) as exc:
            self._log.warning("ami_event_filter_failed", reason=_reason(exc))
            return
        if (response.name or "").lower() != "success":
            self._log.warning(
                "ami_event_filter_refused",
                message=response.get("Message", "") or "refused",
                hint="grant the AMI user write=system to let it filter events at the source",
            )

    async def _read_banner(self, link: _Link) -> AMIBanner:
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await link.banner
        except TimeoutError:
            raise PBXConnectionError(f"no AMI banner from {self.where}") from None
        except _LinkLost as exc:
            raise PBXConnectionError(
                f"AMI at {self.where} closed the connection before its banner ({exc})"
            ) from None

    def _drop(self, link: _Link, reason: str) -> None:
        """Mark ``link`` lost (once) and close its socket; pending requests see _LinkLost."""
        if link.lost.is_set():
            return
        link.reason = reason
        link.lost.set()
        if self._link is link:
            self._connected.clear()
        link.close()
        if not link.banner.done():
            link.banner.set_exception(_LinkLost(reason))
        for action_id, pending in list(self._pending.items()):
            if not pending.future.done():
                pending.future.set_exception(_LinkLost(reason))
            self._pending.pop(action_id, None)

    async def _keepalive(self, link: _Link) -> None:
        while not link.lost.is_set():
            await asyncio.sleep(self.keepalive_interval)
            if link.lost.is_set():
                return
            try:
                await self._request(link, "Ping", (), limit=self.action_timeout, is_list=False)
            except PBXTimeoutError:
                self._log.warning("ami_keepalive_timeout", timeout=self.action_timeout)
                self._drop(link, f"no Pong within {self.action_timeout}s")
                return
            except _LinkLost:
                return

    async def _supervise(self, link: _Link) -> None:
        while not self._closing:
            self._spawn(self._run_connected_callbacks())
            keepalive = asyncio.create_task(self._keepalive(link), name="ami-keepalive")
            try:
                await link.lost.wait()
            finally:
                await cancel_and_wait(keepalive)
            self._connected.clear()
            if self._closing:
                return
            self._log.warning("ami_connection_lost", reason=link.reason)
            for callback in list(self._on_disconnected):
                try:
                    callback(link.reason)
                except Exception:
                    self._log.exception("ami_disconnected_callback_failed")
            delays = backoff(self.reconnect_min, self.reconnect_max)
            for attempt, delay in enumerate(delays, 1):
                if self._closing:
                    break
                self._log.info("ami_reconnecting", delay=round(delay, 3), attempt=attempt)
                await asyncio.sleep(delay)
                try:
                    link = await self._open_and_login()
                    break
                except (PBXConnectionError, AuthenticationError) as exc:
                    self._log.warning("ami_reconnect_failed", reason=str(exc))

    async def _run_connected_callbacks(self) -> None:
        for callback in list(self._on_connected):
            try:
                await callback()
            except Exception:
                self._log.exception("ami_connected_callback_failed")

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # -- dispatch -------------------------------------------------------------------------

    def _dispatch(self, msg: AMIMessage) -> None:
        kind = msg.kind
        # Most traffic is plain events: looking their ActionID up would build each one's
        # header index for nothing (benchmarks/ami_ingest.py), so only do it while a list
        # action can be collecting them.
        if kind == "event" and not self._open_lists:
            action_id = None
            pending = None
        else:
            action_id = msg.action_id
            pending = self._pending.get(action_id) if action_id is not None else None
        if kind == "response":
            if pending is None or pending.future.done():
                self._log.debug("ami_unmatched_response", action_id=action_id, name=msg.name)
                return
            if pending.is_list and is_list_start(msg):
                pending.response = msg
            else:
                pending.future.set_result((msg, []))
            return
        if kind != "event":
            self._log.debug("ami_unexpected_message", kind=kind, name=msg.name)
            return
        if pending is not None and pending.is_list and pending.response is not None:
            if pending.future.done():
                return
            if is_list_complete(msg):
                pending.future.set_result((pending.response, pending.items))
            elif len(pending.items) < _LIST_ITEMS_CAP:
                pending.items.append(msg)
            return
        for handler in self._handlers.get(msg.name.lower(), ()):
            try:
                handler(msg)
            except Exception:
                self._log.exception("ami_event_handler_failed", ami_event=msg.name)
        for listener in self._listeners:
            try:
                listener(msg)
            except Exception:
                self._log.exception("ami_event_listener_failed", ami_event=msg.name)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
