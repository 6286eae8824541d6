"""Profiles: a role on the floor given to an agent in one go (``profiles.<name>``: its
queues and no other, at its penalties, and its skills), by the CLI, the API and the
supervisor's agent page; each change kept across a restart as the queue and skill changes
it made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import format_status
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.testing import BASE_CONFIG, DesktopBrowser, merge, run_cli, running_center

ROLES: dict[str, Any] = {
    "acd": {"skills": ["fr", "billing"]},
    "profiles": {
        "sales-only": {"queues": ["sales"], "skills": {"fr": 8}},
        "support-backup": {"queues": ["support"], "penalties": {"support": 2}},
    },
    "supervisors": {"2000": {"pin": "2468"}},
}


async def test_bob_moves_to_sales_by_a_profile_and_back_to_support_from_sams_page(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=ROLES) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        router = center.daemon.router
        before = router.agent_view("1002")["queues"]
        code, out, _ = await run_cli(center, "agent", "profile", "1002", "--profile", "sales-only")
        as_sales = router.agent_view("1002")
        await center.restart()
        after_restart = center.daemon.router.agent_view("1002")
        missing = await center.api("POST", "/agents/1002/profile", {"profile": "night"})
        bare = await center.api("POST", "/agents/1002/profile", {})
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        await sam.get("/desktop/agent?id=1002")
        moved = await sam.press("Give this profile", profile="support-backup")
        back = center.daemon.router
        support = back.rules("support")
    assert before == ["support"]
    assert code == 0, out
    assert as_sales["queues"] == ["sales"]
    assert dict(as_sales["skills"]) == {"fr": 8}
    assert after_restart["queues"] == ["sales"], "kept across a restart"
    assert missing[0] == 409 and "no profile 'night'" in missing[1]["error"]
    assert bare[0] == 400
    assert moved.texts["said"] == "Agent 1002 works as support-backup now"
    assert back.agent_view("1002")["queues"] == ["support"]
    assert support.penalties.get("1002") == 2, "at the profile's penalty"
    assert dict(back.agent_view("1002")["skills"]) == {"fr": 8}, "a profile without skills"


@pytest.mark.parametrize(
    ("profile", "field", "said"),
    [
        ({"queues": ["saels"]}, "profiles.p.queues[0]", 'no queue named "saels"'),
        (
            {"queues": ["sales"], "penalties": {"support": 1}},
            "profiles.p.penalties.support",
            "not one of the profile's queues",
        ),
        ({"queues": ["sales"], "skills": {"de": 5}}, "profiles.p.skills.de", 'no skill named "de"'),
    ],
)
def test_a_profile_names_only_what_the_config_has(
    profile: dict[str, Any], field: str, said: str
) -> None:
    text = yaml.safe_dump(
        merge(BASE_CONFIG, {"acd": {"skills": ["fr", "billing"]}, "profiles": {"p": profile}})
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ={"CALLCENTER_AMI_SECRET": "x"})
    (issue,) = caught.value.issues
    assert issue.field == field and said in issue.message


async def test_who_works_as_which_profile_is_seen_after_a_restart_and_a_change_by_hand(
    tmp_path: Path,
) -> None:
    """Bob given sales-only works as it after a restart (status, Sam's page); joining
    support by hand makes him work as no profile; leaving it again, as sales-only."""
    async with running_center(tmp_path, config=ROLES) as center:
        await center.api("POST", "/agents/1002/profile", {"profile": "sales-only"})
        await center.restart()
        _, status = await center.api("GET", "/status")
        bob = next(a for a in status["agents"] if a["id"] == "1002")
        sam = DesktopBrowser(center.daemon.api.port)
        await sam.sign_in("2000", "2468", role="supervisor")
        page = await sam.get("/desktop/agent?id=1002")
        await center.api("POST", "/agents/1002/join", {"queue": "support"})
        mixed = center.daemon.switchboard.roster.profile_of("1002")
        mixed_page = await sam.get("/desktop/agent?id=1002")
        await center.api("POST", "/agents/1002/leave", {"queue": "support"})
        again = center.daemon.switchboard.roster.profile_of("1002")
        alice = center.daemon.switchboard.roster.profile_of("1001")
    assert bob["profile"] == "sales-only"
    assert "works as sales-only" in format_status(status)
    assert page.texts["works-as"] == "Works as sales-only now."
    assert page.form("Give this profile").fields["profile"] == "sales-only"
    assert mixed is None
    assert mixed_page.texts["works-as"].startswith("Works as no profile now")
    assert again == "sales-only", "worked out from what he is, not from a label kept"
    assert alice is None, "support at the config's penalty, not support-backup's 2"
