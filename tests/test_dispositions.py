"""Dispositions: the code an agent gives a call as it ends ("sale", "call me back at 3",
"never call me again"), through the control API and the command line, on every PBX.
Kept one row per call in the ``dispositions`` table; a campaign's lead whose person asked
to be called back is called again then, its tries counted afresh; a number whose person
asked never to be called again is dialled by no campaign, also after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from test_campaigns import (
    Scene,
    _transport,
    campaign,
    on_every_transport,  # noqa: F401  (every transport here too)
    scene,
)
from test_metrics import samples

from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError, EngineError
from callcenter.events import (
    AgentConnected,
    CallDisposed,
    CampaignAnswered,
    QueueCallbackAnswered,
)
from callcenter.records.dispositions import DispositionRecord, outcome_rows
from callcenter.testing import BASE_CONFIG, DesktopBrowser, merge, running_center

CODES = {
    "dispositions": {
        "sale": "Sale made",
        "no-interest": "Not interested",
        "callback": {"description": "Call me back", "callback": True},
        "do-not-call": {"description": "Never call me again", "do_not_call": True},
    }
}


async def dispose(s: Scene, agent: str, **body: Any) -> tuple[int, dict[str, Any]]:
    """POST /agents/<agent>/disposition with ``body`` as JSON."""
    return await s.api("POST", f"/agents/{agent}/disposition", body)


async def test_an_agent_gives_the_call_they_took_its_code_and_can_correct_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A caller talks to Alice and hangs up; in her wrap-up Alice says "no-interest", then
    corrects it to "sale" from the command line: one row, the last word. Codes the config
    does not have, a callback code without a time and an agent who took no call are
    refused, saying why."""
    async with scene(tmp_path, CODES, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        s.center.add_phone("PJSIP/1002", answer_after=None)
        caller = await s.center.caller_talks_to_an_agent("5550199", key="1")
        first = await dispose(s, "1001", code="no-interest")
        api = f"http://127.0.0.1:{s.center.daemon.api.port}"
        capsys.readouterr()
        corrected = await asyncio.to_thread(
            cli_main,
            ["agent", "disposition", "1001", "--code", "sale", "--note", "2 seats", "--api", api],
        )
        unknown = await dispose(s, "1001", code="maybe")
        no_time = await dispose(s, "1001", code="callback")
        no_call = await dispose(s, "1002", code="sale")
        await s.center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        rows = await asyncio.to_thread(s.center.daemon.store.fetch_dispositions)
        figures = samples(s.center.daemon.api.render_metrics())
    assert first == (200, {"agent": "1001", "call_id": caller.uniqueid, "code": "no-interest",
                           "campaign": "", "lead": ""})  # fmt: skip
    assert corrected == 0
    (row,) = rows
    assert (row.call_id, row.agent, row.code, row.note, row.number) == (
        caller.uniqueid,
        "1001",
        "sale",
        "2 seats",
        "5550199",
    )
    assert unknown[0] == 409 and "use one of: sale, no-interest" in unknown[1]["error"]
    assert no_time[0] == 409 and "needs the time to call back" in no_time[1]["error"]
    assert no_call[0] == 409 and "no call to give a disposition to" in no_call[1]["error"]
    assert [e.code for e in s.of(CallDisposed)] == ["no-interest", "sale"]
    for code in ("no-interest", "sale"):
        assert figures["callcenter_dispositions_total", (("code", code),)] == 1


async def test_each_queue_offers_its_own_codes_and_a_campaign_its_own(
    tmp_path: Path,
) -> None:
    """Sales takes "sale" and "no-interest" only: Alice's page offers those two for a
    sales call and the API refuses "callback" for it, naming the two; a campaign of
    sales has its own list ("do-not-call" and "sale"), which wins for its leads."""
    config = merge(
        merge(campaign(dispositions=["do-not-call", "sale"]), CODES),
        {
            "queues": {"sales": {"dispositions": ["sale", "no-interest"]}},
            "agents": {"1001": {"pin": "1111"}},
        },
    )
    async with scene(tmp_path, config, "number,id\n5551001,ada\n") as s:
        s.center.daemon.campaigns.by_id["spring"].pause("test")
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.3)
        browser = DesktopBrowser(s.center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        caller = await s.center.caller_presses("5550199", "1")
        await caller.wait_bridged(timeout=5)
        talking = await browser.get()
        refused = await dispose(s, "1001", code="callback")
        await caller.hangup()
        given = await dispose(s, "1001", code="no-interest")
        await s.api("POST", "/campaigns/spring/resume")
        await ada.wait_answered(timeout=5)
        await s.wait_for(lambda: len(s.of(AgentConnected)) == 2)  # the caller, then Ada
        await ada.wait_idle(timeout=5)
        await s.wait_for(lambda: s.center.daemon.router.agents["1001"].state != "on_call")
        lead_page = await browser.get()
        not_for_leads = await dispose(s, "1001", code="no-interest")
        for_leads = await dispose(s, "1001", code="do-not-call")
    codes = [label for label in talking.buttons if label.startswith("Code: ")]
    assert codes == ["Code: sale", "Code: no-interest"]
    assert refused[0] == 409
    assert (
        refused[1]["error"]
        == "disposition 'callback' is not one of queue sales's: sale, no-interest"
    )
    assert given[0] == 200
    lead_codes = [label for label in lead_page.buttons if label.startswith("Code: ")]
    assert lead_codes == ["Code: do-not-call", "Code: sale"]
    assert (
        not_for_leads[0] == 409
        and "campaign spring's: do-not-call, sale" in (not_for_leads[1]["error"])
    )
    assert for_leads[0] == 200


def test_a_queue_may_list_only_codes_the_config_has() -> None:
    text = yaml.safe_dump(
        merge(
            merge(BASE_CONFIG, CODES),
            {"queues": {"sales": {"dispositions": ["sale", "sael"]}}},
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ={"CALLCENTER_AMI_SECRET": "x"})
    (issue,) = caught.value.issues
    assert issue.field == "queues.sales.dispositions[1]"
    assert issue.message == 'no disposition named "sael"; did you mean sale?'


async def test_an_escalation_needs_the_agents_note(tmp_path: Path) -> None:
    """ "escalated" needs a note: Alice's page opens the note page for it (the code chosen,
    the note asked for), the API refuses it without one."""
    config = merge(
        CODES,
        {
            "dispositions": {"escalated": {"description": "To level 2", "note_required": True}},
            "agents": {"1001": {"pin": "1111"}},
        },
    )
    async with scene(tmp_path, config, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        browser = DesktopBrowser(s.center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        caller = await s.center.caller_presses("5550199", "1")
        await caller.wait_bridged(timeout=5)
        page = await browser.get()
        bare = await dispose(s, "1001", code="escalated")
        blank = await dispose(s, "1001", code="escalated", note="   ")
        asked = await browser.press("Code: escalated …")
        given = await browser.press("Give the code", note="Billing error, over 500 EUR")
        await caller.hangup()
        await s.center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        (row,) = await asyncio.to_thread(s.center.daemon.store.fetch_dispositions)
    assert "Code: escalated …" in page.buttons and "Code: escalated" not in page.buttons
    assert "Code: sale" in page.buttons, "the others are one press"
    assert bare[0] == 409 and bare[1]["error"] == "disposition 'escalated' needs a note: say why"
    assert blank[0] == 409
    assert 'value="escalated" selected' in asked.body and "<input required" in asked.body
    assert given.texts["said"] == "Code escalated given to the call"
    assert (row.code, row.note) == ("escalated", "Billing error, over 500 EUR")


def test_a_code_that_needs_a_note_is_not_keyed_on_a_phone() -> None:
    text = yaml.safe_dump(
        merge(
            BASE_CONFIG,
            {"dispositions": {"escalated": {"note_required": True, "digits": "5"}}},
        )
    )
    with pytest.raises(ConfigError, match="cannot be keyed on a phone"):
        load_config_text(text, environ={"CALLCENTER_AMI_SECRET": "x"})


def test_outcomes_count_each_agents_codes_and_their_share() -> None:
    def coded(call: str, agent: str, code: str, campaign: str = "") -> DispositionRecord:
        return DispositionRecord(
            call, agent, code, "", "0611", "sales", campaign, "", None, False,
            datetime(2026, 12, 7, 9, tzinfo=UTC),
        )  # fmt: skip

    given = [
        coded("c1", "1001", "sale"),
        coded("c2", "1001", "no-interest"),
        coded("c3", "1001", "sale"),
        coded("c4", "1002", "no-interest", campaign="spring"),
    ]
    assert outcome_rows(given) == [
        {"agent": "1001", "code": "sale", "calls": 2, "percent": 66.7},
        {"agent": "1001", "code": "no-interest", "calls": 1, "percent": 33.3},
        {"agent": "1002", "code": "no-interest", "calls": 1, "percent": 100.0},
    ]
    assert outcome_rows(given, "campaign") == [
        {"campaign": "spring", "code": "no-interest", "calls": 1, "percent": 100.0}
    ], "calls of no campaign are left out"
    assert [r["calls"] for r in outcome_rows(given, "queue")] == [2, 2]
    with pytest.raises(ValueError, match="per: one of agent, queue, campaign"):
        outcome_rows(given, "team")


async def test_a_manager_reads_the_days_outcomes_per_agent_from_the_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with scene(tmp_path, CODES, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        for number, code in (("5550101", "sale"), ("5550102", "no-interest")):
            caller = await s.center.caller_talks_to_an_agent(number, key="1")
            await dispose(s, "1001", code=code)
            await s.center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        path = s.center.config_path
    capsys.readouterr()
    argv = ["report", str(path), "--outcomes", "--json", "--tz", "UTC"]
    code = await asyncio.to_thread(cli_main, argv)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with pytest.raises(SystemExit) as wrong:
        await asyncio.to_thread(cli_main, ["report", str(path), "--queues", "--per", "queue"])
    said = capsys.readouterr().err
    assert code == 0
    assert rows == [
        {"agent": "1001", "code": "no-interest", "calls": 1, "percent": 50.0},
        {"agent": "1001", "code": "sale", "calls": 1, "percent": 50.0},
    ]
    assert wrong.value.code == 2 and "--per goes with --outcomes" in said


async def test_alice_reads_her_codes_of_the_day_on_her_desktop(tmp_path: Path) -> None:
    config = merge(CODES, {"agents": {"1001": {"pin": "1111"}}})
    async with scene(tmp_path, config, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        for number, code in (("5550101", "sale"), ("5550102", "sale"), ("5550103", "no-interest")):
            caller = await s.center.caller_talks_to_an_agent(number, key="1")
            await dispose(s, "1001", code=code)
            await s.center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        page = await DesktopBrowser(s.center.daemon.api.port).sign_in("1001", "1111")
    assert page.texts["codes"] == "Codes today: sale 2, no-interest 1"


async def test_a_dashboard_reads_the_outcomes_per_queue_through_the_api(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, CODES, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await s.center.caller_talks_to_an_agent("5550101", key="1")
        await dispose(s, "1001", code="sale")
        await s.center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        status, body = await s.api("GET", "/figures/outcomes?per=queue")
        wrong = await s.api("GET", "/figures/outcomes?per=team")
        nobody = await s.api("GET", "/figures/outcomes?team=nobody")
    assert status == 200 and body["per"] == "queue"
    assert body["rows"] == [{"queue": "sales", "code": "sale", "calls": 1, "percent": 100.0}]
    assert wrong[0] == 400 and "per: one of agent, queue, campaign" in wrong[1]["error"]
    assert nobody[0] == 400


async def test_a_lead_who_asks_to_be_called_back_is_called_again_at_that_time(
    tmp_path: Path,
) -> None:
    """Ada answers and asks Alice to call her back a moment later: Alice gives the call
    the "callback" code with the time, and Ada's phone rings again then, the campaign
    counting her tries afresh; her record says so meanwhile."""
    async with scene(tmp_path, merge(campaign(), CODES), "number,id\n5551001,ada\n") as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["state"] == "finished")
        # The campaign is finished once Ada answers: Alice may not even ring yet.
        await alice.wait_answered(timeout=5)
        await alice.wait_idle(timeout=5)
        # Far enough ahead for the record to be read back before, on a busy machine.
        at = datetime.now(UTC) + timedelta(seconds=3)
        status, said = await dispose(s, "1001", code="callback", at=at.isoformat())
        view_waiting = s.view
        await s.center.daemon.recorder.writer.wait_written("campaign-lead:spring:ada")
        store = s.center.daemon.store
        waiting = {r.lead: r for r in await asyncio.to_thread(store.fetch_campaign_leads)}
        await ada.wait_answered(2, timeout=10)
        rang_again = datetime.now(UTC)
        await s.wait_for(lambda: len(s.of(CampaignAnswered)) == 2)
        await s.wait_for(lambda: s.view["state"] == "finished")
    assert (status, said["campaign"], said["lead"]) == (200, "spring", "ada")
    record = waiting["ada"]
    assert (record.status, record.attempts, record.result) == ("retry", 0, "callback")
    assert record.retry_at is not None and abs((record.retry_at - at).total_seconds()) < 0.01
    assert (view_waiting["retry"], view_waiting["state"]) == (1, "running")
    assert rang_again >= at, "not before the time she gave"
    assert [e.attempt for e in s.of(CampaignAnswered)] == [1, 1], "tries counted afresh"


async def test_a_number_whose_person_asked_never_to_be_called_is_dialled_by_no_campaign(
    tmp_path: Path,
) -> None:
    """Ada asks Alice never to be called again. After a restart the lead file lists her
    number again (under another id): the daemon still knows, and skips it."""
    leads = "number,id\n5551001,ada\n5551002,alan\n"
    config = merge(campaign(lines=1), CODES)
    async with scene(tmp_path, config, leads) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
        s.center.add_phone("PJSIP/5551002", answer_after=0.05, hangup_after=0.2)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await alice.wait_answered(timeout=5)  # talking to Ada
        status, said = await dispose(s, "1001", code="do-not-call", note="asked firmly")
        await s.wait_for(lambda: s.view["state"] == "finished")
        (tmp_path / "leads.csv").write_text("number,id\n5551001,ada-again\n")
        await s.center.daemon.recorder.writer.wait_written(f"disposition:{said['call_id']}")
        daemon = await s.center.restart()
        await daemon.recorder.writer.wait_written("campaign-lead:spring:ada-again")
        records = {r.lead: r for r in await asyncio.to_thread(daemon.store.fetch_campaign_leads)}
    assert status == 200
    assert ada.answered == 1, "never rung again"
    again = records["ada-again"]
    assert (again.status, again.result) == ("skipped", "do-not-call"), "known after a restart"


CALL_ME_BACK = merge(
    CODES, {"acd": {"callback_dial": "PJSIP/${number}", "callback_allow": ["_555XXXX"]}}
)


ON_THE_PHONE = merge(
    CALL_ME_BACK,
    {"dispositions": {"sale": {"digits": "1"}, "callback": {"digits": "9"}}},
)


async def test_alice_gives_codes_from_her_phone_with_star_76(tmp_path: Path) -> None:
    """No screen needed: after the call Alice dials *761 ("sale"), then corrects it with
    *769*30 (call them back in half an hour); digits no code has and a callback code without
    its minutes are refused with a tone and change nothing."""
    async with scene(tmp_path, ON_THE_PHONE, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await s.center.caller_talks_to_an_agent("5550199", key="1")
        heard = []
        for keyed in ("*761", "*768", "*769", "*769*30"):
            phone = await s.center.pbx.call(keyed, caller_num="1001")
            await phone.wait_ended(timeout=5)
            heard.append(phone.heard[-1] if phone.heard else "")
        await s.center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        (row,) = await asyncio.to_thread(s.center.daemon.store.fetch_dispositions)
        timed = dict(s.center.daemon.switchboard.callbacks.promises)
        await s.center.idle()
    assert heard == ["auth-thankyou", "beeperr", "beeperr", "auth-thankyou"]
    assert [e.code for e in s.of(CallDisposed)] == ["sale", "callback"]
    assert (row.call_id, row.code) == (caller.uniqueid, "callback")
    assert row.callback_at is not None
    minutes = (row.callback_at - datetime.now(UTC)).total_seconds() / 60
    assert 29 < minutes <= 30
    assert list(timed) == [f"{caller.uniqueid}+callback"]


def test_two_codes_with_the_same_digits_are_refused_at_the_second() -> None:
    config = merge(
        ON_THE_PHONE, {"dispositions": {"no-interest": {"description": "x", "digits": "1"}}}
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(
            yaml.safe_dump(merge(BASE_CONFIG, config), sort_keys=False),
            environ={"CALLCENTER_AMI_SECRET": "x"},
        )
    assert 'dispositions.no-interest.digits: the digits "1" already give the code "sale"' in str(
        caught.value
    )


async def test_a_caller_who_asks_to_be_called_back_at_a_time_is_called_back_then(
    tmp_path: Path,
) -> None:
    """A caller talks to Alice and asks to be called back in a moment; Alice codes the
    call "callback" with the time. Then, not before, the caller's phone rings, and they
    are put through to Alice, even though the daemon was restarted meanwhile."""
    async with scene(tmp_path, CALL_ME_BACK, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        s.center.add_phone("PJSIP/1002", answer_after=None)
        # Long enough to be put through to Alice on a busy machine (0.3 s was not, once).
        phone = s.center.add_phone("PJSIP/5550199", answer_after=0.05, hangup_after=2.0)
        caller = await s.center.caller_talks_to_an_agent("5550199", key="1")
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        status, _ = await dispose(s, "1001", code="callback", at=at.isoformat())
        await s.center.daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        daemon = await s.center.restart()
        events: list[Any] = []
        daemon.bus.subscribe(events.append)
        await phone.wait_answered(timeout=10)
        rang = datetime.now(UTC)
        async with asyncio.timeout(10):
            while not [e for e in events if isinstance(e, QueueCallbackAnswered)]:
                await asyncio.sleep(0.02)
        (answered,) = [e for e in events if isinstance(e, QueueCallbackAnswered)]
        await s.center.idle(timeout=10)
    assert status == 200
    assert rang >= at, "not before the time the caller gave"
    assert (answered.original_call_id, answered.number, answered.queue) == (
        f"{caller.uniqueid}+callback",
        "5550199",
        "sales",
    )
    connected = [e for e in events if isinstance(e, AgentConnected)]
    assert [(e.call_id, e.agent) for e in connected] == [(answered.call_id, "1001")]


async def test_the_agent_who_promised_a_callback_gets_it_when_free_then(tmp_path: Path) -> None:
    """Bob took the call (Alice was on a break) and promised to call back in a moment; then
    both are free and the queue's linear order would give Alice the call: Bob gets it."""
    config = merge(CALL_ME_BACK, {"queues": {"support": {"strategy": "linear"}}})
    async with scene(tmp_path, config, "number\n") as s:
        router = s.center.daemon.router
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        s.center.add_phone("PJSIP/1002", answer_after=0.05)
        phone = s.center.add_phone("PJSIP/5550199", answer_after=0.05, hangup_after=1.0)
        router.pause("1001", "break", via="test")
        await s.center.caller_talks_to_an_agent("5550199", key="2")
        await s.center.idle()
        router.unpause("1001", via="test")
        events: list[Any] = []
        s.center.daemon.bus.subscribe(events.append)
        at = datetime.now(UTC) + timedelta(seconds=1)
        status, _ = await dispose(s, "1002", code="callback", at=at.isoformat())
        await phone.wait_answered(timeout=10)
        async with asyncio.timeout(10):
            while not [e for e in events if isinstance(e, AgentConnected)]:
                await asyncio.sleep(0.02)
        await s.center.idle(timeout=10)
        open_drafts = s.center.daemon.recorder.calls_in_progress
    assert status == 200
    assert [e.agent for e in events if isinstance(e, AgentConnected)] == ["1002"]
    assert open_drafts == 0, "a callback set for a time is no call of its own to record"


async def test_a_callback_code_corrected_calls_the_callback_off(tmp_path: Path) -> None:
    """Alice codes a call "callback", then corrects it to "sale": nobody is called."""
    async with scene(tmp_path, CALL_ME_BACK, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        phone = s.center.add_phone("PJSIP/5550199", answer_after=0.05)
        await s.center.caller_talks_to_an_agent("5550199", key="1")
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        first, _ = await dispose(s, "1001", code="callback", at=at.isoformat())
        second, _ = await dispose(s, "1001", code="sale")
        await asyncio.sleep(2.0)
        refused = await dispose(s, "1001", code="callback", at="yesterday")
    assert (first, second, phone.rings) == (200, 200, 0)
    assert refused[0] == 400 and "is not a time" in refused[1]["error"]


async def test_a_queue_that_requires_a_disposition_keeps_the_agent_in_wrap_up_until_given(
    tmp_path: Path,
) -> None:
    config = merge(CODES, {"queues": {"support": {"wrapup": 0, "disposition_required": True}}})
    async with running_center(tmp_path, transport=_transport[0], config=config) as center:
        router = center.daemon.router
        for other in ("1001", "1003"):
            with contextlib.suppress(EngineError):
                router.logout(other, via="test")
        bob = center.add_phone("PJSIP/1002", answer_after=0.05)
        await center.caller_talks_to_an_agent("5550200")
        async with asyncio.timeout(5):
            while router.agents["1002"].state != "wrap_up":
                await asyncio.sleep(0.01)
        waiting = await center.caller_presses("5550201", "2")
        await waiting.wait_moh(timeout=5)
        await asyncio.sleep(0.3)
        assert bob.rings == 1, "no call while the last one has no disposition"
        status, answer = await center.api("POST", "/agents/1002/ready", {})
        assert status == 409 and "disposition first" in answer["error"]
        _, shown = await center.api("GET", "/status")
        assert next(a for a in shown["agents"] if a["id"] == "1002")["owes_disposition"]
        status, answer = await center.api("POST", "/agents/1002/disposition", {"code": "sale"})
        assert status == 200, answer
        assert await waiting.wait_bridged(timeout=5) == "PJSIP/1002", "the code freed Bob"
        await waiting.hangup()


async def test_a_code_owed_when_the_daemon_restarts_is_still_given_to_that_call(
    tmp_path: Path,
) -> None:
    """Alice's call ended in a queue that requires a disposition; the daemon restarts before
    she gives it: she is still in wrap-up, owing it, and her code lands on that call."""
    config = merge(CODES, {"queues": {"sales": {"wrapup": 0, "disposition_required": True}}})
    async with scene(tmp_path, config, "number\n") as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await s.center.caller_talks_to_an_agent("5550202", key="1")
        router = s.center.daemon.router
        async with asyncio.timeout(5):
            while router.agents["1001"].state != "wrap_up":
                await asyncio.sleep(0.01)
        daemon = await s.center.restart()
        alice = daemon.router.agents["1001"]
        assert (alice.state, alice.owes_disposition) == ("wrap_up", True)
        status, answer = await s.center.api("POST", "/agents/1001/disposition", {"code": "sale"})
        assert alice.state == "available", "the code freed her"
        await daemon.recorder.writer.wait_written(f"disposition:{caller.uniqueid}")
        rows = await asyncio.to_thread(daemon.store.fetch_dispositions)
        again = await s.center.restart()
        owes_after = again.router.agents["1001"].owes_disposition
    assert status == 200 and answer["call_id"] == caller.uniqueid
    assert [(r.call_id, r.code, r.number, r.queue) for r in rows] == [
        (caller.uniqueid, "sale", "5550202", "sales")
    ]
    assert owes_after is False, "given: nothing owed after the next restart"


def test_requiring_dispositions_without_any_configured_is_a_config_error() -> None:
    text = yaml.safe_dump(
        {
            "pbx": {"type": "asterisk", "ami": {"secret": "x"}},
            "agents": {"1001": {"name": "A", "device": "PJSIP/1001"}},
            "queues": {"q": {"agents": ["1001"], "disposition_required": True}},
        }
    )
    with pytest.raises(ConfigError) as refused:
        load_config_text(text)
    assert "queues.q.disposition_required: needs codes to give" in str(refused.value)


async def test_a_timed_callback_too_old_to_make_is_given_up_once_not_at_every_start(
    tmp_path: Path,
) -> None:
    """A callback set for a time long gone (the daemon was down meanwhile) is given up at
    the next start, said once: its request row records it, the start after leaves it be."""
    config = merge(CALL_ME_BACK, {"queues": {"sales": {"callback_max_age": 600}}})
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    record = DispositionRecord(
        "old-call", "1001", "callback", "", "5550199", "sales", "", "", long_ago, False, long_ago
    )
    async with running_center(tmp_path, transport=_transport[0], config=config) as center:
        await asyncio.to_thread(center.daemon.store.write_disposition, record)
        with structlog.testing.capture_logs() as first:
            daemon = await center.restart()
            await daemon.recorder.writer.wait_written("queue_callback:old-call+callback")
        with structlog.testing.capture_logs() as second:
            daemon = await center.restart()
        rows = await asyncio.to_thread(daemon.store.fetch_queue_callbacks)
    given_up = [e for e in first if e["event"] == "timed_callback_given_up"]
    assert [e["call_id"] for e in given_up] == ["old-call"]
    assert not [e for e in second if e["event"] == "timed_callback_given_up"]
    assert [(r.call_id, r.status) for r in rows] == [("old-call+callback", "expired")]
