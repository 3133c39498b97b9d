"""``riskstream evaluate-credit`` through the real broker and worker, on a generated UCI table."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

from agents.broker import EmbeddedBroker
from agents.evaluate_credit import evaluate_credit

pytestmark = pytest.mark.integration

_STATUS = ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]


def _uci_table(path: Path, clients: int, seed: int) -> Path:
    """Clients in the UCI layout: a quarter fall behind often and mostly default."""
    rng = random.Random(seed)
    columns = ["ID", "LIMIT_BAL", *_STATUS, *[f"BILL_AMT{i}" for i in range(1, 7)],
               *[f"PAY_AMT{i}" for i in range(1, 7)], "default.payment.next.month"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for client in range(1, clients + 1):
            risky = rng.random() < 0.25
            row = {"ID": client, "LIMIT_BAL": rng.choice([20_000, 50_000, 100_000])}
            for month, status in enumerate(_STATUS, start=1):
                bill = rng.randrange(1_000, 15_000)
                behind = risky and rng.random() < 0.6
                row[status] = rng.choice([1, 2]) if behind else rng.choice([-1, 0])
                row[f"BILL_AMT{month}"] = bill
                row[f"PAY_AMT{month}"] = bill // 20 if behind else bill
            defaulted = rng.random() < (0.8 if risky else 0.05)
            row["default.payment.next.month"] = int(defaulted)
            writer.writerow(row)
    return path


def test_the_credit_evaluation_measures_the_default_risk_the_worker_wrote(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    table = _uci_table(tmp_path / "uci.csv", clients=1_000, seed=3)
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
    table = _uci_table(tmp_path / "uci.csv", clients=200, seed=4)  # too short to learn
    refused = riskstream("evaluate-credit", "--data", str(table), "--cohort-size", "0", env=env)
    assert refused.returncode == 2 and "--cohort-size" in refused.stderr
    done = riskstream("evaluate-credit", "--data", str(table), "--cohort-size", "50",
                      "--bootstrap", broker.bootstrap, "--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "default AUC nan on 0 clients" in done.stdout
    report = (tmp_path / "out" / "report.md").read_text()
    assert "too few, or all of one outcome, for curves" in report
