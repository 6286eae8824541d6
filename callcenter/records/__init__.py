"""Records: CDRs, agent shifts and pauses, written durably without blocking calls.

* :mod:`~callcenter.records.cdr`: the CDR as a pure fold over call events, and the
  :class:`CdrRecorder` bus listener;
* :mod:`~callcenter.records.shifts`: agent sessions and pauses (:class:`ShiftRecorder`);
* :mod:`~callcenter.records.writer`: the one-thread, retrying :class:`RecordWriter`;
* :mod:`~callcenter.records.rescue`: what a full disk refused until the stop, kept in a
  file beside the database for the next start;
* :mod:`~callcenter.records.store`: :class:`SqliteCdrStore`, the SQLite sink.
"""

from callcenter.records.cdr import CdrDraft, CdrRecord, CdrRecorder, finish, fold
from callcenter.records.shifts import AgentPause, AgentSession, ShiftRecorder
from callcenter.records.store import SqliteCdrStore
from callcenter.records.writer import RecordWriter

__all__ = [
    "AgentPause",
    "AgentSession",
    "CdrDraft",
    "CdrRecord",
    "CdrRecorder",
    "RecordWriter",
    "ShiftRecorder",
    "SqliteCdrStore",
    "finish",
    "fold",
]
