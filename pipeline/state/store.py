"""Each partition's state in a local RocksDB (through ``rocksdict``), one checkpoint at a time.

A checkpoint's records are written in one atomic, synced batch together with the local-only
record of how far the changelog has been read (:attr:`PartitionStore.changelog_position`): after
``kill -9`` the store holds the last complete checkpoint, never part of one. Keys and values are
the bytes of :mod:`pipeline.state.codec`; nothing is pickled.

The directory of a consumer group holds one store per partition
(``partition-0007.rocksdb``). It must not hold the pickle snapshots of releases before the
store: they are refused by name (:class:`StateDirectory`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from pipeline.exceptions import StateFormatError
from pipeline.state.checkpoint import Record
from pipeline.state.codec import FORMAT_VERSION

__all__ = ["PartitionStore", "StateDirectory"]

#: Local-only: how far this store has read the changelog (never written to the changelog).
_CHANGELOG_KEY = b"_changelog"
#: Block cache of a store: hot users' blocks stay in memory between cache misses.
_BLOCK_CACHE_BYTES = 32 * 1024 * 1024
#: Memtable size: a store of a partition writes a checkpoint's changes, a few MB at most.
_WRITE_BUFFER_BYTES = 16 * 1024 * 1024


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_write_buffer_size(_WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(_BLOCK_CACHE_BYTES))
    table.set_bloom_filter(10, False)  # a new user is a lookup that finds nothing
    options.set_block_based_table_factory(table)
    return options


class PartitionStore:
    """One partition's stored state: ``get``, ``scan`` by prefix, and atomic ``write``."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        if read_only and not (path / "CURRENT").is_file():  # absent, or being created
            raise FileNotFoundError(f"no partition store at {path}")
        self._db = Rdict(str(path), _options(),
                         access_type=AccessType.read_only() if read_only
                         else AccessType.read_write())
        self._sync = WriteOptions()
        self._sync.sync = True

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every key starting with ``prefix``, in key order, with its value."""
        iterator = self._db.iter()
        iterator.seek(prefix)
        while iterator.valid():
            key = iterator.key()
            if not key.startswith(prefix):
                break
            yield key, iterator.value()
            iterator.next()

    def state_keys(self) -> list[bytes]:
        """Every key of the partition's state (not the store's own record of its position)."""
        return [key for key, _ in self.scan(b"") if key != _CHANGELOG_KEY]

    def write(self, records: Iterable[Record], changelog_position: dict[str, Any] | None = None
              ) -> int:
        """Apply ``records`` (None deletes) and the changelog position in one synced batch;
        returns the bytes of keys and values written."""
        batch = WriteBatch(raw_mode=True)
        size = 0
        for key, value in records:
            if value is None:
                batch.delete(key)
                size += len(key)
            else:
                batch.put(key, value)
                size += len(key) + len(value)
        if changelog_position is not None:
            batch.put(_CHANGELOG_KEY, orjson.dumps(changelog_position))
        self._db.write(batch, self._sync)
        return size

    @property
    def changelog_position(self) -> dict[str, Any] | None:
        """How far the changelog is reflected here, as written with the last batch."""
        value = self._db.get(_CHANGELOG_KEY)
        return None if value is None else orjson.loads(value)

    def clear(self) -> None:
        """Delete everything (a store that does not match its changelog or its settings), in
        place: the store stays open and locked, so no other worker on the host can take it
        half-way (closing and destroying it would leave that moment)."""
        db = self._db
        db.delete_range(b"", b"\xff" * 16)
        for key in list(db.keys()):  # any key beyond that bound
            del db[key]
        db.compact_range(None, None)

    def estimated_keys(self) -> int:
        """RocksDB's estimate of the records stored (cheap: no scan)."""
        return self._db.property_int_value("rocksdb.estimate-num-keys") or 0

    def close(self) -> None:
        self._db.close()


class StateDirectory:
    """The stores of one consumer group, one directory each, under ``root``."""

    #: The pickle snapshots that releases before the store wrote (format versions 1 to 6).
    LEGACY_PATTERN = "partition-*.snapshot"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        legacy = sorted(root.glob(self.LEGACY_PATTERN))
        if legacy:
            raise StateFormatError(
                f"{root} holds pickle snapshots of an earlier riskstream ({legacy[0].name}, "
                f"format version 6 or older); this release keeps state in format version "
                f"{FORMAT_VERSION}. Remove the directory (the partitions then restore from "
                "their changelog, or start afresh), or run the release that wrote it"
            )

    def path(self, partition: int) -> Path:
        return self.root / f"partition-{partition:04d}.rocksdb"

    def open(self, partition: int, *, read_only: bool = False) -> PartitionStore:
        return PartitionStore(self.path(partition), read_only=read_only)

    def partitions(self) -> list[int]:
        """The partitions with a store here."""
        return sorted(int(path.name.split("-")[1].split(".")[0])
                      for path in self.root.glob("partition-*.rocksdb"))
