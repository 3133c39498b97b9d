"""Gradient-boosted trees for a yes/no risk, fitted in batch and scored one record at a time.

Fitted with scikit-learn's ``HistGradientBoostingClassifier`` (log loss, early stopping on a
held-out tenth), then exported to plain lists: scoring a record walks each tree in Python, a
few microseconds per tree, with no scikit-learn at serving time and nothing pickled -- the
fitted model is a JSON document that can be read, diffed and versioned. A unit test holds the
exported model to scikit-learn's own probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["BoostedTrees"]

#: Conservative settings, fixed rather than searched: a small learning rate with early
#: stopping, small trees, and an L2 penalty on the leaves (the shape of the batch references in
#: ``benchmarks/uci_reference.py``). The seed makes a fit reproducible.
FIT_SETTINGS = {
    "learning_rate": 0.05, "max_iter": 500, "max_leaf_nodes": 15, "l2_regularization": 1.0,
    "early_stopping": True, "validation_fraction": 0.1, "n_iter_no_change": 20,
    "random_state": 0,
}


class BoostedTrees:
    """``score_one(inputs) -> probability``: the trees' summed leaf values, through the logistic
    function. Each tree is four parallel lists: the input compared at each node (-1 at a
    leaf), the threshold (the value, at a leaf), the left child (inputs at or below the
    threshold, and missing ones where the fit sent them) and the right child."""

    kind = "boosted_trees"

    def __init__(self, inputs: Sequence[str], baseline: float,
                 trees: list[tuple[list[int], list[float], list[int], list[int]]]) -> None:
        self.inputs = tuple(inputs)
        self.baseline = baseline
        self.trees = trees

    @classmethod
    def fit(cls, rows: Sequence[Sequence[float]], outcomes: Sequence[bool],
            inputs: Sequence[str]) -> BoostedTrees:
        """Fit on ``rows`` (in the order of ``inputs``) and their outcomes."""
        import numpy as np
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(**FIT_SETTINGS)
        model.fit(np.asarray(rows, dtype=np.float64), np.asarray(outcomes, dtype=bool))
        return cls.from_sklearn(model, inputs)

    @classmethod
    def from_sklearn(cls, model: Any, inputs: Sequence[str]) -> BoostedTrees:
        """Export a fitted binary ``HistGradientBoostingClassifier`` (numerical inputs)."""
        trees = []
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            feature, threshold, left, right = [], [], [], []
            for node in nodes:
                if node["is_leaf"]:
                    feature.append(-1)
                    threshold.append(float(node["value"]))
                    left.append(0)
                    right.append(0)
                    continue
                # A missing input follows the fit's choice; negative child: "missing goes left".
                feature.append(int(node["feature_idx"]))
                threshold.append(float(node["num_threshold"]))
                left.append(-int(node["left"]) if node["missing_go_to_left"]
                            else int(node["left"]))
                right.append(int(node["right"]))
            trees.append((feature, threshold, left, right))
        return cls(inputs, float(model._baseline_prediction.ravel()[0]), trees)

    def score_one(self, values: Sequence[float]) -> float:
        raw = self.baseline
        for feature, threshold, left, right in self.trees:
            node = 0
            while True:
                index = feature[node]
                if index < 0:
                    raw += threshold[node]
                    break
                value = values[index]
                child = left[node]
                if value <= threshold[node]:
                    node = abs(child)
                elif value != value:  # missing: where the fit sent missing values
                    node = abs(child) if child < 0 else right[node]
                else:
                    node = right[node]
        return 1.0 / (1.0 + math.exp(-raw))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "inputs": list(self.inputs), "baseline": self.baseline,
                "trees": [{"feature": f, "threshold": t, "left": lft, "right": r}
                          for f, t, lft, r in self.trees]}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> BoostedTrees:
        if document.get("kind") != cls.kind:
            raise ValueError(f"not a {cls.kind} model: {document.get('kind')!r}")
        return cls(document["inputs"], float(document["baseline"]),
                   [(tree["feature"], tree["threshold"], tree["left"], tree["right"])
                    for tree in document["trees"]])
