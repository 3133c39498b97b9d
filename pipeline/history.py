"""A history to replay: many files read through their adapters and merged into event-time order.

The merge is a k-way merge over the files, each read lazily, so memory is bounded by one
record per file (plus what an adapter holds, such as the handbook's pending labels), not by the
size of the history. Each file is expected in event-time order, as histories are exported; a
record out of order within its file is sent where it stands -- exactly as it would have arrived
live -- and the worker's allowed-lateness policy judges it. Ties keep the order of the files on
the command line, then the order within a file: the merged order is a pure function of the
inputs, which is what lets ``--resume`` skip what was already acknowledged by counting.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.adapters import ColumnMapping, read_source
from pipeline.events import Event
from pipeline.sources import Rejection, SourceRecord
from pipeline.timeutil import DAY, SECOND

__all__ = ["HistoryOptions", "Pacer", "merged_history"]


@dataclass(frozen=True)
class HistoryOptions:
    """How the input files are read (``riskstream replay --format/--map/...``)."""

    format: str = "riskstream"
    event_type: str | None = None
    mapping: ColumnMapping | None = None
    label_delay: int = 7 * DAY
    currency: str | None = None
    #: ``uci-taiwan`` only: clients join in monthly cohorts of this size (prequential).
    cohort_size: int | None = None


def merged_history(
    paths: list[Path],
    options: HistoryOptions = HistoryOptions(),
    on_rejection: Callable[[SourceRecord], None] | None = None,
) -> Iterator[Event]:
    """Every valid event of ``paths`` in event-time order; rejections go to ``on_rejection``
    as they are met (in file order, files interleaved as the merge reads them)."""

    def events_of(index: int, path: Path) -> Iterator[tuple[int, int, int, Event]]:
        for sequence, record in enumerate(read_source(
            path, options.format, event_type=options.event_type, mapping=options.mapping,
            label_delay=options.label_delay, currency=options.currency,
            cohort_size=options.cohort_size,
        )):
            item = record.item
            if isinstance(item, Rejection):
                if on_rejection is not None:
                    on_rejection(record)
                continue
            yield item.event_time, index, sequence, item

    streams = [events_of(index, path) for index, path in enumerate(paths)]
    for _, _, _, event in heapq.merge(*streams):
        yield event


class Pacer:
    """How long to wait before sending the next event: ``speed`` x real time in event time,
    and at most ``rate`` events per second; either may be None (no limit).

    >>> pacer = Pacer(speed=None, rate=100.0, started=0.0)
    >>> [round(pacer.wait(0, now=0.0), 3) for _ in range(3)]
    [0.0, 0.01, 0.02]
    """

    def __init__(self, speed: float | None, rate: float | None, started: float | None = None):
        if any(limit is not None and limit <= 0 for limit in (speed, rate)):
            raise ValueError("speed and rate must be positive")
        self.speed = speed
        self.rate = rate
        self.started = time.monotonic() if started is None else started
        self.first_time: int | None = None
        self.sent = 0

    def wait(self, event_time: int, now: float | None = None) -> float:
        """Seconds to sleep before sending an event at ``event_time`` (call once per event)."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.started
        due = 0.0
        if self.speed is not None:
            if self.first_time is None:
                self.first_time = event_time
            due = (event_time - self.first_time) / SECOND / self.speed
        if self.rate is not None:
            due = max(due, self.sent / self.rate)
        self.sent += 1
        return max(0.0, due - elapsed)
