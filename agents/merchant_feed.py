"""Feeds a worker's :class:`~pipeline.replica.MerchantReplica` from every partition of the
transactions and labels topics, read by a consumer of its own outside the group.

It starts where the replica's store in the worker's state directory left off (written with
what changed since the last save: :meth:`MerchantFeed.save`), or else from the beginning of
each partition (the topics' retention must cover the longest merchant window plus the label
delay: 37 days). It reads ahead
of the worker's tasks with records waiting by at most :data:`READ_AHEAD` of event time, and
forgets what no task will look at again. Invalid records are skipped here: the task of their
partition dead-letters them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.kafka import caught_up, client_config
from agents.settings import Settings
from pipeline.config import RiskConfig
from pipeline.events import decode_event
from pipeline.exceptions import InvalidEvent, StateFormatError
from pipeline.replica import FRAUD_LABELS, PURCHASES, MerchantReplica
from pipeline.state.checkpoint import REPLICA_META_KEY, replica_records, restore_replica
from pipeline.state.store import PartitionStore
from pipeline.timeutil import DAY, format_time

__all__ = ["READ_AHEAD", "REPLICA_STORE", "MerchantFeed"]

log = logging.getLogger(__name__)

#: The replica's store, in the worker's state directory beside the partitions' stores.
REPLICA_STORE = "merchant-replica.rocksdb"

#: How far (event time) an input may be read beyond what the slowest task needs before its
#: fetch pauses: bounds the replica's memory when the tasks lag (a catch-up).
READ_AHEAD = DAY


class MerchantFeed:
    """Run :meth:`start`, then :meth:`poll` once per worker iteration; :meth:`stop` at the end."""

    def __init__(self, settings: Settings, directory: Path | None = None, *,
                 policy: RiskConfig | None = None) -> None:
        self.settings = settings
        #: Where the replica's store is kept (None: always read from the beginning).
        self.directory = directory
        self.store: PartitionStore | None = None
        self.config = policy if policy is not None else settings.risk_config()
        self.replica: MerchantReplica | None = None
        self.refused: Counter[str] = Counter()
        self.applied = 0
        #: Times an input was paused for being too far ahead of the tasks, and full re-reads.
        self.pauses = 0
        self.restarts = 0
        #: Whether the replica resumed from its store, and the saves since.
        self.resumed = False
        self.saves = 0
        #: Records not read yet per (topic, partition), as of the last poll.
        self.lags: dict[tuple[str, int], int] = {}
        #: topic -> (the replica's name for the input, the event type of its records)
        self._sources = {
            settings.topic("transactions"): (PURCHASES, "transaction"),
            settings.topic("labels"): (FRAUD_LABELS, "label"),
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._caught_up_since: dict[TopicPartition, float] = {}

    async def start(self) -> MerchantReplica:
        settings = self.settings
        consumer = self._consumer = AIOKafkaConsumer(
            **client_config(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            max_poll_records=settings.max_batch,
        )
        await consumer.start()
        await consumer.topics()  # fetch the metadata of every topic
        assigned = []
        partitions = 0
        for topic in self._sources:
            numbers = consumer.partitions_for_topic(topic) or set()
            partitions = max(partitions, len(numbers))
            assigned.extend(TopicPartition(topic, number) for number in sorted(numbers))
        consumer.assign(assigned)
        stored = await asyncio.to_thread(self._load, partitions)
        if stored is None:
            await consumer.seek_to_beginning(*assigned)
            self.replica = MerchantReplica(self.config, partitions)
        else:
            self.replica, positions = stored
            for tp in assigned:
                consumer.seek(tp, positions.get((tp.topic, tp.partition), 0))
            self.resumed = True
        log.info("merchant replica: reading %d partitions of %s %s", len(assigned),
                 ", ".join(self._sources),
                 "from its store" if stored is not None else "from their beginning")
        return self.replica

    def _load(self, partitions: int
              ) -> tuple[MerchantReplica, dict[tuple[str, int], int]] | None:
        """The stored replica and its positions, if there is one made with these settings
        (an unusable one is cleared: the replica is read from the topics again)."""
        if self.directory is None:
            return None
        try:
            store = self.store = PartitionStore(self.directory / REPLICA_STORE)
        except Exception as exc:  # rocksdict's own: another worker on this host holds it
            log.warning("merchant replica: its store is in use (%s); this worker reads the "
                        "topics from the beginning and keeps no store", exc)
            return None
        try:
            stored = restore_replica(store, self.config, partitions, str(store.path))
        except (ValueError, TypeError, KeyError, StateFormatError) as exc:
            log.warning("merchant replica: store unreadable, reading from the beginning: %s",
                        exc)
            stored = None
        if stored is not None and any(topic not in self._sources for topic, _ in stored[1]):
            stored = None
        if stored is None:
            if store.get(REPLICA_META_KEY) is not None:
                log.warning("merchant replica: stored with other settings or topics, reading "
                            "from the beginning")
            store.clear()
        return stored

    async def save(self) -> int:
        """Write what the replica changed since the last save, with the offsets it has read
        up to; returns the bytes written. Call it where nothing else runs on the replica (the
        worker's checkpoint): the changes are taken at once, then written in a thread."""
        replica, consumer, store = self.replica, self._consumer, self.store
        assert replica is not None and consumer is not None
        if store is None:
            return 0
        positions = {(tp.topic, tp.partition): await consumer.position(tp)
                     for tp in consumer.assignment()}
        cleared = replica.cleared
        records = replica_records(replica, positions)
        replica.checkpointed()
        if cleared:
            await asyncio.to_thread(store.clear)
        size = await asyncio.to_thread(store.write, records)
        self.saves += 1
        return size

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self.store is not None:
            self.store.close()
            self.store = None
            log.info("merchant replica: %s", self.describe())

    def describe(self) -> dict[str, Any]:
        """What the replica has done, for the worker's statistics."""
        replica = self.replica
        return {
            "applied": self.applied,
            "refused": dict(self.refused),
            "purchases_held": len(replica) if replica is not None else 0,
            "forgotten_through": None if replica is None or replica.evicted_through is None
            else format_time(replica.evicted_through),
            "pauses": self.pauses,
            "restarts": self.restarts,
            "resumed": self.resumed,
            "saves": self.saves,
        }

    def lag(self) -> list[tuple[str, int, int]]:
        """(topic, partition, records not read yet) as of the last poll."""
        return [(topic, partition, records)
                for (topic, partition), records in sorted(self.lags.items())]

    async def restart(self) -> None:
        """Forget everything and read every partition again from its beginning: for a task
        that needs purchases the replica has already forgotten."""
        assert self.replica is not None and self._consumer is not None
        self.replica.clear()
        self.restarts += 1
        self._caught_up_since.clear()
        assignment = list(self._consumer.assignment())
        for tp in assignment:
            self._consumer.resume(tp)
        await self._consumer.seek_to_beginning(*assignment)
        log.info("merchant replica: reading every partition again from its beginning")

    async def poll(self, now: float, demand: int | None,
                   ends: dict[tuple[str, int], int] | None = None) -> int:
        """Apply what has been fetched; ``demand`` is the earliest event time a task will score
        next (None: unknown); ``ends``: (topic, partition) -> an offset the worker's own consumer
        has seen the partition reach, so the replica is not taken for caught up short of it
        (its last fetch may be older than the records a task is about to score). Returns the
        records read."""
        replica, consumer = self.replica, self._consumer
        assert replica is not None and consumer is not None
        batch = await consumer.getmany(timeout_ms=0, max_records=self.settings.max_batch)
        read = 0
        for tp, records in batch.items():
            _, event_type = self._sources[tp.topic]
            apply, partition = replica.apply, tp.partition
            for record in records:
                try:
                    event = decode_event(event_type, record.value or b"")
                except InvalidEvent:
                    continue
                refused = apply(partition, event)  # type: ignore[arg-type]
                if refused is None:
                    self.applied += 1
                else:
                    self.refused[refused] += 1
            read += len(records)
        idle_s = self.settings.max_task_idle_ms / 1000
        lateness = self.config.allowed_lateness
        for tp in consumer.assignment():
            source, _ = self._sources[tp.topic]
            seen = ends.get((tp.topic, tp.partition), 0) if ends else 0
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.lags[tp.topic, tp.partition] = max(0, highwater
                                                        - await consumer.position(tp))
            if await caught_up(consumer, tp, seen):
                since = self._caught_up_since.setdefault(tp, now)
                replica.set_silent(source, tp.partition, now - since >= idle_s)
            else:
                self._caught_up_since.pop(tp, None)
                replica.set_silent(source, tp.partition, False)
            clock = replica.clocks.get((source, tp.partition))
            needed = None if demand is None else (
                demand - replica.book.delay if source == PURCHASES else demand
            )
            if (needed is not None and clock is not None
                    and clock - lateness > needed + READ_AHEAD):
                if tp not in consumer.paused():
                    consumer.pause(tp)
                    self.pauses += 1
            elif tp in consumer.paused():
                consumer.resume(tp)
        return read
