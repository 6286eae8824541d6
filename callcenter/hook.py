"""What a PBX admin's dialplan hands the daemon with a call: the ``inbound`` hook's
parameters.

The hook is ``AGI(agi://127.0.0.1:4573/inbound?<parameters>)`` on Asterisk (``agi:async``
with the same path), ``callcenter_route=inbound?<parameters>`` on FreeSWITCH::

    queue=sales          straight into that queue: no IVR (the routes are not looked at)
    flow=night           walk that IVR flow instead of the dialled number's route
    priority=5           the caller's queue priority (-1000..1000) with queue=
    skills=fr,billing    the skills an agent needs to take them, with queue=
    var_ticket=T-42      a call variable (``ticket``) from the dialplan's own lookups: the
                         agent's screen pop, the call's script, the IVR's branches and
                         templates, the CDR's ivr_variables

A parameter the config cannot honour (a queue or flow it does not have, a priority that is
no number, a bad variable name) is logged with what to fix and left out: the caller is
never lost over it (the route's IVR takes them, as without the parameter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from callcenter.config.models import CallCenterConfig
from callcenter.ivr.values import BUILTIN_VARIABLES, VARIABLE_NAME

VARIABLE_PREFIX: Final = "var_"
MAX_VALUE: Final = 200
"""Characters of one variable's value kept (the rest is cut)."""
MAX_VARIABLES: Final = 20
_VARIABLE: Final = re.compile(VARIABLE_NAME)
_SKILL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KNOWN: Final = frozenset({"queue", "flow", "priority", "skills"})
"""The parameters read here (others belong to other routes: ``callback``, ``amd`` ...)."""


@dataclass(frozen=True, slots=True)
class DialplanHook:
    """The parameters of one call's hook, checked against the config."""

    queue: str | None = None
    flow: str | None = None
    priority: int = 0
    skills: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = field(default=())
    """What was left out and why (``queue: no queue 'sles' in the config``)."""


EMPTY_HOOK: Final = DialplanHook()
"""A call whose hook has no parameters (most calls: nothing to read)."""


def read_hook(params: Mapping[str, str], config: CallCenterConfig) -> DialplanHook:
    """The hook's parameters as the call uses them (see the module doc)."""
    problems: list[str] = []
    queue = params.get("queue") or None
    if queue is not None and queue not in config.queues:
        problems.append(f"queue: no queue {queue!r} in the config")
        queue = None
    flow = params.get("flow") or None
    if flow is not None and flow not in config.flows:
        problems.append(f"flow: no flow {flow!r} in the config")
        flow = None
    priority = 0
    text = params.get("priority", "").strip()
    if text:
        try:
            priority = max(-1000, min(1000, int(text)))
        except ValueError:
            problems.append(f"priority: {text!r} is not a whole number")
    skills: list[str] = []
    for skill in (s.strip() for s in params.get("skills", "").split(",")):
        if not skill:
            continue
        if not _SKILL.fullmatch(skill):
            problems.append(f"skills: {skill!r} is no skill name")
        elif skill not in skills:
            skills.append(skill)
    if queue is None and (text or skills):
        problems.append("priority and skills go with queue=")
    variables: dict[str, str] = {}
    for key, value in params.items():
        if not key.startswith(VARIABLE_PREFIX):
            continue
        name = key[len(VARIABLE_PREFIX) :]
        if not _VARIABLE.fullmatch(name) or name in BUILTIN_VARIABLES:
            problems.append(f"{key}: {name!r} is no variable a call may be given")
        elif len(variables) >= MAX_VARIABLES:
            problems.append(f"{key}: {MAX_VARIABLES} variables at the most")
        else:
            variables[name] = value[:MAX_VALUE]
    return DialplanHook(
        queue=queue,
        flow=flow,
        priority=priority,
        skills=tuple(skills),
        variables=tuple(variables.items()),
        problems=tuple(problems),
    )
