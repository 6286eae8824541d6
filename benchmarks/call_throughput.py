"""Call throughput: whole calls IVR -> queue -> agent through the daemon, at rising rates.

    .venv/bin/python benchmarks/call_throughput.py [--quick] [--rates 50,100,200,300] [--profile]

The demo Asterisk runs in a SEPARATE PROCESS (``pbx_side.py demo``) and offers R new calls/s
for ``--seconds`` per stage; the daemon (``callcenter.daemon.Daemon``: driver, switchboard,
router, CDR recorder with its SQLite writer thread) runs in this process, built as
``callcenter run`` builds it, logging at ``warning``. Each call: the menu prompt plays
(``--prompt-seconds``), the caller presses 1, the call joins the ``sales`` queue with music on
hold, an agent phone answers after ``--answer-after`` s and hangs up after ``--talk`` s, the
daemon reads the dial's outcome and hangs up, and the CDR is written (5 AGI commands and
about 18 AMI events per call: the AMI Filter, the one-read dial outcome and the music of a
free agent's ring in the Dial itself; 8 and ~45 before).
There are enough agents (400) that no caller waits for a free one: with fewer, a short
hiccup at 300 calls/s holds agents longer, the pool runs dry and calls pile up.

Per stage and transport:

* launched/s: calls the PBX process started; completed/s: CallEnded events in the daemon
  during the stage's launch window (the first second skipped as ramp-up);
* daemon p50/p99: the daemon's own time from a PBX event coming off the socket (result line,
  AsyncAGIExec, environment) to the next AGI command written (``probes.py``);
* CPU ms/call: this process's CPU time (user + system, all threads) over the stage and its
  drain / calls ended; "other threads" is the part not on the event loop's thread (the CDR
  writer's SQLite work);
* setup p50/p99: PBX side, from the call's start to the caller being bridged;
* PBX CPU %: the demo PBX process's CPU over the stage (100 = one core).

An extra stage repeats the first rate with structlog at ``info`` (JSON to a counting sink)
to show what per-call info logging costs. Memory: ``--hold`` calls are held bridged at once
and the RSS growth and the Python heap (tracemalloc) per active call are measured.
``--profile`` samples the daemon's stacks during the top stage (``stack_sampler.py``).
The event loop is the one ``callcenter run`` picks (``runtime.event_loop: auto``: uvloop when
installed); ``--loop asyncio`` measures the standard library's. What-if: ``--ami-events``
(the config's ``pbx.ami.events``).

The machine has 2 cores and the demo PBX, which does about as much work per call as the
daemon, runs on the other one: at the top rates both processes compete for the 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import structlog
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
# --records postgres starts a server as the tests do.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from call_counter import CallCounter
from floor_client import FloorClient
from pbx_side import PBXProcess
from postgres_server import PASSWORD as POSTGRES_PASSWORD
from postgres_server import running_postgres
from probes import AGIProbe
from report import (
    Table,
    event_loop_factory,
    loop_name,
    machine,
    ms,
    percentile,
    rate_list,
    rss_bytes,
)
from stack_sampler import StackSampler

from callcenter.config import load_config
from callcenter.daemon import Daemon
from callcenter.events import AgentConnected, CallEnded, EngineEvent
from callcenter.log import configure_logging
from callcenter.pbx.asterisk.driver import AsteriskDriver, AsteriskSettings
from callcenter.testing import BASE_CONFIG, DEMO_SECRET

TARGET_RATE = 300
TARGET_P99 = 0.005
TARGET_CPU = 0.001


def bench_config(
    ami_port: int, transport: str, agents: list[str], cdr_path: str, ami_events: str | None
) -> dict[str, Any]:
    """A daemon config: 800 -> menu (1 -> sales) -> queue ``sales`` served by ``agents``."""
    ami = {**BASE_CONFIG["pbx"]["ami"], "port": ami_port, "keepalive_interval": 10.0}
    if ami_events is not None:
        ami["events"] = ami_events
    return {
        "pbx": {
            "type": "asterisk",
            "ami": ami,
            "agi": {"transport": transport, "listen_host": "127.0.0.1", "listen_port": 0},
        },
        "api": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "warning", "format": "json"},
        "records": {"cdr_path": cdr_path},
        "routes": {"800": {"flow": "main"}, "default": {"flow": "main"}},
        "flows": {
            "main": {
                "start": "welcome",
                "nodes": {
                    "welcome": {
                        "kind": "menu",
                        "prompt": "welcome-menu",
                        "choices": {"1": "sales"},
                        "timeout": 2.0,
                        "retries": 1,
                        "default": "sales",
                    },
                    "sales": {"kind": "queue", "queue": "sales"},
                },
            }
        },
        "queues": {"sales": {"agents": agents, "ring_timeout": 5, "max_wait": 30}},
        "agents": {
            agent: {"name": f"Agent {agent}", "device": f"PJSIP/{agent}", "logged_in": True}
            for agent in agents
        },
    }


def start_mosquitto(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Debian's mosquitto on a free loopback port, for ``--mqtt``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(500):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return process, port
        time.sleep(0.01)
    raise SystemExit("mosquitto did not start (apt-get install mosquitto)")


def phones(agents: list[str], answer_after: float, hangup_after: float) -> dict[str, Any]:
    """The PBX-side command registering one phone per agent (``PJSIP/<agent>``)."""
    return {
        "cmd": "phones",
        "devices": [f"PJSIP/{a}" for a in agents],
        "answer_after": answer_after,
        "hangup_after": hangup_after,
    }


class LineCounter:
    """A write-only text stream that counts lines (the log sink of the ``info`` stage)."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def info_line_cost(lines: int = 5000) -> float:
    """Seconds one typical per-call info line costs with the production JSON renderer."""
    sink = LineCounter()
    configure_logging("info", "json", stream=sink)  # type: ignore[arg-type]
    try:
        log = structlog.get_logger("callcenter.switchboard").bind(
            call_id="1795337924.1234", channel="PJSIP/5550100-0000abcd", route="inbound"
        )
        start = time.process_time()
        for n in range(lines):
            log.info("queue_joined", queue="sales", position=n)
        return (time.process_time() - start) / lines
    finally:
        configure_logging("warning", "json")


def thread_cpu() -> tuple[float, float]:
    """CPU seconds of (the event loop's thread, every other thread) of this process."""
    main_id = threading.main_thread().native_id
    main = other = 0.0
    for thread in psutil.Process().threads():
        if thread.id == main_id:
            main += thread.user_time + thread.system_time
        else:
            other += thread.user_time + thread.system_time
    return main, other


def kernel_cpu() -> float:
    """CPU seconds this process (all threads) has spent in the kernel: loopback TCP, epoll,
    accept, fsync, sleeping and waking."""
    return os.times().system


@dataclass
class Stage:
    rate: float
    label: str
    start: float = 0.0
    launched_at: float = 0.0
    end: float = 0.0
    cpu: float = 0.0
    other_cpu: float = 0.0
    kernel_cpu: float = 0.0
    log_lines: int = 0
    ami_events: int = 0
    pbx: dict[str, Any] = field(default_factory=dict)
    gaps: list[float] = field(default_factory=list)
    by_trigger: dict[str, list[float]] = field(default_factory=dict)
    completed_per_s: float = 0.0
    ended: int = 0
    peak_active: int = 0


@dataclass
class Memory:
    held: int = 0
    rss_per_call: float = float("nan")
    heap_per_call: float = float("nan")


@dataclass
class Watch:
    """What this process sees while the PBX process ramps."""

    ended: list[float] = field(default_factory=list)
    active: list[tuple[float, int]] = field(default_factory=list)

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, CallEnded):
            self.ended.append(time.perf_counter())


async def sample_active(daemon: Daemon, watch: Watch, stop: asyncio.Event) -> None:
    while not stop.is_set():
        watch.active.append((time.perf_counter(), len(daemon.switchboard.active)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


def on_call(daemon: Daemon) -> int:
    return sum(1 for a in daemon.router.agents.values() if str(a.state) == "on_call")


async def hold(
    daemon: Daemon,
    pbx: PBXProcess,
    agents: list[str],
    count: int,
    seconds: float,
    heap: bool,
    *,
    call_timeout_margin: float = 30.0,
) -> tuple[int, int, float]:
    """Hold ``count`` calls at once (agents talk ``seconds``); (calls bridged, calls the
    daemon had up, bytes grown: Python heap with ``heap``, else RSS)."""
    await pbx.request(phones(agents, 0.01, seconds))
    gc.collect()
    base = rss_bytes()
    if heap:
        tracemalloc.start()
    try:
        pbx.send(
            {
                "cmd": "concurrent",
                "calls": count,
                "concurrency": count,
                "script": "ivr",
                "call_timeout": seconds + call_timeout_margin,
            }
        )
        all_connected = asyncio.Event()
        connected = [0]

        def on_event(event: EngineEvent) -> None:
            if isinstance(event, AgentConnected):
                connected[0] += 1
                if connected[0] >= count:
                    all_connected.set()

        daemon.bus.subscribe(on_event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_connected.wait(), seconds)
        finally:
            daemon.bus.unsubscribe(on_event)
        bridged = on_call(daemon)
        up = len(daemon.switchboard.active)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] if heap else rss_bytes() - base
    finally:
        if heap:
            tracemalloc.stop()
    await pbx.receive(timeout=seconds + 60)
    return bridged, up, grown


async def run_transport(
    transport: str, stages: list[tuple[float, str]], args: argparse.Namespace, probe: AGIProbe
) -> tuple[list[Stage], Memory, str]:
    """Run the ramp and the memory hold for one transport."""
    agents = [str(7000 + i) for i in range(args.agents)]
    pbx = PBXProcess(
        "demo",
        "--agi",
        "fastagi" if transport == "fastagi" else "async",
        "--prompt-seconds",
        str(args.prompt_seconds),
    )
    await pbx.start()
    profile: StackSampler | CallCounter | None = None
    if args.count:
        profile = CallCounter()
    elif args.profile:
        profile = StackSampler()
    profile_stage = args.profile_stage
    result = [Stage(rate, label) for rate, label in stages]
    memory = Memory()
    watch = Watch()
    sink = LineCounter()
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp:
        path = Path(tmp) / "callcenter.yaml"
        settings = bench_config(
            pbx.ready["ami_port"], transport, agents, "cdr.sqlite3", args.ami_events
        )
        broker = None
        postgres = contextlib.ExitStack()
        if args.records == "postgres":
            server = postgres.enter_context(running_postgres())
            settings["records"] = {"postgres": server.new_database()}
            environ_more = {"CALLCENTER_POSTGRES_PASSWORD": POSTGRES_PASSWORD}
        else:
            environ_more = {}
        if args.mqtt != "off":
            broker = start_mosquitto(Path(tmp))
            settings["mqtt"] = {"port": broker[1], "events": args.mqtt == "events"}
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
        environ = {"CALLCENTER_AMI_SECRET": DEMO_SECRET, **environ_more}
        daemon = Daemon(load_config(path, environ=environ), config_path=path, environ=environ)
        await daemon.start()
        daemon.bus.subscribe(watch.on_event)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_active(daemon, watch, stop))
        try:
            if transport == "fastagi":
                await pbx.request({"cmd": "agi_url", "url": f"agi://127.0.0.1:{daemon.agi_port}"})
            ringing = phones(agents, args.answer_after, args.talk)
            await pbx.request(ringing)
            # Warm up (imports, caches, the first SQLite writes) before measuring.
            warm = {"cmd": "concurrent", "calls": 10 if args.quick else 20, "concurrency": 5}
            await pbx.request({**warm, "script": "ivr"})
            await asyncio.sleep(0.3)
            # Memory first, while the heap has no slack left by the ramp's peaks.
            if args.hold and not args.quick:
                memory.held, _, grown = await hold(
                    daemon, pbx, agents, args.hold, args.hold_seconds, heap=False
                )
                memory.rss_per_call = grown / max(1, memory.held)
            if args.hold:
                memory.held, _, grown = await hold(
                    daemon, pbx, agents, args.hold, args.hold_seconds, heap=True
                )
                memory.heap_per_call = grown / max(1, memory.held)
                await pbx.request(ringing)
            probe.clear()
            pbx.send(
                {
                    "cmd": "ramp",
                    "stages": [[rate, args.seconds] for rate, _ in stages],
                    "script": "ivr",
                    "drain": args.drain,
                    "call_timeout": 10,
                }
            )
            while True:
                message = await pbx.receive(timeout=args.seconds + args.drain + 60)
                event = message.get("event")
                if event == "ramp_done":
                    break
                index = message["stage"]
                stage = result[index]
                now = time.perf_counter()
                if event == "stage_start":
                    if stage.label == "info":
                        configure_logging("info", "json", stream=sink)  # type: ignore[arg-type]
                    if profile is not None and index == profile_stage:
                        profile.start()
                    stage.start = now
                    stage.cpu, stage.other_cpu = time.process_time(), thread_cpu()[1]
                    stage.kernel_cpu = kernel_cpu()
                elif event == "stage_launched":
                    stage.launched_at = now
                elif event == "stage_end":
                    stage.end = now
                    stage.cpu = time.process_time() - stage.cpu
                    stage.other_cpu = thread_cpu()[1] - stage.other_cpu
                    stage.kernel_cpu = kernel_cpu() - stage.kernel_cpu
                    stage.pbx = message
                    if profile is not None and index == profile_stage:
                        profile.stop()
                    if stage.label == "info":
                        configure_logging("warning", "json")
                        stage.log_lines = sink.lines
        finally:
            stop.set()
            await sampler
            await daemon.stop()
            await pbx.stop()
            if broker is not None:
                broker[0].terminate()
                broker[0].wait(5)
            postgres.close()
    for stage in result:
        for sample in probe.gaps:
            if stage.start <= sample.at < stage.end:
                stage.gaps.append(sample.seconds)
                stage.by_trigger.setdefault(sample.label, []).append(sample.seconds)
        first, last = stage.start + 1.0, stage.launched_at
        done = [t for t in watch.ended if first <= t < last]
        stage.completed_per_s = len(done) / max(1e-9, last - first)
        stage.ended = sum(1 for t in watch.ended if stage.start <= t <= stage.end)
        during = [n for t, n in watch.active if stage.start <= t <= stage.end]
        stage.peak_active = max(during, default=0)
    return result, memory, profile.report(args.top) if profile is not None else ""


async def floor_stage(
    pbx: PBXProcess, rate: float, args: argparse.Namespace, script: str, counts: Callable[[], Any]
) -> Stage:
    """Warm up, then one stage at ``rate`` of ``script`` calls against a floor client.

    ``counts()`` gives the client's (calls ended, AMI events read) so far; the stage gets
    this process's CPU over the stage and the differences."""
    stage = Stage(rate, "floor")
    await pbx.request({"cmd": "concurrent", "calls": 20, "concurrency": 5, "script": script})
    await asyncio.sleep(0.3)
    pbx.send(
        {
            "cmd": "ramp",
            "stages": [[rate, args.seconds]],
            "script": script,
            "drain": args.drain,
            "call_timeout": 10,
        }
    )
    before = (0, 0)
    while True:
        message = await pbx.receive(timeout=args.seconds + args.drain + 60)
        event = message.get("event")
        if event == "ramp_done":
            break
        now = time.perf_counter()
        if event == "stage_start":
            stage.start, stage.cpu = now, time.process_time()
            stage.kernel_cpu = kernel_cpu()
            before = counts()
        elif event == "stage_launched":
            stage.launched_at = now
        elif event == "stage_end":
            stage.end = now
            stage.cpu = time.process_time() - stage.cpu
            stage.kernel_cpu = kernel_cpu() - stage.kernel_cpu
            ended, events = counts()
            stage.ended, stage.ami_events = ended - before[0], events - before[1]
            stage.pbx = message
    stage.completed_per_s = stage.ended / max(1e-9, stage.end - stage.start)
    return stage


async def run_floor(rate: float, args: argparse.Namespace) -> Stage:
    """One stage at ``rate`` with the bare client of floor_client.py instead of the daemon."""
    agents = [str(7000 + i) for i in range(args.agents)]
    pbx = PBXProcess("demo", "--agi", "fastagi", "--prompt-seconds", str(args.prompt_seconds))
    await pbx.start()
    client = FloorClient(agents)
    # The daemon's own filter, so both read the same events.
    event_filter = AsteriskDriver(AsteriskSettings()).ami.event_filter() or ".*"
    try:
        await client.start(pbx.ready["ami_port"], "callcenter", DEMO_SECRET, event_filter)
        await pbx.request({"cmd": "agi_url", "url": f"agi://127.0.0.1:{client.port}"})
        await pbx.request(phones(agents, args.answer_after, args.talk))
        return await floor_stage(pbx, rate, args, "ivr", lambda: (client.ended, client.events))
    finally:
        await client.stop()
        await pbx.stop()


def add_rows(table: Table, stages: list[Stage], args: argparse.Namespace, line_cost: float) -> None:
    for stage in stages:
        info = stage.pbx
        ended = max(1, stage.ended)
        launched = info["launched"] / max(info["launch_seconds"], args.seconds)
        label = stage.label
        if stage.log_lines:
            lines = stage.log_lines / ended
            label += f" ({lines:.1f} lines/call x {line_cost * 1e6:.0f} us)"
        table.add(
            f"{stage.rate:g}",
            label,
            f"{launched:.0f}",
            f"{stage.completed_per_s:.0f}",
            info["ok"],
            info["failed"],
            stage.peak_active,
            ms(percentile(stage.gaps, 50)),
            ms(percentile(stage.gaps, 99)),
            f"{stage.cpu / ended * 1000:.2f}",
            f"{stage.other_cpu / ended * 1000:.2f}",
            f"{stage.kernel_cpu / ended * 1000:.2f}",
            ms(info["setup_p50"] or float("nan"), 1),
            ms(info["setup_p99"] or float("nan"), 1),
            f"{info['cpu'] / info['seconds'] * 100:.0f}",
        )


async def main(args: argparse.Namespace) -> None:
    line_cost = info_line_cost()
    probe = AGIProbe()
    probe.install()
    rates = [float(r) for r in args.rates.split(",")]
    stages = [(rate, "warning") for rate in rates]
    if args.info_row:
        stages.append((rates[0], "info"))
    print(f"# Call throughput ({machine()}, event loop: {loop_name()})")
    if args.ami_events:
        print(f"VARIANT: AMI events {args.ami_events!r}")
    if args.mqtt != "off":
        print(f"VARIANT: MQTT publishing {args.mqtt} to a local mosquitto")
    if args.records == "postgres":
        print("VARIANT: records in a local PostgreSQL server (fsync off), not SQLite")
    print(
        f"stages of {args.seconds:g} s at {', '.join(f'{r:g}' for r in rates)} calls/s; "
        f"{args.agents} agents answering after {args.answer_after:g} s, talking {args.talk:g} s; "
        f"prompts {args.prompt_seconds:g} s. Demo PBX in its own process; 2 cores shared."
    )
    memory_table = Table(
        "Memory per active call (calls held bridged at once)",
        ["transport", "calls held", "RSS growth KB/call", "Python heap KB/call (tracemalloc)"],
    )
    for transport in args.transports.split(","):
        result, memory, profile_text = await run_transport(transport, stages, args, probe)
        name = "FastAGI" if transport == "fastagi" else "AsyncAGI"
        table = Table(
            f"{name}: calls through IVR -> queue -> agent",
            [
                "offered/s",
                "log level",
                "launched/s",
                "completed/s",
                "ok",
                "failed",
                "peak active",
                "daemon p50 ms",
                "daemon p99 ms",
                "CPU ms/call",
                "of which other threads",
                "of which kernel",
                "setup p50 ms",
                "setup p99 ms",
                "PBX CPU %",
            ],
        )
        add_rows(table, result, args, line_cost)
        table.notes = list(NOTES)
        if transport == "fastagi" and args.floor:
            first = result[0]
            floor = await run_floor(first.rate, args)
            ours_ms = first.cpu / max(1, first.ended) * 1e3
            floor_ms = floor.cpu / max(1, floor.ended) * 1e3
            table.add(
                f"{floor.rate:g}",
                "floor",
                f"{floor.pbx['launched'] / max(floor.pbx['launch_seconds'], args.seconds):.0f}",
                f"{floor.completed_per_s:.0f}",
                floor.pbx["ok"],
                floor.pbx["failed"],
                "-",
                "-",
                "-",
                f"{floor_ms:.2f}",
                "0.00",
                f"{floor.kernel_cpu / max(1, floor.ended) * 1e3:.2f}",
                ms(floor.pbx["setup_p50"] or float("nan"), 1),
                ms(floor.pbx["setup_p99"] or float("nan"), 1),
                f"{floor.pbx['cpu'] / floor.pbx['seconds'] * 100:.0f}",
            )
            table.notes.append(
                f"floor: the same calls at {floor.rate:g}/s driven by a bare asyncio client "
                "(benchmarks/floor_client.py: the daemon's 5 AGI commands per call from protocol "
                "callbacks, the same AMI events split into dicts; no IVR, queue, agents, CDR or "
                f"logging; {floor.ami_events / max(1, floor.ended):.1f} AMI events per call): "
                f"{floor_ms:.2f} ms CPU per call. The daemon: {ours_ms:.2f} ms, "
                f"{ours_ms / max(1e-9, floor_ms):.1f}x the floor on this machine."
            )
        top = max((s for s in result if s.label == "warning"), key=lambda s: s.rate)
        worst = sorted(top.by_trigger.items(), key=lambda kv: -percentile(kv[1], 99))[:4]
        table.notes.append(
            f"daemon p99 by trigger at {top.rate:g}/s: "
            + ", ".join(f"{k} {ms(percentile(v, 99))} ms (n={len(v)})" for k, v in worst)
            + f"; {len(top.by_trigger)} kinds, {len(top.gaps) / max(1, top.ended):.1f} "
            "commands per call."
        )
        for stage in result:
            if stage.log_lines:
                base = next(s for s in result if s.label == "warning" and s.rate == stage.rate)
                lines = stage.log_lines / max(1, stage.ended)
                table.notes.append(
                    f"info logging: {lines:.1f} lines per call at {line_cost * 1e6:.0f} us CPU "
                    f"each (JSON renderer, measured apart) = {lines * line_cost * 1e3:.2f} ms per "
                    f"call; the info stage measured {stage.cpu / max(1, stage.ended) * 1e3:.2f} "
                    f"vs {base.cpu / max(1, base.ended) * 1e3:.2f} ms at warning (stages vary "
                    "by ~10% run to run)."
                )
        table.print()
        if args.hold:
            memory_table.add(
                name,
                memory.held,
                "-" if math.isnan(memory.rss_per_call) else f"{memory.rss_per_call / 1024:.1f}",
                f"{memory.heap_per_call / 1024:.1f}",
            )
        if profile_text:
            rate = stages[args.profile_stage][0]
            heading = CallCounter.title if args.count else "Where the daemon's CPU goes"
            print(f"\n### {heading} ({name}, {rate:g} calls/s)\n")
            print("```")
            print(profile_text)
            print("```")
    if args.hold:
        memory_table.notes = [
            "RSS growth: RSS with the calls held minus RSS just before (after gc); the Python "
            "heap: bytes allocated since the calls started and still live (tracemalloc, a "
            "separate round).",
        ]
        memory_table.print()


#: The notes on the CPU columns, shared with call_throughput_freeswitch.py.
CPU_NOTES = [
    "CPU ms/call: the daemon process's CPU (all threads) over the stage and its drain / calls "
    "ended; 'other threads' = the CDR writer thread (SQLite, synchronous=FULL) and the like.",
    "'of which kernel': the part spent in the kernel (loopback TCP, epoll, accept, the CDR's "
    "fsync), all threads; the floor row's is what the bare client's traffic costs the kernel. "
    "It swings +-50 % between identical runs.",
]

NOTES = [
    f"targets: {TARGET_RATE} calls/s, daemon p99 < {TARGET_P99 * 1000:g} ms, "
    f"<= {TARGET_CPU * 1000:g} ms CPU per call.",
    "daemon p50/p99: PBX event read off the socket -> next AGI command written, measured "
    "inside the daemon process (no PBX time in it).",
    *CPU_NOTES,
    "PBX CPU %: the demo PBX process (100 = one core). Near 100 the PBX, not the daemon, caps "
    "the rate: the two processes share the machine's 2 cores.",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under ~20 s)")
    parser.add_argument(
        "--rates", type=rate_list, default=None, help="calls/s per stage, e.g. 50,100,200,300"
    )
    parser.add_argument("--seconds", type=float, default=None, help="seconds per stage")
    parser.add_argument("--drain", type=float, default=3.0, help="max wait for a stage's calls")
    parser.add_argument("--transports", default="fastagi,asyncagi")
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--answer-after", type=float, default=0.01)
    parser.add_argument("--talk", type=float, default=0.1)
    parser.add_argument("--prompt-seconds", type=float, default=0.01)
    parser.add_argument("--no-info-row", dest="info_row", action="store_false")
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip the bare-client floor row"
    )
    parser.add_argument("--ami-events", default=None, help="what-if: the config's ami.events")
    parser.add_argument(
        "--records",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="what-if: records in a PostgreSQL server the script starts (tests/postgres_server.py)",
    )
    parser.add_argument(
        "--mqtt",
        choices=["off", "figures", "events"],
        default="off",
        help="what-if: live figures (and with events, every engine event) to a mosquitto "
        "the script starts",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="the event loop (auto: as `callcenter run`, uvloop when installed)",
    )
    parser.add_argument("--hold", type=int, default=None, help="calls held for the memory row")
    parser.add_argument("--hold-seconds", type=float, default=None)
    parser.add_argument("--profile", action="store_true", help="sample the daemon's stacks")
    parser.add_argument(
        "--count",
        action="store_true",
        help="count Python function calls per call in the profiled stage (cProfile: exact, slow)",
    )
    parser.add_argument("--profile-stage", type=int, default=None, help="stage to profile (0..)")
    parser.add_argument("--top", type=int, default=20, help="profile lines to print")
    args = parser.parse_args()
    if args.rates is None:
        args.rates = "100,300" if args.quick else "50,100,200,300"
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 8.0
    if args.hold is None:
        args.hold = 50 if args.quick else min(200, args.agents)
    if args.profile_stage is None:
        args.profile_stage = len(args.rates.split(",")) - 1
    if args.hold_seconds is None:
        args.hold_seconds = 1.0 if args.quick else 3.0
    return args


if __name__ == "__main__":
    arguments = parse_args()
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=event_loop_factory(arguments.loop)) as runner,
    ):
        runner.run(main(arguments))
