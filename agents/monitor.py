"""``riskstream alerts``: follow the alert and limit-adjustment topics, readably or as JSON."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from agents.kafka import client_config
from agents.settings import Settings
from pipeline.money import format_minor
from pipeline.outputs import ALERTS, LIMIT_ADJUSTMENTS
from pipeline.timeutil import parse_time

__all__ = ["SEVERITIES", "adjustment_severity", "follow", "matches", "render"]

SEVERITIES = ("low", "medium", "high")
#: At equal event times an alert comes before the adjustments it caused.
STREAM_ORDER = {ALERTS: 0, LIMIT_ADJUSTMENTS: 1}
#: Most records read from the topics' past and sorted at once before the first is shown.
CATCH_UP_RECORDS = 200_000
#: Alerts whose severity is remembered, for the adjustments that follow them.
_REMEMBERED_ALERTS = 100_000


def follow(
    settings: Settings,
    *,
    from_beginning: bool = True,
    idle_timeout_s: float | None = None,
    streams: tuple[str, ...] = (ALERTS, LIMIT_ADJUSTMENTS),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (stream, record) from every partition of the output topics, in event-time order
    within what has been read: everything up to the topics' ends when it starts (at most
    :data:`CATCH_UP_RECORDS`), then each batch as it arrives. An alert comes before the
    adjustments of the same time.

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
        ends = {tp: end for tp, end in consumer.end_offsets(partitions).items() if end}
        pending: list[tuple[int, int, str, dict[str, Any]]] = []
        last = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - last < idle_timeout_s:
            batch = consumer.poll(timeout_ms=200, max_records=1000)
            for tp, records in batch.items():
                stream = stream_of_topic[tp.topic]
                order = STREAM_ORDER.get(stream, len(STREAM_ORDER))
                for record in records:
                    last = time.monotonic()
                    value = orjson.loads(record.value)
                    pending.append((_event_time(value), order, stream, value))
            catching_up = ends and any(consumer.position(tp) < end for tp, end in ends.items())
            if catching_up and len(pending) < CATCH_UP_RECORDS:
                continue
            ends = {}
            pending.sort(key=lambda item: item[:2])
            for _, _, stream, value in pending:
                yield stream, value
            pending.clear()
    finally:
        consumer.close()


def _event_time(record: dict[str, Any]) -> int:
    try:
        return parse_time(record["event_time"])
    except (KeyError, TypeError, ValueError):
        return 0


def adjustment_severity(record: dict[str, Any], alert_severity: str | None) -> str:
    """The severity an adjustment is shown with: that of the alert behind it, if known; high
    for a freeze or a confirmed hold (a line stopped); low for the rest (raises, limits set)."""
    if record.get("kind") in ("freeze", "risk_freeze", "hold_confirmed"):
        return "high"
    if alert_severity is not None:
        return alert_severity
    return "low"


def matches(
    user: str | None, min_severity: str | None
) -> Callable[[str, dict[str, Any]], bool]:
    """A filter for records read in order: by user, and by severity -- an alert's own, an
    adjustment's from the alert behind it (:func:`adjustment_severity`). An adjustment whose
    alert was not read (before ``--from-now``) is kept: it is not known to be less severe."""
    threshold = SEVERITIES.index(min_severity) if min_severity else 0
    severity_of_alert: OrderedDict[str, str] = OrderedDict()

    def keep(stream: str, record: dict[str, Any]) -> bool:
        if stream == ALERTS:
            severity_of_alert[record["alert_id"]] = record["severity"]
            if len(severity_of_alert) > _REMEMBERED_ALERTS:
                severity_of_alert.popitem(last=False)
        if user is not None and record.get("user_id") != user:
            return False
        if not threshold:
            return True
        if stream == ALERTS:
            return SEVERITIES.index(record["severity"]) >= threshold
        alert_id = record.get("alert_id")
        known = severity_of_alert.get(alert_id) if alert_id else None
        if alert_id and known is None:
            return True
        return SEVERITIES.index(adjustment_severity(record, known)) >= threshold

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
    if record.get("decided_by"):
        line += f"  by {record['decided_by']}"
    return f"{line}  [{record['adjustment_id']}]\n    why: {record['reason']}"
