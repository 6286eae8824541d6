"""An agent's keypad during a call: the keys of their phone's leg, read as transfer requests.

A :class:`Keypad` is fed one key at a time, with the time it came, and returns a
:class:`Keyed` request once a whole one was keyed: a code (``*1``), a number, ``#``. It
knows nothing of calls or PBXs (the switchboard feeds it the ``DigitPressed`` events of an
agent's leg). States, one enum and one transition table::

    IDLE ──*──> CODE ──the code is whole──> NUMBER ──#──> IDLE, returns the request
      ^          │                            │
      └──────────┴── any other key, a pause longer than ``timeout``, a number too long

A ``*`` that breaks a sequence starts a new one, so ``*1*2 2001 #`` is a consultation.
An *instant* code takes no number: it is a request as soon as it is whole (``*3``, pause
or resume the recording).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from callcenter.errors import IllegalTransition

MAX_NUMBER: Final = 20
"""Longest number keyed after a code (E.164 is 15 digits, plus prefixes)."""


class KeyState(enum.Enum):
    IDLE = "idle"
    """Nothing keyed (or what was keyed was dropped)."""
    CODE = "code"
    """``*`` and part of a code."""
    NUMBER = "number"
    """A whole code; digits of the number follow until ``#``."""


_K = KeyState

KEY_TRANSITIONS: Mapping[KeyState, frozenset[KeyState]] = MappingProxyType(
    {
        _K.IDLE: frozenset({_K.IDLE, _K.CODE}),
        _K.CODE: frozenset({_K.IDLE, _K.CODE, _K.NUMBER}),
        _K.NUMBER: frozenset({_K.IDLE, _K.CODE, _K.NUMBER}),
    }
)
"""Legal moves of a keypad (staying put is a move: one more key of the same part)."""


@dataclass(frozen=True, slots=True)
class Keyed:
    """A request keyed in full: ``action`` is the name its code has in :class:`Keypad`'s
    ``codes``; ``number`` is what came between the code and ``#`` (``""``: none)."""

    action: str
    number: str
    keys: str
    """Everything keyed, ``*`` to ``#`` (for logs and events)."""


class Keypad:
    """One agent's keys: ``codes`` maps each code (``"*1"``) to the action it asks for;
    the codes in ``instant`` take no number.

    No code may start with another (the config refuses that), so a code is whole as soon as
    its last key comes.
    """

    __slots__ = ("_buffer", "_code", "_codes", "_instant", "_last", "state", "timeout")

    def __init__(
        self, codes: Mapping[str, str], timeout: float, *, instant: Collection[str] = ()
    ) -> None:
        for code in codes:
            if not code.startswith("*") or len(code) < 2:
                raise ValueError(f"a code is * and digits, not {code!r}")
        self._codes = dict(codes)
        self._instant = frozenset(instant)
        self.timeout = timeout
        self.state = KeyState.IDLE
        self._buffer = ""
        self._code = ""
        self._last: float | None = None

    @property
    def keyed(self) -> str:
        """What was keyed so far of the request under way (``""`` when idle)."""
        return self._buffer

    def feed(self, key: str, now: float) -> Keyed | None:
        """Take one key pressed at ``now`` (seconds, any monotonic clock); the request when
        this key completed one."""
        if self._last is not None and now - self._last > self.timeout:
            self._reset()
        self._last = now
        if key == "*":
            self._move(KeyState.CODE)
            self._buffer = "*"
            return None
        if self.state is KeyState.CODE:
            candidate = self._buffer + key
            if candidate in self._instant and candidate in self._codes:
                self._reset()
                return Keyed(self._codes[candidate], "", candidate)
            if candidate in self._codes:
                self._move(KeyState.NUMBER)
                self._buffer = self._code = candidate
            elif any(code.startswith(candidate) for code in self._codes):
                self._move(KeyState.CODE)
                self._buffer = candidate
            else:
                self._reset()
            return None
        if self.state is KeyState.NUMBER:
            if key == "#":
                keyed = Keyed(
                    self._codes[self._code], self._buffer[len(self._code) :], self._buffer + "#"
                )
                self._reset()
                return keyed
            if key.isdigit() and len(self._buffer) - len(self._code) < MAX_NUMBER:
                self._move(KeyState.NUMBER)
                self._buffer += key
            else:
                self._reset()
            return None
        self._move(KeyState.IDLE)
        return None

    def _reset(self) -> None:
        self._move(KeyState.IDLE)
        self._buffer = self._code = ""

    def _move(self, new: KeyState) -> None:
        if new not in KEY_TRANSITIONS[self.state]:
            raise IllegalTransition(f"keypad: cannot go {self.state.value}->{new.value}")
        self.state = new
