"""The exported boosted trees score exactly as scikit-learn's model does."""

from __future__ import annotations

import math

import numpy as np
import orjson

from pipeline.boosted import BoostedTrees


def test_exported_trees_give_scikit_learns_probabilities_missing_values_included() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(3)
    rows = rng.normal(size=(3_000, 5))
    rows[rng.random(3_000) < 0.1, 2] = np.nan
    risk = rows[:, 0] - 0.5 * rows[:, 1] + np.nan_to_num(rows[:, 2], nan=1.5) * rows[:, 3]
    outcomes = rng.random(3_000) < 1 / (1 + np.exp(-risk))
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(rows, outcomes)
    trees = BoostedTrees.from_sklearn(model, [f"x{i}" for i in range(5)])
    again = BoostedTrees.from_dict(orjson.loads(orjson.dumps(trees.to_dict())))
    expected = model.predict_proba(rows[:500])[:, 1]
    for row, probability in zip(rows[:500], expected, strict=True):
        assert math.isclose(again.score_one(row.tolist()), probability, rel_tol=1e-9)


def test_fit_learns_the_risk_and_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(2_000, 3)).tolist()
    outcomes = [row[0] + rng.normal() * 0.3 > 0.5 for row in rows]
    first = BoostedTrees.fit(rows, outcomes, ("a", "b", "c"))
    assert first.to_dict() == BoostedTrees.fit(rows, outcomes, ("a", "b", "c")).to_dict()
    assert first.score_one([2.0, 0.0, 0.0]) > 0.9 > 0.1 > first.score_one([-2.0, 0.0, 0.0])
