"""``riskstream evaluate-simulation``: a simulated credit line's history, measured scenario by
scenario against the simulator's ground truth (:mod:`pipeline.scenarios`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from agents.evaluation_report import write_markdown
from pipeline.money import format_minor
from pipeline.scenarios import scenario_report
from pipeline.simulator import SimulationConfig, Simulator

__all__ = ["evaluate_simulation"]


def evaluate_simulation(config: SimulationConfig, out: Path) -> tuple[Path, dict[str, Any]]:
    """Simulate, run the history through the engine, and write ``report.md`` and
    ``report.json`` to ``out``."""
    started = time.monotonic()
    simulator = Simulator(config)
    records = [record for day in simulator.days() for record in day]
    figures = scenario_report(records, list(simulator.users()), config.holidays)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))

    def money(minor: int) -> str:
        return format_minor(minor, config.currency)

    lines = [
        f"# riskstream on a simulated credit line ({config.users:,} users, {config.months} "
        f"months, seed {config.seed})",
        "",
        "Each fraud scenario's users, how many got an alert or a temporary cut at or after "
        "their first fraudulent purchase (recall), the median time from that purchase to the "
        "first alert or cut, and the money: the scenario's fraud, the part alerted, the part "
        "the cuts stopped (purchases after a cut larger than the credit it left, declined), "
        "and the legitimate purchases of those users the cuts declined.",
        "",
        "| scenario | users | recall | median minutes to alert or cut | fraud | alerted | "
        "stopped by cuts | legitimate declined |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in figures["scenarios"].items():
        lines.append(
            f"| {name} | {row['users']:,} | {row['recall']:.2f} | "
            f"{row['median_minutes_to_first_alert_or_cut']:.0f} | {money(row['fraud_minor'])} | "
            f"{money(row['fraud_alerted_minor'])} | {money(row['fraud_stopped_minor'])} | "
            f"{money(row['legitimate_declined_minor'])} |")
    false = figures["false_alerts"]
    total = figures["money"]
    lines += [
        "",
        "False alerts (alerts on legitimate purchases) per 1,000 legitimate purchases: "
        f"holidays {false['holidays']['per_1000']:.2f} "
        f"({false['holidays']['false_alerts']:,} of {false['holidays']['legitimate_purchases']:,})"
        f", ordinary days {false['ordinary_days']['per_1000']:.2f} "
        f"({false['ordinary_days']['false_alerts']:,} of "
        f"{false['ordinary_days']['legitimate_purchases']:,}).",
        "",
        f"All fraud {money(total['fraud_minor'])}, alerted {money(total['fraud_alerted_minor'])};"
        f" the {total['cuts']:,} temporary cuts stopped {money(total['fraud_stopped_minor'])} "
        f"and declined {money(total['legitimate_declined_minor'])} of legitimate purchases.",
    ]
    return write_markdown(out, lines, [], time.monotonic() - started), figures
