"""`callcenter demo`: the scripted calls play through, the CDRs are printed, exit status 0."""

from __future__ import annotations

import io
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from callcenter.demo import EXAMPLE, run_demo


def copy_example(folder: Path) -> Path:
    """The example config and the files it names (its campaign's lead and do-not-call
    lists), as someone starting from it copies them."""
    for name in ("callcenter.yaml", "leads.csv", "do-not-call.txt"):
        shutil.copy(EXAMPLE.parent / name, folder / name)
    return folder / "callcenter.yaml"


@pytest.mark.parametrize("pbx", ["asterisk", "freeswitch"])
def test_demo_plays_its_calls_prints_the_cdrs_and_exits_0(tmp_path: Path, pbx: str) -> None:
    config = copy_example(tmp_path)
    out = io.StringIO()
    assert run_demo(str(config), pbx=pbx, speed=0.1, out=out) == 0
    text = out.getvalue()
    print(text)  # the whole run, shown when an assertion below fails
    assert "talking to agent 1001" in text
    assert re.search(r"agent 100[12] puts the caller on hold \(music\) and calls 2000", text)
    assert re.search(r"2000 answered agent 100[12]; the caller does not hear them", text)
    assert re.search(r"agent 100[12] keys \*2# on the phone", text), "the example has keys"
    assert "consultation with 2000 completed" in text
    assert "transferred the caller to 2000" in text
    assert "supervisor 2000 on agent 1001's call: listen" in text
    assert f"recorded into {tmp_path / 'var' / 'recordings' / 'support'}/" in text
    assert "supervisor 2000 on agent 1001's call: whisper" in text
    assert "supervisor 2000 left agent 1001's call (stopped)" in text
    assert "agent 1002 paused (break)" in text
    assert text.index("caller gave up") < text.index("agent 1002 back from pause")
    assert re.search(r"caller rated agent 100[12] 5", text), "the support queue's survey"
    assert "agent 1003 logged in (feature-code)" in text
    assert "agent 1003 logged in (line)" in text
    assert "ringing agent 1003 (Local/line-1003@" in text or "(loopback/app=conference:" in text
    assert "agent 1003 presses *9 on the line: the call ends" in text
    assert "agent 1003 logged out (line)" in text
    assert "agent 1001 dials 5550108 (own call, through queue sales)" in text
    assert "5550108 answered agent 1001's call" in text
    assert "ringing agent 1001 (Local/dial-1001@" in text or "(loopback/app=conference:dial" in text
    assert re.search(r"left a \d+\.\ds message for queue sales's agents to call back", text)
    assert re.search(r"agent 100[12]: message of call \S+ called-back", text)
    assert f"14 CDR rows from this run in {tmp_path / 'var' / 'cdr.sqlite3'}" in text


def test_a_second_demo_prints_its_own_calls_and_counts_the_earlier_ones(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    assert run_demo(str(config), speed=0.1, out=io.StringIO()) == 0
    out = io.StringIO()
    assert run_demo(str(config), speed=0.1, out=out) == 0
    text = out.getvalue()
    table = text[text.index("\nstart ") :]
    rows = [line for line in table.splitlines() if line[:4].isdigit()]
    assert len(rows) == 14, table
    assert "14 CDR rows from this run (and 14 from earlier runs)" in text
    assert "agent 1003 logged in (feature-code)" in text, "a fresh day: nobody resumed"


def test_a_demo_that_stays_goes_on_taking_calls_and_names_the_pages_and_pins(
    tmp_path: Path,
) -> None:
    """``--stay``: callers keep coming after the script, the wallboard and the desktops are
    there to open (agents without a PIN get the demo's), and at its end the callers hang
    up: no call is left to the PBX."""
    config = copy_example(tmp_path)
    out = io.StringIO()
    assert run_demo(str(config), speed=0.1, stay=2.5, out=out) == 0
    text = out.getvalue()
    (said,) = [line for line in text.splitlines() if line.startswith("the demo stays")]
    assert re.search(r"http://127\.0\.0\.1:\d+/desktop \(agents 1001 PIN 1234, ", said)
    assert "1003 PIN 0420" in said, "the example's own PIN is kept"
    assert "supervisors at /desktop?as=supervisor: 2000 PIN 1234" in said
    (count,) = re.findall(r"(\d+) CDR rows from this run", text)
    assert int(count) > 14, "the script's 14 calls and the callers who came after"
    table = text[text.index("\nstart ") :]
    assert "shutdown" not in table


def test_a_sip_caller_calls_the_demo_while_it_stays(tmp_path: Path) -> None:
    """``--sip-port 0``: the demo prints its SIP port; SIPp's built-in caller (``-sn uac``)
    calls it while the demo stays, and the call is one of the demo's CDRs."""
    config = copy_example(tmp_path)
    out = io.StringIO()
    sipp: list[subprocess.CompletedProcess[bytes]] = []

    def call_when_listening() -> None:
        deadline = time.monotonic() + 60
        while "the demo stays" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        (port,) = re.findall(r"SIP calls on udp 127\.0\.0\.1:(\d+)", out.getvalue())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            local = str(sock.getsockname()[1])
        sipp.append(
            subprocess.run(
                [
                    "sipp",
                    f"127.0.0.1:{port}",
                    "-sn",
                    "uac",
                    "-s",
                    "800",
                    "-m",
                    "1",
                    "-d",
                    "300",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    local,
                    "-nostdin",
                    "-timeout",
                    "20s",
                    "-timeout_error",
                ],
                capture_output=True,
                timeout=40,
                cwd=tmp_path,
                check=False,
            )
        )

    caller = threading.Thread(target=call_when_listening)
    caller.start()
    code = run_demo(str(config), speed=0.1, stay=4.0, out=out, sip_port=0)
    caller.join(timeout=60)
    assert code == 0
    assert sipp and sipp[0].returncode == 0, sipp[0].stderr.decode(errors="replace")[-2000:]
    table = out.getvalue()[out.getvalue().index("\nstart ") :]
    assert "sipp" in table, "the SIP caller's CDR (From: sip:sipp@...)"
