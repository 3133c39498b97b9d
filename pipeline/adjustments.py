"""Changes to a user's line as audited records: every change of limit or hold becomes one
limit adjustment, with a deterministic id, the reason in words, the policy that decided it and,
for a person's decision, who decided.

Used by the engine for the automatic changes and by :mod:`pipeline.decisions` for people's.
"""

from __future__ import annotations

from pipeline.config import RiskConfig
from pipeline.outputs import LIMIT_ADJUSTMENTS, AdjustmentKind, Output, stable_id
from pipeline.policy_file import policy_digest
from pipeline.state import Hold, UserState
from pipeline.timeutil import format_time

__all__ = ["Adjustments"]


class Adjustments:
    """Moves holds and writes the limit-adjustment record of each change."""

    def __init__(self, config: RiskConfig) -> None:
        self.currency = config.currency
        #: Every record carries it, so an audit can tell which policy decided.
        self.policy = policy_digest(config)

    def record(
        self,
        adjustment_id: str,
        kind: AdjustmentKind,
        user_id: str,
        user: UserState,
        now: int,
        *,
        limit_before: int,
        available_before: int,
        reason: str,
        cause: str,
        alert_id: str | None = None,
        expires_at: int | None = None,
        decided_by: str | None = None,
    ) -> Output:
        """The record of a change already made to ``user`` (its state after the change)."""
        hold = user.hold
        return Output(LIMIT_ADJUSTMENTS, user_id, {
            "adjustment_id": adjustment_id,
            "user_id": user_id,
            "kind": kind,
            "event_time": format_time(now),
            "currency": self.currency,
            "limit_before_minor": limit_before,
            "limit_after_minor": user.limit_minor,
            "available_before_minor": available_before,
            "available_after_minor": user.available_minor,
            "held_minor": hold.amount_minor if hold is not None else 0,
            "reason": reason,
            "alert_id": alert_id,
            "expires_at": format_time(expires_at) if expires_at is not None else None,
            "cause_event_id": cause,
            "decided_by": decided_by,
            "policy": self.policy,
        })

    def release_hold(
        self, user_id: str, user: UserState, now: int, cut_id: str, why: str, *,
        kind: AdjustmentKind = "restore", cause: str | None = None,
        decided_by: str | None = None,
    ) -> Output:
        """Lift the user's hold (``cut_id``); ``cause`` is the event that lifts it (default:
        the hold itself, for an automatic restore)."""
        hold = user.hold
        assert hold is not None
        before = user.available_minor
        user.hold = None
        cause = cause if cause is not None else cut_id
        return self.record(
            stable_id("adj", cut_id if kind == "restore" else cause, kind), kind, user_id, user,
            now, limit_before=user.limit_minor, available_before=before,
            reason=f"{why}; restores the cut {cut_id}" if kind == "restore" else why,
            alert_id=hold.alert_id or None, cause=cause, decided_by=decided_by,
        )

    def hold_for_review(self, user_id: str, user: UserState, now: int, cause: str, what: str,
                        *, decided_by: str | None = None) -> list[Output]:
        """After a confirmed fraud or a default: confirm the hold in place, or freeze."""
        hold = user.hold
        if hold is not None and not hold.confirmed:
            hold.confirmed = True
            return [
                self.record(
                    stable_id("adj", cause, "hold_confirmed"), "hold_confirmed",
                    user_id, user, now,
                    limit_before=user.limit_minor, available_before=user.available_minor,
                    reason=f"{what}; the hold stays until a person reviews it",
                    alert_id=hold.alert_id or None, cause=cause, decided_by=decided_by,
                )
            ]
        if hold is not None:
            return []  # already frozen
        return [self.freeze(user_id, user, now, cause,
                            f"{what}; available credit frozen until a person reviews it",
                            decided_by=decided_by)]

    def freeze(self, user_id: str, user: UserState, now: int, cause: str, reason: str, *,
               decided_by: str | None = None) -> Output:
        """Freeze the line until a person lifts the freeze (replacing any other hold)."""
        before = user.available_minor
        adjustment_id = stable_id("adj", cause, "freeze")
        user.hold = Hold(adjustment_id, "", before, expires_at=0, confirmed=True, kind="freeze")
        return self.record(
            adjustment_id, "freeze", user_id, user, now,
            limit_before=user.limit_minor, available_before=before, reason=reason,
            cause=cause, decided_by=decided_by,
        )
