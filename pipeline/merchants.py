"""Merchant-side risk: each merchant's purchases and the frauds confirmed among them.

For a purchase at time ``t`` the risk of its merchant over a window of ``span`` is, as in the
Fraud Detection Handbook, the share of confirmed frauds among the merchant's purchases in
``(t - delay - span, t - delay]``: the window ends ``delay`` before the purchase because only
then are its labels known. A fraud counts once its label has arrived -- never earlier -- so with
labels that take longer than ``delay`` the risk is what the line really knows at ``t``.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

from pipeline.timeutil import DAY

__all__ = ["MERCHANT_LATEST", "MERCHANT_SPANS", "MerchantActivity"]

#: The merchant windows, by name (the handbook's 1, 7 and 30 days).
MERCHANT_SPANS: dict[str, int] = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
#: How many of a merchant's latest known purchases ``merchant_risk_latest`` looks at.
MERCHANT_LATEST = 3


class MerchantActivity:
    """One merchant's purchases (time, id hash, fraud flag), in event-time order.

    >>> m = MerchantActivity()
    >>> m.add(0, 11); m.add(DAY // 2, 12); m.add(3 * DAY, 13)
    >>> m.mark_fraud(0, 11)
    True
    >>> m.counts(8 * DAY, delay=7 * DAY, span=DAY)  # purchases in (0, 1 day]: only 12
    (1, 0)
    >>> m.counts(7 * DAY, delay=7 * DAY, span=DAY)  # (-1 day, 0]: 11, a known fraud
    (1, 1)
    >>> m.counts(10 * DAY, delay=7 * DAY, span=7 * DAY)  # (-4 days, 3 days]: all three
    (3, 1)
    >>> m.latest(10 * DAY, delay=7 * DAY, count=2)  # the last two at or before 3 days: 12, 13
    (2, 0)
    """

    __slots__ = ("frauds", "id_hashes", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.id_hashes = array("q")
        self.frauds = bytearray()

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

    def mark_fraud(self, event_time: int, id_hash: int) -> bool:
        """Record a confirmed fraud on the purchase at ``event_time``; False if not held."""
        times = self.times
        for at in range(bisect_left(times, event_time), bisect_right(times, event_time)):
            if self.id_hashes[at] == id_hash:
                self.frauds[at] = 1
                return True
        return False

    def counts(self, now: int, delay: int, span: int) -> tuple[int, int]:
        """Purchases and known frauds in ``(now - delay - span, now - delay]``."""
        return self.risk(now, delay, (span,), 0)[0]

    def latest(self, now: int, delay: int, count: int) -> tuple[int, int]:
        """The last ``count`` purchases at or before ``now - delay``, and the known frauds among
        them: a merchant with a purchase a day sees a compromise in its latest purchases at
        once, while a time window still averages it with the days before."""
        return self.risk(now, delay, (), count)[0]

    def risk(self, now: int, delay: int, spans: tuple[int, ...], latest: int
             ) -> list[tuple[int, int]]:
        """(purchases, known frauds) for each of ``spans``, then for the ``latest`` purchases
        (when ``latest`` > 0): :meth:`counts` and :meth:`latest` in one search."""
        times, frauds = self.times, self.frauds
        end = bisect_right(times, now - delay)
        found = []
        for span in spans:
            start = bisect_right(times, now - delay - span, 0, end)
            found.append((end - start, frauds.count(1, start, end) if start < end else 0))
        if latest > 0:
            start = max(0, end - latest)
            found.append((end - start, frauds.count(1, start, end)))
        return found

    def evict(self, before: int) -> None:
        """Forget purchases at or before ``before``."""
        cut = bisect_right(self.times, before)
        if cut:
            del self.times[:cut]
            del self.id_hashes[:cut]
            del self.frauds[:cut]

    def __getstate__(self) -> tuple[bytes, bytes, bytes]:
        return self.times.tobytes(), self.id_hashes.tobytes(), bytes(self.frauds)

    def __setstate__(self, state: tuple[bytes, bytes, bytes]) -> None:
        times, id_hashes, frauds = state
        self.times, self.id_hashes = array("q"), array("q")
        self.times.frombytes(times)
        self.id_hashes.frombytes(id_hashes)
        self.frauds = bytearray(frauds)
