"""Retention of call recordings: the sound files the PBX wrote for queues with ``record:
true`` (``acd.recordings_keep_days``, ``callcenter purge --recordings``).

Recordings usually have to go sooner than the call records (a voice is personal data; a
CDR row is a line in a report), so they have their own number of days. Only files the
daemon named are touched: ``<acd.recordings_folder>/<queue>/<YYYYmmdd-HHMMSS>-<call
id>.<format>`` (:func:`callcenter.switchboard.recording_path`), aged by the UTC time in
their name (the call's start of recording), never by the file's own times, which a copy or
a restore changes. Anything else in the folder is left alone. The daemon has to see the
folder: on the PBX's host, or on a share of it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger(__name__)

RECORDING_NAME: Final = re.compile(
    r"(?P<stamp>\d{8}-\d{6})-[A-Za-z0-9._-]+\.(?:wav|gsm|wav49|WAV)", re.ASCII
)
"""A recording the daemon named: ``20261205-093000-1733390000.42.wav``."""


@dataclass(slots=True)
class RecordingsPurged:
    """What one purge of the recordings folder did (or, dry, would do)."""

    files: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    """Files that could not be deleted, as ``path: error``."""


def recorded_at(name: str) -> datetime | None:
    """When a recording named by the daemon started (UTC); None for any other name."""
    match = RECORDING_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match["stamp"], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def purge_recordings(folder: Path, before: datetime, *, dry_run: bool = False) -> RecordingsPurged:
    """Delete the recordings in ``folder``'s queue sub-folders made before ``before`` (or
    only count them: ``dry_run``). A folder that does not exist has none; a file that will
    not go is listed in ``failed`` and the rest go on (blocking: run it off the loop)."""
    done = RecordingsPurged()
    try:
        queues = [entry for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return done
    except OSError as exc:
        done.failed.append(f"{folder}: {exc}")
        return done
    for queue in queues:
        try:
            files = list(os.scandir(queue.path))
        except OSError as exc:
            done.failed.append(f"{queue.path}: {exc}")
            continue
        for entry in files:
            at = recorded_at(entry.name)
            if at is None or at >= before or not entry.is_file(follow_symlinks=False):
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size
                if not dry_run:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # gone meanwhile
            except OSError as exc:
                done.failed.append(f"{entry.path}: {exc}")
                continue
            done.files += 1
            done.bytes += size
    if done.failed:
        log.warning("recordings_not_purged", count=len(done.failed), first=done.failed[0])
    return done
