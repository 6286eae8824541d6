"""Erlang C, as a planner checks it: the textbook example, the formula itself for any load,
and ``callcenter staffing`` at the command line."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.cli import main as cli_main
from callcenter.staffing import agents_needed, erlang_c, scheduled, staffing


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
    assert out[0] == "100 calls in 30 min, handled in 180 s: 10.00 erlangs of work"
    (chosen,) = [line for line in out if line.startswith(">")]
    assert chosen.split() == [">", "14", "88.8", "%", "7.8", "s", "17.4", "%", "71.4", "%"]
    assert out[-1] == (
        "needed: 14 agents on the phones for 80 % answered within 20 s; with 30 % "
        "shrinkage, schedule 20"
    )
    with pytest.raises(SystemExit):
        cli_main(["staffing", "--calls", "100", "--aht", "180", "--target", "80"])
    assert "is not PERCENT/SECONDS" in capsys.readouterr().err
