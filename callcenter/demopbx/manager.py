"""The demo PBX's AMI server sessions (Asterisk's manager.c, the parts callcenter uses).

One :class:`ManagerSession` per TCP client: banner, ``Login`` (plain ``Secret`` or MD5 via
``Challenge``), event filtering by class (login ``Events:`` and the ``Events`` action) and by
``Filter`` (legacy regex filters, ``!`` to exclude, or ``MatchCriteria: name(...)``), the
actions of :data:`ACTIONS`, ``Permission denied`` before login, ``Invalid/unknown command``
and ``Missing action in request`` errors, and ``ActionID`` echoed right after ``Response``.
Messages are built as header pairs in Asterisk's order and encoded with the shared codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from callcenter.demopbx.channels import CAUSE_TEXT, Channel
from callcenter.errors import AMIProtocolError
from callcenter.protocols.ami import AMIMessage, AMIParser, encode_message

if TYPE_CHECKING:
    from callcenter.demopbx.asterisk import DemoAsterisk

log = structlog.get_logger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

#: Every AMI event class (``Privilege:`` values); ``all`` stands for all of them.
EVENT_CLASSES = frozenset(
    {
        "system",
        "call",
        "log",
        "verbose",
        "command",
        "agent",
        "user",
        "config",
        "dtmf",
        "reporting",
        "cdr",
        "dialplan",
        "originate",
        "agi",
        "cc",
        "aoc",
        "test",
        "security",
        "message",
    }
)

Pairs = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class DemoEvent:
    """One event the PBX published: name, class, headers (after ``Privilege``), wire bytes."""

    name: str
    privilege: str
    headers: tuple[tuple[str, str], ...]
    data: bytes

    def get(self, key: str, default: str | None = None) -> str | None:
        """First header called ``key`` (any case)."""
        lower = key.lower()
        return next((v for k, v in self.headers if k.lower() == lower), default)


def build_event(name: str, privilege: str, headers: Sequence[tuple[str, str]]) -> DemoEvent:
    """An event as Asterisk writes it: ``Event``, ``Privilege: <class>,all``, headers."""
    pairs = [("Event", name), ("Privilege", f"{privilege},all"), *headers]
    return DemoEvent(name, privilege, tuple(headers), encode_message(pairs))


def parse_event_mask(value: str | None) -> frozenset[str]:
    """Login ``Events:`` / ``EventMask:`` -> the classes to send (default: all)."""
    if value is None:
        return EVENT_CLASSES
    text = value.strip().lower()
    if text in ("on", "yes", "true", "all", "-1"):
        return EVENT_CLASSES
    if text in ("off", "no", "false", "0", ""):
        return frozenset()
    words = {w.strip() for w in text.split(",")}
    if "all" in words:
        return EVENT_CLASSES
    return frozenset(words & EVENT_CLASSES)


@dataclass(frozen=True, slots=True)
class _EventFilter:
    """One session filter: a regex over the whole event and/or an event name."""

    regex: re.Pattern[bytes] | None
    name: str | None = None

    @classmethod
    def parse(cls, value: str, criteria: str) -> tuple[_EventFilter, bool]:
        """(filter, exclude?) from the ``Filter`` and ``MatchCriteria`` headers."""
        exclude = False
        name: str | None = None
        if criteria:
            for part in (p.strip() for p in criteria.split(",") if p.strip()):
                key, _, rest = part.partition("(")
                arg = rest.removesuffix(")")
                if key == "action" and arg in ("include", "exclude"):
                    exclude = arg == "exclude"
                elif key == "name" and arg:
                    name = arg
                else:
                    raise ValueError(f"unsupported match criteria {part!r}")
        elif value.startswith("!"):
            exclude, value = True, value[1:]
        try:
            regex = re.compile(value.encode()) if value else None
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        if regex is None and name is None:
            raise ValueError("empty filter")
        return cls(regex, name), exclude

    def matches(self, event: DemoEvent) -> bool:
        if self.name is not None and event.name != self.name:
            return False
        return self.regex is None or self.regex.search(event.data) is not None


def _duration(seconds: float) -> str:
    total = int(seconds)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


Handler = Callable[["ManagerSession", AMIMessage], Awaitable[None]]


class ManagerSession:
    """One AMI client connection."""

    def __init__(
        self, pbx: DemoAsterisk, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.pbx = pbx
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.username = ""
        self.mask: frozenset[str] = frozenset()
        #: Filters added by the Filter action (Asterisk's evaluation order, see deliver()).
        self.include_filters: list[_EventFilter] = []
        self.exclude_filters: list[_EventFilter] = []
        self.session_id = f"0x{random.getrandbits(44):x}"
        self._challenge: str | None = None
        self._closing = False
        self._backlog: list[bytes] = []
        peer = writer.get_extra_info("peername")
        self.remote = f"{peer[0]}/{peer[1]}" if isinstance(peer, tuple) else "unknown"
        self._log = log.bind(ami_client=self.remote)

    # ------------------------------------------------------------------ transport

    def _write(self, data: bytes) -> None:
        if self.pbx.ami_frozen:
            self._backlog.append(data)
            return
        if not self.writer.is_closing():
            self.writer.write(data)

    def flush_backlog(self) -> None:
        """Send what was held back while the AMI was frozen."""
        backlog, self._backlog = self._backlog, []
        for data in backlog:
            self._write(data)

    def send(self, pairs: Pairs) -> None:
        """Write one message."""
        self._write(encode_message(pairs))

    def respond(self, msg: AMIMessage, response: str, *fields: tuple[str, str]) -> None:
        """``Response: <response>`` then ``ActionID`` (when the action had one), then fields."""
        pairs: Pairs = [("Response", response)]
        if msg.action_id is not None:
            pairs.append(("ActionID", msg.action_id))
        pairs.extend(fields)
        self.send(pairs)

    def error(self, msg: AMIMessage, message: str) -> None:
        """``Response: Error`` with ``Message``."""
        self.respond(msg, "Error", ("Message", message))

    def deliver(self, event: DemoEvent) -> None:
        """Send a broadcast event if this session is logged in, wants its class and its
        filters let it through."""
        if self.authenticated and event.privilege in self.mask and self._passes(event):
            self._write(event.data)

    def _passes(self, event: DemoEvent) -> bool:
        # manager.c: no filters -> everything; includes only -> one must match; excludes
        # only -> none may match; both -> one include matches and no exclude does.
        if self.include_filters and not any(f.matches(event) for f in self.include_filters):
            return False
        return not any(f.matches(event) for f in self.exclude_filters)

    def abort(self) -> None:
        """Drop the connection at once (no goodbye)."""
        self._closing = True
        transport = self.writer.transport
        transport.abort()

    async def run(self) -> None:
        """Serve the client until it leaves or the PBX stops."""
        self._log.info("demopbx_ami_client_connected")
        self.writer.write(BANNER)
        parser = AMIParser(expect_banner=False)
        try:
            while not self._closing:
                data = await self.reader.read(65536)
                if not data:
                    break
                for item in parser.feed(data):
                    if isinstance(item, AMIMessage):
                        await self.pbx.wait_ami_unfrozen()
                        await self._dispatch(item)
                        if self._closing:
                            break
                await self._drain()
        except (ConnectionError, AMIProtocolError) as exc:
            self._log.info("demopbx_ami_client_error", error=str(exc))
        finally:
            self._closing = True
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
            self._log.info("demopbx_ami_client_gone")

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, msg: AMIMessage) -> None:
        action = msg.get("Action")
        if not action:
            self._security("RequestBadFormat", [("RequestType", "Action: NONE")])
            self.error(msg, "Missing action in request")
            return
        name = action.lower()
        self.pbx.action_log.append((action, msg.get("Channel") or ""))
        if not self.authenticated and name not in ("login", "challenge", "logoff"):
            self.error(msg, "Permission denied")
            return
        handler = ACTIONS.get(name)
        if handler is None:
            self.error(
                msg,
                f"Invalid/unknown command: {action}. "
                "Use Action: ListCommands to show available commands.",
            )
            self._security("RequestBadFormat", [("RequestType", f"Action: {action}")])
            return
        needed = _AUTHORITY.get(name)
        if needed and not needed & self.pbx.ami_write and "all" not in self.pbx.ami_write:
            # manager.c: the user's write= classes must share one with the action's.
            self.error(msg, "Permission denied")
            return
        await handler(self, msg)

    def _security(self, event: str, extra: Pairs) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
        headers: Pairs = [
            ("EventTV", now),
            ("Severity", "Error"),
            ("Service", "AMI"),
            ("EventVersion", "1"),
            ("SessionID", self.session_id),
            ("LocalAddress", f"IPV4/TCP/127.0.0.1/{self.pbx.ami_port}"),
            ("RemoteAddress", f"IPV4/TCP/{self.remote}"),
            *extra,
            ("SessionTV", now),
            ("AccountID", self.username),
        ]
        self.pbx.emit(event, "security", headers)

    # ------------------------------------------------------------------ login & session

    async def action_login(self, msg: AMIMessage) -> None:
        username = msg.get("Username") or ""
        pbx = self.pbx
        if (msg.get("AuthType") or "").lower() == "md5":
            expected = hashlib.md5(((self._challenge or "") + pbx.ami_secret).encode()).hexdigest()
            ok = self._challenge is not None and (msg.get("Key") or "").lower() == expected
        else:
            ok = (msg.get("Secret") or "") == pbx.ami_secret
        ok = ok and username == pbx.ami_username
        if not ok:
            self._log.warning("demopbx_ami_login_failed", username=username)
            await asyncio.sleep(pbx.login_failure_delay)
            self.error(msg, "Authentication failed")
            self._closing = True
            return
        self.authenticated = True
        self.username = username
        self.mask = parse_event_mask(msg.get("Events"))
        self.respond(msg, "Success", ("Message", "Authentication accepted"))
        if "system" in self.mask:
            uptime = str(int(time.monotonic() - pbx.started_at))
            self.send(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                    ("Status", "Fully Booted"),
                ]
            )
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
        pbx.emit(
            "SuccessfulAuth",
            "security",
            [
                ("EventTV", now),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", username),
                ("SessionID", self.session_id),
                ("LocalAddress", f"IPV4/TCP/127.0.0.1/{pbx.ami_port}"),
                ("RemoteAddress", f"IPV4/TCP/{self.remote}"),
                ("UsingPassword", "0"),
                ("SessionTV", now),
            ],
        )
        self._log.info("demopbx_ami_login", username=username, events=sorted(self.mask))

    async def action_challenge(self, msg: AMIMessage) -> None:
        if (msg.get("AuthType") or "").lower() != "md5":
            self.error(msg, "Must specify AuthType")
            return
        self._challenge = str(random.randint(100_000_000, 999_999_999))
        self.respond(msg, "Success", ("Challenge", self._challenge))

    async def action_logoff(self, msg: AMIMessage) -> None:
        self.respond(msg, "Goodbye", ("Message", "Thanks for all the fish."))
        self._closing = True

    async def action_ping(self, msg: AMIMessage) -> None:
        self.respond(msg, "Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))

    async def action_events(self, msg: AMIMessage) -> None:
        self.mask = parse_event_mask(msg.get("EventMask") or "off")
        self.respond(msg, "Success", ("Events", "On" if self.mask else "Off"))

    async def action_filter(self, msg: AMIMessage) -> None:
        if (msg.get("Operation") or "").lower() != "add":
            self.error(msg, "Unknown operation")
            return
        try:
            event_filter, exclude = _EventFilter.parse(
                msg.get("Filter") or "", msg.get("MatchCriteria") or ""
            )
        except ValueError as exc:
            self.error(msg, f"Filter Failed: {exc}")
            return
        (self.exclude_filters if exclude else self.include_filters).append(event_filter)
        self.respond(msg, "Success", ("Message", "Success"))

    async def action_listcommands(self, msg: AMIMessage) -> None:
        # manager.c: only the actions the user's write= classes allow, and those that need
        # none ("writeperm & authority || authority == 0").
        write = self.pbx.ami_write
        fields = [
            (name, f"{text}  (Priv: {priv})")
            for name, text, priv in _DESCRIPTIONS
            if ("all" in write or not _AUTHORITY[name.lower()] or _AUTHORITY[name.lower()] & write)
            and _MODULE_OF.get(name, "") in self.pbx.modules | {""}
        ]
        self.respond(msg, "Success", *fields)

    async def action_showdialplan(self, msg: AMIMessage) -> None:
        wanted = msg.get("Context") or ""
        contexts = self.pbx.dialplan.contexts
        if wanted and wanted not in contexts:
            self.error(msg, f"Did not find context {wanted}")
            return
        items: list[Pairs] = []
        extensions = 0
        for context, exts in sorted(contexts.items()):
            if wanted and context != wanted:
                continue
            for exten, steps in exts.items():
                extensions += 1
                items += [
                    [
                        ("Event", "ListDialplan"),
                        ("Context", context),
                        ("Extension", exten),
                        ("Priority", str(priority)),
                        ("Application", type(step).__name__),
                        ("AppData", ""),
                        ("Registrar", "pbx_config"),
                    ]
                    for priority, step in enumerate(steps, 1)
                ]
        shown = 1 if wanted else len(contexts)
        counts: Pairs = [
            ("ListExtensions", str(extensions)),
            ("ListPriorities", str(len(items))),
            ("ListContexts", str(shown)),
        ]
        self._list(msg, "DialPlan list will follow", "ShowDialPlanComplete", items, extra=counts)

    async def action_modulecheck(self, msg: AMIMessage) -> None:
        module = (msg.get("Module") or "").partition(".")[0]
        if module not in self.pbx.modules:
            self.error(msg, "Module not loaded")
            return
        self.respond(msg, "Success", ("Version", ""))

    async def action_coresettings(self, msg: AMIMessage) -> None:
        self.respond(
            msg,
            "Success",
            ("AMIversion", "11.0.0"),
            ("AsteriskVersion", "22.10.1"),
            ("SystemName", ""),
            ("CoreMaxCalls", "0"),
            ("CoreMaxLoadAvg", "0.000000"),
            ("CoreRunUser", ""),
            ("CoreRunGroup", ""),
            ("CoreMaxFilehandles", "0"),
            ("CoreRealTimeEnabled", "No"),
            ("CoreCDRenabled", "No"),
            ("CoreHTTPenabled", "No"),
            ("SoundsSearchCustomDir", "No"),
        )

    async def action_corestatus(self, msg: AMIMessage) -> None:
        started = time.gmtime(self.pbx.started_wall)
        self.respond(
            msg,
            "Success",
            ("CoreStartupDate", time.strftime("%Y-%m-%d", started)),
            ("CoreStartupTime", time.strftime("%H:%M:%S", started)),
            ("CoreReloadDate", time.strftime("%Y-%m-%d", started)),
            ("CoreReloadTime", time.strftime("%H:%M:%S", started)),
            ("CoreCurrentCalls", str(len(self.pbx.channels))),
            ("CoreProcessedCalls", str(self.pbx.processed_calls)),
        )

    async def action_command(self, msg: AMIMessage) -> None:
        command = (msg.get("Command") or "").strip()
        if command == "core show version":
            output = "Asterisk 22.10.1 (callcenter demo PBX)"
            self.respond(msg, "Success", ("Message", "Command output follows"), ("Output", output))
            return
        words = " ".join(command.split()[:3])
        output = (
            f"No such command '{command}' "
            f"(type 'core show help {words}' for other possible commands)"
        )
        self.respond(msg, "Error", ("Message", "Command output follows"), ("Output", output))

    # ------------------------------------------------------------------ lists

    def _list(
        self,
        msg: AMIMessage,
        message: str,
        complete: str,
        items: list[Pairs],
        *,
        extra: Pairs | None = None,
        id_last: bool = False,
    ) -> None:
        """A list response: ``EventList: start``, the item events (``ActionID`` after
        ``Event``, or last with ``id_last``), then the ``EventList: Complete`` event."""
        self.respond(msg, "Success", ("EventList", "start"), ("Message", message))
        idtext = [("ActionID", msg.action_id)] if msg.action_id is not None else []
        for item in items:
            self.send([*item, *idtext] if id_last else [item[0], *idtext, *item[1:]])
        self.send(
            [
                ("Event", complete),
                *idtext,
                ("EventList", "Complete"),
                ("ListItems", str(len(items))),
                *(extra or []),
            ]
        )

    async def action_coreshowchannels(self, msg: AMIMessage) -> None:
        now = time.monotonic()
        items = [
            [
                ("Event", "CoreShowChannel"),
                *chan.snapshot(),
                ("Application", chan.application),
                ("ApplicationData", chan.application_data),
                ("Duration", _duration(now - chan.created)),
                ("BridgeId", chan.bridge.uniqueid if chan.bridge is not None else ""),
            ]
            for chan in self.pbx.channels.values()
        ]
        self._list(msg, "Channels will follow", "CoreShowChannelsComplete", items)

    async def action_status(self, msg: AMIMessage) -> None:
        wanted = msg.get("Channel")
        now = time.monotonic()
        items = [
            [
                ("Event", "Status"),
                ("Privilege", "Call"),
                *chan.snapshot(),
                ("Type", chan.name.partition("/")[0]),
                ("DNID", chan.dnid),
                ("EffectiveConnectedLineNum", chan.connected_num or "<unknown>"),
                ("EffectiveConnectedLineName", chan.connected_name or "<unknown>"),
                ("TimeToHangup", "0"),
                ("BridgeID", chan.bridge.uniqueid if chan.bridge is not None else ""),
                ("Application", chan.application),
                ("Data", chan.application_data),
                ("Nativeformats", "(ulaw)"),
                ("Readformat", "ulaw"),
                ("Readtrans", ""),
                ("Writeformat", "ulaw"),
                ("Writetrans", ""),
                ("Callgroup", "0"),
                ("Pickupgroup", "0"),
                ("Seconds", str(int(now - chan.created))),
            ]
            for chan in self.pbx.channels.values()
            if wanted is None or chan.name == wanted
        ]
        if wanted is not None and not items:
            self.error(msg, "No such channel")
            return
        self._list(
            msg,
            "Channel status will follow",
            "StatusComplete",
            items,
            extra=[("Items", str(len(items)))],
            id_last=True,
        )

    async def action_queuestatus(self, msg: AMIMessage) -> None:
        self._list(msg, "Queue status will follow", "QueueStatusComplete", [])

    async def action_queuesummary(self, msg: AMIMessage) -> None:
        self._list(msg, "Queue summary will follow", "QueueSummaryComplete", [])

    async def action_devicestatelist(self, msg: AMIMessage) -> None:
        items = [
            [("Event", "DeviceStateChange"), ("Device", device), ("State", state)]
            for device, state in sorted(self.pbx.device_states.items())
        ]
        self._list(msg, "List of device states will follow", "DeviceStateListComplete", items)

    # ------------------------------------------------------------------ channels

    def _channel(self, msg: AMIMessage, key: str = "Channel") -> Channel | None:
        name = msg.get(key) or ""
        return self.pbx.find_channel(name) if name else None

    async def action_hangup(self, msg: AMIMessage) -> None:
        name = msg.get("Channel") or ""
        if not name:
            self.error(msg, "No channel specified")
            return
        chan = self.pbx.find_channel(name)
        if chan is None:
            self.error(msg, "No such channel")
            return
        cause_text = (msg.get("Cause") or "").strip()
        cause = int(cause_text) if cause_text.isdigit() else None
        self.pbx.hangup_channel(chan, cause)
        self.respond(msg, "Success", ("Message", "Channel Hungup"))

    async def action_redirect(self, msg: AMIMessage) -> None:
        name = msg.get("Channel") or ""
        if not name:
            self.error(msg, "Channel not specified")
            return
        exten = msg.get("Exten") or ""
        if not exten:
            self.error(msg, "Exten not specified")
            return
        priority_text = msg.get("Priority") or "1"
        if not priority_text.isdigit():
            self.error(msg, "Invalid priority")
            return
        chan = self.pbx.find_channel(name)
        if chan is None:
            self.error(msg, f"Channel does not exist: {name}")
            return
        extra = self._channel(msg, "ExtraChannel")
        if msg.get("ExtraChannel") and extra is None:
            self.error(msg, f"ExtraChannel does not exist: {msg.get('ExtraChannel')}")
            return
        context = msg.get("Context") or chan.context
        self.pbx.redirect(chan, context, exten, int(priority_text))
        if extra is not None:
            self.pbx.redirect(
                extra,
                msg.get("ExtraContext") or context,
                msg.get("ExtraExten") or exten,
                int(msg.get("ExtraPriority") or priority_text),
            )
        self.respond(msg, "Success", ("Message", "Redirect successful"))

    async def action_confbridgekick(self, msg: AMIMessage) -> None:
        """``ConfbridgeKick``: ``Channel`` is a member's name, ``all`` or ``participants``."""
        room = self.pbx.conferences.get(msg.get("Conference") or "")
        if room is None:
            self.error(msg, "No Conference by that name found.")
            return
        name = msg.get("Channel") or ""
        if not name:
            self.error(msg, "No channel name provided")
            return
        members = [c for c in room.members if name in ("all", "participants", c.name)]
        if not members:
            self.error(msg, "No Channel by that name found in Conference.")
            return
        for member in members:
            room.kicked.add(member.uniqueid)
            member.notify()
        self.respond(msg, "Success", ("Message", "User kicked"))

    async def action_getvar(self, msg: AMIMessage) -> None:
        variable = msg.get("Variable") or ""
        if not variable:
            self.error(msg, "No variable specified")
            return
        if msg.get("Channel"):
            chan = self._channel(msg)
            if chan is None:
                self.error(msg, "No such channel")
                return
            value = (
                chan.substitute(variable[2:-1])
                if variable.startswith("${")
                else chan.get_var(variable)
            )
        else:
            value = self.pbx.global_vars.get(variable)
        self.respond(msg, "Success", ("Variable", variable), ("Value", value or ""))

    async def action_mwiupdate(self, msg: AMIMessage) -> None:
        """res_mwi_external_ami's ``MWIUpdate``: the mailbox's counts are kept (the phones
        subscribed to it would be notified) and ``MessageWaiting`` is raised, as Asterisk
        does for any mailbox whose state changes."""
        if "res_mwi_external_ami" not in self.pbx.modules:
            self.error(
                msg,
                "Invalid/unknown command: MWIUpdate. "
                "Use Action: ListCommands to show available commands.",
            )
            return
        mailbox = msg.get("Mailbox") or ""
        if not mailbox:
            self.error(msg, "Mailbox ID must be specified.")
            return
        try:
            old = int(msg.get("OldMessages") or "0")
            new = int(msg.get("NewMessages") or "0")
        except ValueError:
            self.error(msg, "Error updating mailbox")
            return
        self.pbx.message_lamps[mailbox] = (new, old)
        self.respond(msg, "Success", ("Message", "Mailbox updated successfully"))
        self.pbx.emit(
            "MessageWaiting",
            "call",
            [
                ("Mailbox", mailbox),
                ("Waiting", "1" if new else "0"),
                ("New", str(new)),
                ("Old", str(old)),
            ],
        )

    async def action_setvar(self, msg: AMIMessage) -> None:
        variable = msg.get("Variable") or ""
        if not variable:
            self.error(msg, "No variable specified")
            return
        value = msg.get("Value") or ""
        if msg.get("Channel"):
            chan = self._channel(msg)
            if chan is None:
                self.error(msg, "No such channel")
                return
            chan.set_var(variable, value)
        elif (custom := _CUSTOM_STATE.fullmatch(variable)) is not None:
            # func_devstate: DEVICE_STATE(Custom:x) is a device state, not a variable.
            state = value.upper()
            if "func_devstate" not in self.pbx.modules or state not in _DEVICE_STATES:
                self.error(msg, "Failed to set variable")
                return
            self.pbx.custom_states[custom[1]] = state
            self.pbx.emit(
                "DeviceStateChange", "call", [("Device", f"Custom:{custom[1]}"), ("State", state)]
            )
        else:
            self.pbx.global_vars[variable] = value
            self.pbx.emit(
                "VarSet",
                "dialplan",
                [
                    ("Channel", "none"),
                    ("Uniqueid", "none"),
                    ("Variable", variable),
                    ("Value", value),
                ],
            )
        self.respond(msg, "Success", ("Message", "Variable Set"))

    async def action_agi(self, msg: AMIMessage) -> None:
        name = msg.get("Channel") or ""
        command = msg.get("Command") or ""
        if not name:
            self.error(msg, "Channel not specified")
            return
        if not command:
            self.error(msg, "Empty command specified")
            return
        chan = self.pbx.find_channel(name)
        if chan is None:
            self.error(msg, f"Channel {name} does not exist.")
            return
        if chan.async_agi_queue is None:
            self.error(msg, "Failed to add AGI command to queue")
            return
        chan.async_agi_queue.put_nowait((command, msg.get("CommandID")))
        self.respond(msg, "Success", ("Message", "Added AGI command to queue"))

    async def action_originate(self, msg: AMIMessage) -> None:
        target = msg.get("Channel") or ""
        if not target:
            self.error(msg, "Channel not specified")
            return
        timeout_text = msg.get("Timeout") or "30000"
        if not timeout_text.lstrip("-").isdigit():
            self.error(msg, "Invalid timeout")
            return
        if "/" not in target:
            self.error(msg, "Invalid channel")
            return
        app = msg.get("Application") or ""
        context, exten, priority = (
            msg.get("Context") or "",
            msg.get("Exten") or "",
            msg.get("Priority") or "",
        )
        if not app and (not context or not exten or not priority):
            self.error(msg, "Originate with 'Exten' requires 'Context' and 'Priority'")
            return
        if priority and not priority.isdigit():
            self.error(msg, "Invalid priority")
            return
        variables = [v.partition("=") for v in msg.get_all("Variable")]
        self.respond(msg, "Success", ("Message", "Originate successfully queued"))
        self.pbx.originate(
            target,
            action_id=msg.action_id,
            timeout=int(timeout_text) / 1000,
            callerid=msg.get("CallerID") or "",
            application=app,
            data=msg.get("Data") or "",
            context=context,
            exten=exten,
            priority=int(priority or 1),
            variables=[(k, v) for k, _, v in variables if k],
            channel_id=msg.get("ChannelId") or None,
        )

    async def action_playdtmf(self, msg: AMIMessage) -> None:
        chan = self._channel(msg)
        if chan is None:
            self.error(msg, "Channel not found")
            return
        digit = (msg.get("Digit") or "")[:1]
        if not digit:
            self.error(msg, "No digit specified")
            return
        received = (msg.get("Receive") or "").lower() in ("yes", "true", "1", "on")
        direction = "Received" if received else "Sent"
        for event in ("DTMFBegin", "DTMFEnd"):
            extra = [("Digit", digit), ("Direction", direction)]
            if event == "DTMFEnd":
                extra.append(("DurationMs", msg.get("Duration") or "250"))
            chan.emit(event, "dtmf", extra)
        if received:
            chan.deliver_digit(digit)
        self.respond(msg, "Success", ("Message", "DTMF successfully queued"))

    async def action_mutestream(self, msg: AMIMessage) -> None:
        chan = self._channel(msg)
        if chan is None:
            self.error(msg, "No channel specified")
            return
        direction = (msg.get("Direction") or "").lower()
        state = (msg.get("State") or "").lower()
        if direction not in ("in", "out", "all") or state not in ("on", "off"):
            self.error(msg, "Invalid direction or state specified")
            return
        if state == "on":
            chan.muted = "all" if chan.muted and chan.muted != direction else direction
        elif direction in ("all", chan.muted):
            chan.muted = ""
        else:
            chan.muted = "out" if direction == "in" else "in"
        chan.notify()
        self.respond(msg, "Success", ("Message", "Audiohook has been updated"))

    async def action_mixmonitor(self, msg: AMIMessage) -> None:
        chan = self._channel(msg)
        if chan is None:
            self.error(msg, "No such channel")
            return
        path = msg.get("File") or ""
        if not path:
            self.error(msg, "No file specified")
            return
        self.pbx.start_mixmonitor(chan, path)
        self.respond(msg, "Success")

    async def action_mixmonitormute(self, msg: AMIMessage) -> None:
        chan = self._channel(msg)
        if chan is None:
            self.error(msg, "No such channel")
            return
        direction = (msg.get("Direction") or "").lower()
        state = msg.get("State") or ""
        if direction not in ("read", "write", "both"):
            self.error(msg, "Invalid direction specified. Must be read, write or both")
            return
        if state not in ("0", "1"):
            self.error(msg, "No state specified")
            return
        if chan.mixmonitor is None:
            self.error(msg, "Cannot set mute flag")
            return
        self.pbx.mute_mixmonitor(chan, direction, state == "1")
        self.respond(msg, "Success")

    async def action_stopmixmonitor(self, msg: AMIMessage) -> None:
        chan = self._channel(msg)
        if chan is None:
            self.error(msg, "No such channel")
            return
        if chan.mixmonitor is None:
            self.error(msg, "Could not stop MixMonitor")
            return
        self.pbx.stop_mixmonitor(chan)
        self.respond(msg, "Success")


def hangup_headers(cause: int) -> Pairs:
    """``Cause`` and ``Cause-txt`` of a Hangup event."""
    return [("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown"))]


ACTIONS: dict[str, Handler] = {
    "login": ManagerSession.action_login,
    "challenge": ManagerSession.action_challenge,
    "logoff": ManagerSession.action_logoff,
    "ping": ManagerSession.action_ping,
    "filter": ManagerSession.action_filter,
    "events": ManagerSession.action_events,
    "listcommands": ManagerSession.action_listcommands,
    "showdialplan": ManagerSession.action_showdialplan,
    "modulecheck": ManagerSession.action_modulecheck,
    "coresettings": ManagerSession.action_coresettings,
    "corestatus": ManagerSession.action_corestatus,
    "command": ManagerSession.action_command,
    "coreshowchannels": ManagerSession.action_coreshowchannels,
    "status": ManagerSession.action_status,
    "queuestatus": ManagerSession.action_queuestatus,
    "queuesummary": ManagerSession.action_queuesummary,
    "devicestatelist": ManagerSession.action_devicestatelist,
    "hangup": ManagerSession.action_hangup,
    "redirect": ManagerSession.action_redirect,
    "confbridgekick": ManagerSession.action_confbridgekick,
    "getvar": ManagerSession.action_getvar,
    "setvar": ManagerSession.action_setvar,
    "mwiupdate": ManagerSession.action_mwiupdate,
    "agi": ManagerSession.action_agi,
    "originate": ManagerSession.action_originate,
    "playdtmf": ManagerSession.action_playdtmf,
    "muteaudio": ManagerSession.action_mutestream,
    "mixmonitor": ManagerSession.action_mixmonitor,
    "stopmixmonitor": ManagerSession.action_stopmixmonitor,
    "mixmonitormute": ManagerSession.action_mixmonitormute,
}

_CUSTOM_STATE = re.compile(r"DEVICE_STATE\(Custom:([^)]+)\)", re.IGNORECASE)
_DEVICE_STATES = frozenset(
    {"UNKNOWN", "NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING",
     "RINGINUSE", "ONHOLD"}
)  # fmt: skip

#: Actions a module registers: listed only while it is loaded.
_MODULE_OF: dict[str, str] = {"MWIUpdate": "res_mwi_external_ami"}

_DESCRIPTIONS: tuple[tuple[str, str, str], ...] = (
    ("AGI", "Add an AGI command to execute by Async AGI.", "agi,all"),
    ("Challenge", "Generate Challenge for MD5 Auth.", "<none>"),
    ("Command", "Execute Asterisk CLI Command.", "command,all"),
    ("ConfbridgeKick", "Kick a Confbridge user.", "call,all"),
    ("CoreSettings", "Show PBX core settings (version etc).", "system,reporting,all"),
    ("CoreShowChannels", "List currently active channels.", "system,reporting,all"),
    ("CoreStatus", "Show PBX core status variables.", "system,reporting,all"),
    ("DeviceStateList", "List the current known device states.", "call,reporting,all"),
    ("Events", "Control Event Flow.", "<none>"),
    ("Filter", "Dynamically add filters for the current manager session.", "system,all"),
    ("Getvar", "Gets a channel variable or function value.", "call,reporting,all"),
    ("Hangup", "Hangup channel.", "system,call,all"),
    ("ListCommands", "List available manager commands.", "<none>"),
    ("Login", "Login Manager.", "<none>"),
    ("Logoff", "Logoff Manager.", "<none>"),
    ("MixMonitor", "Record a call and mix the audio during the recording.", "system,all"),
    ("MixMonitorMute", "Mute / unMute a Mixmonitor recording.", "system,call,all"),
    ("ModuleCheck", "Check if module is loaded.", "system,all"),
    ("MuteAudio", "Mute an audio stream.", "system,all"),
    ("MWIUpdate", "Update the mailbox message counts.", "call,all"),
    ("Originate", "Originate a call.", "originate,all"),
    ("Ping", "Keepalive command.", "<none>"),
    ("PlayDTMF", "Play DTMF signal on a specific channel.", "call,all"),
    ("QueueStatus", "Show queue status.", "<none>"),
    ("QueueSummary", "Show queue summary.", "<none>"),
    ("Redirect", "Redirect (transfer) a call.", "call,all"),
    ("Setvar", "Sets a channel variable or function value.", "call,all"),
    ("ShowDialPlan", "Show dialplan contexts and extensions", "config,reporting,all"),
    ("Status", "List channel status.", "system,call,reporting,all"),
    ("StopMixMonitor", "Stop recording a call through MixMonitor.", "system,call,all"),
)

#: Action (lower case) -> the write= classes that allow it (any one of them; "all" too).
_AUTHORITY: dict[str, frozenset[str]] = {
    name.lower(): frozenset(priv.split(",")) - {"all", "<none>"}
    for name, _text, priv in _DESCRIPTIONS
}
