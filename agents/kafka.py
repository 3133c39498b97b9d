"""Client configuration and topic administration, for kafka-python and aiokafka alike.

Security settings pass through to every client from :class:`Settings`; the password is read
from its ``SecretStr`` only here, at the moment a client is built.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from agents.exceptions import BrokerError, ConfigurationError
from agents.settings import Settings
from agents.topics import (
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    REPLICATED_RETENTION_MS,
    REPLICATED_TOPICS,
)

__all__ = [
    "CHANGELOG_MAX_MESSAGE_BYTES",
    "caught_up",
    "changelog_config",
    "check_reachable",
    "client_config",
    "ensure_topics",
    "fetched_end_offsets",
    "wait_for_broker",
]

log = logging.getLogger(__name__)

#: Largest changelog record: a user's record holds 30 days of purchases, 26 bytes each plus
#: merchants, so a very busy user (an attack's card testing) can pass Kafka's 1 MB default.
CHANGELOG_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security keyword arguments understood by both kafka-python and aiokafka."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "security_protocol": settings.security_protocol,
    }
    context = settings.ssl_context()
    if context is not None:
        config["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return config


async def caught_up(consumer: AIOKafkaConsumer, tp: TopicPartition, seen: int = 0
                    ) -> bool | None:
    """Whether ``consumer`` has read ``tp`` up to the high watermark of its last fetch, and to
    ``seen``, an offset another reader has seen the partition reach (None: no fetch yet). The
    fetch's watermark, not ListOffsets: the embedded broker answers the latter wrongly
    (tests/integration)."""
    highwater = consumer.highwater(tp)
    return None if highwater is None else await consumer.position(tp) >= max(highwater, seen)


def check_reachable(settings: Settings, timeout_s: float = 3.0) -> None:
    """Fail fast, in one clear line, when no bootstrap address accepts a connection within
    ``timeout_s`` (the Kafka clients would retry for half a minute, logging as they go)."""
    addresses = [address.strip() for address in settings.bootstrap_servers.split(",")]
    deadline = time.monotonic() + timeout_s
    reason = ""
    while True:
        for address in addresses:
            host, _, port = address.rpartition(":") if ":" in address else (address, "", "9092")
            try:
                with socket.create_connection((host.strip("[]"), int(port)),
                                              timeout=max(0.1, min(2.0, timeout_s))):
                    return
            except (OSError, ValueError) as error:
                reason = getattr(error, "strerror", None) or str(error)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    raise BrokerError(
        f"no Kafka broker reachable at {settings.bootstrap_servers} ({reason}): start the "
        "development broker with `riskstream broker`, or point RISKSTREAM_BOOTSTRAP_SERVERS "
        "(--bootstrap) at your cluster")


def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Block until the cluster answers a metadata request."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(**client_config(settings), request_timeout_ms=5000)
        except KafkaError as exc:  # not up yet: NoBrokersAvailable and friends
            last_error = exc
            time.sleep(0.1)
            continue
        try:
            admin.list_topics()
            return
        finally:
            admin.close()
    raise BrokerError(
        f"no Kafka broker answered at {settings.bootstrap_servers} within {timeout_s:.0f} s: "
        f"{last_error!r}"
    )


def changelog_config(settings: Settings) -> dict[str, str]:
    """The changelog topic's configuration: compacted, keeping the latest record of every
    key; records stay uncompacted for a while (docs/state.md, "The changelog")."""
    return {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": str(settings.changelog_min_compaction_lag_ms),
        "max.message.bytes": str(CHANGELOG_MAX_MESSAGE_BYTES),
    }


def ensure_topics(settings: Settings) -> None:
    """Create the input, output and changelog topics if missing, and check input
    co-partitioning."""
    admin = KafkaAdminClient(**client_config(settings), request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        retained = {"retention.ms": str(REPLICATED_RETENTION_MS)}
        missing = [
            NewTopic(settings.topic(name), settings.partitions, settings.replication_factor,
                     topic_configs=retained if name in REPLICATED_TOPICS else {})
            for name in INPUT_TOPICS + OUTPUT_TOPICS
            if settings.topic(name) not in existing
        ]
        changelog = settings.changelog_topic()
        if changelog not in existing:
            missing.append(NewTopic(changelog, settings.partitions, settings.replication_factor,
                                    topic_configs=changelog_config(settings)))
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                admin.create_topics(missing)
            log.info("created topics %s", [topic.name for topic in missing])
        counts = {
            entry["name"]: len(entry["partitions"])
            for entry in admin.describe_topics([settings.topic(name) for name in INPUT_TOPICS])
        }
    finally:
        admin.close()
    if len(set(counts.values())) != 1:
        raise ConfigurationError(
            f"input topics must have the same partition count to be co-partitioned by user, "
            f"found {counts}"
        )


async def fetched_end_offsets(settings: Settings, partitions: list[TopicPartition],
                              timeout_s: float = 5.0) -> dict[TopicPartition, int]:
    """The end offset of each partition as a fetch reports it (its high watermark).

    ``ListOffsets`` is not enough everywhere: the embedded broker answers it with the first
    offset of the last record batch plus one, short of the end whenever that batch holds
    more than one record. A fetch from just before that answer reports the true end.
    """
    consumer = AIOKafkaConsumer(**client_config(settings), enable_auto_commit=False,
                                group_id=None, auto_offset_reset="latest")
    await consumer.start()
    try:
        listed = await consumer.end_offsets(partitions)
        nonempty = [tp for tp in partitions if listed.get(tp)]
        if not nonempty:
            return {tp: listed.get(tp) or 0 for tp in partitions}
        consumer.assign(nonempty)
        for tp in nonempty:
            consumer.seek(tp, listed[tp] - 1)
        deadline = time.monotonic() + timeout_s
        while (any(consumer.highwater(tp) is None for tp in nonempty)
               and time.monotonic() < deadline):
            await consumer.getmany(timeout_ms=200)
        ends = {tp: listed.get(tp) or 0 for tp in partitions}
        for tp in nonempty:
            ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
        return ends
    finally:
        await consumer.stop()
