"""Asterisk's queue_log, folded from the engine's events: what QueueMetrics, Asternic and
other queue reporting tools read.

Each entry is one line of Asterisk's ``/var/log/asterisk/queue_log``::

    1733390000|1733389990.42|support|Agent/1001|CONNECT|10||4

``time`` (UNIX seconds) | ``callid`` (the caller's uniqueid, ``NONE`` for agent events) |
``queuename`` (``NONE`` when it is not about one queue) | ``agent`` (``Agent/<id>``, ``NONE``
when no agent) | ``event`` | its data, with app_queue's meaning:

* ``ENTERQUEUE`` url|callerid|position: the caller joined (a called-back caller rejoins
  with position 1 when they answer); url is ``campaign:<id>`` for a campaign's lead put
  through the queue, ``agent:<id>`` for the person an agent dialled out to (``*77``),
  ``resumed`` for a caller who took back the place they had abandoned a
  moment ago (empty otherwise), so that reports can keep leads and agents' own calls out
  of the queue's inbound figures and count the callers who came back;
* ``RINGNOANSWER`` ringtime (ms): an agent was rung and did not take the call;
  ``RINGCANCELED`` ringtime (ms): the ring stopped because the caller went;
* ``CONNECT`` holdtime|bridged uniqueid (empty: the daemon does not see it)|ringtime;
* ``COMPLETECALLER`` / ``COMPLETEAGENT`` holdtime|calltime|origposition: the talk ended,
  the caller or the agent hung up;
* ``BLINDTRANSFER`` extension (the target's id)|context (empty)|holdtime|calltime|
  origposition: the agent transferred the caller;
  ``ATTENDEDTRANSFER`` ``BRIDGE``|the target's id|holdtime|calltime|origposition: the
  agent handed the caller over after consulting the target;
* ``ABANDON`` position|origposition|waittime: the caller hung up waiting;
* ``EXITWITHTIMEOUT`` / ``EXITEMPTY`` position|origposition|waittime,
  ``EXITWITHKEY`` key|position|origposition|waittime: a queue rule took the caller out
  (a callback request counts as the exit that asked for it: the key, else the timeout);
* ``WITHDRAW`` position|origposition|waittime: a supervisor sent the caller elsewhere
  (``callcenter call withdraw``, app_queue's QueueWithdrawCaller);
* ``FULL`` and ``JOINEMPTY``: the caller was turned away on arrival;
* ``AGENTLOGIN`` channel (the agent's device) and ``AGENTLOGOFF`` channel|logintime;
* ``ADDMEMBER`` and ``REMOVEMEMBER`` (no data): ``agent join`` / ``agent leave`` put the
  agent into the queue or took them out while the centre runs;
  ``PAUSEALL`` reason and ``UNPAUSEALL`` (pauses cover every queue of the agent);
* ``QUEUESTART`` (a daemon started: calls a previous one had in progress end there for
  the tools) and ``CONFIGRELOAD``, with ``NONE`` for call, queue and agent.

:func:`fold` is pure: one call's state and a call event go in (a dispatch table on the
event type), the call's new state and the entries the event makes come out;
:func:`agent_entries` does the same for agent events. :class:`QueueLogRecorder` is the bus
listener that keeps the state of each call in progress and hands the entries to the record
writer (the ``queue_log`` table; ``callcenter report --queue-log`` prints it in the file's
format).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import operator
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

import structlog

from callcenter.errors import RecordError
from callcenter.events import (
    ATTENDED_TRANSFER,
    AgentConnected,
    AgentDialAnswered,
    AgentEvent,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentRingFailed,
    AgentUnpaused,
    CallCentreStarted,
    CallEnded,
    CallEvent,
    CallStarted,
    CallTransferred,
    CampaignAnswered,
    CampaignLeadWaiting,
    ConfigReloaded,
    EngineEvent,
    QueueAbandoned,
    QueueCallbackAnswered,
    QueueExited,
    QueueJoined,
    QueueMemberChanged,
    TalkEnded,
)
from callcenter.records.writer import RecordWriter

log = structlog.get_logger(__name__)

NONE: Final = "NONE"
CAMPAIGN_URL: Final = "campaign:"
AGENT_URL: Final = "agent:"
"""How ``ENTERQUEUE``'s url field begins for an agent's own outbound call (the agent's id
follows): the person joined no queue, the agent called them."""
RESUMED_URL: Final = "resumed"
"""ENTERQUEUE's url of a caller who took back the place they had abandoned a moment ago
(the queue's ``resume_abandoned``)."""
"""How ``ENTERQUEUE``'s url field begins for a campaign's lead (the campaign id follows)."""

_EXIT_EVENTS: Final = {
    "timeout": "EXITWITHTIMEOUT",
    "leaveempty": "EXITEMPTY",
    "exitkey": "EXITWITHKEY",
    "full": "FULL",
    "joinempty": "JOINEMPTY",
    "closed": "JOINEMPTY",
    "withdrawn": "WITHDRAW",
}


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    """One queue_log line. ``key`` makes writing it idempotent; ``data`` holds data1..data5."""

    key: str
    time: datetime
    callid: str
    queuename: str
    agent: str
    event: str
    data: tuple[str, ...] = ()

    def line(self) -> str:
        """The entry as Asterisk writes it into its queue_log file (no newline). Asterisk
        writes at least one data field, empty if need be: ``...|UNPAUSEALL|``."""
        epoch = int(self.time.timestamp())
        return "|".join(
            (str(epoch), self.callid, self.queuename, self.agent, self.event, *(self.data or ("",)))
        )


@dataclass(slots=True)
class _Caller:
    """What the queue_log needs to remember about one call. :func:`fold` changes a copy,
    never the one it is given."""

    caller: str = ""
    queue: str = ""
    joined: float | None = None
    """Monotonic time the caller joined ``queue``."""
    position: int = 0
    """The caller's position on joining (origposition)."""
    agent: str = ""
    """The agent talking to the caller, while a talk may still end with a COMPLETE line."""
    hold: int = 0
    talk: int = 0
    """Seconds of the talk that ended for a transfer (BLINDTRANSFER follows)."""
    written: int = 0
    """Entries made for the call so far (their keys)."""
    campaign: str = ""
    """The campaign whose lead this call is (they join queues as ``campaign:<id>``)."""
    dialled_by: str = ""
    """The agent whose own outbound call this is (``agent:<id>``)."""


def agent_name(agent_id: str) -> str:
    """How an agent appears in the queue_log (reporting tools know ``Agent/<id>``)."""
    return f"Agent/{agent_id}"


def _secs(value: float) -> str:
    return str(max(0, round(value)))


# Every field, in constructor order: a positional rebuild is much cheaper than
# dataclasses.replace, and fold copies the state once per event it handles.
_all_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(_Caller)))


class _Step:
    """The entries one call event makes, with (a copy of) the call's state after it."""

    def __init__(self, caller: _Caller | None, event: CallEvent) -> None:
        self.event = event
        self.caller = _Caller(*_all_fields(caller)) if caller is not None else _Caller()
        self.entries: list[QueueLogEntry] = []

    def call_entry(self, queue: str, agent: str, verb: str, *data: str) -> None:
        e = self.event
        c = self.caller
        key = f"{e.call_id}:{c.written}"
        c.written += 1
        self.entries.append(QueueLogEntry(key, e.at, e.call_id, queue or NONE, agent, verb, data))


def _on_started(step: _Step, e: CallStarted) -> None:
    step.caller.caller = e.caller_num


def _join(step: _Step, queue: str, position: int, *, resumed: bool = False) -> None:
    c = step.caller
    c.queue, c.joined, c.position, c.agent = queue, step.event.mono, position, ""
    if c.campaign:
        url = f"{CAMPAIGN_URL}{c.campaign}"
    elif c.dialled_by:
        url = f"{AGENT_URL}{c.dialled_by}"
    else:
        url = RESUMED_URL if resumed else ""
    step.call_entry(queue, NONE, "ENTERQUEUE", url, c.caller, str(position))


def _on_lead(step: _Step, e: CampaignAnswered | CampaignLeadWaiting) -> None:
    step.caller.campaign = e.campaign


def _on_agent_dial(step: _Step, e: AgentDialAnswered) -> None:
    step.caller.dialled_by = e.agent


def _on_joined(step: _Step, e: QueueJoined) -> None:
    _join(step, e.queue, e.position, resumed=e.resumed)


def _on_callback_answered(step: _Step, e: QueueCallbackAnswered) -> None:
    step.caller.caller = step.caller.caller or e.number
    _join(step, e.queue, 1)


def _waited(step: _Step, reported: float) -> str:
    joined = step.caller.joined
    return _secs(step.event.mono - joined if joined is not None else reported)


def _on_ring_failed(step: _Step, e: AgentRingFailed) -> None:
    verb = "RINGCANCELED" if e.status == "CANCEL" else "RINGNOANSWER"
    step.call_entry(e.queue, agent_name(e.agent), verb, str(max(0, round(e.ring_seconds * 1000))))


def _on_connected(step: _Step, e: AgentConnected) -> None:
    c = step.caller
    hold = max(0, round(e.wait_seconds))
    c.queue, c.agent, c.hold = e.queue, e.agent, hold
    step.call_entry(e.queue, agent_name(e.agent), "CONNECT", str(hold), "", _secs(e.ring_seconds))


def _on_talk_ended(step: _Step, e: TalkEnded) -> None:
    c = step.caller
    if not c.agent or e.agent != c.agent:
        return  # a talk after a transfer: the call left the queue with the transfer
    talk = max(0, round(e.talk_seconds))
    if e.hung_up_by in ("caller", "agent"):
        verb = "COMPLETECALLER" if e.hung_up_by == "caller" else "COMPLETEAGENT"
        agent, c.agent = c.agent, ""
        step.call_entry(c.queue, agent_name(agent), verb, str(c.hold), str(talk), str(c.position))
    else:
        c.talk = talk


def _on_transferred(step: _Step, e: CallTransferred) -> None:
    c = step.caller
    if not c.agent:
        return
    agent, c.agent = c.agent, ""
    where = (str(c.hold), str(c.talk), str(c.position))
    if e.kind == ATTENDED_TRANSFER:
        step.call_entry(c.queue, agent_name(agent), "ATTENDEDTRANSFER", "BRIDGE", e.to, *where)
    else:
        step.call_entry(c.queue, agent_name(agent), "BLINDTRANSFER", e.to, "", *where)


def _on_abandoned(step: _Step, e: QueueAbandoned) -> None:
    waited = _waited(step, e.wait_seconds)
    step.call_entry(e.queue, NONE, "ABANDON", str(e.position), str(step.caller.position), waited)


def _on_exited(step: _Step, e: QueueExited) -> None:
    reason = e.reason
    if reason == "callback":
        reason = "exitkey" if e.key else "timeout"
    verb = _EXIT_EVENTS.get(reason, "EXITWITHTIMEOUT")
    if verb in ("FULL", "JOINEMPTY"):
        step.call_entry(e.queue, NONE, verb)
        return
    where = (str(e.position), str(step.caller.position), _waited(step, e.wait_seconds))
    if verb == "EXITWITHKEY":
        step.call_entry(e.queue, NONE, verb, e.key, *where)
    else:
        step.call_entry(e.queue, NONE, verb, *where)


def _on_ended(step: _Step, e: CallEnded) -> None:
    """The call is over: its state goes (see :class:`QueueLogRecorder`)."""


_CallHandler = Callable[[_Step, Any], None]

CALL_HANDLERS: Mapping[type[EngineEvent], _CallHandler] = {
    CallStarted: _on_started,
    QueueJoined: _on_joined,
    QueueCallbackAnswered: _on_callback_answered,
    CampaignAnswered: _on_lead,
    CampaignLeadWaiting: _on_lead,
    AgentDialAnswered: _on_agent_dial,
    AgentRingFailed: _on_ring_failed,
    AgentConnected: _on_connected,
    TalkEnded: _on_talk_ended,
    CallTransferred: _on_transferred,
    QueueAbandoned: _on_abandoned,
    QueueExited: _on_exited,
    CallEnded: _on_ended,
}
"""Call event type -> the entries it makes and how it changes the call's state."""


def fold(caller: _Caller | None, event: CallEvent) -> tuple[_Caller, tuple[QueueLogEntry, ...]]:
    """One call's state after ``event`` (None: the call's first event) and the queue_log
    entries it makes. Pure: ``caller`` is left as it was. Call events the queue_log has no
    line for change nothing."""
    handler = CALL_HANDLERS.get(type(event))
    if handler is None:
        return (caller if caller is not None else _Caller()), ()
    step = _Step(caller, event)
    handler(step, event)
    return step.caller, tuple(step.entries)


AGENT_LINES: Mapping[type[EngineEvent], Callable[[Any, str], tuple[str, tuple[str, ...]]]] = {
    AgentLoggedIn: lambda e, device: ("AGENTLOGIN", (e.device,)),
    AgentLoggedOut: lambda e, device: ("AGENTLOGOFF", (device, _secs(e.shift_seconds))),
    AgentPaused: lambda e, device: ("PAUSEALL", (e.reason,)),
    AgentUnpaused: lambda e, device: ("UNPAUSEALL", ()),
}
"""Agent event type -> (verb, data) of its line, given the agent's device at login."""


def agent_entries(event: AgentEvent, device: str) -> tuple[QueueLogEntry, ...]:
    """The queue_log entries of an agent event (``device``: the agent's device at login,
    for AGENTLOGOFF); pure."""
    made = AGENT_LINES.get(type(event))
    if made is None:
        return ()
    verb, data = made(event, device)
    key = f"agent:{event.agent}:{verb}:{event.at.isoformat()}"
    return (QueueLogEntry(key, event.at, NONE, NONE, agent_name(event.agent), verb, data),)


def member_entries(event: QueueMemberChanged) -> tuple[QueueLogEntry, ...]:
    """``ADDMEMBER`` / ``REMOVEMEMBER`` for an agent put into or taken out of a queue while
    the centre runs (app_queue writes them for QueueAdd / QueueRemove), ``PAUSE`` (the
    reason) / ``UNPAUSE`` for one paused or unpaused in that queue only (QueuePause with a
    queue); pure."""
    data: tuple[str, ...] = ()
    if event.pause:
        verb = "PAUSE" if event.paused is not None else "UNPAUSE"
        data = (event.paused,) if event.paused is not None else ()
    else:
        verb = "ADDMEMBER" if event.member else "REMOVEMEMBER"
    key = f"member:{event.queue}:{event.agent}:{verb}:{event.at.isoformat()}"
    agent = agent_name(event.agent)
    return (QueueLogEntry(key, event.at, NONE, event.queue, agent, verb, data),)


class QueueLogStore(Protocol):
    def write_queue_log(self, entries: tuple[QueueLogEntry, ...]) -> bool: ...


_DAEMON_EVENTS: Final[Mapping[type[EngineEvent], str]] = {
    CallCentreStarted: "QUEUESTART",
    ConfigReloaded: "CONFIGRELOAD",
}

GATHER_SECONDS: Final = 0.05
"""How long entries gather before they go to the record writer together (one job)."""


class QueueLogRecorder:
    """Event-bus listener writing the queue_log through the record writer (in the
    ``queue_log`` table, in order; idempotent by each entry's key).

    Entries gather for ``gather`` seconds and go to the writer as one job: a call makes
    three or more, and a writer job costs the event loop more than the fold. Call
    :meth:`flush` before the writer closes.
    """

    def __init__(
        self, store: QueueLogStore, writer: RecordWriter, *, gather: float = GATHER_SECONDS
    ) -> None:
        self.store = store
        self.writer = writer
        self.gather = gather
        self._calls: dict[str, _Caller] = {}
        self._devices: dict[str, str] = {}
        self._gathered: list[QueueLogEntry] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def calls_in_progress(self) -> int:
        return len(self._calls)

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events with a line to write (``EventBus.subscribe``'s ``kinds``)."""
        return (*CALL_HANDLERS, *_DAEMON_EVENTS, *AGENT_LINES, QueueMemberChanged)

    def on_event(self, event: EngineEvent) -> None:
        # Every event of every call comes here, most with no line to make: one look-up
        # decides.
        kind = type(event)
        if kind in CALL_HANDLERS:
            assert isinstance(event, CallEvent)
            call_id = event.call_id
            caller, entries = fold(self._calls.get(call_id), event)
            if kind is CallEnded:
                self._calls.pop(call_id, None)
            else:
                self._calls[call_id] = caller
        elif kind in _DAEMON_EVENTS:
            verb = _DAEMON_EVENTS[kind]
            key = f"daemon:{verb}:{event.at.isoformat()}"
            entries = (QueueLogEntry(key, event.at, NONE, NONE, NONE, verb),)
        elif kind is QueueMemberChanged:
            assert isinstance(event, QueueMemberChanged)
            entries = member_entries(event)
        elif kind in AGENT_LINES:
            assert isinstance(event, AgentEvent)
            entries = agent_entries(event, self._devices.get(event.agent, ""))
            if isinstance(event, AgentLoggedIn):
                self._devices[event.agent] = event.device
            elif isinstance(event, AgentLoggedOut):
                self._devices.pop(event.agent, None)
        else:
            return
        if not entries:
            return
        self._gathered += entries
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a report or a test folding by hand): at once
                self.flush()
                return
            self._timer = loop.call_later(self.gather, self.flush)

    def flush(self) -> None:
        """Hand what has gathered to the writer now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._gathered:
            entries, self._gathered = tuple(self._gathered), []
            self.writer.submit(
                f"queue_log:{entries[0].key}",
                functools.partial(self.store.write_queue_log, entries),
            )


class QueueLogSource(Protocol):
    def fetch_queue_log(
        self, *, last: int | None = None, after: int = 0
    ) -> list[tuple[int, QueueLogEntry]]: ...

    def close(self) -> None: ...


@contextlib.contextmanager
def locked_append(path: Path) -> Iterator[TextIO]:
    """``path`` open for appending, under the lock an erasure
    (:func:`callcenter.records.erasure.erase_queue_log_file`) takes to rewrite it."""
    with path.open("a", encoding="utf-8") as out:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX)
        try:
            yield out
        finally:
            fcntl.flock(out.fileno(), fcntl.LOCK_UN)


FILE_INTERVAL: Final = 0.2
"""Seconds between two looks at the queue_log table for lines the file lacks."""


class QueueLogFile:
    """Keeps a file in Asterisk's queue_log format in step with the ``queue_log`` table
    (``records.queue_log_file``), for reporting tools that read
    ``/var/log/asterisk/queue_log``: every entry once, in the table's order, appended within
    :data:`FILE_INTERVAL` of its commit. The last row id appended is kept in ``<file>.pos``,
    so a restart goes on where the previous daemon stopped; a file rotated away (logrotate)
    is simply started again. Reads run in the record writer's thread."""

    def __init__(self, path: Path, store: QueueLogSource, writer: RecordWriter) -> None:
        self.path = path
        self.store = store
        self.writer = writer
        self._pos_path = path.with_name(path.name + ".pos")
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-log-file")

    async def stop(self) -> None:
        """Stop following; after the writer closed, append what it wrote last."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await asyncio.to_thread(self._catch_up_and_close)
        except (OSError, RecordError) as exc:
            log.warning("queue_log_file_behind", file=str(self.path), error=str(exc))

    def _catch_up_and_close(self) -> None:
        try:
            self.catch_up()
        finally:
            self.store.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FILE_INTERVAL)
            try:
                await self.writer.run(self.catch_up)
            except (OSError, RecordError) as exc:
                if not self._failing:
                    log.error("queue_log_file_failed", file=str(self.path), error=str(exc))
                self._failing = True
            else:
                if self._failing:
                    log.info("queue_log_file_written_again", file=str(self.path))
                self._failing = False

    def catch_up(self) -> int:
        """Append the entries the file lacks; returns how many (blocking)."""
        try:
            after = int(self._pos_path.read_text().strip() or 0)
        except FileNotFoundError:
            after = 0
        except ValueError:
            raise OSError(f"{self._pos_path} does not hold a row id") from None
        if not self.store.fetch_queue_log(after=after):
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked_append(self.path) as out:
            # Read again under the lock: an erasure that changed these rows meanwhile
            # rewrites the file only once this append is done.
            rows = self.store.fetch_queue_log(after=after)
            if not rows:
                return 0
            out.write("".join(f"{entry.line()}\n" for _, entry in rows))
            out.flush()
            os.fsync(out.fileno())
        spare = self._pos_path.with_name(self._pos_path.name + ".tmp")
        spare.write_text(f"{rows[-1][0]}\n")
        spare.replace(self._pos_path)
        return len(rows)
