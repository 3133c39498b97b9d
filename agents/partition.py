"""One partition's share of the worker: its engine, its store and changelog writer, the
event-time alignment of its inputs, and the offsets it has applied."""

from __future__ import annotations

import asyncio
import time

from aiokafka.structs import ConsumerRecord

from agents.changelog import ChangelogWriter
from agents.observability.stats import WorkerStats
from agents.settings import Settings
from agents.topics import INPUT_TOPICS, TOPIC_OF_EVENT_TYPE
from pipeline.deadletter import dead_letter
from pipeline.engine import RiskEngine
from pipeline.events import Event, decode_event
from pipeline.exceptions import InvalidEvent
from pipeline.ordering import UNTIMED, EventTimeAligner
from pipeline.outputs import Output
from pipeline.replica import MerchantReplica
from pipeline.state.checkpoint import Record, take_checkpoint, taken_user_records
from pipeline.state.store import PartitionStore

__all__ = ["PartitionTask"]

_EVENT_TYPE_OF_TOPIC = {topic: kind for kind, topic in TOPIC_OF_EVENT_TYPE.items()}


class _Rejected:
    __slots__ = ("error",)

    def __init__(self, error: InvalidEvent) -> None:
        self.error = error


class PartitionTask:
    """One partition's engine, its store and changelog, its input alignment, and the offsets
    it has applied."""

    def __init__(self, partition: int, engine: RiskEngine, offsets: dict[str, int],
                 settings: Settings, replica: MerchantReplica | None = None, *,
                 store: PartitionStore | None = None, changelog: ChangelogWriter | None = None,
                 stats: WorkerStats | None = None):
        self.partition = partition
        self.topics = {settings.topic(name): name for name in INPUT_TOPICS}
        self.engine = engine
        self.offsets = dict(offsets)
        self.store = store
        self.changelog = changelog
        #: Keys an incomplete checkpoint in the changelog touched: written again, with their
        #: stored values, by the next checkpoint (agents.changelog).
        self.repairs: set[bytes] = set()
        #: The checkpoint being written, if one is; before that, the records of one taken
        #: whose users are still being encoded (all but the users').
        self._writing: asyncio.Future[None] | None = None
        self._taken: list[Record] | None = None
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
        #: Inputs read to the end a fetch reported, at least once (readiness).
        self.reached_end: set[str] = set()
        #: The offset of the first record read from each input (what a restore resumed at).
        self.first_read: dict[str, int] = {}
        self.dirty = False
        #: When this partition's next checkpoint is due (monotonic clock; set by the worker).
        self.next_checkpoint = 0.0
        self.backlogged = False
        #: Records are waiting for the merchant replica to cover them.
        self.gated = False
        #: Broker timestamps (ms) of the records whose outputs the last drain returned.
        self.output_timestamps: list[int] = []
        if stats is not None:
            observe = stats.scores.observe
            engine.observer = lambda _tx, _features, scored: observe(scored.score)

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

    def input_caught_up(self, topic: str, caught_up: bool | None) -> None:
        """Whether ``topic`` is read to the end its last fetch reported (None: no fetch)."""
        self.aligner.set_caught_up(topic, caught_up)
        if caught_up:
            self.reached_end.add(topic)

    def reached_end_of_inputs(self) -> bool:
        """Every input has been read to its end once since the partition was assigned."""
        return len(self.reached_end) == len(self.topics)

    def push(self, topic: str, records: list[ConsumerRecord], now: float) -> int:
        """Buffer new records; returns how many were new.

        A record's wait for silent inputs (``max_task_idle_ms``) counts from its broker
        timestamp, not from its arrival here: the wait covers records of other inputs still
        in flight from their producers, and this record's own trip used part of it.
        """
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
        idle_s, wall_ms = self.aligner.max_idle_s, time.time() * 1000
        for record in records:
            try:
                event: Event | _Rejected = decode_event(event_type, record.value or b"")
                event_time = event.event_time
            except InvalidEvent as error:
                event, event_time = _Rejected(error), UNTIMED
            age_s = (wall_ms - record.timestamp) / 1000 if record.timestamp >= 0 else 0.0
            push(topic, event_time, (record, event), now - min(max(age_s, 0.0), idle_s))
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
        applied = stats.applied_by_topic
        timestamps = self.output_timestamps
        timestamps.clear()
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
                    produced = process(event)
                    applied[topic] += 1
                    if produced:
                        outputs.extend(produced)
                        timestamps.append(record.timestamp)
                    continue
                except InvalidEvent as error:
                    event = _Rejected(error)
            stats.dead_letters_by_reason[event.error.kind] += 1
            stats.dead_letter_example[event.error.kind] = event.error.reason
            timestamps.append(record.timestamp)
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

    @property
    def taking(self) -> bool:
        """A checkpoint has been taken and its users are still being encoded."""
        return self._taken is not None

    async def checkpoint(self, stats: WorkerStats, *, at_once: bool = False) -> None:
        """Take what changed since the last checkpoint, as of now and the offsets applied.

        Everything but the users is encoded at once; the users are encoded a few at a time
        between batches (:meth:`encode_checkpoint`), or all now with ``at_once``, so that a
        checkpoint does not stall the stream for the milliseconds thousands of users take.
        Once all are, the records are written -- to the changelog, then to the local store
        -- while the worker goes on. A checkpoint is complete before the next is taken.
        """
        assert self.store is not None and self.changelog is not None
        self.encode_checkpoint(stats, None)
        await self.written()
        self._taken = take_checkpoint(self.engine, dict(self.offsets))
        self.dirty = False
        if at_once:
            self.encode_checkpoint(stats, None)

    def encode_checkpoint(self, stats: WorkerStats, limit: int | None) -> None:
        """Encode up to ``limit`` more users of the checkpoint taken (None: all); once all
        are, start writing it."""
        others = self._taken
        if others is None or not self.engine.users.encode_taken(limit):
            return
        self._taken = None
        records = taken_user_records(self.engine) + others
        if self.repairs:
            written = {key for key, _ in records}
            store = self.store
            assert store is not None
            records[-1:-1] = [(key, store.get(key)) for key in sorted(self.repairs - written)]
            self.repairs.clear()
        stats.checkpoint_bytes += sum(len(key) + len(value or b"") for key, value in records)
        self._writing = asyncio.ensure_future(self._write(records, stats))

    async def _write(self, records: list[Record], stats: WorkerStats) -> None:
        assert self.store is not None and self.changelog is not None
        started = time.monotonic()
        position = await self.changelog.write(records)
        await asyncio.to_thread(self.store.write, records, {"offset": position})
        # Only now may users leave memory: the store holds their latest records.
        self.engine.users.evict()
        stats.checkpoint_written(time.monotonic() - started)

    async def written(self) -> None:
        """Wait until the last checkpoint is in the changelog and the store (raises what
        writing it raised)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing


