"""``riskstream evaluate-credit``: default risk on the UCI Taiwan clients, through the real
broker and worker.

Two protocols:

- **train/test** (the default): the models are trained on the training clients' history
  (``riskstream train``: the online models, and the champion fitted in batch), a worker
  started from them replays the test clients' bills and repayments, and only the test
  clients -- never seen in training -- are measured, at their last bill. The batch references
  of ``benchmarks/uci_reference.py``, fitted on the same training clients, are printed beside.
- **prequential** (``--prequential``): one table, clients joining in monthly cohorts, each
  scored by the online model that learned only from earlier cohorts' outcomes.

Each writes a report with the default AUC, average precision, the default rate among the
safest 20/40/60 % and among the users raised, ROC, precision-recall and calibration plots, and
(train/test) every test client's scores as CSV.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import time
from pathlib import Path
from typing import Any

from agents.evaluate import through_worker
from agents.evaluation_report import EvaluationResult, curve_plots, write_markdown
from agents.settings import Settings
from pipeline.adapters import UCI_OUTCOME_WINDOW, uci_defaults
from pipeline.evaluation import credit_metrics
from pipeline.history import HistoryOptions, merged_history
from pipeline.impact import raise_effects
from pipeline.money import format_minor
from pipeline.outputs import CREDIT_SCORES, LIMIT_ADJUSTMENTS
from pipeline.training import train_history

__all__ = ["evaluate_credit", "evaluate_credit_split", "split_uci_table"]

#: The credit line's settings for UCI's table: New Taiwan dollars, limits from the bills.
UCI_SETTINGS: dict[str, Any] = {"currency": "TWD", "default_limit_minor": 100,
                                "max_limit_minor": 10**11}
_REFERENCE = Path(__file__).resolve().parents[1] / "benchmarks" / "uci_reference.py"


def split_uci_table(path: Path, test_from_id: int, directory: Path) -> tuple[Path, Path]:
    """Write the clients of ``path`` with ID below ``test_from_id`` to ``train.csv`` and the
    rest to ``test.csv`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    train, test = directory / "train.csv", directory / "test.csv"
    with open(path, encoding="utf-8", newline="") as source, \
            open(train, "w", encoding="utf-8", newline="") as first, \
            open(test, "w", encoding="utf-8", newline="") as second:
        reader = csv.reader(source)
        header = next(reader)
        column = header.index("ID")
        writers = csv.writer(first), csv.writer(second)
        for writer in writers:
            writer.writerow(header)
        for row in reader:
            writers[int(row[column]) >= test_from_id].writerow(row)
    return train, test


def evaluate_credit_split(train: Path, test: Path, out: Path,
                          bootstrap: str | None = None) -> EvaluationResult:
    """Train on ``train``'s clients, replay ``test``'s through a worker started from the
    trained models, and measure the test clients only."""
    started = time.monotonic()
    defaulted = uci_defaults(test)  # refuses a table it cannot read before anything runs
    overlap = set(uci_defaults(train)) & set(defaulted)
    if overlap:
        raise ValueError(f"{len(overlap):,} clients are in both the training and the test "
                         f"table (e.g. {sorted(overlap)[0]}): the test must be unseen")
    out.mkdir(parents=True, exist_ok=True)
    policy = Settings(**UCI_SETTINGS).risk_config()
    options = HistoryOptions(format="uci-taiwan")
    models = train_history(merged_history([train], options), policy, UCI_OUTCOME_WINDOW,
                           sources=[train])
    model_dir = out / "model"
    models.save(model_dir)
    _, written = through_worker([test], bootstrap, options,
                                (CREDIT_SCORES, LIMIT_ADJUSTMENTS),
                                model_dir=model_dir, **UCI_SETTINGS)
    champion: dict[str, float | None] = {}
    challenger: dict[str, float | None] = {}
    for record in written[CREDIT_SCORES]:  # the latest review of each client: its last bill
        champion[record["user_id"]] = record["default_risk"]
        challenger[record["user_id"]] = record["challenger_risk"]
    raised, frozen = _raised_and_frozen(written[LIMIT_ADJUSTMENTS])
    metrics = credit_metrics(champion, defaulted, raised, frozen)
    metrics["money"] = raise_effects(written[LIMIT_ADJUSTMENTS], defaulted)
    metrics["challenger"] = credit_metrics(challenger, defaulted, raised, frozen)
    metrics["model"] = models.manifest
    metrics["raise_max_default_risk"] = policy.raise_max_default_risk
    metrics["freeze_default_risk"] = policy.freeze_default_risk
    references = _references(train, test, defaulted)
    metrics["references"] = references
    _write_scores(out / "scores.csv", defaulted, champion, challenger, raised, frozen)
    plots = _plots(defaulted, champion, metrics, out, "test clients' last bill")
    lines = [
        "# riskstream on the UCI Taiwan credit-card clients: trained, then tested on unseen "
        "clients",
        "",
        f"Trained on {train.name} ({_trained(models.manifest)}) with `riskstream train`; a "
        "worker started from those models replayed the bills and repayments of "
        f"{test.name}, and only its clients are measured, at their last bill. "
        "The champion (gradient-boosted trees fitted on each training line's latest settled "
        "statement) decides; the online model, which started from the training history and "
        "went on learning, is scored beside it as the challenger.",
        "",
        *_summary_lines(metrics),
        "",
        "| model | default AUC | AP | default rate, safest 20 % / 40 % / 60 % |",
        "|---|---|---|---|",
        _row("riskstream champion (trained, streaming)", metrics),
        _row("riskstream challenger (online, streaming)", metrics["challenger"]),
        *(_row(f"batch reference: {name}", figures) for name, figures in references),
        "",
        *([] if references else [
            "(The batch references need `pip install -e '.[reference]'`.)", ""]),
        "Per-client scores: `scores.csv`.",
    ]
    return EvaluationResult(metrics, write_markdown(out, lines, plots,
                                                    time.monotonic() - started))


def evaluate_credit(data: Path, out: Path, bootstrap: str | None = None,
                    cohort_size: int = 250) -> EvaluationResult:
    """The UCI clients' bills and repayments through the broker and worker, prequentially:
    clients join in monthly cohorts, so each is scored by a model that learned only the
    defaults (and repaid cycles) known before its last bill."""
    started = time.monotonic()
    defaulted = uci_defaults(data)  # refuses a table it cannot read before anything is made
    out.mkdir(parents=True, exist_ok=True)
    settings, written = through_worker(
        [data], bootstrap, HistoryOptions(format="uci-taiwan", cohort_size=cohort_size),
        (CREDIT_SCORES, LIMIT_ADJUSTMENTS), **UCI_SETTINGS,
    )
    latest: dict[str, float | None] = {}
    for record in written[CREDIT_SCORES]:
        latest[record["user_id"]] = record["default_risk"]
    raised, frozen = _raised_and_frozen(written[LIMIT_ADJUSTMENTS])
    metrics = credit_metrics(latest, defaulted, raised, frozen)
    metrics["money"] = raise_effects(written[LIMIT_ADJUSTMENTS], defaulted)
    metrics["cohort_size"] = cohort_size
    policy = settings.risk_config()
    metrics["raise_max_default_risk"] = policy.raise_max_default_risk
    metrics["freeze_default_risk"] = policy.freeze_default_risk
    plots = _plots(defaulted, latest, metrics, out, "UCI clients' last bill")
    lines = [
        "# riskstream on the UCI Taiwan credit-card clients",
        "",
        "Bills and repayments replayed through the broker and worker; clients join in monthly "
        f"cohorts of {cohort_size} so each is scored (at its last bill) by a "
        "default model that learned, in event time, only from earlier cohorts' outcomes. "
        "Clients scored while the model was cold are left out of the AUC.",
        "",
        *_summary_lines(metrics, curves=bool(plots)),
    ]
    return EvaluationResult(metrics, write_markdown(out, lines, plots,
                                                    time.monotonic() - started))


def _trained(manifest: dict[str, Any]) -> str:
    champion = manifest["champion"]
    if champion is None:
        return f"no champion: {manifest['champion_skipped']}"
    return (f"{champion['observations']:,} lines, {champion['defaults']:,} of them defaulted "
            f"within {champion['horizon']} of a bill's due date")


def _raised_and_frozen(adjustments: list[dict]) -> tuple[set[str], set[str]]:
    return ({a["user_id"] for a in adjustments if a["kind"] == "increase"},
            {a["user_id"] for a in adjustments if a["kind"] == "risk_freeze"})


def _summary_lines(metrics: dict[str, Any], curves: bool = True) -> list[str]:
    money = metrics["money"]
    return [
        f"- clients {metrics['clients']:,}, of whom {metrics['defaulters']:,} defaulted "
        f"(base rate {metrics['base_rate']:.3f}); scored by a warm model {metrics['scored']:,}"
        + ("" if curves else " -- too few, or all of one outcome, for curves: a longer history "
           "(more cohorts) lets the model learn before the last cohorts are scored"),
        f"- default AUC ROC **{metrics['auc_roc']:.3f}**, Average Precision "
        f"{metrics['average_precision']:.3f}",
        f"- raised (default risk <= {metrics['raise_max_default_risk']}, clean record, line in "
        f"use): **{metrics['raised_share']:.3f}** of clients, "
        f"**{metrics['raised_default_rate']:.3f}** of them defaulted",
        f"- frozen for default risk >= {metrics['freeze_default_risk']}: {metrics['frozen']:,} "
        f"clients, {metrics['frozen_precision']:.3f} of them defaulted",
        f"- in money: {money['raises']:,} raises granted "
        f"{format_minor(money['extra_credit_minor'], 'TWD')} of extra credit, "
        f"{money['extra_credit_to_defaulters_share']:.1%} of it to clients who later "
        "defaulted",
        "",
        "Default rate among the lowest-risk share of scored clients (what a raise policy "
        "could reach with this ranking):",
        "",
        "| share raised | default rate |",
        "|---|---|",
        *(f"| {share:.0%} | {rate:.3f} |" for share, rate in metrics["safest_share_rates"]),
        "",
        f"The largest share, safest first, with at most {metrics['target_default_rate']:.0%} "
        f"of them defaulting: **{metrics['largest_safe_share']:.3f}**.",
    ]


def _row(name: str, figures: dict[str, Any]) -> str:
    rates = " / ".join(f"{rate:.3f}" for _, rate in figures["safest_share_rates"])
    return (f"| {name} | {figures['auc_roc']:.3f} | {figures['average_precision']:.3f} | "
            f"{rates} |")


def _references(train: Path, test: Path, defaulted: dict[str, bool]
                ) -> list[tuple[str, dict[str, Any]]]:
    """``benchmarks/uci_reference.py``'s batch models on the same split (none without the
    reference extras, or outside a source tree)."""
    if not _REFERENCE.exists() or importlib.util.find_spec("lightgbm") is None:
        return []
    spec = importlib.util.spec_from_file_location("uci_reference", _REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [(name, credit_metrics(scores, defaulted, set(), set()))
            for name, scores in module.split_references(train, test)]


def _write_scores(path: Path, defaulted: dict[str, bool], champion: dict[str, float | None],
                  challenger: dict[str, float | None], raised: set[str],
                  frozen: set[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "defaulted", "default_risk", "challenger_risk", "raised",
                         "risk_frozen"])
        for user in sorted(defaulted):
            writer.writerow([user, int(defaulted[user]), _cell(champion.get(user)),
                             _cell(challenger.get(user)), int(user in raised),
                             int(user in frozen)])


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _plots(defaulted: dict[str, bool], risk: dict[str, float | None], metrics: dict[str, Any],
           out: Path, what: str) -> list[Path]:
    """ROC, precision-recall and calibration plots (none without both outcomes scored)."""
    scored = [user for user, value in risk.items() if value is not None]
    labels = [defaulted[user] for user in scored]
    if not 0 < sum(labels) < len(labels):
        return []
    values = [risk[user] for user in scored]
    return [*curve_plots(labels, values, metrics, out, what),  # type: ignore[arg-type]
            _calibration_plot(labels, values, out, what)]  # type: ignore[arg-type]


def _calibration_plot(labels: list[bool], values: list[float], out: Path, what: str) -> Path:
    """Observed default rate against the predicted probability, in ten equal-count bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = sorted(zip(values, labels, strict=True))
    bins = 10
    predicted, observed = [], []
    for index in range(bins):
        chunk = pairs[index * len(pairs) // bins:(index + 1) * len(pairs) // bins]
        if chunk:
            predicted.append(math.fsum(value for value, _ in chunk) / len(chunk))
            observed.append(sum(label for _, label in chunk) / len(chunk))
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(predicted, observed, marker="o", label="riskstream")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axes.set(xlabel="predicted default probability", ylabel="observed default rate",
             xlim=(0, 1), ylim=(0, 1), title=f"Calibration, {what}")
    axes.legend(loc="upper left")
    path = out / "calibration.png"
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path
