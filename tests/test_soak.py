"""`callcenter soak`: random callers, agents and supervisors through the example config on
every transport, the PBX link cut meanwhile; no call lost, nothing left stuck. And the
checks themselves: each problem they exist for is found."""

from __future__ import annotations

import asyncio
import contextlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from callcenter import soak
from callcenter.cli import main as cli_main
from callcenter.config import load_config, load_config_text
from callcenter.demo import EXAMPLE
from callcenter.outbound.campaign import LeadRecord
from callcenter.records.callbacks import QueueCallback
from callcenter.soak import (
    OUTSIDE_NUMBERS,
    SOAK_AGENTS,
    SOAK_CAMPAIGN,
    Soak,
    SoakPlan,
    SoakReport,
    _unless_hung,
    check_logs,
    check_other_records,
    check_promises,
    check_records,
    count_recoveries,
    entry_numbers,
    menu_keys,
    outside_devices,
    run_soak,
    soak_settings,
)
from callcenter.testing import running_center

NOON = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _row(
    uniqueid: str, hung_up_by: str = "caller", billsec: int = 3, duration: int = 9
) -> dict[str, object]:
    return {
        "uniqueid": uniqueid,
        "hung_up_by": hung_up_by,
        "billsec": billsec,
        "duration": duration,
        "dst": "s",
    }


def test_a_call_without_its_record_with_two_or_recorded_lost_is_a_problem() -> None:
    rows = [
        _row("1.1"),
        _row("1.2"),
        _row("1.2"),
        _row("1.3", hung_up_by="lost"),
        _row("1.4", hung_up_by="in_progress"),
        _row("1.5", billsec=12, duration=9),
        _row("9.9"),  # a call the soak did not place (a callback): not its business
    ]
    problems, ended_by = check_records(["1.1", "1.2", "1.3", "1.4", "1.5", "1.6"], rows)
    assert problems == [
        "call 1.2: 2 call records instead of one",
        "call 1.3: recorded as lost",
        "call 1.4: recorded as in_progress",
        "call 1.5: billsec 12 outside its duration 9",
        "call 1.6: 0 call records instead of one",
    ]
    assert ended_by == {"caller": 2, "lost": 1, "in_progress": 1}


def test_a_callback_dial_or_campaign_call_recorded_lost_is_a_problem() -> None:
    rows = [
        _row("1.1", hung_up_by="lost"),  # placed: check_records' business
        _row("web-1", hung_up_by="in_progress"),
        _row("2.2", billsec=10, duration=4),
        _row("2.3", hung_up_by="agent"),
    ]
    assert check_other_records({"1.1"}, rows) == [
        "call web-1 (s): recorded as in_progress",
        "call 2.2: billsec 10 outside its duration 4",
    ]


def _callback(call_id: str, status: str) -> QueueCallback:
    return QueueCallback(call_id, "sales", "5559001", NOON, status=status)  # type: ignore[arg-type]


def test_a_callback_promised_in_the_records_but_forgotten_by_the_daemon_is_a_problem() -> None:
    callbacks = [
        _callback("web-1", "waiting"),
        _callback("web-2", "waiting"),
        _callback("web-3", "answered"),
        _callback("web-4", "cancelled"),
    ]
    leads = [
        LeadRecord("soak", "soak-1", "5559001", "dialing", 1),
        LeadRecord("soak", "soak-2", "5559002", "retry", 1),
    ]
    assert check_promises({"web-1", "web-4"}, callbacks, leads) == [
        "callback web-2: waiting in the records, forgotten by the daemon",
        "callback web-4: waiting in the daemon, not in the records",
        "campaign soak lead soak-1: left dialing",
    ]
    assert check_promises({"web-1", "web-2"}, callbacks[:3], leads[1:]) == []


def test_the_soak_calls_people_outside_the_way_the_config_does_through_a_campaign_of_its_own(
    tmp_path: Path,
) -> None:
    config = load_config(EXAMPLE, environ={"CALLCENTER_AMI_SECRET": "x"})
    assert outside_devices(config, "5559001") == ["PJSIP/5559001@trunk"]
    settings = yaml.safe_load(EXAMPLE.read_text())
    soak = soak_settings(settings, config, tmp_path, "asterisk", campaign_mode="predictive")
    assert list(soak["campaigns"]) == [SOAK_CAMPAIGN], "the config's own are left out"
    campaign = soak["campaigns"][SOAK_CAMPAIGN]
    assert (campaign["queue"], campaign["mode"], campaign["enabled"]) == (
        "sales",
        "predictive",
        True,
    )
    leads = Path(campaign["leads"]).read_text().splitlines()
    assert leads[0] == "number,id" and leads[1].startswith(f"{OUTSIDE_NUMBERS[0]},")
    path = tmp_path / "soak.yaml"
    path.write_text(yaml.safe_dump(soak))
    loaded = load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    assert loaded.campaigns[SOAK_CAMPAIGN].dial == "PJSIP/${number}@trunk"
    assert "mqtt" not in soak and not soak.get("webhooks")


def test_a_soak_with_agents_of_its_own_puts_them_in_every_queue_with_every_skill(
    tmp_path: Path,
) -> None:
    config = load_config(EXAMPLE, environ={"CALLCENTER_AMI_SECRET": "x"})
    settings = yaml.safe_load(EXAMPLE.read_text())
    soak = soak_settings(settings, config, tmp_path, "asterisk", agents=4)
    path = tmp_path / "soak.yaml"
    path.write_text(yaml.safe_dump(soak))
    loaded = load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    added = [str(SOAK_AGENTS + n) for n in range(4)]
    assert set(config.agents) < set(loaded.agents) == set(config.agents) | set(added)
    for name, queue in loaded.queues.items():
        assert queue.agents == [*config.queues[name].agents, *added], name
    assert [bool(loaded.agents[a].pin) for a in added] == [False, True, False, True], "lines"
    assert set(loaded.agents[added[0]].skills) == set(config.acd.skills)
    assert loaded.agents[added[0]].device == f"PJSIP/{added[0]}"
    assert "4 agents of its own" in SoakReport(SoakPlan(agents=4), "fastagi").format()


def test_errors_in_the_log_are_problems_and_warnings_are_counted() -> None:
    entries = [
        {"event": "call_started", "log_level": "info"},
        {"event": "ami_connection_lost", "log_level": "warning", "reason": "closed"},
        {"event": "ami_connection_lost", "log_level": "warning", "reason": "closed"},
        {"event": "call_handler_crashed", "log_level": "error", "call_id": "1.7"},
    ]
    problems, warnings = check_logs(entries)
    assert problems == ["log error: call_handler_crashed call_id='1.7'"]
    assert warnings == {"ami_connection_lost": 2}


def test_what_the_next_daemon_did_about_what_a_restart_left_is_counted_and_reported() -> None:
    entries = [
        {"event": "left_line_taken_back", "log_level": "info", "room": "line-1003"},
        {"event": "stranded_room_legs_hung_up", "log_level": "info"},
        {"event": "left_line_taken_back", "log_level": "info", "room": "line-9102"},
        {"event": "call_started", "log_level": "info"},
    ]
    recoveries = count_recoveries(entries)
    assert recoveries == {"left_line_taken_back": 2, "stranded_room_legs_hung_up": 1}
    report = SoakReport(SoakPlan(), "fastagi", recoveries=recoveries).format()
    assert "seen to: left_line_taken_back 2, stranded_room_legs_hung_up 1" in report
    assert "seen to" not in SoakReport(SoakPlan(), "fastagi").format()


def test_callers_dial_the_configs_numbers_and_press_its_menus_keys() -> None:
    config = load_config_text(
        "\n".join(
            [
                "routes: {'0800123456': {flow: main}, default: {flow: main}}",
                "flows:",
                "  main:",
                "    start: m",
                "    nodes:",
                "      m: {kind: menu, prompt: p, choices: {'1': q, '7': q}, default: q}",
                "      q: {kind: queue, queue: sales}",
                "queues: {sales: {agents: ['1001']}}",
                "agents: {'1001': {name: Alice, device: PJSIP/1001}}",
            ]
        ),
        environ={"CALLCENTER_AMI_SECRET": "x"},
    )
    assert entry_numbers(config) == ["0800123456"]
    assert set(menu_keys(config)) == {"1", "7"}


def test_a_report_says_the_problems_or_that_there_are_none() -> None:
    plan = SoakPlan(seconds=5, rate=2, seed=3, outages=True)
    clean = SoakReport(plan=plan, transport="fastagi", calls=9, records=9)
    assert "no problems" in clean.format()
    assert "seed 3, outages" in clean.format()
    found = SoakReport(plan=plan, transport="fastagi", problems=["agent 1001: left ringing"])
    assert "1 problems:\n  agent 1001: left ringing" in found.format()


async def test_a_soak_that_hangs_says_where_its_tasks_wait_and_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def finishes() -> SoakReport:
        return SoakReport(plan=SoakPlan(), transport="fastagi")

    async def stuck_in_a_settle() -> SoakReport:
        await asyncio.Event().wait()
        raise AssertionError("never set")

    release = asyncio.Event()

    async def deaf_to_cancel() -> SoakReport:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        return SoakReport(plan=SoakPlan(), transport="fastagi")

    bailed: list[int] = []
    assert await _unless_hung(finishes(), 1.0) is not None
    assert await _unless_hung(stuck_in_a_settle(), 0.05, bail=bailed.append) is None
    said = capsys.readouterr().err
    assert "soak: hung, still running 0.05 s" in said and "stuck_in_a_settle" in said
    assert bailed == [], "a cancelled soak ends"
    late = _unless_hung(deaf_to_cancel(), 0.05, grace=0.05, bail=bailed.append)
    assert await late is None
    assert bailed == [1], "one that ignores its cancellation ends the process"
    release.set()
    await asyncio.sleep(0.01)


@pytest.mark.parametrize("cut", [False, True])
async def test_an_agent_rung_by_the_daemon_whose_phone_never_rings_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: bool
) -> None:
    """A queue dial rings Alice and Bob; Bob's phone rings, Alice's never does (the ring
    was queued behind something at the PBX: once, FreeSWITCH's music after an outage).
    Unless the link was cut meanwhile, which excuses a late ring."""
    monkeypatch.setattr(soak, "RING_UNSEEN", 0.3)
    async with running_center(tmp_path) as center:
        watcher = Soak(center, SoakPlan(seconds=1), "fastagi")
        alice = center.add_phone("PJSIP/1001", answer_after=None)
        bob = center.add_phone("PJSIP/1002", answer_after=None)
        watcher._phones = {"1001": alice, "1002": bob}
        bob.current_channel = "PJSIP/1002-00000001"
        board = center.daemon.switchboard
        monkeypatch.setattr(board, "ringing", lambda: {"call-1": {"1001", "1002"}})
        if cut:
            watcher._cut_now = 0.0
        watching = asyncio.create_task(watcher._rings())
        await asyncio.sleep(1.0)
        watcher._stop.set()
        await watching
    found = watcher._report.problems
    if cut:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith("call call-1: agent 1001 rung"), found
        assert found[0].endswith("their phone never rang")


async def test_a_caller_hunting_beside_a_free_agent_for_seconds_is_a_router_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router shows a caller hunting while Alice is free to take them: a moment of
    it is nothing (the soak looks between two loop turns), seconds of it a problem, once."""
    monkeypatch.setattr(soak, "STALL_SEEN", 0.3)
    async with running_center(tmp_path) as center:
        watcher = Soak(center, SoakPlan(seconds=1), "fastagi")
        router = center.daemon.router
        shown = [[("call-2", "1002")]] + [[("call-1", "1001")]] * 100
        monkeypatch.setattr(router, "stalled", lambda: shown.pop(0) if shown else [])
        watching = asyncio.create_task(watcher._stalls())
        await asyncio.sleep(1.0)
        watcher._stop.set()
        await watching
    found = watcher._report.problems
    assert len(found) == 1 and found[0].startswith("call call-1: hunting for an agent"), found
    assert found[0].endswith(
        "agent 1001, free to take them, was not offered the call (router stall)"
    )


@pytest.mark.parametrize(
    ("pbx", "agi"),
    [
        ("asterisk", "fastagi"),
        ("asterisk", "asyncagi"),
        ("freeswitch", "fastagi"),
        ("freeswitch", "esl-outbound"),
    ],
)
def test_a_soak_with_outages_through_the_example_loses_no_call_and_leaves_nothing_stuck(
    pbx: str, agi: str
) -> None:
    plan = SoakPlan(seconds=8, rate=3, seed=11, outages=True, patience=6)
    out = io.StringIO()
    status = run_soak(str(EXAMPLE), plan, pbx=pbx, agi=agi, out=out)
    text = out.getvalue()
    assert status == 0, text
    assert "no problems" in text
    placed = int(text.split(" calls placed")[0].rsplit("\n", 1)[-1])
    assert placed >= 10, text
    assert "outage" in text, "the link was cut"


def test_a_soak_asked_for_a_transport_the_pbx_has_not_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["soak", "--pbx", "asterisk", "--agi", "esl-outbound"]) == 2
    assert "is not a way calls reach the daemon on asterisk" in capsys.readouterr().err
    assert cli_main(["soak", "--pbx", "freeswitch", "--agi", "asyncagi"]) == 2
    said = capsys.readouterr().err
    assert "--agi asyncagi is not a way calls reach the daemon on freeswitch" in said
    assert "esl-inbound, the park" in said


def test_a_soak_on_a_broken_config_says_where_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("queues:\n  sales:\n    ring_timeout: soon\n")
    assert run_soak(str(broken), SoakPlan(seconds=1)) == 1
    assert f"{broken}:3: queues.sales.ring_timeout" in capsys.readouterr().err


@pytest.mark.parametrize(("pbx", "agi"), [("asterisk", "asyncagi"), ("freeswitch", "esl-inbound")])
def test_a_soak_with_daemon_restarts_and_outages_loses_no_call_and_leaves_nothing_stuck(
    pbx: str, agi: str
) -> None:
    """The transports where a restart and a reconnection meet (calls adopted at both); a
    restart during an outage once found the next daemon refused by the first one's mark.
    Agents of the soak's own: callers reach agents, who are on calls at the restarts."""
    plan = SoakPlan(seconds=14, rate=3, seed=12, outages=True, restarts=True, patience=6, agents=6)
    out = io.StringIO()
    status = run_soak(str(EXAMPLE), plan, pbx=pbx, agi=agi, out=out)
    text = out.getvalue()
    assert status == 0, text
    assert "restart 1" in text or "restart 2" in text, "the daemon was restarted"
