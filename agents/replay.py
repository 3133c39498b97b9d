"""``riskstream replay``: validated events from files into their topics, in event-time order."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from agents.kafka import client_config
from agents.settings import Settings
from agents.topics import TOPIC_OF_EVENT_TYPE
from pipeline.deadletter import dead_letter
from pipeline.events import Event, event_to_mapping
from pipeline.sources import Rejection, SourceRecord, read_events
from pipeline.timeutil import SECOND

__all__ = ["ReplaySummary", "ordered_events", "replay_files"]

log = logging.getLogger(__name__)
#: How many rejections are printed one by one before only the count goes on.
_REJECTIONS_SHOWN = 20


@dataclass
class ReplaySummary:
    sent: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    rejects_path: Path | None = None
    seconds: float = 0.0

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def describe(self) -> str:
        rate = self.total_sent / self.seconds if self.seconds else 0.0
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.sent.items()))
        text = (
            f"sent {self.total_sent:,} events ({kinds or 'none'}) in {self.seconds:.1f} s "
            f"({rate:,.0f}/s); rejected {self.rejected:,}"
        )
        if self.rejected:
            text += f" -> {self.rejects_path}"
        return text


def ordered_events(
    paths: list[Path], event_type: str | None, rejections: list[SourceRecord]
) -> list[Event]:
    """All valid events of ``paths`` in event-time order; ties keep file order.

    Rejected records are appended to ``rejections`` in file order.
    """
    keyed: list[tuple[int, int, Event]] = []
    sequence = 0
    for path in paths:
        for record in read_events(path, event_type):
            if isinstance(record.item, Rejection):
                rejections.append(record)
                continue
            keyed.append((record.item.event_time, sequence, record.item))
            sequence += 1
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    return [event for _, _, event in keyed]


def replay_files(
    settings: Settings,
    paths: list[Path],
    *,
    event_type: str | None = None,
    speed: float | None = None,
    rejects_path: Path = Path("rejects.jsonl"),
    progress: bool = True,
) -> ReplaySummary:
    """Produce every valid event keyed by user id; write rejections to ``rejects_path``."""
    summary = ReplaySummary()
    started = time.monotonic()
    rejections: list[SourceRecord] = []
    events = ordered_events(paths, event_type, rejections)
    _write_rejections(rejections, rejects_path, summary)
    producer = KafkaProducer(
        **client_config(settings), acks="all", linger_ms=20, batch_size=256 * 1024,
        max_in_flight_requests_per_connection=1,  # keeps each partition's order on retries
    )
    topics = {kind: settings.topic(topic) for kind, topic in TOPIC_OF_EVENT_TYPE.items()}
    first_time = events[0].event_time if events else 0
    clock_start = time.monotonic()
    try:
        with tqdm(total=len(events), unit="ev", disable=not progress, file=sys.stderr,
                  desc="replay") as bar:
            for index, event in enumerate(events):
                if speed:
                    due = (event.event_time - first_time) / SECOND / speed
                    wait = due - (time.monotonic() - clock_start)
                    if wait > 0:
                        time.sleep(wait)
                producer.send(
                    topics[event.type],
                    key=event.user_id.encode(),
                    value=orjson.dumps(event_to_mapping(event)),
                )
                summary.sent[event.type] += 1
                if index % 1024 == 1023:
                    bar.update(1024)
            bar.update(len(events) - bar.n)
        producer.flush()
    finally:
        producer.close()
    summary.seconds = time.monotonic() - started
    return summary


def _write_rejections(
    rejections: list[SourceRecord], rejects_path: Path, summary: ReplaySummary
) -> None:
    if not rejections:
        return
    summary.rejected = len(rejections)
    summary.rejects_path = rejects_path
    with open(rejects_path, "ab") as handle:
        for number, record in enumerate(rejections):
            rejection = record.item
            assert isinstance(rejection, Rejection)
            if number < _REJECTIONS_SHOWN:
                log.warning("rejected %s:%d: %s", record.path, record.line, rejection.error)
            handle.write(orjson.dumps(dead_letter(
                rejection.error, rejection.original,
                source_file=record.path, source_line=record.line,
            )) + b"\n")
    if summary.rejected > _REJECTIONS_SHOWN:
        log.warning("... and %d more rejections", summary.rejected - _REJECTIONS_SHOWN)
