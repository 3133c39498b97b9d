"""Ranking metrics and the Fraud Detection Handbook's evaluation protocol, in plain Python.

``roc_auc`` and ``average_precision`` follow scikit-learn's definitions (ties averaged for the
AUC; AP as the step-wise area under the precision-recall curve). ``card_precision_at_k`` and
``handbook_test_set`` follow the handbook's chapter 3 and 4 code: per test day, the customers
whose fraud was already known ``delay`` days earlier are removed, the day's transactions are
grouped by customer (maximum score, any fraud), and the precision among the top ``k`` customers
is averaged over the days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.timeutil import DAY, parse_time

__all__ = [
    "DELAY_DAYS",
    "FIRST_DAY",
    "TEST_DAYS",
    "TEST_WEEK_START",
    "TRAIN_DAYS",
    "TRAIN_START_DAY",
    "ScoredPurchase",
    "average_precision",
    "card_precision_at_k",
    "credit_metrics",
    "epoch_day",
    "first_test_day",
    "handbook_test_set",
    "precision_recall_curve",
    "ranking_metrics",
    "roc_auc",
    "roc_curve",
    "train_start_day",
    "weekly_metrics",
]

#: The handbook's first day, 2018-04-01, in days since the epoch: days are counted from it.
FIRST_DAY = parse_time("2018-04-01T00:00:00Z") // DAY
#: The first day of the handbook's chapter 3 test week (2018-08-08..14).
TEST_WEEK_START = "2018-08-08"
#: The protocol's two weeks before its test week (training, then the label delay), and the
#: test week.
TRAIN_DAYS = DELAY_DAYS = TEST_DAYS = 7


def epoch_day(date: str) -> int:
    """A UTC date, ``YYYY-MM-DD``, in days since the epoch.

    >>> epoch_day(TEST_WEEK_START) - FIRST_DAY
    129
    """
    return parse_time(f"{date}T00:00:00+00:00") // DAY


def train_start_day(test_week_start: str) -> int:
    """The first (training) day of the protocol whose test week starts on ``test_week_start``
    (a UTC date, ``YYYY-MM-DD``), in days since :data:`FIRST_DAY`.

    >>> train_start_day(TEST_WEEK_START)  # the handbook's 2018-07-25
    115
    """
    return epoch_day(test_week_start) - FIRST_DAY - TRAIN_DAYS - DELAY_DAYS


def first_test_day(train_start_day: int) -> int:
    """The first test day of the protocol whose training starts on ``train_start_day``: after
    the training week and the week its labels take to arrive.

    >>> first_test_day(train_start_day(TEST_WEEK_START)) + FIRST_DAY == epoch_day(TEST_WEEK_START)
    True
    """
    return train_start_day + TRAIN_DAYS + DELAY_DAYS


#: The handbook's chapter 3 protocol, as days since its first day.
TRAIN_START_DAY = train_start_day(TEST_WEEK_START)


@dataclass(frozen=True, slots=True)
class ScoredPurchase:
    transaction_id: str
    customer_id: str
    day: int  # days since the history's first day
    score: float
    fraud: bool
    scenario: int | None = 0  # None: the history does not say


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half).

    >>> roc_auc([False, False, True, True], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum, positives, index = 0.0, 0, 0
    while index < len(order):
        end = index
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[index]]:
            end += 1
        average_rank = (index + end) / 2 + 1
        for at in range(index, end + 1):
            if labels[order[at]]:
                rank_sum += average_rank
                positives += 1
        index = end + 1
    negatives = len(scores) - positives
    if not positives or not negatives:
        return float("nan")
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _descending_steps(labels: Sequence[bool], scores: Sequence[float]
                      ) -> list[tuple[float, int, int]]:
    """(threshold, true positives, false positives) at each distinct score, highest first."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    steps: list[tuple[float, int, int]] = []
    true_pos = false_pos = 0
    for rank, i in enumerate(order):
        if labels[i]:
            true_pos += 1
        else:
            false_pos += 1
        if rank + 1 == len(order) or scores[order[rank + 1]] != scores[i]:
            steps.append((scores[i], true_pos, false_pos))
    return steps


def average_precision(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Sum over thresholds of (recall gained) x precision, as scikit-learn computes it.

    >>> round(average_precision([False, False, True, True], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    positives = sum(labels)
    if not positives:
        return float("nan")
    total, previous_recall = 0.0, 0.0
    for _, true_pos, false_pos in _descending_steps(labels, scores):
        recall = true_pos / positives
        total += (recall - previous_recall) * true_pos / (true_pos + false_pos)
        previous_recall = recall
    return total


def roc_curve(labels: Sequence[bool], scores: Sequence[float]) -> tuple[list[float], list[float]]:
    positives = sum(labels)
    negatives = len(labels) - positives
    steps = _descending_steps(labels, scores)
    return ([0.0] + [fp / negatives for _, _, fp in steps],
            [0.0] + [tp / positives for _, tp, _ in steps])


def precision_recall_curve(labels: Sequence[bool], scores: Sequence[float]
                           ) -> tuple[list[float], list[float]]:
    positives = sum(labels)
    steps = _descending_steps(labels, scores)
    return ([tp / positives for _, tp, _ in steps], [tp / (tp + fp) for _, tp, fp in steps])


def handbook_test_set(
    purchases: Iterable[ScoredPurchase], train_start_day: int, train_days: int = TRAIN_DAYS,
    delay_days: int = DELAY_DAYS, test_days: int = TEST_DAYS,
) -> list[ScoredPurchase]:
    """The handbook's test set: the ``test_days`` after training plus ``delay_days``, without
    the customers whose fraud was known by then (``get_train_test_set``)."""
    by_day: dict[int, list[ScoredPurchase]] = defaultdict(list)
    for purchase in purchases:
        by_day[purchase.day].append(purchase)
    known = {p.customer_id for day in range(train_start_day, train_start_day + train_days)
             for p in by_day[day] if p.fraud}
    test: list[ScoredPurchase] = []
    first_test_day = train_start_day + train_days + delay_days
    for offset in range(test_days):
        known |= {p.customer_id for p in by_day[train_start_day + train_days + offset - 1]
                  if p.fraud}
        test.extend(p for p in by_day[first_test_day + offset] if p.customer_id not in known)
    return test


def ranking_metrics(test: Sequence[ScoredPurchase]) -> dict[str, float]:
    """AUC ROC, Average Precision and Card Precision@100 of a test set."""
    labels, scores = [p.fraud for p in test], [p.score for p in test]
    return {
        "auc_roc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "card_precision_at_100": card_precision_at_k(test, 100),
        "test_transactions": len(test),
        "test_frauds": sum(labels),
    }


def weekly_metrics(
    purchases: Iterable[ScoredPurchase], train_start_day: int,
    measure: Callable[[list[ScoredPurchase]], dict[str, Any]] = ranking_metrics,
) -> dict[int, dict[str, Any]]:
    """``measure`` (:func:`ranking_metrics`) of the test set of every protocol aligned with the
    one whose training starts on ``train_start_day`` (shifted by whole weeks) that the
    purchases cover from its training week's first day to its test week's last: training
    start -> metrics, in order. The spread across weeks shows how much one week's figures say
    about another's.

    >>> days = [ScoredPurchase(f"t{d}", f"c{d}", d, 0.5, d % 5 == 0) for d in range(3, 40)]
    >>> list(weekly_metrics(days, train_start_day=10))  # 3..23, 10..30, 17..37 fit; 24..44 not
    [3, 10, 17]
    """
    by_day: dict[int, list[ScoredPurchase]] = defaultdict(list)
    for purchase in purchases:
        by_day[purchase.day].append(purchase)
    if not by_day:
        return {}
    span = TRAIN_DAYS + DELAY_DAYS + TEST_DAYS
    first, last = min(by_day), max(by_day)
    # Shifted by whole test weeks, so that the test weeks follow one another.
    start = train_start_day - (train_start_day - first) // TEST_DAYS * TEST_DAYS
    weeks: dict[int, dict[str, Any]] = {}
    while start + span - 1 <= last:
        covered = [p for day in range(start, start + span) for p in by_day.get(day, ())]
        weeks[start] = measure(handbook_test_set(covered, start))
        start += TEST_DAYS
    return weeks


def card_precision_at_k(test: Iterable[ScoredPurchase], k: int = 100) -> float:
    """Mean over days of the share of compromised cards among the day's top ``k`` cards; cards
    detected on an earlier day are left out of later days (``card_precision_top_k``)."""
    by_day: dict[int, list[ScoredPurchase]] = defaultdict(list)
    for purchase in test:
        by_day[purchase.day].append(purchase)
    detected: set[str] = set()
    precisions = []
    for day in sorted(by_day):
        cards: dict[str, tuple[float, bool]] = {}
        for p in by_day[day]:
            if p.customer_id in detected:
                continue
            score, fraud = cards.get(p.customer_id, (float("-inf"), False))
            cards[p.customer_id] = (max(score, p.score), fraud or p.fraud)
        # Ties broken by customer id, so the metric is a function of the scores alone.
        top = sorted(cards.items(), key=lambda item: (-item[1][0], item[0]))[:k]
        hits = [card for card, (_, fraud) in top if fraud]
        precisions.append(len(hits) / k)
        detected.update(hits)
    return sum(precisions) / len(precisions) if precisions else float("nan")


def credit_metrics(
    latest_risk: dict[str, float | None],
    defaulted: dict[str, bool],
    raised: set[str],
    frozen: set[str],
    shares: Sequence[float] = (0.2, 0.4, 0.6),
    target_default_rate: float = 0.06,
) -> dict[str, Any]:
    """The credit side's figures: the default ranking of every client a warm model scored,
    and the default rates among the raised and the frozen (all clients count for the shares).
    ``largest_safe_share``: the largest share of the scored clients, safest first, among whom
    at most ``target_default_rate`` defaulted -- how far raises could go on this ranking.

    >>> m = credit_metrics({"a": 0.1, "b": 0.9, "c": None}, {"a": False, "b": True, "c": True},
    ...                    raised={"a"}, frozen={"b"})
    >>> m["auc_roc"], m["raised_share"], m["raised_default_rate"], m["frozen_precision"]
    (1.0, 0.3333333333333333, 0.0, 1.0)
    >>> m["largest_safe_share"]
    0.5
    """
    scored = sorted((risk, user) for user, risk in latest_risk.items() if risk is not None)
    labels = [defaulted[user] for _, user in scored]
    safe = defaults = 0
    for count, label in enumerate(labels, 1):
        defaults += label
        if defaults <= target_default_rate * count:
            safe = count
    values = [risk for risk, _ in scored]
    clients = len(defaulted)
    defaulters = sum(defaulted.values())

    def rate(users: Iterable[str]) -> float:
        chosen = [defaulted[user] for user in users]
        return sum(chosen) / len(chosen) if chosen else float("nan")

    return {
        "clients": clients,
        "defaulters": defaulters,
        "base_rate": defaulters / clients if clients else float("nan"),
        "scored": len(scored),
        "auc_roc": roc_auc(labels, values),
        "average_precision": average_precision(labels, values),
        "raised": len(raised),
        "raised_share": len(raised) / clients if clients else float("nan"),
        "raised_default_rate": rate(raised),
        "frozen": len(frozen),
        "frozen_precision": rate(frozen),
        "safest_share_rates": [
            (share, rate(user for _, user in scored[: int(share * len(scored))]))
            for share in shares
        ],
        "target_default_rate": target_default_rate,
        "largest_safe_share": safe / len(scored) if scored else float("nan"),
    }
