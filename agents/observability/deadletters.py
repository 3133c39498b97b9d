"""A loud warning when most of what a worker reads is dead-lettered for one reason: that is a
configuration or producer mistake (the line's currency set wrong, events on the wrong topic, a
producer's clock far off), not bad records, and it must not pass as a quiet counter."""

from __future__ import annotations

import logging
from collections import Counter

from agents.observability.stats import WorkerStats

__all__ = ["DeadLetterWatch"]

log = logging.getLogger("agents.worker")

#: Share of the records read in an interval, dead-lettered for one reason, that is warned about.
DOMINANT_SHARE = 0.5
#: Fewer records than this in an interval are too few to tell.
MIN_RECORDS = 20

#: What usually causes each reason when it dominates, and what to do.
_HINTS = {
    "currency-mismatch": "the records carry another currency than the credit line's: set the "
    "policy's [line] currency (or RISKSTREAM_CURRENCY) to the records' currency, or fix the "
    "producer",
    "unknown-currency": "the records' currency is not one riskstream knows (pipeline/money.py)",
    "unknown-type": "a producer writes events to the wrong topic (each topic takes one type)",
    "late": "a producer is far behind the stream's event time, or a replay was started again "
    "over a newer one: check the producer, or start the group afresh",
    "future": "a producer's clock, or a history's dates, lie far ahead of the stream's",
    "duplicate": "the same events are being produced again (a replay repeated without "
    "--resume?)",
    "unknown-user": "decisions name users riskstream has never seen: check the user ids",
}


class DeadLetterWatch:
    """Call :meth:`check` now and then; it warns when one reason dominates the interval."""

    def __init__(self, stats: WorkerStats, interval_s: float, currency: str) -> None:
        self.stats = stats
        self.interval_s = interval_s
        self.currency = currency
        self._at: float | None = None
        self._handled = 0
        self._dead: Counter[str] = Counter()

    def check(self, now: float) -> str | None:
        """Warn (and return the warning) if one reason took most records since the last check."""
        if self._at is not None and now - self._at < self.interval_s:
            return None
        stats = self.stats
        handled = stats.applied + stats.dead_letters
        dead = stats.dead_letters_by_reason - self._dead
        records = handled - self._handled
        self._at, self._handled = now, handled
        self._dead = Counter(stats.dead_letters_by_reason)
        return self._warn(records, dead)

    def summary(self) -> str | None:
        """The same judgement over the worker's whole run (at its end)."""
        stats = self.stats
        return self._warn(stats.applied + stats.dead_letters, stats.dead_letters_by_reason)

    def _warn(self, records: int, dead: Counter[str]) -> str | None:
        if records < MIN_RECORDS or not dead:
            return None
        reason, count = dead.most_common(1)[0]
        if count < DOMINANT_SHARE * records:
            return None
        hint = _HINTS.get(reason, "see the dead-letter topic for each record and its reason")
        example = self.stats.dead_letter_example.get(reason, "")
        warning = (f"{count:,} of {records:,} records dead-lettered as {reason} (e.g. "
                   f"\"{example}\"; the line's currency is {self.currency}): {hint}")
        log.warning("%s", warning)
        return warning
