"""People's decisions on a line: each applied in event time, audited, idempotent, and refused
with a reason when it cannot apply."""

from __future__ import annotations

import pytest

from pipeline.engine import RiskEngine
from pipeline.events import Decision, event_from_mapping
from pipeline.exceptions import InvalidEvent
from pipeline.outputs import stable_id
from pipeline.timeutil import DAY, HOUR, format_time
from tests.unit.test_engine import T0, adjustments, habitual_purchases, run, tx

BURST = T0 + 30 * DAY


def decision(action: str, user: str = "u1", at: int = BURST + HOUR, *, event_id: str = "d1",
             limit: int | None = None) -> Decision:
    return Decision(event_id, user, action, "analyst-7", "called the user", at, limit,
                    "CNY" if limit is not None else None)


def cut_engine() -> tuple[RiskEngine, dict]:
    engine = RiskEngine()
    outputs = run(engine, [*habitual_purchases("u1"), tx("u1", BURST, 300_000, "unknown")])
    (cut,) = adjustments(outputs, "temporary_cut")
    return engine, cut


def test_release_lifts_a_cut_at_once_with_an_audited_adjustment() -> None:
    engine, cut = cut_engine()
    (release,) = adjustments(run(engine, [decision("release")]))
    assert release["kind"] == "release" and release["decided_by"] == "analyst-7"
    assert release["adjustment_id"] == stable_id("adj", "d1", "release")
    assert release["event_time"] == format_time(BURST + HOUR)
    assert release["available_before_minor"] == cut["available_after_minor"]
    assert release["available_after_minor"] == cut["available_before_minor"]
    assert release["held_minor"] == 0 and release["alert_id"] == cut["alert_id"]
    assert "analyst-7" in release["reason"] and "called the user" in release["reason"]
    assert release["policy"] == cut["policy"] == engine.adjustments.policy
    # The cut's own expiry finds nothing left to restore.
    assert adjustments(run(engine, [tx("u2", BURST + 80 * HOUR, 5_000)])) == []


def test_the_same_decision_twice_is_applied_once() -> None:
    engine, _ = cut_engine()
    run(engine, [decision("release")])
    with pytest.raises(InvalidEvent) as refused:
        engine.process(decision("release"))
    assert refused.value.kind == "duplicate"


@pytest.mark.parametrize(("action", "kind", "why"), [
    ("unfreeze", "nothing-to-unfreeze", "use release"),
    ("set_limit", "no-effect", "already 500000"),
])
def test_a_decision_that_cannot_apply_is_refused_with_its_reason_and_changes_nothing(
    action: str, kind: str, why: str
) -> None:
    engine, _ = cut_engine()
    before = engine.users["u1"].available_minor
    with pytest.raises(InvalidEvent) as refused:
        engine.process(decision(action, limit=500_000 if action == "set_limit" else None))
    assert refused.value.kind == kind and why in refused.value.reason
    assert engine.users["u1"].available_minor == before


def test_unknown_users_and_expired_cuts_have_nothing_to_release() -> None:
    engine, _ = cut_engine()
    with pytest.raises(InvalidEvent) as refused:
        engine.process(decision("release", user="nobody"))
    assert refused.value.kind == "unknown-user"
    with pytest.raises(InvalidEvent) as refused:  # the cut expires at 72 h
        engine.process(decision("release", at=BURST + 72 * HOUR))
    assert refused.value.kind == "nothing-to-release"
    assert engine.watermark == BURST  # a refused decision leaves no trace


def test_a_decision_behind_the_stream_applies_at_the_streams_time() -> None:
    engine, cut = cut_engine()
    run(engine, [tx("u2", BURST + 10 * HOUR, 5_000)])
    (release,) = adjustments(run(engine, [decision("release", at=BURST - 5 * DAY)]))
    assert release["event_time"] == format_time(BURST + 10 * HOUR)
    assert release["available_after_minor"] == cut["available_before_minor"]


def test_freeze_then_unfreeze_and_a_set_limit_that_statements_keep() -> None:
    engine, cut = cut_engine()
    (frozen,) = adjustments(run(engine, [decision("freeze")]))
    assert frozen["kind"] == "freeze" and frozen["available_after_minor"] == 0
    assert frozen["decided_by"] == "analyst-7"
    with pytest.raises(InvalidEvent, match="already frozen"):
        engine.process(decision("freeze", event_id="d2", at=BURST + 2 * HOUR))
    (lifted,) = adjustments(run(engine, [decision("unfreeze", event_id="d3",
                                                  at=BURST + 3 * HOUR)]))
    assert lifted["kind"] == "unfreeze"
    assert lifted["available_after_minor"] == cut["available_before_minor"]
    (limit,) = adjustments(run(engine, [decision("set_limit", event_id="d4",
                                                 at=BURST + 4 * HOUR, limit=800_000)]))
    assert limit["kind"] == "set_limit"
    assert (limit["limit_before_minor"], limit["limit_after_minor"]) == (500_000, 800_000)
    assert engine.users["u1"].limit_minor == 800_000


def test_confirm_fraud_confirms_the_hold_a_label_would() -> None:
    engine, cut = cut_engine()
    (confirmed,) = adjustments(run(engine, [decision("confirm_fraud")]))
    assert confirmed["kind"] == "hold_confirmed" and confirmed["alert_id"] == cut["alert_id"]
    assert engine.users["u1"].fraud_confirmed
    # Confirmed, the cut no longer expires; a second confirmation changes nothing.
    assert adjustments(run(engine, [tx("u2", BURST + 80 * HOUR, 5_000)])) == []
    with pytest.raises(InvalidEvent) as refused:
        engine.process(decision("confirm_fraud", event_id="d2", at=BURST + 81 * HOUR))
    assert refused.value.kind == "no-effect"


@pytest.mark.parametrize(("record", "fragment"), [
    ({"action": "pardon"}, "is not one of"),
    ({"reason": "  "}, "reason must be"),
    ({"action": "set_limit"}, "limit_minor"),
    ({"decided_by": None}, "decided_by"),
])
def test_malformed_decisions_are_refused(record: dict, fragment: str) -> None:
    good = {"type": "decision", "event_id": "d1", "user_id": "u1", "action": "release",
            "decided_by": "a-7", "reason": "why", "event_time": "2026-01-01T00:00:00Z"}
    event_from_mapping(good)
    with pytest.raises(InvalidEvent, match=fragment):
        event_from_mapping({**good, **record})
