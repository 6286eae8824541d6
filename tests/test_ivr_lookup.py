"""The lookup node's HTTP client against a local server: answers, slow answers, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from callcenter.ivr.lookup import LookupFailed, LookupRequest, extract, fetch_json

Reply = Callable[[bytes], Awaitable[bytes]]


@asynccontextmanager
async def server(reply: Reply) -> AsyncIterator[str]:
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            request = head + (await reader.readexactly(length) if length else b"")
            requests.append(request)
            writer.write(await reply(request))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()
        await srv.wait_closed()


def answer(status: int, body: bytes, extra: str = "") -> Reply:
    async def reply(_request: bytes) -> bytes:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        return head.encode() + body

    return reply


async def test_a_json_answer_is_decoded_and_the_post_body_is_json() -> None:
    seen: list[bytes] = []

    async def reply(request: bytes) -> bytes:
        seen.append(request)
        body = b'{"customer": {"name": "Ada", "tickets": [{"id": 7}]}}'
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async with server(reply) as url:
        got = await fetch_json(
            LookupRequest(
                "POST",
                f"{url}/api?x=1",
                timeout=2,
                headers={"X-Token": "t"},
                body={"number": "+49 30"},
            )
        )
    assert got["customer"]["name"] == "Ada"
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api?x=1 HTTP/1.1\r\n")
    assert b"X-Token: t" in head
    assert json.loads(body) == {"number": "+49 30"}


async def test_a_chunked_answer_is_reassembled() -> None:
    async def reply(_request: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"a":\r\n4\r\n "b"\r\n1\r\n}\r\n0\r\n\r\n'
        )

    async with server(reply) as url:
        assert await fetch_json(LookupRequest("GET", url, timeout=2)) == {"a": "b"}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (answer(500, b"{}"), "HTTP status 500"),
        (answer(404, b"{}"), "HTTP status 404"),
        (answer(200, b"<html>"), "not JSON"),
    ],
)
async def test_errors_and_non_json_answers_fail_the_lookup(reply: Reply, reason: str) -> None:
    async with server(reply) as url:
        with pytest.raises(LookupFailed) as failed:
            await fetch_json(LookupRequest("GET", url, timeout=2))
    assert reason in failed.value.reason


async def test_a_slow_server_fails_the_lookup_at_its_timeout() -> None:
    async def slow(_request: bytes) -> bytes:
        await asyncio.sleep(3)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    async with server(slow) as url:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(LookupFailed) as failed:
            await fetch_json(LookupRequest("GET", url, timeout=0.2))
        assert loop.time() - started < 1.0
    assert failed.value.reason == "no answer within 0.2s"


async def test_a_refused_connection_fails_the_lookup() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(LookupFailed) as failed:
        await fetch_json(LookupRequest("GET", f"http://127.0.0.1:{port}/", timeout=2))
    assert "cannot connect" in failed.value.reason


def test_extract_turns_json_values_into_variable_text() -> None:
    data = {"c": {"name": "Zoë", "vip": True, "n": 3, "tags": ["a"], "none": None}}
    assert extract(data, "c.name") == "Zoë"
    assert extract(data, "c.vip") == "1"
    assert extract(data, "c.n") == "3"
    assert extract(data, "c.tags") == '["a"]'
    assert extract(data, "c.tags.0") == "a"
    assert extract(data, "c.none") == ""
    assert extract(data, "c.missing.deeper") == ""
