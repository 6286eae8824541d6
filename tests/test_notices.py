"""Notices: Sam, who leads the night team, tells his agents "Team meeting at 15:00" from his
desktop; the night agents see it on theirs, the day agents do not, the wallboard shows it;
it goes at its time or when he takes it down. Ops post one for everyone from the command
line; the board keeps a bounded number."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.errors import UnknownNotice
from callcenter.events import EngineEvent, EventBus, NoticePosted, NoticeRead, NoticeTakenDown
from callcenter.live.notices import MAX_NOTICES, NoticeBoard
from callcenter.testing import DesktopBrowser, running_center

TEAMS: dict[str, Any] = {
    "agents": {
        "1001": {"pin": "1111", "team": "day"},
        "1002": {"pin": "2222", "team": "night"},
    },
    "supervisors": {
        "2000": {"pin": "2468", "teams": ["night"]},
        "2001": {"name": "Ada", "device": "PJSIP/2001", "pin": "1357"},
    },
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_notice_stands_for_its_time_and_its_teams_then_goes() -> None:
    bus = EventBus()
    seen: list[EngineEvent] = []
    bus.subscribe(seen.append, (NoticePosted, NoticeTakenDown))
    clock = Clock()
    board = NoticeBoard(bus, clock)
    meeting = board.post("  Team meeting\n at 15:00 ", by="supervisor:2000", teams=["night"],
                         minutes=30)  # fmt: skip
    everyone = board.post("Billing is down: take messages", by="cli")
    night, day = board.standing("night"), board.standing("day")
    clock.now += timedelta(minutes=31)
    later = board.standing("night")
    with pytest.raises(UnknownNotice):
        board.take_down(meeting.id, by="supervisor:2000")
    board.take_down(everyone.id, by="cli")
    assert meeting.text == "Team meeting at 15:00", "one line"
    assert [n.id for n in night] == [everyone.id, meeting.id], "newest first"
    assert [n.id for n in day] == [everyone.id]
    assert [n.id for n in later] == [everyone.id]
    assert board.standing(everyone=True) == []
    assert [(type(e).__name__, getattr(e, "why", "")) for e in seen] == [
        ("NoticePosted", ""),
        ("NoticePosted", ""),
        ("NoticeTakenDown", "expired"),
        ("NoticeTakenDown", "taken-down"),
    ]


def test_a_notice_is_one_line_for_a_while_and_the_board_keeps_the_newest() -> None:
    bus = EventBus()
    board = NoticeBoard(bus, Clock())
    for text, minutes, words in (
        (" ", 60, "needs some text"),
        ("x" * 281, 60, "at most 280 characters"),
        ("ok", 0, "1 to 1440 minutes"),
        ("ok", 1441, "1 to 1440 minutes"),
    ):
        with pytest.raises(ValueError, match=words):
            board.post(text, by="api", minutes=minutes)
    first = board.post("first", by="api")
    for n in range(MAX_NOTICES):
        board.post(f"notice {n}", by="api")
    kept = board.standing(everyone=True)
    assert len(kept) == MAX_NOTICES and first.id not in {n.id for n in kept}


async def test_sam_tells_the_night_team_and_only_they_and_the_wallboard_see_it(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=TEAMS) as center:
        port = center.daemon.api.port
        sam = DesktopBrowser(port)
        await sam.sign_in("2000", "2468", role="supervisor")
        form = await sam.get("/desktop/notice")
        posted = await sam.post(
            "/desktop/act",
            {**form.form("Post").fields, "text": "Team meeting at 15:00", "minutes": "30"},
        )
        bob = DesktopBrowser(port)
        bobs = await bob.sign_in("1002", "2222")
        alice = DesktopBrowser(port)
        alices = await alice.sign_in("1001", "1111")
        board = await asyncio.to_thread(_get, port, "/wallboard")
        night_board = await asyncio.to_thread(_get, port, "/wallboard?team=day")
        listed = await center.api("GET", "/notices")
        _, status = await center.api("GET", "/status")
        ada = DesktopBrowser(port)
        adas = await ada.sign_in("2001", "1357", role="supervisor")
        ops = await center.api(
            "POST", "/notices", {"text": "Fire drill at 16:00", "minutes": 10, "by": "ops"}
        )
        sams = await sam.get()
        refused = await sam.press("Take down", picking={"id": ops[1]["id"]})
        taken = await sam.press("Take down", picking={"id": listed[1]["notices"][0]["id"]})
        after = await bob.get()
    assert form.refresh == "", "no reload while typing"
    assert posted.texts["said"].startswith("Your notice stands until ")
    (shown,) = bobs.notices
    assert shown.startswith("Team meeting at 15:00") and "Sam" in shown
    assert alices.notices == [], "Alice is in the day team"
    assert "Team meeting at 15:00" in board and "Team meeting" not in night_board
    (notice,) = listed[1]["notices"]
    assert re.search(
        r"^Notice for night until \d\d:\d\d: Team meeting at 15:00$", format_status(status), re.M
    )
    assert notice["teams"] == ["night"] and notice["by"] == "supervisor:2000"
    assert "Team meeting at 15:00" in " ".join(adas.notices), "Ada leads every agent"
    assert ops[0] == 200
    assert len(sams.notices) == 2, "Sam's agents see the drill too"
    assert refused.texts["error"] == "that notice is for agents of other teams too: not yours"
    assert taken.texts["said"] == "Notice taken down"
    assert after.notices == ["Fire drill at 16:00 ops, until " + after.notices[0][-5:]]


async def test_sam_sends_bob_a_message_that_only_bob_reads(tmp_path: Path) -> None:
    """From Bob's page Sam sends him a line: Bob's desktop shows it, nobody else's, nor
    the wallboard; Sam may not message Alice (another team); ops message Alice by the
    API, and Sam can take down his own message."""
    async with running_center(tmp_path, config=TEAMS) as center:
        port = center.daemon.api.port
        sam = DesktopBrowser(port)
        await sam.sign_in("2000", "2468", role="supervisor")
        page = await sam.get("/desktop/agent?id=1002")
        sent = await sam.press("Send", text="Take your break after this call", minutes="15")
        stranger = await sam.post(
            "/desktop/act",
            {"action": "notice-post", "agent": "1001", "text": "hi", "minutes": "15"},
        )
        bobs = await DesktopBrowser(port).sign_in("1002", "2222")
        alices = await DesktopBrowser(port).sign_in("1001", "1111")
        board = await asyncio.to_thread(_get, port, "/wallboard")
        night = await asyncio.to_thread(_get, port, "/wallboard?team=night")
        ops = await center.api("POST", "/notices", {"text": "Call IT", "agents": ["1001"]})
        both = await center.api(
            "POST", "/notices", {"text": "x", "agents": ["1001"], "teams": ["day"]}
        )
        nobody = await center.api("POST", "/notices", {"text": "x", "agents": ["1999"]})
        alices_after = await DesktopBrowser(port).sign_in("1001", "1111")
        sams = await sam.get()
        retained = center.daemon.notices.standing(everyone=True)
        mine = next(n for n in retained if n.agents == ("1002",))
        taken = await sam.press("Take down", picking={"id": mine.id})
    assert "A message to them" in page.body
    assert sent.texts["said"].startswith("Your message to 1002 stands until ")
    assert stranger.texts["error"] == "agent 1001 is not in your teams"
    (told,) = bobs.notices
    assert told.startswith("Take your break after this call Sam, until ")
    assert alices.notices == []
    assert "Take your break" not in board and "Take your break" not in night
    assert ops[0] == 200 and ops[1]["agents"] == ["1001"] and ops[1]["teams"] == []
    assert both[0] == 400 and "teams or for agents, not both" in both[1]["error"]
    assert nobody[0] == 404 and "no agent 1999" in nobody[1]["error"]
    assert [n.split(" ")[0] for n in alices_after.notices] == ["Call"]
    assert len(sams.notices) == 1, "Sam sees his message to Bob, not the one to Alice"
    assert taken.texts["said"] == "Notice taken down"


async def test_ops_post_and_take_down_notices_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path, config=TEAMS) as center:
        api = ["--api", f"http://127.0.0.1:{center.daemon.api.port}"]
        capsys.readouterr()
        posted = await asyncio.to_thread(
            cli_main, ["notice", "post", "Lunch is served", "--team", "day", "--minutes", "5", *api]
        )
        notice = json.loads(capsys.readouterr().out)
        unknown = await asyncio.to_thread(
            cli_main, ["notice", "post", "x", "--team", "weekend", *api]
        )
        refusal = capsys.readouterr().err
        listed = await asyncio.to_thread(cli_main, ["notice", "list", *api])
        shown = json.loads(capsys.readouterr().out)
        down = await asyncio.to_thread(cli_main, ["notice", "take-down", notice["id"], *api])
        capsys.readouterr()
        again = await asyncio.to_thread(cli_main, ["notice", "take-down", notice["id"], *api])
        gone = capsys.readouterr().err
    assert (posted, listed, down) == (0, 0, 0)
    assert notice["teams"] == ["day"] and notice["by"] == "cli"
    assert unknown == 1 and "no agent is in team weekend" in refusal
    assert [n["text"] for n in shown["notices"]] == ["Lunch is served"]
    assert again == 1 and "no notice" in gone


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as answer:
        return str(answer.read().decode())


async def test_notices_still_standing_are_back_on_the_board_after_a_restart(
    tmp_path: Path,
) -> None:
    """Sam's notice for the night and his message to Bob outlive a restart (an upgrade at
    14:00); the one he took down before it does not come back."""
    async with running_center(tmp_path, config=TEAMS) as center:
        _, meeting = await center.api(
            "POST", "/notices", {"text": "Team meeting at 15:00", "teams": ["night"]}
        )
        _, message = await center.api(
            "POST", "/notices", {"text": "Call IT back", "agents": ["1002"], "minutes": 30}
        )
        _, gone = await center.api("POST", "/notices", {"text": "Billing is down"})
        await center.api("POST", f"/notices/{gone['id']}/take-down", {})
        await center.restart()
        back = center.daemon.notices.standing(everyone=True)
        bobs = await DesktopBrowser(center.daemon.api.port).sign_in("1002", "2222")
    assert [(n.id, n.text, n.teams, n.agents) for n in back] == [
        (message["id"], "Call IT back", (), ("1002",)),
        (meeting["id"], "Team meeting at 15:00", ("night",), ()),
    ]
    assert back[0].until.isoformat(timespec="seconds") == message["until"]
    assert [n.split(" ")[0] for n in bobs.notices] == ["Call", "Team"]


def test_a_notice_whose_time_passed_while_the_daemon_was_stopped_is_not_put_back() -> None:
    from callcenter.records.notices import Notice

    clock = Clock()
    bus = EventBus()
    said: list[EngineEvent] = []
    bus.subscribe(said.append)
    board = NoticeBoard(bus, clock=clock)
    hour = timedelta(hours=1)
    kept = [
        Notice("a", "Lunch menu", "api", (), clock.now - 2 * hour, clock.now - hour),
        Notice("b", "Meeting at 15:00", "api", ("night",), clock.now - hour, clock.now + hour),
    ]
    assert board.restore(kept) == 1
    assert [n.id for n in board.standing(everyone=True)] == ["b"]
    assert [(type(e).__name__, getattr(e, "notice_id", "")) for e in said] == [
        ("NoticeTakenDown", "a")
    ], "the records are told the expired one is gone; the standing one is not said again"


async def test_sam_sees_when_bob_read_his_message_even_after_a_restart(tmp_path: Path) -> None:
    """Sam's message to Bob says "not read yet" on Sam's desktop until Bob's desktop shows
    it; then who read it and when, also after a restart. A team notice is not followed."""
    async with running_center(tmp_path, config=TEAMS) as center:
        port = center.daemon.api.port
        read: list[EngineEvent] = []
        center.daemon.bus.subscribe(read.append, kinds=(NoticeRead,))
        sam = DesktopBrowser(port)
        await sam.sign_in("2000", "2468", role="supervisor")
        await sam.get("/desktop/agent?id=1002")
        await sam.press("Send", text="Take your break after this call", minutes="15")
        await center.api("POST", "/notices", {"text": "Meeting at 15:00", "teams": ["night"]})
        unread = await sam.get()
        bob = DesktopBrowser(port)
        await bob.sign_in("1002", "2222")
        await bob.get()
        seen = await sam.get()
        await center.restart()
        sam_again = DesktopBrowser(center.daemon.api.port)
        await sam_again.sign_in("2000", "2468", role="supervisor")
        after_restart = await sam_again.get()
        _, listed = await center.api("GET", "/notices")
    message = next(n for n in unread.notices if n.startswith("Take your break"))
    assert "until" in message and message.endswith("; not read yetTake down")
    assert [type(e).__name__ for e in read] == ["NoticeRead"], "once, however often shown"
    (message,) = [n for n in seen.notices if n.startswith("Take your break")]
    assert re.search(r"; read: Bob \d\d:\d\dTake down$", message), message
    assert any(re.search(r"; read: Bob \d\d:\d\dTake down$", n) for n in after_restart.notices)
    meeting = next(n for n in seen.notices if n.startswith("Meeting"))
    assert "read" not in meeting.split(",")[-1]
    (kept,) = [n for n in listed["notices"] if n["agents"] == ["1002"]]
    assert list(kept["read_by"]) == ["1002"]
