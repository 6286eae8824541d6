"""The floor of call_throughput.py: the same calls driven by a bare asyncio client, no engine.

What a minimal hand-written Asterisk client must do for each call of the benchmark, and
nothing more: a FastAGI server (``asyncio.Protocol``, no task per call) that answers each
connection's environment block with the daemon's eight commands (ANSWER, GET DATA of the
menu, EXEC StartMusicOnHold, EXEC Dial of the next agent, GET VARIABLE DIALSTATUS and
ANSWEREDTIME, GET FULL VARIABLE of the peer and cause, HANGUP), one at a time; and an AMI
client that logs in with the same ``Events`` mask and ``Filter`` as the daemon and splits
every event it receives into a dict. No IVR, no queue, no agents' states, no CDR, no logging.

The daemon's CPU per call divided by this client's, measured in the same run against the
same demo PBX, says how much the engine costs on top of merely speaking the protocols, on
whatever machine runs it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

_COMMANDS_AFTER_DIAL = (
    b"GET VARIABLE DIALSTATUS\n",
    b"GET VARIABLE ANSWEREDTIME\n",
    b'GET FULL VARIABLE "${DIALEDPEERNAME} ${HANGUPCAUSE}"\n',
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
            b"EXEC StartMusicOnHold default\n",
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
