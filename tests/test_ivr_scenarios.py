"""IVR flows end to end: callers on the demo PBX (real AMI + FastAGI over TCP) walking every
node kind, and the CDR a manager reads afterwards."""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from callcenter.errors import ConfigError
from callcenter.events import EngineEvent, QueueJoined
from callcenter.live.api import HTTPError
from callcenter.testing import TRANSPORTS, Center, Transport, running_center

ROUTES = {"800": {"flow": "ivr"}, "default": {"flow": "ivr"}}


_transport: list[Transport] = ["fastagi"]


@pytest.fixture(autouse=True, params=TRANSPORTS)
def on_every_transport(request: pytest.FixtureRequest) -> None:
    """Every scenario here runs on both PBXs: Asterisk (FastAGI, AsyncAGI), FreeSWITCH."""
    _transport[0] = request.param


@asynccontextmanager
async def ivr_center(tmp_path: Path, flows: Mapping[str, Any], **ivr: Any) -> AsyncIterator[Center]:
    config = {"routes": ROUTES, "flows": flows, "ivr": {"voicemail_folder": "vm", **ivr}}
    async with running_center(
        tmp_path, transport=_transport[0], config=config, prompt_seconds=0.03
    ) as center:
        yield center


def one_flow(start: str, nodes: Mapping[str, Any]) -> dict[str, Any]:
    return {"ivr": {"start": start, "nodes": nodes}}


def events_of(center: Center, kind: type[EngineEvent]) -> list[Any]:
    seen: list[Any] = []
    center.daemon.bus.subscribe(lambda e: seen.append(e) if isinstance(e, kind) else None)
    return seen


Handler = Callable[[str, bytes], tuple[int, bytes, float]]


@asynccontextmanager
async def http_server(handler: Handler) -> AsyncIterator[str]:
    """A local HTTP server: ``handler(path, body)`` gives (status, body, delay)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            length = 0
            for line in head.decode().split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":")[1])
            body = await reader.readexactly(length) if length else b""
            status, answer, delay = handler(path, body)
            await asyncio.sleep(delay)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


# --------------------------------------------------------------------------- play, menu


MENU = {
    "hello": {
        "kind": "play",
        "prompts": ["hello", {"say": "number", "value": "42"}],
        "barge_in": True,
        "next": "menu",
    },
    "menu": {
        "kind": "menu",
        "prompt": "menu",
        "choices": {"1": "sales", "2": "support", "0": "operator"},
        "timeout": 0.3,
        "timeout_retries": 2,
        "invalid_retries": 2,
        "timeout_prompt": "say-again",
        "invalid_prompt": "no-such-option",
        "on_invalid": "operator",
        "default": "bye",
    },
    "sales": {"kind": "queue", "queue": "sales"},
    "support": {"kind": "queue", "queue": "support"},
    "operator": {"kind": "transfer", "to": "2100", "fallback": "bye"},
    "bye": {"kind": "hangup", "prompt": "goodbye"},
}


async def test_a_key_pressed_during_the_welcome_answers_the_menu_at_once(tmp_path: Path) -> None:
    async with ivr_center(tmp_path, one_flow("hello", MENU), transfer_allow=["2100"]) as center:
        center.pbx.prompt_durations["hello"] = 1.0
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("hello", timeout=5)
        await caller.press("2")
        await caller.wait_bridged(timeout=5)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)

    assert "menu" not in caller.heard, "the menu prompt is skipped: the caller already chose"
    assert "digits/42" not in caller.heard, "the rest of the welcome is cut short"
    assert row["ivr_path"] == "ivr:hello>ivr:menu>2>ivr:support"
    assert row["queue"] == "support"


async def test_silence_then_wrong_keys_get_their_own_prompts_then_the_default_runs(
    tmp_path: Path,
) -> None:
    menu_only = {k: v for k, v in MENU.items() if k != "hello"}
    async with ivr_center(tmp_path, one_flow("menu", menu_only), transfer_allow=["2100"]) as center:
        silent = await center.pbx.call("800", caller_num="5550001")
        await silent.wait_ended(timeout=5)
        wrong = await center.pbx.call("800", caller_num="5550002")
        await wrong.wait_for_prompt("menu", timeout=5)
        await wrong.press("7")
        await wrong.wait_for_prompt("no-such-option", timeout=5)
        await asyncio.sleep(0.05)
        await wrong.press("8")
        await wrong.wait_ended(timeout=5)
        silent_row = await center.cdr(silent.uniqueid)
        wrong_row = await center.cdr(wrong.uniqueid)

    assert silent.heard == ["menu", "say-again", "menu", "goodbye"]
    assert silent_row["ivr_path"] == "ivr:menu>ivr:bye"
    assert silent_row["hung_up_by"] == "system"
    assert wrong.heard.count("no-such-option") == 1
    assert "say-again" not in wrong.heard
    assert wrong_row["ivr_path"] == "ivr:menu>ivr:operator"
    assert wrong_row["transfer_path"] == "ivr>2100", "2 wrong keys: on_invalid, the operator"


# --------------------------------------------------------------------------- collect


COLLECT = {
    "account": {
        "kind": "collect",
        "prompt": "enter-account",
        "variable": "account",
        "min_digits": 4,
        "max_digits": 6,
        "timeout": 1,
        "confirm": {"say": "digits", "timeout": 1},
        "next": "pin",
        "default": "bye",
    },
    "pin": {
        "kind": "collect",
        "prompt": "enter-pin",
        "variable": "pin",
        "min_digits": 4,
        "max_digits": 4,
        "private": True,
        "timeout": 1,
        "next": "bye",
        "default": "bye",
    },
    "bye": {"kind": "hangup", "prompt": "goodbye"},
}


async def test_collect_reads_the_digits_back_and_the_cdr_keeps_them_but_not_the_pin(
    tmp_path: Path,
) -> None:
    async with ivr_center(tmp_path, one_flow("account", COLLECT)) as center:
        caller = await center.pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("enter-account", timeout=5)
        await caller.press("9876#")
        await caller.wait_for_prompt("if-correct-press-1-otherwise-2", timeout=5)
        await caller.press("1")
        await caller.wait_for_prompt("enter-pin", timeout=5)
        await caller.press("4321")
        await caller.wait_ended(timeout=5)
        row = await center.cdr(caller.uniqueid)

    said = caller.heard[caller.heard.index("you-entered") + 1 :][:4]
    assert said == ["digits/9", "digits/8", "digits/7", "digits/6"]
    assert json.loads(row["ivr_variables"]) == {"account": "9876", "pin": "***"}
    assert row["ivr_path"] == "ivr:account>9876>ivr:pin>***>ivr:bye"
    assert "4321" not in json.dumps(row)


async def test_collect_ends_the_input_when_the_inter_digit_timeout_passes(
    tmp_path: Path,
) -> None:
    nodes = {
        "code": {
            "kind": "collect",
            "prompt": "enter-code",
            "variable": "code",
            "min_digits": 2,
            "max_digits": 8,
            "timeout": 2,
            "inter_digit_timeout": 0.3,
            "next": "bye",
            "default": "bye",
        },
        "bye": {"kind": "hangup", "prompt": "goodbye"},
    }
    async with ivr_center(tmp_path, one_flow("code", nodes)) as center:
        caller = await center.pbx.call("800")
        await caller.wait_for_prompt("enter-code", timeout=5)
        await asyncio.sleep(0.1)
        await caller.press("4")
        await asyncio.sleep(0.1)
        await caller.press("2")
        await caller.wait_ended(timeout=5)
        row = await center.cdr(caller.uniqueid)
    assert json.loads(row["ivr_variables"]) == {"code": "42"}


async def test_a_caller_is_told_how_many_callers_are_ahead_before_joining(
    tmp_path: Path,
) -> None:
    """A queue_figures node, then a play node saying ``${sales_waiting}``: the first caller
    hears "0 ahead", the second "1 ahead" (the first still waits: nobody staffs sales)."""
    nodes = {
        "look": {"kind": "queue_figures", "queue": "sales", "into": "sales", "next": "say"},
        "say": {
            "kind": "play",
            "prompts": ["callers-ahead", {"say": "number", "value": "${sales_waiting}"}],
            "next": "wait",
        },
        "wait": {"kind": "queue", "queue": "sales"},
    }
    async with ivr_center(tmp_path, one_flow("look", nodes)) as center:
        center.daemon.router.logout("1001", via="test")
        first = await center.pbx.call("800", caller_num="5550001")
        await first.wait_moh(timeout=5)
        second = await center.pbx.call("800", caller_num="5550002")
        await second.wait_moh(timeout=5)
        for caller in (first, second):
            await caller.hangup()
        await center.idle()
        rows = [await center.cdr(c.uniqueid) for c in (first, second)]
    assert first.heard[:2] == ["callers-ahead", "digits/0"]
    assert second.heard[:2] == ["callers-ahead", "digits/1"]
    assert json.loads(rows[1]["ivr_variables"])["sales_waiting"] == "1"


async def test_play_says_numbers_dates_and_times(tmp_path: Path) -> None:
    nodes = {
        "say": {
            "kind": "play",
            "prompts": [
                {"say": "number", "value": "1234"},
                {"say": "date", "value": "2026-12-25"},
                {"say": "time", "value": "14:05"},
                {"say": "digits", "value": "${caller_num}"},
            ],
            "next": "bye",
        },
        "bye": {"kind": "hangup"},
    }
    async with ivr_center(tmp_path, one_flow("say", nodes)) as center:
        caller = await center.pbx.call("800", caller_num="907")
        await caller.wait_ended(timeout=5)
    assert caller.heard == [
        *("digits/1", "digits/thousand", "digits/2", "digits/hundred", "digits/30", "digits/4"),
        *("digits/day-5", "digits/mon-11", "digits/h-25"),
        *("digits/2", "digits/thousand", "digits/20", "digits/6"),
        *("digits/2", "digits/oh", "digits/5", "digits/p-m"),
        *("digits/9", "digits/0", "digits/7"),
    ]


# --------------------------------------------------------------------------- time


SCHEDULE = {
    "hours": {
        "kind": "schedule",
        "timezone": "Europe/Berlin",
        "hours": {"mon-fri": ["08:00-18:00"]},
        "holidays": {"country": "DE", "subdivision": "BE"},
        "open": "open",
        "closed": "closed",
        "holiday": "holiday",
    },
    "open": {"kind": "hangup", "prompt": "we-are-open"},
    "closed": {"kind": "hangup", "prompt": "we-are-closed"},
    "holiday": {"kind": "hangup", "prompt": "happy-holidays"},
}


@pytest.mark.parametrize(
    ("now", "prompt"),
    [
        (datetime(2026, 12, 25, 9, 30, tzinfo=UTC), "happy-holidays"),  # Christmas, Berlin
        (datetime(2026, 12, 28, 7, 30, tzinfo=UTC), "we-are-open"),  # Monday 08:30 in Berlin
        (datetime(2026, 12, 28, 17, 30, tzinfo=UTC), "we-are-closed"),  # 18:30 in Berlin
    ],
)
async def test_schedule_sends_the_caller_by_the_hours_and_holidays_of_its_time_zone(
    tmp_path: Path, now: datetime, prompt: str
) -> None:
    async with ivr_center(tmp_path, one_flow("hours", SCHEDULE)) as center:
        center.daemon.switchboard.clock = lambda: now
        caller = await center.pbx.call("800")
        await caller.wait_ended(timeout=5)
        row = await center.cdr(caller.uniqueid)
    assert caller.heard == [prompt]
    assert row["ivr_path"].startswith("ivr:hours>")


# --------------------------------------------------------------------------- data


def lookup_flow(url: str) -> dict[str, Any]:
    return one_flow(
        "lang",
        {
            "lang": {"kind": "language", "language": "fr", "next": "crm"},
            "crm": {
                "kind": "lookup",
                "url": f"{url}/caller?number=${{caller_num}}",
                "timeout": 0.5,
                "fields": {"customer": "customer.name", "vip": "vip", "level": "level"},
                "next": "route",
                "fallback": "sorry",
            },
            "route": {
                "kind": "branch",
                "cases": [{"variable": "vip", "equals": "1", "goto": "vip"}],
                "default": "plain",
            },
            "vip": {
                "kind": "queue",
                "queue": "support",
                "priority_from": "level",
                "skills": ["${language}", "vip"],
            },
            "plain": {"kind": "queue", "queue": "sales"},
            "sorry": {
                "kind": "set",
                "variables": {"customer": "unknown"},
                "next": "plain",
            },
        },
    )


async def test_lookup_answer_routes_a_vip_with_priority_and_skills_for_the_screen_pop(
    tmp_path: Path,
) -> None:
    asked: list[str] = []

    def crm(path: str, body: bytes) -> tuple[int, bytes, float]:
        asked.append(path)
        return 200, json.dumps({"customer": {"name": "Ada"}, "vip": True, "level": 7}).encode(), 0

    async with (
        http_server(crm) as url,
        ivr_center(tmp_path, lookup_flow(url)) as center,
    ):
        joined = events_of(center, QueueJoined)
        caller = await center.pbx.call("800", caller_num="+4930123")
        await caller.wait_moh(timeout=5)
        active = next(iter(center.daemon.switchboard.active.values()))
        screen_pop = dict(active.variables)
        skills = active.skills
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)

    assert asked == ["/caller?number=%2B4930123"]
    assert screen_pop["customer"] == "Ada"
    assert skills == ("fr", "vip")
    assert joined[0].queue == "support" and joined[0].priority == 7
    assert json.loads(row["ivr_variables"])["vip"] == "1"
    assert row["ivr_path"] == "ivr:lang>ivr:crm>ivr:route>ivr:vip"


@pytest.mark.parametrize(("status", "delay"), [(200, 2.0), (500, 0.0)])
async def test_lookup_that_times_out_or_fails_takes_the_fallback_branch(
    tmp_path: Path, status: int, delay: float
) -> None:
    async with (
        http_server(lambda path, body: (status, b'{"vip": true}', delay)) as url,
        ivr_center(tmp_path, lookup_flow(url)) as center,
    ):
        caller = await center.pbx.call("800")
        await caller.wait_moh(timeout=5)
        await caller.hangup()
        row = await center.cdr(caller.uniqueid)
    assert row["ivr_path"] == "ivr:lang>ivr:crm>ivr:sorry>ivr:plain"
    assert row["queue"] == "sales"
    assert json.loads(row["ivr_variables"]) == {"language": "fr", "customer": "unknown"}


async def test_a_prompt_due_while_the_pbx_link_is_down_plays_once_it_is_back(
    tmp_path: Path,
) -> None:
    """The link drops while the flow waits for the CRM; the next prompt cannot be sent
    where the link carries the call's control (AsyncAGI, FreeSWITCH park): the caller waits
    for the link (the PBX keeps the call meanwhile) and then hears it. The walk goes on:
    one record, not a take-back from the top."""
    transport = _transport[0]
    flows = {
        "ivr": {
            "start": "crm",
            "nodes": {
                "crm": {
                    "kind": "lookup",
                    "url": "",
                    "timeout": 3,
                    "fields": {"vip": "vip"},
                    "next": "bye",
                    "fallback": "bye",
                },
                "bye": {"kind": "hangup", "prompt": "goodbye"},
            },
        }
    }
    slow = {"reconnect_min": 1.5, "reconnect_max": 1.5}
    async with http_server(lambda path, body: (200, b'{"vip": true}', 0.6)) as url:
        flows["ivr"]["nodes"]["crm"]["url"] = f"{url}/caller"
        config = {
            "routes": ROUTES,
            "flows": flows,
            "ivr": {"voicemail_folder": "vm"},
            "pbx": {"ami": slow, "esl": slow},
        }
        async with running_center(
            tmp_path, transport=transport, config=config, prompt_seconds=0.03
        ) as center:
            caller = await center.pbx.call("800")
            async with asyncio.timeout(5):
                while not center.daemon.switchboard.active:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            with capture_logs() as logs:
                await center.drop_pbx_connections()
                await caller.wait_ended(timeout=8)
            row = await center.cdr(caller.uniqueid)
    events = [e["event"] for e in logs]
    assert caller.heard == ["goodbye"]
    assert row["ivr_path"] == "ivr:crm>ivr:bye" and row["hung_up_by"] != "link_lost"
    assert "call_failed" not in events
    if transport in ("asyncagi", "esl-inbound"):
        assert "call_outlasts_outage" in events, "it waited for the link"


async def test_language_node_switches_the_prompts_for_the_rest_of_the_call(
    tmp_path: Path,
) -> None:
    flows = one_flow(
        "hi",
        {
            "hi": {"kind": "play", "prompts": ["hello"], "next": "fr"},
            "fr": {"kind": "language", "language": "fr", "next": "bye"},
            "bye": {"kind": "hangup", "prompt": "goodbye"},
        },
    )
    async with ivr_center(tmp_path, flows) as center:
        caller = await center.pbx.call("800")
        await caller.wait_ended(timeout=5)
    assert caller.heard_in == [("en", "hello"), ("fr", "goodbye")]


# --------------------------------------------------------------------------- leaving


TRANSFER = {
    "who": {"kind": "set", "variables": {"dest": "${caller_num}"}, "next": "xfer"},
    "xfer": {"kind": "transfer", "to": "${dest}", "fallback": "nope"},
    "nope": {"kind": "hangup", "prompt": "cannot-transfer"},
}


async def test_transfer_goes_only_to_allowed_numbers_even_from_variables(tmp_path: Path) -> None:
    async with ivr_center(
        tmp_path, one_flow("who", TRANSFER), transfer_allow=["2100"], transfer_context="xfer"
    ) as center:
        desk = center.add_phone("PJSIP/2100", answer_after=0.05)
        other = center.add_phone("PJSIP/6666", answer_after=0.05)
        refused = await center.pbx.call("800", caller_num="6666")
        await refused.wait_ended(timeout=5)
        allowed = await center.pbx.call("800", caller_num="2100")
        assert await allowed.wait_bridged(timeout=5) == "PJSIP/2100"
        await allowed.hangup()
        refused_row = await center.cdr(refused.uniqueid)
        allowed_row = await center.cdr(allowed.uniqueid)

    assert other.rings == 0, "a number off the allow-list never rings"
    assert refused.heard == ["cannot-transfer"]
    assert refused_row["transfer_path"] == ""
    assert desk.rings == 1
    assert allowed_row["transfer_path"] == "ivr>2100"
    assert allowed_row["ivr_path"] == "ivr:who>ivr:xfer"


VOICEMAIL = {
    "vm": {
        "kind": "voicemail",
        "box": "sales",
        "prompt": "leave-a-message",
        "max_seconds": 10,
        "silence_seconds": 1,
        "next": "thanks",
    },
    "thanks": {"kind": "hangup", "prompt": "thanks"},
}


async def test_voicemail_is_recorded_into_the_box_and_listed_in_the_cdr(tmp_path: Path) -> None:
    async with ivr_center(tmp_path, one_flow("vm", VOICEMAIL)) as center:
        caller = await center.pbx.call("800", caller_num="5551234")
        await caller.wait_for_prompt("beep", timeout=5)
        await caller.wait_recording(timeout=5)
        # 0.7 s: the recording starts a PBX round trip after the beep, later on a busy machine.
        caller.speak(0.7)
        await asyncio.sleep(0.7)
        await caller.press("#")
        await caller.wait_ended(timeout=5)
        hangs_up = await center.pbx.call("800", caller_num="5550000")
        await hangs_up.wait_for_prompt("beep", timeout=5)
        await hangs_up.wait_recording(timeout=5)
        hangs_up.speak(1.0)
        await asyncio.sleep(0.2)
        await hangs_up.hangup()
        row = await center.cdr(caller.uniqueid)
        gone_row = await center.cdr(hangs_up.uniqueid)

    assert caller.heard == ["leave-a-message", "beep", "thanks"]
    path = Path(row["voicemail"])
    assert path.parent == tmp_path / "vm" / "sales"
    assert path.name.endswith(f"-{caller.uniqueid}.wav")
    with wave.open(str(path)) as recording:
        assert 0.2 < recording.getnframes() / recording.getframerate() < 2.0
    kept = await asyncio.to_thread(Path(gone_row["voicemail"]).is_file)
    assert kept, "hanging up ends the message, it is kept"
    assert gone_row["hung_up_by"] == "caller"


async def test_callback_request_is_stored_for_the_outbound_side(tmp_path: Path) -> None:
    flows = one_flow(
        "offer",
        {
            "offer": {
                "kind": "callback",
                "queue": "sales",
                "timeout": 1,
                "next": "bye",
                "default": "bye",
            },
            "bye": {"kind": "hangup", "prompt": "goodbye"},
        },
    )
    async with ivr_center(tmp_path, flows) as center:
        first = await center.pbx.call("800", caller_num="5551234")
        await first.wait_for_prompt("press-1-to-confirm-2-for-another-number", timeout=5)
        await first.press("1")
        await first.wait_ended(timeout=5)
        second = await center.pbx.call("800", caller_num="5550002")
        await second.wait_for_prompt("press-1-to-confirm-2-for-another-number", timeout=5)
        await second.press("2")
        await second.wait_for_prompt("enter-callback-number", timeout=5)
        await second.press("0301234567#")
        await second.wait_for_prompt("press-1-to-confirm-2-for-another-number", timeout=5)
        await asyncio.sleep(0.05)
        await second.press("1")
        await second.wait_ended(timeout=5)
        await center.cdr(second.uniqueid)
        callbacks = await asyncio.to_thread(center.daemon.store.fetch_callbacks)

    assert [(c["call_id"], c["number"], c["queue"], c["status"]) for c in callbacks] == [
        (first.uniqueid, "5551234", "sales", "pending"),
        (second.uniqueid, "0301234567", "sales", "pending"),
    ]
    assert "digits/5" in first.heard, "the number is read back before the caller confirms"


async def test_subflow_returns_goto_jumps_and_the_cdr_shows_the_whole_path(
    tmp_path: Path,
) -> None:
    flows = {
        "ivr": {
            "start": "ask",
            "nodes": {
                "ask": {"kind": "subflow", "flow": "greet", "next": "out"},
                "out": {"kind": "goto", "flow": "end"},
            },
        },
        "greet": {
            "start": "hi",
            "nodes": {
                "hi": {"kind": "play", "prompts": ["hello"], "next": "back"},
                "back": {"kind": "return"},
            },
        },
        "end": {"start": "bye", "nodes": {"bye": {"kind": "hangup", "prompt": "goodbye"}}},
    }
    async with ivr_center(tmp_path, flows) as center:
        caller = await center.pbx.call("800")
        await caller.wait_ended(timeout=5)
        row = await center.cdr(caller.uniqueid)
    assert caller.heard == ["hello", "goodbye"]
    assert row["ivr_path"] == "ivr:ask>greet:hi>greet:back>ivr:out>end:bye"
    assert row["hung_up_by"] == "system"


# --------------------------------------------------------------------------- reload


def _flow_saying(prompt: str) -> dict[str, Any]:
    return {
        "start": "hi",
        "nodes": {
            "hi": {"kind": "play", "prompts": ["intro"], "next": "say"},
            "say": {"kind": "hangup", "prompt": prompt},
        },
    }


async def test_reload_gives_new_calls_the_new_flow_while_a_call_inside_keeps_its_own(
    tmp_path: Path,
) -> None:
    async with ivr_center(tmp_path, {"ivr": _flow_saying("old-goodbye")}) as center:
        center.pbx.prompt_durations["intro"] = 0.8
        inside = await center.pbx.call("800")
        await inside.wait_for_prompt("intro", timeout=5)
        settings = yaml.safe_load(center.config_path.read_text())
        settings["flows"]["ivr"] = _flow_saying("new-goodbye")
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        await center.daemon.reload()
        after = await center.pbx.call("800")
        await inside.wait_ended(timeout=5)
        await after.wait_ended(timeout=5)

        settings["flows"]["ivr"]["nodes"]["say"]["kind"] = "hangupp"
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        with pytest.raises(ConfigError) as refused:
            await center.daemon.reload()
        with pytest.raises(HTTPError) as via_api:  # `callcenter reload` asks the API
            await center.daemon.api.dispatch("POST", "/reload", {})
        still = await center.pbx.call("800")
        await still.wait_ended(timeout=5)

    assert inside.heard == ["intro", "old-goodbye"]
    assert after.heard == ["intro", "new-goodbye"]
    assert "flows.ivr.nodes.say.kind" in str(refused.value)
    assert via_api.value.status == 400
    assert f"{center.config_path}:" in str(via_api.value), "file:line for the operator"
    assert still.heard == ["intro", "new-goodbye"], "the refused file changed nothing"


async def test_reload_names_the_settings_that_wait_for_a_restart_and_never_their_values(
    tmp_path: Path,
) -> None:
    async with ivr_center(tmp_path, {"ivr": _flow_saying("old-goodbye")}) as center:
        settings = yaml.safe_load(center.config_path.read_text())
        settings["api"]["port"] = 18470
        settings["logging"]["level"] = "debug"
        settings["pbx"]["ami"]["secret"] = "a-new-secret-value"
        settings["pbx"]["ami"]["keepalive_interval"] = 7.5
        settings["flows"]["ivr"] = _flow_saying("new-goodbye")
        center.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        with capture_logs() as logs:  # `callcenter reload` asks the API
            answer = await center.daemon.api.dispatch("POST", "/reload", {})
        call = await center.pbx.call("800")
        await call.wait_ended(timeout=5)

    assert call.heard == ["intro", "new-goodbye"], "flows are live"
    waiting = [e for e in logs if e["event"] == "config_needs_restart"]
    assert len(waiting) == 1 and waiting[0]["log_level"] == "warning"
    assert waiting[0]["settings"] == [
        "pbx.ami.secret",
        "pbx.ami.keepalive_interval",
        "api.port",
        "logging.level",
    ]
    assert answer == {"reloaded": True, "needs_restart": waiting[0]["settings"]}
    assert "a-new-secret-value" not in repr(logs)
    assert center.daemon.api.port != 18470, "the API still listens where it started"


async def test_reload_of_an_unchanged_file_asks_for_no_restart(tmp_path: Path) -> None:
    async with ivr_center(tmp_path, {"ivr": _flow_saying("goodbye")}) as center:
        with capture_logs() as logs:
            pending = await center.daemon.reload()
    assert pending == []
    events = [e["event"] for e in logs]
    assert "config_reloaded" in events and "config_needs_restart" not in events
