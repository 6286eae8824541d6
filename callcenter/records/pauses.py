"""Pause time by reason (``report --pauses``): how long each agent was on a break, at
lunch, in a meeting ... within a period, as a fold over their pauses.

Pauses are the ``agent_pauses`` rows (and the pauses going on now) that overlap the period,
clipped to it: a lunch from 11:45 to 12:30 counts 30 minutes in a report from noon. A
pause that began before the period counts once, in ``pauses`` too (it is a pause the
period saw).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callcenter.records.summary import Stretch


@dataclass(slots=True)
class PauseTotal:
    """One agent's pauses of one reason within a period."""

    agent: str
    name: str
    reason: str
    pauses: int = 0
    seconds: float = 0.0
    longest: float = 0.0
    going_on: bool = False
    """One of them has not ended yet (the agent is paused now)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "name": self.name,
            "reason": self.reason or "-",
            "pauses": self.pauses,
            "paused_seconds": round(self.seconds),
            "longest_seconds": round(self.longest),
            "mean_seconds": round(self.seconds / self.pauses) if self.pauses else 0,
            "going_on": self.going_on,
        }


def pause_totals(
    pauses: Iterable[Stretch],
    since: datetime,
    until: datetime,
    *,
    names: Mapping[str, str] | None = None,
    agents: set[str] | None = None,
) -> list[PauseTotal]:
    """Each agent's pause time per reason from ``since`` to ``until`` (a pause still going
    on counts up to ``until``), by agent then reason; ``agents``: only theirs."""
    totals: dict[tuple[str, str], PauseTotal] = {}
    for pause in pauses:
        if agents is not None and pause.agent not in agents:
            continue
        end = pause.end if pause.end is not None else until
        if pause.start >= until or end <= since:
            continue
        start, stop = max(pause.start, since), min(end, until)
        key = (pause.agent, pause.reason)
        total = totals.get(key)
        if total is None:
            name = (names or {}).get(pause.agent, "")
            total = totals[key] = PauseTotal(pause.agent, name, pause.reason)
        seconds = max(0.0, (stop - start).total_seconds())
        total.pauses += 1
        total.seconds += seconds
        total.longest = max(total.longest, seconds)
        total.going_on = total.going_on or pause.end is None
    return [totals[key] for key in sorted(totals)]


def agent_pause_totals(totals: Iterable[PauseTotal]) -> list[dict[str, Any]]:
    """Each agent's pauses of every reason together: pauses, paused seconds, and the
    seconds per reason (for a line per agent)."""
    agents: dict[str, dict[str, Any]] = {}
    for total in totals:
        seen = agents.setdefault(
            total.agent,
            {"agent": total.agent, "name": total.name, "pauses": 0, "seconds": 0.0, "by": {}},
        )
        seen["pauses"] += total.pauses
        seen["seconds"] += total.seconds
        seen["by"][total.reason or "-"] = total.seconds
    return [agents[agent] for agent in sorted(agents)]
