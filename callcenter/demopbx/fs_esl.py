"""The event socket of the demo FreeSWITCH: one :class:`ESLSession` per TCP connection.

Inbound mode (the daemon connects to ``esl_port``): ``auth/request``, ``auth``, then commands.
Outbound mode (the ``socket`` application connects to the daemon): no auth; ``connect`` gets
the CHANNEL_DATA reply and ``sendmsg`` without a uuid drives the socket's own channel.

Replies and notices are byte-for-byte what FreeSWITCH 1.10 sends (``shared/traces/freeswitch``
a, g, h, o), built with :mod:`callcenter.protocols.esl`. Like mod_event_socket, events fired
while a command runs reach this connection only after the command's reply (``api originate``
holds them until it returns).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid as uuidlib
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import escape

import structlog

from callcenter.demopbx.fs_channels import FSChannel, FSEvent, QueuedApp, cause_name
from callcenter.errors import ESLProtocolError
from callcenter.protocols.esl import (
    MYEVENTS,
    ESLCommand,
    ESLCommandParser,
    encode_api_response,
    encode_auth_request,
    encode_connect_reply,
    encode_disconnect_notice,
    encode_event_json,
    encode_event_plain,
    encode_reply,
    fs_url_encode,
)

if TYPE_CHECKING:
    from callcenter.demopbx.freeswitch import DemoFreeSwitch

log = structlog.get_logger(__name__)

EventFormat = Literal["plain", "json", "xml"]

#: Every event name FreeSWITCH 1.10 knows (``EVENT_NAMES`` in switch_event.c).
KNOWN_EVENTS: frozenset[str] = frozenset(
    [
        "CUSTOM",
        "CLONE",
        "CHANNEL_CREATE",
        "CHANNEL_DESTROY",
        "CHANNEL_STATE",
        "CHANNEL_CALLSTATE",
        "CHANNEL_ANSWER",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HOLD",
        "CHANNEL_UNHOLD",
        "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_OUTGOING",
        "CHANNEL_PARK",
        "CHANNEL_UNPARK",
        "CHANNEL_APPLICATION",
        "CHANNEL_ORIGINATE",
        "CHANNEL_UUID",
        "API",
        "LOG",
        "INBOUND_CHAN",
        "OUTBOUND_CHAN",
        "STARTUP",
        "SHUTDOWN",
        "PUBLISH",
        "UNPUBLISH",
        "TALK",
        "NOTALK",
        "SESSION_CRASH",
        "MODULE_LOAD",
        "MODULE_UNLOAD",
        "DTMF",
        "MESSAGE",
        "PRESENCE_IN",
        "NOTIFY_IN",
        "PRESENCE_OUT",
        "PRESENCE_PROBE",
        "MESSAGE_WAITING",
        "MESSAGE_QUERY",
        "ROSTER",
        "CODEC",
        "BACKGROUND_JOB",
        "DETECTED_SPEECH",
        "DETECTED_TONE",
        "PRIVATE_COMMAND",
        "HEARTBEAT",
        "TRAP",
        "ADD_SCHEDULE",
        "DEL_SCHEDULE",
        "EXE_SCHEDULE",
        "RE_SCHEDULE",
        "RELOADXML",
        "NOTIFY",
        "PHONE_FEATURE",
        "PHONE_FEATURE_SUBSCRIBE",
        "SEND_MESSAGE",
        "RECV_MESSAGE",
        "REQUEST_PARAMS",
        "CHANNEL_DATA",
        "GENERAL",
        "COMMAND",
        "SESSION_HEARTBEAT",
        "CLIENT_DISCONNECTED",
        "SERVER_DISCONNECTED",
        "SEND_INFO",
        "RECV_INFO",
        "RECV_RTCP_MESSAGE",
        "SEND_RTCP_MESSAGE",
        "CALL_SECURE",
        "NAT",
        "RECORD_START",
        "RECORD_STOP",
        "PLAYBACK_START",
        "PLAYBACK_STOP",
        "CALL_UPDATE",
        "FAILURE",
        "SOCKET_DATA",
        "MEDIA_BUG_START",
        "MEDIA_BUG_STOP",
        "CONFERENCE_DATA_QUERY",
        "CONFERENCE_DATA",
        "CALL_SETUP_REQ",
        "CALL_SETUP_RESULT",
        "CALL_DETAIL",
        "DEVICE_STATE",
        "TEXT",
        "SHUTDOWN_REQUESTED",
        "ALL",
    ]
)

_LOG_LEVELS = {
    "console": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


# --------------------------------------------------------------------------- event wire


def _format(word: str) -> EventFormat | None:
    lower = word.lower()
    if lower == "plain":
        return "plain"
    if lower == "json":
        return "json"
    if lower == "xml":
        return "xml"
    return None


def _encode_event_xml(event: FSEvent) -> bytes:
    lines = ["<event>", "  <headers>"]
    for name, value in event.headers:
        lines.append(f"    <{name}>{escape(fs_url_encode(value))}</{name}>")
    lines.append("  </headers>")
    text = "\n".join(lines) + "\n"
    if event.body:
        size = len(event.body.encode("utf-8"))
        text += (
            f"  <Content-Length>{size}</Content-Length>\n  <body>{escape(event.body)}  </body>\n"
        )
    text += "</event>\n"
    inner = text.encode("utf-8")
    return b"Content-Length: %d\nContent-Type: text/event-xml\n\n" % len(inner) + inner


def encode_event(event: FSEvent, fmt: EventFormat) -> bytes:
    """The event as a ``text/event-plain|json|xml`` message (cached on the event)."""
    cached = event.wire.get(fmt)
    if cached is None:
        if fmt == "json":
            cached = encode_event_json(event.headers, event.body)
        elif fmt == "xml":
            cached = _encode_event_xml(event)
        else:
            cached = encode_event_plain(event.headers, event.body)
        event.wire[fmt] = cached
    return cached


def plain_dump(headers: list[tuple[str, str]]) -> str:
    """Headers serialised as in a plain event body (``uuid_dump``)."""
    wire = encode_event_plain(headers)
    return wire.split(b"\n\n", 1)[1].decode("utf-8")


# --------------------------------------------------------------------------- session


class ESLSession:
    """One ESL connection; ``channel`` is set for an outbound-socket connection."""

    def __init__(
        self,
        pbx: DemoFreeSwitch,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        channel: FSChannel | None = None,
    ) -> None:
        self.pbx = pbx
        self.reader = reader
        self.writer = writer
        self.channel = channel
        self.outbound = channel is not None
        self.authed = self.outbound
        self.format: EventFormat | None = None
        self.all_events = False
        self.events: set[str] = set()
        self.excluded: set[str] = set()
        self.subclasses: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.my_uuid: str | None = None
        self.linger: float | None = None
        self.resume = False
        self.closed = False
        self._detached = False
        self._held: list[bytes] | None = None
        self._close_pending = False
        self._parser = ESLCommandParser()
        self._log = log.bind(esl="outbound" if self.outbound else "inbound")

    # ------------------------------------------------------------------ I/O

    async def run(self) -> None:
        """Serve the connection until it closes."""
        try:
            if not self.outbound:
                self._write(encode_auth_request())
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    commands = self._parser.feed(data)
                except ESLProtocolError as exc:
                    self._log.warning("demofs_esl_garbled", error=str(exc))
                    break
                for command in commands:
                    await self._handle(command)
                    if self.closed:
                        break
                if not self.closed:
                    await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._close()

    def _write(self, data: bytes) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(data)

    def _send(self, data: bytes) -> None:
        """Write now, or after the running command's reply."""
        if self._held is not None:
            self._held.append(data)
        else:
            self._write(data)

    def _finish(self) -> None:
        """Close once everything queued so far is written."""
        if self._held is not None:
            self._close_pending = True
        else:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.writer.is_closing():
            self.writer.close()
        self.pbx.session_closed(self)
        if self.channel is not None:
            self.channel.notify()

    def abort(self) -> None:
        """Drop the connection abruptly (no notice), as a crashed switch would."""
        self.writer.transport.abort()
        self._close()

    # ------------------------------------------------------------------ events

    def deliver(self, event: FSEvent) -> None:
        """Send ``event`` if this connection subscribed to it and its filters let it pass;
        then run the outbound socket's hang-up handling (linger / disconnect notices)."""
        if self.closed or self._detached:
            return
        if self.format is not None and self._wants(event) and self._passes_filters(event):
            self._send(encode_event(event, self.format))
        channel = self.channel
        if channel is None or event.unique_id != channel.uuid:
            return
        if event.name == "CHANNEL_HANGUP" and self.linger is None:
            self._detached = True
            self._send(self._disconnect_notice())
            self._finish()
        elif event.name == "CHANNEL_HANGUP_COMPLETE" and self.linger is not None:
            self._detached = True
            self._send(
                encode_disconnect_notice(
                    "",
                    [
                        ("Controlled-Session-UUID", channel.uuid),
                        ("Content-Disposition", "linger"),
                        ("Channel-Name", channel.name),
                        ("Linger-Time", f"{self.linger:g}"),
                    ],
                )
            )
            self.pbx.spawn(self._linger_then_close(self.linger), "esl-linger")

    async def _linger_then_close(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._send(self._disconnect_notice())
        self._finish()

    def _disconnect_notice(self) -> bytes:
        if self.channel is None:
            return encode_disconnect_notice()
        return encode_disconnect_notice(
            extra_headers=[
                ("Controlled-Session-UUID", self.channel.uuid),
                ("Content-Disposition", "disconnect"),
            ]
        )

    def _wants(self, event: FSEvent) -> bool:
        name = event.name
        if self.my_uuid is not None and event.unique_id != self.my_uuid:
            return False
        if name in self.excluded:
            return False
        if self.all_events:
            return True
        if name == "CUSTOM":
            return (event.get("Event-Subclass") or "") in self.subclasses
        return name in self.events

    def _passes_filters(self, event: FSEvent) -> bool:
        if not self.filters:
            return True
        send = False
        for header, wanted in self.filters:
            value = next((v for k, v in event.headers if k.lower() == header.lower()), None)
            if value is None:
                continue
            positive = True
            comp = wanted
            while comp and comp[0] in "+- ":
                if comp[0] != " ":
                    positive = comp[0] == "+"
                comp = comp[1:]
            if send and positive:
                continue
            if comp.startswith("/"):
                try:
                    matched = re.search(comp.strip("/"), value) is not None
                except re.error:
                    matched = False
            else:
                matched = value.lower() == comp.lower()
            if matched:
                if not positive:
                    return False
                send = True
        return send

    # ------------------------------------------------------------------ commands

    async def _handle(self, command: ESLCommand) -> None:
        self._held = []
        try:
            reply = await self._dispatch(command)
        except Exception:
            self._log.exception("demofs_esl_command_failed", command=command.line[:80])
            reply = encode_reply("-ERR internal error")
        held, self._held = self._held, None
        if reply:
            self._write(reply)
        for data in held:
            self._write(data)
        if self._close_pending:
            self._close()

    async def _dispatch(self, command: ESLCommand) -> bytes:
        name, args = command.name, command.args.strip()
        if not self.authed:
            if name != "auth":
                return encode_reply("-ERR command not found")
            if args == self.pbx.password:
                self.authed = True
                self._log.info("demofs_esl_authenticated")
                return encode_reply("+OK accepted")
            self._log.info("demofs_esl_auth_failed")
            self._send(encode_disconnect_notice())
            self._finish()
            return encode_reply("-ERR invalid")
        handler = _COMMANDS.get(name)
        if handler is None:
            return encode_reply("-ERR command not found")
        return await handler(self, command, args)

    async def _cmd_auth(self, command: ESLCommand, args: str) -> bytes:
        return encode_reply("+OK accepted" if args == self.pbx.password else "-ERR invalid")

    async def _cmd_event(self, command: ESLCommand, args: str) -> bytes:
        fmt: EventFormat = "plain"
        added = False
        custom = False
        for word in args.split():
            # Words that are neither a format nor an event are skipped: "event bogusformat
            # ALL" enables plain ALL (trace g).
            as_format = _format(word)
            if as_format is not None:
                fmt = as_format
                continue
            upper = word.upper().removeprefix("SWITCH_EVENT_")
            if upper == "ALL":
                self.all_events = True
                self.excluded.clear()
                added = True
            elif upper == "CUSTOM":
                custom = True
                added = True
            elif upper in KNOWN_EVENTS:
                self.events.add(upper)
                self.excluded.discard(upper)
                added = True
            elif custom:
                self.subclasses.add(word)
                added = True
        if not added:
            return encode_reply("-ERR no keywords supplied")
        self.format = fmt
        return encode_reply(f"+OK event listener enabled {fmt}")

    async def _cmd_nixevent(self, command: ESLCommand, args: str) -> bytes:
        for word in args.split():
            upper = word.upper().removeprefix("SWITCH_EVENT_")
            if upper == "ALL":
                self.all_events = False
                self.events.clear()
                self.subclasses.clear()
            elif upper in KNOWN_EVENTS:
                self.events.discard(upper)
                if self.all_events:
                    self.excluded.add(upper)
            else:
                self.subclasses.discard(word)
        return encode_reply("+OK events nixed")

    async def _cmd_noevents(self, command: ESLCommand, args: str) -> bytes:
        self.format = None
        self.all_events = False
        self.events.clear()
        self.excluded.clear()
        self.subclasses.clear()
        self.my_uuid = None
        return encode_reply("+OK no longer listening for events")

    async def _cmd_myevents(self, command: ESLCommand, args: str) -> bytes:
        fmt: EventFormat = self.format or "plain"
        target = self.channel.uuid if self.channel is not None else None
        for word in args.split():
            as_format = _format(word)
            if as_format is not None:
                fmt = as_format
            else:
                target = word
        if target is None:
            return encode_reply("-ERR not controlling a session")
        # Not validated against live channels, as in trace g.
        self.my_uuid = target
        # Entries of the event list, as mod_event_socket sets them: nixevent clears them.
        self.events |= MYEVENTS
        self.format = fmt
        return encode_reply("+OK Events Enabled")

    async def _cmd_filter(self, command: ESLCommand, args: str) -> bytes:
        words = args.split(None, 1)
        if words and words[0].lower() == "delete":
            rest = words[1].split(None, 1) if len(words) > 1 else []
            if not rest:
                return encode_reply("-ERR invalid syntax")
            header = rest[0]
            value = rest[1] if len(rest) > 1 else None
            if header.lower() == "all":
                self.filters.clear()
                return encode_reply("+OK filter deleted. [all]")
            self.filters = [
                (h, v)
                for h, v in self.filters
                if not (h.lower() == header.lower() and (value is None or v == value))
            ]
            return encode_reply(f"+OK filter deleted. [{header}][{value or ''}]")
        if len(words) < 2:
            return encode_reply("-ERR invalid syntax")
        header, value = words[0], words[1].strip()
        self.filters.append((header, value))
        return encode_reply(f"+OK filter added. [{header}]=[{value}]")

    async def _cmd_divert_events(self, command: ESLCommand, args: str) -> bytes:
        on = args.lower() in ("on", "true", "yes")
        return encode_reply("+OK events diverted" if on else "+OK events not diverted")

    async def _cmd_linger(self, command: ESLCommand, args: str) -> bytes:
        if self.channel is None:
            return encode_reply("-ERR not controlling a session")
        if args:
            try:
                seconds = float(args.split(maxsplit=1)[0])
            except ValueError:
                return encode_reply("-ERR invalid linger time")
            self.linger = seconds
            return encode_reply(f"+OK will linger {seconds:g} seconds")
        self.linger = 600.0
        return encode_reply("+OK will linger")

    async def _cmd_nolinger(self, command: ESLCommand, args: str) -> bytes:
        if self.channel is None:
            return encode_reply("-ERR not controlling a session")
        self.linger = None
        return encode_reply("+OK will not linger")

    async def _cmd_resume(self, command: ESLCommand, args: str) -> bytes:
        if self.channel is None:
            return encode_reply("-ERR not controlling a session")
        self.resume = True
        return encode_reply("+OK")

    async def _cmd_log(self, command: ESLCommand, args: str) -> bytes:
        level = (args.split() or ["debug"])[0].lower()
        number = _LOG_LEVELS.get(level, 7) if not level.isdigit() else int(level)
        name = next((k for k, v in _LOG_LEVELS.items() if v == number), "debug")
        return encode_reply(f"+OK log level {name} [{number}]")

    async def _cmd_nolog(self, command: ESLCommand, args: str) -> bytes:
        return encode_reply("+OK no longer logging")

    async def _cmd_exit(self, command: ESLCommand, args: str) -> bytes:
        self._send(self._disconnect_notice())
        self._finish()
        return encode_reply("+OK bye")

    async def _cmd_connect(self, command: ESLCommand, args: str) -> bytes:
        channel = self.channel
        if channel is None:
            return encode_reply("-ERR command not found")
        data = [
            *channel.hub.common("CHANNEL_DATA"),
            *channel.profile_headers("Channel-"),
            *channel.channel_headers(),
            *channel.variable_headers(),
        ]
        return encode_connect_reply(data)

    async def _cmd_api(self, command: ESLCommand, args: str) -> bytes:
        cmd, _, cmd_args = args.partition(" ")
        body = await self.pbx.api(cmd, cmd_args.strip())
        return encode_api_response(body)

    async def _cmd_bgapi(self, command: ESLCommand, args: str) -> bytes:
        job_uuid = command.get("Job-UUID") or str(uuidlib.uuid4())
        cmd, _, cmd_args = args.partition(" ")
        self.pbx.spawn(self.pbx.background_job(job_uuid, cmd, cmd_args.strip()), "bgapi")
        return encode_reply(f"+OK Job-UUID: {job_uuid}", [("Job-UUID", job_uuid)])

    async def _cmd_sendmsg(self, command: ESLCommand, args: str) -> bytes:
        target = args.split(maxsplit=1)[0] if args else ""
        if not target and self.channel is not None:
            target = self.channel.uuid
        channel = self.pbx.channels.get(target)
        if channel is None or channel.destroyed:
            return encode_reply(f"-ERR invalid session id [{target}]")
        call_command = (command.get("call-command") or "").lower()
        if call_command == "execute":
            app = command.get("execute-app-name") or ""
            arg = command.get("execute-app-arg") or ""
            if command.body and (command.get("content-type") or "").lower() == "text/plain":
                arg = command.body_text.rstrip("\r\n")
            try:
                loops = int(command.get("loops") or "1")
            except ValueError:
                loops = 1
            cut = self.pbx.cut_at
            if cut is not None and cut[0] == app and not self.outbound:
                self.pbx.cut_at = None
                if cut[1]:
                    channel.queue_app(QueuedApp(app, arg, command.get("Event-UUID"), loops))
                self._log.info("demofs_esl_cut_before_reply", app=app, runs=cut[1])
                self.abort()
                return b""
            if app:
                channel.queue_app(QueuedApp(app, arg, command.get("Event-UUID"), loops))
            else:
                self._log.warning("demofs_sendmsg_without_app", uuid=target)
        elif call_command == "hangup":
            cause = cause_name(command.get("hangup-cause") or "") or "NORMAL_CLEARING"
            # Its CHANNEL_HANGUP reaches this connection after the reply (held by _handle).
            channel.hangup(cause)
        else:
            self._log.info("demofs_sendmsg_ignored", call_command=call_command, uuid=target)
        return encode_reply("+OK")

    async def _cmd_sendevent(self, command: ESLCommand, args: str) -> bytes:
        name = (args.split() or ["CUSTOM"])[0].upper()
        event_uuid = str(uuidlib.uuid4())
        leading = [(k, v) for k, v in command.headers if k == "Event-Subclass"]
        leading.append(("Command", command.line))
        leading += [(k, v) for k, v in command.headers if k != "Event-Subclass"]
        leading.append(("Event-UUID", event_uuid))
        body = command.body_text if command.body else None
        self.pbx.hub.fire(name, (), body, leading=leading)
        if name == "MESSAGE_WAITING":
            self.pbx.message_waiting(dict(command.headers))
        elif name == "PRESENCE_IN":
            headers = dict(command.headers)
            if headers.get("from") and headers.get("answer-state"):
                self.pbx.presence[headers["from"]] = headers["answer-state"]
        return encode_reply(f"+OK {event_uuid}")


_COMMANDS = {
    "api": ESLSession._cmd_api,
    "auth": ESLSession._cmd_auth,
    "bgapi": ESLSession._cmd_bgapi,
    "connect": ESLSession._cmd_connect,
    "divert_events": ESLSession._cmd_divert_events,
    "event": ESLSession._cmd_event,
    "exit": ESLSession._cmd_exit,
    "filter": ESLSession._cmd_filter,
    "linger": ESLSession._cmd_linger,
    "log": ESLSession._cmd_log,
    "myevents": ESLSession._cmd_myevents,
    "nixevent": ESLSession._cmd_nixevent,
    "noevents": ESLSession._cmd_noevents,
    "nolinger": ESLSession._cmd_nolinger,
    "nolog": ESLSession._cmd_nolog,
    "resume": ESLSession._cmd_resume,
    "sendevent": ESLSession._cmd_sendevent,
    "sendmsg": ESLSession._cmd_sendmsg,
}


def json_rows(rows: list[dict[str, str]]) -> str:
    """``show ... as json``: ``{"row_count": 0}\\n`` when empty, else FreeSWITCH's compact
    ``{"row_count":N,"rows":[...]}`` (no final newline)."""
    if not rows:
        return '{"row_count": 0}\n'
    return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
