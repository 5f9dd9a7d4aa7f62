"""Every body the core produces passes the YANG validation of opendots.model, so it can always be encoded."""

from __future__ import annotations

from pathlib import Path

from opendots.mitigate.base import Counters
from opendots.model import encode_signal, validate_signal
from opendots.signal.server.core import MitigationChanged, Redirection, Status
from tests.helpers.signal_harness import ALPHA_CUID, BRAVO, BRAVO_CUID, figure, make_harness, scope_body


def test_all_response_and_notification_bodies_validate(tmp_path: Path):
    h = make_harness(tmp_path)
    bodies = []

    def keep(response):
        if response.body is not None:
            bodies.append(response.body)
        bodies.extend(e.snapshot for e in h.events if isinstance(e, MitigationChanged))
        return response

    keep(h.put(1, figure("figure07")))
    keep(h.put(2, scope_body(target_prefix=["192.0.2.0/28"], target_port_range=[{"lower-port": 1, "upper-port": 9}])))
    keep(h.put(0, scope_body(target_prefix=["192.0.2.0/26"])))  # lower mid overlap: 4.09 with conflict-scope
    keep(h.put(3, scope_body(target_fqdn=["www.example.com"], trigger_mitigation=False, lifetime=-1)))
    keep(h.put(9, scope_body(target_prefix=["192.0.2.0/24"]), cuid=BRAVO_CUID, peer=BRAVO))  # cross-client 4.09
    keep(h.put(9, figure("figure07"), cuid=ALPHA_CUID, peer=BRAVO))  # cuid collision
    bodies.extend(e.snapshot for e in h.report_counters(f"{ALPHA_CUID}/1", Counters(1, 2, 3, 4)))
    for status in Status:
        bodies.extend(e.snapshot for e in h.report_status(f"{ALPHA_CUID}/1", status))
    keep(h.put(1, figure("figure16"), if_match_empty=True))
    keep(h.get())
    keep(h.get(query=("c=n",)))
    keep(h.get(query=("c=c",)))
    keep(h.delete(1))
    keep(h.request("GET", ("config",)))
    h.server.set_redirection(Redirection("alt.example", ("2001:db8::1",), 60))
    keep(h.get())
    h.server.set_redirection(None)
    bodies.extend(e.snapshot for e in h.advance(3600 * 2) if isinstance(e, MitigationChanged))
    assert len(bodies) > 15
    for body in bodies:
        validate_signal(body)
        assert encode_signal(body)
