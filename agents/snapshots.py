"""Per-partition snapshots: the engine (users, models, clock) and the input offsets it reflects;
and the worker's merchant replica with the offsets it has read.

A snapshot is written atomically (temp file, fsync, rename), so after ``kill -9`` a partition
resumes from its last complete snapshot, re-reads its inputs from the offsets stored with it,
and re-emits outputs with the same ids -- nothing lost, nothing counted twice. Offsets live
with the state rather than only in Kafka's committed offsets because the two must move together.
A state directory belongs to one set of topics: recreate a topic and its snapshots must go.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.engine import RiskEngine
from pipeline.replica import MerchantReplica

__all__ = ["PartitionSnapshot", "ReplicaSnapshot", "SnapshotStore"]

#: Bumped whenever the state's layout changes; a snapshot of another version is refused.
#: 2: a merchant's purchases carry whether they were unusual for their card, and the fraud
#: classifier's merchant inputs are the ordinary-fraud risks. 3: the fraud classifier keeps
#: its averaged model. 4: the default model keeps its averaged model too, and a line's inputs
#: include the utilisations' spline terms. 5: the fraud classifier's inputs include the
#: merchant's fraud run. 6: the purchases waiting for their label know which are all learned.
_FORMAT_VERSION = 6


@dataclass
class PartitionSnapshot:
    engine: RiskEngine
    #: Next offset to read, per input topic.
    offsets: dict[str, int]
    version: int = _FORMAT_VERSION


@dataclass
class ReplicaSnapshot:
    replica: MerchantReplica
    #: Next offset to read, per (topic, partition).
    positions: dict[tuple[str, int], int]
    version: int = _FORMAT_VERSION


class SnapshotStore:
    """Snapshots of one consumer group under ``directory``: one file per partition, and the
    merchant replica of the last worker that saved one (any worker's is a valid start)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition:04d}.snapshot"

    def load(self, partition: int) -> PartitionSnapshot | None:
        return self._read(self.path(partition), PartitionSnapshot)

    def save(self, partition: int, snapshot: PartitionSnapshot) -> int:
        """Write atomically; returns the size in bytes."""
        return self._write(self.path(partition), snapshot)

    @property
    def replica_path(self) -> Path:
        return self.directory / "merchant-replica.snapshot"

    def load_replica(self) -> ReplicaSnapshot | None:
        return self._read(self.replica_path, ReplicaSnapshot)

    def save_replica(self, snapshot: ReplicaSnapshot) -> int:
        """Write atomically; returns the size in bytes."""
        return self._write(self.replica_path, snapshot)

    @staticmethod
    def _read(path: Path, kind: type) -> Any:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        snapshot = pickle.loads(data)  # our own file, written below
        if not isinstance(snapshot, kind) or snapshot.version != _FORMAT_VERSION:
            raise ValueError(f"{path} is not a riskstream snapshot of version {_FORMAT_VERSION}")
        return snapshot

    @staticmethod
    def _write(path: Path, snapshot: Any) -> int:
        data = pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL)
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
