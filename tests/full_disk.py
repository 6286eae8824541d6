"""Whole calls with the record database on a disk that is really full (ENOSPC from the kernel,
SQLITE_FULL from SQLite): run by tests/test_full_disk.py inside ``unshare --map-root-user
--mount``, where a small tmpfs is mounted on ``records`` for this process alone.

    python tests/full_disk.py SCENARIO RECORDS SPARE WORKDIR

prints one JSON object: what the scenario saw (the test asserts on it).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from callcenter.testing import Center, running_center


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its disk says ENOSPC, to the last byte; returns it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


def health(center: Center) -> dict[str, Any]:
    url = f"http://127.0.0.1:{center.daemon.api.port}/health"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return dict(json.loads(answer.read()))


async def records_health(center: Center, *, ok: bool, timeout: float = 10.0) -> dict[str, Any]:
    """/health once its records part says ``ok``."""
    async with asyncio.timeout(timeout):
        while True:
            state = await asyncio.to_thread(health, center)
            if state["records"]["ok"] is ok:
                return state
            await asyncio.sleep(0.05)


async def records_written(center: Center, *, timeout: float = 10.0) -> dict[str, Any]:
    """/health once nothing is left to write (a record made a moment ago, a restart's
    logins, counts as unwritten until its batch commits)."""
    async with asyncio.timeout(timeout):
        while True:
            state = await asyncio.to_thread(health, center)
            if state["records"]["unwritten"] == 0:
                return state
            await asyncio.sleep(0.05)


async def goodbye_call(center: Center, number: str) -> str:
    """A caller who hears the menu and presses 9 (goodbye); their call id."""
    caller = await center.pbx.call("800", caller_num=number)
    await caller.wait_for_prompt("welcome-menu", timeout=5)
    await caller.press("9")
    await caller.wait_ended(timeout=5)
    return str(caller.uniqueid)


async def support_call(center: Center, number: str) -> tuple[str, str]:
    """A caller who talks to the agent and hangs up: (agent channel, call id)."""
    caller = await center.caller_talks_to_an_agent(number)
    await center.idle()
    return str(await caller.wait_bridged(timeout=1)), str(caller.uniqueid)


async def names(folder: Path) -> list[str]:
    return sorted(await asyncio.to_thread(lambda: [p.name for p in folder.iterdir()]))


def config(records: Path) -> dict[str, Any]:
    return {"records": {"cdr_path": str(records / "cdr.sqlite3")}}


async def fills_while_running(records: Path, spare: Path, workdir: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    environ = {"RUNTIME_DIRECTORY": str(spare)}
    async with running_center(workdir, config=config(records), environ=environ) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        first = await goodbye_call(center, "5550001")
        await center.cdr(first)
        filler = fill(records)

        seen["bridged"], _ = await support_call(center, "5550002")
        center.daemon.router.login("1003", via="api")
        center.daemon.router.logout("1003", via="api")
        seen["health_full"] = await records_health(center, ok=False)

        await center.daemon.stop(flush_timeout=1.0)
        seen["beside"] = await names(records)
        seen["spare"] = await names(spare)
        filler.unlink()  # ops free some space and start the daemon again

        daemon = await center.restart()
        seen["spare_after"] = await names(spare)
        seen["cdrs"] = sorted(r["src"] for r in await asyncio.to_thread(daemon.store.fetch_cdrs))
        sessions = await asyncio.to_thread(daemon.store.fetch_agent_sessions)
        seen["sessions"] = [s["agent"] for s in sessions]
        seen["health_after"] = await records_written(center)
    return seen


async def full_at_start(records: Path, spare: Path, workdir: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    filler = fill(records)
    environ = {"RUNTIME_DIRECTORY": str(spare)}
    async with running_center(workdir, config=config(records), environ=environ) as center:
        seen["health_at_start"] = await asyncio.to_thread(health, center)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        seen["bridged"], call_id = await support_call(center, "5550003")
        filler.unlink()
        row = await center.cdr(call_id, timeout=10)
        seen["cdr"] = {k: row[k] for k in ("src", "queue", "agent", "hung_up_by")}
        seen["health_after"] = await records_health(center, ok=True)
    return seen


SCENARIOS = {"fills-while-running": fills_while_running, "full-at-start": full_at_start}


def main() -> None:
    scenario, records, spare, workdir = sys.argv[1:5]
    run = SCENARIOS[scenario]
    seen = asyncio.run(run(Path(records), Path(spare), Path(workdir)))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
