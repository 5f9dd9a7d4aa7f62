"""Property-based fuzzing of the server's entry points (Hypothesis, a few hundred inputs each: CI-sized).

The same targets and invariants as the long campaign (tools/fuzz_campaign.py): whatever arrives, no exception
escapes, no 5.xx, every answer is a well-formed code, and a refused request leaves the stored state as it was.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import inputs
from tests.fuzz.targets import CborTarget, CoapTarget, RestconfTarget, SignalCoreTarget, Stack

CI = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
CBOR_SEEDS = inputs.cbor_seeds()
JSON_SEEDS = inputs.json_seeds()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    stack = Stack(Path(tmp_path_factory.mktemp("fuzz")))
    yield stack
    stack.close()


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda r, seed: inputs.mutate(r, seed, seeds), st.randoms(use_true_random=False), st.sampled_from(seeds)
    )


def cbor_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=120),
        mutated(CBOR_SEEDS),
        st.randoms(use_true_random=False).map(inputs.random_cbor),
        st.randoms(use_true_random=False).map(inputs.signal_body),
    )


@CI
@given(data=cbor_bodies())
def test_the_cbor_decoder_answers_any_bytes_with_a_body_or_a_4xx_model_error(data):
    """RFC 9132 §6: a body that is not valid CBOR or not the data model is refused with 4.00 (4.13 when too big)."""
    CborTarget().run(data)


@CI
@given(seed=st.randoms(use_true_random=False), items=st.lists(st.integers(0, 4), min_size=1, max_size=4))
def test_the_signal_core_answers_every_request_with_a_well_formed_code_and_changes_nothing_it_refuses(
    stack, seed, items
):
    """RFC 9132 §4: every request gets a 2.xx or 4.xx answer (never 5.xx); a refused one changes no stored state."""
    target = SignalCoreTarget(stack)
    cuids = [*stack.cuids, "nobody"]
    for _ in items:
        target.run(inputs.signal_input(seed, CBOR_SEEDS, cuids))


@CI
@given(
    method=st.sampled_from(inputs.METHODS),
    path=st.lists(st.one_of(st.sampled_from(inputs.SEGMENTS), st.text(max_size=12)), max_size=4).map(tuple),
    query=st.lists(st.one_of(st.sampled_from(inputs.QUERIES), st.text(max_size=12)), max_size=2).map(tuple),
    observe=st.one_of(st.none(), st.integers(0, 2**24)),
    if_match_empty=st.booleans(),
    payload=st.one_of(st.none(), cbor_bodies()),
    peer=st.integers(0, 2),
)
def test_the_signal_core_survives_arbitrary_paths_queries_and_options(
    stack, method, path, query, observe, if_match_empty, payload, peer
):
    SignalCoreTarget(stack).run(inputs.SignalInput(method, path, query, observe, if_match_empty, payload, peer))


@CI
@given(data=st.one_of(st.binary(max_size=80), mutated(CBOR_SEEDS[:1]), st.randoms(use_true_random=False)))
def test_coap_datagrams_are_answered_well_formed_or_dropped_as_unparsable(stack, data):
    """RFC 7252 §3 and §4.2: a datagram that is no CoAP message is dropped; a request gets a response code, never
    5.xx, through aiocoap's Message.decode and our DOTS site."""
    seeds = inputs.coap_seeds(stack.cuids, CBOR_SEEDS)
    if isinstance(data, random.Random):
        data = inputs.mutate(data, data.choice(seeds), seeds)
    CoapTarget(stack).run(data)


@CI
@given(seed=st.randoms(use_true_random=False))
def test_the_restconf_service_answers_every_request_with_a_4xx_or_success_and_changes_nothing_it_refuses(stack, seed):
    """RFC 8040 §7 / RFC 8783: errors are 4xx with an ietf-restconf:errors body; nothing changes on a refusal."""
    RestconfTarget(stack).run(inputs.restconf_input(seed, JSON_SEEDS, [*stack.cuids, "nobody"]))


@CI
@given(
    method=st.sampled_from(inputs.METHODS),
    path=st.one_of(st.sampled_from(inputs.DATA_PATHS), st.text(max_size=40)),
    query=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=2).map(tuple),
    body=st.one_of(st.binary(max_size=80), mutated(JSON_SEEDS), st.sampled_from(JSON_SEEDS)),
    content_type=st.sampled_from(inputs.CONTENT_TYPES),
    accept=st.one_of(st.sampled_from(inputs.ACCEPTS), st.text(max_size=12)),
    peer=st.integers(0, 2),
)
def test_the_restconf_service_survives_arbitrary_paths_queries_headers_and_bodies(
    stack, method, path, query, body, content_type, accept, peer
):
    path = path.replace("{cuid}", stack.cuids[0])
    RestconfTarget(stack).run(inputs.RestconfInput(method, path, query, body, content_type, accept, None, peer))
