"""Agents moved between queues while the centre runs (app_queue's QueueAdd / QueueRemove):
`callcenter agent join 1002 --queue sales` and `leave`, by the API, kept across reloads and
restarts, written to the queue_log as ADDMEMBER / REMOVEMEMBER, shown by `status`; and
agents paused in one queue only (QueuePause with a queue)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from callcenter.acd.rules import MemberChange, QueueRules, with_changes
from callcenter.cli import format_status
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.events import EngineEvent, QueueMemberChanged
from callcenter.testing import BASE_CONFIG, Center, Transport, merge, running_center

STEP = 5.0


def test_changes_lay_members_and_penalties_over_the_config() -> None:
    rules = {
        "sales": QueueRules(members=("1001",), penalties=MappingProxyType({"1001": 2})),
        "support": QueueRules(members=("1001", "1002")),
    }
    changes = [
        MemberChange("sales", "1002", True, 1),
        MemberChange("sales", "1001", True),
        MemberChange("support", "1001", False),
        MemberChange("gone", "1001", True),
        MemberChange("sales", "9999", True),
    ]
    out = with_changes(rules, changes, {"1001", "1002"})
    assert out["sales"].members == ("1001", "1002")
    assert dict(out["sales"].penalties) == {"1001": 2, "1002": 1}, "no penalty: the config's"
    assert out["support"].members == ("1002",)
    assert set(out) == {"sales", "support"}, "a queue the config lost is left out"
    assert rules["sales"].members == ("1001",), "pure"


async def caller_to_sales(center: Center, number: str) -> Any:
    caller = await center.pbx.call("800", caller_num=number)
    await caller.wait_for_prompt("welcome-menu", timeout=STEP)
    await caller.press("1")
    return caller


async def queue_log(center: Center, verb: str, count: int) -> list[tuple[str, str, str]]:
    async with asyncio.timeout(STEP):
        while True:
            lines = [e for _, e in await asyncio.to_thread(center.daemon.store.fetch_queue_log)]
            found = [(e.queuename, e.agent, e.event) for e in lines if "MEMBER" in e.event]
            if sum(1 for *_, event in found if event == verb) >= count:
                return found
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_bob_joins_sales_for_the_afternoon_takes_its_callers_and_stays_after_a_restart(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        center.daemon.router.logout("1001", via="test")
        status, joined = await center.api("POST", "/agents/1002/join", {"queue": "sales"})
        again = await center.api("POST", "/agents/1002/join", {"queue": "sales"})
        caller = await caller_to_sales(center, "5553001")
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1002", "Bob takes sales calls"
        await caller.hangup()
        await center.idle()
        _, shown = await center.api("GET", "/status")
        daemon = await center.restart()
        kept = daemon.router.rules("sales").members
        left = await center.api("POST", "/agents/1002/leave", {"queue": "sales"})
        after_leave = center.daemon.router.rules("sales").members
        lines = await queue_log(center, "REMOVEMEMBER", 1)
        daemon = await center.restart()
        assert daemon.switchboard.roster.member_views() == [], "back to the config: nothing kept"

    assert status == 200
    assert joined == {
        "agent": "1002",
        "queue": "sales",
        "member": True,
        "changed": True,
        "queues": ["sales", "support"],
    }
    assert again[1]["changed"] is False
    assert kept == ("1001", "1002"), "a restart keeps Bob in sales"
    assert left[1]["member"] is False and after_leave == ("1001",)
    assert lines == [("sales", "Agent/1002", "ADDMEMBER"), ("sales", "Agent/1002", "REMOVEMEMBER")]
    assert "joined sales since" in format_status(shown)
    changes = [
        (e.agent, e.queue, e.member, e.via, e.kept)
        for e in events
        if isinstance(e, QueueMemberChanged)
    ]
    assert ("1002", "sales", True, "api", True) in changes


async def test_alice_leaves_support_with_a_penalty_change_and_comes_back_to_the_config(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        board = center.daemon.switchboard
        assert board.roster.leave_queue("1001", "support", via="cli")
        assert center.daemon.router.rules("support").members == ("1002",)
        assert board.roster.member_views()[0]["member"] is False
        assert board.roster.join_queue("1001", "support", penalty=3, via="cli")
        assert center.daemon.router.rules("support").penalties["1001"] == 3
        assert board.roster.member_views()[0]["penalty"] == 3, "a penalty of its own is kept"
        assert board.roster.join_queue("1001", "support", via="cli")
        assert center.daemon.router.rules("support").penalties.get("1001") is None
        assert board.roster.member_views() == [], "the config's own membership again"
        assert not board.roster.join_queue("1001", "support", via="cli"), "nothing to change"
        reloaded = await center.api("POST", "/reload", {})
        assert reloaded[0] == 200


async def test_requests_to_join_or_leave_that_make_no_sense_are_refused_clearly(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        no_queue = await center.api("POST", "/agents/1002/join", {})
        unknown_queue = await center.api("POST", "/agents/1002/join", {"queue": "billing"})
        unknown_agent = await center.api("POST", "/agents/9999/join", {"queue": "sales"})
        bad_penalty = await center.api(
            "POST", "/agents/1002/join", {"queue": "sales", "penalty": -1}
        )
        leave_penalty = await center.api(
            "POST", "/agents/1002/leave", {"queue": "sales", "penalty": 1}
        )
    assert no_queue[0] == 400 and "say which queue" in no_queue[1]["error"]
    assert unknown_queue[0] == 404 and "billing" in unknown_queue[1]["error"]
    assert unknown_agent[0] == 404 and "9999" in unknown_agent[1]["error"]
    assert bad_penalty[0] == 400 and "penalty" in bad_penalty[1]["error"]
    assert leave_penalty[0] == 400


def test_the_command_line_needs_the_queue_to_join(capsys: pytest.CaptureFixture[str]) -> None:
    from callcenter.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["agent", "join", "1002"])
    assert exited.value.code == 2
    assert "agent join needs --queue" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["agent", "leave", "1002", "--queue", "sales", "--penalty", "1"])
    assert "agent leave takes no --penalty" in capsys.readouterr().err


@pytest.mark.parametrize("transport", ["fastagi", "asyncagi", "esl-inbound", "esl-outbound"])
async def test_carol_joins_and_leaves_sales_from_her_phone_with_star_45(
    tmp_path: Path, transport: Transport
) -> None:
    config = {"queues": {"sales": {"digits": "1"}}}
    async with running_center(tmp_path, transport=transport, config=config) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        heard = []
        for keyed, pin in (("*451", "4321"), ("*451", "4321"), ("*459", "4321")):
            phone = await center.pbx.call(keyed, caller_num="1003")
            await phone.wait_for_prompt("agent-pass", timeout=STEP)
            await phone.press(pin + "#")
            await phone.wait_ended(timeout=STEP)
            heard.append(phone.heard[-1])
            if len(heard) == 1:
                joined = center.daemon.router.rules("sales").members
        left = center.daemon.router.rules("sales").members
        await center.idle()
    assert heard == ["agent-loginok", "agent-loggedoff", "beeperr"]
    assert joined == ("1001", "1003") and left == ("1001",)
    assert [(e.member, e.via) for e in events if isinstance(e, QueueMemberChanged)] == [
        (True, "feature-code"),
        (False, "feature-code"),
    ]


def test_two_queues_with_the_same_digits_are_refused() -> None:
    config = merge(BASE_CONFIG, {"queues": {"sales": {"digits": "1"}, "support": {"digits": "1"}}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(
            yaml.safe_dump(config, sort_keys=False), environ={"CALLCENTER_AMI_SECRET": "x"}
        )
    assert 'queues.support.digits: the digits "1" already name the queue "sales"' in str(
        caught.value
    )


QUEUES = st.sampled_from(["sales", "support", "gone"])
AGENT_IDS = st.sampled_from(["1001", "1002", "1003", "9999"])


@given(
    st.lists(st.tuples(QUEUES, AGENT_IDS, st.booleans(), st.none() | st.integers(0, 5))),
)
def test_changes_leave_each_agent_where_their_last_change_put_them(
    raw: list[tuple[str, str, bool, int | None]],
) -> None:
    rules = {
        "sales": QueueRules(members=("1001",), penalties=MappingProxyType({"1001": 2})),
        "support": QueueRules(members=("1001", "1002")),
    }
    known = {"1001", "1002", "1003"}
    # The switchboard keeps one change per queue and agent, the last one made.
    changes = list({(q, a): MemberChange(q, a, m, p) for q, a, m, p in raw}.values())
    out = with_changes(rules, changes, known)
    assert set(out) == set(rules), "no queue appears or goes"
    last: dict[tuple[str, str], MemberChange] = {}
    for change in changes:
        if change.queue in rules and change.agent in known:
            last[(change.queue, change.agent)] = change
    for name, queue in out.items():
        assert len(set(queue.members)) == len(queue.members), "nobody twice"
        assert set(queue.penalties) <= set(queue.members) | set(rules[name].penalties)
        for agent in known:
            change = last.get((name, agent))
            expected = agent in rules[name].members if change is None else change.member
            assert (agent in queue.members) == expected, (name, agent)
        kept = [m for m in rules[name].members if m in queue.members]
        assert list(queue.members[: len(kept)]) == kept, "config order first, joiners after"


def test_a_member_paused_in_one_queue_is_offered_none_of_its_callers_and_keeps_the_others() -> None:
    rules = {
        "sales": QueueRules(members=("1001",)),
        "support": QueueRules(members=("1001", "1002"), penalties=MappingProxyType({"1001": 2})),
    }
    out = with_changes(rules, [MemberChange("support", "1001", True, None, "lunch")], {"1001"})
    assert out["support"].members == ("1002",)
    assert "1001" not in out["support"].penalties
    assert out["sales"].members == ("1001",), "only that queue"


async def caller_to(center: Center, choice: str, number: str) -> Any:
    caller = await center.pbx.call("800", caller_num=number)
    await caller.wait_for_prompt("welcome-menu", timeout=STEP)
    await caller.press(choice)
    return caller


@pytest.mark.parametrize("transport", ["fastagi", "asyncagi", "esl-inbound", "esl-outbound"])
async def test_alice_paused_in_support_only_takes_sales_callers_and_stays_paused_after_a_restart(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        paused = await center.api(
            "POST", "/agents/1001/pause", {"queue": "support", "reason": "lunch"}
        )
        support = await caller_to(center, "2", "5553001")
        assert await support.wait_bridged(timeout=STEP) == "PJSIP/1002", "Bob takes support"
        await support.hangup()
        sales = await caller_to(center, "1", "5553002")
        assert await sales.wait_bridged(timeout=STEP) == "PJSIP/1001", "Alice still takes sales"
        await sales.hangup()
        await center.idle()
        _, shown = await center.api("GET", "/status")
        state = str(center.daemon.router.agents["1001"].state)
        daemon = await center.restart()
        kept = daemon.router.rules("support").members
        unpaused = await center.api("POST", "/agents/1001/unpause", {"queue": "support"})
        after = center.daemon.router.rules("support").members
        again = await center.api("POST", "/agents/1001/unpause", {"queue": "support"})
        async with asyncio.timeout(STEP):
            while True:
                lines = [
                    (e.queuename, e.agent, e.event, e.data)
                    for _, e in await asyncio.to_thread(center.daemon.store.fetch_queue_log)
                    if "PAUSE" in e.event
                ]
                if len(lines) == 2:
                    break
                await asyncio.sleep(0.02)
        daemon = await center.restart()
        left = daemon.switchboard.roster.member_views()
    assert paused == (
        200,
        {"agent": "1001", "queue": "support", "paused": "lunch", "changed": True},
    )
    assert state == "available", "paused in one queue, not paused"
    assert "paused (lunch) in support since" in format_status(shown)
    assert kept == ("1002",), "a restart keeps the pause"
    assert unpaused[1]["changed"] is True and after == ("1001", "1002")
    assert again[0] == 409 and "not paused in queue support" in again[1]["error"]
    assert lines == [
        ("support", "Agent/1001", "PAUSE", ("lunch",)),
        ("support", "Agent/1001", "UNPAUSE", ()),
    ], "app_queue's lines for QueuePause with a queue"
    assert left == [], "unpaused: the config's own membership again"
    pauses = [(e.pause, e.paused, e.via) for e in events if isinstance(e, QueueMemberChanged)]
    assert pauses == [(True, "lunch", "api")]


async def test_pausing_in_a_queue_one_is_no_member_of_is_refused(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        not_member = await center.api(
            "POST", "/agents/1002/pause", {"queue": "sales", "reason": "lunch"}
        )
        bad_reason = await center.api(
            "POST", "/agents/1001/pause", {"queue": "sales", "reason": "nap"}
        )
        no_queue = await center.api("POST", "/agents/1001/unpause", {"queue": ""})
    assert not_member[0] == 409 and "no member of queue sales" in not_member[1]["error"]
    assert bad_reason[0] == 400 and "unknown pause reason" in bad_reason[1]["error"]
    assert no_queue[0] == 400
