"""The limit policy, rule by rule."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.config import RiskConfig
from pipeline.policy import cut_amount, raise_limit, severity
from pipeline.state import Hold, UserState
from pipeline.timeutil import DAY

NOW = 400 * DAY


def eligible_user(config: RiskConfig) -> UserState:
    user = UserState(config.default_limit_minor)
    user.on_time_repayments = config.raise_min_on_time_repayments
    for index in range(config.raise_min_purchases_30d):
        user.windows.add(NOW - index * DAY, 1_000, "m")
    return user


def test_an_eligible_user_gets_one_rounded_step() -> None:
    config = RiskConfig()
    assert raise_limit(eligible_user(config), NOW, config) == 600_000


@pytest.mark.parametrize(
    "spoil",
    [
        lambda u: setattr(u, "late_repayments", 1),
        lambda u: setattr(u, "on_time_repayments", 2),
        lambda u: setattr(u, "fraud_confirmed", True),
        lambda u: setattr(u, "defaulted", True),
        lambda u: setattr(u, "last_alert_time", NOW - 29 * DAY),
        lambda u: setattr(u, "last_raise_time", NOW - 29 * DAY),
        lambda u: setattr(u, "hold", Hold("a", "b", 1, NOW + DAY)),
        lambda u: setattr(u, "windows", type(u.windows)()),
    ],
)
def test_each_rule_can_deny_a_raise(spoil) -> None:
    config = RiskConfig()
    user = eligible_user(config)
    spoil(user)
    assert raise_limit(user, NOW, config) is None


def test_raises_stop_at_the_cap() -> None:
    config = dataclasses.replace(RiskConfig(), max_limit_minor=550_000)
    assert raise_limit(eligible_user(config), NOW, config) == 550_000
    user = eligible_user(config)
    user.limit_minor = 550_000
    assert raise_limit(user, NOW, config) is None


def test_cut_keeps_ten_percent_of_available_credit() -> None:
    user = UserState(500_000)
    user.balance_minor = 499_995
    assert cut_amount(user, RiskConfig()) == 5  # integer arithmetic, rounded toward the user
    user.balance_minor = 600_000
    assert cut_amount(user, RiskConfig()) == 0


def test_severity_bands() -> None:
    config = RiskConfig()
    assert [severity(s, config) for s in (0.7, 0.85, 0.95)] == ["low", "medium", "high"]


def test_inconsistent_thresholds_are_refused() -> None:
    with pytest.raises(ValueError):
        RiskConfig(alert_threshold=0.9, cut_threshold=0.8)


def _statement_line(config: RiskConfig, risk: float | None) -> UserState:
    """A line known by its bills: no purchases, three bills with a balance, a clean record."""
    from pipeline.credit import CreditHistory

    user = UserState(config.default_limit_minor)
    user.on_time_repayments = config.raise_min_on_time_repayments
    user.credit = CreditHistory()
    for _ in range(config.raise_min_statements_in_use):
        user.credit.add_statement(100_000, config.default_limit_minor, 0)
    user.credit.risk = risk
    return user


def test_a_line_with_statements_is_raised_only_on_a_low_default_risk() -> None:
    config = RiskConfig()
    assert raise_limit(_statement_line(config, 0.01), NOW, config) == 600_000
    assert raise_limit(_statement_line(config, 0.5), NOW, config) is None
    # A cold default model gives no risk: no raise on the record alone.
    assert raise_limit(_statement_line(config, None), NOW, config) is None
    unused = _statement_line(config, 0.01)
    unused.credit.add_statement(0, config.default_limit_minor, 0)  # nothing owed: not in use
    assert raise_limit(unused, NOW, config) is None


def test_a_high_default_risk_freezes_and_a_lower_one_lifts_only_that_freeze() -> None:
    from pipeline.policy import freeze_for_risk

    config = RiskConfig()
    risky = _statement_line(config, 0.9)
    assert freeze_for_risk(risky, config) is True
    risky.hold = Hold("adj", "", 1, 0, kind="risk_freeze")
    assert freeze_for_risk(risky, config) is None  # already frozen
    risky.credit.risk = 0.2
    assert freeze_for_risk(risky, config) is False
    risky.hold = Hold("adj", "alr", 1, NOW, kind="cut")
    assert freeze_for_risk(risky, config) is None  # an alert's cut is not the model's to lift
    assert freeze_for_risk(_statement_line(config, None), config) is None
