"""Data channel benchmark: RESTCONF requests/s and p50/p99 latency over mutual TLS, next to a bare aiohttp reference.

    .venv/bin/python bench/data.py [--acls 1000] [--requests 500]

The servers run in their own processes (this script re-invokes itself with --role), the client in this one,
one request at a time on one kept-alive TLS connection:
  * the OpenDOTS data channel (yangson validation, SQLite in WAL mode) — ACL and alias creation and retrieval
    with --acls ACLs stored;
  * a bare aiohttp handler behind the same TLS settings returning a fixed small JSON body: the floor of
    HTTP + TLS + aiohttp on this machine.
Prints one table. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from opendots.cli.certs import init_pki
from opendots.config import ServerConfig
from opendots.data.shell.server import server_ssl_context, start_data_server
from opendots.pki import cuid_from_certificate
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase

ROOT = "/restconf/data/ietf-dots-data-channel:dots-data"
JSON = {"Content-Type": "application/yang-data+json"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def serve(role: str, directory: Path, port: int) -> None:
    config = ServerConfig.load(directory / "server.toml")
    if role == "dots":
        store = SqliteDataChannelStore(SqliteDatabase(directory / "bench.sqlite"))
        await start_data_server(config, store, "127.0.0.1", port)
    else:
        body = json.dumps({"ietf-dots-data-channel:acls": {"acl": [{"name": "x"}]}}).encode()

        async def bare(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=body, content_type="application/yang-data+json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", bare)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ssl_context(config.tls)).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def start(role: str, directory: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--dir", str(directory), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process, port


def ace(index: int) -> dict:
    return {
        "name": "r",
        "matches": {
            "ipv4": {"destination-ipv4-network": f"198.51.100.{index % 256}/32"},
            "udp": {"destination-port-range-or-operator": {"operator": "eq", "port": 53}},
        },
        "actions": {"forwarding": "drop"},
    }


async def timed(session: aiohttp.ClientSession, requests: list[tuple[str, str, bytes | None]]) -> list[float]:
    latencies = []
    for method, url, body in requests:
        start = time.perf_counter()
        async with session.request(method, url, data=body, headers=JSON if body else None) as response:
            await response.read()
            if response.status >= 400:
                raise RuntimeError(f"{method} {url}: {response.status} {await response.text()}")
        latencies.append(time.perf_counter() - start)
    return latencies


def row(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rate = len(latencies) / sum(latencies)
    return f"{name:<44} {len(latencies):>6} {rate:>9.0f} {statistics.median(ordered) * 1e3:>9.2f} {p99 * 1e3:>9.2f}"


async def run(acls: int, requests: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="opendots-bench-data-"))
    init_pki(directory)
    cuid = cuid_from_certificate((directory / "client.crt").read_bytes())
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    context.load_cert_chain(directory / "client.crt", directory / "client.key")
    dots, dots_port = start("dots", directory)
    bare, bare_port = start("bare", directory)
    rows = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=1)) as session:
            reference = f"https://127.0.0.1:{bare_port}{ROOT}/dots-client={cuid}/acls/acl=x"
            await timed(session, [("GET", reference, None)] * 20)  # warm-up (handshake)
            rows.append(
                row(
                    "reference: bare aiohttp GET (same TLS)",
                    await timed(session, [("GET", reference, None)] * requests),
                )
            )
            payload = json.dumps({"k": "v" * 300}).encode()
            rows.append(
                row(
                    "reference: bare aiohttp POST 300 B",
                    await timed(session, [("POST", reference, payload)] * requests),
                )
            )

            base = f"https://127.0.0.1:{dots_port}{ROOT}"
            client = f"{base}/dots-client={cuid}"
            register = json.dumps({"ietf-dots-data-channel:dots-client": [{"cuid": cuid}]}).encode()
            await timed(session, [("POST", base, register)])
            creations = [
                (
                    "POST",
                    f"{client}/acls",
                    json.dumps(
                        {"ietf-dots-data-channel:acl": [{"name": f"acl-{i}", "aces": {"ace": [ace(i)]}}]}
                    ).encode(),
                )
                for i in range(acls)
            ]
            rows.append(row(f"ACL creation (POST), 0 → {acls} stored", await timed(session, creations)))
            gets = [("GET", f"{client}/acls/acl=acl-{i * 7 % acls}", None) for i in range(requests)]
            rows.append(row(f"ACL retrieval (GET one), {acls} stored", await timed(session, gets)))
            puts = [
                (
                    "PUT",
                    f"{client}/acls/acl=acl-{i % acls}",
                    json.dumps(
                        {"ietf-dots-data-channel:acl": [{"name": f"acl-{i % acls}", "aces": {"ace": [ace(i)]}}]}
                    ).encode(),
                )
                for i in range(requests)
            ]
            rows.append(row(f"ACL replace (PUT), {acls} stored", await timed(session, puts)))
            rows.append(row(f"ACL list (GET all {acls})", await timed(session, [("GET", f"{client}/acls", None)] * 20)))
            aliases = [
                (
                    "POST",
                    client,
                    json.dumps(
                        {
                            "ietf-dots-data-channel:aliases": {
                                "alias": [
                                    {
                                        "name": f"a{i}",
                                        "target-prefix": [f"192.0.2.{i % 256}/32"],
                                        "target-protocol": [6],
                                    }
                                ]
                            }
                        }
                    ).encode(),
                )
                for i in range(requests)
            ]
            rows.append(row(f"alias creation (POST), {acls} ACLs stored", await timed(session, aliases)))
            alias_gets = [("GET", f"{client}/aliases/alias=a{i * 3 % requests}", None) for i in range(requests)]
            rows.append(row("alias retrieval (GET one)", await timed(session, alias_gets)))
    finally:
        for process in (dots, bare):
            process.terminate()
            process.wait()
    print(f"{'operation':<44} {'n':>6} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acls", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--role", choices=["dots", "bare"])
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--port", type=int)
    arguments = parser.parse_args()
    if arguments.role:
        asyncio.run(serve(arguments.role, arguments.dir, arguments.port))
    else:
        asyncio.run(run(arguments.acls, arguments.requests))


if __name__ == "__main__":
    main()
