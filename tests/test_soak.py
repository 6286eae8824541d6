"""`callcenter soak`: random callers, agents and supervisors through the example config on
every transport, the PBX link cut meanwhile; no call lost, nothing left stuck. And the
checks themselves: each problem they exist for is found."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.demo import EXAMPLE
from callcenter.soak import (
    SoakPlan,
    SoakReport,
    check_logs,
    check_records,
    entry_numbers,
    menu_keys,
    run_soak,
)


def _row(
    uniqueid: str, hung_up_by: str = "caller", billsec: int = 3, duration: int = 9
) -> dict[str, object]:
    return {
        "uniqueid": uniqueid,
        "hung_up_by": hung_up_by,
        "billsec": billsec,
        "duration": duration,
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


def test_a_soak_on_a_broken_config_says_where_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("queues:\n  sales:\n    ring_timeout: soon\n")
    assert run_soak(str(broken), SoakPlan(seconds=1)) == 1
    assert f"{broken}:3: queues.sales.ring_timeout" in capsys.readouterr().err


def test_a_soak_with_daemon_restarts_and_outages_loses_no_call_and_leaves_nothing_stuck() -> None:
    """AsyncAGI: the transport where a restart and a reconnection meet (adoptions)."""
    plan = SoakPlan(seconds=14, rate=3, seed=12, outages=True, restarts=True, patience=6)
    out = io.StringIO()
    status = run_soak(str(EXAMPLE), plan, pbx="asterisk", agi="asyncagi", out=out)
    text = out.getvalue()
    assert status == 0, text
    assert "restart 1" in text or "restart 2" in text, "the daemon was restarted"
