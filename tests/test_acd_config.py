"""Queue, agent and skill settings as ops write them: what is accepted, what `check` refuses
(at the right line), and how the router sees it."""

from __future__ import annotations

import textwrap

import pytest

from callcenter.acd.rules import agent_rules, queue_rules
from callcenter.acd.strategies import Strategy
from callcenter.config import load_config_text
from callcenter.errors import ConfigError, ConfigIssue

ENV = {"CALLCENTER_AMI_SECRET": "x"}

BASE = """\
pbx:
  ami:
    username: callcenter
routes:
  "800":
    flow: main
flows:
  main:
    start: q
    nodes:
      q:
        kind: queue
        queue: sales
  bye:
    start: bye
    nodes:
      bye:
        kind: hangup
queues:
  sales:
    agents: ["1001", "1002"]
  overflow:
    agents: ["1002"]
agents:
  "1001":
    name: Alice
    device: PJSIP/1001
  "1002":
    name: Bob
    device: PJSIP/1002
"""


def with_queue(extra: str, *, agents: str = "", acd: str = "") -> str:
    text = BASE.replace(
        '    agents: ["1001", "1002"]\n',
        '    agents: ["1001", "1002"]\n' + textwrap.indent(textwrap.dedent(extra), "    "),
    )
    if agents:
        text = text.replace(
            "    device: PJSIP/1002\n",
            "    device: PJSIP/1002\n" + textwrap.indent(textwrap.dedent(agents), "    "),
        )
    if acd:
        text += "acd:\n" + textwrap.indent(textwrap.dedent(acd), "  ")
    return text


def problems(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="cc.yaml", environ=ENV)
    return caught.value.issues


def line_of(text: str, fragment: str) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(hits) == 1, (fragment, hits)
    return hits[0]


def test_a_full_queue_setup_loads_and_becomes_router_rules() -> None:
    text = with_queue(
        """\
        strategy: agent-with-fewest-calls
        penalties: {"1002": 2}
        member_weights: {"1001": 3}
        weight: 7
        skills: [billing]
        escalation:
          - {after: 0, max_penalty: 0, min_level: 6}
          - {after: 20, max_penalty: 2, min_level: 3}
          - {after: 60}
        wrapup: 5
        no_answer_delay: 3
        busy_delay: 2
        reject_delay: 1
        autopause: 3
        autopause_on: [no-answer, busy]
        ring_in_use: true
        max_length: 10
        join_empty: false
        leave_when_empty: true
        on_timeout: {to: queue, queue: overflow, prompt: please-hold}
        on_full: {to: flow, flow: bye}
        on_empty: callback
        exit_keys:
          "1": {to: voicemail, box: sales}
          "2": callback
        announce_position: true
        announce_holdtime: true
        periodic_announce: [we-value-your-call]
        """,
        agents="""\
        skills: {billing: 7, fr: 4}
        wrapup: 0
        autopause: 1
        """,
        acd="""\
        longest_waiting_first: true
        skills: [billing, fr]
        callback_dial: PJSIP/${number}@trunk
        callback_allow: ["_0X."]
        """,
    )
    config = load_config_text(text, environ=ENV)
    sales = config.queues["sales"]
    assert sales.strategy == "fewest-calls"
    assert sales.on_empty.to == "callback"
    assert sales.exit_keys["2"].to == "callback"
    rules = queue_rules(config)["sales"]
    assert rules.strategy is Strategy.FEWEST_CALLS
    assert rules.members == ("1001", "1002")
    assert [(s.after, s.max_penalty, s.min_level) for s in rules.stages] == [
        (0, 0, 6),
        (20, 2, 3),
        (60, None, 1),
    ]
    assert (rules.penalties["1002"], rules.weights["1001"], rules.weight) == (2, 3.0, 7)
    assert rules.skills == {"billing"} and rules.leave_when_empty and rules.ring_in_use
    assert rules.autopause_on == {"no-answer", "busy"}
    bob = agent_rules(config)["1002"]
    assert (dict(bob.skills), bob.wrapup, bob.autopause) == ({"billing": 7, "fr": 4}, 0, 1)
    assert config.acd.longest_waiting_first


def test_defaults_keep_the_longest_idle_agent_and_no_escalation() -> None:
    rules = queue_rules(load_config_text(BASE, environ=ENV))["sales"]
    assert rules.strategy is Strategy.LONGEST_IDLE
    assert len(rules.stages) == 1 and rules.stages[0].max_penalty is None
    assert not rules.ring_in_use and rules.autopause == 0
    assert rules.autopause_on == {"no-answer"}, "a busy phone pauses nobody unless asked"


@pytest.mark.parametrize(
    ("extra", "fragment", "message"),
    [
        ("strategy: loudest\n", "strategy: loudest", "ringall"),
        ("escalation:\n  - {after: 5}\n", "escalation:", "after: 0"),
        (
            "escalation:\n  - {after: 0, min_level: 3}\n  - {after: 9, min_level: 5}\n",
            "escalation:",
            "only widen",
        ),
        ('penalties: {"1003": 1}\n', "penalties", "not a member"),
        ("on_timeout: {to: queue, queue: nowhere}\n", "on_timeout", 'no queue named "nowhere"'),
        ("on_timeout: {to: queue, queue: sales}\n", "on_timeout", "itself"),
        ("on_full: {to: flow, flow: nope}\n", "on_full", 'no flow named "nope"'),
        ("on_empty: {to: voicemail}\n", "on_empty", "needs `box:`"),
        ('exit_keys: {"2": callback}\n', "exit_keys", "acd.callback_dial"),
        ("on_full: {to: queue, queue: overflow, box: x}\n", "on_full", "only goes with"),
        ("survey: {flow: csta}\n", "survey", 'no flow named "csta"'),
        ("abandoned_callback: {after: 60}\n", "abandoned_callback", "acd.callback_dial"),
        ("on_closed: {to: queue, queue: nowhere}\n", "on_closed", 'no queue named "nowhere"'),
        ("opening: {hours: {}}\n", "opening", "at least 1"),
        ("survey: {flow: bye, score: rating}\n", "survey", 'no flow stores "rating"'),
        ("survey: {flow: bye, opt_in: 1x}\n", "survey", "must be a variable name"),
        ("autopause_on: [bussy]\n", "autopause_on", "did you mean busy?"),
        ("autopause_on: []\n", "autopause_on", "at least 1"),
    ],
)
def test_queue_mistakes_are_refused_at_their_line(extra: str, fragment: str, message: str) -> None:
    text = with_queue(extra)
    issues = problems(text)
    assert any(message in i.message for i in issues), issues
    line = line_of(text, fragment)
    assert any(i.line is not None and line <= i.line <= line + 2 for i in issues), issues


def test_skills_must_be_declared_when_acd_lists_them() -> None:
    text = with_queue(
        "skills: [biling]\n", agents="skills: {frnch: 3}\n", acd="skills: [billing, fr]\n"
    )
    messages = [i.message for i in problems(text)]
    assert any('unknown skill "biling"; did you mean billing?' in m for m in messages), messages
    assert any('unknown skill "frnch"' in m for m in messages), messages


def test_skill_levels_run_from_1_to_10() -> None:
    issues = problems(with_queue("", agents="skills: {fr: 11}\n"))
    assert any("less than or equal to 10" in i.message for i in issues), issues


def test_remote_agents_need_the_dial_template_and_an_allowed_number() -> None:
    remote = BASE.replace("device: PJSIP/1002", "device: external/+4930123456")
    assert any("acd.remote_dial" in i.message for i in problems(remote))
    refused = remote + 'acd:\n  remote_dial: PJSIP/${number}@trunk\n  remote_allow: ["_0049X."]\n'
    (issue,) = problems(refused)
    assert "not a number acd.remote_allow lists" in issue.message
    assert issue.line == line_of(refused, "external/")
    allowed = refused.replace('"_0049X."', '"_+49X."')
    config = load_config_text(allowed, environ=ENV)
    assert agent_rules(config)["1002"].device == "PJSIP/+4930123456@trunk"


def test_dial_templates_need_the_number_placeholder() -> None:
    issues = problems(BASE + "acd:\n  callback_dial: PJSIP/trunk\n")
    assert any("${number}" in i.message for i in issues), issues


def test_a_music_class_the_pbx_cannot_play_is_refused_at_its_line() -> None:
    text = with_queue("hold_music: my music\n")
    (issue,) = problems(text)
    assert issue.line == line_of(text, "hold_music")
    assert "queues.sales.hold_music" in str(issue)
    assert '"my music" is no music class asterisk takes' in issue.message
    slashed = with_queue("hold_music: moh/8000\n")
    assert "letters, digits, _ and -" in problems(slashed)[0].message
    on_freeswitch = slashed.replace(
        "pbx:\n  ami:\n    username: callcenter\n", "pbx:\n  type: freeswitch\n"
    )
    config = load_config_text(on_freeswitch, environ={"CALLCENTER_ESL_PASSWORD": "x"})
    assert config.queues["sales"].hold_music == "moh/8000"


def test_an_agents_schedule_reads_as_opening_hours_and_a_bad_range_is_named_at_its_line() -> None:
    good = with_queue("", agents='schedule: {hours: {mon-fri: ["09:00-17:00"]}}\n')
    schedule = load_config_text(good, environ=ENV).agents["1002"].schedule
    assert schedule is not None and schedule.hours == {"mon-fri": ["09:00-17:00"]}
    text = with_queue("", agents='schedule: {hours: {mon-fri: ["9-17"]}}\n')
    (issue,) = problems(text)
    assert issue.line == line_of(text, "schedule:")
    assert "agents.1002.schedule.hours" in str(issue) and "HH:MM-HH:MM" in str(issue)
    absent = with_queue("", acd="agent_alerts: {absent: 0}\n")
    assert "acd.agent_alerts.absent" in str(problems(absent)[0])


def test_telling_agents_the_wait_takes_a_threshold_in_seconds_at_its_line() -> None:
    config = load_config_text(with_queue("report_holdtime: 60\n"), environ=ENV)
    assert config.queues["sales"].report_holdtime == 60
    assert load_config_text(with_queue(""), environ=ENV).queues["sales"].report_holdtime is None
    for bad in ("-5", "yes", "1:00"):
        text = with_queue(f"report_holdtime: {bad}\n")
        (issue,) = problems(text)
        assert issue.line == line_of(text, "report_holdtime")
        assert "queues.sales.report_holdtime" in str(issue)


def test_the_agents_pause_is_up_to_a_minute_and_refused_at_its_line_otherwise() -> None:
    config = load_config_text(with_queue("member_delay: 1.5\n"), environ=ENV)
    assert config.queues["sales"].member_delay == 1.5
    assert load_config_text(with_queue(""), environ=ENV).queues["sales"].member_delay is None
    for bad in ("0", "-1", "61", "soon", ".inf"):
        text = with_queue(f"member_delay: {bad}\n")
        (issue,) = problems(text)
        assert issue.line == line_of(text, "member_delay")
        assert "queues.sales.member_delay" in str(issue)


def test_an_agent_announcement_that_would_break_the_dial_is_refused_at_its_line() -> None:
    text = with_queue("agent_announce: queue(sales),now\n")
    (issue,) = problems(text)
    assert issue.line == line_of(text, "agent_announce")
    assert "queues.sales.agent_announce" in str(issue)
    assert "letters, digits, '_', '.', '-' and '/' only" in issue.message
    config = load_config_text(with_queue("agent_announce: custom/queue-sales\n"), environ=ENV)
    assert config.queues["sales"].agent_announce == "custom/queue-sales"
    templated = with_queue('agent_announce: "custom/tier-${tier}"\n')
    assert load_config_text(templated, environ=ENV).queues["sales"].agent_announce == (
        "custom/tier-${tier}"
    )
    assert problems(with_queue('agent_announce: "tier-${1x}"\n'))


def test_outside_numbers_for_agents_transfers_need_the_dial_template() -> None:
    text = BASE + 'acd:\n  transfer_allow: ["2100"]\n'
    (issue,) = problems(text)
    assert "transfer_dial (how to dial them" in issue.message
    assert issue.line == line_of(text, "acd:")
    config = load_config_text(text + "  transfer_dial: PJSIP/${number}@trunk\n", environ=ENV)
    assert config.acd.transfer_allow == ["2100"]
