"""A campaign's lead and do-not-call files as ops write them: numbers written the way people
write them, every problem named by file and line (also by ``callcenter check``), and the
campaign's dialler driven by a scripted switchboard: how many dials at once, what a try that
never happened costs, and the moves its state tables refuse; ops listing, pausing and
resuming a campaign from the command line."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_campaigns import campaign as campaign_config
from test_campaigns import scene

from callcenter.cli import format_campaigns
from callcenter.cli import main as cli_main
from callcenter.config import load_config
from callcenter.errors import ConfigError, EngineError, IllegalTransition
from callcenter.events import (
    CampaignAttemptFailed,
    CampaignLeadAdded,
    CampaignLeadRecycled,
    CampaignLeadRescheduled,
    CampaignStateChanged,
    EngineEvent,
    EventBus,
)
from callcenter.outbound import campaign as campaign_module
from callcenter.outbound import pacing
from callcenter.outbound.campaign import (
    Campaign,
    LeadCall,
    LeadProgress,
    LeadRecord,
    LeadStatus,
    read_lists,
)
from callcenter.outbound.leads import Lead, normalise_number, parse_do_not_call, parse_leads
from callcenter.records.campaigns import AddedLead, CampaignRecorder
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import BASE_CONFIG, merge


def test_numbers_are_read_the_way_people_write_them() -> None:
    leads = parse_leads(
        "number,name\n+1 (555) 100-2000,Ada\n555.100.2001,Alan\n\n0049 30 1234567,Grace\n",
        "leads.csv",
    )
    assert [(lead.id, lead.number, lead.data, lead.line) for lead in leads] == [
        ("+15551002000", "+15551002000", (("name", "Ada"),), 2),
        ("5551002001", "5551002001", (("name", "Alan"),), 3),
        ("0049301234567", "0049301234567", (("name", "Grace"),), 5),
    ]


def test_a_byte_order_mark_and_quoted_commas_are_no_problem() -> None:
    (lead,) = parse_leads('\ufeffid,number,note\nc-1,5551001,"call after 6, not before"\n', "x")
    assert (lead.id, lead.number, lead.data) == (
        "c-1",
        "5551001",
        (("note", "call after 6, not before"),),
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "leads.csv:1: empty: a header line naming a `number` column first"),
        (
            "name,phone\nAda,5551001\n",
            "leads.csv:1: no `number` column (the header names name, phone)",
        ),
        ("number,number\n1,2\n", "leads.csv:1: column 'number' is named twice"),
        ("number,first name\n5551001,Ada\n", "leads.csv:1: column 'first name' is not a name"),
        ("number,name\n5551001,Ada\n5551002\n", "leads.csv:3: 1 fields where the header has 2"),
        ("number\n5551001\ncall me\n", "leads.csv:3: 'call me' is not a phone number"),
        (
            "id,number\na,5551001\nb,5551002\na,5551003\n",
            "leads.csv:4: lead 'a' again (first on line 2)",
        ),
        ('number,name\n5551001,"Ada\n', "leads.csv:2: not CSV"),
    ],
)
def test_a_broken_lead_file_is_refused_naming_the_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_leads(text, "leads.csv")
    assert str(caught.value).startswith(problem)


_number = st.from_regex(r"\+?[1-9][0-9]{5,14}", fullmatch=True)
_cell = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"), max_size=20
).map(str.strip)


@given(
    rows=st.lists(
        st.tuples(_number, _cell, _cell),
        max_size=20,
        unique_by=lambda row: row[0],
    )
)
def test_any_lead_file_a_spreadsheet_writes_reads_back_the_same(
    rows: list[tuple[str, str, str]],
) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "name", "account"])
    writer.writerows(rows)
    leads = parse_leads(out.getvalue(), "leads.csv")
    assert [(lead.number, dict(lead.data)) for lead in leads] == [
        (number, {"name": name, "account": account}) for number, name, account in rows
    ]


@given(st.text(max_size=40))
def test_normalising_never_invents_a_number(text: str) -> None:
    number = normalise_number(text)
    if number is not None:
        digits = [c for c in text if c.isdigit() and c.isascii()]
        assert number.lstrip("+") == "".join(digits)


def test_a_do_not_call_list_takes_comments_and_names_a_bad_line() -> None:
    text = "# opted out\n555-1003  # by phone, 2026-11-30\n\n+1 555 100 2000\n"
    assert parse_do_not_call(text, "dnc.txt") == {"5551003", "+15551002000"}
    with pytest.raises(ConfigError, match=r"dnc\.txt:2: 'Grace' is not a phone number"):
        parse_do_not_call("5551003\nGrace\n", "dnc.txt")


CAMPAIGN = {
    "queue": "sales",
    "leads": "leads.csv",
    "dial": "PJSIP/${number}@trunk",
    "allow": ["_555XXXX"],
    "do_not_call": "dnc.txt",
}


def write_config(tmp_path: Path, **campaign: Any) -> Path:
    config = merge(BASE_CONFIG, {"campaigns": {"spring": {**CAMPAIGN, **campaign}}})
    path = tmp_path / "callcenter.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_check_names_the_config_line_and_the_lead_files_line(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "leads.csv").write_text("number\n5551001\nnot a number\n")
    (tmp_path / "dnc.txt").write_text("")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    (issue,) = caught.value.issues
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "leads:" in t)
    assert (issue.file, issue.line) == (str(path), line)
    assert issue.field == "campaigns.spring.leads"
    assert f"{tmp_path / 'leads.csv'}:3: 'not a number' is not a phone number" in issue.message


def test_check_refuses_a_missing_do_not_call_file_and_an_unknown_queue(tmp_path: Path) -> None:
    path = write_config(tmp_path, queue="salse")
    (tmp_path / "leads.csv").write_text("number\n5551001\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    messages = {i.field: i.message for i in caught.value.issues}
    assert 'no queue named "salse"' in messages["campaigns.spring.queue"]
    assert "did you mean" in messages["campaigns.spring.queue"]
    assert messages["campaigns.spring.do_not_call"].endswith("dnc.txt: no such do-not-call file")


def test_check_refuses_a_campaign_survey_naming_no_flow(tmp_path: Path) -> None:
    path = write_config(tmp_path, survey={"flow": "lead-csta", "score": "rating"})
    (tmp_path / "leads.csv").write_text("number\n5551001\n")
    (tmp_path / "dnc.txt").write_text("")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    (issue,) = caught.value.issues
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "lead-csta" in t)
    assert issue.field == "campaigns.spring.survey.flow"
    assert issue.line is not None and abs(issue.line - line) <= 1
    assert 'no flow named "lead-csta"' in issue.message


def test_a_campaign_needs_somewhere_it_may_dial(tmp_path: Path) -> None:
    path = write_config(tmp_path, allow=[])
    (tmp_path / "leads.csv").write_text("number\n5551001\n")
    (tmp_path / "dnc.txt").write_text("")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    assert [i.field for i in caught.value.issues] == ["campaigns.spring.allow"]


# ---------------------------------------------------------------------- the dialler


class ScriptedSwitchboard:
    """Answers ``dial_lead`` as told: each dial gets an agent at once, then waits on a
    future the test resolves with the outcome. Predictive dials go the same way, ``kinds``
    telling them apart; ``free`` agents are free for them, ``pick_up(lead)`` says that
    lead answered."""

    def __init__(self) -> None:
        self.pbx_up = True
        self.dials: list[tuple[LeadCall, asyncio.Future[str]]] = []
        self.kinds: list[str] = []
        self.free = 1
        self.answered: dict[str, Callable[[], None]] = {}

    async def dial_lead(self, call: LeadCall, reserved: Callable[[], None]) -> str:
        reserved()
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.dials.append((call, outcome))
        self.kinds.append("progressive")
        return await outcome

    async def dial_predictive(
        self, call: LeadCall, placed: Callable[[], None], answered: Callable[[], None]
    ) -> str:
        self.answered[call.lead] = answered
        self.kinds.append("predictive")
        placed()
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.dials.append((call, outcome))
        return await outcome

    def free_agents(self, queue: str) -> int:
        return self.free

    def pick_up(self, lead: str) -> None:
        self.answered[lead]()


async def dialler(
    tmp_path: Path,
    numbers: list[str],
    restored: list[LeadRecord] | None = None,
    *,
    lead_file: str | None = None,
    clock: Callable[[], datetime] | None = None,
    **settings: Any,
) -> tuple[Campaign, ScriptedSwitchboard, list[EngineEvent]]:
    path = write_config(tmp_path, **settings)
    text = lead_file or "number\n" + "".join(f"{n}\n" for n in numbers)
    (tmp_path / "leads.csv").write_text(text)
    (tmp_path / "dnc.txt").write_text("")
    config = load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    board = ScriptedSwitchboard()
    bus = EventBus()
    events: list[EngineEvent] = []
    bus.subscribe(events.append)
    if clock is None:
        campaign = Campaign("spring", config, board, bus)
    else:
        campaign = Campaign("spring", config, board, bus, clock=clock)
    campaign.load(read_lists(config, config.campaigns["spring"]), restored or [])
    return campaign, board, events


async def until(check: Callable[[], object]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.01)


async def test_no_more_dials_at_once_than_the_campaign_has_lines(tmp_path: Path) -> None:
    numbers = [f"555100{n}" for n in range(5)]
    campaign, board, events = await dialler(tmp_path, numbers, lines=2, retry_delay=60)
    steps = 0
    step = campaign._step

    def counted(now: float) -> float | None:
        nonlocal steps
        steps += 1
        return step(now)

    campaign._step = counted  # type: ignore[method-assign]
    campaign.start()
    await until(lambda: len(board.dials) == 2)
    steps_then = steps
    await asyncio.sleep(0.2)
    assert len(board.dials) == 2
    assert steps == steps_then, "with every line busy the dialler sleeps until a dial ends"
    board.dials[0][1].set_result("")
    board.dials[1][1].set_result("no-answer")
    await until(lambda: len(board.dials) == 4)
    assert [call.number for call, _ in board.dials] == numbers[:4]
    for _, outcome in board.dials[2:]:
        outcome.set_result("")
    await until(lambda: len(board.dials) == 5)
    board.dials[4][1].set_result("")
    await until(lambda: campaign.view()["dialing"] == 0)
    view = campaign.view()
    await campaign.stop()
    assert (view["answered"], view["retry"], view["state"]) == (4, 1, "running")
    (failed,) = [e for e in events if isinstance(e, CampaignAttemptFailed)]
    assert (failed.number, failed.final, failed.retry_at is not None) == (numbers[1], False, True)


async def test_a_try_that_never_happened_does_not_use_up_an_attempt(tmp_path: Path) -> None:
    campaign, board, events = await dialler(tmp_path, ["5551001"], attempts=1)
    campaign.start()
    await until(lambda: board.dials)
    board.dials[0][1].set_result("pbx-down")
    await until(lambda: campaign.leads["5551001"].status is LeadStatus.PENDING)
    progress = campaign.leads["5551001"]
    await campaign.stop()
    assert progress.attempts == 0, "the one attempt is still there"
    # Its record said `dialing`: it is written back as a retry with no try used.
    (not_made,) = [e for e in events if isinstance(e, CampaignAttemptFailed)]
    assert (not_made.reason, not_made.attempt, not_made.final) == ("pbx-down", 0, False)
    states = [e.state for e in events if isinstance(e, CampaignStateChanged)]
    assert states == ["running", "stopped"]


async def test_a_lead_whose_last_try_fails_is_given_up_and_the_campaign_finishes(
    tmp_path: Path,
) -> None:
    campaign, board, events = await dialler(tmp_path, ["5551001"], attempts=1)
    campaign.start()
    await until(lambda: board.dials)
    board.dials[0][1].set_result("no-answer")
    await until(lambda: campaign.state == "finished")
    await campaign.stop()
    (failed,) = [e for e in events if isinstance(e, CampaignAttemptFailed)]
    assert (failed.final, failed.retry_at) == (True, None)
    assert campaign.leads["5551001"].status is LeadStatus.FAILED


async def test_recycling_the_busy_leads_of_a_finished_campaign_dials_them_again(
    tmp_path: Path,
) -> None:
    """``campaign recycle --reasons busy``: the lead given up on a busy line is tried
    again, its tries afresh; the one nobody answered stays given up; the campaign runs
    again, then finishes; a restart reads the recycled lead as one to try."""
    numbers = ["5551001", "5551002"]
    campaign, board, events = await dialler(tmp_path, numbers, attempts=1, lines=2)
    campaign.start()
    await until(lambda: len(board.dials) == 2)
    board.dials[0][1].set_result("busy")
    board.dials[1][1].set_result("no-answer")
    await until(lambda: campaign.state == "finished")
    nothing = campaign.recycle(["machine"])
    recycled = campaign.recycle(["busy"], via="api")
    await until(lambda: len(board.dials) == 3)
    board.dials[2][1].set_result("")
    await until(lambda: campaign.state == "finished")
    await campaign.stop()
    (again,) = [e for e in events if isinstance(e, CampaignLeadRecycled)]
    record = CampaignRecorder.fold(again)
    assert record is not None
    states = [e.state for e in events if isinstance(e, CampaignStateChanged)]
    assert nothing == [] and recycled == ["5551001"]
    assert (board.dials[2][0].number, board.dials[2][0].attempt) == ("5551001", 1), "afresh"
    assert (again.reason, again.via) == ("busy", "api")
    assert campaign.leads["5551001"].status is LeadStatus.ANSWERED
    assert campaign.leads["5551002"].status is LeadStatus.FAILED
    assert states[-4:] == ["finished", "running", "finished", "stopped"]
    assert (record.status, record.attempts, record.result) == ("retry", 0, "recycled")


async def test_the_records_of_a_previous_daemon_decide_who_is_called(tmp_path: Path) -> None:
    numbers = ["5551001", "5551002", "5551003"]
    restored = [
        LeadRecord("spring", "5551001", "5551001", "answered", 1),
        LeadRecord("spring", "5551002", "5551002", "retry", 1, retry_at=datetime.now(UTC)),
    ]
    campaign, board, _ = await dialler(tmp_path, numbers, restored)
    campaign.start()
    await until(lambda: len(board.dials) == 1)
    first = board.dials[0][0]
    board.dials[0][1].set_result("")
    await until(lambda: len(board.dials) == 2)
    second = board.dials[1][0]
    board.dials[1][1].set_result("")
    await campaign.stop()
    assert (first.number, first.attempt) == ("5551002", 2), "a retry that is due goes first"
    assert (second.number, second.attempt) == ("5551003", 1)


PREDICTIVE = {"mode": "predictive", "drop_prompt": "spring-sorry", "lines": 20}


async def test_a_predictive_campaign_dials_more_per_free_agent_as_fewer_leads_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two free agents: two dials at first (one per agent); once those rang out the
    dialler knows its leads rarely answer and has six going (max_ratio 3). A lead who
    answers no longer counts as ringing; with no agent free, nothing more is dialled;
    agents freeing up are noticed at their state change."""
    monkeypatch.setattr(pacing, "PRIOR_TRIES", 0)
    monkeypatch.setattr(campaign_module, "PACING_CHECK", 60.0)  # no looking by the clock
    numbers = [f"55510{n:02d}" for n in range(12)]
    campaign, board, _ = await dialler(tmp_path, numbers, retry_delay=60, **PREDICTIVE)
    board.free = 2
    campaign.start()
    await until(lambda: len(board.dials) == 2)
    await asyncio.sleep(0.05)
    assert len(board.dials) == 2, "a new campaign does not overdial"
    for _, outcome in board.dials:
        outcome.set_result("no-answer")
    await until(lambda: len(board.dials) == 8)
    await asyncio.sleep(0.05)
    assert len(board.dials) == 8, "six going at once for two agents"
    board.free = 0
    board.pick_up(board.dials[2][0].lead)
    await asyncio.sleep(0.05)
    assert len(board.dials) == 8, "no agent free: nobody more is called"
    board.free = 3
    campaign.agent_free()
    await until(lambda: len(board.dials) == 12)
    await asyncio.sleep(0.05)
    assert len(board.dials) == 12, "three free agents, five dials still ringing: four more"
    view = campaign.view()
    await campaign.stop()
    assert set(board.kinds) == {"predictive"}
    assert (view["mode"], view["ratio"], view["answer_rate"]) == ("predictive", 3.0, 0.0)


async def test_a_lead_dropped_for_want_of_an_agent_is_called_again_only_with_one_reserved(
    tmp_path: Path,
) -> None:
    campaign, board, events = await dialler(
        tmp_path, ["5551001"], retry_delay=0.05, attempts=3, **PREDICTIVE
    )
    campaign.start()
    await until(lambda: board.dials)
    board.pick_up("5551001")
    board.dials[0][1].set_result("abandoned")
    await until(lambda: len(board.dials) == 2)
    view = campaign.view()
    board.dials[1][1].set_result("")
    await until(lambda: campaign.state == "finished")
    await campaign.stop()
    assert board.kinds == ["predictive", "progressive"]
    (dropped,) = [e for e in events if isinstance(e, CampaignAttemptFailed)]
    assert (dropped.reason, dropped.attempt, dropped.final) == ("abandoned", 1, False)
    assert (view["dropped"], view["abandon_rate"], view["ratio"]) == (1, 100.0, 1.0)
    assert campaign.leads["5551001"].attempts == 2


async def test_a_busy_line_is_tried_again_sooner_than_one_nobody_answers(tmp_path: Path) -> None:
    """``retry_delays`` by outcome: busy after 5 minutes, a machine after 4 hours, the rest
    (``no-answer`` here) after ``retry_delay``."""
    numbers = ["5551001", "5551002", "5551003"]
    delays = {"busy": 300, "machine": 14400}
    campaign, board, events = await dialler(
        tmp_path, numbers, lines=3, retry_delay=3600, retry_delays=delays
    )
    campaign.start()
    await until(lambda: len(board.dials) == 3)
    for (_call, outcome), reason in zip(board.dials, ("busy", "no-answer", "machine"), strict=True):
        outcome.set_result(reason)
    await until(lambda: len([e for e in events if isinstance(e, CampaignAttemptFailed)]) == 3)
    await campaign.stop()
    failed = {e.number: e for e in events if isinstance(e, CampaignAttemptFailed)}
    waits = {
        number: (e.retry_at - e.at).total_seconds()
        for number, e in failed.items()
        if e.retry_at is not None
    }
    assert waits == pytest.approx({"5551001": 300, "5551002": 3600, "5551003": 14400}, abs=2)


def test_a_retry_delay_for_no_such_outcome_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, retry_delays={"voicemail": 60})
    (tmp_path / "leads.csv").write_text("number\n5551001\n")
    (tmp_path / "dnc.txt").write_text("")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    (issue,) = caught.value.issues
    assert issue.field.startswith("campaigns.spring.retry_delays")
    assert "voicemail" in str(issue)


async def test_after_a_restart_a_dropped_lead_is_still_called_only_with_an_agent(
    tmp_path: Path,
) -> None:
    restored = [
        LeadRecord(
            "spring", "5551001", "5551001", "retry", 1, "abandoned", retry_at=datetime.now(UTC)
        )
    ]
    campaign, board, _ = await dialler(tmp_path, ["5551001", "5551002"], restored, **PREDICTIVE)
    campaign.start()
    await until(lambda: len(board.dials) == 1)
    await campaign.stop()
    assert (board.dials[0][0].lead, board.kinds) == ("5551001", ["progressive"])


@pytest.mark.parametrize(
    ("settings", "needed"),
    [({"mode": "predictive"}, "drop_prompt"), ({"machine": "message"}, "machine_prompt")],
)
def test_a_campaign_that_plays_something_must_say_what(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: dict[str, str], needed: str
) -> None:
    """A predictive campaign must say who called when it drops someone; one that leaves a
    message on answering machines must say which."""
    path = write_config(tmp_path, **settings)
    (tmp_path / "leads.csv").write_text("number\n5551001\n")
    (tmp_path / "dnc.txt").write_text("")
    assert cli_main(["check", str(path)]) != 0
    err = capsys.readouterr().err
    assert "campaigns.spring" in err and f"`{needed}:`" in err
    assert f"{path}:" in err


async def test_enabled_turned_off_in_the_config_pauses_the_campaign_at_a_reload(
    tmp_path: Path,
) -> None:
    """What the file says at a reload is what ops want: ``enabled: false`` pauses (the dial
    waiting for an agent is withdrawn), ``true`` again resumes; a reload that leaves
    ``enabled`` alone leaves a pause given through the API alone."""
    campaign, board, events = await dialler(tmp_path, ["5551001", "5551002"])
    campaign.start()
    await until(lambda: board.dials)

    async def reload(**settings: Any) -> None:
        config = load_config(
            write_config(tmp_path, **settings), environ={"CALLCENTER_AMI_SECRET": "x"}
        )
        await campaign.reconfigure(config, read_lists(config, config.campaigns["spring"]))

    await reload(enabled=False)
    paused = campaign.state
    await reload(enabled=True)
    resumed = campaign.state
    campaign.pause("api")
    await reload(enabled=True)
    still = campaign.state
    await campaign.stop()
    assert (paused, resumed, still) == ("paused", "running", "paused")
    states = [(e.state, e.why) for e in events if isinstance(e, CampaignStateChanged)]
    assert states[1:3] == [("paused", "config"), ("running", "config")]


async def test_a_restarted_predictive_campaign_keeps_the_days_abandon_rate(
    tmp_path: Path,
) -> None:
    """The abandon limit is over a day, not since the last start: the records' answers
    and drops of the last 24 hours count (a lead dropped, then put through later, counts
    twice), older ones do not."""
    now = datetime.now(UTC)

    def answered(lead: str, ago: float, dropped_ago: float | None = None) -> LeadRecord:
        dropped = now - timedelta(hours=dropped_ago) if dropped_ago is not None else None
        return LeadRecord(
            "spring", lead, lead, "answered", 1, "answered",
            updated=now - timedelta(hours=ago), dropped_at=dropped,
        )  # fmt: skip

    restored = [
        *(answered(f"55510{n:02d}", 2) for n in range(9)),
        answered("5551020", 1, dropped_ago=3),
        answered("5551021", 30),
        LeadRecord(
            "spring",
            "5551022",
            "5551022",
            "retry",
            1,
            "abandoned",
            dropped_at=now - timedelta(hours=25),
        ),
    ]
    campaign, _, _ = await dialler(tmp_path, ["5551099"], restored, **PREDICTIVE)
    view = campaign.view()
    assert view["abandon_rate"] == round(100 / 11, 2), "1 dropped of 11 answered today"
    assert (view["ratio"], view["dropped"]) == (1.0, 0)


async def test_a_callback_an_agent_sets_can_be_moved_and_called_off(tmp_path: Path) -> None:
    """Ada answered on her second try, Alan on his first. Ada's agent sets a callback and
    moves it later: she is called once, at the later time, her tries counted afresh.
    Alan's agent sets one and calls it off: Alan is answered again with his tries as they
    were, and not called."""
    ada, alan = "5551001", "5551002"
    campaign, board, events = await dialler(tmp_path, [ada, alan], retry_delay=0.05)
    campaign.start()
    for n, outcome in enumerate(("no-answer", "", "")):
        await until(lambda n=n: len(board.dials) > n)
        board.dials[n][1].set_result(outcome)
    await until(lambda: campaign.state == "finished")
    assert [(c.lead, c.attempt) for c, _ in board.dials] == [(ada, 1), (alan, 1), (ada, 2)]
    now = campaign.clock()
    later = now + timedelta(seconds=0.4)
    assert campaign.call_back(ada, now + timedelta(seconds=0.1))
    assert campaign.call_back(ada, later), "moved"
    assert campaign.call_back(alan, later)
    assert campaign.call_back(alan, None), "called off"
    assert not campaign.call_back(alan, None), "nothing left to call off"
    await until(lambda: len(board.dials) == 4)
    waited = (campaign.clock() - now).total_seconds()
    board.dials[3][1].set_result("")
    await asyncio.sleep(0.5)
    await campaign.stop()
    assert (board.dials[3][0].lead, board.dials[3][0].attempt) == (ada, 1), "tries afresh"
    assert waited >= 0.38, "at the time it was moved to, not the first one"
    assert len(board.dials) == 4, "Ada once, Alan not at all"
    alan_now = campaign.leads[alan]
    assert (alan_now.status, alan_now.attempts, alan_now.result) == (
        LeadStatus.ANSWERED,
        1,
        "answered",
    )
    moves = [
        (e.lead, e.retry_at is not None, e.attempts)
        for e in events
        if isinstance(e, CampaignLeadRescheduled)
    ]
    assert moves == [(ada, True, 0), (ada, True, 0), (alan, True, 0), (alan, False, 1)]


def test_check_finds_a_campaigns_missing_sound_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ivr.prompt_folder set, the drop and machine messages a campaign plays are
    looked for like the IVR's prompts, and named by their config line."""
    sounds = tmp_path / "sounds" / "en"
    sounds.mkdir(parents=True)
    (sounds / "spring-sorry.wav").write_bytes(b"")
    path = write_config(
        tmp_path,
        mode="predictive",
        drop_prompt="spring-sorry",
        machine="message",
        machine_prompt="spring-please-call-us",
    )
    text = path.read_text().replace("campaigns:", "ivr:\n  prompt_folder: sounds\ncampaigns:", 1)
    path.write_text(text)
    (tmp_path / "leads.csv").write_text("number\n5551001\n")
    (tmp_path / "dnc.txt").write_text("")
    assert cli_main(["check", str(path)]) != 0
    err = capsys.readouterr().err
    line = text.splitlines().index("    machine_prompt: spring-please-call-us") + 1
    assert f"{path}:{line}: campaigns.spring.machine_prompt: " in err
    assert 'prompt "spring-please-call-us" has no sound file' in err
    assert "spring-sorry" not in err, "the drop message is there"


def test_the_campaign_table_says_how_a_predictive_campaign_dials() -> None:
    view = {
        "id": "spring",
        "queue": "sales",
        "mode": "predictive",
        "state": "running",
        "why": "within the campaign's hours",
        "ratio": 2.25,
        "abandon_rate": 1.43,
        "dropped": 3,
    }
    (_, line) = format_campaigns([view]).splitlines()
    assert line.endswith(
        "within the campaign's hours; predictive: 2.2 dials per free agent, 1.4 % dropped "
        "in 24 h (3 since the start)"
    )


def test_the_lead_table_refuses_a_move_it_does_not_have() -> None:
    progress = LeadProgress(Lead(id="a", number="5551001"))
    progress.move(LeadStatus.DIALING)
    progress.move(LeadStatus.ANSWERED)
    with pytest.raises(IllegalTransition, match="answered -> dialing"):
        progress.move(LeadStatus.DIALING)


async def test_a_stopped_campaign_cannot_be_resumed(tmp_path: Path) -> None:
    campaign, _, _ = await dialler(tmp_path, ["5551001"], enabled=False)
    campaign.start()
    await campaign.stop()
    campaign.resume("api")  # paused only: a stopped campaign stays stopped
    assert campaign.state == "stopped"
    with pytest.raises(IllegalTransition, match="stopped -> running"):
        campaign._move(campaign.state.__class__("running"), "")


async def test_ops_list_pause_and_resume_a_campaign_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the control API, the same on every PBX (Asterisk FastAGI here)."""
    async with scene(tmp_path, campaign_config(enabled=False)) as s:
        api = f"http://127.0.0.1:{s.center.daemon.api.port}"
        run = functools.partial(asyncio.to_thread, cli_main)

        async def output(*argv: str) -> tuple[int, list[str]]:
            """The command's exit status and its lines (the daemon's own log lines, which
            share this test's stdout, left out)."""
            capsys.readouterr()
            code = await run([*argv, "--api", api])
            out = capsys.readouterr()
            lines = (out.out + out.err).splitlines()
            return code, [line for line in lines if not line.startswith("20")]

        listed = await output("campaign", "list")
        resumed = await output("campaign", "resume", "spring")
        state_after_resume = s.view["state"]
        await output("campaign", "pause", "spring")
        status = await output("status")
        missing = await output("campaign", "pause", "autumn")
    assert listed[0] == 0
    assert listed[1][0].split()[:3] == ["campaign", "queue", "state"]
    assert listed[1][1].split()[:6] == ["spring", "sales", "paused", "0/1", "4", "4"]
    assert listed[1][1].endswith("config")
    assert resumed[0] == 0 and state_after_resume == "running"
    assert any(line.startswith("spring") and " paused " in line for line in status[1])
    assert missing[0] != 0 and any("no campaign 'autumn'" in line for line in missing[1])


async def test_report_exports_where_each_lead_stands_as_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = "number,id,name\n5551001,ada,Ada\n0900123456,premium,Premium\n"
    async with scene(tmp_path, campaign_config(), leads) as s:
        # On the line long enough for her answered call to reach the daemon on a loaded
        # machine (else she never talked to anyone and is rightly dialled again).
        s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.5)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["state"] == "finished")
        await s.center.idle(timeout=10)
        for lead in ("ada", "premium"):
            await s.center.daemon.recorder.writer.wait_written(f"campaign-lead:spring:{lead}")
        config = str(s.center.config_path)
        capsys.readouterr()
        code = await asyncio.to_thread(cli_main, ["report", config, "--campaign", "spring"])
        out = capsys.readouterr().out
        unknown = await asyncio.to_thread(cli_main, ["report", config, "--campaign", "autumn"])
        said = capsys.readouterr().err
    rows = list(csv.DictReader(line for line in out.splitlines() if not line.startswith("20")))
    assert code == 0
    assert {r["lead"]: (r["status"], r["attempts"], r["result"]) for r in rows} == {
        "ada": ("answered", "1", "answered"),
        "premium": ("skipped", "0", "not-allowed"),
    }
    assert unknown == 1 and "no campaign 'autumn' in the records (campaigns: spring)" in said


def test_report_prints_the_newest_dispositions_as_csv_or_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    (tmp_path / "leads.csv").write_text("number\n")
    (tmp_path / "dnc.txt").write_text("")
    store = SqliteCdrStore(tmp_path / "var" / "cdr.sqlite3")
    at = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    try:
        for n, code in enumerate(("sale", "no-interest", "callback")):
            store.write_disposition(
                DispositionRecord(
                    f"c-{n}", "1001", code, f"note {n}", "5551001", "sales", "", "",
                    at + timedelta(days=1) if code == "callback" else None, False,
                    at + timedelta(minutes=n),
                )
            )  # fmt: skip
    finally:
        store.close()
    capsys.readouterr()
    assert cli_main(["report", str(path), "--dispositions", "--last", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert cli_main(["report", str(path), "--dispositions", "--json", "--last", "1"]) == 0
    (newest,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["call_id"], r["code"], r["note"]) for r in rows] == [
        ("c-1", "no-interest", "note 1"),
        ("c-2", "callback", "note 2"),
    ], "the newest two, oldest first"
    assert (newest["code"], newest["callback_at"], newest["queue"]) == (
        "callback",
        "2026-12-06T09:00:00+00:00",
        "sales",
    )


OUTCOMES = [
    "",
    "busy",
    "no-answer",
    "rejected",
    "originate-failed",
    "pbx-down",
    "no-agents",
    "boom",
    "abandoned",
]


class RandomSwitchboard:
    """Answers each lead's dials with its script of outcomes (then ``""``); ``boom`` fails
    before an agent is found, the NOT_MADE ones never reserve one; ``abandoned``: they
    answered and were dropped. Notes what it saw, and how each try was made."""

    def __init__(self, scripts: dict[str, list[str]], free: int = 1) -> None:
        self.pbx_up = True
        self.scripts = scripts
        self.free = free
        self.calls: list[LeadCall] = []
        self.counted: dict[str, list[int]] = {}
        self.kinds: dict[str, list[str]] = {}
        self.at_once = 0
        self.most_at_once = 0

    def free_agents(self, queue: str) -> int:
        return self.free

    async def dial_predictive(
        self, call: LeadCall, placed: Callable[[], None], answered: Callable[[], None]
    ) -> str:
        return await self._dial(call, placed, "predictive")

    async def dial_lead(self, call: LeadCall, reserved: Callable[[], None]) -> str:
        return await self._dial(call, reserved, "progressive")

    async def _dial(self, call: LeadCall, reserved: Callable[[], None], kind: str) -> str:
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            await asyncio.sleep(0)
            script = self.scripts[call.number]
            outcome = script.pop(0) if script else ""
            self.calls.append(call)
            if outcome == "boom":
                raise RuntimeError("the switchboard failed")
            if outcome in ("pbx-down", "no-agents"):
                return outcome
            reserved()
            self.counted.setdefault(call.number, []).append(call.attempt)
            self.kinds.setdefault(call.number, []).append(kind)
            return outcome
        finally:
            self.at_once -= 1


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    scripts=st.lists(st.lists(st.sampled_from(OUTCOMES), max_size=6), min_size=1, max_size=6),
    lines=st.integers(1, 3),
    attempts=st.integers(1, 3),
    on_the_list=st.sets(st.integers(0, 5)),
    predictive=st.booleans(),
    free=st.integers(1, 3),
)
def test_whatever_the_pbx_answers_every_lead_ends_answered_failed_or_skipped(
    scripts: list[list[str]],
    lines: int,
    attempts: int,
    on_the_list: set[int],
    predictive: bool,
    free: int,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dialler as a state machine: random PBX outcomes per lead, and afterwards no
    lead is left half-way, none was tried more than ``attempts`` times (tries never made
    do not count), none after answering, none on the do-not-call list, never more dials
    at once than ``lines``; predictive, a lead once dropped is only called again with an
    agent reserved."""
    monkeypatch.setattr(campaign_module, "WAIT_AFTER_NOT_MADE", 0.001)
    monkeypatch.setattr(campaign_module, "PACING_CHECK", 0.001)
    monkeypatch.setattr(campaign_module, "PACING_GAP", 0.001)
    folder = tmp_path_factory.mktemp("dialler")
    numbers = [f"555100{i}" for i in range(len(scripts))]
    dnc = {numbers[i] for i in on_the_list if i < len(numbers)}
    (folder / "leads.csv").write_text("number\n" + "".join(f"{n}\n" for n in numbers))
    (folder / "dnc.txt").write_text("".join(f"{n}\n" for n in dnc))
    mode = PREDICTIVE | {"lines": lines} if predictive else {"lines": lines}
    path = write_config(folder, attempts=attempts, retry_delay=0.001, **mode)
    config = load_config(path, environ={"CALLCENTER_AMI_SECRET": "x"})
    board = RandomSwitchboard({n: list(s) for n, s in zip(numbers, scripts, strict=True)}, free)

    async def run() -> Campaign:
        campaign = Campaign("spring", config, board, EventBus())
        campaign.load(read_lists(config, config.campaigns["spring"]))
        campaign.start()
        async with asyncio.timeout(10):
            while campaign.state != "finished":
                await asyncio.sleep(0.002)
        await campaign.stop()
        return campaign

    campaign = asyncio.run(run())
    assert board.most_at_once <= lines
    for number, script in zip(numbers, scripts, strict=True):
        progress = campaign.leads[number]
        tries = board.counted.get(number, [])
        assert progress.status in (LeadStatus.ANSWERED, LeadStatus.FAILED, LeadStatus.SKIPPED)
        assert tries == list(range(1, len(tries) + 1)), "tries numbered 1, 2, ... in order"
        assert len(tries) <= attempts
        if number in dnc:
            assert progress.status is LeadStatus.SKIPPED and not tries
            continue
        counted = [o for o in script if o not in ("pbx-down", "no-agents", "boom")]
        kinds = board.kinds.get(number, [])
        if not predictive:
            assert set(kinds) <= {"progressive"}
        elif kinds:
            assert kinds[0] == "predictive"
        if "abandoned" in counted[: len(kinds)]:
            after = kinds[counted.index("abandoned") + 1 :]
            assert set(after) <= {"progressive"}, "dropped once: an agent reserved after"
        first_answer = [*counted, ""].index("")
        if first_answer < attempts:
            assert progress.status is LeadStatus.ANSWERED
            assert len(tries) == first_answer + 1, "not called again once answered"
        else:
            assert progress.status is LeadStatus.FAILED
            assert len(tries) == attempts


async def test_each_lead_is_called_within_the_hours_where_they_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monday 15:00 UTC: 16:00 in Berlin, 07:00 in Los Angeles. Ada (Berlin) is called,
    Bob (Los Angeles) waits for 09:00 his time, though he comes first in the file."""
    monkeypatch.setattr(campaign_module, "HOURS_CHECK", 0.01)
    now = [datetime(2026, 12, 7, 15, 0, tzinfo=UTC)]
    leads = "number,id,timezone\n5551002,bob,America/Los_Angeles\n5551001,ada,Europe/Berlin\n"
    campaign, board, _ = await dialler(
        tmp_path,
        [],
        lead_file=leads,
        clock=lambda: now[0],
        hours={"mon-fri": ["09:00-20:00"]},
        timezone="Europe/Berlin",
    )
    campaign.start()
    await until(lambda: board.dials)
    board.dials[0][1].set_result("")
    await asyncio.sleep(0.1)
    state_at_7 = campaign.state
    now[0] = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)  # 09:00 in Los Angeles
    await until(lambda: len(board.dials) == 2)
    board.dials[1][1].set_result("")
    now[0] = datetime(2026, 12, 8, 5, 0, tzinfo=UTC)  # night in both
    await until(lambda: campaign.state == "finished")
    await campaign.stop()
    assert [call.lead for call, _ in board.dials] == ["ada", "bob"]
    assert state_at_7 == "running", "Berlin is within the hours"


async def test_a_campaign_is_closed_when_it_is_night_wherever_its_leads_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(campaign_module, "HOURS_CHECK", 0.01)
    now = [datetime(2026, 12, 7, 23, 0, tzinfo=UTC)]  # midnight in Berlin, 15:00 in LA
    leads = "number,id,timezone\n5551001,ada,Europe/Berlin\n"
    campaign, board, events = await dialler(
        tmp_path, [], lead_file=leads, clock=lambda: now[0], hours={"daily": ["09:00-20:00"]}
    )
    campaign.start()
    await until(lambda: campaign.state == "closed")
    assert not board.dials
    now[0] = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    await until(lambda: board.dials)
    board.dials[0][1].set_result("")
    await until(lambda: campaign.state == "finished")
    await campaign.stop()
    states = [e.state for e in events if isinstance(e, CampaignStateChanged)]
    assert states == ["running", "closed", "running", "finished", "stopped"]


def test_a_lead_in_a_time_zone_that_does_not_exist_is_refused_naming_the_line() -> None:
    with pytest.raises(ConfigError, match=r"leads\.csv:3: timezone 'Europe/Berln' must be"):
        parse_leads("number,timezone\n5551001,Europe/Berlin\n5551002,Europe/Berln\n", "leads.csv")
    (lead,) = parse_leads("number,timezone,name\n5551001,America/Chicago,Ada\n", "x")
    assert (lead.timezone, lead.data) == ("America/Chicago", (("name", "Ada"),))


def test_a_priority_column_ranks_the_leads_and_is_no_data() -> None:
    leads = parse_leads(
        "number,priority,name\n5551001,,Ada\n5551002,-3,Alan\n5551003,7,Grace\n", "x"
    )
    assert [(lead.id, lead.priority) for lead in leads] == [
        ("5551001", 0),
        ("5551002", -3),
        ("5551003", 7),
    ]
    assert [lead.data for lead in leads][2] == (("name", "Grace"),), "priority is no column to show"
    assert [lead.id for lead in sorted(leads, key=lambda lead: lead.rank)] == [
        "5551003",
        "5551001",
        "5551002",
    ]
    for bad in ("high", "1001", "2.5"):
        with pytest.raises(ConfigError, match=rf"leads.csv:2: priority '{bad}' is not a whole"):
            parse_leads(f"number,priority\n5551001,{bad}\n", "leads.csv")


def test_an_added_leads_priority_is_kept_in_the_records(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    try:
        when = datetime(2026, 12, 7, 9, tzinfo=UTC)
        store.write_added_lead(AddedLead("spring", "zoe", "5551009", "", "{}", when, "api", 9))
        (kept,) = store.fetch_added_leads()
    finally:
        store.close()
    assert kept.priority == 9 and kept.as_lead().priority == 9


async def test_a_lead_added_while_a_reload_reads_the_file_is_not_lost(tmp_path: Path) -> None:
    """A reload prepares the leads in a thread, then installs them: a CRM's lead added in
    between stays in the campaign."""
    campaign, _board, events = await dialler(tmp_path, ["5551001"])
    lists = read_lists(campaign.config, campaign.settings)
    prepared = campaign.prepare(lists)
    campaign.add_lead(Lead("c-9", "5551009"), via="api")
    campaign.install(lists, prepared)
    assert set(campaign.leads) == {"5551001", "c-9"}
    assert campaign.view()["pending"] == 2
    (added,) = [e for e in events if isinstance(e, CampaignLeadAdded)]
    assert (added.lead, added.number, added.via) == ("c-9", "5551009", "api")
    with pytest.raises(EngineError, match="has a lead 'c-9' already"):
        campaign.add_lead(Lead("c-9", "5551010"))
