"""A call recording in the demo PBXs (Asterisk ``MixMonitor``, FreeSWITCH ``uuid_record``).

The file is written when the recording stops: a steady tone where the call was recorded
and silence where the recording was muted (``MixMonitorMute``, ``uuid_record ... mask``),
so that a test reads back from the file what a quality manager would hear.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

AUDIBLE: Final = 1000
"""The sample value of recorded (not muted) audio: 16-bit signed, little-endian."""


@dataclass(slots=True)
class Recording:
    """One recording running on a channel; times are the PBX's monotonic clock."""

    path: str
    started: float
    muted_since: float | None = None
    muted: list[tuple[float, float]] = field(default_factory=list)
    """Muted spans, in seconds from the start."""

    def mute(self, now: float, on: bool) -> bool:
        """Mute (``on``) or unmute from ``now``; False when it already was so."""
        if on == (self.muted_since is not None):
            return False
        if on:
            self.muted_since = now
        else:
            assert self.muted_since is not None
            self.muted.append((self.muted_since - self.started, now - self.started))
            self.muted_since = None
        return True

    def write(self, file: Path, now: float, rate: int) -> None:
        """Write the WAV file (mono, 16-bit, ``rate`` Hz) as recorded until ``now``."""
        if self.muted_since is not None:
            self.mute(now, False)
        frames = max(0, int((now - self.started) * rate))
        audio = bytearray(AUDIBLE.to_bytes(2, "little", signed=True) * frames)
        for start, end in self.muted:
            first, last = int(start * rate), min(frames, int(end * rate))
            audio[2 * first : 2 * last] = bytes(2 * max(0, last - first))
        file.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(file), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(bytes(audio))
