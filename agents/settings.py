"""One frozen settings object for every command; each field is read from ``RISKSTREAM_<NAME>``.

Secrets are ``SecretStr`` and never printed. The same settings drive the embedded broker in
development and an Apache Kafka cluster in production: only the bootstrap address and the
security fields change.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.config import RiskConfig
from pipeline.exceptions import PolicyError
from pipeline.policy_file import load_policy

__all__ = ["POLICY_OVERRIDES", "Settings"]

#: Policy keys a variable may override (the rest only in the policy file).
POLICY_OVERRIDES = ("currency", "default_limit_minor", "max_limit_minor", "alert_threshold",
                    "cut_threshold", "raise_max_default_risk", "freeze_default_risk")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISKSTREAM_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap address(es), comma-separated."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers.")
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client key for mutual TLS.")

    topic_prefix: str = Field("", description="Prefix of every topic name (e.g. 'prod.').")
    partitions: int = Field(4, ge=1, description="Partitions of each topic created by riskstream.")
    replication_factor: int = Field(1, ge=1, description="Replication of created topics.")
    group_id: str = Field("riskstream", description="Consumer group of the workers.")

    state_dir: Path = Field(
        Path("var/state"),
        description="Where workers keep each partition's local state store (RocksDB) and the "
        "merchant replica's store. Optional for correctness: a partition whose store is "
        "missing restores it from the group's changelog topic.",
    )
    fresh_state: bool = Field(
        False, description="Start afresh a partition whose stored state resumes its inputs "
        "beyond their end (the topics were recreated since): its state is dropped, from the "
        "changelog too. Off: such a worker stops with an error that says so.",
    )
    checkpoint_interval_s: float = Field(
        2.0, gt=0, description="Wall seconds between a partition's checkpoints: the users "
        "changed since the last one go to the changelog topic and the local store (and "
        "offsets are committed). The partitions of a worker take turns.",
    )
    user_cache_size: int = Field(
        100_000, ge=1,
        description="Users of one partition kept in memory; the least recently changed beyond "
        "this leave memory after a checkpoint and are read back from the store when needed.",
    )
    changelog_min_compaction_lag_ms: int = Field(
        24 * 3600 * 1000, ge=0,
        description="min.compaction.lag.ms of the changelog topic riskstream creates: how long "
        "a changelog record stays uncompacted, so a partition taken over mid-checkpoint can "
        "still rewrite what an incomplete checkpoint touched (docs/state.md).",
    )
    replica_checkpoint_interval_s: float = Field(
        60.0, gt=0, description="Wall seconds between saves of what the merchant replica "
        "changed, which let a restarted worker read on from where it was instead of re-reading "
        "37 days of the topics.",
    )
    max_task_idle_ms: int = Field(
        30,
        ge=0,
        description="How long after its broker timestamp a record waits for an input topic "
        "with nothing waiting at the broker, which might still deliver an older event from "
        "a producer's batch in flight (event-time alignment, as Kafka Streams' "
        "max.task.idle.ms). Inputs known to hold more at the broker are always waited for. "
        "It bounds the added latency; larger values keep the cross-topic order exact for "
        "producers whose batches take longer to arrive (docs/operations.md).",
    )
    fetch_max_wait_ms: int = Field(
        20,
        ge=0,
        description="Longest a fetch waits for data at the broker. Kept short because the "
        "embedded broker holds every fetch for the full wait even when data is ready.",
    )
    max_partition_fetch_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="Most bytes fetched per partition in one request."
    )
    max_batch: int = Field(5000, ge=1, description="Most records taken in one poll.")
    max_iteration_ms: int = Field(
        300, ge=10,
        description="Longest the worker applies records before it polls again: heartbeats, "
        "checkpoints and rebalances wait behind an iteration, whatever the machine's speed.",
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1000,
        description="Consumer-group session timeout. The embedded broker holds a first join "
        "for half of it, so development and tests use a short one.",
    )

    http_host: str = Field(
        "127.0.0.1", description="Address the worker serves /metrics, /healthz and /ready on "
        "(0.0.0.0 in a container, for Prometheus and the probes).",
    )
    http_port: int = Field(
        9400, ge=0, le=65535,
        description="Port of the worker's /metrics, /healthz and /ready (0: any free port, "
        "logged at start).",
    )
    health_stall_s: float = Field(
        60.0, gt=0, description="/healthz fails once the worker's loop has not iterated for this "
        "many seconds (a restore reading the changelog counts as progress).",
    )
    progress_interval_s: float = Field(
        10.0, ge=0, description="Seconds between the live lines a busy worker logs (rate, lag, "
        "outputs); 0: none.",
    )

    faust_web_port: int = Field(
        6066, ge=1, le=65535,
        description="Port of Faust's web server (bound to 127.0.0.1) under `faust worker`.",
    )

    model_dir: Path | None = Field(
        None, description="Models trained on a history (`riskstream train --out DIR`): each "
        "new partition starts from its online models, and the champion default model scores "
        "every statement, the online one beside it. Unset: models learn from nothing.",
    )
    policy_file: Path | None = Field(
        None, description="The risk policy (TOML): thresholds, severity bands, cuts and raise "
        "rules (docs/configuration.md). Unset: the defaults. The variables below override "
        "single keys of it.",
    )
    currency: str | None = Field(
        None, description="Overrides the policy's [line] currency, the credit line's currency."
    )
    default_limit_minor: int | None = Field(
        None, gt=0, description="Overrides the policy's [line] default_limit_minor."
    )
    max_limit_minor: int | None = Field(
        None, gt=0, description="Overrides the policy's [line] max_limit_minor."
    )
    alert_threshold: float | None = Field(
        None, gt=0, le=1, description="Overrides the policy's [alerts] alert_threshold."
    )
    cut_threshold: float | None = Field(
        None, gt=0, le=1, description="Overrides the policy's [alerts] cut_threshold."
    )
    raise_max_default_risk: float | None = Field(
        None, ge=0, le=1, description="Overrides the policy's [raises] raise_max_default_risk."
    )
    freeze_default_risk: float | None = Field(
        None, gt=0, le=1, description="Overrides the policy's [default_risk] "
        "freeze_default_risk."
    )

    merchant_replica: bool = Field(
        True,
        description="Give each worker a replica of every merchant's activity, read from every "
        "partition, so merchant risk is exact with any number of partitions "
        "(docs/architecture.md). Off: each partition knows only its own users' share of a "
        "merchant.",
    )

    emit_scores: bool = Field(
        False, description="Also write every score to the scores and credit-scores topics "
        "(evaluation).",
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def changelog_topic(self) -> str:
        """The consumer group's state changelog (one per group: its state is the group's)."""
        return self.topic(f"{self.group_id}-state-changelog")

    def risk_config(self) -> RiskConfig:
        """The policy file's (or the default) policy, with the keys set by variables on top;
        raises :class:`~pipeline.exceptions.PolicyError` naming what is wrong."""
        base = load_policy(self.policy_file) if self.policy_file is not None else RiskConfig()
        overrides = {name: getattr(self, name) for name in POLICY_OVERRIDES
                     if getattr(self, name) is not None}
        try:
            return replace(base, emit_scores=self.emit_scores, **overrides)
        except ValueError as error:
            variables = ", ".join(f"RISKSTREAM_{name.upper()}" for name in overrides)
            raise PolicyError(f"policy {self.policy_file or '(defaults)'} with {variables}: "
                              f"{error}") from None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        if self.ssl_certfile:
            context.load_cert_chain(
                str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
            )
        return context
