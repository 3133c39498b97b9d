"""One user, for ``riskstream user``: the stored state -- from this host's partition store, or
from the consumer group's changelog (any host, the store's authoritative copy) -- and the
latest alerts and limit adjustments about the user, from the output topics."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from agents.changelog import ChangelogReader
from agents.kafka import client_config
from agents.settings import Settings
from pipeline.state.codec import decode_user, user_key
from pipeline.state.store import StateDirectory
from pipeline.state.user import UserState

__all__ = ["Source", "StoredUser", "find_user", "partition_of", "recent_outputs"]

Source = Literal["auto", "local", "changelog"]


@dataclass
class StoredUser:
    user_id: str
    partition: int
    #: Where the record was found ("local store PATH" or "changelog TOPIC"); None: nowhere.
    found_in: str | None
    user: UserState | None


def partition_of(user_id: str, partitions: int) -> int:
    """The partition of a user's events: Kafka's default partitioner (murmur2 of the key)."""
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def find_user(settings: Settings, user_id: str, source: Source = "auto") -> StoredUser:
    """Look the user up in the local store (``local``), the changelog (``changelog``), or the
    local store and then, if it is not there, the changelog (``auto``)."""
    partition = partition_of(user_id, settings.partitions)
    key = user_key(user_id)
    if source in ("auto", "local"):
        directory = StateDirectory(settings.state_dir / settings.group_id)
        path = directory.path(partition)
        value = _read_local(directory, partition, key)
        if value is not None:
            return StoredUser(user_id, partition, f"local store {path}", decode_user(value))
        if source == "local":
            return StoredUser(user_id, partition, None, None)
    topic = settings.changelog_topic()
    value = asyncio.run(_read_changelog(settings, topic, partition, key))
    return StoredUser(user_id, partition, f"changelog {topic}" if value else None,
                      decode_user(value) if value else None)


def _read_local(directory: StateDirectory, partition: int, key: bytes) -> bytes | None:
    """The key's value in this host's store of the partition (None: no such store or key)."""
    try:
        store = directory.open(partition, read_only=True)
    except FileNotFoundError:
        return None
    try:
        return store.get(key)
    finally:
        store.close()


async def _read_changelog(settings: Settings, topic: str, partition: int, key: bytes
                          ) -> bytes | None:
    reader = ChangelogReader(settings, topic)
    try:
        return await reader.read_key(partition, key)
    finally:
        await reader.stop()


def recent_outputs(settings: Settings, user_id: str, streams: tuple[str, ...],
                   limit: int) -> dict[str, list[dict[str, Any]]]:
    """The latest ``limit`` records about ``user_id`` on each output stream, oldest first.

    Outputs are keyed by user, so only the user's partition of each topic is read, to the end
    it had when the lookup started.
    """
    found: dict[str, deque[dict[str, Any]]] = {stream: deque(maxlen=limit) for stream in streams}
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        stream_of_partition: dict[TopicPartition, str] = {}
        for stream in streams:
            topic = settings.topic(stream)
            count = len(consumer.partitions_for_topic(topic) or ())
            if count:
                stream_of_partition[TopicPartition(topic, partition_of(user_id, count))] = stream
        consumer.assign(list(stream_of_partition))
        consumer.seek_to_beginning(*stream_of_partition)
        ends = consumer.end_offsets(list(stream_of_partition))
        key = user_id.encode()
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for record in records:
                    if record.key == key and record.offset < ends[tp]:
                        found[stream_of_partition[tp]].append(orjson.loads(record.value))
    finally:
        consumer.close()
    return {stream: list(records) for stream, records in found.items()}
