"""A/B: CPU per call of two revisions of the daemon, measured in alternation on this machine.

    .venv/bin/python benchmarks/ab.py --base REV [--head REV] [--rounds 3]
        [--script call_throughput.py] [-- SCRIPT ARGS]

A change of a few percent is below the host's run-to-run noise (+-10 %, and its speed
drifts within a session), so one run of each side says nothing. This script exports each
revision with ``git archive`` into a temporary folder (``--head`` left out: the working
tree as it is), then runs this checkout's throughput script (the same harness for both)
with each side's ``callcenter`` package first on ``PYTHONPATH``, ``rounds`` times in the
order A B B A, so that a drift of the host's speed falls on both sides alike. (The harness
reaches into the drivers, ``probes.py``: a base much older than it may not run.) It reads
the ``CPU ms/call`` cell of every daemon row (log level ``warning``) of every table and
prints, per table and offered rate, each side's mean and spread, the change in percent and
its 95 % confidence interval (Welch's t).
An interval that contains 0 means: no change this run can tell apart from noise.

``--count`` compares the Python function calls per call instead (``call_counter.py``): exact
to about +-0.5 %, so one round (the default then) shows a change of a percent or two that
CPU time never could. It counts work, not its cost: a C builtin counts as much as a Python
function.

The script's own arguments follow ``--``; by default ``--rates 100 --seconds 6``. The floor,
info and memory stages are always left out (``--no-floor --no-info-row --hold 0``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO, Table

HERE = Path(__file__).resolve().parent

SCRIPTS = ("call_throughput.py", "call_throughput_freeswitch.py")
COUNTED = re.compile(r"^([\d,]+) function calls per call")
#: Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom.
T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Side:
    label: str
    root: Path


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (anything ``git rev-parse`` takes) written out under ``into``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except subprocess.CalledProcessError:
        raise SystemExit(f"ab.py: {rev!r} is not a revision of {REPO}") from None
    root = into / commit[:12]
    root.mkdir()
    archive = root / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", commit], cwd=REPO, check=True, stdout=out)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    archive.unlink()
    return root


def cpu_cells(output: str) -> dict[tuple[str, str], float]:
    """``(table title, offered/s) -> CPU ms/call`` of the daemon rows in a script's output."""
    found: dict[tuple[str, str], float] = {}
    title = ""
    headers: list[str] = []
    for line in output.splitlines():
        if line.startswith("## "):
            title, headers = line[3:].strip(), []
            continue
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not headers:
            headers = cells
            continue
        row = dict(zip(headers, cells, strict=False))
        cpu = row.get("CPU ms/call", "-")
        if row.get("log level") == "warning" and cpu != "-":
            found[(title, row.get("offered/s", "?"))] = float(cpu)
    return found


def counted_calls(output: str) -> dict[tuple[str, str], float]:
    """``(section, "") -> Python function calls per call`` from a ``--count`` run's output."""
    found: dict[tuple[str, str], float] = {}
    section = ""
    for line in output.splitlines():
        if line.startswith("### "):
            section = line[4:].strip()
        match = COUNTED.match(line)
        if match:
            found[(section, "")] = float(match.group(1).replace(",", ""))
    return found


def run_once(
    side: Side, script: str, args: Sequence[str], *, count: bool
) -> dict[tuple[str, str], float]:
    env = {**os.environ, "PYTHONPATH": str(side.root)}
    # The same harness for both sides: this checkout's script, the side's own package.
    command = [sys.executable, str(HERE / script), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"ab.py: {side.label} ({side.root}) failed: exit {done.returncode}")
    cells = counted_calls(done.stdout) if count else cpu_cells(done.stdout)
    if not cells:
        what = "function calls per call" if count else "'CPU ms/call'"
        raise SystemExit(f"ab.py: no {what} figures in the output of {side.label}")
    return cells


def welch(base: Sequence[float], head: Sequence[float]) -> tuple[float, float, float]:
    """(change %, low %, high %): head's mean against base's, with a 95 % interval."""
    mean_a, mean_b = statistics.fmean(base), statistics.fmean(head)
    var_a = statistics.variance(base) / len(base) if len(base) > 1 else math.nan
    var_b = statistics.variance(head) / len(head) if len(head) > 1 else math.nan
    se = math.sqrt(var_a + var_b)
    if math.isnan(se) or se == 0:
        change = (mean_b / mean_a - 1) * 100
        return change, math.nan, math.nan
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(base) - 1) + var_b**2 / (len(head) - 1))
    t = T975[min(max(int(df), 1), len(T975)) - 1] if df < len(T975) + 1 else 1.96
    diff = mean_b - mean_a
    return diff / mean_a * 100, (diff - t * se) / mean_a * 100, (diff + t * se) / mean_a * 100


def spread(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    digits = 0 if mean >= 100 else 2
    if len(values) == 1:
        return f"{mean:,.{digits}f}"
    return f"{mean:,.{digits}f} +- {statistics.stdev(values):,.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--head", default=None, help="a revision (default: the working tree)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="A B B A rounds (default 3; 1 with --count)"
    )
    parser.add_argument(
        "--count",
        action="store_true",
        help="compare Python function calls per call (exact, see call_counter.py) instead of CPU",
    )
    parser.add_argument("--script", choices=SCRIPTS, default=SCRIPTS[0])
    parser.add_argument("script_args", nargs="*", help="after --: the script's own arguments")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.count else 3
    if args.rounds < 1:
        parser.error("--rounds: give 1 or more")
    script_args = args.script_args or ["--rates", "100", "--seconds", "6"]
    script_args = [*script_args, "--no-floor", "--no-info-row", "--hold", "0"]
    if args.count:
        script_args.append("--count")
    values: dict[str, dict[tuple[str, str], list[float]]] = {
        "base": defaultdict(list),
        "head": defaultdict(list),
    }
    with tempfile.TemporaryDirectory(prefix="callcenter-ab-") as tmp:
        base = Side("base", export(args.base, Path(tmp)))
        head = Side("head", export(args.head, Path(tmp)) if args.head else REPO)
        order = [base, head, head, base]
        for n in range(args.rounds):
            for side in order:
                for key, cpu in run_once(side, args.script, script_args, count=args.count).items():
                    values[side.label][key].append(cpu)
                print(f"round {n + 1}/{args.rounds}: {side.label} done", file=sys.stderr)
    unit = "function calls per call" if args.count else "CPU ms/call"
    table = Table(
        f"A/B: {args.script} {' '.join(script_args)}",
        [
            "table",
            "offered/s",
            f"base {unit}",
            f"head {unit}",
            "runs",
            "change",
            "95 % interval",
        ],
    )
    for key in sorted(values["base"]):
        a, b = values["base"][key], values["head"].get(key, [])
        if not b:
            continue
        change, low, high = welch(a, b)
        interval = "-" if math.isnan(low) else f"{low:+.1f} % .. {high:+.1f} %"
        table.add(key[0], key[1] or "-", spread(a), spread(b), len(a), f"{change:+.1f} %", interval)
    table.notes.append(
        f"base {args.base}, head {args.head or 'the working tree'}; mean +- standard deviation "
        "of the runs; an interval containing 0 is no change this run can tell from noise."
    )
    table.print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
