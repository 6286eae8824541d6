"""A fake FreeSWITCH that replays real ESL traces (shared/traces/freeswitch) over real TCP.

A trace connection is cut into *steps*: one recorded command (``out``) and the messages
FreeSWITCH sent after it until the next command (``in``), with their recorded delays. The
:class:`ESLReplayer` answers each command we send with the next recorded step that has the
same key (``sendmsg execute playback``, ``api uuid_getvar``, ``event`` ...), searching
forward, and sends that step's messages with the delays scaled by ``time_scale``. On the way:

* the recorded ``Event-UUID``/``Application-UUID`` of a sendmsg becomes ours, the recorded
  ``Job-UUID`` of a bgapi becomes ours (for the rest of the connection);
* ``renames`` (test-chosen string replacements, e.g. a variable name) are applied, and the
  outer Content-Length is recomputed;
* ``aliases`` let a command of ours play a recorded step with another key (the trace hung
  up with ``sendmsg hangup`` where the driver uses ``api uuid_kill``).

Commands the trace lacks get what FreeSWITCH would plausibly say: ``+OK`` replies, a
CHANNEL_EXECUTE_COMPLETE for ``sendmsg execute`` (or ``-ERR invalid session id`` once the
channel hung up), ``show channels as json`` built from the channels the replay has shown.
Nothing is copied into the repo: the traces are read from ../shared at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from callcenter.protocols.esl import (
    ESLCommand,
    ESLCommandParser,
    ESLParser,
    encode_api_response,
    encode_disconnect_notice,
    encode_event_plain,
    encode_reply,
)

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "freeswitch"
PASSWORD = "REDACTED"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def require_traces() -> None:
    if not TRACES.is_dir():
        pytest.skip(f"real FreeSWITCH traces not found at {TRACES} (../shared is absent)")


@dataclass
class Step:
    """One recorded command (None: what came before any command) and what followed it."""

    out: ESLCommand | None
    t: float
    messages: list[tuple[float, bytes]] = field(default_factory=list)
    """(seconds after the command, exact bytes) of everything FreeSWITCH sent next."""

    @property
    def key(self) -> str:
        return command_key(self.out) if self.out is not None else ""


@cache
def _records(name: str) -> tuple[dict[str, Any], ...]:
    require_traces()
    with (TRACES / name).open(encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def script(name: str, conn: int = 1, *, start: float = 0.0, end: float | None = None) -> list[Step]:
    """The steps of connection ``conn`` of trace ``name`` recorded between ``start`` and
    ``end`` seconds (a step belongs where its command was sent)."""
    steps = [Step(None, 0.0)]
    for rec in _records(name):
        if rec["conn"] != conn:
            continue
        data = rec["data"].encode("utf-8")
        if rec["dir"] == "out":
            commands = ESLCommandParser().feed(data)
            steps.append(Step(commands[0], rec["t"]))
        else:
            steps[-1].messages.append((max(0.0, rec["t"] - steps[-1].t), data))
    return [s for s in steps if s.out is None or (s.t >= start and (end is None or s.t <= end))]


def command_key(cmd: ESLCommand) -> str:
    """What makes two commands "the same" for the replay."""
    words = cmd.line.split()
    word = words[0].lower() if words else ""
    if word == "sendmsg":
        call_command = (cmd.get("call-command") or "").lower()
        app = (cmd.get("execute-app-name") or "").lower()
        return f"sendmsg {call_command} {app}".strip()
    if word in ("api", "bgapi") and len(words) > 1:
        if words[1] == "show":
            return " ".join(w.lower() for w in words)
        return f"{word} {words[1].lower()}"
    return word


def _fix_length(data: bytes) -> bytes:
    head, sep, body = data.partition(b"\n\n")
    if not sep or b"Content-Length:" not in head:
        return data
    lines = [
        b"Content-Length: %d" % len(body) if line.startswith(b"Content-Length:") else line
        for line in head.split(b"\n")
    ]
    return b"\n".join(lines) + sep + body


def _plain_headers(data: bytes) -> dict[str, str]:
    """First value of each header of a plain event message (URL-decoded)."""
    msgs = ESLParser().feed(data)
    if not msgs or msgs[0].event is None:
        return {}
    event = msgs[0].event
    return dict(event.headers)


class ESLReplayer:
    """FreeSWITCH's side of one replayed connection (see the module docstring)."""

    def __init__(
        self,
        steps: list[Step],
        *,
        password: str = PASSWORD,
        time_scale: float = 0.01,
        renames: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        channel_uuid: str = "",
        chunk: int = 0,
        manual_apps: Iterable[str] = (),
        api_answers: Mapping[str, str] | None = None,
    ) -> None:
        self.steps = steps
        #: Write every message in pieces of this many bytes (0: whole), as TCP may cut it.
        self.chunk = chunk
        #: Applications whose completion the test pushes itself (no synthesized one).
        self.manual_apps = set(manual_apps)
        #: ``api <word> ...`` the trace lacks -> the body to answer.
        self.api_answers = dict(api_answers or {})
        self.password = password
        self.time_scale = time_scale
        self.renames = dict(renames or {})
        self.aliases = dict(aliases or {})
        #: The outbound socket's channel (the target of a sendmsg without uuid).
        self.channel_uuid = channel_uuid
        self.commands: list[ESLCommand] = []
        #: For each of ``commands``, the number of the read that brought it (from 0).
        self.reads: list[int] = []
        self.unmatched: list[str] = []
        self.mute = False
        self.subs: dict[str, str] = {}
        self.live: dict[str, dict[str, str]] = {}
        self.dead: set[str] = set()
        self.parked: set[str] = set()
        self.closed = asyncio.Event()
        self._cursor = 1
        self._heap: list[tuple[float, int, bytes | None]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None

    # -- plumbing ---------------------------------------------------------------------------

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        sender = asyncio.create_task(self._send_loop(writer))
        try:
            if self.steps and self.steps[0].out is None:
                self._emit(self.steps[0].messages)
            parser = ESLCommandParser()
            for read in itertools.count():
                if writer.is_closing():
                    break
                data = await reader.read(65536)
                if not data:
                    break
                for cmd in parser.feed(data):
                    self.commands.append(cmd)
                    self.reads.append(read)
                    if not self.mute:
                        self._answer(cmd)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            writer.close()
            self.closed.set()

    def close(self) -> None:
        """Drop the connection (FreeSWITCH going away)."""
        if self._writer is not None:
            self._writer.close()

    def push(self, messages: Iterable[tuple[float, bytes]]) -> None:
        """Send messages (delays scaled) as if FreeSWITCH produced them now."""
        self._emit(list(messages))

    def _schedule(self, delay: float, data: bytes | None) -> None:
        loop = asyncio.get_running_loop()
        heapq.heappush(self._heap, (loop.time() + delay, next(self._seq), data))
        self._wake.set()

    def _emit(self, messages: list[tuple[float, bytes]], first: bytes | None = None) -> None:
        if first is not None:
            self._schedule(0.0, first)
        for dt, data in messages:
            self._schedule(dt * self.time_scale, self._rewrite(data))

    async def _send_loop(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            when, _, data = self._heap[0]
            wait = when - loop.time()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            heapq.heappop(self._heap)
            if data is None:
                writer.close()
                return
            self._observe(data)
            size = self.chunk or len(data)
            for at in range(0, len(data), size):
                writer.write(data[at : at + size])
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

    def _rewrite(self, data: bytes) -> bytes:
        text = data.decode("utf-8")
        for old, new in [*self.subs.items(), *self.renames.items()]:
            text = text.replace(old, new)
        return _fix_length(text.encode("utf-8"))

    def _observe(self, data: bytes) -> None:
        """Keep track of the channels the replay has shown (for show channels)."""
        if b"text/event-plain" not in data[:80]:
            return
        headers = _plain_headers(data)
        uid = headers.get("Unique-ID", "")
        name = headers.get("Event-Name", "")
        if not uid:
            return
        if name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"):
            self.dead.add(uid)
            self.live.pop(uid, None)
            self.parked.discard(uid)
            return
        if uid in self.dead:
            return
        self.live.setdefault(uid, headers)
        if name == "CHANNEL_PARK":
            self.parked.add(uid)
        elif name == "CHANNEL_EXECUTE_COMPLETE" and headers.get("Application") == "park":
            self.parked.discard(uid)

    # -- answering --------------------------------------------------------------------------

    def _find(self, key: str) -> Step | None:
        wanted = {key, self.aliases.get(key, key)}
        for index in range(self._cursor, len(self.steps)):
            if self.steps[index].key in wanted:
                self._cursor = index + 1
                return self.steps[index]
        return None

    def _answer(self, cmd: ESLCommand) -> None:
        word = cmd.name
        if word == "auth":
            if cmd.args == self.password:
                self._emit([], encode_reply("+OK accepted"))
            else:
                self._emit([], encode_reply("-ERR invalid"))
                self._schedule(0.0, encode_disconnect_notice())
                self._schedule(0.0, None)
            return
        key = command_key(cmd)
        if key == "api show channels as json":
            self._emit([], encode_api_response(self._show_channels()))
            return
        if word == "sendmsg" and self._target(cmd) in self.dead:
            self._emit([], encode_reply(f"-ERR invalid session id [{self._target(cmd)}]"))
            return
        step = self._find(key)
        if step is None:
            self.unmatched.append(cmd.line)
            self._default(cmd)
            return
        assert step.out is not None
        self._learn(cmd, step)
        messages = list(step.messages)
        if step.key != key and word == "api" and messages:
            # An aliased step: our api command gets an api/response, the rest plays as is.
            messages[0] = (0.0, encode_api_response("+OK\n"))
        self._emit(messages)
        if word == "exit":
            self._schedule(0.0, None)

    def _learn(self, cmd: ESLCommand, step: Step) -> None:
        """Map the recorded ids of ``step`` to the ones in our ``cmd``."""
        assert step.out is not None
        ours = cmd.get("Event-UUID")
        if ours:
            recorded = step.out.get("Event-UUID")
            if not recorded:
                app = step.out.get("execute-app-name") or ""
                for _, data in step.messages:
                    headers = _plain_headers(data) if b"text/event-plain" in data[:80] else {}
                    if headers.get("Application") == app and headers.get("Application-UUID"):
                        recorded = headers["Application-UUID"]
                        break
            if recorded:
                self.subs[recorded] = ours
        job = cmd.get("Job-UUID")
        if job and step.messages:
            match = re.search(rb"Job-UUID: (\S+)", step.messages[0][1])
            if match:
                self.subs[match.group(1).decode()] = job

    def _target(self, cmd: ESLCommand) -> str:
        return cmd.args.strip() or self.channel_uuid

    def _default(self, cmd: ESLCommand) -> None:
        word = cmd.name
        if word == "sendmsg":
            self._emit([], encode_reply("+OK"))
            app = cmd.get("execute-app-name") or ""
            if (cmd.get("call-command") or "").lower() == "execute" and app not in self.manual_apps:
                target = self._target(cmd)
                known = self.live.get(target, {})
                headers = [
                    ("Event-Name", "CHANNEL_EXECUTE_COMPLETE"),
                    ("Unique-ID", target),
                    ("Channel-Name", known.get("Channel-Name", "")),
                    ("Answer-State", "answered"),
                    ("Application", app),
                    ("Application-Data", cmd.get("execute-app-arg") or cmd.body_text),
                    ("Application-Response", "_none_"),
                    ("Application-UUID", cmd.get("Event-UUID") or ""),
                ]
                self._schedule(0.002, encode_event_plain(headers))
        elif word == "api":
            rest = cmd.args
            canned = self.api_answers.get(rest.partition(" ")[0])
            if canned is not None:
                self._emit([], encode_api_response(canned))
            elif any(uid in self.dead for uid in _UUID.findall(rest)):
                self._emit([], encode_api_response("-ERR No such channel!\n"))
            elif rest.startswith("uuid_getvar"):
                self._emit([], encode_api_response("_undef_"))
            elif rest.startswith("show"):
                self._emit([], encode_api_response('{"row_count": 0}\n'))
            else:
                self._emit([], encode_api_response("+OK\n"))
        elif word == "bgapi":
            job = cmd.get("Job-UUID") or "00000000-0000-0000-0000-000000000001"
            self._emit([], encode_reply(f"+OK Job-UUID: {job}", {"Job-UUID": job}))
            self._schedule(
                0.002,
                encode_event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job)], "+OK\n"),
            )
        elif word == "exit":
            self._emit([], encode_reply("+OK bye"))
            self._schedule(0.0, encode_disconnect_notice())
            self._schedule(0.0, None)
        else:
            self._emit([], encode_reply("+OK"))

    def _show_channels(self) -> str:
        rows = [
            {
                "uuid": uid,
                "name": h.get("Channel-Name", ""),
                "state": "CS_EXECUTE",
                "cid_num": h.get("Caller-Caller-ID-Number", ""),
                "dest": h.get("Caller-Destination-Number", ""),
                "context": h.get("Caller-Context", ""),
                "callstate": "ACTIVE",
                "application": "park" if uid in self.parked else "",
                "call_uuid": "",
            }
            for uid, h in self.live.items()
        ]
        if not rows:
            return '{"row_count": 0}\n'
        return json.dumps({"row_count": len(rows), "rows": rows}) + "\n"


ReplayerFactory = Callable[[int], ESLReplayer]


class ESLReplayServer:
    """FreeSWITCH's inbound event socket on 127.0.0.1: connection ``n`` (0-based) is
    answered by ``factory(n)``."""

    def __init__(self, factory: ReplayerFactory) -> None:
        self._factory = factory
        self.connections: list[ESLReplayer] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def last(self) -> ESLReplayer:
        return self.connections[-1]

    async def __aenter__(self) -> ESLReplayServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for replayer in self.connections:
            replayer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        replayer = self._factory(len(self.connections))
        self.connections.append(replayer)
        await replayer.run(reader, writer)

    def commands(self, key: str) -> list[ESLCommand]:
        """Every command of that key received on any connection."""
        return [c for r in self.connections for c in r.commands if command_key(c) == key]


async def replay_outbound(port: int, replayer: ESLReplayer) -> None:
    """Play FreeSWITCH's side of an outbound socket: connect to our server and answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await replayer.run(reader, writer)


def trace_event(
    name: str, event_name: str, unique_id: str | None = None, **changes: str | None
) -> tuple[list[tuple[str, str]], bytes]:
    """The first ``event_name`` event of trace ``name`` (for ``unique_id`` if given), with
    ``changes`` applied (``Hangup_Cause="USER_BUSY"`` sets ``Hangup-Cause``; None removes a
    header; names with ``variable_`` keep their underscores). Returns the pairs and the
    encoded plain event, for scenarios the traces lack (a busy agent...)."""
    for rec in _records(name):
        if rec["dir"] != "in" or "text/event-plain" not in rec["data"][:80]:
            continue
        msgs = ESLParser().feed(rec["data"].encode("utf-8"))
        event = msgs[0].event if msgs else None
        if event is None or event.name != event_name:
            continue
        if unique_id is not None and event.unique_id != unique_id:
            continue
        wanted = {
            (k if k.startswith("variable_") else k.replace("_", "-")): v for k, v in changes.items()
        }
        pairs = [(k, wanted.pop(k, v)) for k, v in event.pairs]
        pairs += list(wanted.items())
        kept = [(k, v) for k, v in pairs if v is not None]
        return kept, encode_event_plain(kept, event.body)
    raise LookupError(f"no {event_name} in {name}")


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` until true; fail the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.005)
