"""``riskstream evaluate-credit`` through the real broker and worker, on a generated UCI table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agents.broker import EmbeddedBroker
from agents.evaluate_credit import evaluate_credit
from tests.uci_data import write_uci_table

pytestmark = pytest.mark.integration

def test_the_credit_evaluation_measures_the_default_risk_the_worker_wrote(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    table = write_uci_table(tmp_path / "uci.csv", clients=1_000, seed=3)
    result = evaluate_credit(table, tmp_path / "report", bootstrap=broker.bootstrap,
                             cohort_size=100)
    metrics = result.metrics
    assert metrics["clients"] == 1_000
    # The first cohorts are scored while the model is cold: their outcomes are learned when
    # their performance windows close, three months after their last bill is due.
    assert metrics["scored"] >= 400
    assert metrics["auc_roc"] > 0.8
    assert metrics["raised"] > 100
    assert metrics["raised_default_rate"] < 0.5 * metrics["base_rate"]
    report = result.report.read_text()
    assert f"default AUC ROC **{metrics['auc_roc']:.3f}**" in report
    assert 0 < metrics["largest_safe_share"] < 1
    assert f"defaulting: **{metrics['largest_safe_share']:.3f}**" in report
    for picture in ("roc.png", "precision_recall.png"):
        assert (tmp_path / "report" / picture).stat().st_size > 1_000


def test_the_cli_refuses_an_empty_cohort_and_reports_a_history_too_short_to_learn(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    from tests.integration.test_cli import riskstream

    env = dict(os.environ)
    table = write_uci_table(tmp_path / "uci.csv", clients=200, seed=4)  # too short to learn
    refused = riskstream("evaluate-credit", "--data", str(table), "--cohort-size", "0", env=env)
    assert refused.returncode == 2 and "--cohort-size" in refused.stderr
    done = riskstream("evaluate-credit", "--data", str(table), "--cohort-size", "50",
                      "--bootstrap", broker.bootstrap, "--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "default AUC nan, AP nan on 0 clients" in done.stdout
    report = (tmp_path / "out" / "report.md").read_text()
    assert "too few, or all of one outcome, for curves" in report


def test_trained_then_tested_on_unseen_clients_through_a_worker_started_from_the_models(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    import csv

    from agents.evaluate_credit import evaluate_credit_split, split_uci_table

    table = write_uci_table(tmp_path / "uci.csv", clients=1_200, seed=5)
    train, test = split_uci_table(table, 801, tmp_path / "split")
    result = evaluate_credit_split(train, test, tmp_path / "report", bootstrap=broker.bootstrap)
    metrics = result.metrics
    # Only the 400 test clients are measured, every one scored at once by the champion: the
    # worker started from the trained models, not from nothing.
    assert metrics["clients"] == metrics["scored"] == 400
    assert metrics["auc_roc"] > 0.8
    assert metrics["model"]["champion"]["observations"] == 800
    money = metrics["money"]
    assert money["raises"] >= metrics["raised"] > 0 and money["extra_credit_minor"] > 0
    assert 0 <= money["extra_credit_to_defaulters_share"] < metrics["base_rate"]
    assert "of extra credit" in result.report.read_text()
    rates = [rate for _, rate in metrics["safest_share_rates"]]
    assert max(rates) < metrics["base_rate"]
    with open(tmp_path / "report" / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 400 and all(row["default_risk"] for row in rows)
    assert {row["user_id"] for row in rows} == {f"uci-{n}" for n in range(801, 1_201)}
    for picture in ("roc.png", "precision_recall.png", "calibration.png"):
        assert (tmp_path / "report" / picture).stat().st_size > 1_000
    report = result.report.read_text()
    assert "riskstream champion" in report and "riskstream challenger" in report
    with pytest.raises(ValueError, match="in both the training and the test"):
        evaluate_credit_split(train, train, tmp_path / "again", bootstrap=broker.bootstrap)


def test_train_from_the_command_line_and_refuse_a_history_in_another_currency(
    tmp_path: Path,
) -> None:
    from tests.integration.test_cli import riskstream

    table = write_uci_table(tmp_path / "uci.csv", clients=400, seed=6)
    env = {**os.environ, "RISKSTREAM_CURRENCY": "TWD"}
    done = riskstream("train", str(table), "--format", "uci-taiwan", "--out",
                      str(tmp_path / "model"), env=env)
    assert done.returncode == 0, done.stderr
    assert "champion:" in done.stdout and (tmp_path / "model" / "champion.json").exists()
    wrong = riskstream("train", str(table), "--format", "uci-taiwan", "--out",
                       str(tmp_path / "other"), env={**os.environ, "RISKSTREAM_CURRENCY": "CNY"})
    assert wrong.returncode == 1 and "currency-mismatch" in wrong.stderr
    assert "Traceback" not in wrong.stderr and not (tmp_path / "other").exists()
