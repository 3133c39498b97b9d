"""Credit risk: how likely a user is to default, from their bills and repayments.

Fraud is a property of a purchase; default is a property of a credit line, so it is scored on
the line's own events. Repayments and statements update the user's :class:`CreditHistory`
(utilisation of the limit, how much of each bill was paid, how many cycles past due); each
statement closes a billing cycle and the :class:`DefaultModel` scores the line as it stands
then -- the issuer's monthly review. The inputs wait for the outcome of the cycle the statement
opens, learned in event time and never before it is known (the credit scorer's *performance
window*):

- a default -- a ``default`` label, or a bill ``default_past_due_cycles`` past due (90 days,
  the Basel definition) -- marks every cycle still in its window as defaulted;
- when a cycle's window (``default_horizon`` after its due date) closes it is learned: as a
  default if marked, else as repaid if the line is current by then. A line still behind has
  not repaid: its outcome is unresolved (censored) and not learned, or the model would learn
  that arrears are harmless.

Both outcomes are learned when the window closes, although a default is known sooner: learning
defaults at once would show the model each period's defaults two months before its repayments,
and it would find almost everyone risky for as long as the line keeps growing.

A line keeps at most :data:`MAX_PENDING_CYCLES` cycles in their windows; an older one, which
only a window longer than that many bills could leave open, is dropped unlearned.

The default probability is the policy's input for limit raises (behaviour A) and for freezing
a line whose risk is high (see :mod:`pipeline.policy`).
"""

from __future__ import annotations

import math
from array import array

from pipeline.learning import AveragedLogisticRegression, hinges, probability

__all__ = ["CREDIT_INPUTS", "MAX_PENDING_CYCLES", "CreditHistory", "DefaultModel", "PendingCycle",
           "credit_factors"]

#: Knots of the spline terms of the utilisations: risk is not monotone in them -- an idle line
#: (nothing owed, nothing paid) defaults more often than one used a little -- which a linear
#: model can only draw with bends (UCI clients, prequential: AUC 0.739 -> 0.742, defaults among
#: the safest 20 % 10.9 % -> 9.9 %).
_UTILISATION_KNOTS = (0.05, 0.1, 0.2, 0.4, 0.7, 0.9)

_UTILISATIONS = ("utilisation", "utilisation_previous", "utilisation_mean")

CREDIT_INPUTS = (
    "log_limit", *_UTILISATIONS,
    "paid_share_last", "paid_share_mean", "log_paid_last",
    "late_share", "past_due", "past_due_previous", "past_due_mean",
    *(f"{name}_over_{knot}" for name in _UTILISATIONS for knot in _UTILISATION_KNOTS),
)

#: Cycles in their performance window kept per line (a 90-day window after the due date spans
#: three or four monthly bills).
MAX_PENDING_CYCLES = 4

#: A cycle's paid share is capped here so one prepayment cannot dominate the mean.
_PAID_SHARE_CAP = 2.0


class PendingCycle:
    """A billing cycle in its performance window: its inputs, when the window closes, and
    whether the line defaulted within it."""

    __slots__ = ("defaulted", "inputs", "matures_at", "number")

    def __init__(self, number: int, matures_at: int, inputs: array) -> None:
        self.number = number
        self.matures_at = matures_at
        self.inputs = inputs
        self.defaulted = False

    def __getstate__(self) -> tuple:
        return self.number, self.matures_at, self.inputs, self.defaulted

    def __setstate__(self, state: tuple) -> None:
        self.number, self.matures_at, self.inputs, self.defaulted = state


class CreditHistory:
    """The credit line's record, kept only for users who get statements (about 150 bytes)."""

    __slots__ = (
        "balance_minor", "cycles", "in_use", "limit_minor", "paid_cycle_minor", "paid_last_minor",
        "paid_share_last", "paid_share_sum", "past_due", "past_due_previous", "past_due_sum",
        "pending", "risk", "statements", "utilisation", "utilisation_previous",
        "utilisation_sum",
    )

    def __init__(self) -> None:
        self.statements = 0
        self.balance_minor = 0
        self.limit_minor = 0
        #: Repaid since the latest statement (counted at the next), and in the previous cycle.
        self.paid_cycle_minor = 0
        self.paid_last_minor = 0
        #: Completed cycles that had something to pay, and their paid shares.
        self.cycles = 0
        self.paid_share_last = 1.0
        self.paid_share_sum = 0.0
        self.utilisation = 0.0
        self.utilisation_previous = 0.0
        self.utilisation_sum = 0.0
        self.past_due = 0
        self.past_due_previous = 0
        self.past_due_sum = 0
        #: Consecutive statements with something owed: the line is in use.
        self.in_use = 0
        #: Cycles waiting for their outcome, oldest first (the last is the current one).
        self.pending: list[PendingCycle] = []
        #: The latest default probability (None while the model is cold).
        self.risk: float | None = None

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def add_statement(self, balance_minor: int, limit_minor: int, past_due: int) -> None:
        """Close the previous cycle and open a new one at this bill."""
        if self.statements and self.balance_minor > 0:
            share = min(self.paid_cycle_minor / self.balance_minor, _PAID_SHARE_CAP)
            self.paid_share_last = share
            self.paid_share_sum += share
            self.cycles += 1
        if self.statements:
            self.paid_last_minor = self.paid_cycle_minor
        self.paid_cycle_minor = 0
        self.statements += 1
        self.balance_minor = balance_minor
        self.limit_minor = limit_minor
        utilisation = balance_minor / limit_minor if limit_minor > 0 else 0.0
        self.utilisation_previous = self.utilisation
        self.utilisation = utilisation
        self.utilisation_sum += utilisation
        self.past_due_previous = self.past_due
        self.past_due = past_due
        self.past_due_sum += past_due
        self.in_use = self.in_use + 1 if balance_minor > 0 else 0

    def add_repayment(self, amount_minor: int) -> None:
        self.paid_cycle_minor += amount_minor

    def track(self, inputs: array, matures_at: int) -> PendingCycle:
        """Open the window of the cycle this statement began, with its inputs."""
        cycle = PendingCycle(self.statements, matures_at, inputs)
        self.pending.append(cycle)
        if len(self.pending) > MAX_PENDING_CYCLES:
            del self.pending[0]
        return cycle

    def matured(self, number: int) -> PendingCycle | None:
        """Cycle ``number``, whose window has closed, if it is still waiting (it is then done)."""
        for index, cycle in enumerate(self.pending):
            if cycle.number == number:
                del self.pending[index]
                return cycle
        return None

    def mark_default(self) -> None:
        """A default now: every cycle in its window defaulted."""
        for cycle in self.pending:
            cycle.defaulted = True

    def inputs(self, on_time_repayments: int, late_repayments: int) -> array:
        """The model's inputs, in the order of :data:`CREDIT_INPUTS`."""
        limit = max(self.limit_minor, 1)
        balance = self.balance_minor
        statements = max(self.statements, 1)
        repayments = on_time_repayments + late_repayments
        utilisations = (balance / limit, self.utilisation_previous,
                        self.utilisation_sum / statements)
        values = array("f", (
            math.log(limit),
            *utilisations,
            self.paid_share_last,
            self.paid_share_sum / self.cycles if self.cycles else 1.0,
            math.log1p(self.paid_last_minor / 100),
            late_repayments / repayments if repayments else 0.0,
            float(self.past_due),
            float(self.past_due_previous),
            self.past_due_sum / statements,
        ))
        for utilisation in utilisations:
            values.extend(hinges(utilisation, _UTILISATION_KNOTS))
        return values


class DefaultModel(AveragedLogisticRegression):
    """``score_one(inputs) -> P(default)``; ``learn_one(inputs, defaulted)``.

    river's logistic regression on standardised inputs, scored by its average over the last
    ``average_window`` learning steps: each step learns one line's cycle, and the average of
    those noisy steps comes close to a batch fit of the same outcomes (UCI clients,
    prequential: AUC 0.742 -> 0.747, where the batch regression reaches 0.750; defaults among
    the safest 40 % 11.0 % -> 10.5 %; ``benchmarks/uci_reference.py``). Cold until it has
    learned ``min_defaults`` defaults and ``min_repaid`` repaid cycles.
    """

    def __init__(self, learning_rate: float = 0.002, min_defaults: int = 30,
                 min_repaid: int = 100, average_window: int = 5_000) -> None:
        super().__init__(CREDIT_INPUTS, learning_rate, 0.0, average_window)
        self.min_defaults = min_defaults
        self.min_repaid = min_repaid
        self.defaults_seen = 0
        self.repaid_seen = 0

    @property
    def warm(self) -> bool:
        return self.defaults_seen >= self.min_defaults and self.repaid_seen >= self.min_repaid

    def score_one(self, inputs: array) -> float:
        return probability(self.logits(inputs)[1])

    def learn_one(self, inputs: array, defaulted: bool) -> None:
        if defaulted:
            self.defaults_seen += 1
        else:
            self.repaid_seen += 1
        super().learn_one(inputs, defaulted)


def credit_factors(credit: CreditHistory, on_time: int, late: int) -> tuple[list[str], list[str]]:
    """What in a line's record raises its default risk, and what lowers it, in words an
    analyst or the user could be told (strongest first): the reasons behind a freeze, a
    raise, and every default-risk review.

    >>> history = CreditHistory()
    >>> history.add_statement(95_000, 100_000, past_due=2)
    >>> credit_factors(history, on_time=1, late=2)
    (['2 billing cycles past due', 'owes 95% of the limit', '2 of 3 repayments late'], [])
    """
    risks: list[str] = []
    strengths: list[str] = []
    if credit.past_due:
        risks.append(f"{credit.past_due} billing cycle{'s' if credit.past_due > 1 else ''} "
                     "past due")
    elif credit.past_due_sum:
        risks.append(f"behind on earlier bills ({credit.past_due_sum} cycles past due in all)")
    else:
        statements = credit.statements
        strengths.append(f"never past due in {statements} statement"
                         f"{'s' if statements != 1 else ''}")
    utilisation = credit.utilisation
    if utilisation >= _HIGH_UTILISATION:
        risks.append(f"owes {utilisation:.0%} of the limit")
    elif 0 < utilisation <= _LOW_UTILISATION:
        strengths.append(f"owes {utilisation:.0%} of the limit")
    if credit.cycles:
        share = credit.paid_share_last
        if share < _LOW_PAID_SHARE:
            risks.append(f"paid {share:.0%} of the last bill")
        elif share >= 1:
            strengths.append("paid the last bill in full")
    if late:
        risks.append(f"{late} of {on_time + late} repayments late")
    elif on_time:
        strengths.append(f"{on_time} repayments, all on time")
    return risks, strengths


#: Where a line's record starts to count for or against it in the reasons given.
_HIGH_UTILISATION = 0.9
_LOW_UTILISATION = 0.5
_LOW_PAID_SHARE = 0.1
