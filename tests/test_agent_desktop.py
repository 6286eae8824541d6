"""The agent desktop (``/desktop``), as an agent uses it in a browser: sign in with the PIN,
see the call that rings and the caller on it, press the buttons; over real TCP against both
demo PBXs, read as a browser reads the pages (:class:`callcenter.testing.DesktopBrowser`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from test_campaigns import campaign as campaign_config
from test_campaigns import scene

from callcenter.events import CallDisposed, EngineEvent
from callcenter.live import api as api_module
from callcenter.live.api import client_address
from callcenter.live.desktop import (
    ALL_TRIES,
    PIN_TRIES,
    Desktop,
    DesktopSessions,
    SignInGuard,
    render,
)
from callcenter.live.today import AgentDay
from callcenter.records.voicemails import VoicemailMessage
from callcenter.testing import DesktopBrowser, DesktopPage, merge, running_center, until

#: Alice (1001, PIN 1111) takes sales and support; Bob (1002) support; Carol (1003, PIN
#: 4321) is logged out and in sales. Two codes: a sale, and a callback with its time.
DESK: dict[str, Any] = {
    "agents": {"1001": {"pin": "1111"}},
    "queues": {"sales": {"agents": ["1001", "1003"], "wrapup": 0}},
    "dispositions": {"sale": "a sale", "later": {"callback": True}},
    "acd": {"callback_dial": "PJSIP/${number}", "callback_allow": ["_555XXXX"]},
}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_alice_signs_in_with_her_pin_and_works_a_call_from_the_page(
    tmp_path: Path, transport: str
) -> None:
    """A wrong PIN is refused; with hers Alice sees she is free. A sales caller rings
    through: the page shows his number and queue; she holds him, takes him back, gives the
    code "sale", hangs up, pauses for lunch, comes back, and signs out."""
    async with running_center(tmp_path, transport=transport, config=DESK) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        disposed: list[EngineEvent] = []
        board = center.daemon.switchboard
        board.bus.subscribe(disposed.append, (CallDisposed,))
        router = center.daemon.router
        browser = DesktopBrowser(center.daemon.api.port)
        first = await browser.get()
        wrong = await browser.sign_in("1001", "9999")
        free = await browser.sign_in("1001", "1111")
        caller = await center.caller_presses("5550001", "1")
        await caller.wait_bridged(timeout=5)
        talking = await browser.get()
        held = await browser.press("Hold")
        on_hold_in_status = [c["on_hold"] for c in (await center.api("GET", "/status"))[1]["calls"]]
        back = await browser.press("Take off hold")
        coded = await browser.press("Code: sale")
        note_page = await browser.press("Code with a note …")
        noted = await browser.press("Give the code", code="sale", note="wants the brochure")
        hung_up = await browser.press("Hang up")
        await caller.wait_ended(timeout=5)
        paused = await browser.press("Pause: lunch")
        reason = router.agents["1001"].pause_reason
        await center.cdr(caller.uniqueid)
        ready = await browser.press("Ready")
        gone = await browser.press("Sign out of this page")
        after = await browser.get()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
    assert first.status == 200 and first.buttons == ["Sign in"]
    assert (wrong.status, wrong.texts["error"]) == (401, "Wrong agent or PIN.")
    assert (free.status, free.texts["state"]) == (200, "free")
    assert free.refresh == "3;url=/desktop?refresh=3", "the page keeps itself up to date"
    assert talking.texts["state"] == "on a call"
    assert talking.rows["Number"] == "5550001"
    assert talking.rows["Queue"] == "sales"
    assert {"Hold", "Transfer to the supervisor", "Hang up", "Code: sale"} <= set(talking.buttons)
    assert "Log in to my queues" not in talking.buttons
    assert held.texts["said"] == "The caller is on hold"
    assert held.rows["Hold"] == "the caller is on hold"
    assert on_hold_in_status == [True]
    assert back.texts["said"] == "Back with the caller" and "Hold" not in back.rows
    assert coded.texts["said"] == "Code sale given to the call"
    assert note_page.refresh == "", "no reload while typing"
    assert noted.texts["said"] == "Code sale given to the call"
    assert [(e.code, e.agent, e.note) for e in disposed if isinstance(e, CallDisposed)] == [
        ("sale", "1001", ""),
        ("sale", "1001", "wants the brochure"),
    ]
    assert hung_up.texts["said"] == "Hung up"
    assert cdr["hung_up_by"] == "agent" and cdr["agent"] == "1001"
    assert (paused.texts["state"], reason) == ("paused: lunch", "lunch")
    assert paused.buttons[0] == "Ready"
    assert ready.texts["state"] == "free"
    (today,) = [r for r in ready.table_rows if len(r) == 6 and r[1] == "5550001"]
    assert today[2:] == ["sales", "0:00", "sale", ""], "today's calls, with the code given"
    assert gone.buttons == after.buttons == ["Sign in"]


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_carol_logs_in_from_the_page_and_transfers_her_caller_into_support(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=DESK) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1003", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        router = center.daemon.router
        router.pause("1001", "break", via="test")
        browser = DesktopBrowser(center.daemon.api.port)
        logged_out = await browser.sign_in("1003", "4321")
        logged_in = await browser.press("Log in to my queues")
        caller = await center.caller_presses("5550002", "1")
        await caller.wait_bridged(timeout=5)
        await until(lambda: router.agents["1003"].state == "on_call")
        talking = await browser.get()
        moved = await browser.press("Transfer to queue support")
        await bob.wait_answered(timeout=5)
        await until(lambda: router.agents["1002"].state == "on_call")
        await caller.hangup()
        await center.idle()
        cdr = await center.cdr(caller.uniqueid)
        later = await browser.get()
    assert logged_out.texts["state"] == "logged out"
    assert logged_out.buttons[0] == "Log in to my queues"
    assert logged_in.texts == {"said": "Logged in", "state": "free"}
    assert "Transfer to queue sales" not in talking.buttons, "not into the queue it came from"
    assert moved.texts["said"] == "Transferred to support"
    assert cdr["agent"] == "1003", "the first agent who answered"
    assert cdr["transfer_path"] == "1003>support>1002"
    (listed,) = [r for r in later.table_rows if len(r) == 6 and r[1] == "5550002"]
    assert (listed[2], listed[5]) == ("support", "to support"), "her calls: where it went"


async def test_a_callback_code_and_a_number_to_dial_have_pages_of_their_own(
    tmp_path: Path,
) -> None:
    """The page reloads itself: what needs typing (the time to call back, a number) is
    asked on a page that does not."""
    config = merge(DESK, {"acd": {"dial_out": "PJSIP/${number}", "dial_out_allow": ["_555XXXX"]}})
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        customer = center.add_phone("PJSIP/5550404", answer_after=0.1, hangup_after=0.3)
        router = center.daemon.router
        board = center.daemon.switchboard
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        caller = await center.caller_talks_to_an_agent("5550003", key="1")
        await until(lambda: router.agents["1001"].state == "available")
        free = await browser.get()
        asked = await browser.press("Code: later …")
        at = datetime.now(UTC) + timedelta(hours=2)
        local = at.astimezone(ZoneInfo(board.config.ivr.timezone))
        coded = await browser.press("Give the code", at=local.strftime("%Y-%m-%dT%H:%M"))
        past = await browser.get("/desktop/callback?code=later")
        refused = await browser.press("Give the code", at="2020-01-01T10:00")
        dial_page = await browser.press("Dial a number …")
        dialled = await browser.press("Dial", number="5550404")
        await customer.wait_answered(timeout=5)
        await until(lambda: router.agents["1001"].state == "available", timeout=5)
        no_code = await browser.get("/desktop/callback?code=sale")
        await center.idle()
        timed = dict(board.callbacks.promises)
    assert "Dial a number …" in free.buttons
    assert free.rows["Number"] == "5550003", "the last call, to give it its code"
    assert asked.refresh == "", "no reload while typing"
    assert asked.forms[0].fields["code"] == "later"
    assert coded.texts["said"] == "Code later given to the call"
    promised = [r for r in coded.table_rows if len(r) == 3 and r[1] == "5550003"]
    assert [r[2] for r in promised] == ["sales"], "her page lists the callback she promised"
    assert promised[0][0].endswith(local.strftime("%H:%M"))
    assert list(timed) == [f"{caller.uniqueid}+callback"]
    assert past.status == 200
    assert "has passed" in refused.texts["error"]
    assert dial_page.refresh == "" and "number" in dial_page.form("Dial").fields
    assert dialled.texts["said"] == "Dialling 5550404"
    assert customer.rings == 1
    assert no_code.status == 404
    assert no_code.texts["error"] == "no callback code 'sale' (dispositions)"


async def test_carol_joins_and_leaves_the_queues_open_to_agents_from_her_page(
    tmp_path: Path,
) -> None:
    """Support has digits (agents join it with *45 2): Carol's page offers it, and she
    leaves it again. Sales has none: its membership is her supervisor's to change, and a
    forged form saying otherwise is refused."""
    config = merge(DESK, {"queues": {"support": {"digits": "2"}}})
    async with running_center(tmp_path, config=config) as center:
        router = center.daemon.router
        browser = DesktopBrowser(center.daemon.api.port)
        first = await browser.sign_in("1003", "4321")
        joined = await browser.press("Join support")
        after_join = router.agent_view("1003")["queues"]
        left = await browser.press("Leave support")
        after_leave = router.agent_view("1003")["queues"]
        forged = await browser.post("/desktop/act", {"action": "leave", "queue": "sales"})
        still = router.agent_view("1003")["queues"]
    assert "Join support" in first.buttons
    assert not [b for b in first.buttons if b.startswith("Leave")], "sales is not open"
    assert joined.texts["said"] == "You take support calls now"
    assert sorted(after_join) == ["sales", "support"]
    assert "Leave support" in joined.buttons and "Join support" not in joined.buttons
    assert left.texts["said"] == "You no longer take support calls"
    assert after_leave == ["sales"]
    assert forged.texts["error"] == (
        "Queue sales is not open to agents joining or leaving it themselves "
        "(queues.sales.digits): ask a supervisor."
    )
    assert still == ["sales"]


async def test_an_agent_without_a_pin_is_told_what_the_desktop_needs(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        browser = DesktopBrowser(center.daemon.api.port)
        page = await browser.sign_in("1002", "")
        nobody = await browser.sign_in("9999", "1234")
    assert page.status == 403
    assert "agents.1002.pin" in page.texts["error"]
    assert (nobody.status, nobody.texts["error"]) == (401, "Wrong agent or PIN.")


async def test_five_wrong_pins_hold_that_agents_sign_in_but_not_the_others(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=DESK) as center:
        browser = DesktopBrowser(center.daemon.api.port)
        tries = [(await browser.sign_in("1003", "0000")).status for _ in range(PIN_TRIES)]
        held = await browser.sign_in("1003", "4321")
        alice = await DesktopBrowser(center.daemon.api.port).sign_in("1001", "1111")
    assert tries == [401] * PIN_TRIES
    assert held.status == 429, "even the right PIN waits"
    assert held.texts["error"] == "Too many wrong PINs: try again in 300 seconds."
    assert alice.texts["state"] == "free"


async def test_behind_a_trusted_proxy_wrong_pins_hold_only_the_guessers_machine(
    tmp_path: Path,
) -> None:
    """Every browser reaches the daemon through the proxy on 127.0.0.1: trusted, its
    X-Forwarded-For tells the machines apart; not trusted, the header is ignored and every
    machine shares the proxy's hold."""
    trusting = merge(DESK, {"api": {"trusted_proxies": ["127.0.0.0/8"]}})
    for config, alice_after in ((trusting, 303), (DESK, 429)):
        async with running_center(tmp_path, config=config) as center:
            port = center.daemon.api.port
            guesser = DesktopBrowser(port, forwarded_for="10.0.0.9")
            for _ in range(PIN_TRIES):
                await guesser.sign_in("1001", "0000")
            held = await guesser.sign_in("1001", "1111")
            alice = DesktopBrowser(port, forwarded_for="10.0.0.66, 10.0.0.7")
            page = await alice.post("/desktop/sign-in", {"id": "1001", "pin": "1111"}, follow=False)
        assert held.status == 429
        assert page.status == alice_after


@pytest.mark.parametrize(
    ("peer", "forwarded", "seen"),
    [
        ("127.0.0.1", "10.0.0.7", "10.0.0.7"),
        ("127.0.0.1", "6.6.6.6, 10.0.0.7", "10.0.0.7"),
        ("127.0.0.1", "10.0.0.7, 127.0.0.2", "10.0.0.7"),
        ("127.0.0.1", "127.0.0.3, 127.0.0.2", "127.0.0.3"),
        ("127.0.0.1", "10.0.0.7, not-an-address", "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("10.0.0.5", "10.0.0.7", "10.0.0.5"),
        ("::ffff:127.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_is_the_nearest_address_no_trusted_proxy_holds(
    peer: str, forwarded: str, seen: str
) -> None:
    assert client_address(peer, forwarded, ["127.0.0.0/8"]) == seen


@given(st.lists(st.ip_addresses(v=4).map(str), max_size=5), st.ip_addresses(v=4).map(str))
def test_what_a_client_writes_is_never_believed_past_an_untrusted_hop(
    written: list[str], client: str
) -> None:
    """A client may write any X-Forwarded-For; the trusted proxy appends the address it
    saw. Unless that address is a trusted proxy itself, it is the one counted."""
    trusted = ["127.0.0.0/8", "10.0.0.0/8"]
    forwarded = ", ".join([*written, client])
    seen = client_address("127.0.0.1", forwarded, trusted)
    assert seen in [*written, client, "127.0.0.1"]
    if not client.startswith(("127.", "10.")):
        assert seen == client
    assert client_address("192.0.2.1", forwarded, trusted) == "192.0.2.1", "not a proxy"


async def test_a_page_of_another_site_cannot_post_to_the_desktop_or_the_api(
    tmp_path: Path,
) -> None:
    """A browser posts forms anywhere without asking: a page of another site could make an
    agent's browser pause them or sign in. Its Origin gives it away."""
    config = merge(DESK, {"api": {"cors_origins": ["https://crm.example"]}})
    async with running_center(tmp_path, config=config) as center:
        port = center.daemon.api.port
        evil = DesktopBrowser(port, origin="https://evil.example")
        refused = await evil.sign_in("1001", "1111")
        api = await _post(port, "/agents/1001/pause", "https://evil.example")
        crm = await _post(port, "/agents/1001/pause", "https://crm.example")
        proxied = await _post(port, "/agents/1001/unpause", "https://desk.example", "desk.example")
        state = center.daemon.router.agents["1001"].state
    assert refused.status == 403
    assert api.startswith("HTTP/1.1 403")
    assert crm.startswith("HTTP/1.1 200"), "an origin of api.cors_origins may"
    assert proxied.startswith("HTTP/1.1 200"), "behind a proxy: X-Forwarded-Host"
    assert state == "available"


async def _post(port: int, path: str, origin: str, forwarded: str = "") -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = f"X-Forwarded-Host: {forwarded}\r\n" if forwarded else ""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\n{extra}"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".encode()
    )
    data = await reader.read()
    writer.close()
    return data.decode()


async def test_the_desktop_is_turned_off_by_a_reload_without_a_restart(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=DESK) as center:
        browser = DesktopBrowser(center.daemon.api.port)
        on = await browser.sign_in("1001", "1111")
        path = tmp_path / "callcenter.yaml"
        settings = yaml.safe_load(path.read_text())
        settings["api"]["desktop"] = False
        path.write_text(yaml.safe_dump(settings))
        status, reloaded = await center.api("POST", "/reload")
        off = await browser.get()
    assert on.texts["state"] == "free"
    assert (status, reloaded["needs_restart"]) == (200, [])
    assert off.status == 404


async def test_with_an_api_token_the_desktop_still_needs_only_the_pin(tmp_path: Path) -> None:
    """The token is for ops' tools; agents do not get it. The rest of the API keeps it."""
    config = merge(DESK, {"api": {"token": "a-token-for-ops-only-1234"}})
    async with running_center(tmp_path, config=config) as center:
        browser = DesktopBrowser(center.daemon.api.port)
        page = await browser.sign_in("1001", "1111")
        paused = await browser.press("Pause: break")
        status, _ = await center.api("GET", "/status")
    assert (page.status, page.texts["state"]) == (200, "free")
    assert paused.texts["state"] == "paused: break"
    assert status == 401


async def test_pages_are_never_cached_nor_framed_and_the_cookie_stays_with_the_desktop(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=DESK) as center:
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.get()
        signed = await browser.post("/desktop/sign-in", {"id": "1001", "pin": "1111"}, follow=False)
        page = await browser.get()
    cookie = signed.headers["set-cookie"]
    assert signed.status == 303 and signed.headers["location"] == "/desktop"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/desktop" in cookie
    assert "Max-Age=43200" in cookie, "api.desktop_session_hours: 12"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_session_ends_with_its_hours_a_new_pin_or_a_sign_out() -> None:
    clock = Clock()
    sessions = DesktopSessions(1, key=b"k" * 32, clock=clock)
    pins: dict[str, str | None] = {"1001": "1111", "1002": "2222"}
    alice = sessions.issue("1001", "1111")
    bob = sessions.issue("1002", "2222")
    assert sessions.signed_in(alice, pins) == "1001"
    assert sessions.signed_in(alice, {**pins, "1001": "1112"}) is None, "PIN changed"
    assert sessions.signed_in(alice, {"1002": "2222"}) is None, "agent removed"
    forged = alice.rsplit(".", 1)[0] + "." + "0" * 64
    assert sessions.signed_in(forged, pins) is None
    as_bob = bob.split(".", 1)[0] + "." + alice.split(".", 1)[1]
    assert sessions.signed_in(as_bob, pins) is None, "Alice's signature does not sign Bob in"
    other_daemon = DesktopSessions(1, key=b"x" * 32, clock=clock)
    assert other_daemon.signed_in(alice, pins) is None, "a restart signs everyone out"
    clock.now += 3599
    assert sessions.signed_in(alice, pins) == "1001"
    sessions.sign_out("1002")
    assert sessions.signed_in(bob, pins) is None
    clock.now += 0.01
    assert sessions.signed_in(sessions.issue("1002", "2222"), pins) == "1002", "signs in again"
    clock.now += 2
    assert sessions.signed_in(alice, pins) is None, "an hour is over"


@given(st.text(max_size=200))
def test_any_cookie_text_signs_nobody_in_and_raises_nothing(value: str) -> None:
    sessions = DesktopSessions(12, key=b"k" * 32)
    assert sessions.signed_in(value, {"1001": "1111", "": "0"}) is None


def test_the_guard_counts_wrong_pins_per_agent_and_address() -> None:
    clock = Clock()
    guard = SignInGuard(clock)
    for _ in range(PIN_TRIES - 1):
        guard.failed("1001", "10.0.0.9")
    assert guard.wait("1001", "10.0.0.9") == 0
    guard.failed("1001", "10.0.0.9")
    assert guard.wait("1001", "10.0.0.9") == 300
    assert guard.wait("1002", "10.0.0.9") == 0, "another agent"
    assert guard.wait("1001", "10.0.0.7") == 0, "Alice at her own PC"
    clock.now += 299
    assert guard.wait("1001", "10.0.0.9") == pytest.approx(1)
    clock.now += 1
    assert guard.wait("1001", "10.0.0.9") == 0
    guard.failed("1001", "10.0.0.9")
    guard.succeeded("1001", "10.0.0.9")
    assert guard.wait("1001", "10.0.0.9") == 0
    for n in range(ALL_TRIES):
        guard.failed(f"guess{n}", "10.0.0.66")
    assert guard.wait("1002", "10.0.0.66") == 60, "going through the agents: that address waits"
    assert guard.wait("1002", "10.0.0.7") == 0, "the others do not"
    clock.now += 60
    assert guard.wait("1002", "10.0.0.66") == 0


#: Sam (2000, PIN 2468) supervises; Alice is in team day, Bob in team night.
WATCHED: dict[str, Any] = merge(
    DESK,
    {
        "supervisors": {"2000": {"pin": "2468"}},
        "agents": {"1001": {"team": "day"}, "1002": {"team": "night"}},
    },
)


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_sam_sees_his_agents_and_listens_then_whispers_to_alice_from_his_page(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=WATCHED) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        sam = center.add_phone("PJSIP/2000", answer_after=0.05)
        router = center.daemon.router
        monitoring = center.daemon.switchboard.monitoring
        router.pause("1002", "lunch", via="test")
        browser = DesktopBrowser(center.daemon.api.port)
        as_agent = await browser.sign_in("2000", "2468")
        wrong = await browser.sign_in("2000", "0000", role="supervisor")
        idle = await browser.sign_in("2000", "2468", role="supervisor")
        caller = await center.caller_presses("5550005", "2")
        await caller.wait_bridged(timeout=5)
        busy = await browser.get()
        listening = await browser.press("Listen", picking={"agent": "1001"})
        await sam.wait_answered(timeout=5)
        await until(lambda: (monitoring.current("2000") or _Never).answered is not None)
        heard = await browser.get()
        whispered = await browser.press("Whisper")
        mode = (monitoring.current("2000") or _Never).mode
        stopped = await browser.press("Stop")
        ready = await browser.press("Ready", picking={"agent": "1002"})
        bob_ready = router.agents["1002"].state
        bobs_queues = await browser.press("Pause, queues …", picking={"id": "1002"})
        taken_out = await browser.press("Take out of support")
        bob_in = router.agent_view("1002")["queues"]
        put_back = await browser.press("Put in support")
        await browser.get()
        out = await browser.press("Log out", picking={"agent": "1002"})
        bob = router.agents["1002"].state
        await caller.hangup()
        await center.idle()
    assert as_agent.status == 401, "Sam is no agent"
    assert (wrong.status, wrong.texts["error"]) == (401, "Wrong supervisor or PIN.")
    assert idle.texts["state"] == "Monitoring nobody"
    rows = {r[0]: r for r in idle.table_rows if r and r[0] != "agent"}
    assert rows["Alice 1001"][1] == "free"
    assert rows["Bob 1002"][1] == "paused: lunch"
    assert rows["Carol 1003"][1] == "logged out"
    alice = next(r for r in busy.table_rows if r and r[0] == "Alice 1001")
    assert (alice[1], alice[3]) == ("on a call", "5550005")
    assert busy.form("Listen").fields == {"action": "listen", "agent": "1001"}
    assert listening.texts["said"] == "Your phone rings: answer it to listen to agent 1001"
    assert heard.texts["state"].startswith("Listening to agent 1001 for")
    assert {"Whisper", "Barge", "Take the call over", "Stop"} <= set(heard.buttons)
    assert (whispered.texts["said"], mode) == ("You whisper to agent 1001", "whisper")
    assert stopped.texts == {"said": "Monitoring stopped", "state": "Monitoring nobody"}
    assert (ready.texts["said"], bob_ready) == ("Agent 1002 is ready", "available")
    assert bobs_queues.refresh == "" and "Take out of support" in bobs_queues.buttons
    assert taken_out.texts["said"] == "Agent 1002 no longer takes support calls"
    assert bob_in == [] and "Put in support" in taken_out.buttons, "back on Bob's page"
    assert put_back.texts["said"] == "Agent 1002 takes support calls now"
    assert (out.texts["said"], bob) == ("Agent 1002 logged out", "logged_out")
    queues = [r for r in idle.table_rows if r and r[0] in ("queue", "support")]
    assert queues[0][:5] == ["queue", "waiting", "longest wait", "agents free", "callbacks"]
    assert queues[1][:5] == ["support", "0", "0:00", "1 / 1", "0"], "Bob is paused"
    assert queues[0][-1] == "wait now" and queues[1][-1] == "0:00", "an agent is free"


class _Never:
    answered = None
    mode = ""


async def test_a_supervisor_with_teams_sees_and_acts_on_those_agents_only(
    tmp_path: Path,
) -> None:
    config = merge(WATCHED, {"supervisors": {"2000": {"teams": ["day"]}}})
    async with running_center(tmp_path, config=config) as center:
        browser = DesktopBrowser(center.daemon.api.port)
        page = await browser.sign_in("2000", "2468", role="supervisor")
        forged = await browser.post("/desktop/act", {"action": "logout-agent", "agent": "1002"})
        bob = center.daemon.router.agents["1002"].state
        not_his = await browser.get("/desktop/agent?id=1002")
    names = [r[0] for r in page.table_rows if r and r[0] not in ("agent", "queue")]
    assert "Alice 1001" in names and "Bob 1002" not in names
    assert forged.texts["error"] == "agent 1002 is not in your teams"
    assert bob == "available"
    assert (not_his.status, not_his.texts["error"]) == (404, "no agent '1002' in your teams")


async def test_a_preview_lead_is_on_alices_page_with_its_data_and_she_dials_it(
    tmp_path: Path,
) -> None:
    """A preview campaign shows Alice the lead on her page (number, campaign, the list's
    columns); she skips Ada and dials Alan from the page."""
    config = merge(campaign_config(mode="preview", preview_seconds=30), DESK)
    leads = "number,id,name\n5551001,ada,Ada\n5551002,alan,Alan\n"
    async with scene(tmp_path, config, leads) as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        alan = s.center.add_phone("PJSIP/5551002", answer_after=0.05, hangup_after=0.3)
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05)
        browser = DesktopBrowser(s.center.daemon.api.port)
        await browser.sign_in("1001", "1111")

        async def lead_shown(name: str) -> DesktopPage:
            async with asyncio.timeout(5):
                while True:
                    page = await browser.get()
                    if page.rows.get("name") == name:
                        return page
                    await asyncio.sleep(0.05)

        first = await lead_shown("Ada")
        skipped = await browser.press("Skip")
        second = await lead_shown("Alan")
        dialled = await browser.press("Dial this lead")
        await alan.wait_answered(timeout=5)
        await s.center.idle(timeout=10)
    assert (first.rows["Number"], first.rows["Campaign"]) == ("5551001", "spring")
    assert skipped.texts["said"] == "Lead skipped"
    assert second.rows["Number"] == "5551002"
    assert dialled.texts["said"] == "Dialling the lead"
    assert (ada.rings, alan.rings) == (0, 1)


async def test_a_hot_desking_agent_logs_in_at_the_phone_she_types(tmp_path: Path) -> None:
    config = merge(DESK, {"agents": {"1003": {"hot_desk": True}}})
    async with running_center(tmp_path, config=config) as center:
        router = center.daemon.router
        carol = DesktopBrowser(center.daemon.api.port)
        page = await carol.sign_in("1003", "4321")
        asked = await carol.press("Log in at another phone …")
        bad = await carol.press("Log in", device="not a phone")
        await carol.press("Log in at another phone …")
        logged = await carol.press("Log in", device="PJSIP/1010")
        device = router.agent_view("1003")["device"]
        alice = DesktopBrowser(center.daemon.api.port)
        await alice.sign_in("1001", "1111")
        own_only = await alice.get("/desktop/login")
    assert "Log in to my queues" in page.buttons
    assert asked.refresh == "" and "device" in asked.form("Log in").fields
    assert "TECH/resource" in bad.texts["error"] and bad.texts["state"] == "logged out"
    assert (logged.texts["said"], logged.texts["state"], device) == (
        "Logged in",
        "free",
        "PJSIP/1010",
    )
    assert own_only.status == 404


def _voicemail_config(tmp_path: Path) -> dict[str, Any]:
    """Key 7 leaves a message in box sales, which queue sales' agents call back."""
    return merge(
        DESK,
        {
            "ivr": {"voicemail_folder": str(tmp_path / "vm")},
            "flows": {
                "main": {
                    "nodes": {
                        "welcome": {"choices": {"7": "message"}},
                        "message": {"kind": "voicemail", "box": "sales", "prompt": "leave-one"},
                    }
                }
            },
            "queues": {"sales": {"mailbox": "sales"}},
            "acd": {"dial_out": "PJSIP/${number}", "dial_out_allow": ["_555XXXX"]},
        },
    )


async def _leave_a_message(center: Any, number: str, name: str = "") -> str:
    caller = await center.caller_presses(number, "7", caller_name=name)
    # The recording itself, not the prompt or the beep before it: on a busy machine it may
    # start well after them, a key pressed before it is lost, and a message under 0.1 s is
    # none.
    await caller.wait_for_prompt("beep", timeout=5)
    await caller.wait_recording(timeout=5)
    await asyncio.sleep(0.3)
    await caller.press("#")
    await caller.wait_ended(timeout=5)
    return str(caller.uniqueid)


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_alice_hears_a_message_left_for_sales_and_calls_the_caller_back(
    tmp_path: Path, transport: str
) -> None:
    """A caller leaves a message in sales' box. Alice's page lists it; she takes it (Carol
    then sees it taken), hears it in the browser and calls the caller back from it: her
    phone rings, then his; the message is dealt with and the call carries its id."""
    config = _voicemail_config(tmp_path)
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        customer = center.add_phone("PJSIP/5550077", answer_after=0.1, hangup_after=0.3)
        router = center.daemon.router
        message_id = await _leave_a_message(center, "5550077", "Dan")
        alice = DesktopBrowser(center.daemon.api.port)
        await alice.sign_in("1001", "1111")
        listed = await until_page(alice, lambda p: "Take and listen" in p.buttons)
        opened = await alice.press("Take and listen")
        status, headers, sound = await alice.fetch(opened.sounds[0])
        carol = DesktopBrowser(center.daemon.api.port)
        carols = await carol.sign_in("1003", "4321")
        called = await alice.press("Call 5550077 back")
        await customer.wait_answered(timeout=5)
        await until(lambda: router.agents["1001"].state == "available", timeout=5)
        await center.idle()
        after = await alice.get()
        message = await center.daemon.voicemails.get(message_id)
        dialled = await _record_where(center, lambda row: row["dst"] == "5550077")
    assert listed.title == "(1) Call centre", "the tab says a message waits"
    (row,) = [r for r in listed.table_rows if len(r) == 5 and r[1] == "5550077 (Dan)"]
    assert row[2:4] == ["sales", row[3]] and row[3].startswith("0:0")
    assert opened.refresh == "", "no reload while listening"
    assert opened.rows["From"] == "5550077 (Dan)" and opened.rows["Queue"] == "sales"
    assert (status, headers["content-type"]) == (200, "audio/wav")
    assert sound[:4] == b"RIFF"
    assert "taken by 1001" in " ".join(" ".join(r) for r in carols.table_rows)
    assert "Take and listen" not in carols.buttons
    assert called.texts["said"] == "Calling 5550077 back"
    assert (message.status, message.outcome, message.agent) == ("done", "called-back", "1001")
    assert not [r for r in after.table_rows if "5550077 (Dan)" in r], "no longer listed"
    assert json.loads(dialled["ivr_variables"])["voicemail"] == message_id


async def until_page(
    browser: DesktopBrowser, predicate: Callable[[DesktopPage], bool], timeout: float = 5.0
) -> DesktopPage:
    """The desktop page, read again until ``predicate`` holds of it."""
    async with asyncio.timeout(timeout):
        while not predicate(page := await browser.get()):
            await asyncio.sleep(0.1)
    return page


async def _record_where(
    center: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    """The first CDR that ``predicate`` holds of, once written."""
    daemon = center.daemon
    async with asyncio.timeout(timeout):
        while True:
            rows = await daemon.recorder.writer.run(daemon.store.fetch_cdrs)
            found = [row for row in rows if predicate(row)]
            if found:
                return found[0]
            await asyncio.sleep(0.05)


async def test_the_call_on_the_page_links_to_the_callers_record_in_the_crm(
    tmp_path: Path,
) -> None:
    """Sales has its own screen_pop; the other queues use acd's. The values go into the
    address URL-encoded (a name with a space, an IVR variable)."""
    config = merge(
        DESK,
        {
            "queues": {
                "sales": {"screen_pop": "https://crm.example/c?phone=${number}&n=${caller_name}"}
            },
            "acd": {"screen_pop": "https://crm.example/q/${queue}?c=${call_id}&t=${ticket}"},
        },
    )
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=0.3)
        router = center.daemon.router
        router.pause("1002", "lunch", via="test")  # support's calls go to Alice
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        caller = await center.caller_presses("+33612345678", "1", caller_name="Zoë Martin")
        await until(lambda: router.agents["1001"].state in ("ringing", "on_call"))
        ringing = await browser.get()
        await caller.wait_bridged(timeout=5)
        await caller.hangup()
        await until(lambda: router.agents["1001"].state != "on_call")
        after = await browser.get()
        support = await center.caller_presses("5550009", "2")
        await support.wait_bridged(timeout=5)
        other = await browser.get()
        await support.hangup()
        await center.idle()
    assert ringing.links["screen-pop"] == (
        "https://crm.example/c?phone=%2B33612345678&n=Zo%C3%AB%20Martin"
    )
    assert "screen-pop" not in after.links, "the call is over"
    assert other.links["screen-pop"].startswith("https://crm.example/q/support?c=")
    assert other.links["screen-pop"].endswith("&t="), "an IVR variable the call lacks: empty"


async def test_sam_reviews_alices_recorded_call_of_the_day_from_his_page(
    tmp_path: Path,
) -> None:
    """Support records its calls. Sam (all agents) opens Alice's calls and hears the one
    she took; Nina leads the night team only: Alice's calls and recordings are not hers."""
    config = merge(
        WATCHED,
        {
            "queues": {"support": {"record": True}},
            "supervisors": {"2001": {"name": "Nina", "device": "PJSIP/2001", "pin": "1357",
                                     "teams": ["night"]}},
        },
    )  # fmt: skip
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.daemon.router.pause("1002", "break", via="test")
        caller = await center.caller_presses("5550321", "2")
        await caller.wait_bridged(timeout=5)
        await asyncio.sleep(0.5)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        port = center.daemon.api.port
        api_sound = await _until_served(port, f"/calls/{caller.uniqueid}/recording")
        sam = DesktopBrowser(port)
        await sam.sign_in("2000", "2468", role="supervisor")
        review = await sam.press("Calls …", picking={"agent": "1001"})
        status, headers, sound = await sam.fetch(review.sounds[0])
        nina = DesktopBrowser(port)
        await nina.sign_in("2001", "1357", role="supervisor")
        not_hers = await nina.get("/desktop/calls?agent=1001")
        not_hers_sound = await nina.fetch(f"/desktop/recording?call={caller.uniqueid}")
    assert row["recordingfile"]
    assert api_sound[:4] == b"RIFF"
    (listed,) = [r for r in review.table_rows if len(r) == 7 and r[1] == "5550321"]
    assert listed[2] == "support" and review.refresh == ""
    assert review.sounds == [f"/desktop/recording?call={caller.uniqueid}"]
    assert (status, headers["content-type"], sound) == (200, "audio/wav", api_sound)
    assert not_hers.status == 404 and not_hers_sound[0] == 404


async def _until_served(port: int, path: str, timeout: float = 5.0) -> bytes:
    """The body of ``GET path`` once it answers 200 (a recording is written at the end)."""
    async with asyncio.timeout(timeout):
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
            head, _, body = data.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 200"):
                return body
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_bob_reads_the_note_alice_wrote_when_she_handed_him_the_caller(
    tmp_path: Path, transport: str
) -> None:
    """Alice transfers her caller to Bob from the page with a note: Bob's page shows it
    first among the call's data, the CRM reads it as ``transfer_note``, the CDR keeps it.
    A second caller goes into sales by the API with a note: Alice, who takes him from
    the queue, reads it."""
    config = merge(DESK, {"agents": {"1002": {"pin": "2222"}}})
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        router = center.daemon.router
        router.pause("1002", "lunch", via="test")  # support's first caller goes to Alice
        alice = DesktopBrowser(center.daemon.api.port)
        await alice.sign_in("1001", "1111")
        bob = DesktopBrowser(center.daemon.api.port)
        await bob.sign_in("1002", "2222")
        caller = await center.caller_presses("5550021", "2")
        await caller.wait_bridged(timeout=5, device="PJSIP/1001")
        router.unpause("1002", via="test")
        await until(lambda: router.agents["1001"].state == "on_call")
        await alice.get()
        await alice.press("Transfer to …")
        await alice.press("Transfer", to="1002", note="Wants a refund; ID checked")
        await caller.wait_bridged(timeout=5, device="PJSIP/1002")
        told = await until_page(bob, lambda page: "Note" in page.rows)
        _, status = await center.api("GET", "/status")
        too_long = await center.api(
            "POST", "/agents/1002/transfer", {"queue": "sales", "note": "x" * 201}
        )
        await until(lambda: router.agents["1001"].state == "available", timeout=10)
        moved = await center.api(
            "POST", "/agents/1002/transfer", {"queue": "sales", "note": "VIP, be quick"}
        )
        await caller.wait_bridged(timeout=5, device="PJSIP/1001")
        second = await until_page(alice, lambda page: page.rows.get("Note") == "VIP, be quick")
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    assert told.rows["Note"] == "Wants a refund; ID checked"
    assert list(told.rows).index("Note") == 1, "right under the number"
    (call,) = status["calls"]
    assert call["variables"]["transfer_note"] == "Wants a refund; ID checked"
    assert too_long[0] == 409 and "200 characters" in too_long[1]["error"]
    assert moved[0] == 200
    assert second.rows["Note"] == "VIP, be quick", "the latest note"
    assert json.loads(row["ivr_variables"])["transfer_note"] == "VIP, be quick"


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_alice_blocks_an_abusive_caller_from_her_page(tmp_path: Path, transport: str) -> None:
    """The caller insults Alice: "Block this caller" puts his number on the block list
    (ops see who added it); a second block says it is there already; "Unblock this caller"
    undoes her own block; a withheld number cannot be blocked."""
    config = merge(
        DESK,
        {"ivr": {"number_lists": {"blocked": []}}, "acd": {"agent_block_list": "blocked"}},
    )
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        caller = await center.caller_presses("5550666", "1")
        await caller.wait_bridged(timeout=5)
        await browser.get()
        blocked = await browser.press("Block this caller")
        again = await center.api("POST", "/agents/1001/block", {})
        unblocked = await browser.press("Unblock this caller")
        off = (await center.api("GET", "/numbers"))[1]
        await browser.press("Block this caller")
        await caller.hangup()
        _, lists = await center.api("GET", "/numbers")
        await center.api("POST", "/numbers/blocked/remove", {"number": "5550666"})
        await center.api("POST", "/numbers/blocked/add", {"number": "5550666"})
        not_hers = await center.api("POST", "/agents/1001/unblock", {})
        hidden = await center.caller_presses("anonymous", "1")
        await hidden.wait_bridged(timeout=5)
        refused = await center.api("POST", "/agents/1001/block", {})
        await hidden.hangup()
    assert blocked.texts["said"] == "5550666 is on the list blocked"
    assert "Unblock this caller" in blocked.buttons and "Block this caller" not in blocked.buttons
    assert again[1]["added"] is False, "on the list already"
    assert unblocked.texts["said"] == "5550666 is off the list blocked", "a mistake undone"
    assert [e["added"] for e in off["lists"] if e["name"] == "blocked"] == [[]]
    (listed,) = [entry for entry in lists["lists"] if entry["name"] == "blocked"]
    assert [(a["number"], a["via"]) for a in listed["added"]] == [("5550666", "agent:1001")]
    assert not_hers == (409, {"error": "5550666 is not on the list blocked by agent 1001"})
    assert refused[0] == 409 and "withheld" in refused[1]["error"]


async def test_alice_transfers_her_caller_to_bob_picked_from_the_free_colleagues(
    tmp_path: Path,
) -> None:
    """Bob is free: the transfer page offers him; the caller is handed to him. A second
    caller is sent to an outside number Alice types (acd.transfer_allow lists it)."""
    config = merge(
        DESK,
        {"acd": {"transfer_dial": "PJSIP/${number}", "transfer_allow": ["_555XXXX"]}},
    )
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        outside = center.add_phone("PJSIP/5550888", answer_after=0.05)
        router = center.daemon.router
        router.pause("1002", "lunch", via="test")  # support's first caller goes to Alice
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        caller = await center.caller_presses("5550011", "2")
        await caller.wait_bridged(timeout=5, device="PJSIP/1001")
        router.unpause("1002", via="test")
        await until(lambda: router.agents["1001"].state == "on_call")
        await browser.get()
        page = await browser.press("Transfer to …")
        moved = await browser.press("Transfer", to="1002")
        await caller.wait_bridged(timeout=5, device="PJSIP/1002")
        await bob.wait_answered(timeout=5)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        await until(lambda: router.agents["1001"].state == "available", timeout=10)
        router.pause("1002", "lunch", via="test")
        second = await center.caller_presses("5550012", "2")
        await second.wait_bridged(timeout=5, device="PJSIP/1001")
        await until(lambda: router.agents["1001"].state == "on_call")
        await browser.get()
        await browser.press("Transfer to …")
        typed = await browser.press("Transfer", number="5550888")
        await outside.wait_answered(timeout=5)
        await second.hangup()
        await center.idle()
    assert page.refresh == "", "no reload while choosing"
    assert page.form("Transfer").fields["to"] == "1002"
    assert "Consult first" in page.buttons
    assert moved.texts["said"] == "Transferred to 1002"
    assert row["transfer_path"] == "1001>1002"
    assert typed.texts["said"] == "Transferred to 5550888"


async def test_sam_gives_bob_french_from_his_page_then_the_configs_skills_again(
    tmp_path: Path,
) -> None:
    config = merge(
        WATCHED, {"acd": {"skills": ["fr", "de"]}, "agents": {"1002": {"skills": {"de": 4}}}}
    )
    async with running_center(tmp_path, config=config) as center:
        router = center.daemon.router
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        page = await sam.press("Pause, queues …", picking={"id": "1002"})
        given = await sam.press("Set skills", **{"skill:fr": "7", "skill:de": "4"})
        fr = dict(router.agents["1002"].skills)
        refused = await sam.press("Set skills", **{"skill:fr": "11"})
        reset = await sam.press("Back to the config's skills")
        back = dict(router.agents["1002"].skills)
    assert page.form("Set skills").fields == {
        "action": "skills-agent", "agent": "1002", "back": "/desktop/agent?id=1002",
        "skill:fr": "", "skill:de": "4",
    }  # fmt: skip
    assert given.texts["said"] == "Agent 1002's skills: de 4, fr 7"
    assert fr == {"fr": 7, "de": 4}
    assert refused.texts["error"] == "skill 'fr': a level is a whole number 1-10"
    assert reset.texts["said"] == "Agent 1002 has the config's skills again: de 4"
    assert back == {"de": 4}


def alices_desk(state: str, **changes: Any) -> Desktop:
    """Alice's desktop in ``state`` at 10:00 (``changes``: other fields, ``agent_extra``:
    more of her agent view)."""
    agent = {"id": "1001", "name": "Alice", "state": state, "time_in_state": 2.0,
             "queues": ["sales"], "device": "PJSIP/1001"}  # fmt: skip
    agent.update(changes.pop("agent_extra", {}))
    fields: dict[str, Any] = {
        "title": "Support",
        "now": datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
        "agent": agent,
        "queues": [],
        "day": AgentDay(),
        "pause_reasons": ["lunch"],
        "dispositions": {},
        "transfer_queues": [],
        **changes,
    }
    return Desktop(**fields)


def test_the_browser_tab_says_a_call_rings_and_how_many_messages_wait() -> None:
    """The desktop is often behind the CRM's page: its tab's title is what shows."""
    left = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    waiting = VoicemailMessage("m1", "sales", "sales", "5550001", "", "/vm/m1.wav", 4.0, left)
    taken = dataclasses.replace(waiting, call_id="m2", status="taken", agent="1003")
    ringing = DesktopPage(200, {}, render(alices_desk("ringing", messages=[waiting, taken])))
    free = DesktopPage(200, {}, render(alices_desk("available")))
    assert ringing.title == "Ringing · (1) Support", "a message taken by Carol is not Alice's"
    assert free.title == "Support"


@pytest.mark.parametrize(
    ("reason", "via", "told"),
    [
        ("busy", "auto", "your phone was busy or could not be reached"),
        ("rejected", "auto", "your phone declined them"),
        ("busy", "api", None),
    ],
)
def test_an_agent_paused_for_a_phone_that_failed_every_offer_is_told_so(
    reason: str, via: str, told: str | None
) -> None:
    """A pause reason an agent chose (a "busy" pause from the API) says nothing more."""
    desk = alices_desk(
        "paused",
        pause_reasons=["busy"],
        agent_extra={"pause_reason": reason, "pause_via": via},
    )
    page = DesktopPage(200, {}, render(desk))
    assert page.texts["state"] == f"paused: {reason}"
    if told is None:
        assert "missed" not in page.texts
    else:
        assert told in page.texts["missed"]
        assert page.texts["missed"].endswith("Press Ready once you are back.")


async def test_alice_paused_for_a_call_she_missed_is_told_why_and_gets_back(
    tmp_path: Path,
) -> None:
    config = merge(DESK, {"queues": {"sales": {"autopause": 1}}})
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=None)
        router = center.daemon.router
        caller = await center.caller_presses("5550061", "1")
        await until(lambda: router.agents["1001"].state == "paused", timeout=6)
        alice = DesktopBrowser(center.daemon.api.port)
        page = await alice.sign_in("1001", "1111")
        await caller.hangup()
        await center.idle()
        back = await alice.press("Ready")
    assert page.texts["state"] == "paused: no-answer"
    assert page.texts["missed"].startswith("Paused for you: calls rang on your phone")
    assert "(1 missed today)" in page.texts["missed"]
    assert "missed" not in back.texts and back.texts["state"] == "free"


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_sam_sees_a_caller_waiting_in_sales_raises_them_and_sends_them_to_support(
    tmp_path: Path, transport: str
) -> None:
    """Nobody of sales is in; Sam sees the caller in his "Waiting" list, puts them first in
    line, opens their page (nobody of sales free to give them to) and sends them to
    support, where Bob answers."""
    async with running_center(tmp_path, transport=transport, config=WATCHED) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1002", answer_after=0.05)
        router = center.daemon.router
        router.logout("1001", via="test")
        caller = await center.caller_presses("5550061", "1", caller_name="Ann")
        await caller.wait_moh(timeout=5)
        sam = DesktopBrowser(center.daemon.api.port)
        page = await sam.sign_in("2000", "2468", role="supervisor")
        raised = await sam.press("Priority +1", picking={"caller": caller.uniqueid})
        opened = await sam.press("Send, give …", picking={"id": caller.uniqueid})
        sent = await sam.press("Send to support")
        await caller.wait_bridged(timeout=5)
        await caller.hangup()
        await center.idle()
        late = await sam.post(
            "/desktop/act",
            {"action": "priority-caller", "caller": caller.uniqueid, "priority": "3"},
        )
    waiting = [r for r in page.table_rows if len(r) == 7 and r[0] == "sales"]
    assert [r[:5] for r in waiting] == [["sales", "1", "5550061 Ann", waiting[0][3], "0"]]
    assert raised.texts["said"] == "5550061 Ann has priority 1: #1 in sales now"
    assert "No agent of this queue is free now." in opened.body
    assert {"Send to support", "Call them back (keeps their place)"} <= set(opened.buttons)
    assert "Send to sales" not in opened.buttons
    assert sent.texts["said"] == "5550061 Ann leaves sales for queue support"
    assert late.texts["error"] == "That caller waits no more (answered, gone or sent on)."


async def test_sam_puts_a_waiting_caller_through_to_carol_who_is_second_line(
    tmp_path: Path,
) -> None:
    """Carol would take sales callers only after a minute (penalty 1): Sam gives her this
    one now from the caller's page."""
    config = merge(
        WATCHED,
        {
            "queues": {
                "sales": {
                    "penalties": {"1003": 1},
                    "escalation": [{"after": 0, "max_penalty": 0}, {"after": 60}],
                }
            },
            "agents": {"1003": {"logged_in": True}},
        },
    )
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1003", answer_after=0.05)
        center.daemon.router.logout("1001", via="test")
        caller = await center.caller_presses("5550062", "1")
        await caller.wait_moh(timeout=5)
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        opened = await sam.press("Send, give …", picking={"id": caller.uniqueid})
        given = await sam.press(next(b for b in opened.buttons if b.startswith("Give to")))
        device = await caller.wait_bridged(timeout=5)
        await caller.hangup()
        await center.idle()
    assert [b for b in opened.buttons if b.startswith("Give to")] == ["Give to Carol (1003)"]
    assert given.texts["said"] == "Agent 1003's phone rings for 5550062"
    assert "1003" in device


async def test_sam_takes_alice_off_the_queues_for_a_training_and_back(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=WATCHED) as center:
        router = center.daemon.router
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.sign_in("2000", "2468", role="supervisor")
        page = await browser.press("Pause, queues …", picking={"id": "1001"})
        paused = await browser.press("Pause: training")
        state, reason = router.agents["1001"].state, router.agents["1001"].pause_reason
        ready = await browser.press("Ready", picking={"agent": "1001"})
    assert page.texts["state"] == "free"
    assert "Pause: lunch" in page.buttons and "Ready" not in page.buttons
    assert paused.texts["said"] == "Agent 1001 pauses (training): now, or once their call is over"
    assert paused.texts["state"] == "paused: training"
    assert (state, reason) == ("paused", "training")
    assert ready.texts["state"] == "free" and router.agents["1001"].state == "available"


async def test_a_button_the_pbx_never_finishes_gives_alice_a_page_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice's Hold waits on a PBX that does not answer: her browser gets a page (504, in
    API_ACTION_LIMIT) saying the action goes on, not a request that hangs for good."""
    monkeypatch.setattr(api_module, "API_ACTION_LIMIT", 0.3)
    async with running_center(tmp_path, config=DESK) as center:
        pbx_answers = asyncio.Event()
        board = center.daemon.switchboard

        async def hold(agent_id: str) -> str:
            await pbx_answers.wait()
            return agent_id

        monkeypatch.setattr(board, "hold", hold)
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        async with asyncio.timeout(5):
            late = await browser.post("/desktop/act", {"action": "hold"})
        pbx_answers.set()
        after = await browser.get()
    assert late.status == 504, late.body
    assert "desktop hold: not done within 0.3 s" in late.texts["error"]
    assert after.status == 200
