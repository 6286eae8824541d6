"""FreeSwitchDriver driving calls through the demo FreeSWITCH (real ESL over TCP)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from callcenter.demopbx import fs_api
from callcenter.demopbx.freeswitch import DemoFreeSwitch
from callcenter.demopbx.fs_phones import AgentPhone
from callcenter.errors import AuthenticationError, CallHungUp
from callcenter.pbx.freeswitch import FreeSwitchCall, FreeSwitchDriver, FreeSwitchSettings
from callcenter.pbx.freeswitch.driver import UNUSED_MYEVENTS
from callcenter.pbx.interface import (
    Call,
    ChannelHungUp,
    DialResult,
    DialStatus,
    PBXEvent,
    RecordResult,
)
from callcenter.testing import HandBackProbe

PASSWORD = "demo-secret"
Handler = Callable[[FreeSwitchCall], Awaitable[None]]


@contextlib.asynccontextmanager
async def center(
    handler: Handler, *, mode: str = "inbound", **settings: Any
) -> AsyncIterator[tuple[DemoFreeSwitch, FreeSwitchDriver, list[PBXEvent], asyncio.Event]]:
    """A demo FreeSWITCH and a started driver; the event is set when a handler returns."""
    pbx = DemoFreeSwitch(password=PASSWORD, prompt_seconds=0.02, mode=mode)  # type: ignore[arg-type]
    events: list[PBXEvent] = []
    finished = asyncio.Event()

    async def serve(call: Call) -> None:
        assert isinstance(call, FreeSwitchCall)
        try:
            await handler(call)
        finally:
            finished.set()

    async with asyncio.timeout(10):
        await pbx.start()
        options: dict[str, Any] = {
            "esl_port": pbx.esl_port,
            "esl_password": PASSWORD,
            "outbound_listen_port": 0 if mode == "outbound" else None,
            "command_timeout": 3.0,
        }
        options.update(settings)
        driver = FreeSwitchDriver(FreeSwitchSettings(**options))
        driver.subscribe(events.append)
        await driver.start(serve)
        if mode == "outbound":
            assert driver.outbound_port
            pbx.set_socket_address("127.0.0.1", driver.outbound_port)
    try:
        yield pbx, driver, events, finished
    finally:
        async with asyncio.timeout(10):
            await driver.stop()
            await pbx.stop()


async def test_caller_picks_an_option_is_bridged_to_an_agent_who_hangs_up_then_hears_goodbye() -> (
    None
):
    seen: dict[str, Any] = {}

    async def handler(call: FreeSwitchCall) -> None:
        seen["route"] = (call.info.route, call.info.caller_num, call.info.caller_name)
        await call.answer()
        seen["digits"] = await call.read_digits("/sounds/menu.wav", max_digits=1, timeout=3)
        answered: list[str] = []
        seen["dial"] = await call.dial("PJSIP/1001", timeout=5, on_answer=answered.append)
        seen["answered"] = answered
        await call.play(["/sounds/goodbye.wav"])
        await call.hangup()

    async with center(handler) as (pbx, _, events, finished):
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=0.2))
        caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
        await caller.wait_for_prompt("menu")
        await caller.press("2")
        await caller.wait_moh()  # the ringback while the agent rings is the hold music
        assert await caller.wait_bridged() == "PJSIP/1001"
        await caller.wait_for_prompt("goodbye")
        async with asyncio.timeout(5):
            await finished.wait()
            await caller.wait_ended()
        assert agent.answered == 1
    assert seen["route"] == ("inbound", "5551234", "Alice")
    assert seen["digits"] == "2"
    result: DialResult = seen["dial"]
    assert (result.status, result.hung_up_by) == (DialStatus.ANSWER, "peer")
    assert 0.1 < result.talk_seconds < 2
    assert seen["answered"] == [result.peer_channel]
    assert caller.hangup_cause_name == "NORMAL_CLEARING"
    assert caller.uniqueid in [e.call_id for e in events if isinstance(e, ChannelHungUp)]


@pytest.mark.parametrize("says", [True, False])
async def test_the_agent_hears_the_wait_in_the_calls_language_or_nothing_if_it_cannot_be_said(
    says: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    results: list[DialResult] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        await call.set_language("fr_FR")
        results.append(
            await call.dial("PJSIP/1001", timeout=5, announce="queue-sales", report_wait=185)
        )
        results.append(await call.dial("PJSIP/1001", timeout=5, report_wait=185))
        await call.hangup()

    if not says:

        async def cannot_say(pbx: DemoFreeSwitch, args: str) -> str:
            return "-ERR Usage: <module_name>[.<ext>] ...\n"

        monkeypatch.setitem(fs_api.API_COMMANDS, "say_string", cannot_say)
    commands: list[str] = []
    monkeypatch.setattr(fs_api.log, "debug", lambda _e, **kw: commands.append(kw["command"]))
    with structlog.testing.capture_logs() as logs:
        async with center(handler) as (pbx, _, _events, finished):
            agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=0.2))
            await pbx.call("800")
            async with asyncio.timeout(10):
                await finished.wait()
    assert [r.status for r in results] == [DialStatus.ANSWER, DialStatus.ANSWER]
    told = ["queue-reporthold", "3", "queue-minutes"] if says else []
    assert agent.heard == ["queue-sales", *told, *told], "after the queue's announcement"
    assert commands.count("say_string") == (1 if says else 2), "a number said once is kept"
    refused = [e for e in logs if e["event"] == "wait_not_said"]
    assert len(refused) == (0 if says else 2)
    assert all(e["language"] == "fr" for e in refused)


async def test_the_agent_hears_silence_first_then_the_announcement_and_the_wait() -> None:
    results: list[DialResult] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        results.append(
            await call.dial(
                "PJSIP/1001", timeout=5, announce="queue-sales", report_wait=185, delay=0.5
            )
        )
        await call.hangup()

    async with center(handler) as (pbx, _, _events, finished):
        agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=1.0))
        caller = await pbx.call("800")
        async with asyncio.timeout(10):
            await agent.wait_answered()
            picked_up = time.monotonic()
            await caller.wait_bridged()
            put_through = time.monotonic() - picked_up
            await finished.wait()
    assert [r.status for r in results] == [DialStatus.ANSWER]
    assert agent.heard == ["queue-sales", "queue-reporthold", "3", "queue-minutes"]
    assert put_through >= 0.5, "half a second of silence before the announcement"


async def test_busy_agent_then_caller_gives_up_while_the_next_one_rings() -> None:
    seen: dict[str, Any] = {}

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        seen["busy"] = await call.dial("PJSIP/1001", timeout=5)
        try:
            await call.dial("PJSIP/1002", timeout=5)
        except CallHungUp:
            seen["gave_up"] = True

    async with center(handler) as (pbx, _, _, finished):
        pbx.add_phone("PJSIP/1001", AgentPhone(reject=True))
        slow = pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=None))
        caller = await pbx.call("800", caller_num="5551234")
        await slow.wait_rings()
        await caller.hangup()
        async with asyncio.timeout(5):
            await finished.wait()
    assert seen["busy"].status == DialStatus.BUSY
    assert seen.get("gave_up") is True


async def test_outbound_socket_call_through_the_demo() -> None:
    seen: dict[str, Any] = {}
    handed: list[str] = []

    async def handler(call: FreeSwitchCall) -> None:
        handed.append(call.info.transport)
        seen["transport"] = call.info.transport
        await call.answer()
        await call.play(["/sounds/welcome.wav"])
        await call.hangup()

    async with center(handler, mode="outbound") as (pbx, _, events, finished):
        caller = await pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("welcome")
        async with asyncio.timeout(5):
            await finished.wait()
            await caller.wait_ended()
    # The socket application parks the channel too: the inbound socket sees that
    # CHANNEL_PARK, but the call is the outbound socket's, handed over once.
    assert handed == ["esl-outbound"]
    assert [e.call_id for e in events if isinstance(e, ChannelHungUp)] == [caller.uniqueid]


async def test_outbound_socket_stops_the_myevents_the_call_never_reads() -> None:
    names: list[str] = []

    async def handler(call: FreeSwitchCall) -> None:
        # By now nixevent has been answered: only the events the call reads still come.
        call._esl.add_listener(lambda event: names.append(event.name))
        await call.answer()
        await call.play(["/sounds/welcome.wav"])
        await call.hangup()

    async with center(handler, mode="outbound") as (pbx, _, _events, finished):
        caller = await pbx.call("800", caller_num="5551234")
        async with asyncio.timeout(5):
            await finished.wait()
            await caller.wait_ended()
    assert names.count("CHANNEL_EXECUTE_COMPLETE") >= 2
    assert "CHANNEL_HANGUP" in names
    assert not set(names) & set(UNUSED_MYEVENTS), names


async def test_hold_music_plays_until_the_next_prompt() -> None:
    music_on = asyncio.Event()
    heard: list[str] = []

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        await call.start_hold_music()
        await music_on.wait()
        heard.append(await call.play(["/sounds/position-1.wav"]))
        await call.hangup()

    async with center(handler) as (pbx, _, _, finished):
        caller = await pbx.call("800", caller_num="5551234")
        await caller.wait_moh()
        music_on.set()
        await caller.wait_for_prompt("position-1")
        async with asyncio.timeout(5):
            await finished.wait()
    assert heard == [""]


async def test_wrong_password_is_refused_by_the_demo() -> None:
    pbx = DemoFreeSwitch(password=PASSWORD)
    async with asyncio.timeout(10):
        await pbx.start()
        try:
            driver = FreeSwitchDriver(
                FreeSwitchSettings(
                    esl_port=pbx.esl_port, esl_password="not-it", outbound_listen_port=None
                )
            )

            async def handler(call: Call) -> None:
                return None

            with pytest.raises(AuthenticationError, match="refused the password"):
                await driver.start(handler)
            await driver.stop()
        finally:
            await pbx.stop()


async def test_caller_parked_before_the_daemon_connected_is_adopted() -> None:
    pbx = DemoFreeSwitch(password=PASSWORD, prompt_seconds=0.02)
    adopted: list[tuple[str, str]] = []
    finished = asyncio.Event()

    async def handler(call: Call) -> None:
        adopted.append((call.info.call_id, call.info.route))
        await call.answer()
        await call.play(["/sounds/sorry-for-the-wait.wav"])
        await call.hangup()
        finished.set()

    async with asyncio.timeout(10):
        await pbx.start()
        try:
            caller = await pbx.call("800", caller_num="5551234")
            await asyncio.sleep(0.05)  # parked, nobody listening yet
            driver = FreeSwitchDriver(
                FreeSwitchSettings(
                    esl_port=pbx.esl_port, esl_password=PASSWORD, outbound_listen_port=None
                )
            )
            await driver.start(handler)
            try:
                await caller.wait_for_prompt("sorry-for-the-wait")
                await finished.wait()
            finally:
                await driver.stop()
        finally:
            await pbx.stop()
    assert adopted == [(caller.uniqueid, "inbound")]


async def test_calls_the_driver_takes_out_of_park_are_never_sent_to_the_failover() -> None:
    """The dialplan schedules a transfer to the failover before ``park``; the driver drops
    it when it takes the call, whether it saw the CHANNEL_PARK or adopted the caller at
    connect time. The handler here outlasts the failover delay three times over."""
    pbx = DemoFreeSwitch(
        password=PASSWORD, prompt_seconds=0.02, failover_after=0.3, prompt_durations={"long": 0.9}
    )
    served: list[str] = []

    async def handler(call: Call) -> None:
        await call.answer()
        await call.play(["/sounds/long.wav"])
        served.append(call.info.caller_num)
        await call.hangup()

    async with asyncio.timeout(10):
        await pbx.start()
        try:
            early = await pbx.call("800", caller_num="5550001")
            await asyncio.sleep(0.05)  # parked before the driver connects: adopted
            driver = FreeSwitchDriver(
                FreeSwitchSettings(
                    esl_port=pbx.esl_port, esl_password=PASSWORD, outbound_listen_port=None
                )
            )
            await driver.start(handler)
            try:
                late = await pbx.call("800", caller_num="5550002")
                for caller in (early, late):
                    await caller.wait_ended(timeout=5)
            finally:
                await driver.stop()
        finally:
            await pbx.stop()
    assert sorted(served) == ["5550001", "5550002"]
    for caller in (early, late):
        assert caller.heard == ["long"], caller.heard


async def test_a_failover_task_variable_that_is_not_an_id_is_left_alone_and_logged() -> None:
    """``sched_del <name>`` would drop every task of a group: only ids are sent."""
    dialplan = {
        "800": [
            ("set", "callcenter_route=inbound"),
            ("set", "callcenter_failover_task=${uuid}"),
            ("park", ""),
        ]
    }
    pbx = DemoFreeSwitch(password=PASSWORD, prompt_seconds=0.02, dialplan=dialplan)
    done = asyncio.Event()

    async def handler(call: Call) -> None:
        await call.answer()
        await call.play(["/sounds/hello.wav"])
        done.set()

    with structlog.testing.capture_logs() as logs:
        async with asyncio.timeout(10):
            await pbx.start()
            driver = FreeSwitchDriver(
                FreeSwitchSettings(
                    esl_port=pbx.esl_port, esl_password=PASSWORD, outbound_listen_port=None
                )
            )
            await driver.start(handler)
            try:
                caller = await pbx.call("800")
                await done.wait()
                await caller.wait_ended()
            finally:
                await driver.stop()
                await pbx.stop()
    assert caller.heard == ["hello"]
    refused = [e for e in logs if e["event"] == "failover_task_not_an_id"]
    assert [e["value"] for e in refused] == [caller.uniqueid]


async def test_said_numbers_dates_and_a_voicemail_through_the_driver(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    box = tmp_path / "vm" / "sales"

    async def handler(call: FreeSwitchCall) -> None:
        await call.answer()
        await call.say("number", "3")
        seen["skipped"] = await call.say("number", "42", interrupt_digits="1")
        await call.say("date", "2024-03-05")
        await call.set_language("fr")
        await call.say("digits", "7")
        seen["record"] = await call.record(
            str(box / "msg"), max_seconds=10, silence_seconds=1, end_digits="#"
        )
        await call.hangup()

    async with center(handler) as (pbx, _, _, finished):
        pbx.prompt_durations["digits/40.wav"] = 5.0
        caller = await pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("digits/40")
        await caller.press("1")
        await caller.wait_for_prompt("beep")
        async with asyncio.timeout(5):
            # The recording starts once its (empty) file is written, on a thread: a loaded
            # machine may take a while after the beep.
            while not (box / "msg.wav").exists():
                await asyncio.sleep(0.01)
        caller.speak(0.3)
        await asyncio.sleep(0.3)
        await caller.press("#")
        async with asyncio.timeout(5):
            await finished.wait()
            await caller.wait_ended()
    assert seen["skipped"] == "1"
    # 2024-03-05 is a Tuesday: the words the demo Asterisk's SAY DATETIME ABdY plays.
    date = ["digits/day-2", "digits/mon-2", "digits/h-5", "digits/2", "digits/thousand"]
    assert caller.heard == [
        "digits/3",
        "digits/40",
        *date,
        "digits/20",
        "digits/4",
        "digits/7",
        "beep",
    ]
    assert [lang for lang, _ in caller.heard_in] == ["en"] * 9 + ["fr", "fr"]
    result: RecordResult = seen["record"]
    assert (result.ended, result.digit) == ("dtmf", "#")
    assert result.path == str(box / "msg.wav")
    assert 0.25 < result.seconds < 2.0
    with wave.open(result.path) as recorded:
        assert abs(recorded.getnframes() / recorded.getframerate() - result.seconds) < 0.01


@pytest.mark.parametrize("mode", ["inbound", "outbound"])
async def test_a_call_handed_back_leaves_at_once_while_the_handler_goes_on(mode: str) -> None:
    # Parked: there is no dialplan to go back to, so the caller is hung up; socket: exit,
    # and the dialplan after ``socket`` ends the call.
    probe = HandBackProbe()
    async with center(probe, mode=mode) as (pbx, _, events, finished):
        caller = await pbx.call("800", caller_num="5551234")
        async with asyncio.timeout(5):
            await caller.wait_ended()
            probe.gone.set()
            await finished.wait()
    assert probe.refused_after
    assert [e.call_id for e in events if isinstance(e, ChannelHungUp)] == [caller.uniqueid]
