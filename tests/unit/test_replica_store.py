"""The merchant replica's store: what a replica read comes back as it was, saved a change at a
time, and a feed reads the topics again rather than use a store it cannot (no broker needed:
the feed only reads its store here)."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from agents.merchant_feed import REPLICA_STORE, MerchantFeed
from agents.settings import Settings
from pipeline.events import Label, Transaction
from pipeline.replica import MerchantReplica
from pipeline.state.checkpoint import REPLICA_META_KEY, replica_records, restore_replica
from pipeline.state.store import PartitionStore
from pipeline.timeutil import DAY, HOUR

POSITIONS = {("transactions", 0): 1}


def save(replica: MerchantReplica, store: PartitionStore,
         positions: dict = POSITIONS) -> None:
    if replica.cleared:
        store.clear()
    store.write(replica_records(replica, positions))
    replica.checkpointed()


def saved_replica(settings: Settings, directory: Path, partitions: int = 4) -> None:
    replica = MerchantReplica(settings.risk_config(), partitions)
    replica.apply(0, Transaction("t1", "u1", "shop", 5_000, "CNY", 0))
    store = PartitionStore(directory / REPLICA_STORE)
    save(replica, store, {(settings.topic("transactions"), 0): 1})
    store.close()


def test_a_saved_replica_comes_back_as_it_was(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    saved_replica(settings, tmp_path)
    stored = MerchantFeed(settings, tmp_path)._load(partitions=4)
    assert stored is not None
    replica, positions = stored
    assert len(replica) == 1 and positions == {("transactions", 0): 1}
    assert replica.book.risk("shop", 7 * DAY)[-1] == (1, 0, 0)


def test_a_replica_saved_change_by_change_answers_as_the_one_that_read_everything(
    tmp_path: Path
) -> None:
    """Purchases, labels before and after their purchase, evictions and a clear, saved at
    random points and read back at every other one: the same answers and the same holdings
    as a replica that was never saved."""
    rng = random.Random(5)
    config = Settings().risk_config()
    reference = MerchantReplica(config, partitions=2)
    store = PartitionStore(tmp_path / "store")
    replica = MerchantReplica(config, partitions=2)
    merchants = [f"m{index}" for index in range(6)]
    now = 0
    for step in range(1_500):
        now += rng.randrange(1, 4) * HOUR // 4
        partition = rng.randrange(2)
        if rng.random() < 0.85:
            event = Transaction(f"t{step}", f"u{rng.randrange(40)}", rng.choice(merchants),
                                rng.randint(100, 90_000), "CNY", now)
        else:  # a label for a purchase before it, or one not read yet
            named = f"t{step - rng.randrange(-3, 200)}"
            event = Label(f"l{step}", "u0", "fraud", now, named)
        assert replica.apply(partition, event) == reference.apply(partition, event)
        if step % 300 == 299:
            for one in (replica, reference):
                one.evict(now - 10 * DAY)
        if step == 900:
            for one in (replica, reference):
                one.clear()
        if rng.random() < 0.02:
            save(replica, store)
            if rng.random() < 0.5:
                restored = restore_replica(store, config, 2, "test")
                assert restored is not None
                replica = restored[0]
        probe = rng.choice(merchants)
        assert replica.book.risk(probe, now) == reference.book.risk(probe, now)
        assert replica.book.fraud_run(probe, now) == reference.book.fraud_run(probe, now)
    save(replica, store)
    restored = restore_replica(store, config, 2, "test")
    assert restored is not None
    replica = restored[0]
    assert replica.clocks == reference.clocks
    assert replica.waiting_labels() == reference.waiting_labels()
    assert sorted(replica._purchases.items()) == sorted(reference._purchases.items())
    assert {name: activity.__getstate__() for name, activity in replica.book.merchants.items()
            } == {name: activity.__getstate__()
                  for name, activity in reference.book.merchants.items()}
    assert replica.book.cards.cards == reference.book.cards.cards


@pytest.mark.parametrize("change", ["currency", "partitions", "topics", "garbage", "version"])
def test_the_feed_reads_from_the_beginning_rather_than_use_a_store_that_does_not_fit(
    tmp_path: Path, change: str
) -> None:
    settings = Settings(state_dir=tmp_path)
    saved_replica(settings, tmp_path)
    partitions = 4
    if change == "currency":
        settings = Settings(state_dir=tmp_path, currency="TWD")
    elif change == "partitions":
        partitions = 8
    elif change == "topics":
        settings = Settings(state_dir=tmp_path, topic_prefix="other.")
    else:
        store = PartitionStore(tmp_path / REPLICA_STORE)
        meta = orjson.loads(store.get(REPLICA_META_KEY) or b"{}")
        if change == "version":  # written by a riskstream whose state had another layout
            meta["format"] -= 1
            store.write([(REPLICA_META_KEY, orjson.dumps(meta))])
        else:
            store.write([(REPLICA_META_KEY, b"not json")])
        store.close()
    feed = MerchantFeed(settings, tmp_path)
    assert feed._load(partitions) is None
    assert feed.store is not None and feed.store.get(REPLICA_META_KEY) is None  # cleared
    feed.store.close()
