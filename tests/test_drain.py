"""Draining the daemon before an upgrade (``callcenter drain``, SIGQUIT): the callers it has
are served to the end, new callers go to the PBX's failover as if no daemon ran, and the
daemon stops once nobody is left, on both PBXs over real TCP."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import _run_cli
from test_metrics import samples

from callcenter.cli import format_drain
from callcenter.demopbx.channels import FAILOVER_PROMPT as ASTERISK_FAILOVER
from callcenter.demopbx.freeswitch import FAILOVER_PROMPT
from callcenter.demopbx.fs_channels import prompt_name
from callcenter.events import DrainEnded, DrainStarted, EngineEvent
from callcenter.pbx.interface import CallInfo
from callcenter.testing import TRANSPORTS, Center, Transport, running_center

REPO = Path(__file__).resolve().parents[1]


def failover_prompt(transport: str) -> str:
    """What a caller the daemon sends away hears in the shipped dialplans' failover."""
    return (
        ASTERISK_FAILOVER if transport in ("fastagi", "asyncagi") else prompt_name(FAILOVER_PROMPT)
    )


def of(events: list[EngineEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@asynccontextmanager
async def center_and_events(
    tmp_path: Path, transport: Transport
) -> AsyncIterator[tuple[Center, list[EngineEvent]]]:
    """A running centre whose Asterisk has the shipped failover, and its engine events."""
    async with running_center(tmp_path, transport=transport) as center:
        center.with_asterisk_failover()
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        yield center, events


async def sales_caller(center: Center, number: str) -> Any:
    """A caller who picks sales (agent 1001 alone) in the menu."""
    return await center.caller_presses(number, "1")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_drain_puts_every_caller_it_has_through_sends_new_ones_to_the_failover_and_stops(
    tmp_path: Path, transport: Transport
) -> None:
    async with center_and_events(tmp_path, transport) as (center, events):
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        talking = await sales_caller(center, "5550001")
        assert await talking.wait_bridged(timeout=5) == "PJSIP/1001"
        waiting = await sales_caller(center, "5550002")
        await waiting.wait_moh(timeout=5)
        menu = await center.pbx.call("800", caller_num="5550003")
        await menu.wait_for_prompt("welcome-menu", timeout=5)

        status, answer = await center.api("POST", "/drain", {"timeout": 60})
        assert status == 200 and answer["drain"]["calls"] == 3
        await menu.press("1")

        late = await center.pbx.call("800", caller_num="5550004")
        await late.wait_for_prompt(failover_prompt(transport), timeout=5)
        assert "welcome-menu" not in late.heard, "a new caller is not taken"
        carol = await center.pbx.call("*71", caller_num="1003", caller_name="Carol")
        await carol.wait_for_prompt("agent-pass", timeout=5)
        await carol.press("4321")
        await carol.wait_ended(timeout=5)
        assert center.daemon.router.agents["1003"].state == "available", "feature codes work"

        await menu.wait_moh(timeout=5)
        _, status_view = await center.api("GET", "/status")
        figures = samples(center.daemon.api.render_metrics())
        await talking.hangup()
        assert await waiting.wait_bridged(timeout=5) == "PJSIP/1001"
        await waiting.hangup()
        assert await menu.wait_bridged(timeout=5) == "PJSIP/1001"
        assert not center.daemon.stop_requested, "a caller is still talking"
        await menu.hangup()
        await until(lambda: of(events, DrainEnded))
        assert center.daemon.stop_requested
        rows = {
            n: await center.cdr(c.uniqueid)
            for n, c in (("talking", talking), ("waiting", waiting), ("menu", menu), ("late", late))
        }
        await alice.wait_idle(timeout=5)

    assert status_view["drain"]["calls"] == 3 and status_view["drain"]["refused"] == 1
    assert figures["callcenter_draining", ()] == 1
    for name in ("talking", "waiting", "menu"):
        assert (rows[name]["queue"], rows[name]["agent"]) == ("sales", "1001"), name
        assert rows[name]["hung_up_by"] == "caller", name
    assert rows["late"]["hung_up_by"] == "draining"
    assert rows["late"]["agent"] in (None, "") and rows["late"]["ivr_path"] in (None, "")
    (started,) = of(events, DrainStarted)
    (ended,) = of(events, DrainEnded)
    assert (started.timeout, started.calls) == (60, 3)
    assert (ended.outcome, ended.refused) == ("done", 1)


@pytest.mark.parametrize("transport", ["esl-outbound", "fastagi"])
async def test_a_drain_waits_for_the_disposition_the_last_call_still_needs(
    tmp_path: Path, transport: Transport
) -> None:
    config = {
        "dispositions": {"sale": "Sale made"},
        "queues": {"sales": {"wrapup": 0, "disposition_required": True}},
    }
    async with running_center(tmp_path, transport=transport, config=config) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await sales_caller(center, "5550011")
        await caller.wait_bridged(timeout=5)
        center.daemon.drain.start(60)
        await caller.hangup()
        await center.idle()
        await asyncio.sleep(0.5)
        _, shown = await center.api("GET", "/status")
        assert not center.daemon.stop_requested, "Alice still owes the call its code"
        status, _ = await center.api("POST", "/agents/1001/disposition", {"code": "sale"})
        await until(lambda: of(events, DrainEnded))
        rows = await asyncio.to_thread(center.daemon.store.fetch_dispositions)
    assert status == 200
    assert (shown["drain"]["calls"], shown["drain"]["dispositions"]) == (0, ["1001"])
    assert [(r.call_id, r.code) for r in rows] == [(caller.uniqueid, "sale")]
    assert [e.outcome for e in of(events, DrainEnded)] == ["done"]


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_drain_that_runs_out_of_time_stops_and_leaves_the_caller_to_the_pbx(
    tmp_path: Path, transport: Transport
) -> None:
    async with center_and_events(tmp_path, transport) as (center, events):
        center.daemon.router.pause("1001", "break")
        caller = await sales_caller(center, "5550005")
        await caller.wait_moh(timeout=5)
        center.daemon.drain.start(0.5)
        await until(lambda: of(events, DrainEnded))
        assert center.daemon.stop_requested
        await center.daemon.stop()
        row = await center.cdr(caller.uniqueid)
        if transport == "fastagi":
            await caller.wait_for_prompt(failover_prompt(transport), timeout=5)
        else:
            await asyncio.sleep(0.3)
            assert caller.state == "up", "parked afresh for the next daemon"
    assert [e.outcome for e in of(events, DrainEnded)] == ["timeout"]
    assert row["hung_up_by"] == "shutdown"


@pytest.mark.parametrize("transport", ["asyncagi", "esl-outbound"])
async def test_a_drain_called_off_takes_new_callers_again(
    tmp_path: Path, transport: Transport
) -> None:
    async with center_and_events(tmp_path, transport) as (center, events):
        center.add_phone("PJSIP/1001", answer_after=0.05)
        talking = await sales_caller(center, "5550006")
        await talking.wait_bridged(timeout=5)
        assert (await center.api("POST", "/drain"))[0] == 200
        status, answer = await center.api("POST", "/drain", {"timeout": 120})
        assert status == 200 and answer["drain"]["timeout"] == 120, "a new timeout"
        status, answer = await center.api("POST", "/drain/cancel")
        assert (status, answer) == (200, {"drain": None})
        caller = await center.pbx.call("800", caller_num="5550007")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        again = await center.api("POST", "/drain/cancel")
        bad = await center.api("POST", "/drain", {"timeout": "soon"})
        await caller.hangup()
        await talking.hangup()
        await center.idle()
        assert not center.daemon.stop_requested
    assert again == (409, {"error": "the daemon is not draining"})
    assert bad[0] == 400 and "timeout" in bad[1]["error"]
    assert [e.outcome for e in of(events, DrainEnded)] == ["cancelled"]
    (started,) = of(events, DrainStarted)
    assert started.timeout == 900, "runtime.drain_timeout's default"


async def test_a_drain_over_still_shows_in_the_status_while_the_daemon_stops(
    tmp_path: Path,
) -> None:
    """Once the drain is over the daemon stops; until its API is gone, ``/status`` still
    shows the drain (nothing left), not "no drain": ``callcenter drain --wait`` read that as
    the drain called off, and said so with exit status 1 (under load, in CI)."""
    async with running_center(tmp_path) as center:
        assert (await center.api("POST", "/drain"))[0] == 200
        await until(lambda: center.daemon.stop_requested)
        await center.daemon.drain.close()  # what the stop does before the API goes
        status, answer = await center.api("GET", "/status")
    assert status == 200 and answer["drain"] is not None
    assert (answer["drain"]["calls"], answer["drain"]["dials"]) == (0, 0)


async def test_callcenter_drain_follows_the_drain_until_the_daemon_has_stopped(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        talking = await sales_caller(center, "5550008")
        await talking.wait_bridged(timeout=5)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter.cli", "drain", "--api", api, "--wait",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        try:
            await until(lambda: center.daemon.drain.active, timeout=15)
            code, out, _ = await _run_cli("status", "--api", api)
            assert code == 0 and out.startswith("DRAINING: draining since ")
            await talking.hangup()
            await until(lambda: center.daemon.stop_requested)
            # What ``callcenter run`` does once the drain asks it to stop.
            await center.daemon.stop()
            out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    lines = out_bytes.decode().splitlines()
    assert proc.returncode == 0, err_bytes.decode()
    assert lines[0].startswith("draining since ") and "1 call and 0 dials left" in lines[0]
    assert lines[-1] == "the daemon has stopped"


async def test_callcenter_drain_says_what_went_wrong(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        cancel = await _run_cli("drain", "--cancel", "--api", api)
        bad = await _run_cli("drain", "--timeout", "-3", "--api", api)
    gone = await _run_cli("drain", "--api", api)
    assert cancel[0] == 1 and "the daemon is not draining" in cancel[2]
    assert bad[0] == 2 and "--timeout" in bad[2]
    assert gone[0] == 3 and "cannot reach the daemon" in gone[2]


async def test_sigquit_drains_callcenter_run_which_exits_0_once_the_last_caller_hangs_up(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, transport="esl-inbound") as center:
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        api = _with_api_port(center.config_path)
        async with center.run_apart() as proc:
            talking = await sales_caller(center, "5550009")
            assert await talking.wait_bridged(timeout=5) == "PJSIP/1001"
            proc.send_signal(signal.SIGQUIT)
            async with asyncio.timeout(20):
                while "DRAINING" not in (await _run_cli("status", "--api", api))[1]:
                    await asyncio.sleep(0.05)
            late = await center.pbx.call("800", caller_num="5550010")
            await late.wait_for_prompt(failover_prompt("esl-inbound"), timeout=5)
            assert proc.returncode is None, "still running: a caller talks"
            await talking.hangup()
            _out, err = await asyncio.wait_for(proc.communicate(), 20)
        rows = {r["src"]: r for r in await asyncio.to_thread(center.daemon.store.fetch_cdrs)}
        await alice.wait_idle(timeout=5)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert (rows["5550009"]["agent"], rows["5550009"]["hung_up_by"]) == ("1001", "caller")
    assert rows["5550010"]["hung_up_by"] == "draining"


def _with_api_port(config_path: Path) -> str:
    """Give the config a fixed control API port (a free one), for a daemon run apart;
    returns the API's address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = yaml.safe_load(config_path.read_text())
    config["api"]["port"] = port
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return f"http://127.0.0.1:{port}"


def test_a_drain_reads_as_what_is_left_in_one_line() -> None:
    drain = {"since": "09:00", "stops_by": "09:15", "calls": 1, "dials": 2, "refused": 1}
    assert format_drain({**drain, "dispositions": ["1001", "1002"]}) == (
        "draining since 09:00: 1 call and 2 dials left, a disposition from 1001, 1002, "
        "1 new caller sent to the failover; stops by 09:15 at the latest"
    )
    assert "disposition" not in format_drain({**drain, "dispositions": []})


class _LateCall:
    """A call a driver hands over as the daemon stops (only what the daemon reads of it)."""

    def __init__(self) -> None:
        self.info = CallInfo(
            call_id="late-1",
            channel="PJSIP/5550999-00000099",
            caller_num="5550999",
            caller_name="",
            dialed="800",
            context="callcenter",
            route="inbound",
            transport="asyncagi",
        )
        self.handed_back = 0

    async def hand_back(self) -> None:
        self.handed_back += 1


async def test_a_call_handed_over_while_the_daemon_stops_is_left_to_the_pbx_with_no_record(
    tmp_path: Path,
) -> None:
    """A reconnection's adoption can hand a call over while the daemon stops: its records
    are closing, so it is not taken at all (as every call left at shutdown, it goes on in
    the dialplan), not waited for in vain (the record would never be written)."""
    async with running_center(tmp_path) as center:
        seen: list[EngineEvent] = []
        center.daemon.bus.subscribe(seen.append)
        daemon = center.daemon
        await daemon.stop()
        late = _LateCall()
        async with asyncio.timeout(1):
            await daemon._handle_call(late)  # type: ignore[arg-type]
    assert late.handed_back == 1
    assert not [e for e in seen if getattr(e, "call_id", None) == "late-1"]
