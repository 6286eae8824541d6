"""Consultations and attended transfers, on every transport over real TCP against the demo
PBXs: Alice (1001) takes a sales call, puts the caller on hold (music) to talk to Sam the
supervisor (2000) or to Bob (1002), then hands the caller over, brings everyone together,
or goes back to the caller."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from callcenter.cli import main as cli_main
from callcenter.consult import room_name
from callcenter.demopbx.freeswitch import DemoFreeSwitch
from callcenter.events import AgentKeysRefused, CallTransferred
from callcenter.testing import TRANSPORTS, Center, running_center

STEP = 5.0
#: The PBX link comes back a second after a cut (not at once): time to act meanwhile.
SLOW_LINK = {
    "pbx": {
        "ami": {"reconnect_min": 1.0, "reconnect_max": 1.0},
        "esl": {"reconnect_min": 1.0, "reconnect_max": 1.0},
    }
}


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def alice_on_a_call(
    tmp_path: Path, transport: str, config: dict[str, Any] | None = None, **phones: float | None
) -> AsyncIterator[tuple[Center, Any, dict[str, Any]]]:
    """A sales caller talking to Alice; yields (center, caller, phones by id) where
    ``phones`` gives each other phone's answer delay (None: never answers) and ``config``
    is merged into the test config."""
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        made = {"1001": center.add_phone("PJSIP/1001", answer_after=0.05)}
        for who, delay in phones.items():
            made[who] = center.add_phone(f"PJSIP/{who.removeprefix('p')}", answer_after=delay)
        caller = await center.pbx.call("800", caller_num="5550101")
        await caller.wait_for_prompt("welcome-menu", timeout=STEP)
        await caller.press("1")
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001"
        await until(lambda: alice_talks(center), "the daemon saw Alice answer")
        yield center, caller, made


def alice_talks(center: Center) -> bool:
    found = center.daemon.switchboard.agent_call("1001")
    return found is not None and bool(found[1].agent_channel)


async def wait_music(caller: Any, before: int) -> None:
    """Until music on hold started for the caller again (after ``before`` starts)."""
    await until(lambda: caller.moh_starts > before, "the caller hears music")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


async def until(predicate: Callable[[], bool], what: str, limit: float = STEP) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.01)
    assert predicate(), what


def in_room(center: Center, caller: Any, aside: bool = False) -> list[str]:
    """The demo PBX's channel names in the caller's room (or its side room)."""
    name = room_name(caller.uniqueid) + ("-aside" if aside else "")
    room = center.pbx.conferences.get(name)
    return [m.name for m in room.members] if room is not None else []


def holds(names: list[str], *devices: str) -> bool:
    """Whether the channels ``names`` are the caller's plus one per device, exactly."""
    others = [n for n in names if any(d in n for d in devices)]
    return len(names) == len(devices) + 1 and len(others) == len(devices)


def consult_of(center: Center, caller: Any) -> Any:
    return center.daemon.switchboard.active[caller.uniqueid].consult


async def alice_hands_over(center: Center, caller: Any, to: str, phone: Any, number: str) -> None:
    """Alice consults ``to`` and hands the caller over: ``number``'s phone has them."""
    await alice_consults(center, caller, to, phone)
    assert await center.daemon.switchboard.consult_complete("1001") == to
    await until(lambda: holds(in_room(center, caller), number), f"{to} has the caller")


async def alice_consults(center: Center, caller: Any, to: str, phone: Any) -> None:
    """Alice consults ``to``, whose ``phone`` answers: they talk, the caller holds."""
    assert await center.daemon.switchboard.consult("1001", to) == to
    await phone.wait_answered(timeout=STEP)
    await until(lambda: consult_of(center, caller).state.value == "talking", f"{to} answered")


async def queue_log(center: Center, caller: Any, last: str) -> list[tuple[str, str]]:
    """The caller's queue_log lines (agent, event), once one with event ``last`` is in."""
    async with asyncio.timeout(STEP):  # lines gather for 50 ms before a write
        while True:
            lines = [e for _, e in await asyncio.to_thread(center.daemon.store.fetch_queue_log)]
            mine = [(e.agent, e.event) for e in lines if e.callid == caller.uniqueid]
            if any(event == last for _, event in mine):
                return mine
            await asyncio.sleep(0.02)


async def test_alice_consults_sam_while_the_caller_hears_music_then_hands_the_caller_over(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, p2000=0.05) as (center, caller, phones):
        music = caller.moh_starts
        status, answer = await center.api("POST", "/agents/1001/consult", {"to": "2000"})
        assert (status, answer.get("consulting")) == (200, "2000"), answer
        await phones["p2000"].wait_answered(timeout=STEP)
        await until(lambda: consult_of(center, caller).state.value == "talking", "Sam answered")
        await until(
            lambda: len(in_room(center, caller, aside=True)) == 2, "Alice and Sam talk aside"
        )
        assert len(in_room(center, caller)) == 1, "the caller does not hear them"
        await until(lambda: caller.moh_starts > music, "the caller hears music meanwhile")
        status, shown = await center.api("GET", "/status")
        call = next(c for c in shown["calls"] if c["call_id"] == caller.uniqueid)
        assert call["consult"]["to"] == "2000" and call["consult"]["state"] == "talking"

        status, answer = await center.api("POST", "/agents/1001/consult-complete")
        assert (status, answer.get("consulting")) == (200, "2000"), answer
        await until(lambda: holds(in_room(center, caller), "2000"), "Sam talks with the caller")
        await until(lambda: not in_room(center, caller, aside=True), "nobody is left aside")
        router = center.daemon.router
        await until(lambda: router.agents["1001"].state != "on_call", "Alice is off the call")
        assert center.daemon.switchboard.agent_call("1001") is None
        await asyncio.sleep(0.3)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        log_lines = await queue_log(center, caller, "ATTENDEDTRANSFER")
        await center.idle()
        metrics = await asyncio.to_thread(scrape, center.daemon.api.port)

    assert (row["agent"], row["queue"], row["transfers"]) == ("1001", "sales", 1)
    assert row["transfer_path"] == "1001>2000"
    assert row["consulted"] == "2000"
    assert row["hold_seconds"] > 0
    assert row["hung_up_by"] == "caller"
    assert row["talk_seconds"] >= 0.3, "Alice's talk and Sam's"
    assert ("Agent/1001", "ATTENDEDTRANSFER") in log_lines
    assert 'callcenter_consultations_total{outcome="completed"} 1' in metrics
    held = next(ln for ln in metrics.splitlines() if ln.startswith("callcenter_hold_seconds_total"))
    assert float(held.split()[1]) == pytest.approx(row["hold_seconds"], abs=0.01)


async def test_alice_cancels_while_bob_still_rings_and_talks_with_the_caller_again(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, p1002=None) as (center, caller, phones):
        assert await center.daemon.switchboard.consult("1001", "1002") == "1002"
        await phones["p1002"].wait_rings(timeout=STEP)
        router = center.daemon.router
        assert router.agents["1002"].state == "ringing", "Bob is reserved while he rings"
        assert await center.daemon.switchboard.consult_cancel("1001") == "1002"
        await until(lambda: holds(in_room(center, caller), "1001"), "Alice is back")
        await until(lambda: router.agents["1002"].state == "available", "Bob is free again")
        assert consult_of(center, caller).outcome.value == "cancelled"
        assert center.daemon.switchboard.agent_call("1001") is not None
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["agent"], row["transfers"], row["transfer_path"]) == ("1001", 0, "")
    assert row["consulted"] == "1002"
    assert row["hung_up_by"] == "caller"


async def test_bob_never_answers_so_alice_is_back_with_the_caller_after_the_ring_timeout(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, p1002=None) as (center, caller, _phones):
        assert await center.daemon.switchboard.consult("1001", "1002") == "1002"
        await until(lambda: not consult_of(center, caller).active, "the consult gave up", 8.0)
        assert consult_of(center, caller).outcome.value == "no_answer"
        await until(lambda: holds(in_room(center, caller), "1001"), "Alice is back")
        await until(lambda: center.daemon.router.agents["1002"].state == "available", "Bob is free")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfers"], row["consulted"], row["hung_up_by"]) == (0, "1002", "caller")


async def test_three_way_call_then_sam_leaves_and_alice_finishes_with_the_caller(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, p2000=0.05) as (center, caller, phones):
        board = center.daemon.switchboard
        await alice_consults(center, caller, "2000", phones["p2000"])
        assert await board.consult_join("1001") == "2000"
        await until(lambda: holds(in_room(center, caller), "1001", "2000"), "all three talk")
        await phones["p2000"].hangup()
        await until(lambda: not consult_of(center, caller).active, "Sam left")
        assert consult_of(center, caller).outcome.value == "hung_up"
        assert holds(in_room(center, caller), "1001")
        await asyncio.sleep(0.2)
        await phones["1001"].hangup()
        await caller.wait_ended(timeout=STEP)
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        assert center.daemon.router.agents["1001"].state in ("wrap_up", "available")

    assert (row["agent"], row["transfers"], row["consulted"]) == ("1001", 0, "2000")
    assert row["hung_up_by"] == "agent", "the last one to leave the room hung up on the caller"


async def test_alice_hanging_up_while_talking_to_bob_hands_him_the_caller(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, p1002=0.05) as (center, caller, phones):
        board = center.daemon.switchboard
        await alice_consults(center, caller, "1002", phones["p1002"])
        await phones["1001"].hangup()
        await until(lambda: holds(in_room(center, caller), "1002"), "Bob has the caller")
        router = center.daemon.router
        assert router.agents["1002"].state == "on_call"
        assert board.agent_call("1002") is not None and board.agent_call("1001") is None
        await asyncio.sleep(0.2)
        await phones["p1002"].hangup()
        await caller.wait_ended(timeout=STEP)
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        assert router.agents["1002"].state in ("wrap_up", "available")

    assert (row["transfer_path"], row["transfers"]) == ("1001>1002", 1)
    assert row["hung_up_by"] == "agent"


@pytest.mark.parametrize("when", ["with Alice", "as handed over"])
async def test_a_caller_hanging_up_as_sam_takes_them_over_leaves_sam_in_no_empty_room(
    tmp_path: Path, transport: str, when: str
) -> None:
    """Seen in the demo: the caller hung up while Sam was on his way from the side room into
    the caller's; the kick sent to the side room was lost in the move, and Sam sat in an
    empty room (his phone busy, so a supervisor's listen later met no answer)."""
    async with alice_on_a_call(tmp_path, transport, p2000=0.05) as (center, caller, phones):
        board = center.daemon.switchboard
        await alice_consults(center, caller, "2000", phones["p2000"])
        hang_ups: list[asyncio.Task[None]] = []

        def caller_leaves(event: object) -> None:
            if isinstance(event, CallTransferred) and not hang_ups:
                hang_ups.append(asyncio.create_task(caller.hangup()))

        if when == "as handed over":
            center.daemon.bus.subscribe(caller_leaves)
        await phones["1001"].hangup()
        if when == "with Alice":
            hang_ups.append(asyncio.create_task(caller.hangup()))
        await caller.wait_ended(timeout=STEP)
        row = await center.cdr(caller.uniqueid)
        await phones["p2000"].wait_idle(timeout=STEP)
        await until(lambda: not board.active, "no call left")

    assert hang_ups and row["hung_up_by"] == "caller"
    if when == "as handed over":
        assert row["transfer_path"] == "1001>2000"


async def test_consultations_that_cannot_be_made_say_why(tmp_path: Path) -> None:
    async with alice_on_a_call(tmp_path, "fastagi") as (center, _caller, _phones):
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        status, answer = await center.api("POST", "/agents/1002/consult", {"to": "2000"})
        assert status == 409 and "not talking to a caller" in answer["error"]
        status, answer = await center.api("POST", "/agents/1001/consult", {"to": "5551234"})
        assert status == 409 and "not a configured agent" in answer["error"]
        status, answer = await center.api("POST", "/agents/1001/consult-complete")
        assert status == 409 and "not consulting anyone" in answer["error"]
        status, answer = await center.api("POST", "/agents/1001/consult", {"to": "1001"})
        assert status == 409 and "themself" in answer["error"]
        code = await asyncio.to_thread(cli_main, ["agent", "consult-join", "1001", "--api", api])
        assert code == 1


async def test_bob_who_took_the_caller_over_can_transfer_them_on_to_sam(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, p1002=0.05, p2000=0.05) as (
        center,
        caller,
        phones,
    ):
        board = center.daemon.switchboard
        await alice_hands_over(center, caller, "1002", phones["p1002"], "1002")
        assert await board.transfer("1002", "2000") == "2000"
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/2000") == "PJSIP/2000"
        await until(
            lambda: center.daemon.router.agents["1002"].state != "on_call", "Bob is off the call"
        )
        await asyncio.sleep(0.2)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfer_path"], row["transfers"]) == ("1001>1002>2000", 2)
    assert row["hung_up_by"] == "caller"


async def test_alice_holds_the_caller_who_hears_music_and_takes_them_back_twice(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport) as (center, caller, _phones):
        for _ in range(2):
            music = caller.moh_starts
            status, answer = await center.api("POST", "/agents/1001/hold")
            assert (status, answer.get("on_hold")) == (200, True), answer
            await until(lambda: len(in_room(center, caller, aside=True)) == 1, "Alice steps away")
            assert len(in_room(center, caller)) == 1, "the caller is alone in the room"
            await wait_music(caller, music)
            status, shown = await center.api("GET", "/status")
            assert next(c for c in shown["calls"] if c["agent"] == "1001")["on_hold"] is True
            status, answer = await center.api("POST", "/agents/1001/consult", {"to": "2000"})
            assert status == 409 and "on hold" in answer["error"]
            await asyncio.sleep(0.2)
            status, answer = await center.api("POST", "/agents/1001/unhold")
            assert (status, answer.get("on_hold")) == (200, False), answer
            await until(lambda: holds(in_room(center, caller), "1001"), "Alice is back")
        status, answer = await center.api("POST", "/agents/1001/unhold")
        assert status == 409 and "not on hold" in answer["error"]
        await center.api("POST", "/agents/1001/hold")
        await until(lambda: len(in_room(center, caller, aside=True)) == 1, "on hold again")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        assert not in_room(center, caller, aside=True), "Alice's leg is not left in the room"

    assert row["hold_seconds"] >= 0.4, "two holds of 0.2 s and the last one"
    assert (row["agent"], row["transfers"], row["consulted"]) == ("1001", 0, "")
    assert row["hung_up_by"] == "caller"


async def test_a_caller_gone_while_their_room_is_made_gets_a_409_not_a_500(
    tmp_path: Path, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by ``callcenter soak --outages`` on AsyncAGI: the call ended while the PBX made
    its room for a hold, the hold then met no room (an assertion: API 500). Now the hold
    says the call ended, and the room made for nobody is ended."""
    async with alice_on_a_call(tmp_path, transport) as (center, caller, _):
        found = center.daemon.switchboard.agent_call("1001")
        assert found is not None
        call = found[1].call
        make_room = type(call).conference

        async def caller_leaves_meanwhile(self: Any, room: str, **kwargs: Any) -> Any:
            made = await make_room(self, room, **kwargs)
            if self is call:
                await caller.hangup()
                await until(lambda: found[1].room is None, "the handler gave the room up")
            return made

        monkeypatch.setattr(type(call), "conference", caller_leaves_meanwhile)
        status, answer = await center.api("POST", "/agents/1001/hold", {})
        await center.idle()
        with contextlib.suppress(TimeoutError):
            await until(lambda: not center.pbx.channels, "nothing left on the PBX", limit=10)
        left = [c.name for c in center.pbx.channels.values()]
    assert status == 409, answer
    assert "ended while its room was being made" in answer["error"]
    assert left == [], "the room made for nobody is ended: Alice is not left in it"


async def test_a_pbx_link_lost_while_the_caller_is_on_hold_leaves_no_agent_in_a_silent_room(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport) as (center, caller, phones):
        board = center.daemon.switchboard
        status, _answer = await center.api("POST", "/agents/1001/hold")
        assert status == 200
        await until(lambda: len(in_room(center, caller, aside=True)) == 1, "Alice steps away")
        await center.drop_pbx_connections()
        # The caller gives up while the daemon cannot reach the PBX: nobody can take Alice
        # out of the side room until the link is back.
        await caller.hangup()
        await until(lambda: board.pbx_up, "the link is back")
        await until(lambda: phones["1001"].current_channel is None, "Alice's leg hung up")
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        await until(lambda: not center.pbx.channels, "no channel is left on the PBX")
        assert center.daemon.router.agents["1001"].state != "on_call"

    assert row["agent"] == "1001"


async def test_a_caller_on_hold_keeps_their_agent_across_a_lost_pbx_link(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport) as (center, caller, _phones):
        board = center.daemon.switchboard
        await center.api("POST", "/agents/1001/hold")
        await until(lambda: len(in_room(center, caller, aside=True)) == 1, "Alice steps away")
        await center.drop_pbx_connections()
        await until(lambda: not board.pbx_up, "the daemon saw the link go")
        await until(lambda: board.pbx_up, "the link is back")
        status, answer = await center.api("POST", "/agents/1001/unhold")
        assert (status, answer.get("on_hold")) == (200, False), answer
        await until(lambda: holds(in_room(center, caller), "1001"), "Alice is back")
        await asyncio.sleep(0.1)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["agent"], row["hung_up_by"]) == ("1001", "caller")
    assert row["hold_seconds"] > 0


async def test_bob_working_from_home_is_consulted_on_his_own_number_and_takes_the_caller(
    tmp_path: Path, transport: str
) -> None:
    remote = {
        "acd": {"remote_dial": "PJSIP/${number}", "remote_allow": ["_555XXXX"]},
        "agents": {"1002": {"device": "external/5559002"}},
    }
    async with alice_on_a_call(tmp_path, transport, remote, p5559002=0.05) as (
        center,
        caller,
        phones,
    ):
        await alice_hands_over(center, caller, "1002", phones["p5559002"], "5559002")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfer_path"], row["consulted"]) == ("1001>1002", "1002")


async def test_a_hand_over_asked_while_the_pbx_link_is_down_is_refused_and_works_once_back(
    tmp_path: Path, transport: str
) -> None:
    """Alice talks to Sam aside; the link that moves legs between the rooms is down when
    she asks to hand the caller over (or to go back, or to bring the caller in): told so
    (409), nothing changes, the caller on hold, and once the link is back the hand-over
    works. Before, the records moved on and the legs did not: the caller held for good."""
    async with alice_on_a_call(tmp_path, transport, SLOW_LINK, p2000=0.05) as (
        center,
        caller,
        phones,
    ):
        board = center.daemon.switchboard
        await alice_consults(center, caller, "2000", phones["p2000"])
        await center.drop_pbx_connections()
        await until(lambda: not board.pbx_up, "the link is down")
        refused = [
            await center.api("POST", f"/agents/1001/{step}")
            for step in ("consult-complete", "consult-cancel", "consult-join")
        ]
        still = consult_of(center, caller).state.value
        await until(lambda: board.pbx_up, "the link is back", limit=8)
        status, answer = await center.api("POST", "/agents/1001/consult-complete")
        assert (status, answer.get("consulting")) == (200, "2000"), answer
        await until(lambda: holds(in_room(center, caller), "2000"), "Sam has the caller")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert [status for status, _ in refused] == [409, 409, 409], refused
    assert all("PBX link is down" in answer["error"] for _, answer in refused), refused
    assert still == "talking"
    assert row["transfer_path"] == "1001>2000"


async def test_sam_answering_while_the_pbx_link_is_down_is_found_when_it_is_back(
    tmp_path: Path, transport: str
) -> None:
    """The room's events of the outage are lost; the resync reads the rooms' members from
    the PBX's channel list, so the consultation goes on with Sam rather than timing out.
    (On AsyncAGI and ESL inbound the call's control runs over that link: AsyncAGI's
    ConfBridge command runs on at Asterisk, FreeSWITCH's room at the switch, and the
    daemon takes up the call where it was.)"""
    async with alice_on_a_call(tmp_path, transport, SLOW_LINK, p2000=0.3) as (
        center,
        caller,
        phones,
    ):
        board = center.daemon.switchboard
        await board.consult("1001", "2000")
        await until(lambda: len(in_room(center, caller, aside=True)) == 1, "Alice steps aside")
        await center.drop_pbx_connections()
        await phones["p2000"].wait_answered(timeout=STEP)
        assert consult_of(center, caller).state.value == "ringing", "nobody told the daemon"
        await until(lambda: consult_of(center, caller).state.value == "talking", "found again")
        await board.consult_complete("1001")
        await until(lambda: holds(in_room(center, caller), "2000"), "Sam has the caller")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfer_path"], row["consulted"]) == ("1001>2000", "2000")


async def test_alice_consults_an_allowed_outside_number_and_hands_the_caller_over(
    tmp_path: Path, transport: str
) -> None:
    outside = {"acd": {"transfer_dial": "PJSIP/${number}", "transfer_allow": ["_555XXXX"]}}
    async with alice_on_a_call(tmp_path, transport, outside, p5557001=0.05) as (
        center,
        caller,
        phones,
    ):
        status, answer = await center.api("POST", "/agents/1001/consult", {"to": "4445557001"})
        assert status == 409 and "acd.transfer_allow" in answer["error"], "not on the list"
        await alice_hands_over(center, caller, "5557001", phones["p5557001"], "5557001")
        assert center.daemon.router.agents["1001"].state != "on_call"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfer_path"], row["consulted"]) == ("1001>5557001", "5557001")


async def test_alice_blind_transfers_the_caller_to_an_allowed_outside_number(
    tmp_path: Path,
) -> None:
    outside = {"acd": {"transfer_dial": "PJSIP/${number}", "transfer_allow": ["_555XXXX"]}}
    async with alice_on_a_call(tmp_path, "fastagi", outside, p5557002=0.05) as (
        center,
        caller,
        _phones,
    ):
        assert await center.daemon.switchboard.transfer("1001", "5557002") == "5557002"
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/5557002") == "PJSIP/5557002"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfer_path"], row["transfers"]) == ("1001>5557002", 1)


async def test_a_daemon_stopping_leaves_no_caller_alone_on_hold(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport) as (center, caller, phones):
        await center.daemon.switchboard.hold("1001")
        await until(lambda: len(in_room(center, caller, aside=True)) == 1, "Alice steps away")
        async with asyncio.timeout(10):
            await center.daemon.stop()
        assert holds(in_room(center, caller), "1001"), "Alice is back with the caller"
        assert not in_room(center, caller, aside=True)
        await asyncio.sleep(0.2)
        assert holds(in_room(center, caller), "1001"), "and they stay together"
        await phones["1001"].hangup()
        await caller.hangup()


async def test_a_daemon_stopping_mid_consultation_makes_it_a_three_way_call(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, p1002=0.05) as (center, caller, phones):
        await alice_consults(center, caller, "1002", phones["p1002"])
        async with asyncio.timeout(10):
            await center.daemon.stop()
        assert holds(in_room(center, caller), "1001", "1002"), "all three talk together"
        assert not in_room(center, caller, aside=True)
        await caller.hangup()


# ---------------------------------------------------------------------- keys on Alice's phone

KEYS = {"acd": {"agent_keys": {}}}


async def test_alice_keys_a_blind_transfer_to_bob_on_her_phone(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, KEYS, p1002=0.05) as (center, caller, phones):
        await phones["1001"].press("*11002#")
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/1002") == "PJSIP/1002"
        await until(lambda: center.daemon.router.agents["1002"].state == "on_call", "Bob talks")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfer_path"], row["transfers"]) == ("1001>1002", 1)


async def test_alice_keys_a_consultation_and_hangs_up_to_hand_the_caller_to_bob(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, KEYS, p1002=0.05) as (center, caller, phones):
        await phones["1001"].press("*21002#")
        await phones["p1002"].wait_answered(timeout=STEP)
        await until(lambda: consult_of(center, caller).state.value == "talking", "Bob answered")
        assert in_room(center, caller, aside=True), "Alice and Bob talk aside"
        await phones["1001"].hangup()
        await until(lambda: holds(in_room(center, caller), "1002"), "Bob has the caller")
        await phones["p1002"].hangup()
        await caller.wait_ended(timeout=STEP)
        row = await center.cdr(caller.uniqueid)
        await center.idle()

    assert (row["transfer_path"], row["transfers"]) == ("1001>1002", 1)


async def test_while_consulting_bob_alice_keys_a_three_way_call_with_star_3(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, KEYS, p1002=0.05) as (center, caller, phones):
        await phones["1001"].press("*21002#")
        await phones["p1002"].wait_answered(timeout=STEP)
        await until(lambda: consult_of(center, caller).state.value == "talking", "Bob answered")
        await phones["1001"].press("*3")
        await until(lambda: consult_of(center, caller).state.value == "threeway", "three-way")
        await until(lambda: holds(in_room(center, caller), "1001", "1002"), "all three talk")
        legs = room_keys(center, caller)
        await caller.hangup()
        await center.idle()
    assert legs in (None, {"none"}), "on FreeSWITCH no leg of the room has key bindings"


async def test_while_consulting_bob_alice_keys_back_to_the_caller_then_hands_them_over(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, KEYS, p1002=0.05) as (center, caller, phones):
        await phones["1001"].press("*21002#")
        await phones["p1002"].wait_answered(timeout=STEP)
        await until(lambda: consult_of(center, caller).state.value == "talking", "Bob answered")
        await phones["1001"].press("*1")
        await until(lambda: consult_of(center, caller).outcome == "cancelled", "back to caller")
        await until(lambda: alice_talks(center), "Alice talks with the caller again")
        await phones["1001"].press("*21002#")
        await until(
            lambda: consult_of(center, caller).state.value == "talking", "Bob answered again"
        )
        await phones["1001"].press("*2")
        await until(lambda: holds(in_room(center, caller), "1002"), "Bob has the caller")
        await phones["p1002"].hangup()
        await caller.wait_ended(timeout=STEP)
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    assert (row["transfer_path"], row["transfers"]) == ("1001>1002", 1)
    assert row["consulted"] == "1002,1002"


async def test_alice_puts_the_caller_on_hold_with_star_5_and_takes_them_back(
    tmp_path: Path, transport: str
) -> None:
    async with alice_on_a_call(tmp_path, transport, KEYS) as (center, caller, phones):
        board = center.daemon.switchboard
        music = caller.moh_starts
        await phones["1001"].press("*5")
        await until(lambda: board.active[caller.uniqueid].held_since is not None, "on hold")
        await wait_music(caller, music)
        await phones["1001"].press("*5")
        await until(lambda: board.active[caller.uniqueid].held_since is None, "taken back")
        await until(lambda: holds(in_room(center, caller), "1001"), "Alice talks to them")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    assert row["hold_seconds"] > 0


def room_keys(center: Center, caller: Any) -> set[str] | None:
    """On FreeSWITCH, the ``conference_controls`` of every leg of the caller's room."""
    if not isinstance(center.pbx, DemoFreeSwitch):
        return None
    room = room_name(caller.uniqueid)
    return {
        chan.var("conference_controls")
        for chan in center.pbx.channels.values()
        if any(member.name == chan.name for member in center.pbx.conferences[room].members)
    }


async def test_keys_for_a_number_nobody_allows_are_refused_and_alice_keeps_the_caller(
    tmp_path: Path,
) -> None:
    keys = {"acd": {"agent_keys": {"timeout": 0.3}}}
    async with alice_on_a_call(tmp_path, "fastagi", keys, p1002=0.05) as (center, caller, phones):
        events: list[Any] = []
        center.daemon.bus.subscribe(events.append)
        await phones["1001"].press("*19999#")
        await until(lambda: any(isinstance(e, AgentKeysRefused) for e in events), "refused")
        await phones["1001"].press("*1")
        # Well past the 0.3 s timeout, however late the daemon reads either key.
        await asyncio.sleep(1.2)
        await phones["1001"].press("1002#")
        await phones["1001"].press("**2")
        await asyncio.sleep(0.2)
        assert alice_talks(center), "Alice still talks with the caller"
        assert phones["p1002"].rings == 0, "keys keyed too slowly are dropped"
        await caller.hangup()
        await center.idle()

    (refused,) = [e for e in events if isinstance(e, AgentKeysRefused)]
    assert (refused.agent, refused.keys, refused.call_id) == ("1001", "*19999#", caller.uniqueid)
    assert "9999" in refused.reason


async def test_without_agent_keys_alices_keys_do_nothing(tmp_path: Path) -> None:
    async with alice_on_a_call(tmp_path, "esl-inbound", p1002=0.05) as (center, caller, phones):
        await phones["1001"].press("*11002#")
        await asyncio.sleep(0.3)
        assert alice_talks(center) and phones["p1002"].rings == 0
        await caller.hangup()
        await center.idle()


async def test_alice_keys_the_caller_into_the_support_queue_and_bob_takes_them(
    tmp_path: Path, transport: str
) -> None:
    config = {"acd": {"agent_keys": {}}, "queues": {"support": {"digits": "2"}}}
    async with alice_on_a_call(tmp_path, transport, config, p1002=0.05) as (
        center,
        caller,
        phones,
    ):
        events: list[Any] = []
        center.daemon.bus.subscribe(events.append)
        await phones["1001"].press("*49#")
        await until(lambda: any(isinstance(e, AgentKeysRefused) for e in events), "refused")
        await phones["1001"].press("*42#")
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/1002") == "PJSIP/1002"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await center.idle()
    (refused,) = [e for e in events if isinstance(e, AgentKeysRefused)]
    assert "no queue has the digits '9'" in refused.reason
    transferred = [e for e in events if isinstance(e, CallTransferred)]
    assert [(e.by, e.to, e.kind) for e in transferred] == [("1001", "support", "queue")]
    assert row["queue"] == "support"
