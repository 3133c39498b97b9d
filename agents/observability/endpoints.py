"""The worker's HTTP port: ``/metrics`` for Prometheus, ``/healthz`` and ``/ready`` for
whatever supervises it (Kubernetes' probes, a load balancer, a person with curl).

- ``/healthz`` answers 200 while the loop is iterating (or a restore is reading the
  changelog) and 503 once it has not iterated for ``stall_s``: the process is stuck and
  restarting it is the cure.
- ``/ready`` answers 200 once every assigned partition is restored and has read each of its
  inputs to the end the broker reported, and 503 before: the worker is catching up.

Both answer a small JSON document saying why. The server runs in the worker's own event loop,
so ``riskstream worker`` and ``faust -A agents.app worker`` serve the same endpoints.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agents.exceptions import ConfigurationError

__all__ = ["OperationsServer", "Supervised"]

log = logging.getLogger(__name__)


class Supervised(Protocol):
    def health(self, stall_s: float) -> tuple[bool, dict[str, Any]]: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...


def _json(ok: bool, body: dict[str, Any]) -> web.Response:
    return web.Response(status=200 if ok else 503, content_type="application/json",
                        body=orjson.dumps({"status": "ok" if ok else "failing", **body}))


class OperationsServer:
    """``await server.start()`` binds ``host:port`` (0: any free port, see :attr:`port`)."""

    def __init__(self, worker: Supervised, registry: CollectorRegistry, host: str, port: int,
                 stall_s: float) -> None:
        self.worker = worker
        self.registry = registry
        self.host = host
        self.port = port
        self.stall_s = stall_s
        self._runner: web.AppRunner | None = None
        #: Where it serves, once started (None before).
        self.url: str | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/ready", self._ready)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as error:
            await runner.cleanup()
            raise ConfigurationError(
                f"cannot serve metrics and health on {self.host}:{self.port} ({error.strerror}):"
                " set RISKSTREAM_HTTP_PORT to a free port (0 picks one)") from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}"
        log.info("metrics on http://%s:%d/metrics; health on /healthz and /ready",
                 self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner, self.url = None, None

    async def _metrics(self, _request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _healthz(self, _request: web.Request) -> web.Response:
        return _json(*self.worker.health(self.stall_s))

    async def _ready(self, _request: web.Request) -> web.Response:
        return _json(*self.worker.readiness())
