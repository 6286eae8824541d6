"""What ``callcenter check --pbx`` asks the PBX before the daemon runs on it: the things a PBX
admin gets wrong when pasting the dialplan and the manager/event-socket user, found before
the first caller finds them.

Asterisk (over AMI, as the daemon logs in):

* the AMI actions the daemon sends are allowed to its user (``ListCommands`` lists only
  those the user's ``write=`` classes allow, as manager.c does): a missing one names the
  class to add to manager.conf;
* the contexts the daemon sends calls into exist (``ShowDialPlan``): the callback context,
  the IVR's transfer context, campaigns' contexts, ``callcenter-conference``,
  ``callcenter-hangup`` and, for queues with ``report_holdtime``, ``callcenter-agent-hear``
  (``callcenter-agent-wait`` for those with ``member_delay``, ``callcenter-auto-answer``
  when agents' phones answer by themselves);
* the modules the configured features need are loaded (``ModuleCheck``): AGI, ConfBridge,
  Dial, music on hold, MixMonitor for recorded queues, ChanSpy for supervisors, AMD for
  a campaign that detects machines;
* the agents' and supervisors' phones: known to the PBX and registered now
  (``DeviceStateList``); a phone not registered is a warning, not a failure (its agent may
  be off today).

FreeSWITCH (over the event socket): the modules (``module_exists``) and the phones
(``sofia_contact`` for ``user/<id>`` devices, and ``PJSIP/<id>`` ones, which the driver
dials as users too).

Both: the ports the daemon listens on are free on this machine (a warning when one is
taken: the daemon may be running already). A check the PBX will not answer (the user may
not run the action) is said as such, never as a failure.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from callcenter.acd.rules import answers_by_itself
from callcenter.config.models import LanguageNode
from callcenter.errors import ActionFailed, PBXError
from callcenter.pbx.asterisk.ami import AMIConnection
from callcenter.pbx.asterisk.driver import (
    AGENT_HEAR_CONTEXT,
    AGENT_WAIT_CONTEXT,
    AUTO_ANSWER_CONTEXT,
    AsteriskSettings,
)
from callcenter.pbx.asterisk.driver import probe_connection as asterisk_probe
from callcenter.pbx.freeswitch.driver import probe_connection as freeswitch_probe
from callcenter.pbx.interface import RINGBACK

if TYPE_CHECKING:
    from callcenter.config import CallCenterConfig
    from callcenter.pbx.freeswitch.driver import FreeSwitchSettings

Status = Literal["ok", "warning", "problem"]

MARKS: Final[Mapping[Status, str]] = {"ok": "ok  ", "warning": "warn", "problem": "FAIL"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing checked: ``problem`` stops a clean start, ``warning`` is worth a look."""

    status: Status
    text: str

    def line(self) -> str:
        return f"{MARKS[self.status]}  {self.text}"


ACTION_CLASSES: Final[Mapping[str, str]] = {
    "Originate": "originate",
    "Redirect": "call",
    "Hangup": "call",
    "Setvar": "call",
    "Getvar": "call",
    "ConfbridgeKick": "call",
    "PlayDTMF": "call",
    "CoreShowChannels": "reporting",
    "DeviceStateList": "call",
    "MixMonitor": "system",
    "MixMonitorMute": "call",
    "StopMixMonitor": "call",
    "AGI": "agi",
    "MWIUpdate": "call",
}
"""Each AMI action the daemon sends and one write= class of manager.conf that allows it."""
ACTION_MODULES: Final[Mapping[str, str]] = {"MWIUpdate": "res_mwi_external_ami"}
"""Actions a module registers: absent from ListCommands while it is not loaded."""

CONFERENCE_CONTEXT: Final = "callcenter-conference"
HANGUP_CONTEXT: Final = "callcenter-hangup"

_REGISTERED_STATES: Final = frozenset(
    {"NOT_INUSE", "INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"}
)


def needed_actions(config: CallCenterConfig) -> list[str]:
    """The AMI actions this config has the daemon send."""
    actions = [
        "Originate",
        "Redirect",
        "Hangup",
        "Setvar",
        "Getvar",
        "ConfbridgeKick",
        "CoreShowChannels",
        "DeviceStateList",
    ]
    if _records_calls(config):
        actions += ["MixMonitor", "MixMonitorMute", "StopMixMonitor"]
    if config.pbx.agi.transport == "asyncagi":
        actions.append("AGI")
    if _lamps(config):
        actions.append("MWIUpdate")
    return actions


def needed_contexts(config: CallCenterConfig) -> dict[str, str]:
    """The dialplan contexts the daemon sends calls into, and what for."""
    contexts = {
        config.acd.callback_context: "acd.callback_context: callbacks and agents' own calls",
        CONFERENCE_CONTEXT: "rooms: consultations, holds, supervisors, open lines",
        HANGUP_CONTEXT: "ending a supervisor's listening",
    }
    if config.ivr.transfer_allow:
        contexts.setdefault(config.ivr.transfer_context, "ivr.transfer_context: IVR transfers")
    for name, campaign in config.campaigns.items():
        if campaign.context:
            contexts.setdefault(campaign.context, f"campaigns.{name}.context")
    telling = [
        name
        for name, q in config.queues.items()
        if q.report_holdtime is not None and not q.member_delay
    ]
    if telling:
        contexts[AGENT_HEAR_CONTEXT] = "queues.<q>.report_holdtime: " + ", ".join(telling)
    pausing = _pausing(config)
    if pausing:
        contexts[AGENT_WAIT_CONTEXT] = "queues.<q>.member_delay: " + ", ".join(pausing)
    answering = _auto_answering(config)
    if answering:
        contexts[AUTO_ANSWER_CONTEXT] = "auto_answer of agents " + ", ".join(answering)
    return contexts


def needed_asterisk_modules(config: CallCenterConfig) -> dict[str, str]:
    """Asterisk modules the configured features need, and which feature."""
    modules = {
        "res_agi": "AGI: the daemon's call control",
        "app_dial": "ringing agents",
        "app_confbridge": "rooms: consultations, holds, supervisors, open lines",
        "res_musiconhold": "music for waiting callers",
    }
    if _records_calls(config):
        modules["app_mixmonitor"] = "call recording"
    if config.supervisors:
        modules["app_chanspy"] = "supervisors listening, whispering, barging"
    if any("amd" in (c.context or "") for c in config.campaigns.values()):
        modules["app_amd"] = "answering machine detection of campaigns"
    if _lamps(config):
        modules["res_mwi_external_ami"] = "the queues' message lamps (not beside app_voicemail)"
    if config.acd.blf is not None:
        modules["func_devstate"] = "busy lamps (acd.blf: custom device states)"
    if any(q.hold_music == RINGBACK for q in config.queues.values()):
        modules["app_playtones"] = "the ring tone of queues with hold_music: ringback"
    if _pausing(config):
        modules["app_exec"] = "ExecIf in callcenter-agent-wait (queues.<q>.member_delay)"
    if _auto_answering(config):
        modules["res_pjsip_header_funcs"] = "PJSIP_HEADER for agents' phones that auto-answer"
    return modules


def _pausing(config: CallCenterConfig) -> list[str]:
    return [name for name, q in config.queues.items() if q.member_delay]


def _auto_answering(config: CallCenterConfig) -> list[str]:
    return [agent_id for agent_id in config.agents if answers_by_itself(config, agent_id)]


def needed_freeswitch_modules(config: CallCenterConfig) -> dict[str, str]:
    """FreeSWITCH modules the configured features need, and which feature."""
    modules = {
        "mod_commands": "the API commands the daemon sends (uuid_*, originate)",
        "mod_dptools": "answer, playback, bridge, record_session",
        "mod_sofia": "SIP phones and trunks",
        "mod_conference": "rooms: consultations, holds, supervisors, open lines",
        "mod_sndfile": "playing and recording sound files",
        "mod_local_stream": "music for waiting callers",
    }
    # The say application and say_string speak through mod_say_<language>: positions,
    # waits, numbers an IVR says, the wait told to agents.
    languages = {config.ivr.default_language}
    languages |= {
        node.language
        for flow in config.flows.values()
        for node in flow.nodes.values()
        if isinstance(node, LanguageNode)
    }
    for language in sorted(languages):
        module = re.split("[_-]", language)[0].lower()
        modules.setdefault(f"mod_say_{module}", f"numbers and times said in {language}")
    return modules


def _lamps(config: CallCenterConfig) -> bool:
    return any(q.message_lamp for q in config.queues.values())


def _records_calls(config: CallCenterConfig) -> bool:
    """Does some call get recorded: a queue's ``record``, or an agent's own ``record``?"""
    return any(q.record for q in config.queues.values()) or any(
        a.record for a in config.agents.values()
    )


def _phones(config: CallCenterConfig) -> list[tuple[str, str]]:
    """(device, whose) of every agent and supervisor."""
    phones = [(a.device, f"agent {i}") for i, a in config.agents.items()]
    phones += [(s.device, f"supervisor {i}") for i, s in config.supervisors.items()]
    return phones


def listen_ports(config: CallCenterConfig) -> list[tuple[str, int, str]]:
    """(host, port, what) of the sockets the daemon will listen on."""
    ports = [(config.api.host, config.api.port, "api.port: the control API")]
    if config.pbx.type == "asterisk" and config.pbx.agi.transport == "fastagi":
        agi = config.pbx.agi
        ports.append((agi.listen_host, agi.listen_port, "pbx.agi.listen_port: FastAGI"))
    if config.pbx.type == "freeswitch":
        esl = config.pbx.esl
        ports.append(
            (esl.outbound_listen_host, esl.outbound_listen_port, "the outbound event socket")
        )
    return [(h, p, w) for h, p, w in ports if p]


def check_ports(config: CallCenterConfig) -> list[Finding]:
    """Whether the daemon could listen where its config says (blocking: a bind each)."""
    findings = []
    for host, port, what in listen_ports(config):
        probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        # As the daemon's own servers bind (asyncio sets it): a port whose last connections
        # linger in TIME_WAIT after a stop is free for them, so it is for this check.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = (
                "in use (is the daemon running already?)"
                if exc.errno == errno.EADDRINUSE
                else exc.strerror or str(exc)
            )
            findings.append(Finding("warning", f"{what} {host}:{port}: {why}"))
        else:
            findings.append(Finding("ok", f"{what} {host}:{port} is free"))
        finally:
            probe.close()
    return findings


# -- Asterisk ----------------------------------------------------------------------------


async def check_asterisk(config: CallCenterConfig, settings: AsteriskSettings) -> list[Finding]:
    """Log in to AMI as the daemon does and check what the module docstring lists.
    AuthenticationError / PBXConnectionError when the login itself fails."""
    ami = asterisk_probe(settings, "cccheck")
    await ami.connect()
    try:
        where = f"{settings.ami_username}@{settings.ami_host}:{settings.ami_port}"
        findings = [Finding("ok", f"AMI login as {where}")]
        listed = await ami.send_action("ListCommands")
        allowed = {name.lower() for name, _ in listed.headers} - {"response", "actionid"}
        findings += _allowed_actions(config, allowed, settings.ami_username)
        findings += await _asterisk_contexts(ami, config, allowed)
        findings += await _asterisk_modules(ami, config, allowed)
        findings += await _asterisk_phones(ami, config, allowed)
    finally:
        await ami.close()
    return findings


def _allowed_actions(config: CallCenterConfig, allowed: set[str], user: str) -> list[Finding]:
    missing = [a for a in needed_actions(config) if a.lower() not in allowed]
    if not missing:
        return [Finding("ok", f"AMI user {user} may send every action the daemon sends")]
    return [
        Finding(
            "problem",
            f"AMI user {user} may not send {action}: add {ACTION_CLASSES[action]} to its "
            "write= line in manager.conf"
            + (
                f" (and load {ACTION_MODULES[action]}, which brings it)"
                if action in ACTION_MODULES
                else ""
            ),
        )
        for action in missing
    ]


async def _asterisk_contexts(
    ami: AMIConnection, config: CallCenterConfig, allowed: set[str]
) -> list[Finding]:
    if "showdialplan" not in allowed:
        return [
            Finding(
                "warning",
                "cannot see the dialplan (ShowDialPlan needs reporting in write= of "
                "manager.conf): check by hand that these contexts exist: "
                + ", ".join(needed_contexts(config)),
            )
        ]
    findings = []
    for context, why in needed_contexts(config).items():
        try:
            await ami.send_list_action("ShowDialPlan", [("Context", context)])
        except ActionFailed as exc:
            findings.append(
                Finding(
                    "problem",
                    f"dialplan context {context} ({why}) is missing: paste it from "
                    f"dialplans/asterisk/extensions.conf ({_said(exc)})",
                )
            )
        else:
            findings.append(Finding("ok", f"dialplan context {context} ({why})"))
    return findings


async def _asterisk_modules(
    ami: AMIConnection, config: CallCenterConfig, allowed: set[str]
) -> list[Finding]:
    modules = needed_asterisk_modules(config)
    if "modulecheck" not in allowed:
        return [
            Finding(
                "warning",
                "cannot ask which modules are loaded (ModuleCheck needs system in write=): "
                "check by hand: " + ", ".join(modules),
            )
        ]
    findings = []
    for module, why in modules.items():
        try:
            await ami.send_action("ModuleCheck", [("Module", module)])
        except ActionFailed:
            findings.append(Finding("problem", f"module {module} ({why}) is not loaded: load it"))
        else:
            findings.append(Finding("ok", f"module {module} ({why})"))
    return findings


async def _asterisk_phones(
    ami: AMIConnection, config: CallCenterConfig, allowed: set[str]
) -> list[Finding]:
    if "devicestatelist" not in allowed:
        return []
    _, items = await ami.send_list_action("DeviceStateList")
    states = {(i.get("Device") or "").lower(): i.get("State") or "" for i in items}
    return _phone_findings(_phones(config), states)


def _phone_findings(phones: Iterable[tuple[str, str]], states: Mapping[str, str]) -> list[Finding]:
    findings = []
    for device, whose in phones:
        state = states.get(device.lower())
        if state is None:
            findings.append(
                Finding("warning", f"{device} ({whose}): the PBX knows no such phone (yet)")
            )
        elif state == "INVALID":
            findings.append(Finding("problem", f"{device} ({whose}): no such phone on the PBX"))
        elif state in _REGISTERED_STATES:
            findings.append(Finding("ok", f"{device} ({whose}) registered ({state})"))
        else:
            findings.append(Finding("warning", f"{device} ({whose}) not registered now ({state})"))
    return findings


# -- FreeSWITCH --------------------------------------------------------------------------


async def check_freeswitch(config: CallCenterConfig, settings: FreeSwitchSettings) -> list[Finding]:
    """Authenticate on the event socket as the daemon does and check the modules and the
    phones. AuthenticationError / PBXConnectionError when the login itself fails."""
    esl = freeswitch_probe(settings)
    await esl.connect()
    try:
        findings = [Finding("ok", f"event socket at {settings.esl_host}:{settings.esl_port}")]
        for module, why in needed_freeswitch_modules(config).items():
            answer = (await esl.api(f"module_exists {module}", check=False)).strip()
            if answer == "true":
                findings.append(Finding("ok", f"module {module} ({why})"))
            else:
                findings.append(
                    Finding("problem", f"module {module} ({why}) is not loaded: load it")
                )
        states = {}
        for device, _whose in _phones(config):
            kind, _, user = device.partition("/")
            user = user.partition("@")[0]
            if kind.lower() not in ("user", "pjsip", "sip") or not user:
                continue
            contact = (await esl.api(f"sofia_contact */{user}", check=False)).strip()
            registered = contact and not contact.startswith(("error/", "-ERR"))
            states[device.lower()] = "NOT_INUSE" if registered else "UNAVAILABLE"
        phones = [(d, w) for d, w in _phones(config) if d.lower() in states]
        findings += _phone_findings(phones, states)
    finally:
        await esl.close()
    return findings


def _said(exc: PBXError) -> str:
    response = getattr(exc, "response", None)
    message = response.get("Message") if response is not None else None
    return f"the PBX said: {message}" if message else str(exc)


async def check_pbx(
    config: CallCenterConfig, settings: AsteriskSettings | FreeSwitchSettings
) -> list[Finding]:
    """Every finding for ``config``'s PBX, then its listening ports."""
    if isinstance(settings, AsteriskSettings):
        findings = await check_asterisk(config, settings)
    else:
        findings = await check_freeswitch(config, settings)
    return findings + await asyncio.to_thread(check_ports, config)
