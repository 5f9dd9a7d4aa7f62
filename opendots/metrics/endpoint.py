"""The HTTP face of the metrics: aiohttp in the server's own event loop (the collector reads live state safely)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector


@dataclass
class MetricsEndpoint:
    runner: web.AppRunner
    addresses: list[tuple]

    async def stop(self) -> None:
        await self.runner.cleanup()


def parse_listen(text: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" → (host, port)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"metrics address {text!r} is not host:port")
    return host.strip("[]"), int(port)


async def start_metrics_endpoint(collectors: list[Collector], listen: str) -> MetricsEndpoint:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)  # RSS, CPU seconds, open files of this process
    PlatformCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_listen(listen)
    site = web.TCPSite(runner, host, port)
    await site.start()
    return MetricsEndpoint(runner, list(runner.addresses))
