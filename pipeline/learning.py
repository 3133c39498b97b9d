"""Supervised learning from late labels: what a purchase looked like, and what it turned out to be.

A fraud label arrives days or weeks after its purchase; a legitimate purchase never gets one.
:class:`PendingLabels` therefore keeps each purchase's model inputs until either a fraud label
names it (learned as fraud at once) or ``delay`` has passed in event time without one (learned
as legitimate). Nothing is learned before its label is known, so replays and live traffic learn
the same things in the same order. Fraud is rare (under 1 %), so only a deterministic sample of
legitimate purchases is learned from (``negative_share``, by id hash): a ranking model needs their
variety, not their number, and learning time shrinks tenfold. The odds it gives are then
inflated by a constant factor (1 / share), which a ranking does not mind; alert thresholds apply to
the risk score (:class:`pipeline.scoring.RiskScorer`). The exceptions are the legitimate
purchases at a merchant with known frauds (:func:`at_risky_merchant`; 3 % of the handbook's):
every one is learned, weighted by the share, so the odds stay those of a uniform sample in
expectation. They are what teaches the classifier how much a merchant's known frauds mean, and
sampled like the others they were too few for weeks (handbook dev file, pure core, AP of the
test weeks of its first two months: 0.50, 0.65, 0.60, 0.48, 0.58, 0.68 -> 0.63, 0.65, 0.56,
0.70, 0.70, 0.72; docs/quality.md).

:class:`FraudClassifier` is river's logistic regression on standardised, fixed transforms of
the purchase features -- amounts against the user's own history (its means, and its medians,
which a compromised card's burst of large purchases cannot move), velocity, merchant risk
(from the frauds its cards' own habits do not explain, and how long its latest known
purchases have all been frauds), the unsupervised parts of the risk score -- plus spline
terms of the amount, of its ratio to the user's median and of the merchant's fraud run's age,
so a linear model can bend. It is an :class:`AveragedLogisticRegression`, as is the credit
side's default model (:mod:`pipeline.credit`).
"""

from __future__ import annotations

import math
import struct
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from math import log, log1p
from operator import mul

import numpy as np
from river import linear_model, optim, preprocessing

__all__ = ["INPUTS", "AveragedLogisticRegression", "FraudClassifier", "PendingLabels",
           "hinges", "probability"]

#: Knots of the amount's spline terms, every quarter decade (x1.78) from 1.00 to 10,000.00 in
#: minor units: fine enough for a linear model to bend at an amount threshold (a fixed-amount
#: fraud pattern), which half-decade knots blurred (AP 0.652 -> 0.675 on the handbook's week).
_AMOUNT_KNOTS = tuple(math.log(10.0 ** (power / 4)) for power in range(8, 25))
#: Knots of the spline terms of the amount's ratio to the user's 30-day median, every half
#: octave from x1.41 to x8: how far above its usual a purchase is matters by steps a linear
#: model cannot draw (handbook week, pure core: AP 0.687 -> 0.705).
_RATIO_KNOTS = tuple(index * math.log(2.0) / 2 for index in range(1, 7))
#: Knots of the spline terms of a merchant's fraud run's age (``merchant_fraud_run_days``),
#: every half week across the window its known risk covers, 7 to 35 days back: a run young
#: enough is an ongoing compromise, an old one has likely been fixed, and a linear model needs
#: the bend. Handbook, pure core: AP 0.734 -> 0.748 on its week, higher on all seven others;
#: knots every 2 or 7 days: 0.746 and 0.747.
_RUN_KNOTS = tuple(3.5 * index for index in range(2, 11))
#: The inputs kept for a purchase labelled fraud: none (see :class:`PendingLabels`).
_NO_INPUTS = array("f")
#: Beyond this logit river's sigmoid is 0 or 1.
_LOGIT_LIMIT = 30.0

INPUTS = (
    "log_amount", "log_to_mean_1d", "log_to_mean_7d", "log_to_mean_30d",
    "log_to_median_7d", "log_to_median_30d",
    *(f"median_30d_over_{index}" for index in range(len(_RATIO_KNOTS))), "amount_z",
    "log_count_1h", "log_count_24h", "log_count_7d", "log_count_30d", "log_hours_since",
    "log_unusual_7d",
    "new_merchant", "night", "weekend", "deviation", "velocity", "anomaly",
    "merchant_ordinary_risk_1d", "merchant_ordinary_risk_7d", "merchant_ordinary_risk_30d",
    "merchant_ordinary_risk_latest",
    "log_merchant_count_1d", "log_merchant_count_7d", "log_merchant_count_30d",
    "merchant_fraud_run_days", "log_merchant_fraud_run_length",
    *(f"fraud_run_over_{index}" for index in range(len(_RUN_KNOTS))),
    *(f"amount_over_{index}" for index in range(len(_AMOUNT_KNOTS))),
)

#: Packs the inputs as array("f") holds them (native float32).
_PACK_INPUTS = struct.Struct(f"{len(INPUTS)}f").pack


def model_inputs(features: Mapping[str, float], deviation: float, velocity: float,
                 anomaly: float) -> array:
    """The classifier's inputs, in the order of :data:`INPUTS`, as a compact array."""
    amount = features["amount_minor"]
    log_amount = log1p(amount)
    to_median = log_amount - log1p(features["prior_median_30d"])
    log_count_24h, log_count_7d = log(features["count_24h"]), log(features["count_7d"])
    log_count_30d = log(features["count_30d"])
    values = [
        log_amount,
        # Against the mean of the window's purchases before this one (this one if none).
        log_amount - log1p(_prior_mean(amount, features["sum_24h"], features["count_24h"])),
        log_amount - log1p(_prior_mean(amount, features["sum_7d"], features["count_7d"])),
        log_amount - log1p(_prior_mean(amount, features["sum_30d"], features["count_30d"])),
        log_amount - log1p(features["prior_median_7d"]),
        to_median,
        *hinges(to_median, _RATIO_KNOTS),
        max(-10.0, min(10.0, features["amount_z"])),
        log(features["count_1h"]), log_count_24h, log_count_7d, log_count_30d,
        log1p(features["hours_since_previous"]),
        # Earlier purchases this week at 3x the usual or more: a takeover repeats itself
        # (handbook week, pure core: AP 0.721 -> 0.724, limit cuts 59 % -> 62 % right).
        log1p(features["unusual_7d"]),
        features["new_merchant"], features["night"], features["weekend"],
        deviation, velocity, anomaly,
        # Merchant risk from the frauds that point at the merchant: with every fraud counted,
        # a stolen card's spree taints the ordinary shops it passed through (handbook week,
        # pure core: AP 0.705 -> 0.721; both kinds as inputs: 0.705).
        features["merchant_ordinary_risk_1d"], features["merchant_ordinary_risk_7d"],
        features["merchant_ordinary_risk_30d"], features["merchant_ordinary_risk_latest"],
        log1p(features["merchant_count_1d"]), log1p(features["merchant_count_7d"]),
        log1p(features["merchant_count_30d"]),
        features["merchant_fraud_run_days"], log1p(features["merchant_fraud_run_length"]),
        *hinges(features["merchant_fraud_run_days"], _RUN_KNOTS),
        *hinges(log_amount, _AMOUNT_KNOTS),
    ]
    packed = array("f")
    packed.frombytes(_PACK_INPUTS(*values))  # twice as fast as array("f", values)
    return packed


#: Where the inputs say whether the purchase's merchant has known frauds.
_RISK_30D, _RISK_LATEST, _RUN_DAYS = (INPUTS.index(name) for name in (
    "merchant_ordinary_risk_30d", "merchant_ordinary_risk_latest", "merchant_fraud_run_days"))


def at_risky_merchant(inputs: array) -> bool:
    """Whether a purchase's merchant had known frauds when it was scored (once per purchase:
    written out, not a generator, at a quarter of the cost)."""
    return inputs[_RISK_30D] > 0.0 or inputs[_RISK_LATEST] > 0.0 or inputs[_RUN_DAYS] > 0.0


def _prior_mean(amount: float, total: float, count: float) -> float:
    """Mean amount of a window's purchases before this one, from its sum and count including
    this one (this one's amount if there are none)."""
    return (total - amount) / (count - 1.0) if count >= 2.0 else amount


def hinges(value: float, knots: tuple[float, ...]) -> list[float]:
    """Spline terms ``max(0, value - knot)`` for sorted ``knots``: the differences to the knots
    below ``value``, then zeros."""
    below = bisect_left(knots, value)
    return [value - knot for knot in knots[:below]] + [0.0] * (len(knots) - below)


class AveragedLogisticRegression:
    """river's logistic regression on standardised inputs, read as two linear models: as it
    is, and its average over the last ``average_window`` learning steps (Polyak averaging,
    uniform until the window is full). ``logits(inputs)`` gives both.

    Scoring folds river's scaler into the weights after each learning step -- ``w * (x -
    mean) / std`` is ``(w / std) * x - w * mean / std`` -- and takes a C-level dot product,
    instead of river's two dictionary passes over the inputs: the same probability to rounding
    (a unit test holds it to river's). While the subclass is cold (``warm`` false) the average
    restarts at every step, so it only averages a model that is already usable.
    """

    def __init__(self, names: tuple[str, ...], learning_rate: float, l2: float,
                 average_window: int):
        self.names = names
        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), l2=l2)
        self.average_window = average_window
        self.learned = 0
        self._folded: tuple[array, float] | None = None
        #: The folded model averaged since it became warm, and over how many steps.
        self._averaged: tuple[array, float] | None = None
        self._averaged_steps = 0

    @property
    def warm(self) -> bool:
        return True

    def logits(self, inputs: array) -> tuple[float, float]:
        """The model's logit for ``inputs`` as it is, and its average's."""
        folded = self._folded
        if folded is None:
            folded = self._folded = self._fold()
        weights, intercept = folded
        logit = intercept + sum(map(mul, weights, inputs))
        averaged = self._averaged
        if averaged is None:
            return logit, logit
        weights, intercept = averaged
        return logit, intercept + sum(map(mul, weights, inputs))

    def learn_one(self, inputs: array, label: bool, weight: float = 1.0) -> None:
        self.model.learn_one(dict(zip(self.names, inputs, strict=True)), label, w=weight)
        self.learned += 1
        self._folded = folded = self._fold()
        self._average(*folded)

    def _average(self, weights: array, intercept: float) -> None:
        """Fold the model after a learning step into its average (restarted while cold)."""
        if not self.warm or self._averaged is None:
            self._averaged, self._averaged_steps = (array("d", weights), intercept), 1
            return
        self._averaged_steps += 1
        rate = max(1.0 / self._averaged_steps, 1.0 / self.average_window)
        keep = 1.0 - rate
        averaged, averaged_intercept = self._averaged
        view = np.frombuffer(averaged)  # the array's own memory, updated in place
        view *= keep
        view += rate * np.frombuffer(weights)
        self._averaged = (averaged, keep * averaged_intercept + rate * intercept)

    def _fold(self) -> tuple[array, float]:
        scaler, regression = self.model["StandardScaler"], self.model["LogisticRegression"]
        weights = regression.weights
        folded = array("d")
        intercept = regression.intercept
        for name in self.names:
            variance = scaler.vars.get(name, 0.0)
            # river's scaler maps a feature with no variance (yet) to 0.
            weight = weights.get(name, 0.0) / math.sqrt(variance) if variance else 0.0
            folded.append(weight)
            intercept -= weight * scaler.means.get(name, 0.0)
        return folded, intercept

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_folded": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._folded = None


def probability(logit: float) -> float:
    """The sigmoid, saturated as river's is."""
    if logit < -_LOGIT_LIMIT:
        return 0.0
    if logit > _LOGIT_LIMIT:
        return 1.0
    return 1.0 / (1.0 + math.exp(-logit))


class FraudClassifier(AveragedLogisticRegression):
    """``score_one(inputs) -> P(fraud)``; ``learn_one(inputs, fraud)``. Cold until it has seen
    ``min_frauds`` frauds: until then it scores 0 and the rules alone decide.

    A purchase gets the more cautious of two opinions: the model as it is, and its average
    over the last ``average_window`` learning steps. One SGD step on a rare fraud can swing
    the weights, and the average lags behind a model still forming or a drift: a high score
    needs both (handbook week, pure core: AP 0.727 -> 0.734, limit cuts 1,716 with 61.5 %
    caused by a fraud -> 1,463 with 71.4 %; the average alone: AP 0.739 but 1,954 cuts,
    54.6 %). The learning rate, 0.01, was chosen on all twenty test weeks of the handbook's dev
    file, where 0.005 does as well (docs/quality.md).
    """

    def __init__(self, learning_rate: float = 0.01, l2: float = 1e-5, min_frauds: int = 30,
                 average_window: int = 1_000):
        super().__init__(INPUTS, learning_rate, l2, average_window)
        self.min_frauds = min_frauds
        self.frauds_seen = 0

    @property
    def warm(self) -> bool:
        return self.frauds_seen >= self.min_frauds

    def score_one(self, inputs: array) -> float:
        if not self.warm:
            return 0.0
        return probability(min(self.logits(inputs)))

    def learn_one(self, inputs: array, fraud: bool, weight: float = 1.0) -> None:
        self.frauds_seen += fraud
        super().learn_one(inputs, fraud, weight)


class PendingLabels:
    """Purchases waiting for a label, oldest first.

    Each one gets the next sequence number, and what was added and removed since the last
    checkpoint is kept (:attr:`added`, :attr:`removed`), so a checkpoint writes only that.

    >>> pending = PendingLabels(delay=10, negative_share=1.0)
    >>> pending.add(0, 1, array("f", [1.0])); pending.add(5, 2, array("f", [2.0]))
    >>> pending.confirm(2)  # a fraud label for purchase 2
    array('f', [2.0])
    >>> list(pending.matured(10))  # purchase 1 is not yet past its delay at 10 ...
    []
    >>> list(pending.matured(11))  # ... and is legitimate after it
    [(array('f', [1.0]), 1.0)]
    """

    def __init__(self, delay: int, negative_share: float,
                 informative: Callable[[array], bool] | None = None) -> None:
        self.delay = delay
        self.negative_share = negative_share
        #: Says which legitimate purchases are all learned (weighted by the share), not sampled.
        self.informative = informative
        self._threshold = int(negative_share * 2**16)
        #: id hash -> (sequence number, due time, inputs)
        self._inputs: dict[int, tuple[int, int, array]] = {}
        #: (due time, id hash, sequence number) in the order added. An entry whose purchase
        #: was labelled fraud stays until it is due, as it holds back the entries behind it.
        self._queue: deque[tuple[int, int, int]] = deque()
        #: The next sequence number.
        self.sequence = 0
        #: Since the last checkpoint: sequence number -> (due time, id hash, inputs) written
        #: (no inputs: labelled fraud, waiting only to be due), and those removed.
        self.added: dict[int, tuple[int, int, array]] = {}
        self.removed: set[int] = set()

    def __len__(self) -> int:
        return len(self._inputs)

    def add(self, event_time: int, id_hash: int, inputs: array) -> None:
        due = event_time + self.delay
        sequence = self.sequence
        self.sequence = sequence + 1
        self._inputs[id_hash] = (sequence, due, inputs)
        self._queue.append((due, id_hash, sequence))
        self.added[sequence] = (due, id_hash, inputs)

    def restore(self, entries: Iterable[tuple[int, int, int, array]], sequence: int) -> None:
        """Wait again for ``(sequence number, due time, id hash, inputs)`` entries, in the
        order of their numbers, as a checkpoint wrote them; ``sequence``: the next number."""
        for number, due, id_hash, inputs in entries:
            self._queue.append((due, id_hash, number))
            if inputs:
                self._inputs[id_hash] = (number, due, inputs)
        self.sequence = sequence

    def checkpointed(self) -> None:
        self.added.clear()
        self.removed.clear()

    def confirm(self, id_hash: int) -> array | None:
        """The inputs of a purchase just labelled fraud (None if no longer waiting)."""
        found = self._inputs.pop(id_hash, None)
        if found is None:
            return None
        sequence, due, inputs = found
        self.added[sequence] = (due, id_hash, _NO_INPUTS)  # waits on without its inputs
        return inputs

    def matured(self, now: int) -> Iterator[tuple[array, float]]:
        """(inputs, weight) of the purchases to learn as legitimate, their delay over before
        ``now`` with no label: every informative one, weighted by the share, and the share of
        the others (by id hash), weighted 1 -- the same odds, in expectation, as learning a
        uniform sample, but with every one of the rare purchases that teach the most."""
        queue, inputs, added = self._queue, self._inputs, self.added
        share, threshold, informative = self.negative_share, self._threshold, self.informative
        while queue and queue[0][0] < now:
            _, id_hash, sequence = queue.popleft()
            written = added.pop(sequence, None)
            if written is None or not written[2]:  # stored before (a fraud mark may not be)
                self.removed.add(sequence)
            found = inputs.pop(id_hash, None)
            if found is None:
                continue
            vector = found[2]
            if informative is not None and informative(vector):
                yield vector, share
            elif (id_hash & 0xFFFF) < threshold:
                yield vector, 1.0
