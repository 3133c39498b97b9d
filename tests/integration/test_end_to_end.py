"""Events in, alerts and limit changes out, through the real broker and worker."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from agents.replay import replay_files
from agents.settings import Settings
from pipeline.demo import DemoHistory
from tests.conftest import assert_valid
from tests.integration.conftest import by_id, expected_run, read_outputs, run_worker

pytestmark = pytest.mark.integration


def test_replay_and_worker_emit_exactly_the_expected_alerts_and_adjustments(
    settings: Settings, small_history: DemoHistory, history_file: Path
) -> None:
    summary = replay_files(settings, [history_file], progress=False)
    assert summary.total_sent == len(small_history.events) and summary.rejected == 0

    stats = run_worker(settings)
    assert stats.records_in == summary.total_sent
    assert stats.applied == summary.total_sent and stats.dead_letters == 0
    # The merchant replica read the purchases and labels, held back by the slowest task, and
    # forgot what was behind every task's windows (the history spans four months). An input
    # paused ahead of the tasks may keep its last records unread when the tasks are done.
    replica = stats.merchant_replica
    assert replica is not None and replica["refused"] == {} and replica["restarts"] == 0
    transactions_and_labels = sum(record["type"] in ("transaction", "label")
                                  for record in small_history.events)
    assert 0.9 * transactions_and_labels < replica["applied"] <= transactions_and_labels
    assert replica["pauses"] > 0 and replica["forgotten_through"] is not None

    outputs = read_outputs(settings)
    for stream, record in outputs:
        assert_valid(stream, record)
    # Exactly what the pure core computes, record for record.
    expected, _ = expected_run(small_history, settings)
    assert len(outputs) == len(expected)
    assert by_id(outputs) == by_id(expected)

    # And what that means for the three kinds of user.
    profiles = small_history.profiles
    alerted = {r["transaction_id"] for s, r in outputs if s == "alerts"}
    assert alerted == {t for ids in small_history.burst_transactions.values() for t in ids}
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for _stream, record in outputs:
        kinds[record["user_id"]][record.get("kind", "alert")] += 1
    for user, profile in profiles.items():
        if profile == "normal":
            assert not kinds[user], f"normal user {user} got {kinds[user]}"
        elif profile == "burst":
            assert kinds[user]["temporary_cut"] == 1
            ending = "hold_confirmed" if user in small_history.fraud_confirmed else "restore"
            assert kinds[user][ending] == 1, (user, kinds[user])
            assert kinds[user]["increase"] == 0
        else:
            assert kinds[user]["alert"] == 0
    raised = [u for u, p in profiles.items() if p == "loyal" and kinds[u]["increase"]]
    assert len(raised) > 0.5 * sum(p == "loyal" for p in profiles.values())


def test_bad_records_go_to_the_dead_letter_topic_and_good_ones_are_unaffected(
    settings: Settings, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    from agents.kafka import client_config

    good = (b'{"event_id":"t1","user_id":"u1","merchant_id":"m","amount_minor":100,'
            b'"currency":"CNY","event_time":"2026-01-01T00:00:00Z"}')
    bad = [b"{not json", b'{"event_id":"t2"}', b"x" * 100_000,
           good.replace(b'"amount_minor":100', b'"amount_minor":-3'),
           good.replace(b"CNY", b"USD")]
    producer = KafkaProducer(**client_config(settings))
    for payload in [*bad, good]:
        producer.send(settings.topic("transactions"), key=b"u1", value=payload)
    producer.flush()
    producer.close()

    stats = run_worker(settings)
    assert stats.applied == 1 and stats.dead_letters == len(bad)
    letters = [r for _, r in read_outputs(settings, streams=("dead-letter",))]
    assert sorted(r["error"] for r in letters) == sorted(
        ["malformed-json", "missing-field", "oversized", "invalid-value", "currency-mismatch"]
    )
    for record in letters:
        assert_valid("dead-letter", record)
        assert record["source_topic"] == settings.topic("transactions")
        assert record["source_key"] == "u1"
