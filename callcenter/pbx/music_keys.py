"""Keys a caller presses over their hold music, as the PBX reports them in events.

While hold music plays, no PBX command runs on the caller's channel, yet the keys still
come as events: AMI ``DTMFEnd`` on Asterisk (the AGI's own loop reads the channel), the
``DTMF`` events of the music's ``playback`` on FreeSWITCH. A driver opens a
:class:`MusicKeys` as it starts the music (before the command: a key may come as the music
starts), feeds it those events, and closes it when the music stops;
``Call.read_digits(None, ...)`` reads from it, sending nothing, so the read may be
cancelled at any point (``Call.keys_without_command``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from callcenter.tasks import cancel_and_wait

MAX_KEPT: Final = 64
"""Keys kept that were pressed and not read yet."""


class MusicKeys:
    """The keys pressed since one hold music started, and what wakes a read of them."""

    def __init__(self) -> None:
        self._keys: collections.deque[str] = collections.deque(maxlen=MAX_KEPT)
        self._woken = asyncio.Event()

    def press(self, digit: str) -> None:
        """A key event of the caller's channel."""
        self._keys.append(digit)
        self._woken.set()

    def wake(self) -> None:
        """End a read waiting for a key (the music stopped, the caller hung up, the link
        that carries the events went): it returns what it has."""
        self._woken.set()

    def clear(self) -> None:
        """Forget the keys pressed so far (read another way)."""
        self._keys.clear()

    async def read(
        self,
        max_digits: int,
        timeout: float,
        terminator: str,
        *,
        check: Callable[[], None],
        gone: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Up to ``max_digits`` keys, each awaited up to ``timeout``; stops at
        ``terminator`` (not included) or when a wait ends with no key. ``check`` runs after
        each wait (it raises when the call is gone); ``gone`` also ends a wait when it
        returns (the hang-up, for a driver that does not :meth:`wake` on it)."""
        digits = ""
        while len(digits) < max_digits:
            if not self._keys:
                self._woken.clear()
                await self._wait(timeout, gone)
                check()
                if not self._keys:
                    break
            digit = self._keys.popleft()
            if digit == terminator:
                break
            digits += digit
        return digits

    async def _wait(self, timeout: float, gone: Callable[[], Awaitable[None]] | None) -> None:
        if gone is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout)
            return
        key = asyncio.ensure_future(self._woken.wait())
        ended = asyncio.ensure_future(gone())
        try:
            await asyncio.wait((key, ended), timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            await cancel_and_wait(key, ended)
