"""Event-time alignment of the co-partitioned inputs of one partition.

Transactions, repayments and labels of a user arrive on three topics. Kafka orders each topic
partition, not the three together, so the worker merges them here: it releases the buffered
record with the smallest event time, and only when no other input can still deliver an older one.

- An input with records buffered competes by the event time of its oldest record.
- An input known to have more at the broker (read position below the high watermark of the
  last fetch) is waited for, however long that takes.
- An input with nothing buffered and nothing known to be pending may still receive a record
  produced a moment ago, so the candidate record waits until it has been buffered for
  ``max_idle_s`` (Kafka Streams' ``max.task.idle.ms``).

The merged order is therefore a pure function of the records whenever producers are less than
``max_idle_s`` apart: for a history already in the broker (a replay, a restart after a crash)
and for a live replay at any speed alike. The price is up to ``max_idle_s`` of added latency
while some input is silent; ``0`` gives the lowest latency and an arrival-dependent order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["EventTimeAligner"]

T = TypeVar("T")


class EventTimeAligner(Generic[T]):
    """Merge per-source FIFO streams into one event-time order.

    >>> aligner = EventTimeAligner(["a", "b"], max_idle_s=1.0)
    >>> aligner.push("a", 5, "a5", now=0.0); aligner.push("a", 9, "a9", now=0.0)
    >>> aligner.pop_ready(now=0.1)  # b might still bring something older: wait
    []
    >>> aligner.push("b", 7, "b7", now=0.2)
    >>> aligner.pop_ready(now=0.2)
    [('a', 'a5'), ('b', 'b7')]
    >>> aligner.set_caught_up("b", False)  # the broker holds more of b: wait, however long
    >>> aligner.pop_ready(now=60.0)
    []
    >>> aligner.set_caught_up("b", True)  # nothing pending: a9 has waited long enough
    >>> aligner.pop_ready(now=60.0)
    [('a', 'a9')]
    """

    def __init__(self, sources: Sequence[str], max_idle_s: float) -> None:
        self.sources = tuple(sources)
        self.max_idle_s = max_idle_s
        #: Per source: (event time, arrival on the wall clock, item), oldest first.
        self._buffers: dict[str, deque[tuple[int, float, T]]] = {name: deque() for name in sources}
        self._caught_up: dict[str, bool | None] = dict.fromkeys(sources)
        # Ties in event time go to the source listed first: a fixed, documented order.
        self._rank = {name: index for index, name in enumerate(sources)}

    def push(self, source: str, event_time: int, item: T, now: float) -> None:
        self._buffers[source].append((event_time, now, item))

    def set_caught_up(self, source: str, caught_up: bool | None) -> None:
        """Whether ``source`` has been read up to the broker's high watermark (None: unknown)."""
        self._caught_up[source] = caught_up

    def buffered(self, source: str | None = None) -> int:
        if source is not None:
            return len(self._buffers[source])
        return sum(len(buffer) for buffer in self._buffers.values())

    def pop_ready(self, now: float, limit: int | None = None) -> list[tuple[str, T]]:
        """The records that can be released now (at most ``limit``), in event-time order."""
        released: list[tuple[str, T]] = []
        buffers = self._buffers
        while limit is None or len(released) < limit:
            best: str | None = None
            best_key: tuple[int, int] | None = None
            silent_inputs = False
            for name, buffer in buffers.items():
                if buffer:
                    key = (buffer[0][0], self._rank[name])
                    if best_key is None or key < best_key:
                        best, best_key = name, key
                elif self._caught_up[name] is False:
                    return released  # the broker holds more of this input: wait for it
                else:
                    silent_inputs = True
            if best is None:
                return released
            buffer = buffers[best]
            if silent_inputs and now - buffer[0][1] < self.max_idle_s:
                return released  # a silent input may still deliver something older
            released.append((best, buffer.popleft()[2]))
        return released
