"""A team's break limit (``teams.<t>.max_paused``): no more of its agents on a break at
once than the floor can spare. One more asking, from the desktop, the API or ``*73``, is
told how many are away; their supervisor may still pause them, and the limit frees as soon
as one is back. On both PBXs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callcenter.testing import DesktopBrowser, running_center, until

NIGHT: dict[str, Any] = {
    "teams": {"night": {"max_paused": 1}},
    "agents": {
        "1002": {"team": "night", "pin": "2222"},
        "1003": {"team": "night", "pin": "4321", "logged_in": True},
    },
    "supervisors": {"2000": {"pin": "2468", "teams": ["night"]}},
}


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_carol_waits_for_bobs_break_to_end_before_she_takes_hers(
    tmp_path: Path, transport: str
) -> None:
    async with running_center(tmp_path, transport=transport, config=NIGHT) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1003", answer_after=0.05)
        router = center.daemon.router
        bob = await center.api("POST", "/agents/1002/pause", {"reason": "lunch"})
        carol_api = await center.api("POST", "/agents/1003/pause", {"reason": "break"})
        carol = DesktopBrowser(center.daemon.api.port)
        await carol.sign_in("1003", "4321")
        carol_page = await carol.press("Pause: break")
        keyed = await center.pbx.call("*73", caller_num="1003")
        await keyed.wait_for_prompt("agent-pass", timeout=5)
        await keyed.press("4321")
        await keyed.wait_ended(timeout=5)
        keyed_state = router.agents["1003"].state
        alice_free = router.agents["1001"].state
        sam = DesktopBrowser(center.daemon.api.port)
        sams = await sam.sign_in("2000", "2468", role="supervisor")
        await sam.get("/desktop/agent?id=1003")
        by_sam = await sam.press("Pause: meeting")
        sam_paused = router.agents["1003"].state
        await center.api("POST", "/agents/1003/unpause", {})
        await center.api("POST", "/agents/1002/unpause", {})
        await until(lambda: router.agents["1002"].state == "available")
        carol_again = await center.api("POST", "/agents/1003/pause", {"reason": "break"})
    assert bob[0] == 200
    assert sams.texts["breaks"] == "On a break: team night: 1 of 1 at most", "Sam sees it"
    assert carol_api[0] == 409
    assert carol_api[1]["error"] == (
        "1 of team night are on a break (at most 1 at once): ask again when one is back"
    )
    assert carol_page.texts["error"].startswith("1 of team night are on a break")
    assert carol_page.texts["team-breaks"] == "Your team on a break: 1 of 1 at most"
    assert keyed_state == "available", "*73 was refused too"
    assert alice_free == "available", "Alice is of no team: no limit"
    assert by_sam.texts.get("error", "") == ""
    assert sam_paused == "paused", "her supervisor may pause her all the same"
    assert carol_again[0] == 200, "Bob is back: her turn"
