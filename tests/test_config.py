"""The config file as ops write it: one YAML file, each problem as ``file:line: field: message``."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from callcenter.config import (
    CallCenterConfig,
    Device,
    Digits,
    Extension,
    MenuNode,
    QueueNode,
    TimeOfDay,
    check_config,
    describe_fields,
    load_config,
    load_config_text,
    read_settings,
)
from callcenter.config.models import BranchNode, QueueFiguresNode
from callcenter.daemon import freeswitch_settings
from callcenter.errors import ConfigError, ConfigIssue

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "callcenter.yaml"
SECRET_ENV = {"CALLCENTER_AMI_SECRET": "x"}

# A small valid config; tests break one line of it and look for that line in the errors.
BASE = """\
pbx:
  ami:
    username: callcenter
routes:
  "800":
    flow: main
flows:
  main:
    start: welcome
    nodes:
      welcome:
        kind: menu
        prompt: welcome-menu
        choices:
          "1": sales
        default: bye
      sales:
        kind: queue
        queue: sales
      bye:
        kind: hangup
queues:
  sales:
    agents: ["1001"]
    ring_timeout: 15
    supervisor: "2000"
agents:
  "1001":
    name: Alice
    device: PJSIP/1001
    pin: "0420"
supervisors:
  "2000":
    name: Sam
    device: PJSIP/2000
"""


def line_no(text: str, fragment: str) -> int:
    """1-based number of the only line of ``text`` containing ``fragment``."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(hits) == 1, (fragment, hits)
    return hits[0]


def problems(text: str, environ: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(
            text, filename="cc.yaml", environ=SECRET_ENV if environ is None else environ
        )
    return caught.value.issues


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_base_config_is_valid() -> None:
    config = load_config_text(BASE, environ=SECRET_ENV)
    assert config.queues["sales"].agents == ["1001"]


# --------------------------------------------------------------------------- the example file


def test_example_file_loads_with_the_secret_from_the_environment() -> None:
    config = load_config(EXAMPLE, environ=SECRET_ENV)
    assert config.pbx.type == "asterisk"
    assert config.pbx.ami.secret.get_secret_value() == "x"
    assert set(config.routes) == {"800", "default"}
    assert config.routes["800"].flow == "main" == config.routes["default"].flow
    main = config.flows["main"]
    welcome = main.nodes[main.start]
    assert isinstance(welcome, MenuNode)
    assert welcome.prompt == "welcome-menu"
    busy, support = (main.nodes[welcome.choices[k]] for k in ("1", "2"))
    assert isinstance(busy, BranchNode) and busy.cases[0].queue == "sales", "a long line"
    figures = main.nodes[busy.default]
    assert isinstance(figures, QueueFiguresNode) and figures.queue == "sales", "callers ahead"
    sales = main.nodes[main.nodes[figures.next].next]  # type: ignore[union-attr]
    assert isinstance(sales, QueueNode) and sales.queue == "sales"
    assert isinstance(support, QueueNode) and support.queue == "support"
    assert config.queues["sales"].agents == ["1001", "1002"]
    assert config.queues["support"].agents == ["1001", "1002", "1003"]
    assert config.queues["support"].supervisor == "2000"
    assert {k: a.name for k, a in config.agents.items()} == {
        "1001": "Alice",
        "1002": "Bob",
        "1003": "Carol",
    }
    assert [k for k, a in config.agents.items() if a.logged_in] == ["1001", "1002"]
    assert config.agents["1003"].device == "PJSIP/1003"
    assert config.supervisors["2000"].name == "Sam"
    assert config.source == EXAMPLE
    assert config.cdr_path_resolved == EXAMPLE.parent / "var" / "cdr.sqlite3"


def test_example_file_has_no_issues() -> None:
    assert check_config(EXAMPLE, environ=SECRET_ENV) == []


def test_example_file_keeps_the_secret_out_and_says_how_to_set_it() -> None:
    (issue,) = check_config(EXAMPLE, environ={})
    assert issue.field == "pbx.ami.secret"
    assert issue.line == line_no(EXAMPLE.read_text(), "ami:")
    assert "CALLCENTER_AMI_SECRET" in issue.message
    assert "CALLCENTER_SECRETS_FILE" in issue.message


# --------------------------------------------------------------------------- YAML coercion


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            '  "1001":\n    name',
            "  1001:\n    name",
            "agents",
            'key 1001: write it as a string: "1001"',
        ),
        (
            '    pin: "0420"',
            "    pin: 0123",
            "agents.1001.pin",
            'YAML reads 0123 as the number 83; write it as a string: "0123"',
        ),
        (
            "    name: Alice",
            "    name: no",
            "agents.1001.name",
            'YAML reads no as false; write it as a string: "no"',
        ),
        (
            "    name: Alice",
            "    name: 9:00",
            "agents.1001.name",
            'YAML reads 9:00 as the number 540; write it as a string: "9:00"',
        ),
        (
            "    device: PJSIP/1001",
            "    device: 1001",
            "agents.1001.device",
            'write it as a string: "1001"',
        ),
        (
            '    agents: ["1001"]',
            "    agents: [1001]",
            "queues.sales.agents[0]",
            'write it as a string: "1001"',
        ),
        (
            '    supervisor: "2000"',
            "    supervisor: 2000",
            "queues.sales.supervisor",
            'write it as a string: "2000"',
        ),
        (
            '          "1": sales',
            "          1: sales",
            "flows.main.nodes.welcome.choices",
            'key 1: write it as a string: "1"',
        ),
        ('  "800":', "  800:", "routes", 'key 800: write it as a string: "800"'),
        (
            '  "2000":\n    name: Sam',
            "  2000:\n    name: Sam",
            "supervisors",
            'key 2000: write it as a string: "2000"',
        ),
        (
            "    username: callcenter",
            "    username: off",
            "pbx.ami.username",
            'YAML reads off as false; write it as a string: "off"',
        ),
        (
            "    ring_timeout: 15",
            "    ring_timeout: 1:30",
            "queues.sales.ring_timeout",
            "base 60 number 90",
        ),
        (
            "    ring_timeout: 15",
            "    ring_timeout: 017",
            "queues.sales.ring_timeout",
            "octal number 15",
        ),
    ],
)
def test_yaml_guesses_are_refused_at_their_line(
    old: str, new: str, field: str, message: str
) -> None:
    text = edit(old, new)
    (issue,) = problems(text)
    assert issue.file == "cc.yaml"
    assert issue.line == line_no(text, new.splitlines()[0])
    assert issue.field == field
    assert message in issue.message, issue.message


def test_a_secret_written_as_a_number_is_refused_without_echoing_it() -> None:
    text = edit("    username: callcenter", "    secret: 987654")
    (issue,) = problems(text, environ={})
    assert (issue.line, issue.field) == (3, "pbx.ami.secret")
    assert "quotes" in issue.message
    assert "987654" not in str(issue)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.sampled_from(
            [
                "yes",
                "No",
                "ON",
                "off",
                "true",
                "~",
                "null",
                "1.5",
                "1e3",
                "0x1F",
                "0o17",
                "017",
                "09",
                "1_000",
                "12:30",
                "1:02:03",
                "2024-01-31",
                ".inf",
                "-.5",
                "+1",
            ]
        ),
        st.text(alphabet="abcdefxyz0123456789:._-+", min_size=1, max_size=8),
    )
)
def test_an_unquoted_agent_name_is_kept_as_typed_or_refused_at_its_line(token: str) -> None:
    text = edit("    name: Alice", f"    name: {token}")
    try:
        config = load_config_text(text, environ=SECRET_ENV)
    except ConfigError as exc:
        (issue,) = exc.issues
        assert issue.line == line_no(text, f"name: {token}")
        if issue.message.startswith("not valid YAML"):  # e.g. a lone ":" or "-"
            return
        assert issue.field == "agents.1001.name"
        assert "string" in issue.message or "empty" in issue.message
    else:
        assert config.agents["1001"].name == token


# --------------------------------------------------------------------------- mistakes ops make


def test_a_misspelt_field_suggests_the_right_one() -> None:
    text = edit("    ring_timeout: 15", "    ring_timout: 15")
    (issue,) = problems(text)
    assert (
        str(issue) == f"cc.yaml:{line_no(text, 'ring_timout')}: queues.sales.ring_timout: "
        "unknown field; did you mean ring_timeout?"
    )


def test_a_misspelt_choice_suggests_the_right_one() -> None:
    text = edit("kind: hangup", "kind: hangpu")
    (issue,) = problems(text)
    assert issue.field == "flows.main.nodes.bye.kind"
    assert issue.line == line_no(text, "hangpu")
    assert 'unknown kind "hangpu"; did you mean hangup?' in issue.message
    text = edit("pbx:\n", "pbx:\n  type: astrisk\n")
    (issue,) = problems(text)
    assert (issue.line, issue.field) == (2, "pbx.type")
    assert "did you mean asterisk?" in issue.message


def test_a_duplicate_key_is_an_error_instead_of_silently_keeping_the_last() -> None:
    text = edit("    ring_timeout: 15\n", "    ring_timeout: 15\n    ring_timeout: 20\n")
    (issue,) = problems(text)
    assert issue.line == line_no(text, "ring_timeout: 20")
    assert issue.field == "queues.sales.ring_timeout"
    assert f"already set on line {line_no(text, 'ring_timeout: 15')}" in issue.message


def test_references_to_things_that_do_not_exist_are_reported_where_they_are_made() -> None:
    text = BASE
    for old, new in [
        ("    flow: main", "    flow: mian"),
        ("    start: welcome", "    start: hello"),
        ('          "1": sales', '          "1": saels'),
        ("        default: bye", "        default: nowhere"),
        ("        queue: sales", "        queue: support"),
        ('    agents: ["1001"]', '    agents: ["1001", "1009"]'),
        ('    supervisor: "2000"', '    supervisor: "2001"'),
    ]:
        text = edit(old, new, text)
    got = [(i.line, i.field, i.message) for i in problems(text)]
    assert got == [
        (line_no(text, "mian"), "routes.800.flow", 'no flow named "mian"; did you mean main?'),
        (
            line_no(text, "hello"),
            "flows.main.start",
            'no node named "hello" (defined under flows.main.nodes: welcome, sales, bye)',
        ),
        (
            line_no(text, "saels"),
            "flows.main.nodes.welcome.choices.1",
            'no node named "saels"; did you mean sales?',
        ),
        (
            line_no(text, "nowhere"),
            "flows.main.nodes.welcome.default",
            'no node named "nowhere" (defined under flows.main.nodes: welcome, sales, bye)',
        ),
        (
            line_no(text, "queue: support"),
            "flows.main.nodes.sales.queue",
            'no queue named "support" (defined under queues: sales)',
        ),
        (
            line_no(text, "1009"),
            "queues.sales.agents[1]",
            'no agent named "1009"; did you mean 1001?',
        ),
        (
            line_no(text, "2001"),
            "queues.sales.supervisor",
            'no supervisor named "2001"; did you mean 2000?',
        ),
    ]


def test_an_unreachable_node_is_reported() -> None:
    text = edit("      bye:\n", "      lost:\n        kind: hangup\n      bye:\n")
    (issue,) = problems(text)
    assert issue.field == "flows.main.nodes.lost"
    assert issue.line == line_no(text, "lost:")
    assert 'never reached from start node "welcome"' in issue.message


def test_every_problem_is_reported_in_line_order_not_just_the_first() -> None:
    text = BASE
    for old, new in [
        ("    username: callcenter", "    username: no"),
        ("    flow: main", "    flow: nope"),
        ("        prompt: welcome-menu", "        prompt: welcome menu"),
        ("    ring_timeout: 15", "    ring_timout: 15"),
        ("    device: PJSIP/1001", "    device: PJSIP1001"),
        ('    pin: "0420"', '    pin: "04a"'),
    ]:
        text = edit(old, new, text)
    issues = problems(text)
    assert [i.field for i in issues] == [
        "pbx.ami.username",
        "routes.800.flow",
        "flows.main.nodes.welcome.prompt",
        "queues.sales.ring_timout",
        "agents.1001.device",
        "agents.1001.pin",
    ]
    assert [i.line for i in issues] == sorted(i.line or 0 for i in issues)
    assert "TECH/resource" in issues[4].message


def test_error_lines_look_exactly_like_file_line_field_message(tmp_path: Path) -> None:
    path = tmp_path / "callcenter.yaml"
    path.write_text(
        edit(
            "    flow: main", "    flow: 7", edit("    ring_timeout: 15", "    ring_timeout: fast")
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=SECRET_ENV)
    lines = str(caught.value).splitlines()
    assert lines == [
        f'{path}:6: routes.800.flow: write it as a string: "7"',
        f"{path}:25: queues.sales.ring_timeout: must be a valid number (got fast)",
    ]
    pattern = re.compile(rf"^{re.escape(str(path))}:\d+: [\w.\[\]]+: \S.*$")
    assert all(pattern.match(line) for line in lines)


def test_broken_yaml_is_reported_with_its_line() -> None:
    (issue,) = problems(edit("    ring_timeout: 15", "\tring_timeout: 15"))
    assert issue.line == line_no(BASE, "ring_timeout")
    assert issue.message.startswith("not valid YAML")


def test_a_file_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    (issue,) = check_config(missing, environ=SECRET_ENV)
    assert str(issue).startswith(f"{missing}: cannot read the file")


def test_anchors_live_under_x_keys_and_merge_into_sections() -> None:
    text = "x-queue: &queue\n  ring_timeout: 7\n  wrapup: 3\n" + edit(
        "    ring_timeout: 15\n", "    <<: *queue\n    wrapup: 4\n"
    )
    queue = load_config_text(text, environ=SECRET_ENV).queues["sales"]
    assert (queue.ring_timeout, queue.wrapup) == (7, 4)


# --------------------------------------------------------------------------- env and secrets


def test_missing_secret_says_both_ways_to_set_it() -> None:
    (issue,) = problems(BASE, environ={})
    assert (issue.line, issue.field) == (2, "pbx.ami.secret")
    assert "export CALLCENTER_AMI_SECRET" in issue.message
    assert "pbx.ami.secret in this file" in issue.message


def test_environment_fills_what_the_file_leaves_out_and_the_file_wins() -> None:
    env = {
        "CALLCENTER_AMI_SECRET": "from-env",
        "CALLCENTER_AMI_HOST": "pbx.example.org",
        "CALLCENTER_AMI_PORT": "15038",
        "CALLCENTER_AMI_USERNAME": "ignored-file-wins",
    }
    ami = load_config_text(BASE, environ=env).pbx.ami
    assert (ami.host, ami.port, ami.username) == ("pbx.example.org", 15038, "callcenter")
    assert ami.secret.get_secret_value() == "from-env"
    text = edit("    username: callcenter", '    username: callcenter\n    secret: "from-file"')
    assert load_config_text(text, environ=env).pbx.ami.secret.get_secret_value() == "from-file"


def test_a_bad_environment_variable_is_reported_by_name() -> None:
    issues = problems(BASE, environ={**SECRET_ENV, "CALLCENTER_AMI_PORT": "five"})
    assert [(i.file, i.line, i.field) for i in issues] == [
        ("environment", None, "CALLCENTER_AMI_PORT")
    ]


def test_secrets_file_env_style(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text(
        "# ops only\nexport CALLCENTER_AMI_SECRET='s3 cret'\nCALLCENTER_ESL_PASSWORD=Clue\n"
    )
    secrets.chmod(0o600)
    config = load_config_text(BASE, environ={"CALLCENTER_SECRETS_FILE": str(secrets)})
    assert config.pbx.ami.secret.get_secret_value() == "s3 cret"
    assert config.pbx.esl.password is not None
    assert config.pbx.esl.password.get_secret_value() == "Clue"


def test_secrets_file_yaml_style_keeps_values_as_typed_and_env_wins(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("ami_secret: 0123\nCALLCENTER_AMI_PORT: 6000\n")
    secrets.chmod(0o600)
    settings_ = read_settings({"CALLCENTER_SECRETS_FILE": str(secrets)})
    assert settings_.ami_secret is not None
    assert settings_.ami_secret.get_secret_value() == "0123"
    assert settings_.ami_port == 6000
    env = {"CALLCENTER_SECRETS_FILE": str(secrets), "CALLCENTER_AMI_PORT": "7000"}
    assert read_settings(env).ami_port == 7000


def test_secrets_file_typo_is_reported_at_its_line(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("CALLCENTER_AMI_SECRET=ok\nCALLCENTER_AMI_SECRT=oops\n")
    (issue,) = problems(BASE, environ={"CALLCENTER_SECRETS_FILE": str(secrets)})
    assert str(issue) == (
        f"{secrets}:2: CALLCENTER_AMI_SECRT: unknown key; did you mean CALLCENTER_AMI_SECRET?"
    )


def test_secrets_never_show_in_repr_or_str() -> None:
    config = load_config_text(BASE, environ={"CALLCENTER_AMI_SECRET": "hunter2"})
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config)
    assert "hunter2" not in config.model_dump_json()


def test_freeswitch_needs_the_event_socket_password_not_the_ami_secret() -> None:
    text = edit("pbx:\n", "pbx:\n  type: freeswitch\n")
    (issue,) = problems(text, environ={})
    assert issue.field == "pbx.esl.password"
    assert "CALLCENTER_ESL_PASSWORD" in issue.message
    config = load_config_text(text, environ={"CALLCENTER_ESL_PASSWORD": "ClueCon"})
    assert config.pbx.type == "freeswitch"


def test_asyncagi_without_the_heartbeat_its_dialplan_reads_is_refused() -> None:
    """The shipped AsyncAGI context would send every caller to the failover."""
    asyncagi = edit(
        "    username: callcenter\n", "    username: callcenter\n  agi:\n    transport: asyncagi\n"
    )
    assert load_config_text(asyncagi, environ=SECRET_ENV).pbx.agi.transport == "asyncagi"
    silent = edit("  agi:\n", "    heartbeat_interval: 0\n  agi:\n", asyncagi)
    (issue,) = problems(silent)
    assert (issue.field, issue.line) == (
        "pbx.ami.heartbeat_interval",
        line_no(silent, "heartbeat_interval"),
    )
    assert "fails every caller over" in issue.message
    fastagi = edit(
        "    username: callcenter\n", "    username: callcenter\n    heartbeat_interval: 0\n"
    )
    assert load_config_text(fastagi, environ=SECRET_ENV).pbx.ami.heartbeat_interval == 0


def test_the_event_socket_link_is_tuned_like_the_ami_link() -> None:
    text = edit(
        "pbx:\n",
        "pbx:\n  type: freeswitch\n  esl:\n    reconnect_min: 2\n    reconnect_max: 60\n"
        "    heartbeat_timeout: 90\n    command_timeout: 15\n",
    )
    config = load_config_text(text, environ={"CALLCENTER_ESL_PASSWORD": "ClueCon"})
    settings = freeswitch_settings(config)
    assert (settings.reconnect_min, settings.reconnect_max) == (2, 60)
    assert (settings.heartbeat_timeout, settings.command_timeout) == (90, 15)
    backwards = edit("reconnect_max: 60", "reconnect_max: 1", text)
    (issue,) = problems(backwards, environ={"CALLCENTER_ESL_PASSWORD": "ClueCon"})
    assert issue.field == "pbx.esl"
    assert "reconnect_max (1.0) must not be less than reconnect_min (2.0)" in issue.message


# --------------------------------------------------------------------------- the models


def test_models_are_frozen() -> None:
    config = load_config_text(BASE, environ=SECRET_ENV)
    with pytest.raises(ValidationError):
        config.queues["sales"].ring_timeout = 1  # type: ignore[misc]


def test_a_config_built_in_code_is_checked_for_dangling_references() -> None:
    with pytest.raises(ValidationError, match='no flow named "zz"'):
        CallCenterConfig.model_validate(
            {"pbx": {"ami": {"secret": "x"}}, "routes": {"1": {"flow": "zz"}}}
        )


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "cc.yaml"
    path.write_text(BASE + "records:\n  cdr_path: data/cdr.db\n")
    assert (
        load_config(path, environ=SECRET_ENV).cdr_path_resolved
        == tmp_path / "etc" / "data" / "cdr.db"
    )
    path.write_text(BASE + f"records:\n  cdr_path: {tmp_path}/abs.db\n")
    assert load_config(path, environ=SECRET_ENV).cdr_path_resolved == tmp_path / "abs.db"


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (TimeOfDay, ["09:00", "23:59", "24:00", "00:00"], ["24:01", "9:60", "0900", "", "9h"]),
        (Digits, ["0", "0420"], ["", "12a", "+1"]),
        (Extension, ["800", "*45", "+4930123", "#"], ["", "8 00", "abc"]),
        (
            Device,
            ["PJSIP/1001", "sofia/internal/1001@pbx", "Local/2002@transfer"],
            ["PJSIP1001", "PJSIP/", "/1001"],
        ),
    ],
)
def test_string_types_for_later_features(kind: object, good: list[str], bad: list[str]) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(kind)
    for value in good:
        assert adapter.validate_python(value) == value
    for value in bad:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)
    with pytest.raises(ValidationError):
        adapter.validate_python(900)


def test_time_of_day_accepts_a_single_digit_hour() -> None:
    assert TypeAdapter(TimeOfDay).validate_python("9:30") == "09:30"


def test_describe_fields_documents_every_field() -> None:
    text = describe_fields()
    assert "queues.<name>.ring_timeout  (seconds/number = 15)" in text
    assert "flows.<name>.nodes.<name>.<menu>.default" in text
    assert (
        "flows.<name>.nodes  (mapping of node, kind: play | menu | collect | branch | schedule"
        " | language | set | lookup | queue_figures | queue | transfer | voicemail | callback"
        " | subflow | goto | return | hangup)"
    ) in text
    assert "Seconds an agent rings before the next agent is tried." in text
    assert textwrap.dedent(text) == text


def test_event_loop_uvloop_without_uvloop_installed_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from callcenter.daemon import loop_factory

    text = BASE + "runtime:\n  event_loop: uvloop\n"
    config = load_config_text(text, environ=SECRET_ENV, source=Path("/etc/cc/callcenter.yaml"))
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with pytest.raises(ConfigError) as info:
        loop_factory(config)
    assert str(info.value).startswith("/etc/cc/callcenter.yaml: runtime.event_loop: uvloop")
    auto = load_config_text(BASE, environ=SECRET_ENV)
    assert loop_factory(auto) is None, "auto falls back to asyncio's loop"
    asyncio_loop = load_config_text(text.replace("uvloop\n", "asyncio\n"), environ=SECRET_ENV)
    assert loop_factory(asyncio_loop) is None


def test_mqtt_is_off_without_its_section_even_with_a_password_in_the_environment() -> None:
    env = {**SECRET_ENV, "CALLCENTER_MQTT_PASSWORD": "s3cret"}
    assert load_config_text(BASE, environ=env).mqtt is None
    on = load_config_text(BASE + "mqtt:\n  username: wallboard\n", environ=env).mqtt
    assert on is not None and on.password is not None
    assert on.password.get_secret_value() == "s3cret"
    assert (on.host, on.port, on.topic_prefix, on.interval) == ("127.0.0.1", 1883, "callcenter", 1)
    written = BASE + "mqtt:\n  username: wallboard\n  password: in-file\n"
    in_file = load_config_text(written, environ=env).mqtt
    assert in_file is not None and in_file.password is not None
    assert in_file.password.get_secret_value() == "in-file", "the file wins over the environment"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            '  topic_prefix: "site1/#"\n',
            "<config>:37: mqtt.topic_prefix: must be an MQTT topic such as",
        ),
        ('  topic_prefix: "callcenter/"\n', "<config>:37: mqtt.topic_prefix: must be an MQTT"),
        ("  interval: 0.01\n", "<config>:37: mqtt.interval: must be greater than or equal to 0.1"),
        ("  password: p\n", "<config>:36: mqtt: a password is only sent with a username"),
        ("  ca_file: ca.pem\n", "<config>:36: mqtt: ca_file is only used with tls"),
        ("  port: 70000\n", "<config>:37: mqtt.port: must be less than or equal to 65535"),
    ],
)
def test_a_broken_mqtt_section_is_refused_at_its_line(lines: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(BASE + "mqtt:\n" + lines, environ=SECRET_ENV)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_the_examples_mqtt_section_loads_once_uncommented() -> None:
    text = EXAMPLE.read_text()
    start = text.index("# mqtt:")
    end = text.index("\n\n", start)
    section = re.sub(r"^# ?", "", text[start:end], flags=re.MULTILINE)
    config = load_config_text(BASE + section + "\n", environ=SECRET_ENV)
    assert config.mqtt is not None
    assert (config.mqtt.username, config.mqtt.topic_prefix) == ("callcenter", "callcenter")


def test_a_supervisors_team_that_no_agent_is_in_is_refused_at_its_line() -> None:
    text = BASE.replace('    pin: "0420"\n', '    pin: "0420"\n    team: red\n')
    text += "    teams: [red, rde]\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ=SECRET_ENV)
    assert str(caught.value) == (
        '<config>:37: supervisors.2000.teams[1]: no team named "rde"; did you mean red?'
    )
    assert load_config_text(text.replace(", rde]", "]"), environ=SECRET_ENV).supervisors[
        "2000"
    ].teams == ["red"]


def test_a_trusted_proxy_that_is_no_address_is_refused_at_its_line() -> None:
    text = BASE + 'api:\n  trusted_proxies: ["127.0.0.1", "10.0.0.0/8", "proxy.lan"]\n'
    [issue] = problems(text)
    assert (issue.line, issue.field) == (line_no(text, "trusted_proxies"), "api.trusted_proxies[2]")
    assert issue.message.startswith("must be an IP address or a network (CIDR)")


def test_a_break_line_without_a_break_limit_is_refused_at_its_team() -> None:
    text = BASE + "teams:\n  night:\n    break_line: true\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ=SECRET_ENV)
    said = str(caught.value)
    assert said.startswith("<config>:"), said
    assert "teams.night: break_line keeps agents waiting for a break over max_paused" in said
    lined = load_config_text(text + "    max_paused: 2\n", environ=SECRET_ENV)
    assert lined.teams["night"].break_line and lined.teams["night"].max_paused == 2
