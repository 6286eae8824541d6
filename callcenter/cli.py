"""The ``callcenter`` command.

    callcenter run [CONFIG]                 run the daemon against the configured PBX
    callcenter check CONFIG                 validate a config file (file:line: field: message)
    callcenter simulate CONFIG --flow F ...  dry-run one call through a flow (demo PBX)
    callcenter demo [--pbx asterisk]        a demo PBX + the daemon, a handful of scripted calls
    callcenter soak [--seconds 60]          random calls through the config on the demo PBX,
                                            then a check that none was lost or left stuck
    callcenter agent ACTION AGENT [...]     login | logout | pause | unpause | ready |
                                            transfer | hold | unhold | consult | consult-complete |
                                            consult-join | consult-cancel | help | survey |
                                            hangup | record |
                                            pause-recording |
                                            resume-recording | preview-dial | preview-skip |
                                            disposition | join | leave (--queue Q) |
                                            skills (--skills fr=7,de=3) |
                                            profile (--profile P: its queues, skills) |
                                            schedule [--day D --hours H | --off | --as-planned]
                                            (AGENT, or --team T for a whole team)
    callcenter campaign ACTION [ID]         list | pause | resume | recycle [--reasons R] |
                                            add-lead --number N [--lead L] [--data k=v] |
                                            remove-lead --lead L
    callcenter switch ACTION [NAME]         list | on | off (ivr.switches, tested by flows)
    callcenter callback ACTION [NUMBER|ID]  request NUMBER --queue Q | list | cancel ID |
                                            slots --queue Q [--date D]
    callcenter notice ACTION [TEXT|ID]      post TEXT [--team T] [--minutes N] | list |
                                            take-down ID (agents' desktops, wallboard)
    callcenter numbers ACTION [LIST NUMBER] list | add | remove (ivr.number_lists, at runtime)
    callcenter queue ACTION [QUEUE|ID]      callers | priority | withdraw | give (waiting
                                            callers); add | change | remove | added (queues
                                            added at runtime: --like Q --agents A,B)
    callcenter supervisor ACTION SUP [AGENT]  listen | whisper | barge an agent's call;
                                              stop; takeover
    callcenter status [--json]              agents, queues and calls of the running daemon
    callcenter reload                       re-read the config of the running daemon
    callcenter drain [--timeout S] [--wait]  take no new calls, stop once those left end;
                                            --cancel: take calls again
    callcenter report [CONFIG]              the latest CDRs; --queues / --agents: figures;
                                            --adherence, --pauses, --waits, --ivr ...
    callcenter purge [CONFIG]               delete records older than --older-than DAYS
    callcenter staffing --calls N --aht S   agents needed for a load (Erlang C; with
                                            --patience S, Erlang A)
    callcenter forecast [CONFIG]            next week's callers and agents needed, hour by
                                            hour, from the weeks before (and the schedules);
                                            --shifts 8h,4h: the shifts that cover them
    callcenter backup [CONFIG] --to FILE    a consistent copy of the SQLite records, live;
                                            --files DIR: recordings, voicemail, queue_log
    callcenter erase NUMBER...              take a caller's numbers, name and recordings
                                            out of the records (right to erasure)

Exit status: 0 fine, 1 invalid config or a refused request, 2 the PBX refused our
credentials, 3 the PBX or the daemon could not be reached, 4 ``run`` found a port it
listens on taken or its record database unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from callcenter.errors import (
    AuthenticationError,
    ConfigError,
    ErasureRefused,
    ListenError,
    PBXClaimed,
    PBXConnectionError,
    PBXError,
    RecordError,
)

if TYPE_CHECKING:
    from datetime import datetime, tzinfo
    from pathlib import Path

    from callcenter.config import CallCenterConfig
    from callcenter.records.store import RecordStore

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_AUTH = 2
EXIT_UNREACHABLE = 3
EXIT_RESOURCE = 4
"""A local resource is unusable: a port the daemon listens on, the record database."""
DEFAULT_CONFIG = "config/callcenter.yaml"
DEFAULT_API = "http://127.0.0.1:8470"

Number = TypeVar("Number", int, float)
_Row = TypeVar("_Row")


def _default_config() -> str:
    return os.environ.get("CALLCENTER_CONFIG", DEFAULT_CONFIG)


def _add_shrinkage(parser: argparse.ArgumentParser) -> None:
    """``--shrinkage PERCENT``, as ``staffing`` and ``forecast`` take it."""
    parser.add_argument(
        "--shrinkage",
        type=_bounded(float, 0.0, 95.0, "a percentage"),
        default=0.0,
        help="percent of paid time off the phones (breaks, training, absence): the agents "
        "to schedule for those needed",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description="Call-centre engine for a PBX")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("config", nargs="?", default=None, help="config file (CALLCENTER_CONFIG)")

    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config", nargs="?", default=None, help="config file to check")
    check.add_argument(
        "--explain", action="store_true", help="print every config field with its meaning"
    )
    check.add_argument(
        "--pbx",
        action="store_true",
        help="then log in to the PBX as the daemon would and check what it needs there: "
        "AMI actions allowed, dialplan contexts, modules, agents' phones, free ports",
    )

    demo = sub.add_parser("demo", help="run the demo PBX and the daemon with scripted calls")
    demo.add_argument("--config", default=None, help="config file (default: the example)")
    demo.add_argument("--pbx", choices=["asterisk", "freeswitch"], default="asterisk")
    demo.add_argument("--agi", choices=["fastagi", "asyncagi"], default="fastagi")
    demo.add_argument(
        "--speed",
        type=_time_scale,
        default=1.0,
        help="time scale of the scripted calls (prompts, rings, talk): 0.5 runs twice as fast",
    )
    demo.add_argument(
        "--stay",
        nargs="?",
        const=-1.0,
        default=0.0,
        type=_bounded(float, 1.0, 86400.0, "seconds"),
        help="go on after the scripted calls, a caller every few seconds, until Ctrl-C (or "
        "for SECONDS): open the wallboard and the desktops meanwhile",
    )
    demo.add_argument(
        "--sip-port",
        type=_bounded(int, 0, 65535, "port"),
        default=None,
        help="also take SIP calls (UDP, signalling only: no audio) on this port of "
        "127.0.0.1 while the demo runs, such as SIPp's: sipp 127.0.0.1:PORT -sn uac -s 800 "
        "(0: any free port, printed)",
    )

    soak = sub.add_parser(
        "soak",
        help="random callers, agents and supervisors through the config's flows on the demo "
        "PBX, then a check that every call has its record and nothing is left stuck",
        description="Random callers (keys, waits, hang-ups at any moment), agents (answering "
        "or not, pausing, holding, consulting, transferring, pressing their keys, opening "
        "lines) and "
        "supervisors (listen, whisper, barge, take over) through the config's flows on the "
        "demo PBX, people outside (555 9001-9030) asking for callbacks on the web, dialled "
        "by agents and called by a campaign of the soak's own, with the PBX link cut now "
        "and then (--outages) and the daemon restarted (--restarts); then the problems "
        "found: a call without exactly one record, a record lost, an agent left ringing or "
        "on a call, a channel left on the PBX, a callback the records promise and the "
        "daemon forgot, a lead left dialing, an API answer 5xx, an error in the log, a "
        "phone a queue rings that never rings, a caller waiting beside a free agent. Exit "
        "status 1 when there is one. The config's records, campaigns, MQTT and webhooks are "
        "left alone.",
    )
    soak.add_argument("--config", default=None, help="config file (default: the example)")
    soak.add_argument("--pbx", choices=["asterisk", "freeswitch"], default="asterisk")
    soak.add_argument(
        "--agi",
        choices=["fastagi", "asyncagi", "esl-inbound", "esl-outbound"],
        default=None,
        help="how calls reach the daemon: FastAGI (default) or AsyncAGI on Asterisk, the "
        "park (esl-inbound, default) or the socket application (esl-outbound) on FreeSWITCH",
    )
    soak.add_argument(
        "--seconds",
        type=_bounded(float, 1.0, 86400.0, "seconds"),
        default=60.0,
        help="how long callers keep coming (then the last ones finish)",
    )
    soak.add_argument(
        "--rate",
        type=_bounded(float, 0.05, 50.0, "callers a second"),
        default=2.0,
        help="callers a second, on average",
    )
    soak.add_argument("--seed", type=int, default=None, help="replays a soak's choices")
    soak.add_argument(
        "--outages", action="store_true", help="cut the PBX link (AMI or ESL) every few seconds"
    )
    soak.add_argument(
        "--restarts",
        action="store_true",
        help="restart the daemon every 5-12 s (calls going on), as systemctl restart does",
    )
    soak.add_argument(
        "--agents",
        type=_bounded(int, 0, 200, "agents"),
        default=0,
        help="agents of the soak's own added to the config's (in every queue): more calls "
        "reach agents",
    )

    staffing = sub.add_parser(
        "staffing",
        help="how many agents a load needs to answer in time (Erlang C; Erlang A with "
        "--patience): calls in an interval, handle time, service level target",
    )
    staffing.add_argument(
        "--calls", type=_calls, required=True, help="calls offered in the interval"
    )
    staffing.add_argument(
        "--minutes",
        type=_bounded(float, 1.0, 1440.0, "minutes"),
        default=60.0,
        help="the interval the calls come in (default 60)",
    )
    staffing.add_argument(
        "--aht",
        type=_bounded(float, 1.0, 86400.0, "seconds"),
        required=True,
        help="average handle time in seconds (talk plus after-call work)",
    )
    staffing.add_argument(
        "--target",
        type=_service_target,
        default=(0.8, 20.0),
        help="service level: PERCENT/SECONDS answered within (default 80/20)",
    )
    _add_shrinkage(staffing)
    staffing.add_argument(
        "--max-occupancy",
        type=_bounded(float, 1.0, 100.0, "a percentage"),
        default=None,
        help="percent of their time agents may spend on calls at most (e.g. 85)",
    )
    staffing.add_argument(
        "--patience",
        type=_bounded(float, 1.0, 3600.0, "seconds"),
        default=None,
        help="callers hang up after this many seconds of waiting on average: Erlang A "
        "(fewer agents than Erlang C; `report --queues` measures it); the service level "
        "then counts those who hang up against it",
    )
    staffing.add_argument(
        "--max-abandon",
        type=_bounded(float, 0.1, 99.0, "a percentage"),
        default=None,
        help="with --patience: percent of callers who may hang up before an answer, at most",
    )

    forecast = sub.add_parser(
        "forecast",
        help="the coming week's callers and the agents they need, interval by interval, "
        "from the same weekdays of the weeks before (days a queue took no caller left out), "
        "beside the agents scheduled",
    )
    forecast.add_argument("config", nargs="?", default=None)
    forecast.add_argument(
        "--week-of",
        default=None,
        metavar="DATE",
        help="forecast the week (Monday to Sunday) of this day, such as 2026-12-14 "
        "(default: next week)",
    )
    forecast.add_argument(
        "--weeks",
        type=_bounded(int, 1, 52, "a number of weeks"),
        default=4,
        help="weeks of history the forecast reads (default 4)",
    )
    forecast.add_argument(
        "--by",
        choices=["15min", "30min", "hour"],
        default="hour",
        help="one row per quarter hour, half hour or hour (default)",
    )
    forecast.add_argument(
        "--target",
        type=_bounded(float, 1.0, 99.9, "a percentage"),
        default=80.0,
        metavar="PERCENT",
        help="percent of callers to answer within each queue's service_level (default 80)",
    )
    _add_shrinkage(forecast)
    forecast.add_argument("--queue", default=None, help="only this queue")
    forecast.add_argument(
        "--tz",
        default=None,
        help="time zone of the days and hours (default: ivr.timezone of the config)",
    )
    forecast.add_argument(
        "--trend",
        action="store_true",
        help="follow each queue's trend over the weeks read (a straight line through its "
        "weeks) rather than their plain mean: for a centre growing or shrinking",
    )
    forecast.add_argument(
        "--shifts",
        default=None,
        metavar="LENGTHS",
        help="also propose shifts of these lengths covering the agents to schedule, such as "
        "8h,4h (whole intervals; with --json or --csv the shifts are printed instead of the "
        "intervals)",
    )
    forecast.add_argument("--json", action="store_true", help="one JSON object per line")
    forecast.add_argument("--csv", action="store_true", help="CSV for a spreadsheet")

    simulate = sub.add_parser(
        "simulate",
        help="dry-run one call through an IVR flow against the demo PBX",
        description=(
            "Runs one call through a flow against the built-in demo PBX and prints the nodes "
            "visited, prompts heard, keys consumed, variables set and where the call ends. "
            "Nothing of the real installation is touched."
        ),
    )
    simulate.add_argument("config", nargs="?", default=None, help="config file")
    simulate.add_argument("--flow", default=None, help="flow to run (default: the route's)")
    simulate.add_argument("--caller", default="5550100", help="caller number")
    simulate.add_argument("--caller-name", default="", help="caller name")
    simulate.add_argument("--dialed", default="s", help="dialled number")
    simulate.add_argument(
        "--press",
        default="",
        help='keys, one comma-separated group per input: "2,1234#" (empty group: no key)',
    )
    simulate.add_argument(
        "--at",
        default=None,
        help='"now" for schedules, ISO 8601: "2026-12-25T10:00" (no offset: each '
        "schedule's own time zone)",
    )
    simulate.add_argument(
        "--no-http", action="store_true", help="lookup nodes take their fallback without HTTP"
    )
    simulate.add_argument(
        "--switch",
        action="append",
        default=[],
        metavar="NAME",
        help="this switch (ivr.switches) is on for the call; again for more",
    )
    simulate.add_argument(
        "--queue-state",
        action="append",
        default=[],
        metavar="QUEUE:waiting=N,free=N,wait=S,staffed=N",
        help="what branch cases testing this queue see (a busy queue: sales:waiting=12,"
        "free=0,wait=300); again for more",
    )

    for name in ("status", "reload"):
        p = sub.add_parser(name, help=f"{name} of the running daemon")
        _add_api_option(p)
        if name == "status":
            p.add_argument("--json", action="store_true", help="the API's JSON, as it comes")

    events = sub.add_parser(
        "events",
        help="follow the running daemon's engine events live, one line each (GET /events)",
    )
    _add_api_option(events)
    events.add_argument("--agent", default=None, help="that agent's events, and their calls'")
    events.add_argument("--queue", default=None, help="that queue's events, and its calls'")
    events.add_argument(
        "--events", default=None, help="these kinds only, such as AgentConnected,CallEnded"
    )
    events.add_argument("--json", action="store_true", help="each event's JSON, as it comes")
    events.add_argument(
        "--count", type=int, default=None, help="stop after this many events (default: never)"
    )

    drain = sub.add_parser(
        "drain",
        help="the running daemon takes no new calls (they go to the PBX's failover) and stops "
        "once the calls in progress are over (as SIGQUIT)",
        description=(
            "Callers in the IVR or a queue are still put through, agents finish their calls, "
            "feature codes still work; new callers go to the PBX's failover, campaigns and "
            "queue callbacks stop dialling. The daemon stops when no call is left, or after "
            "the timeout as on SIGTERM. Exit status 0 once the drain is under way (with "
            "--wait: once the daemon has stopped)."
        ),
    )
    _add_api_option(drain)
    drain.add_argument(
        "--timeout",
        type=_drain_seconds,
        default=None,
        help="seconds to wait for the calls in progress at most (default: "
        "runtime.drain_timeout); during a drain, sets a new one",
    )
    drain.add_argument(
        "--wait",
        action="store_true",
        help="print what is left as it changes and return once the daemon has stopped",
    )
    drain.add_argument("--cancel", action="store_true", help="call the drain off: take calls again")

    agent = sub.add_parser(
        "agent",
        help="log an agent in/out, pause, end their wrap-up (ready), transfer, hold the "
        "caller, consult a "
        "colleague while the caller holds (then complete, join or cancel), send the caller "
        "to the queue's survey, leave the call as hanging up does (hangup: for agents on an "
        "open line), pause the "
        "call's recording, dial or skip the lead a preview campaign shows, give a call its "
        "disposition, dial a number for the agent (dial --to NUMBER: their phone rings "
        "first), put one waiting for a break first in line (break-place); add an agent "
        "while the centre runs (add ID --name --device), change or remove one added so, "
        "list them (roster)",
    )
    agent.add_argument(
        "action",
        choices=[
            "login",
            "logout",
            "pause",
            "unpause",
            "ready",
            "transfer",
            "hold",
            "unhold",
            "consult",
            "consult-complete",
            "consult-join",
            "consult-cancel",
            "help",
            "survey",
            "hangup",
            "dial",
            "record",
            "pause-recording",
            "resume-recording",
            "preview-dial",
            "preview-skip",
            "disposition",
            "join",
            "leave",
            "skills",
            "profile",
            "break-place",
            "add",
            "change",
            "remove",
            "roster",
            "schedule",
        ],
    )
    agent.add_argument("agent", nargs="?", default=None, help="agent id, e.g. 1001 (roster: none)")
    agent.add_argument("--reason", default="break", help="pause reason (see pause_reasons)")
    agent.add_argument(
        "--paused",
        action="store_true",
        help="login: log in paused for --reason (not ready yet), no call offered meanwhile",
    )
    agent.add_argument(
        "--to",
        default=None,
        help="transfer or consult target (default: supervisor); dial: the number (last: "
        "the number of the agent's last call)",
    )
    agent.add_argument(
        "--queue",
        default=None,
        help="transfer: into this queue instead (the caller waits there for its next agent); "
        "join / leave: the queue; pause / unpause: in this queue only (its callers are not "
        "offered to the agent, the other queues' are); dial: the queue the call goes "
        "through (default: the agent's first)",
    )
    agent.add_argument(
        "--profile",
        default=None,
        help="profile: the profile (under profiles) to work as: its queues and skills",
    )
    agent.add_argument(
        "--place",
        type=_bounded(int, 1, 10000, "a place in the line"),
        default=None,
        help="break-place: the agent's place in their team's line for a break (1: next)",
    )
    agent.add_argument(
        "--skills",
        default=None,
        help="skills: the agent's skills from now on, such as fr=7,billing=3 ('config': the "
        "config's again)",
    )
    agent.add_argument(
        "--penalty",
        type=int,
        default=None,
        help="join: the agent's penalty in the queue (default: the config's, else 0)",
    )
    agent.add_argument(
        "--priority", type=int, default=0, help="transfer --queue: the caller's priority there"
    )
    agent.add_argument(
        "--device",
        default=None,
        help="login: at this phone for the shift (hot desking, agents with hot_desk), such as "
        "PJSIP/1010",
    )
    agent.add_argument("--name", default=None, help="add / change: the agent's name")
    agent.add_argument(
        "--team",
        default=None,
        help="add / change: the agent's team; schedule (no agent id): every agent of the team",
    )
    agent.add_argument(
        "--pin", default=None, help="add / change: the PIN of their desktop and feature codes"
    )
    agent.add_argument(
        "--hot-desk",
        action="store_true",
        help="add / change: the agent may log in at any phone (needs --pin)",
    )
    agent.add_argument(
        "--day",
        default=None,
        help="schedule: the day (2026-12-08, in the schedule's time zone); without --hours, "
        "--off or --as-planned, the days from then on are shown (default: from today)",
    )
    agent.add_argument(
        "--hours",
        default=None,
        help="schedule: the hours that day instead of the schedule's, such as "
        "10:00-18:00 or 08:00-12:00,13:00-17:00 (a swapped shift, an extra day)",
    )
    agent.add_argument("--off", action="store_true", help="schedule: a day off that day")
    agent.add_argument(
        "--as-planned",
        action="store_true",
        help="schedule: that day as the schedule says again",
    )
    agent.add_argument(
        "--days", type=int, default=14, help="schedule, shown: how many days (default 14)"
    )
    agent.add_argument("--code", help="disposition: the code (see dispositions: in the config)")
    agent.add_argument("--note", default="", help="disposition: a note on the call")
    agent.add_argument(
        "--wait",
        action="store_true",
        help="dial: wait for the outcome (answered, or why not) and say it; exit 1 when "
        "nobody was put through",
    )
    agent.add_argument(
        "--at",
        default=None,
        help="disposition, a callback code: when to call again (2026-12-07T15:00, in the "
        "call centre's time zone unless an offset is given)",
    )
    _add_api_option(agent)

    supervisor = sub.add_parser(
        "supervisor", help="listen, whisper or barge on an agent's call; stop"
    )
    # callcenter.supervision.monitor.MONITOR_MODES; not imported: the CLI starts light.
    supervisor.add_argument(
        "action", choices=["listen", "whisper", "barge", "stop", "takeover", "desk"]
    )
    supervisor.add_argument("supervisor", help="supervisor id, e.g. 2000")
    supervisor.add_argument(
        "agent", nargs="?", default=None, help="agent id, e.g. 1001 (not for stop, desk)"
    )
    supervisor.add_argument(
        "--device",
        default=None,
        help="desk: the phone the supervisor works at from now on, such as PJSIP/2010 "
        "(left out: their own phone again)",
    )
    _add_api_option(supervisor)

    campaign = sub.add_parser(
        "campaign",
        help="list the outbound campaigns; pause or resume one; recycle its failed leads; "
        "add a lead or take one off",
    )
    campaign.add_argument(
        "action", choices=["list", "pause", "resume", "recycle", "add-lead", "remove-lead"]
    )
    campaign.add_argument("campaign", nargs="?", default=None, help="campaign id (not for list)")
    campaign.add_argument("--json", action="store_true", help="list: the API's JSON")
    campaign.add_argument(
        "--reasons",
        default=None,
        help="recycle: only the failed leads whose last try failed so, such as "
        "busy,no-answer (default: every failed lead)",
    )
    campaign.add_argument("--number", default=None, help="add-lead: the number to call")
    campaign.add_argument(
        "--lead",
        default=None,
        help="add-lead: the lead's id (default: the number); remove-lead: the lead to take off",
    )
    campaign.add_argument(
        "--timezone", default=None, help="add-lead: where the lead lives, such as Europe/Paris"
    )
    campaign.add_argument(
        "--priority",
        type=int,
        default=None,
        help="add-lead: -1000..1000, higher called first (default 0)",
    )
    campaign.add_argument(
        "--data",
        default=None,
        help="add-lead: the lead file's other columns, such as name=Ada Lovelace,account=A-17",
    )
    _add_api_option(campaign)

    switch = sub.add_parser(
        "switch",
        help="list the switches flows test (ivr.switches); turn one on or off",
        description="A switch (ivr.switches) is what ops flip while the centre runs, and "
        "flows test in branch cases (`switch: storm`): a storm, an outage, an early close. "
        "It applies to calls arriving from then on and is kept across restarts.",
    )
    switch.add_argument("action", choices=["list", "on", "off"])
    switch.add_argument("name", nargs="?", default=None, help="the switch (not for list)")
    _add_api_option(switch)

    numbers = sub.add_parser(
        "numbers",
        help="the IVR's number lists (ivr.number_lists): list them, add or remove a number",
        description="A number added to a list (a nuisance caller on `blocked`, a new VIP) "
        "counts for the flows' caller_list cases from the next call on, and stays across "
        "reloads and restarts until removed. Exact numbers, or Asterisk patterns such as "
        "_0900X.",
    )
    numbers.add_argument("action", choices=["list", "add", "remove"])
    numbers.add_argument("name", nargs="?", default=None, help="the list (not for list)")
    numbers.add_argument("number", nargs="?", default=None, help="the number or pattern")
    _add_api_option(numbers)

    voicemail = sub.add_parser(
        "voicemail",
        help="the voicemail messages queues' agents call back (queues.<q>.mailbox): list, "
        "take, done, release",
        description="list [--queue Q]: the messages still to deal with. take ID --agent A: "
        "theirs to call back. done ID --agent A: dealt with. release ID [--agent A]: put "
        "back for another agent (without --agent: whoever has it, as ops do for an agent "
        "who left).",
    )
    voicemail.add_argument("action", choices=["list", "take", "done", "release"])
    voicemail.add_argument("id", nargs="?", default=None, help="the message's id (not for list)")
    voicemail.add_argument("--agent", default=None, help="the agent who takes or settles it")
    voicemail.add_argument("--queue", default=None, help="list: one queue's messages")
    _add_api_option(voicemail)

    notice = sub.add_parser(
        "notice",
        help="a line for the agents' desktops and the wallboard: list, post, take-down",
        description="post TEXT [--team T ... | --agent A ...] [--minutes N]: shown to the "
        "agents of those teams (none: every agent) and on the wallboard for N minutes (60); "
        "with --agent, a "
        "message on those agents' desktops alone. list: the notices standing. take-down "
        "ID: before its time.",
    )
    notice.add_argument("action", choices=["list", "post", "take-down"])
    notice.add_argument(
        "target", nargs="?", default=None, help="post: the text; take-down: the notice's id"
    )
    notice.add_argument(
        "--team", action="append", default=[], help="post: for this team (repeat for more)"
    )
    notice.add_argument("--minutes", type=float, default=60, help="post: how long it stands")
    notice.add_argument(
        "--agent",
        action="append",
        default=[],
        help="post: a message to this agent alone, on their desktop (repeat for more)",
    )
    _add_api_option(notice)

    callback = sub.add_parser(
        "callback",
        help="call a number back through a queue (a web callback); list or cancel requests",
        description="request NUMBER --queue Q: the number takes a place in the queue now and "
        "is called once an agent is free for it (acd.callback_dial; only numbers "
        "acd.callback_allow lists), kept across restarts; asking again while it waits gives "
        "the same request. list: the requests waiting. cancel ID: withdraw one. slots "
        "--queue Q [--date D]: the room left in each slot of a day (queues.<q>."
        "callback_slots).",
    )
    callback.add_argument("action", choices=["request", "list", "cancel", "slots"])
    callback.add_argument(
        "target", nargs="?", default=None, help="request: the number; cancel: the request's id"
    )
    callback.add_argument(
        "--queue", default=None, help="request: the queue it waits in; slots: the queue"
    )
    callback.add_argument("--date", default=None, help="slots: the day (default today)")
    callback.add_argument("--priority", type=int, default=0, help="request: its priority there")
    callback.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="request: a variable the callback call gets (the agent's screen, the CDR); "
        "again for more",
    )
    callback.add_argument(
        "--at",
        default=None,
        help="request: not now but at this time (2026-12-07T10:00, in the call centre's time "
        "zone unless an offset is given)",
    )
    _add_api_option(callback)

    queue = sub.add_parser(
        "queue",
        help="who waits in a queue; change a caller's priority, send them elsewhere, or give "
        "them to an agent",
        description="callers QUEUE: everyone waiting, in queue order, with their call ids. "
        "priority CALL N: served before callers of lower priority (app_queue's "
        "QueueChangePriorityCaller). withdraw CALL --to queue|voicemail|flow|callback|hangup "
        "[--queue Q | --box B | --flow F] [--prompt P]: the caller leaves their queue for there "
        "(QueueWithdrawCaller). give CALL AGENT: that agent is rung for the caller now, ahead "
        "of the queue's order (if they do not answer, the caller waits on). add QUEUE "
        "[--like Q] [--agents A,B] [--strategy S] [--settings JSON]: a queue added while the "
        "centre runs (settings as queues.<name> takes them; callers reach it through a queue "
        "node's queue_from, transfers and callbacks); change QUEUE ... changes one; remove "
        "QUEUE removes it once nobody waits; added lists them. wait QUEUE: what a caller "
        "calling now would wait (GET /queues/<q>/wait).",
    )
    queue.add_argument(
        "action",
        choices=[
            "callers",
            "wait",
            "priority",
            "withdraw",
            "give",
            "add",
            "change",
            "remove",
            "added",
        ],
    )
    queue.add_argument(
        "target",
        nargs="?",
        default=None,
        help="callers, wait, add, change, remove: the queue; priority, withdraw, give: the "
        "caller's call id",
    )
    queue.add_argument(
        "value", nargs="?", default=None, help="priority: the new priority; give: the agent id"
    )
    queue.add_argument(
        "--to",
        choices=["queue", "voicemail", "flow", "callback", "hangup"],
        default=None,
        help="withdraw: where the caller goes",
    )
    queue.add_argument("--queue", default=None, help="withdraw --to queue: the queue")
    queue.add_argument("--box", default=None, help="withdraw --to voicemail: the mailbox")
    queue.add_argument("--flow", default=None, help="withdraw --to flow: the IVR flow")
    queue.add_argument("--prompt", default=None, help="withdraw: played to the caller first")
    queue.add_argument(
        "--json",
        action="store_true",
        help="callers, wait, add, change, remove, added: the API's JSON",
    )
    queue.add_argument(
        "--like", default=None, help="add: start from this queue's settings (file or added)"
    )
    queue.add_argument("--agents", default=None, help="add / change: its agents, 1001,1002")
    queue.add_argument("--strategy", default=None, help="add / change: its strategy (ringall ...)")
    queue.add_argument(
        "--settings",
        default=None,
        help='add / change: more settings as JSON, such as \'{"ring_timeout": 20, '
        '"max_wait": 300}\' (null takes one back to its default)',
    )
    _add_api_option(queue)

    purge = sub.add_parser(
        "purge",
        help="delete records older than a time (retention), as records.keep_days does daily",
    )
    purge.add_argument("config", nargs="?", default=None)
    purge.add_argument(
        "--older-than",
        type=_positive_int,
        metavar="DAYS",
        default=None,
        help="delete what is older than this many days (default: records.keep_days)",
    )
    purge.add_argument(
        "--before", default=None, help="delete what is older than this date or time instead"
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    purge.add_argument(
        "--recordings",
        action="store_true",
        help="the call recordings in acd.recordings_folder instead of the records (default "
        "age: acd.recordings_keep_days)",
    )

    token = sub.add_parser(
        "token",
        help="make a control API token for one client (a CRM, a callback form), allowed only "
        "part of the API",
        description="new NAME --allow read,callbacks: prints a new token (give it to that "
        "client; it is kept nowhere) and the api.tokens lines for the config, which keep "
        "only its SHA-256. Scopes: read, recordings, callbacks, agents, supervise, queues, "
        "voicemails, admin.",
    )
    token.add_argument("action", choices=["new"])
    token.add_argument("name", help="the client's name, such as crm (logged with its requests)")
    token.add_argument(
        "--allow", required=True, help="what it may do, comma-separated: read,callbacks"
    )

    backup = sub.add_parser(
        "backup",
        help="copy the SQLite record database to a new file, consistently, while the daemon "
        "runs (PostgreSQL: use pg_dump)",
    )
    backup.add_argument("config", nargs="?", default=None)
    backup.add_argument("--to", default=None, help="the new file (it must not exist)")
    backup.add_argument(
        "--files",
        default=None,
        metavar="DIR",
        help="also copy the files the records name into DIR: call recordings "
        "(acd.recordings_folder), voicemail messages (ivr.voicemail_folder) and the "
        "queue_log file; incremental (files already there unchanged are skipped)",
    )

    erase = sub.add_parser(
        "erase",
        help="take a caller's number out of every record (right to erasure): the calls stay "
        "in the figures, the number, name, IVR data, notes and recordings go",
    )
    erase.add_argument(
        "numbers",
        nargs="+",
        metavar="NUMBER",
        help="the number as the records hold it; give each form it takes (+33612345678 0612345678)",
    )
    erase.add_argument("--config", default=None, help="config file (CALLCENTER_CONFIG)")
    erase.add_argument(
        "--dry-run", action="store_true", help="count what would be erased, change nothing"
    )
    erase.add_argument(
        "--api",
        type=_api_address,
        default=None,
        help="through the running daemon's control API (http://127.0.0.1:8470): it also "
        "forgets the numbers in memory and refuses while a call with one is in progress",
    )

    report = sub.add_parser(
        "report",
        help="print the latest call detail records (or the queue_log, leads, dispositions),"
        " or figures per queue or agent",
    )
    report.add_argument("config", nargs="?", default=None)
    report.add_argument(
        "--last", type=_positive_int, default=20, help="how many of the newest records"
    )
    report.add_argument("--json", action="store_true", help="one JSON object per line")
    report.add_argument(
        "--queue-log",
        action="store_true",
        help="the queue_log instead of the CDRs, one line each as Asterisk writes "
        "/var/log/asterisk/queue_log (for queue reporting tools)",
    )
    report.add_argument(
        "--campaign",
        metavar="ID",
        default=None,
        help="where each lead of campaign ID stands (status, tries, last result, the "
        "answered call's uniqueid), as CSV (--json: one object per line)",
    )
    report.add_argument(
        "--dispositions",
        action="store_true",
        help="the codes agents gave their calls (the newest --last), as CSV (--json: one "
        "object per line)",
    )
    report.add_argument(
        "--erasures",
        action="store_true",
        help="the erasures carried out (callcenter erase): when, through what, how many "
        "numbers and rows per table, never the numbers (the newest --last; --json: one "
        "object per line)",
    )
    report.add_argument(
        "--surveys",
        action="store_true",
        help="what callers answered in post-call surveys (the newest --last, or those that "
        "ended from --since to --until): agent, queue, score, answers, as CSV (--json: one "
        "object per line)",
    )
    report.add_argument(
        "--ivr",
        action="store_true",
        help="where callers went in the IVR, from --since (today) to --until: each node's "
        "callers, the keys pressed there, callers who hung up there (--json: one object per "
        "node; --csv)",
    )
    report.add_argument(
        "--dialled",
        action="store_true",
        help="calls by the number callers dialled (the centre's numbers), from --since "
        "(today) to --until: calls, answered, abandoned, voicemail, other, ASA (--json: one "
        "object per number; --csv)",
    )
    report.add_argument(
        "--evaluations",
        action="store_true",
        help="the supervisors' scorecards of calls (evaluation_forms) made from --since "
        "(today) to --until: call, agent, supervisor, points per criterion, percent, passed, "
        "comment, the agent's answer (agreed, disputed and why), as CSV (--json: one object "
        "per line), and each agent's mean on stderr (--agent, --team: only theirs)",
    )
    report.add_argument(
        "--calibration",
        action="store_true",
        help="with --evaluations: only the calls two supervisors or more scored, each one's "
        "percent side by side and the spread (do the supervisors score alike?)",
    )
    report.add_argument(
        "--adherence",
        action="store_true",
        help="each scheduled agent's days (agents.<id>.schedule) from --since (today) to "
        "--until: scheduled, logged in and paused within it, adherence (ready as a percent "
        "of scheduled), logged in outside it, late; CSV (--json: one object per line; "
        "--agent, --team: only theirs), and each agent's totals on stderr",
    )
    report.add_argument(
        "--schedule-changes",
        action="store_true",
        help="the days of agents' schedules changed while the centre ran (agent schedule: "
        "swapped shifts, extra days, days off) falling from --since (today) to --until: "
        "day, agent, the hours given, when and by whom; CSV (--json: one object per line; "
        "--agent, --team: only theirs)",
    )
    report.add_argument(
        "--outcomes",
        action="store_true",
        help="the codes agents gave calls (dispositions) from --since (today) to --until, "
        "counted per agent (--per queue, campaign): calls and percent of the coded calls; "
        "a sales team's conversion. CSV (--json: one object per line; --agent, --team: "
        "only theirs)",
    )
    report.add_argument(
        "--per",
        choices=["agent", "queue", "campaign"],
        default=None,
        help="--outcomes: what to count the codes per (default: agent)",
    )
    report.add_argument(
        "--audit",
        action="store_true",
        help="the audit trail from --since (today) to --until: every change asked of the "
        "control API and the desktops (who, from where, what, the answer) and every read of "
        "a recording, a voicemail or a number's calls, personal values hidden; CSV (--json: "
        "one object per line; --who: one token or person, such as supervisor:2000)",
    )
    report.add_argument(
        "--who",
        default=None,
        help="--audit: only the rows of this API token's name or desktop person "
        "(agent:1001, supervisor:2000; token for api.token, local without one)",
    )
    report.add_argument(
        "--waits",
        action="store_true",
        help="how long callers waited, in bands, from --since (today) to --until: each "
        "queue's callers answered, abandoned and exited by the band of their wait, and the "
        "share answered by each band's end (--queue: one queue; --bands to choose them); "
        "CSV (--json: one object per line)",
    )
    report.add_argument(
        "--bands",
        default=None,
        help="with --waits: where the bands end, in seconds, such as 15,30,60 (default "
        "10,20,30,60,120,300)",
    )
    report.add_argument(
        "--pauses",
        action="store_true",
        help="each agent's pause time per reason from --since (today) to --until: pauses, "
        "time paused, the longest, the mean, whether one goes on now; CSV (--json: one "
        "object per line; --agent, --team: only theirs), and each agent's totals on stderr",
    )
    report.add_argument(
        "--voicemails",
        action="store_true",
        help="the voicemail messages left in queues' boxes (the newest --last, or those left "
        "from --since to --until): queue, number, length, what became of them, who dealt "
        "with them and after how long, as CSV (--json: one object per line)",
    )
    report.add_argument(
        "--callbacks",
        action="store_true",
        help="the callback requests (a caller's key, the web, a closed queue, an abandoned "
        "caller; the newest --last, or those due from --since to --until): queue, number, "
        "what became of them, the tries and how long after their time they were settled, "
        "as CSV (--json: one object per line)",
    )
    report.add_argument(
        "--queues",
        action="store_true",
        help="each queue's figures by --by period: offered, answered, abandoned, exited, "
        "service level, abandon rate, ASA, longest wait, AHT, FCR (from the queue_log), "
        "surveys and mean survey score",
    )
    report.add_argument(
        "--agents",
        action="store_true",
        help="each agent's figures by --by period: calls, offers missed, talk, AHT, "
        "logged-in and paused time, occupancy, surveys and mean survey score",
    )
    report.add_argument(
        "--team",
        default=None,
        help="--agents, --surveys: only the agents of this team (agents.<id>.team), for its leader",
    )
    report.add_argument(
        "--agent",
        default=None,
        help="--surveys: only the surveys about this agent",
    )
    report.add_argument(
        "--number",
        default=None,
        help="the CDRs: only the calls from or to this number (as the records hold it), with "
        "each call's disposition code and note: a caller's history",
    )
    report.add_argument(
        "--queue",
        default=None,
        help="--surveys, --voicemails: only those of this queue's callers",
    )
    report.add_argument(
        "--since",
        default=None,
        help="from (included): today, yesterday, 2026-12-01, '2026-12-01 08:00'; figures: "
        "today by default; CDRs: every one from then (instead of the --last newest)",
    )
    report.add_argument(
        "--until",
        default=None,
        help="to (excluded): now (the default), a date (its midnight) or a time",
    )
    report.add_argument(
        "--by",
        choices=["15min", "30min", "hour", "day", "week", "month", "total"],
        default="day",
        help="with --queues/--agents: one row per quarter hour, half hour, hour, day (the "
        "default), ISO week (from Monday) or month, or one total",
    )
    report.add_argument(
        "--tz",
        default=None,
        help="time zone of --since/--until and of the figures' periods (default: "
        "ivr.timezone of the config)",
    )
    report.add_argument(
        "--staffing",
        type=_bounded(float, 1.0, 99.9, "a percentage"),
        default=None,
        metavar="PERCENT",
        help="with --queues --by hour: the agents each hour's callers needed (Erlang C) for "
        "PERCENT of them answered within the queue's service_level (handle time: that "
        "hour's mean talk plus the queue's wrapup)",
    )
    report.add_argument(
        "--fcr-days",
        type=_positive_int,
        default=7,
        help="with --queues: an answered caller whose number calls again within this many "
        "days was not helped the first time (first-call resolution, FCR %%; default 7)",
    )
    report.add_argument(
        "--csv",
        action="store_true",
        help="CSV for a spreadsheet instead of a table (the CDRs: every column)",
    )
    report.add_argument(
        "--follow",
        action="store_true",
        help="with --queue-log: go on printing lines as they are written (as tail -f does)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (``callcenter report --json | head``): it asked for less,
        # not for a traceback. Python would flush stdout again at exit and fail once more.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: str = args.command
    if command == "check":
        if args.explain:
            from callcenter.config import describe_fields

            print(describe_fields())
            return EXIT_OK
        if args.pbx:
            return cmd_check_pbx(args.config or _default_config())
        return cmd_check(args.config or _default_config())
    if command == "run":
        return cmd_run(args.config or _default_config())
    if command == "demo":
        from callcenter.demo import run_demo

        stay = None if args.stay < 0 else args.stay
        return run_demo(
            config_path=args.config,
            pbx=args.pbx,
            agi=args.agi,
            speed=args.speed,
            stay=stay,
            sip_port=args.sip_port,
        )
    if command == "soak":
        from callcenter.soak import SoakPlan, run_soak

        ways = {"asterisk": ("fastagi", "asyncagi"), "freeswitch": ("esl-inbound", "esl-outbound")}
        agi = args.agi or ways[args.pbx][0]
        if agi not in ways[args.pbx]:
            print(
                f"callcenter soak: --agi {agi} is not a way calls reach the daemon on "
                f"{args.pbx} (asterisk: fastagi, asyncagi; freeswitch: esl-inbound, the park; "
                "esl-outbound)",
                file=sys.stderr,
            )
            return 2  # a usage error, as argparse's
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
        plan = SoakPlan(
            seconds=args.seconds,
            rate=args.rate,
            seed=seed,
            outages=args.outages,
            restarts=args.restarts,
            agents=args.agents,
        )
        return run_soak(args.config, plan, pbx=args.pbx, agi=agi)
    if command == "staffing":
        return cmd_staffing(
            args.calls,
            args.minutes,
            args.aht,
            args.target,
            shrinkage=args.shrinkage,
            max_occupancy=args.max_occupancy,
            patience=args.patience,
            max_abandon=args.max_abandon,
        )
    if command == "forecast":
        if args.csv and args.json:
            parser.error("--csv or --json, not both")
        return cmd_forecast(
            args.config or _default_config(),
            week_of=args.week_of,
            weeks=args.weeks,
            by=args.by,
            target=args.target / 100.0,
            shrinkage=args.shrinkage / 100.0,
            queue=args.queue,
            zone=args.tz,
            output="csv" if args.csv else "json" if args.json else "table",
            shifts=args.shifts,
            trend=args.trend,
        )
    if command == "simulate":
        return cmd_simulate(args)
    if command == "purge":
        if args.older_than is not None and args.before is not None:
            parser.error("purge: --older-than or --before, not both")
        return cmd_purge(
            args.config or _default_config(),
            older_than=args.older_than,
            before=args.before,
            dry_run=args.dry_run,
            recordings=args.recordings,
        )
    if command == "token":
        return _new_token(parser, args.name, args.allow)
    if command == "backup":
        if args.to is None and args.files is None:
            parser.error("backup needs --to FILE (the records), --files DIR, or both")
        return cmd_backup(args.config or _default_config(), args.to, args.files)
    if command == "erase":
        return cmd_erase(
            args.config or _default_config(), args.numbers, dry_run=args.dry_run, api=args.api
        )
    if command == "report":
        if args.follow and not args.queue_log:
            parser.error("--follow goes with --queue-log")
        if args.queue_log and args.json:
            parser.error("--queue-log prints queue_log lines, not JSON")
        chosen = (
            args.campaign is not None,
            args.queue_log,
            args.dispositions,
            args.surveys,
            args.erasures,
            args.voicemails,
            args.callbacks,
            args.evaluations,
            args.ivr,
            args.dialled,
            args.adherence,
            args.pauses,
            args.waits,
            args.schedule_changes,
            args.audit,
            args.outcomes,
        )
        if sum((*chosen, args.queues, args.agents)) > 1:
            parser.error(
                "--campaign, --queue-log, --dispositions, --surveys, --erasures, --voicemails, "
                "--callbacks, --evaluations, --adherence, --pauses, --waits, --schedule-changes, "
                "--audit, --outcomes, --ivr, --dialled, --queues and --agents: one report at a "
                "time"
            )
        if args.who is not None and not args.audit:
            parser.error("--who goes with --audit")
        if args.per is not None and not args.outcomes:
            parser.error("--per goes with --outcomes")
        summary = "queues" if args.queues else "agents" if args.agents else None
        if args.csv and args.json:
            parser.error("--csv or --json, not both")
        figure_flags = [("--by", args.by, "day"), ("--fcr-days", args.fcr_days, 7)]
        if args.staffing is not None and not (args.queues and args.by == "hour"):
            parser.error("--staffing goes with --queues --by hour (callers per hour)")
        if args.calibration and not args.evaluations:
            parser.error("--calibration goes with --evaluations")
        by_agent = (
            args.surveys
            or args.evaluations
            or args.adherence
            or args.pauses
            or args.schedule_changes
            or args.outcomes
        )
        if args.team is not None and not (args.agents or by_agent):
            parser.error(
                "--team goes with --agents, --surveys, --evaluations, --adherence, --pauses, "
                "--schedule-changes or --outcomes"
            )
        if args.agent is not None and not by_agent:
            parser.error(
                "--agent goes with --surveys, --evaluations, --adherence, --pauses, "
                "--schedule-changes or --outcomes"
            )
        if args.number is not None and (summary is not None or any(chosen)):
            parser.error("--number goes with the CDRs (no other report)")
        if args.queue is not None and not (
            args.surveys or args.voicemails or args.callbacks or args.waits
        ):
            parser.error("--queue goes with --surveys, --voicemails, --callbacks or --waits")
        if args.bands is not None and not args.waits:
            parser.error("--bands goes with --waits")
        range_flags = [
            ("--since", args.since, None),
            ("--until", args.until, None),
            ("--tz", args.tz, None),
            ("--csv", args.csv, False),
        ]
        other = any(chosen)
        ranged = (
            range_flags[3:]
            if args.surveys
            or args.voicemails
            or args.callbacks
            or args.evaluations
            or args.adherence
            or args.pauses
            or args.waits
            or args.schedule_changes
            or args.audit
            or args.outcomes
            else []
            if args.ivr or args.dialled
            else range_flags
        )
        wrong = [f for f, value, default in figure_flags if value != default and not summary]
        wrong += [f for f, value, default in ranged if value != default and other]
        if wrong:
            parser.error(
                f"{', '.join(wrong)} go(es) with --queues or --agents"
                + ("" if "--by" in wrong or "--fcr-days" in wrong else " or the CDRs")
            )
        if summary is None and not other:
            return cmd_cdr_export(
                args.config or _default_config(),
                since=args.since,
                until=args.until or "now",
                zone=args.tz,
                last=args.last,
                output="csv" if args.csv else "json" if args.json else "table",
                number=args.number,
            )
        if args.ivr or args.dialled:
            return cmd_cdr_fold(
                args.config or _default_config(),
                "ivr" if args.ivr else "dialled",
                since=args.since or "today",
                until=args.until or "now",
                zone=args.tz,
                output="csv" if args.csv else "json" if args.json else "table",
            )
        if summary is not None:
            return cmd_summary(
                args.config or _default_config(),
                summary,
                since=args.since or "today",
                until=args.until or "now",
                by=args.by,
                zone=args.tz,
                output="csv" if args.csv else "json" if args.json else "table",
                fcr_days=args.fcr_days,
                team=args.team,
                staffing=args.staffing,
            )
        return cmd_report(
            args.config or _default_config(),
            args.last,
            as_json=args.json,
            queue_log=args.queue_log,
            follow=args.follow,
            campaign=args.campaign,
            surveys=args.surveys,
            erasures=args.erasures,
            voicemails=args.voicemails,
            callbacks=args.callbacks,
            evaluations=args.evaluations,
            calibration=args.calibration,
            adherence=args.adherence,
            pauses=args.pauses,
            schedule_changes=args.schedule_changes,
            audit=args.audit,
            who=args.who,
            outcomes=(args.per or "agent") if args.outcomes else None,
            waits=_bands(parser, args.bands) if args.waits else None,
            since=args.since,
            until=args.until,
            zone=args.tz,
            about=SurveyFilter(args.agent, args.queue, args.team),
        )
    if command == "status":
        render = None if args.json else format_status
        return _api_call(args.api, "GET", "/status", None, render=render)
    if command == "reload":
        return _api_call(args.api, "POST", "/reload", {})
    if command == "events":
        if args.count is not None and args.count < 1:
            parser.error("--count takes a number of 1 or more")
        return cmd_events(
            args.api,
            agent=args.agent,
            queue=args.queue,
            kinds=args.events,
            as_json=args.json,
            count=args.count,
        )
    if command == "drain":
        if args.cancel:
            if args.timeout is not None or args.wait:
                parser.error("drain --cancel takes neither --timeout nor --wait")
            return _api_call(
                args.api, "POST", "/drain/cancel", {}, render=lambda _: "taking calls again"
            )
        return cmd_drain(args.api, timeout=args.timeout, wait=args.wait)
    if command == "agent":
        if args.action in ("add", "change", "remove", "roster"):
            return _roster_command(parser, args)
        if args.action == "schedule" and args.agent is None and args.team is not None:
            return _team_schedule_command(parser, args)
        if args.agent is None:
            parser.error(f"agent {args.action} needs the agent's id: e.g. {args.action} 1001")
        if args.action == "schedule":
            if args.team is not None:
                parser.error("agent schedule: an agent's id or --team, not both")
            return _schedule_command(parser, args)
        if args.day is not None or args.hours is not None or args.off or args.as_planned:
            parser.error("--day, --hours, --off and --as-planned are for agent schedule")
        roster_only = {"--name": args.name, "--team": args.team, "--pin": args.pin}
        for option, value in [*roster_only.items(), ("--hot-desk", args.hot_desk or None)]:
            if value is not None:
                parser.error(f"{option} is for agent add / change")
        body: dict[str, Any] = {}
        if args.action == "pause":
            body["reason"] = args.reason
        if args.action in ("pause", "unpause") and args.queue is not None:
            body["queue"] = args.queue
        if args.action == "transfer":
            if args.queue is not None and args.to is not None:
                parser.error("agent transfer: --to someone or --queue, not both")
            if args.queue is not None:
                body.update({"queue": args.queue, "priority": args.priority})
            else:
                body["to"] = args.to or "supervisor"
        if args.action == "consult":
            body["to"] = args.to or "supervisor"
        if args.action == "dial":
            if not args.to:
                parser.error("agent dial needs --to: e.g. dial 1001 --to 0612345678")
            body["number"] = args.to
            if args.queue is not None:
                body["queue"] = args.queue
            agent = urllib.parse.quote(args.agent, safe="")
            if args.wait:
                return cmd_dial_and_wait(args.api, args.agent, body)
            return _api_call(args.api, "POST", f"/agents/{agent}/dial", body, render=_dialling)
        if args.wait:
            parser.error("--wait is for agent dial")
        if args.action in ("join", "leave"):
            if args.queue is None:
                parser.error(
                    f"agent {args.action} needs --queue: e.g. {args.action} 1001 --queue support"
                )
            body["queue"] = args.queue
            if args.penalty is not None:
                if args.action == "leave":
                    parser.error("agent leave takes no --penalty")
                body["penalty"] = args.penalty
        elif args.penalty is not None:
            parser.error("--penalty is for agent join")
        if args.action == "skills":
            body["skills"] = _parse_skills(parser, args.skills)
        elif args.skills is not None:
            parser.error("--skills is for agent skills")
        if args.action == "profile":
            if not args.profile:
                parser.error("agent profile needs --profile: e.g. profile 1001 --profile billing")
            body["profile"] = args.profile
        elif args.profile is not None:
            parser.error("--profile is for agent profile")
        if args.action == "break-place":
            body["place"] = args.place if args.place is not None else 1
        elif args.place is not None:
            parser.error("--place is for agent break-place")
        if args.device is not None:
            if args.action != "login":
                parser.error("--device is for agent login (hot desking) and agent add / change")
            body["device"] = args.device
        if args.paused:
            if args.action != "login":
                parser.error("--paused is for agent login")
            body["paused"] = args.reason
        if args.action == "disposition":
            if not args.code:
                parser.error("agent disposition needs --code: e.g. disposition 1001 --code sale")
            body.update({"code": args.code, "note": args.note, "at": args.at})
        agent = urllib.parse.quote(args.agent, safe="")
        return _api_call(args.api, "POST", f"/agents/{agent}/{args.action}", body)
    if command == "numbers":
        if args.action == "list":
            if args.name is not None:
                parser.error("numbers list takes no list or number")
            return _api_call(
                args.api, "GET", "/numbers", None, render=lambda b: format_number_lists(b["lists"])
            )
        if args.name is None or args.number is None:
            parser.error(
                f"numbers {args.action} needs the list and the number: e.g. "
                f"{args.action} blocked 0612345678"
            )
        which = urllib.parse.quote(args.name, safe="")
        return _api_call(
            args.api, "POST", f"/numbers/{which}/{args.action}", {"number": args.number}
        )
    if command == "voicemail":
        if args.action == "list":
            if args.id is not None:
                parser.error("voicemail list takes no id")
            query = f"?queue={urllib.parse.quote(args.queue)}" if args.queue else ""
            return _api_call(args.api, "GET", f"/voicemails{query}", None)
        if args.id is None:
            parser.error(f"voicemail {args.action} needs the message's id")
        if args.agent is None and args.action != "release":
            parser.error(f"voicemail {args.action} needs --agent: e.g. --agent 1001")
        which = urllib.parse.quote(args.id, safe="")
        body = {"agent": args.agent} if args.agent is not None else {}
        return _api_call(args.api, "POST", f"/voicemails/{which}/{args.action}", body)
    if command == "notice":
        if args.action == "list":
            return _api_call(args.api, "GET", "/notices", None)
        if args.target is None:
            what = "text" if args.action == "post" else "notice's id"
            parser.error(f"notice {args.action} needs the {what}")
        if args.action == "post":
            if args.team and args.agent:
                parser.error("notice post: --team or --agent, not both")
            body = {
                "text": args.target,
                "teams": args.team,
                "agents": args.agent,
                "minutes": args.minutes,
                "by": "cli",
            }
            return _api_call(args.api, "POST", "/notices", body)
        if args.agent:
            parser.error("--agent goes with notice post")
        which = urllib.parse.quote(args.target, safe="")
        return _api_call(args.api, "POST", f"/notices/{which}/take-down", {"by": "cli"})
    if command == "queue":
        return _queue_command(parser, args)
    if command == "callback":
        if args.action == "slots":
            if args.queue is None:
                parser.error("callback slots needs --queue: e.g. slots --queue sales")
            asked = {"queue": args.queue} | ({"date": args.date} if args.date else {})
            slots = "/callbacks/slots?" + urllib.parse.urlencode(asked)
            return _api_call(args.api, "GET", slots, None)
        if args.action == "list":
            if args.target is not None:
                parser.error("callback list takes no number or id")
            return _api_call(args.api, "GET", "/callbacks", None)
        if args.target is None:
            what = "the number" if args.action == "request" else "the request's id"
            parser.error(f"callback {args.action} needs {what}")
        if args.action == "cancel":
            which = urllib.parse.quote(args.target, safe="")
            return _api_call(args.api, "POST", f"/callbacks/{which}/cancel", {})
        if args.queue is None:
            parser.error("callback request needs --queue: e.g. request 0612345678 --queue sales")
        wanted = {
            "number": args.target,
            "queue": args.queue,
            "priority": args.priority,
            "at": args.at,
            "data": dict(item.partition("=")[::2] for item in args.data),
        }
        if any("=" not in item for item in args.data):
            parser.error("--data takes NAME=VALUE, such as --data topic=invoice")
        return _api_call(args.api, "POST", "/callbacks", wanted)
    if command == "switch":
        if args.action == "list":
            if args.name is not None:
                parser.error("switch list takes no switch name")
            return _api_call(
                args.api, "GET", "/switches", None, render=lambda b: format_switches(b["switches"])
            )
        if args.name is None:
            parser.error(f"switch {args.action} needs the switch: e.g. switch {args.action} storm")
        which = urllib.parse.quote(args.name, safe="")
        return _api_call(
            args.api,
            "POST",
            f"/switches/{which}/{args.action}",
            {},
            render=lambda b: format_switches([b["switch"]]),
        )
    if command == "campaign":
        if args.action == "list":
            if args.campaign is not None:
                parser.error("campaign list takes no campaign id")

            def listing(body: dict[str, Any]) -> str:
                return format_campaigns(body.get("campaigns", []))

            return _api_call(
                args.api, "GET", "/campaigns", None, render=None if args.json else listing
            )
        if args.campaign is None:
            parser.error(f"campaign {args.action} needs the campaign id: e.g. {args.action} spring")
        which = urllib.parse.quote(args.campaign, safe="")
        lead_flags = (args.number, args.lead, args.timezone, args.data, args.priority)
        if args.action == "add-lead":
            return _add_lead(parser, args, which)
        if args.action == "remove-lead":
            others = (args.number, args.timezone, args.data, args.priority)
            if args.lead is None or any(flag is not None for flag in others):
                parser.error("campaign remove-lead takes --lead only: e.g. --lead c-4")
            lead = urllib.parse.quote(args.lead, safe="")

            def removed(answer: dict[str, Any]) -> str:
                return f"lead {answer['lead']} taken off {answer['campaign']}"

            return _api_call(
                args.api, "POST", f"/campaigns/{which}/leads/{lead}/remove", {}, render=removed
            )
        if any(flag is not None for flag in lead_flags):
            parser.error(
                "--number, --lead, --timezone, --data and --priority go with campaign add-lead"
            )
        recycling: dict[str, Any] = {}
        if args.reasons is not None:
            if args.action != "recycle":
                parser.error("--reasons goes with campaign recycle")
            recycling["reasons"] = [r.strip() for r in args.reasons.split(",") if r.strip()]
        return _api_call(args.api, "POST", f"/campaigns/{which}/{args.action}", recycling)
    if command == "supervisor":
        if args.device is not None and args.action != "desk":
            parser.error("--device goes with supervisor desk")
        if args.action == "desk":
            if args.agent is not None:
                parser.error("supervisor desk takes no agent: --device PJSIP/2010")
            who = urllib.parse.quote(args.supervisor, safe="")
            return _api_call(args.api, "POST", f"/supervisors/{who}/desk", {"device": args.device})
        if args.action in ("stop", "takeover") and args.agent is not None:
            parser.error(f"supervisor {args.action} takes no agent")
        if args.action not in ("stop", "takeover") and args.agent is None:
            parser.error(f"supervisor {args.action} needs the agent: e.g. 2000 1001")
        who = urllib.parse.quote(args.supervisor, safe="")
        body = {} if args.agent is None else {"agent": args.agent}
        return _api_call(args.api, "POST", f"/supervisors/{who}/{args.action}", body)
    return EXIT_CONFIG


def _quiet_logging() -> None:
    """structlog at error level on stderr: its default prints every level to stdout, into
    the output a command promises (``report --json`` piped to jq). stdlib logging is left
    alone for :func:`~callcenter.log.configure_logging` to set up once."""
    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _add_api_option(parser: argparse.ArgumentParser) -> None:
    """``--api``: the running daemon's control API (default ``$CALLCENTER_API`` or local)."""
    parser.add_argument(
        "--api", type=_api_address, default=os.environ.get("CALLCENTER_API", DEFAULT_API)
    )


def _api_address(text: str) -> str:
    """``--api`` / ``CALLCENTER_API``: the daemon's control API, ``http://host:port``."""
    try:
        parts = urllib.parse.urlsplit(text)
        _port = parts.port  # a port that is not a number raises ValueError
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address like {DEFAULT_API}")
    return text


def _bounded(
    convert: Callable[[str], Number], low: Number, high: Number | None, what: str
) -> Callable[[str], Number]:
    """An argparse ``type``: ``convert(text)``, from ``low`` to ``high`` (None: no limit)."""

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (low <= value and (high is None or value <= high)):  # nan fails both
            limits = f"{low} or more" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{text!r}: give {limits}")
        return value

    return parse


_time_scale = _bounded(float, 0.01, 100.0, "a number")
_drain_seconds = _bounded(float, 0.1, 10.0**6, "seconds")
_positive_int = _bounded(int, 1, None, "a whole number")
_calls = _bounded(float, 0.0, 10.0**7, "a number of calls")


def _service_target(text: str) -> tuple[float, float]:
    """``--target 80/20``: (0.8, 20.0), a share answered within seconds."""
    percent, slash, seconds = text.partition("/")
    try:
        share, within = float(percent) / 100.0, float(seconds)
    except ValueError:
        share, within = -1.0, -1.0
    if not slash or not 0.0 < share < 1.0 or not 0.0 <= within <= 3600.0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not PERCENT/SECONDS, such as 80/20 (80 % answered within 20 s)"
        )
    return share, within


def cmd_staffing(
    calls: float,
    minutes: float,
    aht: float,
    target: tuple[float, float],
    *,
    shrinkage: float = 0.0,
    max_occupancy: float | None = None,
    patience: float | None = None,
    max_abandon: float | None = None,
) -> int:
    """``staffing``: the agents a load needs (:mod:`callcenter.staffing`), with the figures
    of a few more and fewer around that number."""
    from callcenter import staffing

    share, within = target
    interval = minutes * 60.0
    if max_abandon is not None and patience is None:
        print("staffing: --max-abandon needs --patience (callers who give up)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        needed = staffing.agents_needed(
            calls,
            aht,
            within,
            share,
            interval=interval,
            max_occupancy=max_occupancy / 100.0 if max_occupancy is not None else None,
            patience=patience,
            max_abandon=max_abandon / 100.0 if max_abandon is not None else None,
        )
    except ValueError as exc:
        print(f"staffing: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    model = (
        f"Erlang A, callers hanging up after {patience:g} s on average"
        if patience is not None
        else "Erlang C, nobody hangs up"
    )
    print(
        f"{calls:g} calls in {minutes:g} min, handled in {aht:g} s: "
        f"{needed.traffic:.2f} erlangs of work ({model})"
    )
    head = f"  agents  answered in {within:g} s  speed of answer  callers who wait  occupancy"
    print(head + ("  hang up" if patience is not None else ""))
    low = max(1, needed.agents - 2)
    for agents in range(low, needed.agents + 3):
        try:
            row = staffing.staffing(agents, calls, aht, within, interval, patience=patience)
        except ValueError:
            continue  # too few agents for the model to say anything
        mark = ">" if agents == needed.agents else " "
        asa = (
            "never"
            if math.isinf(row.average_speed_of_answer)
            else f"{row.average_speed_of_answer:.1f} s"
        )
        line = (
            f"{mark} {agents:6d}  {100 * row.service_level:17.1f} %  {asa:>15}  "
            f"{100 * row.wait_probability:14.1f} %  {100 * row.occupancy:7.1f} %"
        )
        if patience is not None:
            line += f"  {100 * row.abandon_probability:5.1f} %"
        print(line)
    line = (
        f"needed: {needed.agents} agents on the phones for {100 * share:g} % answered "
        f"within {within:g} s"
    )
    if max_occupancy is not None:
        line += f", none busy more than {max_occupancy:g} % of the time"
    if max_abandon is not None:
        line += f", at most {max_abandon:g} % hanging up"
    if shrinkage:
        line += (
            f"; with {shrinkage:g} % shrinkage, schedule "
            f"{staffing.scheduled(needed.agents, shrinkage / 100.0)}"
        )
    print(line)
    return EXIT_OK


def cmd_check(path: str) -> int:
    from callcenter.config import check_config

    _quiet_logging()
    issues = check_config(path)
    for issue in issues:
        print(issue, file=sys.stderr)
    if issues:
        print(f"{path}: {len(issues)} problem(s)", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: OK")
    return EXIT_OK


def cmd_check_pbx(path: str) -> int:
    """``check --pbx``: the config (with the agents and queues the records say were added
    while the daemon ran), then the PBX (:mod:`callcenter.pbx.checkup`): one line per
    finding; 1 when one is a problem (or the config is), 2 when the PBX refuses the
    credentials, 3 when it cannot be reached."""
    from callcenter.config import load_config
    from callcenter.daemon import asterisk_settings, freeswitch_settings
    from callcenter.pbx.checkup import check_pbx

    if cmd_check(path) != EXIT_OK:
        return EXIT_CONFIG
    try:
        # The agents and queues added while the daemon ran need their phones and contexts.
        config = _with_roster(load_config(path))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    settings = (
        asterisk_settings(config) if config.pbx.type == "asterisk" else freeswitch_settings(config)
    )
    try:
        findings = asyncio.run(check_pbx(config, settings))
    except PBXError as exc:
        # A refused login exits as `run` does (2), a PBX out of reach or not answering 3.
        print(f"callcenter: {exc}", file=sys.stderr)
        return EXIT_AUTH if isinstance(exc, AuthenticationError) else EXIT_UNREACHABLE
    for finding in findings:
        print(finding.line())
    problems = sum(f.status == "problem" for f in findings)
    warnings = sum(f.status == "warning" for f in findings)
    print(f"{config.pbx.type}: {problems} problem(s), {warnings} warning(s)")
    return EXIT_CONFIG if problems else EXIT_OK


def _offline_environ() -> dict[str, str]:
    """The environment with placeholder PBX secrets, for commands that never log in."""
    environ = dict(os.environ)
    environ.setdefault("CALLCENTER_AMI_SECRET", "unused")
    environ.setdefault("CALLCENTER_ESL_PASSWORD", "unused")
    return environ


def cmd_simulate(args: argparse.Namespace) -> int:
    """``callcenter simulate``: exit 0 when the call ran to its end, 1 on a bad request."""
    from datetime import datetime

    from callcenter.config import load_config
    from callcenter.ivr.simulate import parse_presses, parse_queue_state, simulate
    from callcenter.log import configure_logging

    configure_logging("error", "console")
    path = args.config or _default_config()
    try:
        config = load_config(path, environ=_offline_environ())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    try:
        presses = parse_presses(args.press)
        at = datetime.fromisoformat(args.at) if args.at else None
        queues = dict(parse_queue_state(text) for text in args.queue_state)
    except ValueError as exc:
        print(f"callcenter simulate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    flow = args.flow
    if flow is None:
        route = config.routes.get(args.dialed) or config.routes.get("default")
        if route is None:
            print(f"callcenter simulate: no route for {args.dialed}; give --flow", file=sys.stderr)
            return EXIT_CONFIG
        flow = route.flow
    if flow not in config.flows:
        known = ", ".join(config.flows) or "none"
        print(f"callcenter simulate: no flow {flow!r} (flows: {known})", file=sys.stderr)
        return EXIT_CONFIG
    strange = [name for name in queues if name not in config.queues]
    if strange:
        known = ", ".join(config.queues) or "none"
        print(f"callcenter simulate: no queue {strange[0]!r} (queues: {known})", file=sys.stderr)
        return EXIT_CONFIG
    unknown = [name for name in args.switch if name not in config.ivr.switches]
    if unknown:
        known = ", ".join(config.ivr.switches) or "none"
        print(f"callcenter simulate: no switch {unknown[0]!r} (switches: {known})", file=sys.stderr)
        return EXIT_CONFIG
    result = asyncio.run(
        simulate(
            config,
            flow=flow,
            caller_num=args.caller,
            caller_name=args.caller_name,
            dialed=args.dialed,
            presses=presses,
            at=at,
            http=not args.no_http,
            switches=args.switch,
            queues=queues,
        )
    )
    return EXIT_OK if result.finished else EXIT_UNREACHABLE


def cmd_run(path: str) -> int:
    from callcenter.config import load_config
    from callcenter.daemon import Daemon, loop_factory
    from callcenter.log import configure_logging

    # Until the config says how to log: a JSON log must not start with a console line.
    _quiet_logging()
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"{path}: cannot read config: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.logging.level, config.logging.format)
    try:
        factory = loop_factory(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG

    async def go() -> None:
        daemon = Daemon(config, config_path=path)
        await daemon.start()
        await daemon.run_until_signalled()
        if daemon.exit_error is not None:
            raise daemon.exit_error

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(go())
    except AuthenticationError as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except PBXConnectionError as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (ListenError, RecordError, PBXClaimed) as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return EXIT_RESOURCE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


FOLLOW_POLL = 0.5
"""Seconds between two looks for new queue_log lines (``report --queue-log --follow``)."""


def _report_config(path: str) -> CallCenterConfig | None:
    """The config a report reads the records of (no secrets needed); None, said on stderr,
    when it is broken."""
    from callcenter.config import load_config

    _quiet_logging()
    try:
        config = load_config(path, environ=_offline_environ())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    return _with_roster(config)


def _with_roster(config: CallCenterConfig) -> CallCenterConfig:
    """``config`` with the agents and queues the daemon added while it ran (``agent add``,
    ``queue add``) and the
    schedule days it changed (``agent schedule``), as the records hold them: a report names
    them, counts them in their team and measures adherence against the changed days."""
    from datetime import date

    from pydantic import ValidationError

    from callcenter.acd.roster import with_added
    from callcenter.acd.schedule import with_day_changes
    from callcenter.config.models import AgentConfig, QueueConfig
    from callcenter.daemon import record_store, resolve

    if config.records.postgres is None and not resolve(config, config.records.cdr_path).exists():
        return config
    try:
        store = record_store(config)
    except RecordError:
        return config  # the report itself says what is wrong with the database
    try:
        rows = store.fetch_added_agents()
        queue_rows = store.fetch_added_queues()
        changed_days = store.fetch_schedule_changes()
    except RecordError:
        rows, queue_rows, changed_days = [], [], []
    finally:
        store.close()
    added: dict[str, AgentConfig] = {}
    for row in rows:
        try:
            added[row.agent] = AgentConfig.model_validate(row.values())
        except ValidationError:
            continue
    queues: dict[str, QueueConfig] = {}
    for queue_row in queue_rows:
        try:
            queues[queue_row.queue] = QueueConfig.model_validate(queue_row.values())
        except ValidationError:
            continue
    days: dict[str, dict[date, tuple[str, ...]]] = {}
    for change in changed_days:
        days.setdefault(change.agent, {})[change.date()] = change.ranges()
    return with_day_changes(with_added(config, added, queues), days)


def _report_config_and_zone(path: str, zone: str | None) -> tuple[CallCenterConfig, tzinfo] | None:
    """A report's config and the time zone its times are in (``zone``, else the config's
    ``ivr.timezone``); None, said on stderr, when either is wrong."""
    config = _report_config(path)
    if config is None:
        return None
    tz = _report_zone(zone or config.ivr.timezone)
    return None if tz is None else (config, tz)


def _report_zone(zone: str) -> tzinfo | None:
    """The time zone a report's times are in; None, said on stderr, for a name that is none."""
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        print(f"--tz: unknown time zone {zone!r} (e.g. Europe/Berlin, UTC)", file=sys.stderr)
        return None


def _report_store(config: CallCenterConfig, *, rescued: bool = False) -> RecordStore | int:
    """The records database of ``config``, or the exit status when there is none to read
    (said on stderr). ``rescued``: also say when refused records wait beside it."""
    from callcenter.daemon import record_store, resolve

    db = resolve(config, config.records.cdr_path)
    waiting = _rescued(config, db)
    if rescued and waiting is not None:
        print(
            f"callcenter: records the database refused are waiting in {waiting}; "
            "the next start of the daemon writes them",
            file=sys.stderr,
        )
    if config.records.postgres is None and not db.exists():
        print(f"no records yet: {db} does not exist", file=sys.stderr)
        return EXIT_OK
    try:
        return record_store(config)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG


def cmd_report(
    path: str,
    last: int,
    *,
    as_json: bool,
    queue_log: bool = False,
    follow: bool = False,
    campaign: str | None = None,
    surveys: bool = False,
    erasures: bool = False,
    voicemails: bool = False,
    callbacks: bool = False,
    evaluations: bool = False,
    calibration: bool = False,
    adherence: bool = False,
    pauses: bool = False,
    schedule_changes: bool = False,
    audit: bool = False,
    who: str | None = None,
    outcomes: str | None = None,
    waits: Sequence[int] | None = None,
    since: str | None = None,
    until: str | None = None,
    zone: str | None = None,
    about: SurveyFilter | None = None,
) -> int:
    """``report --queue-log | --campaign ID | --dispositions | --surveys`` (the CDRs:
    :func:`cmd_cdr_export`, the figures: :func:`cmd_summary`); ``since`` / ``until`` /
    ``zone``: the surveys that ended within (as people type times, see ``parse_when``);
    ``about``: only the surveys of an agent, a team, a queue."""
    from callcenter.records.summary import parse_when

    config = _report_config(path)
    if config is None:
        return EXIT_CONFIG
    stretch: tuple[datetime, datetime] | None = None
    ranged_report = evaluations or adherence or pauses or schedule_changes or audit
    if (ranged_report or outcomes is not None or waits is not None) and since is None:
        since = "today"
    if since is not None or until is not None:
        tz = _report_zone(zone or config.ivr.timezone)
        if tz is None:
            return EXIT_CONFIG
        try:
            stretch = (parse_when(since or "today", tz), parse_when(until or "now", tz))
        except ValueError as exc:
            print(f"report: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    store = _report_store(config, rescued=True)
    if isinstance(store, int):
        return store
    try:
        if queue_log:
            return _print_queue_log(store, last, follow=follow)
        if campaign is not None:
            return _print_campaign(store, campaign, known=list(config.campaigns), as_json=as_json)
        if surveys:
            team = about.team if about is not None else None
            if team is not None and not team_members(config, team):
                print(_no_such_team(config, team), file=sys.stderr)
                return EXIT_CONFIG
            agents, queue = about.chosen(config) if about is not None else (None, None)
            return _print_surveys(
                store, last, as_json=as_json, stretch=stretch, agents=agents, queue=queue
            )
        if evaluations or adherence or pauses or schedule_changes or outcomes is not None:
            team = about.team if about is not None else None
            if team is not None and not team_members(config, team):
                print(_no_such_team(config, team), file=sys.stderr)
                return EXIT_CONFIG
            agents, _ = about.chosen(config) if about is not None else (None, None)
            assert stretch is not None
            if adherence:
                return _print_adherence(store, config, stretch, agents, as_json=as_json)
            if pauses:
                return _print_pauses(store, config, stretch, agents, as_json=as_json)
            if schedule_changes:
                return _print_schedule_changes(store, config, stretch, agents, as_json=as_json)
            if outcomes is not None:
                return _print_outcomes(store, stretch, agents, outcomes, as_json=as_json)
            if calibration:
                return _print_calibration(store, stretch, agents, as_json=as_json)
            return _print_evaluations(store, stretch, agents, as_json=as_json)
        if waits is not None:
            assert stretch is not None
            queue = about.queue if about is not None else None
            return _print_waits(store, stretch, waits, queue, as_json=as_json)
        if audit:
            assert stretch is not None
            return _print_audit(store, stretch, who, as_json=as_json)
        if erasures:
            return _print_erasures(store, last, as_json=as_json)
        if voicemails:
            queue = about.queue if about is not None else None
            return _print_voicemails(store, last, as_json=as_json, stretch=stretch, queue=queue)
        if callbacks:
            queue = about.queue if about is not None else None
            return _print_callbacks(store, last, as_json=as_json, stretch=stretch, queue=queue)
        return _print_dispositions(store, last, as_json=as_json)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()


def cmd_cdr_export(
    path: str,
    *,
    since: str | None,
    until: str,
    zone: str | None,
    last: int,
    output: str,
    number: str | None = None,
) -> int:
    """The CDRs that started from ``since`` to ``until`` (every one of them), or with
    ``since`` None the ``last`` newest; as a table, JSON lines or CSV (every column, for a
    spreadsheet or a billing system). ``number``: only the calls from or to it (the
    ``last`` newest of them within the times), with ``code`` and ``note`` columns."""
    import csv

    from callcenter.records.store import CDR_COLUMNS
    from callcenter.records.summary import parse_when

    found = _report_config_and_zone(path, zone)
    if found is None:
        return EXIT_CONFIG
    config, tz = found
    try:
        end = parse_when(until, tz)
        start = parse_when(since, tz) if since is not None else None
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    store = _report_store(config, rescued=True)
    if isinstance(store, int):
        return store
    columns = [name for name, _ in CDR_COLUMNS]
    try:
        if number is not None:
            rows = store.fetch_number_calls(number, last, since=start, until=end)
            columns += ["code", "note"]
        elif start is None:
            rows = [r for r in store.fetch_cdrs(last=last) if _started_before(r, end)]
        else:
            rows = store.fetch_cdrs_between(start, end)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()
    if output == "json":
        for row in rows:
            print(json.dumps(row, default=str))
    elif output == "csv":
        writer = csv.DictWriter(sys.stdout, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {k: int(v) if isinstance(v, bool) else v for k, v in r.items()} for r in rows
        )
    else:
        print(format_cdr_table(rows, [("code", 12), ("note", 30)] if number is not None else []))
    return EXIT_OK


def _started_before(row: Mapping[str, Any], end: datetime) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(str(row["start"])) < end


def cmd_purge(
    path: str,
    *,
    older_than: int | None,
    before: str | None,
    dry_run: bool,
    recordings: bool = False,
) -> int:
    """``purge``: delete (or count) the records older than a time, one line per table; with
    ``recordings``, the call recordings instead."""
    import zoneinfo
    from datetime import UTC, datetime, timedelta

    from callcenter.records.summary import parse_when

    config = _report_config(path)
    if config is None:
        return EXIT_CONFIG
    keep = config.acd.recordings_keep_days if recordings else config.records.keep_days
    days = older_than or keep
    if before is not None:
        try:
            cut = parse_when(before, zoneinfo.ZoneInfo(config.ivr.timezone))
        except ValueError as exc:
            print(f"purge: --before: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    elif days is not None:
        cut = datetime.now(UTC) - timedelta(days=days)
    else:
        setting = "acd.recordings_keep_days" if recordings else "records.keep_days"
        print(
            f"purge: say how old: --older-than DAYS or --before DATE (or set {setting})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if recordings:
        from callcenter.records.recordings import purge_recordings

        folder = config.resolve_path(config.acd.recordings_folder)
        done = purge_recordings(folder, cut, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        print(
            f"recordings in {folder} before {cut.isoformat(timespec='seconds')}: {verb} "
            f"{done.files} files, {done.bytes / 1e6:.1f} MB"
        )
        for failure in done.failed:
            print(f"purge: not deleted: {failure}", file=sys.stderr)
        return EXIT_CONFIG if done.failed else EXIT_OK
    store = _report_store(config)
    if isinstance(store, int):
        return store
    try:
        counts = store.purge(cut, dry_run=dry_run)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()
    verb = "would delete" if dry_run else "deleted"
    print(f"records before {cut.isoformat(timespec='seconds')}: {verb}")
    for table, count in counts.items():
        print(f"  {table:16} {count}")
    return EXIT_OK


def cmd_backup(path: str, to: str | None, files: str | None = None) -> int:
    """``backup``: the record database copied to ``to`` as one snapshot (see
    :meth:`SqliteCdrStore.backup <callcenter.records.store.SqliteCdrStore.backup>`), and
    with ``files`` the recordings, voicemail messages and queue_log file copied into that
    folder (:mod:`callcenter.records.backup`)."""
    config = _report_config(path)
    if config is None:
        return EXIT_CONFIG
    code = EXIT_OK if to is None else _back_up_records(config, to)
    if files is not None and code == EXIT_OK:
        code = _back_up_files(config, files)
    return code


def _back_up_files(config: CallCenterConfig, into: str) -> int:
    """Copy the folders the records name into ``into``, one line each."""
    from pathlib import Path

    from callcenter.daemon import resolve
    from callcenter.records.backup import copy_folder

    sources = [
        ("recordings", resolve(config, config.acd.recordings_folder)),
        ("voicemail", resolve(config, config.ivr.voicemail_folder)),
    ]
    if config.records.queue_log_file:
        sources.append(("queue_log", resolve(config, config.records.queue_log_file)))
    code = EXIT_OK
    for name, source in sources:
        try:
            done = copy_folder(name, Path(source), Path(into))
        except RecordError as exc:
            print(f"backup: {exc}", file=sys.stderr)
            return EXIT_RESOURCE
        if done.missing:
            print(f"{name}: {source} is not on this machine (nothing copied)")
            continue
        print(
            f"{name}: {done.copied} file(s) copied ({done.copied_bytes / 1e6:.1f} MB), "
            f"{done.unchanged} unchanged, from {source} to {Path(into) / name}"
        )
        for why in done.failed:
            print(f"backup: not copied: {why}", file=sys.stderr)
            code = EXIT_RESOURCE
    return code


def _back_up_records(config: CallCenterConfig, to: str) -> int:
    """The SQLite record database copied to ``to``, checked, with the records a full disk
    left waiting beside it (PostgreSQL: refused, pg_dump's job)."""
    from pathlib import Path

    from callcenter.records.store import SqliteCdrStore

    if config.records.postgres is not None:
        print(
            "backup: the records are in PostgreSQL: back them up with pg_dump (it takes a "
            "consistent snapshot while the daemon writes)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    store = _report_store(config, rescued=True)
    if isinstance(store, int):
        return store or EXIT_CONFIG  # none yet: nothing to back up is no backup
    assert isinstance(store, SqliteCdrStore)  # records.postgres is None
    target = Path(to)
    waiting = _rescued(config, Path(store.path))
    try:
        counts = store.backup(target)
    except RecordError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()
    size = target.stat().st_size
    print(f"backed up {store.path} to {target} ({size / 1e6:.1f} MB, checked)")
    for table, count in counts.items():
        print(f"  {table:20} {count}")
    if waiting is not None:
        return _back_up_rescued(waiting, target)
    return EXIT_OK


def _back_up_rescued(waiting: Path, target: Path) -> int:
    """Records the database refused wait in ``waiting``: copied beside the backup, where
    a daemon started on the backup writes them (:func:`rescue_path` of it)."""
    import shutil

    from callcenter.records.rescue import rescue_path

    copy = rescue_path(target)
    part = copy.with_name(copy.name + ".part")
    try:
        shutil.copyfile(waiting, part)
        part.rename(copy)
    except OSError as exc:
        part.unlink(missing_ok=True)
        print(
            f"backup: the records waiting in {waiting} (the database refused them) were not "
            f"copied to {copy}: {exc.strerror}; the backup lacks them",
            file=sys.stderr,
        )
        return EXIT_RESOURCE
    with copy.open("rb") as lines:
        count = sum(1 for _ in lines)
    print(
        f"  + {count} record(s) the database refused, waiting in {waiting}: copied to {copy} "
        "(a daemon started on the backup writes them)"
    )
    return EXIT_OK


def cmd_erase(path: str, numbers: Sequence[str], *, dry_run: bool, api: str | None) -> int:
    """``erase``: take ``numbers`` out of the records, the recordings and the queue_log file
    (:mod:`callcenter.records.erasure`): through the running daemon's API with ``api``
    (it also forgets them in memory and waits for calls in progress), else in the records
    database of the config; one line per table, then the files."""
    from callcenter.daemon import resolve
    from callcenter.records import erasure

    numbers = erasure.as_typed(numbers)
    if api is not None:
        body = {"numbers": numbers, "dry_run": dry_run}
        render = functools.partial(format_erasure, dry_run=dry_run)
        return _api_call(api, "POST", "/erasures", body, render=render)
    config = _report_config(path)
    if config is None:
        return EXIT_CONFIG
    problems = erasure.check_numbers(numbers, erasure.centre_phones(config))
    if problems:
        for problem in problems:
            print(f"erase: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    store = _report_store(config)
    if isinstance(store, int):
        return store
    waiting = _rescued(config, resolve(config, config.records.cdr_path))
    if waiting is not None:
        print(
            f"erase: records the database refused wait in {waiting}: start the daemon (it "
            "writes them) and erase again, so that none of them brings the number back",
            file=sys.stderr,
        )
        store.close()
        return EXIT_CONFIG
    try:
        done = erasure.erase_records(store, numbers, dry_run=dry_run)
    except ErasureRefused as exc:
        print("erase: nothing erased, as work still waits on the number:", file=sys.stderr)
        for hold in exc.holds:
            print(f"  {hold}", file=sys.stderr)
        return EXIT_CONFIG
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()
    queue_log = config.records.queue_log_file
    erasure.erase_files(
        done,
        resolve(config, config.acd.recordings_folder),
        resolve(config, queue_log) if queue_log is not None else None,
        dry_run=dry_run,
    )
    print(format_erasure(done.as_dict(), dry_run=dry_run))
    return EXIT_CONFIG if done.failed else EXIT_OK


def format_erasure(view: Mapping[str, Any], *, dry_run: bool) -> str:
    """What an erasure did (:meth:`Erasure.as_dict
    <callcenter.records.erasure.Erasure.as_dict>`), as ``callcenter erase`` prints it."""
    verb = "would erase" if dry_run else "erased"
    lines = [
        f"{verb} {number}" + ("" if dry_run else f" (now {token})")
        for number, token in view["erased"].items()
    ]
    lines.append(f"calls the number was in: {view['calls']}")
    lines += [f"  {table:16} {count} rows" for table, count in view["rows"].items()]
    recordings = f"{view['recordings']} files, {view['recording_bytes'] / 1e6:.1f} MB"
    lines.append(f"  {'recordings':16} {recordings}")
    lines.append(f"  {'queue_log file':16} {view['queue_log_file_lines']} lines")
    lines += [f"kept: {kept}" for kept in view["kept"]]
    lines += [
        f"not rewritten (a rotated copy: rewrite or delete it yourself): {copy}"
        for copy in view["not_rewritten"]
    ]
    lines += [f"not done: {failure}" for failure in view["failed"]]
    return "\n".join(lines)


def _rescued(config: CallCenterConfig, db: Path) -> Path | None:
    """The rescue file of records the database refused, when one waits beside it."""
    from callcenter.records.rescue import rescue_path

    waiting = rescue_path(db if config.records.postgres is None else db.with_name("postgres"))
    return waiting if waiting.exists() else None


def cmd_summary(
    path: str,
    which: str,
    *,
    since: str,
    until: str,
    by: str,
    zone: str | None,
    output: str,
    fcr_days: int = 7,
    team: str | None = None,
    staffing: float | None = None,
) -> int:
    """``report --queues`` / ``--agents``: figures over a stretch of time (see
    :mod:`callcenter.records.summary`); ``team``: the agents of that team only;
    ``staffing``: the agents each hour needed for that percentage answered in time."""
    import csv

    from callcenter.records import summary as figures
    from callcenter.records.adherence import scheduled_agents

    found = _report_config_and_zone(path, zone)
    if found is None:
        return EXIT_CONFIG
    config, tz = found
    grouping = next(g for g in figures.GROUPINGS if g == by)
    try:
        start = figures.parse_when(since, tz)
        end = figures.parse_when(until, tz)
        periods = figures.Periods(start, end, grouping, tz)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    members = team_members(config, team) if team is not None else None
    if team is not None and not members:
        print(_no_such_team(config, team), file=sys.stderr)
        return EXIT_CONFIG
    if which == "queues" and not config.records.queue_log:
        print(
            "report --queues reads the queue_log: set records.queue_log: true (figures from "
            "then on)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    store = _report_store(config)
    if isinstance(store, int):
        return store
    try:
        rows: list[dict[str, Any]]
        if which == "queues":
            levels = {name: q.service_level for name, q in config.queues.items()}
            short = {name: q.short_abandon for name, q in config.queues.items()}
            queues = figures.read_queue_figures(
                store, periods, levels, fcr_days=fcr_days, short_abandons=short
            )
            rows = [f.as_dict() for f in queues]
            needed = None
            if staffing is not None:
                patience = figures.patience_by_queue(queues)
                needed = [
                    figures.agents_needed(
                        f, staffing / 100.0, config.queues[f.queue].wrapup, patience[f.queue]
                    )
                    if f.queue in config.queues
                    else None
                    for f in queues
                ]
                for row, count, f in zip(rows, needed, queues, strict=True):
                    row["agents_needed"] = count
                    measured = patience[f.queue]
                    row["patience_seconds"] = round(measured) if measured is not None else None
            scheduled = None
            if staffing is not None:
                scheduled = scheduled_agents(config, store, periods, queues)
                if scheduled is not None:
                    for row, planned in zip(rows, scheduled, strict=True):
                        row["agents_scheduled"] = round(planned, 1)
            table = figures.format_queue_table(queues, grouping, needed, scheduled)
            if staffing is not None:
                table += "\n" + _staffing_note(figures.patience_by_queue(queues))
        else:
            names = {aid: a.name for aid, a in config.agents.items() if a.name}
            agents = figures.read_agent_figures(store, periods, names)
            if members is not None:
                agents = [f for f in agents if f.agent in members]
            rows = [f.as_dict() for f in agents]
            table = figures.format_agent_table(agents, grouping)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()
    if output == "json":
        for row in rows:
            print(json.dumps(row))
    elif output == "csv":
        if rows:
            for row in rows:
                for name in ("pauses", "dispositions"):
                    if name in row:
                        row[name] = " ".join(f"{k}={v}" for k, v in row[name].items())
            writer = csv.DictWriter(sys.stdout, list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    else:
        print(table)
    return EXIT_OK


def cmd_forecast(
    path: str,
    *,
    week_of: str | None,
    weeks: int,
    by: str,
    target: float,
    shrinkage: float,
    queue: str | None,
    zone: str | None,
    output: str,
    shifts: str | None = None,
    trend: bool = False,
) -> int:
    """``forecast``: each queue's callers and agents needed in each interval of a week to
    come (:mod:`callcenter.records.forecast`), beside the agents scheduled then; with
    ``shifts`` (``8h,4h``), the shifts that cover them (:mod:`callcenter.shift_plan`)."""
    import csv
    from datetime import date, datetime, timedelta

    from callcenter import shift_plan
    from callcenter.records import forecast as planning

    found = _report_config_and_zone(path, zone)
    if found is None:
        return EXIT_CONFIG
    config, tz = found
    lengths: list[int] = []
    if shifts is not None:
        try:
            lengths = shift_plan.parse_lengths(shifts, planning.INTERVALS[by])
        except ValueError as exc:
            print(f"--{exc}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        first = date.fromisoformat(week_of) if week_of else None
    except ValueError:
        print(f"--week-of: {week_of!r} is not a date such as 2026-12-14", file=sys.stderr)
        return EXIT_CONFIG
    store = _report_store(config)
    if isinstance(store, int):
        return store
    try:
        week = planning.read_forecast(
            store,
            config,
            planning.ForecastAsked(
                tz=tz,
                today=datetime.now(tz).date(),
                first=first,
                weeks=weeks,
                by=by,
                target=target,
                shrinkage=shrinkage,
                queue=queue,
                now=datetime.now(tz),
                trend=trend,
            ),
        )
    except (RecordError, ValueError) as exc:
        print(f"forecast: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()
    proposed = shift_plan.plan(week.rows, lengths, planning.INTERVALS[by]) if lengths else None
    listed = [s.as_dict() for s in proposed.shifts] if proposed is not None else week.rows
    if output == "json":
        for item in listed:
            print(json.dumps(item))
        return EXIT_OK
    if output == "csv":
        if listed:
            writer = csv.DictWriter(sys.stdout, list(listed[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(listed)
        return EXIT_OK
    print(
        f"forecast for {week.days[0]} - {week.days[-1]} ({tz}) from {week.since} - "
        f"{week.until - timedelta(days=1)}: {100 * target:g} % answered within each "
        "queue's service level" + (f", {100 * shrinkage:g} % shrinkage" if shrinkage else "")
    )
    if week.rows:
        print(planning.format_table(week.rows, week.scheduled))
    for name, weekdays in week.missing.items():
        print(
            f"{name}: nothing to go on for {', '.join(weekdays)} (no caller on "
            f"{'that weekday' if len(weekdays) == 1 else 'those weekdays'} in the {weeks} "
            f"week(s) of history: closed?)"
        )
    if week.quiet:
        print(f"no caller in the {weeks} week(s) of history for {', '.join(week.quiet)}")
    for name, days in week.closed.items():
        print(f"{name}: closed {'; '.join(days)} (its opening hours)")
    for name, carried in week.trend.items():
        print(planning.trend_said(name, carried))
    for name, seen in week.today.items():
        print(planning.pace_said(name, seen))
    for name, seen in week.accuracy.items():
        off = seen["wape_percent"]
        print(
            f"{name}: {seen['forecast']:g} callers forecast over the {seen['days']} day(s) "
            f"lived, {seen['actual']} came"
            + ("" if off is None else f"; interval by interval off by {off:g} % (WAPE)")
        )
    if week.rows:
        print(_staffing_note(week.patience))
    elif not week.missing:
        print("no callers in the history: nothing to forecast")
    if proposed is not None and proposed.shifts:
        print(shift_plan.format_shifts(proposed))
    return EXIT_OK


def _staffing_note(patience: Mapping[str, float | None]) -> str:
    """How ``report --staffing`` counted: Erlang A with each queue's measured patience,
    Erlang C where nobody hung up."""
    measured = [f"{q} {p:.0f} s" for q, p in sorted(patience.items()) if p is not None]
    never = sorted(q for q, p in patience.items() if p is None)
    parts = []
    if measured:
        parts.append(
            "Erlang A, with the callers' patience measured over the period ("
            + ", ".join(measured)
            + ")"
        )
    if never:
        parts.append(f"Erlang C for {', '.join(never)} (nobody hung up while waiting)")
    return "agents: " + "; ".join(parts)


def _print_queue_log(store: RecordStore, last: int, *, follow: bool) -> int:
    """The ``last`` newest queue_log lines; with ``follow``, then every new one until
    interrupted."""
    import time

    seen = 0
    try:
        entries = store.fetch_queue_log(last=last)
        while True:
            for row_id, entry in entries:
                print(entry.line(), flush=follow)
                seen = row_id
            if not follow:
                return EXIT_OK
            time.sleep(FOLLOW_POLL)
            entries = store.fetch_queue_log(after=seen)
    except KeyboardInterrupt:
        return EXIT_OK


def _print_dispositions(store: RecordStore, last: int, *, as_json: bool) -> int:
    """The newest ``last`` dispositions, oldest first, as CSV or JSON lines."""
    import csv
    import dataclasses

    rows = [dataclasses.asdict(r) for r in store.fetch_dispositions(last=last)]
    for row in rows:
        for key in ("callback_at", "at"):
            row[key] = row[key].isoformat(timespec="seconds") if row[key] else ""
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    fields = ["at", "call_id", "agent", "code", "note", "number", "queue", "campaign", "lead"]
    writer = csv.DictWriter(
        sys.stdout, [*fields, "callback_at", "do_not_call"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return EXIT_OK


def _print_erasures(store: RecordStore, last: int, *, as_json: bool) -> int:
    """The newest ``last`` erasures, oldest first: a line each, or JSON lines."""
    from callcenter.records.erasure import fetch_erasures

    rows = fetch_erasures(store, last)
    if not rows:
        print("no erasure yet", file=sys.stderr)
    for row in rows:
        if as_json:
            print(json.dumps(row))
        else:
            counts = " ".join(f"{table}={n}" for table, n in row["counts"].items() if n)
            print(f"{row['at']}  via {row['via']}  {row['numbers']} number(s)  {counts}")
    return EXIT_OK


def _newest_or_within(
    items: Sequence[_Row],
    last: int,
    stretch: tuple[datetime, datetime] | None,
    when: Callable[[_Row], datetime],
) -> list[_Row]:
    """Of ``items`` (oldest first): the newest ``last``, or every one whose ``when`` falls
    within ``stretch``."""
    if stretch is None:
        return list(items[-last:]) if last > 0 else []
    return [item for item in items if stretch[0] <= when(item) < stretch[1]]


def _print_rows(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], *, as_json: bool) -> int:
    """A report's rows as JSON lines, or as CSV under a header of ``fields`` (None: an
    empty cell; a mapping: its JSON)."""
    import csv

    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    writer = csv.DictWriter(sys.stdout, fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                key: "" if value is None
                else json.dumps(value, ensure_ascii=False) if isinstance(value, Mapping)
                else value
                for key, value in row.items()
            }
        )  # fmt: skip
    return EXIT_OK


def _print_surveys(
    store: RecordStore,
    last: int,
    *,
    as_json: bool,
    stretch: tuple[datetime, datetime] | None = None,
    agents: set[str] | None = None,
    queue: str | None = None,
) -> int:
    """The newest ``last`` surveys (or every one that ended within ``stretch``), oldest
    first, as CSV (answers as one JSON object) or JSON lines; only about ``agents`` and
    of ``queue`` when given."""
    if stretch is None:
        found = store.fetch_surveys(last=last, agents=agents, queue=queue)
    else:
        found = store.fetch_surveys_between(*stretch, agents=agents, queue=queue)

    rows: list[dict[str, Any]] = [
        {
            "at": r.at.isoformat(timespec="seconds"),
            "call_id": r.call_id,
            "queue": r.queue,
            "agent": r.agent,
            "number": r.number,
            "flow": r.flow,
            "score": r.score,
            "completed": r.completed,
            "seconds": r.seconds,
            "satisfied": r.satisfied,
            "answers": dict(r.answers),
        }
        for r in found
    ]
    fields = ["at", "call_id", "queue", "agent", "number", "flow", "score", "completed"]
    return _print_rows(rows, [*fields, "seconds", "satisfied", "answers"], as_json=as_json)


def cmd_cdr_fold(
    path: str, which: str, *, since: str, until: str, zone: str | None, output: str
) -> int:
    """``report --ivr`` (the IVR's nodes, :mod:`callcenter.records.ivr_paths`) or
    ``--dialled`` (calls by dialled number, :mod:`callcenter.records.dialled`) over the
    calls that started from ``since`` to ``until``."""
    from callcenter.records.dialled import dialled_summary, format_dialled_table
    from callcenter.records.ivr_paths import format_ivr_table, ivr_summary
    from callcenter.records.summary import parse_when

    found = _report_config_and_zone(path, zone)
    if found is None:
        return EXIT_CONFIG
    config, tz = found
    try:
        start, end = parse_when(since, tz), parse_when(until, tz)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    store = _report_store(config, rescued=True)
    if isinstance(store, int):
        return store
    try:
        cdrs = store.fetch_cdrs_between(start, end)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    finally:
        store.close()
    rows: list[dict[str, Any]]
    if which == "ivr":
        calls, nodes = ivr_summary(cdrs)
        table = format_ivr_table(calls, nodes)
        rows = [f.as_dict() for f in nodes]
        fields = ["node", "callers", "hung_up", "ended", "keys"]
    else:
        numbers = dialled_summary(cdrs)
        table = format_dialled_table(numbers)
        rows = [f.as_dict() for f in numbers]
        fields = list(rows[0]) if rows else ["number"]
    if output == "table":
        print(table)
        return EXIT_OK
    return _print_rows(rows, fields, as_json=output == "json")


def _print_evaluations(
    store: RecordStore,
    stretch: tuple[datetime, datetime],
    agents: set[str] | None,
    *,
    as_json: bool,
) -> int:
    """The scorecards made within ``stretch`` (of ``agents``' calls when given), oldest
    first, as CSV (points per criterion as one JSON object) or JSON lines; each agent's
    mean on stderr (the output stays one table)."""
    from callcenter.records.evaluations import agent_means

    found = store.fetch_evaluations_between(*stretch, agents=agents)
    rows = [e.as_dict() for e in found]
    fields = ["at", "call_id", "agent", "queue", "supervisor", "form", "points", "max_points"]
    answer = ["reply", "reply_note", "replied_at"]
    code = _print_rows(
        rows, [*fields, "percent", "passed", "scores", "comment", *answer], as_json=as_json
    )
    for mean in agent_means(found):
        print(
            f"agent {mean['agent']}: {mean['evaluations']} scored, mean "
            f"{mean['mean_percent']:g} %, {mean['passed']} passed",
            file=sys.stderr,
        )
    return code


def _print_calibration(
    store: RecordStore,
    stretch: tuple[datetime, datetime],
    agents: set[str] | None,
    *,
    as_json: bool,
) -> int:
    """The calls several supervisors scored within ``stretch``, their percents side by
    side (:func:`callcenter.records.evaluations.calibration`); the mean spread on stderr."""
    from callcenter.records.evaluations import calibration

    rows = calibration(store.fetch_evaluations_between(*stretch, agents=agents))
    code = _print_rows(rows, ["call_id", "agent", "queue", "percents", "spread"], as_json=as_json)
    if rows:
        mean = sum(float(r["spread"]) for r in rows) / len(rows)
        print(
            f"{len(rows)} call(s) scored by several supervisors, mean spread {mean:.1f} "
            "percentage points",
            file=sys.stderr,
        )
    else:
        print("no call was scored by two supervisors or more", file=sys.stderr)
    return code


def _print_adherence(
    store: RecordStore,
    config: CallCenterConfig,
    stretch: tuple[datetime, datetime],
    agents: set[str] | None,
    *,
    as_json: bool,
) -> int:
    """The scheduled agents' days within ``stretch`` (``agents`` only when given), by
    agent and day, as CSV or JSON lines (:mod:`callcenter.records.adherence`)."""
    from callcenter.acd.schedule import schedule_of
    from callcenter.records.adherence import adherence_days, agent_totals

    schedules = {
        agent_id: schedule
        for agent_id in config.agents
        if (agents is None or agent_id in agents)
        and (schedule := schedule_of(config, agent_id)) is not None
    }
    if not schedules:
        print("report: no agent has a schedule (agents.<id>.schedule)", file=sys.stderr)
        return EXIT_CONFIG
    sessions, pauses = store.fetch_shifts_between(*stretch)
    names = {agent_id: agent.name for agent_id, agent in config.agents.items()}
    days = adherence_days(schedules, sessions, pauses, *stretch, names=names)
    for total in agent_totals(days):
        percent = total["adherence_percent"]
        print(
            f"agent {total['agent']} ({total['name']}): {total['days_scheduled']} day(s) "
            f"scheduled, adherence {'-' if percent is None else f'{percent:g} %'}, late on "
            f"{total['days_late']}, absent on {total['days_absent']}",
            file=sys.stderr,
        )
    rows = [day.as_dict() for day in days]
    fields = [
        "agent",
        "name",
        "day",
        "scheduled_seconds",
        "logged_in_seconds",
        "paused_seconds",
        "adherence_percent",
        "outside_seconds",
        "late_seconds",
    ]
    return _print_rows(rows, fields, as_json=as_json)


def _add_lead(parser: argparse.ArgumentParser, args: argparse.Namespace, which: str) -> int:
    """``campaign add-lead ID --number N [--lead L] [--timezone TZ] [--data k=v,...]``."""
    if args.number is None:
        parser.error("campaign add-lead needs --number: e.g. --number 0612345678")
    body: dict[str, Any] = {"number": args.number}
    if args.lead is not None:
        body["id"] = args.lead
    if args.timezone is not None:
        body["timezone"] = args.timezone
    if args.priority is not None:
        body["priority"] = args.priority
    if args.data is not None:
        data: dict[str, str] = {}
        for item in args.data.split(","):
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                parser.error(f"--data: {item!r} is not column=value")
            data[name.strip()] = value.strip()
        body["data"] = data

    def said(answer: dict[str, Any]) -> str:
        return f"lead {answer['lead']} ({answer['number']}) added to {answer['campaign']}"

    return _api_call(args.api, "POST", f"/campaigns/{which}/leads", body, render=said)


def _bands(parser: argparse.ArgumentParser, text: str | None) -> tuple[int, ...]:
    """``--bands 15,30,60``: where the wait bands end (the default's without)."""
    from callcenter.records.waits import BANDS

    if text is None:
        return BANDS
    try:
        ends = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        ends = ()
    if not ends or any(end <= 0 for end in ends):
        parser.error("--bands: whole seconds over 0, such as 15,30,60")
    return ends


def _print_waits(
    store: RecordStore,
    stretch: tuple[datetime, datetime],
    bands: Sequence[int],
    queue: str | None,
    *,
    as_json: bool,
) -> int:
    """Each queue's callers of ``stretch`` by the band of their wait, as CSV or JSON lines
    (:mod:`callcenter.records.waits`)."""
    from callcenter.records.summary import OUTCOME_GRACE
    from callcenter.records.waits import wait_bands

    since, until = stretch
    entries = store.fetch_queue_log_between(since, until + OUTCOME_GRACE)
    chosen = {queue} if queue is not None else None
    found = wait_bands(entries, since, until, bands=bands, queues=chosen)
    if not found:
        print("report: no caller joined a queue then", file=sys.stderr)
    rows = [row for waits in found for row in waits.rows()]
    fields = ["queue", "wait", "answered", "abandoned", "exited", "answered_by_then_percent"]
    return _print_rows(rows, fields, as_json=as_json)


def _print_outcomes(
    store: RecordStore,
    stretch: tuple[datetime, datetime],
    agents: set[str] | None,
    per: str,
    *,
    as_json: bool,
) -> int:
    """The codes given within ``stretch`` counted per ``per`` (of ``agents`` only when
    given), as CSV or JSON lines (:func:`callcenter.records.dispositions.outcome_rows`)."""
    from callcenter.records.dispositions import outcome_rows

    since, until = stretch
    given = [
        r
        for r in store.fetch_dispositions_between(since, until)
        if agents is None or r.agent in agents
    ]
    rows = outcome_rows(given, per)
    if not rows:
        print("report: no call was given a code then", file=sys.stderr)
    return _print_rows(rows, [per, "code", "calls", "percent"], as_json=as_json)


def _print_audit(
    store: RecordStore, stretch: tuple[datetime, datetime], who: str | None, *, as_json: bool
) -> int:
    """The audit trail's rows within ``stretch`` (of ``who`` only when given), oldest
    first, as CSV or JSON lines (:mod:`callcenter.records.audit`)."""
    since, until = stretch
    rows = [entry.view() for entry in store.fetch_audit_between(since, until, who=who)]
    if not rows:
        print("report: nothing was asked of the API or the desktops then", file=sys.stderr)
    fields = ["at", "who", "peer", "method", "route", "status", "detail"]
    return _print_rows(rows, fields, as_json=as_json)


def _print_schedule_changes(
    store: RecordStore,
    config: CallCenterConfig,
    stretch: tuple[datetime, datetime],
    agents: set[str] | None,
    *,
    as_json: bool,
) -> int:
    """The schedule days changed while the centre ran that fall within ``stretch`` (the
    days, in the report's time zone), by day then agent, as CSV or JSON lines."""
    from datetime import timedelta

    since, until = stretch
    first, last = since.date(), (until - timedelta(microseconds=1)).date()
    names = {agent_id: agent.name for agent_id, agent in config.agents.items()}
    rows = [
        {
            "day": change.day,
            "agent": change.agent,
            "name": names.get(change.agent, ""),
            "hours": ", ".join(change.ranges()) or "off",
            "changed": change.changed.isoformat(timespec="seconds"),
            "via": change.via,
        }
        for change in sorted(store.fetch_schedule_changes(first), key=lambda c: (c.day, c.agent))
        if change.date() <= last and (agents is None or change.agent in agents)
    ]
    if not rows:
        print("report: no schedule day was changed for then", file=sys.stderr)
    fields = ["day", "agent", "name", "hours", "changed", "via"]
    return _print_rows(rows, fields, as_json=as_json)


def _print_pauses(
    store: RecordStore,
    config: CallCenterConfig,
    stretch: tuple[datetime, datetime],
    agents: set[str] | None,
    *,
    as_json: bool,
) -> int:
    """Each agent's pause time per reason within ``stretch`` (``agents`` only when given),
    as CSV or JSON lines, and each agent's totals on stderr
    (:mod:`callcenter.records.pauses`)."""
    from callcenter.records.pauses import agent_pause_totals, pause_totals

    _, paused = store.fetch_shifts_between(*stretch)
    names = {agent_id: agent.name for agent_id, agent in config.agents.items()}
    totals = pause_totals(paused, *stretch, names=names, agents=agents)
    for seen in agent_pause_totals(totals):
        each = ", ".join(f"{reason} {_duration(s)}" for reason, s in sorted(seen["by"].items()))
        print(
            f"agent {seen['agent']} ({seen['name']}): {seen['pauses']} pause(s), "
            f"{_duration(seen['seconds'])} paused: {each}",
            file=sys.stderr,
        )
    if not totals:
        print("report: no agent paused then", file=sys.stderr)
    rows = [total.as_dict() for total in totals]
    fields = [
        "agent",
        "name",
        "reason",
        "pauses",
        "paused_seconds",
        "longest_seconds",
        "mean_seconds",
        "going_on",
    ]
    return _print_rows(rows, fields, as_json=as_json)


def _print_voicemails(
    store: RecordStore,
    last: int,
    *,
    as_json: bool,
    stretch: tuple[datetime, datetime] | None = None,
    queue: str | None = None,
) -> int:
    """The newest ``last`` voicemail messages (or every one left within ``stretch``), oldest
    first, as CSV or JSON lines; ``dealt_after``: seconds from the message to its
    settling (a message still open: none); ``tries``: calls back that got nobody."""
    every = [m for m in store.fetch_voicemails() if queue is None or m.queue == queue]
    found = _newest_or_within(every, last, stretch, lambda m: m.left_at)
    rows = []
    for m in found:
        settled = m.status == "done" and m.updated is not None
        after = round((m.updated - m.left_at).total_seconds()) if settled and m.updated else None
        rows.append(
            {
                "left_at": m.left_at.isoformat(timespec="seconds"),
                "id": m.call_id,
                "queue": m.queue,
                "number": m.number,
                "name": m.name,
                "seconds": round(m.seconds, 1),
                "status": m.status,
                "outcome": m.outcome,
                "agent": m.agent,
                "dealt_after": after,
                "tries": m.tries,
            }
        )
    fields = ["left_at", "id", "queue", "number", "name", "seconds", "status", "outcome"]
    return _print_rows(rows, [*fields, "agent", "dealt_after", "tries"], as_json=as_json)


def _print_callbacks(
    store: RecordStore,
    last: int,
    *,
    as_json: bool,
    stretch: tuple[datetime, datetime] | None = None,
    queue: str | None = None,
) -> int:
    """The newest ``last`` callback requests (or every one due within ``stretch``), oldest
    first, as CSV or JSON lines; ``requested``: when it was asked for, or the time asked
    for (a later one); ``settled_after``: seconds from then to its end (answered, failed,
    expired, cancelled; still waiting: none): how well the promises were kept."""
    every = [c for c in store.fetch_queue_callbacks() if queue is None or c.queue == queue]
    found = _newest_or_within(every, last, stretch, lambda c: c.requested)
    rows = []
    for c in found:
        settled = c.status != "waiting" and c.updated is not None
        after = round((c.updated - c.requested).total_seconds()) if settled and c.updated else None
        rows.append(
            {
                "requested": c.requested.isoformat(timespec="seconds"),
                "id": c.call_id,
                "queue": c.queue,
                "number": c.number,
                "priority": c.priority,
                "status": c.status,
                "attempts": c.attempts,
                "settled_after": after,
            }
        )
    fields = ["requested", "id", "queue", "number", "priority", "status", "attempts"]
    return _print_rows(rows, [*fields, "settled_after"], as_json=as_json)


def _print_campaign(store: RecordStore, campaign: str, *, known: list[str], as_json: bool) -> int:
    """Every lead of ``campaign`` the records know, as CSV or JSON lines."""
    import csv
    import dataclasses

    rows = [dataclasses.asdict(r) for r in store.fetch_campaign_leads() if r.campaign == campaign]
    if not rows and campaign not in known:
        names = ", ".join(known) or "none in the config"
        print(f"no campaign {campaign!r} in the records (campaigns: {names})", file=sys.stderr)
        return EXIT_CONFIG
    for row in rows:
        for key in ("retry_at", "updated", "dropped_at"):
            row[key] = row[key].isoformat(timespec="seconds") if row[key] else ""
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    fields = ["campaign", "lead", "number", "status", "attempts", "result", "call_id"]
    times = ["retry_at", "updated", "dropped_at"]
    writer = csv.DictWriter(sys.stdout, [*fields, *times], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return EXIT_OK


def format_cdr_table(rows: Sequence[dict[str, Any]], extra: Sequence[tuple[str, int]] = ()) -> str:
    """A terminal table of CDR rows (the columns a supervisor reads first, then ``extra``:
    (column, width))."""
    cols = [
        ("start", 19),
        ("src", 12),
        ("dst", 6),
        ("disposition", 11),
        ("queue", 8),
        ("agent", 6),
        ("wait_seconds", 6),
        ("billsec", 7),
        ("transfer_path", 12),
        ("hung_up_by", 10),
        ("ivr_path", 40),
        *extra,
    ]
    head = " ".join(name[:w].ljust(w) for name, w in cols)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for name, w in cols:
            value = row.get(name)
            if isinstance(value, float):
                text = f"{value:.1f}"
            else:
                text = "" if value is None else str(value)
            cells.append(text[:w].ljust(w))
        lines.append(" ".join(cells))
    return "\n".join(lines)


def _dialling(answer: dict[str, Any]) -> str:
    return (
        f"agent {answer['agent']} dials {answer['number']} through queue {answer['queue']} "
        f"(dial {answer['dial_id']}): their phone rings first, unless they are on an open line"
    )


def _schedule_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``agent schedule 1001 --day D --hours 10:00-18:00 | --off | --as-planned``: change
    one day; without those, show the agent's days."""
    agent = urllib.parse.quote(args.agent, safe="")
    given = [flag for flag, on in (("--hours", args.hours is not None), ("--off", args.off),
             ("--as-planned", args.as_planned)) if on]  # fmt: skip
    if len(given) > 1:
        parser.error(f"agent schedule: one of {', '.join(given)}")
    if not given:
        query = urllib.parse.urlencode(
            {"days": args.days} | ({"since": args.day} if args.day else {})
        )
        return _api_call(
            args.api, "GET", f"/agents/{agent}/schedule?{query}", None, render=_schedule_days
        )
    if args.day is None:
        parser.error(f"agent schedule {given[0]} needs --day: e.g. --day 2026-12-08")
    hours: list[str] | None = None
    if args.hours is not None:
        hours = [part.strip() for part in args.hours.split(",") if part.strip()]
    elif args.off:
        hours = []
    body = {"day": args.day, "hours": hours}
    return _api_call(
        args.api,
        "POST",
        f"/agents/{agent}/schedule",
        body,
        render=lambda day: _schedule_days({"agent": day["agent"], "days": [day]}),
    )


def _team_schedule_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``agent schedule --team T --day D --hours H | --off | --as-planned``: that day for
    every agent of the team."""
    if args.day is None:
        parser.error("agent schedule --team needs --day: e.g. --day 2026-12-08")
    given = [args.hours is not None, args.off, args.as_planned]
    if sum(given) != 1:
        parser.error("agent schedule --team: one of --hours, --off, --as-planned")
    hours: list[str] | None = None
    if args.hours is not None:
        hours = [part.strip() for part in args.hours.split(",") if part.strip()]
    elif args.off:
        hours = []
    team = urllib.parse.quote(args.team, safe="")

    def said(answer: dict[str, Any]) -> str:
        agents = ", ".join(day["agent"] for day in answer["days"]) or "nobody"
        hours_said = ", ".join(answer["hours"]) if answer["hours"] is not None else "as planned"
        return f"team {answer['team']} on {answer['day']}: {hours_said or 'off'} ({agents})"

    body = {"day": args.day, "hours": hours}
    return _api_call(args.api, "POST", f"/teams/{team}/schedule", body, render=said)


def _schedule_days(body: dict[str, Any]) -> str:
    """An agent's days as ``GET /agents/<id>/schedule`` gives them, one line each."""
    from datetime import date

    lines = [f"agent {body['agent']}:"]
    for day in body["days"]:
        when = date.fromisoformat(day["day"])
        hours = ", ".join(day["hours"]) or "off"
        changed = f"  (changed {day['since']} via {day['via']})" if day.get("changed") else ""
        lines.append(f"  {when:%a %Y-%m-%d}  {hours}{changed}")
    return "\n".join(lines)


def _roster_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``agent add|change|remove ID`` and ``agent roster``: agents added while it runs."""
    if args.action == "roster":
        if args.agent is not None:
            parser.error("agent roster takes no agent id")
        return _api_call(args.api, "GET", "/roster", None, render=_roster_lines)
    if args.agent is None:
        parser.error(f"agent {args.action} needs the agent's id: e.g. {args.action} 1010")
    settings: dict[str, Any] = {
        key: value
        for key, value in (
            ("name", args.name),
            ("device", args.device),
            ("team", args.team),
            ("pin", args.pin),
        )
        if value is not None
    }
    if args.hot_desk:
        settings["hot_desk"] = True
    if args.skills is not None:
        settings["skills"] = _parse_skills(parser, args.skills) or {}
    agent = urllib.parse.quote(args.agent, safe="")
    if args.action == "remove":
        if settings:
            parser.error("agent remove takes only the agent's id")
        return _api_call(
            args.api,
            "POST",
            f"/roster/{agent}/remove",
            {},
            render=lambda _: f"agent {args.agent} removed",
        )
    if args.action == "add":
        if "name" not in settings or "device" not in settings:
            parser.error(
                "agent add needs --name and --device: e.g. add 1010 --name Zoe --device PJSIP/1010"
            )
        return _api_call(
            args.api, "POST", "/roster", {"agent": args.agent, **settings}, render=_roster_added
        )
    if not settings:
        parser.error("agent change needs what changes: --name, --device, --team, --pin ...")
    return _api_call(args.api, "POST", f"/roster/{agent}", settings, render=_roster_added)


def _roster_added(view: dict[str, Any]) -> str:
    return f"agent {view.get('agent')}: {_roster_line(view)}"


def _roster_line(view: dict[str, Any]) -> str:
    team = f", team {view['team']}" if view.get("team") else ""
    return (
        f"{view.get('name')} at {view.get('device')}{team}, added {view.get('since')} "
        f"({view.get('via')})"
    )


def _roster_lines(payload: dict[str, Any]) -> str:
    added = payload.get("agents", [])
    if not added:
        return "no agent added while the centre runs"
    return "\n".join(f"{view.get('agent')}: {_roster_line(view)}" for view in added)


def _parse_skills(parser: argparse.ArgumentParser, text: str | None) -> dict[str, int] | None:
    """``fr=7,billing=3`` -> {"fr": 7, "billing": 3}; ``config`` -> None (the config's)."""
    if text is None:
        parser.error("agent skills needs --skills: e.g. --skills fr=7,billing=3 (or config)")
    if text.strip() == "config":
        return None
    skills: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, eq, level = item.partition("=")
        if not eq or not level.strip().isdigit():
            parser.error(f"--skills: {item!r} is not skill=level (a level 1-10)")
        skills[name.strip()] = int(level)
    return skills


def _duration(seconds: float) -> str:
    """``45s``, ``12 min``, ``3 h 05``: a time a person reads at a glance."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60} min"
    hours, rest = divmod(whole, 3600)
    return f"{hours} h {rest // 60:02d}"


def _queue_notes(queue: Mapping[str, Any]) -> list[str]:
    notes = [f"closed: {queue['closed']}"] if queue.get("closed") else []
    if queue.get("voicemails"):
        oldest = float(queue.get("oldest_voicemail") or 0)
        notes.append(
            f"{queue['voicemails']} message(s) to call back"
            + (f", the oldest left {_duration(oldest)} ago" if oldest >= 1 else "")
        )
    today = queue.get("today") or {}
    if today.get("offered"):
        level = today.get("service_level_percent")
        notes.append(
            f"today {today['offered']} offered, {today.get('answered', 0)} answered, "
            f"{today.get('abandoned', 0)} abandoned"
            + ("" if level is None else f", {level:g} % in service level")
        )
    return notes


def _reports_line(reports: Mapping[str, Any]) -> str:
    """``Reports: read in process 4242 (1 reading), 12 read, 1 failed (last at ...: why)``."""
    where = reports.get("where", "process")
    worker = reports.get("worker")
    if where != "process":
        place = f"read on the {where}"
    elif worker is not None:
        place = f"read in process {worker}"
    else:
        place = "read in a process of their own (not running now: it starts with the next report)"
    line = f"Reports: {place}"
    if reports.get("reading"):
        line += f" ({reports['reading']} reading)"
    line += f", {reports.get('read', 0)} read, {reports.get('failed', 0)} failed"
    if reports.get("last_failure"):
        line += f" (last at {reports['last_failure']}: {reports.get('error')})"
    return line


def _left_behind_line(left: Mapping[str, Any]) -> str:
    """What an earlier daemon left behind (``/status``'s ``left_behind``) in one line, or
    nothing when it left nothing."""
    rooms = list(left.get("rooms_watched") or [])
    done = [
        f"{left.get(key)} {what}"
        for key, what in (
            ("lines_taken_back", "line(s) sent through *70 again"),
            ("dials_hung_up", "dial agent(s) hung up"),
            ("room_legs_hung_up", "stranded room leg(s) hung up"),
        )
        if left.get(key)
    ]
    if not rooms and not done:
        return ""
    watched = f"watching {', '.join(rooms)}" if rooms else "nobody left in a room"
    return "Left by an earlier daemon: " + "; ".join([watched, *done])


def format_status(status: dict[str, Any]) -> str:
    """``/status`` as a supervisor reads it: the PBX link and the records, one line per
    agent and per queue, then the calls in progress."""
    lines: list[str] = []
    drain = status.get("drain")
    if drain:
        lines.append(f"DRAINING: {format_drain(drain)}")
    for view in status.get("switches", []):
        if view.get("on"):
            lines.append(f"Switch {format_switches([view])}")
    for alert in status.get("alerts", []):
        figure = {
            "waiting": " callers waiting",
            "voicemails": " messages to call back",
            "oldest_voicemail": "s since the oldest message to call back was left",
            "expected_wait": "s of wait for a caller calling now",
        }.get(str(alert.get("figure")), "s longest wait")
        lines.append(
            f"ALERT queue {alert.get('queue')}: {alert.get('threshold'):g}{figure} or more"
        )
    for alert in status.get("agent_alerts", []):
        state = str(alert.get("figure", "")).replace("_", " ")
        reason = f" ({alert['reason']})" if alert.get("reason") else ""
        lines.append(
            f"ALERT agent {alert.get('agent')}: {state}{reason} for "
            f"{alert.get('threshold'):g} s or more"
        )
    for team in status.get("breaks", []):
        waiting = team.get("line") or []
        lines.append(
            f"Breaks team {team.get('team')}: {team.get('away')} of {team.get('max_paused')} "
            "at most" + (f", waiting: {', '.join(waiting)}" if waiting else "")
        )
    planned = status.get("scheduled")
    if planned:
        from callcenter.live.wallboard import scheduled_text

        lines.append(scheduled_text((int(planned["now"]), int(planned["logged_in"]))))
    for notice in status.get("notices", []):
        from datetime import datetime

        teams = ", ".join(notice.get("teams") or []) or "everyone"
        until = datetime.fromisoformat(str(notice["until"])).astimezone()  # this machine's
        lines.append(f"Notice for {teams} until {until:%H:%M}: {notice.get('text')}")
    pbx = status.get("pbx") or {}
    if pbx:
        if pbx.get("connected"):
            lines.append(f"PBX {pbx.get('name')}: connected since {pbx.get('since')}")
        else:
            lines.append(
                f"PBX {pbx.get('name')}: DOWN since {pbx.get('since')} ({pbx.get('reason')})"
            )
    records = status.get("records")
    if records is not None:
        if records.get("ok"):
            lines.append("Records: written")
        else:
            lines.append(
                f"Records: NOT WRITTEN since {records.get('failing_since')}, "
                f"{records.get('unwritten')} waiting in memory: {records.get('error')}"
            )
        for path in records.get("rescued_files", []):
            lines.append(f"  kept at a stop, not yet in the database: {path}")
        reports = records.get("reports")
        if reports is not None:
            lines.append(_reports_line(reports))
    left = status.get("left_behind")
    if left:
        line = _left_behind_line(left)
        if line:
            lines.append(line)
    mqtt = status.get("mqtt")
    if mqtt is not None:
        if mqtt.get("connected"):
            lines.append(f"MQTT {mqtt.get('broker')}: connected since {mqtt.get('since')}")
        else:
            lines.append(f"MQTT {mqtt.get('broker')}: not connected ({mqtt.get('error')})")
    for hook in status.get("webhooks", []):
        line = (
            f"Webhook {hook.get('name')} {hook.get('url')}: {hook.get('delivered')} delivered, "
            f"{hook.get('failed')} failed, {hook.get('dropped')} dropped, "
            f"{hook.get('waiting')} waiting"
        )
        if hook.get("last_error"):
            line += f" (last error: {hook['last_error']})"
        lines.append(line)
    lines.append("")
    agent_cols = [("agent", 8), ("name", 14), ("state", 10), ("for", 8), ("ready", 5)]
    agent_cols += [("calls", 5), ("queues", 20), ("note", 0)]
    lines.append(_row([name for name, _ in agent_cols], agent_cols))
    previews = {p.get("agent"): p for p in status.get("previews", [])}
    dialling = {d.get("agent"): d for d in status.get("dialling", [])}
    moves: dict[Any, list[str]] = {}
    for change in status.get("member_changes", []):
        verb = "joined" if change.get("member") else "left"
        if change.get("member") and change.get("paused") is not None:
            verb = f"paused ({change['paused']}) in"
        penalty = change.get("penalty")
        at = f" (penalty {penalty})" if change.get("member") and penalty is not None else ""
        moves.setdefault(change.get("agent"), []).append(
            f"{verb} {change.get('queue')}{at} since {change.get('since')} ({change.get('via')})"
        )
    for view in status.get("added_agents", []):
        moves.setdefault(view.get("agent"), []).append(
            f"added {view.get('since')} ({view.get('via')})"
        )
    for change in status.get("skill_changes", []):
        skills = ",".join(f"{k}={v}" for k, v in sorted(change.get("skills", {}).items()))
        moves.setdefault(change.get("agent"), []).append(
            f"skills {skills or 'none'} since {change.get('since')} ({change.get('via')})"
        )
    asked = status.get("schedule_requests", [])
    if asked:
        lines.append(
            f"Schedule requests waiting: {len(asked)} ("
            + ", ".join(f"{r.get('agent')} on {r.get('day')}" for r in asked)
            + ")"
        )
    added_queues = [str(view.get("queue")) for view in status.get("added_queues", [])]
    if added_queues:
        lines.append("Queues added while running: " + ", ".join(added_queues))
    for change in status.get("schedule_changes", []):
        hours = ", ".join(change.get("hours", [])) or "off"
        moves.setdefault(change.get("agent"), []).append(
            f"on {change.get('day')} {hours} since {change.get('since')} ({change.get('via')})"
        )
    for agent in status.get("agents", []):
        notes = []
        shown = previews.get(agent.get("id"))
        if shown is not None:
            notes.append(
                f"preview: lead {shown.get('lead')} ({shown.get('number')}) of campaign "
                f"{shown.get('campaign')}, {shown.get('seconds_left', 0):.0f}s left"
            )
        dial = dialling.get(agent.get("id"))
        if dial is not None:
            doing = "talking to" if dial.get("state") == "talking" else "dialling"
            notes.append(f"{doing} {dial.get('number')} (own call, through {dial.get('queue')})")
        if agent.get("hot_desking"):
            notes.append(f"at {agent.get('device')} (hot desk)")
        if agent.get("on_line"):
            notes.append("on an open line (*70)")
        if agent.get("device_reachable") is False:
            notes.append(f"phone {agent.get('device')} not registered")
        if agent.get("pause_reason"):
            notes.append(f"paused: {agent['pause_reason']}")
        if agent.get("pending_pause"):
            notes.append(f"pause after this call: {agent['pending_pause']}")
        if agent.get("logout_pending"):
            notes.append("logs out after this call")
        if agent.get("owes_disposition"):
            notes.append("owes the last call a disposition")
        if agent.get("until_ready"):
            notes.append("in wrap-up until ready (*75, agent ready)")
        if agent.get("call_id"):
            notes.append(f"call {agent['call_id']}")
        if agent.get("profile"):
            notes.append(f"works as {agent['profile']}")
        for moved in moves.get(agent.get("id"), []):
            notes.append(moved)
        cells = [
            agent.get("id"),
            agent.get("name"),
            agent.get("state"),
            f"{agent.get('time_in_state', 0):.0f}s",
            "yes" if agent.get("ready") else "no",
            agent.get("calls_taken"),
            ",".join(agent.get("queues", [])),
            "; ".join(notes),
        ]
        lines.append(_row(cells, agent_cols))
    lines.append("")
    queue_cols = [("queue", 14), ("waiting", 7), ("callbacks", 9), ("ready", 5)]
    queue_cols += [("staffed", 7), ("longest", 8), ("note", 0)]
    lines.append(_row([name for name, _ in queue_cols], queue_cols))
    for queue in status.get("queues", []):
        cells = [
            queue.get("name"),
            queue.get("waiting"),
            f"{queue.get('callbacks', 0)}"
            + (f" +{queue['callbacks_later']} later" if queue.get("callbacks_later") else ""),
            queue.get("available"),
            queue.get("staffed"),
            f"{queue.get('longest_wait', 0):.0f}s",
            "; ".join(_queue_notes(queue)),
        ]
        lines.append(_row(cells, queue_cols))
    supervisors = status.get("supervisors", [])
    if supervisors:
        lines.append("")
        sup_cols = [("supervisor", 10), ("name", 14), ("monitoring", 0)]
        lines.append(_row([name for name, _ in sup_cols], sup_cols))
        for sup in supervisors:
            watching = sup.get("monitoring")
            what = ""
            if watching:
                what = (
                    f"{watching.get('mode')} agent {watching.get('agent')} "
                    f"(call {watching.get('call_id')}, {watching.get('state')} "
                    f"{watching.get('seconds', 0):.0f}s)"
                )
            lines.append(_row([sup.get("id"), sup.get("name"), what], sup_cols))
    campaigns = status.get("campaigns", [])
    if campaigns:
        lines.append("")
        lines.append(format_campaigns(campaigns))
    calls = status.get("calls", [])
    lines.append("")
    lines.append(f"{len(calls)} call(s) in progress")
    for call in calls:
        where = " ".join(str(call.get(k) or "") for k in ("queue", "agent")).strip()
        path = call.get("path") or []
        steps = ">".join(map(str, path)) if isinstance(path, list) else str(path)
        if call.get("recording"):
            steps += "  [recording paused]" if call.get("recording_paused") else "  [recorded]"
        if call.get("on_hold"):
            steps += "  [on hold]"
        consult = call.get("consult")
        if isinstance(consult, dict):
            steps += (
                f"  [{consult.get('agent')} consulting {consult.get('to')}: "
                f"{consult.get('state')}, caller on hold {consult.get('hold_seconds', 0):.0f}s]"
            )
        lines.append(f"  {call.get('call_id')}  {where}  {steps}".rstrip())
    return "\n".join(lines)


def format_campaigns(campaigns: list[dict[str, Any]]) -> str:
    """Campaigns, one line each: state, dials under way, where the leads stand."""
    cols = [("campaign", 12), ("queue", 10), ("state", 9), ("dialing", 9), ("leads", 6)]
    cols += [("to call", 7), ("retry", 5), ("answered", 8), ("failed", 6), ("skipped", 7)]
    cols += [("note", 0)]
    lines = [_row([name for name, _ in cols], cols)]
    for c in campaigns:
        cells = [
            c.get("id"),
            c.get("queue"),
            c.get("state"),
            f"{c.get('dialing', 0)}/{c.get('lines', 0)}",
            c.get("leads"),
            c.get("pending"),
            c.get("retry"),
            c.get("answered"),
            c.get("failed"),
            c.get("skipped"),
            "; ".join(_campaign_notes(c)),
        ]
        lines.append(_row(cells, cols))
    return "\n".join(lines)


def _campaign_notes(c: Mapping[str, Any]) -> list[str]:
    """Why a campaign is in its state, and how a preview or predictive one dials."""
    notes = [str(c["why"])] if c.get("why") else []
    if c.get("mode") == "predictive":
        notes.append(
            f"predictive: {c.get('ratio', 1.0):.1f} dials per free agent, "
            f"{c.get('abandon_rate', 0.0):.1f} % dropped in 24 h ({c.get('dropped', 0)} "
            "since the start)"
        )
    elif c.get("mode") == "preview":
        notes.append("preview")
    return notes


def _row(cells: Sequence[object], cols: Sequence[tuple[str, int]]) -> str:
    parts = []
    for cell, (_, width) in zip(cells, cols, strict=True):
        text = "" if cell is None else str(cell)
        parts.append(text.ljust(width) if width else text)
    return " ".join(parts).rstrip()


def _api_token() -> str | None:
    """The control API's token (``api.token``) the daemon may ask for:
    ``CALLCENTER_API_TOKEN``, or the secrets file's."""
    from callcenter.config.settings import settings_and_issues

    settings, _ = settings_and_issues()
    return settings.api_token.get_secret_value() if settings.api_token else None


class _Refused(Exception):
    """The daemon answered with an error (its message is the exception's)."""


EVENTS_QUIET_LIMIT = 60.0
"""Seconds ``callcenter events`` waits for a line (the daemon sends a comment every 15 s)
before taking the daemon as gone."""


def _stream_request(base: str, **wanted: str | None) -> urllib.request.Request:
    """``GET /events`` with ``wanted`` (agent, queue, events) and the CLI's token."""
    query = urllib.parse.urlencode({k: v for k, v in wanted.items() if v})
    headers = {"Accept": "text/event-stream"}
    token = _api_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = base.rstrip("/") + "/events" + (f"?{query}" if query else "")
    return urllib.request.Request(url, headers=headers)


def _stream_data(response: Any) -> Iterator[str]:
    """The ``data`` of each message of an open ``GET /events`` response (comments and
    ids skipped), until the daemon ends the stream."""
    data = ""
    while raw := response.readline():
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            yield data
            data = ""


def cmd_events(
    base: str,
    *,
    agent: str | None = None,
    queue: str | None = None,
    kinds: str | None = None,
    as_json: bool = False,
    count: int | None = None,
) -> int:
    """``callcenter events``: print the daemon's events as they come (``GET /events``), one
    line each, until ``count`` of them or Ctrl-C; exit 0 then, 3 when the daemon cannot be
    reached or ends the stream."""
    request = _stream_request(base, agent=agent, queue=queue, events=kinds)
    shown = 0
    try:
        with urllib.request.urlopen(request, timeout=EVENTS_QUIET_LIMIT) as response:
            for data in _stream_data(response):
                print(data if as_json else format_event(json.loads(data)), flush=True)
                shown += 1
                if count is not None and shown >= count:
                    return 0
            print("callcenter: the daemon ended the stream", file=sys.stderr)
            return EXIT_UNREACHABLE
    except urllib.error.HTTPError as exc:
        print(f"callcenter: {_refusal(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"callcenter: cannot follow the daemon at {base}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def cmd_dial_and_wait(base: str, agent: str, body: dict[str, Any]) -> int:
    """``agent dial --wait``: follow the agent's dial events first (nothing is missed),
    then ask for the dial; print how it ended: 0 once the person answered, 1 when nobody
    was put through (busy, no answer ...), 3 when the daemon cannot be reached."""
    stream = _stream_request(base, agent=agent, events="AgentDialAnswered,AgentDialFailed")
    quoted = urllib.parse.quote(agent, safe="")
    try:
        with urllib.request.urlopen(stream, timeout=EVENTS_QUIET_LIMIT) as response:
            try:
                dial = _api_request(
                    base, "POST", f"/agents/{quoted}/dial", body, token=_api_token()
                )
            except _Refused as exc:
                print(f"callcenter: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            print(_dialling(dial), flush=True)
            for data in _stream_data(response):
                event = json.loads(data)
                if event.get("dial_id") != dial["dial_id"]:
                    continue
                if event.get("event") == "AgentDialAnswered":
                    print(f"answered: call {event.get('call_id')}")
                    return 0
                print(f"nobody put through: {event.get('reason')}")
                return EXIT_CONFIG
            print("callcenter: the daemon ended the stream", file=sys.stderr)
            return EXIT_UNREACHABLE
    except OSError as exc:
        print(f"callcenter: cannot reach the daemon at {base}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def format_event(event: Mapping[str, Any]) -> str:
    """One event of ``GET /events`` as a line: its time, name and fields (``key=value``)."""
    at = str(event.get("at", ""))
    fields = []
    for name, value in event.items():
        if name in ("event", "at") or value in (None, "", [], {}):
            continue
        shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        fields.append(f"{name}={shown}")
    return f"{at[11:23] or '-':12} {event.get('event', '?')} " + " ".join(fields)


def _api_request(
    base: str, method: str, path: str, body: dict[str, Any] | None, *, token: str | None
) -> dict[str, Any]:
    """One request to the control API; raises ``_Refused`` for an error answer and
    ``OSError`` (``URLError`` among them) when the daemon cannot be reached."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        base.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            payload: dict[str, Any] = json.loads(response.read())
            return payload
    except urllib.error.HTTPError as exc:
        raise _Refused(_refusal(exc)) from None


def _refusal(exc: urllib.error.HTTPError) -> str:
    """What the daemon said when it refused a request (its ``error``), else the reason."""
    try:
        message = json.loads(exc.read()).get("error", exc.reason)
    except (ValueError, AttributeError):
        message = exc.reason
    return str(message)


def _api_call(
    base: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    *,
    render: Callable[[dict[str, Any]], str] | None = None,
) -> int:
    try:
        payload = _api_request(base, method, path, body, token=_api_token())
    except _Refused as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"callcenter: cannot reach the daemon at {base}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(render(payload) if render is not None else json.dumps(payload, indent=2))
    return EXIT_OK


def _new_token(parser: argparse.ArgumentParser, name: str, allow: str) -> int:
    """``callcenter token new NAME --allow ...``: a token and the config lines for it."""
    import hashlib
    import re
    import secrets

    from callcenter.config.models import API_SCOPES

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", name):
        parser.error(f"token name {name!r}: letters, digits and _.- only")
    scopes = [s.strip() for s in allow.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in API_SCOPES]
    if unknown or not scopes:
        parser.error(f"--allow: one or more of {', '.join(API_SCOPES)} (not {allow!r})")
    value = secrets.token_urlsafe(32)
    digest = hashlib.sha256(value.encode()).hexdigest()
    print(f"token for {name} (give it to that client now: it is kept nowhere):")
    print(f"  {value}")
    print("config (the daemon keeps only its SHA-256; restart it to take it up):")
    print("api:")
    print("  tokens:")
    print(f"    {name}: {{sha256: {digest}, allow: [{', '.join(scopes)}]}}")
    return EXIT_OK


def _queue_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``callcenter queue callers|wait|priority|withdraw|give|add|change|remove|added``."""
    if args.action in ("add", "change", "remove", "added"):
        return _queue_roster_command(parser, args)
    if args.like is not None or args.agents is not None or args.strategy is not None:
        parser.error("--like, --agents and --strategy are for queue add / change")
    if args.settings is not None:
        parser.error("--settings is for queue add / change")
    if args.target is None:
        parser.error(f"queue {args.action} needs the queue or the caller's call id")
    where = {"queue": args.queue, "box": args.box, "flow": args.flow, "prompt": args.prompt}
    if args.action != "withdraw" and (args.to is not None or any(where.values())):
        parser.error("--to, --queue, --box, --flow and --prompt go with queue withdraw")
    target = urllib.parse.quote(args.target, safe="")
    if args.action == "wait":
        if args.value is not None:
            parser.error("queue wait takes the queue only: queue wait sales")

        def said(body: dict[str, Any]) -> str:
            text = f"{body['queue']}: {body['said']}"
            if body["open"]:
                text += (
                    f" ({body['waiting']} waiting, {body['agents_free']} of "
                    f"{body['agents_staffed']} agents free)"
                )
            elif body["opens_at"]:
                text += f" (opens {body['opens_at']})"
            return text

        return _api_call(
            args.api, "GET", f"/queues/{target}/wait", None, render=None if args.json else said
        )
    if args.action == "callers":
        if args.value is not None:
            parser.error("queue callers takes the queue only: queue callers sales")
        render = None if args.json else lambda b: format_callers(b["queue"], b["callers"])
        return _api_call(args.api, "GET", f"/queues/{target}/callers", None, render=render)
    if args.action == "priority":
        try:
            priority = int(args.value) if args.value is not None else None
        except ValueError:
            priority = None
        if priority is None:
            parser.error("queue priority needs the call id and a whole number: priority ID 5")
        return _api_call(args.api, "POST", f"/calls/{target}/priority", {"priority": priority})
    if args.action == "give":
        if args.value is None:
            parser.error("queue give needs the call id and the agent: give ID 1002")
        return _api_call(args.api, "POST", f"/calls/{target}/give", {"agent": args.value})
    if args.value is not None:
        parser.error("queue withdraw takes the call id and --to: withdraw ID --to voicemail")
    if args.to is None:
        parser.error("queue withdraw needs --to: queue, voicemail, flow, callback or hangup")
    body = {"to": args.to} | {k: v for k, v in where.items() if v is not None}
    return _api_call(args.api, "POST", f"/calls/{target}/withdraw", body)


def _queue_roster_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``queue add|change|remove|added``: queues added while the centre runs."""
    if args.action == "added":
        if args.target is not None:
            parser.error("queue added takes no queue")
        listing = None if args.json else _added_queue_lines
        return _api_call(args.api, "GET", "/queues/added", None, render=listing)
    if args.target is None:
        parser.error(f"queue {args.action} needs the queue's name: e.g. {args.action} vip")
    which = urllib.parse.quote(args.target, safe="")
    if args.action == "remove":
        if any(v is not None for v in (args.like, args.agents, args.strategy, args.settings)):
            parser.error("queue remove takes the queue only")
        return _api_call(
            args.api,
            "POST",
            f"/queues/{which}/remove",
            {},
            render=None if args.json else lambda b: f"queue {b['queue']} removed",
        )
    body: dict[str, Any] = {}
    if args.settings is not None:
        try:
            given = json.loads(args.settings)
        except ValueError as exc:
            parser.error(f"--settings: not JSON ({exc})")
        if not isinstance(given, dict):
            parser.error('--settings: a JSON object, such as {"ring_timeout": 20}')
        body.update(given)
    if args.agents is not None:
        body["agents"] = [a.strip() for a in args.agents.split(",") if a.strip()]
    if args.strategy is not None:
        body["strategy"] = args.strategy
    if args.like is not None:
        if args.action != "add":
            parser.error("--like is for queue add")
        body["like"] = args.like
    shown = None if args.json else _added_queue_line
    if args.action == "add":
        return _api_call(args.api, "POST", "/queues", {"queue": args.target, **body}, render=shown)
    if not body:
        parser.error("queue change needs what to change: --agents, --strategy or --settings")
    return _api_call(args.api, "POST", f"/queues/{which}", body, render=shown)


def _added_queue_line(view: dict[str, Any]) -> str:
    """``vip: ringall, agents 1002, 1003, supervisor 2000, added ... (api)``."""
    agents = ", ".join(view.get("agents", [])) or "none"
    supervisor = f", supervisor {view['supervisor']}" if view.get("supervisor") else ""
    strategy = view.get("strategy", "longest-idle-agent")
    return (
        f"{view.get('queue')}: {strategy}, agents {agents}{supervisor}, added "
        f"{view.get('since')} ({view.get('via')})"
    )


def _added_queue_lines(payload: dict[str, Any]) -> str:
    added = payload.get("queues", [])
    if not added:
        return "no queue added while the centre runs"
    return "\n".join(_added_queue_line(view) for view in added)


def format_callers(queue: str, callers: Sequence[Mapping[str, Any]]) -> str:
    """``queue callers``: one line per caller waiting, in queue order."""
    if not callers:
        return f"{queue}: nobody waits"
    lines = [f"{queue}: {len(callers)} waiting"]
    for c in callers:
        name = str(c.get("name") or "")
        name = "" if name.lower() == "unknown" or name == c.get("number") else name
        who = " ".join(x for x in (str(c.get("number") or ""), name) if x) or "-"
        kind = "" if c["kind"] == "caller" else f" ({c['kind']})"
        state = f", ringing {', '.join(c['agents'])}" if c["state"] == "ringing" else ""
        lines.append(
            f"  {c['position']:>3}. {c['call_id']}  {who}{kind}  waited "
            f"{_duration(float(c['waited']))}, priority {c['priority']}{state}"
        )
    return "\n".join(lines)


DRAIN_POLL = 1.0
"""Seconds between two looks at a drain's progress (``drain --wait``)."""


def cmd_drain(base: str, *, timeout: float | None, wait: bool) -> int:
    """``callcenter drain``: start (or re-time) the drain; with ``wait``, follow it until
    the daemon is gone (0), or say so when someone called it off (1)."""
    body = {} if timeout is None else {"timeout": timeout}
    started: list[dict[str, Any]] = []

    def render(payload: dict[str, Any]) -> str:
        started.append(payload["drain"])
        return format_drain(payload["drain"])

    code = _api_call(base, "POST", "/drain", body, render=render)
    if code != EXIT_OK or not wait:
        return code
    sys.stdout.flush()
    token = _api_token()
    shown = _left(started[0])
    while True:
        time.sleep(DRAIN_POLL)
        try:
            drain = _api_request(base, "GET", "/status", None, token=token).get("drain")
        except _Refused as exc:
            print(f"callcenter: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except OSError:
            print("the daemon has stopped", flush=True)
            return EXIT_OK
        if drain is None:
            print("callcenter: the drain was called off: the daemon takes calls", file=sys.stderr)
            return EXIT_CONFIG
        if _left(drain) != shown:
            shown = _left(drain)
            print(format_drain(drain), flush=True)


@dataclass(frozen=True, slots=True)
class SurveyFilter:
    """``report --surveys --agent A --team T --queue Q``: whose surveys to print."""

    agent: str | None = None
    queue: str | None = None
    team: str | None = None

    def chosen(self, config: CallCenterConfig) -> tuple[set[str] | None, str | None]:
        """(the agents, None: anyone; the queue, None: any). An agent outside the team
        (or a team nobody is in) leaves nobody: an empty report, not every survey."""
        agents: set[str] | None = None
        if self.team is not None:
            agents = team_members(config, self.team)
        if self.agent is not None:
            agents = {self.agent} if agents is None else agents & {self.agent}
        return agents, self.queue


def _no_such_team(config: CallCenterConfig, team: str) -> str:
    known = ", ".join(sorted({a.team for a in config.agents.values() if a.team})) or "none"
    return f"report: no agent is in team {team!r} (teams: {known})"


def team_members(config: CallCenterConfig, team: str) -> set[str]:
    """The ids of the agents whose ``team`` is ``team``."""
    return {aid for aid, agent in config.agents.items() if agent.team == team}


def format_number_lists(lists: list[dict[str, Any]]) -> str:
    """``callcenter numbers list``: each list, the config's numbers and those added."""
    if not lists:
        return "no number lists (ivr.number_lists)"
    out = []
    for found in lists:
        out.append(f"{found['name']}: {len(found['config'])} in the config")
        out.extend(f"  {number}" for number in found["config"])
        for entry in found["added"]:
            out.append(f"  {entry['number']}  added {entry['since']} ({entry['via']})")
    return "\n".join(out)


def format_switches(switches: list[dict[str, Any]]) -> str:
    """The switches, a line each: name, ON/off, since when and how, what it is for."""
    if not switches:
        return "no switches (ivr.switches)"
    lines = []
    for view in switches:
        state = "ON" if view.get("on") else "off"
        since = f" since {view['since']} ({view.get('via')})" if view.get("since") else ""
        lines.append(f"{view.get('name')}: {state}{since}: {view.get('description')}")
    return "\n".join(lines)


def _left(drain: dict[str, Any]) -> tuple[Any, ...]:
    return (drain.get("calls"), drain.get("dials"), tuple(drain.get("dispositions") or ()))


def format_drain(drain: dict[str, Any]) -> str:
    """A drain's progress in a line."""

    def count(key: str, word: str) -> str:
        n = drain.get(key)
        return f"{n} {word}" if n == 1 else f"{n} {word}s"

    owing = drain.get("dispositions") or []
    owed = f", a disposition from {', '.join(owing)}" if owing else ""
    return (
        f"draining since {drain.get('since')}: {count('calls', 'call')} and "
        f"{count('dials', 'dial')} left{owed}, {count('refused', 'new caller')} sent to "
        f"the failover; stops by {drain.get('stops_by')} at the latest"
    )


if __name__ == "__main__":
    raise SystemExit(main())
