"""Per-partition snapshots: the engine (users, models, clock) and the input offsets it reflects.

A snapshot is written atomically (temp file, fsync, rename), so after ``kill -9`` a partition
resumes from its last complete snapshot, re-reads its inputs from the offsets stored with it,
and re-emits outputs with the same ids -- nothing lost, nothing counted twice. Offsets live
with the state rather than only in Kafka's committed offsets because the two must move together.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from pipeline.engine import RiskEngine

__all__ = ["PartitionSnapshot", "SnapshotStore"]

_FORMAT_VERSION = 1


@dataclass
class PartitionSnapshot:
    engine: RiskEngine
    #: Next offset to read, per input topic.
    offsets: dict[str, int]
    version: int = _FORMAT_VERSION


class SnapshotStore:
    """Snapshots of one consumer group, one file per partition, under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition:04d}.snapshot"

    def load(self, partition: int) -> PartitionSnapshot | None:
        path = self.path(partition)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        snapshot = pickle.loads(data)  # our own file, written below
        if not isinstance(snapshot, PartitionSnapshot) or snapshot.version != _FORMAT_VERSION:
            raise ValueError(f"{path} is not a riskstream snapshot of version {_FORMAT_VERSION}")
        return snapshot

    def save(self, partition: int, snapshot: PartitionSnapshot) -> int:
        """Write atomically; returns the size in bytes."""
        data = pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL)
        path = self.path(partition)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        return len(data)
