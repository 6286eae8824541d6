"""Engine events: what happened to calls and agents, in the engine's words.

The engine publishes these on an :class:`EventBus`; records (CDR, queue_log) are pure folds
over them and live outputs (metrics, MQTT) subscribe to them. Every event carries a wall-clock
UTC timestamp ``at`` (for records) and a monotonic ``mono`` (for durations).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import structlog

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineEvent:
    # A partial, not utcnow: no Python frame for every event the engine publishes.
    at: datetime = field(default_factory=functools.partial(datetime.now, UTC))
    mono: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent(EngineEvent):
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(CallEvent):
    """The PBX handed us a call."""

    channel: str
    caller_num: str
    caller_name: str
    dialed: str
    context: str
    linked_id: str = ""
    accountcode: str = ""
    transport: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(CallEvent):
    """We answered the caller's channel."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrStep(CallEvent):
    """The caller reached an IVR node; ``digits`` is what they pressed to leave the previous."""

    flow: str
    node: str
    digits: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrVariableSet(CallEvent):
    """An IVR node set a call variable (``value`` is ``***`` for private input such as PINs)."""

    flow: str
    node: str
    name: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailLeft(CallEvent):
    """The caller left a voicemail message in ``box``; ``path`` is the file the PBX wrote.
    ``queue``: the queue whose agents call back the messages of that box
    (``queues.<q>.mailbox``; "" when none); ``number`` and ``name``: the caller's."""

    box: str
    path: str
    seconds: float
    queue: str = ""
    number: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailTaken(EngineEvent):
    """Agent ``agent`` took the message the caller of ``call_id`` left (to listen to it and
    call them back): no other agent is offered it."""

    call_id: str
    queue: str
    agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailDone(EngineEvent):
    """The message of ``call_id`` is dealt with: ``outcome`` ``called-back`` (the agent
    called the caller back and they answered), ``done`` (they said so) or ``released``
    (put back for another agent: it waits again)."""

    call_id: str
    queue: str
    agent: str
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailNotReached(EngineEvent):
    """Agent ``agent`` called back the caller who left the message of ``call_id`` and got
    nobody (``reason``: ``busy``, ``no-answer``, ``rejected``, ``unavailable``,
    ``congestion``, ``failed``): the message stays theirs, to try again later or put back;
    ``tries``: the calls back that got nobody so far."""

    call_id: str
    queue: str
    agent: str
    reason: str
    tries: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticePosted(EngineEvent):
    """A notice for agents (``text``) stands until ``until``: for ``teams``, or every agent
    when empty, or a message to ``agents`` alone; ``by`` who posted it
    (``supervisor:2000``, ``api``, ``cli``)."""

    notice_id: str
    text: str
    by: str
    teams: tuple[str, ...] = ()
    until: datetime | None = None
    agents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeRead(EngineEvent):
    """``agent``'s desktop showed them the message ``notice_id`` (a notice to some agents
    alone) for the first time: their supervisor sees it read."""

    notice_id: str
    agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeTakenDown(EngineEvent):
    """Notice ``notice_id`` no longer stands: ``why`` ``taken-down`` (by ``by``),
    ``expired`` or ``replaced`` (the board was full)."""

    notice_id: str
    by: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRequested(CallEvent):
    """The caller asked to be called back on ``number`` by ``queue`` (for the outbound side)."""

    number: str
    queue: str
    caller_num: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueJoined(CallEvent):
    """The caller joined ``queue`` at ``position``; ``resumed``: they took back the place
    they had when they hung up there a moment ago (the queue's ``resume_abandoned``)."""

    queue: str
    position: int
    priority: int = 0
    resumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRinging(CallEvent):
    queue: str
    agent: str
    device: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRingFailed(CallEvent):
    """An offered agent did not take the call (``status`` is the DialStatus value)."""

    queue: str
    agent: str
    status: str
    ring_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConnected(CallEvent):
    """The agent answered; the caller left the queue."""

    queue: str
    agent: str
    peer_channel: str
    wait_seconds: float
    ring_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(CallEvent):
    """The PBX records the call into ``path`` (a path on the PBX's machine) until hang-up."""

    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingMuted(CallEvent):
    """The recording records silence from now (``muted``), or the call again; ``by`` is
    the agent who asked, or ``system`` (unmuted when the agent's talk ended)."""

    muted: bool
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAbandoned(CallEvent):
    """The caller hung up while waiting in the queue."""

    queue: str
    position: int
    wait_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueExited(CallEvent):
    """The caller left the queue unanswered for a reason other than hanging up.

    ``reason``: ``timeout`` (max_wait), ``leaveempty``, ``exitkey`` (``key`` says which),
    ``full`` or ``joinempty`` (refused on arrival, ``wait_seconds`` 0), or ``callback``
    (keeps their place to be called back; ``key`` is set when an exit key asked for it).
    ``position``: where the caller was when leaving (0 when refused on arrival).
    """

    queue: str
    reason: str
    wait_seconds: float
    position: int = 0
    key: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentKeysRefused(CallEvent):
    """An agent keyed a transfer on their phone (acd.agent_keys) that could not be done:
    ``keys`` as keyed (``*19999#``), ``reason`` why (the number is not allowed, the agent
    is busy...). The call goes on with the agent."""

    agent: str
    keys: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(CallEvent):
    """The call was transferred (``kind`` is ``blind``, ``queue``: into a queue,
    ``attended``: after a consultation, or ``takeover``: a supervisor listening to the
    agent took the call over)."""

    by: str
    """Agent id who transferred, or ``system``."""
    to: str
    """Destination: an agent/supervisor id or an extension; a queue's name (kind
    ``queue``)."""
    kind: str = "blind"


QUEUE_TRANSFER: Final = "queue"
"""CallTransferred kind of an agent sending the caller into a queue."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferFailed(CallEvent):
    """Nobody answered a blind transfer (after its CallTransferred): the caller hears
    transfer-failed, then goes back into ``back_to``, the queue they were in
    (``acd.transfer_unanswered: queue``), or the call ends (``back_to`` "")."""

    by: str
    """Who transferred the caller."""
    to: str
    """Whom the transfer rang."""
    status: str
    """How the ring ended: NOANSWER, BUSY, CONGESTION, CHANUNAVAIL..."""
    back_to: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultStarted(CallEvent):
    """An agent put the caller on hold to consult ``to`` (an agent or supervisor id), whose
    ``device`` rings; the caller hears music meanwhile (see :mod:`callcenter.consult`)."""

    agent: str
    to: str
    device: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultAnswered(CallEvent):
    """The consulted party answered: they and the agent talk; the caller does not hear."""

    agent: str
    to: str
    ring_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultJoined(CallEvent):
    """The agent brought the caller in: caller, agent and consulted party talk (three-way)."""

    agent: str
    to: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultEnded(CallEvent):
    """A consultation is over. ``outcome``: ``completed`` (the caller was handed over: a
    CallTransferred of kind ``attended`` comes with it), ``cancelled`` (the agent went back
    to the caller), ``no_answer``, ``hung_up`` (the consulted party left), ``caller_gone``.
    ``hold_seconds``: how long the caller waited on hold during it."""

    agent: str
    to: str
    outcome: str
    hold_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHeld(CallEvent):
    """The agent put the caller on hold: the caller hears music, the agent nothing."""

    agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallUnheld(CallEvent):
    """The caller's hold is over (the agent took them back, hung up, or the caller left)
    after ``hold_seconds``."""

    agent: str
    hold_seconds: float


ATTENDED_TRANSFER: Final = "attended"
"""CallTransferred kind of an agent handing the caller over after a consultation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TalkEnded(CallEvent):
    """A bridge with an agent (or supervisor) ended."""

    agent: str
    talk_seconds: float
    hung_up_by: str


LEFT_AT_SHUTDOWN = "shutdown"
"""``CallEnded.hung_up_by`` of a call the daemon let go of because it was stopping."""
LEFT_ON_LINK_LOSS = "link_lost"
"""``CallEnded.hung_up_by`` of a call whose PBX link went down under it, with no way to
hang it up: the caller may still be there, and a driver may take them back later."""
LEFT_WHILE_DRAINING = "draining"
"""``CallEnded.hung_up_by`` of a call that arrived while the daemon was draining: it was sent
to the PBX's failover untouched (``Call.fail_over``)."""
LEFT_TO_PBX = (LEFT_AT_SHUTDOWN, LEFT_ON_LINK_LOSS, LEFT_WHILE_DRAINING)
"""Calls that were not over when their record was written: a later record of the same call
(it was taken back) replaces it."""
STILL_IN_PROGRESS = "in_progress"
"""``hung_up_by`` of a call's checkpoint record (``records.checkpoint_seconds``): the call
was going on when it was written; its own record replaces it."""
LOST_TRACK = "lost"
"""``hung_up_by`` a checkpoint record gets at the next start when the daemon that wrote it
died without stopping (kill -9, a power cut): ``end`` is its last checkpoint."""
SUPERSEDED = (*LEFT_TO_PBX, STILL_IN_PROGRESS, LOST_TRACK)
"""Records of calls not over when written: a later record of the same call replaces them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEvent):
    """The call is over for the daemon: the last event of every call, exactly once."""

    hung_up_by: str
    """``caller``, ``agent`` or ``system``; or one of :data:`LEFT_TO_PBX`."""
    cause: int
    cause_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent(EngineEvent):
    agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSkillsChanged(AgentEvent):
    """The agent's skills were changed while the centre runs (``agent skills``): from now
    on they are ``skills`` (skill -> level). ``kept``: they lie on top of the config (False:
    the config's own skills again)."""

    skills: dict[str, int] = field(default_factory=dict)
    via: str = "cli"
    kept: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAdded(AgentEvent):
    """An agent was added while the centre runs (``agent add``, ``POST /roster``), or an
    added agent's settings changed (``changed``): ``settings`` are the agent's config fields
    as the config file would give them (``name``, ``device`` ...)."""

    settings: dict[str, Any] = field(default_factory=dict)
    via: str = "cli"
    changed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRemoved(AgentEvent):
    """An agent added while the centre runs was removed (``agent remove``)."""

    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAdded(EngineEvent):
    """A queue was added while the centre runs (``queue add``, ``POST /queues``), or an
    added queue's settings changed (``changed``): ``settings`` are its config fields as the
    config file's ``queues.<queue>`` would give them."""

    queue: str
    settings: dict[str, Any] = field(default_factory=dict)
    via: str = "cli"
    changed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRemoved(EngineEvent):
    """A queue added while the centre runs was removed (``queue remove``)."""

    queue: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentScheduleChanged(AgentEvent):
    """One day of the agent's schedule changed while the centre runs (``agent schedule``,
    ``POST /agents/<id>/schedule``): ``day`` (ISO date, in the schedule's time zone) has
    ``hours`` (``["10:00-18:00"]``; empty: a day off) instead of the schedule's; ``hours``
    None: the day is as the schedule says again."""

    day: str
    hours: list[str] | None = None
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRequested(AgentEvent):
    """The agent asks for ``day`` (ISO date) to be ``hours`` (empty: a day off) instead of
    their schedule's (their desktop, ``POST /schedule-requests``), saying why in ``note``:
    request ``request`` waits for a supervisor's word."""

    request: str
    day: str
    hours: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRequestDecided(AgentEvent):
    """A supervisor (``by``) ``approved`` the agent's request ``request`` (their schedule
    changes so: AgentScheduleChanged) or declined it; or the agent took it back
    (``withdrawn``, ``by`` the agent) before anyone answered."""

    request: str
    approved: bool
    by: str = ""
    withdrawn: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberChanged(AgentEvent):
    """The agent joined (``member``) or left ``queue`` while the centre runs (``agent
    join`` / ``agent leave``; ``via``: cli, api, or ``restart`` when a daemon takes a kept
    change back). ``penalty``: the one given on joining (None: the config's). ``kept``:
    the change lies on top of the config (False: the config's own membership again).
    ``pause``: the change paused the member in ``queue`` only or unpaused them (``agent
    pause --queue``); ``paused`` says why they are paused there now (None: they are not)."""

    queue: str
    member: bool
    penalty: int | None = None
    via: str = "cli"
    kept: bool = True
    pause: bool = False
    paused: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedIn(AgentEvent):
    device: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSeated(AgentEvent):
    """A logged-in agent works at ``device`` from now on, between calls: their open line
    (``line``: they dialled ``*70``), or back at their own phone."""

    device: str
    line: bool = False
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedOut(AgentEvent):
    shift_seconds: float
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPaused(AgentEvent):
    reason: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUnpaused(AgentEvent):
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakLinedUp(AgentEvent):
    """The agent asked for a break over their team's ``max_paused`` and waits in the team's
    ``break_line``, at ``place`` (1: next); their break starts (AgentPaused, via
    ``break-line``) once a teammate is back."""

    team: str
    reason: str
    place: int
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakLineLeft(AgentEvent):
    """The agent is out of their team's line for a break without having gone on it:
    ``why`` is ``ready:<via>`` (they asked to be ready), ``paused`` (a pause went through
    another way), ``logged-out`` or ``line-dropped`` (a reload took the team's line away).
    Going on the break is an AgentPaused (via ``break-line``)."""

    team: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPhoneReachable(AgentEvent):
    """The PBX says whether the agent's phone can be called (``reachable`` false: not
    registered; the agent stays logged in and is not offered calls until it is back)."""

    device: str
    reachable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(AgentEvent):
    old: str
    new: str


Listener = Callable[[EngineEvent], None]


class EventBus:
    """Synchronous fan-out of engine events. A failing listener is logged, never propagated:
    a broken report must not break a call."""

    def __init__(self) -> None:
        self._subscriptions: list[tuple[Listener, tuple[type[EngineEvent], ...] | None]] = []
        self._routes: dict[type[EngineEvent], tuple[Listener, ...]] = {}

    def subscribe(
        self, listener: Listener, kinds: Collection[type[EngineEvent]] | None = None
    ) -> None:
        """Call ``listener`` with every event published from now on, or with the events of
        ``kinds`` only (their subclasses too): a listener that wants a few kinds then
        costs the other events nothing (a call publishes a dozen)."""
        self._subscriptions.append((listener, None if kinds is None else tuple(kinds)))
        self._routes.clear()

    def unsubscribe(self, listener: Listener) -> None:
        for at, (subscribed, _kinds) in enumerate(self._subscriptions):
            if subscribed == listener:
                del self._subscriptions[at]
                self._routes.clear()
                return
        raise ValueError(f"{listener!r} is not subscribed")

    def publish(self, event: EngineEvent) -> None:
        kind = type(event)
        listeners = self._routes.get(kind)
        if listeners is None:
            listeners = self._routes[kind] = tuple(
                listener
                for listener, kinds in self._subscriptions
                if kinds is None or issubclass(kind, kinds)
            )
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event_listener_failed", event_type=kind.__name__)


# --------------------------------------------------------------------------- queues (ACD)
# Events about a caller who may have hung up already (waiting for a callback) are not
# CallEvents: records fold CallEvents per live call, and that call may be over.


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEscalated(EngineEvent):
    """The caller ``call_id`` (or the callback request it left) reached its queue's next
    escalation stage: more agents may take it."""

    call_id: str
    queue: str
    stage: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuePriorityChanged(CallEvent):
    """A supervisor gave the waiting caller (or callback request) ``call_id`` another
    priority in ``queue`` (``old`` before); ``via``: cli, api, desktop."""

    queue: str
    priority: int
    old: int
    via: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAnnounced(CallEvent):
    """The caller was told its position and/or estimated wait (None: not said)."""

    queue: str
    position: int | None
    wait_seconds: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallbackRequested(CallEvent):
    """The caller hung up keeping their place; ``number`` is called back on their turn.
    ``priority`` and ``skills`` are the caller's in the queue (kept across a restart).
    ``due``: a callback asked for at a later time (``POST /callbacks`` with ``at``): it
    joins the queue then (``position`` 0 until it does)."""

    queue: str
    number: str
    position: int
    priority: int = 0
    skills: tuple[str, ...] = ()
    due: datetime | None = None
    data: dict[str, str] = field(default_factory=dict)
    """What the agent's screen and the callback call's CDR get as variables: the IVR
    variables of the call that asked (a caller's account number), or what a web form sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallbackAttempt(EngineEvent):
    """An agent is reserved and ``number`` is being called back for the caller of
    ``origin_call_id`` (that call has ended)."""

    origin_call_id: str
    queue: str
    number: str
    agent: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallbackFailed(EngineEvent):
    """A callback attempt got no answer (``final``: no attempt left, the request is dropped)."""

    origin_call_id: str
    queue: str
    number: str
    attempt: int
    reason: str
    final: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallbackAnswered(CallEvent):
    """The called-back caller answered: call ``call_id`` takes over the place
    ``original_call_id`` kept in ``queue``."""

    queue: str
    number: str
    original_call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAlert(EngineEvent):
    """``queue``'s ``figure`` (``waiting`` callers, ``longest_wait`` seconds,
    ``voicemails`` still to call back, ``oldest_voicemail`` seconds) reached its
    ``threshold`` (``raised``: it is ``value`` now) or went back under it (``raised``
    false; ``value`` then)."""

    queue: str
    figure: str
    value: float
    threshold: float
    raised: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAlert(EngineEvent):
    """``agent`` has been in ``figure`` (their state: ``paused``, ``wrap_up``,
    ``on_call``) for ``threshold`` seconds of ``acd.agent_alerts`` (``raised``; ``value``
    seconds so far), or left it (``raised`` false; ``value``: how long it lasted).
    ``reason``: the pause reason."""

    agent: str
    figure: str
    value: float
    threshold: float
    raised: bool
    reason: str = ""


# --------------------------------------------------------------------------- agents' own calls


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDialing(AgentEvent):
    """``agent`` dials ``number`` through ``queue`` (``via``: ``phone`` for ``*77``,
    ``cli``, ``api``). ``dial_id`` names this dial in the events that follow; the call
    that answers has an id of its own (:class:`AgentDialAnswered`)."""

    dial_id: str
    number: str
    queue: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDialFailed(AgentEvent):
    """``agent``'s dial ``dial_id`` of ``number`` got nobody: ``reason`` is ``busy``,
    ``no-answer``, ``rejected``, ``unavailable``, ``congestion``, ``failed`` (the PBX could
    not place it), ``agent-no-answer`` (their own phone was not answered), ``agent-left``
    (they hung up, or logged out, first), ``stopped`` (the daemon stopped) or
    ``pbx-down``."""

    dial_id: str
    number: str
    queue: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDialAnswered(CallEvent):
    """The ``number`` ``agent`` dialled (dial ``dial_id``) answered: call ``call_id`` is
    theirs and is put through to the agent."""

    agent: str
    number: str
    queue: str
    dial_id: str


# --------------------------------------------------------------------------- campaigns


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignStateChanged(EngineEvent):
    """Campaign ``campaign`` is now ``state``: ``running``, ``paused`` (``why`` says by
    whom), ``closed`` (outside its hours), ``finished`` (no lead left to try) or
    ``stopped`` (the daemon stopped, or the campaign left the config)."""

    campaign: str
    state: str
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignDialing(EngineEvent):
    """Lead ``lead`` of ``campaign`` is being dialled (its ``attempt``-th try), with
    ``agent`` of ``queue`` reserved for them (``""``: a predictive dial, nobody reserved)."""

    campaign: str
    lead: str
    number: str
    queue: str
    agent: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignAnswered(CallEvent):
    """Lead ``lead`` of ``campaign`` answered: call ``call_id`` is theirs and goes to the
    reserved agent (or the next free one of ``queue``)."""

    campaign: str
    lead: str
    number: str
    queue: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DispositionOwed(AgentEvent):
    """``agent``'s talk on call ``call_id`` ended in a queue with ``disposition_required``:
    they stay in wrap-up until they give it a code (:class:`CallDisposed`). What the code
    needs of the call (``number``, ``queue``, ``campaign``, ``lead``) comes with it, so that
    a restarted daemon can still take the code (``agent_presence``)."""

    call_id: str
    number: str
    queue: str
    campaign: str = ""
    lead: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallDisposed(CallEvent):
    """``agent`` gave call ``call_id`` (with ``number``, answered in ``queue``) the code
    ``code``, and ``note``; ``campaign``/``lead`` when it was a campaign's call;
    ``callback_at``: when the person asked to be called again (``callback`` codes);
    ``do_not_call``: they asked never to be called again."""

    agent: str
    code: str
    note: str
    number: str
    queue: str = ""
    campaign: str = ""
    lead: str = ""
    callback_at: datetime | None = None
    do_not_call: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvaluated(CallEvent):
    """Supervisor ``supervisor`` scored ``agent``'s call ``call_id`` of ``queue`` with
    the form ``form``: ``percent`` of its points, ``passed`` its pass mark."""

    supervisor: str
    agent: str
    queue: str
    form: str
    percent: float
    passed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationReplied(CallEvent):
    """``agent`` answered ``supervisor``'s scorecard of their call ``call_id``: ``reply``
    is ``agreed`` or ``disputed``, ``note`` what they said (a dispute says why)."""

    supervisor: str
    agent: str
    reply: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyEnded(CallEvent):
    """The caller of ``call_id`` walked ``queue``'s post-call survey (flow ``flow``) about
    ``agent``, who served them last: ``answers`` are the variables the survey set (private
    ones as ***), ``score`` the score variable's value as a number (None: not given, or
    not digits); ``completed``: the survey ran to its end (False: the caller hung up on
    the way); ``seconds`` it took."""

    queue: str
    agent: str
    flow: str
    number: str = ""
    """The caller's number."""
    answers: dict[str, str] = field(default_factory=dict)
    score: int | None = None
    satisfied: bool | None = None
    """The score reached the survey's ``satisfied_from`` (None: no score, or no
    threshold)."""
    completed: bool = False
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignLeadRescheduled(EngineEvent):
    """The person of answered lead ``lead`` of ``campaign`` asked to be called again: the
    lead is tried again at ``retry_at``, its tries counted afresh (``attempts`` 0); with
    ``retry_at`` None the callback was called off (a corrected code) and the lead is
    answered again, after ``attempts`` tries."""

    campaign: str
    lead: str
    number: str
    retry_at: datetime | None
    attempts: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignLeadAdded(EngineEvent):
    """Lead ``lead`` (``number``, its ``timezone`` and lead-file columns ``data``) was
    added to ``campaign`` while it runs (``campaign add-lead``, ``POST
    /campaigns/<id>/leads``): called as the file's leads are, kept across restarts."""

    campaign: str
    lead: str
    number: str
    timezone: str = ""
    data: dict[str, str] = field(default_factory=dict)
    via: str = "cli"
    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignLeadRecycled(EngineEvent):
    """Failed lead ``lead`` of ``campaign`` (its tries used up, the last ``reason``: busy,
    no-answer ...) is tried again from now on, its tries counted afresh (``campaign
    recycle``), as diallers recycle a list."""

    campaign: str
    lead: str
    number: str
    reason: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignPreview(EngineEvent):
    """Lead ``lead`` of preview ``campaign`` is shown to ``agent`` (reserved for it), with
    the lead's columns (``data``), for ``seconds``; ``decision`` says how it ended once it
    has: ``dial``, ``skip`` (the agent's), ``timeout-dial``, ``timeout-skip``, or
    ``withdrawn`` (the agent left, the campaign paused); ``""`` when it starts."""

    campaign: str
    lead: str
    number: str
    agent: str
    seconds: float
    data: tuple[tuple[str, str], ...] = ()
    decision: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignLeadWaiting(CallEvent):
    """Lead ``lead`` of predictive ``campaign`` answered on call ``call_id`` and waits, first
    in ``queue``, for a free agent (CampaignAnswered once one takes them; dropped after
    ``drop_after`` seconds without one)."""

    campaign: str
    lead: str
    number: str
    queue: str
    attempt: int
    drop_after: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignMachineAnswered(CallEvent):
    """An answering machine answered lead ``lead`` of ``campaign`` on call ``call_id`` (the
    dialplan's detection said so); ``action``: ``hangup``, or ``message`` left on it."""

    campaign: str
    lead: str
    number: str
    attempt: int
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignAttemptFailed(EngineEvent):
    """A try of lead ``lead`` got no answer: ``reason`` is what the PBX said (``busy``,
    ``no-answer``, ``rejected``, ``unavailable``, ``congestion``, ``failed``),
    ``originate-failed`` (it refused the dial) or ``interrupted`` (the daemon before this
    one stopped while the lead's phone rang: an answer still reaches an agent); ``final``:
    no try left, the lead is given up, else the next one is due at ``retry_at``. With
    ``pbx-down`` the try could not be made (the PBX link was down when it was to be
    dialled): it is not counted, ``attempt`` is the tries made before it."""

    campaign: str
    lead: str
    number: str
    attempt: int
    reason: str
    final: bool
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignLeadSkipped(EngineEvent):
    """Lead ``lead`` is never dialled (again): ``reason`` is ``do-not-call`` (its number is
    on the campaign's list), ``not-allowed`` (outside the campaign's ``allow`` patterns) or
    ``removed`` (taken off the campaign: ``campaign remove-lead``, ``via`` cli or api,
    after ``attempts`` tries)."""

    campaign: str
    lead: str
    number: str
    reason: str
    via: str = ""
    attempts: int = 0


# --------------------------------------------------------------------------- the daemon


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCentreStarted(EngineEvent):
    """The daemon has its PBX and is about to take calls: whatever a previous daemon had in
    progress is no longer followed (queue_log's ``QUEUESTART``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReloaded(EngineEvent):
    """The config file was read again; calls from now on use it (``CONFIGRELOAD``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchFlipped(EngineEvent):
    """Switch ``name`` (``ivr.switches``) went ``on`` or off (``via``: cli, api, a restart
    taking the last state back): flows test it for the calls arriving from now on."""

    name: str
    on: bool
    via: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorSeated(EngineEvent):
    """Supervisor ``supervisor`` works at ``device`` from now on (``""``: their own phone
    again); ``via``: cli, api."""

    supervisor: str
    device: str
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberListChanged(EngineEvent):
    """``number`` was put on (``added``) or taken off the IVR number list ``number_list``
    while the centre runs (``callcenter numbers add``; ``via``: cli, api)."""

    number_list: str
    number: str
    added: bool
    via: str = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainStarted(EngineEvent):
    """The daemon takes no new calls and stops once the ``calls`` in progress are over, or
    ``timeout`` seconds from now (:mod:`callcenter.drain`)."""

    timeout: float
    calls: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainEnded(EngineEvent):
    """A drain is over: ``outcome`` ``done`` (every call ended; the daemon stops),
    ``timeout`` (it stops with calls left, as on SIGTERM) or ``cancelled`` (it takes calls
    again). ``refused``: calls sent to the failover meanwhile."""

    outcome: str
    refused: int
    seconds: float


# --------------------------------------------------------------------------- supervision
# A supervisor's spy may end after the call it watched (the PBX reports the two in any
# order), so only what happens while the call lasts is a CallEvent.


@dataclass(frozen=True, slots=True, kw_only=True)
class CallMonitored(CallEvent):
    """Supervisor ``supervisor`` is on agent ``agent``'s call in ``mode`` (``listen``,
    ``whisper`` or ``barge``): published when the supervisor answers and at each change of
    mode."""

    supervisor: str
    agent: str
    mode: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorEnded(EngineEvent):
    """Supervisor ``supervisor``'s monitoring of ``agent`` on ``call_id`` is over:
    ``seconds`` from the answer (0 if the supervisor never answered); ``why`` is
    ``stopped`` (asked), ``replaced`` (the supervisor moved to another call),
    ``not_answered``, ``ended`` (the supervisor hung up, or the agent's part of the call is
    over), ``shutdown`` (the daemon stopped) or ``taken_over`` (the supervisor took the
    call over)."""

    supervisor: str
    agent: str
    call_id: str
    seconds: float
    why: str


def event_types() -> dict[str, type[EngineEvent]]:
    """Every engine event type by class name (``AgentConnected`` -> the class events are
    instances of): what a config may name to subscribe to."""
    found: dict[str, type[EngineEvent]] = {}
    seen: set[type[EngineEvent]] = set()
    todo: list[type[EngineEvent]] = [EngineEvent]
    while todo:
        for sub in todo.pop().__subclasses__():
            # A slots dataclass is a new class: its slot-less first draft stays a subclass
            # of the base too, without subclasses of its own. Walk both.
            if sub not in seen:
                seen.add(sub)
                if sub.__name__ not in found or "__slots__" in vars(sub):
                    found[sub.__name__] = sub  # the class events are made of
                todo.append(sub)
    for base in ("CallEvent", "AgentEvent"):
        found.pop(base, None)
    return dict(sorted(found.items()))
