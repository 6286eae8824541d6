"""Real SIP callers: SIPp (Debian's sip-tester) places calls over UDP into the demo PBX's
SIP side (:mod:`callcenter.demopbx.sip`), which hands them to the daemon as a PBX does;
they press 1 with SIP INFO, talk to Alice and are hung up on with a BYE once she hangs up.
On all four transports; and the SIP side's own answers to odd datagrams."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from callcenter.demopbx.sip import SIPFront
from callcenter.protocols.sip import parse
from callcenter.testing import TRANSPORTS, Center, running_center, until

SCENARIOS = Path(__file__).parent / "sipp"
TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
TRACE_SCENARIOS = TRACES / "asterisk" / "config" / "sipp"
CALLS = 3


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _written(center: Center, calls: int) -> None:
    """Once SIPp is done the PBX may still be ending the last call: wait for its CDR."""
    await center.idle()
    await until(lambda: len(center.daemon.store.fetch_cdrs()) >= calls, timeout=10)


def _front(center: Center) -> SIPFront:
    async def dial(exten: str, number: str, name: str) -> Any:
        return await center.pbx.call(exten, caller_num=number, caller_name=name)

    return SIPFront(dial)


async def _calls(
    center: Center, scenario: str, tmp_path: Path, *args: str, calls: int = 1
) -> tuple[int, str, SIPFront, list[dict[str, Any]]]:
    """SIPp runs ``scenario`` (``calls`` calls) into the demo PBX's SIP side: its exit
    status and errors, the SIP side, and the CDRs once written."""
    front = _front(center)
    await front.start()
    try:
        code, said = await _sipp(front.port, scenario, tmp_path, "-m", str(calls), *args)
    finally:
        await front.stop()
    await _written(center, calls)
    rows = await asyncio.to_thread(center.daemon.store.fetch_cdrs)
    return code, said, front, rows


async def _sipp(port: int, scenario: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run SIPp against the demo PBX's SIP port: its exit status and its error log."""
    errors = tmp_path / "sipp_errors.log"
    proc = await asyncio.create_subprocess_exec(
        "sipp",
        f"127.0.0.1:{port}",
        "-sf",
        str(SCENARIOS / scenario),  # an absolute path stays itself
        "-s",
        "800",
        "-i",
        "127.0.0.1",
        "-p",
        str(_free_udp_port()),
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        str(errors),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 45)
    said = errors.read_text(errors="replace") if errors.exists() else ""
    return int(proc.returncode or 0), said + err.decode(errors="replace")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sipp_callers_press_1_talk_to_alice_and_are_hung_up_on(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05, hangup_after=0.3)
        code, said, front, rows = await _calls(
            center, "press_1_agent_hangs_up.xml", tmp_path, "-l", "1", "-r", "5", calls=CALLS
        )
    assert code == 0, said
    assert front.calls_taken == CALLS and front.dropped == 0
    assert sorted(row["src"] for row in rows) == [f"555{n}" for n in range(1, CALLS + 1)]
    assert {(row["queue"], row["agent"], row["disposition"]) for row in rows} == {
        ("sales", "1001", "ANSWERED")
    }
    assert {row["hung_up_by"] for row in rows} == {"agent"}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_sipp_caller_who_hangs_up_while_waiting_is_counted_abandoned(
    tmp_path: Path, transport: str
) -> None:
    """Alice's phone rings and rings; the caller presses 1, waits a second and hangs up
    (BYE): the call leaves the queue as an abandon, and the SIP side answers the BYE."""
    async with running_center(tmp_path, transport=transport) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=None)
        code, said, _, (row,) = await _calls(center, "press_1_hang_up_waiting.xml", tmp_path)
    assert code == 0, said
    assert (row["src"], row["queue"], row["agent"]) == ("5551", "sales", "")
    assert (bool(row["abandoned"]), row["hung_up_by"]) == (True, "caller")
    assert row["wait_seconds"] >= 0.9, "a second in the queue"
    assert alice.rings >= 1 and alice.answered == 0


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_the_sipp_caller_the_asterisk_traces_were_made_with_reaches_sales(
    tmp_path: Path, transport: str
) -> None:
    """``uac_dtmf_info.xml``, the SIPp scenario of trace 03_b_ivr_dtmf_info against a real
    Asterisk (shared/traces/asterisk/config/sipp), as it is: it presses 1, 2, 3 by SIP
    INFO after 2.5 s; 1 takes it to sales, Alice talks and hangs up, the BYE is ours (the
    test menu waits 5 s for its keys)."""
    scenario = TRACE_SCENARIOS / "uac_dtmf_info.xml"
    # Its caller thinks 2.5 s before the first key: the test menu waits 1 s a try.
    patient = {"flows": {"main": {"nodes": {"welcome": {"timeout": 5.0}}}}}
    async with running_center(tmp_path, transport=transport, config=patient) as center:  # type: ignore[arg-type]
        # She talks past the scenario's keys 2 and 3 (0.6 s after the 1): a BYE before
        # them would be one its caller does not expect yet.
        center.add_phone("PJSIP/1001", answer_after=0.05, hangup_after=1.5)
        code, said, _, (row,) = await _calls(center, str(scenario), tmp_path)
    assert code == 0, said
    assert (row["src"], row["queue"], row["agent"], row["hung_up_by"]) == (
        "sipp",
        "sales",
        "1001",
        "agent",
    )


@pytest.mark.parametrize("transport", ["esl-inbound", "esl-outbound"])
async def test_the_freeswitch_traces_caller_hangs_up_in_the_menu(
    tmp_path: Path, transport: str
) -> None:
    """``uac_hangup_3s.xml``, the SIPp caller of the FreeSWITCH traces (shared/traces/
    freeswitch/config/sipp), as it is: answered, it hangs up after 3 s without a key,
    while the menu (5 s here) still waits; its BYE goes to our 200's Contact."""
    scenario = TRACES / "freeswitch/config/sipp/uac_hangup_3s.xml"
    patient = {"flows": {"main": {"nodes": {"welcome": {"timeout": 5.0}}}}}
    async with running_center(tmp_path, transport=transport, config=patient) as center:  # type: ignore[arg-type]
        code, said, _, (row,) = await _calls(center, str(scenario), tmp_path)
    assert code == 0, said
    assert (row["src"], row["queue"], row["agent"], row["hung_up_by"]) == (
        "555001",
        "",
        "",
        "caller",
    )
    assert row["ivr_path"].startswith("main:welcome")


async def test_the_sip_side_answers_what_is_no_call_and_drops_what_is_no_sip(
    tmp_path: Path,
) -> None:
    """An OPTIONS ping gets 200, a BYE for no call 481, a datagram that is no SIP is
    dropped and counted, an INVITE without a From tag 400."""
    async with running_center(tmp_path) as center:
        front = _front(center)
        await front.start()
        loop = asyncio.get_running_loop()
        answers: asyncio.Queue[bytes] = asyncio.Queue()

        class Peer(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                answers.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(
            Peer, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", front.port)
        )
        port = transport.get_extra_info("sockname")[1]
        head = (
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK1\r\n"
            f"From: <sip:ops@127.0.0.1:{port}>;tag=a1\r\nTo: <sip:800@127.0.0.1>\r\n"
        )
        try:
            transport.sendto(
                f"OPTIONS sip:800@127.0.0.1 SIP/2.0\r\n{head}Call-ID: o1\r\nCSeq: 1 OPTIONS"
                "\r\nContent-Length: 0\r\n\r\n".encode()
            )
            ping = parse(await asyncio.wait_for(answers.get(), 5))
            bye = f"BYE sip:800@127.0.0.1 SIP/2.0\r\n{head}Call-ID: b1\r\nCSeq: 2 BYE\r\n\r\n"
            transport.sendto(bye.encode())
            stray = parse(await asyncio.wait_for(answers.get(), 5))
            transport.sendto(b"GET / HTTP/1.1\r\n\r\n")
            transport.sendto(
                f"INVITE sip:800@127.0.0.1 SIP/2.0\r\n{head.replace(';tag=a1', '')}"
                "Call-ID: i1\r\nCSeq: 1 INVITE\r\n\r\n".encode()
            )
            trying = parse(await asyncio.wait_for(answers.get(), 5))
            refused = parse(await asyncio.wait_for(answers.get(), 5))
            await until(lambda: front.dropped == 1)
        finally:
            transport.close()
            await front.stop()
    assert (ping.status, ping.call_id, ping.get("CSeq")) == (200, "o1", "1 OPTIONS")
    assert "INVITE" in ping.get("Allow")
    assert stray.status == 481
    assert (trying.status, refused.status) == (100, 400)
    assert front.calls_taken == 0
