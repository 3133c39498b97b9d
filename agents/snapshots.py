"""The merchant replica's snapshot: the replica and the offsets it has read, in the worker's
state directory, so a restarted worker reads on from there instead of re-reading 37 days of
the transactions and labels topics.

Unlike a partition's state (:mod:`pipeline.state`), the replica is derived from the topics
alone: a snapshot that is missing, unreadable or of another version is simply not used, and
the replica is read again from the topics. It is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from pipeline.replica import MerchantReplica

__all__ = ["ReplicaSnapshot", "SnapshotStore"]

#: Bumped whenever the replica's layout changes; a snapshot of another version is not used.
_FORMAT_VERSION = 6


@dataclass
class ReplicaSnapshot:
    replica: MerchantReplica
    #: Next offset to read, per (topic, partition).
    positions: dict[tuple[str, int], int]
    version: int = _FORMAT_VERSION


class SnapshotStore:
    """The merchant replica snapshot of the last worker that saved one under ``directory``
    (any worker's is a valid start)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def replica_path(self) -> Path:
        return self.directory / "merchant-replica.snapshot"

    def load_replica(self) -> ReplicaSnapshot | None:
        try:
            data = self.replica_path.read_bytes()
        except FileNotFoundError:
            return None
        snapshot = pickle.loads(data)  # our own file, written below
        if not isinstance(snapshot, ReplicaSnapshot) or snapshot.version != _FORMAT_VERSION:
            raise ValueError(f"{self.replica_path} is not a merchant replica snapshot of "
                             f"version {_FORMAT_VERSION}")
        return snapshot

    def save_replica(self, snapshot: ReplicaSnapshot) -> int:
        """Write atomically; returns the size in bytes."""
        path = self.replica_path
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
