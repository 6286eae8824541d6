"""The control API as a careless or hostile local client sees it: every malformed request
gets a 4xx JSON answer, nothing is logged as a crash, and the API keeps serving."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.live import api as api_module
from callcenter.testing import TRANSPORTS, Center, running_center


async def _raw(center: Center, data: bytes) -> tuple[int, dict[str, object]]:
    """Send ``data`` as it is; the status code and the JSON body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", center.daemon.api.port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def _post(path: str, body: bytes, *, length: bytes | None = None) -> bytes:
    size = str(len(body)).encode() if length is None else length
    return b"POST " + path.encode() + b" HTTP/1.1\r\nContent-Length: " + size + b"\r\n\r\n" + body


CASES = {
    "body not JSON": (_post("/agents/1003/login", b"{login"), 400, "not JSON"),
    "body not UTF-8": (_post("/agents/1003/pause", b'{"reason": "\xff\xfe"}'), 400, "not JSON"),
    "body a JSON list": (_post("/agents/1003/login", b"[1, 2]"), 400, "JSON object"),
    "negative Content-Length": (_post("/agents/1003/login", b"", length=b"-5"), 400, "-5"),
    "Content-Length not a number": (_post("/reload", b"", length=b"ten"), 400, "ten"),
    "body over 64 KiB announced": (_post("/reload", b"", length=b"1000000"), 413, "too large"),
    "body over 64 KiB sent in full": (_post("/reload", b"x" * 300_000), 413, "too large"),
    "header line over 64 KiB": (
        b"GET /status HTTP/1.1\r\nX-Junk: " + b"a" * 70_000 + b"\r\n\r\n",
        431,
        "too long",
    ),
    "endless headers": (b"GET /status HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431, "100"),
    "request line without a path": (b"HELLO\r\n\r\n", 400, "malformed"),
    "unknown route": (b"GET /agents HTTP/1.1\r\n\r\n", 404, "no route"),
    "agent action with GET": (b"GET /agents/1003/login HTTP/1.1\r\n\r\n", 405, "POST"),
    "unknown agent": (_post("/agents/9999/login", b"{}"), 404, "9999"),
    "unknown pause reason": (_post("/agents/1003/pause", b'{"reason": "nap"}'), 400, "nap"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_malformed_request_gets_a_clear_4xx_and_the_api_keeps_serving(
    tmp_path: Path, case: str
) -> None:
    data, expected, words = CASES[case]
    async with running_center(tmp_path) as center:
        with capture_logs() as logs:
            status, body = await _raw(center, data)
        assert status == expected, body
        assert words in str(body["error"])
        assert not [e for e in logs if e.get("log_level") in ("error", "critical")], logs
        status, body = await _raw(center, b"GET /health HTTP/1.1\r\n\r\n")
        assert (status, body["status"]) == (200, "ok")


async def test_an_action_the_pbx_never_finishes_is_answered_504_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A supervisor's listen waits on a PBX that does not answer: the request is answered
    (504, in API_ACTION_LIMIT) instead of holding the client for good; the action is not
    cut halfway, and its end is logged when it comes."""
    monkeypatch.setattr(api_module, "API_ACTION_LIMIT", 0.3)
    async with running_center(tmp_path) as center:
        pbx_answers = asyncio.Event()

        async def monitor(supervisor: str, agent: str, mode: str) -> dict[str, str]:
            await pbx_answers.wait()
            return {"agent": agent, "mode": mode}

        monkeypatch.setattr(center.daemon.switchboard.monitoring, "monitor", monitor)
        with capture_logs() as logs:
            status, body = await center.api("POST", "/supervisors/2000/listen", {"agent": "1001"})
            assert status == 504, body
            assert "not done within 0.3 s" in body["error"]
            status, _ = await center.api("GET", "/status")
            assert status == 200, "the API serves on"
            pbx_answers.set()
            async with asyncio.timeout(5):
                while not [e for e in logs if e["event"] == "api_action_ended_late"]:
                    await asyncio.sleep(0.01)
    (late,) = [e for e in logs if e["event"] == "api_action_ended_late"]
    assert (late["what"], late["outcome"]) == ("POST /supervisors/2000/listen", "done")


HEALTH = b"GET /health HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_health_says_503_while_the_pbx_link_is_down_and_ok_once_it_is_back(
    tmp_path: Path, transport: str
) -> None:
    """What a monitoring probe sees: /health answers for the PBX link, not only for itself."""
    slow_reconnect = {"pbx": {"ami": {"reconnect_min": 1.0, "reconnect_max": 1.0}}}
    async with running_center(
        tmp_path,
        transport=transport,  # type: ignore[arg-type]
        config=slow_reconnect,
    ) as center:
        status, body = await _raw(center, HEALTH)
        assert status == 200 and body["status"] == "ok", body
        up = body["pbx"]
        assert isinstance(up, dict) and up["connected"] is True and "reason" not in up
        await center.drop_pbx_connections()
        async with asyncio.timeout(5):
            while (answer := await _raw(center, HEALTH))[0] == 200:
                await asyncio.sleep(0.01)
        status, body = answer
        assert (status, body["status"]) == (503, "pbx link down")
        down = body["pbx"]
        assert isinstance(down, dict) and down["connected"] is False and down["reason"]
        _, snapshot = await _raw(center, b"GET /status HTTP/1.1\r\n\r\n")
        assert snapshot["pbx"] == down, "/status tells the same"
        async with asyncio.timeout(10):
            while (await _raw(center, HEALTH))[0] != 200:
                await asyncio.sleep(0.05)


async def test_health_stays_200_while_the_disk_is_full_and_says_the_records_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls go on with a full disk; a monitor alerting on ``records.ok`` sees it, and the
    records are written once there is room again."""
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        _, body = await _raw(center, HEALTH)
        store = center.daemon.store
        writer = center.daemon.recorder.writer
        assert center.daemon.queue_log is not None
        center.daemon.queue_log.flush()  # the AGENTLOGIN lines of the agents logged in
        async with asyncio.timeout(5):
            while writer.pending:
                await asyncio.sleep(0.01)
        _, body = await _raw(center, HEALTH)
        records = body["records"]
        assert isinstance(records, dict)
        reports = records.pop("reports")
        assert records == {"ok": True, "unwritten": 0}
        assert reports == {
            "where": "process",
            "worker": None,
            "reading": 0,
            "read": 0,
            "failed": 0,
        }, "no report read yet: no worker"

        def disk_full(sql: str, params: object) -> int:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(store, "_execute", disk_full)
        caller = await center.pbx.call("800", caller_num="5550001")
        await caller.wait_for_prompt("welcome-menu", timeout=5)
        await caller.press("9")
        await caller.wait_ended(timeout=5)
        async with asyncio.timeout(5):
            while (await _raw(center, HEALTH))[1]["records"]["ok"]:  # type: ignore[index]
                await asyncio.sleep(0.02)
        status, body = await _raw(center, HEALTH)
        records = body["records"]
        assert status == 200 and body["status"] == "ok", "calls can still be taken"
        assert isinstance(records, dict)
        assert records["unwritten"] == 1 and "disk is full" in records["error"]
        _, snapshot = await _raw(center, b"GET /status HTTP/1.1\r\n\r\n")
        assert snapshot["records"]["failing_since"] == records["failing_since"]  # type: ignore[index]

        monkeypatch.undo()
        row = await center.cdr(caller.uniqueid, timeout=10)
        _, body = await _raw(center, HEALTH)
    assert row["src"] == "5550001"
    assert {k: v for k, v in body["records"].items() if k != "reports"} == {  # type: ignore[union-attr]
        "ok": True,
        "unwritten": 0,
    }


TOKEN = "k3ep-th1s-0ut-of-g1t"


async def test_with_a_token_only_requests_that_carry_it_are_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"CALLCENTER_API_TOKEN": TOKEN}
    async with running_center(tmp_path, environ=environ) as center:
        for token in (None, "wrong-wrong-wrong-wrong", f"{TOKEN}x"):
            status, answer = await center.api("POST", "/agents/1003/login", {}, token=token)
            assert status == 401 and "needs its token" in answer["error"], token
            assert center.daemon.router.agents["1003"].state == "logged_out"
        status, answer = await center.api("GET", "/status", token=TOKEN)
        assert status == 200 and answer["agents"]
        status, _ = await center.api("POST", "/agents/1003/login", {}, token=TOKEN)
        assert status == 200 and center.daemon.router.agents["1003"].state == "available"
        status, health = await center.api("GET", "/health")
        assert status == 200 and health["status"] == "ok", "monitoring needs no token"
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        capsys.readouterr()
        argv = ["agent", "logout", "1003", "--api", api]
        monkeypatch.delenv("CALLCENTER_API_TOKEN", raising=False)
        assert await asyncio.to_thread(cli_main, argv) == 1
        assert "needs its token" in capsys.readouterr().err
        monkeypatch.setenv("CALLCENTER_API_TOKEN", TOKEN)
        assert await asyncio.to_thread(cli_main, argv) == 0, "the CLI sends the token it has"
        assert center.daemon.router.agents["1003"].state == "logged_out"


@pytest.mark.parametrize(
    ("api", "environ", "message"),
    [
        ({"host": "0.0.0.0"}, {}, "api.host 0.0.0.0 lets other machines control agents"),
        ({"host": "192.0.2.7"}, {}, "set a token too (CALLCENTER_API_TOKEN)"),
        ({}, {"CALLCENTER_API_TOKEN": "short"}, "16 characters or more"),
    ],
)
def test_an_api_open_to_the_network_without_a_token_is_a_config_error(
    api: dict[str, str], environ: dict[str, str], message: str
) -> None:
    text = yaml.safe_dump({"pbx": {"type": "asterisk", "ami": {"secret": "x"}}, "api": api})
    with pytest.raises(ConfigError) as refused:
        load_config_text(text, environ=environ)
    assert message in str(refused.value)
    assert "short" not in str(refused.value).replace("too short", ""), "no secret in the error"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_an_api_open_to_the_network_with_a_token_is_fine(host: str) -> None:
    text = yaml.safe_dump(
        {"pbx": {"type": "asterisk", "ami": {"secret": "x"}}, "api": {"host": host}}
    )
    config = load_config_text(text, environ={"CALLCENTER_API_TOKEN": TOKEN})
    assert config.api.token is not None and config.api.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(config.api)
