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
import os
import re
import types
import typing
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "AGIConfig",
    "AMIConfig",
    "APIConfig",
    "AgentConfig",
    "CallCenterConfig",
    "Device",
    "Digits",
    "DtmfKey",
    "ESLConfig",
    "Extension",
    "FlowConfig",
    "HangupNode",
    "LoggingConfig",
    "MenuNode",
    "Name",
    "Node",
    "PBXConfig",
    "PlayNode",
    "Problem",
    "Prompt",
    "QueueConfig",
    "QueueNode",
    "RecordsConfig",
    "RouteConfig",
    "SupervisorConfig",
    "TimeOfDay",
    "describe_fields",
    "did_you_mean",
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
_Ref = Annotated[str, Strict(), Field(min_length=1)]
_Port = Annotated[int, Field(ge=1, le=65535)]
_ListenPort = Annotated[int, Field(ge=0, le=65535)]
_Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_SecondsOrZero = Annotated[float, Field(ge=0, allow_inf_nan=False)]

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
    reconnect_min: _Seconds = Field(
        default=0.5, description="First delay (s) before reconnecting a lost link; it doubles."
    )
    reconnect_max: _Seconds = Field(
        default=30, description="Longest delay (s) between reconnection attempts."
    )
    events: _AmiEvents = Field(
        default="call,agi,dtmf",
        description=(
            "The AMI Events mask sent at login: comma-separated event classes. Narrow on "
            "purpose: every extra class is traffic the daemon must parse."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> AMIConfig:
        if self.reconnect_max < self.reconnect_min:
            raise PydanticCustomError(
                "reconnect_range",
                "reconnect_max ({max}) must not be less than reconnect_min ({min})",
                {"max": self.reconnect_max, "min": self.reconnect_min},
            )
        return self


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


class APIConfig(_Model):
    """The local control API the ``callcenter`` command line talks to."""

    host: _Text = Field(default="127.0.0.1", description="Address the control API listens on.")
    port: _ListenPort = Field(
        default=8470, description="Port of the control API the CLI talks to (0: any free port)."
    )


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


class RecordsConfig(_Model):
    """Where call records (CDRs) are kept."""

    cdr_path: _Text = Field(
        default="var/cdr.sqlite3",
        description=(
            "SQLite file for CDRs, created on first run. A relative path is relative to the "
            "folder of the config file."
        ),
    )


class RouteConfig(_Model):
    """What happens to a call that dialled one number."""

    flow: _Ref = Field(description="Name of the IVR flow (under `flows`) the call walks.")


class PlayNode(_Model):
    """Play prompts, then go on."""

    kind: Literal["play"] = Field(description="Play prompts one after the other.")
    prompts: list[Prompt] = Field(min_length=1, description="Sound files played in order.")
    next: _Ref = Field(description="Id of the node that runs after the last prompt.")


class MenuNode(_Model):
    """Play a prompt and branch on the key the caller presses."""

    kind: Literal["menu"] = Field(description="Ask the caller to press a key.")
    prompt: Prompt = Field(description="Sound file played to ask for a key.")
    choices: dict[DtmfKey, _Ref] = Field(
        min_length=1,
        description='Key pressed -> node id, such as "1": sales. Quote the keys: "1", not 1.',
    )
    timeout: _Seconds = Field(
        default=5, description="Seconds to wait for a key once the prompt has ended."
    )
    retries: int = Field(
        default=3, ge=1, description="Attempts (prompt + wait) before `default` runs."
    )
    invalid_prompt: Prompt = Field(
        default="invalid", description="Played when the caller presses a key with no choice."
    )
    timeout_prompt: Prompt = Field(
        default="please-try-again", description="Played when no key came within `timeout`."
    )
    default: _Ref = Field(
        description=(
            "Id of the node run when the retries are exhausted. Required: a caller is never "
            "left in silence."
        )
    )


class QueueNode(_Model):
    """Put the caller in a queue to wait for an agent."""

    kind: Literal["queue"] = Field(description="Wait in a queue for an agent.")
    queue: _Ref = Field(description="Name of the queue (under `queues`).")
    priority: int = Field(
        default=0, description="Callers with a higher priority are served before others."
    )


class HangupNode(_Model):
    """End the call."""

    kind: Literal["hangup"] = Field(description="Hang up.")
    prompt: Prompt | None = Field(
        default=None, description="Sound file played before hanging up, if any."
    )


Node = Annotated[PlayNode | MenuNode | QueueNode | HangupNode, Field(discriminator="kind")]
"""One step of an IVR flow, chosen by its ``kind``."""


class FlowConfig(_Model):
    """An IVR flow: a graph of nodes walked from ``start``."""

    start: _Ref = Field(description="Id of the first node a call runs.")
    nodes: dict[Name, Node] = Field(
        min_length=1, description="The nodes of the flow by id; each has a `kind`."
    )


class QueueConfig(_Model):
    """A queue of callers served by a set of agents."""

    strategy: Literal["longest-idle-agent"] = Field(
        default="longest-idle-agent",
        description="How the next agent is chosen: longest-idle-agent rings the agent idle "
        "for the longest time.",
    )
    agents: list[_Ref] = Field(
        default_factory=list, description="Ids of the agents (under `agents`) who serve it."
    )
    ring_timeout: _Seconds = Field(
        default=15, description="Seconds an agent rings before the next agent is tried."
    )
    wrapup: _SecondsOrZero = Field(
        default=0, description="Seconds of after-call work before an agent gets the next call."
    )
    hold_music: _Text = Field(
        default="default", description="Music-on-hold class callers hear while waiting."
    )
    max_wait: _Seconds = Field(
        default=600,
        description="Seconds a caller may wait; then timeout_prompt is played and the call ends.",
    )
    timeout_prompt: Prompt = Field(
        default="queue-timeout", description="Sound file played when max_wait is reached."
    )
    supervisor: _Ref | None = Field(
        default=None, description="Id of the supervisor (under `supervisors`) of this queue."
    )
    announce: Prompt | None = Field(
        default=None, description="Sound file played to a caller on joining the queue."
    )


class AgentConfig(_Model):
    """A person who answers calls."""

    name: _Text = Field(description="Display name, such as Alice.")
    device: Device = Field(description='The phone that rings, such as "PJSIP/1001".')
    pin: Digits | None = Field(
        default=None, description="Login PIN for the feature codes, digits only (quote it)."
    )
    logged_in: bool = Field(default=False, description="Logged in at start-up (handy for demos).")


class SupervisorConfig(_Model):
    """A person who watches queues and helps agents."""

    name: _Text = Field(description="Display name.")
    device: Device = Field(
        description='The phone used to listen, whisper or barge, e.g. "PJSIP/2000".'
    )


class CallCenterConfig(_Model):
    """The whole configuration: one YAML file.

    ``source`` is the file it was loaded from (``None`` when built in code); relative paths in
    the file are resolved against its folder by :meth:`resolve_path`.
    """

    pbx: PBXConfig = Field(description="The PBX beside the daemon and how to reach it.")
    api: APIConfig = Field(default_factory=APIConfig, description="The local control API.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    records: RecordsConfig = Field(
        default_factory=RecordsConfig, description="Where call records are kept."
    )
    routes: dict[_RouteKey, RouteConfig] = Field(
        default_factory=dict,
        description='Dialled number (quoted, such as "800") or "default" -> the flow to run.',
    )
    flows: dict[Name, FlowConfig] = Field(default_factory=dict, description="IVR flows by name.")
    queues: dict[Name, QueueConfig] = Field(default_factory=dict, description="Queues by name.")
    agents: dict[Name, AgentConfig] = Field(
        default_factory=dict, description='Agents by id (quoted, such as "1001").'
    )
    supervisors: dict[Name, SupervisorConfig] = Field(
        default_factory=dict, description='Supervisors by id (quoted, such as "2000").'
    )
    pause_reasons: list[_Text] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting"],
        description="Reasons an agent may give when pausing.",
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


def _node_targets(node: Mapping[Any, Any]) -> list[tuple[tuple[object, ...], object]]:
    """(path inside the node, referenced node id) for every edge leaving ``node``."""
    kind = node.get("kind")
    if kind == "play":
        return [(("next",), node.get("next"))]
    if kind == "menu":
        edges: list[tuple[tuple[object, ...], object]] = []
        choices = node.get("choices")
        if isinstance(choices, Mapping):
            edges += [(("choices", k), v) for k, v in choices.items()]
        edges.append((("default",), node.get("default")))
        return edges
    return []


def _flow_problems(
    name: object, flow: Mapping[Any, Any], queues: Mapping[Any, Any] | None
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
        for sub, target in _node_targets(node):
            if not isinstance(target, str):
                continue
            if target in ids:
                edges[str(node_id)].append(target)
            else:
                where = f"flows.{name}.nodes"
                out.append(Problem((*here, *sub), _unknown("node", target, nodes, where)))
        queue = node.get("queue")
        if (
            node.get("kind") == "queue"
            and isinstance(queue, str)
            and queues is not None
            and queue not in {str(k) for k in queues}
        ):
            out.append(Problem((*here, "queue"), _unknown("queue", queue, queues, "queues")))
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


def reference_problems(data: Mapping[Any, Any]) -> list[Problem]:
    """Every reference between sections that points nowhere, and other whole-file rules.

    Works on plain data (the parsed YAML or ``model_dump()``) and skips parts that are not
    shaped right: those are reported by the models themselves.
    """
    out: list[Problem] = []
    flows = _section(data, "flows")
    queues = _section(data, "queues")
    agents = _section(data, "agents")
    supervisors = _section(data, "supervisors")
    routes = _section(data, "routes") or {}

    flow_names = {str(k) for k in flows or {}}
    agent_ids = {str(k) for k in agents or {}}
    supervisor_ids = {str(k) for k in supervisors or {}}

    if flows is not None:
        for key, route in routes.items():
            flow = route.get("flow") if isinstance(route, Mapping) else None
            if isinstance(flow, str) and flow not in flow_names:
                out.append(Problem(("routes", key, "flow"), _unknown("flow", flow, flows, "flows")))
        for name, flow_data in flows.items():
            if isinstance(flow_data, Mapping):
                out += _flow_problems(name, flow_data, queues)

    for qname, queue in (queues or {}).items():
        if not isinstance(queue, Mapping):
            continue
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

    reasons = data.get("pause_reasons")
    if isinstance(reasons, list):
        seen_reasons: set[object] = set()
        for i, reason in enumerate(reasons):
            if isinstance(reason, str) and reason in seen_reasons:
                out.append(Problem(("pause_reasons", i), f'"{reason}" is listed twice'))
            seen_reasons.add(reason)

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
