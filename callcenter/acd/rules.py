"""What the router needs to know about queues and agents, as plain frozen data.

The router never reads the YAML models: :func:`queue_rules` and :func:`agent_rules` turn a
:class:`~callcenter.config.models.CallCenterConfig` into these, so tests and benchmarks can
build a router from a few lines of Python.

Skills and escalation: an agent has skills with levels (1-10, higher is more proficient);
a caller needs the queue's ``skills`` plus those the IVR asked for. While the caller waits,
:class:`Stage` steps widen who may take it: at first (``after`` 0) maybe only penalty-0
agents with level 7 or more; after 30 s penalty 1 and level 4 join; after 90 s anyone with
the skill. Stages only ever widen (the config refuses a narrowing step), which is what lets
the router index callers by (skills, stage).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from callcenter.acd.strategies import Strategy, parse_strategy

if TYPE_CHECKING:
    from callcenter.config.models import CallCenterConfig

EXTERNAL_TECH = "external/"
"""Agent devices ``external/<number>`` are remote agents reached through ``acd.remote_dial``."""


@dataclass(frozen=True, slots=True)
class Stage:
    """From ``after`` seconds of waiting: agents up to ``max_penalty`` (None: any) with at
    least ``min_level`` in each skill the caller needs may take the caller."""

    after: float = 0.0
    max_penalty: int | None = None
    min_level: int = 1


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class QueueRules:
    """How one queue routes. ``members`` in config order (the strategies' tie-break)."""

    members: tuple[str, ...] = ()
    strategy: Strategy = Strategy.LONGEST_IDLE
    weight: int = 0
    """Agents in several queues serve the queue with the highest weight first."""
    wrapup: float = 0.0
    skills: frozenset[str] = frozenset()
    """Skills every caller of this queue needs."""
    stages: tuple[Stage, ...] = (Stage(),)
    escalate_unstaffed: bool = False
    """A caller whose stage nobody present may serve goes on to the next stage at once
    (mod_callcenter's tier-rule-no-agent-no-wait)."""
    penalties: Mapping[str, int] = field(default_factory=_empty)
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Member weights for weighted-random (missing: 1)."""
    no_answer_delay: float = 0.0
    busy_delay: float = 0.0
    reject_delay: float = 0.0
    autopause: int = 0
    """Pause an agent after this many failed offers in a row (0: never), counting the
    outcomes in ``autopause_on``."""
    autopause_on: frozenset[str] = frozenset({"no-answer"})
    """The ``RingOutcome`` values that count toward ``autopause``."""
    ring_in_use: bool = False
    """Offer agents whose device the PBX reports in use (app_queue's ringinuse)."""
    leave_when_empty: bool = False
    """Waiting callers are told (``Router.next_agents`` returns ``[]``) when no member who
    could take them is logged in, unpaused and reachable any more."""
    disposition_required: bool = False
    """An agent's wrap-up after a call of this queue lasts until they give it a code."""
    wrapup_until_ready: bool = False
    """An agent's wrap-up after a call of this queue lasts until they say they are ready
    (``Router.end_wrapup``), however long: no timer ends it."""


@dataclass(frozen=True, slots=True)
class AgentRules:
    """Per-agent routing settings."""

    device: str | None = None
    """The dial string (None: keep the agent's); remote agents already resolved."""
    name: str | None = None
    """The name supervisors see (None: keep the agent's)."""
    skills: Mapping[str, int] = field(default_factory=_empty)
    wrapup: float | None = None
    autopause: int | None = None


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A change to a queue's members made while the centre runs (``agent join`` /
    ``agent leave``, app_queue's QueueAdd / QueueRemove), kept on top of the config until
    undone: ``member`` in ``queue`` or not, at ``penalty`` (None: the config's, else 0);
    ``paused``: the member is paused in this queue only, for this reason (``agent pause
    --queue``, app_queue's QueuePause with a queue): offered none of its callers."""

    queue: str
    agent: str
    member: bool
    penalty: int | None = None
    paused: str | None = None


def with_changes(
    rules: Mapping[str, QueueRules], changes: Iterable[MemberChange], agents: Collection[str]
) -> dict[str, QueueRules]:
    """``rules`` with the member ``changes`` laid over them (pure). Changes naming a queue
    or an agent the config no longer has are left out."""
    out = dict(rules)
    for change in changes:
        queue = out.get(change.queue)
        if queue is None or change.agent not in agents:
            continue
        penalties = dict(queue.penalties)
        if change.member and change.paused is None:
            members = queue.members
            if change.agent not in members:
                members = (*members, change.agent)
            if change.penalty is not None:
                penalties[change.agent] = change.penalty
        else:
            members = tuple(m for m in queue.members if m != change.agent)
            penalties.pop(change.agent, None)
        out[change.queue] = dataclasses.replace(
            queue, members=members, penalties=MappingProxyType(penalties)
        )
    return out


def remote_device(device: str, remote_dial: str | None) -> str:
    """The dial string of an agent device: ``external/<number>`` through the
    ``acd.remote_dial`` template (``${number}``), anything else unchanged."""
    if not device.startswith(EXTERNAL_TECH) or not remote_dial:
        return device
    return remote_dial.replace("${number}", device[len(EXTERNAL_TECH) :])


def queue_rules(config: CallCenterConfig) -> dict[str, QueueRules]:
    """The routing rules of every configured queue."""
    out: dict[str, QueueRules] = {}
    for name, q in config.queues.items():
        stages = tuple(
            Stage(after=s.after, max_penalty=s.max_penalty, min_level=s.min_level)
            for s in q.escalation
        ) or (Stage(),)
        out[name] = QueueRules(
            members=tuple(q.agents),
            strategy=parse_strategy(q.strategy),
            weight=q.weight,
            wrapup=q.wrapup,
            disposition_required=q.disposition_required,
            wrapup_until_ready=q.wrapup_until_ready,
            skills=frozenset(q.skills),
            stages=stages,
            escalate_unstaffed=q.escalate_unstaffed,
            penalties=MappingProxyType(dict(q.penalties)),
            weights=MappingProxyType(dict(q.member_weights)),
            no_answer_delay=q.no_answer_delay,
            busy_delay=q.busy_delay,
            reject_delay=q.reject_delay,
            autopause=q.autopause,
            autopause_on=frozenset(q.autopause_on),
            ring_in_use=q.ring_in_use,
            leave_when_empty=q.leave_when_empty,
        )
    return out


def agent_rules(config: CallCenterConfig) -> dict[str, AgentRules]:
    """The routing settings of every configured agent (remote devices resolved)."""
    return {
        agent_id: AgentRules(
            device=remote_device(a.device, config.acd.remote_dial),
            name=a.name,
            skills=MappingProxyType(dict(a.skills)),
            wrapup=a.wrapup,
            autopause=a.autopause,
        )
        for agent_id, a in config.agents.items()
    }


def answers_by_itself(config: CallCenterConfig, agent_id: str) -> bool:
    """Whether the agent's phone is to answer the calls the daemon rings it with by itself
    (``agents.<id>.auto_answer``, else ``acd.auto_answer``)."""
    agent = config.agents.get(agent_id)
    chosen = agent.auto_answer if agent is not None else None
    return config.acd.auto_answer if chosen is None else chosen


def disposition_codes(config: CallCenterConfig, queue: str, campaign: str = "") -> list[str]:
    """The codes agents may give a call of ``queue`` (a lead of ``campaign``): the
    campaign's ``dispositions``, else the queue's, else every configured code."""
    listed: list[str] | None = None
    chosen = config.campaigns.get(campaign) if campaign else None
    if chosen is not None:
        listed = chosen.dispositions
    if listed is None:
        qcfg = config.queues.get(queue)
        listed = qcfg.dispositions if qcfg is not None else None
    if listed is None:
        return list(config.dispositions)
    return [code for code in listed if code in config.dispositions]
