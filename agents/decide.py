"""``riskstream decide``: a person's decision, validated and written to the decisions topic.

The worker applies it in event time like any input (:mod:`pipeline.decisions`); this side only
makes sure it is well formed and acknowledged by the brokers.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from kafka import KafkaProducer

from agents.kafka import client_config
from agents.settings import Settings
from agents.topics import TOPIC_OF_EVENT_TYPE
from pipeline.events import Decision, event_from_mapping, event_to_mapping

__all__ = ["decision_record", "send_decision"]


def decision_record(action: str, user_id: str, decided_by: str, reason: str, event_time: str,
                    *, event_id: str | None = None, limit_minor: int | None = None,
                    currency: str | None = None) -> dict[str, Any]:
    """The decision as its topic carries it; raises InvalidEvent if it is not well formed."""
    record: dict[str, Any] = {
        "type": "decision", "event_id": event_id or f"dec-{uuid.uuid4()}", "user_id": user_id,
        "action": action, "decided_by": decided_by, "reason": reason, "event_time": event_time,
    }
    if limit_minor is not None:
        record["limit_minor"], record["currency"] = limit_minor, currency
    event = event_from_mapping(record)
    assert isinstance(event, Decision)
    return event_to_mapping(event)


def send_decision(settings: Settings, record: dict[str, Any]) -> tuple[str, int, int]:
    """Produce ``record`` keyed by its user; returns (topic, partition, offset) once the
    brokers have it."""
    topic = settings.topic(TOPIC_OF_EVENT_TYPE["decision"])
    producer = KafkaProducer(**client_config(settings), acks="all")
    try:
        metadata = producer.send(topic, orjson.dumps(record),
                                 key=record["user_id"].encode()).get(timeout=30)
    finally:
        producer.close()
    return topic, metadata.partition, metadata.offset
