"""Crashes, rebalances and speed: the outputs never depend on them.

The reference in every test is the pure core run over the same events, split the way Kafka
partitions them (``expected_run``); the end-to-end test shows an undisturbed worker equals it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from agents.demo import write_history
from agents.replay import replay_files
from agents.settings import Settings
from pipeline.demo import DemoHistory, generate_demo_history
from pipeline.engine import RiskEngine
from pipeline.state.checkpoint import read_meta, restore_engine, stored_users
from pipeline.state.store import StateDirectory
from pipeline.timeutil import SECOND, parse_time
from tests.integration.conftest import by_id, expected_run, read_outputs, settings_env

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
KILLS = 5


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    """A test that fails midway must not leave its workers running after it."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def start_worker(settings: Settings, *extra: str, **env_overrides: str) -> subprocess.Popen:
    env = {**settings_env(settings), **env_overrides}
    process = subprocess.Popen(
        [str(BIN / "riskstream"), "--log-level", "WARNING", "worker", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _STARTED.append(process)
    return process


def state_directory(settings: Settings) -> StateDirectory:
    return StateDirectory(settings.state_dir / settings.group_id)


def snapshot_progress(settings: Settings, directory: StateDirectory | None = None) -> int:
    """Input records applied according to the partition stores on disk (read while a worker
    may be writing them)."""
    directory = directory or state_directory(settings)
    total = 0
    for partition in directory.partitions():
        try:
            store = directory.open(partition, read_only=True)
        except FileNotFoundError:  # a worker is creating it
            continue
        try:
            meta = read_meta(store, str(store.path))
        finally:
            store.close()
        if meta is not None:
            total += sum(meta["offsets"].values())
    return total


_PROBES = [
    {"amount_minor": 10.0 ** (1 + index % 6), "amount_to_typical": index / 7, "count_1h": index % 5,
     "new_merchant": float(index % 2), "hours_since_previous": float(index * 3)}
    for index in range(40)
]


def fingerprint(engine: RiskEngine, users: dict, own_merchants: bool) -> dict:
    """Everything an engine knows, in comparable form (``users``: all of them, wherever they
    are kept)."""
    user_fields = {}
    for user_id, state in users.items():
        fields = dict(zip(state.__slots__, state.__getstate__(), strict=True))
        fields["windows"] = state.windows.__getstate__()
        fields["credit"] = state.credit.__getstate__() if state.credit is not None else None
        user_fields[user_id] = fields
    return {
        "watermark": engine.watermark,
        "users": user_fields,
        "expiries": sorted(engine.expiries),
        "model": [engine.scorer.anomaly.score_one(probe) for probe in _PROBES],
        "merchants": {name: m.__getstate__() for name, m in engine.merchants.merchants.items()}
        if own_merchants else None,
        "pending_labels": len(engine.pending_labels),
        "classifier": (engine.scorer.classifier.learned, engine.scorer.classifier.frauds_seen,
                       engine.scorer.classifier.model["LogisticRegression"].weights),
    }


def assert_final_state_equals(settings: Settings, engines: dict[int, RiskEngine],
                              directory: StateDirectory | None = None) -> None:
    """The partition stores (of ``directory``: by default the settings' own) hold exactly
    the state of the pure core's ``engines``."""
    directory = directory or state_directory(settings)
    own = not settings.merchant_replica
    for partition, engine in engines.items():
        store = directory.open(partition, read_only=True)
        try:
            stored, _ = restore_engine(store, settings.risk_config(), cache_capacity=None,
                                       own_merchants=own, where=str(store.path))
            users = dict(stored_users(store))
        finally:
            store.close()
        assert fingerprint(stored, users, own) == fingerprint(
            engine, dict(engine.users.items()), own), f"partition {partition}"


@pytest.fixture(scope="module")
def crash_history() -> DemoHistory:
    return generate_demo_history(users=2500, months=4, seed=5)


def test_kill_9_at_random_points_loses_nothing_and_counts_nothing_twice(
    settings: Settings, crash_history: DemoHistory, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl.gz"
    write_history(crash_history, path)
    total = replay_files(settings, [path], progress=False).total_sent
    expected, engines = expected_run(crash_history, settings)

    # Each worker is killed a random moment after its first snapshot: far enough in to have
    # made progress (not killed while joining), soon enough to leave work for the next one.
    rng = random.Random(1234)
    progress = []
    for _ in range(KILLS):
        start = snapshot_progress(settings)
        if start >= total:
            break
        worker = start_worker(settings, RISKSTREAM_CHECKPOINT_INTERVAL_S="0.3")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and snapshot_progress(settings) <= start:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        progress.append(snapshot_progress(settings))
    mid_run = [done for done in progress if 0 < done < total]
    assert len(mid_run) >= 3, f"too few kills landed mid-run: {progress} of {total}"

    worker = start_worker(settings, "--stop-after-idle", "3")
    _, stderr = worker.communicate(timeout=180)
    assert worker.returncode == 0, stderr.decode()[-2000:]
    assert snapshot_progress(settings) == total

    outputs = read_outputs(settings)
    received = by_id(outputs)  # duplicates only as same-id, same-content repeats
    assert received == by_id(expected)
    assert_final_state_equals(settings, engines)
    duplicates = len(outputs) - len(received)
    print(f"\nkills: {len(progress)} at snapshot progress {progress} of {total} records; "
          f"{len(received)} distinct outputs, {duplicates} same-id repeats")


def test_a_partition_killed_on_one_host_is_restored_on_another_from_the_changelog(
    settings: Settings, crash_history: DemoHistory, tmp_path: Path
) -> None:
    """Two workers with state directories of their own, as on two machines. One is killed
    with ``kill -9`` mid-run; the other takes its partitions over, restores them from the
    changelog (its own directory has nothing of them), resumes each input at the offset the
    restored state reflects -- no record before it is read again -- and the outputs and every
    user's final state equal an uninterrupted run's."""
    path = tmp_path / "history.jsonl.gz"
    write_history(crash_history, path)
    total = replay_files(settings, [path], progress=False).total_sent
    expected, engines = expected_run(crash_history, settings)
    hosts = {name: tmp_path / name for name in ("host-a", "host-b")}
    directories = {name: StateDirectory(root / settings.group_id)
                   for name, root in hosts.items()}

    victim = start_worker(settings, RISKSTREAM_STATE_DIR=str(hosts["host-a"]),
                          RISKSTREAM_CHECKPOINT_INTERVAL_S="0.3")
    survivor = start_worker(settings, "--stop-after-idle", "8",
                            RISKSTREAM_STATE_DIR=str(hosts["host-b"]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and snapshot_progress(settings,
                                                            directories["host-a"]) == 0:
        time.sleep(0.02)
    time.sleep(0.3)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = snapshot_progress(settings, directories["host-a"])
    assert 0 < killed_at < total, f"the kill did not land mid-run: {killed_at} of {total}"

    stdout, stderr = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, stderr.decode()[-2000:]
    stats = orjson.loads(stdout.splitlines()[-1])["worker"]
    taken_over = [restore for restore in stats["restores"] if restore["changelog_records"]
                  and restore["resumed_at"]]
    assert taken_over, f"no partition was restored from the changelog: {stats['restores']}"
    for restore in stats["restores"]:
        resumed_at = restore["resumed_at"]
        for topic, first in restore["first_read"].items():
            assert first == resumed_at.get(topic, 0), (restore["partition"], topic)
    resumed = sum(sum(restore["resumed_at"].values()) for restore in taken_over)
    figures = [(r["partition"], r["changelog_records"], r["seconds"]) for r in taken_over]
    print(f"\nkilled with {killed_at} of {total} records applied; the survivor restored "
          f"{len(taken_over)} partitions ({resumed} records' worth of state) from the "
          f"changelog (partition, records, seconds): {figures}; it read "
          f"{stats['records_in']} records, skipped {stats['records_skipped']}")

    assert by_id(read_outputs(settings)) == by_id(expected)
    assert_final_state_equals(settings, engines, directories["host-b"])


def test_two_workers_in_one_group_give_the_outputs_of_one(
    settings: Settings, crash_history: DemoHistory, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl.gz"
    write_history(crash_history, path)
    replay_files(settings, [path], progress=False)
    expected, engines = expected_run(crash_history, settings)

    workers = [start_worker(settings, "--stop-after-idle", "4") for _ in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr.decode()[-2000:]
    assert by_id(read_outputs(settings)) == by_id(expected)
    assert_final_state_equals(settings, engines)


def test_a_throttled_live_replay_gives_the_outputs_of_a_full_speed_one(
    settings: Settings, small_history: DemoHistory, history_file: Path
) -> None:
    expected, _ = expected_run(small_history, settings)
    times = [parse_time(record["event_time"]) for record in small_history.events]
    span_s = (max(times) - min(times)) / SECOND
    speed = span_s / 6.0  # the whole history in about six seconds, with the worker live
    worker = start_worker(settings, "--stop-after-idle", "4")
    time.sleep(2.0)  # let it join the group first, so it really consumes while we produce
    summary = replay_files(settings, [history_file], speed=speed, progress=False)
    assert summary.seconds > 5.0
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr.decode()[-2000:]
    assert by_id(read_outputs(settings)) == by_id(expected)
