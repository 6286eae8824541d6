"""AsteriskDriver over AsyncAGI and AMI, against a fake AMI server replaying real traces."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import structlog
from asterisk_replay import (
    TRACES,
    AMIScript,
    ReplayAMIServer,
    conn_records,
    load,
    script_of,
    wait_until,
)

from callcenter.demopbx import (
    AGI,
    AgentPhone,
    Answer,
    DemoAsterisk,
    DemoDialplan,
    Hangup,
    Playback,
    Set,
)
from callcenter.demopbx.manager import ACTIONS, ManagerSession
from callcenter.errors import (
    ActionFailed,
    AuthenticationError,
    CallHungUp,
    CommandFailed,
    CommandResultLost,
    PBXConnectionError,
)
from callcenter.pbx.asterisk.agi import AsyncAGIRouter, AsyncAGISession
from callcenter.pbx.asterisk.ami import AMIConnection
from callcenter.pbx.asterisk.driver import (
    AGENT_HEAR_CONTEXT,
    AGENT_WAIT_CONTEXT,
    HEARTBEAT_VARIABLE,
    AsteriskCall,
    AsteriskDriver,
    AsteriskSettings,
    channel_device,
    originate_outcome,
)
from callcenter.pbx.interface import (
    PBX,
    Call,
    ChannelHungUp,
    DeviceStateChanged,
    DialResult,
    DialStatus,
    DigitPressed,
    HangupCause,
    PBXConnected,
    PBXDisconnected,
    PBXEvent,
    reported_wait,
)
from callcenter.protocols.ami import AMIMessage, AMIParser
from callcenter.testing import HandBackProbe

Handler = Callable[[AsteriskCall], Awaitable[None]]


class Run:
    """One driver run: the calls it handled, what they raised, the events it published."""

    def __init__(self) -> None:
        self.calls: list[AsteriskCall] = []
        self.errors: list[BaseException] = []
        self.events: list[PBXEvent] = []
        self.done = asyncio.Event()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def running(
    ami: ReplayAMIServer | int, handler: Handler, **settings: Any
) -> AsyncIterator[tuple[AsteriskDriver, Run]]:
    """A started driver (AsyncAGI unless told) logged in to ``ami`` (a server or a port)."""
    run = Run()
    options: dict[str, Any] = {
        "ami_port": ami if isinstance(ami, int) else ami.port,
        "ami_username": "pbxlab",
        "ami_secret": "x",
        "agi_transport": "asyncagi",
        "reconnect_min": 0.02,
        "reconnect_max": 0.05,
        # A replayed trace answers the actions it recorded, in order: no heartbeats in them.
        "heartbeat_interval": 0,
    }
    options.update(settings)
    driver = AsteriskDriver(AsteriskSettings(**options))
    driver.subscribe(run.events.append)

    async def serve(call: Call) -> None:
        assert isinstance(call, AsteriskCall)
        run.calls.append(call)
        try:
            await handler(call)
        except BaseException as exc:
            run.errors.append(exc)
            raise
        finally:
            run.done.set()

    async with asyncio.timeout(5):
        await driver.start(serve)
    try:
        yield driver, run
    finally:
        async with asyncio.timeout(5):
            await driver.stop()


def commands(server: ReplayAMIServer, peer: int = 0) -> list[str]:
    return [m.get("Command") or "" for m in server.peers[peer].received if m.name == "AGI"]


async def test_driver_is_a_pbx() -> None:
    assert isinstance(AsteriskDriver(AsteriskSettings()), PBX)
    assert "hunter2" not in repr(AsteriskSettings(ami_secret="hunter2"))


async def test_start_with_a_wrong_secret_raises_authentication_error() -> None:
    async def handler(call: AsteriskCall) -> None:
        return None

    async with ReplayAMIServer.from_trace("13_g_errors.jsonl", conn=17) as server:
        driver = AsteriskDriver(
            AsteriskSettings(ami_port=server.port, ami_username="pbxlab", ami_secret="wrong")
        )
        with pytest.raises(AuthenticationError, match="pbxlab"):
            async with asyncio.timeout(5):
                await driver.start(handler)
        await driver.stop()


async def test_ivr_call_over_asyncagi_answers_reads_digits_and_hangs_up() -> None:
    seen: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        seen["num"] = await call.get_variable("CALLERID(num)")
        await call.set_variable("IVR_STEP", "menu")
        seen["beep"] = await call.play(["beep"])
        seen["digits"] = await call.read_digits("agent-pass", max_digits=3, timeout=6)
        await call.play(["auth-thankyou"])
        await call.hangup()

    async with (
        ReplayAMIServer.from_trace("02_b_ivr_dtmf_rfc2833.jsonl") as server,
        running(server, handler) as (_, run),
    ):
        async with asyncio.timeout(5):
            await run.done.wait()
            await wait_until(lambda: run.of(ChannelHungUp))
    assert run.errors == []
    assert seen == {"num": "sipp", "beep": "", "digits": "123"}
    info = run.calls[0].info
    assert (info.call_id, info.channel, info.transport) == (
        "1795337924.1",
        "PJSIP/sipp-00000001",
        "asyncagi",
    )
    assert (info.caller_num, info.caller_name, info.dialed, info.linked_id) == (
        "sipp",
        "Caller 1",
        "101",
        "1795337924.1",
    )
    assert commands(server) == [
        "ANSWER",
        "GET VARIABLE CALLERID(num)",
        "SET VARIABLE IVR_STEP menu",
        'STREAM FILE beep ""',
        "GET DATA agent-pass 6000 3",
        'STREAM FILE auth-thankyou ""',
        "HANGUP",
    ]
    assert [m for m in server.unmatched if m.name == "AGI"] == []
    assert run.calls[0].hung_up
    assert DeviceStateChanged("PJSIP/sipp", "INUSE") in run.events
    assert PBXConnected("asterisk") in run.events


async def test_asterisk_dropping_the_queued_command_at_hangup_fails_it_at_once() -> None:
    outcome: dict[str, object] = {}

    async def handler(call: AsteriskCall) -> None:
        session = call.session
        first = asyncio.create_task(session.command('STREAM FILE demo-congrats ""', timeout=5))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(session.command('STREAM FILE beep ""', timeout=5))
        outcome["first"] = await first
        with pytest.raises(CallHungUp, match="AsyncAGIEnd"):
            await second
        outcome["get"] = await call.get_variable("CALLERID(num)")
        with pytest.raises(CallHungUp):
            await call.play(["beep"])
        async with asyncio.timeout(1):
            await call.wait_hangup()
        await call.hangup()  # does nothing, raises nothing

    async with (
        ReplayAMIServer.from_trace("14_h_hangup_mid_agi.jsonl") as server,
        running(server, handler) as (_, run),
    ):
        async with asyncio.timeout(5):
            await run.done.wait()
    assert run.errors == []
    first = outcome["first"]
    assert first.result == "-1" and first.data == {"endpos": "19360"}  # type: ignore[attr-defined]
    assert outcome["get"] is None
    call = run.calls[0]
    assert call.hung_up and call.hangup_cause == HangupCause.UNSPECIFIED  # "Cause: 0"
    assert ChannelHungUp("PJSIP/sipp-0000001d", "1795338270.33", HangupCause.UNSPECIFIED) in (
        run.events
    )
    assert commands(server) == ['STREAM FILE demo-congrats ""', 'STREAM FILE beep ""']


async def test_dial_answered_by_agent_who_hangs_up_reports_peer_and_talk_time() -> None:
    answered: list[tuple[str, bool]] = []
    results: list[DialResult] = []

    async def handler(call: AsteriskCall) -> None:
        await call.play(["pls-hold-while-try"])
        results.append(
            await call.dial(
                "PJSIP/agent3",
                timeout=20,
                hold_music=False,
                on_answer=lambda peer: answered.append((peer, bool(results))),
            )
        )
        await call.play(["auth-thankyou"])
        await call.hangup()

    server = ReplayAMIServer.from_trace("04_c_agi_dial_agent.jsonl", time_scale=0.01)
    async with server, running(server, handler) as (_, run):
        async with asyncio.timeout(5):
            await run.done.wait()
    assert run.errors == []
    assert answered == [("PJSIP/agent3-00000004", False)]  # from DialEnd, before dial returned
    result = results[0]
    assert result.status == DialStatus.ANSWER
    assert result.peer_channel == "PJSIP/agent3-00000004"
    assert result.hung_up_by == "peer"
    assert result.cause == HangupCause.NORMAL_CLEARING
    assert 0.05 < result.talk_seconds < 1.0  # 8 s recorded, replayed at 1/100
    assert commands(server)[:3] == [
        'STREAM FILE pls-hold-while-try ""',
        "EXEC Dial PJSIP/agent3,20",
        "GET FULL VARIABLE ${DIALSTATUS}|${ANSWEREDTIME}|${DIALEDPEERNAME}|${HANGUPCAUSE}",
    ]
    assert ChannelHungUp("PJSIP/agent3-00000004", "1795337949.4", HangupCause.NORMAL_CLEARING) in (
        run.events
    )


async def test_caller_hanging_up_mid_bridge_returns_answer_hung_up_by_caller() -> None:
    results: list[DialResult] = []
    answered: list[str] = []

    async def handler(call: AsteriskCall) -> None:
        results.append(
            await call.dial("PJSIP/agent2", timeout=30, hold_music=False, on_answer=answered.append)
        )
        assert call.hung_up
        with pytest.raises(CallHungUp):
            await call.answer()

    server = ReplayAMIServer.from_trace("15_h2_hangup_during_exec_dial.jsonl", time_scale=0.05)
    async with server, running(server, handler) as (_, run):
        async with asyncio.timeout(5):
            await run.done.wait()
            await wait_until(lambda: len(run.of(ChannelHungUp)) >= 2)
    assert run.errors == []
    result = results[0]
    assert (result.status, result.hung_up_by, result.peer_channel) == (
        DialStatus.ANSWER,
        "caller",
        "PJSIP/agent2-0000001f",
    )
    assert result.talk_seconds > 0.05  # 1.9 s recorded, replayed at 1/20
    assert answered == ["PJSIP/agent2-0000001f"]
    assert run.calls[0].hangup_cause == HangupCause.NORMAL_CLEARING
    # the session ended with the caller: nothing more is sent
    assert commands(server) == ["EXEC Dial PJSIP/agent2,30"]


async def test_bridge_action_takes_the_caller_out_of_agi_without_asyncagiend() -> None:
    pending_failed: list[BaseException] = []
    beeped = asyncio.Event()

    async def handler(call: AsteriskCall) -> None:
        await call.play(["beep"])
        beeped.set()
        try:
            await call.session.command("WAIT FOR DIGIT 60000", timeout=5)
        except CallHungUp as exc:
            pending_failed.append(exc)

    server = ReplayAMIServer.from_trace(
        "05_c2_originate_bridge.jsonl", synthesize_agi_results=False
    )
    async with server, running(server, handler) as (driver, run):
        async with asyncio.timeout(5):
            await beeped.wait()
            outcome = await driver.originate(
                "PJSIP/agent1",
                context="lab",
                exten="wait",
                caller_id='"Queue Call" <106>',
                timeout=20,
                variables={"ORIG_FOR": "PJSIP/sipp-00000007", "__INHERIT": "1"},
            )
            assert await outcome == "", "OriginateResponse: Success, matched by its ActionID"
            await driver.ami.send_action(
                "Bridge",
                [("Channel1", "PJSIP/sipp-00000007"), ("Channel2", "PJSIP/agent1-00000008")],
                retry_on_reconnect=False,
            )
            await run.done.wait()
            await driver.hangup_channel("PJSIP/agent1-00000008")
            await wait_until(lambda: len(run.of(ChannelHungUp)) >= 2)
    assert len(pending_failed) == 1 and "bridged outside AGI" in str(pending_failed[0])
    originate = next(m for m in server.peers[0].received if m.name == "Originate")
    assert originate.get("Async") == "true" and originate.get("Timeout") == "20000"
    assert originate.get_all("Variable") == ["ORIG_FOR=PJSIP/sipp-00000007", "__INHERIT=1"]
    assert "ASYNCAGI BREAK" not in commands(server)  # the session had already ended
    hangup = next(m for m in server.peers[0].received if m.name == "Hangup")
    assert hangup.get("Cause") == "16"


async def test_handler_returning_sends_asyncagi_break_so_the_dialplan_continues() -> None:
    async def handler(call: AsteriskCall) -> None:
        await call.answer()

    async with (
        ReplayAMIServer.from_trace("02_b_ivr_dtmf_rfc2833.jsonl") as server,
        running(server, handler) as (_, run),
    ):
        async with asyncio.timeout(5):
            await run.done.wait()
            await wait_until(lambda: "ASYNCAGI BREAK" in commands(server))
    assert commands(server) == ["ANSWER", "ASYNCAGI BREAK"]


async def test_first_agi_argument_names_the_route_for_asyncagi() -> None:
    records = conn_records(load(TRACES / "02_b_ivr_dtmf_rfc2833.jsonl"))
    for rec in records:
        if rec["data"].startswith("Event: AsyncAGIStart"):
            rec["data"] = rec["data"].replace(
                "%0A%0A\r\n",
                "%0Aagi_arg_1%3A%20inbound%3Fqueue%3Dsales%0Aagi_arg_2%3A%20x%0A%0A\r\n",
            )
    infos = []

    async def handler(call: AsteriskCall) -> None:
        infos.append(call.info)

    async with (
        ReplayAMIServer(AMIScript.from_records(records)) as server,
        running(server, handler) as (_, run),
    ):
        async with asyncio.timeout(5):
            await run.done.wait()
    assert (infos[0].route, dict(infos[0].params), infos[0].args) == (
        "inbound",
        {"queue": "sales"},
        ("x",),
    )


async def test_reconnect_resyncs_and_a_call_that_vanished_meanwhile_is_hung_up() -> None:
    first = AMIScript.from_records(conn_records(load(TRACES / "02_b_ivr_dtmf_rfc2833.jsonl")))
    later = AMIScript.from_records(conn_records(load(TRACES / "01_a_basic.jsonl")))
    answered = asyncio.Event()

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        answered.set()
        await call.wait_hangup()

    async with (
        ReplayAMIServer(first, reconnect_script=later) as server,
        running(server, handler) as (_, run),
    ):
        async with asyncio.timeout(5):
            await answered.wait()
            server.drop_all()  # Asterisk restarted: the call is gone when we are back
            await run.done.wait()
    call = run.calls[0]
    assert call.hung_up and call.hangup_cause == HangupCause.UNSPECIFIED
    kinds = [type(e) for e in run.events if not isinstance(e, DeviceStateChanged)]
    assert kinds[:2] == [PBXConnected, PBXDisconnected]
    assert PBXConnected in kinds[2:]
    assert ChannelHungUp("PJSIP/sipp-00000001", "1795337924.1", HangupCause.UNSPECIFIED) in (
        run.events
    )
    # The filter is per session: it is asked for again before the resync.
    assert [m.name for m in server.peers[1].received][:3] == [
        "Login",
        "Filter",
        "CoreShowChannels",
    ]


async def test_channels_come_from_coreshowchannels() -> None:
    script = script_of(
        (conn_records(load(TRACES / "01_a_basic.jsonl")), "Login", 0),
        (load(TRACES / "16_i_load.jsonl.gz"), "CoreShowChannels", 0),  # for the resync
        (load(TRACES / "16_i_load.jsonl.gz"), "CoreShowChannels", 0),
    )

    async def handler(call: AsteriskCall) -> None:
        return None

    async with (
        ReplayAMIServer(script) as server,
        running(server, handler, agi_transport="fastagi", agi_port=0) as (driver, _),
    ):
        async with asyncio.timeout(5):
            # the resync's CoreShowChannels goes first
            await wait_until(lambda: len(server.peers[0].received) >= 2)
            snapshots = await driver.channels()  # answered by the recorded list
    assert len(snapshots) == 19
    first = snapshots[0]
    assert (first.channel, first.call_id, first.state, first.application) == (
        "PJSIP/sipp-00000032",
        "1795338335.54",
        "Up",
        "Answer",
    )
    assert first.bridged_to is None


async def test_hangup_of_a_missing_channel_is_quiet_but_other_errors_raise() -> None:
    async def handler(call: AsteriskCall) -> None:
        return None

    server = ReplayAMIServer.from_trace("13_g_errors.jsonl", conn=18)
    async with server, running(server, handler, agi_transport="fastagi", agi_port=0) as (d, _):
        async with asyncio.timeout(5):
            await d.hangup_channel("PJSIP/nonexistent-00000000")
            with pytest.raises(ActionFailed, match="requires 'Context'"):
                await d.originate("PJSIP/agent1", context="lab", exten="1")
    with pytest.raises(CommandFailed, match="refusing to dial"):
        await d.originate("PJSIP/1001,10,G(x)", context="lab", exten="1")


# -- one whole call through the demo PBX (real AMI + FastAGI/AsyncAGI over TCP) ----------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def demo_driver(
    transport: str, handler: Handler
) -> AsyncIterator[tuple[DemoAsterisk, AsteriskDriver, Run]]:
    port = free_port()
    pbx = DemoAsterisk(
        agi_url=f"agi://127.0.0.1:{port}",
        agi_mode="fastagi" if transport == "fastagi" else "async",
        ami_secret="demo-secret",
        prompt_seconds=0.05,
    )
    async with (
        pbx,
        running(
            pbx.ami_port,
            handler,
            ami_username="callcenter",
            ami_secret="demo-secret",
            agi_transport=transport,
            agi_port=port,
        ) as (driver, run),
    ):
        yield pbx, driver, run


def _idle_router() -> AsyncAGIRouter:
    """An AsyncAGI router on an AMI link never connected; its sessions wait forever."""

    async def keep(session: AsyncAGISession) -> None:
        await asyncio.Event().wait()

    return AsyncAGIRouter(AMIConnection("127.0.0.1", 1, "u", "s"), keep)


def _waiting(channel: str, uniqueid: str, application: str, data: str, **more: str) -> AMIMessage:
    """A ``CoreShowChannel`` row of ``channel`` running ``application(data)``."""
    return AMIMessage.from_pairs(
        {
            "Event": "CoreShowChannel",
            "Channel": channel,
            "Uniqueid": uniqueid,
            "Priority": "2",
            "Application": application,
            "ApplicationData": data,
            **more,
        }
    )


@pytest.mark.parametrize(
    ("application", "data", "adopted"),
    [
        ("AGI", "agi:async,inbound?queue=sales", True),
        ("AGI", "agi:async", True),
        ("AGI", "agi://127.0.0.1:4573/inbound", False),
        ("Dial", "PJSIP/1001,20", False),
        ("AppDial", "(Outgoing Line)", False),
    ],
)
async def test_only_channels_waiting_in_asyncagi_are_adopted(
    application: str, data: str, adopted: bool
) -> None:
    router = _idle_router()
    item = _waiting(
        "PJSIP/5550021-00000001",
        "1796433947.1",
        application,
        data,
        CallerIDNum="5550021",
        CallerIDName="<unknown>",
        Context="from-callers",
        Exten="800",
    )
    assert router.waiting_unseen(item) is adopted
    if adopted:
        assert router.adopt(item) is True
        session = router.session_for("PJSIP/5550021-00000001")
        assert session is not None
        assert (session.env.callerid, session.env.calleridname) == ("5550021", "unknown")
        assert session.env.args == tuple(data.split(",")[1:])
        assert router.waiting_unseen(item) is False, "a channel is adopted once"
        await router.stop()


async def test_a_command_cut_by_the_end_of_its_session_and_the_link_at_once_leaves_no_stray_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by ``callcenter soak --outages``: the session ended (AsyncAGIEnd) while the
    AGI action was being sent and the send then failed; the command's own result future
    kept an error nobody read, which asyncio reported as never retrieved."""
    stray: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: stray.append(context))
    router = _idle_router()
    item = _waiting(
        "PJSIP/1003-00000020",
        "1796433947.2",
        "AGI",
        "agi:async,agent-line",
        Context="from-agents",
        Exten="*70",
    )
    try:
        assert router.adopt(item) is True
        session = router.session_for("PJSIP/1003-00000020")
        assert session is not None

        async def send_action(*args: Any, **kwargs: Any) -> AMIMessage:
            session.end("AsyncAGIEnd", hung_up=True)
            raise PBXConnectionError("AMI link lost")

        monkeypatch.setattr(router.ami, "send_action", send_action)
        with pytest.raises(PBXConnectionError):
            await session.command('STREAM FILE beep ""', timeout=1.0)
        await router.stop()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(handler)
    assert stray == []


@pytest.mark.parametrize(
    ("command_line", "running", "outcome"),
    [
        ("EXEC Dial PJSIP/1001", "Dial", "result"),
        ("EXEC ConfBridge cc-1", "ConfBridge", "result"),
        ("EXEC Dial PJSIP/1001", "AGI", "0"),
        ("GET DATA welcome-menu 5000 1", "AGI", ""),
        ("GET DATA welcome-menu 5000 1", "AGI", "still running"),
        ("WAIT FOR DIGIT 1000", "AGI", "0"),
        ("GET VARIABLE DIALSTATUS", "AGI", "again"),
        ("RECORD FILE /var/spool/vm/1 wav # 60000 0 BEEP s=5", "AGI", "0"),
        ("HANGUP", "AGI", CommandResultLost),
        ("EXEC Dial PJSIP/1001", None, CallHungUp),
    ],
)
async def test_a_command_pending_when_the_ami_link_drops_waits_for_the_resync_to_tell_its_fate(
    monkeypatch: pytest.MonkeyPatch, command_line: str, running: str | None, outcome: Any
) -> None:
    """Still running at the PBX (the talk of a Dial, a room): its AsyncAGIExec comes once the
    link is back. Back in AGI: an application or a wait for keys ended unseen, as if run to
    its end with no key (the channel lives), a recording too (as long as it may have run
    until the resync), once a NOOP sent behind it says so (a wait for keys still running
    answers first, with the key pressed); a read is asked again; a hang-up that did not
    happen is lost, and the channel is left for adoption. Gone: the caller hung up
    meanwhile."""
    router = _idle_router()
    channel = "PJSIP/5550101-00000031"
    item = _waiting(channel, "1796433947.3", "AGI", "agi:async,inbound", Exten="800")
    assert router.adopt(item) is True
    session = router.session_for(channel)
    assert session is not None

    sent: list[str] = []

    async def send_action(action: str, fields: Any, **kwargs: Any) -> AMIMessage:
        sent.append(dict(fields)["CommandID"])
        return AMIMessage.from_pairs({"Response": "Success", "Message": "Added AGI command"})

    def result(command_id: str, text: str) -> None:
        router._on_exec(
            AMIMessage.from_pairs(
                {
                    "Event": "AsyncAGIExec",
                    "Channel": channel,
                    "CommandId": command_id,
                    "Result": text,
                }
            )
        )

    monkeypatch.setattr(router.ami, "send_action", send_action)
    try:
        command = asyncio.create_task(session.command(command_line, timeout=None))
        await asyncio.sleep(0.01)
        router._on_link_lost("connection closed by the PBX")
        await asyncio.sleep(0.01)
        assert not command.done(), "the link's loss alone fails nothing"
        rows = [] if running is None else [_waiting(channel, "1796433947.3", running, "")]
        router.resume(rows)
        await asyncio.sleep(0.01)
        if outcome == "result":
            assert not command.done() and router.session_for(channel) is session
            result(sent[0], "200%20result%3D0%0A")
            assert (await command).code == 200
        elif outcome == "still running":
            await asyncio.sleep(0.01)
            assert len(sent) == 2 and not command.done(), "the NOOP probe is sent"
            result(sent[0], "200%20result%3D1%0A")  # the caller pressed 1 after all
            result(sent[1], "200%20result%3D0%0A")
            assert (await command).result == "1", "the key is not lost"
        elif outcome == "again":
            assert len(sent) == 2 and not command.done(), "asked again, under a new id"
            result(sent[1], "200%20result%3D1%20(NOANSWER)%0A")
            assert (await command).value == "NOANSWER"
        elif isinstance(outcome, str):
            if not command_line.startswith("EXEC"):
                # A prompt, a wait for keys, a recording: a NOOP asks whether it still runs.
                await asyncio.sleep(0.01)
                assert not command.done() and len(sent) == 2, "the NOOP probe is sent"
                result(sent[1], "200%20result%3D0%0A")  # it answers: the command had ended
            answer = await command
            assert answer.result == outcome, "ran to its end, no key pressed"
            assert router.session_for(channel) is session, "the call goes on"
            if command_line.startswith("RECORD FILE"):
                # Taken to have recorded until the resync, 20 ms after it was sent.
                assert answer.value == "timeout" and int(answer.data["endpos"]) >= 80
            with structlog.testing.capture_logs() as logs:
                # It was still running inside AGI after all: its real answer comes late.
                result(sent[0], "200%20result%3D49%0A")
            [late] = [e for e in logs if e["event"] == "asyncagi_result_after_resync"]
            assert late["command"] == " ".join(command_line.split()[:2])
            assert late["result"] == "200 result=49"
        else:
            with pytest.raises(outcome):
                await command
        if outcome is CommandResultLost:
            assert router.waiting_unseen(_waiting(channel, "1796433947.3", "AGI", "agi:async"))
    finally:
        await router.stop()


def heartbeating(
    pbx: DemoAsterisk, handler: Handler
) -> contextlib.AbstractAsyncContextManager[tuple[AsteriskDriver, Run]]:
    """An AsyncAGI driver on the demo PBX that sends its heartbeat every 50 ms."""
    return running(
        pbx.ami_port,
        handler,
        ami_username="callcenter",
        ami_secret="demo-secret",
        agi_transport="asyncagi",
        heartbeat_interval=0.05,
    )


async def test_the_heartbeat_global_tracks_the_clock_and_drops_to_0_when_the_driver_stops() -> None:
    """What the AsyncAGI context reads before ``AGI(agi:async)``: CALLCENTER_HEARTBEAT."""

    async def handler(call: AsteriskCall) -> None:
        return None

    async with DemoAsterisk(ami_secret="demo-secret", agi_mode="async") as pbx:
        async with asyncio.timeout(5), heartbeating(pbx, handler):
            await wait_until(lambda: HEARTBEAT_VARIABLE in pbx.global_vars)
            first = int(pbx.global_vars[HEARTBEAT_VARIABLE])
            assert abs(first - time.time()) <= 2
            pbx.global_vars[HEARTBEAT_VARIABLE] = "1"
            await wait_until(lambda: pbx.global_vars[HEARTBEAT_VARIABLE] != "1")
            assert int(pbx.global_vars[HEARTBEAT_VARIABLE]) >= first
        assert pbx.global_vars[HEARTBEAT_VARIABLE] == "0"


async def test_an_ami_user_without_write_call_gets_one_heartbeat_warning_and_calls_still_work() -> (
    None
):
    async def handler(call: AsteriskCall) -> None:
        await call.answer()

    pbx = DemoAsterisk(ami_secret="demo-secret", agi_mode="async", ami_write="system,agi,originate")
    async with pbx:
        with structlog.testing.capture_logs() as logs:
            async with asyncio.timeout(5), heartbeating(pbx, handler) as (_driver, run):
                await asyncio.sleep(0.3)
                caller = await pbx.call("800", caller_num="5550100")
                await caller.wait_ended(timeout=5)
                assert len(run.calls) == 1
    refused = [e for e in logs if e["event"] == "heartbeat_refused"]
    assert len(refused) == 1, refused
    assert "write=call" in refused[0]["hint"]
    assert HEARTBEAT_VARIABLE not in pbx.global_vars


def guarded_pbx(**options: Any) -> DemoAsterisk:
    """A demo Asterisk whose AsyncAGI routes guard the hand-over for 0.3 s, as
    extensions.conf does for 20 s."""
    return DemoAsterisk(ami_secret="demo-secret", agi_mode="async", failover_after=0.3, **options)


async def past_the_guard(call: AsteriskCall) -> None:
    """Serve the caller longer than :func:`guarded_pbx`'s guard, then say goodbye."""
    await call.answer()
    await asyncio.sleep(0.8)
    await call.play(["goodbye"])
    await call.hangup()


async def test_a_guarded_asyncagi_caller_the_driver_took_is_not_sent_to_the_failover() -> None:
    async with guarded_pbx() as pbx, heartbeating(pbx, past_the_guard) as (_driver, run):
        caller = await pbx.call("800", caller_num="5550100")
        await caller.wait_ended(timeout=5)
        assert run.errors == []
    assert caller.heard == ["goodbye"]
    assert run.calls[0].info.route == "inbound"


async def test_a_guard_the_lost_ami_link_kept_from_being_cleared_is_cleared_once_it_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The driver takes the caller as its AMI link drops (a call adopted at a reconnection
    cut again at once): the guard's Setvar is not sent. It is sent again once the link is
    back, and the caller is served, not moved to the failover by the guard."""

    async with guarded_pbx() as pbx, heartbeating(pbx, past_the_guard) as (driver, run):
        send_action = driver.ami.send_action
        down = [True]

        async def link_down_once(action: str, *args: Any, **kwargs: Any) -> AMIMessage:
            if action == "Setvar" and ("Variable", "TIMEOUT(absolute)") in args[0] and down:
                down.clear()
                raise PBXConnectionError("AMI link to the PBX is down (Setvar not sent)")
            return await send_action(action, *args, **kwargs)

        monkeypatch.setattr(driver.ami, "send_action", link_down_once)
        caller = await pbx.call("800", caller_num="5550100")
        await caller.wait_ended(timeout=5)
        assert run.errors == []
    assert not down, "the guard's first Setvar met the link down"
    assert caller.heard == ["goodbye"], "served, not sent to the failover"


async def test_the_guard_is_cleared_before_the_calls_first_command() -> None:
    """The Setvar is sent, not awaited (Asterisk runs one manager session's actions in
    turn): it must still be on the wire before the call's first ``Action: AGI``."""

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        await call.hangup()

    async with guarded_pbx() as pbx, heartbeating(pbx, handler) as (_driver, run):
        caller = await pbx.call("800", caller_num="5550100")
        await caller.wait_ended(timeout=5)
        await asyncio.wait_for(run.done.wait(), 5)
    mine = [action for action, channel in pbx.action_log if channel == caller.channel]
    assert mine[:2] == ["Setvar", "AGI"], mine
    assert run.errors == []


async def test_an_absolute_timeout_the_arguments_do_not_call_a_guard_is_left_to_the_admin() -> None:
    """An admin's own limit (no ``guard`` argument) is not the driver's to clear."""
    dialplan = DemoDialplan(
        {
            "800": [Answer(), Set("TIMEOUT(absolute)", "0.3"), AGI("agi:async"), Hangup()],
            "T": [Playback("call-limit-reached"), Hangup()],
        }
    )

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        await call.wait_hangup()

    pbx = DemoAsterisk(ami_secret="demo-secret", agi_mode="async", dialplan=dialplan)
    async with pbx, heartbeating(pbx, handler):
        caller = await pbx.call("800", caller_num="5550100")
        await caller.wait_ended(timeout=5)
    assert caller.heard == ["call-limit-reached"]


async def test_a_guard_asterisk_refuses_to_clear_is_logged_and_the_call_is_served_meanwhile() -> (
    None
):
    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        await call.play(["welcome"])
        await call.wait_hangup()

    async with guarded_pbx(ami_write="system,agi,originate") as pbx:
        with structlog.testing.capture_logs() as logs:
            async with heartbeating(pbx, handler) as (_driver, run):
                caller = await pbx.call("800", caller_num="5550100")
                await caller.wait_ended(timeout=5)
    assert caller.heard == ["welcome", "ss-noservice"], "served, then the failover: not silence"
    assert len(run.calls) == 1
    refused = [e for e in logs if e["event"] == "failover_guard_not_cleared"]
    assert [e["channel"] for e in refused] == [caller.channel]


@pytest.mark.parametrize("transport", ["fastagi", "asyncagi"])
async def test_demo_call_answer_menu_dial_two_agents_then_goodbye(transport: str) -> None:
    seen: dict[str, Any] = {}
    answered: list[str] = []

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        seen["barge"] = await call.play(["welcome"], interrupt_digits="12")
        seen["choice"] = await call.read_digits("enter-choice", max_digits=1, timeout=2)
        seen["silent"] = await call.dial("PJSIP/1001", timeout=0.3)
        seen["talked"] = await call.dial("PJSIP/1002", timeout=5, on_answer=answered.append)
        await call.play(["goodbye"])
        await call.hangup()

    async with demo_driver(transport, handler) as (pbx, _, run):
        pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=None))
        pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=0.05, hangup_after=0.2))
        async with asyncio.timeout(10):
            caller = await pbx.call("800", caller_num="5551234", caller_name="Jane Doe")
            await caller.wait_for_prompt("enter-choice")
            await caller.press("2")
            await caller.wait_ended()
            await run.done.wait()
    assert run.errors == []
    assert seen["barge"] == "" and seen["choice"] == "2"
    assert seen["silent"].status == DialStatus.NOANSWER
    talked = seen["talked"]
    assert talked.status == DialStatus.ANSWER and talked.hung_up_by == "peer"
    assert talked.peer_channel is not None and talked.peer_channel.startswith("PJSIP/1002-")
    assert answered == [talked.peer_channel]
    assert 0.1 < talked.talk_seconds < 2.0
    assert caller.heard[-1] == "goodbye"
    info = run.calls[0].info
    assert (info.route, info.caller_num, info.caller_name, info.dialed) == (
        "inbound",
        "5551234",
        "Jane Doe",
        "800",
    )
    assert info.transport == transport


@pytest.mark.parametrize(
    ("seconds", "told"),
    [(0.4, (0, "queue-seconds")), (59.9, (59, "queue-seconds")), (60, (1, "queue-minutes")),
     (185, (3, "queue-minutes"))],
)  # fmt: skip
def test_a_wait_is_told_in_seconds_under_a_minute_then_in_whole_minutes(
    seconds: float, told: tuple[int, str]
) -> None:
    assert reported_wait(seconds) == told


@pytest.mark.parametrize("pasted", [True, False])
async def test_the_agent_hears_the_wait_through_the_dialplans_subroutine_if_it_was_pasted(
    pasted: bool,
) -> None:
    seen: dict[str, Any] = {}
    answered: list[str] = []

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        seen["dial"] = await call.dial(
            "PJSIP/1001", timeout=5, on_answer=answered.append, report_wait=185
        )
        await call.hangup()

    async with demo_driver("fastagi", handler) as (pbx, _, run):
        if not pasted:
            pbx.dialplan = pbx.dialplan.without(AGENT_HEAR_CONTEXT)
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=0.3))
        async with asyncio.timeout(10):
            caller = await pbx.call("800")
            await caller.wait_ended()
            await run.done.wait()
    assert run.errors == []
    result = seen["dial"]
    assert result.status is DialStatus.ANSWER and result.hung_up_by == "peer"
    assert answered == [result.peer_channel], "answered once put through"
    expected = ["queue-reporthold", "digits/3", "queue-minutes"] if pasted else []
    assert agent.heard == expected, "without the subroutine Asterisk bridges all the same"
    assert "queue-reporthold" not in caller.heard


@pytest.mark.parametrize("pasted", [True, False])
async def test_a_pause_comes_before_the_announcement_and_the_wait_through_u_if_pasted(
    pasted: bool,
) -> None:
    seen: dict[str, Any] = {}
    answered: list[str] = []

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        seen["dial"] = await call.dial(
            "PJSIP/1001",
            timeout=5,
            on_answer=answered.append,
            announce="queue-sales",
            report_wait=185,
            delay=0.5,
        )
        await call.hangup()

    async with demo_driver("fastagi", handler) as (pbx, _, run):
        if not pasted:
            pbx.dialplan = pbx.dialplan.without(AGENT_WAIT_CONTEXT)
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=1.0))
        async with asyncio.timeout(10):
            caller = await pbx.call("800")
            await agent.wait_answered()
            picked_up = time.monotonic()
            await caller.wait_bridged()
            put_through = time.monotonic() - picked_up
            await caller.wait_ended()
            await run.done.wait()
    assert run.errors == []
    result = seen["dial"]
    assert result.status is DialStatus.ANSWER and answered == [result.peer_channel]
    steps = subroutine_steps(pbx, AGENT_WAIT_CONTEXT)
    if pasted:
        assert steps[:2] == [
            ("Wait", "0.5"),
            ("ExecIf", "1?Playback(queue-sales&queue-reporthold)"),
        ], "the announcement waits for the pause (not Dial's A())"
    expected = ["queue-sales", "queue-reporthold", "digits/3", "queue-minutes"]
    assert agent.heard == (expected if pasted else [])
    assert (put_through >= 0.5) is pasted, "without the subroutine Asterisk bridges at once"


async def test_a_pause_alone_passes_the_other_arguments_empty() -> None:
    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        await call.dial("PJSIP/1001", timeout=5, delay=2)
        await call.hangup()

    async with demo_driver("fastagi", handler) as (pbx, _, run):
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=2.5))
        async with asyncio.timeout(10):
            caller = await pbx.call("800")
            await caller.wait_ended()
            await run.done.wait()
    assert run.errors == []
    assert subroutine_steps(pbx, AGENT_WAIT_CONTEXT) == [
        ("Wait", "2"),
        ("ExecIf", "0?Playback()"),
        ("ExecIf", "0?SayNumber()"),
        ("ExecIf", "0?Playback()"),
    ]
    assert agent.heard == []


def subroutine_steps(pbx: DemoAsterisk, context: str) -> list[tuple[str | None, str | None]]:
    """The applications a Dial U() subroutine ran, as AMI's Newexten events show them."""
    return [
        (event.get("Application"), event.get("AppData"))
        for event in pbx.event_log
        if event.name == "Newexten" and event.get("Context") == context
    ]


@pytest.mark.parametrize("transport", ["fastagi", "asyncagi"])
async def test_demo_call_unbridged_by_us_then_caller_hangs_up(transport: str) -> None:
    seen: dict[str, Any] = {}
    back = asyncio.Event()

    async def handler(call: AsteriskCall) -> None:
        await call.answer()

        def unbridge_soon(peer: str) -> None:
            async def later() -> None:
                await asyncio.sleep(0.1)
                await call.unbridge()

            seen["task"] = asyncio.ensure_future(later())

        seen["result"] = await call.dial("PJSIP/1001", timeout=5, on_answer=unbridge_soon)
        back.set()
        await call.wait_hangup()
        with pytest.raises(CallHungUp):
            await call.play(["beep"])

    async with demo_driver(transport, handler) as (pbx, _, run):
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
        async with asyncio.timeout(10):
            caller = await pbx.call("800", caller_num="5551234")
            await back.wait()  # the dial returned: the caller is ours again
            assert caller.state == "up"
            await caller.hangup()
            await caller.wait_ended()
            await run.done.wait()
    assert run.errors == []
    assert seen["result"].status == DialStatus.ANSWER
    assert seen["result"].hung_up_by == "system"
    assert agent.answered == 1
    assert run.calls[0].hung_up


@pytest.mark.parametrize("transport", ["fastagi", "asyncagi"])
async def test_a_call_arriving_during_the_first_resync_is_seen_up_once_answered(
    transport: str,
) -> None:
    # The call starts while the driver's CoreShowChannels is out: the list says "Ring", the
    # Newstate that follows it on the wire says "Up", and the newer one must stay.
    seen: dict[str, str] = {}

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        async with asyncio.timeout(2):
            await wait_until(lambda: call.state == "Up")
        seen["linked"] = call.linked_id
        await call.hangup()

    async with demo_driver(transport, handler) as (pbx, _, run):
        async with asyncio.timeout(10):
            caller = await pbx.call("800", caller_num="5551234")
            await caller.wait_ended()
            await run.done.wait()
    assert run.errors == []
    assert seen["linked"] == run.calls[0].info.call_id


async def test_a_channel_that_hangs_up_while_the_resync_answer_is_on_its_way_is_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from callcenter.demopbx.manager import ACTIONS, ManagerSession

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        await call.wait_hangup()

    async with demo_driver("fastagi", handler) as (pbx, driver, run):
        async with asyncio.timeout(10):
            caller = await pbx.call("800", caller_num="5551234")
            await wait_until(lambda: run.calls and run.calls[0].state == "Up")
            call = run.calls[0]
            held = asyncio.Event()
            release = asyncio.Event()
            original = ManagerSession.action_coreshowchannels

            async def late_answer(self: ManagerSession, msg: Any) -> None:
                # The list is built now and sent once the caller has hung up: the Hangup
                # event reaches the driver before the list that still shows the channel.
                writes: list[Any] = []
                write = self._list
                self._list = lambda *args: writes.append(args)  # type: ignore[method-assign]
                await original(self, msg)
                del self._list
                held.set()
                await release.wait()
                write(*writes[0])

            monkeypatch.setitem(ACTIONS, "coreshowchannels", late_answer)
            await pbx.drop_ami_connections()
            await held.wait()
            await caller.hangup()
            await caller.wait_ended()
            await run.done.wait()
            release.set()
            # Answered after the resync's list, so only once the resync has used it.
            await driver.channels()
    assert call.state == ""


@pytest.mark.parametrize("transport", ["fastagi", "asyncagi"])
async def test_a_call_redirected_away_is_hung_up_only_when_its_channel_is(transport: str) -> None:
    # Leaving AGI ends the session (FastAGI even says HANGUP), but the caller is still on
    # the line, talking to the agent the dialplan rang: only the channel's Hangup counts.
    seen: dict[str, bool] = {}

    async def handler(call: AsteriskCall) -> None:
        await call.answer()
        await call.redirect("transfer", "1001")
        waiting = asyncio.ensure_future(call.wait_hangup())
        await asyncio.sleep(0.2)
        seen["early"] = waiting.done() or call.hung_up
        await waiting
        seen["after"] = call.hung_up

    async with demo_driver(transport, handler) as (pbx, _, run):
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=0.5))
        async with asyncio.timeout(10):
            caller = await pbx.call("800", caller_num="5551234")
            await caller.wait_ended()
            await run.done.wait()
    assert run.errors == []
    assert seen == {"early": False, "after": True}
    assert agent.answered == 1


@pytest.mark.parametrize("transport", ["fastagi", "asyncagi"])
async def test_a_call_handed_back_goes_on_in_the_dialplan_while_the_handler_goes_on(
    transport: str,
) -> None:
    probe = HandBackProbe()
    async with demo_driver(transport, probe) as (pbx, _, run):
        async with asyncio.timeout(10):
            caller = await pbx.call("800", caller_num="5551234")
            await caller.wait_ended()  # the dialplan's Hangup() after AGI()
            probe.gone.set()
            await run.done.wait()
    assert run.errors == []
    assert probe.refused_after


async def test_a_device_change_announced_while_the_state_list_comes_is_not_undone_by_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DeviceStateList is handed over whole at its end: a phone that went in use while it
    came (its DeviceStateChange arrived first) must not be set back to the list's line."""

    async def list_then_a_change(self: ManagerSession, msg: AMIMessage) -> None:
        items = [
            [("Event", "DeviceStateChange"), ("Device", device), ("State", state)]
            for device, state in sorted(self.pbx.device_states.items())
        ]
        self.pbx.device_states["PJSIP/1001"] = "INUSE"
        self.pbx.emit("DeviceStateChange", "call", [("Device", "PJSIP/1001"), ("State", "INUSE")])
        self._list(msg, "List of device states will follow", "DeviceStateListComplete", items)

    monkeypatch.setitem(ACTIONS, "devicestatelist", list_then_a_change)

    async def handler(call: AsteriskCall) -> None:
        return None

    def last_state(run: Run, device: str) -> str | None:
        states = [e.state for e in run.events if isinstance(e, DeviceStateChanged)]
        devices = [e.device for e in run.events if isinstance(e, DeviceStateChanged)]
        pairs = zip(states[::-1], devices[::-1], strict=True)
        return next((s for s, d in pairs if d == device), None)

    port = free_port()
    pbx = DemoAsterisk(agi_url=f"agi://127.0.0.1:{port}", ami_secret="demo-secret")
    async with pbx:
        pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
        pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=0.05))
        options = {"ami_username": "callcenter", "ami_secret": "demo-secret", "agi_port": port}
        async with running(pbx.ami_port, handler, **options) as (_, run):
            async with asyncio.timeout(5):
                while last_state(run, "PJSIP/1002") is None:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
    assert last_state(run, "PJSIP/1001") == "INUSE"
    assert last_state(run, "PJSIP/1002") == "NOT_INUSE", "the list's other lines still count"


@pytest.mark.parametrize(
    ("response", "reason", "outcome"),
    [
        ("Success", "4", ""),
        ("Failure", "5", "busy"),
        ("Failure", "3", "no-answer"),
        ("Failure", "1", "rejected"),
        ("Failure", "0", "unavailable"),
        ("Failure", "8", "congestion"),
        ("Failure", "", "failed"),
    ],
)
def test_an_originate_response_says_how_the_originated_call_ended(
    response: str, reason: str, outcome: str
) -> None:
    msg = AMIMessage.from_pairs(
        (
            ("Event", "OriginateResponse"),
            ("ActionID", "x-1"),
            ("Response", response),
            ("Channel", "PJSIP/5551234"),
            ("Reason", reason),
        )
    )
    assert originate_outcome(msg) == outcome


@pytest.mark.parametrize(
    ("channel", "device"),
    [
        ("PJSIP/agent1-00000008", "PJSIP/agent1"),
        ("PJSIP/sipp-00000000", "PJSIP/sipp"),
        ("SIP/1001-0000000a", "SIP/1001"),
        ("Local/2002@transfer-00000000;1", ""),
        ("PJSIP/agent1", ""),
    ],
)
def test_the_phone_of_a_channel_is_its_name_without_the_suffix(channel: str, device: str) -> None:
    """Channel names as the traces have them; a local channel is no phone to ring back."""
    assert channel_device(channel) == device


def test_the_keys_an_agent_presses_on_a_dialled_leg_come_up_from_the_real_dtmfend_events() -> None:
    """Trace 08: the agent leg of a Dial keyed ``*22002`` (Atxfer's injected DTMF, as a
    phone's keys would come): each DTMFEnd Received on that leg is a DigitPressed; keys on a
    channel no dial rang, or sent rather than received, are not."""
    parser = AMIParser()
    messages = []
    for record in conn_records(load(TRACES / "08_d3_atxfer_action.jsonl"), 11):
        if record["dir"] == "in":
            messages += [
                m
                for m in parser.feed(record["data"].encode())
                if isinstance(m, AMIMessage) and m.name == "DTMFEnd"
            ]
    assert len(messages) == 6
    driver = AsteriskDriver(AsteriskSettings(ami_username="x", ami_secret="x"))
    events: list[PBXEvent] = []
    driver.subscribe(events.append)
    for message in messages:
        driver._ev_dtmf_end(message)
    assert events == [], "no dial rang that leg"
    driver._dial_peers["PJSIP/agent1-00000014"] = object()  # type: ignore[assignment]
    for message in messages:
        driver._ev_dtmf_end(message)
    assert [(e.channel, e.digit) for e in events if isinstance(e, DigitPressed)] == [
        ("PJSIP/agent1-00000014", digit) for digit in "*22002"
    ]
