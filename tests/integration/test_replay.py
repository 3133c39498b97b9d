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

from agents.kafka import client_config
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
