"""A campaign's lead list and its do-not-call list, read from the files ops keep.

**Leads** are a CSV file (UTF-8, comma-separated, a header line first)::

    number,id,name,account
    5551001,c-1,Ada Lovelace,A-17
    5551002,c-2,Alan Turing,B-03

* ``number`` (required): what is dialled, digits with an optional leading ``+``; spaces,
  dashes, dots and brackets are dropped (``+1 (555) 100-2000`` is ``+15551002000``).
* ``id`` (optional): the lead's key in the records; without the column it is the number.
  Ids are unique in a file.
* ``timezone`` (optional): where the lead lives (``America/Chicago``): the campaign's
  ``hours`` are their local time (empty: the campaign's ``timezone``).
* ``priority`` (optional): a whole number, -1000 to 1000 (empty: 0); higher ones are called
  first (a hot lead, a score from the CRM), the file's order among equals.
* every other column (``name``, ``account`` ...) goes with the call: the agent's screen pop
  and the CDR's ``ivr_variables``.

Blank lines are skipped. The **do-not-call list** is a text file of numbers, one per line,
written the same way; ``#`` starts a comment.

Every problem is a :class:`~callcenter.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from callcenter.errors import ConfigError, ConfigIssue
from callcenter.ivr.calendar import timezone_problem

_SEPARATORS = re.compile(r"[\s().-]")
_NUMBER = re.compile(r"\+?[0-9]{2,32}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class Lead:
    """One person a campaign calls."""

    id: str
    number: str
    data: tuple[tuple[str, str], ...] = field(default=())
    """The file's other columns, in file order: (column, value)."""
    line: int = 0
    """Line in the lead file (1 is the header)."""
    timezone: str = ""
    """The lead's own time zone (empty: the campaign's)."""
    priority: int = 0
    """Called before the leads of a lower priority (the file's order among equals)."""

    @property
    def rank(self) -> tuple[int, int]:
        """Sorts the leads in the order they are called: priority first, then the file (a
        lead added while the campaign runs, of no line, after the file's of its priority)."""
        return (-self.priority, self.line or ADDED_LINE)


RESERVED_COLUMNS: Final = ("number", "id", "timezone", "priority")
"""The columns a lead file reads itself (the others go with the call)."""
MAX_PRIORITY: Final = 1000
ADDED_LINE: Final = 1 << 30
"""Where a lead added while the campaign runs ranks among the file's lines: after them."""


def normalise_number(text: str) -> str | None:
    """``text`` as a dialable number (separators dropped), or None when it is not one."""
    number = _SEPARATORS.sub("", text)
    return number if _NUMBER.fullmatch(number) else None


def _bad(filename: str, line: int | None, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(filename, line, "", message)])


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _bad(str(path), None, f"no such {what} file") from None
    except UnicodeDecodeError as exc:
        raise _bad(str(path), None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise _bad(str(path), None, f"cannot read the {what} file: {exc.strerror}") from None


def parse_leads(text: str, filename: str) -> list[Lead]:
    """The leads of a CSV text (see the module doc); raises ConfigError at the first
    problem, as ``filename:line: what``."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise _bad(filename, 1, "empty: a header line naming a `number` column first")
        at = reader.line_num
        columns = [cell.strip() for cell in header]
        for column in columns:
            if not _COLUMN.fullmatch(column):
                raise _bad(filename, at, f"column {column!r} is not a name (letters, digits, '_')")
        if len(set(columns)) != len(columns):
            twice = next(c for c in columns if columns.count(c) > 1)
            raise _bad(filename, at, f"column {twice!r} is named twice")
        if "number" not in columns:
            raise _bad(filename, at, f"no `number` column (the header names {', '.join(columns)})")
        leads: list[Lead] = []
        seen: dict[str, int] = {}
        zones: set[str] = set()
        width = len(columns)
        at_number = columns.index("number")
        at_id = columns.index("id") if "id" in columns else None
        at_zone = columns.index("timezone") if "timezone" in columns else None
        at_priority = columns.index("priority") if "priority" in columns else None
        others = [(i, c) for i, c in enumerate(columns) if c not in RESERVED_COLUMNS]
        for row in reader:
            if len(row) != width:
                if not any(cell.strip() for cell in row):
                    continue
                at = reader.line_num
                raise _bad(filename, at, f"{len(row)} fields where the header has {width}")
            written = row[at_number].strip()
            number = normalise_number(written)
            if number is None:
                if not any(cell.strip() for cell in row):
                    continue
                raise _bad(
                    filename,
                    reader.line_num,
                    f"{written!r} is not a phone number (digits, an optional leading +)",
                )
            at = reader.line_num
            lead_id = (row[at_id].strip() if at_id is not None else "") or number
            if lead_id in seen:
                raise _bad(filename, at, f"lead {lead_id!r} again (first on line {seen[lead_id]})")
            seen[lead_id] = at
            zone = row[at_zone].strip() if at_zone is not None else ""
            if zone and zone not in zones:
                problem = timezone_problem(zone)
                if problem is not None:
                    raise _bad(filename, at, f"timezone {zone!r} {problem}")
                zones.add(zone)
            priority = 0
            text = row[at_priority].strip() if at_priority is not None else ""
            if text:
                try:
                    priority = int(text)
                except ValueError:
                    priority = MAX_PRIORITY + 1
                if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
                    message = f"priority {text!r} is not a whole number, -1000..1000"
                    raise _bad(filename, at, message)
            data = tuple((c, row[i].strip()) for i, c in others)
            leads.append(
                Lead(
                    id=lead_id,
                    number=number,
                    data=data,
                    line=at,
                    timezone=zone,
                    priority=priority,
                )
            )
    except csv.Error as exc:
        raise _bad(filename, reader.line_num, f"not CSV: {exc}") from None
    return leads


def load_leads(path: Path) -> list[Lead]:
    """The leads in the CSV file at ``path`` (see :func:`parse_leads`)."""
    return parse_leads(_read(path, "lead"), str(path))


def parse_do_not_call(text: str, filename: str) -> frozenset[str]:
    """The numbers of a do-not-call text; raises ConfigError naming a line that holds
    something else."""
    numbers: set[str] = set()
    for at, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        entry = line.partition("#")[0].strip()
        if not entry:
            continue
        number = normalise_number(entry)
        if number is None:
            raise _bad(filename, at, f"{entry!r} is not a phone number")
        numbers.add(number)
    return frozenset(numbers)


def load_do_not_call(path: Path) -> frozenset[str]:
    """The numbers in the do-not-call file at ``path``."""
    return parse_do_not_call(_read(path, "do-not-call"), str(path))


__all__ = [
    "Lead",
    "load_do_not_call",
    "load_leads",
    "normalise_number",
    "parse_do_not_call",
    "parse_leads",
]
