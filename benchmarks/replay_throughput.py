"""Replay rate of the full Fraud Detection Handbook dev file into the broker (not a test).

All 1,504,628 transactions plus a fraud label 7 days after each fraud, read through the
handbook adapter, validated, merged and produced to the embedded broker in one call -- what
``riskstream replay --format fdh FILE`` does. Prints the adapter's own rate (read and validate,
no Kafka) and the end-to-end replay rate.

    python benchmarks/replay_throughput.py [--file PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.broker import EmbeddedBroker  # noqa: E402
from agents.kafka import ensure_topics, wait_for_broker  # noqa: E402
from agents.replay import replay_files  # noqa: E402
from agents.settings import Settings  # noqa: E402
from pipeline.adapters import read_fdh  # noqa: E402
from pipeline.history import HistoryOptions  # noqa: E402

DEFAULT_FILE = ROOT.parent / "shared" / "data" / "fdh_dev_2018-04-01_2018-09-04.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--adapter-sample", type=int, default=300_000,
                        help="records read for the adapter-only rate")
    args = parser.parse_args()
    if not args.file.exists():
        sys.exit(f"{args.file} not found: the handbook's dev file is needed for this benchmark")

    started = time.perf_counter()
    count = sum(1 for _ in itertools.islice(read_fdh(args.file), args.adapter_sample))
    print(f"handbook adapter (read + validate, no Kafka): "
          f"{count / (time.perf_counter() - started):,.0f} events/s over {count:,} events")

    with tempfile.TemporaryDirectory(prefix="riskstream-bench-") as tmp, EmbeddedBroker() as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap)
        wait_for_broker(settings)
        ensure_topics(settings)
        summary = replay_files(settings, [args.file], options=HistoryOptions(format="fdh"),
                               rejects_path=Path(tmp) / "rejects.jsonl", progress=False)
        print(f"replay --format fdh, whole file into the broker: {summary.describe()}")


if __name__ == "__main__":
    main()
