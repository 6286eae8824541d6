"""The switchboard: what happens to every call the PBX hands us, from arrival to hang-up.

One task per call runs :meth:`Switchboard.handle_call`. The hook the dialplan used decides
what the call is for (``CallInfo.route``):

* ``inbound``: answer, walk the IVR flow of the dialed number, wait in a queue with music on
  hold, ring agents (longest idle first; an agent who does not answer in ``ring_timeout`` is
  skipped), bridge, and follow transfers to the queue's supervisor.
* ``agent-login``, ``agent-logout``, ``agent-pause``, ``agent-unpause``: the feature codes an
  agent dials from their own phone (optionally protected by the agent's PIN).
* ``agent-line``: an agent's open line (``*70``, :mod:`callcenter.line`).

Everything the switchboard decides is published as :mod:`callcenter.events`; records and live
figures are folds over those events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import structlog
from pydantic import TypeAdapter, ValidationError

from callcenter.acd.agent import Agent
from callcenter.acd.breaks import Breaks
from callcenter.acd.keypad import Keyed, Keypad
from callcenter.acd.queue import EntryStatus, QueueEntry
from callcenter.acd.roster import Roster
from callcenter.acd.router import RingOutcome, Router
from callcenter.acd.rules import EXTERNAL_TECH, answers_by_itself
from callcenter.acd.schedule import opening_hours
from callcenter.callback import (
    CALLBACK_VARIABLE,
    DIALABLE_NUMBER,
    PBX_DOWN,
    Callbacks,
    KeptPlace,
    PendingCallback,
    callback_origin,
    callback_token,
)
from callcenter.config.models import (
    AgentKeysConfig,
    CallCenterConfig,
    Device,
    QueueConfig,
    QueueExit,
    SurveyConfig,
)
from callcenter.consult import (
    Consultation,
    Consultations,
    ConsultState,
    RoomLegs,
    consult_view,
)
from callcenter.disposition import AgentCall, Dispositions
from callcenter.errors import (
    CallHungUp,
    CommandFailed,
    CommandResultLost,
    DestinationNotAllowed,
    EngineError,
    NotPermitted,
    PBXConnectionError,
    PBXError,
    RecordError,
    UnknownAgent,
    UnknownCall,
    UnknownQueue,
    UnknownSupervisor,
)
from callcenter.events import (
    LEFT_AT_SHUTDOWN,
    LEFT_ON_LINK_LOSS,
    LEFT_TO_PBX,
    LEFT_WHILE_DRAINING,
    QUEUE_TRANSFER,
    AgentConnected,
    AgentDialAnswered,
    AgentKeysRefused,
    AgentRingFailed,
    AgentRinging,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallStarted,
    CallTransferred,
    EventBus,
    IvrStep,
    IvrVariableSet,
    QueueAbandoned,
    QueueAnnounced,
    QueueCallbackAnswered,
    QueueExited,
    QueueJoined,
    QueuePriorityChanged,
    RecordingMuted,
    RecordingStarted,
    SupervisorSeated,
    SurveyEnded,
    SwitchFlipped,
    TalkEnded,
    TransferFailed,
    VoicemailLeft,
)
from callcenter.hook import EMPTY_HOOK, read_hook
from callcenter.ivr.calendar import local_time
from callcenter.ivr.lookup import Fetcher, fetch_json
from callcenter.ivr.number_lists import NumberLists
from callcenter.ivr.runner import Clock, FlowRunner, Hangup, QueueLook, Transferred, utc_now
from callcenter.ivr.trace import (
    CallbackTaken,
    IvrEvent,
    IvrListener,
    NodeEntered,
    VariableSet,
    VoicemailRecorded,
)
from callcenter.ivr.values import TRANSFER_NOTE, matches_any, render
from callcenter.line import LINE_ROUTE, AgentLines
from callcenter.line import room_of as line_room
from callcenter.live.alerts import AgentAlerts, QueueAlerts, ShiftEnds
from callcenter.outbound.campaign import (
    MACHINE,
    parse_lead_origin,
)
from callcenter.outbound.dialler import Dialler
from callcenter.outbound.leads import Lead
from callcenter.outbound.manual import DIAL_ROUTE, ManualDials
from callcenter.outbound.manual import room_of as dial_room
from callcenter.pbx.interface import (
    PBX,
    Call,
    CallInfo,
    Conference,
    DeviceStateChanged,
    DialResult,
    DialStatus,
    DigitPressed,
    HangupCause,
    PBXConnected,
    PBXDisconnected,
    PBXEvent,
    SpyMode,
)
from callcenter.pbx.stranded import LeftRooms, StrandedLegs
from callcenter.records.cdr import QueueVisit
from callcenter.supervision.monitor import Monitoring
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

T = TypeVar("T")

FEATURE_PROMPTS = {
    "login": "agent-loginok",
    "logout": "agent-loggedoff",
    "pause": "agent-paused",
    "unpause": "agent-unpaused",
    "ready": "beep",
    "disposition": "auth-thankyou",
}


@dataclass(slots=True)
class ActiveCall:
    """A call the switchboard is handling, as the API and transfers see it."""

    call: Call
    started: float
    queue: str | None = None
    agent: str | None = None
    """Who the caller is talking to now (agent or supervisor id)."""
    agent_channel: str = ""
    """The PBX channel of ``agent``'s leg while they talk (what a supervisor spies on)."""
    recording: str | None = None
    """The file the call is recorded into (its queue has ``record: true``)."""
    recording_muted: bool = False
    """The agent has the recording record silence (see :meth:`Switchboard.mute_recording`)."""
    talked_to: set[str] = field(default_factory=set)
    """Everyone the caller was connected to (so the end of the call frees just them)."""
    pending_transfer: str | None = None
    transferred_by: str | None = None
    transfer_kind: str = "blind"
    """``blind``, ``queue`` (into a queue), or ``takeover`` when a supervisor took the call
    over from the agent."""
    transfer_priority: int = 0
    """Queue priority of a caller being transferred to a queue."""
    queue_priority: int = 0
    """The priority the caller has in their queue (``queue``)."""
    bridge_cause: HangupCause = HangupCause.UNSPECIFIED
    """How the last bridge ended (Asterisk reports 0 for channels that only ran AGI)."""
    path: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    """IVR variables set so far (lookup answers for the agent's screen pop; PINs as ***)."""
    skills: tuple[str, ...] = ()
    """Skills the IVR's queue node asked for (for skills-based routing)."""
    queue_hops: int = 0
    """Queues joined so far (exit rules may send a caller from queue to queue)."""
    talk_since: float = 0.0
    """When ``agent`` started talking to the caller (monotonic)."""
    consult: Consultation | None = None
    """The agent's consultation on this call, the latest one (see :mod:`callcenter.consult`)."""
    conference: Conference | None = None
    """The room the call runs in once a consultation started, until it ends."""
    room: RoomLegs | None = None
    """The engine's view of that room's legs."""
    held_since: float | None = None
    """Since when the agent holds the caller (monotonic), None when not on hold."""
    surveyed: bool = False
    """The caller was taken through a post-call survey already (one a call)."""
    agent_left: bool = False
    """The agent left the call by a key (the survey key, an open line's hang-up key, the
    line itself ending): the bridge's end counts as the agent hanging up."""
    campaign: str | None = None
    """The campaign whose lead this call is (None: a caller, a callback)."""
    called: str | None = None
    """The number the daemon dialled for this call (a callback, a lead): the caller's
    number as surveys record it (the call's own caller id is the centre's)."""


class CallerGone(Exception):
    """Internal: the caller hung up while we waited for something else."""


LINE_ASK_SLACK = 5.0
"""Seconds beyond the ring timeout the caller's side waits for an open line's answer."""
MAX_QUEUE_HOPS = 5
"""Queues one call may pass through (exits sending callers from queue to queue)."""
MAX_TRANSFER_NOTE: Final = 200
"""Characters of a transferring agent's note (``transfer_note``)."""

EXIT_KEY_POLL = 1.0
"""Seconds one digit read lasts while a queue's exit keys are armed, where the read is a PBX
command (no hold music playing, or FastAGI while AMI is down): see ``_wait_a_little``."""
WITHDRAWN = "withdrawn"
"""QueueExited reason of a caller a supervisor sent elsewhere (app_queue's WITHDRAW)."""
EMPTY_LOOK = 0.25
"""Seconds between two looks at an empty queue during its ``empty_grace``."""
LINK_DOWN_GRACE = 1.0
"""Seconds a waiting caller's failed PBX request waits for its driver to say the link is
down (the request fails first)."""
IVR_LINK_WAIT = 60.0
"""Longest a caller in the IVR whose next prompt could not be sent waits for the PBX link
(the PBX keeps the call meanwhile); past it the call is left to the driver to take back."""

AGENT_ROUTES = (
    "agent-login",
    "agent-logout",
    "agent-pause",
    "agent-unpause",
    "agent-ready",
    "agent-disposition",
    "agent-queue",
)
"""The hooks of the agents' feature codes (``AGI(agi://.../agent-login)``,
``callcenter_route=agent-login``)."""
SUPERVISOR_ROUTES: dict[str, SpyMode] = {
    "supervisor-listen": "listen",
    "supervisor-whisper": "whisper",
    "supervisor-barge": "barge",
}
"""The hooks of the supervisors' feature codes (``*81`` + agent: ``supervisor-listen?agent=
1001``) and the monitoring mode each starts in."""
SWITCH_ROUTE = "switch-toggle"
"""The hook of ``*28`` + code (``switch-toggle?code=1``): a supervisor flips a switch."""
QUEUE_STATUS_ROUTE = "queue-status"
"""The hook of ``*85`` + a queue's digits: a supervisor hears how the queue stands."""
DESK_ROUTE = "supervisor-desk"
"""The hook of ``*86`` + a supervisor's id (``supervisor-desk?supervisor=2000``): they work
at the calling phone from now on (their own phone: back at it)."""
FEATURE_ROUTES = (
    *AGENT_ROUTES,
    LINE_ROUTE,
    DIAL_ROUTE,
    *SUPERVISOR_ROUTES,
    SWITCH_ROUTE,
    QUEUE_STATUS_ROUTE,
    DESK_ROUTE,
)
"""Every feature code's hook; any other route is an inbound call."""


CALLBACK_ANSWER_MARGIN = 5.0
"""Seconds after the callback ring timeout we still wait for the answered call to reach us."""

CUT_RING_TRIES = 5
CUT_RING_RETRY = 0.2
"""A revoked agent's ring is cut up to CUT_RING_TRIES times, CUT_RING_RETRY s apart."""

IN_USE_STATES = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
"""Device states (Asterisk's words) that make an agent's device count as in use."""
UNREACHABLE_STATES = frozenset({"UNAVAILABLE", "INVALID"})
"""Device states that mean the device cannot be called (not registered, no such device)."""

_ANNOUNCE_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_VARIABLE_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""What an agent announcement filled from call variables must be (it goes into a Dial
option or a dial string)."""


_DEVICE: TypeAdapter[str] = TypeAdapter(Device)
"""What a number ops put on an IVR number list must be (as the config's entries)."""


"""Call id of a callback asked for through the API (``POST /callbacks``): no call came in."""

STOP_SETTLE = 5.0
"""Seconds a stopping daemon gives the PBX to bring held callers and their agents together."""

ON_DEMAND_FOLDER = "on-demand"
"""The recordings' sub-folder of calls recorded on demand that came through no queue."""

LAST_AGENT_LOOKUP = 1.0
"""Seconds the records may take to name a caller's last agent (queues' ``last_agent``)."""

ABANDONED_PRUNE_MIN = 1024
"""Remembered abandons (``resume_abandoned``) before the expired ones are swept out."""


@dataclass(slots=True)
class _Waiting:
    """When a waiting caller hears what next."""

    next_announce: float
    next_periodic: float
    periodic_index: int = 0
    periodic_last: int = -1
    """The periodic announcement played last (random order never plays it twice in a row)."""
    told: int | None = None
    """The position last announced (announcements only follow an improvement)."""

    @classmethod
    def start(cls, qcfg: QueueConfig, now: float) -> _Waiting:
        announces = qcfg.announce_position or qcfg.announce_holdtime
        return cls(
            next_announce=now + qcfg.announce_frequency if announces else math.inf,
            next_periodic=now + qcfg.periodic_announce_frequency
            if qcfg.periodic_announce
            else math.inf,
        )


class _LeaveQueue(Exception):
    """Internal: a queue rule sends the caller elsewhere (``dest`` None: hang up)."""

    def __init__(self, reason: str, dest: QueueExit | None, key: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.dest = dest
        self.key = key


_NOT_IN_CALLER_NAME: Final = re.compile(r"[^A-Za-z0-9 .@+*#_-]+")


def agent_caller_name(template: str, active: ActiveCall, queue: str) -> str | None:
    """The caller's name for the agents' phones (``queues.<q>.agent_caller_name``): the
    template filled, what a phone cannot show made spaces, at most 40 characters; None when
    nothing is left."""
    info = active.call.info
    # Asterisk says "unknown" for a caller without a name.
    name = "" if info.caller_name.lower() in ("unknown", "<unknown>") else info.caller_name
    variables = {
        **active.variables,
        "caller_num": info.caller_num,
        "caller_name": name,
        "queue": queue,
        "call_id": info.call_id,
    }
    text = " ".join(_NOT_IN_CALLER_NAME.sub(" ", render(template, variables)).split())
    return text[:40].rstrip() or None


def _records(config: CallCenterConfig, qcfg: QueueConfig, agent: str) -> bool:
    """Is the call of queue ``qcfg`` that ``agent`` answered recorded? The agent's own
    ``record`` first, else the queue's ``record`` for a ``record_share`` of its calls."""
    mine = config.agents[agent].record if agent in config.agents else None
    if mine is not None:
        return mine
    return qcfg.record and (qcfg.record_share >= 1 or random.random() < qcfg.record_share)


class Switchboard:
    """Runs every call; owns the router (agents and queues) and the active-call table."""

    def __init__(self, config: CallCenterConfig, router: Router, bus: EventBus) -> None:
        self.config = config
        self.router = router
        self.bus = bus
        self.active: dict[str, ActiveCall] = {}
        self._by_agent: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        #: Set by close(): a call task cancelled from now on is the daemon stopping.
        self._closing = False
        router.on_offer_revoked = self._offer_revoked
        self.pbx: PBX | None = None
        """The PBX, for PBX-wide commands (callback originates); see :meth:`attach_pbx`."""
        self.left_rooms: LeftRooms | None = None
        """Agents left in their rooms by an earlier daemon or a lost link (set with the
        PBX)."""
        self.stranded: StrandedLegs | None = None
        """The sweep of room legs nobody is on (``pbx.stranded_sweep``), when the daemon
        runs one: for ``/status`` and the metrics."""
        self._callbacks: dict[str, PendingCallback] = {}
        """Callbacks and campaign dials being placed, by the token their call brings back."""
        self._withdrawals: dict[str, asyncio.Future[QueueExit]] = {}
        """Callers on the line waiting in a queue: set to send one elsewhere (supervisors)."""
        self._pbx_up = asyncio.Event()
        self._pbx_up.set()
        """Set while the PBX link is up (callbacks and campaigns wait for it)."""
        self._pbx_down = asyncio.Event()
        """Set while the PBX link is down."""
        self._taking = asyncio.Event()
        self._taking.set()
        """Cleared while the daemon drains (:meth:`begin_drain`): queue callbacks wait."""
        self.refused = 0
        """Calls sent to the failover because the daemon was draining (since the start)."""
        self.switches: dict[str, bool] = {}
        """``ivr.switches`` flipped on (flows' branch cases test them); see :meth:`flip`."""
        self.supervisor_desks: dict[str, tuple[str, datetime, str]] = {}
        """Supervisors working at another phone: id -> (device, since, via); see
        :meth:`seat_supervisor`."""
        self.lists = NumberLists(lambda: self.config, bus)
        """The IVR's number lists with the numbers added while the centre runs."""
        self.queue_look: Callable[[str], QueueLook] = self.look_at_queue
        """A queue's state now, for the IVR's branch cases (``callcenter simulate`` sets
        its own)."""
        self.switch_changes: dict[str, tuple[datetime, str]] = {}
        """Switch -> when and how it was last flipped."""
        self._ringing: dict[str, set[str]] = {}
        """Call id -> agents its queue dial is ringing right now."""
        self._abandoned: dict[tuple[str, str], tuple[float, float]] = {}
        """(queue, caller number) -> (when they had joined, until when they may come back):
        callers who hung up in a queue with ``resume_abandoned``."""
        self._abandoned_prune_at = ABANDONED_PRUNE_MIN
        self._last_agents_prune_at = ABANDONED_PRUNE_MIN
        self._last_agents: dict[tuple[str, str], tuple[str, float]] = {}
        """(queue, caller number) -> the agent who last took their call and when
        (monotonic), for queues with ``last_agent``; older ones come from the CDRs."""
        self.last_agent_lookup: Callable[[str, str, datetime], Awaitable[str | None]] | None
        self.last_agent_lookup = None
        """(number, queue, since UTC) -> the agent of their last call of that queue in the
        records (the daemon sets it; None: memory only)."""
        self._keypads: dict[str, tuple[AgentKeysConfig, bool, Keypad]] = {}
        """Agent id -> what they keyed on their phone during the call (acd.agent_keys, and
        the settings the keypad was made with: a reload makes a new one)."""
        self.roster = Roster(config, router, bus, self._use_config)
        """Agents, queues, members, skills and schedule days changed while the centre
        runs, laid over the config file's (it configures the router)."""
        self.breaks = Breaks(lambda: self.config, router, bus)
        """Break limits and the lines of agents waiting for a break."""
        self.callbacks = Callbacks(self)
        """Callback requests: kept places in the queues, later ones, agents' promises."""
        self.dialler = Dialler(self)
        """Campaigns' dials and the leads who answer them."""
        self.dispositions = Dispositions(self)
        """The call each agent talks or talked on last, and the codes they give it."""
        router.owed_listeners.append(self.dispositions.owed)
        self.clock: Clock = utc_now
        """"Now" for IVR schedules and time branches (tests and simulate fix it)."""
        self.lookup_fetch: Fetcher = fetch_json
        """How IVR lookup nodes reach their HTTP service."""
        self.ivr_listeners: list[Callable[[str, IvrEvent], None]] = []
        """Called with (call id, step) for every IVR step (``callcenter simulate``)."""
        self.monitoring = Monitoring(self)
        """Supervisors listening, whispering or barging on agents' calls."""
        self.consults = Consultations(self)
        """Agents consulting a colleague while their caller holds (attended transfers)."""
        self.lines = AgentLines(self)
        """Agents on an open line (``*70``), whom callers reach without ringing."""
        self.dials = ManualDials(self)
        self.alerts = QueueAlerts(router, bus, lambda: self.config)
        """Queue alerts (queues.<q>.alerts); the daemon runs :meth:`QueueAlerts.run`."""
        self.agent_alerts = AgentAlerts(router, bus, lambda: self.config)
        """Agent alerts (acd.agent_alerts); the daemon runs :meth:`AgentAlerts.run`."""
        self.shift_ends = ShiftEnds(router, bus, lambda: self.config)
        """Logs out agents who forgot to (acd.logout_after_shift); the daemon runs it."""
        self.find_lead: Callable[[str, str], Lead | None] = lambda campaign, lead: None
        """(campaign, lead id) -> the lead, for a lead who answers a dial placed before a
        restart (the daemon sets it to :meth:`Campaigns.find_lead`)."""

    def apply_config(self, config: CallCenterConfig) -> None:
        """Use ``config`` for calls that arrive from now on; calls in progress keep theirs.

        Routing rules (strategies, skills, penalties ...) apply to waiting callers at once.
        What the roster changed while the centre runs stays laid over it
        (:meth:`Roster.apply_config`). A break limit raised lets those in line go.
        """
        self.roster.apply_config(config)
        self.breaks.let_next()

    @property
    def file_config(self) -> CallCenterConfig:
        """The config as its file says, without what the roster changed."""
        return self.roster.file_config

    def _use_config(self, config: CallCenterConfig) -> None:
        self.config = config

    def attach_pbx(self, pbx: PBX) -> None:
        """Use ``pbx`` for PBX-wide commands (callbacks are originated through it) and follow
        its device states (an agent whose phone is in use is not offered queue calls unless
        the queue has ``ring_in_use``)."""
        self.pbx = pbx
        self.left_rooms = LeftRooms(pbx, self.active.keys, agent_room=self.agent_room)
        pbx.subscribe(self._on_pbx_event)

    def ringing(self) -> dict[str, set[str]]:
        """Call id -> the agents its queue dial rings now (a copy)."""
        return {call_id: set(agents) for call_id, agents in self._ringing.items()}

    def agent_room(self, room: str) -> bool:
        """Is ``room`` the open line's or the own dial's room of an agent of the config?"""
        return any(room in (line_room(agent), dial_room(agent)) for agent in self.router.agents)

    def _on_pbx_event(self, event: PBXEvent) -> None:
        if isinstance(event, PBXConnected):
            self._pbx_down.clear()
            self._pbx_up.set()
        elif isinstance(event, PBXDisconnected):
            self._pbx_up.clear()
            self._pbx_down.set()
        elif isinstance(event, DeviceStateChanged):
            if self.lines.is_line_device(event.device):
                return  # the line's room: the line itself says whether the agent is there
            state = event.state.upper()
            self.router.device_state(
                event.device,
                in_use=state in IN_USE_STATES,
                reachable=state not in UNREACHABLE_STATES,
            )
        elif isinstance(event, DigitPressed):
            self._agent_key(event)

    def _agent_key(self, event: DigitPressed) -> None:
        """A key from the phone leg a caller is bridged to: with acd.agent_keys, an agent's
        transfer keys (``*1 2001 #``) start the transfer they ask for."""
        keys = self.config.acd.agent_keys
        if keys is None:
            return
        agent_id = next(
            (
                agent
                for agent, call_id in self._by_agent.items()
                if (active := self.active.get(call_id)) is not None
                and active.agent_channel == event.channel
            ),
            None,
        )
        if agent_id is not None:
            self.agent_key(agent_id, event.digit)

    def agent_key(self, agent_id: str, digit: str) -> None:
        """``digit`` from the phone of ``agent_id``, who talks to a caller: one more key of
        their acd.agent_keys (see :meth:`_agent_key`)."""
        keys = self.config.acd.agent_keys
        found = self.agent_call(agent_id) if keys is not None else None
        if keys is None or found is None:
            return
        consult = found[1].consult
        consulting = consult is not None and consult.state is not ConsultState.ENDED
        kept = self._keypads.get(agent_id)
        if kept is None or kept[0] is not keys or kept[1] != consulting:
            codes = keys.codes(consulting=consulting)
            pad = Keypad(codes, keys.timeout, instant=keys.instant(consulting=consulting))
            kept = self._keypads[agent_id] = (keys, consulting, pad)
        keyed = kept[2].feed(digit, time.monotonic())
        if keyed is not None:
            self.in_background(self._keyed_transfer(agent_id, keyed), f"keys-{agent_id}")

    async def _keyed_transfer(self, agent_id: str, keyed: Keyed) -> None:
        to = keyed.number or "supervisor"
        found = self.agent_call(agent_id)
        call_id = found[0] if found is not None else ""
        try:
            if keyed.action == "help":
                target, _ = await self.monitoring.ask_for_help(agent_id)
            elif keyed.action == "recording":
                active = found[1] if found is not None else None
                if active is not None and active.recording is None:
                    target = await self.record(agent_id)
                else:
                    muted = active is not None and not active.recording_muted
                    await self.mute_recording(agent_id, muted)
                    target = "paused" if muted else "recording"
            elif keyed.action == "consult":
                target = await self.consult(agent_id, to)
            elif keyed.action in _CONSULT_KEYS:
                target = await _CONSULT_KEYS[keyed.action](self, agent_id)
            elif keyed.action == "hold":
                active = found[1] if found is not None else None
                if active is not None and active.held_since is not None:
                    await self.unhold(agent_id)
                    target = "unheld"
                else:
                    await self.hold(agent_id)
                    target = "held"
            elif keyed.action == "survey":
                target = await self.send_to_survey(agent_id)
            elif keyed.action == "queue":
                queue = _queue_with_digits(self.config, keyed.number)
                if queue is None:
                    raise EngineError(f"no queue has the digits {keyed.number!r}")
                target = await self.transfer(agent_id, queue=queue)
            else:
                target = await self.transfer(agent_id, to)
        except (EngineError, PBXError) as exc:
            log.warning("agent_keys_refused", agent=agent_id, keys=keyed.keys, reason=str(exc))
            self.bus.publish(
                AgentKeysRefused(call_id=call_id, agent=agent_id, keys=keyed.keys, reason=str(exc))
            )
            return
        log.info("agent_keys", agent=agent_id, keys=keyed.keys, action=keyed.action, to=target)

    async def wait_pbx_up(self) -> None:
        """Return once the PBX link is up (at once when it is)."""
        await self._pbx_up.wait()

    async def wait_taking(self) -> None:
        """Return once the daemon takes calls (at once unless it drains)."""
        await self._taking.wait()

    def placing(self, place: KeptPlace) -> bool:
        """Is a call for ``place`` being placed now (originated, not answered or failed)?"""
        return any(p.place is place for p in self._callbacks.values())

    def leave_after_link_loss(self, call: Call, room: str) -> None:
        """The PBX link went down under a call controlled over it (AsyncAGI) that waits in
        room ``room`` of the daemon's (an open line, an agent's own outbound call): it left
        our control, and goes on in its room. :attr:`left_rooms` looks after it from now
        on: once nobody is within the agent's reach, a line is sent through ``*70`` again
        and a dial's agent hung up (so they know)."""
        if self.left_rooms is not None:
            self.left_rooms.watch(room, call.info.call_id)
        log.info("room_leg_left_after_link_loss", channel=call.info.channel, room=room)

    @property
    def draining(self) -> bool:
        return not self._taking.is_set()

    @property
    def drained(self) -> bool:
        """No call in progress, no callback or campaign dial waiting for its answer, and
        no agent owing a call its disposition (the code is the call's record too, and only
        this daemon knows which call it is for). Agents' open lines do not count: they are
        closed when the daemon stops."""
        return (
            all(self.lines.on_line(call_id) for call_id in self.active)
            and not self._callbacks
            and not self.router.owing_dispositions()
        )

    @property
    def dials_in_progress(self) -> int:
        """Callbacks and campaign dials placed and not yet answered or failed."""
        return len(self._callbacks)

    def begin_drain(self) -> None:
        """Take no new work: a caller arriving from now on is sent to the PBX's failover
        (:meth:`Call.fail_over <callcenter.pbx.interface.Call.fail_over>`, recorded with
        ``hung_up_by`` ``draining``), and callers waiting for a queue callback are not
        called back (they keep their place, for :meth:`end_drain` or the next daemon).
        Served as before: the calls in progress (transfers, consultations, supervisors
        included), agents' and supervisors' feature codes, and the answers to callbacks
        and campaign dials already placed. Campaigns are the caller's to pause."""
        if self._taking.is_set():
            self._taking.clear()
            log.info("drain_begun", calls=len(self.active), dials=len(self._callbacks))

    def end_drain(self) -> None:
        """Take calls again (a drain called off)."""
        if not self._taking.is_set():
            self._taking.set()
            log.info("drain_called_off", calls=len(self.active))

    def flip(self, name: str, on: bool, *, via: str = "cli") -> bool:
        """Turn switch ``name`` (``ivr.switches``) on or off for the calls arriving from
        now on; False when it already was. Raises EngineError for a switch the config
        does not have."""
        if name not in self.config.ivr.switches:
            known = ", ".join(self.config.ivr.switches) or "none (ivr.switches)"
            raise EngineError(f"no switch {name!r}; the config has: {known}")
        if self.switches.get(name, False) == on:
            return False
        self.switches[name] = on
        self.switch_changes[name] = (datetime.now(UTC), via)
        self.bus.publish(SwitchFlipped(name=name, on=on, via=via))
        log.info("switch_flipped", switch=name, on=on, via=via)
        return True

    def switch_views(self) -> list[dict[str, Any]]:
        """Every configured switch: name, what it is for, on, since when and how."""
        views = []
        for name, purpose in self.config.ivr.switches.items():
            changed = self.switch_changes.get(name)
            views.append(
                {
                    "name": name,
                    "description": purpose,
                    "on": self.switches.get(name, False),
                    "since": changed[0].isoformat(timespec="seconds") if changed else None,
                    "via": changed[1] if changed else None,
                }
            )
        return views

    def _turns_away(self, info: CallInfo) -> bool:
        """Is this a new caller a draining daemon sends to the failover?"""
        return not (
            self._taking.is_set() or info.route in FEATURE_ROUTES or info.params.get("callback")
        )

    async def close(self) -> None:
        """Stop background work: callbacks not placed yet are dropped (their requests leave
        the queues), held callers get their agent back and consultations become three-way
        calls (:meth:`Consultations.settle_for_stop`). Calls whose tasks are cancelled from
        now on (the driver stopping) are let go, not hung up: the PBX keeps them (see
        :meth:`handle_call`)."""
        self._closing = True
        await self.lines.close()
        await self.dials.close()
        try:
            async with asyncio.timeout(STOP_SETTLE):
                await self.consults.settle_for_stop()
        except TimeoutError:
            log.warning("rooms_not_settled", seconds=STOP_SETTLE)
        await self.monitoring.close()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ entry point

    async def handle_call(self, call: Call) -> None:
        """Handle one call from arrival to hang-up; never raises for call-level failures."""
        info = call.info
        config = self.config
        started = time.monotonic()
        clog = log.bind(call_id=info.call_id, channel=info.channel, route=info.route)
        active = ActiveCall(call=call, started=started)
        self.active[info.call_id] = active
        self._idle.clear()
        self.bus.publish(
            CallStarted(
                call_id=info.call_id,
                channel=info.channel,
                caller_num=info.caller_num,
                caller_name=info.caller_name,
                dialed=info.dialed,
                context=info.context,
                linked_id=info.linked_id or info.call_id,
                accountcode=info.accountcode,
                transport=info.transport,
            )
        )
        clog.info("call_started", caller=info.caller_num, dialed=info.dialed)
        hung_up_by = "system"
        link_lost = False
        try:
            if self._turns_away(info):
                hung_up_by = LEFT_WHILE_DRAINING
                self.refused += 1
                clog.info("call_sent_to_failover_while_draining", caller=info.caller_num)
                await call.fail_over()
            elif info.route in AGENT_ROUTES:
                await self._feature_code(call, info.route.removeprefix("agent-"), config)
            elif info.route in SUPERVISOR_ROUTES:
                await self._supervisor_code(call, SUPERVISOR_ROUTES[info.route], config)
            elif info.route == SWITCH_ROUTE:
                await self._switch_code(call, config)
            elif info.route == QUEUE_STATUS_ROUTE:
                await self._queue_status_code(call, config)
            elif info.route == DESK_ROUTE:
                await self._desk_code(call, config)
            elif info.route == LINE_ROUTE:
                await self.lines.run(call, config)
            elif info.route == DIAL_ROUTE:
                hung_up_by = await self.dials.run(call, config)
            elif info.params.get("callback"):
                hung_up_by = await self._callback_answered(
                    call, active, config, info.params["callback"]
                )
            else:
                hung_up_by = await self._inbound(call, active, config)
        except CallHungUp:
            hung_up_by = "caller"
        except PBXError as exc:
            link_lost = isinstance(exc, PBXConnectionError)
            # A lost link is logged once as a warning by its driver; its calls (hundreds in
            # a busy IVR) say so at info, their records say link_lost.
            said = clog.info if link_lost else clog.warning
            said("call_failed", error=str(exc), error_type=type(exc).__name__)
            if isinstance(exc, CommandResultLost):
                # The link is back, the caller waits for commands: the driver takes them
                # back as a new call, whose record replaces this one. No hang-up.
                hung_up_by = LEFT_ON_LINK_LOSS
        except asyncio.CancelledError:
            if self._closing:
                # The daemon is stopping. The call is the PBX's again (the driver's
                # hand_back says how): a bridged caller keeps talking, others go on in the
                # dialplan or wait parked for the next daemon. Hanging up here would cut
                # them all off, and a FastAGI HANGUP would wait for a running Dial to end.
                hung_up_by = LEFT_AT_SHUTDOWN
                clog.info("call_let_go_at_shutdown")
            else:
                clog.info("call_task_cancelled")
            raise
        finally:
            self.active.pop(info.call_id, None)
            if not self.active:
                self._idle.set()
            self._release_leftovers(active, info.call_id)
            if active.conference is not None and hung_up_by != LEFT_AT_SHUTDOWN:
                self.consults.room_abandoned(active)
            try:
                if not call.hung_up and hung_up_by not in LEFT_TO_PBX:
                    with contextlib.suppress(PBXError):
                        await call.hangup()
                    if link_lost and not call.hung_up:
                        # The PBX link went down under the call and the hang-up could not
                        # be sent either: the caller may still be there, and the driver
                        # takes them back after the reconnect (AsyncAGI); that record
                        # replaces this one.
                        hung_up_by = LEFT_ON_LINK_LOSS
            except asyncio.CancelledError:
                # The stop cut the hang-up short: the call is left to the PBX, and its end
                # is still published below, or the call would have no record at all.
                if self._closing and not call.hung_up:
                    hung_up_by = LEFT_AT_SHUTDOWN
                raise
            finally:
                self._call_ended(call, active, hung_up_by, clog)

    def _call_ended(self, call: Call, active: ActiveCall, hung_up_by: str, clog: Any) -> None:
        """The call's end, for the records (published once, however the call's task ends)."""
        cause = call.hangup_cause
        if cause is HangupCause.UNSPECIFIED:
            cause = active.bridge_cause
        if cause is HangupCause.UNSPECIFIED and hung_up_by not in (*LEFT_TO_PBX, "caller"):
            cause = HangupCause.NORMAL_CLEARING
        self.bus.publish(
            CallEnded(
                call_id=call.info.call_id,
                hung_up_by=hung_up_by,
                cause=int(cause),
                cause_name=cause.name,
            )
        )
        clog.info("call_ended", hung_up_by=hung_up_by, cause=cause.name)

    async def wait_idle(self) -> None:
        """Return once no call is being handled."""
        await self._idle.wait()

    def _release_leftovers(self, active: ActiveCall, call_id: str) -> None:
        """After a call ends however it ended, no agent stays reserved or on it."""
        if active.agent is not None and self._by_agent.get(active.agent) == call_id:
            del self._by_agent[active.agent]
        pending = active.pending_transfer
        if pending is not None and pending in self.router.agents:
            with contextlib.suppress(EngineError):
                self.router.release(pending)
        for agent_id in active.talked_to:
            agent = self.router.agents.get(agent_id)
            if agent is not None and agent.call_id == call_id and str(agent.state) == "on_call":
                self.router.call_finished(agent.id, active.queue)

    # ------------------------------------------------------------------ inbound calls

    async def _inbound(self, call: Call, active: ActiveCall, config: CallCenterConfig) -> str:
        """The inbound path; returns who ended the call.

        The call keeps ``config`` (the config when it arrived) for its whole IVR walk,
        subflows included: a reload only changes calls that arrive afterwards.
        """
        info = call.info
        hook = read_hook(info.params, config) if info.params else EMPTY_HOOK
        for problem in hook.problems:
            log.warning(
                "dialplan_hook_ignored",
                call_id=info.call_id,
                problem=problem,
                hint="fix the parameters of the dialplan's inbound hook",
            )
        for name, value in hook.variables:
            active.variables[name] = value
            self.bus.publish(
                IvrVariableSet(
                    call_id=info.call_id, flow="dialplan", node=info.route, name=name, value=value
                )
            )
        route = config.routes.get(info.dialed) or config.routes.get("default")
        # A call taken as the link drops (adopted at a reconnection that is cut again).
        await self._through_outage(call, call.answer, "answer")
        self.bus.publish(CallAnswered(call_id=info.call_id))
        if hook.queue is not None:
            active.skills = hook.skills
            return await self._queue(call, active, config, hook.queue, hook.priority)
        flow = hook.flow or (route.flow if route is not None else None)
        if flow is None:
            log.warning("no_route_for_dialed_number", dialed=info.dialed, call_id=info.call_id)
            await call.play(["ss-noservice"])
            return "system"

        return await self._walk(call, active, config, flow, variables=dict(hook.variables))

    async def _walk(
        self,
        call: Call,
        active: ActiveCall,
        config: CallCenterConfig,
        flow: str,
        *,
        on_event: IvrListener | None = None,
        ended_by: str = "system",
        variables: Mapping[str, str] | None = None,
    ) -> str:
        """Walk the caller through IVR flow ``flow`` and on to where it sends them (a
        transfer, a queue); returns who ended the call (``ended_by`` when the flow hung up).
        ``on_event`` hears the walk's steps as well; ``variables``: the walk starts with
        them (the dialplan's)."""
        info = call.info

        def record(event: IvrEvent) -> None:
            if on_event is not None:
                on_event(event)
            self._ivr_event(info.call_id, active, event)

        runner = FlowRunner(
            call,
            config,
            on_event=record,
            clock=self.clock,
            fetch=self.lookup_fetch,
            switches=self.switches,
            queue_look=self.queue_look,
            number_lists=self.lists.merged(config),
            variables=variables,
            link_back=lambda exc: self._link_back(
                call, exc, time.monotonic() + IVR_LINK_WAIT, "ivr"
            ),
        )
        outcome = await runner.run(flow)
        if isinstance(outcome, Transferred):
            active.path.append(f"transfer:{outcome.number}")
            self.bus.publish(
                CallTransferred(call_id=info.call_id, by="ivr", to=outcome.number, kind="blind")
            )
            return "system"
        if isinstance(outcome, Hangup):
            return ended_by
        active.skills = outcome.skills
        return await self._queue(
            call,
            active,
            config,
            outcome.queue,
            outcome.priority,
            agent=outcome.agent,
            agent_wait=outcome.agent_wait,
            head_start=outcome.head_start,
        )

    def supervisor_device(self, supervisor_id: str) -> str:
        """The phone supervisor ``supervisor_id`` works at now: their desk, or their own."""
        desk = self.supervisor_desks.get(supervisor_id)
        return desk[0] if desk is not None else self.config.supervisors[supervisor_id].device

    def seat_supervisor(self, supervisor_id: str, device: str | None, *, via: str = "cli") -> bool:
        """Supervisor ``supervisor_id`` works at ``device`` from now on (None or their own
        phone: back at it): monitoring and help ring it, and the feature codes dialled from
        it are theirs (their PIN asked). Kept across reloads and restarts. False when
        nothing changed. Raises UnknownSupervisor, NotPermitted (no ``hot_desk``) or
        EngineError for something no phone."""
        cfg = self.config.supervisors.get(supervisor_id)
        if cfg is None:
            raise UnknownSupervisor(f"unknown supervisor {supervisor_id}")
        if device == cfg.device:
            device = None
        if device is not None:
            if not cfg.hot_desk:
                raise NotPermitted(
                    f"supervisor {supervisor_id} works at their own phone only "
                    f"(supervisors.{supervisor_id}.hot_desk)"
                )
            try:
                _DEVICE.validate_python(device)
            except ValidationError as exc:
                raise EngineError(exc.errors()[0]["msg"]) from None
            if device.startswith(EXTERNAL_TECH):
                raise EngineError("a desk is a phone on the PBX, not an outside number")
        current = self.supervisor_desks.get(supervisor_id)
        if (current[0] if current is not None else None) == device:
            return False
        if device is None:
            del self.supervisor_desks[supervisor_id]
        else:
            self.supervisor_desks[supervisor_id] = (device, datetime.now(UTC), via)
        self.bus.publish(SupervisorSeated(supervisor=supervisor_id, device=device or "", via=via))
        log.info("supervisor_seated", supervisor=supervisor_id, device=device or cfg.device)
        return True

    def restore_supervisor_desks(self, kept: Sequence[tuple[str, str, datetime, str]]) -> int:
        """Seat the supervisors a previous daemon had at another phone (those the config
        still lets work there); returns how many."""
        taken = 0
        for supervisor_id, device, since, via in kept:
            cfg = self.config.supervisors.get(supervisor_id)
            if cfg is not None and cfg.hot_desk and device != cfg.device:
                self.supervisor_desks[supervisor_id] = (device, since, via)
                taken += 1
        return taken

    def block_caller(self, agent_id: str) -> dict[str, Any]:
        """Put the number of the call ``agent_id`` talks on (or talked on last) on
        ``acd.agent_block_list``: an abusive caller. EngineError when no list is set, the
        agent has had no call, the number is withheld, or it is one of the centre's own
        phones."""
        name, call = self._block_list_call(agent_id, "block")
        number = call.number
        if not DIALABLE_NUMBER.fullmatch(number):
            raise EngineError(f"the caller's number is withheld ({number or 'none'})")
        own = {agent.device.partition("/")[2] for agent in self.config.agents.values()}
        if number in own:
            raise EngineError(f"{number} is a phone of the centre's own")
        added = self.lists.add(name, number, via=f"agent:{agent_id}")
        log.info("caller_blocked", agent=agent_id, number_list=name, call_id=call.call_id)
        return {"agent": agent_id, "number": number, "number_list": name, "added": added}

    def unblock_caller(self, agent_id: str) -> dict[str, Any]:
        """Take the number of ``agent_id``'s call (or last call) off ``acd.agent_block_list``
        when they put it there (a mistake undone). EngineError when no list is set, the
        agent has had no call, or the number is not there by them (someone else's entry is
        ops' or their supervisor's to take off: ``numbers remove``)."""
        name, call = self._block_list_call(agent_id, "unblock")
        number = call.number
        if not self.blocked_by(agent_id):
            raise EngineError(f"{number} is not on the list {name} by agent {agent_id}")
        self.lists.remove(name, number, via=f"agent:{agent_id}")
        log.info("caller_unblocked", agent=agent_id, number_list=name, call_id=call.call_id)
        return {"agent": agent_id, "number": number, "number_list": name, "removed": True}

    def _block_list_call(self, agent_id: str, verb: str) -> tuple[str, AgentCall]:
        """``acd.agent_block_list`` and the call ``agent_id`` talks on (or talked on last),
        to ``verb`` its caller; EngineError when there is no list or no call."""
        name = self.config.acd.agent_block_list
        if name is None:
            raise EngineError("agents block no caller here (acd.agent_block_list)")
        call = self.dispositions.call_of(agent_id)
        if call is None:
            raise EngineError(f"agent {agent_id} has had no call to {verb} the caller of")
        return name, call

    def blocked_by(self, agent_id: str) -> bool:
        """Did ``agent_id`` put the number of their call (or last call) on
        ``acd.agent_block_list``? (Their desktop then offers to unblock it.)"""
        name = self.config.acd.agent_block_list
        call = self.dispositions.call_of(agent_id)
        if name is None or call is None:
            return False
        return self.lists.added_by(name, call.number) == f"agent:{agent_id}"

    def clock_utc(self) -> datetime:
        """Now by the switchboard's clock (a test's or ``simulate``'s too), in UTC."""
        now = self.clock()
        return now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def opens_at(
        self, qcfg: QueueConfig, config: CallCenterConfig, moment: datetime
    ) -> datetime | None:
        """When the queue takes callers at or after ``moment`` (UTC): ``moment`` itself when
        it is open then or has no ``opening``; None when it opens on none of the next two
        weeks."""
        hours = qcfg.opening
        if hours is None:
            return moment
        local = local_time(moment, hours.timezone or config.ivr.timezone)
        opens = opening_hours(hours).next_opening(local)
        return opens.astimezone(UTC) if opens is not None else None

    def queue_closed(self, queue: str) -> str | None:
        """Why ``queue`` takes no callers now by its own ``opening`` hours, or None (open,
        or no hours, or no such queue)."""
        qcfg = self.config.queues.get(queue)
        return self._queue_closed(qcfg, self.config) if qcfg is not None else None

    def queue_opens_at(self, queue: str) -> datetime | None:
        """When ``queue`` takes callers again by its ``opening`` hours (UTC; now when it is
        open); None when it opens on none of the next two weeks (or there is no such
        queue)."""
        qcfg = self.config.queues.get(queue)
        if qcfg is None:
            return None
        return self.opens_at(qcfg, self.config, self.clock_utc())

    def _queue_closed(self, qcfg: QueueConfig, config: CallCenterConfig) -> str | None:
        """Why the queue does not take callers now (its ``opening`` hours), or None."""
        hours = qcfg.opening
        if hours is None:
            return None
        now = local_time(self.clock(), hours.timezone or config.ivr.timezone)
        return opening_hours(hours).closed_because(now)

    def look_at_queue(self, queue: str) -> QueueLook:
        """``queue``'s state now, as a branch case's ``queue:`` tests it."""
        if queue not in self.config.queues:
            return QueueLook()
        router = self.router
        config = self.config
        return QueueLook(
            waiting=router.waiting(queue),
            free=router.free_agents(queue),
            staffed=router.staffed(queue),
            expected_wait=router.expected_wait(queue),
            closed=self._queue_closed(config.queues[queue], config) is not None,
        )

    def _ivr_event(self, call_id: str, active: ActiveCall, event: IvrEvent) -> None:
        """Record one IVR step on the call and publish what records need."""
        if isinstance(event, NodeEntered):
            if event.digits:
                active.path.append(event.digits)
            active.path.append(f"{event.flow}:{event.node}")
            self.bus.publish(
                IvrStep(call_id=call_id, flow=event.flow, node=event.node, digits=event.digits)
            )
        elif isinstance(event, VariableSet):
            active.variables[event.name] = event.value
            self.bus.publish(
                IvrVariableSet(
                    call_id=call_id,
                    flow=event.flow,
                    node=event.node,
                    name=event.name,
                    value=event.value,
                )
            )
        elif isinstance(event, VoicemailRecorded):
            self.bus.publish(self._voicemail_left(active, event.box, event.path, event.seconds))
        elif isinstance(event, CallbackTaken):
            self.bus.publish(
                CallbackRequested(
                    call_id=call_id,
                    number=event.number,
                    queue=event.queue,
                    caller_num=active.call.info.caller_num,
                )
            )
        for listener in self.ivr_listeners:
            try:
                listener(call_id, event)
            except Exception:
                log.exception("ivr_listener_failed", call_id=call_id)

    async def _queue(
        self,
        call: Call,
        active: ActiveCall,
        config: CallCenterConfig,
        queue_name: str,
        priority: int,
        *,
        skills: Sequence[str] | None = None,
        agent: str = "",
        agent_wait: float = 0.0,
        head_start: float = 0.0,
        sent_by: str = "",
        greet: bool = True,
    ) -> str:
        """Wait in ``queue_name`` until an agent answers or a queue rule sends the caller
        elsewhere; returns who ended the call.

        ``sent_by``: the agent who transferred the caller here, offered them only when no
        other agent may take them. ``greet``: False for a caller back in a queue they were
        in (the queue's ``announce`` is not played again).

        ``agent``: offered the caller first when free (the IVR's ``agent_from``, before
        ``last_agent``); while busy, waited for alone up to ``agent_wait`` seconds.
        ``head_start``: seconds the caller is served as if they had joined earlier.

        ``skills``: what an agent needs to take the caller (default: ``active.skills``, set
        by the IVR); the queue's own skills are added by the router. A full queue
        (``max_length``) or one nobody could serve (``join_empty: false``) refuses the
        caller at once: ``on_full`` / ``on_empty``.
        """
        info = call.info
        qcfg: QueueConfig = config.queues[queue_name]
        needed = tuple(skills) if skills is not None else active.skills
        active.queue = queue_name
        active.queue_priority = priority
        active.queue_hops += 1
        qlog = log.bind(call_id=info.call_id, queue=queue_name)
        if active.queue_hops > MAX_QUEUE_HOPS:
            # Exits that send callers from queue to queue could bounce forever.
            qlog.warning("queue_hops_exhausted", hops=active.queue_hops)
            await call.play([qcfg.timeout_prompt])
            return "system"
        refused: tuple[str, QueueExit] | None = None
        if qcfg.max_length and self.router.waiting(queue_name) >= qcfg.max_length:
            refused = ("full", qcfg.on_full)
        elif not qcfg.join_empty and not self.router.has_agents_for(queue_name, needed):
            refused = ("joinempty", qcfg.on_empty)
        elif qcfg.opening is not None and (why := self._queue_closed(qcfg, config)) is not None:
            qlog.info("queue_closed", why=why)
            refused = ("closed", qcfg.on_closed)
        if refused is not None:
            reason, dest = refused
            self.bus.publish(
                QueueExited(call_id=info.call_id, queue=queue_name, reason=reason, wait_seconds=0)
            )
            qlog.info("queue_refused", reason=reason, to=dest.to)
            if dest.to == "callback" and self.callbacks.allowed(config, info.caller_num):
                if reason == "closed":
                    opens = self.opens_at(qcfg, config, self.clock_utc())
                    if opens is not None:
                        return await self._call_back_at(
                            call, active, qcfg, priority, at=opens, dest=dest
                        )
                entry = self.router.enqueue(
                    queue_name, info.call_id, priority=priority, skills=needed
                )
                return await self._keep_place(call, config, entry, time.monotonic(), dest)
            return await self._go(call, active, config, qcfg, dest, priority=priority)
        joined = time.monotonic()
        kept = (
            self._place_kept(queue_name, info.caller_num, joined) if qcfg.resume_abandoned else None
        )
        place = kept
        if qcfg.seniority == "call" and (place is None or active.started < place):
            place = active.started  # the whole wait counts: IVR, other queues, a talk
        entry = self.router.enqueue(
            queue_name,
            info.call_id,
            priority=priority,
            skills=needed,
            joined=place,
            head_start=head_start,
            others_first=sent_by,
        )
        position = self.router.position(entry)
        self.bus.publish(
            QueueJoined(
                call_id=info.call_id,
                queue=queue_name,
                position=position,
                priority=priority,
                resumed=kept is not None,
            )
        )
        if self.callbacks.scheduled:
            self.callbacks.called_again(queue_name, info.caller_num)
        hold: tuple[asyncio.Future[bool], float] | None = None
        if agent:
            hold = self._prefer(entry, agent, agent_wait, qlog, "preferred_agent")
        elif qcfg.last_agent and not active.variables.get("campaign"):
            last = await self.last_agent(queue_name, info.caller_num, qcfg.last_agent)
            if last is not None and last != sent_by:
                hold = self._prefer(entry, last, qcfg.last_agent_wait, qlog, "last_agent")
        qlog.info(
            "queue_joined",
            position=position,
            skills=sorted(entry.skills),
            resumed=kept is not None,
        )
        return await self._wait_in_queue(
            call,
            active,
            config,
            entry,
            joined=joined,
            deadline=joined + qcfg.max_wait,
            greet=greet,
            resumed=kept is not None,
            hold=hold,
        )

    def _prefer(
        self, entry: QueueEntry, agent: str, wait: float, qlog: Any, why: str
    ) -> tuple[asyncio.Future[bool], float] | None:
        """Offer ``agent`` the caller now if they are free; else, with ``wait``, keep them
        for the caller that long (the hold :meth:`_wait_in_queue` waits out). ``why``
        names the log lines (``last_agent_offered``, ``preferred_agent_awaited``)."""
        if self.router.prefer(entry, agent):
            qlog.info(f"{why}_offered", agent=agent)
            return None
        if wait <= 0:
            return None
        held = self.router.hold_for(entry, agent)
        if held is None:
            return None
        qlog.info(f"{why}_awaited", agent=agent, seconds=wait)
        return held, wait

    async def _hunt_after_hold(
        self, entry: QueueEntry, held: asyncio.Future[bool], seconds: float
    ) -> list[Agent]:
        """The caller waits up to ``seconds`` for the agent kept for them (their sticky
        agent, busy), then for anyone; the agents :meth:`Router.next_agents` gives."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(held), seconds)
        except asyncio.CancelledError:
            self.router.release_hold(entry)
            self.router.stop_hunting(entry)  # a reservation the hold got meanwhile
            raise
        kept = held.done() and held.result()
        self.router.release_hold(entry)
        if not kept:
            log.info("last_agent_not_awaited_longer", call_id=entry.call_id)
        return await self.router.next_agents(entry)

    async def last_agent(self, queue_name: str, number: str, window: float) -> str | None:
        """The agent who took ``number``'s last call of ``queue_name`` less than ``window``
        seconds ago: this daemon's memory first, then the records. None when unknown, for
        a number that is no number, or when the records cannot be read (logged)."""
        if not DIALABLE_NUMBER.fullmatch(number):
            return None
        kept = self._last_agents.get((queue_name, number))
        if kept is not None and time.monotonic() - kept[1] <= window:
            return kept[0]
        if self.last_agent_lookup is None:
            return None
        since = datetime.now(UTC) - timedelta(seconds=window)
        try:
            # The caller waits meanwhile, and a database in trouble must not hold them.
            async with asyncio.timeout(LAST_AGENT_LOOKUP):
                return await self.last_agent_lookup(number, queue_name, since)
        except (RecordError, TimeoutError) as exc:
            log.warning("last_agent_not_read", queue=queue_name, error=str(exc) or "timeout")
            return None

    def _remember_agent(self, qcfg: QueueConfig, queue_name: str, number: str, agent: str) -> None:
        if not qcfg.last_agent or not DIALABLE_NUMBER.fullmatch(number):
            return
        now = time.monotonic()
        if len(self._last_agents) >= self._last_agents_prune_at:
            window = max((q.last_agent for q in self.config.queues.values()), default=0.0)
            self._last_agents = {k: v for k, v in self._last_agents.items() if now - v[1] <= window}
            self._last_agents_prune_at = max(ABANDONED_PRUNE_MIN, 2 * len(self._last_agents))
        self._last_agents[(queue_name, number)] = (agent, now)

    def _place_kept(self, queue_name: str, number: str, now: float) -> float | None:
        """When a caller calling ``queue_name`` again had joined it, if they hung up there
        less than ``resume_abandoned`` seconds ago (they take that place back, once)."""
        kept = self._abandoned.pop((queue_name, number), None)
        if kept is None or now > kept[1]:
            return None
        return kept[0]

    def restore_abandoned_places(self, visits: Sequence[QueueVisit], now: datetime) -> int:
        """Callers who hung up in a queue with ``resume_abandoned`` shortly before this
        daemon started keep their place as if it had run all along. ``visits``: the CDRs of
        the calls that joined a queue lately, oldest first (a number's latest call in a
        queue counts: one that came after the abandon used the place up); ``now``: when.
        Returns how many places are kept."""
        latest = {(visit.queue, visit.number): visit for visit in visits}
        mono = time.monotonic()
        kept = 0
        for key, visit in latest.items():
            qcfg = self.config.queues.get(visit.queue)
            if (
                qcfg is None
                or not qcfg.resume_abandoned
                or not visit.abandoned
                or visit.campaign
                or not DIALABLE_NUMBER.fullmatch(visit.number)
                or key in self._abandoned
            ):
                continue
            left = qcfg.resume_abandoned - (now - visit.end).total_seconds()
            if left <= 0:
                continue
            joined = visit.end - timedelta(seconds=visit.wait_seconds)
            self._abandoned[key] = (mono - (now - joined).total_seconds(), mono + left)
            kept += 1
        return kept

    def _remember_abandon(
        self, qcfg: QueueConfig, active: ActiveCall, entry: QueueEntry, number: str, now: float
    ) -> None:
        """The caller hung up in the queue: with ``resume_abandoned``, a known number may
        take the place back if it calls again in time (campaign leads never do)."""
        if (
            not qcfg.resume_abandoned
            or not DIALABLE_NUMBER.fullmatch(number)
            or active.variables.get("campaign")
        ):
            return
        if len(self._abandoned) >= self._abandoned_prune_at:
            self._abandoned = {k: v for k, v in self._abandoned.items() if v[1] >= now}
            self._abandoned_prune_at = max(ABANDONED_PRUNE_MIN, 2 * len(self._abandoned))
        self._abandoned[(entry.queue, number)] = (entry.joined, now + qcfg.resume_abandoned)

    async def _wait_in_queue(
        self,
        call: Call,
        active: ActiveCall,
        config: CallCenterConfig,
        entry: QueueEntry,
        *,
        joined: float,
        deadline: float,
        greet: bool,
        on_timeout: tuple[str, QueueExit] | None = None,
        resumed: bool = False,
        hold: tuple[asyncio.Future[bool], float] | None = None,
    ) -> str:
        """The caller waits with music on hold: agents are rung as the router reserves them,
        announcements play between offers, exit keys and exit rules are watched.
        ``on_timeout``: (reason, where) at ``deadline`` instead of the queue's ``timeout``
        / ``on_timeout``. ``resumed``: the caller took back the place they abandoned (they
        are greeted with ``resumed_prompt``). ``hold``: an agent kept for the caller
        (:meth:`Router.hold_for`) and how long they wait for them alone."""
        info = call.info
        queue_name = entry.queue
        qcfg = config.queues[queue_name]
        qlog = log.bind(call_id=info.call_id, queue=queue_name)
        waiting = _Waiting.start(qcfg, time.monotonic())
        hunt: asyncio.Future[list[Agent]] | None = None
        connected: tuple[Agent, DialResult] | None = None
        empty_since: float | None = None  # nobody could take the caller since (empty_grace)
        withdrawal: asyncio.Future[QueueExit] = asyncio.get_running_loop().create_future()
        self._withdrawals[info.call_id] = withdrawal
        try:
            # Hunting starts at once: an agent may be reserved while the greeting plays.
            hunt = asyncio.ensure_future(
                self.router.next_agents(entry)
                if hold is None
                else self._hunt_after_hold(entry, *hold)
            )
            greeting = (resumed and qcfg.resumed_prompt) or qcfg.announce
            try:
                if greet and greeting:
                    await call.play([greeting])
                if greet and not hunt.done():
                    await self._announce(call, entry, qcfg, waiting, force=True)
                if not hunt.done():
                    # One loop turn lets the hunt reserve a free agent (it only waits when
                    # there is none). A reserved agent is rung at once, the queue's music
                    # playing while it rings (the dial's hold_music): starting the music
                    # first costs PBX commands.
                    await asyncio.sleep(0)
                if not hunt.done():
                    await call.start_hold_music(qcfg.hold_music)
            except PBXConnectionError as exc:
                # The caller has their place already; the greeting is not played again.
                await self._outlast_outage(call, exc, deadline, qcfg)
            while connected is None:
                now = time.monotonic()
                if withdrawal.done():
                    raise _LeaveQueue(WITHDRAWN, withdrawal.result())
                if now >= deadline:
                    raise _LeaveQueue(*(on_timeout or ("timeout", qcfg.on_timeout)))
                if qcfg.leave_when_empty and self.router.is_empty_for(entry):
                    empty_since = now if empty_since is None else empty_since
                    if now - empty_since >= qcfg.empty_grace:
                        raise _LeaveQueue("leaveempty", qcfg.on_empty)
                else:
                    empty_since = None
                if hunt is None and empty_since is None:
                    hunt = asyncio.ensure_future(self.router.next_agents(entry))
                wake = min(deadline, waiting.next_announce, waiting.next_periodic)
                if empty_since is not None:
                    # Nobody to hunt for: look again soon (a phone registering again, an
                    # agent back) and at the end of the grace.
                    wake = min(wake, empty_since + qcfg.empty_grace, now + EMPTY_LOOK)
                try:
                    digit = await self._wait_a_little(
                        call, hunt, wake - now, bool(qcfg.exit_keys), withdrawal
                    )
                except PBXConnectionError as exc:
                    await self._outlast_outage(call, exc, deadline, qcfg)
                    continue
                dest = qcfg.exit_keys.get(digit) if digit else None
                if dest is not None:
                    if dest.to != "callback" or self.callbacks.allowed(config, info.caller_num):
                        raise _LeaveQueue("exitkey", dest, key=digit or "")
                    qlog.info("callback_refused", number=info.caller_num)
                    try:
                        await call.play([qcfg.callback_refused_prompt])
                        await call.start_hold_music(qcfg.hold_music)
                    except PBXConnectionError as exc:
                        await self._outlast_outage(call, exc, deadline, qcfg)
                if hunt is not None and hunt.done():
                    agents = hunt.result()
                    hunt = None
                    if not agents:
                        if not qcfg.empty_grace:
                            raise _LeaveQueue("leaveempty", qcfg.on_empty)
                        continue  # the grace starts at the top of the loop
                    try:
                        connected = await self._offer(
                            call,
                            active,
                            entry=entry,
                            agents=agents,
                            qcfg=qcfg,
                            joined=joined,
                            config=config,
                        )
                        if connected is None:
                            await call.start_hold_music(qcfg.hold_music)
                    except PBXConnectionError as exc:
                        await self._outlast_outage(call, exc, deadline, qcfg)
                    continue
                if time.monotonic() >= min(waiting.next_announce, waiting.next_periodic):
                    try:
                        await self._announce(call, entry, qcfg, waiting)
                        await call.start_hold_music(qcfg.hold_music)
                    except PBXConnectionError as exc:
                        await self._outlast_outage(call, exc, deadline, qcfg)
        except _LeaveQueue as leaving:
            await self._drop_hunt(entry, hunt)
            hunt = None
            waited = time.monotonic() - joined
            dest = leaving.dest
            position = self.router.position(entry)
            if (
                dest is not None
                and dest.to == "callback"
                and self.callbacks.allowed(config, info.caller_num)
            ):
                self.bus.publish(
                    QueueExited(
                        call_id=info.call_id,
                        queue=queue_name,
                        reason="callback",
                        wait_seconds=waited,
                        position=position,
                        key=leaving.key,
                    )
                )
                return await self._keep_place(call, config, entry, joined, dest)
            self.router.leave(entry)
            self.bus.publish(
                QueueExited(
                    call_id=info.call_id,
                    queue=queue_name,
                    reason=leaving.reason,
                    wait_seconds=waited,
                    position=position,
                    key=leaving.key,
                )
            )
            qlog.info("queue_left", reason=leaving.reason, waited=round(waited, 3))
            await self._through_outage(call, call.stop_hold_music, "queue")
            return await self._go(call, active, config, qcfg, dest, priority=entry.priority)
        except (CallHungUp, CallerGone):
            await self._drop_hunt(entry, hunt)
            hunt = None
            if connected is None:
                position = self.router.position(entry)
                self.router.leave(entry)
                waited = time.monotonic() - joined
                self.bus.publish(
                    QueueAbandoned(
                        call_id=info.call_id,
                        queue=queue_name,
                        position=position,
                        wait_seconds=waited,
                    )
                )
                qlog.info("queue_abandoned", waited=round(waited, 3))
                self._remember_abandon(qcfg, active, entry, info.caller_num, time.monotonic())
                self.callbacks.after_abandon(qcfg, active, entry, info.caller_num, waited)
            raise CallHungUp("caller hung up in queue") from None
        except BaseException:
            # Cancelled (daemon stopping) or a PBX failure: nobody stays reserved or queued.
            await self._drop_hunt(entry, hunt)
            hunt = None
            self.router.leave(entry)
            raise
        finally:
            if self._withdrawals.get(info.call_id) is withdrawal:
                del self._withdrawals[info.call_id]
            await self._drop_hunt(entry, hunt)
        agent, result = connected
        return await self._talk(call, active, queue_name, agent, result)

    async def _wait_a_little(
        self,
        call: Call,
        hunt: asyncio.Future[list[Agent]] | None,
        seconds: float,
        keys: bool,
        withdrawal: asyncio.Future[QueueExit],
    ) -> str:
        """Wait up to ``seconds`` for agents (``hunt``; None: no hunt runs), a supervisor
        sending the caller elsewhere (``withdrawal``), the caller hanging up (CallerGone)
        or, when ``keys`` (exit keys are set), a key: the key pressed, or ``""``.

        With exit keys the wait is a digit read. Where it is a PBX command, it lasts at most
        EXIT_KEY_POLL seconds: a command cannot be interrupted, so a reservation made
        meanwhile waits for its end. Where the keys come as events
        (:attr:`Call.keys_without_command`), the read ends as soon as an agent is found.
        """
        if seconds <= 0 or (hunt is not None and hunt.done()) or withdrawal.done():
            return ""
        if keys and call.keys_without_command:
            read = asyncio.ensure_future(
                call.read_digits(None, max_digits=1, timeout=seconds, terminator="")
            )
            news: set[asyncio.Future[Any]] = {read, withdrawal}
            if hunt is not None:
                news.add(hunt)
            try:
                await asyncio.wait(news, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not read.done():
                    await cancel_and_wait(read)
            return read.result()[:1] if not read.cancelled() else ""
        if keys:
            digits = await call.read_digits(
                None, max_digits=1, timeout=min(seconds, EXIT_KEY_POLL), terminator=""
            )
            return digits[:1]
        gone: asyncio.Future[None] = asyncio.ensure_future(call.wait_hangup())
        both: set[asyncio.Future[Any]] = (
            {gone, withdrawal} if hunt is None else {hunt, gone, withdrawal}
        )
        try:
            done, _ = await asyncio.wait(both, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not gone.done():
                await cancel_and_wait(gone)
        if gone in done:
            raise CallerGone
        return ""

    async def _outlast_outage(
        self, call: Call, exc: PBXConnectionError, until: float, qcfg: QueueConfig
    ) -> None:
        """A command for a caller waiting in a queue could not be sent: the PBX link is
        down. The caller keeps their place (the PBX plays their music on) until the link is
        back, then hears the queue's music again. At ``until`` (the queue's deadline) with
        the link still down it returns all the same: the caller leaves the queue by its
        timeout, whose commands wait for the link in turn (:meth:`_through_outage`).
        Raises ``exc`` again when the call's control went with the link."""
        if isinstance(exc, CommandResultLost):
            raise exc
        if await self._link_back(call, exc, until, "queue"):
            await call.start_hold_music(qcfg.hold_music)

    async def _link_back(
        self, call: Call, exc: PBXConnectionError, until: float, where: str
    ) -> bool:
        """A command for ``call`` could not be sent: the PBX link is down. Wait (the PBX
        runs on with what the caller hears) until the link is back: True. False when the
        call's control went with the link (``CommandResultLost``: the driver takes the
        call back) or ``until`` (monotonic) came first; ``CallHungUp`` when the caller
        hung up meanwhile."""
        if isinstance(exc, CommandResultLost):
            return False
        if self._pbx_up.is_set():
            # A request fails a moment before its driver says the link is down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pbx_down.wait(), LINK_DOWN_GRACE)
        log.info("call_outlasts_outage", call_id=call.info.call_id, where=where, error=str(exc))
        up = asyncio.ensure_future(self._pbx_up.wait())
        gone = asyncio.ensure_future(call.wait_hangup())
        try:
            await asyncio.wait(
                (up, gone),
                timeout=max(0.0, until - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            await cancel_and_wait(up, gone)
        if call.hung_up:
            raise CallHungUp(f"{call.info.channel} hung up while the PBX link was down")
        return self._pbx_up.is_set()

    async def _drop_hunt(self, entry: QueueEntry, hunt: asyncio.Future[list[Agent]] | None) -> None:
        """Stop asking the router for agents; agents reserved meanwhile are released."""
        if hunt is None:
            return
        if not hunt.done():
            await cancel_and_wait(hunt)
        elif entry.status is EntryStatus.OFFERED:
            for agent in list(entry.agents):
                self.router.ring_failed(entry, agent, RingOutcome.CANCELLED)

    async def _announce(
        self,
        call: Call,
        entry: QueueEntry,
        qcfg: QueueConfig,
        waiting: _Waiting,
        *,
        force: bool = False,
    ) -> None:
        """Periodic announcements, then position / estimated wait when their time came and
        the position improved since the last one told (within announce_position_limit)."""
        now = time.monotonic()
        if qcfg.periodic_announce and now >= waiting.next_periodic and not force:
            prompts = qcfg.periodic_announce
            index = waiting.periodic_index % len(prompts)
            if qcfg.periodic_announce_order == "random" and len(prompts) > 1:
                # Any but the one just played: a caller never hears the same one twice.
                last = waiting.periodic_last
                index = random.choice([i for i in range(len(prompts)) if i != last])
            await call.play([prompts[index]])
            waiting.periodic_last = index
            waiting.periodic_index += 1
            if qcfg.periodic_announce_relative:
                now = time.monotonic()
            waiting.next_periodic = now + qcfg.periodic_announce_frequency
        if not (force or now >= waiting.next_announce):
            return
        waiting.next_announce = now + qcfg.announce_frequency
        if not (qcfg.announce_position or qcfg.announce_holdtime):
            return
        position = self.router.position(entry)
        if not position or (waiting.told is not None and position >= waiting.told):
            return
        limit = qcfg.announce_position_limit
        said_position: int | None = None
        if qcfg.announce_position and (not limit or position <= limit):
            if position == 1:
                await call.play(["queue-youarenext"])
            else:
                await call.play(["queue-thereare"])
                await call.say("number", str(position))
                await call.play(["queue-callswaiting"])
            said_position = position
        wait = self.router.estimated_wait(entry) if qcfg.announce_holdtime else None
        if wait is not None:
            await call.play(["queue-holdtime"])
            await _say_minutes(call, wait)
        waiting.told = position
        if said_position is not None or wait is not None:
            self.bus.publish(
                QueueAnnounced(
                    call_id=call.info.call_id,
                    queue=entry.queue,
                    position=said_position,
                    wait_seconds=wait,
                )
            )

    async def _go(
        self,
        call: Call,
        active: ActiveCall,
        config: CallCenterConfig,
        qcfg: QueueConfig,
        dest: QueueExit | None,
        *,
        priority: int,
    ) -> str:
        """Send a caller who left a queue unanswered where ``dest`` says; who ended the call.

        ``None`` (no on_timeout): the timeout prompt, then hang up.
        """
        if dest is None:
            await self._through_outage(call, lambda: call.play([qcfg.timeout_prompt]), "queue")
            return "system"
        if dest.prompt:
            prompt = dest.prompt
            await self._through_outage(call, lambda: call.play([prompt]), "queue")
        if dest.to == "queue" and dest.queue is not None:
            return await self._queue(call, active, config, dest.queue, priority)
        if dest.to == "voicemail" and dest.box is not None:
            return await self._queue_voicemail(call, active, config, dest.box)
        if dest.to == "flow" and dest.flow is not None:
            return await self._queue_flow(call, active, config, dest.flow)
        return "system"

    async def _queue_voicemail(
        self, call: Call, active: ActiveCall, config: CallCenterConfig, box: str
    ) -> str:
        """Record a message into ``ivr.voicemail_folder/<box>`` (the IVR's voicemail)."""
        info = call.info
        folder = config.resolve_path(config.ivr.voicemail_folder) / box
        try:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            # The PBX may run elsewhere and own the folder; it reports a failed write itself.
            log.info("voicemail_folder_not_created", folder=str(folder), error=str(exc))
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", info.call_id)
        path = str(folder / f"{stamp}-{safe_id}")
        result = await self._through_outage(
            call, lambda: call.record(path, max_seconds=120), "voicemail"
        )
        active.path.append(f"voicemail:{box}")
        if result.ended == "error":
            log.error("voicemail_not_recorded", call_id=info.call_id, path=result.path)
            return "system"
        if result.empty:
            log.info("voicemail_empty", call_id=info.call_id, ended=result.ended)
            return "caller" if result.ended == "hangup" else "system"
        self.bus.publish(self._voicemail_left(active, box, result.path, result.seconds))
        return "caller" if result.ended == "hangup" else "system"

    def _voicemail_left(
        self, active: ActiveCall, box: str, path: str, seconds: float
    ) -> VoicemailLeft:
        """The event of a message left in ``box``, with the queue whose agents call the
        box's messages back (``queues.<q>.mailbox``), if any."""
        info = active.call.info
        queue = next((q for q, c in self.config.queues.items() if c.mailbox == box), "")
        return VoicemailLeft(
            call_id=info.call_id,
            box=box,
            path=path,
            seconds=seconds,
            queue=queue,
            number=info.caller_num,
            name=info.caller_name,
        )

    async def _queue_flow(
        self, call: Call, active: ActiveCall, config: CallCenterConfig, flow: str
    ) -> str:
        """Walk an IVR flow after a queue exit (it may queue the caller again)."""
        return await self._walk(call, active, config, flow)

    # ------------------------------------------------------------------ callbacks

    async def _keep_place(
        self,
        call: Call,
        config: CallCenterConfig,
        entry: QueueEntry,
        joined: float,
        dest: QueueExit,
    ) -> str:
        """The caller hangs up and keeps their place: a background task calls them back
        when an agent is reserved for them. Returns who ended the call (us)."""
        qcfg = config.queues[entry.queue]
        asking = self.active.get(call.info.call_id)
        data = tuple(asking.variables.items()) if asking is not None else ()
        self.callbacks.keep(entry, call.info.caller_num, joined, config, data)
        prompt = dest.prompt or qcfg.callback_prompt

        async def confirm() -> None:
            await call.stop_hold_music()
            await call.play([prompt])

        await self._through_outage(call, confirm, "callback")
        return "system"

    async def _call_back_at(
        self,
        call: Call,
        active: ActiveCall,
        qcfg: QueueConfig,
        priority: int,
        *,
        at: datetime,
        dest: QueueExit,
    ) -> str:
        """The caller of a closed queue asks to be called back: at ``at`` (its opening),
        with the variables their IVR set; they hear the queue's callback prompt and the
        call ends. Returns who ended it (us)."""
        info = call.info
        queue = active.queue or ""
        data = tuple(active.variables.items())
        self.callbacks.later(info.call_id, queue, info.caller_num, priority, at, data=data)
        prompt = dest.prompt or qcfg.callback_prompt
        await self._through_outage(call, lambda: call.play([prompt]), "callback")
        return "system"

    async def _through_outage(self, call: Call, step: Callable[[], Awaitable[T]], where: str) -> T:
        """Run ``step`` (commands for ``call`` that can be sent again from their start);
        when they could not be sent (the PBX link is down), once more when the link is back
        (up to IVR_LINK_WAIT; see :meth:`_link_back`, ``where`` for its log). What a caller
        is told once their place or their callback is settled is not worth taking them
        back from the top of the flow for."""
        try:
            return await step()
        except PBXConnectionError as exc:
            until = time.monotonic() + IVR_LINK_WAIT
            if not await self._link_back(call, exc, until, where):
                raise
        return await step()

    def queue_callers(self, queue: str) -> list[dict[str, Any]]:
        """Everyone waiting in ``queue``, in queue order, as supervisors see them: a caller
        on the line (``kind`` caller, with ``withdrawable`` true), a callback request
        (``callback``), a campaign's dial or an agent's own dial waiting for an agent.
        ``state`` is ``waiting`` or ``ringing`` (agents are being rung: ``agents``). Raises
        UnknownQueue."""
        now = time.monotonic()
        rows = []
        for position, entry in enumerate(self.router.callers(queue), start=1):
            active = self.active.get(entry.call_id)
            kept = self.callbacks.kept.get(entry.call_id)
            if entry.campaign is not None:
                kind = "campaign"
            elif entry.dialled_by:
                kind = "agent-dial"
            elif entry.callback is not None:
                kind = "callback"
            else:
                kind = "caller"
            number = name = ""
            if active is not None:
                number, name = active.call.info.caller_num, active.call.info.caller_name
            elif kept is not None:
                number = kept.number
            rows.append(
                {
                    "call_id": entry.call_id,
                    "position": position,
                    "kind": kind,
                    "number": number,
                    "name": name,
                    "priority": entry.priority,
                    "waited": round(max(0.0, now - entry.joined), 1),
                    "state": "ringing" if entry.status is EntryStatus.OFFERED else "waiting",
                    "agents": [a.id for a in entry.agents],
                    "stage": entry.stage,
                    "skills": sorted(entry.skills),
                    "withdrawable": entry.call_id in self._withdrawals,
                }
            )
        return rows

    def _waiting_entry(self, call_id: str) -> QueueEntry:
        entry = self.router.find(call_id)
        if entry is None:
            raise UnknownCall(f"no caller {call_id!r} waits in a queue")
        return entry

    def change_priority(self, call_id: str, priority: int, *, via: str = "cli") -> dict[str, Any]:
        """Give a waiting caller (or callback request) another priority (app_queue's
        QueueChangePriorityCaller): higher is served first. Raises UnknownCall."""
        entry = self._waiting_entry(call_id)
        old = self.router.reprioritise(entry, priority, via=via)
        if old != priority:
            self.bus.publish(
                QueuePriorityChanged(
                    call_id=call_id, queue=entry.queue, priority=priority, old=old, via=via
                )
            )
        return {
            "call_id": call_id,
            "queue": entry.queue,
            "priority": priority,
            "old_priority": old,
            "position": self.router.position(entry),
        }

    def withdraw(self, call_id: str, dest: QueueExit, *, via: str = "cli") -> dict[str, Any]:
        """Send a caller on the line out of their queue to ``dest`` (app_queue's
        QueueWithdrawCaller): another queue (they join it at the back, with their
        priority), a voicemail box, a flow, a callback (they keep their place and hang up)
        or a hang-up, each after ``dest.prompt`` if set. Their queue_log line says
        ``WITHDRAW``. Raises UnknownCall (no such caller waits on the line: a callback
        request is cancelled instead), UnknownQueue, or EngineError while an agent is
        being rung for them, for the queue they are in, or a flow that does not exist."""
        entry = self._waiting_entry(call_id)
        withdrawal = self._withdrawals.get(call_id)
        if withdrawal is None:
            raise UnknownCall(
                f"call {call_id} waits in {entry.queue} without a caller on the line "
                "(a callback request is cancelled instead)"
            )
        if withdrawal.done():
            raise EngineError(f"call {call_id} is on its way out of {entry.queue} already")
        if entry.status is EntryStatus.OFFERED:
            raise EngineError(f"an agent is being rung for call {call_id}: try again after")
        config = self.config
        if dest.to == "queue":
            if dest.queue not in config.queues:
                raise UnknownQueue(f"no queue {dest.queue!r} is configured")
            if dest.queue == entry.queue:
                raise EngineError(f"call {call_id} waits in {entry.queue} already")
        if dest.to == "flow" and dest.flow not in config.flows:
            raise EngineError(f"no flow {dest.flow!r} is configured")
        if dest.to == "callback" and config.acd.callback_dial is None:
            raise EngineError("callbacks need acd.callback_dial")
        withdrawal.set_result(dest)
        log.info("caller_withdrawn", call_id=call_id, queue=entry.queue, to=dest.to, via=via)
        where = dest.queue or dest.box or dest.flow
        return {"call_id": call_id, "queue": entry.queue, "to": dest.to, "where": where}

    def hand_to(self, call_id: str, agent_id: str, *, via: str = "cli") -> dict[str, Any]:
        """Ring ``agent_id`` for the waiting caller ``call_id`` now, ahead of the queue's
        order, skills and stages (a supervisor picks who takes whom). If the agent does
        not answer, the caller waits on as before. Raises UnknownCall, UnknownAgent, or
        EngineError (see :meth:`Router.hand_to`; a callback request cannot be handed)."""
        entry = self._waiting_entry(call_id)
        if call_id not in self._withdrawals:
            raise UnknownCall(f"call {call_id} waits in {entry.queue} without a caller on the line")
        self.router.hand_to(entry, agent_id)
        log.info("caller_handed", call_id=call_id, queue=entry.queue, agent=agent_id, via=via)
        return {"call_id": call_id, "queue": entry.queue, "agent": agent_id}

    def in_background(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` beside the calls; :meth:`close` stops it."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def place_callback(
        self, place: KeptPlace, *, device: str, caller_id: str, ring_timeout: float
    ) -> str:
        """Originate ``device`` for the kept place (its agents reserved); ``""`` once the
        called person answered and their call took over the place, else why not."""
        if self.pbx is None:
            return "no-pbx"
        pending = PendingCallback(place, asyncio.get_running_loop().create_future())
        return await self.originate(
            place.entry.call_id,
            pending,
            place.config,
            device=device,
            caller_id=caller_id,
            ring_timeout=ring_timeout,
            context=place.lead.context if place.lead is not None else "",
        )

    async def originate(
        self,
        origin: str,
        pending: PendingCallback,
        config: CallCenterConfig,
        *,
        device: str,
        caller_id: str,
        ring_timeout: float,
        context: str = "",
    ) -> str:
        """Originate ``device`` into ``context`` (default: the callback context) with a
        token made of ``origin``; ``""`` once its call reached us (``pending.answered``;
        ``machine`` when an answering machine took it), else why not."""
        assert self.pbx is not None
        acd = config.acd
        token = callback_token(origin)
        self._callbacks[token] = pending
        outcome: asyncio.Future[str] | None = None
        try:
            outcome = await self.pbx.originate(
                device,
                context=context or acd.callback_context,
                exten=acd.callback_exten,
                caller_id=caller_id,
                timeout=ring_timeout,
                variables={CALLBACK_VARIABLE: token},
            )
            deadline = time.monotonic() + ring_timeout + CALLBACK_ANSWER_MARGIN
            await asyncio.wait(
                (pending.answered, outcome),
                timeout=ring_timeout + CALLBACK_ANSWER_MARGIN,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if pending.answered.done():
                return pending.answered.result()
            if outcome.done() and not outcome.cancelled() and outcome.result():
                return outcome.result()  # busy, rejected ...: known at once
            # Answered (their call is on its way to us) or not known: up to the deadline.
            return await asyncio.wait_for(
                asyncio.shield(pending.answered), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            return "no-answer"
        except PBXConnectionError as exc:
            log.warning("callback_originate_failed", call_id=origin, error=str(exc))
            return PBX_DOWN
        except PBXError as exc:
            log.warning("callback_originate_failed", call_id=origin, error=str(exc))
            return "originate-failed"
        finally:
            self._callbacks.pop(token, None)

    async def _callback_answered(
        self, call: Call, active: ActiveCall, config: CallCenterConfig, token: str
    ) -> str:
        """A called-back caller answered (the dialplan handed us the originated call with
        ``callback=<token>``): they take their kept place and get the reserved agent. A call
        nobody waits for any more (answered after its ring timeout, or placed by the daemon
        before a restart) still finds the place by the request's call id in the token."""
        info = call.info
        if self.dials.owns(token):
            return await self.dials.leg_answered(call, token)
        machine = info.params.get("amd", "").upper() == "MACHINE"
        pending = self._callbacks.get(token)
        if pending is not None and not pending.answered.done():
            lead = pending.lead if pending.place is None else pending.place.lead
            if machine and lead is not None and lead.machine != "agent":
                pending.answered.set_result(MACHINE)  # the dial frees its agent, if any
                return await self.dialler.machine_answered(call, active, lead)
        if pending is not None and pending.place is None and not pending.answered.done():
            pending.answered.set_result("")
            return await self.dialler.predictive_answered(call, active, config, pending)
        if pending is not None and pending.place is not None and not pending.answered.done():
            place = pending.place
            original = place.entry.call_id
            self.router.rebind(place.entry, info.call_id)
            pending.answered.set_result("")
        else:
            # Not the call the worker waits for: one it gave up on (answered late), or one a
            # previous daemon placed before a restart. The caller is here: they take their
            # place, and the worker (which may be ringing them again) stands down.
            origin = callback_origin(token)
            kept = self.callbacks.kept.pop(origin, None) if origin else None
            if kept is None or kept.entry.call_id != origin:
                dialled = parse_lead_origin(origin or "")
                if dialled is not None and dialled[0] in config.campaigns:
                    return await self.dialler.lead_answered_unawaited(
                        call, active, config, *dialled, machine=machine
                    )
                log.warning("callback_unknown_or_late", call_id=info.call_id)
                return "system"
            place = kept
            original = place.entry.call_id
            # An agent the worker reserved stays reserved: the caller it was for is here.
            self.router.rebind(place.entry, info.call_id)
            if place.worker is not None:
                # Its wait for an agent must be gone before the caller's own starts.
                await cancel_and_wait(place.worker)
            log.info("callback_taken_unawaited", call_id=info.call_id, origin=original)
        entry, number, joined, used = place.entry, place.number, place.joined, place.config
        entry.campaign = None  # a person is on the line now
        active.called = number
        await call.answer()
        self.bus.publish(CallAnswered(call_id=info.call_id))
        queue_name = entry.queue
        active.queue = queue_name
        active.queue_hops += 1
        lead = place.lead
        if place.dial_id:
            self._dial_answered(active, place)
        elif lead is None:
            self.bus.publish(
                QueueCallbackAnswered(
                    call_id=info.call_id,
                    queue=queue_name,
                    number=number,
                    original_call_id=original,
                )
            )
            # callback_of: the request's call, for the agent's screen and the CDR (a
            # restarted daemon finds the agent the called-back person talked to by it).
            for name, value in (*place.data, ("callback_of", original)):
                active.variables[name] = value
                self.bus.publish(
                    IvrVariableSet(
                        call_id=info.call_id,
                        flow="callback",
                        node=original,
                        name=name,
                        value=value,
                    )
                )
        else:
            self.dialler.lead_on_the_line(active, queue_name, lead, number)
        log.info("callback_answered", call_id=info.call_id, origin=original, queue=queue_name)
        return await self.back_in_queue(call, active, used, entry, joined=joined)

    async def back_in_queue(
        self,
        call: Call,
        active: ActiveCall,
        config: CallCenterConfig,
        entry: QueueEntry,
        *,
        joined: float,
        deadline: float | None = None,
        on_timeout: tuple[str, QueueExit] | None = None,
    ) -> str:
        """A person the daemon called (a callback, a campaign's lead) is on the line and in
        ``entry``'s place: they wait for (or get at once) an agent, unannounced, until the
        queue's ``max_wait`` (or ``deadline``, then ``on_timeout``)."""
        self.bus.publish(
            QueueJoined(
                call_id=call.info.call_id,
                queue=entry.queue,
                position=self.router.position(entry),
                priority=entry.priority,
            )
        )
        return await self._wait_in_queue(
            call,
            active,
            config,
            entry,
            joined=joined,
            deadline=deadline or time.monotonic() + config.queues[entry.queue].max_wait,
            greet=False,
            on_timeout=on_timeout,
        )

    # ------------------------------------------------------------------ campaigns

    @property
    def pbx_up(self) -> bool:
        """A PBX is attached and its link is up (campaigns dial only then)."""
        return self.pbx is not None and self._pbx_up.is_set()

    async def dial_for_agent(
        self,
        entry: QueueEntry,
        number: str,
        *,
        dial_id: str,
        device: str,
        caller_id: str,
        ring_timeout: float,
        data: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """Dial ``number`` at ``device`` for the agent ``entry`` has reserved
        (``entry.dialled_by``: their own outbound call). Returns ``""`` once the person
        answered (their call takes the place and is put through to the agent), else why
        not (``busy``, ``no-answer``..., ``pbx-down``). Cancelled, or failed, the place is
        left and the agent released. ``data``: variables the answered call gets (a CRM's
        reference), shown to the agent and kept in the CDR."""
        origin = entry.call_id
        kept = KeptPlace(
            entry,
            number,
            entry.joined,
            self.config,
            asyncio.current_task(),
            data=data,
            dial_id=dial_id,
        )
        self.callbacks.kept[origin] = kept
        try:
            reason = await self.place_callback(
                kept, device=device, caller_id=caller_id, ring_timeout=ring_timeout
            )
            return "failed" if reason == "originate-failed" else reason
        finally:
            if entry.call_id == origin:
                self.router.leave(entry)
            if self.callbacks.kept.get(origin) is kept:
                del self.callbacks.kept[origin]

    def _dial_answered(self, active: ActiveCall, place: KeptPlace) -> None:
        """The person an agent dialled answered on call ``active``: the records say whose
        call it is, the agent's screen gets ``dialled_by`` (and the dial's ``data``)."""
        call_id = active.call.info.call_id
        agent = place.entry.dialled_by
        self.bus.publish(
            AgentDialAnswered(
                call_id=call_id,
                agent=agent,
                number=place.number,
                queue=place.entry.queue,
                dial_id=place.dial_id,
            )
        )
        log.info("agent_dial_answered", call_id=call_id, agent=agent, dial_id=place.dial_id)
        for name, value in (*place.data, ("dialled_by", agent)):
            active.variables[name] = value
            self.bus.publish(
                IvrVariableSet(call_id=call_id, flow="dial", node=agent, name=name, value=value)
            )

    def calls_with_number(self, pattern: re.Pattern[str]) -> list[str]:
        """The calls in progress whose caller's or dialled number ``pattern`` finds, and the
        agents' own dials to such a number (an erasure waits for them to end)."""
        busy = [
            call_id
            for call_id, active in self.active.items()
            if pattern.search(active.call.info.caller_num)
            or pattern.search(active.call.info.dialed)
        ]
        busy += [d["dial_id"] for d in self.dials.dialling() if pattern.search(d["number"])]
        return busy

    def breaks_taken(self, teams: Collection[str] | None = None) -> dict[str, tuple[int, int]]:
        """Team -> (its agents paused or with a pause pending, its ``max_paused``), for the
        teams with a break limit (of ``teams`` only when given): :meth:`Breaks.taken`."""
        return self.breaks.taken(teams)

    def break_refused(self, agent_id: str) -> str | None:
        """Why ``agent_id`` may not go on a break now, or None: :meth:`Breaks.refused`."""
        return self.breaks.refused(agent_id)

    # ------------------------------------------------------------------ agents

    async def _offer(
        self,
        call: Call,
        active: ActiveCall,
        *,
        entry: QueueEntry,
        agents: list[Agent],
        qcfg: QueueConfig,
        joined: float,
        config: CallCenterConfig,
    ) -> tuple[Agent, DialResult] | None:
        """Ring the reserved ``agents`` (all at once; ring-progressively adds one every
        ``progressive_interval``); the agent who answered and how the bridge ended, or
        None when nobody took the call."""
        info = call.info
        queue_name = entry.queue
        ring_start = time.monotonic()
        progressive = qcfg.strategy == "ring-progressively" and not entry.dialled_by
        announce = qcfg.agent_announce
        campaign = config.campaigns.get(active.campaign) if active.campaign else None
        if campaign is not None and campaign.agent_announce:
            announce = campaign.agent_announce
        if announce is not None and "${" in announce:
            wanted, announce = announce, render(announce, active.variables)
            parts = announce.split("/")
            unset = any(not active.variables.get(n) for n in _VARIABLE_REF.findall(wanted))
            if unset or not _ANNOUNCE_FILE.fullmatch(announce) or {"", ".."} & set(parts):
                log.info("agent_announce_skipped", call_id=info.call_id, template=wanted)
                announce = None
        shown = None
        if qcfg.agent_caller_name is not None and not entry.dialled_by:
            shown = agent_caller_name(qcfg.agent_caller_name, active, queue_name)
        if entry.dialled_by:
            announce = None  # the agent dialled this number and waits for it
        elif announce is None and any(agent.on_line for agent in agents):
            # Nothing rings on an open line: the agent's cue that a caller is coming.
            announce = config.acd.line_beep

        def device(agent: Agent) -> str:
            if entry.device and agent.id == entry.dialled_by:
                return entry.device
            return agent.device

        answered: list[Agent] = []
        ringing = list(agents)
        told: set[str] = set()
        asked: str | None = None
        not_sent: PBXConnectionError | None = None

        def on_answer(peer_channel: str) -> None:
            if answered:
                return
            agent = _agent_for_peer(peer_channel, ringing)
            answered.append(agent)
            now = time.monotonic()
            self.router.connected(entry, agent)
            active.agent = agent.id
            active.agent_channel = peer_channel
            active.talk_since = now
            active.talked_to.add(agent.id)
            self._by_agent[agent.id] = info.call_id
            self.bus.publish(
                AgentConnected(
                    call_id=info.call_id,
                    queue=queue_name,
                    agent=agent.id,
                    peer_channel=peer_channel,
                    wait_seconds=now - joined,
                    ring_seconds=now - ring_start,
                )
            )
            log.info("agent_connected", call_id=info.call_id, agent=agent.id)
            self.dispositions.talks_on(
                agent.id,
                AgentCall(
                    info.call_id,
                    active.called or info.caller_num,
                    queue_name,
                    active.variables.get("campaign", ""),
                    active.variables.get("lead", ""),
                ),
            )
            if self.dialler.holding:
                self.dialler.lead_put_through(info.call_id)
            if qcfg.last_agent and not active.variables.get("campaign"):
                self._remember_agent(qcfg, queue_name, active.called or info.caller_num, agent.id)
            if active.recording is None and _records(config, qcfg, agent.id):
                path = recording_path(config, queue_name, info.call_id)
                active.recording = path
                self.in_background(self._record(active, path), f"record-{info.call_id}")

        while True:
            for agent in ringing:
                if agent.id not in told:
                    told.add(agent.id)
                    self.bus.publish(
                        AgentRinging(
                            call_id=info.call_id,
                            queue=queue_name,
                            agent=agent.id,
                            device=device(agent),
                        )
                    )
                    log.info(
                        "agent_ringing", call_id=info.call_id, agent=agent.id, device=device(agent)
                    )
            if (
                asked is None
                and len(ringing) == 1
                and ringing[0].on_line
                and ringing[0].id != entry.dialled_by
            ):
                asked = ringing[0].id
                if config.acd.line_accept_key is not None:
                    if not await self._line_accepts(call, asked, qcfg.ring_timeout):
                        result = DialResult(status=DialStatus.NOANSWER)
                        break
                    if announce == config.acd.line_beep:
                        announce = None  # they heard it as they were asked
            remaining = qcfg.ring_timeout - (time.monotonic() - ring_start)
            timeout = min(qcfg.progressive_interval, remaining) if progressive else remaining
            self._ringing[info.call_id] = {agent.id for agent in ringing}
            report_wait = None
            if qcfg.report_holdtime is not None and not entry.dialled_by and not campaign:
                waited = time.monotonic() - joined
                report_wait = waited if waited >= qcfg.report_holdtime else None
            delay = 0.0
            if qcfg.member_delay and not entry.dialled_by and not campaign:
                # An open line's agent is there already: nothing to settle.
                delay = 0.0 if any(agent.on_line for agent in ringing) else qcfg.member_delay
            try:
                result = await call.dial(
                    "&".join(device(agent) for agent in ringing),
                    timeout=max(1.0, timeout),
                    hold_music=qcfg.hold_music,
                    on_answer=on_answer,
                    announce=announce,
                    caller_name=shown,
                    report_wait=report_wait,
                    delay=delay,
                    auto_answer=all(
                        agent.on_line or answers_by_itself(config, agent.id) for agent in ringing
                    ),
                )
            except CallHungUp:
                if not answered:
                    raise
                result = DialResult(status=DialStatus.ANSWER, hung_up_by="caller")
            except PBXConnectionError as exc:
                if answered or isinstance(exc, CommandResultLost):
                    raise
                # Not sent (the link is down): the agents go back unblamed, and the caller
                # keeps their place until the link is back (_outlast_outage).
                not_sent = exc
                result = DialResult(status=DialStatus.CANCEL)
                break
            finally:
                self._ringing.pop(info.call_id, None)
            if result.status is DialStatus.ANSWER or answered:
                on_answer(result.peer_channel or "")
                agent = answered[0]
                active.path.append(f"agent:{agent.id}")
                return agent, result
            more_time = qcfg.ring_timeout - (time.monotonic() - ring_start) >= 1.0
            if (
                progressive
                and more_time
                and result.status is DialStatus.NOANSWER
                and entry.status is EntryStatus.OFFERED
                and entry.agents
            ):
                progressive = self.router.offer_more(entry) is not None
                ringing = list(entry.agents)
                continue
            break
        outcome = _ring_outcome(result)
        for agent in list(entry.agents):
            self.router.ring_failed(entry, agent, outcome)
            self.bus.publish(
                AgentRingFailed(
                    call_id=info.call_id,
                    queue=queue_name,
                    agent=agent.id,
                    status=str(result.status),
                    ring_seconds=time.monotonic() - ring_start,
                )
            )
            log.info(
                "agent_ring_failed", call_id=info.call_id, agent=agent.id, status=result.status
            )
        if not_sent is not None:
            raise not_sent
        return None

    async def _line_accepts(self, call: Call, agent_id: str, timeout: float) -> bool:
        """Does the agent on an open line take the caller (acd.line_accept_key), asked
        while the caller waits on? CallHungUp when the caller hangs up meanwhile."""
        try:
            return await self._unless_hangup(
                call, self.lines.ask(agent_id, timeout), timeout + LINE_ASK_SLACK
            )
        except CallerGone:
            raise CallHungUp(f"{call.info.channel} hung up while {agent_id} was asked") from None
        except TimeoutError:
            return False

    async def _talk(
        self, call: Call, active: ActiveCall, queue_name: str, agent: Agent, result: DialResult
    ) -> str:
        """The bridge with ``agent`` ended as ``result``; follow transfers until the call ends."""
        info = call.info
        talker = agent.id
        while True:
            if active.room is not None:
                result, talker = await self._room_over(active, result, talker)
            hung_up_by = _who(result)
            if active.agent_left and hung_up_by == "system":
                hung_up_by = "agent"  # who pressed the key
            active.agent_left = False
            if result.cause is not HangupCause.UNSPECIFIED:
                active.bridge_cause = result.cause
            self.bus.publish(
                TalkEnded(
                    call_id=info.call_id,
                    agent=talker,
                    talk_seconds=result.talk_seconds,
                    hung_up_by=hung_up_by,
                )
            )
            if talker in self.router.agents:
                self.router.call_finished(talker, queue_name, talk_seconds=result.talk_seconds)
            self._by_agent.pop(talker, None)
            if self._keypads:
                self._keypads.pop(talker, None)
            active.agent_channel = ""
            if active.recording_muted and not call.hung_up:
                # Whoever talks to the caller next is recorded again.
                active.recording_muted = False
                with contextlib.suppress(PBXError):
                    await call.mute_recording(False)
                self.bus.publish(RecordingMuted(call_id=info.call_id, muted=False, by="system"))
            target = active.pending_transfer
            if result.hung_up_by != "system" or target is None:
                survey = self._survey_of(active, queue_name) if hung_up_by == "agent" else None
                if survey is not None and not call.hung_up:
                    return await self._survey(call, active, survey, queue_name, talker)
                return hung_up_by
            active.pending_transfer = None
            by = active.transferred_by or talker
            kind, active.transfer_kind = active.transfer_kind, "blind"
            self.bus.publish(CallTransferred(call_id=info.call_id, by=by, to=target, kind=kind))
            log.info("call_transferred", call_id=info.call_id, by=by, to=target, kind=kind)
            if kind == QUEUE_TRANSFER:
                if target not in self.config.queues:
                    # Removed by a reload since the agent asked: the caller is not dropped.
                    target = queue_name
                priority, active.transfer_priority = active.transfer_priority, 0
                return await self._queue(call, active, self.config, target, priority, sent_by=by)
            device = self.transfer_device(target)
            is_agent = target in self.router.agents
            active.agent = target
            active.talked_to.add(target)
            self._by_agent[target] = info.call_id
            connected: list[str] = []

            def on_answer(peer: str, _c: list[str] = connected, _t: str = target) -> None:
                if not _c and _t in self.router.agents:
                    self.router.connect_direct(_t)
                if not _c:
                    active.agent_channel = peer
                    active.talk_since = time.monotonic()
                _c.append(peer)

            ring_target = functools.partial(
                call.dial,
                device,
                timeout=self.ring_timeout(queue_name),
                hold_music=True,
                on_answer=on_answer,
                auto_answer=is_agent and answers_by_itself(self.config, target),
            )
            try:
                try:
                    result = await ring_target()
                except PBXConnectionError as exc:
                    # Not sent (the link is down): rung once it is back, the target kept.
                    until = time.monotonic() + IVR_LINK_WAIT
                    if connected or not await self._link_back(call, exc, until, "transfer"):
                        raise
                    result = await ring_target()
            except (CallHungUp, PBXConnectionError):
                if is_agent and not connected:
                    self.router.release(target)
                raise
            if result.status is DialStatus.ANSWER and not connected:
                on_answer(result.peer_channel or "")
            talker = target
            if not connected:
                self._by_agent.pop(target, None)
                if is_agent:
                    self.router.release(target)
                log.info("transfer_failed", call_id=info.call_id, to=target, status=result.status)
                back = queue_name
                if (
                    self.config.acd.transfer_unanswered == "hangup"
                    or queue_name not in self.config.queues
                ):
                    back = ""
                failed = TransferFailed(
                    call_id=info.call_id, by=by, to=target, status=str(result.status), back_to=back
                )
                self.bus.publish(failed)
                await self._through_outage(call, lambda: call.play(["transfer-failed"]), "transfer")
                if not back:
                    return "system"
                # A transfer recall: back where they waited, ahead of those who came after
                # them, offered first to whoever sent them if free.
                log.info("transfer_recalled", call_id=info.call_id, queue=queue_name, by=by)
                return await self._queue(
                    call,
                    active,
                    self.config,
                    queue_name,
                    active.queue_priority,
                    agent=by if by in self.router.agents else "",
                    head_start=max(0.0, time.monotonic() - active.started),
                    greet=False,
                )

    async def _survey(
        self, call: Call, active: ActiveCall, survey: SurveyConfig, queue_name: str, talker: str
    ) -> str:
        """``talker`` hung up on a caller still on the line: walk them through
        ``queue_name``'s post-call ``survey`` if they are to be asked (once a call; only
        about an agent or a supervisor, never an outside number the call was transferred
        to). Returns who ended the call: the agent, unless the survey sent the caller on (a
        queue, a transfer)."""
        config = self.config
        if self._not_surveyed(active, survey, talker) is not None:
            return "agent"
        active.surveyed = True
        info = call.info
        answers: dict[str, str] = {}

        def on_event(event: IvrEvent) -> None:
            if isinstance(event, VariableSet):
                answers[event.name] = event.value

        started = time.monotonic()
        completed = False
        log.info("survey_started", call_id=info.call_id, queue=queue_name, agent=talker)
        try:
            ended_by = await self._walk(
                call, active, config, survey.flow, on_event=on_event, ended_by="agent"
            )
            completed = True
            return ended_by
        except CallHungUp:
            return "agent"
        finally:
            given = answers.get(survey.score or "", "")
            score = int(given) if given.isdigit() and len(given) <= 9 else None
            bar = survey.satisfied_from
            satisfied = None if score is None or bar is None else score >= bar
            self.bus.publish(
                SurveyEnded(
                    call_id=info.call_id,
                    queue=queue_name,
                    agent=talker,
                    flow=survey.flow,
                    number=active.called or info.caller_num,
                    answers=answers,
                    score=score,
                    satisfied=satisfied,
                    completed=completed,
                    seconds=time.monotonic() - started,
                )
            )
            log.info(
                "survey_ended", call_id=info.call_id, agent=talker, score=score, completed=completed
            )

    def _survey_of(self, active: ActiveCall, queue_name: str) -> SurveyConfig | None:
        """The survey for the caller of ``active`` served in ``queue_name``: their
        campaign's (a lead), else the queue's; None when neither has one."""
        config = self.config
        campaign = config.campaigns.get(active.campaign) if active.campaign else None
        if campaign is not None and campaign.survey is not None:
            return campaign.survey
        qcfg = config.queues.get(queue_name)
        return qcfg.survey if qcfg is not None else None

    def _not_surveyed(self, active: ActiveCall, survey: SurveyConfig, talker: str) -> str | None:
        """Why the caller of ``active`` is not to be asked ``survey`` about ``talker``
        (None: they are)."""
        config = self.config
        if active.surveyed:
            return "the caller was surveyed already"
        if survey.flow not in config.flows:
            return f"the survey's flow {survey.flow!r} is not in the config"
        if talker not in self.router.agents and talker not in config.supervisors:
            return "only calls with an agent or a supervisor are surveyed"
        if survey.opt_in is not None and not _opted_in(active.variables.get(survey.opt_in)):
            return "the caller did not opt in"
        return None

    async def _room_over(
        self, active: ActiveCall, result: DialResult, talker: str
    ) -> tuple[DialResult, str]:
        """The call's conference room ended (its dial returned): who talked to the caller
        last, for how long, and who ended it (the last party leaving is the agent
        hanging up; a transfer asked for keeps ``system``)."""
        handed_over_at, emptied = await self.consults.room_over(active)
        talk = result.talk_seconds
        if handed_over_at is not None:
            talker = active.agent or talker
            talk = max(0.0, time.monotonic() - handed_over_at)
        by = result.hung_up_by
        if active.call.hung_up:
            by = "caller"
        elif emptied and active.pending_transfer is None:
            by = "peer"
        return dataclasses.replace(result, talk_seconds=talk, hung_up_by=by), talker

    def forget_agent_call(self, agent_id: str) -> None:
        """``agent_id`` is off the call they were on (a consultation handed it over)."""
        self._by_agent.pop(agent_id, None)

    def now_talking(self, call_id: str, active: ActiveCall, who: str, channel: str) -> None:
        """``who`` (an agent or supervisor id, on ``channel``) talks to the caller now."""
        active.agent = who
        active.agent_channel = channel
        active.talk_since = time.monotonic()
        active.talked_to.add(who)
        self._by_agent[who] = call_id

    def _offer_revoked(self, entry: QueueEntry | None, agent: Agent) -> None:
        """The agent being rung (or shown a lead) logged out: stop ringing their phone now."""
        self.dialler.withdraw_preview(agent.id)
        call_id = entry.call_id if entry is not None else agent.call_id
        active = self.active.get(call_id or "")
        if active is None:
            return
        log.info("offer_revoked", call_id=call_id, agent=agent.id)
        cut = (
            self._cut_ring(active, call_id or "", agent.id)
            if entry is not None
            else self._quietly(active.call.unbridge())
        )
        self.in_background(cut, f"cut-ring-{agent.id}")

    async def _record(self, active: ActiveCall, path: str) -> None:
        """Start the recording of an answered queue call (beside the bridge); a recording
        that could not start is forgotten (``active.recording`` None again)."""
        call = active.call
        info = call.info
        folder = os.path.dirname(path)
        try:
            await asyncio.to_thread(os.makedirs, folder, exist_ok=True)
        except OSError as exc:
            # The PBX may run elsewhere and own the folder; it reports a failed write itself.
            log.info("recordings_folder_not_created", folder=folder, error=str(exc))
        try:
            await call.start_recording(path)
        except CallHungUp:
            active.recording = None
            return
        except PBXError as exc:
            active.recording = None
            log.warning("recording_not_started", call_id=info.call_id, path=path, error=str(exc))
            return
        if info.call_id in self.active:
            self.bus.publish(RecordingStarted(call_id=info.call_id, path=path))

    async def _cut_ring(self, active: ActiveCall, call_id: str, agent_id: str) -> None:
        """Stop the queue dial ringing a revoked agent. The PBX may not have told us about
        the ringing leg yet (its events race the logout), so try again a few times while
        that same dial still rings the agent."""
        for _ in range(CUT_RING_TRIES):
            if agent_id not in self._ringing.get(call_id, ()):
                return
            await self._quietly(active.call.unbridge())
            await asyncio.sleep(CUT_RING_RETRY)

    @staticmethod
    async def _quietly(aw: Awaitable[None]) -> None:
        try:
            await aw
        except PBXError as exc:
            log.info("background_command_failed", error=str(exc))

    # ------------------------------------------------------------------ transfers

    def transfer_target(self, active: ActiveCall, agent_id: str, to: str) -> str:
        """The id ``to`` names for ``agent_id``'s call: ``supervisor`` is the queue's; any
        other must be a configured supervisor or agent other than ``agent_id``, or an
        outside number ``acd.transfer_allow`` lists."""
        target = to
        if to == "supervisor":
            qcfg = self.config.queues.get(active.queue or "")
            if qcfg is None or qcfg.supervisor is None:
                raise DestinationNotAllowed(f"queue {active.queue!r} has no supervisor configured")
            target = qcfg.supervisor
        self.transfer_device(target)
        if target == agent_id:
            raise DestinationNotAllowed(f"agent {agent_id} cannot transfer a call to themself")
        return target

    def transfer_device(self, target: str) -> str:
        """The dial string of a configured supervisor or agent (a remote agent's
        ``external/<number>`` through ``acd.remote_dial``, as queues ring them), or of an
        outside number ``acd.transfer_allow`` lists (through ``acd.transfer_dial``)."""
        if target in self.config.supervisors:
            return self.supervisor_device(target)
        if target in self.router.agents:
            return self.router.agents[target].device
        if target in self.config.agents:
            return self.config.agents[target].device
        acd = self.config.acd
        if (
            acd.transfer_dial is not None
            and DIALABLE_NUMBER.fullmatch(target) is not None
            and matches_any(acd.transfer_allow, target)
        ):
            return acd.transfer_dial.replace("${number}", target)
        raise DestinationNotAllowed(
            f"transfer target {target!r} is not a configured agent or supervisor, nor a number"
            " acd.transfer_allow lists"
        )

    def ring_timeout(self, queue_name: str) -> float:
        qcfg = self.config.queues.get(queue_name)
        return qcfg.ring_timeout if qcfg is not None else 20.0

    def agent_call(self, agent_id: str) -> tuple[str, ActiveCall] | None:
        """The call ``agent_id`` is on now, as (call id, active call); None when none."""
        call_id = self._by_agent.get(agent_id)
        active = self.active.get(call_id) if call_id is not None else None
        if call_id is None or active is None:
            return None
        return call_id, active

    async def record(self, agent_id: str) -> str:
        """Start recording the call ``agent_id`` talks on, from now to its end (record on
        demand: a queue without ``record``, a transfer), into acd.recordings_folder/<queue>/
        (``on-demand/`` for a call that came through no queue); returns the file. Raises
        UnknownAgent, or EngineError when the agent talks to nobody, the call is recorded
        already, or the PBX would not start it."""
        if agent_id not in self.router.agents:
            raise UnknownAgent(f"unknown agent {agent_id}")
        found = self.agent_call(agent_id)
        if found is None or not found[1].agent_channel:
            raise EngineError(f"agent {agent_id} is not talking to a caller")
        call_id, active = found
        if active.recording is not None:
            raise EngineError(f"the call of agent {agent_id} is recorded already")
        path = recording_path(self.config, active.queue or ON_DEMAND_FOLDER, call_id)
        active.recording = path
        await self._record(active, path)
        if active.recording is None:
            raise EngineError(f"the PBX did not start recording the call of agent {agent_id}")
        log.info("recording_on_demand", call_id=call_id, agent=agent_id, path=path)
        return path

    async def mute_recording(self, agent_id: str, muted: bool) -> str:
        """Have the recording of ``agent_id``'s call record silence (``muted``: while the
        caller gives card details) or the call again; returns the call id. The recording
        records again by itself when the agent's talk ends (a transfer). Raises
        UnknownAgent, or EngineError when the agent is on no recorded call."""
        if agent_id not in self.router.agents:
            raise UnknownAgent(f"unknown agent {agent_id}")
        found = self.agent_call(agent_id)
        if found is None or not found[1].agent_channel:
            raise EngineError(f"agent {agent_id} is not talking to a caller")
        call_id, active = found
        if active.recording is None:
            raise EngineError(f"the call of agent {agent_id} is not recorded")
        if active.recording_muted != muted:
            await active.call.mute_recording(muted)
            active.recording_muted = muted
            self.bus.publish(RecordingMuted(call_id=call_id, muted=muted, by=agent_id))
            log.info("recording_muted" if muted else "recording_unmuted", call_id=call_id)
        return call_id

    async def transfer(
        self,
        agent_id: str,
        to: str = "supervisor",
        *,
        kind: str = "blind",
        queue: str | None = None,
        priority: int = 0,
        note: str = "",
    ) -> str:
        """Blind-transfer the caller ``agent_id`` is talking to; returns the target id.

        ``to`` is ``supervisor`` (the queue's configured supervisor), a configured
        supervisor or agent id, or an outside number ``acd.transfer_allow`` lists. Anything
        else is refused: no caller ever reaches a number the config does not name.
        ``kind`` is what the CallTransferred event says (``takeover``: a supervisor took
        the call over). ``queue``: the caller joins that queue instead
        (kind ``queue``), at ``priority``, with the skills the IVR gave the call; music on
        hold meanwhile, and the queue's rules from there on. ``note``: what the next agent
        reads of the call (``transfer_note``: their desktop, the screen pop's and the
        script's variables, the CDR), at most :data:`MAX_TRANSFER_NOTE` characters.
        """
        if queue is not None and queue not in self.config.queues:
            raise UnknownQueue(f"unknown queue {queue!r}")
        if len(note) > MAX_TRANSFER_NOTE:
            raise EngineError(f"note: {MAX_TRANSFER_NOTE} characters at the most")
        found = self.agent_call(agent_id)
        if found is None:
            raise EngineError(f"agent {agent_id} is not on a call")
        call_id, active = found
        if active.consult is not None and active.consult.active:
            raise EngineError(
                f"call {call_id} is in a consultation with {active.consult.to}: complete or"
                " cancel it first"
            )
        if queue is not None:
            if active.pending_transfer is not None:
                raise EngineError(f"a transfer of call {call_id} is already under way")
            active.pending_transfer = queue
            active.transferred_by = agent_id
            active.transfer_kind = QUEUE_TRANSFER
            active.transfer_priority = priority
            self._note_transfer(active, agent_id, note)
            try:
                await self.consults.drop_talker(active)
            except PBXError:
                active.pending_transfer = None
                active.transfer_kind = "blind"
                raise
            return queue
        target = self.transfer_target(active, agent_id, to)
        if active.pending_transfer is not None:
            raise EngineError(f"a transfer of call {call_id} is already under way")
        if target in self.router.agents:
            # Reserve now, so no queue call takes the target between our check and the dial.
            self.router.reserve(target, call_id=call_id)
        active.pending_transfer = target
        active.transferred_by = agent_id
        active.transfer_kind = kind
        self._note_transfer(active, agent_id, note)
        try:
            await self.consults.drop_talker(active)
        except PBXError:
            active.pending_transfer = None
            if target in self.router.agents:
                self.router.release(target)
            raise
        return target

    def _note_transfer(self, active: ActiveCall, agent_id: str, note: str) -> None:
        """The transferring agent's note, as a variable of the call (the latest wins)."""
        note = note.strip()
        if not note:
            return
        active.variables[TRANSFER_NOTE] = note
        self.bus.publish(
            IvrVariableSet(
                call_id=active.call.info.call_id,
                flow="transfer",
                node=agent_id,
                name=TRANSFER_NOTE,
                value=note,
            )
        )

    async def send_to_survey(self, agent_id: str) -> str:
        """Leave the call ``agent_id`` is on and send its caller to the queue's post-call
        survey (``queues.<q>.survey``), as if the agent had hung up: for an agent who
        said goodbye and would otherwise wait for the caller to hang up. Returns the
        survey's flow. Raises EngineError, the call going on as it was, when the queue has
        no survey, the caller is not to be asked (surveyed already, not opted in), or the
        call is in a consultation, on hold or being transferred."""
        found = self.agent_call(agent_id)
        if found is None:
            raise EngineError(f"agent {agent_id} is not on a call")
        call_id, active = found
        survey = self._survey_of(active, active.queue or "")
        if survey is None:
            raise EngineError(f"the queue of call {call_id} has no survey")
        why = self._not_surveyed(active, survey, agent_id)
        if why is not None:
            raise EngineError(why)
        if active.consult is not None and active.consult.active:
            raise EngineError(f"call {call_id} is in a consultation: complete or cancel it first")
        if active.held_since is not None:
            raise EngineError(f"call {call_id} is on hold: take the caller back first")
        if active.pending_transfer is not None or active.agent_left:
            raise EngineError(f"call {call_id} is being handed on already")
        await self._agent_leaves(active)
        log.info("sent_to_survey", call_id=call_id, agent=agent_id, flow=survey.flow)
        return survey.flow

    async def leave_call(self, agent_id: str) -> str:
        """``agent_id`` leaves the call they talk on, as if they had hung up their phone
        (the caller goes on to the queue's survey if it has one, else is hung up): for an
        agent on an open line, whose phone stays on the line. Returns the call id. Raises
        EngineError when they talk to nobody, or the call is being handed on already."""
        found = self.agent_call(agent_id)
        if found is None:
            raise EngineError(f"agent {agent_id} is not on a call")
        call_id, active = found
        if active.pending_transfer is not None or active.agent_left:
            raise EngineError(f"call {call_id} is being handed on already")
        await self._agent_leaves(active)
        log.info("agent_left_call", call_id=call_id, agent=agent_id)
        return call_id

    async def _agent_leaves(self, active: ActiveCall) -> None:
        active.agent_left = True
        try:
            await self.consults.drop_talker(active)
        except PBXError:
            active.agent_left = False
            raise

    async def consult(self, agent_id: str, to: str = "supervisor") -> str:
        """``agent_id`` puts the caller on hold (music) and talks to ``to``
        (``supervisor``: the queue's, or a configured supervisor or agent id), who is
        rung; returns the target id. See :mod:`callcenter.consult`."""
        return await self.consults.start(agent_id, to)

    def holding(self) -> dict[str, dict[str, Any]]:
        """Agents whose caller holds now, by agent id: ``on_hold`` (the agent's own hold)
        and ``consulting`` (:func:`~callcenter.consult.consult_view`, None when not)."""
        out: dict[str, dict[str, Any]] = {}
        for active in self.active.values():
            consult = consult_view(active.consult)
            if active.agent and (consult is not None or active.held_since is not None):
                agent = consult["agent"] if consult is not None else active.agent
                out[agent] = {"on_hold": active.held_since is not None, "consulting": consult}
        return out

    async def consult_complete(self, agent_id: str) -> str:
        """Hand the caller over to whom ``agent_id`` consults (an attended transfer)."""
        return await self.consults.complete(agent_id)

    async def consult_cancel(self, agent_id: str) -> str:
        """End ``agent_id``'s consultation; the agent talks with the caller again."""
        return await self.consults.cancel(agent_id)

    async def hold(self, agent_id: str) -> str:
        """Put ``agent_id``'s caller on hold (music); returns the call id."""
        return await self.consults.hold(agent_id)

    async def unhold(self, agent_id: str) -> str:
        """Take ``agent_id``'s caller off hold; returns the call id."""
        return await self.consults.unhold(agent_id)

    async def consult_join(self, agent_id: str) -> str:
        """Caller, agent and consulted party talk together (a three-way call)."""
        return await self.consults.join(agent_id)

    # ------------------------------------------------------------------ feature codes

    async def _feature_code(self, call: Call, action: str, config: CallCenterConfig) -> None:
        info = call.info
        agent_id = info.params.get("agent") or (info.args[0] if info.args else "")
        named = bool(agent_id)
        if not agent_id:
            agent_id = self.agent_for_channel(info.channel, config) or ""
        pins = {aid: a.pin for aid, a in config.agents.items()}
        if not await self.dialled_by(call, "agent", agent_id, pins, action=action):
            return
        try:
            if action == "login":
                desk = self._hot_desk(info, agent_id, config) if named else None
                self.router.login(agent_id, via="feature-code", device=desk)
            elif action == "logout":
                self.router.logout(agent_id, via="feature-code")
            elif action == "pause":
                reason = info.params.get("reason", "break")
                if reason not in config.pause_reasons:
                    # Reason codes come from the config: reports group pauses by them.
                    raise EngineError(f"pause reason {reason!r} is not in pause_reasons")
                place = self.breaks.pause(agent_id, reason, via="feature-code")
                if place is not None:
                    # In line, not paused: "you are now first in line" / "there are N ...".
                    await call.play(
                        ["queue-youarenext"]
                        if place == 1
                        else ["queue-thereare", f"digits/{place - 1}", "queue-callswaiting"]
                    )
                    return
            elif action == "ready":
                # Done with the after-call work before its time is up.
                self.router.end_wrapup(agent_id)
            elif action == "disposition":
                self.phone_disposition(agent_id, info.params.get("code", ""), config)
            elif action == "queue":
                joined = self.phone_queue(agent_id, info.params.get("code", ""), config)
                await call.play(["agent-loginok" if joined else "agent-loggedoff"])
                return
            else:
                self.breaks.unpause(agent_id, via="feature-code")
        except (EngineError, UnknownAgent) as exc:
            log.info("feature_code_refused", agent=agent_id, action=action, error=str(exc))
            await call.play(["beeperr"])
            return
        await call.play([FEATURE_PROMPTS[action]])

    def phone_queue(self, agent_id: str, digits: str, config: CallCenterConfig) -> bool:
        """``*45`` + digits: the agent joins the queue with those ``digits``, or leaves it
        when a member (True: joined). EngineError for digits no queue has."""
        queue = _queue_with_digits(config, digits)
        if queue is None:
            raise EngineError(f"no queue has the digits {digits!r}")
        if agent_id in self.router.rules(queue).members:
            self.roster.leave_queue(agent_id, queue, via="feature-code")
            return False
        self.roster.join_queue(agent_id, queue, via="feature-code")
        return True

    def phone_disposition(self, agent_id: str, keyed: str, config: CallCenterConfig) -> None:
        """``*76`` + digits (``*769*30``: a callback code, in 30 minutes): the code whose
        ``digits`` those are, given as :meth:`dispose` does. EngineError for digits no code
        has, or a callback code without its minutes."""
        digits, star, minutes = keyed.partition("*")
        code = next((c for c, d in config.dispositions.items() if d.digits == digits), None)
        if code is None or not digits:
            raise EngineError(f"no disposition has the digits {digits!r}")
        at = None
        if config.dispositions[code].callback:
            if not star or not minutes.isdigit() or int(minutes) < 1:
                raise EngineError(f"disposition {code!r} needs the minutes: *76{digits}*30")
            at = datetime.now(UTC) + timedelta(minutes=int(minutes))
        elif star:
            raise EngineError(f"disposition {code!r} takes no time")
        self.dispositions.dispose(agent_id, code, at=at)

    async def _supervisor_code(self, call: Call, mode: SpyMode, config: CallCenterConfig) -> None:
        """``*81`` / ``*82`` / ``*83`` + agent from a supervisor's phone: the call itself
        joins the agent's call (listen, whisper, barge) until either ends. Refusals are
        logged and heard: ``invalid`` (no supervisor's phone), ``auth-incorrect`` (wrong
        PIN), ``beeperr`` (an agent not on a call, unknown or outside their teams)."""
        info = call.info
        agent_id = info.params.get("agent") or (info.args[0] if info.args else "")
        who = await self._supervisor_dialling(call, config, mode=mode)
        if who is None:
            return
        try:
            monitor = await self.monitoring.monitor_from(call, who, agent_id, mode)
        except (EngineError, CommandFailed) as exc:
            log.info(
                "supervisor_code_refused",
                supervisor=who,
                agent=agent_id,
                mode=mode,
                error=str(exc),
            )
            await call.play(["beeperr"])
            return
        ended = asyncio.ensure_future(monitor.session.wait_ended())
        gone = asyncio.ensure_future(call.wait_hangup())
        try:
            await asyncio.wait({ended, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(ended)
            await cancel_and_wait(gone)
        # The monitoring's end (MonitorEnded) comes before the call's (CallEnded).
        await monitor.watched()

    async def _queue_status_code(self, call: Call, config: CallCenterConfig) -> None:
        """``*85`` + a queue's digits from a supervisor's phone: they hear how many callers
        wait ("there are N calls waiting"), and for how long the longest has ("hold time
        less than 1 minute", "hold time M minutes"); ``beeperr`` for digits no queue has."""
        info = call.info
        digits = info.params.get("code") or (info.args[0] if info.args else "")
        who = await self._supervisor_dialling(call, config, code=digits)
        if who is None:
            return
        queue = _queue_with_digits(config, digits)
        if queue is None:
            log.info("queue_status_code_unknown", supervisor=who, code=digits)
            await call.play(["beeperr"])
            return
        view = self.router.queue_view(queue)
        log.info("queue_status_told", supervisor=who, queue=queue, waiting=view["waiting"])
        await call.play(["queue-thereare"])
        await call.say("number", str(view["waiting"]))
        await call.play(["queue-callswaiting"])
        if view["waiting"]:
            await call.play(["queue-reporthold"])
            await _say_minutes(call, view["longest_wait"])

    async def _switch_code(self, call: Call, config: CallCenterConfig) -> None:
        """``*28`` + code from a supervisor's phone: the switch ``ivr.switch_codes`` names
        for the code goes on if it was off, off if it was on; they hear ``activated`` or
        ``de-activated`` (``beeperr`` for a code the config does not have)."""
        info = call.info
        code = info.params.get("code") or (info.args[0] if info.args else "")
        who = await self._supervisor_dialling(call, config, code=code)
        if who is None:
            return
        name = config.ivr.switch_codes.get(code)
        if name is None:
            log.info("switch_code_unknown", supervisor=who, code=code)
            await call.play(["beeperr"])
            return
        on = not self.switches.get(name, False)
        try:
            self.flip(name, on, via=f"phone:{who}")
        except EngineError as exc:  # a reload took the switch away meanwhile
            log.info("switch_code_refused", supervisor=who, code=code, error=str(exc))
            await call.play(["beeperr"])
            return
        await call.play(["activated" if on else "de-activated"])

    async def _desk_code(self, call: Call, config: CallCenterConfig) -> None:
        """``*86`` + a supervisor's id, from the phone they sit at: with their PIN, they
        work there from now on (``hot_desk``), or at their own phone again when it is
        theirs. They hear ``agent-loginok``; ``beeperr`` when refused (no ``hot_desk``, a
        call from no phone)."""
        info = call.info
        who = info.params.get("supervisor") or (info.args[0] if info.args else "")
        pins = {sid: s.pin for sid, s in config.supervisors.items()}
        if not await self.dialled_by(call, "supervisor", who, pins, action="desk"):
            return
        own = _owner_of(info.channel, {who: config.supervisors[who].device}) == who
        try:
            if not own and not info.device:
                raise EngineError("the call comes from no phone")
            self.seat_supervisor(who, None if own else info.device, via="feature-code")
        except EngineError as exc:
            log.info("desk_code_refused", supervisor=who, error=str(exc))
            await call.play(["beeperr"])
            return
        await call.play(["agent-loginok"])

    async def _supervisor_dialling(
        self, call: Call, config: CallCenterConfig, **about: str
    ) -> str | None:
        """The supervisor whose phone placed a supervisor's feature code (their PIN given),
        or None when it is no supervisor's phone or the PIN was wrong (heard, logged)."""
        info = call.info
        desks = self.supervisor_desks
        devices = {
            sid: desks[sid][0] if sid in desks else s.device
            for sid, s in config.supervisors.items()
        }
        who = info.params.get("supervisor") or _owner_of(info.channel, devices) or ""
        pins = {sid: s.pin for sid, s in config.supervisors.items()}
        return who if await self.dialled_by(call, "supervisor", who, pins, **about) else None

    async def dialled_by(
        self,
        call: Call,
        role: str,
        person: str,
        pins: Mapping[str, str | None],
        **about: str,
    ) -> bool:
        """Answer a feature code's call and make sure who dials it is known (an agent or a
        supervisor id in ``pins``) and gives their PIN if they have one; the caller hears
        ``invalid`` / ``auth-incorrect`` otherwise (False)."""
        await call.answer()
        self.bus.publish(CallAnswered(call_id=call.info.call_id))
        if person not in pins:
            log.warning(f"feature_code_unknown_{role}", channel=call.info.channel, **about)
            await call.play(["invalid"])
            return False
        pin = pins[person]
        if pin:
            given = await call.read_digits(
                "agent-pass", max_digits=len(pin), timeout=6.0, terminator="#"
            )
            if given != pin:
                log.warning("feature_code_wrong_pin", **{role: person}, **about)
                await call.play(["auth-incorrect"])
                return False
        return True

    def agent_for_channel(self, channel: str, config: CallCenterConfig) -> str | None:
        """The agent whose device placed ``channel``: ``PJSIP/1001-00000005`` on Asterisk,
        ``sofia/internal/1001@host`` on FreeSWITCH (matched by the endpoint's user part);
        an agent hot-desking at that phone first."""
        desks = {a.id: a.device for a in self.router.agents.values() if a.desk is not None}
        return _owner_of(channel, desks) or _owner_of(
            channel, {aid: a.device for aid, a in config.agents.items()}
        )

    @staticmethod
    def may_sit_at(info: CallInfo, agent_id: str, config: CallCenterConfig) -> bool:
        """May ``agent_id`` work at the phone that placed ``info``: their own, or any with
        ``hot_desk``?"""
        agent = config.agents.get(agent_id)
        if agent is None:
            return False
        return agent.hot_desk or _owner_of(info.channel, {agent_id: agent.device}) == agent_id

    @staticmethod
    def _hot_desk(info: CallInfo, agent_id: str, config: CallCenterConfig) -> str | None:
        """The phone a hot-desking agent logs in at (``*71<id>`` from a phone not their
        own): the calling device; None for their own phone, an agent without ``hot_desk``
        or a call from no phone."""
        agent = config.agents.get(agent_id)
        if agent is None or not agent.hot_desk or not info.device:
            return None
        if _owner_of(info.channel, {agent_id: agent.device}) == agent_id:
            return None
        return info.device

    # ------------------------------------------------------------------ helpers

    async def _unless_hangup(self, call: Call, aw: Awaitable[T], timeout: float) -> T:
        """Await ``aw`` unless the caller hangs up first (CallerGone) or time runs out."""
        task: asyncio.Future[T] = asyncio.ensure_future(aw)
        gone: asyncio.Future[None] = asyncio.ensure_future(call.wait_hangup())
        both: set[asyncio.Future[Any]] = {task, gone}
        try:
            done, _ = await asyncio.wait(both, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            if gone in done:
                raise CallerGone
            raise TimeoutError
        finally:
            for fut in both:
                if not fut.done():
                    await cancel_and_wait(fut)


def _owner_of(channel: str, devices: Mapping[str, str]) -> str | None:
    """Whose device (id -> device) placed ``channel``: ``PJSIP/1001-00000005`` on Asterisk,
    ``sofia/internal/1001@host`` on FreeSWITCH (matched by the endpoint's user part)."""
    device = channel.rsplit("-", 1)[0] if "-" in channel else channel
    user = device.split("/")[-1].split("@")[0]
    by_user: str | None = None
    for owner, owned in devices.items():
        if owned == device:
            return owner
        if owned.split("/")[-1] == user:
            by_user = owner
    return by_user


async def _say_minutes(call: Call, seconds: float) -> None:
    """A wait in whole minutes, rounded up: "less than 1 minute" or "N minutes"."""
    minutes = math.ceil(seconds / 60)
    if minutes <= 1:
        await call.play(["queue-less-than"])
        await call.say("number", "1")
        await call.play(["queue-minute"])
    else:
        await call.say("number", str(minutes))
        await call.play(["queue-minutes"])


def _queue_with_digits(config: CallCenterConfig, digits: str) -> str | None:
    """The queue whose ``digits`` (dialled after ``*45``, ``*85``, keyed after ``*4``) these
    are, or None."""
    if not digits:
        return None
    return next((q for q, qcfg in config.queues.items() if qcfg.digits == digits), None)


def recording_path(config: CallCenterConfig, queue: str, call_id: str) -> str:
    """Where the PBX records a call of ``queue``:
    ``<acd.recordings_folder>/<queue>/<UTC date-time>-<call id>.<acd.recording_format>``."""
    folder = os.path.normpath(config.resolve_path(config.acd.recordings_folder) / queue)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)
    return f"{folder}/{stamp}-{safe_id}.{config.acd.recording_format}"


_CONSULT_KEYS: Final[Mapping[str, Callable[[Switchboard, str], Awaitable[str]]]] = {
    "consult_cancel": Switchboard.consult_cancel,
    "consult_complete": Switchboard.consult_complete,
    "consult_join": Switchboard.consult_join,
}
"""What the keys of an agent consulting a colleague do (``acd.agent_keys``)."""


def _opted_in(value: str | None) -> bool:
    """An IVR variable that says yes: set, and not empty, "0", "no" or "false"."""
    return value is not None and value.strip().lower() not in ("", "0", "no", "false")


def _who(result: DialResult) -> str:
    if result.hung_up_by == "caller":
        return "caller"
    if result.hung_up_by == "system":
        return "system"
    return "agent"


def _agent_for_peer(peer_channel: str, agents: Sequence[Agent]) -> Agent:
    """Which of the rung ``agents`` answered, from the peer channel's name
    (``PJSIP/1001-0000000a``, ``sofia/internal/1001@host``)."""
    if len(agents) == 1 or not peer_channel:
        return agents[0]
    for agent in agents:
        if peer_channel == agent.device or peer_channel.startswith(agent.device + "-"):
            return agent
    name = peer_channel.rpartition("/")[2].partition("@")[0]
    for agent in agents:
        resource = agent.device.partition("/")[2].partition("@")[0]
        if resource and (name == resource or name.rpartition("-")[0] == resource):
            return agent
    log.warning("answering_agent_not_recognised", peer=peer_channel)
    return agents[0]


def _ring_outcome(result: DialResult) -> RingOutcome:
    """Why a dial failed, in the router's words (delays and auto-pause follow from it)."""
    if result.status is DialStatus.NOANSWER:
        return RingOutcome.NO_ANSWER
    if result.status is DialStatus.BUSY:
        if result.cause is HangupCause.CALL_REJECTED:
            return RingOutcome.REJECTED
        return RingOutcome.BUSY
    if result.status in (DialStatus.CHANUNAVAIL, DialStatus.CONGESTION):
        return RingOutcome.BUSY
    return RingOutcome.CANCELLED
