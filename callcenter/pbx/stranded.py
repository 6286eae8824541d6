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

The agents in those rooms are :class:`LeftRooms`' business: an agent's own leg an earlier
daemon left in their line's room (``line-<agent>``) or their own dial's (``dial-<agent>``)
stays there in silence once the person they talked to hangs up. The next daemon finds
them at its start and, once alone, does what the earlier one would have: a line goes
through its extension again (``*70``: the agent is asked their PIN and is on a line of
this daemon), a dial's agent is hung up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from typing import Any, Final

import structlog

from callcenter.errors import PBXError
from callcenter.pbx.interface import PBX, ChannelSnapshot

log = structlog.get_logger(__name__)

ROOM_LEG_ROOMS: Final = ("dial-", "line-")
"""The rooms the daemon dials room devices into (agents' own dials and open lines); a
room device into any other room (the PBX admin's own) is a person's business."""


def _groups(listed: list[ChannelSnapshot]) -> dict[str, str]:
    """Each channel's group (by call id): channels joined by room membership, bridges and
    the two halves of a room device share one."""
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
    return {snap.call_id: root("channel:" + snap.call_id) for snap in listed}


def _nobody(snap: ChannelSnapshot) -> bool:
    """Is ``snap`` a half of one of the daemon's room devices, sitting in a room?"""
    return bool(snap.room) and snap.room_leg.startswith(ROOM_LEG_ROOMS)


def stranded(snapshots: Iterable[ChannelSnapshot]) -> dict[str, ChannelSnapshot]:
    """The room-device halves (by channel id) that no person can reach: see the module
    docstring."""
    listed = list(snapshots)
    group = _groups(listed)
    # A group with anyone else in it (a person, a leg on its way somewhere, a room
    # device of someone else's) is somebody's call.
    alive = {group[snap.call_id] for snap in listed if not _nobody(snap)}
    return {
        snap.call_id: snap for snap in listed if snap.room_leg and group[snap.call_id] not in alive
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


LINE_ROOM: Final = "line-"
"""The rooms of agents' open lines (:mod:`callcenter.line`)."""
LEFT_LOOK_EVERY: Final = 1.0
"""Seconds between :class:`LeftRooms`' looks."""


class LeftRooms:
    """Agents an earlier daemon left in their own rooms (see the module docstring).

    The first look that the PBX answers, after the start, finds them: a channel of a
    person (not a room-device half) in an agent's ``line-`` or ``dial-`` room
    (``agent_room``), which no call of this daemon (``controlled()``, call ids) is. Those
    rooms are looked at every ``every`` seconds; once nobody is within the agent's reach
    at two looks in a row, a line's channel is sent through its own extension again and a
    dial's hung up; an agent who hangs up first is forgotten. Once none is left, it looks
    no more until :meth:`watch` gives it another."""

    def __init__(
        self,
        pbx: PBX,
        controlled: Callable[[], Collection[str]],
        *,
        agent_room: Callable[[str], bool] | None = None,
        every: float = LEFT_LOOK_EVERY,
    ) -> None:
        self._pbx = pbx
        self._controlled = controlled
        self._agent_room = agent_room or (lambda room: room.startswith(ROOM_LEG_ROOMS))
        """Is a room an agent's line or dial room (not a conference of the PBX admin's
        that happens to be named ``line-...``)?"""
        self._every = every
        self._found = False
        self._rooms: dict[str, str] = {}
        """The call id of the agent's channel, by the room it was left in."""
        self._alone: set[str] = set()
        """The rooms whose agent was alone at the last look."""
        self._wake = asyncio.Event()
        self.taken_back = 0
        """Lines sent through their extension again since the start."""
        self.hung_up = 0
        """Dials' agents hung up since the start."""

    @property
    def watched(self) -> list[str]:
        """The rooms still looked at (the first look not done yet: none)."""
        return sorted(self._rooms)

    def watch(self, room: str, call_id: str) -> None:
        """Look after channel ``call_id`` in ``room`` from now on, as after one left by an
        earlier daemon (a call of this daemon's that left its control)."""
        self._rooms[room] = call_id
        self._alone.discard(room)
        self._wake.set()

    async def run(self) -> None:
        """Look every ``every`` seconds while someone is left (or :meth:`watch` ed), until
        cancelled."""
        while True:
            await self.look()
            if self._found and not self._rooms:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self._every)

    async def look(self) -> list[str]:
        """One look: the rooms whose agent was sent on or hung up now. A PBX that cannot
        list its channels (its link is down) is looked at next time."""
        try:
            snapshots = await self._pbx.channels()
        except PBXError as exc:
            log.debug("left_rooms_look_skipped", error=str(exc))
            return []
        if not self._found:
            self._found = True
            self._find(snapshots)
        group = _groups(snapshots)
        by_id = {snap.call_id: snap for snap in snapshots}
        done: list[tuple[str, ChannelSnapshot, list[ChannelSnapshot]]] = []
        for room, call_id in list(self._rooms.items()):
            agent = by_id.get(call_id)
            if agent is None or agent.room != room:
                log.info("left_agent_gone", room=room)
                del self._rooms[room]
                self._alone.discard(room)
                continue
            others = [
                snap
                for snap in snapshots
                if group[snap.call_id] == group[call_id] and snap.call_id != call_id
            ]
            # Anyone else within reach (the person they talk to, a leg on its way): later.
            if not all(_nobody(snap) for snap in others):
                self._alone.discard(room)
                continue
            if room not in self._alone:
                self._alone.add(room)
                continue
            del self._rooms[room]
            self._alone.discard(room)
            done.append((room, agent, others))
        return [room for room, agent, halves in done if await self._finish(room, agent, halves)]

    def _find(self, snapshots: list[ChannelSnapshot]) -> None:
        ours = set(self._controlled())
        for snap in snapshots:
            # The cheap tests first: most channels sit in no room of ours.
            if (
                not snap.room_leg
                and snap.room.startswith(ROOM_LEG_ROOMS)
                and snap.call_id not in ours
                and snap.room not in self._rooms
                and self._agent_room(snap.room)
            ):
                self._rooms[snap.room] = snap.call_id
        if self._rooms:
            log.info("left_agents_found", rooms=sorted(self._rooms))

    async def _finish(
        self, room: str, agent: ChannelSnapshot, halves: list[ChannelSnapshot]
    ) -> bool:
        """Send the agent on (a line) or hang them up (a dial), and the room devices left
        with them (stranded once they are gone)."""
        try:
            if room.startswith(LINE_ROOM):
                await self._pbx.redirect_channel(agent.call_id, agent.context, agent.exten)
            else:
                await self._pbx.hangup_channel(agent.call_id)
        except PBXError as exc:
            log.warning(
                "left_agent_not_taken_back", room=room, channel=agent.channel, error=str(exc)
            )
            return False
        if room.startswith(LINE_ROOM):
            self.taken_back += 1
            log.info(
                "left_line_taken_back",
                room=room,
                channel=agent.channel,
                context=agent.context,
                exten=agent.exten,
            )
        else:
            self.hung_up += 1
            log.info("left_dial_hung_up", room=room, channel=agent.channel)
        for half in halves:
            try:
                await self._pbx.hangup_channel(half.call_id)
            except PBXError as exc:
                log.debug("stranded_leg_gone", channel=half.channel, error=str(exc))
        return True


def left_behind(left: LeftRooms | None, legs: StrandedLegs | None) -> dict[str, Any]:
    """What this daemon found left by an earlier one (``/status``, metrics): the agents'
    rooms still looked after (``rooms_watched``), the lines sent through their extension
    again and the dials' agents hung up since the start, and the stranded room legs hung
    up (``room_legs_hung_up``)."""
    return {
        "rooms_watched": left.watched if left is not None else [],
        "lines_taken_back": left.taken_back if left is not None else 0,
        "dials_hung_up": left.hung_up if left is not None else 0,
        "room_legs_hung_up": legs.hung_up if legs is not None else 0,
    }
