"""One user's stored state, for ``riskstream state``: from this host's partition store, or
from the consumer group's changelog (any host, the store's authoritative copy)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from kafka.partitioner.default import murmur2

from agents.changelog import ChangelogReader
from agents.settings import Settings
from pipeline.state.codec import decode_user, user_key
from pipeline.state.store import StateDirectory
from pipeline.state.user import UserState

__all__ = ["Source", "StoredUser", "find_user", "partition_of"]

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
