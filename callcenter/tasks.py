"""Stopping background work without losing our own cancellation.

The usual way to stop a helper task::

    helper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await helper

swallows a cancellation of the *calling* task too, when it arrives during that ``await``:
the caller then goes on as if it had never been cancelled. A call's task that does this while
the daemon stops keeps running its queue loop (ringing agents for a caller the stop should
have let go) until the caller hangs up, and the stop waits for it. :func:`cancel_and_wait`
tells the two apart with :meth:`asyncio.Task.cancelling`.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and wait until each has ended, whatever it ended with (its own
    cancellation, an exception or a result are all taken). A cancellation of the calling
    task that arrives meanwhile is raised, not swallowed; one already on its way when this
    is called (clean-up in an ``except``/``finally``) lets the clean-up go on."""
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            if current is not None and current.cancelling() > before:
                raise
        except Exception:
            pass


__all__ = ["cancel_and_wait"]
