"""The handbook evaluation's report: Markdown with the published results beside, every test
week's figures, the money, ROC and precision-recall curves, and the lines the console prints."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.evaluation import TEST_DAYS, precision_recall_curve, roc_curve
from pipeline.handbook import SCENARIO_COLUMN
from pipeline.money import format_minor

__all__ = ["EvaluationResult", "caveats", "console_summary", "curve_plots", "published_results",
           "short_test_week_note", "short_warmup_note", "write_markdown", "write_report"]


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    report: Path


def published_results(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def curve_plots(labels: list[bool], values: list[float], metrics: dict[str, Any],
                directory: Path, what: str) -> list[Path]:
    """ROC and precision-recall curves of ``values`` against ``labels`` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fpr, tpr = roc_curve(labels, values)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(fpr, tpr, label=f"riskstream (AUC {metrics['auc_roc']:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {what}")
    axes.legend(loc="lower right")
    paths.append(directory / "roc.png")
    figure.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(figure)
    recall, precision = precision_recall_curve(labels, values)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.step(recall, precision, where="post",
              label=f"riskstream (AP {metrics['average_precision']:.3f})")
    axes.axhline(sum(labels) / len(labels), linestyle="--", color="grey", label="random")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title=f"Precision-recall, {what}")
    axes.legend(loc="upper right")
    paths.append(directory / "precision_recall.png")
    figure.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(figure)
    return paths


def write_report(metrics: dict[str, Any], published: list[dict[str, str]], plots: list[Path],
            directory: Path, seconds: float) -> Path:
    histories = ", then ".join(f"`{name}`" for name in metrics["histories"])
    lines = [
        "# riskstream on the Fraud Detection Handbook",
        "",
        f"Replayed through the broker and worker ({histories}); learned online from fraud labels "
        f"released 7 days after each fraud; scored on the test week {metrics['test_week']} "
        "with already-known compromised customers removed (the handbook's protocol).",
        "",
        "| model | AUC ROC | Average Precision | Card Precision@100 |",
        "|---|---|---|---|",
        f"| **riskstream (online, streaming)** | **{metrics['auc_roc']:.3f}** | "
        f"**{metrics['average_precision']:.3f}** | **{metrics['card_precision_at_100']:.3f}** |",
    ]
    lines += [f"| {row['model']} (published, batch) | {row['auc_roc']} | "
              f"{row['average_precision']} | {row['card_precision_at_100']} |"
              for row in published]
    ceiling, revealed = metrics["ceiling"], metrics["revealed"]
    if ceiling is not None and revealed is not None:
        hidden = metrics["test_frauds"] - revealed["test_frauds"]
        lines += [
            f"| ceiling: every fraud ranked first except those the label delay hides | "
            f"{ceiling['auc_roc']:.3f} | {ceiling['average_precision']:.3f} | "
            f"{ceiling['card_precision_at_100']:.3f} |",
            f"| riskstream on the frauds a label could reveal (the {hidden:,} hidden ones left "
            f"out) | {revealed['auc_roc']:.3f} | {revealed['average_precision']:.3f} | "
            f"{revealed['card_precision_at_100']:.3f} |",
            "",
            "The ceiling: a compromised terminal's frauds look like ordinary purchases, so "
            "until a label has revealed one of them (7 days later) nothing can tell them apart "
            f"({hidden:,} of the test set's {metrics['test_frauds']:,} frauds). A scorer that "
            "knew every other fraud, and ranked these with the legitimate purchases, would "
            "score the ceiling's row (`pipeline.handbook.delay_ceiling`). The last row is "
            "riskstream's ranking with those frauds left out: what separates riskstream from "
            "the ceiling lies there (`pipeline.handbook.revealed_metrics`).",
        ]
    else:
        lines += ["", f"No ceiling: the history has no `{SCENARIO_COLUMN}` column to tell the "
                      "compromised terminals' frauds by."]
    for note in caveats(metrics):
        lines += ["", note]
    by_scenario = metrics["recall_by_scenario"]
    recall = (", ".join(f"{name} {value:.2f}" for name, value in by_scenario.items())
              if by_scenario is not None else f"not available (no `{SCENARIO_COLUMN}` column)")
    lines += [
        "",
        f"Test set: {metrics['test_transactions']:,} transactions, {metrics['test_frauds']:,} "
        "frauds.",
        *_weeks_table(metrics["weeks"]),
        "",
        f"## At the alert threshold {metrics['alert_threshold']}",
        "",
        f"- alert rate {metrics['alert_rate']:.4f}, precision {metrics['alert_precision']:.3f}, "
        f"recall {metrics['alert_recall']:.3f}",
        f"- recall by scenario: {recall}",
        f"- compromised customers detected: {metrics['compromised_detected']} of "
        f"{metrics['compromised_customers']}; median delay from first fraud to first alert "
        f"{metrics['median_detection_delay_h']:.1f} h",
        f"- temporary limit cuts (score >= {metrics['cut_threshold']}): "
        f"{metrics['limit_cuts']:,} over the whole history, "
        f"{metrics['limit_cut_precision']:.3f} of them caused by a fraud",
        "",
        *_money_lines(metrics["money"]),
    ]
    return write_markdown(directory, lines, plots, seconds)


def write_markdown(directory: Path, lines: list[str], plots: list[Path], seconds: float) -> Path:
    """``report.md`` in ``directory``: ``lines``, then the plots and the run time."""
    path = directory / "report.md"
    ending = ["", *(f"![{plot.stem}]({plot.name})" for plot in plots), "",
              f"Run time {seconds:.0f} s."]
    path.write_text("\n".join([*lines, *ending]) + "\n")
    return path


def _money_lines(money: dict[str, int]) -> list[str]:
    def cny(minor: int) -> str:
        return format_minor(minor, "CNY")

    def share(part: int, whole: int) -> str:
        return f"{part / whole:.1%}" if whole else "-"

    return [
        "## In money",
        "",
        f"- fraud in the test week {cny(money['test_fraud_minor'])}, of which alerted "
        f"{cny(money['test_fraud_alerted_minor'])} "
        f"({share(money['test_fraud_alerted_minor'], money['test_fraud_minor'])})",
        f"- over the whole history (fraud {cny(money['history_fraud_minor'])}), the "
        f"{money['cuts']:,} temporary cuts would have stopped {cny(money['fraud_stopped_minor'])}"
        f" of fraud -- purchases after a cut larger than the credit it left, declined by "
        f"authorisation -- of the {cny(money['fraud_after_cuts_minor'])} attempted while cuts "
        f"held, and declined {cny(money['legitimate_declined_minor'])} of legitimate purchases "
        "(friction)",
    ]


def _weeks_table(weeks: list[dict[str, Any]]) -> list[str]:
    """Every test week the history covers, as report lines (none if only the chosen one),
    with each week's ceiling and riskstream without its hidden frauds when the history has
    the scenarios to find those by."""
    if all(week["chosen"] for week in weeks):
        return []
    with_ceiling = all(week["ceiling"] is not None for week in weeks)
    columns = ["test week", "AUC ROC", "Average Precision", "Card Precision@100", "test frauds",
               "alert precision / recall"]
    if with_ceiling:
        columns += ["ceiling AUC / AP / CP@100", "hidden frauds left out: AUC / AP"]
    lines = [
        "",
        "## Every test week of the history",
        "",
        "The same protocol on each test week the history covers, a whole number of weeks "
        "before or after the chosen one (in bold). How far the figures move from week to week "
        "says how much one week's figures tell about another's. * : the history before the "
        "week is shorter than a merchant's known frauds reach back (a short warm-up)."
        + (" The last two columns are the week's own ceiling and riskstream without the "
           "week's hidden frauds, as in the table above." if with_ceiling else ""),
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for week in weeks:
        bold = "**" if week["chosen"] else ""
        cells = [f"{bold}{week['test_week']}{bold}{' *' if week['short_warmup'] else ''}",
                 f"{week['auc_roc']:.3f}", f"{week['average_precision']:.3f}",
                 f"{week['card_precision_at_100']:.3f}", f"{week['test_frauds']:,}",
                 f"{week['alert_precision']:.3f} / {week['alert_recall']:.3f}"]
        if with_ceiling:
            ceiling, revealed = week["ceiling"], week["revealed"]
            cells += [f"{ceiling['auc_roc']:.3f} / {ceiling['average_precision']:.3f} / "
                      f"{ceiling['card_precision_at_100']:.3f}",
                      f"{revealed['auc_roc']:.3f} / {revealed['average_precision']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def console_summary(result: EvaluationResult) -> list[str]:
    """The figures ``riskstream evaluate`` prints: the chosen week's, then (when the history
    says which frauds are whose) the label delay's ceiling and riskstream without the frauds
    no label could reveal yet."""
    metrics = result.metrics
    lines = [f"AUC ROC {metrics['auc_roc']:.3f}, Average Precision "
             f"{metrics['average_precision']:.3f}, Card Precision@100 "
             f"{metrics['card_precision_at_100']:.3f} on {metrics['test_transactions']:,} "
             f"test transactions -> {result.report}"]
    ceiling, revealed = metrics["ceiling"], metrics["revealed"]
    if ceiling is not None and revealed is not None:
        lines.append(
            f"ceiling for the label delay: AUC ROC {ceiling['auc_roc']:.3f}, Average "
            f"Precision {ceiling['average_precision']:.3f}, Card Precision@100 "
            f"{ceiling['card_precision_at_100']:.3f}; without the "
            f"{metrics['test_frauds'] - revealed['test_frauds']:,} frauds no label could "
            f"reveal yet: AUC ROC {revealed['auc_roc']:.3f}, Average Precision "
            f"{revealed['average_precision']:.3f}")
    return lines


def caveats(metrics: dict[str, Any]) -> list[str]:
    """What makes the chosen week's figures less comparable with a whole, warm week's, as
    report paragraphs (none for such a week)."""
    return [note for note in (short_warmup_note(metrics), short_test_week_note(metrics))
            if note is not None]


def short_test_week_note(metrics: dict[str, Any]) -> str | None:
    """Why the figures cover only part of the test week (None: the history holds all of it)."""
    covered = metrics["test_days_covered"]
    if covered >= TEST_DAYS:
        return None
    return (f"**Short test week:** the history ends on day {covered} of the test week's "
            f"{TEST_DAYS}, so the figures are those of its first {covered} days only, and the "
            "week is not in the table of every test week (whole weeks only).")


def short_warmup_note(metrics: dict[str, Any]) -> str | None:
    """Why a test week close to the history's start is scored by models still warming up
    (None: the history before it is long enough)."""
    if metrics["days_before_test"] >= metrics["days_to_fill"]:
        return None
    return (f"**Short warm-up:** the history starts {metrics['days_before_test']} days before "
            f"the test week, but a merchant's known frauds reach {metrics['days_to_fill']} days "
            "back, and the classifier learns only from labels already released: the test week "
            "is scored by windows not yet full and a model still forming. For a hold-out that "
            "continues a history, give that history first (`--data earlier.parquet --data "
            "holdout.parquet`), as a worker that had run through it would score the hold-out.")
