"""What the demo FreeSWITCH's ``say`` application says: mod_say arguments -> prompt names.

``say <module>[:<lang>] <type> <method> [<gender>] <text>`` (mod_dptools' syntax: four or five
words, nothing else). The prompts are named the way the demo Asterisk's SAY commands name
them (``digits/5``, ``digits/minus``, ``letters/a``, ``digits/star``, ``digits/day-1`` ...,
see :func:`~callcenter.demopbx.apps.number_prompts`), whatever the language, so a scenario's
``heard`` reads the same on both PBXs.

Supported types and methods:

* ``number`` / ``items`` / ``persons`` / ``messages``: ``pronounced`` (``5`` ->
  ``digits/5``; ``1,234`` may carry commas), ``iterated`` (one prompt per character) and
  ``counted`` (``digits/h-<n>``);
* ``name_spelled`` / ``name_phonetic`` / ``account_number`` / ``telephone_number`` /
  ``telephone_extension``: one prompt per character, whatever the method;
* ``current_date`` (weekday, month, day, year), ``current_time`` (hour, minutes, AM/PM) and
  ``current_date_time`` (both, with ``digits/at``) of a UNIX time, in the channel's
  ``timezone`` (UTC when unset); a text that is not a positive number means *now*, as
  mod_say_en reads it.

Anything else is an unknown say type: FreeSWITCH logs it and says nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Final

from callcenter.demopbx.apps import datetime_prompts, number_prompts

#: Types said as a number.
NUMBER_TYPES: Final = frozenset({"number", "items", "persons", "messages"})
#: Types said one character at a time.
SPELLED_TYPES: Final = frozenset(
    {"name_spelled", "name_phonetic", "account_number", "telephone_number", "telephone_extension"}
)
#: Date/time types -> the demo Asterisk's SAY DATETIME format that says the same.
DATETIME_FORMATS: Final = {
    "current_date": "ABdY",
    "current_time": "IMp",
    "current_date_time": "ABdY 'digits/at' IMp",
}
METHODS: Final = frozenset({"pronounced", "iterated", "counted", "pronounced_year"})

_NUMBER = re.compile(r"-?[0-9]+")
_CHARACTER_PROMPTS: Final = {"*": "digits/star", "#": "digits/pound"}
#: The first UNIX time datetime cannot show (a larger one means "now", like a bad one).
_YEAR_10000: Final = 253_402_300_800


@dataclass(frozen=True, slots=True)
class SayRequest:
    """One ``say`` argument, parsed: ``module`` is the say module (``en``), ``language``
    the language it says in (the ``:<lang>`` part, else the module)."""

    module: str
    language: str
    say_type: str
    method: str
    gender: str
    text: str


def parse_say(arg: str) -> SayRequest | None:
    """The request in ``arg``; None when it is not four or five words (FreeSWITCH logs its
    usage and does nothing)."""
    words = arg.split()
    if len(words) not in (4, 5):
        return None
    module, _, language = words[0].partition(":")
    gender = words[3] if len(words) == 5 else ""
    return SayRequest(
        module=module,
        language=language or module,
        say_type=words[1].lower(),
        method=words[2].lower(),
        gender=gender,
        text=words[-1],
    )


def iterated_prompts(text: str) -> list[str]:
    """One prompt per character: ``digits/<d>``, ``letters/<x>``, ``digits/star`` and
    ``digits/pound``; other characters are skipped."""
    prompts: list[str] = []
    for char in text:
        if char.isascii() and char.isdigit():
            prompts.append(f"digits/{char}")
        elif char.isascii() and char.isalpha():
            prompts.append(f"letters/{char.lower()}")
        elif char in _CHARACTER_PROMPTS:
            prompts.append(_CHARACTER_PROMPTS[char])
    return prompts


def say_prompts(request: SayRequest, timezone: str = "UTC") -> list[str] | None:
    """The prompts ``request`` plays, in order; None when FreeSWITCH cannot say it (unknown
    type or method, a number that does not parse)."""
    if request.method not in METHODS:
        return None
    text = request.text
    if request.say_type in NUMBER_TYPES:
        if request.method == "iterated":
            return iterated_prompts(text)
        number = text.replace(",", "")
        if not _NUMBER.fullmatch(number):
            return None
        if request.method == "counted":
            return [f"digits/h-{int(number)}"]
        return number_prompts(int(number))
    if request.say_type in SPELLED_TYPES:
        return iterated_prompts(text)
    fmt = DATETIME_FORMATS.get(request.say_type)
    if fmt is None:
        return None
    epoch = int(text) if text.isdigit() and len(text) <= 12 else 0
    if not 0 < epoch < _YEAR_10000:
        epoch = int(time.time())
    return datetime_prompts(epoch, fmt, timezone or "UTC")


__all__ = [
    "DATETIME_FORMATS",
    "METHODS",
    "NUMBER_TYPES",
    "SPELLED_TYPES",
    "SayRequest",
    "iterated_prompts",
    "parse_say",
    "say_prompts",
]
