"""Retention: records older than ``records.keep_days`` go, once a day in the daemon or with
``callcenter purge`` by hand, on SQLite and PostgreSQL alike; what still asks for something
(a do-not-call request, a callback still to come, a caller waiting for one, an agent logged
in now) stays."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_record_rescue import cdr

from callcenter import daemon as daemon_module
from callcenter.cli import main as cli_main
from callcenter.records import recordings as recordings_module
from callcenter.records.audit import AuditEntry
from callcenter.records.callbacks import QueueCallback
from callcenter.records.cdr import CallbackRecord
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.evaluations import Evaluation
from callcenter.records.notices import Notice
from callcenter.records.postgres import PostgresRecordStore
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.recordings import purge_recordings
from callcenter.records.schedule_changes import ScheduleChange, ScheduleRequest
from callcenter.records.shifts import AgentPause, AgentPresence, AgentSession, AgentWrapup
from callcenter.records.store import RecordStore, SqliteCdrStore
from callcenter.records.surveys import SurveyRecord
from callcenter.records.voicemails import VoicemailMessage
from callcenter.testing import running_center

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=500)
RECENT = NOW - timedelta(days=3)
CUT = NOW - timedelta(days=400)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    if request.param == "sqlite":
        opened: RecordStore = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    else:
        url = request.getfixturevalue("postgres_url")
        opened = PostgresRecordStore(url, password="s3cret-records")
    opened.open()
    yield opened
    opened.close()


def disposition(call_id: str, at: datetime, **changes: object) -> DispositionRecord:
    fields: dict[str, object] = {
        "call_id": call_id, "agent": "1001", "code": "sale", "note": "", "number": "0612345678",
        "queue": "support", "campaign": "", "lead": "", "callback_at": None,
        "do_not_call": False, "at": at,
    }  # fmt: skip
    fields.update(changes)
    return DispositionRecord(**fields)  # type: ignore[arg-type]


def two_years_of_records(store: RecordStore) -> None:
    """Each kind of record once long ago (500 days) and once lately (3 days)."""
    for name, when in (("old", OLD), ("new", RECENT)):
        store.write_cdr(cdr(f"{name}.1", start=when, answer=when, end=when + timedelta(minutes=1)))
        store.write_queue_log(
            (QueueLogEntry(f"{name}:0", when, f"{name}.1", "support", "NONE", "ENTERQUEUE"),)
        )
        hour = timedelta(hours=1)
        store.write_agent_session(
            AgentSession("1001", when, when + 8 * hour, 8 * 3600.0, "cli", "cli")
        )
        store.write_agent_pause(
            AgentPause("1001", "lunch", when + 4 * hour, when + 5 * hour, 3600.0, "cli", "cli")
        )
        store.write_agent_wrapup(
            AgentWrapup("1001", when + hour, when + hour + timedelta(seconds=30), 30.0, "c")
        )
        store.write_callback(CallbackRecord(f"{name}.1", "0612345678", "support", "061", when))
        store.write_queue_callback(
            QueueCallback(
                f"{name}.2", "support", "0612345678", when, status="answered", updated=when
            )
        )
        store.write_disposition(disposition(f"{name}.1", when))
        store.write_survey(
            SurveyRecord(
                f"{name}.1",
                "support",
                "1001",
                "csat",
                "061",
                4,
                (("rating", "4"),),
                True,
                8.0,
                when,
            )
        )
        store.write_evaluation(
            Evaluation(
                f"{name}.1",
                "2000",
                "1001",
                "support",
                "std",
                (("tone", 5),),
                5,
                10,
                False,
                "",
                when,
            )
        )
        day = when.date().isoformat()
        store.write_schedule_change(ScheduleChange.of("1001", day, ["10:00-18:00"], when, "api"))
        decided = ScheduleRequest(f"{name}-r", "1001", day, "[]", "", when, "approved", when, "s")
        store.write_schedule_request(decided)
        store.write_audit(AuditEntry(f"{name}-a", when, "ops", "", "POST", "/reload", 200))
        store.write_notice(Notice(f"{name}-n", "Meeting at 15:00", "api", (), when, when))
    # What an old row must not lose:
    store.write_queue_callback(
        QueueCallback("old.waiting", "support", "0611111111", OLD, status="waiting", updated=OLD)
    )
    store.write_disposition(disposition("old.dnc", OLD, do_not_call=True, code="do-not-call"))
    later = (NOW + timedelta(days=2)).astimezone(timezone(timedelta(hours=1)))  # its own offset
    store.write_disposition(disposition("old.later", OLD, callback_at=later, code="callback"))
    store.write_disposition(disposition("old.done", OLD, callback_at=OLD, code="callback"))
    store.write_agent_presence(AgentPresence("1002", OLD, "cli", "break", OLD, "cli"))
    for call_id, status in (("old.vm", "done"), ("old.vm.waiting", "waiting")):
        store.write_voicemail(
            VoicemailMessage(
                call_id, "sales", "sales", "061", "", f"/vm/{call_id}.wav", 9.0, OLD, status
            )
        )


def test_records_older_than_the_cut_go_and_what_still_asks_for_something_stays(
    store: RecordStore,
) -> None:
    two_years_of_records(store)
    counted = store.purge(CUT, dry_run=True)
    assert [row["uniqueid"] for row in store.fetch_cdrs()] == ["old.1", "new.1"], "a dry run"
    purged = store.purge(CUT)
    assert (
        purged
        == counted
        == {
            "cdr": 1,
            "queue_log": 1,
            "agent_sessions": 1,
            "agent_pauses": 1,
            "agent_wrapups": 1,
            "callbacks": 0,
            "queue_callbacks": 1,
            "dispositions": 2,
            "surveys": 1,
            "evaluations": 1,
            "voicemails": 1,
            "schedule_changes": 1,
            "schedule_requests": 1,
            "audit_log": 1,
            "notices": 1,
        }
    )
    assert [row["uniqueid"] for row in store.fetch_cdrs()] == ["new.1"]
    assert [e.callid for _, e in store.fetch_queue_log()] == ["new.1"]
    assert len(store.fetch_agent_sessions()) == 1 and len(store.fetch_agent_pauses()) == 1
    assert len(store.fetch_agent_wrapups()) == 1
    assert {c.call_id for c in store.fetch_queue_callbacks()} == {"new.2", "old.waiting"}
    assert len(store.fetch_callbacks()) == 2, "requests still pending stay"
    kept = {d.call_id for d in store.fetch_dispositions()}
    assert kept == {"new.1", "old.dnc", "old.later"}
    assert store.fetch_asked_not() == {"0612345678"}, "the do-not-call request outlives it"
    assert [r.call_id for r in store.fetch_surveys()] == ["new.1"]
    assert [p.agent for p in store.fetch_agent_presence()] == ["1002"], "logged in now"
    kept_messages = [m.call_id for m in store.fetch_voicemails()]
    assert kept_messages == ["old.vm.waiting"], "a message nobody called back yet stays"
    assert [c.day for c in store.fetch_schedule_changes()] == [RECENT.date().isoformat()]
    assert [r.id for r in store.fetch_schedule_requests()] == ["new-r"]
    assert store.purge(CUT) == dict.fromkeys(purged, 0), "a second round finds nothing"


def _config(tmp_path: Path, keep: str = "") -> Path:
    config = tmp_path / "callcenter.yaml"
    config.write_text(
        "pbx: {type: asterisk, ami: {secret: x}}\n"
        f"records: {{cdr_path: var/cdr.sqlite3{keep}}}\n"
    )
    (tmp_path / "var").mkdir()
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        two_years_of_records(store)
    finally:
        store.close()
    return config


def _cdrs(tmp_path: Path) -> list[str]:
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    try:
        return [row["uniqueid"] for row in store.fetch_cdrs()]
    finally:
        store.close()


def test_purge_counts_first_then_deletes_what_is_older_than_the_days_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    capsys.readouterr()
    assert cli_main(["purge", str(config), "--older-than", "400", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "cdr              1" in out
    assert _cdrs(tmp_path) == ["old.1", "new.1"]
    assert cli_main(["purge", str(config), "--before", "yesterday"]) == 0
    assert "deleted" in capsys.readouterr().out
    assert _cdrs(tmp_path) == [], "three days old is before yesterday too"


def test_purge_takes_its_days_from_keep_days_and_says_when_it_has_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    capsys.readouterr()
    assert cli_main(["purge", str(config)]) == 1
    assert "--older-than DAYS or --before DATE" in capsys.readouterr().err
    config.write_text(config.read_text().replace("cdr.sqlite3}", "cdr.sqlite3, keep_days: 30}"))
    assert cli_main(["purge", str(config)]) == 0
    assert _cdrs(tmp_path) == ["new.1"]
    with pytest.raises(SystemExit):
        cli_main(["purge", str(config), "--older-than", "3", "--before", "today"])
    assert "--older-than or --before, not both" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "a year", "-5"])
def test_a_keep_days_that_is_not_a_number_of_days_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    config = _config(tmp_path, f", keep_days: {value}")
    capsys.readouterr()
    assert cli_main(["check", str(config)]) == 1
    assert "callcenter.yaml:2: records.keep_days" in capsys.readouterr().err


async def test_the_daemon_deletes_old_records_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "RETENTION_FIRST", 0.1)
    monkeypatch.setattr(daemon_module, "RETENTION_INTERVAL", 0.2)
    config = {"records": {"keep_days": 30}}
    async with running_center(tmp_path, config=config) as center:
        store = center.daemon.store
        old = cdr("old.9", start=OLD, answer=OLD, end=OLD + timedelta(minutes=1))
        await asyncio.to_thread(store.write_cdr, old)
        await asyncio.to_thread(
            store.write_cdr, dataclasses.replace(old, uniqueid="new.9", start=RECENT)
        )
        async with asyncio.timeout(5):
            while "old.9" in [r["uniqueid"] for r in await asyncio.to_thread(store.fetch_cdrs)]:
                await asyncio.sleep(0.05)
        assert [r["uniqueid"] for r in await asyncio.to_thread(store.fetch_cdrs)] == ["new.9"]


# ---------------------------------------------------------------------- recordings


def _recordings(folder: Path) -> dict[str, Path]:
    """A queue's recordings as the daemon names them (500 and 3 days old), and files of
    others beside them; by what each is."""
    queue = folder / "support"
    queue.mkdir(parents=True)
    files = {
        "old": queue / f"{OLD:%Y%m%d-%H%M%S}-1733390000.42.wav",
        "new": queue / f"{RECENT:%Y%m%d-%H%M%S}-1733390001.7.wav",
        "foreign": queue / "board-meeting.wav",
        "mp3": queue / f"{OLD:%Y%m%d-%H%M%S}-1733390000.9.mp3",
        "top": folder / f"{OLD:%Y%m%d-%H%M%S}-1733390000.1.wav",
    }
    for path in files.values():
        path.write_bytes(b"RIFF" + bytes(1000))
    return files


def test_recordings_older_than_the_cut_go_and_files_the_daemon_did_not_name_stay(
    tmp_path: Path,
) -> None:
    files = _recordings(tmp_path / "recordings")
    counted = purge_recordings(tmp_path / "recordings", CUT, dry_run=True)
    assert (counted.files, counted.bytes, counted.failed) == (1, 1004, [])
    assert files["old"].exists(), "a dry run deletes nothing"
    done = purge_recordings(tmp_path / "recordings", CUT)
    assert (done.files, done.failed) == (1, [])
    assert {name for name, path in files.items() if path.exists()} == {
        "new",
        "foreign",
        "mp3",
        "top",
    }
    assert purge_recordings(tmp_path / "none yet", CUT).files == 0, "no folder, no recording"


def test_a_recording_that_will_not_go_is_reported_and_the_others_still_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _recordings(tmp_path / "recordings")
    stuck = files["old"].with_name(f"{OLD:%Y%m%d-%H%M%S}-1733390000.43.wav")
    stuck.write_bytes(b"RIFF")
    unlink = os.unlink

    def refuse(path: str) -> None:
        if path == str(stuck):
            raise PermissionError(13, "Permission denied")
        unlink(path)

    monkeypatch.setattr(recordings_module.os, "unlink", refuse)
    done = purge_recordings(tmp_path / "recordings", CUT)
    assert done.files == 1 and not files["old"].exists() and stuck.exists()
    assert done.failed == [f"{stuck}: [Errno 13] Permission denied"]


def test_purge_recordings_by_hand_takes_its_days_from_recordings_keep_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    files = _recordings(tmp_path / "var" / "recordings")
    capsys.readouterr()
    assert cli_main(["purge", str(config), "--recordings"]) == 1
    assert "or set acd.recordings_keep_days" in capsys.readouterr().err
    assert cli_main(["purge", str(config), "--recordings", "--older-than", "30", "--dry-run"]) == 0
    assert "would delete 1 files" in capsys.readouterr().out and files["old"].exists()
    config.write_text(config.read_text() + "acd: {recordings_keep_days: 30}\n")
    assert cli_main(["purge", str(config), "--recordings"]) == 0
    assert "deleted 1 files" in capsys.readouterr().out
    assert not files["old"].exists() and files["new"].exists()
    assert _cdrs(tmp_path) == ["old.1", "new.1"], "the records are another purge's"


async def test_the_daemon_deletes_old_recordings_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "RETENTION_FIRST", 0.1)
    config = {"acd": {"recordings_keep_days": 30}}
    files = _recordings(tmp_path / "var" / "recordings")
    async with running_center(tmp_path, config=config):
        async with asyncio.timeout(5):
            while files["old"].exists():
                await asyncio.sleep(0.05)
    assert files["new"].exists() and files["foreign"].exists()
