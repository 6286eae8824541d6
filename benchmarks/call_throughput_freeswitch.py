"""Call throughput on FreeSWITCH: whole calls IVR -> queue -> agent over ESL, at rising rates.

    .venv/bin/python benchmarks/call_throughput_freeswitch.py [--quick] [--rates 25,50,100,150]

The FreeSWITCH counterpart of ``call_throughput.py`` (same stages, same columns, same agent
pool). The demo FreeSWITCH (:class:`callcenter.demopbx.freeswitch.DemoFreeSwitch`, a real ESL
server sending events shaped like FreeSWITCH 1.10.12's) runs in a SEPARATE PROCESS
(``pbx_side.py demo --pbx freeswitch``) and offers R new calls/s for ``--seconds`` per stage;
the daemon (``callcenter.daemon.Daemon`` with ``pbx.type: freeswitch``: FreeSwitchDriver,
switchboard, router, CDR recorder with its SQLite writer thread) runs in this process, built
as ``callcenter run`` builds it, logging at ``warning``. Two ways in (``--transports``):

* ``esl-inbound``: the dialplan parks the caller; CHANNEL_PARK on the daemon's inbound event
  socket hands it over and every command is ``sendmsg <uuid>`` / ``api uuid_*`` on that one
  socket (subscribed to the driver's narrow event list);
* ``esl-outbound``: the dialplan runs ``socket ... async full``; the demo FreeSWITCH connects
  to the daemon's outbound-socket server, one TCP connection per call (``connect``,
  ``myevents``, ``linger``, then ``sendmsg`` on that socket).

Each call: the menu prompt plays (``--prompt-seconds``; ``playback`` with terminators), the
caller presses 1, the call joins the ``sales`` queue with music on hold (``endless_playback``),
an agent phone answers after ``--answer-after`` s and hangs up after ``--talk`` s (the daemon
runs ``bridge`` on the caller, with ``origination_uuid`` per leg), the daemon hangs the caller
up (``uuid_kill``) and the CDR is written. The flow is this script's own (a plain menu ->
queue), not the example config's. 400 agents, so nobody waits for one.

Per stage and transport:

* launched/s: calls the PBX process started; completed/s: CallEnded events in the daemon
  during the stage's launch window (the first second skipped as ramp-up);
* daemon p50/p99: the daemon's own time from a reply or event coming off the socket to the
  next command it caused for that channel being written (``probes.ESLProbe``);
* CPU ms/call: this process's CPU time (user + system, all threads) over the stage and its
  drain / calls ended; "other threads" is the part not on the event loop's thread (the CDR
  writer's SQLite work);
* setup p50/p99: PBX side, from the call's start to the caller being bridged;
* PBX CPU %: the demo FreeSWITCH process's CPU over the stage (100 = one core).

An extra stage repeats the first rate with structlog at ``info`` (JSON to a counting sink).
Memory: ``--hold`` calls are held bridged at once; RSS growth and the Python heap
(tracemalloc) per active call. ``--profile`` samples the daemon's stacks during one stage.
The machine has 2 cores; the demo FreeSWITCH runs on the other one and, being Python that
builds and encodes ~5 KB events, costs more per call than the daemon: it caps the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from call_throughput import (
    LineCounter,
    Memory,
    Stage,
    Watch,
    add_rows,
    bench_config,
    hold,
    info_line_cost,
    sample_active,
    thread_cpu,
)
from pbx_side import PBXProcess
from probes import ESLProbe, Sample
from report import Table, machine, ms, percentile
from stack_sampler import StackSampler

from callcenter.config import load_config
from callcenter.daemon import Daemon
from callcenter.log import configure_logging
from callcenter.testing import DEMO_ESL_PASSWORD

TARGET_P99 = 0.005
TARGET_CPU = 0.0015
TRANSPORT_NAMES = {"esl-inbound": "ESL inbound (park)", "esl-outbound": "ESL outbound (socket)"}


def fs_bench_config(esl_port: int, agents: list[str], cdr_path: str) -> dict[str, Any]:
    """``call_throughput.bench_config`` (800 -> menu -> queue ``sales``) on FreeSWITCH."""
    settings = bench_config(0, "fastagi", agents, cdr_path, None)
    settings["pbx"] = {
        "type": "freeswitch",
        "esl": {
            "host": "127.0.0.1",
            "port": esl_port,
            "outbound_listen_host": "127.0.0.1",
            "outbound_listen_port": 0,
        },
    }
    return settings


async def run_transport(
    transport: str, stages: list[tuple[float, str]], args: argparse.Namespace, probe: ESLProbe
) -> tuple[list[Stage], Memory, list[Sample], str]:
    """Run the ramp and the memory hold for one transport."""
    agents = [str(7000 + i) for i in range(args.agents)]
    mode = "outbound" if transport == "esl-outbound" else "inbound"
    pbx = PBXProcess(
        "demo",
        "--pbx",
        "freeswitch",
        "--mode",
        mode,
        "--prompt-seconds",
        str(args.prompt_seconds),
    )
    await pbx.start()
    profile = StackSampler() if args.profile else None
    result = [Stage(rate, label) for rate, label in stages]
    memory = Memory()
    watch = Watch()
    sink = LineCounter()
    roundtrips: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="cc-bench-fs-") as tmp:
        path = Path(tmp) / "callcenter.yaml"
        settings = fs_bench_config(pbx.ready["esl_port"], agents, "cdr.sqlite3")
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
        environ = {"CALLCENTER_ESL_PASSWORD": DEMO_ESL_PASSWORD}
        daemon = Daemon(load_config(path, environ=environ), config_path=path, environ=environ)
        await daemon.start()
        daemon.bus.subscribe(watch.on_event)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_active(daemon, watch, stop))
        try:
            port = daemon.outbound_socket_port
            if mode == "outbound":
                assert port is not None
                await pbx.request({"cmd": "socket_address", "host": "127.0.0.1", "port": port})
            phones = {
                "cmd": "phones",
                "devices": [f"PJSIP/{a}" for a in agents],
                "answer_after": args.answer_after,
                "hangup_after": args.talk,
            }
            await pbx.request(phones)
            # Warm up (imports, caches, the first SQLite writes) before measuring.
            warm = {"cmd": "concurrent", "calls": 10 if args.quick else 20, "concurrency": 5}
            await pbx.request({**warm, "script": "ivr"})
            await asyncio.sleep(0.3)
            # Memory first, while the heap has no slack left by the ramp's peaks.
            if args.hold and not args.quick:
                memory.held, memory.rss_per_call = await hold(
                    daemon, pbx, agents, args.hold, args.hold_seconds, heap=False
                )
            if args.hold:
                memory.held, memory.heap_per_call = await hold(
                    daemon, pbx, agents, args.hold, args.hold_seconds, heap=True
                )
                await pbx.request(phones)
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
                    if profile is not None and index == args.profile_stage:
                        profile.start()
                    stage.start = now
                    stage.cpu, stage.other_cpu = time.process_time(), thread_cpu()[1]
                elif event == "stage_launched":
                    stage.launched_at = now
                elif event == "stage_end":
                    stage.end = now
                    stage.cpu = time.process_time() - stage.cpu
                    stage.other_cpu = thread_cpu()[1] - stage.other_cpu
                    stage.pbx = message
                    if profile is not None and index == args.profile_stage:
                        profile.stop()
                    if stage.label == "info":
                        configure_logging("warning", "json")
                        stage.log_lines = sink.lines
        finally:
            stop.set()
            await sampler
            await daemon.stop()
            await pbx.stop()
    top = max((s for s in result if s.label == "warning"), key=lambda s: s.rate)
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
    roundtrips = [s for s in probe.roundtrips if top.start <= s.at < top.end]
    return result, memory, roundtrips, profile.report(args.top) if profile is not None else ""


NOTES = [
    f"targets: daemon p99 < {TARGET_P99 * 1000:g} ms, <= {TARGET_CPU * 1000:g} ms CPU per call "
    "(the daemon's share).",
    "daemon p50/p99: a reply or event read off the socket -> the next command for that channel "
    "written, measured inside the daemon process (no PBX time in it).",
    "CPU ms/call: the daemon process's CPU (all threads) over the stage and its drain / calls "
    "ended; 'other threads' = the CDR writer thread (SQLite, synchronous=FULL) and the like.",
    "PBX CPU %: the demo FreeSWITCH process (100 = one core). Near 100 the PBX, not the daemon, "
    "caps the rate: the two processes share the machine's 2 cores.",
]


async def main(args: argparse.Namespace) -> None:
    line_cost = info_line_cost()
    probe = ESLProbe()
    probe.install()
    rates = [float(r) for r in args.rates.split(",")]
    stages = [(rate, "warning") for rate in rates]
    if args.info_row:
        stages.append((rates[0], "info"))
    print(f"# Call throughput on FreeSWITCH ({machine()})")
    print(
        f"stages of {args.seconds:g} s at {', '.join(f'{r:g}' for r in rates)} calls/s; "
        f"{args.agents} agents answering after {args.answer_after:g} s, talking {args.talk:g} s; "
        f"prompts {args.prompt_seconds:g} s. Demo FreeSWITCH in its own process; 2 cores shared."
    )
    memory_table = Table(
        "Memory per active call (calls held bridged at once)",
        ["transport", "calls held", "RSS growth KB/call", "Python heap KB/call (tracemalloc)"],
    )
    for transport in args.transports.split(","):
        result, memory, roundtrips, profile_text = await run_transport(
            transport, stages, args, probe
        )
        name = TRANSPORT_NAMES[transport]
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
                "setup p50 ms",
                "setup p99 ms",
                "PBX CPU %",
            ],
        )
        add_rows(table, result, args, line_cost)
        table.notes = list(NOTES)
        top = max((s for s in result if s.label == "warning"), key=lambda s: s.rate)
        worst = sorted(top.by_trigger.items(), key=lambda kv: -percentile(kv[1], 99))[:4]
        table.notes.append(
            f"daemon p99 by trigger at {top.rate:g}/s: "
            + ", ".join(f"{k} {ms(percentile(v, 99))} ms (n={len(v)})" for k, v in worst)
            + f"; {len(top.by_trigger)} kinds, {len(top.gaps) / max(1, top.ended):.1f} "
            "sampled commands per call."
        )
        trips = [s.seconds for s in roundtrips]
        table.notes.append(
            f"round trip at {top.rate:g}/s (command written -> its reply read: the demo "
            f"FreeSWITCH's turnaround plus two loopback hops): p50 {ms(percentile(trips, 50))} / "
            f"p99 {ms(percentile(trips, 99))} ms, {len(trips) / max(1, top.ended):.1f} commands "
            "per call."
        )
        for stage in result:
            if stage.log_lines:
                base = next(s for s in result if s.label == "warning" and s.rate == stage.rate)
                lines = stage.log_lines / max(1, stage.ended)
                table.notes.append(
                    f"info logging: {lines:.1f} lines per call at {line_cost * 1e6:.0f} us CPU "
                    f"each (JSON renderer, measured apart) = {lines * line_cost * 1e3:.2f} ms per "
                    f"call; the info stage measured {stage.cpu / max(1, stage.ended) * 1e3:.2f} "
                    f"vs {base.cpu / max(1, base.ended) * 1e3:.2f} ms at warning."
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
            print(f"\n### Where the daemon's CPU goes ({name}, {rate:g} calls/s)\n")
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under ~20 s)")
    parser.add_argument("--rates", default=None, help="calls/s per stage, e.g. 25,50,100,150")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per stage")
    parser.add_argument("--drain", type=float, default=3.0, help="max wait for a stage's calls")
    parser.add_argument("--transports", default="esl-inbound,esl-outbound")
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--answer-after", type=float, default=0.01)
    parser.add_argument("--talk", type=float, default=0.1)
    parser.add_argument("--prompt-seconds", type=float, default=0.01)
    parser.add_argument("--no-info-row", dest="info_row", action="store_false")
    parser.add_argument("--hold", type=int, default=None, help="calls held for the memory row")
    parser.add_argument("--hold-seconds", type=float, default=None)
    parser.add_argument("--profile", action="store_true", help="sample the daemon's stacks")
    parser.add_argument("--profile-stage", type=int, default=None, help="stage to profile (0..)")
    parser.add_argument("--top", type=int, default=20, help="profile lines to print")
    args = parser.parse_args()
    if args.rates is None:
        args.rates = "50,100" if args.quick else "25,50,100,150"
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 6.0
    if args.hold is None:
        args.hold = 50 if args.quick else min(200, args.agents)
    if args.profile_stage is None:
        args.profile_stage = len(args.rates.split(",")) - 1
    if args.hold_seconds is None:
        args.hold_seconds = 1.0 if args.quick else 3.0
    return args


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse_args()))
