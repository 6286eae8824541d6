"""Erlang C and Erlang A, as a planner checks them: the textbook example, the formula itself
for any load, Erlang A against a simulation of callers who hang up, and ``callcenter
staffing`` at the command line."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.cli import main as cli_main
from callcenter.staffing import (
    agents_needed,
    erlang_a,
    erlang_c,
    patience_estimate,
    scheduled,
    staffing,
)


def test_the_textbook_load_needs_14_agents_for_80_percent_in_20_seconds() -> None:
    """100 calls in half an hour, 3 minutes each: 10 erlangs. The published figures: 13
    agents answer 79.6 % within 20 s, 14 agents 88.8 % with 17.4 % of callers waiting and
    an average speed of answer of 7.8 s."""
    needed = agents_needed(100, 180, 20, 0.8, interval=1800)
    fewer = staffing(13, 100, 180, 20, interval=1800)
    assert needed.agents == 14 and needed.traffic == 10.0
    assert round(100 * fewer.service_level, 1) == 79.6
    assert round(100 * needed.service_level, 1) == 88.8
    assert round(100 * needed.wait_probability, 1) == 17.4
    assert round(needed.average_speed_of_answer, 1) == 7.8
    assert round(100 * needed.occupancy, 1) == 71.4
    assert scheduled(needed.agents, 0.30) == 20, "14 on the phones is 20 with 30 % shrinkage"


def _erlang_c_by_factorials(agents: int, load: Fraction) -> Fraction:
    """The formula as printed: A^N/N! * N/(N-A) over sum(A^k/k!, k<N) + that."""
    top = load**agents / math.factorial(agents) * Fraction(agents) / (agents - load)
    bottom = sum(load**k / math.factorial(k) for k in range(agents)) + top
    return top / bottom


@given(
    agents=st.integers(min_value=1, max_value=40),
    tenths=st.integers(min_value=1, max_value=399),
)
def test_the_recursion_gives_the_printed_formula_for_any_load(agents: int, tenths: int) -> None:
    load = Fraction(tenths, 10)
    if load >= agents:
        assert erlang_c(agents, float(load)) == 1.0, "agents who cannot keep up: all wait"
        return
    assert erlang_c(agents, float(load)) == pytest.approx(
        float(_erlang_c_by_factorials(agents, load)), rel=1e-9
    )


@given(
    calls=st.floats(min_value=1, max_value=5000),
    aht=st.floats(min_value=10, max_value=1200),
    threshold=st.floats(min_value=0, max_value=120),
    target=st.floats(min_value=0.5, max_value=0.95),
)
def test_the_agents_needed_are_the_fewest_that_reach_the_target(
    calls: float, aht: float, threshold: float, target: float
) -> None:
    needed = agents_needed(calls, aht, threshold, target)
    assert needed.service_level >= target
    assert needed.agents > needed.traffic
    fewer = staffing(needed.agents - 1, calls, aht, threshold)
    assert fewer.service_level < target
    more = staffing(needed.agents + 1, calls, aht, threshold)
    assert more.service_level >= needed.service_level
    assert more.average_speed_of_answer <= needed.average_speed_of_answer


def test_an_occupancy_ceiling_adds_agents_and_no_calls_need_none() -> None:
    loose = agents_needed(1000, 240, 60, 0.5)
    capped = agents_needed(1000, 240, 60, 0.5, max_occupancy=0.8)
    assert loose.occupancy > 0.8 >= capped.occupancy
    assert agents_needed(0, 180, 20, 0.8).agents == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        agents_needed(100, 180, 20, 1.0)


def test_the_command_line_shows_the_agents_needed_among_their_neighbours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["staffing", "--calls", "100", "--minutes", "30", "--aht", "180", "--shrinkage", "30"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "100 calls in 30 min, handled in 180 s: 10.00 erlangs of work (Erlang C, nobody hangs up)"
    )
    (chosen,) = [line for line in out if line.startswith(">")]
    assert chosen.split() == [">", "14", "88.8", "%", "7.8", "s", "17.4", "%", "71.4", "%"]
    assert out[-1] == (
        "needed: 14 agents on the phones for 80 % answered within 20 s; with 30 % "
        "shrinkage, schedule 20"
    )
    with pytest.raises(SystemExit):
        cli_main(["staffing", "--calls", "100", "--aht", "180", "--target", "80"])
    assert "is not PERCENT/SECONDS" in capsys.readouterr().err


def simulate(agents: int, calls: float, aht: float, patience: float, threshold: float,
             callers: int, seed: int) -> tuple[float, float, float]:  # fmt: skip
    """A queue of ``callers`` callers, served first come first served, each hanging up
    after an exponential patience: (answered within threshold, hung up, waited) shares."""
    rng = random.Random(seed)
    arrival, service, giving_up = calls / 3600.0, 1.0 / aht, 1.0 / patience
    free, waiting, ends = agents, [], []  # waiting: [arrived, gives up at]
    in_time = gone = waited = arrived = 0
    now, next_arrival = 0.0, rng.expovariate(arrival)
    while arrived < callers:
        next_end = ends[0] if ends else math.inf
        next_gone = min((w[1] for w in waiting), default=math.inf)
        now = min(next_arrival, next_end, next_gone)
        if now == next_gone:
            waiting.remove(next(w for w in waiting if w[1] == now))
            gone += 1
        elif now == next_end:
            heapq.heappop(ends)
            if waiting:
                first = waiting.pop(0)
                in_time += now - first[0] <= threshold
                heapq.heappush(ends, now + rng.expovariate(service))
            else:
                free += 1
        else:
            arrived += 1
            if free:
                free -= 1
                in_time += 1
                heapq.heappush(ends, now + rng.expovariate(service))
            else:
                waited += 1
                waiting.append([now, now + rng.expovariate(giving_up)])
            next_arrival = now + rng.expovariate(arrival)
    return in_time / callers, gone / callers, waited / callers


@pytest.mark.parametrize(
    ("agents", "patience"), [(10, 120.0), (12, 60.0), (14, 30.0)], ids=["short", "even", "long"]
)
def test_erlang_a_says_what_a_simulated_queue_of_callers_who_hang_up_does(
    agents: int, patience: float
) -> None:
    """200 calls an hour of 180 s, 20 s threshold: the model against 60,000 simulated
    callers, within the simulation's own noise (about 0.4 points of share)."""
    model = erlang_a(agents, 200, 180, 20, patience=patience)
    in_time, gone, waited = simulate(agents, 200, 180, patience, 20, 60_000, seed=agents)
    assert model.service_level == pytest.approx(in_time, abs=0.012)
    assert model.abandon_probability == pytest.approx(gone, abs=0.006)
    assert model.wait_probability == pytest.approx(waited, abs=0.012)


@given(agents=st.integers(11, 40), tenths=st.integers(1, 109))
def test_callers_who_never_hang_up_make_erlang_a_erlang_c(agents: int, tenths: int) -> None:
    load = tenths / 10
    c = staffing(agents, load * 3600 / 180, 180, 20)
    a = staffing(agents, load * 3600 / 180, 180, 20, patience=1e12)
    assert a.wait_probability == pytest.approx(c.wait_probability, abs=1e-6)
    assert a.service_level == pytest.approx(c.service_level, abs=1e-6)
    assert a.average_speed_of_answer == pytest.approx(c.average_speed_of_answer, rel=1e-4)
    assert a.abandon_probability < 1e-6


@given(calls=st.integers(1, 2000), patience=st.integers(5, 600))
def test_more_agents_answer_more_in_time_and_lose_fewer_callers(calls: int, patience: int) -> None:
    rows = [staffing(n, calls, 240, 20, patience=patience) for n in range(1, 12)]
    levels = [r.service_level for r in rows]
    lost = [r.abandon_probability for r in rows]
    # Up to rounding: an overloaded queue answers a share of 1e-18, or 0.
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(levels))
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lost))
    assert all(0.0 <= x <= 1.0 for x in levels + lost)


def test_callers_who_hang_up_need_fewer_agents_unless_few_may_hang_up() -> None:
    erlang_c_needs = agents_needed(100, 180, 20, 0.8, interval=1800)
    patient = agents_needed(100, 180, 20, 0.8, interval=1800, patience=60)
    careful = agents_needed(100, 180, 20, 0.8, interval=1800, patience=60, max_abandon=0.03)
    assert (erlang_c_needs.agents, patient.agents, careful.agents) == (14, 12, 15)
    assert patient.abandon_probability == pytest.approx(0.076, abs=0.001)
    assert careful.abandon_probability <= 0.03
    below = staffing(careful.agents - 1, 100, 180, 20, 1800, patience=60)
    assert below.abandon_probability > 0.03
    with pytest.raises(ValueError, match="needs a patience"):
        agents_needed(100, 180, 20, 0.8, max_abandon=0.03)


def test_the_patience_is_the_time_waited_over_the_callers_who_hung_up() -> None:
    assert patience_estimate(2, 300.0) == 150.0
    assert patience_estimate(0, 300.0) is None, "nobody hung up: Erlang C"


def test_the_command_line_with_a_patience_shows_who_hangs_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["staffing", "--calls", "100", "--minutes", "30", "--aht", "180", "--patience", "60"]
    assert cli_main([*argv, "--max-abandon", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(Erlang A, callers hanging up after 60 s on average)")
    assert out[1].split()[-2:] == ["hang", "up"]
    (chosen,) = [line for line in out if line.startswith(">")]
    assert chosen.split()[1] == "15" and chosen.split()[-2:] == ["1.8", "%"]
    assert out[-1] == (
        "needed: 15 agents on the phones for 80 % answered within 20 s, at most 3 % hanging up"
    )
    assert cli_main(["staffing", "--calls", "100", "--aht", "180", "--max-abandon", "3"]) == 1
    assert "--max-abandon needs --patience" in capsys.readouterr().err
