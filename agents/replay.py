"""``riskstream replay``: validated events from files into their topics, in event-time order.

The files are merged lazily (``pipeline.history``), so a history of any size replays in bounded
memory. Progress is checkpointed: every ``checkpoint_every`` events the producer is flushed
(everything before is acknowledged by the brokers) and the count is written to a progress file.
``--resume`` skips that many events of the same merged order. The few events sent after the
last checkpoint and before an interruption are sent again, with the same event ids: the worker
recognises them and dead-letters them as ``duplicate`` instead of counting them twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from agents.kafka import client_config
from agents.settings import Settings
from agents.topics import TOPIC_OF_EVENT_TYPE
from pipeline.deadletter import dead_letter
from pipeline.events import event_to_mapping
from pipeline.exceptions import RiskstreamError
from pipeline.history import HistoryOptions, Pacer, merged_history
from pipeline.sources import Rejection, SourceRecord

__all__ = ["ReplaySummary", "replay_files"]

log = logging.getLogger(__name__)
#: How many rejections are printed one by one before only the count goes on.
_REJECTIONS_SHOWN = 20
_PROGRESS_VERSION = 1


@dataclass
class ReplaySummary:
    sent: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    rejects_path: Path | None = None
    seconds: float = 0.0
    #: Events skipped by --resume because an earlier run had them acknowledged.
    resumed_after: int = 0

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
        if self.resumed_after:
            text += f"; resumed after {self.resumed_after:,} acknowledged events"
        return text


class _Rejects:
    """Appends rejections to the rejects file as they are met; the first few are logged."""

    def __init__(self, path: Path, summary: ReplaySummary, skip: int) -> None:
        self.path = path
        self.summary = summary
        self.skip = skip  # already written by the run being resumed
        self.seen = 0
        self._handle: Any = None

    def __call__(self, record: SourceRecord) -> None:
        self.seen += 1
        if self.seen <= self.skip:
            return
        rejection = record.item
        assert isinstance(rejection, Rejection)
        summary = self.summary
        summary.rejected += 1
        summary.rejects_path = self.path
        if summary.rejected <= _REJECTIONS_SHOWN:
            log.warning("rejected %s:%d: %s", record.path, record.line, rejection.error)
        if self._handle is None:
            self._handle = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._handle.write(orjson.dumps(dead_letter(
            rejection.error, rejection.original, source_file=record.path, source_line=record.line,
        )) + b"\n")

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self.summary.rejected > _REJECTIONS_SHOWN:
            log.warning("... and %d more rejections", self.summary.rejected - _REJECTIONS_SHOWN)


def _signature(paths: list[Path], options: HistoryOptions) -> list[Any]:
    """What a progress file is valid for: the same files, unchanged, read the same way."""
    files = [[str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns] for path in paths]
    return [files, repr(options)]


def _load_progress(path: Path, signature: list[Any]) -> tuple[int, int]:
    try:
        progress = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise RiskstreamError(f"--resume: no progress file {path}") from None
    if progress.get("version") != _PROGRESS_VERSION or progress.get("inputs") != signature:
        raise RiskstreamError(
            f"--resume: {path} belongs to other input files or options; replay without --resume"
        )
    return int(progress["acknowledged"]), int(progress["rejections_written"])


def _save_progress(path: Path, signature: list[Any], acknowledged: int, rejections: int,
                   complete: bool) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps({
        "version": _PROGRESS_VERSION, "inputs": signature, "acknowledged": acknowledged,
        "rejections_written": rejections, "complete": complete,
    }))
    os.replace(temporary, path)


def _expected_total(paths: list[Path], options: HistoryOptions) -> int | None:
    """About how many records the inputs hold, for the progress bar's ETA: Parquet metadata,
    or a count of lines (a quick pass, even gzipped). None for the UCI table's derived events.
    """
    import gzip

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if options.format == "uci-taiwan":
        return None
    total = 0
    for path in paths:
        name = path.name.lower()
        if name.endswith(".parquet"):
            parquet = pq.ParquetFile(path)
            total += parquet.metadata.num_rows
            if options.format == "fdh":  # one label per fraud
                total += pc.sum(parquet.read(columns=["TX_FRAUD"]).column(0)).as_py() or 0
            continue
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        total += lines - (1 if ".csv" in name else 0)
    return total


def replay_files(
    settings: Settings,
    paths: list[Path],
    *,
    options: HistoryOptions | None = None,
    speed: float | None = None,
    rate: float | None = None,
    rejects_path: Path = Path("rejects.jsonl"),
    progress_path: Path | None = None,
    resume: bool = False,
    checkpoint_every: int = 20_000,
    progress: bool = True,
) -> ReplaySummary:
    """Produce every valid event keyed by user id; append rejections to ``rejects_path``.

    Progress is checkpointed to ``progress_path`` when one is given (``resume`` needs it).
    """
    if options is None:
        options = HistoryOptions()
    if resume and progress_path is None:
        raise RiskstreamError("--resume needs the progress file of the interrupted replay")
    summary = ReplaySummary()
    started = time.monotonic()
    signature = _signature(paths, options)
    skip_events, skip_rejections = (
        _load_progress(progress_path, signature) if resume and progress_path else (0, 0)
    )
    summary.resumed_after = skip_events
    rejects = _Rejects(rejects_path, summary, skip_rejections)
    producer = KafkaProducer(
        **client_config(settings), acks="all", linger_ms=20, batch_size=256 * 1024,
        max_in_flight_requests_per_connection=1,  # keeps each partition's order on retries
    )
    topics = {kind: settings.topic(topic) for kind, topic in TOPIC_OF_EVENT_TYPE.items()}
    pacer = Pacer(speed, rate)
    total = _expected_total(paths, options)
    position = 0  # events of the merged order handled so far, skipped ones included
    try:
        with tqdm(total=None if total is None else total - skip_events, unit="ev",
                  disable=not progress, file=sys.stderr, desc="replay",
                  smoothing=0.1, mininterval=0.5) as bar:
            for event in merged_history(paths, options, rejects):
                position += 1
                if position <= skip_events:
                    continue
                wait = pacer.wait(event.event_time)
                if wait > 0:
                    time.sleep(wait)
                producer.send(topics[event.type], key=event.user_id.encode(),
                              value=orjson.dumps(event_to_mapping(event)))
                summary.sent[event.type] += 1
                if progress_path is not None and position % checkpoint_every == 0:
                    producer.flush()
                    rejects.flush()
                    _save_progress(progress_path, signature, position, rejects.seen, False)
                if position % 1024 == 0:
                    bar.update(position - skip_events - bar.n)
            bar.update(max(0, position - skip_events - bar.n))
        producer.flush()
        rejects.flush()
        if progress_path is not None:
            _save_progress(progress_path, signature, position, rejects.seen, True)
    finally:
        rejects.close()
        with contextlib.suppress(Exception):
            producer.close()
    summary.seconds = time.monotonic() - started
    return summary
