"""The audit trail (``audit_log``): every change asked of the control API and the
desktops, and every read of a person's voice or history, with who asked, from where and
what they were answered, read back by ``GET /audit`` and ``callcenter report --audit``;
personal values never kept. Over real TCP, as the CRM, ops and an agent's browser ask."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_api_tokens import CRM, OPS, TOKENS, sha

from callcenter.cli import main as cli_main
from callcenter.live.api import scope_of
from callcenter.records.audit import HIDDEN, MASK, MAX_VALUE, detail_of, hidden
from callcenter.testing import DesktopBrowser, merge, running_center, until

AUDITED = merge(
    TOKENS,
    {
        "agents": {"1001": {"pin": "1111"}},
        "api": {"tokens": {"crm": {"sha256": sha(CRM), "allow": ["read", "agents", "callbacks"]}}},
    },
)


async def test_who_paused_whom_and_who_looked_up_a_number_is_kept_without_the_number(
    tmp_path: Path,
) -> None:
    """The CRM pauses Alice, asks for a callback and looks up a caller's calls; it is
    refused a reload; a stranger's token is refused; Alice mistypes her PIN on the
    desktop, then pauses for lunch there. Reading the status is no change: not kept. The
    trail names each, from where, with the answer; the caller's number is nowhere in it;
    only an admin token reads it."""
    async with running_center(tmp_path, config=AUDITED) as center:
        api = center.api
        await api("POST", "/agents/1001/pause", {"reason": "lunch"}, token=CRM)
        await api("POST", "/agents/1001/unpause", {}, token=CRM)
        await api("POST", "/callbacks", {"number": "5551234", "queue": "sales"}, token=CRM)
        await api("GET", "/calls?number=5551234&last=5", token=CRM)
        await api("GET", "/status", token=CRM)
        await api("POST", "/reload", {}, token=CRM)
        await api("POST", "/agents/1001/pause", {"reason": "x"}, token="a-stranger-guessing-it")
        alice = DesktopBrowser(center.daemon.api.port)
        await alice.sign_in("1001", "9999")
        await alice.sign_in("1001", "1111")
        await alice.press("Pause: lunch")
        await until(lambda: center.daemon.router.agents["1001"].state == "paused")
        writer = center.daemon.recorder.writer
        await until(lambda: writer.health()["unwritten"] == 0)
        status, trail = await api("GET", "/audit", token=OPS)
        refused = await api("GET", "/audit", token=CRM)
        mine = await api("GET", "/audit?who=agent:1001", token=OPS)
        path = center.config_path
    assert status == 200, trail
    rows = [(r["who"], r["method"], r["route"], r["status"]) for r in trail["rows"]]
    assert rows[:9] == [
        ("crm", "POST", "/agents/1001/pause", 200),
        ("crm", "POST", "/agents/1001/unpause", 200),
        ("crm", "POST", "/callbacks", 200),
        ("crm", "GET", "/calls", rows[3][3]),
        ("crm", "POST", "/reload", 403),
        ("unknown", "POST", "/agents/1001/pause", 401),
        ("agent:1001", "POST", "/desktop/sign-in", rows[6][3]),
        ("agent:1001", "POST", "/desktop/sign-in", 303),
        ("agent:1001", "POST", "/desktop/act", 303),
    ], rows
    assert rows[6][3] >= 400, "the wrong PIN was refused"
    details = [r["detail"] for r in trail["rows"]]
    assert details[0] == {"body": {"reason": "lunch"}}
    assert details[2] == {"body": {"number": MASK, "queue": "sales"}}
    assert details[3] == {"query": {"last": "5", "number": MASK}}
    assert details[7]["form"]["pin"] == MASK and details[7]["form"]["id"] == "1001"
    assert details[8]["form"]["action"] == "pause" and details[8]["form"]["reason"] == "lunch"
    assert {r["peer"] for r in trail["rows"]} == {"127.0.0.1"}
    assert "5551234" not in json.dumps(trail), "the caller's number is never kept"
    assert refused[0] == 403, "reading the trail is the admins'"
    assert [r["route"] for r in mine[1]["rows"]] == [
        "/desktop/sign-in",
        "/desktop/sign-in",
        "/desktop/act",
    ]
    code, out = await _report(path, "--audit", "--who", "crm", "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["route"] for line in lines] == [
        "/agents/1001/pause",
        "/agents/1001/unpause",
        "/callbacks",
        "/calls",
        "/reload",
    ]
    code, csv = await _report(path, "--audit")
    assert code == 0 and csv.splitlines()[0] == "at,who,peer,method,route,status,detail"
    wrong = await _report(path, "--pauses", "--who", "crm")
    assert wrong[0] == 2


async def _report(path: Path, *args: str) -> tuple[int, str]:
    """``callcenter report <config> ARGS``: exit status and stdout."""
    import contextlib
    import io

    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                return cli_main(["report", str(path), *args])
            except SystemExit as exc:
                return int(exc.code or 0)

    code = await asyncio.to_thread(run)
    return code, out.getvalue()


def test_reading_the_trail_needs_an_admin_token() -> None:
    assert scope_of("GET", "/audit") == "admin"
    assert scope_of("GET", "/status") == "read"


def test_secrets_and_a_persons_values_are_masked_at_any_depth_and_long_texts_cut() -> None:
    asked = {
        "pin": "1234",
        "data": {"topic": "invoice"},
        "settings": {"pin": "9999", "name": "Zoe"},
        "text": "x" * 500,
        "to": "",
    }
    assert hidden(asked) == {
        "pin": MASK,
        "data": MASK,
        "settings": {"pin": MASK, "name": "Zoe"},
        "text": "x" * MAX_VALUE + "…",
        "to": "",
    }


_VALUES = st.recursive(
    st.text(alphabet="abcdefxyz -", max_size=30) | st.integers() | st.none() | st.booleans(),
    lambda inner: st.dictionaries(st.sampled_from([*HIDDEN, "queue", "reason"]), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.dictionaries(st.sampled_from([*HIDDEN, "queue", "agent"]), _VALUES, max_size=6),
    st.from_regex(r"\+[0-9]{6,12}", fullmatch=True),
)
def test_no_hidden_field_ever_keeps_its_value(body: dict[str, Any], number: str) -> None:
    """Whatever a client sends, a hidden field's value (a number, a PIN) never reaches the
    trail."""
    body = {**body, "number": number, "pin": number}
    detail = json.loads(detail_of(body, {"number": number}, {"number": number}))

    def check(fields: Any) -> None:
        if isinstance(fields, dict):
            for name, value in fields.items():
                if name in HIDDEN and value not in (None, "", [], {}):
                    assert value == MASK, (name, value)
                check(value)

    check(detail)
    assert number not in json.dumps(detail)
