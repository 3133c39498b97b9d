"""The ``riskstream`` command. Every option also reads the environment variable shown in --help."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson

from agents.settings import Settings
from pipeline.adapters import FORMATS
from pipeline.evaluation import TEST_WEEK_START

__all__ = ["main"]

_ENV = "RISKSTREAM_"


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def _cluster(**overrides: Any) -> Settings:
    """Settings for a command that talks to the brokers, which must be reachable: a wrong or
    absent address fails within seconds in one line, not after the clients' retries."""
    from agents.kafka import check_reachable

    settings = _settings(**overrides)
    check_reachable(settings)
    return settings


def _bootstrap_option(function: Any) -> Any:
    return click.option(
        "--bootstrap", "bootstrap_servers", envvar=f"{_ENV}BOOTSTRAP_SERVERS", show_envvar=True,
        help="Kafka bootstrap address(es), comma-separated [default: 127.0.0.1:9092].",
    )(function)


class _Commands(click.Group):
    """Turns the errors a user can cause (a broker not there, wrong credentials, a bad file)
    into one clear line and exit status 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from aiokafka.errors import KafkaError as AIOKafkaError
        from kafka.errors import KafkaError
        from pydantic import ValidationError

        from pipeline.exceptions import RiskstreamError

        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except ValidationError as error:
            raise click.ClickException(_settings_error(error)) from None
        except (KafkaError, AIOKafkaError, RiskstreamError, OSError) as error:
            raise click.ClickException(f"{type(error).__name__}: {error}") from None


def _settings_error(error: Any) -> str:
    """A settings error as one line naming each variable, its value and the form expected."""
    problems = []
    for problem in error.errors():
        name = f"{_ENV}{str(problem['loc'][0]).upper()}" if problem["loc"] else "settings"
        problems.append(f"{name}={problem.get('input')!s}: {problem['msg']}")
    return "invalid setting: " + "; ".join(problems)


@click.group(cls=_Commands,
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--log-level", envvar=f"{_ENV}LOG_LEVEL", show_envvar=True, default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log verbosity.")
def main(log_level: str) -> None:
    """riskstream: real-time credit-risk and fraud control on Kafka.

    All connection and security settings (SASL, TLS) come from RISKSTREAM_* variables; see
    agents/settings.py or deploy/riskstream.env.example for the full list.
    """
    logging.basicConfig(
        level=log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    # kafka-python times its own I/O tasks and warns when one ran over 0.1 s: noise to a user.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)


@main.command()
@click.option("--port", envvar=f"{_ENV}BROKER_PORT", show_envvar=True, default=9092,
              help="Port on 127.0.0.1 to listen on.")
@click.option("--partitions", envvar=f"{_ENV}PARTITIONS", show_envvar=True, default=4,
              help="Partitions of each topic created.")
def broker(port: int, partitions: int) -> None:
    """Run the embedded development broker (Tansu, memory only) with riskstream's topics."""
    from agents.broker import EmbeddedBroker
    from agents.kafka import ensure_topics, wait_for_broker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with EmbeddedBroker(port=port) as running:
        settings = _settings(bootstrap_servers=running.bootstrap, partitions=partitions)
        wait_for_broker(settings)
        ensure_topics(settings)
        click.echo(f"broker ready on {running.bootstrap} (Ctrl-C to stop)")
        stop.wait()
    click.echo("broker stopped")


@main.command()
@_bootstrap_option
def topics(bootstrap_servers: str | None) -> None:
    """Create riskstream's topics if missing (inputs, outputs, the state changelog) and check
    that the inputs are co-partitioned."""
    from agents.kafka import ensure_topics
    from agents.topics import INPUT_TOPICS, OUTPUT_TOPICS

    settings = _cluster(bootstrap_servers=bootstrap_servers)
    ensure_topics(settings)
    names = [settings.topic(name) for name in INPUT_TOPICS + OUTPUT_TOPICS]
    names.append(settings.changelog_topic())
    click.echo(f"topics ready on {settings.bootstrap_servers} (missing ones created with "
               f"{settings.partitions} partitions): {', '.join(names)}")


@main.command()
@_bootstrap_option
@click.option("--state-dir", type=click.Path(path_type=Path), envvar=f"{_ENV}STATE_DIR",
              show_envvar=True, help="Where partition stores live [default: var/state].")
@click.option("--group", "group_id", envvar=f"{_ENV}GROUP_ID", show_envvar=True,
              help="Consumer group [default: riskstream].")
@click.option("--stop-after-idle", type=float, envvar=f"{_ENV}STOP_AFTER_IDLE",
              show_envvar=True, help="Exit once no input arrived for this many seconds.")
def worker(bootstrap_servers: str | None, state_dir: Path | None, group_id: str | None,
           stop_after_idle: float | None) -> None:
    """Consume transactions, repayments and labels; emit alerts and limit adjustments."""
    from agents.worker import PipelineWorker

    settings = _cluster(
        bootstrap_servers=bootstrap_servers, state_dir=state_dir, group_id=group_id
    )
    pipeline = PipelineWorker(settings, stop_after_idle_s=stop_after_idle)

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, pipeline.stop)
        return await pipeline.run()

    stats = asyncio.run(run())
    click.echo(orjson.dumps({"worker": stats.as_dict()}).decode())


@main.command()
@_bootstrap_option
@click.argument("user_id")
@click.option("--source", type=click.Choice(["auto", "local", "changelog"]), default="auto",
              help="local: this host's partition store; changelog: the group's changelog "
              "topic; auto: the local store, else the changelog.")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar=f"{_ENV}STATE_DIR",
              show_envvar=True, help="Where partition stores live [default: var/state].")
@click.option("--group", "group_id", envvar=f"{_ENV}GROUP_ID", show_envvar=True,
              help="Consumer group [default: riskstream].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def state(bootstrap_servers: str | None, user_id: str, source: str, state_dir: Path | None,
          group_id: str | None, as_json: bool) -> None:
    """Show one user's stored state: limit, balance, holds, windows, repayment record."""
    from agents.lookup import find_user
    from pipeline.state.user import describe_user

    settings = _settings(bootstrap_servers=bootstrap_servers, state_dir=state_dir,
                         group_id=group_id)
    found = find_user(settings, user_id, source)  # type: ignore[arg-type]
    if found.user is None:
        raise click.ClickException(
            f"no stored state for user {user_id} (partition {found.partition} of "
            f"{settings.partitions}, group {settings.group_id}, source {source})")
    record = {"user_id": user_id, "partition": found.partition, "source": found.found_in,
              **describe_user(found.user)}
    if as_json:
        click.echo(orjson.dumps(record).decode())
        return
    for name, value in record.items():
        if isinstance(value, dict):
            click.echo(f"{name}:")
            for inner, item in value.items():
                click.echo(f"  {inner}: {item}")
        else:
            click.echo(f"{name}: {value}")


@main.command()
@_bootstrap_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "input_format", type=click.Choice(FORMATS), default="riskstream",
              help="riskstream: the topics' contract (any columns via --map); fdh: the Fraud "
              "Detection Handbook's transactions; uci-taiwan: the UCI credit-card clients.")
@click.option("--map", "column_map", metavar="FIELD=COLUMN,...",
              help="Contract fields from other column names, e.g. user_id=CUSTOMER_ID,"
              "amount=TX_AMOUNT (amount/balance/credit_limit in major units, exact).")
@click.option("--type", "event_type",
              type=click.Choice(["transaction", "repayment", "statement", "label"]),
              help="Event type of records that carry no 'type' field.")
@click.option("--currency", help="Currency of records that carry none (fdh: CNY, "
              "uci-taiwan: TWD).")
@click.option("--timezone", help="Offset given to timestamps without one (UTC, +08:00).")
@click.option("--label-delay-days", type=float, default=7.0,
              help="fdh: a fraud's label is known this long after the purchase.")
@click.option("--cohort-size", type=click.IntRange(min=1),
              help="uci-taiwan: clients join in monthly cohorts of N (prequential learning); "
              "default: all on the table's own 2005 calendar.")
@click.option("--speed", type=float, envvar=f"{_ENV}REPLAY_SPEED", show_envvar=True,
              help="Replay at N x real time (event time); default: as fast as possible.")
@click.option("--rate", type=float, help="At most N events per second.")
@click.option("--rejects", type=click.Path(path_type=Path), default=Path("rejects.jsonl"),
              envvar=f"{_ENV}REJECTS", show_envvar=True,
              help="Where refused records are appended, with file, line and reason.")
@click.option("--resume", is_flag=True,
              help="Skip what an interrupted replay of the same files had acknowledged.")
@click.option("--progress-file", type=click.Path(path_type=Path),
              help="Where progress is checkpointed [default: replay-progress.json beside "
              "the rejects file].")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=20_000,
              help="Flush and record progress every N events.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--max-rejected-share", type=click.FloatRange(0, 1), default=0.5,
              help="Exit with status 1 when more than this share of the records was "
              "rejected (always when every record was).")
def replay(bootstrap_servers: str | None, files: tuple[Path, ...], input_format: str,
           column_map: str | None, event_type: str | None, currency: str | None,
           timezone: str | None, label_delay_days: float, cohort_size: int | None,
           speed: float | None,
           rate: float | None, rejects: Path, resume: bool, progress_file: Path | None,
           checkpoint_every: int, no_progress: bool, max_rejected_share: float) -> None:
    """Validate event files (JSONL, CSV, Parquet; .gz) and produce them in event-time order."""
    from agents.replay import replay_files
    from pipeline.adapters import ColumnMapping
    from pipeline.history import HistoryOptions
    from pipeline.timeutil import DAY

    constants = {"currency": currency} if currency and input_format == "riskstream" else {}
    try:
        mapping = (
            ColumnMapping.parse(column_map or "", constants, timezone)
            if column_map or constants or timezone else None
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--map") from None
    options = HistoryOptions(
        format=input_format, event_type=event_type, mapping=mapping,
        label_delay=round(label_delay_days * DAY), currency=currency, cohort_size=cohort_size,
    )
    summary = replay_files(
        _cluster(bootstrap_servers=bootstrap_servers), list(files), options=options,
        speed=speed, rate=rate, rejects_path=rejects,
        progress_path=progress_file or rejects.with_name("replay-progress.json"),
        resume=resume, checkpoint_every=checkpoint_every, progress=not no_progress,
    )
    click.echo(summary.describe())
    read = summary.total_sent + summary.rejected
    if summary.rejected and (summary.rejected == read
                             or summary.rejected > max_rejected_share * read):
        raise click.ClickException(
            f"{summary.rejected:,} of {read:,} records were rejected (more than "
            f"--max-rejected-share {max_rejected_share:g}); their reasons are in {rejects}")


@main.command()
@_bootstrap_option
@click.option("--user", help="Only this user.")
@click.option("--min-severity", type=click.Choice(["low", "medium", "high"]),
              help="Only alerts of at least this severity (and the adjustments they caused).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--from-beginning/--from-now", default=True, help="Where to start reading.")
@click.option("--idle-timeout", type=float, help="Exit after this many seconds without output.")
def alerts(bootstrap_servers: str | None, user: str | None, min_severity: str | None,
           as_json: bool, from_beginning: bool, idle_timeout: float | None) -> None:
    """Follow alerts and limit adjustments."""
    from agents.monitor import follow, matches, render

    keep = matches(user, min_severity)
    settings = _cluster(bootstrap_servers=bootstrap_servers)
    try:
        for stream, record in follow(
            settings, from_beginning=from_beginning,
            idle_timeout_s=idle_timeout,
        ):
            if not keep(stream, record):
                continue
            if as_json:
                click.echo(orjson.dumps({"stream": stream, **record}).decode())
            else:
                click.echo(render(stream, record))
    except KeyboardInterrupt:
        pass


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
@click.option("--months", default=3, show_default=True, help="Months of history.")
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
    from pipeline.simulator import SimulationConfig

    try:
        config = SimulationConfig(users=users, months=months, seed=seed, start=start)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
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

    sys.exit(run_demo(users, months, seed, partitions, show_all))


if __name__ == "__main__":
    main()
