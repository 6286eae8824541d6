"""The configuration as typed, frozen pydantic models: the one place that says what ops may write.

Every field carries a ``description``: those descriptions are the reference documentation
(``describe_fields`` prints them). Every model is strict (YAML's guesses are refused, never
coerced: ``1001`` is not the string ``"1001"``) and forbids unknown fields, so a typo such as
``ring_timout`` is an error instead of a silently ignored line.

Checks that span sections (a route naming a missing flow, a queue listing an unknown agent...)
live in :func:`reference_problems`, which works on plain data so the loader can run it even
when other parts of the file are invalid, and point at file lines.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import itertools
import os
import re
import types
import typing
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError

from callcenter.errors import ConfigError
from callcenter.ivr.calendar import (
    country_problem,
    day_spec_problem,
    normalise_date,
    range_problem,
    timezone_names,
    timezone_problem,
)
from callcenter.ivr.values import (
    NUMBER_PATTERN,
    VARIABLE_NAME,
    matches_any,
    number_pattern_problem,
    template_problem,
)
from callcenter.outbound.leads import load_do_not_call, load_leads

__all__ = [
    "INPUT_EDGES",
    "AGIConfig",
    "AMIConfig",
    "APIConfig",
    "AcdConfig",
    "AgentConfig",
    "BranchCase",
    "BranchNode",
    "CallCenterConfig",
    "CallbackNode",
    "CollectNode",
    "ConfirmConfig",
    "DaySpec",
    "Device",
    "Digits",
    "DtmfKey",
    "ESLConfig",
    "EscalationStep",
    "Extension",
    "FlowConfig",
    "GotoNode",
    "HangupNode",
    "HolidayCalendar",
    "HolidayDate",
    "IvrConfig",
    "LanguageNode",
    "LoggingConfig",
    "LookupNode",
    "MenuNode",
    "Name",
    "Node",
    "NumberPattern",
    "PBXConfig",
    "PlayNode",
    "Problem",
    "Prompt",
    "QueueConfig",
    "QueueExit",
    "QueueFiguresNode",
    "QueueNode",
    "RecordsConfig",
    "ReturnNode",
    "RouteConfig",
    "SayItem",
    "ScheduleNode",
    "SetNode",
    "StrategyName",
    "SubflowNode",
    "SupervisorConfig",
    "Template",
    "TimeOfDay",
    "TimeRange",
    "TimeZone",
    "TransferNode",
    "VarName",
    "VoicemailNode",
    "WebhookConfig",
    "describe_fields",
    "did_you_mean",
    "node_edges",
    "reference_problems",
]


# --------------------------------------------------------------------------- string types


def _matcher(pattern: str, error_type: str, message: str) -> typing.Callable[[str], str]:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise PydanticCustomError(error_type, message + ', not "{value}"', {"value": value})
        return value

    return check


_TIME_CHECK = _matcher(
    r"(?:[01]?\d|2[0-3]):[0-5]\d|24:00",
    "time_of_day",
    'must be a time of day "HH:MM" from "00:00" to "24:00" (end of day), such as "09:00"',
)


def _time_of_day(value: str) -> str:
    return _TIME_CHECK(value).zfill(5)  # "9:30" -> "09:30"


TimeOfDay = Annotated[str, Strict(), AfterValidator(_time_of_day)]
"""A time of day ``"HH:MM"`` (24-hour clock, ``"9:30"`` becomes ``"09:30"``); ``"24:00"`` is
the end of the day. Ops must quote it: YAML reads a bare 9:30 as the number 570."""

Digits = Annotated[
    str, Strict(), AfterValidator(_matcher(r"[0-9]+", "digits", "must be digits 0-9 only"))
]
"""One or more decimal digits, kept as a string so leading zeros survive (PINs, codes)."""

Extension = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"\+?[0-9*#]+",
            "extension",
            "must be a dialable number (digits, * and #, optionally starting with +)",
        )
    ),
]
"""A dialable number such as ``"800"``, ``"*45"`` or ``"+4930123456"``."""

Device = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"[A-Za-z][A-Za-z0-9_-]*/\S+",
            "device",
            'must look like TECH/resource, such as "PJSIP/1001" or "user/1001"',
        )
    ),
]
"""A PBX endpoint ``TECH/resource``: ``PJSIP/1001`` (Asterisk), ``user/1001`` (FreeSWITCH)."""

DtmfKey = Annotated[
    str,
    Strict(),
    AfterValidator(_matcher(r"[0-9*#]", "dtmf_key", "must be one key: a digit 0-9, * or #")),
]
"""One telephone key: ``"0"``-``"9"``, ``"*"`` or ``"#"``."""

Name = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
            "name",
            "must be a name of letters, digits, '_', '.' and '-' (at most 64, no spaces)",
        )
    ),
]
"""An id for a flow, node, queue, agent or supervisor; safe in queue_log lines and AMI headers."""

Prompt = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"\S+",
            "prompt",
            'must be a sound file name without spaces or extension, such as "welcome"',
        )
    ),
]
"""A sound file as the PBX names it (no extension), e.g. ``welcome`` or ``custom/menu-main``."""

AgentPrompt = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"(?:[A-Za-z0-9_]|\$\{[A-Za-z_][A-Za-z0-9_]*\})(?:[A-Za-z0-9_./-]|\$\{[A-Za-z_][A-Za-z0-9_]*\})*",
            "prompt",
            "must be a sound file name of letters, digits, '_', '.', '-' and '/' only, such "
            'as "custom/queue-sales", or with call variables: "custom/tier-${tier}" (it goes '
            "into a Dial option or a dial string)",
        )
    ),
]
"""A sound file played to an agent's leg as it answers: stricter than :data:`Prompt`,
because Asterisk takes it inside ``Dial``'s ``A()`` option and FreeSWITCH inside a dial
string's variables."""

_RouteKey = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"default|\+?[0-9*#]+",
            "route_key",
            'must be a dialled number such as "800", or "default"',
        )
    ),
]

_Text = Annotated[str, Strict(), Field(min_length=1)]

_RecordingsFolder = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"[A-Za-z0-9_./-]{1,200}",
            "recordings_folder",
            "must be a path of letters, digits, '_', '.', '-' and '/' (the PBX refuses "
            "others in a recording's file name)",
        )
    ),
]
_Ref = Annotated[str, Strict(), Field(min_length=1)]
_Port = Annotated[int, Field(ge=1, le=65535)]
_ListenPort = Annotated[int, Field(ge=0, le=65535)]
_Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_SecondsOrZero = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Mailbox = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_.+-]+@[A-Za-z0-9_.-]+$",
        description="A mailbox as the PBX names it: box@context (Asterisk) or user@domain "
        "(FreeSWITCH).",
    ),
]
_ReconnectMin = Annotated[
    _Seconds, Field(description="First delay (s) before reconnecting a lost link; it doubles.")
]
_ReconnectMax = Annotated[
    _Seconds, Field(description="Longest delay (s) between reconnection attempts.")
]

# The AMI event classes Asterisk knows (manager.c); "on"/"off"/"all" are its shortcuts.
AMI_EVENT_CLASSES = frozenset(
    {
        *("system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf"),
        *("reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security"),
        *("message", "all", "on", "off"),
    }
)


def _check_ami_events(value: str) -> str:
    for item in value.split(","):
        if item.strip() not in AMI_EVENT_CLASSES:
            raise PydanticCustomError(
                "ami_events",
                'unknown AMI event class "{bad}"{hint} (known: {known})',
                {
                    "bad": item.strip(),
                    "hint": did_you_mean(item.strip(), AMI_EVENT_CLASSES),
                    "known": ", ".join(sorted(AMI_EVENT_CLASSES)),
                },
            )
    return value


_AmiEvents = Annotated[str, Strict(), AfterValidator(_check_ami_events)]


def did_you_mean(word: object, candidates: Iterable[object]) -> str:
    """``"; did you mean X?"`` for the closest candidate to ``word``, or ``""``."""
    names = [str(c) for c in candidates]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


# --------------------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class AMIConfig(_Model):
    """How to reach the Asterisk Manager Interface (events and actions)."""

    host: _Text = Field(
        default="127.0.0.1",
        description="Host of the Asterisk Manager Interface (env CALLCENTER_AMI_HOST).",
    )
    port: _Port = Field(default=5038, description="TCP port of the AMI (env CALLCENTER_AMI_PORT).")
    username: _Text = Field(
        default="callcenter",
        description="AMI user from Asterisk's manager.conf (env CALLCENTER_AMI_USERNAME).",
    )
    secret: SecretStr = Field(
        description=(
            "AMI password. Normally set through the environment (CALLCENTER_AMI_SECRET) or the "
            "secrets file named by CALLCENTER_SECRETS_FILE rather than written here. Not "
            "needed when pbx.type is freeswitch."
        )
    )
    connect_timeout: _Seconds = Field(
        default=5, description="Seconds to wait for the TCP connection and the login answer."
    )
    action_timeout: _Seconds = Field(
        default=5, description="Seconds to wait for the answer to any AMI action."
    )
    keepalive_interval: _Seconds = Field(
        default=10,
        description=(
            "Send a Ping every this many seconds; no answer within action_timeout means the "
            "peer is dead and the link is reconnected."
        ),
    )
    heartbeat_interval: _SecondsOrZero = Field(
        default=5,
        le=15,
        description=(
            "Every this many seconds the daemon sets the global dialplan variable "
            "CALLCENTER_HEARTBEAT to the Unix time (AMI Setvar: the user needs write=call), "
            "and to 0 when it stops. The shipped AsyncAGI context fails over when it is older "
            "than 30 s (hence at most 15 here): Asterisk cannot tell whether anyone reads "
            "AsyncAGI, and with no daemon a caller would wait in AGI(agi:async) in silence. "
            "0: no heartbeat."
        ),
    )
    reconnect_min: _ReconnectMin = 0.5
    reconnect_max: _ReconnectMax = 30
    events: _AmiEvents = Field(
        default="call,agi,dtmf",
        description=(
            "The AMI Events mask sent at login: comma-separated event classes. Narrow on "
            "purpose: every extra class is traffic the daemon must parse. Left unset, the "
            "daemon asks for `call` with FastAGI and `call,agi` with AsyncAGI, plus `dtmf` "
            "when there are `supervisors` (their keypad switches a monitoring's mode)."
        ),
    )
    filter_events: bool = Field(
        default=True,
        description=(
            "After each login, ask Asterisk (AMI Filter action) to send only the events the "
            "daemon handles: about half of a call's events are then never sent. Needs the AMI "
            "user's write=system; without it Asterisk refuses, the daemon logs "
            "ami_event_filter_refused and still reads every event of the classes in `events`."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> AMIConfig:
        _check_reconnect_range(self.reconnect_min, self.reconnect_max)
        return self


def _check_reconnect_range(low: float, high: float) -> None:
    if high < low:
        raise PydanticCustomError(
            "reconnect_range",
            "reconnect_max ({max}) must not be less than reconnect_min ({min})",
            {"max": high, "min": low},
        )


class AGIConfig(_Model):
    """How Asterisk hands calls to the daemon (the dialplan's ``AGI(...)`` line)."""

    transport: Literal["fastagi", "asyncagi"] = Field(
        default="fastagi",
        description=(
            "fastagi: Asterisk connects to us (AGI(agi://host:port/inbound)); asyncagi: calls "
            "arrive over AMI (AGI(agi:async)), for when the PBX cannot reach the daemon."
        ),
    )
    listen_host: _Text = Field(
        default="127.0.0.1", description="Address the FastAGI server listens on."
    )
    listen_port: _ListenPort = Field(
        default=4573, description="Port the FastAGI server listens on (0: any free port)."
    )
    command_timeout: _Seconds = Field(
        default=30,
        description=(
            "Longest time (s) a non-playback AGI command may take before the call is "
            "treated as lost."
        ),
    )


class ESLConfig(_Model):
    """How to reach FreeSWITCH's Event Socket (inbound) and where it calls us (outbound)."""

    host: _Text = Field(default="127.0.0.1", description="Host of FreeSWITCH's event socket.")
    port: _Port = Field(default=8021, description="Port of FreeSWITCH's inbound event socket.")
    password: SecretStr | None = Field(
        default=None,
        description=(
            "Event socket password. Normally set through the environment "
            "(CALLCENTER_ESL_PASSWORD) or the secrets file; required when pbx.type is "
            "freeswitch."
        ),
    )
    outbound_listen_host: _Text = Field(
        default="127.0.0.1",
        description="Address we listen on for FreeSWITCH's outbound socket (the `socket` app).",
    )
    outbound_listen_port: _ListenPort = Field(
        default=8084, description="Port for FreeSWITCH's outbound socket (0: any free port)."
    )
    connect_timeout: _Seconds = Field(
        default=5, description="Seconds to wait for the TCP connection and the auth answer."
    )
    command_timeout: _Seconds = Field(
        default=10,
        description=(
            "Seconds to wait for a reply, and for quick applications (answer, set, uuid_* "
            "api calls) to complete."
        ),
    )
    heartbeat_timeout: _Seconds = Field(
        default=45,
        description=(
            "Silence on the inbound event socket after which the daemon probes it with "
            "`api status`; no answer within command_timeout means the link is dead and it "
            "is reconnected. FreeSWITCH sends a HEARTBEAT event every 20 s by default."
        ),
    )
    failover_extension: Name = Field(
        default="callcenter_failover",
        description=(
            "Extension (in the caller's own context) a parked caller is transferred to when "
            "the daemon will not serve them (`callcenter drain`): the shipped dialplan's "
            "failover, where its sched_transfer sends callers no daemon takes."
        ),
    )
    reconnect_min: _ReconnectMin = 0.5
    reconnect_max: _ReconnectMax = 30

    @model_validator(mode="after")
    def _check(self) -> ESLConfig:
        _check_reconnect_range(self.reconnect_min, self.reconnect_max)
        return self


class PBXConfig(_Model):
    """Which PBX runs beside the daemon and how to talk to it."""

    type: Literal["asterisk", "freeswitch"] = Field(
        default="asterisk", description="The PBX: asterisk (AMI + AGI) or freeswitch (ESL)."
    )
    ami: AMIConfig = Field(description="Asterisk Manager Interface connection.")
    agi: AGIConfig = Field(
        default_factory=AGIConfig, description="Asterisk AGI: how calls reach the daemon."
    )
    esl: ESLConfig = Field(
        default_factory=ESLConfig, description="FreeSWITCH Event Socket connection."
    )
    claim_refresh: _SecondsOrZero = Field(
        default=5,
        le=60,
        description=(
            "One daemon per PBX: before taking calls the daemon marks the PBX as its own "
            "(global variable CALLCENTER_OWNER on Asterisk, callcenter_owner on FreeSWITCH: "
            "id, host, pid, time) and writes it again every this many seconds. A daemon "
            "started while another's mark is fresh exits with status 4 naming it; under "
            "systemd it is retried every RestartSec and takes over once the mark is 3 "
            "refreshes old (at once when the other ran on this host and is gone). 0: no "
            "claim (two daemons would take the same calls)."
        ),
    )

    stranded_sweep: _SecondsOrZero = Field(
        default=30,
        le=3600,
        description=(
            "Every this many seconds the daemon looks at the PBX's channels for room "
            "legs nobody is on: an agent's own dial or open line that went into a room "
            "(a hold, a consultation) and was left to the PBX by a daemon stopped "
            "during it leaves two channels (a Local pair on Asterisk, a loopback pair on "
            "FreeSWITCH) alone in their rooms once its people hang up. Those seen at two "
            "looks in a row are hung up. 0: never look."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _ami_unused_on_freeswitch(cls, data: Any) -> Any:
        # FreeSWITCH never uses the AMI section, so its secret may be left out there; an
        # empty secret keeps `ami.secret` a plain SecretStr for the Asterisk driver's sake.
        if isinstance(data, Mapping) and data.get("type") == "freeswitch":
            ami = data.get("ami")
            ami = {} if ami is None else ami
            if isinstance(ami, Mapping) and "secret" not in ami:
                return {**data, "ami": {**ami, "secret": ""}}
        return data


_Origin = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"https?://[A-Za-z0-9.\[\]:_-]+(?::[0-9]{1,5})?",
            "origin",
            "must be a page's origin: scheme and host (and port), no path, such as "
            '"https://crm.example"',
        )
    ),
]


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise PydanticCustomError(
            "network",
            'must be an IP address or a network (CIDR), such as "127.0.0.1" or "10.0.0.0/8"',
        ) from None
    return value


_Network = Annotated[str, Strict(), AfterValidator(_check_network)]


API_SCOPES: Final = (
    "read",
    "recordings",
    "callbacks",
    "agents",
    "supervise",
    "queues",
    "voicemails",
    "admin",
)
"""What a named API token may do (``api.tokens.<name>.allow``); see :class:`ApiToken`."""
ApiScope = Literal[
    "read", "recordings", "callbacks", "agents", "supervise", "queues", "voicemails", "admin"
]


def _sha256(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise PydanticCustomError(
            "sha256",
            "not a SHA-256: 64 lower-case hex digits (`callcenter token new` prints the line)",
        )
    return value


class ApiToken(_Model):
    """A token for one client of the control API (a CRM, a callback form's backend, a
    wallboard), allowed only some of it. The config keeps its SHA-256, never the token:
    ``callcenter token new NAME --allow ...`` makes both."""

    sha256: Annotated[str, Strict(), AfterValidator(_sha256)] = Field(
        description="SHA-256 of the token, 64 lower-case hex digits (`callcenter token new` "
        "prints it; `printf %s TOKEN | sha256sum` too).",
    )
    allow: list[ApiScope] = Field(
        min_length=1,
        description="What it may do: read (every GET: status, figures, callers, a number's "
        "calls, the event stream, the wallboard), recordings (a call's recording, a voicemail's "
        "sound), callbacks (ask for and cancel callbacks; read a queue's wait and the "
        "callback slots), agents (POST /agents/...), "
        "supervise (listen, whisper, barge, take over), queues (a waiting caller's priority, "
        "withdraw, give), voicemails (take and settle messages), admin (reload, drain, "
        "switches, number lists, notices, campaigns, erasures).",
        examples=[["read", "callbacks"]],
    )


class APIConfig(_Model):
    """The local control API the ``callcenter`` command line talks to."""

    host: _Text = Field(default="127.0.0.1", description="Address the control API listens on.")
    port: _ListenPort = Field(
        default=8470, description="Port of the control API the CLI talks to (0: any free port)."
    )
    metrics_host: _Text | None = Field(
        default=None,
        description="Address of a second listener that serves only GET /metrics and GET "
        '/health, for a Prometheus on another machine (such as "0.0.0.0"); null: none. '
        "The control API itself controls agents and calls: keep it on 127.0.0.1.",
    )
    metrics_port: _ListenPort = Field(
        default=8471, description="Port of that listener (0: any free port)."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token every control API request must carry (Authorization: "
        "Bearer <token>), but GET /health and GET /metrics; the CLI sends "
        "CALLCENTER_API_TOKEN. Normally from the environment (CALLCENTER_API_TOKEN) or the "
        "secrets file. Needed when `host` is not a loopback address: the API controls "
        "agents and lets supervisors listen to calls.",
    )

    tokens: dict[Name, ApiToken] = Field(
        default_factory=dict,
        description="Tokens of the API's other clients, each allowed only part of it: "
        "{crm: {sha256: ..., allow: [read]}, web: {sha256: ..., allow: [callbacks]}}. With "
        "any set, every request needs a token (`token` may do everything). Requests made "
        "with one are logged with its name (`api_request`), and every recording or message "
        "served names whose token fetched it.",
    )
    cors_origins: list[_Origin] = Field(
        default_factory=list,
        description="Web pages (their origins) whose scripts may call the API from a "
        "browser, such as an agent desktop or wallboard served by another site: "
        '"https://crm.example". Their requests still need the token. Empty: none (a '
        "page served through your own web backend needs none).",
        examples=[["https://crm.example"]],
    )
    wallboard_title: _Text = Field(
        default="Call centre",
        description="Heading of the wallboard page (GET /wallboard), such as the site's name.",
        examples=["Support, Lyon"],
    )
    desktop: bool = Field(
        default=True,
        description="Serve the agent desktop (http://<api.host>:<api.port>/desktop): agents "
        "sign in with their id and PIN (agents without a pin cannot) and see their state, "
        "their call and its screen pop, and buttons to pause, transfer, hold, give "
        "dispositions...; supervisors (with a pin) listen, whisper and barge from theirs. "
        "It needs no api.token (the PIN is its key); false: off. For agents "
        "on other machines set api.host (and a token), best behind a TLS proxy.",
    )
    trusted_proxies: list[_Network] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks) in front of the API whose "
        "X-Forwarded-For header names the client: a request from one of them counts as "
        "from the address it forwards for (the desktop's hold on wrong PINs, the logs). "
        "Requests from anywhere else are taken as from their own address, whatever they "
        "send. Empty: none (behind a proxy, every client then shares its address).",
        examples=[["127.0.0.1"], ["10.0.0.0/8"]],
    )
    desktop_session_hours: float = Field(
        default=12,
        gt=0,
        le=24,
        description="How long a sign-in to the agent desktop lasts (a restart of the daemon "
        "signs everyone out; a PIN changed by a reload signs that agent out).",
    )

    @model_validator(mode="after")
    def _open_api_needs_token(self) -> APIConfig:
        if self.token is None and not self.tokens and not _loopback(self.host):
            raise PydanticCustomError(
                "api_token",
                "api.host {host} lets other machines control agents and listen to calls: "
                "set a token too (CALLCENTER_API_TOKEN)",
                {"host": self.host},
            )
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise PydanticCustomError(
                "api_token", "api.token is too short to guess hard: 16 characters or more"
            )
        seen: dict[str, str] = {}
        if self.token is not None:
            seen[hashlib.sha256(self.token.get_secret_value().encode()).hexdigest()] = "token"
        for name, given in self.tokens.items():
            if given.sha256 in seen:
                raise PydanticCustomError(
                    "api_token",
                    "api.tokens.{name} is the same token as {other}: give each client its own",
                    {"name": name, "other": seen[given.sha256]},
                )
            seen[given.sha256] = f"api.tokens.{name}"
        return self


def _loopback(host: str) -> bool:
    """A listening address only this machine reaches."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_TopicPrefix = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"[^+#\x00/][^+#\x00]{0,199}(?<!/)",
            "topic_prefix",
            'must be an MQTT topic such as "callcenter" or "site1/callcenter": no \'+\', '
            "'#', no leading or trailing '/'",
        )
    ),
]


class MQTTConfig(_Model):
    """Live figures published to an MQTT broker, for wallboards and dashboards.

    Retained, one topic each, republished when they change (at most once per ``interval``):
    ``<prefix>/status`` (``online``; ``offline`` at a stop, and as the broker's last will
    when the daemon vanishes), ``<prefix>/queues/<queue>`` and ``<prefix>/agents/<id>``
    (JSON). With ``events``, every engine event as it happens on
    ``<prefix>/events/<EventName>`` (JSON, not retained). Best effort: QoS 0, nothing is
    kept while the broker is away, and a broker that is down or slow never slows a call.
    """

    host: _Text = Field(default="127.0.0.1", description="Host of the MQTT broker.")
    port: _Port = Field(default=1883, description="TCP port of the MQTT broker.")
    username: _Text | None = Field(
        default=None, description="User name for the broker (null: connect without one)."
    )
    password: SecretStr | None = Field(
        default=None,
        description="Password for the broker, normally from the environment "
        "(CALLCENTER_MQTT_PASSWORD) or the secrets file; only sent with a username.",
    )
    client_id: _Text | None = Field(
        default=None,
        description='MQTT client id; null: "callcenter-" and the host name. Two daemons '
        "with one id push each other off the broker; some brokers take at most 23 "
        'characters (they answer "client identifier rejected").',
    )
    topic_prefix: _TopicPrefix = Field(
        default="callcenter", description="First levels of every topic the daemon publishes."
    )
    interval: _Seconds = Field(
        default=1.0,
        ge=0.1,
        le=60,
        description="Seconds between two looks at the queues and agents; what changed is "
        "published.",
    )
    events: bool = Field(
        default=False,
        description="Also publish every engine event (CallStarted, QueueJoined, "
        "AgentConnected ...) on <prefix>/events/<EventName>.",
    )
    keepalive: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Seconds of MQTT keep-alive: the daemon pings the broker every half of "
        "it, and reconnects when the broker has said nothing for 1.5 times it.",
    )
    connect_timeout: _Seconds = Field(
        default=5, description="Seconds to wait for the TCP connection and the CONNACK."
    )
    tls: bool = Field(
        default=False,
        description="Talk to the broker over TLS (its port is then usually 8883), checking "
        "its certificate against ca_file, or the system's certificate authorities.",
    )
    ca_file: _Text | None = Field(
        default=None,
        description="PEM file of the certificate authority that signed the broker's "
        "certificate (relative to the config file's folder); null: the system's. Only "
        "with tls.",
    )

    @model_validator(mode="after")
    def _password_needs_username(self) -> MQTTConfig:
        if self.password is not None and self.username is None:
            raise PydanticCustomError(
                "mqtt_password",
                "a password is only sent with a username: set mqtt.username too",
            )
        return self

    cert_file: _Text | None = Field(
        default=None,
        description="PEM file of the daemon's own client certificate, for a broker that "
        "asks for one (mosquitto's require_certificate, AWS IoT); the chain may follow it "
        "in the file. Relative to the config file's folder. Only with tls.",
    )
    key_file: _Text | None = Field(
        default=None,
        description="PEM file of the client certificate's private key (not encrypted); "
        "null: the key is in cert_file. Only with cert_file.",
    )

    @model_validator(mode="after")
    def _ca_file_needs_tls(self) -> MQTTConfig:
        for name in ("ca_file", "cert_file"):
            if getattr(self, name) is not None and not self.tls:
                raise PydanticCustomError(
                    f"mqtt_{name}", f"{name} is only used with tls: set mqtt.tls: true too"
                )
        if self.key_file is not None and self.cert_file is None:
            raise PydanticCustomError(
                "mqtt_key_file", "key_file goes with cert_file: set mqtt.cert_file too"
            )
        return self


class LoggingConfig(_Model):
    """Log output."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe level written."
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json (one object per line), console (for people), or auto: console on a "
        "terminal, json otherwise.",
    )


class RuntimeConfig(_Model):
    """How the daemon process runs."""

    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description=(
            "The asyncio event loop: uvloop (libuv, about a third less CPU per call in the "
            "loop and sockets), asyncio (the standard library's), or auto: uvloop when it is "
            "installed, else asyncio."
        ),
    )
    drain_timeout: _Seconds = Field(
        default=900,
        description=(
            "Seconds a drain (`callcenter drain`, or SIGQUIT) waits for the calls in progress "
            "to end before the daemon stops anyway, as on SIGTERM (the calls left go to the "
            "PBX). `callcenter drain --timeout` sets it for one drain."
        ),
    )


_PostgresURL = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"(?:postgres(?:ql)?://\S*|\S+=\S*(?:\s+\S+=\S*)*)",
            "postgres_url",
            'must be a PostgreSQL connection string: "postgresql://callcenter@db.example:5432'
            '/callcenter" or "host=db.example dbname=callcenter user=callcenter"',
        )
    ),
]


class RecordsConfig(_Model):
    """Where call records (CDRs) are kept."""

    cdr_path: _Text = Field(
        default="var/cdr.sqlite3",
        description=(
            "SQLite file for CDRs, created on first run. A relative path is relative to the "
            "folder of the config file. With `postgres`, its folder keeps the records the "
            "server would not take by a stop (postgres.unwritten.jsonl)."
        ),
    )
    postgres: _PostgresURL | None = Field(
        default=None,
        description=(
            "Keep the records in this PostgreSQL database instead of the SQLite file (the same "
            "tables; created on first use): a libpq connection string such as "
            '"postgresql://callcenter@db.example:5432/callcenter". The password from '
            "CALLCENTER_POSTGRES_PASSWORD (or the secrets file, or libpq's ~/.pgpass); "
            "needs pip install 'callcenter[postgresql]'."
        ),
    )
    postgres_password: SecretStr | None = Field(
        default=None,
        description="Password for `postgres`, normally from the environment "
        "(CALLCENTER_POSTGRES_PASSWORD) or the secrets file rather than written here.",
    )
    commit_interval: _SecondsOrZero = Field(
        default=0.05,
        le=1.0,
        description=(
            "Under load, the shortest time in seconds between two commits to the CDR file: "
            "records finished meanwhile are written and synced together, in one transaction. "
            "Each commit costs about 0.25 ms of CPU for its sync, a record in a batch of "
            "five about 0.1 ms. A record then waits at most this long to be durable; after a "
            "quiet spell the next one is written at once. A call's task, and with it a "
            "FastAGI connection or an outbound ESL socket, ends once its record is durable: "
            "under load up to this much later. 0 commits every batch as soon as the previous "
            "one is done."
        ),
    )
    queue_log: bool = Field(
        default=True,
        description="Keep Asterisk's queue_log (ENTERQUEUE, CONNECT, COMPLETECALLER, "
        "ABANDON, AGENTLOGIN, PAUSEALL...) in the records database for queue reporting "
        "tools; `callcenter report --queue-log` prints it in the queue_log file's format.",
    )
    keep_days: int | None = Field(
        default=None,
        ge=1,
        description="Retention: records older than this many days are deleted, a minute "
        "after the start and then once a day: CDRs, queue_log, agent shifts and pauses, "
        "finished callback requests, dispositions (a do-not-call request and a callback "
        "still to come are kept), the audit trail. None: kept for ever. `callcenter purge` "
        "does it by hand.",
        examples=[400],
    )
    checkpoint_seconds: float = Field(
        default=30,
        ge=0,
        le=3600,
        description="Every this many seconds, the calls in progress for as long are written "
        "as they stand (a CDR with hung_up_by in_progress, replaced by the call's own when "
        "it ends): a daemon killed without stopping (kill -9, a power cut) leaves their "
        "records, which the next start marks hung_up_by lost. 0: none (such calls leave no "
        "CDR).",
    )
    queue_log_file: _Text | None = Field(
        default=None,
        description="Also keep the queue_log in this file, in Asterisk's format, for reporting "
        "tools that read /var/log/asterisk/queue_log: each line appended within 0.2 s of its "
        "record, once (where it got to is kept in <file>.pos). Relative to the config file.",
    )

    @model_validator(mode="after")
    def _file_needs_queue_log(self) -> RecordsConfig:
        if self.queue_log_file is not None and not self.queue_log:
            raise PydanticCustomError(
                "queue_log_file", "queue_log_file needs queue_log: true (the lines come from it)"
            )
        return self


def _check_event_name(value: str) -> str:
    from callcenter.events import event_types

    known = event_types()
    if value not in known:
        raise PydanticCustomError(
            "event_name",
            'no engine event "{value}"{hint} (see callcenter/events.py)',
            {"value": value, "hint": did_you_mean(value, known)},
        )
    return value


_EventName = Annotated[str, Strict(), AfterValidator(_check_event_name)]
_WebhookURL = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"https?://[A-Za-z0-9.\[\]:_-]+(?::[0-9]{1,5})?(?:/[^\s]*)?",
            "webhook_url",
            'must be an http:// or https:// URL such as "https://crm.example/callcenter/events"',
        )
    ),
]


class WebhookConfig(_Model):
    """An HTTP endpoint that gets engine events as they happen (a CRM's screen pop, a
    ticketing tool): each event is POSTed as the JSON object MQTT's ``events`` topics carry,
    in order, retried while the endpoint fails. Best effort: a slow or dead endpoint never
    slows a call; what it cannot take is counted and dropped."""

    url: _WebhookURL = Field(
        description="Where events are POSTed (http:// or https://; the server's certificate "
        "is checked).",
        examples=["https://crm.example/callcenter/events"],
    )
    events: list[_EventName] = Field(
        default_factory=list,
        description="Engine events to send, by name (AgentConnected, CallEnded, "
        "CallDisposed...); empty: every event.",
    )
    secret: SecretStr | None = Field(
        default=None,
        description="Signs each body: the header X-Callcenter-Signature is sha256= and the "
        "hex HMAC-SHA256 of the body with this secret, for the endpoint to check.",
    )
    timeout: _Seconds = Field(
        default=5.0, description="Seconds one POST may take (connect, send, answer)."
    )
    max_tries: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Tries of one event while the endpoint fails (5xx, no answer), 1 s "
        "apart, doubling up to 30 s; then it is dropped (4xx: at once).",
    )
    queue_size: int = Field(
        default=10_000,
        ge=1,
        description="Events waiting for the endpoint at most; more are dropped (counted).",
    )
    batch: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Events per POST. 1: each event is its JSON object. More: the body is a "
        "JSON array of the events waiting, in order, up to this many (X-Callcenter-Event: "
        "batch): for an endpoint far away, where one request per round trip caps the rate.",
    )
    ca_file: _Text | None = Field(
        default=None,
        description="PEM of the authority that signed the endpoint's certificate (https); "
        "null: the system's. Relative to the config file's folder.",
    )


class RouteConfig(_Model):
    """What happens to a call that dialled one number."""

    flow: _Ref = Field(description="Name of the IVR flow (under `flows`) the call walks.")


# --------------------------------------------------------------------------- IVR flows
# A flow is a graph of nodes; every node names the node(s) that run after it. The kinds and
# their fields are below; the whole-graph rules (no unknown ids, no unreachable nodes, no
# loop without caller input, every input node has a way out, prompt files exist, transfers
# only to allowed numbers) are in callcenter.ivr.check.


def _check_template(value: str) -> str:
    problem = template_problem(value)
    if problem is not None:
        raise PydanticCustomError("template", "{problem}", {"problem": problem})
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "regex", "is not a valid regular expression: {error}", {"error": str(exc)}
        ) from None
    return value


def _check_number_pattern(value: str) -> str:
    if not re.fullmatch(NUMBER_PATTERN, value):
        raise PydanticCustomError(
            "number_pattern",
            'must be a number such as "5551234" or "+4930123456", or an Asterisk pattern '
            'starting with _ such as "_49X.", not "{value}"',
            {"value": value},
        )
    problem = number_pattern_problem(value)
    if problem is not None:
        raise PydanticCustomError("number_pattern", "{problem}", {"problem": problem})
    return value


def _checker(check: typing.Callable[[str], str | None], kind: str) -> typing.Callable[[str], str]:
    def run(value: str) -> str:
        problem = check(value)
        if problem is not None:
            raise PydanticCustomError(kind, "{problem}", {"problem": problem})
        return value

    return run


def _check_timezone(value: str) -> str:
    if timezone_problem(value) is not None:
        raise PydanticCustomError(
            "timezone",
            'unknown time zone "{value}"{hint}: use an IANA name such as "Europe/Berlin"',
            {"value": value, "hint": did_you_mean(value, timezone_names())},
        )
    return value


def _holiday_date(value: object) -> object:
    normalised = normalise_date(value)
    if normalised is None:
        raise PydanticCustomError(
            "holiday_date",
            'must be a date "YYYY-MM-DD" (that day) or "MM-DD" (that day every year)',
        )
    return normalised


VarName = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            VARIABLE_NAME,
            "variable_name",
            "must be a variable name: letters, digits and '_', not starting with a digit",
        )
    ),
]
"""The name of a call variable, such as ``account`` or ``customer_name``."""

Template = Annotated[str, Strict(), AfterValidator(_check_template)]
"""Text with ``${variable}`` references, such as ``"${caller_num}"``."""

NumberPattern = Annotated[str, Strict(), AfterValidator(_check_number_pattern)]
"""An exact number (``"5551234"``) or an Asterisk pattern (``"_49X."``)."""

TimeRange = Annotated[str, Strict(), AfterValidator(_checker(range_problem, "time_range"))]
"""``"HH:MM-HH:MM"`` local time, end after start (``"24:00"`` is the end of the day)."""

DaySpec = Annotated[str, Strict(), AfterValidator(_checker(day_spec_problem, "day_spec"))]
"""Weekdays: ``mon``, ``mon-fri``, ``sat,sun`` or ``daily``."""

TimeZone = Annotated[str, Strict(), AfterValidator(_check_timezone)]
"""An IANA time zone such as ``Europe/Berlin``."""

HolidayDate = Annotated[str, BeforeValidator(_holiday_date)]
"""``"YYYY-MM-DD"`` (one day) or ``"MM-DD"`` (every year); an unquoted YAML date works too."""

_Regex = Annotated[str, Strict(), AfterValidator(_check_regex)]
_Language = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"[a-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})?",
            "language",
            'must be a language code such as "en", "fr" or "pt_BR"',
        )
    ),
]
_Url = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"https?://[^\s/?#]+(?:[/?#]\S*)?",
            "url",
            'must be an http:// or https:// URL such as "http://crm.local/api/caller?n=${caller_num}"',
        )
    ),
    AfterValidator(_check_template),
]
_JsonPath = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"[^.\s]+(?:\.[^.\s]+)*",
            "json_path",
            'must be a dotted path into the JSON answer, such as "customer.name" or "tickets.0.id"',
        )
    ),
]
_Retries = Annotated[int, Field(ge=1, le=20)]
_Priority = Annotated[int, Field(ge=-1000, le=1000)]


class SayItem(_Model):
    """A prompt item: a sound file, or a value the PBX says in the caller's language."""

    file: Prompt | None = Field(default=None, description="A sound file (no extension).")
    say: Literal["digits", "number", "date", "time"] | None = Field(
        default=None,
        description=(
            "Say `value` as digits (1 2 3 4), a number (one thousand two hundred...), a date "
            '("YYYY-MM-DD") or a time ("HH:MM").'
        ),
    )
    value: Template | None = Field(
        default=None, description='What is said, usually a variable: "${account}".'
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"file": data}
        if isinstance(data, Mapping):
            return data
        raise PydanticCustomError(
            "prompt_item",
            'must be a sound file name, or a mapping such as {say: digits, value: "${account}"}',
        )

    @model_validator(mode="after")
    def _one_thing(self) -> SayItem:
        if (self.file is None) == (self.say is None):
            raise PydanticCustomError(
                "prompt_item", "give either a sound file or `say:` with a `value:`, not both"
            )
        if (self.say is None) != (self.value is None):
            raise PydanticCustomError("prompt_item", "`say:` and `value:` go together")
        return self


class PlayNode(_Model):
    """Play prompts, then go on."""

    kind: Literal["play"] = Field(description="Play prompts one after the other.")
    prompts: list[SayItem] = Field(
        min_length=1,
        description=(
            'Played in order: sound files ("welcome") and things the PBX says '
            '({say: digits, value: "${account}"}).'
        ),
    )
    barge_in: bool = Field(
        default=False,
        description=(
            "A key pressed during the prompts stops them and counts as the first key of the "
            "next menu or collect node. Off: the prompts always play to the end."
        ),
    )
    next: _Ref = Field(description="Id of the node that runs after the last prompt.")


class MenuNode(_Model):
    """Play a prompt and branch on the key the caller presses."""

    kind: Literal["menu"] = Field(description="Ask the caller to press a key.")
    prompt: Prompt = Field(
        description="Sound file played to ask for a key (a key pressed during it counts)."
    )
    choices: dict[DtmfKey, _Ref] = Field(
        min_length=1,
        description='Key pressed -> node id, such as "1": sales. Quote the keys: "1", not 1.',
    )
    timeout: _Seconds = Field(
        default=5, description="Seconds to wait for a key once the prompt has ended."
    )
    retries: _Retries = Field(
        default=3,
        description=(
            "Attempts allowed for each kind of failure (no key, a wrong key) before `default` "
            "runs, unless timeout_retries / invalid_retries say otherwise."
        ),
    )
    timeout_retries: _Retries | None = Field(
        default=None, description="Times the caller may press nothing (default: `retries`)."
    )
    invalid_retries: _Retries | None = Field(
        default=None, description="Times the caller may press a wrong key (default: `retries`)."
    )
    invalid_prompt: Prompt = Field(
        default="invalid", description="Played when the caller presses a key with no choice."
    )
    timeout_prompt: Prompt = Field(
        default="please-try-again", description="Played when no key came within `timeout`."
    )
    repeat_key: DtmfKey | None = Field(
        default="*",
        description=(
            "Key that plays the menu again without counting as a failure (ignored when it is "
            "also a choice; null: none)."
        ),
    )
    on_timeout: _Ref | None = Field(
        default=None,
        description="Node run when the no-key attempts run out (default: `default`).",
    )
    on_invalid: _Ref | None = Field(
        default=None,
        description="Node run when the wrong-key attempts run out (default: `default`).",
    )
    default: _Ref = Field(
        description=(
            "Id of the node run when the retries are exhausted. Required: a caller is never "
            "left in silence."
        )
    )


class ConfirmConfig(_Model):
    """Read the entered digits back and ask the caller to confirm them."""

    prompt: Prompt = Field(
        default="you-entered", description='Played before the read-back ("You entered").'
    )
    say: Literal["digits", "number"] = Field(
        default="digits", description="Read back as single digits or as a number."
    )
    question: Prompt = Field(
        default="if-correct-press-1-otherwise-2",
        description='Asks for the answer ("press 1 if this is correct, 2 to enter it again").',
    )
    yes: DtmfKey = Field(default="1", description="Key that confirms.")
    no: DtmfKey = Field(default="2", description="Key that asks to enter the digits again.")
    timeout: _Seconds = Field(default=5, description="Seconds to wait for the answer.")


class CollectNode(_Model):
    """Collect digits (an account number, a PIN...) into a variable."""

    kind: Literal["collect"] = Field(description="Collect digits into a variable.")
    prompt: Prompt = Field(description="Sound file asking for the digits (keys cut it short).")
    variable: VarName = Field(description="Variable that receives the digits.")
    min_digits: int = Field(default=1, ge=1, le=64, description="Fewest digits accepted.")
    max_digits: int = Field(
        default=20, ge=1, le=64, description="Most digits read; reaching it ends the input."
    )
    terminator: DtmfKey | None = Field(
        default="#", description="Key that ends the input early (not part of the value)."
    )
    timeout: _Seconds = Field(
        default=5, description="Seconds to wait for the first key once the prompt has ended."
    )
    inter_digit_timeout: _Seconds | None = Field(
        default=None,
        description="Seconds to wait for each further key (default: `timeout`).",
    )
    pattern: _Regex | None = Field(
        default=None,
        description='Regular expression the whole input must match, such as "4[0-9]{5}".',
    )
    retries: _Retries = Field(
        default=3, description="Attempts for each kind of failure (nothing entered, invalid)."
    )
    timeout_retries: _Retries | None = Field(
        default=None, description="Times the caller may enter nothing (default: `retries`)."
    )
    invalid_retries: _Retries | None = Field(
        default=None, description="Times the input may be invalid (default: `retries`)."
    )
    invalid_prompt: Prompt = Field(
        default="invalid", description="Played when the input is too short, long or malformed."
    )
    timeout_prompt: Prompt = Field(
        default="please-try-again", description="Played when nothing was entered."
    )
    confirm: ConfirmConfig | None = Field(
        default=None, description="Read the input back and ask for confirmation."
    )
    private: bool = Field(
        default=False,
        description="A secret (PIN): kept out of logs, the IVR path and the CDR (shown as ***).",
    )
    next: _Ref = Field(description="Node run once valid digits are stored.")
    default: _Ref = Field(description="Node run when the attempts run out.")

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_digits > self.max_digits:
            raise PydanticCustomError(
                "digit_range",
                "min_digits ({min}) must not be more than max_digits ({max})",
                {"min": self.min_digits, "max": self.max_digits},
            )
        return self


class BranchCase(_Model):
    """One case of a branch node: all its conditions must hold."""

    goto: _Ref = Field(description="Node run when every condition of this case holds.")
    variable: VarName | None = Field(
        default=None, description="Variable tested by equals / one_of / matches / present."
    )
    equals: Template | None = Field(default=None, description="The variable is exactly this.")
    one_of: list[Template] | None = Field(
        default=None, description="The variable is one of these values."
    )
    matches: _Regex | None = Field(
        default=None, description="The whole variable matches this regular expression."
    )
    present: bool | None = Field(
        default=None, description="true: the variable is set and not empty; false: it is not."
    )
    caller: list[NumberPattern] | None = Field(
        default=None,
        description='Caller number is one of these numbers or patterns ("_49X.").',
    )
    caller_list: Name | None = Field(
        default=None, description="Caller number is on this list (under ivr.number_lists)."
    )
    dialed: list[NumberPattern] | None = Field(
        default=None, description="The dialled number is one of these numbers or patterns."
    )
    days: list[DaySpec] | None = Field(
        default=None, description="Today (in `timezone`) is one of these days (mon-fri...)."
    )
    hours: list[TimeRange] | None = Field(
        default=None, description='The time of day is in one of these ranges ("09:00-12:00").'
    )
    dates: list[HolidayDate] | None = Field(
        default=None, description='Today is one of these dates ("2026-12-24", or "12-24").'
    )
    timezone: TimeZone | None = Field(
        default=None, description="Time zone of days/hours/dates (default: ivr.timezone)."
    )
    switch: Name | None = Field(
        default=None,
        description="This switch (under ivr.switches) is on: ops flip it with `callcenter "
        "switch on NAME` (a storm, an outage, an early close).",
    )
    queue: _Ref | None = Field(
        default=None,
        description="A queue (under `queues`) whose state now the tests below look at, "
        "before the caller joins it: offer a callback or voicemail when it is busy.",
    )
    waiting_over: int | None = Field(
        default=None, ge=0, description="More than this many callers wait in `queue` now."
    )
    wait_over: _Seconds | None = Field(
        default=None,
        description="A caller joining `queue` now would wait longer than this many seconds: "
        "the estimate announce_holdtime gives (callers ahead per agent staffed x the recent "
        "handle time), or forever when nobody staffs it. Unknown (no call handled yet): "
        "does not hold.",
    )
    agents_free: bool | None = Field(
        default=None,
        description="true: an agent of `queue` is free for a caller now; false: none is.",
    )
    queue_open: bool | None = Field(
        default=None,
        description="true: `queue` is open by its own hours (`queues.<q>.opening`; a queue "
        "without them is always open); false: it is closed.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> BranchCase:
        looks = [self.waiting_over, self.wait_over, self.agents_free, self.queue_open]
        if self.queue is None and any(t is not None for t in looks):
            raise PydanticCustomError(
                "branch_case", "waiting_over, wait_over, agents_free and queue_open need `queue:`"
            )
        if self.queue is not None and all(t is None for t in looks):
            raise PydanticCustomError(
                "branch_case",
                "`queue:` needs a test: waiting_over, wait_over, agents_free or queue_open",
            )
        tests = [self.equals, self.one_of, self.matches, self.present]
        if self.variable is None and any(t is not None for t in tests):
            raise PydanticCustomError(
                "branch_case", "equals, one_of, matches and present need `variable:`"
            )
        if self.variable is not None and all(t is None for t in tests):
            raise PydanticCustomError(
                "branch_case",
                "`variable:` needs a test: equals, one_of, matches or present",
            )
        conditions = [self.variable, self.caller, self.caller_list, self.dialed]
        conditions += [self.days, self.hours, self.dates, self.switch, self.queue]
        if all(c is None for c in conditions):
            raise PydanticCustomError(
                "branch_case",
                "a case needs a condition: variable, caller, caller_list, dialed, days, hours, "
                "dates, switch or queue",
            )
        return self


class BranchNode(_Model):
    """Choose the next node by variables, caller ID, dialled number or time."""

    kind: Literal["branch"] = Field(description="Take the first case whose conditions hold.")
    cases: list[BranchCase] = Field(min_length=1, description="Tried in order.")
    default: _Ref = Field(description="Node run when no case holds.")


class HolidayCalendar(_Model):
    """Public holidays of a country (and region), plus dates ops add."""

    country: str | None = Field(
        default=None,
        description='ISO country code for public holidays from the holidays package ("DE").',
    )
    subdivision: str | None = Field(
        default=None, description='State or region code within the country ("BE", "CA").'
    )
    dates: list[HolidayDate] = Field(
        default_factory=list,
        description='Extra closed days: "2026-12-24" (once) or "12-31" (every year).',
    )

    @model_validator(mode="after")
    def _known(self) -> HolidayCalendar:
        if self.country is None:
            if self.subdivision is not None:
                raise PydanticCustomError("holidays", "`subdivision:` needs `country:`")
            return self
        problem = country_problem(self.country, self.subdivision)
        if problem is not None:
            raise PydanticCustomError("holidays", "{problem}", {"problem": problem})
        return self


class ScheduleNode(_Model):
    """Business hours: go on to `open`, `closed` or `holiday`."""

    kind: Literal["schedule"] = Field(description="Branch on business hours and holidays.")
    timezone: TimeZone | None = Field(
        default=None, description="Time zone of the hours (default: ivr.timezone)."
    )
    hours: dict[DaySpec, list[TimeRange]] = Field(
        min_length=1,
        description=(
            'Opening hours by day: mon-fri: ["08:00-12:00", "13:00-18:00"]. Days not listed '
            "are closed; a day in two specs gets both."
        ),
    )
    holidays: HolidayCalendar | None = Field(
        default=None, description="Days closed all day (public holidays and added dates)."
    )
    special: dict[HolidayDate, list[TimeRange]] = Field(
        default_factory=dict,
        description='Days with other hours: {"12-24": ["09:00-13:00"]} (every year), '
        '{"2026-12-31": []} (that day, closed: `closed`, not `holiday`). They win over '
        "`hours` and `holidays`.",
        examples=[{"12-24": ["09:00-13:00"]}],
    )
    open: _Ref = Field(description="Node run within the opening hours.")
    closed: _Ref = Field(description="Node run outside them.")
    holiday: _Ref | None = Field(
        default=None, description="Node run on a holiday (default: `closed`)."
    )


class LanguageNode(_Model):
    """Set the prompt language for the rest of the call."""

    kind: Literal["language"] = Field(description="Switch the caller's prompt language.")
    language: _Language = Field(description='Language code of the prompts from now on ("fr").')
    next: _Ref = Field(description="Node run next.")


class SetNode(_Model):
    """Set call variables."""

    kind: Literal["set"] = Field(description="Set variables.")
    variables: dict[VarName, Template] = Field(
        min_length=1, description='Variable -> value, such as vip: "1" or who: "${caller_num}".'
    )
    next: _Ref = Field(description="Node run next.")


class LookupNode(_Model):
    """Ask an HTTP service (a CRM) about the call and store its answer in variables."""

    kind: Literal["lookup"] = Field(description="HTTP data dip; its JSON answer fills variables.")
    url: _Url = Field(description='URL asked, with variables: "http://crm/api?n=${caller_num}".')
    method: Literal["GET", "POST"] = Field(
        default="GET", description="GET, or POST with `body` as JSON."
    )
    body: dict[str, Template] | None = Field(
        default=None, description="JSON object POSTed (values may use variables)."
    )
    headers: dict[str, Template] = Field(
        default_factory=dict, description="Extra request headers (values may use variables)."
    )
    timeout: _Seconds = Field(
        default=2, description="Seconds for the whole request; then `fallback` runs."
    )
    fields: dict[VarName, _JsonPath] = Field(
        min_length=1,
        description=(
            'Variable -> dotted path in the JSON answer: customer_name: "customer.name". '
            "A path the answer lacks sets the variable to an empty string."
        ),
    )
    next: _Ref = Field(description="Node run after a 2xx JSON answer.")
    fallback: _Ref = Field(
        description="Node run on a timeout, a connection error, a non-2xx status or bad JSON."
    )


class QueueFiguresNode(_Model):
    """Read a queue's figures into call variables, to say them to the caller or pass them
    on (app_queue's QUEUE_WAITING_COUNT and QUEUE_MEMBER)."""

    kind: Literal["queue_figures"] = Field(
        description="A queue's figures now into variables: `<into>_waiting`, `_free`, "
        "`_staffed`, `_wait_minutes`, `_open`."
    )
    queue: _Ref = Field(description="Name of the queue (under `queues`).")
    into: Annotated[VarName, Field(max_length=48)] = Field(
        default="queue",
        description="Prefix of the variables set: `<into>_waiting` (callers waiting in it), "
        "`<into>_free` (agents free for a new caller now), `<into>_staffed` (members logged "
        "in, not paused), `<into>_wait_minutes` (the estimated wait of a caller joining now, "
        "in whole minutes rounded up as announce_holdtime says it, 0 when an agent is free for "
        'them; "" when nothing to go on) and `<into>_open` ("1", or "0" while its opening '
        "hours say closed).",
        examples=["sales"],
    )
    next: _Ref = Field(description="Node run next.")


class QueueNode(_Model):
    """Put the caller in a queue to wait for an agent."""

    kind: Literal["queue"] = Field(description="Wait in a queue for an agent.")
    queue: _Ref = Field(description="Name of the queue (under `queues`).")
    queue_from: VarName | None = Field(
        default=None,
        description="Variable naming the queue instead, such as the one a CRM lookup "
        "answered (`team_queue`): the caller waits there when it names a queue of the "
        "config (agents' CRM-directed routing); unset, empty or no such queue: `queue` "
        "(said in the IVR trace).",
        examples=["team_queue"],
    )
    priority: _Priority = Field(
        default=0, description="Callers with a higher priority are served before others."
    )
    priority_from: VarName | None = Field(
        default=None,
        description="Variable holding the priority (an integer); when unset, `priority`.",
    )
    head_start: _SecondsOrZero = Field(
        default=0,
        description="Seconds this caller is served as if they had waited longer, among "
        "callers of the same priority (mod_callcenter's cc_base_score): a VIP 300 s ahead "
        "goes before everyone who joined less than 5 minutes earlier, not before all, as a "
        "higher priority would. Their wait, escalation and records are their own.",
        examples=[300],
    )
    head_start_from: VarName | None = Field(
        default=None,
        description="Variable holding the head start in seconds (a lookup's answer); when "
        "unset or not a number, `head_start`.",
    )
    agent_from: VarName | None = Field(
        default=None,
        description="Variable naming the agent this caller is offered first, such as the "
        "account manager a lookup found (`owner`): when free and a member of the queue with "
        "the skills the caller needs, they ring at once, ahead of the queue's order (and of "
        "`last_agent`). Empty or not such an agent: the queue's order.",
        examples=["owner"],
    )
    agent_wait: _SecondsOrZero = Field(
        default=0,
        description="With `agent_from`: seconds the caller waits for that agent alone while "
        "they are busy (talking, in after-call work), with music; then anyone. 0: anyone at "
        "once. A paused or logged-out agent is not waited for.",
    )
    skills: list[Template] = Field(
        default_factory=list,
        description=(
            'Skills the agent needs, such as ["billing", "${language}"]; a value with commas '
            "gives several skills, an empty value none."
        ),
    )


class TransferNode(_Model):
    """Send the caller to another number (only numbers ivr.transfer_allow lists)."""

    kind: Literal["transfer"] = Field(description="Blind-transfer the caller to a number.")
    to: Template = Field(description='Number, or a variable holding one: "2100", "${owner}".')
    prompt: Prompt | None = Field(default=None, description="Played before the transfer.")
    fallback: _Ref | None = Field(
        default=None,
        description=(
            "Node run when the number is not allowed or the transfer fails. Required when "
            "`to` uses a variable (it is only known while the call runs)."
        ),
    )


class VoicemailNode(_Model):
    """Record a message into the voicemail folder; it is listed in the call's CDR."""

    kind: Literal["voicemail"] = Field(description="Record a voicemail message.")
    box: Name = Field(description="Mailbox: the sub-folder of ivr.voicemail_folder.")
    prompt: Prompt | None = Field(
        default=None, description='Played before the beep ("leave your message after the tone").'
    )
    beep: bool = Field(default=True, description="Play a beep before recording.")
    max_seconds: _Seconds = Field(default=120, description="Longest message, in seconds.")
    silence_seconds: _Seconds | None = Field(
        default=5, description="Stop after this many seconds of silence (null: never)."
    )
    end_key: DtmfKey | None = Field(default="#", description="Key that ends the message.")
    format: Literal["wav", "gsm", "wav49", "ulaw", "alaw", "sln"] = Field(
        default="wav", description="Sound format the PBX writes."
    )
    next: _Ref | None = Field(
        default=None, description="Node run after the message (default: hang up)."
    )
    fallback: _Ref | None = Field(
        default=None, description="Node run when nothing could be recorded (default: hang up)."
    )


class CallbackNode(_Model):
    """Offer a call back: the caller confirms their number or keys another one."""

    kind: Literal["callback"] = Field(description="Take a callback request.")
    queue: _Ref = Field(description="Queue (under `queues`) whose agents call back.")
    prompt: Prompt = Field(
        default="we-will-call-you-back-at",
        description="Played before the caller's number is read back.",
    )
    confirm_prompt: Prompt = Field(
        default="press-1-to-confirm-2-for-another-number",
        description="Asks to confirm the number read back.",
    )
    enter_prompt: Prompt = Field(
        default="enter-callback-number", description="Asks for the number to be called back."
    )
    confirm_key: DtmfKey = Field(default="1", description="Key that confirms the number.")
    other_key: DtmfKey = Field(default="2", description="Key that asks to key another number.")
    min_digits: int = Field(default=3, ge=1, le=32, description="Shortest number accepted.")
    max_digits: int = Field(default=16, ge=1, le=32, description="Longest number accepted.")
    timeout: _Seconds = Field(default=6, description="Seconds to wait for a key.")
    retries: _Retries = Field(default=3, description="Attempts before `default` runs.")
    invalid_prompt: Prompt = Field(
        default="invalid", description="Played after a wrong key or a number too short."
    )
    variable: VarName = Field(
        default="callback_number", description="Variable that receives the number."
    )
    next: _Ref = Field(description="Node run once the request is stored.")
    default: _Ref = Field(description="Node run when no number was confirmed.")

    @model_validator(mode="after")
    def _lengths(self) -> CallbackNode:
        if self.min_digits > self.max_digits:
            raise PydanticCustomError(
                "digit_range",
                "min_digits ({min}) must not be more than max_digits ({max})",
                {"min": self.min_digits, "max": self.max_digits},
            )
        if self.confirm_key == self.other_key:
            raise PydanticCustomError("keys", "confirm_key and other_key must differ")
        return self


class SubflowNode(_Model):
    """Run another flow; its `return` nodes come back here and `next` runs."""

    kind: Literal["subflow"] = Field(description="Run another flow, then come back.")
    flow: _Ref = Field(description="Name of the flow (under `flows`) to run.")
    next: _Ref = Field(description="Node run when the subflow reaches a `return` node.")


class GotoNode(_Model):
    """Continue at a node of this or another flow (no coming back)."""

    kind: Literal["goto"] = Field(description="Jump to a node, possibly in another flow.")
    flow: _Ref | None = Field(default=None, description="Flow to continue in (default: this one).")
    node: _Ref | None = Field(
        default=None, description="Node to continue at (default: the flow's start node)."
    )

    @model_validator(mode="after")
    def _somewhere(self) -> GotoNode:
        if self.flow is None and self.node is None:
            raise PydanticCustomError("goto", "say where to go: `flow:`, `node:` or both")
        return self


class ReturnNode(_Model):
    """Go back to the subflow node that ran this flow."""

    kind: Literal["return"] = Field(description="End this subflow; the caller's `next` runs.")


class HangupNode(_Model):
    """End the call."""

    kind: Literal["hangup"] = Field(description="Hang up.")
    prompt: Prompt | None = Field(
        default=None, description="Sound file played before hanging up, if any."
    )


Node = Annotated[
    PlayNode
    | MenuNode
    | CollectNode
    | BranchNode
    | ScheduleNode
    | LanguageNode
    | SetNode
    | LookupNode
    | QueueFiguresNode
    | QueueNode
    | TransferNode
    | VoicemailNode
    | CallbackNode
    | SubflowNode
    | GotoNode
    | ReturnNode
    | HangupNode,
    Field(discriminator="kind"),
]
"""One step of an IVR flow, chosen by its ``kind``."""


class FlowConfig(_Model):
    """An IVR flow: a graph of nodes walked from ``start``."""

    start: _Ref = Field(description="Id of the first node a call runs.")
    nodes: dict[Name, Node] = Field(
        min_length=1, description="The nodes of the flow by id; each has a `kind`."
    )


class IvrConfig(_Model):
    """Settings every IVR flow shares."""

    prompt_folder: _Text | None = Field(
        default=None,
        description=(
            "Folder of the PBX's sound files (/var/lib/asterisk/sounds). When set, `check` "
            "makes sure every prompt exists there as <lang>/<prompt>.<ext> or "
            "<prompt>.<ext>, for each language a call can be in. Relative to the config file."
        ),
    )
    default_language: _Language = Field(
        default="en", description="Language of calls before a `language` node changes it."
    )
    timezone: TimeZone = Field(
        default="UTC", description="Time zone of schedules and time branches that name none."
    )
    voicemail_folder: _Text = Field(
        default="var/voicemail",
        description=(
            "Folder voicemail messages are recorded into, one sub-folder per box; the PBX "
            "writes there. Relative to the config file."
        ),
    )
    transfer_context: _Text = Field(
        default="callcenter-transfer",
        description="Dialplan context a transfer node sends the caller to (context,number,1).",
    )
    transfer_allow: list[NumberPattern] = Field(
        default_factory=list,
        description=(
            'Numbers a transfer node may send callers to: "2100", "+4930123456" or patterns '
            '("_21XX"). Anything else is refused by `check` and, for numbers from variables, '
            "while the call runs."
        ),
    )
    number_lists: dict[Name, list[NumberPattern]] = Field(
        default_factory=dict,
        description="Named lists of numbers/patterns for branch cases (`caller_list: vip`).",
    )
    switches: dict[Name, _Text] = Field(
        default_factory=dict,
        description="Switches ops flip while the centre runs (`callcenter switch on storm`, "
        "POST /switches/storm/on) and flows test (a branch case's `switch: storm`): name -> "
        "what it is for. Off until flipped; a flip is kept across restarts.",
        examples=[{"storm": "Closed for the storm: callers hear the storm message"}],
    )
    switch_codes: dict[Digits, Name] = Field(
        default_factory=dict,
        description="Switches a supervisor flips from their phone: code -> switch. `*28` + "
        "the code (`*281`) turns the switch on when it is off and off when it is on; the "
        "supervisor is known by their phone (supervisors.<id>.device) and gives their PIN "
        'if they have one, then hears "activated" or "de-activated".',
        examples=[{"1": "storm"}],
    )
    max_steps_without_input: int = Field(
        default=50,
        ge=5,
        le=1000,
        description=(
            "Nodes a call may run without the caller pressing a key before it is ended "
            "(a guard; `check` already refuses loops that wait for nobody)."
        ),
    )

    @model_validator(mode="after")
    def _codes_name_switches(self) -> IvrConfig:
        unknown = sorted({name for name in self.switch_codes.values()} - set(self.switches))
        if unknown:
            raise ValueError(
                f"switch_codes names {', '.join(unknown)}, which ivr.switches does not list"
            )
        return self


# --------------------------------------------------------------------------- queues and agents

StrategyName = Literal[
    "ringall",
    "longest-idle-agent",
    "leastrecent",
    "rrmemory",
    "rrordered",
    "fewest-calls",
    "least-talk-time",
    "linear",
    "top-down",
    "random",
    "weighted-random",
    "ring-progressively",
]
"""Routing strategies (see :mod:`callcenter.acd.strategies`)."""


def _strategy_alias(value: object) -> object:
    """app_queue / mod_callcenter spellings (fewestcalls, round-robin ...) -> our names."""
    from callcenter.acd.strategies import ALIASES

    return str(ALIASES[value]) if isinstance(value, str) and value in ALIASES else value


def _check_dial_template(value: str) -> str:
    sample = value.replace("${number}", "5551234")
    if "${number}" not in value or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*/\S+", sample):
        raise PydanticCustomError(
            "dial_template",
            'must be a device with {placeholder} where the number goes, such as "{example}", '
            'not "{value}"',
            {"value": value, "placeholder": "${number}", "example": "PJSIP/${number}@trunk"},
        )
    return value


_DialTemplate = Annotated[str, Strict(), AfterValidator(_check_dial_template)]
_Level = Annotated[int, Field(ge=1, le=10)]
_Penalty = Annotated[int, Field(ge=0, le=100)]
_Count = Annotated[int, Field(ge=0, le=1_000_000)]


class EscalationStep(_Model):
    """From ``after`` seconds of waiting on, who may take a caller (steps only widen)."""

    after: _SecondsOrZero = Field(
        description="Seconds of waiting from which this step applies (the first step: 0)."
    )
    max_penalty: _Penalty | None = Field(
        default=None, description="Highest member penalty allowed (null: any penalty)."
    )
    min_level: _Level = Field(
        default=1,
        description="Lowest level needed in each skill the caller needs (1: anyone with it).",
    )


class QueueExit(_Model):
    """Where a caller goes when leaving a queue unanswered (a plain word such as
    ``callback`` or ``hangup`` is short for ``{to: ...}``)."""

    to: Literal["hangup", "queue", "voicemail", "callback", "flow"] = Field(
        description=(
            "hangup; queue (another queue, `queue:`); voicemail (a message into `box:`); "
            "callback (the caller hangs up keeping their place and is called back); "
            "flow (an IVR flow, `flow:`)."
        )
    )
    prompt: Prompt | None = Field(default=None, description="Played first, if any.")
    queue: _Ref | None = Field(default=None, description="The queue, for `to: queue`.")
    box: Name | None = Field(default=None, description="The mailbox, for `to: voicemail`.")
    flow: _Ref | None = Field(default=None, description="The flow, for `to: flow`.")

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, data: Any) -> Any:
        return {"to": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _fields_match(self) -> QueueExit:
        needs = {"queue": "queue", "voicemail": "box", "flow": "flow"}
        for kind, name in needs.items():
            given = getattr(self, name) is not None
            if self.to == kind and not given:
                raise PydanticCustomError(
                    "queue_exit", "`to: {kind}` needs `{name}:`", {"kind": kind, "name": name}
                )
            if self.to != kind and given:
                raise PydanticCustomError(
                    "queue_exit",
                    "`{name}:` only goes with `to: {kind}`",
                    {"kind": kind, "name": name},
                )
        return self


def _widening(steps: list[EscalationStep]) -> list[EscalationStep]:
    """Escalation steps start at 0, come later and later, and only ever widen the pool."""
    for i, (before, step) in enumerate(itertools.pairwise([None, *steps])):
        if before is None:
            if step is not None and step.after != 0:
                raise PydanticCustomError("escalation", "the first step must have after: 0")
            continue
        assert step is not None
        narrower = (
            step.after <= before.after
            or (before.max_penalty is None and step.max_penalty is not None)
            or (
                step.max_penalty is not None
                and before.max_penalty is not None
                and step.max_penalty < before.max_penalty
            )
            or step.min_level > before.min_level
        )
        if narrower:
            raise PydanticCustomError(
                "escalation",
                "step {i} must come later than the one before and only widen it "
                "(max_penalty up or null, min_level down)",
                {"i": i},
            )
    return steps


def _default_exit(prompt: str) -> typing.Callable[[], QueueExit]:
    return lambda: QueueExit(to="hangup", prompt=prompt)


class QueueHours(_Model):
    """When a queue takes callers: a caller sent to it outside (by the IVR, a transfer, an
    overflow) goes to its ``on_closed``."""

    timezone: TimeZone | None = Field(
        default=None, description="Time zone of the hours (default: ivr.timezone)."
    )
    hours: dict[DaySpec, list[TimeRange]] = Field(
        min_length=1,
        description='Opening hours by day: mon-fri: ["08:00-18:00"]. Days not listed are closed.',
    )
    holidays: HolidayCalendar | None = Field(
        default=None, description="Days closed all day (public holidays and added dates)."
    )
    special: dict[HolidayDate, list[TimeRange]] = Field(
        default_factory=dict,
        description='Days with other hours than the week\'s: {"12-24": ["09:00-13:00"]} (every '
        'year), {"2026-12-31": []} (that day, closed). They win over `hours` and `holidays` '
        "(a public holiday the centre opens).",
        examples=[{"12-24": ["09:00-13:00"], "2026-12-27": []}],
    )


class CallbackSlots(_Model):
    """How many callbacks asked for a later time each stretch of a queue's day takes: a
    promise of 10:00 is kept only if 10:00 is not promised to everyone."""

    minutes: int = Field(
        default=15,
        ge=5,
        le=240,
        description="Length of a slot, counted from midnight in the queue's time zone "
        "(15: 10:00, 10:15, ...).",
    )
    at_most: int = Field(
        ge=1,
        le=10000,
        description="Callbacks asked for a later time one slot takes. A web request for a "
        "full slot is refused (409) with the next slot that has room; the callbacks the "
        "daemon places itself (at a closed queue's opening, an abandoned caller's) go to "
        "the next slot with room, which spreads a night's requests over the morning.",
        examples=[10],
    )


class QueueAlerts(_Model):
    """Thresholds that raise a ``QueueAlert`` event (webhooks, MQTT, ``GET /events``, a
    gauge in /metrics) while the queue stands beyond them, and clear it once back: a
    supervisor paged before the callers give up."""

    waiting: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Raised while this many callers or more wait. null: not watched.",
        examples=[10],
    )
    longest_wait: _Seconds | None = Field(
        default=None,
        description="Raised while a caller has waited this many seconds or more. null: not "
        "watched.",
        examples=[120],
    )
    voicemails: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Raised while this many voicemail messages or more wait to be called back "
        "(the queue's mailbox). null: not watched.",
        examples=[5],
    )
    oldest_voicemail: _Seconds | None = Field(
        default=None,
        description="Raised while a voicemail message of the queue's mailbox left this many "
        "seconds ago or more is still to deal with (waiting, or taken and not settled: a "
        "caller promised a call back who has not had it). null: not watched.",
        examples=[3600],
    )
    expected_wait: _Seconds | None = Field(
        default=None,
        description="Raised while a caller calling now would wait this many seconds or more "
        "(the wait the wallboard and GET /queues/<q>/wait say: the queue's handle time and "
        "the agents at work): time to offer callbacks or call in help, before the waits "
        "already long say so. null: not watched.",
        examples=[180],
    )


PAUSE_REASONS: Final = ("break", "lunch", "training", "meeting")
"""The pause reasons of a config that lists none."""


def _lamp(placeholder: str) -> typing.Callable[[str], str]:
    return _matcher(
        r"[A-Za-z0-9_.+@-]*\$\{" + placeholder + r"\}[A-Za-z0-9_.+@-]*",
        "lamp_name",
        f"must name each {placeholder}'s lamp with ${{{placeholder}}} once, in letters, digits "
        f'and _.+@- (such as "callcenter-{placeholder}-${{{placeholder}}}")',
    )


_AgentLamp = Annotated[str, Strict(), AfterValidator(_lamp("agent"))]
_QueueLamp = Annotated[str, Strict(), AfterValidator(_lamp("queue"))]


class BusyLamps(_Model):
    """The busy lamps (BLF keys) of phones that watch agents and queues: a supervisor's
    phone, a colleague's sidecar. Asterisk: the daemon sets the custom device state
    Custom:<name>; map it to an extension with a hint (exten => agent-1001,hint,
    Custom:callcenter-agent-1001) and point the phones' BLF keys at that extension.
    FreeSWITCH: the daemon sends the presence of <name>, a user@domain the BLF keys
    watch."""

    agent: _AgentLamp | None = Field(
        default=None,
        description="Each agent's lamp, ${agent} their id: off while they are ready, "
        "flashing while their phone rings for a caller, on during a call and after-call "
        "work (or any call on their phone), on hold during a break, unavailable when "
        "logged out (FreeSWITCH: off). None: no agent lamps.",
        examples=["callcenter-agent-${agent}", "agent-${agent}@pbx.example.com"],
    )
    queue: _QueueLamp | None = Field(
        default=None,
        description="Each queue's lamp, ${queue} its name: off while nobody waits, on "
        "while callers wait, flashing once one has waited longer than the queue's "
        "service_level. None: no queue lamps.",
        examples=["callcenter-queue-${queue}"],
    )


class AgentAlerts(_Model):
    """How long an agent may stay in a state before an ``AgentAlert`` event (webhooks,
    MQTT, ``GET /events``, the wallboard and supervisors' desktops, a gauge in /metrics)
    says so; cleared when they leave it. Real-time adherence: a break that runs over, a
    wrap-up nobody ends, a call that goes on and on."""

    paused: _Seconds | None = Field(
        default=None,
        description="Seconds paused (any reason not in pause_reasons) before the alert. "
        "null: not watched.",
        examples=[1800],
    )
    pause_reasons: dict[_Text, _Seconds] = Field(
        default_factory=dict,
        description="Seconds per pause reason (of the top-level pause_reasons), instead of "
        "`paused`: a lunch may last longer than a break.",
        examples=[{"break": 900, "lunch": 3600}],
    )
    wrap_up: _Seconds | None = Field(
        default=None,
        description="Seconds in after-call work before the alert (a queue's wrapup ends "
        "it by itself; this watches agents who hold it open). null: not watched.",
        examples=[180],
    )
    on_call: _Seconds | None = Field(
        default=None,
        description="Seconds on one call before the alert (a supervisor may want to listen "
        "in). null: not watched.",
        examples=[1200],
    )
    absent: _Seconds | None = Field(
        default=None,
        description="Seconds an agent with a `schedule` may be logged out while scheduled "
        "(late from their start, or gone before its end) before the alert (figure "
        "`absent`); cleared when they log in or the scheduled stretch ends. null: not "
        "watched.",
        examples=[300],
    )

    def threshold(self, state: str, reason: str | None) -> float | None:
        """The seconds an agent may stay in ``state`` (``paused`` for ``reason``)."""
        if state == "paused":
            by_reason = self.pause_reasons.get(reason or "")
            return by_reason if by_reason is not None else self.paused
        if state == "wrap_up":
            return self.wrap_up
        if state == "on_call":
            return self.on_call
        return None


class AbandonedCallback(_Model):
    """Calling back the callers who hung up waiting ("we saw you called")."""

    after: _SecondsOrZero = Field(
        default=120,
        description="Seconds after the hang-up the call back is asked for (it then waits "
        "its turn in the queue as any callback); a caller who calls again meanwhile is not "
        "called back.",
    )
    min_wait: _SecondsOrZero = Field(
        default=10,
        description="Only callers who waited at least this long (shorter: a wrong number, a "
        "change of mind).",
    )


class SurveyConfig(_Model):
    """A post-call survey: the IVR flow a caller walks after the agent hung up."""

    flow: _Ref = Field(
        description="The flow (under `flows`) the caller walks: prompts, then `collect` or "
        "`menu` nodes that set variables, ending in `hangup` (a `queue` node would put the "
        'caller back in a queue: "press 0 to talk to someone again").'
    )
    score: VarName | None = Field(
        default=None,
        description="The variable the flow stores the score in (digits, such as 1-5): "
        "reports give each agent's and queue's mean score. null: answers are kept, no score.",
    )
    satisfied_from: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Scores this high or higher count as satisfied: reports give the share "
        "of scored surveys that are (CSAT %; 4 on a 1-5 scale is the usual top-two box). "
        "null: mean score only.",
        examples=[4],
    )
    opt_in: VarName | None = Field(
        default=None,
        description="Only callers for whom the IVR set this variable (to anything but empty, "
        '"0" or "no") are surveyed, e.g. after "press 1 to take a short survey after your '
        'call". null: every caller still on the line once the agent hung up.',
    )


class QueueConfig(_Model):
    """A queue of callers served by a set of agents."""

    strategy: Annotated[StrategyName, BeforeValidator(_strategy_alias)] = Field(
        default="longest-idle-agent",
        description=(
            "How the next agent is chosen: ringall, longest-idle-agent, leastrecent, "
            "rrmemory/rrordered (round robin with memory), fewest-calls, least-talk-time, "
            "linear/top-down, random, weighted-random, ring-progressively. app_queue and "
            "mod_callcenter spellings (fewestcalls, round-robin, ring-all, wrandom, "
            "agent-with-least-talk-time ...) work too."
        ),
    )
    agents: list[_Ref] = Field(
        default_factory=list,
        description="Ids of the agents (under `agents`) who serve it; the order is the "
        "tie-break of every strategy (and the order of linear/top-down).",
    )
    penalties: dict[_Ref, _Penalty] = Field(
        default_factory=dict,
        description='Member penalty (tier), such as {"1003": 1}: a lower penalty is always '
        "offered first; missing: 0.",
    )
    member_weights: dict[_Ref, Annotated[float, Field(gt=0, le=1000)]] = Field(
        default_factory=dict,
        description='Member weights for weighted-random, such as {"1001": 3}; missing: 1.',
    )
    weight: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Agents in several queues serve the queue with the highest weight first.",
    )
    skills: list[Name] = Field(
        default_factory=list,
        description="Skills every caller of this queue needs (the IVR can add more).",
    )
    escalation: Annotated[list[EscalationStep], AfterValidator(_widening)] = Field(
        default_factory=list,
        description=(
            "Who may take a caller as the wait grows, such as [{after: 0, max_penalty: 0, "
            "min_level: 5}, {after: 30, max_penalty: 1}, {after: 90}]. Empty: anyone with "
            "the skills at once."
        ),
    )
    short_abandon: _SecondsOrZero = Field(
        default=0,
        description="Callers who hang up within this many seconds of joining (a wrong "
        "number, a mind changed at the greeting) are short abandons: counted apart "
        "(`short_abandoned`), neither as abandoned nor among the callers the service level "
        "and the abandon rate are of (`report --queues`, the wallboard, MQTT, /metrics' "
        "callcenter_queue_short_abandoned_total). 0: every hang-up in the queue is an abandon.",
        examples=[5],
    )
    escalate_unstaffed: bool = Field(
        default=False,
        description="A caller moves on to the next escalation step at once, not at its "
        "`after`, while nobody who may take them at their step is logged in, unpaused and on "
        "a reachable phone (mod_callcenter's tier-rule-no-agent-no-wait): when they join, "
        "and when the last such agent logs out or pauses. Off: a step nobody staffs is "
        "waited out.",
    )
    ring_timeout: _Seconds = Field(
        default=15, description="Seconds an agent rings before the next agent is tried."
    )
    progressive_interval: _Seconds = Field(
        default=5,
        description="ring-progressively: seconds before one more agent joins those ringing.",
    )
    wrapup: _SecondsOrZero = Field(
        default=0, description="Seconds of after-call work before an agent gets the next call."
    )
    wrapup_until_ready: bool = Field(
        default=False,
        description="After a call of this queue the agent stays in wrap-up until they say "
        "they are ready (`*75`, `callcenter agent ready`, POST /agents/<id>/ready), however "
        "long it takes (manual-in after-call work); `wrapup` seconds do not end it.",
    )
    disposition_required: bool = Field(
        default=False,
        description="After a call of this queue the agent's wrap-up lasts until they give it "
        "a disposition (`callcenter agent disposition`, POST /agents/<id>/disposition): "
        "`wrapup` is then the least it lasts, and `ready` (*75) is refused until then.",
    )
    no_answer_delay: _SecondsOrZero = Field(
        default=0, description="Seconds an agent who let an offer ring out is not offered calls."
    )
    busy_delay: _SecondsOrZero = Field(
        default=5,
        description="Seconds an agent whose phone was busy, unreachable (not registered) or "
        "congested is not offered calls. 0 offers them again at once: a phone that fails "
        "every call at once would be rung hundreds of times a second.",
    )
    reject_delay: _SecondsOrZero = Field(
        default=5,
        description="Seconds an agent who declined an offer (or whose phone is on do not "
        "disturb) is not offered calls. 0: at once, with the same risk as busy_delay.",
    )
    autopause: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Pause an agent after this many offers in a row failed in a way "
        "autopause_on counts (0: never). The pause reason says which: no-answer, busy or "
        "rejected.",
    )
    autopause_on: list[Literal["no-answer", "busy", "rejected"]] = Field(
        default=["no-answer"],
        min_length=1,
        description="Which failed offers count toward autopause: no-answer (the phone rang "
        "out), busy (busy, not reachable or congested: app_queue's autopausebusy and "
        "autopauseunavail) and rejected (declined, or do not disturb on phones that decline). "
        "Counting busy pauses an agent whose phone is off or on do not disturb, instead of "
        "offering them a call every busy_delay all shift while they show as available. An "
        "offer that fails in a way not counted leaves the count as it was.",
        examples=[["no-answer", "busy", "rejected"]],
    )
    ring_in_use: bool = Field(
        default=False,
        description="Offer calls to agents whose phone the PBX reports in use. A phone the "
        "PBX cannot reach (not registered: Asterisk UNAVAILABLE, FreeSWITCH unregistered) is "
        "never offered calls, as app_queue skips Unavailable members.",
    )
    digits: Digits | None = Field(
        default=None,
        description="What an agent dials after `*45` to join this queue from their phone, or "
        "to leave it when they are a member (`*451`), as `agent join` / `agent leave` do "
        "(kept across restarts). None: no code for it.",
        examples=["1"],
    )
    screen_pop: _Url | None = Field(
        default=None,
        description="A page of your CRM about the caller, linked from the agent's desktop "
        "while the call rings and is talked on (opens in a new tab): ${caller_num}, "
        "${caller_name}, ${number} (the person talked to: the caller, or the number "
        "dialled), ${queue}, ${agent}, ${call_id} and the call's IVR variables fill it, "
        "URL-encoded. None: acd.screen_pop, if any.",
        examples=["https://crm.example/contacts?phone=${number}&ticket=${ticket}"],
    )
    script: Name | None = Field(
        default=None,
        description="The call script (under `scripts`) this queue's agents see on their "
        "desktop while its calls ring and are talked on. None: no script.",
        examples=["welcome"],
    )
    dispositions: list[Name] | None = Field(
        default=None,
        description="The codes (under `dispositions`) agents may give this queue's calls: "
        "their desktop offers only these, and the API, the CLI and `*76` refuse the others. "
        "None: every code.",
        examples=[["sale", "no-interest", "callback"]],
    )
    mailbox: Name | None = Field(
        default=None,
        description="Voicemail box (a sub-folder of ivr.voicemail_folder) whose messages "
        "this queue's agents listen to and call back: each message left in it (an IVR "
        "voicemail node, a queue exit to voicemail) waits on their desktops and in "
        "GET /voicemails until one of them takes it. None: messages are files only. A box "
        "belongs to one queue at most.",
        examples=["sales"],
    )
    message_lamp: _Mailbox | None = Field(
        default=None,
        description="The mailbox whose message-waiting lamp the PBX lights on the phones "
        "subscribed to it while messages of this queue's mailbox wait for an agent (new: "
        "waiting; old: taken, not yet dealt with). Asterisk: box@context, set by MWIUpdate "
        "(load res_mwi_external_ami; list it in the agents' PJSIP endpoints' mailboxes=); "
        "FreeSWITCH: user@domain, sent as MESSAGE_WAITING (set the agents' users' "
        "MWI-Account to it). None: no lamp.",
        examples=["sales@callcenter"],
    )
    hold_music: _Text = Field(
        default="default",
        description="Music-on-hold class callers hear while waiting and while an agent's "
        "phone rings; `ringback`: a ring tone instead, as if the phone still rang "
        "(app_queue's `r` option; announcements still play).",
        examples=["default", "ringback"],
    )
    service_level: _Seconds = Field(
        default=20.0,
        description="Callers answered within this many seconds of joining count toward "
        "the queue's service level (app_queue's servicelevel; callcenter_queue_answered_"
        "in_service_level_total in /metrics).",
    )
    caller_id: str | None = Field(
        default=None,
        description="Caller ID the people the centre calls for this queue see (its callbacks, "
        "agents' own calls through it), so that they see the line of the queue to call "
        'back, such as "0800123456". Unset: acd.callback_caller_id / acd.dial_out_caller_id.',
        examples=["0800123456"],
    )
    record: bool = Field(
        default=False,
        description="Record every call of this queue an agent answers, from the answer to "
        "the hang-up (transfers included), into acd.recordings_folder/<queue>/; the CDR's "
        "recordingfile names the file.",
    )
    record_share: Annotated[float, Field(gt=0, le=1)] = Field(
        default=1,
        description="With `record`: the share of the queue's answered calls recorded, drawn "
        "at random per call (0.1: one in ten, for quality reviews). 1: every one.",
        examples=[0.1],
    )
    announce: Prompt | None = Field(
        default=None, description="Sound file played to a caller on joining the queue."
    )
    agent_announce: AgentPrompt | None = Field(
        default=None,
        description="Sound file played to the agent who answers, before the caller is put "
        'through (app_queue\'s member announcement), such as "custom/queue-sales": agents who '
        "take calls from several queues or campaigns hear which one this is. The caller is "
        "kept waiting meanwhile (FreeSWITCH: the queue's music goes on; Asterisk: silence). "
        "The agent counts as answering once the caller is put through: one who hangs up "
        "during the announcement leaves the caller waiting, as a ring not taken. Call "
        'variables fill ${...}: "custom/tier-${tier}" tells the agent a VIP calls (a '
        "variable unset or not a file name: no announcement for that call).",
        examples=["custom/queue-sales", "custom/tier-${tier}"],
    )
    report_holdtime: _SecondsOrZero | None = Field(
        default=None,
        description="Tell the agent who answers how long the caller waited, when it was at "
        "least this many seconds (0: always), before the caller is put through (app_queue's "
        'reportholdtime): "queue-reporthold" ("hold time"), then the whole minutes and '
        '"queue-minutes" from a minute on, else the seconds and "queue-seconds", after '
        "agent_announce. The wait counts to the moment the agent's phone starts ringing. "
        "Asterisk runs the shipped dialplan's [callcenter-agent-hear] for it (Dial's U "
        "option: paste that context; `callcenter check --pbx` looks for it); FreeSWITCH says "
        "the number through its say_string in the call's language. An agent who hangs up "
        "during it: on FreeSWITCH a ring not taken (the caller waits on); on Asterisk "
        "app_dial puts the caller through all the same, as app_queue does, so it is a talk "
        "the agent ended at once. None: never.",
        examples=[60, 0],
    )
    member_delay: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Seconds of silence the agent who answers hears before anything else "
        "(app_queue's memberdelay): time for a headset's audio to come up, or to put the "
        "last call's notes away, before agent_announce, report_holdtime and the caller. "
        "The caller keeps hearing the queue's music or ringing meanwhile; the agent counts "
        "as answering once the caller is put through. Not for campaigns' leads (waiting for "
        "an agent already) nor an agent's own calls. Asterisk runs the shipped dialplan's "
        "[callcenter-agent-wait] for it (Dial's U option; `callcenter check --pbx` looks "
        "for it), FreeSWITCH plays silence_stream. None: the caller is put through at once.",
        examples=[2],
    )
    evaluation_form: _Ref | None = Field(
        default=None,
        description="The scorecard (`evaluation_forms`) this queue's calls are scored with; "
        "null: the first.",
    )
    agent_caller_name: Template | None = Field(
        default=None,
        description="The caller's name as the agents' phones show it while they ring "
        "(mod_callcenter's cc_outbound_cid_name_prefix), from ${queue}, ${caller_name}, "
        '${caller_num} and the call\'s IVR variables: "Sales ${caller_name}" shows "Sales '
        "Ann\"; the number stays the caller's. Letters, digits, spaces and .@+*#_- are kept "
        "(the rest becomes a space), up to 40. On Asterisk it becomes the caller channel's "
        "CALLERID(name) (one AGI command per queue visit). None: the caller's own name.",
        examples=["Sales ${caller_name}", "${tier} ${caller_name}"],
    )
    periodic_announce: list[Prompt] = Field(
        default_factory=list,
        description="Sound files played in turn every periodic_announce_frequency seconds.",
    )
    periodic_announce_frequency: _Seconds = Field(
        default=60, description="Seconds between periodic announcements."
    )
    periodic_announce_order: Literal["in-turn", "random"] = Field(
        default="in-turn",
        description="in-turn: the files one after the other, from the first; random: any "
        "of them, never the same twice in a row (app_queue's random-periodic-announce).",
    )
    periodic_announce_relative: bool = Field(
        default=False,
        description="Count periodic_announce_frequency from the end of the last "
        "announcement, not its start (app_queue's relative-periodic-announce): long "
        "announcements keep music between them.",
    )
    announce_position: bool = Field(
        default=False, description="Tell callers their position in the queue."
    )
    announce_holdtime: bool = Field(
        default=False,
        description="Tell callers their estimated wait: (position - agents free) x the mean "
        "handle time (talk + wrap-up) of the queue's last 20 calls / agents logged in and not "
        "paused (a call ends every handle time / agents on average).",
    )
    announce_frequency: _Seconds = Field(
        default=30,
        description="Seconds between position/wait announcements; a position is announced "
        "only when it improved since the last one.",
    )
    announce_position_limit: int = Field(
        default=0,
        ge=0,
        description="Announce positions up to this one only (0: any position).",
    )
    last_agent: _SecondsOrZero = Field(
        default=0,
        description="Sticky agent: a caller (known by their number) who talked to an agent "
        "of this queue less than this many seconds ago is offered that agent first when "
        "they call again, if the agent is free that moment and has the skills the caller "
        "needs (penalties and escalation stages do not count); otherwise the strategy "
        "decides, as usual. Read from the CDRs, so it holds across restarts. 0: off.",
        examples=[86400],
    )
    last_agent_wait: _SecondsOrZero = Field(
        default=0,
        description="With last_agent: a caller whose agent is busy (talking, in after-call "
        "work, their phone in use) waits up to this many seconds for them, with music, "
        "before any other agent may take the call; the agent is kept for the caller the "
        "moment they are free. Not for an agent who is paused or logged out. 0: no wait.",
        examples=[30],
    )
    alerts: QueueAlerts | None = Field(
        default=None,
        description="Thresholds of waiting callers and of the longest wait that raise a "
        "QueueAlert event while the queue stands beyond them (checked every second).",
        examples=[{"waiting": 10, "longest_wait": 120}],
    )
    opening: QueueHours | None = Field(
        default=None,
        description="Opening hours of the queue itself: callers sent to it when it is "
        "closed (by the IVR, an agent's transfer, another queue's overflow) go to "
        "`on_closed` instead of waiting for agents who went home; the queue_log writes "
        "JOINEMPTY for them. null: always open (the IVR's schedule nodes decide).",
        examples=[{"hours": {"mon-fri": ["08:00-18:00"]}, "holidays": {"country": "DE"}}],
    )
    on_closed: QueueExit = Field(
        default_factory=lambda: QueueExit(to="hangup", prompt="we-are-closed"),
        description="Where a caller sent to the queue while it is closed goes (default: "
        "the prompt we-are-closed, then hang up): voicemail, another queue, a flow, or a "
        "callback (kept until agents come, within callback_max_age).",
    )
    abandoned_callback: AbandonedCallback | None = Field(
        default=None,
        description="Call back the callers who hang up while waiting (known numbers that "
        "acd.callback_allow lists; campaign leads never), as a callback request of this "
        "queue, with the variables their IVR set. null: off.",
        examples=[{"after": 120, "min_wait": 10}],
    )
    resume_abandoned: _SecondsOrZero = Field(
        default=0,
        description="A caller who hung up while waiting and calls this queue again within "
        "this many seconds takes back their place in the line, ahead of everyone who joined "
        "after them (mod_callcenter's abandoned-resume-allowed with discard-abandoned-after). "
        "Callers are known by their number: withheld and unknown numbers never resume. The "
        "abandon still counts in the figures; max_wait counts from the new call. A restart "
        "of the daemon keeps the places (read back from the CDRs). 0: off.",
        examples=[120],
    )
    resumed_prompt: Prompt | None = Field(
        default=None,
        description="Played instead of `announce` to a caller who took back their place "
        '(resume_abandoned), such as "welcome back, you kept your place in the line".',
    )
    seniority: Literal["queue", "call"] = Field(
        default="queue",
        description="How callers of the same priority are ordered. queue: by when they "
        "joined this queue (app_queue's way: a caller sent over from another queue, or "
        "transferred here, starts at the back). call: by when their call reached the "
        "centre (mod_callcenter's time-base-score: system): a caller overflowing from "
        "another queue keeps the seniority of their whole wait, and the queue's longest "
        "wait and escalation stages count it too (max_wait and the wait in the records "
        "stay this queue's).",
    )
    max_wait: _Seconds = Field(
        default=600,
        description="Seconds a caller may wait; then on_timeout (default: timeout_prompt and "
        "hang up).",
    )
    timeout_prompt: Prompt = Field(
        default="queue-timeout", description="Sound file played when max_wait is reached."
    )
    on_timeout: QueueExit | None = Field(
        default=None, description="Where callers go after max_wait (null: timeout_prompt, hang up)."
    )
    max_length: _Count = Field(
        default=0, description="Most callers waiting at once (0: no limit); more go on_full."
    )
    on_full: QueueExit = Field(
        default_factory=_default_exit("queue-full"),
        description="Where callers go when the queue is full.",
    )
    join_empty: bool = Field(
        default=True,
        description="Callers may join while no agent who could take them is logged in, "
        "unpaused and on a registered phone; false: they go on_empty at once.",
    )
    leave_when_empty: bool = Field(
        default=False,
        description="Waiting callers go on_empty when the last agent who could take them "
        "logs out, pauses or loses their phone (it unregisters).",
    )
    empty_grace: _SecondsOrZero = Field(
        default=0,
        description="With leave_when_empty: seconds the queue may stay without anyone to "
        "take its callers before they go on_empty (mod_callcenter's "
        "max-wait-time-with-no-agent), so that a phone registering again or an agent "
        "logging out and back in does not send every waiting caller away. 0: at once.",
        examples=[30],
    )
    on_empty: QueueExit = Field(
        default_factory=_default_exit("queue-unavailable"),
        description="Where callers go when the queue has nobody to take them.",
    )
    exit_keys: dict[DtmfKey, QueueExit] = Field(
        default_factory=dict,
        description='Keys a waiting caller may press to leave, such as {"1": {to: voicemail, '
        'box: sales}, "2": callback} (heard between offers, not while an agent rings).',
    )
    callback_prompt: Prompt = Field(
        default="queue-callback-confirmed",
        description="Played before hanging up when a callback keeps the caller's place.",
    )
    callback_refused_prompt: Prompt = Field(
        default="queue-callback-unavailable",
        description="Played when the caller's number may not be called back; they keep waiting.",
    )
    callback_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Times a callback is tried before giving up. A try the PBX link was "
        "down for is made again once it is back and does not count.",
    )
    callback_retry_delay: _Seconds = Field(
        default=60, description="Seconds between two callback attempts."
    )
    callback_ring_timeout: _Seconds = Field(
        default=30, description="Seconds the caller's phone rings on a callback."
    )
    callback_slots: CallbackSlots | None = Field(
        default=None,
        description="Capacity of the callbacks asked for a later time, per slot of the day "
        "(GET /callbacks/slots lists the room left). None: any number at any time.",
        examples=[{"minutes": 15, "at_most": 10}],
    )
    callback_max_age: _Seconds = Field(
        default=4 * 3600,
        description="Seconds after the request when a callback whose turn has not come is "
        "given up (status expired). Waiting requests outlive a daemon restart; older ones "
        "are not taken back.",
    )
    supervisor: _Ref | None = Field(
        default=None, description="Id of the supervisor (under `supervisors`) of this queue."
    )
    survey: SurveyConfig | None = Field(
        default=None,
        description="A post-call survey: once the agent hangs up, a caller still on the line "
        "walks this IVR flow (rate the call 1-5...); the answers are kept with the agent who "
        "served them (`callcenter surveys`, `report --agents`). null: none.",
        examples=[{"flow": "csat", "score": "rating"}],
    )

    @model_validator(mode="after")
    def _waiting_for_the_last_agent_needs_one(self) -> QueueConfig:
        if self.last_agent_wait and not self.last_agent:
            raise PydanticCustomError(
                "last_agent_wait",
                "last_agent_wait waits for the caller's last agent: set last_agent too (how "
                "long an agent is remembered, such as 86400)",
            )
        return self


class AgentConfig(_Model):
    """A person who answers calls."""

    name: _Text = Field(description="Display name, such as Alice.")
    device: Device = Field(
        description='The phone that rings, such as "PJSIP/1001"; a remote agent on an outside '
        'number is "external/<number>" (dialled through acd.remote_dial, allowed by '
        "acd.remote_allow)."
    )
    pin: Digits | None = Field(
        default=None, description="Login PIN for the feature codes, digits only (quote it)."
    )
    logged_in: bool = Field(default=False, description="Logged in at start-up (handy for demos).")
    skills: dict[Name, _Level] = Field(
        default_factory=dict,
        description="Skill -> level 1-10 (higher: more proficient), such as {billing: 7}.",
    )
    wrapup: _SecondsOrZero | None = Field(
        default=None, description="After-call work seconds for this agent (null: the queue's)."
    )
    team: Name | None = Field(
        default=None,
        description="The agent's team: supervisors with `teams` monitor only the agents of theirs.",
    )
    record: bool | None = Field(
        default=None,
        description="Record every queue call this agent answers (true: a new hire's, for "
        "coaching), or none of them (false), whatever the queue's `record` and "
        "`record_share`. null: as the queue says.",
    )
    autopause: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Unanswered offers in a row before an automatic pause (null: the queue's).",
    )
    hot_desk: bool = Field(
        default=False,
        description="May log in at any phone for a shift (hot desking): *71 followed by the "
        "agent's id (ids of digits) and then the PIN from that phone, or `callcenter agent "
        "login ID --device PJSIP/1010`; calls ring that phone until logout. Needs a `pin`.",
    )
    auto_answer: bool | None = Field(
        default=None,
        description="The agent's phone answers the calls the daemon rings it with by itself "
        "(a headset agent: queue calls, a campaign's leads, callbacks, transfers to them, "
        "the first leg of their own dials): Asterisk adds Call-Info answer-after=0 through "
        "the shipped [callcenter-auto-answer] (Dial's b() option; edit it for phones that "
        "want another header), FreeSWITCH sets sip_auto_answer. The phone must allow it "
        "(intercom / auto-answer settings). A ring-all dial answers by itself only when "
        "every agent it rings does. None: acd.auto_answer.",
    )
    caller_id: str | None = Field(
        default=None,
        description="Caller ID the people this agent dials themselves (*77, agent dial) see: "
        'their direct line, such as "0301234567". Unset: the queue\'s caller_id, else '
        "acd.dial_out_caller_id.",
        examples=["0301234567"],
    )
    schedule: QueueHours | None = Field(
        default=None,
        description="When the agent is scheduled to work (default: their team's, "
        "`teams.<team>.schedule`), as a queue's opening hours are "
        'written: {hours: {mon-fri: ["09:00-17:00"]}, holidays: {dates: ["12-24"]}} (a '
        "holiday: a day off; timezone: default ivr.timezone). `report --adherence` compares "
        "it with when they were logged in, and acd.agent_alerts.absent raises an alert "
        "while they are scheduled and logged out. None: no schedule.",
        examples=[{"hours": {"mon-fri": ["09:00-13:00", "14:00-18:00"]}}],
    )

    @model_validator(mode="after")
    def _hot_desk_needs_pin(self) -> AgentConfig:
        if self.hot_desk and self.pin is None:
            raise PydanticCustomError(
                "hot_desk_pin",
                "hot_desk: true needs a pin: anyone at any phone could log this agent in",
            )
        return self


KeySequence = Annotated[
    str,
    Strict(),
    AfterValidator(
        _matcher(
            r"\*[0-9]{1,3}",
            "keys",
            'must be "*" and one to three digits, such as "*1"',
        )
    ),
]
"""Keys an agent presses on their phone: ``*`` then digits (``#`` ends what follows)."""


class AgentKeysConfig(_Model):
    """Keys an agent presses on their phone while talking to a caller, as on a desk phone's
    transfer button: the code, then a number, then ``#`` (the code then ``#`` alone means
    the queue's supervisor). The number is what ``agent transfer`` takes: an agent's or a
    supervisor's id, or an outside number acd.transfer_allow lists. The caller hears the
    tones. An agent consulting someone hands the caller over by hanging up; the colleague
    hanging up gives the caller back. ``*4`` + a queue's digits + ``#`` puts the caller into
    that queue; ``*3`` records the call, or pauses and resumes its recording; ``*0`` rings the
    queue's supervisor to whisper; ``*5`` puts the caller on hold and takes them back; ``*7``
    sends the caller to the queue's survey and leaves the call. While
    the agent consults a colleague the keys are Asterisk's attended-transfer keys: ``*1``
    back to the caller, ``*2`` hand over, ``*3`` all three talk."""

    blind: KeySequence = Field(
        default="*1", description="Blind transfer: *1 2001 # sends the caller to 2001."
    )
    consult: KeySequence = Field(
        default="*2",
        description="Consult first (an attended transfer): *2 2001 # puts the caller on hold "
        "and rings 2001.",
    )
    queue: KeySequence | None = Field(
        default="*4",
        description="Transfer into a queue: *4 + the queue's `digits` + # (`*41#`: the caller "
        "waits there for its next agent, as `agent transfer --queue` does). None: no key.",
    )
    recording: KeySequence | None = Field(
        default="*3",
        description="Record the call from now on when it is not recorded (record on demand, "
        "as Asterisk's automixmon), else pause its recording (while the caller gives card "
        "details) or resume it: the code alone, no number and no #. None: no key for it.",
    )
    help: KeySequence | None = Field(
        default="*0",
        description="Ask for help: the queue's supervisor is rung to whisper on the call (as "
        "`agent help` does); the code alone. None: no key for it.",
    )
    hold: KeySequence | None = Field(
        default="*5",
        description="Put the caller on hold (they hear music) or take them back, as `agent "
        "hold` / `unhold` do: the code alone. None: no key for it.",
    )
    survey: KeySequence | None = Field(
        default="*7",
        description="Send the caller to the queue's post-call survey (queues.<q>.survey) "
        "and leave the call, as hanging up does, so a caller who said goodbye is asked "
        "without waiting for them to hang up: the code alone. Refused (the call goes on) "
        "when the queue has no survey or this caller is not to be asked. None: no key.",
    )
    consult_cancel: KeySequence = Field(
        default="*1",
        description="While consulting: back to the caller, the colleague is hung up "
        "(Asterisk's atxferabort key); the code alone.",
    )
    consult_complete: KeySequence = Field(
        default="*2",
        description="While consulting: hand the caller over to the colleague, as hanging up "
        "does (atxfercomplete); the code alone.",
    )
    consult_join: KeySequence = Field(
        default="*3",
        description="While consulting: the caller joins, a three-way call (atxferthreeway); "
        "the code alone.",
    )
    timeout: _Seconds = Field(
        default=4, description="Seconds between two keys after which the keys are dropped."
    )

    @model_validator(mode="after")
    def _distinct(self) -> AgentKeysConfig:
        for consulting in (False, True):
            named = self._named(consulting=consulting)
            for at, (name, code) in enumerate(named):
                for other, other_code in named[at + 1 :]:
                    if code.startswith(other_code) or other_code.startswith(code):
                        raise ValueError(
                            f"{name} ({code!r}) and {other} ({other_code!r}) must differ, and "
                            "neither may start with the other"
                        )
        return self

    def _named(self, *, consulting: bool) -> list[tuple[str, str]]:
        """(action, code) of the keys that count at once: during a consultation, or not."""
        if consulting:
            codes: dict[str, str | None] = {
                "consult_cancel": self.consult_cancel,
                "consult_complete": self.consult_complete,
                "consult_join": self.consult_join,
            }
        else:
            codes = {
                "blind": self.blind,
                "consult": self.consult,
                "queue": self.queue,
                "recording": self.recording,
                "help": self.help,
                "hold": self.hold,
                "survey": self.survey,
            }
        return [(name, code) for name, code in codes.items() if code is not None]

    def codes(self, *, consulting: bool = False) -> dict[str, str]:
        """Code -> action: ``blind``, ``consult``, ``queue``, ``recording``, ``help``,
        ``hold``, ``survey``; while the agent consults someone: ``consult_cancel``,
        ``consult_complete``, ``consult_join``."""
        return {code: name for name, code in self._named(consulting=consulting)}

    def instant(self, *, consulting: bool = False) -> list[str]:
        """The codes that take no number."""
        if consulting:
            return [code for _, code in self._named(consulting=True)]
        instant = (self.recording, self.help, self.hold, self.survey)
        return [code for code in instant if code is not None]


class AcdConfig(_Model):
    """Settings every queue shares."""

    longest_waiting_first: bool = Field(
        default=False,
        description="An agent in several queues takes the caller waiting longest across "
        "them, whatever the queues' weights and the callers' priorities.",
    )
    skills: list[Name] = Field(
        default_factory=list,
        description="The skill names in use; when given, `check` refuses any other (typos).",
    )
    remote_dial: _DialTemplate | None = Field(
        default=None,
        description='How remote agents ("external/<number>") are dialled, such as '
        '"PJSIP/${number}@trunk".',
    )
    remote_allow: list[NumberPattern] = Field(
        default_factory=list,
        description='Numbers remote agents may have (patterns such as "_0049X.").',
    )
    callback_dial: _DialTemplate | None = Field(
        default=None,
        description='How callers are called back, such as "PJSIP/${number}@trunk" (unset: '
        "no queue callbacks).",
    )
    callback_allow: list[NumberPattern] = Field(
        default_factory=list,
        description="Caller numbers that may be called back; others keep waiting.",
    )
    transfer_dial: _DialTemplate | None = Field(
        default=None,
        description="How agents reach an outside number they transfer a caller to or consult, "
        'such as "PJSIP/${number}@trunk" (unset: agents transfer and consult only the '
        "configured agents and supervisors).",
    )
    transfer_allow: list[NumberPattern] = Field(
        default_factory=list,
        description='Outside numbers agents may transfer callers to or consult ("2100", '
        '"_0800XXXXXX"); any other number is refused.',
    )
    transfer_unanswered: Literal["queue", "hangup"] = Field(
        default="queue",
        description="A caller whose blind transfer nobody answers (the colleague busy, away "
        "or rejecting it within the queue's ring_timeout) hears transfer-failed, then: "
        "`queue`: goes back into the queue they were in, served ahead of the callers who "
        "came after them, the agent who transferred them first if free (a transfer "
        "recall); `hangup`: the call ends.",
        examples=["queue"],
    )
    dial_out: _DialTemplate | None = Field(
        default=None,
        description="How an agent's own outbound calls reach the number they dial (`*77` + "
        "number from their phone, `callcenter agent dial`, `POST /agents/<id>/dial`), such "
        'as "PJSIP/${number}@trunk". The agent\'s phone is called first (or their open '
        "line used); the number is dialled once they are on, and the call runs as a queue's "
        "call with its recording, supervisors, transfers, wrap-up and dispositions. Unset: "
        "agents dial no calls through the centre.",
        examples=["PJSIP/${number}@trunk"],
    )
    dial_out_allow: list[NumberPattern] = Field(
        default_factory=list,
        description='Numbers agents may dial out to ("_0XXXXXXXXX"); any other is refused.',
        examples=[["_0[1-9]XXXXXXXX"]],
    )
    dial_out_block: list[Name] = Field(
        default_factory=list,
        description="Number lists (under ivr.number_lists, kept at runtime by `callcenter "
        "numbers add`) whose numbers agents may not dial: the centre's do-not-call list.",
        examples=[["do_not_call"]],
    )
    logout_after_shift: _Seconds | None = Field(
        default=None,
        description="Log out an agent still logged in this many seconds after their "
        "scheduled stretch ended (`agents.<id>.schedule` or their team's), when no other "
        "stretch has begun: a forgotten logout would leave their phone ringing at an empty "
        "desk. On a call: once it ends. Agents without a schedule are left alone. None: "
        "never.",
        examples=[900],
    )
    agent_block_list: Name | None = Field(
        default=None,
        description="The number list (under ivr.number_lists) an agent puts the caller they "
        'talk to (or talked to last) on from their desktop: "Block this caller" (an '
        "abusive caller, a prank line; POST /agents/<id>/block). What a listed number "
        "meets is the flows' (a `caller_list` case); ops take a number off with `callcenter "
        "numbers remove`. None: agents block nobody.",
        examples=["blocked"],
    )
    auto_answer: bool = Field(
        default=False,
        description="Agents' phones answer the calls the daemon rings them with by "
        "themselves, unless an agent's `auto_answer` says otherwise (see there).",
    )
    dial_out_caller_id: str = Field(
        default="",
        description="Caller ID the called person sees (empty: the queue's caller_id, else "
        "callback_caller_id, else the PBX's).",
    )
    dial_out_timeout: _Seconds = Field(
        default=30,
        description="Seconds the number dialled rings before the agent is told nobody answered.",
    )
    dial_out_failed_prompt: Prompt | None = Field(
        default="beeperr",
        description="What the agent hears when the number dialled is busy, does not answer "
        "or cannot be reached (then their phone hangs up). None: nothing.",
    )
    callback_context: _Text = Field(
        default="callcenter-callback",
        description="Dialplan context an answered callback goes to (it must hand the call "
        "to the daemon with callback=${CALLCENTER_CALLBACK}).",
    )
    callback_exten: _Text = Field(
        default="s", description="Extension in callback_context for answered callbacks."
    )
    callback_caller_id: str = Field(
        default="", description="Caller ID shown to called-back callers (empty: the PBX's)."
    )
    callback_requests_per_minute: int = Field(
        default=30,
        ge=0,
        le=10000,
        description="Most callback requests `POST /callbacks` takes in a minute (a web form "
        "is open to anyone: a script filling it must not have the centre dial hundreds of "
        "numbers); more get 429. 0: no limit.",
    )
    recordings_folder: _RecordingsFolder = Field(
        default="var/recordings",
        description="Folder the PBX writes the recordings of queues with `record: true` "
        "into, one sub-folder per queue (relative to the config file; give the PBX's own "
        "path, such as /var/spool/asterisk/monitor, when the PBX runs on another machine).",
    )
    recording_format: Literal["wav", "gsm", "wav49"] = Field(
        default="wav", description="Sound format of call recordings."
    )
    recordings_keep_days: int | None = Field(
        default=None,
        ge=1,
        description="Retention of call recordings: files in recordings_folder older than "
        "this many days are deleted (a minute after the start, then daily; only the files the "
        "daemon named, aged by the time in their name). The daemon must see the folder. "
        "None: kept for ever. `callcenter purge --recordings` does it by hand.",
        examples=[90],
    )
    agent_keys: AgentKeysConfig | None = Field(
        default=None,
        description="Transfers keyed on the agent's phone during a call (*1 number # blind, "
        "*2 number # consult); the daemon follows the keys of the agent's leg. None: off "
        "(transfers by `callcenter agent transfer` and the API only). `{}` turns them on "
        "with the default keys.",
        examples=[{"blind": "*1", "consult": "*2"}],
    )
    line_hangup_key: KeySequence = Field(
        default="*9",
        description="What an agent on an open line (logged in by `*70`: they stay on the "
        "line and callers come through without ringing, as app_agent_pool's AgentLogin and "
        "mod_callcenter's uuid-standby) presses to end the call with a caller and stay on "
        "the line for the next; hanging up the phone ends the line and logs them out. It "
        "must not start like one of agent_keys' codes (nor they like it).",
        examples=["*9"],
    )
    line_ready_key: KeySequence | None = Field(
        default="*6",
        description="What an agent on an open line presses when ready for the next caller: "
        "it ends their after-call work (what *75 does from a phone: a queue with "
        "wrapup_until_ready waits for it) or their pause (*74). None: no key.",
        examples=["*6"],
    )
    line_pause_key: KeySequence | None = Field(
        default="*8",
        description="What an agent on an open line presses to go on a break (the first of "
        "pause_reasons), as *73 does from a phone; line_ready_key ends it. None: no key.",
        examples=["*8"],
    )
    line_disposition_key: KeySequence | None = Field(
        default="*76",
        description="On an open line between calls, this, the digits of a disposition "
        "(dispositions.<code>.digits; a callback code: digits * minutes) and # give the last "
        "call its code, as *76 does from a phone: a line agent with no screen gets out of a "
        "disposition_required wrap-up. During a call the keys are agent_keys'. None: off.",
        examples=["*76"],
    )
    line_queue_key: KeySequence | None = Field(
        default="*45",
        description="On an open line between calls, this, a queue's digits (queues.<q>.digits) "
        "and # join that queue or leave it, as *45 does from a phone. None: off.",
        examples=["*45"],
    )
    line_dial_key: KeySequence | None = Field(
        default="*77",
        description="On an open line between calls, this, a number and # call that number "
        "(this and # alone: the last call's number), as *77 does from a phone "
        "(acd.dial_out). None: off.",
        examples=["*77"],
    )
    line_accept_key: (
        Annotated[
            str,
            Strict(),
            AfterValidator(_matcher(r"[0-9*]", "accept_key", "must be one key: a digit 0-9 or *")),
        ]
        | None
    ) = Field(
        default=None,
        description="An agent on an open line must press this key to take each caller "
        "(app_agent_pool's ackcall/acceptdtmf): offered a caller, they leave their room, "
        "hear line_beep and have the queue's ring_timeout to press it; not pressed (or "
        "another key) counts as a ring not answered (no-answer delay, autopause). None: "
        "callers come through at once. Asked only when the offer goes to that one agent "
        "(not a ring-all of several).",
        examples=["1"],
    )
    screen_pop: _Url | None = Field(
        default=None,
        description="The CRM page linked from agents' desktops for the calls of queues "
        "without their own screen_pop (same variables).",
        examples=["https://crm.example/contacts?phone=${number}"],
    )
    agent_alerts: AgentAlerts | None = Field(
        default=None,
        description="How long agents may stay paused, in wrap-up or on one call before an "
        "AgentAlert tells their supervisors. None: not watched.",
        examples=[{"paused": 1800, "pause_reasons": {"lunch": 3600}, "wrap_up": 180}],
    )
    blf: BusyLamps | None = Field(
        default=None,
        description="Busy lamps (BLF keys) the daemon keeps showing agents' and queues' "
        "states. None: none.",
        examples=[{"agent": "callcenter-agent-${agent}", "queue": "callcenter-queue-${queue}"}],
    )
    line_beep: AgentPrompt | None = Field(
        default="beep",
        description="Sound file an agent on an open line hears as a caller comes through "
        "(app_agent_pool's custom_beep): nothing rings, so this is their cue. A queue's or "
        "campaign's agent_announce plays instead when it has one. None: nothing.",
        examples=["beep"],
    )

    @model_validator(mode="after")
    def _transfer_numbers_need_a_dial(self) -> AcdConfig:
        if self.transfer_allow and self.transfer_dial is None:
            raise ValueError(
                "transfer_allow lists outside numbers, but transfer_dial (how to dial them, "
                'such as "PJSIP/${number}@trunk") is not set'
            )
        return self

    @model_validator(mode="after")
    def _dial_out_numbers_need_a_dial(self) -> AcdConfig:
        if self.dial_out_allow and self.dial_out is None:
            raise ValueError(
                "dial_out_allow lists numbers agents may dial, but dial_out (how to dial "
                'them, such as "PJSIP/${number}@trunk") is not set'
            )
        if self.dial_out is not None and not self.dial_out_allow:
            raise ValueError(
                "dial_out is set, but dial_out_allow lists no number agents may dial "
                '(patterns such as "_0XXXXXXXXX")'
            )
        return self

    @model_validator(mode="after")
    def _line_key_apart(self) -> AcdConfig:
        named = [
            (f"line_{name}_key", code)
            for name, code in (
                ("hangup", self.line_hangup_key),
                ("ready", self.line_ready_key),
                ("pause", self.line_pause_key),
            )
            if code is not None
        ]
        # The coded keys (digits and # follow) act between calls only, when agent_keys do
        # not: they need to stand apart from the line's own keys, not from agent_keys.
        coded = [
            (f"line_{name}_key", code)
            for name, code in (
                ("disposition", self.line_disposition_key),
                ("queue", self.line_queue_key),
                ("dial", self.line_dial_key),
            )
            if code is not None
        ]
        _keys_apart(coded, [*coded, *named])
        keys = self.agent_keys
        others = list(named)
        if keys is not None:
            for consulting in (False, True):
                others += [
                    (f"agent_keys.{action}", code)
                    for code, action in keys.codes(consulting=consulting).items()
                ]
        _keys_apart(named, others)
        return self


def _keys_apart(own: list[tuple[str, str]], others: list[tuple[str, str]]) -> None:
    """Raise ValueError when a key of ``own`` (``others`` starts with them, in order) and
    one after it in ``others`` are equal or one starts with the other: the first pressed
    in full would always win."""
    for at, (name, key) in enumerate(own):
        for other, code in others[at + 1 :]:
            if code.startswith(key) or key.startswith(code):
                raise ValueError(
                    f"{name} ({key!r}) and {other} ({code!r}) must differ, and neither "
                    "may start with the other"
                )


class ScriptConfig(_Model):
    """What agents say on a queue's or a campaign's calls: shown on their desktop while the
    call rings and is talked on (and with a preview's lead), the call's variables filled
    in. A script may be given as its text alone."""

    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="The heading the desktop shows above it. None: the script's name.",
        examples=["Spring offer"],
    )
    text: Annotated[str, AfterValidator(_check_template)] = Field(
        min_length=1,
        max_length=20_000,
        description="The words: ${name} is filled from the call (${caller_num}, "
        "${caller_name}, ${number}: the person talked to, ${queue}, ${agent}, "
        "${agent_name}, ${call_id}, ${campaign}, the IVR's variables and a lead's "
        "columns); one the call does not have shows as [name], for the agent to ask. A "
        "blank line starts a new paragraph; a line starting with '- ' is a point of a list.",
        examples=["Hello ${name}, this is ${agent_name} from Acme about account ${account}."],
    )

    @model_validator(mode="before")
    @classmethod
    def _text_alone(cls, data: Any) -> Any:
        return {"text": data} if isinstance(data, str) else data


class DispositionConfig(_Model):
    """A code an agent gives a call when it ends (a wrap-up code: "sale", "no-interest");
    a plain string is short for ``{description: ...}``."""

    description: str = Field(default="", description="What the code means, for reports.")
    do_not_call: bool = Field(
        default=False,
        description="The person asked not to be called: no campaign calls their number "
        "again (kept in the records, across restarts).",
    )
    callback: bool = Field(
        default=False,
        description="The person asked to be called again at a time the agent gives "
        "(`--at`): a campaign's lead is called again then, its tries counted afresh; an "
        "inbound caller is called back then as a queue callback (acd.callback_dial).",
    )
    digits: Digits | None = Field(
        default=None,
        description="What an agent dials after `*76` to give this code from their phone "
        "(`*761`); for a callback code, `*` and the minutes until the call follow "
        "(`*769*30`: in half an hour). None: the code is given by the CLI or API only.",
        examples=["1"],
    )
    note_required: bool = Field(
        default=False,
        description="The agent must say why with this code (a note: an escalation, a "
        "complaint): the desktop asks for it, the API and the CLI refuse the code without "
        "one. Not with `digits` (a phone keys no note).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return {"description": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _note_not_keyed(self) -> DispositionConfig:
        if self.note_required and self.digits is not None:
            raise ValueError(
                "note_required: a code that needs a note cannot be keyed on a phone (digits)"
            )
        return self


class EvaluationForm(_Model):
    """A quality scorecard supervisors fill in for a call they listened to (its recording,
    or live): points per criterion, and the share of them a call passes with."""

    criteria: dict[_Text, Annotated[int, Field(ge=1, le=100)]] = Field(
        min_length=1,
        description="Criterion -> the most points it gives, such as {greeting: 10, "
        '"identified the caller": 20, solved: 50, tone: 20}. Each is scored 0 to that.',
    )
    pass_percent: Annotated[float, Field(ge=0, le=100)] = Field(
        default=80, description="A call passes with this share of the points or more."
    )


class EvaluationTarget(_Model):
    """How many calls of each agent the supervisors mean to score (quality teams' quota):
    their desktops count each agent's scored calls against it and pick a call to score."""

    per_agent: int = Field(
        ge=1, le=1000, description="Calls of each agent to score within `days`.", examples=[4]
    )
    days: int = Field(
        default=7,
        ge=1,
        le=30,
        description="The rolling window the target is counted over (7: the last week).",
    )


class TeamConfig(_Model):
    """A team of agents (those whose `team` names it): what they share."""

    schedule: QueueHours | None = Field(
        default=None,
        description="The team's schedule, for each of its agents without a `schedule` of "
        'their own: a shift, such as {hours: {mon-fri: ["06:00-14:00"]}}.',
        examples=[{"hours": {"mon-fri": ["06:00-14:00"]}}],
    )
    evaluation_target: EvaluationTarget | None = Field(
        default=None,
        description="The team's own quality quota, instead of the top-level "
        "`evaluation_target`, for its agents: new hires scored 8 calls a week, the others "
        "4.",
        examples=[{"per_agent": 8, "days": 7}],
    )
    max_paused: int | None = Field(
        default=None,
        ge=1,
        description="At most this many of the team's agents on a break at once: one more "
        "asking (desktop, API, CLI, `*73`, an open line's key) is refused, told how many "
        "are away, until one is back. A pause their supervisor or `autopause` puts them "
        "on is never refused (it counts as away for the others); a pause in one queue is "
        "no break. None: no limit.",
        examples=[2],
    )
    break_line: bool = Field(
        default=False,
        description="With `max_paused`: a break asked for over the limit waits in line "
        "instead of being refused; the first in line goes on their break (with the reason "
        "they asked with) as soon as a teammate is back. Asking to be ready leaves the line, "
        "so do a logout and a pause someone else puts them on. A supervisor may put one "
        "first; a restart takes the line back in its order.",
        examples=[True],
    )

    @model_validator(mode="after")
    def _check(self) -> TeamConfig:
        if self.break_line and self.max_paused is None:
            raise PydanticCustomError(
                "break_line_without_limit",
                "break_line keeps agents waiting for a break over max_paused: give the team "
                "a max_paused",
            )
        return self


class ProfileConfig(_Model):
    """A set of queues and skills an agent is given in one go (a role on the floor:
    ``sales-senior``, ``billing-fr``): ``agent profile 1001 billing-fr``."""

    queues: list[Name] = Field(
        min_length=1,
        description="The queues an agent of this profile is a member of, and of no other "
        "(`penalties` per queue optional).",
        examples=[["billing", "support"]],
    )
    penalties: dict[Name, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Queue -> the penalty the agent joins it at (default: the queue's own "
        "for them, else 0).",
        examples=[{"support": 1}],
    )
    skills: dict[Name, _Level] | None = Field(
        default=None,
        description="The skills (1-10) the agent works with under this profile. None: "
        "their own stay as they are.",
        examples=[{"fr": 8, "billing": 6}],
    )


class SupervisorConfig(_Model):
    """A person who watches queues and helps agents."""

    name: _Text = Field(description="Display name.")
    device: Device = Field(
        description='The phone used to listen, whisper or barge, e.g. "PJSIP/2000".'
    )
    ring_timeout: _Seconds = Field(
        default=20.0,
        description="Seconds the supervisor's phone rings when they ask to listen, whisper "
        "or barge; unanswered, the request lapses and the agent's call goes on untouched.",
    )
    auto_answer: bool = Field(
        default=False,
        description="The supervisor's phone answers by itself when they ask to listen, "
        "whisper or barge from the desktop or the API (a headset: they hear the call at "
        "once), as agents' `auto_answer` does (Asterisk: the Call-Info header on the "
        "Originate; FreeSWITCH: sip_auto_answer). The phone must allow it.",
    )
    teams: list[Name] = Field(
        default_factory=list,
        description="Teams (agents' `team`) whose calls this supervisor may listen to, "
        "whisper on, barge in on and take over; empty: every agent's.",
    )
    pin: Digits | None = Field(
        default=None,
        description="PIN asked when the supervisor dials a monitoring feature code (*81, "
        "*82, *83 + agent), digits only (quote it); none: the phone alone identifies them.",
    )
    hot_desk: bool = Field(
        default=False,
        description="The supervisor may work at another phone for a while (`*86` + their "
        "id dialled from it, or `callcenter supervisor desk 2000 --device PJSIP/2010`): "
        "monitoring rings it and its feature codes are theirs. Needs a pin.",
    )

    @model_validator(mode="after")
    def _hot_desk_needs_pin(self) -> SupervisorConfig:
        if self.hot_desk and self.pin is None:
            raise PydanticCustomError(
                "hot_desk_pin",
                "hot_desk: true needs a pin: the feature codes of any phone given as this "
                "supervisor's desk would be theirs",
            )
        return self


RetryReason = Literal[
    "busy",
    "no-answer",
    "rejected",
    "unavailable",
    "congestion",
    "failed",
    "machine",
    "abandoned",
    "agent-skipped",
]
"""How a campaign's try failed, as ``campaigns.<c>.retry_delays`` names it."""


class CampaignConfig(_Model):
    """An outbound campaign: a lead list dialled for a queue's agents, progressively (an
    agent reserved before each dial), with a preview (the agent sees the lead first and
    says dial or skip) or predictively (more dials than free agents, paced to keep the
    abandon rate under a limit)."""

    queue: _Ref = Field(
        description="Queue (under `queues`) whose agents take the campaign's calls. In "
        "`progressive` mode each dial waits in it for a free agent (behind the callers, see "
        "`priority`) and is placed only once an agent is reserved for it: nobody answered "
        "is left without an agent."
    )
    mode: Literal["progressive", "predictive", "preview"] = Field(
        default="progressive",
        description="progressive: one dial per agent, placed once the agent is reserved "
        "(no dropped calls, agents wait while phones ring). preview: as progressive, but "
        "the reserved agent first sees the lead (GET /status `previews`) and says dial or "
        "skip (`callcenter agent preview-dial|preview-skip <agent>`), within "
        "`preview_seconds`. predictive: dials placed for "
        "the queue's free agents without reserving them, more dials than agents as the "
        "share of answered dials falls (up to `max_ratio`), paced so that no more than "
        "`max_abandon_rate` percent of the people who answer are dropped; a dropped lead "
        "hears `drop_prompt` and is called again only with an agent reserved.",
    )
    preview_seconds: _Seconds = Field(
        default=30,
        le=3600,
        description="preview: seconds the agent has to decide on the lead shown.",
    )
    preview_timeout: Literal["dial", "skip"] = Field(
        default="dial",
        description="preview: what happens when the agent decides nothing in time: dial "
        "the lead, or skip it (the lead waits `retry_delay`, no try used).",
    )
    max_abandon_rate: float = Field(
        default=3.0,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="predictive: the most (percent of the people who answered over the "
        "last 24 hours) who may be dropped for want of an agent; the dialler slows down "
        "from half of it and dials one lead per free agent once it is reached (3: the "
        "UK's Ofcom and the US FTC rule).",
    )
    max_ratio: float = Field(
        default=3.0,
        ge=1,
        le=10,
        allow_inf_nan=False,
        description="predictive: the most dials at once per free agent (the dialler uses "
        "1 / the share of dials answered lately, up to this).",
    )
    drop_after: _Seconds = Field(
        default=2.0,
        le=60,
        description="predictive: seconds a lead who answered may wait for an agent before "
        "being dropped (2: the time the regulators allow).",
    )
    agent_announce: AgentPrompt | None = Field(
        default=None,
        description="Sound file played to the agent who takes one of this campaign's leads, "
        "before the lead is put through (instead of the queue's `agent_announce`): agents "
        "on inbound and campaigns hear which campaign the call is.",
        examples=["custom/campaign-spring"],
    )
    survey: SurveyConfig | None = Field(
        default=None,
        description="The post-call survey of this campaign's calls (how did the call go, "
        "asked of the lead once the agent hangs up or sends them to it), instead of the "
        "queue's `survey`; rows and figures name the campaign's queue. null: the queue's.",
        examples=[{"flow": "csat", "score": "rating"}],
    )
    dispositions: list[Name] | None = Field(
        default=None,
        description="The codes (under `dispositions`) agents may give this campaign's "
        "calls, instead of its queue's `dispositions`: an outcome list of its own (sale, "
        "not interested, wrong person, do not call). None: the queue's.",
        examples=[["sale", "no-interest", "do-not-call"]],
    )
    script: Name | None = Field(
        default=None,
        description="The call script (under `scripts`) agents see for this campaign's "
        "leads (in a preview, while the lead's call rings and is talked on), its columns "
        "filled in, instead of the queue's `script`. None: the queue's.",
        examples=["spring-offer"],
    )
    drop_prompt: Prompt | None = Field(
        default=None,
        description="predictive (required there): what a dropped lead hears before the "
        "line is cleared: who called and that they will be called again (the law in most "
        "places).",
    )
    leads: _Text = Field(
        description="CSV file of the people to call: a header line with a `number` column, "
        "an optional `id` (default: the number) and any other columns, which reach the "
        "agent's screen and the CDR (relative to the config file). Read again at a reload "
        "(SIGHUP): leads added are dialled, leads removed are not."
    )
    dial: _DialTemplate = Field(
        description='How a lead is dialled, such as "PJSIP/${number}@trunk".'
    )
    allow: list[NumberPattern] = Field(
        min_length=1,
        description='Numbers the campaign may dial (patterns such as "_0049X."); a lead '
        "outside them is skipped as `not-allowed`, never dialled.",
    )
    do_not_call: _Text | None = Field(
        default=None,
        description="Text file of numbers never to call, one per line, `#` comments "
        "(relative to the config file; read again at each reload). A lead on it is skipped "
        "as `do-not-call`.",
    )
    caller_id: str = Field(
        default="", description="Caller ID the called people see (empty: the PBX's)."
    )
    local_caller_ids: dict[NumberPattern, _Text] = Field(
        default_factory=dict,
        description="Local presence: the caller ID shown to a lead whose number matches a "
        "pattern (the first that matches, in the order written), such as a number of "
        "their own area, which people answer more often than a far one; the others get "
        "`caller_id`. Each should be a line of the centre that rings back into a queue.",
        examples=[{"_+3361.": "+33612000000", "_+4930.": "+493012340000"}],
    )
    lines: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Dials the campaign may have going at once (each waits for its own "
        "agent): at most the trunk lines it may take.",
    )
    ring_timeout: _Seconds = Field(
        default=30, description="Seconds a lead's phone rings before the attempt fails."
    )
    attempts: int = Field(
        default=3, ge=1, le=100, description="Tries per lead before it is given up."
    )
    retry_delay: _Seconds = Field(
        default=3600, description="Seconds before a lead that did not answer is tried again."
    )
    retry_delays: dict[RetryReason, _Seconds] = Field(
        default_factory=dict,
        description="A try's own delay by how it failed, over `retry_delay`: a busy line "
        "is tried again sooner than one nobody answers, a machine later (a dialler's "
        "per-outcome retry). Reasons: busy, no-answer, rejected, unavailable, congestion, "
        "failed (the PBX's), machine (answering machine detected), abandoned (answered and "
        "dropped for want of an agent), agent-skipped (preview: the agent skipped it; no "
        "try used).",
        examples=[{"busy": 300, "no-answer": 3600, "machine": 14400, "abandoned": 600}],
    )
    priority: int = Field(
        default=-1,
        ge=-100,
        le=100,
        description="Place of the campaign's dials among the queue's callers: higher goes "
        "first; the default (-1) lets every caller (priority 0) go before a dial.",
    )
    hours: dict[DaySpec, list[TimeRange]] | None = Field(
        default=None,
        description='When leads may be called: mon-fri: ["09:00-12:00", "14:00-20:00"], '
        "in each lead's local time (the lead file's `timezone` column, else `timezone`). "
        "Leads outside them wait (calls in progress go on). Null: any time.",
    )
    timezone: TimeZone | None = Field(
        default=None,
        description="Time zone of `hours` for leads without their own (default: ivr.timezone).",
    )
    holidays: HolidayCalendar | None = Field(
        default=None, description="Days nobody is called (public holidays and added dates)."
    )
    context: _Text | None = Field(
        default=None,
        description="Dialplan context answered dials go to (default: acd.callback_context). "
        "`callcenter-campaign-amd` (dialplans/) runs answering machine detection first and "
        "hands the result over (amd=${AMDSTATUS} on Asterisk, amd=${amd_result} with "
        "FreeSWITCH's mod_amd).",
    )
    machine: Literal["hangup", "message", "agent"] = Field(
        default="hangup",
        description="What the daemon does when the dialplan says an answering machine "
        "answered (amd=MACHINE): hangup, message (play `machine_prompt` to it, then hang "
        "up), or agent (put it through like a person). Either way but agent, the try "
        "failed as `machine` and the lead is tried again after `retry_delay`.",
    )
    machine_prompt: Prompt | None = Field(
        default=None,
        description="machine: message: the message left on the answering machine.",
    )
    enabled: bool = Field(
        default=True,
        description="Dial from the start; false: the campaign waits paused until resumed "
        "(`callcenter campaign resume <id>`, or POST /campaigns/<id>/resume). Changed at a "
        "reload, it pauses or resumes the campaign.",
    )

    @model_validator(mode="after")
    def _says_what_it_plays(self) -> CampaignConfig:
        if self.mode == "predictive" and self.drop_prompt is None:
            raise PydanticCustomError(
                "drop_prompt",
                "a predictive campaign needs `drop_prompt:` (what a lead dropped for want "
                "of an agent hears: who called and that they will be called again)",
            )
        if self.machine == "message" and self.machine_prompt is None:
            raise PydanticCustomError(
                "machine_prompt",
                "`machine: message` needs `machine_prompt:` (the message left on an "
                "answering machine)",
            )
        return self


class CallCenterConfig(_Model):
    """The whole configuration: one YAML file.

    ``source`` is the file it was loaded from (``None`` when built in code); relative paths in
    the file are resolved against its folder by :meth:`resolve_path`.
    """

    pbx: PBXConfig = Field(description="The PBX beside the daemon and how to reach it.")
    api: APIConfig = Field(default_factory=APIConfig, description="The local control API.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="How the daemon process runs."
    )
    records: RecordsConfig = Field(
        default_factory=RecordsConfig, description="Where call records are kept."
    )
    mqtt: MQTTConfig | None = Field(
        default=None,
        description="Live figures for wallboards on an MQTT broker; null (no section): none.",
    )
    webhooks: dict[Name, WebhookConfig] = Field(
        default_factory=dict,
        description="HTTP endpoints that get engine events as they happen, by name.",
    )
    routes: dict[_RouteKey, RouteConfig] = Field(
        default_factory=dict,
        description='Dialled number (quoted, such as "800") or "default" -> the flow to run.',
    )
    flows: dict[Name, FlowConfig] = Field(default_factory=dict, description="IVR flows by name.")
    ivr: IvrConfig = Field(
        default_factory=IvrConfig, description="Settings shared by the IVR flows."
    )
    queues: dict[Name, QueueConfig] = Field(default_factory=dict, description="Queues by name.")
    acd: AcdConfig = Field(
        default_factory=AcdConfig, description="Settings every queue shares (routing, callbacks)."
    )
    agents: dict[Name, AgentConfig] = Field(
        default_factory=dict, description='Agents by id (quoted, such as "1001").'
    )
    supervisors: dict[Name, SupervisorConfig] = Field(
        default_factory=dict, description='Supervisors by id (quoted, such as "2000").'
    )
    profiles: dict[Name, ProfileConfig] = Field(
        default_factory=dict,
        description="Roles on the floor by name: the queues (and skills) an agent is given "
        "in one go while the centre runs (`callcenter agent profile 1001 billing-fr`, POST "
        "/agents/<id>/profile, the supervisor's agent page), kept across restarts as the "
        "queue and skill changes it makes.",
        examples=[{"billing-fr": {"queues": ["billing"], "skills": {"fr": 8}}}],
    )
    teams: dict[Name, TeamConfig] = Field(
        default_factory=dict,
        description="Teams by name (agents' `team`), with what their agents share: a "
        "schedule (a shift). A team need not be listed to be used.",
        examples=[{"early": {"schedule": {"hours": {"mon-fri": ["06:00-14:00"]}}}}],
    )
    pause_reasons: list[_Text] = Field(
        default_factory=lambda: list(PAUSE_REASONS),
        description="Reasons an agent may give when pausing.",
    )
    campaigns: dict[Name, CampaignConfig] = Field(
        default_factory=dict, description="Outbound campaigns by id."
    )
    scripts: dict[Name, ScriptConfig] = Field(
        default_factory=dict,
        description="Call scripts by name: what agents say, shown on their desktop during "
        "the call (GET /agents/<id>/script for a CRM) with the call's variables filled in. "
        "A queue's or a campaign's `script` chooses (the campaign's wins for its leads).",
        examples=[{"welcome": "Thank you for calling Acme, my name is ${agent_name}."}],
    )
    dispositions: dict[Name, DispositionConfig] = Field(
        default_factory=dict,
        description="Codes agents give their calls (`callcenter agent disposition <agent> "
        "--code <code>`), kept in the `dispositions` table; none: agents give none.",
    )
    evaluation_forms: dict[Name, EvaluationForm] = Field(
        default_factory=dict,
        description="Quality scorecards by name: supervisors score their agents' calls "
        "with them (the desktop's calls of an agent, POST /calls/<id>/evaluation), kept in "
        "the `evaluations` table, read back by `report --evaluations`. A queue's "
        "`evaluation_form` chooses; else the first. None: no scoring.",
    )
    evaluation_target: EvaluationTarget | None = Field(
        default=None,
        description="Calls of each agent to score per window (with evaluation_forms): a "
        "supervisor's desktop shows each agent's count (2 / 4) and picks a call of theirs "
        "not yet scored (Pick a call …). A team's `evaluation_target` wins for its agents. "
        "None: no target (but the teams').",
        examples=[{"per_agent": 4, "days": 7}],
    )

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_references(self) -> CallCenterConfig:
        problems = reference_problems(self.model_dump())
        if problems:
            raise PydanticCustomError(
                "config_reference",
                "{problems}",
                {"problems": "; ".join(str(p) for p in problems)},
            )
        return self

    @property
    def source(self) -> Path | None:
        """The file this config was loaded from, or ``None``."""
        return self._source

    def with_source(self, source: Path | None) -> CallCenterConfig:
        """This config, marked as loaded from ``source`` (resolved to an absolute path)."""
        self._source = None if source is None else Path(source).resolve()
        return self

    def resolve_path(self, path: str | os.PathLike[str]) -> Path:
        """``path`` made absolute: relative to the config file's folder (or the cwd)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        base = self._source.parent if self._source is not None else Path.cwd()
        return base / p

    @property
    def cdr_path_resolved(self) -> Path:
        """``records.cdr_path`` as an absolute path."""
        return self.resolve_path(self.records.cdr_path)


# --------------------------------------------------------------------------- references


@dataclass(frozen=True, slots=True)
class Problem:
    """A cross-reference problem at ``path`` (keys and list indexes into the config data)."""

    path: tuple[object, ...]
    message: str

    def __str__(self) -> str:
        return f"{'.'.join(str(p) for p in self.path)}: {self.message}"


_NONE = object()


def _section(data: Mapping[Any, Any], key: str) -> Mapping[Any, Any] | None:
    """The mapping under ``key`` ({} when absent), or None when it is not a mapping."""
    value = data.get(key, _NONE)
    if value is _NONE:
        return {}
    return value if isinstance(value, Mapping) else None


def _unknown(what: str, name: str, known: Mapping[Any, Any], section: str) -> str:
    names = [str(k) for k in known]
    if not names:
        return f'no {what} named "{name}": nothing is defined under {section}'
    hint = did_you_mean(name, names)
    if hint:
        return f'no {what} named "{name}"{hint}'
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f'no {what} named "{name}" (defined under {section}: {shown})'


_EDGE_FIELDS: dict[str, tuple[str, ...]] = {
    "play": ("next",),
    "menu": ("choices", "on_timeout", "on_invalid", "default"),
    "collect": ("next", "default"),
    "branch": ("cases", "default"),
    "schedule": ("open", "closed", "holiday"),
    "language": ("next",),
    "set": ("next",),
    "lookup": ("next", "fallback"),
    "queue_figures": ("next",),
    "transfer": ("fallback",),
    "voicemail": ("next", "fallback"),
    "callback": ("next", "default"),
    "subflow": ("next",),
}

INPUT_EDGES: Mapping[str, frozenset[str]] = {
    "menu": frozenset({"choices", "on_invalid"}),
    "collect": frozenset({"next"}),
    "callback": frozenset({"next"}),
}
"""Per node kind, the edges taken only after the caller pressed keys (the first element of
the edge's path). A loop made only of other edges would run without the caller."""


def node_edges(node: Mapping[Any, Any]) -> list[tuple[tuple[object, ...], object]]:
    """(path inside the node, referenced node id) for every edge to a node of the same flow.

    Works on plain data (``model_dump()`` or parsed YAML). A ``goto`` without ``flow`` is an
    edge too; other flows (``subflow``, ``goto`` with ``flow``) are not edges of this flow.
    """
    kind = node.get("kind")
    if kind == "goto":
        if node.get("flow") is None and node.get("node") is not None:
            return [(("node",), node.get("node"))]
        return []
    edges: list[tuple[tuple[object, ...], object]] = []
    for name in _EDGE_FIELDS.get(str(kind), ()):
        value = node.get(name)
        if name == "choices" and isinstance(value, Mapping):
            edges += [((name, k), v) for k, v in value.items()]
        elif name == "cases" and isinstance(value, list):
            edges += [
                ((name, i, "goto"), case.get("goto"))
                for i, case in enumerate(value)
                if isinstance(case, Mapping)
            ]
        elif value is not None:
            edges.append(((name,), value))
    return edges


def _flow_problems(
    name: object,
    flow: Mapping[Any, Any],
    queues: Mapping[Any, Any] | None,
    flows: Mapping[Any, Any],
    number_lists: Mapping[Any, Any] | None,
    *,
    switches: Mapping[Any, Any] | None = None,
) -> list[Problem]:
    out: list[Problem] = []
    base: tuple[object, ...] = ("flows", name)
    nodes = _section(flow, "nodes")
    if nodes is None:
        return out
    ids = {str(k): k for k in nodes}
    start = flow.get("start")
    if isinstance(start, str) and start not in ids:
        out.append(Problem((*base, "start"), _unknown("node", start, nodes, f"flows.{name}.nodes")))
    edges: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        if not isinstance(node, Mapping):
            continue
        here = (*base, "nodes", node_id)
        edges[str(node_id)] = []
        for sub, target in node_edges(node):
            if not isinstance(target, str):
                continue
            if target in ids:
                edges[str(node_id)].append(target)
            else:
                where = f"flows.{name}.nodes"
                out.append(Problem((*here, *sub), _unknown("node", target, nodes, where)))
        out += _node_reference_problems(here, node, queues, flows, number_lists, switches=switches)
    if isinstance(start, str) and start in ids:
        seen = {start}
        todo = deque([start])
        while todo:
            for target in edges.get(todo.popleft(), []):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for node_id, key in ids.items():
            if node_id not in seen:
                out.append(
                    Problem(
                        (*base, "nodes", key),
                        f'node is never reached from start node "{start}": '
                        "link it from another node or remove it",
                    )
                )
    return out


def _node_reference_problems(
    here: tuple[object, ...],
    node: Mapping[Any, Any],
    queues: Mapping[Any, Any] | None,
    flows: Mapping[Any, Any],
    number_lists: Mapping[Any, Any] | None,
    *,
    switches: Mapping[Any, Any] | None = None,
) -> list[Problem]:
    """A node's references to queues, flows (and their nodes), number lists and
    switches."""
    out: list[Problem] = []
    kind = node.get("kind")
    queue = node.get("queue")
    if (
        kind in ("queue", "callback", "queue_figures")
        and isinstance(queue, str)
        and queues is not None
        and queue not in {str(k) for k in queues}
    ):
        out.append(Problem((*here, "queue"), _unknown("queue", queue, queues, "queues")))
    target_flow = node.get("flow")
    if kind in ("subflow", "goto") and isinstance(target_flow, str):
        if target_flow not in {str(k) for k in flows}:
            out.append(Problem((*here, "flow"), _unknown("flow", target_flow, flows, "flows")))
        elif kind == "goto" and isinstance(node.get("node"), str):
            other = flows.get(target_flow)
            other_nodes = _section(other, "nodes") if isinstance(other, Mapping) else None
            target = node["node"]
            if other_nodes is not None and target not in {str(k) for k in other_nodes}:
                where = f"flows.{target_flow}.nodes"
                out.append(Problem((*here, "node"), _unknown("node", target, other_nodes, where)))
    cases = node.get("cases") if kind == "branch" else None
    for i, case in enumerate(cases if isinstance(cases, list) else []):
        listed = case.get("caller_list") if isinstance(case, Mapping) else None
        if (
            isinstance(listed, str)
            and number_lists is not None
            and listed not in {str(k) for k in number_lists}
        ):
            out.append(
                Problem(
                    (*here, "cases", i, "caller_list"),
                    _unknown("number list", listed, number_lists, "ivr.number_lists"),
                )
            )
        flipped = case.get("switch") if isinstance(case, Mapping) else None
        if isinstance(flipped, str) and flipped not in {str(k) for k in switches or {}}:
            out.append(
                Problem(
                    (*here, "cases", i, "switch"),
                    _unknown("switch", flipped, switches or {}, "ivr.switches"),
                )
            )
        looked = case.get("queue") if isinstance(case, Mapping) else None
        if (
            isinstance(looked, str)
            and queues is not None
            and looked not in {str(k) for k in queues}
        ):
            out.append(
                Problem((*here, "cases", i, "queue"), _unknown("queue", looked, queues, "queues"))
            )
    return out


def _survey_problems(
    here: tuple[object, ...], survey: object, flows: Mapping[Any, Any]
) -> list[Problem]:
    """A queue's survey names a flow that exists and a score some flow stores."""
    if not isinstance(survey, Mapping):
        return []
    flow = survey.get("flow")
    if isinstance(flow, str) and flow not in {str(k) for k in flows}:
        return [Problem((*here, "survey", "flow"), _unknown("flow", flow, flows, "flows"))]
    score = survey.get("score")
    if not isinstance(score, str) or score in _stored_variables(flows):
        return []
    return [
        Problem(
            (*here, "survey", "score"),
            f'no flow stores "{score}": a `collect` node with `variable: {score}` '
            "(or a `set` / `lookup` node) must fill it",
        )
    ]


def _stored_variables(flows: Mapping[Any, Any]) -> set[str]:
    """Every variable some node of some flow stores (collect, set, lookup)."""
    stored: set[str] = set()
    for flow in flows.values():
        nodes = _section(flow, "nodes") if isinstance(flow, Mapping) else None
        for node in (nodes or {}).values():
            if not isinstance(node, Mapping):
                continue
            if isinstance(node.get("variable"), str):
                stored.add(node["variable"])
            for many in ("variables", "fields"):
                if isinstance(node.get(many), Mapping):
                    stored.update(str(k) for k in node[many])
    return stored


def _exits(queue: Mapping[Any, Any]) -> list[tuple[tuple[object, ...], Mapping[Any, Any]]]:
    """(path inside the queue, exit) for every exit destination a queue names."""
    found: list[tuple[tuple[object, ...], Mapping[Any, Any]]] = []
    places: list[tuple[tuple[object, ...], object]] = [
        ((name,), queue.get(name)) for name in ("on_timeout", "on_full", "on_empty", "on_closed")
    ]
    keys = queue.get("exit_keys")
    if isinstance(keys, Mapping):
        places += [(("exit_keys", key), value) for key, value in keys.items()]
    for path, value in places:
        if isinstance(value, str):
            found.append((path, {"to": value}))
        elif isinstance(value, Mapping):
            found.append((path, value))
    return found


def _declared_skills(acd: Mapping[Any, Any] | None) -> set[str] | None:
    skills = acd.get("skills") if acd is not None else None
    if isinstance(skills, list) and skills:
        return {str(s) for s in skills}
    return None


def _queue_problems(
    qname: object,
    queue: Mapping[Any, Any],
    queues: Mapping[Any, Any],
    flows: Mapping[Any, Any],
    acd: Mapping[Any, Any] | None,
) -> list[Problem]:
    """A queue's member settings, exit destinations and skills."""
    out: list[Problem] = []
    here: tuple[object, ...] = ("queues", qname)
    members = queue.get("agents")
    listed = {m for m in members if isinstance(m, str)} if isinstance(members, list) else set()
    for field_name in ("penalties", "member_weights"):
        values = queue.get(field_name)
        if not isinstance(values, Mapping):
            continue
        for agent in values:
            if isinstance(agent, str) and agent not in listed:
                out.append(
                    Problem(
                        (*here, field_name, agent),
                        f'"{agent}" is not a member of this queue: add it to `agents` first',
                    )
                )
    callbacks = acd is not None and isinstance(acd.get("callback_dial"), str)
    for sub, exit_ in _exits(queue):
        to = exit_.get("to")
        target = exit_.get("queue")
        if to == "queue" and isinstance(target, str):
            if target not in {str(k) for k in queues}:
                out.append(
                    Problem((*here, *sub, "queue"), _unknown("queue", target, queues, "queues"))
                )
            elif target == str(qname):
                out.append(Problem((*here, *sub, "queue"), "a queue cannot send callers to itself"))
        flow = exit_.get("flow")
        if to == "flow" and isinstance(flow, str) and flow not in {str(k) for k in flows}:
            out.append(Problem((*here, *sub, "flow"), _unknown("flow", flow, flows, "flows")))
        if to == "callback" and not callbacks:
            out.append(
                Problem(
                    (*here, *sub, "to"),
                    "callbacks need acd.callback_dial (how callers are called back) and "
                    "acd.callback_allow (which numbers may be)",
                )
            )
    if queue.get("abandoned_callback") is not None and not callbacks:
        out.append(
            Problem(
                (*here, "abandoned_callback"),
                "calling abandoned callers back needs acd.callback_dial (how) and "
                "acd.callback_allow (which numbers may be)",
            )
        )
    out += _survey_problems(here, queue.get("survey"), flows)
    declared = _declared_skills(acd)
    skills = queue.get("skills")
    if declared is not None and isinstance(skills, list):
        for i, skill in enumerate(skills):
            if isinstance(skill, str) and skill not in declared:
                out.append(
                    Problem(
                        (*here, "skills", i),
                        f'unknown skill "{skill}"{did_you_mean(skill, declared)} '
                        "(acd.skills lists them)",
                    )
                )
    return out


def _agent_problems(agents: Mapping[Any, Any], acd: Mapping[Any, Any] | None) -> list[Problem]:
    """Agents' skills (against acd.skills) and remote devices (against acd.remote_allow)."""
    out: list[Problem] = []
    declared = _declared_skills(acd)
    remote_dial = acd.get("remote_dial") if acd is not None else None
    allow = acd.get("remote_allow") if acd is not None else None
    patterns = [p for p in allow if isinstance(p, str)] if isinstance(allow, list) else []
    for agent_id, agent in agents.items():
        if not isinstance(agent, Mapping):
            continue
        skills = agent.get("skills")
        if declared is not None and isinstance(skills, Mapping):
            for skill in skills:
                if isinstance(skill, str) and skill not in declared:
                    out.append(
                        Problem(
                            ("agents", agent_id, "skills", skill),
                            f'unknown skill "{skill}"{did_you_mean(skill, declared)} '
                            "(acd.skills lists them)",
                        )
                    )
        device = agent.get("device")
        if not isinstance(device, str) or not device.startswith("external/"):
            continue
        number = device.removeprefix("external/")
        where = ("agents", agent_id, "device")
        if not isinstance(remote_dial, str):
            out.append(
                Problem(
                    where, "a remote agent needs acd.remote_dial (how outside numbers are dialled)"
                )
            )
        elif not re.fullmatch(r"\+?[0-9]+", number) or not matches_any(patterns, number):
            out.append(
                Problem(
                    where,
                    f'"{number}" is not a number acd.remote_allow lists; remote agents may only '
                    "be on allowed numbers",
                )
            )
    return out


# Music-on-hold class names each PBX driver accepts (pbx/asterisk/driver.py and
# pbx/freeswitch/driver.py check them again before a command is sent).
_MUSIC_CLASS: Final = {
    "asterisk": re.compile(r"[A-Za-z0-9_-]{1,80}"),
    "freeswitch": re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_/-]{0,79}"),
}
_MUSIC_CLASS_RULE: Final = {
    "asterisk": "letters, digits, _ and -, up to 80 characters (a class of musiconhold.conf)",
    "freeswitch": "letters, digits, _, - and /, up to 80 characters (a local_stream:// name)",
}


RECORDING_PATH_CHARS: Final = re.compile(r"[A-Za-z0-9_./-]+")
"""What both drivers accept in a recording's file name."""


def _recording_problems(
    data: Mapping[Any, Any], queues: Mapping[Any, Any] | None, base_dir: Path
) -> list[Problem]:
    """A relative recordings folder under a config folder whose path the PBX would refuse
    (a space in it, say): every recording would fail, call after call."""
    recorded = [
        name
        for name, queue in (queues or {}).items()
        if isinstance(queue, Mapping) and queue.get("record") is True
    ]
    acd = _section(data, "acd") or {}
    folder = acd.get("recordings_folder", "var/recordings")
    if not recorded or not isinstance(folder, str) or Path(folder).expanduser().is_absolute():
        return []
    resolved = os.path.normpath(base_dir / folder)
    if RECORDING_PATH_CHARS.fullmatch(resolved):
        return []
    where = (
        ("acd", "recordings_folder")
        if "recordings_folder" in acd
        else ("queues", recorded[0], "record")
    )
    return [
        Problem(
            where,
            f"recordings go to {resolved}, a path the PBX refuses in a file name (only "
            "letters, digits, '_', '.', '-' and '/'): set acd.recordings_folder to an "
            "absolute path such as /var/spool/asterisk/monitor",
        )
    ]


def _script_problems(
    where: tuple[Any, ...], script: object, scripts: Mapping[Any, Any]
) -> list[Problem]:
    if isinstance(script, str) and script not in {str(k) for k in scripts}:
        return [Problem((*where, "script"), _unknown("script", script, scripts, "scripts"))]
    return []


def _profile_problems(
    profiles: Mapping[Any, Any], queues: Mapping[Any, Any], acd: Mapping[Any, Any] | None
) -> list[Problem]:
    """A profile's queue that is not there, a penalty for a queue it does not list, a skill
    ``acd.skills`` does not list (when it lists any)."""
    out: list[Problem] = []
    known = acd.get("skills") if isinstance(acd, Mapping) else None
    for name, profile in profiles.items():
        if not isinstance(profile, Mapping):
            continue
        listed = profile.get("queues")
        listed = listed if isinstance(listed, list) else []
        for i, queue in enumerate(listed):
            if isinstance(queue, str) and queue not in {str(q) for q in queues}:
                message = _unknown("queue", queue, queues, "queues")
                out.append(Problem(("profiles", name, "queues", i), message))
        penalties = profile.get("penalties")
        for queue in penalties if isinstance(penalties, Mapping) else {}:
            if queue not in listed:
                message = f'"{queue}" is not one of the profile\'s queues'
                out.append(Problem(("profiles", name, "penalties", queue), message))
        skills = profile.get("skills")
        if isinstance(known, list) and known and isinstance(skills, Mapping):
            for skill in skills:
                if skill not in known:
                    message = _unknown("skill", str(skill), {k: None for k in known}, "acd.skills")
                    out.append(Problem(("profiles", name, "skills", skill), message))
    return out


def _code_problems(
    where: tuple[Any, ...], listed: object, codes: Mapping[Any, Any]
) -> list[Problem]:
    if not isinstance(listed, list):
        return []
    return [
        Problem((*where, "dispositions", i), _unknown("disposition", code, codes, "dispositions"))
        for i, code in enumerate(listed)
        if isinstance(code, str) and code not in {str(k) for k in codes}
    ]


def _campaign_problems(
    campaigns: Mapping[Any, Any],
    queues: Mapping[Any, Any],
    flows: Mapping[Any, Any],
    base_dir: Path | None,
    *,
    scripts: Mapping[Any, Any],
    codes: Mapping[Any, Any],
) -> list[Problem]:
    """A campaign's queue that is not there, a survey naming no flow; with ``base_dir``,
    its lead and do-not-call files that cannot be read as such (the file's own line in
    the message)."""
    out: list[Problem] = []
    for cid, campaign in campaigns.items():
        if not isinstance(campaign, Mapping):
            continue
        queue = campaign.get("queue")
        if isinstance(queue, str) and queue not in {str(k) for k in queues}:
            out.append(
                Problem(("campaigns", cid, "queue"), _unknown("queue", queue, queues, "queues"))
            )
        out += _survey_problems(("campaigns", cid), campaign.get("survey"), flows)
        out += _script_problems(("campaigns", cid), campaign.get("script"), scripts)
        out += _code_problems(("campaigns", cid), campaign.get("dispositions"), codes)
        if base_dir is None:
            continue
        for key, load in (("leads", load_leads), ("do_not_call", load_do_not_call)):
            name = campaign.get(key)
            if not isinstance(name, str) or not name:
                continue
            path = Path(name).expanduser()
            try:
                load(path if path.is_absolute() else base_dir / path)
            except ConfigError as exc:
                out.append(Problem(("campaigns", cid, key), str(exc)))
    return out


def reference_problems(data: Mapping[Any, Any], *, base_dir: Path | None = None) -> list[Problem]:
    """Every reference between sections that points nowhere, and other whole-file rules.

    Works on plain data (the parsed YAML or ``model_dump()``) and skips parts that are not
    shaped right: those are reported by the models themselves. The IVR graph rules
    (:mod:`callcenter.ivr.check`) run on the flows that validate; prompt files are looked for
    only when ``base_dir`` (the config file's folder) is given.
    """
    out: list[Problem] = []
    flows = _section(data, "flows")
    queues = _section(data, "queues")
    agents = _section(data, "agents")
    supervisors = _section(data, "supervisors")
    routes = _section(data, "routes") or {}
    scripts = _section(data, "scripts") or {}
    known_codes = _section(data, "dispositions") or {}
    out += _profile_problems(_section(data, "profiles") or {}, queues or {}, _section(data, "acd"))

    pbx = _section(data, "pbx")
    pbx_type = pbx.get("type") if pbx is not None else None
    if pbx_type not in _MUSIC_CLASS:
        pbx_type = "asterisk"

    queue_digits: dict[str, str] = {}
    for name, queue in (queues or {}).items():
        digits = queue.get("digits") if isinstance(queue, Mapping) else None
        if isinstance(digits, str):
            if digits in queue_digits:
                message = f'the digits "{digits}" already name the queue "{queue_digits[digits]}"'
                out.append(Problem(("queues", name, "digits"), message))
            queue_digits.setdefault(digits, str(name))

    dispositions = _section(data, "dispositions") or {}
    keyed: dict[str, str] = {}
    for code, disposition in dispositions.items():
        digits = disposition.get("digits") if isinstance(disposition, Mapping) else None
        if isinstance(digits, str):
            if digits in keyed:
                message = f'the digits "{digits}" already give the code "{keyed[digits]}"'
                out.append(Problem(("dispositions", code, "digits"), message))
            keyed.setdefault(digits, str(code))

    flow_names = {str(k) for k in flows or {}}
    agent_ids = {str(k) for k in agents or {}}
    supervisor_ids = {str(k) for k in supervisors or {}}

    if flows is not None:
        for key, route in routes.items():
            flow = route.get("flow") if isinstance(route, Mapping) else None
            if isinstance(flow, str) and flow not in flow_names:
                out.append(Problem(("routes", key, "flow"), _unknown("flow", flow, flows, "flows")))
        ivr = _section(data, "ivr")
        number_lists = _section(ivr, "number_lists") if ivr is not None else None
        switches = _section(ivr, "switches") if ivr is not None else None
        for name, flow_data in flows.items():
            if isinstance(flow_data, Mapping):
                out += _flow_problems(
                    name, flow_data, queues, flows, number_lists, switches=switches
                )

        from callcenter.ivr.check import graph_problems

        out += [Problem(path, message) for path, message in graph_problems(data, base_dir)]

    teams = {
        str(a.get("team"))
        for a in (agents or {}).values()
        if isinstance(a, Mapping) and a.get("team")
    }
    listed = _section(data, "teams")
    teams |= {str(name) for name in (listed or {})}
    for sid, supervisor in (supervisors or {}).items():
        wanted = supervisor.get("teams") if isinstance(supervisor, Mapping) else None
        for i, team in enumerate(wanted if isinstance(wanted, list) else []):
            if isinstance(team, str) and team not in teams:
                known = {t: None for t in sorted(teams)}
                message = _unknown("team", team, known, "agents.<id>.team")
                out.append(Problem(("supervisors", sid, "teams", i), message))

    codes = _section(data, "dispositions")
    boxes: dict[str, str] = {}
    for qname, queue in (queues or {}).items():
        if not isinstance(queue, Mapping):
            continue
        if queue.get("disposition_required") is True and not codes:
            message = "needs codes to give: a dispositions: section (sale, no-interest...)"
            out.append(Problem(("queues", qname, "disposition_required"), message))
        members = queue.get("agents")
        if isinstance(members, list) and agents is not None:
            seen: set[str] = set()
            for i, agent in enumerate(members):
                if not isinstance(agent, str):
                    continue
                if agent in seen:
                    out.append(
                        Problem(("queues", qname, "agents", i), f'agent "{agent}" is listed twice')
                    )
                elif agent not in agent_ids:
                    out.append(
                        Problem(
                            ("queues", qname, "agents", i),
                            _unknown("agent", agent, agents, "agents"),
                        )
                    )
                seen.add(agent)
        supervisor = queue.get("supervisor")
        if (
            isinstance(supervisor, str)
            and supervisors is not None
            and supervisor not in supervisor_ids
        ):
            out.append(
                Problem(
                    ("queues", qname, "supervisor"),
                    _unknown("supervisor", supervisor, supervisors, "supervisors"),
                )
            )
        out += _queue_problems(qname, queue, queues or {}, flows or {}, _section(data, "acd"))
        out += _script_problems(("queues", qname), queue.get("script"), scripts)
        out += _code_problems(("queues", qname), queue.get("dispositions"), known_codes)
        form = queue.get("evaluation_form")
        forms = _section(data, "evaluation_forms") or {}
        if isinstance(form, str) and form not in {str(k) for k in forms}:
            out.append(
                Problem(
                    ("queues", qname, "evaluation_form"),
                    _unknown("evaluation form", form, forms, "evaluation_forms"),
                )
            )
        box = queue.get("mailbox")
        if isinstance(box, str):
            if box in boxes:
                out.append(
                    Problem(
                        ("queues", qname, "mailbox"),
                        f'box "{box}" is queue {boxes[box]}\'s already: a box belongs to one '
                        "queue at most",
                    )
                )
            boxes.setdefault(box, str(qname))
        if queue.get("message_lamp") and not isinstance(box, str):
            out.append(
                Problem(
                    ("queues", qname, "message_lamp"),
                    "a message lamp shows the messages of the queue's mailbox: set mailbox too",
                )
            )
        music = queue.get("hold_music")
        if isinstance(music, str) and not _MUSIC_CLASS[pbx_type].fullmatch(music):
            out.append(
                Problem(
                    ("queues", qname, "hold_music"),
                    f'"{music}" is no music class {pbx_type} takes: ' + _MUSIC_CLASS_RULE[pbx_type],
                )
            )

    out += _agent_problems(agents or {}, _section(data, "acd"))
    acd_data = _section(data, "acd")
    blf = _section(acd_data, "blf") if acd_data is not None else None
    for kind in ("agent", "queue"):
        name = blf.get(kind) if blf is not None else None
        if pbx_type == "freeswitch" and isinstance(name, str) and "@" not in name:
            out.append(
                Problem(
                    ("acd", "blf", kind),
                    "FreeSWITCH's busy lamps are presence ids: user@domain, such as "
                    f'"{name}@pbx.example.com"',
                )
            )
    block_list = acd_data.get("agent_block_list") if acd_data is not None else None
    if isinstance(block_list, str):
        ivr_data = _section(data, "ivr")
        lists = (_section(ivr_data, "number_lists") if ivr_data is not None else None) or {}
        if block_list not in {str(k) for k in lists}:
            message = _unknown("number list", block_list, lists, "ivr.number_lists")
            out.append(Problem(("acd", "agent_block_list"), message))
    blocked = acd_data.get("dial_out_block") if acd_data is not None else None
    if isinstance(blocked, list):
        ivr_data = _section(data, "ivr")
        lists = (_section(ivr_data, "number_lists") if ivr_data is not None else None) or {}
        for i, listed in enumerate(blocked):
            if isinstance(listed, str) and listed not in {str(k) for k in lists}:
                message = _unknown("number list", listed, lists, "ivr.number_lists")
                out.append(Problem(("acd", "dial_out_block", i), message))
    out += _campaign_problems(
        _section(data, "campaigns") or {},
        queues or {},
        flows or {},
        base_dir,
        scripts=scripts,
        codes=known_codes,
    )

    owners: dict[str, object] = {}
    for agent_id, agent in (agents or {}).items():
        device = agent.get("device") if isinstance(agent, Mapping) else None
        if not isinstance(device, str):
            continue
        if device in owners:
            out.append(
                Problem(
                    ("agents", agent_id, "device"),
                    f'device {device} is already agent "{owners[device]}"\'s phone; '
                    "each agent needs their own device",
                )
            )
        else:
            owners[device] = agent_id

    if base_dir is not None:
        out += _recording_problems(data, queues, base_dir)

    reasons = data.get("pause_reasons")
    if isinstance(reasons, list):
        seen_reasons: set[object] = set()
        for i, reason in enumerate(reasons):
            if isinstance(reason, str) and reason in seen_reasons:
                out.append(Problem(("pause_reasons", i), f'"{reason}" is listed twice'))
            seen_reasons.add(reason)
    watched = _section(_section(data, "acd") or {}, "agent_alerts") or {}
    by_reason = watched.get("pause_reasons")
    known_reasons = (
        reasons if isinstance(reasons, list) else ["break", "lunch", "training", "meeting"]
    )
    if isinstance(by_reason, Mapping):
        for reason in by_reason:
            if isinstance(reason, str) and reason not in known_reasons:
                shown = {str(r): None for r in known_reasons}
                out.append(
                    Problem(
                        ("acd", "agent_alerts", "pause_reasons", reason),
                        _unknown("pause reason", reason, shown, "pause_reasons"),
                    )
                )

    pbx = _section(data, "pbx") or {}
    if pbx.get("type") == "freeswitch":
        esl = _section(pbx, "esl")
        if esl is not None and esl.get("password") is None:
            out.append(
                Problem(
                    ("pbx", "esl", "password"),
                    "no event socket password: export CALLCENTER_ESL_PASSWORD=..., or put it "
                    "in the secrets file named by CALLCENTER_SECRETS_FILE, or set "
                    "pbx.esl.password in this file",
                )
            )
    elif pbx.get("type") in (None, "asterisk"):
        agi = _section(pbx, "agi") or {}
        ami = _section(pbx, "ami") or {}
        beat = ami.get("heartbeat_interval")
        if agi.get("transport") == "asyncagi" and isinstance(beat, int | float) and beat == 0:
            out.append(
                Problem(
                    ("pbx", "ami", "heartbeat_interval"),
                    "0 turns the heartbeat off, but with pbx.agi.transport: asyncagi the "
                    "shipped AsyncAGI context fails every caller over when "
                    "CALLCENTER_HEARTBEAT is not kept fresh; keep it between 1 and 15 s "
                    "(one AMI Setvar each time, with the AMI user's write=call)",
                )
            )
    return out


# --------------------------------------------------------------------------- documentation


def unwrap_type(tp: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _type_name(tp: Any) -> str:
    inner = unwrap_type(tp)
    origin = get_origin(inner)
    if origin is Literal:
        return " | ".join(str(a) for a in get_args(inner))
    if origin is list:
        return f"list of {_type_name(get_args(inner)[0])}"
    if origin is dict:
        return f"mapping of {_type_name(get_args(inner)[1])}"
    if origin in (Union, types.UnionType):
        kinds = [
            str(get_args(m.model_fields["kind"].annotation)[0])
            for m in get_args(inner)
            if isinstance(m, type) and issubclass(m, BaseModel) and "kind" in m.model_fields
        ]
        return f"node, kind: {' | '.join(kinds)}"
    if isinstance(inner, type):
        return {"str": "string", "float": "seconds/number", "SecretStr": "secret"}.get(
            inner.__name__, inner.__name__
        )
    return str(inner)


def _describe(model: type[BaseModel], prefix: str, lines: list[str]) -> None:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        tp = info.annotation
        default = ""
        if not info.is_required():
            value = info.get_default(call_default_factory=True)
            default = f" = {value!r}" if not isinstance(value, BaseModel) else ""
        lines.append(f"{path}  ({_type_name(tp)}{default})")
        lines.append(f"    {info.description or ''}")
        inner = unwrap_type(tp)
        if get_origin(inner) is dict:
            inner = unwrap_type(get_args(inner)[1])
            path += ".<name>"
        if get_origin(inner) in (Union, types.UnionType):
            for member in get_args(inner):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    kind = get_args(member.model_fields["kind"].annotation)[0]
                    _describe(member, f"{path}.<{kind}>.", lines)
        elif isinstance(inner, type) and issubclass(inner, BaseModel):
            _describe(inner, f"{path}.", lines)


def describe_fields(model: type[BaseModel] = CallCenterConfig) -> str:
    """Every field of ``model`` (recursively) with its type, default and description."""
    lines: list[str] = []
    _describe(model, "", lines)
    return "\n".join(lines)
