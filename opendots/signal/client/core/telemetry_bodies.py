"""RFC 9244 bodies a DOTS client sends, built from operator-friendly values: the telemetry setup entries of §7
(current-config, total-pipe-capacity, baseline) and the pre-or-ongoing-mitigation entries of §8.2, with the
`tm-setup` / `tm` requests that carry them. Values are YANG-JSON (RFC 7951: gauge64 and uint64 as strings,
decimal64 percentiles as strings with two fraction digits); the shell CBOR-encodes them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from opendots.signal.client.core.requests import WELL_KNOWN, DotsRequest, RequestKind
from opendots.signal.client.core.scope import ScopeError

TELEMETRY_SETUP = "ietf-dots-telemetry:telemetry-setup"
TELEMETRY = "ietf-dots-telemetry:telemetry"
PRE_OR_ONGOING = "pre-or-ongoing-mitigation"
CONFIG, PIPE, BASELINE = "current-config", "total-pipe-capacity", "baseline"
KINDS = (CONFIG, PIPE, BASELINE)
ID_MAX = (1 << 32) - 1  # tsid and tmid are uint32 (RFC 9244 §7, §8.2)

# typedef unit of ietf-dots-telemetry, in its order; a unit class is the unscaled name (bit-ps, packet-ps, byte-ps).
_SCALES = ("", "kilo", "mega", "giga", "tera", "peta", "exa", "zetta")
UNITS = tuple(f"{scale}{kind}" for scale in _SCALES for kind in ("packet-ps", "bit-ps", "byte-ps"))
UNIT_CLASSES = ("packet-ps", "bit-ps", "byte-ps")
# The spellings operators type; matched case-sensitively for bytes (B) against bits (b).
UNIT_ALIASES = {
    "pps": "packet-ps",
    "kpps": "kilopacket-ps",
    "Mpps": "megapacket-ps",
    "Gpps": "gigapacket-ps",
    "bps": "bit-ps",
    "kbps": "kilobit-ps",
    "Kbps": "kilobit-ps",
    "Mbps": "megabit-ps",
    "mbps": "megabit-ps",  # FastNetMon's spelling
    "Gbps": "gigabit-ps",
    "Tbps": "terabit-ps",
    "Bps": "byte-ps",
    "kBps": "kilobyte-ps",
    "MBps": "megabyte-ps",
    "GBps": "gigabyte-ps",
}
DEFAULT_UNIT = "megabit-ps"
INTERVALS = ("5-minutes", "10-minutes", "30-minutes", "hour", "day", "week", "month")
SAMPLES = ("second", "5-seconds", "30-seconds", "minute", "5-minutes", "10-minutes", "30-minutes", "hour")
SEVERITIES = ("none", "low", "medium", "high", "unknown")
UNIT_SYMBOLS = {unit: alias for alias, unit in UNIT_ALIASES.items() if alias not in ("mbps", "Kbps")}


class TelemetryError(ScopeError):
    """A telemetry value that cannot be sent (the verbs report it as a 4.00 before anything leaves)."""


def parse_unit(text: str) -> str:
    if text in UNITS:
        return text
    if text in UNIT_ALIASES:
        return UNIT_ALIASES[text]
    raise TelemetryError(f"unknown unit {text!r}: use one of {', '.join(UNIT_ALIASES)} or a YANG unit (megabit-ps)")


def parse_rate(text: str, default_unit: str = DEFAULT_UNIT) -> tuple[str, int]:
    """'RATE[:UNIT]' → (YANG unit, integer value): '500:Mbps', '25000:pps', '2:gigabit-ps', '300' (DEFAULT_UNIT)."""
    value, _, unit = str(text).partition(":")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise TelemetryError(f"{text!r} is not RATE[:UNIT] (e.g. 500:Mbps)") from None
    if number != number.to_integral_value() or number < 0 or number > (1 << 64) - 1:
        raise TelemetryError(f"{text!r}: the rate must be a whole number 0-2^64-1 (use a smaller unit for fractions)")
    return parse_unit(unit) if unit else default_unit, int(number)


def rate_list(rates: Iterable[str], leaf: str = "current-g", default_unit: str = DEFAULT_UNIT) -> list[dict[str, Any]]:
    """Rates as a YANG list keyed by unit (one entry per unit: the key must be unique)."""
    entries: dict[str, dict[str, Any]] = {}
    for text in rates:
        unit, value = parse_rate(text, default_unit)
        if unit in entries:
            raise TelemetryError(f"two values in {unit}: give one rate per unit")
        entries[unit] = {"unit": unit, leaf: str(value)}
    return list(entries.values())


def _prefix(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False)) if "/" in text else _host(text)
    except ValueError:
        raise TelemetryError(f"{text!r} is not an IP address or prefix") from None


def _host(text: str) -> str:
    address = ipaddress.ip_address(text)
    return f"{address}/{address.max_prefixlen}"


def parse_talker(text: str) -> dict[str, Any]:
    """'SRC[:PORT]' → a top-talker 'talker' entry: 198.51.100.7, 198.51.100.0/24:53, [2001:db8::1]:123, 2001:db8::/48
    (an IPv6 source with a port needs the brackets)."""
    source, port = text, None
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        source = inside
        if rest:
            if not rest.startswith(":"):
                raise TelemetryError(f"{text!r} is not SRC[:PORT]")
            port = rest[1:]
    elif text.count(":") == 1:
        source, port = text.split(":")
    talker: dict[str, Any] = {"source-prefix": _prefix(source)}
    if port is not None:
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise TelemetryError(f"{text!r}: port {port!r} is not 0-65535")
        talker["source-port-range"] = [{"lower-port": int(port)}]
    return talker


def percentile(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TelemetryError(f"{value!r} is not a percentile") from None
    if not 0 <= number <= 100 or number != number.quantize(Decimal("0.01")):
        raise TelemetryError(f"percentile {value!r} must be 0-100 with at most two fraction digits")
    return f"{number:.2f}"


def config_entry(
    *,
    measurement_interval: str | None = None,
    measurement_sample: str | None = None,
    low_percentile: Any = None,
    mid_percentile: Any = None,
    high_percentile: Any = None,
    unit_classes: Iterable[str] = (),
    server_originated_telemetry: bool | None = None,
) -> dict[str, Any]:
    """A §7.1.2 telemetry configuration; unit_classes lists the classes enabled (unit-status true)."""
    config: dict[str, Any] = {}
    if measurement_interval is not None:
        if measurement_interval not in INTERVALS:
            raise TelemetryError(f"measurement-interval must be one of {', '.join(INTERVALS)}")
        config["measurement-interval"] = measurement_interval
    if measurement_sample is not None:
        if measurement_sample not in SAMPLES:
            raise TelemetryError(f"measurement-sample must be one of {', '.join(SAMPLES)}")
        config["measurement-sample"] = measurement_sample
    for name, value in (("low", low_percentile), ("mid", mid_percentile), ("high", high_percentile)):
        if value is not None:
            config[f"{name}-percentile"] = percentile(value)
    classes = list(dict.fromkeys(unit_classes))
    for unit in classes:
        if unit not in UNIT_CLASSES:
            raise TelemetryError(f"unit class {unit!r} is not one of {', '.join(UNIT_CLASSES)}")
    if classes:
        config["unit-config"] = [{"unit": unit, "unit-status": True} for unit in classes]
    if server_originated_telemetry is not None:
        config["server-originated-telemetry"] = bool(server_originated_telemetry)
    if not config:
        raise TelemetryError("a telemetry configuration needs at least one value (RFC 9244 §7.1.2)")
    return {CONFIG: config}


def pipe_entry(links: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """§7.2.1: (link-id, 'CAPACITY[:UNIT]') pairs."""
    entries = []
    for link_id, rate in links:
        if not link_id:
            raise TelemetryError("a link needs a link-id")
        unit, value = parse_rate(rate)
        entries.append({"link-id": str(link_id), "capacity": str(value), "unit": unit})
    if not entries:
        raise TelemetryError("a total-pipe-capacity needs at least one link")
    return {PIPE: entries}


def baseline(
    baseline_id: int,
    target_prefixes: Iterable[str],
    *,
    normal: Iterable[str] = (),
    peak: Iterable[str] = (),
) -> dict[str, Any]:
    """One §7.3.1 baseline: its normal traffic (mid-percentile-g) and peak (peak-g) as 'RATE[:UNIT]'s."""
    if not 0 <= baseline_id <= ID_MAX:
        raise TelemetryError(f"baseline id {baseline_id} is outside 0-{ID_MAX}")
    entry: dict[str, Any] = {"id": baseline_id}
    prefixes = [_prefix(text) for text in target_prefixes]
    if prefixes:
        entry["target-prefix"] = prefixes
    traffic: dict[str, dict[str, Any]] = {}
    for leaf, rates in (("mid-percentile-g", normal), ("peak-g", peak)):
        for item in rate_list(rates, leaf):
            traffic.setdefault(item["unit"], {"unit": item["unit"]})[leaf] = item[leaf]
    if not traffic:
        raise TelemetryError("a baseline needs its normal traffic or its peak (RATE[:UNIT])")
    entry["total-traffic-normal"] = list(traffic.values())
    return entry


def baseline_entry(baselines: Iterable[dict[str, Any]]) -> dict[str, Any]:
    entries = list(baselines)
    if not entries:
        raise TelemetryError("no baseline given")
    return {BASELINE: entries}


@dataclass(frozen=True)
class AttackDetail:
    """§8.1.6: what the detector knows of the attack; vendor-id and attack-id are the list's key."""

    vendor_id: int = 0
    attack_id: int = 0
    description: str | None = None
    severity: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    talkers: tuple[dict[str, Any], ...] = ()

    def to_yang(self) -> dict[str, Any]:
        for name, value in (("vendor-id", self.vendor_id), ("attack-id", self.attack_id)):
            if not 0 <= value <= ID_MAX:
                raise TelemetryError(f"{name} {value} is outside 0-{ID_MAX}")
        detail: dict[str, Any] = {"vendor-id": self.vendor_id, "attack-id": self.attack_id}
        if self.description:
            detail["attack-description"] = self.description
        if self.severity is not None:
            if self.severity not in SEVERITIES:
                raise TelemetryError(f"attack-severity must be one of {', '.join(SEVERITIES)}")
            detail["attack-severity"] = self.severity
        for name, value in (("start-time", self.start_time), ("end-time", self.end_time)):
            if value is not None:
                detail[name] = str(int(value))
        if self.talkers:
            seen: set[str] = set()
            for talker in self.talkers:
                if talker["source-prefix"] in seen:  # the talker list's key
                    raise TelemetryError(f"top talker {talker['source-prefix']} given twice")
                seen.add(talker["source-prefix"])
            detail["top-talker"] = {"talker": [dict(t) for t in self.talkers]}
        return detail


def report_entry(
    target_prefixes: Iterable[str],
    *,
    total_traffic: Iterable[str] = (),
    total_attack_traffic: Iterable[str] = (),
    attack: AttackDetail | None = None,
    mids: Iterable[int] = (),
) -> dict[str, Any]:
    """One §8.2 pre-or-ongoing-mitigation entry about TARGET_PREFIXES (or the mitigations MIDS)."""
    target: dict[str, Any] = {}
    prefixes = [_prefix(text) for text in target_prefixes]
    if prefixes:
        target["target-prefix"] = prefixes
    mid_list = list(dict.fromkeys(mids))
    if mid_list:
        target["mid-list"] = mid_list
    if not target:
        raise TelemetryError("a telemetry report needs a target prefix (or the mid of a mitigation)")
    entry: dict[str, Any] = {"target": target}
    if traffic := rate_list(total_traffic):
        entry["total-traffic"] = traffic
    if attack_traffic := rate_list(total_attack_traffic):
        entry["total-attack-traffic"] = attack_traffic
    if attack is not None:
        entry["attack-detail"] = [attack.to_yang()]
    return entry


# ---------------------------------------------------------------- requests


def _path(resource: str, cuid: str, name: str, number: int | None) -> tuple[str, ...]:
    if not cuid:
        raise TelemetryError("cuid must not be empty")
    path = (*WELL_KNOWN, resource, f"cuid={cuid}")
    if number is not None:
        if not 0 <= number <= ID_MAX:
            raise TelemetryError(f"{name} {number} is outside 0-{ID_MAX}")
        path += (f"{name}={number}",)
    return path


def _content(content: str | None) -> tuple[str, ...]:
    if content is not None and content not in ("c", "n", "a"):
        raise TelemetryError(f"content filter must be c, n or a, not {content!r}")
    return (f"c={content}",) if content else ()


def setup_kind(entry: Mapping[str, Any]) -> str:
    kinds = [kind for kind in KINDS if kind in entry]
    if len(kinds) != 1 or len(entry) != 1:
        raise TelemetryError("a telemetry setup carries one of current-config, total-pipe-capacity, baseline (§7)")
    return kinds[0]


def setup_get_request(cuid: str, tsid: int | None = None, *, content: str | None = None) -> DotsRequest:
    """GET /tm-setup/cuid=…[/tsid=…] (§7.1.1, §7.1.3): the server's acceptable values and what is installed."""
    path = _path("tm-setup", cuid, "tsid", tsid)
    return DotsRequest(RequestKind.TM_SETUP_GET, "GET", path, query=_content(content), confirmable=True, tsid=tsid)


def setup_put_request(cuid: str, tsid: int, entry: dict[str, Any]) -> DotsRequest:
    """PUT /tm-setup/cuid=…/tsid=… with one setup (§7.1.2, §7.2.1, §7.3.1); CON as a configuration is."""
    body = {TELEMETRY_SETUP: {"telemetry": [entry]}}
    path = _path("tm-setup", cuid, "tsid", tsid)
    return DotsRequest(
        RequestKind.TM_SETUP_PUT, "PUT", path, body, confirmable=True, tsid=tsid, setup_kind=setup_kind(entry)
    )


def setup_delete_request(cuid: str, tsid: int | None = None, kind: str | None = None) -> DotsRequest:
    """DELETE one setup (§7.1.4, §7.2.3, §7.3.3) or, without tsid, every setup of the cuid (§7.4)."""
    path = _path("tm-setup", cuid, "tsid", tsid)
    return DotsRequest(RequestKind.TM_SETUP_DELETE, "DELETE", path, confirmable=True, tsid=tsid, setup_kind=kind)


def report_put_request(cuid: str, tmid: int, entries: list[dict[str, Any]]) -> DotsRequest:
    """PUT /tm/cuid=…/tmid=… (§8.2); NON like a mitigation request, as it may travel during an attack."""
    if not entries:
        raise TelemetryError("a telemetry report needs at least one entry")
    body = {TELEMETRY: {PRE_OR_ONGOING: entries}}
    return DotsRequest(RequestKind.TM_PUT, "PUT", _path("tm", cuid, "tmid", tmid), body, tmid=tmid)


def report_get_request(cuid: str, tmid: int | None = None, *, content: str | None = None) -> DotsRequest:
    return DotsRequest(RequestKind.TM_GET, "GET", _path("tm", cuid, "tmid", tmid), query=_content(content), tmid=tmid)


def report_delete_request(cuid: str, tmid: int | None = None) -> DotsRequest:
    return DotsRequest(RequestKind.TM_DELETE, "DELETE", _path("tm", cuid, "tmid", tmid), tmid=tmid)
