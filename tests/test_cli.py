"""The ``callcenter`` command as ops use it: check, run with a wrong secret, report."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml

from callcenter.demopbx import DemoAsterisk
from callcenter.testing import BASE_CONFIG, merge

REPO = Path(__file__).resolve().parents[1]


async def _run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_accepts_the_example_config() -> None:
    code, out, err = await _run_cli(
        "check", "config/callcenter.yaml", env={"CALLCENTER_AMI_SECRET": "x"}
    )
    assert code == 0, err
    assert "OK" in out


async def test_check_prints_file_line_field_for_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = yaml.safe_dump(BASE_CONFIG, sort_keys=False).replace(
        "ring_timeout: 1", "ring_timout: 1", 1
    )
    bad.write_text(text)
    line = next(n for n, text_line in enumerate(text.splitlines(), 1) if "ring_timout" in text_line)
    code, _out, err = await _run_cli("check", str(bad), env={"CALLCENTER_AMI_SECRET": "x"})
    assert code == 1
    assert f"{bad}:{line}: queues.sales.ring_timout" in err
    assert "ring_timeout" in err, "suggests the right field name"


async def test_run_with_wrong_ami_secret_says_so_and_exits_2(tmp_path: Path) -> None:
    pbx = DemoAsterisk(ami_secret="the-right-one", login_failure_delay=0.05)
    await pbx.start()
    try:
        cfg = merge(BASE_CONFIG, {"pbx": {"ami": {"port": pbx.ami_port}}})
        path = tmp_path / "cc.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        code, _out, err = await _run_cli(
            "run", str(path), env={"CALLCENTER_AMI_SECRET": "wrong-secret"}
        )
    finally:
        await pbx.stop()
    assert code == 2
    assert "authentication" in err.lower() or "refused" in err.lower()
    assert "wrong-secret" not in err, "the secret never reaches the terminal"


async def test_run_with_unreadable_config_exits_1(tmp_path: Path) -> None:
    code, _out, err = await _run_cli("run", str(tmp_path / "missing.yaml"))
    assert code == 1
    assert "missing.yaml" in err
