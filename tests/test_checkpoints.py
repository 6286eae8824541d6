"""A daemon killed without stopping (kill -9, a power cut) leaves records of its calls in
progress: each call going on for ``records.checkpoint_seconds`` is written as it stands
(``hung_up_by`` ``in_progress``), its own record replaces that when it ends, and the next
daemon marks what is left ``lost``. Here a real ``callcenter run`` is killed under a call."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from test_drain import _with_api_port

from callcenter.events import (
    AgentConnected,
    CallAnswered,
    CallEnded,
    CallStarted,
    QueueJoined,
)
from callcenter.records.cdr import CdrRecorder, finish, fold, so_far
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import running_center

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _rows(db: Path) -> dict[str, dict[str, Any]]:
    store = SqliteCdrStore(db)
    try:
        return {r["src"]: r for r in store.fetch_cdrs()}
    finally:
        store.close()


async def test_a_killed_daemon_leaves_its_talking_callers_records_marked_lost_at_the_next_start(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, transport="esl-inbound") as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        config = yaml.safe_load(center.config_path.read_text())
        config["records"]["checkpoint_seconds"] = 0.3
        center.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        _with_api_port(center.config_path)
        db = tmp_path / "var" / "cdr.sqlite3"
        async with center.run_apart(stderr=asyncio.subprocess.DEVNULL) as proc:
            talking = await center.caller_presses("5550042", "1")
            await talking.wait_bridged(timeout=5)
            async with asyncio.timeout(10):
                while (await asyncio.to_thread(_rows, db)).get("5550042") is None:
                    await asyncio.sleep(0.1)
            checkpoint = (await asyncio.to_thread(_rows, db))["5550042"]
            proc.kill()  # kill -9: no stop, nothing written at the end
            await proc.wait()
        await talking.hangup()
        daemon = await center.restart()
        rows = await asyncio.to_thread(daemon.store.fetch_cdrs)
    assert (checkpoint["hung_up_by"], checkpoint["agent"]) == ("in_progress", "1001")
    (lost,) = [r for r in rows if r["src"] == "5550042"]
    assert (lost["hung_up_by"], lost["agent"], lost["queue"]) == ("lost", "1001", "sales")
    assert lost["disposition"] == "ANSWERED"
    assert lost["end"] >= lost["answer"] >= lost["start"]


async def test_a_call_going_on_is_written_as_it_stands_and_its_own_record_replaces_it(
    tmp_path: Path,
) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    recorder = CdrRecorder(store)
    await recorder.start()
    try:
        now, mono = datetime.now(UTC), time.monotonic()

        def ago(seconds: float) -> dict[str, Any]:
            return {"call_id": "c1", "at": now - timedelta(seconds=seconds), "mono": mono - seconds}

        for event in (
            CallStarted(**ago(40), channel="PJSIP/x", caller_num="5550042", caller_name="",
                        dialed="800", context="from-pstn"),
            CallAnswered(**ago(39)),
            QueueJoined(**ago(38), queue="sales", position=1),
            AgentConnected(**ago(30), queue="sales", agent="1001", peer_channel="PJSIP/1001-1",
                           wait_seconds=8.0, ring_seconds=1.0),
        ):  # fmt: skip
            recorder.on_event(event)
        recorder.on_event(
            CallStarted(call_id="c2", channel="PJSIP/y", caller_num="5550043", caller_name="",
                        dialed="800", context="from-pstn")
        )  # fmt: skip
        assert recorder.checkpoint(older_than=10) == 1, "the call of a second waits its turn"
        await recorder.writer.wait_written("cdr-checkpoint:c1")
        (going,) = store.fetch_cdrs()
        recorder.on_event(
            CallEnded(call_id="c1", at=now, mono=mono, hung_up_by="caller", cause=16,
                      cause_name="NORMAL_CLEARING")
        )  # fmt: skip
        await recorder.wait_written("c1")
        (done,) = [r for r in store.fetch_cdrs() if r["uniqueid"] == "c1"]
    finally:
        await recorder.close()
    assert (going["hung_up_by"], going["agent"], going["queue"]) == ("in_progress", "1001", "sales")
    assert going["billsec"] >= 30
    assert (done["hung_up_by"], done["hangup_cause"]) == ("caller", 16)


def test_the_next_start_marks_checkpoints_lost_and_a_call_taken_back_replaces_them(
    tmp_path: Path,
) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    start = CallStarted(
        call_id="c1", at=T0, mono=100.0, caller_num="5550042", caller_name="", dialed="800",
        channel="PJSIP/x", context="from-pstn",
    )  # fmt: skip
    answered = CallAnswered(call_id="c1", at=T0 + timedelta(seconds=2), mono=102.0)
    draft = fold(fold(None, start), answered)
    store.write_cdr(so_far(draft, T0 + timedelta(seconds=60), 160.0))
    assert store.mark_lost() == 1
    assert store.mark_lost() == 0, "once"
    (lost,) = store.fetch_cdrs()
    ended = fold(
        draft,
        CallEnded(call_id="c1", at=T0 + timedelta(seconds=90), mono=190.0, hung_up_by="caller",
                  cause=16, cause_name="NORMAL_CLEARING"),
    )  # fmt: skip
    store.write_cdr(finish(ended))
    (final,) = store.fetch_cdrs()
    store.close()
    assert (lost["hung_up_by"], lost["duration"]) == ("lost", 60)
    assert (final["hung_up_by"], final["duration"]) == ("caller", 90)
