"""What both drivers' conference rooms share: the room and side-room names, the caller's
joining and leaving, and the change callback (see
:class:`callcenter.pbx.interface.Conference`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any, Final

import structlog

from callcenter.errors import CommandFailed

ASIDE_SUFFIX: Final = "-aside"
"""A conference's side room is the room's name with this suffix."""


class RoomLife:
    """The life of a conference room our caller sits in. Drivers subclass it, call
    :meth:`_caller_joined` when the caller is in, :meth:`_changed` after each membership
    change and :meth:`_on_caller_left` when the caller is out, and keep the PBX-specific
    commands and membership to themselves. ``registry`` is the driver's room name ->
    conference table: the room and its side room are taken out of it when the caller
    leaves."""

    def __init__(
        self,
        room: str,
        registry: MutableMapping[str, Any],
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._room = room
        self._side = f"{room}{ASIDE_SUFFIX}"
        self._registry = registry
        self._caller_in = asyncio.Event()
        self._ended = asyncio.Event()
        self._on_change: Callable[[], None] | None = None
        self._log = log

    @property
    def room(self) -> str:
        return self._room

    @property
    def side_room(self) -> str:
        return self._side

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def on_change(self, callback: Callable[[], None]) -> None:
        self._on_change = callback

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                self._log.exception("conference_listener_failed")

    async def _wait_caller_joined(self, limit: float) -> None:
        waiters = [
            asyncio.ensure_future(self._caller_in.wait()),
            asyncio.ensure_future(self._ended.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not self._caller_in.is_set():
            raise CommandFailed(f"the caller did not join conference {self._room}")

    def _on_caller_left(self, why: str) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        for name in (self._room, self._side):
            if self._registry.get(name) is self:
                del self._registry[name]
        self._log.info("conference_caller_left", why=why)
        self._changed()
