"""``callcenter demo``: the demo PBX and the daemon together, a handful of scripted calls.

It shows what a call centre does, live in the terminal, using the example config
(``config/callcenter.yaml``): a caller choosing sales, a caller whose first agent does not pick
up, a transfer to the supervisor after the agent consulted them (the caller on hold), an agent
on a break while a caller gives up in the queue
(the supervisor listens to that long call, then whispers to the agent), a caller who hangs
up during the greeting, and an agent logging in with the ``*71`` feature code (the
consultation is keyed on the agent's phone when the config has ``acd.agent_keys``). Then it
prints the CDRs and where they are stored.

With ``stay`` (``--stay``) the demo goes on afterwards until Ctrl-C (or for that many
seconds): every agent answers, a caller comes every few seconds and talks a while, and the
web pages can be opened: the wallboard and the agents' and supervisors' desktops (agents and
supervisors without a PIN get a demo one, printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import yaml

from callcenter.cli import format_cdr_table
from callcenter.config import load_config
from callcenter.config.models import CallCenterConfig
from callcenter.daemon import resolve
from callcenter.demopbx.freeswitch import SOFIA_DOMAIN
from callcenter.demopbx.sip import SIPFront
from callcenter.errors import CallHungUp, ConfigError, EngineError, PBXError
from callcenter.events import (
    AgentAlert,
    AgentConnected,
    AgentDialAnswered,
    AgentDialFailed,
    AgentDialing,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentPhoneReachable,
    AgentRingFailed,
    AgentRinging,
    AgentUnpaused,
    CallEnded,
    CallMonitored,
    CallStarted,
    CallTransferred,
    ConsultAnswered,
    ConsultEnded,
    ConsultStarted,
    EngineEvent,
    IvrStep,
    MonitorEnded,
    QueueAbandoned,
    QueueJoined,
    RecordingStarted,
    SurveyEnded,
    TransferFailed,
    VoicemailDone,
    VoicemailLeft,
    VoicemailNotReached,
    VoicemailTaken,
)
from callcenter.live.api import HTTPError
from callcenter.live.notices import MAX_MINUTES
from callcenter.log import configure_logging
from callcenter.records.lock import holder
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import DEMO_SECRET, Center, Transport, running_center, until

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "callcenter.yaml"


class LiveView:
    """Prints engine events as one readable line each."""

    def __init__(self, out: TextIO, started: float) -> None:
        self.out = out
        self.started = started

    def __call__(self, event: EngineEvent) -> None:
        line = self.describe(event)
        if line:
            print(f"{event.mono - self.started:6.2f}s  {line}", file=self.out, flush=True)

    @staticmethod
    def describe(event: EngineEvent) -> str | None:
        match event:
            case CallStarted():
                return f"call {event.call_id}: {event.caller_num} dialed {event.dialed}"
            case IvrStep(node=node, digits=digits):
                pressed = f" (pressed {digits})" if digits else ""
                return f"call {event.call_id}: IVR {event.flow}:{node}{pressed}"
            case QueueJoined():
                return f"call {event.call_id}: waits in queue {event.queue} at {event.position}"
            case AgentRinging():
                return f"call {event.call_id}: ringing agent {event.agent} ({event.device})"
            case AgentRingFailed():
                return f"call {event.call_id}: agent {event.agent} did not answer: {event.status}"
            case AgentConnected():
                return (
                    f"call {event.call_id}: talking to agent {event.agent}"
                    f" after {event.wait_seconds:.1f}s in queue"
                )
            case ConsultStarted():
                return (
                    f"call {event.call_id}: agent {event.agent} puts the caller on hold (music)"
                    f" and calls {event.to}"
                )
            case ConsultAnswered():
                return (
                    f"call {event.call_id}: {event.to} answered agent {event.agent}; the caller"
                    " does not hear them"
                )
            case ConsultEnded():
                return (
                    f"call {event.call_id}: consultation with {event.to} {event.outcome}, the"
                    f" caller held {event.hold_seconds:.1f}s"
                )
            case CallTransferred():
                return f"call {event.call_id}: {event.by} transferred the caller to {event.to}"
            case TransferFailed():
                back = f"back into queue {event.back_to}" if event.back_to else "the call ends"
                return f"call {event.call_id}: {event.to} did not answer ({event.status}); {back}"
            case RecordingStarted():
                return f"call {event.call_id}: recorded into {event.path}"
            case CallMonitored():
                return (
                    f"call {event.call_id}: supervisor {event.supervisor} on agent "
                    f"{event.agent}'s call: {event.mode}"
                )
            case MonitorEnded():
                return (
                    f"call {event.call_id}: supervisor {event.supervisor} left agent "
                    f"{event.agent}'s call ({event.why})"
                )
            case QueueAbandoned():
                return f"call {event.call_id}: caller gave up after {event.wait_seconds:.1f}s"
            case SurveyEnded(score=None):
                return f"call {event.call_id}: survey about agent {event.agent}, no score"
            case SurveyEnded():
                return f"call {event.call_id}: caller rated agent {event.agent} {event.score}"
            case CallEnded():
                return f"call {event.call_id}: ended, hung up by {event.hung_up_by}"
            case AgentLoggedIn():
                return f"agent {event.agent} logged in ({event.via})"
            case AgentLoggedOut():
                return f"agent {event.agent} logged out ({event.via})"
            case AgentPaused():
                return f"agent {event.agent} paused ({event.reason})"
            case AgentUnpaused():
                return f"agent {event.agent} back from pause"
            case AgentPhoneReachable(reachable=False):
                return (
                    f"agent {event.agent}: phone {event.device} not registered, not offered calls"
                )
            case AgentDialing():
                return (
                    f"agent {event.agent} dials {event.number} (own call, through queue "
                    f"{event.queue})"
                )
            case AgentDialAnswered():
                return f"call {event.call_id}: {event.number} answered agent {event.agent}'s call"
            case AgentDialFailed():
                return f"agent {event.agent}'s call to {event.number} failed: {event.reason}"
            case AgentPhoneReachable():
                return f"agent {event.agent}: phone {event.device} registered again"
            case VoicemailLeft(queue=queue) if queue:
                return (
                    f"call {event.call_id}: left a {event.seconds:.1f}s message for queue "
                    f"{queue}'s agents to call back"
                )
            case VoicemailLeft():
                return f"call {event.call_id}: left a message in box {event.box}"
            case VoicemailTaken():
                return f"agent {event.agent} takes the message of call {event.call_id}"
            case VoicemailNotReached():
                return (
                    f"agent {event.agent}: calling back the message of call {event.call_id} "
                    f"got nobody ({event.reason}, try {event.tries})"
                )
            case VoicemailDone():
                return f"agent {event.agent}: message of call {event.call_id} {event.outcome}"
            case AgentAlert(raised=True):
                return (
                    f"agent {event.agent}: {event.figure.replace('_', ' ')} for over "
                    f"{event.threshold:g}s (alert)"
                )
        return None


async def _script(center: Center, speed: float, out: TextIO) -> None:
    daemon, pbx = center.daemon, center.pbx
    agents = daemon.config.agents
    devices = {agent_id: a.device for agent_id, a in agents.items()}
    ids = list(devices)
    phones = {}
    for n, agent_id in enumerate(ids):
        # The first agent answers promptly, the second a little later, any third never.
        answer_after = None if n >= 2 else 0.6 * speed * (n + 1)
        phones[agent_id] = center.add_phone(devices[agent_id], answer_after=answer_after)
    for sup in daemon.config.supervisors.values():
        center.add_phone(sup.device, answer_after=0.5 * speed)

    async def talk_then_hang_up(
        choice: str, talk: float, number: str, bridged: asyncio.Future[str] | None = None
    ) -> None:
        """A caller picks ``choice``, talks ``talk`` time units, hangs up; ``bridged`` gets
        their call's id once they hear an agent."""
        caller = await pbx.call("800", caller_num=number, caller_name="Demo Caller")
        await caller.wait_for_prompt("welcome-menu", timeout=30)
        await caller.press(choice)
        await caller.wait_bridged(timeout=60)
        if bridged is not None:
            bridged.set_result(caller.uniqueid)
        await asyncio.sleep(talk * speed)
        await caller.hangup()

    async def transfer_to_supervisor(number: str) -> None:
        """The agent consults the supervisor (the caller holds), then hands the caller over:
        with ``acd.agent_keys`` from their phone (``*2#``, then they hang up), else as the
        CLI would."""
        caller = await pbx.call("800", caller_num=number, caller_name="Transfer Me")
        await caller.wait_for_prompt("welcome-menu", timeout=30)
        await caller.press("2")
        device = await caller.wait_bridged(timeout=60)
        await asyncio.sleep(1.0 * speed)
        agent_id = next(a for a, d in devices.items() if d == device)
        board = daemon.switchboard
        answered = asyncio.Event()

        def on_event(event: EngineEvent) -> None:
            if isinstance(event, ConsultAnswered) and event.call_id == caller.uniqueid:
                answered.set()

        daemon.bus.subscribe(on_event)
        keys = daemon.config.acd.agent_keys
        if keys is not None:
            print(f"-- agent {agent_id} keys {keys.consult}# on the phone", file=out, flush=True)
            await phones[agent_id].press(f"{keys.consult}#")
        else:
            await board.consult(agent_id, "supervisor")
        async with asyncio.timeout(60):
            await answered.wait()
        await asyncio.sleep(1.0 * speed)
        if keys is not None:
            print(f"-- agent {agent_id} hangs up: the supervisor has the caller", file=out)
            await phones[agent_id].hangup()
        else:
            await board.consult_complete(agent_id)
        await asyncio.sleep(1.0 * speed)
        await caller.hangup()
        # On a busy machine the daemon sees this hang-up late: until it has, the call is
        # still among its active ones, agent and all, and the next act could pick it.
        await until(lambda: caller.uniqueid not in board.active, timeout=30)

    async def give_up(number: str, others_busy: asyncio.Future[str]) -> None:
        await asyncio.shield(others_busy)
        caller = await pbx.call("800", caller_num=number, caller_name="Impatient")
        await caller.wait_for_prompt("welcome-menu", timeout=30)
        await caller.press("1")
        await caller.wait_moh(timeout=30)
        await asyncio.sleep(1.5 * speed)
        await caller.hangup()
        await center.cdr(caller.uniqueid, timeout=30)

    async def leave_a_message(number: str, others_busy: asyncio.Future[str]) -> None:
        """A sales caller tired of waiting presses the queue's voicemail key and leaves a
        message (when the config has one: queues.sales.exit_keys and mailbox)."""
        sales = daemon.config.queues.get("sales")
        key = next(
            (k for k, e in (sales.exit_keys if sales else {}).items() if e.to == "voicemail"),
            None,
        )
        if key is None:
            return
        await asyncio.shield(others_busy)
        await asyncio.sleep(0.5 * speed)
        caller = await pbx.call("800", caller_num=number, caller_name="Left A Message")
        await caller.wait_for_prompt("welcome-menu", timeout=30)
        await caller.press("1")
        await caller.wait_moh(timeout=30)
        await asyncio.sleep(0.5 * speed)
        await caller.press(key)
        await caller.wait_for_prompt("beep", timeout=30)
        # A message of a second at least, whatever --speed: one an agent can hear.
        caller.speak(max(1.0, 1.5 * speed))
        await asyncio.sleep(max(1.2, 1.8 * speed))
        with contextlib.suppress(CallHungUp):
            await caller.press("#")
        await caller.wait_ended(timeout=30)

    async def agent_calls_the_message_back() -> None:
        """An agent of the queue takes the message left for it, hears it and calls back (as
        from their desktop): one free now, else the first once free."""
        acd = daemon.config.acd
        if acd.dial_out is None:
            return
        waiting = []
        for _ in range(100):
            waiting = [m for m in await daemon.voicemails.waiting() if m.status == "waiting"]
            if waiting:
                break
            await asyncio.sleep(0.05)
        if not waiting:
            return
        message = waiting[0]
        router = daemon.router
        members = [a for a in ids if message.queue in router.agent_view(a)["queues"]]
        if not members:
            return
        agent_id = next((a for a in members if router.agents[a].state == "available"), members[0])
        center.add_phone(
            acd.dial_out.replace("${number}", message.number),
            answer_after=0.8 * speed,
            hangup_after=2.0 * speed,
        )
        agent = router.agents[agent_id]
        await until(lambda: agent.state == "available", timeout=60)  # their wrap-up over
        print(f"-- agent {agent_id} takes the message on the desktop", file=out, flush=True)
        with contextlib.suppress(HTTPError):
            await daemon.api.voicemail_step(agent_id, message.call_id, "take", via="demo")
            await asyncio.sleep(1.0 * speed)  # listening
            await daemon.api.voicemail_step(agent_id, message.call_id, "call-back", via="demo")
            # Until the talk is over (not their wrap-up: the script goes on meanwhile).
            await until(lambda: agent.state != "available", timeout=60)
            await until(lambda: agent.state not in ("ringing", "on_call"), timeout=60)

    async def supervisor_listens_in(bridged: asyncio.Future[str]) -> None:
        """The supervisor listens to the long call, then coaches its agent, then leaves."""
        if not daemon.config.supervisors:
            return
        call_id = await asyncio.shield(bridged)
        supervisor = next(iter(daemon.config.supervisors))
        board = daemon.switchboard
        # The caller hears the agent a moment before the daemon has seen the answer (a
        # busy machine): wait for it to know whose call this is.
        await until(
            lambda: (a := board.active.get(call_id)) is not None and bool(a.agent_channel),
            timeout=30,
        )
        agent_id = board.active[call_id].agent
        if agent_id is None:
            return
        await board.monitoring.monitor(supervisor, agent_id, "listen")
        # A supervisor coaches what they have heard: on a busy machine their phone answers
        # late, and a whisper asked for while it rings would be all they ever did.
        with contextlib.suppress(TimeoutError):
            await until(
                lambda: (
                    (m := board.monitoring.current(supervisor)) is None or m.answered is not None
                ),
                timeout=30,
            )
        await asyncio.sleep(2.0 * speed)
        with contextlib.suppress(EngineError, PBXError):
            await board.monitoring.monitor(supervisor, agent_id, "whisper")
            await asyncio.sleep(1.5 * speed)
            await board.monitoring.stop(supervisor)

    async def caller_rates_the_call(number: str) -> None:
        """The agent ends the call; the caller stays on the line for the support queue's
        survey and gives 5."""
        support = daemon.config.queues.get("support")
        survey = support.survey if support is not None else None
        if survey is None or survey.flow not in daemon.config.flows:
            return
        flow = daemon.config.flows[survey.flow]
        asked = getattr(flow.nodes[flow.start], "prompt", None)
        caller = await pbx.call("800", caller_num=number, caller_name="Happy Caller")
        await caller.wait_for_prompt("welcome-menu", timeout=30)
        await caller.press("2")
        device = await caller.wait_bridged(timeout=60)
        await asyncio.sleep(1.5 * speed)
        agent_id = next(a for a, d in devices.items() if d == device)
        print(f"-- agent {agent_id} hangs up; the caller stays for the survey", file=out)
        await phones[agent_id].hangup()
        if isinstance(asked, str):
            await caller.wait_for_prompt(asked, timeout=30)
            await caller.press("5")
        await caller.wait_ended(timeout=60)

    async def agent_on_a_line(agent_id: str, number: str) -> None:
        """The agent dials ``*70`` and stays on the line; joined to sales for the while,
        with the others on a break, a caller to sales comes down the line without a ring;
        the agent ends the call with the line's hang-up key, then hangs up (logged
        out)."""
        line = await pbx.call("*70", caller_num=agent_id, caller_name=agents[agent_id].name)
        pin = agents[agent_id].pin
        if pin:
            await line.wait_for_prompt("agent-pass", timeout=30)
            await line.press(pin + "#")
        await line.wait_for_prompt("agent-loginok", timeout=30)
        for _ in range(1500):
            if agent_id in daemon.switchboard.lines and f"line-{agent_id}" in pbx.conferences:
                break
            await asyncio.sleep(0.02)
        print(f"-- agent {agent_id} stays on an open line (*70)", file=out, flush=True)
        board = daemon.switchboard
        joined = "sales" in daemon.config.queues and board.roster.join_queue(
            agent_id, "sales", via="demo"
        )
        others = [a for a in ids if a != agent_id]
        reason = daemon.config.pause_reasons[0] if daemon.config.pause_reasons else "break"
        for other in others:
            with contextlib.suppress(EngineError):
                daemon.router.pause(other, reason, via="demo")
        caller = await pbx.call("800", caller_num=number, caller_name="Line Caller")
        await caller.wait_for_prompt("welcome-menu", timeout=30)
        await caller.press("1")
        await caller.wait_bridged(timeout=60)
        await asyncio.sleep(1.5 * speed)
        key = daemon.config.acd.line_hangup_key
        print(f"-- agent {agent_id} presses {key} on the line: the call ends", file=out)
        await line.press(key)
        await caller.wait_ended(timeout=60)
        for other in others:
            with contextlib.suppress(EngineError):
                daemon.router.unpause(other, via="demo")
        if joined:
            board.roster.leave_queue(agent_id, "sales", via="demo")
        await asyncio.sleep(0.5 * speed)
        await line.hangup()
        await line.wait_ended(timeout=30)

    async def agent_dials_out(agent_id: str, number: str) -> None:
        """The agent dials ``*77`` and a customer's number from their phone; the customer
        answers, they talk, and the customer hangs up (when the config has dial_out)."""
        acd = daemon.config.acd
        if acd.dial_out is None:
            return
        center.add_phone(
            acd.dial_out.replace("${number}", number),
            answer_after=0.8 * speed,
            hangup_after=2.0 * speed,
        )
        print(f"-- agent {agent_id} dials *77{number} on the phone", file=out, flush=True)
        leg = await pbx.call(f"*77{number}", caller_num=agent_id, caller_name=agents[agent_id].name)
        pin = agents[agent_id].pin
        if pin:
            await leg.wait_for_prompt("agent-pass", timeout=30)
            await leg.press(pin + "#")
        await leg.wait_ended(timeout=60)

    async def hang_up_in_greeting(number: str) -> None:
        caller = await pbx.call("800", caller_num=number, caller_name="Wrong Number")
        await caller.wait_for_prompt("welcome-menu", timeout=30)
        await caller.hangup()

    print("-- scripted calls start", file=out, flush=True)
    await talk_then_hang_up("1", 2.0, "5550101")
    await hang_up_in_greeting("5550102")
    await transfer_to_supervisor("5550103")
    # The second agent goes on a break and the first takes a long call, so the impatient
    # caller (6.3 time units from joining to hanging up: prompts, music) gives up before
    # anyone is free, at any --speed: the call outlasts it, and wrap-up only adds to that.
    on_break = ids[1] if len(ids) >= 2 else None
    if on_break is not None:
        reason = daemon.config.pause_reasons[0] if daemon.config.pause_reasons else "break"
        with contextlib.suppress(EngineError):
            daemon.router.pause(on_break, reason, via="demo")
    first_busy: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    await asyncio.gather(
        talk_then_hang_up("2", 7.0, "5550104", first_busy),
        give_up("5550105", first_busy),
        leave_a_message("5550109", first_busy),
        supervisor_listens_in(first_busy),
    )
    if on_break is not None:
        with contextlib.suppress(EngineError):
            daemon.router.unpause(on_break, via="demo")
    await caller_rates_the_call("5550106")
    if len(ids) >= 3:
        third = ids[2]
        agent_phone = await pbx.call("*71", caller_num=third, caller_name=agents[third].name)
        pin = agents[third].pin
        if pin:
            await agent_phone.wait_for_prompt("agent-pass", timeout=30)
            await agent_phone.press(pin + "#")
        await agent_phone.wait_ended(timeout=30)
        with contextlib.suppress(EngineError):
            daemon.router.logout(third, via="demo")
        await agent_on_a_line(third, "5550107")
    await agent_dials_out(ids[0], "5550108")
    await agent_calls_the_message_back()
    await asyncio.sleep(0.2)


DEMO_PIN = "1234"
"""The PIN the demo gives agents and supervisors without one while it stays."""


async def _sip_front(center: Center, port: int) -> SIPFront:
    """The demo PBX's SIP side on ``port``: a SIP caller becomes one of its callers."""

    async def dial(exten: str, number: str, name: str) -> Any:
        return await center.pbx.call(exten, caller_num=number, caller_name=name)

    front = SIPFront(dial, port=port)
    await front.start()
    return front


async def _stay(center: Center, speed: float, seconds: float | None, out: TextIO) -> None:
    """After the script: every agent at work and answering, a caller every few seconds
    (sales or support, talking a while; now and then a sales caller leaves a message
    instead), until SIGINT/SIGTERM or ``seconds``."""
    daemon = center.daemon
    config = daemon.config
    for agent_id, agent in config.agents.items():
        center.add_phone(agent.device, answer_after=1.0 * speed)
        state = daemon.router.agents[agent_id].state
        if state == "logged_out":
            daemon.router.login(agent_id, via="demo")
        elif state == "paused":
            daemon.router.unpause(agent_id, via="demo")
    daemon.notices.post(
        "Welcome to the demo: the callers are scripted, the buttons are real",
        by="demo",
        minutes=MAX_MINUTES,
    )
    port = daemon.api.port
    print(
        f"\nthe demo stays (Ctrl-C ends it): the wallboard at http://127.0.0.1:{port}/"
        f"wallboard, the desktops at http://127.0.0.1:{port}/desktop (agents "
        + ", ".join(f"{a} PIN {c.pin}" for a, c in config.agents.items() if c.pin)
        + "; supervisors at /desktop?as=supervisor: "
        + ", ".join(f"{s} PIN {c.pin}" for s, c in config.supervisors.items() if c.pin)
        + ")",
        file=out,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, done.set)
    callers: set[asyncio.Task[None]] = set()

    sales = config.queues.get("sales")
    voicemail_key = next(
        (k for k, e in (sales.exit_keys if sales else {}).items() if e.to == "voicemail"), None
    )

    async def one_caller(number: str, key: str, talk: float, message: bool) -> None:
        caller = await center.pbx.call("800", caller_num=number, caller_name="Demo Caller")
        try:
            with contextlib.suppress(CallHungUp, TimeoutError, PBXError):
                await caller.wait_for_prompt("welcome-menu", timeout=30)
                await caller.press(key)
                if message and voicemail_key is not None:
                    # Tired of waiting: a message for the desktops' "Messages to call back".
                    await caller.wait_moh(timeout=30)
                    await asyncio.sleep(0.5)
                    message = caller.state != "bridged"
                if message and voicemail_key is not None:
                    await caller.press(voicemail_key)
                    await caller.wait_for_prompt("beep", timeout=30)
                    caller.speak(3.0)
                    await asyncio.sleep(3.5)
                    await caller.press("#")
                    await caller.wait_ended(timeout=30)
                    return
                await caller.wait_bridged(timeout=60)
                await asyncio.sleep(talk)
        finally:
            # At the end of the demo too: callers hang up, none is left to the PBX.
            with contextlib.suppress(CallHungUp, PBXError):
                await asyncio.shield(caller.hangup())

    rng = random.Random(7)
    deadline = None if seconds is None else loop.time() + seconds
    n = 0
    try:
        while not done.is_set() and (deadline is None or loop.time() < deadline):
            n += 1
            talk = rng.uniform(8.0, 30.0) * speed
            key = rng.choice("12")
            message = key == "1" and rng.random() < 0.15
            task = asyncio.create_task(one_caller(f"55590{n % 100:02d}", key, talk, message))
            callers.add(task)
            task.add_done_callback(callers.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), rng.uniform(2.0, 6.0) * speed)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for task in list(callers):
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)


def load_demo_config(path: Path) -> CallCenterConfig | None:
    """The config at ``path`` as the demo PBX runs it (with the demo's AMI secret); None,
    the problems printed on stderr (``file:line: field: message``), when it cannot be read
    or is invalid."""
    try:
        return load_config(path, environ={"CALLCENTER_AMI_SECRET": DEMO_SECRET})
    except ConfigError as exc:
        print(exc, file=sys.stderr)
    except OSError as exc:
        print(f"{path}: cannot read config: {exc.strerror}", file=sys.stderr)
    return None


def freeswitch_lamps(config: CallCenterConfig) -> dict[str, str] | None:
    """The config's busy lamps (``acd.blf``) as the demo FreeSWITCH takes them: presence
    ids (user@domain), in the demo switch's domain where they name none; None without."""
    blf = config.acd.blf
    if blf is None:
        return None
    return {
        kind: name if "@" in name else f"{name}@{SOFIA_DOMAIN}"
        for kind, name in (("agent", blf.agent), ("queue", blf.queue))
        if name is not None
    }


def run_demo(
    config_path: str | None = None,
    *,
    pbx: str = "asterisk",
    agi: str = "fastagi",
    speed: float = 1.0,
    stay: float | None = 0.0,
    out: TextIO | None = None,
    sip_port: int | None = None,
) -> int:
    """Run the demo on a demo Asterisk (``agi``: fastagi/asyncagi) or a demo FreeSWITCH
    (``pbx="freeswitch"``, park mode); ``stay``: go on after the script for that many
    seconds (None: until SIGINT/SIGTERM; 0: not at all); ``sip_port``: also take SIP
    calls on that UDP port of 127.0.0.1 (0: any; :mod:`callcenter.demopbx.sip`). Returns
    the process exit status."""
    stream = out if out is not None else sys.stdout
    path = Path(config_path) if config_path else EXAMPLE
    configure_logging("warning", "console", stream=sys.stderr)
    config = load_demo_config(path)
    if config is None:
        return 1
    cdr_path = resolve(config, config.records.cdr_path)
    try:
        cdr_path.parent.mkdir(parents=True, exist_ok=True)
        usable = holder(cdr_path) is None
    except OSError:
        usable = False
    else:
        if not usable:
            # A daemon runs on these records: the demo's calls are none of its business.
            print(
                f"{cdr_path} is in use by a running daemon: the demo's records go to a "
                "temporary folder",
                file=sys.stderr,
            )
    if not usable:
        cdr_path = Path(tempfile.mkdtemp(prefix="callcenter-demo-")) / "cdr.sqlite3"
    base = yaml.safe_load(path.read_text(encoding="utf-8"))
    transport: Transport = (
        "esl-inbound" if pbx == "freeswitch" else ("asyncagi" if agi == "asyncagi" else "fastagi")
    )
    staying = stay is None or stay > 0
    pins: dict[str, object] = {}
    if staying:
        pins["agents"] = {a: {"pin": DEMO_PIN} for a, c in config.agents.items() if not c.pin}
        pins["supervisors"] = {
            s: {"pin": DEMO_PIN} for s, c in config.supervisors.items() if not c.pin
        }
    acd: dict[str, object] = {"recordings_folder": str(cdr_path.parent / "recordings")}
    lamps = freeswitch_lamps(config)
    if pbx == "freeswitch" and lamps is not None:
        acd["blf"] = lamps
    overrides = {
        **pins,
        "records": {"cdr_path": str(cdr_path), "postgres": None},
        "ivr": {"voicemail_folder": str(cdr_path.parent / "voicemail")},
        "acd": acd,
        "pbx": {"ami": {"reconnect_min": 0.1}},
        # The config is copied to a folder of its own: its campaigns' files stay where
        # they are.
        "campaigns": {
            cid: {
                "leads": str(resolve(config, c.leads)),
                "do_not_call": str(resolve(config, c.do_not_call)) if c.do_not_call else None,
            }
            for cid, c in config.campaigns.items()
        },
    }
    this_run: set[str] = set()

    def note_call(event: EngineEvent) -> None:
        if isinstance(event, CallStarted):
            this_run.add(event.call_id)

    async def go() -> list[dict[str, object]]:
        with tempfile.TemporaryDirectory(prefix="callcenter-demo-") as workdir:
            async with running_center(
                Path(workdir),
                transport=transport,
                base=base,
                config=overrides,
                prompt_seconds=0.8 * speed,
                resume=False,
            ) as center:
                daemon = center.daemon
                daemon.bus.subscribe(LiveView(stream, time.monotonic()))
                daemon.bus.subscribe(note_call)
                where = (
                    f"ESL on 127.0.0.1:{center.pbx.esl_port}"
                    if pbx == "freeswitch"
                    else f"AMI on 127.0.0.1:{center.pbx.ami_port}, daemon {agi} on "
                    f"127.0.0.1:{daemon.agi_port}"
                )
                print(
                    f"demo {pbx}: {where}, control API on 127.0.0.1:{daemon.api.port}",
                    file=stream,
                    flush=True,
                )
                async with contextlib.AsyncExitStack() as stack:
                    if sip_port is not None:
                        front = await _sip_front(center, sip_port)
                        stack.push_async_callback(front.stop)
                        print(
                            f"SIP calls on udp 127.0.0.1:{front.port} (signalling only): "
                            f"sipp 127.0.0.1:{front.port} -sn uac -s 800",
                            file=stream,
                            flush=True,
                        )
                    await _script(center, speed, stream)
                    if staying:
                        await _stay(center, speed, stay, stream)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(daemon.switchboard.wait_idle(), 10)
                # The end of the demo's day: every shift is recorded and none is left for
                # a daemon that starts on these records later to take back.
                for agent in daemon.router.agents.values():
                    if agent.state != "logged_out":
                        daemon.router.logout(agent.id, via="demo")
        store = SqliteCdrStore(cdr_path)
        try:
            return store.fetch_cdrs()
        finally:
            store.close()

    rows = asyncio.run(go())
    ours = [row for row in rows if row["uniqueid"] in this_run]
    print("", file=stream)
    print(format_cdr_table(ours), file=stream)
    earlier = len(rows) - len(ours)
    before = f" (and {earlier} from earlier runs)" if earlier else ""
    print(f"\n{len(ours)} CDR rows from this run{before} in {cdr_path}", file=stream)
    return 0
