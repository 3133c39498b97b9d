"""Generated histories in the Fraud Detection Handbook's layout, for the tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

START = datetime(2019, 3, 1, tzinfo=UTC)
DAYS = 28


def handbook_history(path: Path, customers: int, terminals: int, seed: int,
                     scenario_column: bool = True) -> Path:
    """Purchases in the handbook's layout: each customer buys at a few nearby terminals around
    its own mean amount. Frauds: amounts over 220 (scenario 1); a terminal compromised every
    fourth day, all its purchases for 14 days (2); two customers compromised every third day,
    a third of their purchases five times their usual for 14 days (3)."""
    rng = random.Random(seed)
    means = [rng.uniform(5, 100) for _ in range(customers)]
    nearby = [rng.sample(range(terminals), 5) for _ in range(customers)]
    compromised_terminals = {rng.randrange(terminals): day for day in range(2, DAYS, 4)}
    compromised_customers = {customer: day for day in range(1, DAYS, 3)
                             for customer in rng.sample(range(customers), 2)}
    rows = []
    for day in range(DAYS):
        for customer in range(customers):
            for _ in range(rng.choice((0, 1, 2, 3, 4))):
                terminal = rng.choice(nearby[customer])
                amount = max(0.01, rng.gauss(means[customer], means[customer] / 2))
                scenario = 0
                since = compromised_customers.get(customer)
                if since is not None and 0 <= day - since < 14 and rng.random() < 1 / 3:
                    amount, scenario = amount * 5, 3
                since = compromised_terminals.get(terminal)
                if since is not None and 0 <= day - since < 14:
                    scenario = 2
                if amount > 220:
                    scenario = 1
                seconds = day * 86_400 + rng.randrange(86_400)
                rows.append((seconds, customer, terminal, round(amount, 2), scenario))
    rows.sort()
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "TRANSACTION_ID": list(range(len(rows))),
        "TX_DATETIME": pa.array([START + timedelta(seconds=row[0]) for row in rows],
                                pa.timestamp("us")),
        "CUSTOMER_ID": [row[1] for row in rows],
        "TERMINAL_ID": [row[2] for row in rows],
        "TX_AMOUNT": [row[3] for row in rows],
        "TX_FRAUD": [int(row[4] > 0) for row in rows],
        **({"TX_FRAUD_SCENARIO": [row[4] for row in rows]} if scenario_column else {}),
    }), path)
    return path


def split_history(history: Path, day: int) -> tuple[Path, Path]:
    """The history as two files that follow one another: its first ``day`` days, then the
    rest."""
    table = pq.read_table(history)
    cut = pa.scalar(START.replace(tzinfo=None) + timedelta(days=day), pa.timestamp("us"))
    before = pc.less(table.column("TX_DATETIME"), cut)
    paths = history.with_name("earlier.parquet"), history.with_name("later.parquet")
    pq.write_table(table.filter(before), paths[0])
    pq.write_table(table.filter(pc.invert(before)), paths[1])
    return paths
