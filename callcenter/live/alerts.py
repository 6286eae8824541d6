"""Queue and agent alerts.

Queue alerts: a ``QueueAlert`` event when a queue's waiting callers, longest wait,
voicemail messages still to call back, the age of the oldest of them or the wait a caller
calling now would have reach the thresholds of its ``alerts``
(``queues.<q>.alerts``), and another when they are back under them, so that a supervisor
is paged (a webhook into the team's chat) before the callers give up. Wallboards get the
same events (MQTT ``events``, ``GET /events``) and Prometheus a gauge,
``callcenter_queue_alert{queue,figure}``.

The figures are looked at every :data:`LOOK_EVERY` seconds (a wait grows without any
event to say so), from the router's view of the queue: callers, not the campaign's or
agents' own dials. A queue that leaves the config (a reload) clears its alerts.

Agent alerts (``acd.agent_alerts``): an ``AgentAlert`` event when an agent has been paused
(per reason), in wrap-up or on one call for longer than allowed, or logged out while their
``schedule`` says they work (figure ``absent``), and another when they leave that state
(or the scheduled stretch ends); the wallboard and the supervisors' desktops mark them,
Prometheus has ``callcenter_agent_alert{agent,figure}``. Looked at every
:data:`LOOK_EVERY` seconds too.

Shift ends (``acd.logout_after_shift``, :class:`ShiftEnds`): an agent still logged in that
long after their scheduled stretch ended is logged out (via ``schedule``), at their call's
end when on one; one who logged in after the stretch ended (overtime) is left alone.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import structlog

from callcenter.acd.schedule import schedule_of, stretch_at, stretches_between
from callcenter.events import AgentAlert, EventBus, QueueAlert

if TYPE_CHECKING:
    from callcenter.acd.agent import Agent
    from callcenter.acd.router import Router
    from callcenter.config.models import CallCenterConfig

log = structlog.get_logger(__name__)

LOOK_EVERY: Final = 1.0
"""Seconds between two looks at the queues' figures."""
FIGURES: Final = ("waiting", "longest_wait", "voicemails", "oldest_voicemail", "expected_wait")
ABSENT: Final = "absent"
"""The figure of an agent alert for an agent logged out while scheduled."""


class _Watch(abc.ABC):
    """What both watchers share: the router they read, the bus they tell, the config of
    the moment, and a look every :data:`LOOK_EVERY` seconds (:meth:`run`)."""

    _failed = "alerts_look_failed"

    def __init__(
        self, router: Router, bus: EventBus, config: Callable[[], CallCenterConfig]
    ) -> None:
        self._router = router
        self._bus = bus
        self._config = config

    @abc.abstractmethod
    def look(self) -> None:
        """Compare the watched figures with their thresholds once."""

    async def run(self) -> None:
        """Look every :data:`LOOK_EVERY` seconds until cancelled; a look that fails (a bug)
        is logged and tried again: alerts must not stop for good."""
        while True:
            try:
                self.look()
            except Exception:
                log.exception(self._failed)
            await asyncio.sleep(LOOK_EVERY)


class QueueAlerts(_Watch):
    """Watches the queues that have ``alerts`` (see the module docstring)."""

    _failed = "queue_alerts_look_failed"

    def __init__(
        self, router: Router, bus: EventBus, config: Callable[[], CallCenterConfig]
    ) -> None:
        super().__init__(router, bus, config)
        self._raised: dict[tuple[str, str], float] = {}
        """(queue, figure) -> threshold, for the alerts raised now."""
        self.voicemails: Callable[[str], int] = lambda queue: 0
        """A queue's voicemail messages still to call back (the daemon sets it: the inbox
        is the records')."""
        self.oldest_voicemail: Callable[[str], float] = lambda queue: 0.0
        """Seconds since the oldest of them was left."""

    def raised(self) -> list[dict[str, object]]:
        """The alerts standing now (``/status``)."""
        return [
            {"queue": queue, "figure": figure, "threshold": threshold}
            for (queue, figure), threshold in sorted(self._raised.items())
        ]

    def states(self) -> dict[tuple[str, str], bool]:
        """Every watched (queue, figure) of the config, and whether its alert stands."""
        out: dict[tuple[str, str], bool] = {}
        for queue, settings in self._config().queues.items():
            alerts = settings.alerts
            for figure in FIGURES:
                if alerts is not None and getattr(alerts, figure) is not None:
                    out[(queue, figure)] = (queue, figure) in self._raised
        return out

    def look(self) -> None:
        """Compare every watched queue's figures with its thresholds once."""
        config = self._config()
        known = set(self._router.queue_names())
        for key in list(self._raised):
            queue, figure = key
            settings = config.queues.get(queue)
            alerts = settings.alerts if settings is not None else None
            if queue not in known or alerts is None or getattr(alerts, figure) is None:
                self._change(queue, figure, 0.0, self._raised[key], raised=False)
        for queue, settings in config.queues.items():
            alerts = settings.alerts
            if alerts is None or queue not in known:
                continue
            view = self._router.queue_view(queue)
            for figure in FIGURES:
                threshold = getattr(alerts, figure)
                if threshold is None:
                    continue
                if figure == "voicemails":
                    value = float(self.voicemails(queue))
                elif figure == "oldest_voicemail":
                    value = self.oldest_voicemail(queue)
                elif figure == "expected_wait":
                    value = self._router.wait_for_new_caller(queue) or 0.0  # None: not known
                else:
                    value = float(view[figure])
                standing = (queue, figure) in self._raised
                if value >= threshold and not standing:
                    self._change(queue, figure, value, float(threshold), raised=True)
                elif value < threshold and standing:
                    self._change(queue, figure, value, float(threshold), raised=False)

    def _change(
        self, queue: str, figure: str, value: float, threshold: float, *, raised: bool
    ) -> None:
        if raised:
            self._raised[(queue, figure)] = threshold
        else:
            self._raised.pop((queue, figure), None)
        self._bus.publish(
            QueueAlert(queue=queue, figure=figure, value=value, threshold=threshold, raised=raised)
        )
        _logged("queue_alert", raised, queue=queue, figure=figure, value=value, threshold=threshold)


class AgentAlerts(_Watch):
    """Watches how long agents stay paused, in wrap-up or on a call (``acd.agent_alerts``;
    see the module docstring)."""

    _failed = "agent_alerts_look_failed"

    def __init__(
        self, router: Router, bus: EventBus, config: Callable[[], CallCenterConfig]
    ) -> None:
        super().__init__(router, bus, config)
        self._raised: dict[str, tuple[str, float, str]] = {}
        """agent -> (figure, threshold, pause reason) of the alert standing for them."""

    def raised(self) -> list[dict[str, object]]:
        """The alerts standing now (``/status``)."""
        return [
            {"agent": agent, "figure": figure, "threshold": threshold, "reason": reason}
            for agent, (figure, threshold, reason) in sorted(self._raised.items())
        ]

    def over(self, agent: str) -> float | None:
        """The seconds ``agent`` was allowed in their state, while their alert stands."""
        standing = self._raised.get(agent)
        return standing[1] if standing is not None else None

    def standing(self) -> dict[str, str]:
        """Agent -> the figure of the alert standing for them."""
        return {agent: figure for agent, (figure, _t, _r) in self._raised.items()}

    def look(self) -> None:
        """Compare every agent's time in their state with its threshold once."""
        settings = self._config().acd.agent_alerts
        if settings is None:  # not watched (or no longer, after a reload)
            for agent in list(self._raised):
                self._clear(agent, 0.0)
            return
        router = self._router
        known = set(router.agent_ids())
        for agent in list(self._raised):
            if agent not in known:
                self._clear(agent, 0.0)
        config = self._config()
        now = datetime.now(UTC)
        for agent in known:
            view = router.agent_view(agent)
            state = str(view["state"])
            reason = str(view.get("pause_reason") or "")
            in_state = float(view["time_in_state"])
            seconds: float | None = in_state
            figure, threshold = state, settings.threshold(state, reason)
            if state == "logged_out":
                figure, threshold = ABSENT, settings.absent
                seconds = _absent_for(config, agent, now, in_state) if threshold else None
            standing = self._raised.get(agent)
            if standing is not None and (
                (standing[0], standing[2]) != (figure, reason) or seconds is None
            ):
                # Left the state (or changed the reason, or the scheduled stretch ended):
                # that stretch is over.
                self._clear(agent, 0.0)
                standing = None
            if (
                threshold is not None
                and seconds is not None
                and seconds >= threshold
                and standing is None
            ):
                self._raised[agent] = (figure, float(threshold), reason)
                self._publish(agent, figure, seconds, float(threshold), reason, raised=True)

    def _clear(self, agent: str, value: float) -> None:
        figure, threshold, reason = self._raised.pop(agent)
        self._publish(agent, figure, value, threshold, reason, raised=False)

    def _publish(
        self, agent: str, figure: str, value: float, threshold: float, reason: str, *, raised: bool
    ) -> None:
        self._bus.publish(
            AgentAlert(
                agent=agent,
                figure=figure,
                value=round(value, 1),
                threshold=threshold,
                raised=raised,
                reason=reason,
            )
        )
        _logged(
            "agent_alert", raised, agent=agent, figure=figure, reason=reason, threshold=threshold
        )


def _absent_for(
    config: CallCenterConfig, agent: str, now: datetime, logged_out: float
) -> float | None:
    """Seconds ``agent`` has been logged out while scheduled (``agents.<id>.schedule``):
    since the stretch began or since they logged out, the later; None when they are not
    scheduled now."""
    schedule = schedule_of(config, agent)
    stretch = stretch_at(schedule, now) if schedule is not None else None
    if stretch is None:
        return None
    return min((now - stretch[0]).total_seconds(), logged_out)


def _logged(what: str, raised: bool, **fields: object) -> None:
    """``<what>_raised`` (a warning) or ``<what>_cleared``."""
    if raised:
        log.warning(f"{what}_raised", **fields)
    else:
        log.info(f"{what}_cleared", **fields)


SHIFT_LOOKBACK: Final = 1
"""Days looked back for the last scheduled stretch (a night shift ends the next day)."""


class ShiftEnds(_Watch):
    """Logs out the agents still logged in ``acd.logout_after_shift`` seconds after their
    scheduled stretch ended (a forgotten logout), via ``schedule``; one on a call at the
    end of it (the router's pending logout)."""

    _failed = "shift_ends_look_failed"

    def __init__(
        self, router: Router, bus: EventBus, config: Callable[[], CallCenterConfig]
    ) -> None:
        super().__init__(router, bus, config)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def look(self) -> None:
        """Log out, once, each agent whose shift is over by more than the grace."""
        config = self._config()
        grace = config.acd.logout_after_shift
        if grace is None:
            return
        now = self.clock()
        for agent_id in self._router.agent_ids():
            agent = self._router.agents[agent_id]
            if str(agent.state) == "logged_out" or agent.logout_pending:
                continue
            ended = shift_ended(config, agent_id, now)
            if ended is None or (now - ended).total_seconds() < grace:
                continue
            if self._logged_in_since(agent) > ended:
                continue  # logged in after the shift: their choice, overtime
            log.info("agent_logged_out_after_shift", agent=agent_id, shift_ended=ended.isoformat())
            self._router.logout(agent_id, via="schedule")

    def _logged_in_since(self, agent: Agent) -> datetime:
        """When the agent logged in, on the wall clock."""
        now = self._router.now()
        logged = agent.logged_in_at if agent.logged_in_at is not None else now
        return self.clock() - timedelta(seconds=max(0.0, now - logged))


def shift_ended(config: CallCenterConfig, agent: str, now: datetime) -> datetime | None:
    """When ``agent``'s last scheduled stretch before ``now`` ended (UTC), or None: no
    schedule, or a stretch going on now."""
    schedule = schedule_of(config, agent)
    if schedule is None or stretch_at(schedule, now) is not None:
        return None
    since = now - timedelta(days=SHIFT_LOOKBACK)
    ends = [end for _, end in stretches_between(schedule, since, now) if end <= now]
    return ends[-1] if ends else None
