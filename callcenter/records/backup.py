"""The files a backup of the records needs beside the database: call recordings, voicemail
messages and the queue_log file (``callcenter backup --files DIR``).

The record database names these files (a CDR's ``recordingfile``, a message's path), so a
copy of the database alone restores rows whose sound is gone. :func:`copy_files` copies
each folder into ``DIR`` under a name of its own (``recordings/``, ``voicemail/``,
``queue_log``), keeping the sub-folders. It is incremental, as a nightly job wants: a file
already in ``DIR`` with the same size and modification time is left as it is, so the
second night copies only the day's new files. Each file is written to ``<name>.part`` and
renamed once whole, so a copy cut short (a full disk) never leaves a truncated file under
the real name; a file the PBX is still writing (a call in progress) is copied as it is and
again, whole, the next time (its size changed).

Files gone from the source are not deleted from ``DIR``: retention and erasure act on
the live folders; a backup keeps what it was given until ops remove it.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.errors import RecordError

PART: str = ".part"


@dataclass(slots=True)
class FolderCopy:
    """What :func:`copy_folder` did with one folder."""

    name: str
    """Its name in the backup (``recordings``, ``voicemail``, ``queue_log``)."""
    source: Path
    copied: int = 0
    copied_bytes: int = 0
    unchanged: int = 0
    missing: bool = False
    """The source is not on this machine (the PBX's folder, not mounted here; or nothing
    was ever written there)."""
    failed: list[str] = field(default_factory=list)
    """``path: why`` of each file that could not be copied."""


def copy_folder(name: str, source: Path, into: Path) -> FolderCopy:
    """Copy ``source`` (a folder, or one file) to ``into / name`` (see the module doc).
    A file that cannot be read or written is listed in ``failed`` and the others go on;
    a full disk stops the copy (the rest could not be written either): RecordError."""
    done = FolderCopy(name, source)
    if not source.exists():
        done.missing = True
        return done
    if source.is_dir() and into.resolve().is_relative_to(source.resolve()):
        raise RecordError(f"{into} is inside {source}: back its files up somewhere else")
    target = into / name
    for path in _files(source):
        relative = path.relative_to(source) if source.is_dir() else Path()
        copy = target / relative if relative.parts else target
        try:
            stat = path.stat()
            if _same(copy, stat):
                done.unchanged += 1
                continue
            _copy(path, copy, stat)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise RecordError(
                    f"{into} is full: {done.copied} file(s) of {source} copied before it "
                    f"filled up ({exc.strerror})"
                ) from exc
            done.failed.append(f"{path}: {exc.strerror or exc}")
            continue
        done.copied += 1
        done.copied_bytes += stat.st_size
    return done


def _files(source: Path) -> Iterator[Path]:
    """The regular files of ``source`` (itself when it is one), in a stable order; the
    ``.part`` files of a copy into a folder under ``source`` are not taken."""
    if source.is_file():
        yield source
        return
    for folder, dirs, files in os.walk(source):
        dirs.sort()
        for file in sorted(files):
            path = Path(folder) / file
            if not file.endswith(PART) and path.is_file():
                yield path


def _same(copy: Path, stat: os.stat_result) -> bool:
    try:
        there = copy.stat()
    except FileNotFoundError:
        return False
    return there.st_size == stat.st_size and int(there.st_mtime) == int(stat.st_mtime)


def _copy(path: Path, copy: Path, stat: os.stat_result) -> None:
    copy.parent.mkdir(parents=True, exist_ok=True)
    part = copy.with_name(copy.name + PART)
    try:
        shutil.copyfile(path, part)
        os.utime(part, (stat.st_atime, stat.st_mtime))
        part.replace(copy)
    except OSError:
        part.unlink(missing_ok=True)
        raise


__all__ = ["FolderCopy", "copy_folder"]
