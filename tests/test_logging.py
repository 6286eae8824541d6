"""Logs: one key-value event per line, and a log that cannot be written never takes a call
down (a log file on a full disk, a pipe whose reader is gone)."""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import structlog

from callcenter.log import configure_logging
from callcenter.testing import running_center


class FlakyStream(io.StringIO):
    """A log stream whose disk can fill up (ENOSPC) and be freed again."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def write(self, text: str) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)

    def isatty(self) -> bool:
        return False


def test_lines_lost_to_a_full_disk_are_counted_and_said_once_there_is_room() -> None:
    stream = FlakyStream()
    configure_logging("info", "json", stream=stream)
    log = structlog.get_logger("test")
    log.info("before", n=1)
    stream.full = True
    for n in range(3):
        log.warning("while_full", n=n)  # raises nothing into the caller
    stream.full = False
    log.info("after", n=2)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["before", "log_lines_lost", "after"]
    lost = lines[1]
    assert (lost["count"], lost["level"]) == (3, "warning")
    assert "No space left" in lost["error"]


def test_a_closed_log_stream_is_not_raised_into_the_code_that_logs() -> None:
    stream = FlakyStream()
    configure_logging("info", "console", stream=stream)
    stream.close()
    structlog.get_logger("test").error("nobody_reads_this")


async def test_calls_go_on_while_the_log_cannot_be_written(tmp_path: Path) -> None:
    stream = FlakyStream()
    configure_logging("info", "json", stream=stream)
    stream.full = True
    async with running_center(tmp_path) as center:
        center.add_phone("PJSIP/1002", answer_after=0.05)
        caller = await center.caller_talks_to_an_agent("5550001")
        row = await center.cdr(caller.uniqueid)
        await center.idle()
        stream.full = False
        structlog.get_logger("test").info("room_again")
    assert row["agent"] == "1002" and row["hung_up_by"] == "caller"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "log_lines_lost" and lines[0]["count"] > 10
