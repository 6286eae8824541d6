"""The wallboard, as the floor's screen shows it (``GET /wallboard``): queues with their
waiting callers and today's figures, agents with their state, over real TCP against both
demo PBXs; read here as a browser would, cell by cell."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from callcenter.cli import format_status
from callcenter.live.today import AgentDay, QueueDay
from callcenter.live.wallboard import Board, render
from callcenter.testing import running_center, until

TOKEN = "a-wallboard-token-1234"


class Cells(HTMLParser):
    """The page's table rows, each as its cells' text, and the refresh it asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.banners: list[str] = []
        self.refresh = ""
        self._cell: list[str] | None = None
        self._banner = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "meta" and ("http-equiv", "refresh") in attrs:
            self.refresh = dict(attrs).get("content") or ""
        elif tag == "div":
            self._banner = True
            self.banners.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "div":
            self._banner = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._banner:
            self.banners[-1] += data

    def row(self, first: str) -> list[str]:
        (found,) = [r for r in self.rows if r and r[0].split(" ")[0] == first]
        return found


def read(port: int, query: str = "", token: str | None = None) -> tuple[int, str, Cells]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/wallboard{query}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            status, kind, body = answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as exc:
        status, kind, body = exc.code, exc.headers["Content-Type"], exc.read()
    cells = Cells()
    if kind.startswith("text/html"):
        cells.feed(body.decode())
    return status, kind, cells


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_the_floor_sees_who_waits_who_talks_and_todays_figures(
    tmp_path: Path, transport: str
) -> None:
    """Alice talks to a support caller; Bob is at lunch; a sales caller waits (Alice is
    sales' only agent). Once the support caller hung up, today's figures count the call."""
    config = {"api": {"wallboard_title": "Support, Lyon"}}
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        router = center.daemon.router
        router.pause("1002", "lunch", via="test")
        talking = await center.caller_presses("5550001", "2")
        await talking.wait_bridged(timeout=5)
        waiting = await center.caller_presses("5550002", "1")
        await until(lambda: router.waiting("sales") == 1)
        port = center.daemon.api.port
        status, kind, during = await asyncio.to_thread(read, port)
        await talking.hangup()
        await until(lambda: router.agents["1001"].state != "on_call")
        _, _, after = await asyncio.to_thread(read, port)
        _, snapshot = await center.api("GET", "/status")
        _, _, sales_only = await asyncio.to_thread(read, port, "?queues=sales&refresh=15")
        bad_refresh = await asyncio.to_thread(read, port, "?refresh=0")
        no_queue = await asyncio.to_thread(read, port, "?queues=billing")
        await waiting.hangup()
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert during.refresh == "5"
    assert during.rows[0][:5] == ["queue", "waiting", "longest wait", "agents free", "callbacks"]
    sales = during.row("sales")
    assert sales[1:4] == ["1", sales[2], "0 / 1"], "one caller waits, Alice is busy"
    assert during.row("Alice")[1] == "on a call"
    assert during.row("Bob")[1] == "paused: lunch"
    assert not [r for r in during.rows if r and r[0] == "Carol"], "logged out: not shown"
    support = after.row("support")
    assert support[5:7] == ["1", "1"], "offered 1, answered 1 today"
    assert support[8] == "100 % 100 % of offered"
    assert after.row("Alice")[3] == "1", "one call today"
    shown = format_status(snapshot).splitlines()
    (support_line,) = [x for x in shown if x.startswith("support ")]
    assert support_line.endswith("today 1 offered, 1 answered, 0 abandoned, 100 % in service level")
    assert {a["id"]: a["today"]["calls"] for a in snapshot["agents"]}["1001"] == 1
    assert [r[0] for r in sales_only.rows[1:] if r] == ["sales", "agent", "Alice"]
    assert sales_only.refresh == "15"
    assert bad_refresh[0] == 400 and no_queue[0] == 404


async def test_with_a_token_the_screen_passes_it_in_the_address(tmp_path: Path) -> None:
    config = {"api": {"token": TOKEN}}
    async with running_center(tmp_path, config=config) as center:
        port = center.daemon.api.port
        refused = await asyncio.to_thread(read, port)
        in_address = await asyncio.to_thread(read, port, f"?token={TOKEN}")
        in_header = await asyncio.to_thread(read, port, "", TOKEN)
    assert refused[0] == 401
    assert in_address[0] == in_header[0] == 200


def test_a_lost_pbx_an_alert_and_a_closed_queue_are_on_the_screen() -> None:
    def queue(name: str, waiting: int) -> dict[str, object]:
        return {"name": name, "waiting": waiting, "longest_wait": 754.0, "available": 0,
                "staffed": 2, "callbacks": 1, "members": []}  # fmt: skip

    page = render(
        Board(
            title="Night <shift>",
            now=datetime(2026, 12, 6, 22, 5, 9, tzinfo=UTC),
            queues=[queue("sales", 7), queue("support", 0)],
            agents=[],
            queue_days={
                "sales": QueueDay(
                    offered=40, answered=30, abandoned=10, in_service_level=24, wait_total=900.0
                ),
                "support": QueueDay(offered=2, abandoned=2),
            },
            agent_days={"1001": AgentDay()},
            alerts={"sales"},
            closed={"support": "closed until 08:00"},
            waits={"sales": 185.0, "support": 0.0},
            pbx_down="AMI connection lost",
        )
    )
    cells = Cells()
    cells.feed(page)
    assert cells.banners == ["PBX link down: AMI connection lost"]
    assert '<tr class="alert"><td>sales</td>' in page
    assert "Night &lt;shift&gt;" in page and "22:05:09" in page
    assert cells.row("sales")[1:] == ["7", "12:34", "0 / 2", "1", "40", "30", "10 (25 %)",
                                      "80 % 60 % of offered", "0:30", "3:05"]  # fmt: skip
    assert cells.row("support")[-1] == "-", "closed: nobody waits for it now"
    assert cells.row("support")[0] == "support closed: closed until 08:00"
    assert cells.row("support")[8] == "- 0 % of offered", "none answered, two gave up"


async def test_a_team_leader_s_screen_shows_their_team_and_the_queues_it_works(
    tmp_path: Path,
) -> None:
    """Bob (team night) works support only: his screen leaves Alice and sales out."""
    config = {"agents": {"1002": {"team": "night"}}}
    async with running_center(tmp_path, config=config) as center:
        port = center.daemon.api.port
        status, _, night = await asyncio.to_thread(read, port, "?team=night")
        nobody = await asyncio.to_thread(read, port, "?team=day")
    assert status == 200
    assert [r[0] for r in night.rows if r] == ["queue", "support", "agent", "Bob"]
    assert nobody[0] == 404
