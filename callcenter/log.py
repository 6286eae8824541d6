"""structlog set-up: one key-value event per line, JSON in production, pretty in a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]


class _SharedPrinter:
    """A structlog logger factory that hands out one :class:`structlog.PrintLogger`."""

    def __init__(self, printer: structlog.PrintLogger) -> None:
        self._printer = printer

    def __call__(self, *args: object) -> structlog.PrintLogger:
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
        logger_factory=_SharedPrinter(structlog.PrintLogger(file=out)),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric, stream=out, format="%(levelname)s %(name)s %(message)s")
