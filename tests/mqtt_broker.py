"""A real MQTT broker (Debian's mosquitto) on a free loopback port, and a wallboard: an
independent subscriber (paho-mqtt, the reference Python client) that keeps what it heard.

``scripts/bootstrap`` installs mosquitto where it is missing (as root, with apt-get).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process; ``stop`` and ``start`` again keep the port (a broker restart)."""

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        client_certificates: bool = False,
    ) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError(
                "mosquitto is not installed: run scripts/bootstrap as root, or "
                "apt-get install mosquitto"
            )
        self.folder = folder
        self.port = free_port()
        self.users = users
        self.process: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "user root",  # keeps reading the password file in a 0700 pytest folder
            "log_type error",
            "log_type warning",
        ]
        self.ca_file: Path | None = None
        if tls:
            self.ca_file, cert, key = make_certificates(folder)
            lines += [f"cafile {self.ca_file}", f"certfile {cert}", f"keyfile {key}"]
            if client_certificates:
                # Clients without a certificate the CA signed are refused in the handshake.
                lines += ["require_certificate true", "use_identity_as_username true"]
        if users:
            passwords = folder / "passwords"
            passwords.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(passwords), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "mosquitto.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "mosquitto.log").read_text()
                raise RuntimeError(f"mosquitto exited: {log}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto is not listening on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.process = None


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Wallboard:
    """A paho-mqtt subscriber to ``<prefix>/#``, keeping every message in arrival order."""

    def __init__(
        self,
        port: int,
        prefix: str = "callcenter",
        *,
        name: str = "wallboard",
        auth: tuple[str, str] | None = None,
        ca_file: Path | None = None,
        certificate: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = port
        self.prefix = prefix
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        if auth is not None:
            self.client.username_pw_set(*auth)
        if ca_file is not None:
            cert, key = (str(p) for p in certificate) if certificate else (None, None)
            self.client.tls_set(ca_certs=str(ca_file), certfile=cert, keyfile=key)

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(f"{self.prefix}/#", qos=1)

    def _on_message(self, _client: paho.Client, _data: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(message.topic, bytes(message.payload), message.retain))

    def __enter__(self) -> Wallboard:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the wallboard could not subscribe")
        return self

    def __exit__(self, *_: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[Message]:
        """Every message heard on ``topic`` (after the prefix), oldest first."""
        full = f"{self.prefix}/{topic}"
        with self._lock:
            return [m for m in self.messages if m.topic == full]

    def latest(self, topic: str) -> Message | None:
        heard = self.on(topic)
        return heard[-1] if heard else None

    async def wait_for(
        self, topic: str, test: Callable[[Message], bool] = lambda _: True, timeout: float = 10
    ) -> Message:
        """The first message on ``topic`` passing ``test`` (waiting for it if need be)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.on(topic):
                if test(message):
                    return message
            if time.monotonic() > deadline:
                heard = [(m.topic, m.payload[:200]) for m in self.messages[-20:]]
                raise AssertionError(f"nothing on {topic} passed the test; last heard: {heard}")
            await asyncio.sleep(0.02)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away certificate authority and a broker certificate it signed, for
    127.0.0.1 and localhost (openssl); returns (CA, certificate, key)."""
    ca_key, ca, key, request, cert = (
        folder / name for name in ("ca.key", "ca.crt", "broker.key", "broker.csr", "broker.crt")
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=test CA"],
        ["req", *ec, "-keyout", key, "-out", request, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", folder / "san.cnf"],
    ]  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True)
    key.chmod(0o644)  # mosquitto reads it as itself
    return ca, cert, key


def client_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A client certificate for ``name`` signed by the CA :func:`make_certificates` made in
    ``folder``; returns (certificate, key)."""
    key, request, cert = (folder / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["req", *ec, "-keyout", key, "-out", request, "-subj", f"/CN={name}"],
        ["x509", "-req", "-in", request, "-CA", folder / "ca.crt", "-CAkey", folder / "ca.key",
         "-CAcreateserial", "-out", cert, "-days", "2"],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True)
    return cert, key


@contextlib.contextmanager
def running_broker(
    folder: Path,
    *,
    users: dict[str, str] | None = None,
    tls: bool = False,
    client_certificates: bool = False,
) -> Iterator[Broker]:
    broker = Broker(folder, users=users, tls=tls, client_certificates=client_certificates)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
