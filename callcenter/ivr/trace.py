"""What a call does inside its IVR flow, step by step, as plain values.

The runner reports every step to one listener (``on_event``). The switchboard turns them into
engine events (``IvrStep``, ``IvrVariableSet``, ``VoicemailLeft``, ``CallbackRequested``) and
keeps the path on the call; ``callcenter simulate`` prints them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeEntered:
    """The call reached ``flow:node``; ``digits`` are the keys that chose this node."""

    flow: str
    node: str
    kind: str
    digits: str = ""


@dataclass(frozen=True, slots=True)
class InputWanted:
    """The node is about to wait for keys (a menu, collect, confirmation or callback)."""

    flow: str
    node: str
    what: str


@dataclass(frozen=True, slots=True)
class DigitsTaken:
    """An input node consumed ``digits`` (``***`` for private ones) and judged them."""

    flow: str
    node: str
    digits: str
    verdict: str
    """``choice``, ``valid``, ``invalid``, ``timeout``, ``repeat``, ``confirmed``, ``rejected``."""


@dataclass(frozen=True, slots=True)
class VariableSet:
    """A call variable got a value (``***`` when private)."""

    flow: str
    node: str
    name: str
    value: str
    private: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """Why the call went where it went (schedule, branch, lookup, transfer, retries...)."""

    flow: str
    node: str
    text: str


@dataclass(frozen=True, slots=True)
class VoicemailRecorded:
    """A message was recorded into ``path``."""

    flow: str
    node: str
    box: str
    path: str
    seconds: float
    ended: str


@dataclass(frozen=True, slots=True)
class CallbackTaken:
    """The caller asked to be called back on ``number`` by ``queue``."""

    flow: str
    node: str
    number: str
    queue: str


IvrEvent = (
    NodeEntered | InputWanted | DigitsTaken | VariableSet | Decision | VoicemailRecorded
) | CallbackTaken
IvrListener = Callable[[IvrEvent], None]
