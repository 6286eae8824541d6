"""Draining: the daemon stops taking calls, and stops once the calls in progress are over.

    callcenter drain [--timeout S]  (or SIGQUIT)           callcenter drain --cancel
        │                                                      │
        ├─> Switchboard.begin_drain: new callers go to the     ├─> Switchboard.end_drain
        │   PBX's failover, queue callbacks wait               └─> campaigns paused for the
        ├─> every campaign paused (why: "draining")                drain dial again
        └─> watch: no call in progress, no dial waiting for its answer, no agent
                   owing a disposition (or the timeout) ──> the daemon stops, as on SIGTERM

What an upgrade or a move to another host needs without cutting anyone off, as Asterisk's
``core stop when convenient``: a caller in the IVR or a queue is still put through, an agent
finishes their call (transfers, consultations and supervisors included), and the records
of every call are whole. Agents' and supervisors' feature codes are still served (an agent
can log out), and so are the answers to callbacks and campaign dials placed before.
What arrives meanwhile goes where it would go with no daemon at all: the PBX's failover
(``Call.fail_over``), with a record saying ``hung_up_by: draining``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from callcenter import systemd
from callcenter.events import DrainEnded, DrainStarted, EventBus
from callcenter.outbound.campaign import Campaigns, CampaignState
from callcenter.switchboard import Switchboard
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

WHY: Final = "draining"
"""The reason a drain gives the campaigns it pauses (``campaign list`` shows it)."""
LOOK_EVERY: Final = 0.2
"""Seconds between two looks at what is left (a drain lasts minutes; nothing waits on it)."""


class Drain:
    """One daemon's drain: at most one at a time, started, cancelled, and closed at a stop.

    ``stop`` is called once the drain is over (every call ended, or the timeout): the
    daemon's request to stop."""

    def __init__(
        self,
        switchboard: Switchboard,
        campaigns: Campaigns,
        bus: EventBus,
        stop: Callable[[], None],
    ) -> None:
        self.switchboard = switchboard
        self.campaigns = campaigns
        self.bus = bus
        self._stop = stop
        self._task: asyncio.Task[None] | None = None
        self._since = datetime.now(UTC)
        self._started = 0.0
        self._deadline = 0.0
        self._timeout = 0.0
        self._refused_before = 0
        self._shown: tuple[int, int, int] | None = None
        self._over = False

    @property
    def active(self) -> bool:
        return self._task is not None

    @property
    def over(self) -> bool:
        """The drain ended by itself (done or timed out): the daemon is stopping."""
        return self._over

    def start(self, timeout: float) -> dict[str, Any]:
        """Drain, stopping the daemon at the latest ``timeout`` seconds from now; during a
        drain, only the timeout changes (once it is over, nothing does). Returns
        :meth:`view`."""
        if self._over:
            return self._figures()
        now = time.monotonic()
        self._deadline = now + timeout
        self._timeout = timeout
        if self._task is not None:
            log.info("drain_timeout_changed", timeout=timeout)
            return self._figures()
        board = self.switchboard
        self._since = datetime.now(UTC)
        self._started = now
        self._refused_before = board.refused
        self._shown = None
        board.begin_drain()
        self._pause_campaigns()
        self.bus.publish(DrainStarted(timeout=timeout, calls=len(board.active)))
        log.info(
            "drain_started",
            timeout=timeout,
            calls=len(board.active),
            dials=board.dials_in_progress,
        )
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="drain")
        return self._figures()

    def cancel(self) -> bool:
        """Take calls again; False when no drain runs, or when it is over (the daemon is
        stopping)."""
        if self._over or self._task is None:
            return False
        task, self._task = self._task, None
        task.cancel()
        self.switchboard.end_drain()
        for campaign in self.campaigns.by_id.values():
            if campaign.state is CampaignState.PAUSED and campaign.why == WHY:
                campaign.resume("drain called off")
        self._ended("cancelled")
        systemd.notify(f"STATUS=taking calls from {self._pbx_name()}")
        return True

    async def close(self) -> None:
        """The daemon stops (by a signal, or at the drain's end): stop watching."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            await cancel_and_wait(task)

    def view(self) -> dict[str, Any] | None:
        """What ``/status`` shows: None, or since when, until when at the latest, and what
        is left (``calls`` in progress, ``dials`` waiting for their answer, agents owing
        ``dispositions``) and how many callers were sent to the failover meanwhile. A drain
        over shows until the daemon is gone (its stop closes the drain before the API)."""
        return self._figures() if self._task is not None or self._over else None

    def _figures(self) -> dict[str, Any]:
        board = self.switchboard
        left = max(0.0, self._deadline - time.monotonic())
        return {
            "since": self._since.isoformat(timespec="seconds"),
            "timeout": self._timeout,
            "stops_by": (datetime.now(UTC) + timedelta(seconds=left)).isoformat(timespec="seconds"),
            "calls": len(board.active),
            "dials": board.dials_in_progress,
            "dispositions": board.router.owing_dispositions(),
            "refused": board.refused - self._refused_before,
        }

    def _pause_campaigns(self) -> None:
        for campaign in self.campaigns.by_id.values():
            if campaign.state not in (CampaignState.PAUSED, CampaignState.STOPPED):
                campaign.pause(WHY)

    async def _watch(self) -> None:
        board = self.switchboard
        while not board.drained:
            if time.monotonic() >= self._deadline:
                log.warning(
                    "drain_timed_out",
                    calls=len(board.active),
                    dials=board.dials_in_progress,
                    hint="the calls left go to the PBX, as on SIGTERM",
                )
                self._finish("timeout")
                return
            # A reload may have added a campaign meanwhile.
            self._pause_campaigns()
            shown = (
                len(board.active),
                board.dials_in_progress,
                len(board.router.owing_dispositions()),
            )
            if shown != self._shown:
                self._shown = shown
                systemd.notify(
                    f"STATUS=draining: {shown[0]} calls, {shown[1]} dials and {shown[2]} "
                    "dispositions left, taking no new calls"
                )
            await asyncio.sleep(LOOK_EVERY)
        log.info("drain_done", seconds=round(time.monotonic() - self._started, 1))
        self._finish("done")

    def _finish(self, outcome: str) -> None:
        self._over = True
        self._ended(outcome)
        systemd.notify(f"STATUS=drained ({outcome}); stopping")
        self._stop()

    def _ended(self, outcome: str) -> None:
        self.bus.publish(
            DrainEnded(
                outcome=outcome,
                refused=self.switchboard.refused - self._refused_before,
                seconds=round(time.monotonic() - self._started, 3),
            )
        )

    def _pbx_name(self) -> str:
        pbx = self.switchboard.pbx
        return pbx.name if pbx is not None else "the PBX"
