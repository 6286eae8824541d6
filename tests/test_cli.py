"""The ``callcenter`` command as ops use it: check, run with a wrong secret, report."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.demopbx import DemoAsterisk
from callcenter.errors import RecordError
from callcenter.records.cdr import CdrRecord
from callcenter.records.lock import RecordLock, holder
from callcenter.records.rescue import RecordRescue
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import BASE_CONFIG, merge, running_center

REPO = Path(__file__).resolve().parents[1]


async def _run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30, clear: bool = False
) -> tuple[int, str, str]:
    """Run ``python -m callcenter.cli ARGS`` from the repository; ``clear``: with ``env``
    alone instead of the test's environment plus ``env``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env or {}) if clear else {**os.environ, **(env or {})},
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


@pytest.mark.parametrize("taken", ["api", "fastagi"])
async def test_run_with_a_port_already_taken_says_which_and_exits_4(
    tmp_path: Path, taken: str
) -> None:
    pbx = DemoAsterisk(ami_secret="demo-secret", login_failure_delay=0.05)
    busy = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = busy.sockets[0].getsockname()[1]
    try:
        await pbx.start()
        where = {"api": {"port": port}} if taken == "api" else {}
        if taken == "fastagi":
            where = {"pbx": {"agi": {"listen_port": port}}}
        cfg = merge(merge(BASE_CONFIG, {"pbx": {"ami": {"port": pbx.ami_port}}}), where)
        path = tmp_path / "cc.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        code, _out, err = await _run_cli(
            "run", str(path), env={"CALLCENTER_AMI_SECRET": "demo-secret"}
        )
        logins = sum(e.name == "SuccessfulAuth" for e in pbx.event_log)
        mark = pbx.global_vars.get("CALLCENTER_OWNER", "")
    finally:
        busy.close()
        await pbx.stop()
    assert code == 4, err
    assert mark == "", "a start that failed leaves no claim for a standby to wait out"
    what = "the control API" if taken == "api" else "FastAGI"
    assert f"cannot listen for {what} on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
    if taken == "api":
        assert logins == 0, "the CLI's port is bound before any call can be taken"


async def test_run_with_a_record_database_it_cannot_open_says_so_and_exits_4(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    cfg = merge(BASE_CONFIG, {"records": {"cdr_path": str(blocker / "cdr.sqlite3")}})
    path = tmp_path / "cc.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    code, _out, err = await _run_cli("run", str(path), env={"CALLCENTER_AMI_SECRET": "x"})
    assert code == 4, err
    assert f"cannot open record database {blocker / 'cdr.sqlite3'}" in err
    assert "Traceback" not in err


async def test_a_second_daemon_on_the_same_records_is_refused_and_exits_4(
    tmp_path: Path,
) -> None:
    """Two daemons on one PBX would take every AsyncAGI or parked FreeSWITCH call twice: a
    second ``callcenter run`` of the same config names the one already running."""
    async with running_center(tmp_path, transport="asyncagi") as center:
        database = center.daemon.store.path
        assert holder(database) == os.getpid()
        before = sum(e.name == "SuccessfulAuth" for e in center.pbx.event_log)
        code, _out, err = await _run_cli(
            "run", str(center.config_path), env={"CALLCENTER_AMI_SECRET": "demo-secret"}
        )
        logins = sum(e.name == "SuccessfulAuth" for e in center.pbx.event_log) - before
    assert code == 4, err
    assert f"record database {database} is in use by another callcenter daemon" in err
    assert f"(pid {os.getpid()})" in err
    assert "Traceback" not in err
    assert logins == 0, "refused before it logged in to the PBX"
    assert holder(database) is None, "the lock went with the daemon"


async def test_a_second_daemon_on_the_same_pbx_is_refused_and_exits_4(tmp_path: Path) -> None:
    """Another config (its own records) against the PBX a daemon already drives: refused
    before it takes anything, naming the first one; systemd retries it every RestartSec,
    so it takes over once the first one is gone."""
    async with running_center(tmp_path, transport="esl-inbound") as center:
        settings = yaml.safe_load(center.config_path.read_text())
        settings["records"]["cdr_path"] = str(tmp_path / "other" / "cdr.sqlite3")
        other = tmp_path / "other.yaml"
        other.write_text(yaml.safe_dump(settings, sort_keys=False))
        code, _out, err = await _run_cli(
            "run", str(other), env={"CALLCENTER_ESL_PASSWORD": center.pbx.password}
        )
    assert code == 4, err
    assert "another callcenter daemon drives this PBX" in err
    assert f"pid {os.getpid()} on host " in err
    assert "Traceback" not in err


async def test_a_daemon_that_dies_leaves_no_lock_behind(tmp_path: Path) -> None:
    database = tmp_path / "var" / "cdr.sqlite3"
    script = (
        "import sys, time\n"
        "from callcenter.records.lock import RecordLock\n"
        f"RecordLock({str(database)!r}).acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, cwd=REPO
    )
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while await proc.stdout.readline() != b"locked\n":
            pass
    assert holder(database) == proc.pid
    with pytest.raises(RecordError, match=rf"another callcenter daemon \(pid {proc.pid}\)"):
        RecordLock(database).acquire()
    proc.kill()
    await proc.wait()
    assert holder(database) is None
    lock = RecordLock(database)
    lock.acquire()
    lock.release()


async def test_run_with_unreadable_config_exits_1(tmp_path: Path) -> None:
    code, _out, err = await _run_cli("run", str(tmp_path / "missing.yaml"))
    assert code == 1
    assert "missing.yaml" in err


def _cdr(uniqueid: str, src: str, start: datetime) -> CdrRecord:
    end = start + timedelta(seconds=30)
    return CdrRecord(
        accountcode="",
        src=src,
        dst="800",
        dcontext="callcenter",
        clid=f'"Caller" <{src}>',
        channel=f"PJSIP/{src}-0000001",
        dstchannel="PJSIP/1002-0000002",
        lastapp="Dial",
        start=start,
        answer=start + timedelta(seconds=1),
        end=end,
        duration=30,
        billsec=29,
        disposition="ANSWERED",
        uniqueid=uniqueid,
        linkedid=uniqueid,
        ivr_path="main:welcome>2>main:support",
        queue="support",
        wait_seconds=4.5,
        agent="1002",
        talk_seconds=20.0,
        transfers=0,
        transfer_path="",
        abandoned=False,
        hung_up_by="caller",
        hangup_cause=16,
        hangup_cause_name="NORMAL_CLEARING",
    )


def _freeswitch_center_with_records(tmp_path: Path, count: int) -> Path:
    """A FreeSWITCH config (no ESL password anywhere) whose CDR store holds ``count`` calls,
    one a minute, written out of order."""
    cfg = merge(BASE_CONFIG, {"pbx": {"type": "freeswitch"}})
    path = tmp_path / "cc.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (tmp_path / "var").mkdir()
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    base = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    try:
        for n in reversed(range(count)):
            store.write_cdr(_cdr(f"call-{n:02}", f"55501{n:02}", base + timedelta(minutes=n)))
    finally:
        store.close()
    return path


async def test_report_json_prints_only_json_lines_even_without_pbx_secrets(
    tmp_path: Path,
) -> None:
    path = _freeswitch_center_with_records(tmp_path, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    code, out, err = await _run_cli("report", str(path), "--json", env=env, clear=True)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["uniqueid"] for r in rows] == ["call-00", "call-01", "call-02"]
    assert rows[0]["agent"] == "1002" and rows[0]["billsec"] == 29


async def test_report_last_n_shows_the_newest_n_calls_oldest_first(tmp_path: Path) -> None:
    path = _freeswitch_center_with_records(tmp_path, 12)
    code, out, err = await _run_cli("report", str(path), "--last", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("start") and set(lines[1]) == {"-"}
    assert [line.split()[1] for line in lines[2:]] == ["5550109", "5550110", "5550111"]


async def test_report_says_when_refused_records_wait_for_the_next_start(tmp_path: Path) -> None:
    path = _freeswitch_center_with_records(tmp_path, 1)
    db = tmp_path / "var" / "cdr.sqlite3"
    store = SqliteCdrStore(db)
    refused = _cdr("call-09", "5550109", datetime(2026, 12, 5, 9, 0, tzinfo=UTC))
    RecordRescue(db, store).keep([("cdr:call-09", functools.partial(store.write_cdr, refused))])
    code, out, err = await _run_cli("report", str(path), "--json")
    assert code == 0, err
    assert [json.loads(line)["uniqueid"] for line in out.splitlines()] == ["call-00"]
    assert f"records the database refused are waiting in {db}.unwritten.jsonl" in err


def test_report_piped_into_head_stops_quietly(tmp_path: Path) -> None:
    """``callcenter report --json | head -1``: the reader leaves after one line, while the
    report still has more than a pipe holds to write."""
    path = _freeswitch_center_with_records(tmp_path, 150)
    command = [sys.executable, "-m", "callcenter.cli", "report", str(path), "--json"]
    with subprocess.Popen(
        [*command, "--last", "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # what head does after its line
        err = proc.stderr.read()
        code = proc.wait(timeout=30)
    assert json.loads(first)["uniqueid"] == "call-00"
    assert (code, err.decode()) == (0, "")


async def test_report_refuses_a_count_below_one(tmp_path: Path) -> None:
    path = _freeswitch_center_with_records(tmp_path, 2)
    code, out, err = await _run_cli("report", str(path), "--last", "0")
    assert code == 2
    assert out == ""
    assert "--last" in err and "1 or more" in err


async def test_check_prints_only_its_verdict_on_stdout() -> None:
    code, out, _err = await _run_cli(
        "check", "config/callcenter.yaml", env={"CALLCENTER_AMI_SECRET": "x"}
    )
    assert code == 0
    assert out == "config/callcenter.yaml: OK\n"


async def test_run_with_json_logs_writes_nothing_but_json_lines(tmp_path: Path) -> None:
    cfg = merge(
        BASE_CONFIG,
        {"pbx": {"ami": {"port": 9}}, "logging": {"level": "debug", "format": "json"}},
    )
    path = tmp_path / "cc.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    code, out, err = await _run_cli("run", str(path), env={"CALLCENTER_AMI_SECRET": "x"})
    assert code == 3, err
    assert out == ""
    logged = [line for line in err.splitlines() if line.startswith("{")]
    assert logged, err
    for line in logged:
        json.loads(line)
    assert all(line.startswith(("{", "callcenter:")) for line in err.splitlines()), err


MALFORMED_ARGUMENTS = [
    *(["demo", "--speed", speed] for speed in ("0", "-2", "nan", "inf", "fast")),
    *(["report", "--last", last] for last in ("0", "-3", "x")),
    *(["status", "--api", api] for api in ("not a url", "ftp://127.0.0.1:8470", "http://h:x")),
    ["agent", "login", "1001", "--api", "127.0.0.1:8470"],
]


@pytest.mark.parametrize("argv", MALFORMED_ARGUMENTS, ids=" ".join)
def test_a_malformed_argument_is_named_and_exits_2_before_anything_runs(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    assert f"argument {argv[-2]}: {argv[-1]!r}" in capsys.readouterr().err


def test_status_says_plainly_when_the_pbx_is_down_and_records_wait() -> None:
    status = {
        "pbx": {"name": "freeswitch", "connected": False, "since": "06:00", "reason": "EOF"},
        "records": {
            "ok": False,
            "unwritten": 12,
            "failing_since": "05:58",
            "error": "database or disk is full",
            "rescued_files": ["/run/callcenter/cdr.sqlite3-1a2b.unwritten.jsonl"],
        },
        "agents": [],
        "queues": [],
        "calls": [],
    }
    lines = format_status(status).splitlines()
    assert lines[:3] == [
        "PBX freeswitch: DOWN since 06:00 (EOF)",
        "Records: NOT WRITTEN since 05:58, 12 waiting in memory: database or disk is full",
        "  kept at a stop, not yet in the database: "
        "/run/callcenter/cdr.sqlite3-1a2b.unwritten.jsonl",
    ]
    assert lines[-1] == "0 call(s) in progress"


def test_status_shows_the_mqtt_link_up_or_why_it_is_down() -> None:
    up = {"broker": "127.0.0.1:1883", "connected": True, "since": "09:00", "error": None}
    down = {**up, "connected": False, "error": "[Errno 111] Connect call failed"}
    assert "MQTT 127.0.0.1:1883: connected since 09:00" in format_status({"mqtt": up})
    assert (
        "MQTT 127.0.0.1:1883: not connected ([Errno 111] Connect call failed)"
        in format_status({"mqtt": down}).splitlines()
    )
    assert "MQTT" not in format_status({"agents": []}), "no mqtt section, no line"


async def test_a_daemon_another_one_took_the_pbx_over_from_stops_with_status_4(
    tmp_path: Path,
) -> None:
    """What a daemon cut off from its PBX long enough for a standby to take over does once
    back: it stops (calls are the standby's now) and tells systemd why, in one line."""
    config = {"pbx": {"claim_refresh": 0.2}}
    async with (
        running_center(tmp_path, transport="esl-inbound", config=config) as center,
        center.run_apart() as proc,
    ):

        async def standby() -> None:
            # As a standby that took over does: its mark, written again and again (written
            # once, it could land between the daemon's read and its own refresh's write).
            while True:
                now = int(datetime.now(UTC).timestamp())
                center.pbx.global_vars["callcenter_owner"] = f"5ca1ab1e|pbx-b|4243||{now}|5"
                await asyncio.sleep(0.1)

        taking_over = asyncio.create_task(standby())
        try:
            _out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            taking_over.cancel()
    assert proc.returncode == 4, err
    assert "another callcenter daemon took this PBX over: pid 4243 on host pbx-b" in err.decode()
    assert "Traceback" not in err.decode()
