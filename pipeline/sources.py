"""Reading event files: JSON lines, CSV (plain or gzip) and Parquet, validated record by record.

Every record comes out either as an event or as a rejection carrying its file, line and the
original bytes, so a replay can report and keep what it refuses instead of dropping it.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.events import Event, event_from_mapping
from pipeline.exceptions import InvalidEvent

__all__ = ["Rejection", "SourceRecord", "read_events", "validated"]

#: CSV cells are text; these columns are whole numbers in the contract.
_INTEGER_COLUMNS = frozenset({"amount_minor"})


@dataclass(slots=True, frozen=True)
class Rejection:
    error: InvalidEvent
    original: bytes


@dataclass(slots=True, frozen=True)
class SourceRecord:
    path: str
    line: int
    item: Event | Rejection


def read_events(
    path: Path,
    event_type: str | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Iterator[SourceRecord]:
    """Yield every record of ``path`` in file order. ``event_type`` fills a missing ``type``;
    ``transform`` (a column mapping) turns each row into the contract's fields first."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        rows = _parquet_rows(path)
    elif name.endswith((".csv", ".csv.gz")):
        rows = _csv_rows(path)
    elif name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")):
        rows = _jsonl_rows(path)
    else:
        raise ValueError(f"{path}: unknown format (expected .jsonl, .csv or .parquet, maybe .gz)")
    source = str(path)
    for line, record, original in rows:
        if isinstance(record, InvalidEvent):
            yield SourceRecord(source, line, Rejection(record, original))
            continue
        if transform is not None:
            record = transform(record)
        if event_type is not None and "type" not in record:
            record["type"] = event_type
        yield validated(source, line, record, original)


def validated(path: str, line: int, record: dict[str, Any], original: bytes) -> SourceRecord:
    """The event a record makes, or its rejection with the original bytes."""
    try:
        return SourceRecord(path, line, event_from_mapping(record))
    except InvalidEvent as error:
        return SourceRecord(path, line, Rejection(error, original))


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | InvalidEvent, bytes]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, InvalidEvent("malformed-json", f"not valid JSON: {exc}"), line
                continue
            if not isinstance(record, dict):
                yield number, InvalidEvent("wrong-type", "expected a JSON object"), line
                continue
            yield number, record, line


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | InvalidEvent, bytes]]:
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num
            original = orjson.dumps(row)
            record: dict[str, Any] = {}
            for column, cell in row.items():
                if column is None or cell is None or cell == "":
                    continue
                if column in _INTEGER_COLUMNS:
                    try:
                        record[column] = int(cell)
                    except ValueError:
                        record[column] = cell  # the validator names the problem
                else:
                    record[column] = cell
            yield number, record, original


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | InvalidEvent, bytes]]:
    import pyarrow.parquet as pq  # heavy import, only when a Parquet file is read

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
        for row in batch.to_pylist():
            number += 1
            record = {
                key: _parquet_value(value) for key, value in row.items() if value is not None
            }
            yield number, record, orjson.dumps(record)


def _parquet_value(value: Any) -> Any:
    # A naive timestamp keeps no offset in its ISO form, so the validator rejects it by name.
    return value.isoformat() if isinstance(value, datetime) else value
