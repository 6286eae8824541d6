"""Agents as a state machine: one enum, one transition table, one mutable object per agent.

::

    LOGGED_OUT --login--> AVAILABLE --offer--> RINGING --answer--> ON_CALL --call ends--> WRAP_UP
                          ^   |  ^               |                                        |
                          |   |  +--ring failed--+                                        |
                          |   |  +--------------- wrap-up over ---------------------------+
                          |   +--pause--> PAUSED
                          +----unpause------+

Logging out never strands an agent: from AVAILABLE, PAUSED or WRAP_UP it is immediate; while
RINGING the offer is revoked and the agent leaves at once; while ON_CALL the router marks
``logout_pending`` and applies it when the call ends (the table's ON_CALL -> LOGGED_OUT edge).
A pause asked for while RINGING or ON_CALL is likewise kept in ``pending_pause`` and applied
when the ring or the call ends (RINGING/ON_CALL -> PAUSED). After a call of a queue with
``disposition_required`` the agent ``owes_disposition``: WRAP_UP lasts until the code comes,
and an unpause while it is owed goes back to WRAP_UP (PAUSED -> WRAP_UP).

An AVAILABLE agent is offered calls only when it is also *ready*: not inside a no-answer,
busy or reject delay (``delayed``), with a device the PBX can reach (``device_unreachable``:
a softphone that is not registered, as app_queue skips "Unavailable" members) and, for
queues that do not ring agents in use, with a device that is not busy (``device_busy``, from
the PBX's device states). Readiness is not a state of the table: the agent is still
AVAILABLE (and shown so), only not offered.

The :class:`~callcenter.acd.router.Router` owns every move; :meth:`Agent.move` only enforces
the table and stamps the time.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from callcenter.errors import IllegalTransition


class AgentState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


_S = AgentState

TRANSITIONS: Mapping[AgentState, frozenset[AgentState]] = MappingProxyType(
    {
        # Login lands in AVAILABLE; PAUSED is for a login that starts on a break, WRAP_UP
        # for a shift taken back after a restart whose last call still waits for its code.
        _S.LOGGED_OUT: frozenset({_S.AVAILABLE, _S.PAUSED, _S.WRAP_UP}),
        _S.AVAILABLE: frozenset({_S.RINGING, _S.PAUSED, _S.LOGGED_OUT}),
        # RINGING -> PAUSED applies a pause requested while the phone rang, once the ring fails;
        # RINGING -> LOGGED_OUT is a logout that revokes the offer.
        _S.RINGING: frozenset({_S.ON_CALL, _S.AVAILABLE, _S.PAUSED, _S.LOGGED_OUT}),
        # ON_CALL -> PAUSED / LOGGED_OUT apply a pending pause / logout when the call ends.
        _S.ON_CALL: frozenset({_S.WRAP_UP, _S.AVAILABLE, _S.PAUSED, _S.LOGGED_OUT}),
        _S.WRAP_UP: frozenset({_S.AVAILABLE, _S.PAUSED, _S.LOGGED_OUT}),
        # PAUSED -> WRAP_UP: unpaused while the last call still waits for its disposition.
        _S.PAUSED: frozenset({_S.AVAILABLE, _S.WRAP_UP, _S.LOGGED_OUT}),
    }
)
"""Every legal move of an agent; anything else raises IllegalTransition."""


@dataclass(eq=False)
class Agent:
    """One configured agent (or supervisor). Mutable; the router is its only writer.

    Times are ``time.monotonic()`` values (or the router's injected clock).
    """

    id: str
    name: str = ""
    device: str = ""
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = field(default_factory=time.monotonic)
    idle_since: float = 0.0
    """When the agent last became AVAILABLE (login, unpause) or finished a call: the
    longest-idle key. A failed ring or a released reservation leaves it unchanged."""
    pause_reason: str | None = None
    pause_via: str | None = None
    """Who paused the agent: ``auto`` (autopause, the reason says why), ``cli``, ``api``,
    ``phone`` ...; None when not paused."""
    logged_in_at: float | None = None
    calls_taken: int = 0
    missed_offers: int = 0
    logout_pending: bool = False
    """A logout was asked for while ON_CALL; it happens when the call ends."""
    pending_pause: str | None = None
    """The reason of a pause asked for while RINGING or ON_CALL; applied when that ends."""
    owes_disposition: bool = False
    """The call that ended was of a queue with ``disposition_required``: wrap-up lasts until
    the agent gives it a code (:meth:`Router.disposed`)."""
    call_id: str | None = None
    """The call the agent is being offered or is talking to (None for a direct reservation)."""
    idle_token: int = field(default=0, repr=False)
    """Bumped whenever the agent enters or leaves AVAILABLE or its readiness changes; idle
    pools use it to spot stale entries (lazy deletion)."""
    skills: dict[str, int] = field(default_factory=dict)
    """Skill name -> level (1-10, higher is more proficient)."""
    wrapup: float | None = None
    """Seconds of after-call work for this agent; None: the queue's ``wrapup``."""
    autopause: int | None = None
    """Pause after this many unanswered offers in a row (0: never); None: the queue's."""
    talk_seconds: float = 0.0
    """Talk time of every call since start-up (least-talk-time routing)."""
    no_answer_streak: int = 0
    """Offers in a row that failed in ways the queue's ``autopause_on`` counts (reset by an
    answer, a pause and its end)."""
    device_busy: bool = False
    """The PBX says the agent's device is in use (ringing, talking) outside our offers."""
    device_unreachable: bool = False
    """The PBX says the agent's device cannot be called (not registered): never offered."""
    delayed: bool = False
    """AVAILABLE but inside a no-answer, busy or reject delay: not offered until it ends."""
    desk: str | None = None
    """Hot desking: the phone the agent logged in at for this shift, when not their own
    (``device`` is then that phone; the configured one is back at logout)."""
    home_device: str = ""
    """The agent's own device, as configured (``device`` when not hot-desking)."""
    on_line: bool = False
    """``device`` reaches the agent's open line (``*70``, :mod:`callcenter.line`), not a
    phone that rings."""

    def __post_init__(self) -> None:
        if not self.home_device:
            self.home_device = self.device

    def move(self, new: AgentState, *, now: float | None = None) -> AgentState:
        """Go to ``new`` if the table allows it; returns the previous state.

        Raises IllegalTransition (leaving the agent untouched) otherwise.
        """
        old = self.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"agent {self.id}: cannot go from {old} to {new}")
        self.state = new
        self.state_since = time.monotonic() if now is None else now
        return old

    def time_in_state(self, now: float | None = None) -> float:
        """Seconds spent in the current state."""
        current = time.monotonic() if now is None else now
        return max(0.0, current - self.state_since)
