"""A worker's replica of every merchant's activity, read from every partition.

Users are partitioned by user, merchants are not: the purchases of one merchant reach every
partition. Each worker therefore keeps one :class:`MerchantReplica`, fed with the purchases and
fraud labels of *every* partition, that all its engines query (docs/architecture.md).

The replica reads ahead of the engines, each input partition in its own order, yet every
purchase gets the answer a single engine reading everything in event-time order would give:

- queries are *as of* the purchase (:class:`~pipeline.merchants.MerchantBook`): they look at
  purchases at or before ``t - label_delay`` and at labels at or before ``t`` only;
- each input partition has its own event-time clock and refuses, like an engine, records more
  than ``allowed_lateness`` behind it or ``max_future_skew`` ahead of it, so once the clock has
  passed a time nothing at or before it can still change;
- :meth:`MerchantReplica.ready_until` is the latest purchase time every partition now covers,
  and a task scores nothing later.

The answer therefore depends only on the topics' records, not on how many workers read them or
how fast -- except when an input partition has been silent (read to its end) for the task idle
time, which counts as covering everything, as in :mod:`pipeline.ordering`.
"""

from __future__ import annotations

from collections import deque

from pipeline.config import RiskConfig
from pipeline.events import FRAUD_LABEL_KINDS, Label, Transaction
from pipeline.merchants import FRAUD_MARK_REACH, MerchantBook
from pipeline.state import id_hash

__all__ = ["FRAUD_LABELS", "PURCHASES", "MerchantReplica"]

#: The two inputs a replica reads, as the sources of its clocks.
PURCHASES = "transaction"
FRAUD_LABELS = "label"

_FOREVER = 2**63 - 1


class MerchantReplica:
    """Every partition's purchases and fraud labels in one :class:`MerchantBook`.

    >>> from pipeline.timeutil import DAY, HOUR
    >>> replica = MerchantReplica(RiskConfig(), partitions=2)
    >>> replica.apply(0, Transaction("t1", "u1", "shop", 5_000, "CNY", 0))
    >>> replica.apply(1, Transaction("t2", "u2", "shop", 5_000, "CNY", DAY))
    >>> replica.ready_until() is None  # no labels read yet
    True
    >>> replica.apply(0, Label("l1", "u1", "fraud", 7 * DAY, "t1"))
    >>> replica.apply(1, Label("l2", "u2", "legitimate", 9 * DAY, "t2"))
    >>> replica.ready_until() == 7 * DAY - HOUR - 1  # partition 0 covers labels that far
    True
    >>> replica.book.risk("shop", 8 * DAY)  # 1d, 7d, 30d, latest 3: t1 a known fraud
    [(1, 0, 0), (2, 1, 1), (2, 1, 1), (2, 1, 1)]
    >>> replica.book.risk("shop", 7 * DAY + 1)  # t1 only; l1 known since 7 days
    [(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)]
    >>> replica.apply(1, Transaction("t0", "u2", "shop", 5_000, "CNY", 0))  # a day late
    'late'
    """

    def __init__(self, config: RiskConfig, partitions: int) -> None:
        self.config = config
        self.partitions = partitions
        self.book = MerchantBook(config.label_delay)
        #: Per (input, partition): the latest event time applied; None before the first.
        self.clocks: dict[tuple[str, int], int | None] = {
            (source, partition): None
            for source in (PURCHASES, FRAUD_LABELS) for partition in range(partitions)
        }
        #: Inputs read to their end and silent for the task idle time: they cover everything.
        self.silent: set[tuple[str, int]] = set()
        #: Purchases held, by id hash, in read order: (merchant, event time).
        self._purchases: dict[int, tuple[str, int]] = {}
        #: Fraud labels read before their purchase: purchase id hash -> earliest label time.
        self._waiting: dict[int, int] = {}
        self._waiting_order: deque[tuple[int, int]] = deque()
        #: Purchases at or before this time have been forgotten (see :meth:`evict`).
        self.evicted_through: int | None = None
        #: Since the last checkpoint: the purchases added or forgotten (id hash -> merchant,
        #: time), the labels that began or stopped waiting, and whether all was forgotten.
        self.changed_purchases: dict[int, tuple[str, int]] = {}
        self.changed_waiting: set[int] = set()
        self.cleared = False
        self.book.track_changes()

    def clear(self) -> None:
        """Forget everything read, in place (the engines keep querying the same book)."""
        self.book.clear()
        for key in self.clocks:
            self.clocks[key] = None
        self.silent.clear()
        self._purchases.clear()
        self._waiting.clear()
        self._waiting_order.clear()
        self.evicted_through = None
        self.checkpointed()
        self.cleared = True

    def checkpointed(self) -> None:
        """The changes are written out: count them afresh."""
        self.changed_purchases.clear()
        self.changed_waiting.clear()
        self.book.checkpointed()
        self.cleared = False

    def restore(self, purchases: list[tuple[int, int, str]], waiting: list[tuple[int, int]],
                clocks: dict[tuple[str, int], int | None], evicted_through: int | None) -> None:
        """Take back what a checkpoint wrote: purchases as (time, id hash, merchant) and
        waiting labels as (label time, purchase id hash), both in time order, and the clocks.
        The merchant book is restored by the caller."""
        self._purchases = {id_hash: (merchant, time) for time, id_hash, merchant in purchases}
        self._waiting = {id_hash: time for time, id_hash in waiting}
        self._waiting_order = deque(waiting)
        self.clocks.update(clocks)
        self.evicted_through = evicted_through

    def waiting_labels(self) -> dict[int, int]:
        """Purchase id hash -> the earliest label time, of fraud labels read before their
        purchase."""
        return self._waiting

    def purchase(self, id_hash: int) -> tuple[str, int] | None:
        """(merchant, time) of a purchase held."""
        return self._purchases.get(id_hash)

    def __getstate__(self) -> dict:
        # Which inputs are silent is a fact about the moment, not about what was read.
        return {**self.__dict__, "silent": set()}

    def __len__(self) -> int:
        """Purchases held."""
        return len(self._purchases)

    def apply(self, partition: int, event: Transaction | Label) -> str | None:
        """Apply one valid event read from ``partition``; returns why it was refused, if it was
        (``late``, ``future``, ``duplicate``, ``currency-mismatch``), else None."""
        source = PURCHASES if isinstance(event, Transaction) else FRAUD_LABELS
        key = (source, partition)
        clock = self.clocks[key]
        now = event.event_time
        cfg = self.config
        if clock is not None:
            if now < clock - cfg.allowed_lateness:
                return "late"
            if now > clock + cfg.max_future_skew:
                return "future"
        refused = self._purchase(event) if source == PURCHASES else self._label(event)
        if refused is None and (clock is None or now > clock):
            self.clocks[key] = now
        return refused

    def set_silent(self, source: str, partition: int, silent: bool) -> None:
        if silent:
            self.silent.add((source, partition))
        else:
            self.silent.discard((source, partition))

    def ready_until(self) -> int | None:
        """The latest event time a purchase may be scored at now; None: not even the first."""
        lateness = self.config.allowed_lateness
        ready = _FOREVER
        for key, clock in self.clocks.items():
            if key in self.silent:
                continue
            if clock is None:
                return None
            # Anything older than ``clock - lateness`` is refused from now on.
            covered = clock - lateness - 1
            if key[0] == PURCHASES:
                covered += self.book.delay  # a purchase at t looks at those until t - delay
            ready = min(ready, covered)
        return ready

    def serves(self, watermark: int | None) -> bool:
        """Whether an engine at ``watermark`` (None: a fresh one) finds everything it will
        look at here, or needs the replica read again from the beginning."""
        if self.evicted_through is None:
            return True
        if watermark is None:
            return False
        return self.oldest_needed([watermark]) >= self.evicted_through  # type: ignore[operator]

    def oldest_needed(self, watermarks: list[int | None]) -> int | None:
        """What engines at ``watermarks`` may still look at: :meth:`evict` up to this."""
        if not watermarks or None in watermarks:
            return None  # an engine that has applied nothing may start anywhere
        lowest = min(w for w in watermarks if w is not None)
        return lowest - self.config.allowed_lateness - self.book.reach

    def evict(self, before: int) -> None:
        """Forget purchases at or before ``before``: no engine will look that far back."""
        purchases = self._purchases
        # Read order is event-time order within the lateness: a straggler behind a later
        # purchase is forgotten by a later call.
        expired = []
        for tx_hash, (_, event_time) in purchases.items():
            if event_time > before:
                break
            expired.append(tx_hash)
        changed = self.changed_purchases
        for tx_hash in expired:
            changed[tx_hash] = purchases.pop(tx_hash)
        waiting, waiting_order = self._waiting, self._waiting_order
        while waiting_order and waiting_order[0][0] <= before:
            _, tx_hash = waiting_order.popleft()
            if waiting.pop(tx_hash, None) is not None:
                self.changed_waiting.add(tx_hash)
        self.book.evict_all(before)
        self.evicted_through = before

    # -- inputs ------------------------------------------------------------------------------
    def _purchase(self, tx: Transaction) -> str | None:
        if tx.currency != self.config.currency:
            return "currency-mismatch"
        tx_hash = id_hash(tx.event_id)
        if tx_hash in self._purchases:
            return "duplicate"
        self._purchases[tx_hash] = self.changed_purchases[tx_hash] = (tx.merchant_id,
                                                                      tx.event_time)
        self.book.add(tx.merchant_id, tx.event_time, tx_hash, tx.user_id, tx.amount_minor)
        known_at = self._waiting.pop(tx_hash, None)
        if known_at is not None:
            self.changed_waiting.add(tx_hash)
            self.book.mark_fraud(tx.merchant_id, tx.event_time, tx_hash, known_at)
        return None

    def _label(self, label: Label) -> str | None:
        if label.kind not in FRAUD_LABEL_KINDS or label.transaction_id is None:
            return None
        tx_hash = id_hash(label.transaction_id)
        found = self._purchases.get(tx_hash)
        if found is not None:
            self.book.mark_fraud(found[0], found[1], tx_hash, label.event_time)
        elif (self.evicted_through is None
              or label.event_time - FRAUD_MARK_REACH > self.evicted_through):
            # Its purchase is on the partition's transactions input, not read that far yet.
            earlier = self._waiting.get(tx_hash)
            if earlier is None or label.event_time < earlier:
                self._waiting[tx_hash] = label.event_time
                self._waiting_order.append((label.event_time, tx_hash))
                self.changed_waiting.add(tx_hash)
        return None
