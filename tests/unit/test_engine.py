"""The engine of one partition: behaviours A and B, labels, lateness, determinism, snapshots."""

from __future__ import annotations

import itertools
import pickle
from collections import Counter

import pytest

from pipeline.config import RiskConfig
from pipeline.demo import generate_demo_history
from pipeline.engine import RiskEngine
from pipeline.events import Event, Label, Repayment, Transaction, event_from_mapping
from pipeline.exceptions import InvalidEvent
from pipeline.learning import INPUTS
from pipeline.outputs import ALERTS, LIMIT_ADJUSTMENTS, Output
from pipeline.timeutil import DAY, HOUR, MINUTE, format_time, parse_time
from tests.conftest import assert_valid

T0 = parse_time("2026-01-01T10:00:00Z")
_ids = itertools.count()


def tx(user: str, at: int, amount: int, merchant: str = "m1", currency: str = "CNY") -> Transaction:
    return Transaction(f"tx-{next(_ids)}", user, merchant, amount, currency, at)


def repay(user: str, at: int, amount: int, due: int | None) -> Repayment:
    return Repayment(f"rp-{next(_ids)}", user, amount, "CNY", at, due)


def label(user: str, at: int, kind: str = "fraud", transaction_id: str | None = None) -> Label:
    return Label(f"lb-{next(_ids)}", user, kind, at, transaction_id)


def run(engine: RiskEngine, events: list[Event]) -> list[Output]:
    outputs: list[Output] = []
    for event in events:
        outputs.extend(engine.process(event))
    for output in outputs:
        assert_valid(output.stream, output.value)
    return outputs


def habitual_purchases(user: str, count: int = 12, amount: int = 10_000) -> list[Event]:
    """``count`` ordinary purchases, one every two days, amounts within +-10 %."""
    return [
        tx(user, T0 + index * 2 * DAY, amount + (index % 3 - 1) * amount // 10, f"m{index % 3}")
        for index in range(count)
    ]


def adjustments(outputs: list[Output], kind: str | None = None) -> list[dict]:
    return [
        o.value for o in outputs
        if o.stream == LIMIT_ADJUSTMENTS and (kind is None or o.value["kind"] == kind)
    ]


def test_behaviour_b_alert_cut_and_automatic_restore_in_event_time() -> None:
    engine = RiskEngine()
    history = habitual_purchases("u1")
    burst_at = T0 + 30 * DAY
    big = tx("u1", burst_at, 300_000, merchant="unknown")
    outputs = run(engine, [*history, big])
    alerts = [o.value for o in outputs if o.stream == ALERTS]
    assert [a["transaction_id"] for a in alerts] == [big.event_id]
    assert alerts[0]["severity"] == "high" and alerts[0]["action"] == "temporary_cut"
    assert any("typical purchase" in reason for reason in alerts[0]["reasons"])
    (cut,) = adjustments(outputs, "temporary_cut")
    spent = sum(event.amount_minor for event in history if isinstance(event, Transaction))
    available_after_purchase = 500_000 - spent - 300_000
    assert cut["available_before_minor"] == available_after_purchase
    assert cut["available_after_minor"] == available_after_purchase // 10
    assert cut["expires_at"] == format_time(burst_at + 72 * HOUR)
    assert cut["alert_id"] == alerts[0]["alert_id"]

    # Nothing is restored before the expiry, whatever the wall clock does ...
    before = run(engine, [tx("u2", burst_at + 71 * HOUR, 5_000)])
    assert not adjustments(before)
    # ... and the first event at or after it (any user of the partition) restores the cut.
    after = run(engine, [tx("u2", burst_at + 73 * HOUR, 5_000)])
    (restore,) = adjustments(after, "restore")
    assert restore["user_id"] == "u1"
    assert restore["event_time"] == cut["expires_at"]
    assert restore["available_after_minor"] == available_after_purchase
    assert restore["cause_event_id"] == cut["adjustment_id"]


def test_a_confirmed_fraud_label_keeps_the_cut() -> None:
    engine = RiskEngine()
    big = tx("u1", T0 + 30 * DAY, 300_000, merchant="unknown")
    run(engine, [*habitual_purchases("u1"), big])
    confirmed = run(engine, [label("u1", T0 + 31 * DAY, "chargeback", big.event_id)])
    assert [a["kind"] for a in adjustments(confirmed)] == ["hold_confirmed"]
    assert not adjustments(run(engine, [tx("u2", T0 + 40 * DAY, 5_000)]), "restore")


def test_a_legitimate_label_restores_early() -> None:
    engine = RiskEngine()
    big = tx("u1", T0 + 30 * DAY, 300_000, merchant="unknown")
    run(engine, [*habitual_purchases("u1"), big])
    cleared = run(engine, [label("u1", T0 + 30 * DAY + HOUR, "legitimate", big.event_id)])
    assert [a["kind"] for a in adjustments(cleared)] == ["restore"]
    # The timer of the restored cut does not fire a second restore.
    assert not adjustments(run(engine, [tx("u2", T0 + 40 * DAY, 5_000)]))


def test_a_fraud_label_without_a_cut_freezes_the_line() -> None:
    engine = RiskEngine()
    outputs = run(engine, [*habitual_purchases("u1"), label("u1", T0 + 30 * DAY)])
    (freeze,) = adjustments(outputs, "freeze")
    assert freeze["available_after_minor"] == 0


def test_normal_spending_never_alerts() -> None:
    engine = RiskEngine()
    assert run(engine, habitual_purchases("u1", count=40)) == []


def test_a_new_user_is_not_judged_against_a_baseline_it_does_not_have() -> None:
    engine = RiskEngine()
    outputs = run(engine, [tx("u1", T0, 100), tx("u1", T0 + DAY, 400_000)])
    assert not [o for o in outputs if o.stream == ALERTS]


def _loyal_year(user: str, months: int = 4) -> list[Event]:
    events: list[Event] = []
    for month in range(months):
        start = T0 + month * 30 * DAY
        events += [tx(user, start + day * 2 * DAY, 10_000, f"m{day % 4}") for day in range(14)]
        due = start + 50 * DAY
        events.append(repay(user, start + 40 * DAY, 140_000, due))
    return sorted(events, key=lambda event: event.event_time)


def test_behaviour_a_frequent_on_time_user_earns_a_capped_rate_limited_raise() -> None:
    config = RiskConfig()
    engine = RiskEngine(config)
    outputs = run(engine, _loyal_year("u1", months=6))
    raises = adjustments(outputs, "increase")
    assert raises, "a frequent, always-on-time user earns a raise"
    assert raises[0]["limit_after_minor"] == 600_000  # +20 %, in whole CNY 100 steps
    times = [parse_time(r["event_time"]) for r in raises]
    assert all(b - a >= config.raise_min_interval for a, b in itertools.pairwise(times))
    assert all(r["limit_after_minor"] <= config.max_limit_minor for r in raises)


def test_one_late_repayment_forfeits_raises() -> None:
    engine = RiskEngine()
    events = _loyal_year("u1", months=6)
    first_repayment = next(i for i, e in enumerate(events) if isinstance(e, Repayment))
    late = events[first_repayment]
    assert isinstance(late, Repayment) and late.due_time is not None
    events[first_repayment] = Repayment(
        late.event_id, late.user_id, late.amount_minor, "CNY", late.due_time + DAY, late.due_time
    )
    events.sort(key=lambda event: event.event_time)
    assert not adjustments(run(engine, events), "increase")


def test_late_and_future_events_are_refused_without_moving_the_clock() -> None:
    engine = RiskEngine()
    run(engine, [tx("u1", T0 + 10 * DAY, 1000)])
    with pytest.raises(InvalidEvent) as refused:
        engine.process(tx("u1", T0 + 10 * DAY - 2 * HOUR, 1000))
    assert refused.value.kind == "late"
    with pytest.raises(InvalidEvent) as refused:
        engine.process(tx("u1", T0 + 101 * DAY, 1000))
    assert refused.value.kind == "future"
    with pytest.raises(InvalidEvent) as refused:
        engine.process(tx("u1", T0 + 10 * DAY, 1000, currency="USD"))
    assert refused.value.kind == "currency-mismatch"
    assert engine.watermark == T0 + 10 * DAY
    # Within the allowed lateness the event is applied, and counted in its windows.
    run(engine, [tx("u1", T0 + 10 * DAY - 30 * MINUTE, 1000)])
    assert len(engine.users["u1"].windows) == 2


def _demo_events(users: int = 300) -> list[Event]:
    return [event_from_mapping(record) for record in generate_demo_history(users=users).events]


def test_same_events_same_outputs() -> None:
    events = _demo_events()
    assert run(RiskEngine(), events) == run(RiskEngine(), events)


@pytest.mark.parametrize("cut_points", [(1000,), (1, 5000, 9000)])
def test_resuming_from_a_snapshot_gives_the_uninterrupted_outputs(cut_points: tuple) -> None:
    events = _demo_events()
    expected = run(RiskEngine(), events)
    engine = RiskEngine()
    outputs: list[Output] = []
    start = 0
    for cut in (*cut_points, len(events)):
        outputs += run(engine, events[start:cut])
        engine = pickle.loads(pickle.dumps(engine))
        start = cut
    assert outputs == expected


def test_demo_history_shows_both_behaviours_and_nothing_for_normal_users() -> None:
    history = generate_demo_history(users=400)
    outputs = run(RiskEngine(), [event_from_mapping(r) for r in history.events])
    alerted = {o.value["transaction_id"] for o in outputs if o.stream == ALERTS}
    assert alerted == {t for ids in history.burst_transactions.values() for t in ids}
    kinds_by_profile = Counter(
        (history.profiles[o.key], o.value["kind"]) for o in outputs if o.stream == LIMIT_ADJUSTMENTS
    )
    assert {profile for profile, _ in kinds_by_profile} <= {"loyal", "burst"}
    assert kinds_by_profile[("loyal", "increase")] > 0
    assert kinds_by_profile[("burst", "temporary_cut")] == len(history.burst_transactions)


def test_duplicate_event_ids_are_refused_and_not_counted_twice() -> None:
    engine = RiskEngine()
    purchase = tx("u1", T0, 1_000)
    repayment = repay("u1", T0 + 10 * MINUTE, 500, T0 + DAY)
    verdict = label("u1", T0 + 20 * MINUTE, "legitimate")
    run(engine, [purchase, repayment, verdict])
    for event in (purchase, repayment, verdict):
        with pytest.raises(InvalidEvent) as refused:
            engine.process(event)
        assert refused.value.kind == "duplicate"
    user = engine.users["u1"]
    assert len(user.windows) == 1 and user.balance_minor == 500 and user.on_time_repayments == 1
    # A duplicate still refused after a snapshot round trip (hashes are stable).
    restored = pickle.loads(pickle.dumps(engine))
    with pytest.raises(InvalidEvent):
        restored.process(purchase)


def test_a_statement_sets_the_balance_and_an_opening_limit() -> None:
    from pipeline.events import Statement

    engine = RiskEngine()
    run(engine, [tx("u1", T0, 30_000)])
    statement = Statement("st-1", "u1", 120_000, "CNY", T0 + DAY, T0 + 21 * DAY, 2_000_000)
    run(engine, [statement])
    user = engine.users["u1"]
    assert (user.balance_minor, user.limit_minor) == (120_000, 2_000_000)
    assert user.available_minor == 1_880_000
    with pytest.raises(InvalidEvent):  # a statement is applied once
        engine.process(statement)


def test_merchant_risk_counts_a_fraud_only_once_its_label_has_arrived() -> None:
    engine = RiskEngine()
    seen: list[dict[str, float]] = []
    engine.observer = lambda _tx, features, _scored: seen.append(features)
    stolen = tx("victim", T0, 5_000, merchant="shop")
    run(engine, [stolen, tx("other", T0 + HOUR, 5_000, merchant="shop")])
    # Eight days later the purchase at the shop is in the 7-day window ending 7 days back,
    # but no label has come: no risk yet.
    run(engine, [tx("third", T0 + 8 * DAY, 5_000, merchant="shop")])
    assert seen[-1]["merchant_count_7d"] == 2 and seen[-1]["merchant_risk_7d"] == 0.0
    assert seen[-1]["merchant_risk_latest"] == 0.0
    run(engine, [label("victim", T0 + 8 * DAY + HOUR, "chargeback", stolen.event_id),
                 tx("fourth", T0 + 8 * DAY + 2 * HOUR, 5_000, merchant="shop")])
    assert seen[-1]["merchant_risk_7d"] == 0.5  # one fraud among the two purchases
    assert seen[-1]["merchant_risk_latest"] == 0.5  # ... which are its latest known ones
    assert seen[-1]["merchant_ordinary_risk_7d"] == 0.5  # at the victim's usual amount


def test_a_fraud_far_above_its_cards_habits_is_not_held_against_its_merchant() -> None:
    engine = RiskEngine()
    seen: list[dict[str, float]] = []
    engine.observer = lambda _tx, features, _scored: seen.append(features)
    # The card's habits: purchases of 50.00 elsewhere. Then a stolen-card spree of 400.00 at an
    # ordinary shop, and a fraud at its usual amount at a compromised one.
    run(engine, [tx("victim", T0 + i * HOUR, 5_000, merchant=f"usual{i}") for i in range(5)])
    spree = tx("victim", T0 + 6 * HOUR, 40_000, merchant="shop")
    skimmed = tx("victim", T0 + 7 * HOUR, 5_000, merchant="skimmer")
    run(engine, [spree, skimmed, tx("other", T0 + 8 * HOUR, 5_000, merchant="shop"),
                 tx("other", T0 + 9 * HOUR, 5_000, merchant="skimmer")])
    run(engine, [label("victim", T0 + 7 * DAY + 8 * HOUR, "fraud", spree.event_id),
                 label("victim", T0 + 7 * DAY + 8 * HOUR, "fraud", skimmed.event_id)])
    for merchant, ordinary in (("shop", 0.0), ("skimmer", 0.5)):
        run(engine, [tx("third", T0 + 7 * DAY + 10 * HOUR, 5_000, merchant=merchant)])
        assert seen[-1]["merchant_risk_7d"] == 0.5  # every known fraud, as the handbook counts
        assert seen[-1]["merchant_ordinary_risk_7d"] == ordinary
        assert seen[-1]["merchant_ordinary_risk_latest"] == ordinary


def test_a_merchants_fraud_run_dates_from_its_first_known_fraud_after_a_legitimate_purchase(
) -> None:
    engine = RiskEngine()
    seen: list[dict[str, float]] = []
    engine.observer = lambda _tx, features, _scored: seen.append(features)
    # A terminal: an ordinary purchase on day 0, then compromised from day 2 (a fraud a day).
    frauds = [tx(f"card{day}", T0 + day * DAY, 5_000, merchant="terminal") for day in (2, 3, 4)]
    run(engine, [tx("card0", T0, 5_000, merchant="terminal"), *frauds])
    # Day 10: the frauds of days 2 and 3 are known (7 days late), that of day 4 is not yet.
    run(engine, [label(f.user_id, f.event_time + 7 * DAY, "fraud", f.event_id) for f in frauds[:2]])
    run(engine, [tx("card5", T0 + 10 * DAY, 5_000, merchant="terminal")])
    assert seen[-1]["merchant_fraud_run_days"] == 8.0  # began on day 2
    assert seen[-1]["merchant_fraud_run_length"] == 2.0  # the purchase of day 4 is 6 days back
    # Day 11: the day-4 purchase is 7 days back but still unlabelled, so the run is over.
    run(engine, [tx("card6", T0 + 11 * DAY, 5_000, merchant="terminal")])
    assert seen[-1]["merchant_fraud_run_days"] == seen[-1]["merchant_fraud_run_length"] == 0.0
    # Its label arrives: the run is three frauds long and still began on day 2.
    run(engine, [label(frauds[2].user_id, T0 + 11 * DAY + HOUR, "fraud", frauds[2].event_id),
                 tx("card7", T0 + 11 * DAY + 2 * HOUR, 5_000, merchant="terminal")])
    assert seen[-1]["merchant_fraud_run_length"] == 3.0
    assert seen[-1]["merchant_fraud_run_days"] == pytest.approx(9 + 2 / 24)


def test_the_classifier_learns_only_from_released_labels_and_then_ranks_fraud_higher() -> None:
    config = RiskConfig(negative_share=1.0)
    engine = RiskEngine(config)
    classifier = engine.scorer.classifier
    events: list[Event] = []
    moment = T0
    for index in range(400):
        user = f"u{index % 40}"
        moment += 10 * MINUTE
        fraud = index % 10 == 0
        purchase = tx(user, moment, 200_000 if fraud else 5_000, merchant=f"m{index % 7}")
        events.append(purchase)
        if fraud:
            events.append(label(user, moment + 2 * DAY, "chargeback", purchase.event_id))
    events.sort(key=lambda event: event.event_time)
    for event in events:
        before = classifier.learned
        engine.process(event)
        if isinstance(event, Transaction):
            assert classifier.learned == before or event.event_time > T0 + 7 * DAY
    assert classifier.warm and classifier.frauds_seen == 40
    # Legitimate purchases are learned once their 7 days have passed without a label.
    assert classifier.learned == 40
    later = moment + 8 * DAY
    big, small = tx("u1", later, 200_000), tx("u2", later, 5_000)
    scores: list[float] = []
    engine.observer = lambda _tx, _features, scored: scores.append(scored.supervised)
    run(engine, [big, small])
    assert classifier.learned == 400
    assert scores[0] > 0.5 > scores[1]


def test_legitimate_purchases_at_a_merchant_with_known_frauds_are_all_learned() -> None:
    """Only a share of legitimate purchases is learned, but every one at a merchant with known
    frauds is -- weighted by the share, so the classifier learns the same odds in expectation
    -- since they are what teaches it what a merchant's known frauds mean."""
    config = RiskConfig(negative_share=0.25)
    engine = RiskEngine(config)
    learned: list[tuple[str, bool, float]] = []
    merchants: dict[int, str] = {}  # inputs' id -> merchant, to tell the calls apart
    engine.observer = lambda purchase, _f, scored: merchants.__setitem__(
        id(scored.inputs), purchase.merchant_id)
    learn_label = engine.scorer.learn_label

    def spy(inputs, fraud, weight=1.0):  # type: ignore[no-untyped-def]
        learned.append((merchants[id(inputs)], fraud, weight))
        learn_label(inputs, fraud, weight)

    engine.scorer.learn_label = spy  # type: ignore[method-assign]
    fraud = tx("victim", T0, 5_000, merchant="terminal")
    run(engine, [fraud, label("victim", T0 + 7 * DAY, "fraud", fraud.event_id)])
    # From day 8 the terminal's known fraud is in its risk; the shop has none.
    purchases = [tx(f"u{index}", T0 + 8 * DAY + index * MINUTE, 5_000,
                    merchant="terminal" if index % 2 else "shop") for index in range(200)]
    run(engine, [*purchases, tx("late", T0 + 20 * DAY, 5_000, merchant="elsewhere")])
    assert learned[0] == ("terminal", True, 1.0)
    at_terminal = [entry for entry in learned if entry[0] == "terminal" and not entry[1]]
    at_shop = [entry for entry in learned if entry[0] == "shop"]
    assert len(at_terminal) == 100 and {weight for *_, weight in at_terminal} == {0.25}
    assert 10 < len(at_shop) < 45 and {weight for *_, weight in at_shop} == {1.0}


def test_a_fraud_label_applied_after_later_purchases_within_the_lateness_is_learned_as_fraud(
) -> None:
    """A label released at the label delay comes from another topic than the purchases, so it
    may be applied after purchases up to ``allowed_lateness`` later: its purchase must still be
    waiting for it, not learned as legitimate already."""
    config = RiskConfig(negative_share=1.0)
    engine = RiskEngine(config)
    classifier = engine.scorer.classifier
    purchase = tx("u1", T0, 5_000)
    released = T0 + config.label_delay
    run(engine, [purchase, tx("u2", released + config.allowed_lateness - MINUTE, 5_000),
                 label("u1", released, "fraud", purchase.event_id)])
    assert (classifier.frauds_seen, classifier.learned) == (1, 1)


def test_a_burst_of_large_purchases_stays_far_above_the_users_median() -> None:
    """A compromised card: a third of the purchases five times the usual amount. The 30-day
    mean follows the burst; the median does not, so the ratio to it stays large."""
    engine = RiskEngine()
    inputs: list[dict[str, float]] = []
    engine.observer = lambda _tx, _f, scored: inputs.append(dict(zip(INPUTS, scored.inputs,
                                                                     strict=True)))
    run(engine, [tx("u1", T0 + day * DAY, 10_000 + day) for day in range(20)])
    usual = inputs[-1]
    assert abs(usual["log_to_median_30d"]) < 0.01 and usual["median_30d_over_0"] == 0.0
    burst = [tx("u1", T0 + 20 * DAY + hour * HOUR, 50_000 if hour % 3 == 0 else 10_000)
             for hour in range(30)]
    run(engine, burst)
    last_large = inputs[-3]
    assert last_large["log_to_median_30d"] > 1.5  # about log 5
    assert last_large["median_30d_over_0"] > 1.1 and last_large["median_30d_over_5"] == 0.0
    assert last_large["log_to_mean_30d"] < last_large["log_to_median_30d"] - 0.3
