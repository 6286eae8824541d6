"""FreeSwitchDriver against a FreeSWITCH replaying real ESL traces (park and outbound socket)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from esl_replay import (
    PASSWORD,
    ESLReplayer,
    ESLReplayServer,
    Step,
    replay_outbound,
    require_traces,
    script,
    trace_event,
    wait_until,
)

from callcenter.errors import AuthenticationError, CallHungUp, CommandFailed
from callcenter.pbx.freeswitch import (
    FreeSwitchCall,
    FreeSwitchDriver,
    FreeSwitchSettings,
    dial_status_for,
    fs_dial_targets,
)
from callcenter.pbx.freeswitch.driver import (
    _Dial,
    originate_outcome,
    sofia_device,
)
from callcenter.pbx.interface import (
    PBX,
    Call,
    CallInfo,
    ChannelHungUp,
    DeviceStateChanged,
    DialResult,
    DialStatus,
    DigitPressed,
    HangupCause,
    PBXConnected,
    PBXDisconnected,
    PBXEvent,
    RecordResult,
)
from callcenter.protocols.esl import ESLCommand, ESLParser, encode_event_plain

B = "b_ivr_playback_dtmf.jsonl"
B_CALLER = "450ef6ad-6768-417e-9782-af7e0181267f"
D = "d_transfers.jsonl"
D_CALLER = "36226e4e-2828-4618-9ef0-5f904f7c2ea1"
D_AGENT = "304067ee-640e-42ef-a852-233d6192ea03"
H_CALLER = "ddd0ca0f-d17e-41cf-ad1c-89eec17f81e3"
O_CALLER = "00471187-a653-45b2-83cf-5ec08bb67c9e"
#: The driver hangs up with uuid_kill where the traces used ``sendmsg`` call-command hangup.
HANGUP_ALIAS = {"api uuid_kill": "sendmsg hangup"}

Handler = Callable[[FreeSwitchCall], Awaitable[None]]


@pytest.fixture(autouse=True)
def traces() -> None:
    require_traces()


class Run:
    """One driver run: the calls handed over, what the handlers raised, published events."""

    def __init__(self) -> None:
        self.calls: list[FreeSwitchCall] = []
        self.errors: list[BaseException] = []
        self.events: list[PBXEvent] = []
        self.finished = 0

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def running(
    server: ESLReplayServer, handler: Handler, **options: Any
) -> AsyncIterator[tuple[FreeSwitchDriver, Run]]:
    run = Run()
    settings: dict[str, Any] = {
        "esl_port": server.port,
        "esl_password": PASSWORD,
        "route_variable": "lab_route",
        "outbound_listen_port": None,
        "command_timeout": 2.0,
        "connect_timeout": 2.0,
        "reconnect_min": 0.02,
        "reconnect_max": 0.05,
    }
    settings.update(options)
    driver = FreeSwitchDriver(FreeSwitchSettings(**settings))
    driver.subscribe(run.events.append)

    async def serve(call: Call) -> None:
        assert isinstance(call, FreeSwitchCall)
        run.calls.append(call)
        try:
            await handler(call)
        except BaseException as exc:
            run.errors.append(exc)
            raise
        finally:
            run.finished += 1

    async with asyncio.timeout(5):
        await driver.start(serve)
    try:
        yield driver, run
    finally:
        async with asyncio.timeout(5):
            await driver.stop()


def replay(steps: list[Step], **options: Any) -> ESLReplayServer:
    return ESLReplayServer(lambda _: ESLReplayer(list(steps), **options))


def quiet() -> list[Step]:
    """A switch with no call going on: trace a up to the subscription's reply."""
    return script("a_auth_events_api.jsonl", end=0.0025)


def sent(server: ESLReplayServer, key: str) -> list[ESLCommand]:
    return server.commands(key)


def app_arg(cmd: ESLCommand) -> str:
    return cmd.get("execute-app-arg") or cmd.body_text


# -- pure helpers ----------------------------------------------------------------------------


def test_asterisk_style_devices_become_freeswitch_users_and_fs_strings_stay() -> None:
    assert fs_dial_targets("PJSIP/1001") == ["user/1001"]
    assert fs_dial_targets("SIP/agent7") == ["user/agent7"]
    assert fs_dial_targets("user/1001@example.org") == ["user/1001@example.org"]
    assert fs_dial_targets("sofia/internal/1001@10.0.0.5:5060") == [
        "sofia/internal/1001@10.0.0.5:5060"
    ]
    assert fs_dial_targets("PJSIP/1001&user/1002") == ["user/1001", "user/1002"]


@pytest.mark.parametrize(
    "device",
    [
        "user/1001,sofia/gateway/gw/0900123",
        "user/1001|user/1002",
        "{origination_caller_id_number=1}user/1001",
        "[leg_timeout=1]user/1001",
        "user/1001 &park()",
        "user/1001'",
        "1001",
        "",
    ],
)
def test_device_strings_that_could_smuggle_legs_or_variables_are_refused(device: str) -> None:
    with pytest.raises(CommandFailed):
        fs_dial_targets(device)


@pytest.mark.parametrize(
    ("cause", "status"),
    [
        ("NO_ANSWER", DialStatus.NOANSWER),
        ("ORIGINATOR_CANCEL", DialStatus.NOANSWER),
        ("USER_BUSY", DialStatus.BUSY),
        ("CALL_REJECTED", DialStatus.BUSY),
        ("USER_NOT_REGISTERED", DialStatus.CHANUNAVAIL),
        ("NORMAL_TEMPORARY_FAILURE", DialStatus.CHANUNAVAIL),
        ("SWITCH_CONGESTION", DialStatus.CONGESTION),
        ("SUCCESS", DialStatus.ANSWER),
        ("", DialStatus.CHANUNAVAIL),
    ],
)
def test_hangup_causes_map_to_dial_statuses(cause: str, status: DialStatus) -> None:
    assert dial_status_for(cause) == status


# -- inbound park: IVR -----------------------------------------------------------------------


async def test_parked_caller_is_answered_hears_a_prompt_and_enters_digits() -> None:
    seen: dict[str, Any] = {}

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        seen["played"] = await call.play(["/opt/fslab/sounds/prompt_2s.wav"])
        seen["digits"] = await call.read_digits(
            "/opt/fslab/sounds/menu_4s.wav", max_digits=4, timeout=8
        )
        seen["var"] = await call.get_variable("lab_digits")
        await call.hangup()

    steps = script(B)
    async with (
        replay(steps, renames={"lab_digits": "callcenter_digits"}, aliases=HANGUP_ALIAS) as server,
        running(server, handler) as (driver, run),
    ):
        assert isinstance(driver, PBX)
        await wait_until(lambda: run.finished == 1 and bool(run.of(ChannelHungUp)))
    assert run.errors == []
    assert seen == {"played": "", "digits": "123", "var": "123"}
    info = run.calls[0].info
    assert (info.call_id, info.channel, info.caller_num, info.caller_name) == (
        B_CALLER,
        "sofia/lab/555001@127.0.0.1:5180",
        "555001",
        "Caller 1",
    )
    assert (info.dialed, info.context, info.route, info.transport) == (
        "1000",
        "default",
        "esl_park",
        "esl-inbound",
    )
    answer = sent(server, "sendmsg execute answer")[0]
    assert answer.line == f"sendmsg {B_CALLER}" and answer.get("Event-UUID")
    assert app_arg(sent(server, "sendmsg execute playback")[0]) == (
        "/opt/fslab/sounds/prompt_2s.wav"
    )
    assert app_arg(sent(server, "sendmsg execute play_and_get_digits")[0]) == (
        "1 4 1 8000 # /opt/fslab/sounds/menu_4s.wav silence_stream://250 callcenter_digits "
        "[0-9*#]+ 8000"
    )
    assert app_arg(sent(server, "sendmsg execute set")[0]) == "playback_terminators=none"
    assert sent(server, "api uuid_kill")[0].line == f"api uuid_kill {B_CALLER} NORMAL_CLEARING"
    assert run.calls[0].hung_up
    assert run.calls[0].hangup_cause == HangupCause.NORMAL_CLEARING
    assert [(e.call_id, e.cause) for e in run.of(ChannelHungUp)] == [
        (B_CALLER, HangupCause.NORMAL_CLEARING)
    ]


async def test_a_key_pressed_during_an_interruptible_prompt_is_returned() -> None:
    got: list[str] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        # The recorded menu prompt was broken by DTMF 1 (PLAYBACK_STOP: break).
        got.append(await call.play(["/opt/fslab/sounds/menu_4s.wav"], interrupt_digits="123#"))

    steps = [s for s in script(B) if s.key != "sendmsg execute playback"]
    aliases = {"sendmsg execute playback": "sendmsg execute play_and_get_digits"}
    async with replay(steps, aliases=aliases) as server, running(server, handler) as (_, run):
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert got == ["1"]
    assert app_arg(sent(server, "sendmsg execute set")[0]) == "playback_terminators=123#"


async def test_caller_hanging_up_mid_prompt_fails_the_prompt_even_though_playback_says_done() -> (
    None
):
    outcome: dict[str, Any] = {}

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        try:
            await call.play(["/opt/fslab/sounds/long_10s.wav"])
        except CallHungUp as exc:
            outcome["first"] = exc
        try:
            await call.play(["/opt/fslab/sounds/prompt_2s.wav"])
        except CallHungUp as exc:
            outcome["second"] = exc
        await call.hangup()  # idempotent, never raises
        await call.wait_hangup()

    async with (
        replay(script("h_hangup_mid_playback.jsonl")) as server,
        running(server, handler) as (_, run),
    ):
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert set(outcome) == {"first", "second"}
    call = run.calls[0]
    assert call.info.call_id == H_CALLER
    assert call.hangup_cause == HangupCause.NORMAL_CLEARING
    assert len(sent(server, "sendmsg execute playback")) == 1  # nothing sent to a dead channel
    assert sent(server, "api uuid_kill") == []


async def test_hangup_fails_every_pending_command_of_the_call_at_once() -> None:
    started = asyncio.Event()
    results: list[BaseException | str] = []

    async def handler(call: FreeSwitchCall) -> None:
        started.set()
        results.extend(
            await asyncio.gather(
                call.play(["/a.wav"]),
                call.read_digits("/b.wav", max_digits=2, timeout=5),
                return_exceptions=True,
            )
        )

    steps = script(B, end=0.01)
    async with (
        replay(steps, manual_apps={"playback", "play_and_get_digits"}) as server,
        running(server, handler) as (_, run),
    ):
        await wait_until(lambda: len(sent(server, "sendmsg execute play_and_get_digits")) == 1)
        assert results == []
        _, hangup = trace_event(B, "CHANNEL_HANGUP", B_CALLER)
        server.last.push([(0.0, hangup)])
        await wait_until(lambda: run.finished == 1)
    assert len(results) == 2 and all(isinstance(r, CallHungUp) for r in results)
    assert run.calls[0].hangup_cause == HangupCause.NORMAL_CLEARING


async def test_each_parked_call_is_handed_over_once() -> None:
    release = asyncio.Event()

    async def handler(call: FreeSwitchCall) -> None:
        await release.wait()

    async with replay(script(B, end=0.01)) as server, running(server, handler) as (_, run):
        await wait_until(lambda: len(run.calls) == 1)
        _, park = trace_event(B, "CHANNEL_PARK", B_CALLER)
        server.last.push([(0.0, park), (0.0, park)])
        await asyncio.sleep(0.05)
        assert len(run.calls) == 1
        release.set()
        await wait_until(lambda: run.finished == 1)
        # The handler returned with the caller still parked: the driver hangs it up.
        await wait_until(lambda: len(sent(server, "api uuid_kill")) == 1)


async def test_variables_hold_music_and_redirect() -> None:
    seen: dict[str, Any] = {}

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        await call.set_variable("queue_name", "sales desk")
        seen["unset"] = await call.get_variable("nothing_here")
        await call.start_hold_music()
        await call.start_hold_music("jazz")
        await call.stop_hold_music()
        await call.redirect("default", "7000")
        try:
            await call.answer()
        except CallHungUp as exc:
            seen["after"] = str(exc)

    async with replay(script(B, end=0.13)) as server, running(server, handler) as (_, run):
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert sent(server, "api uuid_setvar")[0].line == (
        f"api uuid_setvar {B_CALLER} queue_name sales desk"
    )
    assert seen["unset"] is None
    music = [app_arg(c) for c in sent(server, "sendmsg execute playback")]
    assert music == ["local_stream://moh", "local_stream://jazz"]
    assert [c.line for c in sent(server, "api uuid_break")] == [
        f"api uuid_break {B_CALLER} all"
    ] * 2
    assert sent(server, "api uuid_transfer")[0].line == (
        f"api uuid_transfer {B_CALLER} 7000 XML default"
    )
    assert "left our control" in seen["after"]
    assert sent(server, "api uuid_kill") == []  # redirected calls are not hung up


# -- dialing an agent ------------------------------------------------------------------------


def _d_teardown() -> list[tuple[float, bytes]]:
    """What FreeSWITCH sent when the bridged agent leg was torn down (trace d, 2.5 s)."""
    step = next(s for s in script(D) if s.key == "api uuid_transfer")
    out = []
    for dt, data in step.messages[1:]:
        out.append((dt, data))
        if b"Application: bridge" in data and b"CHANNEL_EXECUTE_COMPLETE" in data[:200]:
            break
    return out


@pytest.mark.parametrize(
    ("hold_music", "ringback"),
    [(True, "local_stream://moh"), ("jazz", "local_stream://jazz")],
    ids=["default-music", "queue-music-class"],
)
async def test_agent_answers_and_unbridge_ends_the_dial_as_system(
    hold_music: bool | str, ringback: str
) -> None:
    """The caller hears music while the agent rings: the default class, or the queue's."""
    answered: list[str] = []
    results: list[DialResult] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        with pytest.raises(CommandFailed):
            await call.dial("sofia/lab/agent1001@127.0.0.1:5190", timeout=20, hold_music="a b")

        def on_answer(peer: str) -> None:
            answered.append(peer)
            asyncio.get_running_loop().call_later(
                0.02, lambda: asyncio.ensure_future(call.unbridge())
            )

        results.append(
            await call.dial(
                "sofia/lab/agent1001@127.0.0.1:5190",
                timeout=20,
                hold_music=hold_music,
                caller_id="1000",
                on_answer=on_answer,
            )
        )

    steps = script(D, end=2.6)
    aliases = {"api uuid_kill": "api uuid_transfer"}
    async with replay(steps, aliases=aliases) as server, running(server, handler) as (_, run):
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert answered == ["sofia/lab/agent1001@127.0.0.1:5190"]
    result = results[0]
    assert result.status == DialStatus.ANSWER
    assert result.hung_up_by == "system"
    assert result.peer_channel == "sofia/lab/agent1001@127.0.0.1:5190"
    assert result.cause == HangupCause.NORMAL_CLEARING
    assert 0 < result.talk_seconds < 1
    assert sent(server, "api uuid_kill")[0].line == f"api uuid_kill {D_AGENT} NORMAL_CLEARING"
    # The caller's variables for the bridge go in one application, not four.
    assert [app_arg(c) for c in sent(server, "sendmsg execute set")] == []
    assert [app_arg(c) for c in sent(server, "sendmsg execute multiset")] == [
        "^^|hangup_after_bridge=false|continue_on_fail=true|instant_ringback=true"
        f"|ringback={ringback}"
    ]
    bridge = app_arg(sent(server, "sendmsg execute bridge")[0])
    assert bridge.startswith(
        "{originate_timeout=20,ignore_early_media=true,origination_caller_id_number=1000}"
        "[origination_uuid="
    )
    assert bridge.endswith("]sofia/lab/agent1001@127.0.0.1:5190")


async def test_agent_hanging_up_returns_the_caller_to_us() -> None:
    results: list[DialResult] = []
    after: list[str] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        results.append(await call.dial("PJSIP/agent1001", timeout=15, hold_music=False))
        after.append(await call.play(["/opt/fslab/sounds/prompt_2s.wav"]))

    steps = script(D, end=2.4)
    async with replay(steps) as server, running(server, handler) as (_, run):
        await wait_until(lambda: run.calls and run.calls[0]._dial is not None)
        await wait_until(lambda: run.calls[0]._dial is not None and run.calls[0]._dial.notified)
        server.last.push(_d_teardown())  # agent HANGUP(+COMPLETE), UNBRIDGE, bridge done
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    result = results[0]
    assert (result.status, result.hung_up_by, result.cause) == (
        DialStatus.ANSWER,
        "peer",
        HangupCause.NORMAL_CLEARING,
    )
    assert after == [""]
    sets = [app_arg(c) for c in sent(server, "sendmsg execute set")]
    multisets = [app_arg(c) for c in sent(server, "sendmsg execute multiset")]
    assert len(multisets) == 1 and "|ringback=%(2000,4000,440,480)" in multisets[0]
    assert sets.count("playback_terminators=none") == 1
    assert app_arg(sent(server, "sendmsg execute bridge")[0]).endswith("]user/agent1001")


async def test_caller_hanging_up_mid_bridge_returns_a_result_by_caller() -> None:
    results: list[DialResult] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        results.append(await call.dial("user/agent1001", timeout=15))

    steps = script(D, end=2.4)
    async with replay(steps) as server, running(server, handler) as (_, run):
        await wait_until(lambda: run.calls and run.calls[0]._dial is not None)
        await wait_until(lambda: run.calls[0]._dial is not None and run.calls[0]._dial.notified)
        _, hangup = trace_event(D, "CHANNEL_HANGUP", D_CALLER)
        server.last.push([(0.0, hangup)])
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert results[0].status == DialStatus.ANSWER
    assert results[0].hung_up_by == "caller"
    assert run.calls[0].hung_up


def _failed_dial_events(bridge: ESLCommand, cause: str) -> list[tuple[float, bytes]]:
    """A ringing agent leg ending with ``cause`` and the bridge giving up (shapes from d)."""
    leg = app_arg(bridge).split("[origination_uuid=")[1].split("]")[0]
    _, leg_hangup = trace_event(
        D,
        "CHANNEL_HANGUP",
        D_AGENT,
        Unique_ID=leg,
        Hangup_Cause=cause,
        Answer_State="hangup",
    )
    _, complete = trace_event(
        D,
        "CHANNEL_EXECUTE_COMPLETE",
        D_CALLER,
        Application="bridge",
        Application_UUID=bridge.get("Event-UUID"),
        variable_originate_disposition=cause,
        variable_DIALSTATUS=cause,
        variable_bridge_hangup_cause=None,
    )
    return [(0.0, leg_hangup), (0.0, complete)]


@pytest.mark.parametrize(
    ("cause", "status"),
    [
        ("USER_BUSY", DialStatus.BUSY),
        ("NO_ANSWER", DialStatus.NOANSWER),
        ("USER_NOT_REGISTERED", DialStatus.CHANUNAVAIL),
    ],
)
async def test_agent_that_does_not_answer_gives_a_dial_status(
    cause: str, status: DialStatus
) -> None:
    results: list[DialResult] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        results.append(await call.dial("user/agent1001", timeout=3))

    steps = script(D, end=0.14)  # up to the answer: the agent leg is ours to script
    async with (
        replay(steps, manual_apps={"bridge"}) as server,
        running(server, handler) as (_, run),
    ):
        await wait_until(lambda: len(sent(server, "sendmsg execute bridge")) == 1)
        server.last.push(_failed_dial_events(sent(server, "sendmsg execute bridge")[0], cause))
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert results[0].status == status
    assert results[0].hung_up_by is None
    if cause != "USER_NOT_REGISTERED":
        assert results[0].cause == HangupCause.from_name(cause)


async def test_caller_hanging_up_while_the_agent_rings_raises_call_hung_up() -> None:
    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        await call.dial("user/agent1001", timeout=30)

    steps = script(D, end=0.14)  # up to the answer: the agent leg is ours to script
    async with (
        replay(steps, manual_apps={"bridge"}) as server,
        running(server, handler) as (_, run),
    ):
        await wait_until(lambda: len(sent(server, "sendmsg execute bridge")) == 1)
        _, hangup = trace_event(
            D,
            "CHANNEL_HANGUP",
            D_CALLER,
            Hangup_Cause="ORIGINATOR_CANCEL",
            Other_Leg_Unique_ID=None,
        )
        server.last.push([(0.0, hangup)])
        await wait_until(lambda: run.finished == 1)
    assert len(run.errors) == 1 and isinstance(run.errors[0], CallHungUp)
    assert run.calls[0].hangup_cause == HangupCause.ORIGINATOR_CANCEL


# -- outbound socket -------------------------------------------------------------------------


async def test_outbound_socket_call_is_controlled_on_its_own_socket() -> None:
    seen: dict[str, Any] = {}

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        seen["played"] = await call.play(["/opt/fslab/sounds/prompt_2s.wav"])
        seen["route"] = await call.get_variable("lab_route")
        await call.hangup()
        await call.wait_hangup()

    inbound = quiet()
    async with (
        replay(inbound) as server,
        running(server, handler, outbound_listen_port=0, outbound_linger=5) as (driver, run),
    ):
        port = driver.outbound_port
        assert port
        socket_side = ESLReplayer(
            script("o_outbound_socket.jsonl"), aliases=HANGUP_ALIAS, channel_uuid=O_CALLER
        )
        async with asyncio.timeout(5):
            await replay_outbound(port, socket_side)
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert seen == {"played": "", "route": "esl_outbound"}
    info = run.calls[0].info
    assert (info.call_id, info.transport, info.route, info.dialed) == (
        O_CALLER,
        "esl-outbound",
        "esl_outbound",
        "2000",
    )
    lines = [c.line for c in socket_side.commands]
    assert lines[:3] == ["connect", "myevents", "linger 5"]
    # The call's own subscription goes with myevents and linger: one write, one round trip.
    assert [c.name for c in socket_side.commands[1:5]] == [
        "myevents",
        "linger",
        "nixevent",
        "event",
    ]
    assert lines[4] == "event plain PLAYBACK_STOP"
    assert len(set(socket_side.reads[1:5])) == 1
    assert socket_side.reads[0] != socket_side.reads[1]
    assert [c.line for c in socket_side.commands if c.name == "sendmsg"] == ["sendmsg"] * 3
    assert f"api uuid_kill {O_CALLER} NORMAL_CLEARING" in lines
    assert [e.call_id for e in run.of(ChannelHungUp)] == [O_CALLER]
    # Nothing about the socket call went over the inbound connection.
    assert [c.name for c in server.last.commands if c.name not in ("api", "exit")] == [
        "auth",
        "event",
    ]


# -- connection life -------------------------------------------------------------------------


async def test_wrong_password_fails_start_and_leaves_nothing_listening() -> None:
    async def handler(call: FreeSwitchCall) -> None:
        raise AssertionError("no call expected")

    async with replay(script("g_errors.jsonl", 1), password="other") as server:
        driver = FreeSwitchDriver(
            FreeSwitchSettings(esl_port=server.port, esl_password="nope", outbound_listen_port=0)
        )
        with pytest.raises(AuthenticationError):
            async with asyncio.timeout(5):
                await driver.start(handler)  # type: ignore[arg-type]
        assert driver._outbound is None
        await driver.stop()


async def test_heartbeat_loss_reconnects_and_a_vanished_caller_is_hung_up() -> None:
    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        await call.wait_hangup()

    first = script(B, end=0.13)

    def factory(n: int) -> ESLReplayer:
        return ESLReplayer(first if n == 0 else quiet())

    async with (
        ESLReplayServer(factory) as server,
        running(server, handler, heartbeat_timeout=0.15, command_timeout=0.3) as (driver, run),
    ):
        await wait_until(lambda: run.calls and run.calls[0].answered)
        server.connections[0].mute = True
        await wait_until(lambda: run.finished == 1, within=5)
        assert driver.esl.reconnects == 1
    assert run.errors == []
    assert run.calls[0].hung_up
    assert len(run.of(PBXDisconnected)) == 1
    assert len(run.of(PBXConnected)) == 2
    assert [e.call_id for e in run.of(ChannelHungUp)] == [B_CALLER]


async def test_caller_still_up_after_a_reconnect_keeps_being_served() -> None:
    proceed = asyncio.Event()
    played: list[str] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        await proceed.wait()
        played.append(await call.play(["/opt/fslab/sounds/prompt_2s.wav"]))
        await call.hangup()

    def factory(n: int) -> ESLReplayer:
        replayer = ESLReplayer(script(B, end=0.13) if n == 0 else quiet())
        if n > 0:
            replayer.live[B_CALLER] = {"Channel-Name": "sofia/lab/555001@127.0.0.1:5180"}
        return replayer

    async with (
        ESLReplayServer(factory) as server,
        running(server, handler) as (_, run),
    ):
        await wait_until(lambda: run.calls and run.calls[0].answered)
        server.connections[0].close()
        await wait_until(lambda: len(run.of(PBXConnected)) == 2)
        await wait_until(lambda: len(server.last.commands) >= 3)  # resync asked
        proceed.set()
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert played == [""]
    assert not run.of(ChannelHungUp) or run.of(ChannelHungUp)[0].cause != HangupCause.UNSPECIFIED
    assert len(sent(server, "sendmsg execute playback")) == 1


async def test_callers_parked_before_we_connected_are_adopted() -> None:
    pairs, _ = trace_event(B, "CHANNEL_PARK", B_CALLER)
    dump = json.dumps(dict(pairs))
    got: list[FreeSwitchCall] = []

    async def handler(call: FreeSwitchCall) -> None:
        got.append(call)

    def factory(n: int) -> ESLReplayer:
        replayer = ESLReplayer(quiet(), api_answers={"uuid_dump": dump})
        replayer.live[B_CALLER] = dict(pairs)
        replayer.parked.add(B_CALLER)
        return replayer

    async with ESLReplayServer(factory) as server, running(server, handler) as (_, run):
        await wait_until(lambda: run.finished == 1)
    assert [c.info.call_id for c in got] == [B_CALLER]
    assert got[0].info.route == "esl_park"
    assert sent(server, "api uuid_dump")[0].line == f"api uuid_dump {B_CALLER} json"


async def test_originate_goes_out_once_as_bgapi_with_our_job_uuid() -> None:
    async def handler(call: FreeSwitchCall) -> None:
        return None

    async with (
        replay(quiet()) as server,
        running(server, handler) as (driver, _),
    ):
        async with asyncio.timeout(5):
            await driver.originate(
                "PJSIP/1001",
                context="default",
                exten="800",
                caller_id="Campaign <5550100>",
                timeout=25,
                variables={"campaign": "spring"},
            )
        await wait_until(lambda: len(sent(server, "bgapi originate")) == 1)
        cmd = sent(server, "bgapi originate")[0]
        assert cmd.line == (
            "bgapi originate {originate_timeout=25,origination_caller_id_number=5550100,"
            "origination_caller_id_name=Campaign,campaign=spring}user/1001 800 XML default"
        )
        assert cmd.get("Job-UUID")
        with pytest.raises(CommandFailed):
            await driver.originate("PJSIP/1001", context="default", exten="800 &park()")


# -- say, record, language -------------------------------------------------------------------


async def test_say_speaks_in_the_callers_language_and_dates_in_utc() -> None:
    said: list[str] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.set_language("fr_FR")
        said.append(await call.say("number", "42"))
        said.append(await call.say("digits", "1234#", interrupt_digits="#"))
        said.append(await call.say("date", "2026-11-22"))
        said.append(await call.say("time", "09:05"))
        with pytest.raises(CommandFailed):
            await call.say("number", "12a")

    async with replay(script(B, end=0.13)) as server, running(server, handler) as (_, run):
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert said == ["", "", "", ""]
    assert sent(server, "api uuid_setvar")[0].line == (
        f"api uuid_setvar {B_CALLER} default_language fr_FR"
    )
    assert [app_arg(c) for c in sent(server, "sendmsg execute say")] == [
        "fr number pronounced 42",
        "fr number iterated 1234#",
        "fr current_date pronounced 1795348800",
        "fr current_time pronounced 119100",
    ]
    sets = [app_arg(c) for c in sent(server, "sendmsg execute set")]
    assert sets == ["playback_terminators=none", "playback_terminators=#"]
    multisets = [app_arg(c) for c in sent(server, "sendmsg execute multiset")]
    assert multisets == ["^^|playback_terminators=none|timezone=UTC"]


def _record_complete(record: ESLCommand, **variables: str) -> bytes:
    changes: dict[str, str | None] = {
        "Application": "record",
        "Application_Data": app_arg(record),
        "Application_UUID": record.get("Event-UUID"),
        "Application_Response": "_none_",
    }
    changes.update(variables)
    _, data = trace_event(B, "CHANNEL_EXECUTE_COMPLETE", B_CALLER, **changes)
    return data


async def test_record_ends_on_the_end_key_with_the_recorded_length() -> None:
    results: list[RecordResult] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        results.append(await call.record("/var/msgs/m1", max_seconds=30, silence_seconds=3))

    async with (
        replay(script(B, end=0.13), manual_apps={"record"}) as server,
        running(server, handler) as (_, run),
    ):
        await wait_until(lambda: len(sent(server, "sendmsg execute record")) == 1)
        record = sent(server, "sendmsg execute record")[0]
        _, dtmf = trace_event(B, "DTMF", B_CALLER, DTMF_Digit="#")
        server.last.push(
            [
                (0.0, dtmf),
                (0.0, _record_complete(record, variable_record_ms="2500")),
            ]
        )
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert results == [RecordResult("/var/msgs/m1.wav", 2.5, "dtmf", "#")]
    assert app_arg(record) == "/var/msgs/m1.wav 30 200 3"
    assert app_arg(sent(server, "sendmsg execute playback")[0]).startswith("tone_stream://")
    assert [app_arg(c) for c in sent(server, "sendmsg execute set")] == [
        "playback_terminators=none",
        "playback_terminators=#",
    ]


async def test_caller_hanging_up_ends_a_recording_without_an_error() -> None:
    results: list[RecordResult] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        results.append(
            await call.record("/var/msgs/m2", max_seconds=30, beep=False, file_format="ogg")
        )

    async with (
        replay(script(B, end=0.13), manual_apps={"record"}) as server,
        running(server, handler) as (_, run),
    ):
        await wait_until(lambda: len(sent(server, "sendmsg execute record")) == 1)
        record = sent(server, "sendmsg execute record")[0]
        _, hangup = trace_event(B, "CHANNEL_HANGUP", B_CALLER)
        complete = _record_complete(record, variable_record_ms="1200", Answer_State="hangup")
        server.last.push([(0.0, hangup), (0.001, complete)])
        await wait_until(lambda: run.finished == 1)
    assert run.errors == []
    assert results == [RecordResult("/var/msgs/m2.ogg", 1.2, "hangup")]
    assert run.calls[0].hung_up
    assert sent(server, "sendmsg execute playback") == []


def registration(subclass: str, **headers: str) -> bytes:
    """mod_sofia's CUSTOM event for a (un)registration (sofia_reg.c's header names)."""
    pairs = [
        ("Event-Name", "CUSTOM"),
        ("Core-UUID", "8d5b2cc6-7d9e-4a37-a0a2-0f7e5b0b8a11"),
        ("Event-Subclass", subclass),
        ("profile-name", "internal"),
        *headers.items(),
    ]
    return encode_event_plain([(k.replace("_", "-"), v) for k, v in pairs])


async def test_registrations_say_whether_an_agent_phone_can_be_called() -> None:
    """A phone that registers can be called (in use or not, as its channels say); one
    whose registration goes is unreachable only once FreeSWITCH has no contact left for
    the user (asked with sofia_contact): a phone may be registered from two places."""

    async def handler(call: FreeSwitchCall) -> None:
        return None

    def states(run: Run, device: str) -> list[str]:
        return [e.state for e in run.of(DeviceStateChanged) if e.device == device]

    answers = {"sofia_contact": "error/user_not_registered"}

    def factory(_: int) -> ESLReplayer:
        return ESLReplayer(quiet(), api_answers=answers)

    async with ESLReplayServer(factory) as server, running(server, handler) as (_, run):
        replayer = server.last
        replayer.push([(0.0, registration("sofia::register", from_user="1001"))])
        await wait_until(lambda: states(run, "PJSIP/1001") == ["NOT_INUSE"])
        assert states(run, "user/1001") == states(run, "SIP/1001") == ["NOT_INUSE"]
        unregister = registration(
            "sofia::unregister", from_user="1001", from_host="pbx.example.com"
        )
        replayer.push([(0.0, unregister)])
        await wait_until(lambda: states(run, "PJSIP/1001") == ["NOT_INUSE", "UNAVAILABLE"])

        replayer.api_answers["sofia_contact"] = "sofia/internal/sip:1002@10.0.0.7:5062"
        replayer.push([(0.0, registration("sofia::expire", user="1002", host="10.0.0.1"))])
        await wait_until(lambda: len(sent(server, "api sofia_contact")) == 2)
        bad = registration("sofia::unregister", from_user="1003 & rm -rf", from_host="x")
        replayer.push([(0.0, bad)])
        await asyncio.sleep(0.2)
    lines = [cmd.line for cmd in sent(server, "api sofia_contact")]
    assert lines == [
        "api sofia_contact */1001@pbx.example.com",
        "api sofia_contact */1002@10.0.0.1",
    ], "nothing sent for a user name that is not one"
    assert states(run, "PJSIP/1002") == [], "still registered elsewhere"


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("+OK 7f4de4bc-17d7-11dd-b7a0-db4edd065621\n", ""),
        ("-ERR USER_BUSY\n", "busy"),
        ("-ERR NO_ANSWER\n", "no-answer"),
        ("-ERR CALL_REJECTED\n", "rejected"),
        ("-ERR USER_NOT_REGISTERED\n", "unavailable"),
        ("-ERR NORMAL_TEMPORARY_FAILURE\n", "congestion"),
        ("-ERR INVALID_GATEWAY\n", "failed"),
        ("-ERR\n", "failed"),
    ],
)
def test_an_originate_jobs_result_says_how_the_originated_call_ended(
    result: str, outcome: str
) -> None:
    assert originate_outcome(result) == outcome


@pytest.mark.parametrize(
    ("channel", "device"),
    [
        ("sofia/lab/555001@127.0.0.1:5180", "user/555001"),
        ("sofia/internal/1010@192.0.2.2", "user/1010"),
        ("loopback/9999-a", ""),
    ],
)
def test_the_phone_of_a_sofia_channel_is_its_directory_user(channel: str, device: str) -> None:
    """Channel names as the traces have them; a loopback leg is no phone to ring back."""
    assert sofia_device(channel) == device


def test_the_keys_an_agent_presses_on_a_dialled_leg_come_up_from_the_real_dtmf_event() -> None:
    """Trace d: ``uuid_recv_dtmf <agent> *`` during the agent's bridge gives a DTMF event on
    the agent leg; with a dial of ours running on that leg it is a DigitPressed."""
    agent = "2aac8310-28c0-45cd-805a-743a652b207a"
    _, data = trace_event(D, "DTMF", agent)
    (message,) = ESLParser().feed(data)
    event = message.event
    assert event is not None
    driver = FreeSwitchDriver(FreeSwitchSettings(esl_password="x"))
    events: list[PBXEvent] = []
    driver.subscribe(events.append)
    driver._on_inbound_event(event)
    assert events == [], "no dial of ours rang that leg"
    info = CallInfo(
        call_id=D_CALLER,
        channel="sofia/lab/caller",
        caller_num="1000",
        caller_name="",
        dialed="1000",
        context="default",
        route="inbound",
        transport="esl-inbound",
    )
    call = FreeSwitchCall(driver, driver.esl, info, target=D_CALLER, answered=True)
    call._dial = _Dial(None, {agent})
    driver._peers[agent] = call
    driver._on_inbound_event(event)
    assert [(e.channel, e.digit) for e in events if isinstance(e, DigitPressed)] == [
        ("sofia/lab/agent1002@127.0.0.1:5190", "*")
    ]
