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
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from agents.changelog import ChangelogReader, ChangelogWriter, changelog_producer
from agents.kafka import caught_up, client_config, ensure_topics
from agents.merchant_feed import MerchantFeed
from agents.settings import Settings
from agents.topics import DEAD_LETTER, INPUT_TOPICS, OUTPUT_TOPICS, TOPIC_OF_EVENT_TYPE
from pipeline.deadletter import dead_letter
from pipeline.engine import RiskEngine
from pipeline.events import Event, decode_event
from pipeline.exceptions import InvalidEvent
from pipeline.ordering import UNTIMED, EventTimeAligner
from pipeline.outputs import Output
from pipeline.replica import MerchantReplica
from pipeline.state.checkpoint import Record, checkpoint_records, checkpointed, restore_engine
from pipeline.state.store import PartitionStore, StateDirectory

__all__ = ["GC_YOUNG_THRESHOLD", "PipelineWorker", "WorkerStats", "tune_gc"]

log = logging.getLogger(__name__)

_EVENT_TYPE_OF_TOPIC = {topic: kind for kind, topic in TOPIC_OF_EVENT_TYPE.items()}
#: Each input of a partition buffers at most this many poll batches before its fetch pauses.
_BUFFERED_BATCHES = 4

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


@dataclass
class WorkerStats:
    records_in: int = 0
    #: Records fetched again below the next offset a partition expects (never applied twice).
    records_skipped: int = 0
    applied: int = 0
    dead_letters: int = 0
    outputs: Counter[str] = field(default_factory=Counter)
    checkpoints: int = 0
    #: Bytes of records written by checkpoints; the longest wall time the loop spent on one
    #: (flushing outputs, committing offsets, taking the changes), and the longest time
    #: writing one took meanwhile (changelog, then local store).
    checkpoint_bytes: int = 0
    longest_checkpoint_s: float = 0.0
    longest_checkpoint_write_s: float = 0.0
    #: Partitions restored from the changelog, and what they read.
    restores: list[dict[str, Any]] = field(default_factory=list)
    #: Longest wall time one loop iteration spent between two polls (work, sends, checkpoints):
    #: how long the stream can stall behind one batch, bad records included.
    longest_iteration_s: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    #: When the first input record arrived, and when a record last arrived or was applied:
    #: the busy time of a catch-up.
    first_activity: float | None = None
    last_activity: float = field(default_factory=time.monotonic)
    #: The merchant replica's figures when the worker stopped (None: no replica).
    merchant_replica: dict[str, Any] | None = None

    @property
    def busy_rate(self) -> float:
        """Records applied per second between the first record's arrival and the last
        record's arrival or application, whichever came later."""
        if self.first_activity is None or self.last_activity <= self.first_activity:
            return 0.0
        return self.applied / (self.last_activity - self.first_activity)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "records_skipped": self.records_skipped,
            "applied": self.applied,
            "dead_letters": self.dead_letters,
            "outputs": dict(self.outputs),
            "checkpoints": self.checkpoints,
            "checkpoint_bytes": self.checkpoint_bytes,
            "longest_checkpoint_s": round(self.longest_checkpoint_s, 3),
            "longest_checkpoint_write_s": round(self.longest_checkpoint_write_s, 3),
            "restores": self.restores,
            "longest_iteration_s": round(self.longest_iteration_s, 3),
            "merchant_replica": self.merchant_replica,
        }


class _Rejected:
    __slots__ = ("error",)

    def __init__(self, error: InvalidEvent) -> None:
        self.error = error


class PartitionTask:
    """One partition's engine, its store and changelog, its input alignment, and the offsets
    it has applied."""

    def __init__(self, partition: int, engine: RiskEngine, offsets: dict[str, int],
                 settings: Settings, replica: MerchantReplica | None = None, *,
                 store: PartitionStore | None = None, changelog: ChangelogWriter | None = None):
        self.partition = partition
        self.topics = {settings.topic(name): name for name in INPUT_TOPICS}
        self.engine = engine
        self.offsets = dict(offsets)
        self.store = store
        self.changelog = changelog
        #: Keys an incomplete checkpoint in the changelog touched: written again, with their
        #: stored values, by the next checkpoint (agents.changelog).
        self.repairs: set[bytes] = set()
        #: The checkpoint being written, if one is.
        self._writing: asyncio.Future[None] | None = None
        if replica is not None:
            self.engine.attach_merchants(replica.book)
        else:
            self.engine.keep_own_merchants()
        self.aligner: EventTimeAligner[tuple[ConsumerRecord, Event | _Rejected]] = (
            EventTimeAligner(list(self.topics), settings.max_task_idle_ms / 1000,
                             outlier_gap=self.engine.config.max_future_skew)
        )
        #: Next offset expected per input: records below it were applied or are buffered, so a
        #: re-delivery (a prefetch racing a seek, a retried fetch) is ignored, never re-applied.
        self.expected = dict(self.offsets)
        #: Inputs positioned at the state's offsets (:meth:`seeked`). Between an assignment
        #: and its seek the consumer may already fetch from the group's committed offsets,
        #: which can lie ahead of the state: those records are not the next to apply.
        self.positioned: set[str] = set()
        #: The offset of the first record read from each input (what a restore resumed at).
        self.first_read: dict[str, int] = {}
        self.dirty = False
        self.backlogged = False
        #: Records are waiting for the merchant replica to cover them.
        self.gated = False

    def demand(self) -> int | None:
        """The event time of the next record this task is waiting to apply (None: none).

        Not the engine's clock when nothing is buffered: a task that has run out of input
        must not hold the merchant replica back, or a task further ahead could wait forever
        for an input the replica paused on its account.
        """
        head = self.aligner.head_time()
        return None if head == UNTIMED else head

    def seeked(self, topic: str, offset: int) -> None:
        """The input is positioned at ``offset``: records from there on are this task's."""
        self.expected[topic] = offset
        self.positioned.add(topic)

    def push(self, topic: str, records: list[ConsumerRecord], now: float) -> int:
        """Buffer new records; returns how many were new."""
        if topic not in self.positioned:
            return 0  # fetched from where the group had committed, before the seek
        event_type = _EVENT_TYPE_OF_TOPIC[self.topics[topic]]
        push = self.aligner.push
        expected = self.expected.get(topic, 0)
        if records[0].offset < expected:
            records = [record for record in records if record.offset >= expected]
            if not records:
                return 0
        self.first_read.setdefault(topic, records[0].offset)
        self.expected[topic] = records[-1].offset + 1
        for record in records:
            try:
                event: Event | _Rejected = decode_event(event_type, record.value or b"")
                event_time = event.event_time
            except InvalidEvent as error:
                event, event_time = _Rejected(error), UNTIMED
            push(topic, event_time, (record, event), now)
        return len(records)

    def drain(
        self, now: float, limit: int, deadline: float, until: int | None,
        dead_letter_topic: str, stats: WorkerStats,
    ) -> list[Output]:
        """Apply up to ``limit`` released records, none after event time ``until`` (what the
        merchant replica covers; None: no replica), stopping at ``deadline`` (monotonic
        clock); return the outputs (dead letters included)."""
        outputs: list[Output] = []
        engine = self.engine
        process, pop_next = engine.process, self.aligner.pop_next
        released = 0
        # Records are popped one at a time because the horizon moves with the engine's clock.
        while released < limit:
            if not released & 255 and released and time.monotonic() >= deadline:
                break
            item = pop_next(now, engine.horizon(), until)
            if item is None:
                break
            released += 1
            topic, (record, event) = item
            self.offsets[topic] = record.offset + 1
            if not isinstance(event, _Rejected):
                try:
                    outputs.extend(process(event))
                    stats.applied += 1
                    continue
                except InvalidEvent as error:
                    event = _Rejected(error)
            stats.dead_letters += 1
            outputs.append(Output(dead_letter_topic, record.key.decode("utf-8", "replace")
                                  if record.key else "", dead_letter(
                event.error, record.value or b"", source_topic=topic,
                source_partition=record.partition, source_offset=record.offset,
                source_key=record.key,
            )))
        # A full batch, or one cut short by the deadline, means more may be releasable at once;
        # anything less is waiting for input.
        self.backlogged = released >= limit or (released > 0 and time.monotonic() >= deadline
                                                and self.aligner.buffered() > 0)
        head = self.aligner.head_time()
        self.gated = until is not None and head is not None and head > until
        if released:
            self.dirty = True
        return outputs

    async def checkpoint(self, stats: WorkerStats) -> int:
        """Take what changed since the last checkpoint and write it -- to the changelog, then
        to the local store -- while the worker goes on; returns the bytes of its records.
        Nothing of a checkpoint is written before the previous one is complete."""
        assert self.store is not None and self.changelog is not None
        await self.written()
        records = checkpoint_records(self.engine, dict(self.offsets))
        if self.repairs:
            written = {key for key, _ in records}
            store = self.store
            records[-1:-1] = [(key, store.get(key)) for key in sorted(self.repairs - written)]
            self.repairs.clear()
        checkpointed(self.engine)
        self.dirty = False
        self._writing = asyncio.ensure_future(self._write(records, stats))
        return sum(len(key) + len(value or b"") for key, value in records)

    async def _write(self, records: list[Record], stats: WorkerStats) -> None:
        assert self.store is not None and self.changelog is not None
        started = time.monotonic()
        position = await self.changelog.write(records)
        await asyncio.to_thread(self.store.write, records, {"offset": position})
        # Only now may users leave memory: the store holds their latest records.
        self.engine.users.evict()
        stats.longest_checkpoint_write_s = max(stats.longest_checkpoint_write_s,
                                               time.monotonic() - started)

    async def written(self) -> None:
        """Wait until the last checkpoint is in the changelog and the store (raises what
        writing it raised)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing


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
        self.feed = MerchantFeed(settings, directory) if settings.merchant_replica else None
        self.changelog_topic = settings.changelog_topic()
        self._restorer = ChangelogReader(settings, self.changelog_topic)
        #: An error met in a rebalance callback, raised by :meth:`run`.
        self._failure: BaseException | None = None
        #: When partitions were last assigned: a restore is not idleness.
        self._assigned_at = 0.0

    @property
    def replica(self) -> MerchantReplica | None:
        """The merchant replica every task queries (None: off, or not started yet)."""
        return self.feed.replica if self.feed is not None else None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> WorkerStats:
        settings = self.settings
        tune_gc()
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
                        await self._save_state(list(self.tasks), with_replica=True)
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
        return self.stats

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        settings = self.settings
        last_checkpoint = last_activity = last_replica_save = time.monotonic()
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
                    self.stats.records_in += new
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
                        task.aligner.set_caught_up(tp.topic, await caught_up(consumer, tp))
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
                for index, task in enumerate(self.tasks.values(), start=1):
                    # Each task's slice of the time budget; time one leaves unused rolls over.
                    outputs = task.drain(now, share, now + budget * index, until,
                                         self._output_topics[DEAD_LETTER], self.stats)
                    if outputs:
                        await self._send(outputs)
                    backlog = backlog or task.backlogged
                    gated = gated or task.gated
                if batch:
                    if self.stats.first_activity is None:
                        self.stats.first_activity = now
                    last_activity = self.stats.last_activity = now
                if self.stats.applied + self.stats.dead_letters > applied_before:
                    last_activity = self.stats.last_activity = time.monotonic()
                if now - last_checkpoint >= settings.checkpoint_interval_s:
                    with_replica = (now - last_replica_save
                                    >= settings.replica_checkpoint_interval_s)
                    await self._save_state([p for p, t in self.tasks.items() if t.dirty],
                                           with_replica)
                    last_checkpoint = now
                    if with_replica:
                        last_replica_save = now
                self.stats.longest_iteration_s = max(
                    self.stats.longest_iteration_s, time.monotonic() - now
                )
            if (
                self.stop_after_idle_s is not None
                and now - max(last_activity, self._assigned_at) >= self.stop_after_idle_s
                and all(task.aligner.drained() for task in self.tasks.values())
            ):
                log.info("no input for %.1f s: stopping", self.stop_after_idle_s)
                break

    def _replica_ready(self) -> int | None:
        """The latest event time the tasks may apply now (None: no replica to wait for)."""
        replica = self.replica
        if replica is None:
            return None
        ready = replica.ready_until()
        return UNTIMED if ready is None else ready

    async def _save_state(self, partitions: list[int], with_replica: bool) -> None:
        """Checkpoint ``partitions``, let the replica forget what no task needs any more, and
        save the replica too if asked (a standby worker, with no tasks, has none to save)."""
        await self._checkpoint(partitions)
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
            self.stats.outputs[output.stream] += 1

    async def _checkpoint(self, partitions: list[int]) -> None:
        """Make outputs durable, commit the offsets, then write each partition's changes to
        the changelog and the local store."""
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
            size = await self.tasks[partition].checkpoint(self.stats)
            self.stats.checkpoint_bytes += size
            log.debug("partition %d checkpoint: %d bytes", partition, size)
        self.stats.checkpoints += 1
        self.stats.longest_checkpoint_s = max(self.stats.longest_checkpoint_s,
                                              time.monotonic() - started)

    # -- rebalance listener ------------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        partitions = sorted({tp.partition for tp in revoked} & set(self.tasks))
        if not partitions:
            return
        async with self._lock:
            await self._checkpoint(partitions)
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

    async def _restore(self, partition: int) -> PartitionTask:
        """Bring the partition's local store up to its changelog, and read its engine."""
        settings, replica, producer = self.settings, self.replica, self._changelog_producer
        assert producer is not None
        store = await asyncio.to_thread(self.state.open, partition)
        try:
            restored = await self._restorer.restore(partition, store)
            engine, offsets = restore_engine(
                store, settings.risk_config(), cache_capacity=settings.user_cache_size,
                own_merchants=replica is None, where=str(store.path))
        except BaseException:
            store.close()
            raise
        task = PartitionTask(partition, engine, offsets, settings, replica, store=store,
                             changelog=ChangelogWriter(producer, self.changelog_topic, partition))
        task.repairs = restored.discarded
        figures = {"partition": partition, "changelog_records": restored.records,
                   "checkpoints": restored.checkpoints, "users": restored.users,
                   "seconds": round(restored.seconds, 3), "from_offset": restored.started_from,
                   "cleared": restored.cleared, "resumed_at": dict(offsets),
                   "first_read": task.first_read}
        self.stats.restores.append(figures)
        log.info("partition %d: %s; resuming inputs at %s", partition,
                 f"restored {restored.checkpoints} checkpoints ({restored.records} changelog "
                 f"records, {restored.users} users) in {restored.seconds:.2f} s"
                 if restored.records else "local store up to date with the changelog",
                 offsets or "their beginning")
        return task
