"""Large mitigation requests through `opendots gateway` (real processes on loopback): a body of 300 targets comes to
the gateway block-wise (Q-Block1 from our agent, RFC 9177; Block1 from a plain CoAP client, RFC 7959 §2.5), is
reassembled there and relayed whole, and the upstream leg sends it block-wise again (RFC 9132 §4.2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import aiocoap
import pytest

from opendots.lab.processes import ProcessStack
from opendots.model import encode_signal
from tests.helpers.gateway import chain_running, in_front_of, stack_with_admin
from tests.helpers.gateway_chain import chain_in_loop
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import request

TARGETS = [f"2001:db8::{n:x}/128" for n in range(1, 301)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with stack_with_admin(tmp_path) as stack:
        yield stack


def test_a_mitigation_of_300_targets_goes_through_a_client_domain_gateway_whole_rfc9132_s4_2(
    stack: ProcessStack,
) -> None:
    gateway = in_front_of(stack, "client-domain")
    with chain_running(stack, gateway):
        args = [arg for prefix in TARGETS for arg in ("--target-prefix", prefix)]
        result = stack.cli("client", "mitigate", *args, "--mid", "5", "--json", timeout=60)
        assert result.returncode == 0, result.stderr + result.stdout
        answer = json.loads(result.stdout)
        assert answer[SCOPE]["scope"][0]["mid"] == 5
        assert stack.server_config.admin_socket is not None
        from opendots.signal.client.shell.control import ControlClient

        with ControlClient(stack.server_config.admin_socket, timeout=10.0) as admin:
            held = admin.call("mitigations")["mitigations"]
        assert [(m["client"], m["cuid"]) for m in held] == [("gw1", gateway.cuid)]
        assert held[0]["target-prefix"] == TARGETS
        # The answer to a GET of it is as large: it comes back to the client too.
        (entry,) = stack.status_entries()
        assert (entry["mid"], entry["target-prefix"]) == (5, TARGETS)


async def test_a_block1_mitigation_request_of_300_targets_is_reassembled_by_the_gateway_and_relayed_rfc7959_s2_5(
    pki_dir: Path, tmp_path: Path
) -> None:
    """A plain CoAP client (aiocoap: Block1 for a body above 1024 bytes, CON) through the gateway."""
    body = {SCOPE: {"scope": [{"target-prefix": TARGETS, "lifetime": 3600}]}}
    async with chain_in_loop(pki_dir, tmp_path) as chain:
        put = await request(chain.client, aiocoap.PUT, f"{chain.uri}/mitigate/cuid={chain.cuid}/mid=9", body)
        assert put.code == aiocoap.CREATED, put.payload
        assert len(encode_signal(body)) > 1024
        (held,) = list(chain.server.service.core.table)
        assert sorted(str(prefix) for prefix in held.targets.target_prefixes) == sorted(TARGETS)
