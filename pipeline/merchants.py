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

Not every fraud says something about its merchant. A stolen card spending far above its usual
defrauds ordinary merchants; a compromised terminal defrauds ordinary cards at ordinary
amounts. So each purchase is also marked *unusual for its card* when its amount is at least
:data:`UNUSUAL_FOR_CARD` times the card's typical amount (:class:`CardHabits`), and the risk
is counted twice: every known fraud (the handbook's terminal risk), and only the *ordinary*
ones -- the frauds the card's own behaviour does not explain, which point at the merchant.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from math import log

from pipeline.timeutil import DAY

__all__ = ["FRAUD_MARK_REACH", "MERCHANT_LATEST", "MERCHANT_SPANS", "UNUSUAL_FOR_CARD",
           "CardHabits", "MerchantActivity", "MerchantBook"]

#: The merchant windows, by name (the handbook's 1, 7 and 30 days).
MERCHANT_SPANS: dict[str, int] = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
#: How many of a merchant's latest known purchases ``merchant_risk_latest`` looks at.
MERCHANT_LATEST = 3
#: A fraud label marks its purchase only if the purchase is at most this old at the label's
#: time: the user's windows (where a co-located engine finds the purchase) keep 30 days.
FRAUD_MARK_REACH = 30 * DAY
#: A purchase at least this many times its card's typical amount is unusual for the card: a
#: fraud there is the card's doing, not the merchant's (handbook, pure core: x3 raised AP from
#: 0.705 to 0.721; x2 gave 0.689, x4 0.715), and a week with several is a takeover's pattern
#: (the ``unusual_7d`` feature).
UNUSUAL_FOR_CARD = 3.0
_LOG_UNUSUAL = log(UNUSUAL_FOR_CARD)

#: A purchase's state in :class:`MerchantActivity`: bit 0 a confirmed fraud, bit 1 unusual for
#: its card. Ordinary frauds are the bytes equal to ``_FRAUD``.
_FRAUD, _UNUSUAL = 1, 2
#: The states of purchases not marked as frauds, as bytes to search for.
_LEGITIMATE, _UNUSUAL_ONLY = bytes((0,)), bytes((_UNUSUAL,))


class CardHabits:
    """Each card's typical amount, as a merchant book sees its purchases: a moving mean of the
    log amount over about its last 20 purchases. It is the book's own, not the user engine's
    baseline, so a replica fed by every partition keeps exactly the one a single engine would.

    >>> cards = CardHabits(memory=30)
    >>> [cards.unusual("u1", t, amount) for t, amount in enumerate([1_000, 1_200, 900, 3_500])]
    [False, False, False, True]
    >>> cards.unusual("u1", 40, 3_500)  # ``memory`` after its latest purchase: afresh
    False
    """

    __slots__ = ("cards", "memory")

    #: Purchases a card needs before any of its purchases can be unusual.
    MIN_PURCHASES = 3
    #: The moving mean's weight of the newest purchase, once the card has 20.
    ALPHA = 0.05

    def __init__(self, memory: int) -> None:
        #: A card whose latest purchase is this old starts afresh.
        self.memory = memory
        #: Card (user id) -> (mean log amount, purchases, latest purchase time).
        self.cards: dict[str, tuple[float, int, int]] = {}

    def __len__(self) -> int:
        return len(self.cards)

    def unusual(self, card: str, event_time: int, amount_minor: int) -> bool:
        """Whether the purchase is unusual for the card's purchases so far; then learns it."""
        value = log(amount_minor) if amount_minor > 1 else 0.0
        habits = self.cards.get(card)
        if habits is None or event_time - habits[2] >= self.memory:
            self.cards[card] = (value, 1, event_time)
            return False
        mean, count, latest = habits
        alpha = max(1.0 / (count + 1), self.ALPHA)
        self.cards[card] = (mean + alpha * (value - mean), count + 1,
                            event_time if event_time > latest else latest)
        return count >= self.MIN_PURCHASES and value - mean >= _LOG_UNUSUAL

    def evict(self, before: int) -> None:
        """Forget cards with no purchase after ``before``; a purchase at least ``memory`` later
        would start them afresh anyway."""
        self.cards = {card: habits for card, habits in self.cards.items() if habits[2] > before}

    def clear(self) -> None:
        self.cards.clear()


class MerchantActivity:
    """One merchant's purchases (time, id hash, state), in event-time order.

    >>> m = MerchantActivity()
    >>> m.add(0, 11); m.add(DAY // 2, 12, unusual=True); m.add(3 * DAY, 13)
    >>> m.mark_fraud(0, 11, known_at=7 * DAY)
    True
    >>> m.risk(8 * DAY, delay=7 * DAY, spans=(DAY,), latest=0)  # (0, 1 day]: only 12
    [(1, 0, 0)]
    >>> m.risk(7 * DAY, delay=7 * DAY, spans=(DAY,), latest=0)  # (-1 day, 0]: 11, a fraud
    [(1, 1, 1)]
    >>> m.risk(7 * DAY - 1, delay=6 * DAY, spans=(2 * DAY,), latest=2)  # 11 not known yet
    [(2, 0, 0), (2, 0, 0)]
    >>> m.mark_fraud(DAY // 2, 12, known_at=8 * DAY)  # unusual for its card
    True
    >>> m.risk(10 * DAY, delay=7 * DAY, spans=(7 * DAY,), latest=2)  # all three; 12 and 13
    [(3, 2, 1), (2, 1, 0)]
    """

    __slots__ = ("id_hashes", "known_at", "last_known", "states", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.id_hashes = array("q")
        #: Per purchase: ``_FRAUD`` once a fraud label has marked it (whenever it arrived),
        #: plus ``_UNUSUAL`` when it was unusual for its card.
        self.states = bytearray()
        #: The marked purchases: id hash -> (purchase time, label time, ordinary for its card).
        self.known_at: dict[int, tuple[int, int, bool]] = {}
        #: The latest label time among the marks (or one since evicted).
        self.last_known = -(2**63)

    def __len__(self) -> int:
        return len(self.times)

    def add(self, event_time: int, id_hash: int, unusual: bool = False) -> None:
        times = self.times
        state = _UNUSUAL if unusual else 0
        if not times or event_time >= times[-1]:
            times.append(event_time)
            self.id_hashes.append(id_hash)
            self.states.append(state)
        else:
            at = bisect_right(times, event_time)
            times.insert(at, event_time)
            self.id_hashes.insert(at, id_hash)
            self.states.insert(at, state)

    def mark_fraud(self, event_time: int, id_hash: int, known_at: int) -> bool:
        """Record that a label at ``known_at`` confirmed the purchase at ``event_time`` as a
        fraud (the earliest label counts); False if the purchase is not held."""
        times, states = self.times, self.states
        for at in range(bisect_left(times, event_time), bisect_right(times, event_time)):
            if self.id_hashes[at] == id_hash:
                states[at] |= _FRAUD
                earlier = self.known_at.get(id_hash)
                if earlier is None or known_at < earlier[1]:
                    self.known_at[id_hash] = (event_time, known_at, states[at] == _FRAUD)
                    self.last_known = max(self.last_known, known_at)
                return True
        return False

    def risk(self, now: int, delay: int, spans: tuple[int, ...], latest: int
             ) -> list[tuple[int, int, int]]:
        """(purchases, frauds known at ``now``, the ordinary ones among them) in
        ``(now - delay - span, now - delay]`` for each of ``spans``, then among the ``latest``
        purchases at or before ``now - delay`` (when ``latest`` > 0): a merchant with a
        purchase a day sees a compromise in its latest purchases at once, while a time window
        still averages it with the days before."""
        times, states = self.times, self.states
        end = bisect_right(times, now - delay)
        # Marks from labels after ``now``: only a book that reads ahead holds any.
        unknown = (
            [(t, ordinary) for t, label_time, ordinary in self.known_at.values()
             if label_time > now]
            if self.known_at and self.last_known > now else None
        )
        found = []
        for span in spans:
            start = bisect_right(times, now - delay - span, 0, end)
            if start < end:
                ordinary = states.count(_FRAUD, start, end)
                frauds = ordinary + states.count(_FRAUD | _UNUSUAL, start, end)
            else:
                ordinary = frauds = 0
            if unknown and frauds:
                low, high = now - delay - span, now - delay
                for t, is_ordinary in unknown:
                    if low < t <= high:
                        frauds -= 1
                        ordinary -= is_ordinary
            found.append((end - start, frauds, ordinary))
        if latest > 0:
            start = max(0, end - latest)
            ordinary = frauds = 0
            known_at, id_hashes = self.known_at, self.id_hashes
            for at in range(start, end):
                state = states[at]
                if state & _FRAUD and (not unknown or known_at[id_hashes[at]][1] <= now):
                    frauds += 1
                    ordinary += state == _FRAUD
            found.append((end - start, frauds, ordinary))
        return found

    def fraud_run(self, now: int, delay: int, span: int) -> tuple[int, int]:
        """(how long before ``now`` it began, how many purchases) of the run of frauds known
        at ``now`` that ends with the latest purchase at or before ``now - delay``; (0, 0) if
        that purchase is not a known fraud. A run reaching back past ``span`` is dated
        ``delay + span`` back, the furthest the book can tell.

        A compromise is fixed at some point, and its merchant's known risk, ``delay`` behind,
        still says fraud for ``delay`` after that. How long the run has lasted is what tells
        a young compromise from one that has likely ended; the classifier learns from the
        labels how long compromises last.

        >>> m = MerchantActivity()
        >>> for t, h in [(0, 1), (DAY, 2), (2 * DAY, 3), (3 * DAY, 4)]: m.add(t, h)
        >>> [m.mark_fraud(t, h, known_at=t + 7 * DAY) for t, h in [(DAY, 2), (2 * DAY, 3)]]
        [True, True]
        >>> age, length = m.fraud_run(9 * DAY, delay=7 * DAY, span=30 * DAY)
        >>> age // DAY, length  # purchases 2 and 3, the run beginning on day 1
        (8, 2)
        >>> age, length = m.fraud_run(9 * DAY, delay=7 * DAY, span=DAY)
        >>> age // DAY, length  # the window (day 1, day 2] holds purchase 3: dated 8 days back
        (8, 1)
        >>> m.fraud_run(10 * DAY, delay=7 * DAY, span=30 * DAY)  # purchase 4: not a fraud
        (0, 0)
        >>> m.fraud_run(9 * DAY - 1, delay=6 * DAY, span=30 * DAY)  # 3 not known yet
        (0, 0)
        """
        times, states = self.times, self.states
        high = now - delay
        end = bisect_right(times, high)
        start = bisect_right(times, high - span, 0, end)
        # The run follows the latest purchase that is not a fraud (found at C speed, so a
        # long run costs little) ...
        last = max(states.rfind(_LEGITIMATE, start, end), states.rfind(_UNUSUAL_ONLY, start, end))
        if self.known_at and self.last_known > now:
            # ... nor one known at ``now``: marks from later labels (only a book that reads
            # ahead holds any) do not count yet.
            id_hashes = self.id_hashes
            for id_hash, (time, label_time, _) in self.known_at.items():
                if label_time > now and high - span < time <= high:
                    at = bisect_right(times, time, start, end) - 1
                    while id_hashes[at] != id_hash:
                        at -= 1
                    last = max(last, at)
        first = max(last + 1, start)
        if first == end:
            return 0, 0
        return (now - times[first] if first > start else delay + span), end - first

    def evict(self, before: int) -> None:
        """Forget purchases at or before ``before``."""
        cut = bisect_right(self.times, before)
        if cut:
            del self.times[:cut]
            del self.id_hashes[:cut]
            del self.states[:cut]
            if self.known_at:
                self.known_at = {key: mark for key, mark in self.known_at.items()
                                 if mark[0] > before}

    def __getstate__(self) -> tuple[bytes, bytes, bytes, dict[int, tuple[int, int, bool]], int]:
        return (self.times.tobytes(), self.id_hashes.tobytes(), bytes(self.states),
                self.known_at, self.last_known)

    def __setstate__(self, state: tuple) -> None:
        times, id_hashes, states, self.known_at, self.last_known = state
        self.times, self.id_hashes = array("q"), array("q")
        self.times.frombytes(times)
        self.id_hashes.frombytes(id_hashes)
        self.states = bytearray(states)


class MerchantBook:
    """Every merchant's activity, its cards' habits, and the one query the features make.

    >>> book = MerchantBook(delay=7 * DAY)
    >>> book.add("shop", 0, 11, card="u1", amount_minor=1_000)
    >>> book.add("shop", DAY, 12, card="u2", amount_minor=1_000)
    >>> book.mark_fraud("shop", 0, 11, known_at=7 * DAY)
    True
    >>> book.risk("shop", 8 * DAY)  # 1d, 7d, 30d windows, then the latest 3
    [(1, 0, 0), (2, 1, 1), (2, 1, 1), (2, 1, 1)]
    >>> book.risk("elsewhere", 8 * DAY)
    [(0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)]
    """

    __slots__ = ("cards", "changed_cards", "changed_merchants", "delay", "merchants")

    _SPANS = tuple(MERCHANT_SPANS.values())
    _LONGEST_SPAN = max(_SPANS)
    #: The answer for a merchant with no purchases held.
    _EMPTY = [(0, 0, 0)] * (len(MERCHANT_SPANS) + 1)

    def __init__(self, delay: int) -> None:
        self.delay = delay
        self.merchants: dict[str, MerchantActivity] = {}
        self.cards = CardHabits(memory=self.reach)
        #: The merchants and cards changed since the last checkpoint (None: not tracked; see
        #: :meth:`track_changes`).
        self.changed_merchants: set[str] | None = None
        self.changed_cards: set[str] | None = None

    def track_changes(self) -> None:
        """Remember which merchants and cards change, for a checkpoint of this book."""
        self.changed_merchants, self.changed_cards = set(), set()

    def checkpointed(self) -> None:
        if self.changed_merchants is not None and self.changed_cards is not None:
            self.changed_merchants.clear()
            self.changed_cards.clear()

    @property
    def reach(self) -> int:
        """How far before a query its oldest purchase can be."""
        return self.delay + self._LONGEST_SPAN

    def add(self, merchant_id: str, event_time: int, id_hash: int, card: str,
            amount_minor: int) -> None:
        """A purchase of ``amount_minor`` by ``card`` (its user id) at ``merchant_id``."""
        unusual = self.cards.unusual(card, event_time, amount_minor)
        merchant = self.merchants.get(merchant_id)
        if merchant is None:
            merchant = self.merchants[merchant_id] = MerchantActivity()
        merchant.add(event_time, id_hash, unusual)
        if self.changed_merchants is not None and self.changed_cards is not None:
            self.changed_merchants.add(merchant_id)
            self.changed_cards.add(card)

    def mark_fraud(self, merchant_id: str, event_time: int, id_hash: int, known_at: int) -> bool:
        """Mark a purchase confirmed as fraud by a label at ``known_at``; False if not held or
        older than :data:`FRAUD_MARK_REACH` at the label's time."""
        merchant = self.merchants.get(merchant_id)
        if merchant is None or event_time < known_at - FRAUD_MARK_REACH:
            return False
        if self.changed_merchants is not None:
            self.changed_merchants.add(merchant_id)
        return merchant.mark_fraud(event_time, id_hash, known_at)

    def risk(self, merchant_id: str, now: int) -> list[tuple[int, int, int]]:
        """(purchases, known frauds, the ordinary ones among them) over each of
        :data:`MERCHANT_SPANS`, then among the latest :data:`MERCHANT_LATEST` purchases, as
        known at ``now``."""
        merchant = self.merchants.get(merchant_id)
        if merchant is None:
            return list(self._EMPTY)
        return merchant.risk(now, self.delay, self._SPANS, MERCHANT_LATEST)

    def fraud_run(self, merchant_id: str, now: int) -> tuple[int, int]:
        """:meth:`MerchantActivity.fraud_run` over the longest of :data:`MERCHANT_SPANS`, as
        known at ``now``."""
        merchant = self.merchants.get(merchant_id)
        if merchant is None:
            return 0, 0
        return merchant.fraud_run(now, self.delay, self._LONGEST_SPAN)

    def evict(self, merchant_id: str, before: int) -> None:
        """Forget ``merchant_id``'s purchases at or before ``before``."""
        merchant = self.merchants.get(merchant_id)
        if merchant is not None:
            merchant.evict(before)
            if self.changed_merchants is not None:
                self.changed_merchants.add(merchant_id)

    def evict_all(self, before: int) -> None:
        """Forget every purchase at or before ``before``, merchants left with none, and cards
        with no purchase since."""
        if self.changed_merchants is not None and self.changed_cards is not None:
            self.changed_merchants.update(self.merchants)  # those left empty go, too
            self.changed_cards.update(self.cards.cards)
        for merchant_id in list(self.merchants):
            merchant = self.merchants[merchant_id]
            merchant.evict(before)
            if not merchant:
                del self.merchants[merchant_id]
        self.cards.evict(before)

    def clear(self) -> None:
        self.merchants.clear()
        self.cards.clear()

    def __len__(self) -> int:
        return len(self.merchants)
