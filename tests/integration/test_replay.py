"""Replay at scale: adapters through the broker, and --resume after a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from agents.kafka import client_config, ensure_topics
from agents.settings import Settings
from agents.topics import INPUT_TOPICS
from pipeline.demo import DemoHistory
from tests.integration.conftest import by_id, expected_run, read_outputs, run_worker, settings_env

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def input_ids(settings: Settings) -> Counter[str]:
    """How many times each event id stands in the input topics."""
    consumer = KafkaConsumer(**client_config(settings), auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, enable_auto_commit=False)
    consumer.subscribe([settings.topic(name) for name in INPUT_TOPICS])
    ids: Counter[str] = Counter(orjson.loads(record.value)["event_id"] for record in consumer)
    consumer.close()
    return ids


def test_resume_after_kill_9_sends_the_rest_and_repeats_are_refused_by_id(
    settings: Settings, small_history: DemoHistory, history_file: Path, tmp_path: Path
) -> None:
    progress = tmp_path / "progress.json"
    command = [str(BIN / "riskstream"), "replay", str(history_file), "--no-progress",
               "--checkpoint-every", "2000", "--progress-file", str(progress),
               "--rejects", str(tmp_path / "rejects.jsonl")]
    first = subprocess.Popen([*command, "--rate", "4000"], env=settings_env(settings),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    acknowledged = 0
    while time.monotonic() < deadline and acknowledged < 2000:
        time.sleep(0.01)
        if progress.exists():
            acknowledged = orjson.loads(progress.read_bytes())["acknowledged"]
    time.sleep(0.25)  # half-way to the next checkpoint: ~1000 events sent, not acknowledged
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert 2000 <= acknowledged < len(small_history.events)

    done = subprocess.run([*command, "--resume"], env=settings_env(settings),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "resumed after" in done.stdout

    ids = input_ids(settings)
    assert set(ids) == {record["event_id"] for record in small_history.events}
    repeats = sum(ids.values()) - len(ids)
    assert 0 < repeats < 2000  # sent after the last checkpoint, before the kill

    # Every repeat is refused; the outputs are those of the history sent once.
    stats = run_worker(settings)
    assert stats.applied == len(small_history.events) and stats.dead_letters == repeats
    letters = read_outputs(settings, streams=("dead-letter",))
    assert {record["error"] for _, record in letters} <= {"duplicate", "late"}
    expected, _ = expected_run(small_history, settings)
    assert by_id(read_outputs(settings)) == by_id(expected)
    print(f"\nkilled after {acknowledged} acknowledged; {repeats} events re-sent and refused")


def test_resume_refuses_a_progress_file_of_other_inputs(
    settings: Settings, history_file: Path, tmp_path: Path
) -> None:
    progress = tmp_path / "progress.json"
    progress.write_bytes(orjson.dumps({"version": 1, "inputs": [], "acknowledged": 5,
                                       "rejections_written": 0, "complete": False}))
    done = subprocess.run(
        [str(BIN / "riskstream"), "replay", str(history_file), "--resume", "--progress-file",
         str(progress)], env=settings_env(settings), capture_output=True, text=True,
        timeout=60, check=False)
    assert done.returncode == 1 and "belongs to other input files" in done.stderr


def test_handbook_and_uci_histories_replay_into_the_worker(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.unit.test_adapters import _fdh_file, _uci_file

    fdh = _fdh_file(tmp_path / "fdh.parquet", [
        (0, 0, 5, 9, 57.16, 0), (1, 60, 6, 9, 0.0, 1), (2, 3600, 5, 8, 1234.57, 1)])
    uci = _uci_file(tmp_path / "uci.csv", [
        {"ID": 1, "LIMIT_BAL": 20000, "PAY_0": 2, "BILL_AMT1": 3913,
         **{f"PAY_AMT{month}": 100 * month for month in range(1, 7)},
         "default.payment.next.month": 1}])
    # Two lines: the handbook's purchases in CNY (2018), the UCI clients' bills in TWD (2005).
    uci_settings = settings.model_copy(update={
        "topic_prefix": f"uci.{settings.topic_prefix}", "group_id": f"uci-{settings.group_id}",
        "currency": "TWD"})
    ensure_topics(uci_settings)
    for line, arguments in ((settings, ["--format", "fdh", str(fdh)]),
                            (uci_settings, ["--format", "uci-taiwan", str(uci)])):
        done = subprocess.run(
            [str(BIN / "riskstream"), "replay", *arguments, "--no-progress",
             "--rejects", str(tmp_path / "rejects.jsonl")],
            env=settings_env(line), capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0 and "rejected 0" in done.stdout, done.stdout + done.stderr
    assert set(input_ids(settings)) == {"0", "1", "2", "1-fraud", "2-fraud"}
    uci_ids = set(input_ids(uci_settings))
    assert len(uci_ids) == 6 + 6 + 1 and all(key.startswith("uci-1-") for key in uci_ids)
    for line, applied in ((settings, 5), (uci_settings, 13)):
        stats = run_worker(line)
        assert (stats.applied, stats.dead_letters) == (applied, 0)
