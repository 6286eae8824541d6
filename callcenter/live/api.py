"""The control API: a small HTTP/1.1 JSON server on 127.0.0.1 the CLI and tools talk to.

Routes (all JSON)::

    GET  /health                          200 {"status": "ok", "pbx": {...}, "records": {...}}
                                          while calls can be taken, 503 {"status": "pbx link
                                          down", ...} while the PBX link is down (for
                                          monitoring)
    GET  /status                          the PBX link, records, agents, queues, active calls
                                          (with their IVR variables: the agent's screen pop),
                                          supervisors, campaigns, the notices standing;
                                          each queue and agent with "today"
                                          (callcenter.live.today, as MQTT's), each queue
                                          with its voicemails and oldest_voicemail (s),
                                          and "left_behind" (agents' rooms an earlier
                                          daemon left: callcenter.pbx.stranded)
    GET  /metrics                         live figures for Prometheus (text exposition format,
                                          see :mod:`callcenter.live.metrics`)
    GET  /figures/outcomes?since=&until=&tz=&per=agent|queue|campaign&team=
                                          the codes given (dispositions) counted per agent
                                          (queue, campaign): {"rows": [{"agent", "code",
                                          "calls", "percent"}]}, as report --outcomes
    GET  /figures/forecast?week_of=&weeks=&by=&target=&shrinkage=&queue=&tz=&shifts=&trend=
                                          the week to come (next week by default) from the
                                          same weekdays of the 4 (weeks) before, as
                                          `callcenter forecast --json`: {"week", "history",
                                          "rows": [{"period", "queue", "calls",
                                          "aht_seconds", "agents_needed",
                                          "agents_to_schedule", "agents_scheduled", "gap"}],
                                          "nothing_for", "no_history", "patience_seconds",
                                          "accuracy" (days lived), "today" (so far),
                                          "trend" (with trend=true: per queue
                                          "weekly_change_percent", "factor"),
                                          with shifts=8h,4h "shift_plan": {"shifts":
                                          [{"queue", "day", "start", "end", "agents"}],
                                          "hours": {queue: {"planned", "needed"}}}}
    GET  /audit?since=&until=&who=&tz=    the audit trail (today by default; scope admin):
                                          {"since", "until", "rows": [{"at", "who",
                                          "peer", "method", "route", "status", "detail"}]}:
                                          every POST and every read of a recording, a
                                          voicemail or a number's calls
    GET  /figures/queues?since=&until=&by=&tz=&fcr_days=
    GET  /figures/agents?since=&until=&by=&tz=&team=
                                          figures over a stretch of time from the records, as
                                          `callcenter report --queues|--agents --json` (since
                                          today, until now, by 15min|30min|hour|day|week|
                                          month|total, tz ivr.timezone): {"figures":
                                          "queues", "since": ...,
                                          "rows": [{"period": ..., "queue": ...}]}
    POST /agents/{id}/login               {} or {"device": "PJSIP/1010"}: at that phone for
                                          the shift (agents with hot_desk; 403 otherwise,
                                          409 when another agent works there); "paused":
                                          "training" logs in paused for that reason
    POST /agents/{id}/logout              {}
    POST /agents/{id}/pause               {"reason": "lunch"} (and "queue": "sales": paused
                                          in that queue only, app_queue's QueuePause)
    POST /agents/{id}/unpause             {} (or {"queue": "sales"})
    POST /agents/{id}/ready               {}: wrap-up over before its time (409 when the
                                          agent is not in wrap-up)
    POST /agents/{id}/break-place         {"place": 1}: the agent waiting for a break moves
                                          to that place of their team's line (1: next;
                                          scope supervise; 409 when not in a line):
                                          {"agent", "break_line", "lines"}
    POST /agents/{id}/transfer            {"to": "supervisor" | "<supervisor or agent id>"}
                                          or {"queue": "<queue>", "priority": 0}; "note":
                                          what the next agent reads (transfer_note)
    POST /agents/{id}/dial                {"number": "0612345678", "queue": "sales"}
                                          ("last": their last call's number; "data":
                                          {"ticket": "T-42"}, variables of the call for
                                          the agent's screen and the CDR): the
                                          agent's phone rings (or their open line is
                                          used), then the number (acd.dial_out; queue:
                                          default the agent's first); {"dial_id", "agent",
                                          "number", "queue"} once under way (409: not
                                          ready, a number not allowed); AgentDialAnswered or
                                          AgentDialFailed follow on webhooks and MQTT
    POST /agents/{id}/hold                {}: the caller hears music, the agent nothing;
    POST /agents/{id}/unhold              {}: back together (409 when not on hold)
    POST /agents/{id}/consult             {"to": "supervisor" | "<supervisor or agent id>"}:
                                          the caller holds (music) while the agent talks to
                                          the one rung; then
    POST /agents/{id}/consult-complete    {}: hand the caller over (attended transfer),
    POST /agents/{id}/consult-join        {}: caller, agent and colleague talk together,
    POST /agents/{id}/consult-cancel      {}: back to the caller alone
    POST /agents/{id}/help                {}: the queue's supervisor is rung to whisper on
                                          the agent's call (409 when busy on another one)
    POST /agents/{id}/record              {}: record the call from now on (on demand):
                                          {"agent", "call_id", "recording": <file>} (409 when
                                          recorded already or not on a call)
    POST /agents/{id}/pause-recording     {}: the call's recording records silence (card
    POST /agents/{id}/resume-recording    details) until resumed or the agent's talk ends
    POST /agents/{id}/join                {"queue": "support", "penalty": 1}: a member of
                                          that queue from now on (penalty: the config's
                                          if not given); kept across reloads and restarts
    POST /agents/{id}/leave               {"queue": "support"}: no longer offered its
                                          callers; {"agent", "queue", "member", "changed",
                                          "queues": [...]} (404: unknown agent or queue)
    POST /agents/{id}/block               {}: the number of the agent's call (or last call) on
                                          acd.agent_block_list; {"agent", "number",
                                          "number_list", "added"}
    POST /agents/{id}/profile             {"profile": "billing-fr"}: the profile's queues (and
                                          no other) and skills from now on; {"agent",
                                          "profile", "joined", "left", "skills_changed",
                                          "queues"}
    POST /agents/{id}/skills              {"skills": {"fr": 7, "billing": 3}}: the agent's
                                          skills from now on (for waiting callers too),
                                          kept across reloads and restarts; {"skills": null}
                                          gives back the config's
    GET  /agents/{id}/script              the script of the call the agent is offered or
                                          talks on (or of a preview's lead), filled in:
                                          {"agent", "call_id", "script", "title", "text",
                                          "missing": [...]}; 404 when none
    GET  /agents/{id}/schedule            the agent's days (?since=2026-12-08, today where
                                          their schedule is; ?days=14): {"agent", "days":
                                          [{"day", "hours", "changed"}]}
    POST /agents/{id}/schedule            {"day": "2026-12-08", "hours": ["10:00-18:00"]}:
                                          that day's hours instead of the schedule's (a
                                          swapped shift; []: a day off; null: as the
                                          schedule says), kept across reloads and restarts;
                                          scope supervise
    GET  /schedule-requests               the agents' requests for a day of their schedule
                                          waiting for a supervisor's word
    POST /teams/{team}/schedule           {"day": "2026-12-08", "hours": ["09:00-12:00"]}:
                                          that day for every agent of the team ([]: off,
                                          null: as planned); scope supervise
    POST /schedule-requests               {"agent": "1002", "day": "2026-12-08", "hours":
                                          [] (a day off) or ["10:00-18:00"], "note": ...}:
                                          an agent asks (scope agents); {"id", ...}
    POST /schedule-requests/{id}/approve  {"by": "2000"}: the day changes as asked (scope
    POST /schedule-requests/{id}/decline  supervise); declined, nothing changes
    POST /schedule-requests/{id}/withdraw {"agent": "1002"}: the agent takes their request back
                                          before it is answered (scope agents)
    POST /supervisors/{id}/listen         {"agent": "1001"}: ring the supervisor's phone and,
    POST /supervisors/{id}/whisper        once answered, join the agent's call in that mode
    POST /supervisors/{id}/barge          (again for the same agent: switch mode, no ring);
                                          {"supervisor": "2000", "monitoring": {"agent": ...,
                                          "call_id": ..., "mode": ..., "state": "ringing"}}
    POST /supervisors/{id}/desk           {"device": "PJSIP/2010"}: the supervisor works at
                                          that phone (supervisors.<id>.hot_desk): monitoring
                                          rings it, its feature codes are theirs; {"device":
                                          null}: their own phone again
    POST /supervisors/{id}/stop           {}: end it; "monitoring" is what it was, or null
    POST /supervisors/{id}/takeover       {}: the caller is put through to the supervisor
                                          (their phone rings again) and the agent is free
    GET  /campaigns                       {"campaigns": [{"id": ..., "state": "running",
                                          "leads": 120, "pending": 80, "answered": 30 ...}]}
    POST /campaigns/{id}/pause            {}: no new dial (those waiting for an agent are
    POST /campaigns/{id}/resume           withdrawn; a lead's phone that rings goes on)
    POST /campaigns/{id}/leads            {"number": "5551009", "id": "c-9", "timezone":
                                          "Europe/Paris", "data": {"name": "Ada"}}: a lead
                                          added while the campaign runs (as a lead file's
                                          line; id: the number when left out), kept across
                                          restarts; 409 when the campaign has that id
    POST /campaigns/{id}/recycle          {"reasons": ["busy", "no-answer"]}: the failed
                                          leads (whose last try failed so; no reasons:
                                          every one) are tried again, tries afresh;
                                          {"campaign": ..., "recycled": N}
    POST /campaigns/{id}/leads/{lead}/remove  {}: the lead is taken off (never called
                                          again; skipped, result removed); 409 while
                                          it is dialled or once answered
    POST /callbacks                       {"number": "0612345678", "queue": "sales",
                                          "priority": 0, "at": null, "data": {"topic":
                                          "invoice 1234"}}: call that number back
                                          through the queue (a web callback request): it
                                          keeps a place there now (or from "at",
                                          "2026-12-07T10:00", ivr.timezone unless it says
                                          its offset); {"call_id": "web-...", "position": 3,
                                          "due": null, "new": true}; asking again while it
                                          waits gives the same request (new false). 403: a
                                          number acd.callback_allow does not list; 409:
                                          draining or the queue full. "data": variables
                                          the callback call gets (the agent's screen,
                                          the CDR's ivr_variables)
    GET  /callbacks/{id}                  one request: as listed below with its "status"
                                          (waiting, scheduled, dialling), or, once over, its
                                          record's (answered, failed, expired, cancelled)
    GET  /callbacks/slots?queue=&date=    {"slots": [{"start", "taken", "free"}]}: the
                                          room left per slot of a day while the queue is
                                          open (queues.<q>.callback_slots)
    GET  /callbacks                       {"callbacks": [{"call_id", "queue", "number",
                                          "position", "priority", "dialling", "due"}]}:
                                          every callback request waiting (web, key, timed),
                                          then those asked for a later time
    POST /callbacks/{id}/cancel           {}: withdraw it (its record says cancelled);
                                          404 when none waits, 409 while it is dialled
    GET  /calls?number=0612345678&last=10 {"number", "calls": [{"call_id", "start",
                                          "direction" (in, out), "queue", "agent",
                                          "outcome" (answered, abandoned, voicemail, no
                                          agent), "wait_seconds", "talk_seconds", "code",
                                          "note"}]}: a caller's history, newest first
                                          (the CDRs, as the records hold the number)
    GET  /calls/{id}/recording            the call's recording (its CDR's recordingfile,
                                          served from acd.recordings_folder only)
    POST /queues                          {"queue": "vip", "agents": ["1001"], "strategy":
                                          "ringall", ...}: a queue added while the centre
                                          runs (settings as queues.<name>), kept across
                                          reloads and restarts; callers reach it through
                                          queue_from, transfers, callbacks (scope admin)
    POST /queues/{name}                   change an added queue's settings (null: back to
                                          the default); POST /queues/{name}/remove removes
                                          it once nobody waits; GET /queues/added lists them
    GET  /queues/{name}/wait              {"queue", "open", "closed_because", "opens_at",
                                          "waiting", "agents_free", "agents_staffed",
                                          "expected_wait_seconds" (null: nothing to go
                                          on), "said" ("about 3 minutes"), "callbacks"}:
                                          what a caller calling now would wait (a web
                                          page's box; scope read or callbacks)
    GET  /queues/{name}/callers           {"queue", "callers": [{"call_id", "position",
                                          "kind" (caller, callback, campaign, agent-dial),
                                          "number", "name", "priority", "waited", "state"
                                          (waiting, ringing), "agents", "stage", "skills",
                                          "withdrawable"}]}: who waits, in queue order
    POST /calls/{id}/priority             {"priority": 5}: served before callers of lower
                                          priority (app_queue's QueueChangePriorityCaller);
                                          {"call_id", "queue", "priority", "old_priority",
                                          "position"}
    POST /calls/{id}/withdraw             {"to": "queue", "queue": "support"} (or voicemail
                                          + box, flow + flow, callback, hangup; "prompt"
                                          first): the caller leaves their queue for there
                                          (app_queue's QueueWithdrawCaller; queue_log
                                          WITHDRAW); 409 while an agent rings for them
    POST /calls/{id}/give                 {"agent": "1002"}: that agent is rung for the
                                          caller now, ahead of the queue's order, skills and
                                          stages (409: not free, not a member, a ring
                                          already under way); unanswered, the caller waits on
    GET  /voicemails                      {"voicemails": [{"id", "queue", "box", "number",
                                          "name", "seconds", "left_at", "status", "agent",
                                          "outcome", "tries", "last_try", "tried_at"}]}:
                                          the messages of the queues' boxes
                                          (queues.<q>.mailbox) still to deal with, oldest
                                          first (?queue= for one queue)
    GET  /voicemails/{id}                 one message, whatever became of it
    GET  /voicemails/{id}/audio           the message's sound file as the PBX wrote it
    POST /voicemails/{id}/take            {"agent": "1001"}: theirs to call back (409 when
                                          another agent's or dealt with)
    POST /voicemails/{id}/call-back       {"agent"}: the agent dials the caller (as
                                          /agents/{id}/dial, through the message's queue,
                                          with voicemail=<id> on the call); the message is
                                          done (called-back) once the caller answers, else
                                          it stays theirs with its tries counted
    POST /voicemails/{id}/done            {"agent"}: dealt with otherwise
    POST /voicemails/{id}/release         {"agent"} or {}: put back for another agent
    GET  /notices                         {"notices": [{"id", "text", "by", "teams",
                                          "agents", "posted", "until", "read_by"}]}
                                          (read_by: agent -> when a message's agent
                                          first saw it): the notices for agents
                                          standing, newest first (?team= those an agent
                                          of that team sees)
    POST /notices                         {"text": "Team meeting at 15:00", "teams":
                                          ["night"] (none: everyone), "minutes": 60}: shown
                                          on the agents' desktops and the wallboard
    POST /notices/{id}/take-down          before its time
    GET  /numbers                         {"lists": [{"name": "blocked", "config": [...],
                                          "added": [{"number", "since", "via"}]}]}: the IVR's
                                          number lists (ivr.number_lists)
    POST /numbers/{list}/add              {"number": "0612345678"} (or a pattern "_0900X."):
                                          on the list for the next calls (flows' caller_list
                                          cases), kept across reloads and restarts
    POST /numbers/{list}/remove           {"number": ...}: off it again (409 for a number
                                          the config file lists: edit the file)
    POST /reload                          re-read the config file (as SIGHUP does):
                                          {"reloaded": true, "needs_restart": ["api.port"]}
    POST /drain                           {"timeout": 600} (default runtime.drain_timeout):
                                          take no new calls, stop once those in progress
                                          are over (as SIGQUIT does): {"drain": {"since":
                                          ..., "stops_by": ..., "calls": 3, "dials": 0,
                                          "refused": 0}}; again: a new timeout
    POST /drain/cancel                    {}: take calls again (409 when not draining)
    GET  /switches                        {"switches": [{"name": "storm", "description":
                                          ..., "on": false, "since": ..., "via": ...}]}
    POST /switches/{name}/on              {}: flows' `switch: name` cases hold from now on
    POST /switches/{name}/off             {}: they no longer do
    POST /erasures                        {"numbers": ["+4930123456"], "dry_run": false}: a
                                          caller's right to erasure, as ``callcenter erase``
                                          (callcenter.records.erasure): {"erased": {number:
                                          token}, "calls", "rows": {table: n}, "recordings",
                                          "queue_log_file_lines", "kept", "failed"}; 409
                                          with "holds" while work waits on a number (a call
                                          in progress, a callback waiting ...): nothing
                                          erased
    GET  /wallboard                       an HTML page for the floor's screen
                                          (callcenter.live.wallboard; ?queues=a,b,
                                          ?team=night, ?refresh=5, ?token=)
    GET  /desktop                         the agent desktop: an HTML page per agent, who
    POST /desktop/sign-in                 signs in with their id and PIN (a cookie) and
    POST /desktop/act                     presses buttons (forms posting agent actions):
    POST /desktop/sign-out                callcenter.live.desktop (no token: the PIN is
    GET  /desktop/dial, /desktop/callback its key; off with api.desktop: false)
    GET  /events                          the engine's events live, as Server-Sent Events
                                          (?agent=1001, ?queue=sales, ?events=A,B;
                                          Last-Event-ID or ?last_id= resumes): see
                                          callcenter.live.stream

With ``api.token`` set, every route but ``GET /health``, ``GET /metrics`` and the desktop's
needs the header ``Authorization: Bearer <token>`` (401 without it).

A ``POST`` from a browser's page of another site (an ``Origin`` neither this server's, by
``Host`` or ``X-Forwarded-Host``, nor one of ``api.cors_origins``) is refused with 403: a
form needs no preflight, so any page could otherwise make a browser on this machine act.

Errors come back as ``{"error": "..."}`` with status 400 (bad request), 403 (a supervisor
monitoring an agent outside their ``teams``), 404 (unknown agent, supervisor or route),
409 (not possible in the agent's current state, such as monitoring an agent who is not on a
call) or 504 (an action the PBX has not finished within :data:`API_ACTION_LIMIT` seconds:
it goes on, and ``api_action_ended_late`` logs its end).

``pbx`` in both is :meth:`PBXLink.as_dict`: ``{"name": "asterisk", "connected": true,
"since": "2026-12-05T01:02:03.456+00:00"}``, plus ``"reason"`` while it is down.
``records`` is :meth:`RecordWriter.health <callcenter.records.writer.RecordWriter.health>`:
``{"ok": true, "unwritten": 0}``; while the database refuses writes (a full disk) ``ok`` is
false, with ``failing_since`` and ``error``. Calls are still taken then (status 200): the
records wait in memory, and a monitor should alert on ``records.ok``. ``records.reports``
is :meth:`ReportReader.health <callcenter.records.reports.ReportReader.health>`: where
long reports are read (``process`` and its ``worker`` pid, or ``writer thread``), how many
are being read, ``read`` and ``failed`` since the start, the last failure and its
``error``.
With an ``mqtt:`` section, ``mqtt`` is :meth:`MQTTPublisher.health
<callcenter.live.mqtt.MQTTPublisher.health>`: ``{"broker": "127.0.0.1:1883", "connected":
true, "since": ..., "error": null, "published": 1234, "dropped": 0}``; a broker that is down
never makes ``/health`` fail (live output is best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import ValidationError

from callcenter import shift_plan
from callcenter.acd.agent import AgentState
from callcenter.acd.rules import EXTERNAL_TECH
from callcenter.acd.schedule import Schedule, day_hours, schedule_of, scheduled_now
from callcenter.config import CallCenterConfig
from callcenter.config.models import QueueExit
from callcenter.consult import consult_view
from callcenter.drain import Drain
from callcenter.errors import (
    CallbackSlotFull,
    CallCenterError,
    ConfigError,
    DestinationNotAllowed,
    EngineError,
    ErasureRefused,
    InvalidAgent,
    InvalidQueue,
    ListenError,
    NotPermitted,
    RecordError,
    UnknownAgent,
    UnknownCall,
    UnknownCallback,
    UnknownLead,
    UnknownNotice,
    UnknownNumberList,
    UnknownQueue,
    UnknownSupervisor,
    UnknownVoicemail,
)
from callcenter.events import CallEvaluated, EvaluationReplied
from callcenter.ivr.calendar import timezone_problem
from callcenter.ivr.values import render_url
from callcenter.live import desktop, wallboard
from callcenter.live.metrics import Metrics
from callcenter.live.notices import NoticeBoard
from callcenter.live.scripts import call_variables, script_of_call, script_of_preview
from callcenter.live.stream import EventStreams, StreamFilter
from callcenter.live.today import AgentDay, Today
from callcenter.outbound.campaign import Campaigns
from callcenter.outbound.leads import MAX_PRIORITY, RESERVED_COLUMNS, Lead, normalise_number
from callcenter.pbx.stranded import left_behind
from callcenter.records.adherence import adherence_days
from callcenter.records.audit import AuditTrail, detail_of
from callcenter.records.callbacks import QueueCallback
from callcenter.records.dispositions import OUTCOME_KEYS, DispositionRecord, outcome_rows
from callcenter.records.evaluations import REPLIES, Evaluation, form_for, score, target_of
from callcenter.records.forecast import INTERVALS, ForecastAsked, WeekForecast, next_monday
from callcenter.records.history import history
from callcenter.records.pauses import PauseTotal, pause_totals
from callcenter.records.summary import FCR_DAYS, GROUPINGS, Periods, Stretch, parse_when
from callcenter.records.voicemails import VoicemailInbox, VoicemailMessage
from callcenter.supervision.monitor import MONITOR_MODES
from callcenter.switchboard import ActiveCall, Switchboard
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

MAX_BODY = 64 * 1024
_CALLER_ACTIONS: Final = frozenset({"priority", "withdraw", "give"})
MAIN_TOKEN: Final = "token"
"""Who asked, for a request made with ``api.token`` (which may do everything)."""
LOCAL: Final = "local"
"""Who asked, when the API needs no token (a loopback listener without ``api.token``)."""
UNKNOWN: Final = "unknown"
"""Who asked, for a request refused before it said (a wrong token, a desktop signed out)."""
_ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("callcenter_api_actor", default="")
"""Who the request being served comes from (each connection is a task of its own)."""
_AUDITED_READS: Final = frozenset({"/calls", "/desktop/recording", "/desktop/voicemail/audio"})
"""GET routes that read a person's history or voice (with the sound routes)."""


def _audited(request: _Request) -> bool:
    """Whether ``request`` goes into the audit trail: every change (POST) and every read
    of a person's voice or history."""
    if request.method == "POST":
        return True
    route = request.path.split("?", 1)[0]
    return request.method == "GET" and (route in _AUDITED_READS or bool(_SOUND.fullmatch(route)))


_POST_SCOPES: Final = {
    "callbacks": "callbacks",
    "agents": "agents",
    "supervisors": "supervise",
    "calls": "queues",
    "voicemails": "voicemails",
}


def _schedule_today(config: CallCenterConfig, agent_id: str) -> str | None:
    """``agent_id``'s scheduled stretches today, as their desktop says them ("" on a day
    off); None when they have no schedule."""
    schedule = schedule_of(config, agent_id)
    if schedule is None:
        return None
    return _hours_of(schedule, datetime.now(schedule.zone).date())


def _hours_of(schedule: Schedule, day: date) -> str:
    """The stretches of ``day`` as people write them: ``08:00-12:00, 13:00-24:00``."""
    return ", ".join(
        f"{start:%H:%M}-{'24:00' if end.date() > day else f'{end:%H:%M}'}"
        for start, end in schedule.day_stretches(day)
    )


def _lead_of(body: Mapping[str, Any]) -> Lead:
    """A lead from ``{"number": ..., "id": ..., "timezone": ..., "priority": 0, "data":
    {...}}`` as a lead file's line would give it; HTTPError 400 naming what is wrong."""
    raw, lead_id = body.get("number"), body.get("id")
    number = normalise_number(raw) if isinstance(raw, str) else None
    if number is None:
        raise HTTPError(400, f'"number": {raw!r} is not a phone number, such as "0612345678"')
    if lead_id is None:
        lead_id = number
    if not isinstance(lead_id, str) or not _LEAD_ID.fullmatch(lead_id):
        raise HTTPError(400, '"id": letters, digits and ._:@+- only, 1 to 64 of them')
    zone = body.get("timezone", "")
    if not isinstance(zone, str) or (zone and timezone_problem(zone) is not None):
        raise HTTPError(400, f'"timezone": {zone!r} is no time zone, such as "Europe/Paris"')
    data = body.get("data", {})
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and _LEAD_COLUMN.fullmatch(k) and isinstance(v, str | int | float)
        for k, v in data.items()
    ):
        raise HTTPError(400, '"data": the lead file\'s columns, such as {"name": "Ada"}')
    reserved = set(RESERVED_COLUMNS) & set(data)
    if reserved:
        raise HTTPError(400, f'"data" cannot hold {", ".join(sorted(reserved))}: give them apart')
    priority = body.get("priority", 0)
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not -MAX_PRIORITY <= priority <= MAX_PRIORITY
    ):
        raise HTTPError(400, '"priority": a whole number, -1000..1000 (higher: called first)')
    pairs = tuple((str(k), str(v)) for k, v in data.items())
    return Lead(lead_id, number, pairs, timezone=zone, priority=priority)


_LEAD_ID: Final = re.compile(r"[A-Za-z0-9._:@+-]{1,64}")
_LEAD_COLUMN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _roster_answer(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """What an add, change or remove of the roster answers: settings the config cannot
    hold are 400, a name nobody added 404, a name taken or in use 409."""
    try:
        return call()
    except (InvalidAgent, InvalidQueue) as exc:
        raise HTTPError(400, str(exc)) from None
    except (UnknownAgent, UnknownQueue) as exc:
        raise HTTPError(404, str(exc)) from None
    except EngineError as exc:
        raise HTTPError(409, str(exc)) from None


@dataclass(frozen=True, slots=True)
class _DayStretches:
    """The day's logged-in and paused stretches of every agent, as read for the desktops
    (``pauses_of``: the pauses by agent)."""

    since: datetime
    until: datetime
    sessions: list[Stretch]
    pauses: list[Stretch]
    pauses_of: dict[str, list[Stretch]]


def _day_and_hours(body: Mapping[str, Any]) -> tuple[date, list[str] | None]:
    """``{"day": "2026-12-08", "hours": ["10:00-18:00"]}`` checked: the day, and its hours
    (``[]``: a day off; None: as the schedule says); HTTPError 400 naming what is wrong."""
    day, hours = body.get("day"), body.get("hours", ...)
    if not isinstance(day, str) or hours is ...:
        raise HTTPError(
            400,
            'say which day and its hours: {"day": "2026-12-08", "hours": ["10:00-18:00"]} '
            "([]: a day off, null: as the schedule says)",
        )
    when = _iso_day(day)
    try:
        return when, None if hours is None else list(day_hours(hours))
    except InvalidAgent as exc:
        raise HTTPError(400, str(exc)) from None


def _iso_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPError(400, f"{text!r} is not a day: 2026-12-08") from None


def _team_of(config: CallCenterConfig, agent_id: str) -> str | None:
    agent = config.agents.get(agent_id)
    return agent.team if agent is not None else None


def _name_of(config: CallCenterConfig, agent_id: str) -> str:
    agent = config.agents.get(agent_id)
    return (agent.name if agent is not None else None) or agent_id


def wait_said(seconds: int | None, *, staffed: int, closed: bool) -> str:
    """A wait as a web page says it: "no wait", "under a minute", "about 4 minutes";
    "closed" / "no agent at work" / "unknown" when there is no wait to say."""
    if closed:
        return "closed"
    if staffed == 0:
        return "no agent at work"
    if seconds is None:
        return "unknown"
    if seconds == 0:
        return "no wait"
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return "about a minute" if minutes == 1 else f"about {minutes} minutes"


def _number(
    params: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    whole: bool = False,
) -> float:
    """Query parameter ``name`` as a number from ``low`` to ``high`` (``default`` when it is
    not given); 400 otherwise."""
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(int(text)) if whole else float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise HTTPError(400, f"{name}: {kind} from {low:g} to {high:g}, not {text!r}")
    return value


def _flag(params: Mapping[str, str], name: str) -> bool:
    """Query parameter ``name`` as yes or no (``true``/``false``, ``1``/``0``; no when it is
    not given); 400 otherwise."""
    text = params.get(name, "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise HTTPError(400, f"{name}: true or false, not {params[name]!r}")


def scope_of(method: str, route: str) -> str:
    """What a request needs a named token to be allowed (``api.tokens.<name>.allow``): a
    GET ``read`` (a sound file ``recordings``), a POST its area's scope, else ``admin``."""
    first = route.strip("/").partition("/")[0]
    if method == "GET" and route.rstrip("/") == "/audit":
        return "admin"  # who did what is the administrators' to read
    if method == "GET" and _WEB_READS.fullmatch(route.rstrip("/")):
        return WEB_READ  # a callback form's backend reads these too
    if method == "GET":
        return "recordings" if _SOUND.fullmatch(route) else "read"
    if first == "calls" and route.rstrip("/").endswith("/evaluation"):
        return "supervise"  # quality scoring is the supervisors'
    if first == "calls" and route.rstrip("/").endswith("/evaluation/reply"):
        return "agents"  # the agent's answer to it
    if first in ("agents", "teams") and route.rstrip("/").endswith("/schedule"):
        return "supervise"  # who works when is the supervisors'
    if first == "agents" and route.rstrip("/").endswith("/break-place"):
        return "supervise"  # who goes on a break first is the supervisors'
    if first == "schedule-requests":
        # Agents ask; their supervisors answer.
        end = route.rstrip("/").rsplit("/", 1)[-1]
        return "supervise" if end in ("approve", "decline") else "agents"
    return _POST_SCOPES.get(first, "admin")


_NO_NUMBER: Final = frozenset({"anonymous", "unknown", "restricted", "private", "withheld"})

_WEB_READS: Final = re.compile(r"/queues/[^/]+/wait|/callbacks/slots")
"""GET routes a web page's backend needs beside asking for callbacks."""
WEB_READ: Final = "read or callbacks"
"""The scope of :data:`_WEB_READS`: a token allowed either may read them."""
_SOUND: Final = re.compile(r"/voicemails/[^/]+/audio|/calls/[^/]+/recording")
"""The routes that answer a sound file, not JSON."""
REVIEW_CALLS = 50
"""Calls of the day a supervisor's review page lists for an agent (newest first)."""
MESSAGES_FOR = 2.0
"""Seconds the voicemail messages read for the desktops are shown before being read again."""
_BACK_TO: Final = ("/desktop/agent?id=", "/desktop/voicemail?id=", "/desktop/calls?agent=")
"""Where a desktop form may send the browser back to (no open redirect)."""
AGENT_CALLS_FOR = 10.0
"""Seconds an agent's desktop shows the calls it read from the records before reading
them again (each agent's page reloads every few seconds)."""
_DEVICE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*/[^\s/][^\s]*")
#: The agent actions that move a consultation on (the CLI's ``agent consult --complete``...).
CONSULT_STEPS: dict[str, Callable[[Switchboard, str], Awaitable[str]]] = {
    "consult-complete": Switchboard.consult_complete,
    "consult-join": Switchboard.consult_join,
    "consult-cancel": Switchboard.consult_cancel,
}
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Header lines after the request line; a client sending more is refused with 431.
MAX_HEADERS = 100
#: What is read and dropped after an error answer before the connection is closed.
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 1.0
#: Re-reads the config; returns the changed settings that wait for a restart.
Reloader = Callable[[], Awaitable[list[str]]]
#: Whether records reach their database (``RecordWriter.health``).
RecordHealth = Callable[[], dict[str, Any]]
LiveHealth = Callable[[], dict[str, Any]]
"""The state of a live output (the MQTT link) for /health and /status."""
LiveHealths = Callable[[], list[dict[str, Any]]]
"""The states of several (the webhooks)."""
FiguresReader = Callable[[str, Periods, int], Awaitable[list[dict[str, Any]]]]
"""``(queues|agents, periods, fcr_days)`` -> the figures' rows, read from the records."""
DispositionsReader = Callable[[datetime, datetime], Awaitable[list[DispositionRecord]]]
"""(since, until) -> the codes given then, read from the records."""
ForecastReader = Callable[[ForecastAsked], Awaitable[WeekForecast]]
"""What is asked -> the week's forecast, read from the records (``GET /figures/forecast``)."""
AgentCallsReader = Callable[[str, datetime, int], Awaitable[list[dict[str, Any]]]]
NumberCallsReader = Callable[[str, int], Awaitable[list[dict[str, Any]]]]
"""A number's latest calls: CDR rows with ``code`` and ``note``, oldest first."""
EvaluationsReader = Callable[
    [datetime, datetime, Collection[str] | None], Awaitable[list[Evaluation]]
]
"""The scorecards made in a stretch of time, of some agents' calls (None: everyone's)."""
ShiftsReader = Callable[[datetime, datetime], Awaitable[tuple[list[Stretch], list[Stretch]]]]
"""The agents' logged-in and paused stretches in a stretch of time (open ones included)."""
SCORES_SHOWN_FOR: Final = timedelta(days=30)
SCHEDULE_SHOWN_DAYS: Final = 14
"""Days of their schedule an agent's desktop shows ahead, today first."""
PICK_AMONG: Final = 500
"""The newest calls of an agent ``Pick a call …`` chooses among."""
DISPUTES_READ_EVERY: Final = 10.0
"""Seconds a supervisor's page keeps the disputed scores it read (a reply or a new score
by them reads again at once)."""
EVER: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""The start of "every scorecard": before any the daemon can have written."""
"""How far back an agent's page of their quality scores goes."""
HISTORY_SHOWN: Final = 5
"""Earlier calls of the caller's number on an agent's desktop."""
HISTORY_FOR: Final = 60.0
"""Seconds a caller's history read for the desktops is kept (the page reloads every few)."""
"""``(agent, since, last)`` -> the agent's latest calls from the records
(:meth:`RecordStore.fetch_agent_calls <callcenter.records.store.RecordStore.fetch_agent_calls>`)."""
CallbackReader = Callable[[str], Awaitable[QueueCallback | None]]
"""A callback request's record by its id (what became of it once it stopped waiting)."""
Eraser = Callable[[list[str], bool], Awaitable[dict[str, Any]]]
"""``(numbers, dry_run)`` -> what the erasure did (:meth:`Erasure.as_dict
<callcenter.records.erasure.Erasure.as_dict>`); EngineError for numbers that will not do
(400), ErasureRefused while work waits on one (409)."""


class HTTPError(Exception):
    def __init__(self, status: int, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload if payload is not None else {"error": message}


@dataclass
class PBXLink:
    """Whether the daemon can take calls: its PBX link, as the driver's events tell it."""

    name: str
    connected: bool = False
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    reason: str = "not connected yet"

    def up(self) -> None:
        if not self.connected:
            self.connected, self.since, self.reason = True, datetime.now(UTC), ""

    def down(self, reason: str) -> None:
        if self.connected:
            self.connected, self.since = False, datetime.now(UTC)
        self.reason = reason

    def as_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "name": self.name,
            "connected": self.connected,
            "since": self.since.isoformat(timespec="milliseconds"),
        }
        if not self.connected:
            state["reason"] = self.reason
        return state


API_ACTION_LIMIT = 60.0
"""Seconds a request that acts (not a GET) may take: then it is answered 504 and the action
goes on (its end is logged: ``api_action_ended_late``). Past any ring a request waits for
(a supervisor's phone, a consulted agent's); only a PBX that never answers takes longer."""

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    413: "Payload Too Large",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class RequestRate:
    """At most N requests in any 60 seconds (a sliding window of their times)."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def take(self, per_minute: int, now: float) -> bool:
        """Count one request made at ``now`` (monotonic seconds); False, not counted, when
        ``per_minute`` were made in the 60 seconds before it."""
        times = self._times
        while times and now - times[0] >= 60.0:
            times.popleft()
        if len(times) >= per_minute:
            return False
        times.append(now)
        return True


class ControlAPI:
    """Serves the control routes for one switchboard."""

    def __init__(
        self,
        switchboard: Switchboard,
        host: str = "127.0.0.1",
        port: int = 8470,
        *,
        reload: Reloader | None = None,
        drain: Drain | None = None,
        link: PBXLink | None = None,
        records: RecordHealth | None = None,
        metrics: Metrics | None = None,
        mqtt: LiveHealth | None = None,
        campaigns: Campaigns | None = None,
        figures: FiguresReader | None = None,
        agent_calls: AgentCallsReader | None = None,
        number_calls: NumberCallsReader | None = None,
        evaluation_writer: Callable[[Evaluation], Awaitable[bool]] | None = None,
        evaluations: EvaluationsReader | None = None,
        shifts: ShiftsReader | None = None,
        agent_records: Mapping[str, int] | None = None,
        voicemails: VoicemailInbox | None = None,
        notices: NoticeBoard | None = None,
        call_record: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None,
        callback_record: CallbackReader | None = None,
        erase: Eraser | None = None,
        today: Today | None = None,
        token: str | None = None,
        tokens: Mapping[str, tuple[str, Sequence[str]]] | None = None,
        webhooks: LiveHealths | None = None,
        read_only: bool = False,
        cors_origins: Sequence[str] = (),
        audit: AuditTrail | None = None,
        dispositions: DispositionsReader | None = None,
        forecast: ForecastReader | None = None,
    ) -> None:
        self.switchboard = switchboard
        self._forecast = forecast
        self._dispositions = dispositions
        """The codes given in a stretch of time (``GET /figures/outcomes``)."""
        self._codes_read: tuple[float, dict[str, dict[str, int]]] | None = None
        """(when read, agent -> code -> calls today): the desktops' "Codes today"."""
        self._audit = audit
        """Where each change and each read of a person's voice or history is kept (None:
        nowhere)."""
        self.cors_origins = frozenset(cors_origins)
        """Origins whose pages may call the API from a browser (api.cors_origins)."""
        self._callback_rate = RequestRate()
        self._figures = figures
        self._agent_calls = agent_calls
        self._number_calls = number_calls
        self._write_evaluation = evaluation_writer
        self._evaluations = evaluations
        self._disputes_read: dict[str, tuple[float, list[Evaluation], dict[str, int]]] = {}
        self._shifts = shifts
        self._shifts_read: tuple[float, _DayStretches] | None = None
        self._history_seen: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
        """(number, call going on) -> (when read, the number's latest calls): desktops."""
        self._agent_records = agent_records if agent_records is not None else {}
        self.voicemails = voicemails
        """The messages agents call back (None: no record store)."""
        self.notices = notices if notices is not None else NoticeBoard(switchboard.bus)
        """What supervisors tell their agents (the desktops, the wallboard)."""
        self._messages_seen: tuple[float, int, list[VoicemailMessage]] | None = None
        self._call_record = call_record
        self._agent_calls_seen: dict[
            str, tuple[float, tuple[int, str, int], list[dict[str, Any]]]
        ] = {}
        """Agent -> (when read, (calls taken, state, records naming them) then, their calls):
        the desktop reads the records again once that moved on, or after AGENT_CALLS_FOR."""
        self._callback_record = callback_record
        self._erase = erase
        self.today = today
        """The day's figures the wallboard shows (None: none counted)."""
        self._token = token or None
        self._tokens = {
            sha: (name, frozenset(allow)) for name, (sha, allow) in (tokens or {}).items()
        }
        """SHA-256 of a named token -> (its name, what it may do): ``api.tokens``."""
        self._webhooks = webhooks
        self.campaigns = campaigns
        self.metrics = metrics
        self.read_only = read_only
        """Serve only ``GET /metrics`` and ``GET /health`` (the listener for Prometheus)."""
        self._records = records
        self._mqtt = mqtt
        self.host = host
        self.port = port
        self._reload = reload
        self._drain = drain
        if link is None:
            # Without a daemon to follow the PBX's events (tests, tools): taken as up.
            name = switchboard.pbx.name if switchboard.pbx is not None else "pbx"
            link = PBXLink(name, connected=True)
        self.link = link
        self._server: asyncio.Server | None = None
        self.streams = None if read_only else EventStreams(switchboard.bus)
        """``GET /events`` clients (not on the read-only metrics listener)."""
        self.desktop_sessions = desktop.DesktopSessions(
            switchboard.config.api.desktop_session_hours
        )
        self._sign_in_guard = desktop.SignInGuard()
        self._desktop_notes: dict[str, tuple[str, str]] = {}
        """Agent -> (what happened, what went wrong): said once on their next page."""
        self._late: set[asyncio.Task[Any]] = set()
        """Actions answered 504 that go on (:data:`API_ACTION_LIMIT`)."""

    async def start(self) -> None:
        """Bind and listen; raises ``ListenError`` if the address is unusable."""
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            what = "metrics (api.metrics_host)" if self.read_only else "the control API"
            raise ListenError(
                f"cannot listen for {what} on {self.host}:{self.port}: {exc}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("api_listening", host=self.host, port=self.port, read_only=self.read_only)

    async def stop(self) -> None:
        if self._late:
            await cancel_and_wait(*self._late)
        if self.streams is not None:
            await self.streams.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, payload = 500, {"error": "internal error"}
        text: str | None = None
        media: Media | None = None
        kind = METRICS_CONTENT_TYPE
        cors = extra = ""
        request: _Request | None = None
        _ACTOR.set("")
        try:
            request = await asyncio.wait_for(_read_request(reader), 10.0)
            peer = writer.get_extra_info("peername")
            if isinstance(peer, tuple) and peer:
                trusted = self.switchboard.config.api.trusted_proxies
                address = client_address(str(peer[0]), request.forwarded_for, trusted)
                request = dataclasses.replace(request, peer=address)
            method, path = request.method, request.path
            route = path.split("?", 1)[0]
            cors = self._cors(request.origin)
            if method == "OPTIONS":
                await _preflight(writer, cors)
                return
            if method == "POST" and not cors and not _same_origin(request):
                # A page of another site posting here (a form needs no preflight): refused
                # whatever it sends, so that no browser can be made to act for its user.
                raise HTTPError(403, f"requests from pages of {request.origin} are refused")
            if route == "/desktop" or route.startswith("/desktop/"):
                if self.read_only or not self.switchboard.config.api.desktop:
                    raise HTTPError(404, "the agent desktop is off (api.desktop)")
                kind = "text/html; charset=utf-8"
                try:
                    status, page, extra = await self._desktop_page(request)
                    if isinstance(page, Media):
                        media = page
                    else:
                        text = page
                except HTTPError as exc:
                    title = self.switchboard.config.api.wallboard_title
                    status, text = exc.status, desktop.render_error(title, str(exc))
                    extra = _PAGE_HEADERS
            elif method == "GET" and route == "/metrics":
                status, text = 200, self.render_metrics()
            elif method == "GET" and route == "/events" and self.streams is not None:
                await self._stream(reader, writer, request, cors)
                return
            elif method == "GET" and route == "/wallboard" and not self.read_only:
                status, text = 200, self._wallboard(request)
                kind = "text/html; charset=utf-8"
            elif method == "GET" and _SOUND.fullmatch(route) and not self.read_only:
                who = self._authorize(request.authorization, "recordings")
                _ACTOR.set(who or LOCAL)
                _, what, which, _ = route.split("/")
                if what == "voicemails":
                    media = await self.voicemail_audio(unquote(which))
                else:
                    media, _ = await self.call_recording(unquote(which))
                log.info(
                    "api_sound_served", what=what, id=unquote(which), by=who, peer=request.peer
                )
                status, extra = 200, "Cache-Control: no-store\r\n"
            else:
                who = None
                if not (method == "GET" and route == "/health"):
                    who = self._authorize(request.authorization, scope_of(method, route))
                _ACTOR.set(who or LOCAL)
                try:
                    answer = self.dispatch(method, path, request.body)
                    if method != "GET":
                        answer = self._in_time(answer, f"{method} {route}")
                    status, payload = 200, await answer
                finally:
                    if who is not None and who != MAIN_TOKEN:
                        log.info("api_request", by=who, method=method, route=route)
        except HTTPError as exc:
            status, payload = exc.status, exc.payload
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                writer.close()
                raise
            # Something awaited under the request was cancelled, not the request: an
            # error like any other, answered (the client would otherwise wait for good).
            log.exception("api_request_failed")
        except Exception:
            log.exception("api_request_failed")
        if request is not None and self._audit is not None and _audited(request):
            self._audit_request(request, status)
        if media is not None:
            data, kind = media.data, media.kind
        elif text is not None:
            data = text.encode()
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        challenge = ""
        if status == 401 and text is None:
            challenge = 'WWW-Authenticate: Bearer realm="callcenter"\r\n'
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {kind}\r\nContent-Length: {len(data)}\r\n{challenge}{cors}{extra}"
            "Connection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + data)
            await writer.drain()
            if status >= 400:
                await _linger(reader, writer)
        writer.close()

    def _audit_request(self, request: _Request, status: int) -> None:
        """One row of the audit trail for ``request``, answered ``status``."""
        assert self._audit is not None
        route, _, query = request.path.partition("?")
        asked = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            self._audit.record(
                who=_ACTOR.get() or UNKNOWN,
                peer=request.peer,
                method=request.method,
                route=route,
                status=status,
                detail=detail_of(request.body, request.form, asked),
            )
        except Exception:  # the trail must never cost the request its answer
            log.exception("audit_not_recorded", route=route)

    def _cors(self, origin: str) -> str:
        """The CORS header lines for a request from ``origin`` (api.cors_origins), or ""."""
        if not origin or origin not in self.cors_origins:
            return ""
        return f"Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n"

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: _Request,
        cors: str = "",
    ) -> None:
        """``GET /events``: the live stream (:mod:`callcenter.live.stream`). A browser's
        EventSource sends no headers: ``?token=`` and ``?last_id=`` stand in for them."""
        assert self.streams is not None
        query = parse_qs(urlsplit(request.path).query)
        given = query.pop("token", [""])[0]
        last_id = query.pop("last_id", [""])[0] or request.last_event_id
        self._authorize(request.authorization or (f"Bearer {given}" if given else ""), "read")
        try:
            wanted = StreamFilter.parse(query)
        except ValueError as exc:
            raise HTTPError(400, f"/events: {exc}") from None
        await self.streams.serve(
            reader, writer, wanted, last_id, headers=cors.encode(), peer=request.peer
        )

    def _wallboard(self, request: _Request) -> str:
        """``GET /wallboard``: the page of :mod:`callcenter.live.wallboard` (``?token=``
        stands in for the header a TV's browser cannot send)."""
        query = parse_qs(urlsplit(request.path).query)
        given = query.pop("token", [""])[0]
        self._authorize(request.authorization or (f"Bearer {given}" if given else ""), "read")
        try:
            asked = wallboard.parse_query(query)
        except ValueError as exc:
            raise HTTPError(400, f"/wallboard: {exc}") from None
        board = self.switchboard
        router = board.router
        config = board.config
        names = router.queue_names()
        unknown = [q for q in asked.queues or () if q not in names]
        if unknown:
            raise HTTPError(404, f"/wallboard: no queue {', '.join(unknown)}")
        now = time.monotonic()
        queues = [router.queue_view(name, now) for name in asked.queues or names]
        members = {agent for view in queues for agent in view["members"]}
        if asked.team is not None:
            team = {aid for aid, a in config.agents.items() if a.team == asked.team}
            if not team:
                raise HTTPError(404, f"/wallboard: no agent is in team {asked.team!r}")
            members &= team
            queues = [v for v in queues if team & set(v["members"])]
        shown = [str(v["name"]) for v in queues]
        agents = [router.agent_view(a, now) for a in router.agent_ids() if a in members]
        today = self.today
        if today is not None:
            today.roll()
        page = wallboard.Board(
            title=config.api.wallboard_title,
            now=datetime.now(ZoneInfo(config.ivr.timezone)),
            queues=queues,
            agents=agents,
            queue_days={q: today.queue(q) for q in shown} if today is not None else {},
            agent_days=(
                {a["id"]: today.agent(a["id"]) for a in agents} if today is not None else {}
            ),
            alerts={str(a["queue"]) for a in board.alerts.raised()},
            agent_alerts=set(board.agent_alerts.standing()),
            closed={q: board.queue_closed(q) for q in shown},
            waits={q: router.wait_for_new_caller(q) for q in shown},
            pbx_down=None if self.link.connected else self.link.reason,
            refresh=asked.refresh,
            voicemails=self._voicemails_open(),
            oldest_voicemails=self._voicemails_oldest(),
            scheduled=self._scheduled(members),
            notices=[
                f"{n.text} ({n.author}, until {n.until})"
                for n in (
                    self._notices_shown(asked.team, wallboard=True)
                    if asked.team is not None
                    else self._notices_shown(teams=(), wallboard=True)
                )
            ],
        )
        return wallboard.render(page)

    async def _desktop_page(self, request: _Request) -> tuple[int, str | Media, str]:
        """The routes of the agent desktop (:mod:`callcenter.live.desktop`): (status, page,
        extra header lines). Sessions are of ``agent:<id>`` or ``supervisor:<id>``."""
        config = self.switchboard.config
        title = config.api.wallboard_title
        method, route = request.method, request.path.split("?", 1)[0]
        query = {k: v[-1] for k, v in parse_qs(urlsplit(request.path).query).items()}
        router = self.switchboard.router
        pins = {f"agent:{a}": c.pin for a, c in config.agents.items() if a in router.agents}
        pins |= {f"supervisor:{s}": c.pin for s, c in config.supervisors.items()}
        sessions = self.desktop_sessions
        sessions.seconds = int(config.api.desktop_session_hours * 3600)
        home = _PAGE_HEADERS + "Location: /desktop\r\n"
        if method == "POST" and route == "/desktop/sign-in":
            return self._desktop_sign_in(request, pins, title)
        who = sessions.signed_in(_cookie(request.cookie, desktop.COOKIE), pins)
        _ACTOR.set(who or "")
        if method == "POST" and route == "/desktop/sign-out":
            if who is not None:
                sessions.sign_out(who)
                log.info("desktop_signed_out", who=who)
            gone = f"Set-Cookie: {desktop.COOKIE}=; Path=/desktop; Max-Age=0; HttpOnly; "
            return 303, "", home + gone + "SameSite=Strict\r\n"
        if who is None:
            if method == "GET" and route == "/desktop":
                role = "supervisor" if query.get("as") == "supervisor" else "agent"
                return 200, desktop.render_sign_in(title, role=role), _PAGE_HEADERS
            return 303, "", home
        role, _, person = who.partition(":")
        if method == "POST" and route == "/desktop/act":
            if role == "supervisor":
                act = self._supervisor_desk_act(person, request.form)
            else:
                act = self._desktop_act(person, request.form)
            # As the API's own actions: a button the PBX does not finish is answered.
            await self._in_time(act, f"desktop {request.form.get('action', '')}")
            back = request.form.get("back", "")
            if back.startswith(_BACK_TO) and back.isprintable():
                return 303, "", _PAGE_HEADERS + f"Location: {back}\r\n"
            return 303, "", home
        if method != "GET":
            raise HTTPError(405, f"use GET for {route}")
        if route == "/desktop":
            refresh = query.get("refresh", str(desktop.REFRESH))
            if not refresh.isdigit() or not 1 <= int(refresh) <= 60:
                raise HTTPError(400, f"refresh is 1 to 60 seconds, not {refresh!r}")
            if role == "supervisor":
                view_s = self._supervisor_view(person, int(refresh))
                shown = {str(q["name"]) for q in view_s.queues}
                messages = [m for m in await self._open_messages() if m.queue in shown]
                disputed, counted = await self._quality(person)
                quotas = {
                    agent_id: target.per_agent
                    for agent_id in self._supervised(person)
                    if (target := target_of(config, agent_id)) is not None
                }
                page = desktop.render_supervisor(
                    dataclasses.replace(
                        view_s,
                        messages=messages,
                        disputed=disputed,
                        requests=self.switchboard.roster.schedule_request_views(
                            self._supervised(person)
                        ),
                        changed_days=self._changed_days(self._supervised(person)),
                        scored=counted,
                        targets=quotas,
                        adherence=await self._adherence_today(self._supervised(person)),
                    )
                )
            else:
                view = self._desktop_view(router.agent_view(person), int(refresh))
                shown_call = view.call
                view = dataclasses.replace(
                    view,
                    calls=await self._todays_calls(view.agent),
                    messages=await self._agent_messages(view.agent),
                    history=await self._caller_history(shown_call.number, shown_call.call_id)
                    if shown_call is not None and shown_call.on_line_seconds is not None
                    else (),
                    adherence=(await self._adherence_today([person])).get(person),
                    pauses=await self._pauses_today([person]),
                    codes=await self._codes_today(person),
                    breaks=self._team_breaks(person),
                    break_line=self.switchboard.breaks.place(person),
                    requests=self.switchboard.roster.schedule_request_views([person]),
                    answers=self.switchboard.roster.schedule_answers_of(person),
                )
                page = desktop.render(view)
            return 200, page, _PAGE_HEADERS
        if role == "supervisor" and route == "/desktop/calls":
            agent_id = query.get("agent", "")
            if agent_id not in self._supervised(person):
                raise HTTPError(404, f"no agent {agent_id!r} in your teams")
            zone = ZoneInfo(config.ivr.timezone)
            midnight = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
            if self._agent_calls is None:
                raise HTTPError(404, "no records here")
            try:
                calls = await self._agent_calls(agent_id, midnight, REVIEW_CALLS)
            except RecordError as exc:
                raise HTTPError(503, f"the records cannot be read: {exc}") from None
            for call in calls:
                call["start"] = call["start"].astimezone(zone)
            scoring = bool(config.evaluation_forms)
            scored: dict[str, float] = {}
            if scoring and self._evaluations is not None:
                with contextlib.suppress(RecordError):  # the page goes on without them
                    made = await self._evaluations(midnight, datetime.now(UTC), [agent_id])
                    scored = {e.call_id: e.percent for e in made if e.supervisor == person}
            said, error = self._desktop_notes.pop(f"supervisor:{person}", ("", ""))
            page = desktop.render_agent_calls(
                title,
                router.agent_view(agent_id),
                calls,
                scoring=scoring,
                scored=scored,
                said=said,
                error=error,
            )
            return 200, page, _PAGE_HEADERS
        if role == "supervisor" and route == "/desktop/pick":
            agent_id = query.get("agent", "")
            try:
                picked = await self._pick_call(person, agent_id)
            except HTTPError as exc:
                self._desktop_notes[f"supervisor:{person}"] = ("", str(exc))
                return 303, "", _PAGE_HEADERS + "Location: /desktop\r\n"
            where = f"/desktop/evaluate?{urlencode({'call': picked})}"
            return 303, "", _PAGE_HEADERS + f"Location: {where}\r\n"
        if role == "supervisor" and route == "/desktop/evaluate":
            row = await self._scorable(person, query.get("call", ""))
            chosen = form_for(config, str(row.get("queue") or ""))
            if chosen is None:
                raise HTTPError(404, "no scorecard to score with (evaluation_forms)")
            name, form = chosen
            scored_call = {
                "call_id": row["uniqueid"],
                "number": row["src"],
                "queue": row.get("queue") or "",
                "agent": row["agent"],
            }
            page = desktop.render_evaluation(
                title,
                scored_call,
                name,
                criteria=form.criteria,
                pass_percent=form.pass_percent,
            )
            return 200, page, _PAGE_HEADERS
        if role == "supervisor" and route == "/desktop/recording":
            team = set(self._supervised(person))

            def theirs(row: Mapping[str, Any]) -> bool:
                hops = str(row.get("transfer_path") or "").split(">")
                return bool(team & {str(row.get("agent") or ""), *hops})

            sound, _ = await self.call_recording(query.get("call", ""), theirs)
            return 200, sound, "Cache-Control: no-store\r\n"
        if role == "supervisor" and route == "/desktop/voicemail/audio":
            message = await self._voicemail(query.get("id", ""))
            if message.queue not in self._supervised_queues(person):
                raise HTTPError(404, f"no message {message.call_id} in your queues")
            return 200, await self.voicemail_audio(message.call_id), "Cache-Control: no-store\r\n"
        if role == "supervisor" and route == "/desktop/caller":
            return 200, self._caller_page(person, query.get("id", ""), title), _PAGE_HEADERS
        if role == "supervisor" and route == "/desktop/forecast":
            return (
                200,
                await self._forecast_page(person, query, title),
                (_PAGE_HEADERS),
            )
        if role == "supervisor" and route == "/desktop/notice":
            teams = list(config.supervisors[person].teams)
            page = desktop.render_notice(title, config.supervisors[person].name, teams)
            return 200, page, _PAGE_HEADERS
        if role == "supervisor" and route == "/desktop/agent":
            agent_id = query.get("id", "")
            if agent_id not in self._supervised(person):
                raise HTTPError(404, f"no agent {agent_id!r} in your teams")
            said, error = self._desktop_notes.pop(f"supervisor:{person}", ("", ""))
            page = desktop.render_membership(
                title,
                router.agent_view(agent_id),
                router.queue_names(),
                said=said,
                error=error,
                skills=list(config.acd.skills),
                pause_reasons=list(config.pause_reasons),
                days=self.switchboard.roster.schedule_days(agent_id, self._today(agent_id), 7),
                pauses=await self._pauses_today([agent_id]),
                profiles=list(config.profiles),
                profile=self.switchboard.roster.profile_of(agent_id),
            )
            return 200, page, _PAGE_HEADERS
        if role != "agent":
            raise HTTPError(404, f"no route {method} {route} for supervisors")
        agent = router.agent_view(person)
        if route in ("/desktop/voicemail", "/desktop/voicemail/audio"):
            message = await self._voicemail(query.get("id", ""))
            mine = message.status == "taken" and message.agent == person
            if not mine and message.queue not in agent["queues"]:
                raise HTTPError(404, f"no message {message.call_id} in your queues")
            if route.endswith("/audio"):
                return (
                    200,
                    await self.voicemail_audio(message.call_id),
                    "Cache-Control: no-store\r\n",
                )
            said, error = self._desktop_notes.pop(f"agent:{person}", ("", ""))
            zone = ZoneInfo(config.ivr.timezone)
            page = desktop.render_voicemail(
                title,
                agent,
                message,
                zone,
                said=said,
                error=error,
                can_dial=config.acd.dial_out is not None,
            )
            return 200, page, _PAGE_HEADERS
        if route == "/desktop/transfer":
            looked = time.monotonic()
            free = [
                router.agent_view(a, looked)
                for a in router.agent_ids()
                if a != person and router.agents[a].state == "available"
            ]
            numbers = config.acd.transfer_dial is not None
            return 200, desktop.render_transfer(title, agent, free, numbers), _PAGE_HEADERS
        if route == "/desktop/dial":
            if config.acd.dial_out is None:
                raise HTTPError(404, "agents dial no numbers here (acd.dial_out)")
            queues = [str(q) for q in agent["queues"]]
            return 200, desktop.render_dial(title, agent, queues), _PAGE_HEADERS
        if route == "/desktop/login":
            agent_config = config.agents.get(person)
            if agent_config is None or not agent_config.hot_desk:
                raise HTTPError(404, "you log in at your own phone only (agents.<id>.hot_desk)")
            return 200, desktop.render_login(title, agent), _PAGE_HEADERS
        if route == "/desktop/scores":
            if not config.evaluation_forms or self._evaluations is None:
                raise HTTPError(404, "calls are not scored here (evaluation_forms)")
            zone = ZoneInfo(config.ivr.timezone)
            until = datetime.now(UTC)
            try:
                own_scores = await self._evaluations(until - SCORES_SHOWN_FOR, until, [person])
            except RecordError as exc:
                raise HTTPError(503, f"the records cannot be read: {exc}") from None
            names = {s: c.name for s, c in config.supervisors.items()}
            page = desktop.render_scores(title, agent, own_scores[::-1], zone, names)
            return 200, page, _PAGE_HEADERS
        if route == "/desktop/ask-schedule":
            page = desktop.render_ask_schedule(title, agent, self._today(person))
            return 200, page, _PAGE_HEADERS
        if route == "/desktop/schedule":
            schedule = schedule_of(config, person)
            if schedule is None:
                raise HTTPError(404, "you have no schedule (agents.<id>.schedule)")
            today = datetime.now(schedule.zone).date()
            days = [today + timedelta(days=n) for n in range(SCHEDULE_SHOWN_DAYS)]
            changed = self.switchboard.roster.schedule_changes.get(person, {})
            week = [(day, _hours_of(schedule, day), day in changed) for day in days]
            return 200, desktop.render_schedule(title, agent, week), _PAGE_HEADERS
        if route == "/desktop/dispute":
            if not config.evaluation_forms:
                raise HTTPError(404, "calls are not scored here (evaluation_forms)")
            card = await self._scorecard(person, query.get("call", ""), query.get("supervisor", ""))
            return 200, desktop.render_dispute(title, agent, card), _PAGE_HEADERS
        if route == "/desktop/note":
            codes = {
                code: config.dispositions[code].callback
                for code in self.switchboard.dispositions.codes_for(person)
            }
            if not any(not callback for callback in codes.values()):
                raise HTTPError(404, "no code to give a note with (dispositions)")
            noted = {code for code, d in config.dispositions.items() if d.note_required}
            page = desktop.render_note(
                title, agent, codes, chosen=query.get("code", ""), noted=noted
            )
            return 200, page, _PAGE_HEADERS
        if route == "/desktop/callback":
            code = query.get("code", "")
            disposition = config.dispositions.get(code)
            if disposition is None or not disposition.callback:
                raise HTTPError(404, f"no callback code {code!r} (dispositions)")
            now = datetime.now(ZoneInfo(config.ivr.timezone))
            earliest = now.strftime("%Y-%m-%dT%H:%M")
            return 200, desktop.render_callback(title, agent, code, earliest), _PAGE_HEADERS
        raise HTTPError(404, f"no route {method} {route}")

    def forget_calls_read(self) -> None:
        """Drop the agents' calls and the messages read for the desktops (an erasure changed
        the records: the next page reads them again)."""
        self._agent_calls_seen.clear()
        self._messages_seen = None

    async def _todays_calls(self, agent: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The agent's calls today (``desktop.CALLS_SHOWN`` newest), read from the records
        at most every AGENT_CALLS_FOR seconds unless they took a call, changed state, or a
        record naming them was written."""
        if self._agent_calls is None:
            return []
        agent_id = str(agent["id"])
        mark = (
            int(agent["calls_taken"]),
            str(agent["state"]),
            self._agent_records.get(agent_id, 0),
        )
        now = time.monotonic()
        seen = self._agent_calls_seen.get(agent_id)
        if seen is not None and seen[1] == mark and now - seen[0] < AGENT_CALLS_FOR:
            return seen[2]
        zone = ZoneInfo(self.switchboard.config.ivr.timezone)
        midnight = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            calls = await self._agent_calls(agent_id, midnight, desktop.CALLS_SHOWN)
        except RecordError:
            return seen[2] if seen is not None else []  # the page goes on without them
        for call in calls:
            call["start"] = call["start"].astimezone(zone)
        self._agent_calls_seen[agent_id] = (now, mark, calls)
        return calls

    async def _open_messages(self) -> list[VoicemailMessage]:
        """The voicemail messages still to call back, oldest first (read at most every
        MESSAGES_FOR seconds for every page, or once one of them changed)."""
        inbox = self.voicemails
        if inbox is None:
            return []
        now = time.monotonic()
        seen = self._messages_seen
        if seen is None or now - seen[0] >= MESSAGES_FOR or seen[1] != inbox.changes:
            changes = inbox.changes
            try:
                seen = self._messages_seen = (now, changes, await inbox.waiting())
            except RecordError:
                return []  # the page goes on without them
        return seen[2]

    async def _agent_messages(self, agent: Mapping[str, Any]) -> list[VoicemailMessage]:
        """The messages of the agent's queues still to call back, and theirs."""
        queues = {str(q) for q in agent["queues"]}
        me = str(agent["id"])
        return [m for m in await self._open_messages() if m.queue in queues or m.agent == me]

    def _desktop_sign_in(
        self, request: _Request, pins: dict[str, str | None], title: str
    ) -> tuple[int, str, str]:
        form, peer = request.form, request.peer
        person, given = form.get("id", "").strip(), form.get("pin", "").strip()
        role = "supervisor" if form.get("role") == "supervisor" else "agent"
        who = f"{role}:{person}"
        _ACTOR.set(who)

        def again(status: int, error: str) -> tuple[int, str, str]:
            page = desktop.render_sign_in(title, role=role, person=person, error=error)
            return status, page, _PAGE_HEADERS

        wait = self._sign_in_guard.wait(who, peer)
        if wait > 0:
            log.warning("desktop_sign_in_held", who=who, peer=peer, seconds=round(wait))
            return again(429, f"Too many wrong PINs: try again in {math.ceil(wait)} seconds.")
        pin = pins.get(who)
        if who in pins and pin is None:
            return again(
                403,
                f"{role.capitalize()} {person} has no PIN, and the desktop needs one: ask "
                f"for {role}s.{person}.pin in the config.",
            )
        if pin is None or not hmac.compare_digest(given.encode(), pin.encode()):
            self._sign_in_guard.failed(who, peer)
            log.warning("desktop_sign_in_refused", who=who, peer=peer)
            return again(401, f"Wrong {role} or PIN.")
        self._sign_in_guard.succeeded(who, peer)
        log.info("desktop_signed_in", who=who, peer=peer)
        cookie = (
            f"Set-Cookie: {desktop.COOKIE}={self.desktop_sessions.issue(who, pin)}; "
            f"Path=/desktop; Max-Age={self.desktop_sessions.seconds}; HttpOnly; "
            "SameSite=Strict\r\n"
        )
        return 303, "", _PAGE_HEADERS + "Location: /desktop\r\n" + cookie

    async def _desktop_act(self, agent_id: str, form: dict[str, str]) -> None:
        """One button of an agent's desktop: the API's agent action, what it did noted for
        the page."""
        action = form.get("action", "")
        note = f"agent:{agent_id}"
        if action.startswith("voicemail-"):
            step = action.removeprefix("voicemail-")
            try:
                answer = await self.voicemail_step(
                    agent_id, form.get("id", ""), step, via="desktop"
                )
            except HTTPError as exc:
                self._desktop_notes[note] = ("", str(exc))
                return
            if step != "take":
                self._desktop_notes[note] = (desktop.said(action, answer, form), "")
            return
        if action in ("ask-hours", "ask-day-off"):
            typed = [h.strip() for h in form.get("hours", "").split(",") if h.strip()]
            try:
                if action == "ask-hours" and not typed:
                    raise InvalidAgent("Type the hours, such as 10:00-18:00 (or: a day off)")
                asked = self.switchboard.roster.ask_schedule(
                    agent_id,
                    _iso_day(form.get("day", "")),
                    typed if action == "ask-hours" else [],
                    note=form.get("note", "").strip(),
                )
            except (InvalidAgent, HTTPError) as exc:
                self._desktop_notes[note] = ("", str(exc))
                return
            self._desktop_notes[note] = (desktop.request_said(asked), "")
            return
        if action == "withdraw-request":
            try:
                taken = self.switchboard.roster.withdraw_schedule_request(
                    form.get("request", ""), agent_id
                )
            except EngineError as exc:
                self._desktop_notes[note] = ("", str(exc))
                return
            self._desktop_notes[note] = (desktop.request_said(taken), "")
            return
        if action == "reply-evaluation":
            try:
                done = await self.reply_to_evaluation(
                    form.get("call", ""),
                    agent_id,
                    form.get("supervisor", ""),
                    form.get("reply", ""),
                    form.get("note", ""),
                )
            except HTTPError as exc:
                self._desktop_notes[note] = ("", str(exc))
                return
            verb = "agreed with" if done.reply == "agreed" else "disputed"
            self._desktop_notes[note] = (f"You {verb} the score of call {done.call_id}", "")
            return
        if action not in desktop.ACTIONS:
            self._desktop_notes[note] = ("", f"No such action: {action!r}")
            return
        body: dict[str, Any] = {k: v for k, v in form.items() if k in desktop.FIELDS and v}
        if action in ("transfer", "consult") and body.get("number"):
            body["to"] = body.pop("number")  # a number typed on the transfer page
        try:
            if action in ("join", "leave"):
                self._check_open_queue(str(body.get("queue", "")))
            answer = await self._agent_action(agent_id, action, body, via="desktop")
        except HTTPError as exc:
            self._desktop_notes[note] = ("", str(exc))
            return
        self._desktop_notes[note] = (desktop.said(action, answer, body), "")

    async def _voicemail_action(
        self, method: str, path: str, parts: list[str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """``/voicemails...``: the messages agents call back
        (:mod:`callcenter.records.voicemails`)."""
        inbox = self._inbox()
        if not parts:
            if method != "GET":
                raise HTTPError(405, "use GET for /voicemails")
            queue = parse_qs(urlsplit(path).query).get("queue", [None])[-1]
            messages = await self._voicemails(None if queue is None else [queue])
            return {"voicemails": [m.as_dict() for m in messages]}
        if len(parts) == 1:
            if method != "GET":
                raise HTTPError(405, f"use GET for /voicemails/{parts[0]}")
            return (await self._voicemail(parts[0])).as_dict()
        if len(parts) != 2:
            raise HTTPError(404, "no such route under /voicemails")
        message_id, step = parts
        if method != "POST":
            raise HTTPError(405, f"use POST for /voicemails/{message_id}/{step}")
        agent = body.get("agent")
        if step == "release" and agent is None:
            self._messages_seen = None
            return (await self._voicemail_step(inbox.release(message_id))).as_dict()
        if not isinstance(agent, str) or not agent:
            raise HTTPError(400, f'say which agent: {{"agent": "1001"}} ({step})')
        if agent not in self.switchboard.router.agents:
            raise HTTPError(404, f"unknown agent {agent}")
        return await self.voicemail_step(agent, message_id, step, via="api")

    async def voicemail_step(
        self, agent: str, message_id: str, step: str, *, via: str
    ) -> dict[str, Any]:
        """``take``, ``call-back``, ``done`` or ``release`` a message for ``agent``."""
        try:
            return await self._voicemail_step_for(agent, message_id, step, via)
        finally:
            self._messages_seen = None  # the desktops show the change at once

    async def _voicemail_step_for(
        self, agent: str, message_id: str, step: str, via: str
    ) -> dict[str, Any]:
        inbox = self._inbox()
        if step in ("take", "call-back"):
            message = await self._voicemail(message_id)
            theirs = message.status == "taken" and message.agent == agent
            if (
                not theirs
                and message.queue not in self.switchboard.router.agent_view(agent)["queues"]
            ):
                raise HTTPError(403, f"agent {agent} is not in queue {message.queue}")
        if step == "take":
            message = await self._voicemail_step(inbox.take(message_id, agent))
        elif step == "call-back":
            message = await self._voicemail_step(inbox.take(message_id, agent))
            if not message.number:
                raise HTTPError(409, "the caller's number is unknown: nobody to call back")
            # Settled once the caller answers; a call back that gets nobody counts a try.
            inbox.calling_back(message_id, agent)
            try:
                dialled = await self._agent_action(
                    agent,
                    "dial",
                    {"number": message.number, "queue": message.queue,
                     "data": {"voicemail": message_id}},
                    via=via,
                )  # fmt: skip
            except BaseException:
                inbox.not_calling_back(agent)
                raise
            log.info("voicemail_step", message=message_id, agent=agent, step=step, via=via)
            return {**message.as_dict(), "dial_id": dialled.get("dial_id")}
        elif step == "done":
            message = await self._voicemail_step(inbox.settle(message_id, agent, "done"))
        elif step == "release":
            message = await self._voicemail_step(inbox.release(message_id, agent))
        else:
            raise HTTPError(
                404, f"no step {step!r} for a voicemail (take, call-back, done, release)"
            )
        log.info("voicemail_step", message=message_id, agent=agent, step=step, via=via)
        return message.as_dict()

    def _inbox(self) -> VoicemailInbox:
        if self.voicemails is None:
            raise HTTPError(404, "no voicemail inbox here")
        return self.voicemails

    async def _voicemails(self, queues: Sequence[str] | None) -> list[VoicemailMessage]:
        try:
            return await self._inbox().waiting(queues)
        except RecordError as exc:
            raise HTTPError(503, f"the records cannot be read: {exc}") from None

    async def _voicemail(self, message_id: str) -> VoicemailMessage:
        return await self._voicemail_step(self._inbox().get(message_id))

    @staticmethod
    async def _voicemail_step(step: Awaitable[VoicemailMessage]) -> VoicemailMessage:
        try:
            return await step
        except UnknownVoicemail as exc:
            raise HTTPError(404, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(409, str(exc)) from None
        except RecordError as exc:
            raise HTTPError(503, f"the records cannot be read: {exc}") from None

    async def call_recording(
        self, call_id: str, allowed: Callable[[Mapping[str, Any]], bool] | None = None
    ) -> tuple[Media, dict[str, Any]]:
        """The recording of a call (only a file inside ``acd.recordings_folder``) and its
        CDR; ``allowed`` (of the CDR) False: 404, as for a call that is not there."""
        row = await self._read_record(call_id)
        if row is None or (allowed is not None and not allowed(row)):
            raise HTTPError(404, f"no call {call_id} in the records")
        if not row["recordingfile"]:
            raise HTTPError(404, f"call {call_id} was not recorded")
        config = self.switchboard.config
        folder = config.resolve_path(config.acd.recordings_folder)
        return await _media(Path(row["recordingfile"]), folder, "acd.recordings_folder"), row

    async def voicemail_audio(self, message_id: str) -> Media:
        """The sound file of a message: only a file inside ``ivr.voicemail_folder``."""
        message = await self._voicemail(message_id)
        config = self.switchboard.config
        folder = config.resolve_path(config.ivr.voicemail_folder)
        return await _media(Path(message.path), folder, "ivr.voicemail_folder")

    def _check_open_queue(self, queue: str) -> None:
        """Agents join and leave from their desktop the queues they may from their phone
        (``*45``): those with ``digits``; the others are their supervisors' to change."""
        if queue not in self._open_queues():
            raise HTTPError(
                403,
                f"Queue {queue} is not open to agents joining or leaving it themselves "
                f"(queues.{queue}.digits): ask a supervisor.",
            )

    def _open_queues(self) -> list[str]:
        queues = self.switchboard.config.queues
        return [
            q for q in self.switchboard.router.queue_names() if q in queues and queues[q].digits
        ]

    async def _supervisor_desk_act(self, supervisor_id: str, form: dict[str, str]) -> None:
        """One button of a supervisor's desktop: monitor an agent, switch, take over, stop,
        or log out an agent of their teams."""
        action, agent = form.get("action", ""), form.get("agent", "")
        note = f"supervisor:{supervisor_id}"
        try:
            if action == "voicemail-release":
                said = await self._supervisor_release(supervisor_id, form.get("id", ""))
            elif action in ("notice-post", "notice-take-down"):
                said = self._supervisor_notice(supervisor_id, action, form)
            elif action in desktop.CALLER_ACTIONS_OF_SUPERVISORS:
                said = self._supervisor_caller_act(supervisor_id, action, form)
            elif action == "evaluate-call":
                row = await self._scorable(supervisor_id, form.get("call", ""))
                scores = {
                    key.removeprefix("score:"): value.strip()
                    for key, value in form.items()
                    if key.startswith("score:")
                }
                done = await self.evaluate(
                    str(row["uniqueid"]), supervisor_id, scores, form.get("comment", "")
                )
                verdict = "passed" if done.passed else "not passed"
                said = f"Call of {done.agent} scored {done.percent:g} % ({verdict})"
            elif action in ("skills-agent", "reset-skills-agent"):
                if agent not in self._supervised(supervisor_id):
                    raise HTTPError(403, f"agent {agent} is not in your teams")
                skills = None if action == "reset-skills-agent" else desktop.skills_of(form)
                answer = self._skills(agent, {"skills": skills}, via=f"supervisor:{supervisor_id}")
                said = desktop.skills_said(agent, answer["skills"], reset=skills is None)
            elif action in ("approve-request", "decline-request"):
                waiting = {
                    str(r["id"]): r
                    for r in self.switchboard.roster.schedule_request_views(
                        self._supervised(supervisor_id)
                    )
                }
                request = form.get("request", "")
                if request not in waiting:
                    raise HTTPError(404, f"no request {request!r} of your agents waits")
                try:
                    decided = self.switchboard.roster.decide_schedule(
                        request,
                        approve=action == "approve-request",
                        by=f"supervisor:{supervisor_id}",
                    )
                except (InvalidAgent, EngineError) as exc:
                    raise HTTPError(409, str(exc)) from None
                said = desktop.request_said(decided)
            elif action in desktop.SCHEDULE_ACTIONS:
                if agent not in self._supervised(supervisor_id):
                    raise HTTPError(403, f"agent {agent} is not in your teams")
                typed = [h.strip() for h in form.get("hours", "").split(",") if h.strip()]
                if action == "schedule-agent" and not typed:
                    raise HTTPError(400, "Type the hours, such as 10:00-18:00 (or: Day off)")
                hours = {"schedule-agent": typed, "day-off-agent": []}
                try:
                    day = self.switchboard.roster.change_schedule(
                        agent,
                        _iso_day(form.get("day", "")),
                        hours.get(action),
                        via=f"supervisor:{supervisor_id}",
                    )
                except InvalidAgent as exc:
                    raise HTTPError(400, str(exc)) from None
                said = desktop.schedule_said(agent, day)
            elif action in desktop.AGENT_ACTIONS_OF_SUPERVISORS:
                if agent not in self._supervised(supervisor_id):
                    raise HTTPError(403, f"agent {agent} is not in your teams")
                verb = action.removesuffix("-agent")
                queue, reason = form.get("queue", ""), form.get("reason", "")
                body: dict[str, Any] = {"queue": queue} if verb in ("join", "leave") else {}
                if verb == "pause":
                    body = {"reason": reason}
                elif verb == "profile":
                    reason = form.get("profile", "")
                    body = {"profile": reason}
                elif verb == "break-place":
                    body = {"place": 1}
                await self._agent_action(agent, verb, body, via=f"supervisor:{supervisor_id}")
                said = desktop.agent_moved(agent, verb, queue, reason)
            elif action in desktop.SUPERVISOR_ACTIONS:
                body = {"agent": agent} if agent else {}
                answer = await self._supervisor_action(supervisor_id, action, body)
                said = desktop.supervisor_said(action, answer)
            else:
                raise HTTPError(400, f"No such action: {action!r}")
        except HTTPError as exc:
            self._desktop_notes[note] = ("", str(exc))
            return
        self._desktop_notes[note] = (said, "")

    async def _read_record(self, call_id: str) -> dict[str, Any] | None:
        """A call's CDR, None when there is none; HTTPError 404 without records, 503 when
        they cannot be read."""
        if self._call_record is None:
            raise HTTPError(404, "no records here")
        try:
            return await self._call_record(call_id)
        except RecordError as exc:
            raise HTTPError(503, f"the records cannot be read: {exc}") from None

    async def _quality(self, supervisor_id: str) -> tuple[list[Evaluation], dict[str, int]]:
        """``supervisor_id``'s scorecards of the last 30 days their agents dispute (newest
        first), and how many calls of each of their agents were scored within
        their ``evaluation_target.days`` (their team's, else the config's; by anyone); read
        at most every
        :data:`DISPUTES_READ_EVERY` seconds per supervisor (the page reloads every few),
        nothing when the records cannot be read."""
        config = self.switchboard.config
        if not config.evaluation_forms or self._evaluations is None:
            return [], {}
        now = time.monotonic()
        kept = self._disputes_read.get(supervisor_id)
        if kept is not None and now - kept[0] < DISPUTES_READ_EVERY:
            return kept[1], kept[2]
        until = datetime.now(UTC)
        agents = self._supervised(supervisor_id)
        windows = {
            agent_id: timedelta(days=target.days)
            for agent_id in agents
            if (target := target_of(config, agent_id)) is not None
        }
        longest = max([SCORES_SHOWN_FOR, *windows.values()])
        try:
            made = await self._evaluations(until - longest, until, agents)
        except RecordError:
            return [], {}
        disputed = [
            e for e in made[::-1] if e.supervisor == supervisor_id and e.reply == "disputed"
        ]
        scored: dict[str, int] = {}
        counted = {
            (e.agent, e.call_id)
            for e in made
            if e.agent in windows and e.at >= until - windows[e.agent]
        }
        for agent_id, _call in counted:
            scored[agent_id] = scored.get(agent_id, 0) + 1
        self._disputes_read[supervisor_id] = (now, disputed, scored)
        return disputed, scored

    async def _adherence_today(self, agents: Collection[str]) -> dict[str, float | None]:
        """Adherence so far today (``report --adherence``'s percent) of those of ``agents``
        who have a schedule (None: nothing scheduled yet today); empty without schedules or
        records (the day's stretches: :meth:`_day_stretches`)."""
        config = self.switchboard.config
        schedules = {
            agent_id: schedule
            for agent_id in agents
            if (schedule := schedule_of(config, agent_id)) is not None
        }
        if not schedules:
            return {}
        read = await self._day_stretches()
        if read is None:
            return {}
        days = adherence_days(schedules, read.sessions, read.pauses, read.since, read.until)
        today: dict[str, float | None] = dict.fromkeys(schedules)
        for day in days:
            today[day.agent] = day.adherence  # the last day of each agent's zone: today
        return today

    def _changed_days(self, agents: Collection[str]) -> list[dict[str, Any]]:
        """The days of ``agents``' schedules changed from today on (as the switchboard
        keeps them), by day."""
        today = datetime.now(ZoneInfo(self.switchboard.config.ivr.timezone)).date().isoformat()
        chosen = set(agents)
        return sorted(
            (
                view
                for view in self.switchboard.roster.schedule_change_views()
                if view["agent"] in chosen and view["day"] >= today
            ),
            key=lambda view: (view["day"], view["agent"]),
        )

    async def _pauses_today(self, agents: Collection[str]) -> list[PauseTotal]:
        """The pauses of ``agents`` so far today, per agent and reason (``report
        --pauses``' rows); empty without records (:meth:`_day_stretches`)."""
        read = await self._day_stretches()
        if read is None:
            return []
        # Every desktop asks at each reload: only the asked agents' pauses are folded.
        theirs = [pause for agent in agents for pause in read.pauses_of.get(agent, ())]
        return pause_totals(theirs, read.since, read.until)

    def _team_breaks(self, agent_id: str) -> tuple[int, int] | None:
        """(the agent's team on a break, its limit) when the team has ``max_paused``."""
        settings = self.switchboard.config.agents.get(agent_id)
        team = settings.team if settings is not None else None
        if team is None:
            return None
        return self.switchboard.breaks_taken([team]).get(team)

    async def _codes_today(self, agent_id: str) -> dict[str, int]:
        """The codes ``agent_id`` gave today, code -> calls, read from the records at most
        every :data:`DISPUTES_READ_EVERY` seconds for every desktop together (empty without
        records or when they cannot be read)."""
        if self._dispositions is None:
            return {}
        now = time.monotonic()
        kept = self._codes_read
        if kept is None or now - kept[0] >= DISPUTES_READ_EVERY:
            zone = ZoneInfo(self.switchboard.config.ivr.timezone)
            since = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
            try:
                given = await self._dispositions(since, datetime.now(UTC))
            except RecordError:
                return {}
            counts: dict[str, dict[str, int]] = {}
            for record in given:
                mine = counts.setdefault(record.agent, {})
                mine[record.code] = mine.get(record.code, 0) + 1
            kept = self._codes_read = (now, counts)
        return dict(kept[1].get(agent_id, {}))

    async def _day_stretches(self) -> _DayStretches | None:
        """Today's logged-in and paused stretches of every agent (since midnight in
        ``ivr.timezone``), read at most every :data:`DISPUTES_READ_EVERY` seconds for every
        desktop together; None without records or when they cannot be read."""
        if self._shifts is None:
            return None
        now = time.monotonic()
        kept = self._shifts_read
        if kept is None or now - kept[0] >= DISPUTES_READ_EVERY:
            until = datetime.now(UTC)
            zone = ZoneInfo(self.switchboard.config.ivr.timezone)
            since = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
            try:
                sessions, pauses = await self._shifts(since, until)
            except RecordError:
                return None
            pauses_of: dict[str, list[Stretch]] = {}
            for pause in pauses:
                pauses_of.setdefault(pause.agent, []).append(pause)
            kept = self._shifts_read = (
                now,
                _DayStretches(since, until, sessions, pauses, pauses_of),
            )
        return kept[1]

    async def _pick_call(self, supervisor_id: str, agent_id: str) -> str:
        """A call of ``agent_id`` (one of the supervisor's) within ``evaluation_target.days``
        that they answered and nobody scored, at random (recorded ones first): HTTPError
        404 when there is none."""
        config = self.switchboard.config
        target = target_of(config, agent_id)
        if target is None or self._agent_calls is None or self._evaluations is None:
            raise HTTPError(404, f"no evaluation_target for {agent_id}")
        if agent_id not in self._supervised(supervisor_id):
            raise HTTPError(404, f"no agent {agent_id!r} in your teams")
        until = datetime.now(UTC)
        since = until - timedelta(days=target.days)
        try:
            calls = await self._agent_calls(agent_id, since, PICK_AMONG)
            made = await self._evaluations(since, until, [agent_id])
        except RecordError as exc:
            raise HTTPError(503, f"the records cannot be read: {exc}") from None
        scored = {e.call_id for e in made}
        theirs = [
            c
            for c in calls
            if c["call_id"] not in scored and not str(c["transfer"]).startswith("from ")
        ]
        recorded = [c for c in theirs if c["recording"]]
        if not theirs:
            raise HTTPError(404, f"No call of {agent_id} to score in the last {target.days} days.")
        return str(secrets.choice(recorded or theirs)["call_id"])

    async def _scorable(self, supervisor_id: str, call_id: str) -> dict[str, Any]:
        """The CDR of a call of one of ``supervisor_id``'s agents (HTTPError 404 else)."""
        row = await self._read_record(call_id)
        if row is None or str(row.get("agent") or "") not in self._supervised(supervisor_id):
            raise HTTPError(404, f"no call {call_id!r} of an agent of your teams")
        return row

    def _their_caller(self, supervisor_id: str, call_id: str) -> dict[str, Any]:
        """The waiting caller ``call_id`` as ``queue callers`` shows them (with ``queue``),
        if they wait in a queue of the supervisor's agents: HTTPError 404 otherwise."""
        board = self.switchboard
        entry = board.router.find(call_id)
        if entry is None or entry.queue not in self._supervised_queues(supervisor_id):
            raise HTTPError(404, "That caller waits no more (answered, gone or sent on).")
        for row in board.queue_callers(entry.queue):
            if row["call_id"] == call_id and row["kind"] == "caller":
                return {**row, "queue": entry.queue}
        raise HTTPError(404, "That caller waits no more (answered, gone or sent on).")

    def _caller_page(self, supervisor_id: str, call_id: str, title: str) -> str:
        """``/desktop/caller?id=``: what a supervisor may do with one waiting caller."""
        caller = self._their_caller(supervisor_id, call_id)
        board = self.switchboard
        config = board.config
        queue = str(caller["queue"])
        now = time.monotonic()
        free = [
            view
            for view in (board.router.agent_view(a, now) for a in self._supervised(supervisor_id))
            if view["ready"] and queue in view["queues"]
        ]
        return desktop.render_caller(
            title,
            caller,
            free=free,
            queues=[q for q in config.queues if q != queue],
            box=config.queues[queue].mailbox,
            callback=config.acd.callback_dial is not None,
        )

    def _supervisor_caller_act(
        self, supervisor_id: str, action: str, form: Mapping[str, str]
    ) -> str:
        """A supervisor raises a waiting caller's priority, gives them to a free agent of
        their teams, or sends them elsewhere (another queue, voicemail, a callback)."""
        caller = self._their_caller(supervisor_id, form.get("caller", ""))
        board = self.switchboard
        cid, via = str(caller["call_id"]), f"supervisor:{supervisor_id}"
        try:
            if action == "priority-caller":
                wanted = form.get("priority", "")
                if not wanted.lstrip("-").isdigit():
                    raise HTTPError(400, f"priority: a whole number, not {wanted!r}")
                answer = board.change_priority(cid, int(wanted), via=via)
            elif action == "give-caller":
                agent = form.get("agent", "")
                if agent not in self._supervised(supervisor_id):
                    raise HTTPError(403, f"agent {agent} is not in your teams")
                answer = board.hand_to(cid, agent, via=via)
            else:
                fields = {k: form[k] for k in ("to", "queue", "box") if form.get(k)}
                try:
                    dest = QueueExit.model_validate(fields)
                except ValidationError:
                    raise HTTPError(400, f"Nowhere to send a caller: {fields}") from None
                answer = board.withdraw(cid, dest, via=via)
        except (UnknownCall, UnknownAgent, UnknownQueue) as exc:
            raise HTTPError(404, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(409, str(exc)) from None
        return desktop.caller_said(action, answer, desktop.caller_name(caller))

    def _supervisor_notice(self, supervisor_id: str, action: str, form: Mapping[str, str]) -> str:
        """A supervisor posts a notice for their teams' agents (every agent without teams),
        or takes down one their agents see: any, for a supervisor of every agent; else one
        for their teams only, or their own."""
        by = f"supervisor:{supervisor_id}"
        teams = self.switchboard.config.supervisors[supervisor_id].teams
        zone = ZoneInfo(self.switchboard.config.ivr.timezone)
        if action == "notice-post":
            minutes = form.get("minutes", "60")
            if not minutes.isdigit():
                raise HTTPError(400, f"minutes: a whole number, not {minutes!r}")
            to = form.get("agent", "")
            if to and to not in self._supervised(supervisor_id):
                raise HTTPError(403, f"agent {to} is not in your teams")
            try:
                notice = self.notices.post(
                    form.get("text", ""),
                    by=by,
                    teams=() if to else teams,
                    minutes=int(minutes),
                    agents=(to,) if to else (),
                )
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
            log.info("notice_posted", notice=notice.id, by=by, teams=notice.teams, agents=to)
            until = notice.until.astimezone(zone)
            if to:
                return f"Your message to {to} stands until {until:%H:%M}"
            return f"Your notice stands until {until:%H:%M}"
        try:
            notice = self.notices.get(form.get("id", ""))
        except UnknownNotice as exc:
            raise HTTPError(404, str(exc)) from None
        theirs = (
            notice.by == by
            or not teams
            or (notice.teams and set(notice.teams) <= set(teams))
            or (notice.agents and set(notice.agents) <= set(self._supervised(supervisor_id)))
        )
        if not theirs:
            raise HTTPError(403, "that notice is for agents of other teams too: not yours")
        self.notices.take_down(notice.id, by=by)
        log.info("notice_taken_down", notice=notice.id, by=by)
        return "Notice taken down"

    def _notices_shown(
        self,
        team: str | None = None,
        *,
        teams: Collection[str] | None = None,
        agent: str | None = None,
        wallboard: bool = False,
    ) -> list[desktop.NoticeShown]:
        """The notices an agent of ``team`` sees (``agent``: that agent, with the messages
        to them), or (``teams``) those the agents of a supervisor of those teams see
        (every notice for a supervisor of every agent); ``wallboard``: no message to an
        agent."""
        config = self.switchboard.config
        zone = ZoneInfo(config.ivr.timezone)
        if teams is None:
            standing = self.notices.standing(team, agent=agent)
        else:
            standing = [
                n
                for n in self.notices.standing(everyone=True)
                if not teams
                or (n.agents and any(_team_of(config, a) in teams for a in n.agents))
                or (not n.agents and (not n.teams or set(n.teams) & set(teams)))
            ]
        if wallboard:
            standing = [n for n in standing if not n.agents]
        shown = []
        for notice in standing:
            role, _, person = notice.by.partition(":")
            author = notice.by
            if role == "supervisor" and person in config.supervisors:
                author = config.supervisors[person].name
            if agent is not None and teams is None:
                self.notices.read(notice.id, agent)
            read = ", ".join(
                f"{_name_of(config, a)} {at.astimezone(zone):%H:%M}" for a, at in notice.read_by
            )
            shown.append(
                desktop.NoticeShown(
                    id=notice.id,
                    text=notice.text,
                    author=author,
                    until=f"{notice.until.astimezone(zone):%H:%M}",
                    teams=notice.teams,
                    read=(f"read: {read}" if read else "not read yet") if notice.agents else "",
                )
            )
        return shown

    async def _supervisor_release(self, supervisor_id: str, message_id: str) -> str:
        """A supervisor puts back a message taken in one of their agents' queues (its agent
        went home with it)."""
        message = await self._voicemail(message_id)
        if message.queue not in self._supervised_queues(supervisor_id):
            raise HTTPError(404, f"no message {message_id} in your queues")
        try:
            await self._voicemail_step(self._inbox().release(message_id))
        finally:
            self._messages_seen = None
        log.info(
            "voicemail_step", message=message_id, step="release", via=f"supervisor:{supervisor_id}"
        )
        return f"The message of {message.number} waits again for agents of {message.queue}"

    async def _forecast_page(self, supervisor_id: str, query: Mapping[str, str], title: str) -> str:
        """The supervisor's forecast page: the week of ``week_of`` (next week by default)
        for the queues their agents work, the schedules of now beside it; with ``trend``
        along each queue's trend, with ``shifts`` (``8h,4h``) the shifts that cover it."""
        config = self.switchboard.config
        tz = ZoneInfo(config.ivr.timezone)
        today = datetime.now(tz).date()
        week_of = query.get("week_of")
        try:
            first = date.fromisoformat(week_of) if week_of else next_monday(today)
        except ValueError:
            raise HTTPError(400, f"week_of: a date such as 2026-12-14, not {week_of!r}") from None
        first -= timedelta(days=first.weekday())
        name = config.supervisors[supervisor_id].name or supervisor_id
        options = desktop.ForecastOptions(
            trend=_flag(query, "trend"), shifts=query.get("shifts", "").strip()
        )
        if self._forecast is None:
            return desktop.render_forecast(title, name, {}, first, options, error="no records here")
        try:
            lengths = (
                shift_plan.parse_lengths(options.shifts, INTERVALS["hour"])
                if options.shifts
                else []
            )
            asked = ForecastAsked(
                tz=tz, today=today, first=first, now=datetime.now(tz), trend=options.trend
            )
            found = await self._forecast(asked)
        except (ValueError, RecordError) as exc:
            return desktop.render_forecast(title, name, {}, first, options, error=str(exc))
        theirs = self._supervised_queues(supervisor_id)
        week = found.as_dict()
        week["rows"] = [row for row in week["rows"] if row["queue"] in theirs]
        for key in ("nothing_for", "accuracy", "today", "closed", "trend"):
            week[key] = {q: v for q, v in week[key].items() if q in theirs}
        week["no_history"] = [q for q in week["no_history"] if q in theirs]
        if lengths:
            week["shift_plan"] = shift_plan.plan(week["rows"], lengths, INTERVALS["hour"]).as_dict()
        return desktop.render_forecast(title, name, week, first, options)

    def _supervised_queues(self, supervisor_id: str) -> set[str]:
        """The queues the agents of ``supervisor_id``'s teams are in."""
        router = self.switchboard.router
        return {q for a in self._supervised(supervisor_id) for q in router.agent_view(a)["queues"]}

    def _supervised(self, supervisor_id: str) -> list[str]:
        """The agents ``supervisor_id`` may monitor (their ``teams``; none given: all)."""
        config = self.switchboard.config
        teams = config.supervisors[supervisor_id].teams
        return [
            a
            for a in self.switchboard.router.agent_ids()
            if not teams or (a in config.agents and config.agents[a].team in teams)
        ]

    def _supervisor_view(self, supervisor_id: str, refresh: int) -> desktop.SupervisorDesk:
        board = self.switchboard
        config = board.config
        router = board.router
        now = time.monotonic()
        agents = [router.agent_view(a, now) for a in self._supervised(supervisor_id)]
        members = {str(a["id"]) for a in agents}
        views = [router.queue_view(q, now) for q in router.queue_names()]
        queues = [view for view in views if members & set(view["members"])]
        callers: dict[str, str] = {}
        for agent in agents:
            found = board.agent_call(str(agent["id"]))
            if found is not None:
                active = found[1]
                callers[str(agent["id"])] = active.called or active.call.info.caller_num
        today = self.today
        if today is not None:
            today.roll()
        monitoring = board.monitoring.current(supervisor_id)
        said, error = self._desktop_notes.pop(f"supervisor:{supervisor_id}", ("", ""))
        waiting = [
            {**row, "queue": view["name"]}
            for view in queues
            if view["waiting"]
            for row in [r for r in board.queue_callers(str(view["name"])) if r["kind"] == "caller"][
                : desktop.WAITING_SHOWN
            ]
        ]
        return desktop.SupervisorDesk(
            title=config.api.wallboard_title,
            now=datetime.now(ZoneInfo(config.ivr.timezone)),
            supervisor=supervisor_id,
            name=config.supervisors[supervisor_id].name,
            device=board.supervisor_device(supervisor_id),
            agents=agents,
            callers=callers,
            queues=queues,
            queue_days={str(q["name"]): today.queue(str(q["name"])) for q in queues}
            if today is not None
            else {},
            agent_days={a: today.agent(a) for a in members} if today is not None else {},
            monitoring=monitoring.as_dict(now) if monitoring is not None else None,
            alerts={str(a["queue"]) for a in board.alerts.raised()},
            agent_alerts=set(board.agent_alerts.standing()),
            waits={str(q["name"]): router.wait_for_new_caller(str(q["name"])) for q in queues},
            breaks=board.breaks_taken(config.supervisors[supervisor_id].teams or None),
            break_lines={
                team: [(a, config.agents[a].name or a if a in config.agents else a) for a in line]
                for team, line in board.breaks.lines().items()
                if not config.supervisors[supervisor_id].teams
                or team in config.supervisors[supervisor_id].teams
            },
            notices=self._notices_shown(teams=config.supervisors[supervisor_id].teams),
            waiting=waiting,
            pbx_down=None if self.link.connected else self.link.reason,
            said=said,
            error=error,
            refresh=refresh,
            scheduled=self._scheduled(members),
        )

    def _desktop_view(self, agent: dict[str, Any], refresh: int) -> desktop.Desktop:
        board = self.switchboard
        config = board.config
        router = board.router
        agent_id = str(agent["id"])
        now = time.monotonic()
        mine = [str(q) for q in agent["queues"]]
        call: desktop.CallShown | None = None
        active = board.active.get(agent["call_id"]) if agent["call_id"] else None
        if active is None:
            found = board.agent_call(agent_id)
            active = found[1] if found is not None else None
        if active is not None:
            info = active.call.info
            call = desktop.CallShown(
                number=active.called or info.caller_num,
                name=info.caller_name,
                queue=active.queue,
                call_id=info.call_id,
                on_line_seconds=now - active.started,
                talk_seconds=now - active.talk_since if active.talk_since else None,
                variables=dict(active.variables),
                on_hold=active.held_since is not None,
                recording=active.recording is not None,
                recording_paused=active.recording_muted,
                consult=consult_view(active.consult),
                link=_screen_pop(config, active, agent_id),
                script=script_of_call(config, active, agent_id, str(agent.get("name") or "")),
            )
        elif agent["state"] not in ("ringing", "on_call"):
            last = board.dispositions.last_call_of(agent_id)
            if last is not None:
                call = desktop.CallShown(number=last[0], queue=last[1] or None)
        preview = next((p for p in board.dialler.previews() if p["agent"] == agent_id), None)
        today = self.today
        day = today.agent(agent_id) if today is not None else AgentDay()
        if today is not None:
            today.roll()
        said, error = self._desktop_notes.pop(f"agent:{agent_id}", ("", ""))
        return desktop.Desktop(
            title=config.api.wallboard_title,
            now=datetime.now(ZoneInfo(config.ivr.timezone)),
            agent=agent,
            queues=[router.queue_view(q, now) for q in mine],
            day=day,
            pause_reasons=list(config.pause_reasons),
            dispositions={
                code: config.dispositions[code].callback
                for code in board.dispositions.codes_for(agent_id)
            },
            noted={code for code, d in config.dispositions.items() if d.note_required},
            transfer_queues=[q for q in router.queue_names() if call is None or q != call.queue],
            call=call,
            preview=preview,
            preview_script=(
                script_of_preview(config, preview, str(agent.get("name") or ""))
                if preview is not None
                else None
            ),
            can_dial=config.acd.dial_out is not None,
            open_queues=self._open_queues(),
            over=board.agent_alerts.over(agent_id),
            promised=board.callbacks.promised_by(agent_id),
            hot_desk=agent_id in config.agents and config.agents[agent_id].hot_desk,
            can_block=config.acd.agent_block_list is not None,
            blocked=board.blocked_by(agent_id),
            scores=bool(config.evaluation_forms),
            notices=self._notices_shown(
                config.agents[agent_id].team if agent_id in config.agents else None,
                agent=agent_id,
            ),
            pbx_down=None if self.link.connected else self.link.reason,
            said=said,
            error=error,
            refresh=refresh,
            schedule=_schedule_today(config, agent_id),
        )

    def _authorize(self, authorization: str, scope: str) -> str | None:
        """With ``api.token`` or ``api.tokens``, every route but ``GET /health`` and ``GET
        /metrics`` needs ``Authorization: Bearer <token>`` (401 otherwise, never saying why
        it failed); a named token only where its ``allow`` has ``scope`` (403). Returns who
        asked: MAIN_TOKEN, a named token's name, or None when no token is needed."""
        token = self._token
        if token is None and not self._tokens:
            return None
        scheme, _, given = authorization.partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        if token is not None and hmac.compare_digest(given.encode(), token.encode()):
            return MAIN_TOKEN
        digest = hashlib.sha256(given.encode()).hexdigest()
        found = next(
            (v for sha, v in self._tokens.items() if hmac.compare_digest(sha, digest)), None
        )
        if not given or found is None:
            raise HTTPError(401, "this control API needs its token: Authorization: Bearer ...")
        name, allowed = found
        _ACTOR.set(name)  # the trail names a known token refused a route too
        if scope == WEB_READ and allowed & {"read", "callbacks"}:
            return name
        if scope not in allowed:
            log.warning("api_request_refused", by=name, scope=scope)
            raise HTTPError(
                403,
                f"token {name!r} may not do this (it needs {scope!r}; api.tokens.{name}.allow "
                f"has {', '.join(sorted(allowed))})",
            )
        return name

    async def _in_time(self, action: Coroutine[Any, Any, _T], what: str) -> _T:
        """``action``'s answer, or HTTPError 504 once it has run :data:`API_ACTION_LIMIT`
        seconds: the action goes on (cut halfway it could leave a call half moved), and
        the client is not left waiting for good on a PBX that does not answer."""
        task = asyncio.ensure_future(action)
        try:
            done, _ = await asyncio.wait({task}, timeout=API_ACTION_LIMIT)
        except asyncio.CancelledError:
            await cancel_and_wait(task)
            raise
        if done:
            return task.result()
        log.warning("api_action_late", what=what, limit=API_ACTION_LIMIT)
        self._late.add(task)
        task.add_done_callback(functools.partial(self._ended_late, what))
        raise HTTPError(
            504,
            f"{what}: not done within {API_ACTION_LIMIT:g} s (the PBX has not answered); "
            "it goes on: see GET /status",
        )

    def _ended_late(self, what: str, task: asyncio.Task[Any]) -> None:
        self._late.discard(task)
        if task.cancelled():
            log.info("api_action_ended_late", what=what, outcome="cancelled")
        elif task.exception() is not None:
            log.info("api_action_ended_late", what=what, outcome=str(task.exception()))
        else:
            log.info("api_action_ended_late", what=what, outcome="done")

    async def dispatch(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one request; raises HTTPError for anything the caller got wrong."""
        parts = [unquote(p) for p in path.split("?", 1)[0].split("/") if p]
        board = self.switchboard
        router = board.router
        if method == "GET" and parts == ["health"]:
            pbx = self.link.as_dict()
            health = {"pbx": pbx, **self._records_health()}
            if self._drain is not None and self._drain.active:
                health["drain"] = self._drain.view()
            if self.streams is not None and self.streams.served:
                health["streams"] = self.streams.health()
            if not self.link.connected:
                raise HTTPError(503, "pbx link down", {"status": "pbx link down", **health})
            return {"status": "ok", **health}
        if self.read_only:
            raise HTTPError(404, "this listener serves GET /metrics and GET /health only")
        if method == "GET" and parts == ["status"]:
            snapshot = {"pbx": self.link.as_dict(), **self._records_health(), **router.snapshot()}
            snapshot["calls"] = [
                {
                    "call_id": cid,
                    "queue": a.queue,
                    "agent": a.agent,
                    "path": a.path,
                    "recording": a.recording,
                    "recording_paused": a.recording_muted,
                    "variables": a.variables,
                    "consult": consult_view(a.consult),
                    "on_hold": a.held_since is not None,
                }
                for cid, a in board.active.items()
            ]
            snapshot["supervisors"] = board.monitoring.snapshot()
            snapshot["previews"] = board.dialler.previews()
            snapshot["dialling"] = board.dials.dialling()
            snapshot["alerts"] = board.alerts.raised()
            snapshot["agent_alerts"] = board.agent_alerts.raised()
            break_lines = board.breaks.lines()
            snapshot["breaks"] = [
                {"team": team, "away": away, "max_paused": limit, "line": break_lines.get(team, [])}
                for team, (away, limit) in sorted(board.breaks_taken().items())
            ]
            snapshot["campaigns"] = self.campaigns.view() if self.campaigns is not None else []
            snapshot["drain"] = self._drain.view() if self._drain is not None else None
            snapshot["switches"] = board.switch_views()
            snapshot["member_changes"] = board.roster.member_views()
            snapshot["left_behind"] = left_behind(board.left_rooms, board.stranded)
            later = board.callbacks.scheduled_by_queue()
            day = self.today.roll() if self.today is not None else None
            messages = self._voicemails_open()
            oldest = self._voicemails_oldest()
            for queue in snapshot.get("queues", []):
                queue["callbacks_later"] = later.get(queue["name"], 0)
                queue["closed"] = board.queue_closed(queue["name"])
                queue["voicemails"] = messages.get(queue["name"])
                age = oldest.get(queue["name"])
                queue["oldest_voicemail"] = None if age is None else round(age, 1)
                if self.today is not None and day is not None:
                    queue["today"] = self.today.queue(queue["name"]).as_dict(day)
            profiles = bool(board.config.profiles)
            for agent in snapshot.get("agents", []):
                if self.today is not None and day is not None:
                    agent["today"] = self.today.agent(agent["id"]).as_dict(day)
                if profiles:
                    agent["profile"] = board.roster.profile_of(agent["id"])
            snapshot["skill_changes"] = board.roster.skill_views()
            snapshot["added_agents"] = board.roster.added_views()
            snapshot["added_queues"] = board.roster.added_queue_views()
            snapshot["schedule_changes"] = board.roster.schedule_change_views()
            snapshot["schedule_requests"] = board.roster.schedule_request_views()
            planned = self._scheduled(set(board.config.agents))
            if planned is not None:
                snapshot["scheduled"] = {"now": planned[0], "logged_in": planned[1]}
            snapshot["notices"] = [n.as_dict() for n in self.notices.standing(everyone=True)]
            return snapshot
        if parts and parts[0] == "campaigns":
            return self._campaign_action(method, parts[1:], body)
        if parts == ["audit"]:
            if method != "GET":
                raise HTTPError(405, "use GET for /audit")
            return await self._read_audit(path.partition("?")[2])
        if parts == ["figures", "outcomes"] and method == "GET":
            return await self._read_outcomes(path.partition("?")[2])
        if parts == ["figures", "forecast"] and method == "GET":
            return await self._read_forecast(path.partition("?")[2])
        if parts and parts[0] == "figures":
            if method != "GET" or len(parts) != 2 or parts[1] not in ("queues", "agents"):
                raise HTTPError(
                    404,
                    "figure routes: GET /figures/queues, GET /figures/agents, "
                    "GET /figures/outcomes, GET /figures/forecast",
                )
            return await self._read_figures(parts[1], path.partition("?")[2])
        if method == "POST" and parts == ["reload"]:
            if self._reload is None:
                raise HTTPError(409, "reload is not available")
            try:
                pending = await self._reload()
            except ConfigError as exc:
                raise HTTPError(400, str(exc)) from None
            return {"reloaded": True, "needs_restart": pending}
        if parts and parts[0] == "numbers":
            return self._number_list_action(method, parts[1:], body)
        if parts == ["callbacks"]:
            if method == "GET":
                return {"callbacks": board.callbacks.waiting()}
            if method != "POST":
                raise HTTPError(405, "use GET or POST for /callbacks")
            return self._callback_request(body)
        if parts == ["callbacks", "slots"]:
            if method != "GET":
                raise HTTPError(405, "use GET for /callbacks/slots")
            return self._callback_slots(path)
        if len(parts) == 2 and parts[0] == "callbacks":
            if method != "GET":
                raise HTTPError(405, f"use GET for /callbacks/{parts[1]}")
            return await self._callback_status(parts[1])
        if len(parts) == 3 and parts[0] == "callbacks" and parts[2] == "cancel":
            if method != "POST":
                raise HTTPError(405, f"use POST for /callbacks/{parts[1]}/cancel")
            try:
                return board.callbacks.cancel(parts[1])
            except UnknownCallback as exc:
                raise HTTPError(404, str(exc)) from None
            except EngineError as exc:
                raise HTTPError(409, str(exc)) from None
        if parts == ["calls"]:
            if method != "GET":
                raise HTTPError(405, "use GET for /calls?number=")
            return await self._number_history(path.partition("?")[2])
        if len(parts) == 3 and parts[0] == "calls" and parts[2] == "evaluation":
            if method != "POST":
                raise HTTPError(405, f"use POST for /calls/{parts[1]}/evaluation")
            supervisor, scores = body.get("supervisor"), body.get("scores")
            comment = body.get("comment", "")
            if not isinstance(supervisor, str) or not isinstance(scores, dict):
                raise HTTPError(
                    400, 'say who scored what: {"supervisor": "2000", "scores": {"greeting": 8}}'
                )
            if not isinstance(comment, str):
                raise HTTPError(400, '"comment" is text')
            evaluated = await self.evaluate(parts[1], supervisor, scores, comment)
            return evaluated.as_dict()
        if parts[:1] == ["calls"] and parts[2:] == ["evaluation", "reply"]:
            if method != "POST":
                raise HTTPError(405, f"use POST for /calls/{parts[1]}/evaluation/reply")
            agent, supervisor = body.get("agent"), body.get("supervisor")
            reply, note = body.get("reply"), body.get("note", "")
            if not all(isinstance(v, str) for v in (agent, supervisor, reply, note)):
                raise HTTPError(
                    400,
                    'say who answers whose scorecard: {"agent": "1001", "supervisor": "2000", '
                    '"reply": "agreed"} (or "disputed" with a "note")',
                )
            replied = await self.reply_to_evaluation(
                parts[1], str(agent), str(supervisor), str(reply), str(note)
            )
            return replied.as_dict()
        if parts[:1] == ["queues"] and (
            len(parts) == 1 or parts[1:] == ["added"] or len(parts) == 2 or parts[2:] == ["remove"]
        ):
            return self._queue_roster_action(method, parts[1:], body)
        if len(parts) == 3 and parts[0] == "queues" and parts[2] == "wait":
            if method != "GET":
                raise HTTPError(405, f"use GET for /queues/{parts[1]}/wait")
            return self._queue_wait(parts[1])
        if len(parts) == 3 and parts[0] == "queues" and parts[2] == "callers":
            if method != "GET":
                raise HTTPError(405, f"use GET for /queues/{parts[1]}/callers")
            try:
                return {"queue": parts[1], "callers": board.queue_callers(parts[1])}
            except UnknownQueue as exc:
                raise HTTPError(404, str(exc)) from None
        if len(parts) == 3 and parts[0] == "calls" and parts[2] in _CALLER_ACTIONS:
            if method != "POST":
                raise HTTPError(405, f"use POST for /calls/{parts[1]}/{parts[2]}")
            return self._caller_action(parts[1], parts[2], body)
        if parts and parts[0] == "voicemails":
            return await self._voicemail_action(method, path, parts[1:], body)
        if parts and parts[0] == "notices":
            return self._notice_action(method, path, parts[1:], body)
        if parts == ["erasures"]:
            return await self._erasure(method, body)
        if parts and parts[0] == "drain":
            return self._drain_action(method, parts[1:], body)
        if parts and parts[0] == "switches":
            return self._switch_action(method, parts[1:])
        if parts and parts[0] == "roster":
            return self._roster_action(method, parts[1:], body)
        if len(parts) == 3 and parts[0] == "teams" and parts[2] == "schedule":
            if method != "POST":
                raise HTTPError(405, f"use POST for /teams/{parts[1]}/schedule")
            return self._team_schedule(parts[1], body)
        if parts and parts[0] == "schedule-requests":
            return self._schedule_request_action(method, parts[1:], body)
        if len(parts) == 3 and parts[0] == "agents" and parts[2] == "schedule":
            return self._schedule_action(method, path, parts[1], body)
        if len(parts) == 3 and parts[0] == "agents" and parts[2] == "script":
            if method != "GET":
                raise HTTPError(405, f"use GET for /agents/{parts[1]}/script")
            return self._agent_script(parts[1])
        if len(parts) == 3 and parts[0] == "agents":
            if method != "POST":
                raise HTTPError(405, f"use POST for /agents/{parts[1]}/{parts[2]}")
            return await self._agent_action(parts[1], parts[2], body)
        if len(parts) == 3 and parts[0] == "supervisors":
            if method != "POST":
                raise HTTPError(405, f"use POST for /supervisors/{parts[1]}/{parts[2]}")
            return await self._supervisor_action(parts[1], parts[2], body)
        raise HTTPError(404, f"no route {method} {path}")

    def _agent_script(self, agent_id: str) -> dict[str, Any]:
        """``GET /agents/<id>/script``: the script of the call the agent is offered or
        talks on (else of the lead a preview shows them), filled in for that call."""
        board = self.switchboard
        config = board.config
        try:
            agent = board.router.agent_view(agent_id)
        except UnknownAgent:
            raise HTTPError(404, f"unknown agent {agent_id}") from None
        name = str(agent.get("name") or "")
        offered = board.active.get(agent["call_id"]) if agent["call_id"] else None
        found = (agent["call_id"], offered) if offered else board.agent_call(agent_id)
        script = None
        call_id = ""
        if found is not None:
            call_id, active = found
            script = script_of_call(config, active, agent_id, name)
        else:
            preview = next((p for p in board.dialler.previews() if p["agent"] == agent_id), None)
            if preview is not None:
                script = script_of_preview(config, preview, name)
        if script is None:
            raise HTTPError(404, f"agent {agent_id} has no call with a script now")
        return {"agent": agent_id, "call_id": call_id, **script.view()}

    def _schedule_action(
        self, method: str, path: str, agent_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``GET /agents/<id>/schedule[?since=2026-12-08&days=14]``: the agent's days;
        ``POST /agents/<id>/schedule {"day": "2026-12-08", "hours": ["10:00-18:00"]}``:
        that day's hours from now on (``[]``: a day off, null: as the schedule says)."""
        board = self.switchboard
        if agent_id not in board.config.agents:
            raise HTTPError(404, f"unknown agent {agent_id}")
        if method == "GET":
            query = parse_qs(path.partition("?")[2])
            since = _iso_day(query["since"][-1]) if "since" in query else self._today(agent_id)
            try:
                days = int(query["days"][-1]) if "days" in query else 14
            except ValueError:
                days = 0
            if not 1 <= days <= 366:
                raise HTTPError(400, "days: a whole number of days, 1-366")
            return {"agent": agent_id, "days": board.roster.schedule_days(agent_id, since, days)}
        if method != "POST":
            raise HTTPError(405, f"use GET or POST for /agents/{agent_id}/schedule")
        when, hours = _day_and_hours(body)
        return board.roster.change_schedule(agent_id, when, hours, via="api")

    def _schedule_request_action(
        self, method: str, rest: list[str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``GET /schedule-requests``, ``POST /schedule-requests`` (an agent asks),
        ``POST /schedule-requests/<id>/approve|decline`` (a supervisor answers),
        ``POST /schedule-requests/<id>/withdraw`` (the agent takes it back)."""
        board = self.switchboard
        if not rest:
            if method == "GET":
                return {"requests": board.roster.schedule_request_views()}
            if method != "POST":
                raise HTTPError(405, "use GET or POST for /schedule-requests")
            agent, day, hours, note = (body.get(k) for k in ("agent", "day", "hours", "note"))
            if not isinstance(agent, str) or not isinstance(day, str) or hours is None:
                raise HTTPError(
                    400,
                    'say who asks for which day: {"agent": "1002", "day": "2026-12-08", '
                    '"hours": ["10:00-18:00"], "note": "swap with Ann"} ([]: a day off)',
                )
            if not isinstance(note, str | None):
                raise HTTPError(400, '"note" is text')
            try:
                return board.roster.ask_schedule(agent, _iso_day(day), hours, note=note or "")
            except UnknownAgent as exc:
                raise HTTPError(404, str(exc)) from None
            except InvalidAgent as exc:
                raise HTTPError(400, str(exc)) from None
        if len(rest) != 2 or rest[1] not in ("approve", "decline", "withdraw") or method != "POST":
            raise HTTPError(
                404,
                "routes: GET /schedule-requests, "
                "POST /schedule-requests[/{id}/approve|decline|withdraw]",
            )
        if rest[1] == "withdraw":
            agent = body.get("agent")
            if not isinstance(agent, str) or not agent:
                raise HTTPError(400, 'say whose request it is: {"agent": "1002"}')
            try:
                return board.roster.withdraw_schedule_request(rest[0], agent)
            except NotPermitted as exc:
                raise HTTPError(403, str(exc)) from None
            except EngineError as exc:
                raise HTTPError(404, str(exc)) from None
        by = body.get("by", "api")
        if not isinstance(by, str) or not by:
            raise HTTPError(400, 'say who answers: {"by": "2000"}')
        try:
            return board.roster.decide_schedule(rest[0], approve=rest[1] == "approve", by=by)
        except InvalidAgent as exc:
            raise HTTPError(400, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(404, str(exc)) from None

    def _team_schedule(self, team: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /teams/<team>/schedule {"day", "hours"}``: that day for every agent of the
        team (a training morning, a team's day off)."""
        board = self.switchboard
        config = board.config
        members = sorted(a for a, agent in config.agents.items() if agent.team == team)
        if team not in config.teams and not members:
            raise HTTPError(404, f"no team {team!r}")
        when, shown = _day_and_hours(body)
        via = f"api:team {team}"
        days = [board.roster.change_schedule(a, when, shown, via=via) for a in members]
        return {"team": team, "day": when.isoformat(), "hours": shown, "days": days}

    def _today(self, agent_id: str) -> date:
        """Today where ``agent_id``'s schedule is (the centre's time zone without one)."""
        schedule = schedule_of(self.switchboard.config, agent_id)
        zone = (
            schedule.zone
            if schedule is not None
            else ZoneInfo(self.switchboard.config.ivr.timezone)
        )
        return datetime.now(zone).date()

    def _notice_action(
        self, method: str, path: str, parts: list[str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``GET /notices``, ``POST /notices``, ``POST /notices/<id>/take-down``."""
        notices = self.notices
        if not parts:
            if method == "GET":
                query = parse_qs(path.partition("?")[2])
                team = query["team"][-1] if "team" in query else None
                shown = notices.standing(team, everyone=team is None)
                return {"notices": [n.as_dict() for n in shown]}
            if method != "POST":
                raise HTTPError(405, "use GET or POST for /notices")
            text, teams, minutes = body.get("text"), body.get("teams", []), body.get("minutes", 60)
            agents = body.get("agents", [])
            if not isinstance(text, str):
                raise HTTPError(400, 'say what: {"text": "Team meeting at 15:00"}')
            if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
                raise HTTPError(400, '"teams" lists team names: {"teams": ["night"]}')
            if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents):
                raise HTTPError(400, '"agents" lists agent ids: {"agents": ["1001"]}')
            strangers = sorted(set(agents) - set(self.switchboard.router.agents))
            if strangers:
                raise HTTPError(404, f"no agent {', '.join(strangers)}")
            if isinstance(minutes, bool) or not isinstance(minutes, int | float):
                raise HTTPError(400, '"minutes" is a number: {"minutes": 60}')
            known = {a.team for a in self.switchboard.config.agents.values() if a.team}
            unknown = sorted(set(teams) - known)
            if unknown:
                raise HTTPError(404, f"no agent is in team {', '.join(unknown)}")
            try:
                notice = notices.post(text, by=str(body.get("by") or "api"), teams=teams,
                                      minutes=minutes, agents=agents)  # fmt: skip
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
            log.info(
                "notice_posted",
                notice=notice.id,
                by=notice.by,
                teams=notice.teams,
                agents=notice.agents,
            )
            return notice.as_dict()
        if len(parts) == 2 and parts[1] == "take-down":
            if method != "POST":
                raise HTTPError(405, f"use POST for /notices/{parts[0]}/take-down")
            try:
                notice = notices.take_down(parts[0], by=str(body.get("by") or "api"))
            except UnknownNotice as exc:
                raise HTTPError(404, str(exc)) from None
            log.info("notice_taken_down", notice=notice.id)
            return notice.as_dict()
        raise HTTPError(404, f"no route {method} /notices/{'/'.join(parts)}")

    def _queue_wait(self, queue: str) -> dict[str, Any]:
        """``GET /queues/<q>/wait``: what a caller calling now would wait, for a web page's
        "call us now" (or "ask for a callback") box."""
        board = self.switchboard
        config = board.config
        qcfg = config.queues.get(queue)
        if qcfg is None:
            raise HTTPError(404, f"no queue {queue!r}")
        look = board.look_at_queue(queue)
        closed = board.queue_closed(queue)
        opens = board.queue_opens_at(queue) if closed is not None else None
        expected = board.router.wait_for_new_caller(queue)
        wait = None if expected is None else round(expected)
        return {
            "queue": queue,
            "open": closed is None and look.staffed > 0,
            "closed_because": closed,
            "opens_at": None if opens is None else opens.isoformat(timespec="seconds"),
            "waiting": look.waiting,
            "agents_free": look.free,
            "agents_staffed": look.staffed,
            "expected_wait_seconds": wait,
            "said": wait_said(wait, staffed=look.staffed, closed=closed is not None),
            "callbacks": config.acd.callback_dial is not None,
        }

    def _period(self, params: Mapping[str, str]) -> tuple[datetime, datetime]:
        """``since`` (default today) and ``until`` (default now) of a query, read in ``tz``
        (default the IVR's time zone); 400 for a zone or a time that is none."""
        zone = params.get("tz") or self.switchboard.config.ivr.timezone
        try:
            tz = ZoneInfo(zone)
            return (
                parse_when(params.get("since", "today"), tz),
                parse_when(params.get("until", "now"), tz),
            )
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from None

    async def _read_outcomes(self, query: str) -> dict[str, Any]:
        """``GET /figures/outcomes?since=&until=&tz=&per=agent|queue|campaign&team=``: the
        codes given in a stretch of time (today by default) counted per agent (queue,
        campaign), as ``callcenter report --outcomes --json``."""
        if self._dispositions is None:
            raise HTTPError(404, "no records to read the outcomes from")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        per = params.get("per", "agent")
        if per not in OUTCOME_KEYS:
            raise HTTPError(400, f"per: one of {', '.join(OUTCOME_KEYS)}, not {per!r}")
        since, until = self._period(params)
        team = params.get("team")
        agents = self.switchboard.config.agents
        members = {a for a, c in agents.items() if c.team == team} if team else None
        if team and not members:
            raise HTTPError(400, f"team: no agent is in team {team!r}")
        try:
            given = await self._dispositions(since, until)
        except RecordError as exc:
            raise HTTPError(503, str(exc)) from None
        chosen = [r for r in given if members is None or r.agent in members]
        return {
            "figures": "outcomes",
            "since": since.isoformat(timespec="seconds"),
            "until": until.isoformat(timespec="seconds"),
            "per": per,
            "rows": outcome_rows(chosen, per),
        }

    async def _read_forecast(self, query: str) -> dict[str, Any]:
        """``GET /figures/forecast?week_of=&weeks=&by=&target=&shrinkage=&queue=&tz=``: the
        week's forecast as ``callcenter forecast`` prints it (next week, 4 weeks of
        history, by hour, 80 % within the service level, no shrinkage, every queue); with
        ``shifts=8h,4h``, ``shift_plan``: the shifts that cover it
        (:func:`callcenter.shift_plan.plan`)."""
        if self._forecast is None:
            raise HTTPError(404, "no records to forecast from")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        zone = params.get("tz") or self.switchboard.config.ivr.timezone
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise HTTPError(400, f"tz: unknown time zone {zone!r}") from None
        week_of = params.get("week_of")
        try:
            first = date.fromisoformat(week_of) if week_of else None
        except ValueError:
            raise HTTPError(400, f"week_of: a date such as 2026-12-14, not {week_of!r}") from None
        asked = ForecastAsked(
            tz=tz,
            today=datetime.now(tz).date(),
            first=first,
            weeks=int(_number(params, "weeks", 4, 1, 52, whole=True)),
            by=params.get("by", "hour"),
            target=_number(params, "target", 80.0, 1.0, 99.9) / 100.0,
            shrinkage=_number(params, "shrinkage", 0.0, 0.0, 95.0) / 100.0,
            queue=params.get("queue") or None,
            now=datetime.now(tz),
            trend=_flag(params, "trend"),
        )
        lengths: list[int] = []
        if params.get("shifts"):
            try:
                lengths = shift_plan.parse_lengths(params["shifts"], INTERVALS.get(asked.by, 60))
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        try:
            week = await self._forecast(asked)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        except RecordError as exc:
            raise HTTPError(503, str(exc)) from None
        answer = {"figures": "forecast", "tz": zone, **week.as_dict()}
        if lengths:
            proposed = shift_plan.plan(week.rows, lengths, INTERVALS[asked.by])
            answer["shift_plan"] = proposed.as_dict()
        return answer

    async def _read_audit(self, query: str) -> dict[str, Any]:
        """``GET /audit?since=&until=&who=&tz=``: the audit trail's rows of a stretch of
        time (today by default), oldest first."""
        if self._audit is None:
            raise HTTPError(404, "no records to read the audit trail from")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        since, until = self._period(params)
        try:
            rows = await self._audit.reader()(since, until, params.get("who") or None)
        except RecordError as exc:
            raise HTTPError(503, str(exc)) from None
        return {
            "since": since.isoformat(timespec="seconds"),
            "until": until.isoformat(timespec="seconds"),
            "rows": [row.view() for row in rows],
        }

    async def _read_figures(self, which: str, query: str) -> dict[str, Any]:
        """``GET /figures/queues|agents?since=&until=&by=&tz=&fcr_days=`` (agents: and
        ``team=``), the figures of ``callcenter report --queues|--agents`` with the same
        defaults (today, by day, the config's ``ivr.timezone``)."""
        if self._figures is None:
            raise HTTPError(404, "no records to read figures from")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        zone = params.get("tz") or self.switchboard.config.ivr.timezone
        by = params.get("by", "day")
        if by not in GROUPINGS:
            raise HTTPError(400, f"by: one of {', '.join(GROUPINGS)}, not {by!r}")
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise HTTPError(400, f"tz: unknown time zone {zone!r}") from None
        fcr = params.get("fcr_days", str(FCR_DAYS))
        if not fcr.isdigit() or int(fcr) < 1:
            raise HTTPError(400, f"fcr_days: a whole number of days, not {fcr!r}")
        team = params.get("team")
        members: set[str] | None = None
        if team is not None:
            if which != "agents":
                raise HTTPError(400, "team: goes with /figures/agents")
            agents = self.switchboard.config.agents
            members = {aid for aid, agent in agents.items() if agent.team == team}
            if not members:
                raise HTTPError(400, f"team: no agent is in team {team!r}")
        try:
            since = parse_when(params.get("since", "today"), tz)
            until = parse_when(params.get("until", "now"), tz)
            periods = Periods(since, until, next(g for g in GROUPINGS if g == by), tz)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        try:
            rows = await self._figures(which, periods, int(fcr))
        except RecordError as exc:
            raise HTTPError(503, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(409, str(exc)) from None
        if members is not None:
            rows = [row for row in rows if row["agent"] in members]
        return {
            "figures": which,
            "since": periods.since.isoformat(timespec="seconds"),
            "until": periods.until.isoformat(timespec="seconds"),
            "by": by,
            "tz": zone,
            "rows": rows,
        }

    def render_metrics(self) -> str:
        """``GET /metrics``: the Prometheus text of the moment."""
        if self.metrics is None:
            raise HTTPError(404, "no metrics in this daemon")
        board = self.switchboard
        return self.metrics.render(
            board.router.snapshot(),
            calls_active=len(board.active),
            monitoring=sum(1 for s in board.monitoring.snapshot() if s["monitoring"]),
            pbx_connected=self.link.connected,
            records=self._records() if self._records is not None else None,
            mqtt=self._mqtt() if self._mqtt is not None else None,
            campaigns=self.campaigns.view() if self.campaigns is not None else (),
            draining=board.draining,
            switches={v["name"]: v["on"] for v in board.switch_views()},
            alerts=board.alerts.states(),
            voicemails=self._voicemails_open(),
            agent_alerts=(board.agent_alerts.standing() if board.config.acd.agent_alerts else None),
            oldest_voicemails=self._voicemails_oldest(),
            scheduled=self._scheduled(set(board.config.agents)),
            left_behind=left_behind(board.left_rooms, board.stranded),
        )

    def _scheduled(self, among: Collection[str]) -> tuple[int, int] | None:
        """(agents of ``among`` scheduled now, of whom logged in); None: no schedules."""
        board = self.switchboard
        working = scheduled_now(board.config, datetime.now(UTC))
        if working is None:
            return None
        chosen = [a for a in working if a in among]
        present = sum(
            1
            for a in chosen
            if a in board.router.agents
            and board.router.agents[a].state is not AgentState.LOGGED_OUT
        )
        return len(chosen), present

    def _voicemails_oldest(self) -> dict[str, float]:
        """Queue -> seconds since its oldest message still to call back was left (0: none),
        for every queue with a box."""
        inbox = self.voicemails
        if inbox is None:
            return {}
        now = datetime.now(UTC)
        queues = self.switchboard.config.queues
        return {name: inbox.oldest(name, now) for name, q in queues.items() if q.mailbox}

    def _voicemails_open(self) -> dict[str, int]:
        """Queue -> its messages still to call back, for every queue with a box."""
        if self.voicemails is None:
            return {}
        counts = self.voicemails.open
        queues = self.switchboard.config.queues
        return {name: counts.get(name, 0) for name, q in queues.items() if q.mailbox}

    def _records_health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"records": self._records()} if self._records is not None else {}
        if self._mqtt is not None:
            health["mqtt"] = self._mqtt()
        if self._webhooks is not None:
            health["webhooks"] = self._webhooks()
        return health

    def _switch_action(self, method: str, rest: list[str]) -> dict[str, Any]:
        board = self.switchboard
        if not rest:
            if method != "GET":
                raise HTTPError(405, "use GET for /switches")
            return {"switches": board.switch_views()}
        if len(rest) != 2 or rest[1] not in ("on", "off"):
            raise HTTPError(404, "switch routes: GET /switches, POST /switches/{name}/on|off")
        if method != "POST":
            raise HTTPError(405, f"use POST for /switches/{rest[0]}/{rest[1]}")
        if rest[0] not in board.config.ivr.switches:
            known = ", ".join(board.config.ivr.switches) or "none (ivr.switches)"
            raise HTTPError(404, f"no switch {rest[0]!r}; the config has: {known}")
        changed = board.flip(rest[0], rest[1] == "on", via="api")
        (view,) = [v for v in board.switch_views() if v["name"] == rest[0]]
        return {"switch": view, "changed": changed}

    def _roster_action(self, method: str, rest: list[str], body: dict[str, Any]) -> dict[str, Any]:
        """``GET /roster``, ``POST /roster`` (add), ``POST /roster/<id>`` (change),
        ``POST /roster/<id>/remove``: agents added while the centre runs."""
        board = self.switchboard
        if not rest:
            if method == "GET":
                return {"agents": board.roster.added_views()}
            if method != "POST":
                raise HTTPError(405, "use GET or POST for /roster")
            agent_id = body.get("agent")
            if not isinstance(agent_id, str):
                raise HTTPError(
                    400, 'say who: {"agent": "1010", "name": "Zoe", "device": "PJSIP/1010"}'
                )
            settings = {key: value for key, value in body.items() if key != "agent"}
            call = functools.partial(board.roster.add_agent, agent_id, settings, via="api")
        elif len(rest) == 1 or rest[1:] == ["remove"]:
            if method != "POST":
                raise HTTPError(405, f"use POST for /roster/{'/'.join(rest)}")
            if len(rest) == 1:
                call = functools.partial(board.roster.change_agent, rest[0], body, via="api")
            else:
                call = functools.partial(board.roster.remove_agent, rest[0], via="api")
        else:
            raise HTTPError(
                404, "roster routes: GET /roster, POST /roster, POST /roster/{id}[/remove]"
            )
        return _roster_answer(call)

    def _queue_roster_action(
        self, method: str, rest: list[str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """``GET /queues/added``, ``POST /queues`` (add), ``POST /queues/<name>`` (change),
        ``POST /queues/<name>/remove``: queues added while the centre runs."""
        board = self.switchboard
        if rest == ["added"]:
            if method != "GET":
                raise HTTPError(405, "use GET for /queues/added")
            return {"queues": board.roster.added_queue_views()}
        if method != "POST":
            raise HTTPError(405, f"use POST for /queues{''.join('/' + r for r in rest)}")
        if not rest:
            name = body.get("queue")
            if not isinstance(name, str):
                raise HTTPError(
                    400, 'say which: {"queue": "vip", "agents": ["1001"], "strategy": "ringall"}'
                )
            settings = {key: value for key, value in body.items() if key != "queue"}
            call = functools.partial(board.roster.add_queue, name, settings, via="api")
        elif len(rest) == 1:
            call = functools.partial(board.roster.change_queue, rest[0], body, via="api")
        else:
            call = functools.partial(board.roster.remove_queue, rest[0], via="api")
        return _roster_answer(call)

    def _drain_action(self, method: str, rest: list[str], body: dict[str, Any]) -> dict[str, Any]:
        drain = self._drain
        if method != "POST" or rest not in ([], ["cancel"]):
            raise HTTPError(404, "drain routes: POST /drain, POST /drain/cancel")
        if drain is None:
            raise HTTPError(409, "draining is not available")
        if rest == ["cancel"]:
            if drain.over:
                raise HTTPError(409, "the drain is over: the daemon is stopping")
            if not drain.cancel():
                raise HTTPError(409, "the daemon is not draining")
            return {"drain": None}
        timeout = body.get("timeout", self.switchboard.config.runtime.drain_timeout)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < 10**7
        ):
            raise HTTPError(400, "timeout must be a number of seconds above 0")
        return {"drain": drain.start(float(timeout))}

    def _campaign_action(
        self, method: str, rest: list[str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        campaigns = self.campaigns
        if not rest:
            if method != "GET":
                raise HTTPError(405, "use GET for /campaigns")
            return {"campaigns": campaigns.view() if campaigns is not None else []}
        removing = len(rest) == 4 and rest[1] == "leads" and rest[3] == "remove"
        if not removing and (
            len(rest) != 2 or rest[1] not in ("pause", "resume", "recycle", "leads")
        ):
            raise HTTPError(
                404,
                "campaign routes: GET /campaigns, POST /campaigns/{id}/pause|resume|recycle|leads, "
                "POST /campaigns/{id}/leads/{lead}/remove",
            )
        if method != "POST":
            raise HTTPError(405, f"use POST for /campaigns/{rest[0]}/{rest[1]}")
        if campaigns is None or rest[0] not in campaigns.by_id:
            known = ", ".join(campaigns.by_id) if campaigns is not None else ""
            raise HTTPError(404, f"no campaign {rest[0]!r} running (campaigns: {known or 'none'})")
        campaign = campaigns.by_id[rest[0]]
        if removing:
            try:
                return campaign.remove_lead(rest[2], via="api")
            except UnknownLead as exc:
                raise HTTPError(404, str(exc)) from None
            except EngineError as exc:
                raise HTTPError(409, str(exc)) from None
        if rest[1] == "leads":
            try:
                return campaign.add_lead(_lead_of(body), via="api")
            except EngineError as exc:
                raise HTTPError(409, str(exc)) from None
        if rest[1] == "recycle":
            reasons = body.get("reasons")
            if reasons is not None and (
                not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons)
            ):
                raise HTTPError(400, '"reasons" lists how the tries failed: ["busy", "no-answer"]')
            recycled = campaign.recycle(reasons, via="api")
            return {"campaign": campaign.view(), "recycled": len(recycled)}
        if rest[1] == "pause":
            campaign.pause("api")
        elif self.switchboard.draining:
            raise HTTPError(
                409, "the daemon is draining: campaigns dial again after callcenter drain --cancel"
            )
        else:
            campaign.resume("api")
        return {"campaign": campaign.view()}

    async def _agent_action(
        self, agent_id: str, action: str, body: dict[str, Any], via: str = "api"
    ) -> dict[str, Any]:
        board = self.switchboard
        router = board.router
        left_line = False
        try:
            if action == "login":
                paused = body.get("paused")
                if paused is not None and paused not in board.config.pause_reasons:
                    allowed = board.config.pause_reasons
                    raise HTTPError(400, f"unknown pause reason {paused!r}; use one of {allowed}")
                # Not ready yet (a headset to plug in, a system to open): paused from the
                # login on, no caller offered between the two.
                router.login(
                    agent_id,
                    via=via,
                    device=self._desk(agent_id, body),
                    paused=None if paused is None else str(paused),
                )
            elif action == "logout":
                router.logout(agent_id, via=via)
            elif action == "pause":
                reason = str(body.get("reason", "break"))
                allowed = self.switchboard.config.pause_reasons
                if reason not in allowed:
                    raise HTTPError(400, f"unknown pause reason {reason!r}; use one of {allowed}")
                if "queue" in body:
                    return self._queue_pause(agent_id, body, reason)
                if via.startswith("supervisor"):
                    router.pause(agent_id, reason, via=via)
                else:
                    board.breaks.pause(agent_id, reason, via=via)
            elif action == "unpause":
                if "queue" in body:
                    return self._queue_pause(agent_id, body, None)
                left_line = board.breaks.unpause(agent_id, via=via)
            elif action == "ready":
                router.end_wrapup(agent_id)
            elif action == "block":
                return board.block_caller(agent_id)
            elif action == "unblock":
                return board.unblock_caller(agent_id)
            elif action == "break-place":
                place = body.get("place")
                if not isinstance(place, int) or isinstance(place, bool) or place < 1:
                    raise HTTPError(
                        400, 'place: their place in the break line, 1 for next: {"place": 1}'
                    )
                moved = board.breaks.move(agent_id, place, via=via)
                return {"agent": agent_id, "break_line": moved, "lines": board.breaks.lines()}
            elif action == "profile":
                name = body.get("profile")
                if not isinstance(name, str) or not name:
                    raise HTTPError(400, 'say which profile: {"profile": "billing-fr"}')
                return board.roster.apply_profile(agent_id, name, via=via)
            elif action == "transfer":
                queue = body.get("queue")
                note = body.get("note", "")
                if not isinstance(note, str):
                    raise HTTPError(400, '"note" is text for the next agent: {"note": "..."}')
                if queue is None:
                    target = await self.switchboard.transfer(
                        agent_id, str(body.get("to", "supervisor")), note=note
                    )
                    return {"agent": agent_id, "transferred_to": target}
                priority = body.get("priority", 0)
                if "to" in body:
                    raise HTTPError(400, 'a transfer goes "to" someone or into a "queue", not both')
                if not isinstance(queue, str) or not queue:
                    raise HTTPError(400, 'say which queue: {"queue": "billing"}')
                if not isinstance(priority, int) or isinstance(priority, bool):
                    raise HTTPError(400, '"priority" is a whole number: {"priority": 5}')
                target = await self.switchboard.transfer(
                    agent_id, queue=queue, priority=priority, note=note
                )
                return {"agent": agent_id, "transferred_to_queue": target, "priority": priority}
            elif action == "consult":
                target = await self.switchboard.consult(agent_id, str(body.get("to", "supervisor")))
                return {"agent": agent_id, "consulting": target}
            elif action in ("hold", "unhold"):
                board = self.switchboard
                hold = action == "hold"
                call_id = await (board.hold(agent_id) if hold else board.unhold(agent_id))
                return {"agent": agent_id, "call_id": call_id, "on_hold": hold}
            elif action in CONSULT_STEPS:
                target = await CONSULT_STEPS[action](self.switchboard, agent_id)
                return {"agent": agent_id, "consulting": target, "step": action}
            elif action == "survey":
                flow = await self.switchboard.send_to_survey(agent_id)
                return {"agent": agent_id, "survey": flow}
            elif action == "dial":
                number, queue = body.get("number"), body.get("queue")
                if not isinstance(number, str) or not number:
                    raise HTTPError(400, 'say which number: {"number": "0612345678"}')
                if queue is not None and (not isinstance(queue, str) or not queue):
                    raise HTTPError(400, '"queue" names a queue: {"queue": "sales"}')
                data = _callback_data(body.get("data"))
                return await self.switchboard.dials.start(
                    agent_id, number, queue, via=via, data=data
                )
            elif action == "hangup":
                call_id = await self.switchboard.leave_call(agent_id)
                return {"agent": agent_id, "call_id": call_id, "left": True}
            elif action == "help":
                supervisor, shown = await self.switchboard.monitoring.ask_for_help(agent_id)
                return {"agent": agent_id, "supervisor": supervisor, "monitoring": shown}
            elif action == "disposition":
                code = body.get("code")
                if not isinstance(code, str) or not code:
                    raise HTTPError(400, 'say which code: {"code": "sale"}')
                at = _callback_time(body.get("at"), self.switchboard.config.ivr.timezone)
                said = self.switchboard.dispositions.dispose(
                    agent_id, code, str(body.get("note", "")), at
                )
                return {"agent": agent_id, **said}
            elif action in ("preview-dial", "preview-skip"):
                said = self.switchboard.dialler.preview_decision(
                    agent_id, action.removeprefix("preview-")
                )
                return {"agent": agent_id, **said}
            elif action == "record":
                path = await self.switchboard.record(agent_id)
                talking = self.switchboard.agent_call(agent_id)
                return {
                    "agent": agent_id,
                    "call_id": talking[0] if talking is not None else None,
                    "recording": path,
                }
            elif action in ("pause-recording", "resume-recording"):
                muted = action == "pause-recording"
                call_id = await self.switchboard.mute_recording(agent_id, muted)
                return {"agent": agent_id, "call_id": call_id, "recording_paused": muted}
            elif action in ("join", "leave"):
                return self._membership(agent_id, action, body, via)
            elif action == "skills":
                return self._skills(agent_id, body)
            else:
                raise HTTPError(404, f"unknown agent action {action!r}")
        except UnknownAgent as exc:
            raise HTTPError(404, str(exc) or f"unknown agent {agent_id}") from None
        except UnknownQueue as exc:
            raise HTTPError(404, str(exc)) from None
        except (DestinationNotAllowed, EngineError) as exc:
            raise HTTPError(409, str(exc)) from None
        except CallCenterError as exc:
            raise HTTPError(409, str(exc)) from None
        agent = router.agents[agent_id]
        shown = {"agent": agent_id, "state": str(agent.state), "pause_reason": agent.pause_reason}
        if action == "login":
            shown["device"] = agent.device
        if action == "pause" and board.breaks.lines():
            # Over the team's break limit with a break_line: waiting, not paused.
            shown["break_line"] = board.breaks.place(agent_id)
        if left_line:
            shown["left_break_line"] = True
        return shown

    def _skills(self, agent_id: str, body: dict[str, Any], via: str = "api") -> dict[str, Any]:
        """``{"skills": {"fr": 7}}`` gives the agent those skills; ``{"skills": null}`` the
        config's again (raises UnknownAgent; EngineError for a bad skill or level)."""
        if "skills" not in body:
            raise HTTPError(
                400, 'say which skills: {"skills": {"fr": 7}}, or null for the config\'s'
            )
        skills = body["skills"]
        if skills is not None and not isinstance(skills, dict):
            raise HTTPError(400, '"skills" maps skill names to levels 1-10: {"fr": 7}')
        try:
            changed = self.switchboard.roster.set_skills(agent_id, skills, via=via)
        except UnknownAgent:
            raise
        except EngineError as exc:
            raise HTTPError(400, str(exc)) from None
        return {
            "agent": agent_id,
            "skills": dict(self.switchboard.router.agents[agent_id].skills),
            "changed": changed,
            "kept": agent_id in self.switchboard.roster.skill_changes,
        }

    def _number_list_action(
        self, method: str, rest: list[str], body: dict[str, Any]
    ) -> dict[str, Any]:
        """``GET /numbers``, ``POST /numbers/<list>/add|remove {"number": ...}``."""
        board = self.switchboard
        if not rest:
            if method != "GET":
                raise HTTPError(405, "use GET for /numbers")
            return {"lists": board.lists.views()}
        if len(rest) != 2 or rest[1] not in ("add", "remove"):
            raise HTTPError(
                404, "number list routes: GET /numbers, POST /numbers/{list}/add|remove"
            )
        if method != "POST":
            raise HTTPError(405, f"use POST for /numbers/{rest[0]}/{rest[1]}")
        number = body.get("number")
        if not isinstance(number, str) or not number:
            raise HTTPError(400, 'say which number: {"number": "0612345678"}')
        try:
            if rest[1] == "add":
                changed = board.lists.add(rest[0], number, via="api")
            else:
                changed = board.lists.remove(rest[0], number, via="api")
        except UnknownNumberList as exc:
            raise HTTPError(404, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(400 if rest[1] == "add" else 409, str(exc)) from None
        return {"list": rest[0], "number": number, "on_list": rest[1] == "add", "changed": changed}

    async def _erasure(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /erasures {"numbers": [...], "dry_run": false}``: a caller's right to
        erasure (see :mod:`callcenter.records.erasure`)."""
        if method != "POST":
            raise HTTPError(405, "use POST for /erasures")
        if self._erase is None:
            raise HTTPError(404, "this daemon erases no records")
        numbers = body.get("numbers")
        dry_run = body.get("dry_run", False)
        if (
            not isinstance(numbers, list)
            or not numbers
            or not all(isinstance(n, str) for n in numbers)
        ):
            raise HTTPError(400, 'say which numbers: {"numbers": ["+4930123456"]}')
        if not isinstance(dry_run, bool):
            raise HTTPError(400, "dry_run is true or false")
        try:
            return await self._erase(numbers, dry_run)
        except ErasureRefused as exc:
            error = "nothing erased, as work still waits on the number: " + "; ".join(exc.holds)
            raise HTTPError(409, error, {"error": error, "holds": exc.holds}) from None
        except RecordError as exc:
            raise HTTPError(503, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(400, str(exc)) from None

    async def reply_to_evaluation(
        self, call_id: str, agent: str, supervisor: str, reply: str, note: str
    ) -> Evaluation:
        """``agent``'s answer to ``supervisor``'s scorecard of their call ``call_id``:
        ``agreed``, or ``disputed`` with a ``note`` saying why (again: replaces it); tells
        the bus (``EvaluationReplied``). HTTPError: 400 for another answer or a dispute
        without a note, 404 when there is no such scorecard of theirs."""
        if reply not in REPLIES:
            raise HTTPError(400, f"answer {' or '.join(REPLIES)}, not {reply!r}")
        note = note.strip()[:2000]
        if reply == "disputed" and not note:
            raise HTTPError(400, "say why you dispute the score (a note)")
        if self._write_evaluation is None:
            raise HTTPError(404, "calls are not scored here (evaluation_forms)")
        scored = await self._scorecard(agent, call_id, supervisor)
        now = datetime.now(UTC)
        answered = dataclasses.replace(scored, reply=reply, reply_note=note, replied_at=now)
        if not await self._write_evaluation(answered):
            raise HTTPError(503, "the answer could not be stored (see the log)")
        self.switchboard.bus.publish(
            EvaluationReplied(
                call_id=call_id, supervisor=supervisor, agent=agent, reply=reply, note=note
            )
        )
        self._disputes_read.pop(supervisor, None)
        log.info("evaluation_replied", call_id=call_id, agent=agent, reply=reply)
        return answered

    async def _scorecard(self, agent: str, call_id: str, supervisor: str) -> Evaluation:
        """``supervisor``'s scorecard of ``agent``'s call ``call_id``; HTTPError 404 when
        there is none (or no records), 503 when the records cannot be read."""
        if self._evaluations is None:
            raise HTTPError(404, "calls are not scored here (evaluation_forms)")
        try:
            theirs = await self._evaluations(EVER, datetime.now(UTC), [agent])
        except RecordError as exc:
            raise HTTPError(503, f"the records cannot be read: {exc}") from None
        found = [e for e in theirs if (e.call_id, e.supervisor) == (call_id, supervisor)]
        if not found:
            raise HTTPError(
                404, f"no scorecard of {agent}'s call {call_id!r} by supervisor {supervisor!r}"
            )
        return found[-1]

    async def evaluate(
        self, call_id: str, supervisor: str, scores: Mapping[str, object], comment: str
    ) -> Evaluation:
        """Store ``supervisor``'s scorecard of the answered call ``call_id`` (its queue's
        form; again: replaces theirs) and tell the bus (``CallEvaluated``). HTTPError: 404
        for an unknown supervisor or call, 409 for a call nobody took or a config without
        forms, 400 for points the form does not take."""
        config = self.switchboard.config
        if supervisor not in config.supervisors:
            raise HTTPError(404, f"no supervisor {supervisor!r} is configured")
        if self._write_evaluation is None:
            raise HTTPError(404, "no records here")
        row = await self._read_record(call_id)
        if row is None:
            raise HTTPError(404, f"no record of call {call_id!r} (is it over?)")
        agent, queue = str(row.get("agent") or ""), str(row.get("queue") or "")
        if not agent:
            raise HTTPError(409, f"no agent took call {call_id}: nothing to score")
        chosen = form_for(config, queue)
        if chosen is None:
            raise HTTPError(409, "no scorecard to score with (evaluation_forms)")
        name, form = chosen
        try:
            given = score(form, scores)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        points, most = sum(p for _, p in given), sum(form.criteria.values())
        evaluation = Evaluation(
            call_id=call_id,
            supervisor=supervisor,
            agent=agent,
            queue=queue,
            form=name,
            scores=given,
            points=points,
            max_points=most,
            passed=100.0 * points >= form.pass_percent * most,
            comment=comment.strip()[:2000],
            at=datetime.now(UTC),
        )
        if not await self._write_evaluation(evaluation):
            raise HTTPError(503, "the evaluation could not be stored (see the log)")
        self._disputes_read.pop(supervisor, None)
        self.switchboard.bus.publish(
            CallEvaluated(
                call_id=call_id,
                supervisor=supervisor,
                agent=agent,
                queue=queue,
                form=name,
                percent=evaluation.percent,
                passed=evaluation.passed,
            )
        )
        log.info(
            "call_evaluated",
            call_id=call_id,
            supervisor=supervisor,
            agent=agent,
            percent=evaluation.percent,
        )
        return evaluation

    async def _number_history(self, query_text: str) -> dict[str, Any]:
        """``GET /calls?number=0612345678&last=10``: that number's latest calls, newest
        first (:func:`callcenter.records.history.earlier_call`)."""
        query = {k: v[-1] for k, v in parse_qs(query_text).items()}
        number = query.get("number", "").strip()
        if not number:
            raise HTTPError(400, "say whose calls: /calls?number=0612345678")
        last = query.get("last", "10")
        if not last.isdigit() or not 1 <= int(last) <= 1000:
            raise HTTPError(400, f"last is 1 to 1000 calls, not {last!r}")
        if self._number_calls is None:
            raise HTTPError(404, "no records here")
        try:
            rows = await self._number_calls(number, int(last))
        except RecordError as exc:
            raise HTTPError(503, f"the records cannot be read: {exc}") from None
        return {"number": number, "calls": history(rows)}

    async def _caller_history(self, number: str, call_id: str) -> list[dict[str, Any]]:
        """The earlier calls of the number an agent talks to, for their desktop: read once
        per call and at most every HISTORY_FOR seconds; [] when unknown or unreadable."""
        if self._number_calls is None or not number or number.lower() in _NO_NUMBER:
            return []
        now = time.monotonic()
        key = (number, call_id)
        seen = self._history_seen.get(key)
        if seen is None or now - seen[0] >= HISTORY_FOR:
            try:
                rows = await self._number_calls(number, HISTORY_SHOWN + 1)
            except RecordError:
                return []  # the page goes on without them
            if len(self._history_seen) >= 1024:
                self._history_seen.clear()
            seen = self._history_seen[key] = (now, rows)
        return history(seen[1], leaving_out=call_id)[:HISTORY_SHOWN]

    def _caller_action(self, call_id: str, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /calls/<id>/priority|withdraw|give``: a supervisor acts on a waiting caller."""
        board = self.switchboard
        try:
            if action == "priority":
                priority = body.get("priority")
                if isinstance(priority, bool) or not isinstance(priority, int):
                    raise HTTPError(400, 'say which priority: {"priority": 5} (a whole number)')
                return board.change_priority(call_id, priority, via="api")
            if action == "give":
                agent = body.get("agent")
                if not isinstance(agent, str) or not agent:
                    raise HTTPError(400, 'say to whom: {"agent": "1002"}')
                return board.hand_to(call_id, agent, via="api")
            try:
                dest = QueueExit.model_validate(dict(body))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'to'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise HTTPError(
                    400, f'say where: {{"to": "queue", "queue": "support"}} ({problems})'
                ) from None
            return board.withdraw(call_id, dest, via="api")
        except (UnknownCall, UnknownAgent, UnknownQueue) as exc:
            raise HTTPError(404, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(409, str(exc)) from None

    async def _callback_status(self, call_id: str) -> dict[str, Any]:
        """``GET /callbacks/<id>``: where a callback request stands (a web page polls it:
        "you are number 3"): waiting (with its position), scheduled (its due time),
        dialling, or what became of it from the records."""
        for view in self.switchboard.callbacks.waiting():
            if view["call_id"] == call_id:
                status = (
                    "dialling" if view["dialling"] else "scheduled" if view["due"] else "waiting"
                )
                return {**view, "status": status}
        record = await self._callback_record(call_id) if self._callback_record else None
        if record is None:
            raise HTTPError(404, f"no callback request {call_id!r}")
        return {
            "call_id": record.call_id,
            "queue": record.queue,
            "number": record.number,
            "status": record.status,
            "attempts": record.attempts,
            "updated": (record.updated or record.requested).isoformat(timespec="seconds"),
        }

    def _callback_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /callbacks {"number": ..., "queue": ..., "priority": 0}``."""
        number, queue = body.get("number"), body.get("queue")
        priority = body.get("priority", 0)
        if not isinstance(number, str) or not number:
            raise HTTPError(400, 'say which number to call back: {"number": "0612345678"}')
        # As people type them into a web form: "+49 30 1234-567", "(061) 234.56.78".
        number = _NUMBER_SPACING.sub("", number)
        if not _PHONE_NUMBER.fullmatch(number):
            raise HTTPError(400, f"{body['number']!r} is no phone number: digits, + first")
        if not isinstance(queue, str) or not queue:
            raise HTTPError(400, 'say through which queue: {"queue": "sales"}')
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise HTTPError(400, '"priority" is a whole number: {"priority": 5}')
        at = _callback_time(body.get("at"), self.switchboard.config.ivr.timezone)
        data = _callback_data(body.get("data"))
        per_minute = self.switchboard.config.acd.callback_requests_per_minute
        if per_minute and not self._callback_rate.take(per_minute, time.monotonic()):
            raise HTTPError(429, f"more than {per_minute} callback requests a minute: try later")
        try:
            return self.switchboard.callbacks.request(
                number, queue, priority=priority, at=at, data=data
            )
        except UnknownQueue as exc:
            raise HTTPError(404, str(exc)) from None
        except DestinationNotAllowed as exc:
            raise HTTPError(403, str(exc)) from None
        except CallbackSlotFull as exc:
            free = exc.next_free.isoformat() if exc.next_free is not None else None
            raise HTTPError(409, str(exc), {"error": str(exc), "next_free": free}) from None
        except EngineError as exc:
            raise HTTPError(409, str(exc)) from None

    def _callback_slots(self, path: str) -> dict[str, Any]:
        """``GET /callbacks/slots?queue=sales&date=2026-12-07``: the room left per slot."""
        query = {k: v[-1] for k, v in parse_qs(path.partition("?")[2]).items()}
        queue = query.get("queue", "")
        if not queue:
            raise HTTPError(400, "say which queue: /callbacks/slots?queue=sales&date=2026-12-07")
        zone = ZoneInfo(self.switchboard.config.ivr.timezone)
        try:
            day = (
                date.fromisoformat(query["date"]) if "date" in query else datetime.now(zone).date()
            )
        except ValueError:
            raise HTTPError(400, f"date: a day such as 2026-12-07, not {query['date']!r}") from None
        try:
            return self.switchboard.callbacks.slots(queue, day)
        except UnknownQueue as exc:
            raise HTTPError(404, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(404, str(exc)) from None

    def _queue_pause(
        self, agent_id: str, body: dict[str, Any], reason: str | None
    ) -> dict[str, Any]:
        """``pause`` / ``unpause`` (``reason`` None) in one queue only."""
        queue = body.get("queue")
        if not isinstance(queue, str) or not queue:
            raise HTTPError(400, 'say which queue: {"queue": "support"}')
        board = self.switchboard
        if reason is None:
            changed = board.roster.unpause_in_queue(agent_id, queue, via="api")
        else:
            changed = board.roster.pause_in_queue(agent_id, queue, reason, via="api")
        return {"agent": agent_id, "queue": queue, "paused": reason, "changed": changed}

    def _membership(
        self, agent_id: str, action: str, body: dict[str, Any], via: str = "api"
    ) -> dict[str, Any]:
        """``join`` / ``leave`` a queue (raises UnknownAgent / UnknownQueue)."""
        queue = body.get("queue")
        if not isinstance(queue, str) or not queue:
            raise HTTPError(400, f'say which queue: {{"queue": "support"}} ({action})')
        board = self.switchboard
        if action == "join":
            penalty = body.get("penalty")
            if penalty is not None and (
                not isinstance(penalty, int) or isinstance(penalty, bool) or penalty < 0
            ):
                raise HTTPError(400, '"penalty" is a whole number from 0: {"penalty": 1}')
            changed = board.roster.join_queue(agent_id, queue, penalty=penalty, via=via)
        else:
            if "penalty" in body:
                raise HTTPError(400, "leave takes no penalty")
            changed = board.roster.leave_queue(agent_id, queue, via=via)
        view = board.router.agent_view(agent_id)
        return {
            "agent": agent_id,
            "queue": queue,
            "member": queue in view["queues"],
            "changed": changed,
            "queues": view["queues"],
        }

    def _desk(self, agent_id: str, body: dict[str, Any]) -> str | None:
        """The phone of ``POST /agents/<id>/login {"device": ...}`` (hot desking)."""
        device = body.get("device")
        if device is None:
            return None
        if not isinstance(device, str) or not _DEVICE.fullmatch(device):
            raise HTTPError(400, 'device must look like TECH/resource, such as "PJSIP/1010"')
        if device.startswith(EXTERNAL_TECH):
            raise HTTPError(400, "a hot desk is a phone on the PBX (remote agents are configured)")
        agent = self.switchboard.config.agents.get(agent_id)
        if agent is None:
            raise HTTPError(404, f"unknown agent {agent_id}")
        if not agent.hot_desk and device != agent.device:
            raise HTTPError(403, f"agent {agent_id} may not log in at another phone (hot_desk)")
        return device

    async def _supervisor_action(
        self, supervisor_id: str, action: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        monitoring = self.switchboard.monitoring
        try:
            if action == "desk":
                device = body.get("device")
                if device is not None and (not isinstance(device, str) or not device):
                    raise HTTPError(400, 'device: a phone, "PJSIP/2010", or null (their own)')
                changed = self.switchboard.seat_supervisor(supervisor_id, device, via="api")
                return {
                    "supervisor": supervisor_id,
                    "device": self.switchboard.supervisor_device(supervisor_id),
                    "changed": changed,
                }
            if action == "stop":
                shown = await monitoring.stop(supervisor_id)
            elif action == "takeover":
                shown = await monitoring.take_over(supervisor_id)
            elif action in MONITOR_MODES:
                agent = body.get("agent")
                if not isinstance(agent, str) or not agent:
                    raise HTTPError(400, 'say which agent: {"agent": "1001"}')
                shown = await monitoring.monitor(supervisor_id, agent, action)
            else:
                raise HTTPError(404, f"unknown supervisor action {action!r}")
        except (UnknownSupervisor, UnknownAgent) as exc:
            raise HTTPError(404, str(exc)) from None
        except NotPermitted as exc:
            raise HTTPError(403, str(exc)) from None
        except EngineError as exc:
            raise HTTPError(400 if action == "desk" else 409, str(exc)) from None
        except CallCenterError as exc:
            raise HTTPError(409, str(exc)) from None
        return {"supervisor": supervisor_id, "monitoring": shown}


_NUMBER_SPACING = re.compile(r"[\s\-./()]")
_PHONE_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_DATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
MAX_CALLBACK_DATA = 20
"""Most variables a callback request may bring (``POST /callbacks`` ``data``)."""


def _callback_data(value: object) -> dict[str, str]:
    """A callback request's ``data``: up to 20 names (letters, digits, ``_``) with text
    values of up to 200 characters, for the agent's screen and the CDR."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_CALLBACK_DATA:
        raise HTTPError(
            400, f'data: an object of up to {MAX_CALLBACK_DATA} names: {{"topic": ...}}'
        )
    for name, text in value.items():
        if not _DATA_NAME.fullmatch(name):
            raise HTTPError(400, f"data: {name!r} is no variable name (letters, digits, _)")
        if not isinstance(text, str) or len(text) > 200:
            raise HTTPError(400, f"data: {name!r} takes text of up to 200 characters")
    return dict(value)


def _callback_time(value: object, zone: str) -> datetime | None:
    """A disposition's ``at``: ISO 8601; without an offset, in the call centre's time zone
    (``ivr.timezone``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise HTTPError(400, 'at: a time such as "2026-12-07T15:00"')
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPError(400, f'at: {value!r} is not a time such as "2026-12-07T15:00"') from None
    return at.replace(tzinfo=ZoneInfo(zone)) if at.tzinfo is None else at


def _screen_pop(config: CallCenterConfig, active: ActiveCall, agent_id: str) -> str:
    """The CRM page of the call (``queues.<q>.screen_pop``, else ``acd.screen_pop``), its
    variables URL-encoded; "" when none is configured."""
    queue = config.queues.get(active.queue or "")
    template = (queue.screen_pop if queue is not None else None) or config.acd.screen_pop
    if template is None:
        return ""
    return render_url(template, call_variables(active, agent_id))


@dataclass(frozen=True, slots=True)
class Media:
    """A response that is no page: bytes of type ``kind`` (a voicemail's sound)."""

    data: bytes
    kind: str


MEDIA_TYPES: Final[Mapping[str, str]] = {
    ".wav": "audio/wav",
    ".gsm": "audio/x-gsm",
    ".ulaw": "audio/basic",
}
"""Content types of the sound files the PBX writes (others: application/octet-stream)."""
MAX_MEDIA: Final = 64 * 1024 * 1024


async def _media(path: Path, folder: Path, setting: str) -> Media:
    """A sound file the PBX wrote, served only from inside ``folder`` (the config's
    ``setting``): HTTPError 403 outside it, 404 when gone."""
    try:
        data = await asyncio.to_thread(_read_within, path, folder, setting)
    except FileNotFoundError:
        raise HTTPError(404, "the sound file is gone") from None
    except PermissionError as exc:
        raise HTTPError(403, str(exc)) from None
    except OSError as exc:
        raise HTTPError(503, f"the sound file cannot be read: {exc.strerror}") from None
    return Media(data, MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"))


def _read_within(path: Path, folder: Path, setting: str) -> bytes:
    """The bytes of ``path`` if it lies inside ``folder`` (symbolic links resolved):
    PermissionError otherwise, FileNotFoundError when it is gone."""
    real = path.resolve()
    if not real.is_relative_to(folder.resolve()):
        raise PermissionError(f"the sound file is not in {setting} ({folder})")
    with real.open("rb") as file:
        data = file.read(MAX_MEDIA + 1)
    if len(data) > MAX_MEDIA:
        raise PermissionError(f"the sound file is larger than {MAX_MEDIA} bytes")
    return data


_PAGE_HEADERS: Final = (
    "Cache-Control: no-store\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
    "media-src 'self'; form-action 'self'; frame-ancestors 'none'\r\n"
)
"""The desktop's pages: never cached, never framed (a page of another site putting ours
in a frame could make an agent press our buttons), no script at all."""


def _cookie(header: str, name: str) -> str:
    """The value of cookie ``name`` in a ``Cookie:`` header ("" when absent)."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _same_origin(request: _Request) -> bool:
    """Whether the page that sent ``request`` is one of this server's (no ``Origin``: not
    sent by a browser's page). Behind a proxy, its ``Host`` reaches us as
    ``X-Forwarded-Host`` or as ``Host`` itself."""
    if not request.origin:
        return True
    sent_from = urlsplit(request.origin).netloc.lower()
    return bool(sent_from) and sent_from in (request.host.lower(), request.forwarded_host.lower())


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an error answer: end our side, then drop what the client still sends (at most
    LINGER_BYTES for LINGER_SECONDS). Closing with its unread bytes in our buffer would send
    a reset, which can destroy the answer before the client reads it."""
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError, ValueError):
        async with asyncio.timeout(LINGER_SECONDS):
            dropped = 0
            while dropped < LINGER_BYTES:
                chunk = await reader.read(64 * 1024)
                if not chunk:
                    break
                dropped += len(chunk)


async def _preflight(writer: asyncio.StreamWriter, cors: str) -> None:
    """A browser asks whether its page may call (a CORS preflight): yes for the origins of
    api.cors_origins, with the methods and headers the API takes; no for others (without
    Allow-Origin the browser refuses the call). Needs no token: it carries none."""
    allow = (
        cors + "Access-Control-Allow-Methods: GET, POST\r\n"
        "Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID\r\n"
        "Access-Control-Max-Age: 600\r\n"
        if cors
        else ""
    )
    with contextlib.suppress(ConnectionError):
        head = f"HTTP/1.1 204 No Content\r\n{allow}Content-Length: 0\r\n"
        writer.write(f"{head}Connection: close\r\n\r\n".encode())
        await writer.drain()
    writer.close()


async def _read_line(reader: asyncio.StreamReader) -> str:
    try:
        line = await reader.readline()
    except ValueError:  # longer than the reader's limit (64 KiB)
        raise HTTPError(431, "request line or header too long") from None
    return line.decode("latin-1")


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    body: dict[str, Any]
    authorization: str = ""
    last_event_id: str = ""
    origin: str = ""
    host: str = ""
    forwarded_host: str = ""
    cookie: str = ""
    form: dict[str, str] = field(default_factory=dict)
    """A ``/desktop`` page's form fields (``application/x-www-form-urlencoded``)."""
    peer: str = ""
    """The client's address (set by the server: the TCP peer's, or the one a trusted proxy
    forwards for)."""
    forwarded_for: str = ""
    """The ``X-Forwarded-For`` header's addresses, comma-separated (several lines joined)."""


async def _read_request(reader: asyncio.StreamReader) -> _Request:
    request_line = (await _read_line(reader)).strip()
    try:
        method, path, _version = request_line.split(" ", 2)
    except ValueError:
        raise HTTPError(400, "malformed request line") from None
    length = 0
    authorization = last_event_id = origin = host = forwarded_host = cookie = ""
    forwarded_for: list[str] = []
    for _ in range(MAX_HEADERS + 1):
        line = await _read_line(reader)
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "authorization":
            authorization = value.strip()
        elif name == "last-event-id":
            last_event_id = value.strip()
        elif name == "origin":
            origin = value.strip()
        elif name == "host":
            host = value.strip()
        elif name == "x-forwarded-host":
            forwarded_host = value.strip()
        elif name == "cookie":
            cookie = value.strip()
        elif name == "x-forwarded-for":
            forwarded_for.append(value.strip())
        elif name == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                length = -1
            if length < 0:
                raise HTTPError(400, f"bad Content-Length {value.strip()[:40]!r}")
    else:
        raise HTTPError(431, f"more than {MAX_HEADERS} header lines")
    if length > MAX_BODY:
        raise HTTPError(413, "body too large")
    body: dict[str, Any] = {}
    form: dict[str, str] = {}
    route = path.split("?", 1)[0]
    if length and (route == "/desktop" or route.startswith("/desktop/")):
        raw = await reader.readexactly(length)
        try:
            fields = parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise HTTPError(400, "form is not UTF-8") from None
        form = {k: v[-1] for k, v in fields.items()}
    elif length:
        raw = await reader.readexactly(length)
        try:
            parsed = json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8
            raise HTTPError(400, "body is not JSON") from None
        if not isinstance(parsed, dict):
            raise HTTPError(400, "body must be a JSON object")
        body = parsed
    return _Request(
        method.upper(),
        path,
        body,
        authorization,
        last_event_id,
        origin,
        host,
        forwarded_host,
        cookie,
        form,
        forwarded_for=",".join(forwarded_for),
    )


def client_address(peer: str, forwarded_for: str, trusted: Sequence[str]) -> str:
    """The address a request comes from: ``peer`` (the TCP peer's) unless it is one of the
    ``trusted`` proxies (addresses or networks), then the nearest address of
    ``forwarded_for`` (``X-Forwarded-For``, the client first, each proxy appending the
    address it received from) that is not a trusted proxy itself. Each proxy appends on
    the right, so what a client wrote on the left is read only after every trusted hop;
    an entry that is no address stops the walk at the last hop known."""
    if not trusted or not forwarded_for:
        return peer
    networks = _networks(tuple(trusted))
    if not _within(peer, networks):
        return peer
    address = peer
    for entry in reversed(forwarded_for.split(",")):
        hop = entry.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address
        address = hop
        if not _within(hop, networks):
            return hop
    return address


_Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> _Networks:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _within(address: str, networks: _Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
