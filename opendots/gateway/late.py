"""Upstream answers that come after the gateway gave up waiting (sans-I/O decision, used by the shell).

When a relayed request gets no answer within the upstream request timeout the downstream client is answered 5.03
(RFC 9132 §4.4.1: the server side is unavailable) and the relay forgets the request. aiocoap does not take the
request back, though: a CON is retransmitted (RFC 7252 §4.2) and a request queued on a DTLS session being
re-established is sent once the handshake completes, e.g. to an upstream server that restarted. A mitigation PUT
accepted that way would stand upstream under the gateway's identity with no downstream mitigation behind it, told
5.03 (not created): nobody would ever withdraw it. `late_withdrawal` says when such a late acceptance must be taken
back with a DELETE of the same upstream 'mid'.
"""

from __future__ import annotations

from opendots.gateway.relay import Outbound, RelayCore


def late_withdrawal(core: RelayCore, sent: Outbound, code: str) -> Outbound | None:
    """The DELETE withdrawing SENT (a PUT answered 5.03 downstream) now that the upstream server answered CODE;
    None when nothing is to be withdrawn: it was refused, its upstream 'mid' is (again) a link's, or a newer PUT of
    the same downstream mitigation with that upstream 'mid' is on its way (its answer decides)."""
    if sent.method != "PUT" or sent.mid is None or sent.upstream_mid is None or not code.startswith("2."):
        return None
    key = (sent.client, sent.cuid, sent.mid)
    link = core.links.get(key)
    if link is not None and link.upstream_mid == sent.upstream_mid:
        return None  # a retransmission of the client's got through meanwhile, or a re-establishment: it stands
    in_flight = core._in_flight.get(key, 0) > 0
    if in_flight and (not core.client_domain or core._pending.get(key) == sent.upstream_mid):
        return None
    core.counters["late-withdrawn"] += 1
    return core._withdrawal(sent)
