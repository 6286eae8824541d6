"""Callbacks: people the centre calls back instead of keeping them on the line.

* A **kept place**: a caller who pressed the callback key (or was withdrawn to a callback,
  or a queue refused them with ``to: callback``), a web request for now
  (``POST /callbacks``), a callback coming due: the request waits in the queue as the caller
  would have, and a worker calls the number back once an agent is reserved for it (retried
  ``callback_attempts`` times, given up after ``callback_max_age``; a drain or a PBX outage
  holds it without using up an attempt).
* **Later** (``scheduled``): a web request for a time, a closed queue's caller called back at
  its opening, an abandoned caller (``abandoned_callback``); at the time the request joins
  the queue as a kept place. With ``callback_slots`` it takes the first slot with room.
* **Promised** (``promises``): a callback disposition an agent gave a call for a time; then
  it joins the queue, offered first to that agent.

Campaigns' dials and agents' own outbound calls keep places too (``kept``, with ``lead``
or ``dial_id``): the switchboard places the call (:meth:`Switchboard.place_callback
<callcenter.switchboard.Switchboard.place_callback>`) and takes whoever answers back into
the place. Requests waiting when the daemon stops are recorded; :meth:`Callbacks.restore`
takes them back.

The switchboard owns one :class:`Callbacks` (``Switchboard.callbacks``).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import structlog

from callcenter.acd.queue import QueueEntry
from callcenter.acd.router import RingOutcome
from callcenter.config.models import CallCenterConfig, QueueConfig
from callcenter.errors import (
    CallbackSlotFull,
    DestinationNotAllowed,
    EngineError,
    UnknownCallback,
    UnknownQueue,
)
from callcenter.events import QueueCallbackAttempt, QueueCallbackFailed, QueueCallbackRequested
from callcenter.ivr.values import matches_any
from callcenter.records.callbacks import CALLED_AGAIN, CANCELLED, EXPIRED, QueueCallback

if TYPE_CHECKING:
    from callcenter.outbound.campaign import LeadCall
    from callcenter.switchboard import ActiveCall, Switchboard

log = structlog.get_logger(__name__)

PBX_DOWN = "pbx-down"
"""Why a callback could not be placed when the PBX link was down (the attempt is not used)."""
PBX_DOWN_PAUSE = 5.0
"""Seconds a callback waits after finding the link down, before it waits for the link."""
DIALABLE_NUMBER: Final = re.compile(r"\+?[0-9]{3,20}")
"""A number the centre may call back (or remember a caller by)."""

CALLBACK_VARIABLE = "CALLCENTER_CALLBACK"
"""Channel variable an originated callback carries; the dialplan hands it back to us as
``inbound?callback=${CALLCENTER_CALLBACK}``."""


WEB_CALLBACK_PREFIX: Final = "web-"
"""Call id prefix of a callback asked for through the API (``POST /callbacks``): no call came
in."""


ABANDONED_CALLBACK_SUFFIX = "+abandoned"
"""Call id of the callback request for a caller who hung up waiting: theirs, then this."""


TIMED_CALLBACK_SUFFIX: Final = "+callback"
"""Call id of the callback an agent promised for a time: the call's, then this."""


MAX_SCHEDULE_AHEAD = timedelta(days=366)
"""How far ahead a callback may be asked for."""


_TOKEN_NONCE = 16
"""Hex digits of randomness at the start of a callback token; the origin call id follows."""


def callback_token(origin: str) -> str:
    """The token an originated callback carries back (``CALLCENTER_CALLBACK``): random, then
    the call id of the request in hex, so that a daemon that did not place the call (a
    restart meanwhile) or no longer waits for it (answered late) still knows whose it is.
    Hex only: the shipped FreeSWITCH dialplan matches ``^[0-9a-f]+$``."""
    return secrets.token_hex(_TOKEN_NONCE // 2) + origin.encode().hex()


def callback_origin(token: str) -> str | None:
    """The request's call id in a callback token; None when there is none."""
    try:
        return bytes.fromhex(token[_TOKEN_NONCE:]).decode() or None
    except (ValueError, UnicodeDecodeError):
        return None


def timed_callback_origin(call_id: str) -> str:
    """The origin of the callback an agent set for a time on call ``call_id``."""
    return f"{call_id}{TIMED_CALLBACK_SUFFIX}"


def abandoned_callback_origin(call_id: str) -> str:
    """The callback request id for the abandoned call ``call_id`` (``abandoned_callback``)."""
    return call_id + ABANDONED_CALLBACK_SUFFIX


def queue_zone(qcfg: QueueConfig, config: CallCenterConfig) -> str:
    """The time zone of a queue's day: its opening hours', else the centre's."""
    hours = qcfg.opening
    return (hours.timezone if hours is not None else None) or config.ivr.timezone


@dataclass(slots=True)
class KeptPlace:
    """A caller keeping their place for a callback, and the task that will call them."""

    entry: QueueEntry
    number: str
    joined: float
    config: CallCenterConfig
    worker: asyncio.Task[Any] | None
    lead: LeadCall | None = None
    """Set when the place is a campaign's dial, not a caller's."""
    data: tuple[tuple[str, str], ...] = ()
    """Variables the callback call gets (the asking call's IVR variables, a web form's)."""
    dial_id: str = ""
    """Set when the place is an agent's own outbound call (``entry.dialled_by``)."""


@dataclass(slots=True)
class ScheduledCallback:
    """A callback asked for a later time, waiting for it (not in the queue yet)."""

    queue: str
    number: str
    priority: int
    due: datetime
    task: asyncio.Task[None]
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Promised:
    """A callback an agent promised (a callback code's time), waiting for that time."""

    task: asyncio.Task[None]
    agent: str
    number: str
    queue: str
    at: datetime


@dataclass(slots=True)
class PendingCallback:
    """A callback being placed: the place it is for, and whether its call was answered."""

    place: KeptPlace | None
    """None: a predictive campaign's dial (no agent reserved, no place kept)."""
    answered: asyncio.Future[str]
    """Set once the call reached us: ``""``, or ``machine`` (an answering machine)."""
    lead: LeadCall | None = None
    """Predictive: the lead dialled."""
    settled: asyncio.Future[str] | None = None
    """Predictive, once answered: ``""`` when an agent took them, else ``abandoned``."""


class Callbacks:
    """The callback requests of the centre: kept places, later ones and promised ones."""

    def __init__(self, board: Switchboard) -> None:
        self._board = board
        self.kept: dict[str, KeptPlace] = {}
        """Callback requests (and campaign dials, agents' own dials) waiting for their call,
        by the call id that made them (a campaign dial's ``campaign:<id>:<lead>``)."""
        self.scheduled: dict[str, ScheduledCallback] = {}
        """Callbacks asked for a later time, by request id (:meth:`request` ``at``)."""
        self.promises: dict[str, Promised] = {}
        """Origin (``<call id>+callback``) -> the timer of a callback an agent promised."""

    def allowed(self, config: CallCenterConfig, number: str) -> bool:
        """May ``number`` be called back (callbacks set up, number on the allow-list)?"""
        acd = config.acd
        return (
            self._board.pbx is not None
            and acd.callback_dial is not None
            and DIALABLE_NUMBER.fullmatch(number) is not None
            and matches_any(acd.callback_allow, number)
        )

    def request(
        self,
        number: str,
        queue: str,
        *,
        priority: int = 0,
        at: datetime | None = None,
        data: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Call ``number`` back through ``queue`` (a callback asked for on a web page or in
        an app): it takes its place in the queue now (or at ``at``, a later time), as a
        caller who pressed the callback key, and is called once an agent is reserved for
        it; kept across restarts like theirs. Asking again while it waits gives the waiting
        request back (``new`` False). Raises UnknownQueue, DestinationNotAllowed
        (callbacks not set up, or a number acd.callback_allow does not list) or
        EngineError (draining, queue full, a time more than a year ahead). ``data``: the
        variables its call gets (a name, a topic: the agent's screen shows them)."""
        config = self._board.config
        qcfg = config.queues.get(queue)
        if qcfg is None:
            raise UnknownQueue(f"no queue {queue!r} is configured")
        if not self.allowed(config, number):
            raise DestinationNotAllowed(
                f"{number!r} cannot be called back (acd.callback_dial, acd.callback_allow)"
            )
        for view in self.waiting():
            if view["queue"] == queue and view["number"] == number:
                return {**view, "new": False}
        if self._board.draining:
            raise EngineError("the call centre is draining: no new callbacks now")
        origin = f"{WEB_CALLBACK_PREFIX}{secrets.token_hex(8)}"
        given = tuple((data or {}).items())
        now = datetime.now(UTC)
        chosen = at  # the time the caller picked (the opening may move it)
        if qcfg.opening is not None:
            # Closed then: the call back waits for the opening (agents went home).
            asked = at if at is not None and at > now else self._board.clock_utc()
            opens = self._board.opens_at(qcfg, config, asked)
            if opens is None:
                raise EngineError(f"queue {queue} does not open within two weeks")
            if opens > asked:
                at = opens
        if at is not None and at > now:
            if at - now > MAX_SCHEDULE_AHEAD:
                raise EngineError(f"{at.isoformat()} is more than a year ahead")
            slots = qcfg.callback_slots
            if slots is not None and at == chosen:
                free = self._slot_with_room(queue, qcfg, config, at)
                if free is None or self._slot_of(free, qcfg) != self._slot_of(at, qcfg):
                    zone = ZoneInfo(queue_zone(qcfg, config))
                    raise CallbackSlotFull(
                        f"queue {queue} takes no more callbacks at "
                        f"{at.astimezone(zone):%Y-%m-%d %H:%M} ({slots.at_most} a "
                        f"{slots.minutes}-minute slot)"
                        + (f": the next room is at {free.astimezone(zone):%H:%M}" if free else ""),
                        free,
                    )
            self.later(origin, queue, number, priority, at, data=given)
        else:
            if qcfg.max_length and self._board.router.waiting(queue) >= qcfg.max_length:
                raise EngineError(f"queue {queue} is full ({qcfg.max_length} waiting)")
            entry = self._board.router.enqueue(queue, origin, priority=priority)
            self.keep(entry, number, time.monotonic(), config, given)
        view = next(v for v in self.waiting() if v["call_id"] == origin)
        return {**view, "new": True}

    def keep(
        self,
        entry: QueueEntry,
        number: str,
        joined: float,
        config: CallCenterConfig,
        data: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """``entry`` (its caller gone) keeps its place and a background task calls
        ``number`` back when an agent is reserved for it; its call gets ``data`` as
        variables."""
        entry.callback = number
        position = self._board.router.position(entry)
        self._board.bus.publish(
            QueueCallbackRequested(
                call_id=entry.call_id,
                queue=entry.queue,
                number=number,
                position=position,
                priority=entry.priority,
                skills=tuple(sorted(entry.skills)),
                data=dict(data),
            )
        )
        log.info("callback_requested", call_id=entry.call_id, queue=entry.queue, position=position)
        worker = self._worker(entry, number, joined, config, requested=time.monotonic(), data=data)
        task = self._board.in_background(worker, f"callback-{entry.call_id}")
        # Known at once (the worker registers itself once it runs): a request made right
        # after, or a cancel, finds it.
        self.kept.setdefault(
            entry.call_id, KeptPlace(entry, number, joined, config, task, data=data)
        )

    def later(
        self,
        origin: str,
        queue: str,
        number: str,
        priority: int,
        due: datetime,
        *,
        data: tuple[tuple[str, str], ...],
    ) -> None:
        """Ask for a callback of ``number`` through ``queue`` at ``due`` (recorded now, so
        a restart schedules it again) and schedule it; with ``callback_slots``, in the first
        slot from ``due`` that has room."""
        qcfg = self._board.config.queues.get(queue)
        if qcfg is not None and qcfg.callback_slots is not None:
            due = self._slot_with_room(queue, qcfg, self._board.config, due) or due
        self._board.bus.publish(
            QueueCallbackRequested(
                call_id=origin,
                queue=queue,
                number=number,
                position=0,
                priority=priority,
                due=due,
                data=dict(data),
            )
        )
        self._schedule(origin, queue, number, priority, due, data=data)

    def _schedule(
        self,
        origin: str,
        queue: str,
        number: str,
        priority: int,
        due: datetime,
        *,
        data: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """At ``due``, request ``origin`` joins ``queue`` as a callback request."""

        async def when_due() -> None:
            wait_until = due
            while True:
                await asyncio.sleep(max(0.0, (wait_until - datetime.now(UTC)).total_seconds()))
                config = self._board.config
                qcfg = config.queues.get(queue)
                if qcfg is None:
                    self.scheduled.pop(origin, None)
                    log.warning("scheduled_callback_no_queue", call_id=origin, queue=queue)
                    return
                now = self._board.clock_utc()
                opens = self._board.opens_at(qcfg, config, now)
                if opens is None or opens <= now:
                    break
                # Due while the queue is closed: at its opening instead.
                wait_until = datetime.now(UTC) + (opens - now)
                scheduled = self.scheduled.get(origin)
                if scheduled is not None:
                    scheduled.due = wait_until
                log.info("scheduled_callback_waits_for_opening", call_id=origin, at=str(opens))
            self.scheduled.pop(origin, None)
            entry = self._board.router.enqueue(queue, origin, priority=priority)
            self.keep(entry, number, time.monotonic(), config, data)

        task = self._board.in_background(when_due(), f"callback-due-{origin}")
        self.scheduled[origin] = ScheduledCallback(queue, number, priority, due, task, data)
        log.info("callback_scheduled", call_id=origin, queue=queue, due=due.isoformat())

    async def _worker(
        self,
        entry: QueueEntry,
        number: str,
        joined: float,
        config: CallCenterConfig,
        *,
        requested: float,
        attempts_made: int = 0,
        data: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Wait for the caller's turn, then call them back; retry on no answer. A request
        whose turn has not come ``callback_max_age`` after it was made (``requested``, on
        the monotonic clock) is given up. Its call gets ``data`` as variables."""
        qcfg = config.queues[entry.queue]
        origin = entry.call_id
        clog = log.bind(call_id=origin, queue=entry.queue)
        expires = requested + qcfg.callback_max_age
        kept = KeptPlace(entry, number, joined, config, asyncio.current_task(), data=data)
        self.kept[origin] = kept
        try:
            if qcfg.last_agent:
                # The person called back is the caller: the sticky agent holds for them too.
                last = await self._board.last_agent(entry.queue, number, qcfg.last_agent)
                if last is not None and self._board.router.prefer(entry, last):
                    clog.info("last_agent_offered", agent=last)
            attempt = attempts_made + 1
            while attempt <= qcfg.callback_attempts:
                try:
                    if self._board.draining:
                        clog.info("callback_waits_for_drain", attempt=attempt)
                        await asyncio.wait_for(
                            self._board.wait_taking(), max(0.0, expires - time.monotonic())
                        )
                    agents = await asyncio.wait_for(
                        self._board.router.next_agents(entry), max(0.0, expires - time.monotonic())
                    )
                    if agents and self._board.draining:
                        # A drain began while it hunted: no new call now, the place is kept.
                        for agent in list(entry.agents):
                            self._board.router.ring_failed(entry, agent, RingOutcome.CANCELLED)
                        continue
                    reason = "no-agents"
                    dial = config.acd.callback_dial
                    if agents and self._board.pbx is not None and dial is not None:
                        self._board.bus.publish(
                            QueueCallbackAttempt(
                                origin_call_id=origin,
                                queue=entry.queue,
                                number=number,
                                agent=agents[0].id,
                                attempt=attempt,
                            )
                        )
                        reason = await self._board.place_callback(
                            kept,
                            device=dial.replace("${number}", number),
                            caller_id=qcfg.caller_id or config.acd.callback_caller_id,
                            ring_timeout=qcfg.callback_ring_timeout,
                        )
                    elif agents:
                        reason = "no-pbx"
                    if agents:
                        if not reason:
                            return
                        for agent in list(entry.agents):
                            self._board.router.ring_failed(entry, agent, RingOutcome.CANCELLED)
                    if reason == PBX_DOWN:
                        # Not the caller's doing: the same attempt once the link is back
                        # (an outage must not use up the attempts promised to them).
                        clog.info("callback_waits_for_pbx", attempt=attempt)
                        await asyncio.sleep(min(qcfg.callback_retry_delay, PBX_DOWN_PAUSE))
                        await asyncio.wait_for(
                            self._board.wait_pbx_up(), max(0.0, expires - time.monotonic())
                        )
                        continue
                except TimeoutError:
                    self._failed(origin, entry.queue, number, attempt - 1, EXPIRED)
                    clog.info("callback_expired", waited=round(time.monotonic() - requested, 1))
                    break
                final = attempt == qcfg.callback_attempts
                self._failed(origin, entry.queue, number, attempt, reason, final=final)
                clog.info("callback_failed", attempt=attempt, reason=reason, final=final)
                if not final:
                    await asyncio.sleep(qcfg.callback_retry_delay)
                attempt += 1
            self._board.router.leave(entry)
        except asyncio.CancelledError:
            if entry.call_id == origin:
                self._board.router.leave(entry)
            raise
        except EngineError as exc:
            clog.info("callback_abandoned", error=str(exc))
        finally:
            if self.kept.get(origin) is kept:
                del self.kept[origin]

    def restore(self, requests: Sequence[QueueCallback], now: datetime | None = None) -> int:
        """Take back the callback requests a previous daemon left waiting (oldest first):
        each gets its place again (by its request time, priority and skills) and is called
        back on its turn, with the attempts already made counted. A request older than its
        queue's ``callback_max_age``, or for a queue no longer configured, is given up
        (QueueCallbackFailed, final). Returns how many were taken back."""
        config = self._board.config
        now = now or datetime.now(UTC)
        restored = 0
        for request in sorted(requests, key=lambda r: r.requested):
            if request.requested > now and request.queue in config.queues:
                # Asked for a later time (POST /callbacks with "at"): due then.
                self._schedule(
                    request.call_id,
                    request.queue,
                    request.number,
                    request.priority,
                    request.requested,
                    data=request.data,
                )
                restored += 1
                continue
            age = max(0.0, (now - request.requested).total_seconds())
            qcfg = config.queues.get(request.queue)
            if qcfg is None or age > qcfg.callback_max_age:
                reason = "no-queue" if qcfg is None else EXPIRED
                self._failed(
                    request.call_id, request.queue, request.number, request.attempts, reason
                )
                log.info("callback_not_restored", call_id=request.call_id, reason=reason)
                continue
            joined = time.monotonic() - age
            entry = self._board.router.enqueue(
                request.queue,
                request.call_id,
                priority=request.priority,
                skills=request.skills,
                joined=joined,
            )
            entry.callback = request.number
            # An attempt the stop interrupted did not fail: at least one more is made.
            made = min(request.attempts, qcfg.callback_attempts - 1)
            worker = self._worker(
                entry,
                request.number,
                joined,
                config,
                requested=joined,
                attempts_made=made,
                data=request.data,
            )
            self._board.in_background(worker, f"callback-{entry.call_id}")
            restored += 1
            log.info(
                "callback_restored",
                call_id=request.call_id,
                queue=request.queue,
                position=self._board.router.position(entry),
                waited=round(age, 1),
            )
        return restored

    def waiting(self) -> list[dict[str, Any]]:
        """The callback requests waiting for their turn (or being placed: ``dialling``),
        by queue and position, then those asked for a later time (``due``): what ``GET
        /callbacks`` lists."""
        out: list[dict[str, Any]] = []
        for origin, kept in self.kept.items():
            entry = kept.entry
            if kept.lead is not None or entry.callback is None:
                continue
            out.append(
                {
                    "call_id": origin,
                    "queue": entry.queue,
                    "number": kept.number,
                    "position": self._board.router.position(entry),
                    "priority": entry.priority,
                    "dialling": self.dialling(kept),
                    "due": None,
                    "data": dict(kept.data),
                }
            )
        out.sort(key=lambda c: (c["queue"], c["position"]))
        later = [
            {
                "call_id": origin,
                "queue": scheduled.queue,
                "number": scheduled.number,
                "position": None,
                "priority": scheduled.priority,
                "dialling": False,
                "due": scheduled.due.isoformat(),
                "data": dict(scheduled.data),
            }
            for origin, scheduled in sorted(self.scheduled.items(), key=lambda i: i[1].due)
        ]
        return out + later

    def scheduled_by_queue(self) -> dict[str, int]:
        """How many callbacks asked for a later time wait for it, by queue."""
        counts: dict[str, int] = {}
        for scheduled in self.scheduled.values():
            counts[scheduled.queue] = counts.get(scheduled.queue, 0) + 1
        return counts

    def _failed(
        self, origin: str, queue: str, number: str, attempt: int, reason: str, *, final: bool = True
    ) -> None:
        """Publish that the call back of request ``origin`` failed (``final``: given up)."""
        self._board.bus.publish(
            QueueCallbackFailed(
                origin_call_id=origin,
                queue=queue,
                number=number,
                attempt=attempt,
                reason=reason,
                final=final,
            )
        )

    def dialling(self, kept: KeptPlace) -> bool:
        """Is the call for this kept place being placed (agents reserved for it)?"""
        return bool(kept.entry.agents) or self._board.placing(kept)

    def cancel(self, call_id: str, *, reason: str = CANCELLED) -> dict[str, Any]:
        """Withdraw the callback request ``call_id`` (the person no longer wants the call):
        it leaves the queue and its record says ``cancelled``. Raises UnknownCallback when
        no request waits under that id, EngineError while its call is being placed."""
        scheduled = self.scheduled.get(call_id)
        kept = self.kept.get(call_id)
        if scheduled is not None:
            queue, number = scheduled.queue, scheduled.number
        elif kept is not None and kept.lead is None and kept.entry.callback is not None:
            if self.dialling(kept) or kept.worker is None:
                raise EngineError(f"callback {call_id} is being placed now: too late to cancel")
            queue, number = kept.entry.queue, kept.number
        else:
            raise UnknownCallback(f"no callback request {call_id!r} is waiting")
        self._failed(call_id, queue, number, 0, reason)
        log.info("callback_cancelled", call_id=call_id, queue=queue, reason=reason)
        if scheduled is not None:
            del self.scheduled[call_id]
            scheduled.task.cancel()
        elif kept is not None and kept.worker is not None:
            kept.worker.cancel()
            self._board.router.leave(kept.entry)
            del self.kept[call_id]
        return {"call_id": call_id, "queue": queue, "number": number, "cancelled": True}

    def after_abandon(
        self, qcfg: QueueConfig, active: ActiveCall, entry: QueueEntry, number: str, waited: float
    ) -> None:
        """The caller hung up waiting: with ``abandoned_callback``, a callback request for
        them is due a little later (unless they call again meanwhile)."""
        wanted = qcfg.abandoned_callback
        if (
            wanted is None
            or waited < wanted.min_wait
            or active.variables.get("campaign")
            or not self.allowed(self._board.config, number)
        ):
            return
        for view in self.waiting():
            if view["number"] == number and view["queue"] == entry.queue:
                return  # a callback for them is on its way already
        origin = abandoned_callback_origin(entry.call_id)
        due = datetime.now(UTC) + timedelta(seconds=wanted.after)
        data = tuple(active.variables.items())
        self.later(origin, entry.queue, number, entry.priority, due, data=data)
        log.info("abandoned_caller_to_call_back", call_id=entry.call_id, due=due.isoformat())

    def called_again(self, queue: str, number: str) -> None:
        """``number`` joined ``queue`` again: a call back due for their abandon is off."""
        for origin, scheduled in list(self.scheduled.items()):
            if (
                origin.endswith(ABANDONED_CALLBACK_SUFFIX)
                and scheduled.queue == queue
                and scheduled.number == number
            ):
                self.cancel(origin, reason=CALLED_AGAIN)

    def promise(
        self, call_id: str, queue: str, number: str, at: datetime, *, agent: str = ""
    ) -> None:
        """Call ``number`` back through ``queue`` at ``at``: then it joins the queue as a
        callback request (origin ``<call_id>+callback``, in ``queue_callbacks`` from then
        on), offered first to ``agent`` (who promised the call) when they are free then. A
        callback disposition on an inbound call; what a restarted daemon takes back from
        the ``dispositions`` of such calls. Setting it again moves it."""
        origin = timed_callback_origin(call_id)
        self.call_off_promise(call_id)
        delay = max(0.0, (at - datetime.now(UTC)).total_seconds())

        async def when_due() -> None:
            await asyncio.sleep(delay)
            self.promises.pop(origin, None)
            config = self._board.config
            if queue not in config.queues:
                log.warning("timed_callback_no_queue", call_id=origin, queue=queue)
                return
            entry = self._board.router.enqueue(queue, origin)
            if (
                agent
                and agent in self._board.router.agents
                and self._board.router.prefer(entry, agent)
            ):
                log.info("timed_callback_for_its_agent", call_id=origin, agent=agent)
            self.keep(entry, number, time.monotonic(), config)

        task = self._board.in_background(when_due(), f"call-back-{origin}")
        self.promises[origin] = Promised(task, agent, number, queue, at)
        log.info("timed_callback_set", call_id=origin, queue=queue, at=at.isoformat())

    def call_off_promise(self, call_id: str) -> bool:
        """Call off a :meth:`promise` not yet due; False when none is waiting."""
        promised = self.promises.pop(timed_callback_origin(call_id), None)
        if promised is None:
            return False
        promised.task.cancel()
        return True

    def promised_by(self, agent: str) -> list[dict[str, Any]]:
        """The timed callbacks ``agent`` promised that are not yet due, soonest first:
        ``number``, ``queue``, ``at`` (aware datetime)."""
        found = sorted((p for p in self.promises.values() if p.agent == agent), key=lambda p: p.at)
        return [{"number": p.number, "queue": p.queue, "at": p.at} for p in found]

    def slots(self, queue: str, day: date) -> dict[str, Any]:
        """The slots of ``queue`` on ``day`` (its time zone) while it is open, with the
        callbacks asked for each and the room left (``GET /callbacks/slots``). Raises
        UnknownQueue, or EngineError for a queue without ``callback_slots``."""
        config = self._board.config
        qcfg = config.queues.get(queue)
        if qcfg is None:
            raise UnknownQueue(f"no queue {queue!r} is configured")
        slots = qcfg.callback_slots
        if slots is None:
            raise EngineError(f"queue {queue} takes callbacks at any time (no callback_slots)")
        zone = ZoneInfo(queue_zone(qcfg, config))
        moment = datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
        step = timedelta(minutes=slots.minutes)
        out = []
        while moment.astimezone(zone).date() == day:
            if self._board.opens_at(qcfg, config, moment) == moment:
                taken = self._slot_taken(queue, moment, slots.minutes)
                out.append(
                    {
                        "start": moment.astimezone(zone).isoformat(timespec="minutes"),
                        "taken": taken,
                        "free": max(0, slots.at_most - taken),
                    }
                )
            moment += step
        return {"queue": queue, "minutes": slots.minutes, "at_most": slots.at_most, "slots": out}

    def _slot_of(self, at: datetime, qcfg: QueueConfig) -> datetime:
        """The start (UTC) of the ``callback_slots`` slot ``at`` falls in, counted from
        midnight in the queue's time zone."""
        assert qcfg.callback_slots is not None
        local = at.astimezone(ZoneInfo(queue_zone(qcfg, self._board.config)))
        into = (local.hour * 60 + local.minute) % qcfg.callback_slots.minutes
        start = local - timedelta(
            minutes=into, seconds=local.second, microseconds=local.microsecond
        )
        return start.astimezone(UTC)

    def _slot_taken(self, queue: str, start: datetime, minutes: int) -> int:
        """Callbacks of ``queue`` due in the slot at ``start``: those asked for a later time
        and those agents promised (their time is kept, but they take the agents too)."""
        end = start + timedelta(minutes=minutes)
        asked = sum(1 for s in self.scheduled.values() if s.queue == queue and start <= s.due < end)
        promised = sum(
            1 for p in self.promises.values() if p.queue == queue and start <= p.at < end
        )
        return asked + promised

    def _slot_with_room(
        self, queue: str, qcfg: QueueConfig, config: CallCenterConfig, at: datetime
    ) -> datetime | None:
        """The first time from ``at`` the queue is open in a slot with room (``at`` itself
        when its slot has some); None when none within two weeks."""
        slots = qcfg.callback_slots
        if slots is None:
            return at
        step = timedelta(minutes=slots.minutes)
        moment = at
        for _ in range(int(timedelta(days=14) / step)):
            opens = self._board.opens_at(qcfg, config, moment)
            if opens is None:
                return None
            start = self._slot_of(opens, qcfg)
            if self._slot_taken(queue, start, slots.minutes) < slots.at_most:
                return opens
            moment = start + step
        return None
