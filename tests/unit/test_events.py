"""The validator: every input becomes an event or is refused with a reason, never a crash."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.events import (
    MAX_PAYLOAD_BYTES,
    Label,
    Repayment,
    Transaction,
    decode_event,
    event_from_mapping,
    event_to_mapping,
)
from pipeline.exceptions import InvalidEvent
from tests.conftest import assert_valid

GOOD_TX = {
    "type": "transaction",
    "event_id": "tx-1",
    "user_id": "u1",
    "merchant_id": "m1",
    "amount_minor": 12345,
    "currency": "CNY",
    "event_time": "2026-01-02T03:04:05Z",
}


def test_a_good_transaction_round_trips_through_its_canonical_json() -> None:
    event = decode_event("transaction", orjson.dumps(GOOD_TX))
    assert isinstance(event, Transaction)
    assert event.amount_minor == 12345
    mapping = event_to_mapping(event)
    assert mapping == GOOD_TX
    assert_valid("transactions", mapping)
    assert event_from_mapping(mapping) == event


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"amount_minor": -5}, "invalid-value"),
        ({"amount_minor": 12.5}, "wrong-type"),
        ({"amount_minor": "12"}, "wrong-type"),
        ({"amount_minor": True}, "wrong-type"),
        ({"amount_minor": 10**13}, "invalid-value"),
        ({"currency": "XXX"}, "unknown-currency"),
        ({"event_time": "2026-01-02T03:04:05"}, "invalid-time"),
        ({"event_time": "yesterday"}, "invalid-time"),
        ({"event_time": "1900-01-01T00:00:00Z"}, "invalid-time"),
        ({"event_time": "2999-01-01T00:00:00Z"}, "invalid-time"),
        ({"event_time": 1700000000}, "wrong-type"),
        ({"user_id": ""}, "invalid-value"),
        ({"user_id": "u" * 200}, "invalid-value"),
        ({"user_id": None}, "missing-field"),
        ({"merchant_id": ["m"]}, "wrong-type"),
        ({"type": "refund"}, "unknown-type"),
    ],
)
def test_bad_transactions_are_refused_with_a_stable_kind(change: dict, kind: str) -> None:
    record = {**GOOD_TX, **change}
    with pytest.raises(InvalidEvent) as refused:
        decode_event("transaction", orjson.dumps(record))
    assert refused.value.kind == kind
    assert refused.value.reason


def test_non_finite_amounts_are_refused() -> None:
    for value in (math.nan, math.inf):
        with pytest.raises(InvalidEvent) as refused:
            event_from_mapping({**GOOD_TX, "amount_minor": value})
        assert refused.value.kind == "invalid-value"


def test_missing_fields_are_named() -> None:
    for field in ("event_id", "user_id", "merchant_id", "amount_minor", "currency", "event_time"):
        record = {key: value for key, value in GOOD_TX.items() if key != field}
        with pytest.raises(InvalidEvent, match=field) as refused:
            event_from_mapping(record)
        assert refused.value.kind == "missing-field"


def test_oversized_and_malformed_payloads_are_refused_before_parsing() -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode_event("transaction", b"{" + b" " * MAX_PAYLOAD_BYTES + b"}")
    assert refused.value.kind == "oversized"
    for payload in (b"", b"{", b"\xff\xfe", b"[1, 2]", b"null", b"42"):
        with pytest.raises(InvalidEvent):
            decode_event("transaction", payload)


def test_repayments_and_labels() -> None:
    repayment = event_from_mapping({
        "type": "repayment", "event_id": "r1", "user_id": "u1", "amount_minor": 500,
        "currency": "CNY", "event_time": "2026-02-10T00:00:00Z",
        "due_time": "2026-02-20T23:59:00+08:00",
    })
    assert isinstance(repayment, Repayment) and repayment.due_time is not None
    assert_valid("repayments", event_to_mapping(repayment))
    label = event_from_mapping({
        "type": "label", "event_id": "l1", "user_id": "u1", "kind": "fraud",
        "transaction_id": "tx-1", "event_time": "2026-02-10T00:00:00Z",
    })
    assert isinstance(label, Label)
    assert_valid("labels", event_to_mapping(label))
    with pytest.raises(InvalidEvent) as refused:
        event_from_mapping({"type": "label", "event_id": "l2", "user_id": "u1",
                            "kind": "maybe", "event_time": "2026-02-10T00:00:00Z"})
    assert refused.value.kind == "invalid-value"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_validator(payload: bytes) -> None:
    for event_type in ("transaction", "repayment", "label"):
        try:
            decode_event(event_type, payload)
        except InvalidEvent as refused:
            assert refused.kind and refused.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=5,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(GOOD_TX), "due_time", "kind", "channel"]),
                       json_values))
def test_mutated_records_are_refused_or_valid_against_the_schema(changes: dict) -> None:
    """Whatever the validator accepts, the published JSON Schema accepts too."""
    record = {**GOOD_TX, **changes}
    try:
        event = event_from_mapping(record)
    except InvalidEvent as refused:
        assert refused.kind
        return
    topic = {"transaction": "transactions", "repayment": "repayments", "label": "labels"}
    assert_valid(topic[event.type], event_to_mapping(event))
