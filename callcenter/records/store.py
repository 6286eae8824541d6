"""The record stores: CDRs, agent sessions and pauses, callbacks and the queue_log, in SQL.

:class:`RecordStore` holds what every database shares (the tables, the statements, the
idempotent writes and the reads), in the :class:`Dialect` of its database;
:class:`SqliteCdrStore` keeps them in one SQLite file (the default) and
:class:`~callcenter.records.postgres.PostgresRecordStore` in a PostgreSQL database. What
follows describes both; the SQLite specifics first.

The folder, the file and the schema are created on first use. The database runs in WAL
mode with ``synchronous=FULL``: a row is on disk when its write returns. Writes are
idempotent: a CDR is keyed by ``uniqueid``, a session by (agent, login), a pause by
(agent, start), and ``INSERT ... ON CONFLICT DO NOTHING`` keeps the first row written. One
exception: a CDR of a call left to the PBX (``hung_up_by`` ``shutdown`` or ``link_lost``:
not over when it was written) is superseded by the record of the same call written later,
once a daemon took the caller back (a FreeSWITCH caller parked afresh at a shutdown, an
AsyncAGI caller after the AMI link came back), and so is a checkpoint of a call in progress
(``in_progress``, or ``lost`` once its daemon died: see ``records.checkpoint_seconds``). The
row keeps its ``start``; its ``duration`` runs from there to the new end.

Every method is blocking. In the daemon they run in the record writer's thread
(:class:`~callcenter.records.writer.RecordWriter`), never on the event loop; a lock makes
the store safe to share between threads. Reads from a CLI process can use it directly.
The database driver's and OS errors surface as :class:`~callcenter.errors.RecordError`.

Tables (datetimes are ISO 8601 UTC text, booleans 0/1):

* ``cdr``: one column per :class:`~callcenter.records.cdr.CdrRecord` field;
* ``agent_sessions``: agent, login, logout, duration_seconds, via_login, via_logout;
* ``agent_pauses``: agent, reason, start, end, duration_seconds, via_pause, via_unpause;
* ``agent_wrapups``: after-call work: agent, start, end, duration_seconds, call_id;
* ``switches``: the last flip of each of ``ivr.switches``: name, on, changed, via;
* ``queue_members``: changes to queues' members kept on top of the config (``agent
  join`` / ``leave``, ``agent pause --queue``): queue, agent, member, penalty (NULL: the
  config's), changed, via, paused (the reason of a pause in that queue only, or NULL);
* ``notices``: the notices and messages supervisors posted for agents still standing: id,
  text, by, teams and agents (JSON lists), posted, until, read_by (JSON: agent -> when a
  message's agent first saw it) (deleted when taken down);
* ``supervisor_desks``: supervisors working at another phone (``callcenter supervisor
  desk``): supervisor, device, since, via;
* ``number_list_entries``: numbers added to the IVR's number lists while the centre runs
  (``callcenter numbers add``): number_list, number, added, via;
* ``agent_skills``: agents' skills kept on top of the config (``agent skills``): agent,
  skills (JSON: skill -> level), changed, via;
* ``added_agents``: agents added while the centre runs (``agent add``): agent, settings
  (JSON: the agent's config fields), changed, via;
* ``added_queues``: queues added while the centre runs (``queue add``): queue, settings
  (JSON: the queue's config fields), changed, via;
* ``added_leads``: leads added to campaigns while they ran (``campaign add-lead``):
  campaign, lead, number, timezone, data (JSON: the lead-file columns), added, via;
* ``schedule_requests``: agents' requests for a day of their schedule (their desktop): id,
  agent, day, hours (JSON; ``[]``: a day off), note, asked, status (asked, approved,
  declined), decided, decided_by;
* ``schedule_changes``: days of agents' schedules changed while the centre runs (``agent
  schedule``): agent, day (ISO date), hours (JSON list of ranges; ``[]``: a day off),
  changed, via;
* ``callbacks``: call_id, number, queue, caller_num, requested, status (``pending`` when
  written; the outbound side updates it);
* ``agent_presence``: the agents logged in now: agent, logged_in, via_login, pause_reason,
  paused_at, via_pause, owed_call/_number/_queue/_campaign/_lead (a disposition owed),
  device, line_team/_reason/_via/_place/_since (the team's line for a break they wait in;
  line_team empty: none) (deleted at logout; what a restarted daemon resumes);
* ``queue_log``: Asterisk's queue_log (see :mod:`callcenter.records.queue_log`): id (the
  order written), key (unique), time, callid, queuename, agent, event, data1..data5;
* ``queue_callbacks``: callers keeping their place in a queue to be called back: call_id,
  queue, number, priority, skills, requested, status (``waiting``, ``answered``,
  ``failed``, ``expired``, ``cancelled``), attempts, updated, data (JSON: the variables the
  callback call gets) (see :mod:`callcenter.records.callbacks`);
* ``campaign_leads``: where each lead of each outbound campaign stands: campaign, lead,
  number, status (``dialing``, ``retry``, ``answered``, ``failed``, ``skipped``), attempts,
  result, call_id, retry_at, updated, dropped_at (see :mod:`callcenter.records.campaigns`);
* ``dispositions``: the code an agent gave a call: call_id, agent, code, note, number,
  campaign, lead, callback_at, do_not_call, at (see :mod:`callcenter.records.dispositions`);
* ``surveys``: what a caller answered in a post-call survey: call_id, queue, agent, flow,
  number, score (NULL: none given), answers (JSON), completed, seconds, at, satisfied
  (the score reached the survey's satisfied_from; NULL: no score or no threshold) (see
  :mod:`callcenter.records.surveys`);
* ``voicemails``: the messages left in a queue's box: call_id, queue, box, number, name,
  path, seconds, left_at, status (``waiting``, ``taken``, ``done``), agent, outcome
  (``called-back``, ``done``), updated, tries (calls back that got nobody), last_try (the
  reason of the last), tried_at (see :mod:`callcenter.records.voicemails`);
* ``evaluations``: a supervisor's scorecard of a call: call_id, supervisor (one row per
  both: scoring again replaces it), agent, queue, form, scores (JSON: criterion ->
  points), points, max_points, passed, comment, at (see
  :mod:`callcenter.records.evaluations`);
* ``audit_log``: who did what through the control API and the desktops: key, at, who,
  peer, method, route, status, detail (JSON, personal values hidden; see
  :mod:`callcenter.records.audit`);
* ``erasures``: one row per ``callcenter erase`` (see :mod:`callcenter.records.erasure`):
  at, via, numbers (how many), counts (JSON: rows changed per table); never the numbers.
  Retention keeps it: it is what shows a request was carried out.

A database made by an older version gets the columns added since (``ALTER TABLE``).
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from callcenter.errors import RecordError
from callcenter.events import LOST_TRACK, STILL_IN_PROGRESS, SUPERSEDED
from callcenter.outbound.campaign import LeadRecord
from callcenter.records.audit import AuditEntry
from callcenter.records.callbacks import QueueCallback
from callcenter.records.campaigns import AddedLead
from callcenter.records.cdr import CallbackRecord, CdrRecord, QueueVisit
from callcenter.records.desks import SupervisorDesk
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.evaluations import Evaluation
from callcenter.records.members import MemberState
from callcenter.records.notices import Notice
from callcenter.records.number_lists import NumberListEntry
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.roster import AddedAgent, AddedQueue
from callcenter.records.schedule_changes import ScheduleChange, ScheduleRequest
from callcenter.records.shifts import (
    AgentPause,
    AgentPresence,
    AgentSession,
    AgentWrapup,
    BreakLine,
    OwedCode,
)
from callcenter.records.skills import SkillsState
from callcenter.records.summary import Stretch
from callcenter.records.surveys import SurveyRecord
from callcenter.records.switches import SwitchState
from callcenter.records.voicemails import VoicemailMessage

log = structlog.get_logger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 2

QUEUE_LOG_DATA = ("data1", "data2", "data3", "data4", "data5")

CDR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("accountcode", "TEXT NOT NULL DEFAULT ''"),
    ("src", "TEXT NOT NULL DEFAULT ''"),
    ("dst", "TEXT NOT NULL DEFAULT ''"),
    ("dcontext", "TEXT NOT NULL DEFAULT ''"),
    ("clid", "TEXT NOT NULL DEFAULT ''"),
    ("channel", "TEXT NOT NULL DEFAULT ''"),
    ("dstchannel", "TEXT NOT NULL DEFAULT ''"),
    ("lastapp", "TEXT NOT NULL DEFAULT ''"),
    ("start", "TEXT NOT NULL"),
    ("answer", "TEXT"),
    ("end", "TEXT NOT NULL"),
    ("duration", "INTEGER NOT NULL"),
    ("billsec", "INTEGER NOT NULL"),
    ("disposition", "TEXT NOT NULL"),
    ("uniqueid", "TEXT PRIMARY KEY"),
    ("linkedid", "TEXT NOT NULL DEFAULT ''"),
    ("ivr_path", "TEXT NOT NULL DEFAULT ''"),
    ("queue", "TEXT NOT NULL DEFAULT ''"),
    ("wait_seconds", "REAL NOT NULL DEFAULT 0"),
    ("agent", "TEXT NOT NULL DEFAULT ''"),
    ("talk_seconds", "REAL NOT NULL DEFAULT 0"),
    ("transfers", "INTEGER NOT NULL DEFAULT 0"),
    ("transfer_path", "TEXT NOT NULL DEFAULT ''"),
    ("abandoned", "INTEGER NOT NULL DEFAULT 0"),
    ("hung_up_by", "TEXT NOT NULL DEFAULT ''"),
    ("hangup_cause", "INTEGER NOT NULL DEFAULT 0"),
    ("hangup_cause_name", "TEXT NOT NULL DEFAULT ''"),
    ("ivr_variables", "TEXT NOT NULL DEFAULT '{}'"),
    ("voicemail", "TEXT NOT NULL DEFAULT ''"),
    ("monitored_by", "TEXT NOT NULL DEFAULT ''"),
    ("barged", "INTEGER NOT NULL DEFAULT 0"),
    ("recordingfile", "TEXT NOT NULL DEFAULT ''"),
    ("recording_muted_seconds", "REAL NOT NULL DEFAULT 0"),
    ("consulted", "TEXT NOT NULL DEFAULT ''"),
    ("hold_seconds", "REAL NOT NULL DEFAULT 0"),
)
"""The ``cdr`` table: every CdrRecord field, in the record's order."""

SESSION_COLUMNS = ("agent", "login", "logout", "duration_seconds", "via_login", "via_logout")
PAUSE_COLUMNS = (
    "agent",
    "reason",
    "start",
    "end",
    "duration_seconds",
    "via_pause",
    "via_unpause",
)
WRAPUP_COLUMNS = ("agent", "start", "end", "duration_seconds", "call_id")
SWITCH_COLUMNS = ("name", "on", "changed", "via")
MEMBER_COLUMNS = ("queue", "agent", "member", "penalty", "changed", "via", "paused")
SKILLS_COLUMNS = ("agent", "skills", "changed", "via")
ROSTER_COLUMNS = ("agent", "settings", "changed", "via")
QUEUE_ROSTER_COLUMNS = ("queue", "settings", "changed", "via")
SCHEDULE_CHANGE_COLUMNS = ("agent", "day", "hours", "changed", "via")
SCHEDULE_REQUEST_COLUMNS = (
    "id",
    "agent",
    "day",
    "hours",
    "note",
    "asked",
    "status",
    "decided",
    "decided_by",
)
ADDED_LEAD_COLUMNS = (
    "campaign",
    "lead",
    "number",
    "timezone",
    "data",
    "added",
    "via",
    "priority",
)
NUMBER_LIST_COLUMNS = ("number_list", "number", "added", "via")
DESK_COLUMNS = ("supervisor", "device", "since", "via")
NOTICE_COLUMNS = ("id", "text", "by", "teams", "agents", "posted", "until", "read_by")
AUDIT_COLUMNS = ("key", "at", "who", "peer", "method", "route", "status", "detail")


def _quoted(names: Sequence[str]) -> str:
    # "end" is an SQL keyword; quote every identifier.
    return ", ".join(f'"{n}"' for n in names)


_CDR_NAMES = tuple(name for name, _ in CDR_COLUMNS)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cdr ({", ".join(f'"{n}" {t}' for n, t in CDR_COLUMNS)});
CREATE INDEX IF NOT EXISTS cdr_start ON cdr ("start");
CREATE INDEX IF NOT EXISTS cdr_queue ON cdr ("queue", "start");
CREATE INDEX IF NOT EXISTS cdr_src ON cdr ("src", "start");
CREATE INDEX IF NOT EXISTS cdr_dst ON cdr ("dst", "start");
CREATE TABLE IF NOT EXISTS agent_sessions (
    "agent" TEXT NOT NULL,
    "login" TEXT NOT NULL,
    "logout" TEXT NOT NULL,
    "duration_seconds" REAL NOT NULL,
    "via_login" TEXT NOT NULL DEFAULT '',
    "via_logout" TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("agent", "login")
);
CREATE TABLE IF NOT EXISTS agent_pauses (
    "agent" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "start" TEXT NOT NULL,
    "end" TEXT NOT NULL,
    "duration_seconds" REAL NOT NULL,
    "via_pause" TEXT NOT NULL DEFAULT '',
    "via_unpause" TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("agent", "start")
);
CREATE TABLE IF NOT EXISTS agent_wrapups (
    "agent" TEXT NOT NULL,
    "start" TEXT NOT NULL,
    "end" TEXT NOT NULL,
    "duration_seconds" REAL NOT NULL,
    "call_id" TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("agent", "start")
);
CREATE TABLE IF NOT EXISTS switches (
    "name" TEXT PRIMARY KEY,
    "on" INTEGER NOT NULL,
    "changed" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS queue_members (
    "queue" TEXT NOT NULL,
    "agent" TEXT NOT NULL,
    "member" INTEGER NOT NULL,
    "penalty" INTEGER,
    "changed" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT '',
    "paused" TEXT,
    PRIMARY KEY ("queue", "agent")
);
CREATE TABLE IF NOT EXISTS notices (
    "id" TEXT PRIMARY KEY,
    "text" TEXT NOT NULL,
    "by" TEXT NOT NULL DEFAULT '',
    "teams" TEXT NOT NULL DEFAULT '[]',
    "agents" TEXT NOT NULL DEFAULT '[]',
    "posted" TEXT NOT NULL,
    "until" TEXT NOT NULL,
    "read_by" TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS supervisor_desks (
    "supervisor" TEXT PRIMARY KEY,
    "device" TEXT NOT NULL,
    "since" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS number_list_entries (
    "number_list" TEXT NOT NULL,
    "number" TEXT NOT NULL,
    "added" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("number_list", "number")
);
CREATE TABLE IF NOT EXISTS agent_skills (
    "agent" TEXT PRIMARY KEY,
    "skills" TEXT NOT NULL,
    "changed" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS added_agents (
    "agent" TEXT PRIMARY KEY,
    "settings" TEXT NOT NULL,
    "changed" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS added_queues (
    "queue" TEXT PRIMARY KEY,
    "settings" TEXT NOT NULL,
    "changed" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS added_leads (
    "campaign" TEXT NOT NULL,
    "lead" TEXT NOT NULL,
    "number" TEXT NOT NULL,
    "timezone" TEXT NOT NULL DEFAULT '',
    "data" TEXT NOT NULL DEFAULT '{{}}',
    "added" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT '',
    "priority" INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("campaign", "lead")
);
CREATE TABLE IF NOT EXISTS schedule_requests (
    "id" TEXT PRIMARY KEY,
    "agent" TEXT NOT NULL,
    "day" TEXT NOT NULL,
    "hours" TEXT NOT NULL,
    "note" TEXT NOT NULL DEFAULT '',
    "asked" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "decided" TEXT,
    "decided_by" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS schedule_changes (
    "agent" TEXT NOT NULL,
    "day" TEXT NOT NULL,
    "hours" TEXT NOT NULL,
    "changed" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("agent", "day")
);
CREATE TABLE IF NOT EXISTS callbacks (
    "call_id" TEXT NOT NULL,
    "number" TEXT NOT NULL,
    "queue" TEXT NOT NULL,
    "caller_num" TEXT NOT NULL DEFAULT '',
    "requested" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY ("call_id", "number")
);
CREATE INDEX IF NOT EXISTS callbacks_status ON callbacks ("status", "requested");
CREATE TABLE IF NOT EXISTS agent_presence (
    "agent" TEXT PRIMARY KEY,
    "logged_in" TEXT NOT NULL,
    "via_login" TEXT NOT NULL DEFAULT '',
    "pause_reason" TEXT,
    "paused_at" TEXT,
    "via_pause" TEXT NOT NULL DEFAULT '',
    "owed_call" TEXT,
    "owed_number" TEXT NOT NULL DEFAULT '',
    "owed_queue" TEXT NOT NULL DEFAULT '',
    "owed_campaign" TEXT NOT NULL DEFAULT '',
    "owed_lead" TEXT NOT NULL DEFAULT '',
    "device" TEXT NOT NULL DEFAULT '',
    "line_team" TEXT NOT NULL DEFAULT '',
    "line_reason" TEXT NOT NULL DEFAULT '',
    "line_via" TEXT NOT NULL DEFAULT '',
    "line_place" INTEGER NOT NULL DEFAULT 0,
    "line_since" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS queue_callbacks (
    "call_id" TEXT PRIMARY KEY,
    "queue" TEXT NOT NULL,
    "number" TEXT NOT NULL,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "skills" TEXT NOT NULL DEFAULT '',
    "requested" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'waiting',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "updated" TEXT NOT NULL,
    "data" TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS queue_callbacks_status ON queue_callbacks ("status", "requested");
CREATE TABLE IF NOT EXISTS campaign_leads (
    "campaign" TEXT NOT NULL,
    "lead" TEXT NOT NULL,
    "number" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "result" TEXT NOT NULL DEFAULT '',
    "call_id" TEXT NOT NULL DEFAULT '',
    "retry_at" TEXT,
    "updated" TEXT NOT NULL,
    "dropped_at" TEXT,
    PRIMARY KEY ("campaign", "lead")
);
CREATE TABLE IF NOT EXISTS dispositions (
    "call_id" TEXT PRIMARY KEY,
    "agent" TEXT NOT NULL,
    "code" TEXT NOT NULL,
    "note" TEXT NOT NULL DEFAULT '',
    "number" TEXT NOT NULL DEFAULT '',
    "queue" TEXT NOT NULL DEFAULT '',
    "campaign" TEXT NOT NULL DEFAULT '',
    "lead" TEXT NOT NULL DEFAULT '',
    "callback_at" TEXT,
    "do_not_call" INTEGER NOT NULL DEFAULT 0,
    "at" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS surveys (
    "call_id" TEXT PRIMARY KEY,
    "queue" TEXT NOT NULL,
    "agent" TEXT NOT NULL,
    "flow" TEXT NOT NULL,
    "number" TEXT NOT NULL DEFAULT '',
    "score" INTEGER,
    "answers" TEXT NOT NULL DEFAULT '{{}}',
    "completed" INTEGER NOT NULL DEFAULT 0,
    "seconds" REAL NOT NULL DEFAULT 0,
    "at" TEXT NOT NULL,
    "satisfied" INTEGER
);
CREATE INDEX IF NOT EXISTS surveys_at ON surveys ("at");
CREATE TABLE IF NOT EXISTS evaluations (
    "call_id" TEXT NOT NULL,
    "supervisor" TEXT NOT NULL,
    "agent" TEXT NOT NULL,
    "queue" TEXT NOT NULL DEFAULT '',
    "form" TEXT NOT NULL,
    "scores" TEXT NOT NULL DEFAULT '{{}}',
    "points" INTEGER NOT NULL,
    "max_points" INTEGER NOT NULL,
    "passed" INTEGER NOT NULL DEFAULT 0,
    "comment" TEXT NOT NULL DEFAULT '',
    "at" TEXT NOT NULL,
    "reply" TEXT NOT NULL DEFAULT '',
    "reply_note" TEXT NOT NULL DEFAULT '',
    "replied_at" TEXT,
    PRIMARY KEY ("call_id", "supervisor")
);
CREATE INDEX IF NOT EXISTS evaluations_at ON evaluations ("at");
CREATE TABLE IF NOT EXISTS voicemails (
    "call_id" TEXT PRIMARY KEY,
    "queue" TEXT NOT NULL,
    "box" TEXT NOT NULL,
    "number" TEXT NOT NULL DEFAULT '',
    "name" TEXT NOT NULL DEFAULT '',
    "path" TEXT NOT NULL,
    "seconds" REAL NOT NULL DEFAULT 0,
    "left_at" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'waiting',
    "agent" TEXT NOT NULL DEFAULT '',
    "outcome" TEXT NOT NULL DEFAULT '',
    "updated" TEXT NOT NULL,
    "tries" INTEGER NOT NULL DEFAULT 0,
    "last_try" TEXT NOT NULL DEFAULT '',
    "tried_at" TEXT
);
CREATE INDEX IF NOT EXISTS voicemails_status ON voicemails ("status", "left_at");
CREATE TABLE IF NOT EXISTS queue_log (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "key" TEXT NOT NULL UNIQUE,
    "time" TEXT NOT NULL,
    "callid" TEXT NOT NULL,
    "queuename" TEXT NOT NULL,
    "agent" TEXT NOT NULL,
    "event" TEXT NOT NULL,
    "data1" TEXT NOT NULL DEFAULT '',
    "data2" TEXT NOT NULL DEFAULT '',
    "data3" TEXT NOT NULL DEFAULT '',
    "data4" TEXT NOT NULL DEFAULT '',
    "data5" TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS audit_log (
    "key" TEXT PRIMARY KEY,
    "at" TEXT NOT NULL,
    "who" TEXT NOT NULL DEFAULT '',
    "peer" TEXT NOT NULL DEFAULT '',
    "method" TEXT NOT NULL,
    "route" TEXT NOT NULL,
    "status" INTEGER NOT NULL,
    "detail" TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log ("at");
CREATE TABLE IF NOT EXISTS erasures (
    "at" TEXT NOT NULL,
    "via" TEXT NOT NULL DEFAULT '',
    "numbers" INTEGER NOT NULL,
    "counts" TEXT NOT NULL DEFAULT '{{}}'
);
"""

QUEUE_LOG_COLUMNS = ("time", "callid", "queuename", "agent", "event", *QUEUE_LOG_DATA)
CALLBACK_COLUMNS = ("call_id", "number", "queue", "caller_num", "requested", "status")
QUEUE_CALLBACK_COLUMNS = (
    "call_id",
    "queue",
    "number",
    "priority",
    "skills",
    "requested",
    "status",
    "attempts",
    "updated",
    "data",
)
CAMPAIGN_LEAD_COLUMNS = (
    "campaign",
    "lead",
    "number",
    "status",
    "attempts",
    "result",
    "call_id",
    "retry_at",
    "updated",
    "dropped_at",
)
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("campaign_leads", "dropped_at", "TEXT"),
    ("agent_presence", "owed_call", "TEXT"),
    ("agent_presence", "owed_number", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "owed_queue", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "owed_campaign", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "owed_lead", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "device", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "line_team", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "line_reason", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "line_via", "TEXT NOT NULL DEFAULT ''"),
    ("agent_presence", "line_place", "INTEGER NOT NULL DEFAULT 0"),
    ("agent_presence", "line_since", "TEXT NOT NULL DEFAULT ''"),
    ("notices", "read_by", "TEXT NOT NULL DEFAULT '{}'"),
    ("queue_members", "paused", "TEXT"),
    ("queue_callbacks", "data", "TEXT NOT NULL DEFAULT '{}'"),
    ("surveys", "satisfied", "INTEGER"),
    ("voicemails", "tries", "INTEGER NOT NULL DEFAULT 0"),
    ("voicemails", "last_try", "TEXT NOT NULL DEFAULT ''"),
    ("voicemails", "tried_at", "TEXT"),
    ("evaluations", "reply", "TEXT NOT NULL DEFAULT ''"),
    ("evaluations", "reply_note", "TEXT NOT NULL DEFAULT ''"),
    ("evaluations", "replied_at", "TEXT"),
    ("added_leads", "priority", "INTEGER NOT NULL DEFAULT 0"),
)
"""(table, column, type) added to a table other than cdr since its first version: a
database made before gets them at its next opening."""
DISPOSITION_COLUMNS = (
    "call_id",
    "agent",
    "code",
    "note",
    "number",
    "queue",
    "campaign",
    "lead",
    "callback_at",
    "do_not_call",
    "at",
)
SURVEY_COLUMNS = (
    "call_id",
    "queue",
    "agent",
    "flow",
    "number",
    "score",
    "answers",
    "completed",
    "seconds",
    "at",
    "satisfied",
)
EVALUATION_COLUMNS = (
    "call_id",
    "supervisor",
    "agent",
    "queue",
    "form",
    "scores",
    "points",
    "max_points",
    "passed",
    "comment",
    "at",
    "reply",
    "reply_note",
    "replied_at",
)
VOICEMAIL_COLUMNS = (
    "call_id",
    "queue",
    "box",
    "number",
    "name",
    "path",
    "seconds",
    "left_at",
    "status",
    "agent",
    "outcome",
    "updated",
    "tries",
    "last_try",
    "tried_at",
)
PRESENCE_COLUMNS = (
    "agent",
    "logged_in",
    "via_login",
    "pause_reason",
    "paused_at",
    "via_pause",
    "owed_call",
    "owed_number",
    "owed_queue",
    "owed_campaign",
    "owed_lead",
    "device",
    "line_team",
    "line_reason",
    "line_via",
    "line_place",
    "line_since",
)
# What the record of a call taken back replaces in the row written when it was left:
# everything but "start" (the first one stays) and "duration" (recomputed from that start).
_SUPERSEDED = tuple(n for n in _CDR_NAMES if n not in ("start", "duration", "uniqueid"))


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL databases the records go to; the rest is shared."""

    name: str
    placeholder: str
    greatest: str
    """The two-argument maximum: ``max`` in SQLite, ``GREATEST`` in PostgreSQL."""
    seconds_between: str
    """SQL of whole seconds from the column ``"start"`` to a placeholder's ISO time."""
    no_limit: int | None
    """The LIMIT parameter that means no limit."""
    schema: str
    earlier: str = "julianday({column}) < julianday({p})"
    """SQL: the ISO time in ``column`` (any UTC offset) is before a placeholder's."""


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    greatest="max",
    seconds_between='CAST(round((julianday(?) - julianday("start")) * 86400) AS INTEGER)',
    no_limit=-1,
    schema=SCHEMA,
)


class Statements:
    """Every statement the stores run, in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        p = dialect.placeholder

        def marks(n: int) -> str:
            return ", ".join(p for _ in range(n))

        def insert(table: str, columns: Sequence[str]) -> str:
            return (
                f"INSERT INTO {table} ({_quoted(columns)}) VALUES ({marks(len(columns))})"
                " ON CONFLICT DO NOTHING"
            )

        def upsert(table: str, columns: Sequence[str], keys: int = 1) -> str:
            """The row replaced by its first ``keys`` columns (the table's primary key)."""
            return (
                f"INSERT INTO {table} ({_quoted(columns)}) VALUES ({marks(len(columns))}) "
                f"ON CONFLICT({', '.join(columns[:keys])}) DO UPDATE SET "
                + ", ".join(f'"{n}" = excluded."{n}"' for n in columns[keys:])
            )

        self.insert_cdr = insert("cdr", _CDR_NAMES)
        self.supersede_cdr = (
            "UPDATE cdr SET "
            + ", ".join(f'"{n}" = {p}' for n in _SUPERSEDED)
            + f', "duration" = {dialect.greatest}({p}, {dialect.seconds_between})'
            + f' WHERE "uniqueid" = {p} AND "hung_up_by" IN ('
            + ", ".join(f"'{who}'" for who in SUPERSEDED)
            + ")"
        )
        self.mark_lost = (
            f"UPDATE cdr SET \"hung_up_by\" = '{LOST_TRACK}' "
            f"WHERE \"hung_up_by\" = '{STILL_IN_PROGRESS}'"
        )
        self.insert_session = insert("agent_sessions", SESSION_COLUMNS)
        self.insert_pause = insert("agent_pauses", PAUSE_COLUMNS)
        self.insert_wrapup = insert("agent_wrapups", WRAPUP_COLUMNS)
        self.insert_callback = insert("callbacks", CALLBACK_COLUMNS)
        self.upsert_presence = upsert("agent_presence", PRESENCE_COLUMNS)
        self.clear_presence = f"DELETE FROM agent_presence WHERE agent = {p}"
        self.upsert_switch = upsert("switches", SWITCH_COLUMNS)
        self.upsert_member = upsert("queue_members", MEMBER_COLUMNS, keys=2)
        self.clear_member = f"DELETE FROM queue_members WHERE queue = {p} AND agent = {p}"
        self.upsert_skills = upsert("agent_skills", SKILLS_COLUMNS)
        self.upsert_added_agent = upsert("added_agents", ROSTER_COLUMNS)
        self.clear_added_agent = f"DELETE FROM added_agents WHERE agent = {p}"
        self.upsert_added_queue = upsert("added_queues", QUEUE_ROSTER_COLUMNS)
        self.clear_added_queue = f'DELETE FROM added_queues WHERE "queue" = {p}'
        self.upsert_added_lead = upsert("added_leads", ADDED_LEAD_COLUMNS, keys=2)
        self.upsert_audit = upsert("audit_log", AUDIT_COLUMNS)
        self.fetch_audit_between = (
            f"SELECT {_quoted(AUDIT_COLUMNS)} FROM audit_log"
            f' WHERE "at" >= {p} AND "at" < {p}{{where}} ORDER BY "at", "key"'
        )
        self.upsert_schedule_request = upsert("schedule_requests", SCHEDULE_REQUEST_COLUMNS)
        self.upsert_schedule_change = upsert("schedule_changes", SCHEDULE_CHANGE_COLUMNS, keys=2)
        self.clear_schedule_change = (
            f'DELETE FROM schedule_changes WHERE "agent" = {p} AND "day" = {p}'
        )
        self.upsert_number_list_entry = upsert("number_list_entries", NUMBER_LIST_COLUMNS, keys=2)
        self.upsert_notice = upsert("notices", NOTICE_COLUMNS)
        self.clear_notice = f'DELETE FROM notices WHERE "id" = {p}'
        self.fetch_notice_read = f'SELECT "read_by" FROM notices WHERE "id" = {p}'
        self.set_notice_read = f'UPDATE notices SET "read_by" = {p} WHERE "id" = {p}'
        self.fetch_notices = f'SELECT {_quoted(NOTICE_COLUMNS)} FROM notices ORDER BY "posted"'
        self.upsert_supervisor_desk = upsert("supervisor_desks", DESK_COLUMNS)
        self.clear_supervisor_desk = f'DELETE FROM supervisor_desks WHERE "supervisor" = {p}'
        self.fetch_supervisor_desks = (
            f'SELECT {_quoted(DESK_COLUMNS)} FROM supervisor_desks ORDER BY "supervisor"'
        )
        self.clear_number_list_entry = (
            f'DELETE FROM number_list_entries WHERE "number_list" = {p} AND "number" = {p}'
        )
        self.fetch_number_list_entries = (
            f"SELECT {_quoted(NUMBER_LIST_COLUMNS)} FROM number_list_entries"
            ' ORDER BY "number_list", "added", "number"'
        )
        self.clear_skills = f"DELETE FROM agent_skills WHERE agent = {p}"
        self.insert_queue_callback = insert("queue_callbacks", QUEUE_CALLBACK_COLUMNS)
        # A request's status moves on from "waiting" once (answered, failed, expired) and
        # never back; attempts only grow.
        self.update_queue_callback = (
            f'UPDATE queue_callbacks SET "updated" = {p},'
            f' "status" = CASE WHEN "status" = \'waiting\' THEN coalesce({p}, "status")'
            ' ELSE "status" END,'
            f' "attempts" = {dialect.greatest}("attempts", coalesce({p}, 0))'
            f' WHERE "call_id" = {p}'
        )
        # A lead's row moves on until answered, failed or skipped, and stays so (but for a
        # callback reopening an answered one and a recycle a failed one).
        self.upsert_campaign_lead = (
            f"INSERT INTO campaign_leads ({_quoted(CAMPAIGN_LEAD_COLUMNS)}) "
            f"VALUES ({marks(len(CAMPAIGN_LEAD_COLUMNS))}) "
            'ON CONFLICT("campaign", "lead") DO UPDATE SET '
            '"number" = excluded."number", "status" = excluded."status", '
            # Tries counted afresh (a callback, a recycle) or a try not made (the PBX
            # link down: outbound.campaign.NOT_MADE) say the count; others only raise it.
            '"attempts" = CASE WHEN excluded."result" IN '
            "('callback', 'recycled', 'pbx-down', 'no-pbx', 'no-agents') "
            'THEN excluded."attempts" '
            f'ELSE {dialect.greatest}(campaign_leads."attempts", excluded."attempts") END, '
            '"result" = excluded."result", '
            '"call_id" = CASE WHEN excluded."call_id" <> \'\' THEN excluded."call_id" '
            'ELSE campaign_leads."call_id" END, '
            '"retry_at" = excluded."retry_at", "updated" = excluded."updated", '
            '"dropped_at" = coalesce(excluded."dropped_at", campaign_leads."dropped_at") '
            "WHERE campaign_leads.\"status\" NOT IN ('answered', 'failed', 'skipped')"
            " OR (campaign_leads.\"status\" = 'answered' AND excluded.\"result\" = 'callback')"
            " OR (campaign_leads.\"status\" = 'failed' AND excluded.\"result\" = 'recycled')"
        )
        # An agent who corrects a call's code replaces its row.
        self.upsert_disposition = (
            f"INSERT INTO dispositions ({_quoted(DISPOSITION_COLUMNS)}) "
            f"VALUES ({marks(len(DISPOSITION_COLUMNS))}) "
            'ON CONFLICT("call_id") DO UPDATE SET '
            + ", ".join(f'"{n}" = excluded."{n}"' for n in DISPOSITION_COLUMNS[1:])
        )
        named = _quoted(DISPOSITION_COLUMNS)
        self.fetch_dispositions = (
            f"SELECT {named} FROM (SELECT {named} FROM dispositions"
            f' ORDER BY "at" DESC, "call_id" DESC LIMIT {p}) AS newest'
            ' ORDER BY "at", "call_id"'
        )
        self.fetch_dispositions_between = (
            f"SELECT {named} FROM dispositions"
            f' WHERE "at" >= {p} AND "at" < {p} ORDER BY "at", "call_id"'
        )
        self.fetch_asked_not = 'SELECT DISTINCT "number" FROM dispositions WHERE "do_not_call" = 1'
        # Callbacks set for a time on inbound calls whose request is not written yet (the
        # timer's request is "<call id>+callback" in queue_callbacks once it fell due).
        self.fetch_timed_callbacks = (
            f"SELECT {_quoted(DISPOSITION_COLUMNS)} FROM dispositions d"
            """ WHERE "callback_at" IS NOT NULL AND "campaign" = '' AND NOT EXISTS"""
            """ (SELECT 1 FROM queue_callbacks q WHERE q."call_id" = d."call_id" || '+callback')"""
            ' ORDER BY "callback_at"'
        )
        self.insert_survey = insert("surveys", SURVEY_COLUMNS)
        self.upsert_evaluation = upsert("evaluations", EVALUATION_COLUMNS, keys=2)
        self.fetch_evaluations_between = (
            f"SELECT {_quoted(EVALUATION_COLUMNS)} FROM evaluations"
            f' WHERE "at" >= {p} AND "at" < {p}{{where}} ORDER BY "at", "call_id"'
        )
        self.insert_voicemail = insert("voicemails", VOICEMAIL_COLUMNS)
        voicemail_columns = _quoted(VOICEMAIL_COLUMNS)
        self.fetch_open_voicemails = (
            f"SELECT {voicemail_columns} FROM voicemails"
            """ WHERE "status" IN ('waiting', 'taken') ORDER BY "left_at", call_id"""
        )
        self.fetch_voicemail = f"SELECT {voicemail_columns} FROM voicemails WHERE call_id = {p}"
        self.fetch_voicemails = (
            f'SELECT {voicemail_columns} FROM voicemails ORDER BY "left_at", call_id'
        )
        # Conditional: a message goes to one agent at a time, whoever asks at once.
        self.take_voicemail = (
            f"""UPDATE voicemails SET "status" = 'taken', "agent" = {p}, "updated" = {p}"""
            f""" WHERE "call_id" = {p} AND ("status" = 'waiting'"""
            f""" OR ("status" = 'taken' AND "agent" = {p}))"""
        )
        self.settle_voicemail = (
            f"""UPDATE voicemails SET "status" = 'done', "outcome" = {p}, "updated" = {p}"""
            f""" WHERE "call_id" = {p} AND "status" = 'taken' AND "agent" = {p}"""
        )
        self.release_voicemail = (
            f"""UPDATE voicemails SET "status" = 'waiting', "agent" = '', "updated" = {p}"""
            f""" WHERE "call_id" = {p} AND "status" = 'taken'"""
        )
        self.note_voicemail_try = (
            f"""UPDATE voicemails SET "tries" = "tries" + 1, "last_try" = {p},"""
            f""" "tried_at" = {p}, "updated" = {p}"""
            f""" WHERE "call_id" = {p} AND "status" = 'taken' AND "agent" = {p}"""
        )
        named = _quoted(SURVEY_COLUMNS)
        # {where}: nothing, or " AND " + the filters of :meth:`RecordStore.fetch_surveys`.
        self.fetch_surveys = (
            f"SELECT {named} FROM (SELECT {named} FROM surveys WHERE 1 = 1{{where}}"
            f' ORDER BY "at" DESC, "call_id" DESC LIMIT {p}) AS newest'
            ' ORDER BY "at", "call_id"'
        )
        self.fetch_surveys_between = (
            f'SELECT {named} FROM surveys WHERE "at" >= {p} AND "at" < {p}{{where}}'
            ' ORDER BY "at", "call_id"'
        )
        self.fetch_campaign_leads = (
            f"SELECT {_quoted(CAMPAIGN_LEAD_COLUMNS)} FROM campaign_leads"
            ' ORDER BY "campaign", "updated", "lead"'
        )
        # Retention (purge): rows older than a time. Every time column but callback_at is
        # UTC ISO text written by this daemon, so it compares as text (and the indexes
        # serve); callback_at carries the offset the agent gave.
        callback_gone = dialect.earlier.format(column='"callback_at"', p=p)
        self.purges: tuple[tuple[str, str], ...] = tuple(
            (table, f'DELETE FROM {table} WHERE "{column}" < {p}{extra}')
            for table, column, extra in (
                ("cdr", "start", ""),
                ("queue_log", "time", ""),
                ("agent_sessions", "logout", ""),
                ("agent_pauses", "end", ""),
                ("agent_wrapups", "end", ""),
                ("callbacks", "requested", """ AND "status" <> 'pending'"""),
                ("queue_callbacks", "updated", """ AND "status" <> 'waiting'"""),
                ("surveys", "at", ""),
                ("evaluations", "at", ""),
                ("audit_log", "at", ""),
                # A notice no daemon took down (stopped meanwhile) long after its time.
                ("notices", "until", ""),
                ("voicemails", "left_at", """ AND "status" = 'done'"""),
                # An ISO date sorts before the cutoff's timestamp of the same day: the days
                # before it go, as the sessions of those days do.
                ("schedule_changes", "day", ""),
                # A request for a day that long gone is moot, answered or not.
                ("schedule_requests", "day", ""),
                # A do-not-call request outlives any retention; a callback set for later
                # waits for its time.
                (
                    "dispositions",
                    "at",
                    f' AND "do_not_call" = 0 AND ("callback_at" IS NULL OR {callback_gone})',
                ),
            )
        )
        self.insert_queue_log = insert("queue_log", ("key", *QUEUE_LOG_COLUMNS))
        self.has_cdr = f"SELECT 1 FROM cdr WHERE uniqueid = {p}"
        columns = f'"id", "key", {_quoted(QUEUE_LOG_COLUMNS)}'
        self.fetch_queue_log = (
            f"SELECT {columns} FROM (SELECT {columns} FROM queue_log WHERE id > {p}"
            f" ORDER BY id DESC LIMIT {p}) AS newest ORDER BY id"
        )
        self.fetch_queue_log_between = (
            f'SELECT {columns} FROM queue_log WHERE "time" >= {p} AND "time" < {p} ORDER BY id'
        )
        self.fetch_sessions_between = (
            f"SELECT {_quoted(SESSION_COLUMNS)} FROM agent_sessions"
            f' WHERE "logout" > {p} AND "login" < {p} ORDER BY "login", agent'
        )
        self.fetch_pauses_between = (
            f"SELECT {_quoted(PAUSE_COLUMNS)} FROM agent_pauses"
            f' WHERE "end" > {p} AND "start" < {p} ORDER BY "start", agent'
        )
        self.fetch_wrapups_between = (
            f"SELECT {_quoted(WRAPUP_COLUMNS)} FROM agent_wrapups"
            f' WHERE "end" > {p} AND "start" < {p} ORDER BY "start", agent'
        )
        columns = _quoted(_CDR_NAMES)
        self.fetch_cdrs_between = (
            f'SELECT {columns} FROM cdr WHERE "start" >= {p} AND "start" < {p}'
            ' ORDER BY "start", uniqueid'
        )
        self.fetch_agent_calls = (
            'SELECT c."uniqueid", c."start", c."src", c."dst", c."queue", c."talk_seconds",'
            ' c."ivr_variables", c."agent", c."transfer_path", c."recordingfile", d."code"'
            " FROM cdr AS c"
            ' LEFT JOIN dispositions AS d ON d."call_id" = c."uniqueid"'
            f' WHERE (c."agent" = {p} OR c."transfer_path" LIKE {p} ESCAPE \'!\''
            f' OR c."transfer_path" LIKE {p} ESCAPE \'!\') AND c."start" >= {p}'
            f' ORDER BY c."start" DESC, c."uniqueid" DESC LIMIT {p}'
        )
        joined = ", ".join(f'c."{n}"' for n in _CDR_NAMES)
        self.fetch_number_calls = (
            f'SELECT {joined}, d."code", d."note" FROM cdr AS c'
            ' LEFT JOIN dispositions AS d ON d."call_id" = c."uniqueid"'
            f' WHERE (c."src" = {p} OR c."dst" = {p}) AND c."start" >= {p} AND c."start" < {p}'
            f' ORDER BY c."start" DESC, c."uniqueid" DESC LIMIT {p}'
        )
        self.fetch_cdr = f"SELECT {columns} FROM cdr WHERE uniqueid = {p}"
        self.fetch_cdrs = (
            f"SELECT {columns} FROM (SELECT {columns} FROM cdr"
            f' ORDER BY "start" DESC, uniqueid DESC LIMIT {p}) AS newest'
            ' ORDER BY "start", uniqueid'
        )
        self.fetch_queue_callbacks = (
            f"SELECT {_quoted(QUEUE_CALLBACK_COLUMNS)} FROM queue_callbacks"
            ' ORDER BY "requested", call_id'
        )
        self.fetch_queue_callbacks_with = (
            f"SELECT {_quoted(QUEUE_CALLBACK_COLUMNS)} FROM queue_callbacks"
            f' WHERE "status" = {p} ORDER BY "requested", call_id'
        )
        self.fetch_queue_callback = (
            f"SELECT {_quoted(QUEUE_CALLBACK_COLUMNS)} FROM queue_callbacks WHERE call_id = {p}"
        )


LOW_SPACE = 1024 * 1024
"""Bytes free below which a file system counts as full (SQLite needs whole pages for its
write-ahead log and its shared-memory index)."""


def _iso(value: Any) -> str:
    # Microseconds: (agent, login) and (agent, start) are primary keys, and two pauses can
    # start within one millisecond (a reason change right after a pause).
    return str(value.isoformat(timespec="microseconds"))


def _voicemail(row: Mapping[str, Any]) -> VoicemailMessage:
    return VoicemailMessage(
        call_id=row["call_id"],
        queue=row["queue"],
        box=row["box"],
        number=row["number"],
        name=row["name"],
        path=row["path"],
        seconds=float(row["seconds"]),
        left_at=_utc(row["left_at"]),
        status=row["status"],
        agent=row["agent"],
        outcome=row["outcome"],
        updated=_utc(row["updated"]),
        tries=int(row["tries"]),
        last_try=row["last_try"],
        tried_at=_utc(row["tried_at"]) if row["tried_at"] else None,
    )


def _transfer_of(agent: str, answered_by: str, path: str, queue: str) -> str:
    """How ``agent`` took part in a call's transfers (``transfer_path``, the transferring
    agent first: ``1001>2000``, ``1001>support>1002`` through a queue): ``"from 1001"``,
    ``"from 1001 via support"``, ``"to 2000"``, ``"to support"`` or ``""``."""
    hops = path.split(">") if path else []
    if agent in hops[1:]:
        at = hops.index(agent, 1)
        if at >= 2 and hops[at - 1] == queue:
            return f"from {hops[at - 2]} via {queue}"
        return f"from {hops[at - 1]}"
    if answered_by == agent and len(hops) > 1 and hops[0] == agent:
        return f"to {hops[1]}"
    return ""


def _stamp(value: datetime) -> str:
    """A queue_log or CDR time as the tables hold it (UTC, milliseconds): compared as
    text."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _utc(text: str) -> datetime:
    return _aware(datetime.fromisoformat(text))


def _aware(value: datetime) -> datetime:
    # Rows written by this daemon are UTC with an offset; a naive one can only be UTC too.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _cdr_row(row: Any) -> dict[str, Any]:
    record = dict(row)
    record["abandoned"] = bool(record["abandoned"])
    record["barged"] = bool(record["barged"])
    return record


def _queue_log_entry(row: Any) -> QueueLogEntry:
    data = [str(row[n]) for n in QUEUE_LOG_DATA]
    while data and not data[-1]:
        data.pop()
    return QueueLogEntry(
        key=row["key"],
        time=_utc(row["time"]),
        callid=row["callid"],
        queuename=row["queuename"],
        agent=row["agent"],
        event=row["event"],
        data=tuple(data),
    )


class Transaction:
    """Statements run in one transaction of a store (:meth:`RecordStore.transaction`)."""

    def __init__(self, conn: Any, placeholder: str) -> None:
        self._conn = conn
        self.p = placeholder
        """The parameter placeholder of the database's SQL (``?`` or ``%s``)."""

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[Mapping[str, Any]]:
        """The rows a query gives, as mappings."""
        return list(self._conn.execute(sql, params).fetchall())

    def change(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement that changes rows; how many it changed."""
        return int(self._conn.execute(sql, params).rowcount)


class RecordStore(abc.ABC):
    """What every record database does (blocking; see the module doc). Subclasses connect
    (:meth:`_connect`), run a transaction (:meth:`_transaction`) and name their errors."""

    dialect: Dialect = SQLITE
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    """The database driver's errors, turned into RecordError."""

    def __init__(self, where: str, *, reading: bool = False) -> None:
        self.where = where
        """The database as messages name it (a path, or a server and database)."""
        self.reading = reading
        """A store for reads alone (:meth:`reader`): its connection refuses writes and
        leaves the schema to the writing store."""
        self._sql = Statements(self.dialect)
        self._conn: Any = None
        # Re-entrant: the writes a batch runs take it again.
        self._lock = threading.RLock()
        self._batching = False

    def __getstate__(self) -> dict[str, Any]:
        # What a process of reports needs to open the same database (records/reports.py):
        # never the connection or the lock, which belong to this process.
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_batching"] = False
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create the schema if needed (and the file, for SQLite). Idempotent."""
        with self._lock:
            self._connection()

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(*self.errors):
                    self._conn.close()
                self._conn = None

    def out_of_space(self) -> bool:
        """True when the database's file system has (next to) no room left: a write the
        store refuses then waits for space rather than for a fix."""
        return False

    def reader(self) -> RecordStore | None:
        """A store on the same database with a connection of its own, for reads alone
        (reports, forecasts, desktops): run in a thread of its own, a long read neither
        waits for the records being written nor holds them up. None where the database
        cannot have a second connection (SQLite in memory): read from this store then."""
        return None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new connection to a database whose schema is ready; RecordError if none."""

    @abc.abstractmethod
    def _transaction(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        """Commits on exit, rolls back on an exception."""

    def _failed(self, exc: Exception) -> None:
        """A statement failed with ``exc``: drop a connection that cannot be used again, so
        that the next write (the writer retries) connects afresh."""
        if self._broken(exc):
            self.close()

    def _broken(self, exc: Exception) -> bool:
        """Whether ``exc`` leaves the connection unusable (a lost server)."""
        return False

    def _run_many(self, conn: Any, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """Run ``sql`` once per row; the rows changed in all."""
        cursor = conn.cursor()
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[Transaction]:
        """One transaction for statements of a caller's own (a maintenance job): committed
        when the block ends, rolled back when it raises. A database error becomes
        :class:`RecordError` ("cannot <what> <database>: ...")."""
        try:
            with self._lock:
                conn = self._connection()
                with self._transaction(conn):
                    yield Transaction(conn, self.dialect.placeholder)
        except self.errors as exc:
            self._failed(exc)
            raise RecordError(f"cannot {what} {self.where}: {exc}") from exc

    # ------------------------------------------------------------------ writes

    def batch(self, writes: Callable[[], T]) -> T:
        """Run ``writes`` (calls of this store's ``write_*`` methods) as one transaction.

        One commit, so one sync to disk, for all of them: what lets the writer keep up with
        hundreds of calls a second. All or nothing: when one write fails the others are
        rolled back too and the error (RecordError) propagates.
        """
        with self._lock:
            conn = self._connection()
            self._batching = True
            try:
                with self._transaction(conn):
                    return writes()
            except self.errors as exc:
                self._failed(exc)
                raise RecordError(f"cannot store records in {self.where}: {exc}") from exc
            finally:
                self._batching = False

    def _execute(self, sql: str, params: Sequence[object]) -> int:
        """Run one write in its own transaction (or the batch's); returns the rows changed.

        Raises the driver's errors as they come (``_write`` turns them into RecordError).
        """
        with self._lock:
            conn = self._connection()
            if self._batching:
                return int(conn.execute(sql, params).rowcount)
            with self._transaction(conn):
                return int(conn.execute(sql, params).rowcount)

    def _write(self, what: str, sql: str, params: Sequence[object]) -> bool:
        try:
            return self._execute(sql, params) == 1
        except self.errors as exc:
            if not self._batching:
                self._failed(exc)
            raise RecordError(f"cannot store {what} in {self.where}: {exc}") from exc

    def write_cdr(self, record: CdrRecord) -> bool:
        """Store a CDR; False when a row with that uniqueid already exists (kept as is),
        unless that row was closed by a shutdown: then this record supersedes it."""
        row = {n: int(v) if isinstance(v, bool) else v for n, v in record.to_row().items()}
        what = f"CDR {record.uniqueid}"
        if self._write(what, self._sql.insert_cdr, [row[n] for n in _CDR_NAMES]):
            return True
        params = [*(row[n] for n in _SUPERSEDED), row["duration"], row["end"], row["uniqueid"]]
        return self._write(what, self._sql.supersede_cdr, params)

    def write_agent_session(self, session: AgentSession) -> bool:
        """Store one login..logout; False when already stored."""
        params = (
            session.agent,
            _iso(session.login),
            _iso(session.logout),
            session.duration_seconds,
            session.via_login,
            session.via_logout,
        )
        return self._write(f"session of agent {session.agent}", self._sql.insert_session, params)

    def write_agent_pause(self, pause: AgentPause) -> bool:
        """Store one pause; False when already stored."""
        params = (
            pause.agent,
            pause.reason,
            _iso(pause.start),
            _iso(pause.end),
            pause.duration_seconds,
            pause.via_pause,
            pause.via_unpause,
        )
        return self._write(f"pause of agent {pause.agent}", self._sql.insert_pause, params)

    def write_switch(self, state: SwitchState) -> bool:
        """Store a switch's last flip (one row per switch, replaced)."""
        params = (state.name, int(state.on), _iso(state.changed), state.via)
        return self._write(f"switch {state.name}", self._sql.upsert_switch, params)

    def fetch_switches(self) -> list[SwitchState]:
        """Every switch's last flip, by name."""
        sql = f"SELECT {_quoted(SWITCH_COLUMNS)} FROM switches ORDER BY name"
        return [
            SwitchState(row["name"], bool(row["on"]), _utc(row["changed"]), row["via"])
            for row in self._fetch(sql)
        ]

    def write_agent_skills(self, state: SkillsState) -> bool:
        """Store an agent's kept skills (one row per agent)."""
        params = (
            state.agent,
            json.dumps(dict(state.skills), sort_keys=True),
            _iso(state.changed),
            state.via,
        )
        return self._write(f"skills of agent {state.agent}", self._sql.upsert_skills, params)

    def clear_agent_skills(self, agent: str) -> bool:
        """The agent has the config's skills again."""
        return self._write(f"skills of agent {agent}", self._sql.clear_skills, (agent,))

    def fetch_agent_skills(self) -> list[SkillsState]:
        """Every agent's kept skills, by agent."""
        sql = f"SELECT {_quoted(SKILLS_COLUMNS)} FROM agent_skills ORDER BY agent"
        return [
            SkillsState.of(
                row["agent"],
                {str(k): int(v) for k, v in json.loads(row["skills"]).items()},
                _utc(row["changed"]),
                row["via"],
            )
            for row in self._fetch(sql)
        ]

    def write_added_agent(self, added: AddedAgent) -> bool:
        """Store an agent added while the centre runs (one row per agent)."""
        params = (added.agent, added.settings, _iso(added.changed), added.via)
        return self._write(f"added agent {added.agent}", self._sql.upsert_added_agent, params)

    def clear_added_agent(self, agent: str) -> bool:
        """The agent added while the centre runs was removed."""
        return self._write(f"added agent {agent}", self._sql.clear_added_agent, (agent,))

    def fetch_added_agents(self) -> list[AddedAgent]:
        """Every agent added while the centre runs, by id."""
        sql = f"SELECT {_quoted(ROSTER_COLUMNS)} FROM added_agents ORDER BY agent"
        return [
            AddedAgent.of(
                row["agent"], json.loads(row["settings"]), _utc(row["changed"]), row["via"]
            )
            for row in self._fetch(sql)
        ]

    def write_added_queue(self, added: AddedQueue) -> bool:
        """Store a queue added while the centre runs (one row per queue)."""
        params = (added.queue, added.settings, _iso(added.changed), added.via)
        return self._write(f"added queue {added.queue}", self._sql.upsert_added_queue, params)

    def clear_added_queue(self, queue: str) -> bool:
        """The queue added while the centre runs was removed."""
        return self._write(f"added queue {queue}", self._sql.clear_added_queue, (queue,))

    def fetch_added_queues(self) -> list[AddedQueue]:
        """Every queue added while the centre runs, by name."""
        sql = f'SELECT {_quoted(QUEUE_ROSTER_COLUMNS)} FROM added_queues ORDER BY "queue"'
        return [
            AddedQueue(row["queue"], row["settings"], _utc(row["changed"]), row["via"])
            for row in self._fetch(sql)
        ]

    def write_added_lead(self, added: AddedLead) -> bool:
        """Store a lead added to a campaign while it ran (one row per campaign and lead)."""
        params = (
            added.campaign,
            added.lead,
            added.number,
            added.timezone,
            added.data,
            _iso(added.added),
            added.via,
            added.priority,
        )
        what = f"lead {added.lead} of campaign {added.campaign}"
        return self._write(what, self._sql.upsert_added_lead, params)

    def write_audit(self, entry: AuditEntry) -> bool:
        """Store one row of the audit trail (one key is one row)."""
        params = (
            entry.key,
            _iso(entry.at),
            entry.who,
            entry.peer,
            entry.method,
            entry.route,
            entry.status,
            entry.detail,
        )
        return self._write(f"audit row {entry.key}", self._sql.upsert_audit, params)

    def fetch_audit_between(
        self, since: datetime, until: datetime, *, who: str | None = None
    ) -> list[AuditEntry]:
        """The audit rows from ``since`` (included) to ``until`` (excluded), oldest first;
        of ``who`` only when given."""
        bounds = (_iso(since.astimezone(UTC)), _iso(until.astimezone(UTC)))
        where, params = (
            ("", ()) if who is None else (f' AND "who" = {self.dialect.placeholder}', (who,))
        )
        sql = self._sql.fetch_audit_between.format(where=where)
        return [
            AuditEntry(
                key=row["key"],
                at=_utc(row["at"]),
                who=row["who"],
                peer=row["peer"],
                method=row["method"],
                route=row["route"],
                status=int(row["status"]),
                detail=row["detail"],
            )
            for row in self._fetch(sql, (*bounds, *params))
        ]

    def fetch_added_leads(self) -> list[AddedLead]:
        """Every lead added to a campaign while it ran, by campaign and lead."""
        sql = (
            f"SELECT {_quoted(ADDED_LEAD_COLUMNS)} FROM added_leads "
            'ORDER BY "campaign", "added", "lead"'
        )
        return [
            AddedLead(
                row["campaign"],
                row["lead"],
                row["number"],
                row["timezone"],
                row["data"],
                _utc(row["added"]),
                row["via"],
                int(row["priority"] or 0),
            )
            for row in self._fetch(sql)
        ]

    def write_schedule_request(self, request: ScheduleRequest) -> bool:
        """Store an agent's request for a day of their schedule (one row per request)."""
        params = (
            request.id,
            request.agent,
            request.day,
            request.hours,
            request.note,
            _iso(request.asked),
            request.status,
            _iso(request.decided) if request.decided is not None else None,
            request.decided_by,
        )
        what = f"schedule request {request.id} of {request.agent}"
        return self._write(what, self._sql.upsert_schedule_request, params)

    def fetch_schedule_requests(self, status: str | None = None) -> list[ScheduleRequest]:
        """The agents' requests for days of their schedules (``status`` only when given),
        oldest first."""
        sql = f"SELECT {_quoted(SCHEDULE_REQUEST_COLUMNS)} FROM schedule_requests"
        params: tuple[str, ...] = ()
        if status is not None:
            sql += f' WHERE "status" = {self.dialect.placeholder}'
            params = (status,)
        return [
            ScheduleRequest(
                row["id"],
                row["agent"],
                row["day"],
                row["hours"],
                row["note"],
                _utc(row["asked"]),
                row["status"],
                _utc(row["decided"]) if row["decided"] else None,
                row["decided_by"],
            )
            for row in self._fetch(sql + ' ORDER BY "asked", "id"', params)
        ]

    def write_schedule_change(self, change: ScheduleChange) -> bool:
        """Store a day of an agent's schedule changed while the centre runs (one row per
        agent and day)."""
        params = (change.agent, change.day, change.hours, _iso(change.changed), change.via)
        what = f"schedule of {change.agent} on {change.day}"
        return self._write(what, self._sql.upsert_schedule_change, params)

    def clear_schedule_change(self, agent: str, day: str) -> bool:
        """The agent's day is as their schedule says again."""
        what = f"schedule of {agent} on {day}"
        return self._write(what, self._sql.clear_schedule_change, (agent, day))

    def fetch_schedule_changes(self, since: date | None = None) -> list[ScheduleChange]:
        """The days of agents' schedules changed while the centre ran (from ``since`` on,
        when given), by agent and day."""
        sql = f"SELECT {_quoted(SCHEDULE_CHANGE_COLUMNS)} FROM schedule_changes"
        params: tuple[str, ...] = ()
        if since is not None:
            sql += f' WHERE "day" >= {self.dialect.placeholder}'
            params = (since.isoformat(),)
        return [
            ScheduleChange(row["agent"], row["day"], row["hours"], _utc(row["changed"]), row["via"])
            for row in self._fetch(sql + ' ORDER BY "agent", "day"', params)
        ]

    def fetch_last_agent(self, number: str, queue: str, since: datetime) -> str | None:
        """The agent who last talked to ``number`` on a call of ``queue`` that started at
        ``since`` or later (the CDRs: calls from that number, and calls an agent dialled to
        it or that called it back), or None. ``since`` in UTC: the daemon's own ISO text
        compares as text, and the ``cdr_src`` / ``cdr_dst`` indexes serve."""
        p = self.dialect.placeholder
        sql = (
            f'SELECT "agent", "start" FROM cdr WHERE "src" = {p} AND "queue" = {p} '
            f'AND "agent" <> \'\' AND "start" >= {p} '
            f'UNION ALL SELECT "agent", "start" FROM cdr WHERE "dst" = {p} AND "queue" = {p} '
            f'AND "agent" <> \'\' AND "start" >= {p} '
            f'AND ("ivr_variables" LIKE {p} OR "ivr_variables" LIKE {p}) '
            'ORDER BY "start" DESC LIMIT 1'
        )
        stamp = _stamp(since)
        dialled, called_back = '%"dialled_by"%', '%"callback_of"%'
        rows = self._fetch(sql, (number, queue, stamp, number, queue, stamp, dialled, called_back))
        return str(rows[0]["agent"]) if rows else None

    def fetch_queue_visits(self, *, ended: datetime, started: datetime) -> list[QueueVisit]:
        """The calls that joined a queue, ended at ``ended`` or later and started at
        ``started`` or later (a bound the ``cdr_start`` index serves), oldest first: what a
        starting daemon needs to give callers who abandoned shortly before their place back
        (``resume_abandoned``)."""
        p = self.dialect.placeholder
        sql = (
            'SELECT "src", "queue", "start", "end", "wait_seconds", "abandoned", '
            f'"ivr_variables" FROM cdr WHERE "start" >= {p} AND "end" >= {p} '
            'AND "queue" <> \'\' ORDER BY "start", "uniqueid"'
        )
        rows = self._fetch(sql, (_stamp(started), _stamp(ended)))
        return [
            QueueVisit(
                number=row["src"],
                queue=row["queue"],
                start=_utc(row["start"]),
                end=_utc(row["end"]),
                wait_seconds=float(row["wait_seconds"]),
                abandoned=bool(row["abandoned"]),
                campaign="campaign" in json.loads(row["ivr_variables"] or "{}"),
            )
            for row in rows
        ]

    def write_notice(self, notice: Notice) -> bool:
        """Store a notice standing (one row per notice, replaced)."""
        params = (
            notice.id,
            notice.text,
            notice.by,
            json.dumps(list(notice.teams)),
            json.dumps(list(notice.agents)),
            _iso(notice.posted),
            _iso(notice.until),
            json.dumps({agent: _iso(at) for agent, at in notice.read_by}),
        )
        return self._write(f"notice {notice.id}", self._sql.upsert_notice, params)

    def mark_notice_read(self, notice_id: str, agent: str, at: datetime) -> bool:
        """``agent`` saw message ``notice_id`` at ``at`` (the first time counts); False when
        the notice is gone or they had seen it."""
        with self.transaction(f"keep that {agent} read notice {notice_id} in") as tx:
            rows = tx.rows(self._sql.fetch_notice_read, (notice_id,))
            if not rows:
                return False
            read = json.loads(rows[0]["read_by"])
            if agent in read:
                return False
            read[agent] = _iso(at)
            return tx.change(self._sql.set_notice_read, (json.dumps(read), notice_id)) == 1

    def clear_notice(self, notice_id: str) -> bool:
        """The notice no longer stands."""
        return self._write(f"notice {notice_id}", self._sql.clear_notice, (notice_id,))

    def fetch_notices(self) -> list[Notice]:
        """The notices standing when the last daemon stopped (or now), oldest first."""
        return [
            Notice(
                row["id"],
                row["text"],
                row["by"],
                tuple(json.loads(row["teams"])),
                _utc(row["posted"]),
                _utc(row["until"]),
                tuple(json.loads(row["agents"])),
                tuple((a, _utc(at)) for a, at in json.loads(row["read_by"]).items()),
            )
            for row in self._fetch(self._sql.fetch_notices)
        ]

    def write_supervisor_desk(self, desk: SupervisorDesk) -> bool:
        """Store the phone a supervisor works at (one row per supervisor)."""
        params = (desk.supervisor, desk.device, _iso(desk.since), desk.via)
        what = f"desk of supervisor {desk.supervisor}"
        return self._write(what, self._sql.upsert_supervisor_desk, params)

    def clear_supervisor_desk(self, supervisor: str) -> bool:
        """The supervisor is at their own phone again."""
        what = f"desk of supervisor {supervisor}"
        return self._write(what, self._sql.clear_supervisor_desk, (supervisor,))

    def fetch_supervisor_desks(self) -> list[SupervisorDesk]:
        """Every supervisor working away from their own phone."""
        return [
            SupervisorDesk(row["supervisor"], row["device"], _utc(row["since"]), row["via"])
            for row in self._fetch(self._sql.fetch_supervisor_desks)
        ]

    def write_number_list_entry(self, entry: NumberListEntry) -> bool:
        """Store a number added to an IVR number list (one row per list and number)."""
        params = (entry.number_list, entry.number, _iso(entry.added), entry.via)
        what = f"{entry.number} on number list {entry.number_list}"
        return self._write(what, self._sql.upsert_number_list_entry, params)

    def clear_number_list_entry(self, number_list: str, number: str) -> bool:
        """``number`` is off ``number_list`` again."""
        what = f"{number} on number list {number_list}"
        return self._write(what, self._sql.clear_number_list_entry, (number_list, number))

    def fetch_number_list_entries(self) -> list[NumberListEntry]:
        """Every number added to a number list while a daemon ran, by list and time."""
        return [
            NumberListEntry(row["number_list"], row["number"], _utc(row["added"]), row["via"])
            for row in self._fetch(self._sql.fetch_number_list_entries)
        ]

    def write_member_change(self, state: MemberState) -> bool:
        """Store a kept change to a queue's members (one row per queue and agent)."""
        params = (
            state.queue,
            state.agent,
            int(state.member),
            state.penalty,
            _iso(state.changed),
            state.via,
            state.paused,
        )
        what = f"member {state.agent} of queue {state.queue}"
        return self._write(what, self._sql.upsert_member, params)

    def clear_member_change(self, queue: str, agent: str) -> bool:
        """The queue's members are the config's again for ``agent``."""
        what = f"member {agent} of queue {queue}"
        return self._write(what, self._sql.clear_member, (queue, agent))

    def fetch_member_changes(self) -> list[MemberState]:
        """Every kept change to queues' members, by queue and agent."""
        sql = f"SELECT {_quoted(MEMBER_COLUMNS)} FROM queue_members ORDER BY queue, agent"
        return [
            MemberState(
                row["queue"],
                row["agent"],
                bool(row["member"]),
                None if row["penalty"] is None else int(row["penalty"]),
                _utc(row["changed"]),
                row["via"],
                row["paused"],
            )
            for row in self._fetch(sql)
        ]

    def write_agent_wrapup(self, wrapup: AgentWrapup) -> bool:
        """Store one stretch of after-call work; False when already stored."""
        params = (
            wrapup.agent,
            _iso(wrapup.start),
            _iso(wrapup.end),
            wrapup.duration_seconds,
            wrapup.call_id,
        )
        return self._write(f"wrap-up of agent {wrapup.agent}", self._sql.insert_wrapup, params)

    def write_callback(self, request: CallbackRecord) -> bool:
        """Store a callback request (status ``pending``); False when already stored."""
        params = (
            request.call_id,
            request.number,
            request.queue,
            request.caller_num,
            _iso(request.requested),
            "pending",
        )
        return self._write(
            f"callback request of {request.call_id}", self._sql.insert_callback, params
        )

    def write_agent_presence(self, presence: AgentPresence) -> bool:
        """Store who is logged in now (one row per agent, replaced)."""
        owed = presence.owed
        params = (
            presence.agent,
            _iso(presence.logged_in),
            presence.via_login,
            presence.pause_reason,
            _iso(presence.paused_at) if presence.paused_at is not None else None,
            presence.via_pause,
            owed.call_id if owed is not None else None,
            owed.number if owed is not None else "",
            owed.queue if owed is not None else "",
            owed.campaign if owed is not None else "",
            owed.lead if owed is not None else "",
            presence.device,
            *(
                (line.team, line.reason, line.via, line.place, _iso(line.since))
                if (line := presence.line) is not None
                else ("", "", "", 0, "")
            ),
        )
        return self._write(f"presence of agent {presence.agent}", self._sql.upsert_presence, params)

    def clear_agent_presence(self, agent: str) -> bool:
        """The agent logged out: no longer present."""
        return self._write(f"presence of agent {agent}", self._sql.clear_presence, (agent,))

    def write_queue_callback(self, request: QueueCallback) -> bool:
        """Store a queue callback request; False when already stored."""
        params = (
            request.call_id,
            request.queue,
            request.number,
            request.priority,
            ",".join(request.skills),
            _iso(request.requested),
            request.status,
            request.attempts,
            _iso(request.updated or request.requested),
            json.dumps(dict(request.data), ensure_ascii=False),
        )
        what = f"callback request of {request.call_id}"
        return self._write(what, self._sql.insert_queue_callback, params)

    def update_queue_callback(
        self, call_id: str, *, updated: datetime, status: str | None, attempts: int | None
    ) -> bool:
        """Record what became of a queue callback request (see records.callbacks)."""
        params = (_iso(updated), status, attempts, call_id)
        return self._write(
            f"callback request of {call_id}", self._sql.update_queue_callback, params
        )

    def write_disposition(self, record: DispositionRecord) -> bool:
        """Store the code an agent gave a call (a correction replaces it)."""
        params = (
            record.call_id,
            record.agent,
            record.code,
            record.note,
            record.number,
            record.queue,
            record.campaign,
            record.lead,
            _iso(record.callback_at) if record.callback_at is not None else None,
            int(record.do_not_call),
            _iso(record.at),
        )
        return self._write(
            f"disposition of call {record.call_id}", self._sql.upsert_disposition, params
        )

    def fetch_dispositions(self, *, last: int | None = None) -> list[DispositionRecord]:
        """Every call's disposition, or the ``last`` newest, oldest first."""
        limit = self.dialect.no_limit if last is None else max(last, 0)
        return self._dispositions(self._sql.fetch_dispositions, (limit,))

    def fetch_dispositions_between(
        self, since: datetime, until: datetime
    ) -> list[DispositionRecord]:
        """The codes given from ``since`` (included) to ``until`` (excluded), oldest first."""
        bounds = (_iso(since.astimezone(UTC)), _iso(until.astimezone(UTC)))
        return self._dispositions(self._sql.fetch_dispositions_between, bounds)

    def fetch_timed_callbacks(self) -> list[DispositionRecord]:
        """Inbound calls an agent set a callback for a time on, not yet fallen due (or due
        while no daemon ran), soonest first."""
        return self._dispositions(self._sql.fetch_timed_callbacks)

    def _dispositions(self, sql: str, params: Sequence[object] = ()) -> list[DispositionRecord]:
        return [
            DispositionRecord(
                call_id=row["call_id"],
                agent=row["agent"],
                code=row["code"],
                note=row["note"],
                number=row["number"],
                queue=row["queue"],
                campaign=row["campaign"],
                lead=row["lead"],
                callback_at=(
                    datetime.fromisoformat(row["callback_at"]) if row["callback_at"] else None
                ),
                do_not_call=bool(row["do_not_call"]),
                at=datetime.fromisoformat(row["at"]),
            )
            for row in self._fetch(sql, params)
        ]

    def write_survey(self, record: SurveyRecord) -> bool:
        """Store what a caller answered in a post-call survey (once a call)."""
        params = (
            record.call_id,
            record.queue,
            record.agent,
            record.flow,
            record.number,
            record.score,
            json.dumps(dict(record.answers), ensure_ascii=False),
            int(record.completed),
            record.seconds,
            _iso(record.at),
            None if record.satisfied is None else int(record.satisfied),
        )
        return self._write(f"survey of call {record.call_id}", self._sql.insert_survey, params)

    def write_evaluation(self, record: Evaluation) -> bool:
        """Store a supervisor's scorecard of a call (again: replaces theirs)."""
        params = (
            record.call_id,
            record.supervisor,
            record.agent,
            record.queue,
            record.form,
            json.dumps(dict(record.scores), ensure_ascii=False),
            record.points,
            record.max_points,
            int(record.passed),
            record.comment,
            _iso(record.at),
            record.reply,
            record.reply_note,
            None if record.replied_at is None else _iso(record.replied_at),
        )
        what = f"evaluation of call {record.call_id} by {record.supervisor}"
        return self._write(what, self._sql.upsert_evaluation, params)

    def fetch_evaluations_between(
        self, since: datetime, until: datetime, *, agents: Collection[str] | None = None
    ) -> list[Evaluation]:
        """The scorecards made from ``since`` (included) to ``until`` (excluded), oldest
        first; only of ``agents``' calls when given."""
        bounds = (_iso(since.astimezone(UTC)), _iso(until.astimezone(UTC)))
        where, params = self._survey_filter(agents, None)
        sql = self._sql.fetch_evaluations_between.format(where=where)
        return [
            Evaluation(
                call_id=row["call_id"],
                supervisor=row["supervisor"],
                agent=row["agent"],
                queue=row["queue"],
                form=row["form"],
                scores=tuple(
                    (str(k), int(v)) for k, v in json.loads(row["scores"] or "{}").items()
                ),
                points=int(row["points"]),
                max_points=int(row["max_points"]),
                passed=bool(row["passed"]),
                comment=row["comment"],
                at=_utc(row["at"]),
                reply=row["reply"],
                reply_note=row["reply_note"],
                replied_at=None if row["replied_at"] is None else _utc(row["replied_at"]),
            )
            for row in self._fetch(sql, (*bounds, *params))
        ]

    def write_voicemail(self, message: VoicemailMessage) -> bool:
        """Store a message left in a queue's box (once a call)."""
        params = (
            message.call_id,
            message.queue,
            message.box,
            message.number,
            message.name,
            message.path,
            message.seconds,
            _iso(message.left_at),
            message.status,
            message.agent,
            message.outcome,
            _iso(message.updated or message.left_at),
            message.tries,
            message.last_try,
            _iso(message.tried_at) if message.tried_at is not None else None,
        )
        return self._write(
            f"voicemail of call {message.call_id}", self._sql.insert_voicemail, params
        )

    def fetch_voicemails(self) -> list[VoicemailMessage]:
        """Every message kept, oldest first."""
        return [_voicemail(row) for row in self._fetch(self._sql.fetch_voicemails)]

    def fetch_open_voicemails(self) -> list[VoicemailMessage]:
        """The messages still to deal with (waiting or taken), oldest first."""
        return [_voicemail(row) for row in self._fetch(self._sql.fetch_open_voicemails)]

    def fetch_voicemail(self, call_id: str) -> VoicemailMessage | None:
        """The message ``call_id`` left, whatever became of it; None when none."""
        rows = self._fetch(self._sql.fetch_voicemail, (call_id,))
        return _voicemail(rows[0]) if rows else None

    def take_voicemail(self, call_id: str, agent: str, at: datetime) -> bool:
        """Give the message to ``agent`` if it waits (or is theirs already); False when it
        does not exist, is another agent's or is done."""
        params = (agent, _iso(at), call_id, agent)
        return self._write(f"voicemail of call {call_id}", self._sql.take_voicemail, params)

    def settle_voicemail(self, call_id: str, agent: str, outcome: str, at: datetime) -> bool:
        """Mark ``agent``'s message dealt with (``outcome``); False when it is not theirs."""
        params = (outcome, _iso(at), call_id, agent)
        return self._write(f"voicemail of call {call_id}", self._sql.settle_voicemail, params)

    def release_voicemail(self, call_id: str, at: datetime) -> bool:
        """Put a taken message back for any agent; False when it was not taken."""
        params = (_iso(at), call_id)
        return self._write(f"voicemail of call {call_id}", self._sql.release_voicemail, params)

    def note_voicemail_try(self, call_id: str, agent: str, reason: str, at: datetime) -> bool:
        """Count a call back of ``agent``'s message that got nobody (``reason``); False
        when the message is not theirs (any more)."""
        params = (reason, _iso(at), _iso(at), call_id, agent)
        return self._write(f"voicemail of call {call_id}", self._sql.note_voicemail_try, params)

    def fetch_surveys(
        self,
        *,
        last: int | None = None,
        agents: Collection[str] | None = None,
        queue: str | None = None,
    ) -> list[SurveyRecord]:
        """Every survey, or the ``last`` newest, oldest first; only about ``agents`` and of
        ``queue`` when given."""
        limit = self.dialect.no_limit if last is None else max(last, 0)
        where, params = self._survey_filter(agents, queue)
        return self._surveys(self._sql.fetch_surveys.format(where=where), (*params, limit))

    def fetch_surveys_between(
        self,
        since: datetime,
        until: datetime,
        *,
        agents: Collection[str] | None = None,
        queue: str | None = None,
    ) -> list[SurveyRecord]:
        """The surveys ended from ``since`` (included) to ``until`` (excluded), oldest
        first; only about ``agents`` and of ``queue`` when given."""
        bounds = (_iso(since.astimezone(UTC)), _iso(until.astimezone(UTC)))
        where, params = self._survey_filter(agents, queue)
        sql = self._sql.fetch_surveys_between.format(where=where)
        return self._surveys(sql, (*bounds, *params))

    def _survey_filter(
        self, agents: Collection[str] | None, queue: str | None
    ) -> tuple[str, list[object]]:
        p = self.dialect.placeholder
        where = ""
        params: list[object] = []
        if agents is not None:
            chosen = sorted(agents)
            if chosen:
                where += f' AND "agent" IN ({", ".join(p for _ in chosen)})'
                params += chosen
            else:
                where += " AND 1 = 0"
        if queue is not None:
            where += f' AND "queue" = {p}'
            params.append(queue)
        return where, params

    def _surveys(self, sql: str, params: Sequence[object]) -> list[SurveyRecord]:
        return [
            SurveyRecord(
                call_id=row["call_id"],
                queue=row["queue"],
                agent=row["agent"],
                flow=row["flow"],
                number=row["number"],
                score=None if row["score"] is None else int(row["score"]),
                answers=tuple(json.loads(row["answers"]).items()),
                completed=bool(row["completed"]),
                seconds=float(row["seconds"]),
                at=_utc(row["at"]),
                satisfied=None if row["satisfied"] is None else bool(row["satisfied"]),
            )
            for row in self._fetch(sql, params)
        ]

    def fetch_asked_not(self) -> set[str]:
        """The numbers whose people asked an agent never to be called again."""
        return {row["number"] for row in self._fetch(self._sql.fetch_asked_not)}

    def write_campaign_lead(self, record: LeadRecord) -> bool:
        """Store where a campaign's lead stands (one row per lead; final rows stay)."""
        params = (
            record.campaign,
            record.lead,
            record.number,
            record.status,
            record.attempts,
            record.result,
            record.call_id,
            _iso(record.retry_at) if record.retry_at is not None else None,
            _iso(record.updated) if record.updated is not None else "",
            _iso(record.dropped_at) if record.dropped_at is not None else None,
        )
        what = f"lead {record.lead} of campaign {record.campaign}"
        return self._write(what, self._sql.upsert_campaign_lead, params)

    # ------------------------------------------------------------------ reads

    def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Rows that read as mappings (``row["agent"]``, ``dict(row)``)."""
        try:
            with self._lock:
                return list(self._connection().execute(sql, params).fetchall())
        except self.errors as exc:
            self._failed(exc)
            raise RecordError(f"cannot read {self.where}: {exc}") from exc

    def has_cdr(self, uniqueid: str) -> bool:
        return bool(self._fetch(self._sql.has_cdr, (uniqueid,)))

    def mark_lost(self) -> int:
        """The checkpoint records of calls still in progress (``hung_up_by``
        ``in_progress``) say ``lost`` instead: run at the start, when no call is in progress
        yet, they are those of a daemon that died without stopping. Returns how many."""
        try:
            return self._execute(self._sql.mark_lost, ())
        except self.errors as exc:
            self._failed(exc)
            raise RecordError(f"cannot mark lost calls in {self.where}: {exc}") from exc

    def write_queue_log(self, entries: Sequence[QueueLogEntry]) -> bool:
        """Store queue_log entries in order, in one statement run for each (one round trip
        to a server); an entry whose key is stored already is kept as it is. False when
        none was new."""
        rows = []
        for entry in entries:
            data = [*entry.data[: len(QUEUE_LOG_DATA)]]
            data += [""] * (len(QUEUE_LOG_DATA) - len(data))
            rows.append(
                [
                    entry.key,
                    entry.time.isoformat(timespec="milliseconds"),
                    entry.callid,
                    entry.queuename,
                    entry.agent,
                    entry.event,
                    *data,
                ]
            )
        if not rows:
            return False
        what = f"queue_log {entries[0].key}" + (
            f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
        )
        try:
            with self._lock:
                conn = self._connection()
                if self._batching:
                    return self._run_many(conn, self._sql.insert_queue_log, rows) > 0
                with self._transaction(conn):
                    return self._run_many(conn, self._sql.insert_queue_log, rows) > 0
        except self.errors as exc:
            if not self._batching:
                self._failed(exc)
            raise RecordError(f"cannot store {what} in {self.where}: {exc}") from exc

    def fetch_queue_log(
        self, *, last: int | None = None, after: int = 0
    ) -> list[tuple[int, QueueLogEntry]]:
        """queue_log entries with their row ids, oldest first: the ``last`` newest, or every
        one after row id ``after`` (to follow the log)."""
        limit = self.dialect.no_limit if last is None else max(last, 0)
        rows = self._fetch(self._sql.fetch_queue_log, (after, limit))
        return [(int(row["id"]), _queue_log_entry(row)) for row in rows]

    def purge(self, before: datetime, *, dry_run: bool = False) -> dict[str, int]:
        """Delete the records older than ``before`` (see :data:`Statements.purges`: CDRs,
        queue_log, shifts, pauses, finished callback requests, dispositions that ask for
        nothing any more, surveys, voicemail messages dealt with, notices expired), in one
        transaction; returns the rows per table. ``dry_run``: count them, delete nothing.
        Campaign leads and agents logged in now are kept."""
        stamp = before.astimezone(UTC).isoformat(timespec="microseconds")
        counts: dict[str, int] = {}
        try:
            with self._lock:
                conn = self._connection()
                with self._transaction(conn):
                    for table, sql in self._sql.purges:
                        params = [stamp] * sql.count(self.dialect.placeholder)
                        if dry_run:
                            count_sql = sql.replace("DELETE FROM", "SELECT count(*) AS n FROM", 1)
                            counts[table] = int(conn.execute(count_sql, params).fetchone()["n"])
                        else:
                            counts[table] = int(conn.execute(sql, params).rowcount)
        except self.errors as exc:
            self._failed(exc)
            raise RecordError(f"cannot purge {self.where}: {exc}") from exc
        return counts

    def fetch_queue_log_between(self, since: datetime, until: datetime) -> list[QueueLogEntry]:
        """The queue_log entries written from ``since`` (included) to ``until`` (excluded),
        in the order they were written."""
        rows = self._fetch(self._sql.fetch_queue_log_between, (_stamp(since), _stamp(until)))
        return [_queue_log_entry(row) for row in rows]

    def fetch_shifts_between(
        self, since: datetime, until: datetime
    ) -> tuple[list[Stretch], list[Stretch]]:
        """(sessions, pauses) of agents that overlap ``since``..``until``, with the ones
        still open (``end`` None: the agents logged in, or paused, now)."""
        bounds = (_iso(since.astimezone(UTC)), _iso(until.astimezone(UTC)))
        sessions = [
            Stretch(row["agent"], _utc(row["login"]), _utc(row["logout"]))
            for row in self._fetch(self._sql.fetch_sessions_between, bounds)
        ]
        pauses = [
            Stretch(row["agent"], _utc(row["start"]), _utc(row["end"]), row["reason"])
            for row in self._fetch(self._sql.fetch_pauses_between, bounds)
        ]
        for presence in self.fetch_agent_presence():
            sessions.append(Stretch(presence.agent, _aware(presence.logged_in), None))
            if presence.paused_at is not None:
                reason = presence.pause_reason or ""
                pauses.append(Stretch(presence.agent, _aware(presence.paused_at), None, reason))
        return sessions, pauses

    def fetch_wrapups_between(self, since: datetime, until: datetime) -> list[Stretch]:
        """The agents' wrap-ups that overlap ``since``..``until`` (the finished ones)."""
        bounds = (_iso(since.astimezone(UTC)), _iso(until.astimezone(UTC)))
        return [
            Stretch(row["agent"], _utc(row["start"]), _utc(row["end"]))
            for row in self._fetch(self._sql.fetch_wrapups_between, bounds)
        ]

    def fetch_agent_wrapups(self) -> list[dict[str, Any]]:
        """Every wrap-up, oldest first."""
        sql = f'SELECT {_quoted(WRAPUP_COLUMNS)} FROM agent_wrapups ORDER BY "start", agent'
        return [dict(row) for row in self._fetch(sql)]

    def fetch_cdrs_between(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The CDRs of the calls that started from ``since`` (included) to ``until``
        (excluded), oldest first, as :meth:`fetch_cdrs` gives them."""
        rows = self._fetch(self._sql.fetch_cdrs_between, (_stamp(since), _stamp(until)))
        return [_cdr_row(row) for row in rows]

    def fetch_agent_calls(self, agent: str, since: datetime, last: int) -> list[dict[str, Any]]:
        """The ``last`` newest calls ``agent`` talked on (answered first, or was
        transferred) that started from ``since``, newest first: ``call_id``, ``start``
        (datetime), ``number`` (the caller's, or the one dialled for a callback, a lead,
        the agent's own call), ``queue``, ``talk_seconds`` (the call's, every agent
        together), ``code`` (its disposition, None when none) and ``transfer`` (``"from
        1001"`` when 1001 handed it over to them, ``"from 1001 via support"`` through a
        queue, ``"to 2000"`` when they handed it over, else ``""``) and ``recording`` (the
        file the call was recorded into, "" when none)."""
        escaped = agent.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params = (agent, f"%>{escaped}", f"%>{escaped}>%", _stamp(since), max(last, 0))
        calls = []
        for row in self._fetch(self._sql.fetch_agent_calls, params):
            variables = json.loads(row["ivr_variables"] or "{}")
            outbound = any(k in variables for k in ("dialled_by", "callback_of", "campaign"))
            calls.append(
                {
                    "call_id": row["uniqueid"],
                    "start": _utc(row["start"]),
                    "number": row["dst"] if outbound else row["src"],
                    "queue": row["queue"],
                    "talk_seconds": float(row["talk_seconds"]),
                    "code": row["code"],
                    "transfer": _transfer_of(
                        agent, row["agent"], row["transfer_path"] or "", row["queue"] or ""
                    ),
                    "recording": row["recordingfile"] or "",
                }
            )
        return calls

    def fetch_number_calls(
        self,
        number: str,
        last: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The ``last`` newest calls from or to ``number`` (its CDRs: ``src`` or ``dst``
        exactly as the records hold it) that started from ``since`` to ``until`` (default:
        any time), oldest first, each a CDR row (as :meth:`fetch_cdrs`) with the ``code``
        and ``note`` of its disposition (None when none was given). The ``cdr_src`` and
        ``cdr_dst`` indexes serve."""
        low = _stamp(since) if since is not None else ""
        high = _stamp(until) if until is not None else "9999"
        params = (number, number, low, high, max(last, 0))
        rows = [_cdr_row(row) for row in self._fetch(self._sql.fetch_number_calls, params)]
        rows.reverse()
        return rows

    def fetch_cdr(self, uniqueid: str) -> dict[str, Any] | None:
        """The CDR of one call (as :meth:`fetch_cdrs` gives them), None when none."""
        rows = self._fetch(self._sql.fetch_cdr, (uniqueid,))
        return _cdr_row(rows[0]) if rows else None

    def fetch_cdrs(self, *, last: int | None = None) -> list[dict[str, Any]]:
        """Every CDR, or the ``last`` newest, oldest first, keyed by CdrRecord field name
        (``abandoned`` and ``barged`` as bools)."""
        limit = self.dialect.no_limit if last is None else max(last, 0)
        return [_cdr_row(row) for row in self._fetch(self._sql.fetch_cdrs, (limit,))]

    def fetch_agent_sessions(self) -> list[dict[str, Any]]:
        """Every agent session, oldest login first."""
        sql = f'SELECT {_quoted(SESSION_COLUMNS)} FROM agent_sessions ORDER BY "login", agent'
        return [dict(row) for row in self._fetch(sql)]

    def fetch_callbacks(self) -> list[dict[str, Any]]:
        """Every callback request, oldest first."""
        sql = f'SELECT {_quoted(CALLBACK_COLUMNS)} FROM callbacks ORDER BY "requested", call_id'
        return [dict(row) for row in self._fetch(sql)]

    def fetch_agent_presence(self) -> list[AgentPresence]:
        """The agents logged in when the last daemon stopped (or now), by agent."""
        sql = f"SELECT {_quoted(PRESENCE_COLUMNS)} FROM agent_presence ORDER BY agent"
        return [
            AgentPresence(
                agent=row["agent"],
                logged_in=datetime.fromisoformat(row["logged_in"]),
                via_login=row["via_login"],
                pause_reason=row["pause_reason"],
                paused_at=(datetime.fromisoformat(row["paused_at"]) if row["paused_at"] else None),
                via_pause=row["via_pause"],
                owed=_owed(row),
                device=row["device"],
                line=_line(row),
            )
            for row in self._fetch(sql)
        ]

    def fetch_queue_callback(self, call_id: str) -> QueueCallback | None:
        """The callback request ``call_id``, or None."""
        found = self._queue_callbacks(self._fetch(self._sql.fetch_queue_callback, (call_id,)))
        return found[0] if found else None

    def fetch_queue_callbacks(self, status: str | None = None) -> list[QueueCallback]:
        """Queue callback requests (those with ``status`` only, if given), oldest first."""
        if status is None:
            rows = self._fetch(self._sql.fetch_queue_callbacks)
        else:
            rows = self._fetch(self._sql.fetch_queue_callbacks_with, (status,))
        return self._queue_callbacks(rows)

    def _queue_callbacks(self, rows: Sequence[Any]) -> list[QueueCallback]:
        return [
            QueueCallback(
                call_id=row["call_id"],
                queue=row["queue"],
                number=row["number"],
                priority=int(row["priority"]),
                skills=tuple(s for s in str(row["skills"]).split(",") if s),
                requested=datetime.fromisoformat(row["requested"]),
                status=row["status"],
                attempts=int(row["attempts"]),
                updated=datetime.fromisoformat(row["updated"]),
                data=tuple(json.loads(row["data"] or "{}").items()),
            )
            for row in rows
        ]

    def fetch_campaign_leads(self) -> list[LeadRecord]:
        """Every campaign lead's row, by campaign."""
        return [
            LeadRecord(
                campaign=row["campaign"],
                lead=row["lead"],
                number=row["number"],
                status=row["status"],
                attempts=int(row["attempts"]),
                result=row["result"],
                call_id=row["call_id"],
                retry_at=datetime.fromisoformat(row["retry_at"]) if row["retry_at"] else None,
                updated=datetime.fromisoformat(row["updated"]) if row["updated"] else None,
                dropped_at=(
                    datetime.fromisoformat(row["dropped_at"]) if row["dropped_at"] else None
                ),
            )
            for row in self._fetch(self._sql.fetch_campaign_leads)
        ]

    def fetch_agent_pauses(self) -> list[dict[str, Any]]:
        """Every agent pause, oldest first."""
        sql = f'SELECT {_quoted(PAUSE_COLUMNS)} FROM agent_pauses ORDER BY "start", agent'
        return [dict(row) for row in self._fetch(sql)]


class SqliteCdrStore(RecordStore):
    """Records in one SQLite file, WAL, ``synchronous=FULL`` (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str], *, reading: bool = False) -> None:
        super().__init__(str(path), reading=reading)
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SqliteCdrStore({str(self.path)!r}{', reading=True' if self.reading else ''})"

    def reader(self) -> SqliteCdrStore | None:
        # WAL lets one writer and any readers share the file without waiting for each
        # other; an in-memory database is private to its one connection.
        if str(self.path) == ":memory:":
            return None
        return SqliteCdrStore(self.path, reading=True)

    def out_of_space(self) -> bool:
        if str(self.path) == ":memory:":
            return False
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            fs = os.statvfs(folder)
        except OSError:
            return False
        room = fs.f_bavail * fs.f_frsize
        return room < LOW_SPACE or (fs.f_files > 0 and fs.f_favail == 0)

    def _connect(self) -> sqlite3.Connection:
        in_memory = str(self.path) == ":memory:"
        try:
            if not in_memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=5.0)
        except (OSError, sqlite3.Error) as exc:
            raise RecordError(f"cannot open record database {self.path}: {exc}") from exc
        if self.reading:
            try:
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.Error as exc:
                conn.close()
                raise RecordError(f"cannot read record database {self.path}: {exc}") from exc
            conn.row_factory = sqlite3.Row
            return conn
        try:
            if not in_memory:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            with conn:
                conn.executescript(self.dialect.schema)
                _add_missing_columns(conn)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            conn.close()
            raise RecordError(f"cannot set up record database {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        log.info("record_store_opened", path=str(self.path))
        return conn

    def _transaction(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        return conn  # type: ignore[no-any-return]  # sqlite3: commit, or roll back on error

    def backup(self, target: Path) -> dict[str, int]:
        """Copy the database to ``target`` (a new file) as one consistent snapshot, with
        SQLite's online backup: a daemon may go on writing meanwhile (a copy of the file
        itself could catch a write half done, or miss what the WAL still holds). The copy
        is checked (``PRAGMA integrity_check``); returns its rows per table. RecordError
        when ``target`` exists or the copy fails."""
        if target.exists():
            raise RecordError(f"{target} exists already: back up to a new file")
        partial = target.with_name(target.name + ".part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            copy = sqlite3.connect(str(partial))
            try:
                with self._lock:
                    self._connection().backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                checked = copy.execute("PRAGMA integrity_check").fetchone()[0]
                if checked != "ok":
                    raise RecordError(f"the copy in {partial} is damaged: {checked}")
                tables = [
                    row[0]
                    for row in copy.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                        " AND name NOT LIKE 'sqlite_%' ORDER BY name"
                    )
                ]
                counts = {
                    t: int(copy.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])
                    for t in tables
                }
            finally:
                copy.close()
            partial.replace(target)
        except (OSError, sqlite3.Error) as exc:
            partial.unlink(missing_ok=True)
            raise RecordError(f"cannot back up {self.path} to {target}: {exc}") from exc
        except RecordError:
            partial.unlink(missing_ok=True)
            raise
        return counts


def _line(row: Mapping[str, Any]) -> BreakLine | None:
    """The line for a break a presence row says its agent waits in, if any."""
    if not row["line_team"]:
        return None
    return BreakLine(
        row["line_team"],
        row["line_reason"],
        row["line_via"],
        int(row["line_place"]),
        datetime.fromisoformat(row["line_since"]),
    )


def _owed(row: Mapping[str, Any]) -> OwedCode | None:
    """The disposition a presence row says its agent still owes, if any."""
    if not row["owed_call"]:
        return None
    return OwedCode(
        row["owed_call"],
        row["owed_number"],
        row["owed_queue"],
        row["owed_campaign"],
        row["owed_lead"],
    )


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Add the columns a database from an older version lacks (they all have defaults)."""
    wanted = [("cdr", name, column_type) for name, column_type in CDR_COLUMNS]
    present: dict[str, set[str]] = {}
    for table, name, column_type in (*wanted, *ADDED_COLUMNS):
        if table not in present:
            present[table] = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        if name not in present[table]:
            conn.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {column_type}')
