"""What supervisors do to callers who wait: ``callcenter queue callers|priority|withdraw|give``
and their API routes. The calls themselves (moved, given, raised) run on every PBX in
``test_acd_scenarios``; here the command line, callback requests in the list, and the
router's order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from callcenter.acd.agent import Agent
from callcenter.acd.queue import EntryStatus
from callcenter.acd.router import Router
from callcenter.cli import format_callers
from callcenter.cli import main as cli_main
from callcenter.errors import EngineError
from callcenter.testing import CALLBACKS_ON, running_center


async def test_the_command_line_lists_a_queues_callers_and_raises_a_callback_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A caller on the line and a web callback request wait in sales; the supervisor lists
    them, raises the request above the caller, and learns that a request is cancelled,
    not withdrawn."""
    async with running_center(tmp_path, config=CALLBACKS_ON) as center:
        for agent in ("1001", "1002"):
            center.daemon.router.logout(agent, via="test")
        caller = await center.caller_presses("5550061", "1", caller_name="Ann")
        await caller.wait_moh(timeout=5)
        _, asked = await center.api("POST", "/callbacks", {"number": "5551234", "queue": "sales"})
        url = f"http://127.0.0.1:{center.daemon.api.port}"

        async def cli(*argv: str) -> tuple[int, str, str]:
            code = await asyncio.to_thread(cli_main, [*argv, "--api", url])
            out, err = capsys.readouterr()
            return code, out, err

        before = await cli("queue", "callers", "sales")
        raised = await cli("queue", "priority", asked["call_id"], "3")
        after = await cli("queue", "callers", "sales", "--json")
        refused = await cli("queue", "withdraw", asked["call_id"], "--to", "hangup")
        await caller.hangup()
        await center.idle()
    code, out, _ = before
    lines = out.splitlines()
    assert code == 0 and lines[0] == "sales: 2 waiting"
    assert lines[1].startswith(f"    1. {caller.uniqueid}  5550061 Ann  waited ")
    assert lines[1].endswith(", priority 0")
    assert lines[2].startswith(f"    2. {asked['call_id']}  5551234 (callback)  waited ")
    assert raised[0] == 0 and json.loads(raised[1])["position"] == 1
    listed = json.loads(after[1])["callers"]
    assert [(c["call_id"], c["priority"], c["withdrawable"]) for c in listed] == [
        (asked["call_id"], 3, False),
        (caller.uniqueid, 0, True),
    ]
    assert refused[0] != 0 and "a callback request is cancelled instead" in refused[2]


def test_the_command_line_says_what_a_queue_command_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, words in (
        (["queue", "priority", "c1"], "a whole number"),
        (["queue", "priority", "c1", "high"], "a whole number"),
        (["queue", "give", "c1"], "needs the call id and the agent"),
        (["queue", "withdraw", "c1"], "needs --to"),
        (["queue", "callers", "sales", "--to", "queue"], "go with queue withdraw"),
        (["queue", "callers", "sales", "extra"], "takes the queue only"),
    ):
        with pytest.raises(SystemExit) as stopped:
            cli_main(argv)
        assert stopped.value.code == 2
        assert words in capsys.readouterr().err


def test_an_empty_queue_says_nobody_waits_and_a_ringing_caller_names_the_agents() -> None:
    ringing = {
        "call_id": "c9", "position": 1, "kind": "caller", "number": "", "name": "",
        "priority": 2, "waited": 75.0, "state": "ringing", "agents": ["1001", "1002"],
    }  # fmt: skip
    assert format_callers("sales", []) == "sales: nobody waits"
    assert format_callers("sales", [ringing]).splitlines()[1] == (
        "    1. c9  -  waited 1 min, priority 2, ringing 1001, 1002"
    )


def _router() -> Router:
    agents = [Agent(id=i, device=f"PJSIP/{i}") for i in ("a", "b")]
    return Router(agents, {"q": ["a", "b"], "other": ["b"]})


def test_a_raised_caller_keeps_arrival_order_among_their_new_peers() -> None:
    router = _router()
    entries = [router.enqueue("q", f"c{n}", priority=p) for n, p in enumerate((0, 5, 0, 0))]
    router.reprioritise(entries[3], 5)
    router.reprioritise(entries[0], -1)
    order = [e.call_id for e in router.callers("q")]
    positions = [router.position(e) for e in entries]
    assert order == ["c1", "c3", "c2", "c0"]
    assert positions == [4, 1, 3, 2]


async def test_a_hunting_caller_raised_is_served_before_those_now_behind() -> None:
    router = _router()
    first, second = router.enqueue("q", "c1"), router.enqueue("q", "c2")
    tasks = [asyncio.ensure_future(router.next_agents(e)) for e in (first, second)]
    await asyncio.sleep(0)
    assert first.status is second.status is EntryStatus.HUNTING
    router.reprioritise(second, 1)
    router.login("a")
    await asyncio.sleep(0)
    assert [t.done() for t in tasks] == [False, True]
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_caller_is_given_only_to_a_free_member_and_never_twice() -> None:
    router = _router()
    router.login("a")
    router.login("b")
    router.pause("b", "lunch")
    entry = router.enqueue("other", "c1")
    with pytest.raises(EngineError, match="not a member of queue other"):
        router.hand_to(entry, "a")
    with pytest.raises(EngineError, match=r"agent b is not free \(paused\)"):
        router.hand_to(entry, "b")
    router.unpause("b")
    task = asyncio.ensure_future(router.next_agents(entry))
    await asyncio.sleep(0)
    assert task.done(), "b is free and the only member: offered at once"
    with pytest.raises(EngineError, match="an agent is being rung for call c1"):
        router.hand_to(entry, "b")
    assert router.find("c1") is entry and router.find("nope") is None


async def test_a_caller_waiting_for_their_busy_agent_is_given_to_another_at_once() -> None:
    """The caller waits for Alice (their last agent, talking); the supervisor gives them
    to Bob: the wait for Alice ends, Bob is the one offered."""
    router = _router()
    router.login("a")
    router.login("b")
    other = router.enqueue("q", "c0")
    assert router.prefer(other, "a")
    router.connected(other, router.agents["a"])  # Alice talks
    entry = router.enqueue("q", "c1")
    held = router.hold_for(entry, "a")
    assert held is not None and not held.done()
    router.hand_to(entry, "b")
    assert held.done() and held.result() is False
    assert [a.id for a in await asyncio.wait_for(router.next_agents(entry), 1)] == ["b"]


def test_a_head_start_puts_a_caller_before_those_who_joined_less_long_ago() -> None:
    """mod_callcenter's cc_base_score: a VIP with a 60 s head start who joins 50 s after
    Ann is ahead of her, not of Ben who joined 100 s earlier; their waits stay theirs."""
    clock = [0.0]
    agents = [Agent(id="a", device="PJSIP/a")]
    router = Router(agents, {"q": ["a"]}, clock=lambda: clock[0])
    ben = router.enqueue("q", "ben", joined=-100.0)
    ann = router.enqueue("q", "ann")
    clock[0] = 50.0
    vip = router.enqueue("q", "vip", head_start=60)
    assert [e.call_id for e in router.callers("q")] == ["ben", "vip", "ann"]
    assert [router.position(e) for e in (ben, vip, ann)] == [1, 2, 3]
    assert vip.joined == 50.0, "the wait is counted from the join"
