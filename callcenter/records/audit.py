"""The audit trail: who did what through the control API and the desktops, kept in the
``audit_log`` table, read back by ``callcenter report --audit`` and ``GET /audit``.

One row for every change asked for (each POST: the CLI's, a CRM's, a desktop's button, a
sign-in, the refused ones too) and every read of a person's voice or history (a call's
recording, a voicemail message, a number's calls): when (UTC), who (an ``api.tokens``
name, ``token`` for ``api.token``, ``agent:1001`` or ``supervisor:2000`` on a desktop,
``local`` when the API needs no token, ``unknown`` for a token it refused), from where
(the client's address), the method and route, the status answered, and what was asked
(the JSON body, the form or the query) with the values that are secrets or a person's
data hidden (:data:`HIDDEN`). Rows go through the record writer like every record (a full
disk keeps them in the rescue file), are kept as long as the others
(``records.keep_days``) and a caller's erasure reaches them.
"""

from __future__ import annotations

import functools
import itertools
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from callcenter.records.writer import RecordWriter

HIDDEN: Final = frozenset(
    {
        "pin",
        "token",
        "secret",
        "password",
        "number",
        "numbers",
        "to",
        "data",
        "note",
        "comment",
        "reply_note",
        "caller_name",
    }
)
"""Fields whose values the trail never keeps: secrets, and a person's number or words."""
MAX_VALUE: Final = 200
"""Characters of one value kept (longer ones are cut, ``…`` added)."""
MAX_DETAIL: Final = 2000
"""Characters of one row's detail kept."""
MASK: Final = "***"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One request: ``who`` from ``peer`` asked ``method route`` and was answered
    ``status``; ``detail`` is what they sent, as JSON, personal values hidden."""

    key: str
    at: datetime
    who: str
    peer: str
    method: str
    route: str
    status: int
    detail: str = "{}"

    def view(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "who": self.who,
            "peer": self.peer,
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "detail": json.loads(self.detail or "{}"),
        }


def hidden(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as the trail keeps them: :data:`HIDDEN` values masked (nested ones too),
    long texts cut."""
    kept: dict[str, Any] = {}
    for name, value in fields.items():
        if str(name).lower() in HIDDEN and value not in (None, "", [], {}):
            kept[str(name)] = MASK
        elif isinstance(value, Mapping):
            kept[str(name)] = hidden(value)
        elif isinstance(value, str) and len(value) > MAX_VALUE:
            kept[str(name)] = value[:MAX_VALUE] + "…"
        else:
            kept[str(name)] = value
    return kept


def detail_of(body: Mapping[str, Any], form: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The JSON ``detail`` of one request: its body, form and query, personal values
    hidden, at most :data:`MAX_DETAIL` characters."""
    parts = {
        name: hidden(fields)
        for name, fields in (("body", body), ("form", form), ("query", query))
        if fields
    }
    text = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > MAX_DETAIL:
        text = json.dumps({"cut": text[:MAX_DETAIL]}, ensure_ascii=False)
    return text


class AuditStore(Protocol):
    def write_audit(self, entry: AuditEntry) -> bool: ...

    def fetch_audit_between(
        self, since: datetime, until: datetime, *, who: str | None = None
    ) -> list[AuditEntry]: ...


class AuditTrail:
    """Writes the audit rows through the record writer (never blocking a request)."""

    def __init__(
        self, store: AuditStore, writer: RecordWriter, *, reads: AuditStore | None = None
    ) -> None:
        self.store = store
        self.writer = writer
        self.reads = reads if reads is not None else store
        """The store the rows are read from (:meth:`RecordWriter.read`)."""
        self._seq = itertools.count(1)
        self._run = secrets.token_hex(3)
        """Keys stay unique across daemons writing to one database."""

    def record(
        self,
        *,
        who: str,
        peer: str,
        method: str,
        route: str,
        status: int,
        detail: str = "{}",
    ) -> AuditEntry:
        """Keep one request's row (written by the record writer's thread)."""
        at = datetime.now(UTC)
        key = f"{at:%Y%m%d%H%M%S}-{self._run}-{next(self._seq)}"
        entry = AuditEntry(key, at, who, peer, method, route, status, detail)
        self.writer.submit(f"audit:{key}", functools.partial(self.store.write_audit, entry))
        return entry

    def reader(self) -> Callable[[datetime, datetime, str | None], Awaitable[list[AuditEntry]]]:
        """The rows of a stretch of time (of ``who`` only when given), read on the records'
        reading thread."""

        async def read(since: datetime, until: datetime, who: str | None) -> list[AuditEntry]:
            fetch = functools.partial(self.reads.fetch_audit_between, since, until, who=who)
            return await self.writer.read(fetch)

        return read
