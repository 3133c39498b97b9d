"""Event-time alignment of the co-partitioned inputs of one partition.

Transactions, repayments and labels of a user arrive on three topics. Kafka orders each topic
partition, not the three together, so the worker merges them here, as Kafka Streams does: it
releases the buffered record with the smallest event time, but only while every input either
has a record buffered or is known to have nothing more (read up to the broker's high watermark).
An input known to have more waits as long as it takes; only an input whose lag is unknown (no
fetch answered yet) is given up on after ``max_idle_s``. With the history already in the broker
-- a replay, a restart after a crash -- the merged order is therefore a pure function of the
records, whatever the fetch sizes, the speed or the number of workers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["EventTimeAligner"]

T = TypeVar("T")


class EventTimeAligner(Generic[T]):
    """Merge per-source FIFO streams into one event-time order.

    >>> aligner = EventTimeAligner(["a", "b"], max_idle_s=1.0, now=0.0)
    >>> aligner.push("a", 5, "a5", now=0.0); aligner.push("a", 9, "a9", now=0.0)
    >>> aligner.pop_ready(now=0.1)  # b might still bring something older: wait
    []
    >>> aligner.push("b", 7, "b7", now=0.2)
    >>> aligner.pop_ready(now=0.2)
    [('a', 'a5'), ('b', 'b7')]
    >>> aligner.set_caught_up("b", False)  # the broker holds more of b: wait, however long
    >>> aligner.pop_ready(now=60.0)
    []
    >>> aligner.set_caught_up("b", True)
    >>> aligner.pop_ready(now=60.0)
    [('a', 'a9')]
    """

    def __init__(self, sources: Sequence[str], max_idle_s: float, now: float) -> None:
        self.sources = tuple(sources)
        self.max_idle_s = max_idle_s
        self._buffers: dict[str, deque[tuple[int, T]]] = {name: deque() for name in sources}
        self._empty_since = dict.fromkeys(sources, now)
        self._caught_up: dict[str, bool | None] = dict.fromkeys(sources)
        # Ties in event time go to the source listed first: a fixed, documented order.
        self._rank = {name: index for index, name in enumerate(sources)}

    def push(self, source: str, event_time: int, item: T, now: float) -> None:
        self._buffers[source].append((event_time, item))

    def set_caught_up(self, source: str, caught_up: bool | None) -> None:
        """Whether ``source`` has been read up to the broker's high watermark (None: unknown)."""
        self._caught_up[source] = caught_up

    def buffered(self) -> int:
        return sum(len(buffer) for buffer in self._buffers.values())

    def pop_ready(self, now: float) -> list[tuple[str, T]]:
        """Every record that can be released now, in event-time order."""
        released: list[tuple[str, T]] = []
        buffers = self._buffers
        while True:
            best: str | None = None
            best_key: tuple[int, int] | None = None
            for name, buffer in buffers.items():
                if buffer:
                    key = (buffer[0][0], self._rank[name])
                    if best_key is None or key < best_key:
                        best, best_key = name, key
                else:
                    caught_up = self._caught_up[name]
                    if caught_up is False or (
                        caught_up is None and now - self._empty_since[name] < self.max_idle_s
                    ):
                        return released  # this source may still deliver something older
            if best is None:
                return released
            buffer = buffers[best]
            released.append((best, buffer.popleft()[1]))
            if not buffer:
                self._empty_since[best] = now
