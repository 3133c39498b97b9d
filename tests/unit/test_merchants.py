"""A merchant's compromise age, against its definition recomputed from the purchases."""

from __future__ import annotations

import random

import pytest

from pipeline.merchants import MerchantActivity
from pipeline.timeutil import DAY, HOUR

DELAY, SPAN = 7 * DAY, 30 * DAY


@pytest.mark.parametrize("seed", range(3))
def test_first_known_fraud_is_the_earliest_fraud_in_the_window_known_at_the_time(
    seed: int,
) -> None:
    rng = random.Random(seed)
    merchant = MerchantActivity()
    purchases: dict[int, int] = {}  # id hash -> purchase time
    known: dict[int, int] = {}  # id hash -> when its fraud label became known (the earliest)
    for index in range(600):
        when = index * 4 * HOUR + rng.randrange(HOUR)
        merchant.add(when, index)
        purchases[index] = when
        if rng.random() < 0.15:  # labelled a fraud 1 to 20 days later, maybe twice
            for _ in range(rng.choice((1, 1, 2))):
                label_time = when + rng.randrange(DAY, 20 * DAY)
                merchant.mark_fraud(when, index, known_at=label_time)
                known[index] = min(known.get(index, label_time), label_time)
        # Queries from before, at and after label times, as a replica reading ahead makes.
        for now in (when, when + rng.randrange(30 * DAY)):
            inside = [purchases[key] for key, label_time in known.items()
                      if label_time <= now and now - DELAY - SPAN < purchases[key] <= now - DELAY]
            assert merchant.first_known_fraud(now, DELAY, SPAN) == (
                min(inside) if inside else None
            )
