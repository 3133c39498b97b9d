"""Input events and their validation: the gate every record passes, live or replayed.

A record either becomes one of the frozen event types below or raises :class:`InvalidEvent`
with a stable ``kind`` and a sentence saying what is wrong. The checks are hand-written rather
than run through a JSON-Schema engine because they sit on the hot path (a few microseconds per
event); ``tests/unit/test_events.py`` keeps them in agreement with ``schemas/*.schema.json``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from pipeline.exceptions import InvalidEvent
from pipeline.money import MINOR_UNIT_EXPONENT
from pipeline.timeutil import format_time, parse_time

__all__ = [
    "DECISION_ACTIONS",
    "EVENT_TYPES",
    "LABEL_KINDS",
    "MAX_AMOUNT_MINOR",
    "MAX_PAYLOAD_BYTES",
    "Decision",
    "Event",
    "Label",
    "Repayment",
    "Statement",
    "Transaction",
    "decode_event",
    "event_from_mapping",
    "event_to_mapping",
]

#: Largest accepted payload. Real events are a few hundred bytes; anything near Kafka's
#: default 1 MB message limit is an attack or a bug, and must not reach the JSON parser.
MAX_PAYLOAD_BYTES = 64 * 1024

#: Largest accepted amount: 10 billion major units. Larger values are corrupt data, and the
#: bound keeps every sum of a user's 30-day window far inside a signed 64-bit integer.
MAX_AMOUNT_MINOR = 10**12

#: Accepted event-time range: before the first card networks went digital or after 2100 is
#: corrupt data, not history. Lateness relative to the stream is judged by the engine.
MIN_EVENT_TIME = parse_time("1990-01-01T00:00:00Z")
MAX_EVENT_TIME = parse_time("2100-01-01T00:00:00Z")

MAX_ID_LENGTH = 128
#: Most billing cycles a line can be past due (UCI's scale stops at 9; a decade is corrupt).
MAX_PAST_DUE_CYCLES = 120

EventType = Literal["transaction", "repayment", "statement", "label", "decision"]
EVENT_TYPES: tuple[EventType, ...] = ("transaction", "repayment", "statement", "label",
                                      "decision")

#: ``fraud``/``chargeback`` confirm a purchase was not the user's; ``default`` says a bill was
#: never paid; ``legitimate`` clears a purchase that was questioned.
LABEL_KINDS = frozenset({"fraud", "chargeback", "default", "legitimate"})
FRAUD_LABEL_KINDS = frozenset({"fraud", "chargeback"})

#: What a person can decide about a line: lift a temporary cut, confirm fraud, freeze or lift
#: a freeze, set the limit.
DECISION_ACTIONS = ("release", "confirm_fraud", "freeze", "unfreeze", "set_limit")
#: Longest reason a decision carries (a sentence or two, not a case file).
MAX_REASON_LENGTH = 1000


@dataclass(slots=True, frozen=True)
class Transaction:
    """A purchase on the credit line."""

    event_id: str
    user_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    event_time: int
    channel: str | None = None
    device_id: str | None = None
    merchant_category: str | None = None

    type = "transaction"


@dataclass(slots=True, frozen=True)
class Repayment:
    """Money paid back against the line; ``due_time`` is the due date of the bill it pays."""

    event_id: str
    user_id: str
    amount_minor: int
    currency: str
    event_time: int
    due_time: int | None = None

    type = "repayment"


@dataclass(slots=True, frozen=True)
class Statement:
    """A monthly bill: what the user owes at ``event_time`` (the statement date), due by
    ``due_time``. ``balance_minor`` is negative when the user has paid in advance.
    ``credit_limit_minor`` is the limit on the issuer's books, when the source knows it.
    ``past_due_cycles`` is the bill's delinquency status: how many billing cycles the line is
    behind (0 when current)."""

    event_id: str
    user_id: str
    balance_minor: int
    currency: str
    event_time: int
    due_time: int
    credit_limit_minor: int | None = None
    past_due_cycles: int = 0

    type = "statement"


@dataclass(slots=True, frozen=True)
class Label:
    """A late verdict: ``event_time`` is when the label became known, not when the purchase was."""

    event_id: str
    user_id: str
    kind: str
    event_time: int
    transaction_id: str | None = None

    type = "label"


@dataclass(slots=True, frozen=True)
class Decision:
    """A person's action on a line: what (``action``), who (``decided_by``), why (``reason``)
    and when (``event_time``). ``limit_minor`` and ``currency`` are the new limit of a
    ``set_limit``."""

    event_id: str
    user_id: str
    action: str
    decided_by: str
    reason: str
    event_time: int
    limit_minor: int | None = None
    currency: str | None = None

    type = "decision"


Event = Transaction | Repayment | Statement | Label | Decision


def decode_event(event_type: str, payload: bytes) -> Event:
    """Decode and validate one Kafka message value."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(
            "oversized", f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit"
        )
    try:
        record = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("malformed-json", f"not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise InvalidEvent("wrong-type", f"expected a JSON object, got {type(record).__name__}")
    declared = record.get("type", event_type)
    if not isinstance(declared, str) or declared != event_type:
        raise InvalidEvent(
            "unknown-type", f"record of type {declared!r} on the {event_type!r} stream"
        )
    return event_from_mapping(record, event_type)


def event_from_mapping(record: dict[str, Any], event_type: str | None = None) -> Event:
    """Validate a decoded record (from JSON, CSV or Parquet) and build its event."""
    kind = event_type if event_type is not None else record.get("type")
    if kind == "transaction":
        return Transaction(
            event_id=_identifier(record, "event_id"),
            user_id=_identifier(record, "user_id"),
            merchant_id=_identifier(record, "merchant_id"),
            # Zero is an authorisation check (card verification), not an error.
            amount_minor=_amount(record, "amount_minor", allow_zero=True),
            currency=_currency(record),
            event_time=_time(record, "event_time"),
            channel=_optional_text(record, "channel"),
            device_id=_optional_text(record, "device_id"),
            merchant_category=_optional_text(record, "merchant_category"),
        )
    if kind == "repayment":
        return Repayment(
            event_id=_identifier(record, "event_id"),
            user_id=_identifier(record, "user_id"),
            amount_minor=_amount(record, "amount_minor"),
            currency=_currency(record),
            event_time=_time(record, "event_time"),
            due_time=_time(record, "due_time") if record.get("due_time") is not None else None,
        )
    if kind == "statement":
        limit = record.get("credit_limit_minor")
        return Statement(
            event_id=_identifier(record, "event_id"),
            user_id=_identifier(record, "user_id"),
            balance_minor=_amount(record, "balance_minor", signed=True),
            currency=_currency(record),
            event_time=_time(record, "event_time"),
            due_time=_time(record, "due_time"),
            credit_limit_minor=(
                _amount(record, "credit_limit_minor") if limit is not None else None
            ),
            past_due_cycles=_cycles(record, "past_due_cycles"),
        )
    if kind == "label":
        label_kind = record.get("kind")
        if not isinstance(label_kind, str) or label_kind not in LABEL_KINDS:
            raise InvalidEvent(
                "invalid-value", f"label kind {label_kind!r} is not one of {sorted(LABEL_KINDS)}"
            )
        transaction_id = record.get("transaction_id")
        return Label(
            event_id=_identifier(record, "event_id"),
            user_id=_identifier(record, "user_id"),
            kind=label_kind,
            event_time=_time(record, "event_time"),
            transaction_id=(
                _identifier(record, "transaction_id") if transaction_id is not None else None
            ),
        )
    if kind == "decision":
        return _decision(record)
    raise InvalidEvent("unknown-type", f"unknown event type {kind!r}")


def _decision(record: dict[str, Any]) -> Decision:
    action = record.get("action")
    if not isinstance(action, str) or action not in DECISION_ACTIONS:
        raise InvalidEvent(
            "invalid-value", f"decision action {action!r} is not one of {list(DECISION_ACTIONS)}"
        )
    reason = _required(record, "reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        raise InvalidEvent(
            "invalid-value", f"reason must be a text of 1 to {MAX_REASON_LENGTH} characters"
        )
    limit = currency = None
    if action == "set_limit":
        limit, currency = _amount(record, "limit_minor"), _currency(record)
    return Decision(
        event_id=_identifier(record, "event_id"),
        user_id=_identifier(record, "user_id"),
        action=action,
        decided_by=_identifier(record, "decided_by"),
        reason=reason.strip(),
        event_time=_time(record, "event_time"),
        limit_minor=limit,
        currency=currency,
    )


def event_to_mapping(event: Event) -> dict[str, Any]:
    """The canonical JSON form of an event (what ``replay`` produces and the schemas describe)."""
    record: dict[str, Any] = {"type": event.type}
    for name in event.__slots__:  # type: ignore[union-attr]
        value = getattr(event, name)
        if value is None:
            continue
        if name.endswith("_time"):
            value = format_time(value)
        record[name] = value
    return record


#: Interned ids share one string object across every event and state entry of a user.
_intern = sys.intern


def _required(record: dict[str, Any], field: str) -> Any:
    try:
        value = record[field]
    except KeyError:
        raise InvalidEvent("missing-field", f"required field {field!r} is missing") from None
    if value is None:
        raise InvalidEvent("missing-field", f"required field {field!r} is null")
    return value


def _identifier(record: dict[str, Any], field: str) -> str:
    value = record.get(field)
    if value.__class__ is str and 0 < len(value) <= MAX_ID_LENGTH:  # the usual case, at once
        return _intern(value)
    return _checked_identifier(record, field)


def _checked_identifier(record: dict[str, Any], field: str) -> str:
    value = _required(record, field)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent("wrong-type", f"{field} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text or len(text) > MAX_ID_LENGTH:
        raise InvalidEvent(
            "invalid-value", f"{field} must have 1 to {MAX_ID_LENGTH} characters"
        )
    return _intern(text)


def _optional_text(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(
            "wrong-type", f"{field} must be a string of at most {MAX_ID_LENGTH} characters"
        )
    return _intern(value)


def _amount(
    record: dict[str, Any], field: str, *, signed: bool = False, allow_zero: bool = False
) -> int:
    value = record.get(field)
    if value.__class__ is int and 0 < value <= MAX_AMOUNT_MINOR:  # the usual case, at once
        return value
    value = _required(record, field)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent("invalid-value", f"{field} is {value!r}")
        raise InvalidEvent(
            "wrong-type",
            f"{field} must be an integer number of minor units, got {type(value).__name__}",
        )
    if not signed and (value < 0 or (value == 0 and not allow_zero)):
        raise InvalidEvent(
            "invalid-value",
            f"{field} must be {'non-negative' if allow_zero else 'positive'}, got {value}",
        )
    if abs(value) > MAX_AMOUNT_MINOR:
        raise InvalidEvent("invalid-value", f"{field} {value} exceeds {MAX_AMOUNT_MINOR}")
    return value


def _currency(record: dict[str, Any]) -> str:
    value = _required(record, "currency")
    if not isinstance(value, str) or value not in MINOR_UNIT_EXPONENT:
        raise InvalidEvent("unknown-currency", f"currency {value!r} is not supported")
    return value


def _cycles(record: dict[str, Any], field: str) -> int:
    """An optional count of billing cycles (0 when absent)."""
    value = record.get(field)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("wrong-type", f"{field} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_PAST_DUE_CYCLES:
        raise InvalidEvent(
            "invalid-value", f"{field} must be in 0..{MAX_PAST_DUE_CYCLES}, got {value}"
        )
    return value


def _time(record: dict[str, Any], field: str) -> int:
    value = _required(record, field)
    if not isinstance(value, str):
        raise InvalidEvent("wrong-type", f"{field} must be an RFC 3339 string")
    try:
        micros = parse_time(value)
    except ValueError as exc:
        raise InvalidEvent("invalid-time", f"{field}: {exc}") from None
    if not MIN_EVENT_TIME <= micros < MAX_EVENT_TIME:
        raise InvalidEvent("invalid-time", f"{field} {value} is outside 1990..2100")
    return micros
