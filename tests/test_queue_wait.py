"""What a caller calling now would wait, for a web page's "call us now" box: ``GET
/queues/<q>/wait`` and ``callcenter queue wait``; a callback form's backend (scope
``callbacks``) may read it and the callback slots without reading everything."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from callcenter.live.api import scope_of, wait_said
from callcenter.testing import CALLBACKS_ON, merge, run_cli, running_center, until

WEB = "web-form-asks-for-callbacks-123"
DESK = "desk-token-moves-agents-only-12"
CONFIG = merge(
    CALLBACKS_ON,
    {
        "queues": {
            "sales": {
                "agents": ["1001"],
                "wrapup": 0,
                "callback_slots": {"minutes": 15, "at_most": 10},
            },
            "night": {"agents": ["1002"], "opening": {"hours": {"mon-fri": ["08:00-18:00"]}}},
        },
        "ivr": {"timezone": "UTC"},
        "api": {
            "tokens": {
                "web": {"sha256": hashlib.sha256(WEB.encode()).hexdigest(), "allow": ["callbacks"]},
                "desk": {"sha256": hashlib.sha256(DESK.encode()).hexdigest(), "allow": ["agents"]},
            }
        },
    },
)


async def test_a_web_page_shows_the_wait_then_a_caller_waiting_and_a_closed_queue(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=CONFIG) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        board = center.daemon.switchboard
        free = await center.api("GET", "/queues/sales/wait", token=WEB)
        first = await center.caller_presses("5550001", "1")
        await first.wait_bridged(timeout=5)
        second = await center.caller_presses("5550002", "1")
        await until(lambda: center.daemon.router.waiting("sales") == 1)
        busy = await center.api("GET", "/queues/sales/wait", token=WEB)
        board.clock = lambda: datetime(2026, 12, 7, 3, 0, tzinfo=UTC)  # a Monday, at 03:00
        night = await center.api("GET", "/queues/night/wait", token=WEB)
        slots = await center.api("GET", "/callbacks/slots?queue=sales", token=WEB)
        refused = await center.api("GET", "/queues/sales/wait", token=DESK)
        nobody = await center.api("GET", "/queues/nope/wait", token=WEB)
        await first.hangup()
        await second.hangup()
    assert free == (
        200,
        {
            "queue": "sales",
            "open": True,
            "closed_because": None,
            "opens_at": None,
            "waiting": 0,
            "agents_free": 1,
            "agents_staffed": 1,
            "expected_wait_seconds": 0,
            "said": "no wait",
            "callbacks": True,
        },
    )
    status, body = busy
    assert (status, body["waiting"], body["agents_free"]) == (200, 1, 0)
    assert body["said"] == wait_said(body["expected_wait_seconds"], staffed=1, closed=False)
    assert body["said"] != "no wait"
    assert night[1]["open"] is False and night[1]["said"] == "closed"
    assert night[1]["opens_at"] == "2026-12-07T08:00:00+00:00"
    assert slots[0] == 200, "the callback form's backend reads the slots too"
    assert refused[0] == 403 and "read or callbacks" in refused[1]["error"]
    assert nobody[0] == 404


async def test_ops_read_the_wait_from_the_command_line(tmp_path: Path) -> None:
    async with running_center(
        tmp_path, config={"queues": {"sales": {"agents": ["1001"]}}}
    ) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        said = await run_cli(center, "queue", "wait", "sales")
        wrong = await run_cli(center, "queue", "wait", "sales", "extra")
    assert said[:2] == (0, "sales: no wait (0 waiting, 1 of 1 agents free)\n")
    assert wrong[0] == 2 and "queue wait takes the queue only" in wrong[2]


def test_a_wait_is_said_as_a_web_page_says_it() -> None:
    assert [wait_said(s, staffed=2, closed=False) for s in (None, 0, 20, 80, 130)] == [
        "unknown",
        "no wait",
        "under a minute",
        "about a minute",
        "about 2 minutes",
    ]
    assert wait_said(30, staffed=0, closed=False) == "no agent at work"
    assert wait_said(30, staffed=2, closed=True) == "closed"
    assert scope_of("GET", "/queues/sales/wait") == scope_of("GET", "/callbacks/slots")
    assert scope_of("GET", "/queues/sales/callers") == "read"
