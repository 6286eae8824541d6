"""structlog set-up: one key-value event per line, JSON in production, pretty in a terminal.

Logging never takes a call down: a line that cannot be written (the log file's disk is
full, the reader of the pipe is gone, the stream was closed) is counted and dropped, not
raised into the code that logged it. Once lines can be written again, one line says how
many were lost (``log_lines_lost``).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]


class SteadyPrinter:
    """The structlog logger every bound logger writes through: one line per event, flushed,
    under a lock; a write that fails is counted in :attr:`lost` instead of raised."""

    def __init__(self, file: TextIO, *, json_lines: bool) -> None:
        self._file = file
        self._json = json_lines
        self._lock = threading.Lock()
        self.lost = 0
        """Lines dropped since the last one that could be written."""
        self._error = ""

    def __repr__(self) -> str:
        return f"SteadyPrinter({self._file!r})"

    def msg(self, message: str) -> None:
        with self._lock:
            try:
                if self.lost:
                    self._file.write(self._gap() + "\n")
                    self.lost = 0
                self._file.write(message + "\n")
                self._file.flush()
            except (OSError, ValueError) as exc:
                self.lost += 1
                self._error = str(exc)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def _gap(self) -> str:
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if self._json:
            line = {"count": self.lost, "error": self._error, "event": "log_lines_lost"}
            return json.dumps({**line, "level": "warning", "timestamp": at})
        return f"{at} [warning  ] log_lines_lost count={self.lost} error={self._error!r}"


class _SharedPrinter:
    """A structlog logger factory that hands out one :class:`SteadyPrinter`."""

    def __init__(self, printer: SteadyPrinter) -> None:
        self._printer = printer

    def __call__(self, *args: object) -> SteadyPrinter:
        return self._printer


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog (and stdlib logging, for libraries) once per process.

    ``auto`` picks a coloured console renderer when ``stream`` is a terminal and JSON lines
    otherwise. Secrets never reach the log: the config keeps them as ``SecretStr``.
    """
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelNamesMapping()[level.upper()]
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One printer for every logger: the default factory builds one per bind, and the
        # daemon binds a call's ids several times per call.
        logger_factory=_SharedPrinter(SteadyPrinter(out, json_lines=use_json)),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric, stream=out, format="%(levelname)s %(name)s %(message)s")
