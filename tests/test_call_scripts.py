"""Call scripts (``scripts``): what agents say on a queue's or a campaign's calls, on their
desktop while the call rings and is talked on and with a preview's lead, the call's
variables filled in, and to a CRM through ``GET /agents/<id>/script``; over real TCP on
both demo PBXs, read as a browser reads the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_agent_desktop import DESK, until_page
from test_campaigns import campaign as campaign_config
from test_campaigns import scene
from test_config import BASE, SECRET_ENV, edit, line_no, problems

from callcenter.config import load_config_text
from callcenter.live.desktop import script_section
from callcenter.live.scripts import FilledScript
from callcenter.testing import DesktopBrowser, merge, running_center, until

WELCOME = (
    "Thank you for calling Acme sales, ${caller_name}. My name is ${agent_name}.\n"
    "How may I help?\n"
    "\n"
    "- Ask for the ticket number (${ticket})\n"
    "- Offer the spring deal to ${number}\n"
)
SCRIPTED: dict[str, Any] = merge(
    DESK,
    {
        "scripts": {"welcome": {"title": "Sales welcome", "text": WELCOME}},
        "queues": {"sales": {"script": "welcome"}},
    },
)


@pytest.mark.parametrize("transport", ["fastagi", "esl-inbound"])
async def test_alice_reads_the_sales_script_with_the_callers_name_while_his_call_rings(
    tmp_path: Path, transport: str
) -> None:
    """The sales queue's script is on Alice's page while Zoë's call rings and while they
    talk, her name and Alice's filled in; the ticket the IVR never asked shows as [ticket]
    and is listed as not known. A CRM reads the same through the API. Once the call is
    over, and on a support call (no script), there is none."""
    async with running_center(tmp_path, transport=transport, config=SCRIPTED) as center:  # type: ignore[arg-type]
        center.add_phone("PJSIP/1001", answer_after=0.3)
        router = center.daemon.router
        router.pause("1002", "lunch", via="test")  # support's calls go to Alice
        browser = DesktopBrowser(center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        caller = await center.caller_presses("+33612345678", "1", caller_name="Zoë Martin")
        await until(lambda: router.agents["1001"].state == "ringing")
        ringing = await browser.get()
        await caller.wait_bridged(timeout=5)
        talking = await browser.get()
        status, crm = await center.api("GET", "/agents/1001/script")
        await caller.hangup()
        await until(lambda: router.agents["1001"].state != "on_call")
        after = await browser.get()
        over = await center.api("GET", "/agents/1001/script")
        support = await center.caller_presses("5550009", "2")
        await support.wait_bridged(timeout=5)
        other = await browser.get()
        none = await center.api("GET", "/agents/1001/script")
        nobody = await center.api("GET", "/agents/1999/script")
        posted = await center.api("POST", "/agents/1001/script", {})
        await support.hangup()
        await center.idle()
    # The page's text, element after element: heading, lines, points, the note.
    said = (
        "Sales welcome"
        "Thank you for calling Acme sales, Zoë Martin. My name is Alice.How may I help?"
        "Ask for the ticket number ([ticket])Offer the spring deal to +33612345678"
        "Not known for this call: ticket"
    )
    assert ringing.texts["script"] == said
    assert ringing.texts["script-missing"] == "Not known for this call: ticket"
    assert talking.texts["script"] == said
    assert status == 200
    assert (crm["agent"], crm["script"], crm["title"], crm["missing"]) == (
        "1001",
        "welcome",
        "Sales welcome",
        ["ticket"],
    )
    assert crm["call_id"] and crm["text"].startswith("Thank you for calling Acme sales, Zoë")
    assert "- Offer the spring deal to +33612345678" in crm["text"]
    assert "script" not in after.texts, "the call is over"
    assert over[0] == 404 and "no call with a script now" in over[1]["error"]
    assert "script" not in other.texts, "support has no script"
    assert none[0] == 404
    assert nobody[0] == 404 and "unknown agent 1999" in nobody[1]["error"]
    assert posted[0] == 405


async def test_a_preview_lead_comes_with_the_campaigns_script_and_its_columns(
    tmp_path: Path,
) -> None:
    """The spring campaign's script wins over the sales queue's: Alice reads it with Ada's
    columns before she dials, and while they talk."""
    spring = {"scripts": {"spring": "Hello ${name}, about account ${account}: ${agent_name}."}}
    config = merge(
        merge(campaign_config(mode="preview", preview_seconds=30, script="spring"), SCRIPTED),
        spring,
    )
    leads = "number,id,name,account\n5551001,ada,Ada,A-17\n"
    async with scene(tmp_path, config, leads) as s:
        s.center.add_phone("PJSIP/1001", answer_after=0.05)
        ada = s.center.add_phone("PJSIP/5551001", answer_after=0.05)
        browser = DesktopBrowser(s.center.daemon.api.port)
        await browser.sign_in("1001", "1111")
        preview = await until_page(browser, lambda page: "preview" in page.texts)
        _, crm = await s.api("GET", "/agents/1001/script")
        await browser.press("Dial this lead")
        await ada.wait_answered(timeout=5)
        talking = await until_page(browser, lambda page: page.rows.get("account") == "A-17")
        await ada.hangup()
        await s.center.idle(timeout=10)
    assert preview.texts["script"] == "springHello Ada, about account A-17: Alice."
    assert (crm["script"], crm["call_id"], crm["missing"]) == ("spring", "", [])
    assert talking.texts["script"] == "springHello Ada, about account A-17: Alice."


def test_a_script_is_shown_as_paragraphs_and_points_and_never_as_markup() -> None:
    script = FilledScript(
        "offer",
        "The <offer>",
        "Say hello & smile.\nThen wait.\n\n\n- first <b>\n- second\n\nBye.",
        ("ticket",),
    )
    assert script_section(script) == (
        '<section id="script"><h2>The &lt;offer&gt;</h2>'
        "<p>Say hello &amp; smile.<br>Then wait.</p>"
        "<ul><li>first &lt;b&gt;</li><li>second</li></ul>"
        "<p>Bye.</p>"
        '<p><small id="script-missing">Not known for this call: ticket</small></p></section>'
    )


def test_a_script_a_queue_names_must_be_there_and_read_as_a_template() -> None:
    text = BASE + 'scripts:\n  welcome: "Hello ${caller_name"\n  offer: Buy now\n'
    text = edit("    ring_timeout: 15\n", "    ring_timeout: 15\n    script: welcom\n", text)
    assert [(i.line, i.field, i.message) for i in problems(text)] == [
        (
            line_no(text, "script: welcom"),
            "queues.sales.script",
            'no script named "welcom"; did you mean welcome?',
        ),
        (line_no(text, "Hello"), "scripts.welcome.text", 'a "${" is not closed by "}"'),
    ]
    fixed = text.replace("${caller_name", "${caller_name}")
    assert len(problems(fixed)) == 1, "the name alone is wrong now"
    config = load_config_text(fixed.replace("welcom\n", "welcome\n"), environ=SECRET_ENV)
    assert config.scripts["offer"].text == "Buy now" and config.scripts["offer"].title is None
    assert config.queues["sales"].script == "welcome"
