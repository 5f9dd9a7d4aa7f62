"""What a server-domain gateway changes in the data channel it relays (RFC 8783 §3.3, §3.4, §5.1)."""

from __future__ import annotations

import json

from opendots.gateway.data_rules import (
    DOTS_DATA,
    check_via,
    is_registration,
    loop_detected_body,
    with_cdid,
    without_cdid,
)

CLIENT = "ietf-dots-data-channel:dots-client"


def test_the_gateway_appends_itself_to_via_and_a_via_naming_it_is_a_loop_rfc8783_s3_4() -> None:
    assert check_via(None, "gw1").via == "1.1 gw1"
    forwarded = check_via("1.1 edge.example", "gw1")
    assert (forwarded.loop, forwarded.via) == (False, "1.1 edge.example, 1.1 gw1")
    looped = check_via("1.1 gw2, 1.1 gw1", "gw1")
    assert (looped.loop, looped.via) == (True, "1.1 gw2, 1.1 gw1")
    assert check_via("1.1 gw10", "gw1").loop is False  # whole names only
    error = loop_detected_body(looped.via)["ietf-restconf:errors"]["error"][0]
    assert (error["error-app-tag"], error["error-tag"], error["error-info"]) == (
        "loop-detected",
        "operation-failed",
        "1.1 gw2, 1.1 gw1",
    )


def test_registrations_are_the_post_to_dots_data_and_the_put_of_one_dots_client_rfc8783_s5_1() -> None:
    assert is_registration("POST", DOTS_DATA)
    assert is_registration("PUT", f"{DOTS_DATA}/dots-client=abc")
    assert not is_registration("PUT", f"{DOTS_DATA}/dots-client=abc/aliases")
    assert not is_registration("POST", f"{DOTS_DATA}/dots-client=abc")
    assert not is_registration("GET", DOTS_DATA)


def test_a_relayed_registration_carries_the_clients_cdid_replacing_one_it_supplied_rfc8783_s5_1() -> None:
    body = json.dumps({CLIENT: [{"cuid": "abc", "cdid": "forged"}]}).encode()
    assert json.loads(with_cdid(body, "spkihash") or b"") == {CLIENT: [{"cuid": "abc", "cdid": "spkihash"}]}
    assert with_cdid(b"not json", "spkihash") is None
    assert with_cdid(json.dumps({CLIENT: [{"cuid": "a"}, {"cuid": "b"}]}).encode(), "x") is None  # server refuses


def test_the_cdid_is_stripped_from_what_goes_back_to_the_client_rfc8783_s5_1() -> None:
    top = json.dumps({CLIENT: [{"cuid": "abc", "cdid": "spkihash"}]}).encode()
    assert json.loads(without_cdid(top)) == {CLIENT: [{"cuid": "abc"}]}
    nested = json.dumps({"ietf-dots-data-channel:dots-data": {"dots-client": [{"cuid": "a", "cdid": "x"}]}}).encode()
    assert json.loads(without_cdid(nested)) == {"ietf-dots-data-channel:dots-data": {"dots-client": [{"cuid": "a"}]}}
    untouched = b'{"ietf-dots-data-channel:aliases": {}}'
    assert without_cdid(untouched) is untouched
