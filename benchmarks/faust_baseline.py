"""Baselines for the worker benchmark: a Faust agent that does nothing with each event, and one
that updates a table per event (the brief's two reference points).

Run by benchmarks/worker_throughput.py as ``faust -A benchmarks.faust_baseline worker``; it
reads BENCH_TOPIC from the beginning, counts BENCH_EXPECTED events, writes the rate to BENCH_OUT
and stops the worker. BENCH_AGENT picks the agent:

- ``noop``: counts the events and nothing else;
- ``table``: adds one to a Faust table (in memory, with its changelog topic, as Faust keeps any
  table) under the event's key, for every event.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import faust

_bootstrap = os.environ["RISKSTREAM_BOOTSTRAP_SERVERS"]
_session_s = int(os.environ.get("RISKSTREAM_SESSION_TIMEOUT_MS", "3000")) / 1000
_agent = os.environ.get("BENCH_AGENT", "noop")
if _agent not in ("noop", "table"):
    raise SystemExit(f"BENCH_AGENT must be noop or table, not {_agent!r}")
app = faust.App(
    os.environ.get("BENCH_GROUP", f"bench-{_agent}"),
    broker=f"kafka://{_bootstrap}",
    web_enabled=False,
    autodiscover=False,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=_session_s,
    broker_rebalance_timeout=_session_s,
    broker_heartbeat_interval=_session_s / 3,
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
)
topic = app.topic(os.environ["BENCH_TOPIC"], key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, key_type=bytes, value_type=int) \
    if _agent == "table" else None
_expected = int(os.environ["BENCH_EXPECTED"])


class _Rate:
    """Events per second from the first event to the ``_expected``-th."""

    def __init__(self) -> None:
        self.seen = 0
        self.started = 0.0

    def tick(self) -> None:
        if self.seen == 0:
            self.started = time.monotonic()
        self.seen += 1
        if self.seen == _expected:
            elapsed = time.monotonic() - self.started
            Path(os.environ["BENCH_OUT"]).write_text(f"{self.seen / elapsed:.1f}")
            # app.stop() from inside an agent waits for that agent: signal the worker instead.
            os.kill(os.getpid(), signal.SIGTERM)


_rate = _Rate()

if counts is None:

    @app.agent(topic)
    async def count(stream):
        async for _ in stream:
            _rate.tick()

else:

    @app.agent(topic)
    async def count_per_key(stream):
        async for event in stream.events():
            counts[event.key] += 1
            _rate.tick()
