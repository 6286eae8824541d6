"""The roster: agents and queues added while the centre runs, laid over the config file's.

mod_callcenter keeps its agents and queues in a database that ``callcenter_config agent
add`` writes; app_queue has realtime members and queues. Here the config file stays the
truth for the agents and queues it names, and ops (or an HR system, through ``POST
/roster``, ``POST /queues``) add the others while calls go on: :func:`agent_settings` and
:func:`queue_settings` check them as the config file would, :func:`with_added` gives the
config every part of the daemon then reads. One the config file comes to name is the
file's from then on (the added one is kept aside, not lost).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from callcenter.config.models import (
    AgentConfig,
    CallCenterConfig,
    Name,
    QueueConfig,
    reference_problems,
)
from callcenter.errors import InvalidAgent, InvalidQueue

_ID: Final[TypeAdapter[str]] = TypeAdapter(Name)
"""An added agent's id reads as the config file's ``agents:`` keys do."""


def agent_settings(
    agent_id: str, settings: Mapping[str, Any], config: CallCenterConfig
) -> AgentConfig:
    """``settings`` (``name``, ``device``, ``team``, ``pin``, ``skills`` ... as
    ``agents.<id>`` takes them) checked for agent ``agent_id`` in ``config`` (the config
    without this agent): InvalidAgent lists every problem as ``field: message``."""
    problems: list[str] = []
    try:
        _ID.validate_python(agent_id)
    except ValidationError as exc:
        problems += [f"id: {error['msg']}" for error in exc.errors()]
    try:
        agent = AgentConfig.model_validate(dict(settings))
    except ValidationError as exc:
        problems += [_problem(error) for error in exc.errors()]
        raise InvalidAgent("; ".join(problems)) from None
    known = config.acd.skills
    problems += [
        f"skills.{skill}: no such skill in acd.skills ({', '.join(known)})"
        for skill in agent.skills
        if known and skill not in known
    ]
    for other_id, other in config.agents.items():
        if other_id != agent_id and other.device == agent.device:
            problems.append(f'device: {agent.device} is already agent "{other_id}"\'s phone')
    for supervisor_id, supervisor in config.supervisors.items():
        if supervisor.device == agent.device:
            problems.append(f'device: {agent.device} is supervisor "{supervisor_id}"\'s phone')
    if problems:
        raise InvalidAgent("; ".join(problems))
    return agent


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "agent"
    message = str(error.get("msg", "invalid"))
    return f"{where}: {message.removeprefix('Value error, ')}"


def queue_settings(name: str, settings: Mapping[str, Any], config: CallCenterConfig) -> QueueConfig:
    """``settings`` (``strategy``, ``agents``, ``ring_timeout`` ... as ``queues.<name>``
    takes them) checked for queue ``name`` in ``config`` (the config without this queue):
    its own fields, then what it names elsewhere (agents, queues, flows, mailboxes) as
    ``callcenter check`` would. InvalidQueue lists every problem as ``field: message``."""
    problems: list[str] = []
    try:
        _ID.validate_python(name)
    except ValidationError as exc:
        problems += [f"name: {error['msg']}" for error in exc.errors()]
    try:
        queue = QueueConfig.model_validate(dict(settings))
    except ValidationError as exc:
        problems += [_problem(error) for error in exc.errors()]
        raise InvalidQueue("; ".join(problems)) from None
    if problems:
        raise InvalidQueue("; ".join(problems))
    data = config.model_dump(mode="json")
    data["queues"] = {**data["queues"], name: queue.model_dump(mode="json")}
    ours = ("queues", name)
    found = [
        f"{'.'.join(str(p) for p in problem.path[2:]) or 'queue'}: {problem.message}"
        if problem.path[:2] == ours
        else str(problem)
        for problem in reference_problems(data)
    ]
    if found:
        raise InvalidQueue("; ".join(found))
    return queue


def with_added(
    config: CallCenterConfig,
    added: Mapping[str, AgentConfig],
    queues: Mapping[str, QueueConfig] | None = None,
) -> CallCenterConfig:
    """``config`` with the ``added`` agents and ``queues`` the file does not name (the
    file's win)."""
    extra = {agent_id: agent for agent_id, agent in added.items() if agent_id not in config.agents}
    more = {name: q for name, q in (queues or {}).items() if name not in config.queues}
    if not extra and not more:
        return config
    update: dict[str, Any] = {}
    if extra:
        update["agents"] = {**config.agents, **extra}
    if more:
        update["queues"] = {**config.queues, **more}
    return config.model_copy(update=update)


def settings_of(agent: AgentConfig | QueueConfig) -> dict[str, Any]:
    """The fields an added agent or queue was given, as JSON values (what is stored and
    shown)."""
    return agent.model_dump(mode="json", exclude_defaults=True)
