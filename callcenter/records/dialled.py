"""Calls by the number callers dialled (``callcenter report --dialled``): how each of the
centre's numbers (an advert's number, a country's, the after-hours one) is used, answered
and given up on, from the CDRs' ``dst``.

A pure fold over CDR rows: calls the centre placed (agents' own dials, callbacks, campaign
leads) are not callers dialling in and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callcenter.records.history import OUTBOUND_MARKS


@dataclass(slots=True)
class DialledFigures:
    """The calls to one dialled number over the report's stretch of time."""

    number: str
    calls: int = 0
    answered: int = 0
    """Talked to an agent."""
    abandoned: int = 0
    """Hung up waiting in a queue."""
    voicemail: int = 0
    """Left a message."""
    other: int = 0
    """Anything else: the IVR served or ended the call, a queue rule sent them away."""
    wait_answered: float = 0.0
    talk: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "calls": self.calls,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "voicemail": self.voicemail,
            "other": self.other,
            "answered_percent": round(100.0 * self.answered / self.calls, 1)
            if self.calls
            else None,
            "asa_seconds": round(self.wait_answered / self.answered, 1) if self.answered else None,
            "talk_seconds": round(self.talk, 1),
        }


def _outbound(row: Mapping[str, Any]) -> bool:
    try:
        variables = json.loads(str(row.get("ivr_variables") or "{}"))
    except ValueError:
        return False
    return isinstance(variables, dict) and any(k in variables for k in OUTBOUND_MARKS)


def dialled_summary(rows: Iterable[Mapping[str, Any]]) -> list[DialledFigures]:
    """Each dialled number's figures, the busiest first."""
    found: dict[str, DialledFigures] = {}
    for row in rows:
        if _outbound(row):
            continue
        number = str(row.get("dst") or "")
        figures = found.get(number)
        if figures is None:
            figures = found[number] = DialledFigures(number)
        figures.calls += 1
        if row.get("agent"):
            figures.answered += 1
            figures.wait_answered += float(row.get("wait_seconds") or 0.0)
            figures.talk += float(row.get("talk_seconds") or 0.0)
        elif row.get("abandoned"):
            figures.abandoned += 1
        elif row.get("voicemail"):
            figures.voicemail += 1
        else:
            figures.other += 1
    return sorted(found.values(), key=lambda f: (-f.calls, f.number))


def format_dialled_table(figures: Sequence[DialledFigures]) -> str:
    """The summary as a terminal table."""
    if not figures:
        return "no caller dialled in during this stretch of time"
    head = (
        f"{'dialled':16} {'calls':>6} {'answered':>8} {'%':>5} {'abandoned':>9} "
        f"{'voicemail':>9} {'other':>6} {'ASA':>6}"
    )
    lines = [head, "-" * len(head)]
    for f in figures:
        row = f.as_dict()
        share = "-" if row["answered_percent"] is None else f"{row['answered_percent']:.0f}"
        asa = "-" if row["asa_seconds"] is None else f"{row['asa_seconds']:.0f}s"
        lines.append(
            f"{f.number[:16] or '-':16} {f.calls:>6} {f.answered:>8} {share:>5} "
            f"{f.abandoned:>9} {f.voicemail:>9} {f.other:>6} {asa:>6}"
        )
    return "\n".join(lines)
