"""``riskstream demo``: the whole path on the embedded broker, in one process, in under a minute.

Starts Tansu, generates a small history (pipeline.demo), replays it through the real topics,
runs the worker until it has applied everything, then reads the output topics and shows
behaviour A (limit raises) and behaviour B (alert, temporary cut, automatic restore).
"""

from __future__ import annotations

import asyncio
import gzip
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import click
import orjson

from agents.broker import EmbeddedBroker
from agents.kafka import ensure_topics, wait_for_broker
from agents.monitor import follow, render
from agents.replay import replay_files
from agents.settings import Settings
from agents.worker import PipelineWorker
from pipeline.demo import DemoHistory, generate_demo_history
from pipeline.outputs import ALERTS

__all__ = ["run_demo", "write_history"]


def write_history(history: DemoHistory, path: Path) -> None:
    with gzip.open(path, "wb") as handle:
        for record in history.events:
            handle.write(orjson.dumps(record) + b"\n")


def run_demo(users: int, months: int, seed: int, partitions: int, show_all: bool) -> int:
    echo = click.echo
    with tempfile.TemporaryDirectory(prefix="riskstream-demo-") as workdir, EmbeddedBroker(
        log_path=Path(workdir) / "tansu.log"
    ) as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap, partitions=partitions,
            state_dir=Path(workdir) / "state", group_id="riskstream-demo",
            session_timeout_ms=3000,
        )
        echo(f"embedded broker (Tansu) on {broker.bootstrap}")
        wait_for_broker(settings)
        ensure_topics(settings)

        history = generate_demo_history(users=users, months=months, seed=seed)
        path = Path(workdir) / "demo-history.jsonl.gz"
        write_history(history, path)
        shares = defaultdict(int)
        for profile in history.profiles.values():
            shares[profile] += 1
        echo(f"generated {len(history.events):,} events for {users:,} users {dict(shares)}")

        summary = replay_files(settings, [path], rejects_path=Path(workdir) / "rejects.jsonl")
        echo(f"replay: {summary.describe()}")

        worker = PipelineWorker(settings, stop_after_idle_s=2.0)
        stats = asyncio.run(worker.run())
        echo(
            f"worker: applied {stats.applied:,} of {stats.records_in:,} records "
            f"({stats.busy_rate:,.0f}/s while busy), dead letters {stats.dead_letters}, "
            f"outputs {dict(stats.outputs)}"
        )
        expected = sum(stats.outputs.values()) - stats.outputs.get("dead-letter", 0)
        outputs = _read_outputs(settings, expected)
        _show(outputs, history, show_all, echo)
        if stats.records_in != summary.total_sent:
            echo(f"ERROR: sent {summary.total_sent} but the worker read {stats.records_in}")
            return 1
        return 0


def _read_outputs(settings: Settings, expected: int) -> list[tuple[str, dict[str, Any]]]:
    outputs = []
    for item in follow(settings, idle_timeout_s=5.0):
        outputs.append(item)
        if len(outputs) >= expected:
            break
    outputs.sort(key=lambda item: item[1]["event_time"])
    return outputs


def _show(outputs: list[tuple[str, dict[str, Any]]], history: DemoHistory, show_all: bool,
          echo: Any) -> None:
    by_user: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for stream, record in outputs:
        by_user[record["user_id"]].append((stream, record))
    if show_all:
        for stream, record in outputs:
            echo(render(stream, record))
    kinds = defaultdict(int)
    for stream, record in outputs:
        kinds[record.get("kind", stream) if stream != ALERTS else "alert"] += 1
    echo("\n== behaviour B: unusual large purchases -> alert, temporary cut, automatic restore")
    restored = [
        user for user, items in by_user.items()
        if any(record.get("kind") == "restore" for _, record in items)
    ]
    confirmed = [
        user for user, items in by_user.items()
        if any(record.get("kind") == "hold_confirmed" for _, record in items)
    ]
    for user in restored[:1] + confirmed[:1]:
        echo(f"-- user {user} ({history.profiles[user]})")
        for stream, record in by_user[user]:
            echo(render(stream, record))
    echo("\n== behaviour A: frequent shopper, always on time -> limit raise")
    raised = [
        user for user, items in by_user.items()
        if any(record.get("kind") == "increase" for _, record in items)
    ]
    for user in raised[:2]:
        for stream, record in by_user[user]:
            echo(render(stream, record))
    flagged_profiles = defaultdict(int)
    for user in by_user:
        flagged_profiles[history.profiles[user]] += 1
    echo(
        f"\nsummary: {dict(kinds)}; users with any output by profile {dict(flagged_profiles)}; "
        f"{len(restored)} cuts restored, {len(confirmed)} confirmed by fraud labels, "
        f"{len(raised)} limits raised"
    )
