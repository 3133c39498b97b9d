"""Learning from a lender's history, then serving what was learned.

``train_history`` runs a history through the engine -- the worker's own feature code and
online learning, in event time -- so the fraud classifier, the anomaly model and the online
default model come out as a worker that had lived through the history would have them. It
also keeps each credit line's statements and defaults, and fits the **champion** default
model in batch (:class:`~pipeline.boosted.BoostedTrees`) on one observation per line, as a
credit scorecard is developed:

- the observation point is the line's latest statement whose performance window -- from the
  statement to ``horizon`` after its due date -- the history settles: a default within it
  makes it a default; a window that ends before the history does with no default makes it
  repaid; a later statement whose window is still open cannot say yet;
- a default is what the history says it is: its ``default`` labels, the lender's own verdicts,
  when it has any; only a history without them falls back on the policy's rule, a bill
  ``default_past_due_cycles`` past due (a line far behind that the lender did not call a
  default is not one);
- the inputs are the line's record at that statement, exactly as the worker computes them.

A model directory holds ``manifest.json`` (format, what it was trained on, when, the policy's
digest, what was learned), ``online.json`` (the online models, by name) and ``champion.json``
(the trees). Workers started with it (``RISKSTREAM_MODEL_DIR``) begin each new partition
with the online models, which go on learning, and score every statement with the champion;
the online default model is scored beside it as the challenger.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from pipeline.boosted import BoostedTrees
from pipeline.config import RiskConfig
from pipeline.credit import CREDIT_INPUTS
from pipeline.engine import RiskEngine
from pipeline.events import Event, Label, Statement
from pipeline.exceptions import InvalidEvent, RiskstreamError
from pipeline.policy_file import format_duration, policy_digest
from pipeline.state.models import read_anomaly, read_logistic, write_anomaly, write_logistic
from pipeline.timeutil import format_time

__all__ = ["MODEL_FORMAT", "ModelDirectoryError", "TrainedModels", "load_models",
           "train_history"]

#: Version of the model directory's layout; a worker refuses another.
MODEL_FORMAT = 1
#: Fewest defaults and repaid observations a champion is fitted on; with fewer, none is.
MIN_OUTCOMES = 50
#: Statements kept per line while training: enough to reach back over any window.
_KEPT_STATEMENTS = 8


class ModelDirectoryError(RiskstreamError):
    """A model directory that cannot be used (missing, incomplete, another format)."""


@dataclass
class TrainedModels:
    """What training produced: the online models' documents, the champion, and the record
    of what they were trained on."""

    online: dict[str, Any]
    champion: BoostedTrees | None
    manifest: dict[str, Any] = field(default_factory=dict)

    def seed(self, engine: RiskEngine) -> None:
        """Give a new engine the trained online models and the champion."""
        read_anomaly(engine.scorer.anomaly, self.online["anomaly"])
        read_logistic(engine.scorer.classifier, self.online["classifier"])
        read_logistic(engine.default_model, self.online["default_model"])
        engine.credit_champion = self.champion

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "online.json").write_bytes(orjson.dumps(self.online))
        champion = directory / "champion.json"
        if self.champion is not None:
            champion.write_bytes(orjson.dumps(self.champion.to_dict()))
        elif champion.exists():
            champion.unlink()
        (directory / "manifest.json").write_bytes(
            orjson.dumps(self.manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def load_models(directory: Path) -> TrainedModels:
    """The models in ``directory``; raises :class:`ModelDirectoryError` saying what is wrong."""
    try:
        manifest = orjson.loads((directory / "manifest.json").read_bytes())
        online = orjson.loads((directory / "online.json").read_bytes())
    except FileNotFoundError as missing:
        raise ModelDirectoryError(f"{directory} is not a model directory: {missing.filename} "
                                  "is missing (make one with `riskstream train`)") from None
    except orjson.JSONDecodeError as error:
        raise ModelDirectoryError(f"{directory}: unreadable model file: {error}") from None
    if manifest.get("format") != MODEL_FORMAT:
        raise ModelDirectoryError(f"{directory} holds models of format {manifest.get('format')}"
                                  f"; this release reads format {MODEL_FORMAT} (train again)")
    champion = None
    if manifest.get("champion") is not None:
        document = orjson.loads((directory / "champion.json").read_bytes())
        champion = BoostedTrees.from_dict(document)
        if list(champion.inputs) != list(CREDIT_INPUTS):
            raise ModelDirectoryError(f"{directory}: the champion's inputs differ from this "
                                      "release's credit inputs (train again)")
    return TrainedModels(online, champion, manifest)


class _History:
    """What training keeps of the history beyond the engine: each line's latest statements,
    its first default, and counts."""

    def __init__(self) -> None:
        self.statements: dict[str, deque[tuple[int, int, array]]] = {}
        #: When each line first defaulted: by the history's labels, and by the past-due rule.
        self.labelled: dict[str, int] = {}
        self.past_due: dict[str, int] = {}
        self.events: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.first: int | None = None
        self.last: int | None = None

    @property
    def defaults(self) -> dict[str, int]:
        """The history's own default verdicts if it has any, else the past-due rule's."""
        return self.labelled if self.labelled else self.past_due

    def observations(self, horizon: int) -> tuple[list[array], list[bool]]:
        """One settled observation per line (see the module's docstring)."""
        end = self.last if self.last is not None else 0
        defaults = self.defaults
        rows: list[array] = []
        outcomes: list[bool] = []
        for user_id, statements in self.statements.items():
            defaulted_at = defaults.get(user_id)
            for statement_time, due_time, inputs in reversed(statements):
                if defaulted_at is not None and defaulted_at < statement_time:
                    continue  # already in default: not a line to score
                window_end = due_time + horizon
                if defaulted_at is not None and defaulted_at <= window_end:
                    rows.append(inputs)
                    outcomes.append(True)
                    break
                if window_end <= end:
                    rows.append(inputs)
                    outcomes.append(False)
                    break
        return rows, outcomes


def train_history(events: Iterable[Event], config: RiskConfig, horizon: int,
                  sources: Sequence[Path] = ()) -> TrainedModels:
    """Learn from ``events`` (in event-time order) as a worker would, and fit the champion.

    ``horizon``: the performance window after a statement's due date (the policy's
    ``default_horizon``, or what the history's format defines its outcomes over).
    """
    engine = RiskEngine(config)
    history = _History()
    past_due_default = config.default_past_due_cycles
    for event in events:
        try:
            engine.process(event)
        except InvalidEvent as error:
            history.rejected[error.kind] = history.rejected.get(error.kind, 0) + 1
            continue
        history.events[event.type] = history.events.get(event.type, 0) + 1
        when = event.event_time
        if history.first is None:
            history.first = when
        history.last = when if history.last is None else max(history.last, when)
        if isinstance(event, Statement):
            credit = engine.users[event.user_id].credit
            assert credit is not None
            kept = history.statements.setdefault(event.user_id, deque(maxlen=_KEPT_STATEMENTS))
            kept.append((when, event.due_time, credit.pending[-1].inputs))
            if event.past_due_cycles >= past_due_default:
                history.past_due.setdefault(event.user_id, when)
        elif isinstance(event, Label) and event.kind == "default":
            history.labelled.setdefault(event.user_id, when)
    rows, outcomes = history.observations(horizon)
    defaults = sum(outcomes)
    champion = None
    if min(defaults, len(outcomes) - defaults) >= MIN_OUTCOMES:
        champion = BoostedTrees.fit([list(row) for row in rows], outcomes, CREDIT_INPUTS)
    scorer = engine.scorer
    online = {"anomaly": write_anomaly(scorer.anomaly),
              "classifier": write_logistic(scorer.classifier),
              "default_model": write_logistic(engine.default_model)}
    manifest = {
        "format": MODEL_FORMAT,
        "riskstream": _version(),
        "policy": policy_digest(config),
        "trained_on": [_describe_file(path) for path in sources],
        "history": {
            "events": history.events, "rejected": history.rejected,
            "first": format_time(history.first) if history.first is not None else None,
            "last": format_time(history.last) if history.last is not None else None,
        },
        "online": {
            "fraud_classifier_frauds": scorer.classifier.frauds_seen,
            "fraud_classifier_examples": scorer.classifier.learned,
            "default_model_defaults": engine.default_model.defaults_seen,
            "default_model_repaid": engine.default_model.repaid_seen,
        },
        "champion": None if champion is None else {
            "kind": champion.kind, "trees": len(champion.trees),
            "observations": len(outcomes), "defaults": defaults,
            "horizon": format_duration(horizon),
            "defaults_from": "default labels" if history.labelled
            else f"bills {past_due_default} cycles past due",
        },
        "champion_skipped": None if champion is not None else (
            f"{defaults} defaults and {len(outcomes) - defaults} repaid lines settled by the "
            f"history; a champion needs {MIN_OUTCOMES} of each"),
    }
    return TrainedModels(online, champion, manifest)


def _describe_file(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _version() -> str:
    try:
        return metadata.version("riskstream")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"
