"""The wallboard: ``GET /wallboard``, one HTML page for the screen on the call-centre floor.

It is rendered by the daemon (no script, no assets, nothing to install): a browser on a TV
opens ``http://<daemon>:8470/wallboard`` (``?token=`` with ``api.token``) and the page
reloads itself every ``?refresh=`` seconds (5 by default). ``?queues=sales,support`` shows
those queues and their agents only; ``?team=night`` the agents of that team and the queues
they are in (one screen per team leader).

Each queue: callers waiting and the longest wait, agents free of those present, callbacks
waiting, voicemail messages still to call back (when some queue has a ``mailbox``),
today's offered, answered, abandoned, service level and average wait
(:class:`~callcenter.live.today.Today`), and the wait of a caller calling now; a queue
whose alert stands (``queues.<q>.alerts``) is marked, a queue closed by its hours says so.
Each agent logged in: state and for how long, the pause reason, calls and talk today; an
agent whose alert stands (``acd.agent_alerts``: a break that runs over) is marked, and an
agent scheduled now but logged out (the ``absent`` alert) is listed as absent. A PBX link
that is down is said first.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from callcenter.live.today import AgentDay, QueueDay

REFRESH: Final = 5
"""Seconds between two reloads of the page, unless ``?refresh=`` says otherwise."""

STATE_NAMES: Final[Mapping[str, str]] = {
    "available": "free",
    "ringing": "ringing",
    "on_call": "on a call",
    "wrap_up": "wrap-up",
    "paused": "paused",
    "logged_out": "logged out",
}

_STYLE: Final = """
body{font-family:system-ui,sans-serif;background:#111;color:#eee;margin:1.5em;font-size:1.6vw}
h1{font-size:1.4em;margin:0 0 .6em}h1 small{color:#999;font-weight:normal}
table{border-collapse:collapse;width:100%;margin-bottom:1.2em}
th,td{padding:.25em .6em;text-align:right;border-bottom:1px solid #333}
th:first-child,td:first-child{text-align:left}th{color:#999;font-weight:normal}
tr.alert td{background:#5a1010}tr.closed td{color:#777}
.down{background:#a00;padding:.5em;margin-bottom:1em}
.notice{background:#246;padding:.5em;margin-bottom:1em;font-size:1.4em}
.available{color:#4c4}.ringing{color:#fc3}.on_call{color:#6af}.wrap_up{color:#c8f}
.paused{color:#f93}.logged_out{color:#777}
"""


@dataclass(frozen=True, slots=True)
class Board:
    """What one rendering shows (gathered by the API, rendered by :func:`render`)."""

    title: str
    now: datetime
    queues: Sequence[Mapping[str, Any]]
    """Router queue views (``Router.queue_view``)."""
    agents: Sequence[Mapping[str, Any]]
    """Router agent views of the agents shown."""
    queue_days: Mapping[str, QueueDay]
    agent_days: Mapping[str, AgentDay]
    alerts: Collection[str]
    """Queues whose alert stands."""
    closed: Mapping[str, str | None]
    pbx_down: str | None = None
    """Why the PBX link is down; None while it is up."""
    refresh: int = REFRESH
    agent_alerts: Collection[str] = ()
    """Agents whose alert stands (``acd.agent_alerts``: a break that runs over...)."""
    voicemails: Mapping[str, int] = field(default_factory=dict)
    """Queue -> voicemail messages still to call back (queues with a box only; none: no
    column)."""
    oldest_voicemails: Mapping[str, float] = field(default_factory=dict)
    waits: Mapping[str, float | None] = field(default_factory=dict)
    """Queue -> what a caller calling now would wait (``Router.wait_for_new_caller``)."""
    """Queue -> seconds since the oldest of them was left."""
    scheduled: tuple[int, int] | None = None
    """(agents shown whose schedule has them working now, of whom logged in); None when
    no agent shown has a schedule."""
    notices: Sequence[str] = ()
    """What supervisors tell the floor now (``/notices``), newest first."""


@dataclass(frozen=True, slots=True)
class Query:
    """What ``?queues=a,b&team=night&refresh=10`` asks for."""

    queues: list[str] | None = None
    """The queues to show (None: every one)."""
    team: str | None = None
    """Only the agents of this team (``agents.<id>.team``), and the queues they are in."""
    refresh: int = REFRESH


def parse_query(query: Mapping[str, list[str]]) -> Query:
    """The page's query; ValueError for a refresh that is not 1..300 seconds."""
    wanted = None
    if query.get("queues"):
        wanted = [q for part in query["queues"] for q in part.split(",") if q]
    refresh = REFRESH
    if query.get("refresh"):
        text = query["refresh"][0]
        if not text.isdigit() or not 1 <= int(text) <= 300:
            raise ValueError(f"refresh is a number of seconds from 1 to 300, not {text!r}")
        refresh = int(text)
    team = query["team"][0] if query.get("team") else None
    return Query(wanted, team, refresh)


def _wait_now(seconds: float | None, closed: str | None) -> str:
    if closed or seconds is None:
        return "-"
    return clock(seconds)


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render(board: Board) -> str:
    """The page."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{board.refresh}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(board.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(board.title)} <small>{board.now.strftime('%H:%M:%S')}</small></h1>",
    ]
    if board.pbx_down is not None:
        parts.append(f'<div class="down">PBX link down: {e(board.pbx_down)}</div>')
    for notice in board.notices:
        parts.append(f'<div class="notice">{e(notice)}</div>')
    parts.append(
        "<table><thead><tr><th>queue</th><th>waiting</th><th>longest wait</th>"
        "<th>agents free</th><th>callbacks</th>"
        + ("<th>messages</th>" if board.voicemails else "")
        + "<th>offered</th><th>answered</th>"
        "<th>abandoned</th><th>service level</th><th>average wait</th><th>wait now</th>"
        "</tr></thead><tbody>"
    )
    for view in board.queues:
        name = str(view["name"])
        day = board.queue_days.get(name) or QueueDay()
        closed = board.closed.get(name)
        classes = " ".join(
            c for c, on in (("alert", name in board.alerts), ("closed", closed)) if on
        )
        level = day.service_level_percent
        abandon = f" ({round(100 * day.abandoned / day.offered)} %)" if day.offered else ""
        average = clock(day.wait_total / day.answered) if day.answered else "-"
        label = e(name) + (f" <small>closed: {e(closed)}</small>" if closed else "")
        messages = ""
        if board.voicemails:
            count = board.voicemails.get(name)
            oldest = board.oldest_voicemails.get(name, 0.0)
            age = f" <small>oldest {clock(oldest)}</small>" if count and oldest else ""
            messages = f"<td>{'-' if count is None else count}{age}</td>"
        parts.append(
            f'<tr class="{classes}"><td>{label}</td><td>{view["waiting"]}</td>'
            f"<td>{clock(view['longest_wait'])}</td>"
            f"<td>{view['available']} / {view['staffed']}</td><td>{view['callbacks']}</td>"
            f"{messages}"
            f"<td>{day.offered}</td><td>{day.answered}</td><td>{day.abandoned}{abandon}</td>"
            f"<td>{_levels(level, day.service_level_offered_percent)}</td><td>{average}</td>"
            f"<td>{_wait_now(board.waits.get(name), closed)}</td></tr>"
        )
    parts.append("</tbody></table>")
    if board.scheduled is not None:
        parts.append(f'<p id="scheduled">{e(scheduled_text(board.scheduled))}</p>')
    parts.append(
        "<table><thead><tr><th>agent</th><th>state</th><th>for</th><th>calls today</th>"
        "<th>talk today</th><th>queues</th></tr></thead><tbody>"
    )
    for agent in board.agents:
        state = str(agent["state"])
        if state == "logged_out" and agent["id"] not in board.agent_alerts:
            continue
        figures = board.agent_days.get(str(agent["id"])) or AgentDay()
        shown = STATE_NAMES.get(state, state)
        if state == "logged_out":
            shown = "absent (scheduled)"  # a logged-out agent's alert: acd.agent_alerts.absent
        if state == "paused" and agent.get("pause_reason"):
            shown += f": {agent['pause_reason']}"
        who = agent.get("name") or agent["id"]
        row = ' class="alert"' if agent["id"] in board.agent_alerts else ""
        parts.append(
            f'<tr{row}><td>{e(str(who))}</td><td class="{e(state)}">{e(shown)}</td>'
            f"<td>{clock(float(agent['time_in_state']))}</td><td>{figures.calls}</td>"
            f"<td>{clock(figures.talk_seconds)}</td>"
            f"<td>{e(', '.join(agent['queues']))}</td></tr>"
        )
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts)


def scheduled_text(scheduled: tuple[int, int]) -> str:
    """(agents scheduled now, of whom logged in) as the floor reads it: "Scheduled now: 8,
    logged in 7, absent 1"."""
    planned, present = scheduled
    missing = f", absent {planned - present}" if present < planned else ""
    return f"Scheduled now: {planned}, logged in {present}{missing}"


def _levels(answered: float | None, offered: float | None) -> str:
    """The service level of the answered, and under it that of every caller whose wait is
    over (the report's): a queue where callers give up shows the gap."""
    if answered is None:
        return "-" if offered is None else f"- <small>{offered:g} % of offered</small>"
    return f"{answered:g} % <small>{offered:g} % of offered</small>"
