"""What operators see of a running worker, through real HTTP: /metrics, /healthz and /ready
served by the worker, and a real Prometheus (Debian's package) scraping it with the project's
configuration, evaluating its alert rules and answering every query of its dashboard."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from agents.kafka import client_config
from agents.observability.stats import WorkerStats
from agents.replay import replay_files
from agents.settings import Settings
from agents.topics import INPUT_TOPICS
from agents.worker import PipelineWorker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Malformed records sent after the history: they must show up as dead letters by reason.
MALFORMED = 7


def _send_malformed(settings: Settings) -> None:
    producer = KafkaProducer(**client_config(settings))
    for index in range(MALFORMED):
        producer.send(settings.topic("transactions"), b"{not json", key=f"u{index}".encode())
    producer.flush()
    producer.close()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def _until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _by(samples: dict, name: str, label: str) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for (sample_name, labels), value in samples.items():
        if sample_name == name:
            totals[dict(labels)[label]] += value
    return dict(totals)


def test_worker_serves_metrics_that_match_its_counts_and_health_that_tracks_its_loop(
    settings: Settings, history_file: Path
) -> None:
    settings = settings.model_copy(update={"health_stall_s": 0.5})
    replay_files(settings, [history_file], progress=False)
    _send_malformed(settings)
    worker = PipelineWorker(settings)

    async def scenario() -> WorkerStats:
        # Hold the worker's lock from the start: it can neither join (the assignment waits
        # for the lock) nor iterate, so it is neither ready nor, after 0.5 s, healthy.
        await worker._lock.acquire()
        run = asyncio.ensure_future(worker.run())
        base = ""
        async with aiohttp.ClientSession() as session:
            try:
                await _until(lambda: asyncio.sleep(0, worker.server.url is not None), 10,
                             "the HTTP server")
                base = str(worker.server.url)
                status, body = await _get(session, f"{base}/ready")
                assert status == 503 and json.loads(body)["joined"] is False, body
                await asyncio.sleep(1.0)
                status, body = await _get(session, f"{base}/healthz")
                assert status == 503 and json.loads(body)["status"] == "failing", body
            finally:
                worker._lock.release()

            async def ready() -> bool:
                return (await _get(session, f"{base}/ready"))[0] == 200

            await _until(ready, 60, "/ready")
            assert (await _get(session, f"{base}/healthz"))[0] == 200
            stats = worker.stats

            async def settled() -> bool:
                return stats.records_in > 0 and stats.applied + stats.dead_letters == \
                    stats.records_in and worker.ready()

            await _until(settled, 60, "every record applied")
            await asyncio.sleep(0.5)
            status, text = await _get(session, f"{base}/metrics")
            worker.stop()
            await run
        assert status == 200
        samples = _samples(text)
        received = _by(samples, "riskstream_records_received_total", "topic")
        assert received == {topic: float(n) for topic, n in stats.records_in_by_topic.items()}
        assert sum(_by(samples, "riskstream_records_applied_total", "topic").values()) \
            == stats.applied
        assert _by(samples, "riskstream_dead_letters_total", "reason") == {
            "malformed-json": float(MALFORMED)}
        assert _by(samples, "riskstream_alerts_total", "severity") == {
            severity: float(n) for severity, n in stats.alerts_by_severity.items()}
        assert _by(samples, "riskstream_limit_adjustments_total", "kind") == {
            kind: float(n) for kind, n in stats.adjustments_by_kind.items()}
        assert sum(stats.alerts_by_severity.values()) == stats.outputs["alerts"] > 0
        assert samples["riskstream_assigned_partitions", ()] == settings.partitions
        assert samples["riskstream_ready", ()] == 1
        scored = samples["riskstream_purchase_score_count", ()]
        assert scored == stats.applied_by_topic[settings.topic("transactions")]
        lag = _by(samples, "riskstream_consumer_lag_records", "topic")
        assert set(lag) == {settings.topic(t) for t in INPUT_TOPICS}
        assert all(value == 0 for value in lag.values()), lag
        latency = samples["riskstream_output_latency_seconds_count", ()]
        assert latency > 0 and samples["riskstream_loop_iteration_seconds_count", ()] > 0
        learned = _by(samples, "riskstream_model_examples_learned_total", "model")
        assert learned["fraud"] > 0
        return stats

    asyncio.run(scenario())


# -- a real Prometheus --------------------------------------------------------------------------
PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/riskstream.json").read_text())
    return [(panel["title"], target["expr"].replace("$__rate_interval", "1m"))
            for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.mark.skipif(PROMETHEUS is None, reason="Prometheus is not installed "
                    "(apt-get install prometheus; .ci/run installs it)")
def test_prometheus_scrapes_the_worker_evaluates_the_rules_and_feeds_every_dashboard_panel(
    settings: Settings, history_file: Path, tmp_path: Path
) -> None:
    replay_files(settings, [history_file], progress=False)
    _send_malformed(settings)
    worker = PipelineWorker(settings)
    prometheus_port = _free_port()

    async def scenario() -> None:
        run = asyncio.ensure_future(worker.run())
        await _until(lambda: asyncio.sleep(0, worker.server.url is not None), 10,
                     "the worker's HTTP server")
        # The project's scrape configuration, pointed at this worker and scraping every second.
        config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(ROOT / "deploy/prometheus" / f)
                                for f in config["rule_files"]]
        job = config["scrape_configs"][0]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.server.port}"]}]
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        server = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config_path}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
        api = f"http://127.0.0.1:{prometheus_port}/api/v1"
        try:
            async with aiohttp.ClientSession() as session:
                async def query(expr: str) -> list[dict[str, Any]]:
                    async with session.get(f"{api}/query", params={"query": expr}) as response:
                        body = await response.json()
                    assert body["status"] == "success", (expr, body)
                    return body["data"]["result"]

                def total(result: list[dict[str, Any]]) -> float:
                    return sum(float(series["value"][1]) for series in result)

                stats = worker.stats

                async def settled() -> bool:
                    if not (stats.records_in and worker.ready()
                            and stats.applied + stats.dead_letters == stats.records_in):
                        return False
                    with_ok = await _prometheus_up(session, api)
                    return with_ok and total(await query(
                        'sum(riskstream_records_applied_total{job="riskstream"})')) \
                        == stats.applied
                await _until(settled, 90, "Prometheus to scrape the worker's final counts")
                # Counters in Prometheus are the worker's own counts.
                assert total(await query("sum(riskstream_records_received_total)")) \
                    == stats.records_in
                dead = await query("sum by (reason) (riskstream_dead_letters_total)")
                assert {s["metric"]["reason"]: float(s["value"][1]) for s in dead} == {
                    "malformed-json": float(MALFORMED)}
                alerts = await query("sum by (severity) (riskstream_alerts_total)")
                assert {s["metric"]["severity"]: float(s["value"][1]) for s in alerts} == {
                    k: float(v) for k, v in stats.alerts_by_severity.items()}
                cuts = await query("sum by (kind) (riskstream_limit_adjustments_total)")
                assert {s["metric"]["kind"]: float(s["value"][1]) for s in cuts} == {
                    k: float(v) for k, v in stats.adjustments_by_kind.items()}
                # Give the rates a few more samples, then every panel must show data.
                await asyncio.sleep(3)
                empty = [(title, expr) for title, expr in _dashboard_queries()
                         if not await query(expr)]
                assert not empty, f"dashboard queries without data: {empty}"
                # The alert rules are loaded and evaluate without error.
                async with session.get(f"{api}/rules") as response:
                    groups = (await response.json())["data"]["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                assert len(rules) >= 9 and all(rule["health"] == "ok" for rule in rules), [
                    (rule["name"], rule.get("lastError")) for rule in rules]
        finally:
            server.terminate()
            server.wait(timeout=30)
            worker.stop()
            await run

    asyncio.run(scenario())


async def _prometheus_up(session: aiohttp.ClientSession, api: str) -> bool:
    try:
        async with session.get(f"{api}/query", params={"query": 'up{job="riskstream"}'}) as r:
            body = await r.json()
    except aiohttp.ClientError:
        return False
    result = body.get("data", {}).get("result", [])
    return bool(result) and result[0]["value"][1] == "1"
