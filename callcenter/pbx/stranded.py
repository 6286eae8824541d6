"""Room legs nobody is on: the halves of room devices (:meth:`PBX.room_device`, an
Asterisk Local pair, a FreeSWITCH loopback pair) left in conference rooms with no person
on either side, and their hang-up.

An agent's own dial or open line reaches its caller through such a pair: one half sits in
the agent's room (``dial-<agent>``, ``line-<agent>``), the other is the caller's peer, and
goes into the caller's room (``cc-<call>``) for a hold or a consultation. The daemon that
made the pair kicks it when the call ends; a daemon stopped in between leaves the call to
the PBX, and once its people hang up both halves stay alone in their rooms for good (each
holding a channel, and on Asterisk a Local pair's licence-free but finite resources). The
next daemon does not know those rooms: it looks at the PBX's channels every
``pbx.stranded_sweep`` seconds instead.

A set of rooms and channels joined by room membership, bridges and the two halves of a
pair is *stranded* when every channel in it is a room-device half sitting in a room: no
person can hear anything there. It is hung up once it has been seen stranded, the same
channels, at two looks in a row: a leg between rooms for a moment (a hold, a line's
prompt) is never taken for one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

import structlog

from callcenter.errors import PBXError
from callcenter.pbx.interface import PBX, ChannelSnapshot

log = structlog.get_logger(__name__)

ROOM_LEG_ROOMS: Final = ("dial-", "line-")
"""The rooms the daemon dials room devices into (agents' own dials and open lines); a
room device into any other room (the PBX admin's own) is a person's business."""


def stranded(snapshots: Iterable[ChannelSnapshot]) -> dict[str, ChannelSnapshot]:
    """The room-device halves (by channel id) that no person can reach: see the module
    docstring."""
    listed = list(snapshots)
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def join(a: str, b: str) -> None:
        parent[root(a)] = root(b)

    names = {snap.channel: snap.call_id for snap in listed}
    for snap in listed:
        node = "channel:" + snap.call_id
        root(node)
        if snap.room:
            join(node, "room:" + snap.room)
        if snap.bridged_to:
            join(node, "channel:" + names.get(snap.bridged_to, snap.bridged_to))
        if snap.room_leg:
            join(node, "room:" + snap.room_leg)
    # A component with anyone else in it (a person, a leg on its way somewhere, a room
    # device of someone else's) is somebody's call.
    alive: set[str] = set()
    for snap in listed:
        ours = snap.room_leg.startswith(ROOM_LEG_ROOMS)
        if not (ours and snap.room):
            alive.add(root("channel:" + snap.call_id))
    return {
        snap.call_id: snap
        for snap in listed
        if snap.room_leg and root("channel:" + snap.call_id) not in alive
    }


class StrandedLegs:
    """Looks at ``pbx``'s channels every ``every`` seconds and hangs up the room legs
    found stranded at two looks in a row."""

    def __init__(self, pbx: PBX, every: float) -> None:
        self._pbx = pbx
        self._every = every
        self._seen: dict[str, ChannelSnapshot] = {}
        self.hung_up = 0
        """Room legs hung up since the start."""

    async def run(self) -> None:
        """Look every ``every`` seconds until cancelled (never when ``every`` is 0)."""
        if self._every <= 0:
            return
        while True:
            await asyncio.sleep(self._every)
            await self.look()

    async def look(self) -> list[str]:
        """One look: the channels hung up now (stranded at this look and the one before).
        A PBX that cannot list its channels (its link is down) is looked at next time."""
        try:
            found = stranded(await self._pbx.channels())
        except PBXError as exc:
            log.debug("stranded_look_skipped", error=str(exc))
            return []
        again = [snap for uid, snap in found.items() if uid in self._seen]
        self._seen = found
        hung_up = []
        for snap in again:
            try:
                await self._pbx.hangup_channel(snap.call_id)
            except PBXError as exc:
                # The pair's other half went with the first: nothing left to do.
                log.debug("stranded_leg_gone", channel=snap.channel, error=str(exc))
                continue
            hung_up.append(snap.channel)
        if hung_up:
            self.hung_up += len(hung_up)
            log.info(
                "stranded_room_legs_hung_up",
                channels=hung_up,
                rooms=sorted({s.room for s in again} | {s.room_leg for s in again}),
            )
        return hung_up
