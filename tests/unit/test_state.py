"""A partition's state on disk: the codec, the models' documents, the user cache, checkpoints
restored from a store, and state of another format refused by name."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import RiskConfig
from pipeline.credit import CreditHistory, DefaultModel, PendingCycle
from pipeline.engine import RiskEngine
from pipeline.events import Event, Label, Transaction, event_from_mapping
from pipeline.exceptions import InvalidEvent, StateFormatError
from pipeline.learning import INPUTS, FraudClassifier
from pipeline.merchants import MerchantActivity
from pipeline.outputs import Output
from pipeline.replica import MerchantReplica
from pipeline.scoring import AnomalyScorer
from pipeline.simulator import SimulationConfig, Simulator
from pipeline.state import Hold, UserCache, UserState
from pipeline.state.checkpoint import (
    META_KEY,
    checkpoint_records,
    checkpointed,
    restore_engine,
    stored_users,
    take_checkpoint,
    taken_user_records,
)
from pipeline.state.codec import (
    FORMAT_VERSION,
    cycle_key,
    decode_card,
    decode_cycle_key,
    decode_expiry_key,
    decode_merchant,
    decode_pending,
    decode_user,
    encode_card,
    encode_merchant,
    encode_pending,
    encode_user,
    expiry_key,
)
from pipeline.state.models import read_anomaly, read_logistic, write_anomaly, write_logistic
from pipeline.state.store import PartitionStore, StateDirectory

_INT = st.integers(-(2**63), 2**63 - 1)
_TIME = st.integers(-(2**62), 2**62)
_AMOUNT = st.integers(0, 10**12)
_FLOAT = st.floats(allow_nan=False, allow_infinity=True)
_TEXT = st.text(min_size=1, max_size=128)
_FLOAT32 = st.floats(allow_nan=False, width=32)


@st.composite
def users(draw: st.DrawFn) -> UserState:
    user = UserState(draw(_AMOUNT))
    user.balance_minor = draw(_AMOUNT)
    user.baseline_count = draw(st.integers(0, 2**40))
    user.baseline_mean, user.baseline_var = draw(_FLOAT), draw(_FLOAT)
    user.on_time_repayments, user.late_repayments = draw(st.integers(0, 999)), draw(
        st.integers(0, 999))
    user.last_alert_time = draw(st.none() | _TIME)
    user.last_raise_time = draw(st.none() | _TIME)
    user.fraud_confirmed, user.defaulted = draw(st.booleans()), draw(st.booleans())
    user.other_ids = array("q", draw(st.lists(_INT, max_size=16)))
    purchases = draw(st.lists(st.tuples(_TIME, _AMOUNT, _TEXT, _INT), max_size=40))
    merchants = draw(st.lists(_TEXT, min_size=1, max_size=5))
    for index, (time, amount, _, id_hash) in enumerate(sorted(purchases)):
        user.windows.add(time, amount, merchants[index % len(merchants)], id_hash)
    if draw(st.booleans()):
        user.hold = Hold(draw(_TEXT), draw(st.text(max_size=40)), draw(_AMOUNT), draw(_TIME),
                         draw(st.booleans()), draw(st.sampled_from(["cut", "freeze",
                                                                    "risk_freeze"])))
    if draw(st.booleans()):
        credit = user.credit = CreditHistory()
        for name in ("statements", "balance_minor", "limit_minor", "paid_cycle_minor",
                     "paid_last_minor", "cycles", "past_due", "past_due_previous",
                     "past_due_sum", "in_use"):
            setattr(credit, name, draw(st.integers(0, 2**40)))
        for name in ("paid_share_last", "paid_share_sum", "utilisation",
                     "utilisation_previous", "utilisation_sum"):
            setattr(credit, name, draw(_FLOAT))
        credit.risk = draw(st.none() | st.floats(0, 1))
        for number in range(draw(st.integers(0, 4))):
            cycle = PendingCycle(number, draw(_TIME),
                                 array("f", draw(st.lists(_FLOAT32, max_size=40))))
            cycle.defaulted = draw(st.booleans())
            credit.pending.append(cycle)
    return user


def fields(user: UserState) -> dict:
    """Every field of a user, nested objects included, in comparable form."""
    found = {name: getattr(user, name) for name in UserState.__slots__}
    found["windows"] = user.windows.__getstate__()
    found["other_ids"] = list(user.other_ids)
    if user.credit is not None:
        credit = dict(zip(CreditHistory.__slots__, user.credit.__getstate__(), strict=True))
        credit["pending"] = [cycle.__getstate__() for cycle in user.credit.pending]
        found["credit"] = credit
    return found


@settings(max_examples=300, deadline=None)
@given(users())
def test_every_field_of_a_user_round_trips(user: UserState) -> None:
    assert fields(decode_user(encode_user(user))) == fields(user)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_TIME, _INT, st.integers(0, 3), _TIME, st.booleans()), max_size=30),
       _TIME)
def test_a_merchant_and_a_card_round_trip(purchases: list, last_known: int) -> None:
    activity = MerchantActivity()
    for time, id_hash, state, known_at, ordinary in sorted(purchases):
        activity.add(time, id_hash, unusual=bool(state & 2))
        if state & 1:
            activity.known_at[id_hash] = (time, known_at, ordinary)
    activity.last_known = last_known
    decoded = decode_merchant(encode_merchant(activity))
    assert decoded.__getstate__() == activity.__getstate__()
    assert decode_card(encode_card((1.25, 7, last_known))) == (1.25, 7, last_known)


@given(_TIME, _TEXT, _TEXT, st.integers(0, 2**32 - 1),
       st.lists(_FLOAT32, min_size=1, max_size=80))
def test_index_keys_and_pending_purchases_round_trip(time: int, user_id: str, other: str,
                                                     number: int, inputs: list) -> None:
    assert decode_expiry_key(expiry_key((time, user_id, other))) == (time, user_id, other)
    assert decode_cycle_key(cycle_key((time, user_id, number))) == (time, user_id, number)
    due, id_hash, vector = decode_pending(encode_pending(time, number, array("f", inputs)))
    assert (due, id_hash, vector) == (time, number, array("f", inputs))


def test_time_keys_sort_in_time_order() -> None:
    times = [-(2**62), -5, 0, 3, 2**40]
    keys = [expiry_key((time, "u", "a")) for time in times]
    assert keys == sorted(keys)


def test_models_read_back_score_and_learn_exactly_as_written() -> None:
    rng = random.Random(3)

    def vector(size: int) -> array:
        return array("f", [rng.uniform(-2, 2) for _ in range(size)])

    classifier, default = FraudClassifier(min_frauds=3), DefaultModel(min_defaults=2,
                                                                       min_repaid=2)
    anomaly = AnomalyScorer(window_size=20)
    probes = [{"amount_minor": 10.0 ** rng.uniform(0, 6), "amount_to_typical": rng.random() * 9,
               "count_1h": rng.randint(1, 6), "new_merchant": float(rng.random() < 0.3),
               "hours_since_previous": rng.random() * 48} for _ in range(300)]
    for index, probe in enumerate(probes[:150]):
        classifier.learn_one(vector(len(INPUTS)), index % 7 == 0)
        default.learn_one(vector(len(default.names)), index % 5 == 0)
        anomaly.score_learn_one(probe)
    copies = FraudClassifier(min_frauds=3), DefaultModel(min_defaults=2, min_repaid=2)
    anomaly_copy = AnomalyScorer(window_size=20)
    for model, copy in zip((classifier, default), copies, strict=True):
        read_logistic(copy, orjson.loads(orjson.dumps(write_logistic(model))))
    read_anomaly(anomaly_copy, orjson.loads(orjson.dumps(write_anomaly(anomaly))))
    for index, probe in enumerate(probes[150:]):  # both keep learning: still the same
        x, y = vector(len(INPUTS)), vector(len(default.names))
        assert copies[0].score_one(x) == classifier.score_one(x)
        assert copies[1].score_one(y) == default.score_one(y)
        assert anomaly_copy.score_learn_one(probe) == anomaly.score_learn_one(probe)
        for model in (classifier, copies[0]):
            model.learn_one(x, index % 9 == 0)
        for model in (default, copies[1]):
            model.learn_one(y, index % 4 == 0)


class _Users:
    """A store of encoded users that counts its reads."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}
        self.reads = 0

    def load_user(self, user_id: str) -> UserState | None:
        self.reads += 1
        value = self.records.get(user_id)
        return None if value is None else decode_user(value)


def test_a_user_evicted_from_the_cache_and_read_back_is_the_same_user() -> None:
    source = _Users()
    cache = UserCache(source, capacity=2)
    before = {}
    for batch in (range(3), range(3, 5)):
        for index in batch:
            user = cache.touch(f"u{index}", lambda: UserState(500_000))
            user.windows.add(index, 1_000 + index, f"m{index}", index)
            user.balance_minor = 10 * index
            before[f"u{index}"] = fields(user)
        for user_id, user in cache.changes():  # what a checkpoint writes
            source.records[user_id] = encode_user(user)
        cache.checkpointed()
        cache.evict()
    assert sorted(cache) == ["u3", "u4"]  # the most recently changed stay
    source.reads = 0
    cache.touch("u0", lambda: UserState(0))  # read back, not created afresh
    assert source.reads == 1 and fields(cache["u0"]) == before["u0"]
    assert cache.get("nobody") is None and "nobody" not in cache


def test_users_changed_since_the_last_checkpoint_stay_in_memory_whatever_the_bound() -> None:
    cache = UserCache(_Users(), capacity=1)
    for index in range(3):
        cache.touch(f"u{index}", lambda: UserState(1))
    assert cache.evict() == 0 and len(cache) == 3
    cache.checkpointed()
    cache.touch("u0", lambda: UserState(1))  # changed again before its eviction
    assert cache.evict() == 2 and list(cache) == ["u0"]


def _events(users: int = 300, months: int = 7) -> list[Event]:
    simulator = Simulator(SimulationConfig(users=users, months=months, seed=3))
    return [event_from_mapping(record) for day in simulator.days() for record in day]


def _run(engine: RiskEngine, events: list[Event]) -> list[Output | str]:
    outputs: list[Output | str] = []
    for event in events:
        try:
            outputs.extend(engine.process(event))
        except InvalidEvent as error:
            outputs.append(error.kind)
    return outputs


@pytest.fixture(scope="module")
def credit_line_events() -> list[Event]:
    return _events()


def test_a_checkpoint_encoded_while_the_engine_goes_on_holds_the_state_it_was_taken_at(
    tmp_path: Path, credit_line_events: list[Event]
) -> None:
    """A checkpoint's users are encoded a few at a time while events keep changing them: the
    store it makes resumes exactly where it was taken, as an uninterrupted engine goes on."""
    events = credit_line_events
    cut = len(events) // 2
    reference = RiskEngine()
    _run(reference, events[:cut])
    expected = _run(reference, events[cut:])

    engine = RiskEngine()
    _run(engine, events[:cut])
    others = take_checkpoint(engine, {"transactions": cut})
    for event in events[cut:cut + 3000]:  # the engine goes on, three users encoded an event
        _run(engine, [event])
        engine.users.encode_taken(3)
    assert engine.users.encode_taken(None)
    records = taken_user_records(engine) + others
    taken = {key[1:].decode() for key, _ in records if key[:1] == b"u"}
    assert len(taken) > 100 and taken & engine.users.changed, "no taken user changed meanwhile"

    store = PartitionStore(tmp_path / "store")
    store.write(records)
    resumed, offsets = restore_engine(store, RiskConfig(), cache_capacity=None,
                                      own_merchants=True, where="test")
    assert offsets == {"transactions": cut}
    assert _run(resumed, events[cut:]) == expected


@pytest.mark.parametrize("own_merchants", [True, False])
def test_checkpoints_restored_from_a_store_give_the_uninterrupted_outputs(
    tmp_path: Path, credit_line_events: list[Event], own_merchants: bool
) -> None:
    """Seven months of a simulated credit line (statements, repayments, defaults, frauds),
    checkpointed at random points and restored from the store at every other one, with a
    cache of 50 users: the outputs and the final users equal an uninterrupted engine's."""
    events = credit_line_events
    replica = None
    if not own_merchants:  # a worker's replica, read ahead: its answers are as of a purchase
        replica = MerchantReplica(RiskConfig(), partitions=1)
        for event in events:
            if isinstance(event, Transaction | Label):
                replica.apply(0, event)
    reference = RiskEngine()
    if replica is not None:
        reference.attach_merchants(replica.book)
    expected = _run(reference, events)
    assert {getattr(o, "stream", None) for o in expected} >= {"alerts", "limit-adjustments"}
    store = PartitionStore(tmp_path / "store")

    def restored() -> RiskEngine:
        engine, _ = restore_engine(store, RiskConfig(), cache_capacity=50,
                                   own_merchants=own_merchants, where="test")
        if replica is not None:
            engine.attach_merchants(replica.book)
        return engine

    engine = restored()
    outputs: list[Output | str] = []
    cuts = sorted(random.Random(7).sample(range(1, len(events)), 24))
    start = 0
    for number, cut in enumerate([*cuts, len(events)]):
        outputs += _run(engine, events[start:cut])
        store.write(checkpoint_records(engine, {"transactions": cut}))
        checkpointed(engine)
        engine.users.evict()
        assert len(engine.users) <= 50
        start = cut
        if number % 2 == 0:
            engine = restored()
    assert outputs == expected
    users = dict(stored_users(store))
    assert {user_id: fields(user) for user_id, user in users.items()} == {
        user_id: fields(user) for user_id, user in reference.users.items()}


def test_a_checkpoint_writes_only_what_changed(tmp_path: Path) -> None:
    events = _events(users=300, months=2)
    engine = RiskEngine()
    _run(engine, events)
    first = checkpoint_records(engine, {})
    checkpointed(engine)
    assert checkpoint_records(engine, {})[-1][0] == META_KEY
    assert [key for key, _ in checkpoint_records(engine, {}) if key[:1] == b"u"] == []
    user_id = events[-1].user_id
    engine.user(user_id).balance_minor += 1
    written = [key for key, _ in checkpoint_records(engine, {}) if key[:1] == b"u"]
    assert written == [b"u" + user_id.encode()]
    assert len(first) > 300


def test_a_store_of_another_format_version_is_refused_naming_both(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "store")
    store.write([(META_KEY, orjson.dumps({"format": FORMAT_VERSION + 1}))])
    with pytest.raises(StateFormatError,
                       match=f"format version {FORMAT_VERSION + 1}; this release reads "
                             f"version {FORMAT_VERSION}"):
        restore_engine(store, RiskConfig(), cache_capacity=None, own_merchants=True,
                       where=str(store.path))
    record = bytearray(encode_user(UserState(1)))
    record[0] = FORMAT_VERSION - 1
    with pytest.raises(StateFormatError, match=f"version {FORMAT_VERSION - 1}"):
        decode_user(bytes(record))


def test_a_state_directory_of_pickle_snapshots_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "partition-0003.snapshot").write_bytes(b"\x80\x05old")
    with pytest.raises(StateFormatError, match=r"partition-0003\.snapshot"):
        StateDirectory(tmp_path)


def test_purchases_waiting_for_labels_mature_in_the_same_order_after_a_restore() -> None:
    """A purchase labelled fraud keeps its place in the queue until it is due: one that comes
    later but is due first waits behind it, restored or not."""
    from pipeline.learning import PendingLabels

    def saved(pending: PendingLabels, store: dict[int, tuple]) -> None:
        for sequence, entry in pending.added.items():
            store[sequence] = entry
        for sequence in pending.removed:
            store.pop(sequence, None)  # a store deletes a key it does not hold silently
        pending.checkpointed()

    live = PendingLabels(delay=10, negative_share=1.0)
    store: dict[int, tuple] = {}
    live.add(50, 1, array("f", [1.0]))  # due at 60, labelled fraud below
    live.add(5, 2, array("f", [2.0]))   # out of order: due at 15, behind it
    assert live.confirm(1) == array("f", [1.0])
    saved(live, store)
    restored = PendingLabels(delay=10, negative_share=1.0)
    restored.restore(((number, *entry) for number, entry in sorted(store.items())),
                     live.sequence)
    for now in (20, 61):
        assert list(restored.matured(now)) == list(live.matured(now))
    assert [vector for vector, _ in PendingLabels.matured(live, 100)] == []
    saved(live, store)
    assert store == {}
    # Stored, then labelled fraud and due within one checkpoint's interval: gone from the store.
    live.add(200, 3, array("f", [3.0]))
    saved(live, store)
    live.confirm(3)
    assert list(live.matured(300)) == []
    saved(live, store)
    assert store == {}
