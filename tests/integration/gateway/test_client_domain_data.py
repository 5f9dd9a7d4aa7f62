"""Real processes over HTTPS and DTLS on loopback: two DOTS clients → a client-domain `opendots gateway` → `opendots
server`, on the data channel (RFC 8783 §3.3, RFC 8811 §2.3): one upstream client under the gateway's cuid, each
downstream client's aliases kept apart and shown only to it, usable in its mitigations, across a gateway restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.config import TlsFiles
from opendots.data.client import DataChannelClient, DataChannelError
from opendots.lab.processes import ProcessStack
from opendots.pki.certs import TestPki
from opendots.pki.cuid import cuid_from_certificate
from tests.helpers.gateway import authorization, chain_running, in_front_of, server_admin, stack_with_admin
from tests.helpers.signal_harness import SCOPE


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with stack_with_admin(tmp_path) as stack:
        yield stack


def upstream_aliases(stack: ProcessStack, cuid: str) -> dict[str, list[str]]:
    """The server's aliases of CUID: name -> targets."""
    clients = server_admin(stack, "client-details", client=cuid)["clients"]
    return {alias["name"]: alias["targets"] for client in clients for alias in client["aliases"]}


async def test_two_clients_aliases_of_one_name_stay_apart_upstream_and_each_sees_and_uses_only_its_own(
    stack: ProcessStack,
) -> None:
    """RFC 8783 §3.3 through a client-domain gateway: upstream it is one client (its cuid, one registration) holding
    both clients' 'web' under distinct names; each client GETs its own 'web' only, under its own cuid; the agent's
    mitigation on alias 'web' through the same gateway resolves to its alias (RFC 9132 §4.4.1); the names survive
    a gateway restart (kept in its state file)."""
    gateway = in_front_of(stack, "client-domain", only_gateway=True, extra={"data_channel": True})
    bob_credential = TestPki(stack.directory).issue_client("bob")
    bob_cuid = cuid_from_certificate(bob_credential.cert_path.read_bytes())
    gateway.serve(authorization("bob", bob_cuid))
    ca = stack.directory / "ca.crt"
    alice_files = TlsFiles(ca, stack.directory / "client.crt", stack.directory / "client.key")
    bob_files = TlsFiles(ca, bob_credential.cert_path, bob_credential.key_path)
    targets = {"alice": "203.0.113.16/28", "bob": "198.51.100.32/28"}
    with chain_running(stack, gateway):
        base = f"https://127.0.0.1:{gateway.data_port}"
        async with (
            DataChannelClient(base, alice_files, server_hostname="localhost") as alice,
            DataChannelClient(base, bob_files, server_hostname="localhost") as bob,
        ):
            for name, client in (("alice", alice), ("bob", bob)):
                assert (await client.register()).status == 201
                created = await client.create_alias({"name": "web", "target-prefix": [targets[name]]})
                assert created.status == 201
            with pytest.raises(DataChannelError) as again:
                await alice.register()
            assert again.value.status == 409
            # Upstream: the gateway alone, with two distinct 'web's.
            assert [client["cuid"] for client in server_admin(stack, "client-details")["clients"]] == [gateway.cuid]
            held = upstream_aliases(stack, gateway.cuid)
            assert len(held) == 2 and all(name.endswith("-web") for name in held)
            for name, client in (("alice", alice), ("bob", bob)):
                mine = await client.aliases()
                assert [(alias["name"], alias["target-prefix"]) for alias in mine] == [("web", [targets[name]])]
                whole = (await client.request("GET", f"/dots-client={client.cuid}", content="config")).body
                text = json.dumps(whole)
                assert client.cuid in text and gateway.cuid not in text
                assert targets["bob" if name == "alice" else "alice"] not in text
            with pytest.raises(DataChannelError) as other:
                await alice.request("GET", f"/dots-client={bob.cuid}/aliases")
            assert other.value.status == 404
            with pytest.raises(DataChannelError) as nameless:  # refused as the server refuses it directly
                await alice.create_alias({"target-prefix": [targets["alice"]]})
            assert nameless.value.status == 400
            # A mitigation on the alias, through the gateway's signal relay.
            result = stack.cli("client", "mitigate", "--alias", "web", "--mid", "9", "--json")
            assert result.returncode == 0, result.stderr + result.stdout
            assert json.loads(result.stdout)[SCOPE]["scope"][0]["mid"] == 9
            mitigations = server_admin(stack, "mitigations")["mitigations"]
            assert len(mitigations) == 1 and mitigations[0]["cuid"] == gateway.cuid
            (alice_upstream,) = [
                name for name, held_targets in held.items() if targets["alice"] in json.dumps(held_targets)
            ]
            assert mitigations[0]["alias-name"] == [alice_upstream]
            assert [entry["alias-name"] for entry in stack.status_entries()] == [["web"]]
        gateway.stop()
        gateway.start()
        async with DataChannelClient(base, bob_files, server_hostname="localhost") as bob:
            assert [alias["target-prefix"] for alias in await bob.aliases()] == [[targets["bob"]]]
            with pytest.raises(DataChannelError) as registered:
                await bob.register()
            assert registered.value.status == 409  # still registered after the restart
            assert (await bob.unregister()).status == 204
        # Bob's alias is gone upstream, Alice's stays (and so does the gateway's registration, which is hers too).
        assert list(upstream_aliases(stack, gateway.cuid)) == [alice_upstream]
        # The upstream server loses the gateway's registration: Alice is told, as directly, and registers again.
        upstream = f"https://127.0.0.1:{stack.server_config.data_port}"
        gateway_files = TlsFiles(ca, gateway.client_credential.cert_path, gateway.client_credential.key_path)
        async with DataChannelClient(upstream, gateway_files, server_hostname="localhost") as itself:
            assert (await itself.unregister()).status == 204
        async with DataChannelClient(base, alice_files, server_hostname="localhost") as alice:
            with pytest.raises(DataChannelError) as lost:
                await alice.aliases()
            assert lost.value.status == 404 and gateway.cuid not in json.dumps(lost.value.error)
            assert (await alice.register()).status == 201
            assert await alice.aliases() == []
