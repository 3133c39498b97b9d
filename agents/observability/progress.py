"""The live line a busy worker writes to its log every few seconds, so a person running it in
a terminal sees it working: rate, lag, event time, and what it has emitted since the last
line. Nothing is written while the worker is idle."""

from __future__ import annotations

import logging
from collections import Counter

from agents.observability.stats import WorkerStats
from pipeline.timeutil import format_time

__all__ = ["ProgressLog"]

log = logging.getLogger("agents.worker")


class ProgressLog:
    def __init__(self, stats: WorkerStats, interval_s: float) -> None:
        self.stats = stats
        self.interval_s = interval_s
        self._at: float | None = None
        self._applied = 0
        self._dead = 0
        self._outputs: Counter[str] = Counter()

    def due(self, now: float) -> bool:
        """Whether :meth:`tick` may write a line now (so the caller gathers its figures only
        then)."""
        return self._at is None or now - self._at >= self.interval_s

    def tick(self, now: float, lag: int, event_time: int | None) -> str | None:
        """Log (and return) a line if ``interval_s`` has passed since the last one and the
        worker has applied something since; ``now``: monotonic seconds."""
        if self._at is None:
            self._at = now
            return None
        elapsed = now - self._at
        if elapsed < self.interval_s:
            return None
        stats = self.stats
        applied, dead = stats.applied, stats.dead_letters
        if applied == self._applied and dead == self._dead:
            self._at = now
            return None
        outputs = stats.outputs - self._outputs
        done = applied - self._applied
        line = (f"applied {done:,} records ({done / elapsed:,.0f}/s), lag {lag:,} records"
                + (f", event time {format_time(event_time)}" if event_time is not None else "")
                + f"; {outputs['alerts']:,} alerts, {outputs['limit-adjustments']:,} limit "
                f"adjustments, {dead - self._dead:,} dead letters")
        log.info("%s", line)
        self._at, self._applied, self._dead = now, applied, dead
        self._outputs = Counter(stats.outputs)
        return line
