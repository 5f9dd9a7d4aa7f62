"""RFC 9244 telemetry through `opendots gateway` (real processes on loopback): the agent's telemetry setup and its
pre-or-ongoing-mitigation report reach the server through a client-domain gateway under the gateway's cuid and
numbers of its own, and come back to the client under its own (RFC 9244 §5.2, §7.1, §8.2; RFC 9132 §4.4.1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.lab.processes import ProcessStack
from tests.helpers.gateway import chain_running, client_details, in_front_of, stack_with_admin

SETUP = "ietf-dots-telemetry:telemetry-setup"
TM = "ietf-dots-telemetry:telemetry"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with stack_with_admin(tmp_path) as stack:
        yield stack


def test_a_telemetry_setup_and_report_go_through_a_client_domain_gateway_under_its_cuid_rfc9244_s7_s8(
    stack: ProcessStack,
) -> None:
    gateway = in_front_of(stack, "client-domain")
    with chain_running(stack, gateway):
        setup = stack.cli("client", "telemetry", "setup", "set", "--measurement-interval", "hour",
                          "--unit-class", "packet-ps")  # fmt: skip
        assert setup.returncode == 0, setup.stderr + setup.stdout
        report = stack.cli("client", "telemetry", "report", "--target-prefix", "203.0.113.0/24",
                           "--total-attack-traffic", "25000:pps", "--tmid", "12")  # fmt: skip
        assert report.returncode == 0, report.stderr + report.stdout
        # The server holds them as the gateway's, under the gateway's cuid and upstream numbers of its own.
        held = client_details(stack, "gw1")
        assert [(s["cuid"], s["current-config"]["measurement-interval"]) for s in held["telemetry-setups"]] == [
            (gateway.cuid, "hour")
        ]
        (reported,) = held["telemetry-reports"]
        assert reported["cuid"] == gateway.cuid and reported["target"]["target-prefix"] == ["203.0.113.0/24"]
        assert reported["total-attack-traffic"][0]["current-g"] == "25000"
        # The client sees its own: its tmid, its setups.
        shown = stack.cli("client", "telemetry", "show", "--json")
        assert shown.returncode == 0, shown.stderr
        body = json.loads(shown.stdout)
        assert [entry["tmid"] for entry in body[TM]["pre-or-ongoing-mitigation"]] == [12]
        installed = [entry for entry in body[SETUP]["telemetry"] if "tsid" in entry]
        assert [entry["current-config"]["measurement-interval"] for entry in installed] == ["hour"]
        # Deleting every report of the cuid takes the client's own upstream (one by one), nothing else.
        deleted = stack.cli("client", "telemetry", "delete")
        assert deleted.returncode == 0, deleted.stderr + deleted.stdout
        assert client_details(stack, "gw1")["telemetry-reports"] == []
