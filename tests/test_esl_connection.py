"""ESL inbound connection and outbound-socket server against a FreeSWITCH replaying real traces."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from esl_replay import (
    PASSWORD,
    ESLReplayer,
    ESLReplayServer,
    command_key,
    replay_outbound,
    require_traces,
    script,
    wait_until,
)

from callcenter.errors import (
    ActionFailed,
    AuthenticationError,
    CallHungUp,
    PBXConnectionError,
    PBXTimeoutError,
    ReplyLost,
)
from callcenter.pbx.freeswitch.connection import (
    DEFAULT_EVENTS,
    ESLConnection,
    ESLOutboundServer,
    ESLOutboundSession,
)
from callcenter.protocols.esl import (
    ESLEvent,
    encode_api_response,
    encode_disconnect_notice,
    encode_reply,
)

pytestmark = pytest.mark.usefixtures("traces")


@pytest.fixture
def traces() -> None:
    require_traces()


@contextlib.asynccontextmanager
async def switch(name: str, conn: int = 1, **options: Any) -> AsyncIterator[ESLReplayServer]:
    """A fake FreeSWITCH replaying connection ``conn`` of trace ``name`` on every connection.

    Trace g's ``event`` steps are its deliberate mistakes (``-ERR no keywords supplied``);
    they are left out so that our subscription gets the plain ``+OK``.
    """
    steps = [s for s in script(name, conn) if not (name.startswith("g_") and s.key == "event")]
    async with ESLReplayServer(lambda _: ESLReplayer(list(steps), **options)) as server:
        yield server


@contextlib.asynccontextmanager
async def connected(server: ESLReplayServer, **options: Any) -> AsyncIterator[ESLConnection]:
    settings: dict[str, Any] = {
        "connect_timeout": 2.0,
        "command_timeout": 2.0,
        "reconnect_min": 0.02,
        "reconnect_max": 0.05,
    }
    settings.update(options)
    password = settings.pop("password", PASSWORD)
    conn = ESLConnection("127.0.0.1", server.port, password, **settings)
    try:
        async with asyncio.timeout(5):
            await conn.connect()
        yield conn
    finally:
        async with asyncio.timeout(5):
            await conn.close()


async def test_login_authenticates_and_subscribes_only_to_what_the_driver_needs() -> None:
    async with switch("a_auth_events_api.jsonl") as server, connected(server) as conn:
        assert conn.connected
        first = server.connections[0].commands
        assert first[0].line == f"auth {PASSWORD}"
        assert first[1].line == "event plain " + " ".join(DEFAULT_EVENTS)
        assert "ALL" not in first[1].line.split()
        assert "CHANNEL_STATE" not in first[1].line.split()


async def test_wrong_password_is_an_authentication_error_that_never_shows_the_password() -> None:
    async with switch("g_errors.jsonl", 1, password="the-right-one") as server:
        conn = ESLConnection("127.0.0.1", server.port, "wrong-password", connect_timeout=2.0)
        with pytest.raises(AuthenticationError) as info:
            async with asyncio.timeout(5):
                await conn.connect()
        assert "wrong-password" not in str(info.value)
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert "-ERR invalid" in str(info.value)
        assert "wrong-password" not in repr(conn)
        assert not conn.connected
        await conn.close()


async def test_unreachable_switch_is_a_connection_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    conn = ESLConnection("127.0.0.1", port, "x", connect_timeout=1.0)
    with pytest.raises(PBXConnectionError, match="cannot reach"):
        async with asyncio.timeout(5):
            await conn.connect()


async def test_concurrent_api_commands_each_get_their_own_answer_in_wire_order() -> None:
    async with switch("a_auth_events_api.jsonl") as server, connected(server) as conn:
        async with asyncio.timeout(5):
            status, listing, version = await asyncio.gather(
                conn.api("status"), conn.api("show channels"), conn.api("version")
            )
        assert status.startswith("UP 0 years")
        assert listing == "\n0 total.\n"
        assert version.startswith("FreeSWITCH Version 1.10.12")


async def test_commands_sent_together_get_their_own_replies_in_order() -> None:
    from callcenter.demopbx.freeswitch import DemoFreeSwitch

    async with DemoFreeSwitch(password="s3cret") as pbx:
        conn = ESLConnection("127.0.0.1", pbx.esl_port, "s3cret", connect_timeout=2.0)
        try:
            async with asyncio.timeout(5):
                await conn.connect()
                replies = await conn.commands(
                    ["event plain HEARTBEAT", "nosuchcommand", "event xml BACKGROUND_JOB"]
                )
                assert await conn.commands([]) == []
        finally:
            await conn.close()
    assert replies == [
        "+OK event listener enabled plain",
        "-ERR command not found",
        "+OK event listener enabled xml",
    ]


async def test_commands_left_unanswered_time_out_naming_the_first_of_them() -> None:
    async with switch("a_auth_events_api.jsonl") as server, connected(server) as conn:
        replayer = server.connections[0]
        replayer.mute = True
        with pytest.raises(PBXTimeoutError, match=r"'nixevent' within 0\.1s"):
            await conn.commands(["nixevent HEARTBEAT", "noevents"], timeout=0.1)
        again = asyncio.ensure_future(
            conn.commands(["nixevent HEARTBEAT", "noevents"], timeout=0.5)
        )
        await wait_until(lambda: len(replayer.commands) == 6)  # auth, event and these four
        # The first two (late) replies still belong to the first two commands; the third
        # answers the first of the second pair, whose second stays unanswered.
        replayer.push([(0.0, encode_reply("+OK")), (0.0, encode_reply("+OK"))])
        replayer.push([(0.0, encode_reply("+OK events nixed"))])
        with pytest.raises(PBXTimeoutError, match=r"'noevents' within 0\.5s"):
            await again


async def test_messages_cut_into_tiny_reads_are_reassembled() -> None:
    async with switch("a_auth_events_api.jsonl", chunk=7) as server, connected(server) as conn:
        events: list[ESLEvent] = []
        conn.add_listener(events.append)
        async with asyncio.timeout(5):
            assert (await conn.api("uptime")) == "7\n"
            assert (await conn.bgapi("uptime")) == "7\n"


async def test_api_error_text_raises_action_failed_unless_unchecked() -> None:
    async with switch("g_errors.jsonl", 3) as server, connected(server) as conn:
        with pytest.raises(ActionFailed, match="nosuchcommand Command not found") as info:
            async with asyncio.timeout(5):
                await conn.api("nosuchcommand arg")
        assert info.value.response == "-ERR nosuchcommand Command not found!\n"
        async with asyncio.timeout(5):
            text = await conn.api("uuid_kill 00000000-0000-0000-0000-000000000000", check=False)
        assert text == "-ERR No such channel!\n"


async def test_bgapi_sends_our_job_uuid_and_returns_the_background_job_body() -> None:
    async with switch("a_auth_events_api.jsonl") as server, connected(server) as conn:
        async with asyncio.timeout(5):
            assert (await conn.bgapi("status")).startswith("UP 0 years")
            assert (await conn.bgapi("uptime")) == "7\n"
        sent = server.commands("bgapi uptime")
        assert len(sent) == 1
        assert sent[0].get("Job-UUID")
        assert server.connections[0].unmatched == []


async def test_sendmsg_to_a_vanished_channel_raises_call_hung_up() -> None:
    async with switch("g_errors.jsonl", 3) as server, connected(server) as conn:
        with pytest.raises(CallHungUp, match="invalid session id"):
            async with asyncio.timeout(5):
                await conn.sendmsg("00000000-0000-0000-0000-000000000000", "answer")


async def test_silent_switch_is_probed_then_dropped_and_the_link_comes_back() -> None:
    async with switch("a_auth_events_api.jsonl") as server:
        lost: list[str] = []
        ups: list[int] = []
        async with connected(server, heartbeat_timeout=0.15, command_timeout=0.15) as conn:
            conn.on_disconnected(lost.append)

            async def counted() -> None:
                ups.append(1)

            conn.on_connected(counted)
            server.connections[0].mute = True  # no HEARTBEAT, no answer to the probe
            await wait_until(lambda: len(server.connections) == 2 and conn.connected, 5)
            assert conn.reconnects == 1
            assert lost and "api status" in lost[0]
            probes = [c.line for c in server.connections[0].commands]
            assert "api status" in probes
            again = [c.line for c in server.connections[1].commands]
            assert again[:2] == [f"auth {PASSWORD}", "event plain " + " ".join(DEFAULT_EVENTS)]
            await wait_until(lambda: len(ups) >= 1)
            async with asyncio.timeout(5):
                assert (await conn.api("version")).startswith("FreeSWITCH")


async def test_a_quiet_but_healthy_switch_is_only_probed() -> None:
    async with (
        switch("a_auth_events_api.jsonl") as server,
        connected(server, heartbeat_timeout=0.05) as conn,
    ):
        await wait_until(lambda: len(server.commands("api status")) >= 2)
        assert conn.reconnects == 0
        assert len(server.connections) == 1


async def test_command_pending_when_the_link_drops_fails_as_maybe_run_and_is_never_resent() -> None:
    """Its reply went with the link: ``ReplyLost`` (it may have run), not sent again."""
    async with switch("a_auth_events_api.jsonl") as server, connected(server) as conn:
        server.connections[0].mute = True
        pending = asyncio.ensure_future(conn.bgapi("originate user/1001 &park()", timeout=5))
        await wait_until(lambda: len(server.commands("bgapi originate")) == 1)
        server.connections[0].close()
        with pytest.raises(ReplyLost):
            async with asyncio.timeout(5):
                await pending
        await wait_until(lambda: len(server.connections) == 2 and conn.connected)
        await asyncio.sleep(0.05)
        assert len(server.commands("bgapi originate")) == 1


async def test_late_reply_of_a_timed_out_command_is_not_given_to_the_next_one() -> None:
    async with switch("a_auth_events_api.jsonl") as server, connected(server) as conn:
        replayer = server.connections[0]
        replayer.mute = True
        with pytest.raises(PBXTimeoutError):
            await conn.api("uuid_getvar x y", timeout=0.05)
        replayer.push([(0.0, encode_api_response("late answer"))])
        replayer.mute = False
        async with asyncio.timeout(5):
            assert (await conn.api("uptime")) == "7\n"


async def test_disconnect_notice_and_close_lead_to_a_reconnect() -> None:
    async with switch("a_auth_events_api.jsonl") as server, connected(server) as conn:
        server.connections[0].push([(0.0, encode_disconnect_notice())])
        server.connections[0].close()
        await wait_until(lambda: len(server.connections) == 2 and conn.connected)
        assert conn.reconnects == 1


async def test_outbound_session_reads_channel_data_and_controls_the_channel() -> None:
    seen: dict[str, Any] = {}
    done = asyncio.Event()

    async def handler(session: ESLOutboundSession) -> None:
        events: list[ESLEvent] = []
        session.set_listener(events.append)
        seen["uuid"] = session.uuid
        seen["dest"] = session.channel_data.get("Caller-Destination-Number")
        seen["route"] = session.channel_data.variable("lab_route")
        seen["mode"] = session.channel_data.get("Socket-Mode")
        await session.sendmsg(None, "answer", event_uuid="7d8cf14d-45a5-4fef-a59d-e27e0ae000e4")
        await wait_until(lambda: any(e.name == "CHANNEL_EXECUTE_COMPLETE" for e in events))
        seen["route_var"] = await session.api(f"uuid_getvar {session.uuid} lab_route")
        done.set()

    server = ESLOutboundServer("127.0.0.1", 0, handler, linger=5)
    await server.start()
    replayer = ESLReplayer(script("o_outbound_socket.jsonl"))
    try:
        async with asyncio.timeout(5):
            await asyncio.gather(replay_outbound(server.port, replayer), done.wait())
    finally:
        await server.stop()
    assert seen == {
        "uuid": "00471187-a653-45b2-83cf-5ec08bb67c9e",
        "dest": "2000",
        "route": "esl_outbound",
        "mode": "async",
        "route_var": "esl_outbound",
    }
    lines = [c.line for c in replayer.commands]
    assert lines[:3] == ["connect", "myevents", "linger 5"]
    assert command_key(replayer.commands[3]) == "sendmsg execute answer"
    assert lines[-1] == "exit"
