"""How long callers waited, in bands (``report --waits``): each queue's answered,
abandoned and exited callers by the wait they had, with the share answered within each
band's end (a service-level profile: 80 % within 20 s, 90 % within 60 s ...).

A pure fold of the queue_log, with :func:`~callcenter.records.summary.queue_summary`'s
visits: a visit counts when its ``ENTERQUEUE`` falls within the period (its outcome may come
a little later); campaigns' leads and agents' own calls are no callers (left out); the
wait is the ``CONNECT``'s hold time, the ``ABANDON``'s or the exit's wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from callcenter.records.queue_log import AGENT_URL, CAMPAIGN_URL, QueueLogEntry

BANDS: Final = (10, 20, 30, 60, 120, 300)
"""Where the default bands end, in seconds (the last band: over 300 s)."""
_EXITS: Final = {"EXITWITHTIMEOUT": 2, "EXITEMPTY": 2, "WITHDRAW": 2, "EXITWITHKEY": 3}
"""A queue rule's exit and the data field holding the caller's wait."""


@dataclass(slots=True)
class WaitBand:
    """The callers of one queue whose wait fell in one band (``upto`` None: the last)."""

    queue: str
    upto: int | None
    answered: int = 0
    abandoned: int = 0
    exited: int = 0


@dataclass(slots=True)
class QueueWaits:
    """One queue's bands, and its visits with an outcome."""

    queue: str
    bands: list[WaitBand] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One row per band: callers answered, abandoned, exited within it, and the share
        of every caller with an outcome answered by the band's end (cumulative)."""
        total = sum(b.answered + b.abandoned + b.exited for b in self.bands)
        rows = []
        answered_so_far = 0
        low = 0
        for band in self.bands:
            answered_so_far += band.answered
            rows.append(
                {
                    "queue": self.queue,
                    "wait": f"{low}-{band.upto} s" if band.upto is not None else f"> {low} s",
                    "answered": band.answered,
                    "abandoned": band.abandoned,
                    "exited": band.exited,
                    "answered_by_then_percent": round(100 * answered_so_far / total, 1)
                    if total
                    else None,
                }
            )
            low = band.upto if band.upto is not None else low
        return rows


def wait_bands(
    entries: Iterable[QueueLogEntry],
    since: datetime,
    until: datetime,
    *,
    bands: Sequence[int] = BANDS,
    queues: set[str] | None = None,
) -> list[QueueWaits]:
    """Each queue's callers who joined from ``since`` to ``until`` by the band their wait
    fell in (a wait of exactly a band's end counts in that band), by queue name."""
    ends = sorted(set(bands))
    found: dict[str, QueueWaits] = {}
    visits: dict[tuple[str, str], QueueWaits] = {}
    for entry in entries:
        queue, verb = entry.queuename, entry.event
        if queues is not None and queue not in queues:
            continue
        key = (entry.callid, queue)
        if verb == "ENTERQUEUE":
            url = entry.data[0] if entry.data else ""
            mine = not url.startswith((CAMPAIGN_URL, AGENT_URL))
            if mine and since <= entry.time < until:
                waits = found.get(queue)
                if waits is None:
                    waits = found[queue] = QueueWaits(
                        queue, [WaitBand(queue, end) for end in ends] + [WaitBand(queue, None)]
                    )
                visits[key] = waits
            else:
                visits.pop(key, None)
            continue
        waits = visits.get(key)
        if waits is None:
            continue
        if verb == "CONNECT":
            _band(waits, ends, _seconds(entry.data, 0)).answered += 1
        elif verb == "ABANDON":
            _band(waits, ends, _seconds(entry.data, 2)).abandoned += 1
        elif verb in _EXITS:
            _band(waits, ends, _seconds(entry.data, _EXITS[verb])).exited += 1
        else:
            continue
        del visits[key]
    return [found[queue] for queue in sorted(found)]


def _band(waits: QueueWaits, ends: Sequence[int], seconds: float) -> WaitBand:
    for band, end in zip(waits.bands, ends, strict=False):
        if seconds <= end:
            return band
    return waits.bands[-1]


def _seconds(data: tuple[str, ...], index: int) -> float:
    try:
        return max(0.0, float(data[index]))
    except (IndexError, ValueError):
        return 0.0
