"""Quality scorecards (``evaluation_forms``): a supervisor scores an agent's call from the
desktop's review of their calls or through ``POST /calls/<id>/evaluation``; the
``evaluations`` table keeps one per call and supervisor (again: replaced), in SQLite and
PostgreSQL alike; ``report --evaluations`` prints them with each agent's mean."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_postgres_records import both_stores

from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.events import CallEvaluated, EngineEvent, EvaluationReplied
from callcenter.live.api import scope_of
from callcenter.records.evaluations import Evaluation, agent_means, calibration, score
from callcenter.records.store import SqliteCdrStore
from callcenter.testing import Center, DesktopBrowser, merge, running_center

FORMS = {
    "evaluation_forms": {
        "standard": {
            "criteria": {"greeting": 10, "solved": 50, "tone": 40},
            "pass_percent": 80,
        }
    },
    "supervisors": {"2000": {"pin": "2468"}},
}
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def scorecard(call_id: str, supervisor: str, points: int, **changes: object) -> Evaluation:
    fields: dict[str, object] = {
        "call_id": call_id,
        "supervisor": supervisor,
        "agent": "1001",
        "queue": "support",
        "form": "standard",
        "scores": (("greeting", 10), ("solved", points - 10), ("tone", 0)),
        "points": points,
        "max_points": 100,
        "passed": points >= 80,
        "comment": "ok",
        "at": NOW,
    }
    fields.update(changes)
    return Evaluation(**fields)  # type: ignore[arg-type]


def test_scorecards_are_kept_and_replaced_alike_in_postgresql_and_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    seen = []
    for store in both_stores(tmp_path, postgres_url):
        store.write_evaluation(scorecard("c1", "2000", 60))
        store.write_evaluation(scorecard("c1", "2000", 90, comment="listened again"))
        store.write_evaluation(scorecard("c1", "2001", 70))
        store.write_evaluation(scorecard("c2", "2000", 50, agent="1002"))
        day = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
        every = store.fetch_evaluations_between(*day)
        alices = store.fetch_evaluations_between(*day, agents=["1001"])
        purged = store.purge(NOW + timedelta(minutes=1))
        seen.append([e.as_dict() for e in every])
        assert [(e.call_id, e.supervisor, e.points) for e in every] == [
            ("c1", "2000", 90),
            ("c1", "2001", 70),
            ("c2", "2000", 50),
        ]
        assert every[0].comment == "listened again" and every[0].passed
        assert {e.agent for e in alices} == {"1001"}
        assert purged.get("evaluations") == 3, "retention deletes old scorecards"
    assert seen[0] == seen[1]


def test_points_are_checked_against_the_form() -> None:
    config = load_config_text(
        json.dumps(
            {"queues": {"q": {"agents": []}}, "evaluation_forms": FORMS["evaluation_forms"]}
        ),
        environ={"CALLCENTER_AMI_SECRET": "x"},
    )
    form = config.evaluation_forms["standard"]
    assert score(form, {"greeting": "8", "solved": 50, "tone": 30}) == (
        ("greeting", 8),
        ("solved", 50),
        ("tone", 30),
    )
    for given, message in (
        ({"greeting": 8, "solved": 50}, "'tone' is not scored"),
        ({"greeting": 11, "solved": 50, "tone": 1}, "'greeting': a whole number from 0 to 10"),
        ({"greeting": "x", "solved": 50, "tone": 1}, "'greeting': a whole number"),
        ({"greeting": 1, "solved": 5, "tone": 1, "humour": 3}, "no criterion 'humour'"),
    ):
        with pytest.raises(ValueError, match=message):
            score(form, given)
    means = agent_means([scorecard("c1", "2000", 90), scorecard("c2", "2000", 60)])
    assert means == [{"agent": "1001", "evaluations": 2, "mean_percent": 75.0, "passed": 1}]


def test_a_queue_naming_a_form_that_does_not_exist_is_refused_at_its_line() -> None:
    text = "queues:\n  q:\n    agents: []\n    evaluation_form: standrd\n" + (
        "evaluation_forms:\n  standard: {criteria: {greeting: 10}}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config_text(text, filename="cc.yaml", environ={"CALLCENTER_AMI_SECRET": "x"})
    (issue,) = refused.value.issues
    assert (issue.line, issue.field) == (4, "queues.q.evaluation_form")
    assert "did you mean standard?" in issue.message


ALICE_SCORED = merge({"agents": {"1001": {"pin": "1111"}}}, FORMS)
"""Alice signs in to her desktop; Sam (2000) scores with the standard form."""


async def alice_takes_a_call(center: Center, number: str) -> Any:
    """A caller of ``number`` for support, taken by Alice (Bob is on a break); once their
    record is written."""
    center.add_phone("PJSIP/1001", answer_after=0.05)
    center.daemon.router.pause("1002", "break", via="test")
    caller = await center.caller_presses(number, "2")
    await caller.wait_bridged(timeout=5)
    await caller.hangup()
    await center.cdr(caller.uniqueid)
    return caller


async def test_sam_scores_alices_call_from_her_calls_of_the_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sam opens Alice's calls, scores the one she took (8 + 45 + 35: 88 %, passed), sees
    the score on the list; the API refuses points the form does not take and a call nobody
    answered; ``report --evaluations`` prints the scorecard and Alice's mean."""
    async with running_center(tmp_path, config=ALICE_SCORED) as center:
        told: list[EngineEvent] = []
        center.daemon.bus.subscribe(told.append, (CallEvaluated,))
        caller = await alice_takes_a_call(center, "5550321")
        nobody = await center.pbx.call("800", caller_num="5550322")
        await nobody.wait_for_prompt("welcome-menu", timeout=5)
        await nobody.hangup()
        await center.cdr(nobody.uniqueid)
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        calls = await sam.press("Calls …", picking={"agent": "1001"})
        card = await sam.press("Score …", picking={"call": caller.uniqueid})
        saved = await sam.press(
            "Save the score",
            **{"score:greeting": "8", "score:solved": "45", "score:tone": "35"},
            comment="kind and quick",
        )
        api = center.api
        wrong = await api(
            "POST",
            f"/calls/{caller.uniqueid}/evaluation",
            {"supervisor": "2000", "scores": {"greeting": 80, "solved": 1, "tone": 1}},
        )
        unanswered = await api(
            "POST",
            f"/calls/{nobody.uniqueid}/evaluation",
            {"supervisor": "2000", "scores": {"greeting": 1, "solved": 1, "tone": 1}},
        )
        stranger = await api(
            "POST", f"/calls/{caller.uniqueid}/evaluation", {"supervisor": "9", "scores": {}}
        )
        alice = DesktopBrowser(center.daemon.api.port)
        desk = await alice.sign_in("1001", "1111")
        scores = await alice.press("My quality scores …")
        await center.idle()
        code = await asyncio.to_thread(
            cli_main, ["report", str(center.config_path), "--evaluations", "--json"]
        )
        out, err = capsys.readouterr()
    assert "Score …" in calls.buttons
    assert card.refresh == "" and card.form("Save the score").fields["call"] == caller.uniqueid
    assert saved.texts["said"] == "Call of 1001 scored 88 % (passed)"
    (listed,) = [r for r in saved.table_rows if len(r) == 8 and r[1] == "5550321"]
    assert listed[7].startswith("88 %")
    assert wrong[0] == 400 and "'greeting': a whole number from 0 to 10" in wrong[1]["error"]
    assert unanswered[0] == 409 and stranger[0] == 404
    (event,) = [e for e in told if isinstance(e, CallEvaluated)]
    assert (event.agent, event.supervisor, event.percent, event.passed) == (
        "1001",
        "2000",
        88.0,
        True,
    )
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["call_id"], row["percent"], row["comment"]) == (
        caller.uniqueid,
        88.0,
        "kind and quick",
    )
    assert row["scores"] == {"greeting": 8, "solved": 45, "tone": 35}
    assert "agent 1001: 1 scored, mean 88 %, 1 passed" in err
    assert "My quality scores …" in desk.buttons and scores.refresh == ""
    (seen,) = [r for r in scores.table_rows if len(r) == 7 and r[2] == "88 %"]
    assert seen[3:6] == ["passed", "Sam", "kind and quick"]
    assert "Agree" in scores.buttons and "Dispute …" in scores.buttons, "not answered yet"
    assert "1 scored, mean 88 %, 1 passed" in scores.body


async def test_alice_disputes_a_score_with_why_and_sam_scoring_again_asks_her_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice disputes Sam's 20 % from her scores (a note is needed); the supervisors are
    told (``EvaluationReplied``) and the report shows it; Sam scores again: her answer is
    asked anew, and she agrees through the API. Nobody answers another agent's card."""
    async with running_center(tmp_path, config=ALICE_SCORED) as center:
        told: list[EngineEvent] = []
        center.daemon.bus.subscribe(told.append, (EvaluationReplied,))
        call = (await alice_takes_a_call(center, "5550331")).uniqueid
        api = center.api
        low = {"greeting": 10, "solved": 10, "tone": 0}
        await api("POST", f"/calls/{call}/evaluation", {"supervisor": "2000", "scores": low})
        alice = DesktopBrowser(center.daemon.api.port)
        await alice.sign_in("1001", "1111")
        scores = await alice.press("My quality scores …")
        dispute = await alice.press("Dispute …")
        no_reason = await alice.press("Dispute it", note="  ")
        scores = await alice.press("My quality scores …")
        dispute = await alice.press("Dispute …")
        disputed = await alice.press("Dispute it", note="the caller hung up on me")
        scores = await alice.press("My quality scores …")
        await center.idle()
        capsys.readouterr()
        argv = ["report", str(center.config_path), "--evaluations", "--json"]
        await asyncio.to_thread(cli_main, argv)
        reported = json.loads(capsys.readouterr().out.splitlines()[0])
        sam = DesktopBrowser(center.daemon.api.port)
        home = await sam.sign_in("2000", "2468", role="supervisor")
        await sam.press("Score again …", picking={"call": call})
        await sam.press(
            "Save the score",
            **{"score:greeting": "10", "score:solved": "30", "score:tone": "20"},
            comment="listened again: fair point",
        )
        home_after = await sam.get("/desktop")
        rescored = await alice.get("/desktop/scores")

        async def reply(agent: str, answer: str) -> tuple[int, Any]:
            body = {"agent": agent, "supervisor": "2000", "reply": answer}
            return await api("POST", f"/calls/{call}/evaluation/reply", body)

        agreed = await reply("1001", "agreed")
        not_hers = await reply("1002", "agreed")
        shrug = await reply("1001", "maybe")
        bare = await reply("1001", "disputed")
    assert "Scored 20 %" in dispute.body
    assert no_reason.texts.get("error", "").startswith("say why you dispute the score")
    assert disputed.texts["said"] == f"You disputed the score of call {call}"
    (row,) = [r for r in scores.table_rows if len(r) == 7 and r[2] == "20 %"]
    assert row[6] == "disputed: the caller hung up on me" and "Agree" not in scores.buttons
    assert [(e.agent, e.supervisor, e.reply, e.note) for e in told] == [
        ("1001", "2000", "disputed", "the caller hung up on me"),
        ("1001", "2000", "agreed", ""),
    ]
    assert (reported["reply"], reported["reply_note"]) == ("disputed", "the caller hung up on me")
    (listed,) = [r for r in home.table_rows if len(r) == 5 and r[1] == "1001"]
    assert listed[2:4] == ["20 %", "the caller hung up on me"], "Sam sees why"
    assert not [r for r in home_after.table_rows if len(r) == 5 and r[1] == "1001"]
    assert "Agree" in rescored.buttons, "scored again: her answer is asked anew"
    assert agreed[0] == 200 and agreed[1]["reply"] == "agreed" and agreed[1]["percent"] == 60.0
    assert not_hers[0] == 404 and shrug[0] == 400 and bare[0] == 400
    assert scope_of("POST", f"/calls/{call}/evaluation/reply") == "agents"


async def test_sam_works_through_his_quota_picking_calls_nobody_scored(tmp_path: Path) -> None:
    """Two calls a week to score per agent: Alice took two; "Pick a call …" opens one
    of hers nobody scored, then the other; then there is none left, and the count says
    2 / 2."""
    config = merge(ALICE_SCORED, {"evaluation_target": {"per_agent": 2, "days": 7}})
    async with running_center(tmp_path, config=config) as center:
        first = await alice_takes_a_call(center, "5550341")
        second = await alice_takes_a_call(center, "5550342")
        sam = DesktopBrowser(center.daemon.api.port)
        home = await sam.sign_in("2000", "2468", role="supervisor")
        picked: list[str] = []
        for _ in range(2):
            await sam.get("/desktop")
            card = await sam.press("Pick a call …", picking={"agent": "1001"})
            picked.append(card.form("Save the score").fields["call"])
            await sam.press(
                "Save the score",
                **{"score:greeting": "10", "score:solved": "50", "score:tone": "40"},
            )
        center.daemon.api._disputes_read.clear()  # the page's 10 s memory of the counts
        done = await sam.get("/desktop")
        none_left = await sam.press("Pick a call …", picking={"agent": "1001"})

    def alice(page: Any) -> list[str]:
        (row,) = [r for r in page.table_rows if r and r[0].startswith("Alice")]
        return row

    assert alice(home)[5] == "0 / 2"
    assert sorted(picked) == sorted([first.uniqueid, second.uniqueid]), "each once"
    assert alice(done)[5] == "2 / 2"
    assert none_left.texts["error"] == "No call of 1001 to score in the last 7 days."


@pytest.mark.parametrize("everyone", [True, False])
async def test_a_new_hires_team_has_a_quota_of_its_own(tmp_path: Path, everyone: bool) -> None:
    """New hires (team ``new``: Alice) are scored 3 calls a week; the rest of the floor 2,
    or none when only the team sets one (no count and no "Pick a call …" for Bob then)."""
    quota: dict[str, Any] = {
        "teams": {"new": {"evaluation_target": {"per_agent": 3, "days": 7}}},
        "agents": {"1001": {"team": "new"}},
    }
    if everyone:
        quota["evaluation_target"] = {"per_agent": 2, "days": 7}
    config = merge(ALICE_SCORED, quota)
    async with running_center(tmp_path, config=config) as center:
        await alice_takes_a_call(center, "5550351")
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        card = await sam.press("Pick a call …", picking={"agent": "1001"})
        await sam.press(
            "Save the score", **{"score:greeting": "10", "score:solved": "50", "score:tone": "40"}
        )
        center.daemon.api._disputes_read.clear()
        home = await sam.get("/desktop")
        bob_pick = await sam.get("/desktop/pick?agent=1002")
        if bob_pick.status == 303:
            bob_pick = await sam.get(bob_pick.headers["location"])

    def row(name: str) -> list[str]:
        (found,) = [r for r in home.table_rows if r and r[0].startswith(name)]
        return found

    assert card.form("Save the score").fields["call"], "one of Alice's calls"
    assert row("Alice")[5] == "1 / 3", "her team's quota"
    assert row("Bob")[5] == ("0 / 2" if everyone else ""), "the floor's, if any"
    picks = [f.fields.get("agent") for f in home.forms if f.action == "/desktop/pick"]
    assert picks == (["1001", "1002", "1003"] if everyone else ["1001"])
    if not everyone:
        assert bob_pick.texts.get("error") == "no evaluation_target for 1002", bob_pick.body


def test_calibration_sets_side_by_side_the_calls_several_supervisors_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cards = [
        scorecard("c1", "2000", 90),
        scorecard("c1", "2001", 70),
        scorecard("c2", "2000", 50, agent="1002"),
        scorecard("c3", "2000", 80),
        scorecard("c3", "2001", 85),
        scorecard("c3", "2002", 75),
    ]
    assert calibration(cards) == [
        {"call_id": "c1", "agent": "1001", "queue": "support",
         "percents": {"2000": 90.0, "2001": 70.0}, "spread": 20.0},
        {"call_id": "c3", "agent": "1001", "queue": "support",
         "percents": {"2000": 80.0, "2001": 85.0, "2002": 75.0}, "spread": 10.0},
    ]  # fmt: skip
    config = tmp_path / "callcenter.yaml"
    config.write_text(
        "pbx: {type: asterisk, ami: {secret: x}}\nrecords: {cdr_path: cdr.sqlite3}\n"
        "evaluation_forms: {standard: {criteria: {greeting: 10, solved: 50, tone: 40}}}\n"
    )
    store = SqliteCdrStore(tmp_path / "cdr.sqlite3")
    for card in cards:
        store.write_evaluation(card)
    store.close()
    capsys.readouterr()
    argv = ["report", str(config), "--evaluations", "--calibration", "--json"]
    assert cli_main([*argv, "--since", "2026-12-06", "--until", "2026-12-07"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["call_id"] for line in out.splitlines()] == ["c1", "c3"]
    assert "2 call(s) scored by several supervisors, mean spread 15.0 percentage points" in err
    with pytest.raises(SystemExit):
        cli_main(["report", str(config), "--calibration"])
    assert "--calibration goes with --evaluations" in capsys.readouterr().err
