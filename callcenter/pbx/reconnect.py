"""Reconnection pacing shared by the PBX links (AMI, ESL)."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff(minimum: float, maximum: float) -> Iterator[float]:
    """Endless delays before each reconnection attempt: doubling from ``minimum`` up to
    ``maximum``, each jittered into its upper half so that many daemons do not retry in step.
    """
    attempt = 0
    while True:
        delay = min(maximum, minimum * (2**attempt))
        attempt += 1
        yield random.uniform(delay / 2, delay)
