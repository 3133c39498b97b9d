"""The worker: reads the co-partitioned inputs, runs one :class:`RiskEngine` per partition, and
writes alerts, limit adjustments and dead letters.

It uses aiokafka directly, in batches, rather than one Faust stream event per record: Faust's
per-event machinery alone costs more than the whole risk pipeline (a no-op agent tops out near
14k events/s here), it cannot align the input topics by event time, and its windowed tables have no
sliding windows. Faust still hosts this worker (``agents.app``) for its lifecycle and CLI.

Delivery: at-least-once in, idempotent state. Each partition's state lives in a local store
(:mod:`pipeline.state.store`) backed by the group's changelog topic (:mod:`agents.changelog`),
with the input offsets it reflects. A checkpoint flushes the outputs (acknowledged by the
brokers), commits the offsets (which also tells a worker that has lost the partition not to
write), produces the changed records to the changelog, then writes them to the local store.
A partition assigned to any worker restores its store from the changelog and resumes at the
stored offsets, re-emitting the outputs since its last checkpoint with the ids they had.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from agents.changelog import ChangelogReader, RestoreResult, changelog_producer
from agents.kafka import caught_up, client_config, ensure_topics
from agents.merchant_feed import MerchantFeed
from agents.observability.deadletters import DeadLetterWatch
from agents.observability.endpoints import OperationsServer
from agents.observability.metrics import worker_registry
from agents.observability.progress import ProgressLog
from agents.observability.stats import WorkerStats
from agents.partition import PartitionTask
from agents.restore import PartitionRestorer
from agents.settings import Settings
from agents.topics import DEAD_LETTER, INPUT_TOPICS, OUTPUT_TOPICS
from pipeline.ordering import UNTIMED
from pipeline.outputs import Output
from pipeline.replica import MerchantReplica
from pipeline.state.store import StateDirectory
from pipeline.training import load_models

__all__ = ["GC_YOUNG_THRESHOLD", "PipelineWorker", "WorkerStats", "tune_gc"]

log = logging.getLogger(__name__)

#: Each input of a partition buffers at most this many poll batches before its fetch pauses.
_BUFFERED_BATCHES = 4
#: Users of checkpoints encoded per loop iteration while the stream keeps up (about 5 ms):
#: a checkpoint of thousands of users stalls no purchase for long.
_CHECKPOINT_SLICE_USERS = 200

#: Seconds between checks that most input is not dead-lettered for one reason.
_DEAD_LETTER_CHECK_S = 5.0

#: Allocations between two young collections of Python's cyclic garbage collector (its
#: default: 700). A worker's per-record objects are freed by reference counting, and what it
#: keeps lives as long as it runs, yet at the default the collector's full passes over the
#: growing state took 8-10 % of a busy worker's time on the demo history; at this threshold,
#: 1 % (timed with ``gc.callbacks``; worker processes of their own, 14 alternated pairs: CPU
#: time -8 %, same peak memory). Cycles are still collected, less often.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Raise the collector's young threshold to :data:`GC_YOUNG_THRESHOLD` for this process
    (a higher one, set by whoever runs the worker, is kept)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class PipelineWorker(ConsumerRebalanceListener):
    """Run with ``await worker.run()``; stop with ``worker.stop()``."""

    def __init__(self, settings: Settings, *, stop_after_idle_s: float | None = None) -> None:
        self.settings = settings
        self.stop_after_idle_s = stop_after_idle_s
        directory = settings.state_dir / settings.group_id
        self.state = StateDirectory(directory)
        self.tasks: dict[int, PartitionTask] = {}
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._changelog_producer: AIOKafkaProducer | None = None
        self._output_topics = {
            name: settings.topic(name) for name in OUTPUT_TOPICS
        }
        #: The risk policy, read once: every partition this worker takes decides by the same.
        self.policy = settings.risk_config()
        self.feed = (MerchantFeed(settings, directory, policy=self.policy)
                     if settings.merchant_replica else None)
        self.changelog_topic = settings.changelog_topic()
        self._restorer = ChangelogReader(settings, self.changelog_topic)
        #: An error met in a rebalance callback, raised by :meth:`run`.
        self._failure: BaseException | None = None
        #: When partitions were last assigned: a restore is not idleness.
        self._assigned_at = 0.0
        #: Whether the group has assigned this worker its share (perhaps none) yet.
        self._joined = False
        #: When the loop last completed an iteration (monotonic, and Unix time for metrics).
        self._beat = time.monotonic()
        self._beat_wall = 0.0
        self.registry = worker_registry(self, settings.group_id)
        self.server = OperationsServer(self, self.registry, settings.http_host,
                                       settings.http_port, settings.health_stall_s)
        self.progress = ProgressLog(self.stats, settings.progress_interval_s)
        #: Models trained on a history (``riskstream train``): new partitions start from them.
        self.models = load_models(settings.model_dir) if settings.model_dir is not None else None
        self._partitions = PartitionRestorer(settings, self.policy, self.state, self._restorer,
                                             self.models, self.stats)
        self.dead_letter_watch = DeadLetterWatch(self.stats, _DEAD_LETTER_CHECK_S,
                                                 self.policy.currency)

    @property
    def replica(self) -> MerchantReplica | None:
        """The merchant replica every task queries (None: off, or not started yet)."""
        return self.feed.replica if self.feed is not None else None

    def stop(self) -> None:
        self._stopping.set()

    # -- what operators see (agents.observability) ------------------------------------------
    @property
    def restoring(self) -> dict[int, RestoreResult]:
        return self._restorer.in_progress

    @property
    def last_iteration(self) -> float:
        return self._beat_wall

    def input_lag(self) -> Iterable[tuple[str, int, int]]:
        consumer = self._consumer
        if consumer is None:
            return
        for partition, task in sorted(self.tasks.items()):
            for topic in sorted(task.positioned):
                highwater = consumer.highwater(TopicPartition(topic, partition))
                if highwater is not None:
                    yield topic, partition, max(0, highwater - task.offsets.get(topic, 0))

    def ready(self) -> bool:
        return self.readiness()[0]

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready once the group has assigned this worker its partitions and each is restored
        and has read every input to the end the broker reported."""
        catching_up = sorted(partition for partition, task in self.tasks.items()
                             if not task.reached_end_of_inputs())
        restoring = sorted(self.restoring)
        ready = self._joined and not restoring and not catching_up
        return ready, {"joined": self._joined, "partitions": sorted(self.tasks),
                       "restoring": restoring, "catching_up": catching_up}

    def health(self, stall_s: float) -> tuple[bool, dict[str, Any]]:
        """Alive while the loop iterates, or a restore reads the changelog (the loop waits
        for it; a restore that stalls fails the worker by itself)."""
        since = time.monotonic() - self._beat
        alive = since <= stall_s or bool(self.restoring)
        return alive, {"seconds_since_iteration": round(since, 3),
                       "restoring": sorted(self.restoring)}

    async def run(self) -> WorkerStats:
        tune_gc()
        self._beat = time.monotonic()
        await self.server.start()
        try:
            return await self._run()
        finally:
            await self.server.stop()

    async def _run(self) -> WorkerStats:
        settings = self.settings
        await asyncio.to_thread(ensure_topics, settings)
        common = client_config(settings)
        consumer = AIOKafkaConsumer(
            **common,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Range assignment gives one worker the same partition number of every input topic.
            partition_assignment_strategy=(RangePartitionAssignor,),
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            max_poll_records=settings.max_batch,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.session_timeout_ms // 3,
        )
        producer = AIOKafkaProducer(
            **common, acks="all", linger_ms=5, enable_idempotence=False,
        )
        self._consumer, self._producer = consumer, producer
        self._changelog_producer = changelog = changelog_producer(settings)
        await producer.start()
        await changelog.start()
        if self.feed is not None:
            await self.feed.start()
        try:
            consumer.subscribe([settings.topic(name) for name in INPUT_TOPICS], listener=self)
            await consumer.start()
            try:
                await self._loop(consumer)
                if self._failure is None:
                    async with self._lock:
                        await self._save_state(list(self.tasks), with_replica=True,
                                               at_once=True)
                        for task in self.tasks.values():
                            await task.written()
            finally:
                await consumer.stop()
                for task in self.tasks.values():
                    with contextlib.suppress(Exception):  # already raised, or to be
                        await task.written()
                    if task.store is not None:
                        task.store.close()
        finally:
            await self._restorer.stop()
            if self.feed is not None:
                await self.feed.stop()
                self.stats.merchant_replica = self.feed.describe()
            await changelog.stop()
            await producer.stop()
        if self._failure is not None:
            raise self._failure
        self.dead_letter_watch.summary()
        return self.stats

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        settings = self.settings
        last_activity = last_replica_save = time.monotonic()
        max_buffered = _BUFFERED_BATCHES * settings.max_batch
        backlog = gated = False
        while not self._stopping.is_set():
            if backlog:
                # getmany(timeout_ms=0) does not yield to the event loop when nothing is
                # fetched: yield here so fetches, heartbeats and signals keep running.
                await asyncio.sleep(0)
            # Records waiting for the merchant replica wait for its next fetch, not a long poll.
            batch = await consumer.getmany(
                timeout_ms=0 if backlog else 5 if gated else 100, max_records=settings.max_batch
            )
            async with self._lock:
                now = time.monotonic()
                for tp, records in batch.items():
                    task = self.tasks.get(tp.partition)
                    if task is None:  # revoked while the fetch was in flight
                        continue
                    new = task.push(tp.topic, records, now)
                    self.stats.records_in_by_topic[tp.topic] += new
                    self.stats.records_skipped += len(records) - new
                # How far this worker has seen its inputs reach: the replica must have read
                # that far too before it takes them for silent (its fetches can lag ours).
                ends: dict[tuple[str, int], int] = {}
                for tp in consumer.assignment():
                    task = self.tasks.get(tp.partition)
                    if task is not None:
                        if self.feed is not None:
                            ends[tp.topic, tp.partition] = max(consumer.highwater(tp) or 0,
                                                               task.expected.get(tp.topic, 0))
                        # Back-pressure: stop fetching an input whose buffer is full. The input
                        # being waited for is empty, so it is never the one paused.
                        if task.aligner.buffered(tp.topic) >= max_buffered:
                            consumer.pause(tp)
                        elif tp in consumer.paused():
                            consumer.resume(tp)
                        task.input_caught_up(tp.topic, await caught_up(consumer, tp))
                if self.feed is not None and self.tasks:  # a standby worker replicates nothing
                    demands = [d for d in (t.demand() for t in self.tasks.values())
                               if d is not None]
                    await self.feed.poll(now, min(demands) if demands else None, ends)
                backlog = gated = False
                applied_before = self.stats.applied + self.stats.dead_letters
                # One batch per iteration, shared by the partitions: an iteration stays short
                # (heartbeats, checkpoints and rebalances are never held up behind a backlog).
                share = -(-settings.max_batch // max(1, len(self.tasks)))
                budget = settings.max_iteration_ms / 1000 / max(1, len(self.tasks))
                until = self._replica_ready()
                slice_users = max(1, _CHECKPOINT_SLICE_USERS // max(1, len(self.tasks)))
                for index, task in enumerate(self.tasks.values(), start=1):
                    # Each task's slice of the time budget; time one leaves unused rolls over.
                    outputs = task.drain(now, share, now + budget * index, until,
                                         self._output_topics[DEAD_LETTER], self.stats)
                    if outputs:
                        await self._send(outputs)
                        self._observe_latency(task.output_timestamps)
                    backlog = backlog or task.backlogged
                    gated = gated or task.gated
                    if task.taking:  # behind a backlog, throughput first: all at once
                        task.encode_checkpoint(self.stats, None if backlog else slice_users)
                if batch:
                    if self.stats.first_activity is None:
                        self.stats.first_activity = now
                    last_activity = self.stats.last_activity = now
                if self.stats.applied + self.stats.dead_letters > applied_before:
                    last_activity = self.stats.last_activity = time.monotonic()
                # One partition's checkpoint per iteration at most: taking one holds the
                # stream for its flush, commit and models, so the partitions take turns.
                due = self._checkpoint_due(now)
                with_replica = (now - last_replica_save
                                >= settings.replica_checkpoint_interval_s)
                if due is not None or with_replica:
                    await self._save_state([] if due is None else [due], with_replica)
                    if with_replica:
                        last_replica_save = now
                self._beat = finished = time.monotonic()
                self._beat_wall = time.time()
                self.stats.iterated(finished - now)
                if self.tasks:
                    self._report_progress(finished)
                    self.dead_letter_watch.check(finished)
            if (
                self.stop_after_idle_s is not None
                and now - max(last_activity, self._assigned_at) >= self.stop_after_idle_s
                and all(task.aligner.drained() for task in self.tasks.values())
            ):
                log.info("no input for %.1f s: stopping", self.stop_after_idle_s)
                break

    def _observe_latency(self, timestamps: list[int]) -> None:
        """From each record's broker timestamp (ms) to now, when its outputs were sent."""
        now_ms = time.time() * 1000
        observe = self.stats.output_latency_seconds.observe
        for timestamp in timestamps:
            if timestamp >= 0:
                observe(max(0.0, now_ms - timestamp) / 1000)

    def _report_progress(self, now: float) -> None:
        if self.progress.interval_s <= 0 or not self.progress.due(now):
            return
        clocks = [task.engine.watermark for task in self.tasks.values()
                  if task.engine.watermark is not None]
        lag = sum(records for _, _, records in self.input_lag())
        self.progress.tick(now, lag, min(clocks) if clocks else None)

    def _checkpoint_due(self, now: float) -> int | None:
        """The changed partition whose checkpoint is most overdue, if one is due."""
        due = [(task.next_checkpoint, partition) for partition, task in self.tasks.items()
               if task.dirty and task.next_checkpoint <= now]
        if not due:
            return None
        partition = min(due)[1]
        self.tasks[partition].next_checkpoint = now + self.settings.checkpoint_interval_s
        return partition

    def _replica_ready(self) -> int | None:
        """The latest event time the tasks may apply now (None: no replica to wait for)."""
        replica = self.replica
        if replica is None:
            return None
        ready = replica.ready_until()
        return UNTIMED if ready is None else ready

    async def _save_state(self, partitions: list[int], with_replica: bool, *,
                          at_once: bool = False) -> None:
        """Checkpoint ``partitions``, let the replica forget what no task needs any more, and
        save the replica too if asked (a standby worker, with no tasks, has none to save)."""
        await self._checkpoint(partitions, at_once=at_once)
        self._evict_merchants()
        if with_replica and self.feed is not None and self.tasks:
            await self.feed.save()

    def _evict_merchants(self) -> None:
        """Let the replica forget purchases older than any task will look at again."""
        replica = self.replica
        if replica is None:
            return
        before = replica.oldest_needed([task.engine.watermark for task in self.tasks.values()])
        if before is not None:
            replica.evict(before)

    async def _send(self, outputs: list[Output]) -> None:
        producer = self._producer
        assert producer is not None
        topics = self._output_topics
        for output in outputs:
            topic = topics.get(output.stream, output.stream)
            await producer.send(
                topic, orjson.dumps(output.value), key=output.key.encode() if output.key else None
            )
            self.stats.count_output(output.stream, output.value)

    async def _checkpoint(self, partitions: list[int], *, at_once: bool = False) -> None:
        """Make outputs durable, commit the offsets, then take each partition's changes to
        write them to the changelog and the local store (``at_once``: encoded now, not
        between the next batches)."""
        if not partitions:
            return
        assert self._producer is not None and self._consumer is not None
        started = time.monotonic()
        await self._producer.flush()
        commits: dict[TopicPartition, OffsetAndMetadata] = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "")
            for partition in partitions for topic, offset in self.tasks[partition].offsets.items()
        }
        if commits:
            try:
                await self._consumer.commit(commits)
            except CommitFailedError as exc:
                # The group has moved on without this worker: another one may own these
                # partitions now, and their changelog is no longer this worker's to write.
                log.warning("not checkpointing partitions %s: %s", partitions, exc)
                return
            except Exception as exc:  # committed offsets only feed lag monitoring
                log.warning("offset commit failed (state is safe in the store): %r", exc)
        for partition in partitions:
            await self.tasks[partition].checkpoint(self.stats, at_once=at_once)
        self.stats.checkpoint_taken(time.monotonic() - started)

    # -- rebalance listener ------------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        partitions = sorted({tp.partition for tp in revoked} & set(self.tasks))
        if not partitions:
            return
        async with self._lock:
            await self._checkpoint(partitions, at_once=True)
            for partition in partitions:
                task = self.tasks.pop(partition)
                await task.written()
                if task.store is not None:
                    task.store.close()
        log.info("revoked partitions %s", partitions)

    async def _ensure_replica_covers(self, task: PartitionTask) -> None:
        """A task resuming before what the replica has forgotten needs it read again."""
        replica, feed = self.replica, self.feed
        if replica is not None and feed is not None and not replica.serves(task.engine.watermark):
            await feed.restart()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        # Nothing is fetched for these partitions until they are positioned where their
        # state resumes (a restore can take a while).
        consumer.pause(*assigned)
        async with self._lock:
            try:
                for partition in sorted({tp.partition for tp in assigned}):
                    if partition not in self.tasks:
                        self.tasks[partition] = await self._restore(partition)
                        await self._ensure_replica_covers(self.tasks[partition])
            except Exception as exc:  # raised by run(): a worker never runs on without state
                self._failure = exc
                self.stop()
                return
            for tp in assigned:
                task = self.tasks[tp.partition]
                offset = task.offsets.get(tp.topic)
                if offset is None:
                    # No state for this input: read it all, since committed offsets without
                    # the state they belong to would skip events.
                    await consumer.seek_to_beginning(tp)
                    offset = 0
                else:
                    consumer.seek(tp, offset)
                task.seeked(tp.topic, offset)
            consumer.resume(*assigned)
            self._assigned_at = time.monotonic()
            self._joined = True

    async def _restore(self, partition: int) -> PartitionTask:
        """The assigned partition's task, its state restored (agents.restore)."""
        assert self._consumer is not None and self._changelog_producer is not None
        return await self._partitions.restore(partition, self._consumer,
                                              self._changelog_producer, self.replica)
