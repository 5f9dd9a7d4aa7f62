"""`opendots demo`: the main job on embedded defaults.

In a temporary directory: a test PKI, a DOTS server (SQLite store, logging mitigator) and a DOTS client agent on
loopback. The client signals a mitigation, receives status notifications (Observe), sends an efficacy update,
changes its session configuration and withdraws; every exchange is printed as method, URI, code and decoded body.
`--lab` does the same against real traffic in network namespaces (root only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import click

from opendots.app import build_client_agent, start_server
from opendots.lab.processes import free_udp_tcp_port
from opendots.pki.setup import init_pki
from opendots.signal.client.core.requests import DotsRequest, DotsResponse, RequestKind
from opendots.signal.server.core.messages import Status

VICTIM_PREFIX = "203.0.113.0/24"


class Trace:
    """Prints each exchange the client sees, notifications included, in arrival order."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.notifications = 0
        self.exchanges = 0
        self.observed: set[tuple[str, tuple[str, ...]]] = set()  # status requests whose first answer arrived

    def _stamp(self) -> str:
        return f"{time.monotonic() - self.started:6.3f}s"

    def exchange(self, request: DotsRequest, response: DotsResponse) -> None:
        if request.kind is RequestKind.HEARTBEAT:
            return
        self.exchanges += 1
        observing = request.observe == 0 and response.observe is not None and request.kind is RequestKind.STATUS
        key = (request.uri_path, request.query)
        arrow = "⇐ notification" if observing and key in self.observed else "←"
        if observing:
            self.observed.add(key)
        if arrow == "←":
            query = ("?" + "&".join(request.query)) if request.query else ""
            observe = "  [Observe: register]" if request.observe == 0 else ""
            click.echo(f"{self._stamp()} → {request.method} {request.uri_path}{query}{observe}")
            if request.body is not None:
                click.echo(_indent(request.body))
        else:
            self.notifications += 1
        click.echo(
            f"{self._stamp()} {arrow} {response.code}" + (f"  ({response.diagnostic})" if response.diagnostic else "")
        )
        if response.body is not None:
            click.echo(_indent(response.body))


def _indent(body: dict[str, Any], width: int = 118) -> str:
    """The body as compact YANG-JSON, wrapped under its exchange line."""
    text = json.dumps(body, separators=(", ", ": "))
    return textwrap.fill(
        text, width, initial_indent=" " * 9, subsequent_indent=" " * 9, break_long_words=False, break_on_hyphens=False
    )


async def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def run_demo(directory: Path) -> int:
    signal_port = free_udp_tcp_port()
    server_config, client_config = init_pki(directory, signal_port=signal_port, data_port=free_udp_tcp_port())
    click.echo(f"test PKI and configs in {directory}; signal channel on DTLS and TLS port {signal_port}")
    server_config.listen = ["127.0.0.1", "::1"]
    server_config.admin_socket = None  # the demo drives the server in-process
    running = await start_server(server_config, data=False)
    server = running.signal
    trace = Trace()
    agent = build_client_agent(client_config)
    agent.core.exchange_listeners.append(trace.exchange)
    # The demo has no actuator: say so once instead of the logging mitigator's warning per mitigation.
    logging.getLogger("opendots.mitigate.base").setLevel(logging.ERROR)
    click.echo("mitigator: logging only (nothing is enforced; `opendots demo --lab` drops real traffic)")
    try:
        click.echo(
            "\n== 1. the client connects (Happy Eyeballs over DTLS/TLS × IPv6/IPv4) and reads its session config"
        )
        await agent.start()
        if not await agent.wait_connected(15):
            click.echo("the client could not establish a signal channel session", err=True)
            return 1
        session = agent.session_info()
        click.echo(f"        session up: {session.get('transport', '?')} to {session.get('server', '?')}")
        await _wait_for(lambda: trace.exchanges > 0, 5)

        click.echo("\n== 2. request a mitigation for the documentation prefix " + VICTIM_PREFIX)
        scope = {
            "target-prefix": [VICTIM_PREFIX],
            "target-port-range": [{"lower-port": 53}],
            "target-protocol": [17],
            "lifetime": 3600,
        }
        reply = await agent.operations.dispatch("mitigate", {"scope": scope})
        mid = reply["mid"]
        click.echo("\n== 3. the agent observes the mitigation; the server notifies every change")
        await _wait_for(lambda: any(path.endswith(f"/mid={mid}") for path, _ in trace.observed), 5)

        click.echo("\n== 4. efficacy update from the client: the attack is still ongoing")
        await agent.operations.dispatch("efficacy", {"mid": mid, "attack-status": "under-attack"})

        click.echo("\n== 5. the mitigation provider reports the attack mitigated: a notification reaches the client")
        before = trace.notifications
        server.service.report_status(f"{agent.cuid}/{mid}", Status.ATTACK_SUCCESSFULLY_MITIGATED)
        if not await _wait_for(lambda: trace.notifications > before, 5):
            click.echo("no notification arrived within 5 s", err=True)
            return 1

        click.echo("\n== 6. change the session configuration (faster heartbeats while mitigating)")
        await agent.operations.dispatch(
            "config-set", {"mitigating": {"heartbeat_interval": 15, "missing_hb_allowed": 3}}
        )

        click.echo("\n== 7. status of every mitigation of this client (GET)")
        await agent.operations.dispatch("status", {})

        click.echo("\n== 8. withdraw the mitigation (the client stops observing it)")
        await agent.operations.dispatch("withdraw", {"mid": mid})

        click.echo("\n== 9. back to the default session configuration")
        await agent.operations.dispatch("config-delete", {})
        click.echo(f"\ndone: {trace.notifications} notification(s) received; server and client stop")
        return 0
    finally:
        await agent.stop()
        await running.stop()


@click.command()
@click.option("--lab", is_flag=True, help="Real traffic in network namespaces with nftables (root only).")
@click.option("--call-home", is_flag=True, help="With --lab: RFC 9066 Call Home through a NAT CPE.")
@click.option("--transport", type=click.Choice(["dtls", "tls"]), default="dtls", help="With --call-home.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), help="Keep the PKI/configs/db here.")
def demo(lab: bool, call_home: bool, transport: str, keep: Path | None) -> None:
    """Run a DOTS server and client on loopback and signal a mitigation end to end."""
    if call_home and not lab:
        raise click.UsageError("--call-home runs in the lab: add --lab")
    if call_home:
        from opendots.cli.demo_callhome import run_call_home_demo

        raise SystemExit(run_call_home_demo(transport))
    if lab:
        from opendots.cli.demo_lab import run_lab_demo

        raise SystemExit(run_lab_demo())
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        raise SystemExit(asyncio.run(run_demo(keep)))
    with tempfile.TemporaryDirectory(prefix="opendots-demo-") as directory:
        code = asyncio.run(run_demo(Path(directory)))
    raise SystemExit(code)
