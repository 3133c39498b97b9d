"""Per-purchase features, computed from the user's state before the purchase is applied."""

from __future__ import annotations

import math
from bisect import bisect_left

from pipeline.config import RiskConfig
from pipeline.events import Transaction
from pipeline.merchants import MERCHANT_SPANS, UNUSUAL_FOR_CARD, MerchantBook
from pipeline.state import UserState
from pipeline.timeutil import DAY, HOUR
from pipeline.windows import WINDOW_SPANS

__all__ = ["purchase_features"]

#: 00:00-06:59 UTC counts as night: the Fraud Detection Handbook's code tests ``hour <= 6``.
_LAST_NIGHT_HOUR = 6


#: The features' names, made once: (count, sum, mean, max, prior max) per window.
_WINDOW_KEYS = tuple(
    (f"count_{name}", f"sum_{name}", f"mean_{name}", f"max_{name}", f"prior_max_{name}")
    for name, _ in sorted(WINDOW_SPANS.items(), key=lambda item: item[1])
)
_MERCHANT_KEYS = tuple(
    (f"merchant_count_{name}", f"merchant_risk_{name}", f"merchant_ordinary_risk_{name}")
    for name in MERCHANT_SPANS
)
_NO_PREVIOUS_HOURS = 30 * DAY / HOUR
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday is 0, as in datetime.weekday())


def purchase_features(
    user: UserState, tx: Transaction, config: RiskConfig, merchants: MerchantBook
) -> dict[str, float]:
    """Window statistics including this purchase, its deviation from the user's habits, and
    its merchant's known fraud risk.

    Must be called *before* the purchase is added to ``user`` (score before learning): the
    windows here include the purchase arithmetically, the baseline does not include it at all.
    """
    now = tx.event_time
    amount = tx.amount_minor
    prior = user.windows.before_purchase(now, tx.merchant_id)
    features: dict[str, float] = {"amount_minor": float(amount)}
    for (count_key, sum_key, mean_key, max_key, prior_max_key), (count, total, most) in zip(
        _WINDOW_KEYS, prior.windows, strict=True
    ):
        count += 1
        total += amount
        features[count_key] = float(count)
        features[sum_key] = float(total)
        features[mean_key] = total / count
        features[max_key] = float(most if most > amount else amount)
        features[prior_max_key] = float(most)
    # The typical amount before this purchase.
    features["prior_median_7d"] = float(amount) if prior.median_7d is None else prior.median_7d
    features["prior_median_30d"] = (
        float(amount) if prior.median_30d is None else prior.median_30d
    )
    # A stolen card's spree: how many of the week's purchases were already far above the usual.
    week = prior.amounts_7d
    features["unusual_7d"] = float(
        len(week) - bisect_left(week, UNUSUAL_FOR_CARD * features["prior_median_30d"]))
    known_merchant = prior.known_merchant
    features["distinct_merchants_30d"] = float(
        prior.distinct_merchants_30d + (not known_merchant)
    )
    previous = prior.previous_time
    features["hours_since_previous"] = (
        (now - previous) / HOUR if previous is not None else _NO_PREVIOUS_HOURS
    )
    features["new_merchant"] = 0.0 if known_merchant else 1.0
    if user.baseline_count >= config.baseline_min_purchases:
        features["amount_z"] = user.deviation(amount, config.baseline_min_log_std)
        features["amount_to_typical"] = amount / math.exp(user.baseline_mean)
    else:
        features["amount_z"] = 0.0
        features["amount_to_typical"] = 1.0
    hour, day = (now // HOUR) % 24, now // DAY
    features["night"] = 1.0 if hour <= _LAST_NIGHT_HOUR else 0.0
    features["weekend"] = 1.0 if (day + _EPOCH_WEEKDAY) % 7 >= 5 else 0.0
    features["hour"] = float(hour)
    # Every known fraud (the handbook's terminal risk), and the ordinary ones alone: those its
    # card's own unusual amount does not explain (pipeline.merchants).
    *windows, (count, frauds, ordinary) = merchants.risk(tx.merchant_id, now)
    for (count_key, risk_key, ordinary_key), (count_in, frauds_in, ordinary_in) in zip(
        _MERCHANT_KEYS, windows, strict=True
    ):
        features[count_key] = float(count_in)
        features[risk_key] = frauds_in / count_in if count_in else 0.0
        features[ordinary_key] = ordinary_in / count_in if count_in else 0.0
    features["merchant_risk_latest"] = frauds / count if count else 0.0
    features["merchant_ordinary_risk_latest"] = ordinary / count if count else 0.0
    # How long the merchant's latest known purchases have all been frauds: a compromise's age.
    run_age, run_length = merchants.fraud_run(tx.merchant_id, now)
    features["merchant_fraud_run_days"] = run_age / DAY
    features["merchant_fraud_run_length"] = float(run_length)
    return features
