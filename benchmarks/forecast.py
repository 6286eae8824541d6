"""Forecast: what reading a week's forecast costs on a centre's records.

    .venv/bin/python benchmarks/forecast.py [--calls-per-day 2000] [--weeks 4]

A SQLite record database holds ``--weeks`` weeks of queue_log lines of two queues (each
caller: ENTERQUEUE, CONNECT, COMPLETECALLER; 5 % abandon), spread over 08:00-20:00 with a
morning and an afternoon peak. Rows, each the best of 3 runs:

* ``report --queues --by hour`` over the same weeks (``read_queue_figures``: the baseline,
  what ``GET /figures/queues`` costs today);
* ``read_forecast`` by hour, half hour and quarter hour (``callcenter forecast``,
  ``GET /figures/forecast``, the supervisors' forecast page), with agents' schedules, the
  first time (Erlang's figures computed), then as the daemon answers the same week again
  within 10 minutes (the weeks of history kept, Erlang's figures remembered).

``x`` is the ratio to the baseline measured in the same run.

A second table shows what the daemon does meanwhile: one queue_log line submitted to a
:class:`~callcenter.records.writer.RecordWriter` every 10 ms, and the event loop's lag,
while a forecast is read the first time (by half hour), three ways: on the writer's own
thread (as the daemon read before the thirty-first session), on a reading thread with a
connection of its own (``RecordWriter.read``), and in the reports' process
(:class:`~callcenter.records.reports.ReportReader`, as the daemon reads now). The baseline
is the same line written, and the loop's lag, with no read going on.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from report import Table, machine, ratio

from callcenter.config import load_config
from callcenter.records import forecast as forecast_module
from callcenter.records.forecast import ForecastAsked, read_forecast, read_history
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.reports import ReportReader
from callcenter.records.store import SqliteCdrStore
from callcenter.records.summary import Periods, day_start, read_queue_figures
from callcenter.records.writer import RecordWriter

BERLIN = ZoneInfo("Europe/Berlin")


def _lines(first: date, weeks: int, per_day: int) -> list[QueueLogEntry]:
    rng = random.Random(7)
    out: list[QueueLogEntry] = []
    n = 0
    for offset in range(weeks * 7):
        day = first + timedelta(days=offset)
        for _ in range(per_day):
            hour = rng.choice((8, 9, 9, 10, 10, 11, 12, 13, 14, 14, 15, 16, 17, 18, 19))
            start = datetime(day.year, day.month, day.day, hour, rng.randrange(60),
                             rng.randrange(60), tzinfo=BERLIN)  # fmt: skip
            queue = "sales" if rng.random() < 0.4 else "support"
            n += 1
            call = f"c{n}"
            wait = rng.randrange(2, 90)
            out.append(QueueLogEntry(f"k{n}a", start, call, queue, "NONE", "ENTERQUEUE",
                                     ("", "5550100", "1")))  # fmt: skip
            if rng.random() < 0.05:
                out.append(QueueLogEntry(f"k{n}b", start + timedelta(seconds=wait), call, queue,
                                         "NONE", "ABANDON", ("1", "1", str(wait))))  # fmt: skip
                continue
            talk = rng.randrange(30, 600)
            agent = f"Agent/1{rng.randrange(1, 40):03d}"
            answered = start + timedelta(seconds=wait)
            out.append(QueueLogEntry(f"k{n}b", answered, call, queue, agent, "CONNECT",
                                     (str(wait), "", "1")))  # fmt: skip
            ended = answered + timedelta(seconds=talk)
            out.append(QueueLogEntry(f"k{n}c", ended, call, queue, agent, "COMPLETECALLER",
                                     (str(wait), str(talk), "1")))  # fmt: skip
    return out


def _config(folder: Path) -> Path:
    agents = "".join(
        f"  '1{n:03d}': {{name: A{n}, device: PJSIP/1{n:03d}, team: t, "
        "schedule: {hours: {mon-fri: ['08:00-16:30']}}}\n"
        for n in range(1, 40)
    )
    path = folder / "callcenter.yaml"
    path.write_text(
        "pbx: {type: asterisk, ami: {secret: x}}\n"
        "records: {cdr_path: cdr.sqlite3, queue_log: true}\n"
        "ivr: {timezone: Europe/Berlin}\n"
        f"agents:\n{agents}"
        "queues:\n"
        "  sales: {agents: [" + ", ".join(f"'1{n:03d}'" for n in range(1, 20)) + "]}\n"
        "  support: {agents: [" + ", ".join(f"'1{n:03d}'" for n in range(10, 40)) + "]}\n"
    )
    return path


def _best(work: object, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


ROUTES = {
    "writer": "on the record writer's thread (before the thirty-first session)",
    "thread": "on a reading thread with its own connection",
    "process": "in the reports' process (ReportReader, the daemon now)",
}


async def _while_read(
    store: SqliteCdrStore, route: str, config: object, asked: ForecastAsked, rounds: int = 50
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Seconds from submit to durable for queue_log lines, and the event loop's lag (a 1 ms
    sleep's overshoot), on an idle writer, then while a forecast is read by ``route``."""
    reader = store.reader() if route != "writer" else None
    writer = RecordWriter(store, reader=reader)
    await writer.start()
    reports = ReportReader(reader, writer)
    n = 0

    async def one() -> float:
        nonlocal n
        n += 1
        line = QueueLogEntry(f"w{route}{n}", datetime.now(BERLIN), f"w{n}", "sales",
                             "NONE", "ENTERQUEUE", ("", "5550100", "1"))  # fmt: skip
        started = time.perf_counter()
        writer.submit(f"ql:{line.key}", functools.partial(store.write_queue_log, (line,)))
        await writer.wait_written(f"ql:{line.key}", timeout=60)
        return time.perf_counter() - started

    async def lags(until: asyncio.Future[object]) -> list[float]:
        out: list[float] = []
        while not until.done():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            out.append(time.perf_counter() - started - 0.001)
        return out

    def a_forecast(on: SqliteCdrStore) -> None:
        forecast_module._needed.cache_clear()
        read_forecast(on, config, asked)  # type: ignore[arg-type]

    try:
        idle = [await one() for _ in range(rounds)]
        quiet = await lags(asyncio.ensure_future(asyncio.sleep(1)))
        if route == "process":
            reading = asyncio.ensure_future(reports.read(read_forecast, config, asked))
        else:
            reading = asyncio.ensure_future(
                writer.read(functools.partial(a_forecast, reader or store))
                if route == "thread"
                else writer.run(functools.partial(a_forecast, store))
            )
        lagging = asyncio.ensure_future(lags(reading))
        await asyncio.sleep(0.01)
        pending: list[asyncio.Future[float]] = []
        while not reading.done():
            pending.append(asyncio.ensure_future(one()))
            await asyncio.sleep(0.01)
        await reading
        during = list(await asyncio.gather(*pending))
        busy = await lagging
    finally:
        reports.close()
        await writer.close()
    return idle, during, quiet, busy


def _ms(values: list[float]) -> tuple[str, str]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered) * 1000:.1f}", f"{p99 * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls-per-day", type=int, default=2000)
    parser.add_argument("--weeks", type=int, default=4)
    args = parser.parse_args()
    first_week = date(2026, 11, 2)
    today = first_week + timedelta(weeks=args.weeks)
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(str(_config(Path(folder))), environ={"CALLCENTER_AMI_SECRET": "x"})
        store = SqliteCdrStore(Path(folder) / "cdr.sqlite3")
        lines = _lines(first_week, args.weeks, args.calls_per_day)
        for start in range(0, len(lines), 5000):
            store.write_queue_log(tuple(lines[start : start + 5000]))
        levels = {name: q.service_level for name, q in config.queues.items()}
        periods = Periods(day_start(first_week, BERLIN), day_start(today, BERLIN), "hour", BERLIN)
        base = _best(lambda: read_queue_figures(store, periods, levels, fcr_days=1))
        table = Table(
            f"forecast: {args.calls_per_day} callers a day, {args.weeks} weeks "
            f"({len(lines):,} queue_log lines), {machine()}",
            ["reading", "seconds", "x"],
        )
        table.add("report --queues --by hour (baseline)", f"{base:.3f}", ratio(base, base))
        for by in ("hour", "30min", "15min"):
            asked = ForecastAsked(tz=BERLIN, today=today, first=today, weeks=args.weeks, by=by)

            def first_view(asked: ForecastAsked = asked) -> None:
                forecast_module._needed.cache_clear()
                read_forecast(store, config, asked)

            took = _best(first_view)
            table.add(f"read_forecast by {by}", f"{took:.3f}", ratio(took, base))
            history = read_history(store, config, asked)
            again = _best(
                lambda asked=asked, history=history: read_forecast(store, config, asked, history)
            )
            table.add("  again in the daemon (history kept)", f"{again:.3f}", ratio(again, base))
        asked = ForecastAsked(tz=BERLIN, today=today, first=today, weeks=args.weeks, by="30min")
        waits = Table(
            "while a forecast by half hour is read the first time: records written (one"
            " queue_log line every 10 ms, submit to durable) and the event loop's lag",
            [
                "the forecast read",
                "lines",
                "write p50 ms",
                "write p99 ms",
                "x (p99)",
                "loop lag p50 ms",
                "loop lag p99 ms",
            ],
        )
        base_p99 = 0.0
        for route, name in ROUTES.items():
            idle, during, quiet, busy = asyncio.run(_while_read(store, route, config, asked))
            if not base_p99:
                p50, p99 = _ms(idle)
                base_p99 = float(p99)
                waits.add("none (baseline)", str(len(idle)), p50, p99, "x1.00", *_ms(quiet))
            p50, p99 = _ms(during)
            waits.add(name, str(len(during)), p50, p99, ratio(float(p99), base_p99), *_ms(busy))
        store.close()
    table.notes.append("best of 3 runs each (the daemon reads them in its reports' process)")
    table.print()
    waits.notes.append(
        "synchronous=FULL: each line is synced to disk. In a thread of the daemon the read"
        " holds the interpreter lock in 5 ms slices while it folds the lines in Python: the"
        " writer and the event loop (every call's next command) wait for one; the reports'"
        " process has its own (the first report also starts it: spawn, ~0.5 s)"
    )
    waits.print()


if __name__ == "__main__":
    main()
