"""The credit side: a line's record, its default model, and outcomes learned only when known."""

from __future__ import annotations

import itertools
import random
from array import array

import pytest

from pipeline.config import RiskConfig
from pipeline.credit import CREDIT_INPUTS, MAX_PENDING_CYCLES, CreditHistory, DefaultModel
from pipeline.engine import RiskEngine
from pipeline.events import Label, Repayment, Statement, event_from_mapping
from pipeline.exceptions import InvalidEvent
from pipeline.outputs import CREDIT_SCORES, LIMIT_ADJUSTMENTS, Output
from pipeline.timeutil import DAY, parse_time
from tests.conftest import SHARED_DATA, assert_valid

T0 = parse_time("2026-01-01T00:00:00Z")
MONTH = 30 * DAY
LIMIT = 1_000_000
_ids = itertools.count()


def statement(user: str, month: int, balance: int, past_due: int = 0) -> Statement:
    at = T0 + month * MONTH
    return Statement(f"st-{next(_ids)}", user, balance, "CNY", at, at + 20 * DAY, LIMIT,
                     past_due)


def repayment(user: str, month: int, amount: int, late: bool = False) -> Repayment:
    at = T0 + month * MONTH
    return Repayment(f"rp-{next(_ids)}", user, amount, "CNY", at + (25 if late else 15) * DAY,
                     at + 20 * DAY)


def run(engine: RiskEngine, events) -> list[Output]:
    outputs: list[Output] = []
    for event in sorted(events, key=lambda e: e.event_time):
        outputs.extend(engine.process(event))
    for output in outputs:
        assert_valid(output.stream, output.value)
    return outputs


def test_a_lines_record_is_its_bills_and_what_was_paid_of_them() -> None:
    credit = CreditHistory()
    credit.add_statement(400_000, LIMIT, 0)
    credit.add_repayment(100_000)
    credit.add_statement(600_000, LIMIT, 1)
    inputs = dict(zip(CREDIT_INPUTS, credit.inputs(on_time_repayments=3, late_repayments=1),
                      strict=True))
    assert inputs["utilisation"] == pytest.approx(0.6)
    assert inputs["utilisation_previous"] == pytest.approx(0.4)
    assert inputs["utilisation_mean"] == pytest.approx(0.5)
    assert inputs["paid_share_last"] == pytest.approx(0.25)  # 100k of the 400k bill
    credit.add_repayment(600_000)  # paid in the new cycle: counted at the next bill
    assert credit.inputs(3, 1)[CREDIT_INPUTS.index("paid_share_last")] == pytest.approx(0.25)
    assert inputs["late_share"] == pytest.approx(0.25)
    assert inputs["past_due"] == 1.0 and inputs["past_due_previous"] == 0.0
    assert credit.in_use == 2


def test_a_line_keeps_only_its_latest_cycles_in_their_windows() -> None:
    credit = CreditHistory()
    for month in range(MAX_PENDING_CYCLES + 2):
        credit.add_statement(1_000, LIMIT, 0)
        cycle = credit.track(credit.inputs(0, 0), matures_at=month)
        assert cycle.number == credit.statements
    assert [c.number for c in credit.pending] == list(range(3, MAX_PENDING_CYCLES + 3))
    assert credit.matured(1) is None  # dropped unlearned
    third = credit.matured(3)
    assert third is not None and not third.defaulted and credit.matured(3) is None
    credit.mark_default()
    assert len(credit.pending) == MAX_PENDING_CYCLES - 1
    assert all(cycle.defaulted for cycle in credit.pending)


def test_outcomes_are_learned_only_once_known() -> None:
    config = RiskConfig()
    engine = RiskEngine(config)
    model = engine.default_model
    run(engine, [statement("good", 0, 300_000), repayment("good", 0, 300_000),
                 statement("bad", 0, 300_000)])
    assert (model.defaults_seen, model.repaid_seen) == (0, 0)
    # A default label marks the defaulter's cycle; like every cycle it is learned when its
    # window (due date + default_horizon) closes, so both outcomes come equally late.
    run(engine, [Label("lb-1", "bad", "default", T0 + 50 * DAY)])
    assert (model.defaults_seen, model.repaid_seen) == (0, 0)
    window_end = T0 + 20 * DAY + config.default_horizon
    run(engine, [Statement("st-x", "other", 0, "CNY", window_end - DAY, window_end + 19 * DAY)])
    assert (model.defaults_seen, model.repaid_seen) == (0, 0)
    run(engine, [Statement("st-y", "other", 0, "CNY", window_end + DAY, window_end + 21 * DAY)])
    assert (model.defaults_seen, model.repaid_seen) == (1, 1)


def test_a_line_still_behind_when_its_window_closes_is_not_learned_as_repaid() -> None:
    config = RiskConfig()
    engine = RiskEngine(config)
    events = [statement("late", month, 500_000, past_due=min(month, 2)) for month in range(4)]
    # Its first three cycles' windows close by day 175; its last bill is still 2 cycles behind.
    events.append(Statement("st-z", "someone", 0, "CNY", T0 + 175 * DAY, T0 + 195 * DAY))
    run(engine, events)
    assert engine.default_model.repaid_seen == 0
    assert engine.default_model.defaults_seen == 0  # two cycles behind is not yet a default


def test_a_bill_three_cycles_past_due_is_a_default_that_freezes_the_line() -> None:
    engine = RiskEngine(RiskConfig())
    outputs = run(engine, [statement("u", month, 500_000, past_due=month) for month in range(4)])
    assert engine.users["u"].defaulted
    # The cycles in their windows defaulted; the bill that showed it opens one more cycle.
    assert [c.defaulted for c in engine.users["u"].credit.pending] == [True, True, True, False]
    freezes = [o.value for o in outputs
               if o.stream == LIMIT_ADJUSTMENTS and o.value["kind"] == "freeze"]
    assert len(freezes) == 1 and "3 cycles past due" in freezes[0]["reason"]
    # The cycles in their windows then are learned as defaults when the windows close.
    run(engine, [Statement("st-late", "v", 0, "CNY", T0 + 175 * DAY, T0 + 195 * DAY)])
    assert engine.default_model.defaults_seen == 3


def _population(engine: RiskEngine, users: int, months: int, seed: int) -> dict[str, bool]:
    """Lines that pay their bills in full, and lines that fall behind and default."""
    rng = random.Random(seed)
    events, truth = [], {}
    for index in range(users):
        user, risky = f"u{seed}-{index}", rng.random() < 0.3
        truth[user] = risky
        behind = 0
        for month in range(months):
            balance = rng.randrange(100_000, 900_000)
            events.append(statement(user, month, balance, past_due=behind))
            if risky and rng.random() < 0.6:
                behind = min(behind + 1, 2)
                events.append(repayment(user, month, balance // 20, late=True))
            else:
                behind = 0
                events.append(repayment(user, month, balance))
        if risky:
            events.append(Label(f"lb-{user}", user, "default", T0 + (months + 1) * MONTH))
    run(engine, events)
    return truth


def test_the_default_model_ranks_lines_that_fall_behind_above_lines_that_pay() -> None:
    from pipeline.evaluation import roc_auc

    engine = RiskEngine(RiskConfig(emit_scores=True))
    _population(engine, users=400, months=6, seed=1)
    assert not engine.default_model.warm  # its defaults are learned as their windows close
    # A fresh cohort, scored by the model the first one taught.
    late = T0 + 9 * MONTH
    truth, events = {}, []
    rng = random.Random(2)
    for index in range(200):
        user, risky = f"new-{index}", index % 3 == 0
        truth[user] = risky
        balance = rng.randrange(100_000, 900_000)
        events.extend([
            Statement(f"st-new-{index}", user, balance, "CNY", late, late + 20 * DAY, LIMIT,
                      2 if risky else 0),
            Repayment(f"rp-new-{index}", user, balance // 20 if risky else balance, "CNY",
                      late + (25 if risky else 15) * DAY, late + 20 * DAY),
        ])
    outputs = run(engine, events)
    assert engine.default_model.warm
    assert sum(o.stream == CREDIT_SCORES for o in outputs) == 200  # a review per statement
    risks = {user: engine.users[user].credit.risk for user in truth}
    assert roc_auc([truth[u] for u in risks], [risks[u] for u in risks]) > 0.95


def test_a_warm_model_raises_safe_lines_and_freezes_risky_ones_until_they_recover() -> None:
    # In this small population a spotless line still scores about 0.07 (risky lines have
    # clean months too), so the raise bar is set above that.
    engine = RiskEngine(RiskConfig(raise_max_default_risk=0.1))
    _population(engine, users=400, months=6, seed=1)
    start = 8
    safe = [event for month in range(start, start + 4)
            for event in (statement("safe", month, 400_000), repayment("safe", month, 400_000))]
    outputs = run(engine, safe)
    increases = [o.value for o in outputs
                 if o.stream == LIMIT_ADJUSTMENTS and o.value["kind"] == "increase"]
    assert len(increases) == 1, "one raise: three on-time repayments, bills in use"
    assert "4 statements in a row with a balance" in increases[0]["reason"]
    assert "default risk 0.0" in increases[0]["reason"]
    assert increases[0]["limit_after_minor"] == LIMIT * 12 // 10
    later = start + 4
    risky = [statement("risky", later, 800_000, past_due=2),
             repayment("risky", later, 1_000, late=True)]
    outputs = run(engine, risky)
    kinds = [o.value["kind"] for o in outputs if o.stream == LIMIT_ADJUSTMENTS]
    assert kinds == ["risk_freeze"]
    user = engine.users["risky"]
    assert user.hold is not None and user.available_minor == 0
    # It catches up: current again and paying its bills in full, so the freeze is lifted.
    outputs = run(engine, [event for month in range(later + 1, later + 5)
                           for event in (statement("risky", month, 100_000),
                                         repayment("risky", month, 100_000))])
    restores = [o.value for o in outputs
                if o.stream == LIMIT_ADJUSTMENTS and o.value["kind"] == "restore"]
    assert len(restores) == 1 and "default risk" in restores[0]["reason"]
    assert engine.users["risky"].hold is None


@pytest.mark.parametrize("value, kind", [
    ("2", "wrong-type"), (True, "wrong-type"), (-1, "invalid-value"), (121, "invalid-value"),
])
def test_past_due_cycles_are_validated(value, kind) -> None:
    record = {"type": "statement", "event_id": "s", "user_id": "u", "balance_minor": 1,
              "currency": "CNY", "event_time": "2026-01-01T00:00:00Z",
              "due_time": "2026-01-21T00:00:00Z", "past_due_cycles": value}
    with pytest.raises(InvalidEvent) as error:
        event_from_mapping(record)
    assert error.value.kind == kind


UCI_DEV = SHARED_DATA / "uci_taiwan_dev_ids_1_20000.csv"


@pytest.mark.skipif(not UCI_DEV.exists(), reason="shared UCI data not present")
def test_on_the_uci_clients_the_default_model_ranks_well_and_raises_safer_clients() -> None:
    """The core on 20,000 real clients, prequentially (the full figures: evaluate-credit)."""
    from pipeline.adapters import read_uci_taiwan, uci_defaults
    from pipeline.evaluation import credit_metrics

    engine = RiskEngine(RiskConfig(currency="TWD", emit_scores=True, max_limit_minor=10**11))
    latest, raised, frozen = {}, set(), set()
    for record in read_uci_taiwan(UCI_DEV, cohort_size=250):
        for output in engine.process(record.item):
            if output.stream == CREDIT_SCORES:
                latest[output.key] = output.value["default_risk"]
            elif output.value["kind"] == "increase":
                raised.add(output.key)
            elif output.value["kind"] == "risk_freeze":
                frozen.add(output.key)
    metrics = credit_metrics(latest, uci_defaults(UCI_DEV), raised, frozen)
    assert metrics["scored"] > 19_000
    assert metrics["auc_roc"] > 0.70
    assert metrics["raised_share"] > 0.3
    assert metrics["raised_default_rate"] < 0.7 * metrics["base_rate"]
    assert metrics["frozen_precision"] > 2 * metrics["base_rate"]


def test_the_default_model_can_rank_an_idle_line_above_a_lightly_used_one() -> None:
    """Risk is not monotone in utilisation: idle lines and lines near their limit default more
    than lines used a little. The utilisation's spline terms let a linear model draw that."""
    rng = random.Random(3)
    model = DefaultModel(min_defaults=1, min_repaid=1, average_window=2_000)

    def line(utilisation: float) -> array:
        credit = CreditHistory()
        for _ in range(3):
            credit.add_statement(int(utilisation * LIMIT), LIMIT, 0)
        return credit.inputs(on_time_repayments=3, late_repayments=0)

    for _ in range(20_000):
        utilisation = rng.random()
        risk = 0.3 if utilisation < 0.05 else 0.05 if utilisation < 0.5 else 0.4
        model.learn_one(line(utilisation), rng.random() < risk)
    idle, light, heavy = (model.score_one(line(u)) for u in (0.0, 0.2, 0.95))
    assert light < idle and light < heavy
