"""The roster: agents and queues added while the centre runs, laid over the config file's.

mod_callcenter keeps its agents and queues in a database that ``callcenter_config agent
add`` writes; app_queue has realtime members and queues. Here the config file stays the
truth for the agents and queues it names, and ops (or an HR system, through ``POST
/roster``, ``POST /queues``) add the others while calls go on: :func:`agent_settings` and
:func:`queue_settings` check them as the config file would, :func:`with_added` gives the
config every part of the daemon then reads. One the config file comes to name is the
file's from then on (the added one is kept aside, not lost).

:class:`Roster` holds everything ops, supervisors and agents change about who works where
and when while calls go on (agents and queues added, queue members, skills, schedule days
and the agents' requests for them), publishes each change and keeps the router configured
with the result; the switchboard owns one (``Switchboard.roster``).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, TypeVar

import structlog
from pydantic import TypeAdapter, ValidationError

from callcenter.acd.agent import AgentState
from callcenter.acd.router import Router
from callcenter.acd.rules import MemberChange, agent_rules, queue_rules, with_changes
from callcenter.acd.schedule import day_hours, schedule_of, with_day_changes
from callcenter.config.models import (
    AgentConfig,
    CallCenterConfig,
    Name,
    QueueConfig,
    reference_problems,
)
from callcenter.errors import (
    EngineError,
    InvalidAgent,
    InvalidQueue,
    NotPermitted,
    UnknownAgent,
    UnknownQueue,
)
from callcenter.events import (
    AgentAdded,
    AgentRemoved,
    AgentScheduleChanged,
    AgentSkillsChanged,
    EventBus,
    QueueAdded,
    QueueMemberChanged,
    QueueRemoved,
    ScheduleRequestDecided,
    ScheduleRequested,
)

log = structlog.get_logger(__name__)

_Added = TypeVar("_Added", AgentConfig, QueueConfig)

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


MAX_REQUEST_NOTE: Final = 200
"""Characters an agent's note on a schedule request may have."""
MAX_REQUESTS_WAITING: Final = 20
"""Schedule requests one agent may have waiting at once."""
MAX_ANSWERS_SHOWN: Final = 5
"""Answers to an agent's schedule requests their desktop shows (the newest)."""
_SKILL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Roster:
    """Who works where and when, as changed while the centre runs, laid over the config
    file: agents and queues added, queue members joined/left/paused, skills, schedule days
    and agents' requests for them. Every change is checked as the config file would be,
    published on the bus (the records keep it across restarts: ``restore_*``) and applied
    to the router at once; ``config`` is the config every part of the daemon reads."""

    def __init__(
        self,
        config: CallCenterConfig,
        router: Router,
        bus: EventBus,
        use: Callable[[CallCenterConfig], None] = lambda config: None,
    ) -> None:
        """``use`` is told every new ``config`` (the switchboard's)."""
        self.file_config = config
        """The config as its file says, without what was changed while the centre runs."""
        self.config = config
        """The file's config with the changes laid over it."""
        self.router = router
        self.bus = bus
        self._use = use
        self.added_agents: dict[str, tuple[AgentConfig, datetime, str]] = {}
        """Agents added while the centre runs (``agent add``): id -> (settings, since, via)."""
        self.added_queues: dict[str, tuple[QueueConfig, datetime, str]] = {}
        """Queues added while the centre runs (``queue add``): name -> (settings, since,
        via)."""
        self.schedule_answers: dict[str, list[dict[str, Any]]] = {}
        """Agent -> the answers to their latest schedule requests, newest first."""
        self.schedule_requests: dict[str, dict[str, Any]] = {}
        """Agents' requests for a day of their schedule waiting for a supervisor's word
        (:meth:`ask_schedule`), by id."""
        self.schedule_changes: dict[str, dict[date, tuple[tuple[str, ...], datetime, str]]] = {}
        """Schedule days changed while the centre runs (``agent schedule``): agent -> day ->
        (hours, since, via)."""
        self.skill_changes: dict[str, tuple[dict[str, int], datetime, str]] = {}
        """Agent id -> the skills set while the centre runs (:meth:`set_skills`), when and
        how; laid over the config."""
        self.member_changes: dict[tuple[str, str], tuple[MemberChange, datetime, str]] = {}
        """(queue, agent) -> a change to the queue's members made while the centre runs
        (:meth:`join_queue`, :meth:`leave_queue`), when and how; laid over the config."""
        self._configure_router(config)

    def apply_config(self, config: CallCenterConfig) -> None:
        """The config file says ``config`` now (a reload).

        Everything changed while the centre runs stays laid over it (the file's own agents
        and queues of the same names win).
        """
        self.file_config = config
        self._lay_over()
        for name in sorted(set(self.added_queues) & set(config.queues)):
            log.warning(
                "added_queue_shadowed",
                queue=name,
                hint="the config file names this queue now: its settings win",
            )
        for agent_id in sorted(set(self.added_agents) & set(config.agents)):
            log.warning(
                "added_agent_shadowed",
                agent=agent_id,
                hint="the config file names this agent now: its settings win",
            )
        owners = {agent.device: agent_id for agent_id, agent in config.agents.items()}
        for agent_id, (agent, _, _) in sorted(self.added_agents.items()):
            owner = owners.get(agent.device)
            if owner is not None and owner != agent_id:
                log.warning(
                    "added_agent_device_taken",
                    agent=agent_id,
                    device=agent.device,
                    owner=owner,
                    hint=f"the config file gives this phone to {owner}: agent change "
                    f"{agent_id} --device ... or agent remove {agent_id}",
                )
        self._configure_router(self.config)

    def _lay_over(self) -> None:
        self.config = self._with_changes(self.file_config)
        self._use(self.config)

    def _with_changes(self, config: CallCenterConfig) -> CallCenterConfig:
        """``config`` (the file's) with the agents added and the schedule days changed
        while the centre runs."""
        days = {
            agent_id: {day: hours for day, (hours, _, _) in changed.items()}
            for agent_id, changed in self.schedule_changes.items()
        }
        queues = {name: queue for name, (queue, _, _) in self.added_queues.items()}
        return with_day_changes(with_added(config, self._added(), queues), days)

    # ------------------------------------------------------------------ schedule days

    def change_schedule(
        self, agent_id: str, day: date, hours: Sequence[str] | None, *, via: str = "cli"
    ) -> dict[str, Any]:
        """``agent_id`` works ``hours`` (``["10:00-18:00"]``; empty: a day off) on ``day``
        (the schedule's own date) instead of what their schedule says: a shift swapped, an
        extra day. None: the day as the schedule says again. Kept across reloads and
        restarts; the ``absent`` alert, the desktops and ``report --adherence`` follow.
        UnknownAgent, or InvalidAgent for hours a schedule cannot have."""
        if agent_id not in self.config.agents:
            raise UnknownAgent(f"no agent {agent_id!r} is configured")
        ranges = None if hours is None else day_hours(hours)
        self._forget_old_days()
        days = self.schedule_changes.setdefault(agent_id, {})
        if ranges is None:
            days.pop(day, None)
        else:
            days[day] = (ranges, datetime.now(UTC), via)
        if not days:
            del self.schedule_changes[agent_id]
        self._lay_over()
        shown = None if hours is None else list(days[day][0])
        self.bus.publish(
            AgentScheduleChanged(agent=agent_id, day=day.isoformat(), hours=shown, via=via)
        )
        log.info("agent_schedule_changed", agent=agent_id, day=day.isoformat(), hours=shown)
        return self.schedule_day(agent_id, day)

    def schedule_day(self, agent_id: str, day: date) -> dict[str, Any]:
        """What ``agent_id`` works on ``day``: the hours (none: a day off or no schedule),
        and whether they were changed while the centre runs (when, by whom)."""
        schedule = schedule_of(self.config, agent_id)
        hours = list(schedule.hours.day_ranges(day)) if schedule is not None else []
        kept = self.schedule_changes.get(agent_id, {}).get(day)
        return {
            "agent": agent_id,
            "day": day.isoformat(),
            "hours": hours,
            "changed": kept is not None,
            **({"since": kept[1].isoformat(timespec="seconds"), "via": kept[2]} if kept else {}),
        }

    def schedule_days(self, agent_id: str, first: date, count: int) -> list[dict[str, Any]]:
        """:meth:`schedule_day` of ``count`` days from ``first`` on."""
        return [self.schedule_day(agent_id, first + timedelta(days=n)) for n in range(count)]

    def restore_schedule_changes(
        self, kept: Sequence[tuple[str, date, Sequence[str], datetime, str]]
    ) -> int:
        """Take back the schedule days a previous daemon changed (agents the config still
        has; hours no schedule can have any more are logged and left out)."""
        taken = 0
        for agent_id, day, hours, since, via in kept:
            if agent_id not in self.config.agents:
                continue
            try:
                ranges = day_hours(hours)
            except InvalidAgent as exc:
                log.error("schedule_change_not_restored", agent=agent_id, error=str(exc))
                continue
            self.schedule_changes.setdefault(agent_id, {})[day] = (ranges, since, via)
            taken += 1
        if taken:
            self._lay_over()
        return taken

    def ask_schedule(
        self, agent_id: str, day: date, hours: Sequence[str], *, note: str = ""
    ) -> dict[str, Any]:
        """The agent asks for ``day`` to be ``hours`` (empty: a day off) instead of their
        schedule's, saying why in ``note``: a request their supervisors approve
        (:meth:`decide_schedule`) or decline. UnknownAgent; InvalidAgent for hours a
        schedule cannot have, a day gone by, a note over 200 characters or too many
        requests waiting."""
        if agent_id not in self.config.agents:
            raise UnknownAgent(f"no agent {agent_id!r} is configured")
        ranges = day_hours(hours)
        if day < datetime.now(UTC).date() - timedelta(days=1):
            raise InvalidAgent(f"day: {day.isoformat()} is gone by")
        if len(note) > MAX_REQUEST_NOTE:
            raise InvalidAgent(f"note: {MAX_REQUEST_NOTE} characters at the most")
        waiting = [r for r in self.schedule_requests.values() if r["agent"] == agent_id]
        if len(waiting) >= MAX_REQUESTS_WAITING:
            raise InvalidAgent(f"{len(waiting)} requests wait already: let them be answered")
        request = secrets.token_hex(4)
        self.schedule_requests[request] = {
            "id": request,
            "agent": agent_id,
            "day": day.isoformat(),
            "hours": list(ranges),
            "note": note,
            "asked": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.bus.publish(
            ScheduleRequested(
                agent=agent_id, request=request, day=day.isoformat(), hours=list(ranges), note=note
            )
        )
        log.info("schedule_requested", agent=agent_id, request=request, day=day.isoformat())
        return dict(self.schedule_requests[request])

    def decide_schedule(self, request_id: str, *, approve: bool, by: str) -> dict[str, Any]:
        """A supervisor's word (``by``) on a waiting request: approved, the agent's day
        changes as asked (:meth:`change_schedule`); declined, nothing changes. EngineError
        for a request that waits no more (or never did)."""
        request = self.schedule_requests.get(request_id)
        if request is None:
            raise EngineError(f"no request {request_id!r} waits")
        changed: dict[str, Any] | None = None
        if approve:
            day = date.fromisoformat(str(request["day"]))
            changed = self.change_schedule(str(request["agent"]), day, request["hours"], via=by)
        del self.schedule_requests[request_id]
        answered = {**request, "status": "approved" if approve else "declined"}
        answers = self.schedule_answers.setdefault(str(request["agent"]), [])
        answers[:] = [answered, *answers][:MAX_ANSWERS_SHOWN]
        self.bus.publish(
            ScheduleRequestDecided(
                agent=str(request["agent"]), request=request_id, approved=approve, by=by
            )
        )
        log.info("schedule_request_decided", request=request_id, approved=approve, by=by)
        return {**request, "status": "approved" if approve else "declined", "by": by} | (
            {"schedule": changed} if changed is not None else {}
        )

    def withdraw_schedule_request(self, request_id: str, agent_id: str) -> dict[str, Any]:
        """The agent takes back their own request before anyone answered it (plans
        changed). EngineError for a request that waits no more (or never did),
        NotPermitted for another agent's."""
        request = self.schedule_requests.get(request_id)
        if request is None:
            raise EngineError(f"no request {request_id!r} waits")
        if request["agent"] != agent_id:
            raise NotPermitted(f"request {request_id} is agent {request['agent']}'s")
        del self.schedule_requests[request_id]
        self.bus.publish(
            ScheduleRequestDecided(
                agent=agent_id, request=request_id, approved=False, by=agent_id, withdrawn=True
            )
        )
        log.info("schedule_request_withdrawn", request=request_id, agent=agent_id)
        return {**request, "status": "withdrawn"}

    def restore_schedule_requests(
        self, kept: Sequence[tuple[str, str, date, Sequence[str], str, datetime]]
    ) -> int:
        """Offer again the requests a previous daemon left waiting (agents the config
        still has; days not gone by)."""
        taken = 0
        oldest = datetime.now(UTC).date() - timedelta(days=1)
        for request_id, agent_id, day, hours, note, asked in kept:
            if agent_id not in self.config.agents or day < oldest:
                continue
            self.schedule_requests[request_id] = {
                "id": request_id,
                "agent": agent_id,
                "day": day.isoformat(),
                "hours": list(hours),
                "note": note,
                "asked": asked.isoformat(timespec="seconds"),
            }
            taken += 1
        return taken

    def remember_schedule_answers(
        self, kept: Sequence[tuple[str, date, Sequence[str], str]]
    ) -> None:
        """The answers a previous daemon gave to requests (agent, day, hours, status),
        newest first, for the agents' desktops."""
        for agent_id, day, hours, status in kept:
            answers = self.schedule_answers.setdefault(agent_id, [])
            if len(answers) < MAX_ANSWERS_SHOWN:
                answers.append(
                    {
                        "agent": agent_id,
                        "day": day.isoformat(),
                        "hours": list(hours),
                        "status": status,
                    }
                )

    def schedule_answers_of(self, agent_id: str) -> list[dict[str, Any]]:
        """The answers to the agent's requests for days not gone by, newest first."""
        oldest = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        return [dict(a) for a in self.schedule_answers.get(agent_id, []) if a["day"] >= oldest]

    def schedule_request_views(self, agents: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The requests waiting for a supervisor's word (of ``agents`` only when given),
        oldest first."""
        return [
            dict(r)
            for r in sorted(self.schedule_requests.values(), key=lambda r: str(r["asked"]))
            if agents is None or r["agent"] in agents
        ]

    def _forget_old_days(self) -> None:
        """Days before yesterday no longer matter live (the records keep them for the
        reports)."""
        oldest = datetime.now(UTC).date() - timedelta(days=2)
        for agent_id, days in list(self.schedule_changes.items()):
            for day in [day for day in days if day < oldest]:
                del days[day]
            if not days:
                del self.schedule_changes[agent_id]

    def schedule_change_views(self) -> list[dict[str, Any]]:
        """The schedule days changed while the centre runs (for status), by agent and day."""
        return [
            {
                "agent": agent_id,
                "day": day.isoformat(),
                "hours": list(hours),
                "since": since.isoformat(timespec="seconds"),
                "via": via,
            }
            for agent_id, days in sorted(self.schedule_changes.items())
            for day, (hours, since, via) in sorted(days.items())
        ]

    def _added(self) -> dict[str, AgentConfig]:
        return {agent_id: agent for agent_id, (agent, _, _) in self.added_agents.items()}

    # ------------------------------------------------------------------ queues added

    def add_queue(
        self, name: str, settings: Mapping[str, Any], *, via: str = "cli"
    ) -> dict[str, Any]:
        """Add a queue while the centre runs (app_queue's realtime queues, mod_callcenter's
        ``callcenter_config queue load``): ``settings`` as the config file's
        ``queues.<name>`` takes them (``like``: another queue's settings first, these
        over them). Callers reach it through a queue node's
        ``queue_from``, transfers and callbacks into it. Kept across reloads and restarts.
        InvalidQueue for settings the config could not hold, EngineError when the name is
        taken."""
        if name in self.file_config.queues:
            raise EngineError(f"queue {name} is in the config file: change it there")
        if name in self.added_queues:
            raise EngineError(f"queue {name} was added already: change it (queue change)")
        like = settings.get("like")
        if like is not None:
            model = self.config.queues.get(str(like))
            if model is None:
                raise InvalidQueue(f"like: no queue {like!r} to start from")
            # Digits pick one queue (app_queue's context keys): not copied.
            copied = {k: v for k, v in settings_of(model).items() if k != "digits"}
            settings = {**copied, **{k: v for k, v in settings.items() if k != "like"}}
        queue = queue_settings(name, settings, self.config)
        return self._keep_queue(name, queue, via, changed=False)

    def change_queue(
        self, name: str, settings: Mapping[str, Any], *, via: str = "cli"
    ) -> dict[str, Any]:
        """Change an added queue's settings (those given replace its; ``null`` takes one
        back to its default); callers waiting keep their places. UnknownQueue for a name
        nobody added."""
        kept = self.added_queues.get(name)
        if kept is None or name in self.file_config.queues:
            raise UnknownQueue(f"no queue {name!r} was added while the centre runs")
        merged = {**settings_of(kept[0]), **settings}
        merged = {key: value for key, value in merged.items() if value is not None}
        without = self.config.model_copy(
            update={"queues": {q: c for q, c in self.config.queues.items() if q != name}}
        )
        queue = queue_settings(name, merged, without)
        return self._keep_queue(name, queue, via, changed=True)

    def remove_queue(self, name: str, *, via: str = "cli") -> dict[str, Any]:
        """Remove a queue added while the centre runs, with the members agents were given
        in it. EngineError while anyone waits in it, or another queue sends callers to it."""
        if name not in self.added_queues or name in self.file_config.queues:
            raise UnknownQueue(f"no queue {name!r} was added while the centre runs")
        waiting = self.router.callers(name)
        if waiting:
            raise EngineError(f"queue {name}: {len(waiting)} waiting, let them be served first")
        without = self.config.model_copy(
            update={"queues": {q: c for q, c in self.config.queues.items() if q != name}}
        )
        data = without.model_dump(mode="json")
        naming = [str(problem) for problem in reference_problems(data)]
        if naming:
            raise EngineError(f"queue {name} is still named: " + "; ".join(naming))
        for key, (change, _, _) in list(self.member_changes.items()):
            if change.queue == name:
                del self.member_changes[key]
                self.bus.publish(
                    QueueMemberChanged(
                        agent=change.agent, queue=name, member=False, via=via, kept=False
                    )
                )
        del self.added_queues[name]
        self._lay_over()
        # Nobody waits in it: the router forgets it too (a reload keeps a removed queue).
        self.router.remove_queue(name)
        self._configure_router(self.config)
        self.bus.publish(QueueRemoved(queue=name, via=via))
        log.info("queue_removed", queue=name, via=via)
        return {"queue": name, "removed": True}

    def _keep_queue(
        self, name: str, queue: QueueConfig, via: str, *, changed: bool
    ) -> dict[str, Any]:
        self.added_queues[name] = (queue, datetime.now(UTC), via)
        self._lay_over()
        self._configure_router(self.config)
        settings = settings_of(queue)
        self.bus.publish(QueueAdded(queue=name, settings=settings, via=via, changed=changed))
        log.info("queue_changed" if changed else "queue_added", queue=name, via=via)
        return self._queue_view(name)

    def restore_added_queues(
        self, kept: Sequence[tuple[str, Mapping[str, Any], datetime, str]]
    ) -> int:
        """Take back the queues a previous daemon added (those the config file does not
        name; settings the config can no longer hold are logged and left out)."""
        return self._restore_added("queue", kept, self.added_queues, queue_settings)

    def _queue_view(self, name: str) -> dict[str, Any]:
        return _added_view("queue", name, self.added_queues[name], self.file_config.queues)

    def added_queue_views(self) -> list[dict[str, Any]]:
        """The queues added while the centre runs (for status and ``GET /queues/added``)."""
        return [self._queue_view(name) for name in sorted(self.added_queues)]

    # ------------------------------------------------------------------ the roster

    def add_agent(
        self, agent_id: str, settings: Mapping[str, Any], *, via: str = "cli"
    ) -> dict[str, Any]:
        """Add an agent while the centre runs (mod_callcenter's ``callcenter_config agent
        add``): ``settings`` as the config file's ``agents.<id>`` takes them. They start
        logged out and in no queue (``agent join``). Kept across reloads and restarts.
        InvalidAgent for settings the config could not hold, EngineError when the id is
        taken."""
        if agent_id in self.file_config.agents:
            raise EngineError(f"agent {agent_id} is in the config file: change it there")
        if agent_id in self.added_agents:
            raise EngineError(f"agent {agent_id} was added already: change it (agent change)")
        agent = agent_settings(agent_id, settings, self.config)
        view = self._keep_added(agent_id, agent, via, changed=False)
        if agent.logged_in:
            self.router.login(agent_id, via=via)
        return view

    def change_agent(
        self, agent_id: str, settings: Mapping[str, Any], *, via: str = "cli"
    ) -> dict[str, Any]:
        """Change an added agent's settings (those given replace theirs; ``null`` takes
        one back to its default). UnknownAgent for an id nobody added."""
        kept = self.added_agents.get(agent_id)
        if kept is None or agent_id in self.file_config.agents:
            raise UnknownAgent(f"no agent {agent_id!r} was added while the centre runs")
        merged = {**settings_of(kept[0]), **settings}
        merged = {key: value for key, value in merged.items() if value is not None}
        agent = agent_settings(agent_id, merged, self.config)
        return self._keep_added(agent_id, agent, via, changed=True)

    def remove_agent(self, agent_id: str, *, via: str = "cli") -> dict[str, Any]:
        """Remove an agent added while the centre runs, with the queues and skills they
        were given. EngineError while they are logged in (log them out first)."""
        if agent_id not in self.added_agents or agent_id in self.file_config.agents:
            raise UnknownAgent(f"no agent {agent_id!r} was added while the centre runs")
        router_agent = self.router.agents.get(agent_id)
        if router_agent is not None and router_agent.state is not AgentState.LOGGED_OUT:
            raise EngineError(f"agent {agent_id} is logged in: log them out first")
        listing = sorted(q for q, (c, _, _) in self.added_queues.items() if agent_id in c.agents)
        if listing:
            raise EngineError(
                f"agent {agent_id} is among the agents of queue(s) {', '.join(listing)}: "
                "change those first (queue change)"
            )
        for key, (change, _, _) in list(self.member_changes.items()):
            if change.agent == agent_id:
                del self.member_changes[key]
                self.bus.publish(
                    QueueMemberChanged(
                        agent=agent_id, queue=change.queue, member=False, via=via, kept=False
                    )
                )
        if self.skill_changes.pop(agent_id, None) is not None:
            self.bus.publish(AgentSkillsChanged(agent=agent_id, skills={}, via=via, kept=False))
        for day in sorted(self.schedule_changes.pop(agent_id, {})):
            self.bus.publish(AgentScheduleChanged(agent=agent_id, day=day.isoformat(), via=via))
        del self.added_agents[agent_id]
        self._lay_over()
        self._configure_router(self.config)
        # Logged out and in no queue now: the router forgets them too.
        self.router.remove_agent(agent_id)
        self.bus.publish(AgentRemoved(agent=agent_id, via=via))
        log.info("agent_removed", agent=agent_id, via=via)
        return {"agent": agent_id, "removed": True}

    def _keep_added(
        self, agent_id: str, agent: AgentConfig, via: str, *, changed: bool
    ) -> dict[str, Any]:
        since = datetime.now(UTC)
        self.added_agents[agent_id] = (agent, since, via)
        self._lay_over()
        self._configure_router(self.config)
        settings = settings_of(agent)
        self.bus.publish(AgentAdded(agent=agent_id, settings=settings, via=via, changed=changed))
        log.info("agent_changed" if changed else "agent_added", agent=agent_id, via=via)
        return self._added_view(agent_id)

    def restore_added_agents(
        self, kept: Sequence[tuple[str, Mapping[str, Any], datetime, str]]
    ) -> int:
        """Take back the agents a previous daemon added (those the config file does not
        name; settings the config can no longer hold are logged and left out)."""
        return self._restore_added("agent", kept, self.added_agents, agent_settings)

    def _restore_added(
        self,
        kind: str,
        kept: Sequence[tuple[str, Mapping[str, Any], datetime, str]],
        added: dict[str, tuple[_Added, datetime, str]],
        check: Callable[[str, Mapping[str, Any], CallCenterConfig], _Added],
    ) -> int:
        in_file = self.file_config.agents if kind == "agent" else self.file_config.queues
        taken = 0
        for name, settings, since, via in kept:
            if name in in_file:
                log.warning(f"added_{kind}_shadowed", **{kind: name})
                continue
            try:
                value = check(name, settings, self.config)
            except (InvalidAgent, InvalidQueue) as exc:
                log.error(f"added_{kind}_not_restored", error=str(exc), **{kind: name})
                continue
            added[name] = (value, since, via)
            self._lay_over()
            taken += 1
        if taken:
            self._configure_router(self.config)
        return taken

    def _added_view(self, agent_id: str) -> dict[str, Any]:
        return _added_view("agent", agent_id, self.added_agents[agent_id], self.file_config.agents)

    def added_views(self) -> list[dict[str, Any]]:
        """The agents added while the centre runs (for status and ``GET /roster``)."""
        return [self._added_view(agent_id) for agent_id in sorted(self.added_agents)]

    def _configure_router(self, config: CallCenterConfig) -> None:
        changes = [change for change, _, _ in self.member_changes.values()]
        agents = agent_rules(config)
        for agent_id, (skills, _, _) in self.skill_changes.items():
            if agent_id in agents:
                agents[agent_id] = dataclasses.replace(
                    agents[agent_id], skills=MappingProxyType(dict(skills))
                )
        try:
            self.router.configure(
                with_changes(queue_rules(config), changes, config.agents),
                agents,
                longest_waiting_first=config.acd.longest_waiting_first,
            )
        except EngineError as exc:
            log.error("router_config_refused", error=str(exc))

    # ------------------------------------------------------------------ queue members

    def join_queue(
        self, agent_id: str, queue: str, *, penalty: int | None = None, via: str = "cli"
    ) -> bool:
        """Make ``agent_id`` a member of ``queue`` from now on (app_queue's QueueAdd), at
        ``penalty`` (None: the config's, else 0); kept across reloads and restarts until
        :meth:`leave_queue` or a join that matches the config again. False when nothing
        changed. Raises UnknownAgent / UnknownQueue."""
        self._check_membership(agent_id, queue)
        qcfg = self.config.queues[queue]
        in_config = agent_id in qcfg.agents
        kept = not in_config or (penalty is not None and penalty != qcfg.penalties.get(agent_id))
        return self._change_members(MemberChange(queue, agent_id, True, penalty), kept, via)

    def leave_queue(self, agent_id: str, queue: str, *, via: str = "cli") -> bool:
        """Take ``agent_id`` out of ``queue``'s members from now on (app_queue's
        QueueRemove): no new caller of the queue is offered to them; a call of it they are
        on goes on. Kept across reloads and restarts until :meth:`join_queue`. False when
        they were not a member."""
        self._check_membership(agent_id, queue)
        kept = agent_id in self.config.queues[queue].agents
        return self._change_members(MemberChange(queue, agent_id, False), kept, via)

    def pause_in_queue(self, agent_id: str, queue: str, reason: str, *, via: str = "cli") -> bool:
        """Pause member ``agent_id`` in ``queue`` only (app_queue's QueuePause with a
        queue): none of its new callers is offered to them, their other queues' callers
        are; a call they are on goes on. Kept across reloads and restarts until
        :meth:`unpause_in_queue` (or a join or a leave). Paused already: the reason is
        updated. False when nothing changed. Raises UnknownAgent / UnknownQueue, or
        EngineError when they are no member of the queue."""
        self._check_membership(agent_id, queue)
        member, penalty, _ = self._membership(agent_id, queue)
        if not member:
            raise EngineError(f"agent {agent_id} is no member of queue {queue}")
        change = MemberChange(queue, agent_id, True, penalty, reason)
        return self._change_members(change, True, via, pause=True)

    def unpause_in_queue(self, agent_id: str, queue: str, *, via: str = "cli") -> bool:
        """Offer ``queue``'s callers to ``agent_id`` again after :meth:`pause_in_queue`.
        Raises UnknownAgent / UnknownQueue, or EngineError when they are not paused there."""
        self._check_membership(agent_id, queue)
        _, penalty, paused = self._membership(agent_id, queue)
        if paused is None:
            raise EngineError(f"agent {agent_id} is not paused in queue {queue}")
        qcfg = self.config.queues[queue]
        kept = agent_id not in qcfg.agents or (
            penalty is not None and penalty != qcfg.penalties.get(agent_id)
        )
        change = MemberChange(queue, agent_id, True, penalty)
        return self._change_members(change, kept, via, pause=True)

    def apply_profile(self, agent_id: str, name: str, *, via: str = "cli") -> dict[str, Any]:
        """Give ``agent_id`` profile ``name`` (``profiles``): a member of its queues (at its
        penalties) and of no other, with its skills when it has some; each change is a
        queue or skill change of its own, kept across reloads and restarts. Raises
        UnknownAgent, or EngineError for a profile the config does not have."""
        profile = self.config.profiles.get(name)
        if profile is None:
            known = ", ".join(self.config.profiles) or "none are configured (profiles:)"
            raise EngineError(f"no profile {name!r}; use one of: {known}")
        if agent_id not in self.config.agents:
            raise UnknownAgent(f"no agent {agent_id!r} is configured")
        joined, left = [], []
        for queue in sorted(self.config.queues):
            if queue in profile.queues:
                penalty = profile.penalties.get(queue)
                if self.join_queue(agent_id, queue, penalty=penalty, via=via):
                    joined.append(queue)
            elif self._membership(agent_id, queue)[0] and self.leave_queue(
                agent_id, queue, via=via
            ):
                left.append(queue)
        skills = False
        if profile.skills is not None:
            skills = self.set_skills(agent_id, dict(profile.skills), via=via)
        log.info(
            "agent_profile_applied", agent=agent_id, profile=name, joined=joined, left=left, via=via
        )
        return {
            "agent": agent_id,
            "profile": name,
            "joined": joined,
            "left": left,
            "skills_changed": skills,
            "queues": list(self.router.agent_view(agent_id)["queues"]),
        }

    def profile_of(self, agent_id: str) -> str | None:
        """The profile ``agent_id`` works as now: the first by name whose queues are
        exactly theirs, at its penalties, with its skills where it has some. Worked out
        from what they are (the queue and skill changes are what is kept), so it holds
        across restarts and after the same changes made one by one; None when no profile
        fits, or none is configured."""
        profiles = self.config.profiles
        if not profiles or agent_id not in self.router.agents:
            return None
        view = self.router.agent_view(agent_id)
        queues = set(view["queues"])
        for name in sorted(profiles):
            profile = profiles[name]
            if set(profile.queues) != queues:
                continue
            if any(
                self.router.queues[queue].by_agent[agent_id].penalty != penalty
                for queue, penalty in profile.penalties.items()
            ):
                continue
            if profile.skills is not None and dict(profile.skills) != view["skills"]:
                continue
            return name
        return None

    def _membership(self, agent_id: str, queue: str) -> tuple[bool, int | None, str | None]:
        """Whether ``agent_id`` is a member of ``queue`` now, at which penalty (None: the
        config's) and paused there why (None: not)."""
        kept = self.member_changes.get((queue, agent_id))
        if kept is not None:
            change = kept[0]
            return change.member, change.penalty, change.paused
        return agent_id in self.config.queues[queue].agents, None, None

    def set_skills(
        self, agent_id: str, skills: Mapping[str, int] | None, *, via: str = "cli"
    ) -> bool:
        """Give ``agent_id`` these skills (skill -> level 1-10) from now on, for the callers
        waiting too; None: the config's again. Kept across reloads and restarts until reset.
        False when nothing changed. Raises UnknownAgent, or EngineError for a level out of
        1-10 or a skill ``acd.skills`` does not list."""
        agent = self.config.agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(f"no agent {agent_id!r} is configured")
        if skills is not None:
            known = self.config.acd.skills
            for skill, level in skills.items():
                if not _SKILL_NAME.fullmatch(skill):
                    raise EngineError(f"{skill!r} is no skill name (letters, digits, _ . -)")
                if known and skill not in known:
                    raise EngineError(f"no skill {skill!r} in acd.skills ({', '.join(known)})")
                if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
                    raise EngineError(f"skill {skill!r}: a level is a whole number 1-10")
        wanted = dict(agent.skills) if skills is None else dict(skills)
        kept = skills is not None and wanted != dict(agent.skills)
        before = dict(self.router.agents[agent_id].skills)
        earlier = self.skill_changes.get(agent_id)
        if kept:
            self.skill_changes[agent_id] = (wanted, datetime.now(UTC), via)
        else:
            self.skill_changes.pop(agent_id, None)
        if before == wanted and (earlier is not None) == kept:
            if earlier is not None:
                self.skill_changes[agent_id] = earlier
            return False
        self._configure_router(self.config)
        self.bus.publish(AgentSkillsChanged(agent=agent_id, skills=wanted, via=via, kept=kept))
        log.info("agent_skills_changed", agent=agent_id, skills=wanted, via=via, kept=kept)
        return True

    def restore_skill_changes(
        self, kept: Sequence[tuple[str, dict[str, int], datetime, str]]
    ) -> int:
        """Give agents the skills a previous daemon kept (agents the config still has)."""
        taken = 0
        for agent_id, skills, since, via in kept:
            if agent_id in self.config.agents:
                self.skill_changes[agent_id] = (dict(skills), since, via)
                taken += 1
        if taken:
            self._configure_router(self.config)
        return taken

    def skill_views(self) -> list[dict[str, Any]]:
        """The agents given skills while the centre runs (for status)."""
        return [
            {
                "agent": agent_id,
                "skills": dict(skills),
                "since": since.isoformat(timespec="seconds"),
                "via": via,
            }
            for agent_id, (skills, since, via) in sorted(self.skill_changes.items())
        ]

    def member_views(self) -> list[dict[str, Any]]:
        """The changes to queues' members made while the centre runs (for status)."""
        return [
            {
                "queue": change.queue,
                "agent": change.agent,
                "member": change.member,
                "penalty": change.penalty,
                "paused": change.paused,
                "since": since.isoformat(timespec="seconds"),
                "via": via,
            }
            for change, since, via in sorted(
                self.member_changes.values(), key=lambda c: (c[0].queue, c[0].agent)
            )
        ]

    def restore_member_changes(self, kept: Sequence[tuple[MemberChange, datetime, str]]) -> int:
        """Lay the changes a previous daemon kept over the config again (those whose queue
        and agent the config still has); returns how many."""
        taken = 0
        for change, since, via in kept:
            if change.queue in self.config.queues and change.agent in self.config.agents:
                self.member_changes[(change.queue, change.agent)] = (change, since, via)
                taken += 1
        if taken:
            self._configure_router(self.config)
        return taken

    def _check_membership(self, agent_id: str, queue: str) -> None:
        if agent_id not in self.config.agents:
            raise UnknownAgent(f"no agent {agent_id!r} is configured")
        if queue not in self.config.queues:
            raise UnknownQueue(f"no queue {queue!r} is configured")

    def _change_members(
        self, change: MemberChange, kept: bool, via: str, *, pause: bool = False
    ) -> bool:
        def routed() -> tuple[bool, int]:
            rules = self.router.rules(change.queue)
            return change.agent in rules.members, rules.penalties.get(change.agent, 0)

        key = (change.queue, change.agent)
        before, earlier = routed(), self.member_changes.get(key)
        if kept:
            self.member_changes[key] = (change, datetime.now(UTC), via)
        else:
            self.member_changes.pop(key, None)
        self._configure_router(self.config)
        same_change = (earlier[0] if earlier else None) == (change if kept else None)
        if routed() == before and same_change:
            if earlier is not None:
                self.member_changes[key] = earlier  # nothing new: keep when it was made
            return False
        self.bus.publish(
            QueueMemberChanged(
                agent=change.agent,
                queue=change.queue,
                member=change.member,
                penalty=change.penalty,
                via=via,
                kept=kept,
                pause=pause,
                paused=change.paused,
            )
        )
        if pause:
            what = "agent_paused_in_queue" if change.paused else "agent_unpaused_in_queue"
        else:
            what = "queue_member_added" if change.member else "queue_member_removed"
        log.info(
            what,
            agent=change.agent,
            queue=change.queue,
            penalty=change.penalty,
            reason=change.paused,
            via=via,
            kept=kept,
        )
        return True


def _added_view(
    kind: str,
    name: str,
    kept: tuple[AgentConfig | QueueConfig, datetime, str],
    in_file: Collection[str],
) -> dict[str, Any]:
    """An added agent or queue as status and the API show it."""
    settings, since, via = kept
    return {
        kind: name,
        **settings_of(settings),
        "since": since.isoformat(timespec="seconds"),
        "via": via,
        "in_config_file": name in in_file,
    }
