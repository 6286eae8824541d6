"""Webhooks as a CRM behind them sees them: the events it asked for, in order, signed, tried
again while it is down, never holding up a call; endpoints that say no, or cannot keep up,
are counted and logged."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mqtt_broker import make_certificates

from callcenter.cli import format_status
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.live import webhooks as webhooks_module
from callcenter.testing import running_center

SECRET = "crm-shared-secret"


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes


@dataclass
class Endpoint:
    """A small HTTP server standing in for a CRM: it answers each POST with the next of
    ``statuses`` (200 once they run out) after ``delay`` seconds, with ``answer`` after the
    status line (headers and body). It keeps each connection for the next request, unless
    ``one_per_connection`` (it then closes it after the answer without saying so)."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    port: int = 0
    answer: bytes = b"Content-Length: 0\r\n\r\n"
    one_per_connection: bool = False
    connections: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                lines = request.decode().split("\r\n")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                headers["request-line"] = lines[0]
                raw = await reader.readexactly(int(headers["content-length"]))
                self.received.append(Received(headers, json.loads(raw), raw))
                await asyncio.sleep(self.delay)
                status = self.statuses.pop(0) if self.statuses else 200
                writer.write(f"HTTP/1.1 {status} X\r\n".encode() + self.answer)
                await writer.drain()
                if self.one_per_connection:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def events(self) -> list[str]:
        return [r.body["event"] for r in self.received]


@contextlib.asynccontextmanager
async def endpoint(
    statuses: list[int] | None = None,
    *,
    delay: float = 0.0,
    tls: ssl.SSLContext | None = None,
    **more: Any,
) -> AsyncIterator[Endpoint]:
    crm = Endpoint(statuses or [], delay, **more)
    server = await asyncio.start_server(crm.serve, "127.0.0.1", 0, ssl=tls)
    crm.port = server.sockets[0].getsockname()[1]
    try:
        yield crm
    finally:
        server.close()


async def until(predicate: Any, what: str, limit: float = 5.0) -> None:
    try:
        async with asyncio.timeout(limit):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(what) from None


def hook(port: int, **more: Any) -> dict[str, Any]:
    return {"webhooks": {"crm": {"url": f"http://127.0.0.1:{port}/callcenter/events", **more}}}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_the_crm_gets_the_events_it_asked_for_in_order_and_signed(
    tmp_path: Path, transport: str
) -> None:
    wanted = ["CallStarted", "AgentConnected", "CallEnded"]
    async with endpoint() as crm:
        config = hook(crm.port, events=wanted, secret=SECRET)
        async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
            center.add_phone("PJSIP/1002", answer_after=0.05)
            caller = await center.caller_talks_to_an_agent("5551234")
            await until(lambda: "CallEnded" in crm.events(), "the call's end reached the CRM")
            webhook = center.daemon.webhooks[0]
            await until(lambda: webhook.delivered == 3, "the CRM's 200 was read")
            _, status = await center.api("GET", "/status")
    assert crm.events() == wanted
    started, connected, ended = crm.received
    assert started.body["caller_num"] == "5551234" and started.body["call_id"] == caller.uniqueid
    assert (connected.body["agent"], connected.body["queue"]) == ("1002", "support")
    assert ended.body["hung_up_by"] == "caller"
    for got in crm.received:
        assert got.headers["request-line"] == "POST /callcenter/events HTTP/1.1"
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-callcenter-event"] == got.body["event"]
        expected = hmac.new(SECRET.encode(), got.raw, hashlib.sha256).hexdigest()
        assert got.headers["x-callcenter-signature"] == f"sha256={expected}"
    assert len({g.headers["x-callcenter-delivery"] for g in crm.received}) == 3
    [health] = status["webhooks"]
    assert (health["name"], health["delivered"], health["failed"]) == ("crm", 3, 0)
    assert (health["connections"], crm.connections) == (1, 1), "one kept connection"
    assert health["url"] == f"http://127.0.0.1:{crm.port}", "no path: it may be the key"
    shown = format_status(status)
    assert f"Webhook crm http://127.0.0.1:{crm.port}: 3 delivered" in shown


async def test_a_crm_that_is_down_a_moment_gets_the_event_again_and_the_next_ones_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks_module, "RETRY_FIRST", 0.05)
    crm, health = await carol_logs_in_and_out(tmp_path, [503, 502])
    first = crm.received[0].headers["x-callcenter-delivery"]
    tries = [r for r in crm.received if r.headers["x-callcenter-delivery"] == first]
    assert len(tries) == 3, "503, 502, then taken: one event, one delivery id"
    carol = [kind for kind, agent in seen(crm) if agent == "1003"]
    assert carol == ["AgentLoggedIn", "AgentLoggedOut"], "the others waited, in order"
    deliveries = {r.headers["x-callcenter-delivery"] for r in crm.received}
    assert (health["delivered"], health["failed"], health["dropped"]) == (len(deliveries), 0, 0)
    assert "HTTP 502" in health["last_error"]


async def carol_logs_in_and_out(
    tmp_path: Path, statuses: list[int], **crm_settings: Any
) -> tuple[Endpoint, dict[str, Any]]:
    """Agent 1003 logs in and out while the CRM (:class:`Endpoint` with ``crm_settings``)
    answers ``statuses`` first; (the CRM, the webhook's health once every event was
    answered)."""
    async with endpoint(statuses, **crm_settings) as crm:
        config = hook(crm.port, events=["AgentLoggedIn", "AgentLoggedOut"])
        async with running_center(tmp_path, config=config) as center:
            center.daemon.router.login("1003", via="test")
            center.daemon.router.logout("1003", via="test")
            await until(lambda: ("AgentLoggedOut", "1003") in seen(crm), "Carol's logout went")
            webhook = center.daemon.webhooks[0]
            await until(lambda: webhook.delivered + webhook.failed == len(ids(crm)), "answered")
            return crm, webhook.health()


def ids(crm: Endpoint) -> set[str]:
    return {r.headers["x-callcenter-delivery"] for r in crm.received}


def seen(crm: Endpoint) -> list[tuple[str, str]]:
    return [(r.body["event"], r.body.get("agent", "")) for r in crm.received]


async def test_an_event_the_crm_refuses_is_dropped_at_once_and_the_next_goes(
    tmp_path: Path,
) -> None:
    crm, health = await carol_logs_in_and_out(tmp_path, [422])
    deliveries = [r.headers["x-callcenter-delivery"] for r in crm.received]
    assert len(set(deliveries)) == len(deliveries), "the refused one was not tried again"
    assert (health["delivered"], health["failed"]) == (len(deliveries) - 1, 1)
    assert "HTTP 422" in health["last_error"]


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        (b"Content-Length: 0\r\n\r\n", True),
        (b'Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}', True),
        (b"Transfer-Encoding: chunked\r\n\r\n4;x=1\r\nthan\r\n3\r\nks!\r\n0\r\nT: 1\r\n\r\n", True),
        (b"Connection: close\r\nContent-Length: 0\r\n\r\n", False),
    ],
    ids=["empty", "sized body", "chunked body", "connection close"],
)
async def test_the_events_share_one_connection_while_the_crm_keeps_it(
    tmp_path: Path, answer: bytes, kept: bool
) -> None:
    crm, health = await carol_logs_in_and_out(tmp_path, [], answer=answer)
    sent = len(crm.received)
    assert sent >= 2 and health["delivered"] == sent and health["failed"] == 0
    assert crm.connections == (1 if kept else sent)


async def test_a_crm_that_closes_every_connection_unsaid_still_gets_each_event_once(
    tmp_path: Path,
) -> None:
    """The CRM answers, then closes the connection the client keeps: the next event finds it
    gone and goes at once on a new one, neither lost nor counted as a failed try."""
    crm, health = await carol_logs_in_and_out(tmp_path, [], one_per_connection=True)
    deliveries = [r.headers["x-callcenter-delivery"] for r in crm.received]
    assert len(deliveries) >= 2 and len(set(deliveries)) == len(deliveries)
    assert (health["delivered"], health["failed"]) == (len(deliveries), 0)
    assert crm.connections == len(deliveries)


async def test_a_far_crm_gets_the_events_that_piled_up_together_in_order(
    tmp_path: Path,
) -> None:
    """With ``batch``, what waited while the CRM answered goes in one POST: a JSON array."""
    async with endpoint(delay=0.3) as crm:
        wanted = ["AgentLoggedIn", "AgentLoggedOut"]
        config = hook(crm.port, events=wanted, batch=50, secret=SECRET)
        async with running_center(tmp_path, config=config) as center:
            router = center.daemon.router
            for _ in range(5):
                router.login("1003", via="test")
                router.logout("1003", via="test")
            webhook = center.daemon.webhooks[0]
            await until(lambda: webhook.delivered == 12, "every event reached the CRM")
            health = webhook.health()
    posts = crm.received
    events = [(e["event"], e["agent"]) for got in posts for e in got.body]
    assert events == [
        ("AgentLoggedIn", "1001"),
        ("AgentLoggedIn", "1002"),
        *[("AgentLoggedIn", "1003"), ("AgentLoggedOut", "1003")] * 5,
    ]
    assert 2 <= len(posts) < 12, "what piled up went together"
    for got in posts:
        assert got.headers["x-callcenter-event"] == "batch"
        first, _, more = got.headers["x-callcenter-delivery"].rpartition("+")
        assert int(more) == len(got.body) - 1 and first
        expected = hmac.new(SECRET.encode(), got.raw, hashlib.sha256).hexdigest()
        assert got.headers["x-callcenter-signature"] == f"sha256={expected}"
    assert (health["delivered"], health["failed"], health["connections"]) == (12, 0, 1)


async def test_calls_go_on_while_the_crm_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks_module, "RETRY_FIRST", 0.02)
    with socket.socket() as reserved:
        # Bound and never listening: connections to it are refused, and no other test's
        # server can take the port meanwhile (a port closed and left free could be).
        reserved.bind(("127.0.0.1", 0))
        config = hook(reserved.getsockname()[1], max_tries=2)
        async with running_center(tmp_path, config=config) as center:
            center.add_phone("PJSIP/1002", answer_after=0.05)
            caller = await center.caller_talks_to_an_agent("5551234")
            row = await center.cdr(caller.uniqueid)
            webhook = center.daemon.webhooks[0]
            await until(lambda: webhook.failed > 0, "the events were given up")
            health = webhook.health()
    assert row["agent"] == "1002", "the call was not held up"
    assert health["delivered"] == 0 and "cannot reach" in health["last_error"]


async def test_a_crm_too_slow_for_the_events_loses_the_ones_that_do_not_fit(
    tmp_path: Path,
) -> None:
    async with endpoint(delay=0.5) as crm:
        config = hook(crm.port, events=["AgentPaused", "AgentUnpaused"], queue_size=2)
        async with running_center(tmp_path, config=config) as center:
            router = center.daemon.router
            for _ in range(5):
                router.pause("1001", "lunch", via="test")
                router.unpause("1001", via="test")
            webhook = center.daemon.webhooks[0]
            assert webhook.dropped >= 5, "10 events, 1 being sent, 2 waiting"
            dropped = webhook.dropped
    assert dropped + len(crm.received) <= 10


async def test_an_https_crm_is_checked_against_the_configured_authority(tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with endpoint(tls=tls) as crm:
        url = f"https://localhost:{crm.port}/events"
        config = {
            "webhooks": {"crm": {"url": url, "events": ["AgentLoggedIn"], "ca_file": str(ca)}}
        }
        async with running_center(tmp_path, config=config) as center:
            center.daemon.router.login("1003", via="test")
            await until(lambda: ("AgentLoggedIn", "1003") in seen(crm), "delivered over TLS")


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        ({"url": "ftp://crm.example/x"}, "must be an http:// or https:// URL"),
        (
            {"url": "https://crm.example/x", "events": ["AgentConected"]},
            "did you mean AgentConnected?",
        ),
        ({"url": "https://crm.example/x", "max_tries": 0}, "webhooks.crm.max_tries"),
    ],
)
def test_webhook_settings_that_cannot_work_are_config_errors(
    webhook: dict[str, Any], message: str
) -> None:
    text = yaml.safe_dump(
        {"pbx": {"type": "asterisk", "ami": {"secret": "x"}}, "webhooks": {"crm": webhook}}
    )
    with pytest.raises(ConfigError) as refused:
        load_config_text(text)
    assert message in str(refused.value)


ANSWERS = (
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, True),
    (b"HTTP/1.1 204 No Content\r\nX-Trace: a:b\r\n\r\n", 204, True),
    (b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n", 503, True),
    (b"HTTP/1.1 201 Created\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", 201, False),
)
"""HTTP answers a CRM may give, as (bytes, status, whether the connection may go on)."""


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_answers_read_the_same_however_the_bytes_arrive(cuts: list[int]) -> None:
    stream = b"".join(raw for raw, _, _ in ANSWERS)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})

    async def read() -> list[tuple[int, bool]]:
        reader = asyncio.StreamReader()
        for start, end in itertools.pairwise(points):
            reader.feed_data(stream[start:end])
        reader.feed_eof()
        return [await webhooks_module._read_answer(reader) for _ in ANSWERS]

    assert asyncio.run(read()) == [(status, keep) for _, status, keep in ANSWERS]


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\n\r\nthe body runs to the close", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", False),
        (b"garbage\r\n\r\n", False),
    ],
    ids=["1.0", "1.0 keep-alive", "no length", "too long", "bad chunk", "garbled"],
)
async def test_an_answer_whose_end_is_unknown_closes_the_connection(raw: bytes, kept: bool) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    _status, keep = await webhooks_module._read_answer(reader)
    assert keep is kept


async def test_a_connection_closed_before_the_answer_is_stale() -> None:
    reader = asyncio.StreamReader()
    reader.feed_eof()
    with pytest.raises(webhooks_module._Stale):
        await webhooks_module._read_answer(reader)
