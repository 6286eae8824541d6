"""Agents' skills changed while the centre runs (`callcenter agent skills 1001 --skills
fr=5`, `POST /agents/<id>/skills`): the callers waiting get the agent at once, the change is
kept across reloads and restarts until the config's skills are given back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.events import AgentSkillsChanged, EngineEvent
from callcenter.testing import Transport, running_center

STEP = 5.0
FRENCH_SALES = {"queues": {"sales": {"skills": ["fr"]}}}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_alice_learns_french_and_takes_the_french_caller_waiting_then_forgets_it(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport, config=FRENCH_SALES) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        center.add_phone("PJSIP/1001", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5554001")
        await caller.wait_for_prompt("welcome-menu", timeout=STEP)
        await caller.press("1")
        await caller.wait_moh(timeout=STEP)
        await asyncio.sleep(0.3)
        assert center.daemon.router.agents["1001"].state == "available", "no French: not rung"
        status, given = await center.api("POST", "/agents/1001/skills", {"skills": {"fr": 5}})
        assert await caller.wait_bridged(timeout=STEP) == "PJSIP/1001"
        _, shown = await center.api("GET", "/status")
        await caller.hangup()
        await center.idle()
        daemon = await center.restart()
        kept = dict(daemon.router.agents["1001"].skills)
        again = await center.api("POST", "/agents/1001/skills", {"skills": {"fr": 5}})
        reset = await center.api("POST", "/agents/1001/skills", {"skills": None})
        daemon = await center.restart()
        after_reset = dict(daemon.router.agents["1001"].skills)
    assert status == 200
    assert given == {"agent": "1001", "skills": {"fr": 5}, "changed": True, "kept": True}
    assert kept == {"fr": 5}, "a restart keeps them"
    assert "skills fr=5 since" in format_status(shown)
    assert again[1]["changed"] is False
    assert reset[1] == {"agent": "1001", "skills": {}, "changed": True, "kept": False}
    assert after_reset == {}, "the config's again, after a restart too"
    changed = [(e.agent, e.skills, e.via) for e in events if isinstance(e, AgentSkillsChanged)]
    assert changed == [("1001", {"fr": 5}, "api")]


async def test_skills_that_make_no_sense_are_refused_clearly(tmp_path: Path) -> None:
    config = {"acd": {"skills": ["fr", "de"]}}
    async with running_center(tmp_path, config=config) as center:
        level = await center.api("POST", "/agents/1001/skills", {"skills": {"fr": 11}})
        unknown = await center.api("POST", "/agents/1001/skills", {"skills": {"it": 3}})
        missing = await center.api("POST", "/agents/1001/skills", {})
        nobody = await center.api("POST", "/agents/9999/skills", {"skills": {"fr": 3}})
        url = f"http://127.0.0.1:{center.daemon.api.port}"
        by_cli = await asyncio.to_thread(
            cli_main, ["agent", "skills", "1002", "--skills", "fr=7,de=2", "--api", url]
        )
        bob = dict(center.daemon.router.agents["1002"].skills)
    assert level[0] == 400 and "1-10" in level[1]["error"]
    assert unknown[0] == 400 and "no skill 'it' in acd.skills (fr, de)" in unknown[1]["error"]
    assert missing[0] == 400
    assert nobody[0] == 404
    assert by_cli == 0 and bob == {"fr": 7, "de": 2}


def test_the_command_line_reads_skill_levels(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["agent", "skills", "1001", "--skills", "fr", "--api", "http://127.0.0.1:9"])
    assert "'fr' is not skill=level" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["agent", "skills", "1001", "--api", "http://127.0.0.1:9"])
    assert "agent skills needs --skills" in capsys.readouterr().err
