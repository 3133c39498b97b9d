"""The state changelog: every checkpoint's records, produced to a topic of the consumer group,
and read back to restore a partition on any host.

One changelog topic per consumer group (``<group>-state-changelog``), partitioned like the
inputs; on Apache Kafka it is compacted, so it keeps the latest record of each key. A
checkpoint's records carry a header naming the checkpoint (the writer and its sequence
number), and its meta record comes last: a restore applies a checkpoint only once it has read
that meta record. A worker killed while producing a checkpoint leaves an incomplete one at the
end of the log; the next owner discards it and, in its first checkpoint, writes again the
committed value of every key the incomplete one touched, so compaction can never leave such a
key's stray value as its latest. (``min.compaction.lag.ms`` keeps the records a restore may
still need for a day, far longer than a takeover takes.)

A restore starts from the position the local store recorded (nothing, for an empty host),
reads to the end of the partition's log, applies complete checkpoints to the local store in
batches, and returns. A store whose recorded position lies beyond the log's end belongs to a
changelog that was recreated: it is cleared and restored from the beginning.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.exceptions import BrokerError
from agents.kafka import CHANGELOG_MAX_MESSAGE_BYTES, client_config
from agents.settings import Settings
from pipeline.state.checkpoint import META_KEY, Record
from pipeline.state.codec import USER_PREFIX
from pipeline.state.store import PartitionStore

__all__ = ["CHECKPOINT_HEADER", "PRODUCER_BATCH_BYTES", "RESTORE_STALL_S", "ChangelogReader",
           "ChangelogWriter", "RestoreResult", "changelog_producer", "checkpoint_tag"]

log = logging.getLogger(__name__)

#: The header naming the checkpoint a record belongs to: writer id (16 bytes) + sequence.
CHECKPOINT_HEADER = "riskstream-checkpoint"
#: Complete checkpoints are written to the local store in batches of about this many records.
_RESTORE_BATCH = 20_000
#: A restore that gets no answer from the changelog for this long fails (the broker is gone).
RESTORE_STALL_S = 30.0
#: Records asked for per fetch while restoring.
_RESTORE_FETCH = 20_000
#: A changelog producer's largest record batch (the worker's outputs keep aiokafka's 16 KiB).
PRODUCER_BATCH_BYTES = 1024 * 1024


def checkpoint_tag(writer: bytes, sequence: int) -> bytes:
    return writer + sequence.to_bytes(8, "big")


def changelog_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer for checkpoints: whole acknowledged batches of up to a megabyte."""
    return AIOKafkaProducer(**client_config(settings), acks="all", linger_ms=0,
                            enable_idempotence=False, max_batch_size=PRODUCER_BATCH_BYTES,
                            max_request_size=CHANGELOG_MAX_MESSAGE_BYTES)


class ChangelogWriter:
    """Produces one partition's checkpoints; one writer per task, so each has its own id.

    Records go out as whole record batches (``producer.send_batch``): a checkpoint of
    thousands of users costs a few calls instead of one per record. The producer should
    allow large batches (:data:`PRODUCER_BATCH_BYTES`)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, partition: int) -> None:
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.writer = uuid.uuid4().bytes
        self.sequence = 0

    async def write(self, records: list[Record]) -> int:
        """Produce ``records`` (the meta record last) and wait until the brokers have them;
        returns the changelog offset after the meta record."""
        if not records or records[-1][0] != META_KEY:
            raise ValueError("a checkpoint ends with its meta record")
        self.sequence += 1
        headers = [(CHECKPOINT_HEADER, checkpoint_tag(self.writer, self.sequence))]
        producer = self.producer
        futures = []
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                futures.append(await self._send(batch))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"a changelog record of {len(value or b'')} bytes is "
                                     "larger than a record batch")
        last = batch.record_count()
        futures.append(await self._send(batch))
        for future in futures[:-1]:
            await future
        metadata = await futures[-1]
        return metadata.offset + last

    async def _send(self, batch: Any) -> asyncio.Future:
        return await self.producer.send_batch(batch, self.topic, partition=self.partition)


@dataclass
class RestoreResult:
    """What a restore read: records, complete checkpoints applied, and the keys of an
    incomplete checkpoint it discarded (to be written again with their committed values)."""

    records: int = 0
    checkpoints: int = 0
    users: int = 0
    seconds: float = 0.0
    started_from: int = 0
    position: int = 0
    cleared: bool = False
    discarded: set[bytes] = field(default_factory=set)


class ChangelogReader:
    """Restores partition stores from the changelog, one partition at a time."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        #: The restores under way, by partition: what they have read so far.
        self.in_progress: dict[int, RestoreResult] = {}

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **client_config(self.settings),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                max_partition_fetch_bytes=8 * 1024 * 1024,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def restore(self, partition: int, store: PartitionStore) -> RestoreResult:
        """Bring ``store`` up to the end of the partition's changelog."""
        consumer = await self._started()
        tp = TopicPartition(self.topic, partition)
        consumer.assign([tp])
        recorded = store.changelog_position
        start = recorded["offset"] if recorded else 0
        result = self.in_progress[partition] = RestoreResult(started_from=start)
        try:
            return await self._restore(consumer, tp, store, result)
        finally:
            del self.in_progress[partition]

    async def _restore(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                       store: PartitionStore, result: RestoreResult) -> RestoreResult:
        partition, start = tp.partition, result.started_from
        began = time.monotonic()
        if start:
            end = await self._end(consumer, tp)
            if end < start:
                log.warning(
                    "partition %d: the local store has read the changelog to offset %d, but "
                    "the changelog ends at %d (it was recreated): restoring from its beginning",
                    partition, start, end)
                store.clear()
                start, result.cleared, result.started_from = 0, True, 0
        consumer.seek(tp, start)
        ready: list[Record] = []
        ready_position = start
        users: set[bytes] = set()
        async for records, position in self._checkpoints(consumer, tp, result):
            keys = [key for key, _ in records]
            result.discarded.difference_update(keys)  # written again since
            users.update(key for key in keys if key[:1] == USER_PREFIX)
            ready += records
            ready_position = position
            result.checkpoints += 1
            if len(ready) >= _RESTORE_BATCH:
                store.write(ready, {"offset": ready_position})
                ready = []
        if ready or ready_position != start:
            store.write(ready, {"offset": ready_position})
        result.position = ready_position
        result.users = len(users)
        result.seconds = time.monotonic() - began
        return result

    async def read_key(self, partition: int, key: bytes) -> bytes | None:
        """The latest committed value of ``key`` in the partition's changelog (None: never
        written, or deleted)."""
        consumer = await self._started()
        tp = TopicPartition(self.topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        found: bytes | None = None
        async for records, _ in self._checkpoints(consumer, tp, RestoreResult()):
            for record_key, value in records:
                if record_key == key:
                    found = value
        return found

    @staticmethod
    async def _checkpoints(consumer: AIOKafkaConsumer, tp: TopicPartition,
                           result: RestoreResult) -> AsyncIterator[tuple[list[Record], int]]:
        """The complete checkpoints from the consumer's position to the log's end, each with
        the offset after its meta record; counts records and collects what is discarded in
        ``result``."""
        pending: list[Record] = []
        pending_tag: bytes | None = None
        deadline = time.monotonic() + RESTORE_STALL_S
        while True:
            batch = await consumer.getmany(tp, timeout_ms=200, max_records=_RESTORE_FETCH)
            if batch:
                deadline = time.monotonic() + RESTORE_STALL_S
            elif time.monotonic() > deadline:
                raise _stalled(tp)
            for record in batch.get(tp, ()):
                result.records += 1
                tag = _tag(record.headers)
                if tag != pending_tag:
                    # A checkpoint that never got its meta record: discarded.
                    result.discarded.update(key for key, _ in pending)
                    pending, pending_tag = [], tag
                pending.append((record.key, record.value))
                if record.key == META_KEY:
                    yield pending, record.offset + 1
                    pending, pending_tag = [], None
            highwater = consumer.highwater(tp)
            if highwater is not None and await consumer.position(tp) >= highwater:
                break
        result.discarded.update(key for key, _ in pending)

    @staticmethod
    async def _end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """The log's end as a fetch reports it (the embedded broker's ListOffsets answer is
        not reliable: agents.kafka.caught_up)."""
        consumer.seek(tp, 0)
        deadline = time.monotonic() + RESTORE_STALL_S
        while consumer.highwater(tp) is None:
            if time.monotonic() > deadline:
                raise _stalled(tp)
            await consumer.getmany(tp, timeout_ms=100, max_records=1)
        return consumer.highwater(tp) or 0


def _stalled(tp: TopicPartition) -> BrokerError:
    return BrokerError(f"the state changelog {tp.topic} partition {tp.partition} sent nothing "
                       f"for {RESTORE_STALL_S:.0f} s while it was being restored: is the broker "
                       "up?")


def _tag(headers: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == CHECKPOINT_HEADER:
            return value
    return None
