"""``callcenter simulate``: dry-run one call through a flow against the demo PBX.

:func:`simulate` starts a :class:`~callcenter.demopbx.DemoAsterisk` and the engine in-process
(over real TCP on 127.0.0.1, like :mod:`callcenter.testing`), places one call and prints,
step by step, the nodes visited, the prompts heard, the keys pressed and consumed, the
variables set, the decisions taken, and where the call ends. Nothing of the real
installation is touched: records and voicemail go to a temporary folder, the control API
and the FastAGI server use free ports, no agent is logged in, and a call that reaches a
queue or a transfer is hung up there.

``presses`` are key groups: each group is pressed when the flow next waits for the caller
(a menu, collect, confirmation, callback offer, or a voicemail recording where ``#`` ends
the message); an empty group presses nothing, so the flow sees a timeout
(``"2,,1234#"``: 2 at the first menu, silence at the next input, then 1234#). Timeouts take
their configured time, as they would for a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr

from callcenter.config.models import (
    APIConfig,
    CallCenterConfig,
    RecordsConfig,
    RouteConfig,
)
from callcenter.daemon import Daemon
from callcenter.demopbx import AGI, Answer, DemoAsterisk, DemoDialplan, Hangup, NoOp
from callcenter.demopbx.phones import Caller
from callcenter.events import (
    CallbackRequested,
    CallEnded,
    CallTransferred,
    EngineEvent,
    QueueJoined,
    VoicemailLeft,
)
from callcenter.ivr.lookup import LookupFailed, LookupRequest
from callcenter.ivr.runner import QueueLook
from callcenter.ivr.trace import (
    CallbackTaken,
    Decision,
    DigitsTaken,
    InputWanted,
    IvrEvent,
    NodeEntered,
    VariableSet,
    VoicemailRecorded,
)

SECRET = "simulate"
LISTEN_SECONDS = 0.4
"""How long the simulated caller listens before pressing (demo prompts are short)."""
SPEECH_SECONDS = 1.0
"""How long the simulated caller speaks into a voicemail before pressing or going quiet."""


@dataclass
class SimulationResult:
    """What the simulated call did (``ended`` describes where it left the IVR)."""

    ended: str = ""
    steps: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    cdr: dict[str, object] = field(default_factory=dict)
    finished: bool = False


def parse_presses(text: str) -> list[str]:
    """``"2,1234#"`` -> ``["2", "1234#"]`` (spaces ignored); raises ValueError on bad keys."""
    if not text:
        return []
    groups = [group.strip() for group in text.split(",")]
    for group in groups:
        bad = [c for c in group if c not in "0123456789*#"]
        if bad:
            raise ValueError(f"not a telephone key: {bad[0]!r} (use 0-9, * and #)")
    return groups


def simulation_config(config: CallCenterConfig, flow: str, workdir: Path) -> CallCenterConfig:
    """``config`` made safe for a dry run: every route to ``flow``, demo PBX, temp records."""
    pbx = config.pbx
    ami = pbx.ami.model_copy(
        update={
            "host": "127.0.0.1",
            "secret": SecretStr(SECRET),
            "reconnect_min": 0.05,
            "reconnect_max": 0.5,
            "action_timeout": 5.0,
        }
    )
    agi = pbx.agi.model_copy(
        update={"transport": "fastagi", "listen_host": "127.0.0.1", "listen_port": 0}
    )
    agents = {k: a.model_copy(update={"logged_in": False}) for k, a in config.agents.items()}
    updated = config.model_copy(
        update={
            "pbx": pbx.model_copy(update={"type": "asterisk", "ami": ami, "agi": agi}),
            "api": APIConfig(host="127.0.0.1", port=0),
            "records": RecordsConfig(cdr_path=str(workdir / "cdr.sqlite3")),
            "routes": {"default": RouteConfig(flow=flow)},
            "agents": agents,
            "ivr": config.ivr.model_copy(update={"voicemail_folder": str(workdir / "voicemail")}),
        }
    )
    return updated.with_source(config.source)


class _Printer:
    """Turns IVR steps and engine events into the lines ``simulate`` prints."""

    def __init__(self, result: SimulationResult, out: Callable[[str], None], language: str):
        self.result = result
        self.out = out
        self.language = language
        self.caller: Caller | None = None
        self._heard_seen = 0
        self._step = 0

    def line(self, text: str) -> None:
        self.result.steps.append(text)
        self.out(text)

    def detail(self, text: str) -> None:
        self.line(f"     {text}")

    def flush_heard(self) -> None:
        if self.caller is None:
            return
        heard = self.caller.heard_in[self._heard_seen :]
        self._heard_seen += len(heard)
        if heard:
            names = [p if lang == self.language else f"{lang}/{p}" for lang, p in heard]
            self.result.heard += names
            self.detail("heard: " + ", ".join(names))

    def ivr(self, event: IvrEvent) -> None:
        self.flush_heard()
        if isinstance(event, NodeEntered):
            self._step += 1
            self.line(f"{self._step:>3}. {event.flow}:{event.node} ({event.kind})")
        elif isinstance(event, DigitsTaken):
            shown = f'"{event.digits}"' if event.digits else "nothing"
            self.detail(f"took {shown}: {event.verdict}")
        elif isinstance(event, VariableSet):
            self.result.variables[event.name] = event.value
            self.detail(f"set {event.name} = {event.value!r}")
        elif isinstance(event, Decision):
            self.detail(event.text)
        elif isinstance(event, VoicemailRecorded):
            self.detail(f"recorded {event.seconds:.1f}s into box {event.box} ({event.ended})")
        elif isinstance(event, CallbackTaken):
            self.detail(f"callback request: {event.number} by queue {event.queue}")


def parse_queue_state(text: str) -> tuple[str, QueueLook]:
    """``sales:waiting=12,free=0,wait=300,staffed=2,closed=1`` (``--queue-state``): a queue
    and the state branch cases see of it (missing: 0 waiting, 0 free, 1 staffed, nothing
    to estimate, open). ValueError saying what was expected otherwise."""
    queue, _, spec = text.partition(":")
    if not queue or not spec:
        raise ValueError(f"--queue-state {text!r}: give QUEUE:waiting=N,free=N,wait=S,staffed=N")
    values: dict[str, float] = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key not in ("waiting", "free", "wait", "staffed", "closed"):
            raise ValueError(
                f"--queue-state {text!r}: no {key!r} (waiting, free, wait, staffed, closed)"
            )
        try:
            values[key] = float(value)
        except ValueError:
            raise ValueError(f"--queue-state {text!r}: {key} takes a number") from None
    return queue, QueueLook(
        waiting=int(values.get("waiting", 0)),
        free=int(values.get("free", 0)),
        staffed=int(values.get("staffed", 1)),
        expected_wait=values.get("wait"),
        closed=bool(values.get("closed", 0)),
    )


async def simulate(
    config: CallCenterConfig,
    *,
    flow: str,
    caller_num: str,
    dialed: str,
    presses: Sequence[str] = (),
    at: datetime | None = None,
    caller_name: str = "",
    http: bool = True,
    out: Callable[[str], None] = print,
    prompt_seconds: float = 0.02,
    limit: float = 600.0,
    switches: Collection[str] = (),
    queues: Mapping[str, QueueLook] | None = None,
) -> SimulationResult:
    """Run one simulated call of ``caller_num`` dialling ``dialed`` through ``flow``.

    ``at`` fixes "now" for schedules and time branches (naive: wall-clock time in each
    schedule's own zone). ``http=False`` sends every lookup down its fallback branch.
    ``switches``: the ``ivr.switches`` that are on for the call. ``queues``: the state
    branch cases see of these queues (the others: as the simulated centre has them).
    """
    result = SimulationResult()
    if flow not in config.flows:
        raise KeyError(flow)
    with tempfile.TemporaryDirectory(prefix="callcenter-simulate-") as tmp:
        workdir = Path(tmp)
        sim_config = simulation_config(config, flow, workdir)
        printer = _Printer(result, out, config.ivr.default_language)
        when = f", at {at.isoformat(sep=' ')}" if at is not None else ""
        printer.line(f'simulate flow "{flow}": {caller_num or "anonymous"} dials {dialed}{when}')
        pbx = DemoAsterisk(ami_secret=SECRET, prompt_seconds=prompt_seconds)
        await pbx.start()
        try:
            ami = sim_config.pbx.ami.model_copy(update={"port": pbx.ami_port})
            sim_config = sim_config.model_copy(
                update={"pbx": sim_config.pbx.model_copy(update={"ami": ami})}
            ).with_source(config.source)
            daemon = Daemon(sim_config, resume=False)
            board = daemon.switchboard
            board.switches.update(dict.fromkeys(switches, True))
            if queues:
                seen = board.look_at_queue
                board.queue_look = lambda name: queues[name] if name in queues else seen(name)
            await _run(
                daemon,
                pbx,
                printer=printer,
                result=result,
                caller_num=caller_num,
                caller_name=caller_name,
                dialed=dialed,
                presses=presses,
                at=at,
                http=http,
                limit=limit,
            )
        finally:
            await pbx.stop()
    return result


async def _run(
    daemon: Daemon,
    pbx: DemoAsterisk,
    *,
    printer: _Printer,
    result: SimulationResult,
    caller_num: str,
    caller_name: str,
    dialed: str,
    presses: Sequence[str],
    at: datetime | None,
    http: bool,
    limit: float,
) -> None:
    board = daemon.switchboard
    if at is not None:
        board.clock = lambda: at
    if not http:

        async def offline(_request: LookupRequest) -> object:
            raise LookupFailed("HTTP is off in this simulation (--no-http)")

        board.lookup_fetch = offline
    groups = deque(presses)
    tasks: set[asyncio.Task[None]] = set()
    ended = asyncio.Event()
    caller_box: list[Caller] = []

    async def press(group: str, voicemail: bool) -> None:
        caller = caller_box[0]
        if voicemail:
            caller.speak(SPEECH_SECONDS)
            await asyncio.sleep(SPEECH_SECONDS)
        else:
            # Let the prompts (and any read-back) play out, as a caller who listens would.
            await asyncio.sleep(LISTEN_SECONDS)
        with contextlib.suppress(Exception):
            printer.flush_heard()
            printer.detail(f'caller presses "{group}"')
            await caller.press(group)

    def on_ivr(_call_id: str, event: IvrEvent) -> None:
        printer.ivr(event)
        if isinstance(event, InputWanted) and caller_box:
            group = groups.popleft() if groups else ""
            voicemail = event.what == "voicemail"
            if group:
                task = asyncio.get_running_loop().create_task(press(group, voicemail))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif voicemail:
                caller_box[0].speak(SPEECH_SECONDS)

    async def leave(text: str) -> None:
        printer.flush_heard()
        result.ended = text
        printer.line(f"end: {text}")
        if caller_box:
            await caller_box[0].hangup()

    def on_bus(event: EngineEvent) -> None:
        if isinstance(event, QueueJoined):
            active = board.active.get(event.call_id)
            skills = ", ".join(active.skills) if active is not None and active.skills else "none"
            text = (
                f"queued in {event.queue} (priority {event.priority}, skills: {skills}); "
                "the simulation hangs up here"
            )
            task = asyncio.get_running_loop().create_task(leave(text))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif isinstance(event, CallTransferred) and event.by == "ivr":
            printer.flush_heard()
            result.ended = f"transferred to {event.to}"
            printer.line(f"end: {result.ended}")
        elif isinstance(event, VoicemailLeft):
            printer.detail(f"voicemail: {event.path}")
        elif isinstance(event, CallbackRequested):
            printer.detail(f"stored for the outbound side: call back {event.number}")
        elif isinstance(event, CallEnded):
            printer.flush_heard()
            if not result.ended:
                result.ended = f"hung up by {event.hung_up_by}"
                printer.line(f"end: {result.ended}")
            ended.set()

    board.ivr_listeners.append(on_ivr)
    daemon.bus.subscribe(on_bus)
    await daemon.start()
    try:
        agi_url = f"agi://127.0.0.1:{daemon.agi_port}"
        inbound = [Answer(), AGI(f"{agi_url}/inbound"), Hangup()]
        transfer = [NoOp("transferred by the IVR"), Hangup()]
        pbx.dialplan = DemoDialplan(
            {"_!": inbound},
            contexts={daemon.config.ivr.transfer_context: {"_!": transfer}},
            fallback=transfer,
        )
        caller = await pbx.call(dialed, caller_num=caller_num, caller_name=caller_name)
        caller_box.append(caller)
        printer.caller = caller
        try:
            async with asyncio.timeout(limit):
                await ended.wait()
                row = await _cdr(daemon, caller.uniqueid)
        except TimeoutError:
            printer.line(f"end: the call was still running after {limit:g}s; stopped")
            result.ended = "still running"
            return
        result.cdr = row
        result.finished = True
        printer.line(f"cdr: ivr_path={row.get('ivr_path', '')}")
        for key in ("ivr_variables", "voicemail", "transfer_path"):
            if row.get(key) not in ("", "{}", None):
                printer.line(f"cdr: {key}={row[key]}")
    finally:
        for task in list(tasks):
            task.cancel()
        await daemon.stop()


async def _cdr(daemon: Daemon, uniqueid: str) -> dict[str, object]:
    await daemon.recorder.wait_written(uniqueid, timeout=10.0)
    rows = await asyncio.to_thread(daemon.store.fetch_cdrs)
    return next((r for r in rows if r["uniqueid"] == uniqueid), {})
