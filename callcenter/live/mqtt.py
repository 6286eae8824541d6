"""Live figures on an MQTT broker, for wallboards and dashboards (``mqtt:`` in the config).

What a subscriber sees (``callcenter`` is ``mqtt.topic_prefix``)::

    callcenter/status              retained  "online"; "offline" at a clean stop, and as the
                                             broker's last will when the daemon vanishes
    callcenter/queues/<queue>      retained  JSON: waiting, longest_wait, available, staffed,
                                             callbacks, expected_wait (s a caller calling
                                             now would wait; null: nothing to go on),
                                             closed (why, by the queue's
                                             opening hours; null: open), and "today"
                                             (offered, answered,
                                             abandoned, exited, answered_in_service_level,
                                             service_level_percent, average_wait,
                                             surveys, survey_score: their mean)
    callcenter/agents/<id>         retained  JSON: state, since, pause_reason, call_id,
                                             queues, calls_taken, device (the phone they
                                             work at), hot_desking, on_line (an open
                                             line, *70), device_reachable,
                                             "today" (calls, missed, talk_seconds,
                                             paused_seconds, wrapup_seconds: pauses and
                                             wrap-ups over; surveys, survey_score), and
                                             "preview":
                                             the lead a preview campaign shows them
                                             (campaign, lead, number, data) or null
    callcenter/supervisors/<id>    retained  JSON: monitoring (agent, call_id, mode, state)
                                             or null
    callcenter/campaigns/<id>      retained  JSON: queue, state, why, lines, the leads by
                                             status (pending, dialing, retry, answered,
                                             failed, skipped), ringing, dialled
    callcenter/switches/<name>     retained  JSON: description, on, since, via (the
                                             ``ivr.switches`` flows test)
    callcenter/notices             retained  JSON: notices, the notices for agents
                                             standing (id, text, by, teams, posted, until),
                                             newest first
    callcenter/events/<EventName>            JSON of every engine event (``mqtt.events``)

Queues and agents are looked at every ``mqtt.interval`` seconds and published when their JSON
changed; a new connection publishes all of them again, and agents a reload adds appear at the
next look (the router never forgets an agent or a queue while the daemon runs). At each
connection the daemon also reads back what the broker retained under ``agents/+``,
``queues/+``, ``supervisors/+``, ``campaigns/+`` and ``switches/+`` and clears the topics
the config no longer has, so that a wallboard does not show someone who left as available
for ever.
"today" counts from midnight in ``ivr.timezone``.

Best effort, as DESIGN.md asks of live output: QoS 0, nothing is kept while the broker is
away, writes never wait (a broker that reads too slowly loses events, counted in ``dropped``,
and the figures catch up once it reads again), and reconnection backs off up to 30 s. The
engine's only cost per event is a set insertion or a counter, plus the JSON of the event
when ``mqtt.events`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import structlog

from callcenter.acd.router import Router
from callcenter.config.models import MQTTConfig
from callcenter.errors import BrokerRefused, MQTTProtocolError
from callcenter.events import (
    AgentAdded,
    AgentConnected,
    AgentEvent,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentPhoneReachable,
    AgentRemoved,
    AgentRingFailed,
    AgentSkillsChanged,
    AgentStateChanged,
    AgentUnpaused,
    BreakLinedUp,
    BreakLineLeft,
    CallHeld,
    CallUnheld,
    CampaignPreview,
    ConsultAnswered,
    ConsultEnded,
    ConsultJoined,
    ConsultStarted,
    EngineEvent,
    QueueMemberChanged,
    QueueRemoved,
    SurveyEnded,
    TalkEnded,
)
from callcenter.live.today import Today
from callcenter.pbx.reconnect import backoff
from callcenter.protocols import mqtt as wire
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

__all__ = ["MQTTPublisher"]

STALE_AFTER: Final = 1.0
"""Seconds after connecting when the retained messages the broker sent back have all
arrived, and those of agents and queues no longer configured are cleared."""
GATHER: Final = 0.02
"""Seconds packets are gathered into one write: a wallboard does not see 20 ms, the CPU
sees one write instead of one per event."""
HIGH_WATER: Final = 1 << 20
"""Bytes waiting in the socket's buffer above which events are dropped and a look at the
figures is put off: the broker is not reading."""


class _BrokerProtocol(asyncio.Protocol):
    """The socket to the broker: frames what it sends, notes when it last spoke."""

    def __init__(self) -> None:
        self.parser = wire.MQTTParser(max_packet=64 * 1024)
        self.connack: asyncio.Future[wire.Packet | None] = (
            asyncio.get_running_loop().create_future()
        )
        """The CONNACK, or None when the connection was lost before it."""
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.heard = time.monotonic()
        self.error: str | None = None
        self.transport: asyncio.Transport | None = None
        self.retained: set[str] = set()
        """Topics the broker held a retained message for when we subscribed (see
        :meth:`MQTTPublisher._forget_stale`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.heard = time.monotonic()
        try:
            packets = self.parser.feed(data)
        except MQTTProtocolError as exc:
            self.error = f"not MQTT from the broker: {exc}"
            if self.transport is not None:
                self.transport.abort()
            return
        for packet in packets:
            if packet.type is wire.PacketType.CONNACK and not self.connack.done():
                self.connack.set_result(packet)
            elif packet.type is wire.PacketType.PUBLISH:
                with contextlib.suppress(MQTTProtocolError):
                    message = wire.publish(packet)
                    if message.retain and message.payload:
                        self.retained.add(message.topic)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None and exc is not None:
            self.error = str(exc) or type(exc).__name__
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.connack.done():
            self.connack.set_result(None)


_EVENT_FIELDS: dict[type[EngineEvent], tuple[str, ...]] = {}


def _plain(value: object) -> object:
    """JSON for what the encoder does not know: times as ISO 8601, anything else as text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain)


def event_json(event: EngineEvent) -> bytes:
    """An engine event as JSON, as the ``events`` topics and the webhooks carry it: its
    ``event`` name, ``at`` and its own fields (``mono`` left out)."""
    kind = type(event)
    names = _EVENT_FIELDS.get(kind)
    if names is None:
        skip = ("at", "mono")
        names = _EVENT_FIELDS[kind] = tuple(f.name for f in fields(event) if f.name not in skip)
    out: dict[str, Any] = {"event": kind.__name__, "at": event.at.isoformat()}
    for name in names:
        out[name] = getattr(event, name)
    return _ENCODER.encode(out).encode()


class MQTTPublisher:
    """Publishes the call centre's live state to one broker; subscribe :meth:`on_event` to
    the engine's bus, then :meth:`start`. Never raises into the engine."""

    def __init__(
        self,
        config: MQTTConfig,
        router: Router,
        *,
        service_level: Callable[[str], float],
        timezone: str = "UTC",
        password: str | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        supervisors: Callable[[], list[dict[str, Any]]] | None = None,
        campaigns: Callable[[], list[dict[str, Any]]] | None = None,
        previews: Callable[[], list[dict[str, Any]]] | None = None,
        holding: Callable[[], dict[str, dict[str, Any]]] | None = None,
        switches: Callable[[], list[dict[str, Any]]] | None = None,
        closed: Callable[[str], str | None] | None = None,
        today: Today | None = None,
        voicemails: Callable[[str], int | None] | None = None,
        notices: Callable[[], list[dict[str, Any]]] | None = None,
        break_line: Callable[[str], int | None] | None = None,
    ) -> None:
        self.config = config
        self._owns_today = today is None
        self.today = today if today is not None else Today(service_level, timezone)
        """The day's counters (the daemon's own, which its bus feeds; else this one's)."""
        self._switches = switches
        self._closed = closed
        self._voicemails = voicemails
        self._notices = notices
        self._supervisors = supervisors
        self._campaigns = campaigns
        self._previews = previews
        self._holding = holding
        self._break_line = break_line
        self._ca_file = ca_file
        self._cert_file = cert_file
        self._key_file = key_file
        self._router = router
        self._password = password
        self._prefix = config.topic_prefix
        self.client_id = config.client_id or f"callcenter-{socket.gethostname()}"[:64]
        self._status_topic = f"{self._prefix}/status"
        self._stale_filters = [
            f"{self._prefix}/{kind}/+"
            for kind in ("agents", "queues", "supervisors", "campaigns", "switches")
        ]
        self._dirty: set[str] = set()
        self._since: dict[str, str] = {}
        self._day = self.today.day
        self._last: dict[str, bytes] = {}
        self._out: list[bytes] = []
        self._flush_pending = False
        self._resend = False
        self._protocol: _BrokerProtocol | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = False
        self.connected_since: datetime | None = None
        self.error: str | None = None
        self.published = 0
        self.dropped = 0

    # ------------------------------------------------------------------ engine side

    def kinds(self) -> tuple[type[EngineEvent], ...] | None:
        """The events the figures need (None: all, when every event goes out too)."""
        if self.config.events:
            return None
        return tuple({*_HANDLERS, *(self.today.kinds() if self._owns_today else ())})

    def on_event(self, event: EngineEvent) -> None:
        """Bus listener: note what changed (and send the event itself with ``events``)."""
        if self._owns_today:
            self.today.on_event(event)
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        if self.config.events:
            if self.connected:
                self._send(
                    wire.encode_publish(
                        f"{self._prefix}/events/{type(event).__name__}", event_json(event)
                    )
                )
            else:
                self.dropped += 1

    def _on_agent(self, e: AgentEvent) -> None:
        self._dirty.add(e.agent)

    def _on_removed(self, e: QueueRemoved | AgentRemoved) -> None:
        """A queue or an agent added at run time was removed: its retained figures go (a
        wallboard would show them forever)."""
        if isinstance(e, QueueRemoved):
            topic = f"{self._prefix}/queues/{e.queue}"
        else:
            topic = f"{self._prefix}/agents/{e.agent}"
            self._since.pop(e.agent, None)
        self._last.pop(topic, None)
        if self.connected:
            self._send(wire.encode_publish(topic, b"", retain=True))

    def _on_state(self, e: AgentStateChanged) -> None:
        self._dirty.add(e.agent)
        self._since[e.agent] = e.at.isoformat(timespec="seconds")

    def _on_preview(self, e: CampaignPreview | CallHeld | CallUnheld | ConsultStarted) -> None:
        """What the agent's desk shows changed: a lead shown, a caller held or consulted for
        (every consultation event has the ``agent`` the handler needs)."""
        self._dirty.add(e.agent)

    def _on_figures(self, e: AgentRingFailed | TalkEnded | AgentConnected | SurveyEnded) -> None:
        """The agent's figures of today changed."""
        self._dirty.add(e.agent)

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Start connecting in the background: a broker that is down delays nothing."""
        self._task = asyncio.create_task(self._run(), name="mqtt")

    async def stop(self, timeout: float = 1.0) -> None:
        """Say ``offline`` (retained), disconnect, and stop reconnecting."""
        self._stopping = True
        protocol = self._protocol
        if protocol is not None and self.connected and protocol.transport is not None:
            self._send(wire.encode_publish(self._status_topic, b"offline", retain=True))
            self._send(wire.DISCONNECT)
            self._flush()
            protocol.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(protocol.lost), timeout)
            except TimeoutError:
                protocol.transport.abort()
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        self.connected = False

    def health(self) -> dict[str, Any]:
        """For ``/health`` and ``/status``."""
        return {
            "broker": f"{self.config.host}:{self.config.port}",
            "connected": self.connected,
            "since": self.connected_since.isoformat() if self.connected_since else None,
            "error": self.error,
            "published": self.published,
            "dropped": self.dropped,
        }

    async def _run(self) -> None:
        delays = backoff(0.5, 30.0)
        while not self._stopping:
            established = False
            try:
                established = await self._session()
            except (OSError, TimeoutError, MQTTProtocolError, BrokerRefused) as exc:
                self.error = str(exc) or type(exc).__name__
            except Exception as exc:
                # A fault of ours must not end live output for good: log it, reconnect.
                log.exception("mqtt_failed")
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                if self.connected:
                    self.connected = False
                    self.connected_since = None
            if self._stopping:
                return
            if established:
                delays = backoff(0.5, 30.0)
            delay = next(delays)
            log.warning(
                "mqtt_unreachable",
                broker=f"{self.config.host}:{self.config.port}",
                error=self.error,
                retry_in=round(delay, 1),
            )
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One connection, until it is lost; True if the broker had accepted it."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        tls = self._tls() if cfg.tls else None
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    _BrokerProtocol,
                    cfg.host,
                    cfg.port,
                    ssl=tls,
                    server_hostname=cfg.host if tls is not None else None,
                ),
                cfg.connect_timeout,
            )
        except TimeoutError:
            raise OSError(f"no TCP connection within {cfg.connect_timeout:g} s") from None
        self._protocol = protocol
        try:
            transport.write(
                wire.encode_connect(
                    self.client_id,
                    keepalive=cfg.keepalive,
                    username=cfg.username,
                    password=self._password if cfg.username is not None else None,
                    will_topic=self._status_topic,
                    will_payload=b"offline",
                    will_retain=True,
                    will_qos=1,
                )
            )
            try:
                packet = await asyncio.wait_for(
                    asyncio.shield(protocol.connack), cfg.connect_timeout
                )
            except TimeoutError:
                raise OSError(f"no CONNACK within {cfg.connect_timeout:g} s") from None
            if packet is None:
                raise OSError(protocol.error or "the broker closed the connection")
            _, code = wire.connack(packet)
            if code:
                raise BrokerRefused(code, wire.CONNACK_REASONS.get(code, "unknown reason"))
            self.connected, self.error = True, None
            self.connected_since = datetime.now(UTC)
            log.info("mqtt_connected", broker=f"{cfg.host}:{cfg.port}", client_id=self.client_id)
            self._send(wire.encode_publish(self._status_topic, b"online", retain=True))
            self._send(wire.encode_subscribe(1, [(f, 0) for f in self._stale_filters]))
            self._publish_figures(everything=True)
            await self._keep(protocol)
            if protocol.error is not None:
                self.error = protocol.error
            elif not self._stopping:
                self.error = "the broker closed the connection"
            return True
        finally:
            if not transport.is_closing():
                transport.abort()
            self._protocol = None
            self._out.clear()

    def _forget_stale(self, protocol: _BrokerProtocol) -> None:
        """Clear the retained messages of agents, queues and supervisors the config no
        longer has (a wallboard would show them forever), and stop listening to our own
        topics."""
        current = {f"{self._prefix}/agents/{a}" for a in self._router.agent_ids()}
        current |= {f"{self._prefix}/queues/{q}" for q in self._router.queue_names()}
        current |= {f"{self._prefix}/supervisors/{s['id']}" for s in self._supervisor_views()}
        current |= {f"{self._prefix}/campaigns/{c['id']}" for c in self._campaign_views()}
        current |= {f"{self._prefix}/switches/{v['name']}" for v in self._switch_views()}
        for topic in sorted(protocol.retained - current):
            log.info("mqtt_stale_topic_cleared", topic=topic)
            self._send(wire.encode_publish(topic, b"", retain=True))
        self._send(wire.encode_unsubscribe(2, self._stale_filters))

    def _tls(self) -> ssl.SSLContext:
        """The TLS context: the broker's certificate is checked, always; the daemon's own
        certificate is shown when configured."""
        try:
            context = ssl.create_default_context(
                cafile=str(self._ca_file) if self._ca_file is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"mqtt.ca_file {self._ca_file}: {exc}") from None
        if self._cert_file is not None:
            key = str(self._key_file) if self._key_file is not None else None
            try:
                context.load_cert_chain(str(self._cert_file), key)
            except (OSError, ssl.SSLError) as exc:
                where = f"{self._cert_file}" + (f" / {self._key_file}" if key else "")
                raise OSError(f"mqtt.cert_file {where}: {exc}") from None
        return context

    async def _keep(self, protocol: _BrokerProtocol) -> None:
        cfg = self.config
        ping_every = cfg.keepalive / 2
        next_look = time.monotonic() + cfg.interval
        next_ping = time.monotonic() + ping_every
        # The broker sends what it retained right after the SUBSCRIBE of _session.
        forget_at: float | None = time.monotonic() + STALE_AFTER
        while not protocol.lost.done():
            now = time.monotonic()
            wake = min(next_look, next_ping, forget_at or next_look)
            if wake > now:
                await asyncio.wait([protocol.lost], timeout=wake - now)
                continue
            if now - protocol.heard > cfg.keepalive * 1.5:
                protocol.error = f"the broker said nothing for {cfg.keepalive * 1.5:g} s"
                if protocol.transport is not None:
                    protocol.transport.abort()
                return
            if now >= next_ping:
                if protocol.transport is not None:
                    protocol.transport.write(wire.PINGREQ)
                next_ping = now + ping_every
            if forget_at is not None and now >= forget_at:
                self._forget_stale(protocol)
                forget_at = None
            if now >= next_look:
                self._publish_figures(everything=self._resend)
                next_look = time.monotonic() + cfg.interval

    # ------------------------------------------------------------------ figures

    def _publish_figures(self, *, everything: bool = False) -> None:
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            return
        if protocol.transport.get_write_buffer_size() > HIGH_WATER:
            return  # the broker is not reading: look again next time, nothing is lost
        if everything:
            self._last.clear()
            self._resend = False
        today = self.today.roll()
        if today != self._day:
            self._day = today
            everything = True  # every agent's "today" starts again
        router = self._router
        now = time.monotonic()
        wall = datetime.now(UTC)
        for name in router.queue_names():
            view = router.queue_view(name, now)
            payload = {
                "name": name,
                "waiting": view["waiting"],
                "longest_wait": int(view["longest_wait"]),
                "available": view["available"],
                "staffed": view["staffed"],
                "callbacks": view["callbacks"],
                "expected_wait": _seconds(router.wait_for_new_caller(name)),
                "closed": self._closed(name) if self._closed is not None else None,
                "voicemails": self._voicemails(name) if self._voicemails is not None else None,
                "today": self.today.queue(name).as_dict(today),
            }
            self._retain(f"{self._prefix}/queues/{name}", payload)
        agent_ids = router.agent_ids()
        dirty, self._dirty = self._dirty, set()
        shown = {p["agent"]: p for p in self._previews()} if self._previews is not None else {}
        holding = self._holding() if self._holding is not None else {}
        for agent_id in agent_ids:
            topic = f"{self._prefix}/agents/{agent_id}"
            if not everything and agent_id not in dirty and topic in self._last:
                continue
            view = router.agent_view(agent_id, now)
            since = self._since.get(agent_id)
            if since is None:
                started = wall - timedelta(seconds=view["time_in_state"])
                since = self._since[agent_id] = started.isoformat(timespec="seconds")
            payload = {
                "id": agent_id,
                "name": view["name"],
                "state": view["state"],
                "since": since,
                "pause_reason": view["pause_reason"],
                "call_id": view["call_id"],
                "queues": view["queues"],
                "calls_taken": view["calls_taken"],
                "device": view["device"],
                "hot_desking": view["hot_desking"],
                "on_line": view["on_line"],
                "device_reachable": view["device_reachable"],
                "today": self.today.agent(agent_id).as_dict(today),
                "preview": _preview(shown.get(agent_id)),
                "on_hold": holding.get(agent_id, {}).get("on_hold", False),
                "consulting": _consulting(holding.get(agent_id, {}).get("consulting")),
                "break_line": self._break_line(agent_id) if self._break_line else None,
            }
            self._retain(topic, payload)
        for supervisor in self._supervisor_views():
            watching = supervisor.get("monitoring")
            self._retain(
                f"{self._prefix}/supervisors/{supervisor['id']}",
                {
                    "id": supervisor["id"],
                    "name": supervisor["name"],
                    "monitoring": (
                        {k: watching[k] for k in ("agent", "call_id", "mode", "state")}
                        if watching
                        else None
                    ),
                },
            )

        for campaign in self._campaign_views():
            self._retain(f"{self._prefix}/campaigns/{campaign['id']}", campaign)
        for switch in self._switch_views():
            self._retain(f"{self._prefix}/switches/{switch['name']}", switch)
        if self._notices is not None:
            self._retain(f"{self._prefix}/notices", {"notices": self._notices()})

    def _supervisor_views(self) -> list[dict[str, Any]]:
        return self._supervisors() if self._supervisors is not None else []

    def _campaign_views(self) -> list[dict[str, Any]]:
        return self._campaigns() if self._campaigns is not None else []

    def _switch_views(self) -> list[dict[str, Any]]:
        return self._switches() if self._switches is not None else []

    def _retain(self, topic: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        if self._last.get(topic) != data:
            self._last[topic] = data
            self._send(wire.encode_publish(topic, data, retain=True))

    # ------------------------------------------------------------------ writing

    def _send(self, packet: bytes) -> None:
        self._out.append(packet)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_later(GATHER, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out, self._out = self._out, []
        protocol = self._protocol
        transport = protocol.transport if protocol is not None else None
        if transport is None or transport.is_closing():
            self.dropped += len(out)
            return
        if transport.get_write_buffer_size() > HIGH_WATER:
            self.dropped += len(out)
            self._resend = True  # figures among them: publish them all at the next look
            return
        transport.write(b"".join(out))
        self.published += len(out)


_HANDLERS: Final[dict[type[EngineEvent], Callable[[MQTTPublisher, Any], None]]] = {
    AgentLoggedIn: MQTTPublisher._on_agent,
    AgentLoggedOut: MQTTPublisher._on_agent,
    AgentPaused: MQTTPublisher._on_agent,
    AgentUnpaused: MQTTPublisher._on_agent,
    BreakLinedUp: MQTTPublisher._on_agent,
    BreakLineLeft: MQTTPublisher._on_agent,
    AgentPhoneReachable: MQTTPublisher._on_agent,
    QueueMemberChanged: MQTTPublisher._on_agent,
    AgentSkillsChanged: MQTTPublisher._on_agent,
    AgentAdded: MQTTPublisher._on_agent,
    AgentRemoved: MQTTPublisher._on_removed,
    AgentStateChanged: MQTTPublisher._on_state,
    QueueRemoved: MQTTPublisher._on_removed,
    CampaignPreview: MQTTPublisher._on_preview,
    CallHeld: MQTTPublisher._on_preview,
    CallUnheld: MQTTPublisher._on_preview,
    ConsultStarted: MQTTPublisher._on_preview,
    ConsultAnswered: MQTTPublisher._on_preview,
    ConsultJoined: MQTTPublisher._on_preview,
    ConsultEnded: MQTTPublisher._on_preview,
    SurveyEnded: MQTTPublisher._on_figures,
    AgentRingFailed: MQTTPublisher._on_figures,
    TalkEnded: MQTTPublisher._on_figures,
    AgentConnected: MQTTPublisher._on_figures,
}
"""Which agent's retained figures each engine event changes; the day's counters are
:class:`~callcenter.live.today.Today`'s."""


def _consulting(consult: dict[str, Any] | None) -> dict[str, Any] | None:
    """Whom an agent consults, and how far it got (the hold's length would change every
    look: it is in ``callcenter status``)."""
    if consult is None:
        return None
    return {"to": consult["to"], "state": consult["state"]}


def _preview(shown: dict[str, Any] | None) -> dict[str, Any] | None:
    """The lead shown to an agent, without the countdown (it would change every look)."""
    if shown is None:
        return None
    return {k: shown[k] for k in ("campaign", "lead", "number", "data")}


def _seconds(value: float | None) -> int | None:
    return None if value is None else round(value)
