"""FastAGI: our server and AsteriskCall against a fake Asterisk replaying real FastAGI traces."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from asterisk_replay import (
    FASTAGI,
    FastAGIReplayClient,
    ReplayAMIServer,
    conn_records,
    lines_out,
    load,
)

from callcenter.errors import CallHungUp, CommandFailed, PBXTimeoutError
from callcenter.pbx.asterisk.agi import FastAGIServer, FastAGISession
from callcenter.pbx.asterisk.driver import AsteriskCall, AsteriskDriver, AsteriskSettings
from callcenter.pbx.interface import Call, DialResult, DialStatus, HangupCause

Handler = Callable[[AsteriskCall], Awaitable[None]]


@contextlib.asynccontextmanager
async def driver_with(handler: Handler) -> AsyncIterator[AsteriskDriver]:
    """A started AsteriskDriver (FastAGI on a free port, AMI on a replay of 01_a_basic)."""
    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as ami:
        settings = AsteriskSettings(
            ami_port=ami.port,
            ami_username="pbxlab",
            ami_secret="x",
            agi_port=0,
            heartbeat_interval=0,  # the replayed trace has no Setvar to answer it
        )
        driver = AsteriskDriver(settings)

        async def run(call: Call) -> None:
            assert isinstance(call, AsteriskCall)
            await handler(call)

        async with asyncio.timeout(5):
            await driver.start(run)
        try:
            yield driver
        finally:
            async with asyncio.timeout(5):
                await driver.stop()


async def replay(name: str, handler: Handler, **kw: float | int) -> FastAGIReplayClient:
    """Run ``handler`` for one recorded FastAGI connection; return the fake Asterisk."""
    client = FastAGIReplayClient.from_trace(name, **kw)  # type: ignore[arg-type]
    failures: list[BaseException] = []

    async def guarded(call: AsteriskCall) -> None:
        try:
            await handler(call)
        except BaseException as exc:
            failures.append(exc)
            raise

    async with driver_with(guarded) as driver:
        client.start(driver.agi_port)
        await client.finish(5)
    if failures:
        raise failures[0]
    return client


async def test_basic_call_answers_reads_and_sets_variables_plays_and_hangs_up() -> None:
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        seen["info"] = call.info
        await call.answer()
        seen["unset"] = await call.get_variable("MYVAR")
        await call.set_variable("MYVAR", "hello world")
        seen["set"] = await call.get_variable("MYVAR")
        seen["callerid"] = await call.get_variable("CALLERID(all)")
        seen["digit"] = await call.play(["beep"])
        await call.hangup()
        seen["hung_up"] = call.hung_up
        await call.hangup()  # idempotent: nothing sent

    client = await replay("f01_a_basic.jsonl", handler)
    info = seen["info"]
    assert info == info.__class__(
        call_id="1795343884.0",
        channel="PJSIP/sipp-00000000",
        caller_num="sipp",
        caller_name="Caller 1",
        dialed="601",
        context="from-callers",
        route="inbound",
        transport="fastagi",
        linked_id="1795343884.0",
        accountcode="",
        language="en",
        args=("arg1", "arg2"),
        params={"lang": "en"},
        device="PJSIP/sipp",
    )
    assert seen["unset"] is None and seen["set"] == "hello world"
    assert seen["callerid"] == '"Caller 1" <sipp>'
    assert seen["digit"] == "" and seen["hung_up"] is True
    recorded = [
        c
        for c in lines_out(conn_records(load(FASTAGI / "f01_a_basic.jsonl")))
        if not c.startswith("SAY")
    ]
    assert client.commands == recorded
    assert client.unmatched == []


async def test_caller_hanging_up_during_a_prompt_raises_callhungup_but_variables_still_read() -> (
    None
):
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        with pytest.raises(CallHungUp):
            await call.play(["demo-instruct"])
        assert call.hung_up
        with pytest.raises(CallHungUp):
            await call.play(["beep"])  # refused locally: nothing is sent
        seen["num"] = await call.get_variable("CALLERID(num)")
        await call.hangup()  # never raises once hung up

    client = await replay("f04_d_caller_hangup_during_stream.jsonl", handler)
    assert seen["num"] == "sipp"
    assert client.commands == ['STREAM FILE demo-instruct ""', "GET VARIABLE CALLERID(num)"]


async def test_hangup_notice_while_idle_is_seen_and_dead_channel_511_raises_callhungup() -> None:
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        session = call.session
        seen["num"] = await call.get_variable("CALLERID(num)")
        async with asyncio.timeout(2):
            await call.wait_hangup()  # the unsolicited HANGUP (2.5 s later in the trace)
        with pytest.raises(CallHungUp, match="dead"):
            await session.command('STREAM FILE beep ""', timeout=1)
        with pytest.raises(CallHungUp):
            await session.command("CHANNEL STATUS", timeout=1)
        seen["after"] = (await session.command("GET VARIABLE CALLERID(num)", timeout=1)).value
        seen["exec"] = (await session.command("EXEC NoOp still-here", timeout=1)).result

    client = await replay("f10_d2_caller_hangup_while_idle.jsonl", handler, time_scale=0.1)
    assert seen == {"num": "sipp", "after": "sipp", "exec": "0"}
    assert client.unmatched == []


async def test_dial_returns_answer_with_peer_talk_time_and_cause_and_the_call_goes_on() -> None:
    answered: list[str] = []
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        await call.play(["beep"])
        seen["dial"] = await call.dial(
            "PJSIP/agent3", timeout=20, hold_music=False, on_answer=answered.append
        )
        await call.play(["beep"])
        await call.hangup()

    client = await replay("f03_c_exec_dial_agent.jsonl", handler, time_scale=0.01)
    result = seen["dial"]
    assert result.status == DialStatus.ANSWER  # type: ignore[attr-defined]
    assert result.peer_channel == "PJSIP/agent3-00000003"  # type: ignore[attr-defined]
    assert result.talk_seconds == 9.0  # type: ignore[attr-defined]
    assert result.hung_up_by == "peer"  # type: ignore[attr-defined]
    assert result.cause == HangupCause.NORMAL_CLEARING  # type: ignore[attr-defined]
    assert answered == ["PJSIP/agent3-00000003"]
    recorded = lines_out(conn_records(load(FASTAGI / "f03_c_exec_dial_agent.jsonl")))
    # As recorded, but the three reads after the Dial are one read now.
    assert client.commands == [g.command for g in client.groups]
    assert len(client.commands) == len(recorded) - 2
    assert client.unmatched == []


async def test_usage_error_block_split_across_reads_fails_the_command_not_the_session() -> None:
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        session = call.session
        foo = await session.command("FOO BAR", timeout=1)
        usage = await session.command("STREAM FILE", timeout=1)
        seen["codes"] = (foo.code, usage.code)
        seen["usage"] = usage.usage
        for line in ("SAY DIGITS 123", "WAIT FOR DIGIT abc", "GET VARIABLE"):
            assert (await session.command(line, timeout=1)).code == 520
        with pytest.raises(CommandFailed) as info:
            await call._command("SET VARIABLE", "ONLYNAME")
        seen["failed_code"] = info.value.code
        assert (await session.command("SAY NUMBER", timeout=1)).code == 520
        await session.command("answer", timeout=1)
        with pytest.raises(CommandFailed, match="no application NoSuchApp"):
            await call._exec("NoSuchApp", "foo")
        seen["missing"] = await call.play(["no-such-prompt"])  # logged, not fatal

    client = await replay("f05_e_errors_510_520.jsonl", handler, time_scale=0.05)
    assert seen["codes"] == (510, 520)
    assert "Send the given file" in str(seen["usage"])
    assert seen["failed_code"] == 520
    assert seen["missing"] == ""
    assert client.unmatched == []


@pytest.mark.parametrize(("env_chunk", "reply_chunk"), [(1, 1), (7, 3)])
async def test_environment_and_results_split_at_any_byte_are_parsed_the_same(
    env_chunk: int, reply_chunk: int
) -> None:
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        seen["caller"] = call.info.caller_name
        seen["args"] = call.info.args
        seen["value"] = await call.get_variable("CALLERID(all)")

    client = FastAGIReplayClient.from_trace(
        "f01_a_basic.jsonl", env_chunk=env_chunk, reply_chunk=reply_chunk
    )
    async with driver_with(handler) as driver:
        client.start(driver.agi_port)
        await client.finish(5)
    assert seen == {"caller": "Caller 1", "args": ("arg1", "arg2"), "value": '"Caller 1" <sipp>'}


async def test_unicode_caller_name_and_arguments_survive() -> None:
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        seen["name"] = call.info.caller_name
        seen["args"] = call.info.args
        seen["params"] = dict(call.info.params)
        await call.set_variable("GREETING", "Grüße aus Köln")
        seen["greeting"] = await call.get_variable("GREETING")

    client = await replay("f08_h_unicode_callerid.jsonl", handler)
    assert seen["name"] == "José Müller"
    assert seen["args"] == ("José Müller", "Grüße")
    assert seen["params"] == {"name": "José Müller"}
    assert seen["greeting"] == "Grüße aus Köln"
    assert 'SET VARIABLE GREETING "Grüße aus Köln"' in client.commands


# -- the server itself, with scripted peers -----------------------------------------------------

ENV = (
    b"agi_network: yes\nagi_network_script: inbound\nagi_request: agi://127.0.0.1/inbound\n"
    b"agi_channel: PJSIP/t-00000001\nagi_uniqueid: 1.1\nagi_callerid: 100\n\n"
)


@contextlib.asynccontextmanager
async def server_with(
    on_session: Callable[[FastAGISession], Awaitable[None]], **kw: float
) -> AsyncIterator[FastAGIServer]:
    server = FastAGIServer("127.0.0.1", 0, on_session, **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_connection_without_environment_is_dropped() -> None:
    called = False

    async def on_session(session: FastAGISession) -> None:
        nonlocal called
        called = True

    async with server_with(on_session, env_timeout=0.1) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        writer.close()
    assert not called


async def test_command_pending_when_asterisk_closes_raises_callhungup() -> None:
    outcome: list[BaseException] = []
    done = asyncio.Event()

    async def on_session(session: FastAGISession) -> None:
        try:
            await session.command("WAIT FOR DIGIT 5000", timeout=2)
        except BaseException as exc:
            outcome.append(exc)
        done.set()

    async with server_with(on_session) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ENV)
        async with asyncio.timeout(2):
            assert await reader.readline() == b"WAIT FOR DIGIT 5000\n"
            writer.close()
            await done.wait()
    assert isinstance(outcome[0], CallHungUp)


async def test_timed_out_command_resyncs_before_the_next_so_late_results_are_not_misread() -> None:
    seen: dict[str, object] = {}

    async def on_session(session: FastAGISession) -> None:
        with pytest.raises(PBXTimeoutError):
            await session.command("WAIT FOR DIGIT 5000", timeout=0.05)
        seen["value"] = (await session.command("GET VARIABLE X", timeout=1)).value

    async with server_with(on_session) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ENV)
        async with asyncio.timeout(2):
            assert await reader.readline() == b"WAIT FOR DIGIT 5000\n"
            sync = await reader.readline()
            assert sync.startswith(b"GET FULL VARIABLE ccsync")
            token = sync.split()[-1].decode()
            # Asterisk: the interrupted WAIT FOR DIGIT answers a spurious result, then the echo
            writer.write(b"200 result=1\n" + f"200 result=1 ({token})\n".encode())
            assert await reader.readline() == b"GET VARIABLE X\n"
            writer.write(b"200 result=1 (right)\n")
            assert await reader.read() == b""  # closed once the session ends
        writer.close()
    assert seen == {"value": "right"}


async def test_second_command_waits_for_the_first_result() -> None:
    results: list[str] = []

    async def on_session(session: FastAGISession) -> None:
        first = asyncio.create_task(session.command("GET VARIABLE A", timeout=1))
        second = asyncio.create_task(session.command("GET VARIABLE B", timeout=1))
        results.extend([(await first).value or "", (await second).value or ""])

    async with server_with(on_session) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ENV)
        async with asyncio.timeout(2):
            assert await reader.readline() == b"GET VARIABLE A\n"
            await asyncio.sleep(0.05)
            assert reader._buffer == b""  # type: ignore[attr-defined]  # B not sent yet
            writer.write(b"200 result=1 (a)\nHANGUP\n")
            assert await reader.readline() == b"GET VARIABLE B\n"
            writer.write(b"200 result=1 (b)\n")
            assert await reader.read() == b""
        writer.close()
    assert results == ["a", "b"]


async def test_dial_sends_hold_music_and_caller_id_options_and_refuses_odd_devices() -> None:
    seen: dict[str, object] = {}

    async def on_session(session: FastAGISession) -> None:
        driver = AsteriskDriver(AsteriskSettings())
        call = AsteriskCall(driver, session, driver._call_info(session, "fastagi", ""))
        for device, caller_id in (("PJSIP/1001,10,G(x)", None), ("PJSIP/1001", "x) (y")):
            with pytest.raises(CommandFailed):
                await call.dial(device, timeout=5, caller_id=caller_id)
        seen["result"] = await call.dial(
            "PJSIP/1001&Local/2002@transfer", timeout=2.5, caller_id="Queue <800>"
        )
        with pytest.raises(CommandFailed):
            await call.dial("PJSIP/1001", timeout=5, hold_music="jazz),G(x")
        # A queue's own music class plays while the agent rings.
        await call.dial("PJSIP/1001", timeout=5, hold_music="jazz")

    async with server_with(on_session) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ENV)
        async with asyncio.timeout(2):
            line = await reader.readline()
            assert line == b'EXEC Dial "PJSIP/1001&Local/2002@transfer,3,mo(Queue <800>)"\n'
            writer.write(b"200 result=0\n")
            # One read for the whole outcome: status, answered time, peer, cause.
            assert await reader.readline() == (
                b"GET FULL VARIABLE ${DIALSTATUS}|${ANSWEREDTIME}|${DIALEDPEERNAME}|"
                b"${HANGUPCAUSE}\n"
            )
            writer.write(b"200 result=1 (NOANSWER|||19)\n")
            assert await reader.readline() == b"EXEC Dial PJSIP/1001,5,m(jazz)\n"
            writer.write(b"200 result=0\n")
            assert (await reader.readline()).startswith(b"GET FULL VARIABLE ${DIALSTATUS}")
            writer.write(b"200 result=1 (NOANSWER|||19)\n")
            assert await reader.read() == b""
        writer.close()
    result = seen["result"]
    assert result == DialResult(DialStatus.NOANSWER, cause=HangupCause.NO_ANSWER)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_sessions_leave_no_descriptor_behind_however_they_end() -> None:
    """Each session keeps a descriptor of its own to re-arm TCP_QUICKACK on; it must be
    closed whether we end the session or Asterisk closes the connection mid-command, even
    while something still holds the session object."""
    kept: list[FastAGISession] = []

    async def on_session(session: FastAGISession) -> None:
        kept.append(session)
        with contextlib.suppress(CallHungUp):
            await session.command("GET VARIABLE X", timeout=2)

    async with server_with(on_session) as server:
        before = _open_descriptors()
        for n in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(ENV)
            async with asyncio.timeout(2):
                assert await reader.readline() == b"GET VARIABLE X\n"
                if n % 2:
                    writer.write(b"200 result=1 (x)\n")  # the session ends: we close
                    assert await reader.read() == b""
            writer.close()  # even n: Asterisk hangs up while the command runs
            await writer.wait_closed()
        async with asyncio.timeout(2):
            while server.sessions:
                await asyncio.sleep(0.01)
        assert _open_descriptors() == before
    assert len(kept) == 10
