"""Where callers go in the IVR, from the CDRs: each node's callers, the keys they pressed
there and how many calls ended there (the caller hung up, or the flow ended the call):
``callcenter report --ivr``, what a manager reads to see which menu options are used and
where callers give up.

A pure fold over CDR rows: each call's ``ivr_path`` (``flow:node`` names with the digits
pressed between them, ``main:welcome>2>main:support``) counts once per node it passed
(a node passed twice, a menu repeated, counts once for the call).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PRIVATE = "***"
"""What the CDR holds for keys a node keeps private (a PIN): counted as one choice."""


@dataclass(slots=True)
class NodeFigures:
    """One IVR node's callers over the report's calls."""

    node: str
    """``flow:node``."""
    callers: int = 0
    """Calls that reached the node."""
    keys: dict[str, int] = field(default_factory=dict)
    """Keys pressed there (that led on) -> calls."""
    hung_up: int = 0
    """Calls whose caller hung up while there (the path ended there, no queue reached)."""
    ended: int = 0
    """Calls that ended there otherwise (a hangup node, a transfer, a message left): the
    path ended there without a queue."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "callers": self.callers,
            "keys": dict(sorted(self.keys.items(), key=lambda kv: -kv[1])),
            "hung_up": self.hung_up,
            "ended": self.ended,
        }


def ivr_summary(rows: Iterable[Mapping[str, Any]]) -> tuple[int, list[NodeFigures]]:
    """(calls that entered the IVR, each node's figures in order of first appearance)."""
    nodes: dict[str, NodeFigures] = {}
    calls = 0
    for row in rows:
        path = [p for p in str(row.get("ivr_path") or "").split(">") if p]
        if not path:
            continue
        calls += 1
        seen: set[str] = set()
        last: str | None = None
        for i, part in enumerate(path):
            if ":" not in part:
                continue  # keys: counted with the node before them
            figures = nodes.get(part)
            if figures is None:
                figures = nodes[part] = NodeFigures(part)
            if part not in seen:
                seen.add(part)
                figures.callers += 1
            if i + 1 < len(path) and ":" not in path[i + 1]:
                pressed = path[i + 1]
                figures.keys[pressed] = figures.keys.get(pressed, 0) + 1
            last = part
        if last is None or row.get("queue"):
            continue
        if row.get("hung_up_by") == "caller" and not row.get("voicemail"):
            nodes[last].hung_up += 1
        else:
            nodes[last].ended += 1
    return calls, list(nodes.values())


def format_ivr_table(calls: int, figures: Sequence[NodeFigures]) -> str:
    """The IVR summary as a terminal table: node, callers (and % of the IVR's calls),
    callers who hung up there, calls the flow ended there, the keys pressed most."""
    if not calls:
        return "no call went through the IVR in this stretch of time"
    head = f"{'node':32} {'callers':>7} {'%':>5} {'hung up':>7} {'ended':>5}  keys pressed"
    lines = [head, "-" * len(head)]
    for f in figures:
        share = 100.0 * f.callers / calls
        keys = ", ".join(f"{k}: {n}" for k, n in sorted(f.keys.items(), key=lambda kv: -kv[1])[:6])
        lines.append(
            f"{f.node[:32]:32} {f.callers:>7} {share:>5.0f} {f.hung_up:>7} {f.ended:>5}  {keys}"
        )
    lines.append(f"{calls} call(s) went through the IVR")
    return "\n".join(lines)
