"""How many leads a predictive campaign dials for its free agents.

Most dials are not answered (nobody home, busy, voicemail hang-ups), so a predictive
dialler places more dials than it has free agents: about one per agent divided by the
share of dials answered lately. When more people answer than there are agents, the ones
left over are **dropped**: a regulator counts them as abandoned calls, and the law caps
them (Ofcom and the US FTC: 3 % of the live answers of a campaign over 24 hours). The
:class:`Pacer` keeps both figures and turns them into a dial ratio::

    ratio = min(max_ratio, 1 / answer_rate)         the abandon rate under half the limit
            shrinks linearly to 1                   from half the limit to the limit
            1                                       at the limit and above

The answer rate is that of the last :data:`ANSWER_WINDOW` tries, pulled towards 1 by
:data:`PRIOR_TRIES` tries counted as answered: a new campaign starts at one dial per free
agent and overdials only as it learns that its leads do not answer. Pure: no I/O, the
clock is given.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

ANSWER_WINDOW: Final = 100
"""Tries whose outcome makes the answer rate."""
PRIOR_TRIES = 10
"""Tries counted as answered before any is made (a new campaign does not overdial)."""
ABANDON_WINDOW: Final = 24 * 3600.0
"""Seconds over which the abandon rate is counted (a regulator's day)."""


class Pacer:
    """The answer and abandon rates of one campaign, and the dials they allow."""

    def __init__(
        self,
        *,
        max_abandon_rate: float,
        max_ratio: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_abandon_rate = max_abandon_rate
        """Percent of the live answers that may be dropped."""
        self.max_ratio = max_ratio
        self._clock = clock
        self._tries: deque[bool] = deque(maxlen=ANSWER_WINDOW)
        self._answers: deque[tuple[float, bool]] = deque()
        """(when, dropped) of each live answer within ABANDON_WINDOW."""
        self._dropped = 0
        self.answered_total = 0
        self.dropped_total = 0

    def tried(self, answered: bool) -> None:
        """A dial ended: someone answered it (put through or dropped), or nobody did."""
        self._tries.append(answered)

    def answered(self, *, dropped: bool) -> None:
        """A person answered a dial: put through to an agent, or dropped."""
        self._answers.append((self._clock(), dropped))
        self._dropped += dropped
        self.answered_total += 1
        self.dropped_total += dropped

    def restore(self, answers: Iterable[tuple[float, bool]]) -> None:
        """Take back (when, dropped) live answers a previous daemon saw (``when`` on this
        pacer's clock), before any of its own: the abandon rate is over a day, not since
        the last start. The totals stay this daemon's."""
        for when, dropped in sorted(answers):
            self._answers.append((when, dropped))
            self._dropped += dropped
        self._forget()

    def settings(self, *, max_abandon_rate: float, max_ratio: float) -> None:
        """New limits (a reload); what was measured is kept."""
        self.max_abandon_rate = max_abandon_rate
        self.max_ratio = max_ratio

    @property
    def answer_rate(self) -> float:
        """Share of the recent dials someone answered (0..1)."""
        tries = self._tries
        return (sum(tries) + PRIOR_TRIES) / (len(tries) + PRIOR_TRIES) if tries else 1.0

    @property
    def abandon_rate(self) -> float:
        """Percent of the live answers of the last 24 hours that were dropped."""
        self._forget()
        answers = len(self._answers)
        return 100.0 * self._dropped / answers if answers else 0.0

    @property
    def ratio(self) -> float:
        """Dials to have going per free agent (1 .. max_ratio)."""
        limit = self.max_abandon_rate
        rate = self.abandon_rate
        if rate >= limit:
            return 1.0
        wanted = min(self.max_ratio, 1.0 / max(self.answer_rate, 1.0 / self.max_ratio))
        if rate > limit / 2:
            wanted = 1.0 + (wanted - 1.0) * (limit - rate) / (limit / 2)
        return wanted

    def dials_wanted(self, free_agents: int, ringing: int) -> int:
        """New dials to place now, with ``free_agents`` free and ``ringing`` dials placed
        and not answered yet."""
        if free_agents <= 0:
            return 0
        return max(0, math.floor(free_agents * self.ratio + 1e-9) - ringing)

    def _forget(self) -> None:
        horizon = self._clock() - ABANDON_WINDOW
        answers = self._answers
        while answers and answers[0][0] < horizon:
            _, dropped = answers.popleft()
            self._dropped -= dropped
