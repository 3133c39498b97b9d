"""Prometheus metrics of one worker, made from its figures when Prometheus scrapes them.

The loop keeps plain counts (:mod:`.stats`); this collector turns them, and what the worker's
partitions hold at that moment (offsets, clocks, users, restores), into metric families in the
standard exposition format. Names follow Prometheus' conventions: a ``riskstream_`` prefix,
base units in the name (``_seconds``, ``_bytes``), ``_total`` on counters. docs/operations.md
describes each one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agents.observability.stats import Distribution, WorkerStats
from pipeline.state.codec import FORMAT_VERSION
from pipeline.timeutil import SECOND

if TYPE_CHECKING:
    from agents.changelog import RestoreResult
    from agents.merchant_feed import MerchantFeed
    from agents.partition import PartitionTask

__all__ = ["Observed", "WorkerCollector", "worker_registry"]


class Observed(Protocol):
    """What the collector reads of a worker."""

    stats: WorkerStats
    tasks: dict[int, PartitionTask]
    restoring: dict[int, RestoreResult]
    feed: MerchantFeed | None

    def input_lag(self) -> Iterable[tuple[str, int, int]]:
        """(topic, partition, records not yet applied) per assigned input."""
        ...

    def ready(self) -> bool: ...

    @property
    def last_iteration(self) -> float:
        """Wall-clock time (Unix seconds) the loop last completed an iteration (0: never)."""
        ...


def _histogram(name: str, documentation: str, figures: Distribution) -> HistogramMetricFamily:
    bounds = [*(repr(float(bound)) for bound in figures.bounds), "+Inf"]
    return HistogramMetricFamily(
        name, documentation, buckets=list(zip(bounds, figures.cumulative(), strict=True)),
        sum_value=figures.total)


def _counter(name: str, documentation: str, label: str, counts: dict[str, int]
             ) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def _lag(name: str, documentation: str, rows: Iterable[tuple[str, int, int]]
         ) -> GaugeMetricFamily:
    """A gauge of records behind, per (topic, partition)."""
    family = GaugeMetricFamily(name, documentation, labels=["topic", "partition"])
    for topic, partition, records in rows:
        family.add_metric([topic, str(partition)], records)
    return family


class WorkerCollector(Collector):
    """Every metric of one worker, read when scraped."""

    def __init__(self, worker: Observed, group: str) -> None:
        self.worker = worker
        self.group = group

    def collect(self) -> Iterator[Metric]:
        yield from self._counts(self.worker.stats)
        yield from self._partitions()
        yield from self._replica()
        worker = self.worker
        info = GaugeMetricFamily("riskstream_worker_info", "The worker's consumer group and "
                                 "state format.", labels=["group", "state_format"])
        info.add_metric([self.group, str(FORMAT_VERSION)], 1)
        yield info
        yield GaugeMetricFamily("riskstream_ready", "1 once every assigned partition is "
                                "restored and has read its inputs to their end, else 0.",
                                value=1 if worker.ready() else 0)
        yield GaugeMetricFamily("riskstream_last_iteration_timestamp_seconds",
                                "When the worker's loop last completed an iteration.",
                                value=worker.last_iteration)

    @staticmethod
    def _counts(stats: WorkerStats) -> Iterator[Metric]:
        yield _counter("riskstream_records_received", "Input records read (each once).",
                       "topic", stats.records_in_by_topic)
        yield CounterMetricFamily("riskstream_records_redelivered",
                                  "Input records fetched again below the next offset to "
                                  "apply, and ignored.", value=stats.records_skipped)
        yield _counter("riskstream_records_applied",
                       "Input records applied to the state.", "topic", stats.applied_by_topic)
        yield _counter("riskstream_dead_letters",
                       "Input records sent to the dead-letter topic.", "reason",
                       stats.dead_letters_by_reason)
        yield _counter("riskstream_outputs", "Records written to output topics.", "topic",
                       stats.outputs)
        yield _counter("riskstream_alerts", "Alerts raised.", "severity",
                       stats.alerts_by_severity)
        yield _counter("riskstream_limit_adjustments", "Credit-limit adjustments.", "kind",
                       stats.adjustments_by_kind)
        yield CounterMetricFamily("riskstream_checkpoints", "Checkpoints taken.",
                                  value=stats.checkpoints)
        yield CounterMetricFamily("riskstream_checkpoint_written_bytes",
                                  "Bytes of state records checkpointed.",
                                  value=stats.checkpoint_bytes)
        yield CounterMetricFamily("riskstream_restores", "Partitions restored from the "
                                  "changelog.", value=len(stats.restores))
        yield CounterMetricFamily("riskstream_restore_read_records", "Changelog records read "
                                  "by completed restores.",
                                  value=sum(r["changelog_records"] for r in stats.restores))
        yield _histogram("riskstream_output_latency_seconds", "From an input record's broker "
                         "timestamp to its outputs handed to the producer.",
                         stats.output_latency_seconds)
        yield _histogram("riskstream_loop_iteration_seconds", "Wall time of one loop "
                         "iteration (poll, apply, send, checkpoint).", stats.iteration_seconds)
        yield _histogram("riskstream_checkpoint_duration_seconds", "Loop time a checkpoint "
                         "took (flush outputs, commit offsets, take the changes).",
                         stats.checkpoint_seconds)
        yield _histogram("riskstream_checkpoint_write_duration_seconds", "Time writing a "
                         "checkpoint took in the background (changelog, then local store).",
                         stats.checkpoint_write_seconds)
        yield _histogram("riskstream_purchase_score", "Fraud score of each purchase (0..1).",
                         stats.scores)

    def _partitions(self) -> Iterator[Metric]:
        worker = self.worker
        now = time.time()
        tasks = dict(worker.tasks)
        yield GaugeMetricFamily("riskstream_assigned_partitions",
                                "Partitions this worker owns.", value=len(tasks))
        yield _lag("riskstream_consumer_lag_records", "Records of an input partition not "
                   "applied yet (broker's end minus next offset).", worker.input_lag())
        clock = GaugeMetricFamily("riskstream_event_time_seconds", "Newest event time "
                                  "applied (Unix seconds).", labels=["partition"])
        behind = GaugeMetricFamily("riskstream_event_time_lag_seconds", "Wall clock minus "
                                   "the newest event time applied.", labels=["partition"])
        users = GaugeMetricFamily("riskstream_users_in_memory", "Users whose state is in "
                                  "memory.", labels=["partition"])
        keys = GaugeMetricFamily("riskstream_state_keys", "Records in the partition's local "
                                 "store (RocksDB's estimate).", labels=["partition"])
        learned = CounterMetricFamily("riskstream_model_examples_learned", "Examples a "
                                      "partition's models have learned from.",
                                      labels=["model", "partition"])
        for partition, task in sorted(tasks.items()):
            label = str(partition)
            engine = task.engine
            if engine.watermark is not None:
                seconds = engine.watermark / SECOND
                clock.add_metric([label], seconds)
                behind.add_metric([label], now - seconds)
            users.add_metric([label], len(engine.users))
            if task.store is not None:
                keys.add_metric([label], task.store.estimated_keys())
            learned.add_metric(["fraud", label], engine.scorer.classifier.learned)
            learned.add_metric(["default", label], engine.default_model.learned)
        yield from (clock, behind, users, keys, learned)
        restoring = GaugeMetricFamily("riskstream_restore_progress_records", "Changelog "
                                      "records read so far by a restore in progress.",
                                      labels=["partition"])
        for partition, result in sorted(dict(worker.restoring).items()):
            restoring.add_metric([str(partition)], result.records)
        yield restoring

    def _replica(self) -> Iterator[Metric]:
        feed = self.worker.feed
        if feed is None or feed.replica is None:
            return
        yield _lag("riskstream_merchant_replica_lag_records", "Records of a partition the "
                   "merchant replica has not read yet.", feed.lag())
        yield CounterMetricFamily("riskstream_merchant_replica_applied", "Purchases and "
                                  "labels the merchant replica applied.", value=feed.applied)
        yield GaugeMetricFamily("riskstream_merchant_replica_purchases", "Purchases the "
                                "merchant replica holds.", value=len(feed.replica))


def worker_registry(worker: Observed, group: str) -> CollectorRegistry:
    """A registry of its own for one worker (several may run in one process, as in tests),
    with the process' CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WorkerCollector(worker, group))
    ProcessCollector(registry=registry)
    return registry
