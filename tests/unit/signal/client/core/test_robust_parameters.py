"""The client's side of RFC 9362: the robust-transmission attributes parsed from the server's session
configuration, the values in force per set (idle vs mitigating), and PUT bodies carrying them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from opendots.model import encode_signal
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.requests import DotsResponse, RequestKind
from opendots.signal.client.core.timing import ConfigValueError, SessionParameters, SignalConfig, config_put_body
from opendots.store.client_state import ClientStateStore
from tests.helpers import FIXTURES
from tests.helpers.client_core import CUID, T0, config_body, connected_core, events, grant
from tests.helpers.signal_harness import CONFIG, Harness, make_harness

ROBUST = "ietf-dots-robust-trans"


@pytest.fixture
def store(tmp_path: Path) -> ClientStateStore:
    return ClientStateStore(tmp_path / "client-state.db", CUID)


@pytest.fixture
def server(tmp_path: Path) -> Harness:
    return make_harness(tmp_path)


def answer_config_get(core: DotsClientCore, body: dict) -> None:
    core.connected(T0, reliable=False, server="dots.example")
    get = next(e.request for e in events(core) if e.request.kind is RequestKind.CONFIG_GET)
    core.handle_response(get, DotsResponse("2.05", body, 3600), T0)
    events(core)


def test_client_holds_the_values_in_force_the_server_reports_per_set(store: ClientStateStore, server: Harness):
    """RFC 9362 §3 Figure 2 installed on our server; the client reads the GET body the server core renders and
    holds the same values in force as the server does for its session, idle then mitigating (RFC 9132 §4.5)."""
    figure2 = json.loads((FIXTURES / "rfc9362" / "fig02-config-put-robust-transmission.json").read_text())
    figure2[CONFIG]["mitigating-config"][f"{ROBUST}:non-partial-timeout"] = {"current-value-decimal": "90.00"}
    assert server.request("PUT", ("config", "sid=1"), body=figure2).code == "2.01"
    core = DotsClientCore(CUID, store, now=T0)
    answer_config_get(core, server.request("GET", ("config", "sid=1")).body)
    idle = core.robust_transmission
    assert idle == server.server.robust_transmission("alpha")
    assert (idle.max_payloads, idle.non_receive_timeout, idle.non_partial_timeout) == (15, 4.0, 223.0)
    grant(core, T0 + 1)
    assert core.mitigating
    assert core.robust_transmission.non_partial_timeout == 90.0
    assert core.robust_transmission.probing_rate == 15  # Figure 2's mitigating-config probing-rate
    assert core.config.idle.non_partial_timeout == Decimal("223.00")  # reported, so held as given


def test_a_server_without_rfc9362_gives_values_derived_from_its_parameters(store: ClientStateStore):
    """RFC 9362 §3 defaults: a GET without the attributes (an RFC 9132-only server) leaves them derived from the
    server's ack-timeout and max-retransmit."""
    body = config_body(30, 3)
    body[CONFIG]["idle-config"]["ack-timeout"] = {"current-value-decimal": "4.00"}
    core = DotsClientCore(CUID, store, now=T0)
    answer_config_get(core, body)
    robust = core.robust_transmission
    assert (robust.max_payloads, robust.non_max_retransmit, robust.non_timeout) == (10, 3, 4.0)
    assert robust.non_receive_timeout == 8.0 and robust.non_partial_timeout == 4 * 7 * 1.5 + 200 + 4


def test_a_bad_reported_value_is_refused() -> None:
    body = {CONFIG: {"idle-config": {f"{ROBUST}:non-timeout": {"current-value-decimal": "soon"}}}}
    with pytest.raises(ConfigValueError, match="non-timeout"):
        SignalConfig.from_body(body)
    body = {CONFIG: {"idle-config": {f"{ROBUST}:max-payloads": {"current-value": -3}}}}
    with pytest.raises(ConfigValueError, match="max-payloads"):
        SignalConfig.from_body(body)


def test_client_put_body_carries_robust_attributes_and_our_server_accepts_it(store: ClientStateStore, server):
    """The body `config set --max-payloads 20 --non-timeout 3` sends: RFC 9362 members, valid YANG-JSON, 2.01."""
    body = config_put_body(
        idle={"max_payloads": 20, "non_timeout": "3", "non_partial_timeout": "120.5"},
        mitigating={"max_payloads": 20},
    )
    idle = body[CONFIG]["idle-config"]
    assert idle == {
        f"{ROBUST}:max-payloads": {"current-value": 20},
        f"{ROBUST}:non-timeout": {"current-value-decimal": "3.00"},
        f"{ROBUST}:non-partial-timeout": {"current-value-decimal": "120.50"},
    }
    encode_signal(body)  # validates against ietf-dots-robust-trans
    core = connected_core(store)
    request = core.config_set(idle=idle_values(body), mitigating={"max_payloads": 20})
    assert server.request("PUT", ("config", f"sid={request.sid}"), body=request.body).code == "2.01"
    assert server.server.robust_transmission("alpha").non_timeout == 3.0
    with pytest.raises(ConfigValueError, match="unknown session parameter"):
        config_put_body(idle={"max_payload": 3})


def idle_values(body: dict) -> dict:
    """Back from a PUT body's idle-config to {attribute: value} (what the CLI hands the core)."""
    parameters = SessionParameters.from_yang(body[CONFIG]["idle-config"])
    return {name: getattr(parameters, name) for name in ("max_payloads", "non_timeout", "non_partial_timeout")}


def test_session_display_shows_derived_values_not_none() -> None:
    shown = SessionParameters().in_force()
    assert shown["non_partial_timeout"] == "223.00" and shown["max_payloads"] == "10"
    assert "None" not in shown.values()


def test_a_reported_non_probing_wait_equal_to_its_derivation_keeps_its_jitter() -> None:
    """RFC 9362 §3 Implementation Note 1: a derived non-probing-wait is a base value with jitter; an explicit one
    (RFC 9177 §7.2 note) is used as is. Our server shows the derived value as current-value."""
    derived = {CONFIG: {"idle-config": {f"{ROBUST}:non-probing-wait": {"current-value-decimal": "223.00"}}}}
    assert not SignalConfig.from_body(derived).robust(False).explicit_probing_wait
    explicit = {CONFIG: {"idle-config": {f"{ROBUST}:non-probing-wait": {"current-value-decimal": "100.00"}}}}
    robust = SignalConfig.from_body(explicit).robust(False)
    assert robust.explicit_probing_wait and robust.non_probing_wait == 100.0


def test_extreme_values_a_server_reports_stay_cheap_and_finite() -> None:
    """uint16 non-max-retransmit and the largest decimal64 seconds: 2^65535 would overflow decimal64 (and cost
    work); the derivation caps the exponent and the result instead of failing."""
    largest = "92233720368547758.07"
    body = {
        CONFIG: {
            "idle-config": {
                "max-retransmit": {"current-value": 65535},
                "ack-random-factor": {"current-value-decimal": largest},
                f"{ROBUST}:non-max-retransmit": {"current-value": 65535},
                f"{ROBUST}:non-timeout": {"current-value-decimal": largest},
            }
        }
    }
    robust = SignalConfig.from_body(body).robust(False)
    assert robust.non_max_retransmit == 65535
    assert robust.non_partial_timeout == float(Decimal(largest))
    assert robust.non_receive_timeout >= robust.non_timeout
