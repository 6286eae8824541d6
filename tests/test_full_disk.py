"""A record database on a disk that is really full: calls go on, nothing is lost.

Each scenario (tests/full_disk.py) runs in a private mount namespace (``unshare
--map-root-user --mount``: no root needed where user namespaces are allowed, as on Debian)
with a 2 MiB tmpfs for the records, filled until the kernel says ENOSPC.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("full_disk.py")


async def run_scenario(name: str, tmp_path: Path) -> dict[str, Any]:
    records, spare, workdir = tmp_path / "records", tmp_path / "run", tmp_path / "etc"
    for folder in (records, spare, workdir):
        folder.mkdir()
    shell = 'mount -t tmpfs -o size=2m,mode=0755 tmpfs "$1" && shift && exec "$@"'
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        shell,
        "sh",
        str(records),
        sys.executable,
        str(SCRIPT),
        name,
        str(records),
        str(spare),
        str(workdir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert process.returncode == 0 and lines, err.decode()[-3000:]
    assert not list(records.iterdir()), "the full disk was the namespace's own"
    return dict(json.loads(lines[-1]))


async def test_a_disk_that_fills_up_costs_no_call_and_no_record(tmp_path: Path) -> None:
    seen = await run_scenario("fills-while-running", tmp_path)
    assert seen["bridged"] == "PJSIP/1002", "the caller reached the agent on a full disk"
    full = seen["health_full"]
    assert full["status"] == "ok", "calls can still be taken"
    assert full["records"]["ok"] is False and "full" in full["records"]["error"]
    assert full["records"]["unwritten"] >= 3, "the CDR, the shift and the presence"
    # The file beside the database found no room either (and left nothing behind): the
    # records went to the spare folder, and the next start wrote them.
    assert seen["beside"] == [
        "cdr.sqlite3",
        "cdr.sqlite3-shm",
        "cdr.sqlite3-wal",
        "cdr.sqlite3.lock",
        "filler",
    ]
    (kept,) = seen["spare"]
    assert kept.startswith("cdr.sqlite3-") and kept.endswith(".unwritten.jsonl")
    assert seen["spare_after"] == []
    assert seen["cdrs"] == ["5550001", "5550002"]
    assert seen["sessions"] == ["1003"]
    health = seen["health_after"]["records"]
    assert {k: v for k, v in health.items() if k != "reports"} == {"ok": True, "unwritten": 0}


async def test_a_daemon_started_on_a_full_disk_takes_calls_and_writes_once_there_is_room(
    tmp_path: Path,
) -> None:
    seen = await run_scenario("full-at-start", tmp_path)
    at_start = seen["health_at_start"]
    assert at_start["status"] == "ok"
    assert at_start["records"]["ok"] is False, "a monitor sees the disk at once"
    assert seen["bridged"] == "PJSIP/1002"
    assert seen["cdr"] == {
        "src": "5550003",
        "queue": "support",
        "agent": "1002",
        "hung_up_by": "caller",
    }
    assert seen["health_after"]["records"]["ok"] is True
