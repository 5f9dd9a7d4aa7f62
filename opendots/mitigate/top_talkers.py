"""The top-talker policy ("sources-first"), sans-I/O: drop the sources the client named first, widen when that is
not enough.

RFC 9244 lets a DOTS client name an attack's top talkers (§8.1.5), in a mitigation request (§9.1) or in its
pre-or-ongoing-mitigation telemetry (§8.2). With `[mitigation] top_talker_policy = "sources-first"` the nftables
actuator first drops (or, with `top_talker_action = "rate-limit"`, limits to `top_talker_rate_limit` bytes per
second) only the traffic of those sources toward the target (MitigationScope.narrowed: narrow, precise; a
legitimate source toward the same target keeps flowing), counts what still reaches the target (a second counter,
behind the drop), and widens to the whole scope when, over `top_talker_window` seconds, the traffic still reaching
the target stays above `top_talker_min_passed_pps` AND above `top_talker_max_passed_share` of all the traffic
toward it (passed + dropped): the named sources were not (all) the attackers. Once wide, a mitigation stays wide.
Spoofed talkers (`spoofed-status` true) never get here: the signal channel leaves them out, since dropping a forged
address hits whoever really owns it.

`SourcesFirst` is one mitigation's decision, driven by `now` and cumulative counter samples; the actuator applies
what it says (opendots.mitigate.nftables) and reports `status()` to logs and the operator's view.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from opendots.config import ConfigError
from opendots.domain import IPNetwork, MitigationScope

POLICIES = ("off", "sources-first")
ACTIONS = ("drop", "rate-limit")
KEYS = (
    "top_talker_policy",
    "top_talker_action",
    "top_talker_rate_limit",
    "top_talker_window",
    "top_talker_max_passed_share",
    "top_talker_min_passed_pps",
)


@dataclass(frozen=True)
class TopTalkerSettings:
    """The [mitigation] table of server.toml (top_talker_* keys)."""

    policy: str = "off"
    action: str = "drop"
    """What the narrow phase does to the named talkers' traffic toward the target: "drop" it, or "rate-limit" it to
    `rate_limit` bytes per second (all the talkers of a mitigation together; the excess is dropped and counted)."""
    rate_limit: int = 0
    window: float = 30.0
    """Seconds of counting before the narrow drop is judged (and the span every later judgement averages over)."""
    max_passed_share: float = 0.2
    """Widen when more than this share of the traffic toward the target still reaches it..."""
    min_passed_pps: float = 100.0
    """...and that is more than this many packets per second (below it, nothing is worth widening for)."""

    @property
    def enabled(self) -> bool:
        return self.policy == "sources-first"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "[mitigation]") -> TopTalkerSettings:
        unknown = [key for key in table if key not in KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
        policy = table.get("top_talker_policy", "off")
        if policy not in POLICIES:
            raise ConfigError(f"{where}: top_talker_policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        action = table.get("top_talker_action", "drop")
        if action not in ACTIONS:
            raise ConfigError(f"{where}: top_talker_action must be one of {', '.join(ACTIONS)}, not {action!r}")
        rate = _number(table, "top_talker_rate_limit", 0, where)
        if action == "rate-limit" and not (rate >= 1 and rate == int(rate)):
            raise ConfigError(f'{where}: top_talker_action "rate-limit" needs top_talker_rate_limit (bytes/s, >= 1)')
        window = _number(table, "top_talker_window", cls.window, where)
        share = _number(table, "top_talker_max_passed_share", cls.max_passed_share, where)
        floor = _number(table, "top_talker_min_passed_pps", cls.min_passed_pps, where)
        if window <= 0 or not 0 <= share <= 1:
            raise ConfigError(f"{where}: top_talker_window must be > 0 and top_talker_max_passed_share in [0, 1]")
        return cls(policy, action, int(rate), window, share, floor)


def _number(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {key} must be a number (0 or more), not {value!r}")
    return float(value)


class Phase(Enum):
    NARROW = "narrow"  # dropping the named top talkers only
    WIDE = "wide"  # dropping the whole scope


@dataclass(frozen=True)
class PolicyStatus:
    """What the policy did for one mitigation, for logs and the operator's view (admin socket, dashboard)."""

    phase: Phase
    sources: tuple[IPNetwork, ...]
    """The top talkers the narrow drop named (kept after widening: what was tried)."""
    since: float
    reason: str
    action: str = "drop"

    def describe(self) -> str:
        if self.phase is Phase.NARROW:
            verb = "dropping" if self.action == "drop" else "rate-limiting"
            return f"sources-first: {verb} {len(self.sources)} named top talkers only ({self.reason})"
        return f"sources-first: whole scope ({self.reason})"

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": "sources-first",
            "phase": self.phase.value,
            "action": self.action,
            "sources": [str(source) for source in self.sources],
            "since": self.since,
            "reason": self.reason,
            "summary": self.describe(),
        }


@dataclass(frozen=True)
class _Sample:
    at: float
    dropped: int
    passed: int


class SourcesFirst:
    """One mitigation under the sources-first policy. `enforced` is the scope to enforce now; `observe()` takes
    cumulative counters (packets the mitigation dropped, packets that still reached the target) and returns True
    when the mitigation has just been widened (enforce `enforced` again)."""

    def __init__(
        self,
        settings: TopTalkerSettings,
        scope: MitigationScope,
        now: float,
        baseline: tuple[int, int] | None = None,
    ) -> None:
        """BASELINE: (dropped, passed) at NOW when known (counters created with the narrow drop: (0, 0)); without
        it, the first observation is the baseline."""
        self.settings = settings
        self.scope = scope
        """The mitigation's whole scope, top talkers included."""
        self.narrow = scope.narrowed()
        self._samples: deque[_Sample] = deque([_Sample(now, *baseline)] if baseline is not None else [])
        if self.narrow is None:
            reason = "no usable top talker for every target family"
            self._status = PolicyStatus(Phase.WIDE, scope.top_talkers, now, reason, settings.action)
        else:
            reason = f"judged after {settings.window:g} s"
            self._status = PolicyStatus(Phase.NARROW, self.narrow.source_prefixes, now, reason, settings.action)

    @property
    def phase(self) -> Phase:
        return self._status.phase

    @property
    def enforced(self) -> MitigationScope:
        """What the mitigator's own table drops now: the narrow scope (action "drop") or the whole one."""
        if self.phase is Phase.NARROW and self.narrow is not None and self.settings.action == "drop":
            return self.narrow
        return self.scope

    @property
    def limited(self) -> MitigationScope | None:
        """The narrow scope to rate-limit now (action "rate-limit", narrow phase), else None."""
        if self.phase is Phase.NARROW and self.settings.action == "rate-limit":
            return self.narrow
        return None

    def status(self) -> PolicyStatus:
        return self._status

    def give_up(self, now: float, reason: str) -> None:
        """Enforce the whole scope from now on (the narrow one could not be enforced: REASON)."""
        self._status = replace(self._status, phase=Phase.WIDE, since=now, reason=reason)
        self._samples.clear()

    def observe(self, now: float, dropped: int, passed: int) -> bool:
        """Add one reading; judge the narrow drop once the readings span the window. True: widen now."""
        if self.phase is Phase.WIDE:
            return False
        samples = self._samples
        if samples and (dropped < samples[-1].dropped or passed < samples[-1].passed):
            samples.clear()  # counters started again (table re-created): measure from here
        samples.append(_Sample(now, dropped, passed))
        # Keep the newest sample at or before the window's start: the judgement then spans a whole window.
        while len(samples) > 2 and samples[1].at <= now - self.settings.window:
            samples.popleft()
        oldest = samples[0]
        elapsed = now - oldest.at
        if elapsed < self.settings.window:
            return False
        passed_pps = (passed - oldest.passed) / elapsed
        dropped_pps = (dropped - oldest.dropped) / elapsed
        total = passed_pps + dropped_pps
        share = passed_pps / total if total else 0.0
        figures = f"{passed_pps:.0f} pps still reach the target, {dropped_pps:.0f} pps dropped"
        if passed_pps > self.settings.min_passed_pps and share > self.settings.max_passed_share:
            reason = f"widened: {figures} over {elapsed:.0f} s ({share:.0%} passed)"
            self._status = replace(self._status, phase=Phase.WIDE, since=now, reason=reason)
            samples.clear()
            return True
        self._status = replace(self._status, reason=f"holding: {figures}")
        return False


def top_talker_status(mitigator: object, key: str) -> PolicyStatus | None:
    """What MITIGATOR's top-talker policy did for mitigation KEY, when it runs one (nftables, the router)."""
    status = getattr(mitigator, "top_talker_status", None)
    return status(key) if callable(status) else None
