"""The overlap index never misses an overlapping mitigation (checked against a full scan)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.signal.server.core.index import TargetIndex
from opendots.signal.server.core.scope import Targets, overlap

prefixes = st.one_of(
    st.builds(
        lambda n, length: ipaddress.ip_network(f"192.0.2.{n}/{length}", strict=False),
        st.integers(0, 255),
        st.integers(22, 32),
    ),
    st.builds(
        lambda n, length: ipaddress.ip_network(f"2001:db8::{n:x}/{length}", strict=False),
        st.integers(0, 4095),
        st.integers(0, 128),
    ),
)
names = st.sampled_from(["a.example", "b.example", "c.example"])
targets = st.builds(
    lambda p, f, a: Targets(
        target_prefixes=tuple(dict.fromkeys(p)), target_fqdns=tuple(dict.fromkeys(f)), alias_names=tuple(a)
    ),
    st.lists(prefixes, max_size=3),
    st.lists(names, max_size=1),
    st.lists(st.sampled_from(["web", "dns"]), max_size=1, unique=True),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(targets, min_size=1, max_size=25), st.lists(st.integers(0, 24), max_size=10), targets)
def test_candidates_cover_every_overlap(held: list[Targets], removed: list[int], query: Targets):
    index = TargetIndex()
    live = dict(enumerate(held))
    for key, value in live.items():
        index.add(key, value)
    for key in removed:
        if key in live:
            index.remove(key, live.pop(key))
    expected = {key for key, value in live.items() if overlap(query, value) is not None}
    assert expected <= index.candidates(query)
    assert index.candidates(query) <= set(live)
