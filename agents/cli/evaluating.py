"""Evaluations, the simulator and the demo."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from agents.cli.base import main
from pipeline.evaluation import TEST_WEEK_START

__all__: list[str] = []


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
    from agents.evaluate import caveats, console_summary, evaluate_handbook
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
              show_default=True, help="UCI Taiwan credit-card clients (CSV).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("evaluation-credit"), show_default=True, help="Where the report goes.")
@click.option("--cohort-size", default=250, show_default=True,
              help="Clients joining each month (prequential: later cohorts learn from earlier).")
@click.option("--bootstrap", "bootstrap_servers",
              help="Use this Kafka cluster instead of starting the embedded broker.")
def evaluate_credit(data: Path, out: Path, cohort_size: int,
                    bootstrap_servers: str | None) -> None:
    """Replay the UCI clients' bills and repayments through the broker and worker; measure
    the default risk and the raises."""
    from agents.evaluate import evaluate_credit as run

    if cohort_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--cohort-size")
    result = run(data, out, bootstrap_servers, cohort_size)
    metrics = result.metrics
    click.echo(f"default AUC {metrics['auc_roc']:.3f} on {metrics['scored']:,} clients; "
               f"raised {metrics['raised_share']:.3f} of clients, "
               f"{metrics['raised_default_rate']:.3f} of them defaulted -> {result.report}")


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
