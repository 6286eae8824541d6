"""The predictive dialler's pacing: one dial per free agent for a new campaign, more as
fewer leads answer (never more than ``max_ratio``), slowing down as the people dropped
for want of an agent near the abandon limit and one dial per agent once it is reached,
drops forgotten after 24 hours."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.outbound import pacing
from callcenter.outbound.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer(max_abandon_rate: float = 3.0, max_ratio: float = 3.0) -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer(max_abandon_rate=max_abandon_rate, max_ratio=max_ratio, clock=clock), clock


def test_a_new_campaign_dials_one_lead_per_free_agent() -> None:
    p, _ = pacer()
    assert (p.ratio, p.dials_wanted(4, 0), p.dials_wanted(4, 3)) == (1.0, 4, 1)
    assert p.dials_wanted(0, 0) == 0, "no agent free: nobody is called"


def test_when_few_leads_answer_it_dials_more_per_agent_up_to_max_ratio() -> None:
    p, _ = pacer(max_ratio=3)
    for n in range(100):
        p.tried(answered=n % 2 == 0)
    # Half answered, pulled a little towards 1 by the prior: (50 + 10) / 110.
    assert p.answer_rate == pytest.approx(60 / 110)
    assert p.ratio == pytest.approx(110 / 60)
    assert p.dials_wanted(3, 1) == 4
    for _ in range(100):
        p.tried(answered=False)
    assert p.ratio == 3.0, "one answer in ten or fewer: capped at max_ratio"


def test_the_dialler_slows_down_near_the_abandon_limit_and_stops_overdialling_at_it() -> None:
    p, _ = pacer(max_abandon_rate=3.0, max_ratio=2)
    for _ in range(100):
        p.tried(answered=False)
    for _ in range(98):
        p.answered(dropped=False)
    assert p.ratio == 2.0
    for _ in range(2):
        p.answered(dropped=True)
    assert p.abandon_rate == pytest.approx(2.0)
    assert p.ratio == pytest.approx(1 + (3.0 - 2.0) / 1.5), "past half the limit: slower"
    p.answered(dropped=True)
    assert p.abandon_rate == pytest.approx(300 / 101)
    assert 1.0 < p.ratio < 1.1
    p.answered(dropped=True)
    assert p.abandon_rate >= 3.0
    assert (p.ratio, p.dials_wanted(5, 0)) == (1.0, 5), "at the limit: one per free agent"


def test_people_dropped_more_than_a_day_ago_no_longer_count() -> None:
    p, clock = pacer()
    p.answered(dropped=True)
    clock.now += 12 * 3600
    p.answered(dropped=False)
    assert p.abandon_rate == 50.0
    clock.now += 12 * 3600 + 1
    assert p.abandon_rate == 0.0
    assert (p.answered_total, p.dropped_total) == (2, 1), "the totals keep everything"


def test_no_drops_allowed_means_never_more_than_one_dial_per_agent() -> None:
    p, _ = pacer(max_abandon_rate=0)
    for _ in range(50):
        p.tried(answered=False)
    assert p.ratio == 1.0


def replay(p: Pacer, clock: Clock, event: tuple[str, object]) -> None:
    """A dial ended (answered or not), a person answered (dropped or not), or time went by."""
    kind, value = event
    if kind == "tried":
        p.tried(answered=bool(value))
    elif kind == "answered":
        p.answered(dropped=bool(value))
    else:
        assert isinstance(value, float)
        clock.now += value


EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("tried"), st.booleans()),
        st.tuples(st.just("answered"), st.booleans()),
        st.tuples(st.just("later"), st.floats(0, 30 * 3600)),
    ),
    max_size=300,
)


@given(
    events=EVENTS,
    limit=st.floats(0, 100),
    max_ratio=st.floats(1, 10),
    free=st.integers(0, 50),
    ringing=st.integers(0, 200),
)
def test_whatever_happens_the_ratio_stays_between_one_and_the_cap(
    events: list[tuple[str, object]], limit: float, max_ratio: float, free: int, ringing: int
) -> None:
    p, clock = pacer(limit, max_ratio)
    for event in events:
        replay(p, clock, event)
        ratio = p.ratio
        assert 1.0 <= ratio <= max_ratio + 1e-9
        assert 0.0 <= p.abandon_rate <= 100.0
        if p.abandon_rate >= limit:
            assert ratio == 1.0
        wanted = p.dials_wanted(free, ringing)
        assert 0 <= wanted <= free * max_ratio - ringing + 1 or wanted == 0
        if free and not ringing:
            assert wanted >= free, "at least one dial per free agent"


@given(events=EVENTS, limit=st.floats(0.1, 100))
def test_one_more_person_dropped_never_speeds_the_dialler_up(
    events: list[tuple[str, object]], limit: float
) -> None:
    p, clock = pacer(limit)
    for event in events:
        replay(p, clock, event)
    before = p.ratio
    p.answered(dropped=True)
    assert p.ratio <= before + 1e-9


def test_the_prior_is_what_keeps_a_new_campaign_from_overdialling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, _ = pacer()
    p.tried(answered=False)
    assert p.ratio == pytest.approx(11 / 10)
    monkeypatch.setattr(pacing, "PRIOR_TRIES", 0)
    assert p.ratio == 3.0
