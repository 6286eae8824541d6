"""Test and demo helpers shipped with the package: a demo PBX and the daemon, wired together.

    async with running_center(tmp_path, agi="fastagi") as center:
        center.pbx.add_phone("PJSIP/1002", AgentPhone(answer_after=0.05))
        caller = await center.pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("welcome-menu")
        await caller.press("2")
        ...
        row = await center.cdr(caller.uniqueid)

Everything talks over real TCP on 127.0.0.1 with ephemeral ports: the daemon's Asterisk
driver cannot tell the demo PBX from a real Asterisk for what it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import yaml

from callcenter.config import load_config
from callcenter.daemon import Daemon
from callcenter.demopbx import AGI, AgentPhone, Answer, DemoAsterisk, DemoDialplan, Hangup, Playback
from callcenter.demopbx.channels import FAILOVER_PROMPT as ASTERISK_FAILOVER
from callcenter.demopbx.freeswitch import FAILOVER_AFTER, DemoFreeSwitch
from callcenter.demopbx.fs_phones import AgentPhone as FreeSwitchAgentPhone
from callcenter.errors import CallHungUp
from callcenter.pbx.interface import Call

DEMO_SECRET = "demo-secret"
DEMO_ESL_PASSWORD = "ClueCon-demo"

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""Where ``python -m callcenter.cli`` finds this package (a checkout's root)."""

BASE_CONFIG: dict[str, Any] = {
    "pbx": {
        "type": "asterisk",
        "ami": {
            "host": "127.0.0.1",
            "port": 5038,
            "username": "callcenter",
            "keepalive_interval": 2.0,
            "action_timeout": 2.0,
            "reconnect_min": 0.05,
            "reconnect_max": 0.5,
        },
        "agi": {"transport": "fastagi", "listen_host": "127.0.0.1", "listen_port": 0},
    },
    "api": {"host": "127.0.0.1", "port": 0},
    "logging": {"level": "warning", "format": "console"},
    "records": {"cdr_path": "var/cdr.sqlite3"},
    "routes": {"800": {"flow": "main"}, "default": {"flow": "main"}},
    "flows": {
        "main": {
            "start": "welcome",
            "nodes": {
                "welcome": {
                    "kind": "menu",
                    "prompt": "welcome-menu",
                    "choices": {"1": "sales", "2": "support", "9": "goodbye"},
                    "timeout": 1.0,
                    "retries": 2,
                    "default": "support",
                },
                "sales": {"kind": "queue", "queue": "sales"},
                "support": {"kind": "queue", "queue": "support"},
                "goodbye": {"kind": "hangup", "prompt": "goodbye"},
            },
        }
    },
    "queues": {
        "sales": {"agents": ["1001"], "ring_timeout": 1, "max_wait": 30},
        "support": {
            "agents": ["1001", "1002"],
            "ring_timeout": 1,
            "max_wait": 30,
            "supervisor": "2000",
        },
    },
    "agents": {
        "1001": {"name": "Alice", "device": "PJSIP/1001", "logged_in": True},
        "1002": {"name": "Bob", "device": "PJSIP/1002", "logged_in": True},
        "1003": {"name": "Carol", "device": "PJSIP/1003", "pin": "4321"},
    },
    "supervisors": {"2000": {"name": "Sam", "device": "PJSIP/2000"}},
}


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (mappings merge, anything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Center:
    """A running demo PBX + daemon pair."""

    pbx: Any
    """The demo PBX: a :class:`DemoAsterisk` or a :class:`DemoFreeSwitch` (same phone API)."""
    daemon: Daemon
    config_path: Path

    async def drop_pbx_connections(self) -> None:
        """Cut every event/control connection the daemon holds to the PBX (AMI or ESL)."""
        if isinstance(self.pbx, DemoFreeSwitch):
            await self.pbx.drop_esl_connections()
        else:
            await self.pbx.drop_ami_connections()

    async def pbx_outage(self, *, limit: float = 8.0) -> None:
        """Cut the daemon's links to the PBX (:meth:`drop_pbx_connections`) and return once
        the daemon has seen them go and come back (its ``reconnect_min`` later)."""
        board = self.daemon.switchboard
        await self.drop_pbx_connections()
        await until(lambda: not board.pbx_up, timeout=limit)
        await until(lambda: board.pbx_up, timeout=limit)

    def add_phone(
        self,
        device: str,
        *,
        answer_after: float | None = 0.1,
        reject: bool = False,
        hangup_after: float | None = None,
        machine: bool = False,
        auto_answer: bool = False,
    ) -> Any:
        """Register a scripted agent phone of the right kind for this PBX; returns it
        (``machine``: an answering machine answers it; ``auto_answer``: it answers at once
        a call that asks it to)."""
        if isinstance(self.pbx, DemoFreeSwitch):
            return self.pbx.add_phone(
                device,
                FreeSwitchAgentPhone(
                    answer_after=answer_after,
                    reject=reject,
                    hangup_after=hangup_after,
                    machine=machine,
                    auto_answer=auto_answer,
                ),
            )
        return self.pbx.add_phone(
            device,
            AgentPhone(
                answer_after=answer_after,
                reject=reject,
                hangup_after=hangup_after,
                machine=machine,
                auto_answer=auto_answer,
            ),
        )

    async def caller_presses(
        self, number: str, key: str, *, prompt: str = "welcome-menu", caller_name: str = ""
    ) -> Any:
        """A caller dials 800, hears ``prompt`` and presses ``key`` (in the test config: 1
        sales, 2 support); returns the caller."""
        caller = await self.pbx.call("800", caller_num=number, caller_name=caller_name)
        await caller.wait_for_prompt(prompt, timeout=5)
        await caller.press(key)
        return caller

    async def caller_talks_to_an_agent(
        self, number: str, *, prompt: str = "welcome-menu", key: str = "2"
    ) -> Any:
        """A caller dials 800, hears ``prompt``, presses ``key`` (the test config's support
        queue), talks to the agent who answers and hangs up; returns the caller (its
        ``uniqueid`` names the CDR)."""
        caller = await self.caller_presses(number, key, prompt=prompt)
        await caller.wait_bridged(timeout=5)
        await caller.hangup()
        return caller

    async def open_line(self, agent: str = "1003", pin: str | None = "4321") -> Any:
        """``agent``'s phone dials ``*70`` (and the PIN); returns the line (its call) once
        it waits in its room ``line-<agent>``, the agent logged in on it."""
        line = await self.pbx.call("*70", caller_num=agent)
        if pin is not None:
            await line.wait_for_prompt("agent-pass", timeout=5)
            await line.press(pin)
        await line.wait_for_prompt("agent-loginok", timeout=5)
        room = f"line-{agent}"
        # Both demo PBXs keep their conference rooms by name.
        await until(lambda: room in self.pbx.conferences and agent in self.daemon.switchboard.lines)
        return line

    async def api(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> tuple[int, Any]:
        """The control API's status and JSON answer to ``method path`` (``body`` as JSON),
        over TCP as the CLI sends it (with ``token`` as its bearer token); errors included
        (their ``{"error": ...}``)."""
        payload = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(payload)}\r\n"
        if token is not None:
            head += f"Authorization: Bearer {token}\r\n"
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.daemon.api.port)
        try:
            writer.write(f"{head}{kind}\r\n".encode() + payload)
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        status_line, _, answer = data.partition(b"\r\n\r\n")
        return int(status_line.split()[1]), json.loads(answer)

    def with_asterisk_failover(self) -> None:
        """Give the demo Asterisk's 800 the shipped dialplan's failover after ``AGI()``: a
        caller the daemon lets go of hears ``ss-noservice`` (the demo has no GotoIf: no
        bridged caller reaches it here). The demo FreeSWITCH has its failover already:
        nothing to do there."""
        if isinstance(self.pbx, DemoFreeSwitch):
            return
        default = self.pbx.dialplan
        contexts = {name: dict(exts) for name, exts in default.contexts.items()}
        if self.pbx.agi_mode == "fastagi":
            hand_over = AGI(f"agi://127.0.0.1:{self.daemon.agi_port}/inbound")
        else:
            hand_over = AGI("agi:async", "inbound")
        contexts[default.default_context]["800"] = (
            Answer(),
            hand_over,
            Playback(ASTERISK_FAILOVER),
            Hangup(),
        )
        self.pbx.dialplan = DemoDialplan(
            contexts=contexts, default_context=default.default_context, fallback=default.fallback
        )

    def remove_phone(self, device: str) -> None:
        """The agent phone registered as ``device`` unregisters (on either PBX)."""
        self.pbx.remove_phone(device)

    async def cdr(self, uniqueid: str, timeout: float = 5.0) -> dict[str, Any]:
        """The CDR row of a call, waiting until it is written."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [
                r
                for r in await asyncio.to_thread(self.daemon.store.fetch_cdrs)
                if r["uniqueid"] == uniqueid
            ]
            if rows:
                return rows[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no CDR for {uniqueid} after {timeout}s")
            await asyncio.sleep(0.02)

    async def restart(self, *, flush_timeout: float = 10.0) -> Daemon:
        """Stop the daemon and start a new one on the same config file, as ``systemctl
        restart`` would; the PBX and its calls stay. The PBX is pointed at the new daemon's
        ports (FastAGI, outbound socket). Returns the new daemon (also :attr:`daemon`).
        ``flush_timeout``: as :meth:`Daemon.stop`."""
        await self.daemon.stop(flush_timeout=flush_timeout)
        return await self.start_again()

    async def start_again(self) -> Daemon:
        """Start a new daemon on the same config file once :attr:`daemon` has stopped (or
        is taken for crashed), and point the PBX at its ports. Returns it (also
        :attr:`daemon`)."""
        environ = self.daemon.environ
        config = await asyncio.to_thread(load_config, self.config_path, environ=environ)
        daemon = Daemon(config, config_path=self.config_path, environ=environ)
        await daemon.start()
        self.daemon = daemon
        if isinstance(self.pbx, DemoFreeSwitch):
            port = daemon.outbound_socket_port
            if port is not None:
                self.pbx.set_socket_address("127.0.0.1", port)
        else:
            self.pbx.set_agi_url(f"agi://127.0.0.1:{daemon.agi_port}")
        return daemon

    @asynccontextmanager
    async def run_apart(
        self, *, stderr: int = asyncio.subprocess.PIPE
    ) -> AsyncIterator[asyncio.subprocess.Process]:
        """``callcenter run`` on this center's config in a process of its own, as systemd
        starts it (the daemon in this process is stopped first; the PBX's secret comes
        from the environment): yields the process once it drives the PBX (its claim
        names its pid), kills it at the end if it still runs."""
        await self.daemon.stop()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter.cli", "run", str(self.config_path),
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
            env={**os.environ, **(self.daemon.environ or {})}, cwd=_PACKAGE_ROOT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(20):
                while f"|{proc.pid}|" not in self.pbx.global_vars.get("callcenter_owner", ""):
                    if proc.returncode is not None:
                        raise RuntimeError(f"callcenter run exited with {proc.returncode}")
                    await asyncio.sleep(0.05)
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until the daemon handles no call."""
        try:
            await asyncio.wait_for(self.daemon.switchboard.wait_idle(), timeout)
        except TimeoutError:
            active = list(self.daemon.switchboard.active)
            raise TimeoutError(f"calls still active after {timeout}s: {active}") from None


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Return once ``predicate()`` holds (polled every 20 ms); TimeoutError after
    ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        # Polled: the predicate reads any state of the daemon or the demo PBX, which has
        # no event to wait on.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def run_cli(center: Center, *argv: str) -> tuple[int, str, str]:
    """``callcenter *argv --api <center's API>`` as ops type it, run in a thread beside the
    daemon's loop (the CLI blocks on its HTTP request): its exit status (a usage error's 2
    too), what it printed and what it said on stderr (the daemon's own log lines left
    out)."""
    from callcenter.cli import main as cli_main

    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli_main([*argv, "--api", f"http://127.0.0.1:{center.daemon.api.port}"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        # The daemon runs in this process too: its log lines are not the CLI's.
        said = "".join(
            line for line in err.getvalue().splitlines(keepends=True) if not _LOG_LINE.match(line)
        )
        return code, out.getvalue(), said

    return await asyncio.to_thread(run)


_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


def scrape_metrics(port: int) -> str:
    """The Prometheus text of the control API listening on ``port`` (blocking: call it
    with ``asyncio.to_thread``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text: str = answer.read().decode()
    return text


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message of ``GET /events`` (Server-Sent Events), as an EventSource gets it:
    ``event`` its name, ``data`` its JSON decoded, ``id`` ("" when it carries none); or a
    comment line (``comment``, the rest empty)."""

    event: str = ""
    data: dict[str, Any] | None = None
    id: str = ""
    comment: str = ""


class EventStreamClient:
    """A client of the control API's ``GET /events`` over TCP, reading it as a browser's
    EventSource does::

        stream = await EventStreamClient.open(center.daemon.api.port, "agent=1001")
        message = await stream.next()      # StreamMessage(event="AgentRinging", ...)
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status
        """The HTTP status: 200, or the error's (then :attr:`error` says why)."""
        self.error: dict[str, Any] | None = None
        self.retry_ms: int | None = None

    @classmethod
    async def open(
        cls, port: int, query: str = "", headers: Mapping[str, str] | None = None
    ) -> EventStreamClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        path = f"/events?{query}" if query else "/events"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        client = cls(reader, writer, status)
        if status != 200:
            client.error = json.loads(await reader.readexactly(length))
            writer.close()
        return client

    async def next(self, timeout: float = 5.0) -> StreamMessage:
        """The next message or comment; EOFError once the daemon closed the stream."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.reader.readline()).decode()
                if not line:
                    raise EOFError("the stream ended")
                line = line.rstrip("\n")
                if line.startswith(":"):
                    return StreamMessage(comment=line[1:].strip())
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                    continue
                if "retry" in fields and "data" not in fields:
                    self.retry_ms = int(fields.pop("retry"))
                if "data" in fields:
                    data = json.loads(fields["data"])
                    return StreamMessage(fields.get("event", ""), data, fields.get("id", ""))

    async def until(self, event: str, timeout: float = 5.0) -> list[StreamMessage]:
        """Messages (not comments) up to and including the first ``event``."""
        seen: list[StreamMessage] = []
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if message.comment:
                    continue
                seen.append(message)
                if message.event == event:
                    return seen

    def close(self) -> None:
        self.writer.close()


@dataclass
class DesktopForm:
    """One form of a desktop page: where it goes, its fields, and its button's label."""

    method: str
    action: str
    fields: dict[str, str]
    label: str = ""


class DesktopPage(HTMLParser):
    """A page of the agent desktop as a person reads it: its status, its forms (one per
    button: a form with several named buttons is one per button, each sending its own
    ``name=value``), the text of its notes and state, and its tables' rows."""

    def __init__(self, status: int, headers: Mapping[str, str], body: str) -> None:
        super().__init__()
        self.status = status
        self.headers = dict(headers)
        self.body = body
        """The page's HTML."""
        self.forms: list[DesktopForm] = []
        self.texts: dict[str, str] = {}
        """The text of elements by id or class: ``state``, ``said``, ``error``, ``down``,
        ``over`` (the agent is over the time allowed in their state), ``missed`` (paused
        for calls that rang out), ``schedule`` (their schedule today), ``scheduled`` (a
        supervisor's agents scheduled now and logged in), ``script`` (the call's script),
        ``preview`` (a preview campaign's lead)."""
        self.title = ""
        """The browser tab's title."""
        self.table_rows: list[list[str]] = []
        """Every table row as its cells' text (``th`` and ``td`` alike)."""
        self.refresh = ""
        self.sounds: list[str] = []
        """The ``src`` of each ``<audio>`` player (a voicemail message's page)."""
        self.links: dict[str, str] = {}
        """The ``href`` of each link with an id (``screen-pop``: the caller's CRM page)."""
        self.notices: list[str] = []
        """The text of each notice shown (what supervisors tell the agents)."""
        self._open: list[tuple[str, str]] = []
        self._cell: list[str] | None = None
        self._button_names: set[str] = set()
        self.feed(body)

    @property
    def buttons(self) -> list[str]:
        return [f.label for f in self.forms]

    @property
    def rows(self) -> dict[str, str]:
        """The two-cell rows (a ``th`` and its ``td``: the call's details) by heading."""
        return {r[0]: r[1] for r in self.table_rows if len(r) == 2}

    def form(self, label: str, picking: Mapping[str, str] | None = None) -> DesktopForm:
        """The form whose button says ``label`` (and whose fields hold ``picking``: the
        "Log out" of agent 1002 among those of each agent); AssertionError when none."""
        wanted = dict(picking or {})
        found = [
            f
            for f in self.forms
            if f.label == label and all(f.fields.get(k) == v for k, v in wanted.items())
        ]
        assert found, f"no button {label!r} with {wanted}; the page has {self.buttons}"
        return found[0]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(DesktopForm(a.get("method", "get"), a.get("action", ""), {}))
        elif tag in ("input", "select") and self.forms and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "option" and self.forms and self.forms[-1].fields:
            last = list(self.forms[-1].fields)[-1]
            if "selected" in a:  # as a browser sends it: the selected option, else the first
                self.forms[-1].fields[last] = a.get("value", "")
            else:
                self.forms[-1].fields[last] = self.forms[-1].fields[last] or a.get("value", "")
        elif tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh = a.get("content", "")
        elif tag == "audio" and a.get("src"):
            self.sounds.append(a["src"])
        elif tag == "a" and a.get("id"):
            self.links[a["id"]] = a.get("href", "")
        elif tag == "tr":
            self.table_rows.append([])
        elif tag in ("th", "td"):
            self._cell = []
        if tag == "button" and self.forms and a.get("name"):
            form = self.forms[-1]
            if form.label:  # a second named button: a form of its own
                named = self._button_names
                fields = {k: v for k, v in form.fields.items() if k not in named}
                form = DesktopForm(form.method, form.action, fields)
                self.forms.append(form)
            form.fields[a["name"]] = a.get("value", "")
            self._button_names.add(a["name"])
        if tag == "title":
            self._open.append((tag, "title"))
        key = a.get("id") or a.get("class", "").split(" ")[0]
        if key == "notice":
            self.notices.append("")
            self._open.append((tag, key))
        elif key in (
            "state",
            "said",
            "error",
            "down",
            "over",
            "missed",
            "schedule",
            "scheduled",
            "pauses",
            "requests",
            "answers",
            "script",
            "script-missing",
            "preview",
            "codes",
            "breaks",
            "team-breaks",
            "break-line",
            "break-lines",
            "works-as",
        ):
            self.texts[key] = ""
            self._open.append((tag, key))
        elif tag == "button" and self.forms:
            self._open.append((tag, "button"))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            self._open.pop()
        if tag in ("th", "td") and self._cell is not None and self.table_rows:
            self.table_rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _tag, key in self._open:
            if key == "button":
                self.forms[-1].label += data
            elif key == "title":
                self.title += data
            elif key == "notice":
                self.notices[-1] += data
            else:
                self.texts[key] += data


class DesktopBrowser:
    """A browser on the agent desktop (``/desktop``) over TCP: it keeps the session
    cookie, follows the redirect after each form, and presses buttons by their label::

        browser = DesktopBrowser(center.daemon.api.port)
        page = await browser.sign_in("1001", "1234")
        page = await browser.press("Pause: lunch")
        page.texts["state"]                # "paused: lunch"

    ``forwarded_for``: sent as ``X-Forwarded-For``, as a reverse proxy would for a
    browser at that address.
    """

    def __init__(
        self, port: int, *, origin: str | None = None, forwarded_for: str | None = None
    ) -> None:
        self.port = port
        self.cookie = ""
        self.origin = origin if origin is not None else f"http://127.0.0.1:{port}"
        self.forwarded_for = forwarded_for
        self.page: DesktopPage | None = None

    async def get(self, path: str = "/desktop") -> DesktopPage:
        return await self._request("GET", path, b"")

    async def post(
        self, path: str, fields: Mapping[str, str], *, follow: bool = True
    ) -> DesktopPage:
        """Post a form; a redirect (303) is followed with a GET, as a browser does (unless
        not ``follow``: the redirect itself)."""
        body = urllib.parse.urlencode(dict(fields)).encode()
        page = await self._request("POST", path, body)
        if page.status == 303 and follow:
            return await self.get(page.headers["location"])
        return page

    async def sign_in(self, person: str, pin: str, *, role: str = "agent") -> DesktopPage:
        """Sign in as agent (or ``role`` supervisor) ``person``."""
        return await self.post("/desktop/sign-in", {"role": role, "id": person, "pin": pin})

    async def press(
        self, label: str, *, picking: Mapping[str, str] | None = None, **typed: str
    ) -> DesktopPage:
        """Press the button ``label`` of the last page (``picking``: see
        :meth:`DesktopPage.form`; ``typed``: what was typed into the form's fields); a
        button that opens a page of its own gives that page."""
        assert self.page is not None, "no page yet"
        form = self.page.form(label, picking)
        fields = {**form.fields, **typed}
        if form.method.lower() == "get":
            page = await self.get(f"{form.action}?{urllib.parse.urlencode(fields)}")
            if page.status == 303:  # a page that sends the browser on (Pick a call …)
                return await self.get(page.headers["location"])
            return page
        return await self.post(form.action, fields)

    async def fetch(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """GET what is no page (a message's sound): status, headers and the bytes."""
        return await self._exchange("GET", path, b"")

    async def _request(self, method: str, path: str, body: bytes) -> DesktopPage:
        status, headers, answer = await self._exchange(method, path, body)
        cookie = headers.get("set-cookie", "")
        if cookie:
            pair = cookie.split(";", 1)[0]
            self.cookie = "" if "Max-Age=0" in cookie else pair
        page = DesktopPage(status, headers, answer.decode())
        if page.headers.get("content-type", "").startswith("text/html"):
            self.page = page
        return page

    async def _exchange(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if self.cookie:
            head += f"Cookie: {self.cookie}\r\n"
        if self.forwarded_for is not None:
            head += f"X-Forwarded-For: {self.forwarded_for}\r\n"
        if method == "POST":
            head += f"Origin: {self.origin}\r\n"
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(head.encode() + body)
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        top, _, answer = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers, answer


def _write_config(path: Path, settings: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(settings), sort_keys=False))


Transport = Literal["fastagi", "asyncagi", "esl-inbound", "esl-outbound"]
"""How calls reach the daemon: Asterisk FastAGI/AsyncAGI, FreeSWITCH park/socket."""

TRANSPORTS: tuple[Transport, ...] = ("fastagi", "asyncagi", "esl-inbound", "esl-outbound")

CALLBACKS_ON: dict[str, Any] = {
    "acd": {"callback_dial": "PJSIP/${number}", "callback_allow": ["_555XXXX"]}
}
"""Merged into :data:`BASE_CONFIG` (``config=``): queue callbacks on, for the test callers'
numbers (``555XXXX``), dialled as the phones the demo PBXs know."""


@asynccontextmanager
async def running_center(
    workdir: Path,
    *,
    agi: Transport = "fastagi",
    transport: Transport | None = None,
    config: Mapping[str, Any] | None = None,
    prompt_seconds: float = 0.05,
    secret: str = DEMO_SECRET,
    base: Mapping[str, Any] = BASE_CONFIG,
    failover_after: float | None = FAILOVER_AFTER,
    resume: bool = True,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[Center]:
    """Start a demo PBX and a daemon configured for it; stop both on exit.

    The daemon's config is ``base`` (the test config by default) with ``config`` merged in,
    and the PBX addresses and ephemeral ports filled in.

    ``transport`` (or its older name ``agi``) picks the PBX: ``fastagi``/``asyncagi`` start a
    demo Asterisk, ``esl-inbound``/``esl-outbound`` a demo FreeSWITCH (park / socket).
    ``failover_after``: seconds before the demo FreeSWITCH sends a parked caller nobody took
    to its failover extension, or the demo Asterisk an AsyncAGI caller nobody took (its
    ``TIMEOUT(absolute)`` guard), as the shipped dialplans do (None: never). ``resume``: the
    daemon takes back agents' shifts and waiting callbacks from the record database
    (:class:`~callcenter.daemon.Daemon`). ``environ``: more of the daemon's environment
    (``RUNTIME_DIRECTORY``, say), besides the PBX secret.
    """
    mode = transport or agi
    if mode.startswith("esl-"):
        async with _freeswitch_center(
            workdir,
            mode=mode,
            config=merge(base, config or {}),
            prompt_seconds=prompt_seconds,
            secret=secret,
            failover_after=failover_after,
            resume=resume,
            environ=environ or {},
        ) as center:
            yield center
        return
    pbx = DemoAsterisk(
        agi_mode="fastagi" if mode == "fastagi" else "async",
        ami_secret=DEMO_SECRET,
        prompt_seconds=prompt_seconds,
        login_failure_delay=0.05,
        failover_after=failover_after,
    )
    await pbx.start()
    try:
        settings = merge(base, config or {})
        settings = merge(
            settings,
            {
                "pbx": {
                    "ami": {"host": "127.0.0.1", "port": pbx.ami_port},
                    "agi": {"transport": mode, "listen_host": "127.0.0.1", "listen_port": 0},
                },
                "api": {"host": "127.0.0.1", "port": 0},
            },
        )
        path = workdir / "callcenter.yaml"
        await asyncio.to_thread(_write_config, path, settings)
        daemon_environ = {**(environ or {}), "CALLCENTER_AMI_SECRET": secret}
        loaded = load_config(path, environ=daemon_environ)
        daemon = Daemon(loaded, config_path=path, environ=daemon_environ, resume=resume)
        await daemon.start()
        center = Center(pbx=pbx, daemon=daemon, config_path=path)
        try:
            pbx.set_agi_url(f"agi://127.0.0.1:{daemon.agi_port}")
            yield center
        finally:
            await center.daemon.stop()
    finally:
        await pbx.stop()


@asynccontextmanager
async def _freeswitch_center(
    workdir: Path,
    *,
    mode: str,
    config: Mapping[str, Any],
    prompt_seconds: float,
    secret: str,
    failover_after: float | None,
    resume: bool,
    environ: Mapping[str, str],
) -> AsyncIterator[Center]:
    pbx = DemoFreeSwitch(
        password=DEMO_ESL_PASSWORD,
        prompt_seconds=prompt_seconds,
        mode="outbound" if mode == "esl-outbound" else "inbound",
        heartbeat_interval=1.0,
        failover_after=failover_after,
    )
    await pbx.start()
    try:
        settings = merge(
            config,
            {
                "api": {"host": "127.0.0.1", "port": 0},
                "pbx": {
                    "type": "freeswitch",
                    "esl": {
                        "host": "127.0.0.1",
                        "port": pbx.esl_port,
                        "outbound_listen_host": "127.0.0.1",
                        "outbound_listen_port": 0,
                    },
                },
            },
        )
        settings["pbx"].pop("agi", None)
        path = workdir / "callcenter.yaml"
        await asyncio.to_thread(_write_config, path, settings)
        password = secret if secret != DEMO_SECRET else DEMO_ESL_PASSWORD
        daemon_environ = {**environ, "CALLCENTER_ESL_PASSWORD": password}
        loaded = load_config(path, environ=daemon_environ)
        daemon = Daemon(loaded, config_path=path, environ=daemon_environ, resume=resume)
        await daemon.start()
        center = Center(pbx=pbx, daemon=daemon, config_path=path)
        try:
            port = daemon.outbound_socket_port
            if port is not None:
                pbx.set_socket_address("127.0.0.1", port)
            yield center
        finally:
            await center.daemon.stop()
    finally:
        await pbx.stop()


class HandBackProbe:
    """A call handler for driver tests of :meth:`Call.hand_back`: it answers, hands the call
    back (twice: it is idempotent), waits until the test sets :attr:`gone` (the caller's
    channel has ended meanwhile), then checks that a command raises ``CallHungUp``."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        #: True once the handler went on after the hand-back and its command was refused.
        self.refused_after = False

    async def __call__(self, call: Call) -> None:
        await call.answer()
        await call.hand_back()
        await call.hand_back()
        async with asyncio.timeout(3):
            await self.gone.wait()
        try:
            await call.play(["beep"])
        except CallHungUp:
            self.refused_after = True
