"""How many agents a queue needs: Erlang C, the planner's arithmetic of every call centre.

Callers arrive at random (Poisson, ``calls`` in ``interval`` seconds), each holds an agent
for the average handle time (``aht``: talk plus after-call work), and a caller who finds
every agent busy waits (nobody gives up: the model errs on the safe side). With ``agents``
agents and ``A = calls * aht / interval`` erlangs of traffic:

* ``wait_probability``: the chance a caller waits at all (Erlang C);
* ``service_level``: the share answered within ``threshold`` seconds,
  ``1 - Pw * exp(-(agents - A) * threshold / aht)``;
* ``average_speed_of_answer``: ``Pw * aht / (agents - A)``;
* ``occupancy``: ``A / agents``.

:func:`agents_needed` is the fewest agents that meet a service level target (and, if given,
stay at or under an occupancy ceiling); ``shrinkage`` (breaks, training, absence: the share
of paid time not on the phones) turns them into the agents to schedule. Computed with the
Erlang B recursion, which stays exact for hundreds of agents where factorials overflow.

Used by ``callcenter staffing`` (what-if) and ``report --queues --by hour --staffing``
(from the records: each hour's offered calls and handle time).
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
    """Seconds, over every caller (those who do not wait count 0)."""
    occupancy: float
    """Share of the agents' time on calls, 0..1."""


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
    agents: int, calls: float, aht: float, threshold: float, interval: float = 3600.0
) -> Staffing:
    """What ``agents`` agents give for ``calls`` in ``interval`` seconds of ``aht`` seconds
    each, answering within ``threshold`` seconds."""
    load = traffic(calls, aht, interval)
    if load == 0:
        return Staffing(agents, 0.0, 0.0, 1.0, 0.0, 0.0)
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
) -> Staffing:
    """The fewest agents whose service level reaches ``target`` (0..1) and, with
    ``max_occupancy``, whose occupancy stays at or under it. No calls: no agent.
    ValueError for a target no number of agents reaches."""
    if not 0.0 < target < 1.0:
        raise ValueError("the service level target is a share between 0 and 1, exclusive")
    if max_occupancy is not None and not 0.0 < max_occupancy <= 1.0:
        raise ValueError("the occupancy ceiling is a share above 0, at most 1")
    load = traffic(calls, aht, interval)
    if load == 0:
        return staffing(0, calls, aht, threshold, interval)
    agents = max(1, math.floor(load) + 1)
    if max_occupancy is not None:
        agents = max(agents, math.ceil(load / max_occupancy - 1e-9))
    while agents <= MAX_AGENTS:
        found = staffing(agents, calls, aht, threshold, interval)
        if found.service_level >= target:
            return found
        agents += 1
    raise ValueError(f"no staffing up to {MAX_AGENTS} agents meets that target")


def scheduled(agents: int, shrinkage: float) -> int:
    """The agents to schedule so that ``agents`` are on the phones, with ``shrinkage`` (a
    share, 0..1 exclusive) of their paid time elsewhere."""
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError("shrinkage is a share from 0 to 1, exclusive")
    return math.ceil(agents / (1.0 - shrinkage) - 1e-9)
