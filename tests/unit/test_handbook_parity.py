"""Feature parity: riskstream's streaming code against the Fraud Detection Handbook's own table.

Every one of the 1,504,628 dev rows, every handbook feature, within 1e-6 -- except where the
handbook's table cannot be reproduced by any streaming order: a customer's purchases at the very
same second. The handbook sorts each customer's purchases with pandas' default (unstable)
quicksort before its rolling windows, so which of two simultaneous purchases "came first" is
arbitrary there (22 such pairs in the dev file); riskstream counts them in arrival order. For
those rows the test checks that the handbook's values are riskstream's in the other order.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.handbook import HANDBOOK_FEATURES, stream_features
from tests.conftest import SHARED_DATA

TRANSACTIONS = SHARED_DATA / "fdh_dev_2018-04-01_2018-09-04.parquet"
ORACLE = SHARED_DATA / "fdh_dev_features_2018-04-01_2018-09-04.parquet"
TOLERANCE = 1e-6
CUSTOMER_COLUMNS = [name for name in HANDBOOK_FEATURES if name.startswith("CUSTOMER_ID")]

pytestmark = pytest.mark.skipif(
    not (TRANSACTIONS.exists() and ORACLE.exists()), reason="shared handbook data not present"
)


def _simultaneous_pairs() -> tuple[dict[int, tuple[int, int]], dict[int, float]]:
    """Transaction id -> (first, second) in file order, for a customer's two purchases at the
    same second; and the amounts of those purchases."""
    table = pq.read_table(
        TRANSACTIONS, columns=["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TX_AMOUNT"])
    groups: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    for tx, moment, customer, amount in zip(
        table.column(0).to_pylist(), table.column(1).cast(pa.int64()).to_pylist(),
        table.column(2).to_pylist(), table.column(3).to_pylist(), strict=True,
    ):
        groups[(customer, moment)].append((tx, amount))
    tied = [members for members in groups.values() if len(members) > 1]
    assert all(len(members) == 2 for members in tied), "a tie of three: extend this check"
    pairs = {tx: (members[0][0], members[1][0]) for members in tied for tx, _ in members}
    amounts = {tx: amount for members in tied for tx, amount in members}
    return pairs, amounts


def _in_other_order(first: dict[str, float], second: dict[str, float], first_amount: float,
                    second_amount: float) -> tuple[dict[str, float], dict[str, float]]:
    """The customer features of a same-second pair had the second come first."""
    swapped_first, swapped_second = dict(first), dict(second)
    for days in ("1", "7", "30"):
        count = f"CUSTOMER_ID_NB_TX_{days}DAY_WINDOW"
        mean = f"CUSTOMER_ID_AVG_AMOUNT_{days}DAY_WINDOW"
        n_first, n_second = first[count], second[count]
        swapped_first[count], swapped_second[count] = n_first + 1, n_second - 1
        swapped_first[mean] = (first[mean] * n_first + second_amount) / (n_first + 1)
        swapped_second[mean] = (second[mean] * n_second - first_amount) / (n_second - 1)
    return swapped_first, swapped_second


# 1.5 million purchases through the engine: 3 to 8 minutes on a 2-core machine, so more than
# the suite's 10-minute default per test is allowed.
@pytest.mark.timeout(1800)
def test_every_handbook_feature_of_every_dev_row_is_reproduced() -> None:
    oracle = pq.read_table(ORACLE)
    row_of = {tx: row for row, tx in enumerate(oracle.column("TRANSACTION_ID").to_pylist())}
    expected = {name: oracle.column(name).to_pylist() for name in HANDBOOK_FEATURES}
    pairs, amounts = _simultaneous_pairs()
    compared = 0
    ours: dict[int, dict[str, float]] = {}
    mismatches: list[tuple[int, str, float, float]] = []
    for tx, features in stream_features(TRANSACTIONS):
        row = row_of[tx]
        compared += 1
        if tx in pairs:
            ours[tx] = features
        for name, value in features.items():
            if abs(value - expected[name][row]) > TOLERANCE:
                mismatches.append((tx, name, value, expected[name][row]))
    assert compared == oracle.num_rows == 1_504_628

    # Only customer windows of simultaneous purchases may differ, and only by their order.
    assert {name for _, name, _, _ in mismatches} <= set(CUSTOMER_COLUMNS)
    differing = {tx for tx, _, _, _ in mismatches}
    assert differing <= set(pairs), sorted(differing - set(pairs))[:10]
    for first, second in {pairs[tx] for tx in differing}:
        swapped = _in_other_order(ours[first], ours[second], amounts[first], amounts[second])
        for tx, features in zip((first, second), swapped, strict=True):
            for name in CUSTOMER_COLUMNS:
                assert abs(features[name] - expected[name][row_of[tx]]) <= TOLERANCE, (tx, name)
    print(f"\n{compared:,} rows x {len(HANDBOOK_FEATURES)} features compared; "
          f"{len(differing)} rows of {len(set(pairs.values()))} same-second pairs in the "
          "handbook's other order")
