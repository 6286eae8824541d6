"""One call walking an IVR flow: plays prompts, reads digits, follows the graph.

The runner never leaves a caller in silence: every menu has a retry limit and a default route,
and a step budget ends a flow that would loop forever without the caller pressing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from callcenter.config.models import (
    FlowConfig,
    HangupNode,
    MenuNode,
    PlayNode,
    QueueNode,
)
from callcenter.pbx.interface import Call

log = structlog.get_logger(__name__)

MAX_STEPS = 200
"""Nodes a call may visit in one flow before it is ended (guards against configured loops)."""


@dataclass(frozen=True, slots=True)
class ToQueue:
    """The flow handed the caller to a queue."""

    queue: str
    priority: int


@dataclass(frozen=True, slots=True)
class Hangup:
    """The flow ended the call."""

    reason: str


FlowExit = ToQueue | Hangup
StepListener = Callable[[str, str], None]
"""Called with (node id, digits pressed to get there) for every node visited."""


async def run_flow(call: Call, flow: FlowConfig, *, on_step: StepListener) -> FlowExit:
    """Walk ``flow`` from its start node until it reaches a queue or a hang-up.

    Raises ``CallHungUp`` when the caller hangs up on the way.
    """
    node_id = flow.start
    digits = ""
    for _ in range(MAX_STEPS):
        on_step(node_id, digits)
        node = flow.nodes[node_id]
        digits = ""
        if isinstance(node, PlayNode):
            await call.play(node.prompts)
            node_id = node.next
        elif isinstance(node, MenuNode):
            node_id, digits = await _run_menu(call, node_id, node)
        elif isinstance(node, QueueNode):
            return ToQueue(node.queue, node.priority)
        elif isinstance(node, HangupNode):
            if node.prompt:
                await call.play([node.prompt])
            return Hangup("flow")
    log.warning("ivr_step_budget_exhausted", node=node_id, budget=MAX_STEPS)
    return Hangup("loop")


async def _run_menu(call: Call, node_id: str, node: MenuNode) -> tuple[str, str]:
    """Play the menu until a valid choice or the retries run out; returns (next node, digit)."""
    attempt_prompt: str | None = node.prompt
    for attempt in range(1, node.retries + 1):
        digit = await call.read_digits(
            attempt_prompt, max_digits=1, timeout=node.timeout, terminator="#"
        )
        if digit in node.choices:
            return node.choices[digit], digit
        if digit == "":
            log.info("ivr_menu_timeout", node=node_id, attempt=attempt)
            retry_prompt = node.timeout_prompt
        else:
            log.info("ivr_menu_invalid", node=node_id, attempt=attempt, digit=digit)
            retry_prompt = node.invalid_prompt
        if attempt < node.retries:
            pressed = await call.play([retry_prompt], interrupt_digits="0123456789*#")
            if pressed in node.choices:
                return node.choices[pressed], pressed
            attempt_prompt = node.prompt
    log.info("ivr_menu_default", node=node_id, default=node.default)
    return node.default, ""
