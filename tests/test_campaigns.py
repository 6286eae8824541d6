"""Outbound campaigns through the demo PBX over real TCP, on both PBXs: a lead list dialled
for a queue's agents one free agent at a time, numbers on the do-not-call list or outside
the allowed ones never dialled, unanswered leads tried again, progress kept across a
restart, paused and resumed through the control API, and quiet outside the calling hours."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_metrics import samples

from callcenter import switchboard
from callcenter.cli import main as cli_main
from callcenter.daemon import Daemon
from callcenter.events import (
    AgentConnected,
    CampaignAnswered,
    CampaignAttemptFailed,
    CampaignDialing,
    CampaignLeadRecycled,
    CampaignLeadSkipped,
    CampaignMachineAnswered,
    CampaignPreview,
    CampaignStateChanged,
    EngineEvent,
    QueueExited,
    SurveyEnded,
)
from callcenter.outbound import campaign as campaign_module
from callcenter.outbound import pacing
from callcenter.testing import TRANSPORTS, Center, Transport, merge, run_cli, running_center

_transport: list[Transport] = ["fastagi"]


@pytest.fixture(autouse=True, params=TRANSPORTS)
def on_every_transport(request: pytest.FixtureRequest) -> None:
    _transport[0] = request.param


LEADS = """number,id,name,account
555 1001,ada,Ada Lovelace,A-17
5551002,alan,Alan Turing,B-03
5551003,grace,Grace Hopper,C-11
0900123456,premium,Premium Line,D-00
"""


def campaign(**settings: Any) -> dict[str, Any]:
    """Config: campaign ``spring`` for queue ``sales`` (agent 1001 logged in; 1002 is not
    a member), leads from leads.csv, 555 numbers allowed, 5551003 on the do-not-call list."""
    return {
        "acd": {"callback_dial": "PJSIP/${number}", "callback_allow": ["_555XXXX"]},
        "campaigns": {
            "spring": {
                "queue": "sales",
                "leads": "leads.csv",
                "dial": "PJSIP/${number}",
                "allow": ["_555XXXX"],
                "do_not_call": "dnc.txt",
                "ring_timeout": 1,
                "retry_delay": 0.2,
                "attempts": 2,
                **settings,
            }
        },
    }


class Scene:
    def __init__(self, center: Center) -> None:
        self.center = center
        self.events: list[EngineEvent] = []
        center.daemon.bus.subscribe(self.events.append)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, check: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)

    @property
    def view(self) -> dict[str, Any]:
        (view,) = self.center.daemon.campaigns.view()
        return view

    async def screen_of(self, lead: str) -> dict[str, Any]:
        """The lead's call in ``/status`` once an agent talks to them (what an agent's
        desktop shows)."""
        async with asyncio.timeout(5):
            while True:
                _, status = await self.api("GET", "/status")
                for call in status["calls"]:
                    if call["variables"].get("lead") == lead and call["agent"]:
                        return dict(call)
                await asyncio.sleep(0.02)

    async def api(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The control API's status and JSON answer to ``method path`` (``body`` as JSON)."""
        status, answer = await self.center.api(method, path, body)
        return status, dict(answer)


@asynccontextmanager
async def scene(tmp_path: Path, config: dict[str, Any], leads: str = LEADS) -> AsyncIterator[Scene]:
    (tmp_path / "leads.csv").write_text(leads)
    (tmp_path / "dnc.txt").write_text("# asked not to be called\n555-1003\n")
    async with running_center(tmp_path, transport=_transport[0], config=config) as center:
        yield Scene(center)


async def test_a_campaign_calls_its_leads_for_the_queues_agent_and_skips_who_may_not_be_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ada answers at once; Alan does not answer the first time and answers the second;
    Grace is on the do-not-call list and the premium number is not allowed: neither rings.
    Each answered lead is put through to Alice with their lead data on the call."""
    monkeypatch.setattr(switchboard, "CALLBACK_ANSWER_MARGIN", 0.2)
    async with scene(tmp_path, campaign(enabled=False)) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.3)
        alan = s.center.add_phone("PJSIP/5551002", answer_after=None, hangup_after=0.3)
        grace = s.center.add_phone("PJSIP/5551003", answer_after=0.05)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        assert s.view["state"] == "paused"
        status, body = await s.api("POST", "/campaigns/spring/resume")
        assert status == 200 and body["campaign"]["state"] == "running"
        await ada.wait_answered(timeout=5)
        screen = await s.screen_of("ada")
        await alan.wait_rings(1, timeout=10)
        alan.answer_after = 0.05
        await s.wait_for(lambda: len(s.of(CampaignAnswered)) == 2)
        await s.wait_for(lambda: s.view["state"] == "finished")
        await s.center.idle(timeout=10)
        await alice.wait_idle(timeout=5)
        answered = {e.lead: e for e in s.of(CampaignAnswered)}
        rows = {lead: await s.center.cdr(e.call_id) for lead, e in answered.items()}
        status, listed = await s.api("GET", "/campaigns")
        figures = samples(s.center.daemon.api.render_metrics())
        for lead in ("ada", "alan", "grace", "premium"):
            await s.center.daemon.recorder.writer.wait_written(f"campaign-lead:spring:{lead}")
        queues: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while sum(q["campaign_calls"] for q in queues) < 2:
                queues = (await s.api("GET", "/figures/queues?by=total"))[1]["rows"]
                await asyncio.sleep(0.05)
        records = {
            r.lead: r for r in await asyncio.to_thread(s.center.daemon.store.fetch_campaign_leads)
        }
    assert grace.rings == 0, "on the do-not-call list"
    skipped = {e.lead: e.reason for e in s.of(CampaignLeadSkipped)}
    assert skipped == {"grace": "do-not-call", "premium": "not-allowed"}
    (failed,) = s.of(CampaignAttemptFailed)
    assert (failed.lead, failed.attempt, failed.reason, failed.final) == (
        "alan",
        1,
        "no-answer",
        False,
    )
    assert alan.rings == 2 and alan.answered == 1 and ada.answered == 1
    assert [e.agent for e in s.of(CampaignDialing)] == ["1001"] * 3
    assert {e.agent for e in s.of(AgentConnected)} == {"1001"}
    assert (answered["ada"].attempt, answered["alan"].attempt) == (1, 2)
    ada_row = rows["ada"]
    assert (ada_row["accountcode"], ada_row["queue"], ada_row["agent"]) == (
        "spring",
        "sales",
        "1001",
    )
    assert json.loads(ada_row["ivr_variables"]) == {
        "campaign": "spring",
        "lead": "ada",
        "name": "Ada Lovelace",
        "account": "A-17",
    }
    (view,) = listed["campaigns"]
    assert (view["answered"], view["skipped"], view["failed"], view["pending"]) == (2, 2, 0, 0)
    assert {k: (r.status, r.attempts, r.result) for k, r in records.items()} == {
        "ada": ("answered", 1, "answered"),
        "alan": ("answered", 2, "answered"),
        "grace": ("skipped", 0, "do-not-call"),
        "premium": ("skipped", 0, "not-allowed"),
    }
    assert records["ada"].call_id == answered["ada"].call_id
    assert (screen["agent"], screen["variables"]["name"]) == ("1001", "Ada Lovelace")
    spring = (("campaign", "spring"),)
    assert figures["callcenter_campaign_dials_total", spring] == 3
    assert figures["callcenter_campaign_answered_total", spring] == 2
    assert (
        figures["callcenter_campaign_attempts_failed_total", (*spring, ("reason", "no-answer"))]
        == 1
    )
    assert (
        figures["callcenter_campaign_leads_skipped_total", (*spring, ("reason", "do-not-call"))]
        == 1
    )
    assert figures["callcenter_campaign_leads", (*spring, ("status", "answered"))] == 2
    assert figures["callcenter_campaign_running", spring] == 0, "finished"
    assert ("callcenter_queue_joined_total", (("queue", "sales"),)) not in figures, "outbound"
    (sales,) = queues
    assert (sales["queue"], sales["campaign_calls"], sales["offered"]) == ("sales", 2, 0)


async def test_a_restarted_daemon_does_not_call_an_answered_lead_again_and_keeps_the_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(switchboard, "CALLBACK_ANSWER_MARGIN", 0.2)
    async with scene(tmp_path, campaign(retry_delay=1.5, attempts=3)) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
        alan = s.center.add_phone("PJSIP/5551002", answer_after=None)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.of(CampaignAttemptFailed) and s.of(CampaignAnswered))
        await s.center.idle(timeout=10)

        daemon = await s.center.restart()
        s.events.clear()
        daemon.bus.subscribe(s.events.append)
        assert (s.view["answered"], s.view["retry"], s.view["skipped"]) == (1, 1, 2)
        alan.answer_after = 0.05
        await alan.wait_rings(2, timeout=10)
        await s.wait_for(lambda: s.of(CampaignAnswered))
        await s.wait_for(lambda: s.view["state"] == "finished")
    assert ada.rings == 1, "answered before the restart: not called again"
    assert [e.lead for e in s.of(CampaignDialing)] == ["alan"]
    (answered,) = s.of(CampaignAnswered)
    assert (answered.lead, answered.attempt) == ("alan", 2), "the try before the restart counts"
    assert s.of(CampaignLeadSkipped) == [], "skipped leads stay skipped"


async def test_pausing_a_campaign_withdraws_its_dial_waiting_for_an_agent(tmp_path: Path) -> None:
    async with scene(tmp_path, campaign()) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        router = s.center.daemon.router
        router.pause("1001", "break")
        await s.wait_for(lambda: s.view["dialing"] == 1)
        (sales,) = [q for q in router.snapshot()["queues"] if q["name"] == "sales"]
        assert (sales["waiting"], sales["campaign_dials"]) == (0, 1), "a dial is no caller"
        status, body = await s.api("POST", "/campaigns/spring/pause")
        assert status == 200 and body["campaign"]["state"] == "paused"
        await s.wait_for(lambda: s.view["dialing"] == 0)
        router.unpause("1001")
        await asyncio.sleep(0.3)
        assert ada.rings == 0 and s.of(CampaignDialing) == []
        await s.api("POST", "/campaigns/spring/resume")
        await ada.wait_answered(timeout=5)
        await s.wait_for(lambda: s.of(CampaignAnswered))
        missing = await s.api("POST", "/campaigns/autumn/pause")
    states = [(e.state, e.why) for e in s.of(CampaignStateChanged)]
    assert ("paused", "api") in states and ("running", "api") in states
    assert missing[0] == 404 and "spring" in missing[1]["error"]


async def test_a_drain_pauses_the_campaigns_and_calling_it_off_lets_them_dial_again(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, campaign()) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05, hangup_after=0.3)
        router = s.center.daemon.router
        router.pause("1001", "break")
        await s.wait_for(lambda: s.view["dialing"] == 1)
        caller = await s.center.caller_presses("5550100", "1")  # keeps the drain going
        await caller.wait_moh(timeout=5)
        status, _ = await s.api("POST", "/drain", {"timeout": 60})
        assert status == 200 and (s.view["state"], s.view["why"]) == ("paused", "draining")
        await s.wait_for(lambda: s.view["dialing"] == 0)
        refused = await s.api("POST", "/campaigns/spring/resume")
        await s.api("POST", "/drain/cancel")
        assert s.view["state"] == "running"
        router.unpause("1001")
        await caller.wait_bridged(timeout=5)
        await caller.wait_ended(timeout=5)
        await ada.wait_answered(timeout=10)
        await s.wait_for(lambda: s.of(CampaignAnswered))
        await alice.wait_idle(timeout=5)
    assert refused[0] == 409 and "drain --cancel" in refused[1]["error"]
    states = [(e.state, e.why) for e in s.of(CampaignStateChanged)]
    assert ("paused", "draining") in states and ("running", "drain called off") in states


async def test_a_caller_waiting_in_the_queue_goes_before_the_campaigns_dial(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, campaign()) as s:
        # Ada stays on the line a while: a lead gone before an agent reached them on a busy
        # machine would leave no second AgentConnected.
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=1.0)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05, hangup_after=0.3)
        router = s.center.daemon.router
        router.pause("1001", "break")
        await s.wait_for(lambda: s.view["dialing"] == 1)
        caller = await s.center.caller_presses("5550100", "1")
        await caller.wait_moh(timeout=5)
        router.unpause("1001")
        await caller.wait_bridged(timeout=5)
        assert ada.rings == 0, "the caller first"
        await caller.wait_ended(timeout=5)
        await ada.wait_answered(timeout=10)
        await s.wait_for(lambda: len(s.of(AgentConnected)) >= 2)
        await alice.wait_idle(timeout=5)
    connected = [e.call_id for e in s.of(AgentConnected)]
    assert connected[0] == caller.uniqueid
    assert connected[1] == s.of(CampaignAnswered)[0].call_id


async def test_nobody_is_called_on_a_day_the_campaign_is_closed(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    closed = [str(today), str(today + timedelta(days=1))]
    config = campaign(timezone="UTC", holidays={"dates": closed})
    async with scene(tmp_path, config) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["state"] == "closed")
        await asyncio.sleep(0.3)
    assert ada.rings == 0 and s.of(CampaignDialing) == []
    (closing,) = [e for e in s.of(CampaignStateChanged) if e.state == "closed"]
    assert closing.why == "outside the campaign's hours"


async def test_leads_added_to_the_file_are_called_after_a_reload(tmp_path: Path) -> None:
    async with scene(tmp_path, campaign()) as s:
        # Half a second on the line: a person who hangs up before their answered call
        # reached the daemon (FreeSWITCH's outbound socket on a loaded machine) never
        # talked to anyone and is rightly dialled again, which is not what this tests.
        phones = [
            s.center.add_phone(f"PJSIP/555100{n}", answer_after=0.05, hangup_after=0.5)
            for n in (1, 2, 4)
        ]
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["state"] == "finished")
        with (tmp_path / "leads.csv").open("a") as leads:
            leads.write("5551004,linus,Linus Torvalds,E-42\n")
        status, body = await s.api("POST", "/reload")
        assert status == 200 and body["reloaded"]
        await phones[2].wait_answered(timeout=10)
        await s.wait_for(lambda: s.view["state"] == "finished")
        await s.center.idle(timeout=10)
    assert [p.answered for p in phones] == [1, 1, 1], "each lead once"
    assert [e.lead for e in s.of(CampaignAnswered)] == ["ada", "alan", "linus"]


async def test_a_lead_who_picks_up_after_a_restart_is_put_through_not_hung_up(
    tmp_path: Path,
) -> None:
    """The daemon restarts while Ada's phone rings. The next daemon did not dial her, but
    when she picks up she gets the next free agent, and she is not dialled again."""
    leads = "number,id,name\n5551001,ada,Ada Lovelace\n"
    async with scene(tmp_path, campaign(ring_timeout=10), leads) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=1.0, hangup_after=0.3)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await ada.wait_rings(1, timeout=5)
        daemon = await s.center.restart()
        s.events.clear()
        daemon.bus.subscribe(s.events.append)
        await ada.wait_answered(timeout=5)
        await s.wait_for(lambda: s.of(AgentConnected))
        await s.wait_for(lambda: s.view["answered"] == 1)
        await s.center.idle(timeout=10)
        await alice.wait_idle(timeout=5)
        (answered,) = s.of(CampaignAnswered)
        row = await s.center.cdr(answered.call_id)
        await daemon.recorder.writer.wait_written("campaign-lead:spring:ada")
        (record,) = await asyncio.to_thread(daemon.store.fetch_campaign_leads)
    assert ada.rings == 1 and ada.answered == 1
    assert s.of(CampaignDialing) == []
    assert (row["accountcode"], row["agent"]) == ("spring", "1001")
    assert json.loads(row["ivr_variables"])["name"] == "Ada Lovelace", "the new daemon knows her"
    assert answered.number == "5551001"
    assert (record.status, record.attempts, record.call_id) == ("answered", 1, answered.call_id)


ADA = "number,id,name\n5551001,ada,Ada Lovelace\n"


async def restart_while_ada_rings(s: Scene) -> tuple[Any, Daemon]:
    """Ada's phone rings for the campaign and never answers; the daemon restarts meanwhile.
    Returns her phone and the new daemon (its events are the scene's from now on)."""
    ada = s.center.add_phone("PJSIP/5551001", answer_after=None)
    s.center.add_phone("PJSIP/1001", answer_after=0.05)
    await ada.wait_rings(1, timeout=5)
    daemon = await s.center.restart()
    s.events.clear()
    daemon.bus.subscribe(s.events.append)
    return ada, daemon


async def test_a_lead_ringing_when_the_daemon_stopped_is_tried_again_not_left_dialing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by ``callcenter soak --restarts``: the records said ``dialing`` for good when
    nobody answered the try a restart cut (and the campaign was paused, or the soak ended).
    Now the try is ``interrupted``: a retry, dialled again once its phone stopped ringing."""
    monkeypatch.setattr(campaign_module, "RESTORED_DIALING_GRACE", 0.5)
    async with scene(tmp_path, campaign(ring_timeout=1.5, attempts=2), ADA) as s:
        ada, daemon = await restart_while_ada_rings(s)
        await daemon.recorder.writer.wait_written("campaign-lead:spring:ada")
        (record,) = await asyncio.to_thread(daemon.store.fetch_campaign_leads)
        restored = s.view
        await ada.wait_rings(2, timeout=10)
        (dialing,) = s.of(CampaignDialing)
        await s.wait_for(lambda: s.view["state"] == "finished", timeout=15)
        # The last try's row is submitted before the campaign finishes: wait for it.
        await daemon.recorder.writer.wait_written("campaign-lead:spring:ada")
        (last,) = await asyncio.to_thread(daemon.store.fetch_campaign_leads)
    assert (record.status, record.result, record.attempts) == ("retry", "interrupted", 1)
    assert record.retry_at is not None
    assert (restored["retry"], restored["dialing"]) == (1, 0)
    assert dialing.attempt == 2, "the try the restart cut counts"
    assert (last.status, last.result, last.attempts) == ("failed", "no-answer", 2)


async def test_a_try_the_pbx_link_kept_from_being_made_is_not_counted_in_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ada is to be dialled while the daemon's link to the PBX is down: her try is not made.
    Her record says so (a retry, no try used) instead of ``dialing``, which a restart would
    count as a try made; she is dialled again a moment later and answers."""
    monkeypatch.setattr(campaign_module, "WAIT_AFTER_NOT_MADE", 0.3)
    async with scene(tmp_path, campaign(attempts=1), ADA) as s:
        board = s.center.daemon.switchboard
        originate = board.originate
        down = [True]

        async def link_down_once(*args: Any, **kwargs: Any) -> str:
            if down:
                down.clear()
                return "pbx-down"
            return await originate(*args, **kwargs)

        monkeypatch.setattr(board, "originate", link_down_once)
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.2)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.of(CampaignAttemptFailed))
        await s.center.daemon.recorder.writer.wait_written("campaign-lead:spring:ada")
        (kept,) = await asyncio.to_thread(s.center.daemon.store.fetch_campaign_leads)
        await s.wait_for(lambda: s.view["state"] == "finished", timeout=15)
        await s.center.idle(timeout=10)
    (not_made,) = s.of(CampaignAttemptFailed)
    assert (not_made.reason, not_made.attempt, not_made.final) == ("pbx-down", 0, False)
    assert (kept.status, kept.attempts, kept.result) == ("retry", 0, "pbx-down")
    assert ada.answered == 1 and s.view["answered"] == 1


async def test_a_last_try_cut_by_a_restart_is_given_up_once_its_phone_stopped_ringing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``attempts: 1`` holds across a restart: the try the restart cut counts, Ada's phone
    does not ring a second time."""
    monkeypatch.setattr(campaign_module, "RESTORED_DIALING_GRACE", 0.5)
    async with scene(tmp_path, campaign(ring_timeout=1.5, attempts=1), ADA) as s:
        ada, daemon = await restart_while_ada_rings(s)
        await s.wait_for(lambda: s.view["state"] == "finished", timeout=15)
        await daemon.recorder.writer.wait_written("campaign-lead:spring:ada")
        (record,) = await asyncio.to_thread(daemon.store.fetch_campaign_leads)
    assert ada.rings == 1
    assert s.of(CampaignDialing) == []
    assert [(e.reason, e.final) for e in s.of(CampaignAttemptFailed)] == [("interrupted", True)]
    assert (record.status, record.result, record.attempts) == ("failed", "interrupted", 1)


async def test_a_busy_lead_frees_the_agent_at_once_for_the_next_one(tmp_path: Path) -> None:
    """Ada's line is busy: the PBX says so at once, so Alice does not sit reserved for the
    whole ring timeout (10 s) before Alan is dialled."""
    leads = "number,id\n5551001,ada\n5551002,alan\n"
    async with scene(tmp_path, campaign(ring_timeout=10, lines=1), leads) as s:
        s.center.add_phone("PJSIP/5551001", reject=True)
        alan = s.center.add_phone("PJSIP/5551002", answer_after=0.05, hangup_after=0.2)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.of(CampaignAttemptFailed), timeout=4)
        await alan.wait_answered(timeout=4)
        await s.wait_for(lambda: s.of(CampaignAnswered))
        await s.center.idle(timeout=10)
    # Ada's retry (0.2 s later, once Alan's call freed Alice) may come before the scene
    # ends: the first try is the one that tells.
    busy = s.of(CampaignAttemptFailed)[0]
    assert (busy.lead, busy.reason, busy.final) == ("ada", "busy", False)
    assert [e.lead for e in s.of(CampaignAnswered)] == ["alan"]


async def test_alice_hears_which_campaign_a_lead_is_from_before_they_are_put_through(
    tmp_path: Path,
) -> None:
    config = merge(
        campaign(agent_announce="campaign-spring"),
        {"queues": {"sales": {"agent_announce": "queue-sales"}}},
    )
    async with scene(tmp_path, config, "number,id\n5551001,ada\n") as s:
        s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=1.0)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.of(CampaignAnswered))
        await s.center.idle(timeout=10)
        await alice.wait_idle(timeout=5)
    assert alice.heard == ["campaign-spring"], "the campaign's, not the queue's"


def rating_flow(prompt: str) -> dict[str, Any]:
    """A one-question survey: ``prompt``, one digit into ``rating`` (1 s to answer, once)."""
    return {
        "start": "ask",
        "nodes": {
            "ask": {
                "kind": "collect",
                "prompt": prompt,
                "variable": "rating",
                "max_digits": 1,
                "timeout": 1,
                "retries": 1,
                "next": "bye",
                "default": "bye",
            },
            "bye": {"kind": "hangup", "prompt": "survey-thanks"},
        },
    }


async def test_a_lead_is_asked_the_campaigns_survey_not_the_queues_once_alice_hangs_up(
    tmp_path: Path,
) -> None:
    config = merge(
        campaign(survey={"flow": "lead-csat", "score": "rating"}),
        {
            "flows": {"lead-csat": rating_flow("lead-rate"), "queue-csat": rating_flow("q-rate")},
            "queues": {"sales": {"survey": {"flow": "queue-csat", "score": "rating"}}},
        },
    )
    async with scene(tmp_path, config, "number,id\n5551001,ada\n") as s:
        lead = s.center.add_phone("PJSIP/5551001", answer_after=0.05)
        s.center.add_phone("PJSIP/1001", answer_after=0.05, hangup_after=0.5)
        await s.wait_for(lambda: s.of(SurveyEnded))
        await s.center.idle(timeout=10)
        await lead.wait_idle(timeout=5)
    (survey,) = s.of(SurveyEnded)
    assert (survey.flow, survey.queue, survey.agent) == ("lead-csat", "sales", "1001")
    assert survey.number == "5551001"
    assert "lead-rate" in lead.heard and "q-rate" not in lead.heard


async def test_a_predictive_campaign_dials_ahead_of_its_agent_and_calls_a_dropped_lead_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One agent. Ada's line is busy, so the dialler learns that leads do not all pick up
    and dials Alan and Bob at once for Alice alone. Both answer: one is put through, the
    other waits half a second, hears the drop message and is cleared; the abandon rate
    (50 %) is over the limit, so the dialler goes back to one dial per free agent, and the
    dropped lead is called again only once Alice is reserved for them."""
    monkeypatch.setattr(pacing, "PRIOR_TRIES", 0)
    monkeypatch.setattr(campaign_module, "PACING_CHECK", 60.0)  # Alice freeing up wakes it
    monkeypatch.setattr(switchboard, "CALLBACK_ANSWER_MARGIN", 0.2)
    settings = campaign(
        mode="predictive",
        max_ratio=2,
        drop_after=0.5,
        drop_prompt="spring-sorry-we-will-call-again",
        lines=3,
        attempts=2,
    )
    leads = "number,id,name\n5551001,ada,Ada\n5551002,alan,Alan\n5551004,bob,Bob\n"
    async with scene(tmp_path, settings, leads) as s:
        ada = s.center.add_phone("PJSIP/5551001", reject=True)
        alan = s.center.add_phone("PJSIP/5551002", answer_after=0.05, hangup_after=0.8)
        bob = s.center.add_phone("PJSIP/5551004", answer_after=0.05, hangup_after=0.8)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: any(e.reason == "abandoned" for e in s.of(CampaignAttemptFailed)))
        during = s.view
        await s.wait_for(lambda: s.view["state"] == "finished", timeout=15)
        await s.center.idle(timeout=10)
        await alice.wait_idle(timeout=5)
        view = s.view
        figures = samples(s.center.daemon.api.render_metrics())
        for lead in ("ada", "alan", "bob"):
            await s.center.daemon.recorder.writer.wait_written(f"campaign-lead:spring:{lead}")
        records = {
            r.lead: r for r in await asyncio.to_thread(s.center.daemon.store.fetch_campaign_leads)
        }
        (dropped,) = [e for e in s.of(CampaignAttemptFailed) if e.reason == "abandoned"]
        (drop,) = [e for e in s.of(QueueExited) if e.reason == "dropped"]
        row = await s.center.cdr(drop.call_id)
    phones = {"alan": alan, "bob": bob}
    lead = dropped.lead
    other = "bob" if lead == "alan" else "alan"
    assert (dropped.attempt, dropped.final) == (1, False)
    assert phones[lead].heard == ["spring-sorry-we-will-call-again"], "told who called"
    assert phones[lead].answered == 2 and phones[other].answered == 1
    assert ada.answered == 0
    dials = [(e.lead, e.agent, e.attempt) for e in s.of(CampaignDialing)]
    assert dials[:3] == [("ada", "", 1), ("alan", "", 1), ("bob", "", 1)], "two at once for Alice"
    assert (lead, "1001", 2) in dials, "called back with Alice reserved"
    assert sorted(e.lead for e in s.of(CampaignAnswered)) == ["alan", "bob"]
    assert {e.agent for e in s.of(AgentConnected)} == {"1001"}
    assert (during["mode"], during["dropped"], during["abandon_rate"]) == ("predictive", 1, 50.0)
    assert view["ratio"] == 1.0, "over the abandon limit: one dial per free agent"
    assert {k: (r.status, r.attempts, r.result) for k, r in records.items()} == {
        "ada": ("failed", 2, "busy"),
        lead: ("answered", 2, "answered"),
        other: ("answered", 1, "answered"),
    }
    assert drop.wait_seconds >= 0.5
    assert (row["accountcode"], row["queue"], row["agent"], row["disposition"]) == (
        "spring",
        "sales",
        "",
        "ANSWERED",
    )
    assert json.loads(row["ivr_variables"])["lead"] == lead
    spring = (("campaign", "spring"),)
    assert (
        figures["callcenter_campaign_attempts_failed_total", (*spring, ("reason", "abandoned"))]
        == 1
    )
    # One dropped of three who answered (the dropped lead's second call is the third).
    assert figures["callcenter_campaign_abandon_rate_percent", spring] == 33.33
    assert figures["callcenter_campaign_dial_ratio", spring] == 1.0


@pytest.mark.parametrize("mode", ["progressive", "predictive"])
async def test_an_answering_machine_gets_the_campaigns_message_and_no_agent(
    tmp_path: Path, mode: str
) -> None:
    """The dials go to the dialplan context that runs answering machine detection. Ada's
    phone is answered by a machine: it gets the campaign's message, no agent is rung for
    it (progressive: Alice, reserved for Ada, is freed at once), and the try failed as
    ``machine``; tried again, same again, and Ada is given up. Alan is a person and talks
    to Alice."""
    extra = {"drop_prompt": "spring-sorry"} if mode == "predictive" else {}
    settings = campaign(
        mode=mode,
        context="callcenter-campaign-amd",
        machine="message",
        machine_prompt="spring-please-call-us",
        lines=1,
        **extra,
    )
    leads = "number,id,name\n5551001,ada,Ada\n5551002,alan,Alan\n"
    async with scene(tmp_path, settings, leads) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05, machine=True)
        alan = s.center.add_phone("PJSIP/5551002", answer_after=0.05, hangup_after=0.3)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["state"] == "finished", timeout=15)
        await s.center.idle(timeout=10)
        await alice.wait_idle(timeout=5)
        machines = s.of(CampaignMachineAnswered)
        rows = [await s.center.cdr(e.call_id) for e in machines]
        for lead in ("ada", "alan"):
            await s.center.daemon.recorder.writer.wait_written(f"campaign-lead:spring:{lead}")
        records = {
            r.lead: r for r in await asyncio.to_thread(s.center.daemon.store.fetch_campaign_leads)
        }
    assert [(e.lead, e.attempt, e.action) for e in machines] == [
        ("ada", 1, "message"),
        ("ada", 2, "message"),
    ]
    assert ada.heard == ["spring-please-call-us"] * 2, "the message, left twice"
    assert alice.answered == 1 and alan.answered == 1, "only Alan is put through"
    failed = [(e.lead, e.attempt, e.reason, e.final) for e in s.of(CampaignAttemptFailed)]
    assert failed == [("ada", 1, "machine", False), ("ada", 2, "machine", True)]
    assert [e.lead for e in s.of(CampaignAnswered)] == ["alan"]
    assert {e.agent for e in s.of(AgentConnected)} == {"1001"}
    assert {k: (r.status, r.attempts, r.result) for k, r in records.items()} == {
        "ada": ("failed", 2, "machine"),
        "alan": ("answered", 1, "answered"),
    }
    for row in rows:
        assert (row["accountcode"], row["agent"], row["disposition"]) == ("spring", "", "ANSWERED")
        assert json.loads(row["ivr_variables"])["lead"] == "ada"


async def test_a_preview_campaign_shows_each_lead_to_the_agent_before_dialling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alice is reserved and shown Ada first (her columns on the status screen, her own
    phone silent): she skips her, and Ada waits for later, no try used. Shown Alan, she
    says dial from the command line, and talks to him. Shown Bob, she says nothing, and
    Bob is dialled when the preview time is up."""
    settings = campaign(mode="preview", preview_seconds=2.5, retry_delay=60)
    leads = "number,id,name\n5551001,ada,Ada\n5551002,alan,Alan\n5551004,bob,Bob\n"
    async with scene(tmp_path, settings, leads) as s:
        for number in ("5551001", "5551002", "5551004"):
            s.center.add_phone(f"PJSIP/{number}", answer_after=0.05, hangup_after=0.3)
        alice = s.center.add_phone("PJSIP/1001", answer_after=0.05)
        api = f"http://127.0.0.1:{s.center.daemon.api.port}"

        async def shown() -> dict[str, Any]:
            async with asyncio.timeout(5):
                while True:
                    _, status = await s.api("GET", "/status")
                    if status["previews"]:
                        (preview,) = status["previews"]
                        return dict(preview)
                    await asyncio.sleep(0.02)

        first = await shown()
        rings_while_shown = alice.rings
        skipped, said = await s.api("POST", "/agents/1001/preview-skip")
        second = await shown()
        capsys.readouterr()
        dialled = await asyncio.to_thread(cli_main, ["agent", "preview-dial", "1001", "--api", api])
        await s.wait_for(lambda: len(s.of(CampaignAnswered)) == 1)
        third = await shown()
        await s.wait_for(lambda: len(s.of(CampaignAnswered)) == 2, timeout=10)
        nothing, refused = await s.api("POST", "/agents/1001/preview-dial")
        await s.center.idle(timeout=10)
        view = s.view
    assert (first["lead"], first["agent"], first["data"]) == ("ada", "1001", {"name": "Ada"})
    assert 0 < first["seconds_left"] <= 2.5
    assert rings_while_shown == 0, "nobody is called while the agent looks"
    assert (skipped, said["lead"], said["decision"]) == (200, "ada", "skip")
    assert (second["lead"], dialled, third["lead"]) == ("alan", 0, "bob")
    decided = [(e.lead, e.decision) for e in s.of(CampaignPreview) if e.decision]
    assert decided == [("ada", "skip"), ("alan", "dial"), ("bob", "timeout-dial")]
    assert [e.lead for e in s.of(CampaignDialing)] == ["alan", "bob"]
    assert [e.lead for e in s.of(CampaignAnswered)] == ["alan", "bob"]
    assert alice.answered == 2
    assert nothing == 409 and "no lead to preview" in refused["error"]
    assert (view["answered"], view["pending"], view["dialled"]) == (2, 1, 2), "Ada: no try used"


async def test_an_agent_who_logs_out_while_shown_a_lead_gives_it_back(tmp_path: Path) -> None:
    """Alice logs out with Ada on her screen: the preview is withdrawn, Ada is not called
    and keeps her tries (the try never happened)."""
    settings = campaign(mode="preview", preview_seconds=5.0)
    async with scene(tmp_path, settings, "number,id\n5551001,ada\n") as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.of(CampaignPreview))
        status, _ = await s.api("POST", "/agents/1001/logout")
        await s.wait_for(lambda: any(e.decision for e in s.of(CampaignPreview)))
        _, after = await s.api("GET", "/status")
        view = s.view
    assert status == 200
    assert [e.decision for e in s.of(CampaignPreview)] == ["", "withdrawn"]
    assert after["previews"] == [] and ada.rings == 0
    assert (view["pending"], view["dialled"]) == (1, 0)


async def test_ops_recycle_the_leads_nobody_answered_and_they_are_called_again(
    tmp_path: Path,
) -> None:
    """Ada never picks up on the campaign's one try: it finishes with her given up.
    `campaign recycle spring --reasons no-answer` tries her again (a first try afresh); she
    answers this time, and a restart keeps her answered."""
    leads = "number,id,name\n5551001,ada,Ada\n"
    async with scene(tmp_path, campaign(attempts=1), leads) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=None)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["state"] == "finished")
        wrong = await run_cli(s.center, "campaign", "pause", "spring", "--reasons", "busy")
        none = await run_cli(s.center, "campaign", "recycle", "spring", "--reasons", "busy")
        ada.answer_after = 0.05
        ada.hangup_after = 0.3
        again = await run_cli(s.center, "campaign", "recycle", "spring", "--reasons", "no-answer")
        await s.wait_for(lambda: s.view["answered"] == 1 and s.view["state"] == "finished")
        await s.center.idle(timeout=10)
        await s.center.daemon.recorder.writer.wait_written("campaign-lead:spring:ada")
        await s.center.restart()
        after_restart = s.view
    assert wrong[0] == 2 and "--reasons goes with campaign recycle" in wrong[2]
    assert none[0] == 0 and json.loads(none[1])["recycled"] == 0
    assert again[0] == 0 and json.loads(again[1])["recycled"] == 1
    (recycled,) = s.of(CampaignLeadRecycled)
    assert (recycled.lead, recycled.reason, recycled.via) == ("ada", "no-answer", "api")
    assert ada.rings == 2
    assert (after_restart["answered"], after_restart["failed"]) == (1, 0)


async def test_hot_leads_are_called_first_and_one_the_crm_adds_hotter_next(
    tmp_path: Path,
) -> None:
    """The file gives Alan and Grace priority 5, Ada none: Alan, then Grace, then Ada;
    Zoe added by the CRM at 9 while Alan talks is called before Grace."""
    leads = "number,id,priority\n5551001,ada,\n5551002,alan,5\n5551003,grace,5\n"
    async with scene(tmp_path, campaign(lines=1, allow=["_555XXXX"], do_not_call=None), leads) as s:
        for number in ("5551001", "5551002", "5551003", "5551009"):
            s.center.add_phone(f"PJSIP/{number}", answer_after=0.05, hangup_after=0.3)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: len(s.of(CampaignDialing)) == 1)
        added = await s.api(
            "POST", "/campaigns/spring/leads", {"number": "5551009", "id": "zoe", "priority": 9}
        )
        bad = await s.api(
            "POST", "/campaigns/spring/leads", {"number": "5551008", "priority": "high"}
        )
        await s.wait_for(lambda: s.view["answered"] == 4, timeout=20)
    assert added[0] == 200 and bad[0] == 400
    assert [e.lead for e in s.of(CampaignDialing)] == ["alan", "zoe", "grace", "ada"]


async def test_each_lead_sees_the_centres_number_of_their_own_area(tmp_path: Path) -> None:
    """Local presence: Ada's number matches the first pattern, Alan's only the second,
    Gus's none: each is called from the line of their own area, Gus from the campaign's."""
    leads = "number,id\n5551001,ada\n5551002,alan\n5552000,gus\n"
    local = {"_5551001": "5550101", "_55510XX": "5550100"}
    settings = campaign(caller_id="5550999", local_caller_ids=local)
    async with scene(tmp_path, settings, leads) as s:
        for number in ("5551001", "5551002", "5552000"):
            s.center.add_phone(f"PJSIP/{number}", answer_after=0.05, hangup_after=0.2)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["answered"] == 3)
        await s.center.idle(timeout=10)
        shown = {}
        for answered in s.of(CampaignAnswered):
            row = await s.center.cdr(answered.call_id)
            shown[answered.lead] = row["src"]
    assert shown == {"ada": "5550101", "alan": "5550100", "gus": "5550999"}


async def test_the_crm_takes_leads_off_the_campaign_and_they_are_never_called_again(
    tmp_path: Path,
) -> None:
    """Ada and Alan do not pick up; before their next tries the CRM hears they signed up
    elsewhere: `campaign remove-lead` (POST /campaigns/spring/leads/<lead>/remove) takes
    each off (not while a try rings), the campaign finishes, and a restart keeps them off."""
    leads = "number,id,name\n5551001,ada,Ada\n5551002,alan,Alan\n"
    async with scene(tmp_path, campaign(attempts=3, retry_delay=30), leads) as s:
        ada = s.center.add_phone("PJSIP/5551001", answer_after=None)
        alan = s.center.add_phone("PJSIP/5551002", answer_after=None)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: any(e.lead == "ada" for e in s.of(CampaignAttemptFailed)))
        removed = await run_cli(s.center, "campaign", "remove-lead", "spring", "--lead", "ada")
        await s.wait_for(lambda: any(e.lead == "alan" for e in s.of(CampaignDialing)))
        ringing = await s.api("POST", "/campaigns/spring/leads/alan/remove")
        await s.wait_for(lambda: any(e.lead == "alan" for e in s.of(CampaignAttemptFailed)))
        later = await s.api("POST", "/campaigns/spring/leads/alan/remove")
        twice = await s.api("POST", "/campaigns/spring/leads/alan/remove")
        nobody = await s.api("POST", "/campaigns/spring/leads/zoe/remove")
        bare = await run_cli(s.center, "campaign", "remove-lead", "spring", "--number", "5551001")
        await s.wait_for(lambda: s.view["state"] == "finished")
        await s.center.daemon.recorder.writer.wait_written("campaign-lead:spring:alan")
        await s.center.restart()
        await asyncio.sleep(0.3)
        after = s.view
        rows = {r.lead: r for r in s.center.daemon.store.fetch_campaign_leads()}
    assert removed == (0, "lead ada taken off spring\n", ""), removed
    assert ringing[0] == 409 and "is being dialled" in ringing[1]["error"]
    assert later[0] == 200 and later[1]["result"] == "removed"
    assert twice[0] == 409 and "is skipped (removed)" in twice[1]["error"]
    assert nobody[0] == 404 and "has no lead 'zoe'" in nobody[1]["error"]
    assert bare[0] == 2 and "takes --lead only" in bare[2]
    skipped = [(e.lead, e.reason, e.via, e.attempts) for e in s.of(CampaignLeadSkipped)]
    assert skipped == [("ada", "removed", "api", 1), ("alan", "removed", "api", 1)]
    assert (ada.rings, alan.rings) == (1, 1), "neither tried again"
    assert (after["skipped"], after["pending"], after["state"]) == (2, 0, "finished"), after
    assert {(r.lead, r.status, r.result, r.attempts) for r in rows.values()} == {
        ("ada", "skipped", "removed", 1),
        ("alan", "skipped", "removed", 1),
    }


async def test_a_crm_adds_a_lead_while_the_campaign_runs_and_it_is_called_once(
    tmp_path: Path,
) -> None:
    """Grace's contact came in after the file was written: `campaign add-lead` (POST
    /campaigns/spring/leads) adds her with her columns; she is called, put through with
    them, and a restart neither forgets nor calls her again."""
    leads = "number,id,name\n5551001,ada,Ada\n"
    async with scene(tmp_path, campaign(), leads) as s:
        s.center.add_phone("PJSIP/5551001", answer_after=0.05, hangup_after=0.3)
        s.center.add_phone("PJSIP/5551004", answer_after=0.05, hangup_after=0.3)
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        await s.wait_for(lambda: s.view["answered"] == 1)
        added = await run_cli(
            s.center, "campaign", "add-lead", "spring", "--number", "555-1004",
            "--lead", "c-4", "--data", "name=Grace Hopper,account=C-11",
        )  # fmt: skip
        again = await s.api("POST", "/campaigns/spring/leads", {"number": "5551004", "id": "c-4"})
        bad = await s.api("POST", "/campaigns/spring/leads", {"number": "call me"})
        zone = await s.api(
            "POST", "/campaigns/spring/leads", {"number": "5551005", "timezone": "Mars/Base"}
        )
        await s.wait_for(lambda: s.view["answered"] == 2 and s.view["state"] == "finished")
        await s.center.idle(timeout=10)
        (answered,) = [e for e in s.of(CampaignAnswered) if e.lead == "c-4"]
        row = await s.center.cdr(answered.call_id)
        await s.center.daemon.recorder.writer.wait_written("campaign-lead:spring:c-4")
        await s.center.restart()
        await asyncio.sleep(0.3)
        after = s.view
        await s.center.daemon.reload()
        after_reload = s.view
    assert added == (0, "lead c-4 (5551004) added to spring\n", ""), added
    assert again[0] == 409 and "has a lead 'c-4' already" in again[1]["error"]
    assert bad[0] == 400 and "is not a phone number" in bad[1]["error"]
    assert zone[0] == 400 and "is no time zone" in zone[1]["error"]
    variables = json.loads(row["ivr_variables"])
    assert (variables["name"], variables["account"]) == ("Grace Hopper", "C-11")
    assert (after["leads"], after["answered"], after["pending"]) == (2, 2, 0), after
    assert after_reload["leads"] == 2, "a reload of the lead file keeps her"
    assert len(s.of(CampaignDialing)) == 2, "nobody called twice"
