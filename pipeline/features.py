"""Per-purchase features, computed from the user's state before the purchase is applied."""

from __future__ import annotations

import math

from pipeline.config import RiskConfig
from pipeline.events import Transaction
from pipeline.merchants import MERCHANT_SPANS, MerchantBook
from pipeline.state import UserState
from pipeline.timeutil import DAY, HOUR, to_datetime
from pipeline.windows import WINDOW_SPANS

__all__ = ["purchase_features"]

#: 00:00-06:59 UTC counts as night: the Fraud Detection Handbook's code tests ``hour <= 6``.
_LAST_NIGHT_HOUR = 6


def purchase_features(
    user: UserState, tx: Transaction, config: RiskConfig, merchants: MerchantBook
) -> dict[str, float]:
    """Window statistics including this purchase, its deviation from the user's habits, and
    its merchant's known fraud risk.

    Must be called *before* the purchase is added to ``user`` (score before learning): the
    windows here include the purchase arithmetically, the baseline does not include it at all.
    """
    windows = user.windows
    now = tx.event_time
    amount = tx.amount_minor
    features: dict[str, float] = {"amount_minor": float(amount)}
    for name, span in WINDOW_SPANS.items():
        prior = windows.stats(now, span, distinct=name == "30d")
        if name == "30d":
            merchants_30d = prior.distinct_merchants
        count = prior.count + 1
        total = prior.total_minor + amount
        features[f"count_{name}"] = float(count)
        features[f"sum_{name}"] = float(total)
        features[f"mean_{name}"] = total / count
        features[f"max_{name}"] = float(max(prior.max_minor, amount))
        features[f"prior_max_{name}"] = float(prior.max_minor)
    for name in ("7d", "30d"):  # the typical amount before this purchase
        median = windows.median_amount(now, WINDOW_SPANS[name])
        features[f"prior_median_{name}"] = float(amount) if median is None else median
    known_merchant = windows.has_merchant(tx.merchant_id, now)
    features["distinct_merchants_30d"] = float(merchants_30d + (not known_merchant))
    previous = windows.previous_time(now + 1)
    features["hours_since_previous"] = (
        (now - previous) / HOUR if previous is not None else 30 * DAY / HOUR
    )
    features["new_merchant"] = 0.0 if known_merchant else 1.0
    if user.baseline_count >= config.baseline_min_purchases:
        features["amount_z"] = user.deviation(amount, config.baseline_min_log_std)
        features["amount_to_typical"] = amount / math.exp(user.baseline_mean)
    else:
        features["amount_z"] = 0.0
        features["amount_to_typical"] = 1.0
    moment = to_datetime(now)
    features["night"] = 1.0 if moment.hour <= _LAST_NIGHT_HOUR else 0.0
    features["weekend"] = 1.0 if moment.weekday() >= 5 else 0.0
    features["hour"] = float(moment.hour)
    *windows, (count, frauds) = merchants.risk(tx.merchant_id, now)
    for name, (count_in, frauds_in) in zip(MERCHANT_SPANS, windows, strict=True):
        features[f"merchant_count_{name}"] = float(count_in)
        features[f"merchant_risk_{name}"] = frauds_in / count_in if count_in else 0.0
    features["merchant_risk_latest"] = frauds / count if count else 0.0
    return features
