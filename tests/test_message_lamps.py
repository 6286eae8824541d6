"""The message lamp on the agents' phones: lit while a message of their queue's mailbox
waits for someone, out once every message is taken; the PBX told again after it comes back,
a phone subscribing later answered (FreeSWITCH's MESSAGE_QUERY), a PBX that cannot light
lamps said in the log with what to load. Both demo PBXs, over real TCP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs
from test_agent_desktop import _leave_a_message, _voicemail_config

from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.testing import BASE_CONFIG, merge, running_center, until

LAMP = "sales@callcenter"


def _lamp_config(tmp_path: Path) -> dict[str, Any]:
    return merge(_voicemail_config(tmp_path), {"queues": {"sales": {"message_lamp": LAMP}}})


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_the_lamp_is_lit_while_a_message_waits_for_an_agent(
    tmp_path: Path, transport: str
) -> None:
    """Two messages: the lamp says 2 new. Alice takes one (1 new, 1 old), deals with it
    (1 new), Bob takes and deals with the other: out. The PBX restarts meanwhile (its link
    drops): it is told the counts again."""
    async with running_center(
        tmp_path, transport=transport, config=_lamp_config(tmp_path)
    ) as center:  # type: ignore[arg-type]
        lamps = center.pbx.message_lamps
        seen: list[tuple[int, int]] = []
        first = await _leave_a_message(center, "5550081")
        await until(lambda: lamps.get(LAMP) == (1, 0), timeout=5)
        second = await _leave_a_message(center, "5550082")
        await until(lambda: lamps.get(LAMP) == (2, 0), timeout=5)
        seen.append(lamps[LAMP])
        await center.api("POST", f"/voicemails/{first}/take", {"agent": "1001"})
        await until(lambda: lamps.get(LAMP) == (1, 1), timeout=5)
        seen.append(lamps[LAMP])
        lamps.clear()  # the PBX restarts: it forgot
        if transport == "fastagi":
            await center.pbx.drop_ami_connections()
        else:
            await center.pbx.drop_esl_connections()
        await until(lambda: lamps.get(LAMP) == (1, 1), timeout=10)
        seen.append(lamps[LAMP])
        await center.api("POST", f"/voicemails/{first}/done", {"agent": "1001"})
        await until(lambda: lamps.get(LAMP) == (1, 0), timeout=5)
        await center.api("POST", f"/voicemails/{second}/take", {"agent": "1003"})
        await center.api("POST", f"/voicemails/{second}/done", {"agent": "1003"})
        await until(lambda: lamps.get(LAMP) == (0, 0), timeout=5)
        seen.append(lamps[LAMP])
    assert seen == [(2, 0), (1, 1), (1, 1), (0, 0)]


async def test_a_phone_registering_later_is_answered_with_the_lamps_counts(
    tmp_path: Path,
) -> None:
    """FreeSWITCH asks who keeps an account's messages (MESSAGE_QUERY) when a phone
    subscribes; the daemon answers for its lamps, and leaves other accounts alone."""
    config = _lamp_config(tmp_path)
    async with running_center(tmp_path, transport="esl-inbound", config=config) as center:
        pbx = center.pbx
        await _leave_a_message(center, "5550083")
        await until(lambda: pbx.message_lamps.get(LAMP) == (1, 0), timeout=5)
        pbx.message_lamps.clear()
        pbx.subscribe_message_lamp(LAMP)
        pbx.subscribe_message_lamp("1001@callcenter")
        await until(lambda: LAMP in pbx.message_lamps, timeout=5)
        answered = dict(pbx.message_lamps)
    assert answered == {LAMP: (1, 0)}, "an account that is no queue's lamp is not answered"


async def test_an_asterisk_without_the_mwi_module_is_said_in_the_log_and_calls_go_on(
    tmp_path: Path,
) -> None:
    async with running_center(tmp_path, config=_lamp_config(tmp_path)) as center:
        center.pbx.modules = center.pbx.modules - {"res_mwi_external_ami"}
        with capture_logs() as logs:
            left = await _leave_a_message(center, "5550084")
            await until(lambda: any(e["event"] == "message_lamp_refused" for e in logs))
        message = await center.daemon.voicemails.get(left)
    refused = next(e for e in logs if e["event"] == "message_lamp_refused")
    assert refused["mailbox"] == LAMP and refused["log_level"] == "error"
    assert "Invalid/unknown command: MWIUpdate" in refused["error"]
    assert "load res_mwi_external_ami" in refused["hint"]
    assert center.pbx.message_lamps == {}
    assert message.status == "waiting", "the message is kept all the same"


async def test_a_lamp_taken_out_of_the_config_is_put_out_at_the_reload(tmp_path: Path) -> None:
    config = _lamp_config(tmp_path)
    async with running_center(tmp_path, config=config) as center:
        lamps = center.pbx.message_lamps
        await _leave_a_message(center, "5550085")
        await until(lambda: lamps.get(LAMP) == (1, 0), timeout=5)
        settings = yaml.safe_load(center.config_path.read_text())
        del settings["queues"]["sales"]["message_lamp"]
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        await center.api("POST", "/reload", {})
        await until(lambda: lamps.get(LAMP) == (0, 0), timeout=5)
        await _leave_a_message(center, "5550086")
        await center.idle()
        after = dict(lamps)
    assert after == {LAMP: (0, 0)}, "no longer told once out"


@pytest.mark.parametrize(
    ("queue", "words"),
    [
        ({"message_lamp": LAMP}, "a message lamp shows the messages of the queue's mailbox"),
        ({"mailbox": "sales", "message_lamp": "sales"}, "must match pattern"),
    ],
)
def test_a_lamp_needs_a_mailbox_and_a_pbx_mailbox_name(queue: dict[str, str], words: str) -> None:
    text = yaml.safe_dump(merge(BASE_CONFIG, {"queues": {"sales": queue}}), sort_keys=False)
    with pytest.raises(ConfigError) as refused:
        load_config_text(text, filename="callcenter.yaml", environ={"CALLCENTER_AMI_SECRET": "x"})
    (issue,) = refused.value.issues
    assert issue.field == "queues.sales.message_lamp" and words in issue.message
    assert issue.line is not None
