"""Room legs left alone on the PBX: an agent's own dial that went into a room (a hold),
a daemon restarted during it, then both people hang up. The next daemon finds the two
halves of the room device alone in their rooms and hangs them up; the legs of a call
going on are never touched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_agent_dial import DIALS

from callcenter.pbx.interface import ChannelSnapshot
from callcenter.pbx.stranded import stranded
from callcenter.testing import TRANSPORTS, Center, merge, running_center, until

#: Looks every 0.1 s: two looks in a row are 0.2 s.
SWEEPING = merge(DIALS, {"pbx": {"stranded_sweep": 0.1}})


async def _alice_talks_to_a_customer_she_held(center: Center) -> None:
    alice = center.daemon.router.agents["1001"]
    status, said = await center.api("POST", "/agents/1001/dial", {"number": "5550401"})
    assert status == 200, said
    await until(lambda: alice.state == "on_call")
    for action in ("hold", "unhold"):
        status, said = await center.api("POST", f"/agents/1001/{action}", {})
        assert status == 200, said


def _names(center: Center) -> list[str]:
    return sorted(c.name for c in center.pbx.channels.values())


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_the_room_legs_of_a_dial_held_before_a_restart_go_once_both_people_hang_up(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=SWEEPING) as center:  # type: ignore[arg-type]
        alice_phone = center.add_phone("PJSIP/1001", answer_after=0.05)
        customer = center.add_phone("PJSIP/5550401", answer_after=0.1)
        await _alice_talks_to_a_customer_she_held(center)
        await center.restart()
        await asyncio.sleep(0.5)  # a few looks: the call goes on, left to the PBX
        talking = _names(center)
        await customer.hangup()
        await alice_phone.hangup()
        await until(lambda: not center.pbx.channels, timeout=5)
        hung_up = center.daemon.stranded.hung_up
    assert len(talking) == 4, "Alice, the customer and the room device's two halves"
    assert hung_up in (1, 2), "one half, or both (the other gone with it)"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_alice_left_talking_by_a_restart_is_hung_up_once_her_customer_hangs_up(
    tmp_path: Path, agi: str
) -> None:
    """The talk over, an agent's own call hangs her phone up: the next daemon does it for
    the earlier one, instead of leaving her in her silent room."""
    async with running_center(tmp_path, agi=agi, config=SWEEPING) as center:  # type: ignore[arg-type]
        alice_phone = center.add_phone("PJSIP/1001", answer_after=0.05)
        customer = center.add_phone("PJSIP/5550401", answer_after=0.1)
        await _alice_talks_to_a_customer_she_held(center)
        daemon = await center.restart()
        await asyncio.sleep(0.5)
        watched = daemon.left_rooms.watched
        talking = _names(center)
        await customer.hangup()
        await alice_phone.wait_idle(timeout=5)
        await until(lambda: not center.pbx.channels, timeout=5)
    assert watched == ["dial-1001"] and len(talking) == 4, "the call goes on, left to the PBX"
    assert (daemon.left_rooms.hung_up, daemon.left_rooms.watched) == (1, [])


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_a_held_call_looked_at_many_times_is_never_touched(tmp_path: Path, agi: str) -> None:
    async with running_center(tmp_path, agi=agi, config=SWEEPING) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/5550401", answer_after=0.1)
        alice = center.daemon.router.agents["1001"]
        await center.api("POST", "/agents/1001/dial", {"number": "5550401"})
        await until(lambda: alice.state == "on_call")
        for _ in range(3):
            await center.api("POST", "/agents/1001/hold", {})
            await asyncio.sleep(0.35)
            await center.api("POST", "/agents/1001/unhold", {})
            await asyncio.sleep(0.35)
        still = alice.state
        await center.api("POST", "/agents/1001/hangup", {})
        await until(lambda: alice.state == "available")
        hung_up = center.daemon.stranded.hung_up
    assert still == "on_call"
    assert hung_up == 0


def snapshot(
    name: str,
    uid: str,
    room: str = "",
    leg: str = "",
    peer: str | None = None,
    *,
    context: str = "",
    exten: str = "",
) -> ChannelSnapshot:
    """A channel as a PBX lists it: ``name``, call id ``uid``, in ``room``, a room device's
    half into ``leg``, bridged to ``peer``, at ``context``/``exten``."""
    return ChannelSnapshot(
        channel=name,
        call_id=uid,
        linked_id=uid,
        state="Up",
        caller_num="",
        context=context,
        exten=exten,
        application="ConfBridge" if room else "",
        bridged_to=peer,
        room=room,
        room_leg=leg,
    )


A = "Local/dial-1001@callcenter-conference-0000000a;1"
B = "Local/dial-1001@callcenter-conference-0000000a;2"


def test_a_pair_alone_in_its_two_rooms_is_stranded() -> None:
    found = stranded(
        [
            snapshot(A, "1.3", room="cc-1_2", leg="dial-1001"),
            snapshot(B, "1.4", "dial-1001", "dial-1001"),
        ]
    )
    assert sorted(found) == ["1.3", "1.4"]


def test_a_pair_with_anyone_at_either_end_is_not() -> None:
    pair = [
        snapshot(A, "1.3", room="cc-1_2", leg="dial-1001"),
        snapshot(B, "1.4", "dial-1001", "dial-1001"),
    ]
    customer = snapshot("PJSIP/5550401-00000002", "1.2", room="cc-1_2")
    alice = snapshot("PJSIP/1001-00000001", "1.1", room="dial-1001")
    assert stranded([*pair, customer]) == {}
    assert stranded([*pair, alice]) == {}


def test_a_half_on_its_way_between_rooms_or_bridged_keeps_its_pair() -> None:
    moving = snapshot(A, "1.3", leg="dial-1001")
    bridged = snapshot(A, "1.3", leg="dial-1001", peer="PJSIP/5550401-00000002")
    inside = snapshot(B, "1.4", room="dial-1001", leg="dial-1001")
    assert stranded([moving, inside]) == {}
    assert stranded([bridged, inside, snapshot("PJSIP/5550401-00000002", "1.2")]) == {}


def test_a_room_device_into_a_room_of_the_pbx_admin_is_left_alone() -> None:
    theirs = [
        snapshot(
            "Local/sales-meeting@callcenter-conference-0000000b;1", "2.1", "x", "sales-meeting"
        ),
        snapshot(
            "Local/sales-meeting@callcenter-conference-0000000b;2",
            "2.2",
            "sales-meeting",
            "sales-meeting",
        ),
    ]
    assert stranded(theirs) == {}


ROOMS = ("cc-1", "cc-2", "dial-1001", "line-1003", "sales-meeting")


@st.composite
def _channels(draw: st.DrawFn) -> list[ChannelSnapshot]:
    """People and room-device pairs scattered over a few rooms (or in none)."""
    snaps: list[ChannelSnapshot] = []
    for n in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(ROOMS[2:]))
        for half in (1, 2):
            room = draw(st.sampled_from(("", *ROOMS)))
            snaps.append(
                snapshot(f"Local/{target}@ctx-{n:08x};{half}", f"9.{n}{half}", room, target)
            )
    for n in range(draw(st.integers(0, 3))):
        room = draw(st.sampled_from(("", *ROOMS)))
        snaps.append(snapshot(f"PJSIP/55501{n:02d}-0000000{n}", f"8.{n}", room))
    return draw(st.permutations(snaps))


def _reachable(start: ChannelSnapshot, snaps: list[ChannelSnapshot]) -> list[ChannelSnapshot]:
    """Every channel joined to ``start`` by rooms and the pairs' target rooms (a search)."""
    seen, todo = {start.call_id}, [start]
    while todo:
        here = todo.pop()
        rooms = {r for r in (here.room, here.room_leg) if r}
        for other in snaps:
            if other.call_id not in seen and rooms & {other.room, other.room_leg} - {""}:
                seen.add(other.call_id)
                todo.append(other)
    return [s for s in snaps if s.call_id in seen]


@given(_channels())
def test_a_leg_is_stranded_exactly_when_nobody_is_anywhere_it_leads(
    snaps: list[ChannelSnapshot],
) -> None:
    expected = {
        s.call_id
        for s in snaps
        if s.room_leg
        and all(o.room_leg.startswith(("dial-", "line-")) and o.room for o in _reachable(s, snaps))
    }
    assert set(stranded(snaps)) == expected
