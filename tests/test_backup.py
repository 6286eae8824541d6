"""``callcenter backup``: the SQLite records copied while the daemon takes calls, as an ops
engineer's nightly job runs it; the copy is whole, checked and readable by the reports."""

from __future__ import annotations

import asyncio
import configparser
import errno
import functools
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_agent_desktop import _leave_a_message, _voicemail_config
from test_call_recording import RECORDED, caller_talks
from test_record_rescue import writes_of_a_working_day

from callcenter.cli import main as cli_main
from callcenter.errors import RecordError
from callcenter.records.backup import copy_folder
from callcenter.records.rescue import RecordRescue, rescue_path
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import BASE_CONFIG, merge, running_center, until


async def test_a_backup_taken_during_calls_holds_every_record_written_and_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        first = await center.caller_talks_to_an_agent("5550001")
        await center.cdr(first.uniqueid)
        talking = await center.caller_presses("5550002", "2")
        await talking.wait_bridged(timeout=5)
        target = tmp_path / "backups" / "cdr-tonight.sqlite3"
        argv = ["backup", str(center.config_path), "--to", str(target)]
        capsys.readouterr()
        code = await asyncio.to_thread(cli_main, argv)
        printed = capsys.readouterr().out
        again = await asyncio.to_thread(cli_main, argv)
        refused = capsys.readouterr().err
        await talking.hangup()
        await center.cdr(talking.uniqueid)
    assert code == 0
    assert printed.startswith(f"backed up {tmp_path / 'var' / 'cdr.sqlite3'} to {target}")
    assert "checked" in printed.splitlines()[0]
    assert "  cdr                  1" in printed, "the call in progress is not over yet"
    copy = sqlite3.connect(target)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "one file"
        (uniqueid,) = copy.execute("SELECT uniqueid FROM cdr").fetchone()
    finally:
        copy.close()
    assert uniqueid == first.uniqueid
    assert again == 1 and "exists already: back up to a new file" in refused
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "no .part left"


def test_records_in_postgresql_are_left_to_pg_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "callcenter.yaml"
    settings = merge(BASE_CONFIG, {"records": {"postgres": "postgresql://cc@127.0.0.1/cc"}})
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    code = cli_main(["backup", str(config), "--to", str(tmp_path / "x.sqlite3")])
    assert code == 1 and "back them up with pg_dump" in capsys.readouterr().err


def test_records_the_database_refused_go_with_the_backup_and_a_daemon_on_it_writes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk left records in the rescue file beside the database: a backup without
    them would lack the last calls; they are copied where a daemon on the backup finds
    them."""
    config = tmp_path / "callcenter.yaml"
    config.write_text(yaml.safe_dump(BASE_CONFIG, sort_keys=False))
    db = tmp_path / "var" / "cdr.sqlite3"
    db.parent.mkdir()
    store = SqliteCdrStore(db)
    store.open()
    writes = writes_of_a_working_day(store)
    RecordRescue(db, store).keep(writes)
    store.close()
    target = tmp_path / "backups" / "tonight.sqlite3"
    code = cli_main(["backup", str(config), "--to", str(target)])
    printed = capsys.readouterr().out.splitlines()
    copied = rescue_path(target)
    restored = SqliteCdrStore(target)
    replayed = RecordRescue(target, restored).replay()
    assert code == 0
    assert printed[-1] == (
        f"  + {len(writes)} record(s) the database refused, waiting in {rescue_path(db)}: "
        f"copied to {copied} (a daemon started on the backup writes them)"
    )
    assert rescue_path(db).exists(), "the daemon on the database still has them to write"
    assert replayed.written == len(writes)
    assert [r["uniqueid"] for r in restored.fetch_cdrs()] == ["1796444790.1"]


async def test_the_nightly_backup_copies_the_recordings_and_messages_the_records_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recorded call and a voicemail message: ``--files`` copies both sound files (and
    the queue_log file) beside the database copy; the next night copies only what is new
    or changed, and a database row's file is found under the backup's folder."""
    config = merge(
        _voicemail_config(tmp_path),
        {**RECORDED, "records": {"queue_log_file": "var/queue_log"}},
    )
    files = tmp_path / "backups" / "files"
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await caller_talks(center, "5550031", "2", 0.3)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        message = await _leave_a_message(center, "5550032")
        store = center.daemon.store
        await until(lambda: store.fetch_open_voicemails() != [])  # written by the writer
        (left,) = await asyncio.to_thread(store.fetch_open_voicemails)
        argv = ["backup", str(center.config_path), "--to", str(tmp_path / "backups" / "db")]
        capsys.readouterr()
        first = await asyncio.to_thread(cli_main, [*argv, "--files", str(files)])
        tonight = capsys.readouterr().out
        await asyncio.to_thread(_grows, Path(left.path))
        again = ["backup", str(center.config_path), "--files", str(files)]
        second = await asyncio.to_thread(cli_main, again)
        tomorrow = capsys.readouterr().out
    recording = row["recordingfile"]
    assert (first, second) == (0, 0)
    assert left.call_id == message
    assert _kept(recording, tmp_path / "var" / "recordings", files / "recordings") > 44
    assert _kept(left.path, tmp_path / "vm", files / "voicemail") > 0
    assert _kept(str(tmp_path / "var" / "queue_log"), tmp_path / "var", files) > 0
    assert "recordings: 1 file(s) copied" in tonight
    assert "voicemail: 1 file(s) copied" in tonight
    assert "queue_log: 1 file(s) copied" in tonight
    assert "recordings: 0 file(s) copied (0.0 MB), 1 unchanged" in tomorrow
    assert "voicemail: 1 file(s) copied" in tomorrow, "the changed message again"
    assert not list(files.rglob("*.part"))


def _kept(path: str, folder: Path, backup: Path) -> int:
    """The size of the backup's copy of ``path`` (a file of ``folder``), the same bytes."""
    copy = backup / Path(path).relative_to(folder)
    assert copy.read_bytes() == Path(path).read_bytes(), f"{copy} is not {path}"
    return copy.stat().st_size


def _grows(path: Path) -> None:
    """The file changes after a backup (as one the PBX was still writing)."""
    path.write_bytes(path.read_bytes() + b"\0")
    os.utime(path, (1, 1))


def test_a_folder_the_pbx_keeps_on_another_machine_is_said_not_copied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "callcenter.yaml"
    settings = merge(
        BASE_CONFIG,
        {
            "records": {"postgres": "postgresql://cc@127.0.0.1/cc"},
            "acd": {"recordings_folder": "/var/spool/asterisk/monitor-elsewhere"},
        },
    )
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    (tmp_path / "var" / "voicemail" / "sales").mkdir(parents=True)
    (tmp_path / "var" / "voicemail" / "sales" / "m1.wav").write_bytes(b"RIFF....")
    code = cli_main(["backup", str(config), "--files", str(tmp_path / "b")])
    printed = capsys.readouterr().out
    assert code == 0, "records in PostgreSQL: the files alone, pg_dump does the rows"
    assert (
        "recordings: /var/spool/asterisk/monitor-elsewhere is not on this machine "
        "(nothing copied)" in printed
    )
    assert (tmp_path / "b" / "voicemail" / "sales" / "m1.wav").read_bytes() == b"RIFF...."


def test_a_backup_asks_for_what_to_copy(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli_main(["backup", "x.yaml"])
    assert stopped.value.code == 2
    assert "backup needs --to FILE (the records), --files DIR, or both" in capsys.readouterr().err


def test_a_disk_filling_up_stops_the_copy_and_leaves_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "recordings"
    (source / "sales").mkdir(parents=True)
    for name in ("a.wav", "b.wav", "c.wav"):
        (source / "sales" / name).write_bytes(b"RIFF" + name.encode())
    copied = 0

    def copyfile(src: Path, dst: Path) -> None:
        nonlocal copied
        if copied == 2:
            Path(dst).write_bytes(b"RI")  # part of it went before the disk filled up
            raise OSError(errno.ENOSPC, "No space left on device")
        copied += 1
        Path(dst).write_bytes(Path(src).read_bytes())

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with pytest.raises(RecordError) as full:
        copy_folder("recordings", source, tmp_path / "backup")
    names = sorted(p.name for p in (tmp_path / "backup" / "recordings" / "sales").iterdir())
    assert str(full.value) == (
        f"{tmp_path / 'backup'} is full: 2 file(s) of {source} copied before it filled up "
        "(No space left on device)"
    )
    assert names == ["a.wav", "b.wav"], "no c.wav.part, no truncated c.wav"


def test_a_backup_folder_inside_the_folder_it_copies_is_refused(tmp_path: Path) -> None:
    (tmp_path / "recordings").mkdir()
    with pytest.raises(RecordError, match="is inside"):
        copy_folder("recordings", tmp_path / "recordings", tmp_path / "recordings" / "bk")


SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"


def test_the_shipped_nightly_timer_runs_a_backup_that_works(tmp_path: Path) -> None:
    """The unit's own command lines, with this machine's paths put in: a dated copy of the
    records, the files beside it, and copies older than 14 nights removed."""
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((SYSTEMD / "callcenter-backup.service").read_text())
    timer = configparser.ConfigParser(interpolation=None, strict=False)
    timer.optionxform = str  # type: ignore[assignment,method-assign]
    timer.read_string((SYSTEMD / "callcenter-backup.timer").read_text())
    config = tmp_path / "etc" / "callcenter.yaml"
    config.parent.mkdir()
    settings = merge(
        BASE_CONFIG,
        {
            "records": {"cdr_path": str(tmp_path / "var" / "cdr.sqlite3")},
            "acd": {"recordings_folder": str(tmp_path / "var" / "recordings")},
        },
    )
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    store.open()
    writes_of_a_working_day(store)
    store.close()
    (tmp_path / "var" / "recordings" / "sales").mkdir(parents=True)
    (tmp_path / "var" / "recordings" / "sales" / "call.wav").write_bytes(b"RIFF-call")
    backups = tmp_path / "backups"
    backups.mkdir()
    stale = backups / "cdr-20261101-023000.sqlite3"
    stale.write_bytes(b"")
    os.utime(stale, (time.time() - 20 * 86400,) * 2)
    here = {
        "/opt/callcenter/bin/callcenter": str(Path(sys.executable).parent / "callcenter"),
        "/etc/callcenter/callcenter.yaml": str(config),
        "/var/backups/callcenter": str(backups),
        "%%": "%",
    }
    service = unit["Service"]
    env = {**os.environ, "CALLCENTER_AMI_SECRET": "x"}
    for command in (service["ExecStart"], service["ExecStartPost"]):
        argv = shlex.split(
            functools.reduce(lambda line, pair: line.replace(*pair), here.items(), command)
        )
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
    copies = sorted(p.name for p in backups.glob("cdr-*.sqlite3"))
    assert service["Type"] == "oneshot" and service["User"] == "callcenter"
    assert timer["Timer"]["Persistent"] == "true" and timer["Timer"]["OnCalendar"]
    assert len(copies) == 1 and copies[0] != stale.name, "tonight's, the old one removed"
    assert re.fullmatch(r"cdr-\d{8}-\d{6}\.sqlite3", copies[0])
    assert (backups / "files" / "recordings" / "sales" / "call.wav").read_bytes() == b"RIFF-call"
