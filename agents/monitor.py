"""``riskstream alerts``: follow the alert and limit-adjustment topics, readably or as JSON."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from agents.kafka import client_config
from agents.settings import Settings
from pipeline.money import format_minor
from pipeline.outputs import ALERTS, LIMIT_ADJUSTMENTS

__all__ = ["SEVERITIES", "follow", "render"]

SEVERITIES = ("low", "medium", "high")


def follow(
    settings: Settings,
    *,
    from_beginning: bool = True,
    idle_timeout_s: float | None = None,
    streams: tuple[str, ...] = (ALERTS, LIMIT_ADJUSTMENTS),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (stream, record) from every partition of the output topics.

    Reads by partition assignment, not as a consumer group: a monitor must never take
    partitions away from another monitor, and leaves no committed offsets behind.
    """
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        stream_of_topic = {settings.topic(stream): stream for stream in streams}
        partitions = [
            TopicPartition(topic, partition)
            for topic in stream_of_topic
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        if from_beginning:
            consumer.seek_to_beginning(*partitions)
        else:
            consumer.seek_to_end(*partitions)
        last = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - last < idle_timeout_s:
            batch = consumer.poll(timeout_ms=200, max_records=1000)
            for tp, records in batch.items():
                for record in records:
                    last = time.monotonic()
                    yield stream_of_topic[tp.topic], orjson.loads(record.value)
    finally:
        consumer.close()


def matches(
    user: str | None, min_severity: str | None
) -> Callable[[str, dict[str, Any]], bool]:
    threshold = SEVERITIES.index(min_severity) if min_severity else 0

    def keep(stream: str, record: dict[str, Any]) -> bool:
        if user is not None and record.get("user_id") != user:
            return False
        if threshold and stream == ALERTS:
            return SEVERITIES.index(record["severity"]) >= threshold
        # Adjustments have no severity; with a severity filter only those from alerts stay.
        return not threshold or bool(record.get("alert_id"))

    return keep


def render(stream: str, record: dict[str, Any]) -> str:
    """One readable line per record."""
    when = record["event_time"]
    if stream == ALERTS:
        amount = format_minor(record["amount_minor"], record["currency"])
        reasons = "; ".join(record["reasons"][:3])
        return (
            f"{when}  ALERT {record['severity']:<6} user {record['user_id']}  "
            f"score {record['score']:.2f}  {amount} at {record['merchant_id']}"
            f"  [{record['alert_id']}]\n    why: {reasons}"
        )
    currency = record["currency"]
    before = format_minor(record["available_before_minor"], currency)
    after = format_minor(record["available_after_minor"], currency)
    line = (
        f"{when}  LIMIT {record['kind']:<14} user {record['user_id']}  "
        f"available {before} -> {after}"
    )
    if record["limit_before_minor"] != record["limit_after_minor"]:
        line += (
            f"  limit {format_minor(record['limit_before_minor'], currency)} -> "
            f"{format_minor(record['limit_after_minor'], currency)}"
        )
    if record.get("expires_at"):
        line += f"  until {record['expires_at']}"
    return f"{line}  [{record['adjustment_id']}]\n    why: {record['reason']}"
