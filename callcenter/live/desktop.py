"""The agent desktop: ``/desktop``, one web page per agent with their state, their call and
what they can do about it.

An agent opens ``http://<daemon>:8470/desktop`` in a browser and signs in with their id and
PIN (``agents.<id>.pin``: an agent without a PIN cannot sign in). The page shows:

* their state and for how long (the pause reason; a pause or logout waiting for the call's
  end; a disposition the call still owes);
* the call that rings or that they talk on: the caller's number and name, the queue, how
  long the caller has been on the line, the IVR's variables (the screen pop), hold,
  recording and consultation; in wrap-up, the call just ended; while it rings or is talked
  on, the number's earlier calls (:mod:`callcenter.records.history`);
* a lead shown to them by a preview campaign, with its data (and the campaign's script);
* the call's script (``scripts``: the campaign's or the queue's), the call's variables
  filled in (:mod:`callcenter.live.scripts`);
* the queues they are in, with the callers waiting there, the longest wait and the callers
  waiting to be called back;
* today's calls and talk time, and the last ten calls they talked on today (time, number,
  queue, the call's talk, the code given, who handed it to them or whom they handed it
  to), read from the records at most every 10 s unless the agent's state changed.

And one button for each thing the state allows: log in and out of the queues, pause (a
button per ``pause_reasons`` entry), ready, hold, transfer (to the supervisor, into another
queue), consult the supervisor and hand over, join or go back, ask for help, record, pause
the recording, hang up, give the disposition (a button per code), dial or skip a preview,
join or leave the queues open to agents (those with ``digits``, which ``*45`` joins from a
phone; the others are the supervisors' to change). What needs typing (a number to dial, a
callback code's time, a note, the phone a ``hot_desk`` agent logs in at) has a page of
its own: the desktop reloads itself every few seconds (``?refresh=``), which would wipe a
half-typed field.

Supervisors sign in on the same page (``/desktop?as=supervisor``, their id and
``supervisors.<id>.pin``) and see what they monitor (switch to whisper or barge, take the call
over, stop), the agents of their ``teams`` (every agent without teams) with their state and
the number they talk to, a button to listen, whisper or barge in on each call, one to make
a paused agent ready (an automatic pause after missed calls, say), one to log an agent
out, one to their queues (``/desktop/agent?id=``: put them in a queue or take them out)
and one to their calls of the day (``/desktop/calls?agent=``: the recorded ones play there,
``/desktop/recording?call=``, for the supervisors of an agent on the call), the queues
those agents work with today's figures, and the callers waiting in them (the first ten of
each queue): a button raises one's priority, another opens their page
(``/desktop/caller?id=``: put them through to a free agent of the supervisor's teams, send
them to another queue, the queue's voicemail box or a callback, or first in line).

Rendered by the daemon as the wallboard is: no script, no assets. Each button posts a form
to ``/desktop/act``; the answer sends the browser back to ``/desktop``, where what happened
(or why it could not) is said once, on top.

Signing in gives a cookie (``HttpOnly``, ``SameSite=Strict``, ``Path=/desktop``) signed with
a key the daemon draws at start, valid for ``api.desktop_session_hours``: a restart signs
everyone out, a PIN changed by a reload ends that agent's sessions (the PIN is in the
signature), and signing out on one browser ends the agent's sessions on all.
:class:`SignInGuard` stops PIN guessing, counting per client address: five wrong PINs for
one agent within five minutes refuse that agent's sign-in from that address until the first
of them is five minutes old; fifty wrong tries from one address within a minute, for
whoever, refuse every sign-in from it for that minute. (Behind a proxy every browser has
the proxy's address: the counts are then the whole site's.) A form posted from
another site's page (its ``Origin`` is not this server's) is refused with 403, and the pages
may not be framed.

The desktop needs no ``api.token`` (the PIN is its key); ``api.desktop: false`` turns it off.
Between machines, the PIN and the cookie cross the network in clear unless a TLS proxy fronts
the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import secrets
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Final
from urllib.parse import quote

from callcenter.acd.router import AUTOPAUSE_VIA
from callcenter.ivr.values import TRANSFER_NOTE
from callcenter.live.notices import MAX_TEXT
from callcenter.live.scripts import FilledScript
from callcenter.live.today import AgentDay, QueueDay
from callcenter.live.wallboard import STATE_NAMES, clock, scheduled_text
from callcenter.records.evaluations import Evaluation
from callcenter.records.forecast import pace_said
from callcenter.records.pauses import PauseTotal
from callcenter.records.voicemails import VoicemailMessage

REFRESH: Final = 3
CALLS_SHOWN: Final = 10
"""Today's calls an agent's desktop lists, newest first."""
"""Seconds between two reloads of the desktop, unless ``?refresh=`` says otherwise."""
COOKIE: Final = "cc_desktop"
PIN_TRIES: Final = 5
"""Wrong PINs for one agent within :data:`PIN_WINDOW` before that agent's sign-in waits."""
PIN_WINDOW: Final = 300.0
ALL_TRIES: Final = 50
"""Wrong tries within :data:`ALL_WINDOW`, whichever agents they named, before every sign-in
waits (someone is going through the agents)."""
ALL_WINDOW: Final = 60.0
MESSAGES_SHOWN: Final = 10
"""Voicemail messages listed on an agent's page (theirs first, then the oldest)."""
ACTIONS: Final = frozenset(
    {
        "login",
        "logout",
        "pause",
        "unpause",
        "ready",
        "hold",
        "unhold",
        "transfer",
        "consult",
        "consult-complete",
        "consult-join",
        "consult-cancel",
        "help",
        "record",
        "pause-recording",
        "resume-recording",
        "hangup",
        "disposition",
        "dial",
        "preview-dial",
        "preview-skip",
        "join",
        "leave",
        "block",
        "unblock",
    }
)
"""The agent actions of the control API (``POST /agents/{id}/<action>``) the desktop's
forms may post; their other fields (reason, code, at, number, queue, to) are the body."""
FIELDS: Final = frozenset({"reason", "code", "at", "note", "number", "queue", "to", "device"})
SUPERVISOR_ACTIONS: Final = frozenset({"listen", "whisper", "barge", "stop", "takeover"})
"""The supervisor actions of the control API (``POST /supervisors/{id}/<action>``) the
supervisor's desktop posts (``agent``: whom to monitor)."""
NOTICE_TIMES: Final = ((15, "15 minutes"), (30, "30 minutes"), (60, "an hour"),
                       (120, "2 hours"), (240, "4 hours"), (480, "the day (8 hours)"))  # fmt: skip
"""How long a supervisor's notice may stand, as the notice page offers it."""
AGENT_ACTIONS_OF_SUPERVISORS: Final = frozenset(
    {
        "logout-agent",
        "pause-agent",
        "unpause-agent",
        "join-agent",
        "leave-agent",
        "profile-agent",
        "break-place-agent",
    }
)
"""What a supervisor's desktop does to an agent of their teams (``agent``; ``queue`` for
joining and leaving one, ``reason`` for a pause, ``profile`` for a profile; a break place
moves one waiting for a break to the front of the line)."""
CALLER_ACTIONS_OF_SUPERVISORS: Final = frozenset({"priority-caller", "give-caller", "send-caller"})
"""What a supervisor's desktop does to a caller waiting in their agents' queues
(``caller``: the call id; ``priority``; ``agent`` to give them to; ``to`` and ``queue`` or
``box`` to send them to)."""
WAITING_SHOWN: Final = 10
"""Callers shown per queue in a supervisor's "Waiting" list (the first in line)."""

_STYLE: Final = """
body{font-family:system-ui,sans-serif;background:#f4f4f6;color:#222;margin:1em auto;
max-width:60em;padding:0 1em}
h1{font-size:1.3em;margin:.2em 0 .6em}h1 small{color:#777;font-weight:normal}
h2{font-size:1em;color:#555;margin:1.2em 0 .4em}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:.6em 0}
table{border-collapse:collapse}th,td{padding:.15em .8em .15em 0;text-align:left}
th{color:#777;font-weight:normal}
form{display:inline-block;margin:.2em .3em .2em 0}
button{font-size:1em;padding:.4em .9em;border-radius:4px;border:1px solid #888;background:#fff;
cursor:pointer}button.main{background:#2a6;color:#fff;border-color:#2a6}
button.warn{background:#c33;color:#fff;border-color:#c33}
input,select{font-size:1em;padding:.3em}
.said{background:#e6f4ea;border:1px solid #2a6;padding:.5em;border-radius:4px}
.error{background:#fce8e6;border:1px solid #c33;padding:.5em;border-radius:4px}
.down{background:#c33;color:#fff;padding:.5em;border-radius:4px}
.notice{background:#fff4c2;border-left:4px solid #c90;padding:.4em .6em;margin:.3em 0}
.state{font-weight:bold}.available{color:#2a6}.ringing{color:#b80}.on_call{color:#26c}
.wrap_up{color:#85c}.paused{color:#d60}.logged_out{color:#777}
td.short{color:#c33;font-weight:bold}
"""


# -- sessions and guessing ---------------------------------------------------------------


class DesktopSessions:
    """Signed session cookies: ``<agent, base64>.<signed in at, unix ms>.<HMAC-SHA256>``,
    the HMAC over the agent, the time and the agent's PIN with this daemon's key. Signing
    out (:meth:`sign_out`) ends every session of that agent signed in before it."""

    def __init__(
        self,
        hours: float,
        *,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seconds = int(hours * 3600)
        self._key = key if key is not None else secrets.token_bytes(32)
        self._clock = clock
        self._signed_out: dict[str, int] = {}

    def issue(self, agent: str, pin: str) -> str:
        """The cookie value that signs ``agent`` in for :attr:`seconds` from now."""
        at = self._now_ms()
        name = base64.urlsafe_b64encode(agent.encode()).decode().rstrip("=")
        return f"{name}.{at}.{self._sign(agent, at, pin)}"

    def signed_in(self, value: str, pins: Mapping[str, str | None]) -> str | None:
        """Who ``value`` signs in (``pins``: who -> PIN now), or None: forged, expired,
        signed out since, someone since removed, a PIN since changed."""
        name, _, rest = value.partition(".")
        at_text, _, signature = rest.partition(".")
        if not at_text.isdigit() or len(at_text) > 16 or not signature:
            return None
        try:
            agent = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (binascii.Error, ValueError):
            return None
        pin = pins.get(agent)
        at = int(at_text)
        if pin is None or at + self.seconds * 1000 < self._now_ms():
            return None
        if at < self._signed_out.get(agent, 0):
            return None
        if not hmac.compare_digest(signature, self._sign(agent, at, pin)):
            return None
        return agent

    def sign_out(self, agent: str) -> None:
        """End the sessions of ``agent`` (every browser they signed in on)."""
        self._signed_out[agent] = self._now_ms() + 1

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _sign(self, agent: str, at: int, pin: str) -> str:
        message = f"{agent}\x00{at}\x00{pin}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


class SignInGuard:
    """Counts wrong PINs per client address (see the module doc): :meth:`wait` says how
    long a sign-in for an agent from an address must wait, :meth:`failed` and
    :meth:`succeeded` record the outcome of one. Counted per address, someone guessing
    from one machine cannot keep agents on others from signing in."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}

    def wait(self, agent: str, address: str = "") -> float:
        """Seconds before a sign-in for ``agent`` from ``address`` is tried (0: now)."""
        now = self._clock()
        waits = [0.0]
        everyone = self._recent(self._by_address, address, now - ALL_WINDOW)
        if len(everyone) >= ALL_TRIES:
            waits.append(everyone[0] + ALL_WINDOW - now)
        mine = self._recent(self._failures, (agent, address), now - PIN_WINDOW)
        if len(mine) >= PIN_TRIES:
            waits.append(mine[0] + PIN_WINDOW - now)
        return max(waits)

    def failed(self, agent: str, address: str = "") -> None:
        now = self._clock()
        self._by_address.setdefault(address, deque()).append(now)
        self._failures.setdefault((agent, address), deque()).append(now)
        _keep_newest(self._failures)
        _keep_newest(self._by_address)

    def succeeded(self, agent: str, address: str = "") -> None:
        self._failures.pop((agent, address), None)

    @staticmethod
    def _recent(counted: dict[Any, deque[float]], key: object, cutoff: float) -> deque[float]:
        times = counted.get(key)
        if times is None:
            return deque()
        _drop_before(times, cutoff)
        if not times:
            del counted[key]
        return times


def _keep_newest(counted: dict[Any, deque[float]]) -> None:
    if len(counted) > 10_000:
        # Made-up agent ids or addresses by the thousand: the older half goes.
        for stale in list(counted)[:5_000]:
            del counted[stale]


def _drop_before(times: deque[float], cutoff: float) -> None:
    while times and times[0] <= cutoff:
        times.popleft()


# -- what one page shows -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallShown:
    """The call on the desktop: the one ringing or talked on, or else the last one (what a
    disposition goes to)."""

    number: str
    name: str = ""
    queue: str | None = None
    call_id: str = ""
    on_line_seconds: float | None = None
    """Since the caller's call reached the daemon (None: the call is over)."""
    talk_seconds: float | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    on_hold: bool = False
    recording: bool = False
    recording_paused: bool = False
    consult: Mapping[str, Any] | None = None
    """:func:`callcenter.consult.consult_view`: ``to``, ``state``."""
    link: str = ""
    """The caller's page in the CRM (``screen_pop``), "" when none."""
    script: FilledScript | None = None
    """The call's script (``scripts``), filled in; None when its queue has none."""


@dataclass(frozen=True, slots=True)
class Desktop:
    """What one rendering of an agent's desktop shows (gathered by the API)."""

    title: str
    now: datetime
    agent: Mapping[str, Any]
    """The router's agent view (``Router.agent_view``)."""
    queues: Sequence[Mapping[str, Any]]
    """Router queue views of the agent's queues."""
    day: AgentDay
    pause_reasons: Sequence[str]
    dispositions: Mapping[str, bool]
    """Code -> whether it is a callback code (asks for a time)."""
    transfer_queues: Sequence[str]
    """Queues a caller may be transferred into (every queue but the call's)."""
    call: CallShown | None = None
    preview: Mapping[str, Any] | None = None
    """The lead a preview campaign shows the agent (``Switchboard.previews``)."""
    preview_script: FilledScript | None = None
    """The script of that lead's campaign, its columns filled in."""
    can_dial: bool = False
    """Agents may dial numbers themselves (``acd.dial_out``)."""
    hot_desk: bool = False
    """The agent may log in at any phone (``agents.<id>.hot_desk``)."""
    pbx_down: str | None = None
    said: str = ""
    error: str = ""
    refresh: int = REFRESH
    calls: Sequence[Mapping[str, Any]] = ()
    """Today's calls the agent talked on, newest first (``RecordStore.fetch_agent_calls``,
    ``start`` in the centre's time zone)."""
    open_queues: Sequence[str] = ()
    """Queues agents join and leave themselves (those with ``digits``, as by ``*45``)."""
    messages: Sequence[VoicemailMessage] = ()
    """Voicemail messages of the agent's queues still to call back, oldest first."""
    over: float | None = None
    """Seconds ``acd.agent_alerts`` allows the state they are in, once they are over it
    (their supervisors are told); None: not over."""
    scores: bool = False
    """Calls are scored here (``evaluation_forms``): a link to the agent's scores."""
    history: Sequence[Mapping[str, Any]] = ()
    """Earlier calls of the number of ``call``, newest first
    (:func:`callcenter.records.history.earlier_call`)."""
    promised: Sequence[Mapping[str, Any]] = ()
    """The callbacks the agent promised (a callback code's time), not yet due: ``number``,
    ``queue``, ``at`` (in the centre's time zone)."""
    notices: Sequence[NoticeShown] = ()
    """What their supervisors tell them now, newest first."""
    schedule: str | None = None
    """Their schedule today (``agents.<id>.schedule``), such as ``08:00-12:00,
    13:00-17:00`` ("" on a day off); None: they have none."""
    adherence: float | None = None
    """Their adherence so far today (percent), once something was scheduled; None: none."""
    pauses: Sequence[PauseTotal] = ()
    """Their pauses so far today, per reason (read from the records every 10 s at most)."""
    requests: Sequence[Mapping[str, Any]] = ()
    """Their requests for a day of their schedule waiting for an answer."""
    answers: Sequence[Mapping[str, Any]] = ()
    """The answers to their latest requests (days not gone by), newest first."""
    noted: Collection[str] = ()
    """The codes that need a note (``note_required``): their buttons open the note page."""
    can_block: bool = False
    """Agents may put a caller on the block list (``acd.agent_block_list``)."""
    blocked: bool = False
    """They put the number of their call (or last call) on the block list: the page offers
    to take it off."""
    codes: Mapping[str, int] = field(default_factory=dict)
    """The codes they gave today, code -> calls (read from the records every 10 s at most)."""
    breaks: tuple[int, int] | None = None
    """(their team's agents on a break, ``max_paused``) when the team has a break limit."""
    break_line: int | None = None
    """Their place in their team's line for a break (``break_line``; 1: next), None when
    not waiting for one."""


@dataclass(frozen=True, slots=True)
class SupervisorDesk:
    """What one rendering of a supervisor's desktop shows (gathered by the API)."""

    title: str
    now: datetime
    supervisor: str
    name: str
    device: str
    agents: Sequence[Mapping[str, Any]]
    """Router agent views of the agents of their teams (every agent without teams)."""
    callers: Mapping[str, str]
    """Agent -> the number of the person they talk to."""
    queues: Sequence[Mapping[str, Any]]
    """Router queue views of the queues those agents are in."""
    queue_days: Mapping[str, QueueDay]
    agent_days: Mapping[str, AgentDay]
    monitoring: Mapping[str, Any] | None
    """``Monitor.as_dict``: ``agent``, ``mode``, ``state``, ``seconds``; None: none."""
    alerts: Collection[str] = ()
    agent_alerts: Collection[str] = ()
    """Agents whose alert stands (``acd.agent_alerts``): marked with ⚠ over their time."""
    waits: Mapping[str, float | None] = field(default_factory=dict)
    """Queue -> what a caller calling now would wait (``Router.wait_for_new_caller``)."""
    breaks: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Team -> (agents on a break or about to be, ``max_paused``), for their teams with a
    break limit."""
    break_lines: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    """Team -> (agent id, name) of its agents waiting for a break, first first
    (``break_line``)."""
    messages: Sequence[VoicemailMessage] = ()
    """Voicemail messages of their queues still to call back, oldest first."""
    notices: Sequence[NoticeShown] = ()
    """The notices their agents see, newest first (theirs to take down)."""
    waiting: Sequence[Mapping[str, Any]] = ()
    """Callers on the line waiting in those queues (``Switchboard.queue_callers`` rows
    with their ``queue``), the first WAITING_SHOWN of each queue in line order."""
    scheduled: tuple[int, int] | None = None
    """(their agents scheduled now, of whom logged in); None: no schedules."""
    scored: Mapping[str, int] = field(default_factory=dict)
    """Agent -> their calls scored within their ``evaluation_target.days``."""
    targets: Mapping[str, int] = field(default_factory=dict)
    """Agent -> their ``evaluation_target.per_agent`` (their team's, else the config's): a
    "scored" column and "Pick a call …" for them; empty: no column."""
    adherence: Mapping[str, float | None] = field(default_factory=dict)
    """Agent -> adherence so far today (percent; None: nothing scheduled yet), for the
    agents with a schedule: an "adherence" column when any."""
    disputed: Sequence[Evaluation] = ()
    """The supervisor's scorecards their agents disputed lately, newest first."""
    requests: Sequence[Mapping[str, Any]] = ()
    """Their agents' requests for a day of their schedule waiting for an answer, oldest
    first (``Roster.schedule_request_views``)."""
    changed_days: Sequence[Mapping[str, Any]] = ()
    """Their agents' schedule days changed from today on (who is off, who works other
    hours), by day (``Roster.schedule_change_views``)."""
    pbx_down: str | None = None
    said: str = ""
    error: str = ""
    refresh: int = REFRESH


@dataclass(frozen=True, slots=True)
class NoticeShown:
    """One notice as a desktop shows it."""

    id: str
    text: str
    author: str
    """Who posted it, as people know them (the supervisor's name)."""
    until: str
    """``HH:MM`` in the centre's time zone."""
    teams: tuple[str, ...] = ()
    read: str = ""
    """A message to agents, for its supervisor: who read it when, or that nobody has."""


def _notices_section(notices: Sequence[NoticeShown], *, take_down: bool = False) -> str:
    if not notices:
        return ""
    rows = []
    for notice in notices:
        to = f" to {', '.join(notice.teams)}" if notice.teams and take_down else ""
        act = button("notice-take-down", "Take down", id=notice.id) if take_down else ""
        read = f"; {notice.read}" if notice.read and take_down else ""
        rows.append(
            f'<p class="notice">{_e(notice.text)} <small>{_e(notice.author)}{_e(to)}, '
            f"until {_e(notice.until)}{_e(read)}</small>{act}</p>"
        )
    return f'<section id="notices" role="status">{"".join(rows)}</section>'


# -- rendering ---------------------------------------------------------------------------

_e = html.escape


def _head(title: str, refresh: int | None = None) -> list[str]:
    reload = f'<meta http-equiv="refresh" content="{refresh};url=/desktop?refresh={refresh}">'
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        reload if refresh is not None else "",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
    ]


def button(action: str, label: str, css: str = "", **fields: str) -> str:
    """One button: a form posting ``action`` and ``fields`` to ``/desktop/act``."""
    hidden = "".join(
        f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">'
        for k, v in {"action": action, **fields}.items()
    )
    css_attr = f' class="{css}"' if css else ""
    return (
        f'<form method="post" action="/desktop/act">{hidden}'
        f"<button{css_attr}>{_e(label)}</button></form>"
    )


def _notes(said: str, error: str) -> list[str]:
    parts = []
    if said:
        parts.append(f'<p class="said" role="status">{_e(said)}</p>')
    if error:
        parts.append(f'<p class="error" role="alert">{_e(error)}</p>')
    return parts


def _top(desk: Desktop | SupervisorDesk, who: str, small: str) -> list[str]:
    """The start of a desktop page: who it is for, a PBX link that is down, the notes. The
    browser tab's title says what needs the agent (a call ringing, messages to call back)
    or the supervisor (alerts standing): the page is often behind another one."""
    title = desk.title
    if isinstance(desk, Desktop):
        waiting = [m for m in desk.messages if m.status == "waiting"]
        if waiting:
            title = f"({len(waiting)}) {title}"
        if desk.agent.get("state") == "ringing":
            title = f"Ringing · {title}"
    else:
        standing = len(desk.alerts) + len(desk.agent_alerts)
        if standing:
            title = f"⚠ {standing} · {title}"
    parts = _head(title, desk.refresh)
    parts.append(f"<h1>{_e(who)} <small>{_e(small)}</small></h1>")
    if desk.pbx_down is not None:
        parts.append(f'<p class="down">PBX link down: {_e(desk.pbx_down)}</p>')
    return parts + _notes(desk.said, desk.error)


def render_sign_in(title: str, *, role: str = "agent", person: str = "", error: str = "") -> str:
    """The sign-in page of agents (``role`` ``agent``) or supervisors (``person``: the id
    typed before, kept in its field)."""
    parts = _head(title)
    heading = "supervisor desktop" if role == "supervisor" else "agent desktop"
    parts.append(f"<h1>{_e(title)} <small>{heading}</small></h1>")
    parts += _notes("", error)
    other = (
        '<a href="/desktop">Agents sign in here</a>'
        if role == "supervisor"
        else '<a href="/desktop?as=supervisor">Supervisors sign in here</a>'
    )
    parts.append(
        '<section><form method="post" action="/desktop/sign-in">'
        f'<input type="hidden" name="role" value="{_e(role)}">'
        f'<label>{role.capitalize()} <input name="id" autocomplete="username" required '
        f'value="{_e(person)}" size="8"></label> '
        '<label>PIN <input name="pin" type="password" inputmode="numeric" '
        'autocomplete="current-password" required size="6"></label> '
        f'<button class="main">Sign in</button></form><p><small>{other}</small></p>'
        "</section></body></html>"
    )
    return "\n".join(parts)


def render_error(title: str, message: str) -> str:
    """A page saying what went wrong, with the way back."""
    parts = _head(title)
    parts.append(f"<h1>{_e(title)}</h1>")
    parts += _notes("", message)
    parts.append('<p><a href="/desktop">Back to the desktop</a></p></body></html>')
    return "\n".join(parts)


def render(desk: Desktop) -> str:
    """The agent's desktop."""
    agent = desk.agent
    state = str(agent["state"])
    who = agent.get("name") or agent["id"]
    small = f"agent {agent['id']} · {desk.now.strftime('%H:%M:%S')}"
    parts = _top(desk, str(who), small)
    parts.append(_notices_section(desk.notices))
    parts.append(_state_section(desk, state))
    if desk.preview is not None:
        parts.append(_preview_section(desk.preview))
        if desk.preview_script is not None:
            parts.append(script_section(desk.preview_script))
    if desk.call is not None:
        parts.append(_call_section(desk, state, desk.call))
        if desk.call.script is not None and desk.call.on_line_seconds is not None:
            parts.append(script_section(desk.call.script))
        if desk.history:
            parts.append(_history_section(desk.history, desk.now))
    parts.append(_actions_section(desk, state))
    parts.append(_queues_section(desk))
    if desk.messages:
        parts.append(_messages_section(desk))
    if desk.promised:
        parts.append(_promised_section(desk.promised, desk.now))
    if desk.calls:
        parts.append(_calls_section(desk.calls))
    if desk.scores:
        parts.append(
            '<p><form method="get" action="/desktop/scores"><button>My quality scores …'
            "</button></form></p>"
        )
    if desk.schedule is not None:
        parts.append(
            '<p><form method="get" action="/desktop/schedule"><button>My schedule …'
            '</button></form> <form method="get" action="/desktop/ask-schedule">'
            "<button>Ask for another day …</button></form></p>"
        )
    if desk.requests:
        waiting = "".join(
            f"<li>{_e(_day_label(str(r['day'])))}: {_e(', '.join(r['hours']) or 'a day off')} "
            + button("withdraw-request", "Withdraw", "", request=str(r["id"]))
            + "</li>"
            for r in desk.requests
        )
        parts.append(
            f'<div id="requests"><small>Waiting for an answer:</small><ul>{waiting}</ul></div>'
        )
    if desk.answers:
        told = "; ".join(
            f"{_day_label(str(a['day']))}, {', '.join(a['hours']) or 'a day off'}: {a['status']}"
            for a in desk.answers
        )
        parts.append(f'<p><small id="answers">Answered: {_e(told)}</small></p>')
    parts.append(
        '<p><form method="post" action="/desktop/sign-out"><button>Sign out of this page'
        "</button></form> <small>(signing out of the page leaves you logged in to the "
        "queues)</small></p></body></html>"
    )
    return "\n".join(parts)


def _autopaused_why(agent: Mapping[str, Any], desk: Desktop) -> str:
    """What an agent paused by autopause is told, by the kind of failed offers that did it."""
    reason = agent.get("pause_reason")
    if reason == "busy":
        why = "calls were offered and your phone was busy or could not be reached"
    elif reason == "rejected":
        why = "calls were offered and your phone declined them (do not disturb?)"
    else:
        why = f"calls rang on your phone and nobody answered ({desk.day.missed} missed today)"
    return f"Paused for you: {why}. Press Ready once you are back."


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _state_section(desk: Desktop, state: str) -> str:
    agent = desk.agent
    shown = STATE_NAMES.get(state, state)
    if state == "paused" and agent.get("pause_reason"):
        shown += f": {agent['pause_reason']}"
    lines = [
        f'<section><span class="state {_e(state)}" id="state">{_e(shown)}</span> '
        f"for {clock(float(agent['time_in_state']))}"
    ]
    if state == "paused" and agent.get("pause_via") == AUTOPAUSE_VIA:
        lines.append(f'<br><strong id="missed">{_e(_autopaused_why(agent, desk))}</strong>')
    if agent.get("pending_pause"):
        lines.append(f"<br>Pause ({_e(str(agent['pending_pause']))}) once this call is over")
    if agent.get("logout_pending"):
        lines.append("<br>Logged out once this call is over")
    if agent.get("owes_disposition"):
        lines.append("<br><strong>This call still needs its disposition.</strong>")
    if desk.over is not None and state == "logged_out":
        lines.append(
            '<br><strong id="over">Your schedule says you work now: your supervisors see '
            "you are not logged in.</strong>"
        )
    elif desk.over is not None:
        lines.append(
            f'<br><strong id="over">Over the {clock(desk.over)} allowed: your supervisors '
            "see it.</strong>"
        )
    if state != "logged_out" and not agent.get("device_reachable", True):
        lines.append(f"<br>Your phone ({_e(str(agent['device']))}) cannot be reached")
    day = desk.day
    lines.append(
        f"<br><small>Today: {day.calls} call{'' if day.calls == 1 else 's'}, "
        f"talk {clock(day.talk_seconds)}, paused {clock(day.paused_seconds)}</small>"
    )
    if desk.pauses:
        lines.append(f'<br><small id="pauses">Pauses today: {_e(pauses_said(desk.pauses))}</small>')
    if desk.breaks is not None:
        away, limit = desk.breaks
        lines.append(
            f'<br><small id="team-breaks">Your team on a break: {away} of {limit} at most</small>'
        )
    if desk.break_line is not None:
        lines.append(
            f'<br><strong id="break-line">In line for a break: {_ordinal(desk.break_line)}. '
            "It starts when one of your team is back.</strong>"
        )
    if desk.codes:
        given = ", ".join(
            f"{code} {calls}"
            for code, calls in sorted(desk.codes.items(), key=lambda c: (-c[1], c[0]))
        )
        lines.append(f'<br><small id="codes">Codes today: {_e(given)}</small>')
    if desk.schedule is not None:
        planned = desk.schedule or "a day off"
        kept = f" (adherence so far: {desk.adherence:g} %)" if desk.adherence is not None else ""
        lines.append(f'<br><small id="schedule">Your schedule today: {_e(planned)}{kept}</small>')
    lines.append("</section>")
    return "".join(lines)


def _call_section(desk: Desktop, state: str, call: CallShown) -> str:
    heading = "Last call" if call.on_line_seconds is None else "Ringing"
    if state == "on_call" and call.on_line_seconds is not None:
        heading = "Call"
    rows = [("Number", call.number or "unknown")]
    if call.name and call.name != call.number and call.name.strip("<>") != "unknown":
        rows.append(("Name", call.name))
    if call.queue:
        rows.append(("Queue", call.queue))
    if call.on_line_seconds is not None:
        rows.append(("On the line", clock(call.on_line_seconds)))
    if call.talk_seconds is not None:
        rows.append(("Talking", clock(call.talk_seconds)))
    if call.on_hold:
        rows.append(("Hold", "the caller is on hold"))
    if call.recording:
        rows.append(("Recording", "paused" if call.recording_paused else "on"))
    if call.consult is not None:
        rows.append(("Consulting", f"{call.consult.get('to')} ({call.consult.get('state')})"))
    note = call.variables.get(TRANSFER_NOTE)
    if note:
        rows.insert(1, ("Note", note))  # what the colleague who handed the call on said
    for name, value in call.variables.items():
        if name != TRANSFER_NOTE:
            rows.append((name, value))
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(str(v))}</td></tr>" for k, v in rows)
    link = ""
    if call.link:
        link = (
            f'<p><a id="screen-pop" href="{_e(call.link)}" target="_blank" '
            'rel="noopener noreferrer">Open the caller\'s record</a></p>'
        )
    return f'<section id="call"><h2>{heading}</h2><table>{cells}</table>{link}</section>'


def _history_section(calls: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """The caller's earlier calls: when, which way, the queue, who took it, the outcome,
    the talk and the code given with its note."""
    rows = []
    for call in calls:
        try:
            at = datetime.fromisoformat(str(call["start"])).astimezone(now.tzinfo)
            when = at.strftime("%H:%M") if at.date() == now.date() else at.strftime("%d %b %H:%M")
        except ValueError:
            when = str(call["start"])
        outcome = str(call["outcome"])
        if call["agent"]:
            outcome = f"{call['agent']}, talked {clock(float(call['talk_seconds']))}"
        coded = " · ".join(str(x) for x in (call.get("code"), call.get("note")) if x)
        way = "called us" if call["direction"] == "in" else "we called"
        rows.append(
            f"<tr><td>{_e(when)}</td><td>{way}</td><td>{_e(str(call['queue'] or '-'))}</td>"
            f"<td>{_e(outcome)}</td><td>{_e(coded)}</td></tr>"
        )
    return (
        '<section id="history"><h2>Earlier calls of this number</h2><table>'
        + "".join(rows)
        + "</table></section>"
    )


def script_section(script: FilledScript) -> str:
    """The call's script: paragraphs at blank lines, lines starting with "- " as a list's
    points, the other line breaks kept."""
    blocks = []
    for block in (b for b in script.text.split("\n\n") if b.strip()):
        lines = [line.rstrip() for line in block.strip("\n").splitlines()]
        if all(line.lstrip().startswith("- ") for line in lines if line.strip()):
            points = "".join(f"<li>{_e(line.lstrip()[2:])}</li>" for line in lines if line.strip())
            blocks.append(f"<ul>{points}</ul>")
        else:
            blocks.append("<p>" + "<br>".join(_e(line) for line in lines) + "</p>")
    missing = ""
    if script.missing:
        missing = (
            f'<p><small id="script-missing">Not known for this call: '
            f"{_e(', '.join(script.missing))}</small></p>"
        )
    return f'<section id="script"><h2>{_e(script.title)}</h2>{"".join(blocks)}{missing}</section>'


def _preview_section(preview: Mapping[str, Any]) -> str:
    rows = [("Number", str(preview.get("number", ""))), ("Campaign", str(preview["campaign"]))]
    rows += [(str(k), str(v)) for k, v in dict(preview.get("data") or {}).items()]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    seconds = float(preview.get("seconds_left", 0))
    return (
        f'<section id="preview"><h2>Lead to call ({clock(seconds)} left)</h2>'
        f"<table>{cells}</table>"
        + button("preview-dial", "Dial this lead", "main")
        + button("preview-skip", "Skip")
        + "</section>"
    )


def _actions_section(desk: Desktop, state: str) -> str:
    buttons: list[str] = []
    agent = desk.agent
    call = desk.call
    talking = state == "on_call" and call is not None and call.on_line_seconds is not None
    if state == "logged_out":
        buttons.append(button("login", "Log in to my queues", "main"))
        if desk.hot_desk:
            buttons.append(
                '<form method="get" action="/desktop/login"><button>Log in at another phone …'
                "</button></form>"
            )
    if desk.break_line is not None:
        buttons.append(button("unpause", "Leave the break line", ""))
    elif state in ("available", "wrap_up", "on_call", "ringing") and not agent.get("pending_pause"):
        buttons += [button("pause", f"Pause: {r}", "", reason=r) for r in desk.pause_reasons]
    if state == "paused":
        buttons.append(button("unpause", "Ready", "main"))
    if state == "wrap_up":
        buttons.append(button("ready", "Ready: wrap-up done", "main"))
    if talking and call is not None:
        if call.on_hold:
            buttons.append(button("unhold", "Take off hold", "main"))
        else:
            buttons.append(button("hold", "Hold"))
        if call.consult is None:
            buttons.append(button("transfer", "Transfer to the supervisor", "", to="supervisor"))
            buttons.append(
                '<form method="get" action="/desktop/transfer"><button>Transfer to …</button>'
                "</form>"
            )
            buttons += [
                button("transfer", f"Transfer to queue {q}", "", queue=q)
                for q in desk.transfer_queues
            ]
            buttons.append(button("consult", "Consult the supervisor", "", to="supervisor"))
        else:
            buttons += [
                button("consult-complete", "Hand the caller over", "main"),
                button("consult-join", "Talk all together"),
                button("consult-cancel", "Back to the caller"),
            ]
        buttons.append(button("help", "Ask the supervisor for help"))
        if not call.recording:
            buttons.append(button("record", "Record"))
        elif call.recording_paused:
            buttons.append(button("resume-recording", "Resume recording"))
        else:
            buttons.append(button("pause-recording", "Pause recording"))
        buttons.append(button("hangup", "Hang up", "warn"))
    if desk.dispositions and (talking or (call is not None and state != "ringing")):
        for code, is_callback in desk.dispositions.items():
            if is_callback:
                buttons.append(
                    f'<form method="get" action="/desktop/callback">'
                    f'<input type="hidden" name="code" value="{_e(code)}">'
                    f"<button>Code: {_e(code)} …</button></form>"
                )
            elif code in desk.noted:
                buttons.append(
                    f'<form method="get" action="/desktop/note">'
                    f'<input type="hidden" name="code" value="{_e(code)}">'
                    f"<button>Code: {_e(code)} …</button></form>"
                )
            else:
                buttons.append(button("disposition", f"Code: {code}", "", code=code))
        if any(not is_callback for is_callback in desk.dispositions.values()):
            buttons.append(
                '<form method="get" action="/desktop/note"><button>Code with a note …'
                "</button></form>"
            )
    if desk.can_block and call is not None and state != "ringing":
        if desk.blocked:
            buttons.append(button("unblock", "Unblock this caller", ""))
        else:
            buttons.append(button("block", "Block this caller", "warn"))
    if desk.can_dial and state in ("available", "paused", "wrap_up"):
        buttons.append(
            '<form method="get" action="/desktop/dial"><button>Dial a number …</button></form>'
        )
    if state != "logged_out" and not agent.get("logout_pending"):
        buttons.append(button("logout", "Log out of my queues"))
    return '<section id="actions">' + "".join(buttons) + "</section>"


def _promised_section(promised: Sequence[Mapping[str, Any]], now: datetime) -> str:
    rows = "".join(
        f"<tr><td>{_when(c['at'], now)}</td><td>{_e(str(c['number']))}</td>"
        f"<td>{_e(str(c['queue']))}</td></tr>"
        for c in promised
    )
    return (
        '<section id="promised"><h2>Callbacks you promised</h2><table><tr><th>at</th>'
        f"<th>number</th><th>queue</th></tr>{rows}</table><p><small>Offered to you first "
        "when due.</small></p></section>"
    )


def _when(at: datetime, now: datetime) -> str:
    """A time as an agent reads it: ``14:30`` today, else ``Tue 12-08 09:00``."""
    local = at.astimezone(now.tzinfo)
    return (
        local.strftime("%H:%M") if local.date() == now.date() else local.strftime("%a %m-%d %H:%M")
    )


def _messages_section(desk: Desktop) -> str:
    me = str(desk.agent["id"])
    zone = desk.now.tzinfo
    rows = []
    # Theirs first, then the oldest: a page lists MESSAGES_SHOWN, the heading counts all.
    ordered = sorted(desk.messages, key=lambda m: m.agent != me)
    for message in ordered[:MESSAGES_SHOWN]:
        if message.status == "taken" and message.agent != me:
            act = f"taken by {_e(message.agent)}"
        else:
            label = "Open" if message.agent == me else "Take and listen"
            back = f"/desktop/voicemail?id={message.call_id}"
            act = button("voicemail-take", label, id=message.call_id, back=back)
            act += _tries(message, zone, " ")
        who = message.number + (f" ({message.name})" if message.name else "")
        rows.append(
            f"<tr><td>{message.left_at.astimezone(zone).strftime('%H:%M')}</td>"
            f"<td>{_e(who)}</td><td>{_e(message.queue)}</td>"
            f"<td>{clock(message.seconds)}</td><td>{act}</td></tr>"
        )
    hidden = len(desk.messages) - len(rows)
    more = f"<p>and {hidden} more</p>" if hidden > 0 else ""
    return (
        f'<section id="messages"><h2>Messages to call back ({len(desk.messages)})</h2><table>'
        "<tr><th>left</th><th>from</th><th>queue</th><th>length</th><th></th></tr>"
        f"{''.join(rows)}</table>{more}</section>"
    )


def render_agent_calls(
    title: str,
    agent: Mapping[str, Any],
    calls: Sequence[Mapping[str, Any]],
    *,
    scoring: bool = False,
    scored: Mapping[str, float] | None = None,
    said: str = "",
    error: str = "",
) -> str:
    """A supervisor's review of an agent's calls of the day, newest first: each recorded
    one with a player (WAV; other formats as a link), and with ``scoring`` (scorecards
    configured) a button to score it, or its score when the supervisor gave one
    (``scored``: call id -> percent). The page does not reload itself."""
    scored = scored or {}
    parts = _head(title)
    who = str(agent.get("name") or agent["id"])
    parts.append(f"<h1>{_e(who)} <small>agent {_e(str(agent['id']))}: today's calls</small></h1>")
    parts += _notes(said, error)
    rows = []
    for call in calls:
        recording = str(call.get("recording") or "")
        sound = f"/desktop/recording?call={quote(str(call['call_id']))}"
        if recording.lower().endswith(".wav"):
            heard = f'<audio controls preload="none" src="{_e(sound)}"></audio>'
        elif recording:
            heard = f'<a href="{_e(sound)}">the recording</a>'
        else:
            heard = "not recorded"
        rows.append(
            f"<tr><td>{call['start'].strftime('%H:%M')}</td><td>{_e(str(call['number']))}</td>"
            f"<td>{_e(str(call['queue']))}</td><td>{clock(float(call['talk_seconds']))}</td>"
            f"<td>{_e(str(call['code'] or ''))}</td><td>{_e(str(call.get('transfer', '')))}</td>"
            f"<td>{heard}</td>{_score_cell(call, scoring, scored)}</tr>"
        )
    quality = "<th>quality</th>" if scoring else ""
    table = (
        "<table><tr><th>at</th><th>number</th><th>queue</th><th>talk</th><th>code</th>"
        f"<th>transfer</th><th>recording</th>{quality}</tr>{''.join(rows)}</table>"
        if rows
        else "<p>No call today.</p>"
    )
    parts.append(
        f'<section id="calls">{table}<p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def _score_cell(call: Mapping[str, Any], scoring: bool, scored: Mapping[str, float]) -> str:
    if not scoring:
        return ""
    cid = str(call["call_id"])
    done = f"{scored[cid]:g} % " if cid in scored else ""
    label = "Score again …" if done else "Score …"
    return (
        f'<td>{_e(done)}<form method="get" action="/desktop/evaluate">'
        f'<input type="hidden" name="call" value="{_e(cid)}"><button>{label}</button></form></td>'
    )


def render_evaluation(
    title: str,
    call: Mapping[str, Any],
    form_name: str,
    *,
    criteria: Mapping[str, int],
    pass_percent: float,
    given: Mapping[str, int] | None = None,
    comment: str = "",
) -> str:
    """The scorecard page of one call (it does not reload): a number per criterion (0 to
    its points), a comment, "Save the score" (``action=evaluate-call``)."""
    parts = _head(title)
    back = f"/desktop/calls?agent={quote(str(call['agent']))}"
    parts.append(
        f"<h1>Score the call <small>{_e(str(call['number']))}, "
        f"{_e(str(call.get('queue') or ''))}, agent {_e(str(call['agent']))} "
        f"(form {_e(form_name)}: passes at {pass_percent:g} %)</small></h1>"
    )
    given = given or {}
    fields = "".join(
        f'<label>{_e(name)} (0-{most}) <input name="score:{_e(name)}" type="number" min="0" '
        f'max="{most}" required value="{_e(str(given.get(name, "")))}"></label><br>'
        for name, most in criteria.items()
    )
    parts.append(
        '<section><form method="post" action="/desktop/act">'
        '<input type="hidden" name="action" value="evaluate-call">'
        f'<input type="hidden" name="call" value="{_e(str(call["call_id"]))}">'
        f'<input type="hidden" name="back" value="{_e(back)}">'
        f'{fields}<label>Comment <textarea name="comment" rows="3" cols="60">'
        f"{_e(comment)}</textarea></label><br>"
        '<button class="main">Save the score</button></form>'
        '<p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def render_voicemail(
    title: str,
    agent: Mapping[str, Any],
    message: VoicemailMessage,
    zone: tzinfo | None,
    *,
    said: str = "",
    error: str = "",
    can_dial: bool = True,
) -> str:
    """One message the agent took: its sound (a browser plays WAV files) and what to do
    with it (calling back when ``can_dial``: ``acd.dial_out``). The page does not reload
    itself (that would stop the sound)."""
    parts = _head(title)
    who = str(agent.get("name") or agent["id"])
    parts.append(f"<h1>{_e(who)} <small>a message to call back</small></h1>")
    parts += _notes(said, error)
    audio = f"/desktop/voicemail/audio?id={quote(message.call_id)}"
    if message.path.lower().endswith(".wav"):
        player = f'<audio controls preload="none" src="{_e(audio)}"></audio> '
    else:
        player = ""
    rows = [
        ("From", message.number + (f" ({message.name})" if message.name else "")),
        ("Left", message.left_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")),
        ("Queue", message.queue),
        ("Length", clock(message.seconds)),
    ]
    if message.tries:
        rows.append(("Called back", _tries(message, zone, "")))
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    buttons = ""
    if message.status == "taken" and message.agent == str(agent["id"]):
        ident = message.call_id
        call_back = (
            button("voicemail-call-back", f"Call {message.number} back", "main", id=ident)
            if can_dial and message.number
            else ""
        )
        buttons = (
            call_back
            + button("voicemail-done", "Done (dealt with otherwise)", id=ident)
            + button("voicemail-release", "Put back for someone else", id=ident)
        )
    elif message.status == "done":
        buttons = f"Dealt with by agent {_e(message.agent)} ({_e(message.outcome)})."
    else:
        buttons = f"Agent {_e(message.agent)} has taken this message."
    parts.append(
        f'<section><table id="message">{table}</table><p>{player}'
        f'<a href="{_e(audio)}">the sound file</a></p><p>{buttons}</p>'
        '<p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def _tries(message: VoicemailMessage, zone: tzinfo | None, before: str) -> str:
    """The calls back of ``message`` that got nobody, as a person reads them ("" if
    none): ``no answer at 14:02 (2 tries)``."""
    if not message.tries or message.tried_at is None:
        return ""
    at = message.tried_at.astimezone(zone).strftime("%H:%M")
    tries = "1 try" if message.tries == 1 else f"{message.tries} tries"
    return f"{before}{_e(message.last_try.replace('-', ' '))} at {at} ({tries})"


def _calls_section(calls: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{call['start'].strftime('%H:%M')}</td><td>{_e(str(call['number']))}</td>"
        f"<td>{_e(str(call['queue']))}</td><td>{clock(float(call['talk_seconds']))}</td>"
        f"<td>{_e(str(call['code'] or ''))}</td><td>{_e(str(call.get('transfer', '')))}</td>"
        "</tr>"
        for call in calls
    )
    return (
        '<section id="calls"><h2>Today\'s calls</h2><table><tr><th>at</th><th>number</th>'
        "<th>queue</th><th>talk</th><th>code</th><th>transfer</th></tr>"
        f"{rows}</table></section>"
    )


def render_schedule(
    title: str, agent: Mapping[str, Any], days: Sequence[tuple[date, str, bool]]
) -> str:
    """An agent's schedule for the days ahead: each day, its hours ("a day off") and
    whether it was changed from the plan (``agent schedule``); it does not reload."""
    parts = _head(title)
    who = str(agent.get("name") or agent["id"])
    parts.append(f"<h1>{_e(who)} <small>your schedule</small></h1>")
    rows = "".join(
        f"<tr><td>{day.strftime('%a %d %b')}</td><td>{_e(hours or 'a day off')}</td>"
        f"<td>{'changed' if changed else ''}</td></tr>"
        for day, hours, changed in days
    )
    parts.append(
        '<section id="week"><table><tr><th>day</th><th>hours</th><th></th></tr>'
        f"{rows}</table>"
        '<p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class ForecastOptions:
    """What the supervisor asked the forecast page for beside the week: along the trend,
    and the shifts of these lengths (``8h,4h``; empty: none)."""

    trend: bool = False
    shifts: str = ""

    def query(self) -> str:
        """The options as they follow a link to another week."""
        out = "&trend=true" if self.trend else ""
        return out + (f"&shifts={quote(self.shifts)}" if self.shifts else "")


def render_forecast(
    title: str,
    name: str,
    week: Mapping[str, Any],
    first: date,
    options: ForecastOptions | None = None,
    *,
    error: str = "",
) -> str:
    """A supervisor's forecast of a week for their agents' queues
    (:func:`callcenter.records.forecast.read_forecast`): each interval's callers expected,
    agents needed and to schedule, scheduled and the gap (short: red), and the callers
    who came on the days lived; links to the weeks before and after; a form to follow the
    trend and to propose shifts (then a table of them, ``week["shift_plan"]``). ``week``:
    the forecast's :meth:`~callcenter.records.forecast.WeekForecast.as_dict` with the rows
    of those queues only (empty with ``error``: why there is none)."""
    options = options or ForecastOptions()
    parts = _head(title)
    parts.append(
        f"<h1>{_e(name)} <small>forecast for the week of {first.strftime('%a %d %b %Y')}"
        "</small></h1>"
    )
    parts += _notes("", error)
    parts.append(
        '<form method="get" action="/desktop/forecast">'
        f'<input type="hidden" name="week_of" value="{first.isoformat()}">'
        '<label><input type="checkbox" name="trend" value="true"'
        + (" checked" if options.trend else "")
        + "> along the trend</label> "
        '<label>shifts <input name="shifts" placeholder="8h,4h" size="10" '
        f'value="{_e(options.shifts)}"></label> <button>Show</button></form>'
    )
    rows = week.get("rows", [])
    lived = any(row.get("actual_calls") is not None for row in rows)
    scheduled = any("agents_scheduled" in row for row in rows)
    head = ["day", "start", "queue", "callers", "handle", "agents", "to schedule"]
    head += ["scheduled", "gap"] if scheduled else []
    head += ["came"] if lived else []
    lines = []
    for row in rows:
        aht = row.get("aht_seconds")
        cells = [
            f"{row['weekday']} {row['period'][5:10]}",
            row["period"][11:16],
            row["queue"],
            f"{row['calls']:.1f}",
            "" if aht is None else clock(float(aht)),
            "" if row["agents_needed"] is None else str(row["agents_needed"]),
            "" if row["agents_to_schedule"] is None else str(row["agents_to_schedule"]),
        ]
        html = "".join(f"<td>{_e(c)}</td>" for c in cells)
        if scheduled:
            gap = row.get("gap")
            short = ' class="short"' if gap is not None and gap < 0 else ""
            html += f"<td>{row['agents_scheduled']:.1f}</td>"
            html += f"<td{short}>{'' if gap is None else f'{gap:+.1f}'}</td>"
        if lived:
            came = row.get("actual_calls")
            html += f"<td>{'' if came is None else came}</td>"
        lines.append(f"<tr>{html}</tr>")
    table = (
        "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
        + "".join(lines) + "</table>"
    )  # fmt: skip
    said = []
    history = week.get("history")
    if history:
        said.append(f"From the same weekdays of {history[0]} to {history[1]}.")
    for queue, weekdays in week.get("nothing_for", {}).items():
        said.append(f"{queue}: nothing to go on for {', '.join(weekdays)} (closed?).")
    if week.get("no_history"):
        said.append(f"No caller in the history for {', '.join(week['no_history'])}.")
    for queue, days in week.get("closed", {}).items():
        said.append(f"{queue}: closed {'; '.join(days)}.")
    for queue, carried in week.get("trend", {}).items():
        said.append(
            f"{queue}: {carried['weekly_change_percent']:+g} % callers a week, forecast "
            f"x{carried['factor']:.2f}."
        )
    for queue, now in week.get("today", {}).items():
        said.append(pace_said(queue, now) + ".")
    for queue, seen in week.get("accuracy", {}).items():
        off = seen["wape_percent"]
        said.append(
            f"{queue}: {seen['forecast']:g} callers forecast, {seen['actual']} came"
            + ("" if off is None else f" (off by {off:g} % hour by hour)")
            + "."
        )
    before = (first - timedelta(weeks=1)).isoformat() + options.query()
    after = (first + timedelta(weeks=1)).isoformat() + options.query()
    parts.append(
        '<section id="forecast">'
        + (table if rows else "<p>No callers expected.</p>" if not error else "")
        + "".join(f"<p>{_e(line)}</p>" for line in said)
        + _shift_table(week.get("shift_plan"))
        + f'<p><a href="/desktop/forecast?week_of={_e(before)}">Week before</a> · '
        f'<a href="/desktop/forecast?week_of={_e(after)}">Week after</a> · '
        '<a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def _shift_table(proposed: Mapping[str, Any] | None) -> str:
    """The shifts proposed (:meth:`callcenter.shift_plan.ShiftPlan.as_dict`), and each
    queue's hours planned against those needed."""
    if not proposed:
        return ""
    lines = "".join(
        f"<tr><td>{_e(date.fromisoformat(s['day']).strftime('%a %m-%d'))}</td>"
        f"<td>{_e(s['queue'])}</td><td>{_e(s['start'])}-{_e(s['end'])}</td>"
        f"<td>{s['agents']}</td></tr>"
        for s in proposed["shifts"]
    )
    said = "".join(
        f"<p>{_e(queue)}: {h['planned']:g} agent hours planned for {h['needed']:g} needed.</p>"
        for queue, h in proposed["hours"].items()
    )
    return (
        f'<h2 id="shifts">Shifts ({_e(", ".join(proposed["lengths"]))})</h2>'
        "<table><tr><th>day</th><th>queue</th><th>shift</th><th>agents</th></tr>"
        + lines + "</table>" + said
    )  # fmt: skip


def render_scores(
    title: str,
    agent: Mapping[str, Any],
    scored: Sequence[Evaluation],
    zone: tzinfo | None,
    supervisors: Mapping[str, str],
) -> str:
    """An agent's quality scores of the last 30 days, newest first, with their mean: when,
    the queue, the percent, passed or not, who scored it and their comment (it does not
    reload)."""
    parts = _head(title)
    who = str(agent.get("name") or agent["id"])
    parts.append(f"<h1>{_e(who)} <small>your quality scores, last 30 days</small></h1>")
    if not scored:
        parts.append("<section><p>None of your calls was scored lately.</p>")
    else:
        mean = sum(e.percent for e in scored) / len(scored)
        passed = sum(e.passed for e in scored)
        rows = "".join(
            f"<tr><td>{e.at.astimezone(zone).strftime('%d %b %H:%M')}</td>"
            f"<td>{_e(e.queue)}</td><td>{e.percent:g} %</td>"
            f"<td>{'passed' if e.passed else 'not passed'}</td>"
            f"<td>{_e(supervisors.get(e.supervisor, e.supervisor))}</td>"
            f"<td>{_e(e.comment)}</td><td>{_reply_cell(e)}</td></tr>"
            for e in scored
        )
        parts.append(
            f'<section id="scores"><p id="mean">{len(scored)} scored, mean {mean:.0f} %, '
            f"{passed} passed</p><table><tr><th>scored</th><th>queue</th><th>score</th>"
            f"<th></th><th>by</th><th>comment</th><th>your answer</th></tr>{rows}</table>"
        )
    parts.append('<p><a href="/desktop">Back</a></p></section></body></html>')
    return "\n".join(parts)


def _reply_cell(scored: Evaluation) -> str:
    """The agent's answer to a scorecard, or the buttons to give it."""
    if scored.reply == "disputed":
        return f"disputed: {_e(scored.reply_note)}"
    if scored.reply:
        return _e(scored.reply)
    which = {"call": scored.call_id, "supervisor": scored.supervisor}
    hidden = "".join(
        f'<input type="hidden" name="{key}" value="{_e(value)}">' for key, value in which.items()
    )
    return (
        button("reply-evaluation", "Agree", reply="agreed", **which)
        + f'<form method="get" action="/desktop/dispute">{hidden}<button>Dispute …</button>'
        "</form>"
    )


def render_dispute(title: str, agent: Mapping[str, Any], scored: Evaluation) -> str:
    """The form for disputing a scorecard: why (the supervisors read it)."""
    fields = (
        f'<input type="hidden" name="call" value="{_e(scored.call_id)}">'
        f'<input type="hidden" name="supervisor" value="{_e(scored.supervisor)}">'
        '<input type="hidden" name="reply" value="disputed">'
        f"<p>Scored {scored.percent:g} %: {_e(scored.comment)}</p>"
        '<label>Why <input name="note" size="60" maxlength="500" required></label>'
    )
    return _form_page(
        title,
        agent,
        f"dispute the score of call {scored.call_id}",
        action="reply-evaluation",
        fields=fields,
        label="Dispute it",
    )


def _queues_section(desk: Desktop) -> str:
    mine = [str(q["name"]) for q in desk.queues]
    joinable = "".join(
        button("join", f"Join {q}", queue=q) for q in desk.open_queues if q not in mine
    )
    more = f"<p>Take calls of another queue: {joinable}</p>" if joinable else ""
    if not desk.queues:
        return f'<section id="queues"><h2>Queues</h2>You are in no queue.{more}</section>'

    def leave(queue: str) -> str:
        return button("leave", f"Leave {queue}", queue=queue) if queue in desk.open_queues else ""

    rows = "".join(
        f"<tr><td>{_e(str(q['name']))}</td><td>{q['waiting']}</td>"
        f"<td>{clock(float(q['longest_wait']))}</td><td>{q['available']} / {q['staffed']}"
        f"</td><td>{q['callbacks']}</td><td>{leave(str(q['name']))}</td></tr>"
        for q in desk.queues
    )
    return (
        '<section id="queues"><h2>Queues</h2><table><tr><th>queue</th><th>waiting</th>'
        "<th>longest wait</th><th>agents free</th><th>callbacks</th><th></th></tr>"
        f"{rows}</table>{more}</section>"
    )


def _form_page(
    title: str, agent: Mapping[str, Any], heading: str, *, action: str, fields: str, label: str
) -> str:
    """A page of one form posting ``action`` with ``fields`` (HTML) to ``/desktop/act``:
    what the desktop asks for on a page that does not reload."""
    parts = _head(title)
    parts.append(
        f"<h1>{_e(str(agent.get('name') or agent['id']))} <small>{_e(heading)}</small></h1>"
        '<section><form method="post" action="/desktop/act">'
        f'<input type="hidden" name="action" value="{_e(action)}">{fields} '
        f'<button class="main">{_e(label)}</button></form> '
        '<p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def render_transfer(
    title: str, agent: Mapping[str, Any], colleagues: Sequence[Mapping[str, Any]], numbers: bool
) -> str:
    """The form for a transfer (or a consultation first) to a colleague who is free, or to
    an outside number when ``numbers`` (``acd.transfer_dial``): it does not reload."""
    parts = _head(title)
    who = str(agent.get("name") or agent["id"])
    parts.append(f"<h1>{_e(who)} <small>transfer the caller</small></h1>")
    options = "".join(
        f'<option value="{_e(str(c["id"]))}">{_e(str(c.get("name") or c["id"]))} '
        f"({_e(str(c['id']))})</option>"
        for c in colleagues
    )
    fields = []
    if options:
        fields.append(f'<label>To <select name="to">{options}</select></label>')
    if numbers:
        # A typed number wins over the list: the form sends both and the API takes one.
        fields.append('<label>or the number <input name="number" type="tel" size="16"></label>')
    if fields:
        fields.append(
            '<br><label>Note for them <input name="note" maxlength="200" size="40"></label>'
        )
    if not fields:
        parts.append(
            "<section><p>No colleague is free and no outside number may be dialled.</p>"
            '<p><a href="/desktop">Back</a></p></section></body></html>'
        )
        return "\n".join(parts)
    parts.append(
        '<section><form method="post" action="/desktop/act">'
        + " ".join(fields)
        + ' <button name="action" value="transfer" class="main">Transfer</button>'
        ' <button name="action" value="consult">Consult first</button></form>'
        '<p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def render_dial(title: str, agent: Mapping[str, Any], queues: Sequence[str]) -> str:
    """The form for a number the agent dials (``POST /desktop/act`` ``action=dial``)."""
    options = "".join(f'<option value="{_e(q)}">{_e(q)}</option>' for q in queues)
    choose = f' <label>as queue <select name="queue">{options}</select></label>' if queues else ""
    number = '<label>Number <input name="number" type="tel" required autofocus size="16"></label>'
    return _form_page(
        title, agent, "dial a number", action="dial", fields=number + choose, label="Dial"
    )


def render_login(title: str, agent: Mapping[str, Any]) -> str:
    """The form for the phone a hot-desking agent logs in at (``action=login``)."""
    phone = (
        '<label>Phone <input name="device" required autofocus size="16" '
        'placeholder="PJSIP/1010"></label>'
    )
    return _form_page(
        title, agent, "log in at another phone", action="login", fields=phone, label="Log in"
    )


def render_callback(title: str, agent: Mapping[str, Any], code: str, earliest: str) -> str:
    """The form for a callback code's time (``earliest``: ``YYYY-MM-DDTHH:MM``, now) and
    a note."""
    fields = (
        f'<input type="hidden" name="code" value="{_e(code)}">'
        '<label>Call back at <input name="at" type="datetime-local" required '
        f'min="{_e(earliest)}" value="{_e(earliest)}"></label><br>' + _NOTE
    )
    return _form_page(
        title, agent, f"code {code}", action="disposition", fields=fields, label="Give the code"
    )


def render_note(
    title: str,
    agent: Mapping[str, Any],
    codes: Mapping[str, bool],
    *,
    chosen: str = "",
    noted: Collection[str] = (),
) -> str:
    """The form for a code with a note (``codes``: code -> whether it is a callback code:
    those go through their own page, which asks for the time); ``chosen`` comes selected,
    and a note is asked for when it is one of the ``noted`` codes (they need one)."""
    options = "".join(
        f'<option value="{_e(code)}"{" selected" if code == chosen else ""}>{_e(code)}</option>'
        for code, is_callback in codes.items()
        if not is_callback
    )
    note = _NOTE.replace("<input", "<input required") if chosen in noted else _NOTE
    fields = f'<label>Code <select name="code">{options}</select></label><br>' + note
    return _form_page(
        title, agent, "code with a note", action="disposition", fields=fields, label="Give the code"
    )


_NOTE: Final = '<label>Note <input name="note" size="60" maxlength="500"></label>'


def said(action: str, answer: Mapping[str, Any], fields: Mapping[str, str]) -> str:
    """What the desktop says once an action went through."""
    if action == "pause" and answer.get("break_line"):
        return (
            f"Your team is at its break limit: you are {_ordinal(int(answer['break_line']))} "
            f"in line, your break ({fields.get('reason', '')}) starts when one is back"
        )
    if action == "pause":
        return f"Paused: {fields.get('reason', '')}"
    if action == "unpause" and answer.get("left_break_line"):
        return "Out of the break line"
    if action == "transfer":
        target = answer.get("transferred_to") or answer.get("transferred_to_queue")
        return f"Transferred to {target}"
    if action == "consult":
        return f"Consulting {answer.get('consulting')}: the caller is on hold"
    if action == "disposition":
        return f"Code {answer.get('code')} given to the call"
    if action == "dial":
        return f"Dialling {answer.get('number', fields.get('number', ''))}"
    if action == "help":
        return f"Supervisor {answer.get('supervisor')} is called to help"
    if action == "block":
        listed = "on" if answer.get("added") else "already on"
        return f"{answer.get('number')} is {listed} the list {answer.get('number_list')}"
    if action == "unblock":
        return f"{answer.get('number')} is off the list {answer.get('number_list')}"
    if action == "voicemail-call-back":
        return f"Calling {answer.get('number', '')} back"
    if action == "voicemail-done":
        return "Message dealt with"
    if action == "voicemail-release":
        return "Message put back for someone else"
    if action == "join":
        return f"You take {fields.get('queue', '')} calls now"
    if action == "leave":
        return f"You no longer take {fields.get('queue', '')} calls"
    return {
        "login": "Logged in",
        "logout": "Logged out",
        "unpause": "Ready",
        "ready": "Ready: wrap-up over",
        "hold": "The caller is on hold",
        "unhold": "Back with the caller",
        "consult-complete": "The caller was handed over",
        "consult-join": "Talking all together",
        "consult-cancel": "Back with the caller",
        "record": "Recording",
        "pause-recording": "Recording paused",
        "resume-recording": "Recording again",
        "hangup": "Hung up",
        "preview-dial": "Dialling the lead",
        "preview-skip": "Lead skipped",
    }.get(action, "Done")


MODE_NAMES: Final[Mapping[str, str]] = {
    "listen": "Listening to",
    "whisper": "Whispering to",
    "barge": "Talking with",
}


def supervisor_said(action: str, answer: Mapping[str, Any]) -> str:
    """What the supervisor's desktop says once an action went through."""
    shown = answer.get("monitoring") or {}
    if action == "stop":
        return "Monitoring stopped"
    if action == "takeover":
        return f"You take over the call of agent {shown.get('agent', '')}: your phone rings"
    verb = {"listen": "listen to", "whisper": "whisper to", "barge": "barge in on"}[action]
    if shown.get("state") == "ringing":
        return f"Your phone rings: answer it to {verb} agent {shown.get('agent', '')}"
    return f"You {verb} agent {shown.get('agent', '')}"


def render_supervisor(desk: SupervisorDesk) -> str:
    """A supervisor's desktop: what they monitor, their agents with buttons to listen,
    whisper or barge in, and the queues those agents work."""
    small = f"supervisor {desk.supervisor} · {desk.device} · {desk.now.strftime('%H:%M:%S')}"
    parts = _top(desk, desk.name, small)
    shown = desk.monitoring
    if shown is not None:
        watched = str(shown["agent"])
        mode = str(shown["mode"])
        doing = MODE_NAMES.get(mode, mode)
        if shown["state"] == "ringing":
            text = f"Your phone rings: answer it to start ({mode}, agent {watched})"
        else:
            text = f"{doing} agent {watched} for {clock(float(shown['seconds']))}"
        others = [m for m in MODE_NAMES if m != mode]
        parts.append(
            f'<section id="monitoring"><span class="state on_call" id="state">{_e(text)}'
            "</span><br>"
            + "".join(button(m, m.capitalize(), "", agent=watched) for m in others)
            + button("takeover", "Take the call over")
            + button("stop", "Stop", "warn")
            + "</section>"
        )
    else:
        parts.append('<section><span class="state" id="state">Monitoring nobody</span></section>')
    rows = []
    for agent in desk.agents:
        aid = str(agent["id"])
        state = str(agent["state"])
        named = STATE_NAMES.get(state, state)
        if state == "paused" and agent.get("pause_reason"):
            named += f": {agent['pause_reason']}"
        if state == "logged_out" and aid in desk.agent_alerts:
            named = "absent (scheduled)"
        day = desk.agent_days.get(aid) or AgentDay()
        actions = ""
        if state == "on_call" and aid in desk.callers:
            actions = "".join(
                button(m, m.capitalize(), "", agent=aid) for m in ("listen", "whisper", "barge")
            )
        if state == "paused":
            actions += button("unpause-agent", "Ready", "", agent=aid)
        actions += (
            '<form method="get" action="/desktop/agent">'
            f'<input type="hidden" name="id" value="{_e(aid)}">'
            "<button>Pause, queues …</button></form>"
            '<form method="get" action="/desktop/calls">'
            f'<input type="hidden" name="agent" value="{_e(aid)}"><button>Calls …</button></form>'
        )
        if aid in desk.targets:
            actions += (
                '<form method="get" action="/desktop/pick">'
                f'<input type="hidden" name="agent" value="{_e(aid)}">'
                "<button>Pick a call …</button></form>"
            )
        if state != "logged_out":
            actions += button("logout-agent", "Log out", "", agent=aid)
        over = " ⚠" if aid in desk.agent_alerts else ""
        rows.append(
            f"<tr><td>{_e(str(agent.get('name') or aid))} <small>{_e(aid)}</small></td>"
            f'<td class="{_e(state)}">{_e(named)}</td>'
            f"<td>{clock(float(agent['time_in_state']))}{over}</td>"
            f"<td>{_e(desk.callers.get(aid, ''))}</td><td>{day.calls}</td>"
            + (_quota(desk, aid) if desk.targets else "")
            + (f"<td>{_percent(desk.adherence, aid)}</td>" if desk.adherence else "")
            + f"<td>{actions}</td></tr>"
        )
    planned = ""
    if desk.scheduled is not None:
        planned = f'<p id="scheduled">{_e(scheduled_text(desk.scheduled))}</p>'
    if desk.breaks:
        said = "; ".join(
            f"team {team}: {away} of {limit}" for team, (away, limit) in sorted(desk.breaks.items())
        )
        planned += f'<p id="breaks">On a break: {_e(said)} at most</p>'
    if desk.break_lines:
        said = "; ".join(
            f"team {team}: {', '.join(name for _a, name in line)}"
            for team, line in sorted(desk.break_lines.items())
        )
        planned += f'<p id="break-lines">Waiting for a break: {_e(said)}</p>'
        # The first of each line is next anyway: the others may be put before them.
        firsts = [
            button("break-place-agent", f"{name} first", "", agent=agent)
            for _team, line in sorted(desk.break_lines.items())
            for agent, name in line[1:]
        ]
        if firsts:
            planned += f'<div id="break-line-firsts">{"".join(firsts)}</div>'
    parts.append(
        '<section id="agents"><h2>Agents</h2>' + planned + "<table><tr><th>agent</th><th>state</th>"
        "<th>for</th><th>with</th><th>calls today</th>"
        + ("<th>scored</th>" if desk.targets else "")
        + ("<th>adherence</th>" if desk.adherence else "")
        + "<th></th></tr>"
        + "".join(rows)
        + "</table></section>"
    )
    queue_rows = []
    for view in desk.queues:
        name = str(view["name"])
        qday = desk.queue_days.get(name) or QueueDay()
        level = qday.service_level_percent
        alert = " ⚠" if name in desk.alerts else ""
        queue_rows.append(
            f"<tr><td>{_e(name)}{alert}</td><td>{view['waiting']}</td>"
            f"<td>{clock(float(view['longest_wait']))}</td>"
            f"<td>{view['available']} / {view['staffed']}</td><td>{view['callbacks']}</td>"
            f"<td>{qday.offered}</td>"
            f"<td>{qday.answered}</td><td>{qday.abandoned}</td>"
            f"<td>{'-' if level is None else f'{level:g} %'}</td>"
            f"<td>{_wait_now(desk.waits.get(name))}</td></tr>"
        )
    parts.append(
        '<section id="queues"><h2>Queues</h2><table><tr><th>queue</th><th>waiting</th>'
        "<th>longest wait</th><th>agents free</th><th>callbacks</th><th>offered</th>"
        "<th>answered</th><th>abandoned</th><th>service level</th><th>wait now</th></tr>"
        + "".join(queue_rows)
        + "</table></section>"
    )
    if desk.waiting:
        parts.append(_waiting_section(desk.waiting))
    if desk.messages:
        parts.append(_supervised_messages(desk.messages, desk.now))
    if desk.disputed:
        parts.append(_disputed_section(desk.disputed, desk.now))
    if desk.requests:
        parts.append(_requests_section(desk.requests))
    if desk.changed_days:
        parts.append(_changed_days_section(desk.changed_days))
    parts.append(
        '<section id="tell"><h2>Notices</h2>'
        + _notices_section(desk.notices, take_down=True)
        + '<p><a href="/desktop/notice">Post a notice for your agents …</a></p></section>'
    )
    parts.append('<p><a href="/desktop/forecast">Next week\'s forecast for your queues …</a></p>')
    parts.append(
        '<p><form method="post" action="/desktop/sign-out"><button>Sign out of this page'
        "</button></form></p></body></html>"
    )
    return "\n".join(parts)


def caller_name(caller: Mapping[str, Any]) -> str:
    """A waiting caller as a supervisor reads them: number and name, or what hides them.
    Asterisk says ``unknown`` for a caller without a name: left out."""
    number, name = str(caller.get("number") or ""), str(caller.get("name") or "")
    if name.lower() == "unknown" or name == number:
        name = ""
    return " ".join(x for x in (number, name) if x) or "a withheld number"


def _quota(desk: SupervisorDesk, agent: str) -> str:
    """The "scored" cell: ``2 / 4`` of the agent's quota, empty without one."""
    if agent not in desk.targets:
        return "<td></td>"
    return f"<td>{desk.scored.get(agent, 0)} / {desk.targets[agent]}</td>"


def _percent(adherence: Mapping[str, float | None], agent: str) -> str:
    value = adherence.get(agent)
    return "-" if value is None else f"{value:g} %"


def _requests_section(requests: Sequence[Mapping[str, Any]]) -> str:
    """The agents' schedule requests waiting for the supervisor's word, each with Approve
    and Decline."""
    rows = "".join(
        f"<tr><td>{_e(str(r['agent']))}</td><td>{_e(_day_label(str(r['day'])))}</td>"
        f"<td>{_e(', '.join(r['hours']) or 'a day off')}</td><td>{_e(str(r['note']))}</td>"
        "<td>"
        + button("approve-request", "Approve", "main", request=str(r["id"]))
        + button("decline-request", "Decline", "", request=str(r["id"]))
        + "</td></tr>"
        for r in requests
    )
    return (
        '<section id="requests"><h2>Schedule requests</h2><table><tr><th>agent</th>'
        "<th>day</th><th>asked</th><th>why</th><th></th></tr>" + rows + "</table></section>"
    )


def _changed_days_section(days: Sequence[Mapping[str, Any]]) -> str:
    """The agents' days changed from the plan, coming (a swapped shift, a day off)."""
    rows = "".join(
        f"<tr><td>{_e(_day_label(str(d['day'])))}</td><td>{_e(str(d['agent']))}</td>"
        f"<td>{_e(', '.join(d['hours']) or 'a day off')}</td><td>{_e(str(d['via']))}</td></tr>"
        for d in days
    )
    return (
        '<section id="changed-days"><h2>Days changed ahead</h2><table><tr><th>day</th>'
        "<th>agent</th><th>hours</th><th>by</th></tr>" + rows + "</table></section>"
    )


def _wait_now(seconds: float | None) -> str:
    return "-" if seconds is None else clock(seconds)


def _day_label(day: str) -> str:
    return date.fromisoformat(day).strftime("%a %d %b")


def request_said(request: Mapping[str, Any]) -> str:
    """What a page says once a schedule request was asked for or answered."""
    asked = ", ".join(request["hours"]) or "a day off"
    day = _day_label(str(request["day"]))
    status = request.get("status")
    if status is None:
        return f"You asked for {day}: {asked}; your supervisors answer"
    if status == "withdrawn":
        return f"You took back your request for {day}: {asked}"
    return f"{status.capitalize()}: agent {request['agent']} on {day}, {asked}"


def render_ask_schedule(title: str, agent: Mapping[str, Any], first: date) -> str:
    """An agent's page to ask for another day: the day (from ``first``), the hours or a
    day off, and why (it does not reload)."""
    parts = _head(title)
    who = str(agent.get("name") or agent["id"])
    parts.append(f"<h1>{_e(who)} <small>ask for another day</small></h1>")
    parts.append(
        '<section id="ask"><form method="post" action="/desktop/act">'
        f'<label>Day <input name="day" type="date" value="{first.isoformat()}"></label> '
        '<label>Hours <input name="hours" placeholder="10:00-14:00, 15:00-19:00"></label> '
        '<label>Why <input name="note" maxlength="200" placeholder="swap with Ann"></label> '
        '<button name="action" value="ask-hours" class="main">Ask for these hours</button> '
        '<button name="action" value="ask-day-off">Ask for a day off</button></form>'
        "<p><small>Your supervisors approve or decline; an approved day shows in My "
        'schedule.</small></p><p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def _disputed_section(disputed: Sequence[Evaluation], now: datetime) -> str:
    """The scorecards agents disputed, with why, and the page to score the call again
    (which asks the agent anew)."""
    rows = "".join(
        f"<tr><td>{e.at.astimezone(now.tzinfo).strftime('%d %b %H:%M')}</td>"
        f"<td>{_e(e.agent)}</td><td>{e.percent:g} %</td><td>{_e(e.reply_note)}</td>"
        '<td><form method="get" action="/desktop/evaluate">'
        f'<input type="hidden" name="call" value="{_e(e.call_id)}">'
        "<button>Score again …</button></form></td></tr>"
        for e in disputed
    )
    return (
        '<section id="disputed"><h2>Disputed scores</h2><table><tr><th>scored</th>'
        "<th>agent</th><th>score</th><th>why</th><th></th></tr>" + rows + "</table></section>"
    )


def _waiting_section(waiting: Sequence[Mapping[str, Any]]) -> str:
    """Callers in line, with a priority raise and a page to send or give them on."""
    rows = []
    for caller in waiting:
        cid = str(caller["call_id"])
        priority = int(caller["priority"])
        ringing = caller["state"] == "ringing"
        state = f"ringing {', '.join(caller['agents'])}" if ringing else "waiting"
        actions = ""
        if not ringing:
            actions = button(
                "priority-caller", "Priority +1", caller=cid, priority=str(priority + 1)
            )
            actions += (
                '<form method="get" action="/desktop/caller">'
                f'<input type="hidden" name="id" value="{_e(cid)}">'
                "<button>Send, give …</button></form>"
            )
        rows.append(
            f"<tr><td>{_e(str(caller['queue']))}</td><td>{caller['position']}</td>"
            f"<td>{_e(caller_name(caller))}</td><td>{clock(float(caller['waited']))}</td>"
            f"<td>{priority}</td><td>{_e(state)}</td><td>{actions}</td></tr>"
        )
    return (
        '<section id="waiting"><h2>Waiting</h2><table><tr><th>queue</th><th>#</th>'
        "<th>caller</th><th>waited</th><th>priority</th><th></th><th></th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def render_caller(
    title: str,
    caller: Mapping[str, Any],
    *,
    free: Sequence[Mapping[str, Any]],
    queues: Sequence[str],
    box: str | None,
    callback: bool,
) -> str:
    """A supervisor's page for one waiting caller (it does not reload): give them to one of
    ``free`` (agents of the caller's queue free now), send them to another of ``queues``,
    to the queue's voicemail ``box`` or to a callback (``callback``: the centre calls
    back), or put them first in line."""
    cid = str(caller["call_id"])
    parts = _head(title)
    parts.append(
        f"<h1>{_e(caller_name(caller))} <small>waiting in {_e(str(caller['queue']))}, "
        f"#{caller['position']} for {clock(float(caller['waited']))}, priority "
        f"{caller['priority']}</small></h1>"
    )
    give = "".join(
        button(
            "give-caller",
            f"Give to {a.get('name') or a['id']} ({a['id']})",
            caller=cid,
            agent=str(a["id"]),
        )
        for a in free
    )
    parts.append(
        '<section id="give"><h2>Put through to</h2>'
        + (give or "<p>No agent of this queue is free now.</p>")
        + "</section>"
    )
    send = [button("send-caller", f"Send to {q}", caller=cid, to="queue", queue=q) for q in queues]
    if box is not None:
        send.append(
            button("send-caller", f"Voicemail ({box})", caller=cid, to="voicemail", box=box)
        )
    if callback:
        send.append(
            button("send-caller", "Call them back (keeps their place)", caller=cid, to="callback")
        )
    parts.append(
        '<section id="send"><h2>Send elsewhere</h2>'
        + ("".join(send) or "<p>Nowhere else to send them.</p>")
        + "</section>"
    )
    first = max(10, int(caller["priority"]) + 1)
    parts.append(
        "<section>"
        + button(
            "priority-caller", f"First in line (priority {first})", caller=cid, priority=str(first)
        )
        + '<p><a href="/desktop">Back</a></p></section></body></html>'
    )
    return "\n".join(parts)


def caller_said(action: str, answer: Mapping[str, Any], who: str) -> str:
    """What the supervisor's desktop says once a waiting caller was dealt with."""
    if action == "priority-caller":
        return (
            f"{who} has priority {answer['priority']}: #{answer['position']} in "
            f"{answer['queue']} now"
        )
    if action == "give-caller":
        return f"Agent {answer['agent']}'s phone rings for {who}"
    where = {"callback": "a callback: they keep their place"}.get(
        str(answer["to"]), f"{answer['to']} {answer.get('where') or ''}".strip()
    )
    return f"{who} leaves {answer['queue']} for {where}"


def render_notice(title: str, name: str, teams: Sequence[str]) -> str:
    """The page where a supervisor writes a notice for their agents (it does not reload)."""
    to = f"agents of {', '.join(teams)}" if teams else "every agent"
    choices = "".join(
        f'<option value="{m}"{" selected" if m == 60 else ""}>{label}</option>'
        for m, label in NOTICE_TIMES
    )
    fields = (
        f'<input type="hidden" name="back" value="/desktop">'
        f'<label>Tell {_e(to)} <input name="text" required maxlength="{MAX_TEXT}" size="60" '
        "autofocus></label> "
        f'<label>for <select name="minutes">{choices}</select></label>'
    )
    return _form_page(
        title, {"id": name}, "a notice", action="notice-post", fields=fields, label="Post"
    )


def _supervised_messages(messages: Sequence[VoicemailMessage], now: datetime) -> str:
    """The messages of a supervisor's queues: who has taken which (and a button to put one
    back, for an agent who left with it), how long the others have waited."""
    rows = []
    for message in messages[:MESSAGES_SHOWN]:
        if message.status == "taken":
            state = f"taken by {_e(message.agent)}" + _tries(message, now.tzinfo, ", ")
            act = button("voicemail-release", "Put back", id=message.call_id)
        else:
            state, act = "waiting", ""
        waited = clock(max(0.0, (now - message.left_at).total_seconds()))
        # A link, not a player: this page reloads itself, which would cut the sound off.
        sound = f"/desktop/voicemail/audio?id={quote(message.call_id)}"
        heard = (
            f'<a id="listen-{_e(message.call_id)}" href="{_e(sound)}" target="_blank" '
            'rel="noopener">Listen</a>'
        )

        rows.append(
            f"<tr><td>{_e(message.queue)}</td><td>{_e(message.number)}</td><td>{waited}</td>"
            f"<td>{state}</td><td>{heard}</td><td>{act}</td></tr>"
        )
    hidden = len(messages) - len(rows)
    more = f"<p>and {hidden} more</p>" if hidden > 0 else ""
    return (
        f'<section id="messages"><h2>Messages to call back ({len(messages)})</h2><table>'
        "<tr><th>queue</th><th>from</th><th>waiting for</th><th></th><th>message</th><th></th>"
        "</tr>"
        f"{''.join(rows)}</table>{more}</section>"
    )


def agent_moved(agent: str, verb: str, queue: str, reason: str = "") -> str:
    """What the supervisor's desktop says once it did ``verb`` to ``agent``."""
    return {
        "logout": f"Agent {agent} logged out",
        "pause": f"Agent {agent} pauses ({reason}): now, or once their call is over",
        "unpause": f"Agent {agent} is ready",
        "join": f"Agent {agent} takes {queue} calls now",
        "leave": f"Agent {agent} no longer takes {queue} calls",
        "profile": f"Agent {agent} works as {reason} now",
        "break-place": f"Agent {agent} is next in line for a break",
    }[verb]


def render_membership(
    title: str,
    agent: Mapping[str, Any],
    queues: Sequence[str],
    *,
    said: str,
    error: str,
    skills: Sequence[str] = (),
    pause_reasons: Sequence[str] = (),
    days: Sequence[Mapping[str, Any]] = (),
    pauses: Sequence[PauseTotal] = (),
    profiles: Sequence[str] = (),
    profile: str | None = None,
) -> str:
    """A supervisor's page for one agent (and ``profiles`` to give them in one go, the one
    they work as now ``profile``): a
    pause for each of ``pause_reasons`` (a
    coaching session, a meeting) or Ready, a button to put them in each queue they are not
    in and to take them out of each they are in (kept across restarts, as ``agent
    join``/``leave``), their skill levels to change (``skills``: those of
    ``acd.skills``; the agent's own are shown too), and their ``days`` to come (as
    ``Roster.schedule_day`` gives them) with a form to change one (``agent
    schedule``), and their ``pauses`` today per reason."""
    aid = str(agent["id"])
    member = set(agent["queues"])
    back = f"/desktop/agent?id={aid}"
    parts = _head(title)
    parts.append(f"<h1>{_e(str(agent.get('name') or aid))} <small>agent {_e(aid)}</small></h1>")
    parts += _notes(said, error)
    state = str(agent["state"])
    shown = STATE_NAMES.get(state, state)
    if state == "paused" and agent.get("pause_reason"):
        shown += f": {agent['pause_reason']}"
    if state == "paused":
        acts = button("unpause-agent", "Ready", "main", agent=aid, back=back)
    elif state == "logged_out" or agent.get("pending_pause"):
        acts = ""
    else:
        acts = "".join(
            button("pause-agent", f"Pause: {reason}", "", agent=aid, reason=reason, back=back)
            for reason in pause_reasons
        )
    today = f'<p id="pauses">Pauses today: {_e(pauses_said(pauses))}</p>' if pauses else ""
    parts.append(
        f'<section><span class="state {_e(state)}" id="state">{_e(shown)}</span> {acts}'
        f"{today}</section>"
    )
    rows = []
    for queue in queues:
        if queue in member:
            act = button(
                "leave-agent", f"Take out of {queue}", "", agent=aid, queue=queue, back=back
            )
        else:
            act = button("join-agent", f"Put in {queue}", "main", agent=aid, queue=queue, back=back)
        shown = "member" if queue in member else ""
        rows.append(f"<tr><td>{_e(queue)}</td><td>{shown}</td><td>{act}</td></tr>")
    parts.append(
        '<section id="queues"><h2>Queues</h2><table><tr><th>queue</th><th></th><th></th></tr>'
        + "".join(rows)
        + "</table></section>"
    )
    current: Mapping[str, int] = agent.get("skills") or {}
    names = [*skills, *(name for name in current if name not in skills)]
    if names:
        inputs = "".join(
            f'<label>{_e(name)} <input name="skill:{_e(name)}" type="number" min="0" max="10" '
            f'size="3" value="{current.get(name, "")}"></label> '
            for name in names
        )
        hidden = (
            f'<input type="hidden" name="agent" value="{_e(aid)}">'
            f'<input type="hidden" name="back" value="{_e(back)}">'
        )
        parts.append(
            '<section id="skills"><h2>Skills</h2><form method="post" action="/desktop/act">'
            f'<input type="hidden" name="action" value="skills-agent">{hidden}{inputs}'
            '<button class="main">Set skills</button></form> '
            + button("reset-skills-agent", "Back to the config's skills", agent=aid, back=back)
            + "<p><small>A level 1-10; 0 or empty: not that skill. Kept across restarts "
            "until set back.</small></p></section>"
        )
    if profiles:
        options = "".join(
            f'<option value="{_e(p)}"{" selected" if p == profile else ""}>{_e(p)}</option>'
            for p in profiles
        )
        now = (
            f'<p id="works-as">Works as {_e(profile)} now.</p>'
            if profile
            else '<p id="works-as">Works as no profile now (queues or skills of their own).</p>'
        )
        parts.append(
            '<section id="profile"><h2>Profile</h2>' + now + '<form method="post" '
            'action="/desktop/act">'
            '<input type="hidden" name="action" value="profile-agent">'
            f'<input type="hidden" name="agent" value="{_e(aid)}">'
            f'<input type="hidden" name="back" value="{_e(back)}">'
            f'<label>Work as <select name="profile">{options}</select></label> '
            "<button>Give this profile</button></form><p><small>Its queues and no other, "
            "and its skills.</small></p></section>"
        )
    if days:
        parts.append(_schedule_section(aid, back, days))
    parts.append(_message_section(aid, back))
    parts.append('<p><a href="/desktop">Back to the desktop</a></p></body></html>')
    return "\n".join(parts)


def _message_section(agent_id: str, back: str) -> str:
    """A line to this agent alone, on top of their desktop until its time is up."""
    choices = "".join(
        f'<option value="{m}"{" selected" if m == 60 else ""}>{label}</option>'
        for m, label in NOTICE_TIMES
    )
    return (
        '<section id="message"><h2>A message to them</h2>'
        '<form method="post" action="/desktop/act">'
        '<input type="hidden" name="action" value="notice-post">'
        f'<input type="hidden" name="agent" value="{_e(agent_id)}">'
        f'<input type="hidden" name="back" value="{_e(back)}">'
        f'<label>Tell them <input name="text" required maxlength="{MAX_TEXT}" size="50">'
        f'</label> <label>for <select name="minutes">{choices}</select></label> '
        "<button>Send</button></form></section>"
    )


SCHEDULE_ACTIONS: Final = {
    "schedule-agent": "Set these hours",
    "day-off-agent": "Day off",
    "as-planned-agent": "As planned",
}
"""A supervisor's buttons on an agent's day (``agent schedule``): the hours typed, a day
off, the schedule's own hours again."""


def _schedule_section(aid: str, back: str, days: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for day in days:
        when = date.fromisoformat(str(day["day"]))
        hours = ", ".join(day["hours"]) or "off"
        note = f"changed by {day.get('via', '')}" if day.get("changed") else ""
        rows.append(f"<tr><td>{when:%a %d %b}</td><td>{_e(hours)}</td><td>{_e(note)}</td></tr>")
    buttons = "".join(
        f'<button name="action" value="{action}"{css}>{_e(label)}</button> '
        for (action, label), css in zip(
            SCHEDULE_ACTIONS.items(), (' class="main"', "", ""), strict=True
        )
    )
    return (
        '<section id="schedule"><h2>Schedule</h2><table><tr><th>day</th><th>hours</th>'
        "<th></th></tr>" + "".join(rows) + "</table>"
        '<form method="post" action="/desktop/act">'
        f'<input type="hidden" name="agent" value="{_e(aid)}">'
        f'<input type="hidden" name="back" value="{_e(back)}">'
        f'<label>Day <input name="day" type="date" value="{_e(str(days[0]["day"]))}"></label> '
        '<label>Hours <input name="hours" placeholder="10:00-14:00, 15:00-19:00"></label> '
        f"{buttons}</form><p><small>A swapped shift, an extra day or a day off, in the "
        "schedule's time zone; kept across restarts until set back.</small></p></section>"
    )


def schedule_said(agent: str, day: Mapping[str, Any]) -> str:
    """What a supervisor's page says once a day of an agent's schedule changed."""
    hours = ", ".join(day["hours"]) or "a day off"
    how = "" if day.get("changed") else " (as the schedule says)"
    return f"Agent {agent} on {day['day']}: {hours}{how}"


def pauses_said(pauses: Sequence[PauseTotal]) -> str:
    """``break 2 (25:00, longest 15:00), lunch 1 (30:00)``: an agent's pauses of a day per
    reason, one going on marked."""
    said = []
    for pause in pauses:
        spent = clock(pause.seconds)
        longest = f", longest {clock(pause.longest)}" if pause.pauses > 1 else ""
        now = ", one now" if pause.going_on else ""
        said.append(f"{pause.reason or 'no reason'} {pause.pauses} ({spent}{longest}{now})")
    return ", ".join(said)


def skills_of(form: Mapping[str, str]) -> dict[str, int]:
    """The skill levels typed on an agent's page (``skill:<name>`` fields; 0 or empty:
    not that skill). A level that is no whole number becomes -1, which the engine refuses
    with its own message."""
    levels: dict[str, int] = {}
    for key, value in form.items():
        if not key.startswith("skill:") or not value.strip():
            continue
        text = value.strip()
        level = int(text) if text.lstrip("-").isdigit() else -1
        if level != 0:
            levels[key.removeprefix("skill:")] = level
    return levels


def skills_said(agent: str, skills: Mapping[str, int], *, reset: bool) -> str:
    """What a supervisor's page says once an agent's skills changed."""
    shown = ", ".join(f"{k} {v}" for k, v in sorted(skills.items())) or "none"
    if reset:
        return f"Agent {agent} has the config's skills again: {shown}"
    return f"Agent {agent}'s skills: {shown}"
