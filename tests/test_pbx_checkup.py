"""``callcenter check --pbx``, as a PBX admin runs it after pasting the dialplan and the
manager user: against the demo Asterisk and the demo FreeSWITCH over real TCP, each missing
piece is named with what to do, and a PBX that has everything passes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import main as cli_main
from callcenter.config import load_config
from callcenter.demopbx.asterisk import LOADED_MODULES, DemoAsterisk
from callcenter.demopbx.channels import DemoDialplan
from callcenter.demopbx.freeswitch import LOADED_MODULES as FS_MODULES
from callcenter.demopbx.freeswitch import DemoFreeSwitch
from callcenter.demopbx.fs_phones import AgentPhone as FreeSwitchAgentPhone
from callcenter.demopbx.phones import AgentPhone
from callcenter.pbx.asterisk.driver import AGENT_HEAR_CONTEXT, AGENT_WAIT_CONTEXT
from callcenter.records.roster import AddedAgent, AddedQueue
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import BASE_CONFIG, DEMO_ESL_PASSWORD, DEMO_SECRET, merge

RECORDED = {"queues": {"support": {"record": True}}}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_AMI_SECRET", DEMO_SECRET)
    monkeypatch.setenv("CALLCENTER_ESL_PASSWORD", DEMO_ESL_PASSWORD)


@asynccontextmanager
async def asterisk(**options: Any) -> AsyncIterator[DemoAsterisk]:
    pbx = DemoAsterisk(ami_secret=DEMO_SECRET, login_failure_delay=0.05, **options)
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


def config_for(tmp_path: Path, pbx: DemoAsterisk | DemoFreeSwitch, extra: Any = None) -> Path:
    if isinstance(pbx, DemoAsterisk):
        where = {"pbx": {"ami": {"port": pbx.ami_port}}}
    else:
        esl = {"host": "127.0.0.1", "port": pbx.esl_port, "outbound_listen_port": 0}
        where = {"pbx": {"type": "freeswitch", "esl": esl}}
    settings = merge(merge(merge(BASE_CONFIG, RECORDED), where), extra or {})
    if not isinstance(pbx, DemoAsterisk):
        settings["pbx"].pop("agi", None)
    path = tmp_path / "callcenter.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


async def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main, ["check", "--pbx", str(path)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


async def test_a_pbx_with_everything_the_config_needs_passes_and_says_what_was_looked_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with asterisk() as pbx:
        for device in ("PJSIP/1001", "PJSIP/1002", "PJSIP/1003", "PJSIP/2000"):
            pbx.add_phone(device, AgentPhone())
        ami_port = pbx.ami_port
        code, lines, _ = await check(config_for(tmp_path, pbx), capsys)
    assert code == 0, lines
    assert f"ok    AMI login as callcenter@127.0.0.1:{ami_port}" in lines
    assert "ok    AMI user callcenter may send every action the daemon sends" in lines
    assert any(line.startswith("ok    dialplan context callcenter-conference") for line in lines)
    assert any(line.startswith("ok    module app_mixmonitor (call recording)") for line in lines)
    assert "ok    PJSIP/1003 (agent 1003) registered (NOT_INUSE)" in lines
    assert lines[-1] == "asterisk: 0 problem(s), 0 warning(s)"


async def test_what_the_pbx_lacks_is_named_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manager user without ``originate``, no ChanSpy though a supervisor is configured, a
    callback context nobody pasted, an agent's phone not registered."""
    async with asterisk(
        ami_write="system,call,agi,reporting", modules=LOADED_MODULES - {"app_chanspy"}
    ) as pbx:
        pbx.add_phone("PJSIP/1001", AgentPhone())
        extra = {"acd": {"callback_context": "callbacks-here"}}
        code, lines, _ = await check(config_for(tmp_path, pbx, extra), capsys)
    assert code == 1
    assert (
        "FAIL  AMI user callcenter may not send Originate: add originate to its write= line "
        "in manager.conf"
    ) in lines
    assert (
        "FAIL  module app_chanspy (supervisors listening, whispering, barging) is not loaded: "
        "load it"
    ) in lines
    (context,) = [line for line in lines if "callbacks-here" in line]
    assert context.startswith("FAIL  dialplan context callbacks-here (acd.callback_context")
    assert context.endswith("(the PBX said: Did not find context callbacks-here)")
    assert "warn  PJSIP/1002 (agent 1002): the PBX knows no such phone (yet)" in lines
    assert lines[-1].startswith("asterisk: 3 problem(s), ")


@pytest.mark.parametrize(
    ("extra", "module", "named"),
    [
        (
            {"queues": {"support": {"mailbox": "support", "message_lamp": "support@callcenter"}}},
            "res_mwi_external_ami",
            [
                "FAIL  module res_mwi_external_ami (the queues' message lamps (not beside "
                "app_voicemail)) is not loaded: load it",
                "FAIL  AMI user callcenter may not send MWIUpdate: add call to its write= line "
                "in manager.conf (and load res_mwi_external_ami, which brings it)",
            ],
        ),
        (
            {"queues": {"support": {"hold_music": "ringback"}}},
            "app_playtones",
            [
                "FAIL  module app_playtones (the ring tone of queues with hold_music: ringback) "
                "is not loaded: load it"
            ],
        ),
        (
            {"queues": {"support": {"record": False}}, "agents": {"1002": {"record": True}}},
            "app_mixmonitor",
            ["FAIL  module app_mixmonitor (call recording) is not loaded: load it"],
        ),
        (
            {"acd": {"blf": {"agent": "callcenter-agent-${agent}"}}},
            "func_devstate",
            [
                "FAIL  module func_devstate (busy lamps (acd.blf: custom device states)) is "
                "not loaded: load it"
            ],
        ),
    ],
)
async def test_the_lamps_need_their_modules_and_say_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: dict[str, Any],
    module: str,
    named: list[str],
) -> None:
    async with asterisk(modules=LOADED_MODULES - {module}) as pbx:
        code, lines, _ = await check(config_for(tmp_path, pbx, extra), capsys)
    async with asterisk() as pbx:
        _, loaded, _ = await check(config_for(tmp_path, pbx, extra), capsys)
    assert code == 1
    assert [line for line in named if line not in lines] == []
    assert "ok    AMI user callcenter may send every action the daemon sends" in loaded
    assert any(line.startswith(f"ok    module {module}") for line in loaded)


async def test_a_queue_telling_agents_the_wait_needs_the_pasted_subroutine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"queues": {"support": {"report_holdtime": 30}}}
    unpasted = DemoDialplan.default("agi://127.0.0.1:4573").without(AGENT_HEAR_CONTEXT)
    async with asterisk(dialplan=unpasted) as pbx:
        code, lines, _ = await check(config_for(tmp_path, pbx, extra), capsys)
    async with asterisk() as pbx:
        _, pasted, _ = await check(config_for(tmp_path, pbx, extra), capsys)
    assert code == 1
    (missing,) = [line for line in lines if AGENT_HEAR_CONTEXT in line]
    assert missing.startswith(
        f"FAIL  dialplan context {AGENT_HEAR_CONTEXT} (queues.<q>.report_holdtime: support"
    )
    assert any(line.startswith(f"ok    dialplan context {AGENT_HEAR_CONTEXT}") for line in pasted)


async def test_a_queue_pausing_before_the_caller_needs_the_wait_subroutine_not_the_hear_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"queues": {"support": {"report_holdtime": 30, "member_delay": 2}}}
    unpasted = DemoDialplan.default("agi://127.0.0.1:4573").without(AGENT_WAIT_CONTEXT)
    async with asterisk(dialplan=unpasted) as pbx:
        code, lines, _ = await check(config_for(tmp_path, pbx, extra), capsys)
    assert code == 1
    (missing,) = [line for line in lines if f"context {AGENT_WAIT_CONTEXT}" in line]
    assert missing.startswith(
        f"FAIL  dialplan context {AGENT_WAIT_CONTEXT} (queues.<q>.member_delay: support"
    )
    assert not [line for line in lines if AGENT_HEAR_CONTEXT in line], "that queue never uses it"
    assert any(line.startswith("ok    module app_exec") for line in lines), "ExecIf"


async def test_without_reporting_the_dialplan_is_left_to_the_admin_not_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with asterisk(ami_write="system,call,agi,originate") as pbx:
        code, lines, _ = await check(config_for(tmp_path, pbx), capsys)
    (dialplan,) = [line for line in lines if "dialplan" in line]
    assert dialplan.startswith("warn  cannot see the dialplan (ShowDialPlan needs reporting")
    assert dialplan.endswith(
        "contexts exist: callcenter-callback, callcenter-conference, callcenter-hangup"
    )
    assert code == 0


async def test_a_wrong_secret_or_no_pbx_exit_as_run_does_and_a_taken_port_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with asterisk() as pbx:
            path = config_for(tmp_path, pbx, {"api": {"port": port}})
            _, lines, _ = await check(path, capsys)
            monkeypatch.setenv("CALLCENTER_AMI_SECRET", "wrong")
            wrong, _, refused = await check(path, capsys)
        monkeypatch.setenv("CALLCENTER_AMI_SECRET", DEMO_SECRET)
        gone, _, unreachable = await check(path, capsys)
    assert (
        f"warn  api.port: the control API 127.0.0.1:{port}: in use (is the daemon running already?)"
        in lines
    )
    assert wrong == 2 and "Authentication failed" in refused
    assert gone == 3 and "127.0.0.1" in unreachable


async def test_freeswitch_modules_and_phone_registrations_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pbx = DemoFreeSwitch(password=DEMO_ESL_PASSWORD, modules=FS_MODULES - {"mod_conference"})
    await pbx.start()
    try:
        pbx.add_phone("PJSIP/1001", FreeSwitchAgentPhone())
        esl_port = pbx.esl_port
        code, lines, _ = await check(config_for(tmp_path, pbx), capsys)
    finally:
        await pbx.stop()
    assert code == 1
    assert f"ok    event socket at 127.0.0.1:{esl_port}" in lines
    assert (
        "FAIL  module mod_conference (rooms: consultations, holds, supervisors, open lines) "
        "is not loaded: load it"
    ) in lines
    assert "ok    module mod_local_stream (music for waiting callers)" in lines
    assert "ok    PJSIP/1001 (agent 1001) registered (NOT_INUSE)" in lines
    assert "warn  PJSIP/1002 (agent 1002) not registered now (UNAVAILABLE)" in lines
    assert lines[-1] == "freeswitch: 1 problem(s), 3 warning(s)"


async def test_freeswitch_needs_the_say_module_of_each_language_calls_can_be_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    french = {
        "flows": {
            "french": {
                "start": "fr",
                "nodes": {
                    "fr": {"kind": "language", "language": "fr_FR", "next": "bye"},
                    "bye": {"kind": "hangup"},
                },
            }
        }
    }
    pbx = DemoFreeSwitch(password=DEMO_ESL_PASSWORD)
    await pbx.start()
    try:
        code, lines, _ = await check(config_for(tmp_path, pbx, french), capsys)
    finally:
        await pbx.stop()
    assert code == 1
    assert "ok    module mod_say_en (numbers and times said in en)" in lines
    assert (
        "FAIL  module mod_say_fr (numbers and times said in fr_FR) is not loaded: load it"
    ) in lines


async def test_the_agents_and_queues_added_while_running_are_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Zoe was added with her phone, and a queue pausing before the caller: the records
    say so, and `check --pbx` looks for her phone and for the wait subroutine."""
    async with asterisk(
        dialplan=DemoDialplan.default("agi://127.0.0.1:4573").without(AGENT_WAIT_CONTEXT)
    ) as pbx:
        path = config_for(tmp_path, pbx)
        config = load_config(path)
        store = SqliteCdrStore(config.cdr_path_resolved)
        zoe = {"name": "Zoe", "device": "PJSIP/1010"}
        store.write_added_agent(AddedAgent.of("1010", zoe, datetime.now(UTC), "api"))
        vip = {"agents": ["1010"], "member_delay": 2}
        store.write_added_queue(AddedQueue.of("vip", vip, datetime.now(UTC), "api"))
        store.close()
        code, lines, _ = await check(path, capsys)
    assert code == 1
    assert any("PJSIP/1010 (agent 1010)" in line for line in lines), lines
    (missing,) = [line for line in lines if f"context {AGENT_WAIT_CONTEXT}" in line]
    assert missing.startswith(f"FAIL  dialplan context {AGENT_WAIT_CONTEXT}")
    assert "member_delay: vip" in missing
