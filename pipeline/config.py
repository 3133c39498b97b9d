"""Every tunable of the core in one frozen object, each with the reason for its default."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.timeutil import DAY, HOUR

__all__ = ["RiskConfig"]


@dataclass(frozen=True, slots=True)
class RiskConfig:
    #: The credit line's currency. Purchases in another currency are dead-lettered: the line
    #: keeps exact balances and converting would need a rate source the stream does not have.
    currency: str = "CNY"
    #: Opening limit of a user the worker has not seen yet (CNY 5,000.00).
    default_limit_minor: int = 500_000
    #: Hard cap of any automatic increase (CNY 50,000.00); above that a person decides.
    max_limit_minor: int = 5_000_000

    # -- scoring ---------------------------------------------------------------------------
    #: A user's own baseline is trusted only after this many purchases.
    baseline_min_purchases: int = 5
    #: Weight of the newest purchase in the user's exponentially weighted baseline
    #: (about the last 20 purchases matter).
    baseline_alpha: float = 0.05
    #: Floor of the baseline's standard deviation of log-amount. Users who always spend the
    #: same, and young baselines estimated from a handful of purchases, would otherwise get
    #: huge z-scores for ordinary variation; 0.35 means an amount must be about
    #: e^(0.35*4) = 4x the usual one before it reaches z = 4.
    baseline_min_log_std: float = 0.35
    #: z-score of log-amount at which the deviation part of the score is 0.5.
    deviation_z_midpoint: float = 4.0
    #: Purchases in the last hour at which the velocity part of the score is 0.5.
    velocity_midpoint_1h: float = 4.0
    #: How much the unsupervised anomaly model and velocity can add on their own while the
    #: classifier is cold (then they are its inputs). Kept below the alert threshold so
    #: neither alerts without a deviation from the user's own habits.
    anomaly_weight: float = 0.3
    velocity_weight: float = 0.5

    # -- alerts and temporary cuts (behaviour B) ------------------------------------------
    alert_threshold: float = 0.7
    #: At or above this score the alert also cuts the available credit at once.
    cut_threshold: float = 0.8
    high_severity_threshold: float = 0.9
    #: Share of the available credit kept during a temporary cut (10 %).
    cut_keep_bp: int = 1_000
    #: How long a cut lasts in event time before it is restored if no fraud is confirmed.
    cut_duration: int = 72 * HOUR

    # -- limit increases (behaviour A) ------------------------------------------------------
    raise_min_on_time_repayments: int = 3
    #: "Shops often": purchases in the last 30 days needed for a raise.
    raise_min_purchases_30d: int = 8
    #: No alert for this long before a raise.
    raise_quiet_period: int = 30 * DAY
    #: At most one raise per this interval.
    raise_min_interval: int = 30 * DAY
    #: Size of one raise, in basis points of the current limit (20 %).
    raise_step_bp: int = 2_000
    #: Limits move in whole steps of this many minor units (CNY 100.00).
    limit_granularity_minor: int = 10_000
    #: "Uses the line often", for a line known by its statements rather than its purchases
    #: (an issuer's history): this many consecutive statements with something owed.
    raise_min_statements_in_use: int = 3
    #: A line with statements is raised only with a default probability at or below this,
    #: so not while the default model is cold; a line known only by purchases by the rules.
    raise_max_default_risk: float = 0.05

    # -- default risk (the credit side) -----------------------------------------------------
    #: At or above this default probability the available credit is frozen, and restored
    #: when a later statement scores below it.
    freeze_default_risk: float = 0.7
    #: A bill this many cycles past due is a default (90 days past due, the Basel definition).
    default_past_due_cycles: int = 3
    #: A billing cycle's performance window: with no default by this long after its due date,
    #: the cycle is learned as repaid (if the line is current then). A missed bill becomes a
    #: default label about 30 days after its due date; the window leaves a cycle to spare.
    default_horizon: int = 90 * DAY

    # -- late labels: merchant risk and the supervised model ---------------------------------
    #: Labels are taken as known this long after a purchase (the Fraud Detection Handbook's
    #: protocol): merchant risk windows end this long before the purchase being scored, and a
    #: purchase with no fraud label by then is learned as legitimate.
    label_delay: int = 7 * DAY
    #: Share of legitimate purchases the supervised model learns from (fraud is under 1 %).
    negative_share: float = 0.1
    #: Weight of the supervised fraud probability in the score, once the model is warm (the
    #: score is then the larger of it and the deviation part).
    supervised_weight: float = 1.0

    #: Emit every purchase's score to the ``scores`` stream (evaluation; costs throughput).
    emit_scores: bool = False

    # -- event time -----------------------------------------------------------------------
    #: Events older than the partition's event-time watermark by more than this are
    #: dead-lettered as late. Windows are exact for anything accepted.
    allowed_lateness: int = 1 * HOUR
    #: Events this far ahead of the watermark are dead-lettered: one bad clock must not
    #: push the watermark (and every expiry) into the future. Wide enough for a quiet
    #: partition (a small line, a monthly history whose default labels come weeks after
    #: its last bill) to go a quarter without traffic.
    max_future_skew: int = 90 * DAY

    def __post_init__(self) -> None:
        if not 0 < self.alert_threshold <= self.cut_threshold <= 1:
            raise ValueError("need 0 < alert_threshold <= cut_threshold <= 1")
        if not 0 <= self.cut_keep_bp < 10_000:
            raise ValueError("cut_keep_bp must be in [0, 10000)")
        if not 0 <= self.raise_max_default_risk < self.freeze_default_risk <= 1:
            raise ValueError("need 0 <= raise_max_default_risk < freeze_default_risk <= 1")
        if self.default_limit_minor > self.max_limit_minor:
            raise ValueError("default_limit_minor exceeds max_limit_minor")
