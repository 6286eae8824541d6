"""Call detail records: a pure fold over a call's engine events, one row per call.

``fold(draft, event)`` applies one :mod:`callcenter.events` call event to a
:class:`CdrDraft` (a dispatch table maps event type to handler); ``finish(draft)`` turns the
draft into the immutable :class:`CdrRecord`. Neither touches I/O or clocks, so any event
order gives a record (events from a resynchronised PBX may arrive out of order).

Field names follow Asterisk's CDR where they overlap (``src``, ``dst``, ``dcontext``,
``clid``, ``channel``, ``dstchannel``, ``lastapp``, ``start``, ``answer``, ``end``,
``duration``, ``billsec``, ``disposition``, ``uniqueid``, ``linkedid``, ``accountcode``), and
behave like Asterisk's: a call answered by the IVR is ANSWERED even if no agent took it;
``duration`` and ``billsec`` are whole seconds rounded half up, measured with the monotonic
``mono`` of the events; ``start``/``answer``/``end`` are the events' UTC wall-clock times.

Call-centre fields:

* ``ivr_path``: IVR nodes as ``flow:node``, with the digits pressed between them,
  e.g. ``main:welcome>2>main:support_q``.
* ``queue`` and ``wait_seconds``: the last queue joined and the total seconds spent waiting
  in queues (join to connect, abandon or exit).
* ``agent``: the **first** agent who answered. Later parties reached by transfer are in
  ``transfer_path``, which starts with the transferring agent: ``1002>2000`` means 1002
  transferred the caller to 2000; ``1002>billing>1003``: 1002 sent the caller into queue
  billing, where 1003 took them; ``1002>2000>sales>1002``: nobody answered 1002's transfer
  to 2000, and the caller went back into sales (``acd.transfer_unanswered``), where 1002
  took them again; ``transfers`` counts the transfers.
* ``talk_seconds``: talk time over every leg (agent and transfer targets).
* ``abandoned``: the caller hung up while waiting in a queue.
* ``hung_up_by`` (``caller``/``agent``/``system``, or ``shutdown``: the daemon stopped with
  the call in progress and left it to the PBX; ``end`` is then the stop, and the cause
  ``UNSPECIFIED`` unless the PBX had ended the call; or ``link_lost``: the PBX link went down
  under the call and it could not be hung up. A daemon that takes such a caller back later
  replaces that row, see the store; ``in_progress``: a checkpoint of a call still going
  (:meth:`CdrRecorder.checkpoint`), replaced by its record when it ends; ``lost``: such a
  checkpoint whose daemon died without stopping, marked at the next start, ``end`` being
  the last checkpoint), ``hangup_cause`` (Q.850 code) and ``hangup_cause_name``.
* ``ivr_variables``: the variables the IVR set (a JSON object; private input such as PINs
  as ``***``), e.g. ``{"language": "fr", "account": "1234"}``.
* A campaign's call (a lead who answered): ``accountcode`` is the campaign's id, and
  ``ivr_variables`` has ``campaign``, ``lead`` and the lead file's other columns.
* An agent's own outbound call (``*77``, ``agent dial``): ``dst`` is the number they
  dialled and ``ivr_variables`` has ``dialled_by`` (the agent, also in ``agent``); a queue
  callback: ``dst`` is the number called back and ``ivr_variables`` has ``callback_of``
  (the call that asked for it).
* ``voicemail``: the file of the message the caller left (empty when none).
* ``recordingfile``: the recording of the call (queues with ``record: true``; a path on
  the PBX's machine, empty when none), as FreePBX's CDR names it;
  ``recording_muted_seconds``: how long the agent had it record silence (card details).
* ``consulted``: whom the agents consulted while the caller held, in order
  (``2000,1003``); ``hold_seconds``: how long the caller waited on hold, for them or
  put there by the agent (``agent hold``). A
  consultation the agent completed is a transfer (``transfer_path`` ``1001>2000``).
* ``monitored_by``: the supervisors who listened, whispered or barged on the call, in the
  order they joined (``2000,2001``); ``barged``: one of them barged in, so the caller
  heard a supervisor.

``lastapp`` names the last stage the call reached in Asterisk's words: ``AGI`` (handed
over), ``Answer``, ``BackGround`` (IVR), ``Record`` (voicemail), ``Queue``, ``Dial`` (agent
or transfer target).

:class:`CdrRecorder` is the event-bus listener that keeps one draft per live call and, on
CallEnded, hands the record to a :class:`~callcenter.records.writer.RecordWriter`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import operator
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import structlog

from callcenter.events import (
    QUEUE_TRANSFER,
    STILL_IN_PROGRESS,
    AgentConnected,
    AgentDialAnswered,
    AgentRinging,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallEvent,
    CallMonitored,
    CallStarted,
    CallTransferred,
    CallUnheld,
    CampaignAnswered,
    CampaignLeadWaiting,
    CampaignMachineAnswered,
    ConsultEnded,
    ConsultStarted,
    EngineEvent,
    IvrStep,
    IvrVariableSet,
    QueueAbandoned,
    QueueCallbackAnswered,
    QueueExited,
    QueueJoined,
    RecordingMuted,
    RecordingStarted,
    TalkEnded,
    TransferFailed,
    VoicemailLeft,
)
from callcenter.records.writer import RecordWriter

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


class Disposition:
    """Asterisk's CDR disposition values."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"


_BUSY_CAUSES = frozenset({17})
# Q.850 causes for which Asterisk's CDR says FAILED (no route, congestion, out of order...).
_FAILED_CAUSES = frozenset({1, 3, 22, 27, 28, 34, 38, 41, 42, 44, 58, 88, 102, 127})


@dataclass(frozen=True, slots=True)
class CdrRecord:
    """One finished call. Datetimes are UTC; ``to_row`` gives ISO 8601 strings."""

    accountcode: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    uniqueid: str
    linkedid: str
    ivr_path: str
    queue: str
    wait_seconds: float
    agent: str
    talk_seconds: float
    transfers: int
    transfer_path: str
    abandoned: bool
    hung_up_by: str
    hangup_cause: int
    hangup_cause_name: str
    ivr_variables: str = "{}"
    voicemail: str = ""
    monitored_by: str = ""
    barged: bool = False
    recordingfile: str = ""
    recording_muted_seconds: float = 0.0
    consulted: str = ""
    hold_seconds: float = 0.0

    def to_row(self) -> dict[str, Any]:
        """The record as JSON-able values (datetimes as ISO 8601 with milliseconds)."""
        row: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat(timespec="milliseconds")
            row[f.name] = value
        return row


CDR_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CdrRecord))


@dataclass(slots=True)
class CdrDraft:
    """What is known so far about one call.

    :func:`fold` never changes the draft it is given (it folds into a copy), so a draft handed
    out stays as it was; do not assign to one yourself.
    """

    uniqueid: str
    start: datetime
    start_mono: float
    last_at: datetime
    """The latest event's time: the end when CallEnded never came."""
    last_mono: float
    linkedid: str = ""
    accountcode: str = ""
    src: str = ""
    src_name: str = ""
    dst: str = ""
    dcontext: str = ""
    channel: str = ""
    dstchannel: str = ""
    lastapp: str = ""
    answer: datetime | None = None
    answer_mono: float | None = None
    end: datetime | None = None
    end_mono: float | None = None
    ivr: tuple[str, ...] = ()
    queue: str = ""
    joined_mono: float | None = None
    """Set while the caller waits in a queue."""
    wait_seconds: float = 0.0
    agent: str = ""
    talking_since: float | None = None
    """Set while the caller talks to an agent whose TalkEnded has not come yet."""
    talk_seconds: float = 0.0
    transfer_path: tuple[str, ...] = ()
    transfers: int = 0
    to_queue: bool = False
    """The last transfer sent the caller into a queue (its agent is added to the path)."""
    abandoned: bool = False
    hung_up_by: str = ""
    hangup_cause: int = 0
    hangup_cause_name: str = ""
    ivr_variables: tuple[tuple[str, str], ...] = ()
    """Variables the IVR set, in the order first set (a later value replaces the earlier)."""
    voicemail: str = ""
    monitored_by: tuple[str, ...] = ()
    barged: bool = False
    recordingfile: str = ""
    recording_muted_since: float | None = None
    recording_muted_seconds: float = 0.0
    consulted: tuple[str, ...] = ()
    hold_seconds: float = 0.0


_Handler = Callable[[CdrDraft, Any], None]
"""Folds one event into a fresh copy of the draft, in place."""

# Every field, in constructor order: a positional rebuild is ~10x cheaper than
# dataclasses.replace, and fold copies the draft once per event.
_all_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(CdrDraft)))


@dataclass(frozen=True, slots=True)
class QueueVisit:
    """A call that joined a queue, as its CDR says (what
    :meth:`~callcenter.records.store.RecordStore.fetch_queue_visits` reads)."""

    number: str
    queue: str
    start: datetime
    end: datetime
    wait_seconds: float
    abandoned: bool
    campaign: bool
    """A campaign's lead (never takes an abandoned place back)."""


def _copy(d: CdrDraft) -> CdrDraft:
    return CdrDraft(*_all_fields(d))


def _answered(d: CdrDraft, event: CallEvent) -> None:
    if d.answer is None:
        d.answer = event.at
        d.answer_mono = event.mono


def _stop_waiting(d: CdrDraft, event: CallEvent, reported: float) -> None:
    """Add the wait since QueueJoined (or the engine's figure when the join was not seen)."""
    waited = event.mono - d.joined_mono if d.joined_mono is not None else reported
    d.wait_seconds += max(0.0, waited)
    d.joined_mono = None


def _on_started(d: CdrDraft, e: CallStarted) -> None:
    d.start = e.at
    d.start_mono = e.mono
    d.linkedid = e.linked_id or e.call_id
    d.accountcode = e.accountcode
    d.src = e.caller_num
    d.src_name = e.caller_name
    d.dst = e.dialed
    d.dcontext = e.context
    d.channel = e.channel
    d.lastapp = d.lastapp or "AGI"


def _on_answered(d: CdrDraft, e: CallAnswered) -> None:
    _answered(d, e)
    if d.lastapp in ("", "AGI"):
        d.lastapp = "Answer"


def _on_ivr_step(d: CdrDraft, e: IvrStep) -> None:
    step = (e.digits, f"{e.flow}:{e.node}") if e.digits else (f"{e.flow}:{e.node}",)
    d.ivr += step
    d.lastapp = "BackGround"


def _on_ivr_variable(d: CdrDraft, e: IvrVariableSet) -> None:
    values = dict(d.ivr_variables)
    values[e.name] = e.value
    d.ivr_variables = tuple(values.items())


def _on_campaign_call(
    d: CdrDraft, e: CampaignAnswered | CampaignLeadWaiting | CampaignMachineAnswered
) -> None:
    d.accountcode = e.campaign


def _on_agent_dial(d: CdrDraft, e: AgentDialAnswered | QueueCallbackAnswered) -> None:
    d.dst = e.number


def _on_voicemail(d: CdrDraft, e: VoicemailLeft) -> None:
    d.voicemail = e.path
    d.lastapp = "Record"


def _on_queue_joined(d: CdrDraft, e: QueueJoined) -> None:
    d.queue = e.queue
    d.joined_mono = e.mono
    d.lastapp = "Queue"


def _on_agent_ringing(d: CdrDraft, e: AgentRinging) -> None:
    d.queue = e.queue or d.queue


def _on_agent_connected(d: CdrDraft, e: AgentConnected) -> None:
    _answered(d, e)
    if d.joined_mono is not None or d.wait_seconds == 0.0:
        _stop_waiting(d, e, e.wait_seconds)
    d.queue = e.queue or d.queue
    d.agent = d.agent or e.agent
    if d.to_queue:
        # Sent into a queue by a transfer: who took the caller there is the next party.
        d.transfer_path = (*d.transfer_path, e.agent)
        d.to_queue = False
    d.dstchannel = e.peer_channel or d.dstchannel
    d.talking_since = e.mono
    d.lastapp = "Dial"


def _on_abandoned(d: CdrDraft, e: QueueAbandoned) -> None:
    _stop_waiting(d, e, e.wait_seconds)
    d.queue = e.queue or d.queue
    d.abandoned = True


def _on_exited(d: CdrDraft, e: QueueExited) -> None:
    _stop_waiting(d, e, e.wait_seconds)
    d.queue = e.queue or d.queue


def _on_transferred(d: CdrDraft, e: CallTransferred) -> None:
    d.transfer_path = (*d.transfer_path, e.to) if d.transfer_path else (e.by, e.to)
    d.transfers += 1
    d.to_queue = e.kind == QUEUE_TRANSFER
    d.lastapp = "Queue" if d.to_queue else "Dial"


def _on_transfer_failed(d: CdrDraft, e: TransferFailed) -> None:
    if e.back_to:
        # Back in the queue: whoever takes the caller there is the next party.
        d.transfer_path = (*d.transfer_path, e.back_to)
        d.to_queue = True
        d.lastapp = "Queue"


def _on_talk_ended(d: CdrDraft, e: TalkEnded) -> None:
    d.talk_seconds += max(0.0, e.talk_seconds)
    d.talking_since = None
    d.agent = d.agent or e.agent


def _on_monitored(d: CdrDraft, e: CallMonitored) -> None:
    if e.supervisor not in d.monitored_by:
        d.monitored_by = (*d.monitored_by, e.supervisor)
    d.barged = d.barged or e.mode == "barge"


def _on_recording(d: CdrDraft, e: RecordingStarted) -> None:
    d.recordingfile = d.recordingfile or e.path


def _on_recording_muted(d: CdrDraft, e: RecordingMuted) -> None:
    if e.muted and d.recording_muted_since is None:
        d.recording_muted_since = e.mono
    elif not e.muted and d.recording_muted_since is not None:
        d.recording_muted_seconds += max(0.0, e.mono - d.recording_muted_since)
        d.recording_muted_since = None


def _on_consult_started(d: CdrDraft, e: ConsultStarted) -> None:
    d.consulted = (*d.consulted, e.to)


def _on_hold_over(d: CdrDraft, e: ConsultEnded | CallUnheld) -> None:
    d.hold_seconds += max(0.0, e.hold_seconds)


def _on_ended(d: CdrDraft, e: CallEnded) -> None:
    if d.recording_muted_since is not None:
        d.recording_muted_seconds += max(0.0, e.mono - d.recording_muted_since)
        d.recording_muted_since = None
    if d.joined_mono is not None:
        _stop_waiting(d, e, 0.0)
    if d.talking_since is not None:
        d.talk_seconds += max(0.0, e.mono - d.talking_since)
        d.talking_since = None
    d.end = e.at
    d.end_mono = e.mono
    d.hung_up_by = e.hung_up_by
    d.hangup_cause = e.cause
    d.hangup_cause_name = e.cause_name


HANDLERS: Mapping[type[CallEvent], _Handler] = {
    CallStarted: _on_started,
    CallAnswered: _on_answered,
    IvrStep: _on_ivr_step,
    IvrVariableSet: _on_ivr_variable,
    VoicemailLeft: _on_voicemail,
    CampaignAnswered: _on_campaign_call,
    CampaignLeadWaiting: _on_campaign_call,
    CampaignMachineAnswered: _on_campaign_call,
    AgentDialAnswered: _on_agent_dial,
    QueueCallbackAnswered: _on_agent_dial,
    QueueJoined: _on_queue_joined,
    AgentRinging: _on_agent_ringing,
    AgentConnected: _on_agent_connected,
    QueueAbandoned: _on_abandoned,
    QueueExited: _on_exited,
    CallTransferred: _on_transferred,
    TransferFailed: _on_transfer_failed,
    TalkEnded: _on_talk_ended,
    CallMonitored: _on_monitored,
    RecordingStarted: _on_recording,
    RecordingMuted: _on_recording_muted,
    ConsultStarted: _on_consult_started,
    ConsultEnded: _on_hold_over,
    CallUnheld: _on_hold_over,
    CallEnded: _on_ended,
}
"""Event type -> how it changes the draft. Call events not listed leave it unchanged."""


def fold(state: CdrDraft | None, event: CallEvent) -> CdrDraft:
    """The draft after ``event``. Pure: ``state`` is left as it was. ``state`` None starts a
    draft from any event."""
    if state is None:
        draft = CdrDraft(
            uniqueid=event.call_id,
            start=event.at,
            start_mono=event.mono,
            last_at=event.at,
            last_mono=event.mono,
            linkedid=event.call_id,
        )
    else:
        draft = _copy(state)
    handler = HANDLERS.get(type(event))
    if handler is not None:
        handler(draft, event)
    if event.mono >= draft.last_mono:
        draft.last_at = event.at
        draft.last_mono = event.mono
    return draft


def _seconds(value: float) -> int:
    """Whole seconds rounded half up, as Asterisk rounds CDR durations."""
    return math.floor(max(0.0, value) + 0.5)


def _clid(name: str, num: str) -> str:
    # Asterisk's ast_callerid_merge: '"Name" <num>', or whichever part exists.
    name = name.replace('"', "").strip()
    if name and num:
        return f'"{name}" <{num}>'
    return name or num


def _disposition(d: CdrDraft) -> str:
    if d.answer is not None:
        return Disposition.ANSWERED
    if d.hangup_cause in _BUSY_CAUSES:
        return Disposition.BUSY
    if d.hangup_cause in _FAILED_CAUSES:
        return Disposition.FAILED
    return Disposition.NO_ANSWER


def so_far(draft: CdrDraft, at: datetime, mono: float) -> CdrRecord:
    """The checkpoint record of a call still in progress at ``at`` (``mono``: the same
    moment on the monotonic clock): ``hung_up_by`` ``in_progress``, ended then."""
    going = _copy(draft)
    going.end, going.end_mono, going.hung_up_by = at, mono, STILL_IN_PROGRESS
    return finish(going)


def finish(draft: CdrDraft) -> CdrRecord:
    """The record of a finished call (a call whose CallEnded never came ends at its last
    event)."""
    end = draft.end if draft.end is not None else draft.last_at
    end_mono = draft.end_mono if draft.end_mono is not None else draft.last_mono
    billsec = _seconds(end_mono - draft.answer_mono) if draft.answer_mono is not None else 0
    return CdrRecord(
        accountcode=draft.accountcode,
        src=draft.src,
        dst=draft.dst,
        dcontext=draft.dcontext,
        clid=_clid(draft.src_name, draft.src),
        channel=draft.channel,
        dstchannel=draft.dstchannel,
        lastapp=draft.lastapp,
        start=draft.start,
        answer=draft.answer,
        end=end,
        duration=_seconds(end_mono - draft.start_mono),
        billsec=billsec,
        disposition=_disposition(draft),
        uniqueid=draft.uniqueid,
        linkedid=draft.linkedid or draft.uniqueid,
        ivr_path=">".join(draft.ivr),
        queue=draft.queue,
        wait_seconds=round(draft.wait_seconds, 3),
        agent=draft.agent,
        talk_seconds=round(draft.talk_seconds, 3),
        transfers=draft.transfers,
        transfer_path=">".join(draft.transfer_path),
        abandoned=draft.abandoned,
        hung_up_by=draft.hung_up_by,
        hangup_cause=draft.hangup_cause,
        hangup_cause_name=draft.hangup_cause_name,
        ivr_variables=json.dumps(dict(draft.ivr_variables), ensure_ascii=False),
        voicemail=draft.voicemail,
        monitored_by=",".join(draft.monitored_by),
        barged=draft.barged,
        recordingfile=draft.recordingfile,
        recording_muted_seconds=round(draft.recording_muted_seconds, 3),
        consulted=",".join(draft.consulted),
        hold_seconds=round(draft.hold_seconds, 3),
    )


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """A caller's request to be called back, for the outbound side (``requested`` in UTC)."""

    call_id: str
    number: str
    queue: str
    caller_num: str
    requested: datetime


class CdrStore(Protocol):
    """Where CDRs go (blocking calls, run in the writer's thread)."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def batch(self, writes: Callable[[], _T]) -> _T: ...

    def out_of_space(self) -> bool: ...

    def write_cdr(self, record: CdrRecord) -> bool: ...

    def has_cdr(self, uniqueid: str) -> bool: ...

    def mark_lost(self) -> int: ...

    def write_callback(self, request: CallbackRecord) -> bool: ...


_WRITTEN_FOR_MAX = 10_000


def cdr_key(call_id: str) -> str:
    """The writer key of a call's CDR."""
    return f"cdr:{call_id}"


class CdrRecorder:
    """Event-bus listener turning each call's events into one durable CDR.

    Subscribe :meth:`on_event`; ``await start()`` before calls arrive and ``await close()`` on
    shutdown (it writes what is pending). ``writer`` may be shared with other recorders
    (:class:`~callcenter.records.shifts.ShiftRecorder`); by default the recorder owns one.
    """

    def __init__(self, store: CdrStore, *, writer: RecordWriter | None = None) -> None:
        self.store = store
        self.writer = writer if writer is not None else RecordWriter(store)
        self._drafts: dict[str, CdrDraft] = {}
        self._agents_of: dict[str, tuple[str, ...]] = {}
        #: Agent -> how many records naming them (as the agent or in a transfer) were made
        #: durable by this process: what was read of an agent's calls is stale once it grows.
        self.written_for: dict[str, int] = {}
        self.writer.on_written = self._written

    @property
    def calls_in_progress(self) -> int:
        return len(self._drafts)

    def draft(self, call_id: str) -> CdrDraft | None:
        """The draft of a call still in progress."""
        return self._drafts.get(call_id)

    def on_event(self, event: EngineEvent) -> None:
        """Fold a call event; on CallEnded queue the finished record for writing.

        A :class:`~callcenter.events.CallbackRequested` is written at once (not with the CDR),
        so the outbound side sees it while the caller is still on the line.
        """
        if not isinstance(event, CallEvent):
            return
        if isinstance(event, CallbackRequested):
            request = CallbackRecord(
                call_id=event.call_id,
                number=event.number,
                queue=event.queue,
                caller_num=event.caller_num,
                requested=event.at,
            )
            self.writer.submit(
                f"callback:{event.call_id}:{event.number}",
                functools.partial(self.store.write_callback, request),
            )
        known = self._drafts.get(event.call_id)
        if known is None and type(event) is not CallStarted:
            # Not a call in progress: a call over already (its disposition, given in the
            # agent's wrap-up) or none at all (a callback asked for on a web form or set
            # for a time). A record started here would never be finished.
            return
        draft = fold(known, event)
        if not isinstance(event, CallEnded):
            self._drafts[event.call_id] = draft
            return
        self._drafts.pop(event.call_id, None)
        record = finish(draft)
        if draft.agent or draft.transfer_path:
            if len(self._agents_of) > _WRITTEN_FOR_MAX:
                self._agents_of.clear()  # records the store refused for good keep theirs
            self._agents_of[record.uniqueid] = (draft.agent or "", *draft.transfer_path)
        self.writer.submit(
            cdr_key(record.uniqueid), functools.partial(self.store.write_cdr, record)
        )
        log.debug("cdr_finished", call_id=record.uniqueid, disposition=record.disposition)

    def _written(self, key: str) -> None:
        if not key.startswith("cdr:"):
            return
        agents = self._agents_of.pop(key[4:], None)
        if agents:
            written = self.written_for
            if len(written) > _WRITTEN_FOR_MAX:
                written.clear()  # transfers to outside numbers would grow it without end
            for agent in set(agents):
                written[agent] = written.get(agent, 0) + 1

    def checkpoint(self, older_than: float) -> int:
        """Write each call in progress for ``older_than`` seconds or more as it stands now
        (:func:`so_far`: ``hung_up_by`` ``in_progress``; its own record replaces it when
        it ends), so that a daemon killed without stopping leaves a record of its calls
        (the next start marks them ``lost``). Returns how many were submitted."""
        now, mono = datetime.now(UTC), time.monotonic()
        count = 0
        for call_id, draft in self._drafts.items():
            if mono - draft.start_mono < older_than:
                continue
            record = so_far(draft, now, mono)
            self.writer.submit(
                f"cdr-checkpoint:{call_id}", functools.partial(self.store.write_cdr, record)
            )
            count += 1
        return count

    async def mark_lost(self) -> int:
        """At the start: the checkpoints a daemon that died left say ``lost`` (RecordError
        when the store refuses); returns how many."""
        return await self.writer.run(self.store.mark_lost)

    async def start(self) -> None:
        """Open the store and start writing (RecordError if the store cannot be opened)."""
        await self.writer.start()

    async def close(self, flush_timeout: float = 10.0) -> None:
        """Write every pending record, then close the store (RecordError if some could
        not be written within ``flush_timeout`` seconds)."""
        if self._drafts:
            log.info("cdr_calls_still_open_at_close", count=len(self._drafts))
        await self.writer.close(flush_timeout)

    def queued(self, call_id: str) -> bool:
        """Is the CDR of ``call_id`` on its way to the store (submitted, not yet durable)?"""
        return self.writer.is_pending(cdr_key(call_id))

    async def wait_written(self, call_id: str, timeout: float = 5.0) -> None:
        """Return once the CDR of ``call_id`` is durable; RecordError after ``timeout``."""
        key = cdr_key(call_id)
        # A call this process has not seen (written before a restart, or long ago): ask the store.
        unseen = not self.writer.knows(key) and call_id not in self._drafts
        if (
            unseen
            and self.writer.started
            and await self.writer.run(functools.partial(self.store.has_cdr, call_id))
        ):
            return
        await self.writer.wait_written(key, timeout)
