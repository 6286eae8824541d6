"""AGI command latency: the daemon's own share of each AGI exchange, FastAGI and AsyncAGI.

    .venv/bin/python benchmarks/agi_latency.py [--quick]

Every call runs the same script: ``ANSWER``, then ``SET VARIABLE BENCH <i>`` /
``GET VARIABLE BENCH`` ten times, then ``HANGUP`` (22 commands). N calls run at once until
``--calls`` calls are done. The PBX side runs in a separate process (``pbx_side.py``).

Measured in this process (see ``probes.py``): for every command, the time from the moment
the bytes that caused it (the previous result, the environment block, ``AsyncAGIStart``)
came off the socket to the moment the command was written. Rows:

* ``floor, callbacks``: a bare asyncio server/client pair, everything inside
  ``Protocol.data_received`` (no task switch): the absolute floor of asyncio + loopback.
* ``floor, tasks``: a bare asyncio server with one coroutine per call awaiting each result
  (what any asyncio AGI application does): the floor the ratio column is measured against.
* ``ours, bare PBX``: our stack (AsteriskDriver + AsteriskCall + FastAGIServer/AsyncAGIRouter +
  AMIConnection + codecs) against the bare PBX.
* ``ours, demo PBX``: our stack against the demo Asterisk (real AMI events alongside: AGIExec*,
  VarSet, Newstate, ... as Asterisk sends them).

Round trip = command written -> result arrived (the PBX's turnaround plus two loopback hops),
shown to put the daemon's share in proportion; it is not part of the daemon's share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pbx_side import PBXProcess
from probes import AGIProbe, TimedTransport, header, perf
from report import Table, count, machine, ms, percentile, ratio

from callcenter.log import configure_logging
from callcenter.pbx.asterisk.driver import AsteriskDriver, AsteriskSettings
from callcenter.pbx.interface import Call
from callcenter.protocols.agi import format_command
from callcenter.testing import DEMO_SECRET

ROUNDS = 10
COMMANDS = [
    format_command("ANSWER"),
    *[
        line
        for i in range(ROUNDS)
        for line in (
            format_command("SET VARIABLE", "BENCH", str(i)),
            format_command("GET VARIABLE", "BENCH"),
        )
    ],
    format_command("HANGUP"),
]
COMMAND_BYTES = [(c + "\n").encode() for c in COMMANDS]


async def script(call: Call) -> None:
    """The per-call script of our stack: the same lines as ``COMMANDS``."""
    await call.answer()
    for i in range(ROUNDS):
        await call.set_variable("BENCH", str(i))
        await call.get_variable("BENCH")
    await call.hangup()


# ---------------------------------------------------------------------------------------------
# The floors: bare asyncio daemons speaking the same exchange


class _FloorFastAGICallbacks(asyncio.Protocol):
    def __init__(self, probe: AGIProbe) -> None:
        self.probe = probe
        self.buf = b""
        self.env_done = False
        self.next = 0
        self.out: TimedTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.out = TimedTransport(transport, self.probe)

    def data_received(self, data: bytes) -> None:
        assert self.out is not None
        self.out.arrived(perf())
        self.buf += data
        if not self.env_done:
            end = self.buf.find(b"\n\n")
            if end < 0:
                return
            self.env_done = True
            self.buf = self.buf[end + 2 :]
            self._send_next()
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line != b"HANGUP":
                self._send_next()

    def _send_next(self) -> None:
        assert self.out is not None
        if self.next < len(COMMAND_BYTES):
            self.out.write(COMMAND_BYTES[self.next])
            self.next += 1
        else:
            self.out.close()


async def _floor_fastagi_task(
    probe: AGIProbe, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    timed = TimedTransport(writer.transport, probe)
    feed = reader.feed_data

    def feed_data(data: bytes) -> None:
        timed.arrived(perf())
        feed(data)

    reader.feed_data = feed_data  # type: ignore[method-assign]
    writer.write = timed.write  # type: ignore[method-assign]
    await reader.readuntil(b"\n\n")
    for line in COMMAND_BYTES:
        writer.write(line)
        while await reader.readline() == b"HANGUP\n":
            pass
    writer.close()


async def _floor_asyncagi(
    probe: AGIProbe, port: int, tasks: bool, ready: asyncio.Future[None]
) -> None:
    """A bare AsyncAGI client: naive AMI splitting, one coroutine per call when ``tasks``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await reader.readline()
    writer.write(
        b"Action: Login\r\nActionID: 1\r\nUsername: callcenter\r\nSecret: "
        + DEMO_SECRET.encode()
        + b"\r\nEvents: call,agi,dtmf\r\n\r\n"
    )
    if b"Success" not in await reader.readuntil(b"\r\n\r\n"):
        raise RuntimeError("the PBX refused the floor client's login")
    ready.set_result(None)
    probe.wrap_ami_streams(reader, writer)
    loop = asyncio.get_running_loop()
    waiting: dict[bytes, asyncio.Future[bytes]] = {}
    progress: dict[bytes, int] = {}
    running: set[asyncio.Task[None]] = set()
    serial = 0

    def action(channel: bytes, index: int) -> bytes:
        nonlocal serial
        serial += 1
        ident = str(serial).encode()
        return (
            b"Action: AGI\r\nActionID: a"
            + ident
            + b"\r\nChannel: "
            + channel
            + b"\r\nCommand: "
            + COMMANDS[index].encode()
            + b"\r\nCommandID: c"
            + ident
            + b"\r\n\r\n"
        )

    async def session(channel: bytes) -> None:
        for index in range(len(COMMANDS)):
            future = loop.create_future()
            waiting[channel] = future
            writer.write(action(channel, index))
            await future

    buf = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        buf += data
        *blocks, buf = buf.split(b"\r\n\r\n")
        for block in blocks:
            if block.startswith(b"Event: AsyncAGIStart\r\n"):
                channel = header(block, b"Channel")
                probe.asyncagi_event(channel, start=True)
                if tasks:
                    task = asyncio.create_task(session(channel))
                    running.add(task)
                    task.add_done_callback(running.discard)
                else:
                    progress[channel] = 1
                    writer.write(action(channel, 0))
            elif block.startswith(b"Event: AsyncAGIExec\r\n"):
                channel = header(block, b"Channel")
                probe.asyncagi_event(channel, start=False)
                if tasks:
                    future = waiting.pop(channel, None)
                    if future is not None:
                        future.set_result(header(block, b"Result"))
                else:
                    index = progress.pop(channel, len(COMMANDS))
                    if index < len(COMMANDS):
                        progress[channel] = index + 1
                        writer.write(action(channel, index))
    writer.close()


# ---------------------------------------------------------------------------------------------
# Runs


async def run_pbx(
    pbx: PBXProcess, transport: str, agi_port: int, calls: int, n: int
) -> dict[str, Any]:
    """Have the PBX process run ``calls`` calls, ``n`` at a time, into this process."""
    cmd: dict[str, Any] = {"calls": calls, "concurrency": n}
    if pbx.args[0] == "demo":
        if transport == "fastagi":
            await pbx.request({"cmd": "agi_url", "url": f"agi://127.0.0.1:{agi_port}"})
        cmd.update(cmd="concurrent", script="plain")
    else:
        mode = "fastagi" if transport == "fastagi" else "async"
        cmd.update(cmd="run", mode=mode, agi_port=agi_port)
    answer = await pbx.request(cmd, timeout=180)
    if answer.get("failed"):
        print(f"  warning: {answer['failed']} calls failed on the PBX side", file=sys.stderr)
    return answer


async def measure(
    probe: AGIProbe, body: Callable[[], Awaitable[dict[str, Any]]]
) -> tuple[list[float], list[float], dict[str, Any], float]:
    probe.clear()
    cpu0 = time.process_time()
    answer = await body()
    cpu = time.process_time() - cpu0
    gaps = [s.seconds for s in probe.gaps]
    trips = [s.seconds for s in probe.roundtrips]
    return gaps, trips, answer, cpu


async def floor_fastagi(
    probe: AGIProbe, pbx: PBXProcess, tasks: bool, calls: int, n: int
) -> tuple[list[float], list[float], dict[str, Any], float]:
    loop = asyncio.get_running_loop()
    if tasks:
        server = await asyncio.start_server(
            lambda r, w: _floor_fastagi_task(probe, r, w), "127.0.0.1", 0
        )
    else:
        server = await loop.create_server(lambda: _FloorFastAGICallbacks(probe), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await measure(probe, lambda: run_pbx(pbx, "fastagi", port, calls, n))
    finally:
        server.close()


async def floor_asyncagi(
    probe: AGIProbe, pbx: PBXProcess, tasks: bool, calls: int, n: int
) -> tuple[list[float], list[float], dict[str, Any], float]:
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    client = asyncio.create_task(_floor_asyncagi(probe, pbx.ready["ami_port"], tasks, ready))
    await asyncio.wait_for(asyncio.shield(ready), 5)
    try:
        return await measure(probe, lambda: run_pbx(pbx, "asyncagi", 0, calls, n))
    finally:
        client.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await client


async def ours(
    probe: AGIProbe, pbx: PBXProcess, transport: str, calls: int, n: int
) -> tuple[list[float], list[float], dict[str, Any], float]:
    settings = AsteriskSettings(
        ami_port=pbx.ready["ami_port"],
        ami_secret=DEMO_SECRET,
        agi_transport="asyncagi" if transport == "asyncagi" else "fastagi",
        agi_port=0,
    )
    driver = AsteriskDriver(settings)
    await driver.start(script)
    try:
        return await measure(probe, lambda: run_pbx(pbx, transport, driver.agi_port, calls, n))
    finally:
        await driver.stop()


Runner = Callable[[], Awaitable[tuple[list[float], list[float], dict[str, Any], float]]]


def rows_for(
    probe: AGIProbe, pbx: PBXProcess, transport: str, calls: int, n: int
) -> list[tuple[str, Runner]]:
    floor = floor_fastagi if transport == "fastagi" else floor_asyncagi
    return [
        ("floor, callbacks", lambda: floor(probe, pbx, False, calls, n)),
        ("floor, tasks", lambda: floor(probe, pbx, True, calls, n)),
        ("ours", lambda: ours(probe, pbx, transport, calls, n)),
    ]


async def main(args: argparse.Namespace) -> None:
    configure_logging("warning", "json")
    probe = AGIProbe()
    probe.install()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    print(f"# AGI command latency ({machine()})")
    print(
        f"{len(COMMANDS)} commands per call; {args.calls} calls per run ({args.calls_single} when "
        f"N=1), {args.repeats} runs per row pooled; the PBX side runs in its own process."
    )
    bare = PBXProcess("bare")
    await bare.start()
    try:
        for transport in ("fastagi", "asyncagi"):
            demo = PBXProcess("demo", "--agi", "fastagi" if transport == "fastagi" else "async")
            await demo.start()
            name = "FastAGI" if transport == "fastagi" else "AsyncAGI"
            table = Table(
                f"{name}: daemon's share per command (bytes read off the socket -> next command "
                "written), ms",
                [
                    "PBX",
                    "daemon",
                    "N calls",
                    "commands",
                    "p50",
                    "p90",
                    "p99",
                    "max",
                    "p50 vs floor",
                    "p99 vs floor",
                    "round trip p50",
                    "CPU us/cmd",
                    "CPU %",
                    "cmds/s",
                ],
            )
            try:
                plan = [(demo, "demo", n) for n in concurrency]
                plan.append((bare, "bare", max(concurrency)))
                for pbx, pbx_name, n in plan:
                    floor_p50 = floor_p99 = float("nan")
                    calls = args.calls if n > 1 else args.calls_single
                    for row, run in rows_for(probe, pbx, transport, calls, n):
                        gaps: list[float] = []
                        trips: list[float] = []
                        cpu = seconds = 0.0
                        for _ in range(args.repeats):
                            more_gaps, more_trips, answer, more_cpu = await run()
                            gaps += more_gaps
                            trips += more_trips
                            cpu += more_cpu
                            seconds += answer["seconds"]
                        p50, p99 = percentile(gaps, 50), percentile(gaps, 99)
                        if row == "floor, tasks":
                            floor_p50, floor_p99 = p50, p99
                        table.add(
                            pbx_name,
                            row,
                            n,
                            len(gaps),
                            ms(p50),
                            ms(percentile(gaps, 90)),
                            ms(p99),
                            ms(max(gaps) if gaps else float("nan")),
                            ratio(p50, floor_p50) if row == "ours" else "",
                            ratio(p99, floor_p99) if row == "ours" else "",
                            ms(percentile(trips, 50)),
                            f"{cpu / max(1, len(gaps)) * 1e6:.0f}",
                            f"{cpu / seconds * 100:.0f}",
                            count(len(gaps) / seconds),
                        )
            finally:
                await demo.stop()
            table.notes = NOTES
            table.print()
    finally:
        await bare.stop()
        probe.uninstall()


NOTES = [
    "p50/p90/p99/max: the daemon's own time per command, measured inside the daemon process, "
    "pooled over the runs; 'vs floor' = ours / 'floor, tasks' with the same PBX and N.",
    "The exchange is closed-loop: each call sends its next command as soon as the result is in, "
    "so N sets the load and CPU % (the daemon process's CPU over the runs, 100 = one core) shows "
    "it. N=1: one call at a time, nothing to queue behind: the pure per-command path. From N=10 "
    "on, the tails include queueing behind the other calls' results and AMI events. With the "
    "bare PBX (answers at once) the daemon is saturated: cmds/s is its throughput.",
    "round trip: command written -> result arrived (PBX turnaround + loopback), for proportion.",
    "CPU us/cmd: the daemon process's CPU / commands. Ours includes the AMI link and what the "
    "driver does with the demo PBX's AMI events (AGIExecStart/End for every command plus the "
    "call's channel events); the FastAGI floor has no AMI link, the AsyncAGI floor only splits "
    "them.",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under ~20 s)")
    parser.add_argument("--calls", type=int, default=None, help="calls per run")
    parser.add_argument("--calls-single", type=int, default=None, help="calls per run for N=1")
    parser.add_argument("--repeats", type=int, default=None, help="runs per row, pooled")
    parser.add_argument("--concurrency", default=None, help="comma-separated N, e.g. 1,10,100")
    args = parser.parse_args()
    if args.calls is None:
        args.calls = 100 if args.quick else 300
    if args.calls_single is None:
        args.calls_single = 40 if args.quick else 100
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.concurrency is None:
        args.concurrency = "1,20" if args.quick else "1,10,100"
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
