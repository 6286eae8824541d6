"""Campaign leads as records: where each lead of each campaign stands, kept across restarts.

:class:`CampaignRecorder` folds the campaign events into one ``campaign_leads`` row per
(campaign, lead), written through the record writer::

    CampaignDialing        -> status "dialing", attempts = that try
    CampaignAnswered       -> status "answered", call_id (the call's CDR uniqueid)
    CampaignAttemptFailed  -> status "retry" (retry_at) or, when final, "failed"; result
                              = why (busy, no-answer, rejected, unavailable,
                              congestion, failed, originate-failed, machine,
                              abandoned: then also dropped_at, kept from then on)
    CampaignLeadSkipped    -> status "skipped"; result = do-not-call or not-allowed
    CampaignLeadRescheduled -> status "retry", result "callback", tries 0, retry_at (the
                              person asked an agent to be called again); without
                              retry_at (called off), "answered" again
    CampaignLeadRecycled   -> status "retry", result "recycled", tries 0, retry_at now (a
                              failed lead tried again: ``campaign recycle``)

A row that reached answered, failed or skipped stays so (but for an answered one moving to
a callback, and a failed one recycled). A restarted daemon reads the rows
back (:meth:`~callcenter.outbound.campaign.Campaign.load`): answered, failed and skipped
leads are not called again, and the others keep their tries and retry times.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from callcenter.events import (
    CampaignAnswered,
    CampaignAttemptFailed,
    CampaignDialing,
    CampaignLeadRecycled,
    CampaignLeadRescheduled,
    CampaignLeadSkipped,
    EngineEvent,
)
from callcenter.outbound.campaign import ABANDONED, CALLBACK, RECYCLED, LeadRecord
from callcenter.records.writer import RecordWriter


class CampaignLeadStore(Protocol):
    """Where campaign lead rows go (blocking calls, run in the writer's thread)."""

    def write_campaign_lead(self, record: LeadRecord) -> bool: ...


class CampaignRecorder:
    """Event-bus listener keeping the ``campaign_leads`` rows up to date (the writer is
    the CDR recorder's; starting and closing it is its owner's job)."""

    @staticmethod
    def kinds() -> tuple[type[EngineEvent], ...]:
        """The events this recorder reads (``EventBus.subscribe``'s ``kinds``)."""
        return tuple(_FOLDS)

    def __init__(self, store: CampaignLeadStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    @staticmethod
    def fold(event: EngineEvent) -> LeadRecord | None:
        """The lead's row after ``event`` (None: an event that moves no lead)."""
        fold = _FOLDS.get(type(event))
        return fold(event) if fold is not None else None

    def on_event(self, event: EngineEvent) -> None:
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
    return _row(e, "skipped", 0, e.reason)


_FOLDS: Mapping[type[EngineEvent], Callable[[Any], LeadRecord]] = {
    CampaignDialing: _dialing,
    CampaignAnswered: _answered,
    CampaignAttemptFailed: _failed,
    CampaignLeadSkipped: _skipped,
    CampaignLeadRescheduled: _rescheduled,
    CampaignLeadRecycled: _recycled,
}

__all__ = ["CampaignLeadStore", "CampaignRecorder"]
