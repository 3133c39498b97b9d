"""Metrics and the handbook's protocol, against brute-force definitions and hand examples."""

from __future__ import annotations

import random

import pytest

from pipeline.evaluation import (
    ScoredPurchase,
    average_precision,
    card_precision_at_k,
    handbook_test_set,
    roc_auc,
)


def _brute_auc(labels: list[bool], scores: list[float]) -> float:
    pairs = [(p, n) for p, lp in zip(scores, labels, strict=True) if lp
             for n, ln in zip(scores, labels, strict=True) if not ln]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def _brute_ap(labels: list[bool], scores: list[float]) -> float:
    """Precision at each distinct threshold, weighted by the recall it adds."""
    positives = sum(labels)
    total, previous = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        chosen = [label for label, score in zip(labels, scores, strict=True) if score >= threshold]
        recall = sum(chosen) / positives
        total += (recall - previous) * sum(chosen) / len(chosen)
        previous = recall
    return total


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_average_precision_equal_their_definitions(seed: int) -> None:
    rng = random.Random(seed)
    labels = [rng.random() < 0.2 for _ in range(300)]
    labels[0], labels[1] = True, False
    scores = [round(rng.random() + 0.3 * label, 2) for label in labels]  # ties included
    assert roc_auc(labels, scores) == pytest.approx(_brute_auc(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(_brute_ap(labels, scores))


def _purchase(customer: str, day: int, score: float, fraud: bool) -> ScoredPurchase:
    return ScoredPurchase(f"{customer}-{day}-{score}", customer, day, score, fraud)


def test_card_precision_counts_cards_once_and_drops_those_already_detected() -> None:
    test = [
        _purchase("a", 0, 0.9, True), _purchase("a", 0, 0.1, False),  # card a: max 0.9, fraud
        _purchase("b", 0, 0.8, False),
        _purchase("a", 1, 0.95, True),  # detected on day 0: not counted again on day 1
        _purchase("c", 1, 0.7, True), _purchase("d", 1, 0.6, False),
    ]
    # day 0: top-2 cards a (fraud), b -> 1/2; day 1: c (fraud), d -> 1/2.
    assert card_precision_at_k(test, k=2) == pytest.approx(0.5)


def test_the_test_set_leaves_out_customers_known_compromised_a_delay_earlier() -> None:
    history = [
        _purchase("known", 0, 0.5, True),       # fraud in training: out of every test day
        _purchase("late", 7, 0.5, True),        # fraud on the first delay day
        *[_purchase(c, 14, 0.1, False) for c in ("known", "late", "fresh")],
        *[_purchase(c, 15, 0.1, False) for c in ("known", "late", "fresh")],
    ]
    test = handbook_test_set(history, train_start_day=0)
    by_day = {(p.day, p.customer_id) for p in test}
    # Day 14 (the first test day) knows the training frauds; day 15 also knows day 7's.
    assert by_day == {(14, "late"), (14, "fresh"), (15, "fresh")}
