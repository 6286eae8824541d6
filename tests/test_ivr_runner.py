"""The IVR runner on an in-memory Call: every node kind's decisions, barge-in, retries, and a
property test that no key sequence ever leaves a caller without a next step."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.config.models import CallCenterConfig
from callcenter.errors import CallHungUp
from callcenter.ivr.calendar import OpeningHours
from callcenter.ivr.lookup import LookupFailed, LookupRequest
from callcenter.ivr.runner import FlowRunner, Hangup, QueueLook, ToQueue, Transferred
from callcenter.ivr.trace import Decision, DigitsTaken, IvrEvent, NodeEntered, VariableSet
from callcenter.pbx.interface import (
    CallInfo,
    DialResult,
    DialStatus,
    HangupCause,
    RecordResult,
)
from callcenter.testing import BASE_CONFIG, merge

KEYS = "0123456789*#"


@dataclass
class FakeCall:
    """A Call whose caller follows a script: one entry per wait for keys.

    ``script`` items are what the caller does next: a string of keys, or ``""`` for
    silence at the next read. Keys are pressed as soon as an interruptible prompt plays
    (barge-in) unless they start with ``~`` (pressed once the prompts are over); silence is
    only used up by a read. Once the script is used up the caller
    stays silent.
    """

    script: list[str] = field(default_factory=list)
    caller_num: str = "5551234"
    dialed: str = "800"
    heard: list[str] = field(default_factory=list)
    said: list[tuple[str, str]] = field(default_factory=list)
    language: str = "en"
    redirected: tuple[str, str] | None = None
    operations: int = 0
    _typed: str = ""
    _hung_up: bool = False

    @property
    def info(self) -> CallInfo:
        return CallInfo(
            call_id="1.1",
            channel="PJSIP/x-00000001",
            caller_num=self.caller_num,
            caller_name="",
            dialed=self.dialed,
            context="from-callers",
            route="inbound",
            transport="demo",
        )

    @property
    def hung_up(self) -> bool:
        return self._hung_up

    @property
    def hangup_cause(self) -> HangupCause:
        return HangupCause.UNSPECIFIED

    async def wait_hangup(self) -> None:
        await asyncio.Event().wait()

    async def answer(self) -> None:
        return None

    def _next_keys(self) -> str:
        """Keys the caller types now: left-overs first, then the next script entry."""
        self.operations += 1
        if self.operations > 5000:
            raise AssertionError("the IVR never stops asking")
        if not self._typed:
            self._typed = self.script.pop(0) if self.script else ""
        keys, self._typed = self._typed, ""
        return keys.removeprefix("~")

    async def play(self, prompts: Sequence[str], *, interrupt_digits: str = "") -> str:
        self.operations += 1
        for prompt in prompts:
            self.heard.append(f"{self.language}/{prompt}" if self.language != "en" else prompt)
            upcoming = self._typed or (self.script[0] if self.script else "")
            if interrupt_digits and upcoming[:1] and upcoming[0] in interrupt_digits:
                # The caller presses during the prompt: barge-in takes the first key.
                if not self._typed:
                    self.script.pop(0)
                self._typed = upcoming[1:]
                return upcoming[0]
        return ""

    async def say(self, kind: str, value: str, *, interrupt_digits: str = "") -> str:
        self.said.append((kind, value))
        return await self.play([f"say:{kind}:{value}"], interrupt_digits=interrupt_digits)

    async def read_digits(
        self, prompt: str | None, *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str:
        if prompt is not None:
            self.heard.append(prompt)
        keys = self._next_keys()
        out = ""
        for i, key in enumerate(keys):
            if terminator and key == terminator:
                self._typed = keys[i + 1 :]
                return out
            out += key
            if len(out) >= max_digits:
                self._typed = keys[i + 1 :]
                return out
        return out

    async def record(
        self,
        path: str,
        *,
        max_seconds: float,
        beep: bool = True,
        silence_seconds: float = 5.0,
        end_digits: str = "#",
        file_format: str = "wav",
    ) -> RecordResult:
        keys = self._next_keys()
        if keys and keys[0] in end_digits:
            return RecordResult(f"{path}.{file_format}", 2.0, "dtmf", keys[0])
        return RecordResult(f"{path}.{file_format}", max_seconds, "timeout")

    async def set_language(self, language: str) -> None:
        self.language = language

    async def start_hold_music(self, music_class: str = "default") -> None:
        return None

    async def hand_back(self) -> None:
        return None

    async def fail_over(self) -> None:
        return None

    async def stop_hold_music(self) -> None:
        return None

    async def dial(
        self,
        device: str,
        *,
        timeout: float,
        hold_music: bool | str = True,
        caller_id: str | None = None,
        on_answer: Callable[[str], None] | None = None,
        announce: str | None = None,
    ) -> DialResult:
        return DialResult(DialStatus.NOANSWER)

    async def unbridge(self) -> None:
        return None

    async def redirect(self, context: str, exten: str, priority: int = 1) -> None:
        self.redirected = (context, exten)

    async def get_variable(self, name: str) -> str | None:
        return None

    async def set_variable(self, name: str, value: str) -> None:
        return None

    async def hangup(self, cause: HangupCause = HangupCause.NORMAL_CLEARING) -> None:
        self._hung_up = True


def config_with(flows: Mapping[str, Any], **extra: Any) -> CallCenterConfig:
    data = merge(BASE_CONFIG, extra)
    data["flows"] = {**data["flows"], **flows}  # whole flows replace, never merge
    data["pbx"]["ami"]["secret"] = "x"
    return CallCenterConfig.model_validate(data)


async def walk(
    config: CallCenterConfig,
    flow: str,
    call: FakeCall,
    *,
    now: datetime | None = None,
    answer: object = None,
    tmp: Path | None = None,
    switches: dict[str, bool] | None = None,
    queue_look: Callable[[str], QueueLook] | None = None,
) -> tuple[Any, list[IvrEvent]]:
    events: list[IvrEvent] = []

    async def fetch(request: LookupRequest) -> object:
        if answer is None:
            raise LookupFailed("no answer within 1s")
        return answer

    runner = FlowRunner(
        call,
        config,
        switches=switches,
        queue_look=queue_look or (lambda _queue: QueueLook()),
        on_event=events.append,
        clock=(lambda: now) if now is not None else datetime.now,
        fetch=fetch,
        voicemail_root=tmp,
    )
    async with asyncio.timeout(5):
        outcome = await runner.run(flow)
    return outcome, events


def visited(events: list[IvrEvent]) -> list[str]:
    return [e.node for e in events if isinstance(e, NodeEntered)]


MENU_FLOW = {
    "m": {
        "start": "hello",
        "nodes": {
            "hello": {
                "kind": "play",
                "prompts": ["hello", {"say": "digits", "value": "${caller_num}"}],
                "barge_in": True,
                "next": "menu",
            },
            "menu": {
                "kind": "menu",
                "prompt": "menu",
                "choices": {"1": "sales", "2": "support"},
                "timeout": 1,
                "timeout_retries": 2,
                "invalid_retries": 3,
                "on_timeout": "bye",
                "on_invalid": "operator",
                "default": "bye",
            },
            "sales": {"kind": "queue", "queue": "sales"},
            "support": {"kind": "queue", "queue": "support", "priority": 3},
            "operator": {"kind": "queue", "queue": "support", "priority": 9},
            "bye": {"kind": "hangup", "prompt": "goodbye"},
        },
    }
}


async def test_a_key_pressed_during_a_barge_in_prompt_answers_the_next_menu() -> None:
    call = FakeCall(script=["2"])
    outcome, events = await walk(config_with(MENU_FLOW), "m", call)
    assert outcome == ToQueue("support", 3)
    assert "menu" not in call.heard, "the caller had already answered: no menu prompt"
    assert visited(events) == ["hello", "menu", "support"]


async def test_silence_and_wrong_keys_have_their_own_prompt_and_counter() -> None:
    call = FakeCall(script=["", "7", "", "1"])
    outcome, _ = await walk(config_with(MENU_FLOW), "m", call)
    assert outcome == Hangup("flow"), "the second silence exhausts timeout_retries=2"
    assert call.heard.count("please-try-again") == 1
    assert call.heard.count("invalid") == 1
    assert call.heard[-1] == "goodbye"


async def test_wrong_keys_run_out_into_on_invalid_and_star_repeats_for_free() -> None:
    call = FakeCall(script=["", "*", "5", "5", "5"])
    outcome, events = await walk(config_with(MENU_FLOW), "m", call)
    assert outcome == ToQueue("support", 9)
    verdicts = [e.verdict for e in events if isinstance(e, DigitsTaken)]
    assert verdicts == ["timeout", "repeat", "invalid", "invalid", "invalid"]


COLLECT_FLOW = {
    "c": {
        "start": "pin",
        "nodes": {
            "pin": {
                "kind": "collect",
                "prompt": "enter-pin",
                "variable": "pin",
                "min_digits": 4,
                "max_digits": 4,
                "pattern": "[0-9]{4}",
                "private": True,
                "retries": 2,
                "next": "acct",
                "default": "bye",
            },
            "acct": {
                "kind": "collect",
                "prompt": "enter-account",
                "variable": "account",
                "min_digits": 3,
                "max_digits": 8,
                "confirm": {"say": "digits"},
                "next": "q",
                "default": "bye",
            },
            "q": {"kind": "queue", "queue": "support"},
            "bye": {"kind": "hangup"},
        },
    }
}


async def test_collect_validates_confirms_and_keeps_private_input_out_of_events() -> None:
    call = FakeCall(script=["12", "1234", "555#", "~2", "777#", "~1"])
    outcome, events = await walk(config_with(COLLECT_FLOW), "c", call)
    assert outcome == ToQueue("support", 0)
    sets = {e.name: e.value for e in events if isinstance(e, VariableSet)}
    assert sets == {"pin": "***", "account": "777"}
    assert ("digits", "555") in call.said and ("digits", "777") in call.said
    assert "1234" not in repr(events), "a private PIN never appears in the trace"
    assert call.heard.count("invalid") == 1, "too short once"


async def test_collect_gives_up_into_default_after_its_retries() -> None:
    call = FakeCall(script=["", ""])
    outcome, _ = await walk(config_with(COLLECT_FLOW), "c", call)
    assert outcome == Hangup("flow")


BRANCH_FLOW = {
    "b": {
        "start": "who",
        "nodes": {
            "who": {
                "kind": "branch",
                "cases": [
                    {"caller_list": "vip", "goto": "vip"},
                    {"dialed": ["_80X"], "days": ["sat,sun"], "goto": "weekend"},
                    {"caller": ["_555XXXX"], "hours": ["09:00-17:00"], "goto": "local"},
                ],
                "default": "other",
            },
            "vip": {"kind": "queue", "queue": "support", "priority": 10},
            "weekend": {"kind": "queue", "queue": "sales", "priority": 1},
            "local": {"kind": "queue", "queue": "sales", "priority": 2},
            "other": {"kind": "queue", "queue": "sales"},
        },
    }
}


@pytest.mark.parametrize(
    ("caller", "now", "expected"),
    [
        ("+4930123456", datetime(2026, 11, 23, 3, 0, tzinfo=UTC), 10),
        ("5551234", datetime(2026, 11, 28, 12, 0, tzinfo=UTC), 1),  # a Saturday
        ("5551234", datetime(2026, 11, 23, 9, 30, tzinfo=UTC), 2),  # Monday 10:30 Berlin
        ("5551234", datetime(2026, 11, 23, 17, 30, tzinfo=UTC), 0),  # 18:30 Berlin
    ],
)
async def test_branch_on_caller_lists_dialled_number_and_local_time(
    caller: str, now: datetime, expected: int
) -> None:
    config = config_with(
        BRANCH_FLOW,
        ivr={"timezone": "Europe/Berlin", "number_lists": {"vip": ["+4930123456"]}},
    )
    outcome, _ = await walk(config, "b", FakeCall(caller_num=caller), now=now)
    assert isinstance(outcome, ToQueue) and outcome.priority == expected


@pytest.mark.parametrize(("storm", "heard"), [(True, "closed-storm"), (False, "welcome")])
async def test_a_switch_ops_turned_on_sends_callers_down_its_branch(
    storm: bool, heard: str
) -> None:
    flow = {
        "w": {
            "start": "storm",
            "nodes": {
                "storm": {
                    "kind": "branch",
                    "cases": [{"switch": "storm", "goto": "closed"}],
                    "default": "open",
                },
                "closed": {"kind": "hangup", "prompt": "closed-storm"},
                "open": {"kind": "hangup", "prompt": "welcome"},
            },
        }
    }
    config = config_with(flow, ivr={"switches": {"storm": "Closed for the storm"}})
    call = FakeCall()
    _, events = await walk(config, "w", call, switches={"storm": storm})
    assert call.heard == [heard]
    decided = [e for e in events if isinstance(e, Decision)]
    assert ("switch storm on" in decided[0].text) is storm


BUSY_FLOW = {
    "w": {
        "start": "busy",
        "nodes": {
            "busy": {
                "kind": "branch",
                "cases": [
                    {"queue": "sales", "agents_free": True, "goto": "now"},
                    {"queue": "sales", "waiting_over": 10, "goto": "callback"},
                    {"queue": "sales", "wait_over": 120, "goto": "callback"},
                ],
                "default": "now",
            },
            "now": {"kind": "queue", "queue": "sales"},
            "callback": {"kind": "hangup", "prompt": "press-1-for-a-callback"},
        },
    }
}


@pytest.mark.parametrize(
    ("look", "heard", "why"),
    [
        (QueueLook(waiting=0, free=1, staffed=3), [], "1 agent(s) free"),
        (QueueLook(waiting=11, free=0, staffed=3), ["press-1-for-a-callback"], "11 waiting"),
        (QueueLook(waiting=3, staffed=2, expected_wait=300.0), ["press-1-for-a-callback"],
         "about 300s to wait"),
        (QueueLook(waiting=3, staffed=0), ["press-1-for-a-callback"], "nobody staffs it"),
        (QueueLook(waiting=3, staffed=2, expected_wait=60.0), [], None),
        (QueueLook(waiting=3, staffed=2), [], None),  # nothing to estimate from: no callback
    ],
)  # fmt: skip
async def test_a_busy_queue_sends_callers_down_another_branch_before_they_join(
    look: QueueLook, heard: list[str], why: str | None
) -> None:
    config = config_with(BUSY_FLOW)
    call = FakeCall()
    outcome, events = await walk(config, "w", call, queue_look=lambda queue: look)
    assert call.heard == heard
    assert isinstance(outcome, ToQueue) is (not heard)
    decided = " ".join(e.text for e in events if isinstance(e, Decision))
    assert why is None or why in decided


FIGURES_FLOW = {
    "w": {
        "start": "look",
        "nodes": {
            "look": {"kind": "queue_figures", "queue": "sales", "into": "sales", "next": "say"},
            "say": {
                "kind": "play",
                "prompts": ["callers-ahead", {"say": "number", "value": "${sales_waiting}"}],
                "next": "now",
            },
            "now": {"kind": "queue", "queue": "sales"},
        },
    }
}


@pytest.mark.parametrize(
    ("look", "figures"),
    [
        (QueueLook(waiting=3, free=0, staffed=2, expected_wait=150.0), ("3", "0", "2", "3", "1")),
        (QueueLook(waiting=0, free=2, staffed=2, expected_wait=0.0), ("0", "2", "2", "0", "1")),
        (QueueLook(waiting=4, staffed=0, closed=True), ("4", "0", "0", "", "0")),
    ],
)
async def test_queue_figures_become_variables_the_caller_is_told(
    look: QueueLook, figures: tuple[str, ...]
) -> None:
    """app_queue's QUEUE_WAITING_COUNT: "there are 3 callers ahead of you"."""
    call = FakeCall()
    outcome, events = await walk(
        config_with(FIGURES_FLOW), "w", call, queue_look=lambda queue: look
    )
    set_now = {e.name: e.value for e in events if isinstance(e, VariableSet)}
    names = ("waiting", "free", "staffed", "wait_minutes", "open")
    assert set_now == {f"sales_{n}": v for n, v in zip(names, figures, strict=True)}
    assert call.said == [("number", figures[0])]
    assert isinstance(outcome, ToQueue)


SCHEDULE_FLOW = {
    "s": {
        "start": "hours",
        "nodes": {
            "hours": {
                "kind": "schedule",
                "timezone": "America/New_York",
                "hours": {"mon-fri": ["09:00-17:00"]},
                "holidays": {"country": "US", "subdivision": "NY", "dates": ["12-24"]},
                "open": "open",
                "closed": "closed",
                "holiday": "holiday",
            },
            "open": {"kind": "hangup", "prompt": "open"},
            "closed": {"kind": "hangup", "prompt": "closed"},
            "holiday": {"kind": "hangup", "prompt": "holiday"},
        },
    }
}


@pytest.mark.parametrize(
    ("now", "heard"),
    [
        (datetime(2026, 11, 26, 15, 0, tzinfo=UTC), "holiday"),  # Thanksgiving, 10:00 NY
        (datetime(2026, 12, 24, 15, 0, tzinfo=UTC), "holiday"),  # a date ops added
        (datetime(2026, 11, 25, 15, 0, tzinfo=UTC), "open"),  # Wednesday 10:00 NY
        (datetime(2026, 11, 25, 13, 0, tzinfo=UTC), "closed"),  # 08:00 NY: 13:00 in UTC
        (datetime(2026, 11, 25, 10, 0), "open"),  # naive: wall clock in the node's zone
    ],
)
async def test_schedule_uses_the_nodes_time_zone_and_holiday_calendar(
    now: datetime, heard: str
) -> None:
    call = FakeCall()
    await walk(config_with(SCHEDULE_FLOW), "s", call, now=now)
    assert call.heard == [heard]


@pytest.mark.parametrize(
    ("now", "heard"),
    [
        (datetime(2026, 12, 24, 15, 0, tzinfo=UTC), "open"),  # 10:00 NY on a short day
        (datetime(2026, 12, 24, 19, 0, tzinfo=UTC), "closed"),  # 14:00 NY: closed, no holiday
        (datetime(2026, 11, 25, 15, 0, tzinfo=UTC), "closed"),  # a Wednesday shut for once
        (datetime(2026, 11, 24, 15, 0, tzinfo=UTC), "open"),  # the week's hours again
    ],
)
async def test_a_schedule_nodes_special_days_have_their_own_hours(
    now: datetime, heard: str
) -> None:
    flow = copy.deepcopy(SCHEDULE_FLOW)
    flow["s"]["nodes"]["hours"]["special"] = {"12-24": ["09:00-13:00"], "2026-11-25": []}
    call = FakeCall()
    await walk(config_with(flow), "s", call, now=now)
    assert call.heard == [heard]


DATA_FLOW = {
    "d": {
        "start": "lang",
        "nodes": {
            "lang": {"kind": "language", "language": "fr", "next": "crm"},
            "crm": {
                "kind": "lookup",
                "url": "http://crm.invalid/caller?n=${caller_num}",
                "fields": {"name": "customer.name", "vip": "customer.vip", "prio": "level"},
                "next": "route",
                "fallback": "plain",
            },
            "route": {"kind": "set", "variables": {"team": "t-${vip}"}, "next": "q"},
            "q": {
                "kind": "queue",
                "queue": "support",
                "priority_from": "prio",
                "skills": ["${language}", "${team}", ""],
            },
            "plain": {"kind": "transfer", "to": "${name}", "fallback": "bye"},
            "bye": {"kind": "hangup", "prompt": "bye"},
        },
    }
}


async def test_lookup_answer_fills_variables_for_queue_priority_and_skills() -> None:
    answer = {"customer": {"name": "Ada", "vip": True}, "level": 7}
    call = FakeCall()
    outcome, events = await walk(config_with(DATA_FLOW), "d", call, answer=answer)
    assert outcome == ToQueue("support", 7, ("fr", "t-1"))
    sets = {e.name: e.value for e in events if isinstance(e, VariableSet)}
    assert sets["name"] == "Ada" and sets["language"] == "fr"
    assert call.language == "fr"


async def test_lookup_failure_takes_the_fallback_and_a_transfer_off_the_list_is_refused() -> None:
    call = FakeCall()
    config = config_with(DATA_FLOW, ivr={"transfer_allow": ["2100"]})
    outcome, _ = await walk(config, "d", call, answer=None)
    assert outcome == Hangup("flow")
    assert call.redirected is None, "the empty/unknown destination is never dialled"
    assert call.heard == ["fr/bye"]


async def test_allowed_transfer_redirects_to_the_transfer_context() -> None:
    flows = {"t": {"start": "x", "nodes": {"x": {"kind": "transfer", "to": "2101"}}}}
    config = config_with(flows, ivr={"transfer_allow": ["_21XX"], "transfer_context": "xfer"})
    call = FakeCall()
    outcome, _ = await walk(config, "t", call)
    assert outcome == Transferred("2101", "xfer")
    assert call.redirected == ("xfer", "2101")


SUB_FLOWS = {
    "main": {
        "start": "ask",
        "nodes": {
            "ask": {"kind": "subflow", "flow": "pin", "next": "again"},
            "again": {"kind": "subflow", "flow": "pin", "next": "jump"},
            "jump": {"kind": "goto", "flow": "end"},
        },
    },
    "pin": {
        "start": "hi",
        "nodes": {
            "hi": {"kind": "play", "prompts": ["hi"], "next": "back"},
            "back": {"kind": "return"},
        },
    },
    "end": {"start": "bye", "nodes": {"bye": {"kind": "hangup", "prompt": "bye"}}},
}


async def test_subflows_return_to_their_caller_and_goto_changes_flow() -> None:
    call = FakeCall()
    outcome, events = await walk(config_with(SUB_FLOWS), "main", call)
    assert outcome == Hangup("flow")
    assert call.heard == ["hi", "hi", "bye"]
    flows = [(e.flow, e.node) for e in events if isinstance(e, NodeEntered)]
    assert flows[-1] == ("end", "bye")


async def test_voicemail_reports_the_recording_and_a_hang_up_ends_the_call(tmp_path: Path) -> None:
    flows = {
        "v": {
            "start": "vm",
            "nodes": {"vm": {"kind": "voicemail", "box": "sales", "max_seconds": 30}},
        }
    }
    call = FakeCall(script=["#"])
    outcome, _ = await walk(config_with(flows), "v", call, tmp=tmp_path)
    assert outcome == Hangup("voicemail")
    assert (tmp_path / "sales").is_dir()

    class HangsUp(FakeCall):
        async def record(self, path: str, **kwargs: Any) -> RecordResult:
            return RecordResult(f"{path}.wav", 3.0, "hangup")

    with pytest.raises(CallHungUp):
        await walk(config_with(flows), "v", HangsUp(), tmp=tmp_path)


CALLBACK_FLOW = {
    "cb": {
        "start": "offer",
        "nodes": {
            "offer": {
                "kind": "callback",
                "queue": "sales",
                "min_digits": 4,
                "next": "bye",
                "default": "bye",
            },
            "bye": {"kind": "hangup"},
        },
    }
}


async def test_callback_confirms_the_caller_number_or_takes_another_one() -> None:
    call = FakeCall(script=["1"])
    _, events = await walk(config_with(CALLBACK_FLOW), "cb", call)
    assert [e.value for e in events if isinstance(e, VariableSet)] == ["5551234"]
    call = FakeCall(script=["2", "0301234#", "1"])
    _, events = await walk(config_with(CALLBACK_FLOW), "cb", call)
    assert [e.value for e in events if isinstance(e, VariableSet)] == ["0301234"]
    call = FakeCall(script=["", "", ""], caller_num="")
    _, events = await walk(config_with(CALLBACK_FLOW), "cb", call)
    assert not [e for e in events if isinstance(e, VariableSet)], "no number, no request"


# --------------------------------------------------------------------------- property

EVERYTHING = {
    "main": {
        "start": "hello",
        "nodes": {
            "hello": {"kind": "play", "prompts": ["hello"], "barge_in": True, "next": "menu"},
            "menu": {
                "kind": "menu",
                "prompt": "menu",
                "choices": {"1": "pin", "2": "cb", "3": "sub", "4": "vm", "5": "menu2", "#": "q"},
                "retries": 2,
                "default": "bye",
            },
            "menu2": {
                "kind": "menu",
                "prompt": "menu2",
                "choices": {"1": "menu", "9": "bye"},
                "repeat_key": "0",
                "default": "menu",
                "timeout_retries": 1,
                "on_timeout": "bye",
            },
            "pin": {
                "kind": "collect",
                "prompt": "pin",
                "variable": "pin",
                "min_digits": 2,
                "max_digits": 4,
                "confirm": {},
                "next": "menu",
                "default": "bye",
            },
            "cb": {"kind": "callback", "queue": "sales", "next": "bye", "default": "menu"},
            "sub": {"kind": "subflow", "flow": "inner", "next": "menu"},
            "vm": {"kind": "voicemail", "box": "b", "next": "menu"},
            "q": {"kind": "queue", "queue": "support"},
            "bye": {"kind": "hangup", "prompt": "bye"},
        },
    },
    "inner": {
        "start": "ask",
        "nodes": {
            "ask": {
                "kind": "menu",
                "prompt": "inner",
                "choices": {"1": "back"},
                "retries": 1,
                "default": "back",
            },
            "back": {"kind": "return"},
        },
    },
}
_CONFIG = config_with(EVERYTHING)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(script=st.lists(st.text(alphabet=KEYS, max_size=6), max_size=40))
def test_random_keys_always_lead_to_a_queue_or_a_hang_up(
    script: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    call = FakeCall(script=list(script))
    tmp = tmp_path_factory.getbasetemp()
    outcome, events = asyncio.run(walk(_CONFIG, "main", call, tmp=tmp))
    assert isinstance(outcome, ToQueue | Hangup)
    if isinstance(outcome, Hangup):
        assert outcome.reason in ("flow", "voicemail")
        assert call.heard[-1] == "bye", "a hang-up is announced"
    assert call.operations < 5000
    # Every node the caller reached was entered through the graph (no dead ends).
    assert visited(events)[0] == "hello"


@pytest.mark.parametrize(("closed", "heard"), [(True, ["closed-now"]), (False, [])])
async def test_a_flow_asks_whether_a_queue_is_open_by_its_own_hours(
    closed: bool, heard: list[str]
) -> None:
    flow = {
        "w": {
            "start": "open",
            "nodes": {
                "open": {
                    "kind": "branch",
                    "cases": [{"queue": "sales", "queue_open": False, "goto": "shut"}],
                    "default": "now",
                },
                "now": {"kind": "queue", "queue": "sales"},
                "shut": {"kind": "hangup", "prompt": "closed-now"},
            },
        }
    }
    call = FakeCall()
    outcome, events = await walk(
        config_with(flow), "w", call, queue_look=lambda queue: QueueLook(closed=closed)
    )
    assert call.heard == heard
    assert isinstance(outcome, ToQueue) is (not closed)
    if closed:
        assert "closed by its hours" in " ".join(e.text for e in events if isinstance(e, Decision))


@pytest.mark.parametrize(
    ("moment", "why"),
    [
        (datetime(2026, 12, 22, 10, 0), None),  # a Tuesday morning
        (datetime(2026, 12, 22, 19, 0), "outside the opening hours"),
        (datetime(2026, 12, 19, 10, 0), "outside the opening hours"),  # a Saturday
        (datetime(2026, 12, 25, 10, 0), "a public holiday (Christmas Day)"),
        (datetime(2026, 12, 24, 10, 0), "a closed day listed in the config"),
    ],
)
def test_a_place_is_closed_outside_its_hours_on_holidays_and_on_days_listed(
    moment: datetime, why: str | None
) -> None:
    place = OpeningHours({"mon-fri": ["08:00-18:00"]}, dates=["12-24"], country="GB")
    assert place.closed_because(moment) == why


@pytest.mark.parametrize(
    ("moment", "why"),
    [
        (datetime(2026, 12, 24, 10, 0), None),  # the 24th: a short day, not closed
        (datetime(2026, 12, 24, 14, 0), "outside the day's hours"),
        (datetime(2026, 12, 26, 10, 0), None),  # Boxing Day, a Saturday: opened for once
        (datetime(2026, 12, 22, 10, 0), "a special day, closed"),  # a Tuesday: stocktaking
        (datetime(2026, 12, 23, 10, 0), None),  # the weekly hours again
        (datetime(2027, 12, 24, 12, 30), None),  # every year
        (datetime(2027, 12, 26, 10, 0), "a public holiday (Boxing Day)"),  # that year only
    ],
)
def test_special_days_have_their_own_hours_whatever_the_week_or_the_holidays_say(
    moment: datetime, why: str | None
) -> None:
    special = {"12-24": ["09:00-13:00"], "2026-12-26": ["09:00-12:00"], "2026-12-22": []}
    place = OpeningHours({"mon-fri": ["08:00-18:00"]}, country="GB", special=special)
    assert place.closed_because(moment) == why


def test_the_next_opening_goes_by_the_special_days_hours() -> None:
    special = {"2026-12-21": [], "2026-12-22": ["14:00-16:00"]}
    office = OpeningHours({"mon-fri": ["08:00-12:00"]}, special=special)
    friday_evening = datetime(2026, 12, 18, 19, 0)
    assert office.next_opening(friday_evening) == datetime(2026, 12, 22, 14, 0)


def test_the_next_opening_skips_nights_weekends_holidays_and_days_listed() -> None:
    office = OpeningHours({"mon-fri": ["08:00-12:00", "13:00-18:00"]})
    friday_evening = datetime(2026, 12, 18, 19, 0)
    assert office.next_opening(friday_evening) == datetime(2026, 12, 21, 8, 0)
    assert office.next_opening(datetime(2026, 12, 21, 12, 30)) == datetime(2026, 12, 21, 13, 0)
    open_now = datetime(2026, 12, 21, 9, 0)
    assert office.next_opening(open_now) == open_now
    christmas_eve = datetime(2026, 12, 23, 19, 0)
    british = OpeningHours(office.hours, dates=["12-24"], country="GB")
    later = british.next_opening(christmas_eve)
    assert later == datetime(2026, 12, 29, 8, 0), "24th listed, 25th-28th holidays or weekend"
    saturdays = OpeningHours({"sat": ["10:00-11:00"]})
    assert saturdays.next_opening(friday_evening, days=0) is None
