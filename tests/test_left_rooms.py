"""Agents an earlier daemon left in their own rooms (:class:`callcenter.pbx.stranded.LeftRooms`),
one look at a time against a PBX's channel list: found at the first look, a line's agent
is sent through their extension once alone in the room at two looks in a row, a dial's
hung up, never while the person they talk to is still there; forgotten once gone. The
whole story on both demo PBXs is in test_agent_line.py and test_agent_dial.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_stranded_legs import snapshot

from callcenter.errors import ActionFailed, CommandFailed, PBXConnectionError
from callcenter.pbx.interface import ChannelSnapshot, Transport
from callcenter.pbx.stranded import LeftRooms
from callcenter.testing import running_center

CAROL = "PJSIP/1003-00000001"
HALF_IN_ROOM = "Local/line-1003@callcenter-conference-0000000a;2"
HALF_TO_CALLER = "Local/line-1003@callcenter-conference-0000000a;1"


def _snap(name: str, uid: str, room: str = "", leg: str = "") -> ChannelSnapshot:
    """A channel of Carol's line (dialled as *70 in callcenter-features) as listed."""
    return snapshot(name, uid, room, leg, context="callcenter-features", exten="*70")


CAROL_ALONE = [_snap(CAROL, "1.1", room="line-1003")]
CAROL_TALKING = [
    *CAROL_ALONE,
    _snap(HALF_IN_ROOM, "1.3", room="line-1003", leg="line-1003"),
    _snap(HALF_TO_CALLER, "1.2", leg="line-1003"),
    _snap("PJSIP/trunk-00000002", "1.0"),
]


@dataclass
class _PBX:
    listed: list[ChannelSnapshot] = field(default_factory=list)
    down: bool = False
    refuse: bool = False
    redirected: list[tuple[str, str, str]] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)

    async def channels(self) -> list[ChannelSnapshot]:
        if self.down:
            raise PBXConnectionError("the AMI link is down")
        return list(self.listed)

    async def redirect_channel(self, channel: str, context: str, exten: str) -> None:
        if self.refuse:
            raise ActionFailed(f"no channel {channel}")
        self.redirected.append((channel, context, exten))

    async def hangup_channel(self, channel: str) -> None:
        if self.refuse:
            raise ActionFailed(f"no channel {channel}")
        self.hung_up.append(channel)


def _left(pbx: _PBX, ours: set[str] | None = None) -> LeftRooms:
    return LeftRooms(pbx, lambda: ours or set())  # type: ignore[arg-type]


async def test_carol_alone_in_her_room_at_two_looks_goes_through_star_70_again() -> None:
    pbx = _PBX(CAROL_ALONE)
    left = _left(pbx)
    first = await left.look()
    second = await left.look()
    third = await left.look()
    assert (first, second, third) == ([], ["line-1003"], [])
    assert pbx.redirected == [("1.1", "callcenter-features", "*70")]
    assert left.taken_back == 1 and left.watched == []


async def test_carol_still_talking_to_the_caller_stays_where_she_is() -> None:
    pbx = _PBX(CAROL_TALKING)
    left = _left(pbx)
    for _ in range(3):
        assert await left.look() == []
    # The caller's half leaves the room a moment before its other half goes: still theirs.
    pbx.listed = [*CAROL_ALONE, _snap(HALF_TO_CALLER, "1.2", leg="line-1003")]
    assert await left.look() == []
    pbx.listed = CAROL_ALONE
    assert await left.look() == [], "one look alone is not enough"
    assert await left.look() == ["line-1003"]
    assert pbx.redirected == [("1.1", "callcenter-features", "*70")]


async def test_a_look_between_two_calls_of_someone_else_in_her_room_starts_over() -> None:
    pbx = _PBX(CAROL_ALONE)
    left = _left(pbx)
    assert await left.look() == []
    pbx.listed = [*CAROL_ALONE, _snap("PJSIP/1001-00000005", "1.5", room="line-1003")]
    assert await left.look() == []
    pbx.listed = CAROL_ALONE
    assert await left.look() == []
    assert await left.look() == ["line-1003"]


async def test_carol_who_hangs_up_first_is_forgotten_and_a_line_of_this_daemon_never_found() -> (
    None
):
    pbx = _PBX(CAROL_TALKING)
    left = _left(pbx)
    assert await left.look() == [] and left.watched == ["line-1003"]
    pbx.listed = []
    assert await left.look() == [] and left.watched == []
    pbx.listed = CAROL_ALONE
    assert await left.look() == [] and await left.look() == [], "found at the first look only"
    ours = _left(pbx, {"1.1"})
    assert await ours.look() == [] and ours.watched == []
    assert pbx.redirected == []


async def test_alice_left_in_her_dial_s_room_is_hung_up_with_its_room_device_once_alone() -> None:
    """Alice held her customer (in the call's room ``cc-2_1``, with the room device's
    other half); the customer hangs up: nobody is within her reach any more."""
    alice = _snap("PJSIP/1001-00000007", "2.1", room="dial-1001")
    halves = [
        _snap("Local/dial-1001@callcenter-conference-0000000b;2", "2.3", "dial-1001", "dial-1001"),
        _snap("Local/dial-1001@callcenter-conference-0000000b;1", "2.2", "cc-2_1", "dial-1001"),
    ]
    customer = _snap("PJSIP/5550401-00000008", "2.0", room="cc-2_1")
    pbx = _PBX([alice, *halves, customer])
    left = _left(pbx)
    assert await left.look() == [] and left.watched == ["dial-1001"]
    assert await left.look() == [], "her customer is on hold, within reach"
    pbx.listed = [alice, *halves]
    assert await left.look() == []
    assert await left.look() == ["dial-1001"]
    assert (pbx.hung_up, pbx.redirected, left.hung_up) == (["2.1", "2.3", "2.2"], [], 1)


async def test_a_conference_of_the_pbx_admin_named_like_a_line_is_none_of_its_business() -> None:
    host = snapshot("PJSIP/2001-00000009", "3.1", room="line-up", context="meetings", exten="77")
    pbx = _PBX([host])
    left = LeftRooms(pbx, set, agent_room=lambda room: room == "line-1003")  # type: ignore[arg-type]
    for _ in range(3):
        assert await left.look() == []
    assert left.watched == [] and pbx.redirected == []


async def test_a_pbx_that_cannot_list_its_channels_is_looked_at_next_time() -> None:
    pbx = _PBX(CAROL_ALONE, down=True)
    left = _left(pbx)
    assert await left.look() == []
    assert left.watched == [], "not found yet"
    pbx.down = False
    assert await left.look() == []
    assert await left.look() == ["line-1003"]


async def test_a_redirect_the_pbx_refuses_is_not_tried_again() -> None:
    pbx = _PBX(CAROL_ALONE, refuse=True)
    left = _left(pbx)
    await left.look()
    assert await left.look() == []
    assert left.watched == [] and left.taken_back == 0


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_redirect_to_a_gone_channel_or_a_pattern_is_refused_by_both_drivers(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport) as center:
        pbx = center.daemon.pbx
        with pytest.raises(CommandFailed, match="invalid extension"):
            await pbx.redirect_channel("PJSIP/1003-00000001", "callcenter-features", "*70 1")
        with pytest.raises(CommandFailed, match="invalid context"):
            await pbx.redirect_channel("PJSIP/1003-00000001", "a context", "*70")
        gone = "1700000000.99" if transport == "fastagi" else str(uuid.uuid4())
        with pytest.raises(ActionFailed):
            await pbx.redirect_channel(gone, "callcenter-features", "*70")
