"""The Q-Block support probe of RFC 9177 §4.1 under loss, at our client against our server over a real DTLS session.

The probe is a CON exchange: its retransmissions (RFC 7252 §4.2) are its retries. A caller that stops waiting for it
(a request's probe timeout) must not end it: before, the exchange was cancelled at the caller's timeout, the next
request sent a probe of its own, and that CON queued behind (NSTART) the ones before; bench/blocks.py at 30 % loss
saw sessions whose ten probes all went unanswered after the first was lost."""

from __future__ import annotations

import aiocoap

from opendots.transport import probe_qblock
from opendots.transport.aiocoap_hooks import find_message_manager, find_request_interface
from opendots.transport.qblock import QBLOCK2


async def test_a_probe_whose_first_datagram_is_lost_is_retransmitted_and_later_callers_share_it_rfc9177_4_1(
    big_server, client_context
):
    uri = f"coaps://127.0.0.1:{big_server.port}/.well-known/core"
    message = aiocoap.Message(code=aiocoap.GET, uri=uri)
    await find_request_interface(client_context, message)
    manager = await find_message_manager(client_context, message.remote)
    assert manager is not None
    interface = manager.message_interface
    original = interface.send
    probes: list[aiocoap.Message] = []  # every transmission of a probe, retransmissions included

    def lose_the_first_probe_datagram(out: aiocoap.Message) -> None:
        if out.code == aiocoap.GET and out.opt.get_option(QBLOCK2):
            probes.append(out)
            if len(probes) == 1:
                return  # lost on the path
        original(out)

    interface.send = lose_the_first_probe_datagram
    # The caller gives up waiting before the retransmission (ACK_TIMEOUT 2-3 s): support not known yet...
    assert await probe_qblock(client_context, uri, timeout=0.5) is None
    # ...but the exchange goes on: the next caller waits on it, and its retransmission is answered.
    assert await probe_qblock(client_context, uri, timeout=10.0) is True
    assert len(probes) == 2 and probes[0].token == probes[1].token  # one exchange, sent again: no second probe
