"""Inputs the fuzzing campaign (tools/fuzz_campaign.py) found, each kept as a test of its fix."""

from __future__ import annotations

import json
import logging
import random

import aiocoap
from aiocoap.optiontypes import BlockOption
from aiocoap.pipe import Pipe

from tests.fuzz.inputs import signal_body
from tests.fuzz.targets import CoapTarget, Stack


def test_a_refused_observe_registration_ends_with_its_answer_and_no_error(tmp_path):
    """RFC 7641 §4.1 / RFC 9132 §4.4.2.1: a GET with Observe 0 that is refused (here a bad 'c' query, 4.00) gets
    that answer and no observation. aiocoap then called the cancellation callback of an observation never
    accepted: an AttributeError after the answer, logged as an error for every such request."""
    stack = Stack(tmp_path)
    try:
        request = aiocoap.Message(code=aiocoap.GET, observe=0)
        request.mtype, request.mid, request.token = aiocoap.NON, 1, b"\x01"
        request.opt.uri_path = (".well-known", "dots", "mitigate", f"cuid={stack.cuids[0]}")
        request.opt.uri_query = ("c=nonsense",)
        message = aiocoap.Message.decode(request.encode(), remote=stack.remote)

        async def render() -> list:
            pipe = Pipe(message, logging.getLogger("test"))
            answers: list = []
            pipe.on_event(lambda event: answers.append(event) or not event.is_last)
            assert not stack.site.answer_now(pipe)  # Observe: aiocoap's path
            await stack.site.render_to_pipe(pipe)  # raised AttributeError before the fix
            return answers

        answers = stack.loop.run_until_complete(render())
        assert [event.message.code.dotted for event in answers] == ["4.00"]
        assert stack.resource.observer_count() == 0
    finally:
        stack.close()


def test_a_block1_request_with_a_gap_gets_4_08_request_entity_incomplete_not_5_00(tmp_path):
    """RFC 7959 §2.9.2: a Block1 transfer whose blocks do not follow on is incomplete (4.08). aiocoap's spool let a
    ValueError escape for a gap, which the client saw as 5.00 Internal Server Error."""
    stack = Stack(tmp_path)
    try:
        target = CoapTarget(stack)
        body = signal_body(random.Random(1)).ljust(64, b"\0")
        codes = []
        for mid, block in ((1, 0), (2, 2)):
            request = aiocoap.Message(code=aiocoap.PUT, content_format=271)
            request.mtype, request.mid, request.token = aiocoap.NON, mid, b"\x07"
            request.opt.uri_path = (".well-known", "dots", "mitigate", f"cuid={stack.cuids[0]}", "mid=5")
            request.opt.block1 = BlockOption.BlockwiseTuple(block, True, 0)  # 16-byte blocks, more to come
            request.payload = body[block * 16 : block * 16 + 16]
            codes.append(target.run(request.encode()))  # raised ValueError before the fix
        assert codes == ["2.31", "4.08"]
    finally:
        stack.close()


def test_a_conflict_scope_merging_port_ranges_with_one_lower_port_keeps_the_list_key_unique(tmp_path):
    """RFC 9132 §4.4.1.3: 'conflict-scope' carries the overlap with the other clients' mitigations. Its
    'target-port-range' is a YANG list keyed by 'lower-port' (§5.3): two overlaps starting at the same port (here
    80-65535 and 80) made the 4.09 body invalid (non-unique key). They are one range, their union."""
    from opendots.model import encode_signal
    from tests.helpers.signal_harness import BRAVO, make_harness, scope_body

    harness = make_harness(tmp_path)
    wide = scope_body(target_prefix=["192.0.2.1/32"], target_port_range=[{"lower-port": 80, "upper-port": 65535}])
    narrow = scope_body(target_prefix=["192.0.2.2/32"], target_port_range=[{"lower-port": 80}])
    assert harness.put(1, wide, cuid=BRAVO.cuid, peer=BRAVO).code == "2.01"
    assert harness.put(2, narrow, cuid=BRAVO.cuid, peer=BRAVO).code == "2.01"
    before = harness.dump()
    mine = scope_body(target_prefix=["192.0.2.0/24"], target_port_range=[{"lower-port": 53, "upper-port": 65535}])
    response = harness.put(7, mine)
    assert response.code == "4.09"
    encode_signal(response.body)  # validates: raised ModelError (non-unique-key) before the fix
    (entry,) = response.body["ietf-dots-signal-channel:mitigation-scope"]["scope"]
    scope = entry["conflict-information"]["conflict-scope"]
    assert scope["target-port-range"] == [{"lower-port": 80, "upper-port": 65535}]
    assert harness.dump() == before


def test_a_post_below_a_list_entry_that_does_not_exist_is_404_not_an_internal_error(tmp_path):
    """RFC 8040 §4.4.1: POST creates a child of the target resource, which must exist (else 404). Below an ACE that
    the ACL does not have (ace=r when it holds ace=s), the service indexed the list with None: a TypeError, which
    the client saw as 500."""
    from opendots.data.core import RestconfRequest

    stack = Stack(tmp_path)
    try:
        cuid = stack.cuids[0]
        root = "/ietf-dots-data-channel:dots-data"
        rule = {"name": "s", "matches": {"ipv4": {"destination-ipv4-network": "192.0.2.0/24"}},
                "actions": {"forwarding": "drop"}}  # fmt: skip
        acl = {"ietf-dots-data-channel:acl": [{"name": "x", "aces": {"ace": [rule]}}]}
        steps = [
            (f"{root}", {"ietf-dots-data-channel:dots-client": [{"cuid": cuid}]}, 201),
            (f"{root}/dots-client={cuid}/acls", acl, 201),
            (f"{root}/dots-client={cuid}/acls/acl=x/aces/ace=r", {"ietf-dots-data-channel:matches": {}}, 404),
        ]
        for path, body, expected in steps:
            request = RestconfRequest("POST", path, cuid, body=json.dumps(body).encode(),
                                      content_type="application/yang-data+json")  # fmt: skip
            before = stack.state()
            response = stack.data.handle(request, stack.clock())  # raised TypeError before the fix
            assert response.status == expected, response.body
        assert stack.state() == before
    finally:
        stack.close()


def test_a_get_asking_for_a_later_block2_block_first_gets_that_block_not_5_00(tmp_path):
    """RFC 7959 §2.4: a GET for block N > 0 with nothing cached (the cache expired, or the peer starts mid-way) is
    served from the freshly rendered body; a block past the end is 4.00. aiocoap's Block2 cache raised
    IncompleteException / BadRequest for these, which the server answered 5.00."""
    stack = Stack(tmp_path)
    try:
        target = CoapTarget(stack)
        codes = []
        for mid, number in ((1, 1), (2, 4000)):
            request = aiocoap.Message(code=aiocoap.GET)
            request.mtype, request.mid, request.token = aiocoap.NON, mid, b"\x06"
            request.opt.uri_path = (".well-known", "dots", "config")  # the server's limits: ~200 bytes of CBOR
            request.opt.block2 = BlockOption.BlockwiseTuple(number, False, 0)  # 16-byte blocks
            codes.append(target.run(request.encode()))  # 5.00 before the fix
        assert codes == ["2.05", "4.00"]
    finally:
        stack.close()
