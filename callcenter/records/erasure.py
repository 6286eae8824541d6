"""A caller's right to erasure: ``callcenter erase NUMBER...`` takes a person's phone number
out of every record the daemon keeps, and their voice with it.

The calls stay (a queue's figures, an agent's talk time and the service level do not
change); what makes them the person's goes:

* wherever the number appears (``cdr``'s ``src``, ``dst``, ``clid``, channel names, transfer
  and consultation targets; queue_log data such as ``ENTERQUEUE``'s caller id; callback
  requests, kept places, dispositions, surveys, finished campaign leads, leads added while
  a campaign ran, with their columns, the audit trail's routes, the text of notices and
  messages to agents still standing) it is replaced by
  a token, ``erased-`` and 8 random hex digits, one per number and erasure: the person's
  calls still read as one caller's (first-call resolution counts stay right), and nothing
  kept leads back to the number;
* in those calls, the caller's name (``clid`` becomes ``"" <token>``), the variables the
  IVR, a lead file or a web form brought (``ivr_variables`` keeps only the engine's own ids:
  ``campaign``, ``lead``, ``dialled_by``, ``callback_of``), the agents' disposition
  notes and the scorecards' comments (the supervisor's, the agent's answer) go (the scores
  stay);
* the recordings of those calls and the voicemail messages they left are deleted (a
  message waiting for an agent holds the erasure: deal with it first), and the lines of
  ``records.queue_log_file`` are rewritten (under the lock the daemon's appends take, so
  none is lost), its rotated copies too (plain or gzip).

What is kept on purpose: a number on a number list (a blocklist, a do-not-call list) stays
there, as that is how the number stays blocked; the output says so. What is refused: a
number that work still waits on (a callback waiting in a queue, a campaign lead still to
be dialled, a disposition an agent still owes): the output says what to do first, and
nothing is changed. A number has at least :data:`MIN_DIGITS` digits, so that a slip cannot
match half the records.

Not reached: what left the daemon already (webhooks, MQTT, a CRM), backups taken before
(``callcenter backup``: they go as you rotate them), the PBX's own logs and voicemail,
rotated copies of the queue_log file compressed other than by gzip (listed), and a call
with the number in progress (its record is written when it ends: erase again after it, or
go through the running daemon, which waits). One erasure is one transaction; a line in
``erasures`` says when and how much, never which number.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog

from callcenter.errors import ErasureRefused
from callcenter.records.recordings import RECORDING_NAME
from callcenter.records.store import QUEUE_LOG_DATA, RecordStore, Transaction

if TYPE_CHECKING:
    from callcenter.config import CallCenterConfig

log = structlog.get_logger(__name__)

MIN_DIGITS: Final = 5
"""Digits a number to erase must have at least."""

_NUMBER: Final = re.compile(r"\+?[0-9*#]+", re.ASCII)
_SEPARATORS: Final = re.compile(r"[\s().-]")

KEPT_VARIABLES: Final = frozenset({"campaign", "lead", "dialled_by", "callback_of"})
"""``ivr_variables`` an erasure keeps: the engine's own ids, nobody's personal data."""

_CDR_TEXT: Final = ("src", "dst", "clid", "channel", "dstchannel", "transfer_path", "consulted")
"""``cdr`` columns a number can appear in (besides ``ivr_variables``)."""

_CHUNK: Final = 400
"""Values per ``IN (...)``: under every SQLite build's limit on parameters."""


def as_typed(numbers: Iterable[str]) -> list[str]:
    """The numbers as the records hold them, from how people write them: spaces, dots,
    dashes and parentheses dropped (``06 12 34 56 78`` -> ``0612345678``), each once."""
    found: dict[str, None] = {}
    for number in numbers:
        bare = _SEPARATORS.sub("", number)
        found[bare if _NUMBER.fullmatch(bare) else number] = None
    return list(found)


def check_numbers(numbers: Sequence[str], protected: Mapping[str, str]) -> list[str]:
    """What is wrong with ``numbers`` as numbers to erase (empty: nothing); ``protected``
    maps the extensions of the centre's own phones to whose they are (an agent's phone is
    no caller's number)."""
    problems = []
    if not numbers:
        problems.append("name at least one number")
    for number in numbers:
        if not _NUMBER.fullmatch(number):
            problems.append(f"{number!r} is no phone number (digits, a leading +, * and #)")
        elif number in protected:
            problems.append(f"{number!r} is {protected[number]}: erasure is for callers")
        elif sum(c.isdigit() for c in number) < MIN_DIGITS:
            problems.append(
                f"{number!r} has fewer than {MIN_DIGITS} digits: it would match parts of "
                "other numbers"
            )
    return problems


def centre_phones(config: CallCenterConfig) -> dict[str, str]:
    """The extensions of the agents' and supervisors' phones (``PJSIP/1001`` -> ``1001``),
    and whose they are: what :func:`check_numbers` refuses."""
    phones = {}
    for kind, people in (("agent", config.agents), ("supervisor", config.supervisors)):
        for person, settings in people.items():
            extension = settings.device.rpartition("/")[2].partition("@")[0]
            phones[extension] = f"{kind} {person}'s phone"
    return phones


def number_pattern(numbers: Iterable[str]) -> re.Pattern[str]:
    """Any of ``numbers``, not inside a longer run of digits (``5551234`` is not in
    ``15551234``)."""
    ordered = sorted(set(numbers), key=lambda n: (-len(n), n))
    alternatives = "|".join(re.escape(n) for n in ordered)
    return re.compile(rf"(?<![0-9])(?:{alternatives})(?![0-9])")


@dataclass(slots=True)
class Erasure:
    """What an erasure changed (or, dry, would change)."""

    tokens: dict[str, str]
    """Each number and the token that stands for it now."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows changed per table."""
    call_ids: set[str] = field(default_factory=set)
    """The calls the person was in."""
    recordings: list[Path] = field(default_factory=list)
    """Their recordings (deleted, or to delete)."""
    recording_bytes: int = 0
    failed: list[str] = field(default_factory=list)
    """Files that could not be deleted or rewritten, as ``path: error``."""
    file_lines: int = 0
    """Lines of the queue_log file rewritten."""
    not_rewritten: list[Path] = field(default_factory=list)
    """Rotated copies of the queue_log file compressed other than by gzip (not
    rewritten)."""
    kept: list[str] = field(default_factory=list)
    """Where a number stays on purpose, and why."""

    def as_dict(self) -> dict[str, Any]:
        """What ``POST /erasures`` answers and ``callcenter erase`` prints."""
        return {
            "erased": dict(self.tokens),
            "calls": len(self.call_ids),
            "rows": dict(self.rows),
            "recordings": len(self.recordings),
            "recording_bytes": self.recording_bytes,
            "queue_log_file_lines": self.file_lines,
            "kept": list(self.kept),
            "not_rewritten": [str(p) for p in self.not_rewritten],
            "failed": list(self.failed),
        }


def new_tokens(numbers: Iterable[str]) -> dict[str, str]:
    """A fresh token for each number."""
    return {number: f"erased-{secrets.token_hex(4)}" for number in numbers}


def erase_records(
    store: RecordStore, numbers: Sequence[str], *, dry_run: bool = False, via: str = "cli"
) -> Erasure:
    """Erase ``numbers`` from every table of ``store`` in one transaction (``dry_run``:
    count, change nothing). :class:`ErasureRefused` (nothing changed) when work still waits
    on one of them; :class:`~callcenter.errors.RecordError` when the database fails."""
    done = Erasure(tokens=new_tokens(numbers))
    pattern = number_pattern(numbers)
    with store.transaction("erase numbers from") as tx:
        holds = _holds(tx, numbers)
        if holds:
            raise ErasureRefused(holds)
        _erase_cdr(tx, done, pattern, dry_run)
        _erase_queue_log(tx, done, pattern, dry_run)
        _erase_side_tables(tx, done, numbers, dry_run)
        for table, key, columns in (
            ("audit_log", "key", ("route", "detail")),
            ("notices", "id", ("text",)),
        ):
            _erase_in_text(tx, done, pattern, dry_run, table=table, key=key, columns=columns)
        for row in _select_in(tx, "number_list_entries", "number", numbers, ("number_list",)):
            done.kept.append(
                f"on number list {row['number_list']!r}: a blocked number stays blocked "
                "(callcenter numbers remove, if the person asks for that too)"
            )
        if not dry_run:
            tx.change(
                f'INSERT INTO erasures ("at", "via", "numbers", "counts") VALUES '
                f"({tx.p}, {tx.p}, {tx.p}, {tx.p})",
                (
                    datetime.now(UTC).isoformat(timespec="microseconds"),
                    via,
                    len(numbers),
                    json.dumps(done.rows, sort_keys=True),
                ),
            )
    log.info(
        "records_erased" if not dry_run else "records_erasure_counted",
        numbers=len(numbers),
        calls=len(done.call_ids),
        **done.rows,
    )
    return done


def fetch_erasures(store: RecordStore, last: int) -> list[dict[str, Any]]:
    """The newest ``last`` rows of ``erasures``, oldest first: at (ISO, UTC), via, numbers
    (how many), counts (rows changed per table)."""
    with store.transaction("read the erasures of") as tx:
        rows = tx.rows(
            'SELECT "at", "via", "numbers", "counts" FROM erasures ORDER BY "at" DESC '
            f"LIMIT {tx.p}",
            (last,),
        )
    return [
        {
            "at": str(row["at"]),
            "via": str(row["via"]),
            "numbers": int(row["numbers"]),
            "counts": json.loads(str(row["counts"])),
        }
        for row in reversed(rows)
    ]


def _holds(tx: Transaction, numbers: Sequence[str]) -> list[str]:
    """What still waits on the numbers: each a sentence saying what to do first."""
    holds = []
    for row in _select_in(tx, "queue_callbacks", "number", numbers, ("call_id", "queue", "status")):
        if row["status"] == "waiting":
            holds.append(
                f"a callback to {row['number']} waits in queue {row['queue']!r}: cancel it "
                f"first (callcenter callback cancel {row['call_id']})"
            )
    for row in _select_in(tx, "campaign_leads", "number", numbers, ("campaign", "lead", "status")):
        if row["status"] not in ("answered", "failed", "skipped"):
            holds.append(
                f"lead {row['lead']!r} of campaign {row['campaign']!r} is still to be dialled "
                f"({row['status']}): take it out of the campaign's lead file, reload, and "
                "erase once it is skipped"
            )
    for row in _select_in(tx, "added_leads", "number", numbers, ("campaign", "lead")):
        tried = tx.rows(
            f'SELECT "status" FROM campaign_leads WHERE "campaign" = {tx.p} AND "lead" = {tx.p}',
            [row["campaign"], row["lead"]],
        )
        if not any(t["status"] in ("answered", "failed", "skipped") for t in tried):
            holds.append(
                f"lead {row['lead']!r} added to campaign {row['campaign']!r} while it ran is "
                "still to be dialled: erase once it was tried (or put the number on the "
                "campaign's do-not-call list and reload: it is skipped)"
            )
    voicemails = _select_in(tx, "voicemails", "number", numbers, ("call_id", "queue", "status"))
    for row in voicemails:
        if row["status"] in ("waiting", "taken"):
            holds.append(
                f"a voicemail message of {row['number']} waits in queue {row['queue']!r}: "
                "call back or mark it done first (an agent's desktop, or callcenter "
                f"voicemail done {row['call_id']} --agent <who dealt with it>)"
            )
    for row in _select_in(tx, "agent_presence", "owed_number", numbers, ("agent",)):
        holds.append(
            f"agent {row['agent']} still owes a disposition for a call with "
            f"{row['owed_number']}: erase once it is given"
        )
    return holds


def _select_in(
    tx: Transaction, table: str, column: str, values: Iterable[str], more: Sequence[str]
) -> Iterator[Mapping[str, Any]]:
    names = ", ".join(f'"{c}"' for c in (column, *more))
    for chunk in _chunks(values):
        marks = ", ".join([tx.p] * len(chunk))
        yield from tx.rows(f'SELECT {names} FROM {table} WHERE "{column}" IN ({marks})', chunk)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(values))
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _like_any(tx: Transaction, columns: Sequence[str], count: int) -> str:
    """SQL: any of ``columns`` contains any of ``count`` numbers (refined in Python)."""
    return " OR ".join(f'"{c}" LIKE {tx.p}' for c in columns for _ in range(count))


def _likes(columns: Sequence[str], numbers: Sequence[str]) -> list[str]:
    return [f"%{n}%" for _ in columns for n in numbers]


def _erase_cdr(tx: Transaction, done: Erasure, pattern: re.Pattern[str], dry_run: bool) -> None:
    numbers = list(done.tokens)
    columns = (*_CDR_TEXT, "ivr_variables")
    names = ", ".join(f'"{c}"' for c in ("uniqueid", *columns, "recordingfile", "voicemail"))
    rows = tx.rows(
        f"SELECT {names} FROM cdr WHERE {_like_any(tx, columns, len(numbers))}",
        _likes(columns, numbers),
    )
    changed = 0
    for row in rows:
        if not any(pattern.search(str(row[c])) for c in columns):
            continue
        done.call_ids.add(row["uniqueid"])
        for file in (row["recordingfile"], row["voicemail"]):
            if file:
                done.recordings.append(Path(file))
        values = {c: _substitute(pattern, done.tokens, str(row[c])) for c in _CDR_TEXT}
        if pattern.search(str(row["clid"])):
            values["clid"] = f'"" <{_substitute(pattern, done.tokens, str(row["src"]))}>'
        values["ivr_variables"] = _kept_variables(str(row["ivr_variables"]))
        changed += 1
        if not dry_run:
            sets = ", ".join(f'"{c}" = {tx.p}' for c in values)
            tx.change(
                f"UPDATE cdr SET {sets} WHERE uniqueid = {tx.p}",
                [*values.values(), row["uniqueid"]],
            )
    done.rows["cdr"] = changed


def _erase_queue_log(
    tx: Transaction, done: Erasure, pattern: re.Pattern[str], dry_run: bool
) -> None:
    numbers = list(done.tokens)
    names = ", ".join(f'"{c}"' for c in ("id", "callid", *QUEUE_LOG_DATA))
    found: dict[int, Mapping[str, Any]] = {}
    for chunk in _chunks(done.call_ids):
        marks = ", ".join([tx.p] * len(chunk))
        for row in tx.rows(f"SELECT {names} FROM queue_log WHERE callid IN ({marks})", chunk):
            found[row["id"]] = row
    likes = _like_any(tx, QUEUE_LOG_DATA, len(numbers))
    for row in tx.rows(
        f"SELECT {names} FROM queue_log WHERE {likes}", _likes(QUEUE_LOG_DATA, numbers)
    ):
        found[row["id"]] = row
    changed = 0
    for row_id, row in sorted(found.items()):
        values = {c: _substitute(pattern, done.tokens, str(row[c])) for c in QUEUE_LOG_DATA}
        if all(values[c] == row[c] for c in QUEUE_LOG_DATA):
            continue
        changed += 1
        if not dry_run:
            sets = ", ".join(f'"{c}" = {tx.p}' for c in values)
            tx.change(f"UPDATE queue_log SET {sets} WHERE id = {tx.p}", [*values.values(), row_id])
    done.rows["queue_log"] = changed


def _erase_in_text(
    tx: Transaction,
    done: Erasure,
    pattern: re.Pattern[str],
    dry_run: bool,
    *,
    table: str,
    key: str,
    columns: tuple[str, ...],
) -> None:
    """The number in free text: ``table``'s ``columns`` (rows keyed by ``key``) get its
    token. The audit trail hides a person's values already, but a route can still name
    one (a lead whose id is their number); a notice is what a supervisor typed ("call
    0612345678 back")."""
    numbers = list(done.tokens)
    likes = _like_any(tx, columns, len(numbers))
    names = ", ".join(f'"{c}"' for c in (key, *columns))
    rows = tx.rows(f"SELECT {names} FROM {table} WHERE {likes}", _likes(columns, numbers))
    changed = 0
    for row in rows:
        values = {c: _substitute(pattern, done.tokens, str(row[c])) for c in columns}
        if all(values[c] == row[c] for c in columns):
            continue
        changed += 1
        if not dry_run:
            sets = ", ".join(f'"{c}" = {tx.p}' for c in columns)
            tx.change(
                f'UPDATE {table} SET {sets} WHERE "{key}" = {tx.p}', [*values.values(), row[key]]
            )
    done.rows[table] = changed


def _erase_side_tables(
    tx: Transaction, done: Erasure, numbers: Sequence[str], dry_run: bool
) -> None:
    """The tables keyed by call (dispositions, surveys, voicemail messages) and by number
    (callback requests, kept places, finished leads)."""
    for table, extra, cleared in (
        ("dispositions", ', "do_not_call"', {"note": ""}),
        ("surveys", "", {}),
    ):
        rows: dict[str, Mapping[str, Any]] = {}
        for chunk in _chunks(done.call_ids):
            marks = ", ".join([tx.p] * len(chunk))
            sql = f'SELECT "call_id", "number"{extra} FROM {table} WHERE "call_id" IN ({marks})'
            rows.update((row["call_id"], row) for row in tx.rows(sql, chunk))
        more: tuple[str, ...] = ("call_id", "do_not_call") if extra else ("call_id",)
        for row in _select_in(tx, table, "number", numbers, more):
            rows[row["call_id"]] = row
        # A do-not-call request keeps its number: campaigns read them back, and forgetting
        # the number would have the person called again.
        asked_not = [row for row in rows.values() if extra and row["do_not_call"]]
        others = [row for row in rows.values() if not (extra and row["do_not_call"])]
        for row in asked_not:
            done.kept.append(
                f"in the do-not-call disposition of call {row['call_id']}: no campaign may "
                "call the number again (its note is erased)"
            )
        by_call = ("call_id",)
        _update(
            tx, done, table, by_call, others, cleared=cleared, columns=("number",), dry_run=dry_run
        )
        if asked_not:
            _update(
                tx, done, table, by_call, asked_not, cleared=cleared, columns=(), dry_run=dry_run
            )
    # A scorecard's comment and the agent's answer to it are free text about the call (they
    # may quote the caller): they go as the disposition notes do; the scores stay.
    scorecards: list[Mapping[str, Any]] = []
    for chunk in _chunks(done.call_ids):
        marks = ", ".join([tx.p] * len(chunk))
        sql = f'SELECT "call_id", "supervisor" FROM evaluations WHERE "call_id" IN ({marks})'
        scorecards += tx.rows(sql, chunk)
    _update(
        tx,
        done,
        "evaluations",
        ("call_id", "supervisor"),
        scorecards,
        cleared={"comment": "", "reply_note": ""},
        columns=(),
        dry_run=dry_run,
    )
    callbacks = list(_select_in(tx, "callbacks", "number", numbers, ("call_id", "caller_num")))
    callbacks += _select_in(tx, "callbacks", "caller_num", numbers, ("call_id", "number"))
    columns = ("number", "caller_num")
    _update(
        tx,
        done,
        "callbacks",
        ("call_id", "number"),
        callbacks,
        cleared={},
        columns=columns,
        dry_run=dry_run,
    )
    places = _select_in(tx, "queue_callbacks", "number", numbers, ("call_id",))
    cleared = {"data": "{}"}
    _update(
        tx,
        done,
        "queue_callbacks",
        ("call_id",),
        places,
        cleared=cleared,
        columns=("number",),
        dry_run=dry_run,
    )
    messages: dict[str, Mapping[str, Any]] = {}
    for chunk in _chunks(done.call_ids):
        marks = ", ".join([tx.p] * len(chunk))
        sql = f'SELECT "call_id", "number", "path" FROM voicemails WHERE "call_id" IN ({marks})'
        messages.update((row["call_id"], row) for row in tx.rows(sql, chunk))
    for row in _select_in(tx, "voicemails", "number", numbers, ("call_id", "path")):
        messages[row["call_id"]] = row
    for row in messages.values():
        done.recordings.append(Path(row["path"]))
    _update(
        tx,
        done,
        "voicemails",
        ("call_id",),
        list(messages.values()),
        cleared={"name": ""},
        columns=("number",),
        dry_run=dry_run,
    )
    leads = list(_select_in(tx, "campaign_leads", "number", numbers, ("campaign", "lead")))
    for lead in leads:
        done.kept.append(
            f"in the lead file of campaign {lead['campaign']!r} (lead {lead['lead']!r}, "
            "tried already): the file is yours, take the number out of it"
        )
    by_lead = ("campaign", "lead")
    _update(
        tx, done, "campaign_leads", by_lead, leads, cleared={}, columns=("number",), dry_run=dry_run
    )
    added = list(_select_in(tx, "added_leads", "number", numbers, ("campaign", "lead")))
    _update(
        tx,
        done,
        "added_leads",
        by_lead,
        added,
        cleared={"data": "{}"},
        columns=("number",),
        dry_run=dry_run,
    )


def _update(
    tx: Transaction,
    done: Erasure,
    table: str,
    keys: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    cleared: Mapping[str, str],
    columns: Sequence[str],
    dry_run: bool,
) -> None:
    """In each row (found by its ``keys``' values), substitute the numbers in ``columns``
    and set ``cleared``."""
    pattern = number_pattern(done.tokens)
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        ident = tuple(row[k] for k in keys)
        if ident in seen:
            continue
        seen.add(ident)
        if dry_run:
            continue
        values = {c: _substitute(pattern, done.tokens, str(row[c])) for c in columns}
        values.update(cleared)
        sets = ", ".join(f'"{c}" = {tx.p}' for c in values)
        where = " AND ".join(f'"{k}" = {tx.p}' for k in keys)
        tx.change(f"UPDATE {table} SET {sets} WHERE {where}", [*values.values(), *ident])
    done.rows[table] = done.rows.get(table, 0) + len(seen)


def _substitute(pattern: re.Pattern[str], tokens: Mapping[str, str], text: str) -> str:
    return pattern.sub(lambda match: tokens[match.group(0)], text)


def _kept_variables(text: str) -> str:
    try:
        variables = json.loads(text)
    except ValueError:
        return "{}"
    if not isinstance(variables, dict):
        return "{}"
    kept = {k: v for k, v in variables.items() if k in KEPT_VARIABLES}
    return json.dumps(kept, ensure_ascii=False)


# -- files -------------------------------------------------------------------------------


def erase_files(
    done: Erasure, recordings_folder: Path, queue_log_file: Path | None, *, dry_run: bool
) -> None:
    """After :func:`erase_records`: the recordings of the calls, and the queue_log file
    (blocking)."""
    erase_recordings(done, recordings_folder, dry_run=dry_run)
    if queue_log_file is not None:
        erase_queue_log_file(done, queue_log_file, dry_run=dry_run)


def erase_recordings(done: Erasure, folder: Path, *, dry_run: bool = False) -> None:
    """Delete the recordings of ``done``'s calls: the files the CDRs name and any file the
    daemon named for one of the calls in ``folder``'s queue sub-folders (blocking)."""
    found: dict[Path, None] = {}
    for path in done.recordings:
        found[path] = None
    if done.call_ids:
        try:
            queues = [e for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            queues = []
        for queue in queues:
            for entry in os.scandir(queue.path):
                match = RECORDING_NAME.fullmatch(entry.name)
                if match is None:
                    continue
                stem = entry.name[len(match["stamp"]) + 1 : entry.name.rindex(".")]
                if stem in done.call_ids:
                    found[Path(entry.path)] = None
    done.recordings = []
    for path in found:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        except OSError as exc:
            done.failed.append(f"{path}: {exc.strerror or exc}")
            continue
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                done.failed.append(f"{path}: {exc.strerror or exc}")
                continue
        done.recordings.append(path)
        done.recording_bytes += size


def erase_queue_log_file(done: Erasure, path: Path, *, dry_run: bool = False) -> None:
    """Rewrite the lines of the queue_log file ``path`` that hold one of ``done``'s numbers:
    the file in place, under the appends' lock; its rotated copies (``queue_log.1``,
    ``queue_log.2.gz``, ``queue_log-20261201``: nobody appends to them) by a new file put
    in their place. A copy compressed other than by gzip is listed in ``not_rewritten``
    (blocking)."""
    pattern = number_pattern(done.tokens)
    try:
        handle = path.open("r+", encoding="utf-8", newline="")
    except FileNotFoundError:
        handle = None
    except OSError as exc:
        done.failed.append(f"{path}: {exc.strerror or exc}")
        handle = None
    if handle is not None:
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            text, changed = _erase_lines(handle.read(), pattern, done.tokens)
            done.file_lines += changed
            if changed and not dry_run:
                handle.seek(0)
                handle.write(text)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
    for copy in _rotated_copies(path):
        if copy.suffix in _OTHER_COMPRESSIONS:
            done.not_rewritten.append(copy)
            continue
        try:
            _erase_rotated(done, copy, pattern, dry_run)
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            done.failed.append(f"{copy}: {getattr(exc, 'strerror', None) or exc}")


_OTHER_COMPRESSIONS: Final = frozenset({".bz2", ".xz", ".zst", ".lz4", ".lzma", ".Z"})


def _rotated_copies(path: Path) -> list[Path]:
    """logrotate's copies of ``path`` beside it (numbered or dated, compressed or not); not
    the daemon's own ``.pos`` files."""
    if not path.parent.is_dir():
        return []
    copies = {*path.parent.glob(f"{path.name}.*"), *path.parent.glob(f"{path.name}-*")}
    own = (f"{path.name}.pos", f"{path.name}.pos.tmp", f"{path.name}.erasing")
    return sorted(c for c in copies if c.is_file() and c.name not in own)


def _erase_rotated(done: Erasure, copy: Path, pattern: re.Pattern[str], dry_run: bool) -> None:
    packed = copy.suffix == ".gz"
    raw = copy.read_bytes()
    text, changed = _erase_lines(
        (gzip.decompress(raw) if packed else raw).decode("utf-8"), pattern, done.tokens
    )
    done.file_lines += changed
    if not changed or dry_run:
        return
    data = text.encode("utf-8")
    spare = copy.with_name(copy.name + ".erasing")
    spare.write_bytes(gzip.compress(data) if packed else data)
    shutil.copymode(copy, spare)
    with spare.open("rb") as written:
        os.fsync(written.fileno())
    spare.replace(copy)


def _erase_lines(text: str, pattern: re.Pattern[str], tokens: Mapping[str, str]) -> tuple[str, int]:
    """``text`` (queue_log lines) with the numbers in the data fields replaced; how many
    lines changed."""
    out = []
    changed = 0
    for line in text.splitlines(keepends=True):
        new = line
        if pattern.search(line):
            fields = line.split("|")
            new = "|".join([*fields[:5], *(_substitute(pattern, tokens, d) for d in fields[5:])])
        changed += new != line
        out.append(new)
    return "".join(out), changed
