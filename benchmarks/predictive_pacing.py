"""Predictive against progressive dialling: what the pacer buys agents, and what it costs
the people called.

A simulated shift (simulated time, no sockets: the figures depend only on the seed): N
agents, leads who answer with probability ``--answer`` after 3-15 s of ringing (the others
ring out after 25 s, or are busy after 2 s), talks of 30-150 s, 10 s of wrap-up. Both
diallers see the same lead population:

* **progressive** (the baseline): a dial only for an agent reserved for it, who waits while
  the phone rings;
* **predictive**: :class:`callcenter.outbound.pacing.Pacer` decides how many dials to have
  going for the free agents; a lead who answers with no agent free waits up to 2 s, then is
  dropped.

It prints, per dialler: the share of the agents' time spent talking, conversations per
agent-hour, dials, people dropped and the abandon rate (which must stay under the 3 %
limit), with the predictive figures as ratios to the progressive ones of the same run; and
the pacer's own cost per decision (CPU, measured).

    .venv/bin/python benchmarks/predictive_pacing.py [--agents 20] [--hours 8] [--answer 0.3]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callcenter.outbound.pacing import Pacer

RING_ANSWER = (3.0, 15.0)
RING_TIMEOUT = 25.0
BUSY_AFTER = 2.0
BUSY_SHARE = 0.1
TALK = (30.0, 150.0)
WRAPUP = 10.0
DROP_AFTER = 2.0
MAX_ABANDON = 3.0
MAX_RATIO = 3.0


@dataclass
class Figures:
    talk: float = 0.0
    talks: int = 0
    dials: int = 0
    answered: int = 0
    dropped: int = 0

    def abandon_rate(self) -> float:
        return 100.0 * self.dropped / self.answered if self.answered else 0.0


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    what: Callable[[], None] = field(compare=False)


class Shift:
    """One simulated shift; ``predictive`` picks the dialler."""

    def __init__(self, agents: int, hours: float, answer: float, seed: int, predictive: bool):
        self.rng = random.Random(seed)
        self.now = 0.0
        self.end = hours * 3600
        self.answer = answer
        self.predictive = predictive
        self.free = agents
        self.agents = agents
        self.ringing = 0
        self.waiting: list[int] = []  # ids of answered leads waiting for an agent
        self.figures = Figures()
        self.pacer = Pacer(
            max_abandon_rate=MAX_ABANDON, max_ratio=MAX_RATIO, clock=lambda: self.now
        )
        self._queue: list[_Event] = []
        self._seq = itertools.count()
        self._ids = itertools.count()
        self.decisions = 0

    def at(self, delay: float, what: Callable[[], None]) -> None:
        heapq.heappush(self._queue, _Event(self.now + delay, next(self._seq), what))

    def run(self) -> Figures:
        self.dial_more()
        while self._queue:
            event = heapq.heappop(self._queue)
            if event.at > self.end:
                break
            self.now = event.at
            event.what()
        return self.figures

    # ----------------------------------------------------------------- the diallers

    def dial_more(self) -> None:
        if self.now >= self.end:
            return
        if self.predictive:
            self.decisions += 1
            wanted = self.pacer.dials_wanted(self.free - len(self.waiting), self.ringing)
            for _ in range(wanted):
                self.dial(reserved=False)
        else:
            while self.free > 0:
                self.free -= 1  # reserved while the phone rings
                self.dial(reserved=True)

    def dial(self, *, reserved: bool) -> None:
        self.figures.dials += 1
        self.ringing += 1
        lead = next(self._ids)
        if self.rng.random() < self.answer:
            self.at(self.rng.uniform(*RING_ANSWER), lambda: self.answered(lead, reserved))
        elif self.rng.random() < BUSY_SHARE:
            self.at(BUSY_AFTER, lambda: self.unanswered(reserved))
        else:
            self.at(RING_TIMEOUT, lambda: self.unanswered(reserved))

    def unanswered(self, reserved: bool) -> None:
        self.ringing -= 1
        self.pacer.tried(answered=False)
        if reserved:
            self.free += 1
        self.dial_more()

    def answered(self, lead: int, reserved: bool) -> None:
        self.ringing -= 1
        self.pacer.tried(answered=True)
        if reserved:
            self.talk()
        elif self.free > 0:
            self.free -= 1
            self.talk()
        else:
            self.waiting.append(lead)
            self.at(DROP_AFTER, lambda: self.drop(lead))
        self.dial_more()

    def talk(self) -> None:
        self.figures.answered += 1
        self.pacer.answered(dropped=False)
        seconds = self.rng.uniform(*TALK)
        self.figures.talk += min(seconds, self.end - self.now)
        self.figures.talks += 1
        self.at(seconds + WRAPUP, self.agent_free)

    def drop(self, lead: int) -> None:
        if lead in self.waiting:
            self.waiting.remove(lead)
            self.figures.answered += 1
            self.figures.dropped += 1
            self.pacer.answered(dropped=True)
            self.dial_more()

    def agent_free(self) -> None:
        if self.waiting:
            self.waiting.pop(0)
            self.talk()
        else:
            self.free += 1
        self.dial_more()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--answer", type=float, default=0.3, help="share of dials answered")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"# predictive pacing: python {sys.version.split()[0]} on {platform.machine()}")
    print(
        f"# {args.agents} agents, {args.hours:g} h, {args.answer:.0%} of dials answered, "
        f"talk {TALK[0]:g}-{TALK[1]:g} s + {WRAPUP:g} s wrap-up, drop after {DROP_AFTER:g} s"
    )
    rows = []
    for answer in sorted({args.answer, 0.15, 0.5}):
        base = Shift(args.agents, args.hours, answer, args.seed, predictive=False)
        pred = Shift(args.agents, args.hours, answer, args.seed, predictive=True)
        started = time.process_time()
        b, p = base.run(), pred.run()
        cpu = time.process_time() - started
        agent_time = args.agents * args.hours * 3600
        rows.append((answer, b, p, agent_time, cpu, pred.decisions))
    print()
    print(
        f"{'answered':>8} {'dialler':>12} {'talking':>8} {'talks/agent-h':>13} "
        f"{'dials':>7} {'dropped':>7} {'abandon %':>9} {'vs progressive':>14}"
    )
    for answer, b, p, agent_time, _, _ in rows:
        for name, f in (("progressive", b), ("predictive", p)):
            ratio = f.talks / b.talks if b.talks else 0.0
            print(
                f"{answer:>8.0%} {name:>12} {f.talk / agent_time:>8.1%} "
                f"{f.talks / (agent_time / 3600):>13.1f} {f.dials:>7} {f.dropped:>7} "
                f"{f.abandon_rate():>9.2f} {ratio:>13.2f}x"
            )
    print()
    for answer, _, _, _, cpu, decisions in rows:
        print(
            f"answered {answer:.0%}: {decisions} pacing decisions, "
            f"{cpu / max(1, decisions) * 1e6:.1f} us of CPU each (both shifts simulated)"
        )
    worst = max(p.abandon_rate() for _, _, p, _, _, _ in rows)
    print(f"\nworst abandon rate: {worst:.2f} % (limit {MAX_ABANDON:g} %)")


if __name__ == "__main__":
    main()
