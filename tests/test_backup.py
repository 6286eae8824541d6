"""``callcenter backup``: the SQLite records copied while the daemon takes calls, as an ops
engineer's nightly job runs it; the copy is whole, checked and readable by the reports."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import yaml
from test_record_rescue import writes_of_a_working_day

from callcenter.cli import main as cli_main
from callcenter.records.rescue import RecordRescue, rescue_path
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import BASE_CONFIG, merge, running_center


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
