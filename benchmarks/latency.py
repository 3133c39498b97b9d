"""Latency from a purchase's send to its alert's arrival, at steady input rates (not a test).

For each rate, on one embedded broker (Tansu) with fresh topics:
  1. a ``riskstream worker`` process is started and waited for until /ready answers;
  2. a producer sends a simulated history at the rate, paced every millisecond, one purchase
     in ``--alert-every`` made unusually large (thirty times its amount, at an unfamiliar
     merchant) so that a steady share of purchases alerts;
  3. a consumer on the alerts topic takes, for each alert, its arrival time minus the time
     its purchase was handed to the producer.
Before the worker runs, a bare aiokafka produce -> consume round trip on the same broker at
the same rate gives the floor the broker and the clients set by themselves.

    python benchmarks/latency.py [--rates 500 2000 5000] [--seconds 30] [--users 27000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.broker import EmbeddedBroker, free_port  # noqa: E402
from agents.kafka import ensure_topics, wait_for_broker  # noqa: E402
from agents.settings import Settings  # noqa: E402
from agents.topics import TOPIC_OF_EVENT_TYPE  # noqa: E402
from pipeline.demo import generate_demo_history  # noqa: E402

#: The measuring producer's linger (the worker's own producer lingers 5 ms too).
PRODUCER_LINGER_MS = 5
#: Records sent at full speed before the steady stream, so that users have a history.
PRELOAD = 40_000


def stream(users: int, months: int, alert_every: int) -> list[tuple[str, str, bytes, str | None]]:
    """(topic name, key, value, transaction id) in event-time order; every ``alert_every``-th
    purchase after the first tenth is made unusual."""
    history = generate_demo_history(users=users, months=months, seed=5)
    records = []
    purchases = 0
    warm = PRELOAD  # records before the first unusual purchase: users have a history
    for index, event in enumerate(history.events):
        transaction_id = None
        if event["type"] == "transaction":
            purchases += 1
            transaction_id = event["event_id"]
            if index > warm and purchases % alert_every == 0:
                event = {**event, "amount_minor": event["amount_minor"] * 30,
                         "merchant_id": f"x9{purchases % 100:02d}"}
        records.append((TOPIC_OF_EVENT_TYPE[event["type"]], event["user_id"],
                        orjson.dumps(event), transaction_id))
    return records


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cut[49], "p95": cut[94], "p99": cut[98], "max": ordered[-1]}


async def pace(rate: float, seconds: float, send: Any, count: int) -> int:
    """Call ``send(i)`` for i = 0, 1, ... at ``rate`` per second for ``seconds``."""
    started = time.monotonic()
    sent = 0
    total = min(count, int(rate * seconds))
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            await send(sent)
            sent += 1
        await asyncio.sleep(0.001)
    return sent


async def round_trip(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    """A bare aiokafka producer -> topic -> consumer at ``rate``: the broker's own latency."""
    topic = settings.topic("roundtrip")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                linger_ms=PRODUCER_LINGER_MS, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                auto_offset_reset="earliest")
    await producer.start()
    await producer.send_and_wait(topic, b"0", key=b"warm")
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    latencies: list[float] = []
    done = asyncio.Event()

    async def receive() -> None:
        while not done.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for record in records:
                    if record.key != b"warm":
                        latencies.append(now - float(record.value))

    reader = asyncio.ensure_future(receive())

    async def send(index: int) -> None:
        await producer.send(topic, str(time.time()).encode(), key=str(index % 997).encode())

    await pace(rate, seconds, send, 10**9)
    await asyncio.sleep(1.0)
    done.set()
    await reader
    await producer.stop()
    await consumer.stop()
    return percentiles(latencies[len(latencies) // 10:])


def wait_ready(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the worker did not become ready")


def wait_caught_up(port: int, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lag = sum(float(line.rsplit(" ", 1)[1]) for line in metrics(port).splitlines()
                  if line.startswith("riskstream_consumer_lag_records{"))
        if lag == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("the worker did not catch up with the preloaded history")


def process_cpu(text: str) -> float:
    """The worker's CPU seconds, from its /metrics."""
    return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("process_cpu_seconds_total"))


def machine_cpu() -> tuple[float, float]:
    """(idle, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode()


async def measure(settings: Settings, records: list, rate: float, seconds: float,
                  env: dict[str, str], workdir: Path) -> dict[str, Any]:
    port = free_port()
    worker_env = {**env, "RISKSTREAM_HTTP_PORT": str(port),
                  "RISKSTREAM_TOPIC_PREFIX": settings.topic_prefix,
                  "RISKSTREAM_GROUP_ID": settings.group_id,
                  "RISKSTREAM_STATE_DIR": str(workdir / settings.group_id)}
    worker = subprocess.Popen([str(Path(sys.executable).parent / "riskstream"), "worker"],
                              env=worker_env, stdout=subprocess.DEVNULL,
                              stderr=(workdir / f"worker-{rate:.0f}.log").open("wb"))
    try:
        await asyncio.to_thread(wait_ready, port)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                    linger_ms=PRODUCER_LINGER_MS, acks="all")
        alerts = AIOKafkaConsumer(settings.topic("alerts"),
                                  bootstrap_servers=settings.bootstrap_servers,
                                  fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                  auto_offset_reset="earliest", group_id=None)
        await producer.start()
        await alerts.start()
        sent_at: dict[str, float] = {}
        latencies: list[tuple[float, float]] = []  # (seconds since start, latency)
        done = asyncio.Event()
        started = time.time()

        async def receive() -> None:
            while not done.is_set():
                batch = await alerts.getmany(timeout_ms=100)
                now = time.time()
                for batch_records in batch.values():
                    for record in batch_records:
                        alert = orjson.loads(record.value)
                        sent = sent_at.get(alert["transaction_id"])
                        if sent is not None:
                            latencies.append((sent - started, now - sent))

        reader = asyncio.ensure_future(receive())

        for index in range(PRELOAD):
            name, key, value, _ = records[index]
            await producer.send(settings.topic(name), value, key=key.encode())
        await producer.flush()
        await asyncio.to_thread(wait_caught_up, port)
        cpu_before, machine_before = process_cpu(await asyncio.to_thread(metrics, port)), \
            machine_cpu()
        started = time.time()
        steady = records[PRELOAD:]

        async def send(index: int) -> None:
            name, key, value, transaction_id = steady[index]
            if transaction_id is not None:
                sent_at[transaction_id] = time.time()
            await producer.send(settings.topic(name), value, key=key.encode())

        sent = await pace(rate, seconds, send, len(steady))
        cpu_after, machine_after = process_cpu(await asyncio.to_thread(metrics, port)), \
            machine_cpu()
        elapsed = time.time() - started
        await producer.flush()
        await asyncio.sleep(3.0)
        done.set()
        await reader
        text = await asyncio.to_thread(metrics, port)
        await producer.stop()
        await alerts.stop()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    warm = [latency for at, latency in latencies if at >= seconds * 0.1]
    lag = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("riskstream_consumer_lag_records{"))
    dead = {line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith("riskstream_dead_letters_total{")}
    return {"rate": rate, "sent": sent, "alerts": len(warm), **percentiles(warm),
            "inside": histogram_quantiles(text, "riskstream_output_latency_seconds"),
            "iteration": histogram_quantiles(text, "riskstream_loop_iteration_seconds"),
            "lag_at_end": lag, "dead_letters": dead,
            "worker_cpu": (cpu_after - cpu_before) / elapsed,
            "machine_busy": 1 - (machine_after[0] - machine_before[0])
            / max(1e-9, machine_after[1] - machine_before[1]),
            "last_third_p99": percentiles([x for at, x in latencies
                                           if at >= seconds * 2 / 3]).get("p99")}


def histogram_quantiles(text: str, name: str) -> str:
    """p50/p99 bucket bounds of one of the worker's histograms, from its /metrics."""
    buckets = [(float(line.split('le="')[1].split('"')[0]), float(line.rsplit(" ", 1)[1]))
               for line in text.splitlines() if line.startswith(f"{name}_bucket{{")]
    total = buckets[-1][1] if buckets else 0
    found = []
    for q in (0.5, 0.99):
        bound = next((le for le, seen in buckets if seen >= q * total), float("nan"))
        found.append(f"p{int(q * 100)} <= {bound * 1000:g} ms")
    return ", ".join(found) + f" ({total:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500, 2000, 5000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=27_000)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--alert-every", type=int, default=100)
    parser.add_argument("--logs", type=Path, help="Keep the workers' logs in this folder.")
    args = parser.parse_args()
    records = stream(args.users, args.months, args.alert_every)
    print(f"stream: {len(records):,} records of {args.users:,} users, one purchase in "
          f"{args.alert_every} made unusual", flush=True)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        base = Settings(bootstrap_servers=broker.bootstrap)
        wait_for_broker(base)
        # The worker takes any other RISKSTREAM_* setting from this environment.
        env = {**os.environ, "RISKSTREAM_BOOTSTRAP_SERVERS": broker.bootstrap}
        header = f"{'':24} {'rate/s':>7} {'alerts':>7} {'p50 ms':>8} {'p95 ms':>8} " \
                 f"{'p99 ms':>8} {'max ms':>8}"
        print(header)
        for rate in args.rates:
            run = uuid.uuid4().hex[:6]
            settings = base.model_copy(update={"topic_prefix": f"b{run}.",
                                               "group_id": f"bench-{run}"})
            ensure_topics(settings)
            floor = asyncio.run(round_trip(settings, rate, min(args.seconds, 10.0)))
            result = asyncio.run(measure(settings, records, rate, args.seconds, env,
                                         args.logs or workdir))

            def row(name: str, figures: dict[str, Any], count: str, rate: float = rate) -> str:
                values = [f"{figures[k] * 1000:8.1f}" if figures.get(k) is not None
                          else f"{'-':>8}" for k in ("p50", "p95", "p99", "max")]
                return f"{name:24} {rate:7.0f} {count:>7} {' '.join(values)}"

            print(row("bare produce->consume", floor, "-"))
            print(row("purchase->alert", result, str(result["alerts"])))
            last = result["last_third_p99"]
            print(f"{'':24} last third p99 {last * 1000 if last else float('nan'):.1f} ms; "
                  f"worker lag at the end: {result['lag_at_end']:.0f} records; dead letters: "
                  f"{result['dead_letters'] or 0}", flush=True)
            print(f"{'':24} worker CPU {result['worker_cpu']:.0%} of a core; machine "
                  f"{result['machine_busy']:.0%} busy ({os.cpu_count()} cores)")
            print(f"{'':24} in the worker, input's broker timestamp -> outputs sent: "
                  f"{result['inside']}; loop iterations: {result['iteration']}", flush=True)


if __name__ == "__main__":
    main()
