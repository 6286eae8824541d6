"""``callcenter check`` on IVR flows: every problem a caller would suffer is refused with
file:line before the flow goes live."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.config import check_config, load_config
from callcenter.errors import ConfigIssue
from callcenter.testing import BASE_CONFIG, merge

REPO = Path(__file__).resolve().parents[1]
ENV = {"CALLCENTER_AMI_SECRET": "x"}
ROUTES = {"800": {"flow": "ivr"}, "default": {"flow": "ivr"}}


def write(tmp_path: Path, flows: dict[str, Any], **ivr: Any) -> tuple[Path, str]:
    settings = merge(BASE_CONFIG, {"routes": ROUTES, "ivr": ivr})
    settings["flows"] = dict(flows)
    text = yaml.safe_dump(settings, sort_keys=False)
    path = tmp_path / "callcenter.yaml"
    path.write_text(text)
    return path, text


def issues_of(tmp_path: Path, flows: dict[str, Any], **ivr: Any) -> tuple[list[ConfigIssue], str]:
    path, text = write(tmp_path, flows, **ivr)
    return check_config(path, environ=ENV), text


def line_of(text: str, needle: str, after: str = "") -> int:
    """1-based line of the first ``needle`` after the first ``after``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines[start:], start + 1) if needle in line)


def flow(start: str, **nodes: Any) -> dict[str, Any]:
    return {"ivr": {"start": start, "nodes": nodes}}


BYE = {"kind": "hangup", "prompt": "goodbye"}


def test_the_example_config_with_every_node_kind_passes(tmp_path: Path) -> None:
    config = load_config(REPO / "config" / "callcenter.yaml", environ=ENV)
    kinds = {node.kind for f in config.flows.values() for node in f.nodes.values()}
    assert kinds >= {"menu", "collect", "branch", "schedule", "lookup", "voicemail"}
    assert kinds >= {"language", "set", "queue", "transfer", "callback", "subflow", "goto"}
    assert "queue_figures" in kinds


def test_a_loop_that_waits_for_nobody_is_refused_at_its_first_node(tmp_path: Path) -> None:
    issues, text = issues_of(
        tmp_path,
        flow(
            "menu",
            menu={
                "kind": "menu",
                "prompt": "menu",
                "choices": {"1": "bye"},
                "default": "sorry",
            },
            sorry={"kind": "play", "prompts": ["sorry"], "next": "check"},
            check={
                "kind": "branch",
                "cases": [{"dialed": ["800"], "goto": "menu"}],
                "default": "bye",
            },
            bye=BYE,
        ),
    )
    (issue,) = issues
    assert issue.field == "flows.ivr.nodes.menu"
    assert issue.line == line_of(text, "menu:", after="  ivr:")
    assert "loop without waiting for the caller (menu -> sorry -> check -> menu)" in issue.message


def test_a_loop_through_menu_choices_is_fine_but_a_menu_with_no_way_out_is_not(
    tmp_path: Path,
) -> None:
    issues, _ = issues_of(
        tmp_path,
        flow(
            "a",
            a={"kind": "menu", "prompt": "a", "choices": {"1": "b", "9": "bye"}, "default": "bye"},
            b={"kind": "menu", "prompt": "b", "choices": {"1": "a", "2": "c"}, "default": "bye"},
            c={"kind": "menu", "prompt": "c", "choices": {"1": "d"}, "default": "d"},
            d={
                "kind": "menu",
                "prompt": "d",
                "choices": {"1": "c"},
                "on_timeout": "c",
                "default": "c",
            },
            bye=BYE,
        ),
    )
    fields = [(i.field, i.message.split(":")[0]) for i in issues]
    assert ("flows.ivr.nodes.c", "menu without a way out") in fields
    assert ("flows.ivr.nodes.d", "menu without a way out") in fields
    assert not [i for i in issues if i.field in ("flows.ivr.nodes.a", "flows.ivr.nodes.b")]
    silent = [i for i in issues if "loop without waiting" in i.message]
    assert len(silent) == 1 and "c -> d -> c" in silent[0].message


def test_transfers_to_numbers_not_on_the_allow_list_are_refused(tmp_path: Path) -> None:
    issues, text = issues_of(
        tmp_path,
        flow(
            "m",
            m={
                "kind": "menu",
                "prompt": "m",
                "choices": {"1": "ok", "2": "bad", "3": "var"},
                "default": "bye",
            },
            ok={"kind": "transfer", "to": "2105"},
            bad={"kind": "transfer", "to": "+4915112345", "fallback": "bye"},
            var={"kind": "transfer", "to": "${caller_num}"},
            bye=BYE,
        ),
        transfer_allow=["_21XX"],
    )
    by_field = {i.field: i for i in issues}
    assert set(by_field) == {"flows.ivr.nodes.bad.to", "flows.ivr.nodes.var"}
    bad = by_field["flows.ivr.nodes.bad.to"]
    assert bad.line == line_of(text, "to: '+4915112345'")
    assert 'transfer to "+4915112345" is not allowed' in bad.message
    assert "fallback" in by_field["flows.ivr.nodes.var"].message


def test_unknown_references_in_every_new_kind_point_at_their_line(tmp_path: Path) -> None:
    issues, text = issues_of(
        tmp_path,
        flow(
            "b",
            b={
                "kind": "branch",
                "cases": [{"caller_list": "vips", "goto": "nowhere"}],
                "default": "s",
            },
            s={"kind": "subflow", "flow": "helper", "next": "g"},
            g={"kind": "goto", "flow": "ivr", "node": "missing"},
            q={"kind": "callback", "queue": "saless", "next": "s", "default": "s"},
        ),
        number_lists={"vip": ["5551234"]},
    )
    messages = {i.field: i.message for i in issues}
    assert messages["flows.ivr.nodes.b.cases[0].goto"].startswith('no node named "nowhere"')
    assert "did you mean vip?" in messages["flows.ivr.nodes.b.cases[0].caller_list"]
    assert messages["flows.ivr.nodes.s.flow"].startswith('no flow named "helper"')
    assert messages["flows.ivr.nodes.g.node"].startswith('no node named "missing"')
    assert "did you mean sales?" in messages["flows.ivr.nodes.q.queue"]
    assert "never reached" in messages["flows.ivr.nodes.q"]
    goto_line = next(i.line for i in issues if i.field == "flows.ivr.nodes.g.node")
    assert goto_line == line_of(text, "node: missing")


def test_return_outside_a_subflow_and_recursive_subflows_are_refused(tmp_path: Path) -> None:
    flows = {
        **flow("r", r={"kind": "return"}),
        "loop": {
            "start": "again",
            "nodes": {
                "again": {"kind": "subflow", "flow": "loop", "next": "out"},
                "out": {"kind": "return"},
            },
        },
    }
    issues, _ = issues_of(tmp_path, flows)
    messages = {i.field: i.message for i in issues}
    assert messages["flows.ivr.nodes.r"].startswith("`return` outside a subflow")
    assert "nest more than 8 deep" in messages["flows.loop.nodes.again.flow"]


def test_variables_must_be_set_somewhere_and_builtins_are_read_only(tmp_path: Path) -> None:
    issues, _ = issues_of(
        tmp_path,
        flow(
            "s",
            s={"kind": "set", "variables": {"caller_num": "1", "team": "${acount}"}, "next": "q"},
            q={"kind": "queue", "queue": "sales", "priority_from": "prio", "skills": ["${team}"]},
            c={
                "kind": "collect",
                "prompt": "p",
                "variable": "account",
                "next": "q",
                "default": "q",
            },
        ),
    )
    messages = {i.field: i.message for i in issues}
    assert "is set from the call itself" in messages["flows.ivr.nodes.s.variables.caller_num"]
    assert "did you mean account?" in messages["flows.ivr.nodes.s.variables.team"]
    assert 'variable "prio" is never set' in messages["flows.ivr.nodes.q.priority_from"]


def test_queue_figures_set_the_variables_a_play_node_says_and_name_a_real_queue(
    tmp_path: Path,
) -> None:
    issues, text = issues_of(
        tmp_path,
        flow(
            "f",
            f={"kind": "queue_figures", "queue": "sales", "into": "line", "next": "say"},
            say={
                "kind": "play",
                "prompts": [
                    {"say": "number", "value": "${line_waiting}"},
                    {"say": "number", "value": "${line_wait_minutes}"},
                    {"say": "number", "value": "${line_callers}"},
                ],
                "next": "g",
            },
            g={"kind": "queue_figures", "queue": "sailes", "next": "q"},
            q={"kind": "queue", "queue": "sales"},
        ),
    )
    messages = {i.field: i.message for i in issues}
    assert set(messages) == {"flows.ivr.nodes.say.prompts[2]", "flows.ivr.nodes.g.queue"}
    assert 'variable "line_callers" is never set' in messages["flows.ivr.nodes.say.prompts[2]"]
    assert "did you mean sales?" in messages["flows.ivr.nodes.g.queue"]
    line = next(i.line for i in issues if i.field == "flows.ivr.nodes.g.queue")
    assert line == line_of(text, "queue: sailes")


def test_missing_prompt_files_are_found_for_every_language_a_call_can_be_in(
    tmp_path: Path,
) -> None:
    sounds = tmp_path / "sounds"
    for name in ("en/hello.wav", "en/goodbye.gsm", "fr/goodbye.wav", "beep.wav"):
        (sounds / name).parent.mkdir(parents=True, exist_ok=True)
        (sounds / name).write_bytes(b"")
    issues, text = issues_of(
        tmp_path,
        flow(
            "hi",
            hi={"kind": "play", "prompts": ["hello", "beep"], "next": "fr"},
            fr={"kind": "language", "language": "fr", "next": "bye"},
            bye=BYE,
        ),
        prompt_folder="sounds",
    )
    assert issues == [], "hello only plays in English; goodbye exists in both languages"

    issues, text = issues_of(
        tmp_path,
        flow(
            "fr",
            fr={"kind": "language", "language": "fr", "next": "hi"},
            hi={"kind": "play", "prompts": ["beep", "hello"], "next": "bye"},
            bye=BYE,
        ),
        prompt_folder="sounds",
    )
    (issue,) = issues
    assert issue.field == "flows.ivr.nodes.hi.prompts[1]"
    assert issue.line == line_of(text, "- hello")
    assert f'prompt "hello" has no sound file in {sounds}' in issue.message
    assert "fr/hello.*" in issue.message


def test_menu_default_prompts_count_and_a_missing_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "s" / "en").mkdir(parents=True)
    (tmp_path / "s" / "en" / "menu.wav").write_bytes(b"")
    menu = {"kind": "menu", "prompt": "menu", "choices": {"1": "q"}, "default": "q"}
    issues, _ = issues_of(
        tmp_path, flow("m", m=menu, q={"kind": "queue", "queue": "sales"}), prompt_folder="s"
    )
    assert {i.field for i in issues} == {
        "flows.ivr.nodes.m.invalid_prompt",
        "flows.ivr.nodes.m.timeout_prompt",
        "queues.sales.timeout_prompt",
    }
    issues, _ = issues_of(tmp_path, flow("m", m=BYE), prompt_folder="nope")
    assert [(i.field, i.message.split(" does")[0]) for i in issues] == [
        ("ivr.prompt_folder", f"folder {tmp_path / 'nope'}")
    ]


def test_an_agent_announcement_without_its_sound_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "s" / "en").mkdir(parents=True)
    for name in ("goodbye", "queue-timeout"):
        (tmp_path / "s" / "en" / f"{name}.wav").write_bytes(b"")
    path, _ = write(tmp_path, flow("q", q={"kind": "queue", "queue": "sales"}), prompt_folder="s")
    settings = yaml.safe_load(path.read_text())
    settings["queues"]["sales"]["agent_announce"] = "queue-sales"
    text = yaml.safe_dump(settings, sort_keys=False)
    path.write_text(text)
    (issue,) = check_config(path, environ=ENV)
    assert issue.field == "queues.sales.agent_announce"
    assert issue.line == line_of(text, "agent_announce")
    assert 'prompt "queue-sales" has no sound file' in issue.message
    (tmp_path / "s" / "en" / "queue-sales.wav").write_bytes(b"")
    assert check_config(path, environ=ENV) == []


def test_the_prompts_that_tell_agents_the_wait_are_looked_for(tmp_path: Path) -> None:
    (tmp_path / "s" / "en").mkdir(parents=True)
    for name in ("goodbye", "queue-timeout", "queue-minutes"):
        (tmp_path / "s" / "en" / f"{name}.wav").write_bytes(b"")
    path, _ = write(tmp_path, flow("q", q={"kind": "queue", "queue": "sales"}), prompt_folder="s")
    settings = yaml.safe_load(path.read_text())
    settings["queues"]["sales"]["report_holdtime"] = 60
    text = yaml.safe_dump(settings, sort_keys=False)
    path.write_text(text)
    issues = check_config(path, environ=ENV)
    assert {i.field for i in issues} == {"queues.sales.report_holdtime"}
    assert [i.message.split('"')[1] for i in issues] == ["queue-reporthold", "queue-seconds"]
    assert all(i.line == line_of(text, "report_holdtime") for i in issues)


@pytest.mark.parametrize(
    ("node", "field", "words"),
    [
        ({"timezone": "Europe/Berln"}, "timezone", "did you mean Europe/Berlin?"),
        ({"hours": {"mon-fry": ["09:00-17:00"]}}, "hours", "must name weekdays"),
        ({"hours": {"mon": ["17:00-09:00"]}}, "hours.mon[0]", "a range over midnight"),
        ({"holidays": {"country": "XX"}}, "holidays", "is not a country"),
        ({"holidays": {"country": "DE", "subdivision": "ZZ"}}, "holidays", "not a subdivision"),
        ({"holidays": {"dates": ["2026-13-01"]}}, "holidays.dates[0]", '"MM-DD"'),
    ],
)
def test_schedule_fields_are_checked_where_they_are_written(
    tmp_path: Path, node: dict[str, Any], field: str, words: str
) -> None:
    schedule = {
        "kind": "schedule",
        "hours": {"mon-fri": ["09:00-17:00"]},
        "open": "bye",
        "closed": "bye",
        **node,
    }
    issues, _ = issues_of(tmp_path, flow("s", s=schedule, bye=BYE))
    assert issues, "refused"
    issue = issues[0]
    assert issue.field.startswith(f"flows.ivr.nodes.s.{field}")
    assert words in issue.message


def test_an_unquoted_yaml_date_is_accepted_as_a_holiday(tmp_path: Path) -> None:
    path, text = write(
        tmp_path,
        flow(
            "s",
            s={
                "kind": "schedule",
                "hours": {"daily": ["00:00-24:00"]},
                "holidays": {"dates": ["DATE"]},
                "open": "bye",
                "closed": "bye",
            },
            bye=BYE,
        ),
    )
    path.write_text(text.replace("'DATE'", "2026-12-24").replace("DATE", "2026-12-24"))
    config = load_config(path, environ=ENV)
    node = config.flows["ivr"].nodes["s"]
    assert node.kind == "schedule" and node.holidays is not None
    assert node.holidays.dates == ["2026-12-24"]


async def test_callcenter_check_prints_ivr_problems_as_file_line_field(tmp_path: Path) -> None:
    path, text = write(
        tmp_path,
        flow(
            "x",
            x={"kind": "transfer", "to": "0900123456"},
        ),
        transfer_allow=["2100"],
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter.cli",
        "check",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **ENV},
        cwd=REPO,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    line = line_of(text, "to: 0900123456")
    assert f'{path}:{line}: flows.ivr.nodes.x.to: transfer to "0900123456" is not allowed' in (
        err.decode()
    )
