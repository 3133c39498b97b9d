"""The logistic models' folded and averaged scoring against river's own prediction."""

from __future__ import annotations

import math
import pickle
import random
from array import array

import pytest

from pipeline.credit import CREDIT_INPUTS, DefaultModel
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
    classifier = FraudClassifier(min_frauds=1, average_window=1)  # the model as it is
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


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


@pytest.mark.parametrize("window", [1, 50])
def test_the_score_is_the_more_cautious_of_the_model_and_its_average(window: int) -> None:
    """For a fixed purchase a linear model's logit is linear in its parameters, so the
    averaged model's logit is the average of river's logits after each learning step: uniform
    from the step the model became warm until ``window`` steps, then exponential."""
    rng = random.Random(7)
    classifier = FraudClassifier(min_frauds=5, average_window=window)
    probe = random_inputs(rng)
    averaged: float | None = None
    steps = 0
    cautious = 0
    for _ in range(300):
        inputs = random_inputs(rng)
        classifier.learn_one(inputs, inputs[0] + inputs[7] - inputs[12] > 2.0)
        now = _logit(river_probability(classifier, probe))
        if not classifier.warm or averaged is None:
            averaged, steps = now, 1
        else:
            steps += 1
            rate = max(1.0 / steps, 1.0 / window)
            averaged = (1.0 - rate) * averaged + rate * now
        if classifier.warm:
            expected = min(now, averaged)
            cautious += averaged < now
            assert _logit(classifier.score_one(probe)) == pytest.approx(expected, abs=1e-9)
    # The average was the more cautious one often enough for the test to mean something.
    assert cautious > (50 if window > 1 else -1)
    copy = pickle.loads(pickle.dumps(classifier))
    assert copy.score_one(probe) == classifier.score_one(probe)


def test_the_default_model_scores_by_its_average() -> None:
    """The credit side's model is read through its average alone: the logit of its score is
    the average of river's logits after each learning step since it became warm."""
    rng = random.Random(11)
    model = DefaultModel(min_defaults=3, min_repaid=3, average_window=40)
    probe = array("f", [rng.gauss(0.0, 1.0) for _ in CREDIT_INPUTS])
    averaged: float | None = None
    steps = differs = 0
    for _ in range(200):
        inputs = array("f", [rng.gauss(0.0, 1.0) for _ in CREDIT_INPUTS])
        model.learn_one(inputs, inputs[1] - inputs[8] > 1.0)
        now = _logit(model.model.predict_proba_one(
            dict(zip(CREDIT_INPUTS, probe, strict=True)))[True])
        if not model.warm or averaged is None:
            averaged, steps = now, 1
        else:
            steps += 1
            rate = max(1.0 / steps, 1.0 / model.average_window)
            averaged = (1.0 - rate) * averaged + rate * now
        if model.warm:
            assert _logit(model.score_one(probe)) == pytest.approx(averaged, abs=1e-9)
            differs += abs(averaged - now) > 1e-3
    assert differs > 100  # the average is not the model as it is
    assert pickle.loads(pickle.dumps(model)).score_one(probe) == model.score_one(probe)
