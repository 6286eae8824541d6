"""reply_within: the time limit on one PBX answer (AGI result, ESL reply, app completion)."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.pbx.link import reply_within


async def test_an_answer_in_time_is_returned_and_its_timer_is_gone() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, future.set_result, "200 result=1")
    assert await reply_within(future, 0.2) == "200 result=1"
    await asyncio.sleep(0.3)  # the timer would fire here and fail the done future
    assert future.result() == "200 result=1"


async def test_no_answer_within_the_limit_raises_timeout_error() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await reply_within(future, 0.05)
    assert asyncio.get_running_loop().time() - started >= 0.04
    assert future.done(), "a late answer finds the future done and is dropped"


async def test_without_a_limit_it_waits_for_the_answer() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    loop.call_later(0.05, future.set_result, 7)
    assert await reply_within(future, None) == 7


async def test_cancelling_the_caller_cancels_the_wait_and_the_future() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    waiter = asyncio.create_task(reply_within(future, 5))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert future.cancelled()
