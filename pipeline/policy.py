"""The credit-limit policy: when to cut available credit for a while, and when to raise a limit.

Pure functions of a user's state and the config, so the rules can be read and tested alone.
"""

from __future__ import annotations

from pipeline.config import RiskConfig
from pipeline.state import UserState
from pipeline.windows import WINDOW_SPANS

__all__ = ["cut_amount", "freeze_for_risk", "raise_limit", "severity"]

_BASIS_POINTS = 10_000


def severity(score: float, config: RiskConfig) -> str:
    if score >= config.high_severity_threshold:
        return "high"
    if score >= config.cut_threshold:
        return "medium"
    return "low"


def cut_amount(user: UserState, config: RiskConfig) -> int:
    """How much available credit a temporary cut holds back (0 when there is nothing to hold).

    >>> user = UserState(limit_minor=500_000); user.balance_minor = 100_000
    >>> cut_amount(user, RiskConfig())
    360000
    """
    available = user.available_minor
    return available - available * config.cut_keep_bp // _BASIS_POINTS


def raise_limit(user: UserState, now: int, config: RiskConfig) -> int | None:
    """The new limit if the user has earned a raise now (behaviour A), else None.

    A raise needs a clean record -- enough on-time repayments, none late, no default, no
    confirmed fraud, no alert in the quiet period, no active cut -- frequent recent use
    (purchases in 30 days, or consecutive statements with something owed), for a line with
    statements a low default risk from a warm default model, and the last raise long enough
    ago. It is a fixed step, rounded down, and capped.
    """
    if user.fraud_confirmed or user.defaulted or user.hold is not None:
        return None
    if user.late_repayments or user.on_time_repayments < config.raise_min_on_time_repayments:
        return None
    if user.last_alert_time is not None and now - user.last_alert_time < config.raise_quiet_period:
        return None
    if user.last_raise_time is not None and now - user.last_raise_time < config.raise_min_interval:
        return None
    credit = user.credit
    if credit is not None and (credit.risk is None or credit.risk > config.raise_max_default_risk):
        return None
    in_use = credit is not None and credit.in_use >= config.raise_min_statements_in_use
    if not in_use and (
        user.windows.stats(now, WINDOW_SPANS["30d"]).count < config.raise_min_purchases_30d
    ):
        return None
    step = config.limit_granularity_minor
    proposed = user.limit_minor * (_BASIS_POINTS + config.raise_step_bp) // _BASIS_POINTS
    proposed = min(proposed // step * step, config.max_limit_minor)
    return proposed if proposed > user.limit_minor else None


def freeze_for_risk(user: UserState, config: RiskConfig) -> bool | None:
    """True to freeze the line for its default risk now, False to lift such a freeze, None to
    leave things as they are."""
    credit = user.credit
    if credit is None or credit.risk is None:
        return None
    hold = user.hold
    high = credit.risk >= config.freeze_default_risk
    if high and hold is None and user.available_minor > 0 and not user.defaulted:
        return True
    if not high and hold is not None and hold.kind == "risk_freeze" and not hold.confirmed:
        return False
    return None
