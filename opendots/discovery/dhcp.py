"""DHCP options for DOTS agent discovery (RFC 8973 §5), sans-I/O: the option payloads in, names and addresses out.

The DHCP exchange itself is the system DHCP client's job (udhcpc, dhclient, odhcp6c…); it hands the raw option
payloads to a hook script, which leaves them in a file read by read_options_file() (`optNNN=<hex>` lines, the names
udhcpc gives them in its environment, plus `lease=<seconds>`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from opendots.errors import OpenDotsError

OPTION_V6_DOTS_RI = 141  # RFC 8973 §9.2
OPTION_V6_DOTS_ADDRESS = 142
OPTION_V4_DOTS_RI = 147  # RFC 8973 §9.3
OPTION_V4_DOTS_ADDRESS = 148
_LABEL = re.compile(rb"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")  # RFC 1123 host name label


class DhcpOptionError(OpenDotsError, ValueError):
    """A DOTS option payload that does not follow RFC 8973 §5; the option is ignored."""


def decode_names(payload: bytes) -> list[str]:
    """The FQDNs in a DHCP domain-name field (RFC 8415 §10: RFC 1035 labels, no compression), in order.

    Each name ends with the root label; several names are concatenated (RFC 8973 §5.2.3)."""
    names: list[str] = []
    labels: list[str] = []
    size = 0
    position = 0
    while position < len(payload):
        length = payload[position]
        position += 1
        if length == 0:
            if not labels:
                raise DhcpOptionError("empty domain name (a root label alone)")
            names.append(".".join(labels))
            labels, size = [], 0
            continue
        if length > 63:
            raise DhcpOptionError(
                f"label length {length} at byte {position - 1}: more than 63 (or a compression pointer)"
            )
        label = payload[position : position + length]
        if len(label) < length:
            raise DhcpOptionError("domain name truncated inside a label")
        if not _LABEL.match(label):
            raise DhcpOptionError(f"label {label!r} is not a host name label")
        size += length + 1
        if size + 1 > 255:
            raise DhcpOptionError("domain name longer than 255 octets")
        labels.append(label.decode("ascii").lower())
        position += length
    if labels:
        raise DhcpOptionError("domain name not terminated by the root label")
    if not names:
        raise DhcpOptionError("no domain name")
    return names


def encode_name(name: str) -> bytes:
    """The inverse of decode_names for one name (for tests and for hook scripts that write options)."""
    out = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split("."))
    return out + b"\x00"


def parse_ri(payload: bytes) -> str:
    """OPTION_V6_DOTS_RI / OPTION_V4_DOTS_RI (§5.1.1, §5.2.1): only the first name counts (§5.1.3, §5.2.3)."""
    return decode_names(payload)[0]


def _usable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # §5.1.3 / §5.2.3: multicast and host loopback addresses are silently discarded (an IPv4-mapped one too).
    mapped = getattr(address, "ipv4_mapped", None)
    target = mapped if mapped is not None else address
    return not (target.is_multicast or target.is_loopback or target.is_unspecified)


def parse_v6_addresses(payload: bytes) -> list[str]:
    """OPTION_V6_DOTS_ADDRESS (§5.1.2): IPv6 addresses in order of preference; length a multiple of 16."""
    if not payload or len(payload) % 16:
        raise DhcpOptionError(f"OPTION_V6_DOTS_ADDRESS length {len(payload)} is not a positive multiple of 16")
    addresses = [ipaddress.IPv6Address(payload[i : i + 16]) for i in range(0, len(payload), 16)]
    return [str(a.ipv4_mapped or a) for a in addresses if _usable(a)]


def parse_v4_addresses(payload: bytes) -> list[str]:
    """OPTION_V4_DOTS_ADDRESS (§5.2.2): IPv4 addresses in order of preference; length 4*N, N >= 1."""
    if not payload or len(payload) % 4:
        raise DhcpOptionError(f"OPTION_V4_DOTS_ADDRESS length {len(payload)} is not a positive multiple of 4")
    addresses = [ipaddress.IPv4Address(payload[i : i + 4]) for i in range(0, len(payload), 4)]
    return [str(a) for a in addresses if _usable(a)]


@dataclass(frozen=True)
class DhcpDots:
    """What the DOTS options of one DHCP answer say (§5.1.3, §5.2.3)."""

    name: str | None
    addresses: list[str]
    lease: float | None
    family: int  # 4 or 6

    @property
    def needs_resolution(self) -> bool:
        """A name without valid addresses is resolved; with valid addresses it MUST NOT be (§5.1.3)."""
        return self.name is not None and not self.addresses

    @property
    def reference_identifier(self) -> str | None:
        """The RI name; with addresses only, the addresses themselves serve as identifiers (§5.1.3)."""
        if self.name is not None:
            return self.name
        return self.addresses[0] if self.addresses else None


def interpret(options: dict[int, bytes], lease: float | None = None) -> list[DhcpDots]:
    """DhcpDots for each family whose options are present; a malformed option is reported, not half-used."""
    found: list[DhcpDots] = []
    for family, ri_code, address_code, parse in (
        (6, OPTION_V6_DOTS_RI, OPTION_V6_DOTS_ADDRESS, parse_v6_addresses),
        (4, OPTION_V4_DOTS_RI, OPTION_V4_DOTS_ADDRESS, parse_v4_addresses),
    ):
        if ri_code not in options and address_code not in options:
            continue
        name = parse_ri(options[ri_code]) if ri_code in options else None
        addresses = parse(options[address_code]) if address_code in options else []
        if name is None and not addresses:
            raise DhcpOptionError(f"DHCPv{family} DOTS address option holds no usable address")
        found.append(DhcpDots(name, addresses, lease, family))
    return found


def read_options_file(text: str) -> tuple[dict[int, bytes], float | None]:
    """`optNNN=<hex>` lines (udhcpc's names, its plain hex or dhclient's colon form; the first instance of an
    option wins, §5.1.3) and `lease=<s>`."""
    options: dict[int, bytes] = {}
    lease: float | None = None
    for number, line in enumerate(text.splitlines(), 1):
        key, _, value = line.strip().partition("=")
        value = value.strip().strip("'\"")
        if key == "lease" and value:
            try:
                lease = float(value)
            except ValueError:
                raise DhcpOptionError(f"line {number}: lease {value!r} is not a number of seconds") from None
        elif re.fullmatch(r"opt\d{1,5}", key) and value:  # empty: a hook's unset variable, the option absent
            try:
                # udhcpc writes plain hex ("0764…"); dhclient colon-separated bytes without leading zeros ("7:64:…")
                raw = bytes(int(part, 16) for part in value.split(":")) if ":" in value else bytes.fromhex(value)
                options.setdefault(int(key[3:]), raw)
            except ValueError:
                raise DhcpOptionError(f"line {number}: {key} is not hexadecimal") from None
    return options, lease
