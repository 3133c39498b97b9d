"""``riskstream simulate``: write a simulated history to disk, streaming, byte-identical by seed.

Writes ``events.jsonl.gz`` or ``events.parquet`` (every event type in one file, in event-time
order, ready for ``riskstream replay``) and ``users.jsonl.gz`` / ``users.parquet`` (each user's
profile and scenario: the ground truth for evaluation). One simulated day is in memory at a time.
"""

from __future__ import annotations

import gzip
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from pipeline.simulator import SimulationConfig, Simulator

__all__ = ["SimulationSummary", "write_simulation"]

#: Columns of the events Parquet file: the union of every event type's fields.
EVENT_COLUMNS = (
    ("type", "string"), ("event_id", "string"), ("user_id", "string"),
    ("merchant_id", "string"), ("merchant_category", "string"), ("amount_minor", "int64"),
    ("balance_minor", "int64"), ("credit_limit_minor", "int64"), ("currency", "string"),
    ("event_time", "string"), ("due_time", "string"), ("channel", "string"),
    ("device_id", "string"), ("kind", "string"), ("transaction_id", "string"),
)
USER_COLUMNS = (
    ("user_id", "string"), ("profile", "string"), ("scenario", "string"),
    ("scenario_day", "string"), ("opened", "string"), ("limit_minor", "int64"),
    ("statement_day", "int64"), ("region", "int64"),
)


@dataclass
class SimulationSummary:
    events: int
    users: int
    seconds: float
    paths: list[Path]
    stats: dict[str, int]

    def describe(self) -> str:
        return (f"simulated {self.events:,} events of {self.users:,} users in "
                f"{self.seconds:.1f} s ({self.events / max(self.seconds, 1e-9):,.0f} events/s) "
                f"-> {', '.join(str(path) for path in self.paths)}")


class _JsonLines:
    def __init__(self, path: Path) -> None:
        # mtime=0 keeps the gzip header free of the wall clock: same seed, same bytes.
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._handle = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0,
                                     compresslevel=6)

    def write(self, records: list[dict[str, Any]]) -> None:
        self._handle.write(b"".join(orjson.dumps(record) + b"\n" for record in records))

    def close(self) -> None:
        self._handle.close()
        self._raw.close()


class _Parquet:
    def __init__(self, path: Path, columns: tuple[tuple[str, str], ...]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in columns])
        self._names = [name for name, _ in columns]
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def write(self, records: list[dict[str, Any]]) -> None:
        if records:
            columns = {name: [record.get(name) for record in records] for name in self._names}
            self._writer.write_table(self._pa.table(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def _writer(directory: Path, stem: str, output_format: str,
            columns: tuple[tuple[str, str], ...]) -> tuple[Any, Path]:
    if output_format == "parquet":
        path = directory / f"{stem}.parquet"
        return _Parquet(path, columns), path
    path = directory / f"{stem}.jsonl.gz"
    return _JsonLines(path), path


def write_simulation(config: SimulationConfig, directory: Path, output_format: str = "jsonl",
                     progress: bool = True) -> SimulationSummary:
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    simulator = Simulator(config)
    events, events_path = _writer(directory, "events", output_format, EVENT_COLUMNS)
    count = 0
    try:
        with tqdm(total=simulator.days_total, unit="day", disable=not progress,
                  file=sys.stderr, desc="simulate") as bar:
            for records in simulator.days():
                events.write(records)
                count += len(records)
                bar.set_postfix_str(f"{count:,} events", refresh=False)
                bar.update(1)
    finally:
        events.close()
    users, users_path = _writer(directory, "users", output_format, USER_COLUMNS)
    try:
        batch: list[dict[str, Any]] = []
        for user in simulator.users():
            batch.append(user)
            if len(batch) == 65_536:
                users.write(batch)
                batch = []
        users.write(batch)
    finally:
        users.close()
    return SimulationSummary(count, config.users, time.monotonic() - started,
                             [events_path, users_path], dict(simulator.stats))
