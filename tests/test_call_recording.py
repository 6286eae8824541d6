"""Queue call recording, as a quality manager finds it: every call of a queue with
``record: true`` an agent answers is recorded from the answer to the hang-up, transfers
included, into one file per call that the CDR names (``recordingfile``). Scenarios over real
TCP against both demo PBXs, on all four transports; the demo PBXs write the file when the
recording stops, as long as what they recorded."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from callcenter.cli import format_status
from callcenter.config.loader import check_config
from callcenter.errors import CommandFailed
from callcenter.events import EngineEvent, RecordingMuted, RecordingStarted
from callcenter.live.api import HTTPError
from callcenter.pbx.asterisk.driver import AsteriskCall
from callcenter.testing import BASE_CONFIG, TRANSPORTS, Center, merge, running_center

STEP = 5.0
RECORDED = {"queues": {"support": {"record": True}}}


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seconds_of(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


async def until_exists(path: Path) -> None:
    async with asyncio.timeout(STEP):
        while not await asyncio.to_thread(path.exists):
            await asyncio.sleep(0.02)


async def caller_talks(center: Center, number: str, key: str, seconds: float) -> Any:
    caller = await center.pbx.call("800", caller_num=number)
    await caller.wait_for_prompt("welcome-menu", timeout=STEP)
    await caller.press(key)
    await caller.wait_bridged(timeout=STEP)
    await asyncio.sleep(seconds)
    return caller


def alice_then_sam(center: Center) -> None:
    """Alice (1001) takes the support call (Bob is on a break); Sam (2000) takes transfers."""
    center.add_phone("PJSIP/1001", answer_after=0.05)
    center.add_phone("PJSIP/2000", answer_after=0.05)
    center.daemon.router.pause("1002", "break", via="test")


async def recording_started(center: Center, caller: Any) -> str:
    """The file ``caller``'s call is recorded into, once the daemon has asked for it."""
    active = center.daemon.switchboard.active[caller.uniqueid]
    async with asyncio.timeout(STEP):
        while active.recording is None:
            await asyncio.sleep(0.02)
    return active.recording


async def test_a_recorded_queue_call_is_in_the_file_its_cdr_names(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=RECORDED) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        seen: list[EngineEvent] = []
        center.daemon.bus.subscribe(seen.append)
        caller = await caller_talks(center, "5552001", "2", 0.6)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    folder = center.config_path.parent / "var" / "recordings" / "support"
    path = Path(row["recordingfile"])
    assert path.parent == folder
    assert path.name.endswith(f"-{caller.uniqueid}.wav")
    await until_exists(path)
    assert 0.5 <= seconds_of(path) < 3.0, "from the agent's answer to the hang-up"
    assert [e.path for e in seen if isinstance(e, RecordingStarted)] == [str(path)]


async def test_the_recording_goes_on_through_a_transfer_in_one_file(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=RECORDED) as center:  # type: ignore[arg-type]
        alice_then_sam(center)
        caller = await caller_talks(center, "5552002", "2", 0.4)
        await center.daemon.switchboard.transfer("1001", "supervisor")
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/2000") == "PJSIP/2000"
        await asyncio.sleep(0.4)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    assert row["transfer_path"] == "1001>2000"
    path = Path(row["recordingfile"])
    await until_exists(path)
    assert seconds_of(path) >= 0.8, "both legs of the conversation are in the one file"
    assert list(path.parent.iterdir()) == [path]


async def test_a_queue_without_record_leaves_no_recording(tmp_path: Path, transport: str) -> None:
    async with running_center(tmp_path, transport=transport, config=RECORDED) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await caller_talks(center, "5552003", "1", 0.2)  # sales: not recorded
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        assert row["recordingfile"] == ""
        assert not (center.config_path.parent / "var" / "recordings").exists()


async def test_status_shows_the_file_a_call_is_recorded_into(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=RECORDED) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await caller_talks(center, "5552004", "2", 0.0)
        path = await recording_started(center, caller)
        status = await center.daemon.api.dispatch("GET", "/status", {})
        (call,) = status["calls"]
        assert call["recording"] == path and path.endswith(f"-{caller.uniqueid}.wav")
        await caller.hangup()


def _write(folder: Path, extra: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "callcenter.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, extra), sort_keys=False))
    return path


def problems(path: Path) -> list[str]:
    return [str(issue) for issue in check_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})]


def test_check_refuses_recordings_under_a_folder_the_pbx_cannot_name(tmp_path: Path) -> None:
    spaced = _write(tmp_path / "my configs", RECORDED)
    (said,) = problems(spaced)
    assert said.startswith(f"{spaced}:") and ": queues.support.record: " in said
    assert "/var/spool/asterisk/monitor" in said, "the fix is named"

    absolute = merge(RECORDED, {"acd": {"recordings_folder": "/var/spool/asterisk/monitor"}})
    assert problems(_write(tmp_path / "my configs", absolute)) == []
    assert problems(_write(tmp_path / "other configs", {})) == [], "nothing is recorded"


def test_check_refuses_a_recordings_folder_with_characters_the_pbx_refuses(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, merge(RECORDED, {"acd": {"recordings_folder": "/srv/rec ordings"}}))
    (said,) = problems(path)
    assert ": acd.recordings_folder: " in said


def spans(path: Path) -> list[tuple[bool, float]]:
    """The file as (audible, seconds) runs: the demo PBXs record a steady tone, and silence
    where the recording was muted."""
    with wave.open(str(path)) as audio:
        rate = audio.getframerate()
        frames = audio.readframes(audio.getnframes())
    runs: list[tuple[bool, float]] = []
    for i in range(0, len(frames), 2):
        audible = frames[i : i + 2] != b"\x00\x00"
        if runs and runs[-1][0] == audible:
            runs[-1] = (audible, runs[-1][1] + 1 / rate)
        else:
            runs.append((audible, 1 / rate))
    return runs


async def test_the_agent_pauses_the_recording_for_card_details_and_the_file_is_silent_there(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=RECORDED) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await caller_talks(center, "5552005", "2", 0.0)
        await recording_started(center, caller)
        await asyncio.sleep(0.4)
        answer = await center.daemon.api.dispatch("POST", "/agents/1001/pause-recording", {})
        assert answer == {"agent": "1001", "call_id": caller.uniqueid, "recording_paused": True}
        status = await center.daemon.api.dispatch("GET", "/status", {})
        assert status["calls"][0]["recording_paused"] is True
        await asyncio.sleep(0.6)
        answer = await center.daemon.api.dispatch("POST", "/agents/1001/resume-recording", {})
        assert answer["recording_paused"] is False
        await asyncio.sleep(0.4)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    path = Path(row["recordingfile"])
    await until_exists(path)
    runs = spans(path)
    assert [audible for audible, _ in runs] == [True, False, True], runs
    assert 0.5 <= runs[1][1] <= 1.0, "the card details are not in the file"
    assert 0.5 <= row["recording_muted_seconds"] <= 1.0


async def keys_a_pause_in_the_recording(agent: Any, seen: list[EngineEvent], pause: float) -> None:
    """0.4 s recorded, then the agent keys *3 (paused for ``pause`` s), *3 again, 0.4 s."""
    await asyncio.sleep(0.4)
    await agent.press("*3")
    async with asyncio.timeout(STEP):
        while not any(isinstance(e, RecordingMuted) for e in seen):
            await asyncio.sleep(0.01)
    await asyncio.sleep(pause)
    await agent.press("*3")
    await asyncio.sleep(0.4)


async def test_the_agent_pauses_and_resumes_the_recording_with_star_3_on_the_phone(
    tmp_path: Path, transport: str
) -> None:
    config = merge(RECORDED, {"acd": {"agent_keys": {}}})
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        seen: list[EngineEvent] = []
        center.daemon.bus.subscribe(seen.append)
        caller = await caller_talks(center, "5552015", "2", 0.0)
        await recording_started(center, caller)
        await keys_a_pause_in_the_recording(alice, seen, 0.6)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    muted = [(e.muted, e.by) for e in seen if isinstance(e, RecordingMuted)]
    assert muted == [(True, "1001"), (False, "1001")]
    path = Path(row["recordingfile"])
    await until_exists(path)
    assert [audible for audible, _ in spans(path)] == [True, False, True]
    assert 0.5 <= row["recording_muted_seconds"] <= 1.2


async def test_alice_records_a_sales_call_on_demand_with_star_3_and_pauses_it(
    tmp_path: Path, transport: str
) -> None:
    """Sales is not recorded; Alice keys *3: from then on it is (sales/ in the folder), then
    *3 pauses the recording and *3 again resumes it."""
    config = {"acd": {"agent_keys": {}}}
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        seen: list[EngineEvent] = []
        center.daemon.bus.subscribe(seen.append)
        caller = await caller_talks(center, "5552021", "1", 0.3)
        assert center.daemon.switchboard.active[caller.uniqueid].recording is None
        await alice.press("*3")
        await recording_started(center, caller)
        await keys_a_pause_in_the_recording(alice, seen, 0.5)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    path = Path(row["recordingfile"])
    assert path.parent.name == "sales"
    await until_exists(path)
    assert [audible for audible, _ in spans(path)] == [True, False, True]
    assert [(e.muted, e.by) for e in seen if isinstance(e, RecordingMuted)] == [
        (True, "1001"),
        (False, "1001"),
    ]


async def test_recording_on_demand_by_the_api_once_per_call(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        idle = await center.api("POST", "/agents/1002/record", {})
        caller = await caller_talks(center, "5552022", "1", 0.2)
        first = await center.api("POST", "/agents/1001/record", {})
        again = await center.api("POST", "/agents/1001/record", {})
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    assert idle[0] == 409 and "not talking to a caller" in idle[1]["error"]
    assert first[0] == 200 and first[1]["call_id"] == caller.uniqueid
    assert first[1]["recording"] == row["recordingfile"]
    assert again[0] == 409 and "recorded already" in again[1]["error"]


async def test_a_paused_recording_records_again_once_the_agent_transfers_the_caller(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=RECORDED) as center:  # type: ignore[arg-type]
        alice_then_sam(center)
        board = center.daemon.switchboard
        seen: list[EngineEvent] = []
        center.daemon.bus.subscribe(seen.append)
        caller = await caller_talks(center, "5552006", "2", 0.0)
        await recording_started(center, caller)
        await asyncio.sleep(0.3)
        await board.mute_recording("1001", True)
        await asyncio.sleep(0.3)
        await board.transfer("1001", "supervisor")
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/2000") == "PJSIP/2000"
        await asyncio.sleep(0.5)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    muted = [(e.muted, e.by) for e in seen if isinstance(e, RecordingMuted)]
    assert muted == [(True, "1001"), (False, "system")]
    runs = spans(Path(row["recordingfile"]))
    assert runs[-1][0] is True and runs[-1][1] >= 0.4, "the supervisor's talk is recorded"


async def test_pausing_a_recording_that_is_not_there_is_refused_clearly(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=RECORDED) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        api_ = center.daemon.api
        with pytest.raises(HTTPError) as idle:
            await api_.dispatch("POST", "/agents/1001/pause-recording", {})
        assert idle.value.status == 409 and "not talking" in str(idle.value)
        with pytest.raises(HTTPError) as unknown:
            await api_.dispatch("POST", "/agents/9999/pause-recording", {})
        assert unknown.value.status == 404
        caller = await caller_talks(center, "5552007", "1", 0.0)  # sales: not recorded
        with pytest.raises(HTTPError) as unrecorded:
            await api_.dispatch("POST", "/agents/1001/pause-recording", {})
        assert unrecorded.value.status == 409 and "not recorded" in str(unrecorded.value)
        await caller.hangup()


async def test_a_recording_the_pbx_refuses_is_forgotten_and_the_call_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(self: AsteriskCall, path: str) -> None:
        raise CommandFailed("Response: Error (MixMonitor refused)")

    monkeypatch.setattr(AsteriskCall, "start_recording", refused)
    async with running_center(tmp_path, config=RECORDED) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        with capture_logs() as logs:
            caller = await caller_talks(center, "5552008", "2", 0.3)
        active = center.daemon.switchboard.active[caller.uniqueid]
        assert active.recording is None, "no file is claimed that nobody writes"
        with pytest.raises(HTTPError) as paused:
            await center.daemon.api.dispatch("POST", "/agents/1001/pause-recording", {})
        assert "not recorded" in str(paused.value)
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001", "the call goes on"
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    assert row["recordingfile"] == ""
    (warning,) = [e for e in logs if e["event"] == "recording_not_started"]
    assert "MixMonitor refused" in warning["error"]


def test_status_marks_recorded_calls_and_paused_recordings() -> None:
    calls = [
        {"call_id": "a", "queue": "support", "agent": "1001", "path": ["main:welcome"]},
        {"call_id": "b", "queue": "support", "agent": "1002", "recording": "/r/b.wav"},
        {"call_id": "c", "agent": "1003", "recording": "/r/c.wav", "recording_paused": True},
    ]
    table = format_status({"calls": calls}).splitlines()
    assert table[-3] == "  a  support 1001  main:welcome"
    assert table[-2] == "  b  support 1002    [recorded]"
    assert table[-1] == "  c  1003    [recording paused]"


async def test_an_agent_s_own_record_setting_wins_over_the_queue_s(tmp_path: Path) -> None:
    """Support records its calls but Alice is not recorded (``record: false``); sales
    records none but Bob, a new hire, is (``record: true``)."""
    config = merge(
        RECORDED,
        {
            "queues": {"sales": {"agents": ["1002"]}},
            "agents": {"1001": {"record": False}, "1002": {"record": True}},
        },
    )
    async with running_center(tmp_path, config=config) as center:
        center.add_phone("PJSIP/1001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        center.daemon.router.pause("1002", "break", via="test")
        alice = await caller_talks(center, "5552001", "2", 0.3)
        await alice.hangup()
        alice_row = await center.cdr(alice.uniqueid)
        center.daemon.router.unpause("1002", via="test")
        bob = await caller_talks(center, "5552002", "1", 0.1)
        path = await recording_started(center, bob)
        await bob.hangup()
        bob_row = await center.cdr(bob.uniqueid)
    assert (alice_row["agent"], alice_row["recordingfile"]) == ("1001", "")
    assert (bob_row["agent"], bob_row["queue"], bob_row["recordingfile"]) == ("1002", "sales", path)


@pytest.mark.parametrize(("drawn", "recorded"), [(0.05, True), (0.5, False)])
def test_a_share_of_a_queue_s_calls_is_recorded(
    monkeypatch: pytest.MonkeyPatch, drawn: float, recorded: bool
) -> None:
    from callcenter import switchboard
    from callcenter.config import load_config_text

    config = load_config_text(
        "queues:\n  q:\n    agents: []\n    record: true\n    record_share: 0.1\n",
        environ={"CALLCENTER_AMI_SECRET": "x"},
    )
    monkeypatch.setattr(switchboard.random, "random", lambda: drawn)
    assert switchboard._records(config, config.queues["q"], "1001") is recorded
