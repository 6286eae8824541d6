"""When a waiting caller hears the queue's periodic announcements: counted from the start
of the last one, or with ``periodic_announce_relative`` from its end (a long announcement
then still leaves the music its whole interval)."""

from __future__ import annotations

from typing import Any, cast

import pytest

import callcenter.switchboard as board
from callcenter.acd.queue import QueueEntry
from callcenter.config.models import QueueConfig
from callcenter.switchboard import Switchboard, _Waiting


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowCall:
    """A call whose every announcement lasts ``seconds`` on ``clock``."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self.played: list[str] = []

    async def play(self, prompts: list[str]) -> None:
        self.played += prompts
        self.clock.now += self.seconds


@pytest.mark.parametrize(("relative", "next_at"), [(False, 130.0), (True, 150.0)])
async def test_the_next_periodic_announcement_counts_from_the_start_or_the_end(
    monkeypatch: pytest.MonkeyPatch, relative: bool, next_at: float
) -> None:
    clock = Clock()
    monkeypatch.setattr(board.time, "monotonic", clock)
    qcfg = QueueConfig.model_validate(
        {
            "agents": ["1001"],
            "periodic_announce": ["promo-a", "promo-b"],
            "periodic_announce_frequency": 30,
            "periodic_announce_relative": relative,
        }
    )
    waiting = _Waiting.start(qcfg, clock.now - 30)
    call = SlowCall(clock, seconds=20)
    entry = QueueEntry("c1", "q", 0, 0.0, 0)
    await Switchboard._announce(cast(Any, None), cast(Any, call), entry, qcfg, waiting)
    assert call.played == ["promo-a"]
    assert waiting.next_periodic == next_at
