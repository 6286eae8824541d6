"""Live figures for Prometheus: ``GET /metrics`` on the control API.

Counters and histograms are kept from the engine's events (a bus listener: a dict look-up
per event, nothing on the call's path waits for it); gauges are read from the router, the
active calls, the PBX link and the record writer when Prometheus scrapes. The text is the
Prometheus exposition format 0.0.4.

Counters (``_total``) and histograms, by queue where there is one:

* ``callcenter_calls_started_total``, ``callcenter_calls_ended_total{hung_up_by}``;
* ``callcenter_queue_joined_total`` (of whom ``..._resumed_total`` took back the place
  they had abandoned), ``..._answered_total``,
  ``..._answered_in_service_level_total`` (within the queue's ``service_level`` seconds),
  ``..._abandoned_total``, ``..._short_abandoned_total`` (within the queue's
  ``short_abandon`` seconds, not in ``..._abandoned_total``),
  ``callcenter_queue_exited_total{queue,reason}`` (inbound
  callers: campaign leads put through a queue count in the ``callcenter_campaign_*``
  counters instead, and the people agents dial in ``callcenter_agent_dials_total{agent,
  outcome}``);
* ``callcenter_queue_wait_seconds`` (histogram: the wait of answered callers),
  ``callcenter_queue_abandon_wait_seconds`` (histogram: how long those who gave up waited),
  ``callcenter_talk_seconds`` (histogram: each talk with an agent);
* ``callcenter_agent_ring_failed_total{queue,status}``, ``callcenter_transfers_total``,
  ``callcenter_transfers_failed_total``.

Gauges: ``callcenter_calls_active``, ``callcenter_queue_waiting``,
``callcenter_queue_longest_wait_seconds``, ``callcenter_queue_agents_available``,
``callcenter_queue_agents_staffed``, ``callcenter_queue_callbacks_waiting``,
``callcenter_agents{state}``, ``callcenter_agents_on_line``,
``callcenter_supervisors_monitoring``, ``callcenter_pbx_connected``, ``callcenter_draining``,
``callcenter_switch{switch}``, ``callcenter_records_ok``, ``callcenter_records_unwritten``,
``callcenter_left_rooms_watched``; read at the scrape as well, counters since the start:
``callcenter_left_lines_taken_back_total``, ``callcenter_left_dials_hung_up_total``,
``callcenter_stranded_room_legs_hung_up_total`` (what an earlier daemon left behind).

Service level as a ratio over a window, in PromQL::

    increase(callcenter_queue_answered_in_service_level_total[1h])
      / (increase(callcenter_queue_joined_total[1h])
         - increase(callcenter_queue_short_abandoned_total[1h]))
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from callcenter.events import (
    AgentConnected,
    AgentDialAnswered,
    AgentDialFailed,
    AgentRingFailed,
    AgentStateChanged,
    CallDisposed,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUnheld,
    CampaignAnswered,
    CampaignAttemptFailed,
    CampaignDialing,
    CampaignLeadSkipped,
    CampaignLeadWaiting,
    ConsultEnded,
    EngineEvent,
    EventBus,
    QueueAbandoned,
    QueueExited,
    QueueJoined,
    SurveyEnded,
    TalkEnded,
    TransferFailed,
)
from callcenter.live.today import is_short_abandon

WAIT_BUCKETS: Final = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TALK_BUCKETS: Final = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Histogram:
    """Cumulative-on-render buckets (upper bounds), their sum and count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)
        i = bisect.bisect_left(self.bounds, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.count += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = (*labels, extra) if extra is not None else labels
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Builds the text of one scrape, one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histograms(self, name: str, help_text: str, series: Mapping[Labels, Histogram]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for labels, h in sorted(series.items()):
            running = 0
            for bound, n in zip(h.bounds, h.counts or [0] * len(h.bounds), strict=True):
                running += n
                le = ("le", repr(float(bound)))
                self.lines.append(f"{name}_bucket{_labels(labels, le)} {running}")
            inf = ("le", "+Inf")
            self.lines.append(f"{name}_bucket{_labels(labels, inf)} {h.count}")
            self.lines.append(f"{name}_sum{_labels(labels)} {_number(h.total)}")
            self.lines.append(f"{name}_count{_labels(labels)} {h.count}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class Metrics:
    """Event-bus listener keeping the counters and histograms; :meth:`render` adds the
    gauges of the moment. ``service_level(queue)`` gives a queue's service level in
    seconds (the config's, as it is now)."""

    def __init__(
        self,
        service_level: Callable[[str], float],
        short_abandon: Callable[[str], float] | None = None,
    ) -> None:
        self._service_level = service_level
        self._short_abandon = short_abandon
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[Labels, Histogram]] = defaultdict(dict)
        self._queue_of: dict[str, str] = {}
        """Call id -> the queue its agent answered in (for the talk histogram)."""
        self._leads: set[str] = set()
        """Calls of campaign leads: outbound, kept out of the queues' inbound figures."""
        self._wrapup_at: dict[str, float] = {}
        self._handlers: dict[type[EngineEvent], Callable[[Any], None]] = {
            CallStarted: self._on_started,
            AgentStateChanged: self._on_state,
            CallEnded: self._on_ended,
            QueueJoined: self._on_joined,
            AgentConnected: self._on_connected,
            QueueAbandoned: self._on_abandoned,
            QueueExited: self._on_exited,
            AgentRingFailed: self._on_ring_failed,
            TalkEnded: self._on_talk_ended,
            CallTransferred: self._on_transferred,
            TransferFailed: self._on_transfer_failed,
            CampaignDialing: self._on_campaign_dialing,
            CampaignAnswered: self._on_campaign_answered,
            CampaignLeadWaiting: self._on_lead,
            CampaignAttemptFailed: self._on_campaign_failed,
            CampaignLeadSkipped: self._on_campaign_skipped,
            CallDisposed: self._on_disposed,
            SurveyEnded: self._on_survey,
            ConsultEnded: self._on_consult_ended,
            CallUnheld: self._on_unheld,
            AgentDialAnswered: self._on_dial_answered,
            AgentDialFailed: self._on_dial_failed,
        }

    def kinds(self) -> tuple[type[EngineEvent], ...]:
        """The events the figures are made of (``EventBus.subscribe``'s ``kinds``)."""
        return tuple(self._handlers)

    def on_event(self, event: EngineEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def subscribe(self, bus: EventBus) -> None:
        """Have ``bus`` call each event's handler straight away (not through
        :meth:`on_event`: one Python call less per event on the calls' path)."""
        for kind, handler in self._handlers.items():
            bus.subscribe(handler, kinds=(kind,))

    def _count(self, name: str, labels: Labels = (), amount: float = 1.0) -> None:
        self._counters[name][labels] += amount

    def _observe(self, name: str, labels: Labels, bounds: tuple[float, ...], v: float) -> None:
        series = self._histograms[name]
        h = series.get(labels)
        if h is None:
            h = series[labels] = Histogram(bounds)
        h.observe(max(0.0, v))

    def _on_state(self, e: AgentStateChanged) -> None:
        if e.new == "wrap_up":
            self._wrapup_at[e.agent] = e.mono
        elif e.old == "wrap_up" and e.agent in self._wrapup_at:
            spent = max(0.0, e.mono - self._wrapup_at.pop(e.agent))
            self._count("callcenter_agent_wrapup_seconds_total", (("agent", e.agent),), spent)

    def _on_started(self, e: CallStarted) -> None:
        self._count("callcenter_calls_started_total")

    def _on_ended(self, e: CallEnded) -> None:
        self._count("callcenter_calls_ended_total", (("hung_up_by", e.hung_up_by),))
        self._queue_of.pop(e.call_id, None)
        self._leads.discard(e.call_id)

    def _on_lead(self, e: CampaignLeadWaiting) -> None:
        self._leads.add(e.call_id)

    def _on_joined(self, e: QueueJoined) -> None:
        if e.call_id not in self._leads:
            self._count("callcenter_queue_joined_total", (("queue", e.queue),))
            if e.resumed:
                self._count("callcenter_queue_resumed_total", (("queue", e.queue),))

    def _on_connected(self, e: AgentConnected) -> None:
        q = (("queue", e.queue),)
        if e.call_id not in self._leads:
            self._count("callcenter_queue_answered_total", q)
            if e.wait_seconds <= self._service_level(e.queue):
                self._count("callcenter_queue_answered_in_service_level_total", q)
            self._observe("callcenter_queue_wait_seconds", q, WAIT_BUCKETS, e.wait_seconds)
        self._queue_of[e.call_id] = e.queue
        self._count("callcenter_agent_calls_total", (("agent", e.agent),))

    def _on_abandoned(self, e: QueueAbandoned) -> None:
        if e.call_id in self._leads:
            return
        q = (("queue", e.queue),)
        if is_short_abandon(self._short_abandon, e):
            self._count("callcenter_queue_short_abandoned_total", q)
            return
        self._count("callcenter_queue_abandoned_total", q)
        self._observe("callcenter_queue_abandon_wait_seconds", q, WAIT_BUCKETS, e.wait_seconds)

    def _on_exited(self, e: QueueExited) -> None:
        if e.call_id not in self._leads:
            labels = (("queue", e.queue), ("reason", e.reason))
            self._count("callcenter_queue_exited_total", labels)

    def _on_ring_failed(self, e: AgentRingFailed) -> None:
        labels = (("queue", e.queue), ("status", e.status))
        self._count("callcenter_agent_ring_failed_total", labels)
        self._count("callcenter_agent_missed_total", (("agent", e.agent),))

    def _on_talk_ended(self, e: TalkEnded) -> None:
        q = (("queue", self._queue_of.get(e.call_id, "")),)
        self._observe("callcenter_talk_seconds", q, TALK_BUCKETS, e.talk_seconds)
        talk = max(0.0, e.talk_seconds)
        self._count("callcenter_agent_talk_seconds_total", (("agent", e.agent),), talk)

    def _on_transferred(self, e: CallTransferred) -> None:
        self._count("callcenter_transfers_total")

    def _on_transfer_failed(self, e: TransferFailed) -> None:
        self._count("callcenter_transfers_failed_total")

    def _on_consult_ended(self, e: ConsultEnded) -> None:
        self._count("callcenter_consultations_total", (("outcome", e.outcome),))
        self._count("callcenter_hold_seconds_total", (), max(0.0, e.hold_seconds))

    def _on_unheld(self, e: CallUnheld) -> None:
        self._count("callcenter_hold_seconds_total", (), max(0.0, e.hold_seconds))

    def _on_campaign_dialing(self, e: CampaignDialing) -> None:
        self._count("callcenter_campaign_dials_total", (("campaign", e.campaign),))

    def _on_campaign_answered(self, e: CampaignAnswered) -> None:
        self._leads.add(e.call_id)
        self._count("callcenter_campaign_answered_total", (("campaign", e.campaign),))

    def _on_dial_answered(self, e: AgentDialAnswered) -> None:
        self._leads.add(e.call_id)  # outbound: kept out of the queue's inbound figures
        self._count("callcenter_agent_dials_total", (("agent", e.agent), ("outcome", "answered")))

    def _on_dial_failed(self, e: AgentDialFailed) -> None:
        self._count("callcenter_agent_dials_total", (("agent", e.agent), ("outcome", e.reason)))

    def _on_campaign_failed(self, e: CampaignAttemptFailed) -> None:
        labels = (("campaign", e.campaign), ("reason", e.reason))
        self._count("callcenter_campaign_attempts_failed_total", labels)

    def _on_disposed(self, e: CallDisposed) -> None:
        self._count("callcenter_dispositions_total", (("code", e.code),))

    def _on_survey(self, e: SurveyEnded) -> None:
        labels = (("queue", e.queue), ("agent", e.agent))
        self._count("callcenter_surveys_total", labels)
        if e.score is not None:
            self._count("callcenter_surveys_scored_total", labels)
            self._count("callcenter_survey_score_total", labels, e.score)
        if e.satisfied:
            self._count("callcenter_surveys_satisfied_total", labels)

    def _on_campaign_skipped(self, e: CampaignLeadSkipped) -> None:
        labels = (("campaign", e.campaign), ("reason", e.reason))
        self._count("callcenter_campaign_leads_skipped_total", labels)

    def render(
        self,
        snapshot: Mapping[str, Any],
        *,
        calls_active: int,
        monitoring: int,
        pbx_connected: bool,
        records: Mapping[str, Any] | None,
        mqtt: Mapping[str, Any] | None = None,
        campaigns: Sequence[Mapping[str, Any]] = (),
        draining: bool = False,
        switches: Mapping[str, bool] | None = None,
        alerts: Mapping[tuple[str, str], bool] | None = None,
        voicemails: Mapping[str, int] | None = None,
        agent_alerts: Mapping[str, str] | None = None,
        oldest_voicemails: Mapping[str, float] | None = None,
        scheduled: tuple[int, int] | None = None,
        left_behind: Mapping[str, Any] | None = None,
    ) -> str:
        """The exposition text: counters and histograms so far, gauges from ``snapshot``
        (:meth:`Router.snapshot <callcenter.acd.router.Router.snapshot>`) and the rest
        (``voicemails``: queue -> messages still to call back, for the queues with a box;
        ``oldest_voicemails``: queue -> seconds since the oldest of them was left;
        ``left_behind``: :func:`callcenter.pbx.stranded.left_behind`)."""
        out = Exposition()
        for name, help_text in _COUNTERS:
            series = self._counters.get(name, {})
            if not series and name in _UNLABELLED:
                series = {(): 0.0}
            out.family(name, "counter", help_text, sorted(series.items()))
        for name, help_text in _HISTOGRAMS:
            out.histograms(name, help_text, self._histograms.get(name, {}))
        queues: Sequence[Mapping[str, Any]] = snapshot.get("queues", [])
        for key, name, help_text in _QUEUE_GAUGES:
            out.family(
                name,
                "gauge",
                help_text,
                [((("queue", str(q.get("name"))),), float(q.get(key) or 0)) for q in queues],
            )
        if agent_alerts is not None:
            out.family(
                "callcenter_agent_alert",
                "gauge",
                "1 while an agent has been in a state longer than acd.agent_alerts allows "
                "(figure: paused, wrap_up, on_call).",
                [
                    ((("agent", agent), ("figure", figure)), 1.0)
                    for agent, figure in sorted(agent_alerts.items())
                ],
            )
        if scheduled is not None:
            out.family(
                "callcenter_agents_scheduled",
                "gauge",
                "Agents whose schedule (agents.<id>.schedule) has them working now.",
                [((), float(scheduled[0]))],
            )
            out.family(
                "callcenter_agents_scheduled_logged_in",
                "gauge",
                "Of the agents scheduled now, those logged in (the rest are absent).",
                [((), float(scheduled[1]))],
            )
        if voicemails:
            out.family(
                "callcenter_queue_voicemails_waiting",
                "gauge",
                "Voicemail messages of the queue's box still to call back (queues.<q>.mailbox).",
                [((("queue", q),), float(n)) for q, n in sorted(voicemails.items())],
            )
        if oldest_voicemails:
            out.family(
                "callcenter_queue_oldest_voicemail_seconds",
                "gauge",
                "Seconds since the oldest voicemail message of the queue's box still to call "
                "back was left (0: none waits).",
                [((("queue", q),), round(a, 3)) for q, a in sorted(oldest_voicemails.items())],
            )
        states: dict[str, int] = defaultdict(int)
        for agent in snapshot.get("agents", []):
            states[str(agent.get("state"))] += 1
        out.family(
            "callcenter_agents",
            "gauge",
            "Configured agents by state.",
            [((("state", s),), n) for s, n in sorted(states.items())],
        )
        on_line = sum(1 for agent in snapshot.get("agents", []) if agent.get("on_line"))
        out.family(
            "callcenter_agents_on_line",
            "gauge",
            "Agents logged in on an open line (*70): callers reach them without ringing.",
            [((), on_line)],
        )
        out.family(
            "callcenter_calls_active", "gauge", "Calls being handled now.", [((), calls_active)]
        )
        out.family(
            "callcenter_supervisors_monitoring",
            "gauge",
            "Supervisors ringing for or on an agent's call.",
            [((), monitoring)],
        )
        out.family(
            "callcenter_pbx_connected",
            "gauge",
            "1 while the PBX link is up.",
            [((), 1.0 if pbx_connected else 0.0)],
        )
        out.family(
            "callcenter_draining",
            "gauge",
            "1 while the daemon drains: it takes no new calls and stops when those left end.",
            [((), 1.0 if draining else 0.0)],
        )
        if left_behind is not None:
            out.family(
                "callcenter_left_rooms_watched",
                "gauge",
                "Agents' rooms (line-, dial-) an earlier daemon left with an agent in them, "
                "looked after until the agent is back on a line or hung up.",
                [((), float(len(left_behind.get("rooms_watched") or ())))],
            )
            for key, name, help_text in _LEFT_BEHIND:
                out.family(name, "counter", help_text, [((), float(left_behind.get(key) or 0))])
        if switches:
            out.family(
                "callcenter_switch",
                "gauge",
                "1 while the switch (ivr.switches) is on.",
                [
                    ((("switch", name),), 1.0 if on else 0.0)
                    for name, on in sorted(switches.items())
                ],
            )
        if alerts:
            out.family(
                "callcenter_queue_alert",
                "gauge",
                "1 while the queue's figure (waiting, longest_wait) is at or over its "
                "alerts threshold (queues.<q>.alerts).",
                [
                    ((("figure", figure), ("queue", queue)), 1.0 if raised else 0.0)
                    for (queue, figure), raised in sorted(alerts.items())
                ],
            )
        if campaigns:
            out.family(
                "callcenter_campaign_leads",
                "gauge",
                "Leads of each campaign by status (pending, dialing, retry, answered, failed, "
                "skipped).",
                [
                    (
                        (("campaign", str(c.get("id"))), ("status", status)),
                        float(c.get(status) or 0),
                    )
                    for c in campaigns
                    for status in LEAD_STATUSES
                ],
            )
            out.family(
                "callcenter_campaign_running",
                "gauge",
                "1 while the campaign dials (not paused, closed, finished or stopped).",
                [
                    ((("campaign", str(c.get("id"))),), 1.0 if c.get("state") == "running" else 0.0)
                    for c in campaigns
                ],
            )
            predictive = [c for c in campaigns if c.get("mode") == "predictive"]
            if predictive:
                out.family(
                    "callcenter_campaign_dial_ratio",
                    "gauge",
                    "Predictive campaigns: dials going per free agent.",
                    [((("campaign", str(c.get("id"))),), float(c["ratio"])) for c in predictive],
                )
                out.family(
                    "callcenter_campaign_abandon_rate_percent",
                    "gauge",
                    "Predictive campaigns: percent of the people who answered over the last "
                    "24 hours who were dropped for want of an agent.",
                    [
                        ((("campaign", str(c.get("id"))),), float(c["abandon_rate"]))
                        for c in predictive
                    ],
                )
        if records is not None:
            out.family(
                "callcenter_records_ok",
                "gauge",
                "1 while the records database takes writes.",
                [((), 1.0 if records.get("ok") else 0.0)],
            )
            out.family(
                "callcenter_records_unwritten",
                "gauge",
                "Records waiting in memory for the database.",
                [((), float(records.get("unwritten") or 0))],
            )
        if mqtt is not None:
            out.family(
                "callcenter_mqtt_connected",
                "gauge",
                "1 while the MQTT broker link is up.",
                [((), 1.0 if mqtt.get("connected") else 0.0)],
            )
            out.family(
                "callcenter_mqtt_dropped_total",
                "counter",
                "MQTT messages dropped: the broker was away or not reading.",
                [((), float(mqtt.get("dropped") or 0))],
            )
        return out.text()


_LEFT_BEHIND: Final = (
    (
        "lines_taken_back",
        "callcenter_left_lines_taken_back_total",
        "Agents' lines an earlier daemon left, sent through their extension (*70) again.",
    ),
    (
        "dials_hung_up",
        "callcenter_left_dials_hung_up_total",
        "Agents an earlier daemon left in their own dial's room, hung up once alone.",
    ),
    (
        "room_legs_hung_up",
        "callcenter_stranded_room_legs_hung_up_total",
        "Room-device legs found with nobody on them (pbx.stranded_sweep), hung up.",
    ),
)

_COUNTERS: Final = (
    ("callcenter_calls_started_total", "Calls the PBX handed to the daemon."),
    ("callcenter_calls_ended_total", "Calls over, by who hung up."),
    ("callcenter_queue_joined_total", "Callers who joined a queue."),
    (
        "callcenter_queue_resumed_total",
        "Callers who took back the place they had abandoned (resume_abandoned).",
    ),
    ("callcenter_queue_answered_total", "Queue callers an agent answered."),
    (
        "callcenter_queue_answered_in_service_level_total",
        "Queue callers answered within the queue's service_level seconds.",
    ),
    (
        "callcenter_queue_abandoned_total",
        "Queue callers who hung up waiting (after the queue's short_abandon seconds).",
    ),
    (
        "callcenter_queue_short_abandoned_total",
        "Queue callers who hung up within the queue's short_abandon seconds.",
    ),
    ("callcenter_queue_exited_total", "Queue callers a queue rule took out, by reason."),
    ("callcenter_agent_ring_failed_total", "Agents rung who did not take the call."),
    ("callcenter_transfers_total", "Calls transferred by an agent."),
    (
        "callcenter_transfers_failed_total",
        "Blind transfers nobody answered (the caller back in their queue, or hung up).",
    ),
    (
        "callcenter_consultations_total",
        "Agents' consultations over, by outcome (completed: an attended transfer).",
    ),
    ("callcenter_hold_seconds_total", "Seconds callers held (consultations and agent holds)."),
    ("callcenter_agent_calls_total", "Calls each agent answered."),
    ("callcenter_agent_missed_total", "Calls each agent was rung for and did not take."),
    (
        "callcenter_agent_dials_total",
        "Agents' own calls (*77, agent dial) by outcome: answered, or why nobody was put through.",
    ),
    ("callcenter_agent_talk_seconds_total", "Seconds each agent (or supervisor) talked."),
    (
        "callcenter_agent_wrapup_seconds_total",
        "Seconds each agent spent in after-call work (wrap-ups over).",
    ),
    (
        "callcenter_campaign_dials_total",
        "Campaign leads dialled (progressive: an agent reserved for each).",
    ),
    ("callcenter_campaign_answered_total", "Campaign leads who answered."),
    ("callcenter_campaign_attempts_failed_total", "Campaign tries not answered, by reason."),
    ("callcenter_campaign_leads_skipped_total", "Campaign leads never dialled, by reason."),
    ("callcenter_dispositions_total", "Codes agents gave calls, by code (corrections too)."),
    (
        "callcenter_surveys_total",
        "Post-call surveys callers were taken through, by queue and agent.",
    ),
    ("callcenter_surveys_scored_total", "Post-call surveys in which the caller gave a score."),
    (
        "callcenter_surveys_satisfied_total",
        "Scored surveys whose score reached the survey's satisfied_from (CSAT).",
    ),
    (
        "callcenter_survey_score_total",
        "Sum of the survey scores (mean = this / surveys_scored_total).",
    ),
)
LEAD_STATUSES: Final = ("pending", "dialing", "retry", "answered", "failed", "skipped")
_UNLABELLED: Final = frozenset(
    {
        "callcenter_calls_started_total",
        "callcenter_transfers_total",
        "callcenter_transfers_failed_total",
        "callcenter_hold_seconds_total",
    }
)
_HISTOGRAMS: Final = (
    ("callcenter_queue_wait_seconds", "Seconds answered queue callers waited."),
    ("callcenter_queue_abandon_wait_seconds", "Seconds queue callers waited before giving up."),
    ("callcenter_talk_seconds", "Seconds of each talk with an agent."),
)
_QUEUE_GAUGES: Final = (
    ("waiting", "callcenter_queue_waiting", "Callers waiting in the queue now."),
    (
        "longest_wait",
        "callcenter_queue_longest_wait_seconds",
        "Seconds the longest-waiting caller has waited.",
    ),
    ("available", "callcenter_queue_agents_available", "Agents ready to take a call now."),
    ("staffed", "callcenter_queue_agents_staffed", "Agents logged in and present."),
    ("callbacks", "callcenter_queue_callbacks_waiting", "Callers waiting to be called back."),
)
