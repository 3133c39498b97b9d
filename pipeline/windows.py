"""Exact event-time sliding windows over one user's purchases.

Each purchase is kept (time, amount, merchant, id hash) for as long as the longest window needs it,
in event-time order, so every statistic is computed exactly over ``(t - span, t]`` -- the
window includes the purchase at ``t``, as in the Fraud Detection Handbook's features. Out-of-
order purchases are inserted in place. Per purchase this costs a few bisections and C-level
slices; memory is 32 bytes a purchase held (three int64 arrays, one shared string pointer).
The id hashes let the engine refuse a purchase it has already applied.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.timeutil import DAY, HOUR

__all__ = ["WINDOW_SPANS", "PriorPurchases", "PurchaseWindows", "WindowStats"]

#: The windows every user keeps, by name. The longest one bounds what is retained.
WINDOW_SPANS: dict[str, int] = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
_LONGEST_SPAN = max(WINDOW_SPANS.values())
#: Evict only when this many expired entries have piled up, so deletion is amortised.
_EVICTION_BATCH = 16


@dataclass(slots=True, frozen=True)
class WindowStats:
    count: int
    total_minor: int
    max_minor: int
    distinct_merchants: int

    @property
    def mean_minor(self) -> float:
        return self.total_minor / self.count if self.count else 0.0


_EMPTY = WindowStats(0, 0, 0, 0)
_NOTHING = (0, 0, 0)
#: The windows in increasing order of span (:meth:`PurchaseWindows.before_purchase` relies on
#: the longest coming last), and those whose median is kept.
_SPANS = tuple(sorted(WINDOW_SPANS.values()))
_MEDIAN_SPANS = (WINDOW_SPANS["7d"], WINDOW_SPANS["30d"])


class PriorPurchases(NamedTuple):
    """What a purchase's features need of the purchases before it (see
    :meth:`PurchaseWindows.before_purchase`)."""

    #: (count, total, max) per window of :data:`WINDOW_SPANS`, in order of span.
    windows: list[tuple[int, int, int]]
    median_7d: float | None
    median_30d: float | None
    #: The 7-day window's amounts, ascending.
    amounts_7d: list[int]
    distinct_merchants_30d: int
    known_merchant: bool
    previous_time: int | None


class PurchaseWindows:
    """A user's purchases inside the longest window, ordered by event time.

    >>> w = PurchaseWindows()
    >>> w.add(0, 1000, "m1"); w.add(30 * 60 * 10**6, 500, "m2")
    >>> w.stats(30 * 60 * 10**6, HOUR)
    WindowStats(count=2, total_minor=1500, max_minor=1000, distinct_merchants=2)
    >>> w.stats(80 * 60 * 10**6, HOUR)
    WindowStats(count=1, total_minor=500, max_minor=500, distinct_merchants=1)
    """

    __slots__ = ("amounts", "id_hashes", "merchants", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.amounts = array("q")
        self.id_hashes = array("q")
        self.merchants: list[str] = []

    def __len__(self) -> int:
        return len(self.times)

    def add(self, event_time: int, amount_minor: int, merchant_id: str, id_hash: int = 0) -> None:
        times = self.times
        if not times or event_time >= times[-1]:
            times.append(event_time)
            self.amounts.append(amount_minor)
            self.merchants.append(merchant_id)
            self.id_hashes.append(id_hash)
        else:
            at = bisect_right(times, event_time)
            times.insert(at, event_time)
            self.amounts.insert(at, amount_minor)
            self.merchants.insert(at, merchant_id)
            self.id_hashes.insert(at, id_hash)

    def holds(self, id_hash: int) -> bool:
        """Whether a purchase with this id hash is still held."""
        return id_hash in self.id_hashes

    def evict(self, now: int) -> None:
        """Forget purchases no window reaching up to ``now`` can contain."""
        cut = bisect_right(self.times, now - _LONGEST_SPAN)
        if cut >= _EVICTION_BATCH:
            del self.times[:cut]
            del self.amounts[:cut]
            del self.merchants[:cut]
            del self.id_hashes[:cut]

    def stats(self, now: int, span: int, distinct: bool = True) -> WindowStats:
        """Count, sum, max and distinct merchants (0 unless ``distinct``) of purchases in
        ``(now - span, now]``."""
        times = self.times
        end = bisect_right(times, now)
        start = bisect_right(times, now - span, 0, end)
        if start == end:
            return _EMPTY
        amounts = self.amounts[start:end]
        return WindowStats(
            count=end - start,
            total_minor=sum(amounts),
            max_minor=max(amounts),
            distinct_merchants=len(set(self.merchants[start:end])) if distinct else 0,
        )

    def before_purchase(self, now: int, merchant_id: str) -> PriorPurchases:
        """Everything a purchase at ``now`` needs to know of the purchases before it, in one
        pass: per window of :data:`WINDOW_SPANS` its (count, total, max) in ``(now - span,
        now]``, the 7- and 30-day medians, the distinct merchants of the 30-day window, whether
        ``merchant_id`` is among them (strictly before ``now``), the latest purchase time, and
        the 7-day window's amounts in order.
        The medians are references a burst of unusual amounts cannot move until it is half the
        window.

        >>> w = PurchaseWindows()
        >>> for minute, amount in enumerate([100, 120, 5_000, 110]):
        ...     w.add(minute * 60 * 10**6, amount, "m")
        >>> prior = w.before_purchase(10 * 60 * 10**6, "m")
        >>> prior.windows[0], prior.median_7d, prior.known_merchant, prior.previous_time
        ((4, 5330, 5000), 115.0, True, 180000000)
        """
        times, amounts = self.times, self.amounts
        end = bisect_right(times, now)
        windows = []
        medians: list[float | None] = []
        amounts_7d: list[int] = []
        start = end
        for span in _SPANS:
            start = bisect_right(times, now - span, 0, end)
            if start == end:
                windows.append(_NOTHING)
                if span in _MEDIAN_SPANS:
                    medians.append(None)
                continue
            held = amounts[start:end]
            windows.append((end - start, sum(held), max(held)))
            if span in _MEDIAN_SPANS:
                ordered = sorted(held)
                if span == _MEDIAN_SPANS[0]:
                    amounts_7d = ordered
                middle = len(ordered) // 2
                medians.append(float(ordered[middle]) if len(ordered) % 2
                               else (ordered[middle - 1] + ordered[middle]) / 2)
        # ``start`` is now the longest window's start.
        merchants = self.merchants
        strictly_before = end
        while strictly_before > start and times[strictly_before - 1] == now:
            strictly_before -= 1
        return PriorPurchases(
            windows=windows,
            median_7d=medians[0],
            median_30d=medians[1],
            amounts_7d=amounts_7d,
            distinct_merchants_30d=len(set(merchants[start:end])) if start < end else 0,
            known_merchant=merchant_id in merchants[start:strictly_before],
            previous_time=times[end - 1] if end else None,
        )

    def find(self, id_hash: int) -> tuple[int, str] | None:
        """Time and merchant of the held purchase with this id hash."""
        try:
            at = self.id_hashes.index(id_hash)
        except ValueError:
            return None
        return self.times[at], self.merchants[at]

    def __getstate__(self) -> tuple[bytes, bytes, bytes, list[str]]:
        return (self.times.tobytes(), self.amounts.tobytes(), self.id_hashes.tobytes(),
                self.merchants)

    def __setstate__(self, state: tuple[bytes, bytes, bytes, list[str]]) -> None:
        times, amounts, id_hashes, self.merchants = state
        self.times, self.amounts, self.id_hashes = array("q"), array("q"), array("q")
        self.times.frombytes(times)
        self.amounts.frombytes(amounts)
        self.id_hashes.frombytes(id_hashes)
