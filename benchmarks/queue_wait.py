"""Callers waiting in a queue: what the daemon spends on them, with and without exit keys.

    .venv/bin/python benchmarks/queue_wait.py [--quick] [--callers 100] [--seconds 20]

The demo PBX runs in a SEPARATE PROCESS (``pbx_side.py demo``); the daemon runs in this
one, logging at ``warning``. ``--callers`` callers call 800, press 1 and wait in ``sales``,
whose only agent is on a break, for ``--seconds``; the daemon's CPU (this process, every
thread) over that window, per caller-minute, is the figure. The baseline is the same wait
with no exit key on the queue, in the same run on the same transport: then the daemon only
waits on timers. With an exit key (``9``: hang up) it watches for the key, from events:
AMI ``DTMFEnd`` on Asterisk (the AGI's own loop reads the channel while the music
generator plays), the ``DTMF`` events of the music's ``playback`` on FreeSWITCH; no
command is sent. Before the thirty-ninth session it sent a one-second key read after the
other (``WAIT FOR DIGIT``; on FreeSWITCH a ``play_and_get_digits`` of silence that had
stopped the music: "hearing music" says how many callers still heard it at the end of the wait).

The queue makes no announcements (none by default), so the baseline sends nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from call_throughput import bench_config, phones
from call_throughput_freeswitch import fs_bench_config
from pbx_side import PBXProcess
from report import Table, cpu_seconds, event_loop_factory, machine, ratio

from callcenter.config import load_config
from callcenter.daemon import Daemon
from callcenter.events import AgentRinging
from callcenter.log import configure_logging
from callcenter.testing import DEMO_ESL_PASSWORD, DEMO_SECRET

TRANSPORTS = ("fastagi", "asyncagi", "esl-inbound", "esl-outbound")
AGENT = "7000"


def config(transport: str, port: int, exit_keys: bool) -> dict[str, Any]:
    """800 -> menu (1) -> ``sales``, one agent; ``exit_keys``: 9 hangs up."""
    if transport.startswith("esl"):
        settings = fs_bench_config(port, [AGENT], "cdr.sqlite3")
    else:
        settings = bench_config(port, transport, [AGENT], "cdr.sqlite3", None)
    sales = settings["queues"]["sales"]
    sales["max_wait"] = 3600
    if exit_keys:
        sales["exit_keys"] = {"9": "hangup"}
    return settings


def pbx_args(transport: str) -> list[str]:
    if transport == "fastagi":
        return ["--agi", "fastagi"]
    if transport == "asyncagi":
        return ["--agi", "async"]
    mode = "outbound" if transport == "esl-outbound" else "inbound"
    return ["--pbx", "freeswitch", "--mode", mode]


async def run(transport: str, exit_keys: bool, args: argparse.Namespace) -> dict[str, float]:
    """One wait: CPU seconds of the daemon over the window, and callers hearing music."""
    pbx = PBXProcess("demo", *pbx_args(transport), "--prompt-seconds", "0.01")
    await pbx.start()
    try:
        port = pbx.ready["esl_port"] if transport.startswith("esl") else pbx.ready["ami_port"]
        with tempfile.TemporaryDirectory(prefix="cc-bench-wait-") as tmp:
            path = Path(tmp) / "callcenter.yaml"
            path.write_text(yaml.safe_dump(config(transport, port, exit_keys), sort_keys=False))
            environ = {
                "CALLCENTER_ESL_PASSWORD": DEMO_ESL_PASSWORD,
                "CALLCENTER_AMI_SECRET": DEMO_SECRET,
            }
            daemon = Daemon(load_config(path, environ=environ), config_path=path, environ=environ)
            await daemon.start()
            try:
                daemon.router.pause(AGENT, "break")
                if transport == "fastagi":
                    url = f"agi://127.0.0.1:{daemon.agi_port}"
                    await pbx.request({"cmd": "agi_url", "url": url})
                elif transport == "esl-outbound":
                    port = daemon.outbound_socket_port
                    await pbx.request({"cmd": "socket_address", "host": "127.0.0.1", "port": port})
                pbx.send({"cmd": "wait", "calls": args.callers})
                ready = await pbx.receive(timeout=60)
                assert ready.get("event") == "waiting", ready
                await asyncio.sleep(1.0)  # the last callers' music settles
                cpu0, t0 = cpu_seconds(), time.monotonic()
                await asyncio.sleep(args.seconds)
                cpu, seconds = cpu_seconds() - cpu0, time.monotonic() - t0
                music = await pbx.request({"cmd": "music"})
                await pbx.request(phones([AGENT], 10.0, 1.0))
                rung = asyncio.get_running_loop().create_future()
                daemon.bus.subscribe(
                    lambda e: rung.done() or rung.set_result(time.monotonic()), (AgentRinging,)
                )
                back = time.monotonic()
                daemon.router.unpause(AGENT)
                ring = await asyncio.wait_for(rung, 10) - back
                await pbx.request({"cmd": "release"})
                await asyncio.sleep(0.5)
            finally:
                await daemon.stop()
    finally:
        await pbx.stop()
    return {
        "cpu": cpu,
        "seconds": seconds,
        "music": float(music["hearing_music"]),
        "ring": ring,
    }


async def main(args: argparse.Namespace) -> None:
    configure_logging(level="warning", fmt="json", stream=sys.stderr)
    table = Table(
        f"Callers waiting in a queue: {args.callers} callers, {args.seconds:g} s ({machine()})",
        [
            "transport",
            "exit key",
            "daemon CPU ms per caller-minute",
            "vs no key",
            "agent back -> rung, ms",
            "hearing music after the wait",
        ],
    )
    for transport in args.transports.split(","):
        base = 0.0
        for keys in (False, True):
            seen = await run(transport, keys, args)
            per = seen["cpu"] / args.callers / (seen["seconds"] / 60.0)
            if not keys:
                base = per
            table.add(
                transport,
                "9" if keys else "none",
                f"{per * 1000:.2f}",
                ratio(per, base),
                f"{seen['ring'] * 1000:.1f}",
                f"{seen['music']:.0f}/{args.callers}",
            )
    table.notes.append(
        "CPU: this process (the daemon, every thread) over the window, divided by the "
        "callers and the minutes; the baseline (no key) is the daemon's timers alone."
    )
    table.notes.append(
        "Agent back -> rung: after the window the agent comes back from the break; the time "
        "from that to the daemon ringing them for the first caller (one sample)."
    )
    table.print()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--quick", action="store_true", help="20 callers, 5 s")
    args = parser.parse_args()
    if args.quick:
        args.callers, args.seconds = 20, 5.0
    return args


if __name__ == "__main__":
    arguments = parse_args()
    with asyncio.Runner(loop_factory=event_loop_factory("auto")) as runner:
        runner.run(main(arguments))
