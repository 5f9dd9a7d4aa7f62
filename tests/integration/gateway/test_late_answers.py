"""A relayed mitigation request the gateway gave up on (answered 5.03 downstream) that reaches the upstream server
after all, through real processes on loopback (RFC 9132 §4.4.1, §4.7)."""

from __future__ import annotations

from pathlib import Path

from opendots.lab.processes import wait_for
from tests.helpers.gateway import chain_running, in_front_of, server_admin, stack_with_admin

WITHDRAWN = "dots-client-withdrawn-mitigation"


def test_a_put_answered_5_03_downstream_but_accepted_upstream_later_is_withdrawn_upstream(tmp_path: Path) -> None:
    """The upstream server stops while the gateway holds a mitigation (its session is kept, RFC 9132 §4.7): a new
    request finds no answer and its client gets 5.03, but the request stays queued on the DTLS session being
    re-established and reaches the server when it is back. The gateway withdraws it there: nothing stands upstream
    under its identity that no downstream mitigation stands for."""
    with stack_with_admin(tmp_path) as stack:
        gateway = in_front_of(stack, "client-domain")
        with chain_running(stack, gateway):
            held = stack.cli("client", "mitigate", "--target-prefix", "203.0.113.20/32", "--mid", "5")
            assert held.returncode == 0, held.stderr
            [kept] = [m["mid"] for m in server_admin(stack, "mitigations")["mitigations"]]
            stack.stop_server()
            refused = stack.cli("client", "mitigate", "--target-prefix", "203.0.113.21/32", "--mid", "6")
            assert refused.returncode != 0 and "5.03" in refused.stderr, refused.stderr
            stack.start_server()  # with its database: the held mitigation is still there

            def late_one_withdrawn() -> bool:
                status = gateway.status() or {}
                return status.get("counters", {}).get("late-withdrawn", 0) >= 1

            wait_for(late_one_withdrawn, 40, "the late PUT withdrawn upstream")

            def active() -> list[int]:
                mitigations = server_admin(stack, "mitigations")["mitigations"]
                return [m["mid"] for m in mitigations if m["status"] != WITHDRAWN]

            assert wait_for(lambda: active() == [kept] and active(), 20, "only the held mitigation upstream")
            status = gateway.status()
            assert status is not None
            assert [link["downstream"] for link in status["links"]] == [f"cuid={stack.cuid}/mid=5"]


def test_a_mitigation_the_restarted_upstream_server_lost_is_re_established_under_its_upstream_mid(
    tmp_path: Path,
) -> None:
    """The upstream server restarts without its database while the gateway's session is kept (heartbeats every
    30 s: nothing missed yet); the DTLS layer re-opens the session to it, and the relayed observation finds the
    mitigation gone (4.04): the gateway PUTs it again under the same upstream mid (RFC 9132 §4.7), and the client
    re-creating it after its 4.04 reaches that same mid, not a new one beside it."""
    with stack_with_admin(tmp_path) as stack:
        gateway = in_front_of(stack, "client-domain")
        with chain_running(stack, gateway):
            held = stack.cli("client", "mitigate", "--target-prefix", "203.0.113.20/32", "--mid", "5")
            assert held.returncode == 0, held.stderr
            wait_for(lambda: (s := gateway.status()) and s["observers"] == 1, 20, "the relayed observation")
            [kept] = [m["mid"] for m in server_admin(stack, "mitigations")["mitigations"]]
            stack.stop_server()
            for stale in stack.directory.glob("opendots.db*"):
                stale.unlink()
            stack.start_server()

            def active() -> list[int]:
                mitigations = server_admin(stack, "mitigations")["mitigations"]
                return [m["mid"] for m in mitigations if m["status"] != WITHDRAWN]

            assert wait_for(lambda: active() == [kept] and active(), 60, "the mitigation back under its mid")
            status = gateway.status()
            assert status is not None and status["counters"].get("reestablished", 0) >= 1
            assert [link["upstream"].rsplit("=", 1)[1] for link in status["links"]] == [str(kept)]
