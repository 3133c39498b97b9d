"""Event-time alignment of the co-partitioned inputs of one partition.

Transactions, repayments, statements and labels of a user arrive on four topics. Kafka orders
each topic partition, not the four together, so the worker merges them here: it releases the
buffered record with the smallest event time, and only when no other input can still deliver an
older one.

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

__all__ = ["OUTLIER_LOOKAHEAD", "UNTIMED", "EventTimeAligner"]

T = TypeVar("T")

#: The event time to push for a record that has none (refused before its time was read): it
#: sorts before everything, so it is released as soon as it reaches the head of its input.
UNTIMED = -(2**63)
#: How many records behind a head beyond the horizon are looked at to call it an outlier.
OUTLIER_LOOKAHEAD = 8


class EventTimeAligner(Generic[T]):
    """Merge per-source FIFO streams into one event-time order.

    >>> aligner = EventTimeAligner(["a", "b"], max_idle_s=1.0, outlier_gap=100)
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
    >>> aligner.push("a", 10**9, "bogus", now=61.0); aligner.push("a", 11, "a11", now=61.0)
    >>> aligner.pop_ready(now=61.0, horizon=1_000)  # an outlier: out at once, a11 not blocked
    [('a', 'bogus')]
    >>> aligner.pop_ready(now=62.0, horizon=1_000)
    [('a', 'a11')]
    """

    def __init__(
        self, sources: Sequence[str], max_idle_s: float, outlier_gap: int | None = None
    ) -> None:
        self.sources = tuple(sources)
        self.max_idle_s = max_idle_s
        self.outlier_gap = outlier_gap
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

    def drained(self) -> bool:
        """Nothing buffered, and every source known to be read to the broker's end."""
        return (not any(self._buffers.values())
                and all(caught_up is True for caught_up in self._caught_up.values()))

    def buffered(self, source: str | None = None) -> int:
        if source is not None:
            return len(self._buffers[source])
        return sum(len(buffer) for buffer in self._buffers.values())

    def pop_ready(
        self, now: float, limit: int | None = None, horizon: int | None = None
    ) -> list[tuple[str, T]]:
        """The records that can be released now (at most ``limit``), in event-time order."""
        released: list[tuple[str, T]] = []
        while limit is None or len(released) < limit:
            item = self.pop_next(now, horizon)
            if item is None:
                break
            released.append(item)
        return released

    def head_time(self) -> int | None:
        """The event time of the oldest record buffered (None: nothing buffered)."""
        heads = [buffer[0][0] for buffer in self._buffers.values() if buffer]
        return min(heads) if heads else None

    def pop_next(
        self, now: float, horizon: int | None = None, until: int | None = None
    ) -> tuple[str, T] | None:
        """The next record in event-time order, or None if it must wait for more input.

        ``until``, when given, holds back every record after that event time (the consumer
        is not ready for them yet).

        ``horizon`` is the latest event time the consumer accepts now. A head record beyond
        it that is also more than ``outlier_gap`` ahead of a record right behind it in its own
        input (one of the next ``OUTLIER_LOOKAHEAD``) is an outlier -- a bogus clock. It is
        released at once, for the consumer to refuse, instead of holding up every record
        behind it until the other inputs reach its time (head-of-line blocking): either the
        outlier or all that follows it would be refused, and this keeps the followers. To be
        judged, a head beyond the horizon waits for followers its input still has at the
        broker. The verdict depends only on the records and the consumer's clock.
        """
        buffers = self._buffers
        best: str | None = None
        best_key: tuple[int, int] | None = None
        silent_inputs = False
        for name, buffer in buffers.items():
            if buffer:
                event_time = buffer[0][0]
                if horizon is not None and event_time > horizon and self.outlier_gap is not None:
                    verdict = self._outlier(name, buffer)
                    if verdict is None:
                        return None  # its followers are still at the broker: wait for them
                    if verdict:
                        return name, buffer.popleft()[2]
                key = (event_time, self._rank[name])
                if best_key is None or key < best_key:
                    best, best_key = name, key
            elif self._caught_up[name] is False:
                return None  # the broker holds more of this input: wait for it
            else:
                silent_inputs = True
        if best is None or (until is not None and best_key[0] > until):
            return None
        buffer = buffers[best]
        if silent_inputs and now - buffer[0][1] < self.max_idle_s:
            return None  # a silent input may still deliver something older
        return best, buffer.popleft()[2]

    def _outlier(self, name: str, buffer: deque) -> bool | None:
        """Whether the head of ``buffer`` (beyond the horizon) is an outlier; None: not known."""
        assert self.outlier_gap is not None
        below = buffer[0][0] - self.outlier_gap
        for index in range(1, min(len(buffer), OUTLIER_LOOKAHEAD + 1)):
            if UNTIMED < buffer[index][0] < below:
                return True
        if len(buffer) <= OUTLIER_LOOKAHEAD and self._caught_up[name] is False:
            return None
        return False
