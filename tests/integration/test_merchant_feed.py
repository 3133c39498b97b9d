"""The merchant feed against the real broker: it reads every partition, and a re-read after
the replica has forgotten rebuilds the same book."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agents.merchant_feed import MerchantFeed
from agents.replay import replay_files
from agents.settings import Settings
from pipeline.demo import DemoHistory
from pipeline.timeutil import DAY, parse_time

pytestmark = pytest.mark.integration


async def read_until(feed: MerchantFeed, applied: int, timeout_s: float = 60.0) -> None:
    """Poll until ``applied`` records have been applied and every input covers everything."""
    deadline = time.monotonic() + timeout_s
    assert feed.replica is not None
    while time.monotonic() < deadline:
        await feed.poll(time.monotonic(), demand=None)
        if feed.applied >= applied and feed.replica.ready_until() == 2**63 - 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"read {feed.applied} of {applied} records in {timeout_s} s")


def test_the_feed_reads_every_partition_and_a_re_read_rebuilds_the_same_book(
    settings: Settings, small_history: DemoHistory, history_file: Path
) -> None:
    replay_files(settings, [history_file], progress=False)
    wanted = sum(record["type"] in ("transaction", "label") for record in small_history.events)
    purchases = sum(record["type"] == "transaction" for record in small_history.events)
    start = min(parse_time(record["event_time"]) for record in small_history.events)

    async def scenario() -> None:
        feed = MerchantFeed(settings)
        replica = await feed.start()
        try:
            await read_until(feed, wanted)
            assert feed.applied == wanted and not feed.refused
            assert len(replica) == purchases
            book = {name: m.__getstate__() for name, m in replica.book.merchants.items()}
            assert any(m[3] for m in book.values())  # fraud marks, from labels on the topic

            replica.evict(start + 40 * DAY)
            assert len(replica) < purchases and not replica.serves(None)
            await feed.restart()
            assert len(replica) == 0 and replica.ready_until() is None
            await read_until(feed, 2 * wanted)
            assert feed.restarts == 1 and feed.applied == 2 * wanted
            assert {name: m.__getstate__() for name, m in replica.book.merchants.items()} == book
            assert replica.serves(None)
        finally:
            await feed.stop()

    asyncio.run(scenario())
