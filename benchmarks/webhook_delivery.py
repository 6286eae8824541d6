"""Webhook delivery: how many engine events per second one endpoint gets, and at what CPU.

    .venv/bin/python benchmarks/webhook_delivery.py [--events 3000] [--rtt-ms 0,2]

A :class:`~callcenter.live.webhooks.Webhook` delivers ``--events`` AgentConnected events to
an HTTP endpoint on loopback, served by a separate process (``asyncio`` streams, answering
``200`` with an empty body after ``--rtt-ms`` milliseconds, the stand-in for a CRM across a
network). Two rows per delay:

* ``connection: close``: the endpoint closes each connection after its answer, as the
  webhook client used to do itself (one TCP connection per event: the baseline);
* ``kept``: the endpoint keeps the connection, as HTTP/1.1 servers do by default;
* ``kept, batch N``: the same with ``batch: N`` (the events waiting go as one JSON array).

events/s = events / wall time from the first queued event to the last answer; CPU is this
process's (the daemon side's) CPU time per event over the same span.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from datetime import UTC, datetime

from report import Table, cpu_seconds, machine, ratio

from callcenter.config.models import WebhookConfig
from callcenter.events import AgentConnected
from callcenter.live.webhooks import Webhook


def _serve(port_out: multiprocessing.SimpleQueue, close: bool, delay: float) -> None:  # type: ignore[type-arg]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tail = b"Connection: close\r\n" if close else b""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if delay:
                    await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\n" + tail + b"Content-Length: 0\r\n\r\n")
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _deliver(port: int, events: int, batch: int) -> tuple[float, float, int]:
    config = WebhookConfig(
        url=f"http://127.0.0.1:{port}/events",
        events=["AgentConnected"],
        queue_size=events,
        batch=batch,
    )
    hook = Webhook("bench", config)
    await hook.start()
    event = AgentConnected(
        call_id="1733390000.42",
        queue="support",
        agent="1001",
        peer_channel="PJSIP/1001-00000001",
        wait_seconds=4.2,
        ring_seconds=1.1,
        at=datetime.now(UTC),
        mono=time.monotonic(),
    )
    started, cpu = time.perf_counter(), cpu_seconds()
    for _ in range(events):
        hook.on_event(event)
    await hook.close(drain=3600)  # returns once every queued event was answered
    wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    opened = hook.connections
    if hook.failed or hook.dropped:
        raise SystemExit(f"{hook.failed + hook.dropped} events lost: {hook.last_error}")
    return events / wall, used / events * 1e6, opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rtt-ms", default="0,2", help="the endpoint's delay per answer")
    parser.add_argument("--batch", type=int, default=100, help="events per POST, last row")
    args = parser.parse_args()
    table = Table(
        f"Webhook delivery ({machine()})",
        ["endpoint delay ms", "connection", "events/s", "vs close", "CPU us/event", "connections"],
    )
    for delay_ms in (float(x) for x in args.rtt_ms.split(",")):
        base = None
        for close, batch in ((True, 1), (False, 1), (False, args.batch)):
            ports: multiprocessing.SimpleQueue = multiprocessing.SimpleQueue()  # type: ignore[type-arg]
            server = multiprocessing.Process(
                target=_serve, args=(ports, close, delay_ms / 1000), daemon=True
            )
            server.start()
            try:
                rate, cpu_us, opened = asyncio.run(_deliver(ports.get(), args.events, batch))
            finally:
                server.terminate()
                server.join()
            base = rate if base is None else base
            table.add(
                f"{delay_ms:g}",
                "connection: close" if close else "kept" if batch == 1 else f"kept, batch {batch}",
                f"{rate:,.0f}",
                ratio(rate, base),
                f"{cpu_us:.0f}",
                opened,
            )
    table.notes.append(
        f"{args.events} AgentConnected events per row; the endpoint in its own process "
        f"(pid != {os.getpid()}), answering 200 after the delay."
    )
    table.print()


if __name__ == "__main__":
    main()
