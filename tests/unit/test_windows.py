"""Exact sliding windows, checked against a brute-force recomputation."""

from __future__ import annotations

import pickle
import random
import statistics

import pytest

from pipeline.timeutil import DAY, HOUR, MINUTE
from pipeline.windows import WINDOW_SPANS, PurchaseWindows, WindowStats


def brute_force(purchases: list[tuple[int, int, str]], now: int, span: int) -> WindowStats:
    inside = [(t, a, m) for t, a, m in purchases if now - span < t <= now]
    if not inside:
        return WindowStats(0, 0, 0, 0)
    return WindowStats(
        len(inside), sum(a for _, a, _ in inside), max(a for _, a, _ in inside),
        len({m for _, _, m in inside}),
    )


@pytest.mark.parametrize("seed", range(5))
def test_windows_equal_brute_force_with_out_of_order_inserts_and_eviction(seed: int) -> None:
    rng = random.Random(seed)
    windows = PurchaseWindows()
    purchases: list[tuple[int, int, str]] = []
    now = 0
    for _ in range(1500):
        now += rng.choice([MINUTE, 10 * MINUTE, HOUR, 6 * HOUR, DAY])
        # Up to an hour out of order, as the lateness policy allows.
        when = now - rng.randrange(HOUR) if rng.random() < 0.2 else now
        purchase = (when, rng.randint(1, 100_000), f"m{rng.randrange(20)}")
        windows.add(*purchase)
        purchases.append(purchase)
        windows.evict(now - HOUR)  # evict only what no accepted late event can need
        for span in WINDOW_SPANS.values():
            assert windows.stats(now, span) == brute_force(purchases, now, span)


def test_window_bounds_are_half_open_and_include_the_present() -> None:
    windows = PurchaseWindows()
    windows.add(0, 100, "a")
    assert windows.stats(0, HOUR).count == 1
    assert windows.stats(HOUR - 1, HOUR).count == 1
    assert windows.stats(HOUR, HOUR).count == 0  # (now - span, now]


def test_memory_is_bounded_by_the_longest_window() -> None:
    windows = PurchaseWindows()
    for index in range(2000):
        windows.add(index * HOUR, 100, "m")
        windows.evict(index * HOUR)
    assert len(windows) <= 30 * 24 + 16


def test_pickle_round_trip_keeps_everything() -> None:
    windows = PurchaseWindows()
    for index in range(10):
        windows.add(index * MINUTE, index + 1, f"m{index % 3}")
    copy = pickle.loads(pickle.dumps(windows))
    assert copy.stats(10 * MINUTE, HOUR) == windows.stats(10 * MINUTE, HOUR)
    assert copy.before_purchase(10 * MINUTE, "m1") == windows.before_purchase(10 * MINUTE, "m1")


@pytest.mark.parametrize("seed", range(3))
def test_before_purchase_equals_its_definitions(seed: int) -> None:
    """The one-pass summary a purchase's features use, against each definition recomputed from
    the purchases: same-time purchases, out-of-order inserts and queries between purchases."""
    rng = random.Random(seed)
    windows = PurchaseWindows()
    purchases: list[tuple[int, int, str]] = []
    now = 0
    spans = sorted(WINDOW_SPANS.values())
    for _ in range(800):
        now += rng.choice([0, MINUTE, HOUR, 6 * HOUR, DAY, 3 * DAY])
        merchant = f"m{rng.randrange(12)}"
        # The query comes before the purchase is added, as in the engine.
        prior = windows.before_purchase(now, merchant)
        held = [(t, a, m) for t, a, m in purchases if now - 30 * DAY < t <= now]
        assert prior.windows == [
            (len(inside), sum(a for _, a, _ in inside), max(a for _, a, _ in inside))
            if (inside := [p for p in purchases if now - span < p[0] <= now]) else (0, 0, 0)
            for span in spans
        ]
        for median, span in ((prior.median_7d, 7 * DAY), (prior.median_30d, 30 * DAY)):
            amounts = [a for t, a, _ in purchases if now - span < t <= now]
            assert median == (statistics.median(amounts) if amounts else None)
        assert prior.distinct_merchants_30d == len({m for _, _, m in held})
        assert prior.known_merchant == any(m == merchant and t < now for t, _, m in held)
        before = [t for t, _, _ in purchases if t <= now]
        assert prior.previous_time == (max(before) if before else None)
        assert prior.amounts_7d == sorted(a for t, a, _ in purchases if now - 7 * DAY < t <= now)
        when = now - rng.randrange(HOUR) if rng.random() < 0.2 else now
        purchase = (when, rng.randint(1, 100_000), merchant)
        windows.add(*purchase)
        purchases.append(purchase)
        windows.evict(now - HOUR)
