"""Uri-Query filters of GET /mitigate: 'c' (RFC 9132 §4.4.2, Table 2) and the target filters that
RFC 9244 §8.2 defines for the same requests (comma-separated values, "a-b" ranges, "*." wildcards)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from opendots.domain import IPNetwork, Targets
from opendots.signal.server.core.messages import reject

_FILTERS = ("target-prefix", "target-port", "target-protocol", "target-fqdn", "target-uri", "alias-name", "mid")


@dataclass(frozen=True)
class MitigationQuery:
    content: str = "a"
    prefixes: tuple[IPNetwork, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()
    protocols: tuple[tuple[int, int], ...] = ()
    fqdns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    mids: tuple[tuple[int, int], ...] = ()
    present: frozenset[str] = field(default_factory=frozenset)

    def matches(self, targets: Targets, mid: int) -> bool:
        """Every filter given must match one of its values (an unrestricted port/protocol matches any)."""
        if not self.present:  # no filter (nearly every GET)
            return True
        checks = {
            "target-prefix": lambda: any(
                p.version == q.version and p.overlaps(q) for p in targets.target_prefixes for q in self.prefixes
            ),
            "target-port": lambda: (
                not targets.target_port_ranges
                or any(
                    r.lower <= high and low <= r.upper for r in targets.target_port_ranges for low, high in self.ports
                )
            ),
            "target-protocol": lambda: (
                not targets.target_protocols
                or any(low <= p <= high for p in targets.target_protocols for low, high in self.protocols)
            ),
            "target-fqdn": lambda: any(
                _name_matches(n, pattern) for n in targets.target_fqdns for pattern in self.fqdns
            ),
            "target-uri": lambda: any(_name_matches(u, pattern) for u in targets.target_uris for pattern in self.uris),
            "alias-name": lambda: any(a in self.aliases for a in targets.alias_names),
            "mid": lambda: any(low <= mid <= high for low, high in self.mids),
        }
        return all(checks[name]() for name in self.present)


def parse_mitigation_query(options: tuple[str, ...]) -> MitigationQuery:
    """Invalid or unsupported query types are refused with 4.00 (RFC 9244 §8.2)."""
    if not options:
        return _NO_QUERY  # nearly every GET: one frozen value
    values: dict[str, object] = {}
    present: set[str] = set()
    for option in options:
        name, equals, raw = option.partition("=")
        if not equals or not raw:
            raise reject("4.00", f"malformed Uri-Query {option!r} (expected name=value)")
        if name in values or name in present:
            raise reject("4.00", f"Uri-Query {name!r} given twice (put several values in one, comma-separated)")
        items = raw.split(",")
        if name == "c":
            if raw not in ("c", "n", "a"):
                raise reject("4.00", f"'c' must be c, n or a, not {raw!r}")
            values["content"] = raw
            continue
        if name not in _FILTERS:
            raise reject("4.00", f"unsupported Uri-Query {name!r}")
        present.add(name)
        if name == "target-prefix":
            values["prefixes"] = tuple(_prefix(item) for item in items)
        elif name == "target-port":
            values["ports"] = tuple(_range(item, name, 65535) for item in items)
        elif name == "target-protocol":
            values["protocols"] = tuple(_range(item, name, 255) for item in items)
        elif name == "mid":
            values["mids"] = tuple(_range(item, name, 2**32 - 1) for item in items)
        elif name == "target-fqdn":
            values["fqdns"] = tuple(_wildcard(item.lower().rstrip("."), name) for item in items)
        elif name == "target-uri":
            values["uris"] = tuple(_wildcard(item, name) for item in items)
        else:
            values["aliases"] = tuple(items)
    return MitigationQuery(present=frozenset(present), **values)  # type: ignore[arg-type]


_NO_QUERY = MitigationQuery()


def _prefix(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise reject("4.00", f"target-prefix filter {text!r} is not an IP prefix") from None


def _range(text: str, name: str, maximum: int) -> tuple[int, int]:
    low_text, dash, high_text = text.partition("-")
    if not low_text.isdigit() or (dash and not high_text.isdigit()):
        raise reject("4.00", f"{name} filter {text!r} is not a number or a low-high range")
    low, high = int(low_text), int(high_text) if dash else int(low_text)
    if low > high or high > maximum:
        raise reject("4.00", f"{name} filter {text!r} is out of range")
    return low, high


def _wildcard(pattern: str, name: str) -> str:
    if "*" in pattern.replace("*.", "", 1) or ("*" in pattern and not pattern.split("//")[-1].startswith("*.")):
        raise reject("4.00", f"{name} filter {pattern!r}: '*' is allowed only as the leftmost label")
    return pattern


def _name_matches(name: str, pattern: str) -> bool:
    if "*." in pattern:
        head, _, tail = pattern.partition("*.")
        return (
            name.startswith(head) and name.endswith("." + tail.split("/")[0]) if not head else _uri_wild(name, pattern)
        )
    return name.lower() == pattern.lower()


def _uri_wild(uri: str, pattern: str) -> bool:
    head, _, tail = pattern.partition("*.")
    if not uri.startswith(head):
        return False
    rest = uri[len(head) :]
    label, dot, remainder = rest.partition(".")
    return bool(label) and bool(dot) and remainder == tail
