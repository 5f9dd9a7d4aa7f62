"""The overlap search a signal store offers (opendots.store.targets), here on SQLite; tests/integration/store runs the
same contract on PostgreSQL, where a GiST index answers it."""

from __future__ import annotations

import ipaddress

from tests.helpers import signal_store_contract as contract


def test_overlap_candidates_are_the_mitigations_whose_prefixes_nest_with_the_query(open_signal_store):
    contract.overlap_candidates_are_the_mitigations_whose_prefixes_nest_with_the_query(open_signal_store)


def test_a_request_names_its_prefixes_as_networks_and_an_unreadable_one_stands_for_every_address():
    from opendots.store.targets import EVERYWHERE, request_prefixes

    assert request_prefixes({"target-prefix": ["192.0.2.1/24", "192.0.2.0/24"]}) == (
        ipaddress.ip_network("192.0.2.0/24"),
    )
    assert request_prefixes({"alias-name": ["a"]}) == ()
    assert request_prefixes({"target-prefix": ["192.0.2.0/33"]}) == EVERYWHERE
    assert request_prefixes({"target-prefix": [1]}) == EVERYWHERE
    assert request_prefixes([]) == EVERYWHERE
