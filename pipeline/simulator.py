"""A consumer credit line's history, simulated day by day: deterministic by seed, bounded memory.

Users have a profile (how often and how much they spend, how they repay), favourite merchants, a
home region, a device and a credit limit. Each user's line has a monthly cycle: a statement on
the user's statement day, due ``due_days`` later, then a repayment that is on time and full, on
time and partial, late, or never -- in the shares of the user's profile. On top of that:

- ``account_takeover``: a new device, a burst of large purchases at unfamiliar merchants in
  another region, mostly at night;
- ``card_testing``: many tiny purchases within minutes, then a few large ones;
- ``bust_out``: an account opened during the history repays perfectly for months, then maxes
  out its line in a day and never repays;
- ``cash_out``: round amounts close to the available credit at a few colluding merchants that
  many such users share;
- seasonal spikes: on holidays everyone spends more, more often -- legitimately, never labelled.

Fraudulent purchases get a ``chargeback`` (stolen credentials) or ``fraud`` (first-party:
bust-out, cash-out) label days to weeks later; an unpaid bill gets a
``default`` label after the due date plus a grace period -- separate, late events, as a real line
receives them. Per-user state lives in NumPy arrays (about 100 bytes a user); events are made
one simulated day at a time and come out in event-time order, so memory is bounded by one day.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from pipeline.timeutil import DAY, SECOND, parse_time

__all__ = ["PROFILES", "SCENARIOS", "Profile", "SimulationConfig", "Simulator"]

SCENARIOS = ("account_takeover", "card_testing", "bust_out", "cash_out")
CATEGORIES = ("grocery", "dining", "fashion", "electronics", "travel", "digital", "utilities",
              "jewelry")
REPAYMENT_BEHAVIOURS = ("full", "partial", "late", "never")


@dataclass(frozen=True)
class Profile:
    name: str
    share: float
    purchases_per_day: float
    median_amount_minor: int
    #: Shares of bills paid in full on time, partly on time, late, and never (sum to 1).
    repayment: tuple[float, float, float, float]
    limit_minor: int


PROFILES = (
    Profile("steady", 0.30, 0.6, 8_000, (0.95, 0.04, 0.01, 0.00), 800_000),
    Profile("occasional", 0.35, 0.15, 15_000, (0.80, 0.10, 0.08, 0.02), 500_000),
    Profile("heavy", 0.15, 1.5, 5_000, (0.85, 0.08, 0.06, 0.01), 1_500_000),
    Profile("risky", 0.20, 0.4, 12_000, (0.50, 0.20, 0.22, 0.08), 300_000),
)


#: The shortest history in which the default policy raises limits (behaviour A): lines known by
#: their statements are raised only once the default model is warm, which takes the first
#: cycles' outcomes -- due a month after each bill, then a 90-day performance window -- so the
#: first raises come about four months in.
MONTHS_FOR_RAISES = 5


@dataclass(frozen=True)
class SimulationConfig:
    users: int = 10_000
    months: int = 6
    start: str = "2026-01-01"
    seed: int = 1
    currency: str = "CNY"
    profiles: tuple[Profile, ...] = PROFILES
    #: Share of users each fraud scenario happens to.
    scenario_shares: dict[str, float] = field(default_factory=lambda: {
        "account_takeover": 0.004, "card_testing": 0.003, "bust_out": 0.003, "cash_out": 0.004})
    merchants_per_user: float = 0.05
    colluding_merchants: int = 20
    regions: int = 30
    due_days: int = 20
    #: A chargeback is known this many days after the purchase (uniform).
    chargeback_delay_days: tuple[int, int] = (5, 40)
    #: An unpaid bill becomes a default label this long after its due date.
    default_grace_days: int = 30
    #: (month, day) of holidays: 3x the purchases at 1.5x the amounts, all legitimate.
    holidays: tuple[tuple[int, int], ...] = ((2, 14), (5, 1), (10, 1), (11, 11), (12, 24),
                                             (12, 25), (12, 31))

    def __post_init__(self) -> None:
        if abs(sum(p.share for p in self.profiles) - 1.0) > 1e-9:
            raise ValueError("profile shares must sum to 1")
        if sum(self.scenario_shares.values()) >= 1 or set(self.scenario_shares) - set(SCENARIOS):
            raise ValueError(f"scenario shares: known scenarios are {SCENARIOS}, sum below 1")


# Hours of the day purchases happen at: quiet at night, busy at lunch and in the evening.
_HOUR_WEIGHTS = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3, 3, 4,
                          5, 4, 3, 3, 3, 4, 5, 6, 6, 5, 4, 2], dtype=float)
_HOUR_WEIGHTS /= _HOUR_WEIGHTS.sum()
_FAVOURITES = 5


class Simulator:
    """``for day_events in Simulator(config).days(): ...`` -- each a list of records in order."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = cfg = config
        self.rng = rng = np.random.default_rng(cfg.seed)
        n = cfg.users
        self.start = date.fromisoformat(cfg.start)
        self.start_micros = parse_time(f"{cfg.start}T00:00:00Z")
        end = _add_months(self.start, cfg.months)
        self.days_total = (end - self.start).days
        merchants = max(50, int(n * cfg.merchants_per_user))
        self.merchant_category = rng.integers(0, len(CATEGORIES), merchants)
        self.merchant_region = rng.integers(0, cfg.regions, merchants)
        self.colluding = np.arange(merchants, merchants + cfg.colluding_merchants)
        self.merchant_count = merchants

        shares = np.array([p.share for p in cfg.profiles])
        self.profile = rng.choice(len(cfg.profiles), n, p=shares).astype(np.int8)
        rate = np.array([p.purchases_per_day for p in cfg.profiles])[self.profile]
        self.rate = rate * rng.lognormal(0.0, 0.3, n)
        median = np.array([p.median_amount_minor for p in cfg.profiles])[self.profile]
        self.log_median = np.log(median * rng.lognormal(0.0, 0.4, n))
        self.limit = np.array([p.limit_minor for p in cfg.profiles], dtype=np.int64)[self.profile]
        self.region = rng.integers(0, cfg.regions, n)
        self.favourites = rng.integers(0, merchants, (n, _FAVOURITES))
        self.statement_day = rng.integers(1, 29, n).astype(np.int8)
        self.balance = np.zeros(n, dtype=np.int64)
        self.device = np.arange(n, dtype=np.int64)
        self.closed = np.zeros(n, dtype=bool)  # defaulted: no more purchases
        #: Bills in a row not paid by their due date: the next statement's past-due status.
        self.behind = np.zeros(n, dtype=np.int16)
        self.opened = np.zeros(n, dtype=np.int32)

        names = ["none", *cfg.scenario_shares]
        probabilities = [1.0 - sum(cfg.scenario_shares.values()), *cfg.scenario_shares.values()]
        self.scenario_names = names
        self.scenario = rng.choice(len(names), n, p=probabilities).astype(np.int8)
        self.scenario_day = rng.integers(max(1, self.days_total // 3), max(2, self.days_total - 2),
                                         n).astype(np.int32)
        bust = self.scenario == names.index("bust_out") if "bust_out" in names else None
        if bust is not None and bust.any():
            # A bust-out account opens early, builds trust, and busts out near the end.
            self.opened[bust] = rng.integers(0, max(1, self.days_total // 6), int(bust.sum()))
            self.scenario_day[bust] = np.maximum(self.scenario_day[bust], self.days_total - 10)
            self.profile[bust] = 0  # behaves like a steady customer until then
        self._pending: dict[int, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
        self._busted = np.zeros(n, dtype=bool)
        self._counter = 0
        self.stats: dict[str, int] = defaultdict(int)

    # -- ground truth -------------------------------------------------------------------------
    def users(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        for index in range(cfg.users):
            scenario = self.scenario_names[self.scenario[index]]
            yield {
                "user_id": _user(index),
                "profile": cfg.profiles[self.profile[index]].name,
                "scenario": scenario,
                "scenario_day": (self._day_text(int(self.scenario_day[index]))
                                 if scenario != "none" else None),
                "opened": self._day_text(int(self.opened[index])),
                "limit_minor": int(self.limit[index]),
                "statement_day": int(self.statement_day[index]),
                "region": int(self.region[index]),
            }

    # -- the history --------------------------------------------------------------------------
    def days(self) -> Iterator[list[dict[str, Any]]]:
        for day in range(self.days_total):
            yield self._day(day)

    def _day(self, day: int) -> list[dict[str, Any]]:
        cfg, rng = self.config, self.rng
        today = self.start + timedelta(days=day)
        day_start = self.start_micros + day * DAY
        holiday = (today.month, today.day) in cfg.holidays
        # (time, order, kind, payload): purchases are checked against the balance in time order.
        candidates: list[tuple[int, int, str, Any]] = []
        active = (self.opened <= day) & ~self.closed & ~self._busted
        counts = rng.poisson(self.rate * (3.0 if holiday else 1.0) * active)
        users = np.repeat(np.arange(cfg.users), counts)
        if len(users):
            seconds = rng.choice(24, len(users), p=_HOUR_WEIGHTS) * 3600 + rng.integers(
                0, 3600, len(users))
            amounts = np.maximum(1, np.rint(np.exp(
                self.log_median[users] + (math.log(1.5) if holiday else 0.0)
                + rng.normal(0.0, 0.5, len(users))))).astype(np.int64)
            favourite = rng.random(len(users)) < 0.8
            merchants = np.where(favourite, self.favourites[users, rng.integers(
                0, _FAVOURITES, len(users))], rng.integers(0, self.merchant_count, len(users)))
            online = rng.random(len(users)) < 0.4
            for i in np.argsort(seconds, kind="stable"):
                candidates.append((day_start + int(seconds[i]) * SECOND, len(candidates),
                                   "purchase", (int(users[i]), int(amounts[i]),
                                                int(merchants[i]), bool(online[i]), None)))
        for user in np.flatnonzero((self.scenario_day == day) & (self.scenario > 0)
                                   & (self.opened <= day) & ~self.closed):
            self._scenario(int(user), day_start, candidates)
        for event_time, order, payload in self._pending.pop(day, []):
            candidates.append((event_time, -1_000_000 + order, "ready", payload))
        for user in np.flatnonzero((self.statement_day == today.day) & (self.opened < day)):
            candidates.append((day_start + 2 * 3600 * SECOND, len(candidates), "statement",
                               int(user)))
        candidates.sort(key=lambda item: (item[0], item[1]))
        records: list[dict[str, Any]] = []
        for event_time, _, kind, payload in candidates:
            if kind == "purchase":
                self._purchase(event_time, payload, records)
            elif kind == "statement":
                self._statement(day, event_time, payload, records)
            else:
                if payload["type"] == "repayment":
                    self.balance[self._index(payload["user_id"])] -= payload["amount_minor"]
                elif payload["kind"] == "default":
                    self.closed[self._index(payload["user_id"])] = True  # the line is stopped
                records.append(payload)
        return records

    def _purchase(self, event_time: int, payload: tuple, records: list[dict[str, Any]]) -> None:
        user, amount, merchant, online, fraud = payload
        if self.closed[user] or (fraud is None and self._busted[user]):
            return
        if amount > self.limit[user] - self.balance[user]:
            self.stats["declined"] += 1
            return  # declined: over the available credit
        self.balance[user] += amount
        self._counter += 1
        event_id = f"tx{self._counter:09d}"
        category = (CATEGORIES[self.merchant_category[merchant]]
                    if merchant < self.merchant_count else "money_transfer")
        record = {
            "type": "transaction", "event_id": event_id, "user_id": _user(user),
            "merchant_id": f"m{merchant:06d}", "merchant_category": category,
            "amount_minor": amount, "currency": self.config.currency,
            "event_time": _time_text(event_time), "channel": "online" if online else "pos",
            "device_id": f"d{self.device[user]:08d}",
        }
        records.append(record)
        self.stats["transactions"] += 1
        if fraud is not None:
            self.stats[f"fraud_{fraud}"] += 1
            low, high = self.config.chargeback_delay_days
            delay = int(self.rng.integers(low * DAY // SECOND, high * DAY // SECOND)) * SECOND
            # The cardholder disputes a stolen card's use; first-party fraud is found by review.
            kind = "chargeback" if fraud in ("account_takeover", "card_testing") else "fraud"
            self._later(event_time + delay, {
                "type": "label", "event_id": f"{event_id}-{kind}", "user_id": _user(user),
                "kind": kind, "transaction_id": event_id,
                "event_time": _time_text(event_time + delay),
            })

    def _statement(self, day: int, event_time: int, user: int, records: list) -> None:
        cfg, rng = self.config, self.rng
        owed = int(self.balance[user])
        due = event_time + cfg.due_days * DAY + (22 * 3600 - 1) * SECOND
        self._counter += 1
        records.append({
            "type": "statement", "event_id": f"st{self._counter:09d}", "user_id": _user(user),
            "balance_minor": owed, "credit_limit_minor": int(self.limit[user]),
            "currency": cfg.currency, "event_time": _time_text(event_time),
            "due_time": _time_text(due), "past_due_cycles": int(self.behind[user]),
        })
        self.stats["statements"] += 1
        if owed <= 0 or self.closed[user]:
            self.behind[user] = 0 if owed <= 0 else self.behind[user] + 1
            return
        shares = cfg.profiles[self.profile[user]].repayment
        behaviour = ("never" if self._busted[user]
                     else REPAYMENT_BEHAVIOURS[int(rng.choice(4, p=shares))])
        self.stats[f"bills_{behaviour}"] += 1
        self.behind[user] = self.behind[user] + 1 if behaviour in ("late", "never") else 0
        if behaviour == "never":
            grace = due + cfg.default_grace_days * DAY
            self._later(grace, {
                "type": "label", "event_id": f"{_user(user)}-default-{day}",
                "user_id": _user(user), "kind": "default", "event_time": _time_text(grace),
            })
            return
        if behaviour == "late":
            paid_at = due + int(rng.integers(1, 21)) * DAY
        else:
            paid_at = event_time + int(rng.integers(1, cfg.due_days)) * DAY
        paid_at += int(rng.integers(-7200, 7200)) * SECOND
        amount = owed if behaviour != "partial" else max(1, int(owed * rng.uniform(0.1, 0.5)))
        self._counter += 1
        self._later(paid_at, {
            "type": "repayment", "event_id": f"rp{self._counter:09d}", "user_id": _user(user),
            "amount_minor": amount, "currency": cfg.currency, "event_time": _time_text(paid_at),
            "due_time": _time_text(due),
        })

    def _scenario(self, user: int, day_start: int, out: list) -> None:
        rng = self.rng
        name = self.scenario_names[self.scenario[user]]
        median = math.exp(self.log_median[user])
        self.stats[f"scenario_{name}"] += 1

        def add(offset_s: int, amount: float, merchant: int, online: bool = True) -> None:
            out.append((day_start + offset_s * SECOND, len(out), "purchase",
                        (user, max(1, round(amount)), merchant, online, name)))

        if name == "account_takeover":
            self.device[user] = self.config.users + user  # the fraudster's device
            foreign = np.flatnonzero(self.merchant_region != self.region[user])
            start = int(rng.integers(0, 5 * 3600)) if rng.random() < 0.6 else int(
                rng.integers(0, 20 * 3600))
            for step in range(int(rng.integers(3, 9))):
                add(start + step * int(rng.integers(60, 1800)), median * rng.uniform(5, 15),
                    int(rng.choice(foreign)) if len(foreign) else 0)
        elif name == "card_testing":
            start = int(rng.integers(0, 20 * 3600))
            tiny = int(rng.integers(10, 31))
            for step in range(tiny):
                add(start + step * int(rng.integers(10, 120)), rng.integers(1, 200),
                    int(rng.integers(0, self.merchant_count)))
            for step in range(int(rng.integers(2, 6))):
                add(start + tiny * 120 + step * 600, median * rng.uniform(10, 20),
                    int(rng.integers(0, self.merchant_count)))
        elif name == "bust_out":
            self._busted[user] = True
            available = int(self.limit[user] - self.balance[user])
            parts = int(rng.integers(2, 5))
            for step in range(parts):
                add(36_000 + step * 1800, available * 0.97 / parts,
                    int(rng.integers(0, self.merchant_count)))
        elif name == "cash_out":
            for step in range(int(rng.integers(1, 4))):
                available = int(self.limit[user] - self.balance[user])
                amount = available * rng.uniform(0.9, 0.99) / (step + 1)
                add(int(rng.integers(8 * 3600, 22 * 3600)) + step * 300,
                    max(10_000, amount // 10_000 * 10_000), int(rng.choice(self.colluding)),
                    online=False)

    # -- helpers ------------------------------------------------------------------------------
    def _later(self, event_time: int, record: dict[str, Any]) -> None:
        day = (event_time - self.start_micros) // DAY
        if day < self.days_total:
            self._pending[day].append((event_time, len(self._pending[day]), record))

    def _day_text(self, day: int) -> str:
        return (self.start + timedelta(days=day)).isoformat()

    @staticmethod
    def _index(user_id: str) -> int:
        return int(user_id[1:])


def _user(index: int) -> str:
    return f"u{index:07d}"


_EPOCH_DAY = date(1970, 1, 1)


def _time_text(micros: int) -> str:
    """RFC 3339 in whole seconds, UTC: faster than strftime, which this is called for a lot."""
    days, rest = divmod(micros // SECOND, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{_EPOCH_DAY + timedelta(days=days)}T{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def _add_months(start: date, months: int) -> date:
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
