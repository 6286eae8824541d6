"""The IVR's number lists as the centre runs them: ``ivr.number_lists`` from the config
file, with the numbers added while it runs laid over them: by ops (``callcenter numbers
add``, ``POST /numbers/<list>``) or by agents (``acd.agent_block_list``: "Block this
caller").

The flows' ``caller_list`` cases read :meth:`NumberLists.merged` for each new call. An
addition is an engine event (``NumberListChanged``) the records keep
(:mod:`callcenter.records.number_lists`), so a restarted daemon puts it back
(:meth:`NumberLists.restore`); the config file's own numbers are the file's to change.

The switchboard owns one :class:`NumberLists` (``Switchboard.lists``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError

from callcenter.config.models import CallCenterConfig, NumberPattern
from callcenter.errors import EngineError, UnknownNumberList
from callcenter.events import EventBus, NumberListChanged

log = structlog.get_logger(__name__)

_NUMBER_PATTERN: TypeAdapter[str] = TypeAdapter(NumberPattern)
"""What a number ops put on an IVR number list must be (as the config's entries)."""


class NumberLists:
    """The config's number lists and the numbers added to them while the centre runs."""

    def __init__(self, config: Callable[[], CallCenterConfig], bus: EventBus) -> None:
        self._config = config
        self._bus = bus
        self.additions: dict[str, dict[str, tuple[datetime, str]]] = {}
        """List -> number -> (when, via): the numbers added while the centre runs."""
        self._merged: tuple[object, Mapping[str, Sequence[str]]] | None = None

    def merged(self, config: CallCenterConfig) -> Mapping[str, Sequence[str]]:
        """``config``'s number lists with the numbers added while the centre runs (the same
        mapping until either changes: each call's flow gets it)."""
        lists = config.ivr.number_lists
        if not self.additions:
            return lists
        merged = self._merged
        if merged is None or merged[0] is not lists:
            added = self.additions
            view = {name: (*numbers, *added.get(name, ())) for name, numbers in lists.items()}
            merged = self._merged = (lists, view)
        return merged[1]

    def add(self, name: str, number: str, *, via: str = "cli") -> bool:
        """Put ``number`` (an exact number, or an Asterisk pattern such as ``_0900X.``) on
        the list ``name`` from now on (a nuisance caller on ``blocked``): the flows'
        ``caller_list`` cases see it for the next calls, and it stays across reloads and
        restarts until :meth:`remove`. False when it is on the list already. Raises
        UnknownNumberList, or EngineError for something no number."""
        numbers = self._list(name)
        try:
            _NUMBER_PATTERN.validate_python(number)
        except ValidationError as exc:
            raise EngineError(exc.errors()[0]["msg"]) from None
        added = self.additions.setdefault(name, {})
        if number in numbers or number in added:
            if not added:
                del self.additions[name]
            return False
        added[number] = (datetime.now(UTC), via)
        self._merged = None
        self._bus.publish(NumberListChanged(number_list=name, number=number, added=True, via=via))
        log.info("number_list_added", number_list=name, number=number, via=via)
        return True

    def remove(self, name: str, number: str, *, via: str = "cli") -> bool:
        """Take ``number`` added by :meth:`add` off the list ``name``. False when it is not
        on it. Raises UnknownNumberList, or EngineError for a number the config file lists
        (edit the file, then reload)."""
        numbers = self._list(name)
        added = self.additions.get(name, {})
        if number not in added:
            if number in numbers:
                raise EngineError(
                    f"{number} is on number list {name} in the config file "
                    f"(ivr.number_lists.{name}): take it out there and reload"
                )
            return False
        del added[number]
        if not added:
            del self.additions[name]
        self._merged = None
        self._bus.publish(NumberListChanged(number_list=name, number=number, added=False, via=via))
        log.info("number_list_removed", number_list=name, number=number, via=via)
        return True

    def added_by(self, name: str, number: str) -> str | None:
        """Who added ``number`` to the list ``name`` while the centre runs (its ``via``);
        None when nobody did."""
        entry = self.additions.get(name, {}).get(number)
        return entry[1] if entry is not None else None

    def views(self) -> list[dict[str, Any]]:
        """Every number list: the config's numbers and those added while it runs."""
        return [
            {
                "name": name,
                "config": list(numbers),
                "added": [
                    {"number": number, "since": since.isoformat(timespec="seconds"), "via": via}
                    for number, (since, via) in self.additions.get(name, {}).items()
                ],
            }
            for name, numbers in self._config().ivr.number_lists.items()
        ]

    def restore(self, kept: Sequence[tuple[str, str, datetime, str]]) -> int:
        """Put back the numbers a previous daemon added (to lists the config still has);
        returns how many."""
        lists = self._config().ivr.number_lists
        taken = 0
        for name, number, since, via in kept:
            if name in lists:
                self.additions.setdefault(name, {})[number] = (since, via)
                taken += 1
        self._merged = None
        return taken

    def _list(self, name: str) -> Sequence[str]:
        lists = self._config().ivr.number_lists
        if name not in lists:
            known = ", ".join(lists) or "none: add one under ivr.number_lists"
            raise UnknownNumberList(f"no number list {name!r} (lists: {known})")
        return lists[name]
