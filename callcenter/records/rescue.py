"""Records the database would not take by the time the daemon stops, kept for the next start.

The record writer retries a write that fails (disk full, I/O error) for as long as the
daemon runs. When the daemon stops, what is still unwritten after the flush timeout would be
lost with the process: the CDRs of the last calls, the shifts of agents who logged out, the
callbacks promised. :class:`RecordRescue` keeps them instead, in a JSON-lines file
(appended to, synced), and the next daemon on that database writes them before it takes
calls (:meth:`RecordRescue.replay`), then deletes the file. Every write is idempotent (see
:mod:`callcenter.records.store`), so a record both in the database and in a file is stored
once.

Where: beside the database (``<database>.unwritten.jsonl``), or, when that file system is
the full one, in a spare folder on another: systemd's ``$RUNTIME_DIRECTORY`` (a tmpfs under
``/run``; the shipped unit keeps it across restarts), as
``<database name>-<hash of its path>.unwritten.jsonl``. A file only partly written is cut
back to what it held. The next start reads both places.

Each line is one store write, in the order the writer had them::

    {"key": "cdr:1712.4", "op": "write_cdr", "args": [{"$record": "CdrRecord", ...}], "kwargs": {}}

Datetimes are ``{"$datetime": ISO 8601}``, tuples ``{"$tuple": [...]}``; ``op`` is one of
:data:`REPLAYABLE`. When no place takes them, the daemon logs each line in full
(``record_unwritten``) as the last place left: pasted into the file beside the database,
they are written at the next start like the others.

A line that cannot be read back (an edit gone wrong) is reported as file:line; the whole
file is then moved aside (``.rejected-<time>``) once the good lines are written, so that it
is neither replayed again nor lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import structlog

from callcenter.errors import RecordError
from callcenter.outbound.campaign import LeadRecord
from callcenter.records.audit import AuditEntry
from callcenter.records.callbacks import QueueCallback
from callcenter.records.campaigns import AddedLead
from callcenter.records.cdr import CallbackRecord, CdrRecord
from callcenter.records.desks import SupervisorDesk
from callcenter.records.dispositions import DispositionRecord
from callcenter.records.members import MemberState
from callcenter.records.number_lists import NumberListEntry
from callcenter.records.queue_log import QueueLogEntry
from callcenter.records.roster import AddedAgent, AddedQueue
from callcenter.records.schedule_changes import ScheduleChange, ScheduleRequest
from callcenter.records.shifts import (
    AgentPause,
    AgentPresence,
    AgentSession,
    AgentWrapup,
    OwedCode,
)
from callcenter.records.skills import SkillsState
from callcenter.records.surveys import SurveyRecord
from callcenter.records.switches import SwitchState
from callcenter.records.voicemails import VoicemailMessage

log = structlog.get_logger(__name__)

SUFFIX: Final = ".unwritten.jsonl"

#: The store writes a rescue file may hold (the store's idempotent write methods).
REPLAYABLE: Final = frozenset(
    {
        "write_cdr",
        "write_callback",
        "write_agent_session",
        "write_agent_pause",
        "write_agent_wrapup",
        "write_switch",
        "write_member_change",
        "clear_member_change",
        "write_agent_skills",
        "clear_agent_skills",
        "write_added_agent",
        "clear_added_agent",
        "write_added_queue",
        "write_added_lead",
        "clear_added_queue",
        "write_schedule_change",
        "write_schedule_request",
        "clear_schedule_change",
        "write_agent_presence",
        "clear_agent_presence",
        "write_queue_callback",
        "update_queue_callback",
        "write_queue_log",
        "write_campaign_lead",
        "write_disposition",
        "write_number_list_entry",
        "write_supervisor_desk",
        "clear_supervisor_desk",
        "clear_number_list_entry",
        "write_survey",
        "write_voicemail",
        "write_audit",
    }
)

_RECORDS: Final[dict[str, type[Any]]] = {
    cls.__name__: cls
    for cls in (
        CdrRecord,
        CallbackRecord,
        AgentSession,
        AgentPause,
        AgentPresence,
        AgentWrapup,
        OwedCode,
        SwitchState,
        MemberState,
        SkillsState,
        AddedAgent,
        AddedQueue,
        AddedLead,
        ScheduleChange,
        ScheduleRequest,
        QueueCallback,
        QueueLogEntry,
        LeadRecord,
        DispositionRecord,
        SurveyRecord,
        VoicemailMessage,
        NumberListEntry,
        SupervisorDesk,
        AuditEntry,
    )
}


def rescue_path(database: str | os.PathLike[str]) -> Path:
    """Where the records ``database`` would not take are kept first: beside it."""
    return Path(f"{os.fspath(database)}{SUFFIX}")


def spare_path(database: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Where they are kept in the spare ``folder`` (named so that the databases of several
    daemons sharing the folder do not meet)."""
    path = Path(database).absolute()
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    return Path(folder) / f"{path.name}-{digest}{SUFFIX}"


@dataclass(frozen=True, slots=True)
class Replayed:
    """What :meth:`RecordRescue.replay` did."""

    written: int = 0
    """Lines written to the database."""
    rejected: tuple[str, ...] = ()
    """The lines that could not be read back, as ``file:line``."""
    moved_to: tuple[Path, ...] = ()
    """Where files with rejected lines went."""
    files: tuple[Path, ...] = ()
    """The files read."""


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
    """The rescue files of one record database and the store that replays them (blocking
    methods: the record writer runs them in its thread)."""

    def __init__(
        self,
        database: str | os.PathLike[str],
        store: object,
        *,
        spare_folder: str | os.PathLike[str] | None = None,
    ) -> None:
        self.paths: tuple[Path, ...] = (rescue_path(database),)
        if spare_folder:
            self.paths += (spare_path(database, spare_folder),)
        self.store = store

    def __repr__(self) -> str:
        return f"RecordRescue({', '.join(str(p) for p in self.paths)})"

    @staticmethod
    def line(key: str, write: Callable[[], object]) -> str:
        """The rescue line of one writer job (see :func:`encode_write`)."""
        return encode_write(key, write)

    def waiting(self) -> list[Path]:
        """The rescue files there are now."""
        return [path for path in self.paths if path.exists()]

    def keep(self, jobs: Sequence[tuple[str, Callable[[], object]]]) -> Path:
        """Append ``jobs`` (writer key, store write) to the first file that takes them all,
        synced; returns it.

        Raises OSError when no place takes them (the last error), and TypeError for a job
        that is not a replayable store write (nothing written then).
        """
        text = "".join(f"{encode_write(key, write)}\n" for key, write in jobs).encode()
        error: OSError | None = None
        for path in self.paths:
            try:
                _append(path, text)
            except OSError as exc:
                log.warning("rescue_file_refused", file=str(path), error=str(exc))
                error = exc
                continue
            return path
        assert error is not None
        raise error

    def replay(self) -> Replayed:
        """Write what the files hold to the store, then delete them.

        Raises RecordError when the store still refuses a write (the files stay, whole,
        for a later try). Lines that cannot be read back are skipped and reported; their
        file is then moved aside rather than deleted.
        """
        written = 0
        rejected: list[str] = []
        moved: list[Path] = []
        files: list[Path] = []
        for path in self.paths:
            found, count, bad, moved_to = self._replay_file(path)
            if found:
                files.append(path)
            written += count
            rejected += [f"{path}:{number}" for number in bad]
            if moved_to is not None:
                moved.append(moved_to)
        return Replayed(
            written=written, rejected=tuple(rejected), moved_to=tuple(moved), files=tuple(files)
        )

    def _replay_file(self, path: Path) -> tuple[bool, int, list[int], Path | None]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False, 0, [], None
        except OSError as exc:
            raise RecordError(f"cannot read {path}: {exc}") from exc
        writes: list[tuple[str, str, list[Any], dict[str, Any]]] = []
        rejected: list[int] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                writes.append(decode_write(line))
            except (ValueError, TypeError) as exc:
                log.error("rescued_record_unreadable", file=f"{path}:{number}", error=str(exc))
                rejected.append(number)
        for _key, op, args, kwargs in writes:
            getattr(self.store, op)(*args, **kwargs)
        moved_to: Path | None = None
        try:
            if rejected:
                stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
                moved_to = path.with_name(f"{path.name}.rejected-{stamp}")
                path.rename(moved_to)
            else:
                path.unlink()
        except OSError as exc:
            # Written already; replaying the file again later is harmless (idempotent).
            log.warning("rescue_file_not_removed", file=str(path), error=str(exc))
        return True, len(writes), rejected, moved_to


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and sync it, all or nothing: a file the disk fills midway
    is cut back to what it held. The folder is made if need be (with PostgreSQL records
    nothing else made it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                if size == 0:
                    os.unlink(path)
            raise
    finally:
        os.close(fd)
