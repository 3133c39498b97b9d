"""The compact per-user record: windows, credit line, baseline and repayment history."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from hashlib import blake2b

from pipeline.credit import CreditHistory
from pipeline.windows import PurchaseWindows

__all__ = ["Hold", "UserState", "id_hash"]

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
