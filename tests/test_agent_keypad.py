"""An agent's transfer keys as their phone sends them, one key at a time: what is a request,
what is dropped, and that no sequence of keys can break the keypad."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from callcenter.acd.keypad import MAX_NUMBER, Keyed, Keypad, KeyState
from callcenter.config import load_config_text
from callcenter.errors import ConfigError
from callcenter.testing import BASE_CONFIG, merge

CODES = {"*1": "blind", "*2": "consult"}
KEYS = st.sampled_from(list("0123456789*#"))
NUMBERS = st.text(alphabet="0123456789", max_size=MAX_NUMBER)


def keyed(keys: str, *, gaps: dict[int, float] | None = None) -> list[Keyed]:
    """Feed ``keys`` 0.1 s apart (``gaps``: a longer pause before the key at that index)."""
    pad = Keypad(CODES, timeout=1.0)
    now, found = 0.0, []
    for at, key in enumerate(keys):
        now += (gaps or {}).get(at, 0.1)
        if (request := pad.feed(key, now)) is not None:
            found.append(request)
    return found


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("*11002#", [Keyed("blind", "1002", "*11002#")]),
        ("*24930123#", [Keyed("consult", "4930123", "*24930123#")]),
        ("*1#", [Keyed("blind", "", "*1#")]),
        ("*1*21002#", [Keyed("consult", "1002", "*21002#")]),
        ("5*11002#", [Keyed("blind", "1002", "*11002#")]),
        ("*3*11#*22#", [Keyed("blind", "1", "*11#"), Keyed("consult", "2", "*22#")]),
        ("*11002", []),
        ("*31002#", []),
        ("11002#", []),
        ("*1#1002#", [Keyed("blind", "", "*1#")]),
        ("#*#", []),
    ],
)
def test_what_an_agent_keys_is_read_as_a_transfer_or_dropped(
    keys: str, expected: list[Keyed]
) -> None:
    assert keyed(keys) == expected


def test_a_pause_longer_than_the_timeout_drops_what_was_keyed() -> None:
    assert keyed("*11002#", gaps={3: 1.5}) == []
    assert keyed("*11002#", gaps={3: 0.9}) == [Keyed("blind", "1002", "*11002#")]
    assert keyed("*1*11002#", gaps={2: 5.0}) == [Keyed("blind", "1002", "*11002#")]


def test_a_number_longer_than_any_phone_number_is_dropped() -> None:
    assert keyed("*1" + "1" * (MAX_NUMBER + 1) + "#") == []
    assert keyed("*1" + "1" * MAX_NUMBER + "#") == [
        Keyed("blind", "1" * MAX_NUMBER, "*1" + "1" * MAX_NUMBER + "#")
    ]


def test_an_instant_code_is_a_request_at_its_last_key() -> None:
    pad = Keypad({**CODES, "*3": "recording"}, timeout=1.0, instant=["*3"])
    assert pad.feed("*", 0.0) is None
    assert pad.feed("3", 0.1) == Keyed("recording", "", "*3")
    assert pad.state is KeyState.IDLE
    assert [pad.feed(k, 0.2 + n / 10) for n, k in enumerate("*12#")][-1] == Keyed(
        "blind", "2", "*12#"
    )


def test_a_code_must_be_a_star_and_digits() -> None:
    with pytest.raises(ValueError, match="a code is"):
        Keypad({"1": "blind"}, timeout=1)


@given(st.lists(KEYS, max_size=60), st.lists(st.floats(0, 3), min_size=60, max_size=60))
def test_no_keys_at_any_pace_break_the_keypad(keys: list[str], gaps: list[float]) -> None:
    pad = Keypad(CODES, timeout=1.0)
    now = 0.0
    for key, gap in zip(keys, gaps, strict=False):
        now += gap
        request = pad.feed(key, now)
        assert pad.state in KeyState
        if request is not None:
            code = next(c for c, action in CODES.items() if action == request.action)
            assert request.keys == code + request.number + "#"
            assert request.number.isdigit() or request.number == ""
            assert len(request.number) <= MAX_NUMBER
            assert pad.state is KeyState.IDLE and pad.keyed == ""


@given(st.lists(KEYS, max_size=30), st.sampled_from(list(CODES)), NUMBERS)
def test_a_whole_request_after_any_keys_is_read(noise: list[str], code: str, number: str) -> None:
    found = keyed("".join(noise) + code + number + "#")
    assert found and found[-1] == Keyed(CODES[code], number, code + number + "#")


def config_with(keys: object) -> str:
    return yaml.safe_dump(merge(BASE_CONFIG, {"acd": {"agent_keys": keys}}))


def test_agent_keys_that_overlap_are_refused_in_the_config() -> None:
    env = {"CALLCENTER_AMI_SECRET": "x"}
    for keys, words in (
        ({"blind": "*1", "consult": "*1"}, "must differ"),
        ({"blind": "*1", "consult": "*12"}, "neither may start with the other"),
        ({"blind": "1*"}, '"*" and one to three digits'),
        ({"recording": "*1"}, "blind ('*1') and recording ('*1')"),
        ({"hold": "*12"}, "blind ('*1') and hold ('*12')"),
        ({"consult_join": "*2"}, "consult_complete ('*2') and consult_join ('*2')"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_config_text(config_with(keys), environ=env)
        assert words in str(caught.value), keys
    config = load_config_text(config_with({}), environ=env)
    assert config.acd.agent_keys is not None
    keys = config.acd.agent_keys
    assert (keys.blind, keys.consult, keys.recording) == ("*1", "*2", "*3")
    assert keys.codes(consulting=True) == {
        "*1": "consult_cancel",
        "*2": "consult_complete",
        "*3": "consult_join",
    }, "while consulting: Asterisk's attended-transfer keys (features.conf)"
    assert set(keys.instant(consulting=True)) == {"*1", "*2", "*3"}
    assert keys.codes()["*5"] == "hold" and "*5" in keys.instant()
