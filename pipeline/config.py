"""Every tunable of the core in one frozen object: the risk policy.

Each field says, beside its default, what it decides and why the default is what it is; the
policy file (:mod:`pipeline.policy_file`) and the configuration reference in
``docs/configuration.md`` are generated from these declarations, so they cannot drift apart.
Durations are microseconds of event time; money is integer minor units of ``currency``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.money import MINOR_UNIT_EXPONENT
from pipeline.timeutil import DAY, HOUR

__all__ = ["POLICY_SECTIONS", "RiskConfig", "policy_fields"]

#: The policy file's sections, in the order the file lists them, each with what it governs.
POLICY_SECTIONS = {
    "line": "The credit line: its currency and the limits riskstream may give.",
    "scoring": "How a purchase is scored against the user's own habits.",
    "alerts": "Alerts, their severity bands, and temporary cuts (behaviour B).",
    "raises": "Limit increases for users who shop often and repay on time (behaviour A).",
    "default_risk": "Default risk of a credit line: freezes and what counts as a default.",
    "labels": "Late labels: how long they take, and what the fraud model learns.",
    "event_time": "What the event-time clock accepts.",
}


def _policy(default: Any, section: str, doc: str, *, unit: str | None = None) -> Any:
    """A policy field: its default, its section of the policy file, and what it means."""
    return field(default=default, metadata={"section": section, "doc": doc, "unit": unit})


@dataclass(frozen=True, slots=True)
class RiskConfig:
    # -- the credit line -----------------------------------------------------------------
    currency: str = _policy(
        "CNY", "line", "The credit line's currency (ISO 4217). Events in another currency are "
        "dead-lettered: the line keeps exact balances, and converting would need a rate source "
        "the stream does not have.")
    default_limit_minor: int = _policy(
        500_000, "line", "Opening limit of a user seen for the first time, in minor units.")
    max_limit_minor: int = _policy(
        5_000_000, "line", "Cap of any automatic increase, in minor units; above it a person "
        "decides (`riskstream decide set-limit`).")

    # -- scoring -------------------------------------------------------------------------
    baseline_min_purchases: int = _policy(
        5, "scoring", "Purchases before a user's own baseline of amounts is trusted.")
    baseline_alpha: float = _policy(
        0.05, "scoring", "Weight of the newest purchase in the user's exponentially weighted "
        "baseline (about the last 20 purchases matter).")
    baseline_min_log_std: float = _policy(
        0.35, "scoring", "Floor of the baseline's standard deviation of log-amount, so users "
        "who always spend the same, and young baselines, do not turn ordinary variation into "
        "huge z-scores: at 0.35 an amount must be about 4x the usual one to reach z = 4.")
    deviation_z_midpoint: float = _policy(
        4.0, "scoring", "z-score of log-amount at which the deviation part of the score is 0.5.")
    velocity_midpoint_1h: float = _policy(
        4.0, "scoring", "Purchases in the last hour at which the velocity part of the score "
        "is 0.5.")
    anomaly_weight: float = _policy(
        0.3, "scoring", "Most the unsupervised anomaly model adds on its own while the fraud "
        "model is cold; below the alert threshold, so it never alerts alone.")
    velocity_weight: float = _policy(
        0.5, "scoring", "Most velocity adds on its own while the fraud model is cold; below the "
        "alert threshold, so it never alerts alone.")
    supervised_weight: float = _policy(
        1.0, "scoring", "Weight of the fraud model's probability once it is warm (the score is "
        "then the larger of it and the deviation part).")

    # -- alerts and temporary cuts (behaviour B) -------------------------------------------
    alert_threshold: float = _policy(
        0.7, "alerts", "Score at which a purchase raises an alert (severity low).")
    cut_threshold: float = _policy(
        0.8, "alerts", "Score at which the alert is severity medium and also cuts the "
        "available credit at once.")
    high_severity_threshold: float = _policy(
        0.9, "alerts", "Score at which the alert is severity high.")
    cut_keep_bp: int = _policy(
        1_000, "alerts", "Share of the available credit kept during a temporary cut, in basis "
        "points (1000 = 10 %).")
    cut_duration: int = _policy(
        72 * HOUR, "alerts", "How long a cut lasts in event time before it is restored, unless "
        "fraud is confirmed or a person decides first.", unit="duration")

    # -- limit increases (behaviour A) -----------------------------------------------------
    raise_min_on_time_repayments: int = _policy(
        3, "raises", "On-time repayments needed for a raise (and none late).")
    raise_min_purchases_30d: int = _policy(
        8, "raises", "\"Shops often\": purchases in the last 30 days needed for a raise.")
    raise_min_statements_in_use: int = _policy(
        3, "raises", "\"Uses the line often\", for a line known by its statements: consecutive "
        "statements with something owed.")
    raise_quiet_period: int = _policy(
        30 * DAY, "raises", "No alert for this long before a raise.", unit="duration")
    raise_min_interval: int = _policy(
        30 * DAY, "raises", "At most one raise (or limit set by a person) per this interval.",
        unit="duration")
    raise_step_bp: int = _policy(
        2_000, "raises", "Size of one raise, in basis points of the current limit "
        "(2000 = 20 %).")
    limit_granularity_minor: int = _policy(
        10_000, "raises", "Raised limits are whole multiples of this many minor units.")
    raise_max_default_risk: float = _policy(
        0.05, "raises", "A line with statements is raised only with a default probability at "
        "or below this, so not while the default model is cold.")

    # -- default risk (the credit side) ------------------------------------------------------
    freeze_default_risk: float = _policy(
        0.7, "default_risk", "Default probability at which the available credit is frozen; a "
        "later statement scoring below it lifts the freeze.")
    default_past_due_cycles: int = _policy(
        3, "default_risk", "A bill this many cycles past due is a default (90 days past due, "
        "the Basel definition).")
    default_horizon: int = _policy(
        90 * DAY, "default_risk", "A billing cycle's performance window: with no default this "
        "long after its due date, the cycle is learned as repaid.", unit="duration")

    # -- late labels ---------------------------------------------------------------------------
    label_delay: int = _policy(
        7 * DAY, "labels", "How long after a purchase its fraud label is taken as known: "
        "merchant risk looks this far back, and a purchase with no fraud label by then is "
        "learned as legitimate.", unit="duration")
    negative_share: float = _policy(
        0.1, "labels", "Share of legitimate purchases the fraud model learns from (fraud is "
        "under 1 %).")

    # -- event time ------------------------------------------------------------------------------
    allowed_lateness: int = _policy(
        1 * HOUR, "event_time", "Events older than the partition's event time by more than "
        "this are dead-lettered as late; windows are exact for anything accepted.",
        unit="duration")
    max_future_skew: int = _policy(
        90 * DAY, "event_time", "Events this far ahead of the partition's event time are "
        "dead-lettered, so one bad clock cannot push every expiry into the future. Wide "
        "enough for a quiet partition to go a quarter without traffic.", unit="duration")

    #: Emit every purchase's score to the ``scores`` stream (evaluation; costs throughput).
    #: An operating choice, not policy: outside the policy file and its digest.
    emit_scores: bool = False

    def __post_init__(self) -> None:
        if self.currency not in MINOR_UNIT_EXPONENT:
            raise ValueError(f"unknown currency {self.currency!r}; supported: "
                             f"{', '.join(sorted(MINOR_UNIT_EXPONENT))}")
        if not 0 < self.alert_threshold <= self.cut_threshold <= self.high_severity_threshold:
            raise ValueError("need 0 < alert_threshold <= cut_threshold <= "
                             "high_severity_threshold")
        if self.high_severity_threshold > 1:
            raise ValueError("high_severity_threshold must be at most 1")
        if not 0 <= self.cut_keep_bp < 10_000:
            raise ValueError("cut_keep_bp must be in [0, 10000)")
        if not 0 <= self.raise_max_default_risk < self.freeze_default_risk <= 1:
            raise ValueError("need 0 <= raise_max_default_risk < freeze_default_risk <= 1")
        if self.default_limit_minor > self.max_limit_minor:
            raise ValueError("default_limit_minor exceeds max_limit_minor")
        for name, value in (("cut_duration", self.cut_duration),
                            ("label_delay", self.label_delay),
                            ("limit_granularity_minor", self.limit_granularity_minor),
                            ("default_past_due_cycles", self.default_past_due_cycles)):
            if value <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 < self.negative_share <= 1:
            raise ValueError("negative_share must be in (0, 1]")


def policy_fields() -> list[Any]:
    """The policy's fields (every field of :class:`RiskConfig` but operating choices), in
    declaration order."""
    from dataclasses import fields

    return [item for item in fields(RiskConfig) if "section" in item.metadata]
