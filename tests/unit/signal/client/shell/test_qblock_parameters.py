"""The client's Q-Block engine runs on the RFC 9362 values in force for its session (RFC 9362 §3, RFC 9177 §7.2):
those the server reported, or derived from the set's RFC 9132 values as the server derives them."""

from __future__ import annotations

from decimal import Decimal

from opendots.signal.client.core.timing import SessionParameters, SignalConfig
from opendots.signal.client.shell.coap import qblock_parameters
from opendots.transport.qblock import QBlockParameters


def test_the_values_a_server_reported_drive_the_client_engine_rfc9362_3() -> None:
    reported = SessionParameters(max_payloads=20, non_max_retransmit=3, non_timeout=Decimal("1.5"))
    params = qblock_parameters(reported)
    assert params is not None
    assert (params.max_payloads, params.non_max_retransmit, params.non_timeout) == (20, 3, 1.5)
    assert params.receive_timeout >= 1.5 * params.ack_random_factor + 1  # RFC 9177 §7.2's floor, derived


def test_without_rfc_9362_values_the_set_in_force_derives_them_like_the_server_rfc9362_3() -> None:
    config = SignalConfig(idle=SessionParameters(ack_timeout=Decimal(3)), mitigating=SessionParameters())
    idle, mitigating = qblock_parameters(config.active(False)), qblock_parameters(config.active(True))
    assert idle is not None and mitigating is not None
    assert idle.non_timeout == 3.0 and mitigating.non_timeout == 2.0  # NON_TIMEOUT follows ACK_TIMEOUT
    assert mitigating == QBlockParameters(**SessionParameters().robust().engine_values())
    assert idle.max_payloads == mitigating.max_payloads == 10
