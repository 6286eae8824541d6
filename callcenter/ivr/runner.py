"""One call walking an IVR flow: plays prompts, reads digits, follows the graph.

:class:`FlowRunner` runs the node kinds of :mod:`callcenter.config.models` on a
:class:`~callcenter.pbx.interface.Call` until the flow hands the caller to a queue, transfers
them, or ends the call (:data:`FlowExit`). Every step is reported to ``on_event``
(:mod:`callcenter.ivr.trace`).

What a caller can count on:

* **Never silence, never a dead line.** Menus, collects and callback offers have a prompt and
  a counter for no input and for invalid input, and a default route once the retries run
  out. A call that runs ``ivr.max_steps_without_input`` nodes without the caller pressing a
  key is ended (``check`` already refuses such loops).
* **Barge-in.** A key pressed during an interruptible prompt (``play`` with ``barge_in``, a
  menu or collect prompt, a retry prompt) is kept and counts as the first key of the next
  input; a barge-in play is skipped while such a key is waiting.
* **The flow it started with.** The runner works on the config snapshot it was given, so a
  reload never changes a call already inside a flow (subflows and gotos included).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from callcenter.config.models import (
    BranchCase,
    BranchNode,
    CallbackNode,
    CallCenterConfig,
    CollectNode,
    GotoNode,
    HangupNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueFiguresNode,
    QueueNode,
    ReturnNode,
    ScheduleNode,
    SetNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
)
from callcenter.errors import CallHungUp, CommandFailed, PBXConnectionError, PBXError
from callcenter.ivr.calendar import (
    OpeningHours,
    date_listed,
    in_ranges,
    local_time,
    open_spec,
    parse_days,
    public_holiday,
)
from callcenter.ivr.lookup import Fetcher, LookupFailed, LookupRequest, extract, fetch_json
from callcenter.ivr.trace import (
    CallbackTaken,
    Decision,
    DigitsTaken,
    InputWanted,
    IvrListener,
    NodeEntered,
    VariableSet,
    VoicemailRecorded,
)
from callcenter.ivr.values import QUEUE_FIGURES, matches_any, render, render_url
from callcenter.pbx.interface import Call

log = structlog.get_logger(__name__)

MAX_STEPS = 1000
"""Nodes one call may visit in all (a last guard; input keeps resetting the other one)."""
MAX_REPEATS = 5
"""Times a caller may replay one menu with its repeat key before it counts as invalid."""
KEYS = "0123456789*#"
_NUMBER = re.compile(r"\+?[0-9*#]+")
_MASK = "***"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock of the runner."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ToQueue:
    """The flow handed the caller to a queue."""

    queue: str
    priority: int
    skills: tuple[str, ...] = ()
    agent: str = ""
    """The agent offered this caller first (the node's ``agent_from``), "" for none."""
    agent_wait: float = 0.0
    """Seconds the caller waits for ``agent`` alone while they are busy."""
    head_start: float = 0.0
    """Seconds the caller is served as if they had waited longer (the node's)."""


@dataclass(frozen=True, slots=True)
class Transferred:
    """The flow transferred the caller to ``number`` (the call left our control)."""

    number: str
    context: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """The flow ended the call (``reason``: flow, voicemail, loop, transfer-failed...)."""

    reason: str


FlowExit = ToQueue | Transferred | Hangup


@dataclass(frozen=True, slots=True)
class _Go:
    """Continue at ``node`` (in ``flow``, default: the current one)."""

    node: str
    digits: str = ""
    consumed: bool = False
    flow: str | None = None


@dataclass(frozen=True, slots=True)
class _Call:
    """Run ``flow`` as a subflow; come back to ``back`` of the current flow."""

    flow: str
    back: str


@dataclass(frozen=True, slots=True)
class _Return:
    pass


_Step = _Go | _Call | _Return | ToQueue | Transferred | Hangup


def _ignore(_event: object) -> None:
    return None


@dataclass(frozen=True, slots=True)
class QueueLook:
    """A queue's state as a branch case sees it (``queue:`` and its tests)."""

    waiting: int = 0
    """Callers waiting in it."""
    free: int = 0
    """Agents free for a new caller now."""
    staffed: int = 0
    """Members logged in and not paused."""
    expected_wait: float | None = None
    """Estimated seconds a caller joining now would wait (None: nothing to go on)."""
    closed: bool = False
    """The queue's own opening hours (``opening``) say it is closed now."""


def _nothing_known(_queue: str) -> QueueLook:
    return QueueLook()


class FlowRunner:
    """Walks one call through the flows of ``config`` (a snapshot the call keeps).

    ``clock`` gives "now" for schedules and time branches (``callcenter simulate --at``);
    ``variables``: what the call brought (the dialplan's ``var_`` parameters);
    ``fetch`` runs lookups (default: real HTTP); ``voicemail_root`` overrides the resolved
    ``ivr.voicemail_folder``.
    """

    def __init__(
        self,
        call: Call,
        config: CallCenterConfig,
        *,
        on_event: IvrListener = _ignore,
        clock: Clock = utc_now,
        fetch: Fetcher = fetch_json,
        voicemail_root: Path | None = None,
        switches: Mapping[str, bool] | None = None,
        queue_look: Callable[[str], QueueLook] = _nothing_known,
        number_lists: Mapping[str, Sequence[str]] | None = None,
        variables: Mapping[str, str] | None = None,
        link_back: Callable[[PBXConnectionError], Awaitable[bool]] | None = None,
    ) -> None:
        self.call = call
        self.link_back = link_back
        """Waits for the PBX link after a node's command could not be sent (True: back,
        the node runs again); None: such a node fails the walk."""
        self.switches: Mapping[str, bool] = switches if switches is not None else {}
        """Which of ``ivr.switches`` are on now (a branch case's ``switch``)."""
        self.queue_look = queue_look
        """A queue's state now (a branch case's ``queue:``); default: nothing known."""
        self.number_lists: Mapping[str, Sequence[str]] = (
            number_lists if number_lists is not None else config.ivr.number_lists
        )
        """The number lists a branch case's ``caller_list`` looks in (default: the
        config's; the switchboard adds the numbers ops added while the centre runs)."""
        self.config = config
        self.ivr = config.ivr
        self.on_event = on_event
        self.clock = clock
        self.fetch = fetch
        self._voicemail_root = voicemail_root
        info = call.info
        self.language = info.language or self.ivr.default_language
        self.variables: dict[str, str] = {
            "caller_num": info.caller_num,
            "caller_name": info.caller_name,
            "dialed": info.dialed,
            "call_id": info.call_id,
            "language": self.language,
        }
        for name, value in (variables or {}).items():
            # What the call brought (the dialplan's): the engine's own names stay its own.
            self.variables.setdefault(name, value)
        self.private: set[str] = set()
        self.pending = ""
        """A key pressed during an interruptible prompt, not consumed yet."""
        self._stack: list[tuple[str, str]] = []
        self._flow = ""
        self._node = ""
        self._log = log.bind(call_id=info.call_id)

    def voicemail_root(self) -> Path:
        """Where voicemail boxes live (resolved on first use: few calls leave a message)."""
        if self._voicemail_root is None:
            self._voicemail_root = self.config.resolve_path(self.ivr.voicemail_folder)
        return self._voicemail_root

    # ------------------------------------------------------------------ the walk

    async def run(self, flow_name: str) -> FlowExit:
        """Walk ``flow_name`` from its start until the call leaves the IVR.

        Raises ``CallHungUp`` when the caller hangs up on the way.
        """
        flows = self.config.flows
        self._flow, self._node = flow_name, flows[flow_name].start
        digits = ""
        quiet = 0
        for _ in range(MAX_STEPS):
            node = flows[self._flow].nodes[self._node]
            self.on_event(NodeEntered(self._flow, self._node, node.kind, digits))
            step = await self._outlasting(node)
            digits = ""
            if isinstance(step, ToQueue | Transferred | Hangup):
                return step
            if isinstance(step, _Go):
                if step.consumed:
                    quiet = 0
                self._flow = step.flow or self._flow
                self._node, digits = step.node, step.digits
            elif isinstance(step, _Call):
                self._stack.append((self._flow, step.back))
                self._flow, self._node = step.flow, flows[step.flow].start
            elif self._stack:
                self._flow, self._node = self._stack.pop()
            else:
                self._log.warning("ivr_return_outside_subflow", flow=self._flow, node=self._node)
                return Hangup("return")
            quiet += 1
            if quiet > self.ivr.max_steps_without_input:
                break
        self._log.warning("ivr_step_budget_exhausted", flow=self._flow, node=self._node)
        self._decide("the flow ran too long without the caller pressing a key: hang up")
        return Hangup("loop")

    async def _outlasting(self, node: Node) -> _Step:
        """Run ``node``; one whose command could not be sent (the PBX link is down) runs
        again once :attr:`link_back` says the link is back."""
        while True:
            try:
                return await self._run_node(node)
            except PBXConnectionError as exc:
                if self.link_back is None or not await self.link_back(exc):
                    raise

    async def _run_node(self, node: Node) -> _Step:
        if isinstance(node, PlayNode):
            return await self._play(node)
        if isinstance(node, MenuNode):
            return await self._menu(node)
        if isinstance(node, CollectNode):
            return await self._collect(node)
        if isinstance(node, BranchNode):
            return self._branch(node)
        if isinstance(node, ScheduleNode):
            return self._schedule(node)
        if isinstance(node, LanguageNode):
            await self.call.set_language(node.language)
            self.language = node.language
            self._set("language", node.language)
            return _Go(node.next)
        if isinstance(node, SetNode):
            for name, template in node.variables.items():
                self._set(name, render(template, self.variables))
            return _Go(node.next)
        if isinstance(node, LookupNode):
            return await self._lookup(node)
        if isinstance(node, QueueFiguresNode):
            return self._queue_figures(node)
        if isinstance(node, QueueNode):
            return self._queue(node)
        if isinstance(node, TransferNode):
            return await self._transfer(node)
        if isinstance(node, VoicemailNode):
            return await self._voicemail(node)
        if isinstance(node, CallbackNode):
            return await self._callback(node)
        if isinstance(node, SubflowNode):
            return _Call(node.flow, node.next)
        if isinstance(node, GotoNode):
            flow = node.flow or self._flow
            return _Go(node.node or self.config.flows[flow].start, flow=flow)
        if isinstance(node, ReturnNode):
            return _Return()
        assert isinstance(node, HangupNode)
        if node.prompt:
            await self.call.play([node.prompt])
        return Hangup("flow")

    # ------------------------------------------------------------------ reporting

    def _decide(self, text: str) -> None:
        self.on_event(Decision(self._flow, self._node, text))

    def _took(self, digits: str, verdict: str, *, private: bool = False) -> None:
        shown = _MASK if private and digits else digits
        self.on_event(DigitsTaken(self._flow, self._node, shown, verdict))

    def _want(self, what: str) -> None:
        self.on_event(InputWanted(self._flow, self._node, what))

    def _set(self, name: str, value: str, *, private: bool = False) -> None:
        self.variables[name] = value
        if private:
            self.private.add(name)
        else:
            self.private.discard(name)
        shown = _MASK if private else value
        self.on_event(VariableSet(self._flow, self._node, name, shown, private))

    # ------------------------------------------------------------------ media

    async def _play(self, node: PlayNode) -> _Step:
        if node.barge_in and self.pending:
            self._decide(f'skipped: the caller already pressed "{self.pending}"')
            return _Go(node.next)
        keys = KEYS if node.barge_in else ""
        for item in node.prompts:
            if item.file is not None:
                pressed = await self.call.play([item.file], interrupt_digits=keys)
            else:
                assert item.say is not None and item.value is not None
                pressed = await self._say(item.say, render(item.value, self.variables), keys)
            if pressed:
                self.pending = pressed
                self._decide(f'barge-in: "{pressed}" is kept for the next input')
                break
        return _Go(node.next)

    async def _say(self, kind: str, value: str, keys: str) -> str:
        try:
            if kind == "digits":
                return await self.call.say("digits", value, interrupt_digits=keys)
            if kind == "number":
                return await self.call.say("number", value, interrupt_digits=keys)
            if kind == "date":
                return await self.call.say("date", value, interrupt_digits=keys)
            return await self.call.say("time", value, interrupt_digits=keys)
        except CommandFailed as exc:
            # A value that cannot be said (an empty CRM field...) is skipped, not fatal.
            self._log.warning("ivr_say_failed", kind=kind, error=str(exc))
            self._decide(f"could not say {value!r} as {kind}: skipped")
            return ""

    def _take_pending(self) -> str:
        pressed, self.pending = self.pending, ""
        return pressed

    async def _retry_prompt(self, prompt: str) -> None:
        """Play a failure prompt; a key pressed during it is the next input (barge-in)."""
        pressed = await self.call.play([prompt], interrupt_digits=KEYS)
        if pressed:
            self.pending = pressed

    # ------------------------------------------------------------------ menu

    async def _menu(self, node: MenuNode) -> _Step:
        max_timeouts = node.timeout_retries or node.retries
        max_invalid = node.invalid_retries or node.retries
        timeouts = invalids = repeats = 0
        terminator = "" if "#" in node.choices else "#"
        while True:
            digit = self._take_pending()
            if not digit:
                self._want("menu")
                digit = await self.call.read_digits(
                    node.prompt, max_digits=1, timeout=node.timeout, terminator=terminator
                )
            digit = digit[:1]
            if digit in node.choices:
                self._took(digit, "choice")
                return _Go(node.choices[digit], digits=digit, consumed=True)
            if digit and digit == node.repeat_key and repeats < MAX_REPEATS:
                repeats += 1
                self._took(digit, "repeat")
                continue
            if digit:
                invalids += 1
                self._took(digit, "invalid")
                if invalids >= max_invalid:
                    target = node.on_invalid or node.default
                    self._decide(f"{invalids} wrong key(s): go to {target}")
                    return _Go(target, consumed=True)
                await self._retry_prompt(node.invalid_prompt)
            else:
                timeouts += 1
                self._took("", "timeout")
                if timeouts >= max_timeouts:
                    target = node.on_timeout or node.default
                    self._decide(f"no key {timeouts} time(s): go to {target}")
                    return _Go(target)
                await self._retry_prompt(node.timeout_prompt)

    # ------------------------------------------------------------------ collect

    async def _collect(self, node: CollectNode) -> _Step:
        max_timeouts = node.timeout_retries or node.retries
        max_invalid = node.invalid_retries or node.retries
        timeouts = invalids = 0
        while True:
            value = await self._read_collect(node)
            problem = _collect_problem(node, value)
            if problem is None and node.confirm is not None:
                answer = await self._confirm(node, value)
                if answer == "timeout":
                    problem = ""
                elif answer == "no":
                    problem = "the caller asked to enter it again"
            if problem is None:
                self._took(value, "valid", private=node.private)
                self._set(node.variable, value, private=node.private)
                shown = _MASK if node.private else value
                return _Go(node.next, digits=shown, consumed=True)
            if problem == "":
                timeouts += 1
                self._took("", "timeout")
                if timeouts >= max_timeouts:
                    self._decide(f"nothing entered {timeouts} time(s): go to {node.default}")
                    return _Go(node.default)
                await self._retry_prompt(node.timeout_prompt)
                continue
            invalids += 1
            self._took(value, "invalid", private=node.private)
            self._decide(problem)
            if invalids >= max_invalid:
                self._decide(f"{invalids} invalid input(s): go to {node.default}")
                return _Go(node.default, consumed=True)
            if problem != "the caller asked to enter it again":
                await self._retry_prompt(node.invalid_prompt)

    async def _read_collect(self, node: CollectNode) -> str:
        terminator = node.terminator or ""
        inter = node.inter_digit_timeout or node.timeout
        digits = self._take_pending()
        if digits:
            if digits == terminator:
                return ""
            if len(digits) < node.max_digits:
                digits += await self.call.read_digits(
                    None,
                    max_digits=node.max_digits - len(digits),
                    timeout=inter,
                    terminator=terminator,
                )
            return _strip(digits, terminator)
        self._want("collect")
        if inter == node.timeout or node.max_digits == 1:
            digits = await self.call.read_digits(
                node.prompt, max_digits=node.max_digits, timeout=node.timeout, terminator=terminator
            )
            return _strip(digits, terminator)
        # Different first-key and inter-key timeouts: two reads. (On Asterisk a key pressed in
        # the sub-millisecond gap between the two AGI commands could be missed.)
        first = _strip(
            await self.call.read_digits(
                node.prompt, max_digits=1, timeout=node.timeout, terminator=terminator
            ),
            terminator,
        )
        if not first:
            return ""
        rest = await self.call.read_digits(
            None, max_digits=node.max_digits - 1, timeout=inter, terminator=terminator
        )
        return first + _strip(rest, terminator)

    async def _confirm(self, node: CollectNode, value: str) -> str:
        """Read ``value`` back; ``yes``, ``no`` or ``timeout``."""
        confirm = node.confirm
        assert confirm is not None
        keys = confirm.yes + confirm.no
        self._want("confirm")
        pressed = await self.call.play([confirm.prompt], interrupt_digits=keys)
        if not pressed:
            pressed = await self._say(confirm.say, value, keys)
        if not pressed:
            pressed = await self.call.read_digits(
                confirm.question, max_digits=1, timeout=confirm.timeout, terminator=""
            )
        if pressed[:1] == confirm.yes:
            self._took(pressed[:1], "confirmed")
            return "yes"
        if pressed:
            self._took(pressed[:1], "rejected")
            return "no"
        return "timeout"

    # ------------------------------------------------------------------ decisions

    def _branch(self, node: BranchNode) -> _Step:
        for i, case in enumerate(node.cases, 1):
            reason = self._case_holds(case)
            if reason is not None:
                self._decide(f"case {i} holds ({reason}): go to {case.goto}")
                return _Go(case.goto)
        self._decide(f"no case holds: go to {node.default}")
        return _Go(node.default)

    def _case_holds(self, case: BranchCase) -> str | None:
        """Why every condition of ``case`` holds, or None when one does not."""
        reasons: list[str] = []
        if case.variable is not None:
            value = self.variables.get(case.variable, "")
            if case.equals is not None and value != render(case.equals, self.variables):
                return None
            if case.one_of is not None and value not in {
                render(v, self.variables) for v in case.one_of
            }:
                return None
            if case.matches is not None and re.fullmatch(case.matches, value) is None:
                return None
            if case.present is not None and bool(value) != case.present:
                return None
            shown = _MASK if case.variable in self.private else value
            reasons.append(f"{case.variable}={shown!r}")
        caller = self.variables["caller_num"]
        if case.caller is not None:
            if not matches_any(case.caller, caller):
                return None
            reasons.append(f"caller {caller}")
        if case.caller_list is not None:
            if not matches_any(self.number_lists.get(case.caller_list, ()), caller):
                return None
            reasons.append(f"caller {caller} on list {case.caller_list}")
        if case.dialed is not None:
            if not matches_any(case.dialed, self.variables["dialed"]):
                return None
            reasons.append(f"dialled {self.variables['dialed']}")
        if case.days is not None or case.hours is not None or case.dates is not None:
            zone = case.timezone or self.ivr.timezone
            now = local_time(self.clock(), zone)
            if case.days is not None and not any(
                now.weekday() in (parse_days(spec) or ()) for spec in case.days
            ):
                return None
            if case.hours is not None and not in_ranges(case.hours, now.time()):
                return None
            if case.dates is not None and not date_listed(case.dates, now.date()):
                return None
            reasons.append(f"{now:%a %Y-%m-%d %H:%M} {zone}")
        if case.switch is not None:
            if not self.switches.get(case.switch, False):
                return None
            reasons.append(f"switch {case.switch} on")
        if case.queue is not None:
            seen = _queue_holds(case, self.queue_look(case.queue))
            if seen is None:
                return None
            reasons.append(seen)
        return ", ".join(reasons)

    def _schedule(self, node: ScheduleNode) -> _Step:
        zone = node.timezone or self.ivr.timezone
        now = local_time(self.clock(), zone)
        when = f"{now:%a %Y-%m-%d %H:%M} {zone}"
        special = OpeningHours(node.hours, special=node.special).special_ranges(now.date())
        if special is not None:
            target = node.open if in_ranges(special, now.time()) else node.closed
            ranges = ", ".join(special) or "closed"
            self._decide(f"a special day ({ranges}) on {when}: go to {target}")
            return _Go(target)
        holiday: str | None = None
        calendar = node.holidays
        if calendar is not None:
            if date_listed(calendar.dates, now.date()):
                holiday = "a closed day listed in the config"
            elif calendar.country is not None:
                holiday = public_holiday(calendar.country, calendar.subdivision, now.date())
        if holiday is not None:
            target = node.holiday or node.closed
            self._decide(f"holiday ({holiday}) on {when}: go to {target}")
            return _Go(target)
        spec = open_spec(node.hours, now)
        if spec is not None:
            ranges = ", ".join(node.hours[spec])
            self._decide(f"open ({spec} {ranges}) on {when}: go to {node.open}")
            return _Go(node.open)
        self._decide(f"closed on {when}: go to {node.closed}")
        return _Go(node.closed)

    # ------------------------------------------------------------------ data dip

    def _queue_figures(self, node: QueueFiguresNode) -> _Step:
        look = self.queue_look(node.queue)
        wait = look.expected_wait
        figures = (
            str(look.waiting),
            str(look.free),
            str(look.staffed),
            "" if wait is None else str(math.ceil(wait / 60)),
            "0" if look.closed else "1",
        )
        for name, value in zip(QUEUE_FIGURES, figures, strict=True):
            self._set(f"{node.into}_{name}", value)
        return _Go(node.next)

    async def _lookup(self, node: LookupNode) -> _Step:
        values = self.variables
        request = LookupRequest(
            method=node.method,
            url=render_url(node.url, values),
            timeout=node.timeout,
            headers={k: render(v, values) for k, v in node.headers.items()},
            body=(
                {k: render(v, values) for k, v in node.body.items()}
                if node.body is not None
                else None
            ),
        )
        try:
            answer = await self.fetch(request)
        except LookupFailed as exc:
            self._log.warning(
                "ivr_lookup_failed", url=_without_query(request.url), error=exc.reason
            )
            self._decide(f"lookup failed ({exc.reason}): go to {node.fallback}")
            return _Go(node.fallback)
        for name, path in node.fields.items():
            self._set(name, extract(answer, path))
        self._decide(f"lookup answered: go to {node.next}")
        return _Go(node.next)

    # ------------------------------------------------------------------ leaving the IVR

    def _queue(self, node: QueueNode) -> _Step:
        priority = node.priority
        if node.priority_from is not None:
            text = self.variables.get(node.priority_from, "").strip()
            try:
                priority = max(-1000, min(1000, int(text)))
            except ValueError:
                if text:
                    self._decide(
                        f"{node.priority_from}={text!r} is not a number: priority {priority}"
                    )
        skills: list[str] = []
        for template in node.skills:
            for skill in render(template, self.variables).split(","):
                if skill.strip() and skill.strip() not in skills:
                    skills.append(skill.strip())
        agent = ""
        if node.agent_from is not None:
            agent = self.variables.get(node.agent_from, "").strip()
        head_start = float(node.head_start)
        if node.head_start_from is not None:
            text = self.variables.get(node.head_start_from, "").strip()
            try:
                head_start = max(0.0, min(86400.0, float(text)))
            except ValueError:
                if text:
                    self._decide(
                        f"{node.head_start_from}={text!r} is not a number: head start "
                        f"{head_start:g} s"
                    )
        queue = node.queue
        if node.queue_from is not None:
            named = self.variables.get(node.queue_from, "").strip()
            if named in self.config.queues:
                queue = named
                self._decide(f"{node.queue_from}={named!r}: queue {named}")
            elif named:
                self._log.warning("ivr_no_such_queue", variable=node.queue_from, queue=named)
                self._decide(f"{node.queue_from}={named!r} is no queue: queue {queue}")
        return ToQueue(queue, priority, tuple(skills), agent, node.agent_wait, head_start)

    async def _transfer(self, node: TransferNode) -> _Step:
        number = render(node.to, self.variables).strip()
        allowed = _NUMBER.fullmatch(number) is not None and matches_any(
            self.ivr.transfer_allow, number
        )
        if not allowed:
            self._log.warning("ivr_transfer_refused", number=number, node=self._node)
            self._decide(f'transfer to "{number}" refused: not in ivr.transfer_allow')
            return self._transfer_fallback(node, "transfer-refused")
        if node.prompt:
            await self.call.play([node.prompt])
        context = self.ivr.transfer_context
        try:
            await self.call.redirect(context, number, 1)
        except CallHungUp:
            raise
        except PBXError as exc:
            self._log.warning("ivr_transfer_failed", number=number, error=str(exc))
            self._decide(f"transfer to {number} failed ({exc})")
            return self._transfer_fallback(node, "transfer-failed")
        self._decide(f"transferred to {number} ({context},{number},1)")
        return Transferred(number, context)

    def _transfer_fallback(self, node: TransferNode, reason: str) -> _Step:
        if node.fallback is not None:
            return _Go(node.fallback)
        return Hangup(reason)

    async def _voicemail(self, node: VoicemailNode) -> _Step:
        folder = self.voicemail_root() / node.box
        try:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            # The PBX may run elsewhere and own the folder; it reports a failed write itself.
            self._log.info("voicemail_folder_not_created", folder=str(folder), error=str(exc))
        stamp = self.clock().astimezone(UTC).strftime("%Y%m%d-%H%M%S")
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", self.variables["call_id"])
        path = folder / f"{stamp}-{safe_id}"
        if node.prompt:
            await self.call.play([node.prompt])
        self._want("voicemail")
        result = await self.call.record(
            str(path),
            max_seconds=node.max_seconds,
            beep=node.beep,
            silence_seconds=node.silence_seconds or 0.0,
            end_digits=node.end_key or "",
            file_format=node.format,
        )
        if result.ended == "error":
            self._log.error("voicemail_not_recorded", path=result.path)
            self._decide("nothing could be recorded")
            return _Go(node.fallback) if node.fallback is not None else Hangup("voicemail-failed")
        if result.empty:
            # The caller ended it at the tone: no message, and nothing for an agent to call
            # back (the PBX may have written no file at all).
            self._log.info("voicemail_empty", ended=result.ended)
            if result.ended == "hangup":
                raise CallHungUp("the caller hung up at the tone")
            self._decide("nothing was recorded")
            return _Go(node.fallback) if node.fallback is not None else Hangup("voicemail-empty")
        self.on_event(
            VoicemailRecorded(
                self._flow, self._node, node.box, result.path, result.seconds, result.ended
            )
        )
        if result.ended == "hangup":
            raise CallHungUp("the caller hung up after leaving a message")
        if node.next is not None:
            return _Go(node.next, consumed=True)
        return Hangup("voicemail")

    async def _callback(self, node: CallbackNode) -> _Step:
        caller = self.variables["caller_num"].lstrip("+")
        number = caller if _callback_number_ok(node, caller) else ""
        keys = node.confirm_key + node.other_key
        attempts = 0
        while attempts < node.retries:
            if not number:
                self._want("callback-number")
                entered = _strip(
                    await self.call.read_digits(
                        node.enter_prompt,
                        max_digits=node.max_digits,
                        timeout=node.timeout,
                        terminator="#",
                    ),
                    "#",
                )
                if _callback_number_ok(node, entered):
                    self._took(entered, "valid")
                    number = entered
                    continue
                attempts += 1
                self._took(entered, "invalid" if entered else "timeout")
                if entered and attempts < node.retries:
                    await self.call.play([node.invalid_prompt])
                continue
            self._want("callback-confirm")
            pressed = self._take_pending()
            if not pressed:
                pressed = await self.call.play([node.prompt], interrupt_digits=keys)
            if not pressed:
                pressed = await self._say("digits", number, keys)
            if not pressed:
                pressed = await self.call.read_digits(
                    node.confirm_prompt, max_digits=1, timeout=node.timeout, terminator=""
                )
            pressed = pressed[:1]
            if pressed == node.confirm_key:
                self._took(pressed, "confirmed")
                self._set(node.variable, number)
                self.on_event(CallbackTaken(self._flow, self._node, number, node.queue))
                return _Go(node.next, digits=pressed, consumed=True)
            attempts += 1
            if pressed == node.other_key:
                self._took(pressed, "rejected")
                number = ""
                continue
            self._took(pressed, "invalid" if pressed else "timeout")
            if pressed and attempts < node.retries:
                await self.call.play([node.invalid_prompt])
        self._decide(f"no number confirmed: go to {node.default}")
        return _Go(node.default)


def _queue_holds(case: BranchCase, look: QueueLook) -> str | None:
    """Why ``case``'s tests of its queue hold on ``look``, or None when one does not."""
    said = [f"queue {case.queue}: {look.waiting} waiting, {look.free} agent(s) free"]
    if case.waiting_over is not None and look.waiting <= case.waiting_over:
        return None
    if case.wait_over is not None:
        if look.staffed == 0:
            said.append("nobody staffs it")
        elif look.expected_wait is not None and look.expected_wait > case.wait_over:
            said.append(f"about {round(look.expected_wait)}s to wait")
        else:
            return None
    if case.agents_free is not None and (look.free > 0) != case.agents_free:
        return None
    if case.queue_open is not None:
        if look.closed == case.queue_open:
            return None
        said.append("closed by its hours" if look.closed else "open")
    return ", ".join(said)


def _strip(digits: str, terminator: str) -> str:
    """The digits without a terminator some PBXs return (GET DATA answers ``#`` for '#')."""
    return digits.replace(terminator, "") if terminator else digits


def _collect_problem(node: CollectNode, value: str) -> str | None:
    """Why ``value`` is not acceptable (``""`` for nothing entered), or None."""
    if value == "":
        return ""
    if any(c not in "0123456789*" for c in value):
        return f"{len(value)} key(s) with a key that is not a digit"
    if len(value) < node.min_digits:
        return f"too short: {len(value)} digit(s), at least {node.min_digits}"
    if len(value) > node.max_digits:
        return f"too long: {len(value)} digit(s), at most {node.max_digits}"
    if node.pattern is not None and re.fullmatch(node.pattern, value) is None:
        return "does not match the expected pattern"
    return None


def _callback_number_ok(node: CallbackNode, number: str) -> bool:
    return number.isdigit() and node.min_digits <= len(number) <= node.max_digits


def _without_query(url: str) -> str:
    # Query strings carry caller numbers and tokens: keep them out of the logs.
    return url.split("?", 1)[0]


async def run_flow(
    call: Call,
    config: CallCenterConfig,
    flow: str,
    *,
    on_event: IvrListener = _ignore,
    clock: Clock = utc_now,
    fetch: Fetcher = fetch_json,
) -> FlowExit:
    """Walk ``flow`` of ``config`` on ``call`` (see :class:`FlowRunner`)."""
    runner = FlowRunner(call, config, on_event=on_event, clock=clock, fetch=fetch)
    return await runner.run(flow)
