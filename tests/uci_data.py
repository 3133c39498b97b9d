"""Generated tables in the UCI Taiwan clients' layout, for tests without the real one."""

from __future__ import annotations

import csv
import random
from pathlib import Path

__all__ = ["write_uci_table"]

_STATUS = ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]


def write_uci_table(path: Path, clients: int, seed: int, first_id: int = 1) -> Path:
    """Clients in the UCI layout: a quarter fall behind often and mostly default."""
    rng = random.Random(seed)
    columns = ["ID", "LIMIT_BAL", *_STATUS, *[f"BILL_AMT{i}" for i in range(1, 7)],
               *[f"PAY_AMT{i}" for i in range(1, 7)], "default.payment.next.month"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for client in range(first_id, first_id + clients):
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
