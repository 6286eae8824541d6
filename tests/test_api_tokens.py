"""Tokens for the control API's other clients (``api.tokens``): a CRM may read, a callback
form's backend may ask for callbacks, neither may listen to calls or pause agents; each
request they make is logged with their name. ``callcenter token new`` makes them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.live.api import scope_of
from callcenter.testing import CALLBACKS_ON, merge, running_center

OPS = "ops-token-that-may-do-everything"
CRM = "crm-token-reads-only-1234567890"
WEB = "web-form-asks-for-callbacks-123"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS = merge(
    CALLBACKS_ON,
    {
        "api": {
            "token": OPS,
            "tokens": {
                "crm": {"sha256": sha(CRM), "allow": ["read"]},
                "web": {"sha256": sha(WEB), "allow": ["callbacks"]},
            },
        }
    },
)


async def test_each_client_does_what_its_token_allows_and_is_named_in_the_log(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=TOKENS) as center:
        api = center.api
        with capture_logs() as logs:
            answers = {
                "nobody": await api("GET", "/status"),
                "a wrong token": await api("GET", "/status", token="not-a-token-at-all"),
                "crm reads": await api("GET", "/status", token=CRM),
                "crm pauses": await api("POST", "/agents/1001/pause", {"reason": "x"}, token=CRM),
                "crm listens": await api(
                    "POST", "/supervisors/2000/listen", {"agent": "1001"}, token=CRM
                ),
                "crm fetches a recording": await api("GET", "/calls/c1/recording", token=CRM),
                "web reads": await api("GET", "/status", token=WEB),
                "web asks": await api(
                    "POST", "/callbacks", {"number": "5551234", "queue": "sales"}, token=WEB
                ),
                "ops pauses": await api(
                    "POST", "/agents/1001/pause", {"reason": "lunch"}, token=OPS
                ),
                "health": await api("GET", "/health"),
            }
    codes = {what: status for what, (status, _) in answers.items()}
    assert codes == {
        "nobody": 401, "a wrong token": 401, "crm reads": 200, "crm pauses": 403,
        "crm listens": 403, "crm fetches a recording": 403, "web reads": 403,
        "web asks": 200, "ops pauses": 200, "health": 200,
    }  # fmt: skip
    assert answers["crm pauses"][1]["error"] == (
        "token 'crm' may not do this (it needs 'agents'; api.tokens.crm.allow has read)"
    )
    asked = [(e["by"], e["method"], e["route"]) for e in logs if e["event"] == "api_request"]
    assert asked == [("crm", "GET", "/status"), ("web", "POST", "/callbacks")]
    refused = [(e["by"], e["scope"]) for e in logs if e["event"] == "api_request_refused"]
    assert refused == [
        ("crm", "agents"),
        ("crm", "supervise"),
        ("crm", "recordings"),
        ("web", "read"),
    ]


@pytest.mark.parametrize(
    ("method", "route", "scope"),
    [
        ("GET", "/status", "read"),
        ("GET", "/events", "read"),
        ("GET", "/calls", "read"),
        ("GET", "/calls/1796.1/recording", "recordings"),
        ("GET", "/voicemails/1796.2/audio", "recordings"),
        ("POST", "/callbacks", "callbacks"),
        ("POST", "/callbacks/web-1/cancel", "callbacks"),
        ("POST", "/agents/1001/dial", "agents"),
        ("POST", "/supervisors/2000/barge", "supervise"),
        ("POST", "/calls/1796.1/withdraw", "queues"),
        ("POST", "/voicemails/1796.2/take", "voicemails"),
        ("POST", "/reload", "admin"),
        ("POST", "/erasures", "admin"),
        ("POST", "/notices", "admin"),
    ],
)
def test_every_route_needs_one_scope(method: str, route: str, scope: str) -> None:
    assert scope_of(method, route) == scope


def test_token_new_prints_a_token_and_the_config_that_accepts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["token", "new", "crm", "--allow", "read,callbacks"]) == 0
    printed = capsys.readouterr().out
    token = printed.splitlines()[1].strip()
    entry = re.search(r"crm: \{sha256: ([0-9a-f]{64}), allow: \[read, callbacks\]\}", printed)
    assert entry is not None and entry.group(1) == sha(token)
    config = load_config_text(
        f"api:\n  tokens:\n    crm: {{sha256: {entry.group(1)}, allow: [read, callbacks]}}\n",
        environ={"CALLCENTER_AMI_SECRET": "x"},
    )
    assert config.api.tokens["crm"].allow == ["read", "callbacks"]
    with pytest.raises(SystemExit):
        cli_main(["token", "new", "crm", "--allow", "read,everything"])
    assert "--allow: one or more of read, recordings" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ('{crm: {sha256: "abc", allow: [read]}}', "not a SHA-256: 64 lower-case hex digits"),
        (f"{{crm: {{sha256: {sha(OPS)}, allow: [read]}}}}", "is the same token as token"),
        (
            f"{{a: {{sha256: {sha(CRM)}, allow: [read]}}, "
            f"b: {{sha256: {sha(CRM)}, allow: [read]}}}}",
            "is the same token as api.tokens.a",
        ),
        (f"{{crm: {{sha256: {sha(CRM)}, allow: [listen]}}}}", "must be one of read, recordings"),
    ],
)
def test_a_broken_token_entry_is_refused_at_its_line(tokens: str, message: str) -> None:
    text = f"api:\n  token: {OPS}\n  tokens: {tokens}\n"
    with pytest.raises(ConfigError) as refused:
        load_config_text(text, filename="cc.yaml", environ={"CALLCENTER_AMI_SECRET": "x"})
    assert any(message in i.message and i.line is not None for i in refused.value.issues), (
        refused.value.issues
    )


def test_named_tokens_alone_are_enough_to_open_the_api_to_other_machines() -> None:
    text = f"api:\n  host: 0.0.0.0\n  tokens: {{crm: {{sha256: {sha(CRM)}, allow: [read]}}}}\n"
    config = load_config_text(text, environ={"CALLCENTER_AMI_SECRET": "x"})
    assert config.api.token is None
