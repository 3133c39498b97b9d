"""The risk engine of one partition: ``process(event) -> outputs``, deterministic in event time.

One engine owns every user whose key hashes to its partition, plus that partition's models
and event-time clock. Its outputs depend only on the sequence of events it is given, never on
wall-clock time or on which worker runs it -- which is what makes replays at any speed, two
workers and one worker, and a restart from stored state all produce the same records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pipeline.adjustments import Adjustments
from pipeline.admission import admit
from pipeline.config import RiskConfig
from pipeline.credit import CreditHistory, DefaultModel, credit_factors
from pipeline.decisions import apply_decision
from pipeline.events import (
    FRAUD_LABEL_KINDS,
    Event,
    Label,
    Repayment,
    Statement,
    Transaction,
)
from pipeline.features import purchase_features
from pipeline.learning import PendingLabels, at_risky_merchant
from pipeline.merchants import MerchantBook
from pipeline.outputs import (
    ALERTS,
    CREDIT_SCORES,
    SCORES,
    Output,
    stable_id,
)
from pipeline.policy import cut_amount, freeze_for_risk, raise_limit, severity
from pipeline.reasons import ALERT_FEATURES, purchase_reasons
from pipeline.scoring import RiskScorer, Scored
from pipeline.state import Hold, TimeIndex, UserCache, UserState, id_hash
from pipeline.timeutil import HOUR, format_time

__all__ = ["CreditScorer", "PurchaseObserver", "RiskEngine"]

class CreditScorer(Protocol):
    """A default model the policy can act on: ``score_one(inputs) -> P(default)``."""

    def score_one(self, values: Sequence[float]) -> float: ...


#: Called with every purchase, its features and its score: how evaluation and the feature
#: parity check see what the engine saw, through the very code the worker runs.
PurchaseObserver = Callable[[Transaction, dict[str, float], Scored], None]

_ROUND = 4


class RiskEngine:
    """Applies events of one partition in order and returns the alerts and adjustments due."""

    def __init__(self, config: RiskConfig | None = None, scorer: RiskScorer | None = None):
        self.config = config if config is not None else RiskConfig()
        self.scorer = scorer if scorer is not None else RiskScorer(self.config)
        #: Every user of the partition, or (backed by a store) the recently changed ones.
        self.users = UserCache()
        #: Merchant-side activity: of the purchases this engine sees, or of every partition
        #: when a worker attaches its replica (docs/architecture.md).
        self.merchants = self._own_merchants()
        self.feeds_merchants = True
        #: Highest event time applied so far; drives expiries and the lateness policy.
        self.watermark: int | None = None
        #: When each temporary cut expires: (time, user id, adjustment id).
        self.expiries: TimeIndex[tuple[int, str, str]] = TimeIndex()
        self.observer: PurchaseObserver | None = None
        #: Purchases whose label is not known yet, with the supervised model's inputs. One is
        #: learned as legitimate only when its label could no longer be applied (a label
        #: released at the delay may arrive up to ``allowed_lateness`` after purchases that
        #: follow it, from another topic): otherwise that fraud would be learned as legitimate.
        self.pending_labels = PendingLabels(self.config.label_delay + self.config.allowed_lateness,
                                            self.config.negative_share, at_risky_merchant)
        #: Default risk of the credit lines, and when each billing cycle's performance window
        #: closes: (time, user id, cycle number).
        self.default_model = DefaultModel()
        #: A default model fitted on a history (``riskstream train``): when set, the policy
        #: acts on its score and the online model is scored beside it as the challenger.
        self.credit_champion: CreditScorer | None = None
        self.cycle_maturities: TimeIndex[tuple[int, str, int]] = TimeIndex()
        #: Writes the audited record of every change to a line (with the policy's digest).
        self.adjustments = Adjustments(self.config)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["observer"] = None  # a process-local hook, never part of stored state
        if not self.feeds_merchants:
            state["merchants"] = None  # the worker's replica, rebuilt from the topics
        return state

    def attach_merchants(self, book: MerchantBook) -> None:
        """Query ``book`` -- fed by someone else with every partition's purchases and labels
        -- instead of keeping merchant activity from this engine's own events."""
        self.merchants = book
        self.feeds_merchants = False

    def keep_own_merchants(self) -> None:
        """Keep merchant activity from this engine's own events (again), starting empty."""
        if not self.feeds_merchants:
            self.merchants = self._own_merchants()
            self.feeds_merchants = True

    def _own_merchants(self) -> MerchantBook:
        book = MerchantBook(self.config.label_delay)
        book.track_changes()  # checkpointed with the partition's state
        return book

    # -- the one entry point --------------------------------------------------------------
    def process(self, event: Event) -> list[Output]:
        """Apply one validated event; raises :class:`InvalidEvent` if it cannot be applied."""
        # Every check comes before any change: a refused event leaves no trace.
        event, event_hash = admit(self, event)
        outputs = self.advance(event.event_time)
        if isinstance(event, Transaction):
            outputs.extend(self._purchase(event, event_hash))
        elif isinstance(event, Repayment):
            outputs.extend(self._repayment(event, event_hash))
        elif isinstance(event, Statement):
            outputs.extend(self._statement(event, event_hash))
        elif isinstance(event, Label):
            outputs.extend(self._label(event, event_hash))
        else:
            outputs.extend(apply_decision(self, event, event_hash))
        return outputs

    def advance(self, now: int) -> list[Output]:
        """Move event time to ``now`` and restore every cut that has expired by then."""
        if self.watermark is None or now > self.watermark:
            self.watermark = now
            learn_label = self.scorer.learn_label
            for inputs, weight in self.pending_labels.matured(now):
                learn_label(inputs, False, weight)
            self._mature_cycles(now)
        outputs: list[Output] = []
        if not self.expiries:
            return outputs
        for expires_at, user_id, adjustment_id in self.expiries.pop_until(now):
            user = self.users[user_id]
            hold = user.hold
            if hold is None or hold.adjustment_id != adjustment_id or hold.confirmed:
                continue  # already restored early or confirmed by a fraud label
            outputs.append(
                self.adjustments.release_hold(
                    user_id, user, expires_at, adjustment_id,
                    f"temporary cut expired after {self.config.cut_duration // HOUR} h of event "
                    "time with no confirmed fraud",
                )
            )
        return outputs

    def horizon(self) -> int | None:
        """The latest event time accepted now; anything later is refused as ``future``."""
        return None if self.watermark is None else self.watermark + self.config.max_future_skew

    def user(self, user_id: str) -> UserState:
        """The user an event is about, created if new, to change."""
        return self.users.touch(user_id, self._new_user)

    def _new_user(self) -> UserState:
        return UserState(self.config.default_limit_minor)

    # -- event handlers -------------------------------------------------------------------
    def _purchase(self, tx: Transaction, tx_hash: int) -> list[Output]:
        cfg = self.config
        user = self.user(tx.user_id)
        features = purchase_features(user, tx, cfg, self.merchants)
        scored = self.scorer.explain_learn_one(features)  # scored first, then learned
        if self.observer is not None:
            self.observer(tx, features, scored)
        available_before = user.available_minor
        user.balance_minor += tx.amount_minor
        outputs: list[Output] = []
        if cfg.emit_scores:
            outputs.append(Output(SCORES, tx.user_id, {
                "transaction_id": tx.event_id, "user_id": tx.user_id,
                "event_time": format_time(tx.event_time), "score": scored.score,
                "supervised": scored.supervised, "deviation": scored.deviation,
                "anomaly": scored.anomaly, "velocity": scored.velocity,
            }))
        if scored.score >= cfg.alert_threshold:
            outputs.extend(self._alert(tx, user, features, scored, available_before))
        else:
            # Flagged purchases stay out of the baseline so fraud cannot teach it to expect more.
            user.update_baseline(tx.amount_minor, cfg.baseline_alpha)
        user.windows.add(tx.event_time, tx.amount_minor, tx.merchant_id, tx_hash)
        # Keep what a purchase up to the allowed lateness behind the clock still needs.
        assert self.watermark is not None
        user.windows.evict(self.watermark - cfg.allowed_lateness)
        if self.feeds_merchants:
            merchants = self.merchants
            merchants.add(tx.merchant_id, tx.event_time, tx_hash, tx.user_id, tx.amount_minor)
            merchants.evict(tx.merchant_id,
                            self.watermark - cfg.allowed_lateness - merchants.reach)
        if scored.inputs is not None:
            self.pending_labels.add(tx.event_time, tx_hash, scored.inputs)
        return outputs

    def _alert(
        self,
        tx: Transaction,
        user: UserState,
        features: dict[str, float],
        scored: Scored,
        available_before: int,
    ) -> list[Output]:
        cfg = self.config
        alert_id = stable_id("alr", tx.event_id)
        user.last_alert_time = tx.event_time
        cut = scored.score >= cfg.cut_threshold and user.hold is None and user.available_minor > 0
        alert: dict[str, Any] = {
            "alert_id": alert_id,
            "user_id": tx.user_id,
            "transaction_id": tx.event_id,
            "merchant_id": tx.merchant_id,
            "amount_minor": tx.amount_minor,
            "currency": tx.currency,
            "event_time": format_time(tx.event_time),
            "severity": severity(scored.score, cfg),
            "score": round(scored.score, _ROUND),
            "reasons": purchase_reasons(cfg, tx, features, scored, available_before),
            "features": {name: round(features[name], _ROUND) for name in ALERT_FEATURES},
            "action": "temporary_cut" if cut else "none",
            "policy": self.adjustments.policy,
        }
        outputs = [Output(ALERTS, tx.user_id, alert)]
        if cut:
            adjustment_id = stable_id("adj", alert_id, "temporary_cut")
            expires_at = tx.event_time + cfg.cut_duration
            before = user.available_minor
            user.hold = Hold(adjustment_id, alert_id, cut_amount(user, cfg), expires_at)
            self.expiries.push((expires_at, tx.user_id, adjustment_id))
            outputs.append(
                self.adjustments.record(
                    adjustment_id, "temporary_cut", tx.user_id, user, tx.event_time,
                    limit_before=user.limit_minor, available_before=before,
                    reason=f"unusual purchase (alert {alert_id}, score {scored.score:.2f}): "
                    + "; ".join(alert["reasons"][:2]),
                    alert_id=alert_id, expires_at=expires_at, cause=tx.event_id,
                )
            )
        return outputs

    def _repayment(self, repayment: Repayment, event_hash: int) -> list[Output]:
        user = self.user(repayment.user_id)
        user.remember_other(event_hash)
        user.balance_minor = max(0, user.balance_minor - repayment.amount_minor)
        if repayment.due_time is not None:
            if repayment.event_time > repayment.due_time:
                user.late_repayments += 1
            else:
                user.on_time_repayments += 1
        outputs: list[Output] = []
        if user.credit is not None:
            user.credit.add_repayment(repayment.amount_minor)  # reviewed at the next bill
        # A line with statements is reviewed for a raise when its bill comes, with the cycle's
        # whole record; a line known by its purchases when it repays on time.
        on_time = repayment.due_time is not None and repayment.event_time <= repayment.due_time
        if on_time and user.credit is None:
            outputs.extend(self._raise(repayment.user_id, user, repayment.event_time,
                                       repayment.event_id))
        return outputs

    def _raise(self, user_id: str, user: UserState, now: int, cause: str) -> list[Output]:
        """Behaviour A: a raise when the user has earned one (see :func:`raise_limit`)."""
        cfg = self.config
        new_limit = raise_limit(user, now, cfg)
        if new_limit is None:
            return []
        before_limit, before_available = user.limit_minor, user.available_minor
        user.limit_minor = new_limit
        user.last_raise_time = now
        credit = user.credit
        if credit is not None and credit.in_use >= cfg.raise_min_statements_in_use:
            use = f"{credit.in_use} statements in a row with a balance"
        else:
            use = f"{user.windows.stats(now, 30 * 24 * HOUR).count} purchases in 30 days"
        risk = ""
        if credit is not None and credit.risk is not None:
            strengths = credit_factors(credit, user.on_time_repayments,
                                       user.late_repayments)[1]
            risk = f", default risk {credit.risk:.2f}" + "".join(
                f"; {strength}" for strength in strengths[:2])
        return [
            self.adjustments.record(
                stable_id("adj", cause, "increase"), "increase", user_id, user, now,
                limit_before=before_limit, available_before=before_available,
                reason=f"{user.on_time_repayments} on-time repayments and none late, {use}, "
                f"no alert in {cfg.raise_quiet_period // (24 * HOUR)} days{risk}",
                cause=cause,
            )
        ]

    def _statement(self, statement: Statement, event_hash: int) -> list[Output]:
        """The bill is the issuer's word on what is owed: the balance follows it. Its limit is
        adopted while riskstream has not moved the limit itself (an opening limit). It opens
        the line's next billing cycle (see :mod:`pipeline.credit`)."""
        user = self.user(statement.user_id)
        user.remember_other(event_hash)
        user.balance_minor = max(0, statement.balance_minor)
        if statement.credit_limit_minor is not None and user.last_raise_time is None:
            user.limit_minor = statement.credit_limit_minor
        credit = user.credit
        if credit is None:
            credit = user.credit = CreditHistory()
        credit.add_statement(statement.balance_minor, user.limit_minor,
                             statement.past_due_cycles)
        outputs: list[Output] = []
        if statement.past_due_cycles >= self.config.default_past_due_cycles:
            outputs.extend(self._default(
                statement.user_id, user, statement.event_time, statement.event_id,
                f"statement {statement.event_id} is {statement.past_due_cycles} cycles past due",
            ))
        outputs.extend(self._review_credit(statement.user_id, user, statement))
        outputs.extend(self._raise(statement.user_id, user, statement.event_time,
                                   statement.event_id))
        return outputs

    def _review_credit(self, user_id: str, user: UserState, statement: Statement) -> list[Output]:
        """Score the line's default risk at its bill, open the cycle's performance window,
        and freeze the line or lift such a freeze by the risk."""
        cfg = self.config
        credit = user.credit
        assert credit is not None
        now = statement.event_time
        inputs = credit.inputs(user.on_time_repayments, user.late_repayments)
        cycle = credit.track(inputs, statement.due_time + cfg.default_horizon)
        self.cycle_maturities.push((cycle.matures_at, user_id, cycle.number))
        model, champion = self.default_model, self.credit_champion
        online = model.score_one(inputs) if model.warm else None
        risk = credit.risk = champion.score_one(inputs) if champion is not None else online
        outputs: list[Output] = []
        decision = freeze_for_risk(user, cfg)
        # The factors are words for a reader: found only when something will carry them.
        risks, strengths = (
            credit_factors(credit, user.on_time_repayments, user.late_repayments)
            if cfg.emit_scores or decision is not None else ([], []))
        if cfg.emit_scores:
            outputs.append(Output(CREDIT_SCORES, user_id, {
                "cause_event_id": statement.event_id, "user_id": user_id,
                "event_time": format_time(now), "default_risk": risk,
                "model": "champion" if champion is not None else "online",
                "challenger_risk": online if champion is not None else None,
                "risk_factors": risks, "protective_factors": strengths,
            }))
        if decision is None:
            return outputs
        factors = "; ".join((risks if decision else strengths)[:3])
        why = f"default risk {risk:.2f} at statement {statement.event_id}" + (
            f" ({factors})" if factors else "")
        if decision:
            before = user.available_minor
            adjustment_id = stable_id("adj", statement.event_id, "risk_freeze")
            user.hold = Hold(adjustment_id, "", before, expires_at=0, kind="risk_freeze")
            outputs.append(self.adjustments.record(
                adjustment_id, "risk_freeze", user_id, user, now,
                limit_before=user.limit_minor, available_before=before,
                reason=f"{why} is at or above {cfg.freeze_default_risk:.2f}; available credit "
                "frozen until a later statement scores below it",
                cause=statement.event_id,
            ))
        else:
            assert user.hold is not None
            outputs.append(self.adjustments.release_hold(
                user_id, user, now, user.hold.adjustment_id,
                f"{why} is below {cfg.freeze_default_risk:.2f}",
            ))
        return outputs

    def _mature_cycles(self, now: int) -> None:
        """Learn as repaid every cycle whose performance window closed with no default."""
        if not self.cycle_maturities:
            return
        for _, user_id, number in self.cycle_maturities.pop_until(now, inclusive=False):
            credit = self.users[user_id].credit
            assert credit is not None
            cycle = credit.matured(number)
            if cycle is None:
                continue
            if cycle.defaulted:
                self.default_model.learn_one(cycle.inputs, True)
            elif credit.past_due == 0:
                # A line still behind has not repaid: its outcome is unresolved (censored).
                self.default_model.learn_one(cycle.inputs, False)

    def _label(self, label: Label, event_hash: int) -> list[Output]:
        user = self.user(label.user_id)
        user.remember_other(event_hash)
        hold = user.hold
        if label.kind == "legitimate":
            if hold is None or hold.confirmed or hold.kind != "cut":
                return []
            return [
                self.adjustments.release_hold(
                    label.user_id, user, label.event_time, hold.adjustment_id,
                    f"purchase {label.transaction_id or ''} confirmed legitimate "
                    f"(label {label.event_id})".replace("  ", " "),
                )
            ]
        if label.kind in FRAUD_LABEL_KINDS:
            user.fraud_confirmed = True
            self._confirm_fraud(user, label)
            return self.adjustments.hold_for_review(
                label.user_id, user, label.event_time, label.event_id,
                f"{label.kind} confirmed by label {label.event_id}",
            )
        return self._default(label.user_id, user, label.event_time, label.event_id,
                             f"default reported by label {label.event_id}")

    def _default(self, user_id: str, user: UserState, now: int, cause: str,
                 what: str) -> list[Output]:
        """A default (a label, or a bill far enough past due): mark the cycles in their windows
        as defaulted and hold the line for review."""
        if user.credit is not None:
            user.credit.mark_default()
        user.defaulted = True
        return self.adjustments.hold_for_review(user_id, user, now, cause, what)

    # -- helpers ----------------------------------------------------------------------------
    def _confirm_fraud(self, user: UserState, label: Label) -> None:
        """Learn from a confirmed fraud, and count it in its merchant's risk, while the
        purchase is still held."""
        if label.transaction_id is None:
            return
        tx_hash = id_hash(label.transaction_id)
        inputs = self.pending_labels.confirm(tx_hash)
        if inputs is not None:
            self.scorer.learn_label(inputs, True)
        found = user.windows.find(tx_hash) if self.feeds_merchants else None
        if found is not None:
            self.merchants.mark_fraud(found[1], found[0], tx_hash, label.event_time)
