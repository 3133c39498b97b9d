"""Why a purchase alerted, in words an analyst or the user could be told: each reason names
the feature behind it, strongest first."""

from __future__ import annotations

from pipeline.config import RiskConfig
from pipeline.events import Transaction
from pipeline.money import format_minor
from pipeline.scoring import Scored

__all__ = ["ALERT_FEATURES", "purchase_reasons"]

#: Features copied into each alert so an analyst sees what the score saw.
ALERT_FEATURES = (
    "amount_z",
    "amount_to_typical",
    "count_1h",
    "count_24h",
    "mean_30d",
    "prior_max_30d",
    "new_merchant",
    "hours_since_previous",
    "unusual_7d",
    "merchant_risk_7d",
    "merchant_ordinary_risk_7d",
    "merchant_count_7d",
    "merchant_risk_latest",
)
#: A part of the score is named in the reasons once it reaches this strength.
_REASON_STRENGTH = 0.5


def purchase_reasons(
    config: RiskConfig,
    tx: Transaction,
    features: dict[str, float],
    scored: Scored,
    available_before: int,
) -> list[str]:
    """Human-readable reasons, strongest first, each naming the feature behind it."""
    currency = tx.currency
    ranked: list[tuple[float, str]] = []
    if scored.deviation >= _REASON_STRENGTH:
        typical = round(tx.amount_minor / features["amount_to_typical"])
        ranked.append((
            scored.deviation,
            f"amount {format_minor(tx.amount_minor, currency)} is "
            f"{features['amount_to_typical']:.1f}x the user's typical purchase "
            f"{format_minor(typical, currency)} (amount_z={features['amount_z']:.1f})",
        ))
    if scored.velocity >= _REASON_STRENGTH:
        ranked.append((
            scored.velocity,
            f"{int(features['count_1h'])} purchases in the last hour (count_1h)",
        ))
    if scored.anomaly >= _REASON_STRENGTH:
        ranked.append((
            scored.anomaly * config.anomaly_weight,
            f"unusual for the anomaly model (Half-Space Trees score {scored.anomaly:.2f})",
        ))
    if scored.supervised >= _REASON_STRENGTH:
        ranked.append((
            scored.supervised * config.supervised_weight,
            f"like confirmed frauds to the fraud model (probability {scored.supervised:.2f})",
        ))
    merchant_risk = features["merchant_risk_7d"]
    if merchant_risk > 0:
        ranked.append((
            merchant_risk,
            f"{merchant_risk:.0%} of merchant {tx.merchant_id}'s purchases a week before "
            "were confirmed frauds (merchant_risk_7d)",
        ))
    latest_risk = features["merchant_risk_latest"]
    if latest_risk > 0 and merchant_risk == 0:
        ranked.append((
            latest_risk,
            f"{latest_risk:.0%} of merchant {tx.merchant_id}'s latest purchases a week "
            "before were confirmed frauds (merchant_risk_latest)",
        ))
    prior_max = int(features["prior_max_30d"])
    if 0 < prior_max < tx.amount_minor:
        ranked.append((
            0.0,
            f"largest purchase in 30 days (previous maximum "
            f"{format_minor(prior_max, currency)}, prior_max_30d)",
        ))
    if features["new_merchant"]:
        ranked.append((0.0, f"first purchase at merchant {tx.merchant_id} in 30 days"))
    if tx.amount_minor > available_before:
        ranked.append((
            0.0,
            f"exceeds the available credit {format_minor(available_before, currency)}",
        ))
    ranked.sort(key=lambda item: -item[0])
    return [text for _, text in ranked]
