"""Bringing up a partition assigned to a worker: its local store up to the changelog, its engine
read from the store -- or started afresh when the state belongs to input topics that were
recreated since -- and, for a new partition, the models trained on a history."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.changelog import ChangelogReader, ChangelogWriter
from agents.exceptions import StaleStateError
from agents.kafka import fetched_end_offsets
from agents.observability.stats import WorkerStats
from agents.partition import PartitionTask
from agents.settings import Settings
from pipeline.config import RiskConfig
from pipeline.engine import RiskEngine
from pipeline.replica import MerchantReplica
from pipeline.state.checkpoint import META_KEY, checkpoint_records, restore_engine
from pipeline.state.store import PartitionStore, StateDirectory
from pipeline.training import TrainedModels

__all__ = ["PartitionRestorer"]

log = logging.getLogger("agents.worker")


class PartitionRestorer:
    """Restores the partitions assigned to one worker, one at a time."""

    def __init__(self, settings: Settings, policy: RiskConfig, state: StateDirectory,
                 reader: ChangelogReader, models: TrainedModels | None,
                 stats: WorkerStats) -> None:
        self.settings = settings
        self.policy = policy
        self.state = state
        self.reader = reader
        self.models = models
        self.stats = stats

    async def _stale_inputs(self, consumer: AIOKafkaConsumer, partition: int,
                            offsets: dict[str, int]) -> list[tuple[str, int, int]]:
        """The inputs whose stored offset lies beyond the topic's end: (topic, offset, end).
        Such state was written against topics since deleted and created again; resuming it
        would skip everything the new topics receive up to that offset."""
        if not offsets:
            return []
        partitions = [TopicPartition(topic, partition) for topic in offsets]
        listed = await consumer.end_offsets(partitions)
        behind = [tp for tp in partitions if offsets[tp.topic] > listed.get(tp, 0)]
        if not behind:
            return []
        ends = await fetched_end_offsets(self.settings, behind)  # some brokers list short
        return [(tp.topic, offsets[tp.topic], ends[tp]) for tp in behind
                if offsets[tp.topic] > ends[tp]]

    def _stale_message(self, partition: int, store: PartitionStore,
                       stale: list[tuple[str, int, int]], *, hint: bool = True) -> str:
        where = ", ".join(f"{topic} at offset {offset:,} but it ends at {end:,}"
                          for topic, offset, end in stale)
        message = (f"partition {partition}: the stored state ({store.path} and the changelog "
                   f"{self.reader.topic}) resumes {where}: the input topics were recreated "
                   "after this state was written")
        if hint:
            message += ("; start the group afresh with `riskstream worker --fresh-state` "
                        "(RISKSTREAM_FRESH_STATE=true), which drops its stored state, or use "
                        "another RISKSTREAM_GROUP_ID")
        return message

    async def _start_afresh(self, store: PartitionStore, writer: ChangelogWriter,
                            own_merchants: bool) -> tuple[RiskEngine, dict[str, int]]:
        """Drop the partition's state: every key is deleted from the changelog (one
        checkpoint, so any host restoring it later ends up empty too) and the store."""
        settings = self.settings
        keys = await asyncio.to_thread(store.state_keys)
        await asyncio.to_thread(store.clear)
        engine, _ = restore_engine(
            store, self.policy, cache_capacity=settings.user_cache_size,
            own_merchants=own_merchants, where=str(store.path))
        records = [(key, None) for key in keys if key != META_KEY]
        records += checkpoint_records(engine, {})
        position = await writer.write(records)
        await asyncio.to_thread(store.write, records, {"offset": position})
        return engine, {}

    def _use_models(self, partition: int, engine: RiskEngine) -> None:
        """A partition with no state yet starts from the trained models; every partition
        scores its statements with the trained champion."""
        models = self.models
        if models is None:
            return
        if engine.watermark is None:  # nothing applied yet: a new partition
            models.seed(engine)
            log.info("partition %d: starting from the models trained on %s", partition,
                     ", ".join(item["path"] for item in models.manifest.get("trained_on", []))
                     or "a history")
        engine.credit_champion = models.champion

    async def restore(self, partition: int, consumer: AIOKafkaConsumer,
                      producer: AIOKafkaProducer, replica: MerchantReplica | None
                      ) -> PartitionTask:
        """Bring the partition's local store up to its changelog, and read its engine."""
        settings = self.settings
        store = await asyncio.to_thread(self.state.open, partition)
        try:
            restored = await self.reader.restore(partition, store)
            engine, offsets = restore_engine(
                store, self.policy, cache_capacity=settings.user_cache_size,
                own_merchants=replica is None, where=str(store.path))
        except BaseException:
            store.close()
            raise
        writer = ChangelogWriter(producer, self.reader.topic, partition)
        try:
            stale = await self._stale_inputs(consumer, partition, offsets)
            if stale:
                if not settings.fresh_state:
                    raise StaleStateError(self._stale_message(partition, store, stale))
                log.warning("partition %d: %s; starting it afresh (RISKSTREAM_FRESH_STATE)",
                            partition, self._stale_message(partition, store, stale, hint=False))
                engine, offsets = await self._start_afresh(store, writer, replica is None)
        except BaseException:
            store.close()
            raise
        self._use_models(partition, engine)
        task = PartitionTask(partition, engine, offsets, settings, replica, store=store,
                             changelog=writer, stats=self.stats)
        task.repairs = restored.discarded
        # Partitions take turns: their checkpoints are spread over the interval.
        interval = settings.checkpoint_interval_s
        task.next_checkpoint = time.monotonic() + interval * (1 + partition % 4 / 4)
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
