"""Callback requests that keep a caller's place: written as soon as they are made, followed
to their end, taken back by the next daemon, given up when too old."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from callcenter.callback import callback_origin, callback_token
from callcenter.errors import EngineError
from callcenter.events import (
    QueueCallbackAnswered,
    QueueCallbackAttempt,
    QueueCallbackFailed,
    QueueCallbackRequested,
)
from callcenter.records.callbacks import QueueCallback, QueueCallbackRecorder
from callcenter.records.store import SqliteCdrStore
from callcenter.records.writer import RecordWriter
from callcenter.testing import CALLBACKS_ON, merge, running_center

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
CALLBACKS = merge(CALLBACKS_ON, {"queues": {"sales": {"callback_max_age": 600}}})


def requested(call_id: str, t: float = 0.0, **kw: object) -> QueueCallbackRequested:
    return QueueCallbackRequested(
        call_id=call_id,
        queue="sales",
        number="5551234",
        position=1,
        at=T0 + timedelta(seconds=t),
        **kw,  # type: ignore[arg-type]
    )


def attempt(call_id: str, n: int) -> QueueCallbackAttempt:
    return QueueCallbackAttempt(
        origin_call_id=call_id, queue="sales", number="5551234", agent="1001", attempt=n
    )


def failed(call_id: str, n: int, reason: str = "no-answer", final: bool = False) -> object:
    return QueueCallbackFailed(
        origin_call_id=call_id,
        queue="sales",
        number="5551234",
        attempt=n,
        reason=reason,
        final=final,
    )


async def fold(tmp_path: Path, *events: object) -> list[QueueCallback]:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    writer = RecordWriter(store)
    await writer.start()
    recorder = QueueCallbackRecorder(store, writer)
    for event in events:
        recorder.on_event(event)  # type: ignore[arg-type]
    await writer.close()
    return store.fetch_queue_callbacks()


async def test_a_request_is_followed_from_waiting_to_answered(tmp_path: Path) -> None:
    rows = await fold(
        tmp_path,
        requested("a", priority=5, skills=("french", "vip")),
        attempt("a", 1),
        failed("a", 1),
        attempt("a", 2),
        QueueCallbackAnswered(
            call_id="b", queue="sales", number="5551234", original_call_id="a", at=T0
        ),
        failed("a", 2, final=True),  # a late failure report changes nothing once answered
    )
    (row,) = rows
    assert (row.call_id, row.queue, row.number, row.requested) == ("a", "sales", "5551234", T0)
    assert (row.priority, row.skills) == (5, ("french", "vip"))
    assert (row.status, row.attempts) == ("answered", 2)


async def test_a_request_given_up_says_why(tmp_path: Path) -> None:
    rows = await fold(
        tmp_path,
        requested("a"),
        requested("b", 1),
        requested("a"),  # written once
        failed("a", 3, final=True),
        failed("b", 0, "expired", final=True),
    )
    assert [(r.call_id, r.status, r.attempts) for r in rows] == [
        ("a", "failed", 3),
        ("b", "expired", 0),
    ]


async def test_a_request_waits_no_longer_than_its_queue_allows(tmp_path: Path) -> None:
    config = {
        **CALLBACKS,
        "queues": {"sales": {"agents": ["1001"], "callback_max_age": 0.5}},
        "agents": {"1001": {"logged_in": False}},
    }
    async with running_center(tmp_path, config=config) as center:
        daemon = center.daemon
        events: list[object] = []
        daemon.bus.subscribe(events.append)
        daemon.bus.publish(requested("x1"))  # what the previous daemon wrote
        daemon.switchboard.callbacks.restore(
            [QueueCallback(call_id="x1", queue="sales", number="5551234", requested=T0)],
            now=T0 + timedelta(seconds=0.1),
        )
        assert daemon.router.waiting("sales") == 1
        async with asyncio.timeout(5):
            while not any(isinstance(e, QueueCallbackFailed) for e in events):
                await asyncio.sleep(0.02)
        await daemon.recorder.writer.close()
        (row,) = daemon.store.fetch_queue_callbacks()
    (failed,) = [e for e in events if isinstance(e, QueueCallbackFailed)]
    assert (failed.reason, failed.final, failed.attempt) == ("expired", True, 0)
    assert row.status == "expired"


async def test_the_next_daemon_gives_up_requests_too_old_or_for_a_queue_gone(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=CALLBACKS) as center:
        daemon = center.daemon
        events: list[object] = []
        daemon.bus.subscribe(events.append)
        old = QueueCallback(call_id="old", queue="sales", number="5551234", requested=T0)
        gone = QueueCallback(call_id="gone", queue="closed", number="5551234", requested=T0)
        fresh = QueueCallback(
            call_id="fresh",
            queue="sales",
            number="5551235",
            requested=T0 + timedelta(seconds=590),
            priority=3,
            attempts=7,
        )
        for agent in list(daemon.router.agents):
            # Nobody to reserve: the fresh request stays waiting (rather than being dialled,
            # and failing on a number the demo PBX has no phone for, before the stop).
            with contextlib.suppress(EngineError):
                daemon.router.logout(agent, via="test")
        now = T0 + timedelta(seconds=601)
        assert daemon.switchboard.callbacks.restore([old, gone, fresh], now=now) == 1
        assert daemon.router.waiting("sales") == 1
    failed = {e.origin_call_id: e.reason for e in events if isinstance(e, QueueCallbackFailed)}
    assert failed == {"old": "expired", "gone": "no-queue"}


@given(
    origin=st.one_of(
        st.uuids().map(str),
        st.builds("{}.{}".format, st.integers(0, 2**40), st.integers(0, 10**6)),
        st.text(min_size=1, max_size=60),
    )
)
def test_a_callback_token_names_the_request_it_is_for_in_hex(origin: str) -> None:
    """What lets a daemon that did not place a callback (a restart) still recognise it."""
    token = callback_token(origin)
    assert re.fullmatch("[0-9a-f]+", token), "the shipped FreeSWITCH dialplan's condition"
    assert callback_origin(token) == origin
    assert callback_token(origin) != token, "random in front"


def test_a_token_with_no_request_in_it_names_none() -> None:
    assert callback_origin("0123456789abcdef") is None
    assert callback_origin("0123456789abcdefzz") is None
    assert callback_origin("0123456789abcdefff") is None, "not UTF-8"
    assert callback_origin("") is None
