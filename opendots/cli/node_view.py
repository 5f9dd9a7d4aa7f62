"""The node seen whole when `opendots server --workers N` runs: the parent's operator socket and /metrics.

Each worker serves its own operator socket (`<admin_socket>.<n>`) and metrics (127.0.0.1, a port of its own); the
parent serves the configured ones from them:

- `status`: sessions summed over the workers, a client connected when it is connected to any, its mitigations as
  the mitigator lease holder holds them (all workers share the store), and a "workers" list (pid, sessions,
  whether it drives the mitigators, restarts);
- `redirect`, `redirect-clear`, `reload`: to every worker (each holds its own sessions), the first answer returned;
- anything else (`mitigations`, `report-status`, `ping`): to the lease holder;
- /metrics: each sample summed over the workers (counters, sessions, RSS and CPU are the node's), the start time
  the oldest, plus `opendots_workers` and `opendots_worker_restarts_total`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from opendots.config import ServerConfig
from opendots.metrics.endpoint import parse_listen
from opendots.signal.client.shell.control import ControlError, ControlServer

if TYPE_CHECKING:
    from opendots.cli.workers import Supervisor, Worker

TO_EVERY_WORKER = ("redirect", "redirect-clear", "reload")
ASK_TIMEOUT = 10.0


async def ask(path: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """One request on a worker's operator socket."""
    async with asyncio.timeout(ASK_TIMEOUT):
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 22)
        try:
            writer.write(json.dumps({"op": op, **args}).encode() + b"\n")
            await writer.drain()
            answer: dict[str, Any] = json.loads(await reader.readline())
        finally:
            writer.close()
    return answer


class NodeAdmin:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def _serving(self) -> list[Worker]:
        return [w for w in self.supervisor.workers if w.ready.get("admin")]

    async def handle(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        workers = self._serving()
        if not workers:
            raise ControlError("no worker is serving", "5.03")
        if op == "status":
            return await self._status(workers, args)
        if op in TO_EVERY_WORKER:
            answers = await asyncio.gather(*(ask(w.ready["admin"], op, args) for w in workers))
            return _unwrapped(answers[0])
        statuses = await asyncio.gather(*(ask(w.ready["admin"], "status", {}) for w in workers))
        holder = next((w for w, s in zip(workers, statuses, strict=True) if s.get("drives-mitigators")), workers[0])
        return _unwrapped(await ask(holder.ready["admin"], op, args))

    async def _status(self, workers: list[Worker], args: dict[str, Any]) -> dict[str, Any]:
        statuses = [
            _unwrapped(s) for s in await asyncio.gather(*(ask(w.ready["admin"], "status", args) for w in workers))
        ]
        holder = next((s for s in statuses if s.get("drives-mitigators")), statuses[0])
        merged = dict(holder)
        merged["sessions"] = {
            kind: sum(s.get("sessions", {}).get(kind, 0) for s in statuses) for kind in holder.get("sessions", {})
        }
        connected = {c["name"] for s in statuses for c in s.get("clients", []) if c.get("connected")}
        merged["clients"] = [{**c, "connected": c["name"] in connected} for c in holder.get("clients", [])]
        merged["drives-mitigators"] = any(s.get("drives-mitigators") for s in statuses)
        merged["workers"] = [
            {
                "worker": w.index,
                "pid": w.ready.get("pid"),
                "sessions": s.get("sessions"),
                "drives-mitigators": s.get("drives-mitigators"),
                "restarts": w.restarts,
                "cluster": s.get("cluster"),
            }
            for w, s in zip(workers, statuses, strict=True)
        ]
        return merged


def _unwrapped(answer: dict[str, Any]) -> dict[str, Any]:
    if not answer.pop("ok", False):
        raise ControlError(str(answer.get("error")), str(answer.get("code", "5.00")))
    answer.pop("id", None)
    return answer


def merged_metrics(texts: Iterable[str], workers: int, restarts: int) -> str:
    """The workers' Prometheus texts as one: each (name, labels) sample summed, start times the oldest, *_info
    samples (python_info) kept once."""
    kinds: dict[str, tuple[str, str]] = {}
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    families: dict[str, list[tuple[str, tuple[tuple[str, str], ...]]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            kinds.setdefault(family.name, (family.type, family.documentation))
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    families.setdefault(family.name, []).append(key)
                    samples[key] = sample.value
                elif sample.name.endswith("start_time_seconds"):
                    samples[key] = min(samples[key], sample.value)
                elif family.type == "info" or sample.name.endswith("_info"):
                    samples[key] = max(samples[key], sample.value)  # a fact about the processes, not a count
                else:
                    samples[key] += sample.value
    lines = []
    for name, keys in families.items():
        kind, documentation = kinds[name]
        lines += [f"# HELP {name} {documentation}", f"# TYPE {name} {kind}"]
        for sample_name, labels in keys:
            rendered = ",".join(f'{k}="{_escaped(v)}"' for k, v in labels)
            lines.append(
                f"{sample_name}{{{rendered}}} {samples[(sample_name, labels)]!r}"
                if labels
                else f"{sample_name} {samples[(sample_name, labels)]!r}"
            )
    lines += [
        "# HELP opendots_workers Worker processes serving on this node.",
        "# TYPE opendots_workers gauge",
        f"opendots_workers {workers}",
        "# HELP opendots_worker_restarts Workers restarted by the parent after they died.",
        "# TYPE opendots_worker_restarts counter",
        f"opendots_worker_restarts_total {restarts}",
    ]
    return "\n".join(lines) + "\n"


def _escaped(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class NodeMetrics:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.runner: web.AppRunner | None = None

    async def start(self, listen: str) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        host, port = parse_listen(listen)
        await web.TCPSite(self.runner, host, port).start()

    async def _metrics(self, _request: web.Request) -> web.Response:
        workers = [w for w in self.supervisor.workers if w.ready.get("metrics")]
        timeout = aiohttp.ClientTimeout(total=ASK_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def fetch(address: str) -> str:
                async with session.get(f"http://{address}/metrics") as response:
                    return await response.text()

            texts = await asyncio.gather(*(fetch(w.ready["metrics"]) for w in workers), return_exceptions=True)
        restarts = sum(w.restarts for w in self.supervisor.workers)
        body = merged_metrics([t for t in texts if isinstance(t, str)], len(workers), restarts)
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class _Stoppable:
    def __init__(self, view: ControlServer | NodeMetrics) -> None:
        self.view = view

    async def stop(self) -> None:
        await (self.view.close() if isinstance(self.view, ControlServer) else self.view.stop())


async def start_node_views(config: ServerConfig, supervisor: Supervisor) -> list[_Stoppable]:
    views: list[_Stoppable] = []
    if config.admin_socket is not None:
        control = ControlServer(config.admin_socket, NodeAdmin(supervisor).handle)
        await control.start()
        views.append(_Stoppable(control))
    if config.metrics:
        metrics = NodeMetrics(supervisor)
        await metrics.start(config.metrics)
        views.append(_Stoppable(metrics))
    return views
