"""File sources and the demo history generator."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.deadletter import MAX_ORIGINAL_BYTES, dead_letter
from pipeline.demo import PROFILE_SHARES, generate_demo_history
from pipeline.events import Transaction
from pipeline.exceptions import InvalidEvent
from pipeline.sources import Rejection, read_events
from pipeline.timeutil import parse_time
from tests.conftest import assert_valid

ROW = {
    "type": "transaction", "event_id": "t1", "user_id": "u1", "merchant_id": "m1",
    "amount_minor": 500, "currency": "CNY", "event_time": "2026-01-01T00:00:00Z",
}


def test_jsonl_gz_rejections_keep_line_numbers_and_original_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    lines = [orjson.dumps(ROW), b"{broken", b"", orjson.dumps({**ROW, "amount_minor": -1})]
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    records = list(read_events(path))
    assert [r.line for r in records] == [1, 2, 4]
    assert isinstance(records[0].item, Transaction)
    assert isinstance(records[1].item, Rejection) and records[1].item.original == b"{broken"
    assert isinstance(records[2].item, Rejection)
    assert records[2].item.error.kind == "invalid-value"


def test_csv_with_a_type_given_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(
        "event_id,user_id,merchant_id,amount_minor,currency,event_time\n"
        "t1,u1,m1,500,CNY,2026-01-01T00:00:00Z\n"
        "t2,u1,m1,five,CNY,2026-01-01T00:00:00Z\n"
    )
    records = list(read_events(path, "transaction"))
    assert isinstance(records[0].item, Transaction) and records[0].item.amount_minor == 500
    assert isinstance(records[1].item, Rejection) and records[1].line == 3


def test_parquet_with_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    table = pa.table({
        "event_id": ["t1", "t2"], "user_id": ["u1", "u2"], "merchant_id": ["m", "m"],
        "amount_minor": [1, 2], "currency": ["CNY", "CNY"],
        "event_time": pa.array([1_767_225_600_000_000, 1_767_225_600_000_001],
                               pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, path)
    events = [r.item for r in read_events(path, "transaction")]
    assert all(isinstance(e, Transaction) for e in events)
    assert events[1].event_time - events[0].event_time == 1


def test_dead_letters_validate_and_truncate_huge_originals() -> None:
    record = dead_letter(InvalidEvent("oversized", "too big"), b"x" * (MAX_ORIGINAL_BYTES + 5),
                         source_topic="transactions", source_partition=1, source_offset=7,
                         source_key=b"u1")
    assert record["original_truncated"] and record["original_size"] == MAX_ORIGINAL_BYTES + 5
    assert_valid("dead-letter", record)
    assert_valid("dead-letter", dead_letter(InvalidEvent("late", "late"), b"{}",
                                            source_file="f.jsonl", source_line=3))


def test_demo_history_is_deterministic_and_has_the_configured_mix() -> None:
    first = generate_demo_history(users=1000, seed=3)
    second = generate_demo_history(users=1000, seed=3)
    assert first.events == second.events
    assert generate_demo_history(users=1000, seed=4).events != first.events
    for profile, share in PROFILE_SHARES.items():
        observed = sum(p == profile for p in first.profiles.values()) / 1000
        assert abs(observed - share) < 0.05
    times = [parse_time(record["event_time"]) for record in first.events]
    assert times == sorted(times)
