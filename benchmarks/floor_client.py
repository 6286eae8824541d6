"""The floor of call_throughput.py: the same calls driven by a bare asyncio client, no engine.

What a minimal hand-written Asterisk client must do for each call of the benchmark, and
nothing more: a FastAGI server (``asyncio.Protocol``, no task per call) that answers each
connection's environment block with the daemon's five commands (ANSWER, GET DATA of the
menu, EXEC Dial of the next agent with music while it rings, one GET FULL VARIABLE of the
dial's outcome, HANGUP), one at a time; and an AMI client that logs in with the same ``Events``
mask and ``Filter`` as the daemon and splits every event it receives into a dict. No IVR, no
queue, no agents' states, no CDR, no logging.

The daemon's CPU per call divided by this client's, measured in the same run against the
same demo PBX, says how much the engine costs on top of merely speaking the protocols, on
whatever machine runs it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from urllib.parse import unquote

_COMMANDS_AFTER_DIAL = (
    b"GET FULL VARIABLE ${DIALSTATUS}|${ANSWEREDTIME}|${DIALEDPEERNAME}|${HANGUPCAUSE}\n",
    b"HANGUP\n",
)


class FloorAGI(asyncio.Protocol):
    """One FastAGI connection: the daemon's command sequence, driven from callbacks."""

    def __init__(self, client: FloorClient) -> None:
        self.client = client
        self.buffer = b""
        self.env_done = False
        self.commands: Iterator[bytes] = iter(())
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.env_done:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                return
            env = dict(
                line.split(": ", 1)
                for line in self.buffer[:end].decode().split("\n")
                if ": " in line
            )
            self.buffer = self.buffer[end + 2 :]
            self.env_done = True
            self.commands = iter(self.client.commands(env))
            self._next()
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            if line.startswith(b"200 "):
                self._next()

    def _next(self) -> None:
        assert self.transport is not None
        command = next(self.commands, None)
        if command is None:
            self.client.ended += 1
            self.transport.close()
        else:
            self.transport.write(command)

    def eof_received(self) -> bool | None:
        return False


class FloorClient:
    """The bare client: FastAGI server plus AMI event reader (see the module docstring)."""

    def __init__(self, agents: list[str]) -> None:
        self._agents = itertools.cycle(agents)
        self.ended = 0
        self.events = 0
        self._server: asyncio.Server | None = None
        self._ami: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def commands(self, env: dict[str, str]) -> list[bytes]:
        dial = f"EXEC Dial PJSIP/{next(self._agents)},5,m\n".encode()
        return [
            b"ANSWER\n",
            b"GET DATA welcome-menu 2000 1\n",
            dial,
            *_COMMANDS_AFTER_DIAL,
        ]

    async def start(self, ami_port: int, username: str, secret: str, event_filter: str) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: FloorAGI(self), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", ami_port)
        self._writer = writer
        await reader.readline()  # banner
        writer.write(
            f"Action: Login\r\nActionID: 1\r\nUsername: {username}\r\nSecret: {secret}\r\n"
            f"Events: call\r\n\r\nAction: Filter\r\nActionID: 2\r\nOperation: Add\r\n"
            f"Filter: {event_filter}\r\n\r\n".encode()
        )
        self._ami = asyncio.create_task(self._read_events(reader))

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        rest = b""
        while data := await reader.read(65536):
            *messages, rest = (rest + data).split(b"\r\n\r\n")
            for message in messages:
                fields = dict(
                    line.split(": ", 1)
                    for line in message.decode("utf-8", "replace").split("\r\n")
                    if ": " in line
                )
                if "Event" in fields:
                    self.events += 1

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._ami is not None:
            self._ami.cancel()
        if self._server is not None:
            self._server.close()


class ESLFloorClient:
    """Issue 3's reference client: park -> answer -> playback -> hangup, nothing else.

    One inbound ESL socket subscribed to the same events as the daemon (``event plain``);
    every message framed by Content-Length and every event's headers URL-decoded into a dict,
    as a hand-written client does. On ``CHANNEL_PARK`` it sends ``answer`` and ``playback`` (two
    ``sendmsg``), on the playback's ``CHANNEL_EXECUTE_COMPLETE`` an ``api uuid_kill``. Against
    a real FreeSWITCH 1.10.12 on a 2-core machine such a client spent 1.5 ms of CPU per call;
    run here, it tells how this machine compares.
    """

    def __init__(self, prompt: str, events: tuple[str, ...]) -> None:
        self.prompt = prompt
        self.events = events
        self.ended = 0
        self.event_count = 0
        self._playing: set[str] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, port: int, password: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self._writer = writer
        self._password = password
        self._task = asyncio.create_task(self._read(reader))

    def _send(self, text: str) -> None:
        assert self._writer is not None
        self._writer.write(text.encode())

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        while data := await reader.read(65536):
            buffer += data
            while (end := buffer.find(b"\n\n")) >= 0:
                head = dict(
                    line.split(": ", 1)
                    for line in buffer[:end].decode().split("\n")
                    if ": " in line
                )
                length = int(head.get("Content-Length", "0"))
                if len(buffer) < end + 2 + length:
                    break
                body = buffer[end + 2 : end + 2 + length]
                buffer = buffer[end + 2 + length :]
                kind = head.get("Content-Type")
                if kind == "auth/request":
                    self._send(f"auth {self._password}\n\nevent plain {' '.join(self.events)}\n\n")
                elif kind == "text/event-plain":
                    self._event(body)

    def _event(self, body: bytes) -> None:
        self.event_count += 1
        head = body.split(b"\n\n", 1)[0].decode()
        event = {
            name: unquote(value)
            for name, value in (line.split(": ", 1) for line in head.split("\n") if ": " in line)
        }
        name, uuid = event.get("Event-Name"), event.get("Unique-ID", "")
        if name == "CHANNEL_PARK" and uuid not in self._playing:
            self._playing.add(uuid)
            self._send(
                f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: answer\n\n"
                f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: playback\n"
                f"execute-app-arg: {self.prompt}\n\n"
            )
        elif (
            name == "CHANNEL_EXECUTE_COMPLETE"
            and event.get("Application") == "playback"
            and uuid in self._playing
        ):
            self._playing.discard(uuid)
            self.ended += 1
            self._send(f"api uuid_kill {uuid}\n\n")

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
