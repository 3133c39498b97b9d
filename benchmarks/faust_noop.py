"""Baseline for the worker benchmark: a Faust agent that does nothing with each event.

Run by benchmarks/worker_throughput.py as ``faust -A benchmarks.faust_noop worker``; it reads
BENCH_TOPIC from the beginning, counts BENCH_EXPECTED events, writes the rate to BENCH_OUT and
stops the worker.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import faust

_bootstrap = os.environ["RISKSTREAM_BOOTSTRAP_SERVERS"]
_session_s = int(os.environ.get("RISKSTREAM_SESSION_TIMEOUT_MS", "3000")) / 1000
app = faust.App(
    os.environ.get("BENCH_GROUP", "bench-noop"),
    broker=f"kafka://{_bootstrap}",
    web_enabled=False,
    autodiscover=False,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=_session_s,
    broker_rebalance_timeout=_session_s,
    broker_heartbeat_interval=_session_s / 3,
)
topic = app.topic(os.environ["BENCH_TOPIC"], value_serializer="raw")
_expected = int(os.environ["BENCH_EXPECTED"])


@app.agent(topic)
async def count(stream):
    seen = 0
    started = 0.0
    async for _ in stream:
        if seen == 0:
            started = time.monotonic()
        seen += 1
        if seen == _expected:
            elapsed = time.monotonic() - started
            Path(os.environ["BENCH_OUT"]).write_text(f"{seen / elapsed:.1f}")
            # app.stop() from inside an agent waits for that agent: signal the worker instead.
            os.kill(os.getpid(), signal.SIGTERM)
