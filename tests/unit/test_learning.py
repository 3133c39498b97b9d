"""The fraud classifier's folded scoring against river's own prediction."""

from __future__ import annotations

import pickle
import random
from array import array

import pytest

from pipeline.learning import INPUTS, FraudClassifier


def river_probability(classifier: FraudClassifier, inputs: array) -> float:
    return classifier.model.predict_proba_one(dict(zip(INPUTS, inputs, strict=True)))[True]


def random_inputs(rng: random.Random) -> array:
    values = [rng.gauss(0.0, 2.0) for _ in INPUTS]
    values[3] = 1.5  # a feature that never varies: river's scaler maps it to 0
    return array("f", values)


@pytest.mark.parametrize("seed", range(3))
def test_folded_score_is_rivers_probability_after_every_learning_step(seed: int) -> None:
    rng = random.Random(seed)
    classifier = FraudClassifier(min_frauds=1)
    for step in range(400):
        inputs = random_inputs(rng)
        # Fraud depends on a few inputs, so the weights grow far from zero.
        fraud = inputs[0] + inputs[7] - inputs[12] > 2.0
        classifier.learn_one(inputs, fraud)
        if classifier.warm and step % 7 == 0:
            for _ in range(3):
                probe = random_inputs(rng)
                assert classifier.score_one(probe) == pytest.approx(
                    river_probability(classifier, probe), abs=1e-12
                )
    probe = random_inputs(rng)
    copy = pickle.loads(pickle.dumps(classifier))
    assert copy.score_one(probe) == pytest.approx(river_probability(classifier, probe), abs=1e-12)


def test_a_cold_classifier_scores_zero() -> None:
    classifier = FraudClassifier(min_frauds=2)
    inputs = array("f", [1.0] * len(INPUTS))
    classifier.learn_one(inputs, True)
    assert classifier.score_one(inputs) == 0.0
