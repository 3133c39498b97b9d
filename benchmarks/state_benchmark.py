"""The state store's costs at 20,000 / 200,000 / 1,000,000 users in one partition, printed as
figures (not a test).

For each size, on one embedded broker:
  1. the partition is generated straight into a store and its changelog: each user is a copy
     of a user record from a simulated credit line (windows, repayments, bills), renamed;
  2. checkpoints with 1,000 users changed since the last one, in the process: encoding, the
     local store's synced write and the changelog's acknowledged produce, timed apart, and the
     bytes written;
  3. a worker (a process of its own, ``riskstream worker``) on a host with an empty state
     directory: it restores the partition from the changelog, then applies a replay of
     purchases by random users, with its default user cache (100,000); printed are the restore
     rate, the longest loop iteration and checkpoint, and the worker's peak resident memory.

    python benchmarks/state_benchmark.py [--sizes 20000 200000 1000000] [--purchases 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from agents.broker import EmbeddedBroker  # noqa: E402
from agents.changelog import ChangelogWriter, changelog_producer  # noqa: E402
from agents.kafka import client_config, ensure_topics, wait_for_broker  # noqa: E402
from agents.settings import Settings  # noqa: E402
from pipeline.engine import RiskEngine  # noqa: E402
from pipeline.events import Transaction, event_from_mapping  # noqa: E402
from pipeline.exceptions import InvalidEvent  # noqa: E402
from pipeline.simulator import SimulationConfig, Simulator  # noqa: E402
from pipeline.state.checkpoint import (  # noqa: E402
    Record,
    checkpoint_records,
    checkpointed,
    restore_engine,
)
from pipeline.state.codec import USER_PREFIX, user_key  # noqa: E402
from pipeline.state.store import PartitionStore  # noqa: E402
from pipeline.timeutil import SECOND, format_time  # noqa: E402

#: Users changed between two checkpoints, as the issue of this benchmark states it.
CHANGED = 1_000
#: Users generated per changelog checkpoint and per local batch while setting up.
_CHUNK = 50_000


def templates() -> tuple[RiskEngine, list[bytes]]:
    """A simulated credit line's users after two months, as encoded records, and its engine."""
    simulator = Simulator(SimulationConfig(users=2_000, months=2, seed=21))
    engine = RiskEngine()
    for day in simulator.days():
        for record in day:
            with contextlib.suppress(InvalidEvent):
                engine.process(event_from_mapping(record))
    records = [value for key, value in checkpoint_records(engine, {})
               if key[:1] == USER_PREFIX and value is not None]
    checkpointed(engine)
    return engine, records


def user_id(index: int) -> str:
    return f"b{index:08d}"


def partition_records(size: int, users: list[bytes]) -> list[Record]:
    return [(user_key(user_id(index)), users[index % len(users)]) for index in range(size)]


def model_records(template: RiskEngine) -> list[Record]:
    """The template engine's models and meta (its users are the generated ones)."""
    return [record for record in checkpoint_records(template, {})
            if record[0][:1] != USER_PREFIX]


async def produce_changelog(settings: Settings, users: list[Record], models: list[Record]
                            ) -> float:
    producer = changelog_producer(settings)
    await producer.start()
    started = time.perf_counter()
    try:
        writer = ChangelogWriter(producer, settings.changelog_topic(), 0)
        for start in range(0, len(users), _CHUNK):
            await writer.write(users[start:start + _CHUNK] + models)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def measure_checkpoints(settings: Settings, store: PartitionStore, size: int, rounds: int = 5
                        ) -> list[tuple[float, float, float, int]]:
    """(encode s, store write s, changelog produce s, bytes) of ``rounds`` checkpoints, each
    after one purchase by each of :data:`CHANGED` random users."""
    engine, _ = restore_engine(store, settings.risk_config(), cache_capacity=100_000,
                               own_merchants=False, where=str(store.path))
    engine.attach_merchants(RiskEngine().merchants)
    rng = random.Random(size)
    assert engine.watermark is not None
    now = engine.watermark
    results = []

    async def run() -> None:
        nonlocal now
        producer = changelog_producer(settings)
        await producer.start()
        try:
            writer = ChangelogWriter(producer, settings.changelog_topic(), 0)
            for round_ in range(rounds):
                for index in rng.sample(range(size), CHANGED):
                    now += SECOND
                    engine.process(Transaction(f"bench-{round_}-{index}", user_id(index),
                                               "m-bench", 4_200, "CNY", now))
                started = time.perf_counter()
                records = checkpoint_records(engine, {"transactions": round_})
                encoded = time.perf_counter()
                written = store.write(records, {"offset": 0})
                stored = time.perf_counter()
                await writer.write(records)
                produced = time.perf_counter()
                checkpointed(engine)
                results.append((encoded - started, stored - encoded, produced - stored, written))
        finally:
            await producer.stop()

    asyncio.run(run())
    return results


async def produce_purchases(settings: Settings, size: int, count: int, start: int) -> None:
    producer = AIOKafkaProducer(**client_config(settings), acks="all", linger_ms=20,
                                enable_idempotence=False)
    await producer.start()
    rng = random.Random(7)
    topic = settings.topic("transactions")
    try:
        for number in range(count):
            user = user_id(rng.randrange(size))
            value = orjson.dumps({
                "type": "transaction", "event_id": f"p{number}", "user_id": user,
                "merchant_id": f"m{rng.randrange(500)}", "amount_minor": rng.randint(500, 90_000),
                "currency": "CNY", "event_time": format_time(start + number * 50_000),
            })
            await producer.send(topic, value, key=user.encode())
        await producer.flush()
    finally:
        await producer.stop()


def peak_memory(pid: int, peak: list[int], done: threading.Event) -> None:
    """Poll the process's peak resident set (VmHWM) until ``done``."""
    while not done.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except OSError:
            return
        time.sleep(0.2)


def run_worker(settings: Settings, state_dir: Path) -> tuple[dict, int]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RISKSTREAM_")}
    env.update({
        "RISKSTREAM_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "RISKSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "RISKSTREAM_GROUP_ID": settings.group_id,
        "RISKSTREAM_PARTITIONS": "1",
        "RISKSTREAM_STATE_DIR": str(state_dir),
        "RISKSTREAM_SESSION_TIMEOUT_MS": "3000",
        "PYTHONPATH": str(ROOT),
    })
    command = [str(Path(sys.executable).parent / "riskstream"), "--log-level", "WARNING",
               "worker", "--stop-after-idle", "3"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    peak, done = [0], threading.Event()
    watcher = threading.Thread(target=peak_memory, args=(process.pid, peak, done), daemon=True)
    watcher.start()
    stdout, stderr = process.communicate(timeout=1800)
    done.set()
    watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"worker failed: {stderr.decode()[-2000:]}")
    return orjson.loads(stdout.splitlines()[-1])["worker"], peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    parser.add_argument("--purchases", type=int, default=100_000,
                        help="purchases replayed to the worker per size")
    args = parser.parse_args()

    template, users = templates()
    models = model_records(template)
    sizes = sorted(set(args.sizes))
    mean_record = statistics.mean(len(user) for user in users)
    print(f"user records copied from a simulated credit line: {len(users):,} users, "
          f"{mean_record:,.0f} bytes each on average; models and meta "
          f"{sum(len(value or b'') for _, value in models) / 1024:,.0f} KiB")
    with tempfile.TemporaryDirectory(prefix="riskstream-state-") as tmp, \
            EmbeddedBroker() as broker:
        root = Path(tmp)
        for size in sizes:
            settings = Settings(bootstrap_servers=broker.bootstrap, partitions=1,
                                topic_prefix=f"s{size}.", group_id=f"bench{size}",
                                state_dir=root / f"host-a-{size}")
            wait_for_broker(settings)
            ensure_topics(settings)
            records = partition_records(size, users)
            seconds = asyncio.run(produce_changelog(settings, records, models))
            store = PartitionStore(root / f"local-{size}")
            for start in range(0, size, _CHUNK):
                store.write(records[start:start + _CHUNK])
            store.write(models)
            del records
            print(f"\n{size:,} users: generated into a store and the changelog "
                  f"({seconds:.1f} s to produce the changelog)")

            # Its own changelog: the worker below restores the generated partition as it is.
            measured = settings.model_copy(update={"group_id": f"measure{size}"})
            ensure_topics(measured)
            figures = measure_checkpoints(measured, store, size)
            store.close()
            encode = [f[0] * 1000 for f in figures]
            write = [f[1] * 1000 for f in figures]
            produce = [f[2] * 1000 for f in figures]
            total = [e + w + p for e, w, p in zip(encode, write, produce, strict=True)]
            print(f"  checkpoint of {CHANGED:,} changed users (median of {len(figures)}, max): "
                  f"{statistics.median(total):.0f} ms, {max(total):.0f} ms -- encode "
                  f"{statistics.median(encode):.0f} ms, local store "
                  f"{statistics.median(write):.0f} ms, changelog "
                  f"{statistics.median(produce):.0f} ms; "
                  f"{statistics.median(f[3] for f in figures) / 1e6:.2f} MB written")

            start = template.watermark + 10 * 60 * SECOND if template.watermark else 0
            asyncio.run(produce_purchases(settings, size, args.purchases, start))
            stats, peak = run_worker(settings, root / f"host-b-{size}")
            restore = stats["restores"][0]
            rate = restore["users"] / restore["seconds"] if restore["seconds"] else 0.0
            print(f"  worker on an empty host: restored {restore['users']:,} users "
                  f"({restore['changelog_records']:,} changelog records) in "
                  f"{restore['seconds']:.1f} s = {rate:,.0f} users/s")
            print(f"  then {stats['applied']:,} purchases ({stats['records_in']:,} read, "
                  f"{stats['dead_letters']:,} dead letters): longest loop iteration "
                  f"{stats['longest_iteration_s']:.3f} s, longest checkpoint "
                  f"{stats['longest_checkpoint_s']:.3f} s, {stats['checkpoints']} checkpoints "
                  f"writing {stats['checkpoint_bytes'] / 1e6:.1f} MB; peak resident memory "
                  f"{peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
