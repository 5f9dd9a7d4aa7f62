"""Telemetry setups a client-domain gateway relayed, back upstream after the upstream server lost them (real
processes on loopback; RFC 9244 §7: setups are not tied to a session; RFC 9132 §4.7)."""

from __future__ import annotations

from pathlib import Path

from opendots.lab.processes import wait_for
from tests.helpers.gateway import chain_running, client_details, in_front_of, stack_with_admin


def test_the_telemetry_setups_a_restarted_upstream_server_lost_are_sent_again_with_its_mitigations(
    tmp_path: Path,
) -> None:
    """The upstream server restarts without its database while the gateway's session is kept: the relayed
    observation finds the mitigation gone (4.04), and the gateway PUTs it again, and the client's telemetry setups
    with it under their upstream tsids; the client itself, whose session with the gateway never broke, re-sends
    nothing."""
    with stack_with_admin(tmp_path) as stack:
        gateway = in_front_of(stack, "client-domain")
        with chain_running(stack, gateway):
            setup = stack.cli("client", "telemetry", "setup", "set", "--measurement-interval", "hour",
                              "--unit-class", "packet-ps")  # fmt: skip
            assert setup.returncode == 0, setup.stderr + setup.stdout
            pipe = stack.cli("client", "telemetry", "pipe", "set", "--link", "uplink=10:Gbps")
            assert pipe.returncode == 0, pipe.stderr + pipe.stdout
            held = stack.cli("client", "mitigate", "--target-prefix", "203.0.113.20/32", "--mid", "5")
            assert held.returncode == 0, held.stderr
            wait_for(lambda: (s := gateway.status()) and s["observers"] == 1, 20, "the relayed observation")

            def setups() -> list[tuple[str, int, str]]:
                found = client_details(stack, "gw1")["telemetry-setups"]
                return sorted((s["cuid"], s["tsid"], next(k for k in s if k not in ("cuid", "tsid"))) for s in found)

            before = setups()
            assert [kind for _, _, kind in before] == ["current-config", "total-pipe-capacity"], before
            stack.stop_server()
            for stale in stack.directory.glob("opendots.db*"):
                stale.unlink()
            stack.start_server()
            assert wait_for(lambda: setups() == before, 60, "the setups back upstream under their tsids")
            (config,) = [s for s in client_details(stack, "gw1")["telemetry-setups"] if "current-config" in s]
            assert config["current-config"]["measurement-interval"] == "hour"
            status = gateway.status()
            assert status is not None and status["counters"].get("telemetry-reestablished", 0) == 2
