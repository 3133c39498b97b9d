"""A small, deterministic credit-line history for the demo and the end-to-end tests.

Three kinds of user, known to the generator so tests can check the pipeline against them:

- ``normal``: a few purchases a month, mostly on-time repayments, some late ones;
- ``loyal`` (behaviour A): shops often and always repays the full bill on time;
- ``burst`` (behaviour B): a normal user whose account suddenly makes a few large night-time
  purchases at unfamiliar merchants; for half of them a fraud label arrives a day or two later.

Amounts of ordinary purchases are log-normal around a personal median, clipped at two standard
deviations, so "unusual" is a property of the data and not of the detector's tuning.
"""

from __future__ import annotations

import calendar
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.config import RiskConfig
from pipeline.timeutil import DAY, HOUR, MINUTE, format_time, parse_time

__all__ = ["MONTHS_FOR_RAISES", "DemoHistory", "generate_demo_history"]

PROFILE_SHARES = {"normal": 0.70, "loyal": 0.20, "burst": 0.10}
#: The shortest demo history in which the default policy raises limits (behaviour A): a
#: month's bill is repaid the next month, and a raise needs three on-time repayments.
MONTHS_FOR_RAISES = RiskConfig().raise_min_on_time_repayments + 1
_AMOUNT_SIGMA = 0.35
_CLIP_SIGMAS = 2.0
_BILL_DUE_DAY = 20
#: Burst amounts, as multiples of the user's median purchase, for users whose median is in
#: _BURST_MEDIAN_MINOR: large for them, yet a few of them fit in the opening limit.
_BURST_MULTIPLE = (12.0, 20.0)
_BURST_MEDIAN_MINOR = (2_000, 6_000)


@dataclass
class DemoHistory:
    events: list[dict[str, Any]]
    profiles: dict[str, str]
    #: Transaction ids of the unusual purchases, by user.
    burst_transactions: dict[str, list[str]] = field(default_factory=dict)
    #: Burst users for whom a fraud label is sent.
    fraud_confirmed: set[str] = field(default_factory=set)


def _month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1_000_000


def _add_months(year: int, month: int, count: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + count
    return index // 12, index % 12 + 1


def generate_demo_history(
    users: int = 3000,
    months: int = 4,
    seed: int = 7,
    start: tuple[int, int] = (2026, 1),
    merchants: int = 500,
    currency: str = "CNY",
) -> DemoHistory:
    """Generate the history in event-time order (ties broken by event id)."""
    rng = random.Random(seed)
    merchant_ids = [f"m{index:04d}" for index in range(merchants)]
    # Merchants no ordinary purchase uses: where the burst purchases happen.
    unfamiliar = [f"x{index:03d}" for index in range(50)]
    events: list[dict[str, Any]] = []
    profiles: dict[str, str] = {}
    history = DemoHistory(events, profiles)
    names, weights = zip(*PROFILE_SHARES.items(), strict=True)
    for number in range(users):
        user_id = f"u{number:05d}"
        profile = rng.choices(names, weights)[0]
        profiles[user_id] = profile
        median_minor = (
            rng.randint(*_BURST_MEDIAN_MINOR) if profile == "burst" else rng.randint(3_000, 30_000)
        )
        favourites = rng.sample(merchant_ids, rng.randint(3, 8))
        burst_month = 2 if profile == "burst" else -1
        bills: list[int] = []
        tx_count = 0
        for month_index in range(months):
            year, month = _add_months(*start, month_index)
            begin = _month_start(year, month)
            days = calendar.monthrange(year, month)[1]
            per_month = rng.randint(14, 22) if profile == "loyal" else rng.randint(3, 5)
            bill = 0
            slot = days * DAY // per_month
            for index in range(per_month):
                when = begin + index * slot + int(rng.uniform(0.15, 0.85) * slot)
                # Daytime purchases: snap into 08:00-22:00 of that day.
                day_start = when - when % DAY
                when = day_start + 8 * HOUR + rng.randrange(14 * HOUR)
                amount = _ordinary_amount(rng, median_minor)
                merchant = rng.choice(favourites) if rng.random() < 0.85 else rng.choice(
                    merchant_ids
                )
                tx_count += 1
                events.append(_purchase(user_id, tx_count, merchant, amount, when, currency))
                bill += amount
            if month_index == burst_month:
                tx_count = _burst(rng, history, user_id, begin, median_minor, unfamiliar,
                                  tx_count, currency)
            bills.append(bill)
        _repayments(rng, events, user_id, profile, bills, start, months, currency)
    events.sort(key=lambda record: (parse_time(record["event_time"]), record["event_id"]))
    return history


def _ordinary_amount(rng: random.Random, median_minor: int) -> int:
    z = max(-_CLIP_SIGMAS, min(_CLIP_SIGMAS, rng.gauss(0.0, 1.0)))
    return max(100, round(median_minor * math.exp(_AMOUNT_SIGMA * z)))


def _purchase(user_id: str, number: int, merchant: str, amount: int, when: int,
              currency: str) -> dict[str, Any]:
    return {
        "type": "transaction",
        "event_id": f"tx-{user_id}-{number:04d}",
        "user_id": user_id,
        "merchant_id": merchant,
        "amount_minor": amount,
        "currency": currency,
        "event_time": format_time(when),
        "channel": "online" if merchant.startswith("x") else "pos",
    }


def _burst(rng: random.Random, history: DemoHistory, user_id: str, month_begin: int,
           median_minor: int, unfamiliar: list[str], tx_count: int, currency: str) -> int:
    """A few large night-time purchases at unfamiliar merchants within the hour."""
    when = month_begin + rng.randint(4, 18) * DAY + rng.randint(1, 3) * HOUR
    ids = []
    for _ in range(rng.randint(3, 4)):
        when += rng.randint(4, 15) * MINUTE
        amount = round(median_minor * rng.uniform(*_BURST_MULTIPLE))
        tx_count += 1
        record = _purchase(user_id, tx_count, rng.choice(unfamiliar), amount, when, currency)
        record["device_id"] = f"dev-new-{user_id}"
        history.events.append(record)
        ids.append(record["event_id"])
    history.burst_transactions[user_id] = ids
    if rng.random() < 0.5:
        history.fraud_confirmed.add(user_id)
        history.events.append({
            "type": "label",
            "event_id": f"lb-{user_id}-1",
            "user_id": user_id,
            "kind": "fraud",
            "transaction_id": ids[0],
            "event_time": format_time(when + rng.randint(20, 48) * HOUR),
        })
    return tx_count


def _repayments(rng: random.Random, events: list[dict[str, Any]], user_id: str, profile: str,
                bills: list[int], start: tuple[int, int], months: int, currency: str) -> None:
    """Each month's bill is due on the 20th of the next month."""
    on_time_share = {"loyal": 1.0, "normal": 0.75, "burst": 0.9}[profile]
    for month_index, bill in enumerate(bills):
        if bill == 0 or month_index + 1 >= months:
            continue
        year, month = _add_months(*start, month_index + 1)
        begin = _month_start(year, month)
        due = begin + (_BILL_DUE_DAY - 1) * DAY + 23 * HOUR + 59 * MINUTE
        if rng.random() < on_time_share:
            paid_at = begin + rng.randint(4, 17) * DAY + rng.randrange(20 * HOUR)
        else:
            paid_at = begin + rng.randint(21, 26) * DAY + rng.randrange(20 * HOUR)
        events.append({
            "type": "repayment",
            "event_id": f"rp-{user_id}-{month_index + 1:02d}",
            "user_id": user_id,
            "amount_minor": bill,
            "currency": currency,
            "event_time": format_time(paid_at),
            "due_time": format_time(due),
        })
