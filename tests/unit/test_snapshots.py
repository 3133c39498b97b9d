"""The merchant replica's snapshot: its round trip, and the feed refusing one it cannot
use (no broker needed: the feed only reads its store here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.merchant_feed import MerchantFeed
from agents.settings import Settings
from agents.snapshots import ReplicaSnapshot, SnapshotStore
from pipeline.events import Transaction
from pipeline.replica import MerchantReplica


def saved_replica(settings: Settings, store: SnapshotStore, partitions: int = 4) -> None:
    replica = MerchantReplica(settings.risk_config(), partitions)
    replica.apply(0, Transaction("t1", "u1", "shop", 5_000, "CNY", 0))
    store.save_replica(ReplicaSnapshot(replica, {(settings.topic("transactions"), 0): 1}))


def test_a_saved_replica_comes_back_as_it_was(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    store = SnapshotStore(tmp_path)
    saved_replica(settings, store)
    snapshot = MerchantFeed(settings, store)._load(partitions=4)
    assert snapshot is not None
    assert len(snapshot.replica) == 1 and snapshot.positions == {("transactions", 0): 1}
    assert snapshot.replica.book.risk("shop", 7 * 86_400 * 10**6)[-1] == (1, 0, 0)


@pytest.mark.parametrize("change", ["currency", "partitions", "topics", "garbage", "version"])
def test_the_feed_reads_from_the_beginning_rather_than_use_a_snapshot_that_does_not_fit(
    tmp_path: Path, change: str
) -> None:
    settings = Settings(state_dir=tmp_path)
    store = SnapshotStore(tmp_path)
    saved_replica(settings, store)
    partitions = 4
    if change == "currency":
        settings = Settings(state_dir=tmp_path, currency="TWD")
    elif change == "partitions":
        partitions = 8
    elif change == "topics":
        settings = Settings(state_dir=tmp_path, topic_prefix="other.")
    elif change == "version":  # written by a riskstream whose state had another layout
        snapshot = store.load_replica()
        assert snapshot is not None
        snapshot.version -= 1
        store.save_replica(snapshot)
    else:
        store.replica_path.write_bytes(b"not a pickle")
    assert MerchantFeed(settings, store)._load(partitions) is None

