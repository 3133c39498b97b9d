"""The anomaly model's fused score-and-learn walk against river's own score_one and learn_one."""

from __future__ import annotations

import pickle
import random

import pytest

from pipeline.scoring import AnomalyScorer


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
def test_fused_walk_scores_and_learns_exactly_as_river(seed: int) -> None:
    rng = random.Random(seed)
    # A small window, so the run crosses many pivots; its size limit stops some score walks early.
    rivers = AnomalyScorer(seed=seed, n_trees=4, height=6, window_size=30)
    fused = AnomalyScorer(seed=seed, n_trees=4, height=6, window_size=30)
    scores = []
    for step in range(400):
        x = random_purchase(rng)
        expected = rivers.model.score_one(rivers.transform(x))
        rivers.learn_one(x)
        assert fused.score_learn_one(x) == expected, step
        scores.append(expected)
        if step == 211:  # mid-window: the copy must carry the counter and both masses on
            fused = pickle.loads(pickle.dumps(fused))
    assert masses(fused) == masses(rivers)
    assert fused.model.counter == rivers.model.counter
    assert len(set(scores[30:])) > 20  # the scores after the first window really vary
