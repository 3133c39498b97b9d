"""Running riskstream: the development broker, the topics, the workers, and replays."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any

import click
import orjson

from agents.cli.base import (
    ENV,
    bootstrap_option,
    cluster,
    history_options,
    history_options_from,
    main,
    settings_from,
)

__all__: list[str] = []


@main.command()
@click.option("--port", envvar=f"{ENV}BROKER_PORT", show_envvar=True, default=9092,
              help="Port on 127.0.0.1 to listen on.")
@click.option("--partitions", envvar=f"{ENV}PARTITIONS", show_envvar=True, default=4,
              help="Partitions of each topic created.")
def broker(port: int, partitions: int) -> None:
    """Run the embedded development broker (Tansu, memory only) with riskstream's topics."""
    from agents.broker import EmbeddedBroker
    from agents.kafka import ensure_topics, wait_for_broker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with EmbeddedBroker(port=port) as running:
        settings = settings_from(bootstrap_servers=running.bootstrap, partitions=partitions)
        wait_for_broker(settings)
        ensure_topics(settings)
        click.echo(f"broker ready on {running.bootstrap} (Ctrl-C to stop)")
        stop.wait()
    click.echo("broker stopped")


@main.command()
@bootstrap_option
def topics(bootstrap_servers: str | None) -> None:
    """Create riskstream's topics if missing (inputs, outputs, the state changelog) and check
    that the inputs are co-partitioned."""
    from agents.kafka import ensure_topics
    from agents.topics import INPUT_TOPICS, OUTPUT_TOPICS

    settings = cluster(bootstrap_servers=bootstrap_servers)
    ensure_topics(settings)
    names = [settings.topic(name) for name in INPUT_TOPICS + OUTPUT_TOPICS]
    names.append(settings.changelog_topic())
    click.echo(f"topics ready on {settings.bootstrap_servers} (missing ones created with "
               f"{settings.partitions} partitions): {', '.join(names)}")


@main.command()
@bootstrap_option
@click.option("--state-dir", type=click.Path(path_type=Path), envvar=f"{ENV}STATE_DIR",
              show_envvar=True, help="Where partition stores live [default: var/state].")
@click.option("--group", "group_id", envvar=f"{ENV}GROUP_ID", show_envvar=True,
              help="Consumer group [default: riskstream].")
@click.option("--stop-after-idle", type=float, envvar=f"{ENV}STOP_AFTER_IDLE",
              show_envvar=True, help="Exit once no input arrived for this many seconds.")
@click.option("--fresh-state", is_flag=True, default=None,
              help="Drop the stored state of partitions whose input topics were recreated "
              "since it was written (RISKSTREAM_FRESH_STATE), instead of stopping.")
def worker(bootstrap_servers: str | None, state_dir: Path | None, group_id: str | None,
           stop_after_idle: float | None, fresh_state: bool | None) -> None:
    """Consume transactions, repayments, statements, labels and decisions; emit alerts and
    limit adjustments."""
    from agents.worker import PipelineWorker

    settings = cluster(
        bootstrap_servers=bootstrap_servers, state_dir=state_dir, group_id=group_id,
        fresh_state=fresh_state or None,
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
@bootstrap_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@history_options
@click.option("--speed", type=float, envvar=f"{ENV}REPLAY_SPEED", show_envvar=True,
              help="Replay at N x real time (event time); default: as fast as possible.")
@click.option("--rate", type=float, help="At most N events per second.")
@click.option("--rejects", type=click.Path(path_type=Path), default=Path("rejects.jsonl"),
              envvar=f"{ENV}REJECTS", show_envvar=True,
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
def replay(bootstrap_servers: str | None, files: tuple[Path, ...], speed: float | None,
           rate: float | None, rejects: Path, resume: bool, progress_file: Path | None,
           checkpoint_every: int, no_progress: bool, max_rejected_share: float,
           **history: Any) -> None:
    """Validate event files (JSONL, CSV, Parquet; .gz) and produce them in event-time order."""
    from agents.replay import replay_files

    options = history_options_from(**history)
    summary = replay_files(
        cluster(bootstrap_servers=bootstrap_servers), list(files), options=options,
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
