"""A tiny statistical profiler: where this process's CPU time goes, at low overhead.

cProfile instruments every call and roughly doubles the cost of the daemon's many small
functions, which distorts the picture. :class:`StackSampler` instead takes a sample every
``interval`` seconds of *process CPU time* (``ITIMER_PROF``: all threads) from a signal
handler on the main thread and keeps the Python stack it interrupted.

A sample whose innermost frame is the event loop waiting in ``select`` means the CPU was
spent by another thread (the record writer's SQLite calls) or in the kernel outside Python.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from types import FrameType


def short_path(path: str) -> str:
    """A source path from the package folder on (``callcenter/pbx/asterisk/agi.py``)."""
    for marker in ("/callcenter/", "/asyncio/", "/structlog/", "/benchmarks/"):
        if marker in path:
            return marker.strip("/") + "/" + path.split(marker, 1)[1]
    return path.rsplit("/", 1)[-1]


def _where(frame: FrameType) -> str:
    code = frame.f_code
    if code.co_filename == "<string>" and frame.f_back is not None:
        # Generated code (dataclass __init__): name it after its caller.
        return f"{code.co_name} called by {_where(frame.f_back)}"
    return f"{short_path(code.co_filename)}:{code.co_name}"


class StackSampler:
    """``start()`` / ``stop()``; then :meth:`report` lists self and inclusive shares."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.samples = 0
        self.own: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.areas: Counter[str] = Counter()
        self.cpu = 0.0

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        self.samples += 1
        if frame is None:
            self.own["(no Python frame)"] += 1
            return
        self.own[_where(frame)] += 1
        seen: set[str] = set()
        area = "other"
        while frame is not None:
            where = _where(frame)
            if where not in seen:
                seen.add(where)
                self.inclusive[where] += 1
            if where.startswith("callcenter/") and area == "other":
                area = _area(where)
            frame = frame.f_back
        if area == "other" and "selectors.py:select" in seen:
            area = "idle loop (other threads, kernel)"
        elif area == "other" and any(w.startswith("asyncio/") for w in seen):
            area = "asyncio (loop, transports)"
        self.areas[area] += 1

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        self.cpu -= time.process_time()

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        self.cpu += time.process_time()

    def report(self, top: int = 25) -> str:
        total = max(1, self.samples)
        # The kernel fires ITIMER_PROF at its tick at best (often every 4 ms of CPU).
        every = self.cpu / total * 1000
        lines = [f"{self.samples} samples over {self.cpu:.2f} s of CPU (one per {every:.1f} ms)"]
        lines.append("")
        lines.append("by area (innermost callcenter module on the stack):")
        for area, n in self.areas.most_common():
            lines.append(f"  {n / total * 100:5.1f}%  {area}")
        lines.append("")
        lines.append(f"top {top} functions by own time:")
        for where, n in self.own.most_common(top):
            lines.append(f"  {n / total * 100:5.1f}%  {where}")
        lines.append("")
        lines.append(f"top {top} callcenter functions by inclusive time:")
        inclusive = [(w, n) for w, n in self.inclusive.most_common() if w.startswith("callcenter/")]
        for where, n in inclusive[:top]:
            lines.append(f"  {n / total * 100:5.1f}%  {where}")
        return "\n".join(lines)


def _area(where: str) -> str:
    module = where.split(":", 1)[0]
    for prefix, name in (
        ("callcenter/protocols/ami.py", "AMI codec"),
        ("callcenter/pbx/asterisk/ami.py", "AMI connection + dispatch"),
        ("callcenter/protocols/agi.py", "AGI codec"),
        ("callcenter/pbx/asterisk/agi.py", "AGI sessions"),
        ("callcenter/pbx/asterisk/driver.py", "Asterisk driver"),
        ("callcenter/protocols/esl.py", "ESL codec"),
        ("callcenter/pbx/freeswitch/connection.py", "ESL connection + dispatch"),
        ("callcenter/pbx/freeswitch/driver.py", "FreeSWITCH driver"),
        ("callcenter/records/", "records (CDR fold, writer)"),
        ("callcenter/events.py", "event bus"),
        ("callcenter/switchboard.py", "switchboard"),
        ("callcenter/ivr/", "IVR"),
        ("callcenter/acd/", "ACD router"),
    ):
        if module.startswith(prefix):
            return name
    return module


if __name__ == "__main__":
    sys.exit("import StackSampler from benchmarks/stack_sampler.py")
