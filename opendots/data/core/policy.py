"""Checks the YANG model cannot express: authorization scope (§6.1, §7.2, §10) and server capabilities (§7.1)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from opendots.config import ClientAuthorization
from opendots.data.core.errors import RestconfError
from opendots.data.records import Acl, Alias
from opendots.domain import IPNetwork

# The capabilities of an nftables or BGP FlowSpec (RFC 8955/8956) mitigator: every match field of RFC 8783
# Table 1 plus DSCP and the IPv6 flow label (RFC 8956); accept, drop and rate-limit. Not announced: TTL/hop
# limit, IHL, IPv4 flags/offset/identification, TCP sequence/window/options, ICMP rest-of-header, which
# FlowSpec cannot express.
DEFAULT_CAPABILITIES: dict[str, Any] = {
    "address-family": ["ipv4", "ipv6"],
    "forwarding-actions": ["ietf-access-control-list:drop", "ietf-access-control-list:accept"],
    "rate-limit": True,
    "transport-protocols": [1, 6, 17, 58],
    "ipv4": {
        "dscp": True,
        "length": True,
        "protocol": True,
        "destination-prefix": True,
        "source-prefix": True,
        "fragment": True,
    },
    "ipv6": {
        "dscp": True,
        "length": True,
        "protocol": True,
        "destination-prefix": True,
        "source-prefix": True,
        "flow-label": True,
        "fragment": True,
    },
    "tcp": {"flags-bitmask": True, "source-port": True, "destination-port": True, "port-range": True},
    "udp": {"length": True, "source-port": True, "destination-port": True, "port-range": True},
    "icmp": {"type": True, "code": True},
    # RFC 9244 §8.1.6: vendor attack mappings are shared (opendots.data.core.vendor_mapping), so a client may send
    # attack-ids without their descriptions.
    "ietf-dots-mapping:vendor-mapping-enabled": True,
}

# Match member → the capability leaf that announces it (RFC 8783 Figure 10).
_CAPABILITY_OF = {
    "ipv4": {
        "destination-ipv4-network": "destination-prefix",
        "source-ipv4-network": "source-prefix",
    },
    "ipv6": {
        "destination-ipv6-network": "destination-prefix",
        "source-ipv6-network": "source-prefix",
        "ttl": "hoplimit",
    },
    "tcp": {
        "source-port-range-or-operator": "source-port",
        "destination-port-range-or-operator": "destination-port",
    },
    "udp": {
        "source-port-range-or-operator": "source-port",
        "destination-port-range-or-operator": "destination-port",
    },
    "icmp": {},
}


def _denied(message: str) -> RestconfError:
    return RestconfError("access-denied", message, status=403)


def _invalid(message: str) -> RestconfError:
    return RestconfError("invalid-value", message)


def check_prefix(prefix: IPNetwork, client: ClientAuthorization, what: str) -> None:
    address = prefix.network_address
    if address.is_multicast or address.is_loopback or (prefix.num_addresses == 1 and _is_broadcast(address)):
        raise _invalid(f"{what} {prefix}: broadcast, loopback and multicast addresses are not valid targets")
    if not client.covers_prefix(prefix):
        raise _denied(f"{what} {prefix} is outside the prefixes of client domain {client.name!r}")


def _is_broadcast(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.version == 4 and int(address) == 0xFFFFFFFF


def check_alias(alias: Alias, client: ClientAuthorization) -> None:
    if not (alias.target_prefixes or alias.target_fqdns or alias.target_uris):
        raise RestconfError(
            "missing-attribute", f"alias {alias.name!r} needs target-prefix, target-fqdn or target-uri (§6.1)"
        )
    for prefix in alias.target_prefixes:
        check_prefix(prefix, client, "target-prefix")
    for fqdn in alias.target_fqdns:
        if not client.covers_fqdn(fqdn):
            raise _denied(f"target-fqdn {fqdn} is outside the domain of client {client.name!r}")
    for uri in alias.target_uris:
        check_uri(uri, client)
    for port in alias.target_ports:
        if port.upper < port.lower:
            raise _invalid(f"target-port-range {port.lower}-{port.upper}: upper-port below lower-port")


def check_uri(uri: str, client: ClientAuthorization) -> None:
    """A URI target is allowed if the client owns it, or its host (a name or an address) is in scope."""
    if uri in client.uris:
        return
    host = urlsplit(uri).hostname
    if host:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if client.covers_fqdn(host):
                return
        else:
            if client.covers_prefix(ipaddress.ip_network(address)):
                return
    raise _denied(f"target-uri {uri} is outside the domain of client {client.name!r}")


def check_acl(acl: Acl, client: ClientAuthorization) -> None:
    for ace in acl.aces:
        if ace.match.destination is not None:
            check_prefix(ace.match.destination, client, f"ACE {ace.name!r} destination")


def check_capabilities(entry: dict[str, Any], capabilities: dict[str, Any]) -> None:
    """Reject an ACL that uses a match field or an action this server does not announce (§7.2: 400)."""
    families = set(capabilities.get("address-family", []))
    actions = {item.split(":", 1)[-1] for item in capabilities.get("forwarding-actions", [])}
    for ace in entry.get("aces", {}).get("ace", []):
        name = ace.get("name")
        matches = ace.get("matches", {})
        for layer, fields in matches.items():
            if layer in ("ipv4", "ipv6") and layer not in families:
                raise _unsupported(name, f"address family {layer}")
            supported = capabilities.get(layer, {})
            for field, value in fields.items():
                capability = _CAPABILITY_OF.get(layer, {}).get(field, field)
                if not supported.get(capability, False):
                    raise _unsupported(name, f"{layer} match on {field}")
                ranged = field.endswith("port-range-or-operator") and _uses_range(value)
                if ranged and not supported.get("port-range", False):
                    raise _unsupported(name, f"{layer} port ranges")
        for layer in ("ipv4", "ipv6"):
            if "fragment" in matches.get(layer, {}) and "flags" in matches.get(layer, {}):
                raise _invalid(f"ACE {name!r}: 'fragment' and 'flags' must not be set together (§4.2)")
        if "flags-bitmask" in matches.get("tcp", {}) and "flags" in matches.get("tcp", {}):
            raise _invalid(f"ACE {name!r}: 'flags-bitmask' and 'flags' must not be set together (§4.2)")
        forwarding = ace.get("actions", {}).get("forwarding", "").split(":", 1)[-1]
        if forwarding not in actions:
            raise _unsupported(name, f"forwarding action {forwarding}")
        if "rate-limit" in ace.get("actions", {}) and not capabilities.get("rate-limit", False):
            raise _unsupported(name, "rate-limit")


def _uses_range(value: dict[str, Any]) -> bool:
    return "lower-port" in value or value.get("operator", "eq") != "eq"


def _unsupported(ace: str | None, what: str) -> RestconfError:
    return RestconfError("unknown-element", f"ACE {ace!r}: {what} is not supported by this server (see capabilities)")
