"""``riskstream evaluate`` through the real broker and worker, on a generated handbook history.

The history has the handbook's layout and its three fraud scenarios, on dates of its own, so
the test week is chosen with ``--test-start`` as it would be for any other labelled history.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agents.broker import EmbeddedBroker
from agents.evaluate import HANDBOOK_LIMIT_MINOR, evaluate_handbook
from agents.evaluation_report import (
    caveats,
    console_summary,
    short_test_week_note,
    short_warmup_note,
)
from pipeline.config import RiskConfig
from pipeline.evaluation import (
    ScoredPurchase,
    handbook_test_set,
    ranking_metrics,
    train_start_day,
)
from pipeline.handbook import (
    delay_ceiling,
    handbook_truth,
    hidden_frauds,
    revealed_metrics,
    score_history,
)
from pipeline.timeutil import DAY
from tests.handbook_data import START, handbook_history, split_history

pytestmark = pytest.mark.integration

_TEST_START = "2019-03-22"  # days 21..27: a training week and a delay week before it


def test_the_evaluation_measures_what_the_worker_scored_in_the_chosen_test_week(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    history = handbook_history(tmp_path / "data" / "history.parquet", customers=300,
                               terminals=150, seed=5)
    result = evaluate_handbook(history, tmp_path / "report", bootstrap=broker.bootstrap,
                               test_week_start=_TEST_START)
    metrics = result.metrics
    # Every purchase of the test week came back scored from the worker, less the customers
    # whose fraud was known by then: the protocol's test set, on the week asked for.
    first_day = int(START.timestamp()) * 1_000_000 // DAY
    expected = handbook_test_set(
        [ScoredPurchase(tx, known.customer, known.event_time // DAY - first_day, 0.0,
                        known.fraud, known.scenario)
         for tx, known in handbook_truth(history).items()],
        train_start_day=7,  # days 7..13 train, 14..20 wait for labels, 21..27 test
    )
    assert (metrics["test_transactions"], metrics["test_frauds"]) == (
        len(expected), sum(p.fraud for p in expected))
    assert metrics["test_frauds"] > 20
    assert metrics["test_week"] == "2019-03-22..2019-03-28"
    # The scores that came back through the broker are the ones one engine reading the history
    # in event-time order gives: the merchant replica and the topics' alignment are exact.
    # (A replica taking its inputs for silent on a fetch older than the worker's once let the
    # worker score purchases without the week before them: AUC 0.56..0.70 from run to run.)
    core = score_history(history, RiskConfig(default_limit_minor=HANDBOOK_LIMIT_MINOR))
    core_test = handbook_test_set(core, train_start_day(_TEST_START))
    reference = ranking_metrics(core_test)
    truth = handbook_truth(history)
    hidden = hidden_frauds(truth)
    revealed = revealed_metrics(core_test, hidden)
    for name in ("auc_roc", "average_precision", "card_precision_at_100"):
        assert metrics[name] == pytest.approx(reference[name], abs=1e-12), name
        assert metrics["revealed"][name] == pytest.approx(revealed[name], abs=1e-12), name
    # Some of the week's frauds are at terminals no label has revealed yet.
    assert 0 < metrics["revealed"]["test_frauds"] < metrics["test_frauds"]
    assert metrics["auc_roc"] > 0.65  # random scores would give 0.5
    # The 28 days hold two whole protocols: the chosen week's, and the one a week earlier.
    weeks = metrics["weeks"]
    assert [(w["test_week"], w["chosen"], w["short_warmup"]) for w in weeks] == [
        ("2019-03-15", False, True), ("2019-03-22", True, True)]
    for week, test_start in zip(weeks, ("2019-03-15", _TEST_START), strict=True):
        week_test = handbook_test_set(core, train_start_day(test_start))
        figures = ranking_metrics(week_test)
        ceiling = delay_ceiling(truth, train_start_day=train_start_day(test_start))
        without_hidden = revealed_metrics(week_test, hidden)
        for name in ("test_frauds", "auc_roc", "average_precision", "card_precision_at_100"):
            assert week[name] == pytest.approx(figures[name], abs=1e-12), (test_start, name)
            assert week["ceiling"][name] == pytest.approx(ceiling[name], abs=1e-12), name
            assert week["revealed"][name] == pytest.approx(without_hidden[name], abs=1e-12)
        alerted = [p for p in week_test if p.score >= metrics["alert_threshold"]]
        assert week["alert_precision"] == pytest.approx(
            sum(p.fraud for p in alerted) / len(alerted))
        assert week["alert_recall"] == pytest.approx(
            sum(p.fraud for p in alerted) / sum(p.fraud for p in week_test))
    assert weeks[1]["alert_precision"] == metrics["alert_precision"]
    assert metrics["ceiling"] == weeks[1]["ceiling"]  # the chosen week's, as in that table
    assert metrics["limit_cuts"] > 0
    money = metrics["money"]
    assert money["cuts"] == metrics["limit_cuts"]
    assert 0 < money["test_fraud_alerted_minor"] <= money["test_fraud_minor"]
    assert money["fraud_stopped_minor"] <= money["fraud_after_cuts_minor"]
    assert money["test_fraud_minor"] == sum(truth[p.transaction_id].amount_minor
                                            for p in handbook_test_set(
                                                core, train_start_day(_TEST_START)) if p.fraud)
    assert set(metrics["recall_by_scenario"]) == {
        "amount > 220", "compromised terminal", "compromised customer"}
    report = result.report.read_text()
    assert "test week 2019-03-22..2019-03-28" in report and "## In money" in report
    # Three weeks before the test week, where a merchant's known frauds reach back 37 days.
    assert (metrics["days_before_test"], metrics["days_to_fill"]) == (21, 37)
    assert metrics["test_days_covered"] == 7 and "Short test week" not in report
    assert "**Short warm-up:** the history starts 21 days before the test week" in report
    assert "## Every test week of the history" in report
    assert (f"| **2019-03-22** * | {metrics['auc_roc']:.3f} | "
            f"{metrics['average_precision']:.3f} | ") in report
    assert f"| 2019-03-15 * | {weeks[0]['auc_roc']:.3f} | " in report
    earlier_ceiling, earlier_revealed = weeks[0]["ceiling"], weeks[0]["revealed"]
    assert (f"| {earlier_ceiling['auc_roc']:.3f} / {earlier_ceiling['average_precision']:.3f} "
            f"/ {earlier_ceiling['card_precision_at_100']:.3f} | "
            f"{earlier_revealed['auc_roc']:.3f} / "
            f"{earlier_revealed['average_precision']:.3f} |") in report
    assert "| ceiling AUC / AP / CP@100 | hidden frauds left out: AUC / AP |" in report
    assert f"**{metrics['average_precision']:.3f}**" in report
    assert "ceiling" in report
    hidden_count = metrics["test_frauds"] - metrics["revealed"]["test_frauds"]
    assert (f"| riskstream on the frauds a label could reveal (the {hidden_count:,} hidden "
            f"ones left out) | {metrics['revealed']['auc_roc']:.3f} | ") in report
    summary = console_summary(result)
    assert summary[0].startswith(f"AUC ROC {metrics['auc_roc']:.3f}, Average Precision ")
    assert summary[1].startswith(
        f"ceiling for the label delay: AUC ROC {metrics['ceiling']['auc_roc']:.3f}, ")
    assert summary[1].endswith(
        f"without the {hidden_count:,} frauds no label could reveal yet: AUC ROC "
        f"{metrics['revealed']['auc_roc']:.3f}, Average Precision "
        f"{metrics['revealed']['average_precision']:.3f}")
    for picture in ("roc.png", "precision_recall.png"):
        assert (tmp_path / "report" / picture).stat().st_size > 1_000


def test_histories_that_follow_one_another_are_measured_as_one(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    # A hold-out that continues a history: its test week scored by models that lived through
    # the history before it, the fraud labels of its last week released into the next file's.
    history = handbook_history(tmp_path / "data" / "history.parquet", customers=120,
                               terminals=60, seed=8)
    earlier, later = split_history(history, 18)
    result = evaluate_handbook([earlier, later], tmp_path / "report",
                               bootstrap=broker.bootstrap, test_week_start=_TEST_START)
    metrics = result.metrics
    whole = ranking_metrics(handbook_test_set(
        score_history(history, RiskConfig(default_limit_minor=HANDBOOK_LIMIT_MINOR)),
        train_start_day(_TEST_START)))
    assert metrics["test_frauds"] == whole["test_frauds"] > 0
    for name in ("test_transactions", "auc_roc", "average_precision", "card_precision_at_100"):
        assert metrics[name] == pytest.approx(whole[name], abs=1e-12), name
    assert metrics["histories"] == ["earlier.parquet", "later.parquet"]
    assert "(`earlier.parquet`, then `later.parquet`)" in result.report.read_text()


def test_only_a_test_week_too_close_to_the_history_start_is_said_to_be_warming_up() -> None:
    assert short_warmup_note({"days_before_test": 37, "days_to_fill": 37}) is None
    note = short_warmup_note({"days_before_test": 36, "days_to_fill": 37})
    assert note is not None and "starts 36 days before the test week" in note
    assert "--data earlier.parquet --data holdout.parquet" in note


def test_only_a_test_week_the_history_ends_inside_is_said_to_be_short() -> None:
    warm_and_whole = {"days_before_test": 37, "days_to_fill": 37, "test_days_covered": 7}
    assert short_test_week_note(warm_and_whole) is None
    assert caveats(warm_and_whole) == []
    short = {**warm_and_whole, "test_days_covered": 6}
    note = short_test_week_note(short)
    assert note is not None and "ends on day 6 of the test week's 7" in note
    assert caveats(short) == [note]
    both = {**short, "days_before_test": 30}
    assert caveats(both) == [short_warmup_note(both), note]


def test_the_cli_refuses_histories_out_of_order_before_running(tmp_path: Path) -> None:
    from tests.integration.test_cli import riskstream

    history = handbook_history(tmp_path / "history.parquet", customers=20, terminals=10,
                               seed=6)
    earlier, later = split_history(history, 18)
    refused = riskstream("evaluate", "--data", str(later), "--data", str(earlier),
                         "--test-start", _TEST_START, "--out", str(tmp_path / "out"),
                         env=dict(os.environ))
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "--data" in refused.stderr
    assert f"{earlier} starts at 2019-03-01" in refused.stderr
    assert "oldest first" in refused.stderr
    assert not (tmp_path / "out").exists()


def test_a_history_without_scenarios_is_measured_and_says_what_it_cannot_measure(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    whole = handbook_history(tmp_path / "history.parquet", customers=80, terminals=40,
                             seed=7, scenario_column=False)
    history, _ = split_history(whole, 25)  # ends on the test week's fourth day
    result = evaluate_handbook(history, tmp_path / "report", bootstrap=broker.bootstrap,
                               test_week_start=_TEST_START)
    metrics = result.metrics
    assert metrics["test_frauds"] > 0
    assert metrics["test_days_covered"] == 4
    # The chosen week is not whole; the one before it is, and has the table to itself.
    assert [(w["test_week"], w["chosen"]) for w in metrics["weeks"]] == [("2019-03-15", False)]
    assert 0.0 <= metrics["average_precision"] <= 1.0
    assert metrics["recall_by_scenario"] is None
    assert metrics["ceiling"] is None and metrics["revealed"] is None
    assert len(console_summary(result)) == 1  # no ceiling to print
    report = result.report.read_text()
    assert f"**{metrics['average_precision']:.3f}**" in report
    assert "recall by scenario: not available (no `TX_FRAUD_SCENARIO` column)" in report
    assert "No ceiling: the history has no `TX_FRAUD_SCENARIO` column" in report
    assert "**Short test week:** the history ends on day 4 of the test week's 7" in report
    assert "## Every test week of the history" in report
    assert f"| 2019-03-15 * | {metrics['weeks'][0]['auc_roc']:.3f} | " in report
    assert metrics["weeks"][0]["ceiling"] is None and "ceiling AUC" not in report


def test_the_cli_refuses_a_test_week_outside_the_history_before_running(
    tmp_path: Path
) -> None:
    from tests.integration.test_cli import riskstream

    history = handbook_history(tmp_path / "history.parquet", customers=20, terminals=10,
                               seed=6)
    refused = riskstream("evaluate", "--data", str(history), "--out", str(tmp_path / "out"),
                         env=dict(os.environ))  # the handbook's own week, 2018-08-08
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "--test-start" in refused.stderr
    assert "2018-08-08..2018-08-14" in refused.stderr
    assert "2019-03-01..2019-03-28" in refused.stderr
    assert not (tmp_path / "out").exists()
