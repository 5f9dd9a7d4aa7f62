"""Q-Block1/Q-Block2 options (RFC 9177, critical) are understood only where the transport took care of them: elsewhere
they get 4.02 Bad Option like any unrecognised critical option (RFC 7252 §5.4.1), so a client falls back to
Block1/Block2 (RFC 9177 §4.1)."""

from __future__ import annotations

import aiocoap
import pytest

from opendots.transport.coap_checks import refusal_for


@pytest.mark.parametrize("number", [19, 31])
def test_q_block_options_get_4_02_unless_the_transport_handles_q_block_rfc9177_4_1(number: int) -> None:
    request = aiocoap.Message(code=aiocoap.GET)
    refused = refusal_for(request, [11, number])
    assert refused is not None and refused.code == aiocoap.BAD_OPTION
    assert refusal_for(request, [11, number], qblock=True) is None


def test_other_unrecognised_critical_options_still_get_4_02_where_q_block_is_handled() -> None:
    refused = refusal_for(aiocoap.Message(code=aiocoap.GET), [19, 25], qblock=True)
    assert refused is not None and refused.code == aiocoap.BAD_OPTION
