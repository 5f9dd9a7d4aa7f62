"""RFC 9244 §7.1–§7.3 bodies: what this server accepts (`TelemetryPolicy`, announced as 'max-config-values',
'min-config-values' and 'supported-unit-classes', §7.1.1) and the checks of each kind of setup a client PUTs.

Bodies arrive already validated against `ietf-dots-telemetry` (types, enumerations, key uniqueness, the YANG
'must' on percentile order); what is checked here is what the module cannot say: the server's limits (4.22,
§7.1.2), the rules of the RFC's text (4.00) and the client's own targets (4.00, as for mitigations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from opendots.config import ClientAuthorization
from opendots.domain import ScopeError, Targets
from opendots.domain.targets import parse_targets
from opendots.signal.server.core.authorization import AliasDirectory, check_authorized, resolve_aliases
from opendots.signal.server.core.messages import reject

# Seconds of each 'interval' and 'sample' enumeration (ietf-dots-telemetry typedefs), to compare them.
INTERVALS = {
    "5-minutes": 300,
    "10-minutes": 600,
    "30-minutes": 1800,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
    "month": 2592000,
}
SAMPLES = {
    "second": 1,
    "5-seconds": 5,
    "30-seconds": 30,
    "minute": 60,
    "5-minutes": 300,
    "10-minutes": 600,
    "30-minutes": 1800,
    "hour": 3600,
}
UNIT_CLASSES = ("packet-ps", "bit-ps", "byte-ps")
# The RFC's defaults (§7.1.2): 10th, 50th and 90th percentiles.
DEFAULT_PERCENTILES = {"low-percentile": "10.00", "mid-percentile": "50.00", "high-percentile": "90.00"}
TARGET_MEMBERS = ("target-prefix", "target-port-range", "target-protocol", "target-fqdn", "target-uri", "alias-name")
# The Uri-Query types of GET /tm this server supports, announced in the tm-setup GET (§7.1.1 'supported-query-type').
SUPPORTED_QUERY_TYPES = (
    "target-prefix",
    "target-port",
    "target-protocol",
    "target-fqdn",
    "target-uri",
    "target-alias",
    "mid",
    "content",
)
SCOPE_ATTACK_DETAIL = "ietf-dots-telemetry:attack-detail"  # §9.1: in a mitigation request's 'scope' entry
_TRAFFIC_LISTS = ("total-traffic-normal", "total-traffic-normal-per-protocol", "total-traffic-normal-per-port")


def unit_class(unit: str) -> str:
    """'megabit-ps' → 'bit-ps': the class of a scaled unit (typedef unit → typedef unit-class)."""
    return next(cls for cls in UNIT_CLASSES if unit.endswith(cls))


def percentile(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise reject("4.00", f"{text!r} is not a percentile") from None


@dataclass(frozen=True)
class TelemetryPolicy:
    """What the server accepts in a telemetry configuration ([signal] telemetry_* keys of server.toml)."""

    interval: tuple[str, str] = ("5-minutes", "day")
    """[min, max] 'measurement-interval'."""
    sample: tuple[str, str] = ("second", "hour")
    """[min, max] 'measurement-sample'."""
    percentiles: tuple[Decimal, Decimal] = (Decimal("1.00"), Decimal("99.99"))
    """[min, max] of any enabled low/mid/high percentile ("0.00" or an equal lower one disables, §7.1.2)."""
    notify_interval: tuple[int, int] = (1, 3600)
    """[min, max] 'telemetry-notify-interval' (seconds)."""
    unit_classes: tuple[str, ...] = UNIT_CLASSES
    """The unit classes the server supports (a setup enabling or using another one gets 4.22)."""
    server_originated: bool = False
    """Whether clients may ask for server-originated telemetry (§7.1.1): the dropped rates their mitigations'
    counters show, in mitigation status (§9.2) and in /tm for their target-only requests (§8.3)."""
    max_setups_per_client: int = 64
    """Telemetry setups (tsids) one client may keep installed; past it a new one gets 5.03."""
    max_reports_per_client: int = 64
    """Pre-or-ongoing-mitigation telemetry reports (tmids, §8.2) one client may keep; past it a new one gets 5.03."""
    max_top_talkers: int = 256
    """Top talkers in one report (or mitigation request, §9.1); more get 4.22, nothing stored."""

    def default_config(self) -> dict[str, Any]:
        """The 'current-config' in force when the client has installed none (§7.1.4: a DELETE comes back here)."""
        interval = "hour" if _within(INTERVALS, "hour", self.interval) else self.interval[0]
        sample = "minute" if _within(SAMPLES, "minute", self.sample) else self.sample[0]
        return {
            "measurement-interval": interval,
            "measurement-sample": sample,
            **DEFAULT_PERCENTILES,
            "unit-config": [{"unit": cls, "unit-status": True} for cls in self.unit_classes],
            "server-originated-telemetry": False,
        }

    def announced(self) -> dict[str, Any]:
        """§7.1.1: the acceptable values, as the members of a GET response's 'telemetry-setup'."""
        low, high = (_text(bound) for bound in self.percentiles)
        return {
            "max-config-values": {
                "measurement-interval": self.interval[1],
                "measurement-sample": self.sample[1],
                "low-percentile": high,
                "mid-percentile": high,
                "high-percentile": high,
                "server-originated-telemetry": self.server_originated,
                "telemetry-notify-interval": self.notify_interval[1],
            },
            "min-config-values": {
                "measurement-interval": self.interval[0],
                "measurement-sample": self.sample[0],
                "low-percentile": low,
                "mid-percentile": low,
                "high-percentile": low,
                "telemetry-notify-interval": self.notify_interval[0],
            },
            "supported-unit-classes": {"unit-config": [{"unit": c, "unit-status": True} for c in self.unit_classes]},
            "supported-query-type": list(SUPPORTED_QUERY_TYPES),
        }

    def check_top_talkers(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Refuse more top talkers than the cap in ENTRIES (§8.2 'pre-or-ongoing-mitigation' or §9.1 'scope'
        entries): 4.22, the code RFC 9244 §7.1.2 gives to values a server does not accept; nothing is stored."""
        count = sum(
            len(detail.get("top-talker", {}).get("talker", ()))
            for entry in entries
            for detail in entry.get("attack-detail", ()) or entry.get(SCOPE_ATTACK_DETAIL, ())
        )
        if count > self.max_top_talkers:
            raise reject("4.22", f"{count} top talkers: this DOTS server accepts at most {self.max_top_talkers}")

    # --- §7.1.2: telemetry configuration -----------------------------------------------------------

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Refuse a 'current-config' the server cannot take: 4.00 (the RFC's rules), 4.22 (outside its limits)."""
        if not config:
            raise reject("4.00", "at least one configurable attribute must be present in 'current-config'")
        effective = {**self.default_config(), **config}
        for name, table, bounds in (
            ("measurement-interval", INTERVALS, self.interval),
            ("measurement-sample", SAMPLES, self.sample),
        ):
            if name in config and not _within(table, config[name], bounds):
                raise reject("4.22", f"{name} {config[name]!r} is outside [{bounds[0]}, {bounds[1]}]")
        if SAMPLES[effective["measurement-sample"]] >= INTERVALS[effective["measurement-interval"]]:
            raise reject("4.00", "'measurement-sample' must be shorter than 'measurement-interval'")
        low, mid, high = (percentile(effective[name]) for name in DEFAULT_PERCENTILES)
        if not low <= mid <= high:
            raise reject("4.00", "percentiles must be ordered: low <= mid <= high")
        # "0.00" disables low, a mid equal to low (a high equal to mid) disables it: nothing to bound then.
        for name, value, disabled in (
            ("low-percentile", low, low == 0),
            ("mid-percentile", mid, mid == low),
            ("high-percentile", high, high == mid),
        ):
            if name in config and not disabled and not self.percentiles[0] <= value <= self.percentiles[1]:
                raise reject(
                    "4.22",
                    f"{name} {config[name]} is outside [{_text(self.percentiles[0])}, {_text(self.percentiles[1])}]",
                )
        for item in config.get("unit-config", ()):
            if item["unit-status"] and item["unit"] not in self.unit_classes:
                raise reject("4.22", f"unit class {item['unit']!r} is not supported by this DOTS server")
        if config.get("server-originated-telemetry") and not self.server_originated:
            raise reject("4.22", "this DOTS server does not send server-originated telemetry")
        interval = config.get("telemetry-notify-interval")
        if interval is not None and not self.notify_interval[0] <= interval <= self.notify_interval[1]:
            raise reject("4.22", f"telemetry-notify-interval {interval} is outside {list(self.notify_interval)}")

    # --- §7.2: total pipe capacity -----------------------------------------------------------------

    def check_pipe(self, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The links to keep: a capacity of "0" deletes a link (§7.2.1), and only when others stay."""
        classes: dict[tuple[str, str], str] = {}
        for link in links:
            unit = link["unit"]
            self._check_unit(unit)
            held = classes.setdefault((link["link-id"], unit_class(unit)), unit)
            if held != unit:
                raise reject("4.00", f"link {link['link-id']!r}: one unit per unit class ({held}, {unit})")
        kept = [link for link in links if int(link["capacity"]) != 0]
        if not kept:
            raise reject("4.00", "a 'capacity' of 0 for every link: use DELETE to remove all links (§7.2.3)")
        return kept

    # --- §7.3: baselines ---------------------------------------------------------------------------

    def check_baselines(
        self, client: ClientAuthorization, entries: list[dict[str, Any]], aliases: AliasDirectory
    ) -> list[Targets]:
        """Each baseline's targets, aliases resolved, every one inside the client's domain (else 4.00, as a
        mitigation request is refused); an empty Targets is the whole domain (§7.3.1)."""
        resolved = []
        for entry in entries:
            for name in _TRAFFIC_LISTS:
                for item in entry.get(name, ()):
                    self._check_unit(item["unit"])
            targets = baseline_targets(entry)
            targets = resolve_aliases(client, targets, aliases)
            check_authorized(client, targets)
            resolved.append(targets)
        return resolved

    def _check_unit(self, unit: str) -> None:
        if unit_class(unit) not in self.unit_classes:
            raise reject("4.22", f"unit {unit!r} is not in a unit class this DOTS server supports")


def baseline_targets(entry: Mapping[str, Any]) -> Targets:
    """The target members of a baseline entry, as written (no target: the whole client domain)."""
    if not any(name in entry for name in TARGET_MEMBERS):
        return Targets()
    try:
        return parse_targets(entry)
    except ScopeError as problem:
        raise reject("4.00", str(problem)) from None


def _within(table: Mapping[str, int], value: str, bounds: tuple[str, str]) -> bool:
    return table[bounds[0]] <= table[value] <= table[bounds[1]]


def _text(value: Decimal) -> str:
    return f"{value:.2f}"
