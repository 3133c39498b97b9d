"""The Faust application: ``faust -A agents.app worker`` runs the risk pipeline.

The pipeline itself is :class:`agents.worker.PipelineWorker`, hosted here as a Faust service so
that Faust provides the process lifecycle (signals, logging, graceful shutdown) and its CLI.
Faust's own consumer group is named apart from the pipeline's so the two never share one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from mode import Service

from agents.settings import Settings
from agents.worker import PipelineWorker

__all__ = ["app", "build_app"]


def _credentials(settings: Settings) -> Any:
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def build_app(settings: Settings) -> faust.App:
    application = faust.App(
        f"{settings.group_id}-faust",
        broker=[f"kafka://{host}" for host in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        topic_partitions=settings.partitions,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.session_timeout_ms / 3000,
        broker_rebalance_timeout=settings.session_timeout_ms / 1000,
        # `faust worker` turns the web server on unless given --without-web; keep it on
        # loopback so a worker never listens on every interface by accident.
        web_enabled=False,
        web_bind="127.0.0.1",
        web_port=settings.faust_web_port,
        autodiscover=False,
    )

    @application.service
    class RiskPipelineService(Service):
        """Runs the pipeline worker for as long as the Faust worker lives."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.pipeline = PipelineWorker(settings)
            self._run: asyncio.Task[Any] | None = None

        async def on_start(self) -> None:
            self._run = asyncio.ensure_future(self.pipeline.run())

        async def on_stop(self) -> None:
            self.pipeline.stop()
            if self._run is not None:
                await self._run

    return application


app = build_app(Settings())
