"""Post-call surveys through the demo PBX over real TCP: once the agent hangs up, a caller
still on the line rates the call; the answer is kept with the agent who served them. Every
scenario runs on both PBXs: Asterisk (FastAGI, AsyncAGI) and FreeSWITCH (ESL inbound, ESL
outbound socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from callcenter.events import AgentConnected, AgentKeysRefused, EngineEvent, SurveyEnded
from callcenter.records.surveys import SurveyRecord
from callcenter.testing import TRANSPORTS, Center, Transport, running_center

_transport: list[Transport] = ["fastagi"]


@pytest.fixture(autouse=True, params=TRANSPORTS)
def on_every_transport(request: pytest.FixtureRequest) -> None:
    _transport[0] = request.param


def survey_config(
    survey: Mapping[str, Any] | None = None, queue: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """800 goes into queue ``acd`` (agents 1001, 1002, linear); callers from 5550111 said
    yes to a survey in the IVR; ``csat`` asks for a rating of 1-5, 0 to talk to someone
    again."""
    return {
        "agents": {"1001": {"logged_in": False}, "1002": {"logged_in": False}},
        "routes": {"800": {"flow": "direct"}},
        "flows": {
            "direct": {
                "start": "who",
                "nodes": {
                    "who": {
                        "kind": "branch",
                        "cases": [{"caller": ["5550111"], "goto": "yes"}],
                        "default": "q",
                    },
                    "yes": {"kind": "set", "variables": {"survey": "1"}, "next": "q"},
                    "q": {"kind": "queue", "queue": "acd"},
                },
            },
            "csat": {
                "start": "ask",
                "nodes": {
                    "ask": {
                        "kind": "collect",
                        "prompt": "survey-rate",
                        "variable": "rating",
                        "max_digits": 1,
                        "pattern": "[0-5]",
                        "timeout": 2,
                        "retries": 1,
                        "next": "again",
                        "default": "thanks",
                    },
                    "again": {
                        "kind": "branch",
                        "cases": [{"variable": "rating", "equals": "0", "goto": "back"}],
                        "default": "thanks",
                    },
                    "back": {"kind": "queue", "queue": "acd"},
                    "thanks": {"kind": "hangup", "prompt": "survey-thanks"},
                },
            },
        },
        "queues": {
            "acd": {
                "agents": ["1001", "1002"],
                "strategy": "linear",
                "ring_timeout": 2,
                "max_wait": 20,
                "survey": {"flow": "csat", "score": "rating", **(survey or {})},
                **(queue or {}),
            }
        },
    }


class Scene:
    def __init__(self, center: Center) -> None:
        self.center = center
        self.events: list[EngineEvent] = []
        center.daemon.bus.subscribe(self.events.append)
        self.phones: dict[str, Any] = {}

    async def wait(self, predicate: Any, what: str) -> None:
        async with asyncio.timeout(5):
            while not predicate():
                await asyncio.sleep(0.01)
        assert predicate(), what

    def surveys_ended(self) -> list[SurveyEnded]:
        return [e for e in self.events if isinstance(e, SurveyEnded)]

    async def surveys(self, *callers: Any) -> list[SurveyRecord]:
        """The survey rows once the calls of ``callers`` are recorded (a survey is written
        before its call's CDR)."""
        for caller in callers:
            await self.center.cdr(caller.uniqueid)
        return await asyncio.to_thread(self.center.daemon.store.fetch_surveys)


@asynccontextmanager
async def scene(
    tmp_path: Path,
    survey: Mapping[str, Any] | None = None,
    *,
    agents: int = 1,
    queue: Mapping[str, Any] | None = None,
    hangup_after: float | None = 0.3,
    keys: bool = False,
) -> AsyncIterator[Scene]:
    config = survey_config(survey, queue)
    if keys:
        config["acd"] = {"agent_keys": {}}
    async with running_center(tmp_path, transport=_transport[0], config=config) as center:
        scene = Scene(center)
        for agent_id in ("1001", "1002")[:agents]:
            scene.phones[agent_id] = center.add_phone(
                f"PJSIP/{agent_id}", answer_after=0.05, hangup_after=hangup_after
            )
            center.daemon.router.login(agent_id, via="test")
        yield scene


async def test_the_caller_rates_the_agent_who_hung_up_and_the_score_is_kept_with_that_agent(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, {"satisfied_from": 4}) as s:
        caller = await s.center.pbx.call("800", caller_num="5550100")
        await caller.wait_bridged(timeout=5)
        await caller.wait_for_prompt("survey-rate", timeout=5)
        await caller.press("4")
        await caller.wait_for_prompt("survey-thanks", timeout=5)
        await caller.wait_ended(timeout=5)
        rows = await s.surveys(caller)
        cdr = await s.center.cdr(caller.uniqueid)
    (row,) = rows
    assert (row.call_id, row.queue, row.agent, row.flow) == (caller.uniqueid, "acd", "1001", "csat")
    assert (row.score, row.completed, row.number) == (4, True, "5550100")
    assert row.satisfied is True, "4 reaches satisfied_from"
    assert dict(row.answers) == {"rating": "4"}
    assert cdr["hung_up_by"] == "agent", "the agent ended the conversation"
    assert "csat:ask" in cdr["ivr_path"]
    assert cdr["agent"] == "1001"


async def test_a_caller_who_hangs_up_first_is_not_surveyed(tmp_path: Path) -> None:
    async with scene(tmp_path) as s:
        caller = await s.center.pbx.call("800", caller_num="5550100")
        await caller.wait_bridged(timeout=5)
        await caller.hangup()
        await caller.wait_ended(timeout=5)
        rows = await s.surveys(caller)
    assert rows == []
    assert "survey-rate" not in caller.heard


async def test_a_caller_who_hangs_up_during_the_survey_leaves_an_unfinished_one(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path) as s:
        caller = await s.center.pbx.call("800", caller_num="5550100")
        await caller.wait_for_prompt("survey-rate", timeout=5)
        await caller.hangup()
        await caller.wait_ended(timeout=5)
        rows = await s.surveys(caller)
        cdr = await s.center.cdr(caller.uniqueid)
    (row,) = rows
    assert (row.agent, row.score, row.completed) == ("1001", None, False)
    assert cdr["hung_up_by"] == "agent"


async def test_only_callers_who_said_yes_in_the_ivr_are_surveyed(tmp_path: Path) -> None:
    async with scene(tmp_path, {"opt_in": "survey"}) as s:
        said_no = await s.center.pbx.call("800", caller_num="5550100")
        await said_no.wait_bridged(timeout=5)
        await said_no.wait_ended(timeout=5)
        await s.center.idle(timeout=10)
        await asyncio.sleep(0.3)
        said_yes = await s.center.pbx.call("800", caller_num="5550111")
        await said_yes.wait_for_prompt("survey-rate", timeout=5)
        await said_yes.press("5")
        await said_yes.wait_ended(timeout=5)
        rows = await s.surveys(said_no, said_yes)
    assert "survey-rate" not in said_no.heard
    assert [(r.number, r.score) for r in rows] == [("5550111", 5)]


async def test_a_caller_who_asks_for_someone_again_is_queued_and_not_surveyed_twice(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, agents=2, queue={"wrapup": 10}) as s:
        caller = await s.center.pbx.call("800", caller_num="5550100")
        await caller.wait_for_prompt("survey-rate", timeout=5)
        await caller.press("0")
        await caller.wait_ended(timeout=8)
        rows = await s.surveys(caller)
        cdr = await s.center.cdr(caller.uniqueid)
    (row,) = rows
    assert (row.agent, row.score, row.completed) == ("1001", 0, True)
    assert caller.heard.count("survey-rate") == 1, "one survey a call"
    assert cdr["agent"] == "1001", "the CDR's agent is the first who answered"
    connected = [e.agent for e in s.events if isinstance(e, AgentConnected)]
    assert connected == ["1001", "1002"], "1001 was wrapping up: 1002 took them"
    assert len(s.surveys_ended()) == 1


async def test_after_an_attended_transfer_the_caller_rates_the_agent_they_were_handed_to(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, agents=2, hangup_after=None) as s:
        board = s.center.daemon.switchboard
        caller = await s.center.pbx.call("800", caller_num="5550100")
        await caller.wait_bridged(timeout=5)
        await s.wait(lambda: board.agent_call("1001") is not None, "1001 talks")
        assert await board.consult("1001", "1002") == "1002"
        await s.phones["1002"].wait_answered(timeout=5)
        await s.wait(
            lambda: board.active[caller.uniqueid].consult.state.value == "talking",  # type: ignore[union-attr]
            "1002 answered the consultation",
        )
        assert await board.consult_complete("1001") == "1002"
        await asyncio.sleep(0.3)
        await s.phones["1002"].hangup()
        await caller.wait_for_prompt("survey-rate", timeout=5)
        await caller.press("3")
        await caller.wait_ended(timeout=5)
        rows = await s.surveys(caller)
    (row,) = rows
    assert (row.agent, row.score, row.completed) == ("1002", 3, True)


async def test_an_agent_who_said_goodbye_sends_the_caller_to_the_survey_with_star_7(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, hangup_after=None, keys=True) as s:
        board = s.center.daemon.switchboard
        caller = await s.center.pbx.call("800", caller_num="5550100")
        await caller.wait_bridged(timeout=5)
        await s.wait(lambda: board.agent_call("1001") is not None, "1001 talks")
        await s.phones["1001"].press("*7")
        await caller.wait_for_prompt("survey-rate", timeout=5)
        await s.wait(lambda: board.agent_call("1001") is None, "1001 left the call")
        await caller.press("5")
        await caller.wait_for_prompt("survey-thanks", timeout=5)
        await caller.wait_ended(timeout=5)
        rows = await s.surveys(caller)
        cdr = await s.center.cdr(caller.uniqueid)
    (row,) = rows
    assert (row.agent, row.score, row.completed) == ("1001", 5, True)
    assert cdr["hung_up_by"] == "agent", "the agent ended the conversation with the key"
    assert cdr["agent"] == "1001"
    assert cdr["transfers"] == 0, "sending to the survey is no transfer"


async def test_star_7_for_a_caller_who_did_not_opt_in_is_refused_and_the_call_goes_on(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, {"opt_in": "survey"}, hangup_after=None, keys=True) as s:
        board = s.center.daemon.switchboard
        caller = await s.center.pbx.call("800", caller_num="5550100")
        await caller.wait_bridged(timeout=5)
        await s.wait(lambda: board.agent_call("1001") is not None, "1001 talks")
        await s.phones["1001"].press("*7")
        refused = lambda: [e for e in s.events if isinstance(e, AgentKeysRefused)]  # noqa: E731
        await s.wait(refused, "the key was refused")
        await asyncio.sleep(0.3)
        assert board.agent_call("1001") is not None, "the agent is still with the caller"
        await s.phones["1001"].hangup()
        await caller.wait_ended(timeout=5)
        rows = await s.surveys(caller)
    assert rows == []
    (event,) = refused()
    assert (event.agent, event.keys) == ("1001", "*7")
    assert "did not opt in" in event.reason
    assert "survey-rate" not in caller.heard


async def test_the_api_sends_a_caller_back_from_hold_to_the_survey_but_not_while_on_hold(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path, hangup_after=None) as s:
        board, center = s.center.daemon.switchboard, s.center
        caller = await center.pbx.call("800", caller_num="5550100")
        await caller.wait_bridged(timeout=5)
        await s.wait(lambda: board.agent_call("1001") is not None, "1001 talks")
        status, answer = await center.api("POST", "/agents/1001/hold")
        assert status == 200, answer
        status, refused = await center.api("POST", "/agents/1001/survey")
        await asyncio.sleep(0.2)
        status_unhold, answer = await center.api("POST", "/agents/1001/unhold")
        assert status_unhold == 200, answer
        await asyncio.sleep(0.3)
        status_sent, sent = await center.api("POST", "/agents/1001/survey")
        await caller.wait_for_prompt("survey-rate", timeout=5)
        await caller.press("2")
        await caller.wait_ended(timeout=5)
        rows = await s.surveys(caller)
        status_after, after = await center.api("POST", "/agents/1001/survey")
    assert status == 409 and "on hold" in refused["error"], refused
    assert (status_sent, sent) == (200, {"agent": "1001", "survey": "csat"})
    assert status_after == 409 and "not on a call" in after["error"], after
    (row,) = rows
    assert (row.agent, row.score, row.completed) == ("1001", 2, True)
