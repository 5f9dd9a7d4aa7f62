"""Real processes over HTTPS on loopback: a PUT of a whole registration or a whole 'aliases'/'acls' list through a
client-domain `opendots gateway` has RFC 8040 §4.5's meaning on the client's own entries, and touches no other
client's (RFC 8783 §3.3; upstream every client's entries are in the gateway's one registration)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opendots.config import TlsFiles
from opendots.data.client import DataChannelClient, DataChannelError
from opendots.lab.processes import opendots_argv
from opendots.pki.certs import TestPki
from opendots.pki.cuid import cuid_from_certificate
from tests.helpers.gateway import authorization, chain_running, in_front_of, server_admin, stack_with_admin

MODULE = "ietf-dots-data-channel"
RULE = {
    "name": "r",
    "matches": {"ipv6": {"destination-ipv6-network": "2001:db8::/48"}},
    "actions": {"forwarding": "drop"},
}


async def test_a_put_of_a_clients_whole_list_or_registration_replaces_its_own_entries_and_no_one_elses(
    tmp_path: Path,
) -> None:
    with stack_with_admin(tmp_path) as stack:
        gateway = in_front_of(stack, "client-domain", only_gateway=True, extra={"data_channel": True})
        bob_credential = TestPki(stack.directory).issue_client("bob")
        gateway.serve(authorization("bob", cuid_from_certificate(bob_credential.cert_path.read_bytes())))
        ca = stack.directory / "ca.crt"
        alice_files = TlsFiles(ca, stack.directory / "client.crt", stack.directory / "client.key")
        bob_files = TlsFiles(ca, bob_credential.cert_path, bob_credential.key_path)

        def upstream_names() -> list[str]:
            [client] = server_admin(stack, "client-details", client=gateway.cuid)["clients"]
            return sorted(entry["name"].split("-", 1)[1] for entry in client["aliases"] + client["acls"])

        with chain_running(stack, gateway):
            base = f"https://127.0.0.1:{gateway.data_port}"
            async with (
                DataChannelClient(base, alice_files, server_hostname="localhost") as alice,
                DataChannelClient(base, bob_files, server_hostname="localhost") as bob,
            ):
                for client in (alice, bob):
                    assert (await client.register()).status == 201
                    await client.create_alias({"name": "web", "target-prefix": ["203.0.113.0/28"]})
                await alice.create_alias({"name": "old", "target-prefix": ["203.0.113.32/28"]})
                await alice.create_acls([{"name": "keep", "aces": {"ace": [RULE]}}])
                aliases = f"/dots-client={alice.cuid}/aliases"
                web = {"name": "web", "target-prefix": ["203.0.113.64/28"]}
                new = {"name": "new", "target-prefix": ["198.51.100.0/28"]}
                put = await alice.request("PUT", aliases, {f"{MODULE}:aliases": {"alias": [web, new]}})
                assert put.status == 204
                # 'web' replaced, 'new' created, 'old' deleted; her ACL and Bob's 'web' untouched.
                mine = {alias["name"]: alias["target-prefix"] for alias in await alice.aliases(content="config")}
                assert mine == {"web": web["target-prefix"], "new": new["target-prefix"]}
                assert [acl["name"] for acl in await alice.acls(content="config")] == ["keep"]
                assert [alias["target-prefix"] for alias in await bob.aliases()] == [["203.0.113.0/28"]]
                assert upstream_names() == ["keep", "new", "web", "web"]

                # An entry refused upstream: the PUT is all or nothing, what it changed before is put back.
                bad = {"name": "bad", "target-prefix": ["not-a-prefix"]}
                with pytest.raises(DataChannelError) as refused:
                    await alice.request(
                        "PUT",
                        aliases,
                        {f"{MODULE}:aliases": {"alias": [{**web, "target-prefix": ["192.0.2.0/28"]}, bad]}},
                    )
                assert refused.value.status == 400 and "bad" in str(refused.value.error)
                mine = {alias["name"]: alias["target-prefix"] for alias in await alice.aliases(content="config")}
                assert mine == {"web": web["target-prefix"], "new": new["target-prefix"]}

                # The whole registration: ACLs as in the body, in its order, and no alias at all.
                acls = [{"name": name, "aces": {"ace": [RULE]}} for name in ("second", "first")]
                registration = {f"{MODULE}:dots-client": [{"cuid": alice.cuid, "acls": {"acl": acls}}]}
                assert (await alice.request("PUT", f"/dots-client={alice.cuid}", registration)).status == 204
                assert await alice.aliases() == []
                assert [acl["name"] for acl in await alice.acls(content="config")] == ["second", "first"]
                assert [alias["name"] for alias in await bob.aliases()] == ["web"]
                assert upstream_names() == ["first", "second", "web"]
                # `opendots gateway status` shows each client's prefix upstream.
                [client] = server_admin(stack, "client-details", client=gateway.cuid)["clients"]
                prefixes = {acl["name"].split("-", 1)[0] for acl in client["acls"]}
                shown = subprocess.run(
                    opendots_argv("gateway", "status", "--config", str(gateway.config_path)),
                    capture_output=True, text=True, timeout=30, check=False,
                )  # fmt: skip
                assert shown.returncode == 0, shown.stderr
                [line] = [line for line in shown.stdout.splitlines() if f"cuid={alice.cuid}" in line]
                assert line.split() == ["client", f"cuid={alice.cuid}", f"{prefixes.pop()}-", "registered"]
                assert any(line.split()[0] == "bob" for line in shown.stdout.splitlines())
