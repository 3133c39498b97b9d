"""Known defects of the embedded broker (Tansu), pinned so the suite notices when they change.

riskstream is built around them: each test says what depends on the defect. If one of these
fails, Tansu changed -- re-read the note and revisit the code it names. None of them holds on
Apache Kafka; docs/guarantees.md says what holds where.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError

from agents.broker import EmbeddedBroker
from agents.kafka import wait_for_broker
from agents.settings import Settings

pytestmark = pytest.mark.integration


def _topic(admin: KafkaAdminClient, **configs: str) -> str:
    name = f"guard-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
    return name


@pytest.fixture
def admin(broker: EmbeddedBroker) -> KafkaAdminClient:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    yield client
    client.close()


def test_list_offsets_latest_is_wrong_when_a_batch_holds_several_records(
    broker: EmbeddedBroker, admin: KafkaAdminClient
) -> None:
    """The worker judges "caught up" by the fetch response's high watermark, never by
    end_offsets (agents/worker.py); tests never wait for end offsets to mean "drained"."""
    topic = _topic(admin)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=100)
    for index in range(10):
        producer.send(topic, key=b"k", value=b"%d" % index)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    partition = TopicPartition(topic, 0)
    try:
        listed = consumer.end_offsets([partition])[partition]
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        fetched = sum(len(batch) for batch in consumer.poll(timeout_ms=5000).values())
        assert fetched == 10 and consumer.highwater(partition) == 10  # fetch is right
        assert listed < 10, "ListOffsets(latest) is now right: Tansu fixed it"
    finally:
        consumer.close()


def test_the_idempotent_producer_cannot_start(broker: EmbeddedBroker, admin: KafkaAdminClient
                                              ) -> None:
    """The worker's producer runs with enable_idempotence=False; exactly-once comes from
    deterministic output ids and state stored with its offsets, not from Kafka transactions."""
    topic = _topic(admin)

    async def send_idempotently() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        try:
            await asyncio.wait_for(producer.start(), 15)
            await asyncio.wait_for(producer.send_and_wait(topic, b"x"), 15)
        finally:
            await producer.stop()

    with pytest.raises(AIOKafkaError):
        asyncio.run(send_idempotently())


def test_compaction_settings_are_not_kept(broker: EmbeddedBroker, admin: KafkaAdminClient
                                          ) -> None:
    """No log compaction: on the embedded broker the state changelog keeps every record
    written, and a restore reads them all (docs/state.md says how fast it grows)."""
    topic = _topic(admin, **{"cleanup.policy": "compact"})
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    assert "compact" not in repr(described), "Tansu now keeps cleanup.policy=compact"


def test_nothing_survives_a_restart_and_delete_records_fails(tmp_path: Path) -> None:
    """Restarting the embedded broker loses every topic (the demo and tests start it fresh);
    DeleteRecords kills the request's connection (a panic in Tansu), so riskstream never
    trims topics itself."""
    log_path = tmp_path / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        wait_for_broker(Settings(bootstrap_servers=running.bootstrap))
        admin = KafkaAdminClient(bootstrap_servers=running.bootstrap)
        topic = _topic(admin)
        producer = KafkaProducer(bootstrap_servers=running.bootstrap)
        producer.send(topic, b"x")
        producer.send(topic, b"y")
        producer.flush()
        producer.close()
        with pytest.raises(KafkaError):
            admin.delete_records({TopicPartition(topic, 0): 1}, timeout_ms=5000)
        admin.close()
        port = running.port
    assert "panicked" in log_path.read_text(errors="replace")

    with EmbeddedBroker(port=port) as restarted:
        wait_for_broker(Settings(bootstrap_servers=restarted.bootstrap))
        admin = KafkaAdminClient(bootstrap_servers=restarted.bootstrap)
        try:
            assert topic not in admin.list_topics(), "Tansu now keeps topics across restarts"
        finally:
            admin.close()
