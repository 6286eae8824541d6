"""ESL ingest: how many real FreeSWITCH events per second the daemon's ESL path can take.

    .venv/bin/python benchmarks/esl_ingest.py [--quick] [--profile]

The ``in`` side of the real load run ``i_load.full.jsonl.xz`` from ``shared/traces/freeswitch``
(FreeSWITCH 1.10.12, 240 calls at 8 calls/s, 84 bridged at the peak: the recorded
``auth/request``, the command replies, every event and the answers to the recorder's
``api show calls count`` polling, ``--repeat`` times over) is written at full speed over
loopback TCP by a separate process (``pbx_side.py eslreplay``), twice:

* ``event plain ALL``: everything FreeSWITCH sent in the trace (55 events per call);
* the driver's subscription (``callcenter.pbx.freeswitch.connection.DEFAULT_EVENTS``): only
  the events a FreeSWITCH subscribed that way would have sent (the replay filters the trace by
  ``Event-Name``; about a quarter of the events).

Rows, all in this process:

* ``raw socket``: a blocking ``recv_into`` loop, no parsing (the floor: the ratio column);
* ``raw asyncio stream``: ``StreamReader.read(65536)`` (ESLConnection's transport), no parsing;
* ``codec, framing only`` / ``codec, framing + event decode``: ``ESLParser.feed`` (and
  ``ESLMessage.event`` plus its ``name`` and ``unique_id``, which every consumer reads; the
  other headers are decoded only when read) over the same 64 KB reads from memory (no socket);
* ``ESLConnection``: transport + codec + reply matching + dispatch to one counting listener;
* ``FreeSwitchDriver``: the driver as the daemon runs it (``start``: auth, the subscription,
  the resync), every event through its inbound-event handling plus one counting listener.

Each socket row authenticates and subscribes, sends the polls (whose recorded answers sit in
the stream where they were recorded), then ``api bench go``; events/s = events / wall time
from that command to its answer, which the replay sends after the last event. "CPU" is this
process's CPU time over the same span. The real rate is computed from the trace timestamps.
Target: >= 20x the real rate (about 440 events/s at 84 bridged calls) with ``event plain
ALL``, on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pbx_side import (
    ESL_DONE,
    ESL_GO,
    ESL_POLL,
    ESL_POLLS_PER_PASS,
    ESLTrace,
    PBXProcess,
    load_esl_trace,
)
from report import REPO, Table, count, machine, ratio

from callcenter.log import configure_logging
from callcenter.pbx.freeswitch.connection import DEFAULT_EVENTS, ESLConnection
from callcenter.pbx.freeswitch.driver import FreeSwitchDriver, FreeSwitchSettings
from callcenter.pbx.interface import Call, ChannelHungUp, PBXEvent
from callcenter.protocols.esl import ESLEvent, ESLParser, encode_command

FS_TRACES = REPO.parent / "shared" / "traces" / "freeswitch"
TRACE = FS_TRACES / "i_load.full.jsonl.xz"
TARGET_RATIO = 20
PASSWORD = "bench"
DONE_MARK = ESL_DONE.rstrip(b"\n")


@dataclass(frozen=True)
class Subscription:
    label: str
    names: frozenset[str] | None
    """None: ``ALL``."""

    @property
    def events(self) -> tuple[str, ...]:
        return ("ALL",) if self.names is None else tuple(sorted(self.names))


SUBSCRIPTIONS = [
    Subscription("event plain ALL", None),
    Subscription("driver's subscription (DEFAULT_EVENTS)", frozenset(DEFAULT_EVENTS)),
]


@dataclass(frozen=True)
class RealRate:
    """What FreeSWITCH produced in the trace for one subscription."""

    events: int
    bytes: int
    peak: int
    steady: float
    steady_bytes: float
    steady_seconds: int
    mean_active: float
    duration: float
    max_bridged: int


def real_rate(trace: ESLTrace, names: frozenset[str] | None) -> RealRate:
    """Rates in 1-second bins of the trace. Steady state = the seconds where the ``ALL``
    rate is within 5 % of its peak (8 call setups and 8 teardowns a second, 84 calls up)."""
    everything = [(t, name, len(data)) for t, name, data in trace.items if name]
    all_bins: Counter[int] = Counter(int(t) for t, _, _ in everything)
    top = max(all_bins.values())
    steady_secs = sorted(b for b, n in all_bins.items() if n >= 0.95 * top)
    mine = [e for e in everything if names is None or e[1] in names]
    bins: Counter[int] = Counter()
    byte_bins: Counter[int] = Counter()
    for t, _, size in mine:
        bins[int(t)] += 1
        byte_bins[int(t)] += size
    active = [n for n in bins.values() if n]
    # FreeSWITCH's own count of bridged calls: its answers to `api show calls count`.
    polled = [0]
    for _, name, data in trace.items:
        words = data.partition(b"\n\n")[2].split()
        if not name and words and words[0].isdigit():
            polled.append(int(words[0]))
    return RealRate(
        events=len(mine),
        bytes=sum(size for _, _, size in mine),
        peak=max(bins.values()),
        steady=sum(bins[b] for b in steady_secs) / len(steady_secs),
        steady_bytes=sum(byte_bins[b] for b in steady_secs) / len(steady_secs),
        steady_seconds=len(steady_secs),
        mean_active=sum(active) / len(active),
        duration=mine[-1][0] - mine[0][0],
        max_bridged=max(polled),
    )


class Result:
    def __init__(self, events: int, nbytes: int, seconds: float, cpu: float) -> None:
        self.events = events
        self.bytes = nbytes
        self.seconds = seconds
        self.cpu = cpu

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def mb_rate(self) -> float:
        return self.bytes / self.seconds / 1e6

    @property
    def cpu_rate(self) -> float:
        return self.events / self.cpu if self.cpu > 0 else float("nan")


@dataclass(frozen=True)
class Job:
    """One replay: where, what to subscribe to, what should arrive."""

    port: int
    sub: Subscription
    events: int
    bytes: int
    polls: int


def _go_bytes(job: Job) -> bytes:
    return encode_command(f"api {ESL_POLL}") * job.polls + encode_command(f"api {ESL_GO}")


def _handshake(job: Job) -> bytes:
    return encode_command(f"auth {PASSWORD}") + encode_command(
        "event plain " + " ".join(job.sub.events)
    )


def _check(job: Job, events: int, what: str) -> None:
    if events != job.events:
        print(f"  warning: {what}: {events} events, expected {job.events}", file=sys.stderr)


def _done_events(answer: bytes | str) -> int:
    """The event count the replay reports in its answer to ``api bench go``."""
    text = answer.decode() if isinstance(answer, bytes) else answer
    return int(text.rsplit("events=", 1)[1].split()[0])


async def raw_socket(job: Job) -> Result:
    """Blocking reads in a thread (the GIL is released in recv), until the go answer."""

    def run() -> tuple[float, float, bytes]:
        with socket.create_connection(("127.0.0.1", job.port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(_handshake(job))
            seen = b""
            while seen.count(b"Reply-Text: +OK") < 2:
                seen += sock.recv(4096)
            buf = bytearray(1 << 16)
            cpu0, t0 = time.thread_time(), time.perf_counter()
            sock.sendall(_go_bytes(job))
            tail = b""
            while True:
                n = sock.recv_into(buf)
                if not n:
                    raise RuntimeError("replay closed early")
                tail = (tail + bytes(buf[max(0, n - 128) : n]))[-128:]
                mark = tail.rfind(DONE_MARK)
                if mark >= 0 and tail.endswith(b"\n") and b"bytes=" in tail[mark:]:
                    return time.perf_counter() - t0, time.thread_time() - cpu0, tail[mark:]

    seconds, cpu, answer = await asyncio.to_thread(run)
    _check(job, _done_events(answer), "raw socket")
    return Result(job.events, job.bytes, seconds, cpu)


async def _open_raw(job: Job) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", job.port)
    writer.write(_handshake(job))
    seen = b""
    while seen.count(b"Reply-Text: +OK") < 2:
        seen += await reader.read(4096)
    return reader, writer


async def _read_all(reader: asyncio.StreamReader, keep: list[bytes] | None) -> bytes:
    tail = b""
    while True:
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("replay closed early")
        if keep is not None:
            keep.append(data)
        tail = (tail + data[-128:])[-128:]
        mark = tail.rfind(DONE_MARK)
        if mark >= 0 and tail.endswith(b"\n") and b"bytes=" in tail[mark:]:
            return tail[mark:]


async def raw_stream(job: Job) -> Result:
    reader, writer = await _open_raw(job)
    cpu0, t0 = time.process_time(), time.perf_counter()
    writer.write(_go_bytes(job))
    answer = await _read_all(reader, None)
    result = Result(job.events, job.bytes, time.perf_counter() - t0, time.process_time() - cpu0)
    writer.close()
    _check(job, _done_events(answer), "raw stream")
    return result


async def _received_chunks(job: Job) -> list[bytes]:
    reader, writer = await _open_raw(job)
    writer.write(_go_bytes(job))
    chunks: list[bytes] = []
    await _read_all(reader, chunks)
    writer.close()
    return chunks


async def codec_framing(job: Job) -> Result:
    """Receive everything first, then time ``ESLParser.feed`` over the same reads."""
    chunks = await _received_chunks(job)
    parser = ESLParser()
    cpu0, t0 = time.process_time(), time.perf_counter()
    events = 0
    for chunk in chunks:
        for msg in parser.feed(chunk):
            if msg.content_type == "text/event-plain":
                events += 1
    result = Result(job.events, job.bytes, time.perf_counter() - t0, time.process_time() - cpu0)
    _check(job, events, "codec framing")
    return result


async def codec_decode(job: Job) -> Result:
    """As ``codec_framing``, plus decoding every event (what ESLConnection does) and reading
    the two headers every consumer reads."""
    chunks = await _received_chunks(job)
    parser = ESLParser()
    cpu0, t0 = time.process_time(), time.perf_counter()
    events = 0
    for chunk in chunks:
        for msg in parser.feed(chunk):
            event = msg.event if msg.is_event else None
            if event is not None and event.name:
                _ = event.unique_id  # absent from HEARTBEAT, BACKGROUND_JOB ...
                events += 1
    result = Result(job.events, job.bytes, time.perf_counter() - t0, time.process_time() - cpu0)
    _check(job, events, "codec decode")
    return result


async def _timed(esl: ESLConnection, job: Job, seen: list[int]) -> Result:
    """Send the polls and the go command; time until the go command's answer."""
    seen[0] = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    polls = [asyncio.create_task(esl.api(ESL_POLL, timeout=300)) for _ in range(job.polls)]
    await asyncio.sleep(0)  # every poll is written before the go command
    answer = await esl.api(ESL_GO, timeout=300)
    result = Result(job.events, job.bytes, time.perf_counter() - t0, time.process_time() - cpu0)
    answered = sum(1 for p in await asyncio.gather(*polls) if p)
    if answered != job.polls:
        print(f"  warning: {answered} of {job.polls} polls answered", file=sys.stderr)
    _check(job, seen[0], "dispatched")
    _check(job, _done_events(answer), "replay")
    return result


def _counting(esl: ESLConnection) -> list[int]:
    seen = [0]

    def listener(event: ESLEvent) -> None:
        seen[0] += 1

    esl.add_listener(listener)
    return seen


async def connection_only(job: Job) -> Result:
    esl = ESLConnection(
        "127.0.0.1", job.port, PASSWORD, events=job.sub.events, heartbeat_timeout=600
    )
    seen = _counting(esl)
    await esl.connect()
    try:
        return await _timed(esl, job, seen)
    finally:
        await esl.close()


async def driver_row(job: Job) -> Result:
    settings = FreeSwitchSettings(
        esl_port=job.port,
        esl_password=PASSWORD,
        events=job.sub.events,
        heartbeat_timeout=600,
        outbound_listen_port=None,
    )
    driver = FreeSwitchDriver(settings)
    seen = _counting(driver.esl)
    hung_up = [0]

    def on_pbx_event(event: PBXEvent) -> None:
        if isinstance(event, ChannelHungUp):
            hung_up[0] += 1

    driver.subscribe(on_pbx_event)

    async def handler(call: Call) -> None:
        await call.wait_hangup()

    await driver.start(handler)
    try:
        await asyncio.sleep(0.1)  # the resync after login (show channels / calls) is answered
        result = await _timed(driver.esl, job, seen)
        if driver.active_calls:
            print(f"  note: calls left tracked: {driver.active_calls}", file=sys.stderr)
        if not hung_up[0]:
            print("  warning: the driver published no ChannelHungUp", file=sys.stderr)
        return result
    finally:
        await driver.stop()


Row = tuple[str, Callable[[Job], Awaitable[Result]]]
ROWS: list[Row] = [
    ("raw socket (floor)", raw_socket),
    ("raw asyncio stream", raw_stream),
    ("codec, framing only (ESLParser, from memory)", codec_framing),
    ("codec, framing + event decode (from memory)", codec_decode),
    ("ESLConnection + 1 listener", connection_only),
    ("FreeSwitchDriver (its event handling + 1 listener)", driver_row),
]


async def profile_row(job: Job, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    await driver_row(job)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


async def main(args: argparse.Namespace) -> None:
    configure_logging("warning", "json")
    if not TRACE.is_file():
        print(f"real FreeSWITCH trace not found at {TRACE}: nothing to replay")
        return
    print(f"# ESL ingest ({machine()})")
    trace = load_esl_trace(TRACE)
    polls = sum(1 for _, name, _ in trace.items if not name)
    if polls != ESL_POLLS_PER_PASS:
        print(f"  note: {polls} recorded poll answers per pass", file=sys.stderr)
    reals = {sub.label: real_rate(trace, sub.names) for sub in SUBSCRIPTIONS}
    everything = reals[SUBSCRIPTIONS[0].label]
    driver_rates: dict[str, float] = {}
    async with PBXProcess("eslreplay", "--trace", str(TRACE), "--repeat", str(args.repeat)) as pbx:
        for sub in SUBSCRIPTIONS:
            real = reals[sub.label]
            blast = trace.blast(sub.names)
            job = Job(
                port=pbx.ready["esl_port"],
                sub=sub,
                events=real.events * args.repeat,
                bytes=sum(len(data) for _, _, data in blast) * args.repeat,
                polls=polls * args.repeat,
            )
            table = Table(
                f"{sub.label}: {job.events:,} events ({real.events:,} x {args.repeat}), "
                f"{job.bytes / 1e6:.1f} MB",
                [
                    "row",
                    "events/s",
                    "MB/s",
                    "vs raw socket",
                    "x real rate",
                    "events/CPU-s",
                    "CPU us/event",
                ],
            )
            floor = float("nan")
            driver_cpu = float("nan")
            for label, run in ROWS:
                best: Result | None = None
                for _ in range(args.runs):
                    result = await run(job)
                    if best is None or result.rate > best.rate:
                        best = result
                assert best is not None
                if label.startswith("raw socket"):
                    floor = best.rate
                if label.startswith("FreeSwitchDriver"):
                    driver_rates[sub.label] = best.rate
                    driver_cpu = best.cpu / best.events
                table.add(
                    label,
                    count(best.rate),
                    f"{best.mb_rate:,.1f}",
                    ratio(best.rate, floor),
                    f"x{best.rate / real.steady:,.0f}",
                    count(best.cpu_rate),
                    f"{best.cpu / best.events * 1e6:.1f}",
                )
            table.add(
                f"real rate in the trace (steady state, {real.max_bridged} calls bridged)",
                f"{real.steady:,.0f}",
                f"{real.steady_bytes / 1e6:.2f}",
                "",
                "x1",
                "",
                "",
            )
            table.notes = [
                f"real rate of these events: {real.steady:.0f}/s and {real.steady_bytes / 1e6:.2f} "
                f"MB/s in the {real.steady_seconds} steady seconds (8 setups + 8 teardowns a "
                f"second, up to {real.max_bridged} calls bridged); peak 1-s bin {real.peak}/s; "
                f"mean {real.mean_active:.0f}/s over active seconds; {real.events:,} events, "
                f"{real.bytes / 1e6:.1f} MB in {real.duration:.1f} s.",
                "x real rate = events/s over that steady rate: how many such FreeSWITCHes one "
                f"core keeps up with. At the real rate the driver row needs "
                f"{real.steady * driver_cpu * 100:.1f} % of a core.",
                f"best of {args.runs} runs per row; the replay process runs on the other core.",
            ]
            table.print()
            if args.profile and sub.names is None:
                print("\n### cProfile of the FreeSwitchDriver row, event plain ALL, by own time\n")
                print("```")
                print(await profile_row(job, args.top))
                print("```")
    rate = driver_rates.get(SUBSCRIPTIONS[0].label, float("nan"))
    target = TARGET_RATIO * everything.steady
    print(
        f"\nTarget >= {TARGET_RATIO}x the real rate with event plain ALL "
        f"({target:,.0f} events/s): "
        + ("met" if rate >= target else "NOT met")
        + f" (FreeSwitchDriver {rate:,.0f} events/s = x{rate / everything.steady:,.0f})."
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under ~20 s)")
    parser.add_argument("--repeat", type=int, default=None, help="times the trace is replayed")
    parser.add_argument("--runs", type=int, default=None, help="runs per row (best is kept)")
    parser.add_argument("--profile", action="store_true", help="cProfile the driver row (ALL)")
    parser.add_argument("--top", type=int, default=25, help="profile lines to print")
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    return args


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse_args()))
