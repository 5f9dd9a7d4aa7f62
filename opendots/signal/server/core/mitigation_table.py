"""The mitigations a server holds, with what must stay in step with them: the overlap index, the lifetime heap and
the per-client counts. Changed only by `SignalServer.apply`, after the store has what it holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from opendots.signal.server.core.heartbeat import TimerTable
from opendots.signal.server.core.index import TargetIndex
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.scope import Targets, overlap

Key = tuple[str, int]


class MitigationTable:
    def __init__(self, on_enforcing_changed: Callable[[str], None]) -> None:
        self._held: dict[Key, Mitigation] = {}
        self.get: Callable[[Key], Mitigation | None] = self._held.get
        """The mitigation held under a key, or None: the dict's own method (read on every request, no Python frame)."""
        self._index = TargetIndex()
        self.deadlines: TimerTable[Key] = TimerTable()
        """Each mitigation's end: a refresh moves it later without adding a heap entry (one per refresh would pile up
        for a whole lifetime)."""
        self._enforcing: Counter[str] = Counter()  # enforced mitigations per client (selects its parameter set)
        self._count: Counter[str] = Counter()  # held mitigations per client: the capacity check without a scan
        self._on_enforcing_changed = on_enforcing_changed

    def __iter__(self) -> Iterator[Mitigation]:
        return iter(self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def count(self, client: str) -> int:
        return self._count[client]

    def is_enforcing(self, client: str) -> bool:
        """Whether CLIENT has a mitigation being enforced now (O(1): counted as mitigations are held)."""
        return self._enforcing[client] > 0

    def by_mitigator_key(self, key: str) -> Mitigation | None:
        cuid, _, mid = key.rpartition("/")
        return self._held.get((cuid, int(mid))) if mid.isdigit() else None

    def hold(self, mitigation: Mitigation) -> None:
        """Hold MITIGATION (new, or replacing the one with its key)."""
        record = mitigation.record
        key = (record.cuid, record.mid)
        old = self._held.get(key)
        if (
            old is not None
            and old.targets is mitigation.targets
            and old.record.client == record.client
            and old.record.status == record.status
        ):
            # Nearly every refresh: the same targets, owner and status; only the deadline moves (deadline(), inlined).
            self._held[key] = mitigation
            ending = record.terminating_until
            self.deadlines.set(key, ending if ending is not None else record.expires_at)
            return
        same_targets = old is not None and old.targets is mitigation.targets  # a refresh: the index stays right
        client = mitigation.record.client
        if old is not None:
            if not same_targets:
                self._index.remove(old.key, old.targets)
            self._enforcing[old.record.client] -= old.enforcing
        else:
            self._count[client] += 1
        self._held[mitigation.key] = mitigation
        if not same_targets:
            self._index.add(mitigation.key, mitigation.targets)
        self._enforcing[client] += mitigation.enforcing
        if (old is not None and old.enforcing) != mitigation.enforcing:
            self._on_enforcing_changed(client)
        self.deadlines.set(mitigation.key, mitigation.deadline())

    def release(self, key: Key) -> None:
        old = self._held.pop(key)
        self.deadlines.set(key, None)
        self._index.remove(key, old.targets)
        self._enforcing[old.record.client] -= old.enforcing
        self._count[old.record.client] -= 1
        if old.enforcing:
            self._on_enforcing_changed(old.record.client)

    def next_deadline(self) -> float | None:
        """Earliest mitigation deadline."""
        earliest = self.deadlines.earliest()
        return earliest[0] if earliest is not None else None

    def due(self, now: float) -> list[Mitigation]:
        """The mitigations whose deadline is at or before NOW (they end only when the decision to end them is
        applied, which releases them)."""
        return [self._held[key] for key in self.deadlines.due(now)]

    def overlapping(self, targets: Targets) -> list[tuple[Mitigation, Targets]]:
        """Held mitigations overlapping TARGETS, with the common part, in 'mid' order."""
        found = []
        for key in self._index.candidates(targets):
            mitigation = self._held[key]  # type: ignore[index]
            common = overlap(targets, mitigation.targets)
            if common is not None:
                found.append((mitigation, common))
        return sorted(found, key=lambda pair: pair[0].key)
