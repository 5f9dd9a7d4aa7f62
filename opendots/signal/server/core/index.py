"""Which held mitigations might overlap a new scope, without scanning them all.

Prefixes are nested or disjoint, so a held prefix overlaps a query prefix only if it contains it (found by
masking the query to each prefix length in use) or lies inside it (its first address falls in the query's
range: a bisect). Names (FQDN, URI, alias) overlap on equality. Candidates are then checked exactly.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Hashable

from opendots.domain import Targets

_BITS = {4: 32, 6: 128}


class TargetIndex:
    def __init__(self) -> None:
        self._networks: dict[tuple[int, int, int], set[Hashable]] = defaultdict(set)  # (version, length, first)
        self._lengths: dict[int, dict[int, int]] = {4: defaultdict(int), 6: defaultdict(int)}  # length → count
        self._starts: dict[int, list[tuple[int, int, Hashable]]] = {4: [], 6: []}  # sorted (first, tiebreak, key)
        self._names: dict[tuple[str, str], set[Hashable]] = defaultdict(set)
        self._tiebreak: dict[Hashable, int] = {}
        self._counter = itertools.count()

    def add(self, key: Hashable, targets: Targets) -> None:
        tiebreak = self._tiebreak.setdefault(key, next(self._counter))
        for prefix, (version, first, _) in zip(targets.target_prefixes, targets.prefix_ranges, strict=True):
            self._networks[(version, prefix.prefixlen, first)].add(key)
            self._lengths[version][prefix.prefixlen] += 1
            bisect.insort(self._starts[version], (first, tiebreak, key))
        for kind, name in _names(targets):
            self._names[(kind, name)].add(key)

    def remove(self, key: Hashable, targets: Targets) -> None:
        tiebreak = self._tiebreak.get(key)
        for prefix, (version, first, _) in zip(targets.target_prefixes, targets.prefix_ranges, strict=True):
            bucket = self._networks.get((version, prefix.prefixlen, first))
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._networks[(version, prefix.prefixlen, first)]
            lengths = self._lengths[version]
            lengths[prefix.prefixlen] -= 1
            if lengths[prefix.prefixlen] <= 0:
                del lengths[prefix.prefixlen]
            starts = self._starts[version]
            position = bisect.bisect_left(starts, (first, tiebreak))
            while position < len(starts) and starts[position][0] == first:
                if starts[position][2] == key:
                    del starts[position]
                    break
                position += 1
        for kind, name in _names(targets):
            bucket = self._names.get((kind, name))
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._names[(kind, name)]
        self._tiebreak.pop(key, None)

    def candidates(self, targets: Targets) -> set[Hashable]:
        """A superset of the keys whose targets overlap TARGETS (names or addresses)."""
        found: set[Hashable] = set()
        for prefix, (version, first, last) in zip(targets.target_prefixes, targets.prefix_ranges, strict=True):
            bits = _BITS[version]
            for length in self._lengths[version]:
                if length <= prefix.prefixlen:  # held prefixes that contain the query
                    masked = (first >> (bits - length)) << (bits - length) if length else 0
                    found |= self._networks.get((version, length, masked), set())
            starts = self._starts[version]
            position = bisect.bisect_left(starts, (first,))
            while position < len(starts) and starts[position][0] <= last:  # held prefixes inside the query
                found.add(starts[position][2])
                position += 1
        for kind, name in _names(targets):
            found |= self._names.get((kind, name), set())
        return found


def _names(targets: Targets) -> list[tuple[str, str]]:
    return [
        *(("fqdn", name) for name in targets.target_fqdns),
        *(("uri", uri) for uri in targets.target_uris),
        *(("alias", alias) for alias in targets.alias_names),
    ]
