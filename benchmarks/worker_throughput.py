"""Worker throughput on the demo history, printed as figures (not a test).

In one run, on one embedded broker and the same data:
  1. the pure core (RiskEngine, no Kafka) in events/s;
  2. the riskstream worker end to end (fetch, decode, validate, align, windows, models, policy,
     produce outputs, checkpoints) in events/s while busy;
  3. the same worker without its merchant replica, for the replica's cost;
  4. two Faust agents over the transactions topic, for the ratios: one that does nothing, and
     one that updates a table per event.
plus the state size per active user.

    python benchmarks/worker_throughput.py [--users 3000] [--months 4] [--no-faust]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.broker import EmbeddedBroker  # noqa: E402
from agents.demo import write_history  # noqa: E402
from agents.kafka import ensure_topics, wait_for_broker  # noqa: E402
from agents.replay import replay_files  # noqa: E402
from agents.settings import Settings  # noqa: E402
from agents.worker import PipelineWorker  # noqa: E402
from pipeline.demo import generate_demo_history  # noqa: E402
from pipeline.engine import RiskEngine  # noqa: E402
from pipeline.events import event_from_mapping  # noqa: E402
from pipeline.state.codec import encode_user  # noqa: E402


def pure_core(events: list) -> tuple[float, RiskEngine]:
    engine = RiskEngine()
    process = engine.process
    started = time.perf_counter()
    for event in events:
        process(event)
    return len(events) / (time.perf_counter() - started), engine


def state_bytes_per_user(engine: RiskEngine) -> float:
    """A user's record as the store keeps it (pipeline/state/codec.py), on average."""
    records = [encode_user(user) for _, user in engine.users.items()]
    return sum(map(len, records)) / max(len(records), 1)


def faust_baseline(agent: str, settings: Settings, expected: int,
                   workdir: Path) -> float | None:
    """Events/s of the Faust ``agent`` ("noop" or "table") in benchmarks/faust_baseline.py."""
    out = workdir / f"faust-{agent}-rate.txt"
    env = {
        **os.environ,
        "RISKSTREAM_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "BENCH_TOPIC": settings.topic("transactions"),
        "BENCH_EXPECTED": str(expected),
        "BENCH_OUT": str(out),
        "BENCH_AGENT": agent,
        "BENCH_PARTITIONS": str(settings.partitions),
        "BENCH_GROUP": f"bench-{agent}-{os.getpid()}",
        "PYTHONPATH": str(ROOT),
    }
    faust = Path(sys.executable).parent / "faust"
    try:
        subprocess.run(
            [str(faust), "-A", "benchmarks.faust_baseline", "worker", "-l", "warn"],
            cwd=workdir, env=env, timeout=300, check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None
    return float(out.read_text()) if out.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--no-faust", action="store_true", help="skip the Faust baselines")
    args = parser.parse_args()

    history = generate_demo_history(users=args.users, months=args.months)
    events = [event_from_mapping(record) for record in history.events]
    transactions = sum(event.type == "transaction" for event in events)
    print(f"demo history: {len(events):,} events ({transactions:,} transactions), "
          f"{args.users:,} users, {args.months} months")

    core_rate, engine = pure_core(events)
    print(f"pure core (RiskEngine, one partition, no Kafka): {core_rate:,.0f} events/s")
    print(f"state per user (the store's record, windows included): "
          f"{state_bytes_per_user(engine):,.0f} bytes")
    # The worker runs next in this process: leave it the heap a worker process of its own
    # would have, or the collector's passes over the core's leftovers skew its figures.
    del engine, events
    gc.collect()

    with tempfile.TemporaryDirectory(prefix="riskstream-bench-") as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        settings = Settings(bootstrap_servers=broker.bootstrap, state_dir=workdir / "state",
                            session_timeout_ms=3000, group_id="bench")
        wait_for_broker(settings)
        ensure_topics(settings)
        path = workdir / "history.jsonl.gz"
        write_history(history, path)
        summary = replay_files(settings, [path], progress=False)
        print(f"replay: {summary.describe()}")
        del history
        gc.collect()

        stats = asyncio.run(PipelineWorker(settings, stop_after_idle_s=2.0).run())
        print(f"worker end to end: {stats.busy_rate:,.0f} events/s while busy "
              f"({stats.applied:,} applied, outputs {dict(stats.outputs)}; "
              f"{stats.checkpoints} checkpoints, {stats.checkpoint_bytes / 1e6:.1f} MB, the "
              f"longest {stats.longest_checkpoint_s:.3f} s in the loop)")
        local = settings.model_copy(update={"merchant_replica": False, "group_id": "bench-local"})
        local_stats = asyncio.run(PipelineWorker(local, stop_after_idle_s=2.0).run())
        print(f"worker without the merchant replica: {local_stats.busy_rate:,.0f} events/s "
              f"(the replica costs {1 - stats.busy_rate / local_stats.busy_rate:.0%})")
        if not args.no_faust:
            for agent, label in (("noop", "no-op agent"), ("table", "table-updating agent")):
                rate = faust_baseline(agent, settings, transactions, workdir)
                if rate is None:
                    print(f"faust {label}: did not finish")
                    continue
                print(f"faust {label} (transactions topic only): {rate:,.0f} events/s; "
                      f"worker / it: {stats.busy_rate / rate:.2f}x")


if __name__ == "__main__":
    main()
