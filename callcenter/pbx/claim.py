"""One daemon per PBX: a claim kept in a global variable of the PBX.

Two daemons driving one PBX take the same calls twice: on AsyncAGI and FreeSWITCH park both
see every new call and both send it commands; on any transport both ring callbacks and
campaigns. So each daemon marks the PBX as its own before it takes a call:
``CALLCENTER_OWNER`` (Asterisk, a dialplan global set over AMI) or ``callcenter_owner``
(FreeSWITCH, ``global_setvar``) holds ``<id>|<host>|<pid>|<pid namespace>:<process
start>|<unix time>|<refresh>``, and the daemon writes it again every ``refresh`` seconds
while it runs.

A daemon that finds another daemon's mark still fresh does not start: :class:`PBXClaimed`
names the other one (``callcenter run`` exits with status 4; under systemd's
``Restart=on-failure`` it tries again every ``RestartSec``, which makes it a standby that
takes over once the other is gone). A mark is stale once three refreshes were missed (one
from another host must also stay unchanged for one of its refreshes: clocks differ), at
once when it names a process of this host that no longer runs (a crash followed by a
restart on the same machine costs no wait; the process's start time tells a container's
new PID 1 from the one that crashed; a process in another PID namespace of the same host,
a container sharing the host's name, is never judged from here), and never stale when it
is this daemon's own. A mark of this very process (a daemon stopped and started again
in one process, as the tests and ``callcenter soak`` do) is live while one of its daemons
holds it, and stale once that daemon stopped, even if its stop could not reach the PBX to
clear it.
A clean stop clears the mark.

The check and the write are two requests: two daemons started within the same moment can
both find the PBX free, and a daemon cut off from its PBX for three refreshes finds, once
back, that a standby took over. Either way the one whose mark was replaced sees it at its
next refresh (or reconnect), logs ``pbx_claimed_by_another_daemon`` and stops with status 4
(:class:`~callcenter.pbx.interface.PBXClaimLost`); it never fights over the mark.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from callcenter.errors import PBXClaimed, PBXError

log = structlog.get_logger(__name__)

#: Refreshes a mark may miss before another daemon may take the PBX.
MISSED_REFRESHES = 3
#: Longest a start waits to see whether a stale-looking mark of another host still changes
#: (systemd gives a start 60 s).
MAX_CONFIRM_WAIT = 20.0

_HELD: set[str] = set()
"""Owners of the claims this process's daemons hold now (acquired, not let go)."""

ReadGlobal = Callable[[], Awaitable[str]]
WriteGlobal = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ClaimMark:
    """What the PBX's owner variable says: which daemon, where, and since when."""

    owner: str
    host: str
    pid: int
    started: str
    """Which process that is: ``<pid namespace>:<start time in clock ticks since boot>``
    ("": unknown)."""
    stamp: float
    refresh: float

    def text(self) -> str:
        """The variable's value (``|``-separated: host names carry no ``|``)."""
        return (
            f"{self.owner}|{self.host}|{self.pid}|{self.started}|{int(self.stamp)}|{self.refresh:g}"
        )

    @classmethod
    def parse(cls, text: str) -> ClaimMark | None:
        """The mark in ``text``; None for an empty or foreign value (nobody's claim)."""
        parts = text.strip().split("|")
        if len(parts) != 6 or not all(parts[:2]):
            return None
        owner, host, pid, started, stamp, refresh = parts
        try:
            return cls(owner, host, int(pid), started, float(stamp), float(refresh))
        except ValueError:
            return None

    def live(self, now: float, *, host: str) -> bool:
        """Is the daemon that wrote this mark still there, as far as one can tell?"""
        if now - self.stamp > MISSED_REFRESHES * self.refresh + 1:
            return False
        if self.host != host:
            return True
        if self.pid == os.getpid() and self.started == _own_identity():
            return self.owner in _HELD
        return _running(self.pid, self.started)

    def describe(self, now: float) -> str:
        """``pid 4242 on host pbx-a (mark written 3 s ago)``."""
        age = max(0.0, now - self.stamp)
        return f"pid {self.pid} on host {self.host} (mark written {age:.0f} s ago)"


def process_started(pid: int) -> str:
    """The start time of process ``pid`` (``/proc/<pid>/stat`` field 22); "" when it is
    not known (no procfs), "gone" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone" if Path("/proc/self/stat").exists() else ""
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: count after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def pid_space() -> str:
    """This process's PID namespace (its inode number); "" when it is not known."""
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return "".join(c for c in link if c.isdigit())


def process_identity(pid: int) -> str:
    """``<pid namespace>:<start time>`` of process ``pid`` of this namespace ("": not
    known): what tells it from a later process given the same pid."""
    space, started = pid_space(), process_started(pid)
    return f"{space}:{started}" if space and started not in ("", "gone") else ""


def _own_identity() -> str:
    return process_identity(os.getpid())


def _running(pid: int, identity: str) -> bool:
    space, _, started = identity.partition(":")
    if space and space != pid_space():
        return True  # another PID namespace (a container named like this host): not ours to see
    now_started = process_started(pid)
    if now_started == "gone":
        return False
    if now_started and started:
        return now_started == started  # a new process that reuses the pid is not it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it runs
    return True


class PBXClaim:
    """This daemon's claim on a PBX: :meth:`acquire` before taking calls, :meth:`refresh`
    every ``refresh`` seconds, :meth:`release` at stop. The PBX's variable is read and
    written through the callables each call is given (a driver's own link)."""

    def __init__(
        self,
        refresh: float,
        *,
        host: str | None = None,
        pid: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.refresh_interval = refresh
        self.owner = uuid.uuid4().hex
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.started = process_identity(self.pid) if pid is None else ""
        self._clock = clock
        #: The other daemon's mark found over ours by the last refresh (None: ours holds).
        self.taken_by: ClaimMark | None = None

    def mark(self) -> ClaimMark:
        """This daemon's mark, stamped now."""
        return ClaimMark(
            self.owner, self.host, self.pid, self.started, self._clock(), self.refresh_interval
        )

    def _other(self, text: str) -> ClaimMark | None:
        found = ClaimMark.parse(text)
        if found is None or found.owner == self.owner:
            return None
        return found if found.live(self._clock(), host=self.host) else None

    async def acquire(self, read: ReadGlobal, write: WriteGlobal) -> None:
        """Mark the PBX as ours unless another daemon's mark is fresh: then raise
        :class:`PBXClaimed` naming it.

        A mark from another host that looks stale is read again one of its refreshes
        later and taken only if it has not changed: that host's clock may run ahead of
        this one's, and a mark still being refreshed is a daemon still running."""
        text = await read()
        found = ClaimMark.parse(text)
        other: ClaimMark | None = None
        if found is not None and found.owner != self.owner:
            if found.live(self._clock(), host=self.host):
                other = found
            elif found.host != self.host:
                await asyncio.sleep(min(found.refresh + 1, MAX_CONFIRM_WAIT))
                again = await read()
                changed = ClaimMark.parse(again) if again != text else None
                if changed is not None and changed.owner != self.owner:
                    other = changed
        if other is not None:
            raise PBXClaimed(
                f"another callcenter daemon drives this PBX: {other.describe(self._clock())}; "
                "stop it first (this one takes over once its mark is "
                f"{MISSED_REFRESHES * other.refresh:g} s old, or at once if that daemon "
                "ran on this host and is gone)",
                other,
            )
        await write(self.mark().text())
        _HELD.add(self.owner)
        log.info("pbx_claimed", owner=self.owner, host=self.host, pid=self.pid)

    async def refresh(self, read: ReadGlobal, write: WriteGlobal) -> ClaimMark | None:
        """Write the mark again, unless another daemon's fresh mark replaced it: then log
        ``pbx_claimed_by_another_daemon`` (once until it is ours again), leave it and return
        it: the caller stops taking calls (the other one won)."""
        other = self._other(await read())
        if other is not None:
            if self.taken_by is None or self.taken_by.owner != other.owner:
                log.error(
                    "pbx_claimed_by_another_daemon",
                    other=other.describe(self._clock()),
                    hint="two daemons took the same PBX: this one stops",
                )
            self.taken_by = other
            return other
        if self.taken_by is not None:
            log.info("pbx_claim_back", owner=self.owner)
            self.taken_by = None
        await write(self.mark().text())
        return None

    async def refresh_or_report(
        self, read: ReadGlobal, write: WriteGlobal, on_lost: Callable[[str], None]
    ) -> None:
        """:meth:`refresh`; another daemon's mark goes to ``on_lost`` (its description), a
        PBX error is left to the next refresh."""
        try:
            other = await self.refresh(read, write)
        except PBXError as exc:
            log.debug("pbx_claim_not_refreshed", error=str(exc))
            return
        if other is not None:
            on_lost(other.describe(self._clock()))

    async def keep(
        self,
        read: ReadGlobal,
        write: WriteGlobal,
        *,
        connected: Callable[[], bool],
        on_lost: Callable[[str], None],
    ) -> None:
        """Refresh every ``refresh`` seconds while ``connected()``, until cancelled."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            if connected():
                await self.refresh_or_report(read, write, on_lost)

    def let_go(self) -> None:
        """This daemon no longer holds the PBX (its stop): a daemon started later in this
        process may take it at once, whether or not the mark could be cleared."""
        _HELD.discard(self.owner)

    async def release(self, read: ReadGlobal, write: WriteGlobal) -> None:
        """Clear the mark if it is still ours, so that a successor need not wait
        (:meth:`let_go` first: a PBX error here leaves a mark this process knows is gone)."""
        self.let_go()
        found = ClaimMark.parse(await read())
        if found is not None and found.owner == self.owner:
            await write("")
            log.info("pbx_claim_released", owner=self.owner)
