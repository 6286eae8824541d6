"""Values in IVR flows: ``${variable}`` templates and telephone-number patterns.

Pure functions, shared by the config models (validation), the flow checks and the runner.

* A **template** is text with ``${name}`` references to call variables: ``"${caller_num}"``,
  ``"https://crm/api?number=${caller_num}"``. Unknown variables render as ``""``.
* A **number pattern** is an exact number (``"5551234"``, ``"+4930123456"``) or an Asterisk
  extension pattern starting with ``_``: ``X`` any digit, ``Z`` 1-9, ``N`` 2-9, ``[1-5]`` a
  set, ``.`` one or more characters, ``!`` zero or more (``"_49X."``, ``"_800"``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

VARIABLE_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
"""What a variable name looks like (letters, digits, ``_``; not starting with a digit)."""

_REF = re.compile(r"\$\{([^{}]*)\}")
_VARIABLE = re.compile(VARIABLE_NAME)

BUILTIN_VARIABLES: tuple[str, ...] = ("caller_num", "caller_name", "dialed", "call_id", "language")
"""Variables every call has from the start (set from what the PBX told us)."""
TRANSFER_NOTE = "transfer_note"
"""The call variable an agent's note for the next one goes in (a transfer's ``note``)."""
QUEUE_FIGURES: tuple[str, ...] = ("waiting", "free", "staffed", "wait_minutes", "open")
"""What a ``queue_figures`` node sets, each as ``<into>_<figure>``."""


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a valid template, or None when it is."""
    for name in _REF.findall(text):
        if not _VARIABLE.fullmatch(name):
            return f'"${{{name}}}" is not a variable name (letters, digits and _)'
    if "${" in _REF.sub("", text):
        return 'a "${" is not closed by "}"'
    return None


def names_in(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (duplicates kept)."""
    return _REF.findall(text)


def has_variables(text: str) -> bool:
    """True when ``text`` refers to at least one variable."""
    return bool(_REF.search(text))


def render(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with every ``${name}`` replaced by its value (``""`` when unset)."""
    return _REF.sub(lambda m: variables.get(m.group(1), ""), text)


def render_marked(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with every ``${name}`` replaced by its value, ``[name]`` when unset or
    empty (words read out by a person, who then knows what to ask)."""
    return _REF.sub(lambda m: variables.get(m.group(1)) or f"[{m.group(1)}]", text)


def render_url(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with each ``${name}`` replaced by its URL-encoded value."""
    return render(template, {k: quote(v, safe="") for k, v in variables.items()})


# --------------------------------------------------------------------------- numbers

NUMBER_PATTERN = r"\+?[0-9*#]+|_[0-9XZNxzn.!\[\]\-+*#]+"
"""An exact number or an Asterisk pattern (see the module docstring)."""


@functools.lru_cache(maxsize=1024)
def _pattern_regex(pattern: str) -> re.Pattern[str] | None:
    if not pattern.startswith("_"):
        return re.compile(re.escape(pattern))
    out: list[str] = []
    body = pattern[1:]
    i = 0
    while i < len(body):
        c = body[i].upper()
        if c == "X":
            out.append("[0-9]")
        elif c == "Z":
            out.append("[1-9]")
        elif c == "N":
            out.append("[2-9]")
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c == "[":
            end = body.find("]", i)
            if end < 0:
                return None
            chars = body[i + 1 : end]
            if not chars or not re.fullmatch(r"[0-9*#+]([0-9*#+]|-[0-9])*", chars):
                return None
            out.append("[" + re.escape(chars).replace("\\-", "-") + "]")
            i = end
        elif c == "]":
            return None
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        return None


def number_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable number pattern, or None."""
    if _pattern_regex(pattern) is None:
        return "has an unclosed or empty [...] set"
    return None


def number_matches(pattern: str, number: str) -> bool:
    """True when ``number`` is ``pattern`` (exact) or matches it (``_`` pattern)."""
    regex = _pattern_regex(pattern)
    return regex is not None and regex.fullmatch(number) is not None


def matches_any(patterns: Iterable[str], number: str) -> bool:
    """True when ``number`` matches one of ``patterns``."""
    return any(number_matches(p, number) for p in patterns)
