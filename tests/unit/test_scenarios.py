"""A simulated history measured scenario by scenario, against the simulator's ground truth."""

from __future__ import annotations

from pathlib import Path

from agents.evaluate_simulation import evaluate_simulation
from pipeline.simulator import SimulationConfig


def test_every_scenario_is_counted_against_the_simulators_truth(tmp_path: Path) -> None:
    config = SimulationConfig(users=1_500, months=2, seed=4, scenario_shares={
        "account_takeover": 0.01, "card_testing": 0.01, "bust_out": 0.01, "cash_out": 0.01})
    report, figures = evaluate_simulation(config, tmp_path)
    scenarios = figures["scenarios"]
    assert set(scenarios) == {"account_takeover", "card_testing", "bust_out", "cash_out"}
    for row in scenarios.values():
        assert row["users"] > 0 and 0 <= row["detected"] <= row["users"]
        assert 0 <= row["fraud_alerted_minor"] <= row["fraud_minor"]
        assert row["fraud_stopped_minor"] <= row["fraud_minor"]
    money = figures["money"]
    assert money["fraud_minor"] == sum(row["fraud_minor"] for row in scenarios.values())
    assert money["fraud_alerted_minor"] > 0
    false = figures["false_alerts"]
    assert false["holidays"]["legitimate_purchases"] > 0  # Valentine's day is in February
    assert false["ordinary_days"]["legitimate_purchases"] > 0
    text = report.read_text()
    assert "| account_takeover |" in text and "per 1,000 legitimate purchases" in text
    assert (tmp_path / "report.json").stat().st_size > 100
