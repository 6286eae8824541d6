"""Campaign leads as records: where each lead of each campaign stands, kept across restarts.

:class:`CampaignRecorder` folds the campaign events into one ``campaign_leads`` row per
(campaign, lead), written through the record writer::

    CampaignDialing        -> status "dialing", attempts = that try
    CampaignAnswered       -> status "answered", call_id (the call's CDR uniqueid)
    CampaignAttemptFailed  -> status "retry" (retry_at) or, when final, "failed"; result
                              = why (no-answer, originate-failed)
    CampaignLeadSkipped    -> status "skipped"; result = do-not-call or not-allowed

A row that reached answered, failed or skipped stays so. A restarted daemon reads the rows
back (:meth:`~callcenter.outbound.campaign.Campaign.load`): answered, failed and skipped
leads are not called again, and the others keep their tries and retry times.
"""

from __future__ import annotations

import functools
from typing import Protocol

from callcenter.events import (
    CampaignAnswered,
    CampaignAttemptFailed,
    CampaignDialing,
    CampaignLeadSkipped,
    EngineEvent,
)
from callcenter.outbound.campaign import LeadRecord
from callcenter.records.writer import RecordWriter


class CampaignLeadStore(Protocol):
    """Where campaign lead rows go (blocking calls, run in the writer's thread)."""

    def write_campaign_lead(self, record: LeadRecord) -> bool: ...


class CampaignRecorder:
    """Event-bus listener keeping the ``campaign_leads`` rows up to date (the writer is
    the CDR recorder's; starting and closing it is its owner's job)."""

    def __init__(self, store: CampaignLeadStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer

    def on_event(self, event: EngineEvent) -> None:
        fold = _FOLDS.get(type(event))
        if fold is not None:
            record = fold(event)
            # One key per lead: the writer keeps a key's writes in order.
            key = f"campaign-lead:{record.campaign}:{record.lead}"
            self.writer.submit(key, functools.partial(self.store.write_campaign_lead, record))


def _dialing(event: EngineEvent) -> LeadRecord:
    assert isinstance(event, CampaignDialing)
    return LeadRecord(
        campaign=event.campaign,
        lead=event.lead,
        number=event.number,
        status="dialing",
        attempts=event.attempt,
        updated=event.at,
    )


def _answered(event: EngineEvent) -> LeadRecord:
    assert isinstance(event, CampaignAnswered)
    return LeadRecord(
        campaign=event.campaign,
        lead=event.lead,
        number=event.number,
        status="answered",
        attempts=event.attempt,
        result="answered",
        call_id=event.call_id,
        updated=event.at,
    )


def _failed(event: EngineEvent) -> LeadRecord:
    assert isinstance(event, CampaignAttemptFailed)
    return LeadRecord(
        campaign=event.campaign,
        lead=event.lead,
        number=event.number,
        status="failed" if event.final else "retry",
        attempts=event.attempt,
        result=event.reason,
        retry_at=event.retry_at,
        updated=event.at,
    )


def _skipped(event: EngineEvent) -> LeadRecord:
    assert isinstance(event, CampaignLeadSkipped)
    return LeadRecord(
        campaign=event.campaign,
        lead=event.lead,
        number=event.number,
        status="skipped",
        attempts=0,
        result=event.reason,
        updated=event.at,
    )


_FOLDS = {
    CampaignDialing: _dialing,
    CampaignAnswered: _answered,
    CampaignAttemptFailed: _failed,
    CampaignLeadSkipped: _skipped,
}

__all__ = ["CampaignLeadStore", "CampaignRecorder"]
