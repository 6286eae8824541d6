"""Agents over a shift: feature codes from their own phone (with a PIN), the CLI against the
running daemon, pauses that keep calls away, and the shift recorded when they log out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError, EngineError
from callcenter.events import AgentRinging
from callcenter.testing import BASE_CONFIG, TRANSPORTS, Center, merge, running_center, until


def _api(center: Center, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{center.daemon.api.port}{path}",
        data=json.dumps(body or {}).encode() if method == "POST" else None,
        method=method,
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_agent_dials_star71_enters_pin_and_is_logged_in(tmp_path: Path, agi: str) -> None:
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        carol = center.daemon.router.agents["1003"]
        assert carol.state == "logged_out"
        phone = await center.pbx.call("*71", caller_num="1003", caller_name="Carol")
        await phone.wait_for_prompt("agent-pass", timeout=5)
        await phone.press("4321")
        await phone.wait_ended(timeout=5)
        assert carol.state == "available"
        assert "agent-loginok" in phone.heard


HOT_DESK = {"agents": {"1003": {"hot_desk": True}}, "queues": {"sales": {"agents": ["1003"]}}}


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_carol_hot_desks_at_another_phone_and_her_calls_ring_there_until_she_logs_out(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi, config=HOT_DESK) as center:  # type: ignore[arg-type]
        desk = center.add_phone("PJSIP/1010", answer_after=0.05)
        own = center.add_phone("PJSIP/1003", answer_after=0.05)
        login = await center.pbx.call("*711003", caller_num="1010")
        await login.wait_for_prompt("agent-pass", timeout=5)
        await login.press("4321")
        await login.wait_ended(timeout=5)
        carol = center.daemon.router.agents["1003"]
        at_desk = carol.device
        assert (carol.state, carol.desk) == ("available", at_desk)
        caller = await center.caller_presses("5550300", "1")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1010"
        await caller.hangup()
        await center.idle()
        daemon = await center.restart()
        carol = daemon.router.agents["1003"]
        kept = (carol.state, carol.device)
        _, view = await center.api("GET", "/status")
        logout = await center.pbx.call("*72", caller_num="1010")
        await logout.wait_for_prompt("agent-pass", timeout=5)
        await logout.press("4321")
        await logout.wait_ended(timeout=5)
        back = (carol.state, carol.device, carol.desk)
    assert "agent-loginok" in login.heard
    assert at_desk in ("PJSIP/1010", "user/1010"), "the phone that dialled *711003"
    assert own.rings == 0 and desk.answered == 1
    assert kept == ("available", at_desk), "a restart keeps her at the desk"
    shown = next(a for a in view["agents"] if a["id"] == "1003")
    assert (shown["device"], shown["hot_desking"]) == (at_desk, True)
    assert f"at {at_desk} (hot desk)" in format_status(view)
    assert back == ("logged_out", "PJSIP/1003", None), "*72 from the desk; her own phone again"


async def test_logging_in_at_another_phone_is_for_agents_who_may_and_one_at_a_time(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=HOT_DESK) as center:
        refused = await center.api("POST", "/agents/1002/login", {"device": "PJSIP/1010"})
        taken = await center.api("POST", "/agents/1003/login", {"device": "PJSIP/1001"})
        garbled = await center.api("POST", "/agents/1003/login", {"device": "1010"})
        outside = await center.api("POST", "/agents/1003/login", {"device": "external/+4930"})
        ok = await center.api("POST", "/agents/1003/login", {"device": "PJSIP/1010"})
        desk = center.daemon.router.agents["1003"].device
    assert refused[0] == 403 and "hot_desk" in refused[1]["error"]
    assert taken[0] == 409 and "agent 1001 works at PJSIP/1001" in taken[1]["error"]
    assert garbled[0] == 400
    assert outside[0] == 400 and "phone on the PBX" in outside[1]["error"]
    assert ok == (200, {"agent": "1003", "state": "available", "pause_reason": None,
                        "device": "PJSIP/1010"})  # fmt: skip
    assert desk == "PJSIP/1010"


def test_an_agent_who_may_hot_desk_needs_a_pin() -> None:
    text = yaml.safe_dump(
        merge(BASE_CONFIG, {"agents": {"1001": {"hot_desk": True}}}), sort_keys=False
    )
    with pytest.raises(ConfigError) as refused:
        load_config_text(text)
    assert "agents.1001: hot_desk: true needs a pin" in str(refused.value)


async def test_wrong_pin_is_refused_and_the_agent_stays_logged_out(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        phone = await center.pbx.call("*71", caller_num="1003", caller_name="Carol")
        await phone.wait_for_prompt("agent-pass", timeout=5)
        await phone.press("1111")
        await phone.wait_ended(timeout=5)
        assert center.daemon.router.agents["1003"].state == "logged_out"
        assert "auth-incorrect" in phone.heard


async def test_paused_agent_is_not_rung_and_unpaused_agent_takes_the_call(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        result = await asyncio.to_thread(
            _api, center, "POST", "/agents/1001/pause", {"reason": "lunch"}
        )
        assert result == {"agent": "1001", "state": "paused", "pause_reason": "lunch"}
        caller = await center.pbx.call("800", caller_num="5550100")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("1")
        await caller.wait_moh(timeout=5)
        await asyncio.sleep(0.3)
        assert alice.rings == 0, "a paused agent is never offered a call"
        await asyncio.to_thread(_api, center, "POST", "/agents/1001/unpause")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1001"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        assert row["agent"] == "1001"
        assert row["wait_seconds"] >= 0.3


async def test_unknown_pause_reason_and_unknown_agent_get_clear_errors(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        with pytest.raises(urllib.error.HTTPError) as bad_reason:
            await asyncio.to_thread(_api, center, "POST", "/agents/1001/pause", {"reason": "nap"})
        assert bad_reason.value.code == 400
        assert "nap" in json.loads(bad_reason.value.read())["error"]
        with pytest.raises(urllib.error.HTTPError) as unknown:
            await asyncio.to_thread(_api, center, "POST", "/agents/9999/login")
        assert unknown.value.code == 404


async def test_status_shows_the_link_the_records_each_agent_queue_and_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a supervisor reads in a terminal (``--json`` keeps the API's JSON)."""
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        center.add_phone("PJSIP/1002", answer_after=None)
        router = center.daemon.router
        router.pause("1001", "lunch", via="test")
        router.device_state("PJSIP/1003", in_use=False, reachable=False)
        caller = await center.pbx.call("800", caller_num="5550001")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("2")
        await caller.wait_moh(timeout=5)
        capsys.readouterr()
        assert await asyncio.to_thread(cli_main, ["status", "--api", api]) == 0
        table = capsys.readouterr().out.splitlines()
        await caller.hangup()
    assert table[0].startswith(f"PBX {center.daemon.pbx.name}: connected since ")
    assert table[1] == "Records: written"
    assert table[2].startswith("Reports: read in a process of their own (not running now")
    assert table[4].split() == ["agent", "name", "state", "for", "ready", "calls", "queues", "note"]
    rows = {line.split()[0]: line for line in table[5:8]}
    assert rows["1001"].split()[:3] == ["1001", "Alice", "paused"]
    assert rows["1001"].endswith("paused: lunch")
    assert "ringing" in rows["1002"] and "call " in rows["1002"]
    assert rows["1003"].endswith("phone PJSIP/1003 not registered")
    support = next(line for line in table if line.startswith("support "))
    assert support.split()[:2] == ["support", "1"], "one caller waiting"
    assert table[-2] == "1 call(s) in progress"
    assert table[-1].split() == [caller.uniqueid, "support", "main:welcome>2>main:support"]


async def test_cli_logs_agent_in_and_out_and_the_shift_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        assert await asyncio.to_thread(cli_main, ["agent", "login", "1003", "--api", api]) == 0
        assert center.daemon.router.agents["1003"].state == "available"
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(cli_main, ["agent", "logout", "1003", "--api", api]) == 0
        assert center.daemon.router.agents["1003"].state == "logged_out"
        capsys.readouterr()
        assert await asyncio.to_thread(cli_main, ["status", "--json", "--api", api]) == 0
        status = json.loads(capsys.readouterr().out)
        assert {a["id"]: a["state"] for a in status["agents"]}["1003"] == "logged_out"
        store = center.daemon.store
        await until(lambda: any(s["agent"] == "1003" for s in store.fetch_agent_sessions()))
        shift = next(s for s in store.fetch_agent_sessions() if s["agent"] == "1003")
        assert shift["via_login"] == "api" and shift["via_logout"] == "api"
        assert 0.2 <= shift["duration_seconds"] < 5
        assert shift["login"] < shift["logout"]


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_a_restart_keeps_agents_logged_in_and_paused_and_their_shift_whole(
    tmp_path: Path, agi: str
) -> None:
    """``systemctl restart`` in the middle of the day: whoever was logged in stays logged in,
    whoever was on a break stays on it, calls reach them as before, and the shift and pause
    records run from before the restart to the logout and unpause after it."""
    config = {
        "agents": {"1001": {"logged_in": False}},
        "queues": {"support": {"agents": ["1002", "1003"]}},
    }
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        router = center.daemon.router
        router.login("1003", via="phone")
        router.pause("1002", "lunch", via="api")
        await asyncio.sleep(0.3)
        carol = center.add_phone("PJSIP/1003", answer_after=0.05)
        daemon = await center.restart()
        router = daemon.router
        states = {a: router.agents[a].state for a in ("1001", "1002", "1003")}
        assert router.agents["1002"].pause_reason == "lunch"
        caller = await center.pbx.call("800", caller_num="5550041")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("2")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1003"
        await caller.hangup()
        await center.idle()
        await carol.wait_idle(timeout=5)
        router.logout("1003", via="cli")
        router.unpause("1002", via="cli")
        store = daemon.store
        await until(lambda: any(s["agent"] == "1003" for s in store.fetch_agent_sessions()))
        await until(lambda: any(p["agent"] == "1002" for p in store.fetch_agent_pauses()))
        (shift,) = [s for s in store.fetch_agent_sessions() if s["agent"] == "1003"]
        (lunch,) = [p for p in store.fetch_agent_pauses() if p["agent"] == "1002"]
        present = {p.agent for p in store.fetch_agent_presence()}
    assert states == {"1001": "logged_out", "1002": "paused", "1003": "available"}
    assert (shift["via_login"], shift["via_logout"]) == ("phone", "cli")
    assert shift["duration_seconds"] >= 0.3, "the shift counts from the login before the restart"
    assert (lunch["reason"], lunch["via_pause"], lunch["via_unpause"]) == ("lunch", "api", "cli")
    assert lunch["duration_seconds"] >= 0.3
    assert present == {"1002"}, "logged out agents are no longer present"


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_an_agent_still_talking_through_a_restart_is_not_offered_another_call(
    tmp_path: Path, agi: str
) -> None:
    """The stop left Alice's call to the PBX and she is still logged in after the restart,
    but the new daemon asks the PBX which phones are in use: the next caller goes to Bob
    instead of ringing Alice in the middle of her conversation."""
    config = {"queues": {"support": {"strategy": "linear"}}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        first = await center.pbx.call("800", caller_num="5550051")
        await first.wait_for_prompt("welcome-menu", timeout=5)
        await first.press("2")
        assert await first.wait_bridged(timeout=5) == "PJSIP/1001"
        daemon = await center.restart()
        offered: list[str] = []
        daemon.bus.subscribe(
            lambda e: offered.append(e.agent) if isinstance(e, AgentRinging) else None
        )
        second = await center.pbx.call("800", caller_num="5550052")
        await second.wait_for_prompt("welcome-menu", timeout=5)
        await second.press("2")
        assert await second.wait_bridged(timeout=5) == "PJSIP/1002"
        for caller in (first, second):
            await caller.hangup()
        await center.idle()
    assert offered == ["1002"], "Alice's phone is in use: she is not offered the call"
    assert alice.rings == 1 and bob.answered == 1


async def test_a_daemon_told_not_to_resume_starts_a_fresh_day(tmp_path: Path) -> None:
    """``callcenter demo`` reuses the example config's records: its second run must not
    start with the first run's agents logged in (Daemon(resume=False))."""
    async with running_center(tmp_path) as center:
        center.daemon.router.login("1003", via="phone")
    async with running_center(tmp_path, resume=False) as center:
        fresh = center.daemon.router.agents["1003"].state
    async with running_center(tmp_path) as center:
        resumed = center.daemon.router.agents["1003"].state
    assert (fresh, resumed) == ("logged_out", "available")


async def test_cli_transfer_with_no_call_says_why(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        code = await asyncio.to_thread(cli_main, ["agent", "transfer", "1001", "--api", api])
        assert code == 1


async def test_cli_transfer_into_a_queue_names_the_queue_and_refuses_two_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        argv = ["agent", "transfer", "1001", "--queue", "support", "--api", api]
        assert await asyncio.to_thread(cli_main, argv) == 1
        assert "agent 1001 is not on a call" in capsys.readouterr().err
        argv = ["agent", "transfer", "1001", "--queue", "nosuch", "--api", api]
        assert await asyncio.to_thread(cli_main, argv) == 1
        assert "unknown queue 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["agent", "transfer", "1001", "--queue", "support", "--to", "2000"])
    assert "--to someone or --queue, not both" in capsys.readouterr().err


async def test_cli_with_an_agent_id_no_url_can_hold_says_unknown_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        for odd in ("10 01", "1001/x", "100%"):
            code = await asyncio.to_thread(cli_main, ["agent", "login", odd, "--api", api])
            assert code == 1, odd
            assert f"no agent {odd!r} is configured" in capsys.readouterr().err


def test_cli_against_a_daemon_that_is_not_running_exits_3() -> None:
    assert cli_main(["status", "--api", "http://127.0.0.1:9"]) == 3


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_an_agent_done_with_the_wrap_up_dials_star75_and_takes_the_next_call(
    tmp_path: Path, agi: str
) -> None:
    config = {"queues": {"support": {"wrapup": 60}}}
    async with running_center(tmp_path, agi=agi, config=config) as center:  # type: ignore[arg-type]
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        router = center.daemon.router
        for other in ("1001", "1003"):
            with contextlib.suppress(EngineError):
                router.logout(other, via="test")
        await center.caller_talks_to_an_agent("5550100")
        async with asyncio.timeout(5):
            while router.agents["1002"].state != "wrap_up":
                await asyncio.sleep(0.01)
        phone = await center.pbx.call("*75", caller_num="1002", caller_name="Bob")
        await phone.wait_ended(timeout=5)
        assert "beep" in phone.heard
        assert router.agents["1002"].state == "available", "a minute of wrap-up cut short"
        caller = await center.caller_presses("5550101", "2")
        assert await caller.wait_bridged(timeout=5) == "PJSIP/1002"
        assert bob.answered == 2
        status, answer = await center.api("POST", "/agents/1002/ready", {})
        assert status == 409 and "not in wrap-up" in answer["error"]
        await caller.hangup()
