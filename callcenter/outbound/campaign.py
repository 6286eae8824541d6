"""An outbound campaign: its leads, tried one by one as the queue's agents free up.

Dialling is **progressive** by default: a dial first waits in the campaign's queue for an
agent (behind the callers, at the campaign's ``priority``), and the lead's number is dialled
only once an agent is reserved for it, so nobody who answers waits for an agent. ``lines``
dials may be under way at once. Answered, the call comes back through the dialplan's
callback context (``callback=${CALLCENTER_CALLBACK}``, as queue callbacks do) and is put
through to that agent (:meth:`~callcenter.outbound.dialler.Dialler.dial_lead`).

A **predictive** campaign dials for the queue's free agents without reserving them, as many
dials per free agent as :class:`~callcenter.outbound.pacing.Pacer` allows; a lead who answers
joins the queue ahead of everyone and is put through to the first free agent, or, after
``drop_after`` seconds without one, hears ``drop_prompt`` and is dropped (the try failed as
``abandoned``). A dropped lead is only ever called again progressively, with an agent
reserved (Ofcom: no repeat call within 72 hours without a guaranteed live operator)
(:meth:`~callcenter.outbound.dialler.Dialler.dial_predictive`).

A campaign moves through :class:`CampaignState` by one transition table::

    running  -> paused | closed | finished | stopped
    paused   -> running | stopped
    closed   -> running | paused | finished | stopped     (outside its hours)
    finished -> running | paused | closed | stopped      (leads added at a reload)

Each lead by another (:class:`LeadStatus`)::

    pending  -> dialing | skipped | answered
    dialing  -> retry | answered | failed | pending   (pending: the try never happened;
                                                       retry: also a try a restart cut)
    retry    -> dialing | skipped | answered | failed  (failed: an interrupted last try)
    answered -> retry     (only when the person asked to be called again: a disposition)
    failed   -> retry     (only when ops recycle the campaign: ``campaign recycle``)
    skipped: final

(``pending``/``retry`` -> ``answered``: a dial placed before a restart was answered after
it.) A lead is **skipped** when its number is on the do-not-call list or outside ``allow``;
a try that gets no answer (busy, rang out ...) is retried ``retry_delay`` later (that
reason's own ``retry_delays``, if given) until ``attempts`` are used. A try the daemon
could not make (the PBX link down, the campaign paused before an agent was free, no agent
logged in at all) does not count. Every move is
published as an engine event (:mod:`callcenter.events`), which
:mod:`callcenter.records.campaigns` keeps in the ``campaign_leads`` table; a restarted
daemon takes the leads' progress back from there (:meth:`Campaign.prepare`), so nobody is
called twice for one try or after answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import structlog

from callcenter.config.models import CallCenterConfig, CampaignConfig
from callcenter.errors import ConfigError, EngineError, IllegalTransition, UnknownLead
from callcenter.events import (
    CallDisposed,
    CampaignAnswered,
    CampaignAttemptFailed,
    CampaignLeadAdded,
    CampaignLeadRecycled,
    CampaignLeadRescheduled,
    CampaignLeadSkipped,
    CampaignStateChanged,
    EngineEvent,
    EventBus,
)
from callcenter.ivr.calendar import date_listed, local_time, open_spec, public_holiday
from callcenter.ivr.values import matches_any, number_matches
from callcenter.outbound.leads import Lead, load_do_not_call, load_leads, normalise_number
from callcenter.outbound.pacing import ABANDON_WINDOW, Pacer
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

NOT_MADE: Final = frozenset({"pbx-down", "no-pbx", "no-agents"})
"""Reasons of a try that did not happen: the lead's attempts are not used."""
DO_NOT_CALL: Final = "do-not-call"
NOT_ALLOWED: Final = "not-allowed"
REMOVED: Final = "removed"
"""Result of a lead taken off the campaign while it runs (``campaign remove-lead``)."""
ORIGIN_PREFIX: Final = "campaign:"

RECYCLED: Final = "recycled"
"""A failed lead tried again, its tries counted afresh (``campaign recycle``)."""
ABANDONED: Final = "abandoned"
"""A try answered by a person the predictive dialler had no agent for (dropped)."""
MACHINE: Final = "machine"
"""A try answered by an answering machine (the dialplan's detection said so)."""
CALLBACK: Final = "callback"
"""Result of a lead whose person asked an agent to be called again at a time."""
AGENT_SKIPPED: Final = "agent-skipped"
"""Preview: the agent skipped the lead (no try made; it waits ``retry_delay``)."""
INTERRUPTED: Final = "interrupted"
"""A try the previous daemon was making when it stopped (the lead's record said
``dialing``): its outcome is not known, and it counts as a try. An answer after the restart
still reaches an agent; else, after its ring timeout and :data:`RESTORED_DIALING_GRACE`,
the lead is tried again, or given up (``failed``) when that was its last try."""

WAIT_AFTER_NOT_MADE = 5.0
"""Seconds before a lead whose try could not be made is tried again."""
HOURS_CHECK = 30.0
"""Seconds between two looks at the clock while a campaign is outside its hours."""
PACING_CHECK = 1.0
"""Seconds between two counts of the free agents by a predictive campaign (besides the
count when an agent becomes free, :meth:`Campaign.agent_free`)."""
PACING_GAP = 0.1
"""Seconds a predictive campaign waits at least between two counts of the free agents."""
RESTORED_DIALING_GRACE = 10.0
"""Seconds, beyond its ring timeout, before a lead being dialled when the previous daemon
stopped is tried again (its phone may still ring, and an answer is put through)."""


class CampaignState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CLOSED = "closed"
    FINISHED = "finished"
    STOPPED = "stopped"


_S = CampaignState
_MOVES: Final[Mapping[CampaignState, frozenset[CampaignState]]] = {
    _S.RUNNING: frozenset({_S.PAUSED, _S.CLOSED, _S.FINISHED, _S.STOPPED}),
    _S.PAUSED: frozenset({_S.RUNNING, _S.STOPPED}),
    _S.CLOSED: frozenset({_S.RUNNING, _S.PAUSED, _S.FINISHED, _S.STOPPED}),
    _S.FINISHED: frozenset({_S.RUNNING, _S.PAUSED, _S.CLOSED, _S.STOPPED}),
    _S.STOPPED: frozenset(),
}


class LeadStatus(enum.StrEnum):
    PENDING = "pending"
    DIALING = "dialing"
    RETRY = "retry"
    ANSWERED = "answered"
    FAILED = "failed"
    SKIPPED = "skipped"


_L = LeadStatus
_LEAD_MOVES: Final[Mapping[LeadStatus, frozenset[LeadStatus]]] = {
    _L.PENDING: frozenset({_L.DIALING, _L.SKIPPED, _L.ANSWERED}),
    _L.DIALING: frozenset({_L.RETRY, _L.ANSWERED, _L.FAILED, _L.PENDING}),
    _L.RETRY: frozenset({_L.DIALING, _L.SKIPPED, _L.ANSWERED, _L.FAILED}),
    _L.ANSWERED: frozenset({_L.RETRY}),
    _L.FAILED: frozenset({_L.RETRY, _L.SKIPPED}),
    _L.SKIPPED: frozenset(),
}
FINAL: Final = frozenset({_L.ANSWERED, _L.FAILED, _L.SKIPPED})


def caller_id_for(settings: CampaignConfig, number: str) -> str:
    """The caller ID a lead of ``number`` sees: the first of ``local_caller_ids`` whose
    pattern it matches, else the campaign's ``caller_id``."""
    for pattern, caller_id in settings.local_caller_ids.items():
        if number_matches(pattern, number):
            return caller_id
    return settings.caller_id


def lead_origin(campaign: str, lead: str) -> str:
    """The id a lead's dial goes by in its queue and its callback token."""
    return f"{ORIGIN_PREFIX}{campaign}:{lead}"


def parse_lead_origin(origin: str) -> tuple[str, str] | None:
    """(campaign, lead) of a :func:`lead_origin`, or None when ``origin`` is not one."""
    if not origin.startswith(ORIGIN_PREFIX):
        return None
    campaign, sep, lead = origin.removeprefix(ORIGIN_PREFIX).partition(":")
    return (campaign, lead) if sep and campaign and lead else None


@dataclass(frozen=True, slots=True)
class LeadCall:
    """One try of one lead, as the switchboard dials it."""

    campaign: str
    lead: str
    number: str
    queue: str
    device: str
    """What the PBX dials: the campaign's ``dial`` with the number in it."""
    caller_id: str
    ring_timeout: float
    priority: int
    attempt: int
    data: tuple[tuple[str, str], ...] = ()
    drop_after: float = 2.0
    """Predictive: seconds the answered lead may wait for an agent."""
    drop_prompt: str | None = None
    """Predictive: what the lead hears when dropped."""
    context: str = ""
    """Dialplan context the answered call goes to ("": acd.callback_context)."""
    machine: str = "hangup"
    """What to do when the dialplan says a machine answered: hangup, message, agent."""
    machine_prompt: str | None = None
    """``machine: message``: the message left."""
    preview_seconds: float = 0.0
    """Preview: seconds the reserved agent has to decide (0: no preview, dial at once)."""
    preview_timeout: str = "dial"
    """Preview: ``dial`` or ``skip`` when the agent decides nothing in time."""

    @property
    def origin(self) -> str:
        return lead_origin(self.campaign, self.lead)


class Dialer(Protocol):
    """What a campaign needs from the switchboard."""

    @property
    def pbx_up(self) -> bool: ...

    async def dial_lead(self, call: LeadCall, reserved: Callable[[], None]) -> str:
        """Wait for an agent of ``call.queue``, call ``reserved()``, dial the lead; ``""``
        once they answered (their call took the agent), else why not (see NOT_MADE)."""
        ...

    async def dial_predictive(
        self, call: LeadCall, placed: Callable[[], None], answered: Callable[[], None]
    ) -> str:
        """Dial the lead at once (``placed()``), no agent reserved; ``answered()`` when they
        pick up. ``""`` once an agent took them, ``abandoned`` when they were dropped (or
        hung up) without one, else why not."""
        ...

    def free_agents(self, queue: str) -> int:
        """Agents of ``queue`` free for a new call, less the callers waiting for one."""
        ...


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """A lead's progress as the records keep it (``campaign_leads``)."""

    campaign: str
    lead: str
    number: str
    status: str
    attempts: int
    result: str = ""
    call_id: str = ""
    retry_at: datetime | None = None
    updated: datetime | None = None
    dropped_at: datetime | None = None
    """When a predictive dial they answered was dropped (once at most: they are called
    only with an agent after that)."""


@dataclass(slots=True)
class LeadProgress:
    lead: Lead
    status: LeadStatus = LeadStatus.PENDING
    attempts: int = 0
    due: float = 0.0
    """Monotonic time before which a ``retry`` (or a restored ``pending``) is not tried."""
    result: str = ""
    ringing: bool = False
    """Its dial has an agent (or is predictive) and its phone rings (a pause does not cut
    it)."""
    live: bool = False
    """Predictive: they answered the dial being made (and wait for an agent)."""
    dropped: bool = False
    """A predictive dial they answered was dropped: called again only with an agent."""
    answered_attempts: int = 0
    """The tries it took to answer, kept while a callback they asked for is pending."""
    interrupted_at: datetime | None = None
    """Restored from a ``dialing`` record (:data:`INTERRUPTED`): when it is tried again,
    until :meth:`Campaign.install` has told the records."""

    def move(self, new: LeadStatus) -> None:
        if new not in _LEAD_MOVES[self.status]:
            raise IllegalTransition(f"lead {self.lead.id}: {self.status} -> {new}")
        self.status = new


@dataclass(slots=True)
class _Attempt:
    progress: LeadProgress
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class LeadLists:
    """A campaign's lead file and do-not-call numbers, as read."""

    leads: list[Lead]
    do_not_call: frozenset[str] = field(default_factory=frozenset)


def read_lists(config: CallCenterConfig, campaign: CampaignConfig) -> LeadLists:
    """The campaign's lead and do-not-call files, read now (raises ConfigError)."""
    leads = load_leads(config.resolve_path(campaign.leads))
    dnc = (
        load_do_not_call(config.resolve_path(campaign.do_not_call))
        if campaign.do_not_call
        else frozenset()
    )
    return LeadLists(leads, dnc)


class Campaign:
    """One campaign's leads and the task that dials them (see the module doc)."""

    def __init__(
        self,
        campaign_id: str,
        config: CallCenterConfig,
        dialer: Dialer,
        bus: EventBus,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.id = campaign_id
        self.config = config
        self.settings = config.campaigns[campaign_id]
        self.dialer = dialer
        self.bus = bus
        self.clock = clock
        self.state = CampaignState.PAUSED if not self.settings.enabled else CampaignState.RUNNING
        self.why = "config" if not self.settings.enabled else ""
        self.leads: dict[str, LeadProgress] = {}
        self._counts: Counter[LeadStatus] = Counter()
        """Leads by status, kept as they move (the figures are read every second)."""
        self._order: dict[str, deque[str]] = {}
        """Time zone -> leads to try there (never tried, or a retry that fell due while
        that zone was outside the hours), in file order."""
        self._zones: set[str] = {self.zone}
        """Every zone a lead lives in (a lead without one: the campaign's)."""
        self._retries: list[tuple[float, int, str]] = []
        """(due, seq, lead) of leads waiting to be tried again: a heap."""
        self._seq = 0
        self._do_not_call: frozenset[str] = frozenset()
        self._attempts: dict[str, _Attempt] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(campaign=campaign_id)
        self.dialled = 0
        """Tries made since the daemon started."""
        self.pacer: Pacer | None = None
        self._pace(self.settings)
        self.asked_not: set[str] = set()
        """Numbers whose people asked agents never to be called again (shared by every
        campaign: :attr:`Campaigns.asked_not`)."""
        self.added: dict[str, Lead] = {}
        """Leads added while the campaign runs (:meth:`add_lead`), by id: laid over the
        lead file at every read of it (:attr:`Campaigns.added`)."""

    # ------------------------------------------------------------------ set-up

    def _with_added(self, lists: LeadLists) -> LeadLists:
        """``lists`` with the leads added while the campaign ran (the file's win by id)."""
        added = dict(self.added)  # one copy: prepare may run in a thread meanwhile
        if not added:
            return lists
        listed = {lead.id for lead in lists.leads}
        extra = [lead for lead_id, lead in added.items() if lead_id not in listed]
        return LeadLists([*lists.leads, *extra], lists.do_not_call) if extra else lists

    def add_lead(self, lead: Lead, *, via: str = "cli") -> dict[str, Any]:
        """Add ``lead`` while the campaign runs (a CRM's new contact): called as the file's
        leads are (the do-not-call list and ``allow`` apply when its turn comes), kept
        across reloads and restarts. EngineError when the campaign has a lead of that id."""
        if lead.id in self.leads or lead.id in self.added:
            raise EngineError(f"campaign {self.id} has a lead {lead.id!r} already")
        self.added[lead.id] = lead
        p = LeadProgress(lead)
        self.leads[lead.id] = p
        self._counts[p.status] += 1
        zone = lead.timezone or self.zone
        self._zones.add(zone)
        line = self._order.setdefault(zone, deque())
        # Its place by priority: ahead of the lower ones, after its equals (added last).
        at = next((i for i, other in enumerate(line) if self._rank(other) > lead.rank), len(line))
        line.insert(at, lead.id)
        self.bus.publish(
            CampaignLeadAdded(
                campaign=self.id,
                lead=lead.id,
                number=lead.number,
                timezone=lead.timezone,
                data=dict(lead.data),
                via=via,
                priority=lead.priority,
            )
        )
        self._log.info("campaign_lead_added", lead=lead.id, via=via)
        self._changed.set()
        return {"campaign": self.id, "lead": lead.id, "number": lead.number, "status": "pending"}

    def remove_lead(self, lead_id: str, *, via: str = "cli") -> dict[str, Any]:
        """Take lead ``lead_id`` off the campaign while it runs (the CRM reached them
        another way, they became a customer): never called again, a failed lead not
        recycled either, kept so across reloads and restarts (skipped, result
        ``removed``). UnknownLead for an id the campaign does not have; EngineError while
        it is being dialled or once it was answered."""
        p = self.leads.get(lead_id)
        if p is None:
            raise UnknownLead(f"campaign {self.id} has no lead {lead_id!r}")
        if p.status is LeadStatus.DIALING or lead_id in self._attempts:
            raise EngineError(f"lead {lead_id} is being dialled: take it off once the try ends")
        if p.status in (LeadStatus.ANSWERED, LeadStatus.SKIPPED):
            raise EngineError(f"lead {lead_id} is {p.status.value} ({p.result}): not called again")
        self._move_lead(p, LeadStatus.SKIPPED)
        p.result = REMOVED
        # Its retry time must not keep a campaign with nothing else to do from finishing.
        self._retries = [entry for entry in self._retries if entry[2] != lead_id]
        heapq.heapify(self._retries)
        self.bus.publish(
            CampaignLeadSkipped(
                campaign=self.id,
                lead=lead_id,
                number=p.lead.number,
                reason=REMOVED,
                via=via,
                attempts=p.attempts,
            )
        )
        self._log.info("campaign_lead_removed", lead=lead_id, via=via)
        self._changed.set()
        return {"campaign": self.id, "lead": lead_id, "status": "skipped", "result": REMOVED}

    def load(self, lists: LeadLists, restored: Iterable[LeadRecord] = ()) -> None:
        """Take the lead list (and what the records say of each lead): :meth:`prepare`
        then :meth:`install` (and :meth:`restore_pacing`), in one go."""
        restored = list(restored)
        self.install(lists, self.prepare(lists, restored))
        self.restore_pacing(restored)

    def prepare(
        self, lists: LeadLists, restored: Iterable[LeadRecord] = ()
    ) -> dict[str, LeadProgress]:
        """Each listed lead's progress as the records give it (fresh when they have none).
        Touches nothing of the running campaign: it may run in a thread (a big lead file
        would hold the event loop up)."""
        lists = self._with_added(lists)
        progress: dict[str, LeadProgress] = {}
        now = time.monotonic()
        wall = self.clock()
        final = {s.value for s in FINAL}
        kept = {r.lead: r for r in restored}
        for lead in lists.leads:
            p = LeadProgress(lead)
            record = kept.get(lead.id)
            if record is not None:
                p.attempts = record.attempts
                p.result = record.result
                p.dropped = record.result == ABANDONED
                status = record.status
                if status in final:
                    p.status = LeadStatus(status)
                elif status == LeadStatus.RETRY and record.retry_at is not None:
                    p.status = LeadStatus.RETRY
                    p.due = now + max(0.0, (record.retry_at - wall).total_seconds())
                elif status == LeadStatus.DIALING:
                    # The previous daemon stopped while it dialled: its phone may still
                    # ring and an answer is put through; not again before it stops ringing.
                    # A retry, not "dialing": nothing dials it now (the campaign may stay
                    # paused), and an answer after the restart still makes it answered.
                    wait = self.settings.ring_timeout + RESTORED_DIALING_GRACE
                    p.status = LeadStatus.RETRY
                    p.result = INTERRUPTED
                    p.due = now + wait
                    p.interrupted_at = wall + timedelta(seconds=wait)
            progress[lead.id] = p
        return progress

    def install(self, lists: LeadLists, prepared: dict[str, LeadProgress]) -> None:
        """Use the leads :meth:`prepare` made; a lead already known here keeps its
        progress, a lead no longer listed (nor added while running) is dropped unless being
        dialled."""
        self._do_not_call = lists.do_not_call
        known = self.leads
        if known:
            for lead_id, fresh in prepared.items():
                old = known.get(lead_id)
                if old is not None:
                    if old.status is not LeadStatus.DIALING:
                        old.lead = fresh.lead
                    prepared[lead_id] = old
        for lead_id, attempt in self._attempts.items():
            prepared.setdefault(lead_id, attempt.progress)
        for lead_id, lead in self.added.items():
            # Added while prepare ran in its thread.
            if lead_id not in prepared:
                prepared[lead_id] = known.get(lead_id) or LeadProgress(lead)
        self.leads = prepared
        self._counts = Counter(p.status for p in prepared.values())
        for p in prepared.values():
            if p.interrupted_at is not None:
                self._attempt_failed(p, INTERRUPTED, final=False, retry_at=p.interrupted_at)
                p.interrupted_at = None
        now = time.monotonic()
        self._order = {}
        self._retries = []
        self._zones = {p.lead.timezone or self.zone for p in prepared.values()} or {self.zone}
        # Each zone's line in the order its leads are called: priority, then the file.
        for lead_id, p in sorted(prepared.items(), key=lambda item: item[1].lead.rank):
            zone = p.lead.timezone or self.zone
            if p.status is LeadStatus.RETRY or (p.status is LeadStatus.PENDING and p.due > now):
                self._push_retry(lead_id, p.due)
            elif p.status is LeadStatus.PENDING:
                self._order.setdefault(zone, deque()).append(lead_id)
        self._changed.set()

    def restore_pacing(self, records: Iterable[LeadRecord]) -> None:
        """A predictive campaign takes back the previous daemon's live answers of the last
        24 hours from the records (each lead put through, each drop), so that a restart
        does not start the abandon rate afresh."""
        pacer = self.pacer
        if pacer is None:
            return
        wall, now = self.clock(), time.monotonic()
        answers: list[tuple[float, bool]] = []
        for record in records:
            for at, dropped in (
                (record.dropped_at, True),
                (record.updated if record.status == LeadStatus.ANSWERED else None, False),
            ):
                if at is not None:
                    age = max(0.0, (wall - at).total_seconds())
                    if age < ABANDON_WINDOW:
                        answers.append((now - age, dropped))
        pacer.restore(answers)

    def _pace(self, settings: CampaignConfig) -> None:
        """A pacer for a predictive campaign (kept across reloads), none otherwise."""
        if settings.mode != "predictive":
            self.pacer = None
        elif self.pacer is None:
            self.pacer = Pacer(
                max_abandon_rate=settings.max_abandon_rate, max_ratio=settings.max_ratio
            )
        else:
            self.pacer.settings(
                max_abandon_rate=settings.max_abandon_rate, max_ratio=settings.max_ratio
            )

    @property
    def zone(self) -> str:
        """The campaign's time zone: its ``timezone``, else the IVR's."""
        return self.settings.timezone or self.config.ivr.timezone

    async def reconfigure(self, config: CallCenterConfig, lists: LeadLists) -> None:
        """A reload: new settings and lists for the dials from now on. ``enabled`` turned
        off pauses the campaign, turned on resumes it (unchanged, a pause or resume given
        through the API stands)."""
        was_enabled = self.settings.enabled
        self.config = config
        self.settings = config.campaigns[self.id]
        self._pace(self.settings)
        if was_enabled and not self.settings.enabled:
            self.pause("config")
        elif self.settings.enabled and not was_enabled:
            self.resume("config")
        self.install(lists, await asyncio.to_thread(self.prepare, lists))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"campaign-{self.id}"
            )
            self._publish_state()

    async def stop(self) -> None:
        """Stop dialling. A lead whose phone rings is not hung up: answered, the next
        daemon puts them through (the record says ``dialing``)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        for attempt in list(self._attempts.values()):
            if attempt.task is not None:
                await cancel_and_wait(attempt.task)
        if self.state is not CampaignState.STOPPED:
            self._move(CampaignState.STOPPED, "")

    # ------------------------------------------------------------------ control

    def pause(self, why: str) -> None:
        """Stop dialling until :meth:`resume`; dials waiting for an agent are withdrawn."""
        if self.state is CampaignState.PAUSED:
            return
        self._move(CampaignState.PAUSED, why)
        self._withdraw_waiting()

    def resume(self, why: str) -> None:
        if self.state is not CampaignState.PAUSED:
            return
        self._move(CampaignState.RUNNING, why)

    def call_back(self, lead_id: str, at: datetime | None) -> bool:
        """The person of answered lead ``lead_id`` asked to be called again at ``at``: the
        lead is tried again then, its tries counted afresh. A callback already set is moved
        to ``at``, or, with ``at`` None (the agent corrected the code), called off: the
        lead is answered again. False when nothing changed."""
        p = self.leads.get(lead_id)
        scheduled = p is not None and p.status is LeadStatus.RETRY and p.result == CALLBACK
        if p is None or not (scheduled or (at is not None and p.status is LeadStatus.ANSWERED)):
            if at is not None:
                self._log.warning("campaign_callback_not_scheduled", lead=lead_id)
            return False
        if at is None:
            self._move_lead(p, LeadStatus.ANSWERED)
            p.result = "answered"
            p.attempts = p.answered_attempts
        else:
            if p.status is LeadStatus.ANSWERED:
                p.answered_attempts = p.attempts
                self._move_lead(p, LeadStatus.RETRY)
            p.attempts = 0
            p.result = CALLBACK
            # A callback moved leaves its first heap entry behind: _take_due skips it.
            p.due = time.monotonic() + max(0.0, (at - self.clock()).total_seconds())
            self._push_retry(lead_id, p.due)
        self.bus.publish(
            CampaignLeadRescheduled(
                campaign=self.id,
                lead=lead_id,
                number=p.lead.number,
                retry_at=at,
                attempts=p.attempts,
            )
        )
        self._log.info(
            "campaign_callback", lead=lead_id, at=at.isoformat() if at is not None else None
        )
        self._changed.set()
        return True

    def recycle(self, reasons: Collection[str] | None = None, *, via: str = "cli") -> list[str]:
        """Try the failed leads again (those whose last try failed for one of ``reasons``,
        such as busy or no-answer; None: every failed one), their tries counted afresh, from
        now on: a list recycled, as diallers do. A finished campaign runs again. The ids of
        the leads recycled."""
        recycled = []
        now = time.monotonic()
        for lead_id, p in self.leads.items():
            if p.status is not LeadStatus.FAILED or (
                reasons is not None and p.result not in reasons
            ):
                continue
            self._move_lead(p, LeadStatus.RETRY)
            self.bus.publish(
                CampaignLeadRecycled(
                    campaign=self.id, lead=lead_id, number=p.lead.number, reason=p.result, via=via
                )
            )
            p.attempts = 0
            p.result = RECYCLED
            p.due = now
            self._push_retry(lead_id, now)
            recycled.append(lead_id)
        if recycled:
            self._log.info("campaign_recycled", leads=len(recycled), via=via)
            self._changed.set()
        return recycled

    def agent_free(self) -> None:
        """An agent became free with nobody waiting for them: a predictive campaign counts
        its free agents again."""
        if self.pacer is not None:
            self._changed.set()

    def on_event(self, event: EngineEvent) -> None:
        """Bus listener: a lead of ours answered a dial this daemon did not wait for (placed
        before a restart) is done."""
        if type(event) is CampaignAnswered and event.campaign == self.id:
            p = self.leads.get(event.lead)
            if p is not None and p.status not in FINAL and event.lead not in self._attempts:
                self._move_lead(p, LeadStatus.ANSWERED)
                p.result = "answered"
                self._changed.set()

    def view(self) -> dict[str, Any]:
        """The campaign as ``callcenter status`` and GET /campaigns show it: its state (and
        why), the leads by status (``dialing``: waiting for an agent or ringing), how many
        of those ring, and the tries made since the daemon started."""
        counts = {s.value: self._counts[s] for s in LeadStatus}
        view: dict[str, Any] = {
            "id": self.id,
            "queue": self.settings.queue,
            "mode": self.settings.mode,
            "state": self.state.value,
            "why": self.why,
            "lines": self.settings.lines,
            "ringing": sum(1 for a in self._attempts.values() if a.progress.ringing),
            "leads": len(self.leads),
            **counts,
            "dialled": self.dialled,
        }
        pacer = self.pacer
        if pacer is not None:
            view |= {
                "ratio": round(pacer.ratio, 2),
                "answer_rate": round(pacer.answer_rate, 3),
                "abandon_rate": round(pacer.abandon_rate, 2),
                "dropped": pacer.dropped_total,
            }
        return view

    # ------------------------------------------------------------------ the dialler

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            delay = self._step(time.monotonic())
            if self.pacer is not None:
                # Agents free up by the hundred a second in a big centre, and counting the
                # free ones costs O(members + callers) (1 ms at 5,000 and 1,000): one count
                # per PACING_GAP at most.
                await asyncio.sleep(PACING_GAP)
                if delay is not None:
                    delay = max(0.0, delay - PACING_GAP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)

    def _step(self, now: float) -> float | None:
        """Start the dials that are due; seconds until the next look (None: on a change)."""
        if self.state in (CampaignState.PAUSED, CampaignState.STOPPED):
            return None
        if not self._attempts and self._next_due(now, self._zones) is None:
            if self.state in (CampaignState.RUNNING, CampaignState.CLOSED):
                self._move(CampaignState.FINISHED, "every lead tried")
            return None
        open_zones = {zone for zone in self._zones if self._open_in(zone)}
        if not open_zones:
            if self.state is not CampaignState.CLOSED:
                self._move(CampaignState.CLOSED, "outside the campaign's hours")
                self._withdraw_waiting()
            return HOURS_CHECK
        if self.state is CampaignState.CLOSED:
            self._move(CampaignState.RUNNING, "within the campaign's hours")
        if not self.dialer.pbx_up:
            return WAIT_AFTER_NOT_MADE
        if self.state is CampaignState.FINISHED:
            self._move(CampaignState.RUNNING, "leads to try")
        room = self.settings.lines - len(self._attempts)
        pacer = self.pacer
        if pacer is not None:
            ringing = sum(1 for a in self._attempts.values() if not a.progress.live)
            free = self.dialer.free_agents(self.settings.queue)
            room = min(room, pacer.dials_wanted(free, ringing))
        while room > 0:
            lead_id = self._take_due(now, open_zones)
            if lead_id is None:
                break
            self._begin(self.leads[lead_id])
            room -= 1
        if len(self._attempts) >= self.settings.lines:
            return None  # every line busy: the end of a dial is a change
        wait = self._next_due(now, open_zones)
        if wait is None and not self._attempts:
            self._move(CampaignState.FINISHED, "every lead tried")  # the last ones skipped
        if pacer is not None and wait == 0:
            return PACING_CHECK  # leads to dial, no agent free: an agent's move wakes us
        return wait

    def _open_in(self, zone: str) -> bool:
        """May people living in ``zone`` be called now (the campaign's hours and holidays,
        in their local time)?"""
        settings = self.settings
        if settings.hours is None and settings.holidays is None:
            return True
        now = local_time(self.clock(), zone)
        calendar = settings.holidays
        if calendar is not None and (
            date_listed(calendar.dates, now.date())
            or (
                calendar.country is not None
                and public_holiday(calendar.country, calendar.subdivision, now.date())
            )
        ):
            return False
        return settings.hours is None or open_spec(settings.hours, now) is not None

    def _take_due(self, now: float, open_zones: set[str]) -> str | None:
        """The next lead to dial (a retry that is due, else the first in file order of
        those whose zone is within the hours), skipping those that may not be called."""
        while True:
            lead_id: str | None = None
            if self._retries and self._retries[0][0] <= now:
                when, _, lead_id = heapq.heappop(self._retries)
                due = self.leads.get(lead_id)
                if due is not None and due.due != when:
                    continue  # moved since it was pushed (a callback set again)
                zone = (due.lead.timezone or self.zone) if due is not None else self.zone
                if zone not in open_zones:
                    # Due, but it is night where they live: first in line when it is day.
                    self._order.setdefault(zone, deque()).appendleft(lead_id)
                    continue
            else:
                lead_id = self._first_in_line(open_zones)
            if lead_id is None:
                return None
            p = self.leads.get(lead_id)
            if p is None or p.status not in (LeadStatus.PENDING, LeadStatus.RETRY):
                continue
            if lead_id in self._attempts:
                continue
            if p.result == INTERRUPTED and p.attempts >= self.settings.attempts:
                self._give_up_interrupted(p)
                continue
            why = self._refusal(p.lead.number)
            if why is None:
                return lead_id
            self._move_lead(p, LeadStatus.SKIPPED)
            p.result = why
            self.bus.publish(
                CampaignLeadSkipped(
                    campaign=self.id, lead=lead_id, number=p.lead.number, reason=why
                )
            )
            self._log.info("campaign_lead_skipped", lead=lead_id, reason=why)

    def _give_up_interrupted(self, p: LeadProgress) -> None:
        """A last try cut by a restart got no answer since: no try is left."""
        self._move_lead(p, LeadStatus.FAILED)
        self._attempt_failed(p, INTERRUPTED, final=True)

    def _rank(self, lead_id: str) -> tuple[int, int]:
        p = self.leads.get(lead_id)
        return p.lead.rank if p is not None else (0, 0)

    def _refusal(self, number: str) -> str | None:
        if number in self._do_not_call or number in self.asked_not:
            return DO_NOT_CALL
        if not matches_any(self.settings.allow, number):
            return NOT_ALLOWED
        return None

    def _first_in_line(self, open_zones: set[str]) -> str | None:
        """Take the lead of the highest priority, earliest in the file, among the heads of
        the open zones' lines (heads no longer to be tried are dropped on the way)."""
        best: tuple[tuple[int, int], str] | None = None
        for zone in open_zones:
            line = self._order.get(zone)
            while line:
                p = self.leads.get(line[0])
                if p is not None and p.status in (LeadStatus.PENDING, LeadStatus.RETRY):
                    break
                line.popleft()
            if line and (best is None or self.leads[line[0]].lead.rank < best[0]):
                best = (self.leads[line[0]].lead.rank, zone)
        return self._order[best[1]].popleft() if best is not None else None

    def _next_due(self, now: float, open_zones: set[str]) -> float | None:
        """Seconds until a lead is due (0: one is now), None when none is left to try."""
        waiting = False
        for zone, line in self._order.items():
            if any(
                p is not None and p.status in (LeadStatus.PENDING, LeadStatus.RETRY)
                for p in (self.leads.get(lead_id) for lead_id in line)
            ):
                if zone in open_zones:
                    return 0.0
                waiting = True
        if self._retries:
            due = max(0.0, self._retries[0][0] - now)
            return min(due, HOURS_CHECK) if waiting else due
        return HOURS_CHECK if waiting else None

    def _push_retry(self, lead_id: str, due: float) -> None:
        self._seq += 1
        heapq.heappush(self._retries, (due, self._seq, lead_id))

    def _begin(self, p: LeadProgress) -> None:
        self._move_lead(p, LeadStatus.DIALING)
        p.ringing = False
        p.live = False
        attempt = _Attempt(p)
        self._attempts[p.lead.id] = attempt
        attempt.task = asyncio.get_running_loop().create_task(
            self._try(attempt), name=f"campaign-{self.id}-{p.lead.id}"
        )

    async def _try(self, attempt: _Attempt) -> None:
        p = attempt.progress
        lead = p.lead
        settings = self.settings
        call = LeadCall(
            campaign=self.id,
            lead=lead.id,
            number=lead.number,
            queue=settings.queue,
            device=settings.dial.replace("${number}", lead.number),
            caller_id=caller_id_for(settings, lead.number),
            ring_timeout=settings.ring_timeout,
            priority=settings.priority,
            attempt=p.attempts + 1,
            data=lead.data,
            drop_after=settings.drop_after,
            drop_prompt=settings.drop_prompt,
            context=settings.context or "",
            machine=settings.machine,
            machine_prompt=settings.machine_prompt,
            preview_seconds=settings.preview_seconds if settings.mode == "preview" else 0.0,
            preview_timeout=settings.preview_timeout,
        )

        def reserved() -> None:
            p.ringing = True
            self.dialled += 1

        def answered() -> None:
            p.live = True
            self._changed.set()  # one dial fewer ringing

        reason = "cancelled"
        try:
            if self.pacer is not None and not p.dropped:
                reason = await self.dialer.dial_predictive(call, reserved, answered)
            else:
                reason = await self.dialer.dial_lead(call, reserved)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("campaign_dial_failed", lead=lead.id)
            reason = "error"
        finally:
            self._attempts.pop(lead.id, None)
            self._settle(p, call, reason)
            self._changed.set()

    def _settle(self, p: LeadProgress, call: LeadCall, reason: str) -> None:
        """Where a lead stands after a try ended with ``reason`` ("" answered)."""
        if p.status is not LeadStatus.DIALING:
            return  # answered through a restart's late path meanwhile
        lead_id = p.lead.id
        now = time.monotonic()
        pacer = self.pacer
        if pacer is not None and p.ringing and reason not in NOT_MADE and reason != "cancelled":
            pacer.tried(answered=reason in ("", ABANDONED))
            if reason in ("", ABANDONED):
                pacer.answered(dropped=reason == ABANDONED)
        if reason == ABANDONED:
            p.dropped = True
        if reason == "":
            p.attempts = call.attempt
            self._move_lead(p, LeadStatus.ANSWERED)
            p.result = "answered"
            return
        if reason == AGENT_SKIPPED:
            self._move_lead(p, LeadStatus.PENDING)
            p.due = now + self._retry_delay(reason)
            self._push_retry(lead_id, p.due)
            self._log.info("campaign_lead_skipped_by_agent", lead=lead_id)
            return
        if reason == "cancelled":
            if p.ringing:
                return  # the daemon stops: the record keeps ``dialing`` for the next one
            self._move_lead(p, LeadStatus.PENDING)  # withdrawn (a pause): first in line again
            self._order.setdefault(p.lead.timezone or self.zone, deque()).appendleft(lead_id)
            return
        if reason in NOT_MADE or not p.ringing:
            # Not made (or failed before an agent was found): a while later, not at once,
            # or a fault that repeats would spin.
            self._move_lead(p, LeadStatus.PENDING)
            p.due = now + WAIT_AFTER_NOT_MADE
            self._push_retry(lead_id, p.due)
            if p.ringing:
                # Its records say `dialing`: a restart would count the try it never made.
                again = self.clock() + timedelta(seconds=WAIT_AFTER_NOT_MADE)
                self._attempt_failed(p, reason, final=False, retry_at=again)
            return
        p.attempts = call.attempt
        p.result = reason
        final = p.attempts >= self.settings.attempts
        retry_at: datetime | None = None
        if final:
            self._move_lead(p, LeadStatus.FAILED)
        else:
            self._move_lead(p, LeadStatus.RETRY)
            delay = self._retry_delay(reason)
            p.due = now + delay
            retry_at = self.clock() + timedelta(seconds=delay)
            self._push_retry(lead_id, p.due)
        self._attempt_failed(p, reason, final=final, retry_at=retry_at)

    def _attempt_failed(
        self, p: LeadProgress, reason: str, *, final: bool, retry_at: datetime | None = None
    ) -> None:
        """Tell the records (and the log) that ``p``'s last try got no answer."""
        self.bus.publish(
            CampaignAttemptFailed(
                campaign=self.id,
                lead=p.lead.id,
                number=p.lead.number,
                attempt=p.attempts,
                reason=reason,
                final=final,
                retry_at=retry_at,
            )
        )
        self._log.info(
            "campaign_attempt_failed",
            lead=p.lead.id,
            attempt=p.attempts,
            reason=reason,
            final=final,
        )

    def _retry_delay(self, reason: str) -> float:
        """Seconds before a lead whose try failed for ``reason`` is tried again:
        ``retry_delays`` of that reason, else ``retry_delay``."""
        for named, delay in self.settings.retry_delays.items():
            if named == reason:
                return delay
        return self.settings.retry_delay

    def _move_lead(self, p: LeadProgress, new: LeadStatus) -> None:
        old = p.status
        p.move(new)
        self._counts[old] -= 1
        self._counts[new] += 1

    def _withdraw_waiting(self) -> None:
        """Cancel the dials still waiting for an agent (their leads go back in line)."""
        for attempt in self._attempts.values():
            if attempt.task is not None and not attempt.progress.ringing:
                attempt.task.cancel()

    def _move(self, new: CampaignState, why: str) -> None:
        if new not in _MOVES[self.state]:
            raise IllegalTransition(f"campaign {self.id}: {self.state} -> {new}")
        self.state = new
        self.why = why
        self._publish_state()
        self._log.info("campaign_state", state=new.value, why=why)
        self._changed.set()

    def _publish_state(self) -> None:
        self.bus.publish(CampaignStateChanged(campaign=self.id, state=self.state, why=self.why))


class Campaigns:
    """Every campaign of the config, started, reloaded and stopped together."""

    def __init__(self, dialer: Dialer, bus: EventBus) -> None:
        self.dialer = dialer
        self.bus = bus
        self.by_id: dict[str, Campaign] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.asked_not: set[str] = set()
        """Numbers whose people asked an agent never to be called again (a ``do_not_call``
        disposition): no campaign dials them. The daemon fills it from the records at a
        start."""
        self.added: dict[str, dict[str, Lead]] = {}
        """Campaign -> the leads added while it ran, by id (:meth:`Campaign.add_lead`).
        The daemon fills it from the records at a start."""
        bus.subscribe(self._on_event, kinds=(CampaignAnswered, CallDisposed))

    def _on_event(self, event: EngineEvent) -> None:
        if type(event) is CampaignAnswered:
            campaign = self.by_id.get(event.campaign)
            if campaign is not None:
                campaign.on_event(event)
        elif type(event) is CallDisposed:
            number = normalise_number(event.number)
            if event.do_not_call and number is not None:
                self.asked_not.add(number)
                log.info("number_asked_not_to_be_called", call_id=event.call_id)
            if event.campaign in self.by_id:
                self.by_id[event.campaign].call_back(event.lead, event.callback_at)

    def agent_free(self, agent_id: str) -> None:
        """Router listener: ``agent_id`` became free with nobody waiting for them."""
        for campaign in self.by_id.values():
            campaign.agent_free()

    async def start(
        self, config: CallCenterConfig, restored: Iterable[LeadRecord] | None = ()
    ) -> None:
        """Read every campaign's lists and start dialling. A campaign whose files cannot be
        read is logged and left out (the config check reports them before a start); with
        ``restored`` None (the records could not be read) none starts."""
        if restored is None:
            if config.campaigns:
                log.error("campaigns_not_started", why="the campaign records cannot be read")
            return
        by_campaign: dict[str, list[LeadRecord]] = {}
        for record in restored:
            by_campaign.setdefault(record.campaign, []).append(record)
        for campaign_id in config.campaigns:
            await self._add(config, campaign_id, by_campaign.get(campaign_id, []))

    async def _add(
        self, config: CallCenterConfig, campaign_id: str, restored: list[LeadRecord]
    ) -> None:
        settings = config.campaigns[campaign_id]
        try:
            lists = await asyncio.to_thread(read_lists, config, settings)
        except ConfigError as exc:
            log.error("campaign_not_started", campaign=campaign_id, error=str(exc))
            return
        campaign = Campaign(campaign_id, config, self.dialer, self.bus, clock=self.clock)
        campaign.asked_not = self.asked_not
        campaign.added = self.added.setdefault(campaign_id, {})
        campaign.install(lists, await asyncio.to_thread(campaign.prepare, lists, restored))
        campaign.restore_pacing(restored)
        self.by_id[campaign_id] = campaign
        campaign.start()
        log.info(
            "campaign_started",
            campaign=campaign_id,
            leads=len(lists.leads),
            do_not_call=len(lists.do_not_call),
            state=campaign.state.value,
        )

    async def apply_config(
        self,
        config: CallCenterConfig,
        restored: Callable[[], Awaitable[list[LeadRecord] | None]],
    ) -> None:
        """A reload: campaigns added start (with ``restored()``'s records), campaigns gone
        stop, the others read their lists again and take the new settings."""
        for campaign_id in [c for c in self.by_id if c not in config.campaigns]:
            await self.by_id.pop(campaign_id).stop()
        added = [c for c in config.campaigns if c not in self.by_id]
        records = await restored() if added else []
        if records is None:
            log.error("campaigns_not_started", campaigns=added, why="records unreadable")
        for campaign_id in config.campaigns:
            campaign = self.by_id.get(campaign_id)
            if campaign is None:
                if records is not None:
                    mine = [r for r in records if r.campaign == campaign_id]
                    await self._add(config, campaign_id, mine)
                continue
            try:
                lists = await asyncio.to_thread(read_lists, config, config.campaigns[campaign_id])
            except ConfigError as exc:
                log.error("campaign_lists_kept", campaign=campaign_id, error=str(exc))
                continue
            await campaign.reconfigure(config, lists)

    async def stop(self) -> None:
        for campaign in self.by_id.values():
            await campaign.stop()

    def view(self) -> list[dict[str, Any]]:
        return [c.view() for c in self.by_id.values()]

    def find_lead(self, campaign_id: str, lead_id: str) -> Lead | None:
        """Lead ``lead_id`` of campaign ``campaign_id`` (None: no such campaign or lead)."""
        campaign = self.by_id.get(campaign_id)
        progress = campaign.leads.get(lead_id) if campaign is not None else None
        return progress.lead if progress is not None else None


__all__ = [
    "Campaign",
    "CampaignState",
    "Campaigns",
    "Dialer",
    "LeadCall",
    "LeadLists",
    "LeadProgress",
    "LeadRecord",
    "LeadStatus",
    "lead_origin",
    "parse_lead_origin",
    "read_lists",
]
