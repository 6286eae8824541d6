"""The PBX side of the benchmarks, run as its own process so it does not share the daemon's core.

    python benchmarks/pbx_side.py demo --agi fastagi --prompt-seconds 0.01
    python benchmarks/pbx_side.py demo --pbx freeswitch --mode inbound --prompt-seconds 0.01
    python benchmarks/pbx_side.py bare
    python benchmarks/pbx_side.py replay --trace PATH --repeat 5
    python benchmarks/pbx_side.py eslreplay --trace PATH --repeat 3

The benchmark scripts start it with :class:`PBXProcess` and talk JSON lines: the child prints
``{"ready": ROLE, "ami_port": N, ...}`` first, then reads one command per stdin line and
prints one JSON line per answer or progress marker.

Roles:

* ``demo``: the demo Asterisk (:mod:`callcenter.demopbx`, real AMI server + FastAGI client or
  AsyncAGI over AMI) placing calls: ``concurrent`` keeps N calls up until T are done;
  ``ramp`` offers R new calls/s per stage, the caller pressing 1 in the IVR menu;
  ``wait`` has N callers wait in the queue's music until ``release``, ``music`` counts those
  who hear it (``queue_wait.py``). With
  ``--pbx freeswitch`` the demo FreeSWITCH (:class:`~callcenter.demopbx.freeswitch.
  DemoFreeSwitch`, real ESL server; ``--mode inbound`` parks the calls, ``outbound`` runs
  the ``socket`` application) does the same; it prints ``esl_port`` instead of ``ami_port``
  and takes ``socket_address`` (where the daemon's outbound-socket server listens).
* ``bare``: the floor. A minimal asyncio stand-in for Asterisk with no parsing beyond
  splitting lines/blocks: an AMI server (Login, Ping, CoreShowChannels, AGI) that runs
  AsyncAGI sessions, or a FastAGI client; every AGI command is answered at once.
* ``replay``: the ``in`` side of a recorded AMI trace (banner, login response, every event,
  ``repeat`` times) written at full speed with blocking sockets, then an ``Event: BenchEnd``
  sentinel. The blast starts when the client sends ``Action: Ping``.
* ``eslreplay``: the ``in`` side of a recorded ESL trace (``i_load.full.jsonl.xz``): the
  recorded ``auth/request`` and command replies for the client's ``auth`` and ``event plain
  ...``, then every event the client subscribed to (all of them for ``ALL``) and the
  recorded ``api/response`` answers to the recorder's polling, ``repeat`` times, written at
  full speed with blocking sockets. The client first sends the polls (``api show calls
  count``, :data:`ESL_POLLS_PER_PASS` per pass: their answers sit in the stream where they were
  recorded), then ``api bench go``; the blast follows, and the answer to the go command
  (``+OK bench done ...``) comes last, after every event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import lzma
import math
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter.demopbx import AgentPhone, DemoAsterisk
from callcenter.demopbx.freeswitch import DemoFreeSwitch
from callcenter.demopbx.fs_phones import AgentPhone as FSAgentPhone
from callcenter.errors import CallHungUp, ESLProtocolError
from callcenter.log import configure_logging
from callcenter.protocols.agi import AGIEnvironment
from callcenter.protocols.ami import encode_agi_field
from callcenter.protocols.esl import (
    ESLCommandParser,
    encode_api_response,
    encode_disconnect_notice,
    encode_reply,
)
from callcenter.testing import DEMO_ESL_PASSWORD, DEMO_SECRET

HERE = Path(__file__).resolve().parent
SENTINEL = b"Event: BenchEnd\r\nPrivilege: user,all\r\n\r\n"


def say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


# ---------------------------------------------------------------------------------------------
# Parent side


class PBXProcess:
    """A running ``pbx_side.py`` child: ``await start()``, ``send(cmd)``, ``await receive()``."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    async def start(self, timeout: float = 20.0) -> dict[str, Any]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "pbx_side.py"),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        self.ready = await self.receive(timeout)
        return self.ready

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def receive(self, timeout: float | None = 60.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"pbx_side {self.args[0]} exited (rc={await self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def request(self, cmd: dict[str, Any], timeout: float | None = 60.0) -> dict[str, Any]:
        self.send(cmd)
        return await self.receive(timeout)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            self.send({"cmd": "quit"})
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def __aenter__(self) -> PBXProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _commands() -> Any:
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield json.loads(line)


# ---------------------------------------------------------------------------------------------
# demo: the demo Asterisk placing calls


class _Calls:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.setup: list[float] = []


async def _one_call(pbx: Any, n: int, script: str, stats: _Calls, limit: float) -> None:
    started = time.monotonic()
    caller = None
    try:
        caller = await pbx.call("800", caller_num=f"555{n:07d}")
        if script == "ivr":
            await caller.wait_for_prompt("welcome-menu", timeout=limit)
            await caller.press("1")
            await caller.wait_bridged(timeout=limit)
            stats.setup.append(time.monotonic() - started)
        await caller.wait_ended(timeout=limit)
        stats.ok += 1
    except (TimeoutError, CallHungUp):
        stats.failed += 1
        if caller is not None:
            with contextlib.suppress(Exception):
                await caller.hangup()


async def _concurrent(pbx: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    total, concurrency = int(cmd["calls"]), int(cmd["concurrency"])
    script, limit = cmd.get("script", "plain"), float(cmd.get("call_timeout", 30))
    stats = _Calls()
    numbers = iter(range(total))
    cpu0, t0 = time.process_time(), time.monotonic()

    async def worker() -> None:
        for n in numbers:
            await _one_call(pbx, n, script, stats, limit)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "event": "done",
        "ok": stats.ok,
        "failed": stats.failed,
        "seconds": time.monotonic() - t0,
        "cpu": time.process_time() - cpu0,
    }


async def _ramp(pbx: Any, cmd: dict[str, Any]) -> None:
    script, limit = cmd.get("script", "ivr"), float(cmd.get("call_timeout", 10))
    drain = float(cmd.get("drain", 5))
    loop = asyncio.get_running_loop()
    serial = 0
    for index, (rate, seconds) in enumerate(cmd["stages"]):
        stats = _Calls()
        tasks: set[asyncio.Task[None]] = set()
        count = int(rate * seconds)
        say({"event": "stage_start", "stage": index, "rate": rate})
        cpu0, start = time.process_time(), loop.time()
        late = 0.0
        for k in range(count):
            delay = start + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            tasks.add(asyncio.create_task(_one_call(pbx, serial, script, stats, limit)))
            serial += 1
        launched_in = loop.time() - start
        rest = start + seconds - loop.time()
        if rest > 0:
            await asyncio.sleep(rest)
        say({"event": "stage_launched", "stage": index, "launched": count, "in": launched_in})
        if tasks:
            await asyncio.wait(tasks, timeout=drain)
        unfinished = sum(1 for t in tasks if not t.done())
        for task in tasks:
            task.cancel()
        say(
            {
                "event": "stage_end",
                "stage": index,
                "rate": rate,
                "launched": count,
                "launch_seconds": launched_in,
                "max_late": late,
                "ok": stats.ok,
                "failed": stats.failed + unfinished,
                "setup_p50": percentile(stats.setup, 50),
                "setup_p99": percentile(stats.setup, 99),
                "cpu": time.process_time() - cpu0,
                "seconds": loop.time() - start,
            }
        )
    say({"event": "ramp_done"})


async def _wait(
    pbx: Any, cmd: dict[str, Any], release: asyncio.Event, callers: list[Any]
) -> dict[str, Any]:
    """``wait``: ``calls`` callers (kept in ``callers``) choose sales (1) and wait in its
    music; once all hear it, ``{"event": "waiting"}``; at ``release`` they hang up."""
    count, limit = int(cmd["calls"]), float(cmd.get("call_timeout", 20))
    callers.clear()

    async def one(n: int) -> None:
        caller = await pbx.call("800", caller_num=f"556{n:07d}")
        callers.append(caller)
        await caller.wait_for_prompt("welcome-menu", timeout=limit)
        await caller.press("1")
        await caller.wait_moh(timeout=limit)

    await asyncio.gather(*(one(n) for n in range(count)))
    say({"event": "waiting", "calls": len(callers)})
    await release.wait()
    for caller in callers:
        with contextlib.suppress(Exception):
            await caller.hangup()
    return {"event": "released"}


async def demo_role(args: argparse.Namespace) -> None:
    pbx: Any
    if args.pbx == "freeswitch":
        pbx = DemoFreeSwitch(
            password=DEMO_ESL_PASSWORD,
            prompt_seconds=args.prompt_seconds,
            mode=args.mode,
            heartbeat_interval=20.0,
        )
        await pbx.start()
        say({"ready": "demo", "pbx": "freeswitch", "esl_port": pbx.esl_port})
    else:
        pbx = DemoAsterisk(
            agi_mode=args.agi,
            ami_secret=DEMO_SECRET,
            prompt_seconds=args.prompt_seconds,
            login_failure_delay=0.05,
        )
        await pbx.start()
        say({"ready": "demo", "pbx": "asterisk", "ami_port": pbx.ami_port})
    phone_class: Any = FSAgentPhone if args.pbx == "freeswitch" else AgentPhone
    release = asyncio.Event()
    waiting: asyncio.Task[None] | None = None
    callers: list[Any] = []

    async def wait_then_say(cmd: dict[str, Any]) -> None:
        say(await _wait(pbx, cmd, release, callers))

    try:
        async for cmd in _commands():
            kind = cmd["cmd"]
            if kind == "quit":
                break
            if kind == "wait":
                release.clear()
                waiting = asyncio.create_task(wait_then_say(cmd))
                continue
            if kind == "music":
                say({"ok": kind, "hearing_music": sum(1 for c in callers if c.hearing_music)})
                continue
            if kind == "release":
                release.set()
                if waiting is not None:
                    await waiting
                continue
            if kind == "agi_url":
                pbx.set_agi_url(cmd["url"])
                say({"ok": kind})
            elif kind == "socket_address":
                pbx.set_socket_address(cmd["host"], int(cmd["port"]))
                say({"ok": kind})
            elif kind == "phones":
                for device in cmd["devices"]:
                    phone = phone_class(
                        answer_after=cmd.get("answer_after", 0.0),
                        hangup_after=cmd.get("hangup_after"),
                    )
                    pbx.add_phone(device, phone)
                say({"ok": kind, "phones": len(cmd["devices"])})
            elif kind == "concurrent":
                say(await _concurrent(pbx, cmd))
            elif kind == "ramp":
                await _ramp(pbx, cmd)
            else:
                say({"error": f"unknown command {kind}"})
    finally:
        await pbx.stop()


# ---------------------------------------------------------------------------------------------
# bare: the floor (no parsing beyond splitting, answers at once)


def bare_environment(channel: str, uniqueid: str, *, fast: bool, port: int = 0) -> AGIEnvironment:
    """An environment block shaped like Asterisk's (see the fastagi trace README)."""
    variables = {"agi_network": "yes", "agi_network_script": "inbound"} if fast else {}
    request = f"agi://127.0.0.1:{port}/inbound" if fast else "async"
    variables.update(
        {
            "agi_request": request,
            "agi_channel": channel,
            "agi_language": "en",
            "agi_type": "PJSIP",
            "agi_uniqueid": uniqueid,
            "agi_version": "22.10.1",
            "agi_callerid": "5550100",
            "agi_calleridname": "Bench",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": "800",
            "agi_rdnis": "unknown",
            "agi_context": "from-callers",
            "agi_extension": "800",
            "agi_priority": "2",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": "140000000000000",
        }
    )
    return AGIEnvironment(variables, () if fast else ("inbound",))


def bare_result(command: bytes) -> bytes:
    """What the bare PBX answers to an AGI command line."""
    verb = command.lstrip().upper()
    if verb.startswith(b"GET VARIABLE") or verb.startswith(b"GET FULL VARIABLE"):
        return b"200 result=1 (bench)\n"
    if verb.startswith(b"SET VARIABLE") or verb.startswith(b"HANGUP"):
        return b"200 result=1\n"
    return b"200 result=0\n"


class _BareFastAGIClient(asyncio.Protocol):
    """Asterisk's side of one FastAGI connection: env block, then one answer per line."""

    def __init__(self, env: bytes, done: asyncio.Future[None]) -> None:
        self.env = env
        self.done = done
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self.env)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        out = b""
        for line in lines:
            out += bare_result(line)
            if line.upper().startswith(b"HANGUP"):
                out += b"HANGUP\n"
        if out:
            self.transport.write(out)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _BareAMIServer(asyncio.Protocol):
    """One AMI connection of the bare PBX: Login, Ping, CoreShowChannels and AsyncAGI."""

    def __init__(self, owner: _BarePBX) -> None:
        self.owner = owner
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(b"Asterisk Call Manager/11.0.0\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        *blocks, self.buf = self.buf.split(b"\r\n\r\n")
        out: list[bytes] = []
        for block in blocks:
            fields: dict[bytes, bytes] = {}
            for line in block.split(b"\r\n"):
                key, _, value = line.partition(b": ")
                fields.setdefault(key.lower(), value)
            self.owner.action(self, fields, out)
        if out:
            self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.clients.discard(self)


class _BarePBX:
    """The bare stand-in: one AMI server; runs FastAGI or AsyncAGI sessions on request."""

    def __init__(self) -> None:
        self.clients: set[_BareAMIServer] = set()
        self.sessions: dict[bytes, tuple[asyncio.Future[None], bytes]] = {}
        self.serial = 0

    def action(self, conn: _BareAMIServer, fields: dict[bytes, bytes], out: list[bytes]) -> None:
        name = fields.get(b"action", b"").lower()
        aid = b"ActionID: " + fields.get(b"actionid", b"") + b"\r\n"
        if name == b"login":
            self.clients.add(conn)
            out.append(b"Response: Success\r\n" + aid + b"Message: Authentication accepted\r\n\r\n")
        elif name == b"ping":
            out.append(b"Response: Success\r\n" + aid + b"Ping: Pong\r\nTimestamp: 0\r\n\r\n")
        elif name == b"coreshowchannels":
            out.append(b"Response: Success\r\n" + aid + b"EventList: start\r\n\r\n")
            out.append(
                b"Event: CoreShowChannelsComplete\r\n" + aid + b"EventList: Complete\r\n"
                b"ListItems: 0\r\n\r\n"
            )
        elif name == b"agi":
            channel = fields.get(b"channel", b"")
            command = fields.get(b"command", b"")
            session = self.sessions.get(channel)
            if session is None:
                out.append(
                    b"Response: Error\r\n" + aid + b"Message: Channel does not exist.\r\n\r\n"
                )
                return
            out.append(
                b"Response: Success\r\n" + aid + b"Message: Added AGI command to queue\r\n\r\n"
            )
            result = encode_agi_field(bare_result(command).decode()).encode()
            chan = b"Channel: " + channel + b"\r\n"
            cid = b"CommandId: " + fields.get(b"commandid", b"") + b"\r\n"
            out.append(b"Event: AsyncAGIExec\r\nPrivilege: agi,all\r\n" + chan + cid)
            out.append(b"Result: " + result + b"\r\n\r\n")
            verb = command.upper()
            if verb.startswith(b"HANGUP") or verb.startswith(b"ASYNCAGI BREAK"):
                out.append(b"Event: AsyncAGIEnd\r\nPrivilege: agi,all\r\n" + chan + b"\r\n")
                future, uniqueid = session
                uid = b"Uniqueid: " + uniqueid + b"\r\n"
                out.append(b"Event: Hangup\r\nPrivilege: call,all\r\n" + chan + uid)
                out.append(b"Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n")
                del self.sessions[channel]
                if not future.done():
                    future.set_result(None)
        elif name == b"logoff":
            out.append(b"Response: Goodbye\r\n" + aid + b"\r\n")
        else:
            out.append(b"Response: Success\r\n" + aid + b"\r\n")

    async def async_session(self) -> None:
        self.serial += 1
        channel = f"PJSIP/bench-{self.serial:08x}"
        uniqueid = f"1800000000.{self.serial}"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sessions[channel.encode()] = (future, uniqueid.encode())
        env = encode_agi_field(bare_environment(channel, uniqueid, fast=False).to_text())
        event = (
            "Event: AsyncAGIStart\r\nPrivilege: agi,all\r\n"
            f"Channel: {channel}\r\nUniqueid: {uniqueid}\r\nLinkedid: {uniqueid}\r\n"
            f"Context: from-callers\r\nExten: 800\r\nPriority: 2\r\nEnv: {env}\r\n\r\n"
        ).encode()
        for client in list(self.clients):
            assert client.transport is not None
            client.transport.write(event)
        await future

    async def fast_session(self, port: int) -> None:
        self.serial += 1
        uniqueid = f"1800000000.{self.serial}"
        env = bare_environment(f"PJSIP/bench-{self.serial:08x}", uniqueid, fast=True, port=port)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(
            lambda: _BareFastAGIClient(env.encode(), done), "127.0.0.1", port
        )
        await done

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        total, concurrency = int(cmd["calls"]), int(cmd["concurrency"])
        port = int(cmd.get("agi_port", 0))
        numbers = iter(range(total))
        cpu0, t0 = time.process_time(), time.monotonic()

        async def worker() -> None:
            for _ in numbers:
                if cmd["mode"] == "fastagi":
                    await self.fast_session(port)
                else:
                    await self.async_session()

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 120)
        return {
            "event": "done",
            "ok": total,
            "failed": 0,
            "seconds": time.monotonic() - t0,
            "cpu": time.process_time() - cpu0,
        }


async def bare_role(args: argparse.Namespace) -> None:
    pbx = _BarePBX()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _BareAMIServer(pbx), "127.0.0.1", 0)
    say({"ready": "bare", "ami_port": server.sockets[0].getsockname()[1]})
    async for cmd in _commands():
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "run":
            say(await pbx.run(cmd))
        else:
            say({"ok": cmd["cmd"]})
    server.close()


# ---------------------------------------------------------------------------------------------
# replay: a recorded AMI "in" stream at full speed


def load_trace(path: Path) -> list[dict[str, Any]]:
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def replay_parts(path: Path) -> tuple[bytes, bytes, list[bytes]]:
    """Banner, login response and every event of the first connection's ``in`` side."""
    records = [r for r in load_trace(path) if r.get("dir") == "in" and "data" in r]
    conn = records[0]["conn"]
    records = [r for r in records if r["conn"] == conn]
    banner = records[0]["data"].encode()
    login = next(r["data"] for r in records if r["data"].startswith("Response:")).encode()
    events = [r["data"].encode() for r in records if r["data"].startswith("Event:")]
    return banner, login, events


def _replay_connection(
    sock: socket.socket, parts: tuple[bytes, bytes, list[bytes]], repeat: int
) -> None:
    banner, login, events = parts
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for _ in range(repeat):
        for event in events:
            current.append(event)
            size += len(event)
            if size >= 65536:
                chunks.append(b"".join(current))
                current, size = [], 0
    current.append(SENTINEL)
    chunks.append(b"".join(current))
    replies: queue.Queue[bytes | None] = queue.Queue()
    go = threading.Event()

    def reader() -> None:
        buf = b""
        try:
            while data := sock.recv(65536):
                buf += data
                *blocks, buf = buf.split(b"\r\n\r\n")
                for block in blocks:
                    fields: dict[bytes, bytes] = {}
                    for line in block.split(b"\r\n"):
                        key, _, value = line.partition(b": ")
                        fields.setdefault(key.lower(), value)
                    name = fields.get(b"action", b"").lower()
                    aid = fields.get(b"actionid", b"")
                    if name == b"login":
                        head, _, rest = login.partition(b"\r\n")
                        lines = [
                            b"ActionID: " + aid if ln.lower().startswith(b"actionid:") else ln
                            for ln in rest.split(b"\r\n")
                        ]
                        replies.put(head + b"\r\n" + b"\r\n".join(lines))
                    elif name == b"ping":
                        replies.put(
                            b"Response: Success\r\nActionID: " + aid + b"\r\nPing: Pong\r\n\r\n"
                        )
                        go.set()
                    elif name == b"coreshowchannels":
                        aid_line = b"ActionID: " + aid + b"\r\n"
                        replies.put(
                            b"Response: Success\r\n" + aid_line + b"EventList: start\r\n\r\n"
                            b"Event: CoreShowChannelsComplete\r\n"
                            + aid_line
                            + b"EventList: Complete\r\nListItems: 0\r\n\r\n"
                        )
                    else:
                        replies.put(b"Response: Success\r\nActionID: " + aid + b"\r\n\r\n")
        except OSError:
            pass
        replies.put(None)
        go.set()

    def flush(block: bool) -> bool:
        while True:
            try:
                item = replies.get(block, 0.05 if block else 0)
            except queue.Empty:
                return True
            if item is None:
                return False
            sock.sendall(item)
            block = False

    threading.Thread(target=reader, daemon=True).start()
    try:
        sock.sendall(banner)
        while not go.is_set():
            if not flush(True):
                return
        flush(False)
        for chunk in chunks:
            if not flush(False):
                return
            sock.sendall(chunk)
        while flush(True):
            pass
    except OSError:
        pass
    finally:
        sock.close()


async def replay_role(args: argparse.Namespace) -> None:
    path = Path(args.trace)
    parts = replay_parts(path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=_replay_connection, args=(sock, parts, args.repeat), daemon=True
            ).start()

    threading.Thread(target=accept, daemon=True).start()
    say(
        {
            "ready": "replay",
            "ami_port": port,
            "events": len(parts[2]) * args.repeat,
            "blast_bytes": sum(len(e) for e in parts[2]) * args.repeat + len(SENTINEL),
        }
    )
    async for cmd in _commands():
        if cmd["cmd"] == "quit":
            break
    listener.close()


# ---------------------------------------------------------------------------------------------
# eslreplay: a recorded FreeSWITCH ESL "in" stream at full speed

#: The answers to the recorder's ``api show calls count`` polling in one pass of ``i_load``.
ESL_POLLS_PER_PASS = 20
ESL_POLL = "show calls count"
ESL_GO = "bench go"
ESL_DONE = b"+OK bench done\n"


@dataclass(frozen=True)
class ESLTrace:
    """The ``in`` side of the first connection of an ESL trace, cut into messages."""

    auth_request: bytes
    auth_reply: bytes
    event_reply: bytes
    items: list[tuple[float, str, bytes]]
    """(t, event name or ``""`` for an api/response, exact bytes) of everything after the
    handshake, in wire order (the final disconnect notice left out)."""

    def blast(self, names: frozenset[str] | None) -> list[tuple[float, str, bytes]]:
        """The items a client subscribed to ``names`` (None: ``ALL``) receives."""
        return [i for i in self.items if not i[1] or names is None or i[1] in names]


def _event_name(data: bytes) -> str:
    """``Event-Name`` of a plain event message (the first line of its outer body)."""
    start = data.find(b"\n\nEvent-Name: ")
    if start < 0:
        return "?"
    start += len(b"\n\nEvent-Name: ")
    return data[start : data.find(b"\n", start)].decode()


def load_esl_trace(path: Path) -> ESLTrace:
    opener: Callable[..., Any] = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    conn = records[0]["conn"]
    records = [r for r in records if r["conn"] == conn and r["dir"] == "in"]
    head = [r["data"].encode() for r in records[:3]]
    if not (head[0].startswith(b"Content-Type: auth/request") and b"+OK" in head[1]):
        raise ValueError(f"{path}: does not start with auth/request and the auth reply")
    items: list[tuple[float, str, bytes]] = []
    for record in records[3:]:
        data = record["data"].encode()
        if b"Content-Type: text/event-plain" in data.partition(b"\n\n")[0]:
            items.append((float(record["t"]), _event_name(data), data))
        elif data.startswith(b"Content-Type: api/response"):
            items.append((float(record["t"]), "", data))
    return ESLTrace(head[0], head[1], head[2], items)


def _esl_replay_connection(sock: socket.socket, trace: ESLTrace, repeat: int) -> None:
    """One client: answer the handshake from the recording, then blast on ``api bench go``."""
    replies: queue.Queue[bytes | None] = queue.Queue()
    go: queue.Queue[tuple[frozenset[str] | None, int]] = queue.Queue()
    state: dict[str, Any] = {"names": None, "polls": 0}

    def reader() -> None:
        parser = ESLCommandParser()
        try:
            while data := sock.recv(65536):
                for command in parser.feed(data):
                    name, arg = command.name, command.args
                    if name == "auth":
                        replies.put(trace.auth_reply)
                    elif name == "event":
                        words = arg.split()[1:]
                        state["names"] = None if "ALL" in words else frozenset(words)
                        replies.put(trace.event_reply)
                    elif name == "api" and arg == ESL_POLL:
                        state["polls"] += 1  # answered by the recorded replies in the blast
                    elif name == "api" and arg == ESL_GO:
                        go.put((state["names"], state["polls"]))
                        state["polls"] = 0
                    elif name == "api" and arg.startswith("show ") and arg.endswith(" as json"):
                        replies.put(encode_api_response('{"row_count":0}\n'))
                    elif name == "api":
                        replies.put(encode_api_response("+OK\n"))
                    elif name == "exit":
                        replies.put(encode_reply("+OK bye") + encode_disconnect_notice())
                        break
                    else:
                        replies.put(encode_reply("+OK"))
        except (OSError, ESLProtocolError):
            pass
        replies.put(None)
        go.put((None, -1))

    def flush() -> bool:
        while True:
            try:
                item = replies.get_nowait()
            except queue.Empty:
                return True
            if item is None:
                return False
            sock.sendall(item)

    blobs: dict[frozenset[str] | None, tuple[bytes, int, int]] = {}
    threading.Thread(target=reader, daemon=True).start()
    try:
        sock.sendall(trace.auth_request)
        while True:
            try:
                names, polls = go.get(timeout=0.02)
            except queue.Empty:
                if not flush():
                    return
                continue
            if polls < 0 or not flush():
                return
            if names not in blobs:
                items = trace.blast(names)
                blob = b"".join(data for _, _, data in items)
                blobs[names] = (blob, sum(1 for i in items if i[1]), len(items))
            blob, events, messages = blobs[names]
            answers = (messages - events) * repeat
            if polls != answers:
                sys.stderr.write(f"eslreplay: {polls} polls for {answers} recorded answers\n")
            view = memoryview(blob)
            for _ in range(repeat):
                for start in range(0, len(view), 65536):
                    sock.sendall(view[start : start + 65536])
            sock.sendall(
                encode_api_response(
                    ESL_DONE.rstrip(b"\n")
                    + b" events=%d bytes=%d\n" % (events * repeat, len(blob) * repeat)
                )
            )
    except OSError:
        pass
    finally:
        sock.close()


async def eslreplay_role(args: argparse.Namespace) -> None:
    trace = load_esl_trace(Path(args.trace))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=_esl_replay_connection, args=(sock, trace, args.repeat), daemon=True
            ).start()

    threading.Thread(target=accept, daemon=True).start()
    say({"ready": "eslreplay", "esl_port": port, "polls_per_pass": ESL_POLLS_PER_PASS})
    async for cmd in _commands():
        if cmd["cmd"] == "quit":
            break
    listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    demo = sub.add_parser("demo")
    demo.add_argument("--pbx", choices=["asterisk", "freeswitch"], default="asterisk")
    demo.add_argument("--agi", choices=["fastagi", "async"], default="fastagi")
    demo.add_argument("--mode", choices=["inbound", "outbound"], default="inbound")
    demo.add_argument("--prompt-seconds", type=float, default=0.01)
    sub.add_parser("bare")
    replay = sub.add_parser("replay")
    replay.add_argument("--trace", required=True)
    replay.add_argument("--repeat", type=int, default=1)
    eslreplay = sub.add_parser("eslreplay")
    eslreplay.add_argument("--trace", required=True)
    eslreplay.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    configure_logging("warning", "json")
    roles = {
        "demo": demo_role,
        "bare": bare_role,
        "replay": replay_role,
        "eslreplay": eslreplay_role,
    }
    role = roles[args.role]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(role(args))


if __name__ == "__main__":
    main()
