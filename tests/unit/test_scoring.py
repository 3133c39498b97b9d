"""The anomaly model's leaf walk against river's own score_one and learn_one,
and how the risk score combines its parts before and after the classifier is warm."""

from __future__ import annotations

import pickle
import random

import pytest

from pipeline.config import RiskConfig
from pipeline.demo import generate_demo_history
from pipeline.engine import RiskEngine
from pipeline.events import event_from_mapping
from pipeline.learning import FraudClassifier
from pipeline.scoring import AnomalyScorer, RiskScorer


def random_purchase(rng: random.Random) -> dict[str, float]:
    return {
        "amount_minor": rng.lognormvariate(8.0, 1.5),
        "amount_to_typical": rng.expovariate(1.0),
        "count_1h": float(rng.randint(1, 6)),
        "new_merchant": float(rng.random() < 0.3),
        "hours_since_previous": rng.expovariate(1 / 30),
    }


def masses(scorer: AnomalyScorer) -> list[tuple[int, int]]:
    return [(node.l_mass, node.r_mass)
            for tree in scorer.model.trees for node in tree.iter_dfs()]


@pytest.mark.parametrize("seed", range(3))
def test_leaf_walk_scores_and_learns_exactly_as_river(seed: int) -> None:
    rng = random.Random(seed)
    # A small window, so the run crosses many pivots; its size limit stops some score walks early.
    rivers = AnomalyScorer(seed=seed, n_trees=4, height=6, window_size=30)
    fused = AnomalyScorer(seed=seed, n_trees=4, height=6, window_size=30)
    scores = []
    for step in range(400):
        x = random_purchase(rng)
        expected = rivers.model.score_one(rivers.transform(x))
        rivers.model.learn_one(rivers.transform(x))
        assert fused.score_one(x) == expected, step  # with the window's counts still pending
        assert fused.score_learn_one(x) == expected, step
        scores.append(expected)
        if step in (100, 110):  # twice in a window: reading river's model updates its masses
            assert masses(fused) == masses(rivers)
        if step == 211:  # mid-window: the copy must carry the counter and both masses on
            fused = pickle.loads(pickle.dumps(fused))
    assert masses(fused) == masses(rivers)
    assert fused.model.counter == rivers.model.counter
    assert len(set(scores[30:])) > 20  # the scores after the first window really vary


def test_a_snapshot_from_before_the_leaf_walk_loads_and_scores_the_same() -> None:
    rng = random.Random(7)
    rivers = AnomalyScorer(seed=7, n_trees=4, height=6, window_size=30)
    for _ in range(45):
        rivers.model.learn_one(rivers.transform(random_purchase(rng)))
    legacy = AnomalyScorer.__new__(AnomalyScorer)
    legacy.__setstate__({"model": pickle.loads(pickle.dumps(rivers.model))})  # the old layout
    for step in range(60):
        x = random_purchase(rng)
        expected = rivers.model.score_one(rivers.transform(x))
        rivers.model.learn_one(rivers.transform(x))
        assert legacy.score_learn_one(x) == expected, step


def demo_purchase_features(purchases: int) -> list[dict[str, float]]:
    """Features of real purchases, as the engine computes them."""
    engine = RiskEngine()
    seen: list[dict[str, float]] = []
    engine.observer = lambda _tx, features, _scored: seen.append(dict(features))
    for record in generate_demo_history(users=40, months=1, seed=3).events:
        engine.process(event_from_mapping(record))
        if len(seen) >= purchases:
            break
    return seen


def test_the_rules_decide_while_the_classifier_is_cold_and_it_decides_once_warm() -> None:
    config = RiskConfig()
    scorer = RiskScorer(config, classifier=FraudClassifier(min_frauds=1))
    purchases = demo_purchase_features(200)
    # Velocity and the anomaly model push up the score of a cold scorer (a noisy-OR) ...
    cold = [scorer.explain_one(x) for x in purchases]
    for part in cold:
        assert part.supervised == 0.0
        assert part.score == pytest.approx(1.0 - (1.0 - part.deviation)
                                           * (1.0 - config.anomaly_weight * part.anomaly)
                                           * (1.0 - config.velocity_weight * part.velocity))
    assert all(part.score > part.deviation for part in cold if part.anomaly > 0)
    # ... but a warm classifier has them as inputs: it alone scores, with the deviation from
    # the user's own habits as a guard rail.
    for index, part in enumerate(cold[:40]):
        scorer.learn_label(part.inputs, index % 4 == 0)
    warm = [scorer.explain_one(x) for x in purchases]
    assert all(part.score == max(part.deviation, part.supervised) for part in warm)
    assert len({round(part.supervised, 6) for part in warm}) > 50
    far_above = scorer.explain_one({**purchases[0], "amount_z": 12.0})
    assert far_above.score == far_above.deviation > 0.999 > far_above.supervised
