"""Stopping a helper task never swallows a cancellation of the task that stops it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from callcenter.tasks import cancel_and_wait


async def slow_to_stop() -> None:
    """A helper that takes a moment to wind down when cancelled (a PBX command in flight)."""
    try:
        await asyncio.sleep(60)
    finally:
        await asyncio.shield(asyncio.sleep(0.1))


async def test_a_stop_that_arrives_while_a_helper_winds_down_is_not_lost() -> None:
    went_on = asyncio.Event()

    async def call_task() -> None:
        helper = asyncio.ensure_future(slow_to_stop())
        await asyncio.sleep(0)
        await cancel_and_wait(helper)
        went_on.set()  # the daemon asked this task to stop: it must not get here
        await asyncio.sleep(60)

    task = asyncio.create_task(call_task())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert not went_on.is_set()


async def test_the_old_idiom_lost_it() -> None:
    """What cancel_and_wait replaces: the same stop is swallowed and the task goes on."""
    went_on = asyncio.Event()

    async def call_task() -> None:
        helper = asyncio.ensure_future(slow_to_stop())
        await asyncio.sleep(0)
        helper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await helper
        went_on.set()

    task = asyncio.create_task(call_task())
    await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.wait_for(task, 2)
    assert went_on.is_set()


async def test_clean_up_after_a_cancellation_runs_to_its_end() -> None:
    cleaned = asyncio.Event()

    async def call_task() -> None:
        helper = asyncio.ensure_future(asyncio.sleep(60))
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await cancel_and_wait(helper)
            cleaned.set()
            raise

    task = asyncio.create_task(call_task())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()


async def test_how_helpers_ended_is_taken_and_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("broken")

    failing = asyncio.ensure_future(fails())
    finished = asyncio.ensure_future(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait(failing, finished, asyncio.ensure_future(asyncio.sleep(60)))
    assert failing.done() and finished.done()
