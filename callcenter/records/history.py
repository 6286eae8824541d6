"""A caller's history: the earlier calls of one number, as an agent reads them while the
caller rings or talks (the desktop, ``GET /calls?number=``) and ``callcenter report
--number`` prints them.

Read from the CDRs (:meth:`~callcenter.records.store.RecordStore.fetch_number_calls`: the
number as the records hold it, ``src`` or ``dst``) with each call's disposition; a call the
centre placed (an agent's own dial, a callback, a campaign's lead) reads ``out``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

OUTBOUND_MARKS: Final = ("dialled_by", "callback_of", "campaign")
"""IVR variables of a call the centre placed: an agent's own dial, a callback, a lead."""


def earlier_call(row: Mapping[str, Any]) -> dict[str, Any]:
    """One call of a number's history from its CDR row (with ``code`` and ``note``):
    ``call_id``, ``start`` (ISO, UTC), ``direction`` (``in`` or ``out``), ``queue``,
    ``agent`` ("" when nobody talked to them), ``outcome`` (``answered``, ``abandoned``,
    ``voicemail``, or ``no agent``: the IVR or a queue rule ended it), ``wait_seconds``,
    ``talk_seconds``, ``code`` and ``note`` (the disposition, None when none)."""
    try:
        variables = json.loads(str(row.get("ivr_variables") or "{}"))
    except ValueError:
        variables = {}
    outbound = isinstance(variables, dict) and any(k in variables for k in OUTBOUND_MARKS)
    agent = str(row.get("agent") or "")
    if agent:
        outcome = "answered"
    elif row.get("abandoned"):
        outcome = "abandoned"
    elif row.get("voicemail"):
        outcome = "voicemail"
    else:
        outcome = "no agent"
    start = row.get("start")
    if isinstance(start, datetime):
        start = start.astimezone(UTC).isoformat(timespec="seconds")
    return {
        "call_id": str(row.get("uniqueid") or ""),
        "start": str(start or ""),
        "direction": "out" if outbound else "in",
        "queue": str(row.get("queue") or ""),
        "agent": agent,
        "outcome": outcome,
        "wait_seconds": round(float(row.get("wait_seconds") or 0.0), 1),
        "talk_seconds": round(float(row.get("talk_seconds") or 0.0), 1),
        "code": row.get("code"),
        "note": row.get("note"),
    }


def history(rows: Sequence[Mapping[str, Any]], *, leaving_out: str = "") -> list[dict[str, Any]]:
    """The calls of ``rows`` (oldest first, as the store gives them) newest first, without
    the call ``leaving_out`` (the one going on)."""
    return [earlier_call(r) for r in reversed(rows) if r.get("uniqueid") != leaving_out]
