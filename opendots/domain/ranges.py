"""Port and ICMP type ranges of a mitigation scope.

`target-port-range` and `source-port-range` (ietf-dots-signal-channel, ietf-dots-call-home) are lists keyed by
`lower-port`, an `inet:port-number` (0..65535), with an optional `upper-port` that must not be below it; a single
port omits `upper-port`. `source-icmp-type-range` (ietf-dots-call-home, ietf-dots-telemetry) is the same shape with
`lower-type`/`upper-type` in 0..255. See /work/shared/spec/yang/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opendots.domain.errors import ScopeError


@dataclass(frozen=True, slots=True)
class PortRange:
    """Ports LOWER..UPPER inclusive; `PortRange(53)` is the single port 53.

    Building one checks nothing (actuators re-check what they are handed and say which scope was wrong); the parsers
    below, `parse`, and `check` apply the YANG rules."""

    lower: int
    upper: int = -1  # -1: the single port `lower`

    def __post_init__(self) -> None:
        if self.upper == -1:
            object.__setattr__(self, "upper", self.lower)

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """'80' or '1024-65535', as typed on a command line."""
        lower, dash, upper = text.strip().partition("-")
        try:
            low, high = int(lower), int(upper) if dash else None
        except ValueError:
            raise ScopeError(f"bad port range {text!r}: expected N or N-M") from None
        return cls(low, low if high is None else high).check()

    def check(self, member: str = "target-port-range") -> PortRange:
        for port in (self.lower, self.upper):
            if type(port) is not int or not 0 <= port <= 65535:
                raise ScopeError(f"{member}: port {port!r} is not in 0..65535")
        if self.upper < self.lower:
            raise ScopeError(f"{member} upper-port {self.upper} is below lower-port {self.lower}")
        return self

    def to_yang(self) -> dict[str, int]:
        return (
            {"lower-port": self.lower}
            if self.lower == self.upper
            else {"lower-port": self.lower, "upper-port": self.upper}
        )

    def __str__(self) -> str:
        return str(self.lower) if self.lower == self.upper else f"{self.lower}-{self.upper}"


@dataclass(frozen=True, slots=True)
class IcmpTypeRange:
    """ICMP/ICMPv6 types LOWER..UPPER inclusive (RFC 9066 §5.3.1, RFC 9244 source-icmp-type-range)."""

    lower: int
    upper: int = -1  # -1: the single type `lower`

    def __post_init__(self) -> None:
        if self.upper == -1:
            object.__setattr__(self, "upper", self.lower)

    def to_yang(self) -> dict[str, int]:
        return (
            {"lower-type": self.lower}
            if self.lower == self.upper
            else {"lower-type": self.lower, "upper-type": self.upper}
        )


_PORT_MEMBERS = frozenset({"lower-port", "upper-port"})
_TYPE_MEMBERS = frozenset({"lower-type", "upper-type"})


def parse_port_ranges(items: Any, member: str = "target-port-range") -> tuple[PortRange, ...]:
    """A YANG-JSON port range list, checked: entries of 'lower-port' and optionally 'upper-port', each key once."""
    return tuple(PortRange(lower, upper) for lower, upper in _ranges(items, member, "port", 65535, _PORT_MEMBERS))


def parse_icmp_type_ranges(items: Any, member: str = "source-icmp-type-range") -> tuple[IcmpTypeRange, ...]:
    return tuple(IcmpTypeRange(low, high) for low, high in _ranges(items, member, "type", 255, _TYPE_MEMBERS))


def _ranges(items: Any, member: str, unit: str, top: int, members: frozenset[str]) -> list[tuple[int, int]]:
    if type(items) is not list or not all(isinstance(item, dict) for item in items):
        raise ScopeError(f"'{member}' must be a list of dict values")
    lower_name, upper_name = f"lower-{unit}", f"upper-{unit}"
    ranges: list[tuple[int, int]] = []
    seen: set[int] = set()
    for item in items:
        if not item.keys() <= members or lower_name not in item:
            raise ScopeError(f"a {member} entry holds '{lower_name}' and optionally '{upper_name}'")
        lower = item[lower_name]
        if type(lower) is not int or not 0 <= lower <= top:  # the plain case without a call; _bounded decides others
            lower = _bounded(lower, unit, top)
        upper = item.get(upper_name, lower)
        if upper is not lower and (type(upper) is not int or not 0 <= upper <= top):
            upper = _bounded(upper, unit, top)
        if upper < lower:
            raise ScopeError(f"{member} {upper_name} {upper} is below {lower_name} {lower}")
        if lower in seen:
            raise ScopeError(f"{member} lists {lower_name} {lower} twice")
        seen.add(lower)
        ranges.append((lower, upper))
    return ranges


def _bounded(value: Any, unit: str, top: int) -> int:
    if not isinstance(value, int) or value is True or value is False or not 0 <= value <= top:
        raise ScopeError(f"{unit} {value!r} is not in 0..{top}")
    return value
