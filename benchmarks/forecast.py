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

The daemon reads it on its record writer's thread: while it runs, records wait (they are
queued, not lost). ``x`` is the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import random
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
from callcenter.records.store import SqliteCdrStore
from callcenter.records.summary import Periods, day_start, read_queue_figures

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
        store.close()
    table.notes.append("best of 3 runs each, on the record writer's thread in the daemon")
    table.print()


if __name__ == "__main__":
    main()
