"""Real processes on loopback: a client agent, `opendots gateway` (one or two), `opendots server` (RFC 8811 §2.3,
RFC 9132 §4.4.1, RFC 8768)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from opendots.config import TlsFiles
from opendots.data.client import DataChannelClient, client_ssl_context
from opendots.lab.processes import ProcessStack, free_udp_tcp_port, opendots_argv, wait_for
from opendots.signal.client.shell.control import ControlClient, ControlError
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.gateway import (
    GatewayProcess,
    chain_running,
    in_front_of,
    point_agent_at,
    server_admin,
    stack_with_admin,
)
from tests.helpers.signal_harness import SCOPE

WITHDRAWN = "dots-client-withdrawn-mitigation"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with stack_with_admin(tmp_path) as stack:
        yield stack


def server_mitigations(stack: ProcessStack) -> list[dict]:
    return server_admin(stack, "mitigations")["mitigations"]


def agent_status(stack: ProcessStack, mid: int) -> str | None:
    """The status the agent last learnt for MID (from a notification: no request is sent)."""
    with stack.control() as control:
        records = control.status(mid)["mitigations"]
    return records[0]["status"] if records else None


def mitigate(stack: ProcessStack, prefix: str, *extra: str, oneshot: bool = False) -> dict:
    result = stack.cli("client", "mitigate", "--target-prefix", prefix, "--json", *extra, oneshot=oneshot)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_client_domain_gateway_relays_an_agents_mitigation_under_its_own_cuid_and_maps_the_mid_back(
    stack: ProcessStack,
) -> None:
    """RFC 9132 §4.4.1: a client-domain gateway aggregates its clients upstream under one cuid; the client sees its
    own mid, the server the gateway's."""
    gateway = in_front_of(stack, "client-domain")
    with chain_running(stack, gateway):
        answer = mitigate(stack, "203.0.113.7/32", "--mid", "40")
        assert answer[SCOPE]["scope"][0]["mid"] == 40
        held = server_mitigations(stack)
        assert [(m["client"], m["cuid"]) for m in held] == [("gw1", gateway.cuid)]
        upstream_mid = held[0]["mid"]
        status = gateway.status()
        assert status is not None
        assert [(link["downstream"], link["upstream"]) for link in status["links"]] == [
            (f"cuid={stack.cuid}/mid=40", f"cuid={gateway.cuid}/mid={upstream_mid}")
        ]
        entries = stack.status_entries()
        assert [entry["mid"] for entry in entries] == [40]
        shown = subprocess.run(
            opendots_argv("gateway", "status", "--config", str(gateway.config_path)),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert f"cuid={stack.cuid}/mid=40 -> cuid={gateway.cuid}/mid={upstream_mid}" in shown.stdout
        # The admin socket keeps the upstream session's operations, not the agent's own mitigation requests.
        with ControlClient(gateway.admin_socket, timeout=10.0) as control:
            assert control.session()["connected"] is True
            with pytest.raises(ControlError) as refused:
                control.mitigate({"target-prefix": ["203.0.113.8/32"], "lifetime": 60})
            assert refused.value.code == "4.03"
        # A gateway restart keeps the mapping (SQLite): the same downstream mid still reaches the same upstream one.
        gateway.stop()
        gateway.start()
        status = gateway.status()
        assert status is not None and [link["upstream"] for link in status["links"]] == [
            f"cuid={gateway.cuid}/mid={upstream_mid}"
        ]
        # The agent, its DTLS session gone with the old process, connects again and re-creates mitigation 40 with
        # what is left of its lifetime (RFC 9132 §4.7), then observes it again: wait for that, or its PUT could come
        # after the one-shot requests below and stand (a lifetime above 600, or mid 40 back after the withdrawal).
        wait_for(lambda: (s := gateway.status()) and s["observers"] == 1, 30, "the agent back through the gateway")
        mitigate(stack, "203.0.113.7/32", "--mid", "40", "--lifetime", "600", oneshot=True)
        assert [(m["mid"], m["lifetime"] <= 600) for m in server_mitigations(stack)] == [(upstream_mid, True)]
        withdrawn = stack.cli("client", "withdraw", "--mid", "40", oneshot=True)
        assert withdrawn.returncode == 0, withdrawn.stderr
        status = gateway.status()
        assert status is not None and status["links"] == []
        # RFC 9132 §4.4.4: the server keeps it, withdrawn, for its active-but-terminating period.
        assert [m["status"] for m in server_mitigations(stack)] in ([], [WITHDRAWN])


def test_downstream_observers_are_notified_of_upstream_status_changes_through_a_client_domain_gateway(
    stack: ProcessStack,
) -> None:
    """RFC 9132 §4.4.2.1 through a gateway: the agent's Observe registration is relayed, and a status the server
    reports for the gateway's upstream mid reaches the agent under its own mid; the metrics count it."""
    metrics_port = free_udp_tcp_port()
    gateway = in_front_of(stack, "client-domain", extra={"metrics": f"127.0.0.1:{metrics_port}"})
    with chain_running(stack, gateway):
        mitigate(stack, "203.0.113.9/32", "--mid", "7")
        wait_for(lambda: (s := gateway.status()) and s["observers"] == 1, 20, "the relayed observation")
        upstream_mid = server_mitigations(stack)[0]["mid"]
        server_admin(stack, "report-status", client="gw1", mid=upstream_mid, status="attack-successfully-mitigated")

        assert wait_for(lambda: agent_status(stack, 7) == "attack-successfully-mitigated", 20, "the notification")
        # An efficacy update (If-Match, RFC 9132 §4.4.3) goes through to the same upstream mid.
        efficacy = stack.cli("client", "efficacy", "--mid", "7", "--attack-status", "under-attack")
        assert efficacy.returncode == 0, efficacy.stderr
        assert [m["mid"] for m in server_mitigations(stack)] == [upstream_mid]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert 'opendots_gateway_links{kind="client-domain"} 1.0' in metrics
        assert "opendots_gateway_observers 1.0" in metrics and "opendots_gateway_upstream_up 1.0" in metrics
        assert 'opendots_gateway_requests_total{outcome="relayed"}' in metrics


def test_a_server_domain_gateway_relays_with_the_clients_cdid_which_the_server_honours_for_a_trusted_gateway(
    stack: ProcessStack,
) -> None:
    """RFC 9132 §4.4.1.2: the 'cdid' is the SPKI hash of the downstream client's certificate; the server keeps it
    because the gateway is marked `gateway = true` in its [[clients]]. Notifications come back unchanged."""
    # The server knows only the gateway: the client's cuid reaches it through the gateway alone.
    gateway = in_front_of(stack, "server-domain", "sgw", only_gateway=True)
    with chain_running(stack, gateway):
        mitigate(stack, "198.51.100.4/32", "--mid", "12")
        held = server_mitigations(stack)
        assert [(m["client"], m["cuid"], m["mid"], m.get("cdid")) for m in held] == [
            ("sgw", stack.cuid, 12, stack.cuid)
        ]
        assert [entry["mid"] for entry in stack.status_entries()] == [12]
        # Observe relayed unchanged: a status the server reports reaches the agent.
        wait_for(lambda: (s := gateway.status()) and s["observers"] == 1, 20, "the relayed observation")
        server_admin(stack, "report-status", client="sgw", mid=12, status="attack-stopped")
        assert wait_for(lambda: agent_status(stack, 12) == "attack-stopped", 20, "the notification")


def test_two_gateways_in_a_loop_answer_5_08_naming_both_instead_of_relaying_until_the_lifetime_ends(
    stack: ProcessStack,
) -> None:
    """RFC 8768 §3-§4: each gateway decrements the Hop-Limit, the one that exhausts it answers 5.08 with its
    identifier, the other prepends its own; the gateway that finds itself named does not relay it further and
    logs the loop."""
    first = GatewayProcess(stack.directory, "gw1", "client-domain")
    second = GatewayProcess(stack.directory, "gw2", "client-domain")
    first.upstream_to(second.port)
    second.upstream_to(first.port)
    first.serve(stack.server_config.clients[0], second.authorization())
    second.serve(first.authorization())
    point_agent_at(stack, first.port)
    try:
        first.start(wait_upstream=False)
        second.start()
        first.wait_upstream(True)
        stack.start_agent()
        result = stack.cli("client", "mitigate", "--target-prefix", "192.0.2.1/32", "--mid", "3")
        assert result.returncode != 0
        assert "5.08" in result.stderr, result.stderr
        named = result.stderr.split("5.08", 1)[1]
        assert "gw1" in named and "gw2" in named, result.stderr
        loops = [gw for gw in (first, second) if "DOTS gateway loop" in gw.log()]
        assert loops, "no gateway logged the loop"
        counters = [(gw.status() or {}).get("counters", {}) for gw in (first, second)]
        assert sum(c.get("hop-limit-reached", 0) for c in counters) == 1
        assert sum(c.get("loops-detected", 0) for c in counters) >= 1
        assert all(not (gw.status() or {}).get("links") for gw in (first, second))
    finally:
        first.stop()
        second.stop()


def test_a_lost_upstream_session_is_answered_5_03_with_max_age_until_it_is_back(stack: ProcessStack) -> None:
    """No mitigation held: missed heartbeats end the upstream session (RFC 9132 §4.7) and the gateway answers
    downstream requests 5.03 at once (the server side is unavailable, §4.4.1) until a new session is up."""
    gateway = in_front_of(stack, "client-domain")
    with chain_running(stack, gateway):
        gateway.fast_heartbeats()
        stack.stop_server()
        gateway.wait_upstream(False)
        refused = stack.cli("client", "mitigate", "--target-prefix", "203.0.113.21/32", "--mid", "6")
        assert refused.returncode != 0 and "5.03" in refused.stderr, refused.stderr
        status = gateway.status()
        assert status is not None and status["counters"].get("upstream-down") == 1
        stack.start_server()
        gateway.wait_upstream(True)
        assert mitigate(stack, "203.0.113.21/32", "--mid", "8")[SCOPE]["scope"][0]["mid"] == 8


def test_under_a_relayed_mitigation_the_upstream_session_is_kept_and_the_mitigation_re_established_on_a_new_one(
    stack: ProcessStack,
) -> None:
    """With a relayed mitigation the gateway's upstream leg is mitigating: missed heartbeats do not end its session
    but start a new one alongside (RFC 9132 §4.7); meanwhile an unanswered request gets 5.03. The server comes back
    with an empty database and the gateway PUTs the accepted mitigation again on the new session (the agent's own
    session with the gateway never broke, so the agent re-created nothing)."""
    gateway = in_front_of(stack, "client-domain")
    with chain_running(stack, gateway):
        gateway.fast_heartbeats()
        mitigate(stack, "203.0.113.20/32", "--mid", "5")
        upstream_mid = server_mitigations(stack)[0]["mid"]
        stack.stop_server()
        refused = stack.cli("client", "mitigate", "--target-prefix", "203.0.113.21/32", "--mid", "6")
        assert refused.returncode != 0 and "5.03" in refused.stderr, refused.stderr
        for stale in stack.directory.glob("opendots.db*"):
            stale.unlink()
        stack.start_server()

        # A PUT the gateway gave up on while the server was away may still reach it; the gateway withdraws it there
        # (opendots.gateway.late): what stands in the end is the re-established mitigation alone.
        def held() -> list[tuple[str, int]]:
            return [(m["client"], m["mid"]) for m in server_mitigations(stack) if m["status"] != WITHDRAWN]

        wait_for(lambda: held() == [("gw1", upstream_mid)], 30, "the re-established mitigation alone")
        # The gateway counts it when the answer is back, which may be just after the server holds it. Which session
        # carries it is a race (the agent's session alongside, or the DTLS layer re-opening the kept one to the
        # restarted server): RFC 9132 §4.7 asks for a new DTLS session, not for which, so that is not asserted.
        wait_for(lambda: (s := gateway.status()) and s["counters"].get("reestablished") == 1, 20,
                 "the re-establishment counted")  # fmt: skip
        assert [entry["mid"] for entry in stack.status_entries()] == [5]


async def test_a_server_domain_gateway_relays_the_data_channel_with_the_clients_cdid_and_via_rfc8783_s3_3(
    stack: ProcessStack,
) -> None:
    """RFC 8783 §3.3, §5.1: the registration reaches the server with 'cdid' (the client's certificate hash), which
    the client does not get back; aliases go through; a request whose Via names the gateway is a loop: 508."""
    gateway = in_front_of(stack, "server-domain", "sgw", only_gateway=True, extra={"data_channel": True})
    files = TlsFiles(stack.directory / "ca.crt", stack.directory / "client.crt", stack.directory / "client.key")
    with chain_running(stack, gateway):
        base = f"https://127.0.0.1:{gateway.data_port}"
        async with DataChannelClient(base, files, server_hostname="localhost") as client:
            assert (await client.register()).status == 201
            alias = {"name": "web", "target-prefix": ["203.0.113.64/28"]}
            assert (await client.create_alias(alias)).status == 201
            names = [entry["name"] for entry in await client.aliases()]
            assert names == ["web"]
            mine = await client.request("GET", f"/dots-client={stack.cuid}", content="config")
            assert "cdid" not in json.dumps(mine.body)
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(files))
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"{base}/restconf/data/ietf-dots-data-channel:dots-data"
            async with session.get(url, headers={"Via": "1.1 other, 1.1 sgw"}, server_hostname="localhost") as looped:
                error = (await looped.json(content_type=None))["ietf-restconf:errors"]["error"][0]
                assert (looped.status, error["error-app-tag"]) == (508, "loop-detected")
        store = SqliteDataChannelStore(SqliteDatabase(stack.directory / "opendots.db"))
        assert [(record.cuid, record.cdid) for record in store.clients()] == [(stack.cuid, stack.cuid)]
        status = gateway.status()
        assert status is not None and status["data-channel"]["relayed"] >= 4
