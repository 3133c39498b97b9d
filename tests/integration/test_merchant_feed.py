"""The merchant feed against the real broker: it reads every partition, a re-read after the
replica has forgotten rebuilds the same book, and a rebalance that needs a re-read gets one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from agents.kafka import client_config
from agents.merchant_feed import MerchantFeed
from agents.replay import replay_files
from agents.settings import Settings
from agents.topics import INPUT_TOPICS
from agents.worker import PipelineWorker, WorkerStats
from pipeline.demo import DemoHistory
from pipeline.timeutil import DAY, HOUR, MINUTE, format_time, parse_time
from tests.integration.conftest import (
    by_id,
    expected_run,
    partition_of,
    read_outputs,
    run_worker,
)

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


def test_a_rebalance_onto_partitions_from_before_what_the_replica_forgot_reads_it_again(
    settings: Settings, small_history: DemoHistory, history_file: Path
) -> None:
    """A worker runs half the partitions to their end, so its replica forgets the early
    months; then the member holding the other half leaves without ever committing. The worker
    takes those partitions over from their beginning, which its replica no longer holds: it
    must read everything again, and its outputs must be those of one engine per partition."""
    replay_files(settings, [history_file], progress=False)
    expected, _ = expected_run(small_history, settings)

    async def scenario() -> WorkerStats:
        squatter = AIOKafkaConsumer(
            **client_config(settings), group_id=settings.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=settings.session_timeout_ms,
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await squatter.start()
        squatter.subscribe([settings.topic(name) for name in INPUT_TOPICS])
        stop_squatting = asyncio.Event()

        async def squat() -> None:  # fetch and throw away, never commit
            while not stop_squatting.is_set():
                await squatter.getmany(timeout_ms=100)

        squatting = asyncio.create_task(squat())
        deadline = time.monotonic() + 60
        while not squatter.assignment():
            assert time.monotonic() < deadline, "the squatter never got partitions"
            await asyncio.sleep(0.1)

        # Idle long enough to outlast the rebalance when the squatter leaves.
        worker = PipelineWorker(settings, stop_after_idle_s=8.0)
        running = asyncio.create_task(worker.run())
        # Until the worker holds half the partitions and its replica has forgotten something.
        while not (worker.tasks and len(worker.tasks) < settings.partitions
                   and worker.replica is not None
                   and worker.replica.evicted_through is not None):
            assert time.monotonic() < deadline + 60, "the replica never forgot anything"
            assert not running.done(), "the worker stopped early"
            await asyncio.sleep(0.1)
        stop_squatting.set()
        await squatting
        await squatter.stop()  # leaves the group: the worker takes every partition
        return await running

    stats = asyncio.run(scenario())
    assert stats.merchant_replica["restarts"] >= 1, stats.merchant_replica
    assert by_id(read_outputs(settings)) == by_id(expected)


def test_a_partition_that_runs_out_of_input_does_not_hold_the_others_back(
    settings: Settings, tmp_path: Path
) -> None:
    """The replica reads at most a day ahead of the tasks with records waiting. One user's
    partition ends within the first hour while another's runs for three weeks (past the label
    delay, so the merchant windows need those purchases read): the finished task must not pin
    the replica to its last clock, or the other waits forever for an input paused on the
    finished one's account. That hang was seen once in CI; this reproduces it every time."""
    early, late = (next(f"user-{index}" for index in range(1000)
                        if partition_of(f"user-{index}", settings.partitions) == wanted)
                   for wanted in (0, 1))
    start = parse_time("2018-04-01T00:00:00Z")
    records = [
        {"type": "transaction", "event_id": f"{user}-{step}", "user_id": user,
         "merchant_id": "shop", "amount_minor": 1_000 + step, "currency": "CNY",
         "event_time": format_time(start + step * every)}
        for user, steps, every in ((early, 5, 10 * MINUTE), (late, 90, 6 * HOUR))
        for step in range(steps)
    ]
    path = tmp_path / "two-users.jsonl"
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    replay_files(settings, [path], progress=False)
    # Small polls, so the replica pauses the busy partition with records still unread.
    worker = PipelineWorker(settings.model_copy(update={"max_batch": 10}), stop_after_idle_s=3.0)

    async def run_or_hang() -> WorkerStats:
        try:
            return await asyncio.wait_for(worker.run(), timeout=60)
        except TimeoutError:
            replica = worker.feed.describe() if worker.feed else None
            raise AssertionError(f"hung after {worker.stats.applied} of {len(records)} "
                                 f"records; the replica: {replica}") from None

    stats = asyncio.run(run_or_hang())
    assert stats.applied == len(records), stats.as_dict()


def test_a_restarted_worker_resumes_its_replica_from_its_store(
    settings: Settings, small_history: DemoHistory, tmp_path: Path
) -> None:
    """The first half of the history, a worker to its end; then the second half and a new
    worker. The new one's replica reads on from its store -- only the second half's records
    -- and the outputs of both runs are those of one engine per partition over everything."""
    half = len(small_history.events) // 2
    parts = []
    for name, records in (("first", small_history.events[:half]),
                          ("second", small_history.events[half:])):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
        parts.append((path, sum(r["type"] in ("transaction", "label") for r in records)))
    expected, _ = expected_run(small_history, settings)

    replay_files(settings, [parts[0][0]], progress=False)
    first = run_worker(settings)
    assert first.merchant_replica["applied"] == parts[0][1]
    assert not first.merchant_replica["resumed"] and first.merchant_replica["saves"] >= 1

    replay_files(settings, [parts[1][0]], progress=False)
    second = run_worker(settings)
    assert second.merchant_replica["resumed"], second.merchant_replica
    assert second.merchant_replica["restarts"] == 0
    assert second.merchant_replica["applied"] == parts[1][1]
    assert not second.merchant_replica["refused"]  # nothing read twice
    assert by_id(read_outputs(settings)) == by_id(expected)
