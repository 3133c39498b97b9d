"""A partition's models as JSON documents: every learned parameter by name, nothing pickled.

A document holds what learning has changed -- river's scaler statistics, weights and step
count, the averaged weights, the counters that say when a model is warm, the anomaly trees'
splits and masses -- and is read back into a model built with the release's own settings.
Floats are written by orjson in their shortest exact form, so a model read back scores and
learns exactly as the one written (tests/unit/test_state_codec.py).
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from typing import Any

from river.tree.padded import PaddedBranch, PaddedLeaf
from river.utils import VectorDict

from pipeline.learning import AveragedLogisticRegression
from pipeline.scoring import AnomalyScorer

__all__ = ["read_anomaly", "read_logistic", "write_anomaly", "write_logistic"]

#: Counters a logistic model may have besides its parameters (a subclass's warm-up counts).
_COUNTERS = ("learned", "frauds_seen", "defaults_seen", "repaid_seen")


def write_logistic(model: AveragedLogisticRegression) -> dict[str, Any]:
    scaler, regression = model.model["StandardScaler"], model.model["LogisticRegression"]
    averaged = model._averaged
    return {
        "counters": {name: getattr(model, name) for name in _COUNTERS if hasattr(model, name)},
        "scaler": {"counts": dict(scaler.counts), "means": dict(scaler.means),
                   "vars": dict(scaler.vars)},
        "weights": regression._weights.to_dict(),
        "intercept": regression.intercept,
        "steps": regression.optimizer.n_iterations,
        "averaged": None if averaged is None else [list(averaged[0]), averaged[1]],
        "averaged_steps": model._averaged_steps,
    }


def read_logistic(model: AveragedLogisticRegression, document: dict[str, Any]) -> None:
    """Give a freshly built ``model`` the parameters of ``document``."""
    scaler, regression = model.model["StandardScaler"], model.model["LogisticRegression"]
    for name, value in document["counters"].items():
        if name not in _COUNTERS or not hasattr(model, name):
            raise ValueError(f"a {type(model).__name__} has no counter {name!r}")
        setattr(model, name, value)
    stats = document["scaler"]
    scaler.counts = Counter(stats["counts"])
    scaler.means = defaultdict(float, stats["means"])
    scaler.vars = defaultdict(float, stats["vars"])
    weights = VectorDict(None)
    for name, value in document["weights"].items():
        weights[name] = value
    regression._weights = weights
    regression.intercept = document["intercept"]
    regression.optimizer.n_iterations = document["steps"]
    averaged = document["averaged"]
    model._averaged = None if averaged is None else (array("d", averaged[0]), averaged[1])
    model._averaged_steps = document["averaged_steps"]
    model._folded = None


def write_anomaly(scorer: AnomalyScorer) -> dict[str, Any]:
    """Half-Space Trees: per tree, its nodes in heap order (a node's children at 2i+1 and
    2i+2): the splits of the inner nodes, and every node's masses."""
    model = scorer.model  # brings river's nodes up to date
    trees = []
    for root in model.trees:
        nodes = [root]
        index = 0
        while index < len(nodes):
            node = nodes[index]
            if isinstance(node, PaddedBranch):
                nodes.extend(node.children)
            index += 1
        branches = [node for node in nodes if isinstance(node, PaddedBranch)]
        trees.append({
            "features": [node.feature for node in branches],
            "thresholds": [node.threshold for node in branches],
            "reference_mass": [node.r_mass for node in nodes],
            "latest_mass": [node.l_mass for node in nodes],
        })
    return {"counter": model.counter, "first_window": model._first_window, "trees": trees}


def read_anomaly(scorer: AnomalyScorer, document: dict[str, Any]) -> None:
    """Give a freshly built ``scorer`` the trees and masses of ``document``."""
    model = scorer._model
    if document["trees"] and len(document["trees"]) != model.n_trees:
        raise ValueError(f"{len(document['trees'])} anomaly trees stored, the model has "
                         f"{model.n_trees}")
    model.trees = [_tree(tree) for tree in document["trees"]]
    model._tree_nodes = [list(tree.iter_dfs()) for tree in model.trees]
    model.counter = document["counter"]
    model._first_window = document["first_window"]
    scorer._leaves = None


def _tree(document: dict[str, Any]) -> PaddedBranch:
    features, thresholds = document["features"], document["thresholds"]
    reference, latest = document["reference_mass"], document["latest_mass"]
    if len(reference) != 2 * len(features) + 1 or len(latest) != len(reference):
        raise ValueError("an anomaly tree's masses do not match its splits")
    count = len(features)
    leaves = [PaddedLeaf(r_mass=r_mass, l_mass=l_mass)
              for r_mass, l_mass in zip(reference[count:], latest[count:], strict=True)]
    nodes: list[PaddedBranch | PaddedLeaf | None] = [None] * count + leaves
    # A padded tree is complete: each inner node is built after its two children.
    for index in range(count - 1, -1, -1):
        nodes[index] = PaddedBranch(nodes[2 * index + 1], nodes[2 * index + 2], features[index],
                                    thresholds[index], latest[index], reference[index])
    return nodes[0]  # type: ignore[return-value]
