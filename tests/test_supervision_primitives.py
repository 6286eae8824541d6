"""Supervision and media primitives of the PBX interface, driven through the daemon's own
driver against the demo PBXs over real TCP, on all four transports: a supervisor spies on
an agent's call (listen, then whisper, then barge, then stops), the agent puts the caller
on hold, and the call is recorded. The caller-agent call must not notice any of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from callcenter.errors import CommandFailed
from callcenter.pbx.interface import Call, SpySession
from callcenter.testing import TRANSPORTS, Center, running_center

STEP = 5.0


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def bridged_call(tmp_path: Path, transport: str) -> AsyncIterator[tuple[Center, Any, Any]]:
    """A caller bridged to agent 1001 through the engine; yields (center, caller, agent leg)."""
    async with running_center(tmp_path, transport=transport) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("welcome-menu", timeout=STEP)
        await caller.press("2")
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001"
        leg = next(
            c
            for c in center.pbx.channels.values()
            if c.device == "PJSIP/1001" and not getattr(c, "ended", False)
        )
        yield center, caller, leg
        await caller.hangup()
        await center.idle()


async def until(predicate: Callable[[], bool], what: str, limit: float = STEP) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.01)
    assert predicate(), what


def engine_call(center: Center, caller: Any) -> Call:
    return center.daemon.switchboard.active[caller.uniqueid].call


def spy_leg(center: Center, session: SpySession) -> Any:
    return center.pbx.find_channel(session.channel)


async def test_supervisor_listens_whispers_barges_and_stops_while_the_call_goes_on(
    tmp_path: Path, transport: str
) -> None:
    async with bridged_call(tmp_path, transport) as (center, caller, leg):
        supervisor = center.add_phone("PJSIP/2000", answer_after=0.05)
        session = await asyncio.wait_for(
            center.daemon.pbx.spy("PJSIP/2000", leg.name, "listen", caller_id="Supervisor <2000>"),
            STEP,
        )
        await supervisor.wait_answered(timeout=STEP)
        await asyncio.wait_for(session.wait_started(), STEP)  # type: ignore[attr-defined]
        await until(lambda: spy_leg(center, session) is not None, "the spy leg is known")
        spy = spy_leg(center, session)
        await until(lambda: spy.spy_mode == "listen", "the demo runs the spy in listen mode")
        assert spy.spy_target in (leg.name, leg.uuid if transport.startswith("esl") else "")

        await asyncio.wait_for(session.set_mode("whisper"), STEP)
        await until(lambda: spy.spy_mode == "whisper", "whisper: the agent hears the supervisor")
        await asyncio.wait_for(session.set_mode("barge"), STEP)
        await until(lambda: spy.spy_mode == "barge", "barge: both hear the supervisor")
        assert session.mode == "barge" and not session.ended

        await asyncio.wait_for(session.stop(), STEP)
        assert session.ended, "stop() returns once the supervisor's leg is gone"
        await until(lambda: center.pbx.find_channel(session.channel) is None, "spy leg gone")
        assert spy.spy_modes == ["listen", "whisper", "barge"]
        with pytest.raises(CommandFailed):
            await asyncio.wait_for(session.set_mode("listen"), STEP)
        await asyncio.wait_for(session.stop(), STEP)  # idempotent

        await asyncio.sleep(0.1)
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001", "the call goes on"
        assert not engine_call(center, caller).hung_up


async def test_spy_can_start_in_whisper_and_ends_when_the_spied_call_ends(
    tmp_path: Path, transport: str
) -> None:
    async with bridged_call(tmp_path, transport) as (center, caller, leg):
        supervisor = center.add_phone("PJSIP/2000", answer_after=0.05)
        session = await asyncio.wait_for(
            center.daemon.pbx.spy("PJSIP/2000", leg.name, "whisper"), STEP
        )
        await supervisor.wait_answered(timeout=STEP)
        await until(lambda: spy_leg(center, session) is not None, "the spy leg is known")
        spy = spy_leg(center, session)
        await until(lambda: spy.spy_mode == "whisper", "the spy starts in whisper mode")
        await caller.hangup()
        await asyncio.wait_for(session.wait_ended(), STEP)
        assert session.ended


async def test_agent_puts_caller_on_hold_and_back(tmp_path: Path, transport: str) -> None:
    async with bridged_call(tmp_path, transport) as (center, caller, leg):
        call = engine_call(center, caller)
        await asyncio.wait_for(call.hold(), STEP)
        if transport.startswith("esl"):
            chan = center.pbx.find_channel(caller.uniqueid)
            await until(lambda: leg.held and chan.hearing_hold_music, "caller hears hold music")
        else:
            await until(lambda: leg.muted == "all", "agent leg muted both ways")
        await asyncio.wait_for(call.unhold(), STEP)
        if transport.startswith("esl"):
            await until(lambda: not chan.hearing_hold_music, "the music stops")
        else:
            await until(lambda: leg.muted == "", "agent leg unmuted")
        await asyncio.wait_for(call.unhold(), STEP)  # not on hold: nothing happens
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001"
        assert not call.hung_up


async def test_call_recording_writes_the_file_when_stopped(tmp_path: Path, transport: str) -> None:
    path = tmp_path / "rec" / "call-1.wav"
    async with bridged_call(tmp_path, transport) as (center, caller, _leg):
        call = engine_call(center, caller)
        await asyncio.wait_for(call.start_recording(str(path)), STEP)
        await asyncio.sleep(0.2)
        assert not path.exists(), "the file is complete only when the recording stops"
        await asyncio.wait_for(call.stop_recording(), STEP)
        await until(path.exists, "the PBX wrote the recording")
        await asyncio.wait_for(call.stop_recording(), STEP)  # no recording: nothing happens
        assert path.stat().st_size > 44, "about 0.2 s of audio after the WAV header"
        with pytest.raises(CommandFailed):
            await call.start_recording("../etc/passwd.wav")
        assert not call.hung_up


async def test_recording_left_running_is_written_when_the_caller_hangs_up(
    tmp_path: Path, transport: str
) -> None:
    path = tmp_path / "call-2.wav"
    async with bridged_call(tmp_path, transport) as (center, caller, _leg):
        await asyncio.wait_for(engine_call(center, caller).start_recording(str(path)), STEP)
        await asyncio.sleep(0.1)
        await caller.hangup()
        await until(path.exists, "the recording is closed at hang-up")


async def test_spy_session_ends_when_the_supervisor_does_not_answer(
    tmp_path: Path, transport: str
) -> None:
    async with bridged_call(tmp_path, transport) as (center, caller, leg):
        supervisor = center.add_phone("PJSIP/2000", answer_after=None)
        session = await asyncio.wait_for(
            center.daemon.pbx.spy("PJSIP/2000", leg.name, "listen", timeout=0.5), STEP
        )
        await supervisor.wait_rings(timeout=STEP)
        await asyncio.wait_for(session.wait_ended(), STEP)
        with pytest.raises(CommandFailed):
            await asyncio.wait_for(session.set_mode("barge"), STEP)
        await asyncio.wait_for(session.stop(), STEP)
        assert not engine_call(center, caller).hung_up
