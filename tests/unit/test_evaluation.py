"""Metrics and the handbook's protocol, against brute-force definitions and hand examples."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.evaluation import (
    FIRST_DAY,
    ScoredPurchase,
    average_precision,
    card_precision_at_k,
    handbook_test_set,
    ranking_metrics,
    roc_auc,
    weekly_metrics,
)
from pipeline.exceptions import MisorderedHistories
from pipeline.handbook import (
    delay_ceiling,
    handbook_truth,
    hidden_by_delay,
    hidden_frauds,
    histories_truth,
    history_paths,
    revealed_metrics,
    score_history,
    stream_features,
)
from pipeline.timeutil import DAY
from tests.handbook_data import START, handbook_history, split_history


def _brute_auc(labels: list[bool], scores: list[float]) -> float:
    pairs = [(p, n) for p, lp in zip(scores, labels, strict=True) if lp
             for n, ln in zip(scores, labels, strict=True) if not ln]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def _brute_ap(labels: list[bool], scores: list[float]) -> float:
    """Precision at each distinct threshold, weighted by the recall it adds."""
    positives = sum(labels)
    total, previous = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        chosen = [label for label, score in zip(labels, scores, strict=True) if score >= threshold]
        recall = sum(chosen) / positives
        total += (recall - previous) * sum(chosen) / len(chosen)
        previous = recall
    return total


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_average_precision_equal_their_definitions(seed: int) -> None:
    rng = random.Random(seed)
    labels = [rng.random() < 0.2 for _ in range(300)]
    labels[0], labels[1] = True, False
    scores = [round(rng.random() + 0.3 * label, 2) for label in labels]  # ties included
    assert roc_auc(labels, scores) == pytest.approx(_brute_auc(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(_brute_ap(labels, scores))


def _purchase(customer: str, day: int, score: float, fraud: bool) -> ScoredPurchase:
    return ScoredPurchase(f"{customer}-{day}-{score}", customer, day, score, fraud)


def test_card_precision_counts_cards_once_and_drops_those_already_detected() -> None:
    test = [
        _purchase("a", 0, 0.9, True), _purchase("a", 0, 0.1, False),  # card a: max 0.9, fraud
        _purchase("b", 0, 0.8, False),
        _purchase("a", 1, 0.95, True),  # detected on day 0: not counted again on day 1
        _purchase("c", 1, 0.7, True), _purchase("d", 1, 0.6, False),
    ]
    # day 0: top-2 cards a (fraud), b -> 1/2; day 1: c (fraud), d -> 1/2.
    assert card_precision_at_k(test, k=2) == pytest.approx(0.5)


def test_every_aligned_week_the_purchases_cover_is_measured_as_on_its_own() -> None:
    rng = random.Random(4)
    purchases = [_purchase(f"c{rng.randrange(2_000)}", day, rng.random(), rng.random() < 0.02)
                 for day in range(2, 60) for _ in range(100)]
    weeks = weekly_metrics(purchases, train_start_day=30)
    # Whole weeks before and after day 30, from the first day (2) to the last (59).
    assert list(weeks) == [2, 9, 16, 23, 30, 37]
    assert list(weekly_metrics(purchases, train_start_day=100)) == list(weeks)
    for start, figures in weeks.items():
        assert figures["test_frauds"] > 0
        assert figures == ranking_metrics(handbook_test_set(purchases, start))
    assert weekly_metrics([], train_start_day=30) == {}
    # Any measure of each week's test set.
    assert weekly_metrics(purchases, 30, lambda test: {"rows": len(test)}) == {
        start: {"rows": figures["test_transactions"]} for start, figures in weeks.items()}


def test_the_test_set_leaves_out_customers_known_compromised_a_delay_earlier() -> None:
    history = [
        _purchase("known", 0, 0.5, True),       # fraud in training: out of every test day
        _purchase("late", 7, 0.5, True),        # fraud on the first delay day
        *[_purchase(c, 14, 0.1, False) for c in ("known", "late", "fresh")],
        *[_purchase(c, 15, 0.1, False) for c in ("known", "late", "fresh")],
    ]
    test = handbook_test_set(history, train_start_day=0)
    by_day = {(p.day, p.customer_id) for p in test}
    # Day 14 (the first test day) knows the training frauds; day 15 also knows day 7's.
    assert by_day == {(14, "late"), (14, "fresh"), (15, "fresh")}


def test_a_terminal_fraud_is_hidden_until_a_label_a_delay_old_can_reveal_its_terminal() -> None:
    day = 86_400_000_000
    rows = [  # (terminal, time, scenario), out of time order on purpose
        ("t", 7 * day, 2),           # the fraud at 0 is exactly 7 days old: revealed
        ("t", 0, 2),                 # the terminal's first fraud
        ("t", 7 * day - 1, 2),       # a microsecond short of the delay: hidden
        ("t", 44 * day, 2),          # the latest one a delay old left the 30-day reach: hidden
        ("u", 10 * day, 2),          # another terminal's frauds reveal nothing here
        ("t", 8 * day, 1),           # other scenarios are never "hidden" ...
        ("v", 20 * day, 1), ("v", 30 * day, 2),  # ... nor do they reveal a terminal
    ]
    terminals, times, scenarios = zip(*rows, strict=True)
    assert hidden_by_delay(terminals, times, scenarios) == [
        False, True, True, True, True, False, False, True]


def _compromised_terminal_history(path: Path, scenario_column: bool = True) -> Path:
    """21 days of 20 legitimate purchases a day. Terminal 900 is compromised from day 10:
    customer 99's frauds there are hidden up to day 16 and revealed from day 17, exactly 7
    days after the first. Customer 99 leaves the test set on day 18, when day 10's fraud is
    known. Customer 98 has an amount fraud on day 15."""
    start = FIRST_DAY * 86_400  # seconds
    rows = [  # (id, customer, terminal, seconds, fraud, scenario)
        (f"{day}-{customer}", customer, 100 + customer, start + day * 86_400 + customer, 0, 0)
        for day in range(21) for customer in range(20)
    ]
    rows += [(f"c{day}", 99, 900, start + day * 86_400 + 50, 1, 2) for day in range(10, 21)]
    rows.append(("a15", 98, 100, start + 15 * 86_400 + 60, 1, 1))
    columns = list(zip(*rows, strict=True))
    table = {
        "TRANSACTION_ID": columns[0], "CUSTOMER_ID": columns[1], "TERMINAL_ID": columns[2],
        "TX_DATETIME": pa.array([t * 1_000_000 for t in columns[3]], pa.timestamp("us")),
        "TX_FRAUD": columns[4],
    }
    if scenario_column:
        table["TX_FRAUD_SCENARIO"] = columns[5]
    pq.write_table(pa.table(table), path)
    return path


def test_the_delay_ceiling_ranks_every_fraud_first_except_the_hidden(tmp_path: Path) -> None:
    truth = handbook_truth(_compromised_terminal_history(tmp_path / "history.parquet"))
    # Every fraud at terminal 900 before day 17, the test week's (14..16) and earlier ones.
    assert hidden_frauds(truth) == {f"c{day}" for day in range(10, 17)}
    ceiling = delay_ceiling(truth, train_start_day=0)
    # The test week (days 14..20): 140 legitimate purchases, customer 99's frauds on days
    # 14..17 (three hidden) and a15. The two revealed frauds first, then one tie of the rest.
    assert (ceiling["test_transactions"], ceiling["test_frauds"]) == (145, 5)
    assert ceiling["auc_roc"] == pytest.approx((2 + 3 * 0.5) / 5)
    assert ceiling["average_precision"] == pytest.approx(2 / 5 + 3 / 5 * 5 / 145)


def test_the_revealed_metrics_leave_out_only_the_hidden_frauds(tmp_path: Path) -> None:
    path = _compromised_terminal_history(tmp_path / "history.parquet")
    truth = handbook_truth(path)
    # A scorer that ranks the hidden frauds last, and one legitimate purchase above a15.
    scores = {"c17": 0.9, "15-3": 0.6, "a15": 0.5, "c14": 0.0, "c15": 0.0, "c16": 0.0}
    test = handbook_test_set([known.scored(tx, scores.get(tx, 0.1))
                              for tx, known in truth.items()], train_start_day=0)
    revealed = revealed_metrics(test, hidden_frauds(truth))
    # The test week without c14..c16: 140 legitimate purchases, c17 and a15.
    assert (revealed["test_transactions"], revealed["test_frauds"]) == (142, 2)
    assert revealed["auc_roc"] == pytest.approx((1 + 139 / 140) / 2)
    assert revealed["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    # With them, the same scorer's test set ranks three frauds below everything.
    assert ranking_metrics(test)["average_precision"] < 0.5
    no_scenarios = handbook_truth(_compromised_terminal_history(tmp_path / "plain.parquet",
                                                                scenario_column=False))
    assert hidden_frauds(no_scenarios) is None
    assert delay_ceiling(no_scenarios) is None


def _purchases(path: Path, ids: list[int], seconds: list[int]) -> Path:
    pq.write_table(pa.table({
        "TRANSACTION_ID": ids, "CUSTOMER_ID": [7] * len(ids), "TERMINAL_ID": [3] * len(ids),
        "TX_DATETIME": pa.array([t * 1_000_000 for t in seconds], pa.timestamp("us")),
        "TX_FRAUD": [0] * len(ids),
    }), path)
    return path


def test_histories_that_follow_one_another_are_one_truth_and_others_are_refused(
    tmp_path: Path
) -> None:
    start = FIRST_DAY * 86_400
    first = _purchases(tmp_path / "first.parquet", [1, 2], [start, start + 100])
    touching = _purchases(tmp_path / "touching.parquet", [3], [start + 100])
    empty = _purchases(tmp_path / "empty.parquet", [], [])
    truth = histories_truth([first, empty, touching])
    assert truth == {**handbook_truth(first), **handbook_truth(touching)}
    assert list(truth) == ["1", "2", "3"]
    with pytest.raises(MisorderedHistories, match=r"first.parquet starts at 2018-04-01T00:00:00"
                       r".*before .*touching.parquet ends at 2018-04-01T00:01:40.*oldest first"):
        histories_truth([touching, first])
    overlapping = _purchases(tmp_path / "overlapping.parquet", [4], [start + 50])
    with pytest.raises(MisorderedHistories, match=r"overlapping\.parquet starts"):
        histories_truth([first, overlapping])
    repeating = _purchases(tmp_path / "repeating.parquet", [2], [start + 200])
    with pytest.raises(MisorderedHistories,
                       match=r"repeating.parquet repeats 1 transaction ids .*\(such as 2\)"):
        histories_truth([first, repeating])


def test_histories_that_follow_one_another_stream_as_one_history(tmp_path: Path) -> None:
    history = handbook_history(tmp_path / "history.parquet", customers=60, terminals=30, seed=3)
    earlier, later = split_history(history, 18)
    # Frauds in the earlier file's last week: their labels are released among the later
    # file's purchases.
    cut = (int(START.timestamp()) + 18 * 86_400) * 1_000_000
    assert any(known.fraud and known.event_time > cut - 7 * DAY
               for known in handbook_truth(earlier).values())
    assert history_paths(str(history)) == history_paths(history) == [history]
    assert history_paths([str(earlier), later]) == [earlier, later]
    assert list(stream_features([earlier, later])) == list(stream_features(history))
    assert score_history([earlier, later]) == score_history(history)


def test_partitioned_shares_of_a_history_give_the_features_of_one_engine(tmp_path: Path) -> None:
    history = handbook_history(tmp_path / "history.parquet", customers=60, terminals=30, seed=4)
    whole = dict(stream_features(history))
    assert any(features["TERMINAL_ID_RISK_7DAY_WINDOW"] for features in whole.values())
    for partitions in (2, 3):
        shares = [dict(stream_features(history, share=(k, partitions)))
                  for k in range(partitions)]
        assert all(shares)  # every share has purchases of its own...
        assert sum(map(len, shares)) == len(whole)  # ...and none has another's
        assert {tx: f for share in shares for tx, f in share.items()} == whole
    with pytest.raises(ValueError, match=r"share \(2, 2\)"):
        next(stream_features(history, share=(2, 2)))
