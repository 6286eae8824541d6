"""Supervisors on agents' calls, as a supervisor uses them: ``callcenter supervisor listen
2000 1001`` (or the control API) rings the supervisor's phone; once answered they hear the
call, then whisper to the agent, then barge in; the CDR names who monitored the call and
whether the caller heard a supervisor. Every scenario runs over real TCP against both demo
PBXs, on all four transports."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.daemon import asterisk_settings
from callcenter.errors import ConfigError
from callcenter.events import CallMonitored, CallTransferred, EngineEvent, MonitorEnded
from callcenter.supervision.monitor import Monitor
from callcenter.testing import TRANSPORTS, Center, running_center

STEP = 5.0


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _api(center: Center, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """POST ``body`` (GET when None); (status, JSON answer), errors included."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{center.daemon.api.port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=STEP) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def api(center: Center, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return await asyncio.to_thread(_api, center, path, body)


async def until(predicate: Callable[[], bool], what: str, limit: float = STEP) -> None:
    try:
        async with asyncio.timeout(limit):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(what) from None


def events_of(center: Center) -> list[EngineEvent]:
    seen: list[EngineEvent] = []
    center.daemon.bus.subscribe(seen.append)
    return seen


async def caller_with_agent(center: Center, number: str, key: str = "2") -> Any:
    """A caller dials 800, presses ``key`` and talks to the agent who answers."""
    caller = await center.pbx.call("800", caller_num=number)
    await caller.wait_for_prompt("welcome-menu", timeout=STEP)
    await caller.press(key)
    await caller.wait_bridged(timeout=STEP)
    return caller


def monitor_of(center: Center, supervisor: str = "2000") -> Monitor | None:
    return center.daemon.switchboard.monitoring.current(supervisor)


def gone(center: Center, leg: Any) -> bool:
    """The demo PBX no longer has ``leg`` (names repeat on FreeSWITCH: compare objects)."""
    return all(channel is not leg for channel in center.pbx.channels.values())


async def caller_hangs_up_and_the_cdr_says(
    center: Center, caller: Any, monitored_by: str, *, barged: bool
) -> None:
    await caller.hangup()
    row = await center.cdr(caller.uniqueid)
    assert (row["monitored_by"], row["barged"]) == (monitored_by, barged)


def answered_in(center: Center, supervisor: str = "2000") -> Callable[[], bool]:
    return lambda: answered(center, supervisor)


def answered(center: Center, supervisor: str = "2000") -> bool:
    monitor = monitor_of(center, supervisor)
    return monitor is not None and monitor.answered is not None


def spy_leg(center: Center, supervisor: str = "2000") -> Any:
    monitor = monitor_of(center, supervisor)
    if monitor is None or not monitor.session.channel:
        return None
    return center.pbx.find_channel(monitor.session.channel)


async def sam_joins(center: Center, sam: Any, mode: str, agent: str = "1001") -> Any:
    """Sam (2000) asks for ``mode`` on ``agent``'s call, answers, and his leg runs in that
    mode; returns his leg on the demo PBX."""
    status, answer = await api(center, f"/supervisors/2000/{mode}", {"agent": agent})
    assert status == 200, answer
    await sam.wait_answered(timeout=STEP)
    await until(lambda: spy_leg(center) is not None, "Sam's leg is on the PBX")
    leg = spy_leg(center)
    await until(lambda: leg.spy_mode == mode, f"Sam's leg runs in {mode} mode")
    return leg


@asynccontextmanager
async def supervised(
    tmp_path: Path, transport: str, **config: Any
) -> AsyncIterator[tuple[Center, Any, Any]]:
    """A centre with Alice (1001) answering, Sam (supervisor 2000) answering; yields
    (center, Alice's phone, Sam's phone)."""
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        alice = center.add_phone("PJSIP/1001", answer_after=0.05)
        sam = center.add_phone("PJSIP/2000", answer_after=0.05)
        yield center, alice, sam


async def test_supervisor_listens_whispers_barges_and_the_cdr_says_the_caller_heard_them(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        seen = events_of(center)
        caller = await caller_with_agent(center, "5551234")
        status, answer = await api(center, "/supervisors/2000/listen", {"agent": "1001"})
        assert status == 200, answer
        assert answer["supervisor"] == "2000"
        assert answer["monitoring"]["agent"] == "1001"
        assert answer["monitoring"]["call_id"] == caller.uniqueid
        assert answer["monitoring"]["mode"] == "listen"

        await sam.wait_answered(timeout=STEP)
        await until(lambda: spy_leg(center) is not None, "Sam's leg is on the PBX")
        leg = spy_leg(center)
        await until(lambda: leg.spy_mode == "listen", "Sam listens")
        _, status_now = await api(center, "/status")
        sam_row = next(s for s in status_now["supervisors"] if s["id"] == "2000")
        assert sam_row["monitoring"]["state"] == "monitoring"
        assert sam_row["monitoring"]["agent"] == "1001"

        status, answer = await api(center, "/supervisors/2000/whisper", {"agent": "1001"})
        assert status == 200 and answer["monitoring"]["mode"] == "whisper"
        await until(lambda: leg.spy_mode == "whisper", "Alice hears Sam, the caller does not")
        status, _ = await api(center, "/supervisors/2000/barge", {"agent": "1001"})
        assert status == 200
        await until(lambda: leg.spy_mode == "barge", "everybody hears Sam")
        assert sam.rings == 1, "switching mode never rings the supervisor again"
        assert spy_leg(center) is leg

        await caller.hangup()
        await until(lambda: monitor_of(center) is None, "monitoring ends with the call")
        await until(lambda: gone(center, leg), "Sam's leg is gone")
        row = await center.cdr(caller.uniqueid)
        assert (row["agent"], row["monitored_by"], row["barged"]) == ("1001", "2000", True)
        modes = [e.mode for e in seen if isinstance(e, CallMonitored)]
        assert modes == ["listen", "whisper", "barge"]
        ended = [e for e in seen if isinstance(e, MonitorEnded)]
        assert [(e.supervisor, e.agent, e.why) for e in ended] == [("2000", "1001", "ended")]
        assert ended[0].seconds > 0


async def test_supervisor_stops_listening_and_the_call_goes_on_unheard(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        caller = await caller_with_agent(center, "5551235")
        leg = await sam_joins(center, sam, "listen")

        status, answer = await api(center, "/supervisors/2000/stop", {})
        assert status == 200 and answer["monitoring"]["mode"] == "listen"
        assert monitor_of(center) is None
        await until(lambda: gone(center, leg), "Sam's leg hung up")
        status, answer = await api(center, "/supervisors/2000/stop", {})
        assert (status, answer["monitoring"]) == (200, None), "stopping twice is harmless"

        await asyncio.sleep(0.2)
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001", "the call goes on"
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=False)


async def test_a_supervisor_who_stops_while_the_pbx_link_is_down_is_told_so_and_stops_later(
    tmp_path: Path, transport: str
) -> None:
    """Sam asks to stop listening while the daemon's link to the PBX is down: the hang-up
    of his leg cannot be sent. He is told so at once (409, the link down), still listens,
    and stops once the link is back (before, the request waited for the call to end)."""
    slow = {"reconnect_min": 3.0, "reconnect_max": 3.0}
    async with supervised(tmp_path, transport, pbx={"ami": slow, "esl": slow}) as (
        center,
        _alice,
        sam,
    ):
        caller = await caller_with_agent(center, "5551239")
        leg = await sam_joins(center, sam, "listen")
        board = center.daemon.switchboard
        await center.drop_pbx_connections()
        await until(lambda: not board.pbx_up, "the daemon sees the link down")
        async with asyncio.timeout(STEP):
            status, answer = await api(center, "/supervisors/2000/stop", {})
        assert status == 409 and "down" in answer["error"], answer
        assert monitor_of(center) is not None, "Sam still listens"
        await until(lambda: board.pbx_up, "the link is back", limit=10)
        status, answer = await api(center, "/supervisors/2000/stop", {})
        assert status == 200 and answer["monitoring"]["mode"] == "listen", answer
        await until(lambda: gone(center, leg), "Sam's leg hung up")
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001", "the call goes on"
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=False)


async def test_a_supervisor_who_does_not_answer_leaves_no_trace_on_the_call(
    tmp_path: Path, transport: str
) -> None:
    config = {"supervisors": {"2000": {"ring_timeout": 0.5}}}
    async with supervised(tmp_path, transport, **config) as (center, _alice, sam):
        sam.answer_after = None
        seen = events_of(center)
        caller = await caller_with_agent(center, "5551236")
        status, answer = await api(center, "/supervisors/2000/barge", {"agent": "1001"})
        assert status == 200 and answer["monitoring"]["state"] == "ringing"
        await sam.wait_rings(timeout=STEP)
        await until(lambda: monitor_of(center) is None, "the request lapses", limit=STEP)
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001"
        await caller_hangs_up_and_the_cdr_says(center, caller, "", barged=False)
        assert [e.why for e in seen if isinstance(e, MonitorEnded)] == ["not_answered"]


async def test_a_supervisor_on_a_headset_hears_the_call_without_picking_up(
    tmp_path: Path, transport: str
) -> None:
    """Sam's phone never picks up by itself; with auto_answer it is asked to, and he
    listens at once."""
    config = {"supervisors": {"2000": {"auto_answer": True}}}
    async with supervised(tmp_path, transport, **config) as (center, _alice, sam):
        sam.answer_after = None
        sam.auto_answer = True
        caller = await caller_with_agent(center, "5551239")
        status, _ = await api(center, "/supervisors/2000/listen", {"agent": "1001"})
        await until(answered_in(center), "Sam hears the call")
        assert status == 200 and sam.auto_answered == 1
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=False)


async def test_supervisor_hanging_up_ends_the_monitoring_not_the_call(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        seen = events_of(center)
        caller = await caller_with_agent(center, "5551237")
        await sam_joins(center, sam, "whisper")
        await sam.hangup()
        await until(lambda: monitor_of(center) is None, "monitoring ends with Sam's leg")
        assert [e.why for e in seen if isinstance(e, MonitorEnded)] == ["ended"]
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001", "the call goes on"
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=False)


async def test_supervisor_moves_from_one_agent_to_another_with_one_ring_each(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        center.add_phone("PJSIP/1002", answer_after=0.05)
        seen = events_of(center)
        first = await caller_with_agent(center, "5551238", key="1")  # sales: Alice only
        second = await caller_with_agent(center, "5551239")  # support: Bob is the one free
        assert await second.wait_bridged(timeout=STEP) == "PJSIP/1002"
        on_alice = await sam_joins(center, sam, "listen")

        status, answer = await api(center, "/supervisors/2000/listen", {"agent": "1002"})
        assert status == 200 and answer["monitoring"]["call_id"] == second.uniqueid
        await until(lambda: gone(center, on_alice), "left Alice")
        await sam.wait_answered(count=2, timeout=STEP)
        await until(lambda: spy_leg(center) is not None, "Sam listens to Bob")
        await until(lambda: spy_leg(center).spy_mode == "listen", "the new leg listens")
        assert sam.rings == 2
        for caller in (first, second):
            await caller.hangup()
        rows = [await center.cdr(c.uniqueid) for c in (first, second)]
        assert [r["monitored_by"] for r in rows] == ["2000", "2000"]
        # A monitoring may end after its call's record is written (MonitorEnded is no
        # CallEvent): wait for the second one.
        ends = lambda: [e.why for e in seen if isinstance(e, MonitorEnded)]  # noqa: E731
        await until(lambda: len(ends()) == 2, "both monitorings ended")
        assert ends() == ["replaced", "ended"]


async def test_a_mode_asked_while_the_phone_rings_is_the_one_the_supervisor_gets(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        sam.answer_after = 0.5
        caller = await caller_with_agent(center, "5551240")
        await api(center, "/supervisors/2000/listen", {"agent": "1001"})
        status, answer = await api(center, "/supervisors/2000/barge", {"agent": "1001"})
        assert status == 200 and answer["monitoring"]["state"] == "ringing"
        assert answer["monitoring"]["mode"] == "barge"
        await sam.wait_answered(timeout=STEP)
        await until(lambda: spy_leg(center) is not None, "Sam's leg is on the PBX")
        await until(lambda: spy_leg(center).spy_mode == "barge", "Sam is heard by everybody")
        assert sam.rings == 1
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=True)


async def test_monitoring_ends_when_the_agent_transfers_the_caller_away(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await caller_with_agent(center, "5551241", key="1")  # sales: Alice only
        leg = await sam_joins(center, sam, "listen")
        status, answer = await api(center, "/agents/1001/transfer", {"to": "1002"})
        assert status == 200, answer
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/1002") == "PJSIP/1002"
        await until(lambda: monitor_of(center) is None, "Alice's part of the call is over")
        await until(lambda: gone(center, leg), "Sam's leg is gone")
        status, answer = await api(center, "/supervisors/2000/listen", {"agent": "1001"})
        assert status == 409 and "not on a call" in answer["error"]
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
        assert (row["transfer_path"], row["monitored_by"]) == ("1001>1002", "2000")


async def test_requests_that_cannot_be_served_get_clear_errors(tmp_path: Path) -> None:
    async with supervised(tmp_path, "fastagi") as (center, _alice, sam):
        cases = [
            ("/supervisors/2000/listen", {"agent": "1001"}, 409, "not on a call"),
            ("/supervisors/2000/listen", {"agent": "9999"}, 404, "9999"),
            ("/supervisors/9999/listen", {"agent": "1001"}, 404, "9999"),
            ("/supervisors/9999/stop", {}, 404, "9999"),
            ("/supervisors/2000/listen", {}, 400, '"agent"'),
            ("/supervisors/2000/listen", {"agent": 1001}, 400, '"agent"'),
            ("/supervisors/2000/spy", {"agent": "1001"}, 404, "spy"),
        ]
        for path, body, code, text in cases:
            status, answer = await api(center, path, body)
            assert (status, text in answer["error"]) == (code, True), (path, body, answer)
        status, answer = await api(center, "/supervisors/2000/listen")
        assert status == 405
        assert sam.rings == 0


async def test_supervisor_command_line_listens_stops_and_shows_in_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with supervised(tmp_path, "fastagi") as (center, _alice, sam):
        url = f"http://127.0.0.1:{center.daemon.api.port}"
        caller = await caller_with_agent(center, "5551242")
        capsys.readouterr()
        argv = ["supervisor", "listen", "2000", "1001", "--api", url]
        assert await asyncio.to_thread(cli_main, argv) == 0
        assert '"agent": "1001"' in capsys.readouterr().out, "the API's answer is printed"
        await sam.wait_answered(timeout=STEP)
        await until(lambda: answered(center), "Sam answered")
        assert await asyncio.to_thread(cli_main, ["status", "--api", url]) == 0
        table = capsys.readouterr().out.splitlines()
        sam_line = next(line for line in table if line.startswith("2000 "))
        assert sam_line.split()[:5] == ["2000", "Sam", "listen", "agent", "1001"]
        assert f"call {caller.uniqueid}, monitoring" in sam_line
        assert await asyncio.to_thread(cli_main, ["supervisor", "stop", "2000", "--api", url]) == 0
        assert monitor_of(center) is None
        refused = ["supervisor", "listen", "2000", "1002", "--api", url]
        assert await asyncio.to_thread(cli_main, refused) == 1, "Bob is not on a call"
        await caller.hangup()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["supervisor", "listen", "2000"], "needs the agent"),
        (["supervisor", "stop", "2000", "1001"], "takes no agent"),
        (["supervisor", "takeover", "2000", "1001"], "takes no agent"),
        (["supervisor", "spy", "2000", "1001"], "invalid choice"),
    ],
)
def test_supervisor_command_line_mistakes_are_named_before_anything_is_sent(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main([*argv, "--api", "http://127.0.0.1:9"])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


async def test_an_agent_asking_for_help_gets_the_queue_s_supervisor_whispering(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        caller = await caller_with_agent(center, "5551243")
        status, answer = await api(center, "/agents/1001/help", {})
        assert status == 200, answer
        assert (answer["supervisor"], answer["monitoring"]["mode"]) == ("2000", "whisper")
        await sam.wait_answered(timeout=STEP)
        await until(lambda: spy_leg(center) is not None, "Sam's leg is on the PBX")
        await until(lambda: spy_leg(center).spy_mode == "whisper", "Alice hears Sam")
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=False)


async def test_an_agent_keys_star_0_on_the_phone_and_the_supervisor_comes_to_whisper(
    tmp_path: Path, transport: str
) -> None:
    keys = {"acd": {"agent_keys": {}}}
    async with supervised(tmp_path, transport, **keys) as (center, alice, sam):
        caller = await caller_with_agent(center, "5551244")
        await until(
            lambda: bool(center.daemon.switchboard.agent_call("1001")), "the daemon saw Alice"
        )
        await alice.press("*0")
        await sam.wait_answered(timeout=STEP)
        await until(lambda: spy_leg(center) is not None, "Sam's leg is on the PBX")
        await until(lambda: spy_leg(center).spy_mode == "whisper", "Alice hears Sam")
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=False)


async def test_help_is_refused_when_nobody_can_come(tmp_path: Path) -> None:
    async with supervised(tmp_path, "fastagi") as (center, _alice, sam):
        center.add_phone("PJSIP/1002", answer_after=0.05)
        on_sales = await caller_with_agent(center, "5551244", key="1")  # sales: no supervisor
        status, answer = await api(center, "/agents/1001/help", {})
        assert status == 409 and "no supervisor" in answer["error"]
        on_support = await caller_with_agent(center, "5551245")  # Bob, in support
        await api(center, "/supervisors/2000/listen", {"agent": "1002"})
        await sam.wait_answered(timeout=STEP)
        await on_sales.hangup()
        alice_again = await caller_with_agent(center, "5551246")  # Alice, in support now
        status, answer = await api(center, "/agents/1001/help", {})
        assert status == 409 and "on agent 1002's call" in answer["error"], "Sam is not pulled off"
        assert monitor_of(center) is not None and monitor_of(center).agent == "1002"  # type: ignore[union-attr]
        status, _ = await api(center, "/agents/1003/help", {})
        assert status == 409, "Carol is not on a call"
        for caller in (on_support, alice_again):
            await caller.hangup()


async def test_a_supervisor_takes_the_call_over_and_the_agent_is_free(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        seen = events_of(center)
        caller = await caller_with_agent(center, "5551247")
        status, answer = await api(center, "/supervisors/2000/takeover", {})
        assert status == 409 and "not on an agent's call" in answer["error"]
        await sam_joins(center, sam, "barge")
        await until(answered_in(center), "the daemon knows Sam answered")
        status, answer = await api(center, "/supervisors/2000/takeover", {})
        assert status == 200 and answer["monitoring"]["agent"] == "1001", answer
        assert await caller.wait_bridged(timeout=STEP, device="PJSIP/2000") == "PJSIP/2000"
        assert sam.rings == 2, "Sam's phone rings again with the caller"
        await until(lambda: center.daemon.router.agents["1001"].state != "on_call", "Alice is free")
        assert monitor_of(center) is None
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    assert (row["transfer_path"], row["monitored_by"], row["barged"]) == ("1001>2000", "2000", True)
    assert [e.kind for e in seen if isinstance(e, CallTransferred)] == ["takeover"]
    assert [e.why for e in seen if isinstance(e, MonitorEnded)] == ["taken_over"]


async def test_a_take_over_asked_as_the_daemon_stops_is_answered_not_left_hanging(
    tmp_path: Path, transport: str
) -> None:
    """The stop ends the monitoring under a take-over on its way: the request still gets
    its answer (the client waited for good before) and nothing is left unretrieved."""
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        caller = await caller_with_agent(center, "5551248")
        await sam_joins(center, sam, "listen")
        await until(answered_in(center), "the daemon knows Sam answered")
        monitoring = center.daemon.switchboard.monitoring
        session = monitor_of(center).session  # type: ignore[union-attr]
        hang_up_sams_leg = session.stop

        async def the_stop_comes_meanwhile() -> None:
            await hang_up_sams_leg()
            await monitoring.close()

        session.stop = the_stop_comes_meanwhile  # type: ignore[method-assign]
        asked = center.api("POST", "/supervisors/2000/takeover", {})
        status, answer = await asyncio.wait_for(asked, STEP)
        await caller.hangup()
    assert status in (200, 409), answer


async def test_a_stop_while_sam_listens_leaves_his_leg_to_the_pbx_and_no_task_behind(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        caller = await caller_with_agent(center, "5551249")
        leg = await sam_joins(center, sam, "listen")
        await until(answered_in(center), "the daemon knows Sam answered")
        await center.daemon.switchboard.monitoring.close()
        waiting = [
            t
            for t in asyncio.all_tasks()
            if t.get_coro().__qualname__.startswith("SpyLife.")  # type: ignore[union-attr]
        ]
        still_listening = not gone(center, leg)
        await caller.hangup()
    assert waiting == [], "the watcher's helpers went with it"
    assert still_listening, "left to the PBX, as the calls are"


async def test_a_supervisor_with_teams_monitors_only_the_agents_of_those_teams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teams = {
        "agents": {"1001": {"team": "blue"}, "1002": {"team": "red"}},
        "supervisors": {"2000": {"teams": ["red"]}},
    }
    async with supervised(tmp_path, "fastagi", **teams) as (center, _alice, sam):
        caller = await caller_with_agent(center, "5551250")  # Alice, team blue, answers
        status, answer = await api(center, "/supervisors/2000/listen", {"agent": "1001"})
        assert status == 403
        assert answer["error"] == (
            "supervisor 2000 monitors team(s) red only; agent 1001 is in team blue"
        )
        url = f"http://127.0.0.1:{center.daemon.api.port}"
        capsys.readouterr()
        barge = ["supervisor", "barge", "2000", "1001", "--api", url]
        assert await asyncio.to_thread(cli_main, barge) == 1
        assert "team blue" in capsys.readouterr().err
        assert sam.rings == 0 and monitor_of(center) is None
        # Alice moves to the red team: a reload, and Sam may listen.
        settings = yaml.safe_load(center.config_path.read_text())
        settings["agents"]["1001"]["team"] = "red"
        center.config_path.write_text(yaml.safe_dump(settings))
        await center.daemon.reload()
        status, answer = await api(center, "/supervisors/2000/listen", {"agent": "1001"})
        assert status == 200, answer
        await sam.wait_answered(timeout=STEP)
        await caller.hangup()


# ------------------------------------------------------------ from the supervisor's phone


def phone_leg(center: Center, phone: Any) -> Any:
    """The demo PBX's channel of a call placed with ``center.pbx.call``."""
    return center.pbx.find_channel(phone.uniqueid) or center.pbx.find_channel(phone.channel)


async def test_supervisor_dials_star81_listens_whispers_barges_from_the_keypad_and_hangs_up(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, sam):
        seen = events_of(center)
        caller = await caller_with_agent(center, "5551240")
        phone = await center.pbx.call("*811001", caller_num="2000", caller_name="Sam")
        await until(answered_in(center), "Sam's own call listens to Alice's")
        monitor = monitor_of(center)
        assert monitor is not None
        assert (monitor.agent, monitor.call_id, monitor.mode) == ("1001", caller.uniqueid, "listen")
        leg = phone_leg(center, phone)
        await until(lambda: leg.spy_mode == "listen", "Sam listens")
        assert sam.rings == 0, "nothing rings: Sam is on the line already"

        status, answer = await api(center, "/supervisors/2000/whisper", {"agent": "1001"})
        assert status == 200 and answer["monitoring"]["mode"] == "whisper"
        await until(lambda: leg.spy_mode == "whisper", "Alice hears Sam, the caller does not")

        barge_key = "3" if transport.startswith("esl") else "6"
        await phone.press(barge_key)
        await until(lambda: leg.spy_mode == "barge", "Sam's keypad: everybody hears him")
        await until(lambda: monitor_of(center).mode == "barge", "the daemon saw the key")  # type: ignore[union-attr]
        _, status_now = await api(center, "/status")
        sam_row = next(s for s in status_now["supervisors"] if s["id"] == "2000")
        assert sam_row["monitoring"]["mode"] == "barge"

        await phone.hangup()
        await until(lambda: monitor_of(center) is None, "monitoring ends with Sam's call")
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001", "the call goes on"
        await caller_hangs_up_and_the_cdr_says(center, caller, "2000", barged=True)
        modes = [e.mode for e in seen if isinstance(e, CallMonitored)]
        assert modes == ["listen", "whisper", "barge"]
        assert [e.why for e in seen if isinstance(e, MonitorEnded)] == ["ended"]
        row = await center.cdr(phone.uniqueid)
        assert row["src"] == "2000" and row["queue"] == ""


async def test_supervisor_barges_by_star83_and_is_cut_off_when_the_caller_hangs_up(
    tmp_path: Path, transport: str
) -> None:
    async with supervised(tmp_path, transport) as (center, _alice, _sam):
        caller = await caller_with_agent(center, "5551241")
        phone = await center.pbx.call("*831001", caller_num="2000")
        await until(answered_in(center), "Sam barges in")
        leg = phone_leg(center, phone)
        await until(lambda: leg.spy_mode == "barge", "everybody hears Sam")
        await caller.hangup()
        await until(lambda: monitor_of(center) is None, "monitoring ends with the call")
        await phone.wait_ended(timeout=STEP)
        row = await center.cdr(caller.uniqueid)
        assert (row["monitored_by"], row["barged"]) == ("2000", True)


@pytest.mark.parametrize(
    ("dialled", "caller_num", "heard", "why"),
    [
        ("*811001", "2000", "beeperr", "Alice is not on a call"),
        ("*819999", "2000", "beeperr", "no agent 9999"),
        ("*811001", "5550000", "invalid", "not a supervisor's phone"),
    ],
)
async def test_monitoring_codes_that_cannot_be_served_are_heard_as_such(
    tmp_path: Path, dialled: str, caller_num: str, heard: str, why: str
) -> None:
    async with supervised(tmp_path, "fastagi") as (center, _alice, sam):
        phone = await center.pbx.call(dialled, caller_num=caller_num)
        await phone.wait_ended(timeout=STEP)
        assert heard in phone.heard, why
        assert monitor_of(center) is None and sam.rings == 0


async def test_a_supervisor_with_a_pin_is_asked_for_it_before_listening(tmp_path: Path) -> None:
    config = {"supervisors": {"2000": {"pin": "2468"}}}
    async with supervised(tmp_path, "esl-inbound", **config) as (center, _alice, _sam):
        await caller_with_agent(center, "5551242")
        wrong = await center.pbx.call("*811001", caller_num="2000")
        await wrong.wait_for_prompt("agent-pass", timeout=STEP)
        await wrong.press("1111")
        await wrong.wait_ended(timeout=STEP)
        assert "auth-incorrect" in wrong.heard and monitor_of(center) is None
        right = await center.pbx.call("*811001", caller_num="2000")
        await right.wait_for_prompt("agent-pass", timeout=STEP)
        await right.press("2468")
        await until(answered_in(center), "the right PIN lets Sam listen")
        status, answer = await api(center, "/supervisors/2000/stop", {})
        assert status == 200 and answer["monitoring"]["agent"] == "1001"
        await right.wait_ended(timeout=STEP)


@pytest.mark.parametrize(
    ("transport", "extra", "events"),
    [
        ("fastagi", "supervisors: {'2000': {name: Sam, device: PJSIP/2000}}", "call,dtmf"),
        ("fastagi", "acd: {agent_keys: {}}", "call,dtmf"),
        ("fastagi", "", "call"),
        ("asyncagi", "supervisors: {'2000': {name: Sam, device: PJSIP/2000}}", "call,agi,dtmf"),
        ("asyncagi", "", "call,agi"),
    ],
)
def test_the_daemon_asks_asterisk_for_keypad_events_only_when_someone_keys(
    transport: str, extra: str, events: str
) -> None:
    """Supervisors switch a spy's mode and agents key transfers (acd.agent_keys) by DTMF;
    without either, nobody's keys are read at first (an open line asks for them)."""
    text = "pbx: {type: asterisk, ami: {secret: x}, agi: {transport: TRANSPORT}}\n"
    text = text.replace("TRANSPORT", transport) + (extra + "\n" if extra else "")
    assert asterisk_settings(load_config_text(text)).ami_events == events


async def test_sam_hears_how_the_sales_queue_stands_with_star_85(
    tmp_path: Path, transport: str
) -> None:
    config = {"queues": {"sales": {"digits": "1"}}}
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        for agent_id in ("1001", "1002"):
            center.daemon.router.logout(agent_id, via="test")
        waiting = []
        for number in ("5551301", "5551302"):
            caller = await center.pbx.call("800", caller_num=number)
            await caller.wait_for_prompt("welcome-menu", timeout=STEP)
            await caller.press("1")
            await caller.wait_moh(timeout=STEP)
            waiting.append(caller)
        sam = await center.pbx.call("*851", caller_num="2000")
        await sam.wait_ended(timeout=STEP)
        wrong = await center.pbx.call("*859", caller_num="2000")
        await wrong.wait_ended(timeout=STEP)
        stranger = await center.pbx.call("*851", caller_num="5550000")
        await stranger.wait_ended(timeout=STEP)
        for caller in waiting:
            await caller.hangup()
        await center.idle()
    assert sam.heard == [
        "queue-thereare",
        "digits/2",
        "queue-callswaiting",
        "queue-reporthold",
        "queue-less-than",
        "digits/1",
        "queue-minute",
    ]
    assert wrong.heard == ["beeperr"] and stranger.heard == ["invalid"]


async def test_sam_works_at_another_phone_and_monitoring_and_his_codes_follow_him(
    tmp_path: Path, transport: str
) -> None:
    config = {"supervisors": {"2000": {"pin": "2468", "hot_desk": True}}}
    async with supervised(tmp_path, transport, **config) as (center, _alice, sam):
        desk = center.add_phone("PJSIP/2010", answer_after=0.05)
        seated = await api(center, "/supervisors/2000/desk", {"device": "PJSIP/2010"})
        caller = await caller_with_agent(center, "5551250")
        status, _ = await api(center, "/supervisors/2000/listen", {"agent": "1001"})
        await desk.wait_answered(timeout=STEP)
        await until(answered_in(center), "Sam listens at the desk phone")
        await api(center, "/supervisors/2000/stop", {})
        await until(lambda: monitor_of(center) is None, "stopped")
        code = await center.pbx.call("*821001", caller_num="2010")
        await code.wait_for_prompt("agent-pass", timeout=STEP)
        await code.press("2468")
        await until(answered_in(center), "the desk phone's *82 is Sam's")
        await api(center, "/supervisors/2000/stop", {})
        await caller.hangup()
        await center.idle()
        daemon = await center.restart()
        kept = daemon.switchboard.supervisor_device("2000")
        _, shown = await api(center, "/status")
        back = await api(center, "/supervisors/2000/desk", {"device": None})
        own = center.daemon.switchboard.supervisor_device("2000")
    assert seated == (200, {"supervisor": "2000", "device": "PJSIP/2010", "changed": True})
    assert status == 200 and sam.rings == 0, "his own phone stays quiet"
    assert kept == "PJSIP/2010", "a restart keeps him at the desk"
    (sam_shown,) = [s for s in shown["supervisors"] if s["id"] == "2000"]
    assert sam_shown["device"] == "PJSIP/2010"
    assert back[1]["changed"] is True and own == "PJSIP/2000"


async def desk_code(center: Center, phone: str, pin: str) -> Any:
    """Sam (2000) dials ``*862000`` from ``phone`` and keys ``pin``; returns the call, ended."""
    code = await center.pbx.call("*862000", caller_num=phone)
    await code.wait_for_prompt("agent-pass", timeout=STEP)
    await code.press(pin)
    await code.wait_ended(timeout=STEP)
    return code


async def test_sam_sits_at_another_phone_with_star_86_and_back_at_his_own_the_same_way(
    tmp_path: Path, transport: str
) -> None:
    config = {"supervisors": {"2000": {"pin": "2468", "hot_desk": True}}}
    async with supervised(tmp_path, transport, **config) as (center, _alice, _sam):
        board = center.daemon.switchboard
        wrong = await desk_code(center, "2011", "1111")
        after_wrong = board.supervisor_device("2000")
        seated_call = await desk_code(center, "2010", "2468")
        seated = board.supervisor_device("2000")
        home = await desk_code(center, "2000", "2468")
        back = board.supervisor_device("2000")
        stranger = await center.pbx.call("*869999", caller_num="2012")
        await stranger.wait_ended(timeout=STEP)
    assert "auth-incorrect" in wrong.heard and after_wrong == "PJSIP/2000"
    assert seated_call.heard[-1] == home.heard[-1] == "agent-loginok"
    assert "2010" in seated and seated != "PJSIP/2000", "he works at 2010 now"
    assert back == "PJSIP/2000", "*86 from his own phone brings him back"
    assert stranger.heard == ["invalid"]


async def test_star_86_for_a_supervisor_without_hot_desk_is_refused(
    tmp_path: Path, transport: str
) -> None:
    config = {"supervisors": {"2000": {"pin": "2468"}}}
    async with supervised(tmp_path, transport, **config) as (center, _alice, _sam):
        code = await desk_code(center, "2010", "2468")
        kept = center.daemon.switchboard.supervisor_device("2000")
    assert code.heard[-1] == "beeperr" and kept == "PJSIP/2000"


async def test_a_desk_for_a_supervisor_without_hot_desk_or_a_phone_is_refused(
    tmp_path: Path,
) -> None:
    async with supervised(tmp_path, "fastagi") as (center, _alice, _sam):
        no_hot_desk = await api(center, "/supervisors/2000/desk", {"device": "PJSIP/2010"})
        nobody = await api(center, "/supervisors/2999/desk", {"device": "PJSIP/2010"})
        own = await api(center, "/supervisors/2000/desk", {"device": "PJSIP/2000"})
    assert no_hot_desk[0] == 403 and "hot_desk" in no_hot_desk[1]["error"]
    assert nobody[0] == 404
    assert own == (200, {"supervisor": "2000", "device": "PJSIP/2000", "changed": False})
    with pytest.raises(ConfigError) as refused:
        load_config_text(
            "pbx: {ami: {secret: x}}\n"
            "supervisors: {'2000': {name: Sam, device: PJSIP/2000, hot_desk: true}}\n"
        )
    assert "hot_desk: true needs a pin" in str(refused.value)


async def test_help_comes_from_another_supervisor_when_the_queues_own_is_busy(
    tmp_path: Path,
) -> None:
    config = {
        "supervisors": {"2001": {"name": "Pat", "device": "PJSIP/2001", "teams": ["blue"]}},
        "agents": {"1001": {"team": "blue"}, "1002": {"team": "blue"}},
    }
    async with supervised(tmp_path, "esl-inbound", **config) as (center, _alice, sam):
        pat = center.add_phone("PJSIP/2001", answer_after=0.05)
        center.add_phone("PJSIP/1002", answer_after=0.05)
        first = await caller_with_agent(center, "5551260")
        board = center.daemon.switchboard
        busy = "1001" if board.agent_call("1001") is not None else "1002"
        other = "1002" if busy == "1001" else "1001"
        await api(center, "/supervisors/2000/listen", {"agent": busy})
        await sam.wait_answered(timeout=STEP)
        second = await caller_with_agent(center, "5551261")
        status, answer = await api(center, f"/agents/{other}/help", {})
        await pat.wait_answered(timeout=STEP)
        await until(answered_in(center, "2001"), "Pat whispers")
        await api(center, "/supervisors/2001/stop", {})
        await api(center, "/supervisors/2000/stop", {})
        for caller in (first, second):
            await caller.hangup()
        await center.idle()
    assert status == 200 and answer["supervisor"] == "2001", "Sam is busy: Pat comes"
