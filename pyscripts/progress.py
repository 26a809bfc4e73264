"""Progress lines for long jobs (decoding, SER scoring, training): every PROGRESS_SECONDS one log line
saying how much is done of all, the rate and the time left.

A job's stderr is its log file under utils/run.pl, so a terminal bar would never be seen there; a plain
log line is, and run.pl's console heartbeat (RUN_PL_HEARTBEAT) shows the last one of each running job.
The line's form, which that heartbeat looks for:

    LABEL: 1200 of 4000 utterances (30%), 52.1 utterances/s, 54 s left[; EXTRA]
    LABEL: 1200 utterances, 52.1 utterances/s[; EXTRA]            (total unknown)
"""
from __future__ import annotations

import logging
import time
from typing import Callable

PROGRESS_SECONDS = 60.0   # a progress line this often


def duration(seconds: float) -> str:
    """A span for people: '45 s', '12 min', '2 h 05 min'."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Logs a progress line when `every` seconds (default PROGRESS_SECONDS; 0: never) have passed since
    the last one (or the start).

    update() is cheap (one clock read) when no line is due, so it can be called for every item."""

    def __init__(self, label: str, total: int | None = None, unit: str = "utterances",
                 every: float | None = None, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total is not None and total < 0:
            raise ValueError(f"Progress {label!r}: total must be >= 0, not {total}")
        self.label, self.total, self.unit = label, total, unit
        self.every = PROGRESS_SECONDS if every is None else every   # (read here: tests shorten it)
        self.log = logger or logging.getLogger(__name__)
        self.clock = clock
        self.start = clock()
        self.next_line = self.start + self.every
        self.lines = 0

    def due(self) -> bool:
        """Whether the next update() writes a line."""
        return self.every > 0 and self.clock() >= self.next_line

    def line(self, done: int, extra: str = "") -> str:
        """The progress line for `done` items (without the logger's prefix)."""
        rate = done / max(self.clock() - self.start, 1e-9)
        rate_text = f"{rate:.1f}" if rate < 100 else f"{rate:.0f}"
        if self.total:
            left = duration((self.total - done) / rate) if rate > 0 else "unknown time"
            text = (f"{self.label}: {done} of {self.total} {self.unit} ({100 * done / self.total:.0f}%), "
                    f"{rate_text} {self.unit}/s, {left} left")
        else:
            text = f"{self.label}: {done} {self.unit}, {rate_text} {self.unit}/s"
        return f"{text}; {extra}" if extra else text

    def update(self, done: int, extra: str = "") -> bool:
        """Logs the line when one is due; returns whether it did."""
        if not self.due():
            return False
        self.log.info("%s", self.line(done, extra))
        self.next_line = self.clock() + self.every
        self.lines += 1
        return True
