"""Learning from a history: one settled observation per line, the history's own verdicts,
a versioned model directory, and engines that start from it."""

from __future__ import annotations

import json
from array import array
from collections import deque
from pathlib import Path

import pytest

from agents.evaluate_credit import UCI_SETTINGS, split_uci_table
from agents.settings import Settings
from pipeline.adapters import UCI_OUTCOME_WINDOW, uci_defaults
from pipeline.engine import RiskEngine
from pipeline.evaluation import roc_auc
from pipeline.events import Label, Statement
from pipeline.history import HistoryOptions, merged_history
from pipeline.state.models import write_logistic
from pipeline.timeutil import DAY, parse_time
from pipeline.training import (
    MODEL_FORMAT,
    ModelDirectoryError,
    _History,
    load_models,
    train_history,
)
from tests.uci_data import write_uci_table

POLICY = Settings(**UCI_SETTINGS).risk_config()
UCI = HistoryOptions(format="uci-taiwan")
T0 = parse_time("2026-01-01T00:00:00Z")


def _history(statements: dict[str, list[int]], labels: dict[str, int],
             past_due: dict[str, int], last: int) -> _History:
    history = _History()
    for user, times in statements.items():
        history.statements[user] = deque(
            (when, when + 20 * DAY, array("f", [index])) for index, when in enumerate(times))
    history.labelled, history.past_due, history.last = labels, past_due, last
    return history


def test_each_line_is_observed_once_at_its_latest_settled_statement() -> None:
    months = [T0 + month * 30 * DAY for month in range(4)]
    history = _history(
        {"defaults-late": months, "repays": months, "defaulted-early": months},
        labels={"defaults-late": months[3] + 50 * DAY, "defaulted-early": months[1] + DAY},
        past_due={}, last=months[3] + 50 * DAY,
    )
    rows, outcomes = history.observations(horizon=60 * DAY)
    observed = sorted((int(row[0]), outcome) for row, outcome in zip(rows, outcomes,
                                                                      strict=True))
    assert observed == [
        # A line in default since month 1: later bills are not scored; month 1 defaulted.
        (1, True),
        # A line repaid: its last bill's window is still open at the history's end, so the
        # one before it, whose window closed, is the observation.
        (2, False),
        # The last bill's window (due + 60 d) holds the default: observed there.
        (3, True),
    ]


def test_the_historys_own_default_verdicts_come_before_the_past_due_rule() -> None:
    months = [T0 + month * 30 * DAY for month in range(2)]
    history = _history({"behind": months}, labels={"other": months[0]},
                       past_due={"behind": months[1]}, last=months[1] + 90 * DAY)
    (_, outcome), = zip(*history.observations(60 * DAY), strict=True)
    assert outcome is False  # far behind, but the lender did not call it a default
    history.labelled = {}
    (_, outcome), = zip(*history.observations(60 * DAY), strict=True)
    assert outcome is True  # a history without verdicts falls back on the policy's rule


def test_training_writes_a_versioned_model_directory_that_engines_start_from(
    tmp_path: Path,
) -> None:
    train, test = split_uci_table(write_uci_table(tmp_path / "uci.csv", 1_200, seed=11), 801,
                                  tmp_path / "split")
    models = train_history(merged_history([train], UCI), POLICY, UCI_OUTCOME_WINDOW,
                           sources=[train])
    models.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["format"] == MODEL_FORMAT
    assert manifest["trained_on"][0]["path"] == str(train)
    assert len(manifest["trained_on"][0]["sha256"]) == 64
    assert manifest["champion"]["observations"] == 800
    assert manifest["champion"]["defaults_from"] == "default labels"
    assert manifest["history"]["events"]["statement"] == 800 * 6

    loaded = load_models(tmp_path / "model")
    warm = RiskEngine(POLICY)
    loaded.seed(warm)
    assert write_logistic(warm.default_model) == models.online["default_model"]
    assert write_logistic(warm.scorer.classifier) == models.online["classifier"]
    assert warm.credit_champion is loaded.champion is not None
    risk: dict[str, float] = {}
    for event in merged_history([test], UCI):
        warm.process(event)
        if isinstance(event, Statement):
            risk[event.user_id] = warm.users[event.user_id].credit.risk
        if isinstance(event, Label):
            break  # scored at the last bill, before any outcome of the test clients
    defaulted = uci_defaults(test)
    users = sorted(risk)
    assert len(users) == 400 and all(value is not None for value in risk.values())
    assert roc_auc([defaulted[user] for user in users], [risk[user] for user in users]) > 0.8


def test_a_model_directory_that_cannot_be_used_is_refused_in_one_sentence(
    tmp_path: Path,
) -> None:
    with pytest.raises(ModelDirectoryError, match="is not a model directory"):
        load_models(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": 99}')
    (tmp_path / "online.json").write_text("{}")
    with pytest.raises(ModelDirectoryError, match="format 99"):
        load_models(tmp_path)


def test_a_short_history_gives_no_champion_and_says_why(tmp_path: Path) -> None:
    table = write_uci_table(tmp_path / "uci.csv", 60, seed=2)
    models = train_history(merged_history([table], UCI), POLICY, UCI_OUTCOME_WINDOW)
    assert models.champion is None
    assert "a champion needs 50 of each" in models.manifest["champion_skipped"]
