"""Training on a history, evaluations, the simulator and the demo."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from agents.cli.base import history_options, history_options_from, main, settings_from
from pipeline.evaluation import TEST_WEEK_START

__all__: list[str] = []


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@history_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The model directory to write (RISKSTREAM_MODEL_DIR for the workers).")
@click.option("--horizon-days", type=click.FloatRange(min=1),
              help="Performance window after a statement's due date in which a default counts "
              "[default: the format's (uci-taiwan: 60), else the policy's default_horizon].")
def train(files: tuple[Path, ...], out: Path, horizon_days: float | None,
          **history: Any) -> None:
    """Learn from a history (the same files replay reads): the online fraud and default
    models as a worker would, and the champion default model in batch; write them to --out
    for workers to start from (RISKSTREAM_MODEL_DIR)."""
    from collections import Counter

    from pipeline.adapters import OUTCOME_WINDOWS
    from pipeline.history import merged_history
    from pipeline.timeutil import DAY
    from pipeline.training import train_history

    options = history_options_from(**history)
    config = settings_from().risk_config()
    horizon = (round(horizon_days * DAY) if horizon_days is not None
               else OUTCOME_WINDOWS.get(options.format, config.default_horizon))
    unreadable: Counter[str] = Counter()
    events = merged_history(list(files), options,
                            on_rejection=lambda record: unreadable.update([record.path]))
    models = train_history(events, config, horizon, sources=files)
    history_figures = models.manifest["history"]
    applied = sum(history_figures["events"].values())
    refused = sum(history_figures["rejected"].values()) + unreadable.total()
    if not applied or refused > applied:
        reasons = ", ".join(f"{kind} {count:,}" for kind, count
                            in Counter(history_figures["rejected"]).most_common(3))
        raise click.ClickException(
            f"{refused:,} records refused and {applied:,} learned from ({reasons or 'unreadable'}"
            f"); nothing written. Is the policy's currency ({config.currency}) the history's? "
            "Set RISKSTREAM_CURRENCY or the policy file.")
    models.save(out)
    champion = models.manifest["champion"]
    click.echo(
        f"learned from {applied:,} events ({history_figures['first']} .. "
        f"{history_figures['last']}; {refused:,} refused)"
        + (f"; champion: {champion['trees']} trees on {champion['observations']:,} lines, "
           f"{champion['defaults']:,} of them defaulted" if champion is not None
           else f"; no champion: {models.manifest['champion_skipped']}")
        + f" -> {out}")


@main.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True,
              default=(Path("../shared/data/fdh_dev_2018-04-01_2018-09-04.parquet"),),
              show_default=True,
              help="The Fraud Detection Handbook's transactions (Parquet). Give it again for "
              "histories that follow one another, oldest first: they are replayed as one, so "
              "a hold-out is scored by models that lived through the history before it.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("evaluation"), show_default=True, help="Where the report goes.")
@click.option("--bootstrap", "bootstrap_servers",
              help="Use this Kafka cluster instead of starting the embedded broker.")
@click.option("--published", type=click.Path(dir_okay=False, path_type=Path),
              help="The handbook's published results (CSV) to print beside ours "
              "[default: fdh_published_ch3_baseline.csv beside the first --data that has it].")
@click.option("--test-start", type=click.DateTime(formats=["%Y-%m-%d"]),
              default=TEST_WEEK_START, show_default=True,
              help="First day (UTC) of the test week; the protocol's training week starts "
              "14 days before it.")
def evaluate(data: tuple[Path, ...], out: Path, bootstrap_servers: str | None,
             published: Path | None, test_start: datetime) -> None:
    """Replay the handbook's history through the broker and worker and measure the scores."""
    from agents.evaluate import evaluate_handbook
    from agents.evaluation_report import caveats, console_summary
    from agents.exceptions import EmptyTestWeekError
    from pipeline.exceptions import MisorderedHistories

    try:
        result = evaluate_handbook(data, out, bootstrap_servers, published,
                                   test_start.strftime("%Y-%m-%d"))
    except EmptyTestWeekError as error:
        raise click.BadParameter(str(error), param_hint="--test-start") from None
    except MisorderedHistories as error:
        raise click.BadParameter(str(error), param_hint="--data") from None
    for line in console_summary(result):
        click.echo(line)
    for note in caveats(result.metrics):
        click.echo(note.replace("**", "").replace("`", ""), err=True)


@main.command("evaluate-credit")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("../shared/data/uci_taiwan_dev_ids_1_20000.csv"),
              show_default=True, help="UCI Taiwan credit-card clients (CSV), split by "
              "--test-from-id unless --train and --test are given.")
@click.option("--train", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The training clients' table (with --test).")
@click.option("--test", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The test clients' table, never seen in training (with --train).")
@click.option("--test-from-id", default=15_001, show_default=True, type=click.IntRange(min=2),
              help="Splitting --data: clients with this ID or above are the test clients.")
@click.option("--prequential", is_flag=True,
              help="Instead: one table, clients joining in monthly cohorts, each scored by the "
              "online model that learned from earlier cohorts.")
@click.option("--cohort-size", type=click.IntRange(min=1),
              help="Prequential: clients joining each month [default: 250]; implies "
              "--prequential.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("evaluation-credit"), show_default=True, help="Where the report goes.")
@click.option("--bootstrap", "bootstrap_servers",
              help="Use this Kafka cluster instead of starting the embedded broker.")
def evaluate_credit(data: Path, train: Path | None, test: Path | None, test_from_id: int,
                    prequential: bool, cohort_size: int | None, out: Path,
                    bootstrap_servers: str | None) -> None:
    """Measure the default risk on the UCI clients, through the broker and worker: trained on
    some clients, tested on the others (the batch references beside), or prequentially."""
    from agents.evaluate_credit import evaluate_credit as run_prequential
    from agents.evaluate_credit import evaluate_credit_split, split_uci_table

    if prequential or cohort_size is not None:
        result = run_prequential(data, out, bootstrap_servers, cohort_size or 250)
    else:
        if (train is None) != (test is None):
            raise click.UsageError("give both --train and --test, or neither (--data is split)")
        if train is None or test is None:
            train, test = split_uci_table(data, test_from_id, out / "split")
        try:
            result = evaluate_credit_split(train, test, out, bootstrap_servers)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--train/--test") from None
        metrics = result.metrics
        click.echo(f"challenger (online): default AUC {metrics['challenger']['auc_roc']:.3f}")
        for name, figures in metrics["references"]:
            click.echo(f"reference, {name}: default AUC {figures['auc_roc']:.3f}, safest 40 % "
                       f"{figures['safest_share_rates'][1][1]:.3f} defaulted")
    metrics = result.metrics
    safest = ", ".join(f"{share:.0%} {rate:.3f}" for share, rate in metrics["safest_share_rates"])
    click.echo(f"default AUC {metrics['auc_roc']:.3f}, AP {metrics['average_precision']:.3f} "
               f"on {metrics['scored']:,} clients; defaulted among the safest {safest}; "
               f"raised {metrics['raised_share']:.3f} of clients, "
               f"{metrics['raised_default_rate']:.3f} of them defaulted -> {result.report}")


@main.command("evaluate-simulation")
@click.option("--users", default=5_000, show_default=True, help="Users to simulate.")
@click.option("--months", default=6, show_default=True, help="Months of history.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same history.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("evaluation-simulation"), show_default=True,
              help="Where the report goes.")
def evaluate_simulation(users: int, months: int, seed: int, out: Path) -> None:
    """Measure a simulated history scenario by scenario: recall, time to the first alert or
    cut, money alerted and stopped, false alerts on holidays against ordinary days."""
    from agents.evaluate_simulation import evaluate_simulation as run
    from pipeline.simulator import SimulationConfig

    try:
        config = SimulationConfig(users=users, months=months, seed=seed)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    report, figures = run(config, out)
    for name, row in figures["scenarios"].items():
        click.echo(f"{name}: recall {row['recall']:.2f} of {row['users']} users")
    false = figures["false_alerts"]
    click.echo(f"false alerts per 1,000 legitimate purchases: holidays "
               f"{false['holidays']['per_1000']:.2f}, ordinary days "
               f"{false['ordinary_days']['per_1000']:.2f} -> {report}")


@main.command()
@click.option("--users", default=10_000, show_default=True, help="Users to simulate.")
@click.option("--months", default=6, show_default=True,
              help="Months of history (limit raises need at least 5).")
@click.option("--seed", default=1, show_default=True, help="Same seed, byte-identical output.")
@click.option("--start", default="2026-01-01", show_default=True, help="First day (UTC).")
@click.option("--out", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("simulation"), show_default=True, help="Output directory.")
@click.option("--format", "output_format", type=click.Choice(["jsonl", "parquet"]),
              default="jsonl", show_default=True, help="events/users .jsonl.gz or .parquet.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def simulate(users: int, months: int, seed: int, start: str, directory: Path,
             output_format: str, no_progress: bool) -> None:
    """Simulate a credit line's history: profiles, bills, repayments, fraud, late labels."""
    from agents.simulate import write_simulation
    from pipeline import simulator
    from pipeline.simulator import SimulationConfig

    try:
        config = SimulationConfig(users=users, months=months, seed=seed, start=start)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    _warn_short_history(months, simulator.MONTHS_FOR_RAISES)
    summary = write_simulation(config, directory, output_format, progress=not no_progress)
    click.echo(summary.describe())


@main.command()
@click.option("--users", default=3000, help="Users in the generated history.")
@click.option("--months", default=4, help="Months of history.")
@click.option("--seed", default=7, help="Random seed (same seed, same history).")
@click.option("--partitions", default=4, help="Partitions per topic.")
@click.option("--all", "show_all", is_flag=True, help="Print every alert and adjustment.")
def demo(users: int, months: int, seed: int, partitions: int, show_all: bool) -> None:
    """Embedded broker + worker + replay of a generated history; prints behaviours A and B."""
    from agents.demo import run_demo
    from pipeline.demo import MONTHS_FOR_RAISES

    _warn_short_history(months, MONTHS_FOR_RAISES)
    sys.exit(run_demo(users, months, seed, partitions, show_all))


def _warn_short_history(months: int, needed: int) -> None:
    if months < needed:
        click.echo(f"note: {months} months of history are too short for limit raises "
                   f"(behaviour A) under the default policy; give --months {needed} or more "
                   "to see them", err=True)
