"""Open lines an earlier daemon left on the PBX (:class:`callcenter.line.LeftLines`), one
look at a time against a PBX's channel list: the agent's channel is sent through its
extension once it has been alone in its room at two looks in a row, never while a caller
is still there, and forgotten once it is gone or on a line of this daemon. The whole
story on both demo PBXs is in test_agent_line.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.errors import ActionFailed, CommandFailed, PBXConnectionError
from callcenter.line import LeftLines
from callcenter.pbx.interface import ChannelSnapshot, Transport
from callcenter.testing import running_center

CAROL = "PJSIP/1003-00000001"
HALF_IN_ROOM = "Local/line-1003@callcenter-conference-0000000a;2"
HALF_TO_CALLER = "Local/line-1003@callcenter-conference-0000000a;1"


def _snap(name: str, uid: str, room: str = "", leg: str = "") -> ChannelSnapshot:
    return ChannelSnapshot(
        channel=name,
        call_id=uid,
        linked_id=uid,
        state="Up",
        caller_num="1003",
        context="callcenter-features",
        exten="*70",
        application="ConfBridge" if room else "Dial",
        room=room,
        room_leg=leg,
    )


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

    async def channels(self) -> list[ChannelSnapshot]:
        if self.down:
            raise PBXConnectionError("the AMI link is down")
        return list(self.listed)

    async def redirect_channel(self, channel: str, context: str, exten: str) -> None:
        if self.refuse:
            raise ActionFailed(f"no channel {channel}")
        self.redirected.append((channel, context, exten))


@dataclass
class _Lines:
    ours: set[str] = field(default_factory=set)

    def call_ids(self) -> set[str]:
        return set(self.ours)


def _left(pbx: _PBX, lines: _Lines | None = None) -> LeftLines:
    left = LeftLines(pbx, lines or _Lines())  # type: ignore[arg-type]
    left.expect("1003")
    return left


async def test_carol_alone_in_her_room_at_two_looks_goes_through_star_70_again() -> None:
    pbx = _PBX(CAROL_ALONE)
    left = _left(pbx)
    first = await left.look()
    second = await left.look()
    third = await left.look()
    assert (first, second, third) == ([], ["1003"], [])
    assert pbx.redirected == [("1.1", "callcenter-features", "*70")]
    assert left.taken_back == 1 and left.expected == []


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
    assert await left.look() == ["1003"]
    assert pbx.redirected == [("1.1", "callcenter-features", "*70")]


async def test_a_look_between_two_calls_of_someone_else_in_her_room_starts_over() -> None:
    pbx = _PBX(CAROL_ALONE)
    left = _left(pbx)
    assert await left.look() == []
    pbx.listed = [*CAROL_ALONE, _snap("PJSIP/1001-00000005", "1.5", room="line-1003")]
    assert await left.look() == []
    pbx.listed = CAROL_ALONE
    assert await left.look() == []
    assert await left.look() == ["1003"]


async def test_carol_who_hung_up_or_opened_a_line_here_is_forgotten() -> None:
    pbx = _PBX([])
    left = _left(pbx)
    assert await left.look() == [] and left.expected == []
    pbx.listed = CAROL_ALONE
    ours = _left(pbx, _Lines({"1.1"}))
    assert await ours.look() == [] and ours.expected == []
    assert pbx.redirected == []


async def test_a_pbx_that_cannot_list_its_channels_is_looked_at_next_time() -> None:
    pbx = _PBX(CAROL_ALONE, down=True)
    left = _left(pbx)
    assert await left.look() == []
    assert left.expected == ["1003"]
    pbx.down = False
    assert await left.look() == []
    assert await left.look() == ["1003"]


async def test_a_redirect_the_pbx_refuses_is_not_tried_again() -> None:
    pbx = _PBX(CAROL_ALONE, refuse=True)
    left = _left(pbx)
    await left.look()
    assert await left.look() == []
    assert left.expected == [] and left.taken_back == 0


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
