"""A soak: seeded random callers, agents and supervisors through a config's flows on the
demo PBX, then a check that no call was lost and nothing was left stuck.

    callcenter soak [--config FILE] [--pbx asterisk|freeswitch] [--seconds 60] [--rate 2]
                    [--seed 7] [--outages] [--restarts]

Meanwhile, every choice drawn from one generator seeded with ``seed`` (a seed replays the
same choices; the timings of two processes on a busy machine still vary):

- callers arrive (``rate`` a second on average) on the config's routes, press keys (the
  menus' own and others), wait, give up at any moment or stay until their talk ends;
- the agents' phones answer after a while, never, or busy, and hang up after a talk of any
  length; agents press their keypad keys (``acd.agent_keys``) while they talk;
- agents log in and out, pause, come back, end their wrap-up, hold, consult, transfer and
  ask for help through the control API; those with a PIN open a line (``*70``) and hang it
  up later; supervisors listen, whisper, barge, take over;
- people outside (:data:`OUTSIDE_NUMBERS`, whose phones answer, or not, as the agents' do)
  ask for callbacks on the web and withdraw them, agents dial them (click-to-dial), and a
  campaign of the soak's own (:data:`SOAK_CAMPAIGN`, for the config's first queue) calls
  them, its leads added through the API, paused and resumed;
- with ``outages``, the PBX link (AMI or ESL) is cut every few seconds; with
  ``restarts``, the daemon is restarted every 5-12 s (as ``systemctl restart``).

Then, once the callers are gone and the daemon is idle, :class:`SoakReport` lists the
problems: a call without exactly one record, any record ``lost``/``in_progress``, a
record whose billable seconds exceed its duration, an agent left ringing or on a call,
a call the daemon still handles, a channel left on the PBX, a callback request the
records say waits but the daemon forgot (or the other way round), a campaign lead left
``dialing``, an API answer 5xx, an error in the log (the daemon's stop at the end
included) or an exception nobody retrieved. While it runs it looks for an agent a queue
dial rings whose phone never rings (:data:`RING_UNSEEN`) and a caller hunting beside an
agent free to take them (:data:`STALL_SEEN`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import structlog
import yaml
from structlog.testing import capture_logs

from callcenter.config.models import CallCenterConfig, FlowConfig
from callcenter.demo import EXAMPLE, freeswitch_lamps, load_demo_config
from callcenter.errors import CallCenterError
from callcenter.events import CallStarted, EngineEvent
from callcenter.log import configure_logging
from callcenter.outbound.campaign import LeadRecord
from callcenter.pbx.asterisk.driver import ASYNCAGI_ADOPT_GRACE
from callcenter.records.callbacks import QueueCallback
from callcenter.testing import Center, Transport, merge, running_center

CALL_ACTIONS = frozenset(
    {"hold", "unhold", "consult", "consult-complete", "consult-join", "consult-cancel"}
    | {"transfer", "help"}
)
"""The control API's actions on an agent's call (the others change the agent's state)."""
CALLER_KEYS = "0123456789*#"
"""Keys a caller may press besides the menus' own (three times in ten)."""
LOST_RECORDS = ("lost", "in_progress")
"""``hung_up_by`` of a record a daemon wrote without seeing the call end."""
HAND_OVER_SECONDS = 0.5
"""Time the PBX may take to hand a call to the daemon: a caller gone within it may never
have reached the daemon."""
TAKE_BACK_SECONDS = ASYNCAGI_ADOPT_GRACE + HAND_OVER_SECONDS
"""Time after a reconnection before the daemon takes the calls that reached the PBX while
the link was down (AsyncAGI's waiting channels, FreeSWITCH's parked ones)."""
SETTLE_SECONDS = 30.0
"""Longest the soak waits for the daemon to be idle after the last caller left."""
RING_UNSEEN = 8.0
"""Seconds (after the queue's ``member_delay``) an agent's phone may take to ring once a
queue dial rings them, with no link cut or restart meanwhile."""
STALL_SEEN = 3.0
"""Seconds a caller may hunt beside an agent free to take them (the router's invariant
broken, see :meth:`Router.stalled`) before it is a problem."""
HUNG_AFTER = 300.0
"""Seconds past its plan's length after which a soak is taken for hung: it prints where
each of its tasks waits and ends with status 1, rather than never ending."""
OUTSIDE_NUMBERS = tuple(f"555{n}" for n in range(9001, 9031))
"""The soak's callers and the people it calls back and dials: ``_555XXXX`` numbers (the
example config allows them; a config that does not refuses the soak's callbacks and dials,
403, counted among the actions)."""
CAMPAIGN_MODES = ("progressive", "predictive", "preview")
"""The soak campaign's mode, by the seed (``seed % 3``)."""
SOAK_AGENTS = 9101
"""The id (and phone, ``PJSIP/<id>``) of the first agent of the soak's own
(:attr:`SoakPlan.agents`)."""
SOAK_CAMPAIGN = "soak"
"""The campaign the soak adds (the config's own are left out: their leads are real
people)."""


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """What a soak does (see the module doc)."""

    seconds: float = 60.0
    rate: float = 2.0
    """Callers a second, on average."""
    seed: int = 1
    outages: bool = False
    """Cut the PBX link every few seconds."""
    restarts: bool = False
    """Restart the daemon every 5-12 s, as ``systemctl restart`` does, calls going on."""
    patience: float = 30.0
    """Longest a caller stays on the line, in seconds."""
    agents: int = 0
    """Agents of the soak's own added to the config's (in every queue, with every skill at
    level 5, half with a PIN for lines): more calls reach agents, and more of the agents'
    paths run under the outages and restarts."""


@dataclass(slots=True)
class SoakReport:
    """What a soak did and what it found wrong (``problems``: empty when nothing)."""

    plan: SoakPlan
    transport: str
    calls: int = 0
    records: int = 0
    talked: int = 0
    """Calls of the soak's callers an agent answered."""
    other_calls: int = 0
    """Calls recorded that the soak did not place: callbacks, agents' dials, campaign
    calls, lines."""
    other_talked: int = 0
    """Those of them an agent talked on."""
    unseen: int = 0
    """Calls the daemon never saw, rightly: the caller hung up before the PBX handed the call
    over, or while the link was down (a parked call is taken at the reconnection)."""
    ended_by: Counter[str] = field(default_factory=Counter)
    """Records by ``hung_up_by``."""
    actions: Counter[str] = field(default_factory=Counter)
    """What the soak did, with the API's answers (``pause 409``)."""
    warnings: Counter[str] = field(default_factory=Counter)
    recoveries: Counter[str] = field(default_factory=Counter)
    """What a daemon did about what a restart or an outage left (:data:`RECOVERIES`)."""
    problems: list[str] = field(default_factory=list)

    def format(self) -> str:
        """The report as ops read it: figures, then each problem on its own line."""
        plan = self.plan
        lines = [
            f"soak on {self.transport}: {plan.seconds:g} s, {plan.rate:g} callers/s, "
            f"seed {plan.seed}{', outages' if plan.outages else ''}"
            f"{', restarts' if plan.restarts else ''}"
            f"{f', {plan.agents} agents of its own' if plan.agents else ''}",
            f"{self.calls} calls placed, {self.records} call records, {self.talked} "
            "answered by an agent"
            + (
                f" ({self.unseen} callers hung up before the daemon could see them)"
                if self.unseen
                else ""
            ),
            f"{self.other_calls} other calls (callbacks, dials, campaign, lines), "
            f"{self.other_talked} with an agent",
            "ended by: " + _counts(self.ended_by),
            "actions: " + _counts(self.actions),
            "warnings logged: " + _counts(self.warnings),
        ]
        if self.recoveries:
            lines.append("left by restarts and outages, and seen to: " + _counts(self.recoveries))
        if self.problems:
            lines.append(f"{len(self.problems)} problems:")
            lines.extend(f"  {problem}" for problem in self.problems)
        else:
            lines.append("no problems: every call has its record, nothing is left stuck")
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items())) or "none"


def entry_numbers(config: CallCenterConfig) -> list[str]:
    """The numbers callers dial: the config's routes (``800`` for its ``default``)."""
    numbers = [number for number in config.routes if number != "default"]
    return numbers or ["800"]


def outside_devices(config: CallCenterConfig, number: str) -> list[str]:
    """The devices the daemon rings to reach ``number`` outside: through its callback,
    transfer and dial-out templates and its campaigns'."""
    acd = config.acd
    templates = [acd.callback_dial, acd.transfer_dial, acd.dial_out]
    templates += [campaign.dial for campaign in config.campaigns.values()]
    devices = {t.replace("${number}", number) for t in templates if t is not None}
    return sorted(devices)


def menu_keys(config: CallCenterConfig) -> str:
    """Every key the config's menus choose on."""
    keys: set[str] = set()
    for flow in config.flows.values():
        keys.update(_flow_keys(flow))
    return "".join(sorted(keys))


def _flow_keys(flow: FlowConfig) -> set[str]:
    keys: set[str] = set()
    for node in flow.nodes.values():
        choices = getattr(node, "choices", None)
        if isinstance(choices, Mapping):
            keys.update(str(key) for key in choices)
    return keys


def check_records(
    placed: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> tuple[list[str], Counter[str]]:
    """Problems with the records of the calls placed (one each, none lost, billable time
    within the call) and the records' ``hung_up_by`` counts."""
    by_call: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_call.setdefault(str(row["uniqueid"]), []).append(row)
    problems: list[str] = []
    ended_by: Counter[str] = Counter()
    for call_id in placed:
        found = by_call.get(call_id, [])
        if len(found) != 1:
            problems.append(f"call {call_id}: {len(found)} call records instead of one")
            continue
        row = found[0]
        ended_by[str(row["hung_up_by"])] += 1
        problems.extend(_record_problems(call_id, row))
    return problems, ended_by


def _record_problems(call_id: str, row: Mapping[str, Any], *, where: str = "") -> list[str]:
    """A record written as lost, or whose billable time exceeds its duration."""
    problems: list[str] = []
    if row["hung_up_by"] in LOST_RECORDS:
        problems.append(f"call {call_id}{where}: recorded as {row['hung_up_by']}")
    billsec, duration = int(row["billsec"] or 0), int(row["duration"] or 0)
    if not 0 <= billsec <= duration:
        problems.append(f"call {call_id}: billsec {billsec} outside its duration {duration}")
    return problems


def check_other_records(placed: Set[str], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems with the records of the calls the soak did not place (callbacks, dials,
    campaigns, lines): none lost, billable time within the call."""
    problems: list[str] = []
    for row in rows:
        call_id = str(row["uniqueid"])
        if call_id not in placed:
            problems.extend(_record_problems(call_id, row, where=f" ({row['dst']})"))
    return problems


def check_promises(
    held: Set[str], callbacks: Sequence[QueueCallback], leads: Sequence[LeadRecord]
) -> list[str]:
    """Problems with what was promised once the daemon is idle: a callback request the
    records say waits and the daemon (``held``: the requests it keeps) forgot, or the other
    way round; a campaign lead still ``dialing``."""
    problems: list[str] = []
    recorded = {c.call_id for c in callbacks if c.status == "waiting"}
    for call_id in sorted(recorded - held):
        problems.append(f"callback {call_id}: waiting in the records, forgotten by the daemon")
    for call_id in sorted(held - recorded):
        problems.append(f"callback {call_id}: waiting in the daemon, not in the records")
    for lead in leads:
        if lead.status == "dialing":
            problems.append(f"campaign {lead.campaign} lead {lead.lead}: left dialing")
    return problems


RECOVERIES: Final = (
    "agent_line_left_talking_at_stop",
    "call_left_in_room_at_shutdown",
    "left_caller_taken_back",
    "left_dial_hung_up",
    "left_line_taken_back",
    "room_leg_left_after_link_loss",
    "stranded_room_legs_hung_up",
)
"""Log events (info) of calls a stop or a lost link left to the PBX, and of what the next
daemon (or the link's return) did about them: the soak's report counts them."""


@contextlib.contextmanager
def _info_logged() -> Iterator[None]:
    """Info events reach the processors (the soak's capture) while in the block, whatever
    level the logging is configured at: :data:`RECOVERIES` are info."""
    before = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        yield
    finally:
        structlog.configure(wrapper_class=before)


def count_recoveries(entries: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """How many times each of :data:`RECOVERIES` was logged."""
    return Counter(str(e["event"]) for e in entries if e.get("event") in RECOVERIES)


def check_logs(entries: Sequence[Mapping[str, Any]]) -> tuple[list[str], Counter[str]]:
    """Errors in the captured log lines as problems; warnings counted by event."""
    problems: list[str] = []
    warnings: Counter[str] = Counter()
    for entry in entries:
        level = entry.get("log_level")
        if level in ("error", "critical", "exception"):
            said = " ".join(
                f"{k}={v!r}" for k, v in entry.items() if k not in ("event", "log_level")
            )
            problems.append(f"log {level}: {entry.get('event')} {said}".rstrip())
        elif level == "warning":
            warnings[str(entry.get("event"))] += 1
    return problems, warnings


class Soak:
    """One soak against a running :class:`~callcenter.testing.Center`: :meth:`run`."""

    def __init__(self, center: Center, plan: SoakPlan, transport: str) -> None:
        self._center = center
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._config = center.daemon.config
        self._report = SoakReport(plan=plan, transport=transport)
        self._placed: list[str] = []
        self._lives: dict[str, tuple[float, float]] = {}
        """Call id -> when the caller dialled and hung up (the loop's clock)."""
        self._seen: set[str] = set()
        """Calls the daemon took (CallStarted)."""
        self._cuts: list[tuple[float, float]] = []
        """When the PBX link was cut (or the daemon stopped), and when the daemon had it
        back."""
        self._cut_now: float | None = None
        """When the cut going on began (None: the link is not cut)."""
        self._phones: dict[str, Any] = {}
        self._others: list[Any] = []
        """The supervisors' phones."""
        self._outside: dict[str, Any] = {}
        """Device -> phone of the people outside (:data:`OUTSIDE_NUMBERS`), one per way the
        config dials them."""
        self._campaign = SOAK_CAMPAIGN in self._config.campaigns
        self._leads = 0
        self._open_lines: dict[str, Any] = {}
        """Agent -> their line's call (``*70``), while open."""
        self._stop = asyncio.Event()
        self._steady = asyncio.Event()
        """Set while the daemon runs (cleared during a restart: its API is away)."""
        self._steady.set()
        self._loop_errors: list[str] = []

    async def run(self) -> SoakReport:
        """Drive the traffic for ``plan.seconds``, let everyone go, then check."""
        loop = asyncio.get_running_loop()
        handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_error)
        try:
            with capture_logs() as entries, _info_logged():
                await self._drive()
                await self._settle()
                store = self._center.daemon.store
                rows = await asyncio.to_thread(store.fetch_cdrs)
                callbacks = await asyncio.to_thread(store.fetch_queue_callbacks)
                leads = await asyncio.to_thread(store.fetch_campaign_leads)
                self._check_left(callbacks, leads)
                # The day ends: a stop loses nothing either (its errors are the soak's).
                await self._center.daemon.stop()
        finally:
            loop.set_exception_handler(handler)
        self._check(rows, entries)
        return self._report

    # ------------------------------------------------------------------ traffic

    async def _drive(self) -> None:
        config = self._config
        for agent_id, agent in config.agents.items():
            self._phones[agent_id] = self._center.add_phone(agent.device, answer_after=0.3)
        for supervisor in config.supervisors.values():
            self._others.append(self._center.add_phone(supervisor.device, answer_after=0.2))
        for number in OUTSIDE_NUMBERS:
            for device in outside_devices(config, number):
                self._outside[device] = self._center.add_phone(device, answer_after=0.5)
        for agent_id in config.agents:
            await self._api("login", f"/agents/{agent_id}/login", {})
        self._center.daemon.bus.subscribe(self._on_event, (CallStarted,))
        numbers = entry_numbers(config)
        for number in numbers:
            self._center.pbx.add_route(number, "inbound")
        keys = menu_keys(config)
        hands: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self._moods,
            self._agents_at_work,
            self._agent_keys,
            self._supervisors,
            self._lines,
            self._line_pins,
            self._outside_world,
        ]
        hands += [self._rings, self._stalls]
        if self._plan.outages:
            hands.append(self._outages)
        if self._plan.restarts:
            hands.append(self._restarts)
        helpers = [asyncio.create_task(hand()) for hand in hands]
        callers: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + self._plan.seconds
        n = 0
        while loop.time() < end:
            await asyncio.sleep(self._rng.expovariate(self._plan.rate))
            n += 1
            number = self._rng.choice(numbers)
            callers.append(asyncio.create_task(self._caller(n, number, keys)))
        self._stop.set()
        await asyncio.gather(*helpers)
        await asyncio.gather(*callers)

    async def _caller(self, n: int, number: str, keys: str) -> None:
        rng = self._rng
        caller = await self._center.pbx.call(
            number, caller_num=rng.choice(OUTSIDE_NUMBERS), caller_name=f"Soak Caller {n}"
        )
        self._placed.append(caller.uniqueid)
        self._report.calls += 1
        loop = asyncio.get_running_loop()
        dialled = loop.time()
        leave = loop.time() + rng.uniform(0.5, self._plan.patience)
        stays = rng.random() < 0.5
        try:
            while caller.state != "ended" and loop.time() < leave:
                await asyncio.sleep(rng.uniform(0.05, 1.5))
                roll = rng.random()
                if roll < 0.5 and caller.state != "ended":
                    if keys and rng.random() < 0.7:
                        pressed = rng.choice(keys)
                    else:
                        pressed = "".join(rng.choice(CALLER_KEYS) for _ in range(rng.randint(1, 3)))
                    with contextlib.suppress(CallCenterError):
                        await caller.press(pressed)
                elif roll < 0.55 or (caller.state == "bridged" and not stays):
                    break
        finally:
            if caller.state != "ended":
                with contextlib.suppress(CallCenterError):
                    await caller.hangup()
            self._lives[caller.uniqueid] = (dialled, loop.time())

    async def _moods(self) -> None:
        """Phones change how they answer: quickly, slowly, never, busy; short or long talks."""
        rng = self._rng
        while not await self._pause(0.2, 1.0):
            phones = self._phones if rng.random() < 0.6 or not self._outside else self._outside
            phone = phones[rng.choice(list(phones))]
            never = rng.random() < 0.1
            phone.answer_after = None if never else rng.choice([0.05, 0.3, 1.0, 3.0])
            phone.reject = rng.random() < 0.05
            phone.hangup_after = rng.choice([None, 0.5, 2.0, 5.0])

    async def _agents_at_work(self) -> None:
        rng = self._rng
        reasons = self._config.pause_reasons or ["break"]
        actions: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("login", dict),
            ("logout", dict),
            ("pause", lambda: {"reason": rng.choice(reasons)}),
            ("unpause", dict),
            ("unpause", dict),  # twice: agents paused for rings they missed come back
            ("ready", dict),
            ("hold", dict),
            ("unhold", dict),
            ("consult", lambda: {"to": rng.choice(self._people())}),
            ("consult-complete", dict),
            ("consult-join", dict),
            ("consult-cancel", dict),
            ("transfer", lambda: {"to": rng.choice(self._people())}),
            ("help", dict),
        ]
        while not await self._pause(0.2, 1.2):
            action, body = rng.choice(actions)
            if action == "logout" and rng.random() < 0.7:
                continue  # a logout now and then, not every few seconds
            talking = self._talking()
            # Call actions mostly go to agents on a call, where they do something.
            if action in CALL_ACTIONS and talking and rng.random() < 0.8:
                agent_id = rng.choice(talking)
            else:
                agent_id = rng.choice(list(self._phones))
            await self._api(action, f"/agents/{agent_id}/{action}", body())

    async def _agent_keys(self) -> None:
        keys = self._config.acd.agent_keys
        codes = list(keys.codes()) if keys is not None else []
        if not codes:
            return
        rng = self._rng
        people = self._people()
        while not await self._pause(0.2, 1.0):
            phone = self._phones[rng.choice(list(self._phones))]
            if phone.current_channel is None:
                continue
            code = rng.choice(codes)
            pressed = code + (rng.choice(people) + "#" if rng.random() < 0.4 else "")
            self._report.actions["agent keys"] += 1
            with contextlib.suppress(CallCenterError):
                await phone.press(pressed)

    async def _supervisors(self) -> None:
        supervisors = list(self._config.supervisors)
        if not supervisors:
            return
        rng = self._rng
        modes = ["listen", "whisper", "barge", "stop", "takeover"]
        while not await self._pause(0.5, 3.0):
            supervisor = rng.choice(supervisors)
            mode = rng.choice(modes)
            agent = rng.choice(self._talking() or list(self._phones))
            body = {"agent": agent} if mode not in ("stop", "takeover") else {}
            await self._api(mode, f"/supervisors/{supervisor}/{mode}", body)

    async def _lines(self) -> None:
        """Agents with a PIN now and then open a line (``*70``) and later hang it up."""
        rng = self._rng
        pins = {a: c.pin for a, c in self._config.agents.items() if c.pin}
        if not pins:
            return
        while not await self._pause(3.0, 10.0):
            agent = rng.choice(list(pins))
            line = self._open_lines.pop(agent, None)
            if line is not None:
                self._report.actions["line closed"] += 1
                if line.state != "ended":
                    with contextlib.suppress(CallCenterError):
                        await line.hangup()
                continue
            await self._steady.wait()
            try:
                self._open_lines[agent] = await self._center.open_line(agent, pins[agent])
            except (CallCenterError, TimeoutError):
                self._report.actions["line not opened"] += 1
            else:
                self._report.actions["line opened"] += 1

    async def _line_pins(self) -> None:
        """An agent whose line a restarted daemon sends through ``*70`` again (it was left
        in its room) hears the PIN prompt once more and gives it, as they would."""
        pins = {a: c.pin for a, c in self._config.agents.items() if c.pin}
        given: dict[int, int] = {}
        while not await self._pause(0.2, 0.4):
            for agent, line in list(self._open_lines.items()):
                asked = line.heard.count("agent-pass")
                if line.state == "ended" or asked <= given.get(id(line), 1):
                    continue
                given[id(line)] = asked
                self._report.actions["line taken back"] += 1
                with contextlib.suppress(CallCenterError):
                    await line.press(pins[agent])

    async def _outside_world(self) -> None:
        """Callbacks asked for on the web and withdrawn, agents' click-to-dial, leads added
        to the soak's campaign, the campaign paused and resumed."""
        rng = self._rng
        queues = list(self._config.queues)
        # One every 5 s on average: callbacks never give up as callers do, and more of them
        # would keep every caller from an agent.
        while not await self._pause(2.0, 8.0):
            roll = rng.random()
            number = rng.choice(OUTSIDE_NUMBERS)
            if roll < 0.35 and queues:
                body: dict[str, Any] = {"number": number, "queue": rng.choice(queues)}
                if rng.random() < 0.2:
                    body["priority"] = rng.randint(1, 5)
                await self._api("callback", "/callbacks", body)
            elif roll < 0.45:
                await self._withdraw_callback()
            elif roll < 0.7:
                agent = rng.choice(list(self._phones))
                await self._api("dial", f"/agents/{agent}/dial", {"number": number})
            elif roll < 0.9 and self._campaign:
                self._leads += 1
                lead = {"number": number, "id": f"soak-{self._leads}"}
                await self._api("add-lead", f"/campaigns/{SOAK_CAMPAIGN}/leads", lead)
            elif self._campaign:
                action = rng.choice(["pause", "resume", "resume"])
                await self._api(f"campaign {action}", f"/campaigns/{SOAK_CAMPAIGN}/{action}", {})

    async def _withdraw_callback(self) -> None:
        await self._steady.wait()
        try:
            _, listed = await self._center.api("GET", "/callbacks")
        except (OSError, ValueError):
            return
        waiting = [c["call_id"] for c in listed.get("callbacks", []) if not c["dialling"]]
        if waiting:
            call_id = self._rng.choice(waiting)
            await self._api("callback cancel", f"/callbacks/{call_id}/cancel", {})

    async def _outages(self) -> None:
        loop = asyncio.get_running_loop()
        while not await self._pause(4.0, 10.0):
            await self._steady.wait()
            self._report.actions["outage"] += 1
            before = self._center.daemon.link
            since = before.since
            cut = self._cut_now = loop.time()
            await self._center.drop_pbx_connections()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_SECONDS):
                    # Polled: the link's state has no event to wait on from here. Back once
                    # it went down and up again (a new daemon's link after a restart).
                    while True:
                        link = self._center.daemon.link
                        if link.connected and (link is not before or link.since != since):
                            break
                        await asyncio.sleep(0.01)
            self._cuts.append((cut, loop.time()))
            self._cut_now = None

    async def _rings(self) -> None:
        """The PBX rings the phones the daemon's queue dials ring: an agent a dial has been
        ringing for :data:`RING_UNSEEN` seconds (after the queue's ``member_delay``) whose
        phone never rang, with no link cut or restart meanwhile, is a problem (the ring
        never started: queued behind something at the PBX). Looks without the soak's
        random generator, which replays the traffic of a seed."""
        loop = asyncio.get_running_loop()
        delays = [q.member_delay or 0.0 for q in self._config.queues.values()]
        grace = RING_UNSEEN + max(delays, default=0.0)
        seen: dict[tuple[str, str], tuple[float, bool]] = {}
        """(call, agent) -> when first seen ringing, and whether their phone rang since."""
        told: set[tuple[str, str]] = set()
        while not self._stop.is_set():
            await asyncio.sleep(0.25)
            if not self._steady.is_set():
                seen.clear()  # a restart: the new daemon's rings start afresh
                continue
            daemon = self._center.daemon
            now = loop.time()
            rings = {
                (call_id, agent_id)
                for call_id, agents in daemon.switchboard.ringing().items()
                for agent_id in agents
                if agent_id in self._phones and not daemon.router.agents[agent_id].on_line
            }
            for key in set(seen) - rings:
                del seen[key]
            for key in rings:
                first, rang = seen.get(key, (now, False))
                rang = rang or self._phones[key[1]].current_channel is not None
                seen[key] = (first, rang)
                if rang or now - first < grace or key in told or self._cut_since(first):
                    continue
                told.add(key)
                self._report.problems.append(
                    f"call {key[0]}: agent {key[1]} rung by the daemon for {now - first:.0f} s,"
                    " their phone never rang"
                )

    async def _stalls(self) -> None:
        """A caller hunting for an agent while one who may take them is free, for
        :data:`STALL_SEEN` seconds, is a problem: the router serves at every change, so
        it missed one (a router stall; nothing else in the soak would notice a caller
        who waits on beside a free agent until they give up)."""
        loop = asyncio.get_running_loop()
        seen: dict[tuple[str, str], float] = {}
        """(call, agent) -> when first seen stalled."""
        told: set[str] = set()
        while not self._stop.is_set():
            await asyncio.sleep(0.25)
            if not self._steady.is_set():
                seen.clear()
                continue
            now = loop.time()
            stalled = set(self._center.daemon.router.stalled())
            seen = {key: seen.get(key, now) for key in stalled}
            for (call_id, agent_id), first in seen.items():
                if now - first < STALL_SEEN or call_id in told:
                    continue
                told.add(call_id)
                self._report.problems.append(
                    f"call {call_id}: hunting for an agent {now - first:.0f} s while agent"
                    f" {agent_id}, free to take them, was not offered the call (router stall)"
                )

    def _cut_since(self, moment: float) -> bool:
        """Was the link cut (or the daemon restarted) at some time since ``moment``?"""
        if self._cut_now is not None:
            return True
        return any(back >= moment for _, back in self._cuts)

    async def _restarts(self) -> None:
        while not await self._pause(5.0, 12.0):
            self._report.actions["restart"] += 1
            loop = asyncio.get_running_loop()
            stopped = loop.time()
            self._steady.clear()
            try:
                daemon = await self._center.restart()
            finally:
                self._steady.set()
            daemon.bus.subscribe(self._on_event, (CallStarted,))
            # Callers who came and went while no daemon ran never reached one.
            self._cuts.append((stopped, loop.time()))

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, CallStarted):
            self._seen.add(event.call_id)

    def _talking(self) -> list[str]:
        """The agents on a call now (the running daemon's: a restart makes a new one)."""
        agents = self._center.daemon.router.agents
        return [a for a in self._phones if str(agents[a].state) == "on_call"]

    def _people(self) -> list[str]:
        return [*self._config.agents, *self._config.supervisors] or ["supervisor"]

    async def _pause(self, low: float, high: float) -> bool:
        """Wait a random while; True once the soak is over."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._rng.uniform(low, high)):
                await self._stop.wait()
        return self._stop.is_set()

    async def _api(self, action: str, path: str, body: Mapping[str, Any]) -> None:
        await self._steady.wait()
        try:
            status, answer = await self._center.api("POST", path, body)
        except (OSError, ValueError) as exc:
            self._report.problems.append(f"API {path}: no answer ({exc})")
            return
        self._report.actions[f"{action} {status}"] += 1
        if status >= 500:
            self._report.problems.append(f"API {path} {dict(body)}: {status} {answer}")

    # ------------------------------------------------------------------ the end

    async def _settle(self) -> None:
        """Agents log out and the campaign pauses (so that nothing new is dialled), everyone
        hangs up; the daemon winds every call up."""
        for agent_id in self._phones:
            await self._api("logout", f"/agents/{agent_id}/logout", {})
        if self._campaign:
            await self._api("campaign pause", f"/campaigns/{SOAK_CAMPAIGN}/pause", {})
        for phone in [*self._phones.values(), *self._others, *self._outside.values()]:
            if phone.current_channel is not None:
                with contextlib.suppress(CallCenterError):
                    await phone.hangup()
        for line in self._open_lines.values():
            if line.state != "ended":
                with contextlib.suppress(CallCenterError):
                    await line.hangup()
        board = self._center.daemon.switchboard
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                await board.wait_idle()
                writer = self._center.daemon.recorder.writer
                # Polled: the demo PBX's channel table and the writer's queue have no
                # event to wait on.
                while (  # noqa: ASYNC110
                    not board.pbx_up or self._center.pbx.channels or writer.pending
                ):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            pass

    def _gone_unseen(self, call_id: str) -> bool:
        """Whether the caller hung up before the daemon could see the call: at once, or
        while the PBX link was down (or the moment it came back)."""
        life = self._lives.get(call_id)
        if life is None:
            return False
        dialled, gone = life
        if gone - dialled < HAND_OVER_SECONDS:
            return True
        return any(cut <= gone <= back + TAKE_BACK_SECONDS for cut, back in self._cuts)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        said = str(context.get("exception") or context.get("message"))
        # Which task or future: "Task was destroyed but it is pending!" says nothing more.
        whose = context.get("task") or context.get("future")
        self._loop_errors.append(f"{said} ({whose!r})" if whose is not None else said)

    def _check_left(self, callbacks: Sequence[QueueCallback], leads: Sequence[LeadRecord]) -> None:
        """What the daemon and the PBX still hold once everyone is gone, and whether the
        daemon and its records agree on the callbacks promised and the leads."""
        problems = self._report.problems
        daemon = self._center.daemon
        for call_id in daemon.switchboard.active:
            problems.append(f"call {call_id}: still handled by the daemon")
        for agent in daemon.router.agents.values():
            if str(agent.state) in ("ringing", "on_call"):
                problems.append(f"agent {agent.id}: left {agent.state}")
        for channel in self._center.pbx.channels.values():
            problems.append(f"PBX channel {channel.name}: left up")
        held = {c["call_id"] for c in daemon.switchboard.callbacks.waiting()}
        problems.extend(check_promises(held, callbacks, leads))

    def _check(
        self, rows: Sequence[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]]
    ) -> None:
        report = self._report
        report.records = len({row["uniqueid"] for row in rows})
        unseen = {
            call_id
            for call_id in self._placed
            if call_id not in self._seen and self._gone_unseen(call_id)
        }
        report.unseen = len(unseen)
        expected = [call_id for call_id in self._placed if call_id not in unseen]
        problems, report.ended_by = check_records(expected, rows)
        placed = set(self._placed)
        report.problems.extend(check_other_records(placed, rows))
        report.talked = sum(1 for row in rows if row["uniqueid"] in placed and row["agent"])
        others = {str(r["uniqueid"]): bool(r["agent"]) for r in rows if r["uniqueid"] not in placed}
        report.other_calls = len(others)
        report.other_talked = sum(others.values())
        report.problems.extend(problems)
        problems, report.warnings = check_logs(entries)
        report.recoveries = count_recoveries(entries)
        report.problems.extend(problems)
        report.problems.extend(f"asyncio: {error}" for error in self._loop_errors)


async def soak_center(center: Center, plan: SoakPlan, transport: str) -> SoakReport:
    """Run one soak against ``center`` (its daemon and demo PBX already started)."""
    return await Soak(center, plan, transport).run()


def soak_settings(
    settings: Mapping[str, Any],
    config: CallCenterConfig,
    workdir: Path,
    pbx: str,
    *,
    campaign_mode: str = "progressive",
    agents: int = 0,
) -> dict[str, Any]:
    """The config file's ``settings`` as a soak runs them: its records, recordings and
    messages in ``workdir``; its campaigns replaced by the soak's own (their leads are
    real people): :data:`SOAK_CAMPAIGN` in ``campaign_mode`` for the first queue, calling
    :data:`OUTSIDE_NUMBERS` as the config calls callers back; without MQTT or webhooks
    (the soak's events are not the centre's); on FreeSWITCH with busy lamps as the demo
    FreeSWITCH's presence ids; with ``agents`` of the soak's own (:data:`SOAK_AGENTS`
    onwards, see :attr:`SoakPlan.agents`)."""
    acd: dict[str, Any] = {"recordings_folder": str(workdir / "recordings")}
    lamps = freeswitch_lamps(config)
    if pbx == "freeswitch" and lamps is not None:
        acd["blf"] = lamps
    kept = {k: v for k, v in settings.items() if k not in ("campaigns", "webhooks", "mqtt")}
    soak = merge(
        kept,
        {
            "records": {"cdr_path": str(workdir / "cdr.sqlite3"), "postgres": None},
            "ivr": {"voicemail_folder": str(workdir / "voicemail")},
            "acd": acd,
            # Room legs left alone by a restart go at two looks in a row: within the
            # settling, not the default's minute.
            "pbx": {"stranded_sweep": 1},
        },
    )
    if agents:
        added = [str(SOAK_AGENTS + n) for n in range(agents)]
        skills = dict.fromkeys(config.acd.skills, 5)
        soak["agents"] = {
            **soak.get("agents", {}),
            **{
                agent: {
                    "name": f"Soak Agent {agent}",
                    "device": f"PJSIP/{agent}",
                    "logged_in": True,
                    "skills": skills,
                    **({"pin": "4242"} if n % 2 else {}),
                }
                for n, agent in enumerate(added)
            },
        }
        soak["queues"] = {
            name: {**queue, "agents": [*queue.get("agents", []), *added]}
            for name, queue in soak.get("queues", {}).items()
        }
    if config.queues:
        leads = workdir / "soak-leads.csv"
        first = [f"{number},soak-0-{number}" for number in OUTSIDE_NUMBERS[:5]]
        leads.write_text("\n".join(["number,id", *first]) + "\n", encoding="utf-8")
        soak["campaigns"] = {
            SOAK_CAMPAIGN: {
                "queue": next(iter(config.queues)),
                "mode": campaign_mode,
                "leads": str(leads),
                "dial": config.acd.callback_dial or "PJSIP/${number}@trunk",
                "allow": ["_555XXXX"],
                "ring_timeout": 6,
                "attempts": 2,
                "retry_delay": 3,
                "preview_seconds": 3,
                "drop_prompt": "soak-sorry",
                "lines": 3,
                "enabled": True,
            }
        }
    return soak


def run_soak(
    config_path: str | None,
    plan: SoakPlan,
    *,
    pbx: str = "asterisk",
    agi: str = "fastagi",
    out: TextIO | None = None,
) -> int:
    """``callcenter soak``: the soak on the demo PBX with the config at ``config_path``
    (default: the example); prints the report. Returns the exit status: 0 without
    problems, 1 with some (or an invalid config)."""
    stream = out if out is not None else sys.stdout
    path = Path(config_path) if config_path else EXAMPLE
    configure_logging("warning", "console", stream=sys.stderr)
    config = load_demo_config(path)
    if config is None:
        return 1
    base = yaml.safe_load(path.read_text(encoding="utf-8"))
    transport: Transport = (
        ("esl-inbound" if agi != "esl-outbound" else "esl-outbound")
        if pbx == "freeswitch"
        else ("asyncagi" if agi == "asyncagi" else "fastagi")
    )

    async def go() -> SoakReport:
        with tempfile.TemporaryDirectory(prefix="callcenter-soak-") as folder:
            workdir = Path(folder)
            async with running_center(
                workdir,
                transport=transport,
                base=soak_settings(
                    base,
                    config,
                    workdir,
                    pbx,
                    campaign_mode=CAMPAIGN_MODES[plan.seed % 3],
                    agents=plan.agents,
                ),
                prompt_seconds=0.3,
                resume=False,
            ) as center:
                print(
                    f"soak: {plan.seconds:g} s of random calls on the demo {pbx} ({transport}) "
                    f"through {path}",
                    file=stream,
                    flush=True,
                )
                return await soak_center(center, plan, transport)

    report = asyncio.run(_unless_hung(go(), plan.seconds + HUNG_AFTER))
    if report is None:
        return 1
    print(report.format(), file=stream)
    return 1 if report.problems else 0


async def _unless_hung(
    soak: Coroutine[Any, Any, SoakReport],
    limit: float,
    *,
    grace: float = SETTLE_SECONDS,
    bail: Callable[[int], object] = os._exit,
) -> SoakReport | None:
    """Run ``soak``; None when it is still running after ``limit`` seconds: where each task
    waits is printed (on standard error, for a bug report) and the soak is cancelled. One
    that does not end within ``grace`` seconds of that either is left with ``bail(1)``
    (the process ends: asyncio would wait for it forever)."""
    task = asyncio.ensure_future(soak)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if done:
        return task.result()
    print(
        f"soak: hung, still running {limit:g} s after it began; where its tasks wait:",
        file=sys.stderr,
    )
    for other in asyncio.all_tasks():
        if other is not asyncio.current_task():
            other.print_stack(limit=12, file=sys.stderr)
    sys.stderr.flush()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        print("soak: its tasks do not end when cancelled either", file=sys.stderr, flush=True)
        bail(1)
    elif not task.cancelled():
        task.exception()
    return None
