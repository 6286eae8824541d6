"""Records the database would not take by the time the daemon stops, kept for the next start.

The record writer retries a write that fails (disk full, I/O error) for as long as the
daemon runs. When the daemon stops, what is still unwritten after the flush timeout would be
lost with the process: the CDRs of the last calls, the shifts of agents who logged out, the
callbacks promised. :class:`RecordRescue` keeps them instead, in a JSON-lines file beside the
database (``<database>.unwritten.jsonl``, appended to, synced), and the next daemon on that
database writes them before it takes calls (:meth:`RecordRescue.replay`), then deletes the
file. Every write is idempotent (see :mod:`callcenter.records.store`), so a record both in
the database and in the file is stored once.

Each line is one store write, in the order the writer had them::

    {"key": "cdr:1712.4", "op": "write_cdr", "args": [{"$record": "CdrRecord", ...}], "kwargs": {}}

Datetimes are ``{"$datetime": ISO 8601}``, tuples ``{"$tuple": [...]}``; ``op`` is one of
:data:`REPLAYABLE`. When the file cannot be written either (the same full disk), the daemon
logs each line in full (``record_unwritten``) as the last place left: pasted into the file,
they are written at the next start like the others.

A line that cannot be read back (a file cut short by the full disk, an edit gone wrong) is
reported by line number; the whole file is then moved aside (``.rejected-<time>``) once the
good lines are written, so that it is neither replayed again nor lost.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import structlog

from callcenter.errors import RecordError
from callcenter.records.callbacks import QueueCallback
from callcenter.records.cdr import CallbackRecord, CdrRecord
from callcenter.records.shifts import AgentPause, AgentPresence, AgentSession

log = structlog.get_logger(__name__)

SUFFIX: Final = ".unwritten.jsonl"

#: The store writes a rescue file may hold (the store's idempotent write methods).
REPLAYABLE: Final = frozenset(
    {
        "write_cdr",
        "write_callback",
        "write_agent_session",
        "write_agent_pause",
        "write_agent_presence",
        "clear_agent_presence",
        "write_queue_callback",
        "update_queue_callback",
    }
)

_RECORDS: Final[dict[str, type[Any]]] = {
    cls.__name__: cls
    for cls in (CdrRecord, CallbackRecord, AgentSession, AgentPause, AgentPresence, QueueCallback)
}


def rescue_path(database: str | os.PathLike[str]) -> Path:
    """Where the records ``database`` would not take are kept."""
    return Path(f"{os.fspath(database)}{SUFFIX}")


@dataclass(frozen=True, slots=True)
class Replayed:
    """What :meth:`RecordRescue.replay` did."""

    written: int = 0
    """Lines written to the database."""
    rejected: tuple[int, ...] = ()
    """Line numbers that could not be read back."""
    moved_to: Path | None = None
    """Where the file went when some lines were rejected."""


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _RECORDS.get(name) is not type(value):
            raise TypeError(f"{name} is not a record type")
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$record": name, **fields}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot keep a {type(value).__name__} in a rescue file")


def _decode(value: object) -> object:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$datetime" in value:
        return datetime.fromisoformat(str(value["$datetime"]))
    if "$tuple" in value:
        return tuple(_decode(v) for v in value["$tuple"])
    if "$record" in value:
        fields = dict(value)
        cls = _RECORDS.get(str(fields.pop("$record")))
        if cls is None:
            raise ValueError(f"unknown record type {value['$record']!r}")
        return cls(**{name: _decode(v) for name, v in fields.items()})
    raise ValueError(f"unexpected object {sorted(value)}")


def encode_write(key: str, write: Callable[[], object]) -> str:
    """One rescue line for the writer job ``key``; TypeError when ``write`` is not a
    ``functools.partial`` of one of the store's :data:`REPLAYABLE` methods on records."""
    if not isinstance(write, functools.partial):
        raise TypeError(f"record {key}: not a store write")
    op = getattr(write.func, "__name__", "")
    if op not in REPLAYABLE:
        raise TypeError(f"record {key}: {op or write.func!r} is not a replayable store write")
    line = {
        "key": key,
        "op": op,
        "args": [_encode(a) for a in write.args],
        "kwargs": {name: _encode(v) for name, v in write.keywords.items()},
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def decode_write(line: str) -> tuple[str, str, list[Any], dict[str, Any]]:
    """(key, op, args, kwargs) of one rescue line; ValueError when it is not one."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("not an object")
    key, op = data.get("key"), data.get("op")
    args, kwargs = data.get("args", []), data.get("kwargs", {})
    if not isinstance(key, str) or op not in REPLAYABLE:
        raise ValueError(f"no key, or op {op!r} is not one of {sorted(REPLAYABLE)}")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("args must be a list and kwargs an object")
    try:
        decoded_args = [_decode(a) for a in args]
        decoded_kwargs = {str(name): _decode(v) for name, v in kwargs.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    return key, str(op), decoded_args, decoded_kwargs


class RecordRescue:
    """The rescue file of one record database and the store that replays it (blocking
    methods: the record writer runs them in its thread)."""

    def __init__(self, database: str | os.PathLike[str], store: object) -> None:
        self.path = rescue_path(database)
        self.store = store

    def __repr__(self) -> str:
        return f"RecordRescue({str(self.path)!r})"

    @staticmethod
    def line(key: str, write: Callable[[], object]) -> str:
        """The rescue line of one writer job (see :func:`encode_write`)."""
        return encode_write(key, write)

    def keep(self, jobs: Sequence[tuple[str, Callable[[], object]]]) -> list[str]:
        """Append ``jobs`` (writer key, store write) to the file and sync it.

        Returns the lines written. Raises OSError when the file cannot take them, and
        TypeError for a job that is not a replayable store write (nothing written then).
        """
        lines = [encode_write(key, write) for key, write in jobs]
        with open(self.path, "a", encoding="utf-8") as file:
            file.write("".join(f"{line}\n" for line in lines))
            file.flush()
            os.fsync(file.fileno())
        return lines

    def replay(self) -> Replayed:
        """Write what the file holds to the store, then delete the file.

        Raises RecordError when the store still refuses a write (the file stays, whole,
        for the next start). Lines that cannot be read back are skipped and reported; the
        file is then moved aside rather than deleted.
        """
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return Replayed()
        except OSError as exc:
            raise RecordError(f"cannot read {self.path}: {exc}") from exc
        writes: list[tuple[str, str, list[Any], dict[str, Any]]] = []
        rejected: list[int] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                writes.append(decode_write(line))
            except (ValueError, TypeError) as exc:
                log.error("rescued_record_unreadable", file=f"{self.path}:{number}", error=str(exc))
                rejected.append(number)
        for _key, op, args, kwargs in writes:
            getattr(self.store, op)(*args, **kwargs)
        moved_to: Path | None = None
        try:
            if rejected:
                stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
                moved_to = self.path.with_name(f"{self.path.name}.rejected-{stamp}")
                self.path.rename(moved_to)
            else:
                self.path.unlink()
        except OSError as exc:
            # Written already; replaying the file again later is harmless (idempotent).
            log.warning("rescue_file_not_removed", file=str(self.path), error=str(exc))
        return Replayed(written=len(writes), rejected=tuple(rejected), moved_to=moved_to)
