"""systemd's service notifications: readiness, reload, stop, status and the watchdog.

Under ``Type=notify`` (``systemd/callcenter.service``) systemd gives the daemon a
``NOTIFY_SOCKET``. The daemon says ``READY=1`` once it takes calls (so ``systemctl start``
returns when the PBX is connected, and units ordered after it start then),
``RELOADING=1`` ... ``READY=1`` around a reload, ``STOPPING=1`` when it stops, and keeps a
``STATUS=`` line about the PBX link for ``systemctl status``. With ``WatchdogSec=`` it sends
``WATCHDOG=1`` from its event loop at half that interval: a loop that stops turning gets
the daemon killed and restarted.

The protocol is one datagram of ``KEY=value`` lines to a Unix socket (``@`` at the start of
the path means the abstract namespace), so no library is needed. Outside systemd there is
no ``NOTIFY_SOCKET`` and every call here does nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def notify(*states: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``states`` (``"READY=1"``, ``"STATUS=..."``) to systemd; False when not run by
    systemd or when the socket refused them (logged: a notification is never worth
    failing for)."""
    env = os.environ if environ is None else environ
    path = env.get("NOTIFY_SOCKET", "")
    if not path or not states:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(states).encode(), address)
    except OSError as exc:
        log.warning("systemd_notify_failed", socket=path, error=str(exc))
        return False
    return True


def reloading(environ: Mapping[str, str] | None = None) -> bool:
    """``RELOADING=1`` with the ``MONOTONIC_USEC`` systemd 253+ asks for; ``READY=1`` ends it."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", environ=environ)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between two ``WATCHDOG=1`` (half of ``WatchdogSec=``), or None when systemd
    watches no process, or another one (``WATCHDOG_PID``)."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2_000_000


async def keep_watchdog_fed(interval: float, environ: Mapping[str, str] | None = None) -> None:
    """Send ``WATCHDOG=1`` every ``interval`` seconds until cancelled. It runs on the event
    loop on purpose: only a loop that keeps turning feeds the watchdog."""
    while True:
        notify("WATCHDOG=1", environ=environ)
        await asyncio.sleep(interval)
