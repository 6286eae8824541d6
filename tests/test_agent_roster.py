"""Agents added while the centre runs (mod_callcenter's ``callcenter_config agent add``):
`callcenter agent add 1010 --name Zoe --device PJSIP/1010`, ``POST /roster``; they join
queues and take calls like the config file's agents, stay across reloads and restarts, are
changed and removed the same way, and settings the config could not hold are refused with
the field named."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
import structlog
import yaml
from test_queue_members import caller_to_sales

from callcenter.acd.agent import AgentState
from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.events import AgentAdded, AgentRemoved, EngineEvent
from callcenter.live.api import scope_of
from callcenter.testing import Transport, running_center

STEP = 5.0
ZOE = {"agent": "1010", "name": "Zoe", "device": "PJSIP/1010", "team": "seasonal"}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_zoe_added_for_the_season_takes_sales_callers_and_is_kept_across_a_restart(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        center.daemon.router.logout("1001", via="test")
        center.add_phone("PJSIP/1010", answer_after=0.05)
        added = await center.api("POST", "/roster", ZOE)
        joined = await center.api("POST", "/agents/1010/join", {"queue": "sales"})
        logged_in = await center.api("POST", "/agents/1010/login", {})
        caller = await caller_to_sales(center, "5553010")
        bridged = await caller.wait_bridged(timeout=STEP)
        await caller.hangup()
        await center.idle()
        row = await center.cdr(caller.uniqueid)
        _, shown = await center.api("GET", "/status")
        daemon = await center.restart()
        members_after_restart = daemon.router.rules("sales").members
        state_after_restart = daemon.router.agents["1010"].state
        _, roster = await center.api("GET", "/roster")
        while_logged_in = await center.api("POST", "/roster/1010/remove", {})
        await center.api("POST", "/agents/1010/logout", {})
        removed = await center.api("POST", "/roster/1010/remove", {})
        members_after_removal = center.daemon.router.rules("sales").members
        daemon = await center.restart()
        _, roster_after = await center.api("GET", "/roster")
        gone = await center.api("POST", "/agents/1010/login", {})
        members_in_the_end = daemon.router.rules("sales").members

    assert added[0] == 200, added
    assert added[1]["agent"] == "1010" and added[1]["device"] == "PJSIP/1010"
    assert added[1]["via"] == "api" and added[1]["in_config_file"] is False
    assert joined[0] == 200 and logged_in[0] == 200
    assert bridged == "PJSIP/1010", "the added agent takes the queue's caller"
    assert row["agent"] == "1010"
    assert "added " in format_status(shown) and "Zoe" in format_status(shown)
    assert members_after_restart == ("1001", "1010"), "their queue is kept too"
    assert state_after_restart is not AgentState.LOGGED_OUT, "their shift goes on"
    assert [view["agent"] for view in roster["agents"]] == ["1010"]
    assert roster["agents"][0]["team"] == "seasonal"
    assert while_logged_in[0] == 409 and "log them out first" in while_logged_in[1]["error"]
    assert removed == (200, {"agent": "1010", "removed": True})
    assert members_after_removal == ("1001",), "out of the queues they were given"
    assert roster_after == {"agents": []}
    assert gone[0] == 404, "nobody called 1010 after the restart"
    assert members_in_the_end == ("1001",)
    assert [type(e) for e in events if isinstance(e, AgentAdded | AgentRemoved)] == [AgentAdded]


async def test_a_report_names_the_added_agent_and_counts_them_in_their_team(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        center.daemon.router.logout("1001", via="test")
        center.add_phone("PJSIP/1010", answer_after=0.05)
        board = center.daemon.switchboard
        board.roster.add_agent("1010", {k: v for k, v in ZOE.items() if k != "agent"}, via="cli")
        board.roster.join_queue("1010", "sales", via="cli")
        center.daemon.router.login("1010", via="test")
        caller = await caller_to_sales(center, "5553011")
        await caller.wait_bridged(timeout=STEP)
        await caller.hangup()
        await center.idle()
        config_path = center.config_path
    capsys.readouterr()
    code = await asyncio.to_thread(
        cli_main, ["report", str(config_path), "--agents", "--team", "seasonal", "--json"]
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert code == 0
    assert [(row["agent"], row["name"], row["calls"]) for row in rows] == [("1010", "Zoe", 1)]


async def test_settings_the_config_could_not_hold_are_refused_with_the_field_named(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        no_id = await center.api("POST", "/roster", {"name": "Zoe", "device": "PJSIP/1010"})
        in_file = await center.api("POST", "/roster", {**ZOE, "agent": "1001"})
        bad_device = await center.api("POST", "/roster", {**ZOE, "device": "1010"})
        taken = await center.api("POST", "/roster", {**ZOE, "device": "PJSIP/1002"})
        supervisors = await center.api("POST", "/roster", {**ZOE, "device": "PJSIP/2000"})
        unknown_field = await center.api("POST", "/roster", {**ZOE, "colour": "red"})
        bad_id = await center.api("POST", "/roster", {**ZOE, "agent": "Zoe B"})
        hot_desk = await center.api("POST", "/roster", {**ZOE, "hot_desk": True})
        added = await center.api("POST", "/roster", ZOE)
        twice = await center.api("POST", "/roster", ZOE)
        moved = await center.api("POST", "/roster/1010", {"device": "PJSIP/1011", "team": None})
        bad_change = await center.api("POST", "/roster/1010", {"device": "PJSIP/1001"})
        week = {"schedule": {"hours": {"mon-fri": ["09:00-17:00"]}}}
        scheduled = await center.api("POST", "/roster/1010", week)
        bad_hours = await center.api("POST", "/roster/1010", {"schedule": {"hours": {"x": []}}})
        planned = center.daemon.config.agents["1010"].schedule
        change_file_agent = await center.api("POST", "/roster/1001", {"name": "Al"})
        remove_unknown = await center.api("POST", "/roster/9999/remove", {})
        wrong_method = await center.api("GET", "/roster/1010")
        device_now = center.daemon.config.agents["1010"].device
    assert no_id[0] == 400 and "say who" in no_id[1]["error"]
    assert in_file[0] == 409 and "config file" in in_file[1]["error"]
    assert bad_device[0] == 400 and bad_device[1]["error"].startswith("device: must look like")
    assert taken[0] == 400 and 'already agent "1002"' in taken[1]["error"]
    assert supervisors[0] == 400 and 'supervisor "2000"' in supervisors[1]["error"]
    assert unknown_field[0] == 400 and "colour:" in unknown_field[1]["error"]
    assert bad_id[0] == 400 and bad_id[1]["error"].startswith("id: must be a name")
    assert hot_desk[0] == 400 and "needs a pin" in hot_desk[1]["error"]
    assert added[0] == 200
    assert twice[0] == 409 and "added already" in twice[1]["error"]
    assert moved[0] == 200 and moved[1]["device"] == "PJSIP/1011" and "team" not in moved[1]
    assert device_now == "PJSIP/1011", "every part of the daemon reads the change"
    assert bad_change[0] == 400 and 'already agent "1001"' in bad_change[1]["error"]
    assert scheduled[0] == 200 and scheduled[1]["schedule"] == week["schedule"]
    assert planned is not None and planned.hours == {"mon-fri": ["09:00-17:00"]}
    assert bad_hours[0] == 400 and bad_hours[1]["error"].startswith("schedule.hours.x")
    assert change_file_agent[0] == 404 and remove_unknown[0] == 404
    assert wrong_method[0] == 405
    assert scope_of("POST", "/roster") == "admin", "a named token needs admin to add agents"


async def test_a_reload_keeps_the_added_agents_and_the_files_own_agent_of_that_id_wins(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path) as center:
        await center.api("POST", "/roster", ZOE)
        first = await center.api("POST", "/reload", {})
        kept = center.daemon.config.agents["1010"].device
        settings = yaml.safe_load(center.config_path.read_text())
        settings["agents"]["1098"] = {"name": "Yves", "device": "PJSIP/1010"}
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        with structlog.testing.capture_logs() as logs:
            await center.api("POST", "/reload", {})
        taken = [e for e in logs if e["event"] == "added_agent_device_taken"]
        del settings["agents"]["1098"]
        settings["agents"]["1010"] = {"name": "Zoe Filed", "device": "PJSIP/1099"}
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        second = await center.api("POST", "/reload", {})
        filed = center.daemon.config.agents["1010"]
        _, roster = await center.api("GET", "/roster")
        change = await center.api("POST", "/roster/1010", {"name": "Zoe Again"})
    assert first[0] == 200 and kept == "PJSIP/1010"
    assert [(e["agent"], e["owner"]) for e in taken] == [("1010", "1098")], "said at the reload"
    assert second[0] == 200
    assert (filed.name, filed.device) == ("Zoe Filed", "PJSIP/1099"), "the file's wins"
    assert roster["agents"][0]["in_config_file"] is True, "kept aside, not lost"
    assert change[0] == 404, "the file's agent is changed in the file"


async def test_the_command_line_adds_lists_changes_and_removes_through_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_center(tmp_path) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"

        def run(*argv: str) -> tuple[int, str]:
            capsys.readouterr()
            code = cli_main([*argv, "--api", api])
            return code, capsys.readouterr().out

        # The CLI blocks on its HTTP request: run it beside the daemon's loop.
        async def cli(*argv: str) -> tuple[int, str]:
            result: list[tuple[int, str]] = []
            thread = threading.Thread(target=lambda: result.append(run(*argv)))
            thread.start()
            await asyncio.to_thread(thread.join)
            return result[0]

        added = await cli(
            "agent", "add", "1010", "--name", "Zoe", "--device", "PJSIP/1010",
            "--skills", "fr=7", "--team", "seasonal",
        )  # fmt: skip
        skills = dict(center.daemon.router.agents["1010"].skills)
        listed = await cli("agent", "roster")
        changed = await cli("agent", "change", "1010", "--device", "PJSIP/1011")
        removed = await cli("agent", "remove", "1010")
        empty = await cli("agent", "roster")
        forgotten = "1010" not in center.daemon.router.agents
    assert added[0] == 0 and added[1].startswith("agent 1010: Zoe at PJSIP/1010, team seasonal")
    assert listed[1].startswith("1010: Zoe at PJSIP/1010, team seasonal, added ")
    assert changed[0] == 0 and "PJSIP/1011" in changed[1]
    assert removed == (0, "agent 1010 removed\n")
    assert empty[1] == "no agent added while the centre runs\n"
    assert skills == {"fr": 7}
    assert forgotten, "the router forgets them at once"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["agent", "add", "1010", "--name", "Zoe"], "agent add needs --name and --device"),
        (["agent", "add"], "agent add needs the agent's id"),
        (["agent", "change", "1010"], "agent change needs what changes"),
        (["agent", "remove", "1010", "--name", "Zoe"], "agent remove takes only the agent's id"),
        (["agent", "login", "1001", "--team", "x"], "--team is for agent add / change"),
        (["agent", "login"], "agent login needs the agent's id"),
    ],
)
def test_the_command_line_says_what_a_roster_change_lacks(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
