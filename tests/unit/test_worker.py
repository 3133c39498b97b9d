"""The worker's process settings (its Kafka behaviour is tested in tests/integration)."""

from __future__ import annotations

import gc

from agents.worker import GC_YOUNG_THRESHOLD, tune_gc


def test_the_worker_raises_the_young_gc_threshold_and_keeps_a_higher_one() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # Python's default
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(GC_YOUNG_THRESHOLD * 2, 5, 5)  # set higher by whoever runs it
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD * 2, 5, 5)
        gc.set_threshold(0, 10, 10)  # automatic collection off: left off
        tune_gc()
        assert gc.get_threshold() == (0, 10, 10)
    finally:
        gc.set_threshold(*saved)
