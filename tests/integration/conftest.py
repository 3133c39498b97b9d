"""One real broker (Tansu) per test session; unique topics and group per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.broker import EmbeddedBroker
from agents.demo import write_history
from agents.kafka import ensure_topics, wait_for_broker
from agents.monitor import follow
from agents.settings import Settings
from agents.worker import PipelineWorker, WorkerStats
from pipeline.demo import DemoHistory, generate_demo_history
from pipeline.engine import RiskEngine
from pipeline.events import Label, Transaction, event_from_mapping
from pipeline.replica import MerchantReplica

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        wait_for_broker(Settings(bootstrap_servers=running.bootstrap))
        yield running


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    name = uuid.uuid4().hex[:10]
    configured = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"t{name}.",
        group_id=f"g{name}",
        state_dir=tmp_path / "state",
        partitions=4,
        session_timeout_ms=3000,
        checkpoint_interval_s=0.5,
        replica_checkpoint_interval_s=1.0,
    )
    ensure_topics(configured)
    return configured


@pytest.fixture(scope="session")
def small_history() -> DemoHistory:
    return generate_demo_history(users=400, months=4, seed=11)


@pytest.fixture
def history_file(small_history: DemoHistory, tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl.gz"
    write_history(small_history, path)
    return path


def run_worker(settings: Settings, idle_s: float = 1.5) -> WorkerStats:
    """Run a worker in this process until its inputs have been idle for ``idle_s``."""
    return asyncio.run(PipelineWorker(settings, stop_after_idle_s=idle_s).run())


def read_outputs(settings: Settings, streams: tuple[str, ...] = ("alerts", "limit-adjustments"),
                 idle_s: float = 2.0) -> list[tuple[str, dict]]:
    return list(follow(settings, idle_timeout_s=idle_s, streams=streams))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess (riskstream or faust) these settings."""
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("RISKSTREAM_")}
    for name in ("bootstrap_servers", "topic_prefix", "group_id", "state_dir", "partitions",
                 "session_timeout_ms", "checkpoint_interval_s", "replica_checkpoint_interval_s",
                 "http_port"):
        env[f"RISKSTREAM_{name.upper()}"] = str(getattr(settings, name))
    return env


def partition_of(user_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a user id."""
    from kafka.partitioner.default import murmur2

    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def expected_run(
    history: DemoHistory, settings: Settings
) -> tuple[list[tuple[str, dict]], dict[int, RiskEngine]]:
    """The pure core over the same events, split the way Kafka partitions them; with the
    merchant replica, one that has read every partition's purchases and labels up front (its
    answers are as of each purchase, so reading ahead changes nothing)."""
    events = [event_from_mapping(record) for record in history.events]
    partitions = [partition_of(event.user_id, settings.partitions) for event in events]
    replica = None
    if settings.merchant_replica:
        replica = MerchantReplica(settings.risk_config(), settings.partitions)
        for partition, event in zip(partitions, events, strict=True):
            if isinstance(event, Transaction | Label):
                replica.apply(partition, event)
    engines: dict[int, RiskEngine] = {}
    outputs = []
    for partition, event in zip(partitions, events, strict=True):
        engine = engines.get(partition)
        if engine is None:
            engine = engines[partition] = RiskEngine(settings.risk_config())
            if replica is not None:
                engine.attach_merchants(replica.book)
        for output in engine.process(event):
            outputs.append((output.stream, output.value))
    return outputs, engines


def by_id(outputs: list[tuple[str, dict]]) -> dict[str, dict]:
    """Outputs keyed by their id; fails if one id carries two different records."""
    records: dict[str, dict] = {}
    for stream, record in outputs:
        key = record["alert_id"] if stream == "alerts" else record["adjustment_id"]
        assert records.setdefault(key, record) == record, f"{key} re-emitted with other content"
    return records
