"""Simulator rate at scale (not a test): events/s and peak memory for a large history.

    python benchmarks/simulate_throughput.py [--users 1000000] [--months 3] [--format jsonl]

The default, one million users over three months, writes about 50 million events.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.simulate import write_simulation  # noqa: E402
from pipeline.simulator import SimulationConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="riskstream-sim-") as tmp:
        summary = write_simulation(SimulationConfig(users=args.users, months=args.months),
                                   Path(tmp), args.format, progress=False)
        sizes = ", ".join(f"{path.name} {path.stat().st_size / 2**20:,.0f} MiB"
                          for path in summary.paths)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(summary.describe().split(" -> ")[0])
    print(f"files: {sizes}; peak memory {peak:,.0f} MiB")
    print(f"what happened: {summary.stats}")


if __name__ == "__main__":
    main()
