"""The composition root: builds the daemon from a config file and runs it until a signal.

    config file ──> Daemon ──> PBX driver ──(calls)──> Switchboard ──> Router (agents, queues)
                      │                                    │
                      ├──> ControlAPI (CLI)                └──(events)──> EventBus ──> records

Under systemd (``Type=notify``) it reports readiness, reloads, the PBX link's state and
stopping, and feeds the watchdog (:mod:`callcenter.systemd`).

Signals: SIGTERM/SIGINT stop at once, leaving calls in progress to the PBX: a caller talking
to an agent keeps talking; one in the IVR or a queue goes on in the dialplan after ``AGI()``
(Asterisk: the shipped failover, FreeSWITCH's socket) or, parked on FreeSWITCH, is parked
afresh for the next daemon; their CDRs say ``hung_up_by: shutdown`` until a later record of
the same call replaces them.
SIGQUIT drains (:mod:`callcenter.drain`): no new call is taken, and the daemon stops once
the calls in progress are over, or ``runtime.drain_timeout`` seconds later.
SIGHUP reloads the config file (a bad file is refused and the running config stays; the
sections in RESTART_SECTIONS are logged as waiting for a restart instead of applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from pydantic import BaseModel

from callcenter import systemd
from callcenter.acd.agent import Agent
from callcenter.acd.router import Router
from callcenter.callback import timed_callback_origin
from callcenter.config import CallCenterConfig, load_config
from callcenter.drain import Drain
from callcenter.errors import (
    ConfigError,
    ConfigIssue,
    EngineError,
    ErasureRefused,
    PBXClaimed,
    RecordError,
)
from callcenter.events import (
    AgentAdded,
    AgentRemoved,
    AgentScheduleChanged,
    CallCentreStarted,
    CallEvent,
    ConfigReloaded,
    EngineEvent,
    EventBus,
    QueueAdded,
    QueueRemoved,
)
from callcenter.line import LINE_VIA
from callcenter.live.api import ControlAPI, PBXLink
from callcenter.live.lamps import BusyLamps, MessageLamps
from callcenter.live.metrics import Metrics
from callcenter.live.mqtt import MQTTPublisher
from callcenter.live.notices import NoticeBoard
from callcenter.live.today import Today
from callcenter.live.webhooks import Webhook
from callcenter.outbound.campaign import Campaigns, LeadRecord
from callcenter.outbound.leads import normalise_number
from callcenter.pbx.asterisk.driver import AsteriskDriver, AsteriskSettings
from callcenter.pbx.freeswitch.driver import FreeSwitchDriver, FreeSwitchSettings
from callcenter.pbx.interface import (
    PBX,
    Call,
    PBXClaimLost,
    PBXConnected,
    PBXDisconnected,
    PBXEvent,
)
from callcenter.pbx.stranded import LeftRooms, StrandedLegs
from callcenter.records import erasure, summary
from callcenter.records.audit import AuditTrail
from callcenter.records.callbacks import QueueCallback, QueueCallbackRecorder
from callcenter.records.campaigns import CampaignRecorder
from callcenter.records.cdr import CdrRecorder
from callcenter.records.desks import DeskRecorder
from callcenter.records.dispositions import DispositionRecord, DispositionRecorder
from callcenter.records.evaluations import Evaluation
from callcenter.records.forecast import (
    ForecastAsked,
    WeekForecast,
    history_key,
    read_forecast,
    read_history,
)
from callcenter.records.lock import IN_MEMORY, RecordLock
from callcenter.records.members import MemberRecorder
from callcenter.records.notices import NoticeRecorder
from callcenter.records.number_lists import NumberListRecorder
from callcenter.records.queue_log import QueueLogFile, QueueLogRecorder
from callcenter.records.recordings import purge_recordings
from callcenter.records.reports import ReportReader
from callcenter.records.rescue import RecordRescue
from callcenter.records.roster import RosterRecorder
from callcenter.records.schedule_changes import ScheduleChangeRecorder, ScheduleRequest
from callcenter.records.shifts import BreakLine, ShiftRecorder
from callcenter.records.skills import SkillsRecorder
from callcenter.records.store import RecordStore, SqliteCdrStore
from callcenter.records.summary import Stretch
from callcenter.records.surveys import SurveyRecorder
from callcenter.records.switches import SwitchRecorder
from callcenter.records.voicemails import VoicemailInbox, VoicemailRecorder
from callcenter.records.writer import RecordWriter
from callcenter.switchboard import Switchboard
from callcenter.tasks import cancel_and_wait

if TYPE_CHECKING:
    from callcenter.records.postgres import PostgresLock

DURABLE_WAIT = 5.0
"""Seconds a call's task waits for its record to be durable (after the PBX got the channel
back); a record still queued then is logged as slow (``cdr_write_slow``), not lost."""

log = structlog.get_logger(__name__)

_Row = TypeVar("_Row")

#: Config sections the daemon reads once, at start: a reload that changes them is logged as
#: needing a restart. The PBX links, listening sockets, record store and event loop stay as
#: they are, and so does logging (loggers bound at start would keep the old level).
RESTART_SECTIONS = ("pbx", "api", "records", "runtime", "logging", "mqtt", "webhooks")
LIVE_SETTINGS = frozenset(
    {"api.wallboard_title", "api.desktop", "api.desktop_session_hours", "api.trusted_proxies"}
)
"""Settings of RESTART_SECTIONS read at each use: a reload applies them."""

RETENTION_FIRST = 60.0
"""Seconds after a start before ``records.keep_days`` first deletes old records (a start
is busy enough)."""
RETENTION_INTERVAL = 24 * 3600.0
"""Seconds between two rounds of deleting old records."""
FORECAST_HISTORY_KEEP = 600.0
"""Seconds the history figures of a forecast are kept for the next ask of the same week."""
VISIT_LOOKBACK = timedelta(days=1)
"""How long before the ``resume_abandoned`` window a call that abandoned in it may have
started (a caller who waited longer than that is not given their place back after a
restart)."""


def changed_settings(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of the fields that differ between two configs (values never shown:
    some are secrets)."""
    changed: list[str] = []
    for name in type(old).model_fields:
        before, after = getattr(old, name), getattr(new, name)
        path = f"{prefix}{name}"
        if isinstance(before, BaseModel) and isinstance(after, BaseModel):
            changed += changed_settings(before, after, f"{path}.")
        elif before != after:
            changed.append(path)
    return changed


def postgres_password(config: CallCenterConfig) -> str | None:
    secret = config.records.postgres_password
    return secret.get_secret_value() if secret is not None else None


def record_store(config: CallCenterConfig) -> RecordStore:
    """The records database the config names: PostgreSQL (``records.postgres``) or the
    SQLite file (``records.cdr_path``). Raises RecordError when PostgreSQL's driver is
    missing."""
    if config.records.postgres is not None:
        # Imported here: psycopg costs every command ~50 ms of start-up, SQLite users too.
        from callcenter.records.postgres import PostgresRecordStore

        return PostgresRecordStore(config.records.postgres, password=postgres_password(config))
    return SqliteCdrStore(resolve(config, config.records.cdr_path))


def section_changes(old: CallCenterConfig, new: CallCenterConfig, section: str) -> list[str]:
    """:func:`changed_settings` of one section; an optional section (``mqtt``) turned on or
    off is named whole."""
    before, after = getattr(old, section), getattr(new, section)
    if isinstance(before, BaseModel) and isinstance(after, BaseModel):
        return changed_settings(before, after, f"{section}.")
    return [section] if before != after else []


def asterisk_settings(config: CallCenterConfig) -> AsteriskSettings:
    """The Asterisk driver's settings from the config's ``pbx`` section."""
    ami = config.pbx.ami
    agi = config.pbx.agi
    events = ami.events
    if "events" not in ami.model_fields_set:
        # Subscribe only to what the transport needs: FastAGI results come over the AGI socket,
        # so the agi class (AsyncAGI*, AGIExec*) is noise (~40% of AMI events per call). dtmf
        # (DTMFEnd, one per key: the filter drops DTMFBegin; ~2 % of a call's work) carries
        # the keys of agents' legs (acd.agent_keys) and of supervisors switching a spy's
        # mode; the driver asks for it when the first open line needs it.
        events = "call" if agi.transport == "fastagi" else "call,agi"
        if config.supervisors or config.acd.agent_keys is not None:
            events += ",dtmf"
    return AsteriskSettings(
        ami_host=ami.host,
        ami_port=ami.port,
        ami_username=ami.username,
        ami_secret=ami.secret.get_secret_value(),
        ami_events=events,
        ami_filter_events=ami.filter_events,
        connect_timeout=ami.connect_timeout,
        action_timeout=ami.action_timeout,
        keepalive_interval=ami.keepalive_interval,
        heartbeat_interval=ami.heartbeat_interval,
        reconnect_min=ami.reconnect_min,
        reconnect_max=ami.reconnect_max,
        agi_transport=agi.transport,
        agi_host=agi.listen_host,
        agi_port=agi.listen_port,
        command_timeout=agi.command_timeout,
        claim_refresh=config.pbx.claim_refresh,
    )


def freeswitch_settings(config: CallCenterConfig) -> FreeSwitchSettings:
    """The FreeSWITCH driver's settings from the config's ``pbx.esl`` section."""
    esl = config.pbx.esl
    return FreeSwitchSettings(
        esl_host=esl.host,
        esl_port=esl.port,
        esl_password=esl.password.get_secret_value() if esl.password is not None else "",
        outbound_listen_host=esl.outbound_listen_host,
        outbound_listen_port=esl.outbound_listen_port,
        connect_timeout=esl.connect_timeout,
        command_timeout=esl.command_timeout,
        heartbeat_timeout=esl.heartbeat_timeout,
        reconnect_min=esl.reconnect_min,
        reconnect_max=esl.reconnect_max,
        failover_extension=esl.failover_extension,
        claim_refresh=config.pbx.claim_refresh,
    )


def loop_factory(config: CallCenterConfig) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory ``runtime.event_loop`` asks for (None: the standard library's).

    Raises ConfigError when ``uvloop`` is asked for and cannot be imported.
    """
    choice = config.runtime.event_loop
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            issue = ConfigIssue(
                file=str(config.source or "config"),
                line=None,
                field="runtime.event_loop",
                message="uvloop is not installed (pip install uvloop, or use asyncio)",
            )
            raise ConfigError([issue]) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def build_pbx(config: CallCenterConfig) -> PBX:
    """The driver ``pbx.type`` names, configured from the config."""
    if config.pbx.type == "freeswitch":
        return FreeSwitchDriver(freeswitch_settings(config))
    return AsteriskDriver(asterisk_settings(config))


def resolve(config: CallCenterConfig, path: str) -> Path:
    """A path from the config, relative to the config file's folder."""
    p = Path(path)
    if p.is_absolute() or config.source is None:
        return p
    return Path(config.source).resolve().parent / p


class Daemon:
    """Everything the ``run`` command runs, startable and stoppable from tests."""

    def __init__(
        self,
        config: CallCenterConfig,
        *,
        config_path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        pbx: PBX | None = None,
        resume: bool = True,
    ) -> None:
        """``resume``: at start, take back what a previous daemon on the same record
        database left: agents' shifts and pauses, callers waiting for a callback (off for a
        demo that starts a fresh day on an old database)."""
        self.config = config
        self.resume = resume
        self.retention_first = RETENTION_FIRST
        """Seconds before the first round of ``records.keep_days`` (tests shorten it)."""
        self.config_path = config_path if config_path is not None else config.source
        self.environ = environ
        self.bus = EventBus()
        database = resolve(config, config.records.cdr_path)
        self.store = record_store(config)
        reader = self.store.reader()
        self.reads = reader if reader is not None else self.store
        """The store long reads use (reports, forecasts, desktops, a call's record): a
        connection of its own in a thread of its own (:meth:`RecordWriter.read`)."""
        self.lock: RecordLock | PostgresLock = RecordLock(database)
        if config.records.postgres is not None:
            from callcenter.records.postgres import PostgresLock

            self.lock = PostgresLock(config.records.postgres, password=postgres_password(config))
            # Where records the server would not take by a stop are kept for the next start.
            database = database.with_name("postgres")
        writer = RecordWriter(
            self.store,
            commit_interval=config.records.commit_interval,
            rescue=self._rescue(database),
            reader=reader,
        )
        self.recorder = CdrRecorder(self.store, writer=writer)
        self.reports = ReportReader(reader, writer, log_level=config.logging.level)
        """Month-long figures and forecasts, read in a process of their own."""
        self.bus.subscribe(self.recorder.on_event, kinds=(CallEvent,))
        self.shifts = ShiftRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.shifts.on_event, kinds=ShiftRecorder.kinds())
        self.callbacks = QueueCallbackRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.callbacks.on_event, kinds=QueueCallbackRecorder.kinds())
        self.campaign_records = CampaignRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.campaign_records.on_event, kinds=CampaignRecorder.kinds())
        self.dispositions = DispositionRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.dispositions.on_event, kinds=DispositionRecorder.kinds())
        self.surveys = SurveyRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.surveys.on_event, kinds=SurveyRecorder.kinds())
        self.voicemail_records = VoicemailRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.voicemail_records.on_event, kinds=VoicemailRecorder.kinds())
        self.voicemails = VoicemailInbox(self.store, self.recorder.writer, self.bus)
        self.bus.subscribe(self.voicemails.on_event, kinds=VoicemailInbox.kinds())
        self.desks = DeskRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.desks.on_event, kinds=DeskRecorder.kinds())
        self.notice_records = NoticeRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.notice_records.on_event, kinds=NoticeRecorder.kinds())
        self.number_lists = NumberListRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self.number_lists.on_event, kinds=NumberListRecorder.kinds())
        switches = SwitchRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(switches.on_event, kinds=SwitchRecorder.kinds())
        members = MemberRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(members.on_event, kinds=MemberRecorder.kinds())
        skills = SkillsRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(skills.on_event, kinds=SkillsRecorder.kinds())
        roster = RosterRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(roster.on_event, kinds=RosterRecorder.kinds())
        self._days = ScheduleChangeRecorder(self.store, self.recorder.writer)
        self.bus.subscribe(self._days.on_event, kinds=ScheduleChangeRecorder.kinds())
        self.queue_log: QueueLogRecorder | None = None
        if config.records.queue_log:
            self.queue_log = QueueLogRecorder(self.store, self.recorder.writer)
            self.bus.subscribe(self.queue_log.on_event, kinds=QueueLogRecorder.kinds())
        self.queue_log_file: QueueLogFile | None = None
        if config.records.queue_log_file is not None:
            self.queue_log_file = QueueLogFile(
                resolve(config, config.records.queue_log_file), self.store, self.recorder.writer
            )
        agents = [
            Agent(id=agent_id, name=a.name, device=a.device)
            for agent_id, a in config.agents.items()
        ]
        self.router = Router(
            agents,
            {name: list(q.agents) for name, q in config.queues.items()},
            wrapup={name: q.wrapup for name, q in config.queues.items()},
            bus=self.bus,
        )
        self.switchboard = Switchboard(config, self.router, self.bus)
        self.bus.subscribe(
            self._follow_roster,
            kinds=(AgentAdded, AgentRemoved, AgentScheduleChanged, QueueAdded, QueueRemoved),
        )
        self.switchboard.alerts.voicemails = lambda queue: self.voicemails.open.get(queue, 0)
        self.switchboard.alerts.oldest_voicemail = self.voicemails.oldest
        self.pbx: PBX = pbx if pbx is not None else build_pbx(config)
        self.switchboard.attach_pbx(self.pbx)
        self.lamps = MessageLamps(self.pbx, self.voicemails, lambda: self.config)
        self.bus.subscribe(self.lamps.on_event, kinds=MessageLamps.kinds())
        self.busy_lamps = BusyLamps(self.pbx, self.router, self.bus, lambda: self.config)
        self.stranded = StrandedLegs(self.pbx, config.pbx.stranded_sweep)
        self.switchboard.stranded = self.stranded
        assert self.switchboard.left_rooms is not None
        self.left_rooms: LeftRooms = self.switchboard.left_rooms
        self.campaigns = Campaigns(self.switchboard.dialler, self.bus)
        self.router.idle_listeners.append(self.campaigns.agent_free)
        self.switchboard.find_lead = self.campaigns.find_lead
        self.switchboard.last_agent_lookup = self._last_agent_in_records
        self.link = PBXLink(self.pbx.name)
        self._stop_requested = asyncio.Event()
        self.drain = Drain(self.switchboard, self.campaigns, self.bus, self._stop_requested.set)
        self.metrics = Metrics(self._service_level, self._short_abandon)
        self.metrics.subscribe(self.bus)
        self.today = Today(self._service_level, config.ivr.timezone, self._short_abandon)
        """The day's figures per queue and agent (MQTT's "today", ``GET /wallboard``)."""
        self.today.subscribe(self.bus)
        self.notices = NoticeBoard(self.bus)
        self._forecast_history: dict[
            tuple[object, ...], tuple[float, CallCenterConfig, list[summary.QueueFigures]]
        ] = {}
        """History figures forecasts read (``history_key``), kept FORECAST_HISTORY_KEEP s
        with the config they were read with: a supervisor's page reloaded, the API asked
        again, reads them once."""
        """What supervisors tell their agents (desktops, wallboard, MQTT)."""
        self.mqtt: MQTTPublisher | None = None
        if config.mqtt is not None:
            password = config.mqtt.password
            self.mqtt = MQTTPublisher(
                config.mqtt,
                self.router,
                service_level=self._service_level,
                timezone=config.ivr.timezone,
                password=password.get_secret_value() if password is not None else None,
                ca_file=resolve(config, config.mqtt.ca_file) if config.mqtt.ca_file else None,
                cert_file=(
                    resolve(config, config.mqtt.cert_file) if config.mqtt.cert_file else None
                ),
                key_file=resolve(config, config.mqtt.key_file) if config.mqtt.key_file else None,
                supervisors=self.switchboard.monitoring.snapshot,
                campaigns=self.campaigns.view,
                previews=self.switchboard.dialler.previews,
                holding=self.switchboard.holding,
                break_line=self.switchboard.breaks.place,
                switches=self.switchboard.switch_views,
                closed=self.switchboard.queue_closed,
                voicemails=self._voicemails_waiting,
                # Messages to one agent stay on their desktop: not on a wallboard's topic.
                notices=lambda: [
                    n.as_dict() for n in self.notices.standing(everyone=True) if not n.agents
                ],
                today=self.today,
            )
            self.bus.subscribe(self.mqtt.on_event, kinds=self.mqtt.kinds())
        self.webhooks = [
            Webhook(
                name,
                hook,
                ca_file=resolve(config, hook.ca_file) if hook.ca_file else None,
            )
            for name, hook in config.webhooks.items()
        ]
        for webhook in self.webhooks:
            self.bus.subscribe(webhook.on_event, kinds=webhook.kinds())
        live = self.mqtt.health if self.mqtt is not None else None
        self.api = ControlAPI(
            self.switchboard,
            config.api.host,
            config.api.port,
            reload=self.reload,
            drain=self.drain,
            link=self.link,
            records=self._records_health,
            metrics=self.metrics,
            mqtt=live,
            campaigns=self.campaigns,
            figures=self._read_figures,
            forecast=self._read_forecast,
            agent_calls=self._agent_calls,
            agent_records=self.recorder.written_for,
            voicemails=self.voicemails,
            notices=self.notices,
            call_record=self._call_record,
            number_calls=self._number_calls,
            evaluation_writer=self._write_evaluation,
            evaluations=self._evaluations_between,
            shifts=self._shifts_between,
            callback_record=self._callback_record,
            erase=self.erase,
            today=self.today,
            webhooks=lambda: [w.health() for w in self.webhooks],
            token=config.api.token.get_secret_value() if config.api.token else None,
            tokens={name: (t.sha256, tuple(t.allow)) for name, t in config.api.tokens.items()},
            cors_origins=config.api.cors_origins,
            audit=AuditTrail(self.store, self.recorder.writer, reads=self.reads),
            dispositions=self._dispositions_between,
        )
        self.metrics_api: ControlAPI | None = None
        if config.api.metrics_host is not None:
            self.metrics_api = ControlAPI(
                self.switchboard,
                config.api.metrics_host,
                config.api.metrics_port,
                link=self.link,
                records=self._records_health,
                metrics=self.metrics,
                mqtt=live,
                read_only=True,
            )
        self._stopped = asyncio.Event()
        self._stopping = False
        """Set at the start of :meth:`stop`: a call handed over from then on is left to the
        PBX untouched (the records are being closed)."""
        #: Why the daemon stopped on its own (another daemon took the PBX over); ``callcenter
        #: run`` raises it after the stop, for its exit status.
        self.exit_error: PBXClaimed | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._lock_keeper: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self.pbx.subscribe(self._on_pbx_event)

    @property
    def stop_requested(self) -> bool:
        """The daemon asked to stop by itself (a drain is over, another daemon took the PBX
        over): :meth:`run_until_signalled` returns."""
        return self._stop_requested.is_set()

    def _service_level(self, queue: str) -> float:
        qcfg = self.config.queues.get(queue)
        return qcfg.service_level if qcfg is not None else 0.0

    def _short_abandon(self, queue: str) -> float:
        qcfg = self.config.queues.get(queue)
        return qcfg.short_abandon if qcfg is not None else 0.0

    def _rescue(self, database: Path) -> RecordRescue | None:
        if str(database) == IN_MEMORY:
            return None  # it ends with the process: nothing to keep for a next start
        environ = self.environ if self.environ is not None else os.environ
        # systemd's RuntimeDirectory= (a tmpfs): room even when the records' disk is full.
        spare = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        return RecordRescue(database, self.store, spare_folder=spare or None)

    @property
    def agi_port(self) -> int:
        """The TCP port the FastAGI server listens on (useful when configured as 0)."""
        port = getattr(self.pbx, "agi_port", None)
        return int(port) if port is not None else self.config.pbx.agi.listen_port

    @property
    def outbound_socket_port(self) -> int | None:
        """The port FreeSWITCH's ``socket`` application connects to (None: not listening)."""
        port = getattr(self.pbx, "outbound_port", None)
        return int(port) if port is not None else None

    async def start(self) -> None:
        """Open the records, listen for the CLI, connect to the PBX and take calls.

        Raises ``RecordError`` (the record database cannot be opened, or another daemon
        runs on it), ``ListenError`` (a port is taken), ``PBXClaimed`` (another daemon drives
        the PBX), ``AuthenticationError`` (a wrong secret) or ``PBXConnectionError``;
        whatever had started is stopped again first.
        Calls are taken last, so that no call arrives at a daemon that then fails to start.
        """
        await asyncio.to_thread(self.lock.acquire)
        try:
            await self.recorder.start()
        except BaseException:
            self.lock.release()
            raise
        try:
            try:
                lost = await self.recorder.mark_lost()
            except RecordError as exc:
                lost = 0  # records are no reason to refuse calls; the writer retries its own
                log.error("cdr_lost_calls_not_marked", error=str(exc))
            try:
                await self.voicemails.load()
            except RecordError as exc:
                log.error("voicemails_not_counted", error=str(exc))
            if lost:
                log.warning(
                    "cdr_calls_lost",
                    count=lost,
                    hint="the daemon before this one died with calls in progress (no stop): "
                    "their records say hung_up_by lost, ending at their last checkpoint",
                )
            await self.api.start()
            if self.metrics_api is not None:
                await self.metrics_api.start()
            if self.mqtt is not None:
                await self.mqtt.start()
            for webhook in self.webhooks:
                await webhook.start()
            # Before anything is taken back or any call taken: another daemon may drive
            # this PBX (PBXClaimed).
            await self.pbx.claim()
            self.bus.publish(CallCentreStarted())
            if self.resume:
                # Queue members and skills first: the shifts resumed next join those queues.
                await self._restore_changes()
            resumed = await self._resume_shifts() if self.resume else set()
            if self.resume:
                await self._restore_switches()
                await self._restore_abandoned_places()
            for agent_id, agent in self.config.agents.items():
                if agent.logged_in and agent_id not in resumed:
                    self.router.login(agent_id, via="config")
            await self.pbx.start(self._handle_call)
        except BaseException:
            await self.api.stop()
            if self.metrics_api is not None:
                await self.metrics_api.stop()
            if self.mqtt is not None:
                await self.mqtt.stop()
            for webhook in self.webhooks:
                await webhook.close(drain=0)
            self.reports.close()
            await self.recorder.close()
            self.lock.release()
            raise
        if self.resume:
            await self._restore_callbacks()
        await self.campaigns.start(self.config, await self._campaign_leads())
        self.switchboard.in_background(self.switchboard.alerts.run(), "queue-alerts")
        self.switchboard.in_background(self.switchboard.agent_alerts.run(), "agent-alerts")
        self.switchboard.in_background(self.switchboard.shift_ends.run(), "shift-ends")
        self.switchboard.in_background(self.lamps.run(), "message-lamps")
        self.switchboard.in_background(self.busy_lamps.run(), "busy-lamps")
        self.switchboard.in_background(self.stranded.run(), "stranded-legs")
        self.switchboard.in_background(self.left_rooms.run(), "left-rooms")
        if self.queue_log_file is not None:
            self.queue_log_file.start()
        if database := self.config.records.postgres:
            self._lock_keeper = asyncio.create_task(
                self._keep_records_lock(database), name="records-lock"
            )
        self._retention = asyncio.create_task(self._purge_old_records(), name="records-retention")
        if self.config.records.checkpoint_seconds:
            self._checkpoints = asyncio.create_task(
                self._checkpoint_calls(self.config.records.checkpoint_seconds),
                name="records-checkpoints",
            )
        systemd.notify("READY=1", f"STATUS=taking calls from {self.pbx.name}")
        interval = systemd.watchdog_interval()
        if interval is not None:
            self._watchdog = asyncio.create_task(
                systemd.keep_watchdog_fed(interval), name="systemd-watchdog"
            )
        log.info(
            "daemon_started",
            pbx=self.pbx.name,
            agents=len(self.config.agents),
            queues=len(self.config.queues),
            api_port=self.api.port,
        )

    def _records_health(self) -> dict[str, Any]:
        """The records for ``/health`` and ``/status``: the writer's state, and the
        reports' (:meth:`ReportReader.health`)."""
        return {**self.recorder.writer.health(), "reports": self.reports.health()}

    async def _callback_record(self, call_id: str) -> QueueCallback | None:
        """A callback request's row, read on the records' reading thread."""
        read = functools.partial(self.reads.fetch_queue_callback, call_id)
        return await self.recorder.writer.read(read)

    async def erase(self, numbers: list[str], dry_run: bool = False) -> dict[str, Any]:
        """``POST /erasures``: erase ``numbers`` from the records and files (see
        :mod:`callcenter.records.erasure`), after the records of calls that just ended are
        written, on the record writer's thread; then from what the daemon keeps in memory
        (the agents' last calls, the events kept for ``GET /events``). EngineError for
        numbers that will not do; ErasureRefused while a call with one is in progress or
        other work waits on one."""
        numbers = erasure.as_typed(numbers)
        problems = erasure.check_numbers(numbers, erasure.centre_phones(self.config))
        if problems:
            raise EngineError("; ".join(problems))
        pattern = erasure.number_pattern(numbers)
        busy = self.switchboard.calls_with_number(pattern)
        if busy:
            raise ErasureRefused(
                [
                    f"call {call_id} with the number is in progress: erase once it ended"
                    for call_id in busy
                ]
            )
        writer = self.recorder.writer
        for key in writer.pending:
            await writer.wait_written(key)
        done = await writer.run(
            functools.partial(
                erasure.erase_records, self.store, numbers, dry_run=dry_run, via="api"
            )
        )
        folder = resolve(self.config, self.config.acd.recordings_folder)
        queue_log = self.queue_log_file.path if self.queue_log_file is not None else None
        await asyncio.to_thread(erasure.erase_files, done, folder, queue_log, dry_run=dry_run)
        if not dry_run:
            self.switchboard.dispositions.forget_numbers(pattern, done.tokens)
            self.notices.forget_numbers(pattern, done.tokens)
            if self.api.streams is not None:
                self.api.streams.forget(pattern)
            self.api.forget_calls_read()
        return done.as_dict()

    async def _read_figures(
        self, which: str, periods: summary.Periods, fcr_days: int
    ) -> list[dict[str, Any]]:
        """``GET /figures/...``: the figures, read in the reports' process."""
        config = self.config
        if which == "queues":
            if not config.records.queue_log:
                raise EngineError("queue figures read the queue_log: records.queue_log is off")
            levels = {name: q.service_level for name, q in config.queues.items()}
            short = {name: q.short_abandon for name, q in config.queues.items()}
            queues = await self.reports.read(
                summary.read_queue_figures,
                periods,
                levels,
                fcr_days=fcr_days,
                short_abandons=short,
            )
            return [f.as_dict() for f in queues]
        names = {aid: a.name for aid, a in config.agents.items() if a.name}
        agents = await self.reports.read(summary.read_agent_figures, periods, names)
        return [f.as_dict() for f in agents]

    async def _read_forecast(self, asked: ForecastAsked) -> WeekForecast:
        """``GET /figures/forecast``: the week's forecast, read in the reports' process,
        with the queues and schedules of now (the roster's changes too). The
        weeks of history are read once per FORECAST_HISTORY_KEEP seconds (days gone by
        do not change; a reload reads them again)."""
        config = self.switchboard.config
        key = history_key(asked)
        now = time.monotonic()
        kept = self._forecast_history.get(key)
        if kept is not None and kept[1] is config and now - kept[0] <= FORECAST_HISTORY_KEEP:
            history = kept[2]
        else:
            history = await self.reports.read(read_history, config, asked)
            self._forecast_history = {
                k: v
                for k, v in self._forecast_history.items()
                if now - v[0] <= FORECAST_HISTORY_KEEP
            }
            self._forecast_history[key] = (now, config, history)
        return await self.reports.read(read_forecast, config, asked, history)

    def _voicemails_waiting(self, queue: str) -> int | None:
        """Messages still to call back in ``queue`` (None: the queue has no box)."""
        settings = self.config.queues.get(queue)
        if settings is None or not settings.mailbox:
            return None
        return self.voicemails.open.get(queue, 0)

    async def _call_record(self, call_id: str) -> dict[str, Any] | None:
        """A call's CDR, read on the records' reading thread (None: none)."""
        return await self.recorder.writer.read(functools.partial(self.reads.fetch_cdr, call_id))

    async def _evaluations_between(
        self, since: datetime, until: datetime, agents: Collection[str] | None
    ) -> list[Evaluation]:
        """Scorecards made in a stretch of time, read on the records' reading thread."""
        read = functools.partial(self.reads.fetch_evaluations_between, since, until, agents=agents)
        return await self.recorder.writer.read(read)

    async def _dispositions_between(
        self, since: datetime, until: datetime
    ) -> list[DispositionRecord]:
        """The codes given in a stretch of time, read on the records' reading thread."""
        read = functools.partial(self.reads.fetch_dispositions_between, since, until)
        return await self.recorder.writer.read(read)

    async def _shifts_between(
        self, since: datetime, until: datetime
    ) -> tuple[list[Stretch], list[Stretch]]:
        """The agents' logged-in and paused stretches in a stretch of time (those still
        going included), read on the records' reading thread."""
        read = functools.partial(self.reads.fetch_shifts_between, since, until)
        return await self.recorder.writer.read(read)

    async def _write_evaluation(self, evaluation: Evaluation) -> bool:
        """Store a scorecard on the record writer's thread; False when it failed (logged)."""
        write = functools.partial(self.store.write_evaluation, evaluation)
        return bool(await self.recorder.writer.run(write))

    async def _number_calls(self, number: str, last: int) -> list[dict[str, Any]]:
        """A number's latest calls (CDR rows with their dispositions, oldest first), read on
        the records' reading thread."""
        read = functools.partial(self.reads.fetch_number_calls, number, last)
        return await self.recorder.writer.read(read)

    async def _agent_calls(self, agent: str, since: datetime, last: int) -> list[dict[str, Any]]:
        """An agent's latest calls for their desktop, read on the records' reading thread."""
        read = functools.partial(self.reads.fetch_agent_calls, agent, since, last)
        return await self.recorder.writer.read(read)

    async def _checkpoint_calls(self, seconds: float) -> None:
        """Every ``seconds`` (``records.checkpoint_seconds``, read at the start as all of
        ``records``), the calls in progress for as long written as they stand
        (:meth:`CdrRecorder.checkpoint`)."""
        while True:
            await asyncio.sleep(seconds)
            written = self.recorder.checkpoint(seconds)
            if written:
                log.debug("cdr_checkpoints", calls=written)

    async def _purge_old_records(self) -> None:
        """With ``records.keep_days`` (read at the start, as all of ``records``): delete
        older records :data:`RETENTION_FIRST` seconds after the start, then every
        :data:`RETENTION_INTERVAL` (on the record writer's thread, between its batches); a
        database that refuses is tried again at the next round. With
        ``acd.recordings_keep_days`` (as the config says at each round), older recordings
        go at the same times."""
        days = self.config.records.keep_days
        await asyncio.sleep(self.retention_first)
        while True:
            if days is not None:
                await self._purge_records(days)
            await self._purge_recordings()
            await asyncio.sleep(RETENTION_INTERVAL)

    async def _purge_records(self, days: int) -> None:
        before = datetime.now(UTC) - timedelta(days=days)
        try:
            purged = await self.recorder.writer.run(functools.partial(self.store.purge, before))
        except RecordError as exc:
            log.error("records_not_purged", keep_days=days, error=str(exc))
        else:
            log.info(
                "records_purged",
                keep_days=days,
                before=before.isoformat(timespec="seconds"),
                **{table: n for table, n in purged.items() if n},
            )

    async def _purge_recordings(self) -> None:
        acd = self.config.acd
        days = acd.recordings_keep_days
        if days is None:
            return
        before = datetime.now(UTC) - timedelta(days=days)
        folder = resolve(self.config, acd.recordings_folder)
        done = await asyncio.to_thread(purge_recordings, folder, before)
        log.info(
            "recordings_purged",
            keep_days=days,
            folder=str(folder),
            files=done.files,
            megabytes=round(done.bytes / 1e6, 1),
            failed=len(done.failed),
        )

    async def _keep_records_lock(self, database: str) -> None:
        """A PostgreSQL server restart drops the daemon's lock with its session: take it
        back, and say so loudly while it cannot be."""
        from callcenter.records.postgres import LOCK_CHECK, PostgresLock, describe

        lock = self.lock
        assert isinstance(lock, PostgresLock)
        lost = False
        while True:
            await asyncio.sleep(LOCK_CHECK)
            try:
                held = await asyncio.to_thread(lock.keep)
            except RecordError as exc:
                if not lost:
                    log.error("records_lock_lost", database=describe(database), error=str(exc))
                lost = True
                continue
            if not held or lost:
                log.warning("records_lock_taken_back", database=describe(database))
            lost = False

    async def _resume_shifts(self) -> set[str]:
        """Agents logged in when the previous daemon stopped (or crashed) stay logged in,
        on the pause they were on, in their team's line for a break in the order it had,
        and in wrap-up while their last call still waits for its disposition (which they
        can still give); returns who was resumed. A shift
        begun on an open line (``*70``) ends: the line was that daemon's call."""
        try:
            present = await self.recorder.writer.run(self.store.fetch_agent_presence)
        except RecordError as exc:
            log.error("agent_shifts_not_resumed", error=str(exc))
            return set()
        resumed: set[str] = set()
        lined: list[tuple[int, datetime, str, BreakLine]] = []
        for presence in present:
            if presence.agent not in self.config.agents:
                log.warning("agent_shift_dropped", agent=presence.agent, why="not in the config")
                self.recorder.writer.submit(
                    f"presence:{presence.agent}",
                    functools.partial(self.store.clear_agent_presence, presence.agent),
                )
                continue
            paused = None
            if presence.pause_reason is not None and presence.paused_at is not None:
                paused = (presence.pause_reason, presence.paused_at)
            owed = presence.owed
            desk = presence.device if self.config.agents[presence.agent].hot_desk else ""
            resume = functools.partial(
                self.router.resume,
                presence.agent,
                logged_in=presence.logged_in,
                paused=paused,
                via=presence.via_login,
                via_pause=presence.via_pause,
                owes_disposition=owed is not None,
            )
            try:
                resume(device=desk or None)
            except EngineError as exc:
                log.warning("agent_desk_not_resumed", agent=presence.agent, error=str(exc))
                resume()
            if owed is not None:
                self.switchboard.dispositions.owed_taken_back(owed.owed_by(presence.agent))
            if presence.via_login == LINE_VIA:
                # The open line was the previous daemon's call: the shift ends here (one
                # left in its room, with a caller or by a crash, is sent through *70
                # again once the agent is alone there: LeftRooms).
                log.info("agent_line_not_resumed", agent=presence.agent)
                self.router.logout(presence.agent, via="restart")
                continue
            resumed.add(presence.agent)
            if presence.line is not None and presence.pause_reason is None:
                line = presence.line
                lined.append((line.place, line.since, presence.agent, line))
        # Each team's line as it stood: by place, then who lined up first.
        for _place, _since, agent_id, line in sorted(lined):
            self.switchboard.breaks.restore(agent_id, line.team, line.reason, line.via)
        if lined:
            self.switchboard.breaks.let_next()
        return resumed

    async def _last_agent_in_records(self, number: str, queue: str, since: datetime) -> str | None:
        """The agent of ``number``'s last call of ``queue`` since ``since`` (queues'
        ``last_agent``), read on the records' reading thread."""
        return await self.recorder.writer.read(
            functools.partial(self.reads.fetch_last_agent, number, queue, since)
        )

    async def _restore(
        self,
        what: str,
        fetch: Callable[[], Sequence[_Row]],
        apply: Callable[[Sequence[_Row]], int],
    ) -> None:
        """Read what ops changed while the centre ran (``fetch``, in the record writer's
        thread) and hand it back to the switchboard (``apply`` returns how many it took;
        the rest name agents, queues or lists the config no longer has)."""
        try:
            rows = await self.recorder.writer.run(fetch)
        except RecordError as exc:
            log.error(f"{what}_not_restored", error=str(exc))
            return
        taken = apply(rows)
        if rows:
            log.info(f"{what}_restored", restored=taken, ignored=len(rows) - taken)

    async def _restore_changes(self) -> None:
        """Agents keep the skills and queues they were given, supervisors the desk they
        moved to, the IVR's number lists the numbers ops added, agents the notices still
        standing."""
        board = self.switchboard
        # The agents added first: the queues they were given name them.
        await self._restore(
            "added_agents",
            self.store.fetch_added_agents,
            lambda rows: board.roster.restore_added_agents(
                [(row.agent, row.values(), row.changed, row.via) for row in rows]
            ),
        )
        # Then the queues added: they name those agents; the kept members name them.
        await self._restore(
            "added_queues",
            self.store.fetch_added_queues,
            lambda rows: board.roster.restore_added_queues(
                [(row.queue, row.values(), row.changed, row.via) for row in rows]
            ),
        )
        # Days before yesterday no longer matter live (the reports read them themselves).
        recent = datetime.now(UTC).date() - timedelta(days=2)
        await self._restore(
            "schedule_changes",
            functools.partial(self.store.fetch_schedule_changes, recent),
            lambda rows: board.roster.restore_schedule_changes(
                [(row.agent, row.date(), row.ranges(), row.changed, row.via) for row in rows]
            ),
        )
        self.config = board.config

        def waiting(rows: Sequence[ScheduleRequest]) -> int:
            asked = [r for r in rows if r.status == "asked"]
            for row in asked:
                self._days.remember(row)
            answered = sorted(
                (r for r in rows if r.status in ("approved", "declined")),
                key=lambda r: r.decided or r.asked,
            )
            board.roster.remember_schedule_answers(
                [(r.agent, r.date(), r.ranges(), r.status) for r in reversed(answered)]
            )
            return board.roster.restore_schedule_requests(
                [(r.id, r.agent, r.date(), r.ranges(), r.note, r.asked) for r in asked]
            )

        await self._restore("schedule_requests", self.store.fetch_schedule_requests, waiting)
        await self._restore(
            "queue_members",
            self.store.fetch_member_changes,
            lambda states: board.roster.restore_member_changes(
                [(state.change(), state.changed, state.via) for state in states]
            ),
        )
        await self._restore(
            "agent_skills",
            self.store.fetch_agent_skills,
            lambda states: board.roster.restore_skill_changes(
                [(state.agent, dict(state.skills), state.changed, state.via) for state in states]
            ),
        )
        await self._restore(
            "number_lists",
            self.store.fetch_number_list_entries,
            lambda entries: board.lists.restore(
                [(e.number_list, e.number, e.added, e.via) for e in entries]
            ),
        )
        await self._restore("notices", self.store.fetch_notices, self.notices.restore)
        await self._restore(
            "supervisor_desks",
            self.store.fetch_supervisor_desks,
            lambda desks: board.restore_supervisor_desks(
                [(d.supervisor, d.device, d.since, d.via) for d in desks]
            ),
        )

    async def _restore_switches(self) -> None:
        """Switches stay as they were last flipped (those the config still has)."""
        try:
            states = await self.recorder.writer.run(self.store.fetch_switches)
        except RecordError as exc:
            log.error("switches_not_restored", error=str(exc))
            return
        board = self.switchboard
        for state in states:
            if state.name in self.config.ivr.switches and state.on:
                board.switches[state.name] = True
                board.switch_changes[state.name] = (state.changed, state.via)
                log.info("switch_restored", switch=state.name, since=state.changed.isoformat())

    async def _restore_abandoned_places(self) -> None:
        """Callers who hung up waiting shortly before the start keep their place
        (``resume_abandoned``): the CDRs say where they were."""
        window = max((q.resume_abandoned for q in self.config.queues.values()), default=0)
        if not window:
            return
        now = datetime.now(UTC)
        ended = now - timedelta(seconds=window)
        read = functools.partial(
            self.store.fetch_queue_visits, ended=ended, started=ended - VISIT_LOOKBACK
        )
        try:
            visits = await self.recorder.writer.run(read)
        except RecordError as exc:
            log.error("abandoned_places_not_restored", error=str(exc))
            return
        kept = self.switchboard.restore_abandoned_places(visits, now)
        if kept:
            log.info("abandoned_places_restored", kept=kept)

    async def _restore_callbacks(self) -> None:
        """Callers a previous daemon had promised a callback keep their place; callbacks
        agents set for a time on inbound calls are set again."""
        try:
            waiting = await self.recorder.writer.run(
                functools.partial(self.store.fetch_queue_callbacks, "waiting")
            )
        except RecordError as exc:
            log.error("callbacks_not_restored", error=str(exc))
            return
        if waiting:
            restored = self.switchboard.callbacks.restore(waiting)
            log.info("callbacks_restored", restored=restored, given_up=len(waiting) - restored)
        try:
            timed = await self.recorder.writer.run(self.store.fetch_timed_callbacks)
        except RecordError as exc:
            log.error("timed_callbacks_not_restored", error=str(exc))
            return
        now = datetime.now(UTC)
        for request in timed:
            qcfg = self.config.queues.get(request.queue)
            at = request.callback_at
            if at is None or qcfg is None or (now - at).total_seconds() > qcfg.callback_max_age:
                log.info("timed_callback_given_up", call_id=request.call_id, at=str(at))
                # Its request row, expired, says so for good: the next start leaves it be.
                origin = timed_callback_origin(request.call_id)
                expired = QueueCallback(
                    call_id=origin,
                    queue=request.queue,
                    number=request.number,
                    requested=at or now,
                    status="expired",
                    updated=now,
                )
                self.recorder.writer.submit(
                    f"queue_callback:{origin}",
                    functools.partial(self.store.write_queue_callback, expired),
                )
                continue
            self.switchboard.callbacks.promise(
                request.call_id, request.queue, request.number, at, agent=request.agent
            )

    async def _campaign_leads(self) -> list[LeadRecord] | None:
        """Where the campaigns' leads stood when the previous daemon stopped; None when the
        records cannot be read (dialling without them could call people twice). Also takes
        back the numbers whose people asked an agent never to be called again (always:
        that request outlives any fresh start) and the leads added while campaigns ran."""
        try:
            asked_not = await self.recorder.writer.run(self.store.fetch_asked_not)
            self.campaigns.asked_not.update(
                n for n in map(normalise_number, asked_not) if n is not None
            )
            # The leads added while a campaign ran are part of its list, a fresh start too.
            for added in await self.recorder.writer.run(self.store.fetch_added_leads):
                leads = self.campaigns.added.setdefault(added.campaign, {})
                leads.setdefault(added.lead, added.as_lead())
            if not self.resume:
                return []
            return await self.recorder.writer.run(self.store.fetch_campaign_leads)
        except RecordError as exc:
            log.error("campaign_leads_not_read", error=str(exc))
            return None

    def _on_pbx_event(self, event: PBXEvent) -> None:
        if isinstance(event, PBXDisconnected):
            self.link.down(event.reason)
            systemd.notify(f"STATUS={self.pbx.name} link lost ({event.reason}), reconnecting")
        elif isinstance(event, PBXConnected):
            self.link.up()
            # Whatever the PBX had may be gone (a restart) or stale: tell it again.
            self.lamps.reconnected()
            self.busy_lamps.reconnected()
            systemd.notify(f"STATUS=taking calls from {self.pbx.name}")
        elif isinstance(event, PBXClaimLost) and self.exit_error is None:
            message = f"another callcenter daemon took this PBX over: {event.other}"
            log.error("pbx_claim_lost", other=event.other)
            systemd.notify(f"STATUS={message}; stopping")
            self.exit_error = PBXClaimed(message)
            self._stop_requested.set()

    async def _handle_call(self, call: Call) -> None:
        if self._stopping:
            # Handed over while the daemon stops (a reconnection's adoption, a connection
            # accepted a moment before the listener closed): the records are closing, so the
            # call is not taken at all; it goes on in the dialplan, or waits parked for the
            # next daemon, as every call left at shutdown.
            log.info("call_left_to_pbx_while_stopping", call_id=call.info.call_id)
            await call.hand_back()
            return
        try:
            await self.switchboard.handle_call(call)
        finally:
            # The PBX gets the channel back at once: a slow disk must not hold channels in
            # AGI() or a socket while the record is written.
            await call.hand_back()
            # The record must be durable before the call's task ends.
            call_id = call.info.call_id
            try:
                await self.recorder.wait_written(call_id, DURABLE_WAIT)
            except Exception as exc:
                if self.recorder.queued(call_id):
                    # Queued, on its way to a disk slower than the calls: not lost.
                    log.warning(
                        "cdr_write_slow",
                        call_id=call_id,
                        waited=DURABLE_WAIT,
                        records_waiting=self.recorder.writer.waiting,
                    )
                else:
                    log.error("cdr_not_durable", call_id=call_id, error=str(exc))

    def _follow_roster(self, _event: EngineEvent) -> None:
        """An agent or a queue added or removed, or a day of a schedule changed, while the
        centre runs: the config every part reads."""
        self.config = self.switchboard.config

    async def reload(self) -> list[str]:
        """Re-read the config file: calls that arrive from now on use it.

        Calls already inside an IVR flow finish on the flow (and config) they started with.
        A file with any problem raises ConfigError (every issue as file:line) and the
        running config stays as it was. Returns the changed settings that wait for a
        restart (dotted paths under RESTART_SECTIONS; empty when none).
        """
        if self.config_path is None:
            raise ConfigError([])
        systemd.reloading()
        try:
            return await self._reload(self.config_path)
        finally:
            systemd.notify("READY=1")

    async def _reload(self, config_path: str | os.PathLike[str]) -> list[str]:
        new = await asyncio.to_thread(load_config, config_path, environ=self.environ)
        old = self.switchboard.file_config
        self.switchboard.apply_config(new)
        self.config = self.switchboard.config  # with the agents added while it runs
        await self.campaigns.apply_config(self.config, self._campaign_leads)
        self.bus.publish(ConfigReloaded())
        changed = sorted(
            name
            for name in set(old.flows) | set(new.flows)
            if old.flows.get(name) != new.flows.get(name)
        )
        log.info(
            "config_reloaded",
            path=str(self.config_path),
            flows_changed=changed,
            calls_keeping_old_config=len(self.switchboard.active),
        )
        pending = [
            path
            for section in RESTART_SECTIONS
            for path in section_changes(old, new, section)
            if path not in LIVE_SETTINGS
        ]
        if pending:
            log.warning(
                "config_needs_restart",
                settings=pending,
                hint="these settings take effect when the daemon restarts; the rest is live",
            )
        return pending

    async def stop(self, *, flush_timeout: float = 10.0) -> None:
        """Stop taking calls and flush records.

        Records the database has not taken ``flush_timeout`` seconds into the flush (a full
        disk) are kept beside it for the next start (:mod:`callcenter.records.rescue`);
        RecordError when even that failed. A second call does nothing.
        """
        if self._stopped.is_set():
            return
        self._stopping = True
        systemd.notify("STOPPING=1")
        await self.drain.close()
        if self._watchdog is not None:
            await cancel_and_wait(self._watchdog)
            self._watchdog = None
        if self._retention is not None:
            await cancel_and_wait(self._retention)
            self._retention = None
        if self._checkpoints is not None:
            await cancel_and_wait(self._checkpoints)
            self._checkpoints = None
        if self._lock_keeper is not None:
            await cancel_and_wait(self._lock_keeper)
            self._lock_keeper = None
        await self.api.stop()
        if self.metrics_api is not None:
            await self.metrics_api.stop()
        self.reports.close()
        await self.campaigns.stop()
        await self.switchboard.close()
        await self.pbx.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        for webhook in self.webhooks:
            await webhook.close()
        if self.queue_log is not None:
            self.queue_log.flush()
        try:
            await self.recorder.close(flush_timeout)
        finally:
            if self.queue_log_file is not None:
                await self.queue_log_file.stop()
            self.lock.release()
        self._stopped.set()
        log.info("daemon_stopped")

    async def run_until_signalled(self) -> None:
        """Run until SIGTERM/SIGINT, until a drain is over (SIGQUIT or ``callcenter
        drain``), or until another daemon takes the PBX over (then :attr:`exit_error` says
        so); SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        stop = self._stop_requested

        def on_hup() -> None:
            async def do_reload() -> None:
                try:
                    await self.reload()
                except ConfigError as exc:
                    log.error("config_reload_refused", issues=[str(i) for i in exc.issues])

            task = loop.create_task(do_reload())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        def on_quit() -> None:
            self.drain.start(self.config.runtime.drain_timeout)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop.add_signal_handler(signal.SIGQUIT, on_quit)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            await self.stop()
