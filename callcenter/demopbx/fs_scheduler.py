"""The demo FreeSWITCH's task scheduler (``switch_scheduler.c``, the part callcenter uses).

FreeSWITCH runs timed tasks for the ``sched_*`` dialplan applications and api commands: each
task has a numeric id (counting from 1) and a group name. ``sched_transfer`` files its task
under the channel's UUID, so that the task is dropped when the channel goes, and sets the
channel variable ``last_sched_id``; ``sched_del <id>`` drops one task, ``sched_del <group>``
every task of a group, and answers ``+OK Deleted: <count>``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Task:
    group: str
    handle: asyncio.TimerHandle


class Scheduler:
    """Timed tasks by id and group, run on the event loop."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._tasks: dict[int, _Task] = {}

    def add(self, delay: float, group: str, action: Callable[[], None]) -> int:
        """Run ``action`` in ``delay`` seconds unless deleted first; returns the task id."""
        task_id = next(self._ids)

        def run() -> None:
            if self._tasks.pop(task_id, None) is None:
                return
            try:
                action()
            except Exception:
                log.exception("demofs_scheduled_task_failed", task_id=task_id, group=group)

        handle = asyncio.get_running_loop().call_later(max(0.0, delay), run)
        self._tasks[task_id] = _Task(group, handle)
        return task_id

    def delete(self, key: str) -> int:
        """``sched_del``: drop the task with id ``key`` (all digits) or every task of group
        ``key``; returns how many were dropped."""
        if key.isdigit():
            ids = [int(key)] if int(key) in self._tasks else []
        else:
            ids = [i for i, task in self._tasks.items() if task.group == key]
        for task_id in ids:
            self._tasks.pop(task_id).handle.cancel()
        return len(ids)

    def pending(self, group: str) -> list[int]:
        """Ids of the tasks of ``group`` still to run."""
        return [i for i, task in self._tasks.items() if task.group == group]

    def close(self) -> None:
        """Drop every task (the PBX stops)."""
        for task in self._tasks.values():
            task.handle.cancel()
        self._tasks.clear()


__all__ = ["Scheduler"]
