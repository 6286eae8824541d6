"""Desktop pages: what the daemon spends serving the agents' and supervisors' desktops.

    .venv/bin/python benchmarks/desktop_pages.py [--pages 2000] [--agents 60]

Each agent's desktop reloads itself every 3 seconds: 100 agents are 33 pages a second,
served by the daemon's event loop between calls. The daemon (demo Asterisk, ``--agents``
agents logged in across two queues, each with a PIN, their calls of the day read from the
records) runs in this process; a client in another process fetches ``--pages`` pages one
after the other over loopback TCP (a new connection each, as a browser's reload does) and
reads the answers whole. Rows:

* ``GET /health``: the smallest JSON answer (the baseline);
* ``GET /wallboard``: the floor's screen (every queue and agent);
* ``GET /desktop`` as an agent: their state, queues, day and today's calls;
* ``GET /desktop`` as a supervisor without teams: every agent and queue.

pages/s is the client's rate; CPU is this process's (the daemon's) CPU time per page, and
``x`` its ratio to ``/health`` measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from report import Table, cpu_seconds, machine, ratio

from callcenter.testing import running_center


def _fetch(port: int, path: str, cookie: str, pages: int, out: Any) -> None:
    async def main() -> None:
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        if cookie:
            head += f"Cookie: cc_desktop={cookie}\r\n"
        request = (head + "\r\n").encode()
        started = time.perf_counter()
        for _ in range(pages):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            answer = await reader.read()
            writer.close()
            if not answer.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"{path}: {answer[:80]!r}")
        out.put(time.perf_counter() - started)

    asyncio.run(main())


async def measure(pages: int, agents: int) -> Table:
    people = {
        f"1{n:03d}": {"name": f"Agent {n}", "device": f"PJSIP/1{n:03d}", "pin": "1111",
                      "logged_in": True}
        for n in range(1, agents + 1)
    }  # fmt: skip
    half = list(people)[: agents // 2]
    config = {
        "agents": people,
        "queues": {"sales": {"agents": half}, "support": {"agents": list(people)}},
        "supervisors": {"2000": {"pin": "2468"}},
    }
    table = Table(
        f"Desktop pages ({agents} agents, {pages} pages a row)",
        ["page", "bytes", "pages/s", "daemon CPU ms/page", "x /health"],
    )
    with tempfile.TemporaryDirectory() as folder:
        async with running_center(Path(folder), config=config) as center:
            api = center.daemon.api
            sessions = api.desktop_sessions
            rows = [
                ("GET /health", "/health", ""),
                ("GET /wallboard", "/wallboard", ""),
                ("GET /desktop, agent", "/desktop", sessions.issue("agent:1001", "1111")),
                ("GET /desktop, supervisor", "/desktop", sessions.issue("supervisor:2000", "2468")),
            ]
            base = 0.0
            for label, path, cookie in rows:
                size = await _size(api.port, path, cookie)
                out: Any = multiprocessing.SimpleQueue()
                client = multiprocessing.Process(
                    target=_fetch, args=(api.port, path, cookie, pages, out)
                )
                cpu = cpu_seconds()
                client.start()
                await asyncio.to_thread(client.join)
                spent = (cpu_seconds() - cpu) / pages
                seconds = out.get()
                base = base or spent
                table.add(
                    label,
                    size,
                    f"{pages / seconds:,.0f}",
                    f"{1000 * spent:.3f}",
                    ratio(spent, base),
                )
    table.notes.append(machine())
    table.notes.append(
        "100 agents reloading every 3 s are 33 desktop pages a second: "
        "33 x the agent row's CPU is the share of one core the desktops take."
    )
    return table


async def _size(port: int, path: str, cookie: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = f"Cookie: cc_desktop={cookie}\r\n" if cookie else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    answer = await reader.read()
    writer.close()
    return len(answer.partition(b"\r\n\r\n")[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(measure(args.pages, args.agents)).print()


if __name__ == "__main__":
    main()
