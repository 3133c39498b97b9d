"""``riskstream evaluate``: the handbook's history through the real broker and worker, measured.

The Fraud Detection Handbook's transactions (and their fraud labels, released ``label_delay``
after each fraud) are replayed into the topics while a worker consumes them with every
purchase's score written to the ``scores`` topic. The scores that come back are measured under
the handbook's protocol (its test week, its removal of already-known compromised cards, Card
Precision@100 averaged per day) and beside the handbook's published results; then alert
precision and recall, recall per fraud scenario, detection delay and limit-cut precision. The
report is Markdown with ROC and precision-recall curves as PNG.

The evaluation runs one partition, so that one classifier learns from every label as the
handbook's models do. Merchant risk would be the same with any number of partitions: every
worker keeps a replica of all merchants' activity (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.broker import EmbeddedBroker
from agents.evaluation_report import (
    EvaluationResult,
    curve_plots,
    published_results,
    write_report,
)
from agents.exceptions import EmptyTestWeekError
from agents.kafka import ensure_topics, wait_for_broker
from agents.monitor import follow
from agents.replay import replay_files
from agents.settings import Settings
from agents.worker import PipelineWorker
from pipeline.evaluation import (
    FIRST_DAY,
    TEST_DAYS,
    TEST_WEEK_START,
    ScoredPurchase,
    epoch_day,
    first_test_day,
    handbook_test_set,
    ranking_metrics,
    train_start_day,
    weekly_metrics,
)
from pipeline.handbook import (
    Truth,
    ceiling_scores,
    handbook_metrics,
    hidden_frauds,
    histories_truth,
    history_paths,
    revealed_metrics,
)
from pipeline.history import HistoryOptions
from pipeline.impact import Purchase, cut_effects
from pipeline.merchants import MerchantBook
from pipeline.outputs import LIMIT_ADJUSTMENTS, SCORES
from pipeline.timeutil import DAY, HOUR, format_time

__all__ = ["HANDBOOK_LIMIT_MINOR", "SCENARIOS", "evaluate_handbook", "through_worker"]

SCENARIOS = {1: "amount > 220", 2: "compromised terminal", 3: "compromised customer"}
#: Every card's limit in the handbook's history, which has no repayments and no statements.
HANDBOOK_LIMIT_MINOR = 5_000_000
#: The handbook's published results, looked for beside the history.
_PUBLISHED_NAME = "fdh_published_ch3_baseline.csv"


def _run_pipeline(settings: Settings, paths: list[Path], workdir: Path, options: HistoryOptions,
                  streams: tuple[str, ...]) -> dict[str, list[dict]]:
    """Replay ``paths``, in order, while a worker consumes; return what it wrote to
    ``streams``."""
    worker = PipelineWorker(settings, stop_after_idle_s=15.0)
    failure: list[BaseException] = []

    def run_worker() -> None:
        try:
            asyncio.run(worker.run())
        except BaseException as error:  # reported below, in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run_worker, name="riskstream-worker")
    thread.start()
    summary = replay_files(settings, paths, options=options,
                           rejects_path=workdir / "rejects.jsonl", progress=True)
    thread.join()
    if failure:
        raise failure[0]
    if worker.stats.applied != summary.total_sent:
        raise RuntimeError(f"the worker applied {worker.stats.applied:,} of "
                           f"{summary.total_sent:,} events")
    written: dict[str, list[dict]] = {stream: [] for stream in streams}
    for stream, record in follow(settings, idle_timeout_s=5.0, streams=streams):
        written[stream].append(record)
    return written


def _measure(scores: list[dict], adjustments: list[dict], truth: dict[str, Truth],
             train_start: int, threshold: float, cut_threshold: float, label_delay: int
             ) -> tuple[dict[str, Any], list[ScoredPurchase]]:
    purchases = [truth[record["transaction_id"]].scored(record["transaction_id"],
                                                         record["score"])
                 for record in scores]
    test = handbook_test_set(purchases, train_start)
    metrics: dict[str, Any] = ranking_metrics(test)
    # A merchant's known frauds reach back this far: a week with less history before it is
    # scored by windows not yet full.
    metrics["days_to_fill"] = days_to_fill = MerchantBook(label_delay).reach // DAY
    history_start = min(known.event_time for known in truth.values()) // DAY - FIRST_DAY
    history_end = max(known.event_time for known in truth.values()) // DAY - FIRST_DAY
    metrics["days_before_test"] = first_test_day(train_start) - history_start
    metrics["test_days_covered"] = min(TEST_DAYS, history_end - first_test_day(train_start) + 1)
    # What no model learning from labels ``label_delay`` late can beat, and riskstream on the
    # frauds a label could reveal, which is where it can still gain (None without scenarios).
    hidden = hidden_frauds(truth, label_delay)
    metrics["ceiling"] = metrics["revealed"] = None
    ceiling_weeks: dict[int, dict[str, float]] = {}
    if hidden is not None:
        ceiling = ceiling_scores(truth, hidden)
        metrics["ceiling"] = handbook_metrics(ceiling, train_start)
        metrics["revealed"] = revealed_metrics(test, hidden)
        ceiling_weeks = weekly_metrics(ceiling, train_start)

    def week_figures(week_test: list[ScoredPurchase]) -> dict[str, Any]:
        return {**ranking_metrics(week_test), **_alert_figures(week_test, threshold),
                "revealed": None if hidden is None else revealed_metrics(week_test, hidden)}

    metrics["weeks"] = [
        {"test_week": _date(FIRST_DAY + first_test_day(start)), "chosen": start == train_start,
         "short_warmup": first_test_day(start) - history_start < days_to_fill, **figures,
         "ceiling": ceiling_weeks.get(start)}
        for start, figures in weekly_metrics(purchases, train_start, week_figures).items()
    ]
    metrics.update(_alert_figures(test, threshold))
    frauds = [p for p in test if p.fraud]
    metrics["recall_by_scenario"] = None if any(p.scenario is None for p in frauds) else {
        name: (sum(p.score >= threshold for p in frauds if p.scenario == number)
               / max(1, sum(p.scenario == number for p in frauds)))
        for number, name in SCENARIOS.items()
    }
    # Detection delay over the test days: first fraud of a customer -> first alert on them.
    first_fraud: dict[str, int] = {}
    first_alert: dict[str, int] = {}
    test_days = {p.day for p in test}
    for record in scores:
        known = truth[record["transaction_id"]]
        customer, micros = known.customer, known.event_time
        if micros // DAY - FIRST_DAY not in test_days:
            continue
        if known.fraud:
            first_fraud.setdefault(customer, micros)
        if record["score"] >= threshold and customer in first_fraud:
            first_alert.setdefault(customer, micros)
    delays = [(first_alert[c] - t) / HOUR for c, t in first_fraud.items() if c in first_alert]
    metrics["compromised_customers"] = len(first_fraud)
    metrics["compromised_detected"] = len(delays)
    metrics["median_detection_delay_h"] = statistics.median(delays) if delays else float("nan")
    cuts = [a for a in adjustments if a["kind"] == "temporary_cut"]
    metrics["limit_cuts"] = len(cuts)
    metrics["limit_cut_precision"] = (
        sum(truth[a["cause_event_id"]].fraud for a in cuts) / len(cuts) if cuts else float("nan"))
    metrics["alert_threshold"], metrics["cut_threshold"] = threshold, cut_threshold
    metrics["money"] = _money(scores, adjustments, truth, test, threshold)
    return metrics, test


def _money(scores: list[dict], adjustments: list[dict], truth: dict[str, Truth],
           test: list[ScoredPurchase], threshold: float) -> dict[str, int]:
    """The test week's fraud, and how much of it was alerted; what the temporary cuts stopped
    and declined over the whole history (pipeline.impact)."""
    def amount(purchase: ScoredPurchase) -> int:
        return truth[purchase.transaction_id].amount_minor

    purchases = [Purchase(record["transaction_id"], known.customer, known.event_time,
                          known.amount_minor, known.fraud)
                 for record in scores
                 for known in (truth[record["transaction_id"]],)]
    return {
        "test_fraud_minor": sum(amount(p) for p in test if p.fraud),
        "test_fraud_alerted_minor": sum(amount(p) for p in test
                                        if p.fraud and p.score >= threshold),
        "history_fraud_minor": sum(p.amount_minor for p in purchases if p.fraud),
        **cut_effects(purchases, adjustments),
    }


def _alert_figures(test: list[ScoredPurchase], threshold: float) -> dict[str, float]:
    """The share of the test purchases alerted at ``threshold``, and the alerts' precision and
    recall."""
    alerted = [p for p in test if p.score >= threshold]
    frauds = sum(p.fraud for p in test)
    caught = sum(p.fraud for p in alerted)
    return {"alert_rate": len(alerted) / len(test) if test else float("nan"),
            "alert_precision": caught / len(alerted) if alerted else float("nan"),
            "alert_recall": caught / frauds if frauds else float("nan")}


def through_worker(paths: list[Path], bootstrap: str | None, options: HistoryOptions,
                    streams: tuple[str, ...], **settings: Any) -> tuple[Settings, dict]:
    """Replay ``paths``, in order, through the broker (the embedded one unless
    ``bootstrap``) and a worker on one partition, and return what the worker wrote to
    ``streams``."""
    with tempfile.TemporaryDirectory(prefix="riskstream-eval-") as tmp:
        workdir = Path(tmp)
        broker = EmbeddedBroker(log_path=workdir / "tansu.log") if bootstrap is None else None
        if broker is not None:
            broker.start()
        try:
            name = uuid.uuid4().hex[:8]
            config = Settings(
                bootstrap_servers=bootstrap or broker.bootstrap,  # type: ignore[union-attr]
                topic_prefix=f"eval-{name}.", group_id=f"eval-{name}", partitions=1,
                state_dir=workdir / "state", session_timeout_ms=6000, emit_scores=True,
                http_port=0,  # any free port: an evaluation must not need 9400
                **settings,
            )
            wait_for_broker(config)
            ensure_topics(config)
            return config, _run_pipeline(config, paths, workdir, options, streams)
        finally:
            if broker is not None:
                broker.stop()


def _test_week(truth: dict[str, Truth], test_week_start: str) -> tuple[int, str]:
    """The protocol's first day for a test week starting on ``test_week_start``, and the week
    as text; a week in which the history has no purchase is refused before anything runs."""
    first = epoch_day(test_week_start)
    test_days = range(first, first + TEST_DAYS)
    days = {known.event_time // DAY for known in truth.values()}
    week = f"{test_week_start}..{_date(test_days[-1])}"
    if not days.intersection(test_days):
        span = f"{_date(min(days))}..{_date(max(days))}" if days else "no purchases at all"
        raise EmptyTestWeekError(f"the history has no purchase in the test week {week} "
                                 f"(it holds {span}); choose the week with --test-start")
    return train_start_day(test_week_start), week


def _date(day: int) -> str:
    return format_time(day * DAY)[:10]


def evaluate_handbook(data: Path | Sequence[Path], out: Path, bootstrap: str | None = None,
                      published: Path | None = None,
                      test_week_start: str = TEST_WEEK_START) -> EvaluationResult:
    """Replay ``data`` through the broker and a worker and measure its scores under the
    handbook's protocol, with the test week starting on ``test_week_start``.

    ``data`` may be several histories that follow one another, oldest first: they are
    replayed in that order as one history, so a hold-out that continues a history is scored
    by models (and windows, and merchant risk) that have lived through the history before it,
    as a deployed worker's would."""
    started = time.monotonic()
    paths = history_paths(data)
    truth = histories_truth(paths)
    train_start, week = _test_week(truth, test_week_start)
    out.mkdir(parents=True, exist_ok=True)
    options = HistoryOptions(format="fdh")
    settings, written = through_worker(
        paths, bootstrap, options, (SCORES, LIMIT_ADJUSTMENTS),
        default_limit_minor=HANDBOOK_LIMIT_MINOR,
    )
    policy = settings.risk_config()
    metrics, test = _measure(written[SCORES], written[LIMIT_ADJUSTMENTS], truth, train_start,
                             policy.alert_threshold, policy.cut_threshold,
                             options.label_delay)
    metrics["test_week"] = week
    metrics["histories"] = [path.name for path in paths]
    labels = [p.fraud for p in test]
    plots = (curve_plots(labels, [p.score for p in test], metrics, out, f"test week {week}")
             if 0 < sum(labels) < len(labels) else [])
    if published is None:  # beside the first history that has it
        beside = [path.parent / _PUBLISHED_NAME for path in paths]
        published = next((path for path in beside if path.exists()), beside[0])
    report = write_report(metrics, published_results(published), plots, out,
                          time.monotonic() - started)
    return EvaluationResult(metrics, report)
