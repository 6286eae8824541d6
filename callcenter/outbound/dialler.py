"""Campaigns' dials: what the switchboard does with a campaign's lead.

A :class:`~callcenter.outbound.campaign.Campaign` decides whom to dial and when; the
:class:`Dialler` places the call and looks after the person who answers:

* **progressive** and **preview** (:meth:`Dialler.dial_lead`): the lead waits in the
  campaign's queue for an agent like a caller, the agent is reserved (shown the lead first
  with ``preview_seconds``: dial, skip, or the campaign's choice at the timeout), then the
  number is dialled and whoever answers takes the place and is put through to that agent;
* **predictive** (:meth:`Dialler.dial_predictive`): dialled at once with nobody reserved; a
  lead who answers joins the queue before everyone and gets the first free agent, or hears
  the drop prompt after ``drop_after`` seconds;
* an **answering machine** (``amd=MACHINE``) gets the campaign's message or a hang-up;
* a lead answering a dial nobody waits for any more (placed before a restart) is put
  through to the campaign's queue rather than hung up on.

The switchboard owns one (``Switchboard.dialler``); it is the campaigns'
:class:`~callcenter.outbound.campaign.Dialer`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from callcenter.acd.router import RingOutcome
from callcenter.callback import KeptPlace, PendingCallback
from callcenter.config.models import CallCenterConfig, QueueExit
from callcenter.errors import EngineError
from callcenter.events import (
    CallAnswered,
    CampaignAnswered,
    CampaignDialing,
    CampaignLeadWaiting,
    CampaignMachineAnswered,
    CampaignPreview,
    IvrVariableSet,
)
from callcenter.outbound.campaign import ABANDONED, AGENT_SKIPPED, LeadCall

if TYPE_CHECKING:
    from callcenter.pbx.interface import Call
    from callcenter.switchboard import ActiveCall, Switchboard

log = structlog.get_logger(__name__)

ANSWERED_LEAD_PRIORITY = 1_000_000
"""Queue priority of a lead who answered a predictive dial: before everyone, since they are
dropped after a couple of seconds without an agent."""
DROPPED = "dropped"
"""QueueExited reason of a predictive campaign's lead dropped for want of an agent."""


@dataclass(slots=True)
class Preview:
    """A lead shown to the agent reserved for it, waiting for the agent's word."""

    lead: LeadCall
    agent: str
    decision: asyncio.Future[str]
    until: float
    """Monotonic time the agent has until."""


class Dialler:
    """Places campaigns' dials and takes their answered leads through (see the module doc)."""

    def __init__(self, board: Switchboard) -> None:
        self.board = board
        self.router = board.router
        self.bus = board.bus
        self._leads_on_hold: dict[str, PendingCallback] = {}
        """Call id -> the predictive dial of a lead who answered and waits for an agent."""
        self._previews: dict[str, Preview] = {}
        """Agent id -> the lead a preview campaign shows them."""

    @property
    def pbx_up(self) -> bool:
        """A PBX is attached and its link is up (campaigns dial only then)."""
        return self.board.pbx_up

    def free_agents(self, queue: str) -> int:
        """Agents of ``queue`` idle and ready, less the callers waiting for one."""
        return self.router.free_agents(queue)

    async def dial_lead(self, lead: LeadCall, reserved: Callable[[], None]) -> str:
        """One try of a campaign's lead: wait in ``lead.queue`` (at ``lead.priority``) for
        an agent, call ``reserved()``, dial the lead with the agent reserved. Returns ``""``
        once they answered (their call has the place and is put through to the agent),
        else why not: ``no-answer``, ``originate-failed``, or, for a try that was not made,
        ``pbx-down``, ``no-pbx``, ``no-agents``. Cancelled, the dial leaves the queue."""
        config = self.board.config
        origin = lead.origin
        if self.board.pbx is None:
            return "no-pbx"
        entry = self.router.enqueue(lead.queue, origin, priority=lead.priority)
        entry.campaign = lead.campaign
        kept = KeptPlace(
            entry, lead.number, entry.joined, config, asyncio.current_task(), lead=lead
        )
        self.board.callbacks.kept[origin] = kept
        try:
            agents = await self.router.next_agents(entry)
            if not agents:
                return "no-agents"
            if lead.preview_seconds > 0:
                decision = await self._preview(lead, agents[0].id)
                if decision != "dial":
                    for agent in list(entry.agents):
                        self.router.ring_failed(entry, agent, RingOutcome.CANCELLED)
                    return AGENT_SKIPPED if decision == "skip" else "no-agents"
            reserved()
            self._dialing(lead, agents[0].id)
            reason = await self.board.place_callback(
                kept, device=lead.device, caller_id=lead.caller_id, ring_timeout=lead.ring_timeout
            )
            if reason:
                for agent in list(entry.agents):
                    self.router.ring_failed(entry, agent, RingOutcome.CANCELLED)
            return reason
        finally:
            if entry.call_id == origin:
                self.router.leave(entry)
            if self.board.callbacks.kept.get(origin) is kept:
                del self.board.callbacks.kept[origin]

    async def _preview(self, lead: LeadCall, agent_id: str) -> str:
        """Show ``lead`` to ``agent_id`` (reserved for it) and wait for their word, or
        ``lead.preview_seconds``: ``dial``, ``skip`` or ``withdrawn`` (they left)."""
        loop = asyncio.get_running_loop()
        preview = Preview(
            lead, agent_id, loop.create_future(), time.monotonic() + lead.preview_seconds
        )
        self._previews[agent_id] = preview

        def shown(decision: str) -> CampaignPreview:
            return CampaignPreview(
                campaign=lead.campaign,
                lead=lead.lead,
                number=lead.number,
                agent=agent_id,
                seconds=lead.preview_seconds,
                data=lead.data,
                decision=decision,
            )

        self.bus.publish(shown(""))
        log.info("campaign_preview", campaign=lead.campaign, lead=lead.lead, agent=agent_id)
        said = "withdrawn"
        try:
            try:
                said = await asyncio.wait_for(
                    asyncio.shield(preview.decision), lead.preview_seconds
                )
            except TimeoutError:
                said = f"timeout-{lead.preview_timeout}"
        finally:
            if self._previews.get(agent_id) is preview:
                del self._previews[agent_id]
            self.bus.publish(shown(said))
            log.info("campaign_preview_decided", lead=lead.lead, agent=agent_id, decision=said)
        return said.removeprefix("timeout-")

    def preview_decision(self, agent_id: str, decision: str) -> dict[str, Any]:
        """The agent's word on the lead they are shown: ``dial`` or ``skip``. Raises
        EngineError when nothing is shown to them."""
        preview = self._previews.get(agent_id)
        if preview is None or preview.decision.done():
            raise EngineError(f"agent {agent_id} has no lead to preview")
        preview.decision.set_result(decision)
        lead = preview.lead
        return {"campaign": lead.campaign, "lead": lead.lead, "decision": decision}

    def withdraw_preview(self, agent_id: str) -> None:
        """The agent shown a lead logged out: the lead is not dialled for them."""
        preview = self._previews.get(agent_id)
        if preview is not None and not preview.decision.done():
            preview.decision.set_result("withdrawn")

    def previews(self) -> list[dict[str, Any]]:
        """The leads shown to agents now (``/status``): what the agent's screen shows."""
        now = time.monotonic()
        return [
            {
                "agent": p.agent,
                "campaign": p.lead.campaign,
                "lead": p.lead.lead,
                "number": p.lead.number,
                "data": dict(p.lead.data),
                "seconds_left": round(max(0.0, p.until - now), 1),
            }
            for p in self._previews.values()
        ]

    def _dialing(self, lead: LeadCall, agent: str) -> None:
        """Say that ``lead`` is being dialled (``agent`` reserved for them, or ``""``)."""
        self.bus.publish(
            CampaignDialing(
                campaign=lead.campaign,
                lead=lead.lead,
                number=lead.number,
                queue=lead.queue,
                agent=agent,
                attempt=lead.attempt,
            )
        )
        log.info(
            "campaign_dialing",
            campaign=lead.campaign,
            lead=lead.lead,
            agent=agent,
            attempt=lead.attempt,
        )

    async def dial_predictive(
        self, lead: LeadCall, placed: Callable[[], None], answered: Callable[[], None]
    ) -> str:
        """One predictive try of a campaign's lead: dial at once (``placed()``), nobody
        reserved. Answered (``answered()``), they join ``lead.queue`` before everyone and
        get the first free agent: ``""``; with none within ``lead.drop_after`` seconds they
        hear ``lead.drop_prompt`` and are cleared (or hang up first): ``abandoned``. Else
        why not, as :meth:`dial_lead`."""
        if self.board.pbx is None:
            return "no-pbx"
        loop = asyncio.get_running_loop()
        pending = PendingCallback(
            None, loop.create_future(), lead=lead, settled=loop.create_future()
        )
        assert pending.settled is not None
        placed()
        self._dialing(lead, "")
        reason = await self.board.originate(
            lead.origin,
            pending,
            self.board.config,
            device=lead.device,
            caller_id=lead.caller_id,
            ring_timeout=lead.ring_timeout,
            context=lead.context,
        )
        if reason:
            return reason
        answered()
        return await pending.settled

    async def predictive_answered(
        self, call: Call, active: ActiveCall, config: CallCenterConfig, pending: PendingCallback
    ) -> str:
        """A lead answered a predictive dial: first in the queue for ``drop_after``
        seconds, then dropped with the drop prompt."""
        lead, settled = pending.lead, pending.settled
        assert lead is not None and settled is not None
        info = call.info
        call_id = info.call_id
        self._leads_on_hold[call_id] = pending
        try:
            await call.answer()
            self.bus.publish(CallAnswered(call_id=call_id))
            entry = self.router.enqueue(lead.queue, call_id, priority=ANSWERED_LEAD_PRIORITY)
            active.queue = lead.queue
            active.queue_hops += 1
            self.bus.publish(
                CampaignLeadWaiting(
                    call_id=call_id,
                    campaign=lead.campaign,
                    lead=lead.lead,
                    number=lead.number,
                    queue=lead.queue,
                    attempt=lead.attempt,
                    drop_after=lead.drop_after,
                )
            )
            self.lead_on_the_line(active, lead.queue, lead, lead.number, put_through=False)
            now = time.monotonic()
            drop = QueueExit(to="hangup", prompt=lead.drop_prompt)
            return await self.board.back_in_queue(
                call,
                active,
                config,
                entry,
                joined=now,
                deadline=now + lead.drop_after,
                on_timeout=(DROPPED, drop),
            )
        finally:
            self._leads_on_hold.pop(call_id, None)
            if not settled.done():
                log.info("campaign_lead_dropped", call_id=call_id, campaign=lead.campaign)
                settled.set_result(ABANDONED)

    async def machine_answered(self, call: Call, active: ActiveCall, lead: LeadCall) -> str:
        """An answering machine took a campaign's dial: leave the campaign's message on it
        (``machine: message``) and hang up; who ended the call."""
        call_id = call.info.call_id
        await call.answer()
        self.bus.publish(CallAnswered(call_id=call_id))
        action = "message" if lead.machine == "message" and lead.machine_prompt else "hangup"
        self.bus.publish(
            CampaignMachineAnswered(
                call_id=call_id,
                campaign=lead.campaign,
                lead=lead.lead,
                number=lead.number,
                attempt=lead.attempt,
                action=action,
            )
        )
        self.lead_on_the_line(active, "", lead, lead.number, put_through=False)
        log.info("campaign_machine", call_id=call_id, campaign=lead.campaign, action=action)
        if action == "message" and lead.machine_prompt:
            await call.play([lead.machine_prompt])
        return "system"

    @property
    def holding(self) -> bool:
        """Leads of predictive dials answered and waiting for an agent."""
        return bool(self._leads_on_hold)

    def lead_put_through(self, call_id: str) -> None:
        """The agent answered a predictive campaign's lead: the lead is answered."""
        pending = self._leads_on_hold.pop(call_id, None)
        if pending is None or pending.lead is None or pending.settled is None:
            return
        lead = pending.lead
        self._lead_answered(call_id, lead.queue, lead, lead.number)
        if not pending.settled.done():
            pending.settled.set_result("")

    def _lead_answered(self, call_id: str, queue: str, lead: LeadCall, number: str) -> None:
        self.bus.publish(
            CampaignAnswered(
                call_id=call_id,
                campaign=lead.campaign,
                lead=lead.lead,
                number=number,
                queue=queue,
                attempt=lead.attempt,
            )
        )
        log.info("campaign_answered", call_id=call_id, campaign=lead.campaign, lead=lead.lead)

    def lead_on_the_line(
        self,
        active: ActiveCall,
        queue: str,
        lead: LeadCall,
        number: str,
        *,
        put_through: bool = True,
    ) -> None:
        """A campaign's lead answered on call ``active``: give the agent's screen (and the
        CDR) the lead's columns and, when an agent waits for them (``put_through``), say
        they answered."""
        call_id = active.call.info.call_id
        active.campaign = lead.campaign
        active.called = number
        if put_through:
            self._lead_answered(call_id, queue, lead, number)
        for name, value in (("campaign", lead.campaign), ("lead", lead.lead), *lead.data):
            active.variables[name] = value
            self.bus.publish(
                IvrVariableSet(
                    call_id=call_id, flow="campaign", node=lead.campaign, name=name, value=value
                )
            )

    async def lead_answered_unawaited(
        self,
        call: Call,
        active: ActiveCall,
        config: CallCenterConfig,
        campaign: str,
        lead: str,
        *,
        machine: bool = False,
    ) -> str:
        """A campaign's lead answered a dial nobody waits for (placed before a restart):
        they are put through to the next free agent of the campaign's queue, ahead of the
        campaign's other dials, rather than hung up on (an answering machine is dealt with
        as the campaign says)."""
        settings = config.campaigns[campaign]
        info = call.info
        queue_name = settings.queue
        known = self.board.find_lead(campaign, lead)
        number = known.number if known is not None else info.caller_num
        unawaited = LeadCall(
            campaign=campaign,
            lead=lead,
            number=number,
            queue=queue_name,
            device="",
            caller_id="",
            ring_timeout=settings.ring_timeout,
            priority=settings.priority,
            attempt=0,
            data=known.data if known is not None else (),
            machine=settings.machine,
            machine_prompt=settings.machine_prompt,
        )
        if machine and settings.machine != "agent":
            return await self.machine_answered(call, active, unawaited)
        await call.answer()
        self.bus.publish(CallAnswered(call_id=info.call_id))
        entry = self.router.enqueue(queue_name, info.call_id, priority=max(0, settings.priority))
        active.queue = queue_name
        active.queue_hops += 1
        self.lead_on_the_line(active, queue_name, unawaited, number)
        return await self.board.back_in_queue(call, active, config, entry, joined=time.monotonic())
