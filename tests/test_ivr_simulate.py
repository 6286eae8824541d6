"""``callcenter simulate``: a dry run through a flow on the demo PBX, printed step by step."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path

import yaml

from callcenter.config import load_config
from callcenter.ivr.simulate import simulate
from callcenter.testing import BASE_CONFIG, merge

REPO = Path(__file__).resolve().parents[1]

FLOWS = {
    "front": {
        "start": "hours",
        "nodes": {
            "hours": {
                "kind": "schedule",
                "timezone": "Europe/Berlin",
                "hours": {"mon-fri": ["08:00-18:00"]},
                "holidays": {"country": "DE"},
                "open": "menu",
                "closed": "bye",
                "holiday": "holiday",
            },
            "holiday": {"kind": "hangup", "prompt": "merry-christmas"},
            "menu": {
                "kind": "menu",
                "prompt": "menu",
                "choices": {"1": "account"},
                "timeout": 0.5,
                "retries": 2,
                "default": "bye",
            },
            "account": {
                "kind": "collect",
                "prompt": "enter-account",
                "variable": "account",
                "min_digits": 4,
                "max_digits": 6,
                "timeout": 1,
                "next": "queue",
                "default": "bye",
            },
            "queue": {"kind": "queue", "queue": "support", "priority": 4, "skills": ["billing"]},
            "bye": {"kind": "hangup", "prompt": "goodbye"},
        },
    }
}


def write_config(tmp_path: Path) -> Path:
    settings = merge(BASE_CONFIG, {"routes": {"800": {"flow": "front"}}})
    settings["flows"] = {**settings["flows"], **FLOWS}
    settings["records"] = {"cdr_path": "var/real.sqlite3"}
    path = tmp_path / "callcenter.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


async def test_simulate_prints_nodes_prompts_keys_variables_and_the_end(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), environ={"CALLCENTER_AMI_SECRET": "x"})
    lines: list[str] = []
    result = await asyncio.wait_for(
        simulate(
            config,
            flow="front",
            caller_num="5551234",
            dialed="800",
            presses=["", "1", "4711#"],
            at=datetime(2026, 11, 25, 10, 0),
            out=lines.append,
        ),
        30,
    )
    text = "\n".join(lines)
    assert result.finished
    assert "open (mon-fri 08:00-18:00) on Wed 2026-11-25 10:00 Europe/Berlin" in text
    assert "took nothing: timeout" in text, "the empty group let the menu time out"
    assert 'took "1": choice' in text
    assert "set account = '4711'" in text
    assert result.ended.startswith("queued in support (priority 4, skills: billing)")
    assert result.heard[:2] == ["menu", "please-try-again"]
    assert result.cdr["ivr_path"] == "front:hours>front:menu>1>front:account>4711>front:queue"
    assert not (tmp_path / "var" / "real.sqlite3").exists(), "the real records are untouched"


async def test_simulate_cli_on_a_holiday(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter.cli",
        "simulate",
        str(path),
        "--dialed",
        "800",
        "--caller",
        "5551234",
        "--at",
        "2026-12-25T10:00",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")},
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert 'simulate flow "front": 5551234 dials 800' in text
    assert "holiday (Christmas Day) on Fri 2026-12-25 10:00 Europe/Berlin" in text
    assert "heard: merry-christmas" in text
    assert "end: hung up by system" in text


async def test_simulate_cli_refuses_keys_that_are_not_keys(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter.cli",
        "simulate",
        str(write_config(tmp_path)),
        "--flow",
        "front",
        "--press",
        "1,x",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "not a telephone key: 'x'" in err.decode()
