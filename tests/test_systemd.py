"""Running under systemd: the notifications ``Type=notify`` relies on, and the shipped unit.

systemd listens on a Unix datagram socket named by ``NOTIFY_SOCKET``; these tests bind one
and read what the daemon says there while it starts, reloads, feeds the watchdog and stops.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from callcenter import systemd
from callcenter.cli import EXIT_AUTH, EXIT_CONFIG
from callcenter.errors import ConfigError
from callcenter.testing import TRANSPORTS, running_center

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "callcenter.service"


class Systemd:
    """The receiving end of ``NOTIFY_SOCKET``: every datagram as its list of lines."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.messages: list[list[str]] = []

    def read(self) -> list[list[str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append(data.decode().split("\n"))

    async def wait_for(self, start: str, timeout: float = 5.0) -> list[str]:
        """The first message (already read or to come) with a line starting with ``start``."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.read():
                    if any(line.startswith(start) for line in message):
                        return message
                await asyncio.sleep(0.01)

    def lines(self) -> list[str]:
        return [line for message in self.read() for line in message]


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Systemd]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield Systemd(sock, path)
    finally:
        sock.close()


def test_notify_reaches_a_socket_in_the_abstract_namespace_too() -> None:
    name = f"callcenter-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert systemd.notify("READY=1", "STATUS=up", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1\nSTATUS=up"


def test_outside_systemd_notify_does_nothing_and_a_dead_socket_is_only_logged(
    tmp_path: Path,
) -> None:
    assert systemd.notify("READY=1", environ={}) is False
    with structlog.testing.capture_logs() as logs:
        gone = {"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")}
        assert systemd.notify("READY=1", environ=gone) is False
    assert [e["event"] for e in logs] == ["systemd_notify_failed"]


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_is_fed_at_half_its_interval_and_only_by_the_watched_process(
    environ: dict[str, str], interval: float | None
) -> None:
    assert systemd.watchdog_interval(environ) == interval


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_systemd_hears_ready_reloading_watchdog_and_stopping(
    tmp_path: Path, notify_socket: Systemd, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    async with running_center(tmp_path, transport=transport) as center:  # type: ignore[arg-type]
        ready = await notify_socket.wait_for("READY=1")
        assert any(line.startswith("STATUS=taking calls from ") for line in ready)
        await center.daemon.reload()
        reloading = await notify_socket.wait_for("RELOADING=1")
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading)
        center.config_path.write_text("queues: [not, a, mapping\n")
        with pytest.raises(ConfigError, match=r"callcenter\.yaml"):
            await center.daemon.reload()
        await asyncio.sleep(0.3)
        lines = notify_socket.lines()
        assert lines.count("READY=1") == 3, "ready again after each reload, refused or not"
        assert lines.count("WATCHDOG=1") >= 3, "fed every 50 ms"
        assert "STOPPING=1" not in lines
    assert "STOPPING=1" in notify_socket.lines()


async def test_systemctl_status_shows_a_lost_pbx_link_until_it_is_back(
    tmp_path: Path, notify_socket: Systemd
) -> None:
    async with running_center(tmp_path, transport="fastagi") as center:
        await notify_socket.wait_for("READY=1")
        await center.drop_pbx_connections()
        lost = await notify_socket.wait_for("STATUS=asterisk link lost")
        assert next(x for x in lost if x.startswith("STATUS=")).endswith("reconnecting")
        notify_socket.messages.clear()
        await notify_socket.wait_for("STATUS=taking calls from asterisk")


def test_the_shipped_unit_matches_what_the_daemon_does() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["Type"] == "notify", "the daemon says READY=1 once it takes calls"
    assert service["NotifyAccess"] == "main"
    command = service["ExecStart"].split()
    assert command[0].endswith("/callcenter") and command[1] == "run"
    assert service["ExecReload"].split()[-2:] == ["-HUP", "$MAINPID"], "SIGHUP reloads"
    assert {int(code) for code in service["RestartPreventExitStatus"].split()} == {
        EXIT_CONFIG,
        EXIT_AUTH,
    }, "only the exits a person must fix stop the restarts"
    assert service["Restart"] == "on-failure"
    assert int(service["WatchdogSec"]) > 0
    assert service["Environment"] == "CALLCENTER_SECRETS_FILE=/etc/callcenter/secrets"
    # Records a full disk refused at a stop wait in $RUNTIME_DIRECTORY for the next start:
    # it must outlive the stop, and the flush (10 s) must fit in the stop timeout.
    assert service["RuntimeDirectory"] == "callcenter"
    assert service["RuntimeDirectoryPreserve"] == "yes"
    assert int(service["TimeoutStopSec"]) > 10
