"""People's decisions on a line, applied in event time like any input.

An analyst or operator releases a temporary cut, confirms fraud, freezes a line or lifts a
freeze, or sets a limit (``riskstream decide``). Each decision is checked before anything
changes -- a decision about a user riskstream does not know, or one with nothing to act on, is
refused with its reason and goes to the dead-letter topic -- and otherwise emits one audited
limit adjustment whose id is derived from the decision's id, naming who decided and why.
A decision delivered twice is applied once (its id is remembered like any event's).

A person decides on the line as it stands when the decision is read: a decision whose time is
behind the partition's event time (an analyst reviewing last week's alert, a replayed history)
applies at the partition's event time, never refused as late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.events import Decision
from pipeline.exceptions import InvalidEvent
from pipeline.money import format_minor
from pipeline.outputs import Output, stable_id
from pipeline.state import Hold, UserState

if TYPE_CHECKING:
    from pipeline.engine import RiskEngine

__all__ = ["apply_decision", "check_decision", "standing_hold"]

#: The holds each lifting action lifts.
_LIFTS = {"release": ("cut",), "unfreeze": ("freeze", "risk_freeze")}
_DONE = {"release": "released", "unfreeze": "unfrozen"}


def standing_hold(user: UserState, now: int) -> Hold | None:
    """The hold still on the line at event time ``now`` (a cut due to expire by then is not)."""
    hold = user.hold
    if hold is not None and hold.kind == "cut" and not hold.confirmed and hold.expires_at <= now:
        return None
    return hold


def check_decision(engine: RiskEngine, decision: Decision) -> None:
    """Raise :class:`InvalidEvent` if ``decision`` cannot be applied; changes nothing."""
    user = engine.users.get(decision.user_id)
    action = decision.action.replace("_", " ")
    if user is None:
        raise InvalidEvent("unknown-user", f"user {decision.user_id} has no state in riskstream "
                           f"(no event of theirs was applied): nothing to {action}")
    hold = standing_hold(user, decision.event_time)
    lifts = _LIFTS.get(decision.action)
    if lifts is not None:
        if hold is None:
            raise InvalidEvent(f"nothing-to-{decision.action}",
                               f"user {decision.user_id} has no hold to {action}")
        if hold.kind not in lifts:
            other = "unfreeze" if decision.action == "release" else "release"
            raise InvalidEvent(
                f"nothing-to-{decision.action}",
                f"user {decision.user_id}'s hold {hold.adjustment_id} is a "
                f"{_hold_name(hold)}, which {action} does not lift: use {other}")
    elif decision.action == "freeze" and hold is not None and hold.kind == "freeze":
        raise InvalidEvent("no-effect", f"user {decision.user_id} is already frozen "
                           f"({hold.adjustment_id})")
    elif decision.action == "confirm_fraud" and user.fraud_confirmed and hold is not None \
            and hold.confirmed:
        raise InvalidEvent("no-effect", f"fraud is already confirmed for user "
                           f"{decision.user_id} and the line held ({hold.adjustment_id})")
    elif decision.action == "set_limit" and decision.limit_minor == user.limit_minor:
        raise InvalidEvent("no-effect", f"user {decision.user_id}'s limit is already "
                           f"{decision.limit_minor}")


def apply_decision(engine: RiskEngine, decision: Decision, event_hash: int) -> list[Output]:
    """Apply a decision :func:`check_decision` accepted (event time already advanced)."""
    user_id, now, by = decision.user_id, decision.event_time, decision.decided_by
    user = engine.user(user_id)
    user.remember_other(event_hash)
    adjustments = engine.adjustments
    action = decision.action
    if action in _LIFTS:
        hold = user.hold
        assert hold is not None
        return [adjustments.release_hold(
            user_id, user, now, hold.adjustment_id,
            f"{_DONE[action]} by {by}: {decision.reason} (lifts the {_hold_name(hold)} "
            f"{hold.adjustment_id})",
            kind=action,  # type: ignore[arg-type]
            cause=decision.event_id, decided_by=by,
        )]
    if action == "freeze":
        return [adjustments.freeze(user_id, user, now, decision.event_id,
                                   f"frozen by {by}: {decision.reason}; until a person "
                                   "lifts it (unfreeze)", decided_by=by)]
    if action == "confirm_fraud":
        user.fraud_confirmed = True
        return adjustments.hold_for_review(user_id, user, now, decision.event_id,
                                           f"fraud confirmed by {by}: {decision.reason}",
                                           decided_by=by)
    assert action == "set_limit" and decision.limit_minor is not None
    limit_before, available_before = user.limit_minor, user.available_minor
    user.limit_minor = decision.limit_minor
    # A limit a person set is the line's latest limit change: statements no longer replace
    # it, and an automatic raise waits the policy's raise_min_interval after it.
    user.last_raise_time = now
    currency = engine.config.currency
    return [adjustments.record(
        stable_id("adj", decision.event_id, "set_limit"), "set_limit", user_id, user, now,
        limit_before=limit_before, available_before=available_before,
        reason=f"limit set from {format_minor(limit_before, currency)} to "
        f"{format_minor(decision.limit_minor, currency)} by {by}: {decision.reason}",
        cause=decision.event_id, decided_by=by,
    )]


def _hold_name(hold: Hold) -> str:
    return {"cut": "temporary cut", "risk_freeze": "default-risk freeze"}.get(hold.kind,
                                                                              hold.kind)
