"""The dialplan files a PBX admin pastes (dialplans/) agree with the daemon.

The demo PBX carries its own copy of these contexts, so no scenario test reads the shipped
files: these tests do. A renamed context, hook, port or pause reason on either side fails
here instead of on a real PBX.
"""

from __future__ import annotations

import array
import math
import re
import secrets
import wave
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import BaseModel

from callcenter.callback import CALLBACK_VARIABLE
from callcenter.config.models import AcdConfig, AGIConfig, AMIConfig, ESLConfig, IvrConfig
from callcenter.demopbx.channels import (
    ASYNC_FAILOVER_AFTER,
    DEFAULT_ROUTES,
    DESK_CODE,
    DESK_SCRIPT,
    FAILOVER_PROMPT,
    SUPERVISOR_CODES,
    DemoDialplan,
)
from callcenter.demopbx.freeswitch import (
    FAILOVER_AFTER,
    FAILOVER_EXTENSION,
    FAILOVER_STEPS,
    DemoFreeSwitch,
)
from callcenter.pbx.asterisk.driver import (
    ABSOLUTE_TIMEOUT,
    AGENT_HEAR_CONTEXT,
    AGENT_WAIT_CONTEXT,
    CONFERENCE_CONTEXT,
    GUARD_PARAM,
    HEARTBEAT_VARIABLE,
    SPY_STOP_LOCATION,
)
from callcenter.pbx.freeswitch.driver import FAILOVER_TASK_VARIABLE
from callcenter.pbx.interface import RINGBACK_CLASS
from callcenter.switchboard import FEATURE_ROUTES

REPO = Path(__file__).resolve().parents[1]
ASTERISK = REPO / "dialplans" / "asterisk"
FREESWITCH = REPO / "dialplans" / "freeswitch"
ROUTES = {"inbound", *FEATURE_ROUTES}
PAUSE_REASONS = set(
    yaml.safe_load((REPO / "config" / "callcenter.yaml").read_text())["pause_reasons"]
)

_SECTION = re.compile(r"^\[([^\]]+)\]")
_EXTEN = re.compile(r"^exten\s*=>\s*([^,]+),([^,]+),(\w+)\((.*)\)$")
_SAME = re.compile(r"^same\s*=>\s*([^,]+),(\w+)\((.*)\)$")
_HINT = re.compile(r"^exten\s*=>\s*([^,]+),hint,(.+)$")


def default(model: type[BaseModel], name: str) -> Any:
    """A config field's default, as a file that leaves it out gets it."""
    field = model.model_fields[name]
    return field.get_default(call_default_factory=True)


def extensions() -> dict[str, list[tuple[str, str, str, str]]]:
    """extensions.conf as ``context -> [(exten, priority, application, arguments)]``."""
    contexts: dict[str, list[tuple[str, str, str, str]]] = {}
    current: list[tuple[str, str, str, str]] = []
    exten = ""
    for raw in (ASTERISK / "extensions.conf").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        section = _SECTION.match(line)
        if section:
            current = contexts.setdefault(section.group(1), [])
            continue
        line = line.split(" ;", 1)[0].strip()
        first = _EXTEN.match(line)
        hint = _HINT.match(line)
        if hint:  # (exten, "hint", "", the device it watches)
            current.append((hint.group(1).strip(), "hint", "", hint.group(2).strip()))
            continue
        if first:
            exten, priority, app, args = first.groups()
        else:
            step = _SAME.match(line)
            assert step, f"extensions.conf: a line this test cannot read: {raw!r}"
            priority, app, args = step.groups()
        current.append((exten.strip(), priority.strip(), app, args))
    return contexts


def test_the_busy_lamp_hints_watch_the_device_states_the_readme_names() -> None:
    """The shipped hints follow the lamp names of the README's example (acd.blf)."""
    blf = {"agent": "callcenter-agent-${agent}", "queue": "callcenter-queue-${queue}"}
    hints = [(exten, device) for exten, prio, _a, device in extensions()["callcenter-blf"]]
    assert hints == [
        ("agent-1001", "Custom:" + blf["agent"].replace("${agent}", "1001")),
        ("queue-sales", "Custom:" + blf["queue"].replace("${queue}", "sales")),
    ]
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "blf: {agent: callcenter-agent-${agent}, queue: callcenter-queue-${queue}}" in readme


def agi_hooks() -> list[tuple[str, str]]:
    """``(context, agi://... URL)`` of every FastAGI hand-over in extensions.conf."""
    return [
        (context, args)
        for context, steps in extensions().items()
        for _exten, _priority, app, args in steps
        if app == "AGI" and args.startswith("agi://")
    ]


FASTAGI = "agi://127.0.0.1:4573/"
ASYNCAGI = "agi:async,"


def hooks(context: str, prefix: str = FASTAGI) -> dict[str, str]:
    """``exten -> hook`` (``agent-pause?reason=lunch``) of the AGI steps in ``context``."""
    return {
        exten: args.removeprefix(prefix)
        for exten, _p, app, args in extensions()[context]
        if app == "AGI"
    }


def freeswitch_routes() -> dict[str, str]:
    """``destination_number expression -> callcenter_route`` of callcenter.xml."""
    routes = {}
    for extension in ET.parse(FREESWITCH / "callcenter.xml").getroot().iter("extension"):
        condition = extension.find("condition")
        assert condition is not None
        for action in condition.iter("action"):
            data = action.get("data", "")
            if action.get("application") == "set" and data.startswith("callcenter_route="):
                routes[condition.get("expression", "")] = data.removeprefix("callcenter_route=")
    return routes


def test_asterisk_dialplan_has_every_context_the_daemon_sends_calls_to() -> None:
    contexts = extensions()
    needed = {
        default(IvrConfig, "transfer_context"),
        default(AcdConfig, "callback_context"),
        CONFERENCE_CONTEXT,
        SPY_STOP_LOCATION[0],
        "callcenter-inbound",
        "callcenter-inbound-async",
        "callcenter-features",
    }
    assert needed <= set(contexts), sorted(needed - set(contexts))
    spy_context, spy_exten, spy_priority = SPY_STOP_LOCATION
    assert (spy_exten, str(spy_priority)) in {(e, p) for e, p, _a, _x in contexts[spy_context]}
    callback = [e for e, p, _a, _x in contexts[default(AcdConfig, "callback_context")] if p == "1"]
    assert default(AcdConfig, "callback_exten") in callback


def test_every_fastagi_hook_reaches_the_daemons_port_with_a_route_it_knows() -> None:
    hooks = agi_hooks()
    assert len(hooks) >= 7
    for context, url in hooks:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (
            default(AGIConfig, "listen_host"),
            default(AGIConfig, "listen_port"),
        )
        assert parts.path.lstrip("/") in ROUTES, (context, url)
        reasons = parse_qs(parts.query).get("reason", [])
        assert set(reasons) <= PAUSE_REASONS, f"{url}: not in config pause_reasons"
    callback_hooks = [
        url for context, url in hooks if context == default(AcdConfig, "callback_context")
    ]
    assert callback_hooks == [f"agi://127.0.0.1:4573/inbound?callback=${{{CALLBACK_VARIABLE}}}"]


_GUARD = re.compile(rf"[?&]{GUARD_PARAM}=(\d+)$")
#: The AsyncAGI contexts callers reach (the feature codes' callers are agents, who hang up).
ASYNC_CALLER_CONTEXTS = ("callcenter-inbound-async", "callcenter-callback-async")


def test_the_asyncagi_contexts_mirror_the_fastagi_ones() -> None:
    fast = hooks("callcenter-features")
    assert hooks("callcenter-features-async", ASYNCAGI) == fast
    callback = hooks(default(AcdConfig, "callback_context"))
    async_callback = hooks("callcenter-callback-async", ASYNCAGI)
    assert {e: _GUARD.sub("", h) for e, h in async_callback.items()} == callback
    inbound = hooks("callcenter-inbound-async", ASYNCAGI)
    assert {_GUARD.sub("", h) for h in inbound.values()} == {"inbound"}
    for exten, route in hooks("callcenter-features-async", ASYNCAGI).items():
        assert route.split("?")[0] in ROUTES, exten


def test_asyncagi_callers_fail_over_once_the_daemons_heartbeat_is_stale() -> None:
    """Nothing tells Asterisk that nobody reads AsyncAGI: the context checks the global the
    daemon refreshes, with a window no allowed heartbeat interval can miss."""
    steps = extensions()["callcenter-inbound-async"]
    apps = [app for _e, _p, app, _a in steps]
    check = next(a for _e, _p, app, a in steps if app == "GotoIf" and HEARTBEAT_VARIABLE in a)
    assert apps.index("GotoIf") < apps.index("AGI"), "checked before the hand-over"
    window = re.fullmatch(
        rf"\$\[\$\{{EPOCH\}} - 0\$\{{GLOBAL\({HEARTBEAT_VARIABLE}\)\}} > (\d+)\]\?(\w+)", check
    )
    assert window, check
    longest = next(
        m.le for m in AMIConfig.model_fields["heartbeat_interval"].metadata if hasattr(m, "le")
    )
    assert int(window.group(1)) >= 2 * longest
    labels = [p for _e, p, _a, _x in steps]
    assert f"n({window.group(2)})" in labels, "the failover label exists"
    assert default(AMIConfig, "heartbeat_interval") > 0, "on by default"


def test_asyncagi_callers_no_daemon_takes_in_time_go_to_the_failover() -> None:
    """A daemon that crashed a moment ago leaves a fresh heartbeat behind. The caller
    contexts set an absolute timeout right before the hand-over, say so in the AGI arguments
    (the driver clears only a guard it is told about) and send ``T`` to the failover; the
    demo Asterisk runs the same steps."""
    contexts = extensions()
    demo = DemoDialplan.default("agi://127.0.0.1:4573", agi_mode="async").contexts
    demo_steps = {
        "callcenter-inbound-async": demo["from-callers"],
        "callcenter-callback-async": demo[default(AcdConfig, "callback_context")],
    }
    for context in ASYNC_CALLER_CONTEXTS:
        steps = contexts[context]
        at = next(i for i, step in enumerate(steps) if step[2] == "AGI")
        guard_app, guard_args = steps[at - 1][2:]
        name, _, seconds = guard_args.partition("=")
        assert (guard_app, name) == ("Set", ABSOLUTE_TIMEOUT), f"{context}: set right before"
        handed = _GUARD.search(steps[at][3])
        assert handed is not None and handed.group(1) == seconds, f"{context}: {steps[at][3]}"
        assert float(seconds) == ASYNC_FAILOVER_AFTER, "the demo waits as long"
        timeout_steps = [(app, args) for exten, _p, app, args in steps if exten == "T"]
        assert timeout_steps == [("Playback", FAILOVER_PROMPT), ("Hangup", "")], context
        ours = demo_steps[context]
        route = ours["s"] if "s" in ours else ours["800"]
        assert [(a.app, a.data) for a in route][:3] == [
            ("Answer", ""),
            ("Set", guard_args),
            ("AGI", f"agi:async,{steps[at][3].removeprefix(ASYNCAGI)}"),
        ], context
        assert [(a.app, a.data) for a in ours["T"]] == timeout_steps
    unguarded = [a for _e, _p, app, a in contexts["callcenter-features-async"] if app == "Set"]
    assert not unguarded, "agents dialling a feature code hang up themselves"


AGENT_DIGITS = "<agent>"


def _agent_code(exten: str, hook: str) -> tuple[str, str]:
    """An Asterisk pattern ``_*81X.`` (or ``_*28.``) handing over ``${EXTEN:3}`` as
    ``*81<agent>``."""
    if exten.startswith("_") and exten.endswith("."):
        code = exten[1:-2] if exten.endswith("X.") else exten[1:-1]
        return f"{code}{AGENT_DIGITS}", hook.replace(f"${{EXTEN:{len(code)}}}", AGENT_DIGITS)
    return exten, hook


def test_both_pbxs_give_each_feature_code_the_same_route() -> None:
    asterisk = dict(_agent_code(e, h) for e, h in hooks("callcenter-features").items())
    freeswitch = {
        expression.strip("^$")
        .replace("\\", "")
        .replace("(d+)", AGENT_DIGITS)
        .replace("([0-9*]+)", AGENT_DIGITS): route.replace("$1", AGENT_DIGITS)
        for expression, route in freeswitch_routes().items()
        if route != "inbound"
    }
    assert asterisk == freeswitch
    assert {route.split("?")[0] for route in asterisk.values()} == set(FEATURE_ROUTES)


def test_freeswitch_hands_calls_over_with_known_routes_and_the_daemons_socket_port() -> None:
    for route in freeswitch_routes().values():
        assert route.split("?")[0] in ROUTES
        assert set(parse_qs(route.partition("?")[2]).get("reason", [])) <= PAUSE_REASONS
    sockets = [
        action.get("data", "")
        for action in ET.parse(FREESWITCH / "callcenter.xml").getroot().iter("action")
        if action.get("application") == "socket"
    ]
    host, port = (
        default(ESLConfig, "outbound_listen_host"),
        default(ESLConfig, "outbound_listen_port"),
    )
    assert sockets == [f"{host}:{port} async full"]


def test_freeswitch_callers_no_daemon_takes_go_to_the_failover_extension() -> None:
    """Every park schedules the transfer to the failover and keeps the task's id where the
    driver looks for it; a socket that cannot connect falls through to the same place. The
    demo FreeSWITCH, which the scenario tests run against, does what this file says."""
    root = ET.parse(FREESWITCH / "callcenter.xml").getroot()
    failover = [e for e in root.iter("extension") if e.get("name") == FAILOVER_EXTENSION]
    assert len(failover) == 1
    condition = failover[0].find("condition")
    assert condition is not None
    assert re.fullmatch(condition.get("expression", ""), FAILOVER_EXTENSION)
    steps = [(a.get("application"), a.get("data", "")) for a in condition.iter("action")]
    assert steps == list(FAILOVER_STEPS), "the demo plays what the shipped file plays"

    schedule = f"sched_transfer +{FAILOVER_AFTER:g} {FAILOVER_EXTENSION} XML ${{context}}"
    keep = f"{FAILOVER_TASK_VARIABLE}=${{last_sched_id}}"
    parks = sockets = 0
    for extension in root.iter("extension"):
        actions = [
            f"{a.get('application')} {a.get('data', '')}".strip() for a in extension.iter("action")
        ]
        if "park" in actions:
            parks += 1
            at = actions.index("park")
            assert actions[at - 2 : at] == [schedule, f"set {keep}"], extension.get("name")
        for at, action in enumerate(actions):
            if action.startswith("socket "):
                sockets += 1
                assert actions[at + 1] == f"transfer {FAILOVER_EXTENSION} XML ${{context}}"
    assert (parks, sockets) == (len(freeswitch_routes()) - 1, 1), "all but the socket one park"
    demo_park = DemoFreeSwitch().dialplan["800"]
    assert [f"{app} {arg}".strip() for app, arg in demo_park][-3:] == [
        schedule,
        f"set {keep}",
        "park",
    ]


def test_freeswitch_callback_context_accepts_the_token_the_daemon_sends() -> None:
    root = ET.parse(FREESWITCH / "callcenter-callback.xml").getroot()
    context = root.find("context")
    assert context is not None and context.get("name") == default(AcdConfig, "callback_context")
    token_rule = next(
        c for c in context.iter("condition") if c.get("field") == f"${{{CALLBACK_VARIABLE}}}"
    )
    assert re.fullmatch(token_rule.get("expression", ""), secrets.token_hex(12))
    routes = [a.get("data", "") for a in context.iter("action") if a.get("application") == "set"]
    assert f"callcenter_route=inbound?callback=${{{CALLBACK_VARIABLE}}}" in routes


def test_ivr_transfers_land_in_a_context_taking_the_same_numbers_on_both_pbxs() -> None:
    context = default(IvrConfig, "transfer_context")
    asterisk = [exten for exten, p, _a, _x in extensions()[context] if p == "1"]
    assert asterisk == ["_21XX"]
    root = ET.parse(FREESWITCH / "callcenter-transfer.xml").getroot()
    contexts = {c.get("name"): c for c in root.iter("context")}
    rule = contexts[context].find("extension/condition")
    assert rule is not None and rule.get("field") == "destination_number"
    pattern = rule.get("expression", "")
    for number in ("2100", "2199"):
        assert re.search(pattern, number), number
    for number in ("21", "2200", "21000", "1001"):
        assert not re.search(pattern, number), number


def test_event_socket_is_loopback_only_with_an_acl_and_not_the_default_password() -> None:
    params = {
        p.get("name"): p.get("value")
        for p in ET.parse(FREESWITCH / "event_socket.conf.xml").getroot().iter("param")
    }
    assert params["listen-ip"] == "127.0.0.1"
    assert params["listen-port"] == str(default(ESLConfig, "port"))
    assert params["password"] not in ("ClueCon", "")
    acl = ET.parse(FREESWITCH / "acl.conf.xml.snippet").getroot()
    assert acl.get("name") == params["apply-inbound-acl"] and acl.get("default") == "deny"
    assert [n.get("cidr") for n in acl.iter("node") if n.get("type") == "allow"] == ["127.0.0.1/32"]


def test_manager_user_is_loopback_only_with_the_classes_the_daemon_uses() -> None:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in (ASTERISK / "manager.conf").read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        section = _SECTION.match(line)
        if section:
            current = sections.setdefault(section.group(1), {})
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    assert sections["general"]["bindaddr"] == "127.0.0.1"
    assert sections["general"]["port"] == str(default(AMIConfig, "port"))
    user = sections[default(AMIConfig, "username")]
    assert {"call", "agi", "dtmf"} <= set(user["read"].split(",")), "dtmf: supervisors' keys"
    assert {"system", "call", "agi", "originate"} <= set(user["write"].split(","))
    assert user["permit"].startswith("127.0.0.1/")


def test_the_demo_pbx_dials_the_shipped_feature_codes_and_contexts() -> None:
    shipped = {exten: hook.split("?")[0] for exten, hook in hooks("callcenter-features").items()}
    demo = {code: route for code, route in DEFAULT_ROUTES.items() if code.startswith("*")}
    assert demo.items() <= shipped.items()
    supervisors = {
        code: hook
        for code, hook in hooks("callcenter-features").items()
        if hook.startswith("supervisor-")
    }
    assert supervisors == {
        **{
            f"_{code}X.": f"{script}?agent=${{EXTEN:{len(code)}}}"
            for code, script in SUPERVISOR_CODES.items()
        },
        f"_{DESK_CODE}X.": f"{DESK_SCRIPT}?supervisor=${{EXTEN:{len(DESK_CODE)}}}",
    }, "the demo's supervisor codes hand over what the shipped ones do"
    demo_contexts = set(DemoDialplan.default("agi://127.0.0.1:4573").contexts)
    shared = {"callcenter-hangup", CONFERENCE_CONTEXT, default(AcdConfig, "callback_context")}
    assert shared <= demo_contexts & set(extensions())


def test_the_agent_hears_the_callers_wait_through_the_same_subroutine_on_both_dialplans() -> None:
    shipped = [(app, args) for exten, _p, app, args in extensions()[AGENT_HEAR_CONTEXT]]
    demo = DemoDialplan.default("agi://127.0.0.1:4573").contexts[AGENT_HEAR_CONTEXT]["s"]
    assert [(step.app, step.data) for step in demo] == [
        ("Playback", "${ARG1}"),
        ("SayNumber", "${ARG2}"),
        ("Playback", "${ARG3}"),
        ("Return", ""),
    ]
    assert shipped == [(step.app, step.data) for step in demo]
    assert {exten for exten, _p, _a, _x in extensions()[AGENT_HEAR_CONTEXT]} == {"s"}


def test_the_agents_pause_runs_the_same_subroutine_on_both_dialplans() -> None:
    shipped = [(app, args) for exten, _p, app, args in extensions()[AGENT_WAIT_CONTEXT]]
    demo = DemoDialplan.default("agi://127.0.0.1:4573").contexts[AGENT_WAIT_CONTEXT]["s"]
    assert [step.app for step in demo] == ["Wait", "ExecIf", "ExecIf", "ExecIf", "Return"]
    assert shipped == [(step.app, step.data) for step in demo]
    assert {exten for exten, _p, _a, _x in extensions()[AGENT_WAIT_CONTEXT]} == {"s"}


def test_the_ringback_class_agents_hear_while_their_own_call_rings_is_a_ring_tone() -> None:
    """musiconhold.conf defines RINGBACK_CLASS over the shipped folder, whose one file is
    North American ringback (440+480 Hz for 2 s, 4 s of silence) as Asterisk reads it."""
    text = (ASTERISK / "musiconhold.conf").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != ";"]
    assert lines == [f"[{RINGBACK_CLASS}]", "mode=files", f"directory=moh/{RINGBACK_CLASS}"]
    (sound,) = (ASTERISK / "moh" / RINGBACK_CLASS).iterdir()
    with wave.open(str(sound)) as ring:
        shape = (ring.getframerate(), ring.getnchannels(), ring.getsampwidth())
        samples = array.array("h", ring.readframes(ring.getnframes()))
    assert shape == (8000, 1, 2) and len(samples) == 6 * 8000
    on, off = samples[: 2 * 8000], samples[2 * 8000 :]
    assert max(abs(v) for v in on) > 4000 and max(abs(v) for v in off) == 0
    power = {hz: _power(on[:4000], hz) for hz in (350, 440, 480, 620, 1000)}
    assert min(power[440], power[480]) > 100 * max(power[350], power[620], power[1000])


def _power(samples: Sequence[int], hz: float, rate: int = 8000) -> float:
    """How much of ``hz`` there is in ``samples`` (Goertzel)."""
    coefficient = 2 * math.cos(2 * math.pi * hz / rate)
    before = earlier = 0.0
    for value in samples:
        before, earlier = value + coefficient * before - earlier, before
    return before * before + earlier * earlier - coefficient * before * earlier


AMD_CONTEXT = "callcenter-campaign-amd"


def test_the_answering_machine_contexts_detect_before_the_hand_over_and_pass_the_verdict() -> None:
    """A campaign's ``context: callcenter-campaign-amd``: detection runs before the call
    reaches the daemon, whose hand-over is the callback's plus the verdict, on both
    transports and both PBXs; the demo PBXs run the same steps."""
    contexts = extensions()
    callback = hooks(default(AcdConfig, "callback_context"))["s"]
    for name, prefix in ((AMD_CONTEXT, FASTAGI), (f"{AMD_CONTEXT}-async", ASYNCAGI)):
        apps = [app for exten, _p, app, _a in contexts[name] if exten == "s"]
        assert apps.index("AMD") < apps.index("AGI"), name
        hook = hooks(name, prefix)["s"]
        assert _GUARD.sub("", hook) == f"{callback}&amd=${{AMDSTATUS}}", name
    async_steps = contexts[f"{AMD_CONTEXT}-async"]
    at = next(i for i, step in enumerate(async_steps) if step[2] == "AGI")
    assert async_steps[at - 1][2:] == ("Set", f"{ABSOLUTE_TIMEOUT}=20"), "guarded"
    demo = DemoDialplan.default("agi://127.0.0.1:4573").contexts[AMD_CONTEXT]["s"]
    assert [a.app for a in demo] == ["Answer", "AMD", "AGI", "Hangup"]
    assert demo[2].data == f"agi://127.0.0.1:4573/{hooks(AMD_CONTEXT)['s']}"

    root = ET.parse(FREESWITCH / "callcenter-callback.xml").getroot()
    context = next(c for c in root.iter("context") if c.get("name") == AMD_CONTEXT)
    actions = [(a.get("application"), a.get("data", "")) for a in context.iter("action")]
    route = f"callcenter_route=inbound?callback=${{{CALLBACK_VARIABLE}}}&amd=${{amd_result}}"
    assert actions.index(("amd", "")) < actions.index(("set", route))
    assert actions[-1] == ("park", "")
    demo_fs = DemoFreeSwitch().contexts[AMD_CONTEXT]["s"]
    assert demo_fs[:2] == [("amd", ""), ("set", route)]
