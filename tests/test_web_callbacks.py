"""Callbacks asked for from outside a call (a web page, an app): ``callcenter callback``
and ``POST /callbacks``. The whole path, from the request to the agent, runs on every PBX
in ``test_acd_scenarios``; here the command line and what a draining centre says."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.events import EngineEvent, QueueCallbackRequested
from callcenter.live.api import RequestRate
from callcenter.records.callbacks import QueueCallback
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import CALLBACKS_ON, merge, running_center

CALLBACKS = CALLBACKS_ON


async def test_the_command_line_asks_for_a_callback_and_a_draining_centre_takes_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=CALLBACKS) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        center.daemon.router.logout("1001", via="test")
        center.daemon.router.logout("1002", via="test")
        url = f"http://127.0.0.1:{center.daemon.api.port}"
        argv = ["callback", "request", "5551234", "--queue", "support", "--priority", "3"]
        argv += ["--api", url]
        code = await asyncio.to_thread(cli_main, argv)
        printed = capsys.readouterr().out
        shown = json.loads(printed)
        board = center.daemon.switchboard
        board.begin_drain()
        draining = await center.api("POST", "/callbacks", {"number": "5559876", "queue": "sales"})
        board.end_drain()
        waiting = await center.api("POST", "/callbacks", {"number": "5551234", "queue": "support"})
        bad = await center.api("POST", "/callbacks", {"number": "5551234"})
        wrong_method = await center.api("DELETE", "/callbacks")
    assert code == 0 and (shown["queue"], shown["new"]) == ("support", True)
    (requested,) = [e for e in events if isinstance(e, QueueCallbackRequested)]
    assert (requested.call_id, requested.priority) == (shown["call_id"], 3)
    assert draining[0] == 409 and "draining" in draining[1]["error"]
    assert waiting[1]["call_id"] == shown["call_id"], "still the same request"
    assert bad[0] == 400 and "queue" in bad[1]["error"]
    assert wrong_method[0] == 405


async def test_a_waiting_callback_is_listed_and_cancelled_and_its_record_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=CALLBACKS) as center:
        center.daemon.router.logout("1001", via="test")
        center.daemon.router.logout("1002", via="test")
        _, first = await center.api("POST", "/callbacks", {"number": "5551234", "queue": "sales"})
        _, second = await center.api(
            "POST", "/callbacks", {"number": "5555678", "queue": "sales", "priority": 2}
        )
        _, listed = await center.api("GET", "/callbacks")
        _, one = await center.api("GET", f"/callbacks/{second['call_id']}")
        url = f"http://127.0.0.1:{center.daemon.api.port}"
        code = await asyncio.to_thread(
            cli_main, ["callback", "cancel", first["call_id"], "--api", url]
        )
        again = await center.api("POST", f"/callbacks/{first['call_id']}/cancel", {})
        _, after = await center.api("GET", "/callbacks")
        store = center.daemon.store
        await center.daemon.recorder.writer.wait_written(f"queue-callback:{first['call_id']}")
        rows = {r.call_id: r.status for r in await asyncio.to_thread(store.fetch_queue_callbacks)}
        _, over = await center.api("GET", f"/callbacks/{first['call_id']}")
        unknown = await center.api("GET", "/callbacks/web-nobody")
        waiting = center.daemon.router.waiting("sales")
        daemon = await center.restart()
        restored = [c["call_id"] for c in daemon.switchboard.callbacks.waiting()]
    assert [(c["number"], c["position"], c["dialling"]) for c in listed["callbacks"]] == [
        ("5555678", 1, False),
        ("5551234", 2, False),
    ], "the higher priority first"
    assert (one["status"], one["position"], one["number"]) == ("waiting", 1, "5555678")
    assert (over["status"], over["number"]) == ("cancelled", "5551234"), "from the records"
    assert unknown[0] == 404
    assert code == 0
    assert again[0] == 404, "cancelled already: no such request waits"
    assert [c["call_id"] for c in after["callbacks"]] == [second["call_id"]]
    assert rows == {first["call_id"]: "cancelled", second["call_id"]: "waiting"}
    assert waiting == 1, "the cancelled request left the queue"
    assert restored == [second["call_id"]], "a restart takes back only the one still waiting"


def test_the_command_line_says_what_a_callback_command_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, words in (
        (["callback", "request", "5551234"], "needs --queue"),
        (["callback", "cancel"], "needs the request's id"),
        (["callback", "list", "5551234"], "takes no number"),
    ):
        with pytest.raises(SystemExit) as stopped:
            cli_main(argv)
        assert stopped.value.code == 2
        assert words in capsys.readouterr().err


async def test_a_callback_asked_for_later_joins_the_queue_then_even_across_a_restart(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=CALLBACKS) as center:
        center.daemon.router.logout("1001", via="test")
        center.daemon.router.logout("1002", via="test")
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        _, due_soon = await center.api(
            "POST",
            "/callbacks",
            {"number": "5551234", "queue": "sales", "at": soon, "data": {"topic": "invoice"}},
        )
        _, due_later = await center.api(
            "POST", "/callbacks", {"number": "5555678", "queue": "sales", "at": later}
        )
        too_far = await center.api(
            "POST", "/callbacks", {"number": "5550000", "queue": "sales", "at": "2099-01-01"}
        )
        bad_time = await center.api(
            "POST", "/callbacks", {"number": "5550000", "queue": "sales", "at": "tomorrow"}
        )
        _, shown = await center.api("GET", "/status")
        daemon = await center.restart()
        _, after_restart = await center.api("GET", "/callbacks")
        async with asyncio.timeout(10):
            while daemon.router.waiting("sales") < 1:
                await asyncio.sleep(0.05)
        _, joined = await center.api("GET", "/callbacks")
        cancelled = await center.api("POST", f"/callbacks/{due_later['call_id']}/cancel", {})
        await daemon.recorder.writer.wait_written(f"queue-callback:{due_later['call_id']}")
        rows = {
            r.call_id: r.status for r in await asyncio.to_thread(daemon.store.fetch_queue_callbacks)
        }
    assert (due_soon["position"], due_soon["due"] is not None) == (None, True)
    (sales,) = [q for q in shown["queues"] if q["name"] == "sales"]
    assert sales["callbacks_later"] == 2
    assert "0 +2 later" in format_status(shown)
    assert too_far[0] == 409 and "more than a year ahead" in too_far[1]["error"]
    assert bad_time[0] == 400
    assert [(c["call_id"], c["position"]) for c in after_restart["callbacks"]] == [
        (due_soon["call_id"], None),
        (due_later["call_id"], None),
    ], "a restart keeps both for their time"
    assert joined["callbacks"][0]["data"] == {"topic": "invoice"}, "kept across the restart"
    assert [(c["call_id"], c["position"], c["due"]) for c in joined["callbacks"]] == [
        (due_soon["call_id"], 1, None),
        (due_later["call_id"], None, due_later["due"]),
    ], "the first one's time came: it waits in the queue"
    assert cancelled[0] == 200
    assert rows == {due_soon["call_id"]: "waiting", due_later["call_id"]: "cancelled"}


async def test_what_a_callback_request_brings_for_the_agents_screen_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=CALLBACKS) as center:
        ask = {"number": "5551234", "queue": "sales"}
        not_object = await center.api("POST", "/callbacks", {**ask, "data": ["x"]})
        bad_name = await center.api("POST", "/callbacks", {**ask, "data": {"1x": "y"}})
        too_long = await center.api("POST", "/callbacks", {**ask, "data": {"x": "y" * 201}})
        spaced = await center.api("POST", "/callbacks", {**ask, "number": "555 98-76"})
        letters = await center.api("POST", "/callbacks", {**ask, "number": "call me"})
        url = f"http://127.0.0.1:{center.daemon.api.port}"
        argv = ["callback", "request", "5551234", "--queue", "sales", "--api", url]
        code = await asyncio.to_thread(cli_main, [*argv, "--data", "topic=invoice 1234"])
        printed = capsys.readouterr().out
        shown = json.loads(printed)
    assert not_object[0] == bad_name[0] == too_long[0] == 400
    assert spaced == (200, {**spaced[1], "number": "5559876"}), "as typed into a web form"
    assert letters[0] == 400 and "is no phone number" in letters[1]["error"]
    assert "no variable name" in bad_name[1]["error"]
    assert code == 0 and shown["data"] == {"topic": "invoice 1234"}


async def test_a_script_filling_the_callback_form_is_slowed_down(tmp_path: Path) -> None:
    config = {"acd": {**CALLBACKS["acd"], "callback_requests_per_minute": 2}}
    async with running_center(tmp_path, config=config) as center:
        center.daemon.router.logout("1001", via="test")
        center.daemon.router.logout("1002", via="test")
        answers = [
            await center.api("POST", "/callbacks", {"number": f"555000{n}", "queue": "sales"})
            for n in range(3)
        ]
        waiting = center.daemon.router.waiting("sales")
    assert [status for status, _ in answers] == [200, 200, 429]
    assert "more than 2 callback requests a minute" in answers[2][1]["error"]
    assert waiting == 2, "the refused one took no place"


def test_the_request_rate_counts_the_last_sixty_seconds() -> None:
    rate = RequestRate()
    assert [rate.take(2, t) for t in (0.0, 10.0, 20.0)] == [True, True, False]
    assert rate.take(2, 59.9) is False, "the first one is still inside the minute"
    assert rate.take(2, 60.0) is True, "the first one has left it"
    assert rate.take(2, 65.0) is False


async def test_a_callback_asked_for_while_the_queue_is_closed_waits_for_its_opening(
    tmp_path: Path,
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[tomorrow.weekday()]
    opening = {"hours": {day: ["08:00-09:00"]}}  # open tomorrow morning only (UTC)
    config = {**CALLBACKS, "queues": {"sales": {"opening": opening}}}
    async with running_center(tmp_path, config=config) as center:
        _, asked = await center.api("POST", "/callbacks", {"number": "5551234", "queue": "sales"})
        soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
        _, later = await center.api(
            "POST", "/callbacks", {"number": "5555678", "queue": "sales", "at": soon}
        )
        await asyncio.sleep(0.8)
        _, shown = await center.api("GET", "/callbacks")
        waiting = center.daemon.router.waiting("sales")
    opens = datetime.combine(tomorrow, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
    assert asked["due"] == opens.isoformat(), "called back when the queue opens"
    assert later["due"] == opens.isoformat(), "a time when it is closed: its opening"
    assert {c["due"] for c in shown["callbacks"]} == {opens.isoformat()}
    assert waiting == 0, "nobody put in a closed queue"


async def test_a_call_back_falling_due_while_the_queue_is_closed_waits_for_the_opening(
    tmp_path: Path,
) -> None:
    opening = {"hours": {"mon-fri": ["08:00-18:00"]}}
    config = {**CALLBACKS, "queues": {"sales": {"opening": opening}}}
    async with running_center(tmp_path, config=config) as center:
        board = center.daemon.switchboard
        evening = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)  # a Tuesday, closed since 18:00
        board.clock = lambda: evening
        due = datetime.now(UTC) + timedelta(seconds=0.2)
        board.callbacks.later("c1+abandoned", "sales", "5551234", 0, due, data=())
        await asyncio.sleep(0.6)
        (shown,) = board.callbacks.waiting()
        waiting = center.daemon.router.waiting("sales")
    moved = datetime.fromisoformat(shown["due"]) - datetime.now(UTC)
    assert timedelta(hours=11, minutes=58) < moved < timedelta(hours=12), "at 08:00 next day"
    assert waiting == 0


SLOTS = merge(
    CALLBACKS,
    {
        "queues": {
            "sales": {
                "callback_slots": {"minutes": 15, "at_most": 2},
                "opening": {"hours": {"mon-sun": ["08:00-18:00"]}},
            }
        }
    },
)


async def test_a_full_slot_is_refused_with_the_next_one_and_a_nights_requests_spread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sales takes two callbacks a quarter of an hour. Alice promised a caller 10:00 (a
    callback code): a web form asks for 10:00 twice, the second hears 10:15 has room.
    Three requests for the evening, when sales is closed, go to the next morning: two at
    08:00, one at 08:15."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    after = tomorrow + timedelta(days=1)
    async with running_center(tmp_path, config=SLOTS) as center:
        ten = datetime.fromisoformat(f"{tomorrow}T10:00+00:00")
        center.daemon.switchboard.callbacks.promise("1796500000.1", "sales", "5559999", ten,
                                                  agent="1001")  # fmt: skip
        asked = []
        for n in range(2):
            body = {"number": f"555100{n}", "queue": "sales", "at": f"{tomorrow}T10:00"}
            asked.append(await center.api("POST", "/callbacks", body))
        for n in range(3):
            body = {"number": f"555200{n}", "queue": "sales", "at": f"{tomorrow}T22:00"}
            await center.api("POST", "/callbacks", body)
        _, slots = await center.api("GET", f"/callbacks/slots?queue=sales&date={tomorrow}")
        api = ["--api", f"http://127.0.0.1:{center.daemon.api.port}"]
        capsys.readouterr()
        by_cli = await asyncio.to_thread(
            cli_main, ["callback", "slots", "--queue", "sales", "--date", str(tomorrow), *api]
        )
        printed = json.loads(capsys.readouterr().out)
        _, listed = await center.api("GET", "/callbacks")
        unknown = await center.api("GET", "/callbacks/slots?queue=support")
    assert [a[0] for a in asked] == [200, 409], "Alice's promise takes a place at 10:00"
    refused = asked[1][1]
    assert refused["next_free"] == f"{tomorrow}T10:15:00+00:00"
    assert "takes no more callbacks at" in refused["error"] and "10:15" in refused["error"]
    by_start = {s["start"][11:16]: (s["taken"], s["free"]) for s in slots["slots"]}
    assert by_start["10:00"] == (2, 0) and by_start["10:15"] == (0, 2)
    assert len(slots["slots"]) == 40, "08:00 to 17:45, while sales is open"
    assert by_cli == 0 and printed == slots, "ops read the same from the command line"
    evening = sorted(c["due"] for c in listed["callbacks"] if c["number"].startswith("5552"))
    assert evening == [
        f"{after}T08:00:00+00:00",
        f"{after}T08:00:00+00:00",
        f"{after}T08:15:00+00:00",
    ]
    assert unknown[0] == 404 and "no callback_slots" in unknown[1]["error"]


def test_the_report_says_what_became_of_each_callback_and_how_late(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ops check their promises: a request answered 3 minutes after its time, one that
    expired, one still waiting (support's, left out by --queue)."""
    config = tmp_path / "callcenter.yaml"
    config.write_text(
        "pbx: {type: asterisk, ami: {secret: x}}\nrecords: {cdr_path: var/cdr.sqlite3}\n"
    )
    (tmp_path / "var").mkdir()
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    due = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    try:
        for call_id, queue, at in (
            ("web-a", "sales", due),
            ("web-b", "sales", due + timedelta(minutes=15)),
            ("web-c", "support", due + timedelta(hours=1)),
        ):
            store.write_queue_callback(QueueCallback(call_id, queue, "5551000", at, updated=at))
        store.update_queue_callback(
            "web-a", updated=due + timedelta(minutes=3), status="answered", attempts=1
        )
        store.update_queue_callback(
            "web-b", updated=due + timedelta(hours=4, minutes=15), status="expired", attempts=2
        )
    finally:
        store.close()
    args = ["report", str(config), "--callbacks"]
    assert cli_main([*args, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert cli_main([*args, "--queue", "sales", "--since", "2026-12-05 10:10", "--until",
                     "2026-12-06", "--tz", "UTC"]) == 0  # fmt: skip
    table = capsys.readouterr().out.splitlines()
    assert [(r["id"], r["status"], r["attempts"], r["settled_after"]) for r in rows] == [
        ("web-a", "answered", 1, 180),
        ("web-b", "expired", 2, 4 * 3600),
        ("web-c", "waiting", 0, None),
    ]
    assert table[0] == "requested,id,queue,number,priority,status,attempts,settled_after"
    assert [line.split(",")[1] for line in table[1:]] == ["web-b"]
