"""What every driver's spy session shares: its mode and its started/ended life."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from callcenter.errors import CommandFailed
from callcenter.pbx.interface import SpyMode


class SpyLife:
    """Mode plus the started/ended events of a supervisor's spying leg.

    Drivers subclass it, call :meth:`_mark_started` when the spy runs and :meth:`_on_ended`
    when the leg is gone, and keep the PBX-specific commands to themselves.
    """

    def __init__(
        self, target: str, mode: SpyMode, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        self.target = target
        self._mode: SpyMode = mode
        self._name = ""
        self._started = asyncio.Event()
        self._ended = asyncio.Event()
        self._log = log
        self._mode_listeners: list[Callable[[SpyMode], None]] = []

    @property
    def channel(self) -> str:
        return self._name

    @property
    def mode(self) -> SpyMode:
        return self._mode

    @property
    def started(self) -> bool:
        """True once the supervisor answered and the spy runs."""
        return self._started.is_set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def wait_started(self) -> None:
        """Return once the spy runs; raises ``CommandFailed`` if the session ended first."""
        if self.started:
            return
        started = asyncio.ensure_future(self._started.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({started, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
            ended.cancel()
        if not self.started:
            raise CommandFailed(f"spy on {self.target} ended before it started")

    def on_mode_changed(self, callback: Callable[[SpyMode], None]) -> None:
        self._mode_listeners.append(callback)

    def _keyed(self, mode: SpyMode) -> None:
        """The supervisor's keypad switched the spy to ``mode`` (drivers call it from the
        PBX's DTMF events, ours included: a mode it already has changes nothing)."""
        if self.ended or mode == self._mode:
            return
        self._mode = mode
        self._log.info("spy_mode_keyed", mode=mode)
        for callback in self._mode_listeners:
            callback(mode)

    def _mark_started(self, name: str = "") -> None:
        self._name = name or self._name
        if not self.started and not self.ended:
            self._started.set()
            self._log.info("spy_started", channel=self.channel, mode=self._mode)

    def _on_ended(self, why: str) -> None:
        if not self._ended.is_set():
            self._ended.set()
            self._log.info("spy_ended", why=why)
