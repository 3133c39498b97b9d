"""Ten thousand bad records mixed into a good history: all dead-lettered, nothing else changes."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from agents.kafka import client_config
from agents.settings import Settings
from agents.topics import TOPIC_OF_EVENT_TYPE
from pipeline.demo import DemoHistory
from pipeline.events import MAX_PAYLOAD_BYTES
from pipeline.timeutil import DAY, format_time, parse_time
from tests.conftest import assert_valid
from tests.integration.conftest import by_id, expected_run, read_outputs, run_worker

pytestmark = pytest.mark.integration

INJECTED = 10_000
#: Payloads near Kafka's default 1 MB message limit: only a few, they are slow to move.
HUGE_PAYLOADS = 5

Record = dict[str, Any]
#: A corruption of a good record: returns the bad payload and the dead-letter kind it must get.
Corruption = Callable[[Record, random.Random], tuple[bytes, str]]


def _with(record: Record, **changes: Any) -> bytes:
    return orjson.dumps({**record, **changes})


def _without(record: Record, field: str) -> bytes:
    return orjson.dumps({key: value for key, value in record.items() if key != field})


def _shifted(record: Record, delta: int) -> str:
    return format_time(parse_time(record["event_time"]) + delta)


CORRUPTIONS: dict[str, Corruption] = {
    "truncated-json": lambda r, rng: (orjson.dumps(r)[: rng.randrange(1, 40)], "malformed-json"),
    "not-json": lambda r, rng: (b"\xff" + rng.randbytes(30), "malformed-json"),
    "json-array": lambda r, rng: (orjson.dumps([r]), "wrong-type"),
    "amount-as-text": lambda r, rng: (_with(r, amount_minor=str(r.get("amount_minor", 1))),
                                      "wrong-type"),
    "amount-as-float": lambda r, rng: (_with(r, amount_minor=12.5), "wrong-type"),
    "user-as-object": lambda r, rng: (_with(r, user_id={"id": 1}), "wrong-type"),
    "missing-user": lambda r, rng: (_without(r, "user_id"), "missing-field"),
    "missing-time": lambda r, rng: (_without(r, "event_time"), "missing-field"),
    "negative-amount": lambda r, rng: (_with(r, amount_minor=-rng.randrange(1, 10**6)),
                                       "invalid-value"),
    "huge-amount": lambda r, rng: (_with(r, amount_minor=10**15), "invalid-value"),
    "unknown-currency": lambda r, rng: (_with(r, currency="XXX"), "unknown-currency"),
    "other-currency": lambda r, rng: (_with(r, currency="USD"), "currency-mismatch"),
    "unknown-type": lambda r, rng: (_with(r, type="refund"), "unknown-type"),
    "epoch-time": lambda r, rng: (_with(r, event_time="1970-01-01T00:00:00Z"), "invalid-time"),
    "far-future": lambda r, rng: (_with(r, event_time="2999-01-01T00:00:00Z"), "invalid-time"),
    "no-offset": lambda r, rng: (_with(r, event_time="2026-02-01T10:00:00"), "invalid-time"),
    "ahead-of-stream": lambda r, rng: (_with(r, event_id=f"{r['event_id']}-f",
                                             event_time=_shifted(r, 400 * DAY)), "future"),
    "late": lambda r, rng: (_with(r, event_id=f"{r['event_id']}-l",
                                  event_time=_shifted(r, -2 * DAY)), "late"),
    "duplicate": lambda r, rng: (orjson.dumps(r), "duplicate"),
    "oversized": lambda r, rng: (_with(r, note="x" * MAX_PAYLOAD_BYTES), "oversized"),
}
#: Corruptions of fields only purchases and repayments have (a label ignores them).
MONEY_CORRUPTIONS = frozenset({"amount-as-text", "amount-as-float", "negative-amount",
                               "huge-amount", "unknown-currency", "other-currency"})


def _mixed(history: DemoHistory, rng: random.Random) -> tuple[list[tuple[Record, bytes]], Counter]:
    """The good history with bad records right after randomly chosen good ones.

    A bad record follows the good record it was made from, on the same topic and key: a
    duplicate or a late copy then always reaches a partition that has applied the original.
    """
    events = history.events
    warm_up = 500  # every partition has a clock before the first "future" or "late" record
    hosts = sorted(rng.choices(range(warm_up, len(events)), k=INJECTED))
    names = sorted(CORRUPTIONS)
    label_names = sorted(set(CORRUPTIONS) - MONEY_CORRUPTIONS)
    mixed: list[tuple[Record, bytes]] = []
    expected: Counter[str] = Counter()
    huge_left = HUGE_PAYLOADS
    position = 0
    for host in hosts:
        while position <= host:
            mixed.append((events[position], orjson.dumps(events[position])))
            position += 1
        record = events[host]
        if huge_left:
            payload, kind = _with(record, note="x" * 1_000_000), "oversized"
            huge_left -= 1
        else:
            choices = label_names if record["type"] == "label" else names
            payload, kind = CORRUPTIONS[rng.choice(choices)](record, rng)
        mixed.append((record, payload))
        expected[kind] += 1
    mixed.extend((record, orjson.dumps(record)) for record in events[position:])
    return mixed, expected


def test_ten_thousand_bad_records_are_dead_lettered_and_good_outputs_unchanged(
    settings: Settings, small_history: DemoHistory
) -> None:
    mixed, expected_kinds = _mixed(small_history, random.Random(99))
    producer = KafkaProducer(**client_config(settings), linger_ms=5, max_request_size=2**21)
    for record, payload in mixed:
        topic = settings.topic(TOPIC_OF_EVENT_TYPE[record["type"]])
        producer.send(topic, key=record["user_id"].encode(), value=payload)
    producer.flush()
    producer.close()

    stats = run_worker(settings)
    assert stats.dead_letters == INJECTED
    assert stats.applied == len(small_history.events)
    # A bad record never holds the stream up: no loop iteration took a second (the worker
    # stops applying after max_iteration_ms, 0.3 s, whatever the machine's speed).
    assert stats.longest_iteration_s < 1.0, stats.longest_iteration_s

    letters = [record for _, record in read_outputs(settings, streams=("dead-letter",))]
    assert len(letters) == INJECTED
    assert Counter(letter["error"] for letter in letters) == expected_kinds
    for letter in letters:
        assert_valid("dead-letter", letter)
        assert letter["source_topic"].startswith(settings.topic_prefix)
        assert letter["source_offset"] >= 0 and letter["source_key"]

    # The good records' outputs are exactly those of the good history alone.
    expected, _ = expected_run(small_history, settings)
    outputs = read_outputs(settings)
    assert len(outputs) == len(expected)
    assert by_id(outputs) == by_id(expected)
    print(f"\n{INJECTED} bad records injected, {len(letters)} dead-lettered "
          f"({dict(expected_kinds)}); longest iteration {stats.longest_iteration_s:.3f} s")


def test_a_line_currency_unlike_the_records_is_warned_about_loudly(
    settings: Settings, history_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agents.replay import replay_files

    replay_files(settings, [history_file], progress=False)
    wrong = settings.model_copy(update={"currency": "TWD"})
    with caplog.at_level(logging.WARNING, logger="agents.worker"):
        stats = run_worker(wrong)
    assert stats.dead_letters_by_reason["currency-mismatch"] > 0.5 * stats.records_in
    warnings = [record.getMessage() for record in caplog.records
                if "as currency-mismatch" in record.getMessage()]
    assert warnings, [record.getMessage() for record in caplog.records]
    assert "RISKSTREAM_CURRENCY" in warnings[-1] and "currency is TWD" in warnings[-1]
    assert "not the credit line's currency TWD" in warnings[-1]  # a record's own reason


def test_a_worker_whose_records_are_fine_warns_about_nothing(
    settings: Settings, history_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agents.replay import replay_files

    replay_files(settings, [history_file], progress=False)
    with caplog.at_level(logging.WARNING, logger="agents.worker"):
        run_worker(settings)
    assert not [record for record in caplog.records if "dead-lettered as" in record.getMessage()]
