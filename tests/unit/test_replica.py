"""The merchant replica: exact merchant risk with any number of partitions, however far ahead
it reads."""

from __future__ import annotations

import random
import zlib
from collections import deque

import pytest

from pipeline.config import RiskConfig
from pipeline.demo import generate_demo_history
from pipeline.engine import RiskEngine
from pipeline.events import Event, Label, Transaction, event_from_mapping
from pipeline.merchants import MERCHANT_SPANS, MerchantActivity
from pipeline.replica import FRAUD_LABELS, PURCHASES, MerchantReplica
from pipeline.timeutil import DAY, HOUR, parse_time

PARTITIONS = 4
T0 = parse_time("2026-01-01T00:00:00Z")
MERCHANT_FEATURES = [
    *(f"merchant_{kind}_{name}" for name in MERCHANT_SPANS
      for kind in ("count", "risk", "ordinary_risk")),
    "merchant_risk_latest", "merchant_ordinary_risk_latest",
    "merchant_fraud_run_days", "merchant_fraud_run_length",
]


def partition_of(event: Event) -> int:
    return zlib.crc32(event.user_id.encode()) % PARTITIONS


@pytest.fixture(scope="module")
def events() -> list[Event]:
    history = generate_demo_history(users=300, months=3, seed=5)
    return [event_from_mapping(record) for record in history.events]


def merchant_features(engine: RiskEngine, seen: dict[str, list[float]]) -> None:
    def observe(tx, features, scored) -> None:
        seen[tx.event_id] = [features[name] for name in MERCHANT_FEATURES]

    engine.observer = observe


def one_engine_over_everything(events: list[Event]) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {}
    engine = RiskEngine(RiskConfig())
    merchant_features(engine, seen)
    for event in events:
        engine.process(event)
    return seen


def test_partitioned_engines_with_the_replica_see_what_one_engine_sees(events) -> None:
    expected = one_engine_over_everything(events)
    assert sum(1 for values in expected.values() if any(values[1::2])) > 5  # frauds known
    assert sum(1 for values in expected.values() if values[-1]) > 5  # fraud runs among them

    replica = MerchantReplica(RiskConfig(), PARTITIONS)
    for event in events:
        if isinstance(event, Transaction | Label):
            assert replica.apply(partition_of(event), event) is None
    seen: dict[str, list[float]] = {}
    engines = {}
    for event in events:
        engine = engines.get(partition_of(event))
        if engine is None:
            engine = engines[partition_of(event)] = RiskEngine(RiskConfig())
            engine.attach_merchants(replica.book)
            merchant_features(engine, seen)
        engine.process(event)
    assert len(engines) == PARTITIONS
    assert seen == expected

    # Without the replica each partition sees its own users' share of a merchant only.
    alone: dict[str, list[float]] = {}
    for partition in range(PARTITIONS):
        engine = RiskEngine(RiskConfig())
        merchant_features(engine, alone)
        for event in events:
            if partition_of(event) == partition:
                engine.process(event)
    assert alone != expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reading_ahead_in_any_interleaving_changes_no_answer(events, seed) -> None:
    """Each input partition is read at its own pace and each task scores only what the replica
    covers, as in a worker: every purchase gets the answer of a replica that read it all."""
    expected = one_engine_over_everything(events)
    rng = random.Random(seed)
    inputs: dict[tuple[str, int], deque[Event]] = {
        (source, partition): deque()
        for source in (PURCHASES, FRAUD_LABELS) for partition in range(PARTITIONS)
    }
    tasks: dict[int, deque[Event]] = {partition: deque() for partition in range(PARTITIONS)}
    for event in events:
        partition = partition_of(event)
        tasks[partition].append(event)
        if isinstance(event, Transaction):
            inputs[PURCHASES, partition].append(event)
        elif isinstance(event, Label):
            inputs[FRAUD_LABELS, partition].append(event)

    replica = MerchantReplica(RiskConfig(), PARTITIONS)
    seen: dict[str, list[float]] = {}
    engines = {}
    for partition in tasks:
        engine = engines[partition] = RiskEngine(RiskConfig())
        engine.attach_merchants(replica.book)
        merchant_features(engine, seen)
    held_back = 0
    while any(tasks.values()):
        if rng.random() < 0.5:
            key = rng.choice([key for key, queue in inputs.items() if queue] or [None])
            if key is not None:
                for _ in range(rng.randint(1, 50)):
                    if inputs[key]:
                        assert replica.apply(key[1], inputs[key].popleft()) is None
            for key, queue in inputs.items():  # read to its end: silent, covers everything
                replica.set_silent(*key, not queue)
        else:
            partition = rng.choice([p for p, queue in tasks.items() if queue])
            queue, ready = tasks[partition], replica.ready_until()
            for _ in range(rng.randint(1, 50)):
                if not queue or ready is None or queue[0].event_time > ready:
                    held_back += 1
                    break
                engines[partition].process(queue.popleft())
    assert held_back > 0  # the gate was exercised
    assert seen == expected


@pytest.mark.parametrize("seed", range(5))
def test_a_fraud_run_read_ahead_counts_only_the_labels_known_at_its_time(seed) -> None:
    """A merchant holding marks from labels after the query (a replica reading ahead), ties in
    time included: the run is what a walk back over the frauds known then finds."""
    rng = random.Random(seed)
    merchant = MerchantActivity()
    times = sorted(rng.randrange(40 * DAY) // HOUR * HOUR for _ in range(300))  # many ties
    label_times = {}
    for id_hash, time in enumerate(times):
        merchant.add(time, id_hash, unusual=rng.random() < 0.1)
        if rng.random() < 0.85:  # mostly frauds, so runs are long
            label_times[id_hash] = time + rng.randrange(3 * DAY, 8 * DAY)
            assert merchant.mark_fraud(time, id_hash, label_times[id_hash])
    delay, span = 7 * DAY, DAY  # a short window, so runs also fill it

    def walked(now: int) -> tuple[int, int]:
        window = [(time, id_hash) for id_hash, time in enumerate(times)
                  if now - delay - span < time <= now - delay]
        run = 0
        while run < len(window) and label_times.get(window[-1 - run][1], now + 1) <= now:
            run += 1
        if not run:
            return 0, 0
        starts_window = run == len(window)
        return (delay + span if starts_window else now - window[-run][0]), run

    runs = set()
    for now in range(8 * DAY, 52 * DAY, HOUR):
        assert merchant.fraud_run(now, delay, span) == walked(now), now
        runs.add(walked(now)[1])
    assert len(runs) > 5  # short and long runs, and none


def tx(event_id: str, at: int, merchant: str = "shop", user: str = "u1",
       currency: str = "CNY") -> Transaction:
    return Transaction(event_id, user, merchant, 1_000, currency, at)


def test_the_replica_refuses_what_an_engine_would_refuse() -> None:
    replica = MerchantReplica(RiskConfig(), 1)
    assert replica.apply(0, tx("a", T0)) is None
    assert replica.apply(0, tx("a", T0 + HOUR)) == "duplicate"
    assert replica.apply(0, tx("b", T0, currency="USD")) == "currency-mismatch"
    assert replica.apply(0, tx("c", T0 + 3 * HOUR)) is None
    assert replica.apply(0, tx("d", T0 + HOUR)) == "late"  # 2 h behind its partition
    assert replica.apply(0, tx("e", T0 + 400 * DAY)) == "future"
    assert len(replica) == 2
    assert replica.clocks[PURCHASES, 0] == T0 + 3 * HOUR  # refusals leave the clock alone


def test_a_label_read_before_its_purchase_marks_it_when_the_purchase_arrives() -> None:
    replica = MerchantReplica(RiskConfig(), 1)
    replica.apply(0, Label("l", "u1", "fraud", T0 + 7 * DAY, "a"))
    replica.apply(0, tx("a", T0))
    assert replica.book.risk("shop", T0 + 7 * DAY)[-1] == (1, 1, 1)
    assert replica.book.risk("shop", T0 + 7 * DAY - 1)[-1] == (0, 0, 0)  # a not in view yet
    replica.apply(0, tx("b", T0 + 1))
    # As of a day later both are in view, and a's label is known.
    assert replica.book.risk("shop", T0 + 8 * DAY)[-1] == (2, 1, 1)


def test_a_label_too_late_to_count_does_not_mark() -> None:
    replica = MerchantReplica(RiskConfig(), 1)
    replica.apply(0, tx("a", T0))
    replica.apply(0, Label("l", "u1", "chargeback", T0 + 31 * DAY, "a"))
    assert replica.book.risk("shop", T0 + 31 * DAY)[-1] == (1, 0, 0)


def test_silent_inputs_cover_everything_and_the_rest_bound_readiness() -> None:
    config = RiskConfig()
    replica = MerchantReplica(config, 2)
    assert replica.ready_until() is None
    replica.apply(0, tx("a", T0))
    replica.apply(0, Label("l", "u1", "legitimate", T0 + 2 * DAY, "a"))
    for key in ((PURCHASES, 1), (FRAUD_LABELS, 1)):
        replica.set_silent(*key, True)
    lateness = config.allowed_lateness
    # Labels are covered to 2 days, purchases to 0 (that is, purchases up to 7 days later).
    assert replica.ready_until() == T0 + 2 * DAY - lateness - 1
    replica.apply(0, Label("l2", "u1", "legitimate", T0 + 20 * DAY, "a"))
    assert replica.ready_until() == T0 + config.label_delay - lateness - 1
    replica.set_silent(PURCHASES, 1, False)
    assert replica.ready_until() is None


def test_eviction_forgets_what_no_query_reaches_and_clear_forgets_all() -> None:
    replica = MerchantReplica(RiskConfig(), 1)
    for day in range(60):
        replica.apply(0, tx(f"t{day}", T0 + day * DAY, merchant=f"m{day % 3}"))
    replica.evict(T0 + 20 * DAY)
    assert len(replica) == 39 and replica.evicted_through == T0 + 20 * DAY
    assert sum(len(m) for m in replica.book.merchants.values()) == 39
    replica.clear()
    assert len(replica) == 0 and not replica.book.merchants and replica.ready_until() is None


def test_forgetting_a_quiet_card_changes_none_of_its_later_answers() -> None:
    config = RiskConfig()
    kept, evicting = MerchantReplica(config, 1), MerchantReplica(config, 1)
    # The card shops daily for 10 days, then is quiet for longer than a replica remembers.
    back = T0 + (9 + (config.allowed_lateness + kept.book.reach) // DAY + 2) * DAY
    for replica in (kept, evicting):
        for day in range(10):
            replica.apply(0, Transaction(f"t{day}", "u1", "shop", 1_000, "CNY", T0 + day * DAY))
    evicting.evict(evicting.oldest_needed([back]))  # type: ignore[arg-type]
    assert len(evicting.book.cards) == 0 and len(kept.book.cards) == 1
    # It comes back at 4x its old usual: a fresh card in both, so not unusual in either.
    for replica in (kept, evicting):
        replica.apply(0, Transaction("back", "u1", "shop", 4_000, "CNY", back))
        assert replica.book.merchants["shop"].states[-1] == 0
    assert kept.book.cards.cards == evicting.book.cards.cards


def test_an_engine_resuming_before_what_was_forgotten_needs_the_replica_read_again() -> None:
    config = RiskConfig()
    replica = MerchantReplica(config, 1)
    assert replica.serves(None) and replica.serves(T0)  # nothing forgotten yet
    reach = config.allowed_lateness + replica.book.reach  # 37 days and the lateness
    assert replica.oldest_needed([T0 + 50 * DAY, None]) is None  # a fresh engine: keep all
    before = replica.oldest_needed([T0 + 50 * DAY, T0 + 60 * DAY])
    assert before == T0 + 50 * DAY - reach
    replica.evict(before)
    assert replica.serves(T0 + 50 * DAY) and replica.serves(T0 + 90 * DAY)
    assert not replica.serves(T0 + 50 * DAY - 1)  # a snapshot older than the others
    assert not replica.serves(None)  # a partition starting from its beginning


def test_a_fraud_counts_only_from_its_label_time_however_early_the_label_was_read() -> None:
    replica = MerchantReplica(RiskConfig(), 1)
    replica.apply(0, tx("a", T0))
    replica.apply(0, tx("b", T0 + HOUR))
    replica.apply(0, Label("l", "u1", "fraud", T0 + 10 * DAY, "a"))  # 3 days past the delay
    # 1d, 7d, 30d windows, then the latest 3; both purchases in view from 7 days + 1 h.
    unknown, known = [(0, 0, 0), *[(2, 0, 0)] * 3], [(0, 0, 0), *[(2, 1, 1)] * 3]
    assert replica.book.risk("shop", T0 + 9 * DAY) == unknown
    assert replica.book.risk("shop", T0 + 10 * DAY - 1) == unknown
    assert replica.book.risk("shop", T0 + 10 * DAY) == known
