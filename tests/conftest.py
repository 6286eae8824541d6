"""Shared test set-up: every test starts from structlog's defaults.

Some tests configure logging the way the CLI does (the demo at warning level, the daemon at
the config's level). structlog's configuration is global, so without this a test that reads
info events with ``capture_logs`` would pass or fail depending on which tests ran before it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import structlog
from postgres_server import PostgresServer, running_postgres


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    structlog.reset_defaults()
    # structlog's default prints to stdout; a daemon running in the test's process (its
    # own thread or loop) would then mix its log lines into what a command printed.
    structlog.configure(logger_factory=_StderrPrinter())
    yield
    structlog.reset_defaults()


class _StderrPrinter:
    """Prints to whatever ``sys.stderr`` is when a logger is made (capsys swaps it)."""

    def __call__(self, *args: object) -> structlog.PrintLogger:
        return structlog.PrintLogger(sys.stderr)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole run (started at its first use)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on it, as a ``records.postgres`` connection string (the password
    is :data:`postgres_server.PASSWORD`, given through the environment)."""
    return postgres_server.new_database()
