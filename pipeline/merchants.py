"""Merchant-side risk: each merchant's purchases and the frauds confirmed among them.

For a purchase at time ``t`` the risk of its merchant over a window of ``span`` is, as in the
Fraud Detection Handbook, the share of confirmed frauds among the merchant's purchases in
``(t - delay - span, t - delay]``: the window ends ``delay`` before the purchase because only
then are its labels known. A fraud counts once its label has arrived -- never earlier -- so with
labels that take longer than ``delay`` the risk is what the line really knows at ``t``.

Every fraud mark carries the time its label arrived, and every query is *as of* an event time:
the answer depends only on purchases at or before ``t - delay`` and on labels at or before
``t``, whatever else the book has read. That is what lets a worker's merchant replica read
ahead of its partitions (``pipeline.replica``) and still give every purchase the answer a
single engine reading everything in event-time order would give.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

from pipeline.timeutil import DAY

__all__ = ["FRAUD_MARK_REACH", "MERCHANT_LATEST", "MERCHANT_SPANS", "MerchantActivity",
           "MerchantBook"]

#: The merchant windows, by name (the handbook's 1, 7 and 30 days).
MERCHANT_SPANS: dict[str, int] = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
#: How many of a merchant's latest known purchases ``merchant_risk_latest`` looks at.
MERCHANT_LATEST = 3
#: A fraud label marks its purchase only if the purchase is at most this old at the label's
#: time: the user's windows (where a co-located engine finds the purchase) keep 30 days.
FRAUD_MARK_REACH = 30 * DAY
#: "Not marked": a known-at time after every query.
_NEVER = 2**63 - 1


class MerchantActivity:
    """One merchant's purchases (time, id hash, fraud mark), in event-time order.

    >>> m = MerchantActivity()
    >>> m.add(0, 11); m.add(DAY // 2, 12); m.add(3 * DAY, 13)
    >>> m.mark_fraud(0, 11, known_at=7 * DAY)
    True
    >>> m.risk(8 * DAY, delay=7 * DAY, spans=(DAY,), latest=0)  # (0, 1 day]: only 12
    [(1, 0)]
    >>> m.risk(7 * DAY, delay=7 * DAY, spans=(DAY,), latest=0)  # (-1 day, 0]: 11, a fraud
    [(1, 1)]
    >>> m.risk(7 * DAY - 1, delay=6 * DAY, spans=(2 * DAY,), latest=2)  # 11 not known yet
    [(2, 0), (2, 0)]
    >>> m.risk(10 * DAY, delay=7 * DAY, spans=(7 * DAY,), latest=2)  # all three; 12 and 13
    [(3, 1), (2, 0)]
    """

    __slots__ = ("frauds", "id_hashes", "known_at", "last_known", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.id_hashes = array("q")
        #: 1 where a fraud label has marked the purchase, whenever it arrived.
        self.frauds = bytearray()
        #: The marked purchases: id hash -> (purchase time, label time).
        self.known_at: dict[int, tuple[int, int]] = {}
        #: The latest label time among the marks (or one since evicted).
        self.last_known = -(2**63)

    def __len__(self) -> int:
        return len(self.times)

    def add(self, event_time: int, id_hash: int) -> None:
        times = self.times
        if not times or event_time >= times[-1]:
            times.append(event_time)
            self.id_hashes.append(id_hash)
            self.frauds.append(0)
        else:
            at = bisect_right(times, event_time)
            times.insert(at, event_time)
            self.id_hashes.insert(at, id_hash)
            self.frauds.insert(at, 0)

    def mark_fraud(self, event_time: int, id_hash: int, known_at: int) -> bool:
        """Record that a label at ``known_at`` confirmed the purchase at ``event_time`` as a
        fraud (the earliest label counts); False if the purchase is not held."""
        times = self.times
        for at in range(bisect_left(times, event_time), bisect_right(times, event_time)):
            if self.id_hashes[at] == id_hash:
                self.frauds[at] = 1
                earlier = self.known_at.get(id_hash)
                if earlier is None or known_at < earlier[1]:
                    self.known_at[id_hash] = (event_time, known_at)
                    self.last_known = max(self.last_known, known_at)
                return True
        return False

    def risk(self, now: int, delay: int, spans: tuple[int, ...], latest: int
             ) -> list[tuple[int, int]]:
        """(purchases, frauds known at ``now``) in ``(now - delay - span, now - delay]`` for
        each of ``spans``, then among the ``latest`` purchases at or before ``now - delay``
        (when ``latest`` > 0): a merchant with a purchase a day sees a compromise in its latest
        purchases at once, while a time window still averages it with the days before."""
        times, frauds = self.times, self.frauds
        end = bisect_right(times, now - delay)
        # Marks from labels after ``now``: only a book that reads ahead holds any.
        unknown = (
            [t for t, label_time in self.known_at.values() if label_time > now]
            if self.known_at and self.last_known > now else None
        )
        found = []
        for span in spans:
            start = bisect_right(times, now - delay - span, 0, end)
            count = frauds.count(1, start, end) if start < end else 0
            if unknown and count:
                low, high = now - delay - span, now - delay
                count -= sum(1 for t in unknown if low < t <= high)
            found.append((end - start, count))
        if latest > 0:
            start = max(0, end - latest)
            count = frauds.count(1, start, end)
            if unknown and count:
                known_at = self.known_at
                count = sum(1 for at in range(start, end) if frauds[at]
                            and known_at[self.id_hashes[at]][1] <= now)
            found.append((end - start, count))
        return found

    def evict(self, before: int) -> None:
        """Forget purchases at or before ``before``."""
        cut = bisect_right(self.times, before)
        if cut:
            del self.times[:cut]
            del self.id_hashes[:cut]
            del self.frauds[:cut]
            if self.known_at:
                self.known_at = {key: mark for key, mark in self.known_at.items()
                                 if mark[0] > before}

    def __getstate__(self) -> tuple[bytes, bytes, bytes, dict[int, tuple[int, int]], int]:
        return (self.times.tobytes(), self.id_hashes.tobytes(), bytes(self.frauds),
                self.known_at, self.last_known)

    def __setstate__(self, state: tuple) -> None:
        times, id_hashes, frauds, self.known_at, self.last_known = state
        self.times, self.id_hashes = array("q"), array("q")
        self.times.frombytes(times)
        self.id_hashes.frombytes(id_hashes)
        self.frauds = bytearray(frauds)


class MerchantBook:
    """Every merchant's activity, and the one query the features make of it.

    >>> book = MerchantBook(delay=7 * DAY)
    >>> book.add("shop", 0, 11); book.add("shop", DAY, 12)
    >>> book.mark_fraud("shop", 0, 11, known_at=7 * DAY)
    True
    >>> book.risk("shop", 8 * DAY)  # 1d, 7d, 30d windows, then the latest 3
    [(1, 0), (2, 1), (2, 1), (2, 1)]
    >>> book.risk("elsewhere", 8 * DAY)
    [(0, 0), (0, 0), (0, 0), (0, 0)]
    """

    __slots__ = ("delay", "merchants")

    _SPANS = tuple(MERCHANT_SPANS.values())
    #: The answer for a merchant with no purchases held.
    _EMPTY = [(0, 0)] * (len(MERCHANT_SPANS) + 1)

    def __init__(self, delay: int) -> None:
        self.delay = delay
        self.merchants: dict[str, MerchantActivity] = {}

    @property
    def reach(self) -> int:
        """How far before a query its oldest purchase can be."""
        return self.delay + max(self._SPANS)

    def add(self, merchant_id: str, event_time: int, id_hash: int) -> None:
        merchant = self.merchants.get(merchant_id)
        if merchant is None:
            merchant = self.merchants[merchant_id] = MerchantActivity()
        merchant.add(event_time, id_hash)

    def mark_fraud(self, merchant_id: str, event_time: int, id_hash: int, known_at: int) -> bool:
        """Mark a purchase confirmed as fraud by a label at ``known_at``; False if not held or
        older than :data:`FRAUD_MARK_REACH` at the label's time."""
        merchant = self.merchants.get(merchant_id)
        if merchant is None or event_time < known_at - FRAUD_MARK_REACH:
            return False
        return merchant.mark_fraud(event_time, id_hash, known_at)

    def risk(self, merchant_id: str, now: int) -> list[tuple[int, int]]:
        """(purchases, known frauds) over each of :data:`MERCHANT_SPANS`, then among the latest
        :data:`MERCHANT_LATEST` purchases, as known at ``now``."""
        merchant = self.merchants.get(merchant_id)
        if merchant is None:
            return list(self._EMPTY)
        return merchant.risk(now, self.delay, self._SPANS, MERCHANT_LATEST)

    def evict(self, merchant_id: str, before: int) -> None:
        """Forget ``merchant_id``'s purchases at or before ``before``."""
        merchant = self.merchants.get(merchant_id)
        if merchant is not None:
            merchant.evict(before)

    def evict_all(self, before: int) -> None:
        """Forget every purchase at or before ``before``, and merchants left with none."""
        for merchant_id in list(self.merchants):
            merchant = self.merchants[merchant_id]
            merchant.evict(before)
            if not merchant:
                del self.merchants[merchant_id]

    def __len__(self) -> int:
        return len(self.merchants)
