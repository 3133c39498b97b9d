"""The logistic models' folded and averaged scoring against river's own prediction."""

from __future__ import annotations

import math
import pickle
import random
from array import array

import pytest

from pipeline.credit import CREDIT_INPUTS, DefaultModel
from pipeline.learning import INPUTS, AveragedLogisticRegression, FraudClassifier


def river_probability(model: AveragedLogisticRegression, inputs: array) -> float:
    return model.model.predict_proba_one(dict(zip(model.names, inputs, strict=True)))[True]


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


class ExpectedAverage:
    """For a fixed input a linear model's logit is linear in its parameters, so the averaged
    model's logit is the average of river's logits after each learning step: restarted while
    the model is cold, uniform until ``window`` steps, then exponential."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.value: float | None = None
        self.steps = 0

    def update(self, now: float, warm: bool) -> float:
        if not warm or self.value is None:
            self.value, self.steps = now, 1
        else:
            self.steps += 1
            rate = max(1.0 / self.steps, 1.0 / self.window)
            self.value = (1.0 - rate) * self.value + rate * now
        return self.value


@pytest.mark.parametrize("window", [1, 50])
def test_the_score_is_the_more_cautious_of_the_model_and_its_average(window: int) -> None:
    rng = random.Random(7)
    classifier = FraudClassifier(min_frauds=5, average_window=window)
    probe = random_inputs(rng)
    expected_average = ExpectedAverage(window)
    cautious = 0
    for _ in range(300):
        inputs = random_inputs(rng)
        classifier.learn_one(inputs, inputs[0] + inputs[7] - inputs[12] > 2.0)
        now = _logit(river_probability(classifier, probe))
        averaged = expected_average.update(now, classifier.warm)
        if classifier.warm:
            expected = min(now, averaged)
            cautious += averaged < now
            assert _logit(classifier.score_one(probe)) == pytest.approx(expected, abs=1e-9)
    # The average was the more cautious one often enough for the test to mean something.
    assert cautious > (50 if window > 1 else -1)
    copy = pickle.loads(pickle.dumps(classifier))
    assert copy.score_one(probe) == classifier.score_one(probe)


def test_the_default_model_scores_by_its_average() -> None:
    """The credit side's model is read through its average alone."""
    rng = random.Random(11)
    model = DefaultModel(min_defaults=3, min_repaid=3, average_window=40)
    probe = array("f", [rng.gauss(0.0, 1.0) for _ in CREDIT_INPUTS])
    expected_average = ExpectedAverage(model.average_window)
    differs = 0
    for _ in range(200):
        inputs = array("f", [rng.gauss(0.0, 1.0) for _ in CREDIT_INPUTS])
        model.learn_one(inputs, inputs[1] - inputs[8] > 1.0)
        now = _logit(river_probability(model, probe))
        averaged = expected_average.update(now, model.warm)
        if model.warm:
            assert _logit(model.score_one(probe)) == pytest.approx(averaged, abs=1e-9)
            differs += abs(averaged - now) > 1e-3
    assert differs > 100  # the average is not the model as it is
    assert pickle.loads(pickle.dumps(model)).score_one(probe) == model.score_one(probe)


def test_a_weighted_step_is_rivers_weighted_step() -> None:
    """The weight of a learning step reaches river's regression, and the folded score is still
    river's probability."""
    rng = random.Random(3)
    classifier = FraudClassifier(min_frauds=1, average_window=1)
    reference = FraudClassifier(min_frauds=1, average_window=1)
    for step in range(300):
        inputs = random_inputs(rng)
        fraud = inputs[0] + inputs[7] - inputs[12] > 2.0
        weight = 1.0 if fraud else 0.1 + step % 3
        classifier.learn_one(inputs, fraud, weight)
        reference.model.learn_one(dict(zip(INPUTS, inputs, strict=True)), fraud, w=weight)
    weights = classifier.model["LogisticRegression"].weights
    assert weights == reference.model["LogisticRegression"].weights
    unweighted = FraudClassifier(min_frauds=1, average_window=1)
    rng = random.Random(3)
    for _ in range(300):
        inputs = random_inputs(rng)
        unweighted.learn_one(inputs, inputs[0] + inputs[7] - inputs[12] > 2.0)
    assert unweighted.model["LogisticRegression"].weights != weights
    probe = random_inputs(rng)
    assert classifier.score_one(probe) == pytest.approx(river_probability(classifier, probe),
                                                        abs=1e-12)
