"""How riskstream fares on a simulated history, scenario by scenario (``riskstream
evaluate-simulation``): the simulator knows which users each fraud scenario happened to and
which purchases were fraud (its labels name them), so each scenario's recall, time to the first
alert or cut, and money can be counted; and since its holiday spikes are legitimate, the
false-alert rate on holidays can be set against ordinary days.

The history runs through the engine of one partition (the pure core the workers run; their
outputs are the same, ``tests/integration/test_end_to_end.py``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

from pipeline.config import RiskConfig
from pipeline.engine import RiskEngine
from pipeline.events import FRAUD_LABEL_KINDS, event_from_mapping
from pipeline.exceptions import InvalidEvent
from pipeline.impact import Purchase, cut_effects
from pipeline.outputs import ALERTS, LIMIT_ADJUSTMENTS
from pipeline.timeutil import MINUTE, parse_time, to_datetime

__all__ = ["scenario_report"]


def scenario_report(records: Iterable[dict[str, Any]], users: Iterable[dict[str, Any]],
                    holidays: Iterable[tuple[int, int]], config: RiskConfig | None = None
                    ) -> dict[str, Any]:
    """Run ``records`` (a simulated history, in event-time order) through an engine and measure
    it against the simulator's ground truth ``users`` (each with its ``scenario``)."""
    engine = RiskEngine(config if config is not None else RiskConfig())
    scenario_of = {user["user_id"]: user["scenario"] for user in users}
    holiday_days = set(holidays)
    purchases: dict[str, Purchase] = {}
    fraud_ids: set[str] = set()
    alerted: set[str] = set()
    first_action: dict[str, int] = {}  # user -> first alert or cut
    adjustments: list[dict[str, Any]] = []
    for record in records:
        event = event_from_mapping(record)
        if record["type"] == "label" and record.get("kind") in FRAUD_LABEL_KINDS:
            fraud_ids.add(record["transaction_id"])
        try:
            outputs = engine.process(event)
        except InvalidEvent:
            continue
        if record["type"] == "transaction":
            purchases[record["event_id"]] = Purchase(
                record["event_id"], record["user_id"], event.event_time,
                record["amount_minor"], False)
        for output in outputs:
            value = output.value
            if output.stream == ALERTS:
                alerted.add(value["transaction_id"])
                first_action.setdefault(value["user_id"], parse_time(value["event_time"]))
            elif output.stream == LIMIT_ADJUSTMENTS:
                adjustments.append(value)
                if value["kind"] == "temporary_cut":
                    first_action.setdefault(value["user_id"], parse_time(value["event_time"]))
    truth = [Purchase(p.transaction_id, p.user_id, p.event_time, p.amount_minor,
                      p.transaction_id in fraud_ids) for p in purchases.values()]
    by_scenario: dict[str, list[Purchase]] = defaultdict(list)
    for purchase in truth:
        if purchase.fraud:
            by_scenario[scenario_of.get(purchase.user_id, "none")].append(purchase)
    scenarios = {name: _scenario_figures(frauds, alerted, first_action, adjustments, truth)
                 for name, frauds in sorted(by_scenario.items())}
    return {"scenarios": scenarios,
            "false_alerts": _false_alerts(truth, alerted, holiday_days),
            "money": {"fraud_minor": sum(p.amount_minor for p in truth if p.fraud),
                      "fraud_alerted_minor": sum(p.amount_minor for p in truth
                                                 if p.fraud and p.transaction_id in alerted),
                      **cut_effects(truth, adjustments)}}


def _scenario_figures(frauds: list[Purchase], alerted: set[str], first_action: dict[str, int],
                      adjustments: list[dict[str, Any]], truth: list[Purchase]
                      ) -> dict[str, Any]:
    first_fraud: dict[str, int] = {}
    for purchase in sorted(frauds, key=lambda p: p.event_time):
        first_fraud.setdefault(purchase.user_id, purchase.event_time)
    delays = [(first_action[user] - when) / MINUTE for user, when in first_fraud.items()
              if first_action.get(user, -1) >= when]
    users = set(first_fraud)
    effects = cut_effects([p for p in truth if p.user_id in users],
                          [a for a in adjustments if a["user_id"] in users])
    return {
        "users": len(users),
        "detected": len(delays),
        "recall": len(delays) / len(users) if users else float("nan"),
        "median_minutes_to_first_alert_or_cut": statistics.median(delays) if delays
        else float("nan"),
        "fraud_minor": sum(p.amount_minor for p in frauds),
        "fraud_alerted_minor": sum(p.amount_minor for p in frauds if p.transaction_id in alerted),
        "fraud_stopped_minor": effects["fraud_stopped_minor"],
        "legitimate_declined_minor": effects["legitimate_declined_minor"],
    }


def _false_alerts(truth: list[Purchase], alerted: set[str],
                  holidays: set[tuple[int, int]]) -> dict[str, Any]:
    """Alerts on legitimate purchases per 1,000 legitimate purchases, on holidays and on
    ordinary days."""
    counts = {True: [0, 0], False: [0, 0]}  # holiday? -> [legitimate, alerted]
    for purchase in truth:
        if purchase.fraud:
            continue
        day: date = to_datetime(purchase.event_time).date()
        bucket = counts[(day.month, day.day) in holidays]
        bucket[0] += 1
        bucket[1] += purchase.transaction_id in alerted
    return {name: {"legitimate_purchases": count, "false_alerts": false,
                   "per_1000": 1000 * false / count if count else float("nan")}
            for name, (count, false) in (("holidays", counts[True]),
                                         ("ordinary_days", counts[False]))}
