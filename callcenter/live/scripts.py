"""Call scripts: what agents say on a queue's or a campaign's calls (``scripts``), the
call's variables filled in, for the agent's desktop and ``GET /agents/<id>/script``.

A campaign's ``script`` wins for its leads, else the queue's. The variables are the ones a
screen pop gets (:func:`call_variables`) plus the agent's name; one the call lacks shows as
``[name]`` so that the agent knows what to ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callcenter.config.models import CallCenterConfig
from callcenter.ivr.values import names_in, render_marked

if TYPE_CHECKING:
    from callcenter.switchboard import ActiveCall


@dataclass(frozen=True, slots=True)
class FilledScript:
    """A script as one agent reads it on one call."""

    name: str
    title: str
    text: str
    """The words with the call's variables in."""
    missing: tuple[str, ...] = ()
    """The variables the script names that the call does not have (shown as ``[name]``)."""

    def view(self) -> dict[str, Any]:
        return {
            "script": self.name,
            "title": self.title,
            "text": self.text,
            "missing": list(self.missing),
        }


def script_name(config: CallCenterConfig, queue: str | None, campaign: str | None) -> str | None:
    """The script of a call of ``queue`` (a lead of ``campaign``), None when none is set."""
    if campaign is not None:
        chosen = config.campaigns.get(campaign)
        if chosen is not None and chosen.script is not None:
            return chosen.script
    qcfg = config.queues.get(queue or "")
    return qcfg.script if qcfg is not None else None


def fill(
    config: CallCenterConfig, name: str | None, variables: Mapping[str, str]
) -> FilledScript | None:
    """Script ``name`` with ``variables`` in; None when no such script is configured (a
    reload took it away)."""
    if name is None:
        return None
    script = config.scripts.get(name)
    if script is None:
        return None
    missing = tuple(dict.fromkeys(n for n in names_in(script.text) if not variables.get(n)))
    return FilledScript(name, script.title or name, render_marked(script.text, variables), missing)


def call_variables(active: ActiveCall, agent_id: str) -> dict[str, str]:
    """The variables a call gives its screen pop and its script: its IVR variables (a
    lead's columns), then ``caller_num``, ``caller_name``, ``number`` (the person talked
    to: the caller, or the number dialled), ``queue``, ``agent`` and ``call_id``."""
    info = active.call.info
    return {
        **active.variables,
        "caller_num": info.caller_num,
        "caller_name": info.caller_name,
        "number": active.called or info.caller_num,
        "queue": active.queue or "",
        "agent": agent_id,
        "call_id": info.call_id,
    }


def script_of_call(
    config: CallCenterConfig, active: ActiveCall, agent_id: str, agent_name: str
) -> FilledScript | None:
    """The script agent ``agent_id`` reads on ``active`` (None: its queue and campaign
    have none)."""
    name = script_name(config, active.queue, active.campaign)
    if name is None:
        return None
    variables = {**call_variables(active, agent_id), "agent_name": agent_name}
    return fill(config, name, variables)


def script_of_preview(
    config: CallCenterConfig, preview: Mapping[str, Any], agent_name: str
) -> FilledScript | None:
    """The script of a lead a preview campaign shows the agent (``Switchboard.previews``),
    its columns in, before the dial."""
    campaign = str(preview["campaign"])
    settings = config.campaigns.get(campaign)
    queue = settings.queue if settings is not None else None
    name = script_name(config, queue, campaign)
    if name is None:
        return None
    variables = {
        **{str(k): str(v) for k, v in dict(preview.get("data") or {}).items()},
        "campaign": campaign,
        "lead": str(preview.get("lead", "")),
        "number": str(preview.get("number", "")),
        "queue": queue or "",
        "agent": str(preview.get("agent", "")),
        "agent_name": agent_name,
    }
    return fill(config, name, variables)
