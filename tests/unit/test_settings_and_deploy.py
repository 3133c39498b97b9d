"""Settings, security pass-through, and the production files checked statically."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agents.kafka import client_config
from agents.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_in_the_env_example() -> None:
    example = (ROOT / "deploy" / "riskstream.env.example").read_text()
    documented = set(re.findall(r"RISKSTREAM_([A-Z0-9_]+)=", example))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_the_env_example_reads_as_docker_does_and_gives_the_defaults() -> None:
    """``docker --env-file`` takes everything after ``=`` as the value (no inline comments):
    read that way, every line is a valid setting equal to its default."""
    values = {}
    for line in (ROOT / "deploy" / "riskstream.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.removeprefix("RISKSTREAM_").lower()] = value
    configured = Settings(**values)
    for name in values:
        assert getattr(configured, name) == Settings.model_fields[name].default, name


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKSTREAM_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("RISKSTREAM_PARTITIONS", "12")
    settings = Settings()
    assert settings.partitions == 12
    assert client_config(settings)["bootstrap_servers"] == ["k1:9092", "k2:9092"]


def test_sasl_settings_reach_the_clients_and_the_secret_is_never_printed() -> None:
    settings = Settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                        sasl_username="svc", sasl_password="hunter2-secret")
    config = client_config(settings)
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "svc"
    assert config["sasl_plain_password"] == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in str(settings)


def test_tls_settings_build_an_ssl_context(tmp_path: Path) -> None:
    assert client_config(Settings())["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" in client_config(Settings(security_protocol="SSL"))


def test_docker_compose_runs_kafka_in_kraft_mode_with_co_partitioned_topics() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka
    assert all(port.startswith("127.0.0.1:") for port in kafka["ports"])
    # The topics are created by `riskstream topics` (agents.kafka.ensure_topics: the inputs
    # co-partitioned, the changelog compacted, the replicated topics' retention), with the
    # workers' own settings.
    topics = services["topics"]
    assert topics["command"] == ["topics"] and topics["image"] == "riskstream:latest"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    worker = services["worker"]
    assert topics["environment"] == worker["environment"]
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / worker["build"]["dockerfile"]).is_file()
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["RISKSTREAM_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # The policy file the worker is pointed at is the one in the repository, mounted.
    policy = worker["environment"]["RISKSTREAM_POLICY_FILE"]
    assert f"./deploy/policy.toml:{policy}:ro" in worker["volumes"]


def test_the_dockerfile_installs_the_package_and_runs_the_worker() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for directory in ("pipeline", "agents", "schemas"):
        assert f"COPY {directory} ./{directory}" in dockerfile
    assert 'ENTRYPOINT ["riskstream"]' in dockerfile and 'CMD ["worker"]' in dockerfile
    assert "USER riskstream" in dockerfile


def test_the_faust_app_gets_the_same_sasl_and_tls_settings() -> None:
    import faust

    from agents.app import _credentials

    sasl = _credentials(Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                                 sasl_username="svc", sasl_password="hunter2-secret"))
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.username, sasl.password, sasl.ssl_context is not None) == (
        "svc", "hunter2-secret", True)
    assert isinstance(_credentials(Settings(security_protocol="SSL")), faust.SSLCredentials)
    assert _credentials(Settings()) is None


def test_the_replay_producer_checksums_record_batches_in_c() -> None:
    """kafka-python falls back to a pure-Python CRC-32C without the ``crc32c`` extra, which
    costs a third of the replay's time."""
    from kafka.record import util

    assert util.crc32c_c is not None, "install kafka-python[crc32c]"
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the standard check value
