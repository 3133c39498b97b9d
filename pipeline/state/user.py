"""The compact per-user record: windows, credit line, baseline and repayment history."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

from pipeline.credit import CreditHistory
from pipeline.timeutil import format_time
from pipeline.windows import PurchaseWindows

__all__ = ["Hold", "UserState", "describe_user", "id_hash"]

#: Repayment and label ids remembered per user to refuse duplicates (a year of monthly bills).
_RECENT_OTHER_IDS = 16


def id_hash(event_id: str) -> int:
    """A stable signed 64-bit hash of an event id (Python's hash() changes between processes)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little", signed=True)


@dataclass(slots=True)
class Hold:
    """Available credit held back. A ``cut`` (an alert's) is restored at ``expires_at`` unless
    confirmed; a ``risk_freeze`` (a high default risk) when a later review scores lower; a
    ``freeze`` (a confirmed fraud or default) only by a person."""

    adjustment_id: str
    alert_id: str
    amount_minor: int
    expires_at: int
    confirmed: bool = False
    kind: str = "cut"


class UserState:
    """Everything the worker keeps about one user (a few hundred bytes plus the windows)."""

    __slots__ = (
        "balance_minor",
        "baseline_count",
        "baseline_mean",
        "baseline_var",
        "credit",
        "defaulted",
        "fraud_confirmed",
        "hold",
        "last_alert_time",
        "last_raise_time",
        "late_repayments",
        "limit_minor",
        "on_time_repayments",
        "other_ids",
        "windows",
    )

    def __init__(self, limit_minor: int) -> None:
        self.limit_minor = limit_minor
        self.balance_minor = 0
        self.hold: Hold | None = None
        self.windows = PurchaseWindows()
        self.baseline_count = 0
        self.baseline_mean = 0.0
        self.baseline_var = 0.0
        self.on_time_repayments = 0
        self.late_repayments = 0
        self.last_alert_time: int | None = None
        self.last_raise_time: int | None = None
        self.fraud_confirmed = False
        self.defaulted = False
        #: The credit line's record, once the user has had a statement.
        self.credit: CreditHistory | None = None
        #: Id hashes of the latest repayments and labels (purchases: see ``windows``).
        self.other_ids = array("q")

    def seen_other(self, event_hash: int) -> bool:
        return event_hash in self.other_ids

    def remember_other(self, event_hash: int) -> None:
        self.other_ids.append(event_hash)
        if len(self.other_ids) > _RECENT_OTHER_IDS:
            del self.other_ids[0]

    @property
    def available_minor(self) -> int:
        hold = self.hold
        if hold is None:
            return max(0, self.limit_minor - self.balance_minor)
        if hold.kind != "cut":
            return 0  # a frozen line lends nothing, whatever is repaid meanwhile
        return max(0, self.limit_minor - self.balance_minor - hold.amount_minor)

    def update_baseline(self, amount_minor: int, alpha: float) -> None:
        """Exponentially weighted mean and variance of log-amount (plain mean while young)."""
        value = math.log(amount_minor or 1)  # a zero authorisation counts as the smallest
        self.baseline_count += 1
        weight = max(alpha, 1.0 / self.baseline_count)
        diff = value - self.baseline_mean
        increment = weight * diff
        self.baseline_mean += increment
        self.baseline_var = (1.0 - weight) * (self.baseline_var + diff * increment)

    def deviation(self, amount_minor: int, min_std: float) -> float:
        """z-score of this amount's log against the user's baseline."""
        std = max(math.sqrt(self.baseline_var), min_std)
        return (math.log(amount_minor or 1) - self.baseline_mean) / std

    def __getstate__(self) -> tuple:
        return tuple(
            getattr(self, name).tobytes() if name == "other_ids" else getattr(self, name)
            for name in self.__slots__
        )

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, array("q", value) if name == "other_ids" else value)


def describe_user(user: UserState) -> dict[str, Any]:
    """A user's record as a person reads it: limit, balance, hold, purchases in the windows,
    repayment record and credit line (amounts in minor units, times as ISO 8601)."""
    windows = user.windows
    times = windows.times
    hold = user.hold
    credit = user.credit
    return {
        "limit_minor": user.limit_minor,
        "balance_minor": user.balance_minor,
        "available_minor": user.available_minor,
        "hold": None if hold is None else {
            "kind": hold.kind, "amount_minor": hold.amount_minor,
            "expires_at": format_time(hold.expires_at) if hold.kind == "cut" else None,
            "confirmed": hold.confirmed, "adjustment_id": hold.adjustment_id,
            "alert_id": hold.alert_id or None,
        },
        "purchases": {
            "held": len(windows),
            "first": format_time(times[0]) if times else None,
            "last": format_time(times[-1]) if times else None,
            "total_minor": sum(windows.amounts),
            "merchants": len(set(windows.merchants)),
            "typical_amount_minor": round(math.exp(user.baseline_mean))
            if user.baseline_count else None,
            "baseline_purchases": user.baseline_count,
        },
        "repayments": {"on_time": user.on_time_repayments, "late": user.late_repayments},
        "last_alert": format_time(user.last_alert_time)
        if user.last_alert_time is not None else None,
        "last_raise": format_time(user.last_raise_time)
        if user.last_raise_time is not None else None,
        "fraud_confirmed": user.fraud_confirmed,
        "defaulted": user.defaulted,
        "credit": None if credit is None else {
            "statements": credit.statements,
            "last_bill_minor": credit.balance_minor,
            "utilisation": round(credit.utilisation, 4),
            "past_due_cycles": credit.past_due,
            "cycles_awaiting_outcome": len(credit.pending),
            "default_risk": None if credit.risk is None else round(credit.risk, 4),
        },
    }
