"""The riskstream command (and the Faust entry point) as a user runs them."""

from __future__ import annotations

import gzip
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from agents.broker import free_port
from agents.settings import Settings
from pipeline.demo import DemoHistory
from tests.conftest import assert_valid
from tests.integration.conftest import read_outputs, settings_env

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def riskstream(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "riskstream"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_broker_command_starts_creates_topics_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen([str(BIN / "riskstream"), "broker", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "broker ready" not in line:
            line = process.stdout.readline()
        assert f"broker ready on 127.0.0.1:{port}" in line
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        assert {"transactions", "repayments", "labels", "alerts", "limit-adjustments",
                "dead-letter"} <= set(admin.list_topics())
        admin.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5)
    finally:
        if process.poll() is None:
            process.kill()


def test_the_broker_command_refuses_a_taken_port_and_never_outlives_its_command() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = riskstream("broker", "--port", str(port), env={}, timeout=30)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr.strip().splitlines()[-1]

    port = free_port()
    process = subprocess.Popen([str(BIN / "riskstream"), "broker", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline and "broker ready" not in line:
        line = process.stdout.readline()
    assert "broker ready" in line
    process.kill()  # kill -9: no chance to stop its broker
    process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return  # the broker went with it
        time.sleep(0.2)
    raise AssertionError(f"a broker still listens on {port} after its command was killed")


def test_replay_reports_rejects_then_worker_and_alerts_commands(
    settings: Settings, small_history: DemoHistory, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl.gz"
    bad_lines = {3: b"{oops", 10: orjson.dumps({**small_history.events[9], "currency": "XXX"})}
    with gzip.open(path, "wb") as handle:
        for number, record in enumerate(small_history.events, start=1):
            handle.write(bad_lines.get(number, orjson.dumps(record)) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    env = settings_env(settings)
    done = riskstream("replay", str(path), "--rejects", str(rejects), "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    sent = len(small_history.events) - len(bad_lines)
    assert f"sent {sent:,} events" in done.stdout and "rejected 2" in done.stdout
    assert f"{path}:3" in done.stderr and f"{path}:10" in done.stderr
    rejected = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [r["source_line"] for r in rejected] == [3, 10]
    assert [r["error"] for r in rejected] == ["malformed-json", "unknown-currency"]
    for record in rejected:
        assert_valid("dead-letter", record)

    done = riskstream("worker", "--stop-after-idle", "1.5", env=env)
    assert done.returncode == 0, done.stderr
    stats = orjson.loads(done.stdout.strip().splitlines()[-1])["worker"]
    assert stats["records_in"] == sent and stats["applied"] == sent

    done = riskstream("alerts", "--json", "--idle-timeout", "2", "--min-severity", "high", env=env)
    assert done.returncode == 0, done.stderr
    shown = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert shown and all(r["severity"] == "high" for r in shown if r["stream"] == "alerts")
    user = shown[0]["user_id"]
    done = riskstream("alerts", "--user", user, "--idle-timeout", "2", env=env)
    assert done.returncode == 0 and f"user {user}" in done.stdout
    assert all(f"user {user}" in line for line in done.stdout.splitlines() if "user " in line)

    # Read by `head -1`: the reader goes away, and the monitor stops quietly.
    reader = subprocess.Popen([str(BIN / "riskstream"), "alerts", "--idle-timeout", "5"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stdout.readline()
    reader.stdout.close()
    _, stderr = reader.communicate(timeout=60)
    assert reader.returncode == 0 and b"Error" not in stderr, stderr


def test_a_replay_that_rejects_every_record_or_most_of_them_fails(
    settings: Settings, small_history: DemoHistory, tmp_path: Path
) -> None:
    env = settings_env(settings)
    events = small_history.events[:10]
    for bad, status in ((10, 1), (6, 1), (5, 0)):
        path = tmp_path / f"bad-{bad}.jsonl"
        path.write_bytes(b"".join(b"{oops\n" if index < bad else orjson.dumps(event) + b"\n"
                                  for index, event in enumerate(events)))
        done = riskstream("replay", str(path), "--rejects", str(tmp_path / f"r{bad}.jsonl"),
                          "--no-progress", env=env)
        assert done.returncode == status, (bad, done.stdout, done.stderr)
        if status:
            last = done.stderr.strip().splitlines()[-1]
            assert f"{bad} of 10 records were rejected" in last and "Traceback" not in done.stderr


def test_faust_entry_point_runs_the_same_pipeline(
    settings: Settings, history_file: Path, small_history: DemoHistory, tmp_path: Path
) -> None:
    from agents.replay import replay_files

    replay_files(settings, [history_file], progress=False)
    faust = shutil.which("faust", path=str(BIN))
    assert faust is not None
    port = free_port()
    process = subprocess.Popen([faust, "-A", "agents.app", "worker", "-l", "warn",
                                "--without-web"],
                               env={**settings_env(settings), "RISKSTREAM_HTTP_PORT": str(port)},
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        expected = sum(len(ids) for ids in small_history.burst_transactions.values())
        alerts: list = []
        deadline = time.monotonic() + 90
        while len(alerts) < expected and time.monotonic() < deadline:
            alerts = read_outputs(settings, streams=("alerts",), idle_s=1.0)
        assert len(alerts) == expected
        # The same endpoints as `riskstream worker`, with the same counts.
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        raised = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("riskstream_alerts_total{"))
        assert raised == expected
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr[-2000:]
    stores = list((settings.state_dir / settings.group_id).glob("partition-*.rocksdb"))
    assert len(stores) == settings.partitions


def test_a_worker_whose_metrics_port_is_taken_says_so_in_one_line(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = riskstream("worker", env={**settings_env(settings),
                                         "RISKSTREAM_HTTP_PORT": str(port)}, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "RISKSTREAM_HTTP_PORT" in lines[0]


def test_wrong_credentials_give_one_clear_error_and_never_show_the_secret(
    settings: Settings, history_file: Path
) -> None:
    env = {**settings_env(settings), "RISKSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "RISKSTREAM_SASL_USERNAME": "svc", "RISKSTREAM_SASL_PASSWORD": "hunter2-secret"}
    done = riskstream("--log-level", "DEBUG", "replay", str(history_file), "--no-progress",
                      env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: KafkaTimeoutError")
    assert "hunter2-secret" not in done.stdout + done.stderr


def test_user_shows_the_line_its_hold_and_latest_outputs_from_the_store_and_changelog(
    settings: Settings, small_history: DemoHistory, history_file: Path, tmp_path: Path
) -> None:
    from agents.replay import replay_files
    from pipeline.state.user import describe_user
    from tests.integration.conftest import expected_run, partition_of, run_worker

    replay_files(settings, [history_file], progress=False)
    run_worker(settings)
    outputs, engines = expected_run(small_history, settings)
    user_id = next(user for user, profile in small_history.profiles.items()
                   if profile == "burst")
    partition = partition_of(user_id, settings.partitions)
    expected_state = describe_user(engines[partition].users[user_id])
    about = [(stream, value) for stream, value in outputs if value["user_id"] == user_id]
    expected_alerts = [value for stream, value in about if stream == "alerts"][-3:]
    expected_adjustments = [value for stream, value in about
                            if stream == "limit-adjustments"][-3:]
    assert expected_alerts and expected_adjustments and expected_state["hold"] is not None
    env = settings_env(settings)
    records = {}
    for source in ("local", "changelog"):
        done = riskstream("user", user_id, "--source", source, "--recent", "3", "--json",
                          env=env)
        assert done.returncode == 0, done.stderr
        record = orjson.loads(done.stdout)
        assert record.pop("source").startswith(source.replace("local", "local store"))
        records[source] = record
    assert records["local"] == records["changelog"]
    record = records["local"]
    assert record["partition"] == partition and record["state"] == expected_state
    assert record["recent_alerts"] == expected_alerts
    assert record["recent_adjustments"] == expected_adjustments

    elsewhere = {**env, "RISKSTREAM_STATE_DIR": str(tmp_path / "empty-host")}
    done = riskstream("user", user_id, env=elsewhere)  # no local store: the changelog
    assert done.returncode == 0, done.stderr
    hold = expected_state["hold"]
    assert f"[{hold['adjustment_id']}]" in done.stdout and "latest alerts: " in done.stdout
    assert expected_alerts[-1]["alert_id"] in done.stdout
    done = riskstream("user", "nobody-such", env=env)
    assert done.returncode == 1 and "no user nobody-such" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_refuses_state_of_another_format_in_one_line(settings: Settings) -> None:
    from pipeline.state.checkpoint import META_KEY
    from pipeline.state.codec import FORMAT_VERSION
    from pipeline.state.store import StateDirectory

    directory = StateDirectory(settings.state_dir / settings.group_id)
    store = directory.open(0)
    store.write([(META_KEY, orjson.dumps({"format": FORMAT_VERSION + 1}))])
    store.close()
    done = riskstream("worker", "--stop-after-idle", "2", env=settings_env(settings))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: StateFormatError: ") and str(directory.path(0)) in last
    assert f"format version {FORMAT_VERSION + 1}; this release reads version " \
           f"{FORMAT_VERSION}" in last

    (directory.root / "partition-0001.snapshot").write_bytes(b"an earlier release's pickle")
    done = riskstream("worker", env=settings_env(settings))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "partition-0001.snapshot" in done.stderr.strip().splitlines()[-1]


def test_state_of_recreated_topics_is_reported_and_can_be_started_afresh(
    settings: Settings, small_history: DemoHistory, history_file: Path, tmp_path: Path
) -> None:
    from kafka import KafkaAdminClient

    from agents.exceptions import StaleStateError
    from agents.kafka import client_config, ensure_topics
    from agents.replay import replay_files
    from agents.topics import INPUT_TOPICS
    from tests.integration.conftest import run_worker

    replay_files(settings, [history_file], progress=False)
    run_worker(settings)
    admin = KafkaAdminClient(**client_config(settings))
    try:
        admin.delete_topics([settings.topic(name) for name in INPUT_TOPICS])
    finally:
        admin.close()
    time.sleep(1)
    ensure_topics(settings)
    short = tmp_path / "short.jsonl"
    events = small_history.events[:300]
    short.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    replay_files(settings, [short], progress=False)

    with pytest.raises(StaleStateError, match="input topics were recreated"):
        run_worker(settings)
    done = riskstream("worker", "--stop-after-idle", "1", env=settings_env(settings))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "input topics were recreated" in last and "--fresh-state" in last, done.stderr

    stats = run_worker(settings.model_copy(update={"fresh_state": True}))
    assert (stats.applied, stats.dead_letters) == (len(events), 0)
    assert run_worker(settings).applied == 0  # afresh for good: nothing stale any more


def test_the_alerts_monitor_shows_what_it_reads_in_event_time_order(settings: Settings) -> None:
    from kafka import KafkaProducer

    from agents.kafka import client_config

    producer = KafkaProducer(**client_config(settings))
    times = ["2026-03-05T10:00:00Z", "2026-03-01T10:00:00Z", "2026-03-04T10:00:00.5Z",
             "2026-03-02T10:00:00Z", "2026-03-04T10:00:00Z"]
    for index, when in enumerate(times):  # spread over partitions and both topics
        topic = settings.topic("alerts" if index % 2 else "limit-adjustments")
        producer.send(topic, orjson.dumps({"event_time": when, "n": index}),
                      partition=index % settings.partitions)
    producer.flush()
    producer.close()
    read = [record["event_time"] for _, record in read_outputs(settings, idle_s=1.5)]
    assert read == sorted(times, key=lambda when: (when[:19], len(when)))
