"""Shared test set-up: every test starts from structlog's defaults.

Some tests configure logging the way the CLI does (the demo at warning level, the daemon at
the config's level). structlog's configuration is global, so without this a test that reads
info events with ``capture_logs`` would pass or fail depending on which tests ran before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
