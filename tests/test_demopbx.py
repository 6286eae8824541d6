"""The demo PBX speaks real AMI and FastAGI/AsyncAGI over TCP, like Asterisk 22 in the traces.

Clients here are independent of the daemon: panoramisk, a raw AMI client built on the shared
codec, and a minimal FastAGI server built on the shared codec.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.demopbx import (
    AgentPhone,
    Answer,
    ChannelState,
    DemoAsterisk,
    DemoDialplan,
    Dial,
    Hangup,
    NoOp,
    Playback,
    Set,
    Wait,
)
from callcenter.demopbx.channels import Channel
from callcenter.errors import CallHungUp, IllegalTransition
from callcenter.protocols.agi import (
    AGIEnvironment,
    AGIHangup,
    AGIResult,
    FastAGIParser,
    encode_command,
)
from callcenter.protocols.ami import (
    AMIBanner,
    AMIMessage,
    AMIParser,
    decode_agi_field,
    encode_message,
)

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "asterisk"
SECRET = "s3cret"


# --------------------------------------------------------------------------- clients


class AMIClient:
    """A raw AMI client: every message received is kept in ``messages``, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.banner: str | None = None
        self.messages: list[AMIMessage] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._ids = 0
        self._taken: set[int] = set()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, port: int) -> AMIClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client.wait(lambda: client.banner is not None)
        return client

    async def _read(self) -> None:
        parser = AMIParser()
        while data := await self.reader.read(65536):
            for item in parser.feed(data):
                if isinstance(item, AMIBanner):
                    self.banner = item.text
                else:
                    self.messages.append(item)
            self._notify()
        self.closed.set()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                await self._changed.wait()

    def send(self, pairs: list[tuple[str, str]]) -> None:
        self.writer.write(encode_message(pairs))

    async def action(self, name: str, *fields: tuple[str, str]) -> AMIMessage:
        """Send an action with a fresh ActionID; its response."""
        self._ids += 1
        action_id = f"t-{self._ids}"
        self.send([("Action", name), ("ActionID", action_id), *fields])
        found: list[AMIMessage] = []

        def answered() -> bool:
            found[:] = [
                m for m in self.messages if m.kind == "response" and m.action_id == action_id
            ]
            return bool(found)

        await self.wait(answered)
        return found[0]

    async def list_action(self, name: str, *fields: tuple[str, str]) -> list[AMIMessage]:
        """A list action: the events up to and including ``EventList: Complete``."""
        response = await self.action(name, *fields)
        assert response.get("EventList") == "start"
        action_id = response.action_id

        def items() -> list[AMIMessage]:
            return [m for m in self.messages if m.kind == "event" and m.action_id == action_id]

        await self.wait(lambda: any(m.get("EventList") == "Complete" for m in items()))
        return items()

    async def login(self, events: str = "on") -> AMIMessage:
        return await self.action(
            "Login", ("Username", "callcenter"), ("Secret", SECRET), ("Events", events)
        )

    async def event(self, name: str, limit: float = 5.0, **match: str) -> AMIMessage:
        """The first event called ``name`` (with ``match`` headers) not returned before."""
        found: list[int] = []

        def present() -> bool:
            for i, m in enumerate(self.messages):
                if i in self._taken or m.kind != "event" or m.name != name:
                    continue
                if all(m.get(k) == v for k, v in match.items()):
                    found.append(i)
                    return True
            return False

        await self.wait(present, limit)
        self._taken.add(found[0])
        return self.messages[found[0]]

    def events(self, name: str) -> list[AMIMessage]:
        return [m for m in self.messages if m.kind == "event" and m.name == name]

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class AGIConn:
    """One FastAGI connection, seen from the daemon's side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = FastAGIParser()
        self.items: list[AGIEnvironment | AGIResult | AGIHangup] = []
        self.env: AGIEnvironment | None = None
        self.hangups = 0

    async def next(self, limit: float = 5.0) -> AGIEnvironment | AGIResult | AGIHangup | None:
        """The next item from the PBX, or None at EOF."""
        async with asyncio.timeout(limit):
            while not self.items:
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.items.extend(self.parser.feed(data))
        return self.items.pop(0)

    async def command(self, line: str, limit: float = 5.0) -> AGIResult:
        """Send a raw command line; its result (HANGUP notices are counted and skipped)."""
        self.writer.write(line.encode() + b"\n")
        while True:
            item = await self.next(limit)
            if isinstance(item, AGIHangup):
                self.hangups += 1
                continue
            assert isinstance(item, AGIResult), f"expected a result for {line!r}, got {item!r}"
            return item

    def close(self) -> None:
        self.writer.close()


class MiniFastAGI:
    """A minimal FastAGI server (the daemon's role): hands out accepted connections."""

    def __init__(self) -> None:
        self.conns: asyncio.Queue[AGIConn] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = AGIConn(reader, writer)
        env = await conn.next()
        assert isinstance(env, AGIEnvironment)
        conn.env = env
        await self.conns.put(conn)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"agi://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def accept(self, limit: float = 5.0) -> AGIConn:
        async with asyncio.timeout(limit):
            return await self.conns.get()

    async def __aenter__(self) -> MiniFastAGI:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        while not self.conns.empty():
            self.conns.get_nowait().close()


@pytest.fixture
async def fastagi() -> AsyncIterator[MiniFastAGI]:
    async with MiniFastAGI() as server:
        yield server


def make_pbx(agi_url: str = "agi://127.0.0.1:1", **kwargs: Any) -> DemoAsterisk:
    kwargs.setdefault("ami_secret", SECRET)
    kwargs.setdefault("login_failure_delay", 0.05)
    return DemoAsterisk(agi_url=agi_url, **kwargs)


@pytest.fixture
async def pbx(fastagi: MiniFastAGI) -> AsyncIterator[DemoAsterisk]:
    async with make_pbx(fastagi.url) as demo:
        yield demo


@pytest.fixture
async def async_pbx() -> AsyncIterator[DemoAsterisk]:
    async with make_pbx(agi_mode="async") as demo:
        yield demo


# --------------------------------------------------------------------------- AMI


async def test_panoramisk_logs_in_and_sees_the_events_of_a_call(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    from panoramisk import Manager  # type: ignore[import-untyped]

    logged_in: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[Any] = []
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host="127.0.0.1",
        port=pbx.ami_port,
        username="callcenter",
        secret=SECRET,
        ping_delay=60,
        on_login=lambda _: logged_in.set_result(None),
    )
    manager.register_event("*", lambda _, event: seen.append(event))
    await asyncio.wait_for(manager.connect(), 5)
    try:
        await asyncio.wait_for(logged_in, 5)
        pong = await asyncio.wait_for(manager.send_action({"Action": "Ping"}), 5)
        assert pong.Ping == "Pong"
        caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
        conn = await fastagi.accept()
        await conn.command("HANGUP")
        conn.close()
        await caller.wait_ended(5)
        await asyncio.sleep(0.05)
    finally:
        manager.close()
    names = [e.event for e in seen]
    for expected in ("Newchannel", "Newstate", "AGIExecStart", "AGIExecEnd", "Hangup"):
        assert expected in names
    hangup = next(e for e in seen if e.event == "Hangup")
    assert hangup.Channel == caller.channel
    assert hangup.Uniqueid == caller.uniqueid


def _trace_header_orders() -> dict[str, list[tuple[str, ...]]]:
    orders: dict[str, set[tuple[str, ...]]] = {}
    for path in [*TRACES.glob("*.jsonl"), *TRACES.glob("fastagi/f00*.jsonl")]:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            data = record.get("data", "")
            if record.get("dir") != "in" or not data.startswith("Event: "):
                continue
            names = tuple(h.split(":", 1)[0] for h in data.split("\r\n") if h)
            orders.setdefault(data.split("\r\n", 1)[0][7:], set()).add(names)
    return {name: sorted(variants) for name, variants in orders.items()}


def _is_subsequence(small: tuple[str, ...], big: tuple[str, ...]) -> bool:
    it = iter(big)
    return all(name in it for name in small)


def assert_headers_like_real_asterisk(messages: list[AMIMessage]) -> set[str]:
    """Every event whose name occurs in the traces carries header names that appear, in the
    same order, in one real variant of it. Returns the event names checked."""
    if not TRACES.is_dir():
        pytest.skip(f"real Asterisk traces not found at {TRACES} (../shared is absent)")
    real = _trace_header_orders()
    checked = set()
    for msg in messages:
        if msg.kind != "event" or msg.name not in real:
            continue
        names = tuple(name for name, _ in msg.headers)
        assert any(_is_subsequence(names, variant) for variant in real[msg.name]), (
            f"{msg.name} headers {names} match no real variant {real[msg.name]}"
        )
        checked.add(msg.name)
    return checked


async def test_demo_events_use_the_header_names_and_order_of_real_asterisk(
    async_pbx: DemoAsterisk,
) -> None:
    if not TRACES.is_dir():
        pytest.skip(f"real Asterisk traces not found at {TRACES} (../shared is absent)")
    pbx = async_pbx
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
    pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=0.05))
    ami = await AMIClient.connect(pbx.ami_port)
    await ami.login()
    caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
    start = await ami.event("AsyncAGIStart")
    chan = start["Channel"]
    for command in ("ANSWER", 'STREAM FILE beep "12"', "GET DATA beep 300 2"):
        await ami.action("AGI", ("Channel", chan), ("Command", command), ("CommandID", command))
        if command.startswith("STREAM"):
            await caller.wait_for_prompt("beep")
            await caller.press("1")
        await ami.event("AsyncAGIExec", CommandId=command)
    await ami.action(
        "AGI", ("Channel", chan), ("Command", "EXEC Dial PJSIP/1001,5,m"), ("CommandID", "dial")
    )
    await caller.wait_bridged(5)
    await ami.list_action("CoreShowChannels")
    await ami.action(
        "Originate",
        ("Channel", "PJSIP/1002"),
        ("Context", "transfer"),
        ("Exten", "1001"),
        ("Priority", "1"),
        ("CallerID", '"Queue Call" <800>'),
    )
    await ami.event("OriginateResponse")
    await ami.action("Setvar", ("Variable", "GLOBALFOO"), ("Value", "bar"))
    await agent.hangup()
    await ami.event("AsyncAGIExec", CommandId="dial")
    await ami.action("AGI", ("Channel", chan), ("Command", "HANGUP"), ("CommandID", "bye"))
    await caller.wait_ended(5)
    await ami.event("Hangup", Channel=chan)
    await ami.close()

    checked = assert_headers_like_real_asterisk(ami.messages)
    must = {
        "Newchannel", "Newstate", "Newexten", "VarSet", "DTMFBegin", "DTMFEnd", "AsyncAGIStart",
        "AsyncAGIExec", "AsyncAGIEnd", "AGIExecStart", "AGIExecEnd", "DialBegin", "DialState",
        "DialEnd", "BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy",
        "MusicOnHoldStart", "MusicOnHoldStop", "HangupRequest", "SoftHangupRequest", "Hangup",
        "DeviceStateChange", "CoreShowChannel", "CoreShowChannelsComplete", "OriginateResponse",
        "FullyBooted", "SuccessfulAuth", "NewConnectedLine",
    }  # fmt: skip
    assert must <= checked, f"not emitted: {sorted(must - checked)}"
    newchannel = next(m for m in ami.messages if m.name == "Newchannel")
    assert newchannel["Uniqueid"].count(".") == 1 and newchannel["Linkedid"]
    assert newchannel["Channel"].startswith("PJSIP/5551234-0000000")


async def test_wrong_secret_is_refused_after_the_delay_and_the_socket_closed(
    async_pbx: DemoAsterisk,
) -> None:
    ami = await AMIClient.connect(async_pbx.ami_port)
    assert ami.banner == "Asterisk Call Manager/11.0.0"
    early = await ami.action("Ping")
    assert (early.name, early["Message"]) == ("Error", "Permission denied")
    began = time.monotonic()
    refused = await ami.action(
        "Login", ("Username", "callcenter"), ("Secret", "wrong-secret"), ("Events", "on")
    )
    assert time.monotonic() - began >= 0.05
    assert (refused.name, refused["Message"]) == ("Error", "Authentication failed")
    assert refused.headers[:2] == (("Response", "Error"), ("ActionID", refused.action_id))
    await asyncio.wait_for(ami.closed.wait(), 5)
    await ami.close()


async def test_md5_challenge_login_is_accepted(async_pbx: DemoAsterisk) -> None:
    import hashlib

    ami = await AMIClient.connect(async_pbx.ami_port)
    challenge = await ami.action("Challenge", ("AuthType", "MD5"))
    key = hashlib.md5((challenge["Challenge"] + SECRET).encode()).hexdigest()
    ok = await ami.action("Login", ("Username", "callcenter"), ("AuthType", "MD5"), ("Key", key))
    assert (ok.name, ok["Message"]) == ("Success", "Authentication accepted")
    await ami.event("FullyBooted")
    await ami.close()


async def test_ami_errors_and_simple_actions_answer_like_asterisk(async_pbx: DemoAsterisk) -> None:
    ami = await AMIClient.connect(async_pbx.ami_port)
    await ami.login()
    unknown = await ami.action("NoSuchAction")
    assert unknown["Message"] == (
        "Invalid/unknown command: NoSuchAction. "
        "Use Action: ListCommands to show available commands."
    )
    ami.send([("ActionID", "noaction"), ("Foo", "bar")])
    await ami.wait(lambda: any(m.action_id == "noaction" for m in ami.messages))
    missing = next(m for m in ami.messages if m.action_id == "noaction")
    assert missing["Message"] == "Missing action in request"
    gone = "PJSIP/nonexistent-00000000"
    assert (await ami.action("Hangup", ("Channel", gone)))["Message"] == "No such channel"
    agi = await ami.action("AGI", ("Channel", gone), ("Command", "ANSWER"), ("CommandID", "x"))
    assert agi["Message"] == f"Channel {gone} does not exist."
    redirect = await ami.action(
        "Redirect", ("Channel", gone), ("Context", "x"), ("Exten", "1"), ("Priority", "1")
    )
    assert redirect["Message"] == f"Channel does not exist: {gone}"
    originate = await ami.action("Originate", ("Channel", "PJSIP/agent1"))
    assert originate["Message"] == "Originate with 'Exten' requires 'Context' and 'Priority'"
    assert (await ami.action("Getvar", ("Variable", "FOO")))["Value"] == ""
    assert (await ami.action("Setvar", ("Variable", "G"), ("Value", "bar")))["Message"] == (
        "Variable Set"
    )
    assert (await ami.action("Getvar", ("Variable", "G")))["Value"] == "bar"
    pong = await ami.action("Ping")
    assert [k for k, _ in pong.headers] == ["Response", "ActionID", "Ping", "Timestamp"]
    ami.send([("Action", "Ping")])
    await ami.wait(lambda: sum(m.get("Ping") == "Pong" for m in ami.messages) == 2)
    assert [m for m in ami.messages if m.get("Ping") == "Pong"][-1].action_id is None
    command = await ami.action("Command", ("Command", "no such cli command"))
    assert (command.name, command["Message"]) == ("Error", "Permission denied"), (
        "the shipped manager.conf user has no write=command"
    )
    async_pbx.ami_write = async_pbx.ami_write | {"command"}
    command = await ami.action("Command", ("Command", "no such cli command"))
    assert command.name == "Error" and command["Output"].startswith("No such command")
    queues = await ami.list_action("QueueStatus")
    assert queues[-1]["ListItems"] == "0"
    bye = await ami.action("Logoff")
    assert (bye.name, bye["Message"]) == ("Goodbye", "Thanks for all the fish.")
    await asyncio.wait_for(ami.closed.wait(), 5)
    await ami.close()


async def test_event_mask_sends_only_the_chosen_classes(async_pbx: DemoAsterisk) -> None:
    agi_only = await AMIClient.connect(async_pbx.ami_port)
    await agi_only.login(events="agi")
    silent = await AMIClient.connect(async_pbx.ami_port)
    await silent.login(events="off")
    caller = await async_pbx.call("800", caller_num="5550001")
    await agi_only.event("AsyncAGIStart")
    await silent.action("Events", ("EventMask", "call"))
    await caller.hangup()
    await caller.wait_ended(5)
    await silent.event("Hangup", Channel=caller.channel)
    assert {m.name for m in agi_only.messages if m.kind == "event"} <= {
        "AsyncAGIStart",
        "AsyncAGIEnd",
    }
    assert not silent.events("Newchannel")
    await agi_only.close()
    await silent.close()


async def test_filter_action_sends_only_matching_events_like_asterisk(
    async_pbx: DemoAsterisk,
) -> None:
    hangups = await AMIClient.connect(async_pbx.ami_port)
    await hangups.login(events="call,agi")
    pattern = "(^|[^A-Za-z])Event: (Hangup|Newchannel)([^A-Za-z]|$)"
    added = await hangups.action("Filter", ("Operation", "Add"), ("Filter", pattern))
    no_agi = await AMIClient.connect(async_pbx.ami_port)
    await no_agi.login(events="call,agi")
    excluded = await no_agi.action(
        "Filter",
        ("Operation", "Add"),
        ("MatchCriteria", "action(exclude),name(AsyncAGIStart)"),
    )
    caller = await async_pbx.call("800", caller_num="5550001")
    await no_agi.event("Newchannel", Channel=caller.channel)
    await caller.hangup()
    await caller.wait_ended(5)
    await hangups.event("Hangup", Channel=caller.channel)
    await no_agi.event("Hangup", Channel=caller.channel)
    assert added.name == "Success" and excluded.name == "Success"
    # "Hangup" must not let HangupRequest through: the regex ends at a non-letter.
    assert {m.name for m in hangups.messages if m.kind == "event"} == {"Newchannel", "Hangup"}
    assert not no_agi.events("AsyncAGIStart")
    assert no_agi.events("Newstate")
    await hangups.close()
    await no_agi.close()


async def test_an_action_outside_the_users_write_classes_is_permission_denied() -> None:
    async with make_pbx(ami_write="system,agi") as demo:
        client = await AMIClient.connect(demo.ami_port)
        await client.login()
        refused = await client.action("Setvar", ("Variable", "X"), ("Value", "1"))
        allowed = await client.action("Ping")
        await client.close()
    assert (refused.name, refused.get("Message")) == ("Error", "Permission denied")
    assert allowed.name == "Success"
    assert "X" not in demo.global_vars


async def test_filter_action_needs_the_system_write_class() -> None:
    async with make_pbx(ami_write="call,agi,originate") as demo:
        client = await AMIClient.connect(demo.ami_port)
        await client.login()
        refused = await client.action("Filter", ("Operation", "Add"), ("Filter", "Event: Hangup"))
        bad = await client.action("Filter", ("Operation", "Remove"), ("Filter", "x"))
        await client.close()
    assert (refused.name, refused.get("Message")) == ("Error", "Permission denied")
    assert bad.name == "Error"


async def test_dropped_and_frozen_ami_connections(async_pbx: DemoAsterisk) -> None:
    ami = await AMIClient.connect(async_pbx.ami_port)
    await ami.login()
    await async_pbx.drop_ami_connections()
    await asyncio.wait_for(ami.closed.wait(), 5)
    await ami.close()

    ami = await AMIClient.connect(async_pbx.ami_port)
    await ami.login()
    async_pbx.freeze_ami(True)
    ami.send([("Action", "Ping"), ("ActionID", "frozen")])
    await asyncio.sleep(0.1)
    assert not any(m.action_id == "frozen" for m in ami.messages)
    async_pbx.freeze_ami(False)
    await ami.wait(lambda: any(m.action_id == "frozen" for m in ami.messages))
    await ami.close()


# --------------------------------------------------------------------------- AsyncAGI


async def test_async_agi_runs_commands_queued_by_a_raw_ami_client(
    async_pbx: DemoAsterisk,
) -> None:
    ami = await AMIClient.connect(async_pbx.ami_port)
    await ami.login()
    caller = await async_pbx.call("800", caller_num="5551234", caller_name="Alice")
    start = await ami.event("AsyncAGIStart")
    env = AGIEnvironment.parse(decode_agi_field(start["Env"]))
    assert list(env.variables)[:3] == ["agi_request", "agi_channel", "agi_language"]
    assert env.request == "async"
    assert env.args == ("inbound?guard=20",)
    assert env.channel == caller.channel and env.callerid == "5551234"
    queued = await ami.action(
        "AGI",
        ("Channel", caller.channel),
        ("Command", "GET VARIABLE CALLERID(name)"),
        ("CommandID", "c1"),
    )
    assert queued["Message"] == "Added AGI command to queue"
    result = await ami.event("AsyncAGIExec", CommandId="c1")
    assert result["Result"] == "200%20result%3D1%20(Alice)%0A"
    # Two commands back to back: the caller hangs up during the first, the second is dropped.
    await ami.action(
        "AGI", ("Channel", caller.channel), ("Command", "STREAM FILE long \"\""),
        ("CommandID", "c2"),
    )  # fmt: skip
    await ami.action("AGI", ("Channel", caller.channel), ("Command", "NOOP"), ("CommandID", "c3"))
    await caller.wait_for_prompt("long")
    await caller.hangup()
    played = await ami.event("AsyncAGIExec", CommandId="c2")
    assert decode_agi_field(played["Result"]).startswith("200 result=-1 endpos=")
    await ami.event("AsyncAGIEnd", Channel=caller.channel)
    hangup = await ami.event("Hangup", Channel=caller.channel)
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("0", "Unknown")
    assert not ami.events("AsyncAGIExec")[2:], "the queued NOOP must be dropped"
    end = next(m for m in ami.events("AGIExecEnd") if m["Command"].startswith("STREAM"))
    assert (end["ResultCode"], end["Result"]) == ("-1", "Failure")
    late = await ami.action(
        "AGI", ("Channel", caller.channel), ("Command", "NOOP"), ("CommandID", "c4")
    )
    assert late["Message"] == f"Channel {caller.channel} does not exist."
    await ami.close()


async def test_an_asyncagi_caller_nobody_takes_hears_the_failover_when_the_guard_runs_out() -> None:
    """``TIMEOUT(absolute)`` ends ``AGI(agi:async)`` and the dialplan goes on at ``T``
    (pbx.c), where the shipped dialplan plays its failover."""
    async with make_pbx(agi_mode="async", failover_after=0.3) as demo:
        ami = await AMIClient.connect(demo.ami_port)
        await ami.login()
        caller = await demo.call("800", caller_num="5551234")
        await ami.event("AsyncAGIStart", Channel=caller.channel)
        await caller.wait_for_prompt("ss-noservice", timeout=3)
        await caller.wait_ended(timeout=3)
        await ami.event("AsyncAGIEnd", Channel=caller.channel)
        timeout_exten = await ami.event("Newexten", Channel=caller.channel, Extension="T")
        assert timeout_exten["Application"] == "Playback"
        assert caller.heard == ["ss-noservice"]
        await ami.close()


async def test_an_asyncagi_guard_cleared_over_ami_leaves_the_caller_with_whoever_took_them() -> (
    None
):
    async with make_pbx(agi_mode="async", failover_after=0.3) as demo:
        ami = await AMIClient.connect(demo.ami_port)
        await ami.login()
        caller = await demo.call("800", caller_num="5551234")
        await ami.event("AsyncAGIStart", Channel=caller.channel)
        cleared = await ami.action(
            "Setvar",
            ("Channel", caller.channel),
            ("Variable", "TIMEOUT(absolute)"),
            ("Value", "0"),
        )
        assert cleared["Response"] == "Success"
        await asyncio.sleep(0.6)
        assert caller.state == "up" and caller.heard == []
        assert not ami.events("AsyncAGIEnd")
        assert not [e for e in ami.events("VarSet") if e.get("Variable") == "TIMEOUT(absolute)"]
        await caller.hangup()
        await ami.close()


async def test_an_absolute_timeout_without_a_t_extension_hangs_the_channel_up() -> None:
    dialplan = DemoDialplan(
        {"800": [Answer(), Set("TIMEOUT(absolute)", "0.2"), Wait(5), Playback("never")]}
    )
    async with make_pbx(dialplan=dialplan) as demo:
        caller = await demo.call("800")
        await caller.wait_ended(timeout=3)
        assert caller.heard == [] and caller.applications == ["Answer", "Set", "Wait"]


async def test_async_prompt_durations_and_exec_dial(async_pbx: DemoAsterisk) -> None:
    async_pbx.prompt_durations["long"] = 30.0
    agent = async_pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05, hangup_after=0.1))
    ami = await AMIClient.connect(async_pbx.ami_port)
    await ami.login()
    caller = await async_pbx.call("800", caller_num="5551234")
    await ami.event("AsyncAGIStart")
    await ami.action(
        "AGI", ("Channel", caller.channel), ("Command", "EXEC Dial PJSIP/1001,5"),
        ("CommandID", "d"),
    )  # fmt: skip
    result = await ami.event("AsyncAGIExec", CommandId="d")
    assert decode_agi_field(result["Result"]) == "200 result=-1\n"
    end = next(m for m in ami.events("AGIExecEnd") if m["Command"].startswith("EXEC"))
    assert end["Result"] == "Unknown Result"
    assert agent.answered == 1 and agent.current_channel is None
    dial_end = await ami.event("DialEnd")
    assert dial_end["DialStatus"] == "ANSWER" and dial_end["DestChannel"].startswith("PJSIP/1001-")
    await ami.close()


async def test_async_agi_redirect_shows_the_new_place_in_asyncagiend(
    async_pbx: DemoAsterisk,
) -> None:
    async_pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.02))
    ami = await AMIClient.connect(async_pbx.ami_port)
    await ami.login()
    caller = await async_pbx.call("800")
    await ami.event("AsyncAGIStart")
    await ami.action(
        "Redirect", ("Channel", caller.channel), ("Context", "transfer"), ("Exten", "1001"),
        ("Priority", "1"),
    )  # fmt: skip
    end = await ami.event("AsyncAGIEnd", Channel=caller.channel)
    assert (end["Context"], end["Exten"], end["Priority"]) == ("transfer", "1001", "1")
    assert await caller.wait_bridged(5) == "PJSIP/1001"
    await caller.hangup()
    await caller.wait_ended(5)
    await ami.close()


async def test_chanspy_survives_an_ami_hangup_until_the_spied_call_ends(
    async_pbx: DemoAsterisk,
) -> None:
    async_pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.02))
    async_pbx.add_phone("PJSIP/2000", AgentPhone(answer_after=0.02))
    ami = await AMIClient.connect(async_pbx.ami_port)
    await ami.login()
    caller = await async_pbx.call("800")
    await ami.event("AsyncAGIStart")
    await ami.action(
        "AGI", ("Channel", caller.channel), ("Command", "EXEC Dial PJSIP/1001,20"),
        ("CommandID", "d"),
    )  # fmt: skip
    await caller.wait_bridged(5)
    await ami.action(
        "Originate", ("Channel", "PJSIP/2000"), ("Application", "ChanSpy"),
        ("Data", "PJSIP/1001,qE"), ("CallerID", '"Spy listen" <1900>'),
    )  # fmt: skip
    spy = (await ami.event("OriginateResponse"))["Channel"]
    start = await ami.event("ChanSpyStart")
    assert start["SpyerChannel"] == spy and start["SpyeeChannel"].startswith("PJSIP/1001-")
    assert (await ami.action("Hangup", ("Channel", spy)))["Message"] == "Channel Hungup"
    await asyncio.sleep(0.05)
    assert spy in async_pbx.channels and not ami.events("ChanSpyStop")
    await caller.hangup()
    await ami.event("ChanSpyStop")
    await ami.event("Hangup", Channel=spy)
    await ami.close()
    if TRACES.is_dir():
        assert {"ChanSpyStart", "ChanSpyStop"} <= assert_headers_like_real_asterisk(ami.messages)


# --------------------------------------------------------------------------- FastAGI


async def test_fastagi_server_receives_the_asterisk_environment_block(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    caller = await pbx.call("800", caller_num="5551234", caller_name="Alice")
    conn = await fastagi.accept()
    assert conn.env is not None
    keys = list(conn.env.variables)
    assert keys[:4] == ["agi_network", "agi_network_script", "agi_request", "agi_channel"]
    assert keys[-1] == "agi_threadid"
    assert conn.env.network_script == "inbound"
    assert conn.env.request == f"{fastagi.url}/inbound"
    assert conn.env.channel == caller.channel
    assert conn.env.uniqueid == caller.uniqueid
    assert (conn.env.callerid, conn.env.calleridname) == ("5551234", "Alice")
    assert (conn.env.extension, conn.env.context, conn.env.priority) == ("800", "from-callers", "2")
    assert conn.env.get("agi_accountcode") == ""
    assert (await conn.command("CHANNEL STATUS")).result == "6"
    assert (await conn.command("answer")).text == "200 result=0\n"
    assert (await conn.command("GET VARIABLE MYVAR")).text == "200 result=0\n"
    assert (await conn.command('SET VARIABLE MYVAR "hello world"')).text == "200 result=1\n"
    assert (await conn.command("GET VARIABLE MYVAR")).text == "200 result=1 (hello world)\n"
    assert (await conn.command("GET VARIABLE CALLERID(all)")).value == '"Alice" <5551234>'
    assert (await conn.command('STREAM FILE welcome ""')).text == "200 result=0 endpos=400\n"
    assert (await conn.command("FOO BAR")).text == "510 Invalid or unknown command\n"
    usage = await conn.command("WAIT FOR DIGIT abc")
    assert usage.code == 520 and usage.text.startswith("520-Invalid command syntax.  Proper")
    assert (await conn.command("EXEC NoSuchApp foo")).text == "200 result=-2\n"
    assert (await conn.command("HANGUP")).text == "200 result=1\n"
    assert isinstance(await conn.next(), AGIHangup)
    conn.close()
    await caller.wait_ended(5)
    assert caller.heard == ["welcome"]
    assert caller.hangup_cause == 0
    assert caller.variables["AGISTATUS"] == "HANGUP"


async def test_caller_hangup_mid_stream_file_gives_minus_one_then_hangup(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    pbx.prompt_durations["demo-instruct"] = 73.0
    caller = await pbx.call("800", caller_num="5551234")
    conn = await fastagi.accept()
    conn.writer.write(encode_command("STREAM FILE", "demo-instruct", ""))
    await caller.wait_for_prompt("demo-instruct")
    await asyncio.sleep(0.05)
    await caller.hangup()
    result = await conn.next()
    assert isinstance(result, AGIResult) and result.result == "-1"
    assert int(result.data["endpos"]) > 0
    assert isinstance(await conn.next(), AGIHangup)
    assert (await conn.command('STREAM FILE beep ""')).code == 511
    assert (await conn.command("CHANNEL STATUS")).text == (
        "511 Command Not Permitted on a dead channel or intercept routine\n"
    )
    assert (await conn.command("GET VARIABLE CALLERID(num)")).value == "5551234"
    assert (await conn.command("EXEC NoOp still-here")).text == "200 result=0\n"
    assert conn.hangups == 0
    assert caller.state != "ended", "the channel lives until the AGI server closes"
    conn.close()
    await caller.wait_ended(5)


async def test_caller_hangup_while_idle_sends_an_unsolicited_hangup(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    await caller.hangup()
    assert isinstance(await conn.next(), AGIHangup)
    conn.close()
    await caller.wait_ended(5)
    with pytest.raises(CallHungUp):
        await caller.press("1")


async def test_get_data_collects_digits_and_reports_timeouts(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    pbx.prompt_durations["menu"] = 5.0
    ami = await AMIClient.connect(pbx.ami_port)
    await ami.login(events="agi")
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    conn.writer.write(b"GET DATA menu 2000 3\n")
    await caller.wait_for_prompt("menu")
    await caller.press("123")
    assert (await conn.next()).text == "200 result=123\n"  # type: ignore[union-attr]
    conn.writer.write(b"GET DATA beep 100 4\n")
    await caller.wait_for_prompt("beep")
    await caller.press("12")
    assert (await conn.next()).text == "200 result=12 (timeout)\n"  # type: ignore[union-attr]
    assert (await conn.command("GET DATA beep 50 4")).text == "200 result= (timeout)\n"
    conn.writer.write(b"WAIT FOR DIGIT 2000\n")
    await ami.event("AGIExecStart", Command="WAIT FOR DIGIT 2000")
    await caller.press("4")
    assert (await conn.next()).text == "200 result=52\n"  # type: ignore[union-attr]
    assert (await conn.command("WAIT FOR DIGIT 30")).text == "200 result=0\n"
    conn.writer.write(b'STREAM FILE menu "0123456789#*"\n')
    await ami.event("AGIExecStart", Command='STREAM FILE menu "0123456789#*"')
    await caller.press("5")
    played = await conn.next()
    assert isinstance(played, AGIResult) and played.result == "53"
    assert 0 <= int(played.data["endpos"]) < 5 * 8000
    assert caller.variables["PLAYBACKSTATUS"] == "FAILED"
    conn.close()
    await caller.wait_ended(5)
    await ami.close()


async def test_a_new_command_aborts_a_playing_prompt_without_a_result(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    pbx.prompt_durations["demo-congrats"] = 30.0
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    conn.writer.write(b'STREAM FILE demo-congrats ""\n')
    await caller.wait_for_prompt("demo-congrats")
    assert (await conn.command("GET VARIABLE CALLERID(num)")).value == "5550100"
    conn.close()
    await caller.wait_ended(5)
    assert caller.variables["AGISTATUS"] == "SUCCESS"


async def test_dial_to_a_phone_that_never_answers_gives_noanswer_after_the_timeout(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=None))
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    began = time.monotonic()
    assert (await conn.command("EXEC Dial PJSIP/1001,1,m")).text == "200 result=0\n"
    assert 0.9 <= time.monotonic() - began < 3.0
    assert (await conn.command("GET VARIABLE DIALSTATUS")).value == "NOANSWER"
    assert (agent.rings, agent.answered, agent.current_channel) == (1, 0, None)
    assert caller.state == "up"
    await caller.wait_moh(1)
    dial_end = next(e for e in pbx.event_log if e.name == "DialEnd")
    assert dial_end.get("DialStatus") == "NOANSWER"
    assert pbx.device_states["PJSIP/1001"] == "NOT_INUSE"
    conn.close()
    await caller.wait_ended(5)


async def test_dial_options_are_letters_with_arguments_as_asterisk_reads_them(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    """``m(class)`` plays that class while ringing; an ``m`` inside another option's argument
    (``o(Sam)``) is no music option."""
    pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=None))
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    assert (await conn.command("EXEC Dial PJSIP/1001,1,o(Sam)")).text == "200 result=0\n"
    assert not [e for e in pbx.event_log if e.name == "MusicOnHoldStart"]
    assert (await conn.command("EXEC Dial PJSIP/1001,1,o(Sam)m(jazz)")).text == "200 result=0\n"
    music = [e.get("Class") for e in pbx.event_log if e.name == "MusicOnHoldStart"]
    assert music == ["jazz"]
    assert caller.applications[-2:] == ["Dial", "Dial"]
    conn.close()
    await caller.wait_ended(5)


async def test_busy_and_unregistered_devices(pbx: DemoAsterisk, fastagi: MiniFastAGI) -> None:
    pbx.add_phone("PJSIP/1001", AgentPhone(reject=True))
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    assert (await conn.command("EXEC Dial PJSIP/1001,5")).text == "200 result=0\n"
    assert (await conn.command("GET VARIABLE DIALSTATUS")).value == "BUSY"
    assert (await conn.command("EXEC Dial PJSIP/9999,5")).text == "200 result=0\n"
    assert (await conn.command("GET VARIABLE DIALSTATUS")).value == "CHANUNAVAIL"
    conn.close()
    await caller.wait_ended(5)


async def test_answered_dial_returns_minus_one_when_the_agent_hangs_up(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    agent = pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=0.05))
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    conn.writer.write(b"EXEC Dial PJSIP/1002,20\n")
    assert await caller.wait_bridged(5) == "PJSIP/1002"
    assert caller.state == "bridged" and agent.current_channel is not None
    await asyncio.sleep(0.05)
    await agent.hangup()
    assert (await conn.next()).text == "200 result=-1\n"  # type: ignore[union-attr]
    assert (await conn.command("GET VARIABLE DIALSTATUS")).value == "ANSWER"
    full = await conn.command('GET FULL VARIABLE "${DIALEDPEERNAME} ${HANGUPCAUSE}"')
    assert (
        full.value is not None
        and full.value.startswith("PJSIP/1002-")
        and full.value.endswith(" 16")
    )
    assert (await conn.command('STREAM FILE beep ""')).result == "0", "the session goes on"
    conn.close()
    await caller.wait_ended(5)


async def test_caller_hangup_during_bridge_ends_dial_then_hangup_notice(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    conn.writer.write(b"EXEC Dial PJSIP/1001,20\n")
    await caller.wait_bridged(5)
    await caller.hangup()
    assert (await conn.next()).text == "200 result=-1\n"  # type: ignore[union-attr]
    assert isinstance(await conn.next(), AGIHangup)
    await agent.wait_idle(5)
    conn.close()
    await caller.wait_ended(5)
    assert caller.hangup_cause == 16
    names = [e.name for e in caller.events]
    assert names.count("BridgeEnter") == 2 and names.count("BridgeLeave") == 2


async def test_redirect_ends_the_agi_and_the_caller_dials_the_transfer_target(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
    supervisor = pbx.add_phone("PJSIP/2000", AgentPhone(answer_after=0.05))
    caller = await pbx.call("800")
    conn = await fastagi.accept()
    conn.writer.write(b"EXEC Dial PJSIP/1001,20\n")
    await caller.wait_bridged(5)
    ami = await AMIClient.connect(pbx.ami_port)
    await ami.login()
    moved = await ami.action(
        "Redirect", ("Channel", caller.channel), ("Context", "transfer"), ("Exten", "2000"),
        ("Priority", "1"),
    )  # fmt: skip
    assert moved["Message"] == "Redirect successful"
    assert (await conn.next()).text == "200 result=0\n"  # type: ignore[union-attr]
    assert isinstance(await conn.next(), AGIHangup)
    conn.close()
    assert await caller.wait_bridged(5, device="PJSIP/2000") == "PJSIP/2000"
    assert supervisor.answered == 1
    await caller.hangup()
    await caller.wait_ended(5)
    await ami.close()


async def test_unreachable_fastagi_server_sets_agistatus_failure_and_hangs_up() -> None:
    async with make_pbx("agi://127.0.0.1:1") as pbx:
        caller = await pbx.call("800")
        await caller.wait_ended(5)
        assert caller.variables["AGISTATUS"] == "FAILURE"
        assert caller.hangup_cause == 16


async def test_originate_rings_the_agent_and_puts_it_in_the_dialplan(
    pbx: DemoAsterisk, fastagi: MiniFastAGI
) -> None:
    agent = pbx.add_phone("PJSIP/1001", AgentPhone(answer_after=0.05))
    ami = await AMIClient.connect(pbx.ami_port)
    await ami.login()
    queued = await ami.action(
        "Originate", ("Channel", "PJSIP/1001"), ("Context", "from-callers"), ("Exten", "800"),
        ("Priority", "1"), ("CallerID", '"Queue Call" <800>'), ("Async", "true"),
        ("Variable", "ORIG_FOR=test"),
    )  # fmt: skip
    assert queued["Message"] == "Originate successfully queued"
    response = await ami.event("OriginateResponse")
    assert response.kind == "event" and response["Response"] == "Success"
    assert response["Reason"] == "4" and response["Channel"].startswith("PJSIP/1001-")
    conn = await fastagi.accept()
    assert conn.env is not None and conn.env.channel == response["Channel"]
    assert (await conn.command("GET VARIABLE ORIG_FOR")).value == "test"
    channels = await ami.list_action("CoreShowChannels")
    assert [m["Channel"] for m in channels[:-1]] == [response["Channel"]]
    assert channels[-1]["ListItems"] == "1"
    assert channels[0]["Application"] == "AGI"
    hung = await ami.action("Hangup", ("Channel", response["Channel"]), ("Cause", "16"))
    assert hung["Message"] == "Channel Hungup"
    assert isinstance(await conn.next(), AGIHangup)
    conn.close()
    await ami.event("Hangup", Channel=response["Channel"])
    assert agent.answered == 1
    never = pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=None))
    await ami.action(
        "Originate", ("Channel", "PJSIP/1002"), ("Application", "Wait"), ("Data", "1"),
        ("Timeout", "100"),
    )  # fmt: skip
    failed = await ami.event("OriginateResponse")
    assert (failed["Response"], failed["Reason"], failed["Channel"]) == (
        "Failure",
        "3",
        "PJSIP/1002",
    )
    assert never.rings == 1
    await ami.close()


async def test_custom_dialplan_runs_without_agi() -> None:
    dialplan = DemoDialplan({"_9XX": [NoOp("x"), Dial("PJSIP/${EXTEN}", 5), Hangup()]})
    async with make_pbx(dialplan=dialplan) as pbx:
        phone = pbx.add_phone("PJSIP/901", AgentPhone(answer_after=0.02, hangup_after=0.05))
        caller = await pbx.call("901")
        assert await caller.wait_bridged(5) == "PJSIP/901"
        await caller.wait_ended(5)
        assert phone.answered == 1 and caller.variables["DIALSTATUS"] == "ANSWER"


# --------------------------------------------------------------------------- model


def test_dialplan_patterns_prefer_exact_then_longest() -> None:
    plan = DemoDialplan(
        {"800": NoOp("exact"), "_8XX": NoOp("three"), "_X.": NoOp("any"), "_[1-3]!": NoOp("r")}
    )
    assert plan.lookup("from-callers", "800", 1) == NoOp("exact")
    assert plan.lookup("from-callers", "801", 1) == NoOp("three")
    assert plan.lookup("from-callers", "8012", 1) == NoOp("any")
    assert plan.lookup("from-callers", "2", 1) == NoOp("r")
    assert plan.lookup("from-callers", "800", 2) is None
    assert plan.lookup("elsewhere", "800", 1) is None


@given(st.lists(st.sampled_from(list(ChannelState)), max_size=6))
def test_channel_states_follow_the_transition_table(moves: list[ChannelState]) -> None:
    emitted: list[str] = []
    chan = Channel(
        name="PJSIP/1001-00000001", uniqueid="1.1", linkedid="1.1", caller_num="1001",
        caller_name="", context="c", exten="s", state=ChannelState.DOWN,
        emit=lambda name, _p, _h: emitted.append(name), global_vars={},
    )  # fmt: skip
    allowed = {
        ChannelState.DOWN: {ChannelState.RINGING, ChannelState.UP, ChannelState.BUSY},
        ChannelState.RINGING: {ChannelState.UP, ChannelState.BUSY},
    }
    for move in moves:
        before = chan.state
        if move == before:
            assert chan.set_state(move) is False
        elif move in allowed.get(before, set()):
            assert chan.set_state(move) is True
            assert emitted[-1] == "Newstate"
        else:
            with pytest.raises(IllegalTransition):
                chan.set_state(move)
            assert chan.state == before
