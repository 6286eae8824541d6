"""AMIConnection against a fake AMI server that replays real Asterisk 22 answers over TCP."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import pytest
import structlog
from asterisk_replay import ReplayAMIServer, wait_until

from callcenter.demopbx import DemoAsterisk
from callcenter.errors import (
    ActionFailed,
    AuthenticationError,
    PBXConnectionError,
    PBXTimeoutError,
)
from callcenter.pbx.asterisk.ami import AMIConnection
from callcenter.protocols.ami import AMIMessage

SECRET = "s3cret-never-logged"


def make_conn(server: ReplayAMIServer, **kw: float | bool | str) -> AMIConnection:
    options: dict[str, float | bool | str] = {
        "connect_timeout": 2.0,
        "action_timeout": 2.0,
        "keepalive_interval": 30.0,
        "reconnect_min": 0.02,
        "reconnect_max": 0.1,
    }
    options.update(kw)
    return AMIConnection("127.0.0.1", server.port, "pbxlab", SECRET, **options)  # type: ignore[arg-type]


async def test_login_then_ping_and_core_settings_return_asterisks_answers() -> None:
    events: list[AMIMessage] = []
    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server)
        conn.add_listener(events.append)
        async with asyncio.timeout(5):
            await conn.connect()
            pong = await conn.send_action("Ping")
            settings = await conn.send_action("CoreSettings")
            await conn.close()
    assert pong.get("Ping") == "Pong"
    assert settings.get("AsteriskVersion") == "22.10.1"
    login = server.peers[0].received[0]
    assert login.name == "Login"
    assert login.get("Username") == "pbxlab" and login.get("Events") == "call,agi,dtmf"
    assert login.action_id is not None and login.action_id.startswith("cc-")
    assert {e.name for e in events} >= {"FullyBooted", "SuccessfulAuth"}
    assert server.actions(0)[-1] == "Logoff"


async def test_nodelay_is_set_on_the_ami_socket() -> None:
    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server)
        async with asyncio.timeout(5):
            await conn.connect()
            link = conn._link
            assert link is not None
            sock = link.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            await conn.close()


async def test_wrong_secret_raises_authentication_error_naming_user_and_host_not_secret() -> None:
    async with ReplayAMIServer.from_trace("13_g_errors.jsonl", conn=17) as server:
        port = server.port
        conn = make_conn(server)
        with pytest.raises(AuthenticationError) as info:
            async with asyncio.timeout(5):
                await conn.connect()
    message = str(info.value)
    assert "pbxlab" in message and f"127.0.0.1:{port}" in message
    assert "Authentication failed" in message
    assert SECRET not in message
    assert not conn.connected


async def test_unreachable_pbx_raises_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = AMIConnection("127.0.0.1", port, "pbxlab", SECRET, connect_timeout=1.0)
    with pytest.raises(PBXConnectionError, match="cannot reach AMI"):
        async with asyncio.timeout(5):
            await conn.connect()


async def test_list_action_collects_the_events_up_to_eventlist_complete() -> None:
    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server)
        async with asyncio.timeout(5):
            await conn.connect()
            response, items = await conn.send_list_action("QueueStatus")
            _, channels = await conn.send_list_action("CoreShowChannels")
            await conn.close()
    assert response.get("EventList") == "start"
    assert [i.name for i in items] == ["QueueParams", "QueueMember", "QueueMember"]
    assert {i.get("Location") for i in items[1:]} == {"PJSIP/agent3", "PJSIP/agent4"}
    assert channels == []


async def test_error_responses_raise_action_failed_unless_check_is_off() -> None:
    async with ReplayAMIServer.from_trace("13_g_errors.jsonl", conn=18) as server:
        conn = make_conn(server)
        async with asyncio.timeout(5):
            await conn.connect()
            with pytest.raises(ActionFailed, match="Invalid/unknown command") as info:
                await conn.send_action("NoSuchAction")
            assert isinstance(info.value.response, AMIMessage)
            response = await conn.send_action(
                "Hangup", [("Channel", "PJSIP/nonexistent-00000000")], check=False
            )
            await conn.close()
    assert response.name == "Error" and response.get("Message") == "No such channel"


async def test_events_reach_name_handlers_and_a_failing_listener_breaks_nothing() -> None:
    booted: list[AMIMessage] = []

    def broken(_: AMIMessage) -> None:
        raise RuntimeError("listener bug")

    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server)
        conn.add_listener(broken)
        conn.add_event_handler("fullybooted", booted.append)
        async with asyncio.timeout(5):
            await conn.connect()
            assert (await conn.send_action("Ping")).get("Ping") == "Pong"
            await conn.close()
    assert [m.get("Status") for m in booted] == ["Fully Booted"]


async def test_silent_peer_is_detected_by_keepalive_then_reconnects_and_logs_in_again() -> None:
    lost: list[str] = []
    logins = 0
    relogged = asyncio.Event()

    async def connected() -> None:
        nonlocal logins
        logins += 1
        if logins == 2:
            relogged.set()

    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server, keepalive_interval=0.05, action_timeout=0.2)
        conn.on_connected(connected)
        conn.on_disconnected(lost.append)
        async with asyncio.timeout(5):
            await conn.connect()
            server.mute = True  # Asterisk stops answering (hung process, dead network path)
            await wait_until(lambda: lost)
            server.mute = False
            await relogged.wait()
            assert conn.connected
            assert (await conn.send_action("Ping")).get("Ping") == "Pong"
            await conn.close()
    assert "no Pong" in lost[0]
    assert len(server.peers) == 2
    assert server.actions(1)[0] == "Login"


async def test_cut_connection_reconnects_with_backoff() -> None:
    lost_at: list[float] = []
    logins: list[float] = []

    async def connected() -> None:
        logins.append(time.monotonic())

    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server, reconnect_min=0.1, reconnect_max=0.2)
        conn.on_connected(connected)
        conn.on_disconnected(lambda reason: lost_at.append(time.monotonic()))
        async with asyncio.timeout(5):
            await conn.connect()
            await wait_until(lambda: logins)
            server.drop_all()
            await wait_until(lambda: len(logins) >= 2)
            await conn.close()
    assert len(lost_at) == 1
    # full jitter between half and all of reconnect_min for the first attempt
    assert logins[1] - lost_at[0] >= 0.05


async def test_pending_originate_fails_on_loss_and_is_never_sent_again() -> None:
    async with ReplayAMIServer.from_trace("05_c2_originate_bridge.jsonl") as server:
        server.hold.add("originate")
        conn = make_conn(server)
        async with asyncio.timeout(5):
            await conn.connect()
            pending = asyncio.create_task(
                conn.send_action(
                    "Originate",
                    [("Channel", "PJSIP/agent1"), ("Context", "lab"), ("Exten", "wait")],
                    timeout=3,
                )
            )
            await wait_until(lambda: "Originate" in server.actions(0))
            server.drop_all()
            with pytest.raises(PBXConnectionError, match="lost while Originate was pending"):
                await pending
            await conn.wait_connected(2)
            assert (await conn.send_action("Ping")).get("Ping") == "Pong"
            await conn.close()
    assert "Originate" not in server.actions(1)


async def test_pending_ping_is_sent_again_after_reconnect() -> None:
    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server)
        async with asyncio.timeout(5):
            await conn.connect()
            server.hold.add("ping")
            pending = asyncio.create_task(conn.send_action("Ping", timeout=3))
            await wait_until(lambda: "Ping" in server.actions(0))
            server.hold.clear()
            server.drop_all()
            pong = await pending
            await conn.close()
    assert pong.get("Ping") == "Pong"
    assert "Ping" in server.actions(1)


async def test_unanswered_action_times_out() -> None:
    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        server.hold.add("status")
        conn = make_conn(server)
        async with asyncio.timeout(5):
            await conn.connect()
            with pytest.raises(PBXTimeoutError, match="Status"):
                await conn.send_action("Status", timeout=0.1)
            assert conn.connected
            await conn.close()


async def test_changing_action_while_the_link_is_down_fails_at_once() -> None:
    async with ReplayAMIServer.from_trace("01_a_basic.jsonl") as server:
        conn = make_conn(server, reconnect_min=1.0, reconnect_max=1.0)
        async with asyncio.timeout(5):
            await conn.connect()
            server.drop_all()
            await wait_until(lambda: not conn.connected)
            started = time.monotonic()
            with pytest.raises(PBXConnectionError, match="Hangup not sent"):
                await conn.send_action("Hangup", [("Channel", "PJSIP/x-1")])
            assert time.monotonic() - started < 0.5
            await conn.close()


def test_event_filter_names_exactly_the_handled_events() -> None:
    conn = AMIConnection("127.0.0.1", 1, "u", "s", filter_events=True)
    assert conn.event_filter() is None, "no handler yet: nothing to filter on"
    conn.add_event_handler("Hangup", lambda msg: None)
    conn.add_event_handler("DialEnd", lambda msg: None)
    pattern = conn.event_filter()
    assert pattern is not None
    regex = re.compile(pattern)
    assert regex.search("Event: Hangup\r\nPrivilege: call,all\r\n")
    assert regex.search("Event: DialEnd\r\n")
    assert not regex.search("Event: HangupRequest\r\n")
    assert not regex.search("Event: UserEvent\r\nUserEvent: Hangup\r\n")
    conn.add_listener(lambda msg: None)
    assert conn.event_filter() is None, "a catch-all listener wants every event"
    assert AMIConnection("127.0.0.1", 1, "u", "s").event_filter() is None


async def _one_call_seen_by_a_filtering_connection(
    demo: DemoAsterisk,
) -> tuple[list[AMIMessage], list[dict[str, object]]]:
    hangups: list[AMIMessage] = []
    conn = AMIConnection(
        "127.0.0.1", demo.ami_port, "callcenter", SECRET, events="call,agi", filter_events=True
    )
    conn.add_event_handler("Hangup", hangups.append)
    with structlog.testing.capture_logs() as logs:
        async with asyncio.timeout(5):
            await conn.connect()
            caller = await demo.call("800", caller_num="5550001")
            await caller.hangup()
            await caller.wait_ended(5)
            await wait_until(lambda: bool(hangups))
            await conn.close()
    return hangups, logs


async def test_asterisk_sends_only_the_handled_events_after_the_filter_action() -> None:
    async with DemoAsterisk(agi_mode="async", ami_secret=SECRET) as demo:
        hangups, logs = await _one_call_seen_by_a_filtering_connection(demo)
        sent = [e.name for e in demo.event_log if e.privilege in ("call", "agi")]
    assert [m.get("Event") for m in hangups] == ["Hangup"]
    assert not [entry for entry in logs if entry["log_level"] == "warning"]
    assert "Newchannel" in sent and "AsyncAGIStart" in sent, "the PBX did publish them"


async def test_a_refused_filter_is_logged_and_every_event_still_arrives() -> None:
    async with DemoAsterisk(
        agi_mode="async", ami_secret=SECRET, ami_write="call,agi,originate"
    ) as demo:
        hangups, logs = await _one_call_seen_by_a_filtering_connection(demo)
    assert [m.get("Event") for m in hangups] == ["Hangup"]
    refused = [entry for entry in logs if entry["event"] == "ami_event_filter_refused"]
    assert len(refused) == 1 and "write=system" in str(refused[0]["hint"])
