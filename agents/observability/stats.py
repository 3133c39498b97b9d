"""A worker's running counts and distributions: plain numbers updated in the loop, read by the
metrics endpoint, the live log line and the summary printed when the worker stops.

Nothing here locks or formats: the loop pays one integer addition per record and one bucket
search per score, and whoever reads the figures turns them into metrics when asked.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHECKPOINT_BUCKETS", "LATENCY_BUCKETS", "LOOP_BUCKETS", "SCORE_BUCKETS",
           "Distribution", "WorkerStats"]

#: Upper bounds, in seconds, of the latency from a record's broker timestamp to its outputs.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0)
#: Upper bounds, in seconds, of one loop iteration.
LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Upper bounds, in seconds, of a checkpoint's time in the loop and of its write.
CHECKPOINT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Upper bounds of a purchase's fraud score (0..1).
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


class Distribution:
    """Counts of observed values per bucket (``value <= bound``, the last bucket unbounded),
    their sum and number: a Prometheus histogram's figures, at the cost of one bisect.

    >>> latency = Distribution((0.01, 0.1))
    >>> for seconds in (0.004, 0.05, 0.05, 2.0):
    ...     latency.observe(seconds)
    >>> latency.cumulative(), latency.count, round(latency.total, 3)
    ([1, 3, 4], 4, 2.104)
    >>> latency.quantile(0.5)  # the upper bound of the bucket holding the median
    0.1
    """

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[int]:
        """Observations at or below each bound, then all of them (Prometheus' ``le`` form)."""
        running, out = 0, []
        for count in self.counts:
            running += count
            out.append(running)
        return out

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding quantile ``q`` (inf beyond the last bound;
        0.0 with nothing observed)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        for bound, seen in zip((*self.bounds, float("inf")), self.cumulative(), strict=True):
            if seen >= rank:
                return bound
        return float("inf")


@dataclass
class WorkerStats:
    """What one worker has done since it started."""

    #: New records read, per input topic (records fetched again below the next offset a
    #: partition expects are ``records_skipped``: never applied twice).
    records_in_by_topic: Counter[str] = field(default_factory=Counter)
    records_skipped: int = 0
    applied_by_topic: Counter[str] = field(default_factory=Counter)
    #: Records sent to the dead-letter topic, per reason (InvalidEvent.kind).
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)
    #: The latest dead letter's sentence, per reason (what a warning quotes).
    dead_letter_example: dict[str, str] = field(default_factory=dict)
    #: Outputs per topic, alerts per severity, limit adjustments per kind.
    outputs: Counter[str] = field(default_factory=Counter)
    alerts_by_severity: Counter[str] = field(default_factory=Counter)
    adjustments_by_kind: Counter[str] = field(default_factory=Counter)
    checkpoints: int = 0
    #: Bytes of records written by checkpoints; the longest wall time the loop spent on one
    #: (flushing outputs, committing offsets, taking the changes), and the longest time
    #: writing one took meanwhile (changelog, then local store).
    checkpoint_bytes: int = 0
    longest_checkpoint_s: float = 0.0
    longest_checkpoint_write_s: float = 0.0
    checkpoint_seconds: Distribution = field(
        default_factory=lambda: Distribution(CHECKPOINT_BUCKETS))
    checkpoint_write_seconds: Distribution = field(
        default_factory=lambda: Distribution(CHECKPOINT_BUCKETS))
    #: Partitions restored from the changelog, and what they read.
    restores: list[dict[str, Any]] = field(default_factory=list)
    #: Longest wall time one loop iteration spent between two polls (work, sends, checkpoints):
    #: how long the stream can stall behind one batch, bad records included.
    longest_iteration_s: float = 0.0
    iteration_seconds: Distribution = field(default_factory=lambda: Distribution(LOOP_BUCKETS))
    #: From a record's broker timestamp to its outputs handed to the producer.
    output_latency_seconds: Distribution = field(
        default_factory=lambda: Distribution(LATENCY_BUCKETS))
    scores: Distribution = field(default_factory=lambda: Distribution(SCORE_BUCKETS))
    started_at: float = field(default_factory=time.monotonic)
    #: When the first input record arrived, and when a record last arrived or was applied:
    #: the busy time of a catch-up.
    first_activity: float | None = None
    last_activity: float = field(default_factory=time.monotonic)
    #: The merchant replica's figures when the worker stopped (None: no replica).
    merchant_replica: dict[str, Any] | None = None

    @property
    def records_in(self) -> int:
        return self.records_in_by_topic.total()

    @property
    def applied(self) -> int:
        return self.applied_by_topic.total()

    @property
    def dead_letters(self) -> int:
        return self.dead_letters_by_reason.total()

    @property
    def busy_rate(self) -> float:
        """Records applied per second between the first record's arrival and the last
        record's arrival or application, whichever came later."""
        if self.first_activity is None or self.last_activity <= self.first_activity:
            return 0.0
        return self.applied / (self.last_activity - self.first_activity)

    def count_output(self, stream: str, value: dict[str, Any]) -> None:
        """Count one output of ``stream`` (a topic's name without prefix)."""
        self.outputs[stream] += 1
        if stream == "alerts":
            self.alerts_by_severity[value.get("severity", "unknown")] += 1
        elif stream == "limit-adjustments":
            self.adjustments_by_kind[value.get("kind", "unknown")] += 1

    def checkpoint_taken(self, seconds: float) -> None:
        self.checkpoints += 1
        self.checkpoint_seconds.observe(seconds)
        self.longest_checkpoint_s = max(self.longest_checkpoint_s, seconds)

    def checkpoint_written(self, seconds: float) -> None:
        self.checkpoint_write_seconds.observe(seconds)
        self.longest_checkpoint_write_s = max(self.longest_checkpoint_write_s, seconds)

    def iterated(self, seconds: float) -> None:
        self.iteration_seconds.observe(seconds)
        if seconds > self.longest_iteration_s:
            self.longest_iteration_s = seconds

    def as_dict(self) -> dict[str, Any]:
        latency = self.output_latency_seconds
        return {
            "records_in": self.records_in,
            "records_skipped": self.records_skipped,
            "applied": self.applied,
            "dead_letters": self.dead_letters,
            "dead_letters_by_reason": dict(self.dead_letters_by_reason),
            "outputs": dict(self.outputs),
            "alerts_by_severity": dict(self.alerts_by_severity),
            "adjustments_by_kind": dict(self.adjustments_by_kind),
            "checkpoints": self.checkpoints,
            "checkpoint_bytes": self.checkpoint_bytes,
            "longest_checkpoint_s": round(self.longest_checkpoint_s, 3),
            "longest_checkpoint_write_s": round(self.longest_checkpoint_write_s, 3),
            "restores": self.restores,
            "longest_iteration_s": round(self.longest_iteration_s, 3),
            "output_latency_p99_s_at_most": latency.quantile(0.99) if latency.count else None,
            "merchant_replica": self.merchant_replica,
        }
