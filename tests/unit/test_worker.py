"""The worker's process settings and the figures it reports (its Kafka behaviour is tested in
tests/integration)."""

from __future__ import annotations

import gc

from agents.observability.progress import ProgressLog
from agents.observability.stats import Distribution, WorkerStats
from agents.worker import GC_YOUNG_THRESHOLD, tune_gc
from pipeline.timeutil import parse_time


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


def test_a_busy_worker_logs_a_live_line_and_an_idle_one_stays_quiet() -> None:
    stats = WorkerStats()
    progress = ProgressLog(stats, interval_s=5.0)
    assert progress.tick(100.0, lag=0, event_time=None) is None  # the first tick starts the clock
    stats.applied_by_topic["transactions"] += 2_000
    stats.count_output("alerts", {"severity": "high"})
    stats.count_output("limit-adjustments", {"kind": "temporary_cut"})
    stats.dead_letters_by_reason["late"] += 3
    assert progress.tick(103.0, lag=10, event_time=None) is None  # not yet five seconds
    line = progress.tick(105.0, lag=42, event_time=parse_time("2026-03-02T10:14:07Z"))
    assert line == ("applied 2,000 records (400/s), lag 42 records, event time "
                    "2026-03-02T10:14:07Z; 1 alerts, 1 limit adjustments, 3 dead letters")
    assert progress.tick(111.0, lag=0, event_time=None) is None  # nothing applied since


def test_distributions_give_prometheus_cumulative_buckets() -> None:
    scores = Distribution((0.5, 0.9))
    for score in (0.1, 0.5, 0.7, 0.95, 0.99):
        scores.observe(score)
    assert scores.cumulative() == [2, 3, 5]  # le=0.5 holds 0.5 itself
    assert scores.quantile(0.99) == float("inf") and scores.quantile(0.4) == 0.5
