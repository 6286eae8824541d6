"""Quality evaluations: a supervisor's scorecard of one call of an agent.

A supervisor listens to a call (its recording on the desktop, or live) and scores it
against the queue's form (``evaluation_forms``, ``queues.<q>.evaluation_form``): points per
criterion, a comment. :func:`score` checks the points against the form and totals them;
the ``evaluations`` table keeps one row per call and supervisor (scoring again replaces
it), with whether it passed by the form of the time. ``report --evaluations`` lists them
with each agent's mean; the ``CallEvaluated`` event tells webhooks and MQTT. The agent
answers each scorecard of theirs (``reply``: agreed, or disputed with a note, from their
desktop or ``POST /calls/<id>/evaluation/reply``); ``EvaluationReplied`` tells the
supervisors. :func:`calibration` sets side by side the calls several supervisors scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from callcenter.config.models import CallCenterConfig, EvaluationForm, EvaluationTarget


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One call's scorecard by one supervisor, as the ``evaluations`` table keeps it."""

    call_id: str
    supervisor: str
    agent: str
    queue: str
    form: str
    scores: tuple[tuple[str, int], ...]
    """Criterion -> points given, in the form's order."""
    points: int
    max_points: int
    passed: bool
    comment: str
    at: datetime
    reply: str = ""
    """The agent's answer: ``agreed``, ``disputed``, or "" (none yet). Scoring the call
    again clears it."""
    reply_note: str = ""
    """What the agent said with it (why they dispute it)."""
    replied_at: datetime | None = None

    @property
    def percent(self) -> float:
        return round(100.0 * self.points / self.max_points, 1) if self.max_points else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "supervisor": self.supervisor,
            "agent": self.agent,
            "queue": self.queue,
            "form": self.form,
            "scores": dict(self.scores),
            "points": self.points,
            "max_points": self.max_points,
            "percent": self.percent,
            "passed": self.passed,
            "comment": self.comment,
            "at": self.at.isoformat(timespec="seconds"),
            "reply": self.reply,
            "reply_note": self.reply_note,
            "replied_at": (
                None if self.replied_at is None else self.replied_at.isoformat(timespec="seconds")
            ),
        }


def form_for(config: CallCenterConfig, queue: str) -> tuple[str, EvaluationForm] | None:
    """The scorecard a call of ``queue`` is scored with: the queue's ``evaluation_form``,
    else the first form; None when the config has none."""
    forms = config.evaluation_forms
    qcfg = config.queues.get(queue)
    name = qcfg.evaluation_form if qcfg is not None else None
    if name is not None and name in forms:
        return name, forms[name]
    first = next(iter(forms.items()), None)
    return first


def target_of(config: CallCenterConfig, agent_id: str) -> EvaluationTarget | None:
    """The quality quota of ``agent_id``: their team's ``evaluation_target``, else the
    config's; None when neither (or no evaluation_forms) sets one."""
    if not config.evaluation_forms:
        return None
    agent = config.agents.get(agent_id)
    team = config.teams.get(agent.team) if agent is not None and agent.team else None
    if team is not None and team.evaluation_target is not None:
        return team.evaluation_target
    return config.evaluation_target


def score(form: EvaluationForm, given: Mapping[str, object]) -> tuple[tuple[str, int], ...]:
    """The points ``given`` per criterion, checked against ``form``: every criterion
    scored, a whole number from 0 to its points, no other. Raises ValueError saying what
    is wrong."""
    unknown = sorted(set(given) - set(form.criteria))
    if unknown:
        raise ValueError(f"no criterion {', '.join(map(repr, unknown))} on this form")
    out: list[tuple[str, int]] = []
    for criterion, most in form.criteria.items():
        value = given.get(criterion)
        if value is None or value == "":
            raise ValueError(f"{criterion!r} is not scored")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{criterion!r}: a whole number from 0 to {most}")
        try:
            points = int(value)
        except ValueError:
            raise ValueError(f"{criterion!r}: a whole number from 0 to {most}") from None
        if not 0 <= points <= most:
            raise ValueError(f"{criterion!r}: a whole number from 0 to {most}, not {points}")
        out.append((criterion, points))
    return tuple(out)


REPLIES: Final = ("agreed", "disputed")
"""What an agent may answer to a scorecard of their call."""


def agent_means(evaluations: Sequence[Evaluation]) -> list[dict[str, Any]]:
    """Per agent (in order of first appearance): calls scored, mean percent, passed."""
    seen: dict[str, list[Evaluation]] = {}
    for e in evaluations:
        seen.setdefault(e.agent, []).append(e)
    return [
        {
            "agent": agent,
            "evaluations": len(rows),
            "mean_percent": round(sum(e.percent for e in rows) / len(rows), 1),
            "passed": sum(e.passed for e in rows),
        }
        for agent, rows in seen.items()
    ]


def calibration(evaluations: Sequence[Evaluation]) -> list[dict[str, Any]]:
    """The calls scored by two supervisors or more (calibration: do they score alike?),
    in order of the first scorecard: the call, its agent, each supervisor's percent and
    the spread between the highest and the lowest."""
    by_call: dict[str, list[Evaluation]] = {}
    for e in evaluations:
        by_call.setdefault(e.call_id, []).append(e)
    out = []
    for call_id, cards in by_call.items():
        if len({c.supervisor for c in cards}) < 2:
            continue
        percents = {c.supervisor: c.percent for c in cards}
        out.append(
            {
                "call_id": call_id,
                "agent": cards[0].agent,
                "queue": cards[0].queue,
                "percents": percents,
                "spread": round(max(percents.values()) - min(percents.values()), 1),
            }
        )
    return out
