"""RFC 9362 robust-transmission attributes in the session configuration (RFC 9132 §4.5): GET rendering, PUT
validation, derived values (RFC 9177 §7.2), persistence and the values in force the Q-Block engine reads."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.model import decode_signal, encode_signal
from opendots.signal.server.core import Limits, ParameterSet, RobustTransmission, SessionConfig
from tests.helpers import FIXTURES
from tests.helpers.signal_harness import CONFIG, Harness, make_harness, scope_body

ROBUST = "ietf-dots-robust-trans"
FIGURE_2 = FIXTURES / "rfc9362" / "fig02-config-put-robust-transmission.json"
INTEGERS = ("max-payloads", "non-max-retransmit")
DECIMALS = ("non-timeout", "non-receive-timeout", "non-probing-wait", "non-partial-timeout")


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path)


def figure_2() -> dict[str, Any]:
    return json.loads(FIGURE_2.read_text(encoding="utf-8"))


def robust_put(set_name: str = "idle-config", **values: int | str) -> dict[str, Any]:
    """A PUT body with RFC 9362 attributes (underscored names; strings are decimal64 seconds)."""
    members = {
        f"{ROBUST}:{name.replace('_', '-')}": (
            {"current-value-decimal": value} if isinstance(value, str) else {"current-value": value}
        )
        for name, value in values.items()
    }
    return {CONFIG: {set_name: members}}


def get_config(harness: Harness, sid: int | None = None) -> dict[str, Any]:
    response = harness.request("GET", ("config",) if sid is None else ("config", f"sid={sid}"))
    assert response.code == "2.05"
    return response.body[CONFIG]


def current(node: dict[str, Any]) -> Any:
    return node.get("current-value", node.get("current-value-decimal"))


def test_rfc9362_figure2_put_is_accepted_and_get_shows_its_values(harness: Harness):
    """RFC 9362 §3 Figure 2: max-payloads 15 in both sets; non-probing-wait and non-partial-timeout, not conveyed,
    are computed as RFC 9177 §7.2 says (with DOTS's max-retransmit 3: 2 x 7 x 1.5 + 2 x 100 + 2 = 223 s)."""
    assert harness.request("PUT", ("config", "sid=123"), body=figure_2()).code == "2.01"
    config = get_config(harness, 123)
    for set_name in ("mitigating-config", "idle-config"):
        values = {member.removeprefix(f"{ROBUST}:"): current(node) for member, node in config[set_name].items()}
        assert values["max-payloads"] == 15
        assert values["non-max-retransmit"] == 3
        assert values["non-timeout"] == "2.00"
        assert values["non-receive-timeout"] == "4.00"
        assert values["non-probing-wait"] == "223.00"
        assert values["non-partial-timeout"] == "223.00"
    assert config["mitigating-config"]["probing-rate"]["current-value"] == 15
    assert harness.server.robust_transmission("alpha") == RobustTransmission(
        max_payloads=15,
        non_max_retransmit=3,
        non_timeout=2.0,
        non_receive_timeout=4.0,
        non_probing_wait=223.0,
        non_partial_timeout=223.0,
        ack_random_factor=1.5,
        probing_rate=5,  # idle-config: Figure 2 sets probing-rate 15 in mitigating-config only
    )


def test_get_renders_min_max_and_current_of_every_attribute_and_round_trips_through_cbor(harness: Harness):
    """RFC 9362 Figure 1: each attribute in each set holds max-value, min-value and current-value (the -decimal
    leaves for seconds); the body validates against ietf-dots-robust-trans and comes back equal from its CBOR
    (keys 32776-32781, RFC 9362 Table 2)."""
    body = harness.request("GET", ("config",)).body
    for set_name in ("mitigating-config", "idle-config"):
        parameters = body[CONFIG][set_name]
        for name in INTEGERS:
            assert set(parameters[f"{ROBUST}:{name}"]) == {"max-value", "min-value", "current-value"}
        for name in DECIMALS:
            assert set(parameters[f"{ROBUST}:{name}"]) == {
                "max-value-decimal",
                "min-value-decimal",
                "current-value-decimal",
            }
    assert body[CONFIG]["idle-config"][f"{ROBUST}:max-payloads"] == {
        "max-value": 50,
        "min-value": 1,
        "current-value": 10,
    }
    assert body[CONFIG]["idle-config"][f"{ROBUST}:non-partial-timeout"] == {
        "max-value-decimal": "600.00",
        "min-value-decimal": "10.00",
        "current-value-decimal": "223.00",
    }
    payload = encode_signal(body)  # validates
    assert decode_signal(payload) == body
    wire_set = cbor2.loads(payload)[30][44]  # signal-config / idle-config
    assert {32776, 32777, 32778, 32779, 32780, 32781} <= set(wire_set)


def test_derived_attributes_follow_the_other_parameters(harness: Harness):
    """RFC 9362 §3 (defaults, Implementation Note 2): non-max-retransmit = max-retransmit, non-timeout = ack-timeout,
    non-receive-timeout = 2 x non-timeout, non-probing-wait/non-partial-timeout recomputed (RFC 9177 §7.2)."""
    body = {CONFIG: {"idle-config": {"ack-timeout": {"current-value-decimal": "3.00"}}}}
    body[CONFIG]["idle-config"]["max-retransmit"] = {"current-value": 4}
    assert harness.request("PUT", ("config", "sid=1"), body=body).code == "2.01"
    idle = get_config(harness)["idle-config"]
    assert current(idle[f"{ROBUST}:non-max-retransmit"]) == 4
    assert current(idle[f"{ROBUST}:non-timeout"]) == "3.00"
    assert current(idle[f"{ROBUST}:non-receive-timeout"]) == "6.00"
    assert current(idle[f"{ROBUST}:non-partial-timeout"]) == "270.50"  # 3 x 15 x 1.5 + 200 + 3
    assert current(idle[f"{ROBUST}:non-probing-wait"]) == "270.50"
    # An explicit value wins over the derivation.
    body[CONFIG]["idle-config"][f"{ROBUST}:non-partial-timeout"] = {"current-value-decimal": "60.00"}
    assert harness.request("PUT", ("config", "sid=2"), body=body).code == "2.01"
    assert current(get_config(harness)["idle-config"][f"{ROBUST}:non-partial-timeout"]) == "60.00"


def test_generic_coap_parameters_give_rfc9362_table1_defaults():
    """RFC 9362 Table 1 (RFC 9177 Table 3) is CoAP's MAX_RETRANSMIT 4: NON_PARTIAL_TIMEOUT 247 s, NON_PROBING_WAIT
    between 247 and 248 s, NON_TIMEOUT_RANDOM between 2 and 3 s, NON_RECEIVE_TIMEOUT 4 s."""
    robust = ParameterSet(max_retransmit=4).robust()
    assert (robust.max_payloads, robust.non_max_retransmit, robust.non_receive_timeout) == (10, 4, 4.0)
    assert robust.non_partial_timeout == 247.0
    rng = random.Random(7)
    waits = [robust.probing_wait(rng) for _ in range(200)]
    assert all(247.0 <= wait <= 248.0 for wait in waits) and len(set(waits)) > 1
    assert all(2.0 <= robust.non_timeout_random(rng) <= 3.0 for _ in range(200))
    assert [robust.receive_wait(n) for n in (1, 2, 3)] == [4.0, 8.0, 16.0]  # doubles per re-request
    # RFC 9177 §7.2 note: an explicit NON_PROBING_WAIT is used without jitter.
    explicit = ParameterSet(non_probing_wait=Decimal("100.00")).robust()
    assert {explicit.probing_wait(rng) for _ in range(20)} == {100.0}


def test_derived_values_stay_in_the_servers_range(harness: Harness):
    """A client may not stretch what the server derives past its limits: max-retransmit 15 with ack-timeout 30 s
    would keep a half-received body for 17 days (30 x 32767 x 1.5 + 230 s); the server holds it to its maximum."""
    body = {
        CONFIG: {
            "idle-config": {
                "max-retransmit": {"current-value": 15},
                "ack-timeout": {"current-value-decimal": "30.00"},
            }
        }
    }
    assert harness.request("PUT", ("config", "sid=1"), body=body).code == "2.01"
    idle = get_config(harness)["idle-config"]
    assert current(idle[f"{ROBUST}:non-partial-timeout"]) == "600.00"
    assert current(idle[f"{ROBUST}:non-probing-wait"]) == "600.00"
    assert current(idle[f"{ROBUST}:non-timeout"]) == "30.00"
    assert current(idle[f"{ROBUST}:non-max-retransmit"]) == 15
    assert harness.server.robust_transmission("alpha").non_partial_timeout == 600.0


OUT_OF_RANGE = [
    ("max_payloads", 0, "0"),
    ("max_payloads", 51, "51"),
    ("non_max_retransmit", 16, "16"),
    ("non_timeout", "0.50", "0.50"),
    ("non_timeout", "30.01", "30.01"),
    ("non_receive_timeout", "300.50", "300.50"),
    ("non_probing_wait", "9.99", "9.99"),
    ("non_partial_timeout", "601.00", "601.00"),
]


@pytest.mark.parametrize("set_name", ["idle-config", "mitigating-config"])
@pytest.mark.parametrize(("attribute", "value", "shown"), OUT_OF_RANGE)
def test_out_of_range_attribute_gets_4_22_naming_it(harness: Harness, set_name, attribute, value, shown):
    """RFC 9132 §4.5.2 (applied to RFC 9362's attributes): a value outside [min-value, max-value] gets 4.22, the
    diagnostic names set, attribute and value, and nothing is installed or stored."""
    response = harness.request("PUT", ("config", "sid=1"), body=robust_put(set_name, **{attribute: value}))
    assert response.code == "4.22"
    assert f"{set_name}/{ROBUST}:{attribute.replace('_', '-')}={shown}" in response.diagnostic
    assert harness.server.session_config("alpha") == SessionConfig()
    assert harness.dump()["signal_session_configs"] == []


def test_max_payloads_is_one_value_for_both_sets(harness: Harness):
    """RFC 9362 §3: conveyed in both sets it MUST be the same; conveyed in one, the other is updated to it."""
    body = robust_put("idle-config", max_payloads=20)
    body[CONFIG]["mitigating-config"] = robust_put("mitigating-config", max_payloads=25)[CONFIG]["mitigating-config"]
    response = harness.request("PUT", ("config", "sid=1"), body=body)
    assert response.code == "4.22"
    assert f"{ROBUST}:max-payloads" in response.diagnostic and "same in both sets" in response.diagnostic
    assert harness.request("PUT", ("config", "sid=2"), body=robust_put("idle-config", max_payloads=20)).code == "2.01"
    config = get_config(harness)
    assert current(config["mitigating-config"][f"{ROBUST}:max-payloads"]) == 20
    assert current(config["idle-config"][f"{ROBUST}:max-payloads"]) == 20


def test_non_receive_timeout_below_non_timeout_random_plus_one_second_gets_4_22(harness: Harness):
    """RFC 9177 §7.2: NON_RECEIVE_TIMEOUT MUST exceed NON_TIMEOUT_RANDOM (up to non-timeout x ack-random-factor)
    by at least one second: 3.99 s with the defaults is refused, 4.00 s (Figure 2's value) is accepted."""
    response = harness.request("PUT", ("config", "sid=1"), body=robust_put(non_receive_timeout="3.99"))
    assert response.code == "4.22"
    assert f"idle-config/{ROBUST}:non-receive-timeout=3.99" in response.diagnostic and "4.00" in response.diagnostic
    assert harness.request("PUT", ("config", "sid=2"), body=robust_put(non_receive_timeout="4.00")).code == "2.01"


def test_derived_non_receive_timeout_never_breaks_the_rfc9177_floor():
    # ack-random-factor 4 with non-timeout 2 s: twice non-timeout (4 s) is below 2 x 4 + 1 = 9 s.
    robust = ParameterSet(ack_random_factor=Decimal("4.00")).robust(Limits())
    assert robust.non_receive_timeout == 9.0


@pytest.mark.parametrize(
    "holder",
    [
        {43: Decimal("10.00")},  # current-value-decimal: max-payloads is a uint16
        {36: 10, 34: 20},  # current-value with max-value: min/max are for servers to send
        {36: -1},
        {36: 70000},
    ],
)
def test_malformed_robust_attribute_gets_4_00(harness: Harness, holder):
    """On the wire (CBOR key 32776 in idle-config, key 44, of signal-config, key 30)."""
    payload = cbor2.dumps({30: {44: {32776: holder}}})
    response = harness.request("PUT", ("config", "sid=1"), payload=payload)
    assert response.code == "4.00" and "max-payloads" in response.diagnostic
    assert harness.server.session_config("alpha") == SessionConfig()


def test_robust_attributes_survive_a_restart_of_the_core(harness: Harness):
    """Persisted like the other session parameters: explicit values as conveyed, derived ones recomputed."""
    body = figure_2()
    body[CONFIG]["idle-config"][f"{ROBUST}:non-partial-timeout"] = {"current-value-decimal": "120.00"}
    assert harness.request("PUT", ("config", "sid=7"), body=body).code == "2.01"
    before, in_force = get_config(harness, 7), harness.server.robust_transmission("alpha")
    (stored,) = harness.dump()["signal_session_configs"]
    assert "non-partial-timeout" in json.dumps(stored) and "non-probing-wait" not in json.dumps(stored)
    harness.restart()
    assert get_config(harness, 7) == before
    assert harness.server.robust_transmission("alpha") == in_force
    assert in_force.non_partial_timeout == 120.0 and in_force.max_payloads == 15


def test_a_configuration_stored_before_rfc9362_support_still_loads():
    old = {
        "heartbeat-interval": 60,
        "missing-hb-allowed": 5,
        "probing-rate": 5,
        "max-retransmit": 4,
        "ack-timeout": "3.00",
        "ack-random-factor": "1.50",
    }
    config = SessionConfig.from_json({"sid": 3, "mitigating-config": old, "idle-config": old})
    assert config.idle.max_payloads == 10 and config.idle.non_timeout is None
    assert config.idle.robust().non_timeout == 3.0 and config.idle.robust().non_max_retransmit == 4


def test_the_mitigating_set_is_in_force_while_a_mitigation_is_enforced(harness: Harness):
    """RFC 9132 §4.5: mitigating-config while the client has an active mitigation, idle-config otherwise."""
    body = robust_put("mitigating-config", non_timeout="3.00")
    assert harness.request("PUT", ("config", "sid=1"), body=body).code == "2.01"
    assert harness.server.robust_transmission("alpha").non_timeout == 2.0
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::1/128"], lifetime=100)).code == "2.01"
    mitigating = harness.server.robust_transmission("alpha")
    assert (mitigating.non_timeout, mitigating.non_receive_timeout) == (3.0, 6.0)
    assert harness.server.robust_transmission("bravo").non_timeout == 2.0  # another client's session: its own


def test_a_wide_operator_range_still_renders_a_valid_get_body(tmp_path: Path):
    """[signal] non_max_retransmit_limits up to 65535: a client may set it, and what is derived from it stays
    inside decimal64 (the GET body validates) and inside the server's own range."""
    limits = Limits(non_max_retransmit=(1, 65535))
    harness = make_harness(tmp_path, limits=limits)
    assert harness.request("PUT", ("config", "sid=1"), body=robust_put(non_max_retransmit=65535)).code == "2.01"
    body = harness.request("GET", ("config",)).body
    assert current(body[CONFIG]["idle-config"][f"{ROBUST}:non-partial-timeout"]) == "600.00"
    assert decode_signal(encode_signal(body)) == body
