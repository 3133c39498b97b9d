"""The credit-line simulator: deterministic, valid, and true to its configured shares."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from agents.simulate import write_simulation
from pipeline.events import event_from_mapping
from pipeline.simulator import PROFILES, SimulationConfig, Simulator
from pipeline.sources import Rejection, read_events
from pipeline.timeutil import DAY, parse_time

CONFIG = SimulationConfig(users=8000, months=3, seed=5)


@pytest.fixture(scope="module")
def simulated() -> tuple[Simulator, list[dict]]:
    simulator = Simulator(CONFIG)
    records = [record for day in simulator.days() for record in day]
    return simulator, records


def _within(observed: int, trials: int, share: float, sigmas: float = 4.0) -> bool:
    """Whether a count is within ``sigmas`` binomial standard deviations of its expectation."""
    spread = sigmas * math.sqrt(max(trials * share * (1 - share), 1.0))
    return abs(observed - trials * share) <= spread


@pytest.mark.parametrize("output_format", ["jsonl", "parquet"])
def test_the_same_seed_writes_byte_identical_files(tmp_path: Path, output_format: str) -> None:
    config = SimulationConfig(users=500, months=2, seed=9)
    first = write_simulation(config, tmp_path / "a", output_format, progress=False)
    second = write_simulation(config, tmp_path / "b", output_format, progress=False)
    for one, other in zip(first.paths, second.paths, strict=True):
        assert one.read_bytes() == other.read_bytes()
    other_seed = write_simulation(SimulationConfig(users=500, months=2, seed=10),
                                  tmp_path / "c", output_format, progress=False)
    assert other_seed.paths[0].read_bytes() != first.paths[0].read_bytes()
    # What it writes is what replay reads: every record valid, in event-time order.
    events = [record.item for record in read_events(first.paths[0])]
    assert len(events) == first.events
    assert not any(isinstance(event, Rejection) for event in events)
    times = [event.event_time for event in events]
    assert times == sorted(times)


def test_every_record_is_valid_and_in_event_time_order(simulated) -> None:
    _, records = simulated
    events = [event_from_mapping(record) for record in records]
    times = [event.event_time for event in events]
    assert times == sorted(times)
    assert len({event.event_id for event in events}) == len(events)


def test_fraud_scenarios_happen_in_their_configured_shares(simulated) -> None:
    simulator, _ = simulated
    for name, share in CONFIG.scenario_shares.items():
        happened = simulator.stats[f"scenario_{name}"]
        assert _within(happened, CONFIG.users, share), (name, happened)


def test_bills_are_repaid_in_each_profiles_shares(simulated) -> None:
    simulator, records = simulated
    profile_of = {user["user_id"]: user["profile"] for user in simulator.users()
                  if user["scenario"] == "none"}
    end = parse_time(records[-1]["event_time"])
    repayments = {(r["user_id"], r["due_time"]): r for r in records if r["type"] == "repayment"}
    first_default = {}
    for record in records:
        if record["type"] == "label" and record["kind"] == "default":
            first_default.setdefault(record["user_id"], record["event_time"])
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for bill in (r for r in records if r["type"] == "statement"):
        user = bill["user_id"]
        if user not in profile_of or bill["balance_minor"] <= 0:
            continue
        if parse_time(bill["due_time"]) + 25 * DAY > end:
            continue  # its repayment could fall after the end of the history
        if user in first_default and first_default[user] <= bill["event_time"]:
            continue  # a stopped line is not billed for new behaviour
        paid = repayments.get((user, bill["due_time"]))
        if paid is None:
            outcome = "never"
        elif paid["event_time"] > paid["due_time"]:
            outcome = "late"
        elif paid["amount_minor"] < bill["balance_minor"]:
            outcome = "partial"
        else:
            outcome = "full"
        outcomes[profile_of[user]][outcome] += 1
    for profile in PROFILES:
        counts = outcomes[profile.name]
        bills = sum(counts.values())
        assert bills > 300, (profile.name, bills)
        for outcome, share in zip(("full", "partial", "late", "never"), profile.repayment,
                                  strict=True):
            assert _within(counts[outcome], bills, share), (profile.name, outcome, counts)


def test_labels_arrive_late_and_only_for_fraud_or_unpaid_bills(simulated) -> None:
    simulator, records = simulated
    scenario_of = {user["user_id"]: user["scenario"] for user in simulator.users()}
    purchases = {r["event_id"]: r for r in records if r["type"] == "transaction"}
    labels = [r for r in records if r["type"] == "label"]
    assert {label["kind"] for label in labels} == {"chargeback", "fraud", "default"}
    for label in labels:
        if label["kind"] == "default":
            continue
        purchase = purchases[label["transaction_id"]]
        delay = parse_time(label["event_time"]) - parse_time(purchase["event_time"])
        assert 5 * DAY <= delay <= 40 * DAY
        assert scenario_of[label["user_id"]] != "none"
    # Holidays bring more spending, and none of it is labelled.
    per_day = Counter(r["event_time"][:10] for r in purchases.values())
    ordinary = sorted(per_day.values())[len(per_day) // 2]
    assert per_day["2026-02-14"] > 2 * ordinary


def test_cash_out_uses_round_amounts_at_shared_colluding_merchants(simulated) -> None:
    simulator, records = simulated
    colluding = {f"m{m:06d}" for m in simulator.colluding}
    cash_out = [r for r in records if r["type"] == "transaction" and r["merchant_id"] in colluding]
    assert cash_out and all(r["amount_minor"] % 10_000 == 0 for r in cash_out)
    assert len({r["user_id"] for r in cash_out}) > len({r["merchant_id"] for r in cash_out}) / 2


def _raises(events: list[dict]) -> int:
    from pipeline.engine import RiskEngine
    from pipeline.exceptions import InvalidEvent

    engine, raised = RiskEngine(), 0
    for record in events:
        try:
            outputs = engine.process(event_from_mapping(record))
        except InvalidEvent:
            continue
        raised += sum(output.value.get("kind") == "increase" for output in outputs)
    return raised


def test_a_demo_history_raises_limits_from_the_months_it_says_it_needs() -> None:
    from pipeline.demo import MONTHS_FOR_RAISES, generate_demo_history

    def raises(months: int) -> int:
        return _raises(generate_demo_history(users=300, months=months, seed=3).events)

    assert raises(MONTHS_FOR_RAISES - 1) == 0 < raises(MONTHS_FOR_RAISES)


def test_simulate_and_demo_say_when_a_history_is_too_short_for_raises(tmp_path: Path) -> None:
    import subprocess
    import sys

    riskstream = str(Path(sys.executable).parent / "riskstream")
    short = subprocess.run([riskstream, "simulate", "--users", "50", "--months", "2",
                            "--out", str(tmp_path / "s"), "--no-progress"],
                           capture_output=True, text=True, check=True)
    assert "too short for limit raises" in short.stderr and "--months 5" in short.stderr
    enough = subprocess.run([riskstream, "simulate", "--users", "50", "--months", "5",
                             "--out", str(tmp_path / "t"), "--no-progress"],
                            capture_output=True, text=True, check=True)
    assert "too short" not in enough.stderr
