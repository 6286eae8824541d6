"""Switches ops flip while the centre runs (a storm, an outage, an early close): the flows
test them for the callers who arrive next, on both PBXs; the API and the command line flip
them, `check` refuses a flow testing a switch nobody defined, and a restart keeps them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import _run_cli
from test_metrics import samples

from callcenter.cli import format_status
from callcenter.cli import main as cli_main
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.events import EngineEvent, SwitchFlipped
from callcenter.testing import (
    BASE_CONFIG,
    TRANSPORTS,
    Center,
    Transport,
    merge,
    running_center,
)

REPO = Path(__file__).resolve().parents[1]

STORM: dict[str, Any] = {
    "ivr": {"switches": {"storm": "Closed for the storm: callers hear why"}},
    "flows": {
        "main": {
            "start": "storm",
            "nodes": {
                "storm": {
                    "kind": "branch",
                    "cases": [{"switch": "storm", "goto": "closed"}],
                    "default": "welcome",
                },
                "closed": {"kind": "hangup", "prompt": "closed-storm"},
            },
        }
    },
}


async def first_prompt(center: Center, number: str) -> str:
    """What a caller dialling 800 hears first: the menu, or the storm message."""
    caller = await center.pbx.call("800", caller_num=number)
    async with asyncio.timeout(5):
        while not caller.heard:
            await asyncio.sleep(0.01)
    heard = str(caller.heard[0])
    await caller.hangup()
    await center.idle()
    return heard


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_storm_switch_ops_turn_on_sends_the_next_callers_to_the_storm_message(
    tmp_path: Path, transport: Transport
) -> None:
    async with running_center(tmp_path, transport=transport, config=STORM) as center:
        events: list[EngineEvent] = []
        center.daemon.bus.subscribe(events.append)
        before = await first_prompt(center, "5550401")
        flipped = await center.api("POST", "/switches/storm/on")
        again = await center.api("POST", "/switches/storm/on")
        during = await first_prompt(center, "5550402")
        _, status = await center.api("GET", "/status")
        figures = samples(center.daemon.api.render_metrics())
        daemon = await center.restart()
        after_restart = await first_prompt(center, "5550403")
        off = await center.api("POST", "/switches/storm/off")
        after_off = await first_prompt(center, "5550404")
        unknown = await center.api("POST", "/switches/flood/on")
        listed = (await center.api("GET", "/switches"))[1]["switches"]
        assert daemon.switchboard.switches == {"storm": False}
    assert (before, during, after_restart, after_off) == (
        "welcome-menu",
        "closed-storm",
        "closed-storm",
        "welcome-menu",
    ), "a restart keeps the switch on"
    assert flipped[0] == 200 and flipped[1]["changed"] is True and flipped[1]["switch"]["on"]
    assert again[1]["changed"] is False, "on already"
    assert off[0] == 200 and off[1]["switch"]["on"] is False
    assert unknown[0] == 404 and "storm" in unknown[1]["error"]
    assert [(v["name"], v["on"], v["via"]) for v in listed] == [("storm", False, "api")]
    assert "Switch storm: ON since" in format_status(status)
    assert figures["callcenter_switch", (("switch", "storm"),)] == 1
    assert [(e.name, e.on, e.via) for e in events if isinstance(e, SwitchFlipped)] == [
        ("storm", True, "api")
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_supervisor_flips_the_storm_switch_from_their_phone_with_star_28(
    tmp_path: Path, transport: Transport
) -> None:
    config = merge(
        STORM,
        {"ivr": {"switch_codes": {"1": "storm"}}, "supervisors": {"2000": {"pin": "2468"}}},
    )
    async with running_center(tmp_path, transport=transport, config=config) as center:
        heard = []
        for number, keys in (("2000", "2468"), ("2000", "2468"), ("2000", "1111")):
            phone = await center.pbx.call("*281", caller_num=number)
            await phone.wait_for_prompt("agent-pass", timeout=5)
            await phone.press(keys + "#")
            await phone.wait_ended(timeout=5)
            heard.append((phone.heard[-1], center.daemon.switchboard.switches.get("storm")))
            if len(heard) == 1:
                during = await first_prompt(center, "5550411")
        stranger = await center.pbx.call("*281", caller_num="5550000")
        await stranger.wait_ended(timeout=5)
        unknown = await center.pbx.call("*289", caller_num="2000")
        await unknown.wait_for_prompt("agent-pass", timeout=5)
        await unknown.press("2468#")
        await unknown.wait_ended(timeout=5)
        _, listed = await center.api("GET", "/switches")
        await center.idle()
    assert heard == [
        ("activated", True),
        ("de-activated", False),
        ("auth-incorrect", False),
    ], "on, off, and a wrong PIN changes nothing"
    assert during == "closed-storm"
    assert stranger.heard == ["invalid"], "only a supervisor's phone flips switches"
    assert unknown.heard[-1] == "beeperr", "a code the config does not have"
    assert listed["switches"][0]["via"] == "phone:2000"


def test_switch_codes_must_name_a_switch(tmp_path: Path) -> None:
    text = yaml.safe_dump(
        merge(BASE_CONFIG, merge(STORM, {"ivr": {"switch_codes": {"1": "flood"}}}))
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ={"CALLCENTER_AMI_SECRET": "x"})
    assert "switch_codes names flood, which ivr.switches does not list" in str(caught.value)


async def test_callcenter_switch_lists_and_flips_them(tmp_path: Path) -> None:
    async with running_center(tmp_path, config=STORM) as center:
        api = f"http://127.0.0.1:{center.daemon.api.port}"
        flipped = await _run_cli("switch", "on", "storm", "--api", api)
        listed = await _run_cli("switch", "list", "--api", api)
        missing = await _run_cli("switch", "off", "--api", api)
        on = center.daemon.switchboard.switches["storm"]
    assert flipped[0] == 0 and flipped[1].startswith("storm: ON since ")
    assert listed[0] == 0 and "(api): Closed for the storm: callers hear why" in listed[1]
    assert missing[0] == 2 and "needs the switch" in missing[2]
    assert on is True


def test_a_flow_testing_a_switch_nobody_defined_is_a_config_error() -> None:
    config = merge(BASE_CONFIG, STORM)
    config["ivr"]["switches"] = {"flood": "Flooded"}
    with pytest.raises(ConfigError) as refused:
        load_config_text(yaml.safe_dump(config, sort_keys=False))
    text = str(refused.value)
    assert "flows.main.nodes.storm.cases[0].switch" in text
    assert 'no switch named "storm"' in text


def test_simulate_runs_a_flow_with_a_switch_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "callcenter.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, STORM), sort_keys=False))
    capsys.readouterr()
    assert cli_main(["simulate", str(path), "--dialed", "800", "--switch", "storm"]) == 0
    stormy = capsys.readouterr().out
    assert cli_main(["simulate", str(path), "--dialed", "800", "--switch", "flood"]) == 1
    assert "no switch 'flood'" in capsys.readouterr().err
    assert "closed-storm" in stormy and "welcome-menu" not in stormy
