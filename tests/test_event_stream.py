"""``GET /events``: the engine's events live as Server-Sent Events, for an agent's desktop
(the screen pop as their phone rings) or a wallboard in a browser."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

import callcenter.live.stream as stream_module
from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.events import AgentStateChanged
from callcenter.testing import (
    BASE_CONFIG,
    TRANSPORTS,
    Center,
    EventStreamClient,
    merge,
    running_center,
    until,
)

TOKEN = "s3cret-token-for-the-stream"


async def _talk(center: Center, number: str, key: str = "2") -> None:
    """A caller presses ``key``, talks a moment to the agent, hangs up."""
    caller = await center.caller_presses(number, key)
    await caller.wait_bridged(timeout=5)
    await asyncio.sleep(0.1)
    await caller.hangup()


@pytest.mark.parametrize("agi", TRANSPORTS)
async def test_bob_s_desktop_sees_his_caller_ring_with_what_the_ivr_knew(
    tmp_path: Path, agi: str
) -> None:
    async with running_center(tmp_path, agi=agi) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1002", answer_after=0.05)
        center.daemon.router.pause("1001", "lunch")  # Bob takes the support caller
        bob = await EventStreamClient.open(center.daemon.api.port, "agent=1002")
        await _talk(center, "5550601")
        seen = await bob.until("CallEnded")
        center.daemon.router.unpause("1001")  # about Alice: not on Bob's desktop
        await center.idle()
        bob.close()
    states = [m.data["new"] for m in seen if m.event == "AgentStateChanged"]  # type: ignore[index]
    seen = [m for m in seen if m.event != "AgentStateChanged"]
    names = [m.event for m in seen]
    assert bob.status == 200 and bob.retry_ms == 2000
    assert states[:2] == ["ringing", "on_call"], "Bob's own moves, none of Alice's"
    assert names[:3] == ["CallStarted", "CallAnswered", "IvrStep"], names
    assert names.index("QueueJoined") < names.index("AgentRinging") < names.index("AgentConnected")
    assert names[-1] == "CallEnded"
    before = seen[: names.index("AgentRinging")]
    assert all(m.id == "" for m in before), "the call's earlier events come without ids"
    assert all(m.id for m in seen[names.index("AgentRinging") :])
    assert {m.data["call_id"] for m in seen if m.data} == {seen[0].data["call_id"]}  # type: ignore[index]
    assert seen[0].data["caller_num"] == "5550601"  # type: ignore[index]


async def test_a_stream_of_some_kinds_only_and_an_unknown_kind_refused(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        port = center.daemon.api.port
        wrong = await EventStreamClient.open(port, "events=CallStarted,CallFinished")
        ends = await EventStreamClient.open(port, "events=CallStarted,CallEnded")
        center.add_phone("PJSIP/1001", answer_after=0.05)
        await _talk(center, "5550602", "1")
        seen = await ends.until("CallEnded")
        await center.idle()
        ends.close()
    assert wrong.status == 400
    assert wrong.error == {
        "error": "/events: no engine event 'CallFinished' (see callcenter/events.py)"
    }
    assert [m.event for m in seen] == ["CallStarted", "CallEnded"]


async def test_a_stream_needs_the_token_which_a_browser_gives_in_the_url(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, environ={"CALLCENTER_API_TOKEN": TOKEN}) as center:
        port = center.daemon.api.port
        without = await EventStreamClient.open(port)
        wrong = await EventStreamClient.open(port, "token=nope")
        in_url = await EventStreamClient.open(port, f"token={TOKEN}&events=AgentPaused")
        header = await EventStreamClient.open(
            port, "events=AgentPaused", {"Authorization": f"Bearer {TOKEN}"}
        )
        center.daemon.router.pause("1001", "lunch")
        got = [await in_url.until("AgentPaused"), await header.until("AgentPaused")]
        in_url.close()
        header.close()
    assert (without.status, wrong.status, in_url.status, header.status) == (401, 401, 200, 200)
    assert [[m.data["reason"] for m in ms] for ms in got] == [["lunch"], ["lunch"]]  # type: ignore[index]


async def test_a_desktop_that_reconnects_gets_what_it_missed_and_is_told_of_a_gap(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        port = center.daemon.api.port
        router = center.daemon.router
        first = await EventStreamClient.open(port, "events=AgentPaused,AgentUnpaused")
        router.pause("1001", "lunch")
        [paused] = await first.until("AgentPaused")
        first.close()
        router.unpause("1001")
        router.pause("1002", "training")
        back = await EventStreamClient.open(
            port, "events=AgentPaused,AgentUnpaused", {"Last-Event-ID": paused.id}
        )
        missed = [await back.next(), await back.next()]
        back.close()
        elsewhere = await EventStreamClient.open(port, "last_id=0123abcd-7")
        gap = await elsewhere.next()
        elsewhere.close()
    assert [(m.event, m.data["agent"]) for m in missed] == [  # type: ignore[index]
        ("AgentUnpaused", "1001"),
        ("AgentPaused", "1002"),
    ]
    prefix, _, number = paused.id.rpartition("-")
    assert [m.id.rpartition("-")[0] for m in missed] == [prefix, prefix]
    assert int(missed[0].id.rpartition("-")[2]) > int(number)
    assert gap.event == "StreamGap"
    assert gap.data == {"last_id": "0123abcd-7", "why": "another daemon, or an unknown id"}


async def test_a_quiet_stream_gets_keep_alives_and_a_client_reading_nothing_is_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "KEEPALIVE", 0.2)
    monkeypatch.setattr(stream_module, "CLIENT_BACKLOG", 50)
    monkeypatch.setattr(stream_module, "WRITE_TIMEOUT", 0.5)
    async with running_center(tmp_path) as center:
        port = center.daemon.api.port
        streams = center.daemon.api.streams
        assert streams is not None
        quiet = await EventStreamClient.open(port, "events=CallStarted")
        comment = await quiet.next(timeout=2)
        quiet.close()
        stuck = await EventStreamClient.open(port)
        await until(lambda: streams.clients == 1)
        bus = center.daemon.switchboard.bus
        for n in range(40_000):
            bus.publish(AgentStateChanged(agent=f"x{n}", old="available", new="paused"))
            if n % 1000 == 0:
                await asyncio.sleep(0)
            if not streams.clients:
                break
        await until(lambda: streams.clients == 0, timeout=10)
        _, health = await center.api("GET", "/health")
        stuck.close()
    assert comment.comment == "keep-alive"
    assert health["streams"]["clients"] == 0
    assert health["streams"]["served"] == 2


async def test_a_daemon_stopping_ends_its_streams(tmp_path: Path) -> None:
    async with running_center(tmp_path) as center:
        stream = await EventStreamClient.open(center.daemon.api.port)
        await until(
            lambda: center.daemon.api.streams is not None and center.daemon.api.streams.clients == 1
        )
        await center.restart()
        with pytest.raises(EOFError):
            while True:
                await stream.next(timeout=5)


async def _raw(port: int, request: str) -> tuple[int, dict[str, str]]:
    """Send ``request`` as is; the status and the response's headers (lower-case names)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    writer.close()
    return status, headers


async def test_a_desktop_page_on_the_crm_s_site_may_call_the_api_from_the_browser(
    tmp_path: Path,
) -> None:
    config = {"api": {"cors_origins": ["https://crm.example"]}}
    environ = {"CALLCENTER_API_TOKEN": TOKEN}
    async with running_center(tmp_path, config=config, environ=environ) as center:
        port = center.daemon.api.port
        asks = "OPTIONS /agents/1001/pause HTTP/1.1\r\nHost: x\r\nOrigin: {}\r\n\r\n"
        allowed = await _raw(port, asks.format("https://crm.example"))
        other = await _raw(port, asks.format("https://evil.example"))
        status = await _raw(
            port,
            "GET /status HTTP/1.1\r\nHost: x\r\nOrigin: https://crm.example\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n",
        )
        stream = await _raw(
            port,
            f"GET /events?token={TOKEN} HTTP/1.1\r\nHost: x\r\nOrigin: https://crm.example\r\n\r\n",
        )
    assert allowed[0] == 204
    assert allowed[1]["access-control-allow-origin"] == "https://crm.example"
    assert "Authorization" in allowed[1]["access-control-allow-headers"]
    assert "Last-Event-ID" in allowed[1]["access-control-allow-headers"]
    assert other[0] == 204 and "access-control-allow-origin" not in other[1]
    assert status[0] == 200 and status[1]["access-control-allow-origin"] == "https://crm.example"
    assert stream[0] == 200 and stream[1]["access-control-allow-origin"] == "https://crm.example"
    assert stream[1]["content-type"].startswith("text/event-stream")


def test_an_origin_is_a_scheme_and_a_host_not_a_page() -> None:
    config = merge(BASE_CONFIG, {"api": {"cors_origins": ["https://crm.example/desk"]}})
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml.safe_dump(config))
    assert "api.cors_origins[0]: must be a page's origin" in str(caught.value)


async def test_ops_follow_one_agent_s_events_in_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        streams = center.daemon.api.streams
        assert streams is not None
        argv = ["events", "--agent", "1002", "--events", "AgentPaused,AgentUnpaused"]
        follow = asyncio.ensure_future(
            asyncio.to_thread(cli_main, [*argv, "--count", "2", "--api", api])
        )
        await until(lambda: streams.clients == 1)
        router = center.daemon.router
        router.pause("1001", "lunch")  # not Bob: not shown
        router.pause("1002", "training")
        router.unpause("1002")
        code = await asyncio.wait_for(follow, 10)
        printed = capsys.readouterr().out.splitlines()
        refused = await asyncio.to_thread(
            cli_main, ["events", "--events", "NoSuchEvent", "--api", api]
        )
        wrong = capsys.readouterr().err
    assert code == 0
    assert [line.split()[1:] for line in printed] == [
        ["AgentPaused", "agent=1002", "reason=training", "via=cli"],
        ["AgentUnpaused", "agent=1002", "via=cli"],
    ]
    assert refused == 1 and "no engine event 'NoSuchEvent'" in wrong
