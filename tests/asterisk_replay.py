"""Test doubles that replay real Asterisk traffic (shared/traces/asterisk) over real TCP.

* :class:`ReplayAMIServer` plays Asterisk's side of a recorded AMI conversation: it sends the
  recorded banner, and answers every action we send with the records that followed the
  matching recorded action (same action name, searched forward; for ``AGI`` the same
  ``Command`` when one is left), with the recorded ``ActionID``/``CommandId`` values rewritten
  to ours. Actions the recording lacks get a plausible answer (Pong, an empty list, an AGI
  result of ``200 result=0``) and are remembered in ``unmatched``.
* :class:`FastAGIReplayClient` plays Asterisk's side of a recorded FastAGI connection: it
  connects to our server, sends the recorded environment block and answers each command line
  with the records that followed the same recorded command.

Neither copies a trace into the repo: they read ``../shared/traces`` at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callcenter.protocols.agi import AGICommandParser, split_command
from callcenter.protocols.ami import AMIMessage, AMIParser, encode_agi_field

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "asterisk"
FASTAGI = TRACES / "fastagi"

Record = dict[str, Any]


def require_traces() -> None:
    if not TRACES.is_dir():
        pytest.skip(f"real Asterisk traces not found at {TRACES} (../shared is absent)")


def load(path: Path) -> list[Record]:
    """Every record of a JSONL trace (``.gz`` too)."""
    require_traces()
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def conn_records(records: list[Record], conn: int | None = None) -> list[Record]:
    """The records of one connection (the first one seen when ``conn`` is None)."""
    if conn is None:
        conn = next(r["conn"] for r in records if "conn" in r)
    return [r for r in records if r.get("conn") == conn and "data" in r]


def same_command(a: str, b: str) -> bool:
    """Two AGI command lines Asterisk would read alike (verb case and quoting aside)."""
    wa, wb = split_command(a.strip()), split_command(b.strip())
    return len(wa) == len(wb) and all(
        x == y or (i < 2 and x.upper() == y.upper())
        for i, (x, y) in enumerate(zip(wa, wb, strict=True))
    )


def _headers(data: str) -> AMIMessage:
    parser = AMIParser(expect_banner=False)
    msgs = [m for m in parser.feed(data.encode()) if isinstance(m, AMIMessage)]
    return msgs[0]


# --------------------------------------------------------------------------------------------
# AMI


@dataclass
class _Group:
    out: AMIMessage | None
    t_out: float
    replies: list[Record]
    used: bool = False


@dataclass
class AMIScript:
    """A recorded AMI conversation cut into groups: each recorded action and what followed."""

    banner: str
    groups: list[_Group]

    @classmethod
    def from_records(cls, records: list[Record]) -> AMIScript:
        banner = ""
        groups: list[_Group] = [_Group(None, 0.0, [])]
        for rec in records:
            if rec["dir"] == "in" and not banner and not rec["data"].endswith("\r\n\r\n"):
                banner = rec["data"]
            elif rec["dir"] == "out":
                groups.append(_Group(_headers(rec["data"]), rec["t"], []))
            else:
                groups[-1].replies.append(rec)
        return cls(banner or "Asterisk Call Manager/11.0.0\r\n", groups)

    def copy(self) -> AMIScript:
        return AMIScript(
            self.banner, [_Group(g.out, g.t_out, list(g.replies)) for g in self.groups]
        )


def script_of(*parts: tuple[list[Record], str, int]) -> AMIScript:
    """A script made of the recorded groups ``(records, action, nth)``: lets a test combine
    the login of one trace with, say, a CoreShowChannels answer of another."""
    base = AMIScript.from_records(parts[0][0])
    groups: list[_Group] = [_Group(None, 0.0, [])]
    for records, action, nth in parts:
        script = AMIScript.from_records(records)
        found = [
            g for g in script.groups if g.out is not None and g.out.name.lower() == action.lower()
        ]
        group = found[nth]
        groups.append(_Group(group.out, group.t_out, list(group.replies)))
    return AMIScript(base.banner, groups)


@dataclass
class AMIPeer:
    """One accepted connection of the fake AMI server."""

    index: int
    writer: asyncio.StreamWriter
    script: AMIScript
    received: list[AMIMessage] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    queue: asyncio.Queue[tuple[float, bytes | None]] = field(default_factory=asyncio.Queue)
    pos: int = 1
    channels: dict[str, AMIMessage] = field(default_factory=dict)
    """Channels this connection announced (Newchannel) and did not hang up yet."""

    def announce(self, data: str) -> None:
        if data.startswith(("Event: Newchannel\r\n", "Event: Hangup\r\n")):
            msg = _headers(data)
            name = msg.get("Channel") or ""
            if msg.name == "Newchannel":
                self.channels[name] = msg
            else:
                self.channels.pop(name, None)

    def rewrite(self, data: str) -> str:
        lines = data.split("\r\n")
        for i, line in enumerate(lines):
            key, sep, value = line.partition(": ")
            if sep and key.lower() in ("actionid", "commandid") and value in self.ids:
                lines[i] = f"{key}: {self.ids[value]}"
        return "\r\n".join(lines)


class ReplayAMIServer:
    """A fake Asterisk AMI server replaying recorded answers (see the module docstring)."""

    def __init__(
        self,
        script: AMIScript,
        *,
        reconnect_script: AMIScript | None = None,
        time_scale: float = 0.0,
        synthesize_agi_results: bool = True,
    ) -> None:
        self.script = script
        self.reconnect_script = reconnect_script
        self.time_scale = time_scale
        self.synthesize_agi_results = synthesize_agi_results
        self.peers: list[AMIPeer] = []
        self.unmatched: list[AMIMessage] = []
        self.hold: set[str] = set()
        """Action names (lower case) received but never answered."""
        self.mute = False
        """When True, nothing more is answered on any connection."""
        self.connected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_trace(cls, name: str, conn: int | None = None, **kw: Any) -> ReplayAMIServer:
        records = conn_records(load(TRACES / name), conn)
        return cls(AMIScript.from_records(records), **kw)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> ReplayAMIServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.peers:
            peer.writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def drop_all(self) -> None:
        """Cut every open connection (as a crashed or restarted Asterisk would)."""
        for peer in self.peers:
            peer.writer.transport.abort()

    def actions(self, peer: int) -> list[str]:
        return [m.name for m in self.peers[peer].received]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = not self.peers
        script = self.script if first or self.reconnect_script is None else self.reconnect_script
        peer = AMIPeer(len(self.peers), writer, script.copy())
        self.peers.append(peer)
        self.connected.set()
        self._spawn(self._writer(peer))
        peer.queue.put_nowait((0.0, peer.script.banner.encode()))
        self._send_group(peer, peer.script.groups[0])
        parser = AMIParser(expect_banner=False)
        try:
            while data := await reader.read(65536):
                for msg in parser.feed(data):
                    if isinstance(msg, AMIMessage):
                        peer.received.append(msg)
                        self._answer(peer, msg)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            peer.queue.put_nowait((0.0, None))

    async def _writer(self, peer: AMIPeer) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                delay, data = await peer.queue.get()
                if delay > 0:
                    await asyncio.sleep(delay)
                if data is None:
                    peer.writer.close()
                    return
                peer.writer.write(data)
                await peer.writer.drain()

    def _send_group(self, peer: AMIPeer, group: _Group, close_after: bool = False) -> None:
        t_prev = group.t_out
        for rec in group.replies:
            delay = max(0.0, rec["t"] - t_prev) * self.time_scale
            t_prev = rec["t"]
            peer.announce(rec["data"])
            peer.queue.put_nowait((delay, peer.rewrite(rec["data"]).encode()))
        if close_after:
            peer.queue.put_nowait((0.0, None))

    def _find(self, peer: AMIPeer, msg: AMIMessage) -> int | None:
        name = msg.name.lower()
        candidates = [
            i
            for i in range(peer.pos, len(peer.script.groups))
            if (out := peer.script.groups[i].out) is not None
            and not peer.script.groups[i].used
            and out.name.lower() == name
        ]
        if name == "agi":
            command = msg.get("Command") or ""
            same = [
                i
                for i in candidates
                if same_command(peer.script.groups[i].out.get("Command") or "", command)  # type: ignore[union-attr]
            ]
            return same[0] if same else None
        return candidates[0] if candidates else None

    def _answer(self, peer: AMIPeer, msg: AMIMessage) -> None:
        if self.mute or msg.name.lower() in self.hold:
            return
        index = self._find(peer, msg)
        if index is None:
            self.unmatched.append(msg)
            self._synthesize(peer, msg)
            return
        group = peer.script.groups[index]
        group.used = True
        peer.pos = index + 1 if msg.name.lower() != "agi" else peer.pos
        assert group.out is not None
        for key in ("ActionID", "CommandID"):
            recorded, ours = group.out.get(key), msg.get(key)
            if recorded is not None and ours is not None:
                peer.ids[recorded] = ours
        # Asterisk closes the socket after Logoff and after a refused Login.
        refused = any(r["data"].startswith("Response: Error") for r in group.replies)
        closes = msg.name.lower() == "logoff" or (msg.name.lower() == "login" and refused)
        self._send_group(peer, group, close_after=closes)

    def _synthesize(self, peer: AMIPeer, msg: AMIMessage) -> None:
        action_id = msg.action_id
        aid = f"ActionID: {action_id}\r\n" if action_id else ""
        name = msg.name.lower()
        if name == "ping":
            text = f"Response: Success\r\n{aid}Ping: Pong\r\nTimestamp: 1.0\r\n\r\n"
        elif name == "coreshowchannels":
            text = f"Response: Success\r\n{aid}EventList: start\r\nMessage: Channels follow\r\n\r\n"
            for chan in peer.channels.values():
                text += f"Event: CoreShowChannel\r\n{aid}"
                for key in ("Channel", "ChannelStateDesc", "CallerIDNum", "Context", "Exten"):
                    text += f"{key}: {chan.get(key) or ''}\r\n"
                text += (
                    f"Uniqueid: {chan.get('Uniqueid')}\r\nLinkedid: {chan.get('Linkedid')}\r\n"
                    "Application: AGI\r\nApplicationData: agi:async\r\nBridgeId: \r\n\r\n"
                )
            text += (
                f"Event: CoreShowChannelsComplete\r\n{aid}EventList: Complete\r\n"
                f"ListItems: {len(peer.channels)}\r\n\r\n"
            )
        elif name == "agi":
            text = f"Response: Success\r\n{aid}Message: Added AGI command to queue\r\n\r\n"
            command_id = msg.get("CommandID")
            if self.synthesize_agi_results and command_id:
                result = encode_agi_field("200 result=0\n")
                text += (
                    f"Event: AsyncAGIExec\r\nPrivilege: agi,all\r\n"
                    f"Channel: {msg.get('Channel')}\r\nResult: {result}\r\n"
                    f"CommandId: {command_id}\r\n\r\n"
                )
        else:
            text = f"Response: Success\r\n{aid}Message: OK (synthesized)\r\n\r\n"
        peer.queue.put_nowait((0.0, text.encode()))


# --------------------------------------------------------------------------------------------
# FastAGI


@dataclass
class _AGIGroup:
    command: str
    t: float
    replies: list[Record]
    used: bool = False


class FastAGIReplayClient:
    """Plays Asterisk's side of one recorded FastAGI connection against our server."""

    def __init__(
        self,
        records: list[Record],
        *,
        time_scale: float = 0.0,
        env_chunk: int | None = None,
        reply_chunk: int | None = None,
    ) -> None:
        self.env = ""
        self.groups: list[_AGIGroup] = []
        for rec in records:
            if rec["dir"] == "in" and not self.env and rec["data"].startswith("agi_"):
                self.env = rec["data"]
            elif rec["dir"] == "out":
                self.groups.append(_AGIGroup(rec["data"].rstrip("\n"), rec["t"], []))
            elif self.groups:
                self.groups[-1].replies.append(rec)
        self.groups = merge_dial_reads(self.groups)
        self.time_scale = time_scale
        self.env_chunk = env_chunk
        self.reply_chunk = reply_chunk
        self.commands: list[str] = []
        self.unmatched: list[str] = []
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    def from_trace(cls, name: str, conn: int = 1, **kw: Any) -> FastAGIReplayClient:
        return cls(conn_records(load(FASTAGI / name), conn), **kw)

    def start(self, port: int) -> None:
        self._task = asyncio.ensure_future(self._run(port))

    async def finish(self, within: float = 5.0) -> None:
        """Wait until our server closes the connection."""
        async with asyncio.timeout(within):
            await self.closed.wait()
        if self._task is not None:
            await self._task

    async def _write(self, data: bytes, chunk: int | None) -> None:
        assert self._writer is not None
        if not chunk:
            self._writer.write(data)
            await self._writer.drain()
            return
        for i in range(0, len(data), chunk):
            self._writer.write(data[i : i + chunk])
            await self._writer.drain()
            await asyncio.sleep(0.001)

    async def _run(self, port: int) -> None:
        reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await self._write(self.env.encode(), self.env_chunk)
            parser = AGICommandParser()
            while data := await reader.read(65536):
                for line in parser.feed(data):
                    self.commands.append(line)
                    await self._reply(line)
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            self._writer.close()

    async def _reply(self, line: str) -> None:
        group = next((g for g in self.groups if not g.used and same_command(g.command, line)), None)
        if group is None:
            self.unmatched.append(line)
            await self._write(b"510 Invalid or unknown command\n", None)
            return
        group.used = True
        t_prev = group.t
        for rec in group.replies:
            delay = max(0.0, rec["t"] - t_prev) * self.time_scale
            t_prev = rec["t"]
            if delay:
                await asyncio.sleep(delay)
            await self._write(rec["data"].encode(), self.reply_chunk)


#: The three reads after a Dial recorded in the FastAGI traces, and the one command the
#: driver now sends instead (driver._DIAL_OUTCOME).
_DIAL_READS = (
    "GET VARIABLE DIALSTATUS",
    "GET VARIABLE ANSWEREDTIME",
    'GET FULL VARIABLE "${DIALEDPEERNAME} ${HANGUPCAUSE}"',
)
DIAL_OUTCOME_COMMAND = (
    "GET FULL VARIABLE ${DIALSTATUS}|${ANSWEREDTIME}|${DIALEDPEERNAME}|${HANGUPCAUSE}"
)


def _recorded_value(group: _AGIGroup) -> str:
    """The ``(value)`` of a recorded ``200 result=1 (value)`` answer ("" for result=0)."""
    text = "".join(rec["data"] for rec in group.replies)
    line = next((ln for ln in text.split("\n") if ln.startswith("200 ")), "")
    if "result=1" not in line or "(" not in line:
        return ""
    return line[line.index("(") + 1 : line.rindex(")")]


def merge_dial_reads(groups: list[_AGIGroup]) -> list[_AGIGroup]:
    """Replace the recorded three reads after a Dial by the one read the driver sends now,
    answered with the values Asterisk recorded for the three."""
    out: list[_AGIGroup] = []
    i = 0
    while i < len(groups):
        window = groups[i : i + 3]
        if tuple(g.command for g in window) != _DIAL_READS:
            out.append(groups[i])
            i += 1
            continue
        status, answered, peer_and_cause = (_recorded_value(g) for g in window)
        peer, _, cause = peer_and_cause.rpartition(" ")
        first = window[0].replies[0] if window[0].replies else {"t": window[0].t}
        reply = {**first, "data": f"200 result=1 ({status}|{answered}|{peer}|{cause})\n"}
        out.append(_AGIGroup(DIAL_OUTCOME_COMMAND, window[0].t, [reply]))
        i += 3
    return out


def lines_out(records: Iterable[Record]) -> list[str]:
    """The recorded command lines of a FastAGI connection."""
    return [r["data"].rstrip("\n") for r in records if r["dir"] == "out"]


async def wait_until(predicate: Callable[[], object], interval: float = 0.01) -> None:
    """Poll ``predicate`` until it is true (wrap the call in ``asyncio.timeout``)."""
    while True:
        if predicate():
            return
        await asyncio.sleep(interval)
