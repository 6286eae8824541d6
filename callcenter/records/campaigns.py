"""Campaign leads as records: where each lead of each campaign stands, kept across restarts.

:class:`CampaignRecorder` folds the campaign events into one ``campaign_leads`` row per
(campaign, lead), written through the record writer::

    CampaignDialing        -> status "dialing", attempts = that try
    CampaignAnswered       -> status "answered", call_id (the call's CDR uniqueid)
    CampaignAttemptFailed  -> status "retry" (retry_at) or, when final, "failed"; result
                              = why (busy, no-answer, rejected, unavailable,
                              congestion, failed, originate-failed, machine,
                              abandoned: then also dropped_at, kept from then on)
    CampaignLeadSkipped    -> status "skipped"; result = do-not-call, not-allowed or
                              removed (``campaign remove-lead``: tries kept)
    CampaignLeadRescheduled -> status "retry", result "callback", tries 0, retry_at (the
                              person asked an agent to be called again); without
                              retry_at (called off), "answered" again
    CampaignLeadRecycled   -> status "retry", result "recycled", tries 0, retry_at now (a
                              failed lead tried again: ``campaign recycle``)

A row that reached answered, failed or skipped stays so (but for an answered one moving to
a callback, and a failed one recycled). A restarted daemon reads the rows
back (:meth:`~callcenter.outbound.campaign.Campaign.load`): answered, failed and skipped
leads are not called again, and the others keep their tries and retry times.

A lead added while the campaign ran (``CampaignLeadAdded``) is kept in ``added_leads``
(:class:`AddedLead`): a restarted daemon lays those over the lead file.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from callcenter.events import (
    CampaignAnswered,
    CampaignAttemptFailed,
    CampaignDialing,
    CampaignLeadAdded,
    CampaignLeadRecycled,
    CampaignLeadRescheduled,
    CampaignLeadSkipped,
    EngineEvent,
)
from callcenter.outbound.campaign import ABANDONED, CALLBACK, RECYCLED, LeadRecord
from callcenter.outbound.leads import Lead
from callcenter.records.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class AddedLead:
    """A lead added to ``campaign`` while it ran (``campaign add-lead``): what the lead file
    would say of them (``data``: JSON of the other columns), since ``added`` (UTC)."""

    campaign: str
    lead: str
    number: str
    timezone: str
    data: str
    added: datetime
    via: str = ""
    priority: int = 0

    def as_lead(self) -> Lead:
        """The lead as the campaign dials it."""
        loaded = json.loads(self.data)
        pairs = (
            tuple((str(k), str(v)) for k, v in loaded.items()) if isinstance(loaded, dict) else ()
        )
        return Lead(self.lead, self.number, pairs, timezone=self.timezone, priority=self.priority)


class CampaignLeadStore(Protocol):
    """Where campaign lead rows go (blocking calls, run in the writer's thread)."""

    def write_campaign_lead(self, record: LeadRecord) -> bool: ...

    def write_added_lead(self, added: AddedLead) -> bool: ...


class CampaignRecorder:
    """Event-bus listener keeping the ``campaign_leads`` rows up to date (the writer is
    the CDR recorder's; starting and closing it is its owner's job)."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return (*_FOLDS, CampaignLeadAdded)

    def __init__(self, store: CampaignLeadStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    @staticmethod
    def fold(event: EngineEvent) -> LeadRecord | None:
        """The lead's row after ``event`` (None: an event that moves no lead)."""
        fold = _FOLDS.get(type(event))
        return fold(event) if fold is not None else None

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, CampaignLeadAdded):
            added = AddedLead(
                event.campaign,
                event.lead,
                event.number,
                event.timezone,
                json.dumps(event.data),
                event.at,
                event.via,
                event.priority,
            )
            key = f"campaign-added:{event.campaign}:{event.lead}"
            self.writer.submit(key, functools.partial(self.store.write_added_lead, added))
            return
        record = self.fold(event)
        if record is not None:
            # One key per lead: the writer keeps a key's writes in order.
            key = f"campaign-lead:{record.campaign}:{record.lead}"
            self.writer.submit(key, functools.partial(self.store.write_campaign_lead, record))


_LeadEvent = (
    CampaignDialing
    | CampaignAnswered
    | CampaignAttemptFailed
    | CampaignLeadSkipped
    | CampaignLeadRescheduled
    | CampaignLeadRecycled
)


def _row(e: _LeadEvent, status: str, attempts: int, result: str = "", **more: Any) -> LeadRecord:
    return LeadRecord(
        campaign=e.campaign,
        lead=e.lead,
        number=e.number,
        status=status,
        attempts=attempts,
        result=result,
        updated=e.at,
        **more,
    )


def _dialing(e: CampaignDialing) -> LeadRecord:
    return _row(e, "dialing", e.attempt)


def _answered(e: CampaignAnswered) -> LeadRecord:
    return _row(e, "answered", e.attempt, "answered", call_id=e.call_id)


def _failed(e: CampaignAttemptFailed) -> LeadRecord:
    status = "failed" if e.final else "retry"
    dropped = e.at if e.reason == ABANDONED else None
    return _row(e, status, e.attempt, e.reason, retry_at=e.retry_at, dropped_at=dropped)


def _rescheduled(e: CampaignLeadRescheduled) -> LeadRecord:
    if e.retry_at is None:
        return _row(e, "answered", e.attempts, "answered")
    return _row(e, "retry", 0, CALLBACK, retry_at=e.retry_at)


def _recycled(e: CampaignLeadRecycled) -> LeadRecord:
    return _row(e, "retry", 0, RECYCLED, retry_at=e.at)


def _skipped(e: CampaignLeadSkipped) -> LeadRecord:
    return _row(e, "skipped", e.attempts, e.reason)


_FOLDS: Mapping[type[EngineEvent], Callable[[Any], LeadRecord]] = {
    CampaignDialing: _dialing,
    CampaignAnswered: _answered,
    CampaignAttemptFailed: _failed,
    CampaignLeadSkipped: _skipped,
    CampaignLeadRescheduled: _rescheduled,
    CampaignLeadRecycled: _recycled,
}

__all__ = ["CampaignLeadStore", "CampaignRecorder"]
