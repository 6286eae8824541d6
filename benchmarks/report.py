"""Table printing and small statistics shared by the benchmark scripts (not a test helper).

Every benchmark prints one or more :class:`Table` objects: a title, column headers, rows of
already formatted cells, and notes underneath. Figures are computed here the same way in
every script (nearest-rank percentiles, CPU from ``time.process_time``, RSS from psutil).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
#: Real Asterisk traces live next to the repository, never inside it.
TRACES = REPO.parent / "shared" / "traces" / "asterisk"


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``--loop``: auto (as ``callcenter run``: uvloop when installed), uvloop or asyncio."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--loop uvloop: uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """The running event loop's kind, for table notes."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def rate_list(text: str) -> str:
    """An argparse ``type`` for ``--rates``: comma-separated calls/s, each above zero.

    Returns ``text`` unchanged; a stage of 0 calls/s would divide its CPU by no calls.
    """
    for item in text.split(","):
        try:
            rate = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not a number of calls/s") from None
        if not rate > 0 or math.isinf(rate):
            raise argparse.ArgumentTypeError(f"{item!r}: a rate must be above 0 calls/s")
    return text


def ms(seconds: float, digits: int = 3) -> str:
    """Seconds as a millisecond cell (``-`` for NaN)."""
    if math.isnan(seconds):
        return "-"
    return f"{seconds * 1000:.{digits}f}"


def ratio(value: float, base: float) -> str:
    """``value / base`` as ``x1.23`` (``-`` when undefined)."""
    if not base or math.isnan(value) or math.isnan(base):
        return "-"
    return f"x{value / base:.2f}"


def count(value: float) -> str:
    """A rate or count with thousands separators."""
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}"


@dataclass
class Table:
    """A printed result table."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            first, *rest = cells
            parts = [first.ljust(widths[0])]
            parts += [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
            return "| " + " | ".join(parts) + " |"

        out = [f"\n## {self.title}\n", line(self.headers)]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out += [line(r) for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"* {n}" for n in self.notes]
        return "\n".join(out)

    def print(self) -> None:
        print(self.render(), flush=True)


def machine() -> str:
    """One line about where the figures come from."""
    load = os.getloadavg()
    return (
        f"Python {sys.version.split()[0]} on {sys.platform}, {os.cpu_count()} CPUs, "
        f"load {load[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')}"
    )


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    return time.process_time()


def rss_bytes() -> int:
    """Resident set size of this process now."""
    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
