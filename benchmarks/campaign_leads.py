"""Campaign lead lists: what a big lead file costs the daemon at a start or reload, and what
choosing the next lead costs per dial.

For N leads (a CSV with ``number``, ``id`` and three more columns, one in ten numbers on the
do-not-call list) it measures, in this process:

* **read**: ``parse_leads`` of the file's text, against the baseline ``list(csv.reader(...))``
  of the same text in the same run (the ratio is what checking and normalising add);
* **prepare** (in a thread) and **install** (on the event loop) of ``Campaign.load``: each
  lead's progress, then the order and the retry heap; at a reload the install also keeps
  every known lead's progress;
* **memory**: Python heap held per lead after the load (tracemalloc);
* **next lead**: ``Campaign._take_due`` for every lead once (the do-not-call ones skipped on
  the way), per lead dialled: the dialler's own cost per dial.

    .venv/bin/python benchmarks/campaign_leads.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import io
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

from callcenter.config import load_config
from callcenter.events import EventBus
from callcenter.log import configure_logging
from callcenter.outbound.campaign import Campaign, LeadCall, LeadLists, LeadStatus
from callcenter.outbound.leads import parse_do_not_call, parse_leads
from callcenter.testing import BASE_CONFIG, merge


class NoDialer:
    pbx_up = True

    async def dial_lead(self, call: LeadCall, reserved: Any) -> str:
        return ""


def lead_file(n: int) -> tuple[str, str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "id", "name", "account", "note"])
    dnc = io.StringIO()
    for i in range(n):
        number = f"+49 30 {1000000 + i}"
        writer.writerow([number, f"c-{i}", f"Customer {i}", f"A-{i % 977}", "renewal due"])
        if i % 10 == 0:
            dnc.write(f"{number}\n")
    return out.getvalue(), dnc.getvalue()


def best(runs: int, fn: Any) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(n: int, folder: Path) -> dict[str, float]:
    text, dnc_text = lead_file(n)
    runs = 5 if n <= 20_000 else 3
    baseline = best(runs, lambda: list(csv.reader(io.StringIO(text))))
    read = best(runs, lambda: parse_leads(text, "leads.csv"))
    leads = parse_leads(text, "leads.csv")
    lists = LeadLists(leads, parse_do_not_call(dnc_text, "dnc.txt"))
    (folder / "leads.csv").write_text("number\n5551001\n")
    settings = {
        "queue": "sales",
        "leads": "leads.csv",
        "dial": "PJSIP/${number}@trunk",
        "allow": ["_+49X."],
    }
    path = folder / "callcenter.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, {"campaigns": {"spring": settings}})))
    config = load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    bus = EventBus()

    def fresh() -> Campaign:
        return Campaign("spring", config, NoDialer(), bus)

    prepare = best(runs, lambda: fresh().prepare(lists))
    install = best(runs, lambda: fresh().install(lists, fresh().prepare(lists))) - prepare
    reload_campaign = fresh()
    reload_campaign.load(lists)
    reinstall = (
        best(runs, lambda: reload_campaign.install(lists, reload_campaign.prepare(lists))) - prepare
    )
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = parse_leads(text, "leads.csv")
    campaign = fresh()
    campaign.load(LeadLists(held, lists.do_not_call))
    heap = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    def take_all() -> int:
        c = fresh()
        c.load(lists)
        now = time.monotonic()
        dialled = 0
        while (lead_id := c._take_due(now)) is not None:
            c.leads[lead_id].move(LeadStatus.DIALING)
            dialled += 1
        return dialled

    dialled = take_all()
    take = best(runs, take_all) - prepare - install
    return {
        "baseline": baseline,
        "read": read,
        "prepare": prepare,
        "install": install,
        "reinstall": reinstall,
        "heap_per_lead": heap / n,
        "per_dial": take / max(1, dialled),
        "dialled": dialled,
    }


async def main(sizes: list[int]) -> None:
    configure_logging("warning", "console")
    print(
        f"# Campaign lead lists (Python {platform.python_version()} on {sys.platform}; "
        f"{time.strftime('%Y-%m-%d %H:%M')})\n"
    )
    print(
        "| leads | csv.reader (baseline) ms | parse_leads ms | ratio | prepare ms (thread) "
        "| install ms (loop) | reload install ms (loop) | heap KB per lead "
        "| next lead us per dial | dialled |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            m = measure(n, Path(tmp))
            print(
                f"| {n:,} | {m['baseline'] * 1000:.1f} | {m['read'] * 1000:.1f} "
                f"| {m['read'] / m['baseline']:.1f}x | {m['prepare'] * 1000:.1f} "
                f"| {m['install'] * 1000:.1f} | {m['reinstall'] * 1000:.1f} "
                f"| {m['heap_per_lead'] / 1024:.2f} | {m['per_dial'] * 1e6:.2f} "
                f"| {int(m['dialled']):,} |"
            )
    print(
        "\n* one lead in ten is on the do-not-call list: `next lead` skips it on the way "
        "(the skip is published as an event, which is in the figure).\n"
        "* at a start and at each reload the file is read and the leads' progress prepared "
        "in a thread; only the install (reload: keeping each known lead's progress) runs on "
        "the event loop, holding calls up for that long."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")]))
