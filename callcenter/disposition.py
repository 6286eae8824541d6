"""Dispositions: the call each agent talks on or talked on last, and the code they give it.

An agent answering a caller (or a lead, or the person they dialled) talks on that call until
the next one: :class:`Dispositions` keeps it per agent, for the code the agent gives it
(:meth:`Dispositions.dispose`: one of the call's campaign's or queue's ``dispositions``,
with a note or a time to call back where the code says so), for the codes their desktop
offers, and for what else reads "the agent's call": their block list key, ``*77`` alone
(call the last number back) and an erasure (the number becomes its token here too). A
queue with ``disposition_required`` keeps its agents in wrap-up until they give one; a
restarted daemon takes back the codes still owed (:meth:`Dispositions.owed_taken_back`).

The switchboard owns one (``Switchboard.dispositions``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from callcenter.acd.rules import disposition_codes
from callcenter.errors import EngineError, UnknownAgent
from callcenter.events import CallDisposed, DispositionOwed

if TYPE_CHECKING:
    from callcenter.switchboard import Switchboard

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AgentCall:
    """The call an agent talks on or last talked on: what a disposition is given to."""

    call_id: str
    number: str
    queue: str
    campaign: str
    lead: str


class Dispositions:
    """The call each agent talks or talked on last, and the codes given to it (see the
    module doc)."""

    def __init__(self, board: Switchboard) -> None:
        self.board = board
        self._calls: dict[str, AgentCall] = {}
        """Agent id -> the call they talk on, or talked on last."""

    def talks_on(self, agent_id: str, call: AgentCall) -> None:
        """``agent_id`` was put through to ``call``: the one their next code is for."""
        self._calls[agent_id] = call

    def call_of(self, agent_id: str) -> AgentCall | None:
        """The call ``agent_id`` talks on or talked on last; None before any."""
        return self._calls.get(agent_id)

    def dispose(
        self, agent_id: str, code: str, note: str = "", at: datetime | None = None
    ) -> dict[str, Any]:
        """The agent gives the call they talk on (or talked on last) the disposition
        ``code`` (``at``: when the person asked to be called again, for a ``callback``
        code). Raises UnknownAgent, or EngineError for a code, time or call that will not
        do."""
        if agent_id not in self.board.router.agents:
            raise UnknownAgent(f"unknown agent {agent_id}")
        codes = self.board.config.dispositions
        disposition = codes.get(code)
        if disposition is None:
            known = ", ".join(codes) or "none are configured (dispositions:)"
            raise EngineError(f"unknown disposition {code!r}; use one of: {known}")
        call = self._calls.get(agent_id)
        if call is None:
            raise EngineError(f"agent {agent_id} has had no call to give a disposition to")
        allowed = disposition_codes(self.board.config, call.queue, call.campaign)
        if code not in allowed:
            whose = f"campaign {call.campaign}" if call.campaign else f"queue {call.queue}"
            raise EngineError(
                f"disposition {code!r} is not one of {whose}'s: {', '.join(allowed) or 'none'}"
            )
        if disposition.note_required and not note.strip():
            raise EngineError(f"disposition {code!r} needs a note: say why")
        if disposition.callback != (at is not None):
            need = "needs the time to call back (--at)" if at is None else "takes no time"
            raise EngineError(f"disposition {code!r} {need}")
        if at is not None and at <= datetime.now(UTC):
            raise EngineError(f"the time to call back ({at.isoformat()}) has passed")
        number = call.number
        if call.campaign and call.lead:
            known_lead = self.board.find_lead(call.campaign, call.lead)
            number = known_lead.number if known_lead is not None else number
        elif at is not None and not self.board.callbacks.allowed(self.board.config, number):
            raise EngineError(
                f"{number!r} cannot be called back (acd.callback_dial, acd.callback_allow)"
            )
        self.board.bus.publish(
            CallDisposed(
                call_id=call.call_id,
                agent=agent_id,
                code=code,
                note=note,
                number=number,
                queue=call.queue,
                campaign=call.campaign,
                lead=call.lead,
                callback_at=at,
                do_not_call=disposition.do_not_call,
            )
        )
        log.info("call_disposed", call_id=call.call_id, agent=agent_id, code=code)
        self.board.router.disposed(agent_id)
        if not call.campaign:
            if at is not None:
                self.board.callbacks.promise(call.call_id, call.queue, number, at, agent=agent_id)
            elif self.board.callbacks.call_off_promise(call.call_id):
                log.info("timed_callback_called_off", call_id=call.call_id)
        return {"call_id": call.call_id, "code": code, "campaign": call.campaign, "lead": call.lead}

    def codes_for(self, agent_id: str) -> list[str]:
        """The codes ``agent_id`` may give the call they talk on or talked on last (its
        campaign's or queue's ``dispositions``); every code before any call."""
        call = self._calls.get(agent_id)
        if call is None:
            return list(self.board.config.dispositions)
        return disposition_codes(self.board.config, call.queue, call.campaign)

    def last_call_of(self, agent_id: str) -> tuple[str, str] | None:
        """The number and queue of the call ``agent_id`` talks on or talked on last (the
        caller's number, or the one the daemon dialled); None when none since the start."""
        call = self._calls.get(agent_id)
        return (call.number, call.queue) if call is not None else None

    def owed_taken_back(self, owed: DispositionOwed) -> None:
        """A restarted daemon takes back the code an agent still owes a call (their shift
        was resumed with ``owes_disposition``): :meth:`dispose` gives it to that call, and
        the records keep owing it until then."""
        self._calls[owed.agent] = AgentCall(
            owed.call_id, owed.number, owed.queue, owed.campaign, owed.lead
        )
        self.board.bus.publish(owed)

    def owed(self, agent_id: str, call_id: str) -> None:
        """The router's word that ``agent_id`` owes call ``call_id`` a code (its queue's
        ``disposition_required``): said on the bus with the call's number and campaign."""
        call = self._calls.get(agent_id)
        if call is None or call.call_id != call_id:
            log.warning("owed_call_unknown", agent=agent_id, call_id=call_id)
            return
        self.board.bus.publish(
            DispositionOwed(
                agent=agent_id,
                call_id=call_id,
                number=call.number,
                queue=call.queue,
                campaign=call.campaign,
                lead=call.lead,
            )
        )

    def forget_numbers(self, pattern: re.Pattern[str], tokens: Mapping[str, str]) -> None:
        """An erasure took these numbers out of the records: the agents' last calls (what
        ``*77`` alone calls back, what a disposition is given to) hold the tokens instead."""
        for agent_id, call in self._calls.items():
            if pattern.fullmatch(call.number):
                self._calls[agent_id] = dataclasses.replace(call, number=tokens[call.number])
