"""Busy lamps (BLF keys) on a supervisor's phone: each agent's lamp follows their state
(ready, ringing, on a call, on a break, logged out), each queue's lamp its callers (nobody,
callers waiting, one waiting beyond the service level). Both demo PBXs over real TCP:
Asterisk's custom device states, FreeSWITCH's presence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.testing import BASE_CONFIG, Center, merge, running_center, until

#: What each PBX shows for off, flashing, on, hold, unavailable.
SHOWN = {
    "fastagi": {
        "off": "NOT_INUSE",
        "flashing": "RINGING",
        "on": "INUSE",
        "hold": "ONHOLD",
        "unavailable": "UNAVAILABLE",
    },
    "esl-inbound": {
        "off": "terminated",
        "flashing": "early",
        "on": "confirmed",
        "hold": "confirmed",
        "unavailable": "terminated",
    },
}
NAMES = {
    "fastagi": {"agent": "callcenter-agent-${agent}", "queue": "callcenter-queue-${queue}"},
    "esl-inbound": {"agent": "agent-${agent}@pbx.test", "queue": "queue-${queue}@pbx.test"},
}


def lamps_of(center: Center, transport: str) -> dict[str, str]:
    return center.pbx.custom_states if transport == "fastagi" else center.pbx.presence  # type: ignore[no-any-return]


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_a_supervisors_lamps_follow_the_agents_and_the_queue(
    tmp_path: Path, transport: str
) -> None:
    names = NAMES[transport]
    agent = names["agent"].replace("${agent}", "1001")
    absent = names["agent"].replace("${agent}", "1003")
    queue = names["queue"].replace("${queue}", "sales")
    config = {
        "acd": {"blf": names},
        "queues": {"sales": {"service_level": 0.5, "ring_timeout": 5}},
    }
    shown = SHOWN[transport]
    async with running_center(tmp_path, transport=transport, config=config) as center:  # type: ignore[arg-type]
        lamps = lamps_of(center, transport)
        seen: list[tuple[str, str]] = []

        async def shows(name: str, state: str) -> None:
            await until(lambda: lamps.get(name) == shown[state], timeout=5)
            seen.append((name, state))

        await shows(agent, "off")
        await shows(absent, "unavailable")
        await shows(queue, "off")
        center.daemon.router.pause("1001", "break", via="test")
        await shows(agent, "hold")
        phone = center.add_phone("PJSIP/1001", answer_after=1.5)  # time to see it flash
        caller = await center.caller_presses("5550091", "1")
        await shows(queue, "on")
        await shows(queue, "flashing")  # past the 0.5 s service level
        center.daemon.router.unpause("1001", via="test")
        await shows(agent, "flashing")
        await caller.wait_bridged(timeout=5)
        await shows(agent, "on")
        await shows(queue, "off")
        lamps.clear()  # the PBX restarts and forgets
        await center.drop_pbx_connections()
        await shows(agent, "on")
        await caller.hangup()
        await phone.wait_idle(timeout=5)
        await shows(agent, "off")
    assert [state for name, state in seen if name == agent] == [
        "off", "hold", "flashing", "on", "on", "off"
    ]  # fmt: skip
    assert [state for name, state in seen if name == queue] == ["off", "on", "flashing", "off"]


async def test_lamps_a_reload_no_longer_names_go_unavailable_once(tmp_path: Path) -> None:
    config = {"acd": {"blf": NAMES["fastagi"]}}
    async with running_center(tmp_path, config=config) as center:
        states = center.pbx.custom_states
        await until(lambda: states.get("callcenter-agent-1001") == "NOT_INUSE", timeout=5)
        settings = yaml.safe_load(center.config_path.read_text())
        settings["acd"]["blf"] = {"agent": "blf-${agent}"}
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        await center.api("POST", "/reload", {})
        await until(lambda: states.get("blf-1001") == "NOT_INUSE", timeout=5)
        await until(lambda: states.get("callcenter-queue-sales") == "UNAVAILABLE", timeout=5)
        after = {k: v for k, v in states.items() if not k.startswith("blf-")}
        del settings["acd"]["blf"]
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        await center.api("POST", "/reload", {})
        await until(lambda: states.get("blf-1001") == "UNAVAILABLE", timeout=5)
        center.daemon.router.pause("1001", "break", via="test")
        await center.idle()
        unwatched = dict(states)
    assert set(after.values()) == {"UNAVAILABLE"}, after
    assert set(unwatched.values()) == {"UNAVAILABLE"}, "no lamp told once acd.blf is gone"


def _refused(settings: dict[str, Any]) -> Any:
    """The one issue ``check`` finds in ``settings``."""
    with pytest.raises(ConfigError) as refused:
        load_config_text(
            yaml.safe_dump(settings, sort_keys=False),
            filename="callcenter.yaml",
            environ={"CALLCENTER_AMI_SECRET": "x", "CALLCENTER_ESL_PASSWORD": "x"},
        )
    (issue,) = refused.value.issues
    return issue


def test_a_lamp_name_says_where_the_agent_goes() -> None:
    issue = _refused(merge(BASE_CONFIG, {"acd": {"blf": {"agent": "callcenter-agent"}}}))
    assert issue.field == "acd.blf.agent" and "${agent}" in issue.message


def test_a_freeswitch_lamp_name_is_a_presence_id() -> None:
    settings: dict[str, Any] = merge(
        BASE_CONFIG,
        {
            "pbx": {"type": "freeswitch", "esl": {"host": "127.0.0.1"}},
            "acd": {"blf": {"agent": "agent-${agent}@pbx.test", "queue": "queue-${queue}"}},
        },
    )
    settings["pbx"].pop("agi", None)
    settings["pbx"].pop("ami", None)
    issue = _refused(settings)
    assert issue.field == "acd.blf.queue" and "user@domain" in issue.message
