"""A caller asks to be forgotten (the right to erasure): ``callcenter erase NUMBER``. What a
data-protection officer checks afterwards: the number, the caller's name, what the IVR and
the agent noted and the recording are gone from every record and file, while the queue's
figures stay what they were; and nothing is erased while work still waits on the number."""

from __future__ import annotations

import asyncio
import gzip
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from test_postgres_records import both_stores
from test_record_rescue import T0, snapshot, writes_of_a_working_day

from callcenter.cli import main as cli_main
from callcenter.errors import ErasureRefused
from callcenter.live.mqtt import event_json
from callcenter.outbound.campaign import LeadRecord
from callcenter.records.campaigns import AddedLead
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.erasure import Erasure as ErasureDone
from callcenter.records.erasure import (
    as_typed,
    check_numbers,
    erase_queue_log_file,
    erase_records,
    new_tokens,
    number_pattern,
)
from callcenter.records.evaluations import Evaluation
from callcenter.records.queue_log import QueueLogEntry, locked_append
from callcenter.testing import (
    BASE_CONFIG,
    CALLBACKS_ON,
    DesktopBrowser,
    EventStreamClient,
    merge,
    running_center,
    until,
)

ADA = "+4930123456"
BOB = "5550002"
CAROL = "5557001"
TOKEN = re.compile(r"erased-[0-9a-f]{8}")

CENTRE = {
    "queues": {"support": {"record": True}},
    "records": {"queue_log_file": "log/queue_log"},
    "dispositions": {"sale": "Sale made"},
}


def database_text(path: Path) -> str:
    """Everything the SQLite file holds, as SQL (what someone with a copy of it could read)."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def erase(config: Path, *args: str) -> int:
    return cli_main(["erase", *args, "--config", str(config)])


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_an_erased_caller_leaves_no_number_name_note_or_voice_and_the_figures_stay(
    tmp_path: Path, transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ada talks to Alice, who notes a disposition naming her; Bob calls too. Ada asks to
    be forgotten while the centre runs: her number, name, note and recording go from the
    database and the queue_log file; Bob's stay; both calls still count."""
    async with running_center(tmp_path, transport=transport, config=CENTRE) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.daemon.router.pause("1002", "break", via="test")
        ada = await center.caller_presses(ADA, "2", caller_name="Ada Lovelace")
        await ada.wait_bridged(timeout=5)
        await asyncio.sleep(0.3)
        await ada.hangup()
        center.daemon.switchboard.dispositions.dispose(
            "1001", "sale", note="Ada Lovelace, invoice 42"
        )
        bob = await center.caller_talks_to_an_agent(BOB)
        ada_before = await center.cdr(ada.uniqueid)
        bob_before = await center.cdr(bob.uniqueid)
        writer = center.daemon.recorder.writer
        await writer.wait_written(f"disposition:{ada.uniqueid}")
        recording = Path(ada_before["recordingfile"])
        queue_log = tmp_path / "log" / "queue_log"
        await until(lambda: recording.exists() and BOB in queue_log.read_text())
        assert ADA in queue_log.read_text()
        db = Path(center.daemon.store.where)
        assert ADA in database_text(db) and "Ada Lovelace" in database_text(db)
        capsys.readouterr()
        counted = await asyncio.to_thread(erase, center.config_path, ADA, "--dry-run")
        dry = capsys.readouterr().out
        still = await asyncio.to_thread(recording.exists)
        assert ADA in database_text(db) and still, "a dry run changes nothing"
        code = await asyncio.to_thread(erase, center.config_path, ADA)
        printed, complaints = capsys.readouterr()
        rows = {r["uniqueid"]: r for r in center.daemon.store.fetch_cdrs()}
        text = database_text(db)
        file_text = queue_log.read_text()
        recordings_left = await asyncio.to_thread(
            lambda: [p.exists() for p in (recording, Path(bob_before["recordingfile"]))]
        )
        argv = ["report", str(center.config_path), "--erasures"]
        audited = await asyncio.to_thread(cli_main, argv)
        (audit,) = capsys.readouterr().out.splitlines()
    assert counted == 0 and f"would erase {ADA}\n" in dry
    assert code == 0, complaints
    (token,) = TOKEN.findall(printed.splitlines()[0])
    assert f"erased {ADA} (now {token})" in printed
    assert "calls the number was in: 1" in printed
    assert "  cdr              1 rows" in printed and "  dispositions     1 rows" in printed
    assert "  recordings       1 files" in printed
    assert ADA not in text and "Ada Lovelace" not in text and "invoice 42" not in text
    assert ADA not in file_text and token in file_text and BOB in file_text
    assert recordings_left == [False, True], "her voice is gone, Bob's is not"
    ada_after = rows[ada.uniqueid]
    assert (ada_after["src"], ada_after["clid"]) == (token, f'"" <{token}>')
    figures = ("queue", "agent", "billsec", "wait_seconds", "talk_seconds", "disposition")
    assert {k: ada_after[k] for k in figures} == {k: ada_before[k] for k in figures}
    assert rows[bob.uniqueid] == bob_before
    (logged,) = [line for line in text.splitlines() if line.startswith('INSERT INTO "erasures"')]
    assert "'cli',1," in logged and '"cdr": 1' in logged, "when and how much, not whose"
    assert audited == 0 and "  via cli  1 number(s)  " in audit and ADA not in audit
    assert "cdr=1 " in audit and "dispositions=1 " in audit


async def test_a_number_a_callback_still_waits_for_is_refused_until_it_is_cancelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=CALLBACKS_ON) as center:
        for agent in ("1001", "1002"):
            center.daemon.router.logout(agent, via="test")
        status, asked = await center.api("POST", "/callbacks", {"number": CAROL, "queue": "sales"})
        assert status == 200
        await until(lambda: center.daemon.store.fetch_queue_callbacks() != [])
        capsys.readouterr()
        refused = await asyncio.to_thread(erase, center.config_path, CAROL)
        said = capsys.readouterr().err
        kept = [c.number for c in center.daemon.store.fetch_queue_callbacks()]
        cancelled = await center.api("POST", f"/callbacks/{asked['call_id']}/cancel")
        await until(
            lambda: [c.status for c in center.daemon.store.fetch_queue_callbacks()] == ["cancelled"]
        )
        code = await asyncio.to_thread(erase, center.config_path, CAROL)
        (place,) = center.daemon.store.fetch_queue_callbacks()
    assert refused == 1
    assert "nothing erased, as work still waits on the number" in said
    assert f"callcenter callback cancel {asked['call_id']}" in said
    assert kept == [CAROL], "nothing changed"
    assert cancelled[0] == 200 and code == 0
    assert TOKEN.fullmatch(place.number)


def test_numbers_that_are_too_short_not_numbers_or_the_centres_own_phones_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "callcenter.yaml"
    config.write_text(yaml.safe_dump(merge(BASE_CONFIG, {}), sort_keys=False))
    code = erase(config, "1234", "call me", "1001")
    said = capsys.readouterr().err
    assert code == 1
    assert "'1234' has fewer than 5 digits" in said
    assert "'call me' is no phone number" in said
    assert "'1001' is agent 1001's phone: erasure is for callers" in said
    assert check_numbers(["+33 6"], {}) != [] and check_numbers(["0612345678"], {}) == []
    assert as_typed(["06 12 34 56 78", "(030) 123-456", "0612345678", "call me"]) == [
        "0612345678",
        "030123456",
        "call me",
    ], "as a letter asking for it writes them"


def test_erasure_does_the_same_in_postgresql_as_in_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    """A working day of records (one caller's CDR, queue_log, kept place, disposition,
    survey): refused while the kept place waits, then erased alike in both databases."""
    number = "0612345678"
    after: list[str] = []
    counts = []
    for store in both_stores(tmp_path, postgres_url):
        for _, write in writes_of_a_working_day(store):  # type: ignore[arg-type]
            write()
        entry = ("k1", T0, "1796444790.1", "support", "NONE", "ENTERQUEUE", ("", number, "1"))
        store.write_queue_log([QueueLogEntry(*entry)])
        asked_not = DispositionRecord(
            "1796444790.9", "1001", "do-not-call", "shouted", number, "", "", "", None, True, T0
        )
        store.write_disposition(asked_not)
        for call_id, comment in (("1796444790.1", "Ada was upset"), ("1796444790.2", "calm")):
            scorecard = Evaluation(
                call_id, "2000", "1001", "support", "basic", (("greeting", 4),), 4, 5, True,
                comment, T0, "disputed", f"{comment}, I said", T0,
            )  # fmt: skip
            store.write_evaluation(scorecard)
        with pytest.raises(ErasureRefused) as refused:
            erase_records(store, [number])
        assert "a callback to 0612345678 waits in queue 'support'" in str(refused.value)
        store.update_queue_callback(
            "1796444790.5", updated=T0 + timedelta(hours=1), status="cancelled", attempts=None
        )
        done = erase_records(store, [number, "5550666"])
        counts.append(done.rows)
        assert any("on number list 'blocked'" in kept for kept in done.kept)
        records = {**snapshot(store), "queue_log": store.fetch_queue_log()}  # type: ignore[arg-type]
        dispositions = {d.call_id: d for d in records["dispositions"]}
        assert store.fetch_asked_not() == {number}, "a do-not-call request keeps the number"
        assert any("do-not-call disposition of call 1796444790.9" in kept for kept in done.kept)
        assert dispositions["1796444790.9"].note == ""
        assert dispositions["1796444790.1"].note == "", "a note on a call of theirs goes"
        scorecards = {
            e.call_id: e for e in store.fetch_evaluations_between(T0, T0 + timedelta(days=1))
        }
        assert scorecards["1796444790.1"].comment == "", "a comment on a call of theirs goes"
        assert scorecards["1796444790.1"].reply_note == "", "and the agent's answer to it"
        assert scorecards["1796444790.1"].reply == "disputed"
        assert scorecards["1796444790.1"].points == 4, "the agent's score stays"
        assert scorecards["1796444790.2"].comment == "calm", "another caller's call keeps it"
        assert scorecards["1796444790.2"].reply_note == "calm, I said"
        records["dispositions"] = [d for d in records["dispositions"] if not d.do_not_call]
        text = repr(records)
        assert number not in text and "Zoë" not in text and "shouted" not in repr(dispositions)
        assert "5550666" in text, "a blocked number stays blocked"
        with pytest.raises(ErasureRefused) as still_to_dial:
            erase_records(store, ["5551001"])
        assert "lead 'ada' of campaign 'spring' is still to be dialled" in str(still_to_dial.value)
        store.write_campaign_lead(LeadRecord("spring", "ada", "5551001", "failed", 3, updated=T0))
        lead_done = erase_records(store, ["5551001"])
        assert "in the lead file of campaign 'spring' (lead 'ada'" in lead_done.kept[0]
        assert TOKEN.fullmatch(store.fetch_campaign_leads()[0].number)
        after.append(TOKEN.sub("TOKEN", text))
    assert counts[0] == counts[1]
    assert counts[0]["cdr"] == counts[0]["queue_log"] == counts[0]["queue_callbacks"] == 1
    assert counts[0]["voicemails"] == 1, "the message she left: number and name"
    assert counts[0]["audit_log"] == 1, "a route naming her number (a lead's id)"
    assert after[0] == after[1]


def test_a_lead_added_while_running_is_erased_with_its_columns_once_tried(
    tmp_path: Path, postgres_url: str
) -> None:
    grace = AddedLead("spring", "c-4", "5551004", "", '{"name": "Grace Hopper"}', T0, "api")
    for store in both_stores(tmp_path, postgres_url):
        store.write_added_lead(grace)
        with pytest.raises(ErasureRefused) as refused:
            erase_records(store, ["5551004"])
        assert "lead 'c-4' added to campaign 'spring' while it ran is still to be dialled" in (
            str(refused.value)
        )
        store.write_campaign_lead(LeadRecord("spring", "c-4", "5551004", "answered", 1, updated=T0))
        done = erase_records(store, ["5551004"])
        (kept,) = store.fetch_added_leads()
        assert TOKEN.fullmatch(kept.number) and kept.data == "{}", type(store).__name__
        assert done.rows["added_leads"] == 1


@given(
    st.lists(st.sampled_from("0123456789+|* ,<>"), max_size=40).map("".join),
    st.text("0123456789", min_size=5, max_size=8),
)
def test_a_number_is_replaced_only_where_it_stands_whole(text: str, number: str) -> None:
    """``5551234`` is erased in ``"" <5551234>`` but not inside ``15551234`` or
    ``55512345``."""
    tokens = {number: "erased-0000abcd"}
    replaced = number_pattern([number]).sub(tokens[number], text)
    runs = re.findall(r"[0-9]+", text)
    assert re.findall(r"[0-9]+", replaced.replace("erased-0000abcd", " ")) == [
        run for run in runs if run != number
    ]


def test_a_queue_log_file_is_rewritten_under_the_lock_the_appends_take(tmp_path: Path) -> None:
    """The daemon appends under the file's lock; an erasure rewrites it under the same lock,
    so an append made meanwhile is neither lost nor left unerased. logrotate's copies are
    rewritten too, gzip ones included; one compressed otherwise is named."""
    path = tmp_path / "queue_log"
    ada, bob = (
        f"1|c1|support|NONE|ENTERQUEUE||{ADA}|1\n",
        f"1|c2|support|NONE|ENTERQUEUE||{BOB}|1\n",
    )
    path.write_text(ada + bob)
    (tmp_path / "queue_log.pos").write_text("2\n")
    (tmp_path / "queue_log.1").write_text(ada)
    (tmp_path / "queue_log.2.gz").write_bytes(gzip.compress((bob + ada).encode()))
    (tmp_path / "queue_log.3.xz").write_bytes(b"\xfd7zXZ")
    done = ErasureDone(tokens=new_tokens([ADA]))
    with locked_append(path) as out:
        out.write(f"2|c3|support|NONE|ENTERQUEUE||{ADA}|1\n")
        out.flush()
    erase_queue_log_file(done, path)
    (token,) = done.tokens.values()
    erased = ada.replace(ADA, token)
    assert path.read_text() == erased + bob + f"2|c3|support|NONE|ENTERQUEUE||{token}|1\n"
    assert (tmp_path / "queue_log.1").read_text() == erased
    assert gzip.decompress((tmp_path / "queue_log.2.gz").read_bytes()).decode() == bob + erased
    assert (tmp_path / "queue_log.pos").read_text() == "2\n"
    assert done.file_lines == 4
    assert done.not_rewritten == [tmp_path / "queue_log.3.xz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "queue_log",
        "queue_log.1",
        "queue_log.2.gz",
        "queue_log.3.xz",
        "queue_log.pos",
    ]


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_through_the_daemon_a_call_in_progress_is_waited_for_and_its_memory_forgets(
    tmp_path: Path, transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the running daemon (``erase --api``, ``POST /erasures``): refused while Ada
    is still on the line; once she hung up, erased from the records, from the agent's last
    call (``*77`` alone would call her back), from the events kept for resuming
    ``GET /events`` clients and from the calls Alice's desktop lists."""
    config = {"agents": {"1001": {"pin": "1111"}}}
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.daemon.router.pause("1002", "break", via="test")
        watcher = await EventStreamClient.open(center.daemon.api.port)
        ada = await center.caller_presses(ADA, "2", caller_name="Ada Lovelace")
        await ada.wait_bridged(timeout=5)
        busy = await center.api("POST", "/erasures", {"numbers": [ADA]})
        too_short = await center.api("POST", "/erasures", {"numbers": ["123"]})
        not_a_list = await center.api("POST", "/erasures", {"numbers": ADA})
        await ada.hangup()
        await center.idle()
        await center.cdr(ada.uniqueid)
        desk = DesktopBrowser(center.daemon.api.port)
        listed_before = (await desk.sign_in("1001", "1111")).table_rows
        streams = center.daemon.api.streams
        assert streams is not None
        kept_before = [e for _, e in streams._recent if ADA in event_json(e).decode()]
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        capsys.readouterr()
        code = await asyncio.to_thread(cli_main, ["erase", ADA, "--api", api])
        printed = capsys.readouterr().out
        last = center.daemon.switchboard.dispositions.last_call_of("1001")
        kept_after = [e for _, e in streams._recent if ADA in event_json(e).decode()]
        text = database_text(Path(center.daemon.store.where))
        listed_after = (await desk.get()).table_rows
        watcher.writer.close()
    assert busy[0] == 409
    assert f"call {ada.uniqueid} with the number is in progress" in busy[1]["holds"][0]
    assert too_short[0] == 400 and "fewer than 5 digits" in too_short[1]["error"]
    assert not_a_list[0] == 400
    assert code == 0
    (token,) = TOKEN.findall(printed)
    assert "  cdr              1 rows" in printed
    assert last is not None and last[0] == token
    assert kept_before and not kept_after
    assert ADA not in text and "Ada Lovelace" not in text
    assert [r[1] for r in listed_before if len(r) == 6 and ":" in r[0]] == [ADA], "her call"
    assert [r[1] for r in listed_after if len(r) == 6 and ":" in r[0]] == [token], "read again"


async def test_a_notice_naming_the_number_says_its_token_on_the_board_and_in_the_records(
    tmp_path: Path,
) -> None:
    """Sam told Alice "Call Ada back on <her number>": after the erasure the message on
    Alice's desktop, and the copy kept for a restart, name the token."""
    async with running_center(tmp_path) as center:
        await center.api(
            "POST", "/notices", {"text": f"Call Ada back on {ADA}", "agents": ["1001"]}
        )
        status, done = await center.api("POST", "/erasures", {"numbers": [ADA]})
        (notice,) = center.daemon.notices.standing(everyone=True)
        text = database_text(Path(center.daemon.store.where))
    assert status == 200, done
    (token,) = TOKEN.findall(notice.text)
    assert notice.text == f"Call Ada back on {token}"
    assert ADA not in text and token in text
    assert done["rows"]["notices"] == 1
