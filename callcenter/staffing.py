"""How many agents a queue needs: Erlang C, the planner's arithmetic of every call centre,
and Erlang A, which knows that callers give up.

Callers arrive at random (Poisson, ``calls`` in ``interval`` seconds), each holds an agent
for the average handle time (``aht``: talk plus after-call work), and a caller who finds
every agent busy waits. In Erlang C nobody gives up (the model errs on the safe side: it
overstaffs a queue whose callers hang up). With ``agents`` agents and
``A = calls * aht / interval`` erlangs of traffic:

* ``wait_probability``: the chance a caller waits at all (Erlang C);
* ``service_level``: the share answered within ``threshold`` seconds,
  ``1 - Pw * exp(-(agents - A) * threshold / aht)``;
* ``average_speed_of_answer``: ``Pw * aht / (agents - A)``;
* ``occupancy``: ``A / agents``.

:func:`agents_needed` is the fewest agents that meet a service level target (and, if given,
stay at or under an occupancy ceiling); ``shrinkage`` (breaks, training, absence: the share
of paid time not on the phones) turns them into the agents to schedule. Computed with the
Erlang B recursion, which stays exact for hundreds of agents where factorials overflow.

Erlang A (``patience``: the mean seconds a caller waits before hanging up, exponential,
the M/M/n+M queue of Palm and of Garnett, Mandelbaum and Reiman) adds
``abandon_probability``, and a queue that stays finite even with fewer agents than erlangs.
It is computed from the birth-death chain of callers in the system (truncated where its
probabilities fall under 1e-16); ``service_level`` is the share of callers *offered*
answered within the threshold (those who hang up count against it, as in ``report
--queues``), from the chain a waiting caller goes through (each one ahead served or gone,
or the caller gone first), by uniformisation. :func:`patience_estimate` gives the patience
from the records: abandons over the total time callers spent waiting (the maximum
likelihood estimate for exponential patience, answered callers' waits being censored).

Used by ``callcenter staffing`` (what-if) and ``report --queues --by hour --staffing``
(from the records: each hour's offered calls and handle time, the queue's patience).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

MAX_AGENTS: Final = 10_000
"""Where :func:`agents_needed` gives up (a target no staffing meets, such as 100 %)."""


@dataclass(frozen=True, slots=True)
class Staffing:
    """What ``agents`` agents give for one load."""

    agents: int
    traffic: float
    """Erlangs: the agents' worth of work the calls bring."""
    wait_probability: float
    service_level: float
    """Share answered within the threshold, 0..1."""
    average_speed_of_answer: float
    """Seconds, over every caller (those who do not wait count 0; in Erlang A those who give
    up count the time they waited)."""
    occupancy: float
    """Share of the agents' time on calls, 0..1."""
    abandon_probability: float = 0.0
    """The chance a caller hangs up before an agent answers (0 in Erlang C)."""


def traffic(calls: float, aht: float, interval: float = 3600.0) -> float:
    """Erlangs of ``calls`` in ``interval`` seconds, each handled in ``aht`` seconds."""
    if calls < 0 or aht <= 0 or interval <= 0:
        raise ValueError("calls >= 0, aht and interval > 0")
    return calls * aht / interval


def erlang_c(agents: int, load: float) -> float:
    """The chance a caller waits, with ``agents`` agents and ``load`` erlangs (1.0 when the
    agents cannot keep up: ``agents <= load``)."""
    if agents <= 0 or agents <= load:
        return 1.0
    if load <= 0:
        return 0.0
    blocking = 1.0  # Erlang B with 0 servers; B(n) = A B(n-1) / (n + A B(n-1))
    for n in range(1, agents + 1):
        blocking = load * blocking / (n + load * blocking)
    return agents * blocking / (agents - load * (1.0 - blocking))


def staffing(
    agents: int,
    calls: float,
    aht: float,
    threshold: float,
    interval: float = 3600.0,
    *,
    patience: float | None = None,
) -> Staffing:
    """What ``agents`` agents give for ``calls`` in ``interval`` seconds of ``aht`` seconds
    each, answering within ``threshold`` seconds (``patience``: callers give up after that
    many seconds on average, Erlang A; None: they never do, Erlang C)."""
    load = traffic(calls, aht, interval)
    if load == 0:
        return Staffing(agents, 0.0, 0.0, 1.0, 0.0, 0.0)
    if patience is not None:
        return erlang_a(agents, calls, aht, threshold, patience=patience, interval=interval)
    if agents <= load:
        # The queue grows without end: every caller waits, for ever in the model.
        return Staffing(agents, load, 1.0, 0.0, math.inf, 1.0)
    waits = erlang_c(agents, load)
    spare = agents - load
    level = 1.0 - waits * math.exp(-spare * threshold / aht)
    return Staffing(
        agents=agents,
        traffic=load,
        wait_probability=waits,
        service_level=min(1.0, max(0.0, level)),
        average_speed_of_answer=waits * aht / spare,
        occupancy=load / agents,
    )


def agents_needed(
    calls: float,
    aht: float,
    threshold: float,
    target: float,
    *,
    interval: float = 3600.0,
    max_occupancy: float | None = None,
    patience: float | None = None,
    max_abandon: float | None = None,
) -> Staffing:
    """The fewest agents whose service level reaches ``target`` (0..1) and, with
    ``max_occupancy``, whose occupancy stays at or under it (``patience``: Erlang A, see
    :func:`staffing`; then ``max_abandon``: and whose callers giving up stay at or under
    that share). No calls: no agent. ValueError for a target no number of agents
    reaches."""
    if not 0.0 < target < 1.0:
        raise ValueError("the service level target is a share between 0 and 1, exclusive")
    if max_occupancy is not None and not 0.0 < max_occupancy <= 1.0:
        raise ValueError("the occupancy ceiling is a share above 0, at most 1")
    if max_abandon is not None and (patience is None or not 0.0 < max_abandon < 1.0):
        raise ValueError("an abandon ceiling is a share between 0 and 1 and needs a patience")
    load = traffic(calls, aht, interval)
    if load == 0:
        return staffing(0, calls, aht, threshold, interval)
    # Erlang C needs more agents than erlangs; with callers giving up, fewer may do.
    low = 1 if patience is not None else max(1, math.floor(load) + 1)
    if max_occupancy is not None:
        low = max(low, math.ceil(load / max_occupancy - 1e-9))

    def meets(agents: int) -> bool:
        found = staffing(agents, calls, aht, threshold, interval, patience=patience)
        if max_abandon is not None and found.abandon_probability > max_abandon:
            return False
        return found.service_level >= target

    # Service level up and abandons down with more agents: double until met, then halve.
    high = low
    while not meets(high):
        if high >= MAX_AGENTS:
            raise ValueError(f"no staffing up to {MAX_AGENTS} agents meets that target")
        low, high = high + 1, min(MAX_AGENTS, high * 2)
    while low < high:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle + 1
    return staffing(high, calls, aht, threshold, interval, patience=patience)


MAX_WAITING: Final = 200_000
"""Callers waiting where :func:`erlang_a` gives up (patience huge beside too few agents)."""
TAIL: Final = 1e-16
"""Where the chain of callers in the system is cut: states less likely than this."""


def erlang_a(
    agents: int,
    calls: float,
    aht: float,
    threshold: float,
    *,
    patience: float,
    interval: float = 3600.0,
) -> Staffing:
    """Erlang A (M/M/n+M, see the module doc): ``agents`` agents, ``calls`` in ``interval``
    seconds of ``aht`` each, callers who wait giving up after ``patience`` seconds on
    average."""
    if patience <= 0:
        raise ValueError("the patience is a number of seconds above 0")
    load = traffic(calls, aht, interval)
    if agents <= 0:
        return Staffing(agents, load, 1.0, 0.0, patience, math.inf, 1.0)
    if load == 0:
        return Staffing(agents, 0.0, 0.0, 1.0, 0.0, 0.0)
    arrival, service, giving_up = calls / interval, 1.0 / aht, 1.0 / patience
    full = agents * service
    # Relative to the state "every agent busy, nobody waiting": below it Erlang B's sum,
    # above it the waiting callers, each ratio arrival / (all agents' rate + j giving up).
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = load * blocking / (n + load * blocking)
    above = [1.0]  # above[j]: j callers waiting, relative to the full state
    total = 1.0  # sum(above), kept as it grows: the chain may run to thousands of states
    while True:
        j = len(above)
        if j > MAX_WAITING:
            raise ValueError(
                f"callers this patient ({patience:g} s) pile up past {MAX_WAITING} waiting: "
                "too few agents to say anything (use more, or Erlang C)"
            )
        term = above[-1] * arrival / (full + j * giving_up)
        above.append(term)
        total += term
        if term < TAIL * total and arrival < full + j * giving_up:
            break
    busy = 1.0 / (1.0 / blocking + total - 1.0)  # the full state's probability
    states = [busy * r for r in above]  # states[j]: every agent busy and j waiting
    wait_probability = sum(states)
    queue_length = sum(j * p for j, p in enumerate(states))
    abandon_probability = giving_up * queue_length / arrival
    served_in_time = (1.0 - wait_probability) + _served_within(states, full, giving_up, threshold)
    return Staffing(
        agents=agents,
        traffic=load,
        wait_probability=min(1.0, wait_probability),
        service_level=min(1.0, max(0.0, served_in_time)),
        average_speed_of_answer=queue_length / arrival,
        occupancy=min(1.0, load * (1.0 - abandon_probability) / agents),
        abandon_probability=min(1.0, abandon_probability),
    )


def _served_within(arriving: list[float], full: float, giving_up: float, seconds: float) -> float:
    """The chance a caller arriving to ``arriving[j]`` (every agent busy, j waiting ahead)
    reaches an agent within ``seconds``: while j are ahead, one of them leaves at
    ``full + j * giving_up`` (the front one served, or anyone ahead gone) and the caller
    gives up at ``giving_up``. Uniformised: a jump chain at one rate, weighed by Poisson."""
    rate = full + len(arriving) * giving_up
    if seconds <= 0:
        return 0.0
    step_moves = [(full + j * giving_up) / rate for j in range(len(arriving))]
    stays = [1.0 - m - giving_up / rate for m in step_moves]
    mass = list(arriving)
    served = 0.0
    mean = rate * seconds
    # Poisson weights from 0 jumps up, in logs (a large mean underflows e^-mean).
    log_weight = -mean
    total_weight = 0.0
    done = 0.0
    steps = 0
    limit = int(mean + 12.0 * math.sqrt(mean) + 50)
    while steps <= limit:
        weight = math.exp(log_weight)
        total_weight += weight
        done += weight * served
        new = [0.0] * len(mass)
        served += mass[0] * step_moves[0]
        for j, m in enumerate(mass):
            if m:
                new[j] += m * stays[j]
                if j:
                    new[j - 1] += m * step_moves[j]
        mass = new
        steps += 1
        log_weight += math.log(mean) - math.log(steps)
    return done + (1.0 - total_weight) * served


def patience_estimate(abandoned: int, seconds_waited: float) -> float | None:
    """The mean patience of a queue's callers, in seconds, from its records: ``abandoned``
    callers over ``seconds_waited`` by every caller who waited (answered or not). None with
    no abandon to measure it by (nobody gave up: Erlang C)."""
    if abandoned <= 0 or seconds_waited <= 0:
        return None
    return seconds_waited / abandoned


def scheduled(agents: int, shrinkage: float) -> int:
    """The agents to schedule so that ``agents`` are on the phones, with ``shrinkage`` (a
    share, 0..1 exclusive) of their paid time elsewhere."""
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError("shrinkage is a share from 0 to 1, exclusive")
    return math.ceil(agents / (1.0 - shrinkage) - 1e-9)
